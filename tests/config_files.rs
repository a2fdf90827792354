//! The files a configuration names, held to the rule the spool follows: a root process
//! refuses (78, naming the file, its config line and who could change it) a file it
//! reads for routing or credentials, or writes, that anyone but root could change: the
//! file itself, a directory on its path or a link followed on the way; `rsendmail-admin
//! check` fails each with a repair that changes nothing a user can swap. A user's own
//! configuration still trusts her.

use crate::harness::{Env, MSG, Run, TEST_USER, as_user, bin, can_switch_user, is_root, test_user};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
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
        said(&r).contains(&format!("owned by the user \"{TEST_USER}\"")),
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
            // Named as written: a keyword and its value, or an option's `O NAME=VALUE`.
            let named = match *what {
                "CACertFile" | "PidFile" => format!("O {what}="),
                _ => format!("{what} "),
            };
            let at = format!(
                "{}: line {line}: {named}{} is refused",
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
            let (fail, stdout) = check_fails(env.conf.to_str().unwrap(), "files", &at, &ctx);
            // A log file under a directory others may write: no mode of that
            // directory is to change (the system logger may need it); a file a user
            // owns in a directory that is root's alone is written anew in its place;
            // else the file is made anew in a place that is root's alone.
            let repair = if *what == "MAILLOG" && !matches!(place, Place::UserFile) {
                "remove MAILLOG to log through syslog"
            } else if *what != "MAILLOG" && matches!(place, Place::UserFile) {
                "write it anew in its place"
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

/// `hers` in `env`'s directory, made and owned by the test user.
fn her_dir(env: &Env) -> PathBuf {
    let u = test_user();
    let d = env.dir.join("hers");
    fs::create_dir(&d).unwrap();
    chown(&d, Some(u.uid), Some(u.gid)).unwrap();
    d
}

/// `rsendmail-admin -C conf check`, which must fail (78), and its `FAIL kind:` line that
/// names `at` (`ctx` names the case): that line and all it printed.
fn check_fails(conf: &str, kind: &str, at: &str, ctx: &str) -> (String, String) {
    let out = Command::new(admin())
        .args(["-C", conf, "check"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{ctx}: {stdout}");
    let fail = stdout
        .lines()
        .find(|l| l.starts_with(&format!("FAIL {kind}:")) && l.contains(at))
        .unwrap_or_else(|| panic!("{ctx}: no FAIL {kind} line:\n{stdout}"))
        .to_string();
    (fail, stdout)
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
    let udir = her_dir(&env);
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
    env.sendmail(&["-qf"], b"");
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
            said(&r).contains(&format!("owned by the user \"{TEST_USER}\"")),
            "{place:?}: {}",
            said(&r)
        );
        assert_eq!(fs::metadata(&file).unwrap().len(), 0, "{place:?}");
        assert!(env.entries().is_empty(), "{place:?}");
        let _ = fs::remove_dir_all(&env.dir);
    }
}

/// `-X` as root writes the file it checked, by no other name and through no link in
/// its place: another name of root's file (a hard link, as a user could make in a
/// sticky directory) is refused (78) and nothing is written to the file. `-X
/// /dev/stdout` writes where standard output goes (a file of root's), a pipe there is
/// refused (73, naming the link that leads to it, as any FIFO: never waited on), and
/// `-X /dev/null` is taken as it is.
#[test]
fn root_writes_the_traffic_log_it_checked() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let sticky = env.dir.join("sticky");
    fs::create_dir(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    let roots = env.dir.join("roots-file");
    fs::write(&roots, "").unwrap();
    fs::set_permissions(&roots, fs::Permissions::from_mode(0o644)).unwrap();
    let other = sticky.join("traffic");
    fs::hard_link(&roots, &other).unwrap();
    let r = env.sendmail(&["-X", other.to_str().unwrap(), "-odq", "root"], MSG);
    r.code(78);
    assert!(said(&r).contains("has 2 names"), "{}", said(&r));
    assert_eq!(fs::metadata(&roots).unwrap().len(), 0, "root wrote to it");
    assert!(env.entries().is_empty());
    // Standard output a file of root's: the traffic is there.
    let out = env.dir.join("stdout");
    let st = {
        use std::io::Write;
        let mut child = Command::new(env.link("sendmail"))
            .args(["-C", env.conf.to_str().unwrap()])
            .args(["-X", "/dev/stdout", "-odq", "root"])
            .stdin(std::process::Stdio::piped())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(MSG).unwrap();
        child.wait_with_output().unwrap()
    };
    assert_eq!(st.status.code(), Some(0), "{}", text(&st.stderr));
    let logged = fs::read_to_string(&out).unwrap();
    assert!(logged.contains("<<< Subject: test"), "{logged}");
    // Standard output a pipe.
    let r = env.sendmail(&["-X", "/dev/stdout", "-odq", "root"], MSG);
    r.code(73);
    assert!(
        said(&r).contains("cannot open /dev/stdout: the symbolic link ")
            && said(&r).contains("pipe:["),
        "{}",
        said(&r)
    );
    env.sendmail(&["-X", "/dev/null", "-odq", "root"], MSG)
        .code(0);
    let _ = fs::remove_dir_all(&env.dir);
}

/// The aliases file named by the AliasFile option (`O AliasFile=`, `OA` in the
/// configuration; `-oA`, `-O AliasFile=` on the command line) and refused as root is
/// named as the option was written, with its line or the command line, by the programs
/// and by `rsendmail-admin check`.
#[test]
fn an_alias_file_option_is_named_as_written() {
    if !can_switch_user() {
        return;
    }
    let env = Env::new();
    let file = place_file(&env, Place::UserFile, "aliases", "root: /dev/null\n");
    let p = file.display().to_string();
    let original = fs::read_to_string(&env.conf).unwrap();
    let cases: [(Option<String>, Vec<String>, &str); 4] = [
        (Some(format!("O AliasFile={p}\n")), vec![], "O AliasFile="),
        (Some(format!("OA{p}\n")), vec![], "OA"),
        (None, vec![format!("-oA{p}")], "-oA"),
        (
            None,
            vec!["-O".to_string(), format!("AliasFile={p}")],
            "-O AliasFile=",
        ),
    ];
    for (line, args, named) in cases {
        fs::write(&env.conf, &original).unwrap();
        let at = match &line {
            Some(l) => {
                env.add_config(l);
                let n = fs::read_to_string(&env.conf).unwrap().lines().count();
                format!("{}: line {n}: ", env.conf.display())
            }
            None => "the command line: ".to_string(),
        };
        let want = format!("{at}{named}{p} is refused");
        let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
        full.extend(["-odi", "root"]);
        let r = env.sendmail(&full, MSG);
        r.code(78);
        assert!(said(&r).contains(&want), "{named}: {}", said(&r));
        let mut check = vec!["-C", env.conf.to_str().unwrap(), "check"];
        check.extend(args.iter().map(String::as_str));
        let out = Command::new(admin()).args(&check).output().unwrap();
        let stdout = text(&out.stdout);
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("FAIL files:") && l.contains(&want)),
            "{named}: {stdout}"
        );
    }
    let _ = fs::remove_dir_all(&env.dir);
}

/// A user's process (not root's) holds MAILLOG to the rule with her as trusted: a log
/// file in a directory another user owns is not opened, the run says so without a word
/// of root and logs to syslog, and `rsendmail-admin check`'s line for it says what the
/// programs do (never "root writes").
#[test]
fn a_users_run_opens_no_maillog_another_user_could_change() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let d = std::env::temp_dir().join(format!("rsendmail-cf-log-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    crate::harness::make_user_spool(&d.join("spool"));
    let theirs = d.join("theirs");
    fs::create_dir(&theirs).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o777)).unwrap();
    let other = crate::harness::other_user();
    chown(&theirs, Some(other.uid), Some(other.gid)).unwrap();
    let log = theirs.join("maillog");
    let conf = d.join("own.conf");
    fs::write(
        &conf,
        format!(
            "SPOOLDIR {}\nMAILNAME test.example\nMAILLOG {}\n",
            d.join("spool").display(),
            log.display()
        ),
    )
    .unwrap();
    chown(&conf, Some(u.uid), Some(u.gid)).unwrap();
    let c = conf.to_str().unwrap();
    let out = as_user(&bin(), &["-C", c, "-odq", "bob@example.org"], &[], MSG);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "cannot open MAILLOG {}: the directory {}",
            log.display(),
            theirs.display()
        )),
        "{said}"
    );
    assert!(!said.contains("root"), "{said}");
    assert!(!log.exists(), "her run wrote to the log in their directory");
    let out = as_user(&admin(), &["-C", c, "check"], &[], b"");
    let stdout = text(&out.stdout);
    let fail = stdout
        .lines()
        .find(|l| l.starts_with("FAIL files:") && l.contains("MAILLOG"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        fail.contains("chooses what the programs write to") && !fail.contains("root writes"),
        "{fail}"
    );
    let _ = fs::remove_dir_all(&d);
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
            format!("owned by the user \"{TEST_USER}\""),
            "make the mail spool anew",
        ),
        (
            "below-hers",
            format!("owned by the user \"{TEST_USER}\""),
            "make the mail spool anew",
        ),
        ("open", "writable by everyone".to_string(), "chmod +t "),
        ("group", "writable by its group".to_string(), "chmod +t "),
    ] {
        let env = Env::new();
        let spool = match case {
            "below-hers" => {
                let d = her_dir(&env);
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
        let (fail, _) = check_fails(env.conf.to_str().unwrap(), "files", &at, case);
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

/// The configuration file itself is held to the rule of the files it names: root's
/// submission, queue run and `-bv` refuse (78) a configuration that anyone but root could
/// change (her file behind root's link, root's file in her directory or behind a link
/// into it, an ACL that lets her write the file or its directory, a directory writable
/// by its group), naming it as the configuration file and what is at fault; nothing is
/// queued or delivered. So do the listings (`-bp`, `mailq`, `rsendmail-admin list` and
/// `show`) and `rsendmail-admin init`, which makes and changes nothing.
/// `rsendmail-admin check` fails it on its config line, never says `ok config`, and
/// offers no chown or chmod of a path she can change.
#[test]
fn root_refuses_a_configuration_file_a_user_could_change() {
    if !can_switch_user() {
        return;
    }
    let has_setfacl = Command::new("setfacl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_setfacl {
        println!("setfacl is missing: the ACL cases are skipped");
    }
    let u = test_user();
    for case in [
        "link to her file",
        "in her directory",
        "link into her directory",
        "ACL on the file",
        "ACL on its directory",
        "directory writable by group root",
    ] {
        if case.starts_with("ACL") && !has_setfacl {
            continue;
        }
        let env = Env::new();
        let udir = her_dir(&env);
        let setfacl = |p: &Path| {
            let ok = Command::new("setfacl")
                .args(["-m", &format!("u:{}:rwx", u.uid)])
                .arg(p)
                .status()
                .unwrap();
            assert!(ok.success(), "{case}: setfacl failed");
        };
        let acl_user = format!("given write by an access ACL for the user \"{TEST_USER}\"");
        // The configuration root is given, and what the messages must name.
        let (conf, fault) = match case {
            "link to her file" => {
                let hers = udir.join("u.conf");
                fs::copy(&env.conf, &hers).unwrap();
                chown(&hers, Some(u.uid), Some(u.gid)).unwrap();
                fs::remove_file(&env.conf).unwrap();
                symlink(&hers, &env.conf).unwrap();
                (
                    env.conf.clone(),
                    format!("owned by the user \"{TEST_USER}\""),
                )
            }
            "in her directory" => {
                let p = udir.join("r.conf");
                fs::copy(&env.conf, &p).unwrap();
                (p, format!("owned by the user \"{TEST_USER}\""))
            }
            "link into her directory" => {
                fs::copy(&env.conf, udir.join("r.conf")).unwrap();
                let link = env.dir.join("rd");
                symlink(&udir, &link).unwrap();
                (
                    link.join("r.conf"),
                    format!("owned by the user \"{TEST_USER}\""),
                )
            }
            "ACL on the file" => {
                setfacl(&env.conf);
                (env.conf.clone(), acl_user.clone())
            }
            "ACL on its directory" => {
                setfacl(&env.dir);
                (env.conf.clone(), acl_user.clone())
            }
            _ => {
                fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o775)).unwrap();
                (env.conf.clone(), "writable by its group".to_string())
            }
        };
        let c = conf.to_str().unwrap();
        let at = format!("the configuration file {c} is refused: ");
        let sendmail = env.link("sendmail");
        for args in [&["-odi", "root"][..], &["-q"][..], &["-bv", "root"][..]] {
            let full: Vec<&str> = ["-C", c].iter().chain(args).copied().collect();
            let r = env.run_raw(&sendmail, &full, MSG);
            r.code(78);
            let said = said(&r);
            assert!(said.contains(&at), "{case} {args:?}: {said}");
            assert!(said.contains(&fault), "{case} {args:?}: {said}");
        }
        assert!(env.entries().is_empty(), "{case}: something was queued");
        assert!(!env.dir.join("mail/root").exists(), "{case}: delivered");
        // The listings read the spool it chooses: refused too, as every program
        // refuses it (the same words).
        for (program, args) in [(&sendmail, &["-bp"][..]), (&env.link("mailq"), &[][..])] {
            let full: Vec<&str> = ["-C", c].iter().chain(args).copied().collect();
            let r = env.run_raw(program, &full, b"");
            r.code(78);
            let said = said(&r);
            assert!(said.contains(&at), "{case} {program:?} {args:?}: {said}");
            assert!(said.contains(&fault), "{case} {program:?} {args:?}: {said}");
        }
        // The queue commands act on the spool it chooses: refused too; `init` makes
        // and changes nothing in it.
        let spool_mode = fs::metadata(&env.spool).unwrap().mode();
        for args in [
            &["list"][..],
            &["config"],
            &["show", "AAAA00000000"],
            &["init", "--group", crate::harness::fit_group().0],
        ] {
            let out = Command::new(admin())
                .args(["-C", c])
                .args(args)
                .output()
                .unwrap();
            let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert_eq!(out.status.code(), Some(78), "{case} {args:?}: {said}");
            assert!(said.contains(&at), "{case} {args:?}: {said}");
            assert!(said.contains(&fault), "{case} {args:?}: {said}");
        }
        assert_eq!(
            fs::metadata(&env.spool).unwrap().mode(),
            spool_mode,
            "{case}"
        );
        assert!(
            !env.spool.join("tmp").exists(),
            "{case}: init made the spool"
        );
        let (fail, stdout) = check_fails(c, "config", &at, case);
        assert!(fail.contains(&fault), "{case}: {fail}");
        assert!(
            !stdout.lines().any(|l| l.starts_with("ok   config ")),
            "{case}: {stdout}"
        );
        assert!(!fail.contains("chown "), "{case}: {fail}");
        if case.contains("her") {
            assert!(
                !fail.contains("chmod ") && fail.contains("make the file anew"),
                "{case}: {fail}"
            );
        }
        // An ACL is removed, not only masked by a chmod that `chmod g+w` undoes.
        if let Some(p) = match case {
            "ACL on the file" => Some(conf.clone()),
            "ACL on its directory" => Some(env.dir.clone()),
            _ => None,
        } {
            let p = p.display();
            assert!(
                fail.contains(&format!("setfacl -b {p} && chmod go-w {p}")),
                "{case}: {fail}"
            );
        }
        let _ = Command::new("setfacl").arg("-b").arg(&env.dir).status();
        let _ = fs::remove_dir_all(&env.dir);
    }
}

/// The system configuration a link of root's leads to a user's file: `rsendmail-admin
/// check` fails it naming the link's target and its owner, and its repair is to make the
/// file anew at the system configuration's own path: no chown or chmod, which would
/// follow the link into her file (and leave it hers to replace). Her file is untouched.
#[test]
fn check_never_repairs_the_system_configuration_through_a_users_link() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let env = Env::new();
    let udir = her_dir(&env);
    let hers = udir.join("u.conf");
    fs::copy(&env.conf, &hers).unwrap();
    chown(&hers, Some(u.uid), Some(u.gid)).unwrap();
    let link = env.dir.join("system.conf");
    symlink(&hers, &link).unwrap();
    let out = Command::new(admin())
        .arg("check")
        .env("RSENDMAIL_SYSTEM_CONFIG", &link)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{stdout}");
    let fail = stdout
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "FAIL config: the configuration file {} is refused: ",
                link.display()
            ))
        })
        .unwrap_or_else(|| panic!("no FAIL config line:\n{stdout}"));
    assert!(
        fail.contains(&format!("owned by the user \"{TEST_USER}\"")),
        "{fail}"
    );
    assert!(
        fail.contains(&format!("make {} anew", link.display())),
        "{fail}"
    );
    assert!(
        !fail.contains("chown ") && !fail.contains("chmod "),
        "{fail}"
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("ok   config ")),
        "{stdout}"
    );
    let _ = fs::remove_dir_all(&env.dir);
}

/// A configuration file's errors quote its lines only when everyone may read it: a file
/// named by mistake with `-C` (one only root may read, as `/etc/shadow` or auth.conf)
/// gets its line number and what is wrong from `rsendmail`, `rsendmail-admin check`
/// and `config`, never its text; a file everyone may read is quoted as before.
#[test]
fn config_errors_never_quote_a_file_not_everyone_may_read() {
    let env = Env::new();
    let secret = env.dir.join("secret.conf");
    fs::write(
        &secret,
        "# a comment\nalice|127.0.0.1:S3cretPW\nPORT hunter2\n",
    )
    .unwrap();
    let admin_said = |conf: &Path, command: &str| {
        let out = Command::new(admin())
            .args(["-C", conf.to_str().unwrap(), command])
            .output()
            .unwrap();
        (
            out.status.code(),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    };
    let sendmail = env.link("sendmail");
    for mode in [0o600, 0o640] {
        fs::set_permissions(&secret, fs::Permissions::from_mode(mode)).unwrap();
        let c = secret.to_str().unwrap();
        let r = env.run_raw(&sendmail, &["-C", c, "-bv", "root"], b"");
        r.code(78);
        let s = said(&r);
        assert!(!s.contains("S3cretPW"), "{mode:o}: {s}");
        assert!(
            s.contains(&format!("{c}: line 2: not a keyword rsendmail knows (its text is not shown: the file is not readable by everyone)")),
            "{mode:o}: {s}"
        );
        for command in ["check", "config"] {
            let (code, s) = admin_said(&secret, command);
            assert_eq!(code, Some(78), "{mode:o} {command}: {s}");
            assert!(
                !s.contains("S3cretPW") && !s.contains("hunter2"),
                "{mode:o} {command}: {s}"
            );
            assert!(
                s.contains(&format!("{c}: line 2: ")),
                "{mode:o} {command}: {s}"
            );
        }
        // check reads on past the first error: the second names its keyword alone.
        let (_, s) = admin_said(&secret, "check");
        assert!(
            s.contains(&format!(
                "{c}: line 3: the PORT line is not valid (its text is not shown"
            )),
            "{mode:o}: {s}"
        );
    }
    // Everyone may read it: what is wrong is quoted, as ever.
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let (_, s) = admin_said(&secret, "check");
    assert!(
        s.contains("line 2: unknown keyword alice|127.0.0.1:S3cretPW"),
        "{s}"
    );
    assert!(s.contains("line 3: invalid PORT hunter2"), "{s}");
}

/// A configuration line that is not UTF-8 (a value in ISO 8859-1) is refused with its
/// line and the octet, exit 78, nothing queued: read on, its value would be another
/// (each such octet taken as U+FFFD). A comment line may hold any octets.
#[test]
fn a_configuration_line_not_utf8_is_refused_a_comment_is_not() {
    let env = Env::new();
    let base = std::fs::read(&env.conf).unwrap();
    let mut with_comment = base.clone();
    with_comment.extend_from_slice(b"# M\xfcller's relay\nO MaxHopCount=20 # n\xf6tig\n");
    std::fs::write(&env.conf, &with_comment).unwrap();
    env.sendmail(&["-odq", "bob@example.org"], b"Subject: a\n\nx\n")
        .code(0);
    let before = env.entries().len();
    let mut bad = with_comment.clone();
    bad.extend_from_slice(b"O MaxHopCount=5\xff\n");
    std::fs::write(&env.conf, &bad).unwrap();
    let n = bad.split(|&b| b == b'\n').count() - 1;
    let r = env.sendmail(&["-odq", "bob@example.org"], b"Subject: b\n\nx\n");
    r.code(78);
    assert!(
        said(&r).contains(&format!(
            "{}: line {n}: not UTF-8 text (the octet \\377)",
            env.conf.display()
        )),
        "{}",
        said(&r)
    );
    assert_eq!(env.entries().len(), before);
    // `check` fails the same line in the same words (it read it as U+FFFD before).
    let r = env.run_raw(&admin(), &["-C", env.conf.to_str().unwrap(), "check"], b"");
    r.code(78);
    assert!(
        r.stdout.contains(&format!(
            "FAIL config: {}: line {n}: not UTF-8 text (the octet \\377)",
            env.conf.display()
        )) && !r.stdout.contains('\u{fffd}'),
        "{}",
        r.stdout
    );
}

/// The file's `O DeliveryMode=`: a bad value is a configuration in error for `config`
/// and `check` (78, the file and line, the whole value), the programs keeping sendmail's
/// status for it; a value of which the first character alone is read (`b extra`) is
/// warned of by both, and `config` shows the mode in force, not the text.
#[test]
fn the_files_delivery_mode_is_checked_whole() {
    let env = Env::with_config("O DeliveryMode=zzz\n");
    let c = env.conf.to_str().unwrap();
    let at = format!("{c}: line 6: Unknown delivery mode zzz");
    for command in ["config", "check"] {
        let r = env.run_raw(&admin(), &["-C", c, command], b"");
        r.code(78);
        assert!(said(&r).contains(&at), "{command}: {}", said(&r));
    }
    let env = Env::with_config("O DeliveryMode=b extra\n");
    let c = env.conf.to_str().unwrap();
    let warning = format!(
        "{c}: line 6: O DeliveryMode=b extra: only its first character, b, is read (write O \
         DeliveryMode=b)"
    );
    let r = env.run_raw(&admin(), &["-C", c, "config"], b"");
    r.code(0);
    assert!(
        r.stderr
            .contains(&format!("rsendmail-admin: warning: {warning}")),
        "{}",
        said(&r)
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("O DeliveryMode=b    # ")),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("=b extra"), "{}", r.stdout);
    let r = env.run_raw(&admin(), &["-C", c, "check"], b"");
    assert!(
        r.stdout
            .lines()
            .any(|l| l == format!("warn config: {warning}")),
        "{}",
        r.stdout
    );
    // The full name of a mode is read whole: no warning.
    let env = Env::with_config("O DeliveryMode=queueonly\n");
    let c = env.conf.to_str().unwrap();
    let r = env.run_raw(&admin(), &["-C", c, "config"], b"");
    r.code(0);
    assert!(!r.stderr.contains("warning"), "{}", said(&r));
}

/// A configuration every program refuses is refused by `config` too (78, on stderr,
/// the file and line and why, as the programs say it), never shown as in force: a
/// SPOOLDIR inside another spool, an auth.conf with a repeated host or an empty
/// password.
#[test]
fn config_refuses_what_the_programs_refuse() {
    let env = Env::new();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let hold = env.spool.join("hold");
    fs::create_dir_all(&hold).unwrap();
    let base = fs::read_to_string(&env.conf).unwrap();
    let c = env.conf.to_str().unwrap();
    let inner = env.dir.join("inner.conf");
    fs::write(
        &inner,
        format!("MAILNAME test.example\nSPOOLDIR {}\n", hold.display()),
    )
    .unwrap();
    let r = env.run_raw(&admin(), &["-C", inner.to_str().unwrap(), "config"], b"");
    r.code(78);
    assert!(
        r.stderr.contains(&format!(
            "{}: line 2: SPOOLDIR {}: it is inside the rsendmail spool {}",
            inner.display(),
            hold.display(),
            env.spool.display()
        )) && r.stdout.is_empty(),
        "{}",
        said(&r)
    );
    let auth = env.dir.join("auth.conf");
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    for (body, why) in [
        (
            "bob|127.0.0.1:pw\nann|127.0.0.1:pw2\n",
            "again; one line per host",
        ),
        ("bob|127.0.0.1:\n", "line 1"),
    ] {
        fs::write(&auth, body).unwrap();
        fs::set_permissions(&auth, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&env.conf, format!("{base}AUTHPATH {}\n", auth.display())).unwrap();
        // What a submission says of it.
        let sub = env.sendmail(&["-odq", "bob@example.org"], MSG);
        sub.code(78);
        let refusal = said(&sub);
        let refusal = refusal.trim_end();
        assert!(refusal.contains(why), "{refusal}");
        let r = env.run_raw(&admin(), &["-C", c, "config"], b"");
        r.code(78);
        assert!(
            r.stderr.contains(refusal) && r.stdout.is_empty(),
            "{refusal}\n{}",
            said(&r)
        );
    }
}
