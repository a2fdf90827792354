//! Per-user spools and privileges, run as the unprivileged test user.

use crate::harness::{Env, MSG, TEST_USER, as_user, bin, can_switch_user, user_visible_bin};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

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

#[test]
fn per_user_default_spool_without_config() {
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
    let envs = [
        ("HOME", home.to_str().unwrap()),
        ("XDG_STATE_HOME", state.to_str().unwrap()),
    ];
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
    let dir = user_dir("setgid");
    // Install the binary set-group-id "mail" (a group the test user is not in), in a
    // directory on the same file system as the build (not a nosuid /tmp).
    let here =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sgid-{}", std::process::id()));
    let _ = fs::remove_dir_all(&here);
    fs::create_dir_all(&here).unwrap();
    fs::set_permissions(&here, fs::Permissions::from_mode(0o755)).unwrap();
    let sg = here.join("sendmail");
    fs::copy(bin(), &sg).unwrap();
    assert!(
        Command::new("chgrp")
            .args(["mail", sg.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    fs::set_permissions(&sg, fs::Permissions::from_mode(0o2755)).unwrap();
    // Proof that set-gid works on this file system: a set-gid `id` reports group mail.
    let id = here.join("id");
    fs::copy("/usr/bin/id", &id).unwrap();
    assert!(
        Command::new("chgrp")
            .args(["mail", id.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    fs::set_permissions(&id, fs::Permissions::from_mode(0o2755)).unwrap();
    let out = as_user(&id, &["-gn"], &[], b"");
    assert_eq!(
        text(&out.stdout).trim(),
        "mail",
        "set-gid is not honoured here"
    );

    // A spool directory only group mail may write.
    let spool = here.join("groupspool");
    fs::create_dir(&spool).unwrap();
    assert!(
        Command::new("chgrp")
            .args(["mail", spool.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o2770)).unwrap();
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
    let envs = [
        ("HOME", dir.to_str().unwrap()),
        ("XDG_STATE_HOME", state.to_str().unwrap()),
    ];
    let conf = dir.join("c.conf");
    fs::write(
        &conf,
        format!(
            "SPOOLDIR {}\nMAILNAME test.example\n",
            dir.join("spool").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    let c = conf.to_str().unwrap();
    for (sender, warned) in [("evil@example.com", true), (TEST_USER, false)] {
        let out = as_user(
            &b,
            &["-C", c, "-odq", "-f", sender, "bob@example.org"],
            &envs,
            MSG,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let spool = dir.join("spool");
        let qf = fs::read_dir(&spool)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("qf"))
            .unwrap()
            .path();
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
