//! Setting up the spool: a `SPOOLDIR` (or `O QueueDirectory`) that names a missing
//! directory is refused at every entry point (EX_CONFIG, its file and line) and nothing
//! is made.

use crate::harness::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
         made by the install, or by \"rsendmail-admin init\" as root)",
        env.conf.display(),
        spool.display()
    );
    refused_everywhere(&env, &want, &spool);
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
    fs::set_permissions(&here, fs::Permissions::from_mode(0o777)).unwrap();
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
