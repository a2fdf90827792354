//! The servers the tests start, each on 127.0.0.1 and a port the kernel chose, each
//! stopped when dropped: the aiosmtpd fault server (tests/peers/fault_server.py),
//! Postfix's smtp-sink, dnsmasq, and rsendmail's own `-bD` daemon; and a raw SMTP client
//! for tests where the bytes on the wire are the point.

use super::{Env, require, sigterm, unavailable, wait_exit, wait_until, wait_until_or};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The aiosmtpd fault server, stopped when dropped.
pub struct Peer {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

impl Peer {
    pub fn start(dir: &Path, envs: &[(&str, &str)]) -> Peer {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let state = dir.join(format!("peer{n}"));
        let _ = fs::remove_dir_all(&state);
        fs::create_dir_all(&state).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/fault_server.py");
        let child = Command::new("python3")
            .args(["-W", "ignore"])
            .arg(script)
            .arg(&state)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("python3");
        let port_file = state.join("port");
        wait_until(
            Duration::from_secs(20),
            "the test SMTP server to start (its port file)",
            || port_file.exists(),
        );
        let port = fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Peer {
            child,
            dir: state,
            port,
        }
    }

    /// Stored messages, in arrival order: (envelope json, message bytes).
    pub fn messages(&self) -> Vec<(String, Vec<u8>)> {
        let mut names: Vec<PathBuf> = fs::read_dir(self.dir.join("messages"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "json"));
        names.sort();
        names
            .iter()
            .map(|j| {
                (
                    fs::read_to_string(j).unwrap(),
                    fs::read(j.with_extension("eml")).unwrap(),
                )
            })
            .collect()
    }

    pub fn transcript(&self) -> String {
        fs::read_to_string(self.dir.join("transcript.log")).unwrap_or_default()
    }

    /// Wait until at least `n` messages arrived (or `limit` passed: the callers check
    /// how many came); the messages.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<(String, Vec<u8>)> {
        let start = Instant::now();
        loop {
            let m = self.messages();
            if m.len() >= n || start.elapsed() > limit {
                return m;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Wait until the transcript contains `text`; panics with the transcript after
    /// `limit`.
    #[track_caller]
    pub fn wait_transcript(&self, text: &str, limit: Duration) {
        wait_until_or(
            limit,
            &format!("{text:?} in the peer's transcript"),
            || self.transcript(),
            || self.transcript().contains(text),
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fault server in a scratch directory of its own (the returned Env keeps it), or
/// None (after a note) when aiosmtpd is not installed.
pub fn start_peer(envs: &[(&str, &str)]) -> Option<(Env, Peer)> {
    if !have_peer() {
        return None;
    }
    let scratch = Env::new();
    let peer = Peer::start(&scratch.dir, envs);
    Some((scratch, peer))
}

pub fn have_peer() -> bool {
    if !require("python3") {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok || unavailable("aiosmtpd")
}

pub fn relay_env(port: u16, extra: &str) -> Env {
    Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {port}\nO Timeout.connect=5s\nO Timeout.datafinal=20s\n{extra}"
    ))
}

/// Postfix's smtp-sink (extracted by scripts/test-all), stopped when dropped.
pub struct Sink {
    child: Child,
    pub dumps: PathBuf,
    pub log: PathBuf,
    pub port: u16,
}

impl Sink {
    /// `None` (with a note) when smtp-sink is not available outside CI.
    pub fn start(dir: &Path, extra: &[&str]) -> Option<Sink> {
        let Some(bin) = std::env::var_os("RSENDMAIL_SMTP_SINK").map(PathBuf::from) else {
            unavailable("smtp-sink (RSENDMAIL_SMTP_SINK)");
            return None;
        };
        let lib = bin.parent()?.parent()?.join("lib/postfix");
        let dumps = dir.join("sink-dumps");
        fs::create_dir_all(&dumps).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dumps, fs::Permissions::from_mode(0o777)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("sink.log");
        let mut cmd = Command::new(&bin);
        cmd.env("LD_LIBRARY_PATH", &lib).arg("-v");
        if crate::harness::is_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.args(extra)
            .arg("-d")
            .arg(format!("{}/%M.", dumps.display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        let child = cmd.spawn().expect("smtp-sink");
        wait_until(Duration::from_secs(10), "smtp-sink to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(Sink {
            child,
            dumps,
            log,
            port,
        })
    }

    /// The messages received, as text (one that is not UTF-8 as "").
    pub fn dumps(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .raw_dumps()
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap_or_default())
            .collect();
        v.sort();
        v
    }

    /// Every message smtp-sink dumped, as bytes (its dump: the envelope as `X-` lines,
    /// then the message).
    pub fn raw_dumps(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = fs::read_dir(&self.dumps)
            .unwrap()
            .flatten()
            .map(|e| fs::read(e.path()).unwrap_or_default())
            .collect();
        v.sort();
        v
    }

    /// Connections accepted so far (our readiness probe included).
    pub fn connections(&self) -> usize {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(": connect (AF_INET")
            .count()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct DnsServer {
    child: Child,
    log: PathBuf,
    pub port: u16,
}

impl DnsServer {
    /// Starts dnsmasq on a free port. The port is picked free for UDP; dnsmasq also
    /// listens on TCP there, and another process may hold that, so a dnsmasq that exits
    /// at start is tried again on a new port (its stderr says why, shown if all fail).
    pub fn start(dir: &Path, records: &[&str]) -> Option<DnsServer> {
        if !require("dnsmasq") {
            return None;
        }
        let mut why = String::new();
        for _ in 0..5 {
            match Self::try_start(dir, records) {
                Ok(server) => return Some(server),
                Err(e) => why = e,
            }
        }
        panic!("dnsmasq did not start: {why}");
    }

    fn try_start(dir: &Path, records: &[&str]) -> Result<DnsServer, String> {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join(format!("dnsmasq-{port}.log"));
        let errors = dir.join(format!("dnsmasq-{port}.err"));
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
        ])
        .args([
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--local=/test/",
            "--log-queries",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--log-facility={}", log.display()))
        .arg(format!(
            "--pid-file={}",
            dir.join(format!("dnsmasq-{port}.pid")).display()
        ));
        if crate::harness::is_root() {
            cmd.arg("--user=root");
        }
        cmd.args(records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&errors).unwrap());
        let mut child = cmd.spawn().expect("dnsmasq");
        let start = Instant::now();
        while !fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("started")
        {
            if let Some(status) = child.try_wait().unwrap() {
                let stderr = fs::read_to_string(&errors).unwrap_or_default();
                return Err(format!("port {port}: {status}: {}", stderr.trim()));
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("port {port}: no \"started\" in 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(DnsServer { child, log, port })
    }

    pub fn queries(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(": query["))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `-bD` daemon on a free port, stopped (SIGTERM) when dropped.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
}

impl Daemon {
    /// Start `sendmail -C conf -bD ARGS` listening on 127.0.0.1:<free port>.
    pub fn start(env: &Env, args: &[&str]) -> Daemon {
        let port = crate::harness::closed_tcp_port();
        env.add_config(&format!("O DaemonPortOptions=Port={port},Addr=127.0.0.1\n"));
        Daemon::start_on(env, args, port)
    }

    pub fn start_on(env: &Env, args: &[&str], port: u16) -> Daemon {
        Daemon::start_program(env, &env.link("sendmail"), args, port)
    }

    /// Start `PROGRAM -C conf -bD ARGS` listening on 127.0.0.1:`port` (the config names it).
    pub fn start_program(env: &Env, program: &Path, args: &[&str], port: u16) -> Daemon {
        let child = Command::new(program)
            .args(["-C", env.conf.to_str().unwrap(), "-bD"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut probe = None;
        wait_until(Duration::from_secs(30), "the daemon to listen", || {
            probe = TcpStream::connect(("127.0.0.1", port)).ok();
            probe.is_some()
        });
        // The probe's greeting: the daemon has accepted it and forked its session, which
        // ends when the probe is dropped here (Daemon::sessions then counts it until the
        // daemon reaps it).
        let mut probe = Raw::from(probe.unwrap());
        let greeting = probe.line();
        assert!(
            !greeting.is_empty(),
            "the daemon closed the probe unanswered"
        );
        Daemon { child, port }
    }
}

impl Daemon {
    /// The sessions the daemon has forked and not yet reaped (its child processes).
    pub fn sessions(&self) -> usize {
        let pid = self.child.id();
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .expect("/proc/PID/task/PID/children")
            .split_whitespace()
            .count()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A test may have stopped it already.
        if matches!(self.child.try_wait(), Ok(None)) {
            sigterm(&self.child);
            // wait_exit kills it when SIGTERM was not enough.
            let _ = wait_exit(&mut self.child, Duration::from_secs(10));
        }
    }
}

/// A raw client: write bytes, read reply lines.
pub struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        Raw::from(TcpStream::connect(("127.0.0.1", port)).unwrap())
    }

    /// A connection to `port` whose greeting was read (and not looked at).
    pub fn greeted(port: u16) -> Raw {
        let mut c = Raw::connect(port);
        c.line();
        c
    }

    pub fn from(s: TcpStream) -> Raw {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    /// One whole reply (its lines); empty when the server closed.
    pub fn reply(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let mut l = String::new();
            if self.r.read_line(&mut l).unwrap_or(0) == 0 {
                return out;
            }
            let l = l.trim_end().to_string();
            let last = l.len() < 4 || l.as_bytes()[3] != b'-';
            out.push(l);
            if last {
                return out;
            }
        }
    }

    /// The last line of the next reply.
    pub fn line(&mut self) -> String {
        self.reply().pop().unwrap_or_default()
    }

    /// Shut the connection down both ways (a client that goes away).
    pub fn shutdown(&mut self) {
        self.w.shutdown(std::net::Shutdown::Both).unwrap();
    }

    /// Another handle on the connection, for writing from another thread.
    pub fn writer(&self) -> TcpStream {
        self.w.try_clone().unwrap()
    }

    pub fn send(&mut self, b: &[u8]) {
        self.w.write_all(b).unwrap();
    }

    /// Send a command, return its whole reply.
    pub fn reply_to(&mut self, c: &str) -> Vec<String> {
        self.send(format!("{c}\r\n").as_bytes());
        self.reply()
    }

    /// Send a command, return the last line of its reply.
    pub fn cmd(&mut self, c: &str) -> String {
        self.send(format!("{c}\r\n").as_bytes());
        self.line()
    }

    /// MAIL FROM a@test.example, RCPT TO `rcpt`, DATA: each accepted, the data not sent.
    pub fn begin_data(&mut self, rcpt: &str) {
        assert!(self.cmd("MAIL FROM:<a@test.example>").starts_with("250 "));
        assert!(self.cmd(&format!("RCPT TO:<{rcpt}>")).starts_with("250 "));
        assert!(self.cmd("DATA").starts_with("354 "));
    }

    /// Whether the server closed the connection (reads EOF).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0))
    }
}

/// Connect to 127.0.0.1:port from a chosen local address (std cannot bind a socket
/// before connecting it).
pub fn socket2_connect_from(local: &str, port: u16) -> TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns until it is wrapped.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        let ip: std::net::Ipv4Addr = local.parse().unwrap();
        sa.sin_addr.s_addr = u32::from(ip).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len),
            0
        );
        let mut to: libc::sockaddr_in = std::mem::zeroed();
        to.sin_family = libc::AF_INET as libc::sa_family_t;
        to.sin_port = port.to_be();
        to.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        assert_eq!(
            libc::connect(fd, &to as *const _ as *const libc::sockaddr, len),
            0
        );
        TcpStream::from_raw_fd(fd)
    }
}
