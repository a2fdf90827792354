//! The fast-flush index is a hint: a submission never waits on it for long, and a
//! committed entry the index misses is still selected by `-qR` and ETRN.

use crate::harness::servers::{Daemon, Raw, start_peer};
use crate::harness::{Env, MSG};
use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Take the index lock exclusively, as a rebuild does, until the file is dropped.
fn hold_index_lock(env: &Env) -> fs::File {
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.spool.join("index/lock"))
        .unwrap();
    lock.lock().unwrap();
    lock
}

/// A rebuild that stopped midway (a runner SIGSTOPped, a hung disk) holds the index lock
/// exclusively: a submission waits for it only briefly, then commits its message.
#[test]
fn a_held_index_lock_does_not_stall_submission() {
    let env = Env::new();
    env.sendmail(&["-odq", "first@example.org"], MSG).code(0);
    let lock = hold_index_lock(&env);
    let started = Instant::now();
    let mut child = Command::new(env.link("sendmail"))
        .args([
            "-C",
            env.conf.to_str().unwrap(),
            "-odq",
            "second@example.org",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(MSG).unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the submission waited on the index lock for 20s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(env.entries().len(), 2, "{}", env.listing());
    drop(lock);
}

/// Remove `id`'s lines from the index files (a damaged index), keeping it present.
fn drop_from_index(env: &Env, id: &str) {
    let dir = env.spool.join("index");
    let keep = |path: &std::path::Path| {
        let text = fs::read_to_string(path).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with(id))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(path, kept).unwrap();
    };
    keep(&dir.join("recipients"));
    for d in fs::read_dir(dir.join("domains")).unwrap() {
        keep(&d.unwrap().path());
    }
}

fn only_id(env: &Env, addr: &str) -> String {
    let j = env.json();
    let line = j
        .iter()
        .find(|l| l.contains(addr))
        .unwrap_or_else(|| panic!("{j:?}"));
    let start = line.find("\"queue_id\":\"").unwrap() + 12;
    line[start..start + 14].to_string()
}

/// An entry whose index append failed (here: the index lock cannot be opened) leaves a
/// `stale.<ID>` marker, and selective runs list the spool until a rebuild: `-qR` finds
/// it. Lines removed from the index by hand are made good by the next run that lists the
/// queue (any `-q`; here a `-qI` that selects nothing), which rebuilds the index; ETRN
/// finds the entry then.
#[test]
fn an_entry_the_index_misses_is_still_selected() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    // Every domain here has a fast flush list.
    let env = crate::harness::servers::relay_env(
        peer.port,
        "O FastFlushDomains=else.example dial.example etrn.example\n",
    );
    env.sendmail(&["-odq", "other@else.example"], MSG).code(0);
    let lock = env.spool.join("index/lock");
    fs::remove_file(&lock).unwrap();
    fs::create_dir(&lock).unwrap();
    env.sendmail(&["-odq", "missed@dial.example"], MSG).code(0);
    fs::remove_dir(&lock).unwrap();
    let missed = only_id(&env, "missed@dial.example");
    assert!(env.spool.join(format!("index/stale.{missed}")).exists());
    env.sendmail(&["-odq", "etrn@etrn.example"], MSG).code(0);
    assert!(env.spool.join("index/recipients").exists());
    // -qR: the recipient index misses it; it is delivered all the same.
    env.sendmail(&["-qRmissed@dial", "-qf"], b"").code(0);
    let got = peer.wait_for(1, Duration::from_secs(20));
    assert!(
        got.iter().any(|m| m.0.contains("missed@dial.example")),
        "{got:?}"
    );
    // That run listed the spool and rebuilt the index: the marker is gone.
    assert!(!env.spool.join(format!("index/stale.{missed}")).exists());
    // Lines removed by hand: a run that lists the queue rebuilds the index.
    drop_from_index(&env, &only_id(&env, "etrn@etrn.example"));
    env.sendmail(&["-qIzzzz", "-qf"], b"").code(0);
    // ETRN: the domain list names it again; it is delivered.
    let d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::connect(d.port);
    c.line();
    c.cmd("EHLO dialup");
    assert!(c.cmd("ETRN etrn.example").starts_with("250 "));
    let got = peer.wait_for(2, Duration::from_secs(20));
    assert!(
        got.iter().any(|m| m.0.contains("etrn@etrn.example")),
        "{got:?}"
    );
    // Nothing else moved.
    assert_eq!(peer.messages().len(), 2);
    assert!(env.mailq(&[]).contains("other@else.example"));
}

/// Run `sendmail ARGS` with no input, killed (and the test failed) after `limit`.
fn run_bounded(env: &Env, args: &[&str], limit: Duration) -> std::process::ExitStatus {
    let mut full = vec!["-C", env.conf.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut child = Command::new(env.link("sendmail"))
        .args(&full)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sendmail {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A rebuild stopped midway holds the index lock exclusively: queue runs (full, `-qR`)
/// neither wait for it nor miss the entries its holder keeps out of the index.
#[test]
fn a_held_index_lock_does_not_stall_queue_runs() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = crate::harness::servers::relay_env(peer.port, "");
    env.sendmail(&["-odq", "first@one.example"], MSG).code(0);
    let lock = hold_index_lock(&env);
    // Committed without an index line (the append gave up on the lock).
    env.sendmail(&["-odq", "second@two.example"], MSG).code(0);
    env.sendmail(&["-odq", "third@three.example"], MSG).code(0);
    let limit = Duration::from_secs(20);
    assert_eq!(
        run_bounded(&env, &["-qRsecond@two", "-qf"], limit).code(),
        Some(0)
    );
    let got = peer.wait_for(1, Duration::from_secs(20));
    assert!(
        got.iter().any(|m| m.0.contains("second@two.example")),
        "{got:?}"
    );
    assert_eq!(run_bounded(&env, &["-qf"], limit).code(), Some(0));
    let got = peer.wait_for(3, Duration::from_secs(20));
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(env.entries().is_empty(), "{}", env.listing());
    drop(lock);
}
