//! The SMTP server: `-bs` through a pipe and `-bd`/`-bD` on a high port of 127.0.0.1,
//! driven by real clients (Python's smtplib, swaks) and by raw sockets where the bytes on
//! the wire are the point (pipelining, smuggling, limits).

use crate::harness::servers::{
    Daemon, DnsServer, Raw, relay_env, socket2_connect_from, start_peer,
};
use crate::harness::{Env, holds_for, require, sigterm, wait_exit, wait_until, wait_until_or};
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Wait until the spool holds `n` entries (sessions commit before replying, but a test
/// may look from another process).
fn entries_after(env: &Env, n: usize) -> usize {
    let start = Instant::now();
    while env.entries().len() < n && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    env.entries().len()
}

/// Temporary files left in the spool (a message that was never acknowledged).
fn tmp_files(env: &Env) -> usize {
    fs::read_dir(env.spool.join("tmp"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// Runs `script` with python3 and `args`; it must succeed. What it printed.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ETRN domain` in the session `c`, answered that the run for it started.
fn etrn_started(c: &mut Raw, domain: &str) {
    assert_eq!(
        c.cmd(&format!("ETRN {domain}")),
        format!("250 2.0.0 Queuing for node {domain} started")
    );
}

/// Runs swaks with `args`; it must succeed. What it printed.
fn swaks(args: &[&str]) -> String {
    let out = Command::new("swaks").args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

/// `-bs` on `env`'s config, queueing only, its stdin and stdout piped, stderr dropped.
fn spawn_bs(env: &Env) -> std::process::Child {
    Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-bs", "-odq"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn smtplib_sends_fifty_messages_in_one_session() {
    if !require("python3") {
        return;
    }
    let env = Env::new();
    let d = Daemon::start(&env, &["-odq"]);
    let out = python(
        r#"
import smtplib, sys
from email.message import EmailMessage
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
code, _ = s.ehlo("client.example")
assert code == 250
assert s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("dsn") and s.has_extn("etrn") and s.has_extn("size")
for i in range(50):
    m = EmailMessage()
    m["From"] = "list@test.example"
    m["To"] = f"member{i}@example.net"
    m["Subject"] = f"message {i}"
    m.set_content(f"body {i}\n.leading dot\n")
    refused = s.send_message(m, rcpt_options=["NOTIFY=FAILURE"], mail_options=["BODY=8BITMIME"])
    assert refused == {}, refused
print(s.quit()[0])
"#,
        &[&d.port.to_string()],
    );
    assert_eq!(out.trim(), "221");
    assert_eq!(entries_after(&env, 50), 50);
    let listing = env.mailq(&[]);
    for i in 0..50 {
        assert!(
            listing.contains(&format!("member{i}@example.net")),
            "{listing}"
        );
    }
    // The body arrived intact, the dot unstuffed, and the envelope kept NOTIFY.
    let one = env
        .entries()
        .into_iter()
        .map(|p| fs::read_to_string(p).unwrap())
        .find(|t| t.contains("Subject: message 7\n"))
        .unwrap();
    assert!(one.contains("\nbody 7\n.leading dot\n"), "{one}");
    assert!(
        one.contains("Received: from client.example ([127.0.0.1])"),
        "{one}"
    );
    assert!(one.contains(" notify=FAILURE\n"), "{one}");
    assert!(one.contains("sender list@test.example"), "{one}");
}

/// smtplib over `-bs`: the session's stdin and stdout are one end of a socket pair.
#[test]
fn smtplib_through_bs() {
    if !require("python3") {
        return;
    }
    let env = Env::new();
    let out = python(
        r#"
import smtplib, socket, subprocess, sys
a, b = socket.socketpair()
p = subprocess.Popen([sys.argv[1], "-C", sys.argv[2], "-odq", "-bs"], stdin=b, stdout=b)
b.close()
class PipeSMTP(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        return a
s = PipeSMTP()
code, banner = s.connect("localhost")
assert code == 220, banner
for i in range(5):
    s.sendmail("a@test.example", ["x%d@example.net" % i, "root"], "Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
try:
    s.sendmail("a@test.example", ["nosuchuser-zz"], "Subject: no\r\n\r\nx\r\n")
    raise SystemExit("an unknown user was accepted")
except smtplib.SMTPRecipientsRefused as e:
    print(e.recipients["nosuchuser-zz"][0])
print(s.quit()[0])
print(p.wait())
"#,
        &[
            env.link("sendmail").to_str().unwrap(),
            env.conf.to_str().unwrap(),
        ],
    );
    assert_eq!(out, "550\n221\n0\n");
    assert_eq!(env.entries().len(), 5);
    let listing = env.mailq(&[]);
    assert!(listing.contains("x4@example.net"), "{listing}");
}

#[test]
fn swaks_through_a_pipe_to_bs() {
    if !require("swaks") {
        return;
    }
    let env = Env::new();
    let pipe = format!(
        "{} -C {} -odq -bs",
        env.link("sendmail").display(),
        env.conf.display()
    );
    let text = swaks(&[
        "--pipe",
        &pipe,
        "--from",
        "a@test.example",
        "--to",
        "b@example.net,c@example.net",
        "--helo",
        "client.example",
        "--header",
        "Subject: via swaks",
        "--body",
        "hello from swaks",
    ]);
    assert!(text.contains("<-  250 2.0.0 "), "{text}");
    assert!(text.contains("Message accepted for delivery"), "{text}");
    let entry = env.only_entry();
    assert!(
        entry.contains("rcpt b@example.net\nrcpt c@example.net\n"),
        "{entry}"
    );
    assert!(entry.contains("Subject: via swaks"), "{entry}");
    assert!(
        entry.contains("Received: from client.example (root@localhost)")
            || !crate::harness::is_root(),
        "{entry}"
    );
}

#[test]
fn swaks_pipelining_against_bd() {
    if !require("swaks") {
        return;
    }
    let env = Env::new();
    let d = Daemon::start(&env, &["-odq"]);
    let text = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &d.port.to_string(),
        "--pipeline",
        "--from",
        "a@test.example",
        "--to",
        "b@example.net",
        "--helo",
        "swaks.example",
        "--header",
        "Subject: pipelined swaks",
    ]);
    assert!(text.contains("250-PIPELINING"), "{text}");
    assert!(text.contains("Message accepted for delivery"), "{text}");
    assert_eq!(entries_after(&env, 1), 1);
    assert!(env.only_entry().contains("Subject: pipelined swaks"));
}

#[test]
fn bs_replies_as_sendmail_and_accepts_pipelined_input() {
    let env = Env::new();
    // Everything written at once, before the greeting is read (sendmail refuses this).
    let input = b"MAIL FROM:<a@test.example>\r\nHELO c\r\nRCPT TO:<x@example.net>\r\n\
MAIL FROM:<a@test.example>\r\nMAIL FROM:<a@test.example>\r\nDATA\r\nRCPT TO:<x@example.net>\r\n\
RCPT TO:<>\r\nRCPT TO:<x@example.net> NOTIFY=BOGUS\r\nRCPT TO:<x@example.net> FOO=1\r\n\
DATA\r\nSubject: s\r\n\r\nbody\r\n.\r\nVRFY root\r\nEXPN root\r\nETRN\r\nETRN #q\r\nFOO\r\nRSET\r\nNOOP\r\nQUIT\r\n";
    // Debian's sendmail.cf asks for HELO before MAIL (sendmail's own default does not).
    let run = env.sendmail(&["-odq", "-O", "PrivacyOptions=needmailhelo", "-bs"], input);
    // `RCPT TO:<>` leaves sendmail's exit status at 67 (EX_NOUSER), recorded from 8.17.
    run.code(67);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let want_prefixes = [
        "220 test.example ESMTP rsendmail ",
        "503 5.0.0 Polite people say HELO first",
        "250 test.example Hello ",
        "503 5.0.0 Need MAIL before RCPT",
        "250 2.1.0 <a@test.example>... Sender ok",
        "503 5.5.0 Sender already specified",
        "503 5.0.0 Need RCPT (recipient)",
        "250 2.1.5 <x@example.net>... Recipient ok",
        "553 5.0.0 <>... User address required",
        "501 5.5.4 Bad argument \"BOGUS\"  to NOTIFY",
        "555 5.5.4 FOO parameter unrecognized",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 ",
        "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)",
        "502 5.7.0 Sorry, we do not allow this operation",
        "500 5.5.2 Parameter required",
        "459 4.5.4 Queue q unknown",
        "500 5.5.1 Command unrecognized: \"FOO\"",
        "250 2.0.0 Reset state",
        "250 2.0.0 OK",
        "221 2.0.0 test.example closing connection",
    ];
    assert_eq!(lines.len(), want_prefixes.len(), "{}", run.stdout);
    for (l, w) in lines.iter().zip(want_prefixes) {
        assert!(l.starts_with(w), "got {l:?}, want {w:?}\n{}", run.stdout);
    }
    assert!(run.stdout.ends_with("\r\n"));
    assert!(lines[12].ends_with("Message accepted for delivery"));
    let id = lines[12].split(' ').nth(2).unwrap();
    assert!(env.only_entry().contains(&format!("id {id}\n")));
}

#[test]
fn pipelined_commands_are_answered_in_order_in_one_write() {
    let env = Env::new();
    let d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::connect(d.port);
    assert!(c.line().starts_with("220 "));
    assert!(c.cmd("EHLO client.example").starts_with("250 HELP"));
    let mut batch = String::from("MAIL FROM:<a@test.example>\r\n");
    for i in 0..20 {
        batch.push_str(&format!("RCPT TO:<r{i}@example.net>\r\n"));
    }
    batch.push_str("RCPT TO:<>\r\nDATA\r\n");
    c.send(batch.as_bytes());
    assert_eq!(c.line(), "250 2.1.0 <a@test.example>... Sender ok");
    for i in 0..20 {
        assert_eq!(
            c.line(),
            format!("250 2.1.5 <r{i}@example.net>... Recipient ok")
        );
    }
    assert_eq!(c.line(), "553 5.0.0 <>... User address required");
    assert!(c.line().starts_with("354 "));
    c.send(b"Subject: p\r\n\r\nx\r\n.\r\nNOOP\r\nQUIT\r\n");
    assert!(c.line().ends_with("Message accepted for delivery"));
    assert_eq!(c.line(), "250 2.0.0 OK");
    assert!(c.line().starts_with("221 "));
    assert_eq!(env.entries().len(), 1);
    assert!(env.only_entry().contains("rcpt r19@example.net\n"));
}

/// SMTP smuggling (CVE-2023-51764/5/6): only CRLF.CRLF ends DATA; the other forms are
/// refused with sendmail's 421 and nothing is queued, neither the message nor the
/// smuggled one.
#[test]
fn smuggling_vectors_never_end_data() {
    let env = Env::new();
    let d = Daemon::start(&env, &["-odq"]);
    let vectors: [(&[u8], &str); 6] = [
        (b"\n.\n", "421 4.5.0 Bare linefeed (LF) not allowed"),
        (b"\r\n.\n", "421 4.5.0 Bare linefeed (LF) not allowed"),
        (b"\n.\r\n", "421 4.5.0 Bare linefeed (LF) not allowed"),
        (b"\r.\r", "421 4.5.0 Bare carriage return (CR) not allowed"),
        (
            b"\r\n.\r",
            "421 4.5.0 Bare carriage return (CR) not allowed",
        ),
        (
            b"\r.\r\n",
            "421 4.5.0 Bare carriage return (CR) not allowed",
        ),
    ];
    for (end, want) in vectors {
        let mut c = Raw::greeted(d.port);
        c.cmd("HELO c");
        c.begin_data("victim@example.net");
        let mut body = b"Subject: first\r\n\r\nhello".to_vec();
        body.extend_from_slice(end);
        body.extend_from_slice(
            b"MAIL FROM:<ceo@test.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n",
        );
        c.send(&body);
        assert_eq!(c.line(), want, "{:?}", String::from_utf8_lossy(end));
        assert!(c.closed());
    }
    holds_for(
        Duration::from_millis(200),
        "no entry and no temporary file from a smuggling attempt",
        || env.entries().is_empty() && tmp_files(&env) == 0,
    );
}

/// A bare CR in DATA over `-bs`: the 421 comes at once, before the end of the data,
/// and the session ends there (exit 0) without reading what the client sends next, as
/// sendmail 8.17 does (seen with sendmail -bs fed the same bytes a step at a time: its
/// 421 right after the bare CR's line, then its exit, a later `.` or QUIT never read).
#[test]
fn bs_bare_cr_ends_the_session_at_once() {
    use std::io::{Read, Write};
    let env = Env::new();
    let mut child = Command::new(env.link("sendmail"))
        .arg("-C")
        .arg(&env.conf)
        .args(["-odq", "-bs"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            b"HELO client.example\r\nMAIL FROM:<root@test.example>\r\n\
              RCPT TO:<a@example.com>\r\nDATA\r\n\
              Subject: x\r\n\r\nline one\rline two\r\n",
        )
        .unwrap();
    stdin.flush().unwrap();
    // No final dot, and stdin stays open: the session must end by itself.
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let mut out = String::new();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{out}");
    assert!(
        out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n421 4.5.0 Bare carriage return (CR) not allowed\r\n"),
        "{out}"
    );
    // What the client sends after it is never read: the pipe has no reader.
    assert!(stdin.write_all(b".\r\nQUIT\r\n").is_err());
    assert!(env.entries().is_empty(), "{}", env.listing());
}

#[test]
fn limits_have_their_replies() {
    let env = Env::with_config(
        "O MaxMessageSize=1000\nO MaxRecipientsPerMessage=3\nO Timeout.command=2s\n",
    );
    let d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::greeted(d.port);
    c.send(b"EHLO c\r\n");
    let ehlo = c.reply();
    assert!(ehlo.contains(&"250-SIZE 1000".to_string()), "{ehlo:?}");
    assert_eq!(
        c.cmd("MAIL FROM:<a@test.example> SIZE=2000"),
        "552 5.2.3 Message size exceeds fixed maximum message size (1000)"
    );
    assert!(
        c.cmd("MAIL FROM:<a@test.example> SIZE=10")
            .starts_with("250 ")
    );
    for i in 0..3 {
        assert!(
            c.cmd(&format!("RCPT TO:<r{i}@example.net>"))
                .starts_with("250 ")
        );
    }
    assert_eq!(
        c.cmd("RCPT TO:<r3@example.net>"),
        "452 4.5.3 Too many recipients"
    );
    assert!(c.cmd("DATA").starts_with("354"));
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..30 {
        big.extend_from_slice(&[b'x'; 60]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b".\r\n");
    c.send(&big);
    assert_eq!(
        c.line(),
        "552 5.2.3 Message exceeds maximum fixed size (1000)"
    );
    // The session goes on, in step.
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK");
    // A command line longer than 2048 bytes.
    let long = format!("NOOP {}", "y".repeat(3000));
    assert!(
        c.cmd(&long)
            .starts_with("421 4.7.0 test.example Command too long")
    );
    assert!(c.closed());
    // The idle limit (Timeout.command).
    let mut idle = Raw::greeted(d.port);
    let t = Instant::now();
    assert_eq!(
        idle.line(),
        "421 4.4.2 test.example Timeout waiting for input"
    );
    assert!(t.elapsed() >= Duration::from_millis(1500));
    assert_eq!(env.entries().len(), 0);
}

#[test]
fn eof_during_data_creates_nothing() {
    let env = Env::new();
    let d = Daemon::start(&env, &["-odq"]);
    {
        let mut c = Raw::greeted(d.port);
        c.cmd("HELO c");
        c.begin_data("b@example.net");
        c.send(b"Subject: cut\r\n\r\npart of a body\r\n");
        c.shutdown();
    }
    // The session notices the EOF, removes its temporary file and ends.
    wait_until_or(
        Duration::from_secs(10),
        "the cut session to end",
        || env.listing(),
        || d.sessions() == 0,
    );
    assert_eq!(env.entries().len(), 0);
    assert_eq!(tmp_files(&env), 0);
    // The same through -bs.
    let run = env.sendmail(
        &["-odq", "-bs"],
        b"HELO c\r\nMAIL FROM:<a@test.example>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: cut\r\n\r\nbody",
    );
    run.code(0);
    assert_eq!(env.entries().len(), 0);
    assert_eq!(tmp_files(&env), 0);
}

/// A client outside the trusted networks may send only to this host; 127.0.0.2 is
/// outside `TrustedNetworks=127.0.0.1/32`.
#[test]
fn relaying_is_refused_outside_the_trusted_networks() {
    let env = Env::with_config("O TrustedNetworks=127.0.0.1/32\nO RelayDomains=partner.example\n");
    let d = Daemon::start(&env, &["-odq"]);
    let port = d.port;
    let outside = {
        let sock = std::net::TcpListener::bind("127.0.0.2:0");
        if sock.is_err() {
            crate::harness::unavailable("the 127.0.0.2 loopback address");
            return;
        }
        drop(sock);
        let s = socket2_connect_from("127.0.0.2", port);
        Raw::from(s)
    };
    let mut c = outside;
    c.line();
    c.cmd("HELO outside");
    c.cmd("MAIL FROM:<a@test.example>");
    assert_eq!(
        c.cmd("RCPT TO:<b@example.net>"),
        "550 5.7.1 <b@example.net>... Relaying denied"
    );
    assert_eq!(
        c.cmd("RCPT TO:<root@Test.Example>"),
        "250 2.1.5 <root@Test.Example>... Recipient ok"
    );
    assert!(c.cmd("RCPT TO:<b@partner.example>").starts_with("250 "));
    // The trusted client may relay.
    let mut t = Raw::greeted(port);
    t.cmd("HELO inside");
    t.cmd("MAIL FROM:<a@test.example>");
    assert!(t.cmd("RCPT TO:<b@example.net>").starts_with("250 "));
}

/// `-bs` started with a TCP connection as stdin and stdout (inetd, or the packaged
/// systemd socket with Accept=yes): the peer is the client, so the relay policy is the
/// daemon's. 127.0.0.2 is outside `TrustedNetworks=127.0.0.1/32`; 127.0.0.1 is inside.
#[test]
fn bs_on_a_socket_applies_the_relay_policy_to_the_peer() {
    use std::os::fd::OwnedFd;
    if std::net::TcpListener::bind("127.0.0.2:0").is_err() {
        crate::harness::unavailable("the 127.0.0.2 loopback address");
        return;
    }
    let env = Env::with_config("O TrustedNetworks=127.0.0.1/32\n");
    for (from, relayed) in [("127.0.0.2", false), ("127.0.0.1", true)] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = socket2_connect_from(from, port);
        let (conn, _) = listener.accept().unwrap();
        let fd: OwnedFd = conn.into();
        let mut child = Command::new(env.link("sendmail"))
            .args(["-C", env.conf.to_str().unwrap(), "-bs", "-odq"])
            .stdin(Stdio::from(fd.try_clone().unwrap()))
            .stdout(Stdio::from(fd))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut c = Raw::from(client);
        assert!(c.line().starts_with("220 "));
        c.cmd("HELO client");
        c.cmd("MAIL FROM:<a@test.example>");
        let reply = c.cmd("RCPT TO:<b@example.net>");
        if relayed {
            assert!(reply.starts_with("250 "), "{from}: {reply}");
        } else {
            assert_eq!(
                reply, "550 5.7.1 <b@example.net>... Relaying denied",
                "{from}"
            );
        }
        c.cmd("QUIT");
        assert!(child.wait().unwrap().success() || !relayed);
    }
}

#[test]
fn sessions_beyond_max_daemon_children_get_421() {
    let env = Env::with_config("O MaxDaemonChildren=2\n");
    let d = Daemon::start(&env, &["-odq"]);
    // The readiness probe's session may still be ending: wait for a free slot first.
    wait_until(
        Duration::from_secs(10),
        "the probe's session to end",
        || d.sessions() == 0,
    );
    let mut a = Raw::connect(d.port);
    assert!(a.line().starts_with("220 "));
    let mut b = Raw::connect(d.port);
    assert!(b.line().starts_with("220 "));
    let mut c = Raw::connect(d.port);
    let refused = c.line();
    assert!(
        refused.starts_with("421 4.3.2 test.example Too many connections (2)"),
        "{refused}"
    );
    assert!(c.closed());
    // Once one ends, a new session is served.
    assert!(a.cmd("QUIT").starts_with("221 "));
    wait_until(
        Duration::from_secs(10),
        "the ended session to be reaped",
        || d.sessions() == 1,
    );
    let mut e = Raw::connect(d.port);
    assert!(e.line().starts_with("220 "));
    assert_eq!(b.cmd("NOOP"), "250 2.0.0 OK");
}

/// SIGTERM in the middle of a session: every acknowledged message is queued, the one in
/// flight is not (it was never acknowledged), and the daemon exits.
#[test]
fn sigterm_loses_nothing_acknowledged() {
    let env = Env::new();
    let mut d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::greeted(d.port);
    c.cmd("HELO c");
    for i in 0..3 {
        c.begin_data(&format!("r{i}@example.net"));
        c.send(format!("Subject: {i}\r\n\r\nbody\r\n.\r\n").as_bytes());
        assert!(c.line().ends_with("Message accepted for delivery"));
    }
    c.begin_data("inflight@example.net");
    c.send(b"Subject: in flight\r\n\r\nhalf");
    // The message in flight is being written (its temporary file exists).
    wait_until(
        Duration::from_secs(10),
        "the in-flight message's temporary file",
        || tmp_files(&env) == 1,
    );
    sigterm(&d.child);
    let st = wait_exit(&mut d.child, Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
    assert!(c.closed(), "the session ended");
    assert!(
        TcpStream::connect(("127.0.0.1", d.port)).is_err(),
        "no longer listening"
    );
    let listing = env.mailq(&[]);
    assert_eq!(env.entries().len(), 3, "{listing}");
    for i in 0..3 {
        assert!(listing.contains(&format!("r{i}@example.net")));
    }
    assert!(!listing.contains("inflight"));
}

/// The sender's domain is checked in DNS (dnsmasq): NXDOMAIN → 553 5.1.8 and `-bs` exits
/// 68; a failed lookup → 451 4.1.8; deferred mode asks nothing and says `(will queue)`.
#[test]
fn sender_domain_checked_in_dns_except_in_deferred_mode() {
    let scratch = Env::new();
    let Some(dns) = DnsServer::start(
        &scratch.dir,
        &[
            "--mx-host=exists.test,mx.exists.test,10",
            "--address=/mx.exists.test/127.0.0.1",
        ],
    ) else {
        return;
    };
    let env = Env::with_config(&format!("RESOLVER 127.0.0.1:{}\n", dns.port));
    let session =
        |from: &str| format!("HELO c\r\nMAIL FROM:<{from}>\r\nRCPT TO:<b@example.net>\r\nQUIT\r\n");
    let r = env.sendmail(&["-odq", "-bs"], session("a@nowhere.test").as_bytes());
    r.code(68);
    assert!(r.stdout.contains(
        "553 5.1.8 <b@example.net>... Domain of sender address a@nowhere.test does not exist\r\n"
    ), "{}", r.stdout);
    let r = env.sendmail(&["-odq", "-bs"], session("a@exists.test").as_bytes());
    r.code(0);
    assert!(
        r.stdout
            .contains("250 2.1.5 <b@example.net>... Recipient ok\r\n"),
        "{}",
        r.stdout
    );
    let asked = dns.queries().len();
    assert!(asked >= 2, "{asked}");
    // Deferred: no query at all, and the reply says the mail will be queued.
    let r = env.sendmail(&["-odd", "-bs"], session("a@nowhere.test").as_bytes());
    r.code(0);
    assert!(
        r.stdout
            .contains("250 2.1.5 <b@example.net>... Recipient ok (will queue)\r\n"),
        "{}",
        r.stdout
    );
    assert_eq!(dns.queries().len(), asked, "deferred mode asked DNS");
    // A resolver that does not answer: a temporary refusal.
    let dead = Env::with_config(&format!(
        "RESOLVER 127.0.0.1:{}\n",
        crate::harness::closed_tcp_port()
    ));
    let r = dead.sendmail(&["-odq", "-bs"], session("a@example.org").as_bytes());
    r.code(0);
    assert!(
        r.stdout
            .contains("451 4.1.8 Domain of sender address a@example.org does not resolve\r\n"),
        "{}",
        r.stdout
    );
}

/// Local recipients are checked at RCPT: unknown users refused, aliases expanded.
#[test]
fn local_recipients_checked_at_rcpt() {
    let env = Env::new();
    fs::write(env.dir.join("aliases"), "team: root, x@example.net\n").unwrap();
    env.add_config(&format!(
        "O AliasFile={}\n",
        env.dir.join("aliases").display()
    ));
    let r = env.sendmail(
        &["-odq", "-bs"],
        b"HELO c\r\nMAIL FROM:<a@test.example>\r\nRCPT TO:<nosuchuser-zz>\r\nRCPT TO:<team>\r\nDATA\r\nSubject: t\r\n\r\nx\r\n.\r\nQUIT\r\n",
    );
    r.code(0);
    assert!(
        r.stdout
            .contains("550 5.1.1 <nosuchuser-zz>... User unknown\r\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("250 2.1.5 <team>... Recipient ok\r\n"),
        "{}",
        r.stdout
    );
    let e = env.only_entry();
    assert!(
        e.contains("\nrcpt root ") && e.contains("\nrcpt x@example.net "),
        "{e}"
    );
}

/// Background mode over SMTP: accepted, then delivered to the smarthost.
#[test]
fn bd_background_mode_delivers() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let d = Daemon::start(&env, &["-odb"]);
    let mut c = Raw::greeted(d.port);
    c.cmd("EHLO c");
    c.begin_data("b@example.net");
    c.send(b"Subject: bg\r\n\r\nhello\r\n.\r\n");
    assert!(c.line().ends_with("Message accepted for delivery"));
    c.cmd("QUIT");
    let got = peer.wait_for(1, Duration::from_secs(20));
    assert_eq!(got.len(), 1);
    assert!(String::from_utf8_lossy(&got[0].1).contains("Subject: bg"));
    env.wait_until_empty(Duration::from_secs(10));
}

/// `-bd -q1s`: one process listens and runs the queue.
#[test]
fn bd_with_queue_interval_runs_the_queue() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(&["-odq", "early@example.net"], crate::harness::MSG)
        .code(0);
    let _d = Daemon::start(&env, &["-odq", "-q1s"]);
    let got = peer.wait_for(1, Duration::from_secs(20));
    assert_eq!(got.len(), 1, "the runner beside the listener delivered");
    assert!(got[0].0.contains("early@example.net"));
}

/// ETRN for a domain with a fast flush list (`O FastFlushDomains=`): only the named
/// domain's mail moves (`@dom` with its subdomains); the rest stays.
#[test]
fn etrn_flushes_only_the_named_domain() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "O FastFlushDomains=dial.example empty.example\n");
    for r in [
        "a@dial.example",
        "b@dial.example",
        "c@sub.dial.example",
        "d@dial.example.org",
        "e@other.example",
    ] {
        env.sendmail(&["-odq", r], crate::harness::MSG).code(0);
    }
    let d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::greeted(d.port);
    c.cmd("EHLO dialup");
    etrn_started(&mut c, "dial.example");
    let got = peer.wait_for(2, Duration::from_secs(20));
    holds_for(Duration::from_millis(300), "no third message", || {
        peer.messages().len() <= 2
    });
    let got_rcpts: Vec<String> = peer.messages().iter().map(|m| m.0.clone()).collect();
    assert_eq!(got.len(), 2, "{got_rcpts:?}");
    assert_eq!(peer.messages().len(), 2, "{got_rcpts:?}");
    let all = got_rcpts.join(" ");
    assert!(
        all.contains("a@dial.example") && all.contains("b@dial.example"),
        "{all}"
    );
    assert_eq!(env.entries().len(), 3);
    etrn_started(&mut c, "@dial.example");
    let got = peer.wait_for(3, Duration::from_secs(20));
    holds_for(Duration::from_millis(300), "no fourth message", || {
        peer.messages().len() <= 3
    });
    assert_eq!(peer.messages().len(), 3);
    assert!(got.iter().any(|m| m.0.contains("c@sub.dial.example")));
    let left = env.mailq(&[]);
    assert!(
        left.contains("d@dial.example.org") && left.contains("e@other.example"),
        "{left}"
    );
    assert_eq!(env.entries().len(), 2);
    // Nothing queued for a domain: nothing is delivered.
    assert!(c.cmd("ETRN empty.example").starts_with("250 "));
    holds_for(
        Duration::from_millis(500),
        "nothing delivered for a domain with nothing queued",
        || peer.messages().len() == 3,
    );
    assert_eq!(
        c.cmd("ETRN bad/domain"),
        "501 5.5.4 Syntax error in ETRN parameter"
    );
}

/// The default listener is loopback only, IPv4 and IPv6 alike.
#[test]
fn ipv6_loopback_listener() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        crate::harness::unavailable("IPv6 loopback");
        return;
    }
    let env = Env::new();
    let port = crate::harness::closed_tcp_port();
    env.add_config(&format!("O DaemonPortOptions=Port={port},Family=inet6,Addr=::1\nO DaemonPortOptions=Port={port},Addr=127.0.0.1\n"));
    let _d = Daemon::start_on(&env, &["-odq"], port);
    let addr: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let mut c = Raw::from(TcpStream::connect(addr).unwrap());
    assert!(c.line().starts_with("220 "));
    assert!(c.cmd("HELO c").contains("Hello [::1]"));
}

/// Write `bytes` to `w` one at a time, 300 ms apart, from a thread (a client that drips);
/// it stops when the peer closes.
fn drip(mut w: impl std::io::Write + Send + 'static, bytes: &'static [u8]) {
    std::thread::spawn(move || {
        for b in bytes {
            if w.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
}

/// A command line dripped a byte at a time must still arrive whole within
/// `Timeout.command`: the session ends with its 421, the slot is free again.
#[test]
fn a_dripped_command_line_times_out_whole() {
    let env = Env::with_config("O Timeout.command=2s\n");
    let d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::greeted(d.port);
    let w = c.writer();
    let t = Instant::now();
    drip(w, b"NOOP a command line far slower than its timeout\r\n");
    assert_eq!(c.line(), "421 4.4.2 test.example Timeout waiting for input");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    wait_until_or(
        Duration::from_secs(10),
        "the dripping session to end",
        || env.listing(),
        || d.sessions() == 0,
    );
}

/// In DATA, each block of the message must come within `Timeout.datablock`: a message
/// dripped a byte at a time ends the session, and nothing is queued.
#[test]
fn a_dripped_message_times_out() {
    let env = Env::with_config("O Timeout.datablock=2s\n");
    let d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::greeted(d.port);
    c.cmd("HELO c");
    c.begin_data("b@example.net");
    let w = c.writer();
    let t = Instant::now();
    drip(
        w,
        b"Subject: slow\r\n\r\na body far slower than its timeout\r\n.\r\n",
    );
    assert_eq!(c.line(), "421 4.4.2 test.example Timeout waiting for input");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(env.entries().len(), 0);
}

/// Run `sendmail -bs -odq` with `input` on a pipe that stays open (the client stopped
/// sending, but never went away); its stdout and exit status once it ends, `None` when
/// it was still running after `limit` (killed then).
fn bs_held_open(
    env: &Env,
    input: &[u8],
    limit: Duration,
) -> (String, Option<std::process::ExitStatus>, Duration) {
    use std::io::{Read, Write};
    let mut child = spawn_bs(env);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let t = Instant::now();
    let status = wait_exit(&mut child, limit);
    let took = t.elapsed();
    drop(stdin);
    (reader.join().unwrap(), status, took)
}

/// `-bs` keeps the daemon's deadlines on stdin: a client that stops in the middle of a
/// command line gets sendmail's 421 once `Timeout.command` has passed, and the process
/// ends, even though stdin is still open.
#[test]
fn bs_a_stalled_command_line_times_out() {
    let env = Env::with_config("O Timeout.command=2s\n");
    let (out, status, took) =
        bs_held_open(&env, b"HELO c\r\nNOOP half a comm", Duration::from_secs(15));
    assert!(status.is_some(), "-bs still waiting after {took:?}:\n{out}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(
        out.lines().last(),
        Some("421 4.4.2 test.example Timeout waiting for input"),
        "{out}"
    );
}

/// `-bs` whose client stops reading its replies (stdout a full pipe, as with a socket
/// from inetd that nobody reads) ends once a group of replies has not been taken within
/// `Timeout.command`, instead of waiting for the reader forever.
#[test]
fn bs_a_client_that_stops_reading_is_cut_off() {
    use std::io::Write;
    let env = Env::with_config("O Timeout.command=2s\n");
    let mut child = spawn_bs(&env);
    let mut stdin = child.stdin.take().unwrap();
    // Far more replies than a pipe holds; the replies are never read. (RSET: a
    // repeated NOOP would be answered ever later, and fill no pipe.)
    let writer = std::thread::spawn(move || {
        let flood = "RSET\r\n".repeat(200_000);
        let _ = stdin.write_all(format!("HELO c\r\n{flood}").as_bytes());
        stdin
    });
    let stdout = child.stdout.take().unwrap();
    let t = Instant::now();
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let took = t.elapsed();
    drop(stdout);
    let _ = writer.join();
    assert!(
        status.is_some(),
        "-bs still writing to a reader that stopped after {took:?}"
    );
    assert!(took < Duration::from_secs(12), "{took:?}");
}

/// `-bs` in DATA: a message whose next block does not come within `Timeout.datablock`
/// ends the session with the 421, and nothing is queued.
#[test]
fn bs_a_stalled_message_times_out() {
    let env = Env::with_config("O Timeout.datablock=2s\n");
    let (out, status, took) = bs_held_open(
        &env,
        b"HELO c\r\nMAIL FROM:<a@test.example>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: x\r\n\r\nhalf a mess",
        Duration::from_secs(15),
    );
    assert!(status.is_some(), "-bs still waiting after {took:?}:\n{out}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(out.contains("354 "), "{out}");
    assert_eq!(
        out.lines().last(),
        Some("421 4.4.2 test.example Timeout waiting for input"),
        "{out}"
    );
    assert_eq!(env.entries().len(), 0, "{}", env.listing());
}

/// A client that pipelines a flood of commands and then reads the replies a little at a
/// time holds its session no longer than `Timeout.command`: the replies waiting for it
/// must be taken whole within that time, as a command line must come whole within it.
#[test]
fn a_slow_reader_is_cut_off() {
    use std::io::{Read, Write};
    let env = Env::with_config("O Timeout.command=2s\n");
    let d = Daemon::start(&env, &["-odq"]);
    wait_until(
        Duration::from_secs(10),
        "the probe's session to end",
        || d.sessions() == 0,
    );
    let mut r = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    let mut w = r.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = w.write_all(&b"HELP\r\n".repeat(200_000));
    });
    // The client reads 64 KiB every 500 ms: each write of the session makes progress
    // within the timeout, but the replies to 200,000 HELPs would take minutes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        r.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        while !reading.load(std::sync::atomic::Ordering::SeqCst) {
            match r.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let t = Instant::now();
    wait_until(Duration::from_secs(2), "the session to start", || {
        d.sessions() == 1
    });
    while d.sessions() > 0 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    reader.join().unwrap();
    assert!(took < Duration::from_secs(6), "the session lived {took:?}");
}

/// sendmail's MAXBADCOMMANDS: past 25 unrecognized commands a session ends with
/// `421 4.7.0 ... Too many bad commands; closing connection`, so that a client spewing
/// garbage does not keep its session (and a daemon slot) for as long as it likes.
#[test]
fn too_many_bad_commands_end_the_session() {
    let env = Env::new();
    let mut input = String::from("HELO c\r\n");
    for i in 0..30 {
        input.push_str(&format!("XYZZY{i}\r\n"));
    }
    input.push_str("QUIT\r\n");
    let r = env.sendmail(&["-bs", "-odq"], input.as_bytes());
    let lines: Vec<&str> = r.stdout.lines().collect();
    let bad = lines.iter().filter(|l| l.starts_with("500 5.5.1 ")).count();
    assert_eq!(bad, 25, "{}", r.stdout);
    assert_eq!(
        lines.last().copied(),
        Some("421 4.7.0 test.example Too many bad commands; closing connection"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("221 "), "{}", r.stdout);
}

/// `O PrivacyOptions=` shapes the dialogue as in sendmail 8.17 (recorded in
/// compat-tests/cases/bs-privacy-*): needmailhelo, noetrn and noreceipts (neither ETRN
/// nor DSN offered, each refused with sendmail's words), noverb; without them MAIL may
/// come before HELO and ETRN and DSN are offered.
#[test]
fn privacy_options_shape_the_bd_dialogue() {
    let env = Env::with_config("O PrivacyOptions=needmailhelo,noetrn,noreceipts,noverb\n");
    let d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::greeted(d.port);
    assert_eq!(
        c.cmd("MAIL FROM:<a@test.example>"),
        "503 5.0.0 Polite people say HELO first"
    );
    c.send(b"EHLO client.example\r\n");
    let ehlo = c.reply();
    assert!(
        ehlo.iter()
            .all(|l| !l.ends_with("DSN") && !l.ends_with("ETRN")),
        "{ehlo:?}"
    );
    assert!(ehlo.iter().any(|l| l.ends_with("8BITMIME")), "{ehlo:?}");
    for etrn in ["ETRN example.org", "ETRN @example.org", "ETRN #q", "ETRN"] {
        assert_eq!(
            c.cmd(etrn),
            "502 5.7.0 Sorry, we do not allow this operation"
        );
    }
    assert_eq!(c.cmd("VERB"), "502 5.7.0 Verbose unavailable");
    assert_eq!(
        c.cmd("MAIL FROM:<a@test.example> RET=HDRS"),
        "504 5.7.0 Sorry, RET not supported, we do not allow DSN"
    );
    assert!(c.cmd("MAIL FROM:<a@test.example>").starts_with("250 "));
    assert_eq!(
        c.cmd("RCPT TO:<root@test.example> NOTIFY=SUCCESS"),
        "504 5.7.0 Sorry, NOTIFY not supported, we do not allow DSN"
    );
    drop(c);
    drop(d);

    let open = Env::with_config("O PrivacyOptions=public\n");
    let d = Daemon::start(&open, &["-odq"]);
    let mut c = Raw::greeted(d.port);
    assert!(c.cmd("MAIL FROM:<a@test.example>").starts_with("250 "));
    c.send(b"EHLO client.example\r\n");
    let ehlo = c.reply();
    for kw in ["DSN", "ETRN"] {
        assert!(ehlo.iter().any(|l| l.ends_with(kw)), "{ehlo:?}");
    }
    assert_eq!(c.cmd("VERB"), "502 5.5.1 Command not implemented: \"VERB\"");
}

/// Postfix's fast flush design: only the domains of `O FastFlushDomains=` (by default
/// `RelayDomains`) get a list in the spool's index; ETRN for one of them delivers its
/// list, ETRN for any other runs that domain's entries, found in the whole queue
/// (sendmail's ETRN); an absolute name (`third.example.`) is the same domain; a domain
/// that is not a well-formed name is refused with 501, over -bd and -bs alike, and never
/// indexed.
#[test]
fn etrn_without_a_fast_flush_list_runs_the_domains_entries() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "O RelayDomains=listed.example\n");
    for r in ["a@listed.example", "b@other.example", "c@third.example"] {
        env.sendmail(&["-odq", r], crate::harness::MSG).code(0);
    }
    let lists = env.spool.join("index/domains");
    assert!(lists.join("listed.example").exists());
    assert!(!lists.join("other.example").exists());
    assert!(!lists.join("third.example").exists());
    let d = Daemon::start(&env, &["-odq"]);
    let bad_label = format!("{}.example", "l".repeat(64));
    let bad = [
        "bad..domain",
        "@bad..domain",
        ".lead.example",
        "trail.example..",
        "-x.example",
        "a_b.example",
        "a/b.example",
        "[300.1.1.1]",
        "@",
        bad_label.as_str(),
    ];
    // Five a session: from the eighth ETRN on, a session is slowed down.
    for names in bad.chunks(5) {
        let mut c = Raw::greeted(d.port);
        c.cmd("EHLO dialup");
        for bad in names {
            assert_eq!(
                c.cmd(&format!("ETRN {bad}")),
                "501 5.5.4 Syntax error in ETRN parameter",
                "{bad}"
            );
        }
    }
    let mut c = Raw::greeted(d.port);
    c.cmd("EHLO dialup");
    holds_for(Duration::from_millis(500), "nothing delivered", || {
        peer.messages().is_empty()
    });
    etrn_started(&mut c, "listed.example");
    peer.wait_for(1, Duration::from_secs(20));
    holds_for(Duration::from_millis(300), "only the listed domain", || {
        peer.messages().len() == 1
    });
    assert!(peer.messages()[0].0.contains("a@listed.example"));
    // A domain without a list: its entries, not the whole queue.
    etrn_started(&mut c, "other.example");
    peer.wait_for(2, Duration::from_secs(20));
    holds_for(Duration::from_millis(500), "only other.example's", || {
        peer.messages().len() == 2
    });
    assert!(peer.messages()[1].0.contains("b@other.example"));
    assert!(env.mailq(&[]).contains("c@third.example"));
    // The absolute name (trailing dot) is the same domain.
    etrn_started(&mut c, "third.example.");
    let got = peer.wait_for(3, Duration::from_secs(20));
    let all: Vec<&str> = got.iter().map(|m| m.0.as_str()).collect();
    assert!(all.iter().any(|r| r.contains("c@third.example")), "{all:?}");
    env.wait_until_empty(Duration::from_secs(20));
    // -bs refuses the same names.
    let run = env.sendmail(
        &["-odq", "-bs"],
        b"HELO c\r\nETRN bad..domain\r\nETRN [192.0.2.1]\r\nQUIT\r\n",
    );
    assert!(
        run.stdout
            .contains("501 5.5.4 Syntax error in ETRN parameter\r\n250 2.0.0 Queuing for node [192.0.2.1] started"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_daemon_writes_its_pid_file_and_removes_it_when_it_stops() {
    let env = Env::new();
    let pid_file = env.dir.join("daemon.pid");
    env.add_config(&format!("O PidFile={}\n", pid_file.display()));
    let mut d = Daemon::start(&env, &["-odq"]);
    let pid = d.child.id();
    let written = fs::read_to_string(&pid_file).unwrap();
    assert!(written.starts_with(&format!("{pid}\n")), "{written:?}");
    sigterm(&d.child);
    assert!(wait_exit(&mut d.child, Duration::from_secs(10)).is_some());
    assert!(!pid_file.exists(), "the pid file is left behind");
    // A pid file another daemon has written since is not this one's to remove.
    let env = Env::new();
    env.add_config(&format!("O PidFile={}\n", pid_file.display()));
    let d = Daemon::start(&env, &["-odq"]);
    fs::write(&pid_file, "1\n").unwrap();
    drop(d);
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), "1\n");
}

/// `O PidFile=` naming a file that is no pid file (a typo naming `/etc/motd`): the
/// daemon neither replaces it nor removes it at its stop.
#[test]
fn the_daemon_never_writes_its_pid_over_another_file() {
    let env = Env::new();
    let motd = env.dir.join("rsendmail-motd");
    fs::write(&motd, "Welcome\n").unwrap();
    env.add_config(&format!("O PidFile={}\n", motd.display()));
    let mut d = Daemon::start(&env, &["-odq"]);
    assert_eq!(fs::read_to_string(&motd).unwrap(), "Welcome\n");
    sigterm(&d.child);
    assert!(wait_exit(&mut d.child, Duration::from_secs(10)).is_some());
    assert_eq!(fs::read_to_string(&motd).unwrap(), "Welcome\n");
}

/// One client's dialogue with bad HELO names and with octets that are not UTF-8 in MAIL
/// and RCPT, the same over `-bs` (written at once) and `-bd` (one command at a time):
/// each gets its refusal (sendmail's HELO check, recorded in compat-tests/cases/bs-helo-*;
/// `(not UTF-8)` for the octets, compat-tests/differences/bs-addr-non-utf8), the octets
/// are shown as `?` and never sent back, and the message taken afterwards names the
/// accepted HELO and holds no address the client did not write.
const HOSTILE_DIALOGUE: &[(&[u8], &str)] = &[
    (
        b"EHLO evil\x1b]0;owned\x07\x00z",
        "501 5.0.0 Invalid domain name",
    ),
    (b"HELO caf\xe9.example", "501 5.0.0 Invalid domain name"),
    (b"EHLO caf\xc3\xa9.example", "501 5.0.0 Invalid domain name"),
    (b"HELO a b.example", "501 5.0.0 Invalid domain name"),
    (b"HELO a/b.example", "501 5.0.0 Invalid domain name"),
    (b"HELO good.example  ", "250 test.example Hello "),
    (
        b"MAIL FROM:<j\xf6hn@test.example>",
        "501 5.1.7 Syntax error in mailbox address \"j?hn@test.example\" (not UTF-8)",
    ),
    (
        b"MAIL FROM:<a@test.example> ENVID=\xf6",
        "501 5.5.4 Syntax error in parameter \"ENVID=?\" (not UTF-8)",
    ),
    (
        b"MAIL FROM:<a@test.example>",
        "250 2.1.0 <a@test.example>... Sender ok",
    ),
    (
        b"RCPT TO:<j\xf6hn@example.net>",
        "501 5.1.3 Syntax error in mailbox address \"j?hn@example.net\" (not UTF-8)",
    ),
    (
        b"RCPT TO:<\xc0\xafx@example.net>",
        "501 5.1.3 Syntax error in mailbox address \"??x@example.net\" (not UTF-8)",
    ),
    (
        b"RCPT TO:<u@ex\xe4mple.net>",
        "501 5.1.3 Syntax error in mailbox address \"u@ex?mple.net\" (not UTF-8)",
    ),
    (
        b"RCPT TO:<b@example.net> NOTIFY=SUCCESS\xed\xa0\x80",
        "501 5.5.4 Syntax error in parameter \"NOTIFY=SUCCESS???\" (not UTF-8)",
    ),
    (
        b"RCPT TO:<b@example.net> ORCPT=rfc822;j\xf6hn@example.net",
        "501 5.5.4 Syntax error in parameter \"ORCPT=rfc822;j?hn@example.net\" (not UTF-8)",
    ),
    (
        b"RCPT TO:<b@example.net>",
        "250 2.1.5 <b@example.net>... Recipient ok",
    ),
    (b"DATA", "354 "),
    (b"Subject: s\r\n\r\nbody\r\n.", "250 2.0.0 "),
    (b"QUIT", "221 2.0.0 "),
];

/// The checks after [`HOSTILE_DIALOGUE`]: one reply a command, as it says.
#[track_caller]
fn check_hostile_replies(replies: &[String]) {
    assert_eq!(replies.len(), HOSTILE_DIALOGUE.len(), "{replies:#?}");
    for (got, (cmd, want)) in replies.iter().zip(HOSTILE_DIALOGUE) {
        assert!(
            got.starts_with(want),
            "{}: got {got:?}, want {want:?}",
            String::from_utf8_lossy(cmd)
        );
    }
}

#[track_caller]
fn check_hostile_message(env: &Env, received_from: &str) {
    let entry = env.only_entry();
    let message = env.only_message();
    assert!(
        message.starts_with(&format!("Received: from good.example ({received_from})")),
        "{message}"
    );
    assert!(
        !entry.contains(['\u{fffd}', '\x1b', '\x07', '\0']),
        "{entry}"
    );
    assert!(!entry.contains("hn@"), "{entry}");
}

#[test]
fn hostile_helo_names_and_non_utf8_addresses_are_refused_over_bs() {
    let env = Env::new();
    let mut input = Vec::new();
    for (cmd, _) in HOSTILE_DIALOGUE {
        input.extend_from_slice(cmd);
        input.extend_from_slice(b"\r\n");
    }
    let run = env.sendmail(&["-odq", "-bs"], &input);
    // The refused paths leave -bs's exit status at 64, as sendmail's 8-bit refusals do.
    run.code(64);
    assert!(!run.stdout.contains('\u{fffd}'), "{}", run.stdout);
    let replies: Vec<String> = run.stdout.lines().skip(1).map(String::from).collect();
    check_hostile_replies(&replies);
    check_hostile_message(&env, "root@localhost");
}

#[test]
fn hostile_helo_names_and_non_utf8_addresses_are_refused_over_bd() {
    let env = Env::new();
    let d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::greeted(d.port);
    let mut replies = Vec::new();
    for (cmd, _) in HOSTILE_DIALOGUE {
        c.send(cmd);
        c.send(b"\r\n");
        replies.push(c.line());
    }
    check_hostile_replies(&replies);
    check_hostile_message(&env, "[127.0.0.1]");
}

/// `O RelayDomains=` covers its domains' subdomains (as sendmail's relay-domains, class
/// R, and Postfix's relay_domains do) whatever the case, and a domain written with a
/// trailing dot is the same domain; a name that only ends in the same letters is not.
#[test]
fn relay_domains_cover_subdomains_whatever_the_case_or_trailing_dot() {
    let env = Env::with_config(
        "O TrustedNetworks=127.0.0.1/32\nO RelayDomains=trail.example. Relay.Example\n",
    );
    let d = Daemon::start(&env, &["-odq"]);
    if std::net::TcpListener::bind("127.0.0.2:0").is_err() {
        crate::harness::unavailable("the 127.0.0.2 loopback address");
        return;
    }
    let mut c = Raw::from(socket2_connect_from("127.0.0.2", d.port));
    c.line();
    c.cmd("HELO outside");
    c.cmd("MAIL FROM:<a@test.example>");
    for (rcpt, taken) in [
        ("r@trail.example", true),
        ("r@Trail.Example.", true),
        ("r@sub.trail.example", true),
        ("r@relay.example", true),
        ("r@sub.relay.example", true),
        ("r@A.Sub.RELAY.example", true),
        ("r@notrelay.example", false),
        ("r@relay.example.org", false),
        ("r@example", false),
    ] {
        let reply = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        if taken {
            assert!(reply.starts_with("250 "), "{rcpt}: {reply}");
        } else {
            assert_eq!(reply, format!("550 5.7.1 <{rcpt}>... Relaying denied"));
        }
    }
}

/// `-bs`: an empty `From:`, `Date:` and `Message-Id:` are absent: rsendmail's own are
/// added and the empty ones dropped, as on the command line (compat-tests
/// `field-empty-*`).
#[test]
fn bs_replaces_empty_originator_date_and_id_fields() {
    let env = Env::new();
    let run = env.sendmail(
        &["-odq", "-bs"],
        b"HELO c\r\nMAIL FROM:<s@test.example>\r\nRCPT TO:<a@example.net>\r\nDATA\r\nFrom:\r\nDate: \r\nMessage-Id:\r\n \r\nSubject: e\r\n\r\nbody\r\n.\r\nQUIT\r\n",
    );
    assert!(run.stdout.contains("Message accepted"), "{}", run.stdout);
    let message = env.only_message();
    let head = message.split("\n\n").next().unwrap_or_default();
    for name in ["from:", "date:", "message-id:"] {
        let lines: Vec<&str> = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with(name))
            .collect();
        assert_eq!(lines.len(), 1, "{name}\n{head}");
        assert!(
            lines[0].len() > name.len() + 3,
            "{name} has a value:\n{head}"
        );
    }
}

/// The daemon's log lines that contain `text`.
fn logged(log: &std::path::Path, text: &str) -> usize {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(text))
        .count()
}

/// sendmail's slow-down of repeated commands (srvrsmtp.c `checksmtpattack`): from the
/// third HELO/EHLO on each is answered later (1, 2, 4, 8 seconds), the third logs
/// `possible SMTP attack`, and with MaxDaemonChildren set the sixth (twice the limit)
/// ends the session with 421 after its wait. The wait is the session's own: another
/// client's whole transaction is served meanwhile. NOOP the same past `O
/// MaxNOOPCommands=` (here 1: the second NOOP is twice the limit).
#[test]
fn repeated_helo_and_noop_are_slowed_then_cut_off_while_others_are_served() {
    let env = Env::with_config("O MaxDaemonChildren=10\nO MaxNOOPCommands=1\n");
    let log = env.dir.join("mail.log");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let d = Daemon::start(&env, &["-odq"]);
    let attack = "[127.0.0.1]: possible SMTP attack: command=HELO/EHLO, count=3";

    let mut a = Raw::connect(d.port);
    assert!(a.line().starts_with("220 "));
    assert!(a.cmd("HELO one.example").starts_with("250 "));
    assert!(a.cmd("EHLO two.example").starts_with("250 "));
    assert_eq!(logged(&log, "possible SMTP attack"), 0);
    let t = Instant::now();
    assert!(a.cmd("HELO three.example").starts_with("250 "));
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    wait_until(Duration::from_secs(10), "the attack to be logged", || {
        logged(&log, attack) == 1
    });
    assert!(a.cmd("HELO four.example").starts_with("250 "));
    assert!(a.cmd("HELO five.example").starts_with("250 "));
    assert!(t.elapsed() >= Duration::from_secs(7), "{:?}", t.elapsed());
    // The sixth waits 8 seconds and ends the session; meanwhile another client sends a
    // message through a session of its own.
    a.send(b"HELO six.example\r\n");
    let sent = Instant::now();
    let waiting = std::thread::spawn(move || {
        let reply = a.line();
        let at = Instant::now();
        (reply, at, a.closed())
    });
    let mut b = Raw::connect(d.port);
    assert!(b.line().starts_with("220 "));
    assert!(b.cmd("EHLO other.example").starts_with("250 "));
    b.begin_data("root@test.example");
    assert!(
        b.cmd("Subject: s\r\n\r\nbody\r\n.")
            .starts_with("250 2.0.0 ")
    );
    assert!(b.cmd("QUIT").starts_with("221 "));
    let served = Instant::now();
    let (reply, at, closed) = waiting.join().unwrap();
    assert_eq!(
        reply,
        "421 4.7.0 test.example Too many bad commands; closing connection"
    );
    assert!(closed);
    assert!(at.duration_since(sent) >= Duration::from_secs(8));
    assert!(served < at, "the other session waited for the slowed one");
    assert_eq!(entries_after(&env, 1), 1);
    assert_eq!(logged(&log, attack), 1);

    // NOOP past MaxNOOPCommands=1: the first waits a second, the second two, then 421.
    let mut c = Raw::connect(d.port);
    assert!(c.line().starts_with("220 "));
    let t = Instant::now();
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK");
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(
        c.cmd("NOOP"),
        "421 4.7.0 test.example Too many bad commands; closing connection"
    );
    assert!(t.elapsed() >= Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(c.closed());
    assert_eq!(
        logged(
            &log,
            "[127.0.0.1]: possible SMTP attack: command=NOOP, count=1"
        ),
        1
    );
}

/// Without MaxDaemonChildren a repeating client is only slowed, never cut off (as in
/// sendmail), VRFY and ETRN count as well (6 and 8), and a client that sends mail as
/// clients do (smtplib: EHLO once, a NOOP now and then, RSET between messages) is never
/// slowed: nothing is logged for it and its messages are taken.
#[test]
fn repeated_commands_without_max_daemon_children_are_slowed_not_cut_off() {
    if !require("python3") {
        return;
    }
    let env = Env::with_config("O MaxNOOPCommands=3\n");
    let log = env.dir.join("mail.log");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let d = Daemon::start(&env, &["-odq"]);
    let stdout = python(
        r#"
import smtplib, sys, time
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=60)
assert s.ehlo("client.example")[0] == 250
for i in range(10):
    s.sendmail("a@test.example", ["root@test.example"], "Subject: %d\r\n\r\nbody\r\n" % i)
    s.rset()
assert s.noop()[0] == 250
assert s.noop()[0] == 250
print("normal")
sys.stdout.flush()
t = time.monotonic()
for i in range(3):
    assert s.noop()[0] == 250
print("noop %.1f" % (time.monotonic() - t))
t = time.monotonic()
for i in range(6):
    assert s.verify("root")[0] == 252
print("vrfy %.1f" % (time.monotonic() - t))
t = time.monotonic()
for i in range(8):
    assert s.docmd("ETRN", "-bad-.example")[0] == 501
print("etrn %.1f" % (time.monotonic() - t))
s.sendmail("a@test.example", ["root@test.example"], "Subject: last\r\n\r\nbody\r\n")
print(s.quit()[0])
"#,
        &[&d.port.to_string()],
    );
    let times: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(_, t)| t.parse().ok())
        .collect();
    // NOOP: the third (the limit) 1 s, the fourth 2 s, the fifth 4 s; the sixth VRFY and the eighth
    // ETRN 1 s each.
    assert_eq!(times.len(), 3, "{stdout}");
    assert!(times[0] >= 7.0, "{stdout}");
    assert!(times[1] >= 1.0, "{stdout}");
    assert!(times[2] >= 1.0, "{stdout}");
    assert!(stdout.ends_with("221\n"), "{stdout}");
    assert_eq!(entries_after(&env, 11), 11);
    for (command, count) in [("NOOP", 3), ("VRFY", 6), ("ETRN", 8)] {
        let line = format!("[127.0.0.1]: possible SMTP attack: command={command}, count={count}");
        assert_eq!(logged(&log, &line), 1, "{line}");
    }
    assert_eq!(logged(&log, "possible SMTP attack"), 3);
}

/// The examples of the ETRN documentation (README, rsendmail(8), rsendmail.conf(5)),
/// as written there. A domain without a fast flush list: `ETRN example.org` runs the
/// entries with an undelivered recipient containing `@example.org` in any case
/// (`u@example.org.uk` and `u@example.organic.net` too, not `u@mail.example.org`), each
/// entry whole; `ETRN @example.org` those containing `example.org` anywhere
/// (`u@mail.example.org`, `u@notexample.org`, `example.org@other.net`). A domain of
/// FastFlushDomains: its list, the domain exactly (`@domain`: and its subdomains), so
/// `a@listed.example.uk` is never run by either.
#[test]
fn etrn_runs_what_its_documentation_says() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "O RelayDomains=listed.example\n");
    let queued: &[&[&str]] = &[
        &["u1@example.org"],
        &["u2@EXAMPLE.ORG"],
        &["u3@example.org.uk"],
        &["u4@example.organic.net"],
        &["u5@mail.example.org"],
        &["u6@notexample.org"],
        &["example.org@other.net"],
        &["u7@other.net"],
        &["x@example.org", "y@elsewhere.example"],
        &["a@listed.example"],
        &["b@sub.listed.example"],
        &["c@listed.example.uk"],
    ];
    for rcpts in queued {
        let mut args = vec!["-odq"];
        args.extend_from_slice(rcpts);
        env.sendmail(&args, crate::harness::MSG).code(0);
    }
    let d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::greeted(d.port);
    c.cmd("EHLO dialup");
    // Every recipient the peer has been given so far, lower-cased.
    let delivered = |n: usize| -> Vec<String> {
        let got = peer.wait_for(n, Duration::from_secs(30));
        holds_for(Duration::from_millis(500), "no more deliveries", || {
            peer.messages().len() == n
        });
        let all: String = got.iter().map(|m| m.0.to_ascii_lowercase()).collect();
        let mut out: Vec<String> = queued
            .iter()
            .flat_map(|r| r.iter())
            .map(|r| r.to_ascii_lowercase())
            .filter(|r| all.contains(&format!("\"{r}\"")) || all.contains(&format!("<{r}>")))
            .collect();
        out.sort();
        out
    };
    etrn_started(&mut c, "example.org");
    let mut want = vec![
        "u1@example.org",
        "u2@example.org",
        "u3@example.org.uk",
        "u4@example.organic.net",
        "x@example.org",
        "y@elsewhere.example",
    ];
    want.sort();
    assert_eq!(delivered(5), want);
    etrn_started(&mut c, "@example.org");
    want.extend([
        "u5@mail.example.org",
        "u6@notexample.org",
        "example.org@other.net",
    ]);
    want.sort();
    assert_eq!(delivered(8), want);
    etrn_started(&mut c, "listed.example");
    want.push("a@listed.example");
    want.sort();
    assert_eq!(delivered(9), want);
    etrn_started(&mut c, "@listed.example");
    want.push("b@sub.listed.example");
    want.sort();
    assert_eq!(delivered(10), want);
    let left = env.mailq(&[]);
    assert!(left.contains("u7@other.net"), "{left}");
    assert!(left.contains("c@listed.example.uk"), "{left}");
    assert_eq!(env.entries().len(), 2, "{left}");
}
