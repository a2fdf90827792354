//! Setting up the spool: a `SPOOLDIR` (or `O QueueDirectory`) that names a missing
//! directory is refused at every entry point (EX_CONFIG, its file and line) and nothing
//! is made; `rsendmail-admin init` makes the spool and repairs it.

use crate::harness::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn admin_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-admin"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run `program ARGS` with `stdin`, killed after 20 s (a daemon that did start).
fn run_limited(program: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new("timeout")
        .arg("20")
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

const MSG: &[u8] = b"Subject: setup\n\nhello\n";

/// Each way into the spool, as root: submissions in each mode, `-bs`, the daemon, a
/// queue run, the periodic runner, `-bp` and `mailq`.
fn entry_points(env: &Env) -> Vec<(PathBuf, Vec<&'static str>, &'static [u8])> {
    let s = env.link("sendmail");
    let closed = format!("Port={},Addr=127.0.0.1", closed_tcp_port());
    let daemon: &'static str = Box::leak(format!("DaemonPortOptions={closed}").into_boxed_str());
    vec![
        (s.clone(), vec!["-odq", "bob@example.org"], MSG),
        (s.clone(), vec!["-odi", "bob@example.org"], MSG),
        (s.clone(), vec!["-odb", "bob@example.org"], MSG),
        (s.clone(), vec!["-bs"], b"QUIT\r\n"),
        (s.clone(), vec!["-bD", "-O", daemon], b""),
        (s.clone(), vec!["-q"], b""),
        (s.clone(), vec!["-q30m"], b""),
        (s.clone(), vec!["-bp"], b""),
        (env.link("mailq"), vec![], b""),
    ]
}

/// Every entry point refuses the spool with exit 78 and `want` in its output, and
/// `gone` is still not there afterwards.
#[track_caller]
fn refused_everywhere(env: &Env, want: &str, gone: &Path) {
    for (program, args, stdin) in entry_points(env) {
        let mut full = vec!["-C", env.conf.to_str().unwrap()];
        full.extend(args.iter().copied());
        let out = run_limited(&program, &full, stdin);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(78),
            "{} {full:?}: {said}",
            program.display()
        );
        assert!(
            said.contains(want),
            "{} {full:?}: {said:?} lacks {want:?}",
            program.display()
        );
        // `-bs` says it as an SMTP reply on its channel, as sendmail's `-bs` does
        // (`451 4.0.0 can not chdir(...)`, exit 78).
        if args == ["-bs"] {
            assert!(
                text(&out.stdout).starts_with("451 4.0.0 ") && text(&out.stdout).ends_with("\r\n"),
                "-bs: {said:?}"
            );
        }
        assert!(
            fs::symlink_metadata(gone).is_err(),
            "{} {full:?} made {}",
            program.display(),
            gone.display()
        );
    }
}

/// A `SPOOLDIR` whose parent is missing (a typo) is a configuration error at each entry
/// point, named by the config's file and line; no directory is made.
#[test]
fn spooldir_with_a_missing_parent_is_refused_everywhere() {
    let env = Env::new();
    let typo = env.dir.join("sppol");
    let spool = typo.join("spool");
    fs::write(
        &env.conf,
        format!("MAILNAME test.example\nSPOOLDIR {}\n", spool.display()),
    )
    .unwrap();
    let want = format!(
        "{}: line 2: SPOOLDIR {}: no such directory, nor its parent {} (a typo? nothing \
         was created)",
        env.conf.display(),
        spool.display(),
        typo.display()
    );
    refused_everywhere(&env, &want, &typo);
}

/// A `SPOOLDIR` whose parent is there but which is not made yet: refused the same way
/// (as sendmail refuses a missing queue directory: compat-tests/cases/queuedir-missing),
/// pointing at `rsendmail-admin init`; not made.
#[test]
fn missing_spooldir_is_refused_everywhere_and_not_made() {
    let env = Env::new();
    let spool = env.dir.join("spool2");
    fs::write(
        &env.conf,
        format!("MAILNAME test.example\n\nSPOOLDIR {}\n", spool.display()),
    )
    .unwrap();
    let want = format!(
        "{}: line 3: SPOOLDIR {}: no such directory (nothing was created: the spool is \
         made by the install, or by \"rsendmail-admin -C {} init\" as root)",
        env.conf.display(),
        spool.display(),
        env.conf.display()
    );
    refused_everywhere(&env, &want, &spool);
}

/// A symbolic link on the `SPOOLDIR` path that a user owns (she may re-point it, in a
/// sticky directory too) makes the spool unsafe: `init` refuses it and makes nothing,
/// every entry point refuses the spool, and `check` fails it; each names the link, and
/// the fix given (`chown -h root LINK`) makes the spool usable.
#[test]
fn a_symbolic_link_a_user_owns_on_the_spools_path_is_refused() {
    if !can_switch_user() {
        return;
    }
    let mut env = Env::new();
    let real = env.dir.join("real");
    fs::create_dir(&real).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).unwrap();
    let link = env.dir.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let user = test_user().uid;
    std::os::unix::fs::lchown(&link, Some(user), None).unwrap();
    let spool = link.join("spool");
    fs::write(
        &env.conf,
        format!("MAILNAME test.example\nSPOOLDIR {}\n", spool.display()),
    )
    .unwrap();
    let why = format!("is a symbolic link owned by the user \"{TEST_USER}\"");
    let fix = format!("(fix: chown -h root {})", link.display());
    let out = admin(&env.conf, &["init", "--group", spool_group()]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(said.contains(&why) && said.contains(&fix), "{said}");
    assert!(!real.join("spool").exists());
    // The fix given, then init makes the spool and check passes it.
    std::os::unix::fs::lchown(&link, Some(0), None).unwrap();
    let out = admin(&env.conf, &["init", "--group", spool_group()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = admin(&env.conf, &["check"]);
    assert!(
        !text(&out.stdout).contains("FAIL spool"),
        "{}",
        text(&out.stdout)
    );
    // The user's link again: refused everywhere, and check fails it with the fix.
    std::os::unix::fs::lchown(&link, Some(user), None).unwrap();
    env.spool = spool.clone();
    refused_by_all_but_listings(&env, &why);
    let out = admin(&env.conf, &["check"]);
    let said = text(&out.stdout);
    let line = said
        .lines()
        .find(|l| l.starts_with("FAIL spool") && l.contains(&why))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(line.ends_with(&fix), "{line}");
}

/// What the `SPOOLDIR` path meets as the kernel resolves it is held to the same rule,
/// beyond the path as written: a root-owned symbolic link that leads to a link a user
/// owns (in the link's target), or through a directory a user owns (a target going back
/// up with `..`), makes the spool unsafe. `init` refuses it and makes nothing, every
/// entry point refuses the spool, and `check` fails it; each names what is at fault as
/// reached and through which link, and the fix given makes the spool usable.
#[test]
fn what_a_root_link_on_the_spools_path_leads_through_is_held_to_the_rule() {
    if !can_switch_user() {
        return;
    }
    let user = test_user().uid;
    for through_dir in [false, true] {
        let mut env = Env::new();
        let real = env.dir.join("real");
        fs::create_dir(&real).unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).unwrap();
        // The user's part: a link of hers to the real directory, or a directory of
        // hers that the root link's target passes through.
        let theirs = env.dir.join("theirs");
        let target = if through_dir {
            fs::create_dir(&theirs).unwrap();
            fs::set_permissions(&theirs, fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::chown(&theirs, Some(user), None).unwrap();
            theirs.join("..").join("real")
        } else {
            std::os::unix::fs::symlink(&real, &theirs).unwrap();
            std::os::unix::fs::lchown(&theirs, Some(user), None).unwrap();
            theirs.clone()
        };
        let link = env.dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let spool = link.join("spool");
        fs::write(
            &env.conf,
            format!("MAILNAME test.example\nSPOOLDIR {}\n", spool.display()),
        )
        .unwrap();
        let why = if through_dir {
            format!("is owned by the user \"{TEST_USER}\"")
        } else {
            format!("is a symbolic link owned by the user \"{TEST_USER}\"")
        };
        let reached = format!("{} ({TEST_USER}:", theirs.display());
        let via = format!(", reached through the symbolic link {}, ", link.display());
        let fix = if through_dir {
            format!("(fix: chown root {})", theirs.display())
        } else {
            format!("(fix: chown -h root {})", theirs.display())
        };
        let named = |said: &str| {
            said.contains(&why)
                && said.contains(&reached)
                && said.contains(&via)
                && said.contains(&fix)
        };
        let out = admin(&env.conf, &["init", "--group", spool_group()]);
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(78), "{said}");
        assert!(named(&said), "{said}");
        assert!(!real.join("spool").exists());
        // The fix given, then init makes the spool and check passes it.
        std::os::unix::fs::lchown(&theirs, Some(0), None).unwrap();
        let out = admin(&env.conf, &["init", "--group", spool_group()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let out = admin(&env.conf, &["check"]);
        assert!(
            !text(&out.stdout).contains("FAIL spool"),
            "{}",
            text(&out.stdout)
        );
        // The user's again: refused everywhere, and check fails it with the fix.
        std::os::unix::fs::lchown(&theirs, Some(user), None).unwrap();
        env.spool = spool.clone();
        refused_by_all_but_listings(&env, &why);
        let out = admin(&env.conf, &["check"]);
        let said = text(&out.stdout);
        let line = said
            .lines()
            .find(|l| l.starts_with("FAIL spool") && named(l))
            .unwrap_or_else(|| panic!("{said}"));
        assert!(line.ends_with(&fix), "{line}");
    }
}

/// `O QueueDirectory=` in the configuration is named by its line too.
#[test]
fn queue_directory_option_in_the_config_is_named_by_its_line() {
    let env = Env::new();
    let typo = env.dir.join("nope");
    let q = typo.join("q");
    env.add_config(&format!("O QueueDirectory={}\n", q.display()));
    let lines = fs::read_to_string(&env.conf).unwrap().lines().count();
    let out = env.sendmail(&["-odq", "bob@example.org"], MSG);
    assert_eq!(out.code, 78, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "{}: line {lines}: O QueueDirectory {}: no such directory, nor its parent",
            env.conf.display(),
            q.display()
        )),
        "{}",
        out.stdout
    );
    assert!(!typo.exists());
}

/// An ordinary user's own configuration (`-C`) with a mistyped `SPOOLDIR`, through a
/// plain copy and through a set-gid one (which gives its group up for `-C`): 78, nothing
/// made; without any configuration, the user's own built-in spool is still made on
/// first use (the quick start's one command).
#[test]
fn a_users_spooldir_typo_is_refused_and_the_own_default_still_made() {
    if !can_switch_user() {
        return;
    }
    let here = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("setup-user-{}", std::process::id()));
    let _ = fs::remove_dir_all(&here);
    fs::create_dir_all(&here).unwrap();
    // The user makes her directories here; sticky, as /tmp is: a directory above a
    // spool that anyone may rename things in is refused.
    fs::set_permissions(&here, fs::Permissions::from_mode(0o1777)).unwrap();
    let plain = user_visible_bin(&here, "sendmail");
    let sg = here.join("sgid-sendmail");
    copy_executable(&bin(), &sg);
    let st = Command::new("chgrp")
        .args(["mail", sg.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    fs::set_permissions(&sg, fs::Permissions::from_mode(0o2755)).unwrap();
    let typo = here.join("typo");
    let conf = here.join("user.conf");
    fs::write(
        &conf,
        format!(
            "SPOOLDIR {}\nMAILNAME test.example\n",
            typo.join("spool").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    for program in [&plain, &sg] {
        for args in [
            &["-odq", "bob@example.org"][..],
            &["-bs"][..],
            &["-q"][..],
            &["-bp"][..],
        ] {
            let mut full = vec!["-C", conf.to_str().unwrap()];
            full.extend_from_slice(args);
            let out = as_user(program, &full, &[], MSG);
            assert_eq!(
                out.status.code(),
                Some(78),
                "{} {full:?}: {}",
                program.display(),
                text(&out.stdout)
            );
            assert!(
                text(&out.stdout).contains(&format!("{}: line 1: SPOOLDIR", conf.display())),
                "{}",
                text(&out.stdout)
            );
            assert!(!typo.exists(), "{} {full:?}", program.display());
        }
    }
    // The same file as the system configuration (a debug build reads it from
    // RSENDMAIL_SYSTEM_CONFIG; an installed set-gid program reads only the real one):
    // refused the same way, nothing made, no per-user spool either.
    if cfg!(debug_assertions) {
        let state = here.join("state-sys");
        let envs = [
            ("HOME", here.to_str().unwrap()),
            ("XDG_STATE_HOME", state.to_str().unwrap()),
            ("RSENDMAIL_SYSTEM_CONFIG", conf.to_str().unwrap()),
        ];
        for args in [&["-odq", "bob@example.org"][..], &["-bs"][..]] {
            let out = as_user(&plain, args, &envs, MSG);
            assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
            assert!(
                text(&out.stdout).contains(&format!("{}: line 1: SPOOLDIR", conf.display())),
                "{}",
                text(&out.stdout)
            );
            assert!(!typo.exists() && !state.exists());
        }
    }
    // No configuration at all: the per-user default, made with its parents, 0700.
    let state = here.join("state");
    let nothing = here.join("no-such.conf");
    let envs = [
        ("HOME", here.to_str().unwrap()),
        ("XDG_STATE_HOME", state.to_str().unwrap()),
        ("RSENDMAIL_SYSTEM_CONFIG", nothing.to_str().unwrap()),
    ];
    let out = as_user(&plain, &["-odq", "bob@example.org"], &envs, MSG);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let own = state.join("rsendmail/spool");
    assert_eq!(fs::metadata(&own).unwrap().mode() & 0o7777, 0o700);
    let _ = fs::remove_dir_all(&here);
}

/// A scratch directory with a config whose spool (`dir/spool`) does not exist yet.
fn init_env(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("rsendmail-init-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let spool = dir.join("spool");
    let conf = dir.join("rsendmail.conf");
    fs::write(
        &conf,
        format!(
            "MAILNAME test.example\nSPOOLDIR {}\nMAILSPOOL {}\n",
            spool.display(),
            dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    (dir, conf, spool)
}

fn admin(conf: &Path, args: &[&str]) -> Output {
    let mut full = vec!["-C", conf.to_str().unwrap()];
    full.extend_from_slice(args);
    run_limited(&admin_bin(), &full, b"")
}

/// `rsendmail-admin init --group <the spool group>` on `env`'s configuration, as root:
/// it must succeed.
#[track_caller]
fn init_spool(env: &Env) {
    let out = admin(&env.conf, &["init", "--group", spool_group()]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

/// The ID of the (one) entry queued in `spool`.
fn queued_id(spool: &Path) -> String {
    let ids = crate::harness::queued_ids(spool);
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.into_iter().next().unwrap()
}

/// A group fit for a spool ([`crate::harness::fit_group`]): what `init --group` is given.
fn spool_group() -> &'static str {
    crate::harness::fit_group().0
}

fn spool_gid() -> u32 {
    crate::harness::fit_group().1
}

fn mail_gid() -> u32 {
    nix::unistd::Group::from_name("mail")
        .unwrap()
        .unwrap()
        .gid
        .as_raw()
}

/// (mode, uid, gid) of `p`, not following a symbolic link.
fn owner_mode(p: &Path) -> (u32, u32, u32) {
    let md = fs::symlink_metadata(p).unwrap();
    (md.mode() & 0o7777, md.uid(), md.gid())
}

/// The layout an install leaves: the spool and its sub-directories 2770 root:GROUP, the
/// wake-up FIFO 0620 root:GROUP.
#[track_caller]
fn assert_layout(spool: &Path) {
    let g = spool_gid();
    assert_eq!(owner_mode(spool), (0o2770, 0, g));
    for sub in ["tmp", "index", "corrupt", "slots", "waiting", "hold"] {
        let p = spool.join(sub);
        assert!(fs::symlink_metadata(&p).unwrap().is_dir(), "{sub}");
        assert_eq!(owner_mode(&p), (0o2770, 0, g), "{sub}");
    }
    let w = spool.join("wakeup");
    assert!(fs::symlink_metadata(&w).unwrap().file_type().is_fifo());
    assert_eq!(owner_mode(&w), (0o620, 0, g));
}

/// `init` makes the spool a config names with the install's layout, says what it made,
/// and is idempotent (a second run changes nothing and says only that the spool is
/// ready); the spool then takes mail, its entries in the spool's group.
#[test]
fn init_makes_the_spool_and_is_idempotent() {
    let g = spool_group();
    if !is_root() {
        return;
    }
    let (dir, conf, spool) = init_env("make");
    let out = admin(&conf, &["init", "--group", spool_group()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let said = text(&out.stdout);
    assert!(
        said.starts_with(&format!("made {}\n", spool.display())),
        "{said}"
    );
    assert!(
        said.ends_with(&format!("{}: ready (2770 root:{g})\n", spool.display())),
        "{said}"
    );
    assert_layout(&spool);
    let again = admin(&conf, &["init", "--group", spool_group()]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(
        text(&again.stdout),
        format!("{}: ready (2770 root:{g})\n", spool.display())
    );
    assert_layout(&spool);
    let sendmail = dir.join("sendmail");
    std::os::unix::fs::symlink(bin(), &sendmail).unwrap();
    let out = run_limited(
        &sendmail,
        &["-C", conf.to_str().unwrap(), "-odq", "bob@example.org"],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let qf = fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("qf"))
        .unwrap()
        .path();
    assert_eq!(owner_mode(&qf), (0o660, 0, spool_gid()));
    let _ = fs::remove_dir_all(&dir);
}

/// A spool made with `init --group OTHER` keeps that group when `init` is run again
/// without `--group` (nothing is repaired), and `check`'s fix for it names
/// `init --group OTHER`, so following the fix never gives the spool another group.
#[test]
fn plain_init_and_checks_fix_keep_the_spools_group() {
    if !is_root() {
        return;
    }
    let (other, gid) = crate::harness::other_fit_group();
    let (dir, conf, spool) = init_env("keep");
    let out = admin(&conf, &["init", "--group", &other]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let again = admin(&conf, &["init"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    assert_eq!(
        text(&again.stdout),
        format!("{}: ready (2770 root:{other})\n", spool.display())
    );
    assert_eq!(owner_mode(&spool), (0o2770, 0, gid));
    fs::remove_file(spool.join("wakeup")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", spool.join("wakeup")).unwrap();
    let out = admin(&conf, &["check"]);
    let said = text(&out.stdout);
    let wakeup = said
        .lines()
        .find(|l| l.starts_with("FAIL wakeup"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        wakeup.ends_with(&format!("init --group {other})")),
        "{wakeup}"
    );
    let out = admin(&conf, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        !text(&out.stdout).contains("repaired"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(owner_mode(&spool), (0o2770, 0, gid));
    assert_eq!(owner_mode(&spool.join("wakeup")), (0o620, 0, gid));
    // A refused --group: the way out names the group the spool has, which plain init
    // keeps, never the install's default over it.
    let out = admin(&conf, &["init", "--group", "root"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains(&format!(
            "(rsendmail-admin -C {} init --group {other})",
            conf.display()
        )),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(owner_mode(&spool), (0o2770, 0, gid));
    let _ = fs::remove_dir_all(&dir);
    // An empty directory taken over is no spool made before: it gets the install's
    // group, not the group it happened to be made with.
    let (dir, conf, spool) = init_env("takeover");
    fs::create_dir(&spool).unwrap();
    std::os::unix::fs::chown(&spool, Some(0), Some(gid)).unwrap();
    let out = admin(&conf, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("root:rsendmail"),
        "{}",
        text(&out.stdout)
    );
    assert_ne!(owner_mode(&spool).2, gid);
    let _ = fs::remove_dir_all(&dir);
}

/// A spool not made yet under a directory a user owns or her group may write: `check`
/// fails that directory first, with the fix `init` gives for it, and the missing spool
/// with no fix until that directory is put right (she could swap what it would make);
/// followed, the next check gives the spool's `init` fix, which makes the spool.
#[test]
fn check_applies_the_rule_above_to_a_spool_not_made_yet() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    for (uid, gid, mode, fix) in [
        (0, u.gid, 0o775, "chmod go-w"),
        (u.uid, 0, 0o755, "chown root"),
    ] {
        let (dir, conf, spool) = init_env("above");
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
        let out = admin(&conf, &["check"]);
        let said = text(&out.stdout);
        let fails: Vec<&str> = said
            .lines()
            .filter(|l| l.starts_with("FAIL spool"))
            .collect();
        assert_eq!(fails.len(), 2, "{said}");
        assert!(
            fails[0].starts_with(&format!("FAIL spool: {} (", dir.display()))
                && fails[0].contains(&format!("above the queue directory {}", spool.display()))
                && fails[0].ends_with(&format!("(fix: {fix} {})", dir.display())),
            "{said}"
        );
        assert!(
            !fails[1].contains(" (fix: ")
                && fails[1].contains(&format!("put {} right first", dir.display())),
            "{said}"
        );
        let run_fix = |line: &str| {
            let at = line.rfind(" (fix: ").unwrap();
            let cmd = line[at + 7..].strip_suffix(')').unwrap();
            let st = crate::harness::printed_fix(cmd).status().unwrap();
            assert!(st.success(), "{cmd}");
        };
        run_fix(fails[0]);
        let out = admin(&conf, &["check"]);
        let said = text(&out.stdout);
        let fails: Vec<&str> = said
            .lines()
            .filter(|l| l.starts_with("FAIL spool"))
            .collect();
        assert!(fails.len() == 1 && fails[0].contains(" init"), "{said}");
        run_fix(fails[0]);
        assert!(spool.is_dir());
        let _ = fs::remove_dir_all(&dir);
    }
}

/// `init` puts wrong modes, owners and groups right, one line for each, and moves what
/// is not the spool's own at a sub-directory's or the FIFO's name into `corrupt/`; a
/// symbolic link planted there is never followed (what it points to keeps its owner and
/// mode). Entries already there (queued or held) get the spool's group and mode 0660.
#[test]
fn init_repairs_modes_and_follows_no_link() {
    let g = spool_group();
    if !is_root() {
        return;
    }
    let (dir, conf, spool) = init_env("repair");
    assert_eq!(
        admin(&conf, &["init", "--group", spool_group()])
            .status
            .code(),
        Some(0)
    );
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(spool.join("tmp"), fs::Permissions::from_mode(0o700)).unwrap();
    nix::unistd::chown(
        &spool.join("index"),
        None,
        Some(nix::unistd::Gid::from_raw(0)),
    )
    .unwrap();
    fs::remove_file(spool.join("wakeup")).unwrap();
    fs::write(spool.join("wakeup"), "x").unwrap();
    let outside = dir.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_dir(spool.join("slots")).unwrap();
    std::os::unix::fs::symlink(&outside, spool.join("slots")).unwrap();
    // An entry of the spool's group whose mode alone is wrong: put right.
    let entry = spool.join("qfAAAAAAAAAAAAAA");
    fs::write(&entry, "x").unwrap();
    fs::set_permissions(&entry, fs::Permissions::from_mode(0o644)).unwrap();
    nix::unistd::chown(&entry, None, Some(nix::unistd::Gid::from_raw(spool_gid()))).unwrap();
    // An entry put on hold, as those queued, of another group (root's) and not root's
    // own: rsendmail did not write it so, and it is set aside as suspect, never given
    // the spool's group.
    let held = spool.join("hold/sfAAAAAAAAAAAAAA");
    fs::write(&held, "x").unwrap();
    fs::set_permissions(&held, fs::Permissions::from_mode(0o644)).unwrap();
    nix::unistd::chown(
        &held,
        Some(nix::unistd::Uid::from_raw(65534)),
        Some(nix::unistd::Gid::from_raw(0)),
    )
    .unwrap();
    // The index's directory of domains and the files submissions write.
    let domains = spool.join("index/domains");
    fs::create_dir(&domains).unwrap();
    fs::set_permissions(&domains, fs::Permissions::from_mode(0o755)).unwrap();
    nix::unistd::chown(&domains, None, Some(nix::unistd::Gid::from_raw(0))).unwrap();
    let written = [
        spool.join("index/recipients"),
        domains.join("example.org"),
        spool.join("waiting/6AUIPm89022300"),
    ];
    for f in &written {
        fs::write(f, "").unwrap();
        fs::set_permissions(f, fs::Permissions::from_mode(0o600)).unwrap();
        nix::unistd::chown(f, None, Some(nix::unistd::Gid::from_raw(0))).unwrap();
    }

    let out = admin(&conf, &["init", "--group", spool_group()]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    for want in [
        format!(
            "repaired {}: 2770 root:{g} (was 755 root:{g})",
            spool.display()
        ),
        format!(
            "repaired {}: 2770 root:{g} (was 700 root:{g})",
            spool.join("tmp").display()
        ),
        format!(
            "repaired {}: 2770 root:{g} (was 2770 root:root)",
            spool.join("index").display()
        ),
        format!(
            "moved {} (a regular file) to ",
            spool.join("wakeup").display()
        ),
        format!(
            "moved {} (a symbolic link) to {}",
            spool.join("slots").display(),
            spool.join("corrupt/slots.").display()
        ),
        format!("made {}", spool.join("slots").display()),
        format!(
            "repaired {}: 660 group {g} (was 644 group {g})",
            entry.display()
        ),
        format!(
            "moved {} (suspect: of the group root, not the spool's) to {}",
            held.display(),
            spool.join("corrupt/sfAAAAAAAAAAAAAA.").display()
        ),
    ] {
        assert!(said.contains(&want), "{said:?} lacks {want:?}");
    }
    assert!(
        said.contains(&format!(
            "repaired {}: 2770 root:{g} (was 755 root:root)",
            domains.display()
        )),
        "{said}"
    );
    for f in &written {
        assert!(
            said.contains(&format!(
                "repaired {}: 660 group {g} (was 600 group root)",
                f.display()
            )),
            "{said}"
        );
        assert_eq!(owner_mode(f), (0o660, 0, spool_gid()), "{}", f.display());
    }
    assert_eq!(owner_mode(&domains), (0o2770, 0, spool_gid()));
    assert_layout(&spool);
    assert_eq!(owner_mode(&outside), (0o755, 0, 0), "a link was followed");
    assert_eq!(owner_mode(&entry), (0o660, 0, spool_gid()));
    assert!(!held.exists(), "{said}");
    let aside: Vec<String> = fs::read_dir(spool.join("corrupt"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(aside.iter().any(|n| n.starts_with("wakeup.")), "{aside:?}");
    assert!(aside.iter().any(|n| n.starts_with("slots.")), "{aside:?}");
    assert!(
        aside.iter().any(|n| n.starts_with("sfAAAAAAAAAAAAAA.")),
        "{aside:?}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// `init` run on a spool changes only the files of entries (`qf<ID>`, `sf<ID>`,
/// `jf<ID>`, `kf<ID>`, in the spool and in `hold/`): a file whose name is no entry's
/// (`notes.txt`, `qfjunk`, an entry's name with more after it, a name with a control
/// character) is left as it is, whatever its mode, group or owner, never repaired nor
/// moved aside as suspect, and said once, `left alone: PATH (not a queue entry)`, the
/// name escaped. The entries beside them are repaired as before.
#[test]
fn init_leaves_files_that_are_not_entries_alone() {
    if !is_root() {
        return;
    }
    let g = spool_group();
    let (dir, conf, spool) = init_env("strays");
    assert_eq!(admin(&conf, &["init", "--group", g]).status.code(), Some(0));
    let stray = |p: &Path, uid: u32| {
        fs::write(p, "x").unwrap();
        nix::unistd::chown(
            p,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(0)),
        )
        .unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
    };
    let notes = spool.join("notes.txt");
    let junk = spool.join("qfjunk");
    let backup = spool.join("sfAAAAAAAAAAAAAA.bak");
    let odd = spool.join("kf\u{1b}]0;x\u{7}");
    let held = spool.join("hold/qfnot-an-entry");
    for p in [&notes, &junk, &backup, &odd] {
        stray(p, 0);
    }
    // Another's, of root's group: an entry so would be suspect, moved aside.
    stray(&held, 65534);
    let entry = spool.join("jfAAAAAAAAAAAAAB");
    fs::write(&entry, "").unwrap();
    fs::set_permissions(&entry, fs::Permissions::from_mode(0o600)).unwrap();
    let out = admin(&conf, &["init", "--group", g]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    for (p, shown) in [
        (&notes, notes.display().to_string()),
        (&junk, junk.display().to_string()),
        (&backup, backup.display().to_string()),
        (&odd, format!("{}/kf\\033]0;x\\007", spool.display())),
        (&held, held.display().to_string()),
    ] {
        let line = format!("left alone: {shown} (not a queue entry)\n");
        assert_eq!(said.matches(&line).count(), 1, "{said:?} lacks {line:?}");
        let uid = if p == &held { 65534 } else { 0 };
        assert_eq!(owner_mode(p), (0o644, uid, 0), "{}", p.display());
    }
    assert!(
        !said.contains('\u{1b}') && !said.contains('\u{7}'),
        "{said:?}"
    );
    assert!(!said.contains("moved "), "{said}");
    assert!(
        said.contains(&format!(
            "repaired {}: 660 group {g} (was 600 group {g})",
            entry.display()
        )),
        "{said}"
    );
    assert_eq!(owner_mode(&entry), (0o660, 0, spool_gid()));
    assert_eq!(fs::read_dir(spool.join("corrupt")).unwrap().count(), 0);
    let _ = fs::remove_dir_all(&dir);
}

/// `init` refuses a `SPOOLDIR` whose parent is missing (78, its file and line, nothing
/// made), a group that does not exist (78), and anyone but root (77).
#[test]
fn init_refuses_a_typo_an_unknown_group_and_non_root() {
    if !is_root() {
        return;
    }
    let (dir, conf, spool) = init_env("refuse");
    let typo = dir.join("typo");
    let bad = dir.join("bad.conf");
    fs::write(&bad, format!("SPOOLDIR {}\n", typo.join("spool").display())).unwrap();
    let out = admin(&bad, &["init", "--group", spool_group()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains(&format!(
            "{}: line 1: SPOOLDIR {}: no such directory, nor its parent",
            bad.display(),
            typo.join("spool").display()
        )),
        "{}",
        text(&out.stdout)
    );
    assert!(!typo.exists());
    let out = admin(&conf, &["init", "--group", "no-such-group-rsm"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("no group no-such-group-rsm"),
        "{}",
        text(&out.stdout)
    );
    assert!(!spool.exists());
    if can_switch_user() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.join("rsendmail-admin");
        copy_executable(&admin_bin(), &copy);
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        let out = as_user(
            &copy,
            &[
                "-C",
                conf.to_str().unwrap(),
                "init",
                "--group",
                spool_group(),
            ],
            &[],
            b"",
        );
        assert_eq!(out.status.code(), Some(77), "{}", text(&out.stdout));
        assert_eq!(
            text(&out.stdout),
            "rsendmail-admin init: only root may make or repair the spool\n"
        );
        assert!(!spool.exists());
    }
    let _ = fs::remove_dir_all(&dir);
}

/// `init` and a submission take over an existing directory by one rule: a `SPOOLDIR`
/// naming a directory with other files (`/var/spool`), an old sendmail queue, or a
/// sticky or world-writable one with anything in it (`/tmp`), is refused by both (78,
/// the keyword's file and line, a file found there) and left exactly as it was; a sticky
/// or world-writable one (`/var/tmp`, a file system mounted 1777) is refused even empty.
/// An empty directory of its own is taken over and given the spool's modes, as is an old
/// spool with entries.
#[test]
fn init_and_submission_refuse_a_directory_that_is_not_a_spool() {
    if !is_root() {
        return;
    }
    let (dir, _conf, spool) = init_env("foreign");
    let conf_for = |name: &str, target: &Path| {
        let c = dir.join(format!("{name}.conf"));
        fs::write(
            &c,
            format!(
                "MAILNAME test.example\nSPOOLDIR {}\nMAILSPOOL {}\n",
                target.display(),
                dir.display()
            ),
        )
        .unwrap();
        c
    };
    // A /var/spool-like directory: other daemons' sub-directories.
    let shared = dir.join("varspool");
    fs::create_dir_all(shared.join("cron")).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
    let c = conf_for("shared", &shared);
    let out = admin(&c, &["init", "--group", spool_group()]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(
        said.contains(&format!(
            "{}: line 2: SPOOLDIR {}: it holds what is not a spool's (cron)",
            c.display(),
            shared.display()
        )),
        "{said}"
    );
    assert_eq!(owner_mode(&shared), (0o755, 0, 0));
    assert_eq!(fs::read_dir(&shared).unwrap().count(), 1);
    let out = run_limited(
        &bin(),
        &["-C", c.to_str().unwrap(), "-odq", "bob@example.org"],
        MSG,
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(
        said.contains("it holds what is not a spool's (cron)"),
        "{said}"
    );
    assert_eq!(fs::read_dir(&shared).unwrap().count(), 1, "made something");
    // A /tmp-like directory with files in it: sticky and world-writable, never touched
    // by either.
    let tmp = dir.join("tmplike");
    fs::create_dir(&tmp).unwrap();
    fs::write(tmp.join("qfAAAAAAAAAAAAAB"), "x").unwrap();
    for mode in [0o1777, 0o777, 0o1770] {
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).unwrap();
        let c = conf_for("tmplike", &tmp);
        let out = admin(&c, &["init", "--group", spool_group()]);
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(78), "{mode:o}: {said}");
        assert!(said.contains("line 2: SPOOLDIR"), "{said}");
        let why = if mode & 0o1000 != 0 {
            format!("the directory is sticky (mode {mode:o}")
        } else {
            format!("writable by everyone (mode {mode:o})")
        };
        // What others keep in a shared directory is not listed (a user's submission
        // would show every user the names in /tmp).
        assert!(
            said.contains(&why)
                && said.contains("and not empty: a shared directory is never taken over")
                && !said.contains("qfAAAAAAAAAAAAAB"),
            "{said}"
        );
        assert_eq!(owner_mode(&tmp), (mode, 0, 0));
        let out = run_limited(
            &bin(),
            &["-C", c.to_str().unwrap(), "-odq", "bob@example.org"],
            MSG,
        );
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(78), "{mode:o}: {said}");
        assert!(
            said.contains(&why) && said.contains("and not empty") && !said.contains("qfAAAA"),
            "{said}"
        );
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 1, "made something");
        assert_eq!(owner_mode(&tmp), (mode, 0, 0));
    }
    // An old sendmail queue (qf and df files, or any of sendmail's other queue files),
    // and other foreign files: named, refused by both, left alone.
    for (tag, files, named) in [
        (
            "smq",
            &["qf0B1GABCD012345", "df0B1GABCD012345"][..],
            "old sendmail queue (df0B1GABCD012345",
        ),
        (
            "smxf",
            &["xf0B1GABCD012345"][..],
            "old sendmail queue (xf0B1GABCD012345)",
        ),
        (
            "smtf",
            &["tf0B1GABCD012345"][..],
            "old sendmail queue (tf0B1GABCD012345)",
        ),
        (
            "smQf",
            &["Qf0B1GABCD012345"][..],
            "old sendmail queue (Qf0B1GABCD012345)",
        ),
        (
            "qfbad",
            &["qfnotanid"][..],
            "old sendmail queue (qfnotanid)",
        ),
        (
            "smqf",
            &["qf0B1GABCD012346"][..],
            "old sendmail queue (qf0B1GABCD012346)",
        ),
        (
            "other",
            &["index", "notes.txt"][..],
            "not a spool's (notes.txt)",
        ),
    ] {
        let q = dir.join(tag);
        fs::create_dir(&q).unwrap();
        for f in files {
            // A sendmail qf file begins with its version line.
            fs::write(q.join(f), "V8\nT1700000000\n").unwrap();
        }
        let c = conf_for(tag, &q);
        for out in [
            admin(&c, &["init", "--group", spool_group()]),
            run_limited(
                &bin(),
                &["-C", c.to_str().unwrap(), "-odq", "bob@example.org"],
                MSG,
            ),
        ] {
            let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert_eq!(out.status.code(), Some(78), "{tag}: {said}");
            assert!(
                said.contains(&format!(
                    "{}: line 2: SPOOLDIR {}: ",
                    c.display(),
                    q.display()
                )) && said.contains(named),
                "{tag}: {said}"
            );
            assert_eq!(fs::read_dir(&q).unwrap().count(), files.len(), "{tag}");
        }
        // check says the same of it.
        let out = admin(&c, &["check"]);
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(78), "{tag}: {said}");
        assert!(
            said.lines()
                .any(|l| l.starts_with("FAIL spool: ") && l.contains(named)),
            "{tag}: {said}"
        );
        assert_eq!(fs::read_dir(&q).unwrap().count(), files.len(), "{tag}");
    }
    // An empty sticky directory owned by root (a file system mounted 1777, /var/tmp):
    // shared, refused (78), nothing changed.
    let t = dir.join("tmpfs-rootgroup");
    fs::create_dir(&t).unwrap();
    fs::set_permissions(&t, fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run_limited(
        &bin(),
        &[
            "-C",
            conf_for("tmpfs-rootgroup", &t).to_str().unwrap(),
            "-odq",
            "bob@example.org",
        ],
        MSG,
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(
        said.contains("a shared directory is never taken over, even empty"),
        "{said}"
    );
    assert_eq!(owner_mode(&t), (0o1777, 0, 0));
    assert_eq!(fs::read_dir(&t).unwrap().count(), 0);
    // Empty, sticky or writable by everyone, and of a group fit for a spool: still
    // shared (/var/tmp, /dev/shm, /run/lock), refused by both, its mode never changed.
    for (tag, first, mode) in [
        ("tmpfs-init", "init", 0o1777),
        ("tmpfs-submit", "submit", 0o1777),
        ("open-init", "init", 0o777),
        ("open-submit", "submit", 0o777),
    ] {
        let t = dir.join(tag);
        fs::create_dir(&t).unwrap();
        std::os::unix::fs::chown(&t, None, Some(spool_gid())).unwrap();
        fs::set_permissions(&t, fs::Permissions::from_mode(mode)).unwrap();
        let c = conf_for(tag, &t);
        let out = if first == "init" {
            admin(&c, &["init", "--group", spool_group()])
        } else {
            run_limited(
                &bin(),
                &["-C", c.to_str().unwrap(), "-odq", "bob@example.org"],
                MSG,
            )
        };
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(78), "{tag}: {said}");
        assert!(
            said.contains("a shared directory is never taken over, even empty"),
            "{tag}: {said}"
        );
        assert_eq!(owner_mode(&t), (mode, 0, spool_gid()), "{tag}");
        assert_eq!(fs::read_dir(&t).unwrap().count(), 0, "{tag}");
    }
    // An empty directory, and an old spool holding entries only, are taken over.
    fs::create_dir(&spool).unwrap();
    fs::write(spool.join("qfAAAAAAAAAAAAAA"), "x").unwrap();
    let c = conf_for("old", &spool);
    let out = admin(&c, &["init", "--group", spool_group()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_layout(&spool);
    // The spool made, a stray file in it (an editor's backup, a file named like an
    // entry): still rsendmail's own, used by init and a submission, the file left there.
    for stray in ["notes.txt", "qfjunk"] {
        fs::write(spool.join(stray), "x").unwrap();
    }
    let out = admin(&c, &["init", "--group", spool_group()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = run_limited(
        &bin(),
        &["-C", c.to_str().unwrap(), "-odq", "bob@example.org"],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(spool.join("notes.txt").exists() && spool.join("qfjunk").exists());
    let _ = fs::remove_dir_all(&dir);
}

/// The children of process `pid` whose command line holds `--queue-runner`.
fn queue_runners_of(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .filter(|c| {
            fs::read(format!("/proc/{c}/cmdline"))
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains("--queue-runner"))
        })
        .collect()
}

/// Whether process `pid` is running (there, and not a zombie).
fn running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

/// SIGHUP restarts the daemon as sendmail's: it stops its queue runner, executes itself
/// again (`-bD`: the same process id), listens again with a new runner and writes its pid
/// file again; SIGTERM then stops it and removes the pid file. The pid file is the pid
/// and the command line, mode 0644, written over a symbolic link at its path without
/// following it.
#[test]
fn the_daemon_restarts_on_sighup_and_writes_its_pid_file_safely() {
    use crate::harness::servers::Daemon;
    let env = Env::new();
    let pid_file = env.dir.join("daemon.pid");
    let victim = env.dir.join("victim");
    fs::write(&victim, "important\n").unwrap();
    std::os::unix::fs::symlink(&victim, &pid_file).unwrap();
    env.add_config(&format!("O PidFile={}\n", pid_file.display()));
    let mut d = Daemon::start(&env, &["-q30m"]);
    let pid = d.child.id();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "important\n");
    let md = fs::symlink_metadata(&pid_file).unwrap();
    assert!(md.is_file(), "the pid file is still the symbolic link");
    assert_eq!(md.mode() & 0o7777, 0o644);
    let text = fs::read_to_string(&pid_file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert_eq!(lines[0], pid.to_string());
    assert!(lines[1].contains(" -bD -q30m"), "{text:?}");
    let mut first = Vec::new();
    wait_until(Duration::from_secs(10), "the queue runner", || {
        first = queue_runners_of(pid);
        first.len() == 1
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    wait_until(Duration::from_secs(20), "the old runner to stop", || {
        !running(first[0])
    });
    let mut second = Vec::new();
    wait_until(Duration::from_secs(20), "a new runner", || {
        second = queue_runners_of(pid);
        second.len() == 1 && second != first
    });
    assert!(d.child.try_wait().unwrap().is_none(), "SIGHUP killed it");
    // What the old program passed on is not passed further: the new runner's environment
    // does not name the listening sockets or the sessions.
    let environ = fs::read(format!("/proc/{}/environ", second[0])).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("PATH="), "{environ}");
    assert!(!environ.contains("RSENDMAIL_DAEMON"), "{environ}");
    wait_until(
        Duration::from_secs(10),
        "the daemon to listen again",
        || std::net::TcpStream::connect(("127.0.0.1", d.port)).is_ok(),
    );
    wait_until(Duration::from_secs(10), "the pid file again", || {
        fs::read_to_string(&pid_file).is_ok_and(|t| t.starts_with(&format!("{pid}\n")))
    });
    sigterm(&d.child);
    assert!(wait_exit(&mut d.child, Duration::from_secs(20)).is_some());
    assert!(!pid_file.exists(), "the pid file is left behind");
    wait_until(Duration::from_secs(10), "the runner to stop", || {
        !running(second[0])
    });
}

/// The daemon's queue runner follows it: when the daemon is killed outright (SIGKILL, no
/// handler runs), the runner stops too, rather than running on beside the next daemon.
#[test]
fn the_queue_runner_stops_when_its_daemon_is_killed() {
    use crate::harness::servers::Daemon;
    let env = Env::new();
    let mut d = Daemon::start(&env, &["-q30m"]);
    let pid = d.child.id();
    let mut runners = Vec::new();
    wait_until(Duration::from_secs(10), "the queue runner", || {
        runners = queue_runners_of(pid);
        runners.len() == 1
    });
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    wait_until(
        Duration::from_secs(15),
        "the orphaned runner to stop",
        || !running(runners[0]),
    );
}

/// Copies of `rsendmail` and `rsendmail-deliver` in `dir` (made, owned by root, mode
/// 0755, as an install's directory is), with the set-group-id bit and group `gid` when
/// given; the path of the `rsendmail` copy.
fn installed_copies(dir: &Path, gid: Option<u32>) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let front = dir.join("rsendmail");
    copy_executable(&bin(), &front);
    let deliver = dir.join("rsendmail-deliver");
    copy_executable(Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver")), &deliver);
    for p in [&front, &deliver] {
        match gid {
            Some(g) => {
                nix::unistd::chown(p, None, Some(nix::unistd::Gid::from_raw(g))).unwrap();
                fs::set_permissions(p, fs::Permissions::from_mode(0o2755)).unwrap();
            }
            None => fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap(),
        }
    }
    front
}

/// A `DaemonPortOptions` on a free port of 127.0.0.1, added to the config; the port.
fn daemon_port(env: &Env) -> u16 {
    let port = closed_tcp_port();
    env.add_config(&format!("O DaemonPortOptions=Port={port},Addr=127.0.0.1\n"));
    port
}

fn sighup(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}

/// The greeting of a new connection to the daemon on `port`, once it takes one.
fn greeting_on(port: u16, limit: Duration) -> String {
    use crate::harness::servers::Raw;
    let mut greeting = String::new();
    wait_until(
        limit,
        "the daemon to answer",
        || match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                greeting = Raw::from(s).line();
                greeting.starts_with("220 ")
            }
            Err(_) => false,
        },
    );
    greeting
}

/// The daemon's queue runner follows it also when the programs are set-group-id (as
/// installed): the kernel clears the parent-death signal when a set-id program is
/// executed, so the runner asks for it again itself. Killed outright (SIGKILL), the
/// daemon leaves no runner behind.
#[test]
fn the_queue_runner_of_a_set_gid_install_stops_when_its_daemon_is_killed() {
    use crate::harness::servers::Daemon;
    if !is_root() {
        unavailable("root (a set-group-id copy of the programs)");
        return;
    }
    let env = Env::new();
    let program = installed_copies(&env.dir.join("bin"), Some(mail_gid()));
    let port = daemon_port(&env);
    let mut d = Daemon::start_program(&env, &program, &["-q30m"], port);
    let pid = d.child.id();
    let mut runners = Vec::new();
    wait_until(Duration::from_secs(20), "the queue runner", || {
        runners = queue_runners_of(pid);
        runners.len() == 1
    });
    // The runner was executed set-group-id (its effective group is the file's).
    let status = fs::read_to_string(format!("/proc/{}/status", runners[0])).unwrap();
    let gids: Vec<&str> = status
        .lines()
        .find(|l| l.starts_with("Gid:"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(gids[2], mail_gid().to_string(), "{status}");
    // A runner left behind (the failure) is killed when the test ends, whatever it says.
    struct KillLeftOver(u32);
    impl Drop for KillLeftOver {
        fn drop(&mut self) {
            if running(self.0) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.0 as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let _left_over = KillLeftOver(runners[0]);
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    wait_until(
        Duration::from_secs(20),
        "the orphaned runner to stop",
        || !running(runners[0]),
    );
}

/// SIGHUP with a configuration that would not start (a typo made after the start): the
/// daemon logs the file and line and runs on with the configuration it has; once the
/// configuration is mended, SIGHUP restarts it with the new one.
#[test]
fn sighup_with_a_broken_configuration_keeps_the_daemon_running() {
    use crate::harness::servers::{Daemon, Raw};
    let (env, log) = env_with_maillog();
    let mut d = Daemon::start(&env, &[]);
    let pid = d.child.id();
    let good = fs::read_to_string(&env.conf).unwrap();
    let typo_line = good.lines().count() + 1;
    fs::write(&env.conf, format!("{good}SMARTHOTS relay.example\n")).unwrap();
    sighup(pid);
    let want = format!(
        "{}: line {typo_line}: unknown keyword SMARTHOTS",
        env.conf.display()
    );
    wait_until(Duration::from_secs(20), "the error in the log", || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains(&want))
    });
    let said = fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("running on with the configuration read at start"),
        "{said}"
    );
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon ended");
    let mut c = Raw::connect(d.port);
    assert!(c.line().starts_with("220 "));
    let ehlo = c.reply_to("EHLO client.example");
    assert!(ehlo.iter().all(|l| !l.contains("SIZE 12345")), "{ehlo:?}");
    assert_eq!(c.cmd("QUIT").split(' ').next(), Some("221"));
    // Mended, with a change to see: the restart takes it.
    fs::write(&env.conf, format!("{good}O MaxMessageSize=12345\n")).unwrap();
    sighup(pid);
    wait_until(Duration::from_secs(30), "the new configuration", || {
        let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", d.port)) else {
            return false;
        };
        let mut c = Raw::from(s);
        c.line().starts_with("220 ")
            && c.reply_to("EHLO client.example")
                .iter()
                .any(|l| l.contains("SIZE 12345"))
    });
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon ended");
}

/// SIGHUP after an upgrade that renamed a new binary over the old one (as dpkg
/// installs): the daemon executes the file now at the path it was started from (not the
/// deleted one it ran) and takes mail again.
#[test]
fn sighup_after_an_upgrade_by_rename_runs_the_new_program() {
    use crate::harness::servers::{Daemon, Raw};
    let env = Env::new();
    let bins = env.dir.join("bin");
    let program = installed_copies(&bins, None);
    let port = daemon_port(&env);
    let mut d = Daemon::start_program(&env, &program, &["-odq"], port);
    let pid = d.child.id();
    let deliver = bins.join("rsendmail-deliver");
    let exe = || fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    assert_eq!(exe(), deliver);
    let new = bins.join(".rsendmail-deliver.dpkg-new");
    copy_executable(Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver")), &new);
    fs::rename(&new, &deliver).unwrap();
    assert_ne!(exe(), deliver, "the old file is still the one at its path");
    let old_inode = fs::metadata(format!("/proc/{pid}/exe")).unwrap().ino();
    sighup(pid);
    wait_until(Duration::from_secs(30), "the new program to run", || {
        exe() == deliver
            && fs::metadata(format!("/proc/{pid}/exe")).is_ok_and(|m| m.ino() != old_inode)
    });
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon ended");
    greeting_on(port, Duration::from_secs(30));
    let mut c = Raw::connect(port);
    assert!(c.line().starts_with("220 "));
    assert!(c.cmd("EHLO client.example").starts_with("250 "));
    c.begin_data("bob@example.org");
    c.send(b"Subject: after the upgrade\r\n\r\nhello\r\n.\r\n");
    let r = c.line();
    assert!(r.starts_with("250 "), "{r}");
    assert_eq!(env.entries().len(), 1);
}

/// An [`Env`] whose configuration names a MAILLOG in its directory; the log's path.
fn env_with_maillog() -> (Env, PathBuf) {
    let env = Env::new();
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    (env, log)
}

/// An [`Env`] relaying to a test server that keeps its reply to the final dot for `stall`
/// seconds (`STALL`), with `O Timeout.datafinal=`datafinal and a MAILLOG; the server and
/// the log's path. None when there is no such server here.
fn stalling_relay(
    stall: &str,
    datafinal: &str,
) -> Option<(Env, crate::harness::servers::Peer, PathBuf)> {
    if !crate::harness::servers::have_peer() {
        return None;
    }
    let env = Env::new();
    let peer = crate::harness::servers::Peer::start(&env.dir, &[("STALL", stall)]);
    let log = env.dir.join("maillog");
    env.add_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nO Timeout.datafinal={datafinal}\nMAILLOG {}\n",
        peer.port,
        log.display()
    ));
    Some((env, peer, log))
}

/// A standalone periodic queue runner, `PROGRAM -C conf -q30m -qf` (in the foreground:
/// the child is the runner).
fn standalone_runner(env: &Env, program: &Path) -> std::process::Child {
    Command::new(program)
        .args(["-C", env.conf.to_str().unwrap(), "-q30m", "-qf"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// How many lines of the log at `log` contain `what`.
fn log_count(log: &Path, what: &str) -> usize {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .count()
}

/// SIGHUP leaves the sessions running, as sendmail's restart does, and does not wait for
/// them: the new program runs while a client is in the middle of DATA; that client then
/// completes its message, and its QUIT gets 221; an idle client goes on with a
/// transaction of its own. The new program counts the sessions it did not start for
/// MaxDaemonChildren, reaps them as they end, and stops them on SIGTERM; a client that
/// connected during the restart is served.
#[test]
fn sighup_leaves_the_sessions_running_and_the_new_program_counts_them() {
    use crate::harness::servers::{Daemon, Raw};
    let env = Env::new();
    let log = env.dir.join("maillog");
    env.add_config(&format!(
        "MAILLOG {}\nO MaxDaemonChildren=4\n",
        log.display()
    ));
    let mut d = Daemon::start(&env, &["-odq"]);
    let pid = d.child.id();
    let sessions = || -> Vec<u32> {
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|&p| running(p))
            .collect()
    };
    // The session of the start's probe ends when it reads the probe's close: until then
    // it is a session too (counted, and taken for the busy one below).
    wait_until(
        Duration::from_secs(30),
        "the probe's session to end",
        || sessions().is_empty(),
    );
    let mut busy = Raw::connect(d.port);
    assert!(busy.line().starts_with("220 "));
    assert!(busy.cmd("EHLO busy.example").starts_with("250 "));
    let busy_pid = sessions();
    assert_eq!(busy_pid.len(), 1, "{busy_pid:?}");
    busy.begin_data("bob@example.org");
    busy.send(b"Subject: across the restart\r\n\r\nfirst part\r\n");
    let mut idle = Raw::connect(d.port);
    assert!(idle.line().starts_with("220 "));
    assert!(idle.cmd("EHLO idle.example").starts_with("250 "));
    let mut kept = Raw::connect(d.port);
    assert!(kept.line().starts_with("220 "));
    wait_until(Duration::from_secs(30), "the daemon's log", || {
        log_count(&log, "listening on") == 1
    });
    sighup(pid);
    let waiting = std::net::TcpStream::connect(("127.0.0.1", d.port))
        .expect("a connection during the restart is refused");
    // The restart does not wait for the transaction in progress (it used to, up to 60 s).
    // The new program says the sessions it took over on the line after `listening on`.
    wait_until_or(
        Duration::from_secs(60),
        "the new program and the sessions it took over",
        || fs::read_to_string(&log).unwrap_or_default(),
        || {
            log_count(&log, "listening on") == 2
                && log_count(&log, "sessions of the daemon before the restart go on") == 1
        },
    );
    let mut waiting = Raw::from(waiting);
    let r = waiting.line();
    assert!(r.starts_with("220 "), "{r:?}");
    // Four sessions, three of them the old program's: the limit is reached.
    let mut refused = Raw::connect(d.port);
    let r = refused.line();
    assert!(
        r.starts_with("421 4.3.2 ") && r.contains("Too many connections"),
        "{r:?}"
    );
    // The end of the message and QUIT at once: 250, then 221.
    busy.send(b"second part\r\n.\r\nQUIT\r\n");
    let r = busy.line();
    assert!(r.starts_with("250 "), "{r:?}");
    let r = busy.line();
    assert!(r.starts_with("221 "), "{r:?}");
    assert!(busy.closed());
    wait_until(Duration::from_secs(30), "the busy session's end", || {
        !running(busy_pid[0])
    });
    // Its place is free (the new program reaped it).
    let mut next = Raw::connect(d.port);
    let r = next.line();
    assert!(r.starts_with("220 "), "{r:?}");
    assert_eq!(next.cmd("QUIT").split(' ').next(), Some("221"));
    // The idle sessions are there still.
    assert!(kept.cmd("NOOP").starts_with("250 "));
    assert!(idle.cmd("NOOP").starts_with("250 "));
    idle.begin_data("carol@example.org");
    idle.send(b"Subject: after the restart\r\n\r\nidle no more\r\n.\r\n");
    let r = idle.line();
    assert!(r.starts_with("250 "), "{r:?}");
    assert_eq!(idle.cmd("QUIT").split(' ').next(), Some("221"));
    assert_eq!(env.entries().len(), 2, "{}", env.listing());
    let all: String = env
        .entries()
        .iter()
        .map(|e| fs::read_to_string(e).unwrap())
        .collect();
    assert!(
        all.contains("first part\r\nsecond part") || all.contains("first part\nsecond part"),
        "{all}"
    );
    // SIGTERM stops the sessions, those of before the restart too, and the daemon ends.
    assert!(waiting.cmd("NOOP").starts_with("250 "));
    sigterm(&d.child);
    assert!(wait_exit(&mut d.child, Duration::from_secs(30)).is_some());
    assert!(waiting.closed());
    assert!(kept.closed());
}

/// A session takes no SIGHUP for itself: sent to a session's process (as a hangup of the
/// whole process group sends it), the session goes on.
#[test]
fn a_session_goes_on_after_a_sighup_of_its_own() {
    use crate::harness::servers::{Daemon, Raw};
    let env = Env::new();
    let d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::connect(d.port);
    assert!(c.line().starts_with("220 "));
    assert!(c.cmd("EHLO client.example").starts_with("250 "));
    let sessions: Vec<u32> =
        fs::read_to_string(format!("/proc/{0}/task/{0}/children", d.child.id()))
            .unwrap()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|&p| running(p))
            .collect();
    assert!(!sessions.is_empty());
    for &p in &sessions {
        sighup(p);
    }
    assert!(c.cmd("NOOP").starts_with("250 "));
    assert_eq!(c.cmd("QUIT").split(' ').next(), Some("221"));
}

/// SIGHUP when the configuration now names a spool that is not there (and a new MAILLOG):
/// the new start is checked before anything stops, the reason is logged with the file
/// and line in the log in use, and the daemon runs on as it was, logging where it did.
/// Mended, SIGHUP restarts it.
#[test]
fn sighup_with_a_start_that_would_fail_keeps_the_daemon_running_as_it_was() {
    use crate::harness::servers::{Daemon, Raw};
    let (env, log) = env_with_maillog();
    let mut d = Daemon::start(&env, &["-odq"]);
    let pid = d.child.id();
    let good = fs::read_to_string(&env.conf).unwrap();
    let missing = env.dir.join("no-spool");
    let new_log = env.dir.join("new-maillog");
    let spool_line = format!("SPOOLDIR {}", env.spool.display());
    assert!(good.lines().next() == Some(spool_line.as_str()), "{good}");
    fs::write(
        &env.conf,
        format!(
            "{}MAILLOG {}\n",
            good.replace(&spool_line, &format!("SPOOLDIR {}", missing.display())),
            new_log.display()
        ),
    )
    .unwrap();
    sighup(pid);
    let want = format!(
        "{}: line 1: SPOOLDIR {}: no such directory",
        env.conf.display(),
        missing.display()
    );
    wait_until(Duration::from_secs(30), "the reason in the log", || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains(&want))
    });
    let said = fs::read_to_string(&log).unwrap();
    assert!(
        said.lines()
            .any(|l| l.contains("SIGHUP: not restarting: ") && l.contains(&want)),
        "{said}"
    );
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon ended");
    let mut c = Raw::connect(d.port);
    assert!(c.line().starts_with("220 "));
    assert!(c.cmd("EHLO client.example").starts_with("250 "));
    c.begin_data("bob@example.org");
    c.send(b"Subject: still here\r\n\r\nhello\r\n.\r\n");
    let r = c.line();
    assert!(r.starts_with("250 "), "{r}");
    assert_eq!(c.cmd("QUIT").split(' ').next(), Some("221"));
    assert_eq!(env.entries().len(), 1);
    // Still logging to the file it had: the session's end is there, not in the new one.
    wait_until(
        Duration::from_secs(10),
        "the session in the old log",
        || log_count(&log, "session ended, 1 messages") == 1,
    );
    assert!(
        fs::read_to_string(&new_log).unwrap_or_default().is_empty(),
        "the daemon logs to the new MAILLOG"
    );
    // Mended: the restart goes ahead, and the new program logs to the new file.
    fs::write(&env.conf, format!("{good}MAILLOG {}\n", new_log.display())).unwrap();
    sighup(pid);
    wait_until(Duration::from_secs(60), "the restarted daemon", || {
        log_count(&new_log, "listening on") == 1
    });
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon ended");
    greeting_on(d.port, Duration::from_secs(30));
}

/// SIGHUP whose check passed, but the program cannot be executed after all (it changed
/// since: here the program checked takes its own execute bit away): the daemon logs
/// `could not exec` and runs on as it was (with a new queue runner, when one can start;
/// the old one was told to finish and ends).
#[test]
fn sighup_whose_exec_fails_after_its_check_keeps_the_daemon_running() {
    use crate::harness::servers::{Daemon, Raw};
    let (env, log) = env_with_maillog();
    let bins = env.dir.join("bin");
    let program = installed_copies(&bins, None);
    let port = daemon_port(&env);
    let mut d = Daemon::start_program(&env, &program, &["-q30m"], port);
    let pid = d.child.id();
    let mut first = Vec::new();
    wait_until(Duration::from_secs(20), "the queue runner", || {
        first = queue_runners_of(pid);
        first.len() == 1
    });
    let deliver = bins.join("rsendmail-deliver");
    let new = bins.join(".rsendmail-deliver.dpkg-new");
    fs::write(
        &new,
        "#!/bin/sh\necho \"restart check passed $RSENDMAIL_RESTART_CHECK\"\nchmod 644 \"$0\"\nexit 0\n",
    )
    .unwrap();
    fs::set_permissions(&new, fs::Permissions::from_mode(0o755)).unwrap();
    fs::rename(&new, &deliver).unwrap();
    sighup(pid);
    wait_until(Duration::from_secs(60), "the failure in the log", || {
        log_count(&log, "SIGHUP: could not exec ") == 1
    });
    let said = fs::read_to_string(&log).unwrap();
    assert!(
        said.lines().any(|l| l.contains("SIGHUP: could not exec ")
            && l.contains(deliver.to_str().unwrap())
            && l.contains("Permission denied")),
        "{said}"
    );
    // The runner was stopped for the restart; another cannot start from that path
    // either, which is said too.
    wait_until(
        Duration::from_secs(10),
        "the runner's failure in the log",
        || log_count(&log, "cannot start the queue runner") == 1,
    );
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon ended");
    let mut c = Raw::connect(port);
    assert!(c.line().starts_with("220 "));
    assert!(c.cmd("EHLO client.example").starts_with("250 "));
    assert_eq!(c.cmd("QUIT").split(' ').next(), Some("221"));
    // The old runner, told to finish, had nothing in progress: it ends.
    wait_until(Duration::from_secs(20), "the old runner to end", || {
        !running(first[0])
    });
}

/// SIGHUPs in quick succession (a reload sent again and again) while the daemon restarts:
/// one that comes before the new program has its handlers waits for them (the signals
/// are held across the exec), so none ends the daemon by the signal's default action;
/// the daemon restarts again and serves.
#[test]
fn sighups_during_a_restart_never_end_the_daemon() {
    let (env, log) = env_with_maillog();
    let mut d = crate::harness::servers::Daemon::start(&env, &["-odq"]);
    let pid = d.child.id();
    wait_until(Duration::from_secs(10), "the daemon's log", || {
        log_count(&log, "listening on") == 1
    });
    // A SIGHUP every millisecond until the restarted program says it listens.
    let limit = std::time::Instant::now() + Duration::from_secs(60);
    while log_count(&log, "listening on") < 2
        && std::time::Instant::now() < limit
        && d.child.try_wait().unwrap().is_none()
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGHUP,
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "a SIGHUP ended the daemon:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(log_count(&log, "listening on") >= 2);
    greeting_on(d.port, Duration::from_secs(30));
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon ended");
}

/// `-bd` restarted by SIGHUP stays the same process (it does not fork again): the pid
/// in its pid file, which a service manager follows, still names the daemon, whose
/// sessions are its children.
#[test]
fn a_background_daemon_keeps_its_process_id_across_sighup() {
    let env = Env::new();
    let log = env.dir.join("maillog");
    let pid_file = env.dir.join("daemon.pid");
    env.add_config(&format!(
        "MAILLOG {}\nO PidFile={}\n",
        log.display(),
        pid_file.display()
    ));
    let port = daemon_port(&env);
    let st = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-bd"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut pid = 0u32;
    wait_until(Duration::from_secs(20), "the pid file", || {
        pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.parse().ok()))
            .unwrap_or(0);
        pid != 0
    });
    // The daemon is stopped when the test ends, whatever it says.
    struct Stop(u32);
    impl Drop for Stop {
        fn drop(&mut self) {
            if running(self.0) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.0 as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let _stop = Stop(pid);
    greeting_on(port, Duration::from_secs(20));
    sighup(pid);
    wait_until(Duration::from_secs(60), "the restarted daemon", || {
        log_count(&log, "listening on") == 2
    });
    assert!(running(pid), "the daemon is not the same process");
    greeting_on(port, Duration::from_secs(20));
    let text = fs::read_to_string(&pid_file).unwrap();
    assert_eq!(
        text.lines().next(),
        Some(pid.to_string().as_str()),
        "{text}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_until(Duration::from_secs(20), "the daemon to stop", || {
        !running(pid)
    });
}

/// SIGHUP after a broken program was renamed over the path the daemon was started from
/// (an empty file, a cut-off binary, one without its execute bit, a script that fails or
/// exits 0 doing nothing): the restart is refused and logged with the reason, and the
/// daemon, still the program it was, serves on. With a good program there again, SIGHUP
/// restarts it.
#[test]
fn sighup_with_a_broken_program_at_its_path_keeps_the_daemon_running() {
    use crate::harness::servers::{Daemon, Raw};
    let (env, log) = env_with_maillog();
    let bins = env.dir.join("bin");
    let program = installed_copies(&bins, None);
    let port = daemon_port(&env);
    let mut d = Daemon::start_program(&env, &program, &["-odq"], port);
    let pid = d.child.id();
    let deliver = bins.join("rsendmail-deliver");
    let real = fs::read(env!("CARGO_BIN_EXE_rsendmail-deliver")).unwrap();
    let old_inode = || fs::metadata(format!("/proc/{pid}/exe")).unwrap().ino();
    let first = old_inode();
    let cases: [(&str, Vec<u8>, u32, &str); 5] = [
        // (Executed by the shell, as execvp does with a file that is not a binary.)
        (
            "empty",
            Vec::new(),
            0o755,
            "without passing its start-up checks",
        ),
        ("cut off", real[..4096].to_vec(), 0o755, "would not start"),
        ("no execute bit", real.clone(), 0o644, "could not exec"),
        (
            "failing script",
            b"#!/bin/sh\necho 'cannot start: broken' >&2\nexit 1\n".to_vec(),
            0o755,
            "cannot start: broken",
        ),
        (
            "script doing nothing",
            b"#!/bin/sh\nexit 0\n".to_vec(),
            0o755,
            "without passing its start-up checks",
        ),
    ];
    for (n, (what, bytes, mode, reason)) in cases.iter().enumerate() {
        let new = bins.join(".rsendmail-deliver.dpkg-new");
        fs::write(&new, bytes).unwrap();
        fs::set_permissions(&new, fs::Permissions::from_mode(*mode)).unwrap();
        fs::rename(&new, &deliver).unwrap();
        sighup(pid);
        wait_until(Duration::from_secs(30), "the refusal in the log", || {
            log_count(&log, "SIGHUP: not restarting: ") == n + 1
        });
        let said = fs::read_to_string(&log).unwrap();
        let line = said
            .lines()
            .rfind(|l| l.contains("SIGHUP: not restarting: "))
            .unwrap();
        assert!(
            line.contains(reason) && line.contains(deliver.to_str().unwrap()),
            "{what}: {line}"
        );
        assert!(
            d.child.try_wait().unwrap().is_none(),
            "{what}: the daemon ended"
        );
        assert_eq!(old_inode(), first, "{what}: the program was replaced");
        let mut c = Raw::connect(port);
        assert!(c.line().starts_with("220 "), "{what}");
        assert!(c.cmd("EHLO client.example").starts_with("250 "), "{what}");
        assert_eq!(c.cmd("QUIT").split(' ').next(), Some("221"), "{what}");
    }
    let new = bins.join(".rsendmail-deliver.dpkg-new");
    copy_executable(Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver")), &new);
    fs::rename(&new, &deliver).unwrap();
    sighup(pid);
    wait_until(Duration::from_secs(60), "the new program to run", || {
        old_inode() != first
    });
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon ended");
    greeting_on(port, Duration::from_secs(30));
}

/// After an upgrade that renamed a new binary over the old one, the daemon's queue
/// runner (still the old program until SIGHUP) delivers local mail: the child it starts
/// to write the mailbox is the program at the path it was started from, not the deleted
/// file.
#[test]
fn the_runner_delivers_locally_after_an_upgrade_by_rename() {
    use crate::harness::servers::Daemon;
    if !is_root() {
        unavailable("root (local delivery to root's mailbox)");
        return;
    }
    let (env, log) = env_with_maillog();
    let bins = env.dir.join("bin");
    let program = installed_copies(&bins, None);
    let port = daemon_port(&env);
    let d = Daemon::start_program(&env, &program, &["-q30m"], port);
    let pid = d.child.id();
    let mut runners = Vec::new();
    wait_until(Duration::from_secs(20), "the queue runner", || {
        runners = queue_runners_of(pid);
        runners.len() == 1
    });
    wait_until(Duration::from_secs(20), "the wake-up endpoint", || {
        env.spool.join("wakeup").exists()
    });
    let deliver = bins.join("rsendmail-deliver");
    let new = bins.join(".rsendmail-deliver.dpkg-new");
    copy_executable(Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver")), &new);
    fs::rename(&new, &deliver).unwrap();
    let out = run_limited(
        &program,
        &["-C", env.conf.to_str().unwrap(), "-odb", "root"],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let mbox = env.dir.join("mail").join("root");
    wait_until_or(
        Duration::from_secs(30),
        "the message in root's mailbox",
        || env.listing(),
        || fs::read_to_string(&mbox).is_ok_and(|t| t.contains("Subject: setup")),
    );
    // The delivery's log line follows the mailbox's write.
    let by_runner = || {
        fs::read_to_string(&log).is_ok_and(|said| {
            said.lines().any(|l| {
                l.contains(&format!("rsendmail-deliver[{}]", runners[0]))
                    && l.contains("to=<root")
                    && l.contains("stat=Sent")
            })
        })
    };
    wait_until_or(
        Duration::from_secs(10),
        "the runner's delivery in the log",
        || fs::read_to_string(&log).unwrap_or_default(),
        by_runner,
    );
}

/// A spool, or one of its sub-directories, made writable by everyone after it was made
/// (sticky or not) is refused by every way into it that takes or runs mail
/// (submissions in each mode, `-bs`, the daemon, `-q`, the periodic runner): exit 78,
/// the directory and its mode named, nothing queued or delivered; `mailq` lists the
/// queue with the same words. Made 2770 again, the spool is used again.
#[test]
fn a_spool_writable_by_everyone_is_refused_everywhere() {
    let damages: [(&str, u32); 6] = [
        ("", 0o2777),
        ("", 0o3777),
        ("tmp", 0o2777),
        ("index", 0o777),
        ("index/domains", 0o2777),
        ("hold", 0o1777),
    ];
    for (sub, mode) in damages {
        let env = Env::new();
        env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
        for d in ["hold", "index/domains"] {
            fs::create_dir_all(env.spool.join(d)).unwrap();
            // As the spool's own sub-directories are: others may not enter them.
            fs::set_permissions(env.spool.join(d), fs::Permissions::from_mode(0o2770)).unwrap();
        }
        let dir = if sub.is_empty() {
            env.spool.clone()
        } else {
            env.spool.join(sub)
        };
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
        let want = format!(
            "{} (mode {mode:o}) is writable by everyone: any user could plant or remove \
             queue entries there",
            dir.display()
        );
        let before = env.entries();
        for (program, args, stdin) in entry_points(&env) {
            let mut full = vec!["-C", env.conf.to_str().unwrap()];
            full.extend(args.iter().copied());
            let out = run_limited(&program, &full, stdin);
            let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert!(
                said.contains(&want),
                "{sub} {full:?}: {said:?} lacks {want:?}"
            );
            assert!(
                said.contains(&format!("(`chmod 2770 {}` repairs it)", dir.display())),
                "{sub} {full:?}: {said}"
            );
            let listing = args.contains(&"-bp") || program.ends_with("mailq");
            let code = if listing { 0 } else { 78 };
            assert_eq!(out.status.code(), Some(code), "{sub} {full:?}: {said}");
            assert_eq!(env.entries(), before, "{sub} {full:?}");
            if listing {
                // The listing on stdout, the warning on stderr.
                assert!(!text(&out.stdout).contains(&want), "{sub} {full:?}: {said}");
                assert!(text(&out.stderr).contains(&want), "{sub} {full:?}: {said}");
            }
            if args == ["-bs"] {
                assert!(
                    text(&out.stdout).starts_with("451 4.0.0 "),
                    "{sub}: {said:?}"
                );
            }
        }
        // The administrator's commands: those that write to the spool or deliver from
        // it refuse it as a queue run does (78, the same words, nothing changed or
        // sent); those that read it read it, the warning on stderr.
        let id = before[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches("qf")
            .to_string();
        let held = env.spool.join("hold").join(format!("qf{id}"));
        for (args, code) in [
            (vec!["retry", &id], 78),
            (vec!["bounce", &id], 78),
            (vec!["hold", &id], 78),
            (vec!["release", &id], 78),
            (vec!["delete", &id], 78),
            (vec!["delete", "--dry-run", &id], 78),
            (vec!["delete", "--all"], 78),
            (vec!["list"], 0),
            (vec!["list", "--json"], 0),
            (vec!["show", &id], 0),
        ] {
            let mut full = vec!["-C", env.conf.to_str().unwrap()];
            full.extend(args.iter().copied());
            let out = run_limited(&admin_bin(), &full, b"");
            let (o, e) = (text(&out.stdout), text(&out.stderr));
            assert_eq!(out.status.code(), Some(code), "{sub} {args:?}: {o}{e}");
            assert!(e.contains(&want), "{sub} {args:?}: {o}{e}");
            assert!(!o.contains(&want), "{sub} {args:?}: {o}{e}");
            if code == 78 {
                assert!(o.is_empty(), "{sub} {args:?}: {o}{e}");
            } else {
                assert!(o.contains(&id), "{sub} {args:?}: {o}{e}");
            }
            assert_eq!(env.entries(), before, "{sub} {args:?}");
            assert!(!held.exists(), "{sub} {args:?}");
        }
        // `rsendmail-admin check` says the same, with its fix.
        let out = run_limited(
            &admin_bin(),
            &["-C", env.conf.to_str().unwrap(), "check"],
            b"",
        );
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(78), "{said}");
        assert!(
            said.lines().any(|l| l.starts_with("FAIL spool: ")
                && l.contains(&want)
                && l.ends_with(&format!("chmod 2770 {})", dir.display()))),
            "{sub}: {said}"
        );
        // The check's line gives the command that repairs it once, as its fix (init
        // refuses a directory everyone may write that is not empty): run as said, the
        // spool is used again.
        let repair = format!("(`chmod 2770 {}` repairs it)", dir.display());
        assert!(!said.contains(&repair), "{sub}: {said}");
        let st = std::process::Command::new("sh")
            .args(["-c", &format!("chmod 2770 {}", dir.display())])
            .status()
            .unwrap();
        assert!(st.success());
        env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
        assert_eq!(env.entries().len(), before.len() + 1, "{sub}");
    }
}

/// A daemon already running when its spool is made writable by everyone takes no
/// message into it: the client gets `451` at the end of the data and keeps the message;
/// made 2770 again, the next message is taken.
#[test]
fn a_running_daemon_refuses_a_spool_made_writable_by_everyone() {
    use crate::harness::servers::{Daemon, Raw};
    use std::io::Write;
    let env = Env::new();
    // Deferred: no DNS (the sender's domain is not looked up).
    let d = Daemon::start(&env, &["-odd"]);
    let mut r = Raw::connect(d.port);
    let mut w = r.writer();
    assert!(r.reply()[0].starts_with("220"));
    let mut say = |r: &mut Raw, line: &str| -> String {
        w.write_all(line.as_bytes()).unwrap();
        r.reply().join("\n")
    };
    assert!(say(&mut r, "EHLO c.example\r\n").starts_with("250"));
    let mut send = |r: &mut Raw| -> String {
        assert!(say(r, "MAIL FROM:<alice@example.org>\r\n").starts_with("250"));
        let rcpt = say(r, "RCPT TO:<bob@example.org>\r\n");
        assert!(rcpt.starts_with("250"), "{rcpt}");
        assert!(say(r, "DATA\r\n").starts_with("354"));
        say(r, "Subject: t\r\n\r\nhi\r\n.\r\n")
    };
    let tmp = env.spool.join("tmp");
    assert!(tmp.is_dir());
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o2777)).unwrap();
    let reply = send(&mut r);
    assert!(reply.starts_with("451 4.3.0 "), "{reply}");
    assert!(env.entries().is_empty(), "{}", env.listing());
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o2770)).unwrap();
    let reply = send(&mut r);
    assert!(reply.starts_with("250 "), "{reply}");
    assert_eq!(env.entries().len(), 1);
    drop(d);
}

/// SIGHUP while the daemon's queue runner waits for a slow server's reply to the final
/// dot: the daemon does not wait for its runner (a client connecting meanwhile is
/// greeted before that delivery ends), the runner finishes its delivery (never
/// abandoned for the restart) and exits, the new program starts its own runner at once
/// beside it, which skips the entry the old one holds locked: the server gets exactly one
/// copy, and the new program reaps the old runner.
#[test]
fn sighup_during_a_slow_delivery_neither_stalls_the_daemon_nor_sends_twice() {
    use crate::harness::servers::{Daemon, Raw};
    // The slow reply takes 20 s: the restart and the new runner come well before it
    // also on a loaded machine.
    let Some((env, peer, log)) = stalling_relay("20", "60s") else {
        return;
    };
    env.sendmail(&["-odq", "stall@example.org"], b"Subject: slow\n\nhello\n")
        .code(0);
    let mut d = Daemon::start(&env, &["-q30m"]);
    let pid = d.child.id();
    let mut first = Vec::new();
    wait_until(Duration::from_secs(20), "the runner's delivery", || {
        first = queue_runners_of(pid);
        first.len() == 1 && peer.transcript().contains("DATA")
    });
    sighup(pid);
    // Greeted while the old runner's delivery is still waiting for its reply.
    let s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    let mut c = Raw::from(s);
    assert!(c.line().starts_with("220 "));
    assert!(
        peer.messages().is_empty(),
        "the daemon greeted only after the slow delivery ended"
    );
    // The new runner runs beside the old one, which finishes.
    wait_until(
        Duration::from_secs(20),
        "a new runner beside the old",
        || {
            let now = queue_runners_of(pid);
            now.len() == 2 && now.contains(&first[0])
        },
    );
    assert!(peer.messages().is_empty());
    drop(c);
    wait_until(Duration::from_secs(60), "the old runner to end", || {
        !running(first[0])
    });
    assert_eq!(peer.messages().len(), 1);
    env.wait_until_empty(Duration::from_secs(20));
    holds_for(Duration::from_secs(3), "exactly one copy", || {
        peer.messages().len() == 1
    });
    let said = fs::read_to_string(&log).unwrap();
    assert!(!said.contains("abandoned"), "{said}");
    assert!(
        said.contains(&format!(
            "queue runner finished, pid={}, status=0",
            first[0]
        )),
        "{said}"
    );
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon ended");
}

/// A SIGHUP sent to the daemon's queue runner itself: the runner finishes and exits, and
/// the daemon, which did not stop it, says so and starts another; so it does for a
/// runner killed outright, never more than one start per few seconds.
#[test]
fn the_daemon_replaces_a_queue_runner_that_ended_by_itself() {
    use crate::harness::servers::Daemon;
    let (env, log) = env_with_maillog();
    let d = Daemon::start(&env, &["-q30m"]);
    let pid = d.child.id();
    let mut first = Vec::new();
    wait_until(Duration::from_secs(10), "the queue runner", || {
        first = queue_runners_of(pid);
        first.len() == 1
    });
    wait_until(Duration::from_secs(10), "the runner's handlers", || {
        log_count(&log, "queue runner started") == 1
    });
    sighup(first[0]);
    let mut second = Vec::new();
    wait_until(Duration::from_secs(30), "a new runner", || {
        second = queue_runners_of(pid);
        second.len() == 1 && second != first
    });
    let said = fs::read_to_string(&log).unwrap();
    assert!(
        said.contains(&format!("queue runner ended, pid={}, status=0", first[0])),
        "{said}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut third = Vec::new();
    wait_until(Duration::from_secs(30), "a third runner", || {
        third = queue_runners_of(pid);
        third.len() == 1 && third != second
    });
    let said = fs::read_to_string(&log).unwrap();
    assert!(
        said.contains(&format!(
            "queue runner ended, pid={}, signal=SIGKILL",
            second[0]
        )),
        "{said}"
    );
    assert_eq!(log_count(&log, "queue runner ended, pid="), 2, "{said}");
}

/// A standalone periodic queue runner (`-q<interval>`) restarts on SIGHUP, as sendmail's:
/// the same process runs the program again with the configuration as it is now (a
/// change is seen), and one whose new configuration would not start runs on as it was.
#[test]
fn a_standalone_queue_runner_restarts_on_sighup() {
    let (env, log) = env_with_maillog();
    let mut child = standalone_runner(&env, &env.link("sendmail"));
    let pid = child.id();
    wait_until(Duration::from_secs(10), "the runner", || {
        log_count(&log, "queue runner started") == 1
    });
    // A configuration that would not start: refused, said in the log, runs on.
    let good = fs::read_to_string(&env.conf).unwrap();
    fs::write(&env.conf, format!("{good}SMARTHOTS relay.example\n")).unwrap();
    sighup(pid);
    wait_until(Duration::from_secs(30), "the refusal", || {
        log_count(&log, "SIGHUP: not restarting: ") == 1
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP ended the runner"
    );
    // Mended, with a new MAILLOG: the restarted program logs there.
    let log2 = env.dir.join("maillog2");
    fs::write(
        &env.conf,
        good.replace(&log.display().to_string(), &log2.display().to_string()),
    )
    .unwrap();
    sighup(pid);
    wait_until(Duration::from_secs(30), "the restarted runner", || {
        log_count(&log2, "queue runner started") == 1
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP ended the runner"
    );
    assert!(running(pid));
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).is_some());
}

/// A standalone queue runner (`-q30m`) with `-O PidFile=` writes its process id and
/// command line there, as sendmail's does, and removes the file when SIGTERM stops it.
#[test]
fn a_standalone_queue_runner_writes_and_removes_its_pid_file() {
    let (env, log) = env_with_maillog();
    let pid_file = env.dir.join("runner.pid");
    let opt = format!("PidFile={}", pid_file.display());
    let mut child = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-q30m", "-O", &opt])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "the runner", || {
        log_count(&log, "queue runner started") == 1 && pid_file.exists()
    });
    let text = fs::read_to_string(&pid_file).unwrap();
    let mut lines = text.lines();
    let pid: u32 = lines.next().unwrap().parse().unwrap();
    assert!(lines.next().is_some_and(|l| l.contains("-q30m")), "{text}");
    // The runner (in the background, as sendmail's) is the process named.
    assert!(running(pid), "{text}");
    let _ = wait_exit(&mut child, Duration::from_secs(20));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_until(Duration::from_secs(20), "the runner's end", || {
        !running(pid)
    });
    assert!(!pid_file.exists());
}

/// A standalone queue runner (`-q30m`, `-O PidFile=`) restarted by SIGHUP is the same
/// process: the restarted program writes the pid file again (it was removed here before
/// the signal, so only the restart can have written it), naming the same pid and the
/// same command line, and removes it when SIGTERM stops it.
#[test]
fn a_standalone_runners_pid_file_names_it_across_a_sighup_restart() {
    let (env, log) = env_with_maillog();
    let pid_file = env.dir.join("runner.pid");
    let opt = format!("PidFile={}", pid_file.display());
    let mut child = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-q30m", "-O", &opt])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "the runner", || {
        log_count(&log, "queue runner started") == 1 && pid_file.exists()
    });
    let before = fs::read_to_string(&pid_file).unwrap();
    let pid: u32 = before.lines().next().unwrap().parse().unwrap();
    assert!(running(pid), "{before}");
    let _ = wait_exit(&mut child, Duration::from_secs(20));
    fs::remove_file(&pid_file).unwrap();
    sighup(pid);
    wait_until(Duration::from_secs(30), "the restarted runner", || {
        log_count(&log, "queue runner started") == 2 && pid_file.exists()
    });
    let after = fs::read_to_string(&pid_file).unwrap();
    assert_eq!(after, before, "the pid file after the restart");
    assert!(running(pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_until(Duration::from_secs(20), "the runner's end", || {
        !running(pid)
    });
    assert!(!pid_file.exists());
}

/// How many of `peer`'s messages name `rcpt`.
fn copies_to(peer: &crate::harness::servers::Peer, rcpt: &str) -> usize {
    peer.messages()
        .iter()
        .filter(|(j, _)| j.contains(rcpt))
        .count()
}

/// A runner finishing after SIGHUP while its delivery of a poked entry waits for a slow
/// server's reply to the final dot: `runner` is that runner's pid (`None` when it is
/// the only process to signal and watch: `pid`). A daemon's runner stops listening on
/// the wake-up endpoint at once, so a new `-odb` submission delivers in the background
/// itself; a standalone runner's reload (`reloaded`) starts a runner of the new
/// configuration at once, which takes it. Either way the new message arrives while the
/// old delivery still waits; each message arrives exactly once, and the runner that
/// follows (`follower` tells it is up) takes the endpoint again.
fn new_mail_passes_a_finishing_runner(
    env: &Env,
    peer: &crate::harness::servers::Peer,
    log: &Path,
    runner: u32,
    follower: &dyn Fn() -> bool,
    reloaded: bool,
) {
    env.sendmail(&["-odb", "stall@example.org"], b"Subject: slow\n\nslow\n")
        .code(0);
    wait_until(Duration::from_secs(20), "the slow delivery's data", || {
        peer.transcript().contains("DATA")
    });
    let said = fs::read_to_string(log).unwrap_or_default();
    assert_eq!(log_count(log, "to=<stall@example.org>"), 0, "{said}");
    sighup(runner);
    if reloaded {
        wait_until(
            Duration::from_secs(20),
            "the reloaded configuration's runner to listen",
            || log_count(log, "queue runner listening on") == 2,
        );
    }
    // A FIFO without a reader: opening it to write fails with ENXIO.
    wait_until(
        Duration::from_secs(20),
        "the runner to stop listening",
        || {
            if reloaded {
                return true;
            }
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(env.spool.join("wakeup"))
                .is_err_and(|e| e.raw_os_error() == Some(libc::ENXIO))
        },
    );
    env.sendmail(&["-odb", "fast@example.org"], b"Subject: fast\n\nfast\n")
        .code(0);
    wait_until(
        Duration::from_secs(40),
        "the new message beside the finishing runner",
        || copies_to(peer, "fast@example.org") == 1,
    );
    // While the old delivery still waits for its reply.
    assert_eq!(copies_to(peer, "stall@example.org"), 0);
    wait_until(Duration::from_secs(90), "the slow delivery", || {
        copies_to(peer, "stall@example.org") == 1
    });
    wait_until(Duration::from_secs(30), "the next runner", follower);
    let listeners = if reloaded { 3 } else { 2 };
    wait_until(
        Duration::from_secs(30),
        "the next runner's endpoint",
        || log_count(log, "queue runner listening on") == listeners,
    );
    env.wait_until_empty(Duration::from_secs(20));
    holds_for(Duration::from_secs(3), "exactly one copy of each", || {
        peer.messages().len() == 2
            && copies_to(peer, "stall@example.org") == 1
            && copies_to(peer, "fast@example.org") == 1
    });
    // The endpoint is listened on again: a third message goes to the new runner.
    env.sendmail(&["-odb", "third@example.org"], b"Subject: third\n\nthird\n")
        .code(0);
    wait_until(Duration::from_secs(20), "the third message", || {
        copies_to(peer, "third@example.org") == 1
    });
}

/// A daemon's runner SIGHUP'd while it delivers a poked entry to a slow server: new
/// mail does not wait for that delivery (see [`new_mail_passes_a_finishing_runner`]).
#[test]
fn a_daemons_finishing_runner_does_not_hold_up_new_mail() {
    use crate::harness::servers::Daemon;
    let Some((env, peer, log)) = stalling_relay("30", "90s") else {
        return;
    };
    let d = Daemon::start(&env, &["-q30m"]);
    let pid = d.child.id();
    wait_until(Duration::from_secs(10), "the runner's endpoint", || {
        log_count(&log, "queue runner listening on") == 1
    });
    let first = queue_runners_of(pid);
    assert_eq!(first.len(), 1);
    new_mail_passes_a_finishing_runner(
        &env,
        &peer,
        &log,
        first[0],
        &|| {
            let now = queue_runners_of(pid);
            now.len() == 1 && now != first
        },
        false,
    );
    drop(d);
}

/// The same for a standalone periodic runner (`-q<interval>`), whose reload leaves the
/// endpoint listened on throughout: after its restart it listens again, and the runner
/// its reload started is gone.
#[test]
fn a_standalone_finishing_runner_does_not_hold_up_new_mail() {
    let Some((env, peer, log)) = stalling_relay("30", "90s") else {
        return;
    };
    let mut child = standalone_runner(&env, &env.link("sendmail"));
    let pid = child.id();
    wait_until(Duration::from_secs(10), "the runner's endpoint", || {
        log_count(&log, "queue runner listening on") == 1
    });
    new_mail_passes_a_finishing_runner(
        &env,
        &peer,
        &log,
        pid,
        &|| log_count(&log, "queue runner started") == 2,
        true,
    );
    assert!(running(pid));
    wait_until(
        Duration::from_secs(30),
        "the reload's runner to end",
        || log_count(&log, "queue runner finished, pid=") == 1,
    );
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).is_some());
}

/// SIGHUP as root, when the program the restart would execute (the deliverer at the
/// path it was started from) could now be changed by someone other than root: the file
/// writable by a group, its directory by everyone, or a directory above it by everyone
/// (sticky, as /tmp). The daemon and a standalone
/// periodic runner refuse the restart, log why naming the file, and run on as they
/// were; made root's alone again, SIGHUP restarts them.
#[test]
fn sighup_as_root_refuses_a_program_others_could_change() {
    use crate::harness::servers::Daemon;
    if !is_root() {
        return;
    }
    for daemon in [true, false] {
        let (env, log) = env_with_maillog();
        let bin = env.dir.join("bin");
        fs::create_dir(&bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let program = user_visible_bin(&bin, "sendmail");
        let deliver = bin.join("rsendmail-deliver");
        let (mut d, mut runner, started) = if daemon {
            let port = closed_tcp_port();
            env.add_config(&format!("O DaemonPortOptions=Port={port},Addr=127.0.0.1\n"));
            let d = Daemon::start_program(&env, &program, &["-odq"], port);
            (Some(d), None, "listening on")
        } else {
            (
                None,
                Some(standalone_runner(&env, &program)),
                "queue runner started",
            )
        };
        let pid = d
            .as_ref()
            .map(|d| d.child.id())
            .or(runner.as_ref().map(|r| r.id()))
            .unwrap();
        wait_until(Duration::from_secs(10), "the start in the log", || {
            log_count(&log, started) == 1
        });
        let wants = [
            format!(
                "SIGHUP: not restarting: {}: it is writable by its group ",
                deliver.display()
            ),
            format!(
                "SIGHUP: not restarting: {}: its directory {} is writable by everyone",
                deliver.display(),
                bin.display()
            ),
            // A directory above it (not sticky): what root runs has no directory on
            // its path anyone else may write but a sticky one of root's.
            format!(
                "SIGHUP: not restarting: {}: the directory {} on its path is writable by \
                 everyone",
                deliver.display(),
                env.dir.display()
            ),
        ];
        for (n, want) in wants.iter().enumerate() {
            if n == 0 {
                fs::set_permissions(&deliver, fs::Permissions::from_mode(0o775)).unwrap();
            } else if n == 1 {
                fs::set_permissions(&deliver, fs::Permissions::from_mode(0o755)).unwrap();
                fs::set_permissions(&bin, fs::Permissions::from_mode(0o777)).unwrap();
            } else {
                fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
                fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o777)).unwrap();
            }
            sighup(pid);
            wait_until(Duration::from_secs(30), "the refusal in the log", || {
                fs::read_to_string(&log).is_ok_and(|t| t.contains(want.as_str()))
            });
            assert!(running(pid), "it ended");
            assert_eq!(log_count(&log, started), 1, "it restarted");
        }
        if let Some(d) = &d {
            assert!(greeting_on(d.port, Duration::from_secs(10)).starts_with("220 "));
        }
        // Root's alone again: SIGHUP restarts it.
        fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
        sighup(pid);
        wait_until(Duration::from_secs(30), "the restart", || {
            log_count(&log, started) == 2
        });
        if let Some(mut r) = runner.take() {
            sigterm(&r);
            assert!(wait_exit(&mut r, Duration::from_secs(20)).is_some());
        }
        drop(d.take());
    }
}

/// SIGHUP when the configuration now names a MAILLOG that cannot be opened (its
/// directory is missing): the restart is refused, as for a missing spool, and said in the
/// log in use; the daemon runs on logging there. Mended, SIGHUP restarts it.
#[test]
fn sighup_with_a_maillog_that_cannot_be_opened_keeps_the_daemon_running() {
    use crate::harness::servers::Daemon;
    let (env, log) = env_with_maillog();
    let d = Daemon::start(&env, &["-odq"]);
    let pid = d.child.id();
    wait_until(Duration::from_secs(10), "the daemon's log", || {
        log_count(&log, "listening on") == 1
    });
    let good = fs::read_to_string(&env.conf).unwrap();
    let unusable = env.dir.join("no-such-dir").join("maillog");
    fs::write(
        &env.conf,
        good.replace(&log.display().to_string(), &unusable.display().to_string()),
    )
    .unwrap();
    sighup(pid);
    let want = format!("cannot open MAILLOG {}: ", unusable.display());
    wait_until(Duration::from_secs(30), "the refusal in the log", || {
        fs::read_to_string(&log).is_ok_and(|t| {
            t.lines()
                .any(|l| l.contains("SIGHUP: not restarting: ") && l.contains(&want))
        })
    });
    // Said once, without the checked program's own log line inside it.
    let refusal = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .find(|l| l.contains("SIGHUP: not restarting: "))
        .unwrap()
        .to_string();
    assert_eq!(refusal.matches(&want).count(), 1, "{refusal}");
    let said = refusal
        .split_once("SIGHUP: not restarting: ")
        .map_or("", |(_, r)| r);
    assert!(!said.contains("]: "), "{refusal}");
    assert_eq!(log_count(&log, "listening on"), 1, "it restarted");
    assert!(greeting_on(d.port, Duration::from_secs(10)).starts_with("220 "));
    fs::write(&env.conf, &good).unwrap();
    sighup(pid);
    wait_until(Duration::from_secs(30), "the restart", || {
        log_count(&log, "listening on") == 2
    });
}

/// SIGHUP after the program at the daemon's path was removed and installed again (`rm`
/// then `cp`, as `make install` does), and after it was renamed away and installed
/// again: the restart that finds nothing at the path runs the file still running, and the
/// next one runs the file then at the path, never staying on a deleted or renamed file.
#[test]
fn sighup_after_a_reinstall_by_remove_and_copy_runs_the_new_program() {
    use crate::harness::servers::Daemon;
    let (env, log) = env_with_maillog();
    let bins = env.dir.join("bin");
    let program = installed_copies(&bins, None);
    let port = daemon_port(&env);
    let d = Daemon::start_program(&env, &program, &["-q30m"], port);
    let pid = d.child.id();
    let deliver = bins.join("rsendmail-deliver");
    let exe = || fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let ino = || {
        fs::metadata(format!("/proc/{pid}/exe"))
            .map(|m| m.ino())
            .unwrap_or(0)
    };
    let restarts = |n: usize| {
        wait_until(Duration::from_secs(30), "the restart", || {
            log_count(&log, "]: listening on ") == n
        });
    };
    restarts(1);
    for (round, away) in [(0, None), (1, Some(bins.join("x.away")))] {
        match &away {
            None => fs::remove_file(&deliver).unwrap(),
            Some(to) => fs::rename(&deliver, to).unwrap(),
        }
        sighup(pid);
        restarts(2 + round * 2);
        let before = ino();
        copy_executable(Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver")), &deliver);
        fs::set_permissions(&deliver, fs::Permissions::from_mode(0o755)).unwrap();
        let new = fs::metadata(&deliver).unwrap().ino();
        assert_ne!(before, new);
        sighup(pid);
        restarts(3 + round * 2);
        assert_eq!(exe(), deliver, "round {round}");
        assert_eq!(ino(), new, "round {round}");
        // The new runner runs the new file too.
        wait_until(Duration::from_secs(20), "the new runner", || {
            queue_runners_of(pid)
                .iter()
                .any(|r| fs::read_link(format!("/proc/{r}/exe")).is_ok_and(|p| p == deliver))
        });
    }
    assert!(greeting_on(port, Duration::from_secs(10)).starts_with("220 "));
}

/// A program at the installed `rsendmail-deliver`'s path in `bins` that passes a
/// restart's check, then breaks `env`'s configuration and runs the real program (moved
/// to `real-deliver` beside it), which cannot start; the two paths.
fn install_failing_start(env: &Env, bins: &Path) -> (PathBuf, PathBuf) {
    let deliver = bins.join("rsendmail-deliver");
    let real = bins.join("real-deliver");
    fs::rename(&deliver, &real).unwrap();
    let new = bins.join(".new");
    fs::write(
        &new,
        format!(
            "#!/bin/sh\nif [ -n \"$RSENDMAIL_RESTART_CHECK\" ]; then echo \"restart check passed $RSENDMAIL_RESTART_CHECK\"; exit 0; fi\necho 'SMARTHOTS relay.example' >> '{}'\nexec '{}' \"$@\"\n",
            env.conf.display(),
            real.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&new, fs::Permissions::from_mode(0o755)).unwrap();
    fs::rename(&new, &deliver).unwrap();
    (deliver, real)
}

/// A restart whose check passed but whose program then fails at its start (here the
/// configuration is broken between the check and the exec): the program says why in
/// the MAILLOG the daemon used (its own configuration cannot be read) and removes the pid
/// file, instead of ending without a word and leaving the pid file naming a dead process.
#[test]
fn a_restart_that_fails_at_its_start_says_why_and_removes_the_pid_file() {
    use crate::harness::servers::Daemon;
    let env = Env::new();
    let log = env.dir.join("maillog");
    let pid_file = env.dir.join("daemon.pid");
    env.add_config(&format!(
        "MAILLOG {}\nO PidFile={}\n",
        log.display(),
        pid_file.display()
    ));
    let bins = env.dir.join("bin");
    let program = installed_copies(&bins, None);
    let port = daemon_port(&env);
    let mut d = Daemon::start_program(&env, &program, &["-odq"], port);
    let pid = d.child.id();
    wait_until(Duration::from_secs(10), "the pid file", || {
        fs::read_to_string(&pid_file).is_ok_and(|t| t.starts_with(&format!("{pid}\n")))
    });
    install_failing_start(&env, &bins);
    sighup(pid);
    assert!(
        wait_exit(&mut d.child, Duration::from_secs(30)).is_some(),
        "the daemon runs on"
    );
    let said = fs::read_to_string(&log).unwrap();
    assert!(
        said.lines()
            .any(|l| l.contains("restart (SIGHUP) failed: ")
                && l.contains("unknown keyword SMARTHOTS")),
        "{said}"
    );
    assert!(!pid_file.exists(), "the pid file names a dead process");
}

/// What `ps` shows of process `pid`: its name (`/proc/PID/comm`, what `ps -o comm` and
/// `pgrep -x` match) and its argv\[0\].
fn shown_as(pid: u32) -> (String, String) {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    (
        comm.trim_end().to_string(),
        String::from_utf8_lossy(argv0).into_owned(),
    )
}

/// Assert that `pid` shows in `ps` as `want` (name, argv\[0\]). A program takes its name
/// back at its start, a moment after the exec that shows it as `exe`: a process found
/// in that moment gets up to 20 s to start; one whose name never comes back fails.
fn assert_shown_as(pid: u32, want: &(String, String), what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let shown = shown_as(pid);
        if &shown == want || std::time::Instant::now() > deadline {
            assert_eq!(&shown, want, "{what}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes whose command line holds each of `words`.
fn processes_with(words: &[&str]) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|b| {
                let line = String::from_utf8_lossy(&b);
                words.iter().all(|w| line.contains(w))
            })
        })
        .collect()
}

/// The installed `rsendmail-deliver` in `bins` renamed away (nothing at its path): the
/// processes that execute it again run the file still running (`/proc/self/exe`).
fn rename_away(bins: &Path) -> PathBuf {
    let away = bins.join("rsendmail-deliver.away");
    fs::rename(bins.join("rsendmail-deliver"), &away).unwrap();
    away
}

/// A daemon restarted (SIGHUP) after its program was renamed away executes the file still
/// running (`/proc/self/exe`) and shows in `ps` as before: the same name (`ps -o comm`,
/// `pgrep -x`, `/proc/PID/comm`) and argv\[0\]; so do its queue runners, before and after.
#[test]
fn a_daemon_restarted_after_its_program_was_renamed_away_keeps_its_name() {
    use crate::harness::servers::Daemon;
    let (env, log) = env_with_maillog();
    let bins = env.dir.join("bin");
    let program = installed_copies(&bins, None);
    let port = daemon_port(&env);
    let d = Daemon::start_program(&env, &program, &["-q30m"], port);
    let pid = d.child.id();
    let mut first = Vec::new();
    wait_until(Duration::from_secs(20), "the queue runner", || {
        first = queue_runners_of(pid);
        first.len() == 1
    });
    let before = shown_as(pid);
    assert_eq!(
        before,
        (
            "rsendmail-deliv".to_string(),
            "rsendmail-deliver".to_string()
        )
    );
    assert_shown_as(first[0], &before, "the queue runner");
    let away = rename_away(&bins);
    sighup(pid);
    wait_until(Duration::from_secs(30), "the restart", || {
        log_count(&log, "]: listening on ") == 2
    });
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        away,
        "the restart ran another file"
    );
    assert_shown_as(pid, &before, "the restarted daemon");
    let mut second = Vec::new();
    wait_until(Duration::from_secs(20), "the new queue runner", || {
        second = queue_runners_of(pid);
        second.len() == 1 && second != first
    });
    assert_shown_as(second[0], &before, "the new queue runner");
}

/// A daemon's session whose program was renamed away since the daemon started hands its
/// message to a delivery process that shows in `ps` as the daemon does (its name and
/// argv\[0\]), though it runs `/proc/self/exe`.
#[test]
fn a_delivery_after_the_program_was_renamed_away_shows_as_the_daemon() {
    use crate::harness::servers::{Daemon, Raw};
    let Some((env, _peer, _log)) = stalling_relay("30", "60s") else {
        return;
    };
    let bins = env.dir.join("bin");
    let program = installed_copies(&bins, None);
    let port = daemon_port(&env);
    let d = Daemon::start_program(&env, &program, &["-odb"], port);
    let before = shown_as(d.child.id());
    rename_away(&bins);
    let mut c = Raw::connect(port);
    assert!(c.line().starts_with("220 "));
    assert!(c.cmd("EHLO client.example").starts_with("250 "));
    c.begin_data("stall@example.org");
    c.send(b"Subject: renamed away\r\n\r\nhello\r\n.\r\n");
    let r = c.line();
    assert!(r.starts_with("250 "), "{r}");
    let conf = env.conf.to_str().unwrap();
    let mut deliveries = Vec::new();
    wait_until(Duration::from_secs(20), "the delivery process", || {
        deliveries = processes_with(&[conf, "--entry"]);
        deliveries.len() == 1
    });
    assert_eq!(
        fs::read_link(format!("/proc/{}/exe", deliveries[0]))
            .unwrap()
            .parent(),
        Some(bins.as_path())
    );
    assert_shown_as(deliveries[0], &before, "the delivery");
}

/// A standalone periodic queue runner (`-q<interval>`) restarted by SIGHUP after its
/// program was renamed away shows in `ps` as before (name and argv\[0\]).
#[test]
fn a_standalone_runner_restarted_after_its_program_was_renamed_away_keeps_its_name() {
    let (env, log) = env_with_maillog();
    let bins = env.dir.join("bin");
    let program = installed_copies(&bins, None);
    let mut child = standalone_runner(&env, &program);
    let pid = child.id();
    wait_until(Duration::from_secs(10), "the runner", || {
        log_count(&log, "queue runner started") == 1
    });
    let before = shown_as(pid);
    assert_eq!(before.0, "rsendmail-deliv");
    let away = rename_away(&bins);
    sighup(pid);
    wait_until(Duration::from_secs(30), "the restarted runner", || {
        log_count(&log, "queue runner started") == 2
    });
    assert_eq!(fs::read_link(format!("/proc/{pid}/exe")).unwrap(), away);
    assert_shown_as(pid, &before, "the restarted runner");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).is_some());
}

/// Local delivery's child (the one that writes the mailbox as its user) started after
/// the program was renamed away shows in `ps` as the queue runner that started it.
#[test]
fn a_local_delivery_child_after_the_program_was_renamed_away_shows_as_its_runner() {
    if !is_root() {
        unavailable("root (local delivery to root's mailbox)");
        return;
    }
    let (env, log) = env_with_maillog();
    env.add_config("O Timeout.mboxlock=60s\n");
    let bins = env.dir.join("bin");
    let program = installed_copies(&bins, None);
    let mut runner = standalone_runner(&env, &program);
    wait_until(Duration::from_secs(10), "the runner's endpoint", || {
        log_count(&log, "queue runner listening on") == 1
    });
    let before = shown_as(runner.id());
    // The mailbox's lock held: the child waits for it.
    let mbox = env.dir.join("mail").join("root");
    fs::create_dir_all(mbox.parent().unwrap()).unwrap();
    let held = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&mbox)
        .unwrap();
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain struct flock for F_SETLK on a descriptor this test owns.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as _;
        fl.l_whence = libc::SEEK_SET as _;
        // SAFETY: fcntl on a descriptor this test owns.
        assert_eq!(
            unsafe { libc::fcntl(held.as_raw_fd(), libc::F_SETLK, &fl) },
            0
        );
    }
    rename_away(&bins);
    let out = run_limited(
        &program,
        &["-C", env.conf.to_str().unwrap(), "-odb", "root"],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let mut writers = Vec::new();
    wait_until(Duration::from_secs(20), "the mailbox's writer", || {
        writers = processes_with(&["--mbox", mbox.to_str().unwrap()]);
        writers.len() == 1
    });
    assert_shown_as(writers[0], &before, "the mailbox writer");
    drop(held);
    wait_until(
        Duration::from_secs(30),
        "the message in the mailbox",
        || fs::read_to_string(&mbox).is_ok_and(|t| t.contains("Subject: setup")),
    );
    sigterm(&runner);
    assert!(wait_exit(&mut runner, Duration::from_secs(20)).is_some());
}

/// A standalone periodic queue runner's restart whose check passed but whose program then
/// fails at its start (the configuration broken between the check and the exec): the
/// program says why in the MAILLOG the runner used, and nothing is left that a later
/// start trips on: a new runner, the configuration mended, starts, listens on the
/// wake-up endpoint and delivers.
#[test]
fn a_standalone_runner_whose_restart_fails_at_its_start_says_why_and_leaves_nothing() {
    let Some((env, peer, log)) = stalling_relay("1", "60s") else {
        return;
    };
    let bins = env.dir.join("bin");
    let program = installed_copies(&bins, None);
    let good = fs::read_to_string(&env.conf).unwrap();
    let mut child = standalone_runner(&env, &program);
    wait_until(Duration::from_secs(10), "the runner's endpoint", || {
        log_count(&log, "queue runner listening on") == 1
    });
    let (deliver, real) = install_failing_start(&env, &bins);
    sighup(child.id());
    assert!(
        wait_exit(&mut child, Duration::from_secs(30)).is_some(),
        "the runner runs on"
    );
    let said = fs::read_to_string(&log).unwrap();
    assert!(
        said.lines()
            .any(|l| l.contains("restart (SIGHUP) failed: ")
                && l.contains("unknown keyword SMARTHOTS")),
        "{said}"
    );
    // Mended: a new runner starts and serves as the first did.
    fs::write(&env.conf, &good).unwrap();
    fs::rename(&real, &deliver).unwrap();
    let mut again = standalone_runner(&env, &program);
    wait_until_or(
        Duration::from_secs(20),
        "the new runner's endpoint",
        || fs::read_to_string(&log).unwrap_or_default(),
        || log_count(&log, "queue runner listening on") == 2,
    );
    env.sendmail(&["-odb", "bob@example.org"], b"Subject: after\n\nafter\n")
        .code(0);
    wait_until(Duration::from_secs(30), "the message", || {
        copies_to(&peer, "bob@example.org") == 1
    });
    sigterm(&again);
    assert!(wait_exit(&mut again, Duration::from_secs(20)).is_some());
}

/// Every entry point refuses the spool of `env` (78, `want` in its words; `-bp` and
/// `mailq` list it with `want` on stderr) and nothing is made in it or queued.
#[track_caller]
fn refused_by_all_but_listings(env: &Env, want: &str) {
    refused_by_all(env, want, 0)
}

/// [`refused_by_all_but_listings`], the listings exiting with `listing_code`.
#[track_caller]
fn refused_by_all(env: &Env, want: &str, listing_code: i32) {
    let before: Vec<String> = fs::read_dir(&env.spool)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for (program, args, stdin) in entry_points(env) {
        let mut full = vec!["-C", env.conf.to_str().unwrap()];
        full.extend(args.iter().copied());
        let out = run_limited(&program, &full, stdin);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        let listing = args.contains(&"-bp") || program.ends_with("mailq");
        let code = if listing { listing_code } else { 78 };
        assert_eq!(out.status.code(), Some(code), "{full:?}: {said}");
        assert!(said.contains(want), "{full:?}: {said:?} lacks {want:?}");
        let now: Vec<String> = fs::read_dir(&env.spool)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(now, before, "{full:?} made something: {said}");
    }
}

/// A spool whose parent a user owns (she could rename the spool away and put a
/// directory of her own in its place), and an empty spool a user owns, are refused by
/// every program that would write in it, and by `init`, before anything is made in
/// it; `check` fails the same directory with a fix, which, followed, makes the spool
/// usable again.
#[test]
fn a_spool_a_user_owns_or_could_swap_is_refused_everywhere() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let u = test_user();
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(u.uid))
        .unwrap()
        .unwrap()
        .name;
    // The spool's parent is the user's; the configuration and the mail spool are root's
    // alone (in a directory of hers they would be refused first).
    let mut env = Env::new();
    let conf_dir = env.dir.with_extension("conf");
    let _ = fs::remove_dir_all(&conf_dir);
    fs::create_dir(&conf_dir).unwrap();
    fs::copy(&env.conf, conf_dir.join("rsendmail.conf")).unwrap();
    env.conf = conf_dir.join("rsendmail.conf");
    // The mail spool root's alone too (MAILSPOOL is held to the rule as well).
    fs::create_dir(conf_dir.join("mail")).unwrap();
    env.add_config(&format!("MAILSPOOL {}\n", conf_dir.join("mail").display()));
    std::os::unix::fs::chown(&env.dir, Some(u.uid), None).unwrap();
    let want = format!(
        "{} ({name}:root 0755), above the queue directory {}, is owned by the user \"{name}\"",
        env.dir.display(),
        env.spool.display()
    );
    refused_by_all_but_listings(&env, &want);
    let out = admin(&env.conf, &["init", "--group", spool_group()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains(&want)
            && text(&out.stdout).ends_with(&format!("(fix: chown root {})\n", env.dir.display())),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(fs::read_dir(&env.spool).unwrap().count(), 0);
    let out = admin(&env.conf, &["check"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{said}");
    let fail = said
        .lines()
        .find(|l| l.starts_with("FAIL spool: ") && l.contains(&want))
        .unwrap_or_else(|| panic!("{said}"));
    let at = fail.rfind(" (fix: ").unwrap();
    let cmd = fail[at + 7..].strip_suffix(')').unwrap();
    assert!(
        Command::new("sh")
            .args(["-c", cmd])
            .status()
            .unwrap()
            .success()
    );
    let out = run_limited(
        &env.link("sendmail"),
        &["-C", env.conf.to_str().unwrap(), "-odq", "bob@example.org"],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(env.entries().len(), 1);
    let _ = fs::remove_dir_all(&conf_dir);

    // An empty spool the user owns (its parent root's): never taken over.
    let env = Env::new();
    std::os::unix::fs::chown(&env.spool, Some(u.uid), None).unwrap();
    let want = format!(
        "the queue directory {} ({name}:{} 2770) is owned by the user \"{name}\", not root",
        env.spool.display(),
        spool_group()
    );
    refused_by_all_but_listings(&env, &want);
    let out = admin(&env.conf, &["init", "--group", spool_group()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains(&format!(
            "it is owned by the user \"{name}\", neither root nor this user"
        )),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(owner_mode(&env.spool), (0o2770, u.uid, spool_gid()));
    assert_eq!(fs::read_dir(&env.spool).unwrap().count(), 0);
    let _ = fs::remove_dir_all(&env.dir);
}

/// `init --group` refuses root's group and a user's primary group (78, why, nothing
/// made), as `check` refuses them.
#[test]
fn init_refuses_root_s_group_and_a_user_s_primary_group() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let (dir, conf, spool) = init_env("unfit");
    let u = test_user();
    let users_group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(u.gid))
        .unwrap()
        .unwrap()
        .name;
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(u.uid))
        .unwrap()
        .unwrap()
        .name;
    for (group, why) in [
        ("root", "the group root is root's group".to_string()),
        (
            users_group.as_str(),
            format!("the group {users_group} is the primary group of the user \"{user}\""),
        ),
    ] {
        let out = admin(&conf, &["init", "--group", group]);
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(78), "{group}: {said}");
        assert!(
            said.starts_with(&format!("rsendmail-admin init: {why}:"))
                && said.contains("(nothing was changed)"),
            "{group}: {said}"
        );
        // The way out acts on this spool: its command carries the -C FILE.
        assert!(
            said.contains(&format!(
                "rsendmail-admin -C {} init --group ",
                conf.display()
            )),
            "{group}: {said}"
        );
        assert!(!spool.exists(), "{group}");
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Where the group `rsendmail` (the one init gives when `--group` names none, and the
/// one check's fixes name) is a user's primary group, init refuses it with a way out,
/// and check fails the spool without a fix naming it. The user is one of a passwd
/// file in a private mount namespace's overlay of /etc, where the fix's groupadd makes
/// its group too: the host's /etc is not changed.
#[test]
fn init_and_check_refuse_a_default_group_that_is_a_users_primary_group() {
    if !is_root() {
        return;
    }
    let Ok(Some(g)) = nix::unistd::Group::from_name("rsendmail") else {
        unavailable("the group rsendmail");
        return;
    };
    let (dir, conf, spool) = init_env("defgroup");
    let passwd = dir.join("passwd");
    let mut text_pw = fs::read_to_string("/etc/passwd").unwrap();
    text_pw.push_str(&format!(
        "rsmdefgroup:x:{}:{}::/nonexistent:/usr/sbin/nologin\n",
        60000 + std::process::id() % 5000,
        g.gid
    ));
    fs::write(&passwd, text_pw).unwrap();
    // /etc overlaid, its changes kept in `etc-upper` from one command to the next (a
    // group a fix makes, with groupadd, among them): the host's /etc is not changed.
    let (upper, work) = (dir.join("etc-upper"), dir.join("etc-work"));
    fs::create_dir_all(&upper).unwrap();
    fs::create_dir_all(&work).unwrap();
    let in_ns_sh = |cmd: &str| {
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc && \
                 cp {} /etc/passwd && {cmd}",
                upper.display(),
                work.display(),
                passwd.display(),
            ))
            .output()
            .unwrap();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let in_ns = |args: &str| {
        in_ns_sh(&format!(
            "exec {} -C {} {args}",
            admin_bin().display(),
            conf.display()
        ))
    };
    let (code, said, err) = in_ns("init");
    assert_eq!(code, Some(78), "{said}{err}");
    assert!(
        said.contains(
            "the group rsendmail, which the spool gets when --group names no other, is the \
             primary group of the user \"rsmdefgroup\""
        ) && said.contains("usermod -g GROUP rsmdefgroup"),
        "{said}{err}"
    );
    assert!(!spool.exists());
    // Root's group named: the way out never names the unfit rsendmail.
    let (code, said, err) = in_ns("init --group root");
    assert_eq!(code, Some(78), "{said}{err}");
    let init = format!(
        "rsendmail-admin -C {} init --group rsendmail-spool",
        conf.display()
    );
    let other = if nix::unistd::Group::from_name("rsendmail-spool")
        .unwrap()
        .is_some()
    {
        format!("({init})")
    } else {
        format!("(groupadd --system rsendmail-spool, then {init})")
    };
    assert!(
        said.contains("neither root's nor any user's primary group") && said.contains(&other),
        "{said}{err}"
    );
    assert!(!said.contains("--group rsendmail)"), "{said}{err}");
    assert!(!spool.exists());
    // The spool not made yet: check says no group is fit, and its fix, followed, makes
    // the spool with one (never a plain init, which refuses).
    let (code, said, err) = in_ns("check");
    assert_eq!(code, Some(78), "{said}{err}");
    let l = said
        .lines()
        .find(|l| l.starts_with("FAIL spool: "))
        .unwrap_or_else(|| panic!("{said}{err}"));
    assert!(
        l.contains("no group is fit for it: ") && l.contains(" init --group rsendmail-spool)"),
        "{l}"
    );
    let cmd = &l[l.rfind(" (fix: ").unwrap() + 7..l.len() - 1];
    let (code, said, err) = in_ns_sh(cmd);
    assert_eq!(code, Some(0), "{cmd}: {said}{err}");
    let (_, said, err) = in_ns("check");
    assert!(
        said.lines().any(|l| l.starts_with("ok   spool ")
            && l.contains(&format!("{} (root:rsendmail-spool 2770)", spool.display()))),
        "{said}{err}"
    );
    fs::remove_dir_all(&spool).unwrap();
    // A spool of a group unfit for it (root's), and no other fit group to name.
    fs::create_dir(&spool).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o2770)).unwrap();
    let (code, said, err) = in_ns("check");
    assert_eq!(code, Some(78), "{said}{err}");
    assert!(
        said.lines().any(|l| l.starts_with("FAIL spool: ")
            && l.contains("is the primary group of the user \"rsmdefgroup\"")),
        "{said}"
    );
    assert!(!said.contains("root:rsendmail"), "{said}");
    let _ = fs::remove_dir_all(&dir);
}

/// Where there is no group `rsendmail` and neither the spool nor the installed
/// `rsendmail` has a fit one, plain init refuses (no group to give), so check's fix for
/// the spool not made yet makes the group first, with a system gid no group has and no
/// user has as her primary group, then runs init. The group and passwd files are ones
/// bind-mounted in a private mount namespace: the host's are not changed (the fix is
/// followed outside it, where the group is there).
#[test]
fn checks_fix_for_a_missing_spool_makes_the_missing_group_first() {
    if !is_root() {
        return;
    }
    if nix::unistd::Group::from_name("rsendmail")
        .ok()
        .flatten()
        .is_none()
    {
        unavailable("the group rsendmail");
        return;
    }
    let (dir, conf, spool) = init_env("nogroup");
    let group = dir.join("group");
    let kept: String = fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("rsendmail:"))
        .map(|l| format!("{l}\n"))
        .collect();
    // A user whose primary gid is the system gid `groupadd --system` would pick (the
    // highest free in the group file) and has no group entry: the fix must not take it.
    let group_gids: Vec<u32> = kept
        .lines()
        .filter_map(|l| l.split(':').nth(2)?.parse().ok())
        .collect();
    let host_passwd = fs::read_to_string("/etc/passwd").unwrap();
    let primary: Vec<u32> = host_passwd
        .lines()
        .filter_map(|l| l.split(':').nth(3)?.parse().ok())
        .collect();
    let taken = (100..=999u32)
        .rev()
        .find(|g| !group_gids.contains(g) && !primary.contains(g))
        .unwrap();
    fs::write(&group, kept).unwrap();
    let passwd = dir.join("passwd");
    fs::write(
        &passwd,
        format!(
            "{host_passwd}rsmnogroup:x:{}:{taken}::/nonexistent:/usr/sbin/nologin\n",
            60000 + std::process::id() % 5000
        ),
    )
    .unwrap();
    let in_ns = |args: &str| {
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/group && mount --bind {} /etc/passwd && exec {} -C {} \
                 {args}",
                group.display(),
                passwd.display(),
                admin_bin().display(),
                conf.display()
            ))
            .output()
            .unwrap();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let (code, said, err) = in_ns("init");
    assert_eq!(code, Some(78), "{said}{err}");
    assert!(said.contains("no group rsendmail"), "{said}{err}");
    let (code, said, err) = in_ns("check");
    assert_eq!(code, Some(78), "{said}{err}");
    let l = said
        .lines()
        .find(|l| l.starts_with("FAIL spool: "))
        .unwrap_or_else(|| panic!("{said}{err}"));
    let cmd = &l[l.rfind(" (fix: ").unwrap() + 7..l.len() - 1];
    let n: u32 = cmd
        .strip_prefix("{ getent group rsendmail >/dev/null || groupadd --system -g ")
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{l}"));
    assert!(
        cmd.contains(&format!("-g {n} rsendmail; }} && ")) && cmd.ends_with(" init"),
        "{l}"
    );
    // A system gid no group has and no user has as her primary group.
    assert!((100..=999).contains(&n), "{l}");
    assert_ne!(n, taken, "{l}");
    assert!(!group_gids.contains(&n) && !primary.contains(&n), "{l}");
    assert!(!spool.exists());
    let st = Command::new("sh")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{cmd}");
    let gid = nix::unistd::Group::from_name("rsendmail")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    assert_eq!(owner_mode(&spool), (0o2770, 0, gid));
    let _ = fs::remove_dir_all(&dir);
}

/// Set the ACL `name` (`system.posix_acl_access` or `system.posix_acl_default`) of `p` to
/// `entries` (tag, permissions, id), as the kernel stores it; none: remove it.
fn set_acl(p: &Path, name: &str, entries: &[(u16, u16, u32)]) {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    let r = if entries.is_empty() {
        // SAFETY: NUL-terminated names.
        unsafe { libc::removexattr(path.as_ptr(), name.as_ptr()) }
    } else {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            v.extend(tag.to_le_bytes());
            v.extend(perm.to_le_bytes());
            v.extend(id.to_le_bytes());
        }
        // SAFETY: NUL-terminated names, a buffer valid for its length.
        unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) }
    };
    assert_eq!(r, 0, "{}: {}", p.display(), std::io::Error::last_os_error());
}

const ACL_ACCESS: &str = "system.posix_acl_access";
const ACL_DEFAULT: &str = "system.posix_acl_default";

/// Whether `p` has the ACL `name`.
fn has_acl(p: &Path, name: &str) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated names; no buffer, its size asked.
    unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

/// Set the access ACL of `p` to `user::rwx`, `user:UID:rwx`, `group::r-x`, `mask::rwx`,
/// `other::r-x` (what `setfacl -m u:UID:rwx` gives a 755 directory), as the kernel
/// stores it; `None`: remove it.
fn set_user_acl(p: &Path, uid: Option<u32>) {
    let all = u32::MAX;
    match uid {
        Some(uid) => set_acl(
            p,
            ACL_ACCESS,
            &[
                (1, 7, all),
                (2, 7, uid),
                (4, 5, all),
                (0x10, 7, all),
                (0x20, 5, all),
            ],
        ),
        None => set_acl(p, ACL_ACCESS, &[]),
    }
}

/// An ACL that gives a user anything on the system spool (a default ACL, which what is
/// made there inherits; an access ACL that lets her read, the mask applied) is refused
/// by every program (78) and failed by `check`; `init` removes every ACL on what it
/// repairs, also those a new spool inherits from its parent's default ACL, and says
/// `ready` only of a spool the programs take.
#[test]
fn acls_giving_others_anything_on_the_spool_are_refused_and_init_removes_them() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let all = u32::MAX;
    let env = Env::new();
    init_spool(&env);
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    // A default ACL on the spool: every entry made there would be hers to read.
    set_acl(
        &env.spool,
        ACL_DEFAULT,
        &[
            (1, 7, all),
            (2, 6, u.uid),
            (4, 7, all),
            (0x10, 7, all),
            (0x20, 0, all),
        ],
    );
    let want = format!(
        "the queue directory {} is given rw- by a default ACL, which what is made there \
         inherits, for the user \"{TEST_USER}\"",
        env.spool.display()
    );
    refused_by_all(&env, &want, 78);
    let out = admin(&env.conf, &["check"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(
        said.lines().any(|l| l.starts_with("FAIL spool: ")
            && l.contains(&want)
            && l.ends_with(&format!(" (fix: setfacl -b {})", env.spool.display()))),
        "{said}"
    );
    let out = admin(&env.conf, &["init", "--group", spool_group()]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "repaired {}: removed its default ACL",
            env.spool.display()
        )) && said.contains(": ready ("),
        "{said}"
    );
    assert!(!has_acl(&env.spool, ACL_DEFAULT));
    // An access ACL that lets her read tmp/: its mask takes her write, not her read.
    let tmp = env.spool.join("tmp");
    set_acl(
        &tmp,
        ACL_ACCESS,
        &[
            (1, 7, all),
            (2, 7, u.uid),
            (4, 7, all),
            (0x10, 5, all),
            (0x20, 0, all),
        ],
    );
    let want = format!(
        "the queue directory {} is given read (r-x) by an access ACL for the user \"{TEST_USER}\"",
        tmp.display()
    );
    refused_by_all(&env, &want, 78);
    let out = admin(&env.conf, &["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains(&want), "{}", text(&out.stdout));
    let out = admin(&env.conf, &["init", "--group", spool_group()]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "repaired {}: removed its access ACL",
            tmp.display()
        )),
        "{said}"
    );
    assert!(!has_acl(&tmp, ACL_ACCESS));
    assert_eq!(owner_mode(&tmp), (0o2770, 0, spool_gid()));
    // A queued entry whose access ACL lets her read it: check fails it, init removes it.
    let out = run_limited(
        &env.link("sendmail"),
        &["-C", env.conf.to_str().unwrap(), "-odq", "bob@example.org"],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let qf = fs::read_dir(&env.spool)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("qf"))
        .unwrap();
    set_acl(
        &qf,
        ACL_ACCESS,
        &[
            (1, 6, all),
            (2, 4, u.uid),
            (4, 6, all),
            (0x10, 6, all),
            (0x20, 0, all),
        ],
    );
    let out = admin(&env.conf, &["check"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(
        said.lines()
            .any(|l| l.starts_with("FAIL spool: 1 file(s) in ")
                && l.contains("have an access ACL that gives a named user or group access")
                && l.contains("-exec setfacl -b {} +")),
        "{said}"
    );
    let out = admin(&env.conf, &["init", "--group", spool_group()]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "repaired {}: removed its access ACL",
            qf.display()
        )),
        "{said}"
    );
    assert!(!has_acl(&qf, ACL_ACCESS));
    fs::remove_file(&qf).unwrap();
    // A default ACL on the spool's parent (for a backup user, say): the spool init
    // makes inherits it, and init removes it from all it makes.
    fs::remove_dir_all(&env.spool).unwrap();
    set_acl(
        &env.dir,
        ACL_DEFAULT,
        &[
            (1, 7, all),
            (2, 5, u.uid),
            (4, 5, all),
            (0x10, 5, all),
            (0x20, 5, all),
        ],
    );
    let out = admin(&env.conf, &["init", "--group", spool_group()]);
    let said = text(&out.stdout);
    set_acl(&env.dir, ACL_DEFAULT, &[]);
    assert!(out.status.success(), "{said}");
    for d in std::iter::once(env.spool.clone()).chain(
        ["tmp", "index", "corrupt", "slots", "waiting", "hold"]
            .iter()
            .map(|s| env.spool.join(s)),
    ) {
        if d.exists() {
            assert!(
                !has_acl(&d, ACL_ACCESS) && !has_acl(&d, ACL_DEFAULT),
                "{}: {said}",
                d.display()
            );
            assert_eq!(owner_mode(&d), (0o2770, 0, spool_gid()), "{}", d.display());
        }
    }
    let out = admin(&env.conf, &["check"]);
    assert!(
        !text(&out.stdout).contains("FAIL spool"),
        "{}",
        text(&out.stdout)
    );
    let out = run_limited(
        &env.link("sendmail"),
        &["-C", env.conf.to_str().unwrap(), "-odq", "bob@example.org"],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// A POSIX access ACL that lets a user write a directory above the spool (shown only as
/// the group bits of root's group) or the spool's own `tmp/`: every entry point refuses
/// the spool (78), `init` refuses the one above, and `check` fails each with its fix.
#[test]
fn an_acl_letting_a_user_write_the_spool_or_above_it_is_refused() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let mut env = Env::new();
    env.mail_spool_outside();
    // The configuration where root's alone, beside the scratch directory: one under the
    // ACL below would be refused by every program, the listings too.
    let conf_dir = PathBuf::from(format!("{}-conf", env.dir.display()));
    fs::create_dir_all(&conf_dir).unwrap();
    let _conf_dir = scopeguard(&conf_dir);
    let conf = conf_dir.join("rsendmail.conf");
    fs::copy(&env.conf, &conf).unwrap();
    env.conf = conf;
    init_spool(&env);
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    set_user_acl(&env.dir, Some(u.uid));
    assert_eq!(owner_mode(&env.dir), (0o775, 0, 0));
    // Named: the ACL's user, not the group the mask shows as the group bits.
    refused_by_all_but_listings(
        &env,
        &format!("is given write by an access ACL for the user \"{TEST_USER}\""),
    );
    let out = admin(&env.conf, &["init", "--group", spool_group()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    let out = admin(&env.conf, &["check"]);
    let said = text(&out.stdout);
    assert!(
        said.lines().any(
            |l| l.starts_with(&format!("FAIL spool: {} (", env.dir.display()))
                && l.ends_with(&format!("(fix: chmod go-w {})", env.dir.display()))
        ),
        "{said}"
    );
    set_user_acl(&env.dir, None);
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let tmp = env.spool.join("tmp");
    set_user_acl(&tmp, Some(u.uid));
    let want = format!(
        "the queue directory {} is given write by an access ACL for the user \"{}\"",
        tmp.display(),
        TEST_USER
    );
    refused_by_all(&env, &want, 78);
    let out = admin(&env.conf, &["check"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(
        said.lines().any(|l| l.starts_with("FAIL spool: ")
            && l.contains(&want)
            && l.ends_with(&format!(" (fix: setfacl -b {})", tmp.display()))),
        "{said}"
    );
    set_user_acl(&tmp, None);
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o2770)).unwrap();
    let out = admin(&env.conf, &["check"]);
    assert!(
        !text(&out.stdout).contains("FAIL spool"),
        "{}",
        text(&out.stdout)
    );
}

/// The system spool's layout is root's: a user's submission (here as a member of the
/// spool's group) that finds it missing refuses (78, pointing at init) and makes
/// nothing; a sub-directory a user owns is refused by root's submissions and runs
/// (78) until init gives it back to root.
#[test]
fn only_root_makes_the_layout_and_a_users_sub_directory_is_refused() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let env = Env::new();
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&env.conf, fs::Permissions::from_mode(0o644)).unwrap();
    let bins = env.dir.join("bin");
    fs::create_dir(&bins).unwrap();
    fs::set_permissions(&bins, fs::Permissions::from_mode(0o755)).unwrap();
    let sm = user_visible_bin(&bins, "sendmail");
    let conf = env.conf.to_str().unwrap();
    // The system configuration, as an installed one (read by debug builds only).
    let sys = [("RSENDMAIL_SYSTEM_CONFIG", conf)];
    let out = as_member(&sm, &["-odq", "bob@example.org"], &sys, MSG);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(
        said.contains(&format!(
            "the queue's sub-directory {} is missing: only root makes the spool's layout",
            env.spool.join("tmp").display()
        )) && said.contains("`rsendmail-admin init`"),
        "{said}"
    );
    assert_eq!(fs::read_dir(&env.spool).unwrap().count(), 0, "{said}");
    init_spool(&env);
    // The system configuration, as an installed one (read by debug builds only).
    let sys = [("RSENDMAIL_SYSTEM_CONFIG", conf)];
    let out = as_member(&sm, &["-odq", "bob@example.org"], &sys, MSG);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for sub in ["tmp", "index", "corrupt"] {
        let p = env.spool.join(sub);
        std::os::unix::fs::chown(&p, Some(u.uid), None).unwrap();
        for args in [&["-odq", "carol@example.org"][..], &["-q"][..]] {
            let mut full = vec!["-C", conf];
            full.extend(args);
            let out = run_limited(&env.link("sendmail"), &full, MSG);
            let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert_eq!(out.status.code(), Some(78), "{sub} {args:?}: {said}");
            assert!(
                said.contains(&format!(
                    "the queue's sub-directory {} is owned by the user \"{TEST_USER}\", not root",
                    p.display()
                )),
                "{sub} {args:?}: {said}"
            );
        }
        init_spool(&env);
        assert_eq!(owner_mode(&p), (0o2770, 0, spool_gid()));
    }
    let out = run_limited(
        &env.link("sendmail"),
        &["-C", conf, "-odq", "carol@example.org"],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

/// What `check` fails about the layout every program refuses too (78, pointing at
/// init), in the same words: a spool others may enter (2771), a sub-directory of
/// another group than the spool's, one others may enter; `init` puts each right.
#[test]
fn a_layout_check_fails_is_refused_by_every_program() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let env = Env::new();
    init_spool(&env);
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let tmp = env.spool.join("tmp");
    let hold = env.spool.join("hold");
    /// A directory, what spoils it, and the words every program refuses it with.
    type Case<'a> = (PathBuf, Box<dyn Fn() + 'a>, String);
    let cases: Vec<Case> = vec![
        (
            env.spool.clone(),
            Box::new(|| {
                fs::set_permissions(&env.spool, fs::Permissions::from_mode(0o2771)).unwrap()
            }),
            format!(
                "the queue directory {} (mode 2771) is open to others",
                env.spool.display()
            ),
        ),
        (
            tmp.clone(),
            Box::new(|| std::os::unix::fs::chown(&tmp, None, Some(u.gid)).unwrap()),
            format!(
                "the queue's sub-directory {} is of the group {TEST_USER}, not the spool's \
                 group {}",
                tmp.display(),
                spool_group()
            ),
        ),
        (
            hold.clone(),
            Box::new(|| fs::set_permissions(&hold, fs::Permissions::from_mode(0o2771)).unwrap()),
            format!(
                "the queue's sub-directory {} (mode 2771) is open to others",
                hold.display()
            ),
        ),
    ];
    for (dir, spoil, want) in cases {
        spoil();
        refused_by_all(&env, &want, 78);
        let out = admin(&env.conf, &["check"]);
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(78), "{said}");
        assert!(
            said.lines().any(|l| l.starts_with("FAIL spool: ")
                && l.contains(&want)
                && l.contains("(fix: ")),
            "{said}"
        );
        init_spool(&env);
        assert_eq!(
            owner_mode(&dir),
            (0o2770, 0, spool_gid()),
            "{}",
            dir.display()
        );
    }
    let out = admin(&env.conf, &["check"]);
    assert!(
        !text(&out.stdout).contains("FAIL spool"),
        "{}",
        text(&out.stdout)
    );
}

/// `check` names every unsafe directory above the spool in one run, one FAIL line
/// each (the deepest first), the fix only for the topmost (the others wait for it: she
/// could swap them first), and for one in a user's home says to choose a path
/// outside that user's tree.
#[test]
fn check_names_every_unsafe_directory_above_the_spool() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let (dir, conf, _) = init_env("every-above");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    // Named for rsendmail (or in a directory so named), as directories the check gives
    // commands for must be.
    let top = dir.join("rsendmail-u");
    let inner = top.join("b/rsendmail-inner");
    fs::create_dir_all(&inner).unwrap();
    for d in [top.clone(), top.join("b"), inner.clone()] {
        std::os::unix::fs::chown(&d, Some(u.uid), Some(u.gid)).unwrap();
    }
    let spool = inner.join("spool");
    fs::write(
        &conf,
        format!(
            "MAILNAME test.example\nSPOOLDIR {}\nMAILSPOOL {}\n",
            spool.display(),
            dir.display()
        ),
    )
    .unwrap();
    let out = admin(&conf, &["check"]);
    let said = text(&out.stdout);
    let above: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("FAIL spool: ") && l.contains(", above the queue directory"))
        .collect();
    assert_eq!(above.len(), 3, "{said}");
    for (line, d) in above
        .iter()
        .zip([inner.clone(), top.join("b"), top.clone()])
    {
        let fixed = if d == top {
            line.contains(&format!("(fix: chown root {})", d.display()))
        } else {
            !line.contains(" (fix: ")
                && line.contains(&format!("put {} right first", top.display()))
        };
        assert!(
            line.starts_with(&format!("FAIL spool: {} (", d.display())) && fixed,
            "{said}"
        );
    }
    // A user's directory that is not rsendmail's (`/data/alice`), outside her home:
    // no command takes it from her, only what to do.
    let alice = dir.join("data/alice");
    fs::create_dir_all(&alice).unwrap();
    std::os::unix::fs::chown(&alice, Some(u.uid), Some(u.gid)).unwrap();
    fs::write(
        &conf,
        format!(
            "MAILNAME test.example\nSPOOLDIR {}\nMAILSPOOL {}\n",
            alice.join("rsendmail-spool").display(),
            dir.display()
        ),
    )
    .unwrap();
    let out = admin(&conf, &["check"]);
    let said = text(&out.stdout);
    let line = said
        .lines()
        .find(|l| l.starts_with(&format!("FAIL spool: {} (", alice.display())))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        line.ends_with(&format!(
            "root's alone; no fix: {} is not rsendmail's (neither it nor its directory is \
             named for rsendmail, nor is it under /etc/rsendmail: it may be another \
             program's or the system's), and no fix touches what is not: rather name a \
             SPOOLDIR in a directory that is root's alone all the way down, such as \
             /var/spool/rsendmail, or make it root's alone by hand if nothing else needs \
             it as it is",
            alice.display()
        )),
        "{said}"
    );
    assert!(!said.contains("chown root"), "{said}");
    assert!(!said.contains("chmod go-w"), "{said}");
    let _ = fs::remove_dir_all(&dir);
    // In the user's home: the advice is a path outside her tree.
    let home_dir = u.home.join(format!("rsm-above-{}", std::process::id()));
    fs::create_dir_all(&home_dir).unwrap();
    std::os::unix::fs::chown(&home_dir, Some(u.uid), Some(u.gid)).unwrap();
    let (dir, conf, _) = init_env("home-above");
    fs::write(
        &conf,
        format!(
            "MAILNAME test.example\nSPOOLDIR {}\nMAILSPOOL {}\n",
            home_dir.join("spool").display(),
            dir.display()
        ),
    )
    .unwrap();
    let out = admin(&conf, &["check"]);
    let said = text(&out.stdout);
    let _ = fs::remove_dir_all(&home_dir);
    let _ = fs::remove_dir_all(&dir);
    // Both her directories, each with that advice alone: no `chown root` of her home.
    for d in [&home_dir, &u.home] {
        assert!(
            said.lines()
                .any(|l| l.starts_with(&format!("FAIL spool: {} (", d.display()))
                    && l.ends_with(&format!(
                        "root's alone; it is in {}, the home of {TEST_USER}: rather name a \
                         SPOOLDIR outside that user's tree than give her directories to root",
                        u.home.display()
                    ))),
            "{said}"
        );
    }
    assert!(!said.contains("chown root"), "{said}");
}

/// A system spool whose group is not fit for it (root's, or a user's primary group) is
/// refused by every submission, `-bs`, `-bd`, queue run and listing (`-bp`, `mailq`,
/// `rsendmail-admin list` and `show`: a member of that group could have planted what
/// they list) with 78, naming the group and why, pointing at `check`, as one everyone
/// may write is.
#[test]
fn a_spool_of_a_group_unfit_for_it_is_refused_everywhere() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let env = Env::new();
    init_spool(&env);
    let c = env.conf.to_str().unwrap();
    let out = run_limited(
        &env.link("sendmail"),
        &["-C", c, "-odq", "bob@example.org"],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = queued_id(&env.spool);
    for (gid, why) in [
        (0, "of the group root, root's group".to_string()),
        (
            u.gid,
            format!("the primary group of the user \"{TEST_USER}\""),
        ),
    ] {
        std::os::unix::fs::chown(&env.spool, None, Some(gid)).unwrap();
        fs::set_permissions(&env.spool, fs::Permissions::from_mode(0o2770)).unwrap();
        refused_by_all(&env, &why, 78);
        refused_by_all(
            &env,
            &format!(
                "(`rsendmail-admin -C {} check` says how)",
                env.conf.display()
            ),
            78,
        );
        for args in [&["list"][..], &["show", &id]] {
            let out = admin(&env.conf, args);
            let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert_eq!(out.status.code(), Some(78), "{args:?}: {said}");
            assert!(
                said.contains(&why) && !said.contains("bob@example.org"),
                "{args:?}: {said}"
            );
        }
    }
}

/// A root process that finds the spool's group fit records that verdict in the spool
/// (`.group-fit`: root's, mode 0640, keyed on the group and the password database's
/// files), and a later submission takes it rather than enumerate every user. A verdict
/// for the spool's group that is not root's, that its group may write, or that is an
/// hour old is not taken: the spool of a user's primary group is refused whatever such
/// a file says.
#[test]
fn the_spool_groups_verdict_is_recorded_by_root_and_only_roots_is_taken() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let env = Env::new();
    init_spool(&env);
    let c = env.conf.to_str().unwrap();
    let submit = || {
        run_limited(
            &env.link("sendmail"),
            &["-C", c, "-odq", "bob@example.org"],
            MSG,
        )
    };
    let out = submit();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let verdict = env.spool.join(".group-fit");
    let md = fs::metadata(&verdict).expect("root's submission recorded the verdict");
    assert_eq!((md.uid(), md.mode() & 0o022), (0, 0), "{:o}", md.mode());
    let recorded = fs::read_to_string(&verdict).unwrap();
    let (at, key) = recorded.split_once(' ').unwrap();
    let fit_gid = fs::metadata(&env.spool).unwrap().gid();
    // The same verdict, for the user's primary group.
    let forged = |at: &str| {
        format!(
            "{at} {}",
            key.replace(&format!(" gid {fit_gid} "), &format!(" gid {} ", u.gid))
        )
    };
    std::os::unix::fs::chown(&env.spool, None, Some(u.gid)).unwrap();
    fs::set_permissions(&env.spool, fs::Permissions::from_mode(0o2770)).unwrap();
    let why = format!("the primary group of the user \"{TEST_USER}\"");
    let old = (at.parse::<i64>().unwrap() - 3700).to_string();
    for (owner, mode, at) in [(u.uid, 0o640, at), (0, 0o660, at), (0, 0o640, old.as_str())] {
        let _ = fs::remove_file(&verdict);
        fs::write(&verdict, forged(at)).unwrap();
        std::os::unix::fs::chown(&verdict, Some(owner), None).unwrap();
        fs::set_permissions(&verdict, fs::Permissions::from_mode(mode)).unwrap();
        let out = submit();
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(78),
            "owner {owner} mode {mode:o}: {said}"
        );
        assert!(said.contains(&why), "owner {owner} mode {mode:o}: {said}");
    }
    // Its group fit again, the verdict for another group is not taken: root's next
    // submission makes the full check and records its own.
    std::os::unix::fs::chown(&env.spool, None, Some(fit_gid)).unwrap();
    fs::set_permissions(&env.spool, fs::Permissions::from_mode(0o2770)).unwrap();
    let out = submit();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{said}");
    let now = fs::read_to_string(&verdict).unwrap();
    assert!(now.contains(&format!(" gid {fit_gid} ")), "{now}");
}

/// `rsendmail-admin list` (also `--json`) and `show ID` refuse the spool with exit 78
/// and `want` on stderr, listing nothing queued in it (`bob@example.org`).
#[track_caller]
fn admin_listings_refuse(env: &Env, want: &str, id: &str) {
    for args in [&["list"][..], &["list", "--json"], &["show", id]] {
        let out = admin(&env.conf, args);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(78), "{args:?}: {said}");
        assert!(
            text(&out.stderr).contains(want) && !said.contains("bob@example.org"),
            "{args:?}: {said:?} lacks {want:?}"
        );
    }
}

/// A system spool every program refuses for its layout (2771, a sub-directory of
/// another group than the spool's) or its ACLs (an access ACL's entry for a named
/// user) is not listed either: `-bp`, `mailq`, `rsendmail-admin list` (`--json` too)
/// and `show` refuse it (78) in the words of every other program, pointing at
/// `rsendmail-admin init`, and show nothing queued in it; once init puts it right,
/// each lists it again.
#[test]
fn a_spool_the_programs_refuse_is_not_listed() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let env = Env::new();
    init_spool(&env);
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let c = env.conf.to_str().unwrap();
    let out = run_limited(
        &env.link("sendmail"),
        &["-C", c, "-odq", "bob@example.org"],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = queued_id(&env.spool);
    let tmp = env.spool.join("tmp");
    let uid = u.uid.to_string();
    /// What spoils the spool (false: it could not, said), and the words it is refused with.
    type Case<'a> = (Box<dyn Fn() -> bool + 'a>, String);
    let cases: Vec<Case> = vec![
        (
            Box::new(|| {
                fs::set_permissions(&env.spool, fs::Permissions::from_mode(0o2771)).unwrap();
                true
            }),
            format!(
                "the queue directory {} (mode 2771) is open to others",
                env.spool.display()
            ),
        ),
        (
            Box::new(|| {
                std::os::unix::fs::chown(&tmp, None, Some(u.gid)).unwrap();
                true
            }),
            format!(
                "the queue's sub-directory {} is of the group {TEST_USER}, not the spool's \
                 group {}",
                tmp.display(),
                spool_group()
            ),
        ),
        (
            Box::new(|| {
                let acl = format!("u:{uid}:r-x");
                match Command::new("setfacl")
                    .args(["-m", &acl])
                    .arg(&env.spool)
                    .status()
                {
                    Ok(st) => {
                        assert!(st.success(), "setfacl -m {acl}");
                        true
                    }
                    Err(e) => {
                        eprintln!("note: setfacl ({e}): the access ACL case is skipped");
                        false
                    }
                }
            }),
            format!(
                "the queue directory {} is given read (r-x) by an access ACL for the user \
                 \"{TEST_USER}\"",
                env.spool.display()
            ),
        ),
    ];
    for (spoil, want) in cases {
        if !spoil() {
            continue;
        }
        refused_by_all(&env, &want, 78);
        refused_by_all(
            &env,
            &format!("rsendmail-admin -C {} init", env.conf.display()),
            78,
        );
        admin_listings_refuse(&env, &want, &id);
        init_spool(&env);
        for args in [&["list"][..], &["show", &id]] {
            let out = admin(&env.conf, args);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{args:?}: {}",
                text(&out.stderr)
            );
            assert!(
                text(&out.stdout).contains("bob@example.org"),
                "{args:?}: {}",
                text(&out.stdout)
            );
        }
    }
}

/// A spool root's alone (0700, as the quick start makes one as root) gives its group
/// nothing, so its group (root's here) is no reason to refuse it: root's submission
/// takes it over, keeps it 0700 and queues, and a queue run lists it. The same spool
/// giving root's group anything (0750, 2770) is refused (78), changing nothing.
#[test]
fn a_spool_that_gives_its_group_nothing_is_used_whatever_its_group() {
    if !is_root() {
        return;
    }
    let (dir, conf, spool) = init_env("rootonly");
    fs::create_dir(&spool).unwrap();
    std::os::unix::fs::chown(&spool, Some(0), Some(0)).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o700)).unwrap();
    let c = conf.to_str().unwrap();
    let out = run_limited(&bin(), &["-C", c, "-odq", "bob@example.org"], MSG);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert_eq!(owner_mode(&spool), (0o700, 0, 0));
    let out = run_limited(&bin(), &["-C", c, "-bp"], b"");
    assert!(
        text(&out.stdout).contains("bob@example.org"),
        "{}",
        text(&out.stdout)
    );
    for mode in [0o750, 0o2770] {
        fs::set_permissions(&spool, fs::Permissions::from_mode(mode)).unwrap();
        let out = run_limited(&bin(), &["-C", c, "-odq", "bob@example.org"], MSG);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(78), "{mode:o}: {said}");
        assert!(
            said.contains("is of the group root, root's group"),
            "{said}"
        );
        assert_eq!(owner_mode(&spool), (mode, 0, 0));
    }
    let _ = fs::remove_dir_all(&dir);
}

/// `check` of a spool root's alone, as the quick start makes one as root (0700
/// root:root, its sub-directories and entries made by root's submissions): every
/// program uses it, so nothing about it is failed (not the spool, its sub-directories,
/// their files, nor `rsendmail` for not being set-gid); that no user's submission can
/// queue in it is said once, a warning with the way to share it (`init`).
#[test]
fn check_fails_nothing_of_a_spool_roots_alone() {
    if !is_root() {
        return;
    }
    let (dir, conf, spool) = init_env("quickstart");
    fs::create_dir(&spool).unwrap();
    std::os::unix::fs::chown(&spool, Some(0), Some(0)).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o700)).unwrap();
    let c = conf.to_str().unwrap();
    let out = run_limited(&bin(), &["-C", c, "-odq", "bob@example.org"], MSG);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(owner_mode(&spool), (0o700, 0, 0));
    let out = admin(&conf, &["check"]);
    let said = text(&out.stdout);
    let _ = fs::remove_dir_all(&dir);
    assert!(
        !said
            .lines()
            .any(|l| l.starts_with("FAIL spool") || l.starts_with("FAIL binary")),
        "{said}"
    );
    let warned: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("warn spool: "))
        .collect();
    assert_eq!(warned.len(), 1, "{said}");
    assert!(
        warned[0].contains(&format!(
            "{} (root:root 0700) is root's alone: root's submissions, queue runs and \
             listings use it, but no user's submission can queue in it",
            spool.display()
        )) && warned[0].contains(" init"),
        "{said}"
    );
}

/// `init` for a SPOOLDIR in a user's home offers no `chown root` of her directories:
/// the spool belongs outside her tree, as `check` says.
#[test]
fn init_gives_no_users_home_to_root() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let in_home = u.home.join(format!("rsm-init-home-{}", std::process::id()));
    fs::create_dir_all(&in_home).unwrap();
    let (dir, conf, _) = init_env("init-home");
    fs::write(
        &conf,
        format!(
            "MAILNAME test.example\nSPOOLDIR {}\nMAILSPOOL {}\n",
            in_home.join("spool").display(),
            dir.display()
        ),
    )
    .unwrap();
    let out = admin(&conf, &["init", "--group", spool_group()]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let _ = fs::remove_dir_all(&in_home);
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(!said.contains("chown"), "{said}");
    assert!(
        said.contains(&format!(
            "it is in {}, the home of {TEST_USER}: rather name a SPOOLDIR outside",
            u.home.display()
        )),
        "{said}"
    );
}

/// A SPOOLDIR in another spool's tree (its hold/, or the spool itself named through
/// `..`) is refused by `init` (78, nothing made, no mode of the live spool changed)
/// and failed by `check`, with no chmod offered.
#[test]
fn a_spool_inside_another_spool_is_refused() {
    let (dir, conf, spool) = init_env("inside");
    let out = admin(&conf, &["init", "--group", spool_group()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = fs::metadata(&spool).unwrap().mode();
    for inner in [
        spool.join("hold"),
        spool.join("..").join("spool"),
        spool.join("hold").join("x"),
    ] {
        let c2 = dir.join("inner.conf");
        fs::write(
            &c2,
            format!(
                "MAILNAME test.example\nSPOOLDIR {}\nMAILSPOOL {}\n",
                inner.display(),
                dir.display()
            ),
        )
        .unwrap();
        let out = admin(&c2, &["init", "--group", spool_group()]);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(78), "{said}");
        assert!(
            said.contains(&format!(
                "is inside the rsendmail spool {}",
                spool.display()
            )),
            "{said}"
        );
        assert!(!said.contains("chmod"), "{said}");
        assert_eq!(fs::metadata(&spool).unwrap().mode(), mode);
        assert!(!spool.join("hold/tmp").exists());
        let out = admin(&c2, &["check"]);
        let said = text(&out.stdout);
        assert!(
            said.lines().any(|l| l.starts_with("FAIL spool: ")
                && l.contains(&format!(
                    "is inside the rsendmail spool {}",
                    spool.display()
                ))),
            "{said}"
        );
        assert!(!said.contains("chmod"), "{said}");
    }
    let _ = fs::remove_dir_all(&dir);
}

/// A SPOOLDIR in another spool's tree (its `hold/`, or the spool named through one of
/// its sub-directories and `..`) is refused by every program that opens the spool, not
/// by `init` and `check` alone: submissions, `-bs`, the daemon, queue runs, `-bp`,
/// `mailq`, the deliverer and the queue commands, each with 78 and the configuration's
/// file and line; nothing is made in it.
#[test]
fn every_program_refuses_a_spool_inside_another_spool() {
    let env = Env::new();
    // The live spool, made whole by a submission.
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let spool = env.spool.clone();
    let hold = spool.join("hold");
    fs::create_dir(&hold).unwrap();
    fit_spool_group(&hold);
    fs::set_permissions(&hold, fs::Permissions::from_mode(0o2770)).unwrap();
    let deliver = PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-deliver"));
    for inner in [hold.clone(), spool.join("tmp").join("..")] {
        fs::write(
            &env.conf,
            format!("MAILNAME test.example\nSPOOLDIR {}\n", inner.display()),
        )
        .unwrap();
        let want = format!(
            "{}: line 2: SPOOLDIR {}: it is inside the rsendmail spool {}",
            env.conf.display(),
            inner.display(),
            spool.display()
        );
        refused_everywhere(&env, &want, &hold.join("tmp"));
        for args in [
            &["list"][..],
            &["show", "AAAA00000000"],
            &["hold", "AAAA00000000"],
            &["delete", "AAAA00000000"],
        ] {
            let out = admin(&env.conf, args);
            let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert_eq!(out.status.code(), Some(78), "{args:?}: {said}");
            assert!(said.contains(&want), "{args:?}: {said:?} lacks {want:?}");
        }
        let conf = env.conf.to_str().unwrap();
        let out = run_limited(&deliver, &["sendmail", "-C", conf, "-q"], b"");
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(78), "deliverer: {said}");
        assert!(said.contains(&want), "deliverer: {said:?} lacks {want:?}");
        assert!(
            fs::read_dir(&hold).unwrap().next().is_none(),
            "made in hold/"
        );
    }
}

/// A SPOOLDIR that is not a directory (`/dev/null`, a file) is named by the
/// configuration's file and line, with what is there, by `init` and `check` and by every
/// program that opens the spool (78); nothing is made or changed. Every other refusal
/// of the spool begins with that file and line too.
#[test]
fn a_spooldir_that_is_not_a_directory_is_named_by_its_line() {
    let env = Env::new();
    let file = env.dir.join("plain");
    fs::write(&file, "").unwrap();
    for (target, kind) in [
        (Path::new("/dev/null"), "a character device"),
        (file.as_path(), "a regular file"),
    ] {
        fs::write(
            &env.conf,
            format!("MAILNAME test.example\n\nSPOOLDIR {}\n", target.display()),
        )
        .unwrap();
        let want = format!(
            "{}: line 3: SPOOLDIR {}: not a directory but {kind}",
            env.conf.display(),
            target.display()
        );
        refused_everywhere(&env, &want, &env.dir.join("tmp"));
        if is_root() {
            let out = admin(&env.conf, &["init", "--group", spool_group()]);
            let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert_eq!(out.status.code(), Some(78), "init: {said}");
            assert!(said.contains(&want), "init: {said:?} lacks {want:?}");
        }
        let out = admin(&env.conf, &["check"]);
        let said = text(&out.stdout);
        assert!(
            said.lines()
                .any(|l| l.starts_with("FAIL spool: ") && l.contains(&want)),
            "check: {said:?} lacks {want:?}"
        );
        assert_eq!(fs::read(&file).unwrap(), b"", "the file was changed");
    }
    // Any other refusal of the spool it names begins with its file and line too: here
    // a group unfit for a spool (a user's primary group), which the listings refuse as
    // well.
    if !is_root() || !can_switch_user() {
        return;
    }
    fs::write(
        &env.conf,
        format!(
            "MAILNAME test.example\n\nSPOOLDIR {}\n",
            env.spool.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::chown(&env.spool, None, Some(test_user().gid)).unwrap();
    let want = format!(
        "{}: line 3: SPOOLDIR {}: the queue directory {} is of the group ",
        env.conf.display(),
        env.spool.display(),
        env.spool.display()
    );
    refused_everywhere(&env, &want, &env.spool.join("tmp"));
}

/// Entries of a spool whose group was wrong (a user's primary group, which every
/// process of hers holds) are suspect: `init` never gives them the spool's group; it
/// moves them into `corrupt/`, where nothing is run, and says so, as `check`'s repair
/// does. Entries of the spool's group are kept, put right.
#[test]
fn init_sets_suspect_entries_aside() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let (dir, conf, spool) = init_env("suspect");
    let out = admin(&conf, &["init", "--group", spool_group()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for _ in 0..2 {
        let out = run_limited(
            &bin(),
            &["-C", conf.to_str().unwrap(), "-odq", "bob@example.org"],
            MSG,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let mut qfs: Vec<PathBuf> = fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("qf"))
        .collect();
    qfs.sort();
    assert_eq!(qfs.len(), 2, "{qfs:?}");
    // The spool's group was wrong: hers; one entry was written with it, by her (one
    // root wrote is root's, and kept: `admin_check`,
    // `entries_root_wrote_while_the_spool_was_regrouped_are_kept`).
    let u = test_user();
    std::os::unix::fs::chown(&spool, None, Some(u.gid)).unwrap();
    std::os::unix::fs::chown(&qfs[0], Some(u.uid), Some(u.gid)).unwrap();
    let out = admin(&conf, &["init", "--group", spool_group()]);
    let said = text(&out.stdout);
    let _cleanup = scopeguard(&dir);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    let name = qfs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        said.contains(&format!(
            "moved {} (suspect: of the group ",
            qfs[0].display()
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "1 suspect queue file(s) set aside in {}",
            spool.join("corrupt").display()
        )),
        "{said}"
    );
    assert!(!qfs[0].exists(), "{said}");
    let aside: Vec<_> = fs::read_dir(spool.join("corrupt"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}."))
        })
        .collect();
    assert_eq!(aside.len(), 1, "{said}");
    // Never given the spool's group.
    assert_eq!(aside[0].metadata().unwrap().gid(), u.gid, "{said}");
    // The other, of the spool's group, is kept.
    assert_eq!(fs::metadata(&qfs[1]).unwrap().gid(), spool_gid(), "{said}");
}

/// Removes a test's directory when dropped.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn scopeguard(dir: &Path) -> Cleanup {
    Cleanup(dir.to_path_buf())
}

/// An old sendmail queue named as SPOOLDIR: `check` fails it and offers no fix that
/// gives sendmail's queue files to the spool's group.
#[test]
fn check_adopts_no_old_sendmail_queue() {
    let (dir, conf, spool) = init_env("oldmq");
    fs::create_dir_all(&spool).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o700)).unwrap();
    let qf = spool.join("qfAB12345");
    fs::write(&qf, "V8\nT1\n").unwrap();
    fs::set_permissions(&qf, fs::Permissions::from_mode(0o600)).unwrap();
    let out = admin(&conf, &["check"]);
    let said = text(&out.stdout);
    let _ = fs::remove_dir_all(&dir);
    assert!(said.contains("old sendmail queue"), "{said}");
    assert!(
        !said
            .lines()
            .any(|l| l.starts_with("FAIL spool: ")
                && (l.contains("chgrp") || l.contains("chmod 660"))),
        "{said}"
    );
}

/// Entries not of the spool's group (written while its group was wrong) are suspect:
/// `check` says so and how to set them aside, and offers no chgrp/chmod adopting them.
#[test]
fn check_adopts_no_entry_of_another_group() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let (dir, conf, spool) = init_env("suspect");
    let out = admin(&conf, &["init", "--group", spool_group()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let planted = spool.join("qf6B21gSDu00777Y");
    fs::write(&planted, "planted\n").unwrap();
    std::os::unix::fs::chown(&planted, Some(u.uid), Some(u.gid)).unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o660)).unwrap();
    let out = admin(&conf, &["check"]);
    let said = text(&out.stdout);
    let _ = fs::remove_dir_all(&dir);
    let line = said
        .lines()
        .find(|l| l.starts_with("FAIL spool: ") && l.contains("qf6B21gSDu00777Y"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(line.contains("suspect"), "{said}");
    assert!(
        line.contains(&format!(
            "\\! -group {} \\! -user root -exec mv --backup=numbered -t {}",
            spool_group(),
            spool.join("corrupt").display()
        )),
        "{said}"
    );
    assert!(
        !said
            .lines()
            .any(|l| l.starts_with("FAIL spool: ") && l.contains("-exec chgrp")),
        "{said}"
    );
}

/// The shell blocks README.md marks `<!-- source-install -->` (the install without the
/// package), in order: what the test below runs, so that README and the test cannot
/// differ.
fn readme_source_install_blocks() -> Vec<String> {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(l) = lines.next() {
        if l.trim() != "<!-- source-install -->" {
            continue;
        }
        assert_eq!(
            lines.next().map(str::trim),
            Some("```sh"),
            "README.md: a source-install marker not followed by a sh block"
        );
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push(block.join("\n") + "\n");
    }
    blocks
}

/// README's install without the package, followed literally as root on a host as it
/// is, but in a private mount namespace whose /etc, /usr and /var are overlays (nothing
/// outside it changes), with no group `rsendmail` and no rsendmail installed: the shell
/// blocks README marks `source-install` are run as written, in the source directory (a
/// copy holding the built programs where `cargo build --release` leaves them, and
/// `packaging/`; `cargo` stands for the build already made), with the smarthost added to
/// the configuration between the first two blocks ("then edit it"). Then
/// `rsendmail-admin check` passes, and a user's `sendmail -odb` (through the
/// `/usr/sbin/sendmail` link) reaches another local user's mailbox (delivered by the
/// root runner README started) and the smarthost (smtp-sink). Skipped, saying why, when
/// not root or no such namespace can be made.
#[test]
fn the_readmes_source_install_steps_work_as_written() {
    if !can_switch_user() {
        eprintln!("skipped: README's source install needs root and the user {TEST_USER}");
        return;
    }
    let blocks = readme_source_install_blocks();
    let find = |what: &str| {
        blocks
            .iter()
            .position(|b| b.contains(what))
            .unwrap_or_else(|| panic!("README.md's source-install blocks: no {what}: {blocks:?}"))
    };
    assert_eq!(find("cargo build --release --bins"), 0, "{blocks:?}");
    // The configuration is edited once it is copied; the runner started is waited for
    // (it names itself in slots/runner once it listens); check's output is looked at.
    let edited = find("packaging/etc/rsendmail.conf /etc/rsendmail/");
    let runner = find("/usr/local/sbin/rsendmail -q30m");
    let checked = find("rsendmail-admin check");
    let top = crate::privileges::setgid_dir("readme-install");
    // The source directory, as the build leaves it.
    let src = top.join("src");
    let release = src.join("target/release");
    fs::create_dir_all(&release).unwrap();
    for (from, name) in [
        (bin(), "rsendmail"),
        (admin_bin(), "rsendmail-admin"),
        (
            PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-deliver")),
            "rsendmail-deliver",
        ),
    ] {
        copy_executable(&from, &release.join(name));
    }
    fs::create_dir_all(src.join("packaging/etc")).unwrap();
    fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/etc/rsendmail.conf"),
        src.join("packaging/etc/rsendmail.conf"),
    )
    .unwrap();
    // `cargo build --release --bins`: made already.
    let shim = top.join("shim");
    fs::create_dir(&shim).unwrap();
    fs::write(
        shim.join("cargo"),
        "#!/bin/sh\n[ \"$*\" = 'build --release --bins' ] || { echo \"cargo $*?\"; exit 1; }\n",
    )
    .unwrap();
    fs::set_permissions(shim.join("cargo"), fs::Permissions::from_mode(0o755)).unwrap();
    for (i, b) in blocks.iter().enumerate() {
        fs::write(top.join(format!("block{i}.sh")), b).unwrap();
    }
    let Some(sink) = crate::harness::servers::Sink::start(&top, &[]) else {
        return;
    };
    let local = other_user();
    let local_name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(local.uid))
        .unwrap()
        .unwrap()
        .name;
    let script = r#"
top=$1 src=$2 port=$3 user=$4 rcpt=$5 blocks=$6 edited=$7 started=$8
MOUNT || { echo "overlay /etc: failed"; exit 90; }
for d in usr var; do
    mkdir -p "$top/ovl/$d/u" "$top/ovl/$d/w"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$top/ovl/$d/u,workdir=$top/ovl/$d/w" "/$d" \
        || { echo "overlay /$d: failed"; exit 90; }
done
# A host without rsendmail.
! getent group rsendmail >/dev/null || groupdel rsendmail || exit 90
rm -rf /etc/rsendmail /var/spool/rsendmail /usr/libexec/rsendmail /usr/local/sbin/rsendmail \
    /usr/local/sbin/rsendmail-admin
runner=""
trap '[ -z "$runner" ] || kill "$runner"' EXIT
export PATH="$top/shim:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
cd "$src" || exit 90
i=0
while [ $i -lt "$blocks" ]; do
    sh -e "$top/block$i.sh" > "$top/block$i.out" 2>&1
    rc=$?
    [ $rc = 0 ] || { echo "README block $i: exit $rc"; cat "$top/block$i.out"; exit 91; }
    if [ $i = "$edited" ]; then
        # "then edit it": the smarthost.
        echo "SMARTHOST 127.0.0.1:$port" >> /etc/rsendmail/rsendmail.conf
    fi
    if [ $i = "$started" ]; then
        n=0
        while ! [ -s /var/spool/rsendmail/slots/runner ]; do
            n=$((n + 1)); [ $n -lt 300 ] || { echo "no runner"; exit 92; }; sleep 0.1
        done
        runner=$(cut -d' ' -f1 /var/spool/rsendmail/slots/runner)
    fi
    i=$((i + 1))
done
ls -l /usr/sbin/sendmail /usr/local/sbin/rsendmail > "$top/ls.out" 2>&1
printf 'Subject: local\n\nhello\n' | runuser -u "$user" -- env -i PATH=/usr/bin:/bin \
    /usr/sbin/sendmail -odb "$rcpt" > "$top/local.out" 2>&1 || { echo "local: $?"; cat "$top/local.out"; exit 93; }
printf 'Subject: remote\n\nhello\n' | runuser -u "$user" -- env -i PATH=/usr/bin:/bin \
    /usr/sbin/sendmail -odb bob@example.org > "$top/remote.out" 2>&1 || { echo "remote: $?"; cat "$top/remote.out"; exit 93; }
n=0
while ! grep -qs '^Subject: local' "/var/mail/$rcpt"; do
    n=$((n + 1)); [ $n -lt 300 ] || break; sleep 0.1
done
cat "/var/mail/$rcpt" > "$top/mailbox" 2>&1
mailq > "$top/mailq.out" 2>&1
exit 0
"#;
    // /etc's overlay is the one with_system_config mounts (no configuration in it).
    let Some(out) = crate::privileges::with_system_config(
        &top,
        None,
        script,
        &[
            top.to_str().unwrap(),
            src.to_str().unwrap(),
            &sink.port.to_string(),
            TEST_USER,
            &local_name,
            &blocks.len().to_string(),
            &edited.to_string(),
            &runner.to_string(),
        ],
        b"",
    ) else {
        let _ = fs::remove_dir_all(&top);
        return;
    };
    let said = |name: &str| fs::read_to_string(top.join(name)).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // check passed (its block ran under `sh -e`), saying what README says it says; its
    // only warnings are this host's and this smarthost's: a host name that is no
    // domain name, and smtp-sink's offer of AUTH with no credentials configured.
    let check = said(&format!("block{checked}.out"));
    assert!(
        check.contains("ok   sendmail /usr/sbin/sendmail runs /usr/local/sbin/rsendmail"),
        "{check}"
    );
    assert!(
        check.contains("ok   wakeup /var/spool/rsendmail/wakeup (FIFO, root:rsendmail 0620), a queue runner listens"),
        "{check}"
    );
    for l in check.lines() {
        assert!(
            [
                "ok   ",
                "info ",
                "skip tls: ",
                "warn mailname: ",
                "warn auth: "
            ]
            .iter()
            .any(|p| l.starts_with(p)),
            "{l}\n{check}"
        );
    }
    let mailbox = said("mailbox");
    assert!(
        mailbox.contains("\nSubject: local\n"),
        "the local message did not arrive: {mailbox}\nqueue: {}",
        said("mailq.out")
    );
    wait_until_or(
        Duration::from_secs(30),
        "the smarthost's copy",
        || said("mailq.out"),
        || {
            sink.dumps()
                .iter()
                .any(|d| d.contains("Subject: remote") && d.contains("bob@example.org"))
        },
    );
    drop(sink);
    let _ = fs::remove_dir_all(&top);
}

/// A second daemon given the `O PidFile=` of one that runs is not started: it exits 69
/// saying so, and the pid file still names the first, which goes on.
#[test]
fn a_second_daemon_does_not_take_a_running_ones_pid_file() {
    use crate::harness::servers::Daemon;
    let env = Env::new();
    let pid_file = env.dir.join("rsendmail.pid");
    env.add_config(&format!("O PidFile={}\n", pid_file.display()));
    let d = Daemon::start(&env, &["-q30m"]);
    let first = d.child.id();
    wait_until(Duration::from_secs(10), "the pid file", || {
        fs::read_to_string(&pid_file).is_ok_and(|t| t.starts_with(&format!("{first}\n")))
    });
    let port = crate::harness::closed_tcp_port();
    let err_file = env.dir.join("second.err");
    let mut second = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-bD", "-q30m"])
        .arg(format!("-ODaemonPortOptions=Port={port},Addr=127.0.0.1"))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&err_file).unwrap())
        .stderr(fs::File::create(env.dir.join("second.stderr")).unwrap())
        .spawn()
        .unwrap();
    // Killed after the wait when it runs on.
    let status = wait_exit(&mut second, Duration::from_secs(20));
    let err = fs::read_to_string(&err_file).unwrap()
        + &fs::read_to_string(env.dir.join("second.stderr")).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(69), "{err}");
    assert!(
        err.contains(&format!(
            "O PidFile {} names the daemon that runs as process {first}",
            pid_file.display()
        )),
        "{err}"
    );
    assert!(
        fs::read_to_string(&pid_file)
            .unwrap()
            .starts_with(&format!("{first}\n")),
        "the pid file was taken"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", d.port)).is_ok());
}

/// `O PidFile=` in a place of the system's that is not for pid files
/// (`/mnt/cron.d/rsendmail-backup`, in a tmpfs of its own on `/mnt` in a private mount
/// namespace, so the real one is never at stake): the root daemon writes nothing there,
/// neither over an admin's file whose first line is a number nor beside it.
#[test]
fn the_daemon_writes_no_pid_file_in_a_system_place() {
    if !is_root() || !Path::new("/usr/bin/unshare").exists() {
        return;
    }
    let env = Env::new();
    let port = crate::harness::closed_tcp_port();
    env.add_config(&format!(
        "O DaemonPortOptions=Port={port},Addr=127.0.0.1\nO PidFile=/mnt/cron.d/rsendmail-backup\n"
    ));
    let script = r#"
mount -t tmpfs -o mode=755 tmpfs /mnt || exit 90
mkdir /mnt/cron.d && printf '4242\nadmin text\n' > /mnt/cron.d/rsendmail-backup || exit 91
exec "$0" -C "$1" -bD -q30m
"#;
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .arg(env.link("sendmail"))
        .arg(&env.conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut skipped = false;
    wait_until(Duration::from_secs(30), "the daemon to listen", || {
        if let Ok(Some(st)) = child.try_wait() {
            assert_eq!(st.code(), Some(90), "the daemon ended: {st:?}");
            skipped = true;
        }
        skipped || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    if skipped {
        eprintln!("skipped: no tmpfs on /mnt in a private mount namespace here");
        return;
    }
    // Its greeting: the daemon accepts only once it has dealt with its pid file.
    let mut greeting = String::new();
    let conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(conn), &mut greeting).unwrap();
    assert!(greeting.starts_with("220"), "{greeting:?}");
    let dir = PathBuf::from(format!("/proc/{pid}/root/mnt/cron.d"));
    let entries: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let text = fs::read_to_string(dir.join("rsendmail-backup")).unwrap();
    sigterm(&child);
    let _ = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(entries, ["rsendmail-backup"]);
    assert_eq!(text, "4242\nadmin text\n");
}
