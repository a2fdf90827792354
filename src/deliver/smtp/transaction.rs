//! One message on an open session: MAIL, RCPT for each recipient, DATA, the data.
//! Before a connection is used again the deliverer checks it with RSET and its reply
//! ([`Session::reset_for_reuse`], as sendmail 8.17 checks a cached connection); a
//! transaction on a used connection that was not checked so begins with RSET itself.
//!
//! With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out in one write (with such a
//! RSET in front) and the replies are read in order; without it
//! each command waits for its reply. When the caller already knows the message to send
//! next on the connection ([`Outgoing::next`]), its MAIL, RCPT and DATA go out in the same
//! write as this message's final dot (RFC 2920 §3.1: the message content may begin a
//! group), with no RSET: the dot's reply is read first and is this message's outcome,
//! and the session waits in [`State::Primed`] for that next message, which goes on from
//! its replies. Anything else that would use the session closes it instead, its data
//! never ended, so that the server takes nothing of it; a connection lost after the dot
//! (or a 421 to the MAIL sent ahead) sends the next message over another connection
//! ([`Session::lost_unused`]). `SIZE=` (RFC 1870) is counted by one read of the
//! message before MAIL, and the data is read again from the message's start, also for
//! the second transaction a 452 to a recipient asks for (RFC 5321 §4.5.3.1.10): the
//! message is never held in memory. The DSN parameters (RFC 3461) and `BODY=` go out
//! only when offered; without SMTPUTF8 (RFC 6531) a recipient whose address needs it
//! fails here, and a sender that needs it fails them all.
//!
//! Each recipient gets one [`Outcome`]. A failure of the session (I/O, timeout, protocol
//! error) gives every recipient still open a temporary failure; after a protocol error
//! even the replies already read in the transaction do not count.

#![deny(clippy::string_slice)]

use super::super::dns;
use super::reply::Expect;
use super::wire::{closed_by_peer, io_reply};
use super::{Reply, Session, State, Transcript, Used};
use rsendmail::message::wire;
use rsendmail::status;
use std::io::{self, Read, Seek, SeekFrom};

/// One recipient's result in a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered(Reply),
    TempFail(Reply),
    PermFail(Reply),
    /// Not sent: [`Outgoing::go`] said no before the transaction's MAIL, or before its
    /// DATA (a temporary failure, with the reply it gave).
    Withheld(Reply),
}

impl Outcome {
    /// The outcome a final reply gives: only a 2yz delivers, a 5yz fails for good, and
    /// anything else is temporary (the replies reaching here were checked against their
    /// command; this is the safe side for any that was not).
    pub fn from_reply(r: Reply) -> Outcome {
        if (200..300).contains(&r.code) {
            Outcome::Delivered(r)
        } else if (500..600).contains(&r.code) {
            Outcome::PermFail(r)
        } else {
            Outcome::TempFail(r)
        }
    }

    pub fn reply(&self) -> &Reply {
        match self {
            Outcome::Delivered(r)
            | Outcome::TempFail(r)
            | Outcome::PermFail(r)
            | Outcome::Withheld(r) => r,
        }
    }
}

/// A stored message: read from a position, and sought back to it.
pub trait Stored: Read + Seek {}

impl<T: Read + Seek> Stored for T {}

/// A message to send.
pub struct Outgoing<'a> {
    /// Reverse path (empty: `<>`).
    pub sender: &'a str,
    pub recipients: Vec<OutRcpt<'a>>,
    /// The stored message (LF line ends), from its first header line to its end. It is
    /// read more than once (for `SIZE=`, and again for a second transaction after a 452),
    /// each time from where it stood when given.
    pub data: &'a mut dyn Stored,
    pub body: Option<&'a str>,
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
    /// `XVERP=xy` in MAIL: the server makes each recipient's VERP sender (only when it
    /// offers XVERP, [`super::ehlo::Caps::xverp`]).
    pub xverp: Option<&'a str>,
    /// From `<>` too, MAIL carries `SIZE=`. sendmail sends a report it has just made,
    /// returning the header only, from memory without a size; one it reads back from
    /// its queue (a later run's) carries `SIZE=` (compat cases reason-reject5-v,
    /// bounce-queuereturn-refused).
    pub null_size: bool,
    /// Told each outcome as soon as its reply is read, with the recipients it is for
    /// (indexes into `recipients`) and the command it answered; returns the lines the
    /// transcript shows there (sendmail -v prints `addr... Deferred: ...` right after a
    /// RCPT's 4yz, before the RSET that follows). Outcomes a failed session gives are
    /// not told: the caller has them from [`Session::send`].
    pub notify: Option<&'a mut Notify<'a>>,
    /// The longest body line sent, in octets: [`wire::MAX_BODY_LINE`] to relay lines
    /// as sendmail does, [`wire::MAX_LINE`] to hold them to RFC 5321's limit (longer
    /// ones continued with CRLF SP). After a [line-length refusal](Session::send) it is
    /// [`wire::MAX_LINE`].
    pub body_limit: usize,
    /// Opens a new session to the same destination, for sending the message again after
    /// a line-length refusal that cost the connection (the reply to give when none can
    /// be opened). Without it such a refusal is the recipients' outcome.
    pub reconnect: Option<&'a mut Reconnect<'a>>,
    /// The queue id, for the log.
    pub id: &'a str,
    /// The message to send next over this connection, when it is known already: asked
    /// just before the final dot is written, with this session, it gives that message's
    /// queue id and commands ([`Session::commands`]), which then go out with the dot
    /// (RFC 2920 §3.1) instead of a round trip later. Asked only when nothing more of
    /// this message can follow on the connection (no recipient to send again after a
    /// 452, no line that a refusal would make it send again with shorter lines) and no
    /// transcript is shown (sendmail's `-v` order). See [`State::Primed`].
    pub next: Option<&'a mut Next<'a>>,
    /// Asked before each transaction's MAIL on a session that has not sent it yet, and,
    /// without PIPELINING, before DATA (after the RCPT replies, each of which may have
    /// taken long): `Some(reply)` stops the message there, its recipients not yet
    /// decided [`Outcome::Withheld`] with that reply (before DATA, after an RSET). The
    /// deliverer looks at its entry's mark again there (`rsendmail-admin delete`,
    /// `hold`, `bounce` asked for while the connection was made or a reply awaited).
    /// Never asked once DATA is sent: a transaction under way is not cut.
    pub go: Option<&'a Go<'a>>,
}

/// See [`Outgoing::go`].
pub type Go<'a> = dyn Fn() -> Option<Reply> + 'a;

/// See [`Outgoing::next`]: the queue id and the command lines (MAIL, then each RCPT) of
/// the message to send next.
pub type Next<'a> = dyn FnMut(&Session) -> Option<(String, Vec<String>)> + 'a;

/// The message whose commands went out after the previous one's final dot.
pub(super) struct Primed {
    /// Its queue id.
    id: String,
    /// MAIL, then each RCPT, as sent (DATA followed them).
    lines: Vec<String>,
}

/// See [`Outgoing::notify`].
pub type Notify<'a> = dyn FnMut(&[usize], &Outcome, Step) -> Vec<String> + 'a;

/// See [`Outgoing::reconnect`].
pub type Reconnect<'a> = dyn FnMut(&mut Transcript<'_>) -> Result<Session, Reply> + 'a;

/// The command whose reply decided an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Mail,
    Rcpt,
    Data,
}

/// Tell `notify` of an outcome and show the lines it gives.
fn tell(m: &mut Outgoing<'_>, which: &[usize], o: &Outcome, step: Step, out: &mut Transcript<'_>) {
    if let Some(f) = m.notify.as_deref_mut() {
        let lines = f(which, o, step);
        if let Some(w) = out.as_deref_mut() {
            for l in lines {
                let _ = writeln!(w, "{l}");
            }
        }
    }
}

pub struct OutRcpt<'a> {
    pub address: &'a str,
    pub notify: Option<&'a str>,
    pub orcpt: Option<&'a str>,
}

/// The message of a [`Session::send`]: where it starts in its file, `SIZE=`, and its
/// longest line as it goes out (octets), once read (see [`Session::long_line`]).
struct Data {
    origin: u64,
    size: Option<u64>,
    longest: Option<usize>,
}

/// How a transaction ended.
enum Done {
    /// How many recipients were accepted, and which got 452 (to send again).
    Sent(usize, Vec<usize>),
    /// The data of a message with a line over [`wire::MAX_LINE`] octets was refused
    /// (a 5yz during or at the end of it, or the connection closed by the server): the
    /// reply, the recipients it refused (accepted at RCPT), and which got 452. Nothing
    /// was told of it yet.
    LineRefused(Reply, Vec<usize>, Vec<usize>),
}

/// RFC 3461 xtext: printable ASCII but `+` and `=` as it is, every other byte `+XX`.
#[deny(clippy::indexing_slicing)]
pub fn xtext(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            o.push(b as char);
        } else {
            o.push_str(&format!("+{b:02X}"));
        }
    }
    o
}

impl Session {
    /// Whether MAIL carries `SIZE=`: when offered, but (as sendmail) not for a delivery
    /// report from `<>` unless `null_size` says so.
    fn wants_size(&self, m: &Outgoing<'_>) -> bool {
        self.caps.size.is_some() && (!m.sender.is_empty() || m.null_size)
    }

    fn mail_command(&self, m: &Outgoing<'_>, utf8: bool, data: &Data) -> String {
        let mut cmd = format!("MAIL From:<{}>", self.wire_address(m.sender));
        if let Some(size) = data.size {
            cmd.push_str(&format!(" SIZE={size}"));
        }
        if self.caps.eightbitmime
            && let Some(b) = m.body
        {
            cmd.push_str(&format!(" BODY={b}"));
        }
        if utf8 {
            cmd.push_str(" SMTPUTF8");
        }
        if self.caps.xverp
            && let Some(d) = m.xverp
        {
            cmd.push_str(&format!(" XVERP={d}"));
        }
        if self.caps.dsn {
            if let Some(r) = m.ret {
                cmd.push_str(&format!(" RET={r}"));
            }
            if let Some(e) = m.envid {
                cmd.push_str(&format!(" ENVID={}", xtext(e)));
            }
        }
        cmd
    }

    /// An address as MAIL or RCPT writes it: as it is to a server offering SMTPUTF8;
    /// to one without, with its domain's A-labels when only the domain is non-ASCII
    /// ([`dns::ascii_address`]; the others never get here, see [`Session::send`]).
    fn wire_address<'s>(&self, addr: &'s str) -> std::borrow::Cow<'s, str> {
        if self.caps.smtputf8 {
            return std::borrow::Cow::Borrowed(addr);
        }
        dns::ascii_address(addr).unwrap_or(std::borrow::Cow::Borrowed(addr))
    }

    fn rcpt_command(&self, r: &OutRcpt<'_>) -> String {
        let mut cmd = format!("RCPT To:<{}>", self.wire_address(r.address));
        if self.caps.dsn {
            if let Some(n) = r.notify {
                cmd.push_str(&format!(" NOTIFY={n}"));
            }
            // An ORCPT only where one was given (an SMTP client's, inherited by the
            // targets of an alias): RFC 3461 §4.2 makes it optional, and sendmail sends
            // none for `-N`, nor for an alias's targets (observed with 8.17.1.9
            // against a server offering DSN).
            if let Some(o) = r.orcpt {
                cmd.push_str(&format!(" ORCPT={}", xtext(o)));
            }
        }
        cmd
    }

    /// The command lines a message would go out with on this session, MAIL first and
    /// then every recipient's RCPT, as [`Session::send`] writes them in its first
    /// transaction (the message is read for `SIZE=` and left where it stood). `None`
    /// when it would not go out so: an address that needs SMTPUTF8 on a server without
    /// it, or a message that cannot be read.
    pub fn commands(&self, m: &mut Outgoing<'_>) -> Option<Vec<String>> {
        if !self.caps.smtputf8
            && (dns::ascii_address(m.sender).is_none()
                || m.recipients
                    .iter()
                    .any(|r| dns::ascii_address(r.address).is_none()))
        {
            return None;
        }
        let all: Vec<usize> = (0..m.recipients.len()).collect();
        let utf8 = self.utf8_needed(m, &all);
        let data = self.measure(m).ok()?;
        m.data.seek(SeekFrom::Start(data.origin)).ok()?;
        let mut lines = vec![self.mail_command(m, utf8, &data)];
        lines.extend(m.recipients.iter().map(|r| self.rcpt_command(r)));
        Some(lines)
    }

    /// Whether MAIL says SMTPUTF8 for these recipients: only to a server that offers it
    /// (to one without, what is sent is ASCII or goes by its A-labels).
    fn utf8_needed(&self, m: &Outgoing<'_>, pending: &[usize]) -> bool {
        self.caps.smtputf8
            && (!m.sender.is_ascii()
                || pending
                    .iter()
                    .any(|&i| m.recipients.get(i).is_some_and(|r| !r.address.is_ascii())))
    }

    /// Send one message. Returns one outcome per recipient, in order. The session may be
    /// closed afterwards (check [`Session::is_usable`]), or replaced by a new one (see
    /// below).
    ///
    /// A line-length refusal does not count: when the message has a body line over
    /// [`wire::MAX_LINE`] octets (sent unchanged up to [`Outgoing::body_limit`]) and the
    /// server refuses its data with a 5yz (during the data or at its end; aiosmtpd's
    /// `500 Line too long`) or closes the connection during it, the transaction is tried
    /// once more with every body line broken at [`wire::MAX_LINE`] (CRLF SP): on the
    /// same connection after RSET when it is still usable, else on a new one from
    /// [`Outgoing::reconnect`], which then replaces this session. The transcript and the
    /// log say so in one line; the outcome of the second copy is the recipients'. A 4yz
    /// keeps its meaning (the message is deferred; the next attempt starts unchanged
    /// again). A timeout is not taken for a refusal.
    pub fn send(&mut self, m: &mut Outgoing<'_>, out: &mut Transcript<'_>) -> Vec<Outcome> {
        let n = m.recipients.len();
        self.data_refused = false;
        let mut results: Vec<Option<Outcome>> = vec![None; n];
        let mut pending: Vec<usize> = (0..n).collect();
        if !self.caps.smtputf8 {
            // RFC 6531 §3.2: without SMTPUTF8 an address that needs it (a non-ASCII
            // local part; a non-ASCII domain goes as its A-labels) cannot be sent.
            // That is the recipient's failure alone; a sender that needs it is every
            // recipient's.
            if dns::ascii_address(m.sender).is_none() {
                let r = Reply::with_status(
                    553,
                    status::NON_ASCII_ADDRESS,
                    "The server does not offer SMTPUTF8, which the sender's address needs",
                );
                return vec![Outcome::PermFail(r); n];
            }
            let r = Reply::with_status(
                553,
                status::NON_ASCII_ADDRESS,
                "The server does not offer SMTPUTF8, which the address needs",
            );
            for (i, rcpt) in m.recipients.iter().enumerate() {
                if dns::ascii_address(rcpt.address).is_none()
                    && let Some(slot) = results.get_mut(i)
                {
                    *slot = Some(Outcome::PermFail(r.clone()));
                }
            }
            pending.retain(|&i| results.get(i).is_some_and(Option::is_none));
            if pending.is_empty() {
                return results.into_iter().flatten().collect();
            }
        }
        // Only with a server that offers it: to one without, what is left is ASCII or
        // goes by its A-labels (checked above).
        let utf8_needed = self.utf8_needed(m, &pending);
        let unreadable = |e: io::Error| {
            let r = Reply::with_status(
                451,
                status::SYSTEM_TEMP,
                format_args!("cannot read the queue file: {e}"),
            );
            vec![Outcome::TempFail(r); n]
        };
        let mut data = match self.measure(m) {
            Ok(d) => d,
            Err(e) => return unreadable(e),
        };
        self.lost_unused = false;
        // Only the first transaction of this message can find the connection gone
        // with nothing sent (later ones follow replies that accepted recipients).
        let mut first = true;
        // A connection whose commands for this message went out ahead goes on from their
        // replies (`transaction_begun` checks that they are this message's).
        while !pending.is_empty()
            && (self.state == State::Ready || (first && self.state == State::Primed))
        {
            // Nothing of this transaction sent yet: the deliverer's go first (the
            // connection may have taken long to make). Commands sent ahead with the
            // last message's dot ([`State::Primed`]) went before the deliverer's look
            // at this message, and are its transaction under way.
            if self.state == State::Ready
                && let Some(r) = m.go.and_then(|go| go())
            {
                let o = Outcome::Withheld(r);
                for &i in &pending {
                    results[i] = Some(o.clone());
                }
                break;
            }
            let reused = std::mem::replace(&mut self.carried, true) && first;
            first = false;
            let (accepted, retry) = match self.transaction(
                m,
                &pending,
                &mut results,
                utf8_needed,
                &mut data,
                reused,
                out,
            ) {
                Ok(Done::Sent(accepted, retry)) => (accepted, retry),
                Ok(Done::LineRefused(r, refused, retry)) => {
                    // Read by `long_line` to return this.
                    let longest = data.longest.unwrap_or_default();
                    m.body_limit = wire::MAX_LINE;
                    if let Err(e) = m.data.seek(SeekFrom::Start(data.origin)) {
                        return unreadable(e);
                    }
                    data = match self.measure(m) {
                        Ok(d) => d,
                        Err(e) => return unreadable(e),
                    };
                    let line = format!(
                        "{} refused a message with a body line of {longest} octets ({}): \
                             sending it again with body lines broken at {}",
                        self.host,
                        r.summary(),
                        wire::MAX_LINE
                    );
                    log::info!("{}: {line}", m.id);
                    if let Some(w) = out.as_deref_mut() {
                        let _ = writeln!(w, "{line}");
                    }
                    let same = self.state == State::Ready && self.reset_for_reuse(out).is_ok();
                    if !same {
                        let again = match m.reconnect.as_deref_mut() {
                            Some(open) => open(out),
                            None => Err(r.clone()),
                        };
                        match again {
                            Ok(new) => *self = new,
                            Err(why) => {
                                // Only the second copy's failure counts: without a
                                // connection, that is a deferral.
                                let o = Outcome::TempFail(if why.is_permanent() {
                                    Reply::with_status(451, status::NETWORK_TEMP, why.summary())
                                } else {
                                    why
                                });
                                for &i in &refused {
                                    results[i] = Some(o.clone());
                                }
                                tell(m, &refused, &o, Step::Data, out);
                                break;
                            }
                        }
                    }
                    pending = refused.into_iter().chain(retry).collect();
                    pending.sort_unstable();
                    for i in &pending {
                        results[*i] = None;
                    }
                    continue;
                }
                Err(r) => {
                    // After a protocol error even the replies already read in this
                    // transaction may have answered other commands: none counts.
                    let untrusted = self.desynchronised;
                    for i in &pending {
                        if untrusted || results[*i].is_none() {
                            results[*i] = Some(Outcome::from_reply(r.clone()));
                        }
                    }
                    break;
                }
            };
            if accepted == 0 || retry.is_empty() {
                break;
            }
            pending = retry;
            for i in &pending {
                results[*i] = None;
            }
        }
        let closed = Reply::with_status(
            451,
            status::BAD_CONNECTION,
            format_args!("Connection lost to {}", self.host),
        );
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Outcome::TempFail(closed.clone())))
            .collect()
    }

    /// One MAIL/RCPT/DATA transaction for `which` recipients. Returns how many were
    /// accepted and which got 452 (to send again), or a line-length refusal.
    #[allow(clippy::too_many_arguments)]
    fn transaction(
        &mut self,
        m: &mut Outgoing<'_>,
        which: &[usize],
        results: &mut [Option<Outcome>],
        utf8: bool,
        data: &mut Data,
        reused: bool,
        out: &mut Transcript<'_>,
    ) -> Result<Done, Reply> {
        // On a reused connection, a failure before MAIL is accepted means the server
        // ended the cached connection: nothing was sent ([`Session::lost_unused`]).
        let r = self.transaction_begun(m, which, results, utf8, data, reused, out);
        if reused && self.lost_unused {
            self.state = State::Closed;
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn transaction_begun(
        &mut self,
        m: &mut Outgoing<'_>,
        which: &[usize],
        results: &mut [Option<Outcome>],
        utf8: bool,
        data: &mut Data,
        reused: bool,
        out: &mut Transcript<'_>,
    ) -> Result<Done, Reply> {
        let t = self.timeouts.clone();
        let mail = self.mail_command(m, utf8, data);
        let rcpts: Vec<String> = which
            .iter()
            .map(|&i| self.rcpt_command(&m.recipients[i]))
            .collect();
        let pipelined = self.caps.pipelining;
        // Up to MAIL's reply: a failure on a reused connection is its loss.
        let lost = |s: &mut Self, r: Reply| {
            s.lost_unused = reused;
            r
        };
        let primed = self.primed.take();
        let reuse = if self.state == State::Primed || primed.is_some() {
            // The commands went out after the previous message's final dot: they must be
            // this message's, all of them, else the connection is given up (its data
            // never ended, the server takes nothing of it) and the message goes over
            // another, nothing of it sent.
            let same = self.state == State::Primed
                && which.len() == m.recipients.len()
                && primed.is_some_and(|p| {
                    p.id == m.id
                        && p.lines.first() == Some(&mail)
                        && p.lines.get(1..) == Some(&rcpts[..])
                });
            if !same {
                self.state = State::Closed;
                self.lost_unused = true;
                return Err(Reply::with_status(
                    451,
                    status::BAD_CONNECTION,
                    format_args!("Connection to {} given up", self.host),
                ));
            }
            self.used = Used::Yes;
            self.state = State::MailReply;
            // No RSET went with them: the final dot's reply ended the last transaction.
            false
        } else {
            let reuse = std::mem::replace(&mut self.used, Used::Yes) != Used::No;
            if reuse && !pipelined {
                self.reset(out).map_err(|r| lost(self, r))?;
            } else if reuse {
                // With PIPELINING the RSET goes in the same group as MAIL (RFC 2920
                // 3.1), so the reuse costs no round trip; its reply is read first, below.
                self.put("RSET", out).map_err(|r| lost(self, r))?;
            }
            self.state = State::MailReply;
            self.put(&mail, out).map_err(|r| lost(self, r))?;
            if pipelined {
                for r in &rcpts {
                    self.put(r, out).map_err(|r| lost(self, r))?;
                }
                self.put("DATA", out).map_err(|r| lost(self, r))?;
            }
            self.flush(t.mail).map_err(|r| lost(self, r))?;
            reuse
        };
        if reuse && pipelined {
            self.rset_reply(out).map_err(|r| lost(self, r))?;
            self.state = State::MailReply;
        }
        let mail_reply = self
            .read_expect(t.mail, out, Expect::Completion, "MAIL")
            .map_err(|r| lost(self, r))?
            .to(&mail);
        if reused && mail_reply.code == 421 {
            // The server is closing the connection it had kept for us.
            self.lost_unused = true;
            return Err(mail_reply);
        }
        let mut accepted = Vec::new();
        // The reply that accepted each of `accepted`, for its outcome.
        let mut accepted_by: Vec<String> = Vec::new();
        let mut retry = Vec::new();
        if !mail_reply.is_positive() {
            if pipelined {
                // Collect the RCPT and DATA replies the server still sends.
                self.state = State::RcptReply;
                for _ in &rcpts {
                    self.read_expect(t.rcpt, out, Expect::Completion, "RCPT")?;
                }
                self.state = State::DataReply;
                let d = self.read_expect(t.datainit, out, Expect::StartData, "DATA")?;
                if d.code == 354 {
                    self.end_empty_data(out)?;
                }
            }
            let o = Outcome::from_reply(mail_reply);
            for &i in which {
                results[i] = Some(o.clone());
            }
            tell(m, which, &o, Step::Mail, out);
            if pipelined {
                self.reset(out)?;
            } else {
                // Nothing was begun: no RSET now; the next transaction on this
                // connection sends one first (sendmail's order: reason-mail4xx-v,
                // reason-mail4xx-q-v).
                self.used = Used::MailRefused;
                self.state = State::Ready;
            }
            return Ok(Done::Sent(0, retry));
        }
        self.state = State::RcptReply;
        for (k, &i) in which.iter().enumerate() {
            if !pipelined {
                self.put(&rcpts[k], out)?;
                self.flush(t.rcpt)?;
            }
            let r = self
                .read_expect(t.rcpt, out, Expect::Completion, "RCPT")?
                .to(&rcpts[k]);
            if r.is_positive() {
                accepted.push(i);
                accepted_by.push(r.summary());
            } else if r.code == 452 {
                retry.push(i);
                results[i] = Some(Outcome::TempFail(r));
            } else {
                let o = Outcome::from_reply(r);
                tell(m, &[i], &o, Step::Rcpt, out);
                results[i] = Some(o);
            }
        }
        self.state = State::DataReply;
        if !pipelined {
            if accepted.is_empty() {
                self.reset(out)?;
                return Ok(Done::Sent(0, retry));
            }
            // The RCPT replies came one by one, each after a wait: the deliverer's go
            // once more, before DATA (after it, the message is sent whole).
            if let Some(r) = m.go.and_then(|go| go()) {
                let o = Outcome::Withheld(r);
                for &i in accepted.iter().chain(&retry) {
                    results[i] = Some(o.clone());
                }
                self.reset(out)?;
                return Ok(Done::Sent(0, Vec::new()));
            }
            self.put("DATA", out)?;
            self.flush(t.datainit)?;
        }
        let data_reply = self
            .read_expect(t.datainit, out, Expect::StartData, "DATA")?
            .to("DATA");
        if (400..500).contains(&data_reply.code) {
            // A temporary refusal of DATA: sendmail ends the session at once (QUIT,
            // its reply), then tells the recipients, and does not use the connection
            // again (compat cases reason-data4xx-init-v, reason-data4xx-init-q-v).
            self.state = State::QuitReply;
            if self.put("QUIT", out).is_ok() && self.flush(self.timeouts.quit).is_ok() {
                let _ = self.read(self.timeouts.quit, out);
            }
            self.state = State::Closed;
            self.quit_sent = true;
            if !accepted.is_empty() {
                let o = Outcome::from_reply(data_reply);
                for &i in &accepted {
                    results[i] = Some(o.clone());
                }
                tell(m, &accepted, &o, Step::Data, out);
            }
            return Ok(Done::Sent(0, retry));
        }
        if data_reply.code != 354 {
            if !accepted.is_empty() {
                self.data_refused |= data_reply.is_permanent();
                let o = Outcome::from_reply(data_reply);
                for &i in &accepted {
                    results[i] = Some(o.clone());
                }
                tell(m, &accepted, &o, Step::Data, out);
            }
            self.reset(out)?;
            return Ok(Done::Sent(0, retry));
        }
        if accepted.is_empty() {
            self.end_empty_data(out)?;
            return Ok(Done::Sent(0, retry));
        }
        // The next message's MAIL, RCPT and DATA right after the final dot, in the same
        // write (RFC 2920 §3.1), when nothing more of this one can follow on the
        // connection: no recipient to send again after a 452, no line over RFC 5321's
        // limit that a refusal would send again shorter (the message read once more for
        // it when MAIL had no `SIZE=`, only when a next message is at hand); and not
        // under `-v`, whose transcript keeps sendmail's order. Their replies come after
        // the dot's.
        let mut ahead = None;
        if pipelined
            && out.is_none()
            && retry.is_empty()
            && let Some(next) = m.next.as_deref_mut()
            && let Some((id, lines)) = next(self)
            && !self.long_line(m, data)
        {
            // No transcript here; the traffic log (-X) gets them after the data, as
            // they go out.
            for l in &lines {
                self.queue_line(l);
            }
            self.queue_line("DATA");
            ahead = Some(Primed { id, lines });
        }
        self.state = State::DataFinalReply;
        // From the message's start each time: it was read for SIZE=, and a 452 sends
        // it again in a second transaction.
        if let Err(e) = m.data.seek(SeekFrom::Start(data.origin)) {
            return Err(Reply::with_status(
                451,
                status::SYSTEM_TEMP,
                format_args!("cannot read the queue file: {e}"),
            ));
        }
        // A refusal of a message with a line over RFC 5321's limit (`long_line`) is one a
        // second copy with shorter lines may pass (see `send`).
        let sent = self.write_data(&mut *m.data, m.body_limit);
        if let Err(e) = sent {
            let st = self.state;
            self.state = State::Closed;
            if closed_by_peer(&e) && self.long_line(m, data) {
                return Ok(Done::LineRefused(
                    io_reply(&e, st, &self.host),
                    accepted,
                    retry,
                ));
            }
            // A server that did not take a block of the message in time: sendmail's words
            // (usersmtp.c, smtpdata).
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                return Err(Reply::with_status(
                    451,
                    status::NO_ANSWER,
                    format!("timeout writing message to {}", self.host),
                ));
            }
            return Err(io_reply(&e, st, &self.host));
        }
        if self.verbose
            && let Some(w) = out.as_deref_mut()
        {
            let _ = writeln!(w, ">>> .");
        }
        match self.flush(t.datafinal) {
            Ok(()) => {}
            Err(r) if self.peer_closed && self.long_line(m, data) => {
                return Ok(Done::LineRefused(r, accepted, retry));
            }
            Err(r) => return Err(r),
        }
        // The final dot went out with the data: it is owed a reply too.
        self.awaiting += 1;
        let fin = match self.read_owed(t.datafinal, out, true) {
            Ok(r) => r,
            Err(r) if self.peer_closed && self.long_line(m, data) => {
                return Ok(Done::LineRefused(r, accepted, retry));
            }
            Err(r) => return Err(r),
        };
        let fin = self
            .check(fin, Expect::Completion, "the end of the data")?
            .to("DATA");
        if fin.is_permanent() && self.long_line(m, data) {
            self.state = if self.spent {
                State::Closed
            } else {
                State::Ready
            };
            return Ok(Done::LineRefused(fin, accepted, retry));
        }
        self.data_refused |= fin.is_permanent();
        let o = Outcome::from_reply(fin.clone());
        for (&i, by) in accepted.iter().zip(accepted_by) {
            let mut each = fin.clone();
            each.accepted_by = Some(by);
            results[i] = Some(Outcome::from_reply(each));
        }
        tell(m, &accepted, &o, Step::Data, out);
        self.state = if self.spent {
            State::Closed
        } else if ahead.is_some() {
            // Whatever the dot's reply said (a 421 too: the next message then finds the
            // connection gone at its MAIL's reply, and goes over another).
            self.primed = ahead;
            State::Primed
        } else {
            State::Ready
        };
        Ok(Done::Sent(accepted.len(), retry))
    }

    /// RFC 2920 §3.1: the server said 354 although no recipient (or no MAIL) was
    /// accepted; end the (empty) message and discard its reply.
    fn end_empty_data(&mut self, out: &mut Transcript<'_>) -> Result<(), Reply> {
        self.state = State::DataFinalReply;
        self.put(".", out)?;
        self.flush(self.timeouts.datafinal)?;
        self.read_expect(
            self.timeouts.datafinal,
            out,
            Expect::Completion,
            "the end of the data",
        )?;
        self.state = State::Ready;
        Ok(())
    }

    /// Before a connection is used again: RSET, as sendmail checks a cached connection
    /// before it says it uses it. The transaction that follows sends no RSET of its own.
    /// `Err`: the connection is not usable (and is closed).
    pub fn reset_for_reuse(&mut self, out: &mut Transcript<'_>) -> Result<(), Reply> {
        if self.state == State::Primed {
            // Its RSET would be taken as the data of the message sent ahead.
            self.state = State::Closed;
            self.primed = None;
            return Err(Reply::with_status(
                451,
                status::BAD_CONNECTION,
                format_args!("Connection to {} given up", self.host),
            ));
        }
        if self.used != Used::Yes {
            return Ok(());
        }
        self.reset(out)?;
        self.used = Used::No;
        Ok(())
    }

    fn reset(&mut self, out: &mut Transcript<'_>) -> Result<(), Reply> {
        self.state = State::RsetReply;
        self.put("RSET", out)?;
        self.flush(self.timeouts.rset)?;
        self.rset_reply(out)
    }

    /// Read RSET's reply: anything but 2xx makes the connection unusable. That is the
    /// connection's failure, not the recipients': they are tried again later.
    fn rset_reply(&mut self, out: &mut Transcript<'_>) -> Result<(), Reply> {
        let r = self.read_expect(self.timeouts.rset, out, Expect::Completion, "RSET")?;
        if !r.is_positive() {
            self.state = State::Closed;
            return Err(Reply::with_status(
                451,
                status::NETWORK_TEMP,
                format_args!("{} refused RSET: {}", self.host, r.summary()),
            ));
        }
        self.state = State::Ready;
        Ok(())
    }

    /// Where the message starts, and its size and longest line as sent with
    /// [`Outgoing::body_limit`] when MAIL is to carry `SIZE=` (one more read of the
    /// message; the data is sent from `origin` again).
    fn measure(&self, m: &mut Outgoing<'_>) -> io::Result<Data> {
        let origin = m.data.stream_position()?;
        let (size, longest) = if self.wants_size(m) {
            let measured = wire::measure(&mut *m.data, m.body_limit)?;
            m.data.seek(SeekFrom::Start(origin))?;
            (Some(measured.size), Some(measured.longest))
        } else {
            (None, None)
        };
        Ok(Data {
            origin,
            size,
            longest,
        })
    }

    /// Whether the message went out with a body line over [`wire::MAX_LINE`] octets
    /// (sent unbroken up to [`Outgoing::body_limit`]). Asked only when its data was
    /// refused: without `SIZE=` the message is read once more for it then, not for
    /// every message sent. A message that cannot be read again has no such line.
    fn long_line(&self, m: &mut Outgoing<'_>, data: &mut Data) -> bool {
        if m.body_limit <= wire::MAX_LINE {
            return false;
        }
        let longest = match data.longest {
            Some(l) => l,
            None => {
                let measured = m
                    .data
                    .seek(SeekFrom::Start(data.origin))
                    .and_then(|_| wire::measure(&mut *m.data, m.body_limit));
                let Ok(measured) = measured else {
                    return false;
                };
                *data.longest.insert(measured.longest)
            }
        };
        longest > wire::MAX_LINE
    }
}

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn only_a_2yz_delivers() {
        let o = |code| match Outcome::from_reply(Reply::local(code, "x")) {
            Outcome::Delivered(_) => "delivered",
            Outcome::TempFail(_) => "temporary",
            Outcome::PermFail(_) => "permanent",
            Outcome::Withheld(_) => "withheld",
        };
        for (code, want) in [
            (250, "delivered"),
            (251, "delivered"),
            (354, "temporary"),
            (334, "temporary"),
            (199, "temporary"),
            (451, "temporary"),
            (554, "permanent"),
            (600, "temporary"),
        ] {
            assert_eq!(o(code), want, "{code}");
        }
    }

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("rfc822;a+b=c@x"), "rfc822;a+2Bb+3Dc@x");
        assert_eq!(xtext("a b"), "a+20b");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use rsendmail::server::xtext_decode;

        proptest! {
            #[test]
            fn xtext_decodes_to_what_was_encoded(s in any::<String>(), t in "[+=%a-zA-Z0-9 é\r\n]{0,30}") {
                for s in [&s, &t] {
                    let x = xtext(s);
                    prop_assert!(x.bytes().all(|b| (33..=126).contains(&b) && b != b'='), "{}", x);
                    prop_assert_eq!(xtext_decode(&x), Some(s.clone()));
                }
            }
        }
    }
}
