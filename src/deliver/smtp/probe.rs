//! The probe of `rsendmail-admin check`: `MAIL FROM`, with `--to` `RCPT TO`, on an open
//! session, then `RSET`, never `DATA`: what the server says of the sender (and of a
//! recipient) without anything being sent. And what the check prints of a TLS session: the server's
//! certificate.

#![deny(clippy::string_slice)]

use super::reply::Expect;
use super::wire::{Stream, Timeouts};
use super::{Reply, Session, State, TlsMode, TlsPolicy, Transcript};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long `rsendmail-admin check` spends fetching again, to show it, a certificate it
/// refused ([`Session::certificate_of`]): the connection, for STARTTLS the greeting, EHLO
/// and STARTTLS, and the handshake, all within this, whatever the configured timeouts
/// (the first try has waited those already).
pub const CERTIFICATE_WAIT: Duration = Duration::from_secs(5);

/// The label `rsendmail-admin check` opens its sessions with: [`Session::open`] then
/// writes a `check... Connected to [IP]` line ([`CONNECTED`]) to the transcript as soon
/// as the TCP connection is made, before it waits for the greeting.
pub const CHECK_LABEL: &str = "check";

/// What that line says before the address.
pub const CONNECTED: &str = "Connected to ";

/// The server's replies to a probe.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The reply to `MAIL FROM:<from>`.
    pub mail: Reply,
    /// The reply to `RCPT TO:<to>`, when one was given and MAIL was accepted.
    pub rcpt: Option<Reply>,
}

impl Session {
    /// `MAIL FROM:<from>`, and when it is accepted `RCPT TO:<to>` (when `to` is given), then `RSET` (each
    /// command on its own, whatever PIPELINING says), leaving the session ready for
    /// `QUIT` ([`Session::close`]). `Err`: the connection failed or the server broke
    /// the protocol (the session is then closed). The addresses are sent as given: the
    /// caller checks them (no CR, LF or `>` in them).
    pub fn probe(
        &mut self,
        from: &str,
        to: Option<&str>,
        out: &mut Transcript<'_>,
    ) -> Result<Probe, Reply> {
        self.state = State::MailReply;
        self.put(&format!("MAIL FROM:<{from}>"), out)?;
        self.flush(self.timeouts.mail)?;
        let mail = self.read_expect(self.timeouts.mail, out, Expect::Completion, "MAIL")?;
        let rcpt = if let Some(to) = to.filter(|_| mail.is_positive()) {
            self.state = State::RcptReply;
            self.put(&format!("RCPT TO:<{to}>"), out)?;
            self.flush(self.timeouts.rcpt)?;
            Some(self.read_expect(self.timeouts.rcpt, out, Expect::Completion, "RCPT")?)
        } else {
            None
        };
        self.state = State::RsetReply;
        self.put("RSET", out)?;
        self.flush(self.timeouts.rset)?;
        self.read_expect(self.timeouts.rset, out, Expect::Completion, "RSET")?;
        self.state = State::Ready;
        Ok(Probe { mail, rcpt })
    }

    /// The server's certificate (DER) on a TLS session; `None` in clear text.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match self.conn.get_ref() {
            Stream::Tls(t) => t
                .peer_certificate()
                .ok()
                .flatten()
                .and_then(|c| c.to_der().ok()),
            _ => None,
        }
    }
}

impl Session {
    /// The certificate `host` sends on `port` (DER), by a connection to the first of
    /// `addrs` that takes one, with `mode`'s TLS and no check of the certificate: for
    /// `rsendmail-admin check` to show one it refused. Everything, from the connection
    /// to the end of the handshake, within `within`; no greeting is waited for after an
    /// SMTPS handshake. None when the server gives none in that time.
    pub fn certificate_of(
        host: &str,
        port: u16,
        addrs: &[IpAddr],
        helo_name: &str,
        mode: TlsMode,
        within: Duration,
    ) -> Option<Vec<u8>> {
        let end = Instant::now() + within;
        let left = || {
            end.checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
        };
        let look = TlsPolicy {
            mode,
            verify: false,
            ..TlsPolicy::default()
        };
        for &ip in addrs {
            let addr = SocketAddr::new(ip, port);
            let Ok(stream) = TcpStream::connect_timeout(&addr, left()?) else {
                continue;
            };
            let sock = stream.try_clone().ok()?;
            let t = left()?;
            let timeouts = Timeouts {
                connect: t,
                initial: t,
                helo: t,
                mail: t,
                rcpt: t,
                datainit: t,
                datablock: t,
                datafinal: t,
                rset: t,
                quit: t,
            };
            let mut s = Session::new(stream, sock, addr, host, &timeouts, false);
            let der = s.fetch_certificate(helo_name, &look, left);
            if look.mode == TlsMode::Implicit {
                // Nothing was said on this connection: it is closed as it is.
                s.state = State::Closed;
            }
            s.abandon(&mut None);
            return der;
        }
        None
    }

    /// [`Session::certificate_of`] once connected: each step within the time `left`
    /// gives.
    fn fetch_certificate(
        &mut self,
        helo_name: &str,
        look: &TlsPolicy,
        left: impl Fn() -> Option<Duration>,
    ) -> Option<Vec<u8>> {
        if look.mode != TlsMode::Implicit {
            let g = self
                .read_expect(left()?, &mut None, Expect::Ready, "the greeting")
                .ok()?;
            if g.code != 220 {
                return None;
            }
            self.timeouts.helo = left()?;
            self.ehlo(helo_name, &mut None).ok()?;
            if !self.caps.starttls {
                return None;
            }
            self.state = State::StartTlsReply;
            self.put("STARTTLS", &mut None).ok()?;
            let t = left()?;
            self.flush(t).ok()?;
            let r = self
                .read_expect(left()?, &mut None, Expect::Ready, "STARTTLS")
                .ok()?;
            if r.code != 220 {
                return None;
            }
        }
        self.timeouts.helo = left()?;
        self.handshake(look).ok()?;
        self.peer_certificate()
    }
}
