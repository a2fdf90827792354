//! The probe of `rsendmail-admin check`: `MAIL FROM`, with `--to` `RCPT TO`, on an open
//! session, then `RSET`, never `DATA`: what the server says of the sender (and of a
//! recipient) without anything being sent. And what the check prints of a TLS session: the server's
//! certificate.

#![deny(clippy::string_slice)]

use super::reply::Expect;
use super::wire::Stream;
use super::{Reply, Session, State, Transcript};

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
