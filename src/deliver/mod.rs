//! rsendmail-deliver: the delivery engine (compiled into this binary only, so that TLS and
//! DNS code never reaches `rsendmail`).
//!
//! It is started three ways:
//! - `rsendmail-deliver --entry ID -- <sendmail argv>`: interactive delivery of one entry
//!   (exec'd by `rsendmail -odi`/`-v`), exit status as sendmail's;
//! - `rsendmail-deliver --entry ID --background -- <sendmail argv>`: the same after the
//!   background fork, when one of `O MaxBackgroundDeliveries=` slots is free;
//! - `rsendmail-deliver <sendmail argv with -q...>`: a queue run (exec'd by `rsendmail -q`).
//!
//! What is delivered where (this version): every remote recipient through `SMARTHOST`;
//! recipients for MX delivery and local recipients stay queued with a reason saying so.
//! Each recipient's outcome is recorded durably as soon as its transaction ends: when every
//! recipient is final the entry is removed (unlink, directory fsync), which is the record;
//! otherwise the state file is replaced (write, fsync, rename, directory fsync). The one
//! duplicate window: the server accepted the message (250 after the final dot) and we die
//! before that record is on disk — one unlink, or one state-file write, wide.
//!
//! Queue entries may be damaged or hostile: their text is parsed by the library
//! (`rsendmail::spool::entry`), and the numbers taken from them (times, counts, sizes)
//! are combined here with saturating arithmetic, so that no value in a queue file makes
//! a run panic. Text is never cut by byte index (the lint below keeps it so); the
//! recipient tables indexed here are built from the entry's own recipient list.

#![deny(clippy::string_slice)]

pub mod dns;
pub mod local;
pub mod reply;
pub mod serve;
pub mod smtp;

use rsendmail::app::{self, Setup};
use rsendmail::cli::QueueRunArgs;
use rsendmail::clock;
use rsendmail::config::{RelayRule, load_relay_table, parse_host_port};
use rsendmail::dsn;
use rsendmail::exit::{Fatal, Sysexit};
use rsendmail::message::address::domain_of;
use rsendmail::privs;
use rsendmail::queue;
use rsendmail::spool::entry::{RcptState, State};
use rsendmail::spool::{LockedEntry, Spool};
use smtp::{Credentials, Outcome, Session, Timeouts, TlsMode, TlsPolicy, Transcript};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{Seek, SeekFrom};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Settings the engine reads, from the config and `-O` (sendmail's names where it has them).
#[derive(Debug)]
pub struct Engine {
    pub smarthost: Vec<(String, u16)>,
    /// Use PIPELINING when offered (`NOPIPELINING` turns it off).
    pub pipelining: bool,
    /// `O SmarthostSplit=N`: spread a run over the first N smarthosts.
    pub smarthost_split: usize,
    /// `-X file`: the traffic log every session's transcript is appended to.
    pub traffic_log: Option<Mutex<std::fs::File>>,
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
        Ok(Engine {
            pipelining: !s.cfg.no_pipelining,
            smarthost_split: o.smarthost_split.unwrap_or(1),
            smarthost,
            traffic_log: match &s.inv.traffic_log {
                None => None,
                Some(p) => Some(Mutex::new(app::open_traffic_log(p)?)),
            },
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
            min_queue_age: time(o.min_queue_age, 0),
            tls: TlsPolicy {
                mode: if s.cfg.opportunistic_tls {
                    TlsMode::Opportunistic
                } else if s.cfg.starttls {
                    TlsMode::StartTls
                } else if s.cfg.secure_transfer {
                    TlsMode::Implicit
                } else {
                    TlsMode::Off
                },
                verify: !s.cfg.insecure,
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

/// The relay for a domain: an exact entry, else the nearest `.parent` entry, else `*`.
#[deny(clippy::indexing_slicing)]
pub fn relay_for<'a>(table: &'a [RelayRule], domain: &str) -> Option<&'a RelayRule> {
    let d = domain.to_ascii_lowercase();
    if let Some(r) = table.iter().find(|r| r.pattern == d) {
        return Some(r);
    }
    let mut rest = d.as_str();
    while let Some((_, after)) = rest.split_once('.') {
        // `.after` is the parent's pattern.
        if let Some(r) = table
            .iter()
            .find(|r| r.pattern.strip_prefix('.') == Some(after))
        {
            return Some(r);
        }
        rest = after;
    }
    table.iter().find(|r| r.pattern == "*")
}

/// Where a recipient goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Through these relays, tried in order (the relay table's entry, or SMARTHOST).
    Relay(Vec<(String, u16)>),
    /// To the MX hosts of the domain (not in this version).
    Mx(String),
    /// A local mailbox (not in this version).
    Local,
}

pub fn route(engine: &Engine, addr: &str) -> Route {
    let to_smarthost = engine.null_client && !engine.smarthost.is_empty();
    if rsendmail::message::address::is_local(addr, &engine.host_name, to_smarthost) {
        return Route::Local;
    }
    let domain = domain_of(addr);
    if let Some(d) = &domain
        && let Some(r) = relay_for(&engine.relay_table, d)
    {
        return Route::Relay(vec![(r.host.clone(), r.port)]);
    }
    if !engine.smarthost.is_empty() {
        return Route::Relay(engine.smarthost.clone());
    }
    Route::Mx(domain.unwrap_or_default())
}

/// A relay: its hosts, tried in order.
type Relay = Vec<(String, u16)>;

/// One worker's connections, by relay.
type Conns = std::collections::HashMap<Relay, Conn>;

/// A connection kept across the entries of one worker.
#[derive(Default)]
struct Conn {
    session: Option<Session>,
    /// The relay could not be reached in this run: the reply to give without retrying.
    dead: Option<reply::Reply>,
}

impl Conn {
    /// `mx`: the targets are MX hosts, not relays: TLS is opportunistic and unverified
    /// (as most MTAs do between MX hosts), and no AUTH is offered to them.
    fn get(
        &mut self,
        engine: &Engine,
        targets: &[(String, u16)],
        mx: bool,
        out: &mut Transcript<'_>,
        label: &str,
    ) -> Result<&mut Session, reply::Reply> {
        if let Some(r) = &self.dead {
            return Err(r.clone());
        }
        if self.session.as_ref().is_some_and(|s| !s.is_usable())
            && let Some(s) = self.session.take()
        {
            s.close(out);
        }
        if self.session.is_none() {
            let mut last = reply::Reply::local(451, "4.4.1 no smarthost configured");
            let none = Vec::new();
            let auth = match &engine.auth {
                _ if mx => &none,
                Ok(a) => a,
                Err(why) => {
                    let r = reply::Reply::local(451, format!("4.7.0 {why}"));
                    self.dead = Some(r.clone());
                    return Err(r);
                }
            };
            for (host, port) in targets {
                let creds = auth
                    .iter()
                    .find(|a| {
                        a.host.eq_ignore_ascii_case(
                            host.trim_start_matches('[').trim_end_matches(']'),
                        )
                    })
                    .map(|a| Credentials {
                        user: a.user.clone(),
                        password: a.password.clone(),
                    });
                let mx_tls = TlsPolicy {
                    mode: TlsMode::Opportunistic,
                    verify: false,
                    ..TlsPolicy::default()
                };
                match Session::open(
                    host,
                    *port,
                    &engine.host_name,
                    &engine.timeouts,
                    if mx { &mx_tls } else { &engine.tls },
                    creds.as_ref(),
                    out,
                    label,
                    if mx { "esmtp" } else { "relay" },
                ) {
                    Ok(mut s) => {
                        s.caps.pipelining &= engine.pipelining;
                        self.session = Some(s);
                        break;
                    }
                    Err(r) => last = r,
                }
            }
            if self.session.is_none() {
                // A permanent greeting refusal is still only a deferral for the message.
                let r = if last.is_permanent() {
                    reply::Reply::local(451, format!("4.4.0 {}", last.summary()))
                } else {
                    last
                };
                self.dead = Some(r.clone());
                return Err(r);
            }
        }
        self.session
            .as_mut()
            .ok_or_else(|| reply::Reply::local(451, "4.4.1 no session"))
    }

    fn close(&mut self, out: &mut Transcript<'_>) {
        if let Some(s) = self.session.take() {
            s.close(out);
        }
    }
}

/// What one attempt at one entry did.
#[derive(Debug, Default)]
pub struct Attempt {
    pub delivered: usize,
    pub deferred: usize,
    pub failed_rcpt: usize,
    pub failed_data: usize,
    /// Recipients whose domain does not exist or takes no mail.
    pub failed_host: usize,
    pub removed: bool,
    /// Entries this attempt queued (expansions, delivery reports), to deliver next.
    pub new_entries: Vec<String>,
}

fn hms(secs: i64) -> String {
    let s = secs.max(0);
    if s >= 86400 {
        format!(
            "{}+{:02}:{:02}:{:02}",
            s / 86400,
            s % 86400 / 3600,
            s % 3600 / 60,
            s % 60
        )
    } else {
        format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    }
}

fn stat_text(o: &Outcome) -> String {
    match o {
        Outcome::Delivered(r) => format!("Sent ({})", r.text_without_enhanced()),
        Outcome::TempFail(r) => format!("Deferred: {}", r.summary()),
        Outcome::PermFail(r) => r.summary(),
    }
}

/// A group of recipients sent in one transaction: the relay, and the envelope sender
/// when it is a recipient's own (`owner-list`).
type GroupKey = (Relay, Option<String>);

/// Put recipient `i` with the others going to the same relay with the same sender
/// (groups and members in first appearance order; see `send_order`).
fn add_to_group(groups: &mut Vec<(GroupKey, Vec<usize>)>, key: GroupKey, i: usize) {
    match groups.iter_mut().find(|(t, _)| *t == key) {
        Some((_, v)) => v.push(i),
        None => groups.push((key, vec![i])),
    }
}

/// Within each group the recipients in reverse queue order: the order in which
/// sendmail 8.17 sends its RCPTs (it chains them by prepending; recorded in
/// compat-tests, `deliver-mixed-recipients`).
fn send_order(mut groups: Vec<(GroupKey, Vec<usize>)>) -> Vec<(GroupKey, Vec<usize>)> {
    for (_, v) in &mut groups {
        v.reverse();
    }
    groups
}

/// Count the Received fields of a header block.
#[deny(clippy::indexing_slicing)]
fn received_count(header: &[u8]) -> usize {
    header
        .split(|&b| b == b'\n')
        .filter(|l| {
            l.get(..9)
                .is_some_and(|n| n.eq_ignore_ascii_case(b"received:"))
        })
        .count()
}

/// What one worker thread keeps between entries.
struct Worker {
    conns: Conns,
    /// The resolver, made on the first MX lookup.
    dns: Option<Result<dns::Dns, String>>,
    index: usize,
}

/// Delivery reports owed, grouped by kind and return address.
type ReportGroups = Vec<((dsn::Kind, Option<String>), Vec<dsn::RcptReport>)>;

/// Try one locked entry once.
fn attempt(
    engine: &Engine,
    spool: &Spool,
    locked: &mut LockedEntry,
    w: &mut Worker,
    out: &mut Transcript<'_>,
) -> Result<Attempt, Fatal> {
    let Worker {
        conns,
        dns,
        index: worker,
    } = w;
    let worker = *worker;
    let now = clock::now();
    let started = std::time::Instant::now();
    let env = locked.entry.envelope.clone();
    let mut result = Attempt::default();
    let open: Vec<usize> = (0..env.recipients.len())
        .filter(|&i| !locked.entry.state.of(i).is_final())
        .collect();
    // (recipient, outcome, mailer, relay as logged)
    let mut outcomes: Vec<(usize, Outcome, &str, String)> = Vec::new();
    // Recipients by relay (or MX host list) and sender, in the order they first appear.
    let mut groups: Vec<(GroupKey, Vec<usize>)> = Vec::new();
    let mut mx_cache: std::collections::HashMap<String, dns::MxResult> = Default::default();
    let mut mx_targets: std::collections::HashSet<Relay> = Default::default();
    let mut locals: Vec<usize> = Vec::new();
    // Recipients whose DSN request went on to a server that supports DSN: it reports.
    let mut dsn_passed: std::collections::HashSet<usize> = Default::default();
    // The message (header block and body) and its length, for every transport.
    let open_message = || -> std::io::Result<(std::fs::File, u64)> {
        let mut f = locked.entry.file.try_clone()?;
        f.seek(SeekFrom::Start(locked.entry.data_offset))?;
        Ok((
            f,
            locked.entry.size.saturating_sub(locked.entry.data_offset),
        ))
    };
    let qf_error = |e: std::io::Error| Fatal::new(Sysexit::IoErr, format!("qf{}: {e}", env.id));
    // A message that has passed too many hosts is looping: it bounces (sendmail's
    // MaxHopCount; RFC 5321 6.3).
    let hops = {
        let mut head = vec![0u8; env.header_bytes.min(1 << 20) as usize];
        let (mut f, _) = open_message().map_err(qf_error)?;
        let _ = std::io::Read::read_exact(&mut f, &mut head);
        received_count(&head)
    };
    // Our own Received field (the top one) is not a hop the message made before us:
    // sendmail counts the fields it was given.
    let hops = hops.saturating_sub(1);
    let too_many_hops = engine.max_hops > 0 && hops > engine.max_hops;
    let sender_of = |i: usize| -> Option<String> { env.recipients[i].sender.clone() };
    for &i in &open {
        if too_many_hops {
            outcomes.push((
                i,
                Outcome::PermFail(reply::Reply::local(
                    554,
                    format!("5.4.6 Too many hops {hops} ({} max)", engine.max_hops),
                )),
                "local",
                String::new(),
            ));
            continue;
        }
        match route(engine, &env.recipients[i].address) {
            Route::Relay(mut targets) => {
                // O SmarthostSplit=N: worker k starts at smarthost k mod N (the others
                // remain its fall-backs), so a run's mail is spread over N relays.
                if engine.smarthost_split > 1 && targets == engine.smarthost {
                    let n = engine.smarthost_split.min(targets.len());
                    targets.rotate_left(worker % n);
                }
                add_to_group(&mut groups, (targets, sender_of(i)), i);
            }
            Route::Mx(d) => {
                // The resolver (and its runtime) is made on the first MX lookup only.
                let resolved = match mx_cache.get(&d) {
                    Some(r) => r.clone(),
                    None => {
                        let r = match dns.get_or_insert_with(|| {
                            dns::Dns::new(&engine.resolver, engine.dns_timeout, engine.dns_retries)
                        }) {
                            Ok(d2) => d2.mx(&d),
                            Err(e) => dns::MxResult::Temp(format!("4.4.3 {e}")),
                        };
                        mx_cache.insert(d.clone(), r.clone());
                        r
                    }
                };
                match resolved {
                    dns::MxResult::Hosts(hosts) => {
                        let targets: Relay = hosts
                            .iter()
                            .flat_map(|(_, addrs)| {
                                addrs.iter().map(|a| (a.to_string(), engine.mx_port))
                            })
                            .collect();
                        mx_targets.insert(targets.clone());
                        add_to_group(&mut groups, (targets, sender_of(i)), i);
                    }
                    dns::MxResult::NoHost(text) => {
                        result.failed_host += 1;
                        outcomes.push((
                            i,
                            Outcome::PermFail(reply::Reply::local(550, text)),
                            "esmtp",
                            d,
                        ));
                    }
                    dns::MxResult::Temp(text) => {
                        outcomes.push((
                            i,
                            Outcome::TempFail(reply::Reply::local(451, text)),
                            "esmtp",
                            d,
                        ));
                    }
                }
            }
            Route::Local => locals.push(i),
        }
    }
    for ((targets, own_sender), relay) in send_order(groups) {
        let conn = conns.entry(targets.clone()).or_default();
        let label: Vec<&str> = relay
            .iter()
            .map(|&i| env.recipients[i].address.as_str())
            .collect();
        let label = label.join(",");
        let is_mx = mx_targets.contains(&targets);
        let mailer = if is_mx { "esmtp" } else { "relay" };
        match conn.get(engine, &targets, is_mx, out, &label) {
            Err(r) => {
                let name = targets.first().map(|h| h.0.clone()).unwrap_or_default();
                for &i in &relay {
                    outcomes.push((i, Outcome::TempFail(r.clone()), mailer, name.clone()));
                }
            }
            Ok(session) => {
                let relay_name = format!("{} [{}]", session.host, session.peer.ip());
                let (mut file, _) = open_message().map_err(qf_error)?;
                let sender = engine.qualify(own_sender.as_deref().unwrap_or(&env.sender));
                let addrs: Vec<String> = relay
                    .iter()
                    .map(|&i| engine.qualify(&env.recipients[i].address))
                    .collect();
                let mut msg = smtp::Outgoing {
                    sender: &sender,
                    recipients: relay
                        .iter()
                        .zip(&addrs)
                        .map(|(&i, a)| smtp::OutRcpt {
                            address: a,
                            notify: env.recipients[i].notify.as_deref(),
                            orcpt: env.recipients[i].orcpt.as_deref(),
                        })
                        .collect(),
                    data: &mut file,
                    body: env.body_type.as_deref(),
                    ret: env.ret.as_deref(),
                    envid: env.envid.as_deref(),
                };
                let res = session.send(&mut msg, out);
                // sendmail -v: one line for the recipients that share an outcome.
                if let Some(w) = out.as_deref_mut() {
                    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
                    for (k, o) in res.iter().enumerate() {
                        let t = stat_text(o);
                        match groups.iter_mut().find(|(g, _)| *g == t) {
                            Some((_, v)) => v.push(&addrs[k]),
                            None => groups.push((t, vec![&addrs[k]])),
                        }
                    }
                    for (t, v) in groups {
                        let _ = writeln!(w, "{}... {t}", v.join(","));
                    }
                }
                if session.data_refused {
                    result.failed_data += 1;
                }
                if session.caps.dsn {
                    dsn_passed.extend(relay.iter().copied());
                }
                for (k, o) in res.into_iter().enumerate() {
                    outcomes.push((relay[k], o, mailer, relay_name.clone()));
                }
            }
        }
    }
    // Local recipients, one at a time (each in a child with the target's privileges).
    let is_local = |a: &str| route(engine, a) == Route::Local;
    // Targets an expansion refused: failed at once, reported with the others below.
    let mut refused: Vec<local::Refused> = Vec::new();
    for i in locals {
        let r = &env.recipients[i];
        let sender = engine.qualify(r.sender.as_deref().unwrap_or(&env.sender));
        if let Some(w) = out.as_deref_mut() {
            let _ = writeln!(w, "{}... Connecting to local...", r.address);
        }
        let refused_before = refused.len();
        let o = match engine
            .local
            .deliver(&env, r, &is_local, &open_message, &sender)
        {
            local::LocalOutcome::Delivered(text) => {
                Outcome::Delivered(reply::Reply::local(250, format!("2.0.0 {text}")))
            }
            local::LocalOutcome::Temp(code, text) => {
                Outcome::TempFail(reply::Reply::local(code, text))
            }
            local::LocalOutcome::Perm(code, text) => {
                Outcome::PermFail(reply::Reply::local(code, text))
            }
            local::LocalOutcome::Expanded(list, failed, text) => {
                let queued = if list.is_empty() {
                    Ok(text)
                } else if env.expansions as usize >= rsendmail::aliases::MAX_DEPTH {
                    // `.forward` files that forward to each other: the message has been
                    // re-queued as often as aliases may nest.
                    Err(Outcome::PermFail(reply::Reply::local(
                        554,
                        format!("5.4.6 {}... aliasing/forwarding loop broken", r.address),
                    )))
                } else {
                    match queue_expansion(spool, &env, list, &open_message) {
                        Ok(id) => {
                            result.new_entries.push(id.clone());
                            Ok(format!("{text}, queued as {id}"))
                        }
                        Err(e) => Err(Outcome::TempFail(reply::Reply::local(
                            451,
                            format!("4.3.0 {}", e.message),
                        ))),
                    }
                };
                match queued {
                    Ok(text) => {
                        refused.extend(failed);
                        Outcome::Delivered(reply::Reply::local(250, format!("2.0.0 {text}")))
                    }
                    Err(o) => o,
                }
            }
        };
        if let Some(w) = out.as_deref_mut() {
            let _ = writeln!(w, "{}... {}", r.address, stat_text(&o));
            for f in refused.iter().skip(refused_before) {
                let _ = writeln!(w, "{}... {} {}", f.recipient.address, f.code, f.text);
            }
        }
        outcomes.push((i, o, "local", String::new()));
    }
    let xdelay = started.elapsed().as_secs() as i64;
    // Merge into the entry's state.
    let mut state: State = locked.entry.state.clone();
    state.attempts = state.attempts.saturating_add(1);
    state.last_attempt = Some(now);
    // How long the message has been queued (a creation time from a damaged entry may be
    // anything: the difference saturates).
    let age = now.saturating_sub(env.created);
    let expired = engine.queue_return > 0 && age >= engine.queue_return;
    let mut first_deferral: Option<String> = None;
    let mut to_report: Vec<ReportItem> = Vec::new();
    for (i, o, mailer, relay_name) in &outcomes {
        let addr = &env.recipients[*i].address;
        let (st, why) = match o {
            Outcome::Delivered(r) => {
                result.delivered += 1;
                (RcptState::Delivered, r.summary())
            }
            Outcome::PermFail(r) => {
                result.failed_rcpt += 1;
                (RcptState::Failed, r.summary())
            }
            Outcome::TempFail(r) if expired => {
                result.failed_rcpt += 1;
                (
                    RcptState::Failed,
                    format!(
                        "{} (message expired: could not be delivered for {})",
                        r.summary(),
                        hms(engine.queue_return)
                    ),
                )
            }
            Outcome::TempFail(r) => {
                result.deferred += 1;
                first_deferral.get_or_insert_with(|| format!("Deferred: {}", r.summary()));
                (RcptState::Deferred, r.summary())
            }
        };
        let dsn = o.reply().enhanced().unwrap_or_else(|| match st {
            RcptState::Delivered => "2.0.0".into(),
            RcptState::Failed => "5.0.0".into(),
            _ => "4.0.0".into(),
        });
        let line = format!(
            "{}: to=<{}>, delay={}, xdelay={}, mailer={mailer}, pri={}, relay={}, dsn={dsn}, stat={}",
            env.id,
            addr,
            hms(age),
            hms(xdelay),
            locked
                .entry
                .size
                .saturating_add(30000 * open.len() as u64)
                .saturating_add(90000 * u64::from(state.attempts)),
            if relay_name.is_empty() {
                "local"
            } else {
                &relay_name
            },
            if expired && matches!(o, Outcome::TempFail(_)) {
                format!("{} (expired)", stat_text(o))
            } else {
                stat_text(o)
            }
        );
        log::info!("{line}");
        let remote = if relay_name.is_empty() {
            String::new()
        } else {
            relay_name.split(' ').next().unwrap_or_default().to_string()
        };
        let item = |kind, action| ReportItem {
            rcpt: env.recipients[*i].clone(),
            kind,
            action,
            why: why.clone(),
            reply: (!remote.is_empty()).then(|| o.reply().clone()),
            remote: remote.clone(),
        };
        match st {
            RcptState::Failed => to_report.push(item(dsn::Kind::Failure, "failed")),
            RcptState::Delivered if !dsn_passed.contains(i) => {
                let action = if *mailer == "local" {
                    if why.contains("expanded by") {
                        "expanded"
                    } else {
                        "delivered"
                    }
                } else {
                    "relayed"
                };
                to_report.push(item(dsn::Kind::Success, action))
            }
            RcptState::Deferred
                if engine.queue_warn > 0 && !state.warned && age >= engine.queue_warn =>
            {
                to_report.push(item(dsn::Kind::Delay, "delayed"))
            }
            _ => {}
        }
        state.recipients.retain(|(idx, _, _)| idx != i);
        state.recipients.push((*i, st, Some(why)));
    }
    // The targets an expansion refused are not recipients of this entry: their failure
    // is recorded by their report, queued with the others before the state is written
    // (the entry's recipient that led to them is final only then).
    for f in refused {
        result.failed_rcpt += 1;
        let why = format!("{} {}", f.code, f.text);
        let dsn = dsn::status_of(&f.text, true);
        log::info!(
            "{}: to=<{}>, delay={}, xdelay={}, mailer=local, relay=local, dsn={dsn}, stat={why}",
            env.id,
            f.recipient.address,
            hms(age),
            hms(xdelay),
        );
        to_report.push(ReportItem {
            rcpt: f.recipient,
            kind: dsn::Kind::Failure,
            action: "failed",
            why,
            reply: None,
            remote: String::new(),
        });
    }
    if to_report.iter().any(|r| r.kind == dsn::Kind::Delay) {
        state.warned = true;
    }
    let reports = send_reports(engine, spool, &env, to_report, &open_message, now);
    result.new_entries.extend(reports);
    state.recipients.sort_by_key(|(i, _, _)| *i);
    state.reason = first_deferral;
    state.next_attempt = Some(now.saturating_add(engine.backoff(state.attempts)));
    let all_final = (0..env.recipients.len()).all(|i| state.of(i).is_final());
    if all_final {
        // Removing the entry is the durable record that every recipient is final; only
        // when that fails is the state written, so that no recipient is tried again.
        result.removed = true;
        locked.pending_state = Some(state);
    } else {
        locked.record_state(state)?;
    }
    Ok(result)
}

/// Queue the recipients an alias or `.forward` expanded to as a new entry with the same
/// message and sender; its age counts from the original's arrival.
fn queue_expansion(
    spool: &Spool,
    env: &rsendmail::spool::entry::Envelope,
    list: Vec<rsendmail::spool::entry::Recipient>,
    open_message: &dyn Fn() -> std::io::Result<(std::fs::File, u64)>,
) -> Result<String, Fatal> {
    let mut entry = spool.begin(clock::now())?;
    let id = entry.id.clone();
    let mut e2 = env.clone();
    e2.id = id.clone();
    e2.recipients = list;
    e2.mode = 'q';
    e2.expansions += 1;
    let io = |e: std::io::Error| Fatal::new(Sysexit::IoErr, format!("{id}: {e}"));
    let (mut f, len) = open_message().map_err(io)?;
    let w = entry.writer();
    std::io::Write::write_all(w, e2.to_text().as_bytes()).map_err(io)?;
    std::io::copy(&mut std::io::Read::take(&mut f, len), w).map_err(io)?;
    entry.commit(&e2)?;
    rsendmail::log::submitted(&e2, spool.qf_path(&id).metadata().map(|m| m.len()).ok());
    Ok(id)
}

/// How long, in words, for a delay warning's subject.
fn waited_words(secs: i64) -> String {
    if secs >= 3600 && secs % 3600 == 0 {
        let h = secs / 3600;
        format!("{h} hour{}", if h == 1 { "" } else { "s" })
    } else if secs >= 60 {
        let m = secs / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("{secs} seconds")
    }
}

/// One recipient's outcome as a delivery report needs it.
struct ReportItem {
    /// The recipient (of the entry, or a target its expansion refused).
    rcpt: rsendmail::spool::entry::Recipient,
    kind: dsn::Kind,
    /// The DSN action: failed, delayed, delivered, relayed, expanded.
    action: &'static str,
    /// The reply as stored (`code text`).
    why: String,
    /// The server's reply (remote recipients only), for the transcript.
    reply: Option<reply::Reply>,
    /// The server's name as routed (`mx.example.org`, `127.0.0.1`), empty when local.
    remote: String,
}

/// The server as a report names it: an address in brackets, as sendmail writes it.
fn mta_name(host: &str) -> String {
    if host.parse::<std::net::IpAddr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The transcript lines for a recipient refused by a server: the command, the reply,
/// then sendmail's own line for it (its sysexits text: `User unknown` for a refused
/// recipient, `Service unavailable` otherwise; recorded in the bounce-* compat cases).
fn failure_transcript(address: &str, reply: &reply::Reply) -> Vec<String> {
    let Some(command) = &reply.command else {
        return Vec::new();
    };
    if !reply.is_permanent() {
        return Vec::new();
    }
    let mut lines = vec![format!(">>> {command}")];
    lines.extend(reply.transcript_lines());
    if command.starts_with("RCPT") && matches!(reply.code, 550 | 551 | 553) {
        let enhanced = reply.enhanced().unwrap_or_else(|| "5.1.1".into());
        lines.push(format!(
            "{} {enhanced} {address}... User unknown",
            reply.code
        ));
    } else {
        lines.push("554 5.0.0 Service unavailable".into());
    }
    lines
}

/// Queue the delivery reports an attempt owes: one per kind and return address. A
/// failure of a message from the null sender goes to the postmaster once (a "double
/// bounce"); a failure of that one is only logged. Returns the new entries.
fn send_reports(
    engine: &Engine,
    spool: &Spool,
    env: &rsendmail::spool::entry::Envelope,
    items: Vec<ReportItem>,
    open_message: &dyn Fn() -> std::io::Result<(std::fs::File, u64)>,
    now: i64,
) -> Vec<String> {
    let mut groups: ReportGroups = Vec::new();
    for item in items {
        let ReportItem {
            rcpt,
            kind,
            action,
            why,
            reply,
            remote,
        } = item;
        let r = &rcpt;
        let ret = dsn::return_address(env, r).map(str::to_string);
        match &ret {
            Some(_) if !dsn::wanted(r, kind) => continue,
            None if kind != dsn::Kind::Failure => continue,
            _ => {}
        }
        let mut status = match kind {
            dsn::Kind::Success => "2.0.0".to_string(),
            dsn::Kind::Failure => dsn::status_of(&why, true),
            dsn::Kind::Delay => dsn::status_of(&why, false),
        };
        if kind == dsn::Kind::Failure && status.starts_with('4') {
            // Still failing temporarily when the message expired.
            status = "4.4.7".into();
        }
        let final_recipient = if r.address.starts_with(['|', '/', '\\', ':']) {
            r.address.clone()
        } else {
            engine.qualify(&r.address)
        };
        let rr = dsn::RcptReport {
            final_recipient,
            original_recipient: r.orcpt.clone(),
            action,
            status,
            remote_mta: (!remote.is_empty()).then(|| mta_name(&remote)),
            transcript: match (&reply, kind) {
                (Some(reply), dsn::Kind::Failure) => failure_transcript(&r.address, reply),
                _ => Vec::new(),
            },
            diagnostic: (kind != dsn::Kind::Success || !remote.is_empty()).then_some(why),
            diagnostic_type: if remote.is_empty() { "X-Unix" } else { "SMTP" },
            last_attempt: now,
            will_retry_until: (kind == dsn::Kind::Delay && engine.queue_return > 0)
                .then_some(env.created.saturating_add(engine.queue_return)),
        };
        let key = (kind, ret);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(rr),
            None => groups.push((key, vec![rr])),
        }
    }
    let mut ids = Vec::new();
    for ((kind, ret), list) in groups {
        // An interactive delivery's failures follow ErrorMode (recorded from 8.17 with
        // and without a terminal): p saves the message in ~/dead.letter and says so
        // when the sender is local (sendmail's ESM_QUIET state: a local sender's mailer
        // is the local one); a remote sender (`-f a@example.com`) gets it mailed back
        // (compat case bounce-rcpt-550). q does nothing, m, w and e mail it back.
        // Elsewhere failures are mailed back.
        if engine.interactive && kind == dsn::Kind::Failure && ret.is_some() {
            match engine.error_mode {
                'q' => continue,
                'm' | 'w' | 'e' => {}
                _ if route(engine, &env.sender) != Route::Local => {}
                _ => {
                    let saved = open_message()
                        .map_err(|e| e.to_string())
                        .and_then(|(f, len)| {
                            rsendmail::mbox::save_dead_letter(
                                &env.sender,
                                env.created,
                                &mut std::io::Read::take(f, len),
                            )
                        });
                    match saved {
                        Ok(p) => {
                            let p = p.display();
                            println!("{p}... Saved message in {p}");
                            continue;
                        }
                        // Not saved: mail it back rather than lose the notice.
                        Err(e) => {
                            log::warn!("{}: cannot save in dead.letter ({e}); mailed back", env.id)
                        }
                    }
                }
            }
        }
        let (to, double) = match ret {
            Some(a) => (engine.qualify(&a), false),
            None if env.report.as_deref() == Some("double") => {
                log::warn!(
                    "{}: a report to the postmaster could not be delivered; discarded",
                    env.id
                );
                continue;
            }
            None => ("postmaster".to_string(), true),
        };
        let report = dsn::Report {
            kind,
            host: &engine.host_name,
            original: env,
            recipients: list,
            headers_only: env.ret.as_deref() == Some("HDRS") || engine.no_body_return,
            waited: (kind == dsn::Kind::Delay).then(|| waited_words(engine.queue_warn)),
        };
        let queued = open_message()
            .map_err(|e| Fatal::new(Sysexit::IoErr, e.to_string()))
            .and_then(|(f, len)| {
                report.queue(spool, &to, double, &mut std::io::Read::take(f, len))
            });
        match queued {
            Ok(id) => {
                log::info!("{}: {}: DSN: {}", env.id, id, kind.word());
                ids.push(id);
            }
            Err(e) => log::error!("{}: cannot queue a delivery report: {}", env.id, e.message),
        }
    }
    ids
}

/// A line-buffered writer to the shared `-X` file: each line gets the process id.
struct XLog<'a> {
    file: &'a Mutex<std::fs::File>,
    prefix: String,
    line: Vec<u8>,
}

impl std::io::Write for XLog<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.line.push(b);
            if b == b'\n' {
                let mut text = self.prefix.clone().into_bytes();
                text.append(&mut self.line);
                if let Ok(mut f) = self.file.lock() {
                    f.write_all(&text)?;
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a worker's transcript goes: stdout (-v), the traffic log (-X), both, or nowhere.
struct Transcripts<'a> {
    stdout: Option<std::io::Stdout>,
    xlog: Option<XLog<'a>>,
}

impl std::io::Write for Transcripts<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(o) = &mut self.stdout {
            o.write_all(buf)?;
        }
        if let Some(x) = &mut self.xlog {
            x.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(o) = &mut self.stdout {
            o.flush()?;
        }
        Ok(())
    }
}

impl Transcripts<'_> {
    fn get(&mut self) -> Transcript<'_> {
        if self.stdout.is_none() && self.xlog.is_none() {
            None
        } else {
            Some(self)
        }
    }
}

/// Remove an entry whose recipients are all final; if that fails, record the final state
/// so that nobody delivers it again.
fn finish(mut locked: LockedEntry) {
    let state = locked.pending_state.take();
    if let Err(e) = locked.remove() {
        log::error!("{e}");
        if let Some(st) = state
            && let Err(e) = locked.record_state(st)
        {
            log::error!("{e}");
        }
    }
}

/// Deliver entries with up to `workers` connections in parallel.
fn deliver_ids(
    engine: &Engine,
    spool: &Spool,
    ids: Vec<String>,
    verbose: bool,
    queue_run: bool,
) -> Result<Vec<Attempt>, Fatal> {
    let queue = Mutex::new(VecDeque::from(ids));
    let results = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    let workers = if verbose {
        1
    } else if engine.smarthost_split > 1 {
        // Enough connections for every relay of the split.
        engine
            .max_connections
            .max(engine.smarthost_split)
            .min(queue.lock().map(|q| q.len()).unwrap_or(1))
            .max(1)
    } else {
        engine
            .max_connections
            .min(queue.lock().map(|q| q.len()).unwrap_or(1))
            .max(1)
    };
    let total = queue.lock().map(|q| q.len()).unwrap_or(0);
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let queue = &queue;
            let results = &results;
            let errors = &errors;
            scope.spawn(move || {
                let mut w = Worker {
                    conns: Conns::new(),
                    dns: None,
                    index: worker,
                };
                // -v: the dialogue on stdout; -X: the same, line by line with the process
                // id, appended to the traffic log.
                let mut sink = Transcripts {
                    stdout: verbose.then(std::io::stdout),
                    xlog: engine.traffic_log.as_ref().map(|f| XLog {
                        file: f,
                        prefix: format!("{} ", std::process::id()),
                        line: Vec::new(),
                    }),
                };
                let mut seq = 0;
                loop {
                    if STOP.load(Ordering::SeqCst) {
                        break;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(id) = next else { break };
                    seq += 1;
                    let mut out: Transcript<'_> = sink.get();
                    let locked = match spool.lock_entry(&id) {
                        Ok(Some(l)) => l,
                        Ok(None) => continue,
                        Err(rsendmail::spool::ReadError::Corrupt(why)) => {
                            log::error!("qf{id}: corrupt queue file moved aside: {why}");
                            let _ = spool.move_corrupt(&id);
                            continue;
                        }
                        Err(e) => {
                            log::error!("qf{id}: {e}");
                            continue;
                        }
                    };
                    // sendmail -q -v: a blank line, then the entry (named without its
                    // qf prefix, as sendmail names it), before its transcript.
                    if verbose
                        && queue_run
                        && let Some(w) = out.as_deref_mut()
                    {
                        let _ = writeln!(
                            w,
                            "\nRunning {}/{id} (sequence {seq} of {total})",
                            spool.dir.display()
                        );
                    }
                    let mut locked = locked;
                    match attempt(engine, spool, &mut locked, &mut w, &mut out) {
                        Ok(a) => {
                            if a.removed {
                                finish(locked);
                            } else {
                                drop(locked);
                            }
                            // Expansions and reports go out in the same run.
                            if !a.new_entries.is_empty()
                                && let Ok(mut q) = queue.lock()
                            {
                                q.extend(a.new_entries.iter().cloned());
                            }
                            if let Ok(mut r) = results.lock() {
                                r.push(a);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut v) = errors.lock() {
                                v.push(e);
                            }
                        }
                    }
                }
                let mut out: Transcript<'_> = sink.get();
                for (_, mut c) in w.conns.drain() {
                    c.close(&mut out);
                }
            });
        }
    });
    if let Some(e) = errors.into_inner().ok().and_then(|mut v| v.pop()) {
        return Err(e);
    }
    Ok(results.into_inner().unwrap_or_default())
}

/// Take one of the background-delivery slots, or None when all are busy.
fn background_slot(spool: &Spool, max: usize) -> Option<std::fs::File> {
    let dir = spool.dir.join("slots");
    let _ = std::fs::create_dir(&dir);
    for n in 0..max {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(n.to_string()))
            .ok()?;
        if f.try_lock().is_ok() {
            return Some(f);
        }
    }
    None
}

/// Internal arguments in front of sendmail's argv.
struct Internal {
    entry: Option<String>,
    background: bool,
    /// `--status N`: the submission's own status (recipients it refused).
    status: Sysexit,
    /// `--etrn [@]domain`: the flush an ETRN started.
    etrn: Option<String>,
    /// `--queue-runner`: the periodic runner of a `-bd -q<interval>` daemon.
    queue_runner: bool,
    argv: Vec<OsString>,
}

/// `rsendmail` runs us as `rsendmail-deliver [--entry ID [--background] --] ARGV...` where
/// ARGV is its own argv, argv[0] included. Run by hand (`rsendmail-deliver -q`), the
/// arguments are sendmail's without an argv[0].
#[deny(clippy::indexing_slicing)]
fn split_internal(args: Vec<OsString>) -> Internal {
    let mut it = args.into_iter().peekable();
    let own = it.next().unwrap_or_else(|| OsString::from("sendmail"));
    let mut entry = None;
    let mut background = false;
    let mut status = Sysexit::Ok;
    let mut etrn = None;
    let mut queue_runner = false;
    if it.peek().is_some_and(|a| a == "--etrn") {
        it.next();
        etrn = it.next().and_then(|v| v.into_string().ok());
    }
    if it.peek().is_some_and(|a| a == "--queue-runner") {
        it.next();
        queue_runner = true;
    }
    if (etrn.is_some() || queue_runner) && it.peek().is_some_and(|a| a == "--") {
        it.next();
    }
    if it.peek().is_some_and(|a| a == "--entry") {
        it.next();
        entry = it.next().and_then(|v| v.into_string().ok());
        if it.peek().is_some_and(|a| a == "--background") {
            it.next();
            background = true;
        }
        if it.peek().is_some_and(|a| a == "--status") {
            it.next();
            status = it
                .next()
                .and_then(|v| v.to_str().and_then(|v| v.parse::<u8>().ok()))
                .and_then(Sysexit::from_code)
                .unwrap_or(Sysexit::Ok);
        }
        if it.peek().is_some_and(|a| a == "--") {
            it.next();
        }
    }
    let mut argv: Vec<OsString> = it.collect();
    if argv
        .first()
        .is_none_or(|a| a.to_string_lossy().starts_with('-'))
    {
        argv.insert(0, own);
    }
    Internal {
        entry,
        background,
        status,
        etrn,
        queue_runner,
        argv,
    }
}

/// The program.
#[deny(clippy::indexing_slicing)]
pub fn main(args: Vec<OsString>) -> Sysexit {
    privs::fix_std_fds();
    if args.get(1).is_some_and(|a| a == "--mbox") {
        let code = local::mbox_child(args.get(2..).unwrap_or_default());
        std::process::exit(code);
    }
    if args.get(1).is_some_and(|a| a == "--read-list") {
        let code = local::read_list_child(args.get(2..).unwrap_or_default());
        std::process::exit(code);
    }
    rsendmail::log::init("rsendmail-deliver");
    let internal = split_internal(args);
    let after_commit = internal.entry.is_some().then_some(internal.status);
    match run(internal) {
        Ok(c) => c,
        // Delivering one entry that `rsendmail` has queued: whatever failed here, the
        // message stays queued for the next run; that is said once, and the status is
        // the submission's.
        Err(f) => match after_commit {
            Some(status) => {
                app::report(&Fatal::new(
                    status,
                    format!("{}; the message stays queued", f.message),
                ));
                status
            }
            None => app::report(&f),
        },
    }
}

fn run(internal: Internal) -> Result<Sysexit, Fatal> {
    use rsendmail::cli::Operation;
    let argv = internal.argv.clone();
    let s = app::setup(internal.argv)?;
    let mut engine = Engine::from_setup(&s)?;
    let smtp = matches!(
        s.inv.operation,
        Operation::Smtp | Operation::Daemon | Operation::DaemonForeground
    );
    // A message that came in over SMTP has no terminal to print to: failures are mailed.
    engine.interactive = internal.entry.is_some() && !internal.background && !smtp;
    if let Some(arg) = &internal.etrn {
        return serve::etrn_flush(&s, &engine, arg);
    }
    if internal.queue_runner {
        let q = s.inv.queue_run.clone().unwrap_or_default();
        return periodic(&s, &engine, &q);
    }
    match internal.entry {
        Some(id) => deliver_entry(&s, &engine, &id, internal.background)
            .map(|c| if c == Sysexit::Ok { internal.status } else { c }),
        None if s.inv.operation == Operation::Verify => verify(&s, &engine),
        None if s.inv.operation == Operation::Smtp => serve::stdio(&s, &engine, &argv),
        None if s.inv.operation == Operation::Daemon => serve::daemon(&s, &engine, &argv, false),
        None if s.inv.operation == Operation::DaemonForeground => {
            serve::daemon(&s, &engine, &argv, true)
        }
        None => queue_run(&s, &engine),
    }
}

/// How sendmail names a host in `-bv` output: an address literal in brackets.
fn shown_host(h: &str) -> String {
    if h.parse::<std::net::IpAddr>().is_ok() {
        format!("[{h}]")
    } else {
        h.to_string()
    }
}

/// `-bv`: say where each address would go, without sending anything (sendmail's format).
fn verify(s: &Setup, engine: &Engine) -> Result<Sysexit, Fatal> {
    let mut style = rsendmail::submit::old_style(&s.settings);
    let (addrs, refused) = rsendmail::submit::argv_recipients(&s.inv.recipients, &mut style)?;
    if addrs.is_empty() && refused.is_empty() {
        return Err(Fatal::new(
            Sysexit::Usage,
            "Recipient names must be specified",
        ));
    }
    let mut status = Sysexit::Ok;
    // Addresses refused by their syntax are reported as they are parsed, before any is
    // verified.
    for r in &refused {
        println!("{}", r.text);
        if status == Sysexit::Ok {
            status = r.code;
        }
    }
    // sendmail reports local recipients first, then the others, each in list order
    // (recorded from 8.17).
    let (local, other): (Vec<_>, Vec<_>) = addrs
        .into_iter()
        .partition(|a| route(engine, &a.address) == Route::Local);
    let is_local = |a: &str| route(engine, a) == Route::Local;
    let mut shown: Vec<String> = Vec::new();
    for a in local {
        // Local names through the aliases, each target shown (unknown users refused).
        let x = engine
            .local
            .expand(std::slice::from_ref(&a.address), None, &is_local);
        for e in &x.errors {
            println!("{}", e.text());
            if status == Sysexit::Ok {
                status = e.status();
            }
        }
        for t in x.targets {
            use rsendmail::aliases::Target;
            match t.target {
                // The user's own name as given (`root`, `root@host`) is shown as given;
                // a user an alias led to, by name.
                Target::User(user) | Target::Mailbox(user) => {
                    let shown = if rsendmail::aliases::key_of(&a.address) == user {
                        &a.address
                    } else {
                        &user
                    };
                    println!("{shown}... deliverable: mailer local, user {user}");
                }
                Target::Pipe(c) => println!("|{c}... deliverable: mailer prog, user |{c}"),
                Target::File(f) => println!("{f}... deliverable: mailer *file*, user {f}"),
                Target::Remote(r) => shown.push(r),
            }
        }
    }
    let other: Vec<String> = shown
        .into_iter()
        .chain(other.into_iter().map(|a| a.address))
        .collect();
    for addr in other {
        match route(engine, &addr) {
            Route::Relay(targets) => {
                let host = targets
                    .first()
                    .map(|t| shown_host(&t.0))
                    .unwrap_or_default();
                println!(
                    "{addr}... deliverable: mailer relay, host {host}, user {}",
                    engine.qualify(&addr)
                );
            }
            Route::Mx(d) => println!("{addr}... deliverable: mailer esmtp, host {d}., user {addr}"),
            Route::Local => {
                let user = addr.split('@').next().unwrap_or(&addr);
                println!("{addr}... deliverable: mailer local, user {user}");
            }
        }
    }
    Ok(status)
}

/// Deliver one entry now (interactive or background mode).
fn deliver_entry(s: &Setup, engine: &Engine, id: &str, background: bool) -> Result<Sysexit, Fatal> {
    if !rsendmail::spool::valid_id(id) {
        return Err(Fatal::new(Sysexit::Usage, format!("bad queue id {id}")));
    }
    let _slot = if background {
        match background_slot(&s.spool, engine.max_background) {
            Some(f) => Some(f),
            None => return Ok(Sysexit::Ok), // stays queued for the next run
        }
    } else {
        None
    };
    let verbose = s.inv.verbose;
    let results = deliver_ids(engine, &s.spool, vec![id.to_string()], verbose, false)?;
    let Some(a) = results.first() else {
        return Ok(Sysexit::Ok);
    };
    // sendmail's interactive outcomes: temporary failures exit 0 (the message is queued);
    // a recipient refused permanently EX_NOUSER, the message refused at DATA EX_UNAVAILABLE.
    Ok(if engine.error_mode == 'e' {
        // ErrorMode e: errors are mailed back and the status is 0.
        Sysexit::Ok
    } else if a.failed_data > 0 {
        Sysexit::Unavailable
    } else if a.failed_host > 0 && a.failed_host == a.failed_rcpt {
        Sysexit::NoHost
    } else if a.failed_rcpt > 0 {
        Sysexit::NoUser
    } else {
        Sysexit::Ok
    })
}

/// Set by SIGTERM/SIGINT: a periodic runner finishes the entries it holds and stops.
static STOP: AtomicBool = AtomicBool::new(false);

/// How long a stopping runner waits for deliveries in progress before it exits anyway.
/// An interrupted delivery leaves its entry as it was (state updates are atomic).
const STOP_GRACE: Duration = Duration::from_secs(3);

fn queue_run(s: &Setup, engine: &Engine) -> Result<Sysexit, Fatal> {
    app::may_process_queue(&s.spool)?;
    let q: QueueRunArgs = s.inv.queue_run.clone().unwrap_or_default();
    let is_periodic = q.interval.is_some() || q.persistent;
    if !q.foreground && !s.inv.verbose {
        // sendmail: a queue run forks and the caller returns at once.
        // SAFETY: single-threaded at this point; the child only continues this program.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Parent { .. }) => return Ok(Sysexit::Ok),
            Ok(nix::unistd::ForkResult::Child) => privs::detach(),
            Err(e) => return Err(Fatal::new(Sysexit::OsErr, format!("cannot fork: {e}"))),
        }
    }
    if !is_periodic {
        // A plain -q (or a -qR/-qS/-qI selection) tries every selected entry now.
        let sweep = queue::sweep(&s.spool, Some(&q), 0)?;
        for id in &sweep.corrupt {
            println!("qf{id}: corrupt queue file moved to corrupt/");
        }
        deliver_ids(engine, &s.spool, sweep.selected, s.inv.verbose, true)?;
        return Ok(Sysexit::Ok);
    }
    periodic(s, engine, &q)
}

/// SIGTERM and SIGINT set `flag` (a long-running process then ends in good order).
pub fn stop_on_signals(flag: &'static AtomicBool) -> Result<(), Fatal> {
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // SAFETY: the handler only stores to an atomic.
        let r =
            unsafe { signal_hook::low_level::register(sig, || flag.store(true, Ordering::SeqCst)) };
        if let Err(e) = r {
            return Err(Fatal::new(
                Sysexit::OsErr,
                format!("cannot handle signals: {e}"),
            ));
        }
    }
    Ok(())
}

/// The persistent runner: wake every interval, try the entries whose back-off expired,
/// until SIGTERM/SIGINT.
pub fn periodic(s: &Setup, engine: &Engine, q: &QueueRunArgs) -> Result<Sysexit, Fatal> {
    stop_on_signals(&STOP)?;
    std::thread::spawn(|| {
        while !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(STOP_GRACE);
        log::info!("queue runner stopped (deliveries in progress were abandoned)");
        std::process::exit(0);
    });
    let interval = Duration::from_secs(q.interval.unwrap_or(0).max(1));
    let forced = !q.filters.is_empty();
    log::info!("queue runner started, interval {}s", interval.as_secs());
    while !STOP.load(Ordering::SeqCst) {
        let started = std::time::Instant::now();
        match queue::sweep(&s.spool, Some(q), engine.min_queue_age) {
            Ok(sweep) => {
                // sendmail: -qR/-qS/-qI selections ignore back-off.
                let due: Vec<String> = sweep
                    .selected
                    .into_iter()
                    .filter(|id| forced || !sweep.not_due.contains(id))
                    .collect();
                if let Err(e) = deliver_ids(engine, &s.spool, due, s.inv.verbose, true) {
                    log::error!("{e}");
                }
            }
            Err(e) => log::error!("{e}"),
        }
        while started.elapsed() < interval && !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    log::info!("queue runner stopped");
    Ok(Sysexit::Ok)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;
    use rsendmail::config::parse_relay_table;

    fn engine() -> Engine {
        Engine {
            smarthost: vec![],
            relay_table: vec![],
            traffic_log: None,
            smarthost_split: 1,
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
            interactive: false,
        }
    }

    #[test]
    fn backoff_doubles_to_cap() {
        let e = engine();
        let seq: Vec<i64> = (1..=8).map(|a| e.backoff(a)).collect();
        assert_eq!(seq, [300, 600, 1200, 2400, 4800, 9600, 14400, 14400]);
    }

    #[test]
    fn routes() {
        let mut e = engine();
        assert_eq!(route(&e, "bob"), Route::Local);
        assert_eq!(route(&e, "bob@HOST.example"), Route::Local);
        assert_eq!(
            route(&e, "bob@example.org"),
            Route::Mx("example.org".into())
        );
        e.smarthost = vec![("127.0.0.1".into(), 25)];
        let smart = Route::Relay(e.smarthost.clone());
        assert_eq!(route(&e, "bob@example.org"), smart);
        assert_eq!(route(&e, "bob"), Route::Local);
        e.null_client = true;
        assert_eq!(route(&e, "bob"), smart);
        e.relay_table = parse_relay_table(
            "example.org [10.0.0.1]:2525\n.example.net relay.example\n",
            "t",
            25,
        )
        .unwrap();
        assert_eq!(
            route(&e, "bob@Example.ORG"),
            Route::Relay(vec![("[10.0.0.1]".into(), 2525)])
        );
        assert_eq!(
            route(&e, "bob@a.b.example.net"),
            Route::Relay(vec![("relay.example".into(), 25)])
        );
        assert_eq!(
            route(&e, "bob@example.net"),
            smart,
            "'.domain' is for subdomains only"
        );
        assert_eq!(route(&e, "bob@other.org"), smart);
        assert_eq!(e.qualify("root"), "root@host.example");
        assert_eq!(e.qualify(""), "");
    }

    #[test]
    fn hosts_shown_like_sendmail() {
        assert_eq!(shown_host("127.0.0.1"), "[127.0.0.1]");
        assert_eq!(shown_host("::1"), "[::1]");
        assert_eq!(shown_host("[10.0.0.1]"), "[10.0.0.1]");
        assert_eq!(shown_host("mail.example.org"), "mail.example.org");
    }

    #[test]
    fn relay_table_rules() {
        let t = parse_relay_table(
            "# comment\nexample.org a.relay\n.example.org b.relay:26\n* [c.relay]\n\n",
            "t",
            25,
        )
        .unwrap();
        let host = |d: &str| relay_for(&t, d).map(|r| (r.host.as_str(), r.port));
        assert_eq!(host("example.org"), Some(("a.relay", 25)));
        assert_eq!(host("mail.example.org"), Some(("b.relay", 26)));
        assert_eq!(host("x.mail.example.org"), Some(("b.relay", 26)));
        assert_eq!(host("example.org.uk"), Some(("[c.relay]", 25)));
        assert_eq!(relay_for(&t[..2], "notexample.org"), None);
    }

    #[test]
    fn internal_args() {
        let a = split_internal(vec![
            "d".into(),
            "--entry".into(),
            "X".into(),
            "--background".into(),
            "--".into(),
            "sendmail".into(),
            "-odb".into(),
        ]);
        assert_eq!(a.entry.as_deref(), Some("X"));
        assert!(a.background);
        assert_eq!(
            a.argv,
            vec![OsString::from("sendmail"), OsString::from("-odb")]
        );
        let q = split_internal(vec![
            "rsendmail-deliver".into(),
            "/usr/sbin/sendmail".into(),
            "-q".into(),
        ]);
        assert!(q.entry.is_none());
        assert_eq!(
            q.argv,
            vec![OsString::from("/usr/sbin/sendmail"), OsString::from("-q")]
        );
        let by_hand = split_internal(vec!["rsendmail-deliver".into(), "-q".into()]);
        assert_eq!(
            by_hand.argv,
            vec![OsString::from("rsendmail-deliver"), OsString::from("-q")]
        );
    }
}
