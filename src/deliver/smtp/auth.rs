//! AUTH (RFC 4954) with the credentials from dma's auth.conf: over TLS, PLAIN, CRAM-MD5
//! (RFC 2195) or LOGIN, the first the server offers in that order.
//!
//! Without TLS, as dma's man page and `net.c` have it: CRAM-MD5 whenever the server
//! offers it (the password itself never crosses the wire, only an HMAC of the server's
//! challenge); PLAIN and LOGIN, which send the password as it is, only with `INSECURE`.
//! A server that offers neither CRAM-MD5 nor (with `INSECURE`) PLAIN or LOGIN, a
//! mechanism the client does not know, or a refused login, fails the session with a
//! `451 4.7.0` reply: deferred, never bounced, as the configuration can be fixed. The
//! credentials are not shown in the `-v` transcript, and no reply text on a connection
//! to a host with credentials, from its greeting on, shows the password or its base64
//! forms as sent (`Session::hide_secret`). The server's challenges are untrusted:
//! decoded leniently, never cut by byte index (the lints below keep it so).

#![deny(clippy::string_slice)]

use super::reply::Expect;
use super::{Reply, Session, State, TlsPolicy, Transcript};
use rsendmail::{base64, status};

/// Credentials for AUTH (from dma's auth.conf).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    /// The credentials auth.conf's `entries` give for `host` (a name, or an address
    /// without its brackets), the host compared as a domain
    /// ([`rsendmail::message::address::domain_key`]).
    pub fn for_host(entries: &[rsendmail::config::AuthEntry], host: &str) -> Option<Credentials> {
        use rsendmail::message::address::domain_key;
        let key = domain_key(host);
        entries
            .iter()
            .find(|a| domain_key(&a.host) == key)
            .map(|a| Credentials {
                user: a.user.clone(),
                password: a.password.clone(),
            })
    }
}

/// The CRAM-MD5 response (RFC 2195): `user hex(HMAC-MD5(password, challenge))`.
pub fn cram_md5(user: &str, password: &str, challenge: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<md5::Md5>::new_from_slice(password.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(challenge);
    let digest: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{user} {digest}")
}

impl Session {
    /// AUTH with the mechanism [`choose`] picks (RFC 4954, 2195); the password in clear
    /// text (PLAIN, LOGIN) only over TLS or with INSECURE.
    pub(super) fn authenticate(
        &mut self,
        c: &Credentials,
        tls: &TlsPolicy,
        out: &mut Transcript<'_>,
    ) -> Result<(), Reply> {
        if self.caps.auth.is_empty() {
            return Ok(());
        }
        let mechanism = match choose(&self.caps.auth, self.tls, tls.plain_auth_ok) {
            Ok(m) => m,
            Err(NoMechanism::OnlyClearText) => {
                return Err(Reply::with_status(
                    451,
                    status::SECURITY_TEMP,
                    format_args!(
                        "not sending the password to {} in clear text over an unencrypted \
                         connection (it offers AUTH {}, not CRAM-MD5; set STARTTLS, or INSECURE)",
                        self.host,
                        self.caps.auth.join(" ")
                    ),
                ));
            }
            Err(NoMechanism::Unknown) => {
                return Err(Reply::with_status(
                    451,
                    status::SECURITY_TEMP,
                    format_args!(
                        "{} offers no AUTH mechanism rsendmail knows (PLAIN, CRAM-MD5, LOGIN): {}",
                        self.host,
                        self.caps.auth.join(" ")
                    ),
                ));
            }
        };
        // Every reply text has the secret masked (a server may echo it): installed when
        // the connection was opened for the host, and here for whatever session AUTHs.
        self.hide_secret(c);
        self.state = State::AuthReply;
        let r = if mechanism == Mechanism::Plain {
            let token = base64::encode(format!("\0{}\0{}", c.user, c.password).as_bytes());
            if let Some(w) = out.as_deref_mut() {
                let _ = writeln!(w, ">>> AUTH PLAIN (credentials not shown)");
            }
            self.put_quiet(&format!("AUTH PLAIN {token}"));
            self.flush(self.timeouts.helo)?;
            self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?
        } else if mechanism == Mechanism::CramMd5 {
            self.put("AUTH CRAM-MD5", out)?;
            self.flush(self.timeouts.helo)?;
            let r = self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?;
            if r.code != 334 {
                r
            } else {
                let challenge =
                    base64::decode_lenient(r.lines.first().map(String::as_str).unwrap_or(""));
                if let Some(w) = out.as_deref_mut() {
                    let _ = writeln!(w, ">>> (credentials not shown)");
                }
                self.put_quiet(&base64::encode(
                    cram_md5(&c.user, &c.password, &challenge).as_bytes(),
                ));
                self.flush(self.timeouts.helo)?;
                self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?
            }
        } else {
            self.put("AUTH LOGIN", out)?;
            self.flush(self.timeouts.helo)?;
            let mut r = self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?;
            for secret in [&c.user, &c.password] {
                if r.code != 334 {
                    break;
                }
                if let Some(w) = out.as_deref_mut() {
                    let _ = writeln!(w, ">>> (credentials not shown)");
                }
                self.put_quiet(&base64::encode(secret.as_bytes()));
                self.flush(self.timeouts.helo)?;
                r = self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?;
            }
            r
        };
        if r.code != 235 {
            // A refused login is deferred, never bounced: the configuration can be fixed.
            return Err(Reply::with_status(
                451,
                status::SECURITY_TEMP,
                format_args!("AUTH refused by {}: {}", self.host, r.summary()),
            ));
        }
        Ok(())
    }
}

/// An AUTH mechanism rsendmail speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616: the password as it is, in one line.
    Plain,
    /// RFC 2195: an HMAC-MD5 of the server's challenge keyed with the password; the
    /// password itself is never sent.
    CramMd5,
    /// The password as it is, after a prompt (draft-murchison-sasl-login).
    Login,
}

/// Why no mechanism was chosen ([`choose`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoMechanism {
    /// The server offers only mechanisms that would send the password in clear text, the
    /// connection is not encrypted and INSECURE is not set.
    OnlyClearText,
    /// The server offers none of PLAIN, CRAM-MD5, LOGIN.
    Unknown,
}

/// The mechanism to use among those the server offers (`offered`, the EHLO AUTH
/// keyword's words, upper case): over TLS PLAIN, else CRAM-MD5, else LOGIN; without TLS
/// CRAM-MD5 first (dma's order and rule: it sends no password), PLAIN or LOGIN only when
/// `clear_text_ok` (INSECURE).
pub fn choose(
    offered: &[String],
    tls: bool,
    clear_text_ok: bool,
) -> Result<Mechanism, NoMechanism> {
    use Mechanism::{CramMd5, Login, Plain};
    let order = if tls {
        [Plain, CramMd5, Login]
    } else {
        [CramMd5, Plain, Login]
    };
    let chosen = order
        .into_iter()
        .find(|m| offered.iter().any(|a| a.eq_ignore_ascii_case(m.name())))
        .ok_or(NoMechanism::Unknown)?;
    if chosen != CramMd5 && !tls && !clear_text_ok {
        return Err(NoMechanism::OnlyClearText);
    }
    Ok(chosen)
}

impl Mechanism {
    /// The mechanism's name in the EHLO AUTH keyword.
    fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::Login => "LOGIN",
        }
    }
}

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_choice() {
        let v = |s: &str| -> Vec<String> { s.split(' ').map(String::from).collect() };
        use Mechanism::*;
        use NoMechanism::*;
        // (offered, tls, INSECURE, chosen)
        for (offered, tls, insecure, want) in [
            ("PLAIN LOGIN CRAM-MD5", true, false, Ok(Plain)),
            ("LOGIN CRAM-MD5", true, false, Ok(CramMd5)),
            ("LOGIN", true, false, Ok(Login)),
            ("XOAUTH2", true, false, Err(Unknown)),
            // Without TLS: CRAM-MD5 whenever offered, with or without INSECURE.
            ("PLAIN LOGIN CRAM-MD5", false, false, Ok(CramMd5)),
            ("PLAIN LOGIN CRAM-MD5", false, true, Ok(CramMd5)),
            ("CRAM-MD5", false, false, Ok(CramMd5)),
            // The password in clear text only with INSECURE.
            ("PLAIN LOGIN", false, false, Err(OnlyClearText)),
            ("LOGIN", false, false, Err(OnlyClearText)),
            ("PLAIN LOGIN", false, true, Ok(Plain)),
            ("LOGIN", false, true, Ok(Login)),
            ("XOAUTH2 GSSAPI", false, true, Err(Unknown)),
            ("cram-md5", false, false, Ok(CramMd5)),
        ] {
            assert_eq!(
                choose(&v(offered), tls, insecure),
                want,
                "{offered} {tls} {insecure}"
            );
        }
    }

    #[test]
    fn cram_md5_rfc2195_example() {
        let challenge =
            base64::decode_lenient("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
        assert_eq!(challenge, b"<1896.697170952@postoffice.reston.mci.net>");
        let resp = cram_md5("tim", "tanstaaftanstaaf", &challenge);
        assert_eq!(resp, "tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(
            base64::encode(resp.as_bytes()),
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_challenge_is_read(s in any::<String>(), t in "[A-Za-z0-9+/= ]{0,40}") {
                for challenge in [&s, &t] {
                    let _ = base64::decode_lenient(challenge);
                }
            }
        }
    }
}
