//! TLS with native-tls (OpenSSL): from the first byte (SMTPS, `SECURETRANSFER`), or after
//! STARTTLS (RFC 3207), required or opportunistic ([`TlsMode`]).
//!
//! TLS 1.2 at least. The certificate chain and host name are verified against the system
//! store and `O CACertFile=` unless `INSECURE` (without `VERIFYCERT`); with `FINGERPRINT` the server
//! certificate's SHA-256 is the trust anchor instead. A failed handshake or a certificate
//! that does not pass ends the session with a `451 4.7.5` reply (the message stays
//! queued), a handshake that runs out of time with `451 4.4.2`; so does a required
//! STARTTLS the server does not offer (`4.7.4`) or refuses.
//! Anything the server sent before the handshake is dropped, and after STARTTLS the
//! server's extensions are asked for again (RFC 3207 §4.2). The whole handshake, of
//! either mode, is held to `Timeout.helo` as one deadline, not per read (sendmail's
//! `Timeout.starttls`, an hour by default, is accepted and not acted on: an hour would
//! hold a queue run on one silent server); one that runs out says so, with the time and
//! the option (`TLS handshake with HOST [IP] timed out after 5m (Timeout.helo)`).

#![deny(clippy::string_slice)]

use super::reply::Expect;
use super::wire::Stream;
use super::{Caps, Reply, Session, State, Transcript};
use rsendmail::deadline::{Deadline, Limit};
use rsendmail::status;
use std::io::BufReader;

/// When to use TLS (dma's keywords, read by `engine::tls_mode`): `SECURETRANSFER`
/// without `STARTTLS` is TLS from the first byte (SMTPS); `STARTTLS` requires STARTTLS;
/// `OPPORTUNISTIC_TLS` uses it when offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TlsMode {
    #[default]
    Off,
    Opportunistic,
    StartTls,
    Implicit,
}

/// How TLS is set up and what the server's certificate must satisfy.
#[derive(Clone, Debug, Default)]
pub struct TlsPolicy {
    pub mode: TlsMode,
    /// Verify the certificate chain and host name (default); `INSECURE` turns it off,
    /// unless `VERIFYCERT` is given as well.
    pub verify: bool,
    /// `O CACertFile=`: trust this CA (PEM) in addition to the system store.
    pub ca_file: Option<std::path::PathBuf>,
    /// `FINGERPRINT`: the server certificate's SHA-256, lowercase hex. When set, it is the
    /// trust anchor (the chain is not checked, the fingerprint must match).
    pub fingerprint: Option<String>,
    /// `CERTFILE`: a PEM holding our client certificate and its key.
    pub client_cert: Option<std::path::PathBuf>,
    /// AUTH may be sent without TLS (`INSECURE`, as in dma).
    pub plain_auth_ok: bool,
}

impl TlsPolicy {
    /// The policy for a host found by MX lookup: STARTTLS when it is offered, its
    /// certificate not checked (nothing configured names the host to check it against).
    pub fn for_mx() -> TlsPolicy {
        TlsPolicy {
            mode: TlsMode::Opportunistic,
            verify: false,
            ..TlsPolicy::default()
        }
    }
}

impl Session {
    /// STARTTLS when the server offers it, then EHLO again. Without it, or refused, the
    /// session goes on in clear text unless the policy requires TLS.
    pub(super) fn starttls(
        &mut self,
        helo_name: &str,
        tls: &TlsPolicy,
        out: &mut Transcript<'_>,
    ) -> Result<(), Reply> {
        if self.caps.starttls {
            self.state = State::StartTlsReply;
            self.put("STARTTLS", out)?;
            self.flush(self.timeouts.helo)?;
            let r = self.read_expect(self.timeouts.helo, out, Expect::Ready, "STARTTLS")?;
            if r.code == 220 {
                self.handshake(tls)?;
                // RFC 3207 §4.2: forget what the server said before; ask again.
                self.caps = Caps::default();
                self.ehlo(helo_name, out)?;
            } else if tls.mode == TlsMode::StartTls {
                return Err(Reply::with_status(
                    451,
                    status::CRYPTO_FAILURE,
                    format_args!("STARTTLS refused by {}: {}", self.host, r.summary()),
                ));
            }
        } else if tls.mode == TlsMode::StartTls {
            return Err(Reply::with_status(
                451,
                status::SECURITY_UNSUPPORTED,
                format_args!("TLS is required but {} does not offer STARTTLS", self.host),
            ));
        }
        Ok(())
    }

    /// Wrap the connection in TLS and check the server's certificate.
    pub(super) fn handshake(&mut self, policy: &TlsPolicy) -> Result<(), Reply> {
        let fail = |what: String| Reply::with_status(451, status::CRYPTO_FAILURE, what);
        let mut b = native_tls::TlsConnector::builder();
        b.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
        let read = |what: &str, p: &std::path::Path| {
            rsendmail::boundedfile::read_regular(p, false, rsendmail::boundedfile::MAX_FILE)
                .map(|(t, _)| t)
                .map_err(|e| fail(format!("cannot read {what} {}: {}", p.display(), e.text())))
        };
        if let Some(ca) = &policy.ca_file {
            let pem = read("CACertFile", ca)?;
            let cert = native_tls::Certificate::from_pem(&pem)
                .map_err(|e| fail(format!("bad CACertFile {}: {e}", ca.display())))?;
            b.add_root_certificate(cert);
        }
        if let Some(cf) = &policy.client_cert {
            let pem = read("CERTFILE", cf)?;
            let id = client_identity(&pem)
                .map_err(|why| fail(format!("bad CERTFILE {}: {why}", cf.display())))?;
            b.identity(id);
        }
        if !policy.verify || policy.fingerprint.is_some() {
            b.danger_accept_invalid_certs(true);
            b.danger_accept_invalid_hostnames(true);
        }
        let connector = b
            .build()
            .map_err(|e| fail(format!("TLS setup failed: {e}")))?;
        let name = self
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let old = std::mem::replace(&mut self.conn, BufReader::new(Stream::Closed));
        // Anything the server sent before the handshake is dropped with the old buffer.
        let mut tcp = match old.into_inner() {
            Stream::Plain(t) => t,
            _ => return Err(fail("TLS started twice".into())),
        };
        // The whole handshake within the EHLO timeout, however the server splits it.
        tcp.limit(Limit::Whole(self.timeouts.helo));
        tcp.write_limit(Limit::Whole(self.timeouts.helo));
        let tls = match connector.connect(&name, tcp) {
            Ok(t) => t,
            // The TCP stream's deadline passed (its reads and writes then fail with
            // `EAGAIN`, which native-tls gives back as an interrupted handshake).
            Err(native_tls::HandshakeError::WouldBlock(_)) => {
                self.state = State::Closed;
                // Logged with the entry's id by the deferral this reply makes.
                let why = handshake_timeout(&self.host, self.peer.ip(), self.timeouts.helo);
                return Err(Reply::with_status(451, status::BAD_CONNECTION, why));
            }
            Err(native_tls::HandshakeError::Failure(e)) => {
                self.state = State::Closed;
                let raw = e.to_string();
                // The library's own text stays in the log; the reason the queue and the
                // sender see is in plain words where it is a common one.
                log::warn!("TLS handshake with {} failed: {raw}", self.host);
                self.certificate_refused = refused_certificate(&raw);
                let why = plain_handshake_reason(&raw).unwrap_or(raw);
                return Err(fail(format!(
                    "TLS handshake with {} failed: {why}",
                    self.host
                )));
            }
        };
        if let Some(want) = &policy.fingerprint {
            use sha2::Digest;
            let der = tls
                .peer_certificate()
                .ok()
                .flatten()
                .and_then(|c| c.to_der().ok())
                .unwrap_or_default();
            let got: String = sha2::Sha256::digest(&der)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if &got != want {
                self.state = State::Closed;
                self.certificate_refused = true;
                return Err(fail(format!(
                    "certificate of {} does not match FINGERPRINT (SHA-256 {got})",
                    self.host
                )));
            }
        }
        self.conn = BufReader::new(Stream::Tls(Box::new(tls)));
        self.tls = true;
        Ok(())
    }
}

/// The client identity in a CERTFILE's text: its certificates and key in any order and
/// key form ([`rsendmail::config::identity_parts`]). The key is handed to native-tls in
/// PKCS#8 form (the only one it takes), and the certificate whose public key is the key's
/// goes first, the rest after it as the chain. `Err` says what is wrong (a key that
/// belongs to none of the certificates, a block OpenSSL cannot read).
pub fn client_identity(pem: &[u8]) -> Result<native_tls::Identity, String> {
    use openssl::pkey::PKey;
    use openssl::x509::X509;
    let parts = rsendmail::config::identity_parts(pem)?;
    let key = PKey::private_key_from_pem(parts.key.as_bytes())
        .map_err(|e| format!("its private key cannot be read: {e}"))?;
    let pkcs8 = key
        .private_key_to_pem_pkcs8()
        .map_err(|e| format!("its private key cannot be converted to PKCS#8: {e}"))?;
    let mut certs = parts
        .certificates
        .iter()
        .map(|c| X509::from_pem(c.as_bytes()))
        .collect::<Result<Vec<X509>, _>>()
        .map_err(|e| format!("a certificate cannot be read: {e}"))?;
    let leaf = certs
        .iter()
        .position(|c| c.public_key().is_ok_and(|k| k.public_eq(&key)))
        .ok_or("its private key belongs to none of its certificates")?;
    let leaf = certs.remove(leaf);
    let mut chain = leaf.to_pem().map_err(|e| e.to_string())?;
    for c in &certs {
        chain.extend(c.to_pem().map_err(|e| e.to_string())?);
    }
    native_tls::Identity::from_pkcs8(&chain, &pkcs8).map_err(|e| e.to_string())
}

/// What a handshake that ran out of time says: the server by the name it was reached by
/// and its address, the time waited and the option that sets it.
pub fn handshake_timeout(host: &str, ip: std::net::IpAddr, wait: std::time::Duration) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let who = if bare.parse::<std::net::IpAddr>().is_ok() {
        format!("[{ip}]")
    } else {
        format!("{bare} [{ip}]")
    };
    format!(
        "TLS handshake with {who} timed out after {} (Timeout.helo)",
        rsendmail::deadline::span(wait)
    )
}

/// Whether an OpenSSL handshake error is a refusal of the certificate the server sent
/// (its chain, its name, its dates): the one failure after which the certificate is
/// worth fetching again to show it.
fn refused_certificate(raw: &str) -> bool {
    raw.to_ascii_lowercase()
        .contains("certificate verify failed")
}

/// Plain words for the reason in an OpenSSL handshake error such as
/// `error:0A00010B:SSL routines:ssl3_get_record:wrong version number:...`, or `None`
/// when the text holds none of the common reasons (the caller keeps the raw text then).
/// A certificate failure keeps OpenSSL's detail in parentheses (`(self-signed certificate)`).
fn plain_handshake_reason(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    const WORDS: &[(&str, &str)] = &[
        (
            "wrong version number",
            "wrong version number (the server does not speak TLS on this port?)",
        ),
        (
            "packet length too long",
            "the server does not speak TLS on this port?",
        ),
        (
            "http request",
            "the server speaks HTTP, not TLS, on this port",
        ),
        (
            "unexpected eof",
            "the server closed the connection during the handshake",
        ),
        (
            "unsupported protocol",
            "no TLS version in common with the server",
        ),
        (
            "alert protocol version",
            "no TLS version in common with the server",
        ),
        ("no shared cipher", "no cipher in common with the server"),
        (
            "alert handshake failure",
            "the server refused the handshake (no cipher or TLS version in common?)",
        ),
    ];
    if lower.contains("certificate verify failed") {
        let detail = raw
            .rfind('(')
            .and_then(|i| raw.get(i..))
            .filter(|d| d.ends_with(')'))
            .map(|d| format!(" {d}"))
            .unwrap_or_default();
        return Some(format!(
            "the server's certificate could not be verified{detail}"
        ));
    }
    WORDS
        .iter()
        .find(|(key, _)| lower.contains(key))
        .map(|(_, words)| (*words).to_string())
}
