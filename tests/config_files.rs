//! The files a configuration names, held to the rule the spool follows: a root process
//! refuses (78, naming the file, its config line and who could change it) a file it
//! reads for routing or credentials, or writes, that anyone but root could change: the
//! file itself, a directory on its path or a link followed on the way; `rsendmail-admin
//! check` fails each with a repair that changes nothing a user can swap. A user's own
//! configuration still trusts her.

use crate::harness::{Env, MSG, Run, TEST_USER, as_user, bin, can_switch_user, test_user};
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What a run said, on either stream (sendmail prints its errors on stdout).
fn said(r: &Run) -> String {
    format!("{}{}", r.stdout, r.stderr)
}

fn admin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-admin"))
}

/// Where the file a keyword names is put, for each way a user could change it.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// The file is hers, in root's directory.
    UserFile,
    /// Root's file in her directory (she can rename it away and put her own there).
    UserDir,
    /// Root's file named through root's link that leads into her directory.
    LinkIntoUserDir,
}

/// A file named `name` holding `body`, placed in `env`'s directory as `place` says; the
/// path to name in the configuration.
fn place_file(env: &Env, place: Place, name: &str, body: &str) -> PathBuf {
    let u = test_user();
    let udir = env.dir.join(format!("user-{name}"));
    fs::create_dir_all(&udir).unwrap();
    chown(&udir, Some(u.uid), Some(u.gid)).unwrap();
    match place {
        Place::UserFile => {
            let p = env.dir.join(name);
            fs::write(&p, body).unwrap();
            chown(&p, Some(u.uid), Some(u.gid)).unwrap();
            p
        }
        Place::UserDir => {
            let p = udir.join(name);
            fs::write(&p, body).unwrap();
            p
        }
        Place::LinkIntoUserDir => {
            fs::write(udir.join(name), body).unwrap();
            let link = env.dir.join(format!("link-{name}"));
            symlink(&udir, &link).unwrap();
            link.join(name)
        }
    }
}

/// Each keyword's line for a file at `p`, and a body it takes.
fn keyword_line(what: &str, p: &Path) -> String {
    let p = p.display();
    match what {
        "CACertFile" | "PidFile" => format!("O {what}={p}\n"),
        _ => format!("{what} {p}\n"),
    }
}

const KEYWORDS: &[(&str, &str)] = &[
    ("ALIASES", "root: /dev/null\n"),
    ("RELAYTABLE", "* [127.0.0.1]:1\n"),
    ("AUTHPATH", "u|127.0.0.1:secret\n"),
    ("CERTFILE", "not checked before the path\n"),
    ("CACertFile", "not checked before the path\n"),
    ("MAILNAME", "test.example\n"),
    ("MAILLOG", ""),
    ("PidFile", ""),
];

/// Root's submission, queue run and `-bv` refuse (78) the file at `at` before anything
/// is queued or delivered, naming it and the test user.
fn check_refused(env: &Env, at: &str, ctx: &str) {
    let r = env.sendmail(&["-odi", "root"], MSG);
    r.code(78);
    assert!(said(&r).contains(at), "{ctx}: {}", said(&r));
    assert!(
        said(&r).contains(&format!("owned by {TEST_USER}")),
        "{ctx}: {}",
        said(&r)
    );
    assert!(env.entries().is_empty(), "{ctx}: something was queued");
    assert!(!env.dir.join("mail/root").exists(), "{ctx}: delivered");
    for args in [&["-q"][..], &["-bv", "root"][..]] {
        let r = env.sendmail(args, b"");
        r.code(78);
        assert!(said(&r).contains(at), "{ctx} {args:?}: {}", said(&r));
    }
}

/// For every keyword and every way a user could change the file: root's submission is
/// refused with 78 before anything is queued or delivered, naming the keyword, its
/// config line, the file and the user; root's queue run and `-bv` too (MAILLOG excepted:
/// it is not opened, the run says so and delivers); check fails it with no chown or
/// chmod of her path.
#[test]
fn root_refuses_each_file_a_user_could_change() {
    if !can_switch_user() {
        return;
    }
    for place in [Place::UserFile, Place::UserDir, Place::LinkIntoUserDir] {
        for (what, body) in KEYWORDS {
            let env = Env::new();
            let file = place_file(&env, place, &what.to_lowercase(), body);
            env.add_config(&keyword_line(what, &file));
            let line = fs::read_to_string(&env.conf).unwrap().lines().count();
            let at = format!(
                "{}: line {line}: {what} {} is refused",
                env.conf.display(),
                file.display()
            );
            let ctx = format!("{what} {place:?}");
            if *what == "MAILLOG" {
                // An unsafe log file stops no mail: it is not opened, and the lines go
                // to syslog, which each run says.
                let r = env.sendmail(&["-odi", "root"], MSG);
                r.code(0);
                assert!(
                    said(&r).contains(&format!("cannot open MAILLOG {}", file.display())),
                    "{ctx}: {}",
                    said(&r)
                );
                assert!(env.dir.join("mail/root").exists(), "{ctx}: not delivered");
                for args in [&["-q"][..], &["-bv", "root"][..]] {
                    env.sendmail(args, b"").code(0);
                }
            } else {
                check_refused(&env, &at, &ctx);
            }
            let out = Command::new(admin())
                .args(["-C", env.conf.to_str().unwrap(), "check"])
                .output()
                .unwrap();
            let stdout = text(&out.stdout);
            assert_eq!(out.status.code(), Some(78), "{ctx}: {stdout}");
            let fail = stdout
                .lines()
                .find(|l| l.starts_with("FAIL files:") && l.contains(&at))
                .unwrap_or_else(|| panic!("{ctx}: no FAIL files line:\n{stdout}"));
            // A log file under a directory others may write: no mode of that
            // directory is to change (the system logger may need it); else the file is
            // made anew in a place that is root's alone.
            let repair = if *what == "MAILLOG" && !matches!(place, Place::UserFile) {
                "remove MAILLOG to log through syslog"
            } else {
                "make the file anew"
            };
            assert!(fail.contains(repair), "{ctx}: {fail}");
            assert!(
                !fail.contains("chown ") && !fail.contains("chmod "),
                "{ctx}: {fail}"
            );
            if *what == "MAILLOG" {
                // Root made nothing there, nor wrote to her file.
                let named = fs::symlink_metadata(&file).map(|m| m.len()).unwrap_or(0);
                assert_eq!(named, 0, "{ctx}: root wrote to the MAILLOG");
                assert!(
                    !stdout.contains("chown root:"),
                    "{ctx}: the maillog step still offers a chown: {stdout}"
                );
            }
            let _ = fs::remove_dir_all(&env.dir);
        }
    }
}

/// A message queued while ALIASES and RELAYTABLE were root's: once the configuration
/// names her files (`root:` to her mailbox, every domain to her server), root's queue
/// run refuses to run with 78; the message stays queued and nothing reaches her file.
#[test]
fn a_root_queue_run_never_routes_by_her_files() {
    if !can_switch_user() {
        return;
    }
    let env = Env::new();
    env.sendmail(&["-odq", "root", "r@remote.example"], MSG)
        .code(0);
    assert_eq!(env.entries().len(), 1);
    let u = test_user();
    let udir = env.dir.join("hers");
    fs::create_dir_all(&udir).unwrap();
    chown(&udir, Some(u.uid), Some(u.gid)).unwrap();
    let stolen = udir.join("rootmail");
    let aliases = udir.join("aliases");
    fs::write(&aliases, format!("root: {}\n", stolen.display())).unwrap();
    chown(&aliases, Some(u.uid), Some(u.gid)).unwrap();
    let relay = udir.join("relaytable");
    fs::write(&relay, "* [127.0.0.1]:1\n").unwrap();
    chown(&relay, Some(u.uid), Some(u.gid)).unwrap();
    for line in [
        format!("ALIASES {}\n", aliases.display()),
        format!("RELAYTABLE {}\n", relay.display()),
    ] {
        let original = fs::read_to_string(&env.conf).unwrap();
        env.add_config(&line);
        let r = env.sendmail(&["-q"], b"");
        r.code(78);
        assert!(said(&r).contains("is refused"), "{}", said(&r));
        assert_eq!(env.entries().len(), 1, "the message left the queue");
        assert!(!stolen.exists(), "root's mail reached her file");
        fs::write(&env.conf, original).unwrap();
    }
    // Root's own files: the run delivers root's copy.
    env.sendmail(&["-q"], b"");
    assert!(!stolen.exists());
    let _ = fs::remove_dir_all(&env.dir);
}

/// `-X` as root: a file a user owns, or one in her directory, is refused (78) and
/// nothing is written to it; the message is not taken.
#[test]
fn root_writes_no_traffic_log_a_user_could_change() {
    if !can_switch_user() {
        return;
    }
    for place in [Place::UserFile, Place::UserDir, Place::LinkIntoUserDir] {
        let env = Env::new();
        let file = place_file(&env, place, "traffic", "");
        let r = env.sendmail(&["-X", file.to_str().unwrap(), "-odq", "root"], MSG);
        r.code(78);
        assert!(
            said(&r).contains(&format!("owned by {TEST_USER}")),
            "{place:?}: {}",
            said(&r)
        );
        assert_eq!(fs::metadata(&file).unwrap().len(), 0, "{place:?}");
        assert!(env.entries().is_empty(), "{place:?}");
        let _ = fs::remove_dir_all(&env.dir);
    }
}

/// A user's own configuration and spool: her own aliases file in her own directory is
/// hers to trust, and her mail follows it.
#[test]
fn a_users_own_config_trusts_her_files() {
    if !can_switch_user() {
        return;
    }
    // Her mail goes to her mailbox only while no other test has a `.forward` of hers.
    let _turn = crate::local::forward_turn();
    let u = test_user();
    let d = std::env::temp_dir().join(format!("rsendmail-cf-own-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(d.join("mail")).unwrap();
    crate::harness::make_user_spool(&d.join("spool"));
    let target = d.join("mail").join(TEST_USER);
    fs::write(d.join("aliases"), format!("me: {TEST_USER}\n")).unwrap();
    fs::write(
        d.join("own.conf"),
        format!(
            "SPOOLDIR {}\nMAILNAME test.example\nALIASES {}\nMAILSPOOL {}\n",
            d.join("spool").display(),
            d.join("aliases").display(),
            d.join("mail").display()
        ),
    )
    .unwrap();
    for p in [
        d.clone(),
        d.join("mail"),
        d.join("aliases"),
        d.join("own.conf"),
    ] {
        chown(&p, Some(u.uid), Some(u.gid)).unwrap();
    }
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    let conf = d.join("own.conf");
    let out = as_user(
        &bin(),
        &["-C", conf.to_str().unwrap(), "-odi", "me"],
        &[],
        MSG,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        fs::read_to_string(&target)
            .unwrap_or_default()
            .contains("Subject"),
        "{}",
        text(&out.stderr)
    );
    let _ = fs::remove_dir_all(&d);
}

/// MAILSPOOL, where root makes and writes every user's mailbox, is held to the rule
/// too: a spool she owns, one below a directory of hers, or one a group or everyone may
/// write without the sticky bit is refused (78) by root's submission, queue run and
/// `-bv`, naming MAILSPOOL, its line and who could change it, and nothing is delivered
/// there; `rsendmail-admin check` fails it with a repair. The usual spools deliver: sticky
/// and open to all (1777, 3777), and root:mail 2775.
#[test]
fn root_refuses_a_mail_spool_others_could_change() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    for (case, why, repair) in [
        (
            "hers",
            format!("owned by {TEST_USER}"),
            "make the mail spool anew",
        ),
        (
            "below-hers",
            format!("owned by {TEST_USER}"),
            "make the mail spool anew",
        ),
        ("open", "writable by everyone".to_string(), "chmod +t "),
        ("group", "writable by its group".to_string(), "chmod +t "),
    ] {
        let env = Env::new();
        let spool = match case {
            "below-hers" => {
                let d = env.dir.join("hers");
                fs::create_dir(&d).unwrap();
                chown(&d, Some(u.uid), Some(u.gid)).unwrap();
                d.join("mail")
            }
            _ => env.dir.join("spool-mail"),
        };
        fs::create_dir(&spool).unwrap();
        match case {
            "hers" => chown(&spool, Some(u.uid), Some(u.gid)).unwrap(),
            "open" => fs::set_permissions(&spool, fs::Permissions::from_mode(0o777)).unwrap(),
            "group" => {
                chown(&spool, None, Some(u.gid)).unwrap();
                fs::set_permissions(&spool, fs::Permissions::from_mode(0o775)).unwrap();
            }
            _ => {}
        }
        env.add_config(&format!("MAILSPOOL {}\n", spool.display()));
        let line = fs::read_to_string(&env.conf).unwrap().lines().count();
        let at = format!(
            "{}: line {line}: MAILSPOOL {} is refused",
            env.conf.display(),
            spool.display()
        );
        let r = env.sendmail(&["-odi", "root"], MSG);
        r.code(78);
        assert!(said(&r).contains(&at), "{case}: {}", said(&r));
        assert!(said(&r).contains(&why), "{case}: {}", said(&r));
        assert!(env.entries().is_empty(), "{case}: something was queued");
        assert!(!spool.join("root").exists(), "{case}: delivered");
        for args in [&["-q"][..], &["-bv", "root"][..]] {
            let r = env.sendmail(args, b"");
            r.code(78);
            assert!(said(&r).contains(&at), "{case} {args:?}: {}", said(&r));
        }
        let out = Command::new(admin())
            .args(["-C", env.conf.to_str().unwrap(), "check"])
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(78), "{case}: {stdout}");
        let fail = stdout
            .lines()
            .find(|l| l.starts_with("FAIL files:") && l.contains(&at))
            .unwrap_or_else(|| panic!("{case}: no FAIL files line:\n{stdout}"));
        assert!(fail.contains(repair), "{case}: {fail}");
        assert!(!fail.contains("chown "), "{case}: {fail}");
        let _ = fs::remove_dir_all(&env.dir);
    }
    let mail = nix::unistd::Group::from_name("mail")
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw());
    let mut layouts = vec![("1777", 0o1777, None), ("3777", 0o3777, None)];
    if let Some(gid) = mail {
        layouts.push(("root:mail 2775", 0o2775, Some(gid)));
    }
    for (case, mode, group) in layouts {
        let env = Env::new();
        let spool = env.dir.join("spool-mail");
        fs::create_dir(&spool).unwrap();
        if let Some(gid) = group {
            chown(&spool, Some(0), Some(gid)).unwrap();
        }
        fs::set_permissions(&spool, fs::Permissions::from_mode(mode)).unwrap();
        env.add_config(&format!("MAILSPOOL {}\n", spool.display()));
        let r = env.sendmail(&["-odi", "root"], MSG);
        r.code(0);
        assert!(spool.join("root").exists(), "{case}: not delivered");
        let out = Command::new(admin())
            .args(["-C", env.conf.to_str().unwrap(), "check"])
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert!(
            !stdout
                .lines()
                .any(|l| l.starts_with("FAIL") && l.contains("MAILSPOOL")),
            "{case}: {stdout}"
        );
        let _ = fs::remove_dir_all(&env.dir);
    }
}
