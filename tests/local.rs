//! Local delivery, aliases, `.forward`, newaliases, refused recipients, and delivery
//! reports (RFC 3464), checked with Python's `mailbox` and `email` packages.

use crate::harness::servers::{Peer, have_peer, start_peer};
use crate::harness::{
    Env, MSG, TEST_USER, as_user, can_switch_user, closed_tcp_port, is_root, make_user_spool,
    other_user, require, test_user, user_visible_bin, wait_until,
};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// An Env with a mail spool, an aliases file and (optionally) a smarthost.
fn local_env(aliases: &str, smarthost: Option<u16>) -> Env {
    let env = Env::new();
    let mail = env.dir.join("mail");
    fs::write(env.dir.join("aliases"), aliases).unwrap();
    env.add_config(&format!(
        "MAILSPOOL {}\nALIASES {}\n",
        mail.display(),
        env.dir.join("aliases").display()
    ));
    if let Some(p) = smarthost {
        env.add_config(&format!("SMARTHOST 127.0.0.1\nPORT {p}\n"));
    }
    env
}

fn mbox(env: &Env, user: &str) -> PathBuf {
    env.dir.join("mail").join(user)
}

/// Run Python code with `args` (sys.argv[1:]); its stdout.
fn python(code: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("python3");
    assert!(out.status.success(), "python failed: {code}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The messages of an mbox as Python's mailbox module reads them: one line each,
/// `from-line|Subject|Delivered-To|body-bytes`.
fn mbox_summary(path: &Path) -> Vec<String> {
    python(
        r#"
import mailbox, sys
for m in mailbox.mbox(sys.argv[1], create=False):
    body = m.get_payload(decode=False)
    print("%s|%s|%s|%d" % (m.get_from().split(" ")[0], m["Subject"], m["Delivered-To"], len(body.rstrip("\n") if isinstance(body, str) else "")))
"#,
        &[path.to_str().unwrap()],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// A directory anyone may write (for commands and files run as other users), sticky
/// as /tmp is: a user's spool may be made in it (a spool below a directory anyone may
/// rename things in is refused).
fn open_dir(env: &Env, name: &str) -> PathBuf {
    let d = env.dir.join(name);
    fs::create_dir_all(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o1777)).unwrap();
    // The scratch directory itself must be searchable by them too.
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    d
}

#[test]
fn newaliases_prints_sendmails_summary_and_errors() {
    let env = local_env(
        "# staff\npostmaster: root\nstaff: root,\n  daemon\n\"quoted name\": root\nbad line\nStaff: root\n",
        None,
    );
    let path = env.dir.join("aliases");
    let p = path.display();
    let want = format!(
        "{p}: line 6: missing colon\n{p}: line 7: Staff... Warning: duplicate alias name staff\n{p}: 4 aliases, longest 13 bytes, 58 bytes total\n"
    );
    let r = env.run_raw(
        &env.link("newaliases"),
        &["-C", env.conf.to_str().unwrap()],
        b"",
    );
    r.code(70).stdout_is(&want);
    env.sendmail(&["-bi"], b"").code(70).stdout_is(&want);
    fs::write(&path, "a: b\n").unwrap();
    env.sendmail(&["-bi"], b"")
        .code(0)
        .stdout_is(&format!("{p}: 1 aliases, longest 1 bytes, 2 bytes total\n"));
    fs::remove_file(&path).unwrap();
    env.sendmail(&["-bi"], b"").code(0).stdout_is(&format!(
        "newaliases: cannot open {p}: No such file or directory\n"
    ));
}

#[test]
fn unknown_users_and_loops_are_refused_at_submission() {
    let env = local_env(
        "loop1: loop2\nloop2: loop1\nlist: root, nosuchuser2\n",
        None,
    );
    // -oeq: the status alone (the default, print, also saves ~/dead.letter).
    for mode in ["-odq", "-odd", "-odb"] {
        env.sendmail(&[mode, "-oeq", "nosuchuser"], MSG)
            .code(67)
            .stdout_is("");
    }
    assert!(env.entries().is_empty(), "nothing queued");
    env.sendmail(&["-odq", "-oeq", "loop1"], MSG).code(64);
    env.sendmail(&["-odq", "-oeq", "|/bin/true"], MSG).code(64);
    assert!(env.entries().is_empty());
    // The other recipients are queued; the alias is expanded in the queue.
    env.sendmail(&["-odq", "-oeq", "list", "x@example.org"], MSG)
        .code(67);
    let e = env.only_entry();
    assert!(
        e.contains("\nrcpt root from=list final=list@test.example ctl=list\n"),
        "{e}"
    );
    assert!(e.contains("\nrcpt x@example.org\n"), "{e}");
    assert!(!e.contains("nosuchuser2"), "{e}");
    // -oee: mailed back, exit 0; under -odq too the report from <> goes to the sender at
    // once, as sendmail sends every report it makes (compat differences/t-egrp-odq).
    fs::remove_file(&env.entries()[0]).unwrap();
    env.sendmail(&["-odq", "-oee", "nosuchuser"], MSG)
        .code(0)
        .stdout_is("");
    assert!(env.entries().is_empty(), "{}", env.listing());
    let mbox = fs::read_to_string(env.dir.join("mail/root")).unwrap();
    assert!(mbox.contains("\nReturn-Path: <>\n"), "{mbox}");
    // sendmail's form: the code, the status and the reason (bounce-local-unknown).
    assert!(
        mbox.contains("Diagnostic-Code: X-Unix; 550 5.1.1 User unknown"),
        "{mbox}"
    );
}

#[test]
fn print_mode_saves_dead_letter_in_the_callers_home() {
    if !can_switch_user() {
        return;
    }
    let env = local_env("", None);
    open_dir(&env, "spool-parent");
    let home = test_user().home;
    let dead = home.join("dead.letter");
    let _ = fs::remove_file(&dead);
    // The test user runs a copy with a config of its own (its own spool).
    let conf = env.dir.join("spool-parent/user.conf");
    make_user_spool(&env.dir.join("spool-parent/spool"));
    fs::write(
        &conf,
        format!(
            "SPOOLDIR {}\nMAILNAME test.example\nMAILSPOOL {}\n",
            env.dir.join("spool-parent/spool").display(),
            env.dir.join("spool-parent/mail").display()
        ),
    )
    .unwrap();
    let bin = user_visible_bin(&env.dir.join("spool-parent"), "sendmail");
    // With -X, the traffic log shows what was saved and the line saying so, as
    // sendmail's does (compat-tests/cases/xlog-bounce-local-odi).
    let xlog = env.dir.join("spool-parent/xlog");
    let xlog_arg = format!("-X{}", xlog.display());
    let out = as_user(
        &bin,
        &[
            "-C",
            conf.to_str().unwrap(),
            "-odq",
            &xlog_arg,
            "nosuchuser",
        ],
        &[],
        MSG,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(67), "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "nosuchuser... User unknown\n{0}... Saved message in {0}\n",
            dead.display()
        )
    );
    let logged: Vec<String> = fs::read_to_string(&xlog)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(" >>> ").map(|(_, t)| t.to_string()))
        .collect();
    // What is said of the command line's address first, before the message's lines,
    // as sendmail logs it (compat-tests/cases/xlog-v-unknown-local); then the message
    // as saved.
    assert_eq!(
        logged.first().map(String::as_str),
        Some("nosuchuser... User unknown"),
        "{logged:?}"
    );
    assert!(
        logged
            .get(1)
            .is_some_and(|l| l.starts_with(&format!("From {TEST_USER} "))),
        "{logged:?}"
    );
    assert!(logged.contains(&"hello".to_string()), "{logged:?}");
    assert_eq!(
        logged.last(),
        Some(&format!("{0}... Saved message in {0}", dead.display())),
        "{logged:?}"
    );
    let text = fs::read_to_string(&dead).unwrap();
    assert_eq!(text.matches("\nhello\n").count(), 1);
    assert!(text.starts_with(&format!("From {TEST_USER} ")), "{text}");
    assert!(text.contains(&format!("\nReturn-Path: <{TEST_USER}>\nReceived: ")));
    assert!(text.ends_with("\nhello\n\n"), "{text:?}");
    // The `From:` added as sendmail's copy has it: the login alone, not qualified as
    // the queued one is (compat-tests/cases/xlog-bounce-local-odi).
    let from = text
        .lines()
        .find(|l| l.starts_with("From: "))
        .unwrap_or_default();
    assert!(
        from == format!("From: {TEST_USER}") || from.ends_with(&format!(" <{TEST_USER}>")),
        "{text}"
    );
    let md = fs::metadata(&dead).unwrap();
    assert_eq!(md.uid(), fs::metadata(&home).unwrap().uid());
    assert_ne!(md.uid(), 0);
    // A failure in an interactive delivery: the same (recorded from 8.17 with and
    // without a terminal: dead.letter, no report, 67).
    if have_peer() {
        let peer = Peer::start(&env.dir, &[]);
        fs::write(
            &conf,
            format!(
                "SPOOLDIR {}\nMAILNAME test.example\nMAILSPOOL {}\nSMARTHOST 127.0.0.1\nPORT {}\n",
                env.dir.join("spool-parent/spool").display(),
                env.dir.join("spool-parent/mail").display(),
                peer.port
            ),
        )
        .unwrap();
        let out = as_user(
            &bin,
            &[
                "-C",
                conf.to_str().unwrap(),
                "-odi",
                &xlog_arg,
                "reject5-z@example.org",
            ],
            &[],
            MSG,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(67), "{stdout}");
        assert_eq!(
            stdout,
            format!("{0}... Saved message in {0}\n", dead.display())
        );
        let log = fs::read_to_string(&xlog).unwrap();
        assert_eq!(
            log.matches(&format!(
                " >>> {0}... Saved message in {0}\n",
                dead.display()
            ))
            .count(),
            2,
            "{log}"
        );
        assert_eq!(log.matches(" >>> hello\n").count(), 2, "{log}");
        assert_eq!(
            fs::read_to_string(&dead)
                .unwrap()
                .matches("\nhello\n")
                .count(),
            2
        );
        assert!(
            !env.dir.join("spool-parent/mail").join(TEST_USER).exists(),
            "no report"
        );
        let left = fs::read_dir(env.dir.join("spool-parent/spool"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("qf"))
            .count();
        assert_eq!(left, 0);
    }
    let _ = fs::remove_file(&dead);
}

/// When `~/dead.letter` cannot be written (the home not writable, `dead.letter` a
/// directory or a symbolic link), ErrorMode p mails the message back to the sender, as
/// sendmail's savemail falls back from dead.letter to mailing it (the report holds the
/// whole message), and says so; nothing is lost without a word. Refusals at submission
/// and failures of the delivery that follows alike. The test user's home is a
/// directory of the test's, mounted over it in a private mount namespace.
#[test]
fn an_unwritable_dead_letter_mails_the_message_back() {
    if !can_switch_user() || !Path::new("/usr/bin/unshare").exists() || !have_peer() {
        return;
    }
    let env = local_env("", None);
    let dir = open_dir(&env, "shared");
    let user = test_user();
    let home = dir.join("home");
    let spool = dir.join("spool");
    let mail = dir.join("mail");
    make_user_spool(&spool);
    fs::create_dir(&mail).unwrap();
    fs::set_permissions(&mail, fs::Permissions::from_mode(0o1777)).unwrap();
    let peer = Peer::start(&env.dir, &[]);
    let conf = dir.join("user.conf");
    fs::write(
        &conf,
        format!(
            "SPOOLDIR {}\nMAILNAME test.example\nMAILSPOOL {}\nSMARTHOST 127.0.0.1\nPORT {}\n",
            spool.display(),
            mail.display(),
            peer.port
        ),
    )
    .unwrap();
    let bin = user_visible_bin(&dir, "sendmail");
    let dead = user.home.join("dead.letter");
    let run = |args: &[&str]| {
        let mut all = vec![
            "-m",
            "--",
            "sh",
            "-c",
            "mount --bind \"$1\" \"$2\" && shift 2 && exec runuser -u \"$@\"",
            "sh",
            home.to_str().unwrap(),
            user.home.to_str().unwrap(),
            TEST_USER,
            "--",
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            bin.to_str().unwrap(),
            "-C",
            conf.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        env.run_raw(Path::new("/usr/bin/unshare"), &all, MSG)
    };
    let reports = || {
        let p = mail.join(TEST_USER);
        let text = fs::read_to_string(&p).unwrap_or_default();
        let _ = fs::remove_file(&p);
        text
    };
    let said = |why: &str| {
        format!(
            "{0}... Cannot save message: {why}; returned to the sender\n",
            dead.display()
        )
    };
    // (setup, arguments, status, the refusal's line, why dead.letter was not written)
    let dead_in_home = home.join("dead.letter");
    let kept = home.join("kept");
    let cases: [(&str, &[&str], i32, &str, String); 4] = [
        (
            "home 0555",
            &["-odi", "nosuchuser"],
            67,
            "nosuchuser... User unknown\n",
            format!("cannot create {}: Permission denied", dead.display()),
        ),
        (
            "a directory",
            &["-odi", "bad <"],
            64,
            "bad <... Unbalanced '<'\n",
            format!("cannot open {}: Is a directory", dead.display()),
        ),
        (
            "a symbolic link",
            &["-odq", "nosuchuser"],
            67,
            "nosuchuser... User unknown\n",
            String::new(),
        ),
        (
            "a directory",
            &["-odi", "reject5-z@example.org"],
            67,
            "",
            String::new(),
        ),
    ];
    for (setup, args, code, refusal, why) in cases {
        let _ = fs::remove_dir_all(&home);
        fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid)).unwrap();
        match setup {
            "home 0555" => fs::set_permissions(&home, fs::Permissions::from_mode(0o555)).unwrap(),
            "a directory" => {
                fs::create_dir(&dead_in_home).unwrap();
                std::os::unix::fs::chown(&dead_in_home, Some(user.uid), Some(user.gid)).unwrap();
            }
            _ => {
                fs::write(&kept, "").unwrap();
                std::os::unix::fs::chown(&kept, Some(user.uid), Some(user.gid)).unwrap();
                std::os::unix::fs::symlink(user.home.join("kept"), &dead_in_home).unwrap();
            }
        }
        let r = run(args);
        let what = format!("{setup} {args:?}\n{}\n{}", r.stdout, r.stderr);
        assert_eq!(r.code, code, "{what}");
        assert!(r.stdout.starts_with(refusal), "{what}");
        let line = r.stdout.get(refusal.len()..).unwrap_or_default();
        if why.is_empty() {
            assert!(
                line.starts_with(&format!("{}... Cannot save message: ", dead.display()))
                    && line.ends_with("; returned to the sender\n"),
                "{what}"
            );
        } else {
            assert_eq!(line, said(&why), "{what}");
        }
        if args[0] == "-odq" {
            // Queued: the report goes with the next queue run.
            run(&["-qf"]).code(0);
        }
        let text = reports();
        assert_eq!(
            text.matches("\nSubject: Returned mail: ").count(),
            1,
            "{what}\n{text}"
        );
        assert!(
            text.contains("\nhello\n"),
            "the message returned: {what}\n{text}"
        );
        if setup == "a symbolic link" {
            assert_eq!(fs::read_to_string(&kept).unwrap(), "", "{what}");
        }
        let left = fs::read_dir(&spool)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("qf"))
            .count();
        assert_eq!(left, 0, "{what}");
    }
}

fn write_tmp(env: &Env, bytes: &[u8]) -> PathBuf {
    let p = env.dir.join(format!("stdin-{}", bytes.len()));
    fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn mailbox_delivery_is_mboxrd_byte_for_byte() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let msg = b"Subject: mbox\n\nFrom the start\n>From quoted\nlast line without newline";
    env.sendmail(&["-odq", "root"], msg).code(0);
    let queued = env.only_message();
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    let got = fs::read_to_string(mbox(&env, "root")).unwrap();
    let first = got.lines().next().unwrap();
    // `From root@test.example Sun Nov 22 08:06:27 2026`
    let date = first.strip_prefix("From root@test.example ").expect(first);
    assert_eq!(date.len(), 24, "{first}");
    let quoted = queued
        .replace("\nFrom the start", "\n>From the start")
        .replace("\n>From quoted", "\n>>From quoted");
    let want = format!(
        "{first}\nReturn-Path: <root@test.example>\nDelivered-To: root@test.example\n{quoted}\n\n"
    );
    assert_eq!(got, want);
    let md = fs::metadata(mbox(&env, "root")).unwrap();
    assert_eq!(md.mode() & 0o777, 0o600);
    // A second message is appended after the blank line; Python reads both.
    env.sendmail(&["-odi", "root"], MSG).code(0);
    let s = mbox_summary(&mbox(&env, "root"));
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(
        s[1].starts_with("root@test.example|test|root@test.example|"),
        "{s:?}"
    );
}

/// `-X`: a message appended to a local mailbox is logged line by line as written
/// there (`>>> From ...`, `Return-Path:`, the header, the quoted body, the blank line
/// that ends it), after the message as read, as a message saved in dead.letter is
/// (compat case differences/xlog-local-mailbox-odi: sendmail logs its local mailer's
/// input there).
#[test]
fn traffic_log_holds_the_lines_appended_to_a_mailbox() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let xlog = env.dir.join("xlog");
    let x = xlog.to_str().unwrap();
    let msg = b"Subject: mbox\n\nFrom the start\nlast\n";
    env.sendmail(&["-X", x, "-odi", "root"], msg).code(0);
    let got = fs::read_to_string(mbox(&env, "root")).unwrap();
    let log = fs::read_to_string(&xlog).unwrap();
    let after_eof: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.ends_with(" <<< [EOF]"))
        .skip(1)
        .map(|l| l.split_once(" >>> ").map_or(l, |(_, rest)| rest))
        .collect();
    let written: Vec<&str> = got.lines().collect();
    assert_eq!(after_eof, written, "{log}");
    assert!(written.contains(&">From the start"), "{got}");
}

/// `-X`: a `|command` alias, which runs as another uid, gets its standard descriptors
/// alone: not the traffic log, no spool file, and nothing the caller left open across
/// its exec (here descriptor 7, not close-on-exec). Its shell lists `/proc/$$/fd`.
#[test]
fn a_command_gets_no_descriptor_but_its_standard_ones_under_traffic_logging() {
    if !is_root() {
        return;
    }
    let out = tempfile_dir();
    let env = local_env(
        &format!("fds: \"|ls -l /proc/$$/fd > {}/fds\"\n", out.display()),
        None,
    );
    let xlog = env.dir.join("xlog");
    let left_open = fs::File::open("/dev/null").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&left_open);
    let mut cmd = Command::new(env.link("sendmail"));
    cmd.args(["-C", env.conf.to_str().unwrap(), "-X"])
        .arg(&xlog)
        .args(["-odi", "fds"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only dup2(2) between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::dup2(fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), MSG).unwrap();
    let done = child.wait_with_output().unwrap();
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // `N -> TARGET` for each descriptor of the shell that runs the command.
    let listing = fs::read_to_string(out.join("fds")).unwrap();
    let fds: Vec<(u32, &str)> = listing
        .lines()
        .filter_map(|l| l.split_once(" -> "))
        .filter_map(|(a, b)| Some((a.rsplit(' ').next()?.parse().ok()?, b)))
        .collect();
    let target = |n: u32| fds.iter().find(|(f, _)| *f == n).map(|(_, t)| *t);
    assert!((0..3).all(|n| target(n).is_some()), "{listing}");
    // Beyond its standard ones, only what the shell makes itself: a copy of its
    // output saved while the redirection lasts (dash keeps it at 10).
    for (n, t) in &fds {
        assert!(
            *n < 3 || Some(*t) == target(2),
            "descriptor {n} ({t}) reached the command:\n{listing}"
        );
    }
    assert!(fs::read_to_string(&xlog).unwrap().contains("<<< [EOF]"));
    drop(left_open);
    let _ = fs::remove_dir_all(&out);
}

/// A directory every user may write, for a command's output.
fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rsendmail-fds-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    fs::create_dir(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// A mailbox has no line limit: the long `To:` and the long lines that SMTP delivery
/// folds are written to it as queued.
#[test]
fn mailbox_gets_long_header_fields_and_lines_unchanged() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    env.sendmail(&["-odq", "root"], &crate::folding::long_message())
        .code(0);
    let queued = env.only_message();
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    let got = fs::read_to_string(mbox(&env, "root")).unwrap();
    let first = got.lines().next().unwrap();
    assert_eq!(
        got,
        format!(
            "{first}\nReturn-Path: <root@test.example>\nDelivered-To: root@test.example\n{queued}\n"
        )
    );
    let to = format!(
        "\nTo: {}\nSubject: folded fields\n",
        crate::folding::addresses()
    );
    assert!(got.contains(&to), "{got}");
    assert!(got.contains(&format!("\n{}\n", "x".repeat(2500))));
}

#[test]
fn unsafe_mailboxes_are_refused_and_stay_queued() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let target = env.dir.join("elsewhere");
    fs::write(&target, "").unwrap();
    std::os::unix::fs::symlink(&target, mbox(&env, "root")).unwrap();
    env.sendmail(&["-odi", "root"], MSG).code(0);
    assert_eq!(fs::metadata(&target).unwrap().len(), 0);
    let q = env.mailq(&[]);
    assert!(q.contains("symbolic link"), "{q}");
    // Another user's file as root's mailbox: refused too.
    fs::remove_file(mbox(&env, "root")).unwrap();
    fs::write(mbox(&env, "root"), "").unwrap();
    std::os::unix::fs::chown(mbox(&env, "root"), Some(other_user().uid), None).unwrap();
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(fs::metadata(mbox(&env, "root")).unwrap().len(), 0);
    assert_eq!(env.entries().len(), 1);
    // A FIFO as root's mailbox, a reader waiting on it: refused by its kind and never
    // opened (an open would reach the reader; without one, it would wait for ever).
    fs::remove_file(mbox(&env, "root")).unwrap();
    nix::unistd::mkfifo(
        &mbox(&env, "root"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let reader = {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(mbox(&env, "root"))
            .unwrap()
    };
    let opens = crate::harness::watch_opens(&mbox(&env, "root"));
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(opens.count(), 0, "the FIFO was opened");
    drop(reader);
    assert_eq!(env.entries().len(), 1);
    let q = env.mailq(&[]);
    assert!(q.contains("a FIFO"), "{q}");
    // Fixed: delivered by the next run.
    fs::remove_file(mbox(&env, "root")).unwrap();
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty());
    assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 1);
}

#[test]
fn aliases_of_every_kind() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let pre = local_env("", Some(peer.port));
    let out = open_dir(&pre, "out");
    // A user's :include: file: its commands run as that user.
    let members = out.join("members");
    fs::write(
        &members,
        format!(
            "m1@example.org\n# comment\nm2@example.org, \\root\n\"|id -u > {}/user-id\"\n",
            out.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::chown(&members, Some(test_user().uid), None).unwrap();
    let aliases = format!(
        "team: remote@example.org, \\root, :include:{m}, \"|id -u > {o}/prog-id; cat > {o}/prog-msg\", {o}/file.mbox\nowner-team: teamboss@example.org\nself: \\root\n",
        m = members.display(),
        o = out.display()
    );
    fs::write(pre.dir.join("aliases"), aliases).unwrap();
    pre.sendmail(&["-odq", "team"], MSG).code(0);
    let e = pre.only_entry();
    for want in [
        "rcpt remote@example.org sender=teamboss@example.org from=team final=team@test.example fanout=1 ctl=team",
        "rcpt \\root ",
        "rcpt m1@example.org ",
        &format!(
            // The user's file: its members under `user:uid:gid::include:/path`, as
            // sendmail's mailq -v shows them (bp-v-alias-include-user).
            "rcpt |id%20-u%20>%20{}/user-id sender=teamboss@example.org owner={} from=:include:{} final=team@test.example fanout=1 ctl={TEST_USER}:{}:{}::include:{}",
            out.display(),
            test_user().uid,
            members.display(),
            test_user().uid,
            test_user().gid,
            members.display()
        ),
        &format!(
            "rcpt {}/file.mbox sender=teamboss@example.org owner=0 from=team final=team@test.example fanout=1 ctl=team",
            out.display()
        ),
    ] {
        assert!(e.contains(want), "{want:?} in\n{e}");
    }
    // The local targets are written first, each recipient with its place in the queue
    // order.
    let rcpts: Vec<&str> = e.lines().filter(|l| l.starts_with("rcpt ")).collect();
    assert!(rcpts.iter().all(|l| l.contains(" place=")), "{e}");
    pre.sendmail(&["-qf"], b"").code(0);
    assert!(pre.entries().is_empty(), "{}", pre.listing());
    // Remote members: one transaction from what owner-team names (sendmail: `bp-v-alias-owner`).
    let msgs = peer.wait_for(1, Duration::from_secs(10));
    assert_eq!(msgs.len(), 1);
    assert!(
        msgs[0]
            .0
            .contains("\"mail_from\": \"teamboss@example.org\""),
        "{}",
        msgs[0].0
    );
    for r in ["remote@example.org", "m1@example.org", "m2@example.org"] {
        assert!(msgs[0].0.contains(r), "{}", msgs[0].0);
    }
    // The mailbox once, the commands as their owners (never root), the file appended.
    assert_eq!(mbox_summary(&mbox(&pre, "root")).len(), 1);
    let prog_id: u32 = fs::read_to_string(out.join("prog-id"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let user_id: u32 = fs::read_to_string(out.join("user-id"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(
        prog_id, 0,
        "a command from root's aliases runs as the default user"
    );
    assert_eq!(
        user_id,
        test_user().uid,
        "a command from a user's :include: runs as that user"
    );
    assert!(
        fs::read_to_string(out.join("prog-msg"))
            .unwrap()
            .ends_with("\nhello\n")
    );
    let f = out.join("file.mbox");
    assert_eq!(mbox_summary(&f).len(), 1);
    assert_ne!(fs::metadata(&f).unwrap().uid(), 0);
}

#[test]
fn include_with_a_thousand_members() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env("", Some(peer.port));
    let members: String = (0..1000)
        .map(|i| format!("member{i}@example.org\n"))
        .collect();
    fs::write(env.dir.join("members"), members).unwrap();
    fs::write(
        env.dir.join("aliases"),
        format!("biglist: :include:{}\n", env.dir.join("members").display()),
    )
    .unwrap();
    env.sendmail(&["-odq", "biglist"], MSG).code(0);
    let e = env.only_entry();
    assert_eq!(e.matches("\nrcpt member").count(), 1000);
    env.sendmail(&["-qf"], b"").code(0);
    let msgs = peer.wait_for(1, Duration::from_secs(20));
    let total: usize = msgs
        .iter()
        .map(|(j, _)| j.matches("@example.org\"").count())
        .sum();
    assert_eq!(total, 1000, "every member once");
    env.wait_until_empty(Duration::from_secs(10));
}

/// Tests that write the test user's `.forward` take turns: the threads of this run, and
/// other runs of the suite on this machine (an flock, held until the turn is dropped).
/// A turn starts and ends with no `.forward` in the test user's home, also when the test
/// holding it fails (the drop runs while the panic unwinds), so a failed test never
/// leaves a `.forward` behind to fail the tests after it.
pub(crate) fn forward_turn() -> ForwardTurn {
    let f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(std::env::temp_dir().join("rsendmail-tests-forward.lock"))
        .unwrap();
    f.lock().unwrap();
    remove_test_user_forward();
    ForwardTurn { _lock: f }
}

/// A turn for a test that delivers to the test user's mailbox and counts on no
/// `.forward` being there: a shared hold of [`forward_turn`]'s lock, so that such tests
/// run together but never while a test has written the test user's `.forward`.
pub(crate) fn mailbox_turn() -> fs::File {
    let f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(std::env::temp_dir().join("rsendmail-tests-forward.lock"))
        .unwrap();
    f.lock_shared().unwrap();
    f
}

/// The turn [`forward_turn`] gives: the lock, and the clean-up when it ends.
pub(crate) struct ForwardTurn {
    _lock: fs::File,
}

impl Drop for ForwardTurn {
    fn drop(&mut self) {
        // Never a panic here: this runs while a failed test unwinds.
        let _ = fs::remove_file(test_user().home.join(".forward"));
    }
}

fn remove_test_user_forward() {
    match fs::remove_file(test_user().home.join(".forward")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("removing the test user's .forward: {e}"),
    }
}

/// The test user's `.forward`, written as `text`, owned by the user, mode 0644.
pub(crate) fn write_forward(text: &str) -> PathBuf {
    let fwd = test_user().home.join(".forward");
    fs::write(&fwd, text).unwrap();
    std::os::unix::fs::chown(&fwd, Some(test_user().uid), Some(test_user().gid)).unwrap();
    fs::set_permissions(&fwd, fs::Permissions::from_mode(0o644)).unwrap();
    fwd
}

#[test]
fn forward_files_are_honoured_only_when_safe() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let _turn = forward_turn();
    // A strict relay: a target that is not an address must never reach it.
    let Some((_scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let env = local_env("", Some(peer.port));
    let home = test_user().home;
    let fwd = home.join(".forward");
    // Targets are checked like any address: a blank becomes a dot (BlankSub), the good
    // ones are used, and each bad one (not an address, an unknown user, a list that
    // includes itself) fails on its own, never sent anywhere, and is reported to the
    // sender.
    let lists = open_dir(&env, "lists");
    let looped = lists.join("loop");
    fs::write(&looped, format!(":include:{}\n", looped.display())).unwrap();
    std::os::unix::fs::chown(&looped, Some(test_user().uid), Some(test_user().gid)).unwrap();
    fs::write(
        &fwd,
        format!(
            "\\{TEST_USER}, forwarded@example.org, a@@example.org, x y@example.org\nnosuchuser-fwd, a@@example.org\n:include:{}\n",
            looped.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::chown(&fwd, Some(test_user().uid), Some(test_user().gid)).unwrap();
    fs::set_permissions(&fwd, fs::Permissions::from_mode(0o644)).unwrap();
    // Line 1's `a@@example.org` is said before the unknown user of line 2 and decides
    // the status, as in sendmail (forward-bad-order-odi): 64.
    env.sendmail(&["-odi", TEST_USER], MSG).code(64);
    let msgs = peer.wait_for(1, Duration::from_secs(10));
    assert_eq!(msgs.len(), 1);
    assert!(
        msgs[0].0.contains("\"forwarded@example.org\""),
        "{}",
        msgs[0].0
    );
    assert!(msgs[0].0.contains("\"x.y@example.org\""), "{}", msgs[0].0);
    // The bad targets were never tried at the relay.
    assert!(!peer.transcript().contains("a@@"), "{}", peer.transcript());
    assert!(
        !peer.transcript().contains("nosuchuser"),
        "{}",
        peer.transcript()
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
    // The sender (root) got one report naming both, each with its reason.
    let all = fs::read(mbox(&env, "root")).expect("a report to the sender");
    assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 1);
    let text = parse_report(&all, &env);
    // Each as sendmail reports a target its .forward refused (compat case
    // forward-unknown-odi): the user is the Final-Recipient, the target the
    // X-Actual-Recipient, the reason without the address.
    for want in [
        &format!("'Final-Recipient': 'RFC822; {TEST_USER}@test.example'"),
        // A target that is no address: its status and no Diagnostic-Code
        // (forward-bad-order-odi).
        "'Status': '5.1.3', 'Last-Attempt-Date'",
        "'X-Actual-Recipient': 'rfc822; nosuchuser-fwd@test.example'",
        "'Status': '5.1.1'",
        "'Diagnostic-Code': 'X-Unix; 550 5.1.1 User unknown'",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    // A target of the .forward that is a list including itself and naming no one is a
    // loop (sendmail's rule: compat cases loop-alias-only, loop-include-odi), reported
    // as that target, as the .forward's other bad targets are.
    for want in [
        // A list file is named as a local address, as sendmail names it.
        format!(
            "'X-Actual-Recipient': 'rfc822; {}@test.example'",
            looped.display()
        ),
        "'Status': '5.4.6'".to_string(),
        format!(
            "'Diagnostic-Code': 'X-Unix; 554 5.4.6 :include:{}... aliasing/forwarding loop broken'",
            looped.display()
        ),
    ] {
        assert!(text.contains(&want), "{want:?} in\n{text}");
    }
    // Reported once.
    assert_eq!(text.matches("'Status': '5.1.3'").count(), 1, "{text}");
    assert!(!text.contains("forwarded@"), "{text}");
    assert_eq!(mbox_summary(&mbox(&env, TEST_USER)).len(), 1);
    let md = fs::metadata(mbox(&env, TEST_USER)).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o777), (test_user().uid, 0o600));
    // Writable by the group: ignored, the mailbox gets it.
    fs::set_permissions(&fwd, fs::Permissions::from_mode(0o664)).unwrap();
    env.sendmail(&["-odi", TEST_USER], MSG).code(0);
    assert_eq!(mbox_summary(&mbox(&env, TEST_USER)).len(), 2);
    assert_eq!(peer.messages().len(), 1);
    let _ = fs::remove_file(&fwd);
}

/// `.forward` files that forward to each other end in the mailboxes sendmail 8.17 chose
/// (recorded with the recording host's mailbox deliveries queued: compat-tests
/// `differences/forward-loop-*`): the user the chain comes back to gets the message, and
/// so does the user whose `.forward` names no one new; nothing is returned. The test
/// user and root forward to each other, each home a directory of the test's mounted in
/// a private mount namespace.
#[test]
fn forward_loops_end_in_the_mailboxes_sendmail_chooses() {
    if !is_root() || !can_switch_user() || !Path::new("/usr/bin/unshare").exists() {
        return;
    }
    let env = local_env("", None);
    let user = test_user();
    let homes = open_dir(&env, "homes");
    let (user_home, root_home) = (homes.join("user"), homes.join("root"));
    let run = |user_fwd: &str, root_fwd: &str| {
        for (home, text, uid, gid) in [
            (&user_home, user_fwd, user.uid, user.gid),
            (&root_home, root_fwd, 0, 0),
        ] {
            fs::create_dir_all(home).unwrap();
            std::os::unix::fs::chown(home, Some(uid), Some(gid)).unwrap();
            fs::set_permissions(home, fs::Permissions::from_mode(0o755)).unwrap();
            let fwd = home.join(".forward");
            fs::write(&fwd, text).unwrap();
            std::os::unix::fs::chown(&fwd, Some(uid), Some(gid)).unwrap();
            fs::set_permissions(&fwd, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let link = env.link("sendmail");
        let args = [
            "-m",
            "--",
            "sh",
            "-c",
            "mount --bind \"$1\" \"$2\" && mount --bind \"$3\" \"$4\" && shift 4 && exec \"$@\"",
            "sh",
            user_home.to_str().unwrap(),
            user.home.to_str().unwrap(),
            root_home.to_str().unwrap(),
            "/root",
            link.to_str().unwrap(),
            "-C",
            env.conf.to_str().unwrap(),
            "-odi",
            TEST_USER,
        ];
        env.run_raw(Path::new("/usr/bin/unshare"), &args, MSG)
    };
    let count = |who: &str| {
        let p = mbox(&env, who);
        let n = if p.exists() {
            mbox_summary(&p).len()
        } else {
            0
        };
        let _ = fs::remove_file(&p);
        n
    };
    // Two users naming each other: both mailboxes (forward-loop-two).
    run("root\n", &format!("{TEST_USER}\n")).code(0);
    assert_eq!((count(TEST_USER), count("root")), (1, 1));
    assert!(env.entries().is_empty(), "{}", env.listing());
    // The user's own name with a backslash: the mailbox (forward-loop-self).
    run(&format!("\\{TEST_USER}\n"), "").code(0);
    assert_eq!((count(TEST_USER), count("root")), (1, 0));
    // Root's .forward naming itself as well as the user: root's mailbox once, and the
    // user's, to whom the chain came back.
    run("root\n", &format!("{TEST_USER}, \\root\n")).code(0);
    assert_eq!((count(TEST_USER), count("root")), (1, 1));
    assert!(env.entries().is_empty(), "{}", env.listing());
}

#[test]
fn non_root_deliverer_leaves_other_users_mail_for_the_root_runner() {
    if !can_switch_user() {
        return;
    }
    let env = local_env("", None);
    let dir = open_dir(&env, "shared");
    make_user_spool(&dir.join("spool"));
    let conf = dir.join("user.conf");
    fs::write(
        &conf,
        format!(
            "SPOOLDIR {}\nMAILNAME test.example\nMAILSPOOL {}\nALIASES {}\n",
            dir.join("spool").display(),
            env.dir.join("mail").display(),
            env.dir.join("aliases").display()
        ),
    )
    .unwrap();
    let bin = user_visible_bin(&dir, "sendmail");
    let run_as_user = |args: &[&str]| {
        let mut a = vec!["-C", conf.to_str().unwrap()];
        a.extend_from_slice(args);
        as_user(&bin, &a, &[], MSG)
    };
    fs::write(
        env.dir.join("aliases"),
        format!("prog: \"|id -u > {}/prog-id\"\n", dir.display()),
    )
    .unwrap();
    let out = run_as_user(&["-odi", "root"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!mbox(&env, "root").exists());
    let q = run_as_user(&["-bp"]);
    let q = String::from_utf8_lossy(&q.stdout);
    assert!(q.contains("needs the root queue runner (root)"), "{q}");
    // A command alias: queued by the user, run only by the root runner, and then as
    // the default user, neither root nor the sender.
    let out = run_as_user(&["-odi", "prog"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!dir.join("prog-id").exists());
    // Root never runs a spool a user owns (she decides what is in it); made root's,
    // in a group fit for a spool (the user's own primary group is not), the root
    // runner delivers it.
    let root_run = || {
        env.run_raw(
            &env.link("sendmail"),
            &["-C", conf.to_str().unwrap(), "-qf"],
            b"",
        )
    };
    let r = root_run();
    r.code(78);
    assert!(r.stdout.contains("is owned by "), "{}", r.stdout);
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("root:{}", crate::harness::fit_group().1))
        .arg(dir.join("spool"))
        .status()
        .unwrap();
    assert!(st.success());
    root_run().code(0);
    assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 1);
    let id: u32 = fs::read_to_string(dir.join("prog-id"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let sender_uid = test_user().uid;
    assert!(id != 0 && id != sender_uid, "ran as {id}");
    let q = env.run_raw(
        &env.link("sendmail"),
        &["-C", conf.to_str().unwrap(), "-bp"],
        b"",
    );
    assert!(q.stdout.contains("is empty"), "{}", q.stdout);
}

#[test]
fn concurrent_deliveries_into_one_locked_mbox() {
    if !is_root() || !require("python3") {
        return;
    }
    let env = local_env("", None);
    let path = mbox(&env, "root");
    fs::write(&path, "").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    // Another program holds the fcntl lock and the dotlock for a while.
    let holder = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import fcntl, os, sys, time
lock = sys.argv[1] + ".lock"
fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(1.5)
f.write("From holder@x Sun Nov 22 00:00:00 2026\nSubject: holder\n\nmine\n\n")
f.flush()
fcntl.lockf(f, fcntl.LOCK_UN)
os.unlink(lock)
"#,
        )
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut holder = holder;
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held");
    }
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut c = Command::new(env.link("sendmail"))
                .args(["-C", env.conf.to_str().unwrap(), "-odi", "root"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            let body = format!("Subject: m{i}\n\n{}\n", "line of text\n".repeat(200 + i));
            c.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
            c
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    holder.wait().unwrap();
    let s = mbox_summary(&path);
    assert_eq!(s.len(), 21, "{s:?}");
    let mut subjects: Vec<String> = s
        .iter()
        .filter(|l| !l.contains("|holder|"))
        .map(|l| l.split('|').nth(1).unwrap().to_string())
        .collect();
    subjects.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(subjects, want);
    // Each body intact: 200+i lines of 13 bytes.
    for l in s.iter().filter(|l| !l.contains("|holder|")) {
        let i: usize = l.split('|').nth(1).unwrap()[1..].parse().unwrap();
        let len: usize = l.split('|').nth(3).unwrap().parse().unwrap();
        // Without its final newline (Python keeps the separator on the last one).
        assert_eq!(len, 13 * (200 + i) - 1, "{l}");
    }
    assert!(env.entries().is_empty());
}

/// A mailbox another process keeps locked, by its fcntl lock alone and by a fresh
/// dotlock alone: each deferral has one enhanced code, 4.2.0 (mailbox status), and
/// says the mailbox is locked by another process, naming the lock.
#[test]
fn a_locked_mailbox_defers_with_one_code_whatever_the_lock() {
    if !is_root() || !require("python3") {
        return;
    }
    let env = local_env("", None);
    let path = mbox(&env, "root");
    fs::write(&path, "").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"#,
        )
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held");
    }
    let fcntl = env.sendmail(&["-v", "-O", "Timeout.mboxlock=1s", "root"], MSG);
    let _ = holder.kill();
    let _ = holder.wait();
    let fcntl = fcntl.stdout.clone();
    let dotlock = PathBuf::from(format!("{}.lock", path.display()));
    fs::write(&dotlock, "").unwrap();
    let dot = env.sendmail(&["-v", "-O", "Timeout.mboxlock=1s", "root"], MSG);
    let _ = fs::remove_file(&dotlock);
    let dot = dot.stdout.clone();
    for (said, lock) in [(&fcntl, "(fcntl)"), (&dot, ".lock)")] {
        let line = said
            .lines()
            .find(|l| l.starts_with("root... Deferred:"))
            .unwrap_or_else(|| panic!("{said}"));
        assert!(line.contains(" 4.2.0 "), "{line}");
        assert!(line.contains("is locked by another process"), "{line}");
        assert!(line.ends_with(lock), "{line}");
    }
}

#[test]
fn a_full_filesystem_leaves_the_mailbox_as_it_was() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let mnt = env.dir.join("small");
    fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        crate::harness::unavailable("mount -t tmpfs");
        return;
    }
    let _guard = Unmount(mnt.clone());
    env.add_config(&format!("MAILSPOOL {}\n", mnt.display()));
    env.sendmail(&["-odi", "root"], MSG).code(0);
    let before = fs::metadata(mnt.join("root")).unwrap().len();
    assert!(before > 0);
    let big = format!("Subject: big\n\n{}", "x".repeat(100)).repeat(1) + &"y\n".repeat(60_000);
    env.sendmail(&["-odi", "root"], big.as_bytes()).code(0);
    assert_eq!(fs::metadata(mnt.join("root")).unwrap().len(), before);
    assert_eq!(env.entries().len(), 1, "the message stays queued");
    assert_eq!(mbox_summary(&mnt.join("root")).len(), 1);
}

/// A mailbox that would grow past the deliverer's file-size limit (`ulimit -f`,
/// systemd's `LimitFSIZE=`): the write fails with EFBIG rather than killing the process
/// half-way, the append is taken back, and the recipient is deferred as a full mailbox
/// (4.2.2), not lost; with the limit gone the next run delivers it.
#[test]
fn a_file_size_limit_defers_and_leaves_the_mailbox_as_it_was() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    env.sendmail(&["-odi", "root"], MSG).code(0);
    let before = fs::read(mbox(&env, "root")).unwrap();
    assert!(!before.is_empty());
    let big = format!("Subject: big\n\n{}", "0123456789abcdef\n".repeat(4096));
    env.sendmail(&["-odq", "root"], big.as_bytes()).code(0);
    env.sendmail_fsize(32 * 1024, &["-qf"], b"").code(0);
    let after = fs::read(mbox(&env, "root")).unwrap();
    assert!(
        after == before,
        "the mailbox went from {} to {} octets",
        before.len(),
        after.len()
    );
    assert_eq!(env.entries().len(), 1, "the message stays queued");
    let q = env.mailq(&[]);
    assert!(q.contains("(Deferred: 451 4.2.2 cannot write "), "{q}");
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 2);
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The report's structure as Python's email package reads it.
fn parse_report(bytes: &[u8], env: &Env) -> String {
    let p = write_tmp(env, bytes);
    python(
        r#"
import email, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.compat32)
print("type", m.get_content_type(), m.get_param("report-type"))
print("subject", m["Subject"])
parts = m.get_payload()
print("parts", [p.get_content_type() for p in parts])
ds = parts[1].get_payload()
print("per-message", dict(ds[0].items()))
for r in ds[1:]:
    print("rcpt", dict(r.items()))
orig = parts[2].get_payload()
if isinstance(orig, list):
    print("original-subject", orig[0]["Subject"])
else:
    print("original-headers", len(orig))
"#,
        &[p.to_str().unwrap()],
    )
}

/// What a report returns of the message (`rsendmail::dsn::headers_only`): without
/// FULLBOUNCE the header only, dma's default (and with no config line at all); with it
/// the whole message; the sender's `-R` decides over both; `nobodyreturn` always wins.
#[test]
fn fullbounce_decides_what_a_report_returns() {
    if !is_root() {
        return;
    }
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    // (config lines, -R, the report's third part)
    let cases: &[(&str, &[&str], &str)] = &[
        ("", &[], "text/rfc822-headers"),
        ("FULLBOUNCE\n", &[], "message/rfc822"),
        ("", &["-R", "full"], "message/rfc822"),
        ("FULLBOUNCE\n", &["-R", "hdrs"], "text/rfc822-headers"),
        (
            "FULLBOUNCE\nO PrivacyOptions=nobodyreturn\n",
            &["-R", "full"],
            "text/rfc822-headers",
        ),
    ];
    for (config, ret, part) in cases {
        let env = local_env("", Some(peer.port));
        env.add_config(config);
        let mut args = vec!["-odi"];
        args.extend_from_slice(ret);
        args.push("reject5@example.org");
        env.sendmail(&args, MSG).code(67);
        let rep = fs::read(mbox(&env, "root")).unwrap();
        let text = parse_report(&rep, &env);
        let want = format!("parts ['text/plain', 'message/delivery-status', '{part}']");
        assert!(
            text.contains(&want),
            "{config:?} {ret:?}: {want} in\n{text}"
        );
        // The body of the message only with the whole message.
        let raw = String::from_utf8_lossy(&rep);
        assert_eq!(
            raw.contains("\nhello\n"),
            *part == "message/rfc822",
            "{config:?} {ret:?}: {raw}"
        );
    }
}

#[test]
fn failures_bounce_as_rfc3464_reports() {
    if !is_root() {
        return;
    }
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env("", Some(peer.port));
    // The whole message is returned (dma's FULLBOUNCE; without it the header only).
    env.add_config("FULLBOUNCE\n");
    // To a local sender's mailbox.
    env.sendmail(
        &[
            "-odi",
            "-V",
            "env-77",
            "reject5-a@example.org",
            "ok@example.org",
        ],
        MSG,
    )
    .code(67);
    let rep = fs::read(mbox(&env, "root")).unwrap();
    let text = parse_report(&rep, &env);
    for want in [
        "type multipart/report delivery-status",
        "subject Returned mail: see transcript for details",
        "parts ['text/plain', 'message/delivery-status', 'message/rfc822']",
        "'Reporting-MTA': 'dns; test.example'",
        "'Original-Envelope-Id': 'env-77'",
        "'Final-Recipient': 'RFC822; reject5-a@example.org'",
        "'Action': 'failed'",
        "'Status': '5.1.1'",
        "'Remote-MTA': 'DNS; [127.0.0.1]'",
        "'Diagnostic-Code': 'SMTP; 550 5.1.1",
        "original-subject test",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    assert!(!text.contains("ok@example.org"), "{text}");
    assert!(env.entries().is_empty(), "{}", env.listing());
    // To a remote sender, through the smarthost, headers only (-R hdrs), from <>.
    env.sendmail(
        &[
            "-odi",
            "-f",
            "sender@example.org",
            "-R",
            "hdrs",
            "reject5-b@example.org",
        ],
        MSG,
    )
    .code(67);
    let msgs = peer.wait_for(2, Duration::from_secs(10));
    let (j, m) = msgs
        .iter()
        .find(|(j, _)| j.contains("sender@example.org\"]"))
        .expect("the report reached the sink");
    // The null sender (aiosmtpd records MAIL FROM:<> as "<>").
    assert!(j.contains("\"mail_from\": \"<>\""), "{j}");
    let text = parse_report(m, &env);
    assert!(
        text.contains("parts ['text/plain', 'message/delivery-status', 'text/rfc822-headers']"),
        "{text}"
    );
    // NOTIFY=NEVER: no report.
    let before = fs::read(mbox(&env, "root")).unwrap().len();
    env.sendmail(&["-odi", "-N", "never", "reject5-c@example.org"], MSG)
        .code(67);
    assert_eq!(fs::read(mbox(&env, "root")).unwrap().len(), before);
    assert!(env.entries().is_empty());
}

#[test]
fn double_bounce_reaches_the_postmaster_once() {
    if !is_root() {
        return;
    }
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    // The postmaster alias points at a remote address that fails too.
    let env = local_env("postmaster: reject5-pm@example.org\n", Some(peer.port));
    env.sendmail(&["-odi", "-f", "<>", "reject5-x@example.org"], MSG)
        .code(67);
    assert!(env.entries().is_empty(), "{}", env.listing());
    // The report went to the postmaster's address, was refused, and was then dropped.
    let tries = peer.transcript().matches("reject5-pm@example.org").count();
    assert!(tries >= 1, "{}", peer.transcript());
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(
        peer.transcript().matches("reject5-pm@example.org").count(),
        tries,
        "no second report"
    );
    // With a working postmaster mailbox it arrives exactly once.
    fs::write(env.dir.join("aliases"), "postmaster: \\root\n").unwrap();
    env.sendmail(&["-odi", "-f", "<>", "reject5-y@example.org"], MSG)
        .code(67);
    env.sendmail(&["-qf"], b"").code(0);
    let s = mbox_summary(&mbox(&env, "root"));
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(s[0].starts_with("MAILER-DAEMON|"), "{s:?}");
}

/// sendmail's hop count: the trace fields (`Received`, `X400-Received`, `Via`,
/// `Mail-From`) plus the `Received:` this host adds, or `-h` when larger; more than
/// `MaxHopCount` (25) and the message is refused at submission in every mode, exit 69
/// (EX_UNAVAILABLE), returned to the sender as ErrorMode says, nothing left queued
/// (compat-tests `hop-*`).
#[test]
fn too_many_hops_refused_at_submission() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let msg = |n: usize, extra: &str| {
        let mut m = String::new();
        for i in 0..n {
            m.push_str(&format!(
                "Received: from h{i} by h{}; Sun, 22 Nov 2026 00:00:00 +0000\n",
                i + 1
            ));
        }
        m.push_str(extra);
        m.push_str("Subject: loop\n\nbody\n");
        m
    };
    // 25 fields and ours: 26. ErrorMode m (the test config's) mails it back.
    for mode in ["-odq", "-odi", "-odb"] {
        env.sendmail(
            &[mode, "-f", "root", "nobody@test.example"],
            msg(25, "").as_bytes(),
        )
        .code(69)
        .stdout_is("");
        // The report: delivered by this run, or (-odb) by the background deliverer,
        // which may still hold it while the run passes it by.
        env.sendmail(&["-qf"], b"").code(0);
        env.wait_until_empty(Duration::from_secs(20));
    }
    let rep = fs::read(mbox(&env, "root")).unwrap();
    assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 3);
    let text = parse_report(&rep, &env);
    assert!(text.contains("'Status': '5.4.6'"), "{text}");
    assert!(text.contains("Too many hops 26 (25 max)"), "{text}");
    assert!(!mbox(&env, "nobody").exists());
    // The boundaries, each refused (69) or delivered (0); -oeq: the status alone.
    let cases: &[(&[&str], usize, &str, i32)] = &[
        (&[], 24, "", 0),
        (&["-h", "25"], 0, "", 0),
        (&["-h", "26"], 0, "", 69),
        (&["-h", "10"], 14, "", 0),
        (&["-h", "10"], 25, "", 69),
        (&["-h", "-5"], 24, "", 0),
        (&[], 24, "Via: relay\n", 69),
        (&[], 24, "Mail-From: relay\n", 69),
        (&[], 24, "X400-Received: relay\n", 69),
        (&[], 24, "X-Received: relay\nReceived-SPF: pass\n", 0),
        (&["-O", "MaxHopCount=3"], 2, "", 0),
        (&["-O", "MaxHopCount=3"], 3, "", 69),
        (&["-O", "MaxHopCount=0"], 0, "", 69),
        (&["-t"], 25, "To: nobody@test.example\n", 69),
    ];
    for (args, n, extra, code) in cases {
        let mut argv = vec!["-odi", "-oeq"];
        argv.extend_from_slice(args);
        if !args.contains(&"-t") {
            argv.push("nobody@test.example");
        }
        env.sendmail(&argv, msg(*n, extra).as_bytes())
            .code(*code)
            .stdout_is("");
        assert!(env.entries().is_empty(), "{args:?} {n}: {}", env.listing());
    }
    assert_eq!(mbox_summary(&mbox(&env, "nobody")).len(), 6);
    // Over SMTP the message is taken (250) and returned by the deliverer, which counts
    // the same fields, ours included.
    let _ = fs::remove_file(mbox(&env, "root"));
    let dialogue = format!(
        "HELO client.example\r\nMAIL FROM:<root@test.example>\r\nRCPT TO:<nobody@test.example>\r\nDATA\r\n{}.\r\nQUIT\r\n",
        msg(25, "").replace('\n', "\r\n")
    );
    let r = env.sendmail(&["-odq", "-bs"], dialogue.as_bytes());
    r.code(0);
    assert!(
        r.stdout.contains("Message accepted for delivery"),
        "{}",
        r.stdout
    );
    env.sendmail(&["-qf"], b"").code(0);
    let text = parse_report(&fs::read(mbox(&env, "root")).unwrap(), &env);
    assert!(text.contains("Too many hops 26 (25 max)"), "{text}");
    assert_eq!(mbox_summary(&mbox(&env, "nobody")).len(), 6);
}

#[test]
fn pipes_defer_on_71_74_75_and_bounce_otherwise() {
    if !is_root() {
        return;
    }
    let env = local_env(
        "later: \"|exit 75\"\noserr: \"|exit 71\"\nbroken: \"|echo oops >&2; exit 3\"\n",
        None,
    );
    // sendmail's prog mailer: EX_TEMPFAIL queued, exit 0; EX_OSERR queued, exit 71.
    env.sendmail(&["-odi", "later"], MSG).code(0);
    assert_eq!(env.entries().len(), 1);
    let q = env.mailq(&[]);
    assert!(
        q.contains("Deferred: prog mailer (/bin/sh) exited with EX_TEMPFAIL"),
        "{q}"
    );
    fs::remove_file(&env.entries()[0]).unwrap();
    env.sendmail(&["-odi", "oserr"], MSG).code(71);
    assert_eq!(env.entries().len(), 1);
    let q = env.mailq(&[]);
    assert!(q.contains("(Operating system error)"), "{q}");
    fs::remove_file(&env.entries()[0]).unwrap();
    // Any other status: `554 5.3.0 unknown mailer error N`, exit 69; what the program
    // said is in the report's transcript.
    env.sendmail(&["-odi", "broken"], MSG).code(69);
    assert!(env.entries().is_empty());
    let raw = String::from_utf8_lossy(&fs::read(mbox(&env, "root")).unwrap()).into_owned();
    assert!(
        raw.contains("oops\n554 5.3.0 unknown mailer error 3"),
        "{raw}"
    );
    let text = parse_report(&fs::read(mbox(&env, "root")).unwrap(), &env);
    assert!(text.contains("'Diagnostic-Code': 'X-Unix; 3'"), "{text}");
    // A target of an alias: Final-Recipient the alias, X-Actual-Recipient the target,
    // no Original-Recipient (sendmail's; compat case alias-one-member-reject5).
    assert!(
        text.contains("'Final-Recipient': 'RFC822; broken@test.example'"),
        "{text}"
    );
    assert!(
        text.contains("'X-Actual-Recipient': 'X-Unix; |echo oops >&2; exit 3'"),
        "{text}"
    );
    assert!(!text.contains("Original-Recipient"), "{text}");
}

#[test]
fn file_targets_that_cannot_be_created_bounce_at_once() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let dir = env.dir.join("files");
    fs::create_dir(&dir).unwrap();
    let closed = dir.join("closed");
    fs::create_dir(&closed).unwrap();
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o555)).unwrap();
    let aliases = format!(
        "nodir: {d}/nodir/x.out\nisdir: {d}\nperm: {c}/x.out\ndevnull: /dev/null\n\
         symlink: {d}/link\n",
        d = dir.display(),
        c = closed.display()
    );
    std::os::unix::fs::symlink(dir.join("target"), dir.join("link")).unwrap();
    fs::write(env.dir.join("aliases"), aliases).unwrap();
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    // Each cannot be opened or will not be written: for good, reported at once in
    // sendmail's words (`Can't create output`, the transcript line naming the file,
    // `Diagnostic-Code: X-Unix; 73`; compat cases file-nodir, file-isdir, file-perm),
    // never queued until the queue's timeout; the cause is logged.
    for (name, path, why) in [
        (
            "nodir",
            format!("{}/nodir/x.out", dir.display()),
            "No such file",
        ),
        ("isdir", dir.display().to_string(), "directory"),
        (
            "perm",
            format!("{}/x.out", closed.display()),
            "Permission denied",
        ),
        (
            "symlink",
            format!("{}/link", dir.display()),
            "a symbolic link",
        ),
    ] {
        let _ = fs::remove_file(mbox(&env, "root"));
        // EX_CANTCREAT, as sendmail (compat cases file-perm, file-readonly).
        env.sendmail(&["-odi", name], MSG).code(73);
        assert!(env.entries().is_empty(), "{name}: {:?}", env.entries());
        let raw = fs::read(mbox(&env, "root")).unwrap();
        let text = parse_report(&raw, &env);
        let raw = String::from_utf8_lossy(&raw);
        assert!(
            raw.contains("(reason: Can't create output)"),
            "{name}: {raw}"
        );
        assert!(
            raw.contains(&format!("\n550 5.0.0 {path}... Can't create output\n")),
            "{name}: {raw}"
        );
        assert!(
            raw.contains("Diagnostic-Code: X-Unix; 73\n"),
            "{name}: {raw}"
        );
        assert!(text.contains("'Status': '5.3.0'"), "{name}: {text}");
        let logged = fs::read_to_string(&log).unwrap_or_default();
        assert!(
            logged.lines().any(|l| l.contains(&path) && l.contains(why)),
            "{name}: {logged}"
        );
    }
    assert!(!dir.join("target").exists());
    // /dev/null takes the message without being opened, as in sendmail
    // (file-devnull).
    let _ = fs::remove_file(mbox(&env, "root"));
    env.sendmail(&["-odi", "devnull"], MSG).code(0);
    assert!(env.entries().is_empty());
    assert!(!mbox(&env, "root").exists());
}

#[test]
fn delay_warning_then_expiry_report() {
    if !is_root() {
        return;
    }
    // A smarthost that refuses connections: every try is a temporary failure.
    let env = local_env("", Some(closed_tcp_port()));
    // Wide windows (warning after 2 s, return after 8 s), so that a busy machine running
    // a step late does not skip the warning.
    env.add_config("O Timeout.queuewarn=2s\nO Timeout.queuereturn=8s\n");
    let submitted = std::time::Instant::now();
    env.sendmail(&["-odq", "far@example.org"], MSG).code(0);
    // Time must pass (no event to wait for): the entry outlives Timeout.queuewarn.
    std::thread::sleep(Duration::from_millis(2100));
    env.sendmail(&["-qf"], b"").code(0);
    let s = mbox_summary(&mbox(&env, "root"));
    assert_eq!(s.len(), 1, "{s:?}");
    let text = parse_report(&fs::read(mbox(&env, "root")).unwrap(), &env);
    assert!(
        text.contains("subject Warning: could not send message for past 2 seconds\n"),
        "{text}"
    );
    assert!(text.contains("'Action': 'delayed'"), "{text}");
    // sendmail's warning: no Will-Retry-Until; the attempt's transcript and its two
    // lines (compat case delay-queuewarn-reject4).
    assert!(!text.contains("'Will-Retry-Until'"), "{text}");
    let raw = fs::read_to_string(mbox(&env, "root")).unwrap();
    assert!(
        raw.contains(concat!(
            "   ----- Transcript of session follows -----\n",
            "far@example.org... Deferred: Connection refused by [127.0.0.1]\n",
            "Warning: message still undelivered after 2 seconds\n",
            "Will keep trying until message is 8 seconds old\n"
        )),
        "{raw}"
    );
    // Only one warning.
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 1);
    assert_eq!(env.entries().len(), 1);
    // ... and then Timeout.queuereturn.
    std::thread::sleep(Duration::from_millis(8100).saturating_sub(submitted.elapsed()));
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    let all = fs::read(mbox(&env, "root")).unwrap();
    let last = String::from_utf8_lossy(&all);
    let at = last.rfind("\nFrom MAILER-DAEMON").unwrap() + 1;
    let text = parse_report(&all[at..], &env);
    assert!(
        text.contains("'Action': 'failed'") && text.contains("'Status': '4.4.7'"),
        "{text}"
    );
    // No reply was read (the connection was refused): no Diagnostic-Code; the
    // transcript tells the expiry in sendmail's words.
    assert!(!text.contains("Diagnostic-Code"), "{text}");
    let raw = String::from_utf8_lossy(&all[at..]);
    assert!(
        raw.contains("far@example.org... Deferred: Connection refused by [127.0.0.1]\n")
            && raw.contains(
                "Message could not be delivered for 8 seconds\nMessage will be deleted from queue\n"
            ),
        "{raw}"
    );
}

#[test]
fn commands_have_a_time_limit() {
    if !is_root() {
        return;
    }
    let env = local_env("slow: \"|sleep 30\"\n", None);
    env.add_config("O Timeout.command=1s\n");
    let start = std::time::Instant::now();
    env.sendmail(&["-odi", "slow"], MSG).code(0);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    let q = env.mailq(&[]);
    assert!(q.contains("timed out after 1s"), "{q}");
    assert_eq!(env.entries().len(), 1, "stays queued");
}

#[test]
fn n_turns_aliasing_off() {
    // (Debian has a user called list: another name.)
    let env = local_env("staffers: root\n", None);
    env.sendmail(&["-odq", "-oeq", "staffers"], MSG).code(0);
    assert!(env.only_entry().contains("\nrcpt root from=staffers "));
    fs::remove_file(&env.entries()[0]).unwrap();
    env.sendmail(&["-odq", "-oeq", "-n", "staffers"], MSG)
        .code(67);
    assert!(env.entries().is_empty());
}

#[test]
fn success_reports_when_asked() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    env.sendmail(&["-odi", "-N", "success,failure", "root"], MSG)
        .code(0);
    let all = fs::read(mbox(&env, "root")).unwrap();
    let s = mbox_summary(&mbox(&env, "root"));
    assert_eq!(s.len(), 2, "the message and its report: {s:?}");
    let text = String::from_utf8_lossy(&all);
    let at = text.rfind("\nFrom MAILER-DAEMON").unwrap() + 1;
    let rep = parse_report(&all[at..], &env);
    assert!(rep.contains("subject Return receipt"), "{rep}");
    assert!(
        rep.contains("'Action': 'delivered'") && rep.contains("'Status': '2.0.0'"),
        "{rep}"
    );
    // Without NOTIFY=SUCCESS, no report.
    env.sendmail(&["-odi", "root"], MSG).code(0);
    assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 3);
    // PrivacyOptions=noreceipts: none asked for is made (as sendmail:
    // compat-tests/cases/privacy-noreceipts-receipt).
    env.sendmail(
        &[
            "-odi",
            "-O",
            "PrivacyOptions=noreceipts",
            "-N",
            "success",
            "root",
        ],
        MSG,
    )
    .code(0);
    assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 4);
    assert!(env.entries().is_empty());
}

/// Run `sendmail ARGS` with this config, killed after `limit`: its status, or None when it
/// had to be killed.
fn run_with_limit(env: &Env, args: &[&str], limit: Duration) -> Option<std::process::ExitStatus> {
    let mut child = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    crate::harness::wait_exit(&mut child, limit)
}

/// A list file that is not one, named by a `.forward` or by the aliases file: a FIFO
/// (reading it would wait for a writer forever), a device (`/dev/zero` never ends), a file
/// over the 1 MiB limit. Each fails its target at once with the reason, reported to the
/// sender, and the same run goes on to deliver the other targets and the other mail.
#[test]
fn list_files_that_would_stall_or_exhaust_the_deliverer_are_refused() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let _turn = forward_turn();
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env("", Some(peer.port));
    let lists = open_dir(&env, "lists");
    let fifo = lists.join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let big = lists.join("big");
    let line = "member-with-a-long-name@example.org\n";
    fs::write(&big, line.repeat((1 << 20) / line.len() + 1)).unwrap();
    for f in [&fifo, &big] {
        std::os::unix::fs::chown(f, Some(test_user().uid), Some(test_user().gid)).unwrap();
    }
    fs::write(
        env.dir.join("aliases"),
        format!(
            "biglist: :include:{}, alias-good@example.org\n",
            big.display()
        ),
    )
    .unwrap();
    // The FIFO first: a deliverer that opened it would wait there.
    let fwd = write_forward(&format!(
        ":include:{}\n:include:/dev/zero\n:include:{}\nfwd-good@example.org\n",
        fifo.display(),
        big.display()
    ));
    env.sendmail(&["-odq", TEST_USER], MSG).code(0);
    // Refused at submission for good, as sendmail refuses a list file at submission
    // (exit 64; the other member is queued, and the report to the sender).
    env.sendmail(&["-odq", "biglist"], MSG).code(64);
    env.sendmail(&["-odq", "other@example.org"], MSG).code(0);
    let status = run_with_limit(&env, &["-qf"], Duration::from_secs(30));
    let _ = fs::remove_file(&fwd);
    assert!(
        status.is_some_and(|s| s.success()),
        "the queue run did not finish: {status:?}"
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
    let msgs = peer.wait_for(3, Duration::from_secs(10));
    let all: String = msgs.iter().map(|(j, _)| j.as_str()).collect();
    for good in ["fwd-good@", "alias-good@", "other@"] {
        assert!(all.contains(good), "{good} in {all}");
    }
    assert!(!all.contains("member-with"), "{all}");
    // The reasons, in the reports to the sender (root).
    let reports = fs::read_to_string(mbox(&env, "root")).expect("reports");
    // A list file the .forward names is reported as sendmail reports it (compat case
    // forward-include-relative-odi): the user, then the file as a local address.
    for want in [
        format!(
            "Final-Recipient: RFC822; {TEST_USER}@test.example\nX-Actual-Recipient: rfc822; {}@test.example\n",
            fifo.display()
        ),
        format!(
            "Cannot open {}: not a regular file (a FIFO)",
            fifo.display()
        ),
        "Cannot open /dev/zero: not a regular file (a device)".to_string(),
        format!(
            "Cannot open {}: larger than 1048576 bytes, the limit for a list file",
            big.display()
        ),
    ] {
        assert!(reports.contains(&want), "{want:?} in\n{reports}");
    }
    // Once for the .forward, as what the user's .forward expanded to; once for the
    // alias, as what the alias expanded to (sendmail's naming: compat cases
    // forward-include-relative-odi, bounce-exp-inc-writable-odi).
    assert_eq!(
        reports
            .matches(&format!(
                "Final-Recipient: RFC822; {TEST_USER}@test.example\nX-Actual-Recipient: rfc822; {}@test.example\n",
                big.display()
            ))
            .count(),
        1,
        "once for the .forward:\n{reports}"
    );
    assert!(
        reports.contains(&format!(
            "Final-Recipient: RFC822; biglist@test.example\nX-Actual-Recipient: rfc822; {}@test.example\n",
            big.display()
        )),
        "the alias's:\n{reports}"
    );
}

/// A user's lists are read with the user's rights, and what they list runs as the user.
/// A `.forward` naming `:include:` a file only root may read: refused, nothing of it
/// reaches the relay, and the sender is told why. One naming another user's file: its
/// `/file` and `|command` targets run as the `.forward`'s user, not as the file's owner.
/// An `:include:` inside a file the user owns, named by the aliases file: read as the
/// user too.
#[test]
fn a_users_include_files_are_read_and_run_with_the_users_rights() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let _turn = forward_turn();
    let Some((_scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let env = local_env("", Some(peer.port));
    let out = open_dir(&env, "out");
    let secret = env.dir.join("secret");
    fs::write(&secret, "secret-leak@example.org\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    // Another user's list (nobody's), readable by all.
    let others = out.join("others-list");
    fs::write(
        &others,
        format!(
            "{o}/written.mbox, \"|id -u > {o}/prog-id\"\n",
            o = out.display()
        ),
    )
    .unwrap();
    let nobody = other_user();
    std::os::unix::fs::chown(&others, Some(nobody.uid), Some(nobody.gid)).unwrap();
    fs::set_permissions(&others, fs::Permissions::from_mode(0o644)).unwrap();
    // The user's own list, named by the aliases file, naming the secret.
    let mine = out.join("my-list");
    fs::write(
        &mine,
        format!(":include:{}\nlist-ok@example.org\n", secret.display()),
    )
    .unwrap();
    std::os::unix::fs::chown(&mine, Some(test_user().uid), Some(test_user().gid)).unwrap();
    fs::set_permissions(&mine, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(
        env.dir.join("aliases"),
        format!("userlist: :include:{}\n", mine.display()),
    )
    .unwrap();
    let fwd = write_forward(&format!(
        ":include:{}\n:include:{}\nfwd-ok@example.org\n",
        secret.display(),
        others.display()
    ));
    let forwarded = env.sendmail(&["-odi", TEST_USER], MSG);
    let listed = env.sendmail(&["-odi", "userlist"], MSG);
    let _ = fs::remove_file(&fwd);
    // A list file refused for good: told as sendmail tells it, exit 64 (compat cases
    // forward-include-relative-odi, bounce-exp-inc-writable-odi).
    forwarded.code(64);
    listed.code(64);
    assert!(env.entries().is_empty(), "{}", env.listing());
    let msgs = peer.wait_for(2, Duration::from_secs(10));
    let t = peer.transcript();
    assert!(!t.contains("secret-leak"), "{t}");
    let all: String = msgs.iter().map(|(j, _)| j.as_str()).collect();
    assert!(
        all.contains("\"fwd-ok@example.org\"") && all.contains("\"list-ok@example.org\""),
        "{all}"
    );
    // The other user's targets ran as the .forward's user.
    let written = fs::metadata(out.join("written.mbox")).expect("the /file target");
    assert_eq!(written.uid(), test_user().uid);
    assert_eq!(mbox_summary(&out.join("written.mbox")).len(), 1);
    let id = fs::read_to_string(out.join("prog-id")).expect("the |command target");
    assert_eq!(id.trim(), test_user().uid.to_string());
    // Both refusals reported to the sender (root), with the reason in the transcript,
    // after the list file and line it was read on, and no Diagnostic-Code (sendmail's
    // form for a list file refused for good: compat case forward-include-relative-odi).
    let reports = fs::read_to_string(mbox(&env, "root")).expect("reports");
    let said = format!(
        ":include:{0}... Cannot open {0}: Permission denied",
        secret.display()
    );
    let told = reports
        .lines()
        .filter(|l| l.starts_with("550 5.7.1 ") && l.ends_with(&said))
        .count();
    assert_eq!(told, 2, "{said:?} in\n{reports}");
    assert!(
        !reports.contains("Diagnostic-Code: X-Unix; 550 5.7.1"),
        "{reports}"
    );
    assert!(!reports.contains("secret-leak"), "{reports}");
}

/// dma's catch-all alias `*` (ALIASES in dma(8)): every local recipient without an alias
/// of its own, an existing user or not, goes to its targets; newaliases takes the line.
#[test]
fn catch_all_alias_takes_every_local_recipient() {
    if !crate::harness::servers::have_peer() {
        return;
    }
    let scratch = Env::new();
    let peer = crate::harness::servers::Peer::start(&scratch.dir, &[]);
    let env = local_env("*: catch@example.org\nlist: stranger\n", Some(peer.port));
    let p = env.dir.join("aliases").display().to_string();
    let r = env.sendmail(&["-bi"], b"");
    r.code(0);
    assert!(
        r.stdout.starts_with(&format!("{p}: 2 aliases, ")),
        "{}",
        r.stdout
    );
    env.sendmail(&["-odi", "nosuchuser", "daemon", "x@example.net"], MSG)
        .code(0)
        .stdout_is("");
    assert!(env.entries().is_empty(), "{:?}", env.json());
    let m = peer.messages();
    assert_eq!(m.len(), 1, "{}", peer.transcript());
    assert!(
        m[0].0
            .contains("[\"catch@example.org\", \"x@example.net\"]")
            || m[0]
                .0
                .contains("[\"x@example.net\", \"catch@example.org\"]"),
        "{}",
        m[0].0
    );
    assert!(!mbox(&env, "daemon").exists());
    // An alias's own targets are not caught again.
    env.sendmail(&["-odq", "-oeq", "list"], MSG).code(67);
    assert!(env.entries().is_empty());
}

/// sendmail's `+detail`: `root+foo` is root's, delivered to root's mailbox (not a
/// mailbox named `root+foo`), at submission (`-odi`) and from the queue; an alias
/// `list+x` wins over `list` (recorded: `plus-odq-local`, `plus-odi-alias`).
#[test]
fn plus_detail_goes_to_the_users_mailbox() {
    if !is_root() {
        return;
    }
    let env = local_env("list: root\nlist+x: root+x\n", None);
    env.sendmail(&["-odi", "root+foo"], MSG)
        .code(0)
        .stdout_is("");
    env.sendmail(&["-odq", "root+bar@test.example"], MSG)
        .code(0);
    env.sendmail(&["-qf"], b"").code(0);
    env.sendmail(&["-odi", "list+y", "list+x"], MSG).code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert!(!mbox(&env, "root+foo").exists());
    assert!(!mbox(&env, "root+bar").exists());
    // `list+y` is `list` (root), `list+x` its own alias (root+x): two recipients, as
    // sendmail keeps `root` and `root+x` apart.
    let s = mbox_summary(&mbox(&env, "root"));
    assert_eq!(s.len(), 4, "{s:?}");
}

#[test]
fn a_list_members_failure_in_an_interactive_delivery_is_mailed_to_the_list_owner() {
    // sendmail mails the errors of the envelope it splits off for an owner- alias,
    // whatever the ErrorMode (compat case bp-v-alias-owner-bounce): the owner, not the
    // person at the terminal, runs the list.
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env(
        "list: reject5-a@example.org, ok-b@example.org\nowner-list: listboss@example.org\n",
        Some(peer.port),
    );
    // The exit status counts the members' failures, as sendmail's (67).
    env.sendmail(&["-odi", "-oep", "list"], MSG).code(67);
    let msgs = peer.wait_for(2, Duration::from_secs(10));
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let report = msgs
        .iter()
        .find(|(j, _)| j.contains("\"mail_from\": \"<>\""))
        .unwrap_or_else(|| panic!("no report in {msgs:?}"));
    assert!(
        report
            .0
            .contains("\"rcpt_tos\": [\"listboss@example.org\"]"),
        "{}",
        report.0
    );
    let text = String::from_utf8_lossy(&report.1);
    assert!(
        text.contains("\nReturn-Path: <listboss@example.org>\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Final-Recipient: RFC822; list@test.example"),
        "{text}"
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
}

#[test]
fn every_refusal_of_a_list_with_an_owner_goes_to_the_owner_in_one_report() {
    // A member unknown here (refused at submission) and one a server refuses (at
    // delivery): one report, to the owner, naming both, with the list's lines only;
    // the sender hears nothing of the list's members (recorded:
    // `owner-list-unknown-odi`).
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env(OWNED_LIST, Some(peer.port));
    env.sendmail(
        &[
            "-odi",
            "-f",
            "sender@example.org",
            "list",
            "ok-w@example.org",
        ],
        MSG,
    )
    .code(67);
    // Whatever a queue run would still send, sent now.
    env.sendmail(&["-qf"], b"").code(0);
    let text = the_owners_one_report(&peer, 3, "");
    for want in [
        "\r\nnosuchl\r\n",
        "\r\nreject5-l@example.org\r\n",
        "550 5.1.1 nosuchl... User unknown\r\nMessage delivered to mailing list list\r\n",
        ">>> RCPT To:<reject5-l@example.org>",
        "X-Actual-Recipient: rfc822; nosuchl@test.example",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    assert!(env.entries().is_empty(), "{}", env.listing());
}

#[test]
fn a_list_owners_refusals_at_a_queued_submission_go_to_the_owner_not_the_sender() {
    // -odq: the member unknown here is reported at once, to the owner; the queue run's
    // refusal by the server in a report of its own, to the owner too (recorded:
    // `owner-list-unknown-odq-q`). The sender gets nothing.
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env(OWNED_LIST, Some(peer.port));
    env.sendmail(&["-odq", "-f", "sender@example.org", "list"], MSG)
        .code(67);
    env.sendmail(&["-qf"], b"").code(0);
    env.sendmail(&["-qf"], b"").code(0);
    let reports = reports_after(&peer, 3);
    assert_eq!(reports.len(), 2, "{:#?}", peer.messages());
    for (j, body) in &reports {
        assert!(
            j.contains("\"rcpt_tos\": [\"listboss@example.org\"]"),
            "{j}"
        );
        let text = String::from_utf8_lossy(body);
        assert!(
            text.contains("Return-Path: <listboss@example.org>"),
            "{text}"
        );
    }
    let first = String::from_utf8_lossy(&reports[0].1);
    assert!(
        first.contains(
            "550 5.1.1 nosuchl... User unknown\r\nMessage delivered to mailing list list\r\n"
        ),
        "{first}"
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
}

#[test]
fn a_list_whose_owner_sent_the_message_goes_in_the_senders_transaction_and_report() {
    // The owner is the sender: the list's members go with the sender's own recipients,
    // in one transaction, and every refusal is in one report (recorded:
    // `owner-list-self-direct-odi`, `owner-list-self-direct-reject-odi`).
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env(OWNED_LIST, Some(peer.port));
    env.sendmail(
        &[
            "-odi",
            "-f",
            "listboss@example.org",
            "list",
            "reject5-w@example.org",
            "ok-w@example.org",
        ],
        MSG,
    )
    .code(67);
    peer.wait_for(2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let msgs = peer.messages();
    let sent: Vec<_> = msgs
        .iter()
        .filter(|(j, _)| j.contains("\"mail_from\": \"listboss@example.org\""))
        .collect();
    assert_eq!(sent.len(), 1, "{msgs:#?}");
    assert!(sent[0].0.contains("ok-l1@example.org"), "{}", sent[0].0);
    assert!(sent[0].0.contains("ok-w@example.org"), "{}", sent[0].0);
    let reports: Vec<_> = msgs
        .iter()
        .filter(|(j, _)| j.contains("\"mail_from\": \"<>\""))
        .collect();
    assert_eq!(reports.len(), 1, "{msgs:#?}");
    let text = String::from_utf8_lossy(&reports[0].1);
    for refused in ["nosuchl", "reject5-l@example.org", "reject5-w@example.org"] {
        assert!(text.contains(&format!("\r\n{refused}\r\n")), "{text}");
    }
}

#[test]
fn a_queued_list_whose_owner_sent_the_message_is_reported_delivered_to_the_list() {
    // -odq: the report on the member unknown here, to the owner who is the sender,
    // names the list as delivered in its delivery-status part, not among the
    // explanation's addresses (recorded: `owner-list-self-unknown-q`).
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env(
        "list: ok-l1@example.org, nosuchl\nowner-list: listboss@example.org\n",
        Some(peer.port),
    );
    env.sendmail(&["-odq", "-f", "listboss@example.org", "list"], MSG)
        .code(67);
    env.sendmail(&["-qf"], b"").code(0);
    peer.wait_for(2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let msgs = peer.messages();
    let reports: Vec<_> = msgs
        .iter()
        .filter(|(j, _)| j.contains("\"mail_from\": \"<>\""))
        .collect();
    assert_eq!(reports.len(), 1, "{msgs:#?}");
    let text = String::from_utf8_lossy(&reports[0].1);
    assert!(
        text.contains("X-Actual-Recipient: rfc822; list@")
            && text.contains("\r\nAction: delivered (to mailing list)\r\nStatus: 2.0.0\r\n"),
        "{text}"
    );
    assert!(!text.contains("\r\nlist\r\n"), "{text}");
    assert!(
        !text.contains("successful delivery notifications"),
        "{text}"
    );
}

#[test]
fn a_report_through_a_list_whose_owner_is_the_list_keeps_the_null_sender() {
    // owner-staff names staff itself: the failure report for a member goes to staff, and
    // its members must get it from <> (sendmail keeps the null sender), so the member's
    // failure again becomes one report to the postmaster, not a new message from the
    // owner to the list, round and round.
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env(
        "staff: reject5-a@example.org, member@example.org\nowner-staff: staff\n",
        Some(peer.port),
    );
    // Bounded: the loop this guards against never ends.
    let bin = env.link("sendmail");
    env.run_raw(
        Path::new("timeout"),
        &[
            "60",
            bin.to_str().unwrap(),
            "-C",
            env.conf.to_str().unwrap(),
            "-odi",
            "-f",
            "sender@example.org",
            "staff",
        ],
        MSG,
    )
    .code(67);
    // Whatever a queue run would still do, done now.
    env.sendmail(&["-qf"], b"").code(0);
    env.sendmail(&["-qf"], b"").code(0);
    peer.wait_for(2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let msgs = peer
        .messages()
        .into_iter()
        .map(|(j, _)| j)
        .collect::<Vec<_>>();
    let to_member: Vec<&String> = msgs
        .iter()
        .filter(|j| j.contains("member@example.org"))
        .collect();
    assert_eq!(to_member.len(), 2, "the message and one report: {msgs:#?}");
    assert!(
        to_member[0].contains("\"mail_from\": \"staff@test.example\""),
        "{msgs:#?}"
    );
    assert!(to_member[1].contains("\"mail_from\": \"<>\""), "{msgs:#?}");
    // The report's own failure: once to the postmaster (root's mailbox here).
    assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 1);
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// The odd targets of a `.forward` and of an `:include:` file, one a line, each judged
/// alone as the same address on the command line is (compat-tests cases
/// `forward-odd-addr-odi`, `include-odd-addr-odi`; differences `forward-nonutf8-odi`,
/// `forward-unbalanced-route-odi`, `include-unbalanced-route-odi`): a comment, a quoted
/// local part holding `@`, a UTF-8 phrase and a UTF-8 local part (to a relay offering
/// SMTPUTF8) are delivered; octets that are not UTF-8, an unbalanced `<`, a source route
/// and `<>` are refused and returned to the sender, the report naming the Latin-1
/// address with `?` (never a U+FFFD, never the raw octet) and giving `<>` no
/// X-Actual-Recipient; the other targets, the user's own mailbox among them, get the
/// message once.
#[test]
fn odd_targets_of_a_forward_or_include_file_are_judged_one_by_one() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let _turn = forward_turn();
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let mut lines = b"j\xf6hn@example.org, ok1@example.org\n".to_vec();
    lines.extend_from_slice(
        "bad <a1@example.org\n\"a3@b\"@example.org\nx2@example.org (Comment)\n<>\n\
         @a.example:b4@example.org\njörg5@example.org\nJörg Name <j6@example.org>\n"
            .as_bytes(),
    );
    for source in [".forward", ":include:"] {
        let env = local_env("", Some(peer.port));
        let before = peer.messages().len();
        let (args, code, ctl) = if source == ".forward" {
            let mut text = lines.clone();
            text.extend_from_slice(format!("\\{TEST_USER}\n").as_bytes());
            let fwd = write_forward("");
            fs::write(&fwd, &text).unwrap();
            // The unknown `<>` decides the exit status, as in sendmail.
            (
                vec!["-odi", TEST_USER],
                67,
                format!("{TEST_USER}@test.example"),
            )
        } else {
            let inc = env.dir.join("inc");
            fs::write(&inc, &lines).unwrap();
            fs::write(
                env.dir.join("aliases"),
                format!("l: :include:{}\n", inc.display()),
            )
            .unwrap();
            // Here too (include-unbalanced-empty-odi): 67, not the syntax errors' 64.
            (vec!["-odi", "l"], 67, "l@test.example".to_string())
        };
        let run = env.sendmail(&args, MSG);
        let said = format!("{}{}", run.stdout, run.stderr);
        run.code(code);
        let refusals = [
            "Syntax error in mailbox address \"j?hn@example.org\" (not UTF-8)",
            "bad <a1@example.org... Unbalanced '<'",
            "@a.example:b4@example.org... Source route not supported",
            "<>... User unknown",
        ];
        // A `.forward` is read by the delivery, which tells the terminal (`-odi`); an
        // `:include:` is read at submission, whose errors are mailed (ErrorMode m).
        if source == ".forward" {
            for want in refusals {
                assert!(said.contains(want), "{source}: {want:?} in {said}");
            }
        }
        // One message to the relay, for the good targets only.
        let msgs = peer.wait_for(before + 1, Duration::from_secs(10));
        assert_eq!(msgs.len(), before + 1, "{source}");
        let env_json = &msgs[before].0;
        for good in [
            "\"ok1@example.org\"",
            "\"\\\"a3@b\\\"@example.org\"",
            "\"x2@example.org\"",
            "rg5@example.org\"",
            "\"j6@example.org\"",
        ] {
            assert!(env_json.contains(good), "{source}: {good} in {env_json}");
        }
        let t = peer.transcript();
        for bad in ["a1@", "b4@", "hn@"] {
            assert!(!t.contains(bad), "{source}: {bad} never sent: {t}");
        }
        if source == ".forward" {
            assert_eq!(mbox_summary(&mbox(&env, TEST_USER)).len(), 1);
        }
        // One report to the sender (root) naming each refused target.
        assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 1, "{source}");
        let raw = fs::read(mbox(&env, "root")).unwrap();
        assert!(
            !raw.windows(3).any(|w| w == "\u{fffd}".as_bytes()) && !raw.contains(&0xf6),
            "{source}: {}",
            String::from_utf8_lossy(&raw)
        );
        let shown = String::from_utf8_lossy(&raw);
        for want in refusals {
            assert!(shown.contains(want), "{source}: {want:?} in {shown}");
        }
        let text = parse_report(&raw, &env);
        for want in [
            format!("'Final-Recipient': 'RFC822; {ctl}'"),
            "'X-Actual-Recipient': 'rfc822; j?hn@example.org'".to_string(),
            "'Status': '5.1.1', 'Diagnostic-Code': 'X-Unix; 550 5.1.1 User unknown'".to_string(),
        ] {
            assert!(text.contains(&want), "{source}: {want:?} in\n{text}");
        }
        assert!(!text.contains("<>@"), "{source}: {text}");
        // Text that is no address gets no X-Actual-Recipient (RFC 3464 §2.3.2: the
        // rfc822 type holds an address), as in sendmail's report.
        for bad in ["bad <a1@example.org", "@a.example:b4@example.org"] {
            assert!(
                !text.contains(&format!("'X-Actual-Recipient': 'rfc822; {bad}")),
                "{source}: {text}"
            );
        }
        assert!(env.entries().is_empty(), "{source}: {}", env.listing());
        if source == ".forward" {
            let _ = fs::remove_file(test_user().home.join(".forward"));
        }
    }
    // Syntax faults alone: 64, as sendmail exits (forward-unbalanced-route-odi).
    let env = local_env("", Some(peer.port));
    write_forward("bad <a1@example.org\nj\u{f6}rg@example.org\n");
    env.sendmail(&["-odi", TEST_USER], MSG).code(64);
    let _ = fs::remove_file(test_user().home.join(".forward"));
}

/// A login with capital letters (`brkA`, made here with `useradd` when it is missing, and
/// removed again afterwards) is not a local mailbox, as in sendmail 8.17, whose local
/// mailer (without `F=u`) folds the name to lower case before it looks the user up: mail to `brkA` and to `brka` is
/// refused `User unknown` (compat cases `local-user-capitals-brkA`, `-brka`), and so is
/// the report to such a sender, which goes to the postmaster instead (sendmail, recorded:
/// `550 5.1.1 brkA... User unknown` in its postmaster notice). Nothing is written to a
/// mailbox of either name.
#[test]
fn a_login_with_capitals_is_no_local_mailbox_as_in_sendmail() {
    if !is_root() {
        crate::harness::unavailable("root (useradd)");
        return;
    }
    /// Removes the login this test made (none when it was already there), also when the
    /// test fails.
    struct MadeUser(bool);
    impl Drop for MadeUser {
        fn drop(&mut self) {
            if self.0 {
                let _ = Command::new("userdel").arg("brkA").status();
            }
        }
    }
    let mut made = MadeUser(false);
    if nix::unistd::User::from_name("brkA")
        .ok()
        .flatten()
        .is_none()
    {
        made.0 = true;
        let st = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", "brkA"])
            .status()
            .expect("useradd");
        assert!(
            st.success()
                || nix::unistd::User::from_name("brkA")
                    .ok()
                    .flatten()
                    .is_some(),
            "useradd brkA"
        );
    }
    let env = local_env("", None);
    // -oee: the refusal mailed back to the caller (root), its reason in the report.
    for name in ["brkA", "brka"] {
        env.sendmail(&["-odi", "-oee", name], MSG).code(0);
        assert!(!mbox(&env, name).exists(), "{name}");
        let root = fs::read_to_string(mbox(&env, "root")).unwrap();
        assert!(
            root.contains(&format!("550 5.1.1 {name}... User unknown")),
            "{root}"
        );
    }
    fs::remove_file(mbox(&env, "root")).unwrap();
    // The report to the sender brkA cannot be delivered either: the postmaster gets it.
    env.sendmail(&["-odi", "-oem", "-f", "brkA", "nosuchuser"], MSG)
        .code(67);
    for name in ["brkA", "brka"] {
        assert!(!mbox(&env, name).exists(), "{name}");
    }
    let root = fs::read_to_string(mbox(&env, "root")).unwrap();
    assert!(root.contains("\nTo: postmaster\n"), "{root}");
    assert!(root.contains("550 5.1.1 <brkA>... User unknown"), "{root}");
}

/// One interactive pass, one report: recipients refused at submission (an unknown
/// local user on the command line, an alias's unknown target, a list file's `<>`) and
/// a recipient the server refuses in the delivery that follows are reported to the
/// sender together, in one report, as sendmail does (compat-tests/cases/
/// bounce-one-report-*); the exit status is 67. A list file with an unclosed `<` and a
/// `<>`, in either order, exits 67 too (include-unbalanced-empty-odi,
/// include-empty-unbalanced-odi).
#[test]
fn one_interactive_pass_sends_one_report() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env("", Some(peer.port));
    let inc = env.dir.join("inc");
    let bad = env.dir.join("bad");
    let bad2 = env.dir.join("bad2");
    fs::write(&inc, "<>\nok9@example.org\n").unwrap();
    fs::write(&bad, "bad <x7@example.org\n<>\nok8@example.org\n").unwrap();
    fs::write(&bad2, "<>\nbad <x7@example.org\nok8@example.org\n").unwrap();
    fs::write(
        env.dir.join("aliases"),
        format!(
            "al: nosuchuser2, ok9@example.org\ninc: :include:{}\nbad: :include:{}\nbad2: :include:{}\n",
            inc.display(),
            bad.display(),
            bad2.display()
        ),
    )
    .unwrap();
    let reports = || -> Vec<String> {
        peer.messages()
            .into_iter()
            .filter(|(j, _)| j.contains("\"rcpt_tos\": [\"s@example.org\"]"))
            .map(|(_, m)| String::from_utf8_lossy(&m).into_owned())
            .collect()
    };
    let runs: &[(&[&str], &[&str])] = &[
        (
            &["nosuchuser", "reject5@example.org", "good@example.org"],
            &[
                "nosuchuser\r\n",
                "reject5@example.org\r\n",
                "550 5.1.1 nosuchuser... User unknown",
            ],
        ),
        (
            &["al", "reject5a@example.org"],
            &[
                "nosuchuser2\r\n",
                "reject5a@example.org\r\n",
                "(expanded from: al)",
            ],
        ),
        (
            &["inc", "reject5b@example.org"],
            &[
                "<>\r\n",
                "reject5b@example.org\r\n",
                "line 1: <>... User unknown",
            ],
        ),
    ];
    for (k, (rcpts, want)) in runs.iter().enumerate() {
        let mut args = vec!["-odi", "-f", "s@example.org"];
        args.extend_from_slice(rcpts);
        env.sendmail(&args, MSG).code(67);
        env.wait_until_empty(Duration::from_secs(60));
        let got = reports();
        assert_eq!(
            got.len(),
            k + 1,
            "{rcpts:?}: {got:#?}\n{}",
            peer.transcript()
        );
        let last = got.last().map(String::as_str).unwrap_or_default();
        for w in want.iter() {
            assert!(last.contains(w), "{rcpts:?}: {w}\n{last}");
        }
        assert_eq!(last.matches("Action: failed").count(), 2, "{last}");
    }
    for list in ["bad", "bad2"] {
        env.sendmail(&["-odi", "-f", "s@example.org", list], MSG)
            .code(67);
    }
}

/// A target refused in both of its forms (`a@@bücher.example` and
/// `a@@xn--bcher-kva.example`, the same mailbox) is refused once: at submission (one
/// line in the report mailed back) and at delivery (an alias met by the queue run: one
/// failure, one report line), as the same target written once is.
#[test]
fn a_target_refused_in_both_idn_forms_is_reported_once() {
    if !is_root() {
        return;
    }
    let count = |aliases: &str| -> (usize, usize) {
        // At submission: the alias is expanded and its bad targets refused there.
        let env = local_env(&format!("lst: {aliases}, root\n"), None);
        env.sendmail(&["-odq", "-oem", "lst"], MSG);
        // The report goes to the sender (root) at once, the message stays queued.
        let at_submission = env
            .entries()
            .iter()
            .chain([&mbox(&env, "root")])
            .map(|e| {
                fs::read_to_string(e)
                    .unwrap_or_default()
                    .matches("Invalid route address")
                    .count()
            })
            .sum();
        // At delivery: the recipient was queued before its alias was written.
        let env = local_env("", None);
        env.sendmail(&["-odq", TEST_USER], MSG).code(0);
        fs::write(
            env.dir.join("aliases"),
            format!("{TEST_USER}: {aliases}, root\n"),
        )
        .unwrap();
        env.sendmail(&["-qf"], b"").code(0);
        let report = fs::read(mbox(&env, "root")).unwrap_or_default();
        let at_delivery = String::from_utf8_lossy(&report)
            .matches("Invalid route address")
            .count();
        (at_submission, at_delivery)
    };
    let once = count("a@@bücher.example");
    assert!(once.0 > 0 && once.1 > 0, "{once:?}");
    assert_eq!(count("a@@bücher.example, a@@xn--bcher-kva.example"), once);
    assert_eq!(count("a@@xn--bcher-kva.example, a@@Bücher.example"), once);
}

/// An aliases line holding a NUL octet is left out (as `newaliases` says), and each
/// queue run that reads the file logs it with the file and line; the recipient whose
/// alias it was waits in the queue with that reason, never delivered to a mailbox of
/// its name (sendmail, which drops the line, would deliver there or bounce it as
/// unknown: `bv-alias-nul`), and goes to the alias once the line is fixed.
#[test]
fn a_recipient_whose_alias_line_holds_a_nul_waits_and_is_logged() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let aliases = env.dir.join("aliases");
    fs::write(&aliases, format!("{TEST_USER}: root\0junk\nother: root\n")).unwrap();
    env.sendmail(&["-odq", TEST_USER], MSG).code(0);
    let fault = format!(
        "{}: line 1: a NUL octet; the file is not text",
        aliases.display()
    );
    for run in 1..=2 {
        env.sendmail(&["-qf"], b"").code(0);
        assert_eq!(env.entries().len(), 1, "run {run}: {}", env.listing());
        assert!(!mbox(&env, TEST_USER).exists(), "run {run}");
        assert!(!mbox(&env, "root").exists(), "run {run}");
        let logged = fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            logged
                .lines()
                .filter(|l| l.ends_with(&format!("]: {fault}")))
                .count(),
            run,
            "{logged}"
        );
    }
    let q = env.mailq(&[]);
    assert!(q.contains("alias not read"), "{q}");
    // Fixed: the next run delivers to the alias.
    fs::write(&aliases, format!("{TEST_USER}: root\nother: root\n")).unwrap();
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 1);
    assert!(!mbox(&env, TEST_USER).exists());
}

/// The delivery reports in `path` as Python's email package reads them, one per report:
/// (`report-type`, its parts' content types, the delivery-status part's text). `one`:
/// the file is a single message as a command was given it, not an mbox.
fn reports_in(path: &Path, one: bool) -> Vec<(String, Vec<String>, String)> {
    let out = python(
        r#"
import email, mailbox, sys
from email import policy
if sys.argv[2] == "one":
    msgs = [email.message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.compat32)]
else:
    msgs = list(mailbox.mbox(sys.argv[1], create=False))
out = []
for m in msgs:
    if m.get_content_type() != "multipart/report":
        continue
    parts = m.get_payload()
    status = parts[1].as_bytes().decode("utf-8", "replace").split("\n\n", 1)[-1]
    types = ",".join(p.get_content_type() for p in parts)
    out.append("\x1f".join([m.get_param("report-type") or "", types, status]))
sys.stdout.write("\x1e".join(out))
"#,
        &[path.to_str().unwrap(), if one { "one" } else { "mbox" }],
    );
    out.split('\x1e')
        .filter(|r| !r.is_empty())
        .map(|r| {
            let mut f = r.splitn(3, '\x1f').map(str::to_string);
            let mut next = || f.next().unwrap_or_default();
            let (kind, types, status) = (next(), next(), next());
            (kind, types.split(',').map(str::to_string).collect(), status)
        })
        .collect()
}

/// Wait (up to a minute) until `path` exists and is not empty.
fn wait_for_file(path: &Path) {
    let start = std::time::Instant::now();
    while fs::metadata(path).map_or(true, |m| m.len() == 0)
        && start.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A report written to a local mailbox, a `/file` or a `|program` naming a UTF-8 address
/// is RFC 6533's internationalized report, as an SMTPUTF8 server gets it: the address of
/// the `utf-8` type, in a `message/global-delivery-status` part (never `RFC822;` with
/// raw UTF-8 in `message/delivery-status`), and a returned header holding UTF-8 as
/// `message/global-headers`. Every kind: a bounce, a delay warning and a return receipt
/// to a local sender, a double bounce to the postmaster's (root's) mailbox, and a bounce
/// to a sender whose alias pipes to a command or writes a file. A report naming only
/// US-ASCII addresses stays `message/delivery-status` with the `RFC822` type.
#[test]
fn reports_written_locally_name_utf8_addresses_as_rfc6533_says() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let msg8 = "Subject: caf\u{e9}\n\n8bit body caf\u{e9}\n".as_bytes();
    let env = local_env("", Some(peer.port));
    let out = open_dir(&env, "out");
    let (piped, filed) = (out.join("piped"), out.join("filed.mbox"));
    fs::write(
        env.dir.join("aliases"),
        format!(
            "postmaster: root\npiped: \"|cat > {}\"\nfiled: {}\n",
            piped.display(),
            filed.display()
        ),
    )
    .unwrap();
    env.add_config("O Timeout.queuewarn=1s\n");
    // A delay warning to root: deferred, then a run after the warning time.
    env.sendmail(&["-odq", "reject4j\u{f6}rg-b@example.org"], msg8)
        .code(0);
    std::thread::sleep(Duration::from_millis(1100));
    env.sendmail(&["-qf"], b"").code(0);
    for e in env.entries() {
        fs::remove_file(e).unwrap();
    }
    // A bounce and a return receipt to root; a double bounce (the report to a sender
    // who does not exist is refused) to the postmaster; bounces to the aliases.
    env.sendmail(&["-odi", "reject5j\u{f6}rg-a@example.org"], msg8);
    env.sendmail(&["-odi", "-N", "success", "j\u{f6}rg-c@example.org"], MSG)
        .code(0);
    env.sendmail(
        &[
            "-odi",
            "-f",
            "reject5j\u{f6}rg-d@example.org",
            "reject5-d@example.org",
        ],
        MSG,
    );
    env.sendmail(
        &["-odi", "-f", "piped", "reject5j\u{f6}rg-e@example.org"],
        MSG,
    );
    env.sendmail(
        &["-odi", "-f", "filed", "reject5j\u{f6}rg-f@example.org"],
        MSG,
    );
    // Only US-ASCII addresses, an 8-bit returned message: as before.
    env.sendmail(&["-odi", "reject5-g@example.org"], msg8);
    env.wait_until_empty(Duration::from_secs(60));
    wait_for_file(&piped);
    let mut got = reports_in(&mbox(&env, "root"), false);
    got.extend(reports_in(&piped, true));
    got.extend(reports_in(&filed, false));
    let cases: &[(&str, &str)] = &[
        ("reject4j\u{f6}rg-b@example.org", "message/global-headers"),
        ("reject5j\u{f6}rg-a@example.org", "message/global-headers"),
        ("j\u{f6}rg-c@example.org", "text/rfc822-headers"),
        ("reject5j\u{f6}rg-d@example.org", "message/global-headers"),
        ("reject5j\u{f6}rg-e@example.org", "text/rfc822-headers"),
        ("reject5j\u{f6}rg-f@example.org", "text/rfc822-headers"),
    ];
    for (addr, returned) in cases {
        let field = format!("Final-Recipient: utf-8; {addr}\n");
        let mine: Vec<_> = got.iter().filter(|r| r.2.contains(&field)).collect();
        assert_eq!(mine.len(), 1, "{addr}: {got:?}");
        let (kind, types, _) = mine[0];
        assert_eq!(kind, "global-delivery-status", "{addr}: {got:?}");
        assert_eq!(
            types,
            &["text/plain", "message/global-delivery-status", returned],
            "{addr}: {got:?}"
        );
    }
    // No report names a UTF-8 address as the RFC822 type, nor holds UTF-8 in a
    // message/delivery-status part.
    for (kind, types, status) in &got {
        assert!(
            !status.contains("RFC822; reject5j") && !status.contains("RFC822; j\u{f6}"),
            "{got:?}"
        );
        if kind == "delivery-status" {
            assert_eq!(types[1], "message/delivery-status", "{got:?}");
            assert!(status.is_ascii(), "{got:?}");
        }
    }
    let ascii: Vec<_> = got
        .iter()
        .filter(|r| {
            r.2.contains("Final-Recipient: RFC822; reject5-g@example.org\n")
        })
        .collect();
    assert_eq!(ascii.len(), 1, "{got:?}");
    assert_eq!(ascii[0].0, "delivery-status", "{got:?}");
    assert_eq!(
        ascii[0].1,
        [
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ],
        "{got:?}"
    );
    // The whole message returned: a double bounce returns the failed report (here one
    // naming a UTF-8 recipient, to a sender who does not exist) as it is written
    // locally too, never in its queued form.
    let env = local_env("postmaster: root\n", Some(peer.port));
    env.add_config("FULLBOUNCE\n");
    env.sendmail(
        &[
            "-odi",
            "-f",
            "reject5-s@example.org",
            "reject5j\u{f6}rg-h@example.org",
        ],
        MSG,
    );
    env.wait_until_empty(Duration::from_secs(60));
    let got = reports_in(&mbox(&env, "root"), false);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0]
            .2
            .contains("Final-Recipient: RFC822; reject5-s@example.org\n"),
        "{got:?}"
    );
    let raw = String::from_utf8_lossy(&fs::read(mbox(&env, "root")).unwrap()).into_owned();
    let returned = raw
        .split("Content-Type: message/rfc822\n")
        .nth(1)
        .unwrap_or_default();
    assert!(
        returned.contains("Content-Type: message/global-delivery-status\n")
            && returned.contains("Final-Recipient: utf-8; reject5j\u{f6}rg-h@example.org\n"),
        "{raw}"
    );
    assert!(
        !raw.to_ascii_lowercase().contains("rfc822; reject5j"),
        "{raw}"
    );
}

/// An alias reached twice in one message (named, and named again by another alias it
/// reaches, or by two recipients' aliases) reports each of its refusals once: on the
/// terminal and in the report, at submission and at delivery, as sendmail, which
/// expands a list once (recorded: `alias-reached-twice-odq`, `alias-reached-twice-bv`).
#[test]
fn an_alias_reached_twice_reports_its_refusals_once() {
    if !is_root() {
        return;
    }
    const LISTS: &str = "mix1: nosuchuser1, b@@x.example, root\n\
                         nested: mix1, d@@y.example, nosuchuser4\n";
    let count = |text: &str| {
        (
            text.matches("nosuchuser1").count(),
            text.matches("b@@x.example").count(),
        )
    };
    // At submission: the terminal and the report queued for the sender.
    let submitted = |rcpts: &[&str]| {
        let env = local_env(LISTS, None);
        let mut args = vec!["-odq", "-oep"];
        args.extend_from_slice(rcpts);
        let printed = env.sendmail(&args, MSG).stdout.clone();
        let env = local_env(LISTS, None);
        let mut args = vec!["-odq", "-oem"];
        args.extend_from_slice(rcpts);
        env.sendmail(&args, MSG);
        // The report went to the sender (root) at once, the message stays queued.
        let queued: String = env
            .entries()
            .iter()
            .chain([&mbox(&env, "root")])
            .map(|e| fs::read_to_string(e).unwrap_or_default())
            .collect();
        (count(&printed), count(&queued))
    };
    let once = submitted(&["mix1"]);
    assert!(once.0 == (1, 1) && once.1.0 > 0 && once.1.1 > 0, "{once:?}");
    assert_eq!(submitted(&["mix1", "nested"]), once);
    assert_eq!(submitted(&["nested", "mix1"]), once);
    // At delivery: the recipients were queued before their aliases were written.
    let delivered = |rcpts: &[&str]| {
        let env = local_env("", None);
        let mut args = vec!["-odq"];
        args.extend_from_slice(rcpts);
        env.sendmail(&args, MSG).code(0);
        fs::write(
            env.dir.join("aliases"),
            format!("{TEST_USER}: mix1\nnobody: mix1\n{LISTS}"),
        )
        .unwrap();
        env.sendmail(&["-qf"], b"").code(0);
        let report = fs::read(mbox(&env, "root")).unwrap_or_default();
        count(&String::from_utf8_lossy(&report))
    };
    let once = delivered(&[TEST_USER]);
    assert!(once.0 > 0 && once.1 > 0, "{once:?}");
    assert_eq!(delivered(&[TEST_USER, "nobody"]), once);
}

/// A `.forward` read at delivery adds its targets to the entry being delivered: they go
/// out with the entry's other recipients, in one transaction to the server, and what the
/// expansion refused is reported with what the server refused, in one report, as
/// sendmail does (compat cases forward-once-odi, forward-once-w-odi).
#[test]
fn forward_targets_go_with_the_entry_in_one_transaction_and_one_report() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let _turn = forward_turn();
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env("", Some(peer.port));
    write_forward("nosuch-fwd1, fw-ok@example.org, reject5f@example.org\n");
    env.sendmail(&["-odi", "w@example.org", TEST_USER], MSG)
        .code(67);
    let msgs = peer.wait_for(1, Duration::from_secs(10));
    let t = peer.transcript();
    assert_eq!(t.matches(" MAIL ").count(), 1, "{t}");
    assert_eq!(msgs.len(), 1, "{t}");
    for want in ["\"w@example.org\"", "\"fw-ok@example.org\""] {
        assert!(msgs[0].0.contains(want), "{want} in {}", msgs[0].0);
    }
    assert!(env.entries().is_empty(), "{}", env.listing());
    // One report to the sender, naming the unknown user and the server's refusal.
    assert_eq!(mbox_summary(&mbox(&env, "root")).len(), 1);
    let text = parse_report(&fs::read(mbox(&env, "root")).unwrap(), &env);
    for want in [
        "'X-Actual-Recipient': 'rfc822; nosuch-fwd1@test.example'",
        "'X-Actual-Recipient': 'rfc822; reject5f@example.org'",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}

/// Queued with `-odq`, the `.forward` is read by the queue run, which adds its targets to
/// the entry (each once: one already among the entry's recipients is not added again)
/// and sends them in the same run; an entry left waiting for one of them lists them as
/// its own.
#[test]
fn forward_targets_join_the_queued_entry_once() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let _turn = forward_turn();
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env("", Some(peer.port));
    write_forward("fw-ok@example.org, w@example.org, reject4f@example.org\n");
    env.sendmail(&["-odq", "w@example.org", TEST_USER], MSG)
        .code(0);
    // `-qf`: the run in the foreground, its state written when it returns (`-q` detaches
    // its run, which may still hold the entry after the server has the message).
    env.sendmail(&["-qf"], b"").code(0);
    let msgs = peer.wait_for(1, Duration::from_secs(10));
    let t = peer.transcript();
    assert_eq!(t.matches(" MAIL ").count(), 1, "{t}");
    assert_eq!(msgs.len(), 1, "{t}");
    assert_eq!(
        msgs[0].0.matches("\"w@example.org\"").count(),
        1,
        "{}",
        msgs[0].0
    );
    assert!(msgs[0].0.contains("\"fw-ok@example.org\""), "{}", msgs[0].0);
    // The entry waits for the deferred target, which it lists among its recipients.
    let j = env.json();
    assert_eq!(j.len(), 1, "{j:?}");
    assert!(
        j[0].contains("\"address\":\"reject4f@example.org\""),
        "{}",
        j[0]
    );
    // Each recipient once in the queue file, the user's own place kept.
    let qf = env.entries();
    assert_eq!(qf.len(), 1, "{}", env.listing());
    // `show` calls the user expanded, not delivered: its mailbox got nothing.
    let id = env.only_id();
    let show = env.run_raw(
        &PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-admin")),
        &["-C", env.conf.to_str().unwrap(), "show", &id],
        b"",
    );
    show.code(0);
    assert!(
        show.stdout.contains(&format!(
            "\n  {TEST_USER}: expanded: 250 2.0.0 expanded by "
        )),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("\n  w@example.org: delivered"),
        "{}",
        show.stdout
    );
    let text = String::from_utf8_lossy(&fs::read(&qf[0]).unwrap()).into_owned();
    // The user, written first as a local recipient, and `w@` keep their places in the
    // queue order; the targets name the user (number 0) as the recipient they came from.
    for (want, n) in [
        ("\nrcpt w@example.org", 1),
        ("\nrcpt w@example.org place=0\n", 1),
        ("\nrcpt fw-ok@example.org ", 1),
        ("\nrcpt reject4f@example.org ", 1),
        (" parent=0\n", 2),
        (&format!("\nrcpt {TEST_USER} place=1\n"), 1),
    ] {
        assert_eq!(text.matches(want).count(), n, "{want:?} in\n{text}");
    }
    // The next run reads the `.forward` again only for what is still open: nothing is
    // sent twice (`-qf`: the run is over when the count is taken).
    env.sendmail(&["-qf"], b"").code(0);
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 1, "{}", peer.transcript());
}

/// A user whose `.forward` a queue run expands is reported through its targets alone,
/// as an alias expanded at submission is: with `-N success,delay` and every target
/// deferred, no receipt (nor anything else) about the user goes to the sender before
/// the targets are done (sendmail has no `Action: expanded` for it; recorded:
/// forward-one-receipt-odi, forward-multi-receipt-odi, forward-multi-only-receipt-odi).
#[test]
fn a_forward_expanded_by_a_queue_run_gets_no_receipt_of_its_own() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let _turn = forward_turn();
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env("", Some(peer.port));
    for fwd in [
        "reject4a@example.org, reject4b@example.org\n",
        "reject4c@example.org\n",
    ] {
        write_forward(fwd);
        env.sendmail(&["-odq", "-N", "success,delay", TEST_USER], MSG)
            .code(0);
        env.sendmail(&["-qf"], b"").code(0);
    }
    // Both expanded, their targets waiting.
    let j = env.json().join("\n");
    for want in [
        "reject4a@example.org",
        "reject4b@example.org",
        "reject4c@example.org",
    ] {
        assert!(
            j.contains(&format!("\"address\":\"{want}\"")),
            "{want} in {j}"
        );
    }
    assert!(
        !mbox(&env, "root").exists(),
        "{}",
        fs::read_to_string(mbox(&env, "root")).unwrap_or_default()
    );
}

/// A queue run killed after the entry was rewritten with a `.forward`'s targets and one
/// of them was delivered and recorded, before the run's last record: the next run reads
/// the `.forward` again, finds its targets among the entry's recipients, and sends none
/// of them twice.
#[test]
fn a_run_killed_after_the_forward_was_added_sends_no_target_twice() {
    if !is_root() || !can_switch_user() || !require("strace") {
        return;
    }
    let _turn = forward_turn();
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    // A second destination that defers, so that the first transaction's outcome is
    // recorded on the way and the run ends with a record of its own.
    let dead = closed_tcp_port();
    let new_env = || {
        let env = local_env("", Some(peer.port));
        let table = env.dir.join("relays");
        fs::write(&table, format!("dead.test 127.0.0.1:{dead}\n")).unwrap();
        env.add_config(&format!("RELAYTABLE {}\n", table.display()));
        env
    };
    // (Its targets are queued in reverse: fw-ok@ goes first.)
    write_forward("x@dead.test, fw-ok@example.org\n");
    let traced = |env: &Env, extra: &[String], trace: &Path| {
        let out = Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(trace)
            .args(["-e", "trace=rename,renameat,renameat2"])
            .args(extra)
            .arg("--")
            .arg(crate::harness::release_bin())
            .args(["-C", env.conf.to_str().unwrap(), "-q"])
            .stdin(Stdio::null())
            .output()
            .expect("strace");
        out.status.code().unwrap_or(-1)
    };
    // An unkilled run, traced: where the entry is rewritten and its state recorded.
    let env = new_env();
    env.sendmail(&["-odq", TEST_USER], b"Subject: first\n\nhello\n")
        .code(0);
    let trace = env.dir.join("trace");
    assert_eq!(traced(&env, &[], &trace), 0);
    let text = fs::read_to_string(&trace).unwrap();
    // (thread, system call name, its arguments)
    let calls: Vec<(String, String, String)> = text
        .lines()
        .filter_map(|l| {
            let (tid, rest) = l.split_once(' ')?;
            let (name, args) = rest.trim_start().split_once('(')?;
            Some((tid.to_string(), name.to_string(), args.to_string()))
        })
        .collect();
    // The entry's rewrite: its new queue file renamed into place.
    let (tid, name, _) = calls
        .iter()
        .find(|(_, _, args)| args.contains("/tmp/rf") && args.contains("/qf"))
        .cloned()
        .unwrap_or_else(|| panic!("no queue file rewritten in\n{text}"));
    let mine: Vec<&String> = calls
        .iter()
        .filter(|(t, n, _)| *t == tid && *n == name)
        .map(|(_, _, args)| args)
        .collect();
    let rewrite = mine.iter().position(|a| a.contains("/tmp/rf")).unwrap();
    let states: Vec<usize> = (rewrite..mine.len())
        .filter(|&k| mine[k].contains("/tmp/sf"))
        .collect();
    // The record on the way (the first transaction's), then the run's last record.
    assert!(states.len() >= 2, "{text}");
    let last = states[states.len() - 1] + 1;
    let others = calls
        .iter()
        .filter(|(t, n, _)| *t != tid && *n == name)
        .fold(
            std::collections::HashMap::<&String, usize>::new(),
            |mut m, (t, _, _)| {
                *m.entry(t).or_default() += 1;
                m
            },
        );
    assert!(others.values().all(|&n| n < last), "{text}");
    assert_eq!(peer.wait_for(1, Duration::from_secs(10)).len(), 1);
    // The same again in a spool of its own, killed at the run's last record.
    let env = new_env();
    env.sendmail(&["-odq", TEST_USER], b"Subject: second\n\nhello\n")
        .code(0);
    let inject = format!("inject={name}:signal=KILL:when={last}");
    let trace2 = env.dir.join("trace2");
    traced(&env, &["-e".into(), inject], &trace2);
    let text2 = fs::read_to_string(&trace2).unwrap();
    assert!(text2.contains("+++ killed by SIGKILL +++"), "{text2}");
    let second = |m: &[(String, Vec<u8>)]| {
        m.iter()
            .filter(|(_, data)| String::from_utf8_lossy(data).contains("Subject: second"))
            .count()
    };
    assert_eq!(second(&peer.wait_for(2, Duration::from_secs(10))), 1);
    // The rewritten entry, with the targets among its recipients.
    assert_eq!(env.entries().len(), 1, "{}", env.listing());
    let j = env.json();
    assert!(
        j.iter().any(|l| l.contains("\"address\":\"x@dead.test\"")),
        "{j:?}"
    );
    // The next run: nothing sent twice.
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(second(&peer.messages()), 1, "{}", peer.transcript());
}

/// A target of an expansion at delivery that is itself to be expanded (a user with a
/// `.forward`, reached through an alias whose `:include:` only the deliverer reads) is
/// expanded in turn in the same attempt: its targets go out with the entry's other
/// recipients in one transaction.
#[test]
fn a_forward_reached_through_an_alias_at_delivery_goes_out_in_the_same_attempt() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let _turn = forward_turn();
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env("", Some(peer.port));
    // The aliases file is root's (root reads no other's); the list it includes is the
    // test user's, so the `:include:` that list names is read with her rights, by the
    // deliverer.
    let lists = open_dir(&env, "lists");
    let members = lists.join("members");
    fs::write(&members, format!("{TEST_USER}\n")).unwrap();
    let list = lists.join("list");
    fs::write(&list, format!(":include:{}\n", members.display())).unwrap();
    let aliases = env.dir.join("aliases");
    fs::write(&aliases, format!("lst: :include:{}\n", list.display())).unwrap();
    for f in [&members, &list] {
        std::os::unix::fs::chown(f, Some(test_user().uid), Some(test_user().gid)).unwrap();
    }
    write_forward("fw-ok@example.org\n");
    env.sendmail(&["-odq", "w@example.org", "lst"], MSG).code(0);
    let qf = env.entries();
    assert_eq!(qf.len(), 1, "{}", env.listing());
    let text = String::from_utf8_lossy(&fs::read(&qf[0]).unwrap()).into_owned();
    assert!(text.contains("\nrcpt lst"), "{text}");
    env.sendmail(&["-q"], b"").code(0);
    let msgs = peer.wait_for(1, Duration::from_secs(10));
    let t = peer.transcript();
    assert_eq!(t.matches(" MAIL ").count(), 1, "{t}");
    for want in ["\"w@example.org\"", "\"fw-ok@example.org\""] {
        assert!(msgs[0].0.contains(want), "{want} in {}", msgs[0].0);
    }
    // The server has the message before the run removes the entry.
    env.wait_until_empty(Duration::from_secs(10));
    assert!(!mbox(&env, TEST_USER).exists());
}

/// A list (`list`) whose owner is `listboss@example.org`: a member the server takes, one
/// it refuses (`reject5-`) and one unknown here (`nosuchl`).
const OWNED_LIST: &str = "list: ok-l1@example.org, reject5-l@example.org, nosuchl\n\
                          owner-list: listboss@example.org\n";

/// The one report (from `<>`) among `peer`'s messages once `n` messages in all came,
/// which goes to the list's owner alone: its text (`what` names the case in a failure).
fn the_owners_one_report(peer: &Peer, n: usize, what: &str) -> String {
    let reports = reports_after(peer, n);
    assert_eq!(reports.len(), 1, "{what}: {:#?}", peer.messages());
    let (j, body) = &reports[0];
    assert!(
        j.contains("\"rcpt_tos\": [\"listboss@example.org\"]"),
        "{what}: {j}"
    );
    String::from_utf8_lossy(body).into_owned()
}

/// The reports (from `<>`) among `peer`'s messages, once `n` messages in all came.
fn reports_after(peer: &Peer, n: usize) -> Vec<(String, Vec<u8>)> {
    peer.wait_for(n, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    peer.messages()
        .into_iter()
        .filter(|(j, _)| j.contains("\"mail_from\": \"<>\""))
        .collect()
}

#[test]
fn a_refusal_at_submission_is_reported_only_when_its_notify_asks_for_failures() {
    // -N never and -N success: an unknown user and a program named directly are said
    // on the terminal and decide the exit status, and no failure report is mailed, in
    // each delivery mode; a return receipt carries the refusal's line (recorded:
    // `argv-prog-N-never-odi`, `argv-unknown-N-success-odi`, `argv-prog-N-success-odi`).
    for mode in ["-odi", "-odq", "-odb"] {
        for notify in ["never", "success"] {
            let Some((_scratch, peer)) = start_peer(&[]) else {
                return;
            };
            let env = local_env("", Some(peer.port));
            env.sendmail(
                &[
                    mode,
                    "-N",
                    notify,
                    "-f",
                    "sender@example.org",
                    "nosuchu",
                    "|/bin/true",
                    "ok-w@example.org",
                ],
                MSG,
            )
            .code(67);
            if mode == "-odb" {
                peer.wait_for(1, Duration::from_secs(10));
            }
            env.sendmail(&["-qf"], b"").code(0);
            let reports = reports_after(&peer, if notify == "never" { 1 } else { 2 });
            let what = format!("{mode} -N {notify}: {:#?}", peer.messages());
            if notify == "never" {
                assert!(reports.is_empty(), "{what}");
            } else {
                assert_eq!(reports.len(), 1, "{what}");
                let text = String::from_utf8_lossy(&reports[0].1);
                assert!(text.contains("Subject: Return receipt"), "{what}");
                assert!(
                    text.contains("550 5.7.1 |/bin/true... Cannot mail directly to programs"),
                    "{what}"
                );
            }
            assert!(env.entries().is_empty(), "{mode}: {}", env.listing());
        }
    }
}

#[test]
fn a_list_owner_hears_of_no_member_when_n_never_names_every_address() {
    // `-N never` is every address's NOTIFY, a list's members' too: the owner of a list
    // gets no report on a member unknown here nor on one a server refuses (recorded:
    // `owner-list-N-never-odi`).
    for mode in ["-odi", "-odq"] {
        let Some((_scratch, peer)) = start_peer(&[]) else {
            return;
        };
        let env = local_env(OWNED_LIST, Some(peer.port));
        env.sendmail(
            &[
                mode,
                "-N",
                "never",
                "-f",
                "sender@example.org",
                "list",
                "ok-w@example.org",
            ],
            MSG,
        )
        .code(67);
        env.sendmail(&["-qf"], b"").code(0);
        let reports = reports_after(&peer, 2);
        assert!(reports.is_empty(), "{mode}: {:#?}", peer.messages());
        assert!(env.entries().is_empty(), "{mode}: {}", env.listing());
    }
}

#[test]
fn a_list_owner_hears_of_its_members_whatever_the_rcpts_notify() {
    // Over SMTP, `RCPT TO:<list> NOTIFY=NEVER` is the list address's alone: its members
    // go out from the owner's address and their failures are mailed to the owner
    // (recorded: `owner-list-bs-notify-never`).
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env(
        "list: ok-l1@example.org, reject5-l@example.org\n\
         owner-list: listboss@example.org\n",
        Some(peer.port),
    );
    let dialogue = "EHLO client.example\r\nMAIL FROM:<root@test.example>\r\n\
                    RCPT TO:<list> NOTIFY=NEVER\r\nDATA\r\nSubject: s\r\n\r\nhi\r\n.\r\nQUIT\r\n";
    env.sendmail(&["-odi", "-bs"], dialogue.as_bytes()).code(67);
    env.sendmail(&["-qf"], b"").code(0);
    let text = the_owners_one_report(&peer, 2, "");
    assert!(text.contains("\r\nreject5-l@example.org\r\n"), "{text}");
}

#[test]
fn error_mode_q_keeps_no_list_owners_report_back() {
    // ErrorMode q keeps the sender's report back, never a list owner's: the owner is
    // told of a member unknown here in every delivery mode (recorded:
    // `owner-list-oeq-unknown-odi`, `owner-list-oeq-odi`).
    for mode in ["-odi", "-odq"] {
        let Some((_scratch, peer)) = start_peer(&[]) else {
            return;
        };
        let env = local_env(
            "list: ok-l1@example.org, nosuchl\nowner-list: listboss@example.org\n",
            Some(peer.port),
        );
        env.sendmail(
            &[
                mode,
                "-oeq",
                "-f",
                "sender@example.org",
                "list",
                "ok-w@example.org",
            ],
            MSG,
        )
        .code(67);
        env.sendmail(&["-qf"], b"").code(0);
        let text = the_owners_one_report(&peer, 3, mode);
        assert!(
            text.contains(
                "550 5.1.1 nosuchl... User unknown\r\nMessage delivered to mailing list list\r\n"
            ),
            "{mode}: {text}"
        );
        assert!(env.entries().is_empty(), "{mode}: {}", env.listing());
    }
}

#[test]
fn a_background_delivery_tells_a_list_owner_everything_in_one_report() {
    // -odb: the member unknown here and the one the server refuses are reported to the
    // owner in one report, as with -odi (recorded: `owner-list-odb`).
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env(OWNED_LIST, Some(peer.port));
    env.sendmail(
        &[
            "-odb",
            "-f",
            "sender@example.org",
            "list",
            "ok-w@example.org",
        ],
        MSG,
    )
    .code(67);
    peer.wait_for(3, Duration::from_secs(10));
    env.sendmail(&["-qf"], b"").code(0);
    let text = the_owners_one_report(&peer, 3, "");
    for want in [
        "\r\nnosuchl\r\n",
        "\r\nreject5-l@example.org\r\n",
        "550 5.1.1 nosuchl... User unknown\r\nMessage delivered to mailing list list\r\n",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    assert!(env.entries().is_empty(), "{}", env.listing());
}

#[test]
fn with_verp_a_list_member_refused_at_submission_is_reported_to_the_owners_verp_address() {
    // -XV: the owner's report on a member unknown here goes to the owner's address for
    // that member, as the report on a member the server refuses does.
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env(OWNED_LIST, Some(peer.port));
    env.sendmail(
        &[
            "-odi",
            "-XV",
            "-f",
            "sender@example.org",
            "list",
            "ok-w@example.org",
        ],
        MSG,
    )
    .code(67);
    env.sendmail(&["-qf"], b"").code(0);
    let reports = reports_after(&peer, 4);
    let to: Vec<&str> = reports
        .iter()
        .filter_map(|(j, _)| j.split("\"rcpt_tos\": [\"").nth(1))
        .filter_map(|t| t.split('"').next())
        .collect();
    for want in [
        "listboss+nosuchl=test.example@example.org",
        "listboss+reject5-l=example.org@example.org",
    ] {
        assert!(
            to.contains(&want),
            "{want} in {to:?}: {:#?}",
            peer.messages()
        );
    }
    assert_eq!(to.len(), 2, "{to:?}");
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// An `:include:` file the aliases file names belongs to no user: a root process reads
/// it with DefaultUser's rights only, as sendmail reads it as DefUid. A user who makes
/// the list root's aliases name a link to a file only root may read gets sendmail's
/// refusal (`Cannot open FILE: Permission denied`) and never a line of that file: not
/// from root's `-bv`, a `-bs` session run by root, root's submission, nor root's queue
/// run delivering a recipient left for it; not in a report, the log or a message. A
/// list anyone may read, in a directory anyone may write, is still read.
#[test]
fn an_include_the_aliases_file_names_is_read_with_default_users_rights() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = local_env("", Some(peer.port));
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let out = open_dir(&env, "out");
    let secret = env.dir.join("shadow");
    fs::write(&secret, "secret-leak@example.org\nroot only secret\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let hers = env.dir.join("hers");
    fs::create_dir(&hers).unwrap();
    std::os::unix::fs::chown(&hers, Some(test_user().uid), Some(test_user().gid)).unwrap();
    let list = hers.join("list");
    let link = || {
        std::os::unix::fs::symlink(&secret, &list).unwrap();
        std::os::unix::fs::lchown(&list, Some(test_user().uid), Some(test_user().gid)).unwrap();
    };
    link();
    let good = out.join("good-list");
    fs::write(&good, "inc-ok@example.org\n").unwrap();
    fs::set_permissions(&good, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(
        env.dir.join("aliases"),
        format!(
            "lst: :include:{}\ngood: :include:{}\n",
            list.display(),
            good.display()
        ),
    )
    .unwrap();
    let refusal = format!("Cannot open {0}: Permission denied", list.display());
    let mut said = Vec::new();
    // Root's -bv.
    let r = env.sendmail(&["-bv", "lst", "good"], b"");
    assert!(r.stdout.contains(&refusal), "{}", r.stdout);
    assert!(
        r.stdout.contains("inc-ok@example.org... deliverable"),
        "{}",
        r.stdout
    );
    said.push(format!("{}{}", r.stdout, r.stderr));
    // Root's submission, delivered at once.
    let r = env.sendmail(&["-odi", "lst", "good"], MSG);
    said.push(format!("{}{}", r.stdout, r.stderr));
    // A -bs session run by root, whose recipient it leaves for the deliverer (as any
    // list file it cannot read), which root's queue run is.
    let r = env.sendmail(
        &["-bs", "-odq"],
        b"HELO client.example\r\nMAIL FROM:<root>\r\nRCPT TO:<lst>\r\nDATA\r\nSubject: bs\r\n\r\nbody\r\n.\r\nQUIT\r\n",
    );
    said.push(format!("{}{}", r.stdout, r.stderr));
    // A recipient a submission left for the deliverer (its list not there yet).
    fs::remove_file(&list).unwrap();
    env.sendmail(&["-odq", "lst"], MSG).code(0);
    link();
    let r = env.sendmail(&["-qf"], b"");
    said.push(format!("{}{}", r.stdout, r.stderr));
    assert!(
        env.entries().is_empty(),
        "{}\n{}",
        env.listing(),
        said.join("\n")
    );
    let msgs = peer.wait_for(1, Duration::from_secs(10));
    let all: String = msgs.iter().map(|(j, _)| j.as_str()).collect();
    assert!(all.contains("inc-ok@example.org"), "{all}");
    let reports = fs::read_to_string(mbox(&env, "root")).expect("reports");
    let told = reports
        .lines()
        .filter(|l| l.starts_with("550 5.7.1 ") && l.ends_with(&refusal))
        .count();
    assert!(told >= 3, "{refusal:?} in\n{reports}");
    let logged = fs::read_to_string(&log).unwrap_or_default();
    for (what, text) in [
        ("the peer", peer.transcript()),
        ("the messages", all),
        ("the reports", reports),
        ("the log", logged),
        ("the output", said.join("\n")),
    ] {
        assert!(
            !text.contains("secret-leak") && !text.contains("root only secret"),
            "{what}: {text}"
        );
    }
}

/// A file named as the aliases that is not text (a NUL octet: `/proc/1/environ`, a
/// binary named by mistake) is used by no delivery, never taken silently: `-bv` of a
/// local name says why, with the file and line (exit 75, the recipient waits), and
/// `rsendmail-admin check` fails it.
#[test]
fn an_aliases_file_with_a_nul_octet_is_refused_with_its_line() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let aliases = env.dir.join("aliases");
    // As the environment of a process reads: NUL-separated, no newline.
    fs::write(&aliases, "HOME=/root\0PATH=/usr/bin:/bin\0TERM=linux\0").unwrap();
    let fault = format!(
        "{}: line 1: a NUL octet; the file is not text",
        aliases.display()
    );
    let r = env.sendmail(&["-bv", "root"], b"");
    assert!(
        r.stdout
            .contains(&format!("root... alias not read: {fault}")),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    r.code(75);
    let admin = Path::new(env!("CARGO_BIN_EXE_rsendmail-admin"));
    let c = env.run_raw(admin, &["-C", env.conf.to_str().unwrap(), "check"], b"");
    assert!(
        c.stdout
            .lines()
            .any(|l| l.starts_with(&format!("FAIL aliases: {fault}"))),
        "{}",
        c.stdout
    );
}

/// `-bv` by a user who may not read the aliases file (`-oA` naming it) says that it
/// could not be read, never `User unknown` for a name it may well alias: the recipient
/// waits (exit 75, EX_TEMPFAIL, as sendmail queues a recipient whose alias database is
/// unavailable).
#[test]
fn bv_with_an_aliases_file_the_user_cannot_read_says_so() {
    if !can_switch_user() {
        return;
    }
    let env = local_env("nosuchuser-alias: root\n", None);
    let aliases = env.dir.join("aliases");
    fs::set_permissions(&aliases, fs::Permissions::from_mode(0o600)).unwrap();
    let dir = env.dir.join("ubin");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let bin = user_visible_bin(&dir, "sendmail");
    let oa = format!("-oA{}", aliases.display());
    let out = as_user(
        &bin,
        &[
            "-C",
            env.conf.to_str().unwrap(),
            "-bv",
            &oa,
            "nosuchuser-alias",
        ],
        &[],
        b"",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!(
            "nosuchuser-alias... alias not read: cannot open {}: Permission denied",
            aliases.display()
        )) && !said.contains("User unknown"),
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(75), "{out:?}");
}

/// A problem of an aliases file not everyone may read names its line and what is wrong,
/// never the line's text (a file named by mistake, `/etc/shadow`); one everyone may
/// read is quoted as sendmail quotes it.
#[test]
fn alias_problems_quote_no_text_of_a_file_not_everyone_may_read() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let aliases = env.dir.join("aliases");
    fs::write(
        &aliases,
        "\"\": s3cret-one\nsecret-two-x:\nsecret-three: a\nsecret-three: b\n",
    )
    .unwrap();
    for (mode, shown) in [(0o644, true), (0o600, false)] {
        fs::set_permissions(&aliases, fs::Permissions::from_mode(mode)).unwrap();
        let r = env.sendmail(&["-bi"], b"");
        let all = format!("{}{}", r.stdout, r.stderr);
        for l in [1, 2, 4] {
            assert!(
                all.contains(&format!("{}: line {l}: ", aliases.display())),
                "{mode:o}: {all}"
            );
        }
        assert_eq!(all.contains("s3cret-one"), shown, "{mode:o}: {all}");
        assert_eq!(all.contains("secret-two-x"), shown, "{mode:o}: {all}");
        assert_eq!(all.contains("secret-three"), shown, "{mode:o}: {all}");
    }
}

/// The processes of the queue run started as `pid` that a crash or `kill -9` of the
/// run takes: it and its descendants that are rsendmail's deliverers. Not a local
/// delivery's supervisor (`--supervise`), nor what delivers (`--mbox`, a program).
fn runner_processes(pid: u32) -> Vec<i32> {
    let mut all: Vec<(i32, i32)> = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        all.push((p, ppid));
    }
    let mut tree = vec![pid as i32];
    let mut i = 0;
    while let Some(&parent) = tree.get(i) {
        for &(p, pp) in &all {
            if pp == parent && !tree.contains(&p) {
                tree.push(p);
            }
        }
        i += 1;
    }
    tree.into_iter()
        .filter(|p| {
            let exe = fs::read_link(format!("/proc/{p}/exe")).ok();
            let cmd = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            exe.is_some_and(|e| {
                e.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("rsendmail"))
            }) && !cmd.contains("--supervise")
                && !cmd.contains("--mbox")
        })
        .collect()
}

/// Whether a process below `pid` has `word` in its command line.
fn below_runs(pid: u32, word: &str) -> bool {
    fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let p = e.file_name().to_string_lossy().into_owned();
        p.parse::<u32>().is_ok_and(|n| n != pid)
            && fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(word))
    })
}

/// Kill the queue run `runner` as a crash would: SIGKILL to it and its deliverers
/// ([`runner_processes`]) at once, then reap it.
fn kill_runner(runner: &mut std::process::Child) {
    let procs = runner_processes(runner.id());
    assert!(!procs.is_empty());
    for p in procs {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = runner.wait();
}

/// Start a queue run (`sendmail -qf`) as root.
fn spawn_run(env: &Env) -> std::process::Child {
    Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-qf"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Whether entry `id`'s queue file is locked (by a deliverer, or a delivery's
/// supervisor) now; false once it is gone.
fn entry_locked(env: &Env, id: &str) -> bool {
    match fs::File::open(env.spool.join(format!("qf{id}"))) {
        Ok(f) => match f.try_lock_shared() {
            Ok(()) => false,
            Err(_) => true,
        },
        Err(_) => false,
    }
}

fn lines_of(path: &Path, word: &str) -> usize {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == word)
        .count()
}

/// A command alias `name` in `env`'s aliases that writes `start` to its log, waits for
/// its gate (a file) to be made, then runs `tail` (`{dir}` in it: a directory anyone may
/// write, the log's and the gate's); that directory, the gate and the log.
fn gated_program(env: &Env, name: &str, tail: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = open_dir(env, name);
    let (gate, log) = (d.join("gate"), d.join("log"));
    fs::write(
        env.dir.join("aliases"),
        format!(
            "{name}: \"|echo start >> {log}; while [ ! -e {gate} ]; do sleep 0.05; done; {tail}\"\n",
            log = log.display(),
            gate = gate.display(),
            tail = tail.replace("{dir}", &d.display().to_string()),
        ),
    )
    .unwrap();
    (d, gate, log)
}

/// Queues `msg` to `rcpt` (`-odq`), starts a queue run, and once `started(the run's
/// pid)` holds (`what`), and a moment more, kills the run as a crash would
/// ([`kill_runner`]). The entry's ID, and the killed run's pid.
fn queue_and_kill_its_run(
    env: &Env,
    rcpt: &str,
    msg: &[u8],
    what: &str,
    started: impl Fn(u32) -> bool,
) -> (String, u32) {
    env.sendmail(&["-odq", rcpt], msg).code(0);
    let id = env.only_id();
    let mut runner = spawn_run(env);
    let pid = runner.id();
    crate::harness::wait_until(Duration::from_secs(60), what, || started(pid));
    // What it started has gone as far as it goes (a pipe filled, a lock waited for).
    std::thread::sleep(Duration::from_millis(300));
    kill_runner(&mut runner);
    (id, pid)
}

#[test]
fn a_program_that_outlives_a_killed_runner_runs_once() {
    // A `|program` still running when its queue run is killed (SIGKILL to the run and
    // its deliverers, not to the program): a run meanwhile finds the entry locked and
    // leaves it (not an attempt), and once the program ends the next run records it
    // delivered (from the delivery journal) without running it again.
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let (_, gate, log) = gated_program(&env, "prog", "echo end >> {dir}/log");
    let (id, _) = queue_and_kill_its_run(&env, "prog", MSG, "the program started", |_| {
        lines_of(&log, "start") == 1
    });
    let sf = env.spool.join(format!("sf{id}"));
    let state = fs::read(&sf).ok();
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(lines_of(&log, "start"), 1, "run again while it runs");
    assert_eq!(fs::read(&sf).ok(), state, "the busy entry was not tried");
    fs::write(&gate, "").unwrap();
    crate::harness::wait_until(Duration::from_secs(60), "the program ended", || {
        lines_of(&log, "end") == 1 && !entry_locked(&env, &id)
    });
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(lines_of(&log, "start"), 1, "run again after the restart");
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert!(!env.spool.join(format!("jf{id}")).exists());
    assert!(!sf.exists());
    // Delivered: nobody was told otherwise.
    assert!(!mbox(&env, "root").exists(), "a report was sent");
}

#[test]
fn a_mailbox_append_awaiting_its_lock_when_its_runner_is_killed_is_made_once_later() {
    // The `--mbox` child waits for the mailbox's fcntl lock while its queue run is
    // killed; once the lock is let go it appends nothing (the deliverer, gone, gives no
    // go, which it gives only after a look at the entry's mark), its supervisor lets go
    // of the entry and of the dotlock, and the next run delivers the message once.
    if !is_root() || !require("python3") {
        return;
    }
    let env = local_env("", None);
    env.add_config("O Timeout.mboxlock=60s\n");
    let path = mbox(&env, "root");
    fs::write(&path, "").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"#,
        )
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held");
    }
    let (id, pid) = queue_and_kill_its_run(&env, "root", MSG, "the mailbox child", |pid| {
        below_runs(pid, "--mbox")
    });
    drop(holder.stdin.take());
    let _ = holder.wait();
    crate::harness::wait_until(Duration::from_secs(60), "the mailbox child gone", || {
        !entry_locked(&env, &id) && !below_runs(pid, "--mbox")
    });
    assert_eq!(mbox_summary(&path), Vec::<String>::new());
    assert!(!PathBuf::from(format!("{}.lock", path.display())).exists());
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    let got = mbox_summary(&path);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("|test|"), "{got:?}");
}

#[test]
fn a_program_never_takes_a_message_cut_short_by_a_killed_runner() {
    // A large message fed to a program that takes all its input and exits 0: the run
    // killed while the program has read only part of it. The program gets the whole
    // message, once; never a truncated copy counted delivered.
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let (d, gate, log) = gated_program(&env, "big", "cat > {dir}/copy.$$");
    let mut msg = b"Subject: big\n\n".to_vec();
    for i in 0..40_000 {
        msg.extend_from_slice(format!("line {i:06} of a long message to a program\n").as_bytes());
    }
    msg.extend_from_slice(b"the last line\n");
    // Killed once the feed has filled the pipe and waits for the program.
    let (id, _) = queue_and_kill_its_run(&env, "big", &msg, "the program started", |_| {
        lines_of(&log, "start") == 1
    });
    fs::write(&gate, "").unwrap();
    crate::harness::wait_until(Duration::from_secs(60), "the first delivery ended", || {
        !entry_locked(&env, &id)
    });
    env.sendmail(&["-qf"], b"").code(0);
    crate::harness::wait_until(Duration::from_secs(60), "the queue empty", || {
        env.entries().is_empty()
    });
    let copies: Vec<Vec<u8>> = fs::read_dir(&d)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("copy."))
        .map(|e| fs::read(e.path()).unwrap())
        .collect();
    for c in &copies {
        assert!(
            c.ends_with(b"\nthe last line\n") && c.len() > msg.len(),
            "a copy of {} octets, cut short",
            c.len()
        );
    }
    assert_eq!(copies.len(), 1, "whole copies");
}

#[test]
fn a_journalled_delivery_is_not_pending_and_not_made_again() {
    // The delivery journal (`jf<ID>`) a supervisor leaves when its deliverer died:
    // mailq shows its recipient delivered (not listed) while it is there, and the next
    // run records it and delivers only the others. A journal with lines that are not
    // one's (garbage, a recipient out of range, a line cut short) adds nothing.
    if !is_root() || !can_switch_user() {
        return;
    }
    // No `.forward` of the test user's meanwhile.
    let _turn = mailbox_turn();
    let env = local_env("", None);
    env.sendmail(&["-odq", "root", TEST_USER], MSG).code(0);
    let id = env.only_id();
    let jf = env.spool.join(format!("jf{id}"));
    fs::write(
        &jf,
        "garbage\nrcpt 7 delivered 250\nrcpt 0 delivered 250%202.0.0%20delivered\nrcpt 1 deliv",
    )
    .unwrap();
    let q = env.mailq(&[]);
    let listed = |who: &str| q.lines().any(|l| l.trim() == who);
    assert!(listed(TEST_USER), "{q}");
    assert!(!listed("root"), "{q}");
    let json = env.json();
    assert!(!json.iter().any(|l| l.contains("\"root@")), "{json:?}");
    env.sendmail(&["-qf"], b"").code(0);
    assert!(
        env.entries().is_empty(),
        "{}\n{}",
        env.listing(),
        env.mailq(&[])
    );
    assert!(!jf.exists());
    assert!(!mbox(&env, "root").exists(), "root's copy was made again");
    assert_eq!(mbox_summary(&mbox(&env, TEST_USER)).len(), 1);
}

#[test]
fn a_journal_without_its_entry_goes_with_the_leftovers() {
    if !is_root() {
        return;
    }
    let env = local_env("", None);
    let orphan = env.spool.join("jf6AM5eIkR004036");
    fs::write(&orphan, "rcpt 0 delivered 250\n").unwrap();
    // `-q` detaches its run: the journal goes when that run has listed the spool.
    env.sendmail(&["-q"], b"").code(0);
    wait_until(
        Duration::from_secs(20),
        "the orphan journal removed",
        || !orphan.exists(),
    );
}

/// A `.forward` that is not used (group writable) is said in an interactive delivery's
/// `-v`, as sendmail 8.17 says it before delivering to the mailbox (`USER... forward:
/// PATH: Group writable file`, then `USER... Connecting to local...`); the mail goes to
/// the mailbox.
#[test]
fn an_unused_forward_is_said_in_v_before_the_mailbox_delivery() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let _turn = forward_turn();
    let env = local_env("", None);
    let fwd = write_forward("f1@example.org\n");
    fs::set_permissions(&fwd, fs::Permissions::from_mode(0o664)).unwrap();
    let r = env.sendmail(&["-odi", "-v", TEST_USER], MSG);
    r.code(0);
    let said = format!(
        "{TEST_USER}... forward: {}: Group writable file\n{TEST_USER}... Connecting to local...\n",
        fwd.display()
    );
    assert!(r.stdout.contains(&said), "{}", r.stdout);
    assert!(mbox(&env, TEST_USER).exists());
    // Without -v, nothing is said.
    let r = env.sendmail(&["-odi", TEST_USER], MSG);
    r.code(0);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let _ = fs::remove_file(&fwd);
}

/// An interactive delivery killed after it saved the message in the sender's
/// `~/dead.letter` and before its record (the unlink of the entry): the next delivery
/// finds the save made (the key written before it, the message at the file's end) and
/// takes the record the killed one was to make: the recipient is not tried again, and
/// the message is not saved twice.
#[test]
fn a_dead_letter_is_saved_once_when_its_delivery_is_made_again() {
    if !can_switch_user() || !require("strace") || !have_peer() {
        return;
    }
    let env = local_env("", None);
    let peer = Peer::start(&env.dir, &[]);
    let parent = open_dir(&env, "spool-parent");
    let dead = test_user().home.join("dead.letter");
    let _ = fs::remove_file(&dead);
    let spool = parent.join("spool");
    make_user_spool(&spool);
    let conf = parent.join("user.conf");
    fs::write(
        &conf,
        format!(
            "SPOOLDIR {}\nMAILNAME test.example\nMAILSPOOL {}\nSMARTHOST 127.0.0.1\nPORT {}\n",
            spool.display(),
            parent.join("mail").display(),
            peer.port
        ),
    )
    .unwrap();
    let bin = user_visible_bin(&parent, "sendmail");
    // The relay refuses the recipient (550): a failure of the delivery.
    let out = as_user(
        &bin,
        &[
            "-C",
            conf.to_str().unwrap(),
            "-odq",
            "reject5-z@example.org",
        ],
        &[],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let id = fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find_map(|n| n.strip_prefix("qf").map(str::to_string))
        .expect("queued");
    let qf = spool.join(format!("qf{id}"));
    // The interactive delivery a submission starts (`-odi`), as it starts it.
    let deliver = |strace: bool| {
        let mut cmd = Command::new(if strace { "strace" } else { "runuser" });
        if strace {
            cmd.args(["-f", "-qq", "-o", "/dev/null", "-P"])
                .arg(&qf)
                .args(["-e", "trace=unlink,unlinkat"])
                .args(["-e", "inject=unlink,unlinkat:signal=KILL", "--", "runuser"]);
        }
        cmd.args(["-u", TEST_USER, "--", "env", "-i", "PATH=/usr/bin:/bin"])
            .arg(parent.join("rsendmail-deliver"))
            .args([
                "--entry",
                &id,
                "--",
                "sendmail",
                "-C",
                conf.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let saved = || fs::read_to_string(&dead).unwrap_or_default();
    let out = deliver(true);
    assert!(qf.exists(), "killed before the unlink: {out:?}");
    assert_eq!(saved().matches("\nhello\n").count(), 1, "{out:?}");
    let tried = || {
        peer.transcript()
            .matches(" RCPT reject5-z@example.org")
            .count()
    };
    assert_eq!(tried(), 1, "{}", peer.transcript());
    let out = deliver(false);
    assert!(!qf.exists(), "{out:?}");
    assert_eq!(tried(), 1, "tried again: {}", peer.transcript());
    assert_eq!(saved().matches("\nhello\n").count(), 1, "{}", saved());
    let _ = fs::remove_file(&dead);
}
