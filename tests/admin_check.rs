//! `rsendmail-admin check` and `rsendmail-admin config` through the real programs: the
//! check against aiosmtpd with STARTTLS and AUTH (certificates made by openssl), a wrong
//! certificate, a wrong password, a closed port, dnsmasq, the `--to` probe; the
//! configuration's problems with their lines; `config`'s values and their origins.

use crate::harness::{Env, Run, copy_executable, is_root};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// An install in the scratch directory: copies of the three programs side by side (the
/// admin program finds `rsendmail` and `rsendmail-deliver` beside itself), `rsendmail`
/// set-gid to its group, which is the spool's; the spool made with the modes it has
/// (2770 shared when root runs the tests, 0700 a user's own otherwise).
fn install(env: &Env) -> PathBuf {
    let bin = env.dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for (name, from) in [
        ("rsendmail", env!("CARGO_BIN_EXE_rsendmail")),
        ("rsendmail-deliver", env!("CARGO_BIN_EXE_rsendmail-deliver")),
        ("rsendmail-admin", env!("CARGO_BIN_EXE_rsendmail-admin")),
    ] {
        copy_executable(&PathBuf::from(from), &bin.join(name));
    }
    fs::set_permissions(bin.join("rsendmail"), fs::Permissions::from_mode(0o2755)).unwrap();
    fs::create_dir_all(&env.spool).unwrap();
    let mode = if is_root() { 0o2770 } else { 0o700 };
    fs::set_permissions(&env.spool, fs::Permissions::from_mode(mode)).unwrap();
    bin.join("rsendmail-admin")
}

fn admin(env: &Env, args: &[&str]) -> Run {
    let prog = install(env);
    let mut full = vec!["-C", env.conf.to_str().unwrap()];
    full.extend_from_slice(args);
    env.run_raw(&prog, &full, b"")
}

/// The line of `step` in the check's output, or a panic showing the output.
#[track_caller]
fn line<'a>(r: &'a Run, start: &str) -> &'a str {
    r.stdout
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line {start:?} in:\n{}\n{}", r.stdout, r.stderr))
}

#[test]
fn config_prints_each_value_and_where_it_came_from() {
    let env = Env::with_config("SMARTHOST relay.example\nO MaxHopCount=7\n");
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, "bob|relay.example:pw-secret\n").unwrap();
    fs::set_permissions(&auth, fs::Permissions::from_mode(0o600)).unwrap();
    env.add_config(&format!("AUTHPATH {}\n", auth.display()));
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["config", "-O", "Timeout.connect=9s"]);
    r.code(0);
    line(&r, &format!("SMARTHOST relay.example    # {conf}: line 6"));
    line(&r, &format!("O MaxHopCount=7    # {conf}: line 7"));
    line(&r, "O Timeout.connect=9s    # command line");
    // Defaults: a keyword not set, one with a built-in value, an option.
    line(&r, "CERTFILE    # default (not set)");
    line(&r, "PORT 25    # default");
    line(&r, "STARTTLS no    # default");
    line(&r, "O HoldExpensive    # default");
    assert!(!r.stdout.contains("pw-secret"), "{}", r.stdout);
    // Every keyword and every option of the table is there.
    assert!(r.stdout.lines().count() > 150, "{}", r.stdout);
    // An unknown option, on the command line and in the file.
    let r = admin(&env, &["config", "-O", "Bogus=1"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stdout.contains("readcf: unknown option name Bogus"),
        "{}",
        r.stdout
    );
    env.add_config("O Bogus=2\n");
    let r = admin(&env, &["config"]);
    r.code(78);
    assert!(
        r.stdout.contains(&format!(
            "{conf}: line 12: readcf: unknown option name Bogus"
        )),
        "{}",
        r.stdout
    );
}
