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
pub(crate) struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub(crate) fn make(dir: &Path) -> Option<Pki> {
        if !require("openssl") {
            return None;
        }
        let dir = dir.join("pki");
        fs::create_dir_all(&dir).unwrap();
        self_signed(&dir, "ca", "/CN=rsendmail test CA", &[]);
        for (name, san) in [
            ("srv", "DNS:localhost,IP:127.0.0.1"),
            ("wrong", "DNS:other.example"),
        ] {
            issue(&dir, name, "/CN=test", &format!("subjectAltName={san}\n"));
        }
        self_signed(
            &dir,
            "self",
            "/CN=localhost",
            &["-addext", "subjectAltName=IP:127.0.0.1"],
        );
        // Self-signed for another name, with no subjectAltName: its common name alone.
        self_signed(&dir, "evil", "/CN=evil", &[]);
        Some(Pki { dir })
    }

    pub(crate) fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }

    /// SHA-256 of a certificate's DER, lowercase hex.
    pub(crate) fn fingerprint(&self, pem: &str) -> String {
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

pub(crate) fn tls_peer(
    env0: &Env,
    pki: &Pki,
    cert: &str,
    mode: &str,
    extra: &[(&str, &str)],
) -> Peer {
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

/// Sends one message to ok@example.org at once (`-odi`, exit 0): the reason its entry
/// stayed queued (the first line of the spool's JSON listing).
fn sent_reason(env: &Env) -> String {
    env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
    env.json().remove(0)
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
    // The command and its mechanism are logged, as -v shows them; only the
    // credentials are hidden.
    assert!(
        x.contains(" >>> AUTH PLAIN (credentials not shown)\n"),
        "{x}"
    );
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

/// SECURETRANSFER without STARTTLS is TLS from the first byte, as in dma, also with
/// OPPORTUNISTIC_TLS (which dma reads only with STARTTLS).
#[test]
fn implicit_tls_with_securetransfer() {
    let Some((env0, pki)) = setup() else { return };
    let peer = tls_peer(&env0, &pki, "srv", "implicit", &[]);
    for (i, keywords) in ["SECURETRANSFER\n", "SECURETRANSFER\nOPPORTUNISTIC_TLS\n"]
        .iter()
        .enumerate()
    {
        let env = relay(
            peer.port,
            &format!(
                "{keywords}O Timeout.initial=5s\nO CACertFile={}\n",
                pki.path("ca.pem")
            ),
        );
        env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
        assert!(env.entries().is_empty(), "{keywords:?}: {:?}", env.json());
        assert!(peer.transcript().contains(" tls"), "{}", peer.transcript());
        assert_eq!(peer.messages().len(), i + 1, "{keywords:?}");
    }
}

#[test]
fn tls_required_but_not_offered_sends_nothing_in_clear() {
    let Some((env0, _pki)) = setup() else { return };
    let peer = Peer::start(&env0.dir, &[]);
    let env = relay(peer.port, "STARTTLS\n");
    let reason = sent_reason(&env);
    assert!(
        reason.contains("TLS is required but 127.0.0.1 does not offer STARTTLS"),
        "{reason}"
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

/// SECURETRANSFER (TLS from the first byte) to a server that speaks plain SMTP: the
/// reason in the queue is in plain words, not OpenSSL's `error:0A00010B:SSL routines:...`.
#[test]
fn tls_to_a_plain_server_gives_a_readable_reason() {
    let Some((env0, _pki)) = setup() else { return };
    let peer = Peer::start(&env0.dir, &[]);
    let env = relay(peer.port, "SECURETRANSFER\n");
    let reason = sent_reason(&env);
    assert!(
        reason.contains(
            "TLS handshake with 127.0.0.1 failed: wrong version number \
             (the server does not speak TLS on this port?)"
        ),
        "{reason}"
    );
    assert!(!reason.contains("error:0A"), "{reason}");
    assert!(peer.messages().is_empty());
}

#[test]
fn bad_certificates_are_deferred() {
    let Some((env0, pki)) = setup() else { return };
    let ca = format!("O CACertFile={}\n", pki.path("ca.pem"));
    for (cert, why) in [("self", "self-signed"), ("wrong", "wrong host name")] {
        let peer = tls_peer(&env0, &pki, cert, "starttls", &[]);
        let env = relay(peer.port, &format!("STARTTLS\n{ca}"));
        let reason = sent_reason(&env);
        assert!(
            reason.contains("TLS handshake with 127.0.0.1 failed"),
            "{why}: {reason}"
        );
        assert!(
            !peer.transcript().contains("MAIL"),
            "{why}: {}",
            peer.transcript()
        );
        // dma's VERIFYCERT asks for the check: INSECURE (dma's "password in clear text
        // allowed") does not turn it off then.
        let env = relay(peer.port, &format!("STARTTLS\nINSECURE\nVERIFYCERT\n{ca}"));
        let reason = sent_reason(&env);
        assert!(
            reason.contains("TLS handshake with 127.0.0.1 failed"),
            "{why}: {reason}"
        );
        assert!(peer.messages().is_empty(), "{why}");
        // INSECURE alone accepts it.
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
    let reason = sent_reason(&env);
    assert!(reason.contains("does not match FINGERPRINT"), "{reason}");
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
    let reason = sent_reason(&env);
    assert!(
        reason.contains("AUTH refused by 127.0.0.1: 535"),
        "{reason}"
    );
    assert!(!reason.contains("wrong"));
    assert!(peer.messages().is_empty());
    // No password in clear text over a connection without TLS (unless INSECURE).
    let plain = Peer::start(
        &env0.dir.join("plain"),
        &[
            ("AUTH_USER", "bob"),
            ("AUTH_PASS", "right"),
            ("AUTH_NO_CRAM", "1"),
        ],
    );
    let env = relay(plain.port, "");
    use_auth_file(&env, "bob|127.0.0.1:right\n", 0o600);
    let reason = sent_reason(&env);
    assert!(
        reason.contains("in clear text over an unencrypted connection"),
        "{reason}"
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

/// AUTH without TLS, as dma's man page and net.c have it: CRAM-MD5 whenever the server
/// offers it (only an HMAC of the challenge is sent, never the password); PLAIN and
/// LOGIN, which send the password as it is, only with INSECURE, else the message waits
/// with the reason and the server sees no AUTH at all.
#[test]
fn auth_without_tls_cram_md5_or_insecure() {
    if !crate::harness::servers::have_peer() {
        return;
    }
    let env0 = Env::new();
    let creds = [("AUTH_USER", "bob"), ("AUTH_PASS", "pw-in-clear")];
    // (what the server offers besides the credentials, INSECURE, what must happen:
    // the mechanism used, or None for a deferral without AUTH)
    type Case<'a> = (&'a [(&'a str, &'a str)], bool, Option<&'a str>);
    let cases: &[Case] = &[
        (&[("AUTH_NO_CRAM", "1")], false, None),
        (&[("AUTH_NO_CRAM", "1")], true, Some("PLAIN")),
        (&[("AUTH_ONLY_CRAM", "1")], false, Some("CRAM-MD5")),
        (&[], false, Some("CRAM-MD5")),
        (&[], true, Some("CRAM-MD5")),
    ];
    for (i, (offer, insecure, want)) in cases.iter().enumerate() {
        let mut envs = creds.to_vec();
        envs.extend_from_slice(offer);
        let peer = Peer::start(&env0.dir.join(format!("p{i}")), &envs);
        let env = relay(peer.port, if *insecure { "INSECURE\n" } else { "" });
        use_auth_file(&env, "bob|127.0.0.1:pw-in-clear\n", 0o600);
        let r = env.sendmail(&["-v", "-odi", "ok@example.org"], MSG);
        r.code(0);
        assert!(!r.stdout.contains("pw-in-clear"), "{}", r.stdout);
        let t = peer.transcript();
        let what = format!("{offer:?} INSECURE={insecure}");
        match want {
            Some(m) => {
                assert!(t.contains(&format!("AUTH {m} ok")), "{what}: {t}");
                assert_eq!(peer.messages().len(), 1, "{what}: {t}");
                assert!(env.entries().is_empty(), "{what}");
            }
            None => {
                assert!(!t.contains("AUTH"), "{what}: {t}");
                assert!(peer.messages().is_empty(), "{what}");
                let j = env.json();
                assert!(
                    j[0].contains(
                        "not sending the password to 127.0.0.1 in clear text over an \
                         unencrypted connection (it offers AUTH LOGIN PLAIN, not CRAM-MD5; \
                         set STARTTLS, or INSECURE)"
                    ),
                    "{what}: {}",
                    j[0]
                );
            }
        }
    }
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
        let reason = sent_reason(&env);
        let verb = wrong.split(' ').next().unwrap();
        assert!(
            reason.contains(&format!("Protocol error: 127.0.0.1 answered {verb} with")),
            "{wrong}: {reason}"
        );
        let t = peer.transcript();
        assert!(t.contains("WRONG-REPLY"), "{wrong}: {t}");
        assert!(!t.contains("MAIL"), "{wrong}: {t}");
        assert!(peer.messages().is_empty(), "{wrong}");
    }
}

/// `openssl ARGS` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In `dir`: a new RSA key `name.key` and a self-signed certificate `name.pem` for it,
/// subject `subj`, with `extra` arguments to `openssl req`.
fn self_signed(dir: &Path, name: &str, subj: &str, extra: &[&str]) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem, "-days",
        "2", "-subj", subj,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
}

/// In `dir`: a new RSA key `name.key` and a certificate `name.pem` for it, subject `subj`,
/// signed by the CA `ca.pem` (`ca.key`) with the extensions `ext` (written to `name.ext`).
fn issue(dir: &Path, name: &str, subj: &str, ext: &str) {
    let (key, csr, pem, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subj,
        ],
    );
    fs::write(dir.join(&extfile), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ],
    );
}

/// Client keys in the forms openssl writes, each with a certificate `ca` (or the
/// intermediate CA it signed) issued for it, CN `client-<name>`: `rsa8` (PKCS#8),
/// `rsa1` (the same key as PKCS#1), `ec` (`ecparam -genkey`: EC PARAMETERS, then a SEC1
/// key; `ec8` the same key as PKCS#8), `chain` (signed by the intermediate `int`), `enc`
/// (PKCS#8, encrypted), `ed` (Ed25519, no certificate).
fn client_keys(pki: &Pki) {
    let dir = &pki.dir;
    for key in ["rsa8.key", "chain.key"] {
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                key,
            ],
        );
    }
    openssl(
        dir,
        &[
            "pkey",
            "-in",
            "rsa8.key",
            "-traditional",
            "-out",
            "rsa1.key",
        ],
    );
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "ec.key",
        ],
    );
    openssl(
        dir,
        &[
            "pkey", "-in", "rsa8.key", "-aes256", "-passout", "pass:x", "-out", "enc.key",
        ],
    );
    openssl(dir, &["pkey", "-in", "ec.key", "-out", "ec8.key"]);
    openssl(dir, &["genpkey", "-algorithm", "ed25519", "-out", "ed.key"]);
    // The intermediate CA.
    issue(
        dir,
        "int",
        "/CN=rsendmail test intermediate",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    );
    for (name, issuer) in [("rsa8", "ca"), ("ec", "ca"), ("chain", "int")] {
        let cn = format!("/CN=client-{name}");
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &cn,
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{issuer}.pem"),
                "-CAkey",
                &format!("{issuer}.key"),
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
            ],
        );
    }
}

/// CERTFILE: the certificate and its key in one file in either order, the key as
/// PKCS#8, PKCS#1 RSA or EC (with openssl's EC PARAMETERS block), a chain in any order;
/// the server (requiring a client certificate its CA signed) sees it. A file with a part
/// missing, an encrypted key, a cut block, or an RSA or EC key that belongs to none of
/// its certificates is refused before the message is taken (exit 78, nothing queued); a
/// key whose public half the file does not state (Ed25519), which only the TLS library
/// can compare, defers the message with that reason.
#[test]
fn client_certificate_in_any_order_and_key_form() {
    let Some((env0, pki)) = setup() else { return };
    client_keys(&pki);
    let read = |f: &str| fs::read_to_string(pki.dir.join(f)).unwrap();
    let (rsa8, rsa1, ec, chain_key) = (
        read("rsa8.key"),
        read("rsa1.key"),
        read("ec.key"),
        read("chain.key"),
    );
    let (rsa_crt, ec_crt, chain_crt, int) = (
        read("rsa8.crt"),
        read("ec.crt"),
        read("chain.crt"),
        read("int.pem"),
    );
    assert!(rsa8.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(rsa1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(
        ec.starts_with("-----BEGIN EC PARAMETERS-----")
            && ec.contains("-----BEGIN EC PRIVATE KEY-----")
    );
    let ca = pki.path("ca.pem");
    let peer = tls_peer(&env0, &pki, "srv", "starttls", &[("TLS_CLIENT_CA", &ca)]);
    let good: Vec<(&str, String, &str)> = vec![
        (
            "PKCS#8 key, then certificate",
            format!("{rsa8}{rsa_crt}"),
            "rsa8",
        ),
        (
            "certificate, then PKCS#8 key",
            format!("{rsa_crt}{rsa8}"),
            "rsa8",
        ),
        (
            "PKCS#1 key, then certificate",
            format!("{rsa1}{rsa_crt}"),
            "rsa8",
        ),
        (
            "certificate, then PKCS#1 key",
            format!("{rsa_crt}{rsa1}"),
            "rsa8",
        ),
        ("EC key, then certificate", format!("{ec}{ec_crt}"), "ec"),
        ("certificate, then EC key", format!("{ec_crt}{ec}"), "ec"),
        (
            "certificate, then PKCS#8 EC key",
            format!("{ec_crt}{}", read("ec8.key")),
            "ec",
        ),
        (
            "key, certificate, intermediate",
            format!("{chain_key}{chain_crt}{int}"),
            "chain",
        ),
        (
            "intermediate, certificate, key",
            format!("{int}{chain_crt}{chain_key}"),
            "chain",
        ),
    ];
    for (i, (what, text, cn)) in good.iter().enumerate() {
        let file = env0.dir.join(format!("client-{i}.pem"));
        fs::write(&file, text).unwrap();
        let env = relay(
            peer.port,
            &format!("STARTTLS\nO CACertFile={ca}\nCERTFILE {}\n", file.display()),
        );
        env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
        assert!(env.entries().is_empty(), "{what}: {:?}", env.json());
        let t = peer.transcript();
        assert!(
            t.contains(&format!(" tls client=client-{cn}")),
            "{what}: {t}"
        );
        assert_eq!(peer.messages().len(), i + 1, "{what}");
    }
    // Refused before the message is taken.
    let cut: String = {
        let lines: Vec<&str> = rsa8.lines().collect();
        let mut l = lines.clone();
        l.remove(lines.len() / 2);
        l.join("\n") + "\n"
    };
    // An Ed25519 certificate (of ed.key): no RSA key can be its key.
    openssl(
        &pki.dir,
        &[
            "req",
            "-x509",
            "-key",
            "ed.key",
            "-out",
            "edself.crt",
            "-days",
            "2",
            "-subj",
            "/CN=ed",
        ],
    );
    let ed_crt = read("edself.crt");
    let bad: Vec<(&str, String, &str)> = vec![
        ("certificate only", rsa_crt.clone(), "no private key in it"),
        ("key only", rsa8.clone(), "no certificate in it"),
        (
            "encrypted key",
            format!("{rsa_crt}{}", read("enc.key")),
            "the private key is encrypted",
        ),
        (
            "a line cut from the key",
            format!("{rsa_crt}{cut}"),
            "the PRIVATE KEY block is not base64 of one whole DER structure",
        ),
        (
            "two keys",
            format!("{rsa8}{rsa_crt}{ec}"),
            "a second private key",
        ),
        (
            "another certificate's RSA key",
            format!("{rsa_crt}{chain_key}"),
            "the private key belongs to none of its certificates",
        ),
        (
            "another certificate's PKCS#1 key",
            format!("{chain_crt}{int}{rsa1}"),
            "the private key belongs to none of its certificates",
        ),
        (
            "an EC key with an RSA certificate",
            format!("{rsa_crt}{ec}"),
            "the private key belongs to none of its certificates",
        ),
        (
            "an RSA key with only an Ed25519 certificate",
            format!("{ed_crt}{rsa8}"),
            "the private key belongs to none of its certificates",
        ),
    ];
    for (what, text, why) in &bad {
        let file = env0.dir.join("bad.pem");
        fs::write(&file, text).unwrap();
        let env = relay(
            peer.port,
            &format!("STARTTLS\nO CACertFile={ca}\nCERTFILE {}\n", file.display()),
        );
        let r = env.sendmail(&["-odi", "ok@example.org"], MSG);
        r.code(78);
        // Named with the configuration's file and line, as every other line in error.
        let n = env.config_line("CERTFILE ");
        assert!(
            r.stdout.starts_with(&format!(
                "{}: line {n}: CERTFILE {}: ",
                env.conf.display(),
                file.display()
            )) && r.stdout.contains(why),
            "{what}: {}",
            r.stdout
        );
        assert!(env.entries().is_empty(), "{what}");
    }
    assert_eq!(peer.messages().len(), good.len());
    // A key whose public half the file does not state (Ed25519): only the TLS library
    // finds that it is not the certificate's; deferred with the reason, nothing sent.
    let file = env0.dir.join("mismatch.pem");
    fs::write(&file, format!("{rsa_crt}{}", read("ed.key"))).unwrap();
    let env = relay(
        peer.port,
        &format!("STARTTLS\nO CACertFile={ca}\nCERTFILE {}\n", file.display()),
    );
    let reason = sent_reason(&env);
    assert!(
        reason.contains("its private key belongs to none of its certificates"),
        "{reason}"
    );
    assert_eq!(peer.messages().len(), good.len());
}

/// An SMTPS relay (SECURETRANSFER) that accepts the connection and never sends a byte
/// of the handshake: the queue run gives up after Timeout.helo, and the reason kept with
/// the message (`mailq`, `rsendmail-admin show`) says the handshake timed out, after how
/// long, and which option sets that (`mailq` as much of it as its line holds); the
/// message stays queued.
#[test]
fn an_smtps_handshake_that_never_comes_is_deferred_as_timed_out() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let silent = std::thread::spawn(move || {
        // Held open, silent, until the client gives up.
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
            let mut b = [0u8; 4096];
            while matches!(std::io::Read::read(&mut s, &mut b), Ok(n) if n > 0) {}
        }
    });
    let env = relay(port, "SECURETRANSFER\nO Timeout.initial=30s\n");
    env.sendmail(&["-odq", "ok@example.org"], MSG).code(0);
    let t = std::time::Instant::now();
    env.sendmail(&["-qf", "-O", "Timeout.helo=2s"], b"").code(0);
    let took = t.elapsed();
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
    let want = "TLS handshake with [127.0.0.1] timed out after 2s (Timeout.helo)";
    let q = env.mailq(&[]);
    // mailq's line is cut at sendmail's width.
    assert!(
        q.contains("(Deferred: TLS handshake with [127.0.0.1] timed out after 2s"),
        "{q}"
    );
    assert!(!q.contains("interrupted"), "{q}");
    let ids = crate::harness::queued_ids(&env.spool);
    assert_eq!(ids.len(), 1, "{q}");
    let id = &ids[0];
    let show = env.run_raw(
        &std::path::PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-admin")),
        &["-C", env.conf.to_str().unwrap(), "show", id],
        b"",
    );
    show.code(0);
    let reason = show
        .stdout
        .lines()
        .find(|l| l.starts_with("Reason:"))
        .unwrap_or_else(|| panic!("{}", show.stdout));
    assert!(reason.contains(want), "{reason}");
    let _ = silent.join();
}
