//! `rsendmail-admin check` and `rsendmail-admin config` through the real programs: the
//! check against aiosmtpd with STARTTLS and AUTH (certificates made by openssl), a wrong
//! certificate, a wrong password, a closed port, dnsmasq, the `--to` probe; the
//! configuration's problems with their lines; `config`'s values and their origins.

use crate::harness::servers::{Daemon, DnsServer, Peer, have_peer};
use crate::harness::{
    Env, MSG, Run, TEST_USER, as_user, can_switch_user, closed_tcp_port, copy_executable, is_root,
    test_user, write_config,
};
use crate::tls::{Pki, tls_peer};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An install in the scratch directory: copies of the three programs side by side (the
/// admin program finds `rsendmail` and `rsendmail-deliver` beside itself), `rsendmail`
/// and `rsendmail-admin` set-gid to its group, which is the spool's; the spool made with the modes it has
/// (2770 root and the test user's group, as `init --group` makes it, when root runs
/// the tests; 0700 a user's own otherwise).
fn install(env: &Env) -> PathBuf {
    let bin = env.dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    copy_programs(&bin);
    // The spool as a queue has used it: its `tmp/` there (a spool made before keeps its
    // group: `init::kept_group`).
    fs::create_dir_all(env.spool.join("tmp")).unwrap();
    if is_root() {
        let gid = spool_gid();
        std::os::unix::fs::chown(bin.join("rsendmail"), Some(0), Some(gid)).unwrap();
        // rsendmail-admin too, as the package installs it (users act on their entries).
        std::os::unix::fs::chown(bin.join("rsendmail-admin"), Some(0), Some(gid)).unwrap();
        chmod(bin.join("rsendmail-admin"), 0o2755);
        // What is in it already (a test's earlier submissions) too, as init leaves it.
        chown_r(&env.spool, &format!("0:{gid}"));
        // Users' deliveries read auth.conf with the spool's group.
        let auth = env.dir.join("auth.conf");
        if auth.exists() {
            std::os::unix::fs::chown(&auth, None, Some(gid)).unwrap();
        }
    }
    chmod(bin.join("rsendmail"), 0o2755);
    for d in [env.spool.clone(), env.spool.join("tmp")] {
        chmod(d, if is_root() { 0o2770 } else { 0o700 });
    }
    bin.join("rsendmail-admin")
}

/// Copies of the three programs in `bin`, mode 0755.
fn copy_programs(bin: &Path) {
    for (name, from) in [
        ("rsendmail", env!("CARGO_BIN_EXE_rsendmail")),
        ("rsendmail-deliver", env!("CARGO_BIN_EXE_rsendmail-deliver")),
        ("rsendmail-admin", env!("CARGO_BIN_EXE_rsendmail-admin")),
    ] {
        copy_executable(&PathBuf::from(from), &bin.join(name));
        chmod(bin.join(name), 0o755);
    }
}

/// [`install`], and a run of the installed `rsendmail-admin -C <config> check`:
/// (the installed `rsendmail-admin`, the run).
fn install_check(env: &Env) -> (PathBuf, impl Fn() -> Run + '_) {
    let prog = install(env);
    let at = prog.clone();
    (prog, move || run_admin(env, &at, "check"))
}

/// An [`install`] for a test that needs root (and, with `user`, a test user to switch
/// to): the scratch env (what it derefs to) and its installed `rsendmail-admin`; None,
/// the test then skipped, otherwise.
struct Installed {
    env: Env,
    prog: PathBuf,
}

impl std::ops::Deref for Installed {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

impl Installed {
    /// A run of the installed `rsendmail-admin -C <config> check`.
    fn check(&self) -> Run {
        run_admin(&self.env, &self.prog, "check")
    }
}

fn root_install(user: bool) -> Option<Installed> {
    if !is_root() || (user && !can_switch_user()) {
        return None;
    }
    let env = Env::new();
    let prog = install(&env);
    Some(Installed { env, prog })
}

/// `prog -C <config> command`.
fn run_admin(env: &Env, prog: &Path, command: &str) -> Run {
    env.run_raw(prog, &["-C", env.conf.to_str().unwrap(), command], b"")
}

/// `chmod mode p`.
fn chmod(p: impl AsRef<Path>, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// `chgrp gid p` then `chmod mode p`.
fn chgrp_chmod(p: impl AsRef<Path>, gid: u32, mode: u32) {
    std::os::unix::fs::chown(&p, None, Some(gid)).unwrap();
    chmod(p, mode);
}

/// `chown -R owner dir` (`owner` as chown takes it: `UID:GID`, `NAME:NAME`).
fn chown_r(dir: &Path, owner: &str) {
    let st = std::process::Command::new("chown")
        .arg("-R")
        .arg(owner)
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

/// `mkfifo -m 0620 p`, as the queue runner makes its wake-up endpoint.
fn mkfifo(p: &Path) {
    assert!(
        std::process::Command::new("mkfifo")
            .args(["-m", "0620"])
            .arg(p)
            .status()
            .unwrap()
            .success()
    );
}

/// An auth.conf in the env's directory with one line for 127.0.0.1, `mode`, named by
/// AUTHPATH.
fn auth_conf(env: &Env, mode: u32) -> PathBuf {
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, "bob|127.0.0.1:pw\n").unwrap();
    chmod(&auth, mode);
    env.add_config(&format!("AUTHPATH {}\n", auth.display()));
    auth
}

/// The command of a check line's ` (fix: COMMAND)`, if it has one.
fn fix_of(l: &str) -> Option<&str> {
    let at = l.rfind(" (fix: ")?;
    l.get(at + 7..)?.strip_suffix(')')
}

/// Every fix command in the check's output, in order.
fn fixes_in(out: &str) -> Vec<String> {
    out.lines().filter_map(fix_of).map(str::to_string).collect()
}

/// `sh -c cmd`, its output not kept: how it ended.
fn sh(cmd: &str) -> std::process::ExitStatus {
    crate::harness::printed_fix(cmd)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
}

/// The name of the group `gid`.
fn group_name(gid: u32) -> String {
    group(gid).name
}

/// The group `gid`.
fn group(gid: u32) -> nix::unistd::Group {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .unwrap()
        .unwrap()
}

/// `rsendmail-admin` of the install made plain (0755): a set-gid one takes no
/// `rsendmail-deliver` beside it that is not root's alone, and `check` then looks at the
/// installed one; plain, it checks the one beside it (and fails itself, with its fix).
fn plain_admin(env: &Env) {
    chmod(env.dir.join("bin/rsendmail-admin"), 0o755);
}

/// The group the tests' system spool belongs to: one fit for a spool, as check wants
/// it ([`crate::harness::fit_group`]).
fn spool_gid() -> u32 {
    crate::harness::fit_group().1
}

fn admin(env: &Env, args: &[&str]) -> Run {
    admin_of(env, &install(env), args)
}

/// `prog -C <config> args...`.
fn admin_of(env: &Env, prog: &Path, args: &[&str]) -> Run {
    let mut full = vec!["-C", env.conf.to_str().unwrap()];
    full.extend_from_slice(args);
    env.run_raw(prog, &full, b"")
}

/// The line of `step` in the check's output, or a panic showing the output.
#[track_caller]
fn line<'a>(r: &'a Run, start: &str) -> &'a str {
    r.stdout
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line {start:?} in:\n{}\n{}", r.stdout, r.stderr))
}

fn no_fail(r: &Run) {
    assert!(
        !r.stdout.contains("FAIL"),
        "{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
}

/// A smarthost with STARTTLS (a certificate for 127.0.0.1 the test CA signed) and AUTH
/// (bob / s3cret-pw), and a config for it with `pass` in auth.conf (mode 0600).
fn tls_auth(cert: &str, pass: &str) -> Option<(Env, Pki, Peer, Env)> {
    if !have_peer() {
        return None;
    }
    let env0 = Env::new();
    let pki = Pki::make(&env0.dir)?;
    let peer = tls_peer(
        &env0,
        &pki,
        cert,
        "starttls",
        &[("AUTH_USER", "bob"), ("AUTH_PASS", "s3cret-pw")],
    );
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nSTARTTLS\nO CACertFile={}\nO Timeout.connect=5s\n",
        peer.port,
        pki.path("ca.pem")
    ));
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, format!("bob|127.0.0.1:{pass}\n")).unwrap();
    // Readable by the spool's group (the files are root's when root runs the tests).
    chmod(&auth, 0o640);
    env.add_config(&format!("AUTHPATH {}\n", auth.display()));
    Some((env, pki, peer, env0))
}

/// A fresh aiosmtpd peer and a config with it as the SMARTHOST: (the peer's scratch
/// env, the peer, the config's env); `None` without aiosmtpd.
fn smarthost_peer() -> Option<(Env, Peer, Env)> {
    if !have_peer() {
        return None;
    }
    let env0 = Env::new();
    let peer = Peer::start(&env0.dir, &[]);
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nO Timeout.connect=5s\n",
        peer.port
    ));
    Some((env0, peer, env))
}

#[test]
fn all_steps_pass_against_a_tls_and_auth_smarthost() {
    let Some((env, _pki, peer, _keep)) = tls_auth("srv", "s3cret-pw") else {
        return;
    };
    let r = admin(&env, &["check"]);
    r.code(0);
    no_fail(&r);
    for step in [
        "ok   config ",
        "ok   mailname test.example",
        "ok   spool ",
        "ok   binary ",
        "ok   auth.conf ",
        "ok   dns 127.0.0.1",
        "ok   connect 127.0.0.1 [127.0.0.1] port",
        "ok   greeting 220 ",
        "ok   ehlo ",
    ] {
        line(&r, step);
    }
    // The list offered in clear text (STARTTLS, no AUTH yet), then after STARTTLS.
    let before = line(&r, "ok   ehlo ");
    assert!(before.contains("STARTTLS"), "{}", r.stdout);
    let after = line(&r, "ok   ehlo after STARTTLS: ");
    let offered = after.strip_prefix("ok   ehlo after STARTTLS: ").unwrap();
    assert!(
        offered.contains("AUTH") && !offered.contains("STARTTLS"),
        "{after}"
    );
    let at = |l: &str| r.stdout.find(l).unwrap();
    assert!(at(before) < at("ok   tls ") && at("ok   tls ") < at(after));
    let tls = line(&r, "ok   tls ");
    assert!(
        tls.contains(
            "STARTTLS, certificate verified: subject CN=test; issuer CN=rsendmail test CA; expires "
        ) && tls.contains("SHA-256 "),
        "{tls}"
    );
    line(&r, "ok   auth 127.0.0.1 accepted the credentials");
    assert!(
        !r.stdout.contains("s3cret-pw") && !r.stdout.contains("bob"),
        "credentials shown:\n{}",
        r.stdout
    );
    let t = peer.transcript();
    assert!(t.contains("AUTH PLAIN ok"), "{t}");
    // Without --to: MAIL with the sender, then RSET, never RCPT or DATA.
    assert!(t.contains("MAIL FROM:<") && t.contains("RSET"), "{t}");
    assert!(
        !t.contains("RCPT") && !t.contains("DATA"),
        "no RCPT without --to: {t}"
    );
    line(&r, "ok   mail MAIL FROM:<");
}

/// A set-id `rsendmail-admin` (set-gid here, run by root: its group differs from
/// root's) starts the deliverer of the network steps with no environment but `PATH`, as
/// `rsendmail` execs it: the caller's `SSL_CERT_FILE` naming a CA the configuration
/// does not trust does not make the TLS step (and the AUTH with the system's
/// credentials) pass.
#[test]
fn a_setid_check_passes_no_environment_to_the_deliverer() {
    if !is_root() {
        return;
    }
    let Some((env, pki, _peer, _keep)) = tls_auth("srv", "s3cret-pw") else {
        return;
    };
    // The configuration trusts no CA of its own: only the system's.
    let conf = fs::read_to_string(&env.conf).unwrap();
    let ca_line = format!("O CACertFile={}\n", pki.path("ca.pem"));
    assert!(conf.contains(&ca_line));
    fs::write(&env.conf, conf.replace(&ca_line, "")).unwrap();
    // Installed set-gid to the spool's group, as the package installs it.
    let prog = install(&env);
    assert_eq!(fs::metadata(&prog).unwrap().mode() & 0o2000, 0o2000);
    let out = std::process::Command::new(&prog)
        .args(["-C", env.conf.to_str().unwrap(), "check"])
        .env("SSL_CERT_FILE", pki.path("ca.pem"))
        .env("SSL_CERT_DIR", env.dir.join("nothing"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let r = env.finish(&prog, &["check"], out);
    line(&r, "FAIL tls: ");
    assert!(!r.stdout.contains("ok   auth 127.0.0.1"), "{}", r.stdout);
    r.code(75);
}

#[test]
fn a_certificate_for_another_name_or_self_signed_fails_at_tls() {
    for cert in ["wrong", "self", "evil"] {
        let Some((env, _pki, peer, _keep)) = tls_auth(cert, "s3cret-pw") else {
            return;
        };
        let r = admin(&env, &["check"]);
        r.code(75);
        line(&r, "ok   connect ");
        line(&r, "ok   ehlo ");
        let tls = line(&r, "FAIL tls: ");
        assert!(
            tls.contains("the server's certificate could not be verified"),
            "{cert}: {tls}"
        );
        // What the server offered, from a second connection that checks nothing.
        let cn = match cert {
            "self" => "localhost",
            "evil" => "evil",
            _ => "test",
        };
        let info = line(&r, "info tls: the certificate 127.0.0.1 offers: ");
        assert!(
            info.contains(&format!("subject CN={cn}; issuer ")),
            "{info}"
        );
        assert!(!r.stdout.contains("auth "), "{cert}: {}", r.stdout);
        assert!(!peer.transcript().contains("AUTH"), "{}", peer.transcript());
        // One not for the name the server was reached by (its subjectAltName, else its
        // common name) is said to be so, whoever signed it.
        let other = r
            .stdout
            .lines()
            .find(|l| l.starts_with("info tls: it is not for 127.0.0.1: it names "));
        match cert {
            "wrong" => assert!(other.is_some_and(|l| l.contains("names other.example;"))),
            "evil" => assert!(other.is_some_and(|l| l.contains("names evil;"))),
            _ => assert_eq!(other, None, "{}", r.stdout),
        }
        // A self-signed one for that name: the ways to trust it, its digest as
        // FINGERPRINT takes it; one a CA signed, or one for another name (which may be a
        // machine in the middle's), gets no such advice.
        let advice = r
            .stdout
            .lines()
            .find(|l| l.starts_with("info tls: it is self-signed"));
        if cert == "self" {
            let a = advice.unwrap_or_else(|| panic!("{}", r.stdout));
            assert!(
                a.contains(&format!("`FINGERPRINT {}`", _pki.fingerprint("self.pem")))
                    && a.contains("`O CACertFile=FILE`"),
                "{a}"
            );
        } else {
            assert_eq!(advice, None, "{}", r.stdout);
        }
    }
}

/// FINGERPRINT pins the certificate instead of the CA: its own passes (the self-signed
/// one too), another fails at TLS.
#[test]
fn fingerprint_pinning_is_honoured() {
    let Some((env, pki, _peer, _keep)) = tls_auth("self", "s3cret-pw") else {
        return;
    };
    let base = fs::read_to_string(&env.conf).unwrap();
    env.add_config(&format!("FINGERPRINT {}\n", pki.fingerprint("self.pem")));
    let r = admin(&env, &["check"]);
    r.code(0);
    let tls = line(
        &r,
        "ok   tls STARTTLS, certificate matches FINGERPRINT: subject CN=localhost",
    );
    assert!(tls.contains(&pki.fingerprint("self.pem")), "{tls}");
    fs::write(
        &env.conf,
        format!("{base}FINGERPRINT {}\n", pki.fingerprint("srv.pem")),
    )
    .unwrap();
    let r = admin(&env, &["check"]);
    r.code(75);
    let tls = line(&r, "FAIL tls: ");
    assert!(tls.contains("does not match FINGERPRINT"), "{tls}");
}

#[test]
fn a_wrong_password_fails_at_auth_with_the_servers_reply() {
    let Some((env, _pki, _peer, _keep)) = tls_auth("srv", "not-the-password") else {
        return;
    };
    let r = admin(&env, &["check"]);
    r.code(69);
    line(&r, "ok   tls STARTTLS");
    let auth = line(&r, "FAIL auth: ");
    assert!(auth.contains("AUTH refused by 127.0.0.1: 535"), "{auth}");
    assert!(!r.stdout.contains("not-the-password"), "{}", r.stdout);
}

/// An AUTHPATH that the auth.conf step refuses as not rsendmail's (here a file with
/// another link) is never used by the check: the network steps are skipped, naming it,
/// and no AUTH reaches the server.
#[test]
fn credentials_from_an_auth_conf_that_is_not_rsendmails_are_not_sent() {
    let Some((env, _pki, peer, _keep)) = tls_auth("srv", "s3cret-pw") else {
        return;
    };
    let auth = env.dir.join("auth.conf");
    fs::hard_link(&auth, env.dir.join("auth-link")).unwrap();
    let r = admin(&env, &["check"]);
    r.code(78);
    let l = line(&r, "FAIL auth.conf: AUTHPATH names ");
    assert!(
        l.contains("not rsendmail's (a file with other links)"),
        "{l}"
    );
    let skip = line(&r, "skip network: ");
    assert!(
        skip.contains(&format!(
            "AUTHPATH names {}, which is not rsendmail's",
            auth.display()
        )),
        "{skip}"
    );
    assert!(
        !r.stdout
            .lines()
            .any(|l| l.contains(" auth:") || l.starts_with("ok   auth ")),
        "{}",
        r.stdout
    );
    let t = peer.transcript();
    assert!(!t.contains("AUTH"), "{t}");
}

#[test]
fn a_closed_port_fails_at_connect() {
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nO Timeout.connect=5s\n",
        closed_tcp_port()
    ));
    let r = admin(&env, &["check"]);
    r.code(75);
    let c = line(&r, "FAIL connect: ");
    assert!(c.contains("Connection refused by [127.0.0.1]"), "{c}");
    assert!(
        !r.stdout
            .lines()
            .any(|l| l.starts_with("ok   greeting") || l.starts_with("FAIL greeting")),
        "{}",
        r.stdout
    );
}

#[test]
fn dns_through_the_configured_resolver() {
    if !have_peer() {
        return;
    }
    let env0 = Env::new();
    let Some(dns) = DnsServer::start(
        &env0.dir,
        &[
            "--host-record=smtp.test,127.0.0.1",
            "--host-record=relay.test,127.0.0.1",
            "--mx-host=mx.test,smtp.test,10",
        ],
    ) else {
        return;
    };
    let peer = Peer::start(&env0.dir, &[]);
    let conf = |smarthost: &str| {
        Env::with_config(&format!(
            "{smarthost}PORT {}\nRESOLVER 127.0.0.1:{}\nO MXPort={}\nO Timeout.connect=5s\n",
            peer.port, dns.port, peer.port
        ))
    };
    // A name that resolves, through RESOLVER; the relay table's hosts are looked up and
    // checked through too.
    let table = env0.dir.join("relays");
    fs::write(&table, format!("other.example relay.test:{}\n", peer.port)).unwrap();
    let env = conf(&format!(
        "SMARTHOST smtp.test\nRELAYTABLE {}\n",
        table.display()
    ));
    let r = admin(&env, &["check"]);
    r.code(0);
    let d = line(&r, "ok   dns smtp.test through RESOLVER 127.0.0.1:");
    assert!(d.ends_with(": 127.0.0.1"), "{d}");
    let d = line(
        &r,
        "ok   dns relay.test (RELAYTABLE, for other.example) through RESOLVER 127.0.0.1:",
    );
    assert!(d.ends_with(": 127.0.0.1"), "{d}");
    line(&r, "ok   connect smtp.test [127.0.0.1]");
    line(
        &r,
        &format!(
            "info relay: relay.test port {} (RELAYTABLE, for other.example)",
            peer.port
        ),
    );
    line(&r, "ok   connect relay.test [127.0.0.1]");
    // One that does not exist.
    let env = conf("SMARTHOST nx.test\n");
    let r = admin(&env, &["check"]);
    r.code(69);
    let d = line(&r, "FAIL dns: nx.test through RESOLVER");
    assert!(d.contains("Host unknown"), "{d}");
    assert!(!r.stdout.contains("connect"), "{}", r.stdout);
    // Without SMARTHOST, --to asks for the domain's MX hosts.
    let env = conf("");
    let r = admin(&env, &["check", "--to", "someone@mx.test"]);
    r.code(0);
    let d = line(&r, "ok   dns MX of mx.test");
    assert!(d.contains("smtp.test (127.0.0.1)"), "{d}");
    line(&r, "ok   rcpt RCPT TO:<someone@mx.test>: 250");
    let q = dns.queries().join("\n");
    assert!(
        q.contains("query[A] smtp.test") && q.contains("query[MX] mx.test"),
        "{q}"
    );
}

#[test]
fn the_to_probe_sends_mail_and_rcpt_then_rset_and_nothing_else() {
    let Some((_env0, peer, env)) = smarthost_peer() else {
        return;
    };
    let r = admin(&env, &["check", "--to", "someone@example.org"]);
    r.code(0);
    line(&r, "ok   mail MAIL FROM:<");
    let rcpt = line(&r, "ok   rcpt RCPT TO:<someone@example.org>: 250");
    assert!(rcpt.contains("nothing was sent"), "{rcpt}");
    // A refused recipient: the server's reply, and a failure.
    let r = admin(&env, &["check", "--to", "raw@example.org"]);
    r.code(69);
    let rcpt = line(
        &r,
        "FAIL rcpt: RCPT TO:<raw@example.org>: 550 5.1.1 raw reply (test)",
    );
    assert!(rcpt.contains("then RSET"), "{rcpt}");
    let t = peer.transcript();
    assert_eq!(t.matches("RSET").count(), 2, "{t}");
    assert_eq!(t.matches("QUIT").count(), 2, "{t}");
    assert!(!t.contains("DATA"), "{t}");
    assert!(peer.messages().is_empty());
    // Not an address, an empty one included: usage errors, 64.
    for bad in ["a b@example.org", "", " ", "<>"] {
        admin(&env, &["check", "--to", bad]).code(64);
    }
}

/// `check --to` an address it cannot take (empty, blanks, `<>`, `@`, a list, a program,
/// a file or a list file, an empty local part) is a usage error at once (64, said on
/// stderr with what it is): no step runs before it, the network's included.
#[test]
fn an_unfit_to_address_is_refused_before_any_step() {
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\n",
        closed_tcp_port()
    ));
    for (bad, said) in [
        ("", "not an address: \"\""),
        (" ", "not an address: \" \""),
        ("<>", "not an address: it names no recipient (<>; "),
        ("@", "not an address: it names no recipient (@; "),
        ("a@", "a@... Hostname required"),
        ("x@example.org,y@example.org", "is a list"),
        ("|cmd", "not an address: it names a program (|cmd)"),
        (
            "|/bin/cat -x",
            "not an address: it names a program (|/bin/cat -x)",
        ),
        ("\"|cmd\"", "not an address: it names a program (\"|cmd\")"),
        ("/file", "not an address: it names a file (/file)"),
        (
            ":include:/x",
            "not an address: it names a list file (:include:) (:include:/x)",
        ),
        ("\"\"", "not an address: its local part is empty (\"\")"),
        (
            "\"\"@x.example",
            "not an address: its local part is empty (\"\"@x.example)",
        ),
        (
            "\"\" @x.example",
            "not an address: its local part is empty (\"\" @x.example)",
        ),
    ] {
        let r = admin(&env, &["check", "--to", bad]);
        r.code(64);
        assert_eq!(r.stdout, "", "{bad:?}: no step runs");
        assert!(
            r.stderr.starts_with("rsendmail-admin check --to: ") && r.stderr.contains(said),
            "{bad:?}: {}",
            r.stderr
        );
    }
}

/// `check --to` with a control character in the address refuses it (64) and echoes it
/// as every admin message echoes text from outside: each such character as its octets
/// in octal (`\033`), never as `?` (the command line's refusal, sendmail's form) nor raw.
#[test]
fn the_to_address_is_echoed_with_octal_escapes() {
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\n",
        closed_tcp_port()
    ));
    for (bad, shown) in [
        ("c\u{1b}[31md@example.org", "\"c\\033[31md@example.org\""),
        ("a\u{1}b@example.org", "\"a\\001b@example.org\""),
        ("e\u{7f}f@example.org", "\"e\\177f@example.org\""),
        (
            "x\u{1b}y@example.org, z@example.org",
            "\"x\\033y@example.org\"",
        ),
        ("a\nb@example.org", "a\\012b@example.org... line breaks"),
    ] {
        let r = admin(&env, &["check", "--to", bad]);
        r.code(64);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(said.contains(shown), "{bad:?}: {said}");
        assert!(
            !said.contains('?') && !said.contains('\u{1b}') && !said.contains('\u{7f}'),
            "{bad:?}: {said}"
        );
    }
}

/// A file in the spool whose name holds a control character, or octets that are not
/// UTF-8, is named by `check` with each as its octets in octal, as every other name
/// from outside: never `?`.
#[test]
fn spool_file_names_are_echoed_with_octal_escapes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    if !is_root() {
        return;
    }
    let env = Env::new();
    let (_, run) = install_check(&env);
    let index = env.spool.join("index");
    fs::create_dir_all(&index).unwrap();
    chgrp_chmod(&index, spool_gid(), 0o2770);
    for name in [&b"a\x1b[2Jb"[..], &b"c\xffd"[..]] {
        let p = index.join(OsStr::from_bytes(name));
        fs::write(&p, "x").unwrap();
        chmod(&p, 0o604);
    }
    let r = run();
    let said = line(&r, "FAIL spool: 2 file(s) in ");
    assert!(
        said.contains("a\\033[2Jb") && said.contains("c\\377d") && !said.contains('?'),
        "{said}"
    );
}

/// Root's check of a user's own install (the spool and the configuration hers): the
/// spool step fails, saying so, and the network steps are skipped naming that step,
/// not "the configuration has errors" (no configuration line is in error).
#[test]
fn roots_check_of_a_users_install_skips_the_network_naming_the_spool() {
    let Some(inst) = root_install(true) else {
        return;
    };
    let u = test_user();
    chown_r(&inst.spool, &format!("{}:{}", u.uid, u.gid));
    std::os::unix::fs::chown(&inst.conf, Some(u.uid), Some(u.gid)).unwrap();
    let r = inst.check();
    r.code(78);
    assert!(line(&r, "FAIL spool: ").contains("is the per-user spool of"));
    assert!(!r.stdout.contains("FAIL config"), "{}", r.stdout);
    let last = r.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("skip network: not checked: the spool failed")
            && !last.contains("configuration"),
        "{}",
        r.stdout
    );
}

/// `config` and `check`, which change nothing, log nothing (their failures included:
/// a bad `-O`, a spool that is not there) and make no MAILLOG.
#[test]
fn config_and_check_log_nothing() {
    let env = Env::new();
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let prog = PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-admin"));
    admin_of(&env, &prog, &["config"]).code(0);
    admin_of(&env, &prog, &["config", "-O", "MaxHopCount=many"]).code(78);
    admin_of(&env, &prog, &["check", "-O", "MaxHopCount=many"]).code(78);
    admin_of(&env, &prog, &["check"]);
    assert!(
        !log.exists(),
        "{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    fs::write(&env.conf, env.config_naming_spool(&env.dir.join("nospool"))).unwrap();
    admin_of(&env, &prog, &["config"]).code(78);
    admin_of(&env, &prog, &["check"]).code(78);
    assert!(
        !log.exists(),
        "{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
}

/// A configuration with more lines in error than check lists (100) says how many it
/// left out, after the 100 it names, with the same exit status.
#[test]
fn config_problems_beyond_the_first_hundred_are_counted() {
    let bad: String = (0..1100).map(|i| format!("NOSUCHKEY{i} x\n")).collect();
    let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\n{bad}"));
    let r = admin(&env, &["check"]);
    r.code(78);
    let conf = env.conf.display().to_string();
    let fails: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL config: "))
        .collect();
    assert_eq!(fails.len(), 101, "{}", r.stdout);
    assert!(
        fails[99].contains("unknown keyword NOSUCHKEY99"),
        "{}",
        fails[99]
    );
    assert_eq!(
        fails[100],
        format!("FAIL config: {conf}: and 1,000 more problems (only the first 100 shown)")
    );
    line(
        &r,
        "skip network: not checked: the configuration has errors",
    );
}

#[test]
fn every_config_problem_is_named_with_its_line() {
    let env =
        Env::with_config("STARTLS\nSMARTHOST 127.0.0.1\nO MaxHopCount=many\nO HoldExpensive=yes\n");
    let r = admin(&env, &["check"]);
    r.code(78);
    let conf = env.conf.display().to_string();
    // Env's config: SPOOLDIR, MAILNAME, RESOLVER and two options take lines 1-5.
    line(
        &r,
        &format!("FAIL config: {conf}: line 6: unknown keyword STARTLS"),
    );
    line(
        &r,
        &format!("FAIL config: {conf}: line 8: Invalid value for MaxHopCount: many"),
    );
    line(
        &r,
        "skip network: not checked: the configuration has errors",
    );
    // What is accepted but does nothing is told, without failing.
    let env = Env::with_config("O HoldExpensive=yes\nVERIFYCERT\n");
    let r = admin(&env, &["check"]);
    line(
        &r,
        &format!(
            "warn config: {conf2}: line 6: O HoldExpensive is accepted for sendmail's sake",
            conf2 = env.conf.display()
        ),
    );
    line(
        &r,
        &format!(
            "warn config: {}: line 7: VERIFYCERT has no effect without INSECURE",
            env.conf.display()
        ),
    );
    // No SMARTHOST and no --to: nothing to connect to.
    line(&r, "skip network: no SMARTHOST");
    r.code(0);
}

/// An auth.conf others may read is one problem: one FAIL line, the auth.conf step's,
/// with its fix (the configuration step does not fail it again); also when the spool
/// steps stop before they come to it.
#[test]
fn an_auth_conf_readable_by_others_is_reported() {
    let env = Env::new();
    let auth = auth_conf(&env, 0o644);
    let r = admin(&env, &["check"]);
    r.code(78);
    let a = line(&r, "FAIL auth.conf: ");
    assert!(a.contains("0644) is readable by others"), "{a}");
    assert!(fix_of(a).is_some(), "{a}");
    assert!(!r.stdout.contains("pw\n"), "{}", r.stdout);
    let fails: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails, [a], "{}", r.stdout);
    // A spool whose parent is missing: its steps stop there, auth.conf is said once.
    env.add_config(&format!(
        "SPOOLDIR {}\n",
        env.dir.join("no/such/spool").display()
    ));
    let r = admin(&env, &["check"]);
    r.code(78);
    let a = line(&r, "FAIL auth.conf: ");
    assert!(
        a.contains(&format!("{} is readable by others", auth.display()))
            && fix_of(a) == Some(&format!("chmod o-r {}", auth.display())),
        "{a}"
    );
    // (The network steps' line names the step that failed.)
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.contains("auth.conf") && !l.starts_with("skip network: "))
            .count(),
        1,
        "{}",
        r.stdout
    );
    line(
        &r,
        "skip network: not checked: auth.conf failed (others may read it)",
    );
    assert!(!r.stdout.contains("FAIL config: AUTHPATH"), "{}", r.stdout);
}

/// A spool others may read, an `rsendmail` without its set-gid bit, a wake-up FIFO
/// with the wrong mode: each is a failure of its own step.
#[test]
fn install_modes_are_checked() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let r = run();
    r.code(0);
    line(&r, "ok   spool ");
    line(&r, "ok   binary ");
    line(&r, "skip wakeup: no ");
    let fifo = env.spool.join("wakeup");
    mkfifo(&fifo);
    let r = run();
    r.code(0);
    // No queue runner holds it open here: a warning, not a failure.
    line(&r, "warn wakeup: ");
    chmod(&fifo, 0o666);
    chmod(&env.spool, 0o2775);
    chmod(env.dir.join("bin/rsendmail"), 0o755);
    let r = run();
    r.code(78);
    assert!(
        line(&r, "FAIL spool: ").contains("(mode 2775) is open to others")
            && line(&r, "FAIL spool: ")
                .contains(&format!("(fix: chmod 2770 {})", env.spool.display())),
        "{}",
        r.stdout
    );
    assert!(
        line(&r, "FAIL binary: ").contains("must be set-gid"),
        "{}",
        r.stdout
    );
    assert!(
        line(&r, "FAIL wakeup: ").contains("0666): must be 0620"),
        "{}",
        r.stdout
    );
}

#[test]
fn config_prints_each_value_and_where_it_came_from() {
    let env = Env::with_config("SMARTHOST relay.example\nO MaxHopCount=7\n");
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, "bob|relay.example:pw-secret\n").unwrap();
    chmod(&auth, 0o600);
    env.add_config(&format!("AUTHPATH {}\n", auth.display()));
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["config", "-O", "Timeout.connect=9s"]);
    r.code(0);
    line(&r, &format!("SMARTHOST relay.example    # {conf}: line 6"));
    line(&r, &format!("O MaxHopCount=7    # {conf}: line 7"));
    line(&r, "O Timeout.connect=9s    # command line");
    // The one-letter form, and an option the file sets given on the command line: the
    // file's setting is not read at all, as on sendmail's command line.
    let r = admin(&env, &["config", "-o", "dq", "-O", "MaxHopCount=9"]);
    r.code(0);
    line(&r, "O DeliveryMode=q    # command line");
    line(&r, "O MaxHopCount=9    # command line");
    // Defaults: a keyword not set, one with a built-in value, an option.
    line(&r, "# CERTFILE    # default (not set)");
    line(&r, "PORT 25    # default");
    line(&r, "# STARTTLS    # default (off)");
    line(&r, "# O HoldExpensive    # not used by rsendmail");
    line(&r, "O PrivacyOptions=authwarnings    # default");
    assert!(!r.stdout.contains("pw-secret"), "{}", r.stdout);
    // Every keyword and every option of the table is there.
    assert!(r.stdout.lines().count() > 150, "{}", r.stdout);
    // An unknown option, on the command line and in the file.
    let r = admin(&env, &["config", "-O", "Bogus=1"]);
    assert!(
        r.stderr.contains("readcf: unknown option name Bogus"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    // One fault, one code: an option in error (unknown, null, a bad value) is a
    // configuration in error for `config` as for `check` (78).
    for o in ["Bogus=1", "=1", "MaxHopCount=abc", "Timeout.connect=xyz"] {
        let r = admin(&env, &["config", "-O", o]);
        assert_eq!(r.code, 78, "config -O {o}: {}", r.stderr);
        let r = admin(&env, &["check", "-O", o]);
        assert_eq!(r.code, 78, "check -O {o}: {}", r.stdout);
    }
    // A hostile name or value is shown cut (its first 256 characters, then `...`).
    let long = "F".repeat(10_000);
    for o in [format!("{long}=1"), format!("MaxHopCount={long}")] {
        let r = admin(&env, &["config", "-O", &o]);
        r.code(78);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(
            said.len() < 1000 && said.contains(&format!("{}...", &long[..256])),
            "{}",
            said.len()
        );
        let r = admin(&env, &["check", "-O", &o]);
        let f = line(&r, "FAIL config: ");
        assert!(
            f.len() < 1000 && f.contains(&format!("{}...", &long[..256])),
            "{}",
            f.len()
        );
    }
    env.add_config("O Bogus=2\n");
    let r = admin(&env, &["config"]);
    r.code(78);
    assert!(
        r.stderr.contains(&format!(
            "{conf}: line 12: readcf: unknown option name Bogus"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
}

/// An option each of whose lines means one more thing (DaemonPortOptions: one more
/// listener; ClientPortOptions: one more address family's settings) is shown one line a
/// setting, each with its own line: pasted back, the daemon still listens on each
/// address (merged into one line, the last `Addr` alone was kept).
#[test]
fn config_shows_each_listener_on_its_own_line() {
    // Env's config takes lines 1-5.
    let env = Env::with_config(
        "O DaemonPortOptions=Port=2535,Addr=127.0.0.1\n\
         O DaemonPortOptions=Port=2536,Addr=127.0.0.1\n\
         O ClientPortOptions=Family=inet,Addr=127.0.0.1\n\
         O ClientPortOptions=Family=inet6,Addr=::1\n",
    );
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["config"]);
    r.code(0);
    let expected = [
        format!("O DaemonPortOptions=Port=2535,Addr=127.0.0.1    # {conf}: line 6"),
        format!("O DaemonPortOptions=Port=2536,Addr=127.0.0.1    # {conf}: line 7"),
        format!(
            "O ClientPortOptions=Family=inet,Addr=127.0.0.1    # {conf}: line 8 \
             (not used by rsendmail)"
        ),
        format!(
            "O ClientPortOptions=Family=inet6,Addr=::1    # {conf}: line 9 (not used by rsendmail)"
        ),
    ];
    for l in &expected {
        line(&r, l);
    }
    let count = |out: &str, name: &str| out.lines().filter(|l| l.starts_with(name)).count();
    assert_eq!(count(&r.stdout, "O DaemonPortOptions="), 2, "{}", r.stdout);
    assert_eq!(count(&r.stdout, "O ClientPortOptions="), 2, "{}", r.stdout);
    // Pasted back: the same settings, each still on its own line.
    let pasted = env.dir.join("pasted.conf");
    fs::write(&pasted, &r.stdout).unwrap();
    chmod(&pasted, 0o644);
    let prog = env.dir.join("bin/rsendmail-admin");
    let again = env.run_raw(&prog, &["-C", pasted.to_str().unwrap(), "config"], b"");
    again.code(0);
    assert_eq!(
        settings_of(&r.stdout),
        settings_of(&again.stdout),
        "{}\n---\n{}",
        r.stdout,
        again.stdout
    );
    assert_eq!(
        count(&again.stdout, "O DaemonPortOptions="),
        2,
        "{}",
        again.stdout
    );
    // On the command line: each setting its own line too.
    let r = admin(
        &env,
        &[
            "config",
            "-O",
            "DaemonPortOptions=Port=2537,Addr=127.0.0.1",
            "-O",
            "DaemonPortOptions=Port=2538,Addr=127.0.0.1",
        ],
    );
    r.code(0);
    line(
        &r,
        "O DaemonPortOptions=Port=2537,Addr=127.0.0.1    # command line",
    );
    line(
        &r,
        "O DaemonPortOptions=Port=2538,Addr=127.0.0.1    # command line",
    );
    assert_eq!(count(&r.stdout, "O DaemonPortOptions="), 2, "{}", r.stdout);
}

/// DEFER is `O DeliveryMode=d` at its line: `config` shows the mode the programs use and
/// both lines; a later line or the command line wins.
#[test]
fn config_shows_defer_and_the_delivery_mode_that_wins() {
    // Env's config takes lines 1-5.
    let env = Env::with_config("DEFER\nO DeliveryMode=b\n");
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["config"]);
    r.code(0);
    line(
        &r,
        &format!("# DEFER    # {conf}: line 6, overridden by O DeliveryMode=b ({conf}: line 7)"),
    );
    line(&r, &format!("O DeliveryMode=b    # {conf}: line 7"));
    let env = Env::with_config("O DeliveryMode=q\nDEFER\n");
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["config"]);
    r.code(0);
    line(&r, &format!("DEFER    # {conf}: line 7"));
    line(&r, &format!("O DeliveryMode=d    # {conf}: line 7 (DEFER)"));
    let r = admin(&env, &["config", "-O", "DeliveryMode=i"]);
    r.code(0);
    line(
        &r,
        &format!("# DEFER    # {conf}: line 7, overridden by O DeliveryMode=i (command line)"),
    );
    line(&r, "O DeliveryMode=i    # command line");
}

/// A bad line for an option also given on `config`'s command line is still refused with
/// its file and line (a run without the option refuses it), on stderr; `check` fails on
/// it as well.
#[test]
fn a_command_line_option_does_not_hide_the_files_error() {
    let env = Env::with_config("O MaxHopCount=many\n");
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["config", "-O", "MaxHopCount=9"]);
    r.code(78);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains(&format!(
            "{conf}: line 6: Invalid value for MaxHopCount: many"
        )),
        "{}",
        r.stderr
    );
    let r = admin(&env, &["config", "-o", "h9"]);
    r.code(78);
    let r = admin(&env, &["check"]);
    r.code(78);
    line(
        &r,
        &format!("FAIL config: {conf}: line 6: Invalid value for MaxHopCount: many"),
    );
}

/// Trailing comments: on an `O` line as sendmail.cf's (`#` ends it, `\\#` is a `#`), on a
/// keyword line as dma.conf's.
#[test]
fn config_reads_trailing_comments() {
    let env = Env::with_config("O MaxHopCount=7   # fewer hops\nNOPIPELINING # old relay\n");
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["config"]);
    r.code(0);
    line(&r, &format!("O MaxHopCount=7    # {conf}: line 6"));
    line(&r, &format!("NOPIPELINING    # {conf}: line 7"));
    let r = admin(&env, &["check"]);
    assert!(!r.stdout.contains("FAIL config"), "{}", r.stdout);
}

/// The setting part of each line of `config`'s output (what comes before its `    #`
/// comment), the file's name line left out.
fn settings_of(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with("# configuration file: "))
        .map(|l| l.split("    #").next().unwrap_or(l).to_string())
        .collect()
}

/// `config`'s output read back as a configuration file (`-C`) is accepted and shows the
/// same settings again, line for line: every keyword (each flag on and off, each keyword
/// set and not set) and every option of the table (set in the file, on the command line,
/// given empty, at its default, sendmail's old QueueTimeout).
#[test]
fn config_output_pasted_back_is_the_same_configuration() {
    let env = Env::new();
    // A CERTFILE the programs take (config refuses one they refuse): a certificate and
    // its key.
    let Some(pki) = Pki::make(&env.dir) else {
        return;
    };
    let pem = format!(
        "{}{}",
        fs::read_to_string(pki.path("srv.pem")).unwrap(),
        fs::read_to_string(pki.path("srv.key")).unwrap()
    );
    for (f, body) in [
        ("auth.conf", ""),
        ("relays", ""),
        ("cert.pem", pem.as_str()),
    ] {
        fs::write(env.dir.join(f), body).unwrap();
        chmod(env.dir.join(f), 0o600);
    }
    let every_keyword = |with_flags: bool| {
        let mut text = format!(
            "SMARTHOST relay.example other.example\nPORT 2525\nALIASES {d}/aliases\n\
             AUTHPATH {d}/auth.conf\nCERTFILE {d}/cert.pem\n\
             FINGERPRINT 1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF\n\
             MASQUERADE masq.example\nRELAYTABLE {d}/relays\nMAILLOG {d}/maillog\n\
             O MaxHopCount=9\nO Timeout.connect=7s\nO QueueTimeout=4d/2h\n\
             O PrivacyOptions=goaway\nO HelpFile=/x\n",
            d = env.dir.display()
        );
        if with_flags {
            for f in rsendmail::config::FLAG_KEYWORDS {
                text.push_str(f);
                text.push('\n');
            }
        }
        text
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        (String::new(), vec![]),
        (every_keyword(true), vec![]),
        (every_keyword(false), vec![]),
        (every_keyword(true), vec!["-O", "DeliveryMode=b", "-odq"]),
        ("DEFER\nO DeliveryMode=i\n".to_string(), vec![]),
    ];
    let pasted = env.dir.join("pasted.conf");
    let pasted_arg = pasted.to_str().unwrap().to_string();
    for (extra, opts) in cases {
        let conf = env.dir.join("rsendmail.conf");
        let base = fs::read_to_string(&conf).unwrap();
        let base = base.split("# ---\n").next().unwrap().to_string();
        fs::write(&conf, format!("{base}# ---\n{extra}")).unwrap();
        let mut args = vec!["config"];
        args.extend(&opts);
        let first = admin(&env, &args);
        first.code(0);
        fs::write(&pasted, &first.stdout).unwrap();
        chmod(&pasted, 0o644);
        let prog = env.dir.join("bin/rsendmail-admin");
        let again = env.run_raw(&prog, &["-C", &pasted_arg, "config"], b"");
        again.code(0);
        let (a, b) = (settings_of(&first.stdout), settings_of(&again.stdout));
        assert_eq!(
            a.len(),
            b.len(),
            "{extra}\n{}\n---\n{}",
            first.stdout,
            again.stdout
        );
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                x, y,
                "{extra} {opts:?}\n{}\n---\n{}",
                first.stdout, again.stdout
            );
        }
    }
}

/// A greeting with octets that are not UTF-8 and control characters: the check's line
/// shows each as its octets in octal, as it shows every other text from outside (never
/// `?`, never U+FFFD, never raw), and fails at the greeting (75).
#[test]
fn a_garbage_greeting_is_shown_with_octal_escapes() {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.write_all(b"?\xff garbage \x1b[31mHELLO\r\n");
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut b = [0u8; 512];
            let _ = s.read(&mut b);
        }
    });
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {port}\nO Timeout.connect=5s\nO Timeout.initial=5s\n"
    ));
    let r = admin(&env, &["check"]);
    r.code(75);
    let g = line(&r, "FAIL greeting: ");
    assert_eq!(
        g,
        "FAIL greeting: bad SMTP reply line \"?\\377 garbage \\033[31mHELLO\" with 127.0.0.1 during greeting wait"
    );
    let _ = server.join();
}

/// A 2 MB greeting line is refused as over-long, with the limit, at the greeting step.
#[test]
fn an_over_long_greeting_is_named_with_its_limit() {
    let Some((_scratch, peer)) =
        crate::harness::servers::start_peer(&[("GREETING", "220 "), ("PAD", "2000000")])
    else {
        return;
    };
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nO Timeout.connect=5s\nO Timeout.initial=5s\n",
        peer.port
    ));
    let r = admin(&env, &["check"]);
    r.code(75);
    let g = line(&r, "FAIL greeting: ");
    assert_eq!(
        g,
        format!(
            "FAIL greeting: SMTP reply line longer than 4096 octets: \"220 {}...\" with \
             127.0.0.1 during greeting wait",
            "x".repeat(56)
        )
    );
}

/// The check's lines come as each step ends: against a server that never answers AUTH,
/// the lines up to `ehlo` are read while the server still holds the AUTH command; once
/// it closes, AUTH fails (75).
#[test]
fn lines_come_as_the_steps_end_and_auth_is_bounded() {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::mpsc;
    use std::time::Duration;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (got_auth, auth_seen) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let Ok((s, _)) = l.accept() else { return };
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let _ = w.write_all(b"220 stall.test ESMTP\r\n");
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            let cmd = line.to_ascii_uppercase();
            if cmd.starts_with("EHLO") {
                let _ = w.write_all(b"250-stall.test\r\n250 AUTH CRAM-MD5\r\n");
            } else if cmd.starts_with("AUTH") {
                let _ = got_auth.send(());
                // Never answered: held until the test has read the lines, then closed.
                let _ = released.recv_timeout(Duration::from_secs(30));
                return;
            } else {
                let _ = w.write_all(b"250 ok\r\n");
            }
            line.clear();
        }
    });
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {port}\nO Timeout.connect=5s\n"
    ));
    auth_conf(&env, 0o640);
    let mut check = StreamedCheck::start(&env);
    auth_seen
        .recv_timeout(Duration::from_secs(20))
        .expect("the check sent AUTH");
    let seen = check.read_to(
        "ok   ehlo ",
        Duration::from_secs(5),
        "ehlo line while AUTH waits",
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("ok   greeting 220 stall.test")),
        "{seen:?}"
    );
    let _ = release.send(());
    let (status, seen) = check.finish();
    assert!(
        seen.iter().any(|l| l.starts_with("FAIL auth: ")),
        "{seen:?}"
    );
    assert_eq!(status.code(), Some(75), "{seen:?}");
    let _ = server.join();
}

/// The install's check running, its output lines read as they come.
struct StreamedCheck {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
    seen: Vec<String>,
}

impl StreamedCheck {
    /// [`install`], and its `rsendmail-admin -C <config> check` started.
    fn start(env: &Env) -> StreamedCheck {
        use std::io::{BufRead, BufReader};
        let prog = install(env);
        let mut child = std::process::Command::new(&prog)
            .args(["-C", env.conf.to_str().unwrap(), "check"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        StreamedCheck {
            child,
            lines,
            reader,
            seen: Vec::new(),
        }
    }

    /// The lines read so far, once one starting with `start` came, each within `wait`;
    /// a panic saying `no {what}` if not.
    fn read_to(&mut self, start: &str, wait: std::time::Duration, what: &str) -> Vec<String> {
        while !self.seen.iter().any(|l| l.starts_with(start)) {
            match self.lines.recv_timeout(wait) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no {what}; got {:?}", self.seen),
            }
        }
        self.seen.clone()
    }

    /// How the check ended, and every line it wrote.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = self.child.wait().unwrap();
        let _ = self.reader.join();
        self.seen.extend(self.lines.try_iter());
        (status, self.seen)
    }
}

/// The value `config` shows for an option nobody set, from its `O NAME=VALUE    # default`
/// line.
fn shown_default<'a>(r: &'a Run, name: &str) -> &'a str {
    let l = line(r, &format!("O {name}="));
    l.strip_prefix(&format!("O {name}="))
        .and_then(|rest| rest.split_once("    # default"))
        .map(|(v, _)| v)
        .unwrap_or_else(|| panic!("not a default: {l:?}"))
}

/// Options not set show the built-in value the programs use: the MaxHopCount shown is the
/// hop limit a submission enforces; each timeout rsendmail uses is listed with its own;
/// an option rsendmail takes only for sendmail's sake says so, set or not.
#[test]
fn config_shows_the_built_in_value_of_each_option_not_set() {
    let env = Env::with_config("O HelpFile=/etc/mail/helpfile\nO Timeout.ident=5s\n");
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["config"]);
    r.code(0);
    let hops: usize = shown_default(&r, "MaxHopCount").parse().unwrap();
    // One hop more than the shown limit is refused, the limit itself is taken.
    let over = (hops + 1).to_string();
    // (EX_UNAVAILABLE, as sendmail: compat-tests/cases/hop-h-26-odq).
    env.sendmail(&["-odq", "-h", &over, "bob@example.org"], MSG)
        .code(69);
    env.sendmail(&["-odq", "-h", &hops.to_string(), "bob@example.org"], MSG)
        .code(0);
    for (name, value) in [
        ("ConnectionCacheSize", "2"),
        ("ConnectionCacheTimeout", "5s"),
        ("DeliveryMode", "b"),
        ("Timeout.queuereturn", "5d"),
        ("Timeout.queuewarn", "4h"),
        ("Timeout.connect", "1m"),
        ("QueueRetryMin", "5m"),
        ("MXPort", "25"),
    ] {
        assert_eq!(shown_default(&r, name), value, "{name}");
    }
    line(&r, "O QueueDirectory=");
    assert!(line(&r, "O QueueDirectory=").ends_with("# default (SPOOLDIR)"));
    line(&r, "# O PidFile    # default: no pid file");
    line(&r, "# O SevenBitInput    # not used by rsendmail");
    line(
        &r,
        &format!("O HelpFile=/etc/mail/helpfile    # {conf}: line 6 (not used by rsendmail)"),
    );
    line(
        &r,
        &format!("O Timeout.ident=5s    # {conf}: line 7 (not used by rsendmail)"),
    );
    // A set value replaces the built-in one, with its origin.
    let r = admin(&env, &["config", "-O", "MaxHopCount=3"]);
    line(&r, "O MaxHopCount=3    # command line");
    assert!(!r.stdout.contains("O MaxHopCount=25"), "{}", r.stdout);
}

/// A server on 127.0.0.1 that answers every connection with `greeting` (nothing at all
/// when empty), then `250` to each command until QUIT; the thread ends with the test.
fn scripted_server(greeting: &'static str) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                if greeting.is_empty() {
                    // Accepts and never speaks.
                    let mut b = [0u8; 64];
                    let _ = std::io::Read::read(&mut &s, &mut b);
                    return;
                }
                let _ = w.write_all(greeting.as_bytes());
                if !greeting.starts_with("220") {
                    return;
                }
                let mut r = BufReader::new(s);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    let quit = line.to_ascii_uppercase().starts_with("QUIT");
                    let _ = w.write_all(b"250 ok\r\n");
                    if quit {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    port
}

/// A server on 127.0.0.1 that greets, offers `ehlo` (the lines after `250-host`) and
/// answers MAIL with `mail`, every other command with 250 (221 to QUIT); the commands
/// it was sent are kept in the vector returned.
fn refusing_server(
    ehlo: &'static [&'static str],
    mail: &'static str,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let seen = kept.clone();
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                let _ = w.write_all(b"220 relay.test ESMTP\r\n");
                let mut r = BufReader::new(s);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    let cmd = line.trim_end().to_string();
                    seen.lock().unwrap().push(cmd.clone());
                    let up = cmd.to_ascii_uppercase();
                    let answer = if up.starts_with("EHLO") {
                        let mut a = String::from("250");
                        a += if ehlo.is_empty() { " " } else { "-" };
                        a += "relay.test\r\n";
                        for (i, e) in ehlo.iter().enumerate() {
                            let sep = if i + 1 == ehlo.len() { " " } else { "-" };
                            a += &format!("250{sep}{e}\r\n");
                        }
                        a
                    } else if up.starts_with("MAIL") {
                        format!("{mail}\r\n")
                    } else if up.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        "250 ok\r\n".to_string()
                    };
                    let _ = w.write_all(answer.as_bytes());
                    line.clear();
                }
            });
        }
    });
    (port, seen)
}

/// A relay that refuses every message at MAIL until STARTTLS while the configuration
/// has no TLS: check fails without `--to` (a MAIL probe, then RSET, nothing sent), with
/// the reply and the keyword to add, and warns that the STARTTLS offered is not used.
/// A 530 asking for a login names AUTHPATH; a MAIL accepted is ok.
#[test]
fn a_relay_refusing_mail_until_starttls_fails_the_check() {
    let (port, seen) = refusing_server(
        &["PIPELINING", "STARTTLS"],
        "530 5.7.0 Must issue a STARTTLS command first",
    );
    let env = crate::harness::servers::relay_env(port, "");
    let r = admin(&env, &["check"]);
    r.code(69);
    let l = line(&r, "FAIL mail: MAIL FROM:<");
    assert!(
        l.contains("530 5.7.0 Must issue a STARTTLS command first (then RSET: nothing was sent)")
            && l.contains("every message is refused until TLS is started: add a `STARTTLS` line"),
        "{l}"
    );
    let w = line(&r, "warn tls: ");
    assert!(
        w.contains("offers STARTTLS, but no TLS is configured"),
        "{w}"
    );
    let cmds = seen.lock().unwrap().clone();
    assert!(
        cmds.iter().any(|c| c == "RSET")
            && !cmds.iter().any(|c| c.starts_with("RCPT") || c == "DATA"),
        "{cmds:?}"
    );
    let (port, _) = refusing_server(&["PIPELINING"], "530 5.7.0 Authentication required");
    let env = crate::harness::servers::relay_env(port, "");
    let r = admin(&env, &["check"]);
    r.code(69);
    let l = line(&r, "FAIL mail: MAIL FROM:<");
    assert!(
        l.contains(
            "every message is refused until a login is accepted: name the relay's \
                    credentials in AUTHPATH's file"
        ),
        "{l}"
    );
    assert!(!r.stdout.contains("warn tls"), "{}", r.stdout);
    let (port, _) = refusing_server(&["PIPELINING"], "250 2.1.0 ok");
    let env = crate::harness::servers::relay_env(port, "");
    let r = admin(&env, &["check"]);
    r.code(0);
    line(&r, "ok   mail MAIL FROM:<");
    line(&r, "skip tls: no TLS configured");
}

/// A refused greeting keeps the server's reply code (busy or blocked); a server that
/// never greets: the check says first what it waits for and how long, and with STARTTLS
/// configured asks whether the port is an SMTPS one.
#[test]
fn greeting_failures_say_the_code_and_the_wait() {
    for (greeting, code, want) in [
        (
            "421 4.3.2 too busy, come back later\r\n",
            75,
            "FAIL greeting: 421 4.3.2 too busy, come back later",
        ),
        (
            "554 5.7.1 you are blocked\r\n",
            69,
            "FAIL greeting: 554 5.7.1 you are blocked",
        ),
    ] {
        let port = scripted_server(greeting);
        let env = Env::with_config(&format!(
            "SMARTHOST 127.0.0.1\nPORT {port}\nO Timeout.connect=5s\nO Timeout.initial=5s\n"
        ));
        let r = admin(&env, &["check"]);
        r.code(code);
        line(&r, want);
    }
    let port = scripted_server("");
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {port}\nSTARTTLS\nO Timeout.connect=5s\nO Timeout.initial=2s\n"
    ));
    let r = admin(&env, &["check"]);
    r.code(75);
    let wait = line(&r, "info connect: connecting to 127.0.0.1 port ");
    assert!(
        wait.contains(
            "(up to 5s, Timeout.connect), then waiting for its greeting (up to 2s, Timeout.initial)"
        ),
        "{wait}"
    );
    line(&r, "FAIL greeting: ");
    line(
        &r,
        "info greeting: nothing received: is this an SMTPS port (465)?",
    );
    assert!(r.stdout.find(wait) < r.stdout.find("FAIL greeting"));
}

/// Several SMARTHOST hosts are checked in delivery order, each with its lines: a dead
/// one is a `warn` while another works; the check fails only when none does.
#[test]
fn every_smarthost_is_checked_and_only_all_dead_fails() {
    let good = scripted_server("220 good.test ESMTP\r\n");
    let dead = closed_tcp_port();
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1:{dead} 127.0.0.1:{good}\nO Timeout.connect=5s\n"
    ));
    let r = admin(&env, &["check"]);
    r.code(0);
    line(
        &r,
        &format!("info smarthost: 127.0.0.1 port {dead} (1 of 2 in delivery order)"),
    );
    line(&r, "warn connect: ");
    line(
        &r,
        &format!("warn smarthost: 127.0.0.1 port {dead} does not work"),
    );
    line(
        &r,
        &format!("info smarthost: 127.0.0.1 port {good} (2 of 2"),
    );
    line(&r, "ok   greeting 220 good.test");
    assert!(!r.stdout.contains("FAIL"), "{}", r.stdout);
    // A dead fall-back after a working first host: warned of too.
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1:{good} 127.0.0.1:{dead}\nO Timeout.connect=5s\n"
    ));
    let r = admin(&env, &["check"]);
    r.code(0);
    line(
        &r,
        &format!("warn smarthost: 127.0.0.1 port {dead} does not work"),
    );
    // None works.
    let dead2 = closed_tcp_port();
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1:{dead} 127.0.0.1:{dead2}\nO Timeout.connect=5s\n"
    ));
    let r = admin(&env, &["check"]);
    r.code(75);
    line(&r, "FAIL smarthost: none of the 2 hosts works");
}

/// `--to` takes an address as the command line does: a quoted local part and `<addr>`
/// are addresses (sent to the server as such); a list is refused (64). A local address
/// is resolved as `-bv` resolves it (an unknown user: 67, `-bv`'s words), and the
/// smarthost is checked all the same.
#[test]
fn check_to_parses_as_the_command_line_and_resolves_local_names() {
    let Some((_env0, _peer, env)) = smarthost_peer() else {
        return;
    };
    let r = admin(&env, &["check", "--to", "\"a b\"@example.org"]);
    r.code(0);
    line(&r, "ok   rcpt RCPT TO:<\"a b\"@example.org>: 250");
    let r = admin(&env, &["check", "--to", "<x@example.org>"]);
    r.code(0);
    line(&r, "ok   rcpt RCPT TO:<x@example.org>: 250");
    let r = admin(&env, &["check", "--to", "x@example.org,y@example.org"]);
    r.code(64);
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("is a list"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    // A local name: through the aliases as -bv does.
    let bv = env.sendmail(&["-bv", "nosuchuser-i16"], b"");
    bv.code(67);
    let r = admin(&env, &["check", "--to", "nosuchuser-i16"]);
    r.code(67);
    let route = line(&r, "FAIL route: ");
    assert!(route.contains("nosuchuser-i16... User unknown"), "{route}");
    assert!(
        bv.stdout.contains("nosuchuser-i16... User unknown"),
        "{}",
        bv.stdout
    );
    line(&r, "ok   greeting 220");
    // A user that exists, with the smarthost down: the route is fine, the check is not.
    let down = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nO Timeout.connect=5s\n",
        closed_tcp_port()
    ));
    let r = admin(&down, &["check", "--to", "root"]);
    r.code(75);
    line(&r, "ok   route root is delivered on this host: ");
    line(&r, "FAIL connect: ");
}

/// `check --to` a local name says where its mail goes as `-bv` does: through an alias,
/// a list and the user's `.forward` to a program and a file, never "the mailbox" of a
/// user whose `.forward` sends the mail elsewhere.
#[test]
fn check_to_a_local_name_follows_aliases_lists_and_forward_as_bv() {
    if !is_root() {
        return;
    }
    let _turn = crate::local::forward_turn();
    let env = Env::new();
    let list = env.dir.join("fwd-members");
    fs::write(&list, format!("{TEST_USER}\n")).unwrap();
    chmod(&list, 0o644);
    let aliases = env.dir.join("aliases");
    fs::write(
        &aliases,
        format!(
            "fwd-alias: {TEST_USER}\nfwd-list: :include:{}\n",
            list.display()
        ),
    )
    .unwrap();
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    let file = env.dir.join("fwd-file");
    crate::local::write_forward(&format!("\"|/bin/true\"\n{}\n", file.display()));
    for name in [TEST_USER, "fwd-alias", "fwd-list"] {
        let bv = env.sendmail(&["-bv", name], b"");
        bv.code(0);
        for want in [
            "|/bin/true... deliverable: mailer prog".to_string(),
            format!("{}... deliverable: mailer *file*", file.display()),
        ] {
            assert!(bv.stdout.contains(&want), "{name}: {want} in {}", bv.stdout);
        }
        let r = admin(&env, &["check", "--to", name]);
        let route = line(&r, "ok   route ");
        for want in [
            "the command |/bin/true".to_string(),
            format!("the file {}", file.display()),
        ] {
            assert!(route.contains(&want), "{name}: {want} in {route}");
        }
        assert!(!route.contains("the mailbox of"), "{name}: {route}");
    }
}

/// A `.forward` that is not used (group writable, writable by all, another user's) is
/// said with sendmail's reason, in `-bv -v` (recorded: `forward-gw-bv-v`,
/// `forward-owner-bv-v`) and in `check --to USER`, with its repair: the user's own
/// commands (`runuser -u USER -- ...`), never a root chmod or chown of a file in her
/// home; run as printed, they make it used; after she swaps the file for a link to a
/// root file, running them changes nothing of that file. A safe one gets no such line.
#[test]
fn an_unused_forward_is_said_in_bv_v_and_check_to() {
    if !can_switch_user() {
        return;
    }
    let _turn = crate::local::forward_turn();
    let env = Env::new();
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let fwd = crate::local::write_forward("f1@example.org\n");
    let user = test_user();
    let target = env.dir.join("root-file");
    let as_user = format!("(fix: runuser -u {TEST_USER} -- ");
    for (mode, owner, why, fix) in [
        (0o664, user.uid, "Group writable file", "chmod go-w"),
        (0o646, user.uid, "World writable file", "chmod go-w"),
        // Her copy made 0644 whatever her umask.
        (0o644, 65534, "Permission denied", "install -m 644"),
    ] {
        std::os::unix::fs::chown(&fwd, Some(owner), None).unwrap();
        chmod(&fwd, mode);
        let said = format!("{TEST_USER}... forward: {}: {why}", fwd.display());
        let bv = env.sendmail(&["-bv", "-v", TEST_USER], b"");
        bv.code(0);
        assert!(
            bv.stdout.contains(&format!(
                "{said}\n{TEST_USER}... deliverable: mailer local, user {TEST_USER}\n"
            )),
            "{mode:o}: {}",
            bv.stdout
        );
        // Without -v, sendmail says nothing of it (recorded: `forward-gw-bv`).
        let bv = env.sendmail(&["-bv", TEST_USER], b"");
        assert!(!bv.stdout.contains("forward:"), "{}", bv.stdout);
        let r = admin(&env, &["check", "--to", TEST_USER]);
        let l = line(&r, "warn forward: ");
        assert!(l.contains(&said), "{l}");
        assert!(l.contains(&format!("{as_user}{fix} ")), "{l}");
        let cmd = fix_of(l).unwrap().to_string();
        // She swaps it for a link to a root file: the printed repair changes nothing
        // of that file.
        fs::write(&target, "root's\n").unwrap();
        chmod(&target, 0o666);
        let kept = env.dir.join("forward.kept");
        fs::rename(&fwd, &kept).unwrap();
        std::os::unix::fs::symlink(&target, &fwd).unwrap();
        std::os::unix::fs::lchown(&fwd, Some(user.uid), Some(user.gid)).unwrap();
        let _ = sh(&cmd);
        let md = fs::metadata(&target).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o666, "{mode:o}: {cmd}");
        assert_eq!(md.uid(), 0, "{mode:o}: {cmd}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "root's\n", "{cmd}");
        // Followed on her own file, it makes the .forward used.
        fs::remove_file(&fwd).unwrap();
        fs::rename(&kept, &fwd).unwrap();
        assert!(sh(&cmd).success(), "{cmd}");
        let r = admin(&env, &["check", "--to", TEST_USER]);
        assert!(!r.stdout.contains("forward:"), "{cmd}: {}", r.stdout);
    }
    std::os::unix::fs::chown(&fwd, Some(user.uid), None).unwrap();
    chmod(&fwd, 0o644);
    let r = admin(&env, &["check", "--to", TEST_USER]);
    assert!(!r.stdout.contains("forward:"), "{}", r.stdout);
    let bv = env.sendmail(&["-bv", "-v", TEST_USER], b"");
    assert!(
        bv.stdout.contains(&format!(
            "{}: line 1: forwarding to f1@example.org",
            fwd.display()
        )),
        "{}",
        bv.stdout
    );
    let _ = fs::remove_file(&fwd);
}

/// The root queue runner keeps the configuration it read at its start: `check` warns
/// (`reload`) when the configuration or a file it names (here the aliases) changed
/// since, with the reload that makes the runner read them anew (`kill -HUP PID` where no
/// systemd unit runs it); after that SIGHUP the runner read them again and the warning
/// is gone.
#[test]
fn check_warns_when_the_runner_started_before_the_config_changed() {
    use std::time::Duration;
    if !is_root() {
        return;
    }
    let env = Env::new();
    let aliases = env.dir.join("aliases");
    fs::write(&aliases, "postmaster: root\n").unwrap();
    chmod(&aliases, 0o644);
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    let runner = crate::harness::Runner::listening(&env);
    let mark = env.spool.join("slots/runner");
    let started = || {
        fs::read_to_string(&mark).ok().and_then(|t| {
            t.split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<i64>().ok())
        })
    };
    crate::harness::wait_until(Duration::from_secs(20), "the runner's mark", || {
        started().is_some()
    });
    let first = started().unwrap();
    let pid = fs::read_to_string(&mark).unwrap();
    let pid: u32 = pid.split_whitespace().next().unwrap().parse().unwrap();
    let check = || {
        admin_of(
            &env,
            Path::new(env!("CARGO_BIN_EXE_rsendmail-admin")),
            &["check"],
        )
    };
    let r = check();
    assert!(!r.stdout.contains("reload"), "{}", r.stdout);
    // Two seconds later the aliases change: the runner still has the old ones. (A
    // file's time comes from the kernel's coarse clock, which may lag the clock read
    // here by a tick: one second later could still stamp the runner's second.)
    crate::harness::wait_until(Duration::from_secs(5), "two seconds to pass", || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            > first + 1
    });
    fs::write(&aliases, "postmaster: root\nstaff: root\n").unwrap();
    let r = check();
    let l = line(&r, "warn reload: ");
    assert!(l.contains(&format!("the queue runner (pid {pid})")), "{l}");
    assert!(
        l.contains(&format!("the aliases {}", aliases.display())),
        "{l}"
    );
    assert!(l.ends_with(&format!("(fix: kill -HUP {pid})")), "{l}");
    assert!(!l.contains("the configuration"), "{l}");
    // The fix, as printed: the runner reads them anew.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    crate::harness::wait_until(Duration::from_secs(20), "the runner's restart", || {
        started().is_some_and(|t| t > first)
    });
    let r = check();
    assert!(!r.stdout.contains("reload"), "{}", r.stdout);
    // Two seconds after the restart, a chmod alone changes nothing the runner read: no
    // warning. The aliases replaced by a file moved into their place (whose own time
    // is older) is a change.
    let second = started().unwrap();
    crate::harness::wait_until(Duration::from_secs(5), "two seconds to pass", || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            > second + 1
    });
    chmod(&aliases, 0o640);
    chmod(&aliases, 0o644);
    let r = check();
    assert!(!r.stdout.contains("reload"), "{}", r.stdout);
    let new = env.dir.join("aliases.new");
    fs::write(&new, "postmaster: root\nstaff: postmaster\n").unwrap();
    chmod(&new, 0o644);
    assert!(sh(&format!("touch -d @{} {}", first - 60, new.display())).success());
    fs::rename(&new, &aliases).unwrap();
    let r = check();
    let l = line(&r, "warn reload: ");
    assert!(
        l.contains(&format!("the aliases {}", aliases.display())),
        "{l}"
    );
    assert_eq!(pid, runner.0.id(), "the mark names the runner");
    runner.stop();
}

/// The configuration's checks: a keyword set twice (the earlier line changes nothing)
/// is a warning; a configuration file or directory others may write fails (78).
#[test]
fn config_overridden_lines_and_writable_files() {
    let env = Env::with_config("SMARTHOST 127.0.0.1\nO MaxHopCount=7\nOh9\n");
    env.add_config("SMARTHOST 127.0.0.2\n");
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["check"]);
    line(
        &r,
        &format!(
            "warn config: {conf}: line 6: SMARTHOST is set again on line 12, which overrides it"
        ),
    );
    line(
        &r,
        &format!(
            "warn config: {conf}: line 7: O MaxHopCount is set again on line 8, which overrides it"
        ),
    );
    assert!(!r.stdout.contains("RESOLVER is set again"), "{}", r.stdout);
    if !is_root() {
        return;
    }
    chmod(&env.conf, 0o666);
    let r = admin(&env, &["check"]);
    r.code(78);
    let c = line(&r, "FAIL config: ");
    assert!(c.contains("0666) is writable by everyone"), "{c}");
    chmod(&env.conf, 0o644);
    chmod(&env.dir, 0o777);
    let r = admin(&env, &["check"]);
    chmod(&env.dir, 0o755);
    r.code(78);
    let c = line(&r, "FAIL config: ");
    assert!(
        c.contains(&format!("{} (", env.dir.display())) && c.contains("writable by everyone"),
        "{c}"
    );
}

/// What root runs must be root's alone: rsendmail-deliver writable by others, set-uid,
/// or in a directory others may write fails (78). The wake-up FIFO without a queue
/// runner is a warning saying what waits; with one, ok. auth.conf the spool's group
/// cannot read fails, naming the fix; one an ordinary user owns is a warning.
#[test]
fn what_root_runs_and_reads_is_checked() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let prog = env.prog.clone();
    let deliver = env.dir.join("bin/rsendmail-deliver");
    let r = run();
    r.code(0);
    line(&r, &format!("ok   binary {}", deliver.display()));
    for (mode, want) in [
        (0o777, "writable by root alone"),
        (0o4755, "must not be set-uid or set-gid"),
    ] {
        chmod(&deliver, mode);
        plain_admin(&env);
        let r = run();
        r.code(78);
        let b = line(&r, &format!("FAIL binary: {}", deliver.display()));
        assert!(b.contains(want), "{mode:o}: {b}");
    }
    chmod(&deliver, 0o755);
    let bin = env.dir.join("bin");
    chmod(&bin, 0o777);
    let r = run();
    chmod(&bin, 0o755);
    chmod(&prog, 0o2755);
    r.code(78);
    let b = line(&r, &format!("FAIL binary: {} (", bin.display()));
    assert!(b.contains("can replace what root runs"), "{b}");
    // The wake-up FIFO, with no reader, then with one.
    let fifo = env.spool.join("wakeup");
    mkfifo(&fifo);
    let r = run();
    r.code(0);
    let w = line(&r, "warn wakeup: ");
    assert!(w.contains("no queue runner is listening"), "{w}");
    // By hand with the configuration checked (the services read the system's), by the
    // program's path (a build's need not be on PATH).
    assert!(
        w.contains(&format!(
            "`{} -q30m -C {}`",
            env.dir.join("bin/rsendmail").display(),
            env.conf.display()
        )),
        "{w}"
    );
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _reader = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let r = run();
        r.code(0);
        line(&r, "ok   wakeup ");
        assert!(
            line(&r, "ok   wakeup ").ends_with("a queue runner listens"),
            "{}",
            r.stdout
        );
    }
    // A reader that never reads (a runner stopped with SIGSTOP): submissions would hand
    // it their mail, which would wait; a failure, with the fix.
    {
        let mut holder = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("exec 3<>'{}'; exec sleep 600", fifo.display()))
            .spawn()
            .unwrap();
        let pid = holder.id();
        let state = || {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|st| st.rsplit_once(") ").and_then(|(_, r)| r.chars().next()))
        };
        crate::harness::wait_until(std::time::Duration::from_secs(10), "the reader", || {
            fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|e| e.to_string_lossy().contains("sleep"))
        });
        let stop = |sig| {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
        };
        stop(nix::sys::signal::Signal::SIGSTOP);
        crate::harness::wait_until(
            std::time::Duration::from_secs(10),
            "the reader to stop",
            || state() == Some('T'),
        );
        let r = run();
        stop(nix::sys::signal::Signal::SIGCONT);
        let _ = holder.kill();
        let _ = holder.wait();
        r.code(78);
        let w = line(&r, "FAIL wakeup: ");
        assert!(
            w.contains("is stopped") && w.contains(&format!("(fix: kill -CONT {pid})")),
            "{w}"
        );
    }
    // auth.conf: 0600 root:root is out of the spool group's reach.
    let auth = auth_conf(&env, 0o600);
    let r = run();
    r.code(78);
    let a = line(&r, "FAIL auth.conf: ");
    assert!(
        a.contains("is not readable by the spool's group") && a.contains("chmod 640"),
        "{a}"
    );
    chgrp_chmod(&auth, spool_gid(), 0o640);
    line(&run(), "ok   auth.conf ");
    // A user's: she chooses the credentials root sends; the repair writes it anew in
    // its place (its directory is root's alone), never a chown of a file she could
    // swap for a link.
    std::os::unix::fs::chown(&auth, Some(65534), None).unwrap();
    let r = run();
    r.code(78);
    let a = line(&r, "FAIL files: ");
    assert!(
        a.contains("AUTHPATH")
            && a.contains("owned by the user \"nobody\"")
            && a.contains("write it anew in its place"),
        "{a}"
    );
    assert!(!r.stdout.contains("chown root"), "{}", r.stdout);
}

/// An auth.conf a user owns, readable by others, gets one repair, which check then
/// accepts. In root's install: made anew by root with the owner, group and mode the
/// auth.conf step wants (root, the spool's group, 0640), no command besides that one of
/// its own (a `chmod o-r` of hers the remaking undoes); followed, no line fails it. In her
/// own install (spool and configuration hers), root's check leaves her files to her: no
/// "make it anew root's", only her `chmod o-r`, which her own check accepts too.
#[test]
fn a_users_auth_conf_gets_one_consistent_repair() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let u = test_user();
    let env = Env::new();
    let auth = auth_conf(&env, 0o644);
    let (_, run) = install_check(&env);
    std::os::unix::fs::chown(&auth, Some(u.uid), Some(u.gid)).unwrap();
    let r = run();
    r.code(78);
    let said: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains("auth.conf") && (l.contains("(fix: ") || l.contains("(repair: ")))
        .collect();
    let group = group_name(spool_gid());
    assert!(
        said.len() == 1
            && said[0].starts_with("FAIL files: ")
            && said[0].contains(&format!(
                "write it anew in its place from a copy it has checked, root's, of the \
                 spool's group {group}, mode 0640"
            )),
        "{}",
        r.stdout
    );
    assert!(
        !fixes_in(&r.stdout).iter().any(|f| f.contains("auth.conf")),
        "{}",
        r.stdout
    );
    // Followed: removed, written anew as said.
    fs::remove_file(&auth).unwrap();
    fs::write(&auth, "bob|127.0.0.1:pw\n").unwrap();
    chgrp_chmod(&auth, spool_gid(), 0o640);
    let r = run();
    assert!(
        !r.stdout
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("auth.conf")),
        "{}",
        r.stdout
    );
    line(&r, "ok   auth.conf ");
    // Her own install: the spool and the configuration hers too.
    std::os::unix::fs::chown(&auth, Some(u.uid), Some(u.gid)).unwrap();
    chmod(&auth, 0o644);
    chown_r(&env.spool, &format!("{}:{}", u.uid, u.gid));
    std::os::unix::fs::chown(&env.conf, Some(u.uid), Some(u.gid)).unwrap();
    let r = run();
    r.code(78);
    assert!(line(&r, "FAIL spool: ").contains("is the per-user spool of"));
    assert!(!r.stdout.contains("anew"), "{}", r.stdout);
    let a = line(&r, "FAIL auth.conf: ");
    let cmd = fix_of(a).unwrap_or_else(|| panic!("{a}"));
    assert_eq!(
        cmd,
        format!("runuser -u {TEST_USER} -- chmod o-r {}", auth.display())
    );
    assert!(sh(cmd).success(), "{cmd}");
    let r = run();
    assert!(!r.stdout.contains("auth.conf: "), "{}", r.stdout);
    let hers = as_user(
        &env.dir.join("bin/rsendmail-admin"),
        &["-C", env.conf.to_str().unwrap(), "check"],
        &[],
        b"",
    );
    let hers = String::from_utf8_lossy(&hers.stdout);
    assert!(
        hers.contains("auth.conf") && !hers.contains("FAIL auth.conf"),
        "{hers}"
    );
}

/// A system spool not made yet, with the installed `rsendmail` set-gid to a fit group
/// other than `rsendmail`: `check`'s fix runs `init --group` with that group, and,
/// followed, makes a spool of that group.
#[test]
fn the_missing_spools_init_fix_names_the_binarys_group() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    let (other, gid) = crate::harness::other_fit_group();
    let sendmail = env.dir.join("bin/rsendmail");
    std::os::unix::fs::chown(&sendmail, Some(0), Some(gid)).unwrap();
    chmod(&sendmail, 0o2755);
    fs::remove_dir_all(&env.spool).unwrap();
    let r = run_admin(&env, &prog, "check");
    let l = line(&r, "FAIL spool: ");
    assert!(l.ends_with(&format!(" init --group {other})")), "{l}");
    let cmd = fix_of(l).unwrap();
    assert!(sh(cmd).success(), "{cmd}");
    assert_eq!(fs::metadata(&env.spool).unwrap().gid(), gid);
    // Plain init chooses by the same rule: the binary's group, not `rsendmail`.
    fs::remove_dir_all(&env.spool).unwrap();
    let r = run_admin(&env, &prog, "init");
    r.code(0);
    assert!(
        r.stdout.ends_with(&format!("ready (2770 root:{other})\n")),
        "{}",
        r.stdout
    );
    assert_eq!(fs::metadata(&env.spool).unwrap().gid(), gid);
}

/// A system spool whose parent is missing too: check says so in the words init refuses
/// it with (the keyword's file and line, a typo?). A parent that is rsendmail's to make
/// (named for it, its own parent there) is made by the fix, as a system directory,
/// before init; any other (`x/sub` of a typo, whose `x` is missing too, or a parent not
/// named for rsendmail) gets the line to correct and no command, from both. Nothing is
/// made by the check itself.
#[test]
fn a_missing_spools_missing_parent_is_named_with_its_line() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    let spool = env.dir.join("rsendmail-typo/spool");
    write_config(&env.conf, &spool, "");
    let r = run_admin(&env, &prog, "check");
    r.code(78);
    let l = line(&r, "FAIL spool: ");
    let parent = env.dir.join("rsendmail-typo");
    assert!(
        l.starts_with(&format!(
            "FAIL spool: {}: line 1: SPOOLDIR {}: no such directory, nor its parent {} (a typo?",
            env.conf.display(),
            spool.display(),
            parent.display()
        )) && l.contains(&format!(
            " (fix: install -d -o root -m 755 {} && ",
            parent.display()
        )) && l.ends_with(" init)"),
        "{l}"
    );
    assert!(!parent.exists());
    // init refuses it in the same words, with the same way out.
    let r = run_admin(&env, &prog, "init");
    r.code(78);
    assert!(
        r.stdout.contains("nor its parent")
            && r.stdout.contains(&format!(
                "(install -d -o root -m 755 {}) and run init again",
                parent.display()
            )),
        "{}",
        r.stdout
    );
    assert!(!parent.exists());
    fs::create_dir(env.dir.join("t2")).unwrap();
    for (spool, parent, why) in [
        (
            env.dir.join("x/sub/q"),
            env.dir.join("x/sub"),
            format!(
                "the directories above {} are missing too",
                env.dir.join("x/sub").display()
            ),
        ),
        (
            env.dir.join("t2/sub/q"),
            env.dir.join("t2/sub"),
            format!(
                "{} is not rsendmail's to make: neither it nor its directory is named for \
                 rsendmail",
                env.dir.join("t2/sub").display()
            ),
        ),
    ] {
        write_config(&env.conf, &spool, "");
        let r = run_admin(&env, &prog, "check");
        r.code(78);
        let l = line(&r, "FAIL spool: ");
        let said = format!(
            "{}: line 1: SPOOLDIR {}: no such directory, nor its parent {} (a typo? nothing \
             was created); correct {}: line 1 (a spool is made only in a directory that is \
             there, and {why}",
            env.conf.display(),
            spool.display(),
            parent.display(),
            env.conf.display()
        );
        assert!(
            l.starts_with(&format!("FAIL spool: {said}")) && fix_of(l).is_none(),
            "{l}"
        );
        // init refuses it in the same words.
        let r = run_admin(&env, &prog, "init");
        r.code(78);
        assert!(
            r.stdout.contains(&said) || r.stderr.contains(&said),
            "{}\n{}",
            r.stdout,
            r.stderr
        );
        assert!(!parent.exists());
    }
}

/// `SPOOLDIR` rewritten to `to` in the env's configuration (its line 1).
fn set_spooldir(env: &Env, to: &Path) {
    let text = fs::read_to_string(&env.conf).unwrap();
    let first = format!("SPOOLDIR {}\n", env.spool.display());
    assert!(text.starts_with(&first), "{text}");
    fs::write(
        &env.conf,
        text.replacen(&first, &format!("SPOOLDIR {}\n", to.display()), 1),
    )
    .unwrap();
}

/// An installed system (root only: None otherwise) whose spool holds an entry queued
/// to each of `rcpts`, its `SPOOLDIR` then changed to the typo `spoool` beside it, which
/// is not there: the env, the installed `rsendmail-admin` and the typo's path.
fn spooldir_typo(rcpts: &[&str]) -> Option<(Env, PathBuf, PathBuf)> {
    if !is_root() {
        return None;
    }
    let env = Env::new();
    let prog = install(&env);
    for rcpt in rcpts {
        env.sendmail(&["-odq", rcpt], MSG).code(0);
    }
    assert_eq!(env.entries().len(), rcpts.len());
    let typo = env.dir.join("spoool");
    set_spooldir(&env, &typo);
    Some((env, prog, typo))
}

/// A `SPOOLDIR` typo does not make check refuse the shared MAILLOG, made 0660 with the
/// spool's group as the programs make it: while the spool is not there, the group the
/// installed `rsendmail` is set-gid to may write it. No `chmod go-w` of it is offered
/// (followed, users could no longer log); the spool's fix, followed, leaves the log as
/// it was and the check with no failure.
#[test]
fn a_spooldir_typo_leaves_the_shared_maillog_alone() {
    let Some((env, prog, _)) = spooldir_typo(&[]) else {
        return;
    };
    let log = env.dir.join("rsendmail.log");
    fs::write(&log, "").unwrap();
    chgrp_chmod(&log, spool_gid(), 0o660);
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let r = run_admin(&env, &prog, "check");
    r.code(78);
    assert!(
        !r.stdout.contains(&format!("go-w {}", log.display())),
        "{}",
        r.stdout
    );
    let fails: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        fails.len() == 1 && fails[0].starts_with("FAIL spool: "),
        "{}",
        r.stdout
    );
    let cmd = fix_of(fails[0]).unwrap();
    let st = crate::harness::printed_fix(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
    let r = run_admin(&env, &prog, "check");
    assert!(!r.stdout.contains("FAIL"), "{cmd}\n{}", r.stdout);
    assert_eq!(fs::metadata(&log).unwrap().mode() & 0o7777, 0o660);
}

/// A spool given a wrong group (a `chgrp` by mistake) does not make check refuse the
/// shared MAILLOG the programs made 0660 with the spool's group either: the group the
/// spool's fix gives it back may write the log. The one failure is the spool's; its fix,
/// followed, leaves the log as it was and the check with no failure. The same with the
/// installed programs not set-gid (the group the spool's fix gives is then init's), and
/// with them a `SPOOLDIR` typo.
#[test]
fn a_spool_of_a_wrong_group_leaves_the_shared_maillog_alone() {
    // (programs not set-gid, SPOOLDIR a typo rather than the spool of a wrong group)
    for (plain, typo) in [(false, false), (true, false), (true, true)] {
        let Some(env) = root_install(false) else {
            return;
        };
        if plain {
            chmod(env.dir.join("bin/rsendmail"), 0o755);
            plain_admin(&env);
        }
        let log = env.dir.join("rsendmail.log");
        fs::write(&log, "").unwrap();
        chgrp_chmod(&log, spool_gid(), 0o660);
        env.add_config(&format!("MAILLOG {}\n", log.display()));
        // Neither the files step nor the maillog step fails the log (the maillog step
        // comes only once there is a spool).
        let log_passes = |r: &Run, spool: bool| {
            assert!(
                !r.stdout.contains("FAIL files") && !r.stdout.contains("FAIL maillog"),
                "plain {plain}, typo {typo}: {}",
                r.stdout
            );
            if spool {
                line(r, "ok   maillog ");
            }
        };
        log_passes(&env.check(), true);
        if typo {
            set_spooldir(&env, &env.dir.join("spoool"));
        } else {
            chgrp_chmod(&env.spool, 0, 0o2770);
        }
        let r = env.check();
        r.code(78);
        assert!(
            !r.stdout.contains(&format!("go-w {}", log.display())),
            "plain {plain}, typo {typo}: {}",
            r.stdout
        );
        log_passes(&r, !typo);
        let spool_line = line(&r, "FAIL spool: ");
        let cmd = fix_of(spool_line).unwrap_or_else(|| panic!("{spool_line}"));
        assert!(
            crate::harness::printed_fix(cmd)
                .current_dir(&env.dir)
                .status()
                .unwrap()
                .success(),
            "{cmd}"
        );
        let r = env.check();
        assert!(!r.stdout.contains("FAIL spool"), "{cmd}\n{}", r.stdout);
        log_passes(&r, true);
        assert_eq!(fs::metadata(&log).unwrap().mode() & 0o7777, 0o660);
        assert_eq!(fs::metadata(&log).unwrap().gid(), spool_gid());
    }
}

/// A `SPOOLDIR` typo holding what the shell reads specially (`'`, `$`, `;`, a backquote):
/// check's fix finds the line by its text, not its number, so, run after lines were added
/// above it and another removed, it still corrects that line and nothing else, runs
/// nothing else, and check then passes the spool step on the queue.
#[test]
fn a_config_fix_finds_its_line_by_its_text_after_the_file_changed() {
    for typo_name in ["sp'$l", "sp;`l", "sp$(l"] {
        let Some((env, prog, _)) = spooldir_typo(&["bob@example.org"]) else {
            return;
        };
        let typo = env.dir.join(typo_name);
        let text = fs::read_to_string(&env.conf).unwrap().replacen(
            &format!("SPOOLDIR {}\n", env.dir.join("spoool").display()),
            &format!("SPOOLDIR {}\n", typo.display()),
            1,
        );
        fs::write(&env.conf, &text).unwrap();
        let r = run_admin(&env, &prog, "check");
        r.code(78);
        let l = line(&r, "FAIL spool: ");
        let cmd = fix_of(l).unwrap_or_else(|| panic!("{typo_name}: {l}"));
        // Edited since: two lines above it, the mail name's line (the second) removed.
        let edited = format!(
            "# moved\n\n{}",
            text.lines()
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, l)| format!("{l}\n"))
                .collect::<String>()
        );
        assert!(edited.contains(&format!("\nSPOOLDIR {}\n", typo.display())));
        fs::write(&env.conf, &edited).unwrap();
        let st = crate::harness::printed_fix(cmd)
            .current_dir(&env.dir)
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
        assert_eq!(
            fs::read_to_string(&env.conf).unwrap(),
            edited.replacen(
                &format!("\nSPOOLDIR {}\n", typo.display()),
                &format!("\nSPOOLDIR {}\n", env.spool.display()),
                1
            ),
            "{cmd}"
        );
        for made in ["l", "pwned"] {
            assert!(!env.dir.join(made).exists(), "{cmd}");
        }
        let r = run_admin(&env, &prog, "check");
        assert!(!r.stdout.contains("FAIL spool"), "{cmd}\n{}", r.stdout);
        assert_eq!(env.entries().len(), 1);
    }
}

/// A `SPOOLDIR` typo beside the spool that holds the queue: check names the line as a
/// typo with the spool and its entries, and its fix corrects the line (never init, which
/// would make an empty spool and strand the queue); init refuses to make the spool
/// (78) unless told `--new-spool`, and then says what it left. A spool beside it without
/// entries keeps init's advice.
#[test]
fn a_spooldir_typo_beside_a_queue_is_named_and_init_refuses_it() {
    let Some((env, prog, typo)) = spooldir_typo(&["bob@example.org", "carol@example.org"]) else {
        return;
    };
    let r = run_admin(&env, &prog, "check");
    r.code(78);
    let l = line(&r, "FAIL spool: ");
    assert!(
        l.starts_with(&format!(
            "FAIL spool: SPOOLDIR {} does not exist; {} holds 2 entries: a typo at {}: \
             line 1? Nothing was created",
            typo.display(),
            env.spool.display(),
            env.conf.display()
        )),
        "{l}"
    );
    let cmd = fix_of(l).unwrap();
    assert!(!cmd.contains(" init"), "{l}");
    assert_eq!(
        cmd,
        crate::harness::line_fix(
            &env.conf,
            &format!("SPOOLDIR {}", typo.display()),
            &format!("SPOOLDIR {}", env.spool.display())
        )
    );
    // init makes no empty spool there.
    let r = run_admin(&env, &prog, "init");
    r.code(78);
    assert!(
        r.stdout.contains(&format!(
            "holds 2 entries: a typo at {}: line 1?",
            env.conf.display()
        )) && r.stdout.contains("run init --new-spool"),
        "{}",
        r.stdout
    );
    assert!(!typo.exists());
    // The fix, followed: the spool step passes, on the queue.
    assert!(sh(cmd).success(), "{cmd}");
    let r = run_admin(&env, &prog, "check");
    assert!(!r.stdout.contains("FAIL spool"), "{}", r.stdout);
    assert_eq!(env.entries().len(), 2);
    // Told --new-spool, init makes it, and says what it left.
    set_spooldir(&env, &typo);
    let r = env.run_raw(
        &prog,
        &["-C", env.conf.to_str().unwrap(), "init", "--new-spool"],
        b"",
    );
    r.code(0);
    assert!(
        r.stdout.contains(&format!(
            "left {} as it is: it holds 2 entries, which no program using {} sees",
            env.spool.display(),
            typo.display()
        )),
        "{}",
        r.stdout
    );
    assert!(typo.is_dir());
    // The typo's spool made: check warns that the queue is stranded, with the fix.
    let r = run_admin(&env, &prog, "check");
    let l = line(&r, "warn spool: ");
    assert!(
        l.starts_with(&format!(
            "warn spool: SPOOLDIR {} holds no entry; {} holds 2 entries: a typo at {}: \
             line 1? While the configuration names {}, they are neither listed nor \
             delivered",
            typo.display(),
            env.spool.display(),
            env.conf.display(),
            typo.display()
        )),
        "{l}"
    );
    assert_eq!(
        fix_of(l),
        Some(
            crate::harness::line_fix(
                &env.conf,
                &format!("SPOOLDIR {}", typo.display()),
                &format!("SPOOLDIR {}", env.spool.display())
            )
            .as_str()
        )
    );
    assert!(!r.stdout.contains("FAIL spool"), "{}", r.stdout);
    // In use since: the old spool's entries are still said to wait, for as long as
    // they are there, with the queue run that sends them.
    let held_here = env.sendmail(&["-odq", "dave@example.org"], MSG);
    held_here.code(0);
    let r = run_admin(&env, &prog, "check");
    let l = line(&r, "warn spool: ");
    assert!(
        l.starts_with(&format!(
            "warn spool: SPOOLDIR {} is in use; {} holds 2 entries: left by a change at {}: \
             line 1? While the configuration names {}, they are neither listed nor \
             delivered",
            typo.display(),
            env.spool.display(),
            env.conf.display(),
            typo.display()
        )),
        "{l}"
    );
    let run = format!(
        "{} -C {} -O 'QueueDirectory={}' -q",
        env.dir.join("bin/rsendmail").display(),
        env.conf.display(),
        env.spool.display()
    );
    assert!(
        l.ends_with(&format!("(to send them, run their queue as root: `{run}`)")),
        "{l}"
    );
    // The run is one (the relay here is not reachable: they stay, deferred).
    assert!(sh(&run).success(), "{run}");
    assert_eq!(env.entries().len(), 2);
    let r = run_admin(&env, &prog, "check");
    line(&r, "warn spool: ");
    // Gone, nothing is said.
    fs::remove_dir_all(&env.spool).unwrap();
    let r = run_admin(&env, &prog, "check");
    assert!(!r.stdout.contains("warn spool: "), "{}", r.stdout);
}

/// A missing `SPOOLDIR` beside spools without entries (one made as the programs make
/// it, one empty directory): no other spool holds mail, so check's fix stays init.
#[test]
fn a_missing_spool_beside_empty_spools_keeps_inits_advice() {
    let Some((env, prog, typo)) = spooldir_typo(&[]) else {
        return;
    };
    for d in ["tmp", "index", "corrupt"] {
        fs::create_dir_all(env.spool.join(d)).unwrap();
    }
    fs::create_dir(env.dir.join("spool2")).unwrap();
    let r = run_admin(&env, &prog, "check");
    r.code(78);
    let l = line(&r, "FAIL spool: ");
    assert!(l.ends_with(" init)") && !l.contains("entr"), "{l}");
    run_admin(&env, &prog, "init").code(0);
    assert!(typo.is_dir());
}

/// A `SPOOLDIR` changed to a directory that is not there while the queue runner of
/// that configuration listens on the spool that holds the queue (a held entry): check
/// names that spool, the runner's pid and the line, and its fix corrects the line; init
/// refuses to make the new, empty spool.
#[test]
fn a_missing_spooldir_names_the_runners_spool_and_its_entries() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let id = env.only_id();
    admin_of(&env, &prog, &["hold", &id]).code(0);
    let runner = crate::harness::Runner::listening(&env);
    let away = env.dir.join("moved");
    fs::create_dir(&away).unwrap();
    let missing = away.join("spool");
    set_spooldir(&env, &missing);
    let r = run_admin(&env, &prog, "check");
    r.code(78);
    let l = line(&r, "FAIL spool: ");
    assert!(
        l.starts_with(&format!(
            "FAIL spool: SPOOLDIR {} does not exist; {} (the queue runner of this \
             configuration, pid ",
            missing.display(),
            env.spool.display(),
        )) && l.contains(&format!(
            ", listens there) holds 1 entry: a typo at {}: line 1?",
            env.conf.display()
        )),
        "{l}"
    );
    let cmd = fix_of(l).unwrap();
    assert!(!cmd.contains(" init"), "{l}");
    let r = run_admin(&env, &prog, "init");
    r.code(78);
    assert!(
        r.stdout.contains("listens there) holds 1 entry"),
        "{}",
        r.stdout
    );
    assert!(!missing.exists());
    assert!(sh(cmd).success(), "{cmd}");
    let r = run_admin(&env, &prog, "check");
    assert!(!r.stdout.contains("FAIL spool"), "{}", r.stdout);
    runner.stop();
}

/// A queue runner started without `-C` reads its system configuration, which a test
/// build takes from `RSENDMAIL_SYSTEM_CONFIG`: the runner whose variable names this
/// configuration is its runner (its spool is named), and one whose variable names
/// another configuration is not, whatever file the built-in path names (it never makes
/// `init` refuse).
#[test]
fn a_runners_configuration_from_its_environment_is_the_one_compared() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let id = env.only_id();
    admin_of(&env, &prog, &["hold", &id]).code(0);
    let start = |conf: &Path| {
        let child = std::process::Command::new(env.link("sendmail"))
            .args(["-q1h", "-qf"])
            .env("RSENDMAIL_SYSTEM_CONFIG", conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the runner");
        let runner = crate::harness::Runner(child);
        crate::harness::wait_until(
            std::time::Duration::from_secs(30),
            "the runner to listen",
            || crate::harness::listened_on(&env),
        );
        runner
    };
    let runner = start(&env.conf);
    let away = env.dir.join("moved");
    fs::create_dir(&away).unwrap();
    let missing = away.join("spool");
    // Another file with the same SPOOLDIR line: a copy made before the change.
    let other = env.dir.join("other.conf");
    fs::copy(&env.conf, &other).unwrap();
    set_spooldir(&env, &missing);
    let r = run_admin(&env, &prog, "check");
    r.code(78);
    let l = line(&r, "FAIL spool: ");
    assert!(
        l.contains(&format!(
            "{} (the queue runner of this configuration, pid {}, listens there) holds 1 entry",
            env.spool.display(),
            runner.0.id()
        )),
        "{l}"
    );
    runner.stop();
    // The runner of the other file: not this configuration's, init makes the spool.
    let runner = start(&other);
    let r = run_admin(&env, &prog, "check");
    r.code(78);
    assert!(!r.stdout.contains("listens there"), "{}", r.stdout);
    run_admin(&env, &prog, "init").code(0);
    assert!(missing.is_dir());
    runner.stop();
}

/// Root with `-C` and a spool of root's alone (0700, as the quick start makes one): the
/// installed set-gid programs keep their group for root, so what they make there has
/// the programs' group; check passes what they made (no false FAIL, no fix that the
/// next run undoes).
#[test]
fn roots_spool_of_its_own_passes_what_the_setgid_programs_make() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    chown_r(&env.spool, "0:0");
    chmod(&env.spool, 0o700);
    let sendmail = env.dir.join("bin/rsendmail");
    let conf = env.conf.to_str().unwrap();
    env.run_raw(&sendmail, &["-C", conf, "-odq", "bob@example.org"], MSG)
        .code(0);
    let id = env.only_id();
    admin_of(&env, &prog, &["hold", &id]).code(0);
    admin_of(&env, &prog, &["release", &id]).code(0);
    let made: Vec<String> = ["tmp", "index", "hold", "corrupt"]
        .iter()
        .map(|n| {
            let md = fs::metadata(env.spool.join(n)).unwrap();
            format!("{n} {}", md.gid())
        })
        .collect();
    assert!(
        made.iter()
            .any(|m| m.ends_with(&format!(" {}", spool_gid()))),
        "the programs' group is not on what they made: {made:?}"
    );
    let r = run_admin(&env, &prog, "check");
    let fails: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL spool"))
        .collect();
    assert!(fails.is_empty(), "{}", r.stdout);
    // A group that no program gives is still a failure.
    let other = nix::unistd::Group::from_name("daemon")
        .unwrap()
        .map(|g| g.gid.as_raw())
        .unwrap_or(1);
    std::os::unix::fs::chown(env.spool.join("index"), None, Some(other)).unwrap();
    let r = run_admin(&env, &prog, "check");
    line(&r, "FAIL spool");
}

/// dma's TLS keywords together mean what rsendmail.conf(5) says (`STARTTLS` with
/// `OPPORTUNISTIC_TLS`: dma's opportunistic TLS; `VERIFYCERT` with `INSECURE`: the
/// certificate checked all the same): no warning calls them a contradiction.
#[test]
fn dmas_tls_keywords_together_are_no_warning() {
    let env =
        Env::with_config("SECURETRANSFER\nSTARTTLS\nOPPORTUNISTIC_TLS\nINSECURE\nVERIFYCERT\n");
    let r = admin(&env, &["check"]);
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("warn config")),
        "{}",
        r.stdout
    );
}

/// The spool's file system full (no space, or no inode) fails the check with what is
/// free; one with room is ok. (A tmpfs in a mount namespace of its own.)
#[test]
fn a_full_spool_file_system_fails_the_check() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    let r = run_admin(&env, &prog, "check");
    line(&r, "ok   space ");
    let run = |opts: &str, fill: &str| {
        let out = std::process::Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(format!(
                "mount --make-rprivate / && mount -t tmpfs -o {opts} tmpfs \"$1\" && \
                 cp -a \"$2\"/. \"$1\"/ 2>/dev/null; {fill}; \
                 \"$3\" -C \"$4\" check"
            ))
            .arg("sh")
            .args([&env.spool, &env.dir.join("keep"), &prog, &env.conf])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    fs::create_dir(env.dir.join("keep")).unwrap();
    let said = run(
        "size=400k,nr_inodes=200",
        "dd if=/dev/zero of=\"$1/fill\" bs=4k 2>/dev/null",
    );
    let l = said
        .lines()
        .find(|l| l.starts_with("FAIL space: "))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        l.contains("0.0 MiB free") && l.contains("no message can be queued"),
        "{l}"
    );
    let said = run(
        "size=400m,nr_inodes=200",
        "i=0; while [ $i -lt 150 ]; do : > \"$1/f$i\"; i=$((i+1)); done",
    );
    assert!(
        said.lines()
            .any(|l| l.starts_with("FAIL space: ") && l.contains(" inodes free")),
        "{said}"
    );
    let said = run("size=40m,nr_inodes=100000", "true");
    assert!(
        said.lines().any(|l| l.starts_with("warn space: ")),
        "{said}"
    );
}

/// A set-gid install refuses the `rsendmail-deliver` beside it that is not root's alone
/// (the file or its directory writable by a group or everyone): the submission whose
/// delivery cannot start, and `check`'s network step, name that file and why, not only
/// the installed path tried instead.
#[test]
fn a_refused_deliverer_is_named_with_why() {
    if !can_switch_user() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    let bin = env.dir.join("bin");
    let deliver = bin.join("rsendmail-deliver");
    let group = group_name(test_user().gid);
    chgrp_chmod(&deliver, test_user().gid, 0o775);
    let by_file = format!(
        "{}, beside this program, is refused: it is writable by its group {group}",
        deliver.display()
    );
    let by_dir = format!(
        "{}, beside this program, is refused: its directory {} is writable by everyone",
        deliver.display(),
        bin.display()
    );
    for want in [by_file, by_dir] {
        if want.contains("its directory") {
            chgrp_chmod(&deliver, 0, 0o755);
            chmod(&bin, 0o777);
        }
        let r = env.run_raw(
            &bin.join("rsendmail"),
            &["-C", env.conf.to_str().unwrap(), "-odi", "bob@example.org"],
            MSG,
        );
        r.code(0);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(
            said.contains(&want) && said.contains("the message stays queued"),
            "{said}"
        );
        let r = run_admin(&env, &prog, "check");
        let n = line(&r, "FAIL network: ");
        assert!(n.contains(&want), "{n}");
    }
    chmod(&bin, 0o755);
}

/// `config` says what is in force: a boolean given without a value is `true`; the mail
/// name without MAILNAME is the host's; a `-o` letter of no option is said to be
/// ignored; sendmail's `QueueTimeout` (`T`) sets the queue-return time (and
/// `Timeout.queuereturn.normal` does not, as in sendmail: compat case
/// `bounce-queuetimeout-normal-reject4`).
#[test]
fn config_shows_effective_values() {
    let env = Env::with_config("O Verp=\nO QueueTimeout=3d/2h\n");
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["config", "-o", "i", "-o", "Dx"]);
    r.code(0);
    line(
        &r,
        &format!("O Verp=true    # {conf}: line 6 (given without a value)"),
    );
    line(
        &r,
        "O IgnoreDots=true    # command line (given without a value)",
    );
    line(
        &r,
        "# -oDx: D is no option letter of sendmail 8.17: ignored",
    );
    line(
        &r,
        &format!("O Timeout.queuereturn=3d    # set by O QueueTimeout, {conf}: line 7"),
    );
    line(&r, "O Timeout.queuewarn=2h    # set by O QueueTimeout");
    // `O QueueDirectory` (given here, or in the file) sets the spool in force: the
    // SPOOLDIR line shows that one and what set it, never the one it overrides.
    let r = admin(&env, &["config", "-o", "Q/tmp"]);
    r.code(0);
    let l = line(&r, "SPOOLDIR ");
    assert!(
        l.starts_with("SPOOLDIR /tmp    # command line (O QueueDirectory), over "),
        "{l}"
    );
    line(&r, "O QueueDirectory=/tmp    # command line");
    let r = admin(&env, &["config", "-O", "Timeout.queuereturn.normal=4d"]);
    line(&r, "O Timeout.queuereturn=3d    # set by O QueueTimeout");
    line(
        &r,
        "O Timeout.queuereturn.normal=4d    # command line (not used by rsendmail)",
    );
    // No MAILNAME: the host name.
    let conf_text = fs::read_to_string(&env.conf).unwrap();
    fs::write(&env.conf, conf_text.replace("MAILNAME test.example\n", "")).unwrap();
    let r = admin(&env, &["config"]);
    line(&r, "# MAILNAME    # default: the host name (");
}

/// `O QueueTimeout=` (sendmail's old name, option `T`) is the queue-return time: an entry
/// older than it is returned by the next run (status 4.4.7), as with
/// `Timeout.queuereturn`.
#[test]
fn queue_timeout_returns_old_entries() {
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nO Timeout.connect=5s\nO QueueTimeout=1s\n",
        closed_tcp_port()
    ));
    env.sendmail(&["-odq", "far@example.org"], MSG).code(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty());
    let mbox = fs::read_to_string(env.dir.join("mail/root")).unwrap();
    assert!(mbox.contains("Status: 4.4.7"), "{mbox}");
}

/// `bounce` of an entry with the null sender: there is no sender to return it to, and
/// the line says where the report goes (postmaster), queued under which ID, not
/// "returned to its sender"; the delivery it started (or a later run) takes it there.
#[test]
fn bounce_of_a_null_sender_entry_names_postmaster() {
    let env = Env::new();
    env.sendmail(&["-odq", "-f", "<>", "bob@example.org"], MSG)
        .code(0);
    let id = env.only_id();
    let r = admin(&env, &["bounce", &id]);
    r.code(0);
    let rid = crate::harness::bounce_report_id(
        r.stdout.strip_suffix('\n').unwrap_or(&r.stdout),
        &format!("{id}: returned: it has no sender (<>); its report is queued for postmaster as "),
        "a delivery was started",
    );
    assert_ne!(rid, id, "{}", r.stdout);
    crate::harness::wait_until(
        std::time::Duration::from_secs(20),
        "the report delivered",
        || {
            env.sendmail(&["-q"], b"").code(0);
            env.entries().is_empty()
        },
    );
    let mbox = fs::read_to_string(env.dir.join("mail/root")).unwrap_or_default();
    assert_eq!(
        mbox.matches("Final-Recipient: RFC822; bob@example.org")
            .count(),
        1,
        "{mbox}"
    );
}

/// A self-signed certificate for 127.0.0.1 that expired on 1 February 2020, written as
/// `expired.pem` and `expired.key` beside the others (openssl's command line cannot
/// date one in the past).
fn expired_certificate(pki: &Pki) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509, X509NameBuilder};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "expired.test").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_str("20190101000000Z").unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_str("20200201000000Z").unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    fs::write(pki.path("expired.pem"), b.build().to_pem().unwrap()).unwrap();
    fs::write(
        pki.path("expired.key"),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
}

/// An expired certificate: `expired N days ago` (never `in -N days`); pinned by
/// FINGERPRINT it is used, and the check warns that it expired.
#[test]
fn an_expired_certificate_is_said_so() {
    if !have_peer() {
        return;
    }
    let env0 = Env::new();
    let Some(pki) = Pki::make(&env0.dir) else {
        return;
    };
    expired_certificate(&pki);
    let peer = tls_peer(&env0, &pki, "expired", "starttls", &[]);
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nSTARTTLS\nO Timeout.connect=5s\nFINGERPRINT {}\n",
        peer.port,
        pki.fingerprint("expired.pem")
    ));
    let r = admin(&env, &["check"]);
    r.code(0);
    let tls = line(&r, "ok   tls STARTTLS, certificate matches FINGERPRINT: ");
    assert!(
        tls.contains("expires Feb  1 00:00:00 2020 GMT (expired ") && tls.contains(" days ago)"),
        "{tls}"
    );
    let w = line(&r, "warn tls: the certificate expired ");
    assert!(w.contains("FINGERPRINT pins it"), "{w}");
    assert!(!r.stdout.contains("(in -"), "{}", r.stdout);
}

/// A server that accepts and says nothing: the `connect` line is read while the server
/// still holds its greeting back (the check is then waiting for it), not at the end.
#[test]
fn the_connect_line_comes_before_the_greeting_wait() {
    use std::sync::mpsc;
    use std::time::Duration;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (release, released) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let Ok((_s, _)) = l.accept() else { return };
        // Silent until the test has read the connect line, then closed.
        let _ = released.recv_timeout(Duration::from_secs(30));
    });
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {port}\nO Timeout.connect=5s\nO Timeout.initial=1m\n"
    ));
    let mut check = StreamedCheck::start(&env);
    let seen = check.read_to(
        "ok   connect ",
        Duration::from_secs(20),
        "connect line while the greeting is awaited",
    );
    assert!(
        seen.iter().any(
            |l| l.starts_with("info connect: connecting to 127.0.0.1 port ")
                && l.contains("(up to 1m, Timeout.initial)")
        ),
        "{seen:?}"
    );
    let _ = release.send(());
    let (status, seen) = check.finish();
    assert!(
        seen.iter().any(|l| l.starts_with("FAIL greeting: ")),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|l| l.starts_with("ok   connect "))
            .count(),
        1,
        "{seen:?}"
    );
    assert_eq!(status.code(), Some(75), "{seen:?}");
    let _ = server.join();
}

/// Without `--to`, each host of the relay table is checked through as the smarthost is
/// (DNS, connect, greeting, EHLO): one that does not work fails the check, since it is
/// the only way to its domains; with or without SMARTHOST.
#[test]
fn relay_table_hosts_are_checked_without_to() {
    let good = scripted_server("220 relay.good ESMTP\r\n");
    let dead = closed_tcp_port();
    let env0 = Env::new();
    let table = env0.dir.join("relays");
    fs::write(
        &table,
        format!("a.example 127.0.0.1:{good}\n.b.example 127.0.0.1:{good}\n"),
    )
    .unwrap();
    for smarthost in [String::new(), format!("SMARTHOST 127.0.0.1:{good}\n")] {
        let env = Env::with_config(&format!(
            "{smarthost}RELAYTABLE {}\nO Timeout.connect=5s\n",
            table.display()
        ));
        let r = admin(&env, &["check"]);
        r.code(0);
        // One line for the host, naming both of its patterns.
        let info = line(&r, "info relay: 127.0.0.1 port ");
        assert!(
            info.ends_with(&format!("{good} (RELAYTABLE, for a.example, .b.example)")),
            "{info}"
        );
        assert_eq!(r.stdout.matches("info relay:").count(), 1, "{}", r.stdout);
        let at = r.stdout.find("info relay:").unwrap();
        assert!(
            r.stdout[at..].contains("ok   greeting 220 relay.good"),
            "{}",
            r.stdout
        );
        assert!(r.stdout[at..].contains("ok   ehlo "), "{}", r.stdout);
    }
    fs::write(
        &table,
        format!("a.example 127.0.0.1:{good}\nc.example 127.0.0.1:{dead}\nd.example mx:\n"),
    )
    .unwrap();
    let env = Env::with_config(&format!(
        "RELAYTABLE {}\nO Timeout.connect=5s\n",
        table.display()
    ));
    let r = admin(&env, &["check"]);
    r.code(75);
    line(
        &r,
        &format!("info relay: 127.0.0.1 port {dead} (RELAYTABLE, for c.example)"),
    );
    let c = line(&r, "FAIL connect: ");
    assert!(c.contains("Connection refused"), "{c}");
    assert_eq!(r.stdout.matches("info relay:").count(), 2, "{}", r.stdout);
}

/// A domain on two lines of RELAYTABLE (in another case, or once with U-labels and
/// once with A-labels) fails the check with both lines, as delivery refuses it; a host
/// on two lines of auth.conf likewise, its passwords never shown.
#[test]
fn a_domain_or_host_on_two_table_lines_fails_the_check() {
    for (first, second) in [
        ("Example.ORG", "example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
    ] {
        let env0 = Env::new();
        let table = env0.dir.join("relays");
        fs::write(
            &table,
            format!("{first} 127.0.0.1:1\n{second} 127.0.0.1:2\n"),
        )
        .unwrap();
        let env = Env::with_config(&format!("RELAYTABLE {}\n", table.display()));
        let r = admin(&env, &["check"]);
        r.code(78);
        let t = table.display();
        let f = line(&r, "FAIL ");
        assert!(
            f.ends_with(&format!(
                "{t}: line 2: domain {second} is already routed by {t}: line 1 ({first})"
            )),
            "{}",
            r.stdout
        );
    }
    let env = Env::new();
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, "bob|Relay.Example:pw1\nann|relay.example:pw2\n").unwrap();
    chmod(&auth, 0o600);
    env.add_config(&format!("AUTHPATH {}\n", auth.display()));
    let r = admin(&env, &["check"]);
    r.code(78);
    let a = auth.display();
    assert!(
        r.stdout.contains(&format!(
            "{a}: line 2: the host of {a}: line 1 again; one line per host"
        )),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("pw1") && !r.stdout.contains("pw2"),
        "{}",
        r.stdout
    );
}

/// `check --to` through a SMARTHOST, a RELAYTABLE host or an MX host that is this
/// host's own daemon (its EHLO reply names this host): the check says the mail would
/// loop back here, in delivery's words, and fails as delivery would, never probing the
/// daemon with MAIL and RCPT.
#[test]
fn check_to_says_when_the_path_loops_back_here() {
    let env0 = Env::new();
    let Some(dns) = DnsServer::start(
        &env0.dir,
        &[
            "--mx-host=mxloop.test,mx.mxloop.test,10",
            "--host-record=mx.mxloop.test,127.0.0.1",
        ],
    ) else {
        return;
    };
    for (route, rcpt, host) in [
        ("smarthost", "r@example.org", "[127.0.0.1]"),
        ("relay", "r@rtloop.test", "[127.0.0.1]"),
        ("mx", "r@mxloop.test", "mx.mxloop.test"),
    ] {
        let env = Env::new();
        let d = Daemon::start(&env, &["-odq"]);
        let table = env.dir.join("relays");
        fs::write(&table, format!("rtloop.test 127.0.0.1:{}\n", d.port)).unwrap();
        if route == "smarthost" {
            env.add_config(&format!("SMARTHOST 127.0.0.1:{}\n", d.port));
        }
        env.add_config(&format!(
            "RESOLVER 127.0.0.1:{}\nO MXPort={}\nRELAYTABLE {}\nO Timeout.connect=5s\n",
            dns.port,
            d.port,
            table.display()
        ));
        let r = admin(&env, &["check", "--to", rcpt]);
        r.code(70);
        let f = line(&r, "FAIL ehlo: ");
        assert_eq!(
            f,
            format!("FAIL ehlo: {host} config error: mail loops back to me (MX problem?)"),
            "{route}: {}",
            r.stdout
        );
        assert!(!r.stdout.contains("rcpt RCPT TO"), "{route}: {}", r.stdout);
        drop(d);
    }
}

/// `check` fails a MAILNAME that is an IP address, an address literal or localhost (the
/// Debian package's rule), given as the keyword or in the file it names; a domain passes.
#[test]
fn check_fails_a_mail_name_that_is_an_address_or_localhost() {
    for (name, why) in [
        ("192.168.1.1", "an IP address is no mail name"),
        ("10.1.2.3", "an IP address is no mail name"),
        ("[192.0.2.1]", "an address literal is no mail name"),
        ("[IPv6:2001:db8::1]", "an address literal is no mail name"),
        ("localhost", "localhost is what every host calls itself"),
        (
            "LocalHost.LocalDomain",
            "localhost is what every host calls itself",
        ),
    ] {
        for in_file in [false, true] {
            let env = Env::new();
            let conf = fs::read_to_string(&env.conf).unwrap();
            let value = if in_file {
                let f = env.dir.join("mailname");
                fs::write(&f, format!("{name}\n")).unwrap();
                f.display().to_string()
            } else {
                name.to_string()
            };
            fs::write(
                &env.conf,
                conf.replace("MAILNAME test.example\n", &format!("MAILNAME {value}\n")),
            )
            .unwrap();
            let r = admin(&env, &["check"]);
            r.code(78);
            let m = line(&r, "FAIL mailname: ");
            assert!(
                m.starts_with(&format!("FAIL mailname: {name} (MAILNAME")) && m.contains(why),
                "{name} {in_file}: {m}"
            );
        }
    }
    let r = admin(&Env::new(), &["check"]);
    line(&r, "ok   mailname test.example");
}

/// `check` takes `-O NAME=VALUE`, `-o LETTERVALUE` and `-C FILE` after the subcommand,
/// with the meaning they have for `config` and the programs: the setting is tried
/// before it is written, by the admin steps and by the network steps alike.
#[test]
fn check_takes_command_line_options() {
    let Some((env, pki, _peer, _keep)) = tls_auth("srv", "s3cret-pw") else {
        return;
    };
    let prog = install(&env);
    let conf = env.conf.to_str().unwrap();
    let r = env.run_raw(&prog, &["check", "-C", conf], b"");
    r.code(0);
    line(&r, "ok   tls ");
    // Another CA, given on the command line: the server's certificate no longer passes.
    let other = pki.path("self.pem");
    let r = env.run_raw(
        &prog,
        &["check", "-C", conf, "-O", &format!("CACertFile={other}")],
        b"",
    );
    r.code(75);
    line(&r, "FAIL tls: ");
    // The file is unchanged: without the option it passes again.
    env.run_raw(&prog, &["-C", conf, "check"], b"").code(0);
    // A bad value is refused with the programs' words.
    let r = env.run_raw(&prog, &["-C", conf, "check", "-O", "MaxHopCount=many"], b"");
    r.code(78);
    assert!(r.stdout.contains("FAIL config: "), "{}", r.stdout);
}

/// What the check says to start the system's queue runner: its unit where it is
/// installed, else the runner by hand and how to start it at boot (an install without
/// the package has no unit to enable).
fn system_runner_advice() -> &'static str {
    let unit = [
        "/etc/systemd/system",
        "/run/systemd/system",
        "/usr/local/lib/systemd/system",
        "/lib/systemd/system",
        "/usr/lib/systemd/system",
    ]
    .iter()
    .any(|d| Path::new(d).join("rsendmail-queue.service").exists());
    if unit {
        "systemctl enable --now rsendmail-queue"
    } else {
        "as root, and at boot (README, \"Without the package\""
    }
}

/// An install without the package (no `rsendmail-queue.service` anywhere systemd looks)
/// is never told to enable that unit when no runner listens.
#[test]
fn no_runner_advice_fits_an_install_without_the_unit() {
    if !is_root() || Path::new("/lib/systemd/system/rsendmail-queue.service").exists() {
        return;
    }
    let env = Env::new();
    let r = admin(&env, &["check", "-O", "DeliveryMode=q"]);
    let w = line(&r, "FAIL wakeup: ");
    assert!(!w.contains("systemctl enable"), "{w}");
    assert!(w.contains("` as root, and at boot"), "{w}");
}

/// No queue runner listening is a failure when nothing else would send the mail (the
/// delivery mode queue-only or deferred, from the file or the command line), naming the
/// service to start; a warning otherwise.
#[test]
fn no_runner_fails_when_nothing_else_would_send() {
    let env = Env::new();
    let prog = install(&env);
    let conf = env.conf.to_str().unwrap();
    let check = |extra: &[&str]| {
        let mut a = vec!["-C", conf, "check"];
        a.extend_from_slice(extra);
        env.run_raw(&prog, &a, b"")
    };
    let service = if is_root() {
        system_runner_advice()
    } else {
        "systemctl --user enable --now rsendmail-queue.timer"
    };
    // No FIFO: no runner was ever started.
    let r = check(&[]);
    r.code(0);
    line(&r, "skip wakeup: no ");
    for opts in [&["-O", "DeliveryMode=q"][..], &["-o", "dd"][..]] {
        let r = check(opts);
        r.code(78);
        let w = line(&r, "FAIL wakeup: no ");
        assert!(
            w.contains("nothing else would ever send") && w.contains(service),
            "{w}"
        );
    }
    let fifo = env.spool.join("wakeup");
    mkfifo(&fifo);
    let r = check(&[]);
    r.code(0);
    assert!(line(&r, "warn wakeup: ").contains(service), "{}", r.stdout);
    let r = check(&["-O", "DeliveryMode=q"]);
    r.code(78);
    let w = line(&r, "FAIL wakeup: ");
    assert!(w.contains("the delivery mode is queue-only"), "{w}");
    env.add_config("DEFER\n");
    let r = check(&[]);
    r.code(78);
    assert!(
        line(&r, "FAIL wakeup: ").contains("the delivery mode is deferred"),
        "{}",
        r.stdout
    );
    // A runner listening: fine in every mode.
    use std::os::unix::fs::OpenOptionsExt;
    let _reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let r = check(&[]);
    r.code(0);
    line(&r, "ok   wakeup ");
    drop(_reader);
    // Its fix, run as printed, starts a runner of this configuration, and the check
    // then passes; the runner is stopped by the pid holding the FIFO.
    let r = check(&[]);
    r.code(78);
    let w = line(&r, "FAIL wakeup: ");
    let want = format!(
        " (fix: {}/bin/rsendmail -C {conf} -q30m)",
        env.dir.display()
    );
    assert!(w.ends_with(&want), "{w}");
    let cmd = fix_of(w).unwrap();
    let st = crate::harness::printed_fix(cmd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{cmd}");
    let holder = || {
        fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
            let pid: i32 = p.file_name().to_str()?.parse().ok()?;
            let holds = fs::read_dir(p.path().join("fd"))
                .ok()?
                .flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l == fifo));
            holds.then_some(pid)
        })
    };
    let mut runner = None;
    for _ in 0..100 {
        runner = holder();
        if runner.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let r = check(&[]);
    if let Some(pid) = runner {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    assert!(runner.is_some(), "no runner started by {cmd}");
    r.code(0);
    line(&r, "ok   wakeup ");
}

/// Each mode or owner problem `check` reports ends with the commands that put it right
/// (`(fix: ...)`); running them as printed makes the check pass. (A program a user owns
/// is installed anew from a trusted copy instead: `a_program_a_user_owns_is_installed_anew`;
/// so is a configuration file a user owns: `config_files::`.)
#[test]
fn following_each_fix_makes_check_pass() {
    if !is_root() {
        return;
    }
    type Damage = fn(&Env);
    let cases: Vec<(&str, Damage)> = vec![
        ("config 0666", |e| chmod(&e.conf, 0o666)),
        ("config dir 0777", |e| chmod(&e.dir, 0o777)),
        ("spool 2775", |e| chmod(&e.spool, 0o2775)),
        ("spool 0755", |e| chmod(&e.spool, 0o755)),
        ("rsendmail 0755", |e| {
            chmod(e.dir.join("bin/rsendmail"), 0o755)
        }),
        ("rsendmail 2777", |e| {
            chmod(e.dir.join("bin/rsendmail"), 0o2777)
        }),
        ("rsendmail group", |e| {
            chgrp_chmod(e.dir.join("bin/rsendmail"), 65534, 0o2755)
        }),
        ("admin 0755", |e| {
            chmod(e.dir.join("bin/rsendmail-admin"), 0o755)
        }),
        ("admin group", |e| {
            chgrp_chmod(e.dir.join("bin/rsendmail-admin"), 65534, 0o2755)
        }),
        ("deliver 4755", |e| {
            plain_admin(e);
            chmod(e.dir.join("bin/rsendmail-deliver"), 0o4755)
        }),
        ("deliver 0777", |e| {
            plain_admin(e);
            chmod(e.dir.join("bin/rsendmail-deliver"), 0o777)
        }),
        ("bin dir 0777", |e| {
            plain_admin(e);
            chmod(e.dir.join("bin"), 0o777)
        }),
        ("bin dir owner", |e| {
            plain_admin(e);
            std::os::unix::fs::chown(e.dir.join("bin"), Some(65534), None).unwrap()
        }),
        ("fifo 0666", |e| fifo(e, 0o666, None)),
        ("fifo group", |e| fifo(e, 0o620, Some(65534))),
        ("auth 0644", |e| auth(e, 0o644, None)),
        ("auth 0604", |e| auth(e, 0o604, None)),
        ("auth 0600", |e| auth(e, 0o600, None)),
        ("auth group", |e| auth(e, 0o640, Some((0, 65534)))),
        // A spool in use (an empty directory everyone may write is a shared one, never
        // taken over nor repaired: setup.rs).
        ("spool 2777", |e| {
            sub(e, "tmp", 0o2770, None);
            chmod(&e.spool, 0o2777)
        }),
        // What init would put right: a spool of the group root, or a user's.
        ("spool root:root", |e| {
            sub(e, "tmp", 0o2770, None);
            chown_r(&e.spool, "0:0");
        }),
        ("spool a user's", |e| {
            sub(e, "index", 0o2770, None);
            std::os::unix::fs::chown(&e.spool, Some(test_user().uid), Some(0)).unwrap();
            chmod(&e.spool, 0o755);
        }),
        ("tmp 2777", |e| sub(e, "tmp", 0o2777, None)),
        ("tmp 0700", |e| sub(e, "tmp", 0o700, None)),
        ("hold 1777", |e| sub(e, "hold", 0o1777, None)),
        ("index owner", |e| sub(e, "index", 0o2770, Some((65534, 0)))),
        ("waiting group", |e| {
            sub(e, "waiting", 0o2770, Some((0, 65534)))
        }),
        ("domains 0755", |e| sub(e, "index/domains", 0o755, None)),
        ("slots link", |e| {
            std::os::unix::fs::symlink(e.dir.join("nowhere"), e.spool.join("slots")).unwrap()
        }),
        ("index file 0644", |e| {
            subfile(e, "index/recipients", 0o644, None)
        }),
        ("domains file group", |e| {
            subfile(e, "index/domains/example.org", 0o660, Some(65534))
        }),
        ("waiting file 0666", |e| {
            subfile(e, "waiting/x", 0o666, None)
        }),
        // A spool given to a user and her own group, `rsendmail` set-gid to none.
        ("spool a user's own group", |e| {
            sub(e, "tmp", 0o2770, None);
            let u = test_user();
            chown_r(&e.spool, &format!("{}:{}", u.uid, u.gid));
            let bin = e.dir.join("bin/rsendmail");
            chgrp_chmod(&bin, u.gid, 0o755);
        }),
        ("maillog 0640 root", |e| {
            let m = e.dir.join("maillog");
            fs::write(&m, "").unwrap();
            chmod(&m, 0o640);
            e.add_config(&format!("MAILLOG {}\n", m.display()));
        }),
        ("fifo a link", |e| {
            std::os::unix::fs::symlink(e.dir.join("nowhere"), e.spool.join("wakeup")).unwrap()
        }),
        ("fifo a file", |e| {
            fs::write(e.spool.join("wakeup"), "x").unwrap()
        }),
        ("missing spool", |e| fs::remove_dir_all(&e.spool).unwrap()),
        // SPOOLDIR naming a directory whose parent is missing: init refuses it, so the
        // fix makes the parent first.
        ("missing spool and parent", |e| {
            let conf = fs::read_to_string(&e.conf).unwrap();
            let moved = e.dir.join("rsendmail-new/spool");
            let conf = conf.replace(
                &format!("SPOOLDIR {}\n", e.spool.display()),
                &format!("SPOOLDIR {}\n", moved.display()),
            );
            assert!(conf.contains(&format!("SPOOLDIR {}\n", moved.display())));
            fs::write(&e.conf, conf).unwrap();
        }),
        ("fifo a user's", |e| {
            fifo(e, 0o620, None);
            std::os::unix::fs::chown(e.spool.join("wakeup"), Some(test_user().uid), None).unwrap();
        }),
        ("queued entry 0644", |e| entry(e, false, 0o644, None)),
        ("queued entry group", |e| {
            entry(e, false, 0o660, Some(65534))
        }),
        ("held entry 0666", |e| entry(e, true, 0o666, None)),
        ("held entry group", |e| entry(e, true, 0o660, Some(65534))),
    ];
    /// A queued entry (its `qf` and `sf` files), put on hold when `held`, its files
    /// given `mode` and, when given, the group `gid`.
    fn entry(e: &Env, held: bool, mode: u32, gid: Option<u32>) {
        e.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
        let mut dir = e.spool.clone();
        if held {
            sub(e, "hold", 0o2770, None);
            dir = e.spool.join("hold");
        }
        let names: Vec<_> = fs::read_dir(&e.spool)
            .unwrap()
            .flatten()
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("qf") || n.starts_with("sf"))
            .collect();
        assert!(names.iter().any(|n| n.starts_with("qf")), "{names:?}");
        for n in names {
            let p = dir.join(&n);
            if held {
                fs::rename(e.spool.join(&n), &p).unwrap();
            }
            if let Some(g) = gid {
                std::os::unix::fs::chown(&p, None, Some(g)).unwrap();
            }
            chmod(&p, mode);
        }
    }
    /// Make the spool's sub-directory `name` (its parents as init makes them), with
    /// `mode` and, when given, that owner.
    fn sub(e: &Env, name: &str, mode: u32, owner: Option<(u32, u32)>) {
        let p = e.spool.join(name);
        fs::create_dir_all(&p).unwrap();
        let mut up = p.parent();
        while let Some(d) = up.filter(|d| *d != e.spool.as_path()) {
            chmod(d, 0o2770);
            up = d.parent();
        }
        if let Some((u, g)) = owner {
            std::os::unix::fs::chown(&p, Some(u), Some(g)).unwrap();
        }
        chmod(&p, mode);
    }
    /// A file a submission writes (in sub-directories made as init makes them).
    fn subfile(e: &Env, name: &str, mode: u32, gid: Option<u32>) {
        let p = e.spool.join(name);
        sub(e, p.parent().unwrap().to_str().unwrap(), 0o2770, None);
        fs::write(&p, "").unwrap();
        if let Some(g) = gid {
            std::os::unix::fs::chown(&p, None, Some(g)).unwrap();
        }
        chmod(&p, mode);
    }
    fn fifo(e: &Env, mode: u32, gid: Option<u32>) {
        let f = e.spool.join("wakeup");
        mkfifo(&f);
        chmod(&f, mode);
        if let Some(g) = gid {
            std::os::unix::fs::chown(&f, None, Some(g)).unwrap();
        }
    }
    fn auth(e: &Env, mode: u32, owner: Option<(u32, u32)>) {
        let a = auth_conf(e, mode);
        if let Some((u, g)) = owner {
            std::os::unix::fs::chown(&a, Some(u), Some(g)).unwrap();
        }
    }
    let fixes = |r: &Run| fixes_in(&r.stdout);
    // A line whose fix waits for another's (a path a user could swap until the
    // directory above it is put right): the next round gives it.
    let waits = |r: &Run| r.stdout.contains(" right first, then check again");
    for (what, damage) in &cases {
        let env = Env::new();
        let (_, run) = install_check(&env);
        damage(&env);
        let mut r = run();
        let mut cmds = fixes(&r);
        assert!(!cmds.is_empty(), "{what}: no fix in\n{}", r.stdout);
        // A file the programs read that others could write may have been changed
        // already: its line says to read it through.
        if what.starts_with("config") {
            let file = env.conf.clone();
            assert!(
                r.stdout.contains(&format!(
                    "; read {} through once it is put right: whoever could write it may \
                     have changed what it says (fix: ",
                    file.display()
                )),
                "{what}: {}",
                r.stdout
            );
        }
        // One round, or one more for each that said it waits (the spool, then what
        // is in it).
        for round in 0.. {
            for c in &cmds {
                assert!(sh(c).success(), "{what}: {c}");
            }
            let waited = waits(&r);
            r = run();
            if !waited {
                break;
            }
            assert!(round < 2, "{what}: still waiting:\n{}", r.stdout);
            cmds = fixes(&r);
        }
        assert!(
            !r.stdout.contains("FAIL") && fixes(&r).is_empty(),
            "{what}: after {cmds:?}:\n{}",
            r.stdout
        );
        r.code(0);
    }
    // All at once (one FIFO, one auth.conf), each line's fix run as printed.
    let env = Env::new();
    let (_, run) = install_check(&env);
    // The entries first: a submission needs a spool that is not damaged yet.
    entry(&env, false, 0o644, Some(65534));
    entry(&env, true, 0o666, Some(65534));
    for (what, damage) in &cases {
        if !["fifo", "auth", "queued", "held", "missing", "maillog"]
            .iter()
            .any(|p| what.starts_with(p))
        {
            damage(&env);
        }
    }
    fifo(&env, 0o666, Some(65534));
    // Root's (one a user owns is moved, not given to root: no command puts it right).
    auth(&env, 0o644, Some((0, 65534)));
    // One round for each level a fix waits on the one above it (no fix names a path
    // below a directory a user holds until that directory is put right): the
    // configuration's directory, the spool, its sub-directories, their files; and one
    // more.
    for _ in 0..6 {
        // Each round with the admin plain, so that its check looks at the deliverer
        // beside it (the admin's own fix makes it set-gid again).
        plain_admin(&env);
        for c in fixes(&run()) {
            assert!(sh(&c).success(), "{c}");
        }
    }
    let r = run();
    assert!(
        !r.stdout.contains("FAIL") && fixes(&r).is_empty(),
        "{}",
        r.stdout
    );
    r.code(0);
}

/// The fixes in the check's output that name a path below `dir` (never `dir` itself).
fn fixes_below(r: &Run, dir: &Path) -> Vec<String> {
    let below = format!("{}/", dir.display());
    fixes_in(&r.stdout)
        .into_iter()
        .filter(|c| c.contains(&below))
        .collect()
}

/// A spool that an unprivileged user owns: she could swap anything in it for a symbolic
/// link before root ran a fix, so root's check prints no fix naming a path in it (its
/// sub-directories, their files, the entries, the FIFO), only one line saying to put
/// the spool right first, and the spool's own fix (its parent is root's alone). Once
/// that is run, the next check gives the fixes of what is in it, and after those it
/// passes.
#[test]
fn a_spool_a_user_owns_gets_no_fix_inside_it() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let (_, run) = install_check(&env);
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    // What is in it, all of it wrong: each would have its chown or chmod.
    for f in fs::read_dir(&env.spool).unwrap().flatten() {
        if f.file_name().to_string_lossy().starts_with("qf") {
            chmod(f.path(), 0o644);
        }
    }
    chmod(env.spool.join("tmp"), 0o2777);
    fs::create_dir_all(env.spool.join("index")).unwrap();
    std::os::unix::fs::chown(env.spool.join("index"), Some(65534), Some(0)).unwrap();
    chmod(env.spool.join("index"), 0o755);
    mkfifo(&env.spool.join("wakeup"));
    chmod(env.spool.join("wakeup"), 0o666);
    // The spool itself, the user's (nobody's: no test user needed).
    std::os::unix::fs::chown(&env.spool, Some(65534), None).unwrap();
    let r = run();
    r.code(78);
    assert!(
        fixes_below(&r, &env.spool).is_empty(),
        "a fix names a path in a spool a user owns:\n{}",
        r.stdout
    );
    let own = fix_of(line(&r, "FAIL spool: ")).unwrap_or_default();
    assert!(
        own.contains(&format!("chown root:{} ", group_name(spool_gid())))
            && own.ends_with(&format!("chmod 2770 {}", env.spool.display())),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.lines().any(|l| l.starts_with("FAIL spool: ")
            && l.contains("put the spool right first, then check again")),
        "{}",
        r.stdout
    );
    for c in fixes_in(&r.stdout) {
        assert!(sh(&c).success(), "{c}");
    }
    // The spool root's again: what is in it gets its fixes, which make the check pass.
    let r = run();
    assert!(!fixes_below(&r, &env.spool).is_empty(), "{}", r.stdout);
    for c in fixes_in(&r.stdout) {
        assert!(sh(&c).success(), "{c}");
    }
    let r = run();
    assert!(
        !r.stdout.contains("FAIL") && fixes_in(&r.stdout).is_empty(),
        "{}",
        r.stdout
    );
}

/// A spool in a directory a user owns (two of them, one in the other): no fix names a
/// path in that directory but the topmost one's own, whose parent is root's alone; the
/// deeper one, the spool and what is in it wait until it is put right ("put ... right
/// first, then check again"). Fixed round by round, the check passes.
#[test]
fn a_spool_below_a_users_directory_gets_no_fix_below_it() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let (_, run) = install_check(&env);
    // Named for rsendmail (or in a directory so named), as directories and a spool the
    // check repairs must be.
    let top = env.dir.join("rsendmail-q");
    let moved = top.join("r/rsendmail");
    fs::create_dir_all(moved.parent().unwrap()).unwrap();
    fs::rename(&env.spool, &moved).unwrap();
    let conf = fs::read_to_string(&env.conf).unwrap().replace(
        &format!("SPOOLDIR {}\n", env.spool.display()),
        &format!("SPOOLDIR {}\n", moved.display()),
    );
    assert!(conf.contains(&format!("SPOOLDIR {}\n", moved.display())));
    fs::write(&env.conf, conf).unwrap();
    chmod(moved.join("tmp"), 0o2777);
    for d in [&top, &top.join("r")] {
        std::os::unix::fs::chown(d, Some(65534), None).unwrap();
        chmod(d, 0o755);
    }
    let r = run();
    r.code(78);
    // Those of this install (not the system's /etc/aliases a bare machine lacks).
    let ours = |r: &Run| -> Vec<String> {
        fixes_in(&r.stdout)
            .into_iter()
            .filter(|c| c.contains(&env.dir.display().to_string()))
            .collect()
    };
    assert_eq!(
        ours(&r),
        vec![format!("chown root {}", top.display())],
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "put {} right first, then check again",
            top.display()
        )) && r.stdout.contains("what is in it (its sub-directories"),
        "{}",
        r.stdout
    );
    let mut rounds = 0;
    loop {
        let r = run();
        let cmds = ours(&r);
        if cmds.is_empty() {
            assert!(!r.stdout.contains("FAIL"), "{}", r.stdout);
            break;
        }
        rounds += 1;
        assert!(rounds <= 3, "{}", r.stdout);
        for c in cmds {
            assert!(sh(&c).success(), "{c}");
        }
    }
}

/// A system spool of the group root, with `rsendmail` set-gid root: check fails both
/// and never offers a set-gid root binary; a spool a user owns fails too, with no fix
/// naming what is in it, and its fixes (root and a group that is not root's; what is
/// in it in the rounds after, each directory before what is in it) make the check pass.
#[test]
fn a_spool_of_root_or_a_user_is_not_passed() {
    let Some(env) = root_install(true) else {
        return;
    };
    let run = || env.check();
    let bin = env.dir.join("bin/rsendmail");
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    chown_r(&env.spool, "root:root");
    chgrp_chmod(&bin, 0, 0o2755);
    let r = run();
    r.code(78);
    let spool = line(&r, "FAIL spool: ");
    assert!(
        spool.contains("root:root 2770): must be 2770 root:"),
        "{}",
        r.stdout
    );
    line(&r, "FAIL binary: ");
    for l in r.stdout.lines().filter_map(|l| l.rsplit_once(" (fix: ")) {
        assert!(
            !l.1.contains("chgrp root ") && !l.1.contains(":root "),
            "a fix gives the group root:\n{}",
            r.stdout
        );
    }
    // A spool a user owns, its group root: the fixes give it root and the group
    // `rsendmail` is set-gid to, every sub-directory too.
    chown_r(&env.spool, &format!("{}:0", test_user().uid));
    chmod(&env.spool, 0o755);
    chgrp_chmod(&bin, spool_gid(), 0o2755);
    let group = group_name(spool_gid());
    let r = run();
    r.code(78);
    assert!(
        line(&r, "FAIL spool: ").contains(&format!(" 0755): must be 2770 root:{group}")),
        "{}",
        r.stdout
    );
    // No fix names what is in it while it is hers (she could swap it for a link
    // first): the spool's own fix, then, the next round, those of what is in it.
    let inside = format!("{}/", env.spool.display());
    assert!(
        !fixes_in(&r.stdout).iter().any(|c| c.contains(&inside)),
        "{}",
        r.stdout
    );
    let mut r = r;
    // (Three rounds: the spool, then its sub-directories, then their files.)
    for _ in 0..3 {
        for l in r.stdout.lines().filter(|l| l.contains("(fix: ")) {
            assert!(!l.contains(&format!("chown {TEST_USER}")), "{}", r.stdout);
            let cmd = fix_of(l).unwrap();
            assert!(sh(cmd).success(), "{cmd}");
        }
        r = run();
    }
    no_fail(&r);
    assert!(
        line(&r, "ok   spool ").contains(&format!("(root:{group} 2770)")),
        "{}",
        r.stdout
    );
}

/// A spool given to a user and her own group (`chown -R USER:USER`, `rsendmail`
/// set-gid to none): check refuses the group (it is the user's primary group) and its
/// fixes give the spool and the binary a group that is nobody's, never hers; after
/// them check passes and the user is not in the spool's group. A spool of a group with
/// no members that is nobody's primary group passes as it is.
#[test]
fn a_users_group_is_never_the_spools_group() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let bin = env.dir.join("bin/rsendmail");
    no_fail(&run());
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let u = test_user();
    chown_r(&env.spool, &format!("{}:{}", u.uid, u.gid));
    chgrp_chmod(&bin, u.gid, 0o755);
    let r = run();
    r.code(78);
    let users_group = group_name(u.gid);
    line(&r, "FAIL spool: ");
    line(&r, "FAIL binary: ");
    // Root's spool of the user's group: in the words of the rule (a group with members
    // is fit, root's or a user's primary group is not).
    std::os::unix::fs::chown(&env.spool, Some(0), None).unwrap();
    chmod(&env.spool, 0o2770);
    let r = run();
    let spool_line = line(&r, "FAIL spool: ");
    assert!(
        spool_line.contains(&format!(
            "of the group {users_group}, the primary group of the user "
        )) && spool_line.contains("never root's nor a user's primary group")
            && !spool_line.contains("nobody may be in it"),
        "{spool_line}"
    );
    // A spool her group may write: its own fix first, what is in it the round after.
    for _ in 0..3 {
        for l in run().stdout.lines().filter(|l| l.contains("(fix: ")) {
            let cmd = fix_of(l).unwrap();
            assert!(
                !cmd.contains(&format!(":{users_group} "))
                    && !cmd.contains(&format!("chgrp {users_group} ")),
                "a fix gives the user's group: {l}"
            );
            assert!(sh(cmd).success(), "{cmd}");
        }
    }
    let r = run();
    no_fail(&r);
    use std::os::unix::fs::MetadataExt;
    let gid = fs::metadata(&env.spool).unwrap().gid();
    assert_ne!(gid, u.gid, "{}", r.stdout);
    assert_ne!(gid, 0, "{}", r.stdout);
    assert_eq!(fs::metadata(&bin).unwrap().gid(), gid);
    // Nobody is in it and it is nobody's primary group: the user cannot write the spool.
    let g = group(gid);
    assert!(g.mem.is_empty(), "{:?}", g.mem);
}

/// `config` never shows an empty value: `Timeout.queuewarn` without QueueTimeout's
/// `/WARN` part is the built-in warning time the programs use, said so, whether
/// QueueTimeout comes from the file or `-oT`; an option given empty shows what that
/// means.
#[test]
fn config_shows_derived_values_never_empty() {
    let env = Env::with_config("O QueueTimeout=3d\nO DeliveryMode=\n");
    let conf = env.conf.display().to_string();
    let no_empty = |r: &Run| {
        for l in r.stdout.lines() {
            let v = l.split_once('=').map(|(_, v)| v);
            assert!(
                !v.is_some_and(|v| v.is_empty() || v.starts_with(' ')),
                "empty value: {l}\n{}",
                r.stdout
            );
        }
    };
    let r = admin(&env, &["config"]);
    r.code(0);
    no_empty(&r);
    line(
        &r,
        &format!("O Timeout.queuereturn=3d    # set by O QueueTimeout, {conf}: line 6"),
    );
    line(
        &r,
        "O Timeout.queuewarn=4h    # default (O QueueTimeout=3d sets no warning time",
    );
    line(
        &r,
        &format!("O DeliveryMode=i    # {conf}: line 7 (given empty)"),
    );
    for args in [
        &["config", "-oT2d"][..],
        &["config", "-O", "QueueTimeout=2d"][..],
    ] {
        let r = admin(&env, args);
        r.code(0);
        no_empty(&r);
        line(
            &r,
            "O Timeout.queuereturn=2d    # set by O QueueTimeout, command line",
        );
        line(
            &r,
            "O Timeout.queuewarn=4h    # default (O QueueTimeout=2d sets no warning time",
        );
    }
    let r = admin(&env, &["config", "-oT2d/1h"]);
    line(
        &r,
        "O Timeout.queuewarn=1h    # set by O QueueTimeout, command line",
    );
    let r = admin(&Env::new(), &["config"]);
    no_empty(&r);
}

/// A user's own spool: the fixes `check` prints are hers to run (`chmod 600` for her
/// auth.conf, which no group needs to read; `chmod 700` for her spool), and running them
/// as printed makes the check pass.
#[test]
fn a_users_own_spool_gets_fixes_she_can_run() {
    if !can_switch_user() {
        return;
    }
    let here = std::env::temp_dir().join(format!("rsendmail-check-user-{}", std::process::id()));
    let _ = fs::remove_dir_all(&here);
    let bin = here.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for d in [&here, &bin] {
        chmod(d, 0o755);
    }
    copy_programs(&bin);
    let spool = here.join("spool");
    fs::create_dir(&spool).unwrap();
    let auth = here.join("auth.conf");
    fs::write(&auth, "bob|127.0.0.1:pw\n").unwrap();
    let conf = here.join("rsendmail.conf");
    write_config(&conf, &spool, &format!("AUTHPATH {}\n", auth.display()));
    let u = test_user();
    for (p, mode) in [(&spool, 0o755), (&auth, 0o644), (&conf, 0o644)] {
        std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).unwrap();
        chmod(p, mode);
    }
    let check = || {
        let out = as_user(
            &bin.join("rsendmail-admin"),
            &["-C", conf.to_str().unwrap(), "check"],
            &[],
            b"",
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, said) = check();
    assert_eq!(code, Some(78), "{said}");
    let fixes = fixes_in(&said);
    assert!(
        fixes.contains(&format!("chmod 600 {}", auth.display()))
            && fixes.contains(&format!("chmod 700 {}", spool.display())),
        "{said}"
    );
    // 0755: others see the entries' names only, and submissions use it: one rule, a
    // warning in check (not a failure), and a submission queues into it.
    assert!(
        said.lines().any(
            |l| l.starts_with(&format!("warn spool: {} (", spool.display()))
                && l.contains("others can list this user's own spool")
        ),
        "{said}"
    );
    assert!(!said.contains("FAIL spool:"), "{said}");
    // (its auth.conf, which every program refuses at 0644, made hers alone meanwhile)
    chmod(&auth, 0o600);
    let out = as_user(
        &bin.join("rsendmail"),
        &["-C", conf.to_str().unwrap(), "-odq", "bob@example.org"],
        &[],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(fs::metadata(&spool).unwrap().mode() & 0o7777, 0o755);
    chmod(&auth, 0o644);
    for c in &fixes {
        let st = std::process::Command::new("runuser")
            .args(["-u", TEST_USER, "--", "sh", "-c", c])
            .status()
            .unwrap();
        assert!(st.success(), "{c}");
    }
    let (code, said) = check();
    assert_eq!(code, Some(0), "{said}");
    assert!(!said.contains("FAIL") && !said.contains("(fix: "), "{said}");
    assert!(said.contains("ok   auth.conf "), "{said}");
    let _ = fs::remove_dir_all(&here);
}

/// MAILLOG made by a root queue run is 0660 root and the spool's group, whatever the
/// umask, so that users' submissions (set-gid to that group) log to it; check passes
/// it, fails one its group cannot write, with a fix, and passes it again once fixed.
/// One not there yet is a warning with the fix that makes it (its directory is root's
/// alone: a user's first line could not); followed, check passes it.
#[test]
fn maillog_is_made_for_the_spool_group_and_checked() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    // check itself makes and changes nothing: the first program that logs makes it, but
    // not a user's submission, in a directory that must be root's alone: a warning, with
    // the fix that makes it as the programs would.
    let r = run();
    r.code(0);
    let l = line(
        &r,
        &format!("warn maillog: {}: not there yet, and users'", log.display()),
    );
    let made_by_fix = fix_of(l).unwrap().to_string();
    assert!(
        made_by_fix.starts_with("install -m 0660 -o root -g "),
        "{l}"
    );
    assert!(!log.exists());
    // The fix, followed, makes it as the programs would: check passes it.
    assert!(sh(&made_by_fix).success(), "{made_by_fix}");
    line(&run(), &format!("ok   maillog {} (root:", log.display()));
    fs::remove_file(&log).unwrap();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let md = fs::metadata(&log).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o660, "{:o}", md.mode());
    assert_eq!((md.uid(), md.gid()), (0, spool_gid()));
    assert!(fs::read_to_string(&log).unwrap().contains("from=<"));
    let r = run();
    r.code(0);
    line(&r, &format!("ok   maillog {} (root:", log.display()));
    chmod(&log, 0o640);
    let r = run();
    r.code(78);
    let l = line(&r, &format!("FAIL maillog: {} (", log.display()));
    let cmd = fix_of(l).unwrap();
    assert!(sh(cmd).success(), "{cmd}");
    run().code(0);
    // An existing file keeps the mode its admin gave it.
    chmod(&log, 0o664);
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    assert_eq!(fs::metadata(&log).unwrap().mode() & 0o7777, 0o664);
}

/// A user without a system configuration has her own built-in spool, made by her first
/// submission: before it, `check` says so (ok), never a failure with advice she cannot
/// follow (`init` is root's); after it, the spool passes as hers.
#[test]
fn a_users_built_in_spool_not_made_yet_is_no_failure() {
    if !can_switch_user() {
        return;
    }
    assert!(
        !std::path::Path::new(rsendmail::config::DEFAULT_CONFIG).exists(),
        "this test needs a machine without a system config"
    );
    let here = std::env::temp_dir().join(format!("rsendmail-check-own-{}", std::process::id()));
    let _ = fs::remove_dir_all(&here);
    let bin = here.join("bin");
    let home = here.join("home");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&home).unwrap();
    chmod(&here, 0o755);
    chmod(&bin, 0o755);
    copy_programs(&bin);
    let u = test_user();
    std::os::unix::fs::chown(&home, Some(u.uid), Some(u.gid)).unwrap();
    let spool = home.join(".local/state/rsendmail/spool");
    let envs = [("HOME", home.to_str().unwrap())];
    let check = || {
        let out = as_user(&bin.join("rsendmail-admin"), &["check"], &envs, b"");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = check();
    let spool_line = said
        .lines()
        .find(|l| l.contains(" spool"))
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        spool_line,
        format!(
            "ok   spool {}: not made yet (this user's own; her first submission makes it, mode 0700)",
            spool.display()
        ),
        "{said}"
    );
    assert!(
        !said.contains("FAIL spool") && !said.contains("init"),
        "{said}"
    );
    assert!(!spool.exists());
    // Her first submission makes it, and check passes it.
    let out = as_user(
        &bin.join("rsendmail"),
        &["-odq", "someone@example.org"],
        &envs,
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let said = check();
    assert!(
        said.contains(&format!("ok   spool {} (", spool.display())) && !said.contains("FAIL spool"),
        "{said}"
    );
    let _ = fs::remove_dir_all(&here);
}

/// The system spool whose users' submissions cannot deliver themselves (`rsendmail`
/// not set-gid to the spool's group, auth.conf out of the group's reach): no runner
/// listening fails the check, saying why.
#[test]
fn no_runner_fails_when_users_cannot_deliver_themselves() {
    if !is_root() {
        return;
    }
    for (what, want) in [
        ("binary", "is not set-gid to the spool's group"),
        ("auth", "auth.conf is not readable by the spool's group"),
    ] {
        let env = Env::new();
        let prog = install(&env);
        if what == "binary" {
            chmod(env.dir.join("bin/rsendmail"), 0o755);
        } else {
            let a = auth_conf(&env, 0o600);
            std::os::unix::fs::chown(&a, None, Some(65534)).unwrap();
        }
        let r = run_admin(&env, &prog, "check");
        r.code(78);
        let w = line(&r, "FAIL wakeup: no ");
        assert!(
            w.contains(want) && w.contains(system_runner_advice()),
            "{what}: {w}"
        );
    }
}

/// The spool as the programs leave it after submissions, a queue run, a hold and a
/// delete (which rebuilds the index): its sub-directories and their files pass.
#[test]
fn a_spool_in_use_passes_the_sub_directory_step() {
    let env = Env::new();
    let prog = install(&env);
    for rcpt in ["bob@example.org", "carol@example.net", "dave@example.com"] {
        env.sendmail(&["-odq", rcpt], MSG).code(0);
    }
    env.sendmail(&["-qf"], b"").code(0);
    let ids: Vec<String> = env
        .entries()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap()[2..].to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{}", env.listing());
    let admin = |args: &[&str]| {
        let mut full = vec!["-C", env.conf.to_str().unwrap()];
        full.extend_from_slice(args);
        env.run_raw(&prog, &full, b"")
    };
    admin(&["hold", &ids[0]]).code(0);
    admin(&["delete", &ids[1]]).code(0);
    for d in ["tmp", "index", "index/domains", "hold"] {
        assert!(env.spool.join(d).is_dir(), "{d}");
    }
    let r = admin(&["check"]);
    assert!(!r.stdout.contains("FAIL spool"), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("ok   spool ") && l.contains(" sub-directories 2770 ")),
        "{}",
        r.stdout
    );
}

/// A set-gid `rsendmail-admin` whose `rsendmail-deliver` beside it is writable by a
/// group: check names that file (not the installed path the programs then look for),
/// with a fix that, run as printed, makes the step pass.
#[test]
fn check_names_the_unsafe_deliverer_beside_it() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let prog = env.prog.clone();
    chgrp_chmod(&prog, spool_gid(), 0o2755);
    let deliver = env.dir.join("bin/rsendmail-deliver");
    let u = test_user();
    chgrp_chmod(&deliver, u.gid, 0o775);
    let users_group = group_name(u.gid);
    let r = run();
    r.code(78);
    let l = r
        .stdout
        .lines()
        .find(|l| l.starts_with("FAIL binary: ") && l.contains("rsendmail-deliver"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        l.starts_with(&format!(
            "FAIL binary: {} (root:{users_group} 0775)",
            deliver.display()
        )) && l.contains(&format!("it is writable by its group {users_group}"))
            && l.ends_with(&format!("(fix: chmod 755 {})", deliver.display())),
        "{l}"
    );
    let st = std::process::Command::new("chmod")
        .args(["755", deliver.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let r = run();
    let ok = format!(
        "ok   binary {} (root:{users_group} 0755)",
        deliver.display()
    );
    assert!(r.stdout.lines().any(|l| l == ok), "{}", r.stdout);
}

/// An access ACL that lets a user write `rsendmail-deliver` (`setfacl -m u:USER:rwx`,
/// which shows as the group bits 0775) is named as that ACL entry, not as the file's
/// group (root's, harmless), by check and by root's refusal to execute it; check's fix
/// removes the ACL (`setfacl -b`, not a `chmod` that only narrows its mask) and,
/// followed, makes the step pass.
#[test]
fn an_acl_on_the_deliverer_is_named_as_the_acl() {
    let Some(env) = root_install(true) else {
        return;
    };
    let run = || env.check();
    let prog = env.prog.clone();
    chgrp_chmod(&prog, spool_gid(), 0o2755);
    let deliver = env.dir.join("bin/rsendmail-deliver");
    chgrp_chmod(&deliver, 0, 0o755);
    let acl = format!("u:{TEST_USER}:rwx");
    match std::process::Command::new("setfacl")
        .args(["-m", &acl])
        .arg(&deliver)
        .status()
    {
        Ok(st) if st.success() => {}
        other => {
            eprintln!("note: setfacl -m {acl} ({other:?}): skipped");
            return;
        }
    }
    let by_acl = format!("given write by an access ACL for the user \"{TEST_USER}\"");
    let r = run();
    r.code(78);
    let l = r
        .stdout
        .lines()
        .find(|l| l.starts_with("FAIL binary: ") && l.contains("rsendmail-deliver"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    let d = deliver.display();
    assert!(
        l.contains(&format!("it is {by_acl}"))
            && !l.contains("writable by its group")
            && l.ends_with(&format!("(fix: setfacl -b {d} && chmod 755 {d})")),
        "{l}"
    );
    // Root's delivery refuses it in the same words: the file beside the program, named.
    let r = env.run_raw(
        &env.dir.join("bin/rsendmail"),
        &["-C", env.conf.to_str().unwrap(), "-odi", "bob@example.org"],
        MSG,
    );
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains(&format!(
            "{d}, beside this program, is refused: it is {by_acl}"
        )),
        "{said}"
    );
    let st = std::process::Command::new("sh")
        .args(["-c", &format!("setfacl -b {d} && chmod 755 {d}")])
        .status()
        .unwrap();
    assert!(st.success());
    let r = run();
    assert!(
        r.stdout
            .lines()
            .any(|l| l == format!("ok   binary {d} (root:root 0755)")),
        "{}",
        r.stdout
    );
}

/// A program a user owns (the set-gid `rsendmail`, `rsendmail-deliver`) fails check,
/// even with the right group and mode, and its repair installs a fresh copy as root
/// with the program's group and mode (the set-gid one its spool group and 2755), never
/// a chown or chmod of the file she owns (she could swap it for a link first).
#[test]
fn a_program_a_user_owns_is_installed_anew() {
    let Some(env) = root_install(true) else {
        return;
    };
    let run = || env.check();
    let u = test_user();
    let bin = env.dir.join("bin/rsendmail");
    let deliver = env.dir.join("bin/rsendmail-deliver");
    for p in [&bin, &deliver] {
        std::os::unix::fs::chown(p, Some(u.uid), None).unwrap();
    }
    // chown took the set-gid bit away.
    chmod(&bin, 0o2755);
    let r = run();
    r.code(78);
    let group = group_name(spool_gid());
    let b = line(&r, &format!("FAIL binary: {} (", bin.display()));
    assert!(
        b.contains(&format!(
            "owned by the user \"{TEST_USER}\", who can replace"
        )) && b.contains(&format!(
            "`install -o root -g {group} -m 2755 target/release/rsendmail {}`",
            bin.display()
        )),
        "{b}"
    );
    let d = line(&r, &format!("FAIL binary: {} (", deliver.display()));
    assert!(
        d.contains(&format!(
            "`install -o root -g root -m 755 target/release/rsendmail-deliver {}`",
            deliver.display()
        )),
        "{d}"
    );
    assert!(
        !r.stdout.contains("chown root") && !r.stdout.contains("chmod 2755"),
        "{}",
        r.stdout
    );
}

/// A configuration file in a user's home, or reached through a link: `check` fails it
/// with no chown or chmod (her home taken from her, or the link followed), and no `ok`.
#[test]
fn config_fix_changes_no_users_home_nor_a_link() {
    if !can_switch_user() {
        return;
    }
    let u = test_user();
    let env = Env::new();
    let home_dir = u.home.join(format!("rsm-conf-{}", std::process::id()));
    fs::create_dir_all(&home_dir).unwrap();
    std::os::unix::fs::chown(&home_dir, Some(u.uid), Some(u.gid)).unwrap();
    let conf = home_dir.join("u.conf");
    fs::copy(&env.conf, &conf).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    let linkdir = env.dir.join(format!("conflink-{}", std::process::id()));
    fs::create_dir_all(&linkdir).unwrap();
    std::os::unix::fs::symlink(&home_dir, linkdir.join("h")).unwrap();
    let mut outs = Vec::new();
    for c in [conf.clone(), linkdir.join("h/u.conf")] {
        let prog = install(&env);
        outs.push(
            env.run_raw(&prog, &["-C", c.to_str().unwrap(), "check"], b"")
                .stdout,
        );
    }
    let _ = fs::remove_dir_all(&home_dir);
    for said in outs {
        assert!(
            said.lines()
                .any(|l| l.starts_with("FAIL config: ") && l.contains("never change the owner")),
            "{said}"
        );
        assert!(
            !said
                .lines()
                .any(|l| l.starts_with("FAIL config: ") && l.contains("chown")),
            "{said}"
        );
        assert!(
            !said.lines().any(|l| l.starts_with("ok   config: ")),
            "{said}"
        );
    }
}

/// An auth.conf line with an empty host, a host that is not a host name or address, or
/// an empty password is refused with the file and line, by `check` (its config step)
/// and by every program that loads the configuration (78, EX_CONFIG), as the line
/// could never authenticate; a good line for an address literal is taken.
#[test]
fn auth_conf_lines_without_a_host_or_password_are_refused_with_their_line() {
    for (text, why) in [
        ("bob|:pw\n", "no host between '|' and ':'"),
        (
            "bob|smtp example.org:pw\n",
            "the host is not a host name or IP address",
        ),
        (
            "bob|smtp/example.org:pw\n",
            "the host is not a host name or IP address",
        ),
        (
            "bob| smtp.example.org:pw\n",
            "the host is not a host name or IP address (blanks around it",
        ),
        (
            "bob|[192.0.2.300]:pw\n",
            "the host is not a host name or IP address (not an address literal",
        ),
        ("bob|smtp.example.org:\n", "empty password after ':'"),
    ] {
        let env = Env::new();
        let auth = env.dir.join("auth.conf");
        fs::write(&auth, format!("alice|127.0.0.1:Zq9-pw-7Hq2\n{text}")).unwrap();
        chmod(&auth, 0o640);
        env.add_config(&format!("AUTHPATH {}\n", auth.display()));
        let want = format!("{}: line 2: {why}", auth.display());
        let r = admin(&env, &["check"]);
        r.code(78);
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(&format!("FAIL config: {want}"))),
            "{text:?}: {want}\n{}",
            r.stdout
        );
        // Never the password.
        assert!(!r.stdout.contains("Zq9-pw-7Hq2"), "{}", r.stdout);
        let r = env.sendmail(&["-odq", "bob@example.org"], MSG);
        r.code(78);
        assert!(
            r.stdout.starts_with(&want) || r.stderr.starts_with(&want),
            "{text:?}: {want}\n{}{}",
            r.stdout,
            r.stderr
        );
        assert!(env.entries().is_empty());
    }
    // Address literals and addresses are hosts.
    let env = Env::new();
    let auth = env.dir.join("auth.conf");
    fs::write(
        &auth,
        "a|[192.0.2.1]:pw\nb|192.0.2.2:pw\nc|smtp.example.org.:p:w\n",
    )
    .unwrap();
    chmod(&auth, 0o640);
    env.add_config(&format!("AUTHPATH {}\n", auth.display()));
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
}

/// A user who cannot enter the system's 2770 spool (`rsendmail-admin` not set-gid) is
/// told what could not be checked and why, as `warn` lines, never a false failure: the
/// wake-up FIFO, the spool's sub-directories; auth.conf, root's and the spool group's,
/// is not read, and the network steps still run up to EHLO and TLS, AUTH said not
/// tried. The one failure is the program's own mode, with its fix.
#[test]
fn a_user_outside_the_spool_is_told_what_could_not_be_checked() {
    if !can_switch_user() {
        return;
    }
    let Some((env, _pki, peer, _keep)) = tls_auth("srv", "s3cret-pw") else {
        return;
    };
    let prog = install(&env);
    // A spool as a runner leaves it: sub-directories made, the FIFO there.
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    chown_r(&env.spool, &format!("0:{}", spool_gid()));
    let fifo = env.spool.join("wakeup");
    mkfifo(&fifo);
    std::os::unix::fs::chown(&fifo, Some(0), Some(spool_gid())).unwrap();
    // As root, every step passes but the runner (none listens).
    let r = run_admin(&env, &prog, "check");
    line(&r, "ok   spool ");
    line(&r, "ok   auth 127.0.0.1 accepted the credentials");
    // The configuration as the system's (a user's `-C` names her own spool).
    plain_admin(&env);
    let envs = [("RSENDMAIL_SYSTEM_CONFIG", env.conf.to_str().unwrap())];
    let out = as_user(&prog, &["check"], &envs, b"");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let has = |start: &str| {
        said.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in:\n{said}"))
            .to_string()
    };
    let w = has("warn wakeup: ");
    assert!(
        w.contains(&fifo.display().to_string()) && w.contains("could not be checked"),
        "{w}"
    );
    let sub = has("warn spool: ");
    assert!(
        sub.contains("sub-directories") && sub.contains("could not be checked"),
        "{sub}"
    );
    for step in [
        "ok   connect 127.0.0.1 [127.0.0.1] port",
        "ok   greeting 220 ",
        "ok   ehlo ",
        "ok   tls ",
    ] {
        has(step);
    }
    let a = has("warn auth: ");
    assert!(
        a.contains("not tried") && a.contains(&env.dir.join("auth.conf").display().to_string()),
        "{a}"
    );
    let failed: Vec<&str> = said.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        failed.len() == 1
            && failed
                .iter()
                .all(|l| l.starts_with(&format!("FAIL binary: {} (", prog.display()))),
        "{said}"
    );
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(!said.contains("s3cret-pw"), "{said}");
    drop(peer);
}

/// Every `files` fix, followed as printed, makes the step pass: a directory of the
/// aliases file others may write, with a root file in it writable by others too, gets
/// `chmod go-w` of both (one of them alone leaves the other); once a user has swapped
/// the file for her own, no chmod makes it pass, so none is offered, only the repair
/// that makes the file anew from a copy root checked.
#[test]
fn each_files_fix_followed_makes_the_step_pass() {
    if !can_switch_user() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    // Named for rsendmail: its own, which a fix may change.
    let dir = env.dir.join("rsendmail-aliases");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o777);
    let aliases = dir.join("aliases");
    fs::write(&aliases, "postmaster: root\n").unwrap();
    chmod(&aliases, 0o666);
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    let files_line = |r: &Run| {
        r.stdout
            .lines()
            .find(|l| l.starts_with("FAIL files: "))
            .map(str::to_string)
    };
    let r = run_admin(&env, &prog, "check");
    let l = files_line(&r).unwrap_or_else(|| panic!("{}", r.stdout));
    let cmd = fix_of(&l).unwrap_or_else(|| panic!("no fix: {l}"));
    assert!(sh(cmd).success(), "{cmd}");
    let r = run_admin(&env, &prog, "check");
    assert_eq!(files_line(&r), None, "after `{cmd}`:\n{}", r.stdout);
    // The user swaps the file for her own while the directory is open to her.
    chmod(&dir, 0o777);
    let out = std::process::Command::new("runuser")
        .args(["-u", TEST_USER, "--", "sh", "-c"])
        .arg(format!(
            "printf 'postmaster: |/bin/true\\n' > {0}.new && mv -f {0}.new {0}",
            aliases.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(fs::metadata(&aliases).unwrap().uid(), test_user().uid);
    let r = run_admin(&env, &prog, "check");
    let l = files_line(&r).unwrap_or_else(|| panic!("{}", r.stdout));
    if let Some(cmd) = fix_of(&l) {
        assert!(sh(cmd).success(), "{cmd}");
        let r = run_admin(&env, &prog, "check");
        assert_eq!(files_line(&r), None, "after `{cmd}`:\n{}", r.stdout);
    }
    assert!(l.contains("repair: have root make the file anew"), "{l}");
}

/// A user who gives the installed set-gid `rsendmail-admin` a `-C` file reads it with
/// her own rights alone, in every step: a file of the spool's group she may not read
/// (auth.conf) is one `check` and `config` cannot open, never one whose lines they
/// print.
#[test]
fn a_users_config_file_is_read_with_her_own_rights() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    chmod(&env.dir, 0o755);
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, "bob|127.0.0.1:S3cretPW\n").unwrap();
    chgrp_chmod(&auth, spool_gid(), 0o640);
    for command in ["check", "config"] {
        let out = as_user(&prog, &["-C", auth.to_str().unwrap(), command], &[], b"");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(78), "{command}: {said}");
        assert!(!said.contains("S3cretPW"), "{command}: {said}");
        assert!(
            said.contains(&format!(
                "cannot open {}: Permission denied",
                auth.display()
            )),
            "{command}: {said}"
        );
    }
}

/// The built-in /etc/aliases missing is a warning whose fix, followed as printed by
/// root under umask 000, makes a file of mode 0644 (not one others may write, which
/// every program would refuse), and the step passes. Run in a private mount namespace
/// with an overlay on /etc, so that nothing outside it changes.
#[test]
fn the_fix_for_a_missing_aliases_file_sets_its_mode() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    let top = env.dir.join("ovl");
    fs::create_dir_all(top.join("u")).unwrap();
    fs::create_dir_all(top.join("w")).unwrap();
    let script = r#"
top=$1 prog=$2 conf=$3
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$top/u,workdir=$top/w" /etc || exit 90
rm -f /etc/aliases
"$prog" -C "$conf" check > "$top/before" 2>&1
fix=$(sed -n 's/^warn aliases: there is no \/etc\/aliases: .*(fix: \(.*\))$/\1/p' "$top/before")
[ -n "$fix" ] || { echo "no fix:"; cat "$top/before"; exit 91; }
(umask 000 && sh -c "$fix") || exit 92
echo "mode $(stat -c %a /etc/aliases)"
"$prog" -C "$conf" check 2>&1 | grep '^[a-zA-Z]* *aliases' || echo "no aliases line"
"#;
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&top)
        .arg(&prog)
        .arg(&env.conf)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(90) {
        eprintln!("skipped: no overlay on /etc in a private mount namespace here");
        return;
    }
    assert!(out.status.success(), "{said}");
    assert!(said.contains("mode 644\n"), "{said}");
    assert!(said.contains("no aliases line"), "{said}");
}

/// An ALIASES line naming a file that is not there (a typo: every alias would be off
/// without a word) fails the check with the line that names it; the aliases file the
/// configuration does not name (the built-in one) is not the check's to fail.
#[test]
fn check_fails_an_aliases_line_naming_no_file() {
    let env = Env::new();
    let missing = env.dir.join("aliasez");
    env.add_config(&format!("ALIASES {}\n", missing.display()));
    let r = admin(&env, &["check"]);
    r.code(78);
    let fail = line(&r, "FAIL aliases:");
    let n = env.config_line("ALIASES ");
    assert!(
        fail.contains(&format!(
            "{}: line {n}: cannot open ALIASES {}: No such file or directory",
            env.conf.display(),
            missing.display()
        )),
        "{}",
        r.stdout
    );
    // Made, the line passes.
    fs::write(&missing, "postmaster: root\n").unwrap();
    let r = admin(&env, &["check"]);
    assert!(!r.stdout.contains("FAIL aliases"), "{}", r.stdout);
}

/// A MAILSPOOL that is not there (a typo of the line) fails the check with the line:
/// local mail (root, postmaster, the reports of returned mail) would wait in the queue
/// while `check --to root` and the submission said nothing. Made, the step passes.
#[test]
fn check_fails_a_mail_spool_that_is_not_there() {
    let env = Env::new();
    let mail = env.dir.join("mail");
    let missing = env.dir.join("mial");
    let conf = fs::read_to_string(&env.conf).unwrap();
    fs::write(
        &env.conf,
        conf.replace(
            &format!("MAILSPOOL {}\n", mail.display()),
            &format!("MAILSPOOL {}\n", missing.display()),
        ),
    )
    .unwrap();
    let r = admin(&env, &["check"]);
    r.code(78);
    let fail = line(&r, "FAIL mailboxes: ");
    let n = env.config_line("MAILSPOOL ");
    assert!(
        fail.contains(&format!(
            "{}: line {n}: MAILSPOOL {}: No such file or directory: local mail",
            env.conf.display(),
            missing.display()
        )),
        "{}",
        r.stdout
    );
    fs::create_dir(&missing).unwrap();
    let r = admin(&env, &["check"]);
    assert!(!r.stdout.contains("mailboxes"), "{}", r.stdout);
}

/// The aliases file's lines that no delivery uses fail the check with the file and the
/// line, as `newaliases` says them; a file users' submissions cannot read fails with its
/// repair, which makes the step pass.
#[test]
fn check_fails_aliases_lines_in_error_and_a_file_users_cannot_read() {
    let env = Env::new();
    let aliases = env.dir.join("aliases");
    fs::write(&aliases, "postmaster: root\nbad line\n").unwrap();
    chmod(&aliases, 0o644);
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    let r = admin(&env, &["check"]);
    r.code(78);
    let fail = line(&r, "FAIL aliases: ");
    assert!(
        fail.contains(&format!("{}: line 2: missing colon", aliases.display())),
        "{}",
        r.stdout
    );
    fs::write(&aliases, "postmaster: root\n").unwrap();
    let r = admin(&env, &["check"]);
    assert!(!r.stdout.contains("aliases"), "{}", r.stdout);
    if !is_root() {
        return;
    }
    chmod(&aliases, 0o600);
    let r = admin(&env, &["check"]);
    r.code(78);
    let fail = line(&r, "FAIL aliases: ");
    assert!(fail.contains("users' submissions cannot read it"), "{fail}");
    let fix = fix_of(fail).unwrap().to_string();
    assert!(sh(&fix).success(), "{fix}");
    let r = admin(&env, &["check"]);
    assert!(!r.stdout.contains("aliases"), "{}", r.stdout);
}

/// A user's `check --to` another user whose `.forward` she may not read never calls
/// the mailbox where the mail goes: the route is a warning naming the `.forward` that
/// could not be read, as `-bv` warns a user who is not root; root follows it.
#[test]
fn check_to_a_user_whose_forward_cannot_be_read_says_so() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let _turn = crate::local::forward_turn();
    let env = Env::new();
    chmod(&env.dir, 0o755);
    chmod(&env.conf, 0o644);
    let fwd = crate::local::write_forward("secret-target@hidden.example\n");
    chmod(&fwd, 0o600);
    let prog = env.dir.join("rsendmail-admin");
    copy_executable(&PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-admin")), &prog);
    chmod(&prog, 0o755);
    copy_executable(
        &PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-deliver")),
        &env.dir.join("rsendmail-deliver"),
    );
    chmod(env.dir.join("rsendmail-deliver"), 0o755);
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(&prog)
        .args(["-C", env.conf.to_str().unwrap(), "check", "--to", TEST_USER])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let route = said
        .lines()
        .find(|l| l.contains(" route"))
        .unwrap_or_else(|| panic!("no route line:\n{said}"));
    assert!(route.starts_with("warn route: "), "{said}");
    assert!(
        route.contains(&format!(
            "the mailbox of {TEST_USER}, unless its .forward sends the mail on ({} could not \
             be read: Permission denied)",
            fwd.display()
        )),
        "{said}"
    );
    assert!(!route.contains("secret-target"), "{said}");
    // Root reads it: where the mail goes.
    let r = admin(&env, &["check", "--to", TEST_USER]);
    let route = line(&r, "ok   route ");
    assert!(
        route.contains("secret-target@hidden.example (sent on)"),
        "{route}"
    );
    let _ = fs::remove_file(&fwd);
}

/// The dns line says where the answer came from: `localhost` is answered by the
/// resolver itself, never "through RESOLVER" (whose server, a closed port here, was
/// not asked).
#[test]
fn check_dns_line_names_an_answer_no_server_gave() {
    let env = Env::new();
    env.add_config(&format!("SMARTHOST localhost:{}\n", closed_tcp_port()));
    let r = admin(&env, &["check"]);
    let d = line(&r, "ok   dns localhost ");
    assert!(
        d.starts_with("ok   dns localhost as this host (RESOLVER is not asked for it): "),
        "{d}"
    );
    assert!(!d.contains("through RESOLVER"), "{d}");
}

/// A server on 127.0.0.1 that greets, answers EHLO, MAIL and RSET with 250 and RCPT
/// with `rcpt_reply` (CRLF-ended lines); the thread ends with the test.
fn server_refusing_rcpt(rcpt_reply: &'static str) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                let _ = w.write_all(b"220 scripted ESMTP\r\n");
                let mut r = BufReader::new(s);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    let cmd = line.to_ascii_uppercase();
                    let _ = if cmd.starts_with("RCPT") {
                        w.write_all(rcpt_reply.as_bytes())
                    } else {
                        w.write_all(b"250 ok\r\n")
                    };
                    if cmd.starts_with("QUIT") {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    port
}

/// `check --to` shows a multi-line refusal whole: the reason is often on one line and
/// the link that explains it on another.
#[test]
fn check_to_shows_every_line_of_a_multi_line_reply() {
    let port = server_refusing_rcpt(
        "550-5.7.1 first line of the refusal\r\n550 5.7.1 see https://example.org/why\r\n",
    );
    let env = Env::new();
    env.add_config(&format!("SMARTHOST 127.0.0.1\nPORT {port}\n"));
    let r = admin(&env, &["check", "--to", "bob@example.org"]);
    let rcpt = line(&r, "FAIL rcpt: ");
    assert!(
        rcpt.contains(
            "RCPT TO:<bob@example.org>: 550 5.7.1 first line of the refusal / 5.7.1 see \
             https://example.org/why"
        ),
        "{rcpt}"
    );
}

/// An `:include:` file named by the aliases file that someone besides its owner may
/// write (its group, by mode or by an access ACL for a named user) is unsafe, as
/// sendmail marks it: its members are used, its `|command` and `/file` never; `-bv`,
/// `check --to` and a delivery all say so.
#[test]
fn an_include_file_others_may_write_names_no_program_or_file() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let ran = env.dir.join("ran");
    let file = env.dir.join("list.mbox");
    let list = env.dir.join("list.inc");
    fs::write(
        &list,
        format!(
            "\"|/bin/sh -c 'id > {}'\"\n{}\n",
            ran.display(),
            file.display()
        ),
    )
    .unwrap();
    let aliases = env.dir.join("aliases");
    fs::write(
        &aliases,
        format!("secretlist: :include:{}\n", list.display()),
    )
    .unwrap();
    env.add_config(&format!(
        "ALIASES {}\nMAILSPOOL {}\n",
        aliases.display(),
        env.dir.join("mail").display()
    ));
    let unsafe_line = format!(
        "Address :include:{} is unsafe for mailing to programs",
        list.display()
    );
    let setups: [(&str, &[&str]); 2] = [
        ("group-writable", &["chmod", "0664"]),
        ("ACL-writable", &["setfacl", "-m", "u:nobody:rw"]),
    ];
    for (what, cmd) in setups {
        let _ = std::process::Command::new("setfacl")
            .arg("-b")
            .arg(&list)
            .status();
        chmod(&list, 0o644);
        let st = std::process::Command::new(cmd[0])
            .args(&cmd[1..])
            .arg(&list)
            .status();
        if !st.is_ok_and(|s| s.success()) {
            // No ACLs on this file system (chmod cannot fail here).
            assert_eq!(cmd[0], "setfacl", "{what}");
            continue;
        }
        let bv = env.sendmail(&["-bv", "secretlist"], b"");
        assert!(bv.stdout.contains(&unsafe_line), "{what}: {}", bv.stdout);
        assert!(
            !bv.stdout.contains("deliverable: mailer prog"),
            "{what}: {}",
            bv.stdout
        );
        let r = admin(&env, &["check", "--to", "secretlist"]);
        assert!(
            r.stdout.contains(&unsafe_line) && !r.stdout.contains("the command |"),
            "{what}: {}",
            r.stdout
        );
        env.sendmail(&["-odi", "secretlist"], b"Subject: t\n\nhello\n");
        assert!(!ran.exists(), "{what}: the command ran");
        assert!(!file.exists(), "{what}: the file was written");
    }
}

/// An auth.conf a named user may read through an access ACL is readable by others,
/// whatever its mode (0640) says: check fails it with `setfacl -b` as its fix, and the
/// programs refuse it as they refuse one of mode 0644; the fix run as printed clears it.
#[test]
fn an_auth_conf_readable_through_an_acl_is_refused() {
    let env = Env::new();
    let auth = auth_conf(&env, 0o640);
    let st = std::process::Command::new("setfacl")
        .args(["-m", "u:nobody:r"])
        .arg(&auth)
        .status();
    if !st.is_ok_and(|s| s.success()) {
        // No ACLs on this file system.
        return;
    }
    let r = admin(&env, &["check"]);
    r.code(78);
    let a = line(&r, "FAIL auth.conf: ");
    assert!(
        a.contains("is readable by others: an access ACL lets the user \"nobody\" read it"),
        "{a}"
    );
    let sent = env.sendmail(&["-odq", "bob@example.org"], MSG);
    sent.code(78);
    assert!(
        sent.stdout.contains(&format!(
            "AUTHPATH {} is readable by others (an access ACL lets the user \"nobody\" read it)",
            auth.display()
        )),
        "{}",
        sent.stdout
    );
    assert!(env.entries().is_empty());
    let cmd = fix_of(a).unwrap_or_else(|| panic!("no fix in {a}"));
    assert!(sh(cmd).success(), "{cmd}");
    let r = admin(&env, &["check"]);
    assert!(!r.stdout.contains("FAIL auth.conf"), "{}", r.stdout);
}

/// A spool directory regrouped by mistake to another group fit for a spool, while the
/// installed `rsendmail`, the sub-directories, the entries and auth.conf keep the
/// install's group: the spool directory is the one to put right. Check's fixes, run in
/// order as printed, give it back the install's group and never regroup the binaries or
/// auth.conf; no queued message is set aside.
#[test]
fn a_spool_regrouped_by_mistake_gets_the_installs_group_back() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let auth = auth_conf(&env, 0o640);
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    env.sendmail(&["-odq", "carol@example.org"], MSG).code(0);
    let (prog, run) = install_check(&env);
    let (wrong, wrong_gid) = crate::harness::other_fit_group();
    std::os::unix::fs::chown(&env.spool, None, Some(wrong_gid)).unwrap();
    let r = run();
    let cmds = fixes_in(&r.stdout);
    assert!(!cmds.is_empty(), "no fix in\n{}", r.stdout);
    for c in &cmds {
        assert!(
            !c.contains(&format!("{wrong} ")),
            "a fix gives {wrong}: {c}\n{}",
            r.stdout
        );
        assert!(sh(c).success(), "{c}");
    }
    let r = run();
    assert!(
        !r.stdout.contains("FAIL") && fixes_in(&r.stdout).is_empty(),
        "after {cmds:?}:\n{}",
        r.stdout
    );
    let want = spool_gid();
    assert_eq!(fs::metadata(&env.spool).unwrap().gid(), want);
    assert_eq!(
        fs::metadata(prog.with_file_name("rsendmail"))
            .unwrap()
            .gid(),
        want
    );
    assert_eq!(fs::metadata(&auth).unwrap().gid(), want);
    // init, once more, keeps every message.
    run_admin(&env, &prog, "init").code(0);
    assert_eq!(env.entries().len(), 2, "{:?}", env.entries());
    let corrupt = fs::read_dir(env.spool.join("corrupt")).map_or(0, |d| d.count());
    assert_eq!(corrupt, 0);
}

/// Every directory on the path of the installed programs must be root's alone, a sticky
/// one too (root runs them, and users with the spool's group): one above them that a
/// user's group may write fails `binary`, naming it, with `chmod go-w` of it; a sticky
/// one everyone may write (as /tmp), with the programs installed elsewhere (its mode
/// left). Each followed, the line passes.
#[test]
fn check_fails_a_directory_above_the_programs_that_others_may_write() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let env = Env::new();
    let installed = install(&env);
    let top = env.dir.join("top");
    fs::create_dir(&top).unwrap();
    let bin = top.join("sbin");
    fs::rename(installed.parent().unwrap(), &bin).unwrap();
    let prog = bin.join("rsendmail-admin");
    let fails = |r: &Run, who: &str| -> Vec<String> {
        let want = format!("the directory {} on its path is {who}", top.display());
        r.stdout
            .lines()
            .filter(|l| l.starts_with("FAIL binary: ") && l.contains(&want))
            .map(str::to_string)
            .collect()
    };
    let none_of_top = |r: &Run| {
        assert!(
            !r.stdout
                .lines()
                .any(|l| l.starts_with("FAIL") && l.contains(&top.display().to_string())),
            "{}",
            r.stdout
        );
    };
    // Writable by a user's group: `chmod go-w` of it.
    let ug = test_user().gid;
    chgrp_chmod(&top, ug, 0o775);
    let r = run_admin(&env, &prog, "check");
    let f = fails(&r, &format!("writable by its group {}", group_name(ug)));
    assert_eq!(f.len(), 1, "{}", r.stdout);
    assert_eq!(
        fix_of(&f[0]),
        Some(format!("chmod go-w {}", top.display()).as_str()),
        "{}",
        r.stdout
    );
    assert!(sh(fix_of(&f[0]).unwrap()).success());
    none_of_top(&run_admin(&env, &prog, "check"));
    // Everyone's, not sticky: `chmod go-w` of it too.
    chgrp_chmod(&top, 0, 0o777);
    let r = run_admin(&env, &prog, "check");
    let f = fails(&r, "writable by everyone");
    assert_eq!(f.len(), 1, "{}", r.stdout);
    assert_eq!(
        fix_of(&f[0]),
        Some(format!("chmod go-w {}", top.display()).as_str()),
        "{}",
        r.stdout
    );
    // Root's and sticky, as /tmp: others may replace there only what they own, and
    // what is below it is root's: no line.
    chgrp_chmod(&top, 0, 0o1777);
    none_of_top(&run_admin(&env, &prog, "check"));
}

/// A system configuration users' programs cannot read (0600: they read it with the
/// spool's group) fails root's check, with `chmod 644` of it; followed, the line
/// passes. One the spool's group may read passes too.
#[test]
fn check_fails_a_system_config_users_cannot_read() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    // Not set-gid: root's own command, told the configuration.
    plain_admin(&env);
    let run = || {
        let out = std::process::Command::new(&prog)
            .arg("check")
            .env("RSENDMAIL_SYSTEM_CONFIG", &env.conf)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said_of = |said: &str| -> Vec<String> {
        said.lines()
            .filter(|l| l.starts_with("FAIL config: ") && l.contains("users' programs cannot read"))
            .map(str::to_string)
            .collect()
    };
    chmod(&env.conf, 0o600);
    let said = run();
    let fails = said_of(&said);
    assert_eq!(fails.len(), 1, "{said}");
    assert_eq!(
        fix_of(&fails[0]),
        Some(format!("chmod 644 {}", env.conf.display()).as_str()),
        "{said}"
    );
    assert!(sh(fix_of(&fails[0]).unwrap()).success());
    assert_eq!(said_of(&run()), Vec::<String>::new());
    // Readable by the spool's group alone: users' programs read it with that group.
    chgrp_chmod(&env.conf, spool_gid(), 0o640);
    let said = run();
    assert_eq!(said_of(&said), Vec::<String>::new(), "{said}");
}

/// The repair a `files` line offers fits the fault: a MAILLOG in a directory a user owns
/// names her directory, not a mode to keep; an auth.conf a user owns in a directory
/// that is root's alone is made anew in its place. Each repair, followed, makes the
/// line pass.
#[test]
fn check_repairs_fit_the_fault_of_a_users_file_or_directory() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let u = test_user();
    // MAILLOG in a directory the user owns.
    let env = Env::new();
    let logs = env.dir.join("logs");
    fs::create_dir(&logs).unwrap();
    std::os::unix::fs::chown(&logs, Some(u.uid), Some(u.gid)).unwrap();
    let good = fs::read_to_string(&env.conf).unwrap();
    env.add_config(&format!("MAILLOG {}\n", logs.join("maillog").display()));
    let r = admin(&env, &["check"]);
    let l = line(&r, "FAIL files: ");
    assert!(
        l.contains(&format!(
            "{} belongs to the user \"{TEST_USER}\", who chose what is in it",
            logs.display()
        )) && !l.contains("never change the mode"),
        "{l}"
    );
    // Followed (MAILLOG removed: syslog), the line passes.
    fs::write(&env.conf, &good).unwrap();
    let r = admin(&env, &["check"]);
    assert!(!r.stdout.contains("FAIL files"), "{}", r.stdout);
    // An auth.conf the user owns, in root's directory.
    let env = Env::new();
    let auth = auth_conf(&env, 0o640);
    std::os::unix::fs::chown(&auth, Some(u.uid), Some(spool_gid())).unwrap();
    let r = admin(&env, &["check"]);
    let l = line(&r, "FAIL files: ");
    assert!(
        l.contains(&format!(
            "repair: have root remove {} and write it anew in its place",
            auth.display()
        )) && !l.contains("name that path in"),
        "{l}"
    );
    // Followed: removed, and written anew by root in its place.
    fs::remove_file(&auth).unwrap();
    fs::write(&auth, "bob|127.0.0.1:pw\n").unwrap();
    chgrp_chmod(&auth, spool_gid(), 0o640);
    let r = admin(&env, &["check"]);
    assert!(!r.stdout.contains("FAIL files"), "{}", r.stdout);
}

/// Plain `check` looks at each `:include:` file the aliases file names as a delivery
/// (and `check --to` the alias) reads it: one line each, `ok`; `FAIL` for a file that
/// is missing, writable by everyone, one DefaultUser may not read, a link to a FIFO,
/// or an unsafe one (its group may write it) naming a program; `warn` for an unsafe
/// one naming addresses alone. `--to` the alias fails each that fails, and the fixes,
/// run as printed, clear their lines.
#[test]
fn plain_check_looks_at_each_include_file() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let d = env.dir.join("lists");
    fs::create_dir(&d).unwrap();
    chmod(&d, 0o755);
    let write = |name: &str, text: &str, mode: u32| {
        let p = d.join(name);
        fs::write(&p, text).unwrap();
        chmod(&p, mode);
        p
    };
    let ok = write(
        "ok.inc",
        &format!("{TEST_USER}\nfriend@example.org\n"),
        0o644,
    );
    let ww = write("ww.inc", &format!("{TEST_USER}\n"), 0o666);
    let gw = write("gw.inc", &format!("{TEST_USER}\n"), 0o664);
    let gwprog = write("gwprog.inc", "\"|/bin/true\"\n", 0o664);
    let secret = write("secret.inc", &format!("{TEST_USER}\n"), 0o600);
    let missing = d.join("missing.inc");
    mkfifo(&d.join("fifo"));
    let link = d.join("link.inc");
    std::os::unix::fs::symlink(d.join("fifo"), &link).unwrap();
    let aliases = env.dir.join("aliases");
    let lists = [
        ("okl", &ok),
        ("wwl", &ww),
        ("gwl", &gw),
        ("gwprogl", &gwprog),
        ("secretl", &secret),
        ("missingl", &missing),
        ("linkl", &link),
    ];
    let text: String = lists
        .iter()
        .map(|(a, p)| format!("{a}: :include:{}\n", p.display()))
        .collect();
    fs::write(&aliases, text).unwrap();
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    let r = admin(&env, &["check"]);
    let of = |p: &Path| {
        let name = format!("{}", p.display());
        let found: Vec<&str> = r
            .stdout
            .lines()
            .filter(|l| l.contains(" include") && l.contains(&name))
            .collect();
        assert_eq!(found.len(), 1, "{name}:\n{}", r.stdout);
        found[0].to_string()
    };
    assert!(of(&ok).starts_with("ok   include "), "{}", r.stdout);
    let fails = [&ww, &gwprog, &secret, &missing, &link];
    for p in fails {
        assert!(of(p).starts_with("FAIL include: "), "{}", r.stdout);
    }
    assert!(of(&ww).contains("World writable file"), "{}", r.stdout);
    assert!(of(&secret).contains("Permission denied"), "{}", r.stdout);
    assert!(
        of(&missing).contains("No such file or directory"),
        "{}",
        r.stdout
    );
    assert!(of(&link).contains("not a regular file"), "{}", r.stdout);
    assert!(
        of(&gwprog).contains("is unsafe for mailing to programs"),
        "{}",
        r.stdout
    );
    assert!(of(&gw).starts_with("warn include: "), "{}", r.stdout);
    assert_ne!(r.code, 0, "{}", r.stdout);
    // As the --to path grades them.
    for (a, p) in lists {
        let to = admin(&env, &["check", "--to", a]);
        assert_eq!(
            to.stdout.contains("FAIL route: "),
            fails.contains(&p),
            "{a}: {}",
            to.stdout
        );
    }
    // Each fix, run as printed, clears its line.
    let cmds = fixes_in(&r.stdout);
    assert_eq!(cmds.len(), 4, "{}", r.stdout);
    for c in &cmds {
        assert!(sh(c).success(), "{c}");
    }
    let r = admin(&env, &["check"]);
    for p in [&ok, &ww, &gw, &gwprog, &secret] {
        let name = format!("{}", p.display());
        let l = r
            .stdout
            .lines()
            .find(|l| l.contains(" include") && l.contains(&name))
            .unwrap_or_else(|| panic!("{name}: {}", r.stdout));
        assert!(l.starts_with("ok   include "), "{}", r.stdout);
    }
}

/// An `:include:` file a user owns, in a directory of hers, that DefaultUser may not
/// read or that others may write: root's check offers her own command
/// (`runuser -u USER -- chmod ...`), never a root chmod of a path she holds. Run as
/// printed it mends the step; after she swaps the file for a link to a root file,
/// running it leaves that file's mode as it was.
#[test]
fn a_users_include_file_gets_her_own_repair_not_roots() {
    if !can_switch_user() {
        return;
    }
    let env = Env::new();
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let user = test_user();
    let d = env.dir.join("u");
    fs::create_dir(&d).unwrap();
    std::os::unix::fs::chown(&d, Some(user.uid), Some(user.gid)).unwrap();
    chmod(&d, 0o755);
    let list = d.join("evil.list");
    let secret = env.dir.join("secret");
    let aliases = env.dir.join("aliases");
    fs::write(&aliases, format!("bad: :include:{}\n", list.display())).unwrap();
    chmod(&aliases, 0o644);
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    let name = format!("{}", list.display());
    for (mode, why, cmd) in [
        (0o600, "Permission denied", "chmod o+r"),
        (0o666, "World writable file", "chmod go-w"),
        (0o664, "", "chmod go-w"),
    ] {
        fs::write(&list, format!("{TEST_USER}\n")).unwrap();
        std::os::unix::fs::chown(&list, Some(user.uid), Some(user.gid)).unwrap();
        chmod(&list, mode);
        let r = admin(&env, &["check"]);
        let l = r
            .stdout
            .lines()
            .find(|l| l.contains(" include") && l.contains(&name))
            .unwrap_or_else(|| panic!("{name}: {}", r.stdout))
            .to_string();
        assert!(!l.starts_with("ok "), "{mode:o}: {l}");
        assert!(l.contains(why), "{mode:o}: {l}");
        let fix = fix_of(&l)
            .unwrap_or_else(|| panic!("{mode:o}: {l}"))
            .to_string();
        assert_eq!(
            fix,
            format!("runuser -u {TEST_USER} -- {cmd} {name}"),
            "{mode:o}: {l}"
        );
        // She swaps it for a link to a root file before root runs the repair.
        fs::write(&secret, "root's\n").unwrap();
        chmod(&secret, mode);
        let kept = d.join("evil.bak");
        fs::rename(&list, &kept).unwrap();
        std::os::unix::fs::symlink(&secret, &list).unwrap();
        std::os::unix::fs::lchown(&list, Some(user.uid), Some(user.gid)).unwrap();
        let _ = sh(&fix);
        let md = fs::metadata(&secret).unwrap();
        assert_eq!(md.mode() & 0o7777, mode, "{fix}");
        // On her own file, followed as printed, it mends the step.
        fs::remove_file(&list).unwrap();
        fs::rename(&kept, &list).unwrap();
        assert!(sh(&fix).success(), "{fix}");
        let r = admin(&env, &["check"]);
        let l = r
            .stdout
            .lines()
            .find(|l| l.contains(" include") && l.contains(&name))
            .unwrap_or_else(|| panic!("{name}: {}", r.stdout));
        assert!(l.starts_with("ok   include "), "{fix}: {}", r.stdout);
    }
}

/// A spool regrouped by mistake (`chgrp -R` to root's group, or to a user's) while
/// root's processes go on writing entries in it (a queue runner started before keeps
/// queuing its reports; here root's entry queued before, which the `chgrp -R`
/// regrouped, stands for them): `init` gives the spool the install's group back and
/// keeps every entry root wrote (root-owned: no one else can have written it), giving
/// it the spool's group; an entry a user wrote there in the wrong group is still
/// suspect and set aside. Afterwards the check passes.
#[test]
fn entries_root_wrote_while_the_spool_was_regrouped_are_kept() {
    if !can_switch_user() {
        return;
    }
    for wrong_gid in [0, test_user().gid] {
        let env = Env::new();
        let (prog, run) = install_check(&env);
        run_admin(&env, &prog, "init").code(0);
        let want = spool_gid();
        env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
        let root_qf = env.only_id();
        let qf = env.spool.join(format!("qf{root_qf}"));
        let st = std::process::Command::new("chgrp")
            .args(["-R", &wrong_gid.to_string()])
            .arg(&env.spool)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(fs::metadata(&qf).unwrap().gid(), wrong_gid);
        // A user's entry of that group (its name another queue ID's).
        let users = env.spool.join("qf6AUIIquc023976");
        fs::copy(&qf, &users).unwrap();
        std::os::unix::fs::chown(&users, Some(test_user().uid), Some(wrong_gid)).unwrap();
        // The spool that group may write: nothing in it is named, nor given a fix, until
        // the spool itself is put right.
        let first = run();
        assert!(
            first
                .stdout
                .contains("put the spool right first, then check again")
                && !first.stdout.contains("were planted"),
            "{}",
            first.stdout
        );
        std::os::unix::fs::chown(&env.spool, None, Some(want)).unwrap();
        // `check` says so first: root's entry only to regroup, the user's to set aside.
        let before = run();
        let entry_lines: Vec<&str> = before
            .stdout
            .lines()
            .filter(|l| l.contains(&format!("{} are not", env.spool.display())))
            .collect();
        // (It records root, so it is named as planted, which it is.)
        let suspect = before.stdout.lines().find(|l| l.contains("were planted"));
        let regroup = entry_lines.iter().find(|l| l.contains("are not 0660"));
        assert!(
            suspect.is_some_and(|l| l.contains("planted: qf6AUIIquc023976: bogus"))
                && regroup.is_some_and(|l| l.contains(&format!("(qf{root_qf})"))),
            "{}",
            before.stdout
        );
        let r = run_admin(&env, &prog, "init");
        r.code(0);
        assert!(
            r.stdout.contains("1 suspect queue file(s) set aside"),
            "{}",
            r.stdout
        );
        let md = fs::metadata(&qf).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
        assert_eq!(
            (md.gid(), md.mode() & 0o7777),
            (want, 0o660),
            "{}",
            r.stdout
        );
        assert!(!users.exists());
        let aside: Vec<String> = fs::read_dir(env.spool.join("corrupt"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            aside.len() == 1 && aside[0].starts_with("qf6AUIIquc023976."),
            "{aside:?}"
        );
        assert_eq!(env.entries(), std::slice::from_ref(&qf), "{}", r.stdout);
        let r = run();
        assert!(
            !r.stdout.contains("FAIL"),
            "before init:\n{}\nafter:\n{}",
            before.stdout,
            r.stdout
        );
    }
}

/// A queue file planted while the spool was open (owned by a user, recording root as its
/// submitter, group and mode as rsendmail writes them): `check` names it as planted, with
/// no chgrp or chmod that would make it well-formed, and a root queue run sets it aside
/// into corrupt/, logging its owner and the uid it records, and delivers nothing.
#[test]
fn a_queue_file_of_neither_root_nor_its_recorded_user_is_planted() {
    if !crate::harness::is_root() || !crate::harness::can_switch_user() {
        return;
    }
    let env = Env::new();
    env.add_config(&format!("MAILLOG {}\n", env.dir.join("maillog").display()));
    env.sendmail(&["-odq", "bob@example.org"], crate::harness::MSG)
        .code(0);
    let prog = install(&env);
    let qf = env.entries().pop().unwrap();
    let name = qf.file_name().unwrap().to_str().unwrap().to_string();
    let user = crate::harness::test_user();
    std::os::unix::fs::chown(&qf, Some(user.uid), Some(spool_gid())).unwrap();
    chmod(&qf, 0o660);
    let r = admin_of(&env, &prog, &["check"]);
    let fail = r
        .stdout
        .lines()
        .find(|l| l.starts_with("FAIL spool: ") && l.contains("planted"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        fail.contains(&name)
            && fail.contains(&format!(
                "owned by the user \"{}\" (uid {})",
                crate::harness::TEST_USER,
                user.uid
            ))
            && fail.contains("(uid 0)")
            && fail.contains("mv --backup=numbered"),
        "{fail}"
    );
    assert!(!r.stdout.contains("chmod 660"), "{}", r.stdout);
    let run = env.sendmail(&["-q", "-v"], b"");
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(!qf.exists(), "{said}");
    assert!(env.spool.join("corrupt").join(&name).exists(), "{said}");
    let log = fs::read_to_string(env.dir.join("maillog")).unwrap_or_default();
    assert!(
        log.contains(&format!(
            "{name}: corrupt queue file moved aside: bogus queue file, owned by the user \"{TEST_USER}\""
        )),
        "{said}{log}"
    );
}

/// `config` on a file with several lines in error names each of them, as `check` does,
/// not only the first (the file read again with each line in error set aside); one
/// error alone is said once.
#[test]
fn config_names_every_line_in_error() {
    let env = Env::with_config("BOGUSKEY 1\nSMARTHOST\nPORT abc\n");
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["config"]);
    r.code(78);
    assert_eq!(r.stdout, "", "no configuration is shown");
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with(&conf)).collect();
    assert_eq!(lines.len(), 3, "{}", r.stderr);
    for (n, what) in [
        (0, "unknown keyword BOGUSKEY"),
        (1, "SMARTHOST"),
        (2, "PORT abc"),
    ] {
        assert!(lines[n].contains(what), "{n}: {}", r.stderr);
    }
    // With an option given after `config` (the file read alone first), the same.
    let r = admin(&env, &["config", "-O", "MaxHopCount=9"]);
    r.code(78);
    assert_eq!(
        r.stderr.lines().filter(|l| l.starts_with(&conf)).count(),
        3,
        "{}",
        r.stderr
    );
    // One line in error: said once.
    let text = fs::read_to_string(&env.conf).unwrap();
    fs::write(
        &env.conf,
        text.replace("SMARTHOST\n", "").replace("PORT abc\n", ""),
    )
    .unwrap();
    let r = admin(&env, &["config"]);
    r.code(78);
    assert_eq!(
        r.stderr.matches("unknown keyword BOGUSKEY").count(),
        1,
        "{}",
        r.stderr
    );
}

/// Root with `-C` and a spool of root's alone (0700, as the quick start makes one), for
/// programs installed set-gid and for a build's programs (root's, not set-gid): every
/// fix the check prints, pasted, leaves a check with no failure. Sharing the spool
/// (`init`) is offered as the fix only where the programs are set-gid to its group; a
/// build's are named as what must be installed first.
#[test]
fn the_fixes_for_roots_own_spool_leave_the_check_passing() {
    if !is_root() {
        return;
    }
    for installed in [true, false] {
        let env = Env::new();
        let prog = if installed {
            install(&env)
        } else {
            let bin = env.dir.join("bin");
            fs::create_dir_all(&bin).unwrap();
            copy_programs(&bin);
            fs::create_dir_all(&env.spool).unwrap();
            bin.join("rsendmail-admin")
        };
        chown_r(&env.spool, "0:0");
        chmod(&env.spool, 0o700);
        let r = run_admin(&env, &prog, "check");
        no_fail(&r);
        let w = line(&r, "warn spool: ");
        assert!(w.contains("is root's alone"), "{w}");
        let fixes = fixes_in(&r.stdout);
        if installed {
            assert!(fix_of(w).is_some_and(|f| f.ends_with(" init")), "{w}");
        } else {
            assert_eq!(fix_of(w), None, "{w}");
            assert!(
                w.contains(&format!(
                    "which {} and {} are not",
                    env.dir.join("bin/rsendmail").display(),
                    prog.display()
                )),
                "{w}"
            );
        }
        for f in &fixes {
            assert!(sh(f).success(), "{f}");
        }
        let r = run_admin(&env, &prog, "check");
        no_fail(&r);
        r.code(0);
    }
}

/// A new spool whose name is not a typo apart from the spool beside it that holds
/// entries (another instance's, `instance-two` beside `spool`): check and init give
/// the ordinary advice (init makes it), no typo and no line to change; one a typo
/// apart (`spoil`) is still named a typo.
#[test]
fn a_new_spool_far_from_one_with_entries_is_no_typo() {
    let Some((env, prog, _)) = spooldir_typo(&["bob@example.org"]) else {
        return;
    };
    // The configuration's line 1 (SPOOLDIR) made to name `to`.
    let name = |to: &Path| {
        let text = fs::read_to_string(&env.conf).unwrap();
        let rest = text.split_once('\n').unwrap().1;
        fs::write(&env.conf, format!("SPOOLDIR {}\n{rest}", to.display())).unwrap();
    };
    name(&env.dir.join("spoil"));
    let r = run_admin(&env, &prog, "check");
    assert!(
        line(&r, "FAIL spool: ").contains("a typo at"),
        "{}",
        r.stdout
    );
    let far = env.dir.join("instance-two");
    name(&far);
    let r = run_admin(&env, &prog, "check");
    r.code(78);
    let l = line(&r, "FAIL spool: ");
    assert!(!l.contains("typo") && !l.contains("entr"), "{l}");
    let cmd = fix_of(l).unwrap();
    assert!(cmd.ends_with(" init"), "{l}");
    assert!(sh(cmd).success(), "{cmd}");
    assert!(far.is_dir());
    let r = run_admin(&env, &prog, "check");
    assert!(!r.stdout.contains("spool: SPOOLDIR"), "{}", r.stdout);
    assert!(!r.stdout.contains("FAIL spool"), "{}", r.stdout);
}

/// A configuration given as a relative `-C` path: the commands check prints name it
/// absolute, so that they do what they say run from any directory (here `init`, run
/// from `/`).
#[test]
fn a_relative_config_path_is_printed_absolute_in_fixes() {
    let Some((env, prog, _)) = spooldir_typo(&["bob@example.org"]) else {
        return;
    };
    let far = env.dir.join("instance-two");
    let text = fs::read_to_string(&env.conf).unwrap();
    let rest = text.split_once('\n').unwrap().1;
    fs::write(&env.conf, format!("SPOOLDIR {}\n{rest}", far.display())).unwrap();
    let dir = env.conf.parent().unwrap();
    let name = env.conf.file_name().unwrap().to_str().unwrap();
    let out = std::process::Command::new(&prog)
        .args(["-C", name, "check"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let r = env.finish(&prog, &["-C", name, "check"], out);
    r.code(78);
    let l = line(&r, "FAIL spool: ");
    let cmd = fix_of(l).unwrap();
    assert!(
        cmd.contains(&format!(" -C {} ", env.conf.display())) && cmd.ends_with(" init"),
        "{l}"
    );
    let st = std::process::Command::new("sh")
        .args(["-c", cmd])
        .current_dir("/")
        .status()
        .unwrap();
    assert!(st.success(), "{cmd}");
    assert!(far.is_dir());
    // A configuration others may write is judged where it is, as given absolute: the
    // same line either way (never "cannot be resolved").
    chmod(&env.conf, 0o666);
    let config_line = |relative: bool| {
        let c = if relative {
            name.to_string()
        } else {
            env.conf.display().to_string()
        };
        let out = std::process::Command::new(&prog)
            .args(["-C", &c, "check"])
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let r = env.finish(&prog, &["-C", &c, "check"], out);
        line(&r, "FAIL config: ").to_string()
    };
    let relative = config_line(true);
    assert!(!relative.contains("cannot be resolved"), "{relative}");
    assert_eq!(relative, config_line(false));
}

/// FINGERPRINT (and CERTFILE, `O CACertFile`) where no TLS is configured changes
/// nothing: a config warning with its line says so (mail goes in clear text); with
/// STARTTLS, none. A CERTFILE that is not a certificate and key is failed with the line
/// that names it, as every other line in error.
#[test]
fn tls_settings_without_tls_and_a_bad_certfile_are_named_with_their_line() {
    let hex = "ab".repeat(32);
    let env = Env::with_config(&format!("FINGERPRINT {hex}\n"));
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["check"]);
    let w = line(&r, "warn config: ");
    assert!(
        w.starts_with(&format!(
            "warn config: {conf}: line 6: FINGERPRINT has no effect without TLS"
        )) && w.contains("no certificate is pinned, and mail goes in clear text"),
        "{w}"
    );
    let env = Env::with_config(&format!("STARTTLS\nFINGERPRINT {hex}\n"));
    let r = admin(&env, &["check"]);
    assert!(
        !r.stdout.contains("has no effect without TLS"),
        "{}",
        r.stdout
    );
    let pem = env.dir.join("bad.pem");
    fs::write(&pem, "not a certificate\n").unwrap();
    env.add_config(&format!("CERTFILE {}\n", pem.display()));
    let n = env.config_line("CERTFILE ");
    let r = admin(&env, &["check"]);
    r.code(78);
    let f = line(&r, "FAIL config: ");
    assert!(
        f.starts_with(&format!(
            "FAIL config: {}: line {n}: CERTFILE {}: ",
            env.conf.display(),
            pem.display()
        )),
        "{f}"
    );
}

/// A relay that offers AUTH: with no AUTHPATH, that no credentials are sent is said
/// (info), not warned of as an auth.conf lacking them; with an AUTHPATH whose file has
/// none for it, the warning.
#[test]
fn auth_offered_without_authpath_is_no_auth_conf_warning() {
    let Some((env, _pki, _peer, _keep)) = tls_auth("srv", "s3cret-pw") else {
        return;
    };
    let text = fs::read_to_string(&env.conf).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("AUTHPATH "))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&env.conf, &without).unwrap();
    let r = admin(&env, &["check"]);
    assert!(!r.stdout.contains("warn auth"), "{}", r.stdout);
    let i = line(&r, "info auth: ");
    assert!(
        i.starts_with("info auth: 127.0.0.1 offers AUTH (")
            && i.contains("no AUTHPATH is configured, so no credentials are sent"),
        "{i}"
    );
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, "bob|other.example:pw\n").unwrap();
    fs::write(&env.conf, format!("{without}AUTHPATH {}\n", auth.display())).unwrap();
    let r = admin(&env, &["check"]);
    let w = line(&r, "warn auth: ");
    assert!(
        w.contains("auth.conf has no credentials for 127.0.0.1"),
        "{w}"
    );
}

/// The built-in spool holding an entry (a tmpfs over /var/spool in a mount namespace of
/// its own): a test instance's new spool (`-C`, far from it) is made by `init`, no typo
/// of the system spool; the system configuration naming a spool that is not there still
/// has the built-in one named as its likely typo.
#[test]
fn the_system_spools_entries_make_no_typo_of_another_configurations_spool() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    // Not set-gid: the system configuration of a test build is the one its
    // environment names only then.
    let bin = env.dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    copy_programs(&bin);
    let prog = bin.join("rsendmail-admin");
    let sys = env.dir.join("sys.conf");
    write_config(&sys, Path::new("/var/spool/rsendmail"), "");
    let far = env.dir.join("instance");
    let conf = env.dir.join("instance.conf");
    write_config(&conf, &far, "");
    // In a mount namespace of its own, on a fresh /var/spool: a message queued in the
    // built-in spool by the system configuration, then `then` (a shell command; $1 is
    // the programs' directory, $2 the system configuration, $3 the instance's). Its
    // standard output and error.
    let with_a_system_entry = |then: &str| {
        let out = std::process::Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(format!(
                "mount --make-rprivate / && mount -t tmpfs tmpfs /var/spool && \
                 mkdir -m 700 /var/spool/rsendmail && \
                 printf 'Subject: x\\n\\nx\\n' | \"$1/rsendmail\" -C \"$2\" -odq bob@example.org && \
                 {then}"
            ))
            .arg("sh")
            .arg(prog.parent().unwrap())
            .arg(&sys)
            .arg(&conf)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (said, err) = with_a_system_entry(
        "ls /var/spool/rsendmail | grep -c '^qf' && \
         \"$1/rsendmail-admin\" -C \"$3\" init; echo \"init $?\"; \
         \"$1/rsendmail-admin\" -C \"$3\" check",
    );
    assert!(said.starts_with("1\n"), "{said}{err}");
    assert!(said.contains("\ninit 0\n"), "{said}{err}");
    assert!(far.is_dir(), "{said}{err}");
    assert!(!said.contains("typo"), "{said}{err}");
    // The system configuration: its spool moved, the built-in one is its old one.
    fs::remove_dir_all(&far).unwrap();
    let (said, _) =
        with_a_system_entry("RSENDMAIL_SYSTEM_CONFIG=\"$3\" \"$1/rsendmail-admin\" check");
    assert!(
        said.contains(&format!(
            "FAIL spool: SPOOLDIR {} does not exist; /var/spool/rsendmail (the built-in \
             default) holds 1 entry: a typo at {}: line 1?",
            far.display(),
            conf.display()
        )),
        "{said}"
    );
}

/// A huge value in the configuration (a 200 KB SMARTHOST, refused; a 200 KB option
/// value, accepted) is echoed cut by `config` and `check`, as a long argument is: its
/// first characters, then `...` and its length, never the whole value.
#[test]
fn a_huge_configuration_value_is_echoed_cut() {
    let huge = "a".repeat(200_000);
    let env = Env::with_config(&format!("SMARTHOST {huge}\n"));
    for cmd in ["config", "check"] {
        let r = admin(&env, &[cmd]);
        r.code(78);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(
            all.contains("invalid SMARTHOST aaaa"),
            "{}",
            &all[..all.len().min(500)]
        );
        assert!(all.len() < 20_000, "{cmd}: {} bytes", all.len());
        assert!(all.contains("a..."), "{cmd}");
    }
    let env = Env::with_config(&format!("O HelpFile=/{huge}\n"));
    let r = admin(&env, &["config"]);
    r.code(0);
    assert!(r.stdout.len() < 20_000, "{} bytes", r.stdout.len());
    assert!(line(&r, "O HelpFile=/aaa").contains("a... (200001 characters)    #"));
    // The spool `O QueueDirectory` names is shown on the SPOOLDIR line too: cut there
    // as well, whether the file or the command line gives it.
    let env = Env::with_config(&format!("O QueueDirectory=/{huge}\n"));
    let given = format!("QueueDirectory=/{}", "a".repeat(100_000));
    for args in [&["config"][..], &["config", "-O", &given]] {
        let r = admin(&env, args);
        r.code(0);
        assert!(
            r.stdout.len() < 20_000,
            "{args:?}: {} bytes",
            r.stdout.len()
        );
        let l = line(&r, "SPOOLDIR /aaa");
        assert!(
            l.contains("a... (200001 characters)    # ")
                || l.contains("a... (100001 characters)    # "),
            "{args:?}"
        );
    }
}

/// Whether `s` holds no control character but the line ends: no ESC, CR, DEL, C1 or
/// other C0 octet of a value from outside reached the terminal raw.
fn no_raw_controls(s: &str) -> bool {
    s.chars().all(|c| c == '\n' || !c.is_control())
}

/// Values from outside (a line of the file, an `-O` value, the MAILNAME file's name, a
/// host name) are printed by `config` and `check` with every control character as its
/// octets in octal, as mailq shows them: no escape sequence reaches the terminal, no CR
/// overwrites a line.
#[test]
fn config_and_check_print_control_characters_escaped() {
    // A value the file gives, and one the command line gives: shown, escaped.
    let env = Env::with_config("O HelpFile=/x\u{1b}[31m\rY\u{7f}\u{9b}\n");
    let conf = env.conf.display().to_string();
    let r = admin(&env, &["config", "-O", "OperatorChars=.:\u{1b}[2J"]);
    r.code(0);
    assert!(no_raw_controls(&r.stdout), "{:?}", r.stdout);
    assert!(no_raw_controls(&r.stderr), "{:?}", r.stderr);
    line(
        &r,
        &format!(
            "O HelpFile=/x\\033[31m\\015Y\\177\\302\\233    # {conf}: line 6 \
             (not used by rsendmail)"
        ),
    );
    line(
        &r,
        "O OperatorChars=.:\\033[2J    # command line (not used by rsendmail)",
    );
    let r = admin(&env, &["check", "-O", "OperatorChars=.:\u{1b}[2J"]);
    assert!(no_raw_controls(&r.stdout), "{:?}", r.stdout);
    assert!(no_raw_controls(&r.stderr), "{:?}", r.stderr);
    // An `-O` value refused: its message, on stderr for `config`, on the config line
    // for `check`.
    for cmd in ["config", "check"] {
        let r = admin(&env, &[cmd, "-O", "Timeout.connect=9\u{1b}[1m\u{7}"]);
        r.code(78);
        assert!(no_raw_controls(&r.stdout), "{cmd}: {:?}", r.stdout);
        assert!(no_raw_controls(&r.stderr), "{cmd}: {:?}", r.stderr);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(
            said.contains("Invalid value for Timeout.connect: 9\\033[1m\\007"),
            "{cmd}: {said}"
        );
    }
    // A keyword that is none, and a configuration file that is not there, refused by
    // every program that loads the configuration: escaped there too.
    let bogus = Env::with_config("BOGUS\u{1b}[2J x\n");
    let missing = format!("{}/\u{1b}[31mx", bogus.dir.display());
    for (args, said) in [
        (
            vec!["-C", bogus.conf.to_str().unwrap(), "-bv", "root"],
            "unknown keyword BOGUS\\033[2J".to_string(),
        ),
        (
            vec!["-C", &missing, "-bv", "root"],
            format!("cannot open {}/\\033[31mx", bogus.dir.display()),
        ),
    ] {
        for r in [
            bogus.run_raw(&crate::harness::bin(), &args, b""),
            bogus.run_raw(
                Path::new(env!("CARGO_BIN_EXE_rsendmail-admin")),
                &[args[0], args[1], "list"],
                b"",
            ),
        ] {
            r.code(78);
            assert!(no_raw_controls(&r.stdout), "{:?}", r.stdout);
            assert!(no_raw_controls(&r.stderr), "{:?}", r.stderr);
            assert!(
                format!("{}{}", r.stdout, r.stderr).contains(&said),
                "{said}: {} {}",
                r.stdout,
                r.stderr
            );
        }
    }
    // A host name of the file that is refused: its line quoted, escaped.
    let env = Env::with_config("SMARTHOST relay\u{1b}[31m.example\rX\n");
    for cmd in ["config", "check"] {
        let r = admin(&env, &[cmd]);
        r.code(78);
        assert!(no_raw_controls(&r.stdout), "{cmd}: {:?}", r.stdout);
        assert!(no_raw_controls(&r.stderr), "{cmd}: {:?}", r.stderr);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(
            said.contains("invalid SMARTHOST relay\\033[31m.example\\015X"),
            "{cmd}: {said}"
        );
    }
    // The MAILNAME file's first line holding control characters: refused, quoted
    // escaped.
    let env = Env::new();
    let mailname = env.dir.join("mailname");
    fs::write(&mailname, "mail\u{1b}[31m.exa\rmple\n").unwrap();
    chmod(&mailname, 0o644);
    let text = fs::read_to_string(&env.conf).unwrap().replace(
        "MAILNAME test.example\n",
        &format!("MAILNAME {}\n", mailname.display()),
    );
    fs::write(&env.conf, text).unwrap();
    for cmd in ["config", "check"] {
        let r = admin(&env, &[cmd]);
        r.code(78);
        assert!(no_raw_controls(&r.stdout), "{cmd}: {:?}", r.stdout);
        assert!(no_raw_controls(&r.stderr), "{cmd}: {:?}", r.stderr);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(
            said.contains("invalid mail name mail\\033[31m.exa\\015mple"),
            "{cmd}: {said}"
        );
    }
}

/// `check --to` with a 100 KB argument that is no one address: the usage error (64)
/// echoes its first characters and its length, never the whole argument.
#[test]
fn check_to_echoes_a_huge_argument_cut() {
    let env = Env::new();
    let list = "a,".repeat(50_000);
    for to in [list.as_str(), &list[..list.len() - 1]] {
        let r = admin(&env, &["check", "--to", to]);
        r.code(64);
        let said = format!("{}{}", r.stdout, r.stderr);
        let l = said
            .lines()
            .find(|l| l.contains("check --to: "))
            .unwrap_or_else(|| panic!("{}", &said[..said.len().min(2000)]));
        assert!(l.len() < 600, "{} bytes", l.len());
        assert!(
            l.contains(&format!("... ({} characters)\" is a list", to.len())),
            "{l}"
        );
        assert!(said.len() < 20_000, "{} bytes", said.len());
    }
}

/// A python3 listener on 127.0.0.1 (on a port the system chooses) that accepts every
/// connection and never writes a byte, for at most `secs` seconds; killed when dropped.
struct SilentListener {
    child: std::process::Child,
    port: u16,
}

impl SilentListener {
    fn start(secs: u32) -> SilentListener {
        use std::io::BufRead;
        let script = format!(
            "import socket, sys, time\n\
             s = socket.socket()\n\
             s.bind(('127.0.0.1', 0))\n\
             s.listen(16)\n\
             print(s.getsockname()[1], flush=True)\n\
             s.settimeout(0.5)\n\
             held = []\n\
             end = time.time() + {secs}\n\
             while time.time() < end:\n\
             \x20   try:\n\
             \x20       held.append(s.accept()[0])\n\
             \x20   except socket.timeout:\n\
             \x20       pass\n"
        );
        let mut child = std::process::Command::new("python3")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first.trim().parse().expect("the listener's port");
        SilentListener { child, port }
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server that accepts the connection and never sends its greeting: `check` says so
/// in the greeting's terms, with the wait and the option that sets it (never as a
/// connection that timed out), within that wait, and exits EX_TEMPFAIL (75).
#[test]
fn a_server_that_never_greets_is_said_to_send_no_greeting() {
    let silent = SilentListener::start(60);
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nO Timeout.connect=5s\n",
        silent.port
    ));
    let t = std::time::Instant::now();
    let r = admin(&env, &["check", "-O", "Timeout.initial=2s"]);
    let took = t.elapsed();
    r.code(75);
    line(
        &r,
        &format!("ok   connect 127.0.0.1 [127.0.0.1] port {}", silent.port),
    );
    let l = line(&r, "FAIL greeting: ");
    assert_eq!(
        l,
        "FAIL greeting: no greeting from 127.0.0.1 within 2s (Timeout.initial): the server \
         accepted the connection but sent no complete reply in that time (timeout waiting \
         for input during client greeting)"
    );
    assert!(!r.stdout.contains("Connection timed out"), "{}", r.stdout);
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
}

/// A RESOLVER that does not answer (nothing listens on its port): `check` says, before
/// it waits, how long it waits (Timeout.resolver.retrans, .retry), and then that the
/// name server did not answer, not only sendmail's "host name lookup failure".
#[test]
fn a_resolver_that_does_not_answer_is_said_so() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::with_config(&format!(
        "SMARTHOST smtp.example.net\nRESOLVER 127.0.0.1:{port}\n\
         O Timeout.resolver.retrans=1s\nO Timeout.resolver.retry=1\n"
    ));
    let r = admin(&env, &["check"]);
    r.code(75);
    let info = line(&r, "info dns: asking RESOLVER");
    assert!(
        info.contains("each query within 1 s") && info.contains("up to 2 s"),
        "{info}"
    );
    let fail = line(&r, "FAIL dns: smtp.example.net");
    assert!(
        fail.contains("host name lookup failure (RESOLVER did not answer: timed out)"),
        "{fail}"
    );
    assert!(
        r.stdout.find("info dns: asking").unwrap() < r.stdout.find("FAIL dns").unwrap(),
        "{}",
        r.stdout
    );
    // The MX lookup of `--to`'s domain (no SMARTHOST) is said alike.
    let env = Env::with_config(&format!(
        "RESOLVER 127.0.0.1:{port}\n\
         O Timeout.resolver.retrans=1s\nO Timeout.resolver.retry=1\n"
    ));
    let r = admin(&env, &["check", "--to", "someone@example.net"]);
    r.code(75);
    let info = line(&r, "info dns: asking RESOLVER");
    assert!(
        info.contains("for the MX of example.net: each query within 1 s")
            && info.contains("up to 2 s"),
        "{info}"
    );
    let fail = line(&r, "FAIL dns: MX of example.net");
    assert!(
        fail.contains("host name lookup failure (RESOLVER did not answer: timed out)"),
        "{fail}"
    );
    assert!(
        r.stdout.find("info dns: asking").unwrap() < r.stdout.find("FAIL dns").unwrap(),
        "{}",
        r.stdout
    );
}

/// A file or directory the configuration names that is not rsendmail's (the password
/// file, a device, a FIFO, a directory where a file belongs, `/`, a shared sticky
/// directory) fails its step with the keyword's file and line and no fix at all: no
/// command the admin pastes changes its mode or owner, or moves it. `MAILLOG /dev/null`
/// (no log file) passes, and a submission says nothing of it.
#[test]
fn a_path_that_is_not_rsendmails_gets_no_fix() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let base = fs::read_to_string(&env.conf).unwrap();
    let fifo = env.dir.join("fifo");
    mkfifo(&fifo);
    let a_dir = env.dir.join("a-dir");
    fs::create_dir(&a_dir).unwrap();
    let link = env.dir.join("log-link");
    std::os::unix::fs::symlink(env.dir.join("elsewhere"), &link).unwrap();
    let d = |p: &Path| p.display().to_string();
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "MAILLOG",
            "/etc/passwd".into(),
            "maillog",
            "the system's password file",
        ),
        (
            "MAILLOG",
            "/etc/../etc/passwd".into(),
            "maillog",
            "the system's password file",
        ),
        (
            "MAILLOG",
            "/dev/zero".into(),
            "maillog",
            "a character device",
        ),
        ("MAILLOG", d(&fifo), "maillog", "a FIFO, not a regular file"),
        (
            "MAILLOG",
            d(&link),
            "maillog",
            "a symbolic link, not a regular file",
        ),
        (
            "AUTHPATH",
            "/etc/passwd".into(),
            "auth.conf",
            "the system's password file",
        ),
        (
            "AUTHPATH",
            "/dev/zero".into(),
            "auth.conf",
            "a character device",
        ),
        (
            "AUTHPATH",
            d(&fifo),
            "auth.conf",
            "a FIFO, not a regular file",
        ),
        (
            "AUTHPATH",
            d(&a_dir),
            "auth.conf",
            "a directory, not a regular file",
        ),
        ("SPOOLDIR", "/".into(), "spool", "the root directory"),
        (
            "SPOOLDIR",
            "/var/tmp".into(),
            "spool",
            "a shared sticky directory",
        ),
        (
            "SPOOLDIR",
            "/home".into(),
            "spool",
            "the directory of users' homes",
        ),
    ];
    for (keyword, path, step, why) in &cases {
        fs::write(&env.conf, format!("{base}{keyword} {path}\n")).unwrap();
        let n = base.lines().count() + 1;
        let r = run();
        r.code(78);
        // Its own step, or the files step when others could change it too.
        let said = format!(": {keyword} names {path}, which is not ");
        let l = r
            .stdout
            .lines()
            .find(|l| {
                [*step, "files"]
                    .iter()
                    .any(|st| l.starts_with(&format!("FAIL {st}{said}")))
            })
            .unwrap_or_else(|| panic!("no FAIL {step}{said}in\n{}", r.stdout));
        assert!(
            l.contains(&format!(
                "not rsendmail's ({why}): correct {}: line {n}",
                env.conf.display()
            )),
            "{keyword} {path}: {l}"
        );
        let named: Vec<String> = fixes_in(&r.stdout)
            .into_iter()
            .filter(|c| c.contains(path.as_str()))
            .collect();
        assert!(
            named.is_empty(),
            "{keyword} {path}: {named:?}\n{}",
            r.stdout
        );
    }
    // The spool named by `O QueueDirectory=` is named so, with its line; on the
    // command line, so.
    fs::write(&env.conf, format!("{base}O QueueDirectory=/var/tmp\n")).unwrap();
    let r = run();
    r.code(78);
    let l = line(&r, "FAIL spool: ");
    assert!(
        l.contains(&format!(
            "FAIL spool: O QueueDirectory names /var/tmp, which is not rsendmail's (a shared \
             sticky directory): correct {}: line {}",
            env.conf.display(),
            base.lines().count() + 1
        )),
        "{l}"
    );
    fs::write(&env.conf, &base).unwrap();
    let r = admin(&env, &["check", "-O", "QueueDirectory=/var/tmp"]);
    r.code(78);
    let l = line(&r, "FAIL spool: ");
    assert!(
        l.contains(
            "the queue directory of the command line names /var/tmp, which is not \
             rsendmail's (a shared sticky directory): correct the command line"
        ),
        "{l}"
    );
    // "No log file": passes, and a submission warns of nothing.
    fs::write(&env.conf, format!("{base}MAILLOG /dev/null\n")).unwrap();
    let r = run();
    line(&r, "ok   maillog /dev/null: no log file");
    let out = env.sendmail(&["-odq", "bob@example.org"], MSG);
    out.code(0);
    assert!(!out.stderr.contains("MAILLOG"), "{}", out.stderr);
}

/// Root's check of the system spool fails a CERTFILE (and `O CACertFile`) the spool's
/// group cannot read (a key in /etc/ssl/private, root:ssl-cert 0640 in a 0710
/// directory): users' deliveries read it with that group and would wait for the root
/// queue runner. The fix installs a copy of the spool's group and points the line at
/// it, never a chgrp of the file another group reads; the wake-up step names it.
#[test]
fn a_tls_file_the_spools_group_cannot_read_is_failed() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let Some(pki) = crate::tls::Pki::make(&env.dir) else {
        return;
    };
    let private = env.dir.join("private");
    fs::create_dir(&private).unwrap();
    chgrp_chmod(&private, 65534, 0o710);
    let pem = private.join("client.pem");
    let both = format!(
        "{}{}",
        fs::read_to_string(pki.path("srv.pem")).unwrap(),
        fs::read_to_string(pki.path("srv.key")).unwrap()
    );
    fs::write(&pem, both).unwrap();
    chgrp_chmod(&pem, 65534, 0o640);
    env.add_config(&format!("STARTTLS\nCERTFILE {}\n", pem.display()));
    let r = run();
    r.code(78);
    let l = line(
        &r,
        &format!("FAIL tls files: CERTFILE {} (root:", pem.display()),
    );
    assert!(
        l.contains("is not readable by the spool's group")
            && l.contains("so users' submissions cannot deliver themselves"),
        "{l}"
    );
    let cmd = fix_of(l).unwrap();
    let copy = env.dir.join("tls/client.pem");
    assert!(
        cmd.contains(&format!(
            "install -o root -g {} -m 640 /dev/null {} && sed -n '/^-----BEGIN /,/^-----END \
             /p' {} >> {}",
            group_name(spool_gid()),
            copy.display(),
            pem.display(),
            copy.display()
        )) && cmd.contains(&crate::harness::line_fix(
            &env.conf,
            &format!("CERTFILE {}", pem.display()),
            &format!("CERTFILE {}", copy.display())
        )),
        "{cmd}"
    );
    assert!(!cmd.contains("chgrp"), "{cmd}");
    assert!(
        line(&r, "FAIL wakeup: ").contains("CERTFILE is not readable by the spool's group"),
        "{}",
        r.stdout
    );
    // An `O CACertFile` of the same name in another such directory: each fix installs
    // its own copy and points its own line at it; neither overwrites the other's.
    let ca_dir = env.dir.join("ca-private");
    fs::create_dir(&ca_dir).unwrap();
    chgrp_chmod(&ca_dir, 65534, 0o710);
    let ca = ca_dir.join("client.pem");
    fs::copy(pki.path("ca.pem"), &ca).unwrap();
    chgrp_chmod(&ca, 65534, 0o640);
    env.add_config(&format!("O CACertFile={}\n", ca.display()));
    let r = run();
    r.code(78);
    let copy = |keyword: &str, file: &Path, set: &str| {
        let l = line(
            &r,
            &format!("FAIL tls files: {keyword} {} (", file.display()),
        );
        let cmd = fix_of(l).unwrap_or_else(|| panic!("{l}"));
        let install = format!(
            "sed -n '/^-----BEGIN /,/^-----END /p' {} >> ",
            file.display()
        );
        let to = cmd
            .split_once(&install)
            .and_then(|(_, rest)| rest.split(' ').next())
            .unwrap_or_else(|| panic!("{cmd}"))
            .to_string();
        assert!(Path::new(&to).starts_with(env.dir.join("tls")), "{cmd}");
        assert!(cmd.contains(&format!("$|{set}{to}|' ")), "{cmd}");
        to
    };
    let (cert_copy, ca_copy) = (
        copy("CERTFILE", &pem, "CERTFILE "),
        copy("CACertFile", &ca, "O CACertFile="),
    );
    assert_ne!(cert_copy, ca_copy, "{}", r.stdout);
    // Readable by the group through the directory: no such line.
    for (d, f) in [(&private, &pem), (&ca_dir, &ca)] {
        chgrp_chmod(d, spool_gid(), 0o710);
        chgrp_chmod(f, spool_gid(), 0o640);
    }
    let r = run();
    assert!(!r.stdout.contains("FAIL tls files"), "{}", r.stdout);
}

/// An ALIASES file a user owns (0600, in her directory) for the system spool: the files
/// step refuses it and says root is to make it anew; no other line offers a fix (her own
/// `chmod a+r` would leave the files step failing), so the advice never contradicts itself.
#[test]
fn a_users_aliases_file_gets_one_repair_only() {
    let Some(env) = root_install(true) else {
        return;
    };
    let run = || env.check();
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let user = test_user();
    let d = env.dir.join("u");
    fs::create_dir(&d).unwrap();
    std::os::unix::fs::chown(&d, Some(user.uid), Some(user.gid)).unwrap();
    let aliases = d.join("aliases");
    fs::write(&aliases, "x: root\n").unwrap();
    std::os::unix::fs::chown(&aliases, Some(user.uid), Some(user.gid)).unwrap();
    chmod(&aliases, 0o600);
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    let r = run();
    r.code(78);
    let name = aliases.display().to_string();
    let about: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL ") && l.contains(&name))
        .collect();
    assert!(
        about.iter().any(|l| l.starts_with("FAIL files: ")),
        "{}",
        r.stdout
    );
    let fixes: Vec<&&str> = about.iter().filter(|l| fix_of(l).is_some()).collect();
    assert!(fixes.is_empty(), "{fixes:?}");
}

/// A directory of the harness's own that is not named for rsendmail: what the
/// configuration names in it stands for a system file (`/etc/fstab`, `/usr/bin/passwd`),
/// which no fix touches.
fn system_like(env: &Env) -> PathBuf {
    let sys = env.dir.join("sys");
    fs::create_dir_all(&sys).unwrap();
    chmod(&sys, 0o755);
    sys
}

/// A fix is printed only for a path that is rsendmail's own (its name or its
/// directory's begins with `rsendmail`, or it is under /etc/rsendmail, every link on
/// it resolved and root's): MAILLOG, AUTHPATH and ALIASES naming another file (a
/// system-like file, a set-uid program, a group-writable log, one reached through a
/// symbolic link) fail with why and the line to correct, no command names the file or
/// the link, and the check changes nothing (a missing MAILLOG is not made). A log file
/// named for rsendmail still gets its fix.
#[test]
fn a_fix_touches_only_what_is_rsendmails() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let base = fs::read_to_string(&env.conf).unwrap();
    let sys = system_like(&env);
    let fstab = sys.join("fstab");
    fs::write(&fstab, "/dev/sda1 / ext4 defaults 0 1\n").unwrap();
    chmod(&fstab, 0o644);
    let passwd = sys.join("passwd");
    copy_executable(Path::new("/bin/true"), &passwd);
    chmod(&passwd, 0o4755);
    let shadow = sys.join("shadow");
    fs::write(&shadow, "root: x\n").unwrap();
    chmod(&shadow, 0o600);
    let shadow_link = env.dir.join("aliases-link");
    std::os::unix::fs::symlink(&shadow, &shadow_link).unwrap();
    let fstab_link = env.dir.join("auth-link");
    std::os::unix::fs::symlink(&fstab, &fstab_link).unwrap();
    let wtmp = sys.join("wtmp");
    fs::write(&wtmp, "").unwrap();
    chgrp_chmod(&wtmp, 65534, 0o664);
    let crontab = sys.join("crontab");
    let d = |p: &Path| p.display().to_string();
    let cases = [
        ("MAILLOG", &fstab, &fstab),
        ("MAILLOG", &wtmp, &wtmp),
        ("MAILLOG", &crontab, &crontab),
        ("AUTHPATH", &passwd, &passwd),
        ("AUTHPATH", &fstab_link, &fstab),
        ("ALIASES", &shadow_link, &shadow),
    ];
    for (keyword, named, target) in cases {
        let before = fs::metadata(target)
            .ok()
            .map(|m| (m.mode(), m.uid(), m.gid()));
        fs::write(&env.conf, format!("{base}{keyword} {}\n", d(named))).unwrap();
        let n = base.lines().count() + 1;
        let r = run();
        r.code(78);
        let fixes: Vec<String> = fixes_in(&r.stdout)
            .into_iter()
            .filter(|c| c.contains(&d(named)) || c.contains(&d(target)))
            .collect();
        assert!(
            fixes.is_empty(),
            "{keyword} {named:?}: {fixes:?}\n{}",
            r.stdout
        );
        let said: Vec<&str> = r
            .stdout
            .lines()
            .filter(|l| l.starts_with("FAIL ") && l.contains(&d(named)))
            .collect();
        assert!(
            !said.is_empty()
                && said.iter().all(|l| l.contains("not rsendmail's")
                    && l.contains(&format!("correct {}: line {n}", env.conf.display()))),
            "{keyword} {named:?}: {said:?}\n{}",
            r.stdout
        );
        let after = fs::metadata(target)
            .ok()
            .map(|m| (m.mode(), m.uid(), m.gid()));
        assert_eq!(before, after, "{keyword} {named:?} changed by the check");
    }
    // A log named for rsendmail: rsendmail's, with its fix.
    let own = env.dir.join("rsendmail.log");
    fs::write(&own, "").unwrap();
    chmod(&own, 0o644);
    fs::write(&env.conf, format!("{base}MAILLOG {}\n", d(&own))).unwrap();
    let r = run();
    let l = line(&r, &format!("FAIL maillog: {} (root:", d(&own)));
    assert!(fix_of(l).is_some_and(|c| c.contains("chmod 660")), "{l}");
}

/// The copy fix of a CERTFILE or `O CACertFile` the spool's group cannot read copies
/// only a file that parses as what the keyword holds (never a password-like file, nor a
/// lone private key), to `tls/client.pem` or `tls/ca.pem` beside the configuration
/// (never over its own files, never the two onto one name), never onto a different file
/// already there; followed, the step passes and the configuration is intact.
#[test]
fn the_certificate_copy_is_only_of_a_certificate_to_a_new_place() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let Some(pki) = crate::tls::Pki::make(&env.dir) else {
        return;
    };
    let base = fs::read_to_string(&env.conf).unwrap();
    let private = env.dir.join("private");
    fs::create_dir(&private).unwrap();
    chgrp_chmod(&private, 65534, 0o710);
    let put = |name: &str, text: &str| {
        let p = private.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        chgrp_chmod(p.parent().unwrap(), 65534, 0o710);
        fs::write(&p, text).unwrap();
        chgrp_chmod(&p, 65534, 0o640);
        p
    };
    let cert = fs::read_to_string(pki.path("srv.pem")).unwrap();
    let key = fs::read_to_string(pki.path("srv.key")).unwrap();
    let shadow = put("shadow", "root:$6$abc:19000:0:99999:7:::\n");
    let lone_key = put("lone.key", &key);
    // Not a certificate: no copy, the line to correct.
    for (line_text, p) in [
        (format!("CERTFILE {}", shadow.display()), &shadow),
        (format!("O CACertFile={}", shadow.display()), &shadow),
        (format!("O CACertFile={}", lone_key.display()), &lone_key),
    ] {
        fs::write(&env.conf, format!("{base}STARTTLS\n{line_text}\n")).unwrap();
        let r = run();
        r.code(78);
        let cmds: Vec<String> = fixes_in(&r.stdout)
            .into_iter()
            .filter(|c| c.contains(&p.display().to_string()))
            .collect();
        assert!(cmds.is_empty(), "{line_text}: {cmds:?}");
        let l = line(&r, "FAIL tls files: ");
        assert!(l.contains("no fix: ") && l.contains("correct "), "{l}");
    }
    // A certificate named like the configuration, and a CA of the same base name:
    // two distinct new names, never the configuration.
    let client = put("rsendmail.conf", &format!("{cert}{key}"));
    let ca = put(
        "b/rsendmail.conf",
        &fs::read_to_string(pki.path("ca.pem")).unwrap(),
    );
    let text = format!(
        "{base}STARTTLS\nCERTFILE {}\nO CACertFile={}\n",
        client.display(),
        ca.display()
    );
    fs::write(&env.conf, &text).unwrap();
    let r = run();
    r.code(78);
    let cmds = fixes_in(&r.stdout);
    let copies: Vec<&String> = cmds
        .iter()
        .filter(|c| c.contains("install -o root"))
        .collect();
    assert_eq!(copies.len(), 2, "{}", r.stdout);
    assert!(
        copies[0].contains(&format!("{}", env.dir.join("tls/client.pem").display()))
            && copies[1].contains(&format!("{}", env.dir.join("tls/ca.pem").display())),
        "{copies:?}"
    );
    for c in &copies {
        assert!(sh(c).success(), "{c}");
    }
    let r = run();
    assert!(!r.stdout.contains("FAIL tls files"), "{}", r.stdout);
    assert!(!r.stdout.contains("FAIL config"), "{}", r.stdout);
    // The copy's place holding another file: never replaced.
    fs::write(&env.conf, &text).unwrap();
    fs::write(env.dir.join("tls/ca.pem"), "another\n").unwrap();
    let r = run();
    let l = line(&r, &format!("FAIL tls files: CACertFile {}", ca.display()));
    assert!(
        fix_of(l).is_none() && l.contains("holds another file"),
        "{l}"
    );
    assert_eq!(
        fs::read_to_string(env.dir.join("tls/ca.pem")).unwrap(),
        "another\n"
    );
}

/// `O PidFile=` naming a file that is not a pid file (`/etc/motd`) fails the check with
/// its line; so does a system path (the kernel's), and any place in the system's but
/// `/run/NAME.pid` and rsendmail's own, whatever its name, `..` and links resolved.
/// Another pid file passes, and so does sendmail's `/run/sendmail.pid`.
#[test]
fn a_pid_file_that_is_no_pid_file_fails_the_check() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let base = fs::read_to_string(&env.conf).unwrap();
    let motd = env.dir.join("rsendmail-motd");
    fs::write(&motd, "Welcome\n").unwrap();
    std::os::unix::fs::symlink("/usr/lib", env.dir.join("lib")).unwrap();
    let n = base.lines().count() + 1;
    let not_here = "where a pid file goes only in /run or /var/run";
    for (p, why) in [
        (motd.clone(), "it holds what is not a pid file"),
        (
            PathBuf::from("/proc/self/rsendmail.pid"),
            "it is the kernel's",
        ),
        (PathBuf::from("/etc/profile.d/rsendmail.sh"), not_here),
        (PathBuf::from("/etc/cron.d/rsendmail"), not_here),
        (PathBuf::from("/etc/rsendmail.pid"), not_here),
        (
            PathBuf::from("/usr/lib/systemd/system/rsendmail.service"),
            not_here,
        ),
        (
            PathBuf::from("/var/log/../../usr/lib/rsendmail.pid"),
            not_here,
        ),
        (env.dir.join("lib/rsendmail.pid"), not_here),
    ] {
        fs::write(&env.conf, format!("{base}O PidFile={}\n", p.display())).unwrap();
        let r = run();
        r.code(78);
        let l = line(
            &r,
            &format!("FAIL pid file: O PidFile names {}: ", p.display()),
        );
        // A directory this system lacks (`/etc/cron.d`) is refused for that.
        let missing = why == not_here && l.contains("it cannot be resolved");
        assert!(
            (l.contains(why) || missing)
                && l.contains(&format!("correct {}: line {n}", env.conf.display())),
            "{l}"
        );
        assert!(fix_of(l).is_none(), "{l}");
    }
    assert_eq!(fs::read_to_string(&motd).unwrap(), "Welcome\n");
    let pid = env.dir.join("rsendmail.pid");
    fs::write(&pid, "123\n/usr/sbin/rsendmail -bd\n").unwrap();
    fs::write(&env.conf, format!("{base}O PidFile={}\n", pid.display())).unwrap();
    let r = run();
    line(&r, &format!("ok   pid file {}", pid.display()));
    fs::write(&env.conf, format!("{base}O PidFile=/run/sendmail.pid\n")).unwrap();
    line(&run(), "ok   pid file /run/sendmail.pid");
}

/// A `SPOOLDIR` naming an empty directory of the system's (`/mnt`, a tmpfs of its own in
/// a private mount namespace, so the real one is never at stake), or one below it (as
/// an empty `/etc/profile.d` is another program's): check fails it with no fix, and init
/// refuses it, changing nothing. An established spool made sticky (3770):
/// check fails it with `chmod 2770`, and init repairs it.
#[test]
fn init_takes_no_foreign_directory_and_repairs_a_sticky_spool() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let prog = env.prog.clone();
    run_admin(&env, &prog, "init").code(0);
    let base = fs::read_to_string(&env.conf).unwrap();
    let conf = env.dir.join("mnt.conf");
    fs::write(&conf, env.config_naming_spool(Path::new("/mnt"))).unwrap();
    let script = r#"
top=$1 prog=$2 conf=$3
mount -t tmpfs -o mode=755 tmpfs /mnt || exit 90
"$prog" -C "$conf" check > "$top/check.out" 2>&1; echo "check $?"
"$prog" -C "$conf" init > "$top/init.out" 2>&1; echo "init $?"
echo "mode $(stat -c %a /mnt) entries $(ls -A /mnt | wc -l)"
# Empty directories below a system's place, as another program's may be
# (/etc/profile.d, /var/spool/cron/crontabs): never taken.
for d in profile.d spool/cron/crontabs; do
  mkdir -p "/mnt/$d" && chmod 755 "/mnt/$d"
  sed "s|^SPOOLDIR /mnt\$|SPOOLDIR /mnt/$d|" "$conf" > "$top/deep.conf"
  "$prog" -C "$top/deep.conf" init > "$top/deep.out" 2>&1
  echo "deep $d $? mode $(stat -c %a "/mnt/$d") entries $(ls -A "/mnt/$d" | wc -l)"
done
"#;
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&env.dir)
        .arg(&prog)
        .arg(&conf)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(90) {
        eprintln!("skipped: no tmpfs on /mnt in a private mount namespace here");
    } else {
        let checked = fs::read_to_string(env.dir.join("check.out")).unwrap();
        let inited = fs::read_to_string(env.dir.join("init.out")).unwrap();
        assert!(said.contains("check 78\n"), "{said}\n{checked}");
        let cmds: Vec<String> = fixes_in(&checked)
            .into_iter()
            .filter(|c| c.contains("/mnt"))
            .collect();
        assert!(cmds.is_empty(), "{cmds:?}\n{checked}");
        assert!(
            checked.contains("FAIL spool: SPOOLDIR names /mnt"),
            "{checked}"
        );
        assert!(said.contains("init 78\n"), "{said}\n{inited}");
        assert!(inited.contains("of the system's"), "{inited}");
        assert!(said.contains("mode 755 entries 0\n"), "{said}");
        let deep = fs::read_to_string(env.dir.join("deep.out")).unwrap();
        for d in ["profile.d", "spool/cron/crontabs"] {
            assert!(
                said.contains(&format!("deep {d} 78 mode 755 entries 0\n")),
                "{said}\n{deep}"
            );
        }
        assert!(deep.contains("of the system's"), "{deep}");
    }
    // The established spool, sticky.
    fs::write(&env.conf, &base).unwrap();
    chmod(&env.spool, 0o3770);
    let r = run();
    r.code(78);
    let l = line(&r, &format!("FAIL spool: {} (root:", env.spool.display()));
    assert_eq!(
        fix_of(l),
        Some(format!("chmod 2770 {}", env.spool.display()).as_str()),
        "{l}"
    );
    run_admin(&env, &prog, "init").code(0);
    assert_eq!(fs::metadata(&env.spool).unwrap().mode() & 0o7777, 0o2770);
    assert!(!run().stdout.contains("FAIL spool"), "{}", run().stdout);
}

/// The programs installed below a system-like directory that a group may write (as
/// `/usr/local/sbin` 2775 root:staff): `binary` fails naming it, with no command (it is
/// not rsendmail's to change), and its mode is left.
#[test]
fn a_system_directory_above_the_programs_gets_no_fix() {
    if !is_root() || !can_switch_user() {
        return;
    }
    let env = Env::new();
    let installed = install(&env);
    let sbin = system_like(&env).join("sbin");
    fs::rename(installed.parent().unwrap(), &sbin).unwrap();
    let prog = sbin.join("rsendmail-admin");
    let ug = test_user().gid;
    chgrp_chmod(&sbin, ug, 0o2775);
    let r = run_admin(&env, &prog, "check");
    let l = r
        .stdout
        .lines()
        .find(|l| {
            l.starts_with(&format!("FAIL binary: {} (", sbin.display()))
                && l.contains("writable by its group")
        })
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(fix_of(l).is_none() && l.contains("not rsendmail's"), "{l}");
    assert!(
        fixes_in(&r.stdout)
            .iter()
            .all(|c| !c.contains(&sbin.display().to_string())),
        "{}",
        r.stdout
    );
    assert_eq!(fs::metadata(&sbin).unwrap().mode() & 0o7777, 0o2775);
}

/// MAILLOG naming another of rsendmail's files (auth.conf, the configuration, the
/// aliases file, the installed program, a file in the spool) fails the check with why
/// and the line to correct, and no command touches it (a `chmod 660` of auth.conf
/// would hand the credentials to the spool's group).
#[test]
fn maillog_naming_another_of_rsendmails_files_fails_without_a_fix() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let auth = auth_conf(&env, 0o640);
    let aliases = env.dir.join("aliases");
    fs::write(&aliases, "postmaster: root\n").unwrap();
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    let (prog, run) = install_check(&env);
    let base = fs::read_to_string(&env.conf).unwrap();
    let program = prog.with_file_name("rsendmail");
    let in_spool = env.spool.join("tmp");
    for (named, what) in [
        (&auth, "AUTHPATH"),
        (&env.conf, "the configuration file"),
        (&aliases, "ALIASES"),
        (&program, "the program"),
        (&in_spool, "the spool"),
    ] {
        fs::write(&env.conf, format!("{base}MAILLOG {}\n", named.display())).unwrap();
        let n = base.lines().count() + 1;
        let before = fs::metadata(named)
            .map(|m| (m.mode(), m.uid(), m.gid()))
            .ok();
        let r = run();
        r.code(78);
        let l = line(
            &r,
            &format!("FAIL maillog: MAILLOG names {}: ", named.display()),
        );
        assert!(
            l.contains(what)
                && l.contains("never a log")
                && l.ends_with(&format!("correct {}: line {n}", env.conf.display())),
            "{l}"
        );
        let touching: Vec<String> = fixes_in(&r.stdout)
            .into_iter()
            .filter(|c| c.contains(&named.display().to_string()))
            .collect();
        assert!(touching.is_empty(), "{what}: {touching:?}\n{}", r.stdout);
        let after = fs::metadata(named)
            .map(|m| (m.mode(), m.uid(), m.gid()))
            .ok();
        assert_eq!(before, after, "{what} changed by the check");
    }
}

/// The certificate copy goes only into a `tls` beside the configuration that is a real
/// directory, root's and written by root alone, or one it makes (0750, the spool's
/// group): through a link `tls -> elsewhere` (a root's link to /etc would have it write
/// /etc/client.pem), or into a `tls` a user owns or everyone may write, no copy is
/// offered and nothing is written. What the file holds around its PEM blocks (a note,
/// a password) is not copied.
#[test]
fn the_certificate_copy_goes_only_into_roots_own_tls_and_only_its_pem_blocks() {
    let Some(env) = root_install(false) else {
        return;
    };
    let run = || env.check();
    let Some(pki) = crate::tls::Pki::make(&env.dir) else {
        return;
    };
    let private = env.dir.join("private");
    fs::create_dir(&private).unwrap();
    chgrp_chmod(&private, 65534, 0o710);
    let client = private.join("client.pem");
    let pem = format!(
        "{}{}",
        fs::read_to_string(pki.path("srv.pem")).unwrap(),
        fs::read_to_string(pki.path("srv.key")).unwrap()
    );
    fs::write(
        &client,
        format!("Bag Attributes\n    note: s3cret-note\n{pem}trailing s3cret-text\n"),
    )
    .unwrap();
    chgrp_chmod(&client, 65534, 0o640);
    env.add_config(&format!("STARTTLS\nCERTFILE {}\n", client.display()));
    let tls = env.dir.join("tls");
    let elsewhere = env.dir.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let user = crate::harness::test_user();
    let offered = |why: &str| {
        let r = run();
        let l = line(
            &r,
            &format!("FAIL tls files: CERTFILE {}", client.display()),
        );
        assert!(fix_of(l).is_none() && l.contains(why), "{why}: {l}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "{why}");
    };
    std::os::unix::fs::symlink(&elsewhere, &tls).unwrap();
    offered("is a symbolic link");
    fs::remove_file(&tls).unwrap();
    fs::create_dir(&tls).unwrap();
    std::os::unix::fs::chown(&tls, Some(user.uid), None).unwrap();
    offered("not root");
    std::os::unix::fs::chown(&tls, Some(0), None).unwrap();
    chmod(&tls, 0o777);
    offered("may be written by others than root");
    fs::remove_dir(&tls).unwrap();
    // Not there: made 0750 of the spool's group, then the PEM blocks alone copied.
    let r = run();
    let l = line(
        &r,
        &format!("FAIL tls files: CERTFILE {}", client.display()),
    );
    let cmd = fix_of(l).unwrap_or_else(|| panic!("{l}"));
    assert!(sh(cmd).success(), "{cmd}");
    let md = fs::symlink_metadata(&tls).unwrap();
    assert!(
        md.is_dir() && md.uid() == 0 && md.mode() & 0o7777 == 0o750,
        "{md:?}"
    );
    assert_eq!(md.gid(), spool_gid());
    let copied = fs::read_to_string(tls.join("client.pem")).unwrap();
    assert!(!copied.contains("s3cret"), "{copied}");
    assert_eq!(copied, pem);
    let r = run();
    assert!(!r.stdout.contains("FAIL tls files"), "{}", r.stdout);
}

/// The places rule for every fix of a path the configuration or `-C` names: a
/// configuration file, or a spool to be made, that is not rsendmail's (a system-like
/// file, reached through a symbolic link or `..`; under `/etc/sudoers.d`, a unit's
/// directory, `/root`, `/dev/shm`, `/proc`; a typo's `/var/spoool`) gets no command,
/// only why and the line to correct, and is left as it was; init makes no spool
/// there, parent there or not. The same kinds in rsendmail's places get a fix, which,
/// followed, makes the step pass. A spool everyone may write gives its fix once.
#[test]
fn every_fix_follows_the_places_rule() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    let base = fs::read_to_string(&env.conf).unwrap();
    let check_with =
        |conf: &Path| env.run_raw(&prog, &["-C", conf.to_str().unwrap(), "check"], b"");
    let mode_of = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;

    // The configuration file's own step (`-C /var/log/wtmp`, `/etc/mail.conf` 0666,
    // `/etc/rsendmail` a link to another directory of /etc).
    let sys = system_like(&env);
    let conf_in_sys = sys.join("mail.conf");
    let link = env.dir.join("rsendmail-etc");
    std::os::unix::fs::symlink(&sys, &link).unwrap();
    let up = env.dir.join("rsendmail-up");
    fs::create_dir(&up).unwrap();
    for named in [
        conf_in_sys.clone(),
        link.join("mail.conf"),
        up.join("../sys/mail.conf"),
    ] {
        fs::write(&conf_in_sys, &base).unwrap();
        chmod(&conf_in_sys, 0o666);
        let r = check_with(&named);
        r.code(78);
        let l = line(&r, "FAIL config: ");
        assert!(
            fix_of(l).is_none() && l.contains("is not rsendmail's") && l.contains("-C"),
            "{named:?}: {l}"
        );
        assert!(
            fixes_in(&r.stdout).iter().all(|c| !c.contains("mail.conf")),
            "{}",
            r.stdout
        );
        assert_eq!(mode_of(&conf_in_sys), 0o666);
    }
    // One named for rsendmail: its fix, followed, makes the step pass.
    let own = env.dir.join("rsendmail-own.conf");
    fs::write(&own, &base).unwrap();
    chmod(&own, 0o666);
    let r = check_with(&own);
    let l = line(&r, "FAIL config: ");
    let cmd = fix_of(l).unwrap_or_else(|| panic!("{l}")).to_string();
    assert!(sh(&cmd).success(), "{cmd}");
    let r = check_with(&own);
    assert!(!r.stdout.contains("FAIL config: "), "{}", r.stdout);

    // A spool to be made, its parent missing or there: the line to correct, no command,
    // and init makes nothing.
    let n = std::process::id();
    let mut spools: Vec<PathBuf> = [
        "/var/spoool/rsendmail",
        "/etc/sudoers.d/rsendmail/q",
        "/usr/lib/systemd/system/rsendmail.service/q",
        "/etc/cron.d/rsendmail/q",
        "/root/rsendmail/q",
        "/proc/self/rsendmail/q",
        "/etc/rsendmail/../passwd.d/q",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    spools.push(PathBuf::from(format!("/dev/shm/rsendmail-{n}/q")));
    // (Outside the system's places a spool is made in any directory, as an empty one
    // there is taken over: setup.rs.)
    for spool in &spools {
        if spool.parent().is_some_and(|p| p.exists()) && !spool.starts_with(&env.dir) {
            continue;
        }
        assert!(!spool.exists(), "{spool:?}");
        fs::write(&env.conf, &base).unwrap();
        set_spooldir(&env, spool);
        let r = run_admin(&env, &prog, "check");
        r.code(78);
        let l = line(&r, "FAIL spool: ");
        assert!(
            fix_of(l).is_none()
                && l.contains("is not rsendmail's")
                && l.ends_with(&format!("correct {}: line 1)", env.conf.display())),
            "{spool:?}: {l}"
        );
        let r = run_admin(&env, &prog, "init");
        r.code(78);
        assert!(
            r.stdout
                .contains(&format!("correct {}: line 1", env.conf.display())),
            "{spool:?}: {}",
            r.stdout
        );
        assert!(!spool.exists(), "{spool:?} made by init");
    }
    // In rsendmail's places (a directory named for it here): the fix, followed, makes
    // the spool step pass.
    let spool = env.dir.join("rsendmail-new/q");
    fs::write(&env.conf, &base).unwrap();
    set_spooldir(&env, &spool);
    let r = run_admin(&env, &prog, "check");
    let l = line(&r, "FAIL spool: ");
    let cmd = fix_of(l).unwrap_or_else(|| panic!("{l}")).to_string();
    assert!(sh(&cmd).success(), "{cmd}");
    let r = run_admin(&env, &prog, "check");
    assert!(!r.stdout.contains("FAIL spool: "), "{}", r.stdout);

    // A spool everyone may write: its repair said once.
    fs::write(&env.conf, &base).unwrap();
    env.sendmail(&["-odq", "someone@example.com"], MSG).code(0);
    chmod(&env.spool, 0o2777);
    let r = run_admin(&env, &prog, "check");
    let l = line(&r, "FAIL spool: ");
    assert!(fix_of(l).is_some() && !l.contains("repairs it"), "{l}");
    let cmd = fix_of(l).unwrap().to_string();
    assert!(sh(&cmd).success(), "{cmd}");
    let r = run_admin(&env, &prog, "check");
    assert!(!r.stdout.contains("FAIL spool: "), "{}", r.stdout);
}

/// The spool's `hold/` and `corrupt/` made as `init` makes them (2770, the spool's
/// group), for a test that puts files in them.
fn spool_subdirs(env: &Env) -> (PathBuf, PathBuf) {
    let (hold, corrupt) = (env.spool.join("hold"), env.spool.join("corrupt"));
    for d in [&hold, &corrupt] {
        fs::create_dir_all(d).unwrap();
        chgrp_chmod(d, spool_gid(), 0o2770);
    }
    (hold, corrupt)
}

/// A file of the spool's group, mode 0660, as the programs write them.
fn spool_file(p: &Path, text: &str) {
    fs::write(p, text).unwrap();
    chgrp_chmod(p, spool_gid(), 0o660);
}

/// A state file, a delivery journal or a mark (`kf<ID>`: an action asked for during a
/// delivery) whose entry's queue file is gone, in the spool, `hold/` or `corrupt/`:
/// each is a `warn spool` line naming it, its entry's ID and (a mark) what it asked for
/// and who asked, with the `rm` that removes it; the check still passes. The files of
/// entries still there (queued, held, a hold cut short, set aside) are not named; run
/// as printed, the fixes clear the lines and leave those entries as they were.
#[test]
fn check_names_each_file_left_without_its_entry() {
    let Some(env) = root_install(false) else {
        return;
    };
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let live = env.only_id();
    let (hold, corrupt) = spool_subdirs(&env);
    let top = env.spool.clone();
    // The files of entries that are there: not left without them.
    let kept = [
        // A mark beside its queued entry.
        (
            top.join(format!("kf{live}")),
            "rsendmail-hold 1\nby root (uid 0)\nat 1700000000\n",
        ),
        // A hold cut short between its renames: the state in the spool, the entry held.
        (hold.join("qf6AM5eIkR004101"), "x"),
        (top.join("sf6AM5eIkR004101"), "x"),
        // Set aside by a run, with its state.
        (corrupt.join("qf6AM5eIkR004102"), "x"),
        (corrupt.join("sf6AM5eIkR004102"), "x"),
    ];
    for (p, text) in &kept {
        spool_file(p, text);
    }
    let deletion = top.join("kf6AM5eIkR004001");
    let state = top.join("sf6AM5eIkR004002");
    let journal = top.join("jf6AM5eIkR004003");
    let held_state = hold.join("sf6AM5eIkR004004");
    let held_mark = hold.join("kf6AM5eIkR004005");
    let aside_journal = corrupt.join("jf6AM5eIkR004006");
    let garbled = top.join("kf6AM5eIkR004007");
    let hold_mark = top.join("kf6AM5eIkR004008");
    // A deletion mark beside the held entry: its release would let the next run carry
    // it out.
    let beside_held = top.join("kf6AM5eIkR004101");
    spool_file(
        &beside_held,
        "rsendmail-delete 1\nby root (uid 0)\nat 1700000000\n",
    );
    spool_file(
        &deletion,
        "rsendmail-delete 1\nby root (uid 0)\nat 1700000000\n",
    );
    spool_file(&state, "x");
    spool_file(&journal, "x");
    spool_file(&held_state, "x");
    spool_file(
        &held_mark,
        "rsendmail-bounce 1\nby eve\u{1b}[2J (uid 1001)\nat 1700000000\nreason go\u{1b}[31m away\n",
    );
    spool_file(&aside_journal, "x");
    spool_file(&garbled, "\u{1b}[2Jnot a mark\n");
    spool_file(
        &hold_mark,
        "rsendmail-hold 1\nby root (uid 0)\nat 1700000000\n",
    );
    let r = env.check();
    r.code(0);
    let warned = |p: &Path| line(&r, &format!("warn spool: {}: ", p.display())).to_string();
    for p in [
        &deletion,
        &state,
        &journal,
        &held_state,
        &held_mark,
        &aside_journal,
        &garbled,
        &hold_mark,
    ] {
        let l = warned(p);
        let name = p.file_name().unwrap().to_str().unwrap();
        let id = name.get(2..).unwrap();
        assert!(
            l.contains(&format!(
                "left without its entry: entry {id} is no longer queued"
            )) && l.ends_with(&format!("(fix: rm -f -- {})", p.display())),
            "{l}"
        );
    }
    assert!(
        warned(&deletion).contains("a mark asking for deletion (by root (uid 0) on ")
            && warned(&deletion).contains("the next full queue run removes it"),
        "{}",
        r.stdout
    );
    let l = warned(&held_mark);
    assert!(
        l.contains("a mark asking for return to the sender (by eve\\033[2J (uid 1001) on ")
            && l.contains("with the reason \"go\\033[31m away\"")
            && l.contains("no run removes it"),
        "{l}"
    );
    assert!(
        warned(&state).contains("the state file of entry "),
        "{}",
        r.stdout
    );
    assert!(
        warned(&journal).contains("the delivery journal of entry "),
        "{}",
        r.stdout
    );
    assert!(
        warned(&hold_mark).contains("a mark asking for a hold (by root (uid 0) on "),
        "{}",
        r.stdout
    );
    assert!(
        warned(&garbled).contains("a mark that rsendmail did not write"),
        "{}",
        r.stdout
    );
    let l = warned(&beside_held);
    assert!(
        l.contains("a mark asking for deletion (by root (uid 0) on ")
            && l.contains("beside entry 6AM5eIkR004101, which is held")
            && l.ends_with(&format!("(fix: rm -f -- {})", beside_held.display())),
        "{l}"
    );
    assert!(!r.stdout.contains('\u{1b}'), "{}", r.stdout);
    for (p, _) in &kept {
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(
            !r.stdout.contains(&format!("{name}: ")),
            "{name} named:\n{}",
            r.stdout
        );
    }
    for l in r.stdout.lines().filter(|l| l.starts_with("warn spool: ")) {
        let cmd = fix_of(l).unwrap_or_else(|| panic!("{l}"));
        assert!(sh(cmd).success(), "{cmd}");
    }
    let r = env.check();
    r.code(0);
    assert!(!r.stdout.contains("left without its entry"), "{}", r.stdout);
    assert!(!r.stdout.contains("which is held"), "{}", r.stdout);
    assert!(!beside_held.exists());
    for (p, _) in &kept {
        assert!(p.exists(), "{} removed", p.display());
    }
    assert_eq!(env.only_id(), live);
}

/// A symbolic link, a FIFO or a directory where an entry's file belongs, in the spool
/// or in `hold/`, fails the spool step, a line each naming it and what it is (a link's
/// target said, never followed), with the removal of the name itself. `mailq` lists
/// such an entry as a queue file it cannot read, never what the link points to. Run as
/// printed, the fixes make the check pass, and what the links pointed to is untouched.
#[test]
fn a_link_or_a_special_file_in_an_entrys_place_fails_the_spool_step() {
    let Some(env) = root_install(false) else {
        return;
    };
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let live = env.only_id();
    let (hold, _) = spool_subdirs(&env);
    let secret = env.dir.join("secret");
    fs::write(&secret, "Subject: not for the queue\n\nsecret text\n").unwrap();
    chmod(&secret, 0o600);
    let outside = env.dir.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), "kept").unwrap();
    let top = env.spool.clone();
    let queued_link = top.join("qf6AM5eIkR004011");
    let held_link = hold.join("qf6AM5eIkR004012");
    let state_fifo = top.join("sf6AM5eIkR004013");
    let mark_dir = hold.join("kf6AM5eIkR004014");
    let journal_link = top.join(format!("jf{live}"));
    std::os::unix::fs::symlink(&secret, &queued_link).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", &held_link).unwrap();
    mkfifo(&state_fifo);
    fs::create_dir(&mark_dir).unwrap();
    std::os::unix::fs::symlink(&outside, &journal_link).unwrap();
    let r = env.check();
    r.code(78);
    let failed = |p: &Path| line(&r, &format!("FAIL spool: {} is ", p.display())).to_string();
    for (p, is, what, rm) in [
        (
            &queued_link,
            format!("a symbolic link to {}", secret.display()),
            "queue file of entry 6AM5eIkR004011",
            "rm --",
        ),
        (
            &held_link,
            "a symbolic link to /etc/shadow".to_string(),
            "queue file of entry 6AM5eIkR004012",
            "rm --",
        ),
        (
            &state_fifo,
            "a FIFO".to_string(),
            "state file of entry 6AM5eIkR004013",
            "rm --",
        ),
        (
            &mark_dir,
            "a directory".to_string(),
            "mark (an action asked for during a delivery) of entry 6AM5eIkR004014",
            "rm -r --",
        ),
        (
            &journal_link,
            format!("a symbolic link to {}", outside.display()),
            &format!("delivery journal of entry {live}"),
            "rm --",
        ),
    ] {
        let l = failed(p);
        assert!(
            l.starts_with(&format!(
                "FAIL spool: {} is {is}, where the {what} belongs: ",
                p.display()
            )) && l.ends_with(&format!("(fix: {rm} {})", p.display())),
            "{l}"
        );
    }
    assert!(
        failed(&queued_link).contains("remove the link itself, never what it points to"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("secret text"), "{}", r.stdout);
    assert!(
        !r.stdout
            .lines()
            .any(|l| l.starts_with("ok   spool ") && l.contains("sub-directories"))
    );
    // mailq reads no link: the entry is one it cannot read.
    let q = env.mailq(&[]);
    assert!(
        q.contains(&format!(
            "6AM5eIkR004011 (cannot read queue file: {} is a symbolic link",
            queued_link.display()
        )) && !q.contains("secret text")
            && !q.contains("not for the queue"),
        "{q}"
    );
    for cmd in fixes_in(&r.stdout)
        .into_iter()
        .filter(|c| c.starts_with("rm "))
    {
        assert!(sh(&cmd).success(), "{cmd}");
    }
    let r = env.check();
    r.code(0);
    assert!(!r.stdout.contains("FAIL spool"), "{}", r.stdout);
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        "Subject: not for the queue\n\nsecret text\n"
    );
    assert_eq!(fs::metadata(&secret).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "kept");
    assert!(fs::metadata("/etc/shadow").is_ok());
    assert_eq!(env.only_id(), live);
}

/// A symbolic link (a user's) in place of the index's `recipients`, and a FIFO in
/// `slots/`, where the spool keeps regular files only, fail the spool step, a line each
/// with the link's target said, never followed, and the removal of the name itself; run
/// as printed, the check passes and what the link pointed to is untouched.
#[test]
fn a_link_or_a_special_file_in_the_index_or_slots_fails_the_spool_step() {
    let Some(env) = root_install(false) else {
        return;
    };
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let index = env.spool.join("index");
    let slots = env.spool.join("slots");
    for d in [&index, &slots] {
        fs::create_dir_all(d).unwrap();
        chgrp_chmod(d, spool_gid(), 0o2770);
    }
    let r = env.check();
    r.code(0);
    let target = env.dir.join("users-file");
    fs::write(&target, "kept\n").unwrap();
    let link = index.join("recipients");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let fifo = slots.join("a-fifo");
    mkfifo(&fifo);
    let r = env.check();
    r.code(78);
    for (p, is, rm_dir) in [
        (
            &link,
            format!("a symbolic link to {}", target.display()),
            &index,
        ),
        (&fifo, "a FIFO".to_string(), &slots),
    ] {
        let l = line(&r, &format!("FAIL spool: {} is ", p.display()));
        assert!(
            l.starts_with(&format!(
                "FAIL spool: {} is {is}, in {}, where the spool keeps regular files only: ",
                p.display(),
                rm_dir.display()
            )) && l.ends_with(&format!("(fix: rm -- {})", p.display())),
            "{l}"
        );
    }
    for cmd in fixes_in(&r.stdout)
        .into_iter()
        .filter(|c| c.starts_with("rm "))
    {
        assert!(sh(&cmd).success(), "{cmd}");
    }
    let r = env.check();
    r.code(0);
    assert!(!r.stdout.contains("FAIL spool"), "{}", r.stdout);
    assert_eq!(fs::read_to_string(&target).unwrap(), "kept\n");
    // Names with control characters (anyone's choice of name): shown escaped on one
    // line, removed by their fix as printed (ANSI-C quoting, bash's), the files beside
    // them (a name the escaped form would read as) untouched.
    let odd = [index.join("esc\u{1b}[2Jz"), slots.join("line\nok   spool")];
    let decoy = index.join("esc\\033[2Jz");
    std::os::unix::fs::symlink(&target, &odd[0]).unwrap();
    mkfifo(&odd[1]);
    std::os::unix::fs::symlink(&target, &decoy).unwrap();
    let r = env.check();
    r.code(78);
    assert!(
        !r.stdout.contains('\u{1b}') && !r.stdout.lines().any(|l| l.starts_with("spool")),
        "{}",
        r.stdout
    );
    line(
        &r,
        &format!("FAIL spool: {}/esc\\033[2Jz is ", index.display()),
    );
    line(
        &r,
        &format!("FAIL spool: {}/line\\012ok   spool is ", slots.display()),
    );
    for cmd in fixes_in(&r.stdout)
        .into_iter()
        .filter(|c| c.starts_with("rm ") && c.contains("$'"))
    {
        let st = std::process::Command::new("bash")
            .args(["-c", &cmd])
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    }
    for p in &odd {
        assert!(fs::symlink_metadata(p).is_err(), "{p:?} is left");
    }
    assert!(fs::symlink_metadata(&decoy).is_ok());
}

/// A queued entry's file with another name (a hard link made outside the spool): the
/// programs refuse to open it, so `check` fails the spool step naming it and its link
/// count, with the `find` that shows the other name; once that name is removed, the
/// check passes and the entry is listed again.
#[test]
fn an_entrys_file_with_a_hard_link_fails_the_spool_step() {
    let Some(env) = root_install(false) else {
        return;
    };
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let id = env.only_id();
    let qf = env.spool.join(format!("qf{id}"));
    let other = env.spool.join("..").join("copy-of-the-queue-file");
    fs::hard_link(&qf, &other).unwrap();
    let r = env.check();
    r.code(78);
    let l = line(&r, &format!("FAIL spool: {} has 2 links: ", qf.display())).to_string();
    assert!(
        l.contains("another name for this queued file exists (a hard link)")
            && l.ends_with(&format!(
                "(find them: find / -xdev -samefile {} \\! -path {})",
                qf.display(),
                qf.display()
            )),
        "{l}"
    );
    // Its mode wrong too: the fix of the entries' modes leaves it alone (changed, the
    // file under its other name, outside the spool, would change with it).
    chmod(&qf, 0o600);
    let r = env.check();
    r.code(78);
    let finds: Vec<String> = fixes_in(&r.stdout)
        .into_iter()
        .filter(|c| c.starts_with("find ") && c.contains(" -exec ch"))
        .collect();
    assert!(!finds.is_empty(), "{}", r.stdout);
    for c in &finds {
        assert!(sh(c).success(), "{c}");
    }
    assert_eq!(
        fs::metadata(&other).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    chmod(&qf, 0o660);
    fs::remove_file(&other).unwrap();
    let r = env.check();
    r.code(0);
    assert!(!r.stdout.contains("links: another name"), "{}", r.stdout);
    assert!(env.mailq(&[]).contains(&id));
}

/// Files whose names are no entry's (`notes.txt`, `qfjunk`, a name with a control
/// character) among the entries, in the spool or in `hold/`, are one `warn spool` line
/// each directory, the names shown escaped; they are no queue entries, so no mode or
/// group of theirs fails the check, and no fix touches them.
#[test]
fn files_that_are_not_entries_are_named_and_left_alone() {
    let Some(env) = root_install(false) else {
        return;
    };
    let (hold, _) = spool_subdirs(&env);
    let notes = env.spool.join("notes.txt");
    let junk = env.spool.join("qfjunk");
    let odd = env.spool.join("qf\u{1b}[2J");
    let held = hold.join("sf6AM5eIkR004034.bak");
    for p in [&notes, &junk, &odd, &held] {
        fs::write(p, "x").unwrap();
        chgrp_chmod(p, 0, 0o644);
    }
    let r = env.check();
    r.code(0);
    let l = line(
        &r,
        &format!(
            "warn spool: 3 file(s) in {} are not queue entries (",
            env.spool.display()
        ),
    );
    assert!(l.contains("(notes.txt, qf\\033[2J, qfjunk)"), "{l}");
    let l = line(
        &r,
        &format!(
            "warn spool: 1 file(s) in {} are not queue entries (",
            hold.display()
        ),
    );
    assert!(l.contains("(sf6AM5eIkR004034.bak)"), "{l}");
    assert!(fixes_in(&r.stdout).is_empty(), "{}", r.stdout);
    assert!(!r.stdout.contains('\u{1b}'), "{}", r.stdout);
}

/// A MAILNAME file whose first line is 300,000 characters long (no valid mail name):
/// every program that refuses it (`rsendmail -bp`, a submission, `rsendmail-admin
/// config` and `list`) quotes its first 256 characters and its length, never the whole
/// line. So does a MAILNAME keyword's value.
#[test]
fn a_huge_mail_name_is_quoted_cut() {
    let huge = format!("{}!", "a".repeat(300_000));
    for in_file in [true, false] {
        let env = Env::new();
        let conf = fs::read_to_string(&env.conf).unwrap();
        let value = if in_file {
            let f = env.dir.join("mailname");
            fs::write(&f, format!("{huge}\n")).unwrap();
            fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
            f.display().to_string()
        } else {
            huge.clone()
        };
        fs::write(
            &env.conf,
            conf.replace("MAILNAME test.example\n", &format!("MAILNAME {value}\n")),
        )
        .unwrap();
        let outs = [
            env.sendmail(&["-bp"], b""),
            env.sendmail(&["-odq", "bob@example.org"], b"Subject: x\n\nx\n"),
            admin(&env, &["config"]),
            admin(&env, &["list"]),
        ];
        for r in outs {
            assert_ne!(r.code, 0, "{}: {}", r.cmd, r.stderr);
            let said = format!("{}{}", r.stdout, r.stderr);
            assert!(
                said.len() < 2000,
                "{in_file}: {}: {} octets",
                r.cmd,
                said.len()
            );
            assert!(
                said.contains("(300001 characters)"),
                "{in_file}: {}: {said}",
                r.cmd
            );
        }
    }
}

/// A domain longer than DNS allows (RFC 1035: 253 octets, a label 63), a 300,000
/// character one among them: in `RELAYTABLE` it is refused with the table's file and
/// line, in `O RelayDomains=` and `O FastFlushDomains=` with the configuration's, 78
/// (EX_CONFIG), the domain shown cut, by a submission (nothing queued) and by `check`.
#[test]
fn a_domain_longer_than_dns_allows_is_refused_with_its_line() {
    let huge = format!("{}.example", "a".repeat(300_000));
    let long_label = format!("{}.example", "b".repeat(64));
    for domain in [&huge, &long_label] {
        let env = Env::new();
        let table = env.dir.join("relays");
        fs::write(&table, format!("# relays\n{domain} 127.0.0.1\n")).unwrap();
        chmod(&table, 0o644);
        env.add_config(&format!(
            "SMARTHOST 127.0.0.1\nRELAYTABLE {}\n",
            table.display()
        ));
        let at = format!("{}: line 2: invalid domain ", table.display());
        let r = env.sendmail(&["-odq", "bob@example.org"], MSG);
        r.code(78);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(said.contains(&at) && said.len() < 2000, "{said}");
        assert!(env.entries().is_empty(), "{}", env.listing());
        let r = admin(&env, &["check"]);
        r.code(78);
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with("FAIL config: ") && l.contains(&at)),
            "{}",
            r.stdout
        );
        for option in ["RelayDomains", "FastFlushDomains"] {
            let env = Env::with_config(&format!("O {option}=a.example,{domain}\n"));
            let at = format!(
                "{}: line {}: Invalid value for {option}: ",
                env.conf.display(),
                env.config_line(&format!("O {option}"))
            );
            let r = env.sendmail(&["-odq", "bob@example.org"], MSG);
            r.code(78);
            let said = format!("{}{}", r.stdout, r.stderr);
            assert!(said.contains(&at) && said.len() < 2000, "{option}: {said}");
            assert!(env.entries().is_empty(), "{}", env.listing());
        }
    }
}

/// A listener on 127.0.0.1 that accepts every connection for `secs` seconds and counts
/// them; each is handed to `serve` on a thread of its own (which may hold it silent).
struct CountingListener {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingListener {
    fn start(
        secs: u64,
        serve: impl Fn(std::net::TcpStream) + Send + Sync + Clone + 'static,
    ) -> CountingListener {
        use std::sync::atomic::Ordering;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
            while std::time::Instant::now() < end {
                match l.accept() {
                    Ok((s, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = s.set_nonblocking(false);
                        let serve = serve.clone();
                        std::thread::spawn(move || serve(s));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        });
        CountingListener { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An SMTPS relay (SECURETRANSFER) that accepts the connection and never sends a byte
/// of the handshake: `check` says before the wait that the handshake is waited for and
/// how long (Timeout.helo), then that it timed out, after how long and which option sets
/// it, within about that time, with one connection: no second one to fetch a
/// certificate there is none of (75).
#[test]
fn an_smtps_server_that_never_answers_the_handshake_is_said_to_time_out() {
    let silent = CountingListener::start(60, |s| {
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(s);
    });
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nSECURETRANSFER\nO Timeout.connect=5s\n\
         O Timeout.initial=20s\n",
        silent.port
    ));
    let t = std::time::Instant::now();
    let r = admin(&env, &["check", "-O", "Timeout.helo=2s"]);
    let took = t.elapsed();
    r.code(75);
    assert_eq!(
        line(&r, "info connect: "),
        format!(
            "info connect: connecting to 127.0.0.1 port {} (up to 5s, Timeout.connect), then \
             the TLS handshake (up to 2s, Timeout.helo), then waiting for its greeting (up \
             to 20s, Timeout.initial)",
            silent.port
        )
    );
    assert_eq!(
        line(&r, "FAIL tls: "),
        "FAIL tls: TLS handshake with [127.0.0.1] timed out after 2s (Timeout.helo): the \
         server accepted the connection but did not complete the handshake in that time"
    );
    assert!(!r.stdout.contains("interrupted"), "{}", r.stdout);
    assert_eq!(silent.accepted(), 1, "{}", r.stdout);
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

/// An SMTPS relay whose certificate is for another name, and which never greets: `check`
/// fails at the handshake, then fetches the certificate again to show it, on a second
/// connection that ends with its handshake (no wait for a greeting, Timeout.initial).
#[test]
fn a_refused_smtps_certificate_is_shown_without_waiting_for_a_greeting() {
    let env0 = Env::new();
    let Some(pki) = Pki::make(&env0.dir) else {
        return;
    };
    let acceptor = {
        use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        b.set_private_key_file(pki.path("wrong.key"), SslFiletype::PEM)
            .unwrap();
        b.set_certificate_chain_file(pki.path("wrong.pem")).unwrap();
        std::sync::Arc::new(b.build())
    };
    let server = CountingListener::start(60, move |s| {
        // The handshake, then silence (no greeting) while the client waits.
        if let Ok(tls) = acceptor.accept(s) {
            std::thread::sleep(std::time::Duration::from_secs(30));
            drop(tls);
        }
    });
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nSECURETRANSFER\nO Timeout.connect=5s\n\
         O Timeout.initial=30s\nO CACertFile={}\n",
        server.port,
        pki.path("ca.pem")
    ));
    let t = std::time::Instant::now();
    let r = admin(&env, &["check"]);
    let took = t.elapsed();
    r.code(75);
    let fail = line(&r, "FAIL tls: ");
    assert!(
        fail.contains("the server's certificate could not be verified"),
        "{fail}"
    );
    let shown = line(&r, "info tls: the certificate 127.0.0.1 offers: ");
    assert!(shown.contains("issuer CN=rsendmail test CA"), "{shown}");
    line(
        &r,
        "info tls: it is not for 127.0.0.1: it names other.example",
    );
    assert_eq!(server.accepted(), 2, "{}", r.stdout);
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
}

/// A value the command line gives (`-O AliasFile=`, `-oA`, `-O CACertFile=`,
/// `-O PidFile=`) is named with its origin when refused, never as the file's line it
/// overrides; `config` says which of ALIASES and `O AliasFile` is in effect.
#[test]
fn a_refused_value_of_the_command_line_is_named_as_given() {
    let env = Env::new();
    let aliases = env.dir.join("aliases");
    fs::write(&aliases, "postmaster: root\n").unwrap();
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    let conf = env.conf.display().to_string();
    let n = env.config_line("ALIASES");
    for (opts, named) in [
        (
            &["-O", "AliasFile=/etc/shadow"][..],
            "-O AliasFile=/etc/shadow",
        ),
        (&["-oA/etc/shadow"][..], "-oA/etc/shadow"),
    ] {
        let mut args = vec!["check"];
        args.extend(opts);
        let r = admin(&env, &args);
        r.code(78);
        let l = line(&r, "FAIL config: ");
        assert!(
            l.starts_with(&format!(
                "FAIL config: the command line: {named} is refused: it is the system's \
                 shadow password file"
            )) && !l.contains(&format!("line {n}")),
            "{l}"
        );
    }
    let missing = env.dir.join("no-such-ca.pem");
    let r = admin(
        &env,
        &["check", "-O", &format!("CACertFile={}", missing.display())],
    );
    r.code(78);
    let l = line(&r, "FAIL config: ");
    assert!(
        l.starts_with(&format!(
            "FAIL config: the command line: cannot open CACertFile {}",
            missing.display()
        )),
        "{l}"
    );
    // A missing aliases file the command line names: the command line, no line.
    let gone = env.dir.join("no-such-aliases");
    let r = admin(
        &env,
        &["check", "-O", &format!("AliasFile={}", gone.display())],
    );
    let l = line(&r, "FAIL aliases: ");
    assert_eq!(
        l,
        format!(
            "FAIL aliases: the command line: cannot open -O AliasFile={}: No such file or \
             directory (no alias applies while it is missing: give another file, or make \
             the file)",
            gone.display()
        )
    );
    let r = admin(&env, &["check", "-O", "PidFile=/etc/motd"]);
    let l = line(&r, "FAIL pid file: ");
    assert!(l.ends_with("correct the command line (-O PidFile=)"), "{l}");
    // config: the ALIASES line says it is overridden, and by what; the option's line
    // that it is in effect.
    let other = env.dir.join("aliases2");
    fs::write(&other, "postmaster: root\n").unwrap();
    let r = admin(
        &env,
        &["config", "-O", &format!("AliasFile={}", other.display())],
    );
    r.code(0);
    assert!(
        r.stdout.contains(&format!(
            "\nALIASES {}    # {conf}: line {n}, overridden by O AliasFile={} (command line)\n",
            aliases.display(),
            other.display()
        )) && r.stdout.contains(&format!(
            "\nO AliasFile={}    # command line (in effect, over ALIASES)\n",
            other.display()
        )),
        "{}",
        r.stdout
    );
    env.add_config(&format!("O AliasFile={}\n", other.display()));
    let m = env.config_line("O AliasFile");
    let r = admin(&env, &["config"]);
    r.code(0);
    assert!(
        r.stdout.contains(&format!(
            "\nALIASES {}    # {conf}: line {n}, overridden by O AliasFile={} ({conf}: line {m})\n",
            aliases.display(),
            other.display()
        )),
        "{}",
        r.stdout
    );
}

/// A SPOOLDIR not written plainly (a `..`, `.` or empty name) is made by no one: init
/// refuses it (78, nothing made, not even where it leads), and check gives the same
/// words, the line to correct and no command.
#[test]
fn a_spooldir_not_written_plainly_gets_only_its_line() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let prog = install(&env);
    fs::create_dir(env.dir.join("t1")).unwrap();
    for (spool, why) in [
        (
            format!("{}/t1/../rsendmail-new", env.dir.display()),
            "a name of `..`",
        ),
        (
            format!("{}/t1/./rsendmail-new", env.dir.display()),
            "a name of `.`",
        ),
        (
            format!("{}//rsendmail-new", env.dir.display()),
            "an empty name",
        ),
    ] {
        write_config(&env.conf, Path::new(&spool), "");
        let r = run_admin(&env, &prog, "check");
        r.code(78);
        let l = line(&r, "FAIL spool: ");
        assert!(
            l.starts_with(&format!(
                "FAIL spool: {}: line 1: SPOOLDIR {spool}: no such directory",
                env.conf.display()
            )) && l.contains(why)
                && l.contains(&format!("correct {}: line 1", env.conf.display()))
                && !l.contains("(fix: ")
                && !l.contains(" init"),
            "{l}"
        );
        let r = run_admin(&env, &prog, "init");
        r.code(78);
        assert!(
            r.stdout.contains(why) || r.stderr.contains(why),
            "{}\n{}",
            r.stdout,
            r.stderr
        );
        assert!(!env.dir.join("rsendmail-new").exists());
        assert!(!env.dir.join("t1/rsendmail-new").exists());
    }
}

/// Without --to, at most 20 hosts of the relay table are checked; the rest are counted
/// on a `warn` line, so that a table of thousands cannot keep the check going for hours.
#[test]
fn the_relay_hosts_checked_are_bounded() {
    let dead = closed_tcp_port();
    let env0 = Env::new();
    let table = env0.dir.join("relays");
    let lines: String = (1..=25)
        .map(|i| format!("d{i}.example 127.0.0.{i}:{dead}\n"))
        .collect();
    fs::write(&table, lines).unwrap();
    let env = Env::with_config(&format!(
        "RELAYTABLE {}\nO Timeout.connect=5s\n",
        table.display()
    ));
    let r = admin(&env, &["check"]);
    r.code(75);
    assert_eq!(r.stdout.matches("info relay:").count(), 20, "{}", r.stdout);
    line(&r, "info relay: 127.0.0.20 port ");
    assert!(!r.stdout.contains("127.0.0.21 "), "{}", r.stdout);
    line(
        &r,
        "warn relay: 5 more hosts of RELAYTABLE not checked (the check tries the first 20 \
         of 25)",
    );
}

/// A user's `check` of root's configuration (`-C`, which gives up the set-gid group)
/// that names the shared spool (root's, 2770 of the spool's group): judged as the
/// system spool, as root's check judges it, never "a user's own spool" with a `chmod
/// 700` that would break every user's submissions.
#[test]
fn a_users_check_of_roots_config_judges_the_shared_spool() {
    let Some(env) = root_install(true) else {
        return;
    };
    chmod(&env.dir, 0o755);
    let out = as_user(
        &env.prog,
        &["-C", env.conf.to_str().unwrap(), "check"],
        &[],
        b"",
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !said.contains("a user's own spool")
            && !said.contains("this user's own")
            && !said.contains("chmod 700"),
        "{said}"
    );
    assert!(!said.lines().any(|l| l.starts_with("FAIL ")), "{said}");
    assert!(
        said.lines()
            .any(|l| l.starts_with(&format!("ok   spool {} (root:", env.spool.display()))),
        "{said}"
    );
    assert_eq!(out.status.code(), Some(0), "{said}");
}

/// A user's `check` whose `-C` or `-O` gave up the set-gid group: auth.conf (root's,
/// 0640 of the spool's group), which the group would have let her read, is a `warn`
/// line saying it could not be checked and why, never a failure.
#[test]
fn a_users_check_without_the_group_warns_about_auth_conf() {
    let Some(env) = root_install(true) else {
        return;
    };
    chmod(&env.dir, 0o755);
    // In a directory of root's and the spool's group, as /etc/rsendmail may be.
    let d = env.dir.join("rsendmail");
    fs::create_dir(&d).unwrap();
    chgrp_chmod(&d, spool_gid(), 0o750);
    let auth = d.join("auth.conf");
    fs::write(&auth, "bob|127.0.0.1:pw\n").unwrap();
    chgrp_chmod(&auth, spool_gid(), 0o640);
    let port = closed_tcp_port();
    env.add_config(&format!(
        "AUTHPATH {}\nSMARTHOST 127.0.0.1\nPORT {port}\n",
        auth.display()
    ));
    for extra in [
        &[][..],
        &["-O", "MXPort=25"][..],
        &["-O", "Timeout.auth=1s"][..],
    ] {
        let mut args = vec!["-C", env.conf.to_str().unwrap(), "check"];
        args.extend_from_slice(extra);
        let out = as_user(&env.prog, &args, &[], b"");
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("{said}{}", String::from_utf8_lossy(&out.stderr));
        // (nothing listens on the port: the connection alone fails)
        assert!(
            !said
                .lines()
                .any(|l| l.starts_with("FAIL ") && !l.starts_with("FAIL connect: ")),
            "{extra:?}\n{said}"
        );
        assert!(
            said.lines().any(|l| l
                == format!(
                    "warn auth.conf: {} could not be checked: Permission denied (the spool's \
                     group, which may reach it, was given up for {}; leave them out, or run \
                     the check as root)",
                    auth.display(),
                    match extra.get(1) {
                        Some(o) => format!("-C and -O {}", o.split('=').next().unwrap()),
                        None => "-C".into(),
                    }
                )
                .replace("for -C; leave them", "for -C; leave it")),
            "{extra:?}\n{said}"
        );
    }
}

/// An AUTHPATH the programs refuse (a link to the system's shadow password file): the
/// configuration is refused by every program, a queue runner too, so the wakeup step
/// never says to start one; it points to the refusal above.
#[test]
fn a_refused_configuration_gets_no_advice_to_start_a_runner() {
    let Some(env) = root_install(false) else {
        return;
    };
    if !Path::new("/etc/shadow").exists() {
        return;
    }
    let link = env.dir.join("auth.conf");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
    env.add_config(&format!("AUTHPATH {}\n", link.display()));
    let r = env.check();
    eprintln!("{}", r.stdout);
    r.code(78);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("FAIL config: ") || l.starts_with("FAIL auth.conf: ")),
        "{}",
        r.stdout
    );
    let wakeup: Vec<&str> = r.stdout.lines().filter(|l| l.contains(" wakeup")).collect();
    assert!(
        wakeup.len() == 1
            && wakeup[0].starts_with("skip wakeup: ")
            && wakeup[0].contains("refuse")
            && !wakeup[0].contains("start one")
            && !wakeup[0].contains("-q30m"),
        "{}",
        r.stdout
    );
}

/// The env of the masking checks: the smarthost at `port` over clear text (INSECURE),
/// the password `password` for bob there in a 0640 auth.conf.
fn masking_env(port: u16, password: &str) -> Env {
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {port}\nINSECURE\nO Timeout.connect=5s\n"
    ));
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, format!("bob|127.0.0.1:{password}\n")).unwrap();
    chmod(&auth, 0o640);
    env.add_config(&format!("AUTHPATH {}\n", auth.display()));
    env
}

/// A server whose 535 echoes the refused credentials: the check's line masks the
/// password and its base64 forms as AUTH sent them (`********`).
#[test]
fn a_password_the_server_echoes_is_masked() {
    let Some((_scratch, peer)) = crate::harness::servers::start_peer(&[
        ("AUTH_USER", "bob"),
        ("AUTH_PASS", "right"),
        ("AUTH_NO_CRAM", "1"),
        ("AUTH_ECHO", "1"),
    ]) else {
        return;
    };
    let env = masking_env(peer.port, "wr0ng-pass");
    let r = admin(&env, &["check"]);
    r.code(69);
    let l = line(&r, "FAIL auth: ");
    assert!(
        l.contains(
            "535 5.7.8 Authentication failed for bob pw ******** plain ******** login ********"
        ),
        "{l}"
    );
    for f in ["wr0ng-pass", "AGJvYgB3cjBuZy1wYXNz", "d3IwbmctcGFzcw=="] {
        assert!(
            !r.stdout.contains(f) && !r.stderr.contains(f),
            "{f}: {}",
            r.stdout
        );
    }
}

/// A server that learned the password from one check's AUTH and echoes it, and its
/// base64, in a later connection's greeting: the next check's `FAIL greeting:` line masks
/// both, though it never gets to AUTH.
#[test]
fn a_password_echoed_in_a_later_greeting_is_masked() {
    let Some((_scratch, peer)) = crate::harness::servers::start_peer(&[
        ("AUTH_USER", "bob"),
        ("AUTH_PASS", "S3cr3tPassw0rdXYZ"),
        ("AUTH_NO_CRAM", "1"),
        ("ECHO_LATER", "1"),
    ]) else {
        return;
    };
    let env = masking_env(peer.port, "S3cr3tPassw0rdXYZ");
    let first = admin(&env, &["check"]);
    line(&first, "ok   auth 127.0.0.1 accepted");
    let r = admin(&env, &["check"]);
    // A 421 greeting: the server may take mail later.
    r.code(75);
    let l = line(&r, "FAIL greeting: ");
    assert!(
        l.contains("421 4.3.2 busy, last password was ******** (b64 ********)"),
        "{l}"
    );
    for f in ["S3cr3tPassw0rdXYZ", "UzNjcjN0UGFzc3cwcmRYWVo="] {
        assert!(
            !r.stdout.contains(f) && !r.stderr.contains(f),
            "{f}: {}",
            r.stdout
        );
    }
}
