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
    let status = run_bounded(
        &env,
        &["-odq", "second@example.org"],
        MSG,
        Duration::from_secs(20),
    );
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

/// Run `sendmail ARGS` with `stdin` as its input, killed (and the test failed) after
/// `limit`.
fn run_bounded(
    env: &Env,
    args: &[&str],
    stdin: &[u8],
    limit: Duration,
) -> std::process::ExitStatus {
    let mut full = vec!["-C", env.conf.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut child = Command::new(env.link("sendmail"))
        .args(&full)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
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
        run_bounded(&env, &["-qRsecond@two", "-qf"], b"", limit).code(),
        Some(0)
    );
    let got = peer.wait_for(1, Duration::from_secs(20));
    assert!(
        got.iter().any(|m| m.0.contains("second@two.example")),
        "{got:?}"
    );
    assert_eq!(run_bounded(&env, &["-qf"], b"", limit).code(), Some(0));
    let got = peer.wait_for(3, Duration::from_secs(20));
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(env.entries().is_empty(), "{}", env.listing());
    drop(lock);
}

/// A submission held between its index append and its rename (strace delays the
/// commit's rename by 10 s) while the recipient index is removed (by hand, or by an append
/// that could not leave its `stale.<ID>` marker) and a queue run rebuilds the index:
/// once the entry is committed, the index claims to be whole (this boot, no marker),
/// so it must name the entry in the recipient index and in its domain's list, and a
/// `-qR` run (which then does not list the spool) delivers it. A rebuild that took the
/// lines of entries still being written from the old recipient index lost these.
#[test]
fn a_rebuild_names_an_entry_between_its_append_and_its_rename() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: strace not available");
        return;
    }
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = crate::harness::servers::relay_env(peer.port, "O FastFlushDomains=late.example\n");
    env.sendmail(&["-odq", "other@else.example"], MSG).code(0);
    let renames = "rename,renameat,renameat2";
    let mut tracer = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("trace={renames}"))
        .arg("-e")
        .arg(format!("inject={renames}:delay_enter=10000000:when=1"))
        .arg(env.link("sendmail"))
        .args([
            "-C",
            env.conf.to_str().unwrap(),
            "-odq",
            "late@late.example",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tracer.stdin.take().unwrap().write_all(MSG).unwrap();
    let recipients = env.spool.join("index/recipients");
    let tmp = || -> Vec<String> {
        fs::read_dir(env.spool.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("tf"))
            .collect()
    };
    // Held after its append (its line is in), before its rename (its temporary file
    // is still there).
    let started = Instant::now();
    while !(fs::read_to_string(&recipients)
        .unwrap_or_default()
        .contains("late@late.example")
        && tmp().len() == 1)
    {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = tracer.kill();
            panic!("the submission never reached its rename");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let id = tmp()[0].trim_start_matches("tf").to_string();
    assert!(fs::read_to_string(&recipients).unwrap().contains(&id));
    assert_eq!(env.entries().len(), 1, "{}", env.listing());
    // The recipient index goes; a run that lists the spool rebuilds it.
    fs::remove_file(&recipients).unwrap();
    env.sendmail(&["-qSnobody.matches.this", "-qf"], b"")
        .code(0);
    assert!(recipients.exists());
    assert_eq!(
        tmp().len(),
        1,
        "the rebuild ran after the submission's rename (a machine too slow for the test)"
    );
    assert!(tracer.wait().unwrap().success());
    assert_eq!(env.entries().len(), 2, "{}", env.listing());
    // Whole: of this boot, no marker...
    let index = env.spool.join("index");
    let markers = stale_markers(&index);
    assert!(markers.is_empty(), "{markers:?}");
    // ...so it names the entry.
    let text = fs::read_to_string(&recipients).unwrap();
    assert!(
        text.lines().any(|l| l == format!("{id} late@late.example")),
        "{id} not in the rebuilt index:\n{text}"
    );
    let list = fs::read_to_string(index.join("domains/late.example")).unwrap_or_default();
    assert!(list.lines().any(|l| l == id), "{id} not in {list:?}");
    env.sendmail(&["-qRlate.example", "-qf"], b"").code(0);
    let got = peer.wait_for(1, Duration::from_secs(20));
    assert!(
        got.iter().any(|m| m.0.contains("late@late.example")),
        "{got:?}"
    );
    assert_eq!(peer.messages().len(), 1);
}

/// The names of the `stale.` markers in the index directory `index`.
fn stale_markers(index: &std::path::Path) -> Vec<String> {
    fs::read_dir(index)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("stale."))
        .collect()
}

/// `n` recipients at `domain`, with addresses long enough to fill the index quickly.
fn many_recipients(tag: &str, n: usize, domain: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag}-recipient-number-{i:02}@{domain}"))
        .collect()
}

/// A host that only flushes (`-qR`; no full queue run ever rebuilds its index) keeps an
/// index the size of its queue: a run that removed entries compacts the index once
/// finished entries fill most of it. Each cycle queues 50 recipients (about 2.5 KB of
/// index) and flushes them; 60 cycles are about 150 KB of lines, all of finished
/// entries. Compaction starts looking past 32 KiB and rebuilds once the index has more
/// than 1,000 lines, at the latest at twice its size when it last looked: about 64 KiB.
#[test]
fn flushes_alone_keep_the_index_the_size_of_the_queue() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = crate::harness::servers::relay_env(peer.port, "");
    let recipients = env.spool.join("index/recipients");
    let cycles = 60;
    let mut largest = 0;
    for cycle in 0..cycles {
        let rcpts = many_recipients(&format!("c{cycle}"), 50, "dial.example");
        let mut args = vec!["-odq"];
        args.extend(rcpts.iter().map(String::as_str));
        env.sendmail(&args, MSG).code(0);
        env.sendmail(&["-qR@dial.example", "-qf"], b"").code(0);
        largest = largest.max(fs::metadata(&recipients).unwrap().len());
    }
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert_eq!(peer.wait_for(cycles, Duration::from_secs(20)).len(), cycles);
    assert!(
        largest <= 80 * 1024,
        "the recipient index grew to {largest} octets with an empty queue"
    );
    // The domain's list is compacted with it (one ID a cycle without).
    let list = fs::read_to_string(env.spool.join("index/domains/dial.example")).unwrap_or_default();
    assert!(list.lines().count() < cycles, "{list}");
}

/// Submissions while flushes compact the index (each flush finds it full of finished
/// entries' lines, added here by hand): no entry is lost from it. The index is whole at
/// the end (so `-qR` does not list the spool), and a `-qR` run delivers every entry
/// submitted meanwhile.
#[test]
fn submissions_during_compactions_stay_in_the_index() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = crate::harness::servers::relay_env(peer.port, "");
    let recipients = env.spool.join("index/recipients");
    // 3,000 lines of entries that are gone (about 120 KB).
    let dead: String = (0..3000)
        .map(|i| format!("xxxxxx{i:08} gone-recipient-number-{i}@gone.example\n"))
        .collect();
    let submitters = 3;
    let each = 15;
    let flushes = 8;
    // The index is made by the first submission into an empty spool.
    env.sendmail(&["-odq", "keep-first@keep.example"], MSG)
        .code(0);
    assert!(recipients.exists());
    std::thread::scope(|s| {
        for t in 0..submitters {
            let env = &env;
            s.spawn(move || {
                for i in 0..each {
                    env.sendmail(&["-odq", &format!("keep-{t}-{i}@keep.example")], MSG)
                        .code(0);
                }
            });
        }
        for f in 0..flushes {
            fs::OpenOptions::new()
                .append(true)
                .open(&recipients)
                .unwrap()
                .write_all(dead.as_bytes())
                .unwrap();
            env.sendmail(&["-odq", &format!("flush-{f}@dial.example")], MSG)
                .code(0);
            env.sendmail(&["-qR@dial.example", "-qf"], b"").code(0);
        }
    });
    assert_eq!(
        peer.wait_for(flushes, Duration::from_secs(20)).len(),
        flushes
    );
    // The last flush compacted the index: no dead line is left.
    let text = fs::read_to_string(&recipients).unwrap();
    assert!(!text.contains("@gone.example"), "not compacted");
    let index = env.spool.join("index");
    let markers = stale_markers(&index);
    assert!(markers.is_empty(), "{markers:?}");
    // Whole, so it names every entry queued.
    let queued = env.entries();
    assert_eq!(queued.len(), 1 + submitters * each, "{}", env.listing());
    for e in &queued {
        let id = e.file_name().unwrap().to_string_lossy()[2..].to_string();
        assert!(text.contains(&format!("{id} keep-")), "{id} not in\n{text}");
    }
    env.sendmail(&["-qR@keep.example", "-qf"], b"").code(0);
    let want = flushes + 1 + submitters * each;
    assert_eq!(peer.wait_for(want, Duration::from_secs(20)).len(), want);
    assert!(env.entries().is_empty(), "{}", env.listing());
}
