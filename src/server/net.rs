//! The listener's settings: sendmail's `DaemonPortOptions` and the trusted networks.
//!
//! Both are option values (the command line's or the config file's): any text is refused
//! with a message or accepted, never a panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use crate::exit::{Fatal, Sysexit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One listening address from `O DaemonPortOptions=Port=25,Addr=127.0.0.1,Family=inet`
/// (sendmail's keys; `Name`, `Modifiers` and the others are accepted and ignored).
pub fn daemon_port_options(value: &str) -> Result<Vec<SocketAddr>, Fatal> {
    let bad =
        |why: String| Fatal::new(Sysexit::Config, format!("DaemonPortOptions={value}: {why}"));
    let mut port: u16 = 25;
    let mut addr: Option<IpAddr> = None;
    let mut family: Option<&str> = None;
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let v = v.trim();
        // sendmail matches the keys by their first letter, case-insensitively.
        match k.trim().chars().next().map(|c| c.to_ascii_lowercase()) {
            Some('p') => {
                port = v
                    .parse()
                    .map_err(|_| bad(format!("invalid port \"{v}\"")))?;
            }
            Some('a') => {
                let v = v.trim_start_matches('[').trim_end_matches(']');
                addr = Some(
                    v.parse()
                        .map_err(|_| bad(format!("invalid address \"{v}\"")))?,
                );
            }
            Some('f') => match v {
                "inet" | "inet6" => family = Some(if v == "inet" { "inet" } else { "inet6" }),
                _ => return Err(bad(format!("unsupported family \"{v}\""))),
            },
            _ => {}
        }
    }
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    Ok(match (addr, family) {
        (Some(a), _) => vec![SocketAddr::new(a, port)],
        (None, Some("inet6")) => vec![SocketAddr::new(v6, port)],
        (None, Some(_)) => vec![SocketAddr::new(v4, port)],
        // Loopback only unless an address is given: never listen on the world by default.
        (None, None) => vec![SocketAddr::new(v4, port), SocketAddr::new(v6, port)],
    })
}

/// A network in CIDR form (`127.0.0.0/8`, `::1`, `192.0.2.7`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    pub fn parse(s: &str) -> Option<Net> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse().ok().filter(|&n| n <= max)?,
            None => max,
        };
        Some(Net { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen on an IPv6 socket (::ffff:a.b.c.d) is that IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `O TrustedNetworks=` (blank- or comma-separated; default `127.0.0.0/8 ::1`).
pub fn trusted_networks(value: Option<&str>) -> Result<Vec<Net>, Fatal> {
    let value = value.unwrap_or("127.0.0.0/8 ::1");
    value
        .split([' ', ',', '\t'])
        .filter(|s| !s.is_empty())
        .map(|s| {
            Net::parse(s).ok_or_else(|| {
                Fatal::new(
                    Sysexit::Config,
                    format!("TrustedNetworks: invalid network \"{s}\""),
                )
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn port_options_as_sendmail_writes_them() {
        let a = daemon_port_options("Port=2525,Addr=127.0.0.1,Name=MTA").unwrap();
        assert_eq!(a, vec!["127.0.0.1:2525".parse().unwrap()]);
        let a = daemon_port_options("Family=inet6, Addr=::1, Port=587").unwrap();
        assert_eq!(a, vec!["[::1]:587".parse().unwrap()]);
        let a = daemon_port_options("Name=MTA").unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|s| s.ip().is_loopback() && s.port() == 25));
        assert!(daemon_port_options("Port=x").is_err());
        assert!(daemon_port_options("Addr=nowhere").is_err());
    }

    #[test]
    fn networks() {
        let n = trusted_networks(None).unwrap();
        let t = |s: &str| n.iter().any(|x| x.contains(s.parse().unwrap()));
        assert!(t("127.0.0.1") && t("127.9.9.9") && t("::1") && t("::ffff:127.0.0.2"));
        assert!(!t("10.0.0.1") && !t("::2"));
        let n = trusted_networks(Some("127.0.0.1/32, 10.0.0.0/8")).unwrap();
        let t = |s: &str| n.iter().any(|x| x.contains(s.parse().unwrap()));
        assert!(t("127.0.0.1") && !t("127.0.0.2") && t("10.1.2.3"));
        assert!(trusted_networks(Some("10.0.0.0/33")).is_err());
        assert!(
            trusted_networks(Some("0.0.0.0/0")).unwrap()[0].contains("8.8.8.8".parse().unwrap())
        );
    }
}
