//! `mailq` / `sendmail -bp`: sendmail 8.17's queue listing, byte for byte apart from ids,
//! dates and paths, and `mailq --json` (one object per line, like `postqueue -j`).
//!
//! sendmail's format (queue.c printqueue, as recorded from 8.17.1.9):
//! ```text
//! \t\t/var/spool/mqueue (2 requests)
//! -----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------
//! 6AM5eIkR004034        6 Sun Nov 22 05:40 averyveryverylongsenderaddress123456789
//!                  (Deferred: 450 4.2.0 <carol@example.net>: Recipient address t)
//! \t\t\t\t\t bob@example.org
//! \t\tTotal requests: 2
//! ```
//! The id is followed by `*` while a deliverer holds the entry's lock, `-` while its
//! back-off has not expired (sendmail's "too young" marker). The size is the
//! body's. The sender is cut to 39 characters (80 columns), the reason to 60. Entries are
//! listed in sendmail's priority order: size + 30000 per recipient + 90000 per attempt.
//! An unreadable entry is reported on its own line and the listing goes on.
//!
//! Entries may be damaged or hostile: text is cut at characters, never by byte index (the
//! lints below keep it so), and numbers from the files saturate, so no entry makes the
//! listing panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use crate::cli::QueueRunArgs;
use crate::clock;
use crate::exit::Fatal;
use crate::spool::entry::RcptState;
use crate::spool::{QueuedEntry, ReadError, Spool};
use std::fmt::Write as _;

/// One listed entry.
struct Listed {
    id: String,
    busy: bool,
    entry: QueuedEntry,
    priority: i64,
}

fn pending_recipients(e: &QueuedEntry) -> Vec<(&str, RcptState, Option<&str>)> {
    e.envelope
        .recipients
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let st = e.state.of(i);
            if st.is_final() {
                return None;
            }
            let why = e
                .state
                .recipients
                .iter()
                .rev()
                .find(|(idx, _, _)| *idx == i)
                .and_then(|(_, _, w)| w.as_deref());
            Some((r.shown(), st, why))
        })
        .collect()
}

fn collect(
    spool: &Spool,
    filter: Option<&QueueRunArgs>,
    problems: &mut String,
) -> Result<Vec<Listed>, Fatal> {
    let mut out = Vec::new();
    if !spool.dir.exists() {
        return Ok(out);
    }
    for id in spool.ids()? {
        let entry = match spool.read_entry(&id) {
            Ok(e) => e,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                let _ = writeln!(problems, "qf{id}: cannot read queue file: {e}");
                continue;
            }
        };
        let rcpts = pending_recipients(&entry);
        if let Some(f) = filter {
            let addrs: Vec<&str> = rcpts.iter().map(|r| r.0).collect();
            if !f.selects(&id, &entry.envelope.sender, &addrs) {
                continue;
            }
        }
        let busy = spool.is_busy(&entry.file);
        let priority = i64::try_from(entry.size.saturating_sub(entry.data_offset))
            .unwrap_or(i64::MAX)
            .saturating_add(30000 * rcpts.len() as i64)
            .saturating_add(90000 * i64::from(entry.state.attempts));
        out.push(Listed {
            id,
            busy,
            entry,
            priority,
        });
    }
    out.sort_by(|a, b| {
        (a.priority, a.entry.envelope.created, &a.id).cmp(&(
            b.priority,
            b.entry.envelope.created,
            &b.id,
        ))
    });
    Ok(out)
}

/// The first `n` characters of `s`.
fn cut(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((at, _)) => s.get(..at).unwrap_or(s),
        None => s,
    }
}

/// The text listing. Unreadable entries are described in the returned problem text
/// (printed after the listing).
/// `min_age` is `O MinQueueAge=` in seconds: as in sendmail, an entry tried less than that
/// long ago is marked `-` (too young for a queue run). The back-off between tries is not
/// marked, as sendmail marks nothing for it either; `mailq --json` gives the next try.
pub fn list_text(
    spool: &Spool,
    filter: Option<&QueueRunArgs>,
    min_age: i64,
) -> Result<(String, String), Fatal> {
    let mut problems = String::new();
    let entries = collect(spool, filter, &mut problems)?;
    let dir = spool.dir.display();
    let mut s = String::new();
    let n = entries.len();
    if n == 0 {
        let _ = writeln!(s, "{dir} is empty");
        let _ = writeln!(s, "\t\tTotal requests: 0");
        return Ok((s, problems));
    }
    let _ = writeln!(
        s,
        "\t\t{dir} ({n} request{})",
        if n == 1 { "" } else { "s" }
    );
    s.push_str(
        "-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n",
    );
    let now = clock::now();
    for l in &entries {
        let e = &l.entry;
        let sender = if e.envelope.sender.is_empty() && e.envelope.report.is_some() {
            // sendmail lists its own delivery reports as from MAILER-DAEMON.
            "MAILER-DAEMON"
        } else if e.envelope.sender.is_empty() {
            "<>"
        } else {
            e.envelope.sender.as_str()
        };
        let _ = writeln!(
            s,
            "{:.14}{}{:>8} {:.16} {}",
            l.id,
            if l.busy {
                '*'
            } else if min_age > 0
                && e.state
                    .last_attempt
                    .is_some_and(|t| t.saturating_add(min_age) > now)
            {
                '-'
            } else {
                ' '
            },
            e.body_size(),
            clock::ctime16(&clock::local(e.envelope.created)),
            cut(sender, 39)
        );
        if let Some(b) = &e.envelope.body_type {
            let _ = writeln!(s, "    {:>10.10}", b);
        }
        if let Some(r) = &e.state.reason {
            let _ = writeln!(s, "{:17}({})", "", cut(r, 60));
        }
        for (addr, _, _) in pending_recipients(e) {
            let _ = writeln!(s, "\t\t\t\t\t {}", cut(addr, 38));
        }
    }
    let _ = writeln!(s, "\t\tTotal requests: {n}");
    Ok((s, problems))
}

/// JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `mailq --json`: one object per entry and line.
pub fn list_json(spool: &Spool, filter: Option<&QueueRunArgs>) -> Result<(String, String), Fatal> {
    let mut problems = String::new();
    let entries = collect(spool, filter, &mut problems)?;
    let mut s = String::new();
    for l in &entries {
        let e = &l.entry;
        let queue_name = if l.busy {
            "active"
        } else if e.state.attempts > 0 {
            "deferred"
        } else {
            "queued"
        };
        let rcpts: Vec<String> = pending_recipients(e)
            .iter()
            .map(|(a, st, why)| {
                let mut o = format!(
                    "{{\"address\":{},\"state\":{}",
                    json_str(a),
                    json_str(st.word())
                );
                if let Some(w) = why {
                    let _ = write!(o, ",\"delay_reason\":{}", json_str(w));
                }
                o.push('}');
                o
            })
            .collect();
        let _ = write!(
            s,
            "{{\"queue_name\":{},\"queue_id\":{},\"arrival_time\":{},\"message_size\":{},\"sender\":{},\"delivery_mode\":{},\"attempts\":{}",
            json_str(queue_name),
            json_str(&l.id),
            e.envelope.created,
            e.body_size(),
            json_str(&e.envelope.sender),
            json_str(&e.envelope.mode.to_string()),
            e.state.attempts
        );
        if let Some(r) = &e.state.reason {
            let _ = write!(s, ",\"reason\":{}", json_str(r));
        }
        if let Some(t) = e.state.next_attempt {
            let _ = write!(s, ",\"next_attempt\":{t}");
        }
        let _ = writeln!(s, ",\"recipients\":[{}]}}", rcpts.join(","));
    }
    Ok((s, problems))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn cut_counts_chars() {
        assert_eq!(cut("abcdef", 3), "abc");
        assert_eq!(cut("ab", 3), "ab");
        assert_eq!(cut("äöüß", 2), "äö");
    }
}
