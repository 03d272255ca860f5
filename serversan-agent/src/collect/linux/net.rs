//! The host's primary addresses: those of the interface carrying the default
//! route. Read from the kernel's tables; no packet is sent and no process
//! spawned.

use std::ffi::CStr;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The primary IPv4 address: the default route's interface's address, else
/// the first non-loopback one.
pub fn primary_ipv4() -> Option<Ipv4Addr> {
    let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let iface = default_route_v4(&route);
    let addrs = interface_ipv4s();
    iface
        .and_then(|i| addrs.iter().find(|(name, _)| *name == i).map(|(_, a)| *a))
        .or_else(|| addrs.iter().map(|(_, a)| *a).find(|a| !a.is_loopback()))
}

/// The primary IPv6 address: a stable global address of the default route's
/// interface, else any stable global address.
pub fn primary_ipv6() -> Option<Ipv6Addr> {
    let routes = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    let addrs = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    pick_ipv6(default_route_v6(&routes).as_deref(), &addrs)
}

/// The interface of the lowest-metric default route in `/proc/net/route`.
pub fn default_route_v4(route: &str) -> Option<String> {
    route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let up = flags & 0x1 != 0;
            let default = *f.get(1)? == "00000000" && *f.get(7)? == "00000000";
            let metric: u32 = f.get(6)?.parse().ok()?;
            (up && default).then(|| (metric, f[0].to_owned()))
        })
        .min()
        .map(|(_, iface)| iface)
}

/// The interface of the lowest-metric default route in `/proc/net/ipv6_route`
/// (loopback's "unreachable" default excluded).
pub fn default_route_v6(routes: &str) -> Option<String> {
    routes
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            let default = f.first()?.bytes().all(|b| b == b'0') && *f.get(1)? == "00";
            let metric = u32::from_str_radix(f.get(5)?, 16).ok()?;
            let iface = *f.get(9)?;
            (default && iface != "lo").then(|| (metric, iface.to_owned()))
        })
        .min()
        .map(|(_, iface)| iface)
}

/// Picks from `/proc/net/if_inet6`: global scope, not temporary, deprecated,
/// tentative or failed; the default route's interface first.
pub fn pick_ipv6(default_iface: Option<&str>, if_inet6: &str) -> Option<Ipv6Addr> {
    const UNSTABLE: u32 = 0x01 | 0x08 | 0x20 | 0x40;
    let candidates: Vec<(String, Ipv6Addr)> = if_inet6
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            let hex = f.first()?;
            let scope = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let flags = u32::from_str_radix(f.get(4)?, 16).ok()?;
            let iface = f.get(5)?;
            let bits = u128::from_str_radix(hex, 16).ok()?;
            let addr = Ipv6Addr::from(bits);
            (scope == 0 && flags & UNSTABLE == 0 && !addr.is_loopback())
                .then(|| ((*iface).to_owned(), addr))
        })
        .collect();
    default_iface
        .and_then(|d| candidates.iter().find(|(i, _)| i == d))
        .or_else(|| candidates.first())
        .map(|(_, a)| *a)
}

/// Every interface's IPv4 addresses, from `getifaddrs` (a netlink query).
fn interface_ipv4s() -> Vec<(String, Ipv4Addr)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says its type.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: the family is AF_INET, so this is a sockaddr_in.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        let addr = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        out.push((name, addr));
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_v4_prefers_lowest_metric() {
        let route = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\n\
                     eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\n\
                     eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        assert_eq!(default_route_v4(route).as_deref(), Some("eth0"));
        assert_eq!(default_route_v4("Iface\n"), None);
    }

    #[test]
    fn ipv6_picks_stable_global_on_default_interface() {
        let routes = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth1\n\
                      00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        assert_eq!(default_route_v6(routes).as_deref(), Some("eth1"));
        let addrs = "00000000000000000000000000000001 01 80 10 80 lo\n\
                     fe8000000000000000fc00fffe000001 04 40 20 80 eth1\n\
                     20010db8000000000000000000000099 05 40 00 01 eth1\n\
                     20010db8000000000000000000000010 05 40 00 80 eth1\n\
                     20010db8000000000000000000000020 02 40 00 80 eth0\n";
        assert_eq!(
            pick_ipv6(Some("eth1"), addrs),
            Some("2001:db8::10".parse().expect("addr"))
        );
        assert_eq!(
            pick_ipv6(None, addrs),
            Some("2001:db8::10".parse().expect("addr"))
        );
        assert_eq!(
            pick_ipv6(None, "00000000000000000000000000000001 01 80 10 80 lo\n"),
            None
        );
    }
}
