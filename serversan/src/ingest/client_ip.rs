//! The client's address, seen through trusted reverse proxies.
//!
//! `X-Forwarded-For` is believed only when the connection comes from a
//! configured proxy, and then read from the right: each trusted proxy
//! appends the address it saw, so the rightmost entry that is not a trusted
//! proxy is the client. Entries further left were written by the client and
//! prove nothing.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::config::NetList;

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &NetList) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage: stop at the last address we could trust.
            break;
        };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`,
/// `[2001:db8::1]:443` or `192.0.2.1:443`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sock) = s.parse::<std::net::SocketAddr>() {
        return Some(sock.ip().to_canonical());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SettingValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().expect("header"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn untrusted_peers_are_taken_at_their_word() {
        let trusted = NetList::default();
        let got = client_ip(ip("198.51.100.9"), &headers(&["1.2.3.4"]), &trusted);
        assert_eq!(got, ip("198.51.100.9"));
    }

    #[test]
    fn trusted_proxies_name_the_client() {
        let trusted = NetList::parse("127.0.0.1, 10.0.0.0/8").expect("list");
        let h = headers(&["6.6.6.6, 203.0.113.5", "10.1.1.1"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.5"));
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        // Garbage after a good entry stops the walk.
        let h = headers(&["203.0.113.5, nonsense"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
        let h = headers(&["[2001:db8::7]:1234"]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &h, &trusted),
            ip("2001:db8::7")
        );
    }
}
