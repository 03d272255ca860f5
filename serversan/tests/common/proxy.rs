//! A TCP proxy in front of MariaDB that a test can cut and restore,
//! standing in for a database that goes away (the shared MariaDB is never
//! stopped).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serversan::config::{DatabaseUrl, SettingValue};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{TestDb, mysql_server_url};

pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    /// A proxy to the test MariaDB server.
    pub async fn start() -> Self {
        let target = mysql_target().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(AtomicBool::new(true));
        let (cut, cut_rx) = watch::channel(0u64);
        let accepting = open.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                // Only cuts from now on end this connection.
                cut_rx.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Self { addr, open, cut }
    }

    /// The URL of `db` (a MySQL test database) through this proxy.
    pub fn url_of(&self, db: &TestDb) -> DatabaseUrl {
        let server_url = mysql_server_url();
        let userinfo = server_url
            .split("://")
            .nth(1)
            .and_then(|a| a.rsplit_once('@'))
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        DatabaseUrl::parse(&format!(
            "mysql://{userinfo}{}/{}",
            self.addr,
            db.mysql_database().expect("mysql")
        ))
        .expect("url")
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

async fn mysql_target() -> SocketAddr {
    let url = mysql_server_url();
    let authority = url.split("://").nth(1).expect("authority");
    let host_port = authority.rsplit('@').next().expect("host");
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:3306")
    };
    tokio::net::lookup_host(host_port)
        .await
        .expect("resolve")
        .next()
        .expect("an address")
}
