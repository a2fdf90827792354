//! The SMTP server's processes: `-bs` (one session on stdin/stdout), `-bd`/`-bD` (the
//! listening daemon), and the flush an ETRN starts.
//!
//! The protocol is in `rsendmail::server`; this module gives it what needs the engine:
//! the DNS check of a sender's domain, ETRN, and delivery after the commit point.
//!
//! The daemon is one single-threaded process that polls its listening sockets and forks
//! a child per connection (a session that crashes takes only its own connection down).
//! Beyond `O MaxDaemonChildren=` a connection gets `421 4.3.2 ... Too many connections`
//! and is closed. With `-q<interval>` a second child runs the queue; it is started with
//! the parent-death signal set (Linux `PR_SET_PDEATHSIG`: SIGTERM), and sets it again
//! itself when it starts (`runner::follow_daemon`: an exec of a set-id program clears it),
//! so it stops when the daemon dies however it dies (even by SIGKILL), never left beside
//! the next one. SIGTERM (or SIGINT): the daemon closes its sockets, passes the signal on
//! to the sessions and the runner, waits for them and removes its pid file. SIGHUP:
//! sendmail's restart. The new start is checked first ([`restart_check`]: the program
//! at the path it was started from is run with the same arguments and does all its
//! start-up checks without serving; a reason it could not start is logged and the
//! daemon runs on as it is). Then the daemon tells its runner to finish (SIGHUP: it starts
//! no new delivery, lets those in progress end and exits; the new program reaps it and
//! starts its own runner at once, [`Runners`]) and executes itself again
//! with the same arguments from the path it was started from ([`super::own_exe`]: the
//! configuration is read anew, a new binary renamed over the path is the one run), the
//! same process, with its listening sockets (so new connections wait) and its sessions:
//! as sendmail's, the sessions go on undisturbed, children of the same process, which the
//! new program counts for MaxDaemonChildren, reaps, and stops on SIGTERM.

use super::{Engine, deliver_ids, dns, own_command, own_exe};
use rsendmail::app::{self, Setup};
use rsendmail::deadline::{Polled, PolledWrite, Timed, TimedWrite};
use rsendmail::exit::{Fatal, Sysexit};
use rsendmail::options::DeliveryMode;
use rsendmail::server::{Backend, Client, DomainCheck, Privacy, Server, Slowdown, net};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, FromRawFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The engine's side of a session.
struct EngineBackend<'a> {
    engine: &'a Engine,
    dns: Option<Result<dns::Dns, String>>,
    /// Our own argv (as `rsendmail` gave it), for the processes we start.
    argv: &'a [OsString],
    /// The spool directory whose wake-up endpoint a background-mode message is handed
    /// to (`rsendmail::spool::wake::poke`) when a queue runner listens there; `None`
    /// when this invocation's options must be applied by its own deliverer
    /// ([`app::for_the_runner`]).
    wake: Option<&'a std::path::Path>,
    /// The setup of this server: its configuration is read again before a deliverer of
    /// its own is started ([`app::config_reads_now`]), and its spool's runner is woken
    /// when that deliverer cannot be.
    setup: &'a Setup,
    /// The exit status of the first interactive (`-odi`) delivery that did not end 0:
    /// a `-bs` session exits with it when it noted no error itself, as sendmail's does
    /// (a recipient the relay refused: 67; recorded: `bs-dsn-xtext`).
    delivery_status: Option<Sysexit>,
}

impl EngineBackend<'_> {
    /// Start `rsendmail-deliver PREFIX -- ARGV` with no stdio (stdout may be the session).
    fn spawn(&self, prefix: &[&str]) -> std::io::Result<std::process::Child> {
        own_command(&own_exe())
            .args(rsendmail::log::inherited_args())
            .args(prefix)
            .arg("--")
            .args(self.argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    /// A child we do not wait for is reaped by a thread (no zombies in a long session);
    /// one that fails (it could not start its work: its own output goes nowhere) is
    /// logged with `what` it was for, while this session lasts.
    fn detach(child: std::process::Child, what: String) {
        let mut child = child;
        std::thread::spawn(move || {
            if let Ok(st) = child.wait()
                && !st.success()
            {
                log::error!(
                    "{what} failed ({st}); the message stays queued for the next queue run"
                );
            }
        });
    }

    /// Start this server's own background delivery of `id`: logged when its
    /// configuration no longer reads (its deliverer would end at once, unseen) or it
    /// cannot be started; the entry is then handed to a listening queue runner, which
    /// runs with the configuration it started with.
    fn deliver_in_background(&self, id: &str) {
        let why = match app::config_reads_now(self.setup) {
            Err(f) => format!("the configuration no longer reads: {}", f.message),
            Ok(()) => match self.spawn(&["--entry", id, "--background"]) {
                Ok(c) => return Self::detach(c, format!("{id}: its background delivery")),
                Err(e) => format!("cannot start delivery: {e}"),
            },
        };
        if rsendmail::spool::wake::poke(&self.setup.spool.dir, id) {
            log::error!("{id}: not delivered by this server: {why}; handed to the queue runner");
        } else {
            log::error!("{id}: not delivered now: {why}; it stays queued for the next queue run");
        }
    }
}

impl Backend for EngineBackend<'_> {
    fn sender_domain(&mut self, domain: &str) -> DomainCheck {
        let e = self.engine;
        let dns = self
            .dns
            .get_or_insert_with(|| dns::Dns::new(&e.resolver, e.dns_timeout, e.dns_retries));
        match dns {
            Ok(d) => d.domain_exists(domain),
            Err(why) => {
                log::error!("{why}");
                DomainCheck::TempFail
            }
        }
    }

    fn etrn(&mut self, domain: &str, subdomains: bool) -> bool {
        let arg = if subdomains {
            format!("@{domain}")
        } else {
            domain.to_string()
        };
        match self.spawn(&["--etrn", &arg]) {
            Ok(c) => {
                Self::detach(c, format!("ETRN {arg}: the queue run"));
                true
            }
            Err(e) => {
                log::error!("ETRN {arg}: cannot start a queue run: {e}");
                false
            }
        }
    }

    fn accepted(&mut self, id: &str, mode: DeliveryMode) {
        match mode {
            DeliveryMode::QueueOnly | DeliveryMode::Deferred => {}
            DeliveryMode::Interactive => match self.spawn(&["--entry", id]) {
                // Interactive: delivered before the next command is read.
                Ok(mut c) => {
                    let code = c.wait().ok().and_then(|st| st.code());
                    let status = code
                        .and_then(|n| u8::try_from(n).ok())
                        .and_then(Sysexit::from_code)
                        .filter(|&s| s != Sysexit::Ok);
                    if self.delivery_status.is_none() {
                        self.delivery_status = status;
                    }
                }
                Err(e) => log::error!("{id}: cannot start delivery: {e}; it stays queued"),
            },
            // A listening queue runner takes it at once, as it takes a command-line
            // submission's; else our own background delivery, as without a runner.
            DeliveryMode::Background
                if self
                    .wake
                    .is_some_and(|dir| rsendmail::spool::wake::poke(dir, id)) => {}
            DeliveryMode::Background => self.deliver_in_background(id),
        }
    }
}

/// Session settings shared by `-bs` and the daemon.
fn server<'a>(
    s: &'a Setup,
    engine: &Engine,
    client: Client,
    trusted: bool,
    max_recipients: usize,
) -> Server<'a> {
    let relay_domains = s.settings.relay_domains.clone().unwrap_or_default();
    Server {
        host: engine.host_name.clone(),
        spool: &s.spool,
        mode: s.mode,
        client,
        trusted,
        old_style: rsendmail::submit::old_style(&s.settings).0,
        relay_domains,
        all_to_smarthost: s.cfg.all_to_smarthost(),
        aliases: if s.inv.no_alias {
            None
        } else {
            engine.local.aliases().cloned()
        },
        default_user: engine.local.default_user,
        max_size: s.settings.max_message_size.filter(|&n| n > 0),
        max_recipients,
        command_timeout: command_timeout(s),
        // sendmail's server reads the message under Timeout.datablock (1h by default).
        data_timeout: Duration::from_secs(
            s.settings
                .timeouts
                .datablock
                .unwrap_or(rsendmail::options::SERVER_DATABLOCK)
                .max(1),
        ),
        privacy: Privacy::from_flags(|f| s.settings.privacy(f)),
        // Whoever may run this spool's queue (`-q`) may start a run with ETRN; the
        // daemon checked it before it started.
        etrn_allowed: app::may_process_queue(&s.spool).is_ok(),
        verp_delimiters: s.settings.effective().verp_delimiters.unwrap_or_default(),
        verp_all: s.settings.verp == Some(true),
        slowdown: Slowdown {
            noop: s
                .settings
                .max_noop_commands
                .map_or(Slowdown::default().noop, |n| {
                    u32::try_from(n).unwrap_or(u32::MAX)
                }),
            // sendmail cuts a repeating client off only when MaxDaemonChildren is set.
            stop: s.settings.max_daemon_children.unwrap_or_default() > 0,
            ..Slowdown::default()
        },
    }
}

/// `O Timeout.command=`: the whole of a command line within it (1h by default).
fn command_timeout(s: &Setup) -> Duration {
    let t = s.settings.effective().timeouts;
    Duration::from_secs(t.command.unwrap_or_default().max(1))
}

/// `O MaxRecipientsPerMessage=`: 1,000 when not set (mailing lists fit; a bound on what
/// one message may cost); 0 means no limit, as in sendmail.
fn max_recipients(s: &Setup) -> usize {
    match s
        .settings
        .effective()
        .max_recipients_per_message
        .unwrap_or_default()
    {
        0 => usize::MAX,
        n => n,
    }
}

/// `O TrustedNetworks=` (parsed when the option was read), else loopback.
fn trusted_networks(s: &Setup) -> Result<Vec<net::Net>, Fatal> {
    match &s.settings.trusted_networks {
        Some(nets) => Ok(nets.clone()),
        None => net::trusted_networks(None),
    }
}

/// `-bs`: one session on stdin/stdout. The exit status is sendmail's: 0, or the first
/// address error of the session (68 for a sender's domain that does not exist).
pub fn stdio(s: &Setup, engine: &Engine, argv: &[OsString]) -> Result<Sysexit, Fatal> {
    s.spool.prepare()?;
    let who = rsendmail::submit::Submitter::current();
    // Started by inetd or a systemd socket (Accept=yes) with a TCP connection as stdin:
    // the peer is the client, and the relay policy applies to it as for -bd.
    let (client, trusted) = match stdin_peer() {
        Some(ip) => {
            let nets = trusted_networks(s)?;
            let trusted = nets.iter().any(|n| n.contains(ip));
            (Client::Remote { ip }, trusted)
        }
        None => (
            Client::Local {
                login: who.login.clone(),
                uid: who.uid,
            },
            true,
        ),
    };
    let mut srv = server(s, engine, client, trusted, max_recipients(s));
    let mut backend = EngineBackend {
        engine,
        dns: None,
        argv,
        wake: app::for_the_runner(s).then_some(s.spool.dir.as_path()),
        setup: s,
        delivery_status: None,
    };
    // fd 0 unbuffered underneath our own buffer, so that "nothing more is waiting" is known.
    // SAFETY: fd 0 stays open for the life of the process; ManuallyDrop never closes it.
    let stdin = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
    // Each read keeps to the deadline the session sets (a command line, a data block), as
    // on a -bd connection: stdin may be a pipe, a socket or a terminal, so it is polled.
    let mut input = BufReader::with_capacity(64 * 1024, Polled::new(&*stdin));
    // Each group of replies must be taken within Timeout.command, as on a -bd
    // connection: a client that stops reading (stdout a full pipe or socket) does not
    // hold the process. Written to fd 1 directly, below std's own stdout buffer.
    // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop never closes it.
    let stdout = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
    let mut out = std::io::BufWriter::new(PolledWrite::new(&*stdout, command_timeout(s)));
    match srv.run(&mut backend, &mut input, &mut out) {
        Ok(end) if end.status == Sysexit::Ok => Ok(backend.delivery_status.unwrap_or(end.status)),
        Ok(end) => Ok(end.status),
        Err(e) => {
            log::info!("SMTP session ended: {e}");
            Ok(Sysexit::Ok)
        }
    }
}

/// The address of the TCP peer when stdin is a connected TCP socket.
fn stdin_peer() -> Option<std::net::IpAddr> {
    // SAFETY: fd 0 stays open for the life of the process; ManuallyDrop never closes it.
    let sock = std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(0) });
    sock.peer_addr().ok().map(|a| a.ip().to_canonical())
}

/// The flush an ETRN started, after Postfix's flush(8): for a domain eligible for a
/// list of its own (`O FastFlushDomains=`, by default `RelayDomains`), the entries with
/// mail for it, read from that list (with `@domain`, its subdomains' too); for any other
/// domain, sendmail's ETRN: the entries with a recipient containing `@domain` (with
/// `@domain`: `domain`), found by reading every entry. (Postfix refuses ETRN for a
/// domain without a list, `459 4.7.1`; sendmail, the reference, takes it.) Delivered
/// now, whatever their back-off.
pub fn etrn_flush(s: &Setup, engine: &Engine, arg: &str) -> Result<Sysexit, Fatal> {
    let (domain, sub) = match arg.strip_prefix('@') {
        Some(d) => (d, true),
        None => (arg, false),
    };
    let fast = s.spool.fast_flush.eligible(domain);
    let ids: Vec<String> = if fast {
        rsendmail::queue::select_domain(&s.spool, domain, sub)
            .into_iter()
            .collect()
    } else {
        // sendmail's ETRN: a queue run of the entries with a recipient containing
        // `@domain` (`ETRN @domain`: `domain`, so its subdomains too), found by looking
        // at every entry (srvrsmtp.c; recorded: `bs-etrn-*`).
        let needle = if sub {
            domain.to_string()
        } else {
            format!("@{domain}")
        };
        let q = rsendmail::selection::QueueRunArgs {
            filters: vec![rsendmail::selection::QueueFilter {
                field: rsendmail::selection::FilterField::Recipient,
                negate: false,
                substring: needle,
            }],
            ..Default::default()
        };
        rsendmail::queue::sweep(&s.spool, Some(&q), engine.min_queue_age)?.into_try(&q, false)
    };
    log::info!(
        "ETRN {arg}: {} entries ({})",
        ids.len(),
        if fast {
            "its fast flush list"
        } else {
            "not in FastFlushDomains: its entries found in the whole queue"
        }
    );
    deliver_ids(engine, &s.spool, ids, false, true)?;
    if fast
        && !sub
        && let Err(e) = rsendmail::spool::index::prune_domain(&s.spool, domain)
    {
        log::warn!("ETRN {arg}: cannot prune the domain's list: {e}");
    }
    Ok(Sysexit::Ok)
}

/// Set by SIGTERM/SIGINT in the daemon.
static STOP: AtomicBool = AtomicBool::new(false);

/// Set by SIGHUP in the daemon: check the new start ([`restart_check`]), and when it
/// would start, stop the runner and execute the program again.
static RESTART: AtomicBool = AtomicBool::new(false);

/// How long the start-up checks of a restart ([`restart_check`]) may take; a program
/// that has not ended by then is killed and the restart refused.
const RESTART_CHECK_TIME: Duration = Duration::from_secs(15);

/// At most this much of what a failed restart check printed is logged.
const RESTART_CHECK_OUTPUT: usize = 2048;

/// The environment variable that makes `rsendmail-deliver -bd`/`-bD` only check its
/// start (the configuration, the engine, the spool, the listening addresses, taking over
/// the sockets named in [`LISTEN_FDS`]) and exit: 0, with `RESTART_CHECK_PASSED VALUE`
/// on stdout, when it would start. It never serves, forks or writes anything but what a
/// daemon's start makes (the spool's own directories), and it logs nothing (what is
/// wrong is on stdout/stderr, for the daemon that asked to log). Any other operation
/// with it set is refused. (A set-id `rsendmail` passes its deliverer no environment.)
pub const RESTART_CHECK: &str = "RSENDMAIL_RESTART_CHECK";

/// The line a start check that passed prints, followed by the value of [`RESTART_CHECK`]
/// (which the asking daemon chose): a program that merely exits 0 has not passed.
const RESTART_CHECK_PASSED: &str = "restart check passed";

/// The value of [`RESTART_CHECK`] this process was started with (read and removed from
/// the environment at start, [`take_restart_check`]).
static CHECK_ONLY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Read [`RESTART_CHECK`] once, at start (single-threaded), and remove it from the
/// environment; whether it was set. Logging is off from then on in a check.
pub fn take_restart_check() -> bool {
    let v = CHECK_ONLY
        .get_or_init(|| {
            let v = std::env::var_os(RESTART_CHECK)?;
            // SAFETY: called first thing in main, before any thread is started.
            unsafe { std::env::remove_var(RESTART_CHECK) };
            Some(v.to_string_lossy().into_owned())
        })
        .is_some();
    if v {
        log::set_max_level(log::LevelFilter::Off);
    }
    v
}

/// Whether this process only checks a daemon's start ([`RESTART_CHECK`]).
pub fn check_only() -> bool {
    CHECK_ONLY.get().is_some_and(|v| v.is_some())
}

/// In a start check ([`RESTART_CHECK`]), the line that says it passed, for the process
/// that asked, once the checks only a check makes passed ([`check_maillog`]); None in
/// any other process.
pub fn check_passed(s: &Setup) -> Option<Result<String, Fatal>> {
    match CHECK_ONLY.get() {
        Some(Some(value)) => {
            Some(check_maillog(s).map(|()| format!("{RESTART_CHECK_PASSED} {value}")))
        }
        _ => None,
    }
}

/// The MAILLOG the configuration names can be opened: a restart onto one that cannot
/// (a missing directory, a symbolic link) would leave the new program logging nowhere
/// the admin looks, so it is refused as a missing queue directory is (the file is made
/// when missing, as the new program's start would make it).
fn check_maillog(s: &Setup) -> Result<(), Fatal> {
    let Some(path) = s.cfg.maillog_file() else {
        return Ok(());
    };
    rsendmail::log::open_log_file(path).map(drop).map_err(|e| {
        Fatal::new(
            Sysexit::Config,
            format!(
                "cannot open MAILLOG {}: {}",
                path.display(),
                rsendmail::config::io_text(&e)
            ),
        )
    })
}

/// The environment variable that tells a standalone periodic queue runner it was
/// executed again by its own SIGHUP restart ([`restart_runner`]): it is already in the
/// background and does not fork again.
const RUNNER_RESTARTED: &str = "RSENDMAIL_RUNNER_RESTARTED";

/// Whether this periodic queue runner was executed by its own restart (read and
/// removed from the environment).
pub fn take_runner_restarted() -> bool {
    take_env(RUNNER_RESTARTED).is_some()
}

/// The environment variable in which a restarting daemon or runner names its MAILLOG,
/// where the program it executes says why it could not start ([`RestartedBy`]).
const RESTART_LOG: &str = "RSENDMAIL_RESTART_MAILLOG";

/// The environment variable in which a restarting daemon names its `O PidFile=`, which
/// the program it executes removes when it cannot start ([`RestartedBy`]).
const RESTART_PID_FILE: &str = "RSENDMAIL_RESTART_PIDFILE";

/// The environment variable that marks a program executed by a restart
/// ([`RestartedBy`]).
const RESTARTED: &str = "RSENDMAIL_RESTARTED";

/// What the program a restart replaced passed on for a start that fails: the configuration
/// the new program could not read may name another log, or none it can use, and its
/// errors go to the null device; so the reason is logged to syslog and to the MAILLOG the
/// old program used, and the pid file (naming this process, which is ending) is removed.
pub struct RestartedBy {
    maillog: Option<std::path::PathBuf>,
    pid_file: Option<std::path::PathBuf>,
}

/// Read (and take out of the environment) what a restart passed on, at start; None when
/// this program was not executed by a restart.
pub fn take_restarted_by() -> Option<RestartedBy> {
    let marked = take_env(RESTARTED).is_some();
    let maillog = super::taken_path(RESTART_LOG);
    let pid_file = super::taken_path(RESTART_PID_FILE);
    marked.then_some(RestartedBy { maillog, pid_file })
}

impl RestartedBy {
    /// The restarted program cannot start (`f`): said, and the pid file removed.
    pub fn failed(&self, f: &Fatal) {
        rsendmail::log::last_word(
            self.maillog.as_deref(),
            &format!(
                "restart (SIGHUP) failed: {}; not running (exit status {})",
                f.message, f.code as i32
            ),
        );
        if let Some(p) = &self.pid_file {
            remove_pid_file_at(p);
        }
    }
}

/// Tell the program a restart executes what it needs should it fail to start
/// ([`RestartedBy`]).
fn pass_restart_info(cmd: &mut Command, s: &Setup) {
    cmd.env(RESTARTED, "1");
    if let Some(p) = s.cfg.maillog_file() {
        cmd.env(RESTART_LOG, p);
    }
    if let Some(p) = &s.settings.pid_file {
        cmd.env(RESTART_PID_FILE, p);
    }
}

/// SIGHUP in a standalone periodic queue runner (`-q<interval>`), once its deliveries
/// in progress ended: the new start is checked as the daemon's is ([`restart_check`]),
/// unless `checked` (at the signal, [`start_successor`]), then the program at the path
/// it was started from is executed again with the same arguments, the same process,
/// told the runners it started meanwhile (`successors`, [`RUNNER_SUCCESSORS`]). Returns
/// only when the check refused the restart or the exec failed, which is logged (the
/// runner then runs on as it was), or when `stop` was set meanwhile (SIGTERM: the
/// runner stops).
pub fn restart_runner(s: &Setup, stop: &AtomicBool, successors: &BTreeSet<i32>, checked: bool) {
    use std::os::unix::process::CommandExt;
    if !checked && let Err(why) = restart_check(&[]) {
        log::error!(
            "SIGHUP: not restarting: {why}; running on with the configuration read at start"
        );
        return;
    }
    let exe = own_exe();
    let held = hold_signals();
    // A SIGTERM taken before the signals were held is not lost across the exec.
    if stop.load(Ordering::SeqCst) {
        release_signals(held);
        return;
    }
    let mut cmd = own_command(&exe);
    cmd.args(std::env::args_os().skip(1))
        .env(RUNNER_RESTARTED, "1")
        .env(RUNNER_SUCCESSORS, comma_list(successors.iter().copied()));
    pass_started_as(&mut cmd);
    pass_restart_info(&mut cmd, s);
    let e = cmd.exec();
    release_signals(held);
    log::error!(
        "SIGHUP: could not exec {}: {}; running on with the configuration read at start",
        exe.display(),
        rsendmail::config::io_text(&e)
    );
}

/// What a checked program printed, each thing once: a log line's own text without its
/// time and program (`2026-12-01T12:00:00+00:00 rsendmail-deliver[7]: `), and a line
/// dropped when an earlier one says the same or a shorter one begins it (`cannot open
/// MAILLOG X: ...; logging to stderr` beside the error `cannot open MAILLOG X: ...`).
fn said_once<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    let text = |l: &'a str| -> &'a str {
        let mut words = l.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some(time), Some(who), Some(rest))
                if time.len() >= 19
                    && time.as_bytes().get(4) == Some(&b'-')
                    && time.contains('T')
                    && who.ends_with("]:") =>
            {
                rest
            }
            _ => l,
        }
    };
    let all: Vec<&'a str> = lines.iter().map(|l| text(l)).collect();
    all.iter()
        .enumerate()
        .filter(|&(i, l)| {
            !all.iter()
                .enumerate()
                .any(|(j, o)| j != i && l.starts_with(o) && (l.len() > o.len() || j < i))
        })
        .map(|(_, l)| *l)
        .collect()
}

/// `-bd` (in the background) and `-bD` (in the foreground): listen, serve, and with
/// `-q<interval>` also run the queue.
pub fn daemon(
    s: &Setup,
    engine: &Engine,
    argv: &[OsString],
    foreground: bool,
) -> Result<Sysexit, Fatal> {
    app::may_process_queue(&s.spool)?;
    s.spool.prepare()?;
    refuse_second_daemon(s)?;
    // Every option was parsed (and refused when bad) before this process started.
    let addrs: Vec<SocketAddr> = match &s.settings.daemon_addrs {
        Some(given) => given.clone(),
        None => net::daemon_port_options("")?,
    };
    let trusted_nets = trusted_networks(s)?;
    // 0: no limit.
    let max_children = s.settings.max_daemon_children.unwrap_or_default();
    let max_recipients = max_recipients(s);
    let command_timeout = command_timeout(s);
    let mut listeners = Vec::new();
    // The sockets of the daemon this one replaces (SIGHUP): taken over for the
    // addresses still configured, so connections made during the restart wait in their
    // backlog instead of being refused; the others are closed.
    let restarted = std::env::var_os(LISTEN_FDS).is_some();
    let mut inherited = inherited_listeners();
    for a in &addrs {
        let taken = inherited
            .iter()
            .position(|l| l.local_addr().is_ok_and(|at| at == *a))
            .map(|i| Ok(inherited.swap_remove(i)));
        match taken.unwrap_or_else(|| TcpListener::bind(a)) {
            Ok(l) => {
                l.set_nonblocking(true)
                    .map_err(|e| Fatal::new(Sysexit::OsErr, format!("daemon: {a}: {e}")))?;
                listeners.push(l);
            }
            // IPv6 loopback may be missing; the other addresses still serve.
            Err(e) if a.is_ipv6() && addrs.iter().any(|x| x.is_ipv4()) => {
                log::warn!("daemon: cannot listen on {a}: {e}");
            }
            Err(e) => {
                return Err(Fatal::new(
                    Sysexit::OsErr,
                    format!("daemon: cannot bind to {a}: {e}"),
                ));
            }
        }
    }
    drop(inherited);
    if let Some(passed) = check_passed(s) {
        // Everything a start needs is there: the daemon that asked may execute us.
        rsendmail::outln!("{}", passed?);
        return Ok(Sysexit::Ok);
    }
    // The sessions of the daemon this one replaces: still its children (this is the
    // same process), counted and stopped as our own.
    let mut children: BTreeSet<i32> = inherited_sessions();
    // A restarted daemon is the same process, already in the background.
    if !foreground && !restarted {
        // SAFETY: single-threaded here; the child only continues this program.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Parent { .. }) => return Ok(Sysexit::Ok),
            Ok(nix::unistd::ForkResult::Child) => rsendmail::privs::detach(),
            Err(e) => return Err(Fatal::new(Sysexit::OsErr, format!("cannot fork: {e}"))),
        }
    }
    super::stop_on_signals(&STOP)?;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        signal_hook::low_level::register(signal_hook::consts::SIGHUP, || {
            RESTART.store(true, Ordering::SeqCst);
        })
    }
    .map_err(|e| Fatal::new(Sysexit::OsErr, format!("cannot handle signals: {e}")))?;
    // The handlers are in place: the signals a restarting daemon held across its exec
    // ([`exec_again`]) are taken now (one that came meanwhile restarts or stops us).
    release_held_signals();
    let bound: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.to_string())
        .collect();
    log::info!("listening on {}", bound.join(" "));
    if !children.is_empty() {
        log::info!(
            "{} sessions of the daemon before the restart go on",
            children.len()
        );
    }
    write_pid_file(s, argv);
    // The runners of the daemon this one replaces, finishing their deliveries: still our
    // children, reaped (and stopped on SIGTERM) here.
    let mut runners = Runners {
        current: None,
        finishing: running_children(numbers_in(RUNNER_PIDS)),
        started: None,
    };
    if !runners.finishing.is_empty() {
        log::info!(
            "queue runner of the daemon before the restart finishing its deliveries (pid={})",
            comma_list(runners.finishing.iter().copied())
        );
    }
    // The queue runner, when -q<interval> was given with -bd: started at once, also
    // beside one that is finishing (it skips the entries that one holds locked).
    runners.start(s, argv)?;
    let host = engine.host_name.clone();
    loop {
        let mut restart = false;
        while !STOP.load(Ordering::SeqCst) {
            if RESTART.swap(false, Ordering::SeqCst) {
                // A new start that would fail is said here, where the daemon logs, and
                // the daemon runs on as it is.
                match restart_check(&listeners) {
                    Ok(()) => {
                        restart = true;
                        break;
                    }
                    Err(why) => {
                        log::error!(
                            "SIGHUP: not restarting: {why}; running on with the configuration read at start"
                        );
                        continue;
                    }
                }
            }
            reap(&mut children, &mut runners);
            runners.replace_ended(s, argv);
            let mut fds: Vec<nix::poll::PollFd> = listeners
                .iter()
                .map(|l| nix::poll::PollFd::new(l.as_fd(), nix::poll::PollFlags::POLLIN))
                .collect();
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(500u16)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Fatal::new(Sysexit::OsErr, format!("daemon: poll: {e}"))),
            }
            let ready: Vec<usize> = fds
                .iter()
                .enumerate()
                .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(i, _)| i)
                .collect();
            drop(fds);
            for i in ready {
                let Some(listener) = listeners.get(i) else {
                    continue;
                };
                let (stream, peer) = match listener.accept() {
                    Ok(x) => x,
                    Err(_) => continue,
                };
                reap(&mut children, &mut runners);
                if max_children > 0 && children.len() >= max_children {
                    let _ = stream.set_nonblocking(true);
                    let mut st = &stream;
                    let _ = st.write_all(
                        format!(
                            "421 4.3.2 {host} Too many connections ({max_children}); try again later\r\n"
                        )
                        .as_bytes(),
                    );
                    log::warn!(
                        "{peer}: refused, {max_children} sessions already (MaxDaemonChildren)"
                    );
                    continue;
                }
                // The daemon's signals are held from before the fork until the session
                // has its own handlers: one that comes meanwhile is the session's to take,
                // not the daemon's handler's (which would set a flag the session never
                // reads) or the default action's.
                let held = hold_signals();
                // SAFETY: this process is single-threaded; the child serves one
                // connection and exits without returning here.
                match unsafe { nix::unistd::fork() } {
                    Ok(nix::unistd::ForkResult::Parent { child }) => {
                        release_signals(held);
                        children.insert(child.as_raw());
                    }
                    Ok(nix::unistd::ForkResult::Child) => {
                        session_signals();
                        release_signals(held);
                        drop(std::mem::take(&mut listeners));
                        let trusted = trusted_nets.iter().any(|n| n.contains(peer.ip()));
                        let client = Client::Remote { ip: peer.ip() };
                        let srv = server(s, engine, client, trusted, max_recipients);
                        let wake = app::for_the_runner(s).then_some(s.spool.dir.as_path());
                        let code = session(srv, engine, argv, wake, s, stream, command_timeout);
                        std::process::exit(code);
                    }
                    Err(e) => {
                        release_signals(held);
                        log::error!("{peer}: cannot fork a session: {e}");
                    }
                }
            }
        }
        if !restart || STOP.load(Ordering::SeqCst) {
            break;
        }
        // Restarting: the sessions go on, and so do the runner's deliveries in progress:
        // it is told to finish them and exit (SIGHUP), and the new program, which reaps
        // it, starts its own runner at once.
        log::info!(
            "daemon restarting (SIGHUP); {} sessions go on",
            children.len()
        );
        runners.finish();
        exec_again(s, &listeners, &children, &runners.finishing);
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        // The program could not be executed after all (it changed since its check):
        // said, and the daemon runs on as it was, with a new runner.
        if let Err(f) = runners.start(s, argv) {
            log::error!("{}", f.message);
        }
    }
    // Stopping: no new connections; the runner and the sessions are told to end.
    drop(std::mem::take(&mut listeners));
    log::info!("daemon stopping");
    for &pid in &children {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    runners.stop();
    while !children.is_empty() || runners.any() {
        reap(&mut children, &mut runners);
        std::thread::sleep(Duration::from_millis(20));
    }
    remove_pid_file(s);
    Ok(Sysexit::Ok)
}

/// Start a queue runner that follows this process (`--queue-runner --daemon-pid PID --
/// ARGV`: it stops when this process is gone, and on SIGHUP finishes its deliveries and
/// exits): the daemon's, and a standalone periodic runner's successor while it restarts
/// ([`start_successor`]). Its pid, for the caller to reap by pid (not through a handle).
fn start_runner(argv: &[OsString], successor: bool) -> Result<i32, Fatal> {
    let mut cmd = own_command(&own_exe());
    if successor {
        cmd.env(SUCCESSOR, "1");
    }
    cmd.args(rsendmail::log::inherited_args())
        .arg("--queue-runner")
        .arg("--daemon-pid")
        .arg(std::process::id().to_string())
        .arg("--")
        .args(argv)
        .stdin(Stdio::null());
    pass_started_as(&mut cmd);
    follow_parent(&mut cmd);
    let child = cmd.spawn().map_err(|e| {
        Fatal::new(
            Sysexit::OsErr,
            format!("cannot start the queue runner: {e}"),
        )
    })?;
    Ok(child.id() as i32)
}

/// SIGHUP in a standalone periodic queue runner (`-q<interval>`, run with `argv`): the
/// new start is checked as the daemon's is ([`restart_check`]); when it would start, a
/// runner of the new program and configuration is started at once beside this one
/// ([`start_runner`], a child that follows this process), which takes the new work
/// while this one lets its deliveries in progress end with the configuration it read.
/// Its pid; None when the check refused the restart (said: the runner runs on as it
/// was, its deliveries not stopped) or the successor could not start (said: the runner
/// restarts as before, once its deliveries end). Called by the thread that later
/// executes the program again ([`restart_runner`]): a child's parent-death signal
/// follows the thread that started it.
pub fn start_successor(argv: &[OsString]) -> Result<Option<i32>, String> {
    restart_check(&[])?;
    match start_runner(argv, true) {
        Ok(pid) => {
            log::info!(
                "SIGHUP: a queue runner of the new configuration takes new work (pid={pid}); this one finishes its deliveries in progress"
            );
            Ok(Some(pid))
        }
        Err(f) => {
            log::error!(
                "SIGHUP: {}; restarting once the deliveries in progress end",
                f.message
            );
            Ok(None)
        }
    }
}

/// The environment variable that tells a runner it was started by a standalone
/// periodic runner's reload ([`start_successor`]), which it says when it starts.
const SUCCESSOR: &str = "RSENDMAIL_RUNNER_SUCCESSOR";

/// Whether this runner was started by a standalone runner's reload ([`SUCCESSOR`]).
pub fn is_successor() -> bool {
    std::env::var_os(SUCCESSOR).is_some()
}

/// The environment variable in which a standalone periodic runner's restart names the
/// runners it started ([`start_successor`]): the new program tells them to finish once
/// it listens, and reaps them ([`take_successors`]).
const RUNNER_SUCCESSORS: &str = "RSENDMAIL_RUNNER_SUCCESSORS";

/// The runners a restart of this standalone periodic runner started
/// ([`RUNNER_SUCCESSORS`]) that are running children of this process; read once, at
/// start, before any thread.
pub fn take_successors() -> BTreeSet<i32> {
    running_children(numbers_in(RUNNER_SUCCESSORS))
}

/// The least time between two starts of the daemon's queue runner when it keeps ending
/// by itself (a runner that dies at once is not restarted in a tight loop).
const RUNNER_RESTART_PAUSE: Duration = Duration::from_secs(5);

/// The daemon's queue runners (`-q<interval>` or `-qp` with `-bd`), by process id (the
/// daemon reaps every child itself, [`reap`]).
struct Runners {
    /// The runner running the queue now.
    current: Option<i32>,
    /// Runners told to finish their deliveries and exit (a restart) or to stop (the
    /// daemon stops): not replaced when they end.
    finishing: BTreeSet<i32>,
    /// When the current runner was last started; None when no runner is wanted (no
    /// `-q<interval>`) or none was started yet.
    started: Option<std::time::Instant>,
}

impl Runners {
    /// Start the queue runner, when `-q<interval>` (or `-qp`) was given with `-bd`.
    fn start(&mut self, s: &Setup, argv: &[OsString]) -> Result<(), Fatal> {
        let Some(q) = s.inv.queue_run.as_ref() else {
            return Ok(());
        };
        if q.interval.is_none() && !q.persistent {
            return Ok(());
        }
        self.started = Some(std::time::Instant::now());
        self.current = Some(start_runner(argv, false)?);
        Ok(())
    }

    /// A runner ended that the daemon did not stop (it died, or finished after a SIGHUP
    /// of its own): a new one, at most one start per [`RUNNER_RESTART_PAUSE`].
    fn replace_ended(&mut self, s: &Setup, argv: &[OsString]) {
        if self.current.is_some() {
            return;
        }
        let Some(started) = self.started else {
            return;
        };
        if started.elapsed() < RUNNER_RESTART_PAUSE {
            return;
        }
        if let Err(f) = self.start(s, argv) {
            log::error!("{}", f.message);
        }
    }

    /// A child that ended: whether it was one of ours (then said and forgotten).
    fn ended(&mut self, pid: i32, status: &nix::sys::wait::WaitStatus) -> bool {
        use nix::sys::wait::WaitStatus;
        let how = match status {
            WaitStatus::Exited(_, code) => format!("status={code}"),
            WaitStatus::Signaled(_, sig, _) => format!("signal={sig}"),
            _ => return false,
        };
        if self.current == Some(pid) {
            self.current = None;
            log::error!("queue runner ended, pid={pid}, {how}; starting another");
            true
        } else if self.finishing.remove(&pid) {
            log::info!("queue runner finished, pid={pid}, {how}");
            true
        } else {
            false
        }
    }

    /// A restart: the current runner finishes its deliveries in progress and exits
    /// (SIGHUP: it starts no more, and abandons none).
    fn finish(&mut self) {
        if let Some(pid) = self.current.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGHUP,
            );
            self.finishing.insert(pid);
        }
    }

    /// The daemon stops: every runner is told to stop (SIGTERM: it lets its deliveries
    /// end within its grace time); [`reap`] sees them end.
    fn stop(&mut self) {
        self.started = None;
        self.finishing.extend(self.current.take());
        for pid in &self.finishing {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }

    /// Whether a runner is still running.
    fn any(&self) -> bool {
        self.current.is_some() || !self.finishing.is_empty()
    }
}

/// Unblock the signals a restart held across its exec ([`exec_again`],
/// [`restart_runner`]), once the new program's handlers are in place: one that came
/// meanwhile is taken now.
pub fn release_held_signals() {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
        Some(&session_signal_set()),
        None,
    );
}

/// The signals a session takes for itself, blocked across its fork, and the daemon's,
/// blocked across its restart's exec ([`hold_signals`]).
fn session_signal_set() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for sig in [
        nix::sys::signal::SIGHUP,
        nix::sys::signal::SIGTERM,
        nix::sys::signal::SIGINT,
    ] {
        set.add(sig);
    }
    set
}

/// Block the signals of [`session_signal_set`]; the mask before, for [`release_signals`].
fn hold_signals() -> Option<nix::sys::signal::SigSet> {
    let mut old = nix::sys::signal::SigSet::empty();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&session_signal_set()),
        Some(&mut old),
    )
    .ok()
    .map(|()| old)
}

/// Restore the signal mask [`hold_signals`] saved (a signal that came meanwhile is
/// taken now, by the handlers then in place).
fn release_signals(held: Option<nix::sys::signal::SigSet>) {
    if let Some(old) = held {
        let _ = nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&old),
            None,
        );
    }
}

/// A session's own signal handling, set while its signals are held: SIGTERM and SIGINT
/// (the daemon stopping, which passes them on) end it at once (what it acknowledged is
/// committed; what it had not is not); SIGHUP, the daemon's restart, is not for it (the
/// session goes on, as sendmail's do; a hangup sent to the whole process group does not
/// cut a client either).
fn session_signals() {
    for sig in [nix::sys::signal::SIGTERM, nix::sys::signal::SIGINT] {
        // SAFETY: restoring the default action installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    }
    // A handler that does nothing, not SIG_IGN: the programs the session starts get
    // SIGHUP's default action back when they are executed.
    extern "C" fn not_ours(_: libc::c_int) {}
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(not_ours),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler does nothing.
    let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::SIGHUP, &action) };
}

/// The environment variable in which a restarting daemon names its listening sockets'
/// descriptors (`3,4`) for the program it executes ([`inherited_listeners`]).
const LISTEN_FDS: &str = "RSENDMAIL_DAEMON_FDS";

/// The environment variable in which a restarting daemon names the process ids of its
/// sessions (`1234,1240`) for the program it executes ([`inherited_sessions`]).
const SESSION_PIDS: &str = "RSENDMAIL_DAEMON_SESSIONS";

/// The environment variable in which a restarting daemon names the process ids of its
/// queue runners finishing their deliveries (`1236`), for the program it executes to
/// reap.
const RUNNER_PIDS: &str = "RSENDMAIL_DAEMON_RUNNERS";

/// Read and remove an environment variable (at start, single-threaded): no process we
/// start inherits it.
fn take_env(name: &str) -> Option<OsString> {
    let v = std::env::var_os(name)?;
    // SAFETY: the daemon reads these before it starts any thread, fork or child.
    unsafe { std::env::remove_var(name) };
    Some(v)
}

/// The comma-separated numbers in an environment variable ([`take_env`]).
fn numbers_in(name: &str) -> BTreeSet<i32> {
    take_env(name)
        .unwrap_or_default()
        .to_str()
        .unwrap_or_default()
        .split(',')
        .filter_map(|f| f.parse::<i32>().ok())
        .collect()
}

/// The listening TCP sockets a restarting daemon passed on ([`LISTEN_FDS`]): each named
/// descriptor above 2 that is a listening stream socket of IPv4 or IPv6, once; marked
/// close-on-exec again, so that no process we start inherits them.
fn inherited_listeners() -> Vec<TcpListener> {
    numbers_in(LISTEN_FDS)
        .into_iter()
        .filter(|&fd| fd > 2 && is_listening_tcp(fd))
        .map(|fd| {
            // SAFETY: fcntl on a descriptor just checked to be open.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            // SAFETY: an open listening socket nothing else in this process owns (each
            // named once; the previous program's owner was replaced by exec).
            unsafe { TcpListener::from_raw_fd(fd) }
        })
        .collect()
}

/// The sessions a restarting daemon left running ([`SESSION_PIDS`]): each named process
/// that is a child of this one still running (`waitpid` tells: a process that is not our
/// child is refused, so a name from elsewhere can never be signalled; one that has ended
/// is reaped here).
fn inherited_sessions() -> BTreeSet<i32> {
    running_children(numbers_in(SESSION_PIDS))
}

/// The processes of `pids` that are running children of this process (others are
/// dropped; ended children are reaped).
fn running_children(pids: BTreeSet<i32>) -> BTreeSet<i32> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    pids.into_iter()
        .filter(|&pid| {
            pid > 0
                && matches!(
                    waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::StillAlive)
                )
        })
        .collect()
}

/// Whether `fd` is an open, listening IPv4 or IPv6 stream socket.
fn is_listening_tcp(fd: i32) -> bool {
    let opt = |name: libc::c_int| -> Option<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`; a descriptor that is
        // not an open socket gives an error.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                name,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    opt(libc::SO_ACCEPTCONN) == Some(1)
        && opt(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && matches!(opt(libc::SO_DOMAIN), Some(libc::AF_INET | libc::AF_INET6))
}

/// The descriptors of `listeners`, as [`LISTEN_FDS`] names them.
fn listener_fds(listeners: &[TcpListener]) -> Vec<i32> {
    use std::os::fd::AsRawFd;
    listeners.iter().map(|l| l.as_raw_fd()).collect()
}

fn comma_list(numbers: impl IntoIterator<Item = i32>) -> String {
    numbers
        .into_iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// SIGHUP's check of the new start, before the daemon stops anything: the program at the
/// path it was started from ([`super::own_exe`]) is run with the same arguments, the
/// listening sockets passed on, and [`RESTART_CHECK`] set, so that it does everything
/// the new daemon would do at its start (the configuration as it is now, the engine, the
/// spool, the listening addresses) and exits. The restart goes ahead only when that
/// program said it passed and exited 0; otherwise the reason: what it printed (bounded),
/// or why it could not be executed, crashed or did not end within
/// [`RESTART_CHECK_TIME`].
fn restart_check(listeners: &[TcpListener]) -> Result<(), String> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    // Root runs nothing anyone else could have changed.
    if let Some(why) = super::refused_own_exe() {
        return Err(why);
    }
    let exe = own_exe();
    let nonce = format!(
        "{}.{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let (mut reader, writer) =
        std::io::pipe().map_err(|e| format!("cannot check the new start: {e}"))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| format!("cannot check the new start: {e}"))?;
    let fds = listener_fds(listeners);
    let mut cmd = own_command(&exe);
    cmd.args(std::env::args_os().skip(1))
        .env(RESTART_CHECK, &nonce)
        .env(LISTEN_FDS, comma_list(fds.iter().copied()))
        .env_remove(SESSION_PIDS)
        .env_remove(RUNNER_PIDS)
        .env_remove(RUNNER_RESTARTED)
        .env_remove(super::STARTED_AS)
        .env_remove(RESTARTED)
        .env_remove(RESTART_LOG)
        .env_remove(RESTART_PID_FILE)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2);
    // SAFETY: between fork and exec only fcntl (async-signal-safe), on descriptors this
    // process owns; the parent's stay close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                libc::fcntl(fd, libc::F_SETFD, 0);
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    // Our copies of the pipe's writing end are closed: the end of the output is seen.
    drop(cmd);
    let mut child = spawned.map_err(|e| {
        format!(
            "could not exec {}: {}",
            exe.display(),
            rsendmail::config::io_text(&e)
        )
    })?;
    let until = std::time::Instant::now() + RESTART_CHECK_TIME;
    let mut said: Vec<u8> = Vec::new();
    let mut ended = false;
    let mut timed_out = false;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        let mut pfd = [nix::poll::PollFd::new(
            reader.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = u16::try_from(left.as_millis().min(200)).unwrap_or(200);
        match nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        let mut buf = [0u8; 4096];
        match reader.read(&mut buf) {
            Ok(0) => {
                ended = true;
                break;
            }
            Ok(n) => {
                if said.len() < 64 * 1024 {
                    said.extend_from_slice(buf.get(..n).unwrap_or_default());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    // The output ended (or could not be read): the program ends too, within what is
    // left of the time.
    let mut status = None;
    while !timed_out {
        match child.try_wait() {
            Ok(Some(st)) => {
                status = Some(st);
                break;
            }
            Ok(None) if std::time::Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => timed_out = true,
            Err(_) => break,
        }
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = String::from_utf8_lossy(&said);
    let passed_line = format!("{RESTART_CHECK_PASSED} {nonce}");
    let printed: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != passed_line)
        .collect();
    let mut printed = rsendmail::log::sanitize(&said_once(&printed).join("; "));
    if printed.len() > RESTART_CHECK_OUTPUT {
        let mut end = RESTART_CHECK_OUTPUT;
        while !printed.is_char_boundary(end) {
            end -= 1;
        }
        printed.truncate(end);
        printed.push_str("...");
    }
    let with_output = |what: String| {
        if printed.is_empty() {
            what
        } else {
            format!("{printed} ({what})")
        }
    };
    let program = exe.display();
    if timed_out {
        return Err(with_output(format!(
            "{program} did not finish its start-up checks within {}s",
            RESTART_CHECK_TIME.as_secs()
        )));
    }
    let Some(status) = status else {
        return Err(with_output(format!(
            "the start-up checks of {program} could not be followed"
        )));
    };
    if !ended && status.success() {
        return Err(format!(
            "the start-up checks of {program} could not be read"
        ));
    }
    if status.success() && text.lines().any(|l| l.trim() == passed_line) {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(0), _) => format!("{program} exited 0 without passing its start-up checks"),
        (Some(n), _) => format!("{program} would not start: exit status {n}"),
        (None, Some(sig)) => format!("{program} would not start: killed by signal {sig}"),
        (None, None) => format!("{program} would not start"),
    };
    Err(with_output(how))
}

/// SIGHUP: execute this program again ([`super::own_exe`]: a new binary renamed over the old
/// one is the one started) with the arguments it was started with, the listening
/// sockets passed on ([`LISTEN_FDS`]) and the sessions named ([`SESSION_PIDS`]), as
/// sendmail restarts on SIGHUP. Returns only when the exec failed, which is logged
/// (`could not exec`), or when SIGTERM came meanwhile; the sockets are then close-on-exec
/// again and the daemon runs on, or stops.
fn exec_again(
    s: &Setup,
    listeners: &[TcpListener],
    sessions: &BTreeSet<i32>,
    runners: &BTreeSet<i32>,
) {
    use std::os::unix::process::CommandExt;
    let exe = own_exe();
    let fds = listener_fds(listeners);
    for &fd in &fds {
        // SAFETY: fcntl on our own open descriptor: kept across the exec.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    // Held across the exec (a blocked signal stays pending through it) until the new
    // program has its handlers: until then SIGHUP's and SIGTERM's default action would
    // end the daemon.
    let held = hold_signals();
    // A SIGTERM taken before the signals were held is not lost across the exec: the
    // daemon stops instead.
    if STOP.load(Ordering::SeqCst) {
        release_signals(held);
        for &fd in &fds {
            // SAFETY: fcntl on our own open descriptor.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        return;
    }
    let mut cmd = own_command(&exe);
    cmd.args(std::env::args_os().skip(1))
        .env(LISTEN_FDS, comma_list(fds.iter().copied()))
        .env(SESSION_PIDS, comma_list(sessions.iter().copied()))
        .env(RUNNER_PIDS, comma_list(runners.iter().copied()));
    pass_started_as(&mut cmd);
    pass_restart_info(&mut cmd, s);
    let e = cmd.exec();
    release_signals(held);
    for &fd in &fds {
        // SAFETY: fcntl on our own open descriptor.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    log::error!(
        "SIGHUP: could not exec {}: {}; running on with the configuration read at start",
        exe.display(),
        rsendmail::config::io_text(&e)
    );
}

/// Name the path this program was started from to the program `cmd` executes
/// ([`super::STARTED_AS`]).
fn pass_started_as(cmd: &mut Command) {
    if let Some(p) = super::started_as() {
        cmd.env(super::STARTED_AS, p);
    }
}

/// Make the child `cmd` starts end (SIGTERM) when this process dies, whatever kills it:
/// Linux's parent-death signal, set in the child before it executes the program; a
/// parent already gone by then makes the start fail. Elsewhere nothing is set.
fn follow_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    // No allocation here (after fork): an errno says it.
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// `O PidFile=` removed when the daemon stops, if it still names this process (a daemon
/// started since may have written its own) on its first line.
pub(super) fn remove_pid_file(s: &Setup) {
    if let Some(p) = &s.settings.pid_file {
        remove_pid_file_at(p);
    }
}

/// The pid file at `p` removed if it names this process on its first line.
fn remove_pid_file_at(p: &std::path::Path) {
    // Only where one was written ([`write_pid_file`]): an admin's file elsewhere that
    // happens to begin with this process's id is not the daemon's.
    if rsendmail::spool::safety::pid_file_place_problem(p).is_some() {
        return;
    }
    let ours = format!("{}\n", std::process::id());
    match rsendmail::boundedfile::read_regular(p, true, 64 * 1024) {
        Ok((text, _)) if text.starts_with(ours.as_bytes()) => {
            if let Err(e) = std::fs::remove_file(p) {
                log::warn!("cannot remove {}: {e}", p.display());
            }
        }
        _ => {}
    }
}

/// A daemon (or runner) whose `O PidFile=` (a pid file: the pid, then the command line)
/// names another process that runs this same program is not started: it would write
/// its own pid over the running one's, and the scripts that read the file would lose
/// that one (and a stop of either would remove it). A stale file (its process gone, or
/// another program now has its id) is written over as before.
pub(super) fn refuse_second_daemon(s: &Setup) -> Result<(), Fatal> {
    let Some(p) = &s.settings.pid_file else {
        return Ok(());
    };
    let Ok((text, _)) = rsendmail::boundedfile::read_regular(p, true, 4096) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&text);
    let mut lines = text.lines();
    let (Some(pid), Some(recorded)) = (
        lines.next().and_then(|l| l.parse::<u32>().ok()),
        lines.next(),
    ) else {
        return Ok(());
    };
    // Itself (restarted by SIGHUP: the same process id), or the daemon whose restart
    // this process checks (its parent).
    if pid == std::process::id() || pid == 0 || pid == std::os::unix::process::parent_id() {
        return Ok(());
    }
    // Its command line as the pid file records it ([`replace_pid_file`]), and this
    // program (the daemon runs as the deliverer, whose command line is its own).
    let same_program = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .zip(std::env::current_exe().ok())
        .is_some_and(|(theirs, ours)| theirs == ours);
    if !same_program || recorded.is_empty() {
        return Ok(());
    }
    Err(Fatal::new(
        Sysexit::Unavailable,
        format!(
            "O PidFile {} names the daemon that runs as process {pid}: not started over \
             it (stop that one first, or give this one a pid file of its own)",
            p.display()
        ),
    ))
}

/// `O PidFile=`: the daemon's process id, for scripts and service managers, as sendmail
/// writes it: the pid on the first line, the command line on the second. Mode 0644,
/// owned by root when root runs the daemon (not the spool's group a set-gid binary runs
/// with: a member of the group could otherwise choose the pid root's scripts kill).
/// Written to a new file beside it (`O_EXCL`, which follows no symbolic link) and renamed
/// over the path: whatever is there (a stale file, a symbolic link) is replaced, never
/// written through.
pub(super) fn write_pid_file(s: &Setup, argv: &[OsString]) {
    let Some(p) = &s.settings.pid_file else {
        return;
    };
    // Never over a file that is not a pid file (a typo naming /etc/fstab): it would
    // be replaced, then removed at the stop. Nor anywhere in the system's places but
    // where sendmail's configurations put one (`/run/sendmail.pid`) and rsendmail's
    // own places (`/etc/profile.d/rsendmail.sh` would be sourced by every login shell).
    if let Some(why) = rsendmail::spool::safety::pid_file_problem(p)
        .or_else(|| rsendmail::spool::safety::pid_file_place_problem(p))
    {
        log::warn!(
            "cannot write {}: {why}; it is left as it is (correct O PidFile)",
            p.display()
        );
        return;
    }
    if let Err(e) = replace_pid_file(p, argv) {
        log::warn!("cannot write {}: {e}", p.display());
    }
}

fn replace_pid_file(p: &std::path::Path, argv: &[OsString]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let command_line: String = argv
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let text = format!("{}\n{command_line}\n", std::process::id());
    let name = p
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}", std::process::id()));
    let tmp = p.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let done = (|| {
        if nix::unistd::geteuid().is_root() {
            nix::unistd::fchown(
                f.as_fd(),
                Some(nix::unistd::Uid::from_raw(0)),
                Some(nix::unistd::Gid::from_raw(0)),
            )?;
        }
        nix::sys::stat::fchmod(f.as_fd(), nix::sys::stat::Mode::from_bits_truncate(0o644))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, p)
    })();
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Reap the children that ended: sessions are forgotten, runners said ([`Runners::ended`]).
fn reap(children: &mut BTreeSet<i32>, runners: &mut Runners) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(st) => {
                if let Some(pid) = st.pid() {
                    let pid = pid.as_raw();
                    if !runners.ended(pid, &st) {
                        children.remove(&pid);
                    }
                }
            }
        }
    }
}

/// One connection, in its own process.
fn session(
    mut srv: Server<'_>,
    engine: &Engine,
    argv: &[OsString],
    wake: Option<&std::path::Path>,
    setup: &Setup,
    stream: TcpStream,
    timeout: Duration,
) -> i32 {
    // Its signals were set up before the daemon's were released ([`session_signals`]).
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let _ = stream.set_nodelay(true);
    let mut backend = EngineBackend {
        engine,
        dns: None,
        argv,
        wake,
        setup,
        delivery_status: None,
    };
    let Ok(read_half) = stream.try_clone() else {
        return 0;
    };
    // Each read keeps to the deadline the session sets (a command line, a data block).
    let mut input = BufReader::with_capacity(64 * 1024, Timed::new(read_half));
    // Each group of replies must be taken by the client within the timeout, as each
    // command line must come within it: a client that reads a few bytes at a time gets
    // no more.
    let mut out = std::io::BufWriter::new(TimedWrite::new(stream, timeout));
    match srv.run(&mut backend, &mut input, &mut out) {
        Ok(end) => log::info!(
            "{}: session ended, {} messages",
            srv.client_text(),
            end.accepted.len()
        ),
        Err(e) => log::info!("{}: session ended: {e}", srv.client_text()),
    }
    0
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    /// The refusal says each thing the checked program printed once, without a log
    /// line's time and program.
    #[test]
    fn a_checked_programs_words_are_said_once() {
        let lines = [
            "2026-12-01T12:53:53+00:00 rsendmail-deliver[25286]: cannot open MAILLOG /x/log: No such file or directory; logging to stderr",
            "cannot open MAILLOG /x/log: No such file or directory",
        ];
        assert_eq!(
            said_once(&lines),
            ["cannot open MAILLOG /x/log: No such file or directory"]
        );
        assert_eq!(said_once(&["a", "a", "b"]), ["a", "b"]);
        assert_eq!(said_once(&["conf: line 1: bad"]), ["conf: line 1: bad"]);
        assert_eq!(said_once(&[]), Vec::<&str>::new());
    }

    use super::*;

    #[test]
    fn only_running_children_are_taken_as_sessions() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let mut ended = Command::new("true").spawn().unwrap();
        let ended_pid = ended.id() as i32;
        // Ended, not yet reaped: a zombie child of ours (waited for without reaping).
        // SAFETY: waitid writes into the zeroed siginfo it is given.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            assert_eq!(
                libc::waitid(
                    libc::P_PID,
                    ended_pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT
                ),
                0
            );
        }
        let me = child.id() as i32;
        let taken = running_children([me, ended_pid, 1, 0, -1].into_iter().collect());
        assert_eq!(taken, [me].into_iter().collect::<BTreeSet<i32>>());
        // The ended child was reaped by the look.
        assert!(ended.try_wait().is_err());
        let _ = child.kill();
        let _ = child.wait();
    }
}
