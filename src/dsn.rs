//! Delivery status notifications (RFC 3464): the bounce, the delay warning and the
//! success report, queued as new entries from the null sender.
//!
//! One report covers the recipients of one entry that share a return address and an
//! outcome. Its parts: a human-readable explanation (in sendmail's words), the
//! `message/delivery-status` part with per-message and per-recipient fields, and the
//! original message (`message/rfc822`, or `text/rfc822-headers` when the sender asked
//! for headers only with `-R hdrs` / `RET=HDRS`).
//!
//! A report is queued in one form, its 8-bit text as it is; the form a server is sent
//! (7-bit, or RFC 6533's internationalized report) is decided when it is sent, by
//! [`form`].
//!
//! The returned header lies in the report's body, where the SMTP client's folding of
//! header fields does not reach, and its body rule (CRLF SP after 2,040 octets) would cut a
//! long `To:` or `References:` anywhere. So its over-long lines are folded here, as the
//! report is written, by the same function ([`crate::message::wire::fold_header_line`]):
//! they stay header fields of the returned message. The returned body is copied as
//! queued; on the wire it follows the body rule like any other.
//!
//! The entry a report is about may be damaged: its text and numbers are written as they
//! are, never cut by byte index (the lints below keep it so), so no entry makes a
//! report panic.
//!
//! Every value written into the report's header, its explanation and its
//! `message/delivery-status` fields goes through [`crate::text::printable`] here (the
//! private `one_line`), whatever its source: no value can hold a CR, an LF or a NUL that
//! would end its line and start a forged field (`Action: delivered`) or a forged
//! transcript line, nor any other control character. A server's replies and the texts
//! made up by local delivery are already printable when they get here; this is the last
//! defence, for a reason, an address or an ENVID from anywhere else. A control character
//! becomes `?`: the report is still sent. The returned message is copied as queued.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

pub mod form;

use std::fmt::Write as _;
use std::io::{self, BufReader, Read, Write};

use crate::clock;
use crate::exit::Fatal;
use crate::spool::Spool;
use crate::spool::entry::{Envelope, Recipient};
use crate::status::EnhancedStatus;

/// What a report says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Permanent failure: the bounce.
    Failure,
    /// Still trying after `Timeout.queuewarn`: the warning.
    Delay,
    /// Delivered (or relayed to a server without DSN) and NOTIFY=SUCCESS asked for it.
    Success,
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Failure => "failure",
            Kind::Delay => "delay",
            Kind::Success => "success",
        }
    }
}

/// One recipient's lines in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptReport {
    /// The address delivery was attempted to (qualified).
    pub final_recipient: String,
    /// ORCPT as given (`rfc822;addr`), if any.
    pub original_recipient: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed`, `expanded`.
    pub action: &'static str,
    /// The enhanced status code (`5.1.1`).
    pub status: EnhancedStatus,
    /// The host that gave the reply (`mx.example.org`), if remote.
    pub remote_mta: Option<String>,
    /// The reply, e.g. `550 5.1.1 <bob@example.org>... User unknown`.
    pub diagnostic: Option<String>,
    /// `SMTP` for a server's reply, `X-Unix` for local delivery (sendmail's mailer
    /// diagnostic types).
    pub diagnostic_type: &'static str,
    /// For a server's refusal: the command, the reply and sendmail's line for it, shown
    /// under "Transcript of session follows" (sendmail's wording).
    pub transcript: Vec<String>,
    /// The address as the list of the explanation shows it, when not `final_recipient`:
    /// as the sender gave it (`nosuchuser`; compat case bounce-local-unknown).
    pub listed: Option<String>,
    /// What follows the address in the list of the explanation, in parentheses, in place
    /// of its reason line: `relayed to non-DSN-aware mailer` (sendmail's).
    pub comment: Option<&'static str>,
    /// For a target of an alias (`.forward`, `:include:`): the address delivery was
    /// attempted to, when `final_recipient` is the address the expansion began with
    /// (`X-Actual-Recipient:`), and the recipient it was expanded from, as written
    /// (`(expanded from: list)` in the explanation); sendmail's, compat case
    /// alias-list-member-reject5.
    pub actual_recipient: Option<String>,
    pub expanded_from: Option<String>,
    pub last_attempt: i64,
}

/// A report about one entry.
pub struct Report<'a> {
    pub kind: Kind,
    /// This host (Reporting-MTA, MAILER-DAEMON's domain).
    pub host: &'a str,
    pub original: &'a Envelope,
    pub recipients: Vec<RcptReport>,
    /// Transcript lines after the recipients' own (`Message could not be delivered for
    /// 5 days`).
    pub notes: Vec<String>,
    /// Return only the header of the original.
    pub headers_only: bool,
    /// For delay warnings: how long the message has waited, as words (`4 hours`).
    pub waited: Option<String>,
    /// `O PrivacyOptions=noactualrecipient`: no `X-Actual-Recipient:` field
    /// (compat-tests/cases/privacy-noactualrecipient).
    pub no_actual_recipient: bool,
    /// The part returned (the header only or the whole message, see `headers_only`)
    /// holds 8-bit octets: the report says so as sendmail does, `BODY=8BITMIME` in its
    /// envelope and `Content-Transfer-Encoding: 8bit` in its header and on that part
    /// (compat case bounce-8bit-header; RFC 6152 §3, RFC 2045 §6.1). See [`has_8bit`].
    pub eight_bit: bool,
    /// The report of an entry `rsendmail-admin bounce` returned: who asked, in the
    /// words of its diagnostic ("by the administrator", "at its sender's request (user
    /// alice)"), kept in the report's entry for `show`
    /// ([`crate::spool::entry::Envelope::returned_by`]).
    pub returned_by: Option<&'a str>,
}

/// Whether the part a report returns holds an octet over 127: the first `header_bytes`
/// of `original` when `headers_only`, else all of it (read in 64 KiB pieces). A read
/// error counts as 8-bit: declaring 8-bit text that is 7-bit harms nothing.
pub fn returned_has_8bit(original: &mut dyn Read, headers_only: bool, header_bytes: u64) -> bool {
    let limit = if headers_only { header_bytes } else { u64::MAX };
    has_8bit(&mut original.take(limit)).unwrap_or(true)
}

/// Whether `r` holds an octet over 127 (read to its end, in 64 KiB pieces).
fn has_8bit(r: &mut dyn Read) -> io::Result<bool> {
    use std::io::BufRead as _;
    // A BufReader's buffer: a file reads into it without zeroing it first.
    let mut r = io::BufReader::with_capacity(64 * 1024, r);
    loop {
        let n = match r.fill_buf()? {
            [] => return Ok(false),
            chunk if !chunk.is_ascii() => return Ok(true),
            chunk => chunk.len(),
        };
        r.consume(n);
    }
}

/// Whether a report returns the original's header only (`text/rfc822-headers`) rather
/// than the whole message, from the sender's `ret` (`-R` / `RET=`: `HDRS` or `FULL`),
/// `O PrivacyOptions=nobodyreturn` and dma's `FULLBOUNCE`:
/// - `nobodyreturn`: the header only, whatever the sender asked (sendmail's rule;
///   compat case reason-reject5-full-v);
/// - otherwise `RET=HDRS` the header only, `RET=FULL` the whole message;
/// - otherwise `FULLBOUNCE` the whole message, and without it the header only: dma's
///   meaning of the keyword, which applies to every rsendmail.conf (a dma.conf read
///   unchanged) and to no config file at all. sendmail's built-in default would return
///   the whole message; Debian's sendmail.cf (nobodyreturn) returns the header only.
pub fn headers_only(ret: Option<&str>, no_body_return: bool, full_bounce: bool) -> bool {
    match ret {
        _ if no_body_return => true,
        Some("HDRS") => true,
        Some("FULL") => false,
        _ => !full_bounce,
    }
}

/// A report's `To:` as written: the recipient's domain with A-labels
/// (`s@bücher.example` → `s@xn--bcher-kva.example`), as every header field rsendmail
/// writes itself, so that only a recipient that needs SMTPUTF8 anyway (a non-ASCII
/// local part) puts 8-bit octets there.
fn to_field(to: &str) -> std::borrow::Cow<'_, str> {
    crate::message::address::ascii_address(to).unwrap_or(std::borrow::Cow::Borrowed(to))
}

/// `s` as one line of printable text (see the module doc).
fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    crate::text::printable(s)
}

/// [`one_line`], and each character outside US-ASCII as `?` too: for the diagnostic,
/// which RFC 3464 (§2.3.6) keeps US-ASCII. An administrator's `bounce --reason` may
/// hold any text; the explanation part's `(reason: ...)` line keeps it as it is
/// (printable: [`one_line`]), the part then declared UTF-8 8-bit text.
fn ascii_line(s: &str) -> std::borrow::Cow<'_, str> {
    match one_line(s) {
        std::borrow::Cow::Borrowed(b) if b.is_ascii() => std::borrow::Cow::Borrowed(b),
        t => std::borrow::Cow::Owned(
            t.chars()
                .map(|c| if c.is_ascii() { c } else { '?' })
                .collect(),
        ),
    }
}

/// RFC 5322 date for `t`.
fn date(t: i64) -> String {
    clock::rfc5322(&clock::local(t))
}

/// The submitting user a report's entry records: this program.
pub const REPORT_USER: &str = "MAILER-DAEMON";

impl Report<'_> {
    /// A failure of a message from the null sender, which goes to the postmaster:
    /// sendmail's postmaster notice (its `RTSF_PM_BOUNCE` report; recorded:
    /// compat-tests/differences/xlog-v-data5-double).
    fn postmaster_notice(&self) -> bool {
        self.kind == Kind::Failure && self.original.sender.is_empty()
    }

    fn subject(&self) -> String {
        match self.kind {
            Kind::Failure if self.postmaster_notice() => {
                "Postmaster notify: see transcript for details".into()
            }
            Kind::Failure => "Returned mail: see transcript for details".into(),
            Kind::Delay => format!(
                "Warning: could not send message for past {}",
                one_line(self.waited.as_deref().unwrap_or("some time"))
            ),
            Kind::Success => "Return receipt".into(),
        }
    }

    /// The whole report message (header and body), the original read from `original`
    /// (its header block and body, as queued).
    pub fn write(
        &self,
        id: &str,
        now: i64,
        to: &str,
        original: &mut dyn Read,
        out: &mut dyn Write,
    ) -> io::Result<u64> {
        let h = self.header(id, now, &[to]);
        out.write_all(h.as_bytes())?;
        Ok(h.len() as u64 + self.write_body(now, original, out)?)
    }

    /// The MIME boundary of a report made at `now`.
    fn boundary(&self, now: i64) -> String {
        format!(
            "{}.{now}/{}",
            one_line(&self.original.id),
            one_line(self.host)
        )
    }

    /// The report's header block, the blank line included. Its `To:` names the
    /// recipient with A-labels ([`to_field`]).
    /// Several recipients get a `To:` field each, in their order (sendmail's, with the
    /// postmaster's copy: `prog-exit-70-postmaster-odi`); a bare local name is
    /// qualified with the host name there (`postmaster@host`).
    fn header(&self, id: &str, now: i64, to: &[&str]) -> String {
        let eight_bit = to.iter().any(|t| self.eight_bit_report(now, t));
        let boundary = self.boundary(now);
        let (id, host) = (one_line(id), one_line(self.host));
        let to: Vec<String> = to
            .iter()
            .map(|t| {
                let t = to_field(t);
                if to.len() > 1 && !t.contains('@') {
                    format!("{}@{host}", one_line(&t))
                } else {
                    one_line(&t).into_owned()
                }
            })
            .collect();
        let mut h = String::new();
        let _ = writeln!(
            h,
            "Received: from localhost (localhost)\n\tby {host} ({}) id {id};\n\t{}",
            crate::PRODUCT,
            date(now)
        );
        let _ = writeln!(h, "Date: {}", date(now));
        let _ = writeln!(h, "From: Mail Delivery Subsystem <MAILER-DAEMON@{host}>");
        let _ = writeln!(
            h,
            "Message-Id: <{}.{id}@{host}>",
            clock::stamp12(&clock::local(now)),
        );
        for to in &to {
            let _ = writeln!(h, "To: {to}");
        }
        let _ = writeln!(h, "MIME-Version: 1.0");
        let _ = writeln!(
            h,
            "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\""
        );
        if eight_bit {
            let _ = writeln!(h, "Content-Transfer-Encoding: 8bit");
        }
        let _ = writeln!(h, "Subject: {}", self.subject());
        // sendmail's words: `return-receipt` for a receipt (compat case
        // receipt-success-odi), `warning-timeout` for a delay warning
        // (delay-queuewarn-reject4).
        let why = match self.kind {
            _ if self.postmaster_notice() => "postmaster-notification",
            Kind::Success => "return-receipt",
            Kind::Delay => "warning-timeout",
            k => k.word(),
        };
        let _ = writeln!(h, "Auto-Submitted: auto-generated ({why})");
        h.push('\n');
        h
    }

    /// Whether the returned part is 8-bit: [`Report::eight_bit`], or a whole message
    /// that came as `BODY=8BITMIME`.
    fn eight_bit_body(&self) -> bool {
        self.eight_bit
            || (self.original.body_type.as_deref() == Some("8BITMIME") && !self.headers_only)
    }

    /// Whether any octet of the report is 8-bit: the returned part
    /// ([`Report::eight_bit_body`]), or the report's own text — an address with a
    /// non-ASCII local part or U-labels in the explanation, the transcript or the
    /// `message/delivery-status` fields (`Final-Recipient: RFC822; jörg@example.org`),
    /// the `To:` field, the returned `Return-Path:`. Such a report is declared as
    /// sendmail declares it, `BODY=8BITMIME` in its envelope (recorded:
    /// `dsn-utf8-rcpt`), and says `Content-Transfer-Encoding: 8bit` in its header and
    /// on each part that holds 8-bit octets (RFC 2045 §6.1: no such field means 7bit).
    pub fn eight_bit_report(&self, now: i64, to: &str) -> bool {
        self.eight_bit_body() || !to_field(to).is_ascii() || !self.parts(now).is_ascii()
    }

    /// The report's body up to the returned message's own text: the explanation, the
    /// delivery-status part, and the returned part's heading and `Return-Path:`.
    fn parts(&self, now: i64) -> String {
        let env = self.original;
        let boundary = self.boundary(now);
        let eight_bit = self.eight_bit_body();
        let mut outer = String::new();
        let _ = writeln!(outer, "This is a MIME-encapsulated message\n\n--{boundary}");
        // Each part's text in `b`, its header fields in `outer` before it.
        let mut b = String::from("\n");
        // Only a warning that reports no failure says it is one (sendmail's; recorded:
        // `delay-failure-mixed-q`).
        let (ok, failed): (Vec<&RcptReport>, Vec<&RcptReport>) = self
            .recipients
            .iter()
            .filter(|r| r.action != LIST_DELIVERED)
            .partition(|r| r.is_success());
        if self.kind == Kind::Delay && !failed.iter().any(|r| r.action == "failed") {
            b.push_str(concat!(
                "    **********************************************\n",
                "    **      THIS IS A WARNING MESSAGE ONLY      **\n",
                "    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n",
                "    **********************************************\n\n"
            ));
        }
        // A report this program made came from `localhost` (sendmail's words for its
        // own); the postmaster's notice names the failed message's queue ID too.
        let from = if env.user == REPORT_USER {
            "localhost".to_string()
        } else {
            format!("{}@localhost", one_line(&env.user))
        };
        let _ = writeln!(
            b,
            "The original message was received at {}\nfrom {from}",
            date(env.created),
        );
        if self.postmaster_notice() {
            let _ = writeln!(b, "with id {}", one_line(&env.id));
        }
        b.push('\n');
        // A delay warning lists no addresses: its transcript tells what is delayed
        // (compat case delay-queuewarn-reject4).
        // One report tells an attempt's failures, then the successes asked for
        // (NOTIFY=SUCCESS), each in a section of its own; the delayed recipients are
        // told by the transcript only (sendmail's one report; recorded:
        // `N-mixed-R-full-odi`, `delay-failure-mixed-q`).
        let failed: Vec<&RcptReport> = failed
            .into_iter()
            .filter(|r| r.action == "failed")
            .collect();
        let mut sections: Vec<(&str, Vec<&RcptReport>)> = Vec::new();
        if !failed.is_empty() {
            sections.push(("The following addresses had permanent fatal errors", failed));
        }
        if !ok.is_empty() {
            sections.push((
                "The following addresses had successful delivery notifications",
                ok,
            ));
        }
        let heading = (!sections.is_empty()).then_some(());
        for (k, (heading, recipients)) in sections.into_iter().enumerate() {
            if k > 0 {
                b.push('\n');
            }
            let _ = writeln!(b, "   ----- {heading} -----");
            for r in recipients {
                let listed = one_line(r.listed.as_deref().unwrap_or(&r.final_recipient));
                if let Some(c) = r.comment {
                    let _ = writeln!(b, "{listed}  ({c})");
                } else {
                    let _ = writeln!(b, "{listed}");
                    if let Some(d) = &r.diagnostic {
                        let _ = writeln!(b, "    (reason: {})", one_line(reason_of(r, d)));
                    }
                }
                if let Some(f) = &r.expanded_from {
                    let _ = writeln!(b, "    (expanded from: {})", one_line(f));
                }
            }
        }
        if self.recipients.iter().any(|r| !r.transcript.is_empty()) || !self.notes.is_empty() {
            if heading.is_some() {
                b.push('\n');
            }
            b.push_str("   ----- Transcript of session follows -----\n");
            let mut talking_to: Option<&str> = None;
            for r in self.recipients.iter().filter(|r| !r.transcript.is_empty()) {
                // A dialogue with a server starts with the server named once.
                if let Some(mta) = r.remote_mta.as_deref()
                    && talking_to != Some(mta)
                    && r.transcript.first().is_some_and(|l| l.starts_with(">>> "))
                {
                    let _ = writeln!(b, "... while talking to {}:", one_line(mta));
                    talking_to = Some(mta);
                }
                for l in &r.transcript {
                    let _ = writeln!(b, "{}", one_line(l));
                }
            }
            for l in &self.notes {
                let _ = writeln!(b, "{}", one_line(l));
            }
        }
        // The explanation part: sendmail's, with no header of its own, unless it holds
        // 8-bit text (a UTF-8 address), which it then declares.
        let mut out = outer;
        if !b.is_ascii() {
            out.push_str("Content-Type: text/plain; charset=utf-8\n");
            out.push_str("Content-Transfer-Encoding: 8bit\n");
        }
        out.push_str(&b);
        let _ = writeln!(out, "\n--{boundary}\nContent-Type: message/delivery-status");
        let mut b = String::from("\n");
        // RFC 3464 §2.2's order, and sendmail's (compat case V-envid-bounce).
        if let Some(e) = &env.envid {
            let _ = writeln!(b, "Original-Envelope-Id: {}", one_line(e));
        }
        let _ = writeln!(b, "Reporting-MTA: dns; {}", one_line(self.host));
        let _ = writeln!(b, "Arrival-Date: {}", date(env.created));
        for r in &self.recipients {
            b.push('\n');
            let fin = one_line(&r.final_recipient);
            if let Some(o) = &r.original_recipient {
                let _ = writeln!(b, "Original-Recipient: {}", one_line(o));
            }
            let _ = writeln!(b, "Final-Recipient: RFC822; {fin}");
            let actual = r.actual_recipient.as_deref().map_or(fin.clone(), one_line);
            // A list's `<>` names no one: sendmail gives no X-Actual-Recipient for it
            // (recorded: include-odd-addr-odi, forward-odd-addr-odi).
            let names_no_one = actual == "<>" || actual.starts_with("<>@");
            if !self.no_actual_recipient && !names_no_one {
                // A program or file is named in the prog and file mailers' address type
                // (recorded: `bounce-exp-inc-user-prog-odi`, `file-perm`); a list file
                // refused is named as a local address (`/path@host`,
                // `bounce-exp-inc-writable-odi`).
                let local_form = actual.trim_start_matches('"').starts_with(['|', '/']);
                let kind = if local_form && !actual.ends_with(&format!("@{}", self.host)) {
                    "X-Unix"
                } else {
                    "rfc822"
                };
                // Text that is no address (a malformed `.forward` or list line:
                // `bad address <`) is not written as one: sendmail's report names no
                // such target (recorded with a malformed `.forward`), and the rfc822
                // type promises an address (RFC 3464 §2.3.2).
                if local_form || crate::message::address::check_mailbox(&actual).is_ok() {
                    let _ = writeln!(b, "X-Actual-Recipient: {kind}; {actual}");
                }
            }
            let _ = writeln!(b, "Action: {}", one_line(r.action));
            let _ = writeln!(b, "Status: {}", r.status);
            if let Some(m) = &r.remote_mta {
                let _ = writeln!(b, "Remote-MTA: DNS; {}", one_line(m));
            }
            if let Some(d) = &r.diagnostic {
                let _ = writeln!(
                    b,
                    "Diagnostic-Code: {}; {}",
                    r.diagnostic_type,
                    ascii_line(d)
                );
            }
            let _ = writeln!(b, "Last-Attempt-Date: {}", date(r.last_attempt));
        }
        if !b.is_ascii() {
            out.push_str("Content-Transfer-Encoding: 8bit\n");
        }
        out.push_str(&b);
        let mut b = out;
        // A UTF-8 envelope sender makes the returned part's `Return-Path:` 8-bit too.
        let eight_bit = eight_bit || !env.sender.is_ascii();
        let _ = writeln!(b, "\n--{boundary}");
        if self.headers_only {
            let _ = writeln!(b, "Content-Type: text/rfc822-headers");
            if eight_bit {
                let _ = writeln!(b, "Content-Transfer-Encoding: 8bit");
            }
            b.push('\n');
        } else {
            let _ = writeln!(b, "Content-Type: message/rfc822");
            if eight_bit {
                let _ = writeln!(b, "Content-Transfer-Encoding: 8bit");
            }
            b.push('\n');
        }
        // The original as its sender sent it: the envelope sender first, as sendmail
        // returns it.
        let _ = writeln!(b, "Return-Path: <{}>", one_line(&env.sender));
        b
    }

    /// The report's body: [`Report::parts`], then the original, streamed from
    /// `original` (never held in memory).
    fn write_body(
        &self,
        now: i64,
        original: &mut dyn Read,
        out: &mut dyn Write,
    ) -> io::Result<u64> {
        let env = self.original;
        let boundary = self.boundary(now);
        let b = self.parts(now);
        out.write_all(b.as_bytes())?;
        let mut n = b.len() as u64;
        // The original: its header block (up to the blank line), then the body unless
        // headers only. Always ending with a newline before the closing boundary.
        let limited: Box<dyn Read> = if self.headers_only {
            Box::new(original.take(env.header_bytes.saturating_sub(1)))
        } else {
            Box::new(original)
        };
        let mut r = BufReader::with_capacity(64 * 1024, limited);
        let mut w = Tally {
            out,
            n: 0,
            last: b'\n',
        };
        crate::message::wire::copy_folded_header(&mut r, &mut w)?;
        io::copy(&mut r, &mut w)?;
        let Tally {
            out,
            n: copied,
            last,
        } = w;
        n += copied;
        let tail = format!(
            "{}\n--{boundary}--\n\n",
            if last == b'\n' { "" } else { "\n" }
        );
        out.write_all(tail.as_bytes())?;
        n += tail.len() as u64;
        Ok(n)
    }

    /// Queue the report to `to` (empty `to` is never given: see [`return_address`]).
    /// `double`: the report is about a report, sent to the postmaster; a failure of
    /// that one is only logged. Returns the new entry's id.
    pub fn queue(
        &self,
        spool: &Spool,
        to: &str,
        double: bool,
        original: &mut dyn Read,
    ) -> Result<String, Fatal> {
        self.queue_to(spool, &[to], double, original)
    }

    /// [`Report::queue`] to several recipients (not empty), their `To:` fields in
    /// this order. The entry holds them in the reverse order, as sendmail queues a
    /// report's recipients: its transaction then names them in this order (RCPT of
    /// the postmaster's copy first; recorded: `prog-exit-70-postmaster-odi`).
    pub fn queue_to(
        &self,
        spool: &Spool,
        to: &[&str],
        double: bool,
        original: &mut dyn Read,
    ) -> Result<String, Fatal> {
        self.queue_keyed(spool, to, double, original, None)
            .map(|(id, _)| id)
    }

    /// [`Report::queue_to`] as report `key` of entry `origin` (`Some((origin, key))`,
    /// see [`crate::spool::entry::Envelope::report_of`]): its ID is derived from them
    /// ([`crate::spool::report_queue_id`]) and its entry made only when no entry of that
    /// ID holds that key, so that a run repeating the step of one that died after the
    /// report's commit finds it rather than queuing it again. Returns the ID and whether
    /// the report was queued already.
    pub fn queue_keyed(
        &self,
        spool: &Spool,
        to: &[&str],
        double: bool,
        original: &mut dyn Read,
        key: Option<(&str, &str)>,
    ) -> Result<(String, bool), Fatal> {
        let now = clock::now();
        let derived = key.and_then(|(o, k)| crate::spool::report_queue_id(o, k).map(|id| (id, k)));
        let mut named = None;
        if let Some((id, k)) = &derived {
            // Held since (`rsendmail-admin hold`) counts as queued.
            let held = spool.held();
            match spool.read_entry(id).or_else(|_| held.read_entry(id)) {
                Ok(e) if e.envelope.report_of.as_deref() == Some(*k) => {
                    return Ok((id.clone(), true));
                }
                // Another entry of that ID (a hash that met another's): a new ID.
                Ok(_) => {}
                Err(_) if held.qf_path(id).exists() => {}
                Err(_) => named = spool.begin_as(id, now)?,
            }
        }
        let mut entry = match named {
            Some(e) => e,
            None => spool.begin(now)?,
        };
        let id = entry.id.clone();
        let report_of = derived
            .as_ref()
            .filter(|(d, _)| *d == id)
            .map(|(_, k)| k.to_string());
        let head = self.header(&id, now, to);
        let env = Envelope {
            id: id.clone(),
            created: now,
            sender: String::new(),
            recipients: to.iter().rev().map(|t| Recipient::new(*t)).collect(),
            user: REPORT_USER.into(),
            uid: nix::unistd::getuid().as_raw(),
            header_bytes: head.len() as u64,
            body_type: to
                .iter()
                .any(|t| self.eight_bit_report(now, t))
                .then(|| "8BITMIME".to_string()),
            report: Some(if double { "double" } else { self.kind.word() }.to_string()),
            report_of,
            returned_by: self.returned_by.map(str::to_string),
            // The report is the original's owner's, whichever run queued it.
            report_owner: self.original.owner(),
            ..Envelope::default()
        };
        let w = entry.writer();
        let e = |e: io::Error| Fatal::new(crate::exit::Sysexit::IoErr, format!("{id}: {e}"));
        w.write_all(env.to_text().as_bytes()).map_err(e)?;
        w.write_all(head.as_bytes()).map_err(e)?;
        // The body is logged by `-X` as written (`>>> This is a MIME-encapsulated
        // message` ...), as sendmail logs the report's text it writes (compat case
        // xlog-reject5); the header is not.
        self.write_body(now, original, &mut crate::traffic::WriteTee::new(w))
            .map_err(e)?;
        entry.commit(&env)?;
        crate::log::submitted(&env, spool.qf_path(&id).metadata().map(|m| m.len()).ok());
        Ok((id, false))
    }
}

/// A writer that counts what passes and keeps its last octet.
struct Tally<'a> {
    out: &'a mut dyn Write,
    n: u64,
    last: u8,
}

impl Write for Tally<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.out.write(buf)?;
        if let Some(&last) = buf.get(..k).and_then(<[u8]>::last) {
            self.n += k as u64;
            self.last = last;
        }
        Ok(k)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Where reports about `r` of `env` go: the recipient's own sender (`owner-list`), else
/// the entry's; `None` for the null sender (the report itself could not be delivered).
pub fn return_address<'a>(env: &'a Envelope, r: &'a Recipient) -> Option<&'a str> {
    let s = env.owner_sender(r).unwrap_or(&env.sender);
    (!s.is_empty()).then_some(s)
}

/// Whether the recipient's NOTIFY asks for a report of this kind. Without NOTIFY,
/// failures and delays are reported (RFC 3461 4.1), successes not.
pub fn wanted(r: &Recipient, kind: Kind) -> bool {
    match &r.notify {
        None => kind != Kind::Success,
        Some(n) => {
            let n = n.to_ascii_uppercase();
            !n.contains("NEVER")
                && n.split(',').any(|k| {
                    k.trim()
                        == match kind {
                            Kind::Failure => "FAILURE",
                            Kind::Delay => "DELAY",
                            Kind::Success => "SUCCESS",
                        }
                })
        }
    }
}

/// The action of a list with an owner in the report to an owner who sent the message:
/// named in the `message/delivery-status` part only, not among the explanation's
/// addresses (recorded: `owner-list-self-unknown-q`).
pub const LIST_DELIVERED: &str = "delivered (to mailing list)";
/// The reason line's text for a Diagnostic-Code: a mailer's exit status alone
/// (`X-Unix; 67`, a `|program`'s) is told by sendmail's words for it (`User unknown`;
/// the number itself when it is no sysexits code), any other the Diagnostic-Code's own.
fn reason_of<'a>(r: &RcptReport, diagnostic: &'a str) -> &'a str {
    match diagnostic
        .parse::<u8>()
        .ok()
        .and_then(crate::exit::Sysexit::from_code)
    {
        Some(x) if r.diagnostic_type == "X-Unix" && x != crate::exit::Sysexit::Ok => x.text(),
        _ => diagnostic,
    }
}

impl RcptReport {
    /// Whether it reports a success (`delivered`, `relayed`, `expanded`), not a failure
    /// or a delay.
    pub fn is_success(&self) -> bool {
        !self.action.starts_with("failed") && !self.action.starts_with("delayed")
    }
}

/// A recipient's report as the tests build it: `failed`, with `status` and the reply
/// `diagnostic` of `diagnostic_type`, nothing else; a test changes what it needs with
/// `..RcptReport::failed(...)`.
#[cfg(test)]
impl RcptReport {
    pub(crate) fn failed(
        final_recipient: &str,
        status: EnhancedStatus,
        diagnostic: &str,
        diagnostic_type: &'static str,
    ) -> RcptReport {
        RcptReport {
            final_recipient: final_recipient.into(),
            original_recipient: None,
            action: "failed",
            status,
            remote_mta: None,
            diagnostic: Some(diagnostic.into()),
            diagnostic_type,
            transcript: Vec::new(),
            listed: None,
            comment: None,
            actual_recipient: None,
            expanded_from: None,
            last_attempt: 0,
        }
    }
}

/// A report as the tests build it: a failure report by `host.example` about `original`
/// for `recipients`, returning the header only, nothing else; a test changes what it
/// needs with `..Report::failure(...)`.
#[cfg(test)]
impl<'a> Report<'a> {
    pub(crate) fn failure(original: &'a Envelope, recipients: Vec<RcptReport>) -> Report<'a> {
        Report {
            kind: Kind::Failure,
            host: "host.example",
            original,
            recipients,
            notes: Vec::new(),
            headers_only: true,
            waited: None,
            no_actual_recipient: false,
            eight_bit: false,
            returned_by: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;
    use crate::spool::entry::test_envelope;

    #[test]
    fn notify_rules() {
        let mut r = Recipient::new("a@x");
        assert!(wanted(&r, Kind::Failure) && wanted(&r, Kind::Delay));
        assert!(!wanted(&r, Kind::Success));
        r.notify = Some("NEVER".into());
        assert!(!wanted(&r, Kind::Failure) && !wanted(&r, Kind::Delay));
        r.notify = Some("SUCCESS,FAILURE".into());
        assert!(wanted(&r, Kind::Failure) && wanted(&r, Kind::Success));
        assert!(!wanted(&r, Kind::Delay));
    }

    /// A report to the sender with the postmaster's copy: a `To:` for each, the
    /// postmaster's first and qualified, and both in the entry (the postmaster last:
    /// sendmail's queue order, whose transaction names it first).
    #[test]
    fn a_report_to_two_names_both() {
        let env = test_envelope("6AMxxxxx000002", &["u@host.example"]);
        let rep = Report::failure(
            &env,
            vec![RcptReport::failed(
                "u@host.example",
                crate::status::SYSTEM_PERM,
                "554 5.3.0 Internal error",
                "X-Unix",
            )],
        );
        let scratch = crate::spool::ScratchSpool::new("dsn2");
        let id = rep
            .queue_to(
                &scratch.spool,
                &["postmaster", "s@example.org"],
                false,
                &mut &b"Subject: hi\n\nbody\n"[..],
            )
            .unwrap();
        let e = scratch.spool.read_entry(&id).unwrap();
        let rcpts: Vec<&str> = e
            .envelope
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(rcpts, ["s@example.org", "postmaster"]);
        let head = rep.header(&id, 0, &["postmaster", "s@example.org"]);
        let to: Vec<&str> = head.lines().filter(|l| l.starts_with("To:")).collect();
        assert_eq!(to, ["To: postmaster@host.example", "To: s@example.org"]);
    }

    #[test]
    fn text_that_is_no_address_gets_no_actual_recipient() {
        let env = test_envelope("6AMxxxxx000001", &["u@host.example"]);
        let original = b"Subject: hi\n\nbody\n";
        let rcpt = |actual: &str| RcptReport {
            actual_recipient: Some(actual.into()),
            ..RcptReport::failed(
                "u@host.example",
                crate::status::BAD_MAILBOX_SYNTAX,
                "553 5.1.3 Unbalanced '<'",
                "X-Unix",
            )
        };
        let rep = Report::failure(
            &env,
            vec![
                rcpt("bad address <@host.example"),
                rcpt("<f2@example.org"),
                rcpt("f3@example.org (x"),
                rcpt("good@example.org"),
                rcpt("/var/list@host.example"),
            ],
        );
        let mut out = Vec::new();
        rep.write("NEWID", 0, "a@x", &mut &original[..], &mut out)
            .unwrap();
        let s = String::from_utf8(out).unwrap();
        let actual: Vec<&str> = s
            .lines()
            .filter(|l| l.starts_with("X-Actual-Recipient:"))
            .collect();
        assert_eq!(
            actual,
            [
                "X-Actual-Recipient: rfc822; good@example.org",
                "X-Actual-Recipient: rfc822; /var/list@host.example"
            ],
            "{s}"
        );
    }

    #[test]
    fn report_structure() {
        let mut env = test_envelope("6AMxxxxx000001", &["bob@x"]);
        env.envid = Some("env-42".into());
        let original = b"Subject: hi\nFrom: a@x\n\nbody line\n";
        env.header_bytes = 23;
        let rep = Report {
            headers_only: false,
            ..Report::failure(
                &env,
                vec![RcptReport {
                    original_recipient: Some("rfc822;bob@x".into()),
                    remote_mta: Some("mx.x".into()),
                    transcript: vec![
                        ">>> RCPT To:<bob@x>".into(),
                        "<<< 550 5.1.1 User unknown".into(),
                        "550 5.1.1 bob@x... User unknown".into(),
                    ],
                    ..RcptReport::failed(
                        "bob@x",
                        crate::status::BAD_MAILBOX,
                        "550 5.1.1 User unknown",
                        "SMTP",
                    )
                }],
            )
        };
        let mut out = Vec::new();
        rep.write("NEWID", 0, "a@x", &mut &original[..], &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        // RFC 3464 §2.2: the per-message fields begin with Original-Envelope-Id.
        assert!(
            text.contains(
                "message/delivery-status\n\nOriginal-Envelope-Id: env-42\nReporting-MTA: "
            ),
            "{text}"
        );
        for want in [
            "Content-Type: multipart/report; report-type=delivery-status;",
            "Subject: Returned mail: see transcript for details",
            "Original-Envelope-Id: env-42",
            "Final-Recipient: RFC822; bob@x",
            "Action: failed",
            "Status: 5.1.1",
            "\nTo: a@x\n",
            "\n   ----- The following addresses had permanent fatal errors -----\nbob@x\n    (reason: 550 5.1.1 User unknown)\n\n   ----- Transcript of session follows -----\n... while talking to mx.x:\n>>> RCPT To:<bob@x>\n<<< 550 5.1.1 User unknown\n550 5.1.1 bob@x... User unknown\n\n--",
            "Final-Recipient: RFC822; bob@x\nX-Actual-Recipient: rfc822; bob@x\n",
            "Remote-MTA: DNS; mx.x",
            "Diagnostic-Code: SMTP; 550 5.1.1 User unknown",
            "Content-Type: message/rfc822\n\nReturn-Path: <a@x>\nSubject: hi\nFrom: a@x\n\nbody line\n\n--",
        ] {
            assert!(text.contains(want), "{want:?} missing in\n{text}");
        }
        let hdrs = Report {
            headers_only: true,
            ..rep
        };
        let mut out = Vec::new();
        hdrs.write("NEWID", 0, "a@x", &mut &original[..], &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "text/rfc822-headers\n\nReturn-Path: <a@x>\nSubject: hi\nFrom: a@x\n\n--"
            )
        );
        assert!(!text.contains("body line"));
        assert!(text.ends_with("--\n\n"), "{text:?}");
    }

    /// A failure of a message from the null sender (a report) goes to the postmaster as
    /// sendmail's postmaster notice: its subject and Auto-Submitted word, `from
    /// localhost` for a report this program made, and the failed message's queue ID
    /// (recorded: compat-tests/differences/xlog-v-data5-double). Any other failure
    /// keeps the usual words.
    #[test]
    fn postmaster_notice_of_a_report() {
        let mut env = test_envelope("6AMxxxxx000002", &["s@x"]);
        env.sender = String::new();
        env.user = "MAILER-DAEMON".into();
        let rep = Report::failure(
            &env,
            vec![RcptReport::failed(
                "s@x",
                crate::status::BAD_MAILBOX,
                "554 5.6.0 Message rejected",
                "SMTP",
            )],
        );
        let text = |rep: &Report<'_>| {
            let mut out = Vec::new();
            rep.write(
                "NEWID",
                0,
                "postmaster",
                &mut &b"Subject: r\n\n"[..],
                &mut out,
            )
            .unwrap();
            String::from_utf8(out).unwrap()
        };
        let t = text(&rep);
        for want in [
            "\nSubject: Postmaster notify: see transcript for details\n",
            "\nAuto-Submitted: auto-generated (postmaster-notification)\n",
            "\nfrom localhost\nwith id 6AMxxxxx000002\n\n",
        ] {
            assert!(t.contains(want), "{want:?} missing in\n{t}");
        }
        // A message with a sender: the usual report.
        let mut other = env.clone();
        other.sender = "a@x".into();
        other.user = "root".into();
        let t = text(&Report {
            original: &other,
            ..rep
        });
        for want in [
            "\nSubject: Returned mail: see transcript for details\n",
            "\nAuto-Submitted: auto-generated (failure)\n",
            "\nfrom root@localhost\n\n",
        ] {
            assert!(t.contains(want), "{want:?} missing in\n{t}");
        }
    }

    /// Whatever a value holds, each field of the report stays one line: no CR, LF or
    /// NUL from a reason, an address or an ENVID makes a field of its own.
    #[test]
    fn no_value_breaks_a_line() {
        let mut env = test_envelope("6AMxxxxx000003", &["bob@x"]);
        env.envid = Some("e\r\nAction: delivered".into());
        env.header_bytes = 12;
        let evil = "no\rAction: delivered\nStatus: 2.0.0\r\n\0\u{1b}[2J\u{9b}";
        let rep = Report::failure(
            &env,
            vec![RcptReport {
                original_recipient: Some("rfc822;bob@x\rStatus: 2.0.0".into()),
                remote_mta: Some("mx.x\nX: y".into()),
                transcript: vec![format!("<<< 550 5.1.1 {evil}")],
                ..RcptReport::failed(
                    "bob@x\nAction: delivered",
                    crate::status::BAD_MAILBOX,
                    &format!("550 5.1.1 {evil}"),
                    "SMTP",
                )
            }],
        );
        let mut out = Vec::new();
        rep.write(
            "NEWID",
            0,
            "a@x\r\nBcc: c@x",
            &mut &b"Subject: x\n\n"[..],
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && c != '\t' && c.is_control()),
            "{text:?}"
        );
        let forged = |f: &str| text.lines().filter(|l| l.starts_with(f)).count();
        assert_eq!(forged("Action: "), 1, "{text}");
        assert_eq!(forged("Status: "), 1, "{text}");
        assert_eq!(forged("Bcc: "), 0, "{text}");
        assert_eq!(forged("X: "), 0, "{text}");
        for want in [
            "Diagnostic-Code: SMTP; 550 5.1.1 no?Action: delivered?Status: 2.0.0????[2J?\n",
            "\n    (reason: 550 5.1.1 no?Action: delivered?Status: 2.0.0????[2J?)\n",
            "\n<<< 550 5.1.1 no?Action: delivered?Status: 2.0.0????[2J?\n",
            "Final-Recipient: RFC822; bob@x?Action: delivered\n",
            "Original-Envelope-Id: e??Action: delivered\n",
            "\nTo: a@x??Bcc: c@x\n",
        ] {
            assert!(text.contains(want), "{want:?} missing in\n{text}");
        }
    }

    /// An administrator's reason in 8-bit text: the diagnostic (RFC 3464 fields are
    /// US-ASCII) shows `?` for each such character; the text part's reason line keeps
    /// it, the part declared UTF-8 8-bit text.
    #[test]
    fn an_8bit_reason_is_ascii_in_the_diagnostic_only() {
        let mut env = test_envelope("6AMxxxxx000004", &["bob@x"]);
        env.header_bytes = 12;
        let rep = Report::failure(
            &env,
            vec![RcptReport::failed(
                "bob@x",
                crate::status::BAD_MAILBOX,
                "550 5.0.0 Returned to sender by the administrator: retired mailbox \u{e9}",
                "X-Unix",
            )],
        );
        let mut out = Vec::new();
        rep.write("NEWID", 0, "a@x", &mut &b"Subject: x\n\n"[..], &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let said = "550 5.0.0 Returned to sender by the administrator: retired mailbox ?";
        assert!(
            text.contains(&format!("Diagnostic-Code: X-Unix; {said}\n")),
            "{text}"
        );
        assert!(
            text.contains(
                "(reason: 550 5.0.0 Returned to sender by the administrator: retired mailbox \
                 \u{e9})"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n"
            ),
            "{text}"
        );
    }

    /// Every report queued (each kind, the postmaster's double bounce) is the owner's of
    /// the entry it reports on, not the uid of the run that queued it; a report about a
    /// report is its owner's in turn, and one about a report that records no owner (an
    /// earlier version's) is no user's.
    #[test]
    fn a_queued_report_is_its_originals_owners() {
        let scratch = crate::spool::ScratchSpool::new("dsn-owner");
        let me = nix::unistd::getuid().as_raw();
        let other = me.wrapping_add(4242);
        let mut env = test_envelope("6AMxxxxx000010", &["u@example.org"]);
        env.sender = "s@example.org".into();
        env.uid = other;
        for kind in [Kind::Failure, Kind::Delay, Kind::Success] {
            for double in [false, true] {
                let rep = Report {
                    kind,
                    ..Report::failure(&env, Vec::new())
                };
                let id = rep
                    .queue(&scratch.spool, "s@example.org", double, &mut &b"x\n"[..])
                    .unwrap();
                let e = scratch.spool.read_entry(&id).unwrap().envelope;
                assert_eq!((e.uid, e.owner()), (me, Some(other)), "{kind:?} {double}");
                // A report about that report (its double bounce): the same owner.
                let about = Report::failure(&e, Vec::new())
                    .queue(&scratch.spool, "postmaster", true, &mut &b"x\n"[..])
                    .unwrap();
                let d = scratch.spool.read_entry(&about).unwrap().envelope;
                assert_eq!(d.owner(), Some(other), "{kind:?} {double}");
                let mut old = e.clone();
                old.report_owner = None;
                let about = Report::failure(&old, Vec::new())
                    .queue(&scratch.spool, "postmaster", true, &mut &b"x\n"[..])
                    .unwrap();
                let d = scratch.spool.read_entry(&about).unwrap().envelope;
                assert_eq!(d.owner(), None, "{kind:?} {double}");
            }
        }
    }

    /// Every kind of report (bounce, delay warning, return receipt, the postmaster's
    /// copy of a report about a report, headers only or the whole message) about a
    /// UTF-8 recipient, or to a UTF-8 sender, declares its 8-bit text: `BODY=8BITMIME`
    /// in the queued envelope, `Content-Transfer-Encoding: 8bit` in its header and on
    /// each part holding 8-bit octets; a report all in US-ASCII declares nothing.
    #[test]
    fn a_report_with_8bit_text_declares_it_on_every_part() {
        let cases: [(&str, &str, &str); 4] = [
            ("j\u{f6}rg@example.org", "s@example.org", "s@example.org"),
            ("u@b\u{fc}cher.example", "s@example.org", "s@example.org"),
            (
                "u@example.org",
                "s@b\u{fc}cher.example",
                "s@b\u{fc}cher.example",
            ),
            ("u@example.org", "s@example.org", "s@example.org"),
        ];
        for (rcpt, sender, to) in cases {
            for kind in [Kind::Failure, Kind::Delay, Kind::Success] {
                for (headers_only, double) in [(true, false), (false, false), (true, true)] {
                    let what =
                        format!("{rcpt} {sender} {kind:?} hdrs {headers_only} double {double}");
                    let mut env = test_envelope("6AMxxxxx000009", &[rcpt]);
                    env.sender = sender.into();
                    env.header_bytes = 11;
                    let rep = Report {
                        kind,
                        headers_only,
                        waited: Some("4 hours".into()),
                        ..Report::failure(
                            &env,
                            vec![RcptReport {
                                remote_mta: Some("[127.0.0.1]".into()),
                                transcript: vec![
                                    format!(">>> RCPT To:<{rcpt}>"),
                                    format!("<<< 550 5.1.1 <{rcpt}>... User unknown"),
                                ],
                                ..RcptReport::failed(
                                    rcpt,
                                    crate::status::BAD_MAILBOX,
                                    &format!("550 5.1.1 <{rcpt}>... User unknown"),
                                    "SMTP",
                                )
                            }],
                        )
                    };
                    let original = b"Subject: x\n\nbody\n";
                    let scratch = crate::spool::ScratchSpool::new("dsn8");
                    let id = rep
                        .queue(&scratch.spool, to, double, &mut &original[..])
                        .unwrap();
                    let e = scratch.spool.read_entry(&id).unwrap();
                    let all = std::fs::read(scratch.spool.qf_path(&id)).unwrap();
                    let text = String::from_utf8(all[e.data_offset as usize..].to_vec()).unwrap();
                    let eight = !rcpt.is_ascii() || !sender.is_ascii();
                    assert_eq!(text.is_ascii(), !eight, "{what}: {text}");
                    assert_eq!(
                        e.envelope.body_type.as_deref(),
                        eight.then_some("8BITMIME"),
                        "{what}"
                    );
                    // The header, then each part: 8-bit octets only under an 8bit CTE.
                    let mut sections = text.split("\n--6AMxxxxx000009.");
                    let head = sections.next().unwrap();
                    let (header, _) = head.split_once("\n\n").unwrap();
                    // The report's own `To:` names its recipient with A-labels.
                    let to_written = to.replace("b\u{fc}cher", "xn--bcher-kva");
                    assert!(
                        header.contains(&format!("\nTo: {to_written}\n")),
                        "{what}: {header}"
                    );
                    assert_eq!(
                        header.contains("Content-Transfer-Encoding: 8bit"),
                        eight,
                        "{what}: {header}"
                    );
                    for part in sections {
                        let Some((fields, body)) = part.split_once("\n\n") else {
                            continue;
                        };
                        assert_eq!(
                            fields.contains("Content-Transfer-Encoding: 8bit"),
                            !body.is_ascii(),
                            "{what}: {part}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn returned_header_is_folded() {
        let mut env = test_envelope("6AMxxxxx000002", &["bob@x"]);
        let addrs: Vec<String> = (1..=60).map(|n| format!("user{n}@example.org")).collect();
        let head = format!("To: {}\nSubject: hi\nMIME-Version: 1.0\n", addrs.join(", "));
        let long = "x".repeat(2500);
        let original = format!("{head}\n{long}\n");
        env.header_bytes = head.len() as u64 + 1;
        let folded = format!(
            "To: {},\n {}\nSubject: hi\nMIME-Version: 1.0\n",
            addrs[..50].join(", "),
            addrs[50..].join(", ")
        );
        for headers_only in [false, true] {
            let rep = Report {
                headers_only,
                ..Report::failure(&env, Vec::new())
            };
            let mut out = Vec::new();
            let n = rep
                .write("NEWID", 0, "a@x", &mut original.as_bytes(), &mut out)
                .unwrap();
            assert_eq!(n as usize, out.len());
            let text = String::from_utf8(out).unwrap();
            let part = text.split("Return-Path: <a@x>\n").nth(1).unwrap();
            assert!(
                part.starts_with(&folded),
                "headers only: {headers_only}\n{part}"
            );
            if headers_only {
                assert!(part.starts_with(&format!("{folded}\n--")), "{part}");
            } else {
                // The body as queued: the wire breaks it when the report is sent.
                assert!(
                    part.starts_with(&format!("{folded}\n{long}\n\n--")),
                    "{part}"
                );
            }
        }
    }
}
