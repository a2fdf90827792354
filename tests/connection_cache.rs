//! The connection cache (`O ConnectionCacheSize=`, `O ConnectionCacheTimeout=`) and the
//! entries that follow a background delivery over its connection, counted in sessions at
//! Postfix's smtp-sink and at the fault server (tests/peers/fault_server.py).

use crate::harness::servers::{Peer, Sink, relay_env, start_peer};
use crate::harness::{Env, MSG, holds_for, sigterm, wait_exit, wait_until};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Queue `n` messages (`-odq`) to `{prefix}{i}@{domain}`.
fn queue(env: &Env, prefix: &str, domain: &str, n: usize) {
    for i in 0..n {
        env.sendmail(&["-odq", &format!("{prefix}{i}@{domain}")], MSG)
            .code(0);
    }
}

/// The fault server's sessions that said EHLO.
fn sessions(peer: &Peer) -> usize {
    let t = peer.transcript();
    t.lines()
        .filter(|l| {
            l.split_once(' ')
                .is_some_and(|(_, c)| c.starts_with("EHLO"))
        })
        .filter_map(|l| l.split_once(' ').map(|(s, _)| s.to_string()))
        .collect::<BTreeSet<_>>()
        .len()
}

/// The ids of the queue entries.
fn ids(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = env
        .entries()
        .iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()?
                .strip_prefix("qf")
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

/// Set an entry's next attempt (its back-off) to `when` (seconds since the epoch).
fn set_next_attempt(spool: &Path, id: &str, when: i64) {
    let sf = spool.join(format!("sf{id}"));
    let st = fs::read_to_string(&sf).unwrap();
    let new: String = st
        .lines()
        .map(|l| {
            if l.starts_with("next-attempt ") {
                format!("next-attempt {when}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(new, st, "no next-attempt in {st}");
    fs::write(&sf, new).unwrap();
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A process started here, killed when dropped (a failed assertion leaves none behind).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(env: &Env, args: &[&str]) -> Running {
    Running(
        Command::new(env.link("sendmail"))
            .args(["-C", env.conf.to_str().unwrap()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A queue run of many entries to one smarthost uses one session, though up to
/// `MaxConnections` (4) workers deliver them.
#[test]
fn queue_run_to_one_smarthost_uses_one_session() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    queue(&env, "r", "example.org", 12);
    let before = sink.connections();
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(sink.dumps().len(), 12);
    assert!(env.entries().is_empty());
    assert_eq!(
        sink.connections() - before,
        1,
        "{}",
        fs::read_to_string(&sink.log).unwrap()
    );
}

/// Entries to two relays (RELAYTABLE) use one session to each.
#[test]
fn queue_run_to_two_hosts_uses_two_sessions() {
    let env0 = Env::new();
    let Some(a) = Sink::start(&env0.dir.join("a"), &[]) else {
        return;
    };
    let b = Sink::start(&env0.dir.join("b"), &[]).unwrap();
    let table = env0.dir.join("relays");
    fs::write(
        &table,
        format!(
            "a.example [127.0.0.1]:{}\nb.example [127.0.0.1]:{}\n",
            a.port, b.port
        ),
    )
    .unwrap();
    let env = relay_env(a.port, &format!("RELAYTABLE {}\n", table.display()));
    for i in 0..6 {
        queue(&env, &format!("a{i}-"), "a.example", 1);
        queue(&env, &format!("b{i}-"), "b.example", 1);
    }
    let (a0, b0) = (a.connections(), b.connections());
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty());
    assert_eq!((a.dumps().len(), b.dumps().len()), (6, 6));
    assert_eq!(
        (a.connections() - a0, b.connections() - b0),
        (1, 1),
        "one session to each relay"
    );
}

/// `O ConnectionCacheSize=0` keeps no connection: each entry gets its own session.
#[test]
fn connection_cache_size_zero_keeps_none() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "O MaxConnections=1\nO ConnectionCacheSize=0\n");
    queue(&env, "r", "example.org", 4);
    let before = sink.connections();
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(sink.dumps().len(), 4);
    assert_eq!(sink.connections() - before, 4);
}

/// The periodic runner keeps its connection between runs for `O ConnectionCacheTimeout=`
/// (the next message goes over it after RSET), and QUITs it once the idle time passed.
#[test]
fn connection_cache_timeout_between_runs() {
    for (timeout, want) in [("30s", 1usize), ("1s", 2)] {
        let Some((_scratch, peer)) = start_peer(&[]) else {
            return;
        };
        let env = relay_env(peer.port, &format!("O ConnectionCacheTimeout={timeout}\n"));
        env.sendmail(&["-odq", "first@example.org"], MSG).code(0);
        let mut runner = spawn(&env, &["-q1s", "-qf"]);
        assert_eq!(peer.wait_for(1, Duration::from_secs(10)).len(), 1);
        // Longer than the short idle time and the interval.
        std::thread::sleep(Duration::from_millis(2500));
        env.sendmail(&["-odq", "second@example.org"], MSG).code(0);
        assert_eq!(peer.wait_for(2, Duration::from_secs(10)).len(), 2);
        let t = peer.transcript();
        assert_eq!(
            sessions(&peer),
            want,
            "ConnectionCacheTimeout={timeout}: {t}"
        );
        if want == 2 {
            // The first session ended with QUIT when its idle time passed, before the
            // second message came.
            let quit = t.find(" QUIT").expect("QUIT");
            let second = t.find("second@example.org").unwrap();
            assert!(quit < second, "{t}");
        } else {
            assert!(t.contains(" RSET"), "{t}");
            // And QUIT once the idle time passes, while the runner still runs: not here
            // within 30 seconds; on SIGTERM at the latest.
            assert!(!t.contains(" QUIT"), "{t}");
        }
        sigterm(&runner.0);
        wait_exit(&mut runner.0, Duration::from_secs(10)).expect("the runner stops");
        if want == 1 {
            wait_until(Duration::from_secs(5), "QUIT at the runner's end", || {
                peer.transcript().contains(" QUIT")
            });
        }
    }
}

/// Queue an entry to `rcpt` at the fault server and have it deferred once (`toomany...`
/// is refused with 452 the first time), its back-off then set to `next`.
fn deferred_entry(env: &Env, rcpt: &str, next: i64) -> String {
    let known = ids(env);
    env.sendmail(&["-odq", rcpt], MSG).code(0);
    let id = ids(env).into_iter().find(|i| !known.contains(i)).unwrap();
    env.sendmail(&["-qf", &format!("-qI{id}")], b"").code(0);
    assert!(env.entries().iter().any(|p| p.ends_with(format!("qf{id}"))));
    set_next_attempt(&env.spool, &id, next);
    id
}

/// "When one goes, the rest follows": a background delivery takes the other entries for
/// the same relay whose back-off has expired, over its own session; an entry still in
/// back-off is not taken.
#[test]
fn background_delivery_takes_due_entries_for_the_same_host() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let due = deferred_entry(&env, "toomany-due@example.org", now() - 1);
    let waiting = deferred_entry(&env, "toomany-waiting@example.org", now() + 3600);
    let tried = sessions(&peer);
    env.sendmail(&["-odb", "fresh@example.org"], MSG).code(0);
    wait_until(Duration::from_secs(20), "the due entry delivered", || {
        !ids(&env).contains(&due)
    });
    let msgs = peer.wait_for(2, Duration::from_secs(5));
    assert_eq!(msgs.len(), 2);
    let t = peer.transcript();
    assert_eq!(
        sessions(&peer) - tried,
        1,
        "one session for both (of {tried}): {t}"
    );
    // The entry in back-off is still queued, not tried again.
    holds_for(
        Duration::from_millis(500),
        "the waiting entry stays",
        || ids(&env) == vec![waiting.clone()],
    );
    assert_eq!(t.matches(" RCPT toomany-waiting@").count(), 1, "{t}");
}

/// A cached connection the server closed, or whose RSET it answered 421, is found out
/// before the next message goes over it, and that message goes over a new connection,
/// once.
#[test]
fn cached_connection_closed_by_the_server_is_replaced() {
    for (fault, value, mark) in [
        ("CLOSE_AFTER_DOT", "1", "CLOSE-AFTER-DOT at RSET"),
        (
            "WRONG_REPLY",
            "RSET 421 4.3.2 Going away (test)",
            "WRONG-REPLY RSET 421",
        ),
    ] {
        let Some((_scratch, peer)) = start_peer(&[(fault, value)]) else {
            return;
        };
        let env = relay_env(peer.port, "");
        let due = deferred_entry(&env, "toomany-due@example.org", now() - 1);
        let tried = sessions(&peer);
        env.sendmail(&["-odb", "fresh@example.org"], MSG).code(0);
        wait_until(Duration::from_secs(20), "the queue empty", || {
            env.entries().is_empty()
        });
        let t = peer.transcript();
        assert!(!ids(&env).contains(&due));
        assert!(t.contains(mark), "{fault}: {t}");
        let msgs = peer.messages();
        assert_eq!(msgs.len(), 2, "{fault}: each message once: {t}");
        assert_eq!(sessions(&peer) - tried, 2, "{fault}: {t}");
    }
}

/// A cached connection that passes its RSET and then dies on the next MAIL (the server
/// closes it with no reply, answers 421 and closes it, or resets it) costs the message
/// nothing: it goes over a new connection in the same run, not deferred to the next.
#[test]
fn cached_connection_dying_at_mail_is_replaced_in_the_same_run() {
    for mode in ["close", "421", "reset"] {
        let Some((_scratch, peer)) = start_peer(&[("MAIL_AFTER_DOT", mode)]) else {
            return;
        };
        // One worker: the second message goes over the first one's cached connection.
        let env = relay_env(peer.port, "O MaxConnections=1\n");
        queue(&env, "m", "example.org", 2);
        env.sendmail(&["-qf"], b"").code(0);
        let t = peer.transcript();
        assert!(
            env.entries().is_empty(),
            "{mode}: both delivered in the run: {}\n{t}",
            env.listing()
        );
        assert!(t.contains(&format!("MAIL-AFTER-DOT {mode}")), "{mode}: {t}");
        assert_eq!(peer.messages().len(), 2, "{mode}: each message once: {t}");
        assert_eq!(
            sessions(&peer),
            2,
            "{mode}: a new session for the second: {t}"
        );
    }
}

/// A burst of background (`-odb`) submissions to one smarthost shares sessions: a
/// delivery starting while another one has a working connection to the same relay
/// leaves its message to it, and that one takes the messages that come while its
/// connection stays cached (one session per message before).
#[test]
fn burst_of_background_submissions_shares_sessions() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "O MaxBackgroundDeliveries=2\n");
    // The sink's readiness probe, logged.
    wait_until(Duration::from_secs(5), "the probe logged", || {
        sink.connections() >= 1
    });
    let before = sink.connections();
    for i in 0..30 {
        env.sendmail(&["-odb", &format!("r{i}@example.org")], MSG)
            .code(0);
    }
    wait_until(Duration::from_secs(30), "30 messages at the sink", || {
        sink.dumps().len() >= 30
    });
    env.wait_until_empty(Duration::from_secs(10));
    assert_eq!(sink.dumps().len(), 30, "each message once");
    let n = sink.connections() - before;
    assert!(n <= 2, "{n} sessions for 30 messages");
}

/// A background delivery sends at most `FOLLOW_MAX` (100) other entries over one
/// session; the others go over a new one, at once.
#[test]
fn follow_ups_are_bounded_per_session() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let closed = crate::harness::closed_tcp_port();
    let env = relay_env(closed, "");
    queue(&env, "r", "example.org", 130);
    // Tried once (nothing listens), then due again.
    env.sendmail(&["-qf"], b"").code(0);
    let queued = ids(&env);
    assert_eq!(queued.len(), 130);
    for id in &queued {
        set_next_attempt(&env.spool, id, now() - 1);
    }
    env.add_config(&format!("PORT {}\n", sink.port));
    wait_until(Duration::from_secs(5), "the probe logged", || {
        sink.connections() >= 1
    });
    let before = sink.connections();
    env.sendmail(&["-odb", "fresh@example.org"], MSG).code(0);
    wait_until(Duration::from_secs(60), "the queue empty", || {
        env.entries().is_empty()
    });
    assert_eq!(sink.dumps().len(), 131);
    assert_eq!(sink.connections() - before, 2, "own + 100, then 30");
}

/// A long queue run to one smarthost keeps several sessions busy in parallel: one per
/// `runner::ENTRIES_PER_SESSION` (50) entries, within `O MaxConnections=` (4); each
/// message still arrives once.
#[test]
fn long_queue_run_keeps_parallel_sessions_busy() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "O ConnectionCacheSize=4\n");
    queue(&env, "p", "example.org", 120);
    let before = sink.connections();
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty());
    assert_eq!(sink.dumps().len(), 120, "each message once");
    let n = sink.connections() - before;
    // Three in parallel for 120 entries; a fourth (MaxConnections) only when one waited
    // half a second for a busy one on a loaded machine.
    assert!(
        (2..=4).contains(&n),
        "{n} sessions: {}",
        fs::read_to_string(&sink.log).unwrap()
    );
}

/// The removals of a queue run share their directory syncs (`runner::Removals`): 12
/// entries delivered and removed, the spool directory fsynced once, not once each.
#[test]
fn queue_run_syncs_its_removals_together() {
    let options = ["-f", "-qq", "-e", "trace=fsync,fdatasync"];
    let Some(run) = TracedSinkRun::run("", "s", 12, &options) else {
        return;
    };
    let t = run.read_trace();
    let syncs = t.lines().filter(|l| l.contains("fsync(")).count();
    assert!(
        (1..=2).contains(&syncs),
        "{syncs} fsyncs for 12 removals:\n{t}"
    );
}

/// A worker does not wait for a removed entry's files to be freed: it unlinks the entry,
/// and the run's closers (`runner::Removals`) close the descriptors of the file no path
/// names any more (whose last close frees its blocks) and syncs the directory.
#[test]
fn queue_run_closes_removed_entries_beside_its_workers() {
    let options = ["-f", "-qq", "-y", "-e", "trace=unlink,unlinkat,close,fsync"];
    let Some(run) = TracedSinkRun::run("", "c", 12, &options) else {
        return;
    };
    let t = run.read_trace();
    // Who unlinked each entry's queue file, and who closed it once unlinked.
    let tid = |l: &str| l.split_whitespace().next().unwrap_or("").to_string();
    let mut unlinked = std::collections::HashMap::new();
    let mut closed = Vec::new();
    for l in t.lines() {
        for id in &run.queued {
            let qf = format!("qf{id}");
            if l.contains("unlink") && l.contains(&format!("{qf}\"")) {
                unlinked.insert(id.clone(), tid(l));
            } else if l.contains("close(")
                && l.contains(&format!("{qf}>"))
                && l.contains("(deleted)")
            {
                closed.push((id.clone(), tid(l)));
            }
        }
    }
    assert_eq!(unlinked.len(), 12, "each entry unlinked:\n{t}");
    assert!(!closed.is_empty(), "no close of a removed entry:\n{t}");
    for (id, by) in &closed {
        assert_ne!(
            unlinked.get(id),
            Some(by),
            "qf{id} closed by the worker that unlinked it:\n{t}"
        );
    }
    // The closers sync the directory too (once for the 12: they count together).
    let syncs: Vec<&str> = t.lines().filter(|l| l.contains("fsync(")).collect();
    assert!((1..=2).contains(&syncs.len()), "{syncs:?}");
    assert!(
        syncs
            .iter()
            .all(|s| !unlinked.values().any(|w| *w == tid(s))),
        "a worker synced:\n{t}"
    );
}

/// `strace OPTIONS -o TRACE sendmail -C conf -qf`: a queue run traced into `trace`.
fn traced_run(env: &Env, options: &[&str], trace: &Path) -> Command {
    let mut cmd = Command::new("strace");
    cmd.args(options)
        .arg("-o")
        .arg(trace)
        .arg(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-qf"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// `n` messages queued (`-odq`, to `{prefix}{i}@example.org`) for a smtp-sink relay
/// (`config` added), then delivered by one queue run under `strace OPTIONS`
/// ([`traced_run`]), which ends 0 with the spool empty and each message sent once.
/// (Fields drop in order: the relay, then the sink, then the sink's directory.)
struct TracedSinkRun {
    env: Env,
    /// The entries' IDs before the run.
    queued: Vec<String>,
    /// `trace` in the relay's directory (with `-ff`, `trace.PID` beside it).
    trace: std::path::PathBuf,
    _sink: Sink,
    /// The sink's directory.
    _sink_env: Env,
}

impl TracedSinkRun {
    /// The run done; None when strace or smtp-sink is not here.
    fn run(config: &str, prefix: &str, n: usize, options: &[&str]) -> Option<TracedSinkRun> {
        if !crate::harness::require("strace") {
            return None;
        }
        let sink_env = Env::new();
        let sink = Sink::start(&sink_env.dir, &[])?;
        let env = relay_env(sink.port, config);
        queue(&env, prefix, "example.org", n);
        let queued = ids(&env);
        let trace = env.dir.join("trace");
        let st = traced_run(&env, options, &trace).status().unwrap();
        assert!(st.success());
        assert!(env.entries().is_empty(), "{}", env.listing());
        assert_eq!(sink.dumps().len(), n, "each message once");
        Some(TracedSinkRun {
            env,
            queued,
            trace,
            _sink: sink,
            _sink_env: sink_env,
        })
    }

    /// The trace (of a run without `-ff`).
    fn read_trace(&self) -> String {
        fs::read_to_string(&self.trace).unwrap()
    }
}

/// The strace options of a run whose sends [`Sent`] reads.
const SENDS_TRACED: [&str; 6] = ["-f", "-qq", "-s", "400", "-e", "trace=sendto,write"];

/// What a traced run ([`SENDS_TRACED`]) sent to its servers.
struct Sent<'a> {
    /// The trace's sendto() calls.
    sends: Vec<&'a str>,
    /// How many of them hold an RSET.
    rset: usize,
    /// How many send a MAIL command with the final dot of the message before it.
    after_dot: usize,
}

impl Sent<'_> {
    fn in_trace(t: &str) -> Sent<'_> {
        let sends: Vec<&str> = t.lines().filter(|l| l.contains("sendto(")).collect();
        let rset = sends.iter().filter(|l| l.contains("RSET")).count();
        let after_dot = sends
            .iter()
            .filter(|l| l.contains("\\r\\n.\\r\\nMAIL From:"))
            .count();
        Sent {
            sends,
            rset,
            after_dot,
        }
    }
}

/// A queue run under strace (`openat` and `connect`) over `n` entries written directly
/// ([`write_entries`]), relayed to a smarthost that takes connections and never answers.
/// (Fields drop in order: the traced run, then the relay, then the smarthost.)
struct SilentRun {
    tracer: Running,
    env: Env,
    /// The entries' IDs, as written.
    written: Vec<String>,
    trace: std::path::PathBuf,
    /// `sin_port=htons(PORT)`: how the trace names the smarthost's port.
    to_smarthost: String,
    /// The smarthost's listening socket (kept open: connections wait at the greeting).
    _smarthost: std::net::TcpListener,
}

impl SilentRun {
    /// Write `n` entries to `{prefix}{i}@example.org` and start the traced run.
    fn start(prefix: &str, n: usize) -> SilentRun {
        let smarthost = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = smarthost.local_addr().unwrap().port();
        let env = relay_env(port, "");
        let written = write_entries(&env, prefix, "example.org", n);
        // The index is brought in step with the entries written behind its back (as
        // their submissions would have kept it) by a run that selects nothing.
        env.sendmail(&["-qf", "-qIzz"], b"").code(0);
        let trace = env.dir.join("trace");
        let tracer = Running(
            traced_run(&env, &["-f", "-qq", "-e", "trace=openat,connect"], &trace)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        SilentRun {
            tracer,
            env,
            written,
            trace,
            to_smarthost: format!("sin_port=htons({port})"),
            _smarthost: smarthost,
        }
    }

    /// The trace so far.
    fn read(&self) -> String {
        fs::read_to_string(&self.trace).unwrap_or_default()
    }

    /// Whether the trace `t` (or a line of it) holds a connection to the smarthost.
    fn connected(&self, t: &str) -> bool {
        t.lines()
            .any(|l| l.contains("connect(") && l.contains(&self.to_smarthost))
    }

    /// Whether the traced run (and its tracer) ended.
    fn ended(&mut self) -> bool {
        self.tracer.0.try_wait().is_ok_and(|s| s.is_some())
    }

    /// Kill the traced run (its pid begins every line: it would wait for the greeting)
    /// and its tracer; the trace.
    fn stop(&mut self) -> String {
        let t = self.read();
        if let Some(pid) = t.split_whitespace().next() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        let _ = self.tracer.0.wait();
        t
    }
}

/// FNV-1a, the queue file's `message-sum` (docs/ARCHITECTURE.md, "File formats").
fn fnv(mut sum: u64, data: &[u8]) -> u64 {
    for &b in data {
        sum = (sum ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    sum
}

/// `n` entries to `{rcpt_prefix}{i}@{domain}`, written directly as copies of a real
/// submission's queue file with their own IDs, recipients and sums (as
/// bench/compare.py builds its large queues): thousands in a second. Returns their IDs.
fn write_entries(env: &Env, rcpt_prefix: &str, domain: &str, n: usize) -> Vec<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let template = format!("template@{domain}");
    env.sendmail(&["-odq", &template], MSG).code(0);
    let path = env.entries().pop().expect("the template entry");
    let old_id = ids(env).pop().unwrap();
    let data = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    let text = String::from_utf8(data).unwrap();
    let (envelope, message) = text.split_at(text.find("\n\n").unwrap() + 2);
    let sum_at = envelope.find("\nmessage-sum ").unwrap() + "\nmessage-sum ".len();
    let split = envelope.find("\nid ").unwrap() + 1;
    let head = format!(
        "{}{}{}",
        &envelope[..sum_at],
        "0".repeat(16),
        &envelope[sum_at + 16..split]
    );
    let tail = &envelope[split..];
    let state = fnv(
        fnv(0xcbf2_9ce4_8422_2325, message.as_bytes()),
        head.as_bytes(),
    );
    let mut out = Vec::new();
    for i in 0..n {
        let id = format!("{}xx{i:06}", &old_id[..6]);
        let t = tail.replacen(&old_id, &id, 1).replacen(
            &template,
            &format!("{rcpt_prefix}{i}@{domain}"),
            1,
        );
        let sum = format!("{:016x}", fnv(state, t.as_bytes()));
        let body = format!(
            "{}{sum}{}{t}{message}",
            &head[..sum_at],
            &head[sum_at + 16..]
        );
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o660)
            .open(env.spool.join(format!("qf{id}")))
            .unwrap();
        std::io::Write::write_all(&mut f, body.as_bytes()).unwrap();
        out.push(id);
    }
    out
}

/// A queue run over a long queue makes its first connection once it has opened its first
/// batch of entries (`queue::SWEEP_BATCH`), not all of them: under strace, at the first
/// connect() to the smarthost most of the 5,000 entries have not been opened yet.
#[test]
fn long_queue_run_connects_before_opening_every_entry() {
    if !crate::harness::require("strace") {
        return;
    }
    // The run waits at the greeting, and is killed once it has connected.
    let n = 5000;
    let mut run = SilentRun::start("r", n);
    assert_eq!(ids(&run.env), run.written);
    wait_until(
        Duration::from_secs(600),
        "the run's first connection",
        || run.connected(&run.read()) || run.ended(),
    );
    let t = run.stop();
    let env = &run.env;
    let mut opened = BTreeSet::new();
    let mut connected = false;
    for l in t.lines() {
        if run.connected(l) {
            connected = true;
            break;
        }
        if l.contains("openat(")
            && let Some(at) = l.find("/qf")
        {
            opened.insert(l.get(at + 3..at + 17).unwrap_or_default().to_string());
        }
    }
    // Written as a submission writes them (a bad sum would have moved them aside).
    let corrupt = fs::read_dir(env.spool.join("corrupt")).map_or(0, |d| d.count());
    assert_eq!(corrupt, 0, "entries moved aside as corrupt");
    assert!(connected, "no connection to the smarthost");
    assert!(
        opened.len() <= n / 2,
        "{} of {n} entries opened before the first connection",
        opened.len()
    );
}

/// A run longer than one batch (`queue::SWEEP_BATCH`, 1,000) takes the next batch when
/// the first is taken: every entry is sent once and the spool is empty after one run.
#[test]
fn queue_run_over_more_than_one_batch_sends_each_entry_once() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "O ConnectionCacheSize=4\n");
    let n = 1100;
    write_entries(&env, "b", "example.org", n);
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert_eq!(sink.dumps().len(), n, "each message once");
}

/// A run over a long queue of which few entries are selected (`-qS` of 5 among 1,105
/// entries, opened in batches) sizes its parallel sessions on those selected, not on the
/// entries listed: the 5 go over one session, as in a short queue.
#[test]
fn long_queue_run_selecting_few_entries_uses_one_session() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "O ConnectionCacheSize=4\n");
    write_entries(&env, "w", "example.org", 1100);
    for i in 0..5 {
        env.sendmail(
            &[
                "-odq",
                "-f",
                "picked@sender.example",
                &format!("p{i}@example.org"),
            ],
            MSG,
        )
        .code(0);
    }
    let before = sink.connections();
    env.sendmail(&["-qf", "-qSpicked@sender.example"], b"")
        .code(0);
    assert_eq!(sink.dumps().len(), 5, "the selected entries, once each");
    assert_eq!(ids(&env).len(), 1100);
    let n = sink.connections() - before;
    assert_eq!(n, 1, "{}", fs::read_to_string(&sink.log).unwrap());
}

/// A queue run over a server that offers PIPELINING costs one round trip per message on
/// its connection: the next message's MAIL, RCPT and DATA go out in the same write as
/// the final dot of the one before (RFC 2920 §3.1), with no RSET (the dot's reply ends
/// the transaction), never alone with a round trip of their own (a run without `-v`,
/// whose transcript would show sendmail's order). Each message is still sent once.
#[test]
fn queue_run_sends_the_next_mail_with_the_final_dot() {
    let Some(run) = TracedSinkRun::run("O MaxConnections=1\n", "p", 6, &SENDS_TRACED) else {
        return;
    };
    let t = run.read_trace();
    let sent = Sent::in_trace(&t);
    let mail_alone = sent
        .sends
        .iter()
        .filter(|l| l.contains("(") && l.contains(", \"MAIL From:"))
        .count();
    assert_eq!(sent.rset, 0, "an RSET written:\n{t}");
    assert_eq!(
        sent.after_dot, 5,
        "each next MAIL with the dot before it:\n{t}"
    );
    assert_eq!(mail_alone, 1, "only the first MAIL written alone:\n{t}");
}

/// A long queue run to one smarthost with its default four workers (`O MaxConnections=`)
/// and two idle connections kept (`O ConnectionCacheSize=`) still sends each next message
/// with the final dot before it: each worker keeps a session of its own
/// (`runner::parallel_sessions`), and a worker reading its next entry does not make the
/// others give theirs back (`cache::others_waiting`). Before, two sessions served four
/// workers, nearly every message went after an RSET on a connection put back, and the
/// run took several times its round trips.
#[test]
fn long_queue_run_with_more_workers_than_idle_connections_sends_ahead() {
    let n = 200;
    let Some(run) = TracedSinkRun::run("", "p", n, &SENDS_TRACED) else {
        return;
    };
    let t = run.read_trace();
    let sent = Sent::in_trace(&t);
    let sessions = sent.sends.iter().filter(|l| l.contains("EHLO")).count();
    assert!((1..=4).contains(&sessions), "{sessions} sessions");
    assert!(sent.rset <= 4, "{} RSETs for {n} messages", sent.rset);
    assert!(
        sent.after_dot >= n - 8,
        "{} of {n} MAIL commands sent with the dot before them",
        sent.after_dot
    );
}

/// How many messages the fault server stored for `rcpt`.
fn stored_for(peer: &Peer, rcpt: &str) -> usize {
    peer.messages()
        .iter()
        .filter(|(j, _)| j.contains(&format!("\"{rcpt}\"")))
        .count()
}

/// Two messages queued for a fault server with `faults`, to `first` and then to
/// `second` (from `sender` when given), and one queue run over one connection at a time,
/// in which the second's commands may go out with the first's final dot. The entries'
/// IDs, in that order.
fn first_then_second(
    faults: &[(&str, &str)],
    first: &str,
    second: &str,
    sender: Option<&str>,
) -> Option<(Env, Peer, Env, String, String)> {
    let mut faults = faults.to_vec();
    if !faults.iter().any(|(k, _)| *k == "NO_PIPELINING") {
        faults.push(("PIPELINING", "1"));
    }
    let (scratch, peer) = start_peer(&faults)?;
    let env = relay_env(peer.port, "O MaxConnections=1\n");
    let (a, b) = queue_first_then_second(&env, first, second, sender);
    env.sendmail(&["-qf"], b"");
    Some((scratch, peer, env, a, b))
}

/// A message queued (`-odq`) to `first`, then a larger one to `second` (from `sender`
/// when given), which a queue run takes second (the lowest priority first, which counts
/// size): their IDs, in that order.
fn queue_first_then_second(
    env: &Env,
    first: &str,
    second: &str,
    sender: Option<&str>,
) -> (String, String) {
    env.sendmail(&["-odq", first], MSG).code(0);
    let a = ids(env);
    let mut args = vec!["-odq"];
    if let Some(f) = sender {
        args.extend(["-f", f]);
    }
    args.push(second);
    let mut big = MSG.to_vec();
    big.extend("padding line\n".repeat(400).as_bytes());
    env.sendmail(&args, &big).code(0);
    let b: Vec<String> = ids(env).into_iter().filter(|i| !a.contains(i)).collect();
    assert_eq!((a.len(), b.len()), (1, 1));
    (a[0].clone(), b[0].clone())
}

/// The first message's data refused after its final dot (5yz: failed and reported; 4yz:
/// deferred) while the second's commands went out with that dot: the first's outcome is
/// its dot's reply, and the second is accepted over the same session and stored once.
#[test]
fn refused_dot_with_the_next_message_sent_ahead() {
    for (rcpt, stays) in [
        ("rejectdata5-a@example.org", false),
        ("rejectdata4-a@example.org", true),
    ] {
        let Some((_s, peer, env, a, b)) = first_then_second(&[], rcpt, "b@example.org", None)
        else {
            return;
        };
        let t = peer.transcript();
        let left = ids(&env);
        assert_eq!(left.contains(&a), stays, "{rcpt}: {}\n{t}", env.listing());
        assert!(!left.contains(&b), "{rcpt}: {}\n{t}", env.listing());
        assert_eq!(stored_for(&peer, rcpt), 0, "{rcpt}: {t}");
        assert_eq!(stored_for(&peer, "b@example.org"), 1, "{rcpt}: {t}");
        assert_eq!(sessions(&peer), 1, "{rcpt}: one session: {t}");
        assert!(
            t.contains("AHEAD MAIL"),
            "{rcpt}: not sent with the dot: {t}"
        );
    }
}

/// The connection lost after the first message's final dot, with the second's commands
/// sent ahead: before the dot's reply (the server closes with no reply: the first is
/// deferred, not taken), right after it (a 421 in the same write as the dot's 250, read
/// as the answer to the second's MAIL), or at the second's MAIL (closed with no reply, a
/// 421, a reset). The second goes over a new session in the same run, nothing of it
/// taken on the first; a second run sends what was deferred; each message is stored once.
#[test]
fn connection_lost_after_the_dot_with_the_next_message_sent_ahead() {
    let cases: [(&str, &str, bool); 6] = [
        ("dropdata", "", true),
        ("EXTRA_AFTER_DOT", "1", false),
        ("CLOSE_AFTER_DOT", "1", false),
        ("MAIL_AFTER_DOT", "close", false),
        ("MAIL_AFTER_DOT", "421", false),
        ("MAIL_AFTER_DOT", "reset", false),
    ];
    for (fault, value, drop_dot) in cases {
        let faults: Vec<(&str, &str)> = if drop_dot {
            vec![]
        } else {
            vec![(fault, value)]
        };
        let first = if drop_dot {
            "dropdata-a@example.org"
        } else {
            "a@example.org"
        };
        let Some((_s, peer, env, a, b)) = first_then_second(&faults, first, "b@example.org", None)
        else {
            return;
        };
        let t = peer.transcript();
        let left = ids(&env);
        assert!(!left.contains(&b), "{fault}: {}\n{t}", env.listing());
        assert_eq!(
            left.contains(&a),
            drop_dot,
            "{fault}: {}\n{t}",
            env.listing()
        );
        assert_eq!(
            sessions(&peer),
            2,
            "{fault}: a new session for the second: {t}"
        );
        assert!(
            t.contains("AHEAD MAIL"),
            "{fault}: not sent with the dot: {t}"
        );
        if drop_dot {
            env.sendmail(&["-qf"], b"");
            assert!(env.entries().is_empty(), "{}", env.listing());
        }
        let t = peer.transcript();
        assert_eq!(stored_for(&peer, first), 1, "{fault}: {t}");
        assert_eq!(stored_for(&peer, "b@example.org"), 1, "{fault}: {t}");
    }
}

/// A 421 as the reply to the first message's final dot (the server going on all the
/// same): that message and the second, whose commands went out with the dot, are
/// deferred with the 421 each got; nothing is stored, nothing is lost.
#[test]
fn dot_answered_421_with_the_next_message_sent_ahead() {
    let faults = [("WRONG_REPLY", "DOT 421 4.3.2 Going away (test)")];
    let Some((_s, peer, env, a, b)) =
        first_then_second(&faults, "a@example.org", "b@example.org", None)
    else {
        return;
    };
    let t = peer.transcript();
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(ids(&env), both, "{}\n{t}", env.listing());
    assert!(peer.messages().is_empty(), "{t}");
    assert!(t.contains("AHEAD MAIL"), "not sent with the dot: {t}");
    // Each deferred with the 421 it got (its state file keeps the reply).
    for id in ids(&env) {
        let st = fs::read_to_string(env.spool.join(format!("sf{id}"))).unwrap();
        assert!(st.contains("421"), "{id}: {st}");
    }
}

/// The second message's MAIL refused (5yz: failed, its report sent to its sender; 4yz:
/// deferred) after the first's final dot, with which its commands went out: the first
/// is stored once, the second never.
#[test]
fn next_mail_refused_when_sent_ahead() {
    for (sender, stays) in [
        ("rejectmail5@example.net", false),
        ("rejectmail4@example.net", true),
    ] {
        let Some((_s, peer, env, a, b)) =
            first_then_second(&[], "a@example.org", "b@example.org", Some(sender))
        else {
            return;
        };
        let t = peer.transcript();
        let left = ids(&env);
        assert!(!left.contains(&a), "{sender}: {}\n{t}", env.listing());
        assert_eq!(left.contains(&b), stays, "{sender}: {}\n{t}", env.listing());
        assert_eq!(stored_for(&peer, "a@example.org"), 1, "{sender}: {t}");
        assert_eq!(stored_for(&peer, "b@example.org"), 0, "{sender}: {t}");
        // The 5yz's report goes to the sender, over the same session.
        assert_eq!(
            stored_for(&peer, sender),
            usize::from(!stays),
            "{sender}: {t}"
        );
        assert_eq!(sessions(&peer), 1, "{sender}: {t}");
        assert!(
            t.contains("AHEAD MAIL"),
            "{sender}: not sent with the dot: {t}"
        );
    }
}

/// A server without PIPELINING: each message after the first still begins with RSET and
/// its reply (nothing is sent ahead), one session, each message stored once.
#[test]
fn no_pipelining_sends_nothing_ahead() {
    let Some((_s, peer, env, _a, _b)) = first_then_second(
        &[("NO_PIPELINING", "1")],
        "a@example.org",
        "b@example.org",
        None,
    ) else {
        return;
    };
    let t = peer.transcript();
    assert!(env.entries().is_empty(), "{}\n{t}", env.listing());
    let verbs: Vec<&str> = t
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, c)| c))
        .filter(|c| ["MAIL", "RSET", "DATA"].iter().any(|v| c.starts_with(v)))
        .collect();
    assert_eq!(
        verbs.iter().filter(|c| c.starts_with("RSET")).count(),
        1,
        "{t}"
    );
    assert_eq!(stored_for(&peer, "a@example.org"), 1, "{t}");
    assert_eq!(stored_for(&peer, "b@example.org"), 1, "{t}");
    assert_eq!(sessions(&peer), 1, "{t}");
    assert!(!t.contains("AHEAD"), "sent ahead without PIPELINING: {t}");
}

/// A run longer than one batch opens the next batch while its workers deliver this one
/// (`runner::deliver_batches`), not when they have run out of entries: with a smarthost
/// that never answers, the workers wait at the greeting of the first batch's messages,
/// and meanwhile the second batch's entries are opened.
#[test]
fn queue_run_opens_the_next_batch_while_delivering() {
    if !crate::harness::require("strace") {
        return;
    }
    let n = 2000;
    let mut run = SilentRun::start("n", n);
    // The first entry of the second batch (the IDs sort as written).
    let second = run.written[1000].clone();
    let opened_second = |t: &str| t.lines().any(|l| l.contains(&format!("/qf{second}\"")));
    // At most the greeting's wait (Timeout.initial, minutes) could end the workers' wait.
    let limit = Duration::from_secs(120);
    let start = std::time::Instant::now();
    // Both, in either order: on a loaded machine the next batch may be opened before
    // the first worker has connected; what matters is that it is opened while the
    // workers wait on a server that never answers (before, it never was).
    while start.elapsed() < limit && !(opened_second(&run.read()) && run.connected(&run.read())) {
        if run.ended() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = run.stop();
    assert!(run.connected(&t), "no connection to the smarthost");
    assert!(
        opened_second(&t),
        "the second batch was not opened while the first one's deliveries waited"
    );
    // Nothing was sent: every entry is still queued.
    assert_eq!(ids(&run.env).len(), n);
}

/// A run over more than one batch stopped by SIGTERM while it delivers (the next batch
/// opened beside the workers, waiting for them) loses nothing and sends nothing twice:
/// the next run sends the rest, and every message arrived once. The first smarthost
/// waits a second before each DATA reply, so that the stop comes early in the run; the
/// rest goes to a second one that does not.
#[test]
fn queue_run_in_batches_stopped_mid_run_sends_each_entry_once() {
    let env0 = Env::new();
    let Some(slow) = Sink::start(&env0.dir.join("slow"), &["-w", "1"]) else {
        return;
    };
    let Some(fast) = Sink::start(&env0.dir.join("fast"), &[]) else {
        return;
    };
    let env = relay_env(slow.port, "O ConnectionCacheSize=4\n");
    let n = 2100;
    write_entries(&env, "t", "example.org", n);
    let count = |s: &Sink| fs::read_dir(&s.dumps).map_or(0, |d| d.count());
    let mut run = spawn(&env, &["-qf"]);
    wait_until(Duration::from_secs(60), "some messages sent", || {
        count(&slow) >= 4
    });
    sigterm(&run.0);
    assert!(
        wait_exit(&mut run.0, Duration::from_secs(90)).is_some(),
        "the stopped run did not exit"
    );
    let sent = count(&slow);
    let left = ids(&env).len();
    assert!(
        left > 0,
        "the run was not stopped before it ended ({sent} sent)"
    );
    assert_eq!(sent + left, n, "sent and left add up to the queue");
    let conf = fs::read_to_string(&env.conf).unwrap();
    let conf = conf.replace(
        &format!("PORT {}\n", slow.port),
        &format!("PORT {}\n", fast.port),
    );
    fs::write(&env.conf, conf).unwrap();
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert_eq!(count(&slow) + count(&fast), n, "each message once");
}

/// A queue run checks each entry's message against its `message-sum` once, when the
/// delivery locks it, not also when the run's selection opens it: under strace (`-y`
/// names the file each read is from), the sum's read of the envelope section from offset
/// 0 comes once per entry.
#[test]
fn queue_run_checks_each_message_sum_once() {
    // One file per process (`-ff`): no call split into `<unfinished ...>` and
    // `<... resumed>` halves by another process's.
    let options = ["-ff", "-qq", "-y", "-e", "trace=pread64"];
    let Some(run) = TracedSinkRun::run("", "c", 3, &options) else {
        return;
    };
    let mut t = String::new();
    for f in fs::read_dir(&run.env.dir).unwrap().flatten() {
        if f.file_name().to_string_lossy().starts_with("trace.") {
            t.push_str(&fs::read_to_string(f.path()).unwrap());
        }
    }
    assert!(t.contains("pread64("), "no trace written:\n{t}");
    for id in &run.queued {
        let sums = t
            .lines()
            .filter(|l| l.contains(&format!("/qf{id}>")) && l.contains(", 0) = "))
            .count();
        assert_eq!(
            sums, 1,
            "{id}: the envelope read from offset 0 {sums} times:\n{t}"
        );
    }
}

/// A queue run stopped by SIGTERM while the reply to a message's final dot is awaited,
/// the next message's commands sent with that dot: the message whose dot went out is
/// recorded from its reply (it is not sent again), and the next one, whose data never
/// ended, is not taken by the server and stays queued; the next run sends it, once.
#[test]
fn sigterm_with_the_next_message_sent_ahead_loses_nothing() {
    let Some((_scratch, peer)) = start_peer(&[("PIPELINING", "1"), ("STALL", "3")]) else {
        return;
    };
    let env = relay_env(peer.port, "O MaxConnections=1\n");
    let (_, b) = queue_first_then_second(&env, "stall-a@example.org", "b@example.org", None);
    let mut run = spawn(&env, &["-qf"]);
    peer.wait_transcript("AHEAD MAIL", Duration::from_secs(10));
    sigterm(&run.0);
    assert!(
        wait_exit(&mut run.0, Duration::from_secs(90)).is_some(),
        "the stopped run did not exit"
    );
    let t = peer.transcript();
    assert_eq!(ids(&env), [b], "{}\n{t}", env.listing());
    assert_eq!(stored_for(&peer, "stall-a@example.org"), 1, "{t}");
    assert_eq!(stored_for(&peer, "b@example.org"), 0, "{t}");
    env.sendmail(&["-qf"], b"");
    let t = peer.transcript();
    assert!(env.entries().is_empty(), "{}\n{t}", env.listing());
    assert_eq!(stored_for(&peer, "stall-a@example.org"), 1, "{t}");
    assert_eq!(stored_for(&peer, "b@example.org"), 1, "{t}");
}
