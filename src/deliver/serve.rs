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
//! sendmail's restart. The configuration is checked first (a mistake is logged and the
//! daemon runs on); then the daemon stops accepting (its listening sockets are kept and
//! passed to the new program, so new connections wait), stops the runner, lets the
//! sessions finish (SIGHUP to each: a transaction in progress ends, an idle session gets
//! a 421) within [`RESTART_GRACE`], and executes itself again with the same arguments
//! from the path it was started from ([`super::own_exe`]: the configuration is read anew, a
//! new binary renamed over the path is the one run). Nothing acknowledged can be lost: a session replies
//! 250 only after the commit point, and a message whose DATA was cut short was never
//! acknowledged (its temporary file is removed, or swept by the next queue run).

use super::{Engine, deliver_ids, dns, own_exe};
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
    /// The exit status of the first interactive (`-odi`) delivery that did not end 0:
    /// a `-bs` session exits with it when it noted no error itself, as sendmail's does
    /// (a recipient the relay refused: 67; recorded: `bs-dsn-xtext`).
    delivery_status: Option<Sysexit>,
}

impl EngineBackend<'_> {
    /// Start `rsendmail-deliver PREFIX -- ARGV` with no stdio (stdout may be the session).
    fn spawn(&self, prefix: &[&str]) -> std::io::Result<std::process::Child> {
        Command::new(own_exe())
            .env_remove(LISTEN_FDS)
            .args(rsendmail::log::inherited_args())
            .args(prefix)
            .arg("--")
            .args(self.argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    /// A child we do not wait for is reaped by a thread (no zombies in a long session).
    fn detach(child: std::process::Child) {
        let mut child = child;
        std::thread::spawn(move || {
            let _ = child.wait();
        });
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
                Self::detach(c);
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
            DeliveryMode::Background => match self.spawn(&["--entry", id, "--background"]) {
                Ok(c) => Self::detach(c),
                Err(e) => log::error!("{id}: cannot start delivery: {e}; it stays queued"),
            },
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

/// Set by SIGHUP in the daemon: check the configuration, and when it is good, stop
/// taking connections, let the sessions finish and execute the program again.
static RESTART: AtomicBool = AtomicBool::new(false);

/// Set by SIGHUP in a session's process (the daemon's restart): the session ends at its
/// next command outside a transaction with [`RESTARTING`]'s 421.
static CLOSING: AtomicBool = AtomicBool::new(false);

/// How long a restart (SIGHUP) waits for the sessions in progress: a transaction under
/// way gets this long to end; sessions still running then are ended as on SIGTERM.
pub const RESTART_GRACE: Duration = Duration::from_secs(60);

/// The reply an idle session gets when the daemon restarts. sendmail has none (its
/// sessions outlive its restart); the words are sendmail's for a session it closes
/// (`421 4.7.0 <host> ... closing connection`), with RFC 3463's 4.3.2 "system not
/// accepting network messages".
const RESTARTING: &str = "Service restarting, closing connection";

/// The configuration a SIGHUP would start with, read and checked here first (the
/// command line as at start, the config file as it is now, and what the engine reads):
/// its error (with the file and line) when the new process could not start.
fn check_configuration(argv: &[OsString]) -> Result<(), Fatal> {
    let s = app::setup(argv.to_vec())?;
    Engine::from_setup(&s).map(|_| ())
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
    if !foreground {
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
    let bound: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.to_string())
        .collect();
    log::info!("listening on {}", bound.join(" "));
    write_pid_file(s, argv);
    // The queue runner, when -q<interval> was given with -bd.
    let runner = match s.inv.queue_run.as_ref() {
        Some(q) if q.interval.is_some() || q.persistent => {
            let mut cmd = Command::new(own_exe());
            cmd.env_remove(LISTEN_FDS)
                .args(rsendmail::log::inherited_args())
                .arg("--queue-runner")
                .arg("--daemon-pid")
                .arg(std::process::id().to_string())
                .arg("--")
                .args(argv)
                .stdin(Stdio::null());
            follow_parent(&mut cmd);
            let child = cmd.spawn().map_err(|e| {
                Fatal::new(
                    Sysexit::OsErr,
                    format!("cannot start the queue runner: {e}"),
                )
            })?;
            Some(child)
        }
        _ => None,
    };
    let mut children: BTreeSet<i32> = BTreeSet::new();
    let host = engine.host_name.clone();
    let mut restart = false;
    while !STOP.load(Ordering::SeqCst) {
        if RESTART.swap(false, Ordering::SeqCst) {
            // A configuration that would not start is said here, where the daemon logs,
            // and the daemon runs on as it is.
            match check_configuration(argv) {
                Ok(()) => {
                    restart = true;
                    break;
                }
                Err(f) => {
                    log::error!(
                        "SIGHUP: not restarting: {}; running on with the configuration read at start",
                        f.message
                    );
                    continue;
                }
            }
        }
        reap(&mut children);
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
            let (stream, peer) = match listeners[i].accept() {
                Ok(x) => x,
                Err(_) => continue,
            };
            reap(&mut children);
            if max_children > 0 && children.len() >= max_children {
                let _ = stream.set_nonblocking(true);
                let mut st = &stream;
                let _ = st.write_all(
                    format!(
                        "421 4.3.2 {host} Too many connections ({max_children}); try again later\r\n"
                    )
                    .as_bytes(),
                );
                log::warn!("{peer}: refused, {max_children} sessions already (MaxDaemonChildren)");
                continue;
            }
            // SAFETY: this process is single-threaded; the child serves one connection and
            // exits without returning here.
            match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Parent { child }) => {
                    children.insert(child.as_raw());
                }
                Ok(nix::unistd::ForkResult::Child) => {
                    drop(std::mem::take(&mut listeners));
                    let trusted = trusted_nets.iter().any(|n| n.contains(peer.ip()));
                    let client = Client::Remote { ip: peer.ip() };
                    let srv = server(s, engine, client, trusted, max_recipients);
                    let wake = app::for_the_runner(s).then_some(s.spool.dir.as_path());
                    let code = session(srv, engine, argv, wake, stream, command_timeout);
                    std::process::exit(code);
                }
                Err(e) => log::error!("{peer}: cannot fork a session: {e}"),
            }
        }
    }
    // Stopping: no new connections; the runner is told to end; so are the sessions, or
    // on a restart, told to finish (a transaction in progress ends, an idle session is
    // closed with a 421) within RESTART_GRACE. A restart keeps its listening sockets
    // (no longer accepting) for the new program.
    if !restart {
        drop(std::mem::take(&mut listeners));
    }
    if restart {
        log::info!(
            "daemon restarting (SIGHUP): {} sessions may finish (at most {}s)",
            children.len(),
            RESTART_GRACE.as_secs()
        );
    } else {
        log::info!("daemon stopping");
    }
    let session_signal = if restart {
        nix::sys::signal::Signal::SIGHUP
    } else {
        nix::sys::signal::Signal::SIGTERM
    };
    for &pid in &children {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), session_signal);
    }
    if let Some(r) = &runner {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(r.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if let Some(mut r) = runner {
        let _ = r.wait();
    }
    if restart {
        let until = std::time::Instant::now() + RESTART_GRACE;
        reap(&mut children);
        while !children.is_empty()
            && std::time::Instant::now() < until
            && !STOP.load(Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_millis(20));
            reap(&mut children);
        }
        if !children.is_empty() {
            log::warn!(
                "{} sessions still running: ended as on SIGTERM",
                children.len()
            );
            for &pid in &children {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
    while !children.is_empty() {
        reap(&mut children);
        std::thread::sleep(Duration::from_millis(20));
    }
    remove_pid_file(s);
    // SIGTERM during the restart's wait: the daemon stops instead.
    if restart && !STOP.load(Ordering::SeqCst) {
        log::info!("daemon restarting (SIGHUP)");
        exec_again(&listeners);
    }
    Ok(Sysexit::Ok)
}

/// The environment variable in which a restarting daemon names its listening sockets'
/// descriptors (`3,4`) for the program it executes ([`inherited_listeners`]).
const LISTEN_FDS: &str = "RSENDMAIL_DAEMON_FDS";

/// The listening TCP sockets a restarting daemon passed on ([`LISTEN_FDS`]): each named
/// descriptor above 2 that is a listening stream socket of IPv4 or IPv6, once; marked
/// close-on-exec again, so that no process we start inherits them.
fn inherited_listeners() -> Vec<TcpListener> {
    let Some(named) = std::env::var_os(LISTEN_FDS) else {
        return Vec::new();
    };
    let fds: BTreeSet<i32> = named
        .to_str()
        .unwrap_or_default()
        .split(',')
        .filter_map(|f| f.parse::<i32>().ok())
        .filter(|&fd| fd > 2 && is_listening_tcp(fd))
        .collect();
    fds.into_iter()
        .map(|fd| {
            // SAFETY: fcntl on a descriptor just checked to be open.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            // SAFETY: an open listening socket nothing else in this process owns (each
            // named once; the previous program's owner was replaced by exec).
            unsafe { TcpListener::from_raw_fd(fd) }
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

/// SIGHUP: execute this program again ([`super::own_exe`]: a new binary renamed over the old
/// one is the one started) with the arguments it was started with, and the listening
/// sockets passed on ([`LISTEN_FDS`]), as sendmail restarts on SIGHUP. Returns only when the exec failed,
/// which is logged; the daemon then ends as after SIGTERM.
fn exec_again(listeners: &[TcpListener]) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let exe = own_exe();
    let fds: Vec<String> = listeners
        .iter()
        .map(|l| {
            let fd = l.as_raw_fd();
            // SAFETY: fcntl on our own open descriptor: kept across the exec.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
            fd.to_string()
        })
        .collect();
    let e = Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(LISTEN_FDS, fds.join(","))
        .exec();
    log::error!("cannot restart: {}: {e}", exe.display());
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
fn remove_pid_file(s: &Setup) {
    let Some(p) = &s.settings.pid_file else {
        return;
    };
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

/// `O PidFile=`: the daemon's process id, for scripts and service managers, as sendmail
/// writes it: the pid on the first line, the command line on the second. Mode 0644,
/// owned by root when root runs the daemon (not the spool's group a set-gid binary runs
/// with: a member of the group could otherwise choose the pid root's scripts kill).
/// Written to a new file beside it (`O_EXCL`, which follows no symbolic link) and renamed
/// over the path: whatever is there (a stale file, a symbolic link) is replaced, never
/// written through.
fn write_pid_file(s: &Setup, argv: &[OsString]) {
    let Some(p) = &s.settings.pid_file else {
        return;
    };
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

fn reap(children: &mut BTreeSet<i32>) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(st) => {
                if let Some(pid) = st.pid() {
                    children.remove(&pid.as_raw());
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
    stream: TcpStream,
    timeout: Duration,
) -> i32 {
    // The daemon's SIGTERM handler is not ours: a session that is told to stop ends at
    // once (what it acknowledged is committed; what it had not is not).
    for sig in [nix::sys::signal::SIGTERM, nix::sys::signal::SIGINT] {
        // SAFETY: restoring the default action installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    }
    // SIGHUP (the daemon restarting): finish the transaction in progress, then close.
    extern "C" fn closing(_: libc::c_int) {
        CLOSING.store(true, Ordering::SeqCst);
    }
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(closing),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::SIGHUP, &action) };
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let _ = stream.set_nodelay(true);
    let mut backend = EngineBackend {
        engine,
        dns: None,
        argv,
        wake,
        delivery_status: None,
    };
    let Ok(read_half) = stream.try_clone() else {
        return 0;
    };
    // Each read keeps to the deadline the session sets (a command line, a data block).
    // Between transactions a read also ends when the daemon restarts (CLOSING).
    let mut input = BufReader::with_capacity(
        64 * 1024,
        Timed::new(read_half).stopped_by(&CLOSING, RESTARTING),
    );
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
