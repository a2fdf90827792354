//! `mailq` / `sendmail -bp`: sendmail 8.17's queue listing, byte for byte apart from ids,
//! dates and paths, its verbose form (`mailq -v`, `-bp -v`), and `mailq --json` (one object
//! per line, like `postqueue -j`, with every reason whole).
//!
//! sendmail's format (queue.c print_single_queue, as recorded from 8.17.1.9):
//! ```text
//! \t\t/var/spool/mqueue (2 requests)
//! -----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------
//! 6AM5eIkR004034        6 Sun Nov 22 05:40 averyveryverylongsenderaddress123456789
//!                  (Deferred: 450 4.2.0 <carol@example.net>: Recipient address t)
//! \t\t\t\t\t bob@example.org
//! \t\tTotal requests: 2
//! ```
//! and with `-v`:
//! ```text
//! \t\t/var/spool/mqueue (1 request)
//! -----Q-ID----- --Size-- -Priority- ---Q-Time--- --------Sender/Recipient--------
//! 6AU57YKT006972        6     120023 Nov 30 05:07 root
//!                  (Deferred: 450 4.2.0 <reject4-two@example.net>: Recipient address temporarily rejected: test)
//! \t\t\t\t\t\treject4-one@example.org
//! \t\t (Deferred: 450 4.2.0 <reject4-one@example.org>: Recipient address temporarily rejected: test)
//! \t\tTotal requests: 1
//! ```
//! A held entry (`rsendmail-admin hold`, kept in `SPOOLDIR/hold/`) is listed too, with
//! the line sendmail's `mailq -qQ` shows under a quarantined entry (`     QUARANTINE:
//! held`); `--json` names its queue `hold`, as Postfix's `postqueue -j` does.
//! The id is followed by `*` while a deliverer holds the entry's lock, `-` while its
//! back-off has not expired (sendmail's "too young" marker). The size is the
//! body's. The sender is cut to 39 characters (78 with `-v`), a recipient to 38 (71), the
//! entry's reason to 60 (100). `-v` adds the priority, a `+` after it once a delay warning
//! went out, the date without the weekday, and after each pending recipient its own
//! reason. Entries are listed in sendmail's priority order (see [`priority`]).
//! An entry that cannot be read (a damaged or hostile queue or state file) counts as a
//! request and is listed after the others as sendmail lists a queue file it cannot open:
//! its ID and, in parentheses, why (`6AU00000000001 (cannot read queue file: ...)`); so a
//! queue holding only such entries is never said to be empty.
//!
//! Addresses are shown as sendmail's prtstr shows them: a backslash doubled, a byte that
//! is not printable ASCII as `\ooo`, so no queue content can put control characters on
//! the terminal. Reasons (and the body type) are shown with each octet of a control
//! character or an invisible format character (a bidirectional override...:
//! [`crate::text::is_safe`]) as `\ooo` ([`shown`]), printable UTF-8 as it is (an
//! SMTPUTF8 server's text): the deliverer stores them printable (`rsendmail::text`), but
//! a state file written before it did, or by someone else, may hold anything. `mailq
//! --json` gives them whole, escaped as JSON, those characters as `\uXXXX`.
//!
//! Entries may be damaged or hostile: text is cut at characters, never by byte index (the
//! lints below keep it so), and numbers from the files saturate, so no entry makes the
//! listing panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use crate::clock;
use crate::exit::Fatal;
use crate::options::QueueSortOrder;
use crate::selection::QueueRunArgs;
use crate::spool::entry::RcptState;
use crate::spool::{IdKey, Mark, QueuedEntry, ReadError, Request, Spool, key_str};
use std::fmt::Write as _;

/// One listed entry.
struct Listed {
    id: String,
    busy: bool,
    /// Held (`rsendmail-admin hold`, `SPOOLDIR/hold/`): listed with sendmail's
    /// quarantine line.
    held: bool,
    /// An action asked for while a delivery held it (`kf<ID>`, [`Spool::request`]),
    /// looked for only when the listing named a file of that kind beside the entry.
    mark: Option<Mark>,
    entry: QueuedEntry,
    priority: i64,
    /// When the queue file was written (to the nanosecond where the file system keeps
    /// it): equal priorities are listed in arrival order, which `created` (seconds)
    /// alone does not give.
    written: Option<std::time::SystemTime>,
}

/// A pending recipient: as shown, its state, its own reason, and what expanded to it
/// ([`Recipient::ctl`](rsendmail::spool::entry::Recipient)).
type Pending<'a> = (
    std::borrow::Cow<'a, str>,
    RcptState,
    Option<&'a str>,
    Option<&'a str>,
);

fn pending_recipients(e: &QueuedEntry) -> Vec<Pending<'_>> {
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
            Some((r.shown(), st, why, r.ctl.as_deref()))
        })
        .collect()
}

/// sendmail's queue priority (the `P` line of its queue file, `-Priority-` in the verbose
/// listing; lower runs first): the size of the message as submitted (the header fields
/// rsendmail removed, `Bcc:`, `Resent-Bcc:`, `Content-Length:`, `Return-Path:`,
/// included; recorded: `bpv-t-bcc`, `bpv-content-length`), plus 30000
/// (`RecipientFactor`) per recipient it was accepted for or refused as an unknown user
/// ([`Envelope::refused_users`](rsendmail::spool::entry::Envelope)), plus 90000
/// (`RetryFactor`) per try made by a queue run. The try made at submission (modes `i`
/// and `b`) does not count: sendmail adds the factor when a queue run reads the entry
/// back. A delivery report counts no size (sendmail reckons its priority before it
/// writes it) and its first try, made by the process that made it, does not count
/// either (recorded: `greet421-syntax-report-bp-v`).
pub fn priority(e: &QueuedEntry) -> i64 {
    priority_of(&e.envelope, &e.state, e.body_size())
}

/// [`priority`] of an entry's envelope, state and body size.
pub fn priority_of(
    env: &crate::spool::entry::Envelope,
    state: &crate::spool::entry::State,
    body_size: u64,
) -> i64 {
    let report = env.report.is_some();
    let submitted = if report {
        0
    } else {
        env.submitted_header_bytes
            .unwrap_or_else(|| env.header_bytes.saturating_sub(env.added_header_bytes))
            .saturating_add(body_size)
    };
    let at_submission = u32::from((report || matches!(env.mode, 'i' | 'b')) && state.attempts > 0);
    let runs = state.attempts.saturating_sub(at_submission);
    let recipients = (env.recipients.len() as i64).saturating_add(i64::from(env.refused_users));
    i64::try_from(submitted)
        .unwrap_or(i64::MAX)
        .saturating_add(30000_i64.saturating_mul(recipients))
        .saturating_add(90000 * i64::from(runs))
}

/// An entry that could not be read: its ID and why (a damaged or hostile queue or state
/// file, an unreadable one).
struct Unreadable {
    id: String,
    why: String,
    /// In `SPOOLDIR/hold/`.
    held: bool,
}

/// One listed entry's ID, whether it is held, and whether the listing showed a state
/// file beside it (an entry never tried has none, and none is looked for).
type ListedId = (IdKey, bool, bool);

/// The spool's entry IDs, then those of its held entries (`SPOOLDIR/hold/`, when there
/// is one), from one listing of each directory (14 octets an ID: 100,000 entries cost
/// about 2 MB here).
fn ids_with_held(spool: &Spool, held: &Spool) -> Result<Vec<ListedId>, Fatal> {
    let mark = |(ids, mut states): (Vec<IdKey>, Vec<IdKey>), is_held: bool| {
        states.sort_unstable();
        ids.into_iter()
            .map(move |k| (k, is_held, states.binary_search(&k).is_ok()))
            .collect::<Vec<_>>()
    };
    let mut ids = mark(spool.listing()?, false);
    if held.dir.is_dir() {
        ids.extend(mark(held.listing().unwrap_or_default(), true));
    }
    Ok(ids)
}

/// Each readable entry of the spool and of its held entries that `filter` selects, as a
/// [`Listed`] given to `each` (and dropped after it, so a listing need not hold them
/// all); the unreadable ones the filter's queue-ID part may match go to `unreadable`,
/// and problems with the spool's sub-directories to `problems`. A spool that does not
/// exist lists nothing.
fn scan(
    spool: &Spool,
    filter: Option<&QueueRunArgs>,
    problems: &mut String,
    unreadable: &mut Vec<Unreadable>,
    mut each: impl FnMut(Listed),
) -> Result<(), Fatal> {
    if !spool.dir.exists() {
        return Ok(());
    }
    // A symlink or a file where the spool keeps a folder: refused by every run, said here.
    for why in spool.subdir_problems() {
        let _ = writeln!(problems, "{}", shown(&why, usize::MAX));
    }
    // Entries a run moved aside: a detached run's word on it went nowhere.
    if let Some(note) = spool.corrupt_note() {
        let _ = writeln!(problems, "{}", shown(&note, usize::MAX));
    }
    let held_spool = spool.held();
    for (key, held, has_state) in ids_with_held(spool, &held_spool)? {
        let id = key_str(&key).to_string();
        let spool = if held { &held_spool } else { spool };
        let entry = match spool.read_listed_entry(&id, has_state) {
            Ok(e) => e,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                if filter.is_none_or(|f| f.id_may_match(&id)) {
                    // The error may quote the file (an id it holds): shown when listed.
                    let why = e.to_string();
                    unreadable.push(Unreadable { id, why, held });
                }
                continue;
            }
        };
        if let Some(f) = filter {
            let rcpts = pending_recipients(&entry);
            let addrs: Vec<&str> = rcpts.iter().map(|r| r.0.as_ref()).collect();
            if !f.selects_entry(held, &id, &entry.envelope.sender, &addrs) {
                continue;
            }
        }
        each(Listed {
            busy: spool.is_busy(&entry.file),
            mark: (has_state && !held).then(|| spool.read_mark(&id)).flatten(),
            held,
            priority: priority(&entry),
            written: entry.written,
            id,
            entry,
        });
    }
    Ok(())
}

/// The readable entries (in sendmail's order) and the unreadable ones (by ID). An
/// unreadable entry is kept when the filter's queue-ID part may match it: what it holds
/// cannot be matched, and like sendmail's listing (which keeps a queue file it cannot
/// open in `-bp`'s count) the listing must not hide it.
fn collect(
    spool: &Spool,
    filter: Option<&QueueRunArgs>,
    problems: &mut String,
) -> Result<(Vec<Listed>, Vec<Unreadable>), Fatal> {
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    scan(spool, filter, problems, &mut unreadable, |l| out.push(l))?;
    out.sort_by(|a, b| {
        (a.priority, a.entry.envelope.created, a.written, &a.id).cmp(&(
            b.priority,
            b.entry.envelope.created,
            b.written,
            &b.id,
        ))
    });
    unreadable.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((out, unreadable))
}

/// A reason in `room` characters: printable characters as they are, each octet of a
/// control character (C0, DEL, C1) as `\ooo` (four characters, left out when they do not
/// fit), so that an old or hostile state file puts nothing on the terminal but text.
fn shown(s: &str, room: usize) -> String {
    let mut out = String::new();
    let mut left = room;
    for c in s.chars() {
        if crate::text::is_safe(c) {
            if left == 0 {
                break;
            }
            left -= 1;
            out.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            let octets = c.encode_utf8(&mut utf8).as_bytes();
            if left < 4 * octets.len() {
                break;
            }
            left -= 4 * octets.len();
            for b in octets {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out
}

/// `s` as sendmail's prtstr prints it in `room` columns: printable ASCII as it is, a
/// backslash doubled (two columns), any other byte as `\ooo` (four columns, left out
/// when they do not fit).
fn prtstr(s: &str, room: usize) -> String {
    let mut out = String::new();
    let mut left = room;
    for b in s.bytes() {
        if left == 0 {
            break;
        }
        left -= 1;
        if b == b'\\' {
            if left > 0 {
                left -= 1;
                out.push_str("\\\\");
            }
        } else if b.is_ascii_graphic() || b == b' ' {
            out.push(char::from(b));
        } else {
            // sendmail: `if ((ml -= 3) > 0)`, the room left after the escape.
            left = left.saturating_sub(3);
            if left > 0 {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out
}

/// How the text listing is made ([`list_text`], [`write_text`]).
#[derive(Clone, Copy, Debug)]
pub struct TextStyle {
    /// `O MinQueueAge=` in seconds: as in sendmail, an entry tried less than that long ago
    /// is marked `-` (too young for a queue run). The back-off between tries is not
    /// marked, as sendmail marks nothing for it either; `mailq --json` gives the next try.
    pub min_age: i64,
    /// sendmail's `-v` form.
    pub verbose: bool,
    /// The uid of `DefaultUser`, left out of a `(---...---)` controlling-user line.
    pub default_uid: u32,
    /// `rsendmail-admin list`: a held entry's quarantine line names who held it
    /// (`QUARANTINE: held by root`), when that is recorded; `mailq` keeps sendmail's line
    /// as it is.
    pub holders: bool,
    /// `rsendmail-admin list`: the sender and the recipients shown as `show` shows them
    /// and as the reasons are shown ([`shown`]: printable UTF-8 as it is, each octet of a
    /// control or invisible character as `\ooo`); `mailq` keeps sendmail's prtstr
    /// ([`prtstr`]: every octet that is not printable ASCII as `\ooo`).
    pub utf8: bool,
    /// `O QueueSortOrder=`: the order entries are listed in, as sendmail's `-bp` sorts
    /// its work list as a queue run does (recorded: `bp-sort-*`).
    pub sort: QueueSortOrder,
    /// `O MaxQueueRunSize=` (0: no limit): at most this many entries are listed, the
    /// first in `sort`'s order, and the heading says so (`(3 requests, only 2
    /// printed)`), as sendmail's does; `Total requests:` still counts them all.
    pub max: usize,
}

impl TextStyle {
    /// sendmail's default listing: priority order, no limit.
    pub fn new(min_age: i64, verbose: bool, default_uid: u32) -> TextStyle {
        TextStyle {
            min_age,
            verbose,
            default_uid,
            holders: false,
            utf8: false,
            sort: QueueSortOrder::Priority,
            max: 0,
        }
    }
}

/// The text listing. Unreadable entries are described in the returned problem text
/// (printed after the listing).
pub fn list_text(
    spool: &Spool,
    filter: Option<&QueueRunArgs>,
    style: &TextStyle,
) -> Result<(String, String), Fatal> {
    let mut out = Vec::new();
    let problems = write_text(spool, filter, style, &mut out)?;
    Ok((String::from_utf8_lossy(&out).into_owned(), problems))
}

/// One entry of the text listing: what orders it, and where its lines are in the arena.
struct TextEntry {
    /// `O QueueSortOrder=`'s key ([`crate::queue::sort_key_of`]).
    key: (String, i64),
    priority: i64,
    created: i64,
    written: Option<std::time::SystemTime>,
    id: [u8; 14],
    /// Its lines in [`write_text`]'s arena: `start..end`.
    start: usize,
    end: usize,
}

/// [`list_text`], written to `w` as it is made: each entry is read once, its lines are
/// formatted at once into one arena and the entry dropped; only what orders the listing
/// is kept beside them (a queue of 100,000 entries costs its listing's size in memory,
/// not 100,000 parsed entries). Returns the problem text. Errors writing to `w` are
/// ignored, as a listing piped into `head` must not fail.
pub fn write_text(
    spool: &Spool,
    filter: Option<&QueueRunArgs>,
    style: &TextStyle,
    w: &mut dyn std::io::Write,
) -> Result<String, Fatal> {
    let mut problems = String::new();
    let mut entries: Vec<TextEntry> = Vec::new();
    let mut unreadable: Vec<Unreadable> = Vec::new();
    let mut arena = String::new();
    let now = clock::now();
    scan(spool, filter, &mut problems, &mut unreadable, |mut l| {
        let Ok(id) = <[u8; 14]>::try_from(l.id.as_bytes()) else {
            return;
        };
        if style.holders {
            with_holder(spool, &mut l);
        }
        let start = arena.len();
        entry_lines(&mut arena, &l, now, style);
        entries.push(TextEntry {
            key: crate::queue::sort_key_of(style.sort, &l.entry),
            priority: l.priority,
            created: l.entry.envelope.created,
            written: l.written,
            id,
            start,
            end: arena.len(),
        });
    })?;
    // The ID ends every key: a total order, which needs no stable sort (nor its buffer).
    match style.sort {
        // The queue run's orders (`crate::queue`): none is the listing's (queue ID)
        // order, random a shuffle.
        QueueSortOrder::None => entries.sort_unstable_by_key(|a| a.id),
        QueueSortOrder::Random => crate::queue::shuffle(&mut entries),
        QueueSortOrder::Priority => entries.sort_unstable_by(|a, b| {
            (a.priority, a.created, a.written, &a.id)
                .cmp(&(b.priority, b.created, b.written, &b.id))
        }),
        _ => entries
            .sort_unstable_by(|a, b| (&a.key, a.created, &a.id).cmp(&(&b.key, b.created, &b.id))),
    }
    unreadable.sort_by(|a, b| a.id.cmp(&b.id));
    let dir = spool.dir.display();
    let mut head = String::new();
    // An entry that cannot be read is a request all the same: the queue is not empty.
    let n = entries.len() + unreadable.len();
    if n == 0 {
        let _ = writeln!(head, "{dir} is empty");
        let _ = writeln!(head, "\t\tTotal requests: 0");
        let _ = w.write_all(head.as_bytes());
        return Ok(problems);
    }
    let _ = write!(
        head,
        "\t\t{dir} ({n} request{}",
        if n == 1 { "" } else { "s" }
    );
    // sendmail's `MaxQueueRunSize` heading (recorded: `bp-maxrun-*`).
    let shown_max = if style.max > 0 && n > style.max {
        let _ = write!(head, ", only {} printed", style.max);
        style.max
    } else {
        n
    };
    head.push_str(if style.verbose {
        ")\n-----Q-ID----- --Size-- -Priority- ---Q-Time--- --------Sender/Recipient--------\n"
    } else {
        ")\n-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n"
    });
    let _ = w.write_all(head.as_bytes());
    for e in entries.iter().take(shown_max) {
        let _ = w.write_all(arena.get(e.start..e.end).unwrap_or_default().as_bytes());
    }
    let mut tail = String::new();
    // After the readable ones, each on one line as sendmail lists a queue file it cannot
    // open (`%13s (%s)`, the ID and why).
    for u in unreadable
        .iter()
        .take(shown_max.saturating_sub(entries.len()))
    {
        let _ = writeln!(
            tail,
            "{:>13} (cannot read queue file: {})",
            u.id,
            shown(&u.why, usize::MAX)
        );
        // One in `hold/` is held all the same: never taken by a run; who held it, as
        // its state file records it, when that can be read.
        if u.held {
            tail.push_str("     QUARANTINE: held");
            if style.holders
                && let Some(h) = spool.recorded_holder(&u.id)
            {
                let _ = write!(
                    tail,
                    " by {}",
                    shown(&h.login, if style.verbose { 78 } else { 39 })
                );
            }
            tail.push('\n');
        }
    }
    let _ = writeln!(tail, "\t\tTotal requests: {n}");
    let _ = w.write_all(tail.as_bytes());
    Ok(problems)
}

/// `,"held_by":{"user":LOGIN,"uid":UID}`, the JSON listing's record of who held an
/// entry.
fn held_by_json(h: &crate::spool::entry::HeldBy) -> String {
    format!(
        ",\"held_by\":{{\"user\":{},\"uid\":{}}}",
        json_str(&h.login),
        h.uid
    )
}

/// A held entry whose state file says nothing of who held it (one left in the spool
/// by a hold cut short, or none at all): who held it as [`Spool::recorded_holder`]
/// finds it.
fn with_holder(spool: &Spool, l: &mut Listed) {
    if l.held && l.entry.state.held_by.is_none() {
        l.entry.state.held_by = spool.recorded_holder(&l.id);
    }
}

/// The lines of one entry in the text listing, appended to `s`.
fn entry_lines(s: &mut String, l: &Listed, now: i64, style: &TextStyle) {
    let TextStyle {
        min_age,
        verbose,
        default_uid,
        holders,
        utf8,
        ..
    } = *style;
    // An address in `room` columns, as this listing shows addresses.
    let addr = |a: &str, room: usize| {
        if utf8 {
            shown(a, room)
        } else {
            prtstr(a, room)
        }
    };
    // sendmail's widths: the reason and the sender, then a recipient.
    let (reason_room, sender_room, rcpt_room) = if verbose { (100, 78, 71) } else { (60, 39, 38) };
    let e = &l.entry;
    let sender = if e.envelope.sender.is_empty() && e.envelope.report.is_some() {
        // sendmail lists its own delivery reports as from MAILER-DAEMON.
        "MAILER-DAEMON"
    } else if e.envelope.sender.is_empty() {
        "<>"
    } else {
        e.envelope.sender.as_str()
    };
    let mark = if l.busy {
        '*'
    } else if e.state.tried_within(now, min_age) {
        '-'
    } else {
        ' '
    };
    let date = clock::ctime16(&clock::local(e.envelope.created));
    let _ = write!(s, "{:.14}{mark}{:>8} ", l.id, e.body_size());
    if verbose {
        // The date without its weekday, as sendmail's `ctime() + 4`.
        let short: String = date.chars().skip(4).take(12).collect();
        let warned = if e.state.warned { '+' } else { ' ' };
        let _ = write!(s, "{:>10}{warned}{short} ", l.priority);
    } else {
        let _ = write!(s, "{date:.16} ");
    }
    let _ = writeln!(s, "{}", addr(sender, sender_room));
    // sendmail's mark of a quarantined entry (`mailq -qQ`; recorded:
    // compat-tests/differences/bp-quarantined), before the reason, as
    // queue.c's print_single_queue writes them.
    if l.held {
        s.push_str("     QUARANTINE: held");
        // sendmail's line carries the quarantine's reason alone; who held it is
        // rsendmail's record, named by `rsendmail-admin list` only.
        if let Some(h) = e.state.held_by.as_ref().filter(|_| holders) {
            let _ = write!(s, " by {}", shown(&h.login, sender_room));
        }
        s.push('\n');
    }
    // An action asked for during its delivery: rsendmail's own line (sendmail has no
    // such request), after the quarantine line.
    if let Some(m) = &l.mark {
        let _ = writeln!(
            s,
            "     MARKED: {} asked for by {}",
            m.what(),
            shown(&m.by, sender_room)
        );
    }
    // The body type and the reason share a line, as in sendmail.
    match (&e.envelope.body_type, &e.state.reason) {
        (None, None) => {}
        (body, reason) => {
            let _ = write!(s, "    {:>10.10}", shown(body.as_deref().unwrap_or(""), 10));
            if let Some(r) = reason {
                let _ = write!(s, "   ({})", shown(r, reason_room));
            }
            s.push('\n');
        }
    }
    // sendmail writes a controlling-user line (`C`) before a recipient whose
    // controlling address differs from the one before, and `-v` shows it.
    let mut last_ctl = None;
    for (rcpt, state, why, ctl) in pending_recipients(e) {
        if verbose && ctl != last_ctl {
            let _ = writeln!(s, "\t\t\t\t\t\t(---{}---)", ctl_line(ctl, default_uid));
            last_ctl = ctl;
        }
        if verbose {
            let _ = writeln!(s, "\t\t\t\t\t\t{}", addr(&rcpt, rcpt_room));
            // sendmail keeps each recipient's own reason (its `M` line) and shows it
            // after the recipient.
            if let (RcptState::Deferred, Some(why)) = (state, why) {
                let why = format!("Deferred: {why}");
                let _ = writeln!(s, "\t\t ({})", shown(&why, reason_room));
            }
        } else {
            let _ = writeln!(s, "\t\t\t\t\t {}", addr(&rcpt, rcpt_room));
        }
    }
}

/// The text of sendmail's controlling-user line for `ctl` (what expanded to the
/// recipients that follow; `None`: nothing, the line `(------)`): an alias `list` as
/// `list:UID:0:list` (sendmail delivers an alias's members as `DefaultUser`, whose uid
/// is `default_uid`, with group 0; alias.c), an `:include:` file as `::include:/path`
/// (recorded: `bp-v-alias`, `bp-v-alias-nested`, `bp-v-alias-include`). Shown as
/// [`prtstr`] shows addresses, whole.
fn ctl_line(ctl: Option<&str>, default_uid: u32) -> String {
    match ctl {
        None => String::new(),
        Some(c) if c.starts_with(":include:") => prtstr(&format!(":{c}"), usize::MAX),
        // A user's `:include:` file: `user:uid:gid::include:/path` as it was stored.
        Some(c) if c.contains("::include:") => prtstr(c, usize::MAX),
        Some(c) => prtstr(&format!("{c}:{default_uid}:0:{c}"), usize::MAX),
    }
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
            // Every other control character and invisible format character (a
            // bidirectional override...) as `\uXXXX` (a pair of them beyond the BMP):
            // the JSON holds the same text, and a terminal shows it as it is.
            c if !crate::text::is_safe(c) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(o, "\\u{u:04x}");
                }
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `mailq --json`: one object per entry and line; an entry that cannot be read is an
/// object of its own, `{"queue_name":"queued"|"hold","queue_id":ID,"error":TEXT}` (TEXT
/// as the text listing's `qfID: cannot read queue file: TEXT` line gives it), so that
/// every line of the output is JSON. The second string: the problems of the spool
/// itself (a folder that is not one), text lines for stderr. With `holders`
/// (`rsendmail-admin list --json`), a held entry whose record says who held it has
/// `"held_by":{"user":LOGIN,"uid":UID}`.
pub fn list_json(
    spool: &Spool,
    filter: Option<&QueueRunArgs>,
    holders: bool,
) -> Result<(String, String), Fatal> {
    let mut problems = String::new();
    let (entries, unreadable) = collect(spool, filter, &mut problems)?;
    let mut s = String::new();
    for u in &unreadable {
        let _ = write!(
            s,
            "{{\"queue_name\":{},\"queue_id\":{},\"error\":{}",
            json_str(if u.held { "hold" } else { "queued" }),
            json_str(&u.id),
            json_str(&format!(
                "cannot read queue file: {}",
                shown(&u.why, usize::MAX)
            ))
        );
        if holders
            && u.held
            && let Some(h) = spool.recorded_holder(&u.id)
        {
            s.push_str(&held_by_json(&h));
        }
        s.push_str("}\n");
    }
    for mut l in entries {
        if holders {
            with_holder(spool, &mut l);
        }
        let l = &l;
        let e = &l.entry;
        let queue_name = if l.held {
            "hold"
        } else if l.busy {
            "active"
        } else if e.state.attempts > 0 {
            "deferred"
        } else {
            "queued"
        };
        let rcpts: Vec<String> = pending_recipients(e)
            .iter()
            .map(|(a, st, why, ctl)| {
                let mut o = format!(
                    "{{\"address\":{},\"state\":{}",
                    json_str(a),
                    json_str(st.word())
                );
                if let Some(w) = why {
                    let _ = write!(o, ",\"delay_reason\":{}", json_str(w));
                }
                if let Some(c) = ctl {
                    let _ = write!(o, ",\"expanded_from\":{}", json_str(c));
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
        if let Some(h) = e.state.held_by.as_ref().filter(|_| holders && l.held) {
            s.push_str(&held_by_json(h));
        }
        if let Some(m) = &l.mark {
            let _ = write!(
                s,
                ",\"marked\":{{\"action\":{},\"by\":{},\"at\":{}",
                json_str(match m.request {
                    Request::Delete => "delete",
                    Request::Hold => "hold",
                    Request::Bounce { .. } => "bounce",
                }),
                json_str(&m.by),
                m.at
            );
            if let Request::Bounce { reason, .. } = &m.request {
                let _ = write!(s, ",\"reason\":{}", json_str(reason));
            }
            s.push('}');
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
    fn controlling_user_lines_as_sendmail_shows_them() {
        assert_eq!(ctl_line(None, 8), "");
        assert_eq!(ctl_line(Some("list"), 8), "list:8:0:list");
        assert_eq!(ctl_line(Some(":include:/l/m"), 8), "::include:/l/m");
        assert_eq!(
            ctl_line(Some("rsmtest:1001:1001::include:/l/m"), 8),
            "rsmtest:1001:1001::include:/l/m"
        );
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn reasons_shown_printable() {
        // (reason, room, shown)
        let table: &[(&str, usize, &str)] = &[
            ("Deferred: 451 4.4.1 busy", 60, "Deferred: 451 4.4.1 busy"),
            ("abcdef", 3, "abc"),
            ("Grüße", 4, "Grüß"),
            ("äöüß", 2, "äö"),
            ("a\rb", 9, "a\\015b"),
            ("\u{1b}[2J\u{7}", 20, "\\033[2J\\007"),
            ("x\0\u{7f}", 9, "x\\000\\177"),
            ("c1\u{9b}m", 20, "c1\\302\\233m"),
            ("ab\u{1b}", 5, "ab"),
            ("a\\b", 9, "a\\b"),
        ];
        for (text, room, want) in table {
            assert_eq!(shown(text, *room), *want, "{text:?} in {room}");
        }
    }

    #[test]
    fn reasons_keep_every_printable_character() {
        // Every ASCII punctuation character, and text that is not ASCII, is shown as it
        // is, within the room and whole when it fits: only the room cuts a reason.
        let punct: String = (b'!'..=b'~')
            .map(char::from)
            .filter(char::is_ascii_punctuation)
            .collect();
        assert_eq!(punct.len(), 32);
        for c in punct.chars() {
            let reason = format!("u {c}... Unbalanced '{c}'");
            assert_eq!(shown(&reason, 60), reason);
        }
        assert_eq!(shown(&punct, 60), punct);
        for text in ["Grüße, Zoë: «non» — 日本語", "unbal <... Unbalanced '<'"] {
            let reason = format!("DIR/inc: line 4: {text}");
            assert_eq!(shown(&reason, 60), reason);
        }
        // The room counts characters, not octets.
        let wide = "ä".repeat(60);
        assert_eq!(shown(&format!("{wide}x"), 60), wide);
    }

    #[test]
    fn prtstr_as_sendmail() {
        // (text, room, shown): sendmail's queue.c prtstr.
        let table: &[(&str, usize, &str)] = &[
            ("abcdef", 3, "abc"),
            ("ab", 3, "ab"),
            ("a b", 9, "a b"),
            ("a\\b", 9, "a\\\\b"),
            ("ab\\", 3, "ab"),
            ("\u{1b}[2J", 9, "\\033[2J"),
            ("ä", 9, "\\303\\244"),
            ("ä", 5, "\\303"),
            ("xä", 4, "x"),
            ("", 9, ""),
        ];
        for (text, room, shown) in table {
            assert_eq!(prtstr(text, *room), *shown, "{text:?} in {room}");
        }
    }
}
