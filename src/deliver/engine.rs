//! The engine's settings: everything a delivery reads from the config and the typed
//! options, gathered once per process ([`Engine::from_setup`]).

use super::local;
use super::smtp::{Timeouts, TlsMode, TlsPolicy};
use rsendmail::app::Setup;
use rsendmail::config::{RelayRule, load_relay_table, parse_host_port};
use rsendmail::exit::Fatal;
use rsendmail::options;
use std::time::Duration;

/// How long an idle SMTP connection is kept for the next message when
/// `O ConnectionCacheTimeout=` is not given ([`options::CONNECTION_CACHE_TIMEOUT`]).
pub const CACHE_TIMEOUT: Duration = Duration::from_secs(options::CONNECTION_CACHE_TIMEOUT);

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
    /// `O QueueRetryLocal=`: the back-off of the local recipients of an entry whose
    /// remote recipients are still open (`State::local_next_attempt`), at least 1 second.
    pub retry_local: i64,
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
    /// `O QueueSortOrder=`: the order of a queue run.
    pub queue_sort_order: rsendmail::options::QueueSortOrder,
    /// `O MaxQueueRunSize=`: a queue run tries at most this many entries (0: all).
    pub max_queue_run: usize,
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
    /// The submission already saved the message in the sender's `~/dead.letter`
    /// (ErrorMode p, recipients refused there): the delivery's own failures do not save
    /// it again, as sendmail saves a message once however its recipients failed.
    pub dead_letter_saved: bool,
}

impl Engine {
    /// The engine's settings from the typed options (parsed, and refused when bad, by
    /// `rsendmail` before the message was taken) and the config. The files are read
    /// again here; one that changed since the submission's check fails the run, and the
    /// message stays queued.
    pub fn from_setup(s: &Setup) -> Result<Engine, Fatal> {
        // Nothing is read for routing, nor written, from a file someone root does not
        // trust could change.
        s.cfg
            .check_trust(&s.settings, rsendmail::app::maillog_group(s))?;
        // Every value from the settings in force over the built-in ones: the one
        // source `rsendmail-admin config` shows its defaults from.
        let o = &s.settings.effective();
        let t = &o.timeouts;
        let port = s.cfg.port.unwrap_or(25);
        let smarthost = s
            .cfg
            .smarthost
            .iter()
            .filter_map(|h| parse_host_port(h).map(|(host, p)| (host, p.unwrap_or(port))))
            .collect();
        // A time option in seconds, at least 1 where it bounds a wait.
        let secs = |v: Option<u64>| Duration::from_secs(v.unwrap_or_default().max(1));
        let time = |v: Option<u64>| v.unwrap_or_default() as i64;
        // MAILNAME may name a file: read it once.
        let host_name = s.cfg.host_name();
        // -X: every session's traffic is appended to the file (`rsendmail::traffic`).
        if let Some(p) = &s.inv.traffic_log {
            rsendmail::traffic::install(rsendmail::traffic::open(p)?);
        }
        Ok(Engine {
            pipelining: !s.cfg.no_pipelining,
            smarthost_split: o.smarthost_split.unwrap_or_default(),
            sort_by_domain: o.sort_by_domain.unwrap_or_default(),
            smarthost_random: o.smarthost_random.unwrap_or_default(),
            smarthost,
            resolver: s.cfg.resolver.clone(),
            mx_port: o.mx_port.unwrap_or_default(),
            dns_timeout: secs(t.resolver_retrans),
            dns_retries: t.resolver_retry.unwrap_or_default(),
            relay_table: match &s.cfg.relay_table {
                Some(p) => load_relay_table(p, port)?,
                None => Vec::new(),
            },
            null_client: s.cfg.null_client,
            host_name: host_name.clone(),
            timeouts: Timeouts::of(t),
            retry_min: time(o.queue_retry_min).max(1),
            retry_max: time(o.queue_retry_max).max(1),
            retry_local: time(o.queue_retry_local).max(1),
            queue_return: time(t.queuereturn),
            max_connections: o.max_connections.unwrap_or_default().max(1),
            max_background: o.max_background_deliveries.unwrap_or_default().max(1),
            cache_size: o.connection_cache_size.unwrap_or_default(),
            cache_timeout: o
                .connection_cache_timeout
                .map_or(CACHE_TIMEOUT, Duration::from_secs),
            min_queue_age: time(o.min_queue_age),
            queue_sort_order: o
                .queue_sort_order
                .unwrap_or(rsendmail::options::QueueSortOrder::Priority),
            max_queue_run: o.max_queue_run_size.unwrap_or_default(),
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
                lock_wait: secs(t.mboxlock),
                command_timeout: secs(
                    s.settings
                        .timeouts
                        .command
                        .or(Some(options::LOCAL_COMMAND_TIMEOUT)),
                ),
                root: nix::unistd::geteuid().is_root(),
                uid: nix::unistd::getuid().as_raw(),
            },
            max_hops: o.max_hop_count.unwrap_or_default(),
            queue_warn: time(t.queuewarn),
            error_mode: o.error_mode.unwrap_or('p'),
            no_body_return: o.privacy("nobodyreturn"),
            no_actual_recipient: o.privacy("noactualrecipient"),
            no_receipts: o.privacy("noreceipts"),
            full_bounce: s.cfg.full_bounce,
            interactive: false,
            dead_letter_saved: false,
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
        timeouts: Timeouts::of(&options::Settings::builtin().timeouts),
        retry_min: 300,
        retry_max: 4 * 3600,
        retry_local: 60,
        queue_return: 5 * 86400,
        max_connections: 4,
        max_background: 4,
        cache_size: 2,
        cache_timeout: CACHE_TIMEOUT,
        min_queue_age: 0,
        queue_sort_order: rsendmail::options::QueueSortOrder::Priority,
        max_queue_run: 0,
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
        dead_letter_saved: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsendmail::options::{Builtin, Settings, builtin_default, lookup_long};

    /// The value `rsendmail-admin config` shows as an option's default, read back as
    /// the option's parser reads `O NAME=VALUE`: the typed setting.
    fn shown(name: &str) -> Settings {
        let Some(Builtin::Value(text, _)) = builtin_default(name) else {
            panic!("{name}: no built-in value shown");
        };
        let r = lookup_long(name).unwrap();
        let mut s = Settings::default();
        s.apply(r.def, r.sub.as_deref(), &text).unwrap();
        s
    }

    /// What `rsendmail-admin config` shows as each default is what a deliverer with no
    /// option set uses: the engine made from a real setup (a config without `O` lines)
    /// against the text shown, parsed back.
    #[test]
    fn the_defaults_config_shows_are_the_ones_the_engine_uses() {
        let dir = std::env::temp_dir().join(format!("rsendmail-engine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("rsendmail.conf");
        std::fs::write(
            &conf,
            format!("SPOOLDIR {}\nMAILNAME host.example\n", dir.display()),
        )
        .unwrap();
        let s = rsendmail::app::setup(vec!["sendmail".into(), "-C".into(), conf.into()]).unwrap();
        let e = Engine::from_setup(&s).unwrap();
        let secs = |name: &str, pick: fn(&options::Timeouts) -> Option<u64>| {
            Duration::from_secs(pick(&shown(name).timeouts).unwrap())
        };
        let t = &e.timeouts;
        let cases = [
            (
                "Timeout.connect",
                t.connect,
                secs("Timeout.connect", |t| t.connect),
            ),
            (
                "Timeout.initial",
                t.initial,
                secs("Timeout.initial", |t| t.initial),
            ),
            ("Timeout.helo", t.helo, secs("Timeout.helo", |t| t.helo)),
            ("Timeout.mail", t.mail, secs("Timeout.mail", |t| t.mail)),
            ("Timeout.rcpt", t.rcpt, secs("Timeout.rcpt", |t| t.rcpt)),
            (
                "Timeout.datainit",
                t.datainit,
                secs("Timeout.datainit", |t| t.datainit),
            ),
            (
                "Timeout.datablock",
                t.datablock,
                secs("Timeout.datablock", |t| t.datablock),
            ),
            (
                "Timeout.datafinal",
                t.datafinal,
                secs("Timeout.datafinal", |t| t.datafinal),
            ),
            ("Timeout.rset", t.rset, secs("Timeout.rset", |t| t.rset)),
            ("Timeout.quit", t.quit, secs("Timeout.quit", |t| t.quit)),
            (
                "Timeout.resolver.retrans",
                e.dns_timeout,
                secs("Timeout.resolver.retrans", |t| t.resolver_retrans),
            ),
            (
                "Timeout.mboxlock",
                e.local.lock_wait,
                secs("Timeout.mboxlock", |t| t.mboxlock),
            ),
            ("ConnectionCacheTimeout", e.cache_timeout, {
                Duration::from_secs(
                    shown("ConnectionCacheTimeout")
                        .connection_cache_timeout
                        .unwrap(),
                )
            }),
        ];
        for (name, used, default_shown) in cases {
            assert_eq!(used, default_shown, "{name}");
        }
        let n = |v: Option<u64>| v.unwrap() as i64;
        assert_eq!(
            e.queue_return,
            n(shown("Timeout.queuereturn").timeouts.queuereturn)
        );
        assert_eq!(
            e.queue_warn,
            n(shown("Timeout.queuewarn").timeouts.queuewarn)
        );
        assert_eq!(e.retry_min, n(shown("QueueRetryMin").queue_retry_min));
        assert_eq!(e.retry_local, n(shown("QueueRetryLocal").queue_retry_local));
        assert_eq!(e.retry_max, n(shown("QueueRetryMax").queue_retry_max));
        assert_eq!(e.min_queue_age, n(shown("MinQueueAge").min_queue_age));
        assert_eq!(
            e.dns_retries,
            shown("Timeout.resolver.retry")
                .timeouts
                .resolver_retry
                .unwrap()
        );
        assert_eq!(e.max_hops, shown("MaxHopCount").max_hop_count.unwrap());
        assert_eq!(
            e.max_connections,
            shown("MaxConnections").max_connections.unwrap()
        );
        assert_eq!(
            e.max_background,
            shown("MaxBackgroundDeliveries")
                .max_background_deliveries
                .unwrap()
        );
        assert_eq!(
            e.cache_size,
            shown("ConnectionCacheSize").connection_cache_size.unwrap()
        );
        assert_eq!(
            e.smarthost_split,
            shown("SmarthostSplit").smarthost_split.unwrap()
        );
        assert_eq!(e.mx_port, shown("MXPort").mx_port.unwrap());
        assert_eq!(
            e.sort_by_domain,
            shown("SortByDomain").sort_by_domain.unwrap()
        );
        assert_eq!(
            e.smarthost_random,
            shown("SmarthostRandom").smarthost_random.unwrap()
        );
        assert_eq!(e.error_mode, shown("ErrorMode").error_mode.unwrap());
        // The local delivery command's own bound, which the shown note names.
        assert_eq!(
            e.local.command_timeout.as_secs(),
            options::LOCAL_COMMAND_TIMEOUT
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
