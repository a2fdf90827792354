//! Per-user spools and privileges, run as the unprivileged test user.

use crate::harness::{
    Env, MSG, TEST_USER, as_user, bin, can_switch_user, test_user, user_visible_bin,
};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A directory the test user owns.
fn user_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rsendmail-priv-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    let st = Command::new("chown")
        .args([TEST_USER, d.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    d
}

/// A configuration `name` in `dir`, readable by all, whose spool is `dir/spool`, the
/// test user's own (made here when missing).
fn spool_conf(dir: &Path, name: &str) -> PathBuf {
    if !dir.join("spool").exists() {
        crate::harness::make_user_spool(&dir.join("spool"));
    }
    let conf = dir.join(name);
    write_spool_conf(&conf, &dir.join("spool"), 0o644);
    conf
}

/// Write the configuration `conf` (mode `mode`): SPOOLDIR `spool`, MAILNAME test.example.
fn write_spool_conf(conf: &Path, spool: &Path, mode: u32) {
    fs::write(
        conf,
        format!("SPOOLDIR {}\nMAILNAME test.example\n", spool.display()),
    )
    .unwrap();
    fs::set_permissions(conf, fs::Permissions::from_mode(mode)).unwrap();
}

/// The environment that gives the test user `home` as HOME and `state` as XDG_STATE_HOME.
fn home_envs<'a>(home: &'a Path, state: &'a Path) -> [(&'static str, &'a str); 2] {
    [
        ("HOME", home.to_str().unwrap()),
        ("XDG_STATE_HOME", state.to_str().unwrap()),
    ]
}

/// The queue file (`qf...`) in `spool`.
fn queue_file(spool: &Path) -> PathBuf {
    fs::read_dir(spool)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("qf"))
        .unwrap()
        .path()
}

/// Give `p` the group fit for a spool ([`crate::harness::fit_group`]): one the test
/// user is not in, and nobody's primary group.
fn chgrp_spool_group(p: &Path) {
    assert!(
        Command::new("chgrp")
            .args([crate::harness::fit_group().0, p.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
}

/// A directory for set-gid copies, on the same file system as the build (not a nosuid
/// /tmp), that everyone may enter.
pub(crate) fn setgid_dir(tag: &str) -> PathBuf {
    let here = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rsendmail-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&here);
    fs::create_dir_all(&here).unwrap();
    fs::set_permissions(&here, fs::Permissions::from_mode(0o755)).unwrap();
    here
}

/// A directory everyone may enter and read (0755), made at `p`.
fn open_dir(p: &Path) {
    fs::create_dir(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A directory the test user owns ([`user_dir`] `tag`), and a set-gid `sendmail` in a
/// directory of its own ([`setgid_dir`] `sgid-tag`, [`setgid_copy`]): the three paths.
fn setgid_case(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = user_dir(tag);
    let here = setgid_dir(&format!("sgid-{tag}"));
    let sg = setgid_copy(&here);
    (dir, here, sg)
}

/// `rsendmail` installed set-group-id to the spool's group (a group the test user is not in) as
/// `sendmail` in `here` ([`setgid_install`]).
fn setgid_copy(here: &Path) -> PathBuf {
    setgid_install(here, &bin(), "sendmail")
}

/// `program` installed set-group-id to the spool's group (a group the test user is not in) as `name`
/// in `here`, after proof that set-gid works on this file system (a set-gid `id`
/// reports that group).
pub(crate) fn setgid_install(here: &Path, program: &Path, name: &str) -> PathBuf {
    let id = here.join("id");
    crate::harness::copy_executable(Path::new("/usr/bin/id"), &id);
    chgrp_spool_group(&id);
    fs::set_permissions(&id, fs::Permissions::from_mode(0o2755)).unwrap();
    let out = as_user(&id, &["-gn"], &[], b"");
    assert_eq!(
        text(&out.stdout).trim(),
        crate::harness::fit_group().0,
        "set-gid is not honoured here"
    );
    let sg = here.join(name);
    crate::harness::copy_executable(program, &sg);
    chgrp_spool_group(&sg);
    fs::set_permissions(&sg, fs::Permissions::from_mode(0o2755)).unwrap();
    sg
}

/// A directory only the spool's group may write.
/// A system configuration in `here` (`rsendmail.conf`, 0644) whose spool is a
/// group-only directory there: the spool and the config file.
pub(crate) fn system_config(here: &Path) -> (PathBuf, PathBuf) {
    let spool = here.join("spool");
    group_only_dir(&spool);
    let conf = here.join("rsendmail.conf");
    write_spool_conf(&conf, &spool, 0o644);
    (spool, conf)
}

fn group_only_dir(p: &Path) {
    fs::create_dir(p).unwrap();
    chgrp_spool_group(p);
    fs::set_permissions(p, fs::Permissions::from_mode(0o2770)).unwrap();
}

/// The built-in per-user spool (no system configuration) is held to the spool's rule,
/// with root and the caller as the trusted owners: a state directory whose path leads,
/// through the caller's own link, to a link another user owns, or through a directory
/// another user owns, is refused (78, naming it and the link it was reached through) and
/// nothing is made there; the caller's own path is taken.
#[test]
fn per_user_spool_reached_through_another_users_link_or_directory_is_refused() {
    if !can_switch_user() {
        return;
    }
    let other = crate::harness::other_user().uid;
    for through_dir in [false, true] {
        let home = user_dir(if through_dir { "pu-dir" } else { "pu-link" });
        let b = user_visible_bin(&home, "sendmail");
        let real = home.join("real");
        fs::create_dir(&real).unwrap();
        std::os::unix::fs::chown(&real, Some(test_user().uid), None).unwrap();
        // Another user's link to the caller's directory, or another user's directory
        // that the caller's link passes through.
        let theirs = home.join("theirs");
        let target = if through_dir {
            open_dir(&theirs);
            std::os::unix::fs::chown(&theirs, Some(other), None).unwrap();
            theirs.join("..").join("real")
        } else {
            std::os::unix::fs::symlink(&real, &theirs).unwrap();
            std::os::unix::fs::lchown(&theirs, Some(other), None).unwrap();
            theirs.clone()
        };
        let state = home.join("state");
        std::os::unix::fs::symlink(&target, &state).unwrap();
        std::os::unix::fs::lchown(&state, Some(test_user().uid), None).unwrap();
        let envs = home_envs(&home, &state);
        let out = as_user(&b, &["-odq", TEST_USER], &envs, MSG);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(78), "{said}");
        let nobody = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(other))
            .unwrap()
            .map_or(other.to_string(), |u| u.name);
        let why = if through_dir {
            format!("is owned by the user \"{nobody}\"")
        } else {
            format!("is a symbolic link owned by the user \"{nobody}\"")
        };
        let via = format!("{} ({nobody}:", theirs.display());
        let link = format!(", reached through the symbolic link {}, ", state.display());
        assert!(
            said.contains(&why) && said.contains(&via) && said.contains(&link),
            "{said}"
        );
        assert!(
            !real.join("rsendmail").exists(),
            "made under {}",
            real.display()
        );
        // The caller's own: taken.
        std::os::unix::fs::lchown(&theirs, Some(test_user().uid), None).unwrap();
        let out = as_user(&b, &["-odq", TEST_USER], &envs, MSG);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert!(real.join("rsendmail/spool").is_dir());
        let _ = fs::remove_dir_all(&home);
    }
}

#[test]
fn per_user_default_spool_without_config() {
    // The test user's mailbox is delivered to: no `.forward` meanwhile.
    let _turn = crate::local::mailbox_turn();
    if !can_switch_user() {
        return;
    }
    assert!(
        !Path::new("/etc/rsendmail/rsendmail.conf").exists(),
        "this test needs a machine without a system config"
    );
    let home = user_dir("home");
    let b = user_visible_bin(&home, "sendmail");
    let mq = home.join("mailq");
    std::os::unix::fs::symlink(&b, &mq).unwrap();
    let state = home.join("state");
    let envs = home_envs(&home, &state);
    // A local recipient: the run below needs no DNS (tests talk to 127.0.0.1 only).
    let out = as_user(&b, &["-odq", TEST_USER], &envs, MSG);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let spool = state.join("rsendmail/spool");
    let entries: Vec<_> = fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("qf"))
        .collect();
    assert_eq!(entries.len(), 1);
    let md = entries[0].metadata().unwrap();
    assert_eq!(md.mode() & 0o777, 0o600, "per-user entries are private");
    assert_eq!(fs::metadata(&spool).unwrap().mode() & 0o777, 0o700);
    let uid = fs::metadata(&home).unwrap().uid();
    assert_eq!(md.uid(), uid);
    let out = as_user(&mq, &[], &envs, b"");
    assert!(
        text(&out.stdout).contains("(1 request)"),
        "{}",
        text(&out.stdout)
    );
    // Without XDG_STATE_HOME, ~/.local/state is used.
    let out = as_user(
        &b,
        &["-odq", "bob@example.org"],
        &[("HOME", home.to_str().unwrap())],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(home.join(".local/state/rsendmail/spool").is_dir());
    // The owner of a per-user spool may run its queue: the local recipient is the user,
    // whose own mailbox is under the state directory (created 0700/0600 on first use).
    let out = as_user(&b, &["-qf"], &envs, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = as_user(&mq, &[], &envs, b"");
    assert!(
        text(&out.stdout).contains("is empty"),
        "{}",
        text(&out.stdout)
    );
    let mbox = state.join("rsendmail/mail").join(TEST_USER);
    let body = fs::read_to_string(&mbox).unwrap();
    assert_eq!(
        body.lines().filter(|l| l.starts_with("From ")).count(),
        1,
        "{body}"
    );
    assert!(body.starts_with(&format!("From {TEST_USER}@")), "{body}");
    assert_eq!(fs::metadata(&mbox).unwrap().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(&mbox).unwrap().uid(), uid);
    assert_eq!(
        fs::metadata(state.join("rsendmail/mail")).unwrap().mode() & 0o777,
        0o700
    );
    let _ = fs::remove_dir_all(&home);
}

#[test]
fn queue_of_another_user_may_not_be_run() {
    if !can_switch_user() {
        return;
    }
    let env = Env::new();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let dir = user_dir("q");
    let b = user_visible_bin(&dir, "sendmail");
    // The config must be readable by the user; the spool stays root's.
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&env.conf, fs::Permissions::from_mode(0o644)).unwrap();
    let out = as_user(&b, &["-C", env.conf.to_str().unwrap(), "-q"], &[], b"");
    assert_eq!(out.status.code(), Some(77));
    assert_eq!(
        text(&out.stdout),
        "You do not have permission to process the queue\n"
    );
    assert_eq!(env.entries().len(), 1);
    let _ = fs::remove_dir_all(&dir);
}

/// A set-group-id rsendmail given `-C` or `-oQ` by an ordinary user drops the group
/// before using them: a spool only the group may write stays unwritten.
#[test]
fn setgid_binary_drops_group_for_unsafe_options() {
    if !can_switch_user() {
        return;
    }
    let (dir, here, sg) = setgid_case("setgid");

    // A spool directory only the spool's group may write.
    let spool = here.join("groupspool");
    group_only_dir(&spool);
    let conf = dir.join("evil.conf");
    fs::write(&conf, format!("SPOOLDIR {}\n", spool.display())).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();

    let out = as_user(
        &sg,
        &["-C", conf.to_str().unwrap(), "-odq", "bob@example.org"],
        &[],
        MSG,
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("Permission denied"),
        "{}",
        text(&out.stdout)
    );
    let out = as_user(
        &sg,
        &[
            &format!("-oQ{}", spool.display()),
            "-odq",
            "bob@example.org",
        ],
        &[],
        MSG,
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = as_user(
        &sg,
        &[
            "-O",
            &format!("QueueDirectory={}", spool.display()),
            "-odq",
            "b@x",
        ],
        &[],
        MSG,
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        fs::read_dir(&spool).unwrap().count(),
        0,
        "the group-only spool was written"
    );
    let _ = fs::remove_dir_all(&here);
    let _ = fs::remove_dir_all(&dir);
}

/// An ordinary user setting the sender with -f gets sendmail's warning header; root and a
/// user naming themselves do not.
#[test]
fn untrusted_f_adds_authentication_warning() {
    if !can_switch_user() {
        return;
    }
    let dir = user_dir("xauth");
    let b = user_visible_bin(&dir, "sendmail");
    let state = dir.join("state");
    let envs = home_envs(&dir, &state);
    let conf = spool_conf(&dir, "c.conf");
    let c = conf.to_str().unwrap();
    for (sender, warned) in [("evil@example.com", true), (TEST_USER, false)] {
        let out = as_user(
            &b,
            &["-C", c, "-odq", "-f", sender, "bob@example.org"],
            &envs,
            MSG,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let qf = queue_file(&dir.join("spool"));
        let m = fs::read_to_string(&qf).unwrap();
        let want = format!(
            "X-Authentication-Warning: test.example: {TEST_USER} set sender to {sender} using -f\n"
        );
        assert_eq!(m.contains(&want), warned, "{m}");
        assert_eq!(m.contains("X-Authentication-Warning"), warned, "{m}");
        fs::remove_file(qf).unwrap();
    }
    // root is trusted.
    let env = Env::new();
    env.sendmail(&["-odq", "-f", "evil@example.com", "bob@example.org"], MSG)
        .code(0);
    assert!(!env.only_message().contains("X-Authentication-Warning"));
    let _ = fs::remove_dir_all(&dir);
}

/// An ordinary user's `-bs` dialogue naming a sender other than the user's own address
/// gets sendmail's `user owned process doing -bs` warning (compat-tests
/// `bs-untrusted-user`, `bs-untrusted-user-own-sender`, `bs-untrusted-user-bare-login`);
/// root's does not.
#[test]
fn untrusted_bs_adds_authentication_warning() {
    if !can_switch_user() {
        return;
    }
    let dir = user_dir("xauth-bs");
    let b = user_visible_bin(&dir, "sendmail");
    let state = dir.join("state");
    let envs = home_envs(&dir, &state);
    let conf = spool_conf(&dir, "c.conf");
    let c = conf.to_str().unwrap();
    let dialogue = |sender: &str| {
        format!(
            "HELO client.example\r\nMAIL FROM:<{sender}>\r\nRCPT TO:<bob@example.org>\r\n\
             DATA\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n"
        )
    };
    let own = format!("{TEST_USER}@test.example");
    for (sender, warned) in [
        ("root@test.example", true),
        ("", true),
        (own.as_str(), false),
        (TEST_USER, false),
    ] {
        let out = as_user(
            &b,
            &["-C", c, "-odq", "-bs"],
            &envs,
            dialogue(sender).as_bytes(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert!(
            text(&out.stdout).contains("Message accepted"),
            "{}",
            text(&out.stdout)
        );
        let qf = queue_file(&dir.join("spool"));
        let m = fs::read_to_string(&qf).unwrap();
        let want = format!(
            "X-Authentication-Warning: test.example: {TEST_USER} owned process doing -bs\n"
        );
        assert_eq!(m.contains(&want), warned, "{sender}: {m}");
        // After the fields rsendmail adds, before the message's own.
        if warned {
            let at = m.find(&want).unwrap();
            assert!(m.find("Message-Id:").unwrap() < at, "{m}");
            assert!(at < m.find("Subject: s").unwrap(), "{m}");
        }
        fs::remove_file(qf).unwrap();
    }
    // root is trusted.
    let env = Env::new();
    let r = env.sendmail(&["-odq", "-bs"], dialogue("nobody@test.example").as_bytes());
    r.code(0);
    assert!(!env.only_message().contains("X-Authentication-Warning"));
    let _ = fs::remove_dir_all(&dir);
}

/// `-X` (and `-d`) from an ordinary user cost the set-gid binary its group before the
/// file is opened: a traffic log in a directory only the group may write stays
/// unwritten, while one in the user's own directory is written.
#[test]
fn setgid_binary_drops_group_before_opening_the_x_file() {
    if !can_switch_user() {
        return;
    }
    let (dir, here, sg) = setgid_case("setgid-x");
    deliverer_beside(&here);
    let group_dir = here.join("grouplog");
    group_only_dir(&group_dir);
    let state = dir.join("state");
    let envs = home_envs(&dir, &state);
    for extra in [&[][..], &["-d0.1"][..]] {
        let log = group_dir.join("traffic.log");
        let mut args = vec!["-X", log.to_str().unwrap(), "-q"];
        args.extend_from_slice(extra);
        let out = as_user(&sg, &args, &envs, b"");
        // Refused by rsendmail itself before the queue run starts (EX_CANTCREAT).
        assert_eq!(out.status.code(), Some(73), "{}", text(&out.stdout));
        assert_eq!(
            text(&out.stdout),
            format!("cannot open {}: Permission denied\n", log.display()),
            "{}",
            text(&out.stderr)
        );
        assert!(!log.exists(), "the group-only directory was written");
    }
    // The same option with a file the user may write works: the refusal above came
    // from the lost group, not from -X being broken.
    let mine = dir.join("traffic.log");
    let out = as_user(&sg, &["-X", mine.to_str().unwrap(), "-q"], &envs, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(mine.exists());
    assert_eq!(fs::read_dir(&group_dir).unwrap().count(), 0);
    let _ = fs::remove_dir_all(&here);
    let _ = fs::remove_dir_all(&dir);
}

/// A set-gid rsendmail starts its deliverer with no variable that could choose a file
/// (TMPDIR, SSL_CERT_FILE, HOSTALIASES, RES_OPTIONS, HOME, ...): only a fixed PATH. A
/// stand-in deliverer beside the binary records the environment it got.
#[test]
fn setgid_binary_passes_no_file_choosing_environment() {
    if !can_switch_user() {
        return;
    }
    let (dir, here, sg) = setgid_case("setgid-env");
    let plain = here.join("plain");
    open_dir(&plain);
    let not_sg = plain.join("sendmail");
    crate::harness::copy_executable(&bin(), &not_sg);
    fs::set_permissions(&not_sg, fs::Permissions::from_mode(0o755)).unwrap();
    let record = dir.join("env.txt");
    let stand_in = format!("#!/bin/sh\nenv > {}\n", record.display());
    for d in [&here, &plain] {
        let p = d.join("rsendmail-deliver");
        fs::write(&p, &stand_in).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let hostile = [
        ("TMPDIR", "/tmp/evil"),
        ("SSL_CERT_FILE", "/tmp/evil.pem"),
        ("SSL_CERT_DIR", "/tmp/evil"),
        ("HOSTALIASES", "/tmp/evil.hosts"),
        ("RES_OPTIONS", "debug"),
        ("LOCALDOMAIN", "evil.example"),
        ("HOME", "/tmp/evil"),
        ("XDG_STATE_HOME", "/tmp/evil"),
    ];
    let out = as_user(&sg, &["-bv", "root"], &hostile, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let got = fs::read_to_string(&record).unwrap();
    for (k, _) in hostile {
        assert!(
            !got.lines().any(|l| l.starts_with(&format!("{k}="))),
            "{k} reached the deliverer:\n{got}"
        );
    }
    assert!(got.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), "{got}");
    // Without set-gid, the caller's environment is the caller's business: it passes.
    fs::remove_file(&record).unwrap();
    let out = as_user(&not_sg, &["-bv", "root"], &hostile, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let got = fs::read_to_string(&record).unwrap();
    assert!(got.contains("SSL_CERT_FILE=/tmp/evil.pem"), "{got}");
    let _ = fs::remove_dir_all(&here);
    let _ = fs::remove_dir_all(&dir);
}

/// Started with stdout and stderr closed, rsendmail reopens them on /dev/null before it
/// opens anything else, so no spool file becomes fd 0, 1 or 2 (where a message printed
/// later would land in the queue). Seen with strace on the real binary, as the test user.
/// (Rust's runtime reopens closed standard descriptors before `main` as well;
/// `privs::fix_std_fds` keeps the guarantee independent of that.)
#[test]
fn no_spool_file_gets_a_standard_descriptor() {
    if !can_switch_user() || !crate::harness::require("strace") {
        return;
    }
    let dir = user_dir("fds");
    let b = user_visible_bin(&dir, "sendmail");
    let state = dir.join("state");
    let trace = dir.join("trace.txt");
    let msg = dir.join("msg.txt");
    fs::write(&msg, MSG).unwrap();
    // "nosuchuser" makes rsendmail print after the entry is written.
    let script = format!(
        "exec env -i PATH=/usr/bin:/bin HOME={home} XDG_STATE_HOME={state} {b} -odq bob@example.org nosuchuser <{msg} >&- 2>&-",
        home = dir.display(),
        state = state.display(),
        b = b.display(),
        msg = msg.display()
    );
    let st = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,creat", "-o"])
        .arg(&trace)
        .args(["runuser", "-u", crate::harness::TEST_USER, "--", "sh", "-c"])
        .arg(&script)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(67), "nosuchuser is refused, bob is queued");
    let log = fs::read_to_string(&trace).unwrap();
    let spool = state.join("rsendmail/spool");
    let spool_opens: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(spool.to_str().unwrap()) && l.contains(" = "))
        .collect();
    assert!(!spool_opens.is_empty(), "no spool file opened:\n{log}");
    let mut opened = 0;
    for l in &spool_opens {
        let result = l.rsplit(" = ").next().unwrap();
        let fd: i64 = result.split(' ').next().unwrap().parse().unwrap();
        if fd >= 0 {
            opened += 1;
            assert!(fd > 2, "a spool file got fd {fd}: {l}");
        }
    }
    assert!(opened > 0, "no spool file was opened:\n{log}");
    // The closed descriptors were reopened on /dev/null (the first thing it opened).
    assert!(
        log.lines()
            .any(|l| l.contains("\"/dev/null\"") && (l.ends_with(" = 1") || l.ends_with(" = 2"))),
        "{log}"
    );
    let qf = fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("qf"))
        .count();
    assert_eq!(qf, 1);
    let _ = fs::remove_dir_all(&dir);
}

/// The files a config names for delivery are checked with the caller's rights: a user's
/// own config (`-C`) costs a set-gid rsendmail its group first, so a relay table only the
/// group may read is refused (78, nothing queued); an auth.conf only root may read is
/// accepted (the root queue runner reads it); a missing one is refused, and so is a
/// system file that never holds credentials nor a certificate (`/etc/shadow`), which
/// root's submission refuses too.
#[test]
fn files_the_config_names_are_checked_with_the_callers_rights() {
    if !can_switch_user() {
        return;
    }
    let (dir, here, sg) = setgid_case("conf-files");
    let group_dir = here.join("group");
    group_only_dir(&group_dir);
    let table = group_dir.join("relays");
    fs::write(&table, "example.org [127.0.0.1]:2525\n").unwrap();
    chgrp_spool_group(&table);
    fs::set_permissions(&table, fs::Permissions::from_mode(0o640)).unwrap();
    // Readable by the group alone, writable by root alone: a file the caller may not
    // read, though nobody she does not trust could change it.
    fs::set_permissions(&group_dir, fs::Permissions::from_mode(0o2750)).unwrap();
    let root_auth = here.join("auth.conf");
    fs::write(&root_auth, "bob|smtp.example:pw\n").unwrap();
    fs::set_permissions(&root_auth, fs::Permissions::from_mode(0o600)).unwrap();
    let spool = dir.join("spool");
    crate::harness::make_user_spool(&spool);
    let conf = dir.join("rsendmail.conf");
    let entries = || -> usize {
        fs::read_dir(&spool)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("qf"))
                    .count()
            })
            .unwrap_or(0)
    };
    let cases = [
        (
            format!("RELAYTABLE {}\n", table.display()),
            78,
            format!(
                "{}: line 3: cannot open RELAYTABLE {}: Permission denied\n",
                conf.display(),
                table.display()
            ),
        ),
        (
            format!("AUTHPATH {}\n", here.join("missing").display()),
            78,
            format!(
                "{}: line 3: cannot read AUTHPATH {}: No such file or directory\n",
                conf.display(),
                here.join("missing").display()
            ),
        ),
        (
            format!("AUTHPATH {}\n", root_auth.display()),
            0,
            String::new(),
        ),
        (
            "AUTHPATH /etc/shadow\n".to_string(),
            78,
            format!(
                "{}: line 3: AUTHPATH /etc/shadow is the system's shadow password file, not \
                 a file of credentials; correct the line\n",
                conf.display()
            ),
        ),
        (
            "CERTFILE /etc/shadow\n".to_string(),
            78,
            format!(
                "{}: line 3: CERTFILE /etc/shadow is the system's shadow password file, not \
                 a file of a certificate; correct the line\n",
                conf.display()
            ),
        ),
    ];
    for (extra, code, want) in cases {
        fs::write(
            &conf,
            format!(
                "SPOOLDIR {}\nMAILNAME test.example\n{extra}",
                spool.display()
            ),
        )
        .unwrap();
        let before = entries();
        let out = as_user(
            &sg,
            &["-C", conf.to_str().unwrap(), "-odq", "bob@example.org"],
            &[("HOME", dir.to_str().unwrap())],
            MSG,
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "{extra}{}",
            text(&out.stdout)
        );
        assert_eq!(text(&out.stdout), want, "{extra}");
        assert_eq!(entries(), before + usize::from(code == 0), "{extra}");
    }
    let _ = fs::remove_dir_all(&here);
    let _ = fs::remove_dir_all(&dir);
}

/// A `|command` target runs as the uid its queue file names (`owner=`), which only root
/// or that user's own process writes: a queue file owned by anyone else (planted or
/// copied into the spool by a member of its group) cannot make a command run as that
/// user; the recipient fails with the reason, and the same entry owned by root runs.
#[test]
fn a_queue_file_of_another_owner_cannot_run_a_command_as_someone_else() {
    use crate::harness::{is_root, other_user, test_user};
    if !is_root() || !can_switch_user() {
        return;
    }
    let env = Env::new();
    env.sendmail(&["-odq", "-f", "a@test.example", "nobody-here"], MSG);
    for q in env.entries() {
        fs::remove_file(q).unwrap();
    }
    let out = env.dir.join("out");
    fs::create_dir_all(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).unwrap();
    let uid = test_user().uid;
    for (id, case, owner) in [
        ("6AM5eIkR004034", "by-root", None),
        ("6AM5eIkR004035", "by-other", Some(other_user().uid)),
    ] {
        let qf = env.spool.join(format!("qf{id}"));
        fs::write(
            &qf,
            format!(
                "rsendmail-queue 1\nid {id}\nuser 0 root\nmode q\nsender a@test.example\n\
                 rcpt |id%20-u%20>%20{}/{case} owner={uid}\n\nSubject: x\n\nhello\n",
                out.display()
            ),
        )
        .unwrap();
        if let Some(o) = owner {
            std::os::unix::fs::chown(&qf, Some(o), None).unwrap();
        }
    }
    let r = env.sendmail(&["-qf", "-v"], b"");
    let ran: u32 = fs::read_to_string(out.join("by-root"))
        .unwrap_or_else(|e| {
            panic!(
                "the root-owned entry's command did not run: {e}\n{}",
                r.stdout
            )
        })
        .trim()
        .parse()
        .unwrap();
    assert_eq!(ran, uid);
    assert!(
        !out.join("by-other").exists(),
        "a queue file owned by another user ran a command as uid {uid}"
    );
    // Owned by neither root nor the user it records: set aside, as sendmail's readqf
    // refuses it.
    assert!(
        env.spool.join("corrupt/qf6AM5eIkR004035").exists(),
        "{}",
        r.stdout
    );
}

/// ETRN in a `-bs` session follows `-q`: a user whose own spool it is may start the run
/// (`250`); a spool the user does not own (root's, reached through its group as an
/// installed rsendmail reaches it through the set-gid program's) gets sendmail's `502 5.7.0`, and
/// its entry is not delivered (compat-tests/cases/bs-etrn-not-root).
#[test]
fn bs_etrn_follows_the_right_to_run_the_queue() {
    if !can_switch_user() {
        return;
    }
    let dir = user_dir("etrn");
    let b = user_visible_bin(&dir, "sendmail");
    let own = spool_conf(&dir, "own.conf");
    let envs = [("HOME", dir.to_str().unwrap())];
    let dialogue = b"HELO c.example\r\nETRN example.org\r\nQUIT\r\n";
    let out = as_user(
        &b,
        &["-C", own.to_str().unwrap(), "-odq", "-bs"],
        &envs,
        dialogue,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("250 2.0.0 Queuing for node example.org started"),
        "{text}"
    );
    // Root's spool, which the user may write (through its group) but does not own.
    let env = Env::new();
    env.sendmail(&["-odq", "a@example.org"], MSG).code(0);
    for entry in walk(&env.spool) {
        let mode = if entry.is_dir() { 0o2770 } else { 0o660 };
        std::os::unix::fs::chown(&entry, None, Some(test_user().gid)).unwrap();
        fs::set_permissions(&entry, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&env.conf, fs::Permissions::from_mode(0o644)).unwrap();
    let out = as_user(
        &b,
        &["-C", env.conf.to_str().unwrap(), "-odq", "-bs"],
        &envs,
        dialogue,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\r\n502 5.7.0 Sorry, we do not allow this operation\r\n"),
        "{text}"
    );
    assert_eq!(env.entries().len(), 1);
    let _ = fs::remove_dir_all(&dir);
}

/// A directory and everything under it.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while let Some(p) = out.get(i).cloned() {
        if p.is_dir()
            && let Ok(rd) = fs::read_dir(&p)
        {
            out.extend(rd.flatten().map(|e| e.path()));
        }
        i += 1;
    }
    out
}

/// The entries (`qf...` files) in `spool`; none when it is not there.
fn spool_files(spool: &Path) -> Vec<String> {
    fs::read_dir(spool)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("qf"))
                .collect()
        })
        .unwrap_or_default()
}

/// A user in the spool's group whose spool does not let the group write: the refusal
/// names the spool's owner, group and mode, not the set-gid bit, in a submission and a
/// `-bs` session alike; the exit status stays 75.
#[test]
fn a_spool_its_group_may_not_write_is_named_with_its_mode() {
    if !can_switch_user() || !cfg!(debug_assertions) {
        // The override of the system configuration's path exists in debug builds only.
        return;
    }
    let home = user_dir("nogroupw-home");
    let b = user_visible_bin(&home, "sendmail");
    let here = setgid_dir("nogroupw");
    let spool = here.join("spool");
    fs::create_dir(&spool).unwrap();
    // The test user's own group, without group write: the user is in the group.
    std::os::unix::fs::chown(&spool, Some(0), Some(test_user().gid)).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o2750)).unwrap();
    let conf = here.join("rsendmail.conf");
    write_spool_conf(&conf, &spool, 0o644);
    let envs = [
        ("HOME", home.to_str().unwrap()),
        ("XDG_STATE_HOME", home.to_str().unwrap()),
        ("RSENDMAIL_SYSTEM_CONFIG", conf.to_str().unwrap()),
    ];
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(test_user().gid))
        .unwrap()
        .unwrap()
        .name;
    let cause = format!(
        "Permission denied ({} is root:{group} 2750: its group {group} may not write to \
         it; `rsendmail-admin check` says what to fix); nothing was queued",
        spool.display()
    );
    let out = as_user(&b, &["-odq", "bob@example.org"], &envs, MSG);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains(&cause), "{}", text(&out.stdout));
    assert!(
        !text(&out.stdout).contains("set-group-id"),
        "{}",
        text(&out.stdout)
    );
    let out = as_user(&b, &["-bs"], &envs, b"QUIT\r\n");
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).starts_with("451 4.0.0 "),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains(&cause), "{}", text(&out.stdout));
    assert_eq!(spool_files(&spool), Vec::<String>::new());
    let _ = fs::remove_dir_all(&here);
    let _ = fs::remove_dir_all(&home);
}

/// Runs `script` (a shell's, with the positional parameters `args`) as root in a
/// private mount namespace where `conf` (if any) is the system configuration: mounted in
/// an overlay over /etc, never touching the real one (`MOUNT` in `script` stands for
/// that mount's command), with `stdin` on its standard input. None, said on stderr,
/// where such a namespace cannot be made.
pub fn with_system_config(
    here: &Path,
    conf: Option<&str>,
    script: &str,
    args: &[&str],
    stdin: &[u8],
) -> Option<Output> {
    let upper = here.join("ovl/u");
    let work = here.join("ovl/w");
    fs::create_dir_all(&upper).unwrap();
    fs::create_dir_all(&work).unwrap();
    if let Some(conf) = conf {
        fs::create_dir_all(upper.join("rsendmail")).unwrap();
        fs::write(upper.join("rsendmail/rsendmail.conf"), conf).unwrap();
    }
    let mount = format!(
        "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc",
        upper.display(),
        work.display()
    );
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", &format!("{mount} 2>/dev/null")])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no private mount namespace with an overlay here");
        return None;
    }
    let mut child = Command::new("unshare")
        .args(["-m", "sh", "-c", &script.replace("MOUNT", &mount), "sh"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let _ = child.stdin.take().unwrap().write_all(stdin);
    }
    Some(child.wait_with_output().unwrap())
}

/// An installed set-gid `rsendmail` (the system configuration supplied in a private
/// mount namespace, over /etc, never touching the real one) whose spool has the right
/// group but no group write: the set-gid bit is in place, so it is not blamed; the
/// spool's owner, group and mode are. Skipped where a mount namespace cannot be made.
#[test]
fn an_installed_setgid_program_blames_the_spools_mode_not_its_bit() {
    if !can_switch_user() {
        return;
    }
    let here = setgid_dir("sgid-mode");
    let sg = setgid_copy(&here);
    let spool = here.join("spool");
    fs::create_dir(&spool).unwrap();
    chgrp_spool_group(&spool);
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o2750)).unwrap();
    let script = format!(
        "MOUNT && exec runuser -u {TEST_USER} -- env -i PATH=/usr/bin:/bin {} -odq \
         bob@example.org",
        sg.display()
    );
    let conf = format!("SPOOLDIR {}\nMAILNAME test.example\n", spool.display());
    let Some(out) = with_system_config(&here, Some(&conf), &script, &[], MSG) else {
        let _ = fs::remove_dir_all(&here);
        return;
    };
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(75), "{said}{}", text(&out.stderr));
    assert!(
        said.contains(&format!(
            "Permission denied ({} is root:{g} 2750: its group {g} may not write to it; \
             `rsendmail-admin check` says what to fix); nothing was queued",
            spool.display(),
            g = crate::harness::fit_group().0
        )),
        "{said}"
    );
    assert!(!said.contains("set-group-id"), "{said}");
    assert_eq!(spool_files(&spool), Vec::<String>::new());
    let _ = fs::remove_dir_all(&here);
}

/// A user's submission where the system configuration exists and its spool is not
/// writable (an install whose set-gid bit was lost, as in the NetBSD pkgsrc report) fails
/// with the directory and the likely cause, exit 75, in every delivery mode and with -t,
/// and nothing is queued anywhere: not in the system spool, not in a per-user spool no
/// runner looks at. Only where no system configuration exists does the per-user default
/// apply. The system configuration is a scratch file (`RSENDMAIL_SYSTEM_CONFIG`, read by
/// debug builds without set-id privileges only): nothing under /etc or /var is touched.
#[test]
fn user_submission_never_falls_back_to_a_per_user_spool_where_a_system_config_exists() {
    if !can_switch_user() {
        return;
    }
    if !cfg!(debug_assertions) {
        // The override of the system configuration's path exists in debug builds only.
        return;
    }
    let home = user_dir("syscfg-home");
    let b = user_visible_bin(&home, "sendmail");
    let mq = home.join("mailq");
    std::os::unix::fs::symlink(&b, &mq).unwrap();
    let here = setgid_dir("syscfg");
    let (spool, conf) = system_config(&here);
    let state = home.join("state");
    let envs = [
        ("HOME", home.to_str().unwrap()),
        ("XDG_STATE_HOME", state.to_str().unwrap()),
        ("RSENDMAIL_SYSTEM_CONFIG", conf.to_str().unwrap()),
    ];
    // The program is not set-gid (this copy is 0755) and the user is not in the
    // spool's group: the missing bit is the cause named.
    let want = format!(
        "cannot queue the message: the queue directory {} (the spool of {}) is not \
         writable by this user: Permission denied ({} is not set-group-id (mode 0755; the \
         bit may have been lost): it must be installed set-group-id to the spool's group \
         {} (mode 2755), or the user be in that group; `rsendmail-admin check` says what \
         to fix); nothing was queued\n",
        spool.display(),
        conf.display(),
        b.display(),
        crate::harness::fit_group().0
    );
    let t_msg = b"To: bob@example.org\nSubject: t\n\nhello\n";
    for (args, input) in [
        (&["-odq", "bob@example.org"][..], MSG),
        (&["bob@example.org"][..], MSG),
        (&["-odb", "bob@example.org"][..], MSG),
        (&["-odi", "bob@example.org"][..], MSG),
        (&["-odd", "bob@example.org"][..], MSG),
        (&["-v", "bob@example.org"][..], MSG),
        (&["-t"][..], &t_msg[..]),
    ] {
        let out = as_user(&b, args, &envs, input);
        assert_eq!(
            out.status.code(),
            Some(75),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), want, "{args:?}");
    }
    // A -bs session takes messages as a submission does: refused the same way, before
    // its greeting, said as an SMTP reply (as sendmail's -bs says its queue's fault).
    let out = as_user(&b, &["-bs"], &envs, b"QUIT\r\n");
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stdout),
        format!("451 4.0.0 {}\r\n", want.trim_end())
    );
    assert_eq!(spool_files(&spool), Vec::<String>::new());
    assert!(!state.exists(), "a per-user spool was made");
    // mailq names the same cause, and the way to the fix (77: it may not read it).
    let out = as_user(&mq, &[], &envs, b"");
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stdout),
        format!(
            "cannot read {}: Permission denied ({} is not set-group-id (mode 0755; the bit \
             may have been lost): it must be installed set-group-id to the spool's group {} \
             (mode 2755), or the user be in that group; `rsendmail-admin check` says what to \
             fix)\n",
            spool.display(),
            b.display(),
            crate::harness::fit_group().0
        )
    );
    // A system spool that is missing and cannot be made is explained the same way.
    let gone = here.join("gone");
    group_only_dir(&gone);
    let missing = gone.join("spool");
    write_spool_conf(&conf, &missing, 0o644);
    let out = as_user(&b, &["-odq", "bob@example.org"], &envs, MSG);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains(&format!("the queue directory {}", missing.display())),
        "{}",
        text(&out.stdout)
    );
    assert!(!missing.exists() && !state.exists());
    // A spool the user may write (here through its group; installed, through the
    // set-gid program's group) takes the message, with the shared spool's modes, and mailq lists
    // that spool. (An established spool, with its tmp/: an empty world-writable
    // directory is shared, never taken over.)
    write_spool_conf(&conf, &spool, 0o644);
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o777)).unwrap();
    let out = as_user(&b, &["-odq", "bob@example.org"], &envs, MSG);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("a shared directory is never taken over, even empty"),
        "{}",
        text(&out.stdout)
    );
    // A sticky directory the user may neither read nor write (root's, 1770, holding a
    // file): the same refusal and 78, as root's submission gives, not 75 and the
    // set-gid group blamed; nor are the names of what it holds shown.
    let before = fs::metadata(&spool).unwrap();
    fs::write(spool.join("someones.file"), "x").unwrap();
    std::os::unix::fs::chown(&spool, Some(0), Some(0)).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o1770)).unwrap();
    let out = as_user(&b, &["-odq", "bob@example.org"], &envs, MSG);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains(
            "the directory is sticky (mode 1770: shared, like /tmp): a shared directory is \
             never taken over"
        ) && !text(&out.stdout).contains("someones.file"),
        "{}",
        text(&out.stdout)
    );
    fs::remove_file(spool.join("someones.file")).unwrap();
    std::os::unix::fs::chown(&spool, Some(before.uid()), Some(before.gid())).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o777)).unwrap();
    // An established spool everyone may write is refused too (any user could plant
    // entries there); one its group may write takes the message.
    fs::create_dir(spool.join("tmp")).unwrap();
    fs::set_permissions(spool.join("tmp"), fs::Permissions::from_mode(0o777)).unwrap();
    let out = as_user(&b, &["-odq", "bob@example.org"], &envs, MSG);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("is writable by everyone"),
        "{}",
        text(&out.stdout)
    );
    // (The user reaches it as a member of the spool's group: the copy is not set-gid.
    // Its layout is root's, as init makes it: a user's submission makes none.)
    for d in ["index", "corrupt"] {
        fs::create_dir(spool.join(d)).unwrap();
    }
    for d in [
        spool.clone(),
        spool.join("tmp"),
        spool.join("index"),
        spool.join("corrupt"),
    ] {
        std::os::unix::fs::chown(&d, None, Some(crate::harness::fit_group().1)).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o2770)).unwrap();
    }
    let out = crate::harness::as_member(&b, &["-odq", "bob@example.org"], &envs, MSG);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let qf = queue_file(&spool);
    assert_eq!(fs::metadata(&qf).unwrap().mode() & 0o777, 0o660);
    assert!(!state.exists(), "a per-user spool was made");
    let out = crate::harness::as_member(&mq, &[], &envs, b"");
    assert!(
        text(&out.stdout).contains(&format!("{} (1 request)", spool.display())),
        "{}",
        text(&out.stdout)
    );
    // No system configuration: the user's own spool, as before.
    let nothing = here.join("no-such.conf");
    let envs_none = [
        ("HOME", home.to_str().unwrap()),
        ("XDG_STATE_HOME", state.to_str().unwrap()),
        ("RSENDMAIL_SYSTEM_CONFIG", nothing.to_str().unwrap()),
    ];
    let out = as_user(&b, &["-odq", "bob@example.org"], &envs_none, MSG);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(spool_files(&state.join("rsendmail/spool")).len(), 1);
    let _ = fs::remove_dir_all(&here);
    let _ = fs::remove_dir_all(&home);
}

/// A set-gid rsendmail that gave its group up for an option that chooses files says so
/// when the system spool then refuses the message (75, nothing queued); and no set-id
/// process reads `RSENDMAIL_SYSTEM_CONFIG`: a broken file it names is not even opened,
/// where a program without privileges (debug build) refuses it.
#[test]
fn system_config_override_never_reaches_a_setgid_program() {
    if !can_switch_user() || !cfg!(debug_assertions) {
        return;
    }
    assert!(
        !Path::new(rsendmail::config::DEFAULT_CONFIG).exists(),
        "this test needs a machine without a system config"
    );
    let (dir, here, sg) = setgid_case("syscfg-sg");
    deliverer_beside(&here);
    let plain = here.join("plain");
    open_dir(&plain);
    let not_sg = user_visible_bin(&plain, "sendmail");
    let broken = here.join("broken.conf");
    fs::write(&broken, "NOSUCHKEYWORD x\n").unwrap();
    fs::set_permissions(&broken, fs::Permissions::from_mode(0o644)).unwrap();
    let envs = [
        ("HOME", dir.to_str().unwrap()),
        ("RSENDMAIL_SYSTEM_CONFIG", broken.to_str().unwrap()),
    ];
    let out = as_user(&not_sg, &["-bv", "root"], &envs, b"");
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains(broken.to_str().unwrap()),
        "{}",
        text(&out.stdout)
    );
    let out = as_user(&sg, &["-bv", "root"], &envs, b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // -X gives the group up; what the program reads from then on is the caller's
    // business, and the group-only spool of the system configuration refuses the message.
    let (spool, conf) = system_config(&here);
    let log = dir.join("traffic.log");
    let envs = [
        ("HOME", dir.to_str().unwrap()),
        ("RSENDMAIL_SYSTEM_CONFIG", conf.to_str().unwrap()),
    ];
    let out = as_user(
        &sg,
        &["-X", log.to_str().unwrap(), "-odq", "bob@example.org"],
        &envs,
        MSG,
    );
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("gave up rsendmail's set-group-id privilege"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(spool_files(&spool), Vec::<String>::new());
    // A timeout and -oc (HoldExpensive) are not among sendmail's safe options either
    // (its option table): the group is given up as sendmail gives up its set-uid, and
    // the message says why without claiming that they choose files.
    for opts in [&["-O", "Timeout.connect=10s"][..], &["-oc"][..]] {
        let mut args = opts.to_vec();
        args.extend(["-odq", "bob@example.org"]);
        let out = as_user(&sg, &args, &envs, MSG);
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(75), "{said}");
        assert!(
            said.contains(
                "gave up rsendmail's set-group-id privilege (as in sendmail, only its safe \
                 options keep it: see rsendmail(8))"
            ),
            "{said}"
        );
        assert!(!said.contains("choose files"), "{said}");
    }
    assert_eq!(spool_files(&spool), Vec::<String>::new());
    let _ = fs::remove_dir_all(&here);
    let _ = fs::remove_dir_all(&dir);
}

/// Running set-gid, rsendmail runs the `rsendmail-deliver` beside it only when root alone
/// could have put it there: a hard link to the set-gid binary in a directory the user
/// owns, with her own program beside it, runs the installed deliverer instead (here
/// missing), never hers; nor is a group-writable one beside the installed binary run.
/// The trusted one (root's file in root's directory) is run.
#[test]
fn setgid_binary_runs_no_deliverer_a_user_put_beside_a_link() {
    if !can_switch_user() {
        return;
    }
    let here = setgid_dir("sgid-link");
    let sg = setgid_copy(&here);
    let mine = here.join("mine");
    open_dir(&mine);
    let link = mine.join("sendmail");
    fs::hard_link(&sg, &link).unwrap();
    // Stand-ins that record that they ran, in the user's directory.
    let evil_ran = mine.join("evil.out");
    let trusted_ran = mine.join("trusted.out");
    for (d, marker) in [(&mine, &evil_ran), (&here, &trusted_ran)] {
        let p = d.join("rsendmail-deliver");
        fs::write(&p, format!("#!/bin/sh\nid > {}\n", marker.display())).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for p in [&mine, &mine.join("rsendmail-deliver")] {
        let st = Command::new("chown")
            .args([TEST_USER, p.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let out = as_user(&link, &["-bv", "root"], &[], b"");
    assert!(
        !evil_ran.exists(),
        "the user's deliverer ran: {:?} {}",
        fs::read_to_string(&evil_ran),
        text(&out.stdout)
    );
    assert!(!trusted_ran.exists(), "{}", text(&out.stdout));
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Beside the installed binary, root's own deliverer is run...
    let out = as_user(&sg, &["-bv", "root"], &[], b"");
    assert!(
        trusted_ran.exists(),
        "the trusted deliverer did not run: {}",
        text(&out.stdout)
    );
    // ...but not once the group may write it.
    fs::remove_file(&trusted_ran).unwrap();
    let trusted = here.join("rsendmail-deliver");
    fs::set_permissions(&trusted, fs::Permissions::from_mode(0o775)).unwrap();
    let out = as_user(&sg, &["-bv", "root"], &[], b"");
    assert!(!trusted_ran.exists(), "{}", text(&out.stdout));
    assert!(!evil_ran.exists());
    let _ = fs::remove_dir_all(&here);
}

/// A server on 127.0.0.1 that counts the connections it is given and closes each at
/// once: `(port, count, stop)`; `stop` ends it.
fn counting_server() -> (
    u16,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    impl FnOnce(),
) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let (h, d) = (hits.clone(), done.clone());
    let t = std::thread::spawn(move || {
        for c in listener.incoming() {
            if d.load(Ordering::SeqCst) {
                break;
            }
            if c.is_ok() {
                h.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let stop = move || {
        done.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", port));
        let _ = t.join();
    };
    (port, hits, stop)
}

/// `here/spool` with its sub-directories, as `rsendmail-admin init` lays them out:
/// root's, of the spool group, 2770; and that group's id.
fn group_spool(here: &Path) -> (PathBuf, u32) {
    let spool = here.join("spool");
    let (_, gid) = crate::harness::fit_group();
    for d in ["", "tmp", "index", "corrupt", "hold"] {
        let p = spool.join(d);
        fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(0), Some(gid)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o2770)).unwrap();
    }
    (spool, gid)
}

/// A copy of `rsendmail-deliver` in `here`, root's, 0755: the deliverer the programs
/// installed there run.
fn deliverer_beside(here: &Path) {
    let deliver = here.join("rsendmail-deliver");
    crate::harness::copy_executable(Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver")), &deliver);
    fs::set_permissions(&deliver, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A system configuration its user could change (here she owns it) is refused by the
/// set-gid programs she runs, as root's programs refuse it (78, the file and who could
/// change it): nothing is queued, `check` fails it and tries nothing over the network,
/// and no connection reaches the server it names, so the credentials of an auth.conf
/// she may not read never go to a server of her choosing. (The set-gid copies read the
/// `/etc` of a private mount namespace, overlaid with the configuration.)
#[test]
fn setgid_programs_refuse_a_system_config_the_user_could_change() {
    if !can_switch_user() || !Path::new("/usr/bin/unshare").exists() {
        return;
    }
    let here = setgid_dir("syscfg-owned");
    let (spool, gid) = group_spool(&here);
    let (port, hits, stop) = counting_server();
    let auth = here.join("auth.conf");
    fs::write(&auth, "alice|127.0.0.1:s3cret\n").unwrap();
    std::os::unix::fs::chown(&auth, Some(0), Some(gid)).unwrap();
    fs::set_permissions(&auth, fs::Permissions::from_mode(0o640)).unwrap();
    let etc = here.join("etc");
    fs::create_dir_all(etc.join("rsendmail")).unwrap();
    let conf = etc.join("rsendmail/rsendmail.conf");
    fs::write(
        &conf,
        format!(
            "SPOOLDIR {}\nMAILNAME test.example\nSMARTHOST 127.0.0.1:{port}\nAUTHPATH {}\n",
            spool.display(),
            auth.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    let st = Command::new("chown")
        .args([TEST_USER, conf.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let sm = setgid_copy(&here);
    let adm = setgid_install(
        &here,
        Path::new(env!("CARGO_BIN_EXE_rsendmail-admin")),
        "rsendmail-admin",
    );
    deliverer_beside(&here);
    let refused = format!(
        "the configuration file {c} is refused: the file {c} ({TEST_USER}:root 0644) is owned \
         by the user \"{TEST_USER}\"",
        c = rsendmail::config::DEFAULT_CONFIG
    );
    for args in [
        &["-odq", "bob@example.org"][..],
        &["-odi", "bob@example.org"][..],
        &["-bv", "bob@example.org"][..],
    ] {
        let out = crate::admin_queue::in_system(&etc, TEST_USER, &sm, args, MSG);
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {said}");
        assert!(said.contains(&refused), "{args:?}: {said}");
    }
    // A `-bs` session says it as a reply, on one line, as sendmail's `-bs` says a
    // configuration it cannot use (`451 4.0.0 ...`), with the same exit status.
    let out = crate::admin_queue::in_system(&etc, TEST_USER, &sm, &["-bs"], b"QUIT\r\n");
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "-bs: {said}");
    assert!(
        said.starts_with(&format!("451 4.0.0 {refused}"))
            && said.ends_with("\r\n")
            && said.lines().count() == 1,
        "-bs: {said:?}"
    );
    assert_eq!(spool_files(&spool), Vec::<String>::new());
    let out = crate::admin_queue::in_system(&etc, TEST_USER, &adm, &["check"], b"");
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(
        said.lines()
            .any(|l| l.starts_with("FAIL config: ") && l.contains(&refused)),
        "{said}"
    );
    assert!(
        said.contains("network: not checked: the configuration has errors"),
        "{said}"
    );
    stop();
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a connection reached the server the user's configuration names"
    );
    let _ = fs::remove_dir_all(&here);
}

/// A system configuration users' programs cannot read (0600): a user's submission is
/// refused with 75, so that her program keeps the mail, saying what is wrong and where
/// the fix is said; nothing is queued. `mailq` says the same of it.
#[test]
fn a_system_config_users_cannot_read_keeps_their_mail_with_the_cause() {
    if !can_switch_user() || !Path::new("/usr/bin/unshare").exists() {
        return;
    }
    let here = setgid_dir("syscfg-0600");
    let (spool, gid) = group_spool(&here);
    let etc = here.join("etc");
    fs::create_dir_all(etc.join("rsendmail")).unwrap();
    let conf = etc.join("rsendmail/rsendmail.conf");
    write_spool_conf(&conf, &spool, 0o600);
    let sm = setgid_copy(&here);
    deliverer_beside(&here);
    let cause = format!(
        "cannot open {}: Permission denied (the system configuration must be readable by \
         everyone, or by the spool's group its set-group-id programs run with: root's \
         `rsendmail-admin check` says what to fix)",
        rsendmail::config::DEFAULT_CONFIG
    );
    let out =
        crate::admin_queue::in_system(&etc, TEST_USER, &sm, &["-odq", "bob@example.org"], MSG);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), format!("{cause}; nothing was queued\n"));
    assert_eq!(spool_files(&spool), Vec::<String>::new());
    let out = crate::admin_queue::in_system(&etc, TEST_USER, &sm, &["-bp"], b"");
    assert_eq!(text(&out.stdout), format!("{cause}\n"));
    // A `-bs` session says it as sendmail's `-bs` says a configuration it cannot open
    // (`451 4.0.0 FILE: line 0: cannot open: Permission denied`): a reply, not text.
    let out = crate::admin_queue::in_system(&etc, TEST_USER, &sm, &["-bs"], b"QUIT\r\n");
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stdout),
        format!("451 4.0.0 {cause}; nothing was queued\r\n")
    );
    assert_eq!(spool_files(&spool), Vec::<String>::new());
    // Readable by the spool's group: the set-gid program reads it, and queues.
    std::os::unix::fs::chown(&conf, None, Some(gid)).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o640)).unwrap();
    let out =
        crate::admin_queue::in_system(&etc, TEST_USER, &sm, &["-odq", "bob@example.org"], MSG);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

/// An installed set-gid `rsendmail` (the system configuration supplied in a private mount
/// namespace, over /etc) whose spool only its group may enter: a user's message refused
/// at submission in ErrorMode p is saved in her ~/dead.letter (as sendmail's, recorded
/// `addr-*` cases), though the file is written after giving up the group and the spool's
/// copy cannot be opened then. The home is a directory of the test's, mounted over the
/// test user's. Skipped where a mount namespace cannot be made.
#[test]
fn an_installed_setgid_program_saves_a_users_dead_letter() {
    if !can_switch_user() {
        return;
    }
    let here = setgid_dir("sgid-dead");
    let sg = setgid_copy(&here);
    let (spool, conf) = system_config(&here);
    // The spool's layout, as root makes it.
    let init = Command::new(env!("CARGO_BIN_EXE_rsendmail-admin"))
        .args([
            "-C",
            conf.to_str().unwrap(),
            "init",
            "--group",
            crate::harness::fit_group().0,
        ])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init.stdout));
    let home = here.join("home");
    fs::create_dir(&home).unwrap();
    let user = test_user();
    nix::unistd::chown(
        &home,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).unwrap();
    let script = format!(
        "MOUNT && mount --bind {} {} && exec runuser -u {TEST_USER} -- env -i \
         PATH=/usr/bin:/bin {} -odq 'a@@example.org'",
        home.display(),
        user.home.display(),
        sg.display()
    );
    let conf = fs::read_to_string(here.join("rsendmail.conf")).unwrap();
    let Some(out) = with_system_config(&here, Some(&conf), &script, &[], MSG) else {
        let _ = fs::remove_dir_all(&here);
        return;
    };
    let said = text(&out.stdout);
    let dead = user.home.join("dead.letter");
    assert!(
        said.contains(&format!("{0}... Saved message in {0}\n", dead.display())),
        "{said}{}",
        text(&out.stderr)
    );
    assert!(!said.contains("Cannot save"), "{said}");
    let saved = fs::read_to_string(home.join("dead.letter")).unwrap();
    assert_eq!(saved.matches("\nhello\n").count(), 1, "{saved}");
    let md = fs::metadata(home.join("dead.letter")).unwrap();
    assert_eq!((md.uid(), md.gid()), (user.uid, user.gid));
    // Nothing else left in the spool: no report queued, no temporary file.
    assert_eq!(spool_files(&spool), Vec::<String>::new());
    let _ = fs::remove_dir_all(&here);
}

/// Root executes no deliverer another could change: with a directory on its path
/// writable by a user's group (the deliverer a script that leaves a mark), root's `-odi`
/// and `-q` each exit 78 naming that directory and who could change it, the script is
/// never run, and the message stays queued.
#[test]
fn root_executes_no_deliverer_a_group_could_change() {
    if !crate::harness::is_root() || !can_switch_user() {
        return;
    }
    let env = Env::new();
    let opt = env.dir.join("opt");
    let here = opt.join("bin");
    fs::create_dir_all(&here).unwrap();
    let sm = here.join("rsendmail");
    crate::harness::copy_executable(&bin(), &sm);
    let mark = env.dir.join("deliverer-ran");
    let deliver = here.join("rsendmail-deliver");
    fs::write(
        &deliver,
        format!("#!/bin/sh\ntouch '{}'\nexit 0\n", mark.display()),
    )
    .unwrap();
    fs::set_permissions(&deliver, fs::Permissions::from_mode(0o755)).unwrap();
    let gid = test_user().gid;
    std::os::unix::fs::chown(&opt, Some(0), Some(gid)).unwrap();
    fs::set_permissions(&opt, fs::Permissions::from_mode(0o775)).unwrap();
    let conf = env.conf.to_str().unwrap().to_string();
    for args in [&["-odi", "bob@example.org"][..], &["-q"][..]] {
        let mut full = vec!["-C", conf.as_str()];
        full.extend_from_slice(args);
        let out = env.run_raw(&sm, &full, MSG);
        let said = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, 78, "{args:?}: {said}");
        assert!(
            said.contains(&format!("refusing to execute {}", deliver.display()))
                && said.contains(&format!("{} on its path", opt.display()))
                && said.contains("writable by its group"),
            "{args:?}: {said}"
        );
        assert!(!mark.exists(), "{args:?}: the deliverer was run");
        assert_eq!(env.entries().len(), 1, "{args:?}: {said}");
    }
}

/// A file holding credentials is never read as a list of addresses, whose lines `-bv`
/// and reasons show: ALIASES or RELAYTABLE naming the configured auth.conf (or the
/// shadow password file) is refused, 78, with why and the line; an `:include:` of
/// auth.conf, and an aliases file holding a private key, are not read. No output
/// shows the password or the key.
#[test]
fn a_credentials_file_is_never_read_as_addresses() {
    if !crate::harness::is_root() {
        return;
    }
    let env = Env::new();
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, "bob|127.0.0.1:s3cret-pw\n").unwrap();
    fs::set_permissions(&auth, fs::Permissions::from_mode(0o640)).unwrap();
    env.add_config(&format!("AUTHPATH {}\n", auth.display()));
    let base = fs::read_to_string(&env.conf).unwrap();
    let shown = |r: &crate::harness::Run, ctx: &str| {
        assert!(
            !r.stdout.contains("s3cret") && !r.stderr.contains("s3cret"),
            "{ctx}: the password shown:\n{}\n{}",
            r.stdout,
            r.stderr
        );
        assert!(
            !r.stdout.contains("MIGHAgEA") && !r.stderr.contains("MIGHAgEA"),
            "{ctx}: the key shown:\n{}\n{}",
            r.stdout,
            r.stderr
        );
    };
    for (line, keyword, named) in [
        (
            format!("ALIASES {}", auth.display()),
            "ALIASES",
            auth.clone(),
        ),
        (
            format!("RELAYTABLE {}", auth.display()),
            "RELAYTABLE",
            auth.clone(),
        ),
        (
            "ALIASES /etc/shadow".to_string(),
            "ALIASES",
            PathBuf::from("/etc/shadow"),
        ),
    ] {
        fs::write(&env.conf, format!("{base}{line}\n")).unwrap();
        let n = base.lines().count() + 1;
        for args in [&["-bv", "bob|127.0.0.1"][..], &["-bv", "root"]] {
            let r = env.sendmail(args, b"");
            shown(&r, &line);
            r.code(78);
            // -bv says it on its stdout, as sendmail does.
            assert!(
                r.stdout.contains(&format!(
                    "{}: line {n}: {keyword} {} is refused: it is ",
                    env.conf.display(),
                    named.display()
                )) && r.stdout.contains("holds credentials"),
                "{line}: {}",
                r.stdout
            );
        }
    }
    // An :include: of auth.conf, and an aliases file that holds a private key: not read.
    let aliases = env.dir.join("aliases");
    fs::write(
        &aliases,
        format!("list: :include:{}\nkeyed: root\n", auth.display()),
    )
    .unwrap();
    fs::write(&env.conf, format!("{base}ALIASES {}\n", aliases.display())).unwrap();
    let r = env.sendmail(&["-bv", "list"], b"");
    shown(&r, ":include:");
    assert!(r.stdout.contains("holds credentials"), "{}", r.stdout);
    let key = env.dir.join("key-aliases");
    fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nkeyed: MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n\
         -----END PRIVATE KEY-----\n",
    )
    .unwrap();
    fs::write(&env.conf, format!("{base}ALIASES {}\n", key.display())).unwrap();
    let r = env.sendmail(&["-bv", "keyed"], b"");
    shown(&r, "a private key");
    assert!(
        (r.stdout.clone() + &r.stderr).contains("private key"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
}

/// `check` and `init` agree on a spool a user owns. Her own install (her configuration
/// and her per-user spool): root's check prints no command that would take either from
/// her, says what it is and how she checks it; init refuses her configuration and
/// changes nothing; her submissions keep working. A root's configuration naming a spool
/// a user owns (the system's): the command check prints, run, is what init then takes.
#[test]
fn check_and_init_agree_on_a_spool_a_user_owns() {
    if !can_switch_user() {
        return;
    }
    let admin = PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-admin"));
    let run = |conf: &Path, args: &[&str]| {
        let mut full = vec!["-C", conf.to_str().unwrap()];
        full.extend_from_slice(args);
        let out = Command::new(&admin).args(&full).output().unwrap();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let dir = user_dir("own-install");
    let conf = spool_conf(&dir, "rsendmail.conf");
    let u = test_user();
    std::os::unix::fs::chown(&conf, Some(u.uid), None).unwrap();
    let b = user_visible_bin(&dir, "sendmail");
    let submit = || {
        as_user(
            &b,
            &["-C", conf.to_str().unwrap(), "-odq", "bob@example.org"],
            &[],
            MSG,
        )
    };
    assert_eq!(submit().status.code(), Some(0));
    let (code, out, _) = run(&conf, &["check"]);
    assert_eq!(code, Some(78), "{out}");
    let spool = dir.join("spool");
    let l = out
        .lines()
        .find(|l| l.starts_with(&format!("FAIL spool: {} (", spool.display())))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        l.contains(&format!(
            "is the per-user spool of the user \"{TEST_USER}\""
        )) && l.contains(&format!(
            "runuser -u {TEST_USER} -- rsendmail-admin -C {} check",
            conf.display()
        )),
        "{l}"
    );
    let touching: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" (fix: ") && l.contains(&dir.display().to_string()))
        .collect();
    assert!(touching.is_empty(), "{touching:?}");
    let (code, _, err) = run(&conf, &["init"]);
    assert_eq!(code, Some(78), "{err}");
    assert_eq!(fs::metadata(&spool).unwrap().uid(), u.uid);
    assert_eq!(submit().status.code(), Some(0));
    // A root's configuration naming a spool a user owns: check's command, then init.
    let env = Env::new();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let st = Command::new("chown")
        .args(["-R", TEST_USER, env.spool.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let (code, out, _) = run(&env.conf, &["check"]);
    assert_eq!(code, Some(78), "{out}");
    let l = out
        .lines()
        .find(|l| l.starts_with(&format!("FAIL spool: {} (", env.spool.display())))
        .unwrap_or_else(|| panic!("{out}"));
    let fix = l
        .rsplit_once(" (fix: ")
        .and_then(|(_, f)| f.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{l}"));
    assert!(fix.contains("chown root"), "{l}");
    let st = crate::harness::printed_fix(fix).status().unwrap();
    assert!(st.success(), "{fix}");
    let (code, out, err) = run(&env.conf, &["init"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("{}: ready", env.spool.display())),
        "{out}"
    );
    let _ = fs::remove_dir_all(&dir);
}
