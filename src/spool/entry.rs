//! The text of queue files: the envelope section of `qf<ID>` and the state file `sf<ID>`.
//!
//! Both are line-oriented `key value` text. The first line names the format and its
//! version; unknown keys (and unknown `key=value` fields of a `rcpt` line, such as `ctl=`,
//! added without a new version) are ignored so that a newer rsendmail's files stay readable.
//!
//! A queue file of version 2 or 3 ([`QUEUE_VERSION`]) carries its own length: the second line
//! is `message-bytes` and the message's exact length in bytes, twenty digits wide (the
//! writer puts zeros there and the spool's commit fills in the count,
//! [`LENGTH_AT`]). The reader (`Spool::read_entry`) checks that the file is exactly the
//! envelope section and that many bytes long, so a truncated or extended file is refused
//! as corrupt rather than delivered as a partial message. Version 1 files (written before
//! the length was recorded) are read as they always were: the message runs to the end of
//! the file. In version 3 the third line, `message-sum`, is a 64-bit sum ([`sum_update`], sixteen
//! hex digits, filled in by the commit as the length is, at [`SUM_AT`]) of the message's
//! bytes and then of the envelope section with those digits as zeros; a delivery checks
//! it before it sends anything, so a file of the right length that was damaged (a zero
//! tail, changed bytes in the message or the envelope) is refused too. A version 3 file
//! without the line is refused; version 2 files (written before it was recorded) are
//! checked by their length alone, unless they have the line.
//! Values are escaped (`%XX` for bytes up to space, DEL and `%`), so a value can never
//! contain a line break, and fields can be separated by spaces.
//!
//! A queue file may be damaged or written by someone else: any text either parses or
//! gives an error naming the bad line (the entry is then moved aside), never a panic.
//! Lines are cut with `split_once`, escapes decoded without indexing (the lints below
//! keep it so), and numbers are read with their own type's range, so a negative size or
//! a count too large for its field is an error rather than a value that wraps.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use std::fmt::Write as _;
use std::str::FromStr;

pub const QUEUE_MAGIC: &str = "rsendmail-queue";
pub const STATE_MAGIC: &str = "rsendmail-state";
/// What a deliverer that is not root says of a recipient only a root deliverer can
/// deliver (another user's mailbox, a command, a file, another user's `.forward`): the
/// recipient stays queued for the root queue runner ([`State::waits_for_root`]).
pub const NEEDS_ROOT_RUNNER: &str = "needs the root queue runner";
/// The version of the queue files written now: 3, with `message-bytes` and `message-sum`.
pub const QUEUE_VERSION: u32 = 3;
/// The version of the state files written now.
pub const STATE_VERSION: u32 = 1;
/// The room a delivery reserves for the replies' texts of each recipient of an entry in
/// its next state record, in octets (`LockedEntry::reserve_state`): [`reply_room`].
pub const REPLY_ROOM_EACH: usize = 512;
/// The most room reserved for the replies' texts of one entry's record, in octets.
pub const REPLY_ROOM_MAX: usize = 64 * 1024;

/// The room reserved for the replies' texts in the state record of an entry of
/// `recipients` recipients: [`REPLY_ROOM_EACH`] each and 1 KiB more, at most
/// [`REPLY_ROOM_MAX`].
pub fn reply_room(recipients: usize) -> usize {
    recipients
        .saturating_mul(REPLY_ROOM_EACH)
        .saturating_add(1024)
        .min(REPLY_ROOM_MAX)
}

/// The lines before the last of a multi-line reply (`code-text` each) as the state
/// record keeps them ([`State::reply_lines`]): joined by LF, as many from the first as
/// fit, escaped, in `room` octets with the `reply IDX ` line they are written on; when
/// some do not, the line `(N more lines not kept)` after those that do. None when
/// there are none, or not even that line fits.
pub fn reply_lines_kept(lines: &[String], room: usize) -> Option<String> {
    if lines.is_empty() {
        return None;
    }
    // `reply ` and the index (at most the digits of usize::MAX) and the line end.
    let room = room.saturating_sub("reply  \n".len() + usize::MAX.to_string().len());
    let cost = |kept: &[String]| {
        kept.iter()
            .map(|l| escape(l).len())
            .sum::<usize>()
            .saturating_add("%0A".len().saturating_mul(kept.len().saturating_sub(1)))
    };
    if cost(lines) <= room {
        return Some(lines.join("\n"));
    }
    (0..lines.len()).rev().find_map(|k| {
        let kept = lines.get(..k)?;
        let mut out: Vec<String> = kept.to_vec();
        out.push(format!("({} more lines not kept)", lines.len() - k));
        (cost(&out) <= room).then(|| out.join("\n"))
    })
}
/// The width of the `message-bytes` value: the digits of `u64::MAX`.
pub const LENGTH_DIGITS: usize = 20;
/// Where the digits of `message-bytes` start in a queue file: [`Envelope::to_text`]
/// writes that line second, so the commit can fill it in without reading the file back.
pub const LENGTH_AT: usize = QUEUE_MAGIC.len() + " 2\nmessage-bytes ".len();
/// The width of the `message-sum` value: sixteen hex digits (64 bits).
pub const SUM_DIGITS: usize = 16;
/// Where the digits of `message-sum` start: [`Envelope::to_text`] writes that line
/// third, right after `message-bytes`, so the commit can fill it in too.
pub const SUM_AT: usize = LENGTH_AT + LENGTH_DIGITS + "\nmessage-sum ".len();
/// The `message-sum` of no bytes (FNV-1a's offset basis).
pub const SUM_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The `message-sum` of the bytes that follow those summed in `sum` (FNV-1a, 64 bits):
/// `sum_update(sum_update(SUM_START, a), b)` is the sum of `a` then `b`. Not a defence
/// against anyone who writes the spool on purpose; it finds damage the length cannot:
/// a zero tail, changed bytes.
pub fn sum_update(mut sum: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        sum ^= u64::from(b);
        sum = sum.wrapping_mul(0x0000_0100_0000_01b3);
    }
    sum
}

/// The `message-sum` an envelope section's text records: `None` when it has none
/// (files written before it was recorded), an error when the value is not sixteen hex
/// digits.
pub fn message_sum(text: &str) -> Option<Result<u64, String>> {
    let line = text
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("message-sum "))?;
    // Exactly as the commit writes it: sixteen lowercase hex digits (a sign or a digit
    // of another case would read as the same number from different bytes).
    let written = line.len() == SUM_DIGITS
        && line
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    Some(
        u64::from_str_radix(line, 16)
            .ok()
            .filter(|_| written)
            .ok_or_else(|| format!("bad message-sum {}", quoted(line))),
    )
}

/// `%XX`-escape bytes that could break the line format.
pub fn escape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    for b in s.bytes() {
        if b <= b' ' || b == 0x7f || b == b'%' {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    // Only ASCII bytes were replaced, so the result is still valid UTF-8.
    String::from_utf8_lossy(&out).into_owned()
}

/// Undo [`escape`]; `None` for a malformed escape (a `%` without two hex digits after
/// it) or for text that is not UTF-8 once decoded.
pub fn unescape(s: &str) -> Option<String> {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex)?;
            let lo = bytes.next().and_then(hex)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// A number of a queue file's `line`, in the range of its field's type.
fn number<T: FromStr>(v: &str, line: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("bad number {} in {}", quoted(v), quoted(line)))
}

/// The uid a `user` line records and its name as written (`rest`: the line after its
/// key).
fn user_field<'a>(rest: &'a str, line: &str) -> Result<(u32, &'a str), String> {
    let (uid, name) = rest.split_once(' ').unwrap_or((rest, ""));
    Ok((number(uid, line)?, name))
}

/// The uid `line` records when it is an envelope's `user` line, read as
/// [`Envelope::parse`] reads it (an error if it is not a number); `None` for any other
/// line.
pub fn user_line_uid(line: &str) -> Option<Result<u32, String>> {
    let rest = line.strip_prefix("user ")?;
    Some(user_field(rest, line).map(|(uid, _)| uid))
}

/// One envelope recipient as submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    /// DSN NOTIFY keywords (`FAILURE,DELAY`), if given.
    pub notify: Option<String>,
    /// DSN ORCPT (`rfc822;addr`), if given.
    pub orcpt: Option<String>,
    /// The text it was written as, when that differs (`Bob <bob@example.org>`); mailq
    /// shows it, as sendmail does.
    pub display: Option<String>,
    /// The envelope sender for this recipient when it is not the entry's: for the members
    /// an alias with an owner alias expanded to, what `owner-<list>` names when that is
    /// one address, else `owner-<list>` (`rsendmail::aliases`).
    pub sender: Option<String>,
    /// For `|command` and `/file` recipients: the uid they run as (the owner of the
    /// aliases, `:include:` or `.forward` file they came from).
    pub owner: Option<u32>,
    /// What expanded to it (the `ctl=` field; absent in files written before it was
    /// recorded): the nearest alias (`list`) or `:include:` file (`:include:/path`),
    /// which `mailq -v` shows as sendmail's controlling-user line.
    pub ctl: Option<String>,
    /// For a target of an alias, `:include:` or `.forward` expansion: the recipient it
    /// was expanded from, as written (`list`), which its report names (`(expanded from:
    /// list)`, sendmail's).
    pub expanded_from: Option<String>,
    /// For such a target: the qualified address the expansion began with
    /// (`list@host.example`), its report's `Final-Recipient:` as sendmail writes it
    /// (compat case alias-list-member-reject5).
    pub final_rcpt: Option<String>,
    /// One of several targets of an expansion, or below one: its NOTIFY is honoured here
    /// for failures and delays but not passed on in RCPT, and it gets no success receipt,
    /// as sendmail does only through one-to-one aliases (the deliverer's `primary`).
    pub fanout: bool,
    /// For a target of an expansion at delivery (a `.forward`): the number of the
    /// recipient it was expanded from (qf key `parent=`; absent for the recipients an
    /// entry was queued with, and in files written before it was kept). The targets
    /// take that recipient's place in the queue order ([`Envelope::queue_order`]), as
    /// sendmail expands a `.forward` where it meets the user among the recipients.
    pub parent: Option<usize>,
    /// Its place in sendmail's queue order at submission (qf key `place=`), where the
    /// queue file's order (the local recipients first) differs from it: written for
    /// every recipient of such an entry, absent in others and in older files.
    pub place: Option<usize>,
}

impl Recipient {
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            notify: None,
            orcpt: None,
            display: None,
            sender: None,
            owner: None,
            ctl: None,
            expanded_from: None,
            final_rcpt: None,
            fanout: false,
            parent: None,
            place: None,
        }
    }

    /// What mailq shows: the text it was written as, else the address as sendmail
    /// prints it (`crate::aliases::shown_target`).
    pub fn shown(&self) -> std::borrow::Cow<'_, str> {
        match &self.display {
            Some(d) => std::borrow::Cow::Borrowed(d.as_str()),
            None => crate::aliases::shown_target(&self.address),
        }
    }
}

/// The envelope section of a queue file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    /// Submission time, seconds since the epoch.
    pub created: i64,
    /// Reverse path; empty is the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// Who submitted it.
    pub user: String,
    pub uid: u32,
    /// The delivery mode it was submitted with (`b`, `i`, `q`, `d`).
    pub mode: char,
    /// Bytes of the message header block (headers and the blank line) that follows.
    pub header_bytes: u64,
    /// Bytes of that block that rsendmail added (`Received:`, a missing `Date:`, ...):
    /// the rest is the message as submitted, whose size sendmail's queue priority counts
    /// (see `mailq`). 0 in entries written before it was recorded.
    pub added_header_bytes: u64,
    /// Bytes of the header block as it was submitted, the fields rsendmail removed
    /// (`Bcc:`, `Content-Length:`, ...) or rewrote included: the size sendmail's queue
    /// priority counts (see `mailq`). `None` in entries written before it was recorded
    /// (the priority then counts the header block less the fields rsendmail added).
    pub submitted_header_bytes: Option<u64>,
    pub body_type: Option<String>,
    pub envid: Option<String>,
    pub ret: Option<String>,
    /// For delivery reports rsendmail made: `failure`, `delay`, `success`, or `double`
    /// (a report about an undeliverable report, sent to the postmaster).
    pub report: Option<String>,
    /// For delivery reports: the key that made the report's ID ([`super::report_queue_id`]):
    /// `ORIGINAL N HASH`, its original's ID, the number of reports that original had
    /// queued before it, and a hash of what it reports (`report-of`). A run that
    /// repeats a crashed one's step finds the report by it, and queues it again never.
    pub report_of: Option<String>,
    /// For the report of an entry `rsendmail-admin bounce` returned: who asked, in the
    /// report's words (`returned-by TEXT`, escaped): "by the administrator", "at its
    /// sender's request (user alice)", "at the request of user bob". `show` says it.
    pub returned_by: Option<String>,
    /// For delivery reports: the uid of the owner of the entry the report is about
    /// (`report-owner UID`), whose the report is: the user who may act on it besides
    /// root and the spool's group ([`Envelope::owner`]). The `user` line records the
    /// delivery run that queued it, which may be another user's (a background delivery
    /// takes the other entries that wait). `None` in reports written before it was
    /// recorded, which are then no user's.
    pub report_owner: Option<u32>,
    /// VERP (`crate::verp`): the two delimiters each recipient's envelope sender is made
    /// with (`verp +=`), when the message asked for it. A reader that does not know
    /// the key (before it was written) sends the message with its one sender.
    pub verp: Option<String>,
    /// How many times delivery-time expansion (aliases, `.forward`) has re-queued the
    /// message: a loop between `.forward` files ends at [`crate::aliases::MAX_DEPTH`].
    pub expansions: u32,
    /// Recipients refused at submission as unknown users (`refused-users`): sendmail
    /// had them on the envelope before it looked them up, so its queue priority counts
    /// them with the recipients queued (see `mailq`; recorded:
    /// `greet421-two-bad-report-bp-v`). 0 in entries written before it was recorded.
    pub refused_users: u32,
    /// Header fields whose addresses were qualified when the message was taken in
    /// (`taken-field QUALIFIED TAKEN`): each field as queued and as it was before (the
    /// `From:` rsendmail added, as sendmail queues it: `From: root <root>`). The copy in
    /// `~/dead.letter` has them as taken, as sendmail's has (it qualifies only what it
    /// relays; recorded: `xlog-bounce-local-odi`). Empty in entries written before.
    pub taken_fields: Vec<(String, String)>,
    /// The message's exact length in bytes (`message-bytes`), as read from a version 2
    /// file; `None` for a version 1 file, which does not record it. Writers leave it
    /// `None`: [`Envelope::to_text`] then writes zeros, which the commit replaces with
    /// the count (`NewEntry::commit`).
    pub message_bytes: Option<u64>,
}

impl Default for Envelope {
    /// An empty envelope in queue-only mode; callers fill in what they know.
    fn default() -> Envelope {
        Envelope {
            id: String::new(),
            created: 0,
            sender: String::new(),
            recipients: Vec::new(),
            user: String::new(),
            uid: 0,
            mode: 'q',
            header_bytes: 0,
            added_header_bytes: 0,
            submitted_header_bytes: None,
            body_type: None,
            envid: None,
            ret: None,
            report: None,
            report_of: None,
            returned_by: None,
            report_owner: None,
            verp: None,
            expansions: 0,
            refused_users: 0,
            taken_fields: Vec::new(),
            message_bytes: None,
        }
    }
}

impl Envelope {
    /// The numbers of all recipients in sendmail's queue order (a transaction's
    /// RCPTs go out in its reverse): the recipients the entry was queued with in their
    /// order at submission (`place`, else as written), each followed at once by the
    /// targets expanded from it at delivery (in the order they were added), depth
    /// first, as sendmail expands a `.forward` where it meets the user (recorded:
    /// `forward-order-mid-odi`, `forward-order-two-odi`, `forward-order-chain-odi`,
    /// `forward-order-alias-odi`, `forward-order-odq-q`). A `parent` that is not an
    /// earlier recipient counts as none.
    pub fn queue_order(&self) -> Vec<usize> {
        let n = self.recipients.len();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut roots: Vec<usize> = Vec::new();
        for (i, r) in self.recipients.iter().enumerate() {
            match r
                .parent
                .filter(|&p| p < i)
                .and_then(|p| children.get_mut(p))
            {
                Some(c) => c.push(i),
                None => roots.push(i),
            }
        }
        roots.sort_by_key(|&i| self.recipients.get(i).and_then(|r| r.place).unwrap_or(i));
        let mut order = Vec::with_capacity(n);
        let mut stack: Vec<usize> = roots.into_iter().rev().collect();
        while let Some(i) = stack.pop() {
            order.push(i);
            if let Some(c) = children.get(i) {
                stack.extend(c.iter().rev());
            }
        }
        order
    }

    /// The envelope sender `r` goes out with when it is not the entry's: its list owner's
    /// ([`Recipient::sender`]), never for a message from the null sender. A report keeps
    /// `<>` through an owner alias, as sendmail's does: an owner that names its own list
    /// would otherwise turn each failure into a new message from the owner to the list,
    /// a loop without end.
    /// The uid of the user whose entry this is, who may act on it besides root and the
    /// spool's group: its submitter (the `user` line), or for a delivery report the
    /// owner of the entry it reports on (`report-owner`), never the uid of the delivery
    /// run that queued it; `None` for a report written before that was recorded.
    pub fn owner(&self) -> Option<u32> {
        if self.report.is_some() {
            self.report_owner
        } else {
            Some(self.uid)
        }
    }

    /// An owner who is the entry's sender is no other sender: its list's members go
    /// out with the sender's other recipients, in one transaction (recorded:
    /// `owner-list-self-direct-odi`).
    pub fn owner_sender<'a>(&self, r: &'a Recipient) -> Option<&'a str> {
        r.sender
            .as_deref()
            .filter(|s| !self.sender.is_empty() && *s != self.sender)
    }

    /// The text of the envelope section, ending with the blank separator line. Always
    /// version 2, with `message-bytes` second (at [`LENGTH_AT`]), twenty digits wide.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(256);
        let _ = writeln!(s, "{QUEUE_MAGIC} {QUEUE_VERSION}");
        let _ = writeln!(
            s,
            "message-bytes {:0width$}",
            self.message_bytes.unwrap_or(0),
            width = LENGTH_DIGITS
        );
        // Filled in by the commit, like the length.
        let _ = writeln!(s, "message-sum {:0width$x}", 0, width = SUM_DIGITS);
        let _ = writeln!(s, "id {}", self.id);
        let _ = writeln!(s, "created {}", self.created);
        let _ = writeln!(s, "user {} {}", self.uid, escape(&self.user));
        let _ = writeln!(s, "mode {}", self.mode);
        let _ = writeln!(s, "header-bytes {}", self.header_bytes);
        if self.added_header_bytes > 0 {
            let _ = writeln!(s, "added-header-bytes {}", self.added_header_bytes);
        }
        if let Some(n) = self.submitted_header_bytes {
            let _ = writeln!(s, "submitted-header-bytes {n}");
        }
        if self.expansions > 0 {
            let _ = writeln!(s, "expansions {}", self.expansions);
        }
        if self.refused_users > 0 {
            let _ = writeln!(s, "refused-users {}", self.refused_users);
        }
        for (queued, taken) in &self.taken_fields {
            let _ = writeln!(s, "taken-field {} {}", escape(queued), escape(taken));
        }
        if self.sender.is_empty() {
            let _ = writeln!(s, "sender");
        } else {
            let _ = writeln!(s, "sender {}", escape(&self.sender));
        }
        for (k, v) in [
            ("body", &self.body_type),
            ("envid", &self.envid),
            ("ret", &self.ret),
            ("report", &self.report),
            ("report-of", &self.report_of),
            ("returned-by", &self.returned_by),
            ("verp", &self.verp),
        ] {
            if let Some(v) = v {
                let _ = writeln!(s, "{k} {}", escape(v));
            }
        }
        if let Some(u) = self.report_owner {
            let _ = writeln!(s, "report-owner {u}");
        }
        for r in &self.recipients {
            let _ = write!(s, "rcpt {}", escape(&r.address));
            if let Some(n) = &r.notify {
                let _ = write!(s, " notify={}", escape(n));
            }
            if let Some(o) = &r.orcpt {
                let _ = write!(s, " orcpt={}", escape(o));
            }
            if let Some(d) = &r.display {
                let _ = write!(s, " display={}", escape(d));
            }
            if let Some(d) = &r.sender {
                let _ = write!(s, " sender={}", escape(d));
            }
            if let Some(o) = r.owner {
                let _ = write!(s, " owner={o}");
            }
            if let Some(f) = &r.expanded_from {
                let _ = write!(s, " from={}", escape(f));
            }
            if let Some(f) = &r.final_rcpt {
                let _ = write!(s, " final={}", escape(f));
            }
            if r.fanout {
                s.push_str(" fanout=1");
            }
            if let Some(c) = &r.ctl {
                let _ = write!(s, " ctl={}", escape(c));
            }
            if let Some(p) = r.parent {
                let _ = write!(s, " parent={p}");
            }
            if let Some(p) = r.place {
                let _ = write!(s, " place={p}");
            }
            s.push('\n');
        }
        s.push('\n');
        s
    }

    /// Parse the envelope section (the lines before the first blank line).
    pub fn parse(text: &str) -> Result<Envelope, String> {
        let mut lines = text.lines();
        let first = lines.next().ok_or("empty queue file")?;
        let version = first
            .strip_prefix(QUEUE_MAGIC)
            .map(str::trim)
            .ok_or_else(|| format!("not a queue file (first line {})", quoted(first)))?;
        let version: u32 = version
            .parse()
            .map_err(|_| format!("bad version {}", quoted(version)))?;
        if version > QUEUE_VERSION {
            return Err(format!(
                "queue file version {version} is newer than {QUEUE_VERSION}"
            ));
        }
        let mut env = Envelope::default();
        let mut have_sender = false;
        let mut message_bytes = None;
        let mut have_sum = false;
        for line in lines {
            if line.is_empty() {
                break;
            }
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            let un = |v: &str| unescape(v).ok_or_else(|| format!("bad escape in {}", quoted(line)));
            match key {
                "id" => env.id = rest.to_string(),
                "created" => env.created = number(rest, line)?,
                "user" => {
                    let (uid, name) = user_field(rest, line)?;
                    env.uid = uid;
                    env.user = un(name)?;
                }
                "mode" => env.mode = rest.chars().next().unwrap_or('q'),
                "header-bytes" => env.header_bytes = number(rest, line)?,
                "added-header-bytes" => env.added_header_bytes = number(rest, line)?,
                "submitted-header-bytes" => env.submitted_header_bytes = Some(number(rest, line)?),
                "sender" => {
                    env.sender = un(rest)?;
                    have_sender = true;
                }
                "body" => {
                    env.body_type =
                        Some(un(rest.trim_end_matches(|c: char| c.is_ascii_whitespace()))?)
                }
                "envid" => env.envid = Some(un(rest)?),
                "ret" => env.ret = Some(un(rest)?),
                "report" => env.report = Some(un(rest)?),
                "report-of" => env.report_of = Some(un(rest)?),
                "returned-by" => env.returned_by = Some(un(rest)?),
                "report-owner" => env.report_owner = Some(number(rest, line)?),
                "verp" => {
                    let d = un(rest)?;
                    crate::verp::check_delimiters(&d)
                        .map_err(|e| format!("{e} in {}", quoted(line)))?;
                    env.verp = Some(d);
                }
                "expansions" => env.expansions = number(rest, line)?,
                "refused-users" => env.refused_users = number(rest, line)?,
                "taken-field" => {
                    let (queued, taken) = rest.split_once(' ').unwrap_or((rest, ""));
                    env.taken_fields.push((un(queued)?, un(taken)?));
                }
                "message-bytes" => message_bytes = Some(number(rest, line)?),
                // Its value is checked by the spool, with the bytes it sums.
                "message-sum" => have_sum = true,
                "rcpt" => {
                    let mut fields = rest.split(' ');
                    let addr = un(fields.next().unwrap_or(""))?;
                    let mut r = Recipient::new(addr);
                    for f in fields {
                        match f.split_once('=') {
                            Some(("notify", v)) => r.notify = Some(un(v)?),
                            Some(("orcpt", v)) => r.orcpt = Some(un(v)?),
                            Some(("display", v)) => r.display = Some(un(v)?),
                            Some(("sender", v)) => r.sender = Some(un(v)?),
                            Some(("owner", v)) => r.owner = Some(number(v, line)?),
                            Some(("ctl", v)) => r.ctl = Some(un(v)?),
                            Some(("from", v)) => r.expanded_from = Some(un(v)?),
                            Some(("final", v)) => r.final_rcpt = Some(un(v)?),
                            Some(("fanout", v)) => r.fanout = v == "1",
                            Some(("parent", v)) => r.parent = Some(number(v, line)?),
                            Some(("place", v)) => r.place = Some(number(v, line)?),
                            _ => {}
                        }
                    }
                    env.recipients.push(r);
                }
                _ => {} // unknown keys are ignored (newer writers)
            }
        }
        if env.id.is_empty() {
            return Err("queue file has no id".into());
        }
        if !have_sender {
            return Err("queue file has no sender".into());
        }
        if env.recipients.is_empty() {
            return Err("queue file has no recipients".into());
        }
        // Version 1 is read as it was written: without a length, whatever its lines.
        if version >= 2 {
            env.message_bytes =
                Some(message_bytes.ok_or("queue file has no message-bytes (its length)")?);
        }
        if version >= 3 && !have_sum {
            return Err("queue file has no message-sum".into());
        }
        Ok(env)
    }
}

/// What happened to one recipient so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RcptState {
    /// Not yet tried, or to be tried again.
    Pending,
    /// Temporarily failed; will be retried.
    Deferred,
    /// Final: delivered.
    Delivered,
    /// Final: failed permanently (a bounce is owed or was sent).
    Failed,
}

impl RcptState {
    pub fn word(self) -> &'static str {
        match self {
            RcptState::Pending => "pending",
            RcptState::Deferred => "deferred",
            RcptState::Delivered => "delivered",
            RcptState::Failed => "failed",
        }
    }

    fn from_word(w: &str) -> Option<RcptState> {
        Some(match w {
            "pending" => RcptState::Pending,
            "deferred" => RcptState::Deferred,
            "delivered" => RcptState::Delivered,
            "failed" => RcptState::Failed,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, RcptState::Delivered | RcptState::Failed)
    }
}

/// The mutable part of an entry, kept in `sf<ID>` and replaced atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub attempts: u32,
    pub last_attempt: Option<i64>,
    pub next_attempt: Option<i64>,
    /// When the entry's open local recipients are next due, when that is before
    /// `next_attempt` (key `local-next-attempt`; absent in files written before it was
    /// kept, whose local recipients follow `next_attempt`): set by an attempt that
    /// deferred a local recipient while a remote one stays open, so that a locked or full
    /// mailbox, or a program that exited 75, is tried again after `O QueueRetryLocal=`
    /// rather than after the remote destination's back-off. The periodic runner tries
    /// only the local recipients then (`Part::Local`, which leaves `attempts` and
    /// `next_attempt` as they are); a reader that does not know the key tries them with
    /// the remote ones, as before.
    pub local_next_attempt: Option<i64>,
    /// The reason mailq shows for the entry (`Deferred: ...`).
    pub reason: Option<String>,
    /// Per recipient, by index in the envelope: state and its last reply (of a
    /// multi-line reply its last line, as `mailq` and the log show it).
    pub recipients: Vec<(usize, RcptState, Option<String>)>,
    /// Per recipient whose last reply had more than one line: the lines before the last
    /// (`code-text` each, as the server sent them, joined by LF), as many as the room
    /// reserved for the record allows ([`reply_lines_kept`]); `rsendmail-admin show`
    /// shows them before the last line (key `reply IDX TEXT`, absent in files written
    /// before it was kept, which hold the last line alone). Set and cleared with the
    /// recipient's reply ([`State::set_recipient`]).
    pub reply_lines: Vec<(usize, String)>,
    /// A delay warning has been sent.
    pub warned: bool,
    /// How many delivery reports the entry has queued (key `reports N`, absent when
    /// none): the next one's key begins with it ([`crate::spool::report_queue_id`]).
    /// Recorded with the attempt that queued them; a run that died before that record
    /// makes the same keys again, and finds its reports queued.
    pub reports: u32,
    /// `rsendmail-admin retry`: due now; the periodic runner takes it when woken
    /// (`retry`). Cleared by the next attempt's record.
    pub retry: bool,
    /// `rsendmail-admin bounce`: the next attempt returns every open recipient to the
    /// sender with this reason, sending nothing (`bounce REASON`, escaped).
    pub bounce: Option<String>,
    /// Who asked for that return when it was not the administrator (root): the words
    /// the report gives in place of "by the administrator" (`bounce-by TEXT`, escaped),
    /// such as "at its sender's request (user alice)".
    pub bounce_by: Option<String>,
    /// Recipients refused at an interactive submission (`-odi`), whose failure the
    /// delivery that follows reports in its own report, so that the sender gets one
    /// report for the whole pass, as sendmail's (`owed` lines: [`owed_text`] of each
    /// report entry), and the transcript lines that go with them (`owed-note`).
    /// Cleared once that report is queued.
    pub owed: Vec<crate::dsn::RcptReport>,
    pub owed_notes: Vec<String>,
    /// The same for the targets of a list with an owner alias refused there, each with
    /// the owner's envelope sender: reported to that owner with the delivery's own
    /// report to it, never to the message's sender (`owner-owed OWNER ENTRY` lines).
    pub owner_owed: Vec<(String, crate::dsn::RcptReport)>,
    /// The transcript lines of such an owner's report (`owner-note OWNER LINE`): what
    /// expanding its list refused, then sendmail's `Message delivered to mailing list
    /// LIST` (recorded: `owner-list-unknown-odi`, `owner-list-refused-odi`).
    pub owner_notes: Vec<(String, String)>,
    /// The sender's transcript lines of the submission's own expansion, which the
    /// report to the sender of the delivery that follows at once (`-odi`, `-odb`)
    /// begins with, as sendmail's transcript has them (`expansion-note`): `Message
    /// delivered to mailing list LIST` for a list with an owner alias, `ADDR... expanded
    /// to multiple addresses` for a recipient whose NOTIFY asks for success notices
    /// (recorded: `receipt-list-owner-argv-odi`, `bounce-list-owner-argv-reject5-odi`).
    /// Cleared by that delivery: a queue run's reports have no such lines (recorded:
    /// `receipt-list-argv-odq-q`).
    pub expansion_notes: Vec<String>,
    /// Who made the hold of a held entry (`rsendmail-admin hold`; key `held-by UID
    /// LOGIN`, the login escaped): the one user besides root and the spool's group who
    /// may release it. Absent in entries never held and in those held before it was
    /// kept, whose hold only root and the group may release; a reader that does not
    /// know the key ignores it. It means something only while the entry is in `hold/`:
    /// releasing clears it, and a queued entry's is never looked at.
    pub held_by: Option<HeldBy>,
    /// The keys of the delivery reports an attempt is queuing (`reporting KEY`, escaped:
    /// `Envelope::report_of` of each), written with [`State::reported`] before the first
    /// of them is queued. A run that finds them (its deliverer was killed before the
    /// attempt's record) asks whether every one is queued (`Spool::report_queued`): then
    /// the attempt's record is [`State::reported`], and no recipient it reports is tried
    /// again; else the attempt is made again, and the reports queued already are found
    /// by their keys. Empty once the attempt is recorded.
    pub reporting: Vec<String>,
    /// The record of the attempt that queues [`State::reporting`], to take once they are
    /// all queued (`reported remove`: every recipient final, the entry goes; `reported
    /// state TEXT`: this state file's text, escaped).
    pub reported: Option<Reported>,
}

/// The record an attempt makes once its reports are queued ([`State::reported`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reported {
    /// Every recipient is final: the entry is removed.
    Remove,
    /// The state to record (a state file's text).
    State(String),
}

/// Who returned an entry `rsendmail-admin bounce` marked when no one else is recorded
/// ([`State::bounce_by`]): the administrator (root), in the report's words.
pub const BY_ADMINISTRATOR: &str = "by the administrator";

/// Who held an entry ([`State::held_by`]): the uid, which decides, and the login, which
/// is said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldBy {
    pub uid: u32,
    pub login: String,
}

/// One line of an entry's delivery journal (`jf<ID>`): recipient `rcpt` delivered with
/// `reply` (`250 2.0.0 piped to |cmd`), escaped ([`escape`]) so that the line is one
/// line. Written whole, with one write(2), by the process that saw the delivery end
/// (docs/ARCHITECTURE.md, "The delivery journal").
pub fn journal_line(rcpt: usize, reply: &str) -> String {
    format!("rcpt {rcpt} delivered {}\n", escape(reply))
}

/// The deliveries a journal's octets record, for an entry of `recipients` recipients:
/// each `rcpt N delivered REPLY` line ([`journal_line`]) as `(N, REPLY)`, in order. A
/// line that is not one (garbage, a bad escape, octets that are not UTF-8), one whose
/// recipient the entry does not have, and a last line without its line end (a write
/// cut short) are left out: the journal only ever adds deliveries, so what is left out
/// is at worst delivered again.
pub fn parse_journal(bytes: &[u8], recipients: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let (line, after) = rest.split_at(end);
        rest = after.get(1..).unwrap_or_default();
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let Some(body) = line.strip_prefix("rcpt ") else {
            continue;
        };
        let mut f = body.splitn(3, ' ');
        let (Some(n), Some("delivered"), Some(reply)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        // Digits only: no sign, no blank.
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let (Ok(n), Some(reply)) = (n.parse::<usize>(), unescape(reply)) else {
            continue;
        };
        if n < recipients {
            out.push((n, reply));
        }
    }
    out
}

/// One report entry as an `owed` line of the state file: its fields escaped
/// ([`escape`]), `-` for one it has not and `=` before one it has.
pub fn owed_text(r: &crate::dsn::RcptReport) -> String {
    let opt = |v: &Option<String>| match v {
        Some(v) => format!("={}", escape(v)),
        None => "-".to_string(),
    };
    format!(
        "={} {} {} {} {} {} {} {}",
        escape(&r.final_recipient),
        opt(&r.original_recipient),
        r.status,
        opt(&r.diagnostic),
        opt(&r.listed),
        opt(&r.actual_recipient),
        opt(&r.expanded_from),
        r.last_attempt
    )
}

/// The report entry of an `owed` line ([`owed_text`]); None for a line that is not one.
pub fn owed_from(text: &str) -> Option<crate::dsn::RcptReport> {
    let f: Vec<&str> = text.split(' ').collect();
    let [fin, orig, st, diag, listed, actual, exp, last] = f.as_slice() else {
        return None;
    };
    let opt = |v: &str| -> Option<Option<String>> {
        match v.strip_prefix('=') {
            Some(v) => unescape(v).map(Some),
            None if v == "-" => Some(None),
            None => None,
        }
    };
    let status = crate::status::EnhancedStatus::at_start_of(st)?;
    Some(crate::dsn::RcptReport {
        final_recipient: opt(fin)??,
        original_recipient: opt(orig)?,
        action: "failed",
        status,
        remote_mta: None,
        diagnostic: opt(diag)?,
        diagnostic_type: "X-Unix",
        transcript: Vec::new(),
        listed: opt(listed)?,
        comment: None,
        actual_recipient: opt(actual)?,
        expanded_from: opt(exp)?,
        last_attempt: last.parse().ok()?,
    })
}

impl State {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{STATE_MAGIC} {STATE_VERSION}");
        let _ = writeln!(s, "attempts {}", self.attempts);
        if let Some(t) = self.last_attempt {
            let _ = writeln!(s, "last-attempt {t}");
        }
        if let Some(t) = self.next_attempt {
            let _ = writeln!(s, "next-attempt {t}");
        }
        if let Some(t) = self.local_next_attempt {
            let _ = writeln!(s, "local-next-attempt {t}");
        }
        if let Some(r) = &self.reason {
            let _ = writeln!(s, "reason {}", escape(r));
        }
        if self.warned {
            let _ = writeln!(s, "warned");
        }
        if self.reports > 0 {
            let _ = writeln!(s, "reports {}", self.reports);
        }
        if self.retry {
            let _ = writeln!(s, "retry");
        }
        if let Some(b) = &self.bounce {
            let _ = writeln!(s, "bounce {}", escape(b));
        }
        if let Some(b) = &self.bounce_by {
            let _ = writeln!(s, "bounce-by {}", escape(b));
        }
        for r in &self.owed {
            let _ = writeln!(s, "owed {}", owed_text(r));
        }
        for n in &self.owed_notes {
            let _ = writeln!(s, "owed-note {}", escape(n));
        }
        for (o, r) in &self.owner_owed {
            let _ = writeln!(s, "owner-owed {} {}", escape(o), owed_text(r));
        }
        for (o, n) in &self.owner_notes {
            let _ = writeln!(s, "owner-note {} {}", escape(o), escape(n));
        }
        for n in &self.expansion_notes {
            let _ = writeln!(s, "expansion-note {}", escape(n));
        }
        if let Some(h) = &self.held_by {
            let _ = writeln!(s, "held-by {} {}", h.uid, escape(&h.login));
        }
        for k in &self.reporting {
            let _ = writeln!(s, "reporting {}", escape(k));
        }
        match &self.reported {
            Some(Reported::Remove) => {
                let _ = writeln!(s, "reported remove");
            }
            Some(Reported::State(t)) => {
                let _ = writeln!(s, "reported state {}", escape(t));
            }
            None => {}
        }
        for (i, st, why) in &self.recipients {
            let _ = write!(s, "rcpt {i} {}", st.word());
            if let Some(w) = why {
                let _ = write!(s, " {}", escape(w));
            }
            s.push('\n');
        }
        for (i, lines) in &self.reply_lines {
            let _ = writeln!(s, "reply {i} {}", escape(lines));
        }
        s
    }

    pub fn parse(text: &str) -> Result<State, String> {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("");
        if !first.starts_with(STATE_MAGIC) {
            return Err(format!("not a state file (first line {})", quoted(first)));
        }
        let mut st = State::default();
        for line in lines {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            let bad = || format!("bad state line {}", quoted(line));
            match key {
                "attempts" => st.attempts = rest.parse().map_err(|_| bad())?,
                "last-attempt" => st.last_attempt = Some(rest.parse().map_err(|_| bad())?),
                "next-attempt" => st.next_attempt = Some(rest.parse().map_err(|_| bad())?),
                "local-next-attempt" => {
                    st.local_next_attempt = Some(rest.parse().map_err(|_| bad())?);
                }
                "reason" => st.reason = Some(unescape(rest).ok_or_else(bad)?),
                "warned" => st.warned = true,
                "reports" => st.reports = rest.parse().map_err(|_| bad())?,
                "retry" => st.retry = true,
                "bounce" => st.bounce = Some(unescape(rest).ok_or_else(bad)?),
                "bounce-by" => st.bounce_by = Some(unescape(rest).ok_or_else(bad)?),
                "owed" => st.owed.push(owed_from(rest).ok_or_else(bad)?),
                "owed-note" => st.owed_notes.push(unescape(rest).ok_or_else(bad)?),
                "owner-owed" => {
                    let (o, r) = rest.split_once(' ').ok_or_else(bad)?;
                    let o = unescape(o).ok_or_else(bad)?;
                    st.owner_owed.push((o, owed_from(r).ok_or_else(bad)?));
                }
                "owner-note" => {
                    let (o, n) = rest.split_once(' ').ok_or_else(bad)?;
                    let o = unescape(o).ok_or_else(bad)?;
                    st.owner_notes.push((o, unescape(n).ok_or_else(bad)?));
                }
                "expansion-note" => st.expansion_notes.push(unescape(rest).ok_or_else(bad)?),
                "held-by" => {
                    let (uid, login) = rest.split_once(' ').ok_or_else(bad)?;
                    // Digits only, as written: no sign, no blank.
                    if uid.is_empty() || !uid.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad());
                    }
                    st.held_by = Some(HeldBy {
                        uid: uid.parse().map_err(|_| bad())?,
                        login: unescape(login).ok_or_else(bad)?,
                    });
                }
                "reporting" => st.reporting.push(unescape(rest).ok_or_else(bad)?),
                "reported" => {
                    st.reported = Some(match rest.split_once(' ') {
                        None if rest == "remove" => Reported::Remove,
                        Some(("state", t)) => Reported::State(unescape(t).ok_or_else(bad)?),
                        _ => return Err(bad()),
                    });
                }
                "rcpt" => {
                    let mut f = rest.splitn(3, ' ');
                    let idx: usize = f.next().unwrap_or("").parse().map_err(|_| bad())?;
                    let state = RcptState::from_word(f.next().unwrap_or("")).ok_or_else(bad)?;
                    let why = match f.next() {
                        Some(w) => Some(unescape(w).ok_or_else(bad)?),
                        None => None,
                    };
                    st.recipients.push((idx, state, why));
                }
                "reply" => {
                    let (idx, lines) = rest.split_once(' ').ok_or_else(bad)?;
                    let idx: usize = idx.parse().map_err(|_| bad())?;
                    st.reply_lines.push((idx, unescape(lines).ok_or_else(bad)?));
                }
                _ => {}
            }
        }
        Ok(st)
    }

    /// The state with the deliveries of a journal ([`parse_journal`]) recorded: each
    /// such recipient delivered, with its reply. Whether it changed anything.
    pub fn apply_journal(&mut self, delivered: &[(usize, String)]) -> bool {
        let mut changed = false;
        for (i, reply) in delivered {
            if self.of(*i) == RcptState::Delivered {
                continue;
            }
            self.recipients.retain(|(k, _, _)| k != i);
            self.recipients
                .push((*i, RcptState::Delivered, Some(reply.clone())));
            changed = true;
        }
        if changed {
            self.recipients.sort_by_key(|(i, _, _)| *i);
        }
        changed
    }

    /// The state without its texts (the entry's reason, each recipient's last reply):
    /// what must be kept so that no recipient is tried again once final, and no report
    /// owed is lost, in the fewest bytes. Written when the whole state finds no room (a
    /// full disk, a file-size limit). The report owed for recipients refused at
    /// submission ([`State::owed`], [`State::owed_notes`]) is kept whole: nothing else
    /// holds those recipients, so without it they would never be reported.
    pub fn essential(&self) -> State {
        State {
            reason: None,
            // The administrator's marks are texts too (and not bounded).
            retry: false,
            bounce: None,
            bounce_by: None,
            expansion_notes: Vec::new(),
            reply_lines: Vec::new(),
            // Written by deliveries, which never take a held entry.
            held_by: None,
            // Not bounded either: without them, a run after a crash makes the attempt
            // again (its reports queued already are found by their keys).
            reporting: Vec::new(),
            reported: None,
            recipients: self
                .recipients
                .iter()
                .map(|(i, st, _)| (*i, *st, None))
                .collect(),
            ..self.clone()
        }
    }

    /// The most bytes `essential().to_text()` can take for an entry with `recipients`
    /// recipients and no report owed ([`State::owed`]), whatever its state: every number
    /// at its widest, every recipient named with the longest state word.
    pub fn essential_len_bound(recipients: usize) -> usize {
        let head = format!("{STATE_MAGIC} {STATE_VERSION}\n").len()
            + "attempts \n".len()
            + u32::MAX.to_string().len()
            + 2 * ("last-attempt \n".len() + i64::MIN.to_string().len())
            + "local-next-attempt \n".len()
            + i64::MIN.to_string().len()
            + "warned\n".len()
            + "reports \n".len()
            + u32::MAX.to_string().len();
        let word = ["pending", "deferred", "delivered", "failed"]
            .iter()
            .map(|w| w.len())
            .max()
            .unwrap_or(0);
        (0..recipients).fold(head, |n, i| {
            n.saturating_add("rcpt  \n".len() + i.to_string().len() + word)
        })
    }

    /// Whether a periodic queue run should try the entry at `now`: its back-off has
    /// expired and it has waited `min_age` (sendmail's MinQueueAge) since the last try.
    pub fn is_due(&self, now: i64, min_age: i64) -> bool {
        self.next_attempt.is_none_or(|t| t <= now)
            && self
                .last_attempt
                .is_none_or(|t| t.saturating_add(min_age) <= now)
    }

    /// Whether the entry was tried less than `min_age` seconds before `now` (sendmail's
    /// MinQueueAge: a queue run that is not a selection leaves it alone, and `mailq`
    /// marks it `-`). Never true while `min_age` is 0 or below, nor for an entry never
    /// tried.
    pub fn tried_within(&self, now: i64, min_age: i64) -> bool {
        min_age > 0
            && self
                .last_attempt
                .is_some_and(|t| t.saturating_add(min_age) > now)
    }

    /// Whether an entry of `recipients` recipients waits only for a root deliverer: one
    /// open recipient at least, each deferred with [`NEEDS_ROOT_RUNNER`] in its last
    /// reply, and no `rsendmail-admin bounce` mark. A root queue run takes such an entry
    /// whatever its back-off: the back-off was set by a deliverer that could not
    /// deliver it, not by a destination that refused it.
    pub fn waits_for_root(&self, recipients: usize) -> bool {
        if self.bounce.is_some() || recipients == 0 {
            return false;
        }
        // The last record of each recipient (a recipient may be recorded more than once).
        let mut last: Vec<Option<(RcptState, Option<&str>)>> = vec![None; recipients];
        for (i, st, why) in &self.recipients {
            if let Some(slot) = last.get_mut(*i) {
                *slot = Some((*st, why.as_deref()));
            }
        }
        let mut open = false;
        for l in last {
            match l {
                Some((st, _)) if st.is_final() => {}
                Some((RcptState::Deferred, Some(why))) if why.contains(NEEDS_ROOT_RUNNER) => {
                    open = true;
                }
                _ => return false,
            }
        }
        open
    }

    /// Whether a recipient of an entry of `recipients` recipients is open, deferred with
    /// [`NEEDS_ROOT_RUNNER`] in its last reply, and the entry has no `rsendmail-admin
    /// bounce` mark: a deliverer that is not root left that recipient for a root one,
    /// whatever its other recipients wait for. A root queue runner that listens delivers
    /// the local recipients of such an entry left in `waiting/` at once.
    pub fn deferred_for_root(&self, recipients: usize) -> bool {
        !self.for_root(recipients).is_empty()
    }

    /// The recipients [`State::deferred_for_root`] looks for, in order: each open,
    /// deferred with [`NEEDS_ROOT_RUNNER`] in its last reply (none when the entry has an
    /// `rsendmail-admin bounce` mark).
    pub fn for_root(&self, recipients: usize) -> Vec<usize> {
        if self.bounce.is_some() {
            return Vec::new();
        }
        (0..recipients)
            .filter(|&i| {
                self.recipients
                    .iter()
                    .rev()
                    .find(|(idx, _, _)| *idx == i)
                    .is_some_and(|(_, st, why)| {
                        *st == RcptState::Deferred
                            && why
                                .as_deref()
                                .is_some_and(|w| w.contains(NEEDS_ROOT_RUNNER))
                    })
            })
            .collect()
    }

    /// Record recipient `i`'s state and last reply (`why`), with the lines before the
    /// last of a multi-line reply (`earlier`, see [`State::reply_lines`]): whatever was
    /// recorded of it before goes.
    pub fn set_recipient(
        &mut self,
        i: usize,
        st: RcptState,
        why: Option<String>,
        earlier: Option<String>,
    ) {
        self.recipients.retain(|(idx, _, _)| *idx != i);
        self.reply_lines.retain(|(idx, _)| *idx != i);
        if why.is_some()
            && let Some(lines) = earlier
        {
            self.reply_lines.push((i, lines));
        }
        self.recipients.push((i, st, why));
    }

    /// Every line of recipient `i`'s last reply as recorded: the lines before the last
    /// ([`State::reply_lines`], when they were kept), then the last; none when no reply
    /// is recorded.
    pub fn reply_of(&self, i: usize) -> Vec<&str> {
        let Some(last) = self
            .recipients
            .iter()
            .rev()
            .find(|(idx, _, _)| *idx == i)
            .and_then(|(_, _, w)| w.as_deref())
        else {
            return Vec::new();
        };
        let mut out: Vec<&str> = self
            .reply_lines
            .iter()
            .rev()
            .find(|(idx, _)| *idx == i)
            .map(|(_, l)| l.split('\n').collect())
            .unwrap_or_default();
        out.push(last);
        out
    }

    /// The state of recipient `i` (pending when the state file does not mention it).
    pub fn of(&self, i: usize) -> RcptState {
        self.recipients
            .iter()
            .rev()
            .find(|(idx, _, _)| *idx == i)
            .map(|(_, s, _)| *s)
            .unwrap_or(RcptState::Pending)
    }
}

/// `line` quoted for a message, each character not safe to show as its octets in
/// octal ([`crate::text::escaped`], as every program shows text from outside), cut to
/// its first 200 characters: a damaged file's line may be megabytes long.
fn quoted(line: &str) -> String {
    const MAX: usize = 200;
    match line.char_indices().nth(MAX) {
        Some((at, _)) => format!(
            "\"{}\"...",
            crate::text::escaped(line.get(..at).unwrap_or(""))
        ),
        None => format!("\"{}\"", crate::text::escaped(line)),
    }
}

#[cfg(test)]
pub fn test_envelope(id: &str, recipients: &[&str]) -> Envelope {
    Envelope {
        id: id.into(),
        created: 1,
        sender: "a@x".into(),
        recipients: recipients.iter().map(|r| Recipient::new(*r)).collect(),
        user: "a".into(),
        uid: 1,
        ..Envelope::default()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    /// The marks of reports being queued (`reporting`, `reported`) come back as written,
    /// a state text with line ends inside included; `essential` drops them.
    #[test]
    fn reporting_marks_round_trip() {
        let then = State {
            attempts: 2,
            recipients: vec![(0, RcptState::Failed, Some("550 5.1.1 no".into()))],
            ..State::default()
        };
        for reported in [Reported::Remove, Reported::State(then.to_text())] {
            let st = State {
                reporting: vec!["6AM5eIkR004034 0 00ff".into()],
                reported: Some(reported),
                ..State::default()
            };
            let back = State::parse(&st.to_text()).unwrap();
            assert_eq!(back, st);
            if let Some(Reported::State(t)) = &back.reported {
                assert_eq!(State::parse(t).unwrap(), then);
            }
            assert!(back.essential().reporting.is_empty());
            assert_eq!(back.essential().reported, None);
        }
        assert!(State::parse("rsendmail-state 1\nreported other\n").is_err());
    }

    fn sample() -> Envelope {
        Envelope {
            id: "6AM5eIkR004034".into(),
            created: 1_795_326_018,
            sender: "alice@example.org".into(),
            recipients: vec![
                Recipient::new("bob@example.org"),
                Recipient {
                    address: "\"john doe\"@example.net".into(),
                    notify: Some("FAILURE,DELAY".into()),
                    orcpt: Some("rfc822;john@example.net".into()),
                    display: Some("John <\"john doe\"@example.net>".into()),
                    sender: Some("owner-list".into()),
                    owner: Some(1001),
                    ctl: Some(":include:/etc/mail/list members".into()),
                    expanded_from: Some("list".into()),
                    final_rcpt: Some("list@example.net".into()),
                    fanout: true,
                    parent: Some(0),
                    place: None,
                },
            ],
            user: "alice".into(),
            uid: 1000,
            mode: 'q',
            header_bytes: 120,
            added_header_bytes: 97,
            submitted_header_bytes: Some(64),
            body_type: Some("8BITMIME".into()),
            envid: Some("abc".into()),
            ret: Some("HDRS".into()),
            report: Some("failure".into()),
            verp: Some("-=".into()),
            report_of: None,
            returned_by: Some("at its sender's request (user a%b)".into()),
            report_owner: Some(0),
            expansions: 2,
            refused_users: 3,
            taken_fields: vec![(
                "From: root <root@host.example>\n".into(),
                "From: root <root>\n".into(),
            )],
            message_bytes: Some(1234),
        }
    }

    #[test]
    fn queue_order_puts_targets_in_their_parents_place() {
        // Queued a, u, b; u expanded to y, x (the list's queue order), x to z (a
        // `.forward` met among u's targets), appended in that order.
        let mut e = sample();
        let r = |a: &str, p: Option<usize>| Recipient {
            parent: p,
            ..Recipient::new(a)
        };
        e.recipients = vec![
            r("a", None),
            r("u", None),
            r("b", None),
            r("y", Some(1)),
            r("x", Some(1)),
            r("z", Some(4)),
        ];
        assert_eq!(e.queue_order(), vec![0, 1, 3, 4, 5, 2]);
        // No targets: the written order.
        e.recipients.truncate(3);
        assert_eq!(e.queue_order(), vec![0, 1, 2]);
        // A parent that is not an earlier recipient (a damaged file) counts as none;
        // every recipient is in the order once.
        e.recipients = vec![r("a", Some(0)), r("b", Some(7)), r("c", Some(2))];
        assert_eq!(e.queue_order(), vec![0, 1, 2]);
        // Queued x, u, y (the local user u written first, each keeping its place):
        // u's targets come between x and y.
        let placed = |a: &str, place: usize| Recipient {
            place: Some(place),
            ..Recipient::new(a)
        };
        e.recipients = vec![
            placed("u", 1),
            placed("x", 0),
            placed("y", 2),
            r("t", Some(0)),
        ];
        assert_eq!(e.queue_order(), vec![1, 0, 3, 2]);
    }

    /// A report is the owner's of the entry it reports on (`report-owner`), not the
    /// run's that queued it (`user`); a report written before the key is no user's, and
    /// any other entry is its submitter's.
    #[test]
    fn a_reports_owner_is_kept_and_is_not_the_queuing_run() {
        let mut e = sample();
        e.uid = 1001;
        let text = e.to_text();
        assert!(text.contains("\nreport-owner 0\n"), "{text}");
        let back = Envelope::parse(&text).unwrap();
        assert_eq!(
            (back.uid, back.report_owner, back.owner()),
            (1001, Some(0), Some(0))
        );
        let old = Envelope::parse(&text.replace("report-owner 0\n", "")).unwrap();
        assert_eq!((old.uid, old.owner()), (1001, None));
        let bad = Envelope::parse(&text.replace("report-owner 0", "report-owner x"));
        assert!(bad.is_err());
        e.report = None;
        e.report_owner = None;
        assert_eq!(Envelope::parse(&e.to_text()).unwrap().owner(), Some(1001));
    }

    #[test]
    fn parent_is_kept_and_older_files_read_without_it() {
        let e = sample();
        let text = e.to_text();
        assert!(text.contains(" parent=0\n"), "{text}");
        assert_eq!(
            Envelope::parse(&text).unwrap().recipients[1].parent,
            Some(0)
        );
        // A file written before the key: every recipient its own, in written order.
        let old = Envelope::parse(&text.replace(" parent=0", "")).unwrap();
        assert!(old.recipients.iter().all(|r| r.parent.is_none()));
        assert_eq!(old.queue_order(), vec![0, 1]);
        // A damaged number is refused, naming the line.
        let bad = text.replace(" parent=0", " parent=x");
        let err = Envelope::parse(&bad).unwrap_err();
        assert!(err.starts_with("bad number \"x\" in \"rcpt "), "{err}");
        // The place in the queue order likewise.
        let mut placed = sample();
        placed.recipients[0].place = Some(1);
        placed.recipients[1].place = Some(0);
        placed.recipients[1].parent = None;
        let text = placed.to_text();
        assert!(text.contains("rcpt bob@example.org place=1\n"), "{text}");
        assert_eq!(Envelope::parse(&text).unwrap(), placed);
        assert_eq!(placed.queue_order(), vec![1, 0]);
        let old = Envelope::parse(&text.replace(" place=1", "").replace(" place=0", ""));
        assert_eq!(old.unwrap().queue_order(), vec![0, 1]);
    }

    #[test]
    fn envelope_round_trip() {
        let e = sample();
        let text = e.to_text();
        assert!(text.ends_with("\n\n"));
        assert!(text.contains("rcpt \"john%20doe\"@example.net notify=FAILURE,DELAY"));
        assert_eq!(Envelope::parse(&text).unwrap(), e);
        let mut null = sample();
        null.sender.clear();
        assert_eq!(Envelope::parse(&null.to_text()).unwrap().sender, "");
        // The VERP request is kept; a damaged one is refused, naming the line.
        assert!(text.contains("\nverp -=\n"));
        let bad = text.replace("\nverp -=\n", "\nverp x@\n");
        assert!(Envelope::parse(&bad).unwrap_err().contains("verp x@"));
        let mut plain = sample();
        plain.verp = None;
        assert!(!plain.to_text().contains("verp"));
    }

    /// A state file written before holds recorded who made them (a held entry's, as an
    /// earlier version left it in `hold/`) still reads, with no holder; a state without
    /// one is written as before, so an earlier version reads what this one writes, and
    /// the record of who held it is an unknown key to that version's reader, which
    /// ignores it. A damaged record is refused, naming its line.
    #[test]
    fn who_held_an_entry_is_kept_and_older_state_files_read_without_it() {
        let old = "rsendmail-state 1\nattempts 1\nlast-attempt 1764699000\n\
                   next-attempt 1764699900\nreason Deferred:%20450%204.2.0%20later\n\
                   rcpt 0 deferred 450%204.2.0%20later\n";
        let st = State::parse(old).unwrap();
        assert_eq!(st.held_by, None);
        assert_eq!(st.attempts, 1);
        assert_eq!(st.to_text(), old, "written as it was");
        assert!(!State::default().to_text().contains("held-by"));
        let held = State {
            held_by: Some(HeldBy {
                uid: 0,
                login: "root".into(),
            }),
            ..st.clone()
        };
        let text = held.to_text();
        assert!(text.contains("\nheld-by 0 root\n"), "{text}");
        assert_eq!(State::parse(&text).unwrap(), held);
        // An earlier reader's view: the line dropped, the rest the same.
        let without: String = text
            .lines()
            .filter(|l| !l.starts_with("held-by"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(State::parse(&without).unwrap(), st);
        for bad in [
            "held-by",
            "held-by 0",
            "held-by -1 root",
            "held-by +0 root",
            "held-by 4294967296 root",
            "held-by x root",
            "held-by 0 ro%4",
        ] {
            let t = format!("rsendmail-state 1\n{bad}\n");
            let err = State::parse(&t).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
        // The essential state (written by deliveries, which never take a held entry)
        // leaves it out.
        assert_eq!(held.essential().held_by, None);
    }

    #[test]
    fn unknown_keys_ignored_newer_version_refused() {
        let text = sample()
            .to_text()
            .replace("mode q\n", "mode q\nfuture-key 42\n");
        assert!(Envelope::parse(&text).is_ok());
        let newer = sample()
            .to_text()
            .replace("rsendmail-queue 3", "rsendmail-queue 9");
        assert!(Envelope::parse(&newer).unwrap_err().contains("newer"));
        assert!(Envelope::parse("garbage\n").is_err());
        let norcpt: String = sample()
            .to_text()
            .lines()
            .filter(|l| !l.starts_with("rcpt"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(Envelope::parse(&norcpt).is_err());
    }

    #[test]
    fn length_written_second_at_a_fixed_place_and_required_from_version_2() {
        let mut e = sample();
        e.message_bytes = None;
        let text = e.to_text();
        assert!(text.starts_with("rsendmail-queue 3\nmessage-bytes 00000000000000000000\n"));
        assert_eq!(
            &text[LENGTH_AT..LENGTH_AT + LENGTH_DIGITS],
            "00000000000000000000"
        );
        // What the commit writes there is read back.
        let filled = format!(
            "{}{:020}{}",
            &text[..LENGTH_AT],
            u64::MAX,
            &text[LENGTH_AT + LENGTH_DIGITS..]
        );
        assert_eq!(
            Envelope::parse(&filled).unwrap().message_bytes,
            Some(u64::MAX)
        );
        // Version 2 without the length, or with a bad one, is refused.
        let without: String = text
            .lines()
            .filter(|l| !l.starts_with("message-bytes"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            Envelope::parse(&without)
                .unwrap_err()
                .contains("message-bytes")
        );
        for bad in ["-1", "", "18446744073709551616", "12x"] {
            let t = text.replace(
                "message-bytes 00000000000000000000",
                &format!("message-bytes {bad}"),
            );
            assert!(Envelope::parse(&t).is_err(), "{bad:?}");
        }
        // Version 1, as the previous release wrote it, is read as it was: no length,
        // and a message-bytes line there means nothing.
        let old = without.replace("rsendmail-queue 3", "rsendmail-queue 1");
        assert_eq!(Envelope::parse(&old).unwrap().message_bytes, None);
        let old = text.replace("rsendmail-queue 3", "rsendmail-queue 1");
        assert_eq!(Envelope::parse(&old).unwrap().message_bytes, None);
    }

    #[test]
    fn escape_round_trip() {
        for s in [
            "plain",
            "a b",
            "50%",
            "tab\there",
            "new\nline",
            "ünï côdé",
            "",
        ] {
            assert_eq!(unescape(&escape(s)).as_deref(), Some(s));
            assert!(!escape(s).contains(['\n', ' ', '\t']));
        }
        assert_eq!(unescape("%4"), None);
    }

    /// A multi-line reply is kept whole in the record (the lines before the last on a
    /// line of their own) and read back; a state file written before it was kept (the
    /// last line alone) still reads, its reply that line.
    #[test]
    fn a_multi_line_reply_is_kept_and_old_files_still_read() {
        let mut st = State::default();
        let earlier = vec![
            "550-5.1.1 first line".to_string(),
            "550-5.1.1 second".into(),
        ];
        st.set_recipient(
            0,
            RcptState::Failed,
            Some("550 5.1.1 last".into()),
            reply_lines_kept(&earlier, 512),
        );
        st.set_recipient(1, RcptState::Deferred, Some("450 4.2.0 one".into()), None);
        let back = State::parse(&st.to_text()).unwrap();
        assert_eq!(
            back.reply_of(0),
            ["550-5.1.1 first line", "550-5.1.1 second", "550 5.1.1 last"]
        );
        assert_eq!(back.reply_of(1), ["450 4.2.0 one"]);
        assert!(back.reply_of(2).is_empty());
        // Recorded again: the earlier lines of the old reply go.
        st.set_recipient(0, RcptState::Deferred, Some("451 4.3.0 later".into()), None);
        assert_eq!(st.reply_of(0), ["451 4.3.0 later"]);
        assert!(st.reply_lines.is_empty());
        // As the previous release wrote it.
        let old = "rsendmail-state 1\nattempts 1\nrcpt 0 failed 550%205.1.1%20last\n";
        let back = State::parse(old).unwrap();
        assert_eq!(back.reply_of(0), ["550 5.1.1 last"]);
        // Their texts are not essential.
        assert!(st.essential().reply_lines.is_empty());
    }

    /// The lines kept fit the room, from the first, and say how many were not kept.
    #[test]
    fn reply_lines_are_kept_as_the_room_allows() {
        let lines: Vec<String> = (0..20)
            .map(|i| format!("550-5.7.1 line {i:02} {}", "x".repeat(40)))
            .collect();
        let all = reply_lines_kept(&lines, 64 * 1024).unwrap();
        assert_eq!(all.split('\n').count(), 20);
        for room in [0, 40, 100, 300, 512, 1000] {
            let kept = reply_lines_kept(&lines, room);
            let Some(kept) = kept else {
                assert!(room < 60, "{room}");
                continue;
            };
            let line = format!("reply {} {}\n", usize::MAX, escape(&kept));
            assert!(line.len() <= room, "{room}: {line}");
            let got: Vec<&str> = kept.split('\n').collect();
            let n = got.len() - 1;
            assert_eq!(
                got[..n],
                lines[..n].iter().map(String::as_str).collect::<Vec<_>>()[..]
            );
            assert_eq!(got[n], format!("({} more lines not kept)", 20 - n));
        }
        assert_eq!(reply_lines_kept(&[], 512), None);
    }

    #[test]
    fn state_round_trip() {
        let st = State {
            attempts: 2,
            last_attempt: Some(10),
            next_attempt: Some(20),
            local_next_attempt: Some(15),
            reason: Some("Deferred: 450 4.2.0 try later".into()),
            recipients: vec![
                (0, RcptState::Delivered, Some("250 ok".into())),
                (1, RcptState::Deferred, None),
            ],
            warned: true,
            reports: 3,
            retry: true,
            bounce: Some("spam run %20\u{e9}".into()),
            bounce_by: Some("at its sender's request (user a b%)".into()),
            // A report owed for recipients refused at submission, every field kept
            // (a blank, a `%`, an empty text, one field absent).
            owed: vec![crate::dsn::RcptReport {
                final_recipient: "l@test.example".into(),
                original_recipient: None,
                action: "failed",
                status: crate::status::BAD_MAILBOX,
                remote_mta: None,
                diagnostic: Some("550 5.1.1 User unknown".into()),
                diagnostic_type: "X-Unix",
                transcript: Vec::new(),
                listed: Some(String::new()),
                comment: None,
                actual_recipient: Some("\"a b%\"@test.example".into()),
                expanded_from: Some(":include:/x y".into()),
                last_attempt: 7,
            }],
            owed_notes: vec!["550 5.1.1 <>... User unknown".into()],
            // A list owner's: an owner with a blank survives.
            owner_owed: vec![(
                "owner-l x".into(),
                crate::dsn::RcptReport {
                    final_recipient: "lst@test.example".into(),
                    original_recipient: None,
                    action: "failed",
                    status: crate::status::BAD_MAILBOX,
                    remote_mta: None,
                    diagnostic: None,
                    diagnostic_type: "X-Unix",
                    transcript: Vec::new(),
                    listed: Some("nosuch".into()),
                    comment: None,
                    actual_recipient: None,
                    expanded_from: Some("lst".into()),
                    last_attempt: 8,
                },
            )],
            owner_notes: vec![(
                "own@test.example".into(),
                "Message delivered to mailing list lst".into(),
            )],
            // The submission's expansion lines, one with a `%` and blanks.
            expansion_notes: vec![
                "Message delivered to mailing list l x".into(),
                "l%x... expanded to multiple addresses".into(),
            ],
            // The lines before the last of recipient 0's multi-line reply.
            reply_lines: vec![(0, "250-first line 50%\n250-second".into())],
            // A login with a blank and a `%` survives.
            held_by: Some(HeldBy {
                uid: 1001,
                login: "a b%".into(),
            }),
            reporting: vec!["6AM5eIkR004034 0 00ff".into()],
            reported: Some(Reported::Remove),
        };
        let back = State::parse(&st.to_text()).unwrap();
        assert_eq!(back, st);
        assert_eq!(back.of(0), RcptState::Delivered);
        assert_eq!(back.of(5), RcptState::Pending);
        assert!(RcptState::Failed.is_final() && !RcptState::Deferred.is_final());
        assert!(!back.is_due(19, 0) && back.is_due(20, 0));
        assert!(!back.is_due(20, 11) && back.is_due(21, 11));
        assert!(State::default().is_due(0, 100));
        // Deferred only for want of a root deliverer, whatever the rest's final state.
        let why = |w: &str| Some(format!("451 4.3.0 {w}"));
        let mut st = State {
            recipients: vec![
                (0, RcptState::Delivered, None),
                (
                    1,
                    RcptState::Deferred,
                    why("needs the root queue runner (root)"),
                ),
            ],
            ..State::default()
        };
        assert!(st.waits_for_root(2));
        assert!(!st.waits_for_root(3), "recipient 2 was never tried");
        assert!(st.deferred_for_root(2) && st.deferred_for_root(3));
        assert!(!st.deferred_for_root(1), "recipient 1 is not the entry's");
        assert_eq!(st.for_root(3), vec![1]);
        st.recipients
            .push((1, RcptState::Deferred, why("mailbox full")));
        assert!(!st.waits_for_root(2), "its last reply is another reason");
        assert!(!st.deferred_for_root(2), "its last reply is another reason");
        st.recipients
            .push((1, RcptState::Failed, why("needs the root queue runner")));
        assert!(!st.waits_for_root(2), "nothing open");
        assert!(!State::default().waits_for_root(0));
        let marked = State {
            recipients: vec![(0, RcptState::Deferred, why("needs the root queue runner"))],
            bounce: Some("x".into()),
            ..State::default()
        };
        assert!(!marked.waits_for_root(1));
        assert!(!marked.deferred_for_root(1));
        assert!(back.tried_within(20, 11) && !back.tried_within(21, 11));
        assert!(!back.tried_within(0, 0) && !State::default().tried_within(0, 100));
    }

    #[test]
    fn essential_state_keeps_what_is_final_within_its_bound() {
        for n in [1usize, 2, 9, 10, 11, 150] {
            let st = State {
                attempts: u32::MAX,
                last_attempt: Some(i64::MIN),
                next_attempt: Some(i64::MIN),
                local_next_attempt: Some(i64::MIN),
                reason: Some("Deferred: a long reason ".repeat(40)),
                recipients: (0..n)
                    .map(|i| (i, RcptState::Delivered, Some("250 2.0.0 Ok ".repeat(30))))
                    .collect(),
                warned: true,
                reports: u32::MAX,
                retry: true,
                bounce: Some("returned ".repeat(40)),
                bounce_by: Some("at the request of user x".into()),
                owed: Vec::new(),
                owed_notes: Vec::new(),
                owner_owed: Vec::new(),
                owner_notes: Vec::new(),
                expansion_notes: Vec::new(),
                reply_lines: (0..n)
                    .map(|i| (i, "550-5.1.1 an earlier line ".repeat(20)))
                    .collect(),
                held_by: Some(HeldBy {
                    uid: u32::MAX,
                    login: "a-login".repeat(20),
                }),
                reporting: Vec::new(),
                reported: None,
            };
            let e = st.essential();
            assert!(e.to_text().len() <= State::essential_len_bound(n), "{n}");
            // A report owed is kept whole.
            let owing = State {
                owed: vec![crate::dsn::RcptReport {
                    final_recipient: "x@host.example".into(),
                    original_recipient: None,
                    action: "failed",
                    status: crate::status::BAD_MAILBOX,
                    remote_mta: None,
                    diagnostic: Some("550 5.1.1 x... User unknown".into()),
                    diagnostic_type: "X-Unix",
                    transcript: Vec::new(),
                    listed: Some("x".into()),
                    comment: None,
                    actual_recipient: None,
                    expanded_from: None,
                    last_attempt: 7,
                }],
                owed_notes: vec!["550 5.1.1 x... User unknown".into()],
                ..st.clone()
            };
            let kept = State::parse(&owing.essential().to_text()).unwrap();
            assert_eq!(
                (kept.owed.len(), &kept.owed_notes),
                (1, &owing.owed_notes),
                "{n}"
            );
            assert_eq!(
                crate::spool::entry::owed_text(&kept.owed[0]),
                crate::spool::entry::owed_text(&owing.owed[0])
            );
            let back = State::parse(&e.to_text()).unwrap();
            assert_eq!(back.of(n - 1), RcptState::Delivered);
            assert_eq!(
                (back.reason, back.attempts, back.warned),
                (None, u32::MAX, true)
            );
        }
        // message-sum: as written, or an error.
        assert_eq!(
            message_sum("x 1\nmessage-sum 00000000000000af\n\n"),
            Some(Ok(0xaf))
        );
        for bad in [
            "00000000000000AF",
            "+0000000000000af",
            "af",
            "0000000000000000af",
        ] {
            let text = format!("x 1\nmessage-sum {bad}\n\n");
            assert!(matches!(message_sum(&text), Some(Err(_))), "{bad}");
        }
        assert_eq!(message_sum("x 1\n\nmessage-sum 00000000000000af\n"), None);
    }

    /// A journal's lines: whole ones with a recipient the entry has are taken; garbage,
    /// an index out of range, a bad escape and an unterminated last line are not.
    #[test]
    fn journal_lines() {
        let text = b"rcpt 0 delivered 250%202.0.0%20piped\n\
garbage\n\
rcpt 7 delivered 250\n\
rcpt -1 delivered 250\n\
rcpt 1 failed 550\n\
rcpt 1 delivered 25%Z\n\
\xff\xfe\n\
rcpt 2 delivered 250\n\
rcpt 1 delivered 250";
        assert_eq!(
            parse_journal(text, 3),
            [(0, "250 2.0.0 piped".to_string()), (2, "250".to_string())]
        );
        let mut st = State {
            recipients: vec![(0, RcptState::Deferred, Some("451 x".into()))],
            ..State::default()
        };
        assert!(st.apply_journal(&parse_journal(text, 3)));
        assert_eq!(st.of(0), RcptState::Delivered);
        assert_eq!(st.of(1), RcptState::Pending);
        assert_eq!(st.of(2), RcptState::Delivered);
        assert_eq!(st.recipients.len(), 2);
        assert!(!st.apply_journal(&parse_journal(text, 3)));
        assert_eq!(
            parse_journal(journal_line(1, "250 a\nb").as_bytes(), 2),
            [(1, "250 a\nb".to_string())]
        );
    }

    mod props {
        use super::*;
        use proptest::collection::vec;
        use proptest::option;
        use proptest::prelude::*;
        use proptest::sample::select;

        /// A value as an address, a reason or a name may hold it: blanks, quotes, `%`,
        /// `=`, line ends, UTF-8, and any character.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                "[ \"%=a-z@<>\\t\r\n\u{7f}é€\u{2028}\u{85}]{0,20}",
                any::<String>(),
            ]
        }

        fn recipient() -> impl Strategy<Value = Recipient> {
            (
                value(),
                option::of(value()),
                option::of(value()),
                option::of(value()),
                option::of(value()),
                option::of(any::<u32>()),
                option::of(value()),
            )
                .prop_map(|(address, notify, orcpt, display, sender, owner, ctl)| {
                    Recipient {
                        address,
                        notify,
                        orcpt,
                        display,
                        sender,
                        owner,
                        ctl,
                        ..Recipient::new("")
                    }
                })
        }

        fn envelope() -> impl Strategy<Value = Envelope> {
            let id = "[0-9A-Za-x]{14}";
            let head = (
                id,
                any::<i64>(),
                value(),
                vec(recipient(), 1..4),
                value(),
                any::<u32>(),
            );
            let tail = (
                select(&['b', 'i', 'q', 'd'][..]),
                (any::<u64>(), any::<u64>()),
                option::of(value()),
                option::of(value()),
                option::of(value()),
                option::of(value()),
                any::<u32>(),
                any::<u64>(),
            );
            (head, tail).prop_map(
                |(
                    (id, created, sender, recipients, user, uid),
                    (
                        mode,
                        (header_bytes, added_header_bytes),
                        body_type,
                        envid,
                        ret,
                        report,
                        expansions,
                        message_bytes,
                    ),
                )| Envelope {
                    id,
                    created,
                    sender,
                    recipients,
                    user,
                    uid,
                    mode,
                    header_bytes,
                    added_header_bytes,
                    submitted_header_bytes: (uid % 2 == 0).then_some(added_header_bytes),
                    body_type,
                    envid,
                    ret,
                    report_of: report.as_ref().map(|_| "6AM5eIkR004034 0 00ff".to_string()),
                    returned_by: report.as_ref().map(|_| "by the administrator".to_string()),
                    report_owner: report.as_ref().map(|_| uid / 2),
                    report,
                    verp: match expansions % 3 {
                        1 => Some("+=".to_string()),
                        2 => Some("-=".to_string()),
                        _ => None,
                    },
                    expansions,
                    refused_users: expansions % 5,
                    taken_fields: if expansions % 2 == 0 {
                        Vec::new()
                    } else {
                        vec![(
                            format!("To: u{uid}@h\n\t, x@h\n"),
                            format!("To: u{uid} %\n\t x\n"),
                        )]
                    },
                    message_bytes: Some(message_bytes),
                },
            )
        }

        fn state() -> impl Strategy<Value = State> {
            let rcpt = (
                any::<usize>(),
                select(
                    &[
                        RcptState::Pending,
                        RcptState::Deferred,
                        RcptState::Delivered,
                        RcptState::Failed,
                    ][..],
                ),
                option::of(value()),
            );
            (
                any::<u32>(),
                (option::of(any::<i64>()), option::of(any::<i64>())),
                option::of(any::<i64>()),
                option::of(value()),
                vec(rcpt, 0..4),
                any::<bool>(),
                any::<bool>(),
                option::of(value()),
                option::of((any::<u32>(), value())),
            )
                .prop_map(
                    |(
                        attempts,
                        (last_attempt, local_next_attempt),
                        next_attempt,
                        reason,
                        recipients,
                        warned,
                        retry,
                        bounce,
                        held_by,
                    )| State {
                        attempts,
                        last_attempt,
                        next_attempt,
                        local_next_attempt,
                        reason,
                        recipients,
                        warned,
                        reports: attempts,
                        retry,
                        bounce_by: bounce.as_ref().map(|b| format!("at the request of {b}")),
                        bounce,
                        owed: Vec::new(),
                        owed_notes: Vec::new(),
                        owner_owed: Vec::new(),
                        owner_notes: Vec::new(),
                        expansion_notes: Vec::new(),
                        reply_lines: Vec::new(),
                        held_by: held_by.map(|(uid, login)| HeldBy { uid, login }),
                        reporting: Vec::new(),
                        reported: None,
                    },
                )
        }

        /// Queue-file text: the magic line (or not), then lines of known keys with any
        /// values, huge or negative numbers, bad escapes, or any text.
        fn text() -> impl Strategy<Value = String> {
            let key = select(
                &[
                    "id",
                    "created",
                    "user",
                    "mode",
                    "header-bytes",
                    "sender",
                    "body",
                    "envid",
                    "ret",
                    "report",
                    "report-owner",
                    "expansions",
                    "refused-users",
                    "taken-field",
                    "message-bytes",
                    "rcpt",
                    "attempts",
                    "last-attempt",
                    "next-attempt",
                    "local-next-attempt",
                    "reason",
                    "warned",
                    "retry",
                    "bounce",
                    "held-by",
                    "x",
                ][..],
            );
            let val = prop_oneof![
                "-?[0-9]{1,25}",
                "[0-9]{1,3} [a-z%0-9]{0,6}",
                "[a-z@%=. ]{0,12}( (notify|orcpt|display|sender|owner|ctl)=[a-z%0-9-]{0,25}){0,3}",
                "[0-9]{1,3} (pending|deferred|delivered|failed|x)( [a-z%]{0,6})?",
                "\\PC{0,12}",
            ];
            let line = prop_oneof![
                4 => (key, select(&[" ", "", "  "][..]), val).prop_map(|(k, s, v)| format!("{k}{s}{v}")),
                1 => "[\\PC\r]{0,20}",
            ];
            (
                select(
                    &[
                        "rsendmail-queue 1",
                        "rsendmail-queue 2",
                        "rsendmail-queue 3",
                        "rsendmail-queue 02",
                        "rsendmail-state 1",
                        "rsendmail-queue 99",
                        "rsendmail-queue",
                        "",
                    ][..],
                ),
                vec(line, 0..12),
                select(&["\n", "\r\n"][..]),
            )
                .prop_map(|(magic, lines, eol)| {
                    let mut t = String::from(magic);
                    for l in lines {
                        t.push_str(eol);
                        t.push_str(&l);
                    }
                    t
                })
        }

        proptest! {
            #[test]
            fn any_text_is_an_entry_or_an_error(text in text(), raw in any::<String>()) {
                for t in [&text, &raw] {
                    if let Ok(e) = Envelope::parse(t) {
                        prop_assert!(!e.id.is_empty() && !e.recipients.is_empty());
                        // Version 2 exactly when a length was read; written again, an
                        // entry is version 2 (zeros until a commit counts).
                        let v1 = t.lines().next().is_some_and(|l| {
                            l.strip_prefix(QUEUE_MAGIC)
                                .and_then(|v| v.trim().parse::<u32>().ok())
                                .is_some_and(|v| v < 2)
                        });
                        prop_assert_eq!(e.message_bytes.is_none(), v1);
                        let text = e.to_text();
                        prop_assert!(text.get(LENGTH_AT..LENGTH_AT + LENGTH_DIGITS)
                            .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit())));
                        let written = Envelope {
                            message_bytes: Some(e.message_bytes.unwrap_or(0)),
                            ..e
                        };
                        prop_assert_eq!(Envelope::parse(&text), Ok(written));
                    }
                    if let Ok(st) = State::parse(t) {
                        prop_assert_eq!(State::parse(&st.to_text()), Ok(st.clone()));
                        let _ = st.is_due(i64::MAX, i64::MAX);
                        let _ = st.is_due(i64::MIN, i64::MAX);
                        let _ = st.of(usize::MAX);
                    }
                    let _ = unescape(t);
                }
            }

            #[test]
            fn any_journal_gives_known_recipients_only(
                raw in vec(any::<u8>(), 0..200),
                text in "(rcpt [0-9 a-z%]{0,12} delivered[ -~]{0,20}\n?){0,5}",
                lines in vec((0usize..20, value()), 0..5),
                n in 0usize..12,
                cut in 0usize..400,
            ) {
                let mut good = String::new();
                for (i, r) in &lines {
                    good.push_str(&journal_line(*i, r));
                }
                for bytes in [raw.as_slice(), text.as_bytes(), good.as_bytes()] {
                    for (i, _) in parse_journal(bytes, n) {
                        prop_assert!(i < n);
                    }
                    let mut st = State::default();
                    let d = parse_journal(bytes, n);
                    st.apply_journal(&d);
                    for (i, _) in &d {
                        prop_assert_eq!(st.of(*i), RcptState::Delivered);
                    }
                    prop_assert_eq!(State::parse(&st.to_text()), Ok(st.clone()));
                }
                // Lines written whole come back whole; a line cut short is left out.
                let want: Vec<(usize, String)> =
                    lines.iter().filter(|(i, _)| *i < n).cloned().collect();
                prop_assert_eq!(parse_journal(good.as_bytes(), n), want);
                let cut = cut.min(good.len());
                let short = good.as_bytes().get(..cut).unwrap_or_default();
                let whole = short.iter().filter(|&&b| b == b'\n').count();
                let got = parse_journal(short, usize::MAX);
                prop_assert_eq!(got.len(), whole);
            }

            #[test]
            fn envelopes_and_states_round_trip(e in envelope(), st in state(), s in value()) {
                let text = e.to_text();
                prop_assert!(text.ends_with("\n\n"));
                let digits = format!("{:020}", e.message_bytes.unwrap_or(0));
                prop_assert_eq!(text.get(LENGTH_AT..LENGTH_AT + LENGTH_DIGITS), Some(digits.as_str()));
                prop_assert_eq!(text.matches("\n\n").count(), 1, "one blank line: {:?}", text);
                prop_assert_eq!(Envelope::parse(&text), Ok(e));
                prop_assert_eq!(State::parse(&st.to_text()), Ok(st));
                let escaped = escape(&s);
                prop_assert!(!escaped.contains([' ', '\n', '\r', '\t']));
                prop_assert_eq!(unescape(&escaped), Some(s));
            }
        }
    }
}
