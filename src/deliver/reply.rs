//! SMTP replies (RFC 5321 §4.2) as values: the code, the text of each line, and the
//! command answered. The SMTP client reads them off the connection (`smtp/reply.rs`);
//! local failures and local delivery's outcomes are made up as replies too
//! ([`Reply::local`]).
//!
//! The text is the server's and untrusted: it is cut only where it was checked to be
//! ASCII, through `get` and `strip_prefix`, so no reply makes these methods panic (the
//! lints below keep it so).
//!
//! Every reply's text is printable (`rsendmail::text`): the SMTP client makes a server's
//! so as it reads it (`smtp/reply.rs`), and [`Reply::local`] does the same for the texts
//! made up here, which may quote what is not ours (a program's error output, a file name from a
//! `.forward`, an address a list file wrote). Reports, transcripts, logs and the state
//! file's reasons are made from these texts.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use rsendmail::status::EnhancedStatus;
use rsendmail::text::printable;

/// One (possibly multi-line) reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The text of each line, without the code and separator; printable (no control
    /// character: see the module doc).
    pub lines: Vec<String>,
    /// The command this answered, when it decided a recipient's fate (`RCPT To:<a>`,
    /// `DATA`): the transcript in a delivery report shows it.
    pub command: Option<String>,
    /// Made up here, not read from a server: a refused connection, a lookup failure, a
    /// local delivery's result. sendmail shows such a reason without a code
    /// (`Deferred: Connection refused by [192.0.2.1]`).
    pub local: bool,
    /// For a recipient the message was relayed to: the server's reply to its RCPT
    /// (`250 2.1.5 Ok`, as `code text`). A return receipt for a server without DSN
    /// names that reply, not the one to the data (sendmail's `Diagnostic-Code`; compat
    /// case receipt-success-odi).
    pub accepted_by: Option<String>,
}

impl Reply {
    /// The same reply to the same command, whichever RCPT reply accepted the recipient
    /// (`accepted_by` aside).
    pub fn same_as(&self, other: &Reply) -> bool {
        self.code == other.code
            && self.lines == other.lines
            && self.command == other.command
            && self.local == other.local
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// `code text` of the last line, as logged and stored.
    pub fn summary(&self) -> String {
        match self.lines.last().map(String::as_str) {
            Some(text) if !text.is_empty() => format!("{} {text}", self.code),
            // A reply that is only a code.
            _ => self.code.to_string(),
        }
    }

    /// `code text` of every line, for what shows a reply whole (`rsendmail-admin
    /// check`): one line as [`Reply::summary`], more joined with ` / ` after the code
    /// (`550 5.1.1 no such user / 5.1.1 see https://...`).
    pub fn in_full(&self) -> String {
        match self.lines.as_slice() {
            [] | [_] => self.summary(),
            lines => format!("{} {}", self.code, lines.join(" / ")),
        }
    }

    /// [`Reply::text_without_enhanced`] of every line: one line as that; more, each
    /// line's text joined with ` / `, the enhanced code left out where a line starts
    /// with the reply's.
    pub fn text_in_full(&self) -> String {
        if self.lines.len() <= 1 {
            return self.text_without_enhanced();
        }
        let enhanced = self.enhanced();
        self.lines
            .iter()
            .map(|l| match &enhanced {
                Some(e) => l.strip_prefix(e.as_str()).map(str::trim_start).unwrap_or(l),
                None => l,
            })
            .collect::<Vec<_>>()
            .join(" / ")
    }

    /// The enhanced status code at the start of the text (RFC 3463), if any.
    pub fn enhanced(&self) -> Option<String> {
        let first = self.lines.first()?.split(' ').next()?;
        let parts: Vec<&str> = first.split('.').collect();
        let ok = match parts.as_slice() {
            [class, subject, detail] => {
                matches!(*class, "2" | "4" | "5")
                    && [subject, detail].iter().all(|p| {
                        !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit())
                    })
            }
            _ => false,
        };
        ok.then(|| first.to_string())
    }

    /// The last line's text without the enhanced code (sendmail's `Sent (...)` text).
    pub fn text_without_enhanced(&self) -> String {
        let last = self.lines.last().map(String::as_str).unwrap_or("");
        match self.enhanced() {
            Some(e) if self.lines.len() == 1 => last
                .strip_prefix(e.as_str())
                .unwrap_or(last)
                .trim_start()
                .to_string(),
            _ => match last.split_once(' ') {
                Some((first, rest)) if first.split('.').count() == 3 => rest.to_string(),
                _ => last.to_string(),
            },
        }
    }

    /// The reply as answering `command`.
    pub fn to(mut self, command: &str) -> Reply {
        self.command = Some(printable(command).into_owned());
        self
    }

    /// The reply's lines as a transcript shows them (`<<< 550 5.1.1 ...`).
    pub fn transcript_lines(&self) -> Vec<String> {
        let n = self.lines.len();
        self.lines
            .iter()
            .enumerate()
            .map(|(k, l)| format!("<<< {}{}{l}", self.code, if k + 1 < n { '-' } else { ' ' }))
            .collect()
    }

    /// Whether sendmail calls this permanent refusal of a recipient `User unknown` (a RCPT
    /// answered 550, 551 or 553: its EX_NOUSER) rather than `Service unavailable`
    /// (EX_UNAVAILABLE); recorded in the bounce-* and reason-* compat cases.
    pub fn is_user_unknown(&self, to_rcpt: bool) -> bool {
        to_rcpt && matches!(self.code, 550 | 551 | 553)
    }

    /// A reply made up locally (connection errors, timeouts, local delivery's results),
    /// its text made printable.
    pub fn local(code: u16, text: impl Into<String>) -> Reply {
        let text: String = text.into();
        Reply {
            code,
            lines: vec![printable(&text).into_owned()],
            command: None,
            local: true,
            accepted_by: None,
        }
    }

    /// A reply made up locally with its RFC 3463 status before the text
    /// (`451 4.4.1 Connection refused by 192.0.2.1`).
    pub fn with_status(code: u16, status: EnhancedStatus, text: impl std::fmt::Display) -> Reply {
        Reply::local(code, format!("{status} {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_texts_are_printable() {
        // A program's first line of error output, a file name from a .forward.
        let r = Reply::local(554, "5.3.0 command exited with status 1: x\ry\0\u{1b}[2J");
        assert_eq!(r.lines, ["5.3.0 command exited with status 1: x?y??[2J"]);
        let r = Reply::with_status(
            451,
            rsendmail::status::SYSTEM_TEMP,
            "cannot read /home/a/\n.forward\u{9b}",
        );
        assert_eq!(r.summary(), "451 4.3.0 cannot read /home/a/?.forward?");
        let r = Reply::local(550, "no").to("RCPT To:<a\r\n@x>");
        assert_eq!(r.command.as_deref(), Some("RCPT To:<a??@x>"));
    }
}
