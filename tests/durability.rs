//! Durability and isolation, observed with strace on the real binary:
//! - SIGKILL at the k-th system call of a submission, for every k in turn: an exit 0 always
//!   has its complete entry, and no partial entry is ever visible;
//! - deferred mode opens no AF_INET/AF_INET6 socket (no DNS, no connection);
//! - closed fds 0-2 never end up as spool files.

use crate::harness::servers::Peer;
use crate::harness::{Env, release_bin, require};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

/// strace's arguments for a run whose fsyncs fail with ENOSPC, as on a full disk: every
/// one, or only the `when`-th.
fn fsync_enospc(when: Option<u32>) -> Vec<String> {
    let inject = match when {
        Some(n) => format!("inject=fsync:error=ENOSPC:when={n}"),
        None => "inject=fsync:error=ENOSPC".to_string(),
    };
    ["-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "-e"]
        .into_iter()
        .map(String::from)
        .chain([inject])
        .collect()
}

/// strace's arguments to follow forks quietly, trace `what` (`trace=...`) and write
/// the trace to `file`.
fn trace_args(what: &str, file: &std::path::Path) -> Vec<String> {
    ["-f", "-qq", "-e", what, "-o"]
        .map(String::from)
        .into_iter()
        .chain([file.display().to_string()])
        .collect()
}

/// Where strace is installed: a fault server (its scratch Env, the server) and an Env
/// relaying to it; None (after a note) otherwise.
fn traced_relay() -> Option<(Env, Peer, Env)> {
    if !require("strace") {
        return None;
    }
    let (scratch, peer) = crate::harness::servers::start_peer(&[])?;
    let env = crate::harness::servers::relay_env(peer.port, "");
    Some((scratch, peer, env))
}

/// An empty aliases file named by ALIASES in `env`'s configuration: an unknown local
/// name is refused as a user.
fn no_aliases(env: &Env) {
    fs::write(env.dir.join("aliases"), "").unwrap();
    env.add_config(&format!("ALIASES {}\n", env.dir.join("aliases").display()));
}

/// The reports to s@example.org `peer` took that say `who... User unknown`.
fn reports_to_s_naming(peer: &Peer, who: &str) -> usize {
    peer.messages()
        .iter()
        .filter(|(j, m)| {
            j.contains("\"rcpt_tos\": [\"s@example.org\"]")
                && String::from_utf8_lossy(m).contains(&format!("{who}... User unknown"))
        })
        .count()
}

fn strace_run(env: &Env, strace_args: &[String], args: &[&str], stdin: &[u8]) -> (i32, String) {
    let mut cmd = Command::new("strace");
    cmd.args(strace_args)
        .arg("--")
        .arg(release_bin())
        .args(["-C", env.conf.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("strace");
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The system calls of one submission, in order, by name.
fn syscall_sequence(env: &Env, stdin: &[u8]) -> Vec<String> {
    let trace = env.dir.join("trace.txt");
    let (code, _) = strace_run(
        env,
        &[
            "-f".into(),
            "-qq".into(),
            "-o".into(),
            trace.display().to_string(),
        ],
        &["-odq", "bob@example.org"],
        stdin,
    );
    assert_eq!(code, 0);
    let text = fs::read_to_string(&trace).unwrap();
    let mut names = Vec::new();
    for line in text.lines() {
        // "1234  name(args..." or "name(args..."; skip signal and exit lines.
        let l = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        if let Some(paren) = l.find('(') {
            let name = &l[..paren];
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                names.push(name.to_string());
            }
        }
    }
    names
}

fn message(k: usize) -> Vec<u8> {
    format!("Subject: crash test {k}\n\nbody of message {k}\nEND-OF-MESSAGE {k}\n").into_bytes()
}

/// Every visible entry parses and holds a whole message; returns their marker numbers.
fn visible_entries_complete(env: &Env) -> Vec<usize> {
    let mut seen = Vec::new();
    for qf in env.entries() {
        let text = fs::read_to_string(&qf).unwrap();
        let subject = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: crash test "))
            .unwrap_or_else(|| panic!("{}: no subject: {text:?}", qf.display()));
        let k: usize = subject.parse().unwrap();
        assert!(
            text.ends_with(&format!("END-OF-MESSAGE {k}\n")),
            "partial entry visible: {}: {text:?}",
            qf.display()
        );
        seen.push(k);
    }
    let q = env.mailq(&[]);
    assert!(!q.contains("cannot read"), "{q}");
    let listed = q.lines().filter(|l| l.starts_with("\t\t\t\t\t ")).count();
    assert_eq!(listed, seen.len(), "{q}");
    seen
}

#[test]
fn sigkill_at_every_system_call() {
    if !require("strace") {
        return;
    }
    let env = Env::new();
    let seq = syscall_sequence(&env, &message(0));
    for f in env.entries() {
        fs::remove_file(f).unwrap();
    }
    assert!(seq.len() > 20, "implausible trace: {seq:?}");
    let all = std::env::var_os("RSENDMAIL_SWEEP_ALL").is_some();
    let limit = if all { seq.len() } else { seq.len().min(300) };
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let (mut ok_runs, mut killed_runs) = (0, 0);
    for k in 1..=limit {
        let name = seq[k - 1].as_str();
        let n = counts.entry(name).or_insert(0);
        *n += 1;
        let inject = format!("inject={name}:signal=KILL:when={n}");
        let (code, stdout) = strace_run(
            &env,
            &[
                "-f".into(),
                "-qq".into(),
                "-o".into(),
                "/dev/null".into(),
                "-e".into(),
                inject.clone(),
            ],
            &["-odq", "bob@example.org"],
            &message(k),
        );
        let seen = visible_entries_complete(&env);
        if code == 0 {
            ok_runs += 1;
            assert!(
                seen.contains(&k),
                "k={k} ({inject}) exited 0 without its entry"
            );
            assert_eq!(stdout, "");
        } else {
            killed_runs += 1;
        }
    }
    assert!(
        killed_runs > 0,
        "no run was killed: the injection did not work"
    );
    eprintln!("durability sweep: {limit} system calls, {killed_runs} killed, {ok_runs} completed");
    // A queue-run sweep later removes the leftovers once they are old enough.
    let tmp_left = fs::read_dir(env.spool.join("tmp")).unwrap().count();
    eprintln!("temporary files left by killed runs: {tmp_left}");
}

#[test]
fn deferred_mode_opens_no_inet_socket() {
    if !require("strace") {
        return;
    }
    // No MAILNAME: the host name must come from gethostname, never from DNS.
    let env = Env::new();
    fs::write(&env.conf, format!("SPOOLDIR {}\n", env.spool.display())).unwrap();
    let trace = env.dir.join("net.txt");
    let (code, _) = strace_run(
        &env,
        &trace_args("trace=%network", &trace),
        &["-odd", "bob@example.org", "carol@example.net"],
        b"Subject: dial-up\n\nbody\n",
    );
    assert_eq!(code, 0);
    assert_eq!(env.entries().len(), 1);
    let text = fs::read_to_string(&trace).unwrap();
    assert!(
        text.contains("socket("),
        "the trace saw no network call at all (syslog opens a local one): {text}"
    );
    for family in ["AF_INET,", "AF_INET6,"] {
        assert!(
            !text.contains(family),
            "deferred mode opened {family} socket:\n{text}"
        );
    }
}

#[test]
fn closed_standard_fds_do_not_become_spool_files() {
    if !require("strace") {
        return;
    }
    let env = Env::new();
    let trace = env.dir.join("fds.txt");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 0<&- 1>&- 2>&-; exec strace -f -qq -e trace=openat -o '{}' '{}' -C '{}' -odq bob@example.org",
            trace.display(),
            release_bin().display(),
            env.conf.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let e = env.only_entry();
    assert!(e.starts_with("rsendmail-queue 3\n"), "{e:?}");
    let text = fs::read_to_string(&trace).unwrap();
    let opens: Vec<&str> = text.lines().filter(|l| l.contains("/tmp/tf")).collect();
    assert_eq!(opens.len(), 1, "{text}");
    let fd: i32 = opens[0]
        .rsplit("= ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        fd >= 3,
        "the queue file was opened as fd {fd}: {}",
        opens[0]
    );
}

/// `-qR<substr>` is answered from the recipient index: only matching entries are opened,
/// however many others the queue holds.
#[test]
fn selective_run_opens_only_matching_entries() {
    if !require("strace") {
        return;
    }
    let env = Env::new();
    for i in 0..30 {
        env.sendmail(
            &["-odq", &format!("user{i}@bulk{i}.example")],
            b"Subject: x\n\nb\n",
        )
        .code(0);
    }
    env.sendmail(&["-odq", "someone@target.example"], b"Subject: x\n\nb\n")
        .code(0);
    let count_opens = |args: &[&str]| -> usize {
        let trace = env.dir.join("opens.txt");
        let (code, _) = strace_run(&env, &trace_args("trace=openat", &trace), args, b"");
        assert_eq!(code, 0);
        let text = fs::read_to_string(&trace).unwrap();
        text.lines().filter(|l| l.contains("/qf")).count()
    };
    let selective = count_opens(&["-qf", "-qRtarget.example"]);
    let full = count_opens(&["-qf"]);
    assert!(
        (1..=4).contains(&selective),
        "-qR opened {selective} queue files"
    );
    assert!(full >= 31, "a full run opened only {full} queue files");
}

/// A queue run looks for an entry's mark (`kf<ID>`, `rsendmail-admin delete`, `hold` or
/// `bounce` during a delivery) in its selection and when its attempt locks the entry
/// only when its listing of the spool named one; the attempt itself still looks where a
/// mark made since the listing must be honoured (before its transaction, at its end):
/// at most 2 failed lookups an entry (3 when the selection and the lock looked too).
#[test]
fn a_queue_run_looks_for_marks_only_where_needed() {
    if !require("strace") {
        return;
    }
    let env = crate::harness::servers::relay_env(crate::harness::closed_tcp_port(), "");
    let n = 10;
    for i in 0..n {
        env.sendmail(
            &["-odq", &format!("user{i}@example.org")],
            b"Subject: x\n\nb\n",
        )
        .code(0);
    }
    let trace = env.dir.join("marks.txt");
    let (code, _) = strace_run(&env, &trace_args("trace=%file", &trace), &["-q"], b"");
    assert_eq!(code, 0);
    let text = fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("/kf") && l.contains("ENOENT"))
        .collect();
    let lookups = lines.len();
    assert!(
        lookups <= 2 * n,
        "{lookups} failed lookups of marks for {n} entries: {lines:#?}"
    );
}

/// A full file system while the SMTP server commits a message: the client is told
/// `452 4.3.1 Insufficient disk space` (a temporary failure it will retry), decided from
/// the error's kind (ENOSPC), and nothing is queued.
#[test]
fn a_full_disk_at_commit_is_a_452_over_smtp() {
    if !require("strace") {
        return;
    }
    let env = Env::new();
    let dialogue = "HELO localhost\r\nMAIL FROM:<root>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: full\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let args = fsync_enospc(None);
    let (_, stdout) = strace_run(&env, &args, &["-bs", "-odq"], dialogue.as_bytes());
    assert!(
        stdout.contains("\r\n452 4.3.1 Insufficient disk space; try again later\r\n"),
        "{stdout}"
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// A failure report that cannot be queued (the disk is full when it is committed): the
/// failed recipient stays queued, never dropped with its entry; the next run fails it
/// again and reports it.
#[test]
fn a_failure_report_that_cannot_be_queued_keeps_its_entry() {
    let Some((_scratch, _peer, env)) = traced_relay() else {
        return;
    };
    env.sendmail(&["-odq", "reject5@example.org"], b"Subject: r\n\nbody\n")
        .code(0);
    // The run's first two fsyncs record the state's mark of the report it is to queue
    // (`State::reporting`: the file, then the spool directory), its third is the
    // report's commit: that one fails with ENOSPC.
    let args = fsync_enospc(Some(3));
    strace_run(&env, &args, &["-qf"], b"");
    let j = env.json();
    assert_eq!(
        j.len(),
        1,
        "the entry was dropped with its report: {}",
        env.listing()
    );
    assert!(j[0].contains("reject5@example.org"), "{}", j[0]);
    assert!(j[0].contains("cannot queue the failure report"), "{}", j[0]);
    // The next run (disk space back) fails and reports it.
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.json().is_empty(), "{}", env.listing());
    let mbox = fs::read_to_string(env.dir.join("mail/root")).unwrap_or_default();
    assert!(mbox.contains("Status: 5.1.1"), "{mbox}");
}

/// A full disk while an entry with several recipients waits: its state cannot be
/// recorded, so a run sends none of them (the accepted recipient's 250 could not be
/// kept, and every run would send it again); once there is room, one run delivers each
/// recipient once. Shapes: accepted + deferred (the state must keep the 250), accepted +
/// refused (the report and then the state must be written).
#[test]
fn a_full_disk_sends_nothing_whose_outcome_cannot_be_recorded() {
    let Some((_scratch, peer, env)) = traced_relay() else {
        return;
    };
    for other in ["reject4@example.org", "reject5@example.org"] {
        env.sendmail(
            &["-odq", "-f", "owner@example.net", "ok@example.org", other],
            format!("Subject: {other}\n\nbody\n").as_bytes(),
        )
        .code(0);
    }
    // Every fsync fails with ENOSPC, as on a full disk: nothing can be recorded.
    let args = fsync_enospc(None);
    for _ in 0..3 {
        strace_run(&env, &args, &["-qf"], b"");
    }
    let to_ok = |m: &Vec<(String, Vec<u8>)>| {
        m.iter()
            .filter(|(j, _)| j.contains("ok@example.org"))
            .count()
    };
    assert_eq!(
        to_ok(&peer.messages()),
        0,
        "sent while nothing could be recorded: {:?}",
        peer.messages().iter().map(|(j, _)| j).collect::<Vec<_>>()
    );
    assert_eq!(env.entries().len(), 2, "{}", env.listing());
    env.sendmail(&["-qf"], b"").code(0);
    env.sendmail(&["-qf"], b"").code(0);
    let m = peer.messages();
    let envelopes: Vec<&String> = m.iter().map(|(j, _)| j).collect();
    assert_eq!(to_ok(&m), 2, "{envelopes:?}");
    let reports = m
        .iter()
        .filter(|(j, _)| j.contains("\"rcpt_tos\": [\"owner@example.net\"]"))
        .count();
    assert_eq!(reports, 1, "{envelopes:?}");
    // The deferred recipient stays queued; nothing else does.
    assert_eq!(env.entries().len(), 1, "{}", env.listing());
}

/// A queue run under a file-size limit (`ulimit -f`, systemd's `LimitFSIZE=`) too small
/// for the entry's state, or for its failure report: the accepted recipient beside a
/// refused one is never sent twice (no send whose record cannot be written; a state too
/// large is written without its texts), and without the limit each is delivered once.
#[test]
fn a_file_size_limit_never_sends_an_accepted_recipient_twice() {
    let Some((_scratch, peer)) = crate::harness::servers::start_peer(&[]) else {
        return;
    };
    let env = crate::harness::servers::relay_env(peer.port, "");
    let to_ok = |m: &Vec<(String, Vec<u8>)>| {
        m.iter()
            .filter(|(j, _)| j.contains("ok@example.org"))
            .count()
    };
    let mut sent = 0;
    for limit in [64, 160, 400, 1024] {
        env.sendmail(
            &[
                "-odq",
                "-f",
                "owner@example.net",
                "ok@example.org",
                "reject5@example.org",
                "reject4@example.org",
            ],
            format!("Subject: limit {limit}\n\nbody\n").as_bytes(),
        )
        .code(0);
        sent += 1;
        for _ in 0..2 {
            let run = env.sendmail_fsize(limit, &["-qf"], b"");
            assert!(run.code >= 0, "killed under limit {limit}");
        }
        let m = peer.messages();
        assert!(
            to_ok(&m) <= sent,
            "limit {limit}: {} copies for {sent} messages: {:?}",
            to_ok(&m),
            m.iter().map(|(j, _)| j).collect::<Vec<_>>()
        );
    }
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(to_ok(&peer.messages()), sent);
}

/// Interactive deliveries under a small limit of open files (`ulimit -n`): the
/// connection takes a descriptor after the entry's state was shown writable, so the
/// record's files are opened before anything is sent and kept for it. An accepted
/// recipient beside a deferred one is never sent twice: its 250 is recorded, or it was
/// not sent.
#[test]
fn a_small_open_files_limit_never_sends_an_accepted_recipient_twice() {
    let Some((_scratch, peer)) = crate::harness::servers::start_peer(&[]) else {
        return;
    };
    let env = crate::harness::servers::relay_env(peer.port, "");
    let mut taken = 0;
    for n in 5..=16u64 {
        let run = env.sendmail_rlimit(
            libc::RLIMIT_NOFILE as i32,
            n,
            &[
                "-odi",
                "-f",
                "owner@example.net",
                "ok@example.org",
                "reject4@example.org",
            ],
            format!("Subject: limit {n}\n\nbody\n").as_bytes(),
        );
        assert!(run.code >= 0, "killed under limit {n}");
        taken += usize::from(run.code == 0);
    }
    env.sendmail(&["-qf"], b"").code(0);
    env.sendmail(&["-qf"], b"").code(0);
    let mut copies = std::collections::HashMap::new();
    for (j, m) in peer.messages() {
        if j.contains("ok@example.org") {
            let subject = String::from_utf8_lossy(&m)
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .unwrap_or_default()
                .to_string();
            *copies.entry(subject).or_insert(0) += 1;
        }
    }
    assert!(copies.values().all(|&c| c == 1), "{copies:?}");
    assert_eq!(copies.len(), taken, "{copies:?}");
}

/// A file-size limit while the SMTP server (`-bs`) writes a message: the client gets a
/// temporary `452 4.3.1` (EFBIG is no room, as a full disk is), nothing is queued, and
/// the session goes on: a smaller message is accepted, and QUIT is answered.
#[test]
fn a_file_size_limit_is_a_452_over_smtp_and_the_session_goes_on() {
    let env = Env::new();
    let big = "0123456789abcdef\r\n".repeat(4096);
    let dialogue = format!(
        "HELO localhost\r\nMAIL FROM:<root>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: big\r\n\r\n{big}.\r\n\
         MAIL FROM:<root>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: small\r\n\r\nbody\r\n.\r\nQUIT\r\n"
    );
    let run = env.sendmail_fsize(16 * 1024, &["-bs", "-odq"], dialogue.as_bytes());
    run.code(0);
    let replies: Vec<&str> = run.stdout.split("\r\n").collect();
    assert!(
        replies
            .iter()
            .any(|l| l.starts_with("452 4.3.1 Insufficient disk space")),
        "{}",
        run.stdout
    );
    assert!(
        replies
            .iter()
            .any(|l| l.starts_with("250 2.0.0 ") && l.contains("Message accepted")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.ends_with("closing connection\r\n"),
        "{}",
        run.stdout
    );
    assert_eq!(env.entries().len(), 1, "{}", env.listing());
    assert!(env.only_message().contains("Subject: small"));
}

/// A run whose state record fails once after a server accepted a recipient (ENOSPC
/// injected on the second fsync of the run, the record's: the first is the room made
/// for it before the send) writes it again: the next run does not send to that
/// recipient again.
#[test]
fn a_state_record_that_fails_once_is_written_again() {
    use crate::harness::servers::{relay_env, start_peer};
    if !require("strace") {
        return;
    }
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &["-odq", "ok@x.example", "reject4@x.example"],
        crate::harness::MSG,
    )
    .code(0);
    let (code, out) = strace_run(&env, &fsync_enospc(Some(2)), &["-qf"], b"");
    assert_eq!(peer.messages().len(), 1);
    for _ in 0..2 {
        env.sendmail(&["-qf"], b"").code(0);
    }
    assert_eq!(peer.messages().len(), 1, "ok@ was sent to again");
    assert!(env.mailq(&[]).contains("reject4@x.example"));
    assert_eq!(code, 0, "{out}");
}

/// A full file system under the spool: a run sends nothing whose outcome it could not
/// record (the room for the record is made before sending), so no run sends to a
/// recipient again; once there is room, each recipient gets the message once.
#[test]
fn a_full_spool_sends_nothing_it_cannot_record() {
    use crate::harness::servers::{relay_env, start_peer};
    if !crate::harness::is_root() {
        return;
    }
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    fs::create_dir_all(&env.spool).unwrap();
    // Mounted as an install would make it: the spool's modes and a group fit for it
    // (a file system of root's group is refused, as `rsendmail-admin check` says).
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!(
            "size=64k,mode=2770,gid={}",
            crate::harness::fit_group().1
        ))
        .arg("tmpfs")
        .arg(&env.spool)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        crate::harness::unavailable("mount -t tmpfs");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(env.spool.clone());
    env.sendmail(
        &["-odq", "ok@x.example", "reject4@x.example"],
        crate::harness::MSG,
    )
    .code(0);
    let filler = env.spool.join("filler");
    {
        let mut f = fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
    }
    for _ in 0..2 {
        env.sendmail(&["-qf"], b"");
    }
    assert_eq!(peer.messages().len(), 0, "sent with no room to record it");
    fs::remove_file(&filler).unwrap();
    env.sendmail(&["-qf"], b"").code(0);
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(peer.messages().len(), 1);
    assert!(env.mailq(&[]).contains("reject4@x.example"));
}

/// Recipients refused at an interactive submission are kept in the entry's state for the
/// one report of the pass. A full disk at any fsync of that pass (the submission's state
/// record, whose fallback without the replies' texts must keep them; the report's own
/// commit in the delivery that follows, after which they must stay owed) never loses
/// them: when the submission was taken (exit 67), the sender gets a report naming the
/// refused recipient, at once or from a later run, and nothing stays queued.
#[test]
fn a_full_disk_never_loses_the_report_of_recipients_refused_at_submission() {
    let Some((_scratch, peer, env)) = traced_relay() else {
        return;
    };
    no_aliases(&env);
    let reports_naming = |who: &str| reports_to_s_naming(&peer, who);
    let mut checked = 0;
    for k in 1..=10u32 {
        let who = format!("nosuchuser{k}");
        let (code, out) = strace_run(
            &env,
            &fsync_enospc(Some(k)),
            &["-odi", "-f", "s@example.org", &who, "good@example.org"],
            format!("Subject: fsync {k}\n\nbody\n").as_bytes(),
        );
        for _ in 0..2 {
            env.sendmail(&["-qf"], b"").code(0);
        }
        if code != 67 {
            // Not taken (the caller is told: EX_TEMPFAIL, nothing queued).
            assert_eq!(code, 75, "fsync {k}: {out}");
            continue;
        }
        checked += 1;
        // (Two when the report's entry was renamed into place but the directory's fsync
        // failed: it is made again, a duplicate being better than a loss.)
        assert!(
            reports_naming(&who) >= 1,
            "fsync {k}: the report of {who} was lost\n{out}\n{}",
            env.listing()
        );
    }
    assert!(checked >= 5, "{checked} submissions taken");
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// The mirror of a dead.letter that cannot be written: a report of recipients refused at
/// submission that cannot be queued (a full disk at any of its fsyncs) is never lost
/// without a word. When every recipient was refused nothing else holds the message: the
/// caller is told and the status is EX_TEMPFAIL, with nothing queued, in every error
/// mode that mails (p for a remote sender, m, w, e). When the message was queued for
/// its other recipients the entry owes the report, which a queue run sends.
#[test]
fn a_report_of_refusals_that_cannot_be_queued_is_never_lost_without_a_word() {
    let Some((_scratch, peer, env)) = traced_relay() else {
        return;
    };
    no_aliases(&env);
    let reports_naming = |who: &str| reports_to_s_naming(&peer, who);
    // The spool made first (its making syncs too).
    env.sendmail(&["-odq", "good@example.org"], b"\n").code(0);
    env.sendmail(&["-qf"], b"").code(0);
    for mode in ["-oep", "-oem", "-oew", "-oee"] {
        for delivery in ["-odi", "-odq"] {
            let who = format!("nosuchuser{}{}", &mode[3..], &delivery[3..]);
            let (code, out) = strace_run(
                &env,
                &fsync_enospc(None),
                &[delivery, mode, "-f", "s@example.org", &who],
                b"Subject: all refused\n\nbody\n",
            );
            assert_eq!(code, 75, "{mode} {delivery}: {out}\n{}", env.listing());
            assert!(
                out.contains("cannot save rejected email anywhere"),
                "{mode} {delivery}: {out}"
            );
            assert!(env.entries().is_empty(), "{}", env.listing());
        }
    }
    // Queued for another recipient: two fsyncs in a row failing at each step in turn
    // (once, the report to the sender and the one to the postmaster: then the entry
    // owes it).
    let mut owed = 0;
    for k in 1..=8u32 {
        let who = format!("nosuchuserq{k}");
        let strace: Vec<String> = ["-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "-e"]
            .into_iter()
            .map(String::from)
            .chain([format!("inject=fsync:error=ENOSPC:when={k}..{}", k + 1)])
            .collect();
        let (code, out) = strace_run(
            &env,
            &strace,
            &[
                "-odq",
                "-oem",
                "-f",
                "s@example.org",
                &who,
                "good@example.org",
            ],
            format!("Subject: fsync {k}\n\nbody\n").as_bytes(),
        );
        if code == 75 {
            // Not taken, or taken and the report could not even be owed: told (an entry
            // renamed into place whose directory could not be synced may stay: a
            // duplicate is better than a loss).
            assert!(
                out.contains("No space left on device") || out.contains("anywhere"),
                "{out}"
            );
        } else {
            assert_eq!(code, 67, "fsync {k}: {out}");
            owed += usize::from(env.entries().iter().any(|e| {
                fs::read_to_string(
                    e.with_file_name(
                        e.file_name()
                            .unwrap()
                            .to_string_lossy()
                            .replacen("qf", "sf", 1),
                    ),
                )
                .is_ok_and(|s| s.contains(&who))
            }));
        }
        for _ in 0..2 {
            env.sendmail(&["-qf"], b"").code(0);
        }
        if code == 67 {
            // To the sender, or (when that could not be queued) to the postmaster, whose
            // mailbox is local here.
            let local = fs::read_dir(env.dir.join("mail"))
                .unwrap()
                .flatten()
                .filter_map(|e| fs::read_to_string(e.path()).ok())
                .map(|t| t.matches(&format!("{who}... User unknown")).count())
                .sum::<usize>();
            // (Two when the report's entry was renamed into place but the directory's
            // fsync failed: a duplicate is better than a loss.)
            assert!(
                reports_naming(&who) + local.min(1) >= 1,
                "fsync {k}: the report of {who} was lost\n{out}\n{}",
                env.listing()
            );
        }
        for e in env.entries() {
            let _ = fs::remove_file(e);
        }
    }
    assert!(owed >= 1, "no run left the report owed");
}

/// A verbose run that sends nothing for an entry because its state could not be
/// recorded (a full disk) says so for each recipient held back, with the reason; its
/// status is EX_TEMPFAIL when not even the attempt's record could be written.
#[test]
fn a_full_disk_is_said_in_a_verbose_run() {
    let Some((_scratch, peer, env)) = traced_relay() else {
        return;
    };
    env.sendmail(
        &[
            "-odq",
            "-f",
            "owner@example.net",
            "ok@example.org",
            "reject4@example.org",
        ],
        b"Subject: full\n\nbody\n",
    )
    .code(0);
    let (code, stdout) = strace_run(&env, &fsync_enospc(None), &["-qf", "-v"], b"");
    assert!(peer.messages().is_empty(), "{:?}", peer.messages());
    let said = stdout
        .lines()
        .find(|l| l.contains("... Deferred: cannot record delivery state: "))
        .unwrap_or_else(|| panic!("nothing said of the recipients held back in\n{stdout}"));
    for who in ["ok@example.org", "reject4@example.org"] {
        assert!(said.contains(who), "{who} not in {said:?}");
    }
    assert!(stdout.contains("cannot record state in "), "{stdout}");
    assert_eq!(code, 75, "{stdout}");
}

/// A submission killed by a signal while it reads its message leaves its `tmp/tf<ID>`
/// (nothing queued); the next queue run removes it, young as it is, since no process
/// holds it; one a live submission is still writing is kept, and that submission
/// queues its message.
#[test]
fn a_killed_submissions_temporary_file_is_removed_by_the_next_run() {
    use std::time::Duration;
    let env = Env::new();
    let tmp = env.spool.join("tmp");
    let tf_files = || -> Vec<std::path::PathBuf> {
        fs::read_dir(&tmp)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("tf"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let start = || {
        let mut child = Command::new(env.link("sendmail"))
            .args(["-C", env.conf.to_str().unwrap(), "-odq", "bob@example.org"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"Subject: half\n\nthe first half").unwrap();
        stdin.flush().unwrap();
        (child, stdin)
    };
    let (mut killed, stdin) = start();
    crate::harness::wait_until(Duration::from_secs(20), "a temporary file", || {
        tf_files().len() == 1
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(killed.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = killed.wait().unwrap();
    drop(stdin);
    assert!(!status.success(), "{status:?}");
    let left = tf_files();
    assert_eq!(left.len(), 1, "the killed submission left its file");
    assert!(env.entries().is_empty());
    // A live submission's file, beside it.
    let (live, mut stdin) = start();
    crate::harness::wait_until(Duration::from_secs(20), "a second temporary file", || {
        tf_files().len() == 2
    });
    // In the foreground (`-v`): a plain `-q` returns at once, its run in the background.
    env.sendmail(&["-q", "-v"], b"").code(0);
    let now = tf_files();
    assert!(
        !left[0].exists(),
        "the killed submission's file was kept: {now:?}"
    );
    assert_eq!(now.len(), 1, "the live submission's file was removed");
    stdin.write_all(b", and the rest\n").unwrap();
    drop(stdin);
    let out = live.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(tf_files().is_empty());
    assert_eq!(env.entries().len(), 1);
}
