//! Value types of settings and how each is read from text.
//!
//! Environment variables are text, and a TOML file's values are turned into
//! the same text before parsing, so one parser per type serves both sources
//! and both give the same error for the same mistake.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A value a setting can hold: parsed from text, shown back as text.
pub trait SettingValue: Sized {
    /// Parses `raw`; the error says what was expected, never echoing a secret.
    fn parse(raw: &str) -> Result<Self, String>;
    /// The value as `check-config` prints it (secrets masked).
    fn show(&self) -> String;
}

impl SettingValue for String {
    fn parse(raw: &str) -> Result<Self, String> {
        Ok(raw.trim().to_owned())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

impl SettingValue for bool {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

macro_rules! integer_setting {
    ($($t:ty),*) => {$(
        impl SettingValue for $t {
            fn parse(raw: &str) -> Result<Self, String> {
                raw.trim()
                    .parse()
                    .map_err(|_| format!("expected a whole number from {} to {}", <$t>::MIN, <$t>::MAX))
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
integer_setting!(u32, u64, usize);

impl SettingValue for SocketAddr {
    fn parse(raw: &str) -> Result<Self, String> {
        raw.trim()
            .parse()
            .map_err(|_| "expected an address and port such as 127.0.0.1:8080 or [::]:8080".into())
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl SettingValue for Duration {
    /// A number with an optional unit: `500ms`, `30` or `30s`, `5m`, `2h`, `7d`.
    /// A bare number means seconds.
    fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| "expected a duration such as 30s, 5m, 2h or 7d".to_owned())?;
        let millis_per_unit: u64 = match unit.trim() {
            "ms" => 1,
            "" | "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err("expected a duration such as 30s, 5m, 2h or 7d".into()),
        };
        n.checked_mul(millis_per_unit)
            .map(Duration::from_millis)
            .ok_or_else(|| "duration too large".into())
    }
    fn show(&self) -> String {
        let ms = self.as_millis();
        let units = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ];
        for (size, unit) in units {
            if ms >= size && ms.is_multiple_of(size) {
                return format!("{}{unit}", ms / size);
            }
        }
        format!("{ms}ms")
    }
}

impl SettingValue for Option<PathBuf> {
    fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        Ok((!s.is_empty()).then(|| PathBuf::from(s)))
    }
    fn show(&self) -> String {
        self.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

impl SettingValue for Option<String> {
    fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        Ok((!s.is_empty()).then(|| s.to_owned()))
    }
    fn show(&self) -> String {
        self.clone().unwrap_or_default()
    }
}

/// A secret (the bot token): its `Debug` and `show` never reveal it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl SettingValue for Option<Secret> {
    fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        Ok((!s.is_empty()).then(|| Secret(s.to_owned())))
    }
    fn show(&self) -> String {
        match self {
            Some(_) => "********".into(),
            None => String::new(),
        }
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    MySql,
}

/// A database URL: `sqlite://PATH`, `sqlite:///abs/path.db` or
/// `mysql://user:pass@host:port/db` (`mariadb://` is accepted as a synonym).
/// Shown with its password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn kind(&self) -> DatabaseKind {
        if self.0.starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else {
            DatabaseKind::MySql
        }
    }

    /// The URL as the database driver wants it (with its password).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `****`.
    pub fn masked(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let (authority, tail) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                let masked = if userinfo.contains(':') {
                    format!("{user}:****")
                } else {
                    user.to_owned()
                };
                format!("{scheme}://{masked}@{host}{tail}")
            }
            None => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.masked())
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Self as SettingValue>::parse(s)
    }
}

impl SettingValue for DatabaseUrl {
    fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if let Some(rest) = s.strip_prefix("mariadb://") {
            return Ok(Self(format!("mysql://{rest}")));
        }
        if let Some(rest) = s.strip_prefix("mysql://") {
            let authority = rest.split('/').next().unwrap_or_default();
            let database = rest
                .split_once('/')
                .map(|(_, db)| db.split('?').next().unwrap_or_default())
                .unwrap_or_default();
            if authority.is_empty() || database.is_empty() {
                return Err("a MySQL URL looks like mysql://user:password@host:3306/database (the database must already exist)".into());
            }
            return Ok(Self(s.to_owned()));
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(
                    "an SQLite URL looks like sqlite://serversan.db or sqlite:///var/lib/serversan/serversan.db"
                        .into(),
                );
            }
            return Ok(Self(s.to_owned()));
        }
        Err("expected sqlite://PATH or mysql://user:password@host:port/database".into())
    }
    fn show(&self) -> String {
        self.masked()
    }
}

/// A size in bytes: `65536`, `64KiB`, `1MiB` (KB/MB are read as KiB/MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl SettingValue for ByteSize {
    fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: usize = digits
            .parse()
            .map_err(|_| "expected a size such as 65536, 64KiB or 1MiB".to_owned())?;
        let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            _ => return Err("expected a size such as 65536, 64KiB or 1MiB".into()),
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| "size too large".into())
    }
    fn show(&self) -> String {
        let n = self.0;
        if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
            format!("{}MiB", n >> 20)
        } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
            format!("{}KiB", n >> 10)
        } else {
            n.to_string()
        }
    }
}

/// Telegram user ids, comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdList(pub Vec<i64>);

impl SettingValue for IdList {
    fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<i64>()
                    .ok()
                    .filter(|&id| id > 0)
                    .ok_or_else(|| format!("{s:?} is not a Telegram user id (a positive number)"))
            })
            .collect::<Result<_, _>>()
            .map(IdList)
    }
    fn show(&self) -> String {
        let ids: Vec<String> = self.0.iter().map(i64::to_string).collect();
        ids.join(",")
    }
}

/// A network: an address with a prefix length (`10.0.0.0/8`, `::1/128`), or
/// a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IP address or network such as 10.0.0.0/8");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

/// A list of networks, comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetList(pub Vec<IpNet>);

impl NetList {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

impl SettingValue for NetList {
    fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(IpNet::from_str)
            .collect::<Result<_, _>>()
            .map(NetList)
    }
    fn show(&self) -> String {
        let nets: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        nets.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| <Duration as SettingValue>::parse(s);
        assert_eq!(d("30"), Ok(Duration::from_secs(30)));
        assert_eq!(d("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(d(" 5m "), Ok(Duration::from_secs(300)));
        assert_eq!(d("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(d("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert!(d("").is_err());
        assert!(d("-5s").is_err());
        assert!(d("5 minutes").is_err());
        assert!(d("99999999999999999999d").is_err());
        assert_eq!(Duration::from_secs(300).show(), "5m");
        assert_eq!(Duration::from_secs(90).show(), "90s");
        assert_eq!(Duration::from_millis(1500).show(), "1500ms");
        assert_eq!(Duration::from_secs(7 * 86400).show(), "7d");
    }

    #[test]
    fn sizes() {
        let b = |s| ByteSize::parse(s).map(|b| b.0);
        assert_eq!(b("65536"), Ok(65536));
        assert_eq!(b("64KiB"), Ok(65536));
        assert_eq!(b("1 MiB"), Ok(1 << 20));
        assert!(b("lots").is_err());
        assert_eq!(ByteSize(65536).show(), "64KiB");
        assert_eq!(ByteSize(1000).show(), "1000");
    }

    #[test]
    fn database_urls_are_checked_and_masked() {
        let u = |s| DatabaseUrl::parse(s);
        assert_eq!(
            u("sqlite://x.db").map(|u| u.kind()),
            Ok(DatabaseKind::Sqlite)
        );
        assert_eq!(
            u("mysql://root@127.0.0.1:3306/serversan").map(|u| u.kind()),
            Ok(DatabaseKind::MySql)
        );
        assert_eq!(
            u("mariadb://a:b@h/db").map(|u| u.expose().to_owned()),
            Ok("mysql://a:b@h/db".to_owned())
        );
        assert!(u("mysql://host:3306").is_err(), "no database name");
        assert!(u("postgres://x/y").is_err());
        assert!(u("sqlite://").is_err());
        let url = u("mysql://app:hunter2@db.internal:3306/serversan").expect("valid");
        assert_eq!(url.masked(), "mysql://app:****@db.internal:3306/serversan");
        assert!(!format!("{url:?}").contains("hunter2"));
        let pw_with_at = u("mysql://app:p@ss@db/serversan").expect("valid");
        assert_eq!(pw_with_at.masked(), "mysql://app:****@db/serversan");
    }

    #[test]
    fn secrets_never_show() {
        let s = <Option<Secret>>::parse("123:ABC").expect("parses");
        assert_eq!(s.show(), "********");
        assert!(!format!("{s:?}").contains("ABC"));
        assert_eq!(<Option<Secret>>::parse("  ").expect("parses"), None);
    }

    #[test]
    fn id_lists() {
        assert_eq!(IdList::parse("1, 22 ,333,"), Ok(IdList(vec![1, 22, 333])));
        assert_eq!(IdList::parse(""), Ok(IdList(vec![])));
        assert!(IdList::parse("12,@bob").is_err());
        assert!(IdList::parse("-5").is_err());
    }

    #[test]
    fn networks() {
        let nets = NetList::parse("10.0.0.0/8, 192.168.1.1, ::1").expect("parses");
        assert!(nets.contains("10.200.3.4".parse().expect("ip")));
        assert!(nets.contains("192.168.1.1".parse().expect("ip")));
        assert!(!nets.contains("192.168.1.2".parse().expect("ip")));
        assert!(nets.contains("::1".parse().expect("ip")));
        assert!(nets.contains("::ffff:10.1.1.1".parse().expect("ip")));
        assert!(!nets.contains("11.0.0.1".parse().expect("ip")));
        assert!(NetList::parse("10.0.0.0/33").is_err());
        assert!(NetList::parse("example.com").is_err());
        let all = NetList::parse("0.0.0.0/0").expect("parses");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
    }
}
