//! One SMTP session: the commands a client sends, in the order RFC 5321 §4.1.4 allows
//! them, each answered by its own handler.
//!
//! The session is in one [`Phase`] at a time, named after RFC 5321's words for what it
//! has been given and awaits next:
//!
//! ```text
//! Greeting ─HELO/EHLO─► Helo ─MAIL─► Mail ─RCPT (a recipient taken)─► Rcpt ─DATA (354)─► Data
//!                        ▲             │                               │                  │
//!                        └─────────────┴── RSET, HELO/EHLO ────────────┘                  │
//!                        └──────────── the message's reply (accepted or refused) ─────────┘
//! ```
//! RSET in the Greeting phase stays there; a refused command changes no phase.
//!
//! The phase alone decides whether MAIL, RCPT and DATA may come now ([`Phase::refusal`],
//! with sendmail's 503 replies); HELO/EHLO and RSET end a transaction from any phase;
//! the other commands do not depend on it. In the Data phase the session reads the
//! message, not a command.
//!
//! This module owns the command loop, the handlers and their replies (sendmail 8.17's,
//! recorded in compat-tests), the `-bs` exit status noted in [`Ending`], and pipelining
//! (RFC 2920): replies are buffered while more input is already waiting and flushed
//! before the session would wait for the client. The paths and parameters are read by
//! [`super::path`] and [`super::params`]; the message goes into the spool through
//! [`Server::receive`].
//!
//! An I/O error writing a reply ends the session with that error (the client is gone);
//! a read timeout, a line longer than [`MAX_COMMAND_LINE`] or more than
//! [`MAX_BAD_COMMANDS`] unrecognized commands end it with a 421. A client repeating
//! NOOP, HELO/EHLO, VRFY/EXPN or ETRN is answered ever later past each one's limit, and
//! with `MaxDaemonChildren` set cut off at twice the limit ([`super::Slowdown`]).

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use super::params::{MailParams, Offered, RcptParams};
use super::path::{Path, PathError, checked_path, split_path};
use super::{
    Backend, DATA_BLOCK, DomainCheck, Ending, MAX_COMMAND_LINE, Privacy, Received, Server,
    reply_line,
};
use crate::deadline::{Deadline, Limit};
use crate::exit::Sysexit;
use crate::message::address;
use crate::options::DeliveryMode;
use crate::spool::Spool;
use crate::spool::entry::Recipient;
use crate::submit;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::time::Duration;

/// Where the session stands (RFC 5321 §4.1.4 "Order of Commands"): what it has been
/// given, and so what it awaits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// The greeting was sent; HELO or EHLO has not been.
    Greeting,
    /// The client said hello; no transaction is open.
    Helo,
    /// MAIL was accepted; no recipient has been taken yet.
    Mail,
    /// At least one recipient was taken: more RCPT, or DATA.
    Rcpt,
    /// 354 was sent: the message comes next, up to its final dot.
    Data,
}

impl Phase {
    /// sendmail's refusal of `command` in this phase, or `None` when it may come now.
    /// MAIL may come before HELO/EHLO unless `PrivacyOptions=needmailhelo`.
    fn refusal(self, command: Command, privacy: &Privacy) -> Option<&'static str> {
        use Phase::*;
        match (command, self) {
            (Command::Mail, Greeting) if privacy.need_mail_helo => {
                Some("503 5.0.0 Polite people say HELO first")
            }
            (Command::Mail, Mail | Rcpt) => Some("503 5.5.0 Sender already specified"),
            (Command::Rcpt, Greeting | Helo) => Some("503 5.0.0 Need MAIL before RCPT"),
            (Command::Data, Greeting | Helo) => Some("503 5.0.0 Need MAIL command"),
            (Command::Data, Mail) => Some("503 5.0.0 Need RCPT (recipient)"),
            _ => None,
        }
    }
}

/// A command verb (case-insensitive on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    Etrn,
    Verb,
    /// A command sendmail knows but this server does not offer (502).
    NotImplemented,
    Unrecognized,
}

impl Command {
    /// The command of an upper-cased verb.
    fn of(verb: &str) -> Command {
        match verb {
            "HELO" => Command::Helo,
            "EHLO" => Command::Ehlo,
            "MAIL" => Command::Mail,
            "RCPT" => Command::Rcpt,
            "DATA" => Command::Data,
            "RSET" => Command::Rset,
            "NOOP" => Command::Noop,
            "QUIT" => Command::Quit,
            "VRFY" => Command::Vrfy,
            "EXPN" => Command::Expn,
            "HELP" => Command::Help,
            "ETRN" => Command::Etrn,
            "VERB" => Command::Verb,
            // sendmail's own not-implemented commands (TURN, SEND, SOML, SAML), and the
            // two extensions sendmail offers that this server does not. ONEX, XUSR, ATRN
            // and BDAT are unrecognized, as in sendmail (compat case bs-unknown-commands).
            "STARTTLS" | "AUTH" | "TURN" | "SEND" | "SOML" | "SAML" => Command::NotImplemented,
            _ => Command::Unrecognized,
        }
    }
}

/// The client's hello, for the `Received:` field.
#[derive(Clone, Debug, Default)]
pub(super) struct Hello {
    /// The first word after HELO/EHLO.
    pub name: String,
    /// EHLO rather than HELO: received `with ESMTP`.
    pub esmtp: bool,
}

/// The open mail transaction (phases Mail, Rcpt and Data); empty in the others.
#[derive(Default)]
pub(super) struct Transaction {
    /// The reverse-path's address, `""` for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub params: MailParams,
    /// VERP for this message (`XVERP`, `XVERP=xy`): the two delimiters, queued as the
    /// entry's `verp` line so that the deliverer makes each recipient's sender.
    pub verp: Option<String>,
    /// The sender's domain check, done at the first RCPT.
    sender_checked: Option<DomainCheck>,
    /// Each recipient path taken, and how it was first written (its replies name it so).
    written: Vec<(String, String)>,
}

/// Whether the session goes on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// One session's state, over the server's settings and the connection.
pub(super) struct Session<'s, 'a, R: Deadline, W: Write> {
    server: &'s Server<'a>,
    backend: &'s mut dyn Backend,
    input: &'s mut BufReader<R>,
    out: &'s mut W,
    phase: Phase,
    /// Set in every phase after Greeting.
    hello: Hello,
    tx: Transaction,
    end: Ending,
    /// The command line being read, reused.
    line: Vec<u8>,
    /// Unrecognized commands so far (see [`MAX_BAD_COMMANDS`]).
    bad_commands: u32,
    /// NOOP, HELO/EHLO, VRFY/EXPN and ETRN so far (indexed by [`Repeated`]), for the
    /// slow-down ([`super::Slowdown`]); never reset within a session, as in sendmail.
    repeated: [u32; 4],
    /// The command line being answered had octets that are not UTF-8 (U+FFFD in its
    /// text stands for them).
    not_utf8: bool,
}

/// Unrecognized commands a session answers with 500; the next one ends it with 421
/// (sendmail's MAXBADCOMMANDS): a client that sends garbage does not keep its session.
const MAX_BAD_COMMANDS: u32 = 25;

/// The longest wait before one reply, seconds (sendmail's MAXTIMEOUT).
const MAX_WAIT: u64 = 240;

/// The commands the slow-down counts, each kind on its own count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeated {
    Noop = 0,
    Helo = 1,
    Vrfy = 2,
    Etrn = 3,
}

/// What a counted command does after its wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Go {
    /// Go on; this many seconds are still to be waited by a command that waits after
    /// its work (VRFY/EXPN), 0 for the others.
    On(u64),
    /// End the session with 421 (twice the limit, `MaxDaemonChildren` set).
    Stop,
}

/// The waits of sendmail's `checksmtpattack` for the `count`-th command of a kind whose
/// limit is `limit`, in seconds: `None` below the limit (or with no limit, 0); else what
/// is waited at once (`count / limit`) and what is left of `2^(count - limit)` after it
/// (at most [`MAX_WAIT`] in all).
fn waits(count: u32, limit: u32) -> Option<(u64, u64)> {
    if limit == 0 || count < limit {
        return None;
    }
    let shift = count - limit;
    let whole: u64 = if shift > 8 { MAX_WAIT } else { 1u64 << shift };
    let now = u64::from(count / limit);
    let rest = match whole.min(MAX_WAIT).checked_sub(now) {
        Some(r) if r < MAX_WAIT => r,
        _ => MAX_WAIT,
    };
    Some((now, rest))
}

impl<'s, 'a, R: Deadline, W: Write> Session<'s, 'a, R, W> {
    pub(super) fn new(
        server: &'s Server<'a>,
        backend: &'s mut dyn Backend,
        input: &'s mut BufReader<R>,
        out: &'s mut W,
    ) -> Self {
        Session {
            server,
            backend,
            input,
            out,
            phase: Phase::Greeting,
            hello: Hello::default(),
            tx: Transaction::default(),
            end: Ending::default(),
            line: Vec::new(),
            bad_commands: 0,
            repeated: [0; 4],
            not_utf8: false,
        }
    }

    /// Greet, then read commands (or, in the Data phase, the message) until the client
    /// quits or goes away.
    pub(super) fn run(mut self) -> io::Result<Ending> {
        let greeting = self.server.greeting();
        self.reply(&greeting)?;
        loop {
            let flow = match self.phase {
                Phase::Data => self.message()?,
                _ => self.command()?,
            };
            if flow == Flow::Close {
                return Ok(self.end);
            }
        }
    }

    /// Write one reply line (buffered until the next flush); `-X` logs it (`>>>`).
    fn reply(&mut self, text: &str) -> io::Result<()> {
        // An echo of the client's octets that are not UTF-8 shows each as `?`.
        let shown;
        let text = if self.not_utf8 && text.contains(char::REPLACEMENT_CHARACTER) {
            shown = text.replace(char::REPLACEMENT_CHARACTER, "?");
            shown.as_str()
        } else {
            text
        };
        let line = reply_line(text);
        crate::traffic::line(crate::traffic::Dir::Out, line.as_bytes());
        self.out.write_all(line.as_bytes())
    }

    /// Read one command line and answer it.
    fn command(&mut self) -> io::Result<Flow> {
        // Flush before waiting: a pipelined group is answered in one write.
        if self.input.buffer().is_empty() {
            self.out.flush()?;
        }
        // The whole line within the command timeout, however it is split.
        let limit = Limit::Whole(self.server.command_timeout);
        self.input.get_mut().limit(limit);
        // Outside a transaction the session may be stopped while it waits (the daemon
        // restarting): nothing the client sent is lost then.
        let idle = matches!(self.phase, Phase::Greeting | Phase::Helo);
        self.input.get_mut().idle(idle);
        let host = &self.server.host;
        match read_command(self.input, &mut self.line) {
            Ok(Some(true)) => {}
            Ok(None) => {
                self.out.flush()?;
                return Ok(Flow::Close);
            }
            Ok(Some(false)) => {
                let text = format!(
                    "421 4.7.0 {host} Command too long, possible attack {}",
                    self.server.client_text()
                );
                return self.close_with(&text);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let text = format!("421 4.4.2 {host} Timeout waiting for input");
                return self.close_with(&text);
            }
            Err(e) if let Some(why) = crate::deadline::stopped(&e) => {
                let text = format!("421 4.3.2 {host} {why}");
                return self.close_with(&text);
            }
            Err(e) => return Err(e),
        }
        // Octets that are not UTF-8 become U+FFFD here, and the session remembers that
        // they did: MAIL and RCPT refuse them rather than take the replacement for what
        // the client wrote, and replies show them as `?`.
        let (text, not_utf8) = crate::text::octets(&self.line);
        let text = text.into_owned();
        self.not_utf8 = not_utf8;
        // The argument after the verb and its blanks (C's isspace, as sendmail skips
        // them); HELO sees its trailing blanks, the others do not.
        let (verb, after) = match text.split_once([' ', '\t']) {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim_start_matches(is_c_space)),
            None => (text.to_ascii_uppercase(), ""),
        };
        let arg = after.trim_end_matches(is_c_space);
        let command = Command::of(&verb);
        if let Some(refusal) = self.phase.refusal(command, &self.server.privacy) {
            self.reply(refusal)?;
            return Ok(Flow::Continue);
        }
        match command {
            Command::Helo | Command::Ehlo => {
                // Counted before the name is looked at, as sendmail counts it.
                if self.repeated(Repeated::Helo, "HELO/EHLO", true)? == Go::Stop {
                    return self.stop_attack();
                }
                self.hello(&verb, after)?
            }
            Command::Mail => self.mail(arg)?,
            Command::Rcpt => self.rcpt(arg)?,
            Command::Data => self.data()?,
            Command::Rset => self.rset()?,
            Command::Noop => {
                if self.repeated(Repeated::Noop, "NOOP", true)? == Go::Stop {
                    return self.stop_attack();
                }
                self.reply("250 2.0.0 OK")?
            }
            Command::Quit => {
                let text = format!("221 2.0.0 {} closing connection", self.server.host);
                return self.close_with(&text);
            }
            Command::Vrfy | Command::Expn => return self.vrfy_expn(command, arg),
            Command::Help => self.help(arg)?,
            Command::Etrn => return self.etrn(arg),
            // VERB (sendmail's: the delivery's transcript to the client) is not offered;
            // PrivacyOptions=noverb gets sendmail's words for it.
            Command::Verb if self.server.privacy.no_verb => {
                self.reply("502 5.7.0 Verbose unavailable")?;
            }
            Command::Verb => self.reply("502 5.5.1 Command not implemented: \"VERB\"")?,
            Command::NotImplemented => {
                // The whole line, as sendmail quotes it (`"SEND FROM:<a@b>"`).
                let shown: String = text.chars().take(100).collect();
                self.reply(&format!("502 5.5.1 Command not implemented: \"{shown}\""))?;
            }
            Command::Unrecognized => {
                self.bad_commands = self.bad_commands.saturating_add(1);
                if self.bad_commands > MAX_BAD_COMMANDS {
                    return self.stop_attack();
                }
                let shown: String = text.chars().take(100).collect();
                self.reply(&format!("500 5.5.1 Command unrecognized: \"{shown}\""))?;
            }
        }
        Ok(Flow::Continue)
    }

    /// The last reply, flushed; the session ends.
    fn close_with(&mut self, text: &str) -> io::Result<Flow> {
        self.reply(text)?;
        self.out.flush()?;
        Ok(Flow::Close)
    }

    /// sendmail's end of a session that sent too many unrecognized commands, or repeated
    /// a command past twice its limit.
    fn stop_attack(&mut self) -> io::Result<Flow> {
        let text = format!(
            "421 4.7.0 {} Too many bad commands; closing connection",
            self.server.host
        );
        self.close_with(&text)
    }

    /// Count one command of `kind` (named `name` in the log) and, past its limit, wait
    /// as sendmail's `checksmtpattack` does: `count / limit` seconds at once, and when
    /// `wait_all` the rest too (else the rest is returned, for the caller to wait after
    /// its work). The first command at the limit logs `possible SMTP attack`. Replies
    /// already written are sent before the wait.
    fn repeated(&mut self, kind: Repeated, name: &str, wait_all: bool) -> io::Result<Go> {
        let limits = self.server.slowdown;
        let limit = match kind {
            Repeated::Noop => limits.noop,
            Repeated::Helo => limits.helo,
            Repeated::Vrfy => limits.vrfy,
            Repeated::Etrn => limits.etrn,
        };
        let count = {
            let slot = self.repeated.get_mut(kind as usize);
            let Some(slot) = slot else {
                return Ok(Go::On(0));
            };
            *slot = slot.saturating_add(1);
            *slot
        };
        let Some((now, rest)) = waits(count, limit) else {
            return Ok(Go::On(0));
        };
        if count == limit {
            log::info!(
                "{}: possible SMTP attack: command={name}, count={count}",
                self.server.client_text()
            );
        }
        self.out.flush()?;
        std::thread::sleep(Duration::from_secs(now));
        let rest = if wait_all && rest > 0 {
            std::thread::sleep(Duration::from_secs(rest));
            0
        } else {
            rest
        };
        if self.server.slowdown.stop && count >= limit.saturating_mul(2) {
            return Ok(Go::Stop);
        }
        Ok(Go::On(rest))
    }

    /// HELO or EHLO (RFC 5321 §4.1.1.1): any open transaction is dropped; EHLO lists
    /// the extensions.
    fn hello(&mut self, verb: &str, arg: &str) -> io::Result<()> {
        if arg.is_empty() {
            return self.reply(&format!("501 5.0.0 {verb} requires domain address"));
        }
        // The name goes into the `Received:` field: one that sendmail would refuse is
        // refused, and the session keeps its earlier name and transaction.
        let Some(name) = helo_name(arg) else {
            return self.reply("501 5.0.0 Invalid domain name");
        };
        self.tx = Transaction::default();
        self.phase = Phase::Helo;
        let hello = format!(
            "{} Hello {}, pleased to meet you",
            self.server.host,
            self.server.client_text()
        );
        let esmtp = verb == "EHLO";
        if esmtp {
            self.reply(&format!("250-{hello}"))?;
            self.reply("250-ENHANCEDSTATUSCODES")?;
            self.reply("250-PIPELINING")?;
            self.reply("250-8BITMIME")?;
            match self.server.max_size {
                Some(n) => self.reply(&format!("250-SIZE {n}"))?,
                None => self.reply("250-SIZE")?,
            }
            if !self.server.privacy.no_receipts {
                self.reply("250-DSN")?;
            }
            if !self.server.privacy.no_etrn {
                self.reply("250-ETRN")?;
            }
            if self.offered().xverp {
                self.reply("250-XVERP")?;
            }
            self.reply("250 HELP")?;
        } else {
            self.reply(&format!("250 {hello}"))?;
        }
        self.hello = Hello {
            name: name.into(),
            esmtp,
        };
        Ok(())
    }

    /// VRFY and EXPN: sendmail's answers under `PrivacyOptions=novrfy,noexpn`, always
    /// (they say nothing about who exists here); before HELO/EHLO, `needvrfyhelo` and
    /// `needexpnhelo` refuse them when `novrfy`/`noexpn` are not set, as in sendmail.
    ///
    /// Both count towards the slow-down ([`super::Slowdown`]); as in sendmail, the rest
    /// of a late one's wait comes after the work a lookup would have done, so it is
    /// not waited where sendmail refuses at once (under `novrfy`/`noexpn`, or 503).
    fn vrfy_expn(&mut self, command: Command, arg: &str) -> io::Result<Flow> {
        let vrfy = command == Command::Vrfy;
        let name = if vrfy { "VRFY" } else { "EXPN" };
        let rest = match self.repeated(Repeated::Vrfy, name, false)? {
            Go::Stop => return self.stop_attack(),
            Go::On(rest) => rest,
        };
        let p = &self.server.privacy;
        let (no, need_helo) = if vrfy {
            (p.no_vrfy, p.need_vrfy_helo)
        } else {
            (p.no_expn, p.need_expn_helo)
        };
        if !no && need_helo && self.phase == Phase::Greeting {
            self.reply("503 5.0.0 I demand that you introduce yourself first")?;
            return Ok(Flow::Continue);
        }
        if !no && rest > 0 {
            std::thread::sleep(Duration::from_secs(rest));
        }
        if !no && arg.trim().is_empty() {
            // Nothing to look up: sendmail's words (recorded: `bs-no-args`).
            self.reply("501 5.5.2 Argument required")?;
        } else if vrfy {
            self.reply("252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)")?;
        } else {
            self.reply("502 5.7.0 Sorry, we do not allow this operation")?;
        }
        Ok(Flow::Continue)
    }

    /// What EHLO offered, for the parameters of MAIL and RCPT.
    fn offered(&self) -> Offered {
        Offered {
            no_dsn: self.server.privacy.no_receipts,
            // Postfix offers XVERP to `authorized_verp_clients` ($mynetworks): the
            // clients this server relays for (a local `-bs`, TrustedNetworks).
            xverp: self.server.trusted,
            ..Offered::default()
        }
    }

    /// MAIL FROM (RFC 5321 §4.1.1.2), in the Helo phase (or before HELO without
    /// `PrivacyOptions=needmailhelo`): opens a transaction.
    fn mail(&mut self, arg: &str) -> io::Result<()> {
        let reply = match self.open_transaction(arg) {
            Ok((written, tx)) => {
                self.tx = tx;
                self.phase = Phase::Mail;
                format!("250 2.1.0 {}... Sender ok", shortened(written))
            }
            Err(refusal) => refusal,
        };
        self.reply(&reply)
    }

    /// MAIL's argument → the new transaction and the path as written, or the refusal.
    fn open_transaction<'t>(&mut self, arg: &'t str) -> Result<(&'t str, Transaction), String> {
        let Path {
            written,
            address,
            route,
            params,
        } = split_path(arg, "FROM").map_err(|e| refuse_path(&mut self.end, arg, "FROM", &e))?;
        if let Some(refusal) = too_long(written, written) {
            return Err(refusal);
        }
        if let Some(refusal) = self.not_utf8_refusal("FROM", written, &params) {
            return Err(refusal);
        }
        // `<>` is the null sender; anything else is one checked address.
        let sender = match address.as_deref().map(checked_path) {
            None => String::new(),
            Some(Ok(a)) => a,
            Some(Err(e)) => return Err(refuse_address(&mut self.end, "FROM", written, &e)),
        };
        let params = MailParams::parse(&params, self.offered()).map_err(|e| e.to_string())?;
        // XVERP with the null sender: there is no sender to encode a recipient in
        // (Postfix's smtpd refuses it with 503 too).
        if params.xverp.is_some() && sender.is_empty() {
            return Err("503 5.5.4 XVERP requires a sender other than the null sender <>".into());
        }
        let verp = params.xverp.as_ref().map(|d| {
            d.clone()
                .unwrap_or_else(|| self.server.verp_delimiters.clone())
        });
        if let (Some(max), Some(n)) = (self.server.max_size, params.size)
            && n > max
        {
            return Err(format!(
                "552 5.2.3 Message size exceeds fixed maximum message size ({max})"
            ));
        }
        if let Some(n) = params.size
            && free_bytes(self.server.spool).is_some_and(|free| n > free)
        {
            return Err("452 4.4.5 Insufficient disk space; try again later".into());
        }
        self.route_ignored("sender", written, route);
        let tx = Transaction {
            sender,
            params,
            verp,
            ..Transaction::default()
        };
        Ok((written, tx))
    }

    /// The refusal of a MAIL or RCPT whose path or a parameter holds octets that are not
    /// UTF-8 (a Latin-1 `ö`, an overlong or cut-short sequence, a surrogate): the address
    /// is never taken with U+FFFD in place of what the client wrote, nor a parameter read
    /// from text it did not send. `501 5.1.7` (MAIL) or `501 5.1.3` (RCPT) `Syntax error
    /// in mailbox address "j?hn@example.org" (not UTF-8)`, exit status 64 as sendmail's
    /// `8-bit character in mailbox address` gives; a parameter: `501 5.5.4 Syntax error
    /// in parameter "NOTIFY=?" (not UTF-8)`. Each such octet is shown as `?`.
    /// (compat-tests/differences/bs-addr-non-utf8, bs-param-non-utf8-echo.)
    fn not_utf8_refusal(
        &mut self,
        keyword: &str,
        written: &str,
        params: &[&str],
    ) -> Option<String> {
        const MARK: char = char::REPLACEMENT_CHARACTER;
        if !self.not_utf8 {
            return None;
        }
        let shown = |t: &str| crate::text::printable(&t.replace(MARK, "?")).into_owned();
        if written.contains(MARK) {
            self.end.note(Sysexit::Usage);
            let code = if keyword == "FROM" { "5.1.7" } else { "5.1.3" };
            let bare = written.strip_prefix('<').unwrap_or(written);
            let bare = bare.strip_suffix('>').unwrap_or(bare);
            return Some(format!(
                "501 {code} Syntax error in mailbox address \"{}\" (not UTF-8)",
                shown(&shortened(bare))
            ));
        }
        let param = params.iter().find(|p| p.contains(MARK))?;
        Some(format!(
            "501 5.5.4 Syntax error in parameter \"{}\" (not UTF-8)",
            shown(&shortened(param))
        ))
    }

    /// A source route in an accepted path is ignored, as RFC 5321 §4.1.1.2, §4.1.1.3 and
    /// Appendix C say a server should (and sendmail 8.17 does: the mail goes to the
    /// mailbox, compat-tests/cases/bs-source-route), but not without a word: the log
    /// says which route was dropped from which path.
    fn route_ignored(&self, what: &str, written: &str, route: Option<&str>) {
        if let Some(r) = route {
            log::info!(
                "{}: source route {} ignored in {what} {} (RFC 5321 Appendix C)",
                self.server.client_text(),
                address::shown(r),
                address::shown(written)
            );
        }
    }

    /// RCPT TO (RFC 5321 §4.1.1.3), in the Mail or Rcpt phase: the first recipient
    /// taken moves the session to Rcpt. (A local address whose alias expands to nothing
    /// is answered 250 but takes no recipient, so the phase stays.)
    fn rcpt(&mut self, arg: &str) -> io::Result<()> {
        let reply = self.take_recipient(arg);
        // A refused recipient is logged, as Postfix's smtpd logs it (there is no queue
        // entry yet to name).
        if !reply.starts_with('2') {
            log::info!(
                "NOQUEUE: reject: RCPT from {}: {}",
                self.server.client_text(),
                reply.lines().next().unwrap_or_default()
            );
        }
        if !self.tx.recipients.is_empty() {
            self.phase = Phase::Rcpt;
        }
        self.reply(&reply)
    }

    /// RCPT's argument → the recipients added to the transaction, and the reply.
    fn take_recipient(&mut self, arg: &str) -> String {
        let server = self.server;
        let Path {
            written,
            address: path,
            route,
            params,
        } = match split_path(arg, "TO") {
            Ok(p) => p,
            Err(e) => return refuse_path(&mut self.end, arg, "TO", &e),
        };
        let Some(path) = path else {
            self.end.note(Sysexit::NoUser);
            return "553 5.0.0 <>... User address required".into();
        };
        // Replies name the path as written, brackets or not; a recipient the
        // transaction already has, as it was written the first time (sendmail shows the
        // recipient it keeps; compat-tests/cases/bs-rcpt-errors, xlog-bs).
        if let Some(refusal) = too_long(written, written) {
            return refusal;
        }
        if let Some(refusal) = self.not_utf8_refusal("TO", written, &params) {
            return refusal;
        }
        let path = match checked_path(&path) {
            Ok(a) => a,
            Err(e) => return refuse_address(&mut self.end, "TO", written, &e),
        };
        let first = self
            .tx
            .written
            .iter()
            .find(|(a, _)| *a == path)
            .map(|(_, w)| w.clone());
        let known = first.is_some();
        let shown_whole = first.unwrap_or_else(|| written.to_string());
        let shown = shortened(&shown_whole).into_owned();
        let params = match RcptParams::parse_offered(&params, self.offered()) {
            Ok(p) => p,
            Err(e) => return e.to_string(),
        };
        let mut r = Recipient::new(path.clone());
        r.notify = params.notify.map(|n| n.to_string());
        r.orcpt = params.orcpt.map(|o| o.to_string());
        let sender = &self.tx.sender;
        // The sender's domain, once per transaction (sendmail checks at RCPT).
        if server.mode != DeliveryMode::Deferred
            && self.tx.sender_checked.is_none()
            && let Some(d) = address::domain_of(sender)
            && !d.starts_with('[')
            && !address::is_local(sender, &server.host, false)
        {
            self.tx.sender_checked = Some(self.backend.sender_domain(&d));
        }
        match self.tx.sender_checked {
            Some(DomainCheck::NotFound) => {
                self.end.note(Sysexit::NoHost);
                return format!(
                    "553 5.1.8 {shown}... Domain of sender address {sender} does not exist"
                );
            }
            Some(DomainCheck::TempFail) => {
                return format!("451 4.1.8 Domain of sender address {sender} does not resolve");
            }
            _ => {}
        }
        if !server.may_relay_to(&path) {
            return format!("550 5.7.1 {shown}... Relaying denied");
        }
        if self.tx.recipients.len() >= server.max_recipients {
            return "452 4.5.3 Too many recipients".into();
        }
        let is_local = |a: &str| address::is_local(a, &server.host, server.all_to_smarthost);
        let local = is_local(&path);
        let mut accepted = vec![r.clone()];
        if local {
            let (ok, refused) = submit::expand_local(
                vec![r],
                server.aliases.as_ref(),
                &is_local,
                &server.host,
                &|| server.default_user,
            );
            if let Some(f) = refused.first() {
                let why = f.text.split_once("... ").map(|(_, w)| w).unwrap_or(&f.text);
                let code = if f.code == Sysexit::NoUser {
                    "550 5.1.1"
                } else {
                    "550 5.7.1"
                };
                return format!("{code} {shown}... {why}");
            }
            // A list with an owner alias is delivered from its owner's address, and
            // its members do not take the RCPT's NOTIFY: their failures go to the
            // owner whatever it was (RFC 3461 §6.2.7.2; recorded:
            // `owner-list-bs-notify-never`).
            accepted = ok
                .into_iter()
                .map(|mut a| {
                    if a.sender.is_some() {
                        a.notify = None;
                    }
                    a
                })
                .collect();
        }
        if !known {
            self.tx.written.push((path.clone(), shown_whole));
        }
        // The same recipient: a local user by name ignoring case, any other address
        // byte for byte (RFC 5321 section 2.4; recorded: `dup-case-bs`).
        let key = |a: &str| crate::aliases::recipient_key(a, &is_local);
        for a in accepted {
            let k = key(&a.address);
            if !self.tx.recipients.iter().any(|x| key(&x.address) == k) {
                self.tx.recipients.push(a);
            }
        }
        self.route_ignored("recipient", written, route);
        if server.mode == DeliveryMode::Deferred && !local {
            format!("250 2.1.5 {shown}... Recipient ok (will queue)")
        } else {
            format!("250 2.1.5 {shown}... Recipient ok")
        }
    }

    /// DATA (RFC 5321 §4.1.1.4), in the Rcpt phase: 354, and the message is read next.
    fn data(&mut self) -> io::Result<()> {
        self.reply("354 End data with <CR><LF>.<CR><LF>")?;
        self.out.flush()?;
        self.phase = Phase::Data;
        Ok(())
    }

    /// The Data phase: the message into the spool, then its reply. The transaction
    /// ends either way; a broken data stream ends the session.
    fn message(&mut self) -> io::Result<Flow> {
        let tx = std::mem::take(&mut self.tx);
        self.input.get_mut().idle(false);
        self.input.get_mut().limit(Limit::Blocks {
            bytes: DATA_BLOCK,
            timeout: self.server.data_timeout,
        });
        let received = self.server.receive(&tx, &self.hello, self.input);
        self.phase = Phase::Helo;
        match received {
            Received::Accepted(id) => {
                self.reply(&format!("250 2.0.0 {id} Message accepted for delivery"))?;
                self.out.flush()?;
                self.backend.accepted(&id, self.server.mode);
                self.end.accepted.push(id);
            }
            Received::Refused(text) => self.reply(&text)?,
            Received::Fault(text) => {
                if let Some(t) = text {
                    self.reply(&t)?;
                }
                self.out.flush()?;
                return Ok(Flow::Close);
            }
        }
        Ok(Flow::Continue)
    }

    /// RSET (RFC 5321 §4.1.1.5): the transaction is dropped; a hello stays.
    fn rset(&mut self) -> io::Result<()> {
        self.tx = Transaction::default();
        if self.phase != Phase::Greeting {
            self.phase = Phase::Helo;
        }
        self.reply("250 2.0.0 Reset state")
    }

    /// HELP: the list of commands, or with a topic that command's own lines
    /// ([`help_topic`]); a topic that is none of them gets sendmail's `504 5.3.0 HELP
    /// topic "x" unknown` (recorded: `bs-no-args`).
    fn help(&mut self, topic: &str) -> io::Result<()> {
        let lines = if topic.is_empty() {
            HELP
        } else {
            match help_topic(topic) {
                Some(lines) => lines,
                None => {
                    let shown = topic.to_ascii_lowercase();
                    return self.reply(&format!("504 5.3.0 HELP topic \"{shown}\" unknown"));
                }
            }
        };
        for l in lines {
            self.reply(&format!("214-2.0.0 {l}"))?;
        }
        self.reply("214 2.0.0 End of HELP info")
    }

    /// ETRN (RFC 1985): `domain`, `@domain` (and its subdomains), or `#queue`. Not
    /// offered (`PrivacyOptions=noetrn`, or a `-bs` user who may not run the queue):
    /// every ETRN gets sendmail's 502, before its argument is looked at. An ETRN with
    /// an argument counts towards the slow-down ([`super::Slowdown`]), as in sendmail.
    fn etrn(&mut self, arg: &str) -> io::Result<Flow> {
        if self.server.privacy.no_etrn || !self.server.etrn_allowed {
            self.reply("502 5.7.0 Sorry, we do not allow this operation")?;
            return Ok(Flow::Continue);
        }
        if arg.is_empty() {
            self.reply("500 5.5.2 Parameter required")?;
            return Ok(Flow::Continue);
        }
        if self.repeated(Repeated::Etrn, "ETRN", true)? == Go::Stop {
            return self.stop_attack();
        }
        let reply = if let Some(q) = arg.strip_prefix('#') {
            format!("459 4.5.4 Queue {q} unknown")
        } else {
            let (dom, sub) = match arg.strip_prefix('@') {
                Some(d) => (d, true),
                None => (arg, false),
            };
            // An absolute name (`example.org.`) is the same domain: a trailing dot does
            // not count, as in every domain list (sendmail takes it too).
            let dom = dom.strip_suffix('.').unwrap_or(dom);
            // A domain name as RFC 5321 writes one (labels of letters, digits and inner
            // hyphens, 63 octets each, 253 in all; or an address literal): what is not
            // can name no queued mail and is never indexed (Postfix's flush(8) refuses
            // it too). sendmail takes any text here (compat-tests/DIFFERENCES.md).
            // An internationalised name (`bücher.example`) as its A-labels; a second
            // trailing dot (`a.example..`) stays and is refused.
            let key = match dom.strip_suffix('.') {
                Some(_) => dom.to_string(),
                None => address::domain_key(dom),
            };
            let valid = address::check_domain(&key).is_ok();
            if !valid {
                "501 5.5.4 Syntax error in ETRN parameter".to_string()
            } else if self.backend.etrn(dom, sub) {
                format!("250 2.0.0 Queuing for node {arg} started")
            } else {
                format!("458 4.5.0 Unable to queue messages for node {arg}")
            }
        };
        self.reply(&reply)?;
        Ok(Flow::Continue)
    }
}

/// The reply refusing an address as written (`553 5.1.3 <a@@b>... Invalid route
/// address`) in a MAIL (`keyword` FROM) or RCPT (TO) path; its status is noted for the
/// `-bs` exit status. A control character gets sendmail's `501 5.1.7` (MAIL) or
/// `501 5.1.3` (RCPT) `Syntax error in mailbox address "a?b@example.org"
/// (non-printable character)`, the path without its brackets (recorded: `addr-ctl-bs`).
fn refuse_address(end: &mut Ending, keyword: &str, shown: &str, e: &address::Invalid) -> String {
    // sendmail's 501 for a control character leaves the exit status alone (0).
    if let address::Invalid::Illegal(_) = e {
        let bare = shown.strip_prefix('<').unwrap_or(shown);
        let bare = bare.strip_suffix('>').unwrap_or(bare);
        let code = if keyword == "FROM" { "5.1.7" } else { "5.1.3" };
        return format!("501 {code} {}", e.message(bare));
    }
    // An unbalanced `<`, `(` or `"` (sendmail's prescan) leaves it alone too
    // (recorded: `bs-rcpt-malformed` exits 0 after three such refusals;
    // `bs-mail-path-open-angle`, `-close-angle`, `-quote-angle`: a sender refused so,
    // then a transaction accepted, exit 0). So do nested brackets, which sendmail takes
    // (`<<a@x>>`, `bs-mail-path-double-angle`) and rsendmail refuses: the session's
    // status is not made a usage error by a refusal sendmail never gives.
    if !matches!(
        e,
        address::Invalid::Unbalanced(_) | address::Invalid::NestedAngle
    ) {
        end.note(e.exit());
    }
    format!(
        "553 {} {}... {}",
        e.status(),
        crate::text::printable(&shortened(shown)),
        e.text()
    )
}

/// sendmail's MAXSHORTSTR: a path this long or longer is shown shortened in replies.
const SHORT_STRING: usize = 203;

/// sendmail's `shortenstring(s, MAXSHORTSTR)`: text of [`SHORT_STRING`] octets or more
/// is shown as its first 100 octets, `...` and its last 100 (`<a{99}...a{87}@example.org>`;
/// compat-tests/cases/bs-addr-too-long). The cuts keep whole characters.
fn shortened(s: &str) -> std::borrow::Cow<'_, str> {
    const HALF: usize = (SHORT_STRING - 3) / 2;
    if s.len() < SHORT_STRING {
        return s.into();
    }
    let mut head = HALF;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - HALF;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    let (Some(a), Some(b)) = (s.get(..head), s.get(tail..)) else {
        return s.into();
    };
    format!("{a}...{b}").into()
}

/// sendmail's limits on a MAIL or RCPT path as written (its `prescan`, recorded in
/// compat-tests/cases/bs-addr-too-long): one token (a word between operator characters
/// such as `.` and `@`, a quoted string; [`address::has_token_too_long`]) over 256 octets
/// is `553 5.1.0 <path>... prescan: token too long`; a path of
/// 256 octets or more, angle brackets included, is `553 5.1.0 <first 255>... Address
/// "<first 255>" too long (255 bytes max)`. `shown` is the path as replies name it.
/// Neither counts for the `-bs` exit status (sendmail's stays 0).
fn too_long(written: &str, shown: &str) -> Option<String> {
    const MAX: usize = address::MAX_ADDRESS;
    let inner = written
        .strip_prefix('<')
        .map(|w| w.strip_suffix('>').unwrap_or(w))
        .unwrap_or(written);
    if written.len() > MAX
        && address::lex(inner).is_ok_and(|tokens| address::has_token_too_long(inner, &tokens))
    {
        return Some(format!(
            "553 5.1.0 {}... prescan: token too long",
            shortened(shown)
        ));
    }
    if written.len() < MAX {
        return None;
    }
    let mut cut = MAX - 1;
    while !written.is_char_boundary(cut) {
        cut -= 1;
    }
    let first = written.get(..cut).unwrap_or_default();
    Some(format!(
        "553 5.1.0 {}... Address \"{first}\" too long ({} bytes max)",
        shortened(first),
        MAX - 1
    ))
}

/// The reply refusing a MAIL (`keyword` FROM) or RCPT (TO) path given as `arg`. A
/// command with no argument at all is scanned to nothing, as sendmail names it
/// (`MAIL`: `scanning ""`; `MAIL FROM:`: `scanning "FROM"`; recorded: `bs-no-args`).
fn refuse_path(end: &mut Ending, arg: &str, keyword: &str, e: &PathError) -> String {
    match e {
        PathError::Syntax => {
            let scanned = if arg.trim().is_empty() { "" } else { keyword };
            format!("501 5.5.2 Syntax error in parameters scanning \"{scanned}\"")
        }
        PathError::Invalid(written, e) => refuse_address(end, keyword, written, e),
    }
}

/// Free bytes for an unprivileged writer on the spool's file system.
fn free_bytes(spool: &Spool) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(&spool.dir).ok()?;
    Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// C's `isspace` in the C locale: SP, HT, LF, VT, FF, CR (sendmail's test for the
/// blanks around a command's argument; Rust's `is_ascii_whitespace` leaves out VT).
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// sendmail's MAXNAME: the longest HELO/EHLO argument taken, in octets.
const MAX_HELO_NAME: usize = 256;

/// The name in a HELO/EHLO argument (its leading blanks gone), or `None` when sendmail's
/// check refuses it (`501 5.0.0 Invalid domain name`; srvrsmtp.c after RFC 1123 §5.2.5,
/// recorded in compat-tests/cases/bs-helo-*): more than [`MAX_HELO_NAME`] octets, a
/// character other than an ASCII letter, digit or one of `[].-_#:` (a control character,
/// NUL included, an 8-bit octet, `/`, `@`, `!`, quotes, ...), or a blank followed by
/// anything but blanks. Trailing blanks end the name. The name is what the `Received:`
/// field says the client called itself, so nothing that could break or forge that field
/// (or a terminal that shows it) gets in. sendmail's `AllowBogusHELO` is not honoured.
fn helo_name(arg: &str) -> Option<&str> {
    if arg.len() > MAX_HELO_NAME {
        return None;
    }
    let end = arg.find(is_c_space).unwrap_or(arg.len());
    let (name, rest) = arg.split_at_checked(end)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "[].-_#:".contains(c);
    (name.chars().all(allowed) && rest.chars().all(is_c_space)).then_some(name)
}

/// Read one command line into `buf` (without its line end): `Some(true)`, `Some(false)`
/// when it is longer than [`MAX_COMMAND_LINE`], `None` at EOF.
fn read_command<R: Read>(r: &mut BufReader<R>, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let n = r
        .by_ref()
        .take(MAX_COMMAND_LINE as u64 + 2)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if n as u64 >= MAX_COMMAND_LINE as u64 + 2 {
            return Ok(Some(false));
        }
        // EOF in the middle of a line: the client went away.
        return Ok(None);
    }
    // -X: the line as it came (`<<<`, its CR kept).
    if crate::traffic::enabled() {
        crate::traffic::line(
            crate::traffic::Dir::In,
            &crate::traffic::redact_command(buf),
        );
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(true))
}

/// What `HELP <topic>` says about each command this server offers (its own words;
/// the topic in any case).
fn help_topic(topic: &str) -> Option<&'static [&'static str]> {
    let lines: &'static [&'static str] = match topic.to_ascii_uppercase().as_str() {
        "HELO" => &["HELO <your host name>", "\tSay who you are (SMTP)."],
        "EHLO" => &[
            "EHLO <your host name>",
            "\tSay who you are and list the extensions offered (ESMTP).",
        ],
        "MAIL" => &[
            "MAIL FROM:<sender> [ <parameters> ]",
            "\tStart a message from the sender; SIZE, BODY, RET and ENVID may follow.",
        ],
        "RCPT" => &[
            "RCPT TO:<recipient> [ <parameters> ]",
            "\tAdd a recipient, once for each; NOTIFY and ORCPT may follow.",
        ],
        "DATA" => &[
            "DATA",
            "\tSend the message, ended by a line with only a dot.",
        ],
        "RSET" => &["RSET", "\tForget the message begun."],
        "NOOP" => &["NOOP", "\tDo nothing."],
        "QUIT" => &["QUIT", "\tEnd the session."],
        "HELP" => &[
            "HELP [ <topic> ]",
            "\tList the commands, or say what one does.",
        ],
        "VRFY" => &[
            "VRFY <recipient>",
            "\tNot answered here: send RCPT to see whether a recipient is taken.",
        ],
        "ETRN" => &[
            "ETRN <domain> | @<domain> | #<queue>",
            "\tAsk for the mail waiting for a domain to be sent now.",
        ],
        _ => return None,
    };
    Some(lines)
}

const HELP: &[&str] = &[
    concat!("This is rsendmail version ", env!("CARGO_PKG_VERSION")),
    "Topics:",
    "\tHELO\tEHLO\tMAIL\tRCPT\tDATA",
    "\tRSET\tNOOP\tQUIT\tHELP\tVRFY",
    "\tETRN",
    "For local information send email to Postmaster at your site.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_decides_which_commands_may_come() {
        const HELO_FIRST: &str = "503 5.0.0 Polite people say HELO first";
        const SENDER_GIVEN: &str = "503 5.5.0 Sender already specified";
        const MAIL_FIRST: &str = "503 5.0.0 Need MAIL before RCPT";
        const NO_MAIL: &str = "503 5.0.0 Need MAIL command";
        const NO_RCPT: &str = "503 5.0.0 Need RCPT (recipient)";
        // phase: MAIL, RCPT, DATA
        for (phase, mail, rcpt, data) in [
            (
                Phase::Greeting,
                Some(HELO_FIRST),
                Some(MAIL_FIRST),
                Some(NO_MAIL),
            ),
            (Phase::Helo, None, Some(MAIL_FIRST), Some(NO_MAIL)),
            (Phase::Mail, Some(SENDER_GIVEN), None, Some(NO_RCPT)),
            (Phase::Rcpt, Some(SENDER_GIVEN), None, None),
        ] {
            let p = Privacy {
                need_mail_helo: true,
                ..Privacy::default()
            };
            assert_eq!(phase.refusal(Command::Mail, &p), mail, "{phase:?}");
            assert_eq!(phase.refusal(Command::Rcpt, &p), rcpt, "{phase:?}");
            assert_eq!(phase.refusal(Command::Data, &p), data, "{phase:?}");
            // Without needmailhelo, MAIL may come first.
            let open = Privacy::default();
            let mail_open = if phase == Phase::Greeting { None } else { mail };
            assert_eq!(phase.refusal(Command::Mail, &open), mail_open, "{phase:?}");
            for c in [
                Command::Helo,
                Command::Ehlo,
                Command::Rset,
                Command::Noop,
                Command::Quit,
                Command::Vrfy,
                Command::Expn,
                Command::Help,
                Command::Etrn,
                Command::Verb,
                Command::NotImplemented,
                Command::Unrecognized,
            ] {
                assert_eq!(phase.refusal(c, &p), None, "{phase:?} {c:?}");
            }
        }
    }

    /// sendmail's length rules for a path, at their edges (recorded in
    /// compat-tests/cases/bs-addr-too-long), and no panic on characters of any width.
    #[test]
    fn long_paths_are_shortened_and_refused_as_sendmail_does() {
        let path = |n: usize| format!("<{}@example.org>", "a".repeat(n - 12));
        // 202 octets shown whole, 203 shortened to 100 + ... + 100.
        assert_eq!(shortened(&path(200)), path(200));
        let s = shortened(&path(201)).into_owned();
        assert_eq!(
            s,
            format!("<{}...{}@example.org>", "a".repeat(99), "a".repeat(87))
        );
        // 255 octets with the brackets pass; 256 are too long.
        assert_eq!(too_long(&path(253), &path(253)), None);
        let long = path(254);
        let first = format!("<{}@example.org", "a".repeat(242));
        assert_eq!(
            too_long(&long, &long),
            Some(format!(
                "553 5.1.0 {}... Address \"{first}\" too long (255 bytes max)",
                shortened(&first)
            ))
        );
        // A long dotted domain of short labels is no long token: the path is too long
        // (recorded: bs-path-edges).
        let dotted = format!("<b@{}.example>", vec!["c".repeat(60); 5].join("."));
        assert!(too_long(&dotted, &dotted).is_some_and(|r| r.contains("too long (255 bytes max)")));
        // A token over 256 octets is refused first, naming the whole path.
        let token = format!("<{}@example.org>", "a".repeat(257));
        assert_eq!(
            too_long(&token, &token),
            Some(format!(
                "553 5.1.0 {}... prescan: token too long",
                shortened(&token)
            ))
        );
        for c in ["é", "€", "😀", "a"] {
            for n in 250..262 {
                let w = format!("<{}@x>", c.repeat(n));
                let _ = too_long(&w, &w);
                let short = shortened(&w);
                assert!(short.len() <= w.len());
            }
        }
    }

    /// sendmail 8.17's checksmtpattack: nothing below the limit; at the limit one
    /// second (all of it waited at once); then doubling, with `count / limit` seconds
    /// of it at once, up to 240 seconds in all.
    #[test]
    fn repeated_commands_wait_as_in_sendmail() {
        assert_eq!(waits(19, 20), None);
        assert_eq!(waits(5, 0), None);
        assert_eq!(waits(20, 20), Some((1, 0)));
        assert_eq!(waits(21, 20), Some((1, 1)));
        assert_eq!(waits(22, 20), Some((1, 3)));
        assert_eq!(waits(27, 20), Some((1, 127)));
        assert_eq!(waits(28, 20), Some((1, 239)));
        assert_eq!(waits(40, 20), Some((2, 238)));
        assert_eq!(
            waits(u32::MAX, 20),
            Some((u64::from(u32::MAX / 20), MAX_WAIT))
        );
        // HELO (3): 1, 2, 4, 8 seconds for the 3rd to the 6th.
        let helo: Vec<u64> = (3..=6)
            .filter_map(|n| waits(n, super::super::Slowdown::default().helo))
            .map(|(a, b)| a + b)
            .collect();
        assert_eq!(helo, [1, 2, 4, 8]);
        assert_eq!(waits(1, 1), Some((1, 0)));
        assert_eq!(waits(2, 1), Some((2, 0)));
        assert_eq!(waits(3, 1), Some((3, 1)));
    }

    #[test]
    fn verbs() {
        for (verb, command) in [
            ("HELO", Command::Helo),
            ("EHLO", Command::Ehlo),
            ("MAIL", Command::Mail),
            ("RCPT", Command::Rcpt),
            ("DATA", Command::Data),
            ("RSET", Command::Rset),
            ("NOOP", Command::Noop),
            ("QUIT", Command::Quit),
            ("VRFY", Command::Vrfy),
            ("EXPN", Command::Expn),
            ("HELP", Command::Help),
            ("ETRN", Command::Etrn),
            ("VERB", Command::Verb),
            ("STARTTLS", Command::NotImplemented),
            ("SEND", Command::NotImplemented),
            ("TURN", Command::NotImplemented),
            ("BDAT", Command::Unrecognized),
            ("ATRN", Command::Unrecognized),
            ("ONEX", Command::Unrecognized),
            ("XUSR", Command::Unrecognized),
            // Upper-cased by the caller.
            ("helo", Command::Unrecognized),
            ("", Command::Unrecognized),
            ("MAILX", Command::Unrecognized),
        ] {
            assert_eq!(Command::of(verb), command, "{verb:?}");
        }
    }
}
