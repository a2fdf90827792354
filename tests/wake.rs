//! The queue runner's wake-up endpoint (`SPOOLDIR/wakeup`) and background deliveries
//! when no runner listens: local mail from an ordinary user delivered by the root runner
//! right after an `-odb` submission, the endpoint's type, owner, group and mode, a
//! submission that succeeds and delivers itself whatever is at the endpoint, a burst
//! of background submissions all delivered without a runner, and the runner's
//! deliveries kept apart by destination: local mail and another server's mail are not
//! held behind a slow server's reply, and a burst still shares one session.

use crate::harness::servers::{Peer, Sink, relay_env, start_peer};
use crate::harness::{
    Env, MSG, Runner, as_member, can_switch_user, closed_tcp_port, listened_on, test_user,
    user_ids, user_visible_bin, wait_until, wait_until_or,
};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn endpoint(env: &Env) -> PathBuf {
    env.spool.join("wakeup")
}

fn is_fifo(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_fifo())
}

/// A relay to a fresh smtp-sink with a MAILLOG, and a periodic runner listening on its
/// wake-up endpoint: (the sink's scratch env, the sink, the env, the log, the runner);
/// `None` without smtp-sink.
fn logging_runner() -> Option<(Env, Sink, Env, PathBuf, Runner)> {
    let env0 = Env::new();
    let sink = Sink::start(&env0.dir, &[])?;
    let env = relay_env(sink.port, "");
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let runner = Runner::listening(&env);
    Some((env0, sink, env, log, runner))
}

/// The pid that logged the delivery to `rcpt` in `log` (`rsendmail-deliver[PID]`).
fn delivered_by(log: &Path, rcpt: &str) -> Option<u32> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .find(|l| l.contains(&format!(": to=<{rcpt}>,")) && l.contains("stat=Sent"))
        .and_then(|l| l.split_once("rsendmail-deliver["))
        .and_then(|(_, rest)| rest.split_once(']'))
        .and_then(|(pid, _)| pid.parse().ok())
}

/// Waits (30 seconds at most, showing `log` if not) until `log` has the delivery to `rcpt`.
fn wait_delivered(log: &Path, rcpt: &str, what: &str) {
    wait_until_or(
        Duration::from_secs(30),
        what,
        || fs::read_to_string(log).unwrap_or_default(),
        || delivered_by(log, rcpt).is_some(),
    );
}

/// Waits until process `pid` has exited: gone, or a zombie nobody has reaped yet.
fn wait_gone(pid: u32, what: &str) {
    wait_until(Duration::from_secs(20), what, || {
        fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |st| {
            st.rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z'))
        })
    });
}

/// One message to `rcpt` through the SMTP server on `port`, every reply checked (a
/// sender without a domain: its domain is not looked up in the DNS).
fn smtp_send(port: u16, rcpt: &str) {
    let mut c = crate::harness::servers::Raw::connect(port);
    assert!(c.line().starts_with("220"));
    assert!(c.cmd("HELO client.example").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<sender>").starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{rcpt}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: bd\r\n\r\nbody\r\n.\r\n");
    assert!(c.line().starts_with("250"));
    assert!(c.cmd("QUIT").starts_with("221"));
}

/// The user's `sendmail` (`user_bin`) run as the test user on `conf` with `args`; it
/// must exit 0. What it printed.
fn submit_as_member(user_bin: &Path, conf: &str, args: &[&str]) -> String {
    let mut all = vec!["-C", conf];
    all.extend_from_slice(args);
    let out = as_member(user_bin, &all, &[], MSG);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{said}");
    said
}

/// Waits up to `limit` for `mbox` to hold `n` messages (`what` names the wait).
fn wait_for_mail(env: &Env, mbox: &Path, n: usize, limit: Duration, what: &str) {
    wait_until_or(
        limit,
        what,
        || format!("{}\n{}", env.listing(), states(env)),
        || count_in(mbox) == n,
    );
}

/// The installed layout for a user without the set-gid binary: the spool
/// `root:<the spool's group>` 2770, as the harness makes it, which the user reaches as
/// a member of that group ([`as_member`]), a config and copies of the binaries the user
/// may read and run. Returns the user's `sendmail`.
fn shared_spool(env: &Env) -> PathBuf {
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&env.conf, fs::Permissions::from_mode(0o644)).unwrap();
    let bins = env.dir.join("bin");
    fs::create_dir(&bins).unwrap();
    fs::set_permissions(&bins, fs::Permissions::from_mode(0o755)).unwrap();
    user_visible_bin(&bins, "sendmail")
}

/// The number of messages in an mbox.
fn count_in(mbox: &Path) -> usize {
    fs::read_to_string(mbox)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("From "))
        .count()
}

/// An ordinary user's `-odb` mail to root and to a command alias, with a root runner up:
/// the runner delivers both at once (not at its interval of an hour), the mailbox as its
/// recipient, the command as the default user (neither root nor the sender). Without the
/// runner's endpoint the user's own deliverer could only leave them queued (`needs the
/// root queue runner`).
#[test]
fn a_running_root_runner_delivers_a_users_local_mail_at_once() {
    // The test user's mailbox is delivered to: no `.forward` meanwhile.
    let _turn = crate::local::mailbox_turn();
    if !can_switch_user() {
        return;
    }
    let env = Env::new();
    let open = env.dir.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let aliases = env.dir.join("aliases");
    fs::write(
        &aliases,
        format!("prog: \"|id -u > {}/prog-id\"\n", open.display()),
    )
    .unwrap();
    fs::set_permissions(&aliases, fs::Permissions::from_mode(0o644)).unwrap();
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    let user_bin = shared_spool(&env);
    let runner = Runner::listening(&env);
    let mbox = env.dir.join("mail/root");
    let conf = env.conf.to_str().unwrap();
    let mut latencies = Vec::new();
    for n in 1..=5 {
        submit_as_member(&user_bin, conf, &["root"]);
        let returned = Instant::now();
        wait_for_mail(
            &env,
            &mbox,
            n,
            Duration::from_secs(20),
            "the root runner to deliver the user's mail to root",
        );
        latencies.push(returned.elapsed());
    }
    latencies.sort();
    eprintln!(
        "local mail, submission return -> mailbox: median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert_eq!(
        fs::metadata(&mbox).unwrap().uid(),
        user_ids("root").uid,
        "the mailbox is its recipient's"
    );
    // A submission that refused a recipient (its entry has a state file from the start)
    // and queued a report of it: both delivered by the runner at once.
    let out = as_member(
        &user_bin,
        &["-C", conf, "-oem", "nosuchuser", "root"],
        &[],
        MSG,
    );
    assert_eq!(out.status.code(), Some(67));
    let user_mbox = env.dir.join("mail").join(crate::harness::TEST_USER);
    wait_until_or(
        Duration::from_secs(20),
        "the message to root and the report to the sender",
        || env.listing(),
        || count_in(&mbox) == 6 && count_in(&user_mbox) == 1,
    );
    submit_as_member(&user_bin, conf, &["prog"]);
    let prog_id = open.join("prog-id");
    wait_until(Duration::from_secs(20), "the command to run", || {
        fs::read_to_string(&prog_id).is_ok_and(|t| t.ends_with('\n'))
    });
    let uid: u32 = fs::read_to_string(&prog_id)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        uid != user_ids("root").uid && uid != test_user().uid,
        "the command ran as {uid}"
    );
    env.wait_until_empty(Duration::from_secs(20));
    runner.stop();
}

/// The runner makes the endpoint: a FIFO owned by the runner, group the spool's, mode
/// 0620 (only the spool's group may write it). Something else in its place is moved into
/// `corrupt/` and a FIFO made; one removed while the runner runs is made again.
#[test]
fn the_wakeup_endpoint_is_a_fifo_only_the_spool_group_may_write() {
    let env = Env::new();
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    // The runner says it listens once the endpoint is made, opened and its group and
    // mode set (the FIFO is there before that).
    let listening = || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("queue runner listening on "))
            .count()
    };
    // Prepared by a first submission; then something that is not a FIFO planted.
    env.sendmail(&["-odq", "nobody@example.org"], MSG).code(0);
    fs::write(endpoint(&env), b"planted").unwrap();
    let runner = Runner::start(&env, &env.conf);
    wait_until_or(
        Duration::from_secs(30),
        "the runner's endpoint",
        || {
            format!(
                "{}\n{}",
                env.listing(),
                fs::read_to_string(&log).unwrap_or_default()
            )
        },
        || listening() == 1,
    );
    let check = || {
        let md = fs::symlink_metadata(endpoint(&env)).unwrap();
        assert!(md.file_type().is_fifo());
        assert_eq!(
            md.uid(),
            nix::unistd::geteuid().as_raw(),
            "owned by the runner"
        );
        assert_eq!(
            md.gid(),
            fs::metadata(&env.spool).unwrap().gid(),
            "group the spool's"
        );
        assert_eq!(md.mode() & 0o7777, 0o620);
    };
    check();
    let aside: Vec<String> = fs::read_dir(env.spool.join("corrupt"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        aside.iter().any(|n| n.starts_with("wakeup.")),
        "moved aside: {aside:?}"
    );
    fs::remove_file(endpoint(&env)).unwrap();
    wait_until(Duration::from_secs(30), "the endpoint made again", || {
        listening() == 2
    });
    check();
    runner.stop();
}

/// With no runner listening, a background submission returns 0 at once, its entry
/// queued, and starts its own delivery, whatever is at the endpoint: nothing, the FIFO a
/// stopped runner left, a stale socket, a regular file, a directory, a symlink to a
/// FIFO with a reader, or a FIFO whose reader never reads and whose pipe is full. A
/// file there is left as it was.
#[test]
fn a_submission_succeeds_whatever_is_at_the_endpoint() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    // The FIFO a runner made, left behind when it stopped.
    let runner = Runner::listening(&env);
    runner.stop();
    let mut sent = 0;
    let submit = |what: &str, sent: &mut usize| {
        *sent += 1;
        let t = Instant::now();
        env.sendmail(&[&format!("to{sent}@example.org")], MSG)
            .code(0);
        // Never waiting on what is at the endpoint (a full pipe would hold a blocking
        // write for ever): a bound no loaded machine comes near.
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what}: the submission took {:?}",
            t.elapsed()
        );
        wait_until_or(
            Duration::from_secs(30),
            &format!("{what}: the submission's own delivery"),
            || env.listing(),
            || sink.dumps().len() == *sent,
        );
    };
    assert!(is_fifo(&endpoint(&env)), "the stale FIFO is there");
    submit("a FIFO without a reader", &mut sent);
    fs::remove_file(endpoint(&env)).unwrap();
    submit("no endpoint", &mut sent);
    {
        let _gone = std::os::unix::net::UnixDatagram::bind(endpoint(&env)).unwrap();
    }
    submit("a stale socket", &mut sent);
    fs::remove_file(endpoint(&env)).unwrap();
    fs::write(endpoint(&env), b"a file").unwrap();
    submit("a regular file", &mut sent);
    assert_eq!(fs::read(endpoint(&env)).unwrap(), b"a file");
    fs::remove_file(endpoint(&env)).unwrap();
    fs::create_dir(endpoint(&env)).unwrap();
    submit("a directory", &mut sent);
    fs::remove_dir(endpoint(&env)).unwrap();
    let elsewhere = env.dir.join("elsewhere");
    nix::unistd::mkfifo(&elsewhere, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut reader = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&elsewhere)
        .unwrap();
    std::os::unix::fs::symlink(&elsewhere, endpoint(&env)).unwrap();
    submit("a symlink to a FIFO with a reader", &mut sent);
    fs::remove_file(endpoint(&env)).unwrap();
    // A FIFO with a reader that never reads, its pipe full.
    fs::rename(&elsewhere, endpoint(&env)).unwrap();
    {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a descriptor this test owns.
        unsafe {
            let fl = libc::fcntl(reader.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(reader.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        while reader.write(&[b'x'; 512]).is_ok_and(|n| n > 0) {}
    }
    submit("a full FIFO", &mut sent);
    drop(reader);
    assert_eq!(sink.dumps().len(), sent);
    env.wait_until_empty(Duration::from_secs(20));
}

/// 40 background submissions in a quick loop with no queue runner and two background
/// slots, to a server that takes a second over each message (so that the slots are busy
/// while the submissions come): every one is delivered (counted at smtp-sink), none left
/// for a queue run that may never come.
#[test]
fn forty_quick_background_submissions_are_all_delivered_without_a_runner() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &["-w", "1"]) else {
        return;
    };
    let env = relay_env(sink.port, "O MaxBackgroundDeliveries=2\n");
    for n in 0..40 {
        env.sendmail(&[&format!("burst{n}@example.org")], MSG)
            .code(0);
    }
    wait_until_or(
        Duration::from_secs(60),
        "all 40 messages at smtp-sink",
        || format!("{} arrived\n{}", sink.dumps().len(), env.listing()),
        || sink.dumps().len() == 40,
    );
    env.wait_until_empty(Duration::from_secs(20));
}

/// With a runner listening, a plain background submission is delivered by the runner
/// (its log line carries the runner's pid), while one with `-X` is delivered by its own
/// background process, which writes the SMTP traffic to the `-X` file. A line naming a
/// queue-only entry is ignored.
#[test]
fn the_runner_delivers_a_plain_submission_and_one_with_x_delivers_itself() {
    let Some((_env0, sink, env, log, runner)) = logging_runner() else {
        return;
    };
    let runner_pid = runner.0.id();
    let delivered_by = |rcpt: &str| delivered_by(&log, rcpt);
    // A line naming a queue-only entry (written by a member of the spool's group, not
    // by a submission) does not make the runner deliver it.
    env.sendmail(&["-odq", "held@example.org"], MSG).code(0);
    let held = env.only_id();
    {
        use std::io::Write;
        let mut w = fs::OpenOptions::new()
            .write(true)
            .open(endpoint(&env))
            .unwrap();
        w.write_all(format!("{held}\n").as_bytes()).unwrap();
    }
    env.sendmail(&["plain@example.org"], MSG).code(0);
    wait_delivered(
        &log,
        "plain@example.org",
        "the delivery of the plain submission",
    );
    assert_eq!(delivered_by("plain@example.org"), Some(runner_pid));
    assert!(
        env.spool.join(format!("qf{held}")).exists(),
        "{}",
        env.listing()
    );
    assert_eq!(delivered_by("held@example.org"), None);
    let traffic = env.dir.join("traffic");
    env.sendmail(
        &["-X", traffic.to_str().unwrap(), "traced@example.org"],
        MSG,
    )
    .code(0);
    wait_delivered(
        &log,
        "traced@example.org",
        "the delivery of the -X submission",
    );
    assert_ne!(delivered_by("traced@example.org"), Some(runner_pid));
    let t = fs::read_to_string(&traffic).unwrap();
    assert!(t.contains("=== CONNECT [127.0.0.1]"), "{t}");
    assert!(t.contains(">>> RCPT To:<traced@example.org>"), "{t}");
    assert_eq!(sink.dumps().len(), 2);
    runner.stop();
    assert!(env.spool.join(format!("qf{held}")).exists());
}

/// Messages the SMTP server accepts in background mode go to a listening runner as a
/// command-line submission's do: a `-bs` session's and a `-bD` daemon's are delivered by
/// the runner's process at once (not by a background deliverer of their own), and a
/// `-bs` session with an option its own deliverer must apply (`-X`) still delivers
/// itself.
#[test]
fn the_runner_delivers_what_the_smtp_server_accepted_in_background_mode() {
    use crate::harness::servers::Daemon;
    let Some((_env0, sink, env, log, runner)) = logging_runner() else {
        return;
    };
    let runner_pid = runner.0.id();
    let delivered_by = |rcpt: &str| delivered_by(&log, rcpt);
    let session = |rcpt: &str| {
        format!(
            "HELO client.example\r\nMAIL FROM:<sender>\r\nRCPT TO:<{rcpt}>\r\n\
             DATA\r\nSubject: bs\r\n\r\nbody\r\n.\r\nQUIT\r\n"
        )
    };
    // -bs, the default (background) mode.
    let out = env.sendmail(&["-bs"], session("bs@example.org").as_bytes());
    out.code(0);
    wait_delivered(&log, "bs@example.org", "the delivery of the -bs message");
    assert_eq!(delivered_by("bs@example.org"), Some(runner_pid));
    // -bs with -X: its own deliverer writes the traffic.
    let traffic = env.dir.join("traffic");
    env.sendmail(
        &["-X", traffic.to_str().unwrap(), "-bs"],
        session("traced@example.org").as_bytes(),
    )
    .code(0);
    wait_delivered(
        &log,
        "traced@example.org",
        "the delivery of the -bs -X message",
    );
    let traced_by = delivered_by("traced@example.org");
    assert_ne!(traced_by, Some(runner_pid));
    // That deliverer, before it exits, takes entries left waiting (the "rest follows"
    // rule): let it go first, so that the daemon's message below is the runner's to take.
    if let Some(pid) = traced_by {
        wait_gone(pid, "the -bs -X deliverer to exit");
    }
    // A -bD daemon without a runner of its own, in background mode.
    let daemon = Daemon::start(&env, &["-odb"]);
    smtp_send(daemon.port, "daemon@example.org");
    wait_delivered(
        &log,
        "daemon@example.org",
        "the delivery of the daemon's message",
    );
    assert_eq!(delivered_by("daemon@example.org"), Some(runner_pid));
    assert_eq!(sink.dumps().len(), 3);
    drop(daemon);
    runner.stop();
}

/// A daemon whose command line gives options that change nothing of a delivery (where
/// it listens, its pid file) hands what it accepted in background mode to the listening
/// queue runner, as a daemon without them does; one with an option its deliverer must
/// apply (a timeout) delivers it itself, and says so in the log when it cannot (its
/// configuration no longer reads), handing the message to the runner.
#[test]
fn a_daemon_with_listener_options_hands_accepted_mail_to_the_runner() {
    use crate::harness::servers::Daemon;
    let Some((_env0, sink, env, log, runner)) = logging_runner() else {
        return;
    };
    let runner_pid = runner.0.id();
    let send = |port: u16, rcpt: &str| {
        smtp_send(port, rcpt);
        wait_delivered(&log, rcpt, "the delivery of the daemon's message");
        delivered_by(&log, rcpt)
    };
    let port = closed_tcp_port();
    let listen = format!("DaemonPortOptions=Port={port},Addr=127.0.0.1");
    let pid_file = env.dir.join("daemon.pid");
    let pid_opt = format!("PidFile={}", pid_file.display());
    let daemon = Daemon::start_on(&env, &["-odb", "-O", &listen, "-O", &pid_opt], port);
    assert_eq!(send(port, "listener@example.org"), Some(runner_pid));
    drop(daemon);
    // A timeout is its deliverer's to apply: not handed over.
    let port = closed_tcp_port();
    let listen = format!("DaemonPortOptions=Port={port},Addr=127.0.0.1");
    let daemon = Daemon::start_on(
        &env,
        &["-odb", "-O", &listen, "-O", "Timeout.connect=7s"],
        port,
    );
    let by = send(port, "timeout@example.org");
    assert!(by.is_some() && by != Some(runner_pid), "{by:?}");
    // That deliverer takes entries left waiting before it exits ("the rest follows"):
    // let it go first, so that the next message is the runner's or nobody's.
    if let Some(pid) = by {
        wait_gone(pid, "the daemon's deliverer to exit");
    }
    // The configuration broken meanwhile (an edit in progress): its own deliverer would
    // end at once, unseen; said in the log, and the runner takes the message.
    let conf = fs::read_to_string(&env.conf).unwrap();
    fs::write(&env.conf, format!("{conf}SMARTHOTS typo.example\n")).unwrap();
    assert_eq!(send(port, "broken@example.org"), Some(runner_pid));
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().any(|l| l
            .contains(": not delivered by this server: the configuration no longer reads: ")
            && l.contains("SMARTHOTS")
            && l.ends_with("; handed to the queue runner")),
        "{text}"
    );
    fs::write(&env.conf, conf).unwrap();
    drop(daemon);
    assert_eq!(sink.dumps().len(), 3);
    runner.stop();
}

/// An ordinary user's `-odb` mail to a third user (neither root nor the sender), with a
/// root runner up: the runner delivers it at once into that user's mailbox, which it
/// makes owned by that user (the sender's own process could not: the mailbox is neither
/// its own nor in a directory it may write).
#[test]
fn a_running_root_runner_delivers_a_users_mail_to_a_third_users_mailbox() {
    if !can_switch_user() {
        return;
    }
    let env = Env::new();
    let user_bin = shared_spool(&env);
    let runner = Runner::listening(&env);
    let third = crate::harness::other_user();
    let mbox = env.dir.join("mail/nobody");
    let conf = env.conf.to_str().unwrap();
    for n in 1..=2 {
        submit_as_member(&user_bin, conf, &["nobody"]);
        wait_for_mail(
            &env,
            &mbox,
            n,
            Duration::from_secs(20),
            "the root runner to deliver the user's mail to nobody",
        );
    }
    let md = fs::metadata(&mbox).unwrap();
    assert_eq!(md.uid(), third.uid, "the mailbox is its recipient's");
    assert_ne!(md.uid(), test_user().uid);
    env.wait_until_empty(Duration::from_secs(20));
    runner.stop();
}

/// Waits until root's mailbox in `env` holds `what` (one message) while `peer`, slow
/// to answer a final dot, has taken nothing; then until the peer has taken its message
/// and the queue is empty, each message delivered once. The peer's message.
fn root_first_then_the_slow_server(env: &Env, peer: &Peer, what: &str) -> (String, Vec<u8>) {
    let mbox = env.dir.join("mail/root");
    wait_until_or(
        Duration::from_secs(25),
        &format!("{what} while the slow server has not answered"),
        || format!("{}\n{}", peer.transcript(), env.listing()),
        || count_in(&mbox) == 1,
    );
    assert!(
        peer.messages().is_empty(),
        "the slow server answered before {what} arrived: {}",
        peer.transcript()
    );
    assert_eq!(peer.wait_for(1, Duration::from_secs(60)).len(), 1);
    env.wait_until_empty(Duration::from_secs(20));
    let mut got = peer.messages();
    assert_eq!(got.len(), 1, "the server's message once");
    assert_eq!(count_in(&mbox), 1, "root's once");
    got.remove(0)
}

/// The runner's config to the fault server at `port`, with room for a reply to the
/// final dot that takes 30 seconds.
fn slow_relay_env(port: u16) -> Env {
    Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {port}\nO Timeout.connect=5s\nO Timeout.datafinal=60s\n"
    ))
}

/// A fault server that answers the final dot once the test writes the file `go` (or after
/// 50 seconds): the Env that holds `go`, `go`, the server's scratch Env and the server;
/// None where the server is not available.
fn gated_peer() -> Option<(Env, PathBuf, Env, Peer)> {
    let gates = Env::new();
    let go = gates.dir.join("go");
    let (scratch, peer) = start_peer(&[("STALL", "50"), ("STALL_UNTIL", go.to_str().unwrap())])?;
    Some((gates, go, scratch, peer))
}

/// An Env whose RELAYTABLE sends each `(domain, port)` of `routes` to 127.0.0.1 at that
/// port, with room for a reply to the final dot that takes 30 seconds, and `extra`.
fn relay_table_env(routes: &[(&str, u16)], extra: &str) -> Env {
    let env = Env::new();
    let table = env.dir.join("relays");
    let lines: String = routes
        .iter()
        .map(|(domain, port)| format!("{domain} 127.0.0.1:{port}\n"))
        .collect();
    fs::write(&table, lines).unwrap();
    env.add_config(&format!(
        "RELAYTABLE {}\nO Timeout.connect=5s\nO Timeout.datafinal=60s\n{extra}",
        table.display()
    ));
    env
}

/// With the runner delivering a message to a server that takes 30 seconds to answer its
/// final dot, an ordinary user's `-odb` mail to root submitted meanwhile is in root's
/// mailbox while that reply is still awaited (not after it); then the slow one is taken,
/// each message once.
#[test]
fn local_mail_is_not_held_behind_a_slow_server() {
    if !can_switch_user() {
        return;
    }
    let Some((_scratch, peer)) = start_peer(&[("STALL", "30")]) else {
        return;
    };
    let env = slow_relay_env(peer.port);
    let user_bin = shared_spool(&env);
    let runner = Runner::listening(&env);
    env.sendmail(&["stall@example.org"], MSG).code(0);
    peer.wait_transcript("DATA-END", Duration::from_secs(30));
    let conf = env.conf.to_str().unwrap();
    submit_as_member(&user_bin, conf, &["root"]);
    root_first_then_the_slow_server(&env, &peer, "the local mail");
    runner.stop();
}

/// Two relays (RELAYTABLE), each taking 30 seconds to answer the final dot: the
/// runner's message to the second is sent while it still waits for the first one's
/// reply; both are taken, once each.
#[test]
fn two_slow_servers_do_not_hold_each_other() {
    let Some((_s1, a)) = start_peer(&[("STALL", "30")]) else {
        return;
    };
    let Some((_s2, b)) = start_peer(&[("STALL", "30")]) else {
        return;
    };
    let env = relay_table_env(&[("a.example", a.port), ("b.example", b.port)], "");
    let runner = Runner::listening(&env);
    env.sendmail(&["stall@a.example"], MSG).code(0);
    a.wait_transcript("DATA-END", Duration::from_secs(30));
    env.sendmail(&["stall@b.example"], MSG).code(0);
    wait_until_or(
        Duration::from_secs(25),
        "the message to the second server while the first has not answered",
        || {
            format!(
                "a:\n{}\nb:\n{}\n{}",
                a.transcript(),
                b.transcript(),
                env.listing()
            )
        },
        || b.transcript().contains("DATA-END"),
    );
    assert!(
        a.messages().is_empty(),
        "the first server answered first: {}",
        a.transcript()
    );
    assert_eq!(a.wait_for(1, Duration::from_secs(60)).len(), 1);
    assert_eq!(b.wait_for(1, Duration::from_secs(60)).len(), 1);
    env.wait_until_empty(Duration::from_secs(20));
    assert_eq!(a.messages().len(), 1, "each message once");
    assert_eq!(b.messages().len(), 1, "each message once");
    runner.stop();
}

/// Ten quick background submissions to one smarthost that takes a second over each
/// message, with the runner up and `O MaxConnections=2`: each delivered once, over at
/// most two sessions (counted at smtp-sink): the entries poked while a delivery to the
/// relay is in progress go together after it, over its connections, never one
/// connection each.
#[test]
fn a_burst_to_the_runner_shares_sessions() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &["-w", "1"]) else {
        return;
    };
    let env = relay_env(
        sink.port,
        "O MaxConnections=2\nO MaxBackgroundDeliveries=4\n",
    );
    let runner = Runner::listening(&env);
    wait_until(Duration::from_secs(20), "the probe logged", || {
        sink.connections() >= 1
    });
    let before = sink.connections();
    for i in 0..10 {
        env.sendmail(&["-odb", &format!("r{i}@example.org")], MSG)
            .code(0);
    }
    wait_until_or(
        Duration::from_secs(30),
        "10 messages at the sink",
        || env.listing(),
        || sink.dumps().len() >= 10,
    );
    env.wait_until_empty(Duration::from_secs(20));
    assert_eq!(sink.dumps().len(), 10, "each message once");
    let n = sink.connections() - before;
    assert!(n <= 2, "{n} sessions for 10 messages");
    runner.stop();
}

/// A root runner whose aliases file holds `aliases` (`OPEN` in it names a directory
/// anyone may write, for the flags a command alias makes and waits for), with a relay
/// to `port` whose final dot may take 30 seconds; the env, and the open directory.
fn slow_local_env(port: u16, aliases: &str, extra: &str) -> (Env, PathBuf) {
    let env = slow_relay_env(port);
    let open = env.dir.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let file = env.dir.join("aliases");
    fs::write(&file, aliases.replace("OPEN", open.to_str().unwrap())).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    env.add_config(&format!("ALIASES {}\n{extra}", file.display()));
    (env, open)
}

/// A command alias that runs until it is let go (a program that takes long), and root's
/// mail submitted while it runs: root's mail is in its mailbox while the command still
/// runs; then the command ends, and each message was delivered once.
#[test]
fn local_mail_is_not_held_behind_a_slow_program() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let (env, open) = slow_local_env(
        peer.port,
        "slowprog: \"|/bin/sh -c 'touch OPEN/started; while [ ! -e OPEN/go ]; do sleep 0.1; done; cat >/dev/null'\"\n",
        "",
    );
    let runner = Runner::listening(&env);
    env.sendmail(&["slowprog"], MSG).code(0);
    wait_until_or(
        Duration::from_secs(30),
        "the command to start",
        || env.listing(),
        || open.join("started").exists(),
    );
    env.sendmail(&["root"], MSG).code(0);
    let mbox = env.dir.join("mail/root");
    let arrived = wait_for_true(Duration::from_secs(25), || count_in(&mbox) == 1);
    // Root's entry goes once its copy is in the mailbox: a moment later.
    wait_for_true(Duration::from_secs(10), || env.entries().len() <= 1);
    let still_queued = env.entries().len();
    fs::write(open.join("go"), "").unwrap();
    assert!(
        arrived,
        "root's mail waited for the command: {}",
        env.listing()
    );
    assert_eq!(still_queued, 1, "the command's entry was still queued");
    env.wait_until_empty(Duration::from_secs(30));
    assert_eq!(count_in(&mbox), 1, "each message once");
    runner.stop();
}

/// Whether `cond` held within `limit` (polled).
fn wait_for_true(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// One message to root and to a server that takes 30 seconds to answer its final dot:
/// root's copy is in its mailbox while that reply is still awaited; then the server
/// takes its copy, once.
#[test]
fn a_messages_local_recipients_do_not_wait_for_its_remote_ones() {
    let Some((_scratch, peer)) = start_peer(&[("STALL", "30")]) else {
        return;
    };
    let env = slow_relay_env(peer.port);
    let runner = Runner::listening(&env);
    env.sendmail(&["stall@example.org", "root"], MSG).code(0);
    root_first_then_the_slow_server(&env, &peer, "root's copy");
    runner.stop();
}

/// A user whose `.forward` sends their mail to a server that takes 30 seconds to answer
/// its final dot: root's mail submitted after theirs is in its mailbox while that reply
/// is still awaited; the forwarded copy then reaches the server, once.
#[test]
fn local_mail_is_not_held_behind_a_forward_to_a_slow_server() {
    if !crate::harness::is_root() || !can_switch_user() {
        return;
    }
    let _turn = crate::local::forward_turn();
    let Some((_scratch, peer)) = start_peer(&[("STALL", "30")]) else {
        return;
    };
    crate::local::write_forward("stallfw@example.org\n");
    let env = slow_relay_env(peer.port);
    let runner = Runner::listening(&env);
    env.sendmail(&[crate::harness::TEST_USER], MSG).code(0);
    peer.wait_transcript("DATA-END", Duration::from_secs(30));
    env.sendmail(&["root"], MSG).code(0);
    let (got, _) = root_first_then_the_slow_server(&env, &peer, "root's mail");
    assert!(got.contains("stallfw@example.org"), "{got}");
    runner.stop();
}

/// `O MaxConnections=1` and three entries for one relay host that takes 8 seconds to
/// answer each final dot, each with other recipients (none, root, another relay's): the
/// runner delivers them in different threads, yet while the first message's reply is
/// awaited no other session to that host begins a transaction; each message is taken
/// once.
#[test]
fn max_connections_holds_across_the_runners_deliveries() {
    let Some((_s1, slow)) = start_peer(&[("STALL", "8")]) else {
        return;
    };
    let Some((_s2, fast)) = start_peer(&[]) else {
        return;
    };
    let env = relay_table_env(
        &[("slow.example", slow.port), ("fast.example", fast.port)],
        "O MaxConnections=1\n",
    );
    let runner = Runner::listening(&env);
    env.sendmail(&["stalla@slow.example"], MSG).code(0);
    slow.wait_transcript("DATA-END", Duration::from_secs(30));
    env.sendmail(&["stallb@slow.example", "root"], MSG).code(0);
    env.sendmail(&["stallc@slow.example", "f@fast.example"], MSG)
        .code(0);
    // Until the first reply: the sessions that began a transaction.
    wait_until_or(
        Duration::from_secs(60),
        "the first message taken",
        || slow.transcript(),
        || !slow.messages().is_empty(),
    );
    let mut sessions: Vec<String> = slow
        .transcript()
        .lines()
        .filter(|l| l.split(' ').nth(1) == Some("MAIL"))
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect();
    sessions.sort();
    sessions.dedup();
    assert_eq!(
        sessions.len(),
        1,
        "sessions with a transaction while the first reply was awaited: {}",
        slow.transcript()
    );
    assert_eq!(slow.wait_for(3, Duration::from_secs(90)).len(), 3);
    env.wait_until_empty(Duration::from_secs(30));
    assert_eq!(slow.messages().len(), 3, "each message once");
    assert_eq!(fast.messages().len(), 1);
    assert_eq!(count_in(&env.dir.join("mail/root")), 1);
    runner.stop();
}

/// The entry in `env`'s spool is still queued for its remote recipient, whose one
/// attempt was not made again.
fn assert_remote_part_kept_back(env: &Env) {
    let st = states(env);
    assert!(
        st.contains("attempts 1\n"),
        "the remote part was tried again: {st}"
    );
    assert_eq!(env.entries().len(), 1, "the remote recipient stays queued");
}

/// The text of every state file in the env's spool.
fn states(env: &Env) -> String {
    let mut out = String::new();
    for e in fs::read_dir(&env.spool).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with("sf") {
            // (Spaces and `%` are escaped there.)
            let text = fs::read_to_string(e.path()).unwrap_or_default();
            out.push_str(&text.replace("%20", " ").replace("%25", "%"));
        }
    }
    out
}

/// A root runner reloaded (SIGHUP) while it waits for a slow server's reply to the final
/// dot (the server answers when the test lets it): the reload does not stop new work.
/// An ordinary user's `-odb` mail to root submitted meanwhile is in root's mailbox while
/// that reply is still awaited, delivered by a runner of the new configuration; the
/// slow delivery then ends (its message sent once), and the runner, the same process,
/// listens again, alone.
#[test]
fn a_users_local_mail_during_a_runners_reload_behind_a_slow_server_arrives_at_once() {
    if !can_switch_user() {
        return;
    }
    let Some((_gates, go, _scratch, peer)) = gated_peer() else {
        return;
    };
    let env = slow_relay_env(peer.port);
    let user_bin = shared_spool(&env);
    let runner = Runner::listening(&env);
    let pid = runner.0.id();
    env.sendmail(&["stall@example.org"], MSG).code(0);
    peer.wait_transcript("DATA-END", Duration::from_secs(30));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    // The new configuration's runner is started once the new start was checked.
    std::thread::sleep(Duration::from_millis(500));
    let conf = env.conf.to_str().unwrap();
    submit_as_member(&user_bin, conf, &["root"]);
    let mbox = env.dir.join("mail/root");
    let arrived = wait_for_true(Duration::from_secs(20), || count_in(&mbox) == 1);
    let held = format!("{}\n{}", env.listing(), states(&env));
    fs::write(&go, "").unwrap();
    assert!(arrived, "root's mail waited for the slow server: {held}");
    assert_eq!(peer.wait_for(1, Duration::from_secs(30)).len(), 1);
    env.wait_until_empty(Duration::from_secs(30));
    assert_eq!(count_in(&mbox), 1, "once");
    assert_eq!(peer.messages().len(), 1, "the server's copy once");
    // The runner executed itself again once its delivery ended, and listens.
    wait_until_or(
        Duration::from_secs(30),
        "the reloaded runner to listen",
        || env.listing(),
        || listened_on(&env),
    );
    assert_eq!(runner.0.id(), pid);
    runner.stop();
}

/// An ordinary user's `-odb` mail to root and to a slow server with no runner up: the
/// user's deliverer is still waiting for the server's reply (the entry locked) when a
/// root runner starts, finds the entry locked at its start and listens; the server then
/// answers and the user's deliverer defers root's copy (`needs the root queue runner`).
/// The listening runner takes that copy soon after, not at its interval of an hour; each
/// copy arrives once.
#[test]
fn a_root_runner_takes_local_mail_deferred_for_want_of_root_after_it_listens() {
    if !can_switch_user() {
        return;
    }
    let Some((_gates, go, _scratch, peer)) = gated_peer() else {
        return;
    };
    let env = slow_relay_env(peer.port);
    let user_bin = shared_spool(&env);
    let conf = env.conf.to_str().unwrap();
    // The spool's whole layout, root's, as an install's init makes it; then no runner.
    Runner::listening(&env).stop();
    submit_as_member(&user_bin, conf, &["root", "stall@example.org"]);
    // The user's deliverer waits for the server's reply to the final dot.
    peer.wait_transcript("DATA-END", Duration::from_secs(30));
    let runner = Runner::listening(&env);
    fs::write(&go, "").unwrap();
    assert_eq!(peer.wait_for(1, Duration::from_secs(30)).len(), 1);
    let mbox = env.dir.join("mail/root");
    wait_for_mail(
        &env,
        &mbox,
        1,
        Duration::from_secs(30),
        "the listening runner to take root's copy the user's deliverer deferred",
    );
    env.wait_until_empty(Duration::from_secs(20));
    assert_eq!(count_in(&mbox), 1, "root's copy once");
    assert_eq!(peer.messages().len(), 1, "the server's copy once");
    runner.stop();
}

/// An ordinary user's `-odb` mail to root with no runner up: the user's deliverer defers
/// it (`needs the root queue runner`) with a back-off; a root runner started later takes
/// it at its start, whatever that back-off (its interval is an hour).
#[test]
fn a_root_runner_takes_mail_deferred_for_want_of_root_at_its_start() {
    if !can_switch_user() {
        return;
    }
    let env = Env::new();
    let user_bin = shared_spool(&env);
    let conf = env.conf.to_str().unwrap();
    // The spool's whole layout, root's, as an install's init makes it: a root runner
    // started once makes it all (its slots too), and stops for good.
    Runner::listening(&env).stop();
    submit_as_member(&user_bin, conf, &["root"]);
    wait_until_or(
        Duration::from_secs(20),
        "the user's deliverer to defer root's mail",
        || env.listing(),
        || states(&env).contains("needs the root queue runner"),
    );
    assert!(
        states(&env).contains("next-attempt"),
        "deferred with a back-off: {}",
        states(&env)
    );
    // The user's deliverer has let the entry go (a runner whose first run found it
    // still locked would leave it for its interval, as any run leaves a locked entry).
    wait_until_or(
        Duration::from_secs(20),
        "the user's deliverer to let the entry go",
        || env.listing(),
        || {
            fs::read_dir(&env.spool)
                .into_iter()
                .flatten()
                .flatten()
                .all(|e| {
                    !e.file_name().to_string_lossy().starts_with("qf")
                        || fs::File::open(e.path()).is_ok_and(|f| f.try_lock().is_ok())
                })
        },
    );
    let runner = Runner::listening(&env);
    let mbox = env.dir.join("mail/root");
    wait_for_mail(
        &env,
        &mbox,
        1,
        Duration::from_secs(20),
        "the runner to take root's mail at its start",
    );
    env.wait_until_empty(Duration::from_secs(20));
    runner.stop();
}

/// One message to a command alias that exits 75 (EX_TEMPFAIL) once and then takes its
/// copy, and to a relay that refuses connections (the back-off, `O QueueRetryMin=2h`,
/// far longer than the test): the local copy is tried again after `O QueueRetryLocal=`
/// and arrives, once, while the remote recipient keeps its back-off (its attempt is
/// not made again: the entry still counts one attempt and stays queued).
#[test]
fn a_mixed_entrys_deferred_local_part_is_retried_before_its_remote_back_off() {
    let (env, open) = slow_local_env(
        closed_tcp_port(),
        "flaky: \"|/bin/sh -c 'if [ -e OPEN/failed ]; then cat >>OPEN/got; else touch OPEN/failed; exit 75; fi'\"\n",
        "O QueueRetryMin=2h\nO QueueRetryLocal=2s\n",
    );
    let runner = Runner::listening(&env);
    env.sendmail(&["flaky", "far@example.org"], MSG).code(0);
    wait_until_or(
        Duration::from_secs(30),
        "the command's first (failed) run and the remote attempt",
        || format!("{}\n{}", env.listing(), states(&env)),
        || open.join("failed").exists() && states(&env).contains("attempts 1"),
    );
    wait_until_or(
        Duration::from_secs(30),
        "the local copy at the local retry time",
        || format!("{}\n{}", env.listing(), states(&env)),
        || fs::read_to_string(open.join("got")).is_ok_and(|t| t.contains("Subject")),
    );
    // The local part's record (written after the command ended) has no local
    // schedule left: no local recipient is open.
    wait_until_or(
        Duration::from_secs(20),
        "the local copy recorded",
        || states(&env),
        || !states(&env).contains("local-next-attempt"),
    );
    assert_remote_part_kept_back(&env);
    let st = states(&env);
    assert!(
        st.lines()
            .any(|l| l.starts_with("rcpt ") && l.contains(" deferred")),
        "the remote recipient stays deferred: {st}"
    );
    // What mailq shows for it is the remote recipient's deferral still.
    assert!(st.contains("\nreason Deferred"), "{st}");
    let got = fs::read_to_string(open.join("got")).unwrap();
    assert_eq!(got.matches("Subject").count(), 1, "once: {got}");
    runner.stop();
}

/// An ordinary user's interactive submissions (`-v`, `-odi`) to root with a root runner
/// listening: the user's deliverer can only defer root's mail (`needs the root queue
/// runner`) and hands the entry to the runner, which delivers it at once (its interval
/// is an hour); `-v` tells that it was handed on.
#[test]
fn a_users_interactive_local_mail_is_handed_to_the_root_runner() {
    let _turn = crate::local::mailbox_turn();
    if !can_switch_user() {
        return;
    }
    let env = Env::new();
    let user_bin = shared_spool(&env);
    let conf = env.conf.to_str().unwrap();
    let runner = Runner::listening(&env);
    let mbox = env.dir.join("mail/root");
    let said = submit_as_member(&user_bin, conf, &["-v", "-oi", "root"]);
    assert!(
        said.contains("root... handed to the queue runner"),
        "{said}"
    );
    wait_for_mail(
        &env,
        &mbox,
        1,
        Duration::from_secs(20),
        "the runner to deliver the user's -v mail to root",
    );
    submit_as_member(&user_bin, conf, &["-odi", "-oi", "root"]);
    wait_for_mail(
        &env,
        &mbox,
        2,
        Duration::from_secs(20),
        "the runner to deliver the user's -odi mail to root",
    );
    env.wait_until_empty(Duration::from_secs(20));
    runner.stop();
}

/// Pipes the test user's `.forward` to `program` (a shell command; `OPEN` stands for
/// an open directory, where the program must touch `started` and then hang until `go`
/// is there), queues as many messages as the runner makes local deliveries at once
/// (four per CPU, at least eight), the `i`th to `rcpt(i)`, and once the program has
/// started, one to root: root's arrives while the program still hangs; once it is let
/// go, every message is delivered, root's once. `check` looks at the open directory
/// then, before the runner stops.
fn a_hung_program_holds_only_its_users_mail(
    program: &str,
    rcpt: impl Fn(usize) -> String,
    check: impl FnOnce(&Path),
) {
    if !can_switch_user() {
        return;
    }
    let _turn = crate::local::forward_turn();
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let (env, open) = slow_local_env(peer.port, "", "");
    crate::local::write_forward(&format!(
        "\"|/bin/sh -c '{}'\"\n",
        program.replace("OPEN", open.to_str().unwrap())
    ));
    let runner = Runner::listening(&env);
    let at_once = std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .saturating_mul(4)
        .max(8);
    for i in 0..at_once {
        env.sendmail(&[&rcpt(i)], MSG).code(0);
    }
    wait_until_or(
        Duration::from_secs(30),
        "the program to start",
        || env.listing(),
        || open.join("started").exists(),
    );
    env.sendmail(&["root"], MSG).code(0);
    let mbox = env.dir.join("mail/root");
    let arrived = wait_for_true(Duration::from_secs(25), || count_in(&mbox) == 1);
    fs::write(open.join("go"), "").unwrap();
    assert!(
        arrived,
        "root's mail waited for the user's program: {}",
        env.listing()
    );
    env.wait_until_empty(Duration::from_secs(60));
    assert_eq!(count_in(&mbox), 1, "root's mail once");
    check(&open);
    runner.stop();
}

/// As many messages as the runner makes local deliveries at once (four per CPU, at least
/// eight) to a user whose `.forward` pipes to a program that hangs until it is let go,
/// then one to root: the runner delivers to one recipient one at a time, so the user's
/// mail holds one delivery and root's arrives while the program still hangs; once it is
/// let go, every message is delivered.
#[test]
fn a_users_hung_program_holds_only_her_own_local_mail() {
    a_hung_program_holds_only_its_users_mail(
        "touch OPEN/started; while [ ! -e OPEN/go ]; do sleep 0.1; done; cat >/dev/null",
        |_| crate::harness::TEST_USER.to_string(),
        |_| {},
    );
}

/// As many messages as the runner makes local deliveries at once, each to another
/// `user+detail` of a user whose `.forward` pipes to a program that hangs until it is
/// let go, then one to root: the runner counts the mailbox or target a name reaches,
/// not the name, so the user's mail goes one message at a time whatever its detail,
/// holds one delivery, and root's arrives while the program still hangs; once it is
/// let go, every message is delivered, the program never running twice at once.
#[test]
fn a_users_hung_program_holds_one_delivery_whatever_detail_her_mail_names() {
    a_hung_program_holds_only_its_users_mail(
        "mkdir OPEN/running || touch OPEN/overlap; touch OPEN/started; \
         while [ ! -e OPEN/go ]; do sleep 0.1; done; rmdir OPEN/running; cat >/dev/null",
        |i| format!("{}+d{i}", crate::harness::TEST_USER),
        |open| {
            assert!(
                !open.join("overlap").exists(),
                "the program ran for two messages at once"
            )
        },
    );
}

/// An ordinary user's interactive submission (`-v`) to root and to a relay that refuses
/// connections, with a root runner listening since before it (its first run found the
/// queue empty): the user's deliverer defers root's copy (`needs the root queue
/// runner`) and the remote one (with a back-off), and hands the entry on, which `-v`
/// tells of root's copy alone; the runner delivers root's copy at once (its interval
/// is an hour), and the remote recipient keeps its back-off.
#[test]
fn a_users_interactive_mixed_mail_has_its_local_part_taken_at_once() {
    let _turn = crate::local::mailbox_turn();
    if !can_switch_user() {
        return;
    }
    let env = slow_relay_env(closed_tcp_port());
    env.add_config("O QueueRetryMin=2h\n");
    let user_bin = shared_spool(&env);
    let conf = env.conf.to_str().unwrap();
    let runner = Runner::listening(&env);
    let mbox = env.dir.join("mail/root");
    let said = submit_as_member(&user_bin, conf, &["-v", "-oi", "root", "far@example.org"]);
    assert!(
        said.contains("root... handed to the queue runner")
            && !said.contains("far@example.org... handed"),
        "{said}"
    );
    wait_for_mail(
        &env,
        &mbox,
        1,
        Duration::from_secs(20),
        "the runner to deliver root's copy of the user's -v mail",
    );
    assert_remote_part_kept_back(&env);
    runner.stop();
    assert_eq!(count_in(&mbox), 1, "once");
}

/// An ordinary user's interactive submission (`-odi`) to root and to a relay that refuses
/// connections with no root runner up: root's copy is deferred (`needs the root queue
/// runner`, its local retry an hour away) and the remote one backs off for two hours. A
/// root runner started then takes root's copy at its first run, not at the local retry
/// time; the remote recipient keeps its back-off.
#[test]
fn a_root_runner_takes_a_mixed_entrys_local_part_deferred_for_root_at_its_start() {
    let _turn = crate::local::mailbox_turn();
    if !can_switch_user() {
        return;
    }
    let env = slow_relay_env(closed_tcp_port());
    env.add_config("O QueueRetryMin=2h\nO QueueRetryLocal=1h\n");
    let user_bin = shared_spool(&env);
    let conf = env.conf.to_str().unwrap();
    // The spool's whole layout, root's, as an install's init makes it; then no runner.
    Runner::listening(&env).stop();
    submit_as_member(&user_bin, conf, &["-odi", "-oi", "root", "far@example.org"]);
    assert!(
        states(&env).contains("needs the root queue runner"),
        "{}",
        states(&env)
    );
    let runner = Runner::listening(&env);
    let mbox = env.dir.join("mail/root");
    wait_for_mail(
        &env,
        &mbox,
        1,
        Duration::from_secs(20),
        "the runner to take root's copy at its start",
    );
    assert_remote_part_kept_back(&env);
    runner.stop();
    assert_eq!(count_in(&mbox), 1, "once");
}
