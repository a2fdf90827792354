//! AUTH (RFC 4954): PLAIN, CRAM-MD5 (RFC 2195) or LOGIN, the first the server offers in
//! that order, with the credentials from dma's auth.conf.
//!
//! Never in clear text unless `INSECURE`: without TLS the session fails instead. A
//! mechanism the client does not know, or a refused login, fails the session with a
//! `451 4.7.0` reply: deferred, never bounced, as the configuration can be fixed. The
//! credentials are not shown in the `-v` transcript. The server's challenges are
//! untrusted: decoded leniently, never cut by byte index (the lints below keep it so).

#![deny(clippy::string_slice)]

use super::reply::Expect;
use super::{Reply, Session, State, TlsPolicy, Transcript};
use rsendmail::status;

/// Credentials for AUTH (from dma's auth.conf).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// Base64 (RFC 4648), for AUTH.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        o.push(T[(n >> 18) as usize & 63] as char);
        o.push(T[(n >> 12) as usize & 63] as char);
        o.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        o.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    o
}

/// Base64 decoding (lenient: characters outside the alphabet are skipped).
#[deny(clippy::indexing_slicing)]
pub fn unbase64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
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
    /// AUTH PLAIN, CRAM-MD5 or LOGIN (RFC 4954, 2195); never in clear text unless INSECURE.
    pub(super) fn authenticate(
        &mut self,
        c: &Credentials,
        tls: &TlsPolicy,
        out: &mut Transcript<'_>,
    ) -> Result<(), Reply> {
        if self.caps.auth.is_empty() {
            return Ok(());
        }
        if !self.tls && !tls.plain_auth_ok {
            return Err(Reply::with_status(
                451,
                status::SECURITY_TEMP,
                format_args!(
                    "not sending AUTH to {} over an unencrypted connection (set STARTTLS or INSECURE)",
                    self.host
                ),
            ));
        }
        self.state = State::AuthReply;
        let has = |m: &str| self.caps.auth.iter().any(|a| a == m);
        let r = if has("PLAIN") {
            let token = base64(format!("\0{}\0{}", c.user, c.password).as_bytes());
            if let Some(w) = out.as_deref_mut() {
                let _ = writeln!(w, ">>> AUTH PLAIN (credentials not shown)");
            }
            self.put_quiet(&format!("AUTH PLAIN {token}"));
            self.flush(self.timeouts.helo)?;
            self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?
        } else if has("CRAM-MD5") {
            self.put("AUTH CRAM-MD5", out)?;
            self.flush(self.timeouts.helo)?;
            let r = self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?;
            if r.code != 334 {
                r
            } else {
                let challenge = unbase64(r.lines.first().map(String::as_str).unwrap_or(""));
                if let Some(w) = out.as_deref_mut() {
                    let _ = writeln!(w, ">>> (credentials not shown)");
                }
                self.put_quiet(&base64(
                    cram_md5(&c.user, &c.password, &challenge).as_bytes(),
                ));
                self.flush(self.timeouts.helo)?;
                self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?
            }
        } else if has("LOGIN") {
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
                self.put_quiet(&base64(secret.as_bytes()));
                self.flush(self.timeouts.helo)?;
                r = self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?;
            }
            r
        } else {
            return Err(Reply::with_status(
                451,
                status::SECURITY_TEMP,
                format_args!(
                    "{} offers no AUTH mechanism rsendmail knows (PLAIN, LOGIN)",
                    self.host
                ),
            ));
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

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(base64(b"\0user\0pass"), "AHVzZXIAcGFzcw==");
    }

    #[test]
    fn cram_md5_rfc2195_example() {
        let challenge = unbase64("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
        assert_eq!(challenge, b"<1896.697170952@postoffice.reston.mci.net>");
        let resp = cram_md5("tim", "tanstaaftanstaaf", &challenge);
        assert_eq!(resp, "tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(
            base64(resp.as_bytes()),
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
                    let _ = unbase64(challenge);
                }
            }
        }
    }
}
