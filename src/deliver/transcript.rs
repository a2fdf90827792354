//! Where an attempt's dialogue goes: stdout for `-v`, or nowhere (the `-X` traffic log is
//! the SMTP client's own, `rsendmail::traffic`, and has each line `-v` shows too, as
//! sendmail logs what it writes to the user: `>>> >>> EHLO host`, `>>> 250 ...`); and sendmail's `addr... stat` lines for
//! the outcomes. No control character but the line end reaches stdout ([`Transcripts`]).

use super::outcome::{Class, RcptOutcome};
use super::smtp::{Step, Transcript};

/// Where a worker's transcript goes: stdout (-v), or nowhere. (The `-X` traffic log is
/// written by the SMTP client itself: `rsendmail::traffic`; each line shown on stdout is
/// logged there too, `>>> LINE`, as sendmail logs it: compat case xlog-v-ok.)
pub struct Transcripts {
    stdout: Option<std::io::Stdout>,
    logged: rsendmail::traffic::Lines,
}

/// What is written goes to a terminal: every control character but the line end is
/// shown as `?` (`rsendmail::text`), whatever its source. The texts written are made
/// printable where they come in (a server's reply as it is read, `Reply::local`); this
/// is the last defence for a line that was not.
impl std::io::Write for Transcripts {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let shown = rsendmail::text::printable_lines(&text);
        if let Some(o) = &mut self.stdout {
            o.write_all(shown.as_bytes())?;
            self.logged.feed(shown.as_bytes());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(o) = &mut self.stdout {
            o.flush()?;
        }
        Ok(())
    }
}

impl Transcripts {
    /// A transcript on stdout when `verbose` (-v), else none.
    pub fn new(verbose: bool) -> Transcripts {
        Transcripts {
            stdout: verbose.then(std::io::stdout),
            logged: rsendmail::traffic::Lines::new(rsendmail::traffic::Dir::Out),
        }
    }

    pub fn get(&mut self) -> Transcript<'_> {
        if self.stdout.is_none() {
            None
        } else {
            Some(self)
        }
    }
}

/// sendmail -v: one line per outcome, recipients that share the same text on one line
/// (`a@x,b@x... Sent (...)`), in the order the outcomes came.
pub fn outcome_lines(outcomes: &[RcptOutcome], address: &dyn Fn(usize) -> String) -> Vec<String> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for o in outcomes {
        let t = o.stat_text();
        let a = address(o.rcpt);
        match groups.iter_mut().find(|(g, _)| *g == t) {
            Some((_, v)) => v.push(a),
            None => groups.push((t, vec![a])),
        }
    }
    groups
        .into_iter()
        .map(|(t, v)| format!("{}... {t}", v.join(",")))
        .collect()
}

/// Print lines to the transcript, if there is one.
pub fn say(out: &mut Transcript<'_>, lines: &[String]) {
    if let Some(w) = out.as_deref_mut() {
        for l in lines {
            let _ = writeln!(w, "{l}");
        }
    }
}

/// sendmail -v's lines for an outcome as its reply is read: `addrs... Sent (text)` and
/// `addrs... Deferred: reply` at once; a permanent refusal shows only the server's reply
/// in an interactive delivery, and in a queue run sendmail's words for it after the
/// reply (`addr... User unknown` for a refused recipient, `Service unavailable` for a
/// refused message; recorded in compat-tests/cases/reason-*).
pub fn reply_lines(addrs: &[&str], o: &RcptOutcome, step: Step, interactive: bool) -> Vec<String> {
    match o.class {
        Class::Permanent if interactive => Vec::new(),
        Class::Permanent => match step {
            Step::Rcpt => addrs
                .iter()
                .map(|a| {
                    let words = if o.reply.is_user_unknown(true) {
                        "User unknown"
                    } else {
                        "Service unavailable"
                    };
                    format!("{a}... {words}")
                })
                .collect(),
            Step::Mail | Step::Data => vec!["Service unavailable".to_string()],
        },
        _ => vec![format!("{}... {}", addrs.join(","), o.stat_text())],
    }
}
