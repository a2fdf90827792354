//! The engine's settings: everything a delivery reads from the config and the typed
//! options, gathered once per process ([`Engine::from_setup`]).

use super::local;
use super::smtp::{Timeouts, TlsMode, TlsPolicy};
use rsendmail::app::Setup;
use rsendmail::config::{RelayRule, load_relay_table, parse_host_port};
use rsendmail::exit::Fatal;
use std::time::Duration;

/// How long an idle SMTP connection is kept for the next message when
/// `O ConnectionCacheTimeout=` is not given: 5 seconds, where sendmail keeps 5 minutes. A
/// deliverer here lives for one submission, one queue run or a runner's wake-up; messages
/// that follow each other come within milliseconds, and a server should not have to hold
/// a client's idle connection for minutes (Postfix's `smtp_connection_cache_time_limit`
/// is 2 seconds).
pub const CACHE_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings the engine reads, from the config and `-O` (sendmail's names where it has them).
#[derive(Debug)]
pub struct Engine {
    pub smarthost: Vec<(String, u16)>,
    /// Use PIPELINING when offered (`NOPIPELINING` turns it off).
    pub pipelining: bool,
    /// `O SmarthostSplit=N`: spread a run over the first N smarthosts.
    pub smarthost_split: usize,
    /// `O SortByDomain=`: each transaction's recipients in the order of their domains.
    pub sort_by_domain: bool,
    /// `O SmarthostRandom=`: the smarthosts in a random order for each transaction.
    pub smarthost_random: bool,
    /// RELAYTABLE entries, in file order.
    pub relay_table: Vec<RelayRule>,
    /// RESOLVER: name servers to ask instead of the system's.
    pub resolver: Vec<String>,
    /// `O MXPort=`: the port of MX hosts (25).
    pub mx_port: u16,
    /// `O Timeout.resolver.retrans=`: how long one DNS query may take (5s).
    pub dns_timeout: Duration,
    /// `O Timeout.resolver.retry=`: how many times a failed query is asked again (2).
    pub dns_retries: usize,
    pub null_client: bool,
    pub host_name: String,
    pub timeouts: Timeouts,
    pub retry_min: i64,
    pub retry_max: i64,
    pub queue_return: i64,
    pub max_connections: usize,
    pub max_background: usize,
    /// `O ConnectionCacheSize=`: idle SMTP connections kept for reuse (2, sendmail's
    /// default; 0 keeps none) ([`super::cache`]).
    pub cache_size: usize,
    /// `O ConnectionCacheTimeout=`: how long an idle connection is kept ([`CACHE_TIMEOUT`]
    /// unless given).
    pub cache_timeout: Duration,
    pub min_queue_age: i64,
    pub tls: TlsPolicy,
    /// dma's auth.conf entries, or why the file cannot be used.
    pub auth: Result<Vec<rsendmail::config::AuthEntry>, String>,
    /// Local delivery (mailboxes, commands, files, aliases, .forward).
    pub local: local::Local,
    /// `O MaxHopCount=`: more Received headers than this and the message bounces (25).
    pub max_hops: usize,
    /// `O Timeout.queuewarn=`: when a delay warning is sent (4h; 0 never).
    pub queue_warn: i64,
    /// `-oe<m>` / `O ErrorMode=`: what an interactive delivery does with a failure.
    pub error_mode: char,
    /// `O PrivacyOptions=nobodyreturn`: delivery reports return the header only.
    pub no_body_return: bool,
    /// `O PrivacyOptions=noactualrecipient`: delivery reports carry no
    /// `X-Actual-Recipient:`.
    pub no_actual_recipient: bool,
    /// `O PrivacyOptions=noreceipts`: no success reports (return receipts).
    pub no_receipts: bool,
    /// `FULLBOUNCE`: delivery reports return the whole message unless the sender asked
    /// for the header only (see `rsendmail::dsn::headers_only`).
    pub full_bounce: bool,
    /// Delivering in the foreground for the caller (`-odi`, `-v`): failures follow
    /// ErrorMode instead of always being mailed back.
    pub interactive: bool,
}

impl Engine {
    /// The engine's settings from the typed options (parsed, and refused when bad, by
    /// `rsendmail` before the message was taken) and the config. The files are read
    /// again here; one that changed since the submission's check fails the run, and the
    /// message stays queued.
    pub fn from_setup(s: &Setup) -> Result<Engine, Fatal> {
        let o = &s.settings;
        let t = &o.timeouts;
        let port = s.cfg.port.unwrap_or(25);
        let smarthost = s
            .cfg
            .smarthost
            .iter()
            .filter_map(|h| parse_host_port(h).map(|(host, p)| (host, p.unwrap_or(port))))
            .collect();
        let d = Timeouts::default();
        // A time option in seconds, at least 1 where it bounds a wait.
        let secs = |v: Option<u64>, default: Duration| -> Duration {
            Duration::from_secs(v.unwrap_or(default.as_secs()).max(1))
        };
        let time = |v: Option<u64>, default: i64| -> i64 { v.map_or(default, |n| n as i64) };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        // MAILNAME may name a file: read it once.
        let host_name = s.cfg.host_name();
        // -X: every session's traffic is appended to the file (`rsendmail::traffic`).
        if let Some(p) = &s.inv.traffic_log {
            rsendmail::traffic::install(rsendmail::traffic::open(p)?);
        }
        Ok(Engine {
            pipelining: !s.cfg.no_pipelining,
            smarthost_split: o.smarthost_split.unwrap_or(1),
            sort_by_domain: o.sort_by_domain.unwrap_or(false),
            smarthost_random: o.smarthost_random.unwrap_or(false),
            smarthost,
            resolver: s.cfg.resolver.clone(),
            mx_port: o.mx_port.unwrap_or(25),
            dns_timeout: secs(t.resolver_retrans, Duration::from_secs(5)),
            dns_retries: t.resolver_retry.unwrap_or(2),
            relay_table: match &s.cfg.relay_table {
                Some(p) => load_relay_table(p, port)?,
                None => Vec::new(),
            },
            null_client: s.cfg.null_client,
            host_name: host_name.clone(),
            timeouts: Timeouts {
                connect: secs(t.connect, d.connect),
                initial: secs(t.initial, d.initial),
                helo: secs(t.helo, d.helo),
                mail: secs(t.mail, d.mail),
                rcpt: secs(t.rcpt, d.rcpt),
                datainit: secs(t.datainit, d.datainit),
                datablock: secs(t.datablock, d.datablock),
                datafinal: secs(t.datafinal, d.datafinal),
                rset: secs(t.rset, d.rset),
                quit: secs(t.quit, d.quit),
            },
            retry_min: time(o.queue_retry_min, 300).max(1),
            retry_max: time(o.queue_retry_max, 4 * 3600).max(1),
            queue_return: time(t.queuereturn, 5 * 86400),
            max_connections: o.max_connections.unwrap_or(4).max(1),
            max_background: o.max_background_deliveries.unwrap_or(2 * cores).max(1),
            cache_size: o.connection_cache_size.unwrap_or(2),
            cache_timeout: o
                .connection_cache_timeout
                .map_or(CACHE_TIMEOUT, Duration::from_secs),
            min_queue_age: time(o.min_queue_age, 0),
            tls: TlsPolicy {
                mode: tls_mode(
                    s.cfg.secure_transfer,
                    s.cfg.starttls,
                    s.cfg.opportunistic_tls,
                ),
                // INSECURE turns the check off unless dma's VERIFYCERT asks for it.
                verify: !s.cfg.insecure || s.cfg.verify_cert,
                ca_file: o.ca_cert_file.clone(),
                fingerprint: s.cfg.fingerprint.clone(),
                client_cert: s.cfg.cert_file.clone(),
                plain_auth_ok: s.cfg.insecure,
            },
            auth: match &s.cfg.auth_path {
                Some(p) => rsendmail::config::load_auth(p).map_err(|f| f.message),
                None => Ok(Vec::new()),
            },
            local: local::Local {
                mail_spool: s.cfg.mail_spool.clone(),
                host: host_name,
                aliases_path: (!s.inv.no_alias).then(|| {
                    o.alias_file
                        .clone()
                        .unwrap_or_else(|| s.cfg.aliases.clone())
                }),
                aliases_loaded: Default::default(),
                default_user: local::default_user(o.default_user.as_deref()),
                lock_wait: secs(t.mboxlock, Duration::from_secs(60)),
                command_timeout: secs(t.command, Duration::from_secs(1000)),
                root: nix::unistd::geteuid().is_root(),
                uid: nix::unistd::getuid().as_raw(),
            },
            max_hops: o.max_hop_count.unwrap_or(25),
            queue_warn: time(t.queuewarn, 4 * 3600),
            error_mode: o.error_mode.unwrap_or('p'),
            no_body_return: o.privacy("nobodyreturn"),
            no_actual_recipient: o.privacy("noactualrecipient"),
            no_receipts: o.privacy("noreceipts"),
            full_bounce: s.cfg.full_bounce,
            interactive: false,
        })
    }

    /// The next try after `attempts` failed ones: 5 minutes, doubling, capped.
    pub fn backoff(&self, attempts: u32) -> i64 {
        let mut d = self.retry_min;
        for _ in 1..attempts.min(32) {
            d = d.saturating_mul(2);
            if d >= self.retry_max {
                break;
            }
        }
        d.min(self.retry_max)
    }

    /// Qualify an unqualified address with this host's mail name.
    pub fn qualify(&self, addr: &str) -> String {
        if addr.is_empty() || addr.contains('@') {
            addr.to_string()
        } else {
            format!("{addr}@{}", self.host_name)
        }
    }
}

/// The TLS mode dma's keywords ask for (dma's `net.c`): `SECURETRANSFER` without
/// `STARTTLS` is TLS from the first byte (SMTPS), whatever else is given (dma ignores
/// `OPPORTUNISTIC_TLS` there); `STARTTLS` requires STARTTLS, or with `OPPORTUNISTIC_TLS`
/// uses it when offered. Where dma needs `SECURETRANSFER` beside them and otherwise sends
/// in clear text, `STARTTLS` and `OPPORTUNISTIC_TLS` act alone here (DIFFERENCES.md).
pub fn tls_mode(secure_transfer: bool, starttls: bool, opportunistic: bool) -> TlsMode {
    if secure_transfer && !starttls {
        TlsMode::Implicit
    } else if opportunistic {
        TlsMode::Opportunistic
    } else if starttls {
        TlsMode::StartTls
    } else {
        TlsMode::Off
    }
}

/// An engine with the defaults, for unit tests (no files read).
#[cfg(test)]
pub fn for_tests() -> Engine {
    Engine {
        smarthost: vec![],
        relay_table: vec![],
        smarthost_split: 1,
        sort_by_domain: false,
        smarthost_random: false,
        pipelining: true,
        resolver: vec![],
        mx_port: 25,
        dns_timeout: Duration::from_secs(5),
        dns_retries: 2,
        null_client: false,
        host_name: "host.example".into(),
        timeouts: Timeouts::default(),
        retry_min: 300,
        retry_max: 4 * 3600,
        queue_return: 5 * 86400,
        max_connections: 4,
        max_background: 4,
        cache_size: 2,
        cache_timeout: CACHE_TIMEOUT,
        min_queue_age: 0,
        tls: TlsPolicy::default(),
        auth: Ok(Vec::new()),
        local: local::Local {
            mail_spool: "/nonexistent".into(),
            host: "host.example".into(),
            aliases_path: None,
            aliases_loaded: Default::default(),
            default_user: (65534, 65534),
            lock_wait: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            root: false,
            uid: 65534,
        },
        max_hops: 25,
        queue_warn: 4 * 3600,
        error_mode: 'p',
        no_body_return: false,
        no_actual_recipient: false,
        no_receipts: false,
        full_bounce: true,
        interactive: false,
    }
}
