//! DNS for MX delivery, the SMTP server's check of a sender's domain and, with RESOLVER,
//! relay host names (hickory-resolver). The rest of the deliverer is synchronous: a
//! private current-thread tokio runtime lives here only, and is built only when the first
//! lookup is needed (for smarthost and relay-table routes only with RESOLVER; never in
//! `rsendmail`).
//!
//! Results (RFC 5321 §5.1, RFC 7505):
//! - MX records: hosts in preference order, equal preferences in random order, each
//!   with its IPv6 and IPv4 addresses;
//! - no MX but the name exists: the implicit MX, the domain's own A/AAAA;
//! - NXDOMAIN, a null MX (`MX 0 .`) or no address at all: permanent ("Host unknown");
//! - a relay's host name ([`Dns::host`], or [`system_host`] without RESOLVER): NXDOMAIN,
//!   NODATA or a failed lookup, told apart so that the reason names which;
//! - SERVFAIL, refusal, timeouts: temporary;
//! - an MX list naming this host (sendmail's `getmxrr`): the records of that preference
//!   and worse are dropped, and when none are left the mail would loop back here: a
//!   permanent `554 5.3.5 MX list for DOMAIN. points back to HOST`.
//!
//! Names are asked in their ASCII form: a U-label domain (`bücher.example`) as its
//! A-label (`xn--bcher-kva.example`, RFC 5891 §5; [`ascii_domain`]).

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use rsendmail::status::{self, EnhancedStatus};
use std::net::IpAddr;
use std::time::Duration;

/// What a domain's mail goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MxResult {
    /// (host name, its addresses), in the order to try.
    Hosts(Vec<(String, Vec<IpAddr>)>),
    /// The domain does not take mail: a permanent failure with this status and text.
    NoHost(EnhancedStatus, String),
    /// Try again later, with this status and text.
    Temp(EnhancedStatus, String),
}

pub struct Dns {
    rt: tokio::runtime::Runtime,
    resolver: TokioResolver,
}

/// Parse `RESOLVER` entries (`ip[:port]`, `[v6]:port`) into name-server configs.
pub fn name_servers(entries: &[String]) -> Result<Vec<NameServerConfig>, String> {
    let mut out = Vec::new();
    for e in entries {
        let (host, port) =
            rsendmail::config::parse_host_port(e).ok_or(format!("invalid RESOLVER {e}"))?;
        let ip: IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("RESOLVER {e} is not an IP address"))?;
        let port = port.unwrap_or(53);
        let mut udp = ConnectionConfig::udp();
        udp.port = port;
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = port;
        out.push(NameServerConfig::new(ip, true, vec![udp, tcp]));
    }
    Ok(out)
}

impl Dns {
    /// A resolver asking `servers` (from RESOLVER), or the system's (/etc/resolv.conf).
    pub fn new(servers: &[String], timeout: Duration, retries: usize) -> Result<Dns, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the DNS runtime: {e}"))?;
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?
        } else {
            let config = ResolverConfig::from_name_servers(name_servers(servers)?);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        };
        let mut opts: ResolverOpts = builder.options_mut().clone();
        opts.timeout = timeout;
        opts.attempts = retries;
        opts.ndots = 0;
        *builder.options_mut() = opts;
        let resolver = {
            let _guard = rt.enter();
            builder
                .build()
                .map_err(|e| format!("cannot set up DNS: {e}"))?
        };
        Ok(Dns { rt, resolver })
    }

    /// The addresses of a host name (a relay, an MX host, a domain without MX; A and AAAA,
    /// never empty), or why there are none: the name does not exist (NXDOMAIN), it exists
    /// with no address (NODATA: no A or AAAA record), or the lookup failed for now
    /// (SERVFAIL, a refusal, no answer within `Timeout.resolver.retrans` times
    /// `Timeout.resolver.retry`).
    pub fn host(&self, name: &str) -> Result<Vec<IpAddr>, HostError> {
        let Some(ascii) = ascii_domain(name) else {
            return Err(HostError::NotFound);
        };
        let fqdn = format!("{}.", ascii.trim_end_matches('.'));
        match self.rt.block_on(self.resolver.lookup_ip(fqdn.as_str())) {
            Ok(l) => {
                let a: Vec<IpAddr> = l.iter().collect();
                if a.is_empty() {
                    Err(HostError::NoData)
                } else {
                    Ok(a)
                }
            }
            Err(e) if e.is_nx_domain() => Err(HostError::NotFound),
            Err(e) if e.is_no_records_found() => Err(HostError::NoData),
            Err(e) => Err(HostError::Failed(e.to_string())),
        }
    }

    /// Where mail for `domain` goes. `own`: this host's names ([`own_names`]); MX hosts
    /// named so, and those of their preference or worse, are never used.
    pub fn mx(&self, domain: &str, own: &[String]) -> MxResult {
        self.mx_explained(domain, own).0
    }

    /// [`Dns::mx`], and for a lookup that failed for now the resolver's own account (a
    /// time-out, a refusal), which sendmail's words leave out: `check` says it.
    pub fn mx_explained(&self, domain: &str, own: &[String]) -> (MxResult, Option<String>) {
        let mut why = None;
        let r = self.mx_inner(domain, own, &mut why);
        (r, why)
    }

    fn mx_inner(&self, domain: &str, own: &[String], why: &mut Option<String>) -> MxResult {
        let mut failure = |domain: &str, e: &str| {
            *why = Some(e.to_string());
            lookup_failure(domain, e)
        };
        let unknown = || MxResult::NoHost(status::BAD_SYSTEM, host_not_found(domain));
        let Some(ascii) = ascii_domain(domain) else {
            return unknown();
        };
        let fqdn = format!("{}.", ascii.trim_end_matches('.'));
        match self.rt.block_on(self.resolver.mx_lookup(fqdn.as_str())) {
            Ok(lookup) => {
                let mut mx: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(m) => Some((
                            m.preference,
                            m.exchange.to_ascii().trim_end_matches('.').to_string(),
                        )),
                        _ => None,
                    })
                    .collect();
                if mx.is_empty() {
                    return self.implicit(domain, why);
                }
                if mx.iter().any(|(_, h)| h.is_empty()) {
                    // RFC 7505: a null MX says the domain takes no mail.
                    return MxResult::NoHost(
                        status::NULL_MX,
                        format!("{domain} does not accept mail (null MX)"),
                    );
                }
                if !drop_own(&mut mx, own) {
                    return MxResult::NoHost(status::MISCONFIGURED, points_back(domain, own));
                }
                order(&mut mx);
                let mut hosts = Vec::new();
                let mut temp = None;
                for (_, h) in mx {
                    match self.host(&h) {
                        Ok(a) => hosts.push((h, a)),
                        Err(HostError::NotFound | HostError::NoData) => {}
                        Err(HostError::Failed(e)) => temp = Some(e),
                    }
                }
                if !hosts.is_empty() {
                    MxResult::Hosts(hosts)
                } else if let Some(e) = temp {
                    failure(domain, &e)
                } else {
                    MxResult::NoHost(
                        status::BAD_SYSTEM,
                        format!("Host unknown (no address for the MX hosts of {domain})"),
                    )
                }
            }
            Err(e) if e.is_nx_domain() => unknown(),
            Err(e) if e.is_no_records_found() => self.implicit(domain, why),
            Err(e) => failure(domain, &e.to_string()),
        }
    }

    /// Whether a sender's domain exists (the SMTP server's check): only NXDOMAIN says no;
    /// a name with no MX (or no records at all) exists.
    pub fn domain_exists(&self, domain: &str) -> rsendmail::server::DomainCheck {
        use rsendmail::server::DomainCheck;
        let Some(ascii) = ascii_domain(domain) else {
            return DomainCheck::NotFound;
        };
        let fqdn = format!("{}.", ascii.trim_end_matches('.'));
        match self.rt.block_on(self.resolver.mx_lookup(fqdn.as_str())) {
            Ok(_) => DomainCheck::Exists,
            Err(e) if e.is_nx_domain() => DomainCheck::NotFound,
            Err(e) if e.is_no_records_found() => DomainCheck::Exists,
            Err(e) => {
                log::warn!("sender domain {domain}: {e}");
                DomainCheck::TempFail
            }
        }
    }

    /// No MX: the domain's own addresses (RFC 5321 §5.1).
    /// (`why`: the resolver's account of a lookup that failed for now.)
    fn implicit(&self, domain: &str, why: &mut Option<String>) -> MxResult {
        match self.host(domain) {
            Ok(a) => MxResult::Hosts(vec![(domain.to_string(), a)]),
            Err(HostError::NotFound | HostError::NoData) => {
                MxResult::NoHost(status::BAD_SYSTEM, host_not_found(domain))
            }
            Err(HostError::Failed(e)) => {
                *why = Some(e.clone());
                lookup_failure(domain, &e)
            }
        }
    }
}

/// The addresses of a relay's host name through the system's resolver (getaddrinfo(3):
/// nsswitch, `/etc/hosts`, `/etc/resolv.conf`), told apart as [`Dns::host`] tells them:
/// `EAI_NONAME` is a name that does not exist, `EAI_NODATA` one without an address,
/// anything else (`EAI_AGAIN`: SERVFAIL, a refusal, no answer) a failed lookup.
pub fn system_host(name: &str) -> Result<Vec<IpAddr>, HostError> {
    let Ok(c_name) = std::ffi::CString::new(name) else {
        return Err(HostError::NotFound);
    };
    // SAFETY: an all-zero addrinfo is the documented "no hints" value; the fields set
    // are plain integers.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: c_name is a NUL-terminated string that outlives the call; `list` receives
    // a list this function frees below and nowhere else.
    let rc = unsafe { libc::getaddrinfo(c_name.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if rc != 0 {
        return Err(match rc {
            libc::EAI_NONAME => HostError::NotFound,
            libc::EAI_NODATA => HostError::NoData,
            _ => {
                // SAFETY: gai_strerror returns a static NUL-terminated string.
                let text = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(rc)) };
                HostError::Failed(text.to_string_lossy().into_owned())
            }
        });
    }
    let mut out = Vec::new();
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getaddrinfo returned, not yet freed; its
        // ai_addr points to a sockaddr of the family it names.
        let node = unsafe { &*at };
        if !node.ai_addr.is_null() {
            match node.ai_family {
                libc::AF_INET => {
                    let sa = unsafe { &*(node.ai_addr as *const libc::sockaddr_in) };
                    out.push(IpAddr::from(u32::from_be(sa.sin_addr.s_addr).to_be_bytes()));
                }
                libc::AF_INET6 => {
                    let sa = unsafe { &*(node.ai_addr as *const libc::sockaddr_in6) };
                    out.push(IpAddr::from(sa.sin6_addr.s6_addr));
                }
                _ => {}
            }
        }
        at = node.ai_next;
    }
    // SAFETY: the list getaddrinfo returned, freed once.
    unsafe { libc::freeaddrinfo(list) };
    out.dedup();
    if out.is_empty() {
        return Err(HostError::NoData);
    }
    Ok(out)
}

/// Why a host name gave no address ([`Dns::host`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// NXDOMAIN: the name does not exist.
    NotFound,
    /// NODATA: the name exists but has no A or AAAA record.
    NoData,
    /// The lookup failed for now (the resolver's account, for the log).
    Failed(String),
}

/// sendmail's words for a name that does not exist, `name` as sendmail shows it (a
/// domain as it is, a relay in brackets: `[relay.example]`).
pub fn host_not_found(name: &str) -> String {
    format!("Host unknown (Name server: {name}: host not found)")
}

/// sendmail's words for a name that exists with no address (NODATA; recorded:
/// `reason-nodata-*`), `name` as in [`host_not_found`].
pub fn no_data_known(name: &str) -> String {
    format!("Host unknown (Name server: {name}: no data known)")
}

/// sendmail's words for a lookup that failed for now (see [`host_not_found`]).
pub fn lookup_failed(name: &str) -> String {
    format!("Name server: {name}: host name lookup failure")
}

/// A lookup that failed for now (SERVFAIL, a refusal, no answer), in sendmail's words:
/// `Name server: example.org: host name lookup failure`; the resolver's own account
/// goes to the log.
fn lookup_failure(domain: &str, why: &str) -> MxResult {
    log::info!("MX lookup for {domain}: {why}");
    MxResult::Temp(status::DIRECTORY_TEMP, lookup_failed(domain))
}

/// The names this host answers to, for the MX loop check: `host_name` (MAILNAME, `$j`),
/// the system's host name (gethostname(2)) and `localhost`.
pub fn own_names(host_name: &str) -> Vec<String> {
    let mut names = vec![host_name.to_string()];
    if let Ok(name) = nix::unistd::gethostname()
        && let Some(name) = name.to_str()
        && !name.is_empty()
    {
        names.push(name.to_string());
    }
    names.push("localhost".to_string());
    names
}

/// Whether an MX host name is one of `own`, compared as domain keys (case, a trailing
/// dot and the U-label or A-label form do not count).
fn is_own(host: &str, own: &[String]) -> bool {
    use rsendmail::message::address::domain_key;
    let h = domain_key(host.trim_end_matches('.'));
    own.iter().any(|o| domain_key(o.trim_end_matches('.')) == h)
}

/// sendmail's MX loop rule (`getmxrr`): when a record names this host, every record of
/// its preference or a worse (higher) one is dropped, since the mail would be handed to
/// this host or to a host that sends it here. False when that leaves none: this host is
/// the best MX, and the mail would loop.
pub fn drop_own(mx: &mut Vec<(u16, String)>, own: &[String]) -> bool {
    let Some(local) = mx
        .iter()
        .filter(|(_, h)| is_own(h, own))
        .map(|(p, _)| *p)
        .min()
    else {
        return true;
    };
    mx.retain(|(p, _)| *p < local);
    !mx.is_empty()
}

/// sendmail's words for an MX list whose best host is this one: `MX list for
/// loopdom.test. points back to vm.example.test` (the domain as sendmail canonifies it,
/// with its trailing dot; the host its `$j`, the first of `own`).
pub fn points_back(domain: &str, own: &[String]) -> String {
    format!(
        "MX list for {}. points back to {}",
        domain.trim_end_matches('.'),
        own.first().map(String::as_str).unwrap_or("localhost")
    )
}

pub use rsendmail::message::address::{ascii_address, ascii_domain};

/// Preference order; hosts of equal preference in random order (RFC 5321 §5.1).
pub fn order(mx: &mut [(u16, String)]) {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(1)
        | 1;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let keyed: Vec<(u16, u64, String)> = mx.iter().map(|(p, h)| (*p, rnd(), h.clone())).collect();
    let mut keyed = keyed;
    keyed.sort();
    for (slot, (p, _, h)) in mx.iter_mut().zip(keyed) {
        *slot = (p, h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_order_random_among_equals() {
        let mut seen_first = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut mx = vec![
                (20, "c".to_string()),
                (10, "a".into()),
                (10, "b".into()),
                (5, "z".into()),
            ];
            order(&mut mx);
            assert_eq!(mx[0].1, "z");
            assert_eq!(mx[3].1, "c");
            seen_first.insert(mx[1].1.clone());
            std::thread::sleep(Duration::from_micros(50));
        }
        assert_eq!(seen_first.len(), 2, "equal preferences never changed order");
    }

    #[test]
    fn mx_loop_rule_drops_own_preference_and_worse() {
        let own = vec!["vm.example.test".to_string(), "localhost".to_string()];
        let list = |v: &[(u16, &str)]| -> Vec<(u16, String)> {
            v.iter().map(|(p, h)| (*p, h.to_string())).collect()
        };
        // Best MX is this host: nothing left, the mail would loop.
        let mut mx = list(&[(10, "VM.example.test."), (20, "backup.example")]);
        assert!(!drop_own(&mut mx, &own));
        // This host a backup MX: only the better ones are kept.
        let mut mx = list(&[
            (5, "a.example"),
            (10, "b.example"),
            (10, "vm.example.test"),
            (20, "c.example"),
        ]);
        assert!(drop_own(&mut mx, &own));
        assert_eq!(mx, list(&[(5, "a.example")]));
        // Not named: all kept.
        let mut mx = list(&[(10, "a.example"), (20, "b.example")]);
        assert!(drop_own(&mut mx, &own));
        assert_eq!(mx.len(), 2);
        assert_eq!(
            points_back("loopdom.test", &own),
            "MX list for loopdom.test. points back to vm.example.test"
        );
    }

    #[test]
    fn u_label_domains_are_asked_as_a_labels() {
        assert_eq!(
            ascii_domain("bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(ascii_domain("Example.ORG").as_deref(), Some("Example.ORG"));
        assert_eq!(
            ascii_domain("bücher.example.").as_deref(),
            Some("xn--bcher-kva.example.")
        );
    }

    #[test]
    fn addresses_without_smtputf8() {
        assert_eq!(
            ascii_address("a@example.org").as_deref(),
            Some("a@example.org")
        );
        assert_eq!(
            ascii_address("c@bücher.example").as_deref(),
            Some("c@xn--bcher-kva.example")
        );
        assert_eq!(ascii_address("jörg@bücher.example"), None);
        assert_eq!(ascii_address("jörg@example.org"), None);
        assert_eq!(ascii_address("jörg"), None);
        assert_eq!(ascii_address(""), Some("".into()));
    }

    #[test]
    fn resolver_entries() {
        let ns = name_servers(&["127.0.0.1:5353".into(), "[::1]".into()]).unwrap();
        assert_eq!(ns.len(), 2);
        assert_eq!(ns[0].connections[0].port, 5353);
        assert_eq!(ns[1].connections[0].port, 53);
        assert!(name_servers(&["dns.example".into()]).is_err());
    }
}
