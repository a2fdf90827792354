//! STARTTLS, implicit TLS, certificate checks and AUTH against aiosmtpd, with a CA and
//! certificates made by openssl at test time.

use crate::harness::servers::Peer;
use crate::harness::{Env, MSG, require};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Test certificates: a CA, a server certificate it signed for localhost/127.0.0.1, one it
/// signed for another name, and a self-signed one.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn make(dir: &Path) -> Option<Pki> {
        if !require("openssl") {
            return None;
        }
        let dir = dir.join("pki");
        fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=rsendmail test CA",
        ]);
        for (name, san) in [
            ("srv", "DNS:localhost,IP:127.0.0.1"),
            ("wrong", "DNS:other.example"),
        ] {
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                "/CN=test",
            ]);
            fs::write(
                dir.join(format!("{name}.ext")),
                format!("subjectAltName={san}\n"),
            )
            .unwrap();
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ]);
        }
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ]);
        Some(Pki { dir })
    }

    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }

    /// SHA-256 of a certificate's DER, lowercase hex.
    fn fingerprint(&self, pem: &str) -> String {
        let out = Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-fingerprint",
                "-sha256",
                "-in",
                &self.path(pem),
            ])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout);
        s.split('=')
            .nth(1)
            .unwrap()
            .trim()
            .replace(':', "")
            .to_ascii_lowercase()
    }
}

fn tls_peer(env0: &Env, pki: &Pki, cert: &str, mode: &str, extra: &[(&str, &str)]) -> Peer {
    let c = pki.path(&format!("{cert}.pem"));
    let k = pki.path(&format!("{cert}.key"));
    let mut envs: Vec<(&str, &str)> = vec![("TLS_CERT", &c), ("TLS_KEY", &k), ("TLS_MODE", mode)];
    envs.extend_from_slice(extra);
    Peer::start(&env0.dir, &envs)
}

fn relay(port: u16, extra: &str) -> Env {
    Env::with_config(&format!(
        "SMARTHOST 127.0.0.1\nPORT {port}\nO Timeout.connect=5s\n{extra}"
    ))
}

fn setup() -> Option<(Env, Pki)> {
    if !crate::harness::servers::have_peer() {
        return None;
    }
    let env0 = Env::new();
    let pki = Pki::make(&env0.dir)?;
    Some((env0, pki))
}

/// Write dma's auth.conf with this line and mode, and name it in the config (AUTHPATH).
fn use_auth_file(env: &Env, line: &str, mode: u32) {
    let p = env.dir.join("auth.conf");
    fs::write(&p, line).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    env.add_config(&format!("AUTHPATH {}\n", p.display()));
}

#[test]
fn starttls_verified_against_the_ca_then_auth() {
    let Some((env0, pki)) = setup() else { return };
    let peer = tls_peer(
        &env0,
        &pki,
        "srv",
        "starttls",
        &[("AUTH_USER", "bob"), ("AUTH_PASS", "s3cret-pw")],
    );
    let env = relay(
        peer.port,
        &format!("STARTTLS\nO CACertFile={}\n", pki.path("ca.pem")),
    );
    use_auth_file(&env, "bob|127.0.0.1:s3cret-pw\n", 0o600);
    let xlog = env.dir.join("traffic.log");
    let r = env.sendmail(
        &["-v", "-X", xlog.to_str().unwrap(), "-odq", "ok@example.org"],
        MSG,
    );
    r.code(0);
    // The -X traffic log never holds the credentials either.
    let x = fs::read_to_string(&xlog).unwrap();
    assert!(x.contains(" >>> STARTTLS\n"), "{x}");
    assert!(x.contains(" >>> (credentials not shown)\n"), "{x}");
    for secret in ["s3cret-pw", "AGJvYgBzM2NyZXQtcHc="] {
        assert!(!x.contains(secret), "the password was logged: {x}");
    }
    assert!(r.stdout.contains(">>> STARTTLS\n"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(">>> AUTH PLAIN (credentials not shown)\n"),
        "{}",
        r.stdout
    );
    for secret in ["s3cret-pw", "AGJvYgBzM2NyZXQtcHc="] {
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "the password was shown"
        );
    }
    let t = peer.transcript();
    assert!(t.contains("AUTH PLAIN ok"), "{t}");
    assert!(
        t.contains("MAIL root@test.example SIZE=") && t.contains(" tls auth=bob"),
        "{t}"
    );
    assert_eq!(peer.messages().len(), 1);
}

#[test]
fn implicit_tls_with_securetransfer() {
    let Some((env0, pki)) = setup() else { return };
    let peer = tls_peer(&env0, &pki, "srv", "implicit", &[]);
    let env = relay(
        peer.port,
        &format!("SECURETRANSFER\nO CACertFile={}\n", pki.path("ca.pem")),
    );
    env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
    assert!(peer.transcript().contains(" tls"), "{}", peer.transcript());
    assert_eq!(peer.messages().len(), 1);
}

#[test]
fn tls_required_but_not_offered_sends_nothing_in_clear() {
    let Some((env0, _pki)) = setup() else { return };
    let peer = Peer::start(&env0.dir, &[]);
    let env = relay(peer.port, "STARTTLS\n");
    env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
    let j = env.json();
    assert!(
        j[0].contains("TLS is required but 127.0.0.1 does not offer STARTTLS"),
        "{}",
        j[0]
    );
    let t = peer.transcript();
    assert!(!t.contains("MAIL") && !t.contains("RCPT"), "{t}");
    assert!(peer.messages().is_empty());
    // Opportunistic TLS goes on in clear text with such a server.
    let env = relay(peer.port, "OPPORTUNISTIC_TLS\n");
    env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
    assert_eq!(peer.messages().len(), 1);
    assert!(!peer.transcript().contains(" tls"));
}

#[test]
fn bad_certificates_are_deferred() {
    let Some((env0, pki)) = setup() else { return };
    let ca = format!("O CACertFile={}\n", pki.path("ca.pem"));
    for (cert, why) in [("self", "self-signed"), ("wrong", "wrong host name")] {
        let peer = tls_peer(&env0, &pki, cert, "starttls", &[]);
        let env = relay(peer.port, &format!("STARTTLS\n{ca}"));
        env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
        let j = env.json();
        assert!(
            j[0].contains("TLS handshake with 127.0.0.1 failed"),
            "{why}: {}",
            j[0]
        );
        assert!(
            !peer.transcript().contains("MAIL"),
            "{why}: {}",
            peer.transcript()
        );
        // INSECURE accepts it.
        let env = relay(peer.port, &format!("STARTTLS\nINSECURE\n{ca}"));
        env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
        assert_eq!(peer.messages().len(), 1, "{why}");
        drop(peer);
    }
}

#[test]
fn fingerprint_pinning() {
    let Some((env0, pki)) = setup() else { return };
    let peer = tls_peer(&env0, &pki, "self", "starttls", &[]);
    let good = pki.fingerprint("self.pem");
    let env = relay(peer.port, &format!("STARTTLS\nFINGERPRINT {good}\n"));
    env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
    assert_eq!(peer.messages().len(), 1);
    let bad = pki.fingerprint("srv.pem");
    let env = relay(peer.port, &format!("STARTTLS\nFINGERPRINT {bad}\n"));
    env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
    assert!(
        env.json()[0].contains("does not match FINGERPRINT"),
        "{}",
        env.json()[0]
    );
    assert_eq!(peer.messages().len(), 1);
}

#[test]
fn auth_problems_defer_and_never_leak() {
    let Some((env0, pki)) = setup() else { return };
    let peer = tls_peer(
        &env0,
        &pki,
        "srv",
        "starttls",
        &[("AUTH_USER", "bob"), ("AUTH_PASS", "right")],
    );
    let tls = format!("STARTTLS\nO CACertFile={}\n", pki.path("ca.pem"));
    // A world-readable auth.conf is refused before the message is taken.
    let env = relay(peer.port, &tls);
    use_auth_file(&env, "bob|127.0.0.1:right\n", 0o644);
    let r = env.sendmail(&["-odi", "ok@example.org"], MSG);
    r.code(78);
    assert!(r.stdout.contains("is readable by others"), "{}", r.stdout);
    assert!(env.entries().is_empty());
    assert!(!r.stdout.contains("right"), "{}", r.stdout);
    // A wrong password is deferred.
    let env = relay(peer.port, &tls);
    use_auth_file(&env, "bob|127.0.0.1:wrong\n", 0o600);
    env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
    assert!(
        env.json()[0].contains("AUTH refused by 127.0.0.1: 535"),
        "{}",
        env.json()[0]
    );
    assert!(!env.json()[0].contains("wrong"));
    assert!(peer.messages().is_empty());
    // No AUTH over a connection without TLS (unless INSECURE).
    let plain = Peer::start(
        &env0.dir.join("plain"),
        &[("AUTH_USER", "bob"), ("AUTH_PASS", "right")],
    );
    let env = relay(plain.port, "");
    use_auth_file(&env, "bob|127.0.0.1:right\n", 0o600);
    env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
    assert!(
        env.json()[0].contains("over an unencrypted connection"),
        "{}",
        env.json()[0]
    );
    assert!(
        !plain.transcript().contains("AUTH"),
        "{}",
        plain.transcript()
    );
}

/// CRAM-MD5 (RFC 2195) when the server offers no PLAIN.
#[test]
fn auth_cram_md5() {
    let Some((env0, pki)) = setup() else { return };
    let peer = tls_peer(
        &env0,
        &pki,
        "srv",
        "starttls",
        &[
            ("AUTH_USER", "bob"),
            ("AUTH_PASS", "cram-pw"),
            ("AUTH_ONLY_CRAM", "1"),
        ],
    );
    let env = relay(
        peer.port,
        &format!("STARTTLS\nO CACertFile={}\n", pki.path("ca.pem")),
    );
    use_auth_file(&env, "bob|127.0.0.1:cram-pw\n", 0o600);
    let r = env.sendmail(&["-v", "-odi", "ok@example.org"], MSG);
    r.code(0);
    assert!(r.stdout.contains(">>> AUTH CRAM-MD5\n"), "{}", r.stdout);
    assert!(!r.stdout.contains("cram-pw"));
    assert!(
        peer.transcript().contains("AUTH CRAM-MD5 ok"),
        "{}",
        peer.transcript()
    );
    assert_eq!(peer.messages().len(), 1);
}

/// RFC 3207 §4 and RFC 4954 §4: STARTTLS gets 220 or a refusal, AUTH 334 or 235 or a
/// refusal. Another reply is a protocol error: the message is deferred, nothing goes out
/// in clear text after a STARTTLS that was not refused, and no credentials follow a
/// reply that asked for none.
#[test]
fn wrong_replies_to_starttls_and_auth_defer() {
    let Some((env0, pki)) = setup() else { return };
    // (the wrong reply, the TLS keyword, whether the server requires AUTH)
    for (wrong, config, auth) in [
        (
            "STARTTLS 250 2.0.0 go on (test)",
            "OPPORTUNISTIC_TLS\n",
            false,
        ),
        ("STARTTLS 354 go on (test)", "STARTTLS\n", false),
        ("AUTH 354 go on (test)", "STARTTLS\n", true),
        ("AUTH 250 2.0.0 fine (test)", "STARTTLS\n", true),
    ] {
        let mut extra = vec![("WRONG_REPLY", wrong)];
        if auth {
            extra.extend([("AUTH_USER", "bob"), ("AUTH_PASS", "s3cret-pw")]);
        }
        let peer = tls_peer(&env0, &pki, "srv", "starttls", &extra);
        let env = relay(
            peer.port,
            &format!("{config}O CACertFile={}\n", pki.path("ca.pem")),
        );
        if auth {
            use_auth_file(&env, "bob|127.0.0.1:s3cret-pw\n", 0o600);
        }
        env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
        let verb = wrong.split(' ').next().unwrap();
        let j = env.json();
        assert!(
            j[0].contains(&format!("Protocol error: 127.0.0.1 answered {verb} with")),
            "{wrong}: {}",
            j[0]
        );
        let t = peer.transcript();
        assert!(t.contains("WRONG-REPLY"), "{wrong}: {t}");
        assert!(!t.contains("MAIL"), "{wrong}: {t}");
        assert!(peer.messages().is_empty(), "{wrong}");
    }
}
