//! The log file (`MAILLOG`): what a submission, a refused recipient and a delivery write
//! there, the line format, and how the file is opened; and the long-running runner's
//! stderr when there is neither a log file nor syslog.

use crate::harness::servers::{Sink, relay_env};
use crate::harness::{
    Env, MSG, is_root, other_user, sigterm, unavailable, wait_exit, wait_until_or,
};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn syslog_available() -> bool {
    std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect("/dev/log"))
        .is_ok()
}

/// Each line as `(program, text)`, after checking its shape:
/// `YYYY-MM-DDThh:mm:ss+hh:mm program[pid]: text`.
fn records(path: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let (time, rest) = l.split_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            let b = time.as_bytes();
            assert!(
                time.len() == 25
                    && b[4] == b'-'
                    && b[10] == b'T'
                    && b[13] == b':'
                    && (b[19] == b'+' || b[19] == b'-'),
                "timestamp of {l:?}"
            );
            let (who, text) = rest.split_once(": ").unwrap_or_else(|| panic!("{l:?}"));
            let (program, pid) = who
                .strip_suffix(']')
                .and_then(|w| w.split_once('['))
                .unwrap_or_else(|| panic!("program[pid] in {l:?}"));
            assert!(pid.parse::<u32>().is_ok(), "pid in {l:?}");
            (program.to_string(), text.to_string())
        })
        .collect()
}

/// `mail.log` in `env`'s directory, named by MAILLOG in its configuration.
fn maillog(env: &Env) -> std::path::PathBuf {
    let log = env.dir.join("mail.log");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    log
}

/// A queue runner (`-q1s -qf`) on `env`, its stderr to a file, stopped (SIGTERM; it must
/// exit 0) once its line for the delivery to bob@example.org is there: the records on
/// its stderr.
fn runner_records(env: &Env) -> Vec<(String, String)> {
    let err = env.dir.join("runner.err");
    let mut runner = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-q1s", "-qf"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    wait_until_or(
        Duration::from_secs(20),
        "the runner's delivery line on its stderr",
        || fs::read_to_string(&err).unwrap_or_default(),
        || {
            fs::read_to_string(&err)
                .unwrap_or_default()
                .contains(": to=<bob@example.org>, ")
        },
    );
    sigterm(&runner);
    let st = wait_exit(&mut runner, Duration::from_secs(10)).expect("the runner stops");
    assert!(st.success());
    records(&err)
}

#[test]
fn submission_and_refused_recipients_are_logged_to_maillog() {
    let env = Env::new();
    let log = env.dir.join("rsendmail/mail.log");
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    env.sendmail(
        &[
            "-odq",
            "-oeq",
            "bob@example.org",
            "nosuchuser",
            "a@@example.org",
        ],
        MSG,
    )
    // An unknown user among the refused: 67, as sendmail exits (compat case
    // refused-unknown-and-syntax-odq).
    .code(67);
    let id = env.only_id();
    let lines = records(&log);
    let texts: Vec<&str> = lines.iter().map(|(_, t)| t.as_str()).collect();
    assert!(lines.iter().all(|(p, _)| p == "rsendmail"), "{lines:?}");
    // sendmail's lines: one per refused recipient, with its reason, then the entry.
    for want in [
        format!("{id}: a@@example.org... Invalid route address"),
        format!("{id}: nosuchuser... User unknown"),
    ] {
        assert_eq!(
            texts.iter().filter(|t| **t == want).count(),
            1,
            "{want:?} in {texts:#?}"
        );
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with(&format!("{id}: from=<root>, size=")) && t.contains("nrcpts=1")),
        "{texts:#?}"
    );
    // Created for the owner and group only, the group writing it (users' submissions
    // hold the spool's group).
    let md = fs::metadata(&log).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o660, "{:o}", md.mode());
    // Appended, never truncated: a second submission adds its lines.
    let before = lines.len();
    env.sendmail(&["-odq", "carol@example.org"], MSG).code(0);
    assert_eq!(records(&log).len(), before + 1);
}

#[test]
fn a_delivery_is_logged_with_its_status() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    let log = maillog(&env);
    env.sendmail(&["-odi", "bob@example.org"], MSG).code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    let lines = records(&log);
    let sent: Vec<&(String, String)> = lines
        .iter()
        .filter(|(_, t)| t.contains(": to=<bob@example.org>, "))
        .collect();
    assert_eq!(sent.len(), 1, "{lines:#?}");
    let (program, text) = sent[0];
    assert_eq!(program, "rsendmail-deliver");
    assert!(
        text.contains(&format!("relay=127.0.0.1 [127.0.0.1]:{}", sink.port))
            || text.contains("relay=127.0.0.1"),
        "{text}"
    );
    assert!(
        text.ends_with(", stat=Sent") || text.contains(", stat=Sent ("),
        "{text}"
    );
    assert!(text.contains("dsn=2.0.0"), "{text}");
}

/// A symlink or a hard link at the log's path is never followed or written (root could
/// be made to append to any file), nor, for root, a file another user owns: it is not
/// opened, which the run says, and the mail is taken all the same.
#[test]
fn a_planted_log_file_is_not_written() {
    let env = Env::new();
    let target = env.dir.join("precious");
    fs::write(&target, "keep\n").unwrap();
    let log = env.dir.join("mail.log");
    std::os::unix::fs::symlink(&target, &log).unwrap();
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let r = env.sendmail(&["-odq", "bob@example.org"], MSG);
    r.code(0).stdout_is("");
    // The admin hears of it (see an_unusable_maillog_is_reported_once).
    assert!(
        r.stderr.contains(&format!(
            "cannot open MAILLOG {}: it is a symbolic link, not a regular file (never \
             opened)",
            log.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");
    fs::remove_file(&log).unwrap();
    fs::hard_link(&target, &log).unwrap();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");
    fs::remove_file(&log).unwrap();
    if is_root() {
        fs::write(&log, "").unwrap();
        std::os::unix::fs::chown(&log, Some(other_user().uid), None).unwrap();
        fs::set_permissions(&log, fs::Permissions::from_mode(0o666)).unwrap();
        // Not opened (said, with the file), nothing written to it; the mail is taken
        // (an unsafe log file stops no mail: the lines go to syslog).
        let r = env.sendmail(&["-odq", "bob@example.org"], MSG);
        r.code(0);
        assert!(
            r.stderr
                .contains(&format!("cannot open MAILLOG {}", log.display())),
            "{}",
            r.stderr
        );
        assert_eq!(fs::metadata(&log).unwrap().len(), 0);
        // Root's own file is written.
        std::os::unix::fs::chown(&log, Some(0), None).unwrap();
        fs::set_permissions(&log, fs::Permissions::from_mode(0o660)).unwrap();
        env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
        assert_eq!(records(&log).len(), 1);
    }
}

#[test]
fn maillog_must_be_an_absolute_path() {
    let env = Env::with_config("MAILLOG mail.log\n");
    env.sendmail(&["-odq", "bob@example.org"], MSG)
        .code(78)
        .stdout_is(&format!(
            "{}: line 6: invalid MAILLOG mail.log: not an absolute path\n",
            env.conf.display()
        ));
    assert!(env.entries().is_empty());
}

/// No MAILLOG and no syslog: the periodic runner logs to its stderr; a one-shot
/// submission writes nothing there (its stderr is sendmail's interface).
#[test]
fn without_maillog_or_syslog_a_runner_logs_to_stderr() {
    if syslog_available() {
        unavailable("a machine without a syslog socket");
        return;
    }
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    env.sendmail(&["-odq", "bob@example.org"], MSG)
        .code(0)
        .stderr_is("");
    let lines = runner_records(&env);
    assert!(
        lines
            .iter()
            .any(|(p, t)| p == "rsendmail-deliver" && t.contains("stat=Sent")),
        "{lines:#?}"
    );
    // Detached (`-q1s` without -qf): stdin and stdout go to /dev/null, stderr stays.
    env.sendmail(&["-odq", "carol@example.org"], MSG).code(0);
    let err = env.dir.join("detached.err");
    let st = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-q1s"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    let line = || {
        fs::read_to_string(&err)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains(": to=<carol@example.org>, ") && l.contains("stat=Sent"))
            .map(str::to_string)
    };
    wait_until_or(
        Duration::from_secs(20),
        "the detached runner's delivery line on its stderr",
        || fs::read_to_string(&err).unwrap_or_default(),
        || line().is_some(),
    );
    // Stop it: the runner leads the session of the process that wrote the line.
    let line = line().unwrap();
    let pid: i32 = line
        .split_once("rsendmail-deliver[")
        .and_then(|(_, r)| r.split_once(']'))
        .and_then(|(p, _)| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let sid: i32 = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

/// A delivery that fails says why in the log, in the words `-v` and `mailq` use; a
/// recipient the SMTP server refuses is logged with the reply it got.
#[test]
fn failures_are_logged_with_their_reasons() {
    let port = crate::harness::closed_tcp_port();
    let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\nPORT {port}\n"));
    let log = maillog(&env);
    env.sendmail(&["-odi", "bob@example.org"], MSG).code(0);
    let lines = records(&log);
    assert!(
        lines.iter().any(|(p, t)| p == "rsendmail-deliver"
            && t.contains(": to=<bob@example.org>, ")
            && t.contains(", dsn=4.4.1, stat=Deferred: Connection refused by [127.0.0.1]")),
        "{lines:#?}"
    );
    let dialogue = "HELO localhost\r\nMAIL FROM:<root>\r\nRCPT TO:<nosuchuser>\r\nQUIT\r\n";
    let r = env.sendmail(&["-bs", "-odq"], dialogue.as_bytes());
    assert!(
        r.stdout.contains("550 5.1.1 <nosuchuser>... User unknown"),
        "{}",
        r.stdout
    );
    let lines = records(&log);
    assert!(
        // (-bs is served by rsendmail-deliver.)
        lines.iter().any(|(p, t)| p == "rsendmail-deliver"
            && t.starts_with("NOQUEUE: reject: RCPT from ")
            && t.ends_with(": 550 5.1.1 <nosuchuser>... User unknown")),
        "{lines:#?}"
    );
}

/// The one line a one-shot process prints on its stderr when MAILLOG is set but not
/// used, and where lines go instead.
fn maillog_warning(stderr: &str, what: &str) -> String {
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("MAILLOG")).collect();
    assert_eq!(warnings.len(), 1, "one warning about {what}:\n{stderr}");
    let w = warnings[0];
    assert!(w.starts_with("rsendmail: warning: "), "{w}");
    let instead = if syslog_available() {
        "; logging to syslog"
    } else {
        "; nothing is logged (no syslog socket)"
    };
    assert!(w.ends_with(instead), "{w}");
    w.to_string()
}

/// A MAILLOG that cannot be used (a symbolic link, a FIFO, a directory, a missing
/// directory) is a configuration error the admin hears about: once per submission, on
/// stderr (as sendmail prints its configuration warnings) even when rsendmail-deliver
/// runs after rsendmail; the mail is taken all the same, with the same exit status.
#[test]
fn an_unusable_maillog_is_reported_once() {
    let port = crate::harness::closed_tcp_port();
    let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\nPORT {port}\n"));
    let dir = env.dir.join("rsendmail-logs");
    fs::create_dir_all(&dir).unwrap();
    let link = dir.join("link.log");
    std::os::unix::fs::symlink(dir.join("target"), &link).unwrap();
    let fifo = dir.join("fifo.log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let cases = [
        (
            link,
            "it is a symbolic link, not a regular file (never opened)",
        ),
        (fifo, "it is a FIFO, not a regular file (never opened)"),
        (
            dir.clone(),
            "it is a directory, not a regular file (never opened)",
        ),
        (dir.join("missing/mail.log"), "No such file or directory"),
    ];
    for (n, (path, reason)) in cases.iter().enumerate() {
        env.add_config(&format!("MAILLOG {}\n", path.display()));
        let r = env.sendmail(&["-odi", "bob@example.org"], MSG);
        r.code(0).stdout_is("");
        let w = maillog_warning(&r.stderr, &path.display().to_string());
        assert!(
            w.contains(&format!(
                "cannot open MAILLOG {}: {reason}; ",
                path.display()
            )),
            "{w}"
        );
        // Taken, tried (the relay refuses the connection) and queued.
        assert_eq!(env.entries().len(), n + 1, "{}", env.listing());
    }
    assert!(!dir.join("target").exists());
}

/// MAILLOG is looked at before it is opened: a FIFO (an open for writing reaches
/// whoever reads it) is refused by its kind and never opened, a reader waiting on it
/// too (no open of it is seen: inotify's `IN_OPEN`); the mail is taken all the same.
/// As root, `rsendmail-admin check` names a user's FIFO, and a user's symbolic link at
/// MAILLOG's own path, by their kind.
#[test]
fn a_maillog_that_is_not_a_regular_file_is_never_opened() {
    use std::os::unix::fs::OpenOptionsExt;
    let env = Env::new();
    let fifo = env.dir.join("fifo.log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A reader holds it open: an open for writing would succeed and reach it.
    let reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let opens = crate::harness::watch_opens(&fifo);
    env.add_config(&format!("MAILLOG {}\n", fifo.display()));
    let r = env.sendmail(&["-odq", "bob@example.org"], MSG);
    r.code(0);
    let w = maillog_warning(&r.stderr, &fifo.display().to_string());
    assert!(
        w.contains(&format!(
            "cannot open MAILLOG {}: it is a FIFO, not a regular file (never opened)",
            fifo.display()
        )),
        "{w}"
    );
    assert_eq!(opens.count(), 0, "the FIFO was opened");
    drop(reader);
    if !crate::harness::can_switch_user() {
        return;
    }
    let u = crate::harness::test_user();
    let admin = env!("CARGO_BIN_EXE_rsendmail-admin");
    std::os::unix::fs::chown(&fifo, Some(u.uid), Some(u.gid)).unwrap();
    let link = env.dir.join("link.log");
    std::os::unix::fs::symlink(env.dir.join("nowhere.log"), &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(u.uid), Some(u.gid)).unwrap();
    for (path, kind) in [(&fifo, "FIFO"), (&link, "symbolic link")] {
        let conf = fs::read_to_string(&env.conf).unwrap();
        let kept: Vec<&str> = conf
            .lines()
            .filter(|l| !l.starts_with("MAILLOG "))
            .collect();
        fs::write(
            &env.conf,
            format!("{}\nMAILLOG {}\n", kept.join("\n"), path.display()),
        )
        .unwrap();
        let out = Command::new(admin)
            .args(["-C", env.conf.to_str().unwrap(), "check"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let fail = stdout
            .lines()
            .find(|l| l.starts_with("FAIL files:") && l.contains("MAILLOG"))
            .unwrap_or_else(|| panic!("{kind}: no FAIL files line:\n{stdout}"));
        assert!(
            fail.contains(&format!("the file {} (", path.display()))
                && fail.contains(&format!(
                    ") is a {kind} owned by the user \"{}\"",
                    crate::harness::TEST_USER
                )),
            "{kind}: {fail}"
        );
    }
}

/// MAILLOG on a full file system: the write fails, the process says so once and logs
/// elsewhere from then on; the mail is taken all the same. A real full file system is a
/// tiny tmpfs, which only root can mount.
#[test]
fn a_full_maillog_is_reported_once() {
    if !is_root() {
        eprintln!("skipped: mounting a full file system needs root");
        return;
    }
    let port = crate::harness::closed_tcp_port();
    let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\nPORT {port}\n"));
    let mnt = env.dir.join("rsendmail-full");
    fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mnt);
    let log = mnt.join("mail.log");
    fs::write(&log, "").unwrap();
    // Fill it.
    let mut fill = fs::File::create(mnt.join("fill")).unwrap();
    while std::io::Write::write_all(&mut fill, &[0; 4096]).is_ok() {}
    drop(fill);
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let r = env.sendmail(&["-odi", "bob@example.org"], MSG);
    r.code(0).stdout_is("");
    let w = maillog_warning(&r.stderr, "a full file system");
    assert!(
        w.contains(&format!(
            "cannot write to MAILLOG {}: No space left on device; ",
            log.display()
        )),
        "{w}"
    );
    assert_eq!(env.entries().len(), 1, "{}", env.listing());
}

/// A long-running runner without syslog says once, on its stderr (its log then), that
/// MAILLOG is not used: not again when rsendmail has become rsendmail-deliver.
#[test]
fn a_runner_reports_an_unusable_maillog_once() {
    if syslog_available() {
        unavailable("a machine without a syslog socket");
        return;
    }
    let port = crate::harness::closed_tcp_port();
    let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\nPORT {port}\n"));
    let log = env.dir.join("mail.log");
    std::os::unix::fs::symlink(env.dir.join("target"), &log).unwrap();
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let lines = runner_records(&env);
    let warnings: Vec<&(String, String)> = lines
        .iter()
        .filter(|(_, t)| t.contains("MAILLOG"))
        .collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert_eq!(
        warnings[0].1,
        format!(
            "cannot open MAILLOG {}: it is a symbolic link, not a regular file (never \
             opened); logging to stderr",
            log.display()
        )
    );
}

/// Control characters in logged text from outside (here an SMTP server's reply) never
/// reach the file as they are: ESC, BEL and the rest are written as `\ooo`; non-ASCII
/// text is kept.
#[test]
fn control_characters_are_made_harmless_in_the_log() {
    if !crate::harness::servers::have_peer() {
        return;
    }
    let scratch = Env::new();
    let peer = crate::harness::servers::Peer::start(
        &scratch.dir,
        &[(
            "WRONG_REPLY",
            "RCPT 550 5.1.1 \x1b[2J\x1b]0;é\x07gone (test)",
        )],
    );
    let env = relay_env(peer.port, "");
    let log = maillog(&env);
    // Refused (EX_NOUSER, as for any recipient refused with -odi).
    env.sendmail(&["-odi", "bob@example.org"], MSG).code(67);
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    // The reply's text was made printable where it was read (src/text.rs); the log's
    // own escaping of what reaches it raw is `log::sanitize`'s unit test.
    assert!(
        text.contains("stat=550 5.1.1 ?[2J?]0;é?gone (test)"),
        "{text:?}"
    );
}

/// MAILLOG naming another of rsendmail's files (the configuration itself, auth.conf,
/// the aliases file, a file in the spool, the program) is never appended to, whoever
/// runs: the run says so once on its stderr, as for any MAILLOG it cannot use, and
/// takes the mail; the file is left as it was.
#[test]
fn maillog_naming_another_of_rsendmails_files_is_never_written() {
    let env = Env::new();
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, "bob|127.0.0.1:s3cret-pw\n").unwrap();
    fs::set_permissions(&auth, fs::Permissions::from_mode(0o600)).unwrap();
    let aliases = env.dir.join("aliases");
    fs::write(&aliases, "postmaster: root\n").unwrap();
    env.add_config(&format!(
        "AUTHPATH {}\nALIASES {}\n",
        auth.display(),
        aliases.display()
    ));
    let base = fs::read_to_string(&env.conf).unwrap();
    let in_spool = env.spool.join("maillog");
    let program = crate::harness::bin();
    for (named, what) in [
        (&env.conf, "the configuration file"),
        (&auth, "AUTHPATH"),
        (&aliases, "ALIASES"),
        (&in_spool, "the spool"),
        (&program, "the program"),
    ] {
        fs::write(&env.conf, format!("{base}MAILLOG {}\n", named.display())).unwrap();
        let before = fs::read(named).ok();
        let r = env.sendmail(&["-odq", "bob@example.org"], MSG);
        r.code(0);
        let w = maillog_warning(&r.stderr, what);
        assert!(
            w.contains(&format!("cannot open MAILLOG {}: ", named.display()))
                && w.contains(what)
                && w.contains("never a log"),
            "{w}"
        );
        if named == &env.conf {
            let now = fs::read_to_string(named).unwrap();
            assert_eq!(
                now,
                format!("{base}MAILLOG {}\n", named.display()),
                "{what}"
            );
        } else {
            assert_eq!(fs::read(named).ok(), before, "{what}");
        }
    }
}
