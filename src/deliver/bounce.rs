//! The last step of an attempt: the delivery reports it owes (RFC 3464 failures, delays
//! and successes). [`owed`] decides, purely, which reports go to whom (NOTIFY, the null
//! sender, double bounces, ErrorMode for an interactive delivery); [`send`] queues them
//! (or saves the message in `~/dead.letter`) as new entries of the spool.

use super::engine::Engine;
use super::plan::{Route, route};
use super::reply::Reply;
use rsendmail::dsn;
use rsendmail::exit::{Fatal, Sysexit};
use rsendmail::spool::Spool;
use rsendmail::spool::entry::{Envelope, Recipient};
use rsendmail::status::{self, EnhancedStatus, StatusClass};

/// One recipient's outcome as a delivery report needs it.
#[derive(Clone, Debug)]
pub struct ReportItem {
    /// The recipient (of the entry, or a target its expansion refused).
    pub rcpt: Recipient,
    /// Its place in the entry (`usize::MAX` for a target an expansion refused): a
    /// report lists its recipients in the entry's order, its transcript follows the
    /// order of delivery (compat case receipt-success-hdrs-odi).
    pub index: usize,
    pub kind: dsn::Kind,
    /// The DSN action: failed, delayed, delivered, relayed, expanded.
    pub action: &'static str,
    /// The recipient's status (RFC 3464 §2.3.4).
    pub status: EnhancedStatus,
    /// The reply as stored (`code text`), the report's Diagnostic-Code.
    pub why: String,
    /// The server's reply (remote recipients only), for the transcript.
    pub reply: Option<Reply>,
    /// The server's name as routed (`mx.example.org`, `127.0.0.1`), empty when local.
    pub remote: String,
    /// Still failing temporarily when the message expired (Timeout.queuereturn).
    pub expired: bool,
    /// A target an expansion refused that the transcript tells (local::Refused::told):
    /// no reason line and no Diagnostic-Code.
    pub told: bool,
    /// For a remote recipient: the reason was made here, not read from a server (the
    /// server lacks SMTPUTF8 an address needs, the domain does not exist, a refused
    /// connection). No server reply exists, so the report has no Diagnostic-Code and no
    /// reason line, as sendmail's (its Diagnostic-Code is only ever a reply); the
    /// transcript tells it.
    pub made_here: bool,
}

/// Which lines of the attempt's transcript a report carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines<'a> {
    /// Only the lines about these recipients (as the entry or the expansion names
    /// them): a VERP report names its own recipient alone.
    Of(&'a [String]),
    /// The lines about the recipients whose reports go to this list owner (`Some`: the
    /// owner's envelope sender, `Envelope::owner_sender`), or to the message's sender
    /// (`None`; every line for a message without list owners). A list's members and
    /// what befell them are its owner's business, not the sender's, and one owner does
    /// not read of another's list.
    Owner(Option<&'a str>),
}

/// The transcript a report carries (see [`transcript`]), of the [`Lines`] asked for.
pub type TranscriptOf<'a> = &'a dyn Fn(Lines<'_>) -> Vec<String>;

/// Where a report goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportTo {
    /// Mailed to this (qualified) return address.
    Sender(String),
    /// An interactive delivery with ErrorMode p and a local sender: saved in the
    /// sender's `~/dead.letter`, or mailed to the address when that fails.
    DeadLetter(String),
    /// A failure of a message from the null sender: to the postmaster, once (a double
    /// bounce).
    Postmaster,
    /// Not sent: the reason is logged (a failed double bounce; ErrorMode q).
    Dropped(&'static str),
}

/// One report owed: its kind, its addressee, and the recipients it reports on.
#[derive(Debug)]
pub struct Owed {
    pub kind: dsn::Kind,
    pub to: ReportTo,
    pub recipients: Vec<dsn::RcptReport>,
    /// The attempt's transcript (see [`transcript`]): failure reports and return
    /// receipts carry it, as sendmail's do.
    pub notes: Vec<String>,
    /// The envelope sender the recipients went out with when it is not the entry's (a
    /// list owner's, `owner-<list>`): the returned original's `Return-Path:`, as in
    /// sendmail's report from the envelope it splits off (bp-v-alias-owner-bounce).
    pub sent_from: Option<String>,
    /// The postmaster gets the report too, as one more recipient of it (sendmail's
    /// savemail: a failure report of a delivery whose exit status is EX_SOFTWARE or
    /// EX_CONFIG; recorded: `prog-exit-70-postmaster-*`, `prog-exit-78-postmaster-odi`).
    pub postmaster_copy: bool,
}

/// Join the report owed for recipients refused at an interactive submission
/// (`State::owed`) to an attempt's `reports`: its entries and transcript lines come
/// first in the attempt's failure report to the sender, or make one of their own when
/// the attempt owes none, with the attempt's `transcript` (its deferrals) after their
/// lines; one report for the pass, as sendmail sends (recorded: `bounce-one-report-*`,
/// `argv-syntax-reject4-odi`).
pub fn join_owed(
    engine: &Engine,
    env: &Envelope,
    reports: &mut Vec<Owed>,
    state: &rsendmail::spool::entry::State,
    transcript: &[String],
) {
    join_senders(engine, env, reports, state, transcript);
}

/// [`join_owed`] for each list owner owed a report on its targets refused at submission
/// (`State::owner_owed`): joined to the attempt's failure report to that owner, or one
/// of its own with the attempt's lines about that owner's recipients
/// (`transcripts`), so that the owner gets one report for the pass, with its list's
/// `Message delivered to mailing list` line (recorded: `owner-list-unknown-odi`). An
/// owner who is the message's `sender` gets it in the attempt's report to the sender:
/// one report, its own refusals first (recorded: `owner-list-self-direct-reject-odi`).
pub fn join_owner_owed(
    engine: &Engine,
    sender: &str,
    reports: &mut Vec<Owed>,
    state: &rsendmail::spool::entry::State,
    transcripts: &[(String, Vec<String>)],
) {
    let mut owners: Vec<&str> = Vec::new();
    for (o, _) in state.owner_owed.iter() {
        if !owners.contains(&o.as_str()) {
            owners.push(o);
        }
    }
    // An owner none of whose targets was refused at submission: only its lines, for
    // the attempt's own report to it.
    for (o, _) in state.owner_notes.iter() {
        if !owners.contains(&o.as_str()) {
            owners.push(o);
        }
    }
    let order = owners.clone();
    for owner in owners {
        let entries: Vec<dsn::RcptReport> = state
            .owner_owed
            .iter()
            .filter(|(o, _)| o == owner)
            .map(|(_, r)| r.clone())
            .collect();
        let notes: Vec<String> = state
            .owner_notes
            .iter()
            .filter(|(o, _)| o == owner)
            .map(|(_, n)| n.clone())
            .collect();
        let joined = reports.iter_mut().find(|r| {
            r.kind == dsn::Kind::Failure
                && match r.sent_from.as_deref() {
                    Some(from) => from == owner,
                    None => owner == sender,
                }
        });
        match joined {
            Some(r) => {
                let mut recipients = entries;
                recipients.append(&mut r.recipients);
                r.recipients = recipients;
                let mut all = notes;
                all.append(&mut r.notes);
                r.notes = all;
            }
            None if entries.is_empty() => {}
            None => {
                let after = transcripts
                    .iter()
                    .find(|(o, _)| o == owner)
                    .map(|(_, t)| t.clone())
                    .unwrap_or_default();
                // Before the report to an owner met after it: the owners' reports go
                // in the order their lists were (sendmail's, one envelope each).
                let later: Vec<&str> = order.iter().skip_while(|o| **o != owner).copied().collect();
                let at = reports
                    .iter()
                    .position(|r| {
                        r.sent_from
                            .as_deref()
                            .is_some_and(|s| s != owner && later.contains(&s))
                    })
                    .unwrap_or(reports.len());
                reports.insert(
                    at,
                    Owed {
                        kind: dsn::Kind::Failure,
                        to: ReportTo::Sender(engine.qualify(owner)),
                        recipients: entries,
                        notes: notes.into_iter().chain(after).collect(),
                        sent_from: Some(owner.to_string()),
                        postmaster_copy: false,
                    },
                );
            }
        }
    }
}

/// The attempt's own report to the message's sender (not one it relays for another
/// entry), of kind `kind` when given.
fn senders_report<'a>(
    engine: &Engine,
    env: &Envelope,
    reports: &'a mut [Owed],
    kind: Option<dsn::Kind>,
) -> Option<&'a mut Owed> {
    let to = engine.qualify(&env.sender);
    reports.iter_mut().find(|o| {
        kind.is_none_or(|k| o.kind == k)
            && o.sent_from.is_none()
            && matches!(&o.to, ReportTo::Sender(a) if *a == to)
    })
}

/// Whether mail to `to` already reaches every target mail to `postmaster` reaches (a
/// local sender who is the postmaster, or root when postmaster is root's): the
/// postmaster's copy of a report to `to` would then be a second delivery of it, which
/// sendmail's one report to both never makes (its recipients are expanded once).
fn reaches_postmaster(engine: &Engine, to: &str) -> bool {
    let is_local = |a: &str| route(engine, a) == Route::Local;
    if !is_local(to) {
        return false;
    }
    let targets = |a: &str| -> Option<std::collections::BTreeSet<String>> {
        let x = engine.local.expand(&[a.to_string()], None, &is_local);
        if !x.errors.is_empty() || x.targets.is_empty() {
            return None;
        }
        Some(
            x.targets
                .iter()
                .map(|e| match &e.target {
                    rsendmail::aliases::Target::User(u)
                    | rsendmail::aliases::Target::Mailbox(u) => {
                        let u = rsendmail::aliases::key_of(u);
                        let local = u.split('@').next().unwrap_or_default().to_string();
                        format!("user:{local}")
                    }
                    t => t.address(),
                })
                .collect(),
        )
    };
    match (targets(to), targets("postmaster")) {
        (Some(mine), Some(theirs)) => theirs.is_subset(&mine),
        _ => false,
    }
}

/// The transcript lines of recipients refused at submission whose NOTIFY asked for no
/// failure report (`State::owed_notes` with nothing owed): first in the attempt's
/// return receipt to the sender, as sendmail's receipt has them (recorded:
/// `argv-prog-N-success-odi`). False when the attempt sends the sender no receipt.
pub fn join_receipt_notes(
    engine: &Engine,
    env: &Envelope,
    reports: &mut [Owed],
    notes: &[String],
) -> bool {
    match senders_report(engine, env, reports, Some(dsn::Kind::Success)) {
        Some(o) => {
            let mut all = notes.to_vec();
            all.append(&mut o.notes);
            o.notes = all;
            true
        }
        None => false,
    }
}

/// The transcript lines of the submission's expansion (`State::expansion_notes`): first
/// in the attempt's report to the sender, whatever its kind (a return receipt, a
/// failure report), as sendmail's one transcript has them (recorded:
/// `receipt-list-owner-argv-odi`, `bounce-list-owner-argv-reject5-odi`). False when
/// the attempt sends the sender no report.
pub fn join_expansion_notes(
    engine: &Engine,
    env: &Envelope,
    reports: &mut [Owed],
    notes: &[String],
) -> bool {
    match senders_report(engine, env, reports, None) {
        Some(o) => {
            // A sender who is the list's owner already has the list's line, where its
            // owner's report has it (after what expanding it refused: recorded
            // `owner-list-self-odi`): said once.
            let mut all: Vec<String> = notes
                .iter()
                .filter(|n| !o.notes.contains(n))
                .cloned()
                .collect();
            all.append(&mut o.notes);
            o.notes = all;
            true
        }
        None => false,
    }
}

/// [`join_owed`]'s part for the report to the message's sender.
fn join_senders(
    engine: &Engine,
    env: &Envelope,
    reports: &mut Vec<Owed>,
    state: &rsendmail::spool::entry::State,
    transcript: &[String],
) {
    let to = engine.qualify(&env.sender);
    let joined = reports.iter_mut().find(|o| {
        o.kind == dsn::Kind::Failure
            && o.sent_from.is_none()
            && matches!(&o.to, ReportTo::Sender(a) if *a == to)
    });
    match joined {
        Some(o) => {
            let mut recipients = state.owed.clone();
            recipients.append(&mut o.recipients);
            o.recipients = recipients;
            let mut notes = state.owed_notes.clone();
            notes.append(&mut o.notes);
            o.notes = notes;
        }
        None => reports.insert(
            0,
            Owed {
                kind: dsn::Kind::Failure,
                to: ReportTo::Sender(to),
                recipients: state.owed.clone(),
                notes: state.owed_notes.iter().chain(transcript).cloned().collect(),
                sent_from: None,
                postmaster_copy: false,
            },
        ),
    }
}

/// The server as a report names it: an address in brackets, as sendmail writes it.
pub(super) fn mta_name(host: &str) -> String {
    if host.parse::<std::net::IpAddr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// An interval of `secs` seconds in words, as sendmail's `pintvl(secs, false)` writes
/// it: `1 second`, `4 hours`, `1 week, 2 days, 3 hours, 5 minutes` (weeks, days, hours,
/// minutes and seconds that are not 0, joined by `, `; `0 seconds` for none). A delay
/// warning's subject and an expired message's transcript use it (compat cases
/// bounce-queuereturn-*).
pub fn interval_words(secs: i64) -> String {
    let s = secs.max(0);
    let parts = [
        (s / 604_800, "week"),
        (s % 604_800 / 86_400, "day"),
        (s % 86_400 / 3600, "hour"),
        (s % 3600 / 60, "minute"),
        (s % 60, "second"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    if words.is_empty() {
        "0 seconds".to_string()
    } else {
        words.join(", ")
    }
}

/// One outcome as the attempt's transcript needs it.
#[derive(Clone, Copy)]
pub struct Told<'a> {
    /// The recipient's address as the entry has it.
    pub address: &'a str,
    /// Its list owner's envelope sender, when its reports go to that owner
    /// (`Envelope::owner_sender`).
    pub owner: Option<&'a str>,
    pub outcome: &'a super::outcome::RcptOutcome,
    /// A return receipt is owed for it (NOTIFY=SUCCESS, relayed to a server that did
    /// not take the request).
    pub receipt: bool,
}

/// sendmail's transcript of an attempt (its `xf` file), which its failure reports and
/// return receipts show under "Transcript of session follows", whichever recipients
/// each reports on: in the order of delivery, for each server's refusal or deferral
/// the command and the reply (the server named once before the first) and sendmail's
/// line for it (`addr... User unknown`, `addr... Deferred: 450 ...`); a deferral made
/// here (`b@x,a@x... Deferred: Connection refused by [host]`, recipients that share
/// it on one line); for a return receipt `addr... relayed; expect no further
/// notifications`; and when the message expired, `Message could not be delivered for
/// 1 second` and `Message will be deleted from queue`. Recorded in the compat cases
/// bounce-*, receipt-* and reason-reject5-reject4-v.
pub fn transcript(told: &[Told<'_>], expired_after: Option<i64>) -> Vec<String> {
    use super::outcome::{Class, Mailer};
    let mut out: Vec<String> = Vec::new();
    let mut talking_to: Option<String> = None;
    let mut k = 0;
    while let Some(first) = told.get(k) {
        let o = first.outcome;
        // The outcomes one reply gave (a DATA reply, a refused connection).
        let mut j = k + 1;
        while told.get(j).is_some_and(|t| {
            t.outcome.class == o.class
                && !t.receipt
                && !first.receipt
                && t.outcome.reply.same_as(&o.reply)
        }) {
            j += 1;
        }
        let group = told.get(k..j).unwrap_or_default();
        k = j;
        let addrs: Vec<&str> = group.iter().map(|t| t.address).collect();
        let remote = o.mailer != Mailer::Local;
        let lines: Vec<String> = match o.class {
            Class::Permanent if remote => match &o.loops {
                Some(text) => vec![text.clone()],
                // Refused here, no server reply to show: sendmail's line for its own
                // refusal (`553 5.6.7 addr... why`), the code and status made here.
                None if o.reply.local => vec![format!(
                    "{} {} {}... {}",
                    o.reply.code,
                    o.status,
                    addrs.join(","),
                    o.reply.text_without_enhanced()
                )],
                None => failure_transcript(first.address, &o.reply),
            },
            Class::Temporary if remote => {
                let mut l = Vec::new();
                if let (Some(command), false) = (&o.reply.command, o.reply.local) {
                    l.push(format!(">>> {command}"));
                    l.extend(o.reply.transcript_lines());
                }
                l.push(format!("{}... {}", addrs.join(","), o.stat_text()));
                l
            }
            // A local failure's own lines (a program's output and sendmail's line).
            Class::Permanent if !remote && group.iter().any(|t| !t.outcome.notes.is_empty()) => {
                group
                    .iter()
                    .flat_map(|t| t.outcome.notes.iter().cloned())
                    .collect()
            }
            Class::Delivered if o.expanded_to_multiple => group
                .iter()
                .map(|t| format!("{}... expanded to multiple addresses", t.address))
                .collect(),
            Class::Relayed | Class::Delivered if first.receipt => {
                vec![format!(
                    "{}... relayed; expect no further notifications",
                    first.address
                )]
            }
            _ => Vec::new(),
        };
        if lines.first().is_some_and(|l| l.starts_with(">>> ")) {
            let mta = o
                .relay
                .as_deref()
                .and_then(|n| n.split(' ').next())
                .map(mta_name);
            if let Some(mta) = mta
                && talking_to.as_ref() != Some(&mta)
            {
                out.push(format!("... while talking to {mta}:"));
                talking_to = Some(mta);
            }
        }
        out.extend(lines);
    }
    if let Some(secs) = expired_after {
        out.push(format!(
            "Message could not be delivered for {}",
            interval_words(secs)
        ));
        out.push("Message will be deleted from queue".to_string());
    }
    out
}

/// The lines a delay warning's transcript ends with, as sendmail's: `Warning: message
/// still undelivered after 4 hours` (Timeout.queuewarn) and `Will keep trying until
/// message is 5 days old` (Timeout.queuereturn; compat case delay-queuewarn-reject4).
fn delay_notes(engine: &Engine) -> Vec<String> {
    let mut l = vec![format!(
        "Warning: message still undelivered after {}",
        interval_words(engine.queue_warn)
    )];
    if engine.queue_return > 0 {
        l.push(format!(
            "Will keep trying until message is {} old",
            interval_words(engine.queue_return)
        ));
    }
    l
}

/// The transcript lines for a recipient refused by a server: the command, the reply,
/// then sendmail's own line for it (its sysexits text: `User unknown` for a refused
/// recipient, `Service unavailable` otherwise; recorded in the bounce-* compat cases).
fn failure_transcript(address: &str, reply: &Reply) -> Vec<String> {
    let Some(command) = &reply.command else {
        return Vec::new();
    };
    if !reply.is_permanent() {
        return Vec::new();
    }
    let mut lines = vec![format!(">>> {command}")];
    lines.extend(reply.transcript_lines());
    if reply.is_user_unknown(command.starts_with("RCPT")) {
        let enhanced = EnhancedStatus::at_start_of(reply.lines.first().map_or("", |l| l))
            .unwrap_or(status::BAD_MAILBOX);
        lines.push(format!(
            "{} {enhanced} {address}... User unknown",
            reply.code
        ));
    } else {
        lines.push(format!("554 {} Service unavailable", status::PERM));
    }
    lines
}

/// The reports `items` come to: one per kind and addressee, in the order of the items.
/// Failures and delays go to the recipient's return address when its NOTIFY wants them
/// (RFC 3461 §4.1), successes only when asked for; a failure of a message from the null
/// sender goes to the postmaster once; a failure of that report is only logged. Each
/// report carries the attempt's transcript (`transcript(None)`); with VERP, whose
/// reports go one to each recipient's own sender, only its recipients' lines.
pub fn owed(
    engine: &Engine,
    env: &Envelope,
    items: Vec<ReportItem>,
    transcript: TranscriptOf<'_>,
    now: i64,
) -> Vec<Owed> {
    // (return address, the list owner's sender they went out with) → the recipients
    // reported on (with the kind of report each needs and the address the transcript
    // names each by). One report for an attempt and a sender, as sendmail's: failures,
    // delays and the successes asked for together (recorded: `N-mixed-R-full-odi`,
    // `N-mixed-q`, `delay-failure-mixed-q`).
    type Groups = Vec<(
        (Option<String>, Option<String>),
        Vec<(usize, dsn::Kind, dsn::RcptReport, String)>,
    )>;
    let mut groups: Groups = Vec::new();
    // Each recipient's place in sendmail's queue order, where a `.forward`'s targets
    // take their user's place (recorded: `receipt-forward-one-argv-odi`).
    let mut rank = vec![usize::MAX; env.recipients.len()];
    for (k, i) in env.queue_order().into_iter().enumerate() {
        if let Some(r) = rank.get_mut(i) {
            *r = k;
        }
    }
    for item in items {
        let ReportItem {
            rcpt: r,
            index,
            kind,
            action,
            status,
            why,
            reply,
            remote,
            expired,
            told,
            made_here: refused_here,
        } = item;
        let mut ret = dsn::return_address(env, &r).map(str::to_string);
        // VERP: the report on a recipient goes to the sender made for that recipient,
        // one report each (Postfix's default, `disable_verp_bounces = no`), so that the
        // list's bounce handling reads rsendmail's reports as it reads a remote one.
        if let (Some(d), Some(to)) = (&env.verp, &ret)
            && !to.is_empty()
            && !r.address.starts_with(['|', '/'])
        {
            let rcpt = engine.qualify(r.address.trim_start_matches('\\'));
            ret = Some(rsendmail::verp::sender(&engine.qualify(to), d, &rcpt));
        }
        match &ret {
            Some(_) if !dsn::wanted(&r, kind) => continue,
            None if kind != dsn::Kind::Failure => continue,
            _ => {}
        }
        // Relayed to a server without DSN: sendmail's words and status for it, and the
        // server's reply to RCPT (compat cases receipt-*).
        let relayed = kind == dsn::Kind::Success && action == "relayed";
        let status = match kind {
            dsn::Kind::Success if relayed => status::VALID_ADDRESS,
            dsn::Kind::Success => status::OK,
            // Still failing temporarily when the message expired.
            dsn::Kind::Failure if status.class != StatusClass::Permanent => status::EXPIRED,
            _ => status,
        };
        // A list file is named as a local address (`/path@host`, sendmail's; recorded:
        // forward-include-relative-odi).
        let attempted = if let Some(path) = r.address.strip_prefix(":include:") {
            engine.qualify(path)
        } else if r
            .address
            .trim_start_matches('"')
            .starts_with(['|', '/', '\\', ':'])
        {
            r.address.clone()
        } else {
            engine.qualify(&r.address)
        };
        // A target of an expansion: sendmail's Final-Recipient is the address the
        // expansion began with, the target its X-Actual-Recipient (compat cases
        // alias-list-member-reject5, alias-one-member-reject5).
        let (final_recipient, actual_recipient) = match &r.final_rcpt {
            Some(f) => (f.clone(), Some(attempted)),
            None => (attempted, None),
        };
        // An expired recipient whose last reason was made here (a refused connection)
        // has no server reply to name: no reason line and no Diagnostic-Code; the
        // transcript tells it (compat case bounce-queuereturn-refused).
        let made_here = refused_here || (expired && reply.as_ref().is_none_or(|r| r.local));
        let diagnostic = if made_here || told {
            None
        } else if relayed {
            Some(
                reply
                    .as_ref()
                    .and_then(|r| r.accepted_by.clone())
                    .unwrap_or(why),
            )
        } else {
            (kind != dsn::Kind::Success || !remote.is_empty()).then_some(why)
        };
        let rr = dsn::RcptReport {
            final_recipient,
            original_recipient: r.orcpt.clone(),
            action: if relayed {
                "relayed (to non-DSN-aware mailer)"
            } else {
                action
            },
            status,
            remote_mta: (!remote.is_empty()).then(|| mta_name(&remote)),
            transcript: Vec::new(),
            listed: Some(rsendmail::aliases::shown_target(&r.address).into_owned()),
            comment: relayed.then_some("relayed to non-DSN-aware mailer"),
            actual_recipient,
            expanded_from: r.expanded_from.clone(),
            diagnostic,
            diagnostic_type: if remote.is_empty() { "X-Unix" } else { "SMTP" },
            last_attempt: now,
        };
        let key = (ret, env.owner_sender(&r).map(str::to_string));
        let told_as = r.address;
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push((index, kind, rr, told_as)),
            None => groups.push((key, vec![(index, kind, rr, told_as)])),
        }
    }
    groups
        .into_iter()
        .map(|((ret, sent_from), mut recipients)| {
            // A delay warning when one is owed (its subject and transcript lines; the
            // failures and successes listed in it), else a failure report, else a
            // return receipt, as sendmail's.
            let has = |k: dsn::Kind| recipients.iter().any(|(_, kind, _, _)| *kind == k);
            let kind = if has(dsn::Kind::Delay) {
                dsn::Kind::Delay
            } else if has(dsn::Kind::Failure) {
                dsn::Kind::Failure
            } else {
                dsn::Kind::Success
            };
            let has_failure = has(dsn::Kind::Failure);
            // Listed in the entry's queue order; the transcript keeps the order of
            // delivery.
            recipients.sort_by_key(|(i, _, _, _)| rank.get(*i).copied().unwrap_or(usize::MAX));
            let (recipients, told_as): (Vec<dsn::RcptReport>, Vec<String>) =
                recipients.into_iter().map(|(_, _, r, a)| (r, a)).unzip();
            // Every report carries the attempt's transcript, a VERP report only its own
            // recipients' part; a delay warning ends it with sendmail's two lines
            // (compat cases delay-queuewarn-reject4*).
            let mut notes = transcript(match env.verp {
                Some(_) => Lines::Of(&told_as[..]),
                None => Lines::Owner(sent_from.as_deref()),
            });
            if kind == dsn::Kind::Delay {
                notes.extend(delay_notes(engine));
            }
            let to = match ret {
                // An interactive delivery's failures follow ErrorMode (recorded from 8.17
                // with and without a terminal): p saves the message in ~/dead.letter and
                // says so when the sender is local (sendmail's ESM_QUIET state: a local
                // sender's mailer is the local one); a remote sender (`-f a@example.com`)
                // gets it mailed back (compat case bounce-rcpt-550). q does nothing, m, w
                // and e mail it back. Elsewhere failures are mailed back, and so are the
                // failures of a list's members to its owner, who is not at the terminal
                // (sendmail mails the owner's envelope's errors: compat case
                // bp-v-alias-owner-bounce).
                Some(a) if engine.interactive && has_failure && sent_from.is_none() => {
                    match engine.error_mode {
                        'q' => ReportTo::Dropped("failure report not sent (ErrorMode q)"),
                        'm' | 'w' | 'e' => ReportTo::Sender(engine.qualify(&a)),
                        _ if route(engine, &env.sender) != Route::Local => {
                            ReportTo::Sender(engine.qualify(&a))
                        }
                        _ => ReportTo::DeadLetter(engine.qualify(&a)),
                    }
                }
                Some(a) => ReportTo::Sender(engine.qualify(&a)),
                None if env.report.as_deref() == Some("double") => ReportTo::Dropped(
                    "a report to the postmaster could not be delivered; discarded",
                ),
                None => ReportTo::Postmaster,
            };
            Owed {
                kind,
                to,
                recipients,
                notes,
                sent_from,
                postmaster_copy: false,
            }
        })
        .collect()
}

/// The reports this process queued that return the original's header only: sendmail
/// sends such a report, made in memory, without `SIZE=` (see `smtp::Outgoing`).
static MADE_HERE_HEADERS_ONLY: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The most such ids kept (a daemon sends its reports in the run that made them; the
/// oldest are forgotten first).
const MADE_HERE_KEPT: usize = 1000;

/// Note that entry `id` is a report made in this run that returns the header only.
pub fn made_here(id: &str) {
    if let Ok(mut v) = MADE_HERE_HEADERS_ONLY.lock() {
        if v.len() >= MADE_HERE_KEPT {
            v.remove(0);
        }
        v.push(id.to_string());
    }
}

/// Whether entry `id` is a report this process queued that returns the header only and
/// that it has not tried to send yet. Taken: a later try reads it back from the queue,
/// as sendmail's does.
pub fn made_here_headers_only(id: &str) -> bool {
    let Ok(mut v) = MADE_HERE_HEADERS_ONLY.lock() else {
        return false;
    };
    match v.iter().position(|m| m == id) {
        Some(k) => {
            v.remove(k);
            true
        }
        None => false,
    }
}

/// What queueing the reports came to.
#[derive(Debug, Default)]
pub struct Sent {
    /// The new entries, to deliver in the same run.
    pub ids: Vec<String>,
    /// Why a failure report could not be queued (a full disk): the failures it
    /// reports must stay queued, not be recorded as final.
    pub failure_unqueued: Option<String>,
}

/// The key of a report (`Envelope::report_of`): the original's ID, `n` (the reports
/// it queued before), and a hash of what the report says: its kind, its recipients,
/// and each recipient it reports with its action. A run that repeats the attempt of
/// one that died before its record makes the same key for the same report, whatever
/// the replies' texts; a report of anything else gets another.
fn report_key(
    id: &str,
    n: u32,
    kind: dsn::Kind,
    to: &[&str],
    reported: &[dsn::RcptReport],
) -> String {
    let mut what = format!("{} {}", kind.word(), to.join(","));
    for r in reported {
        what.push('\n');
        what.push_str(r.action);
        what.push(' ');
        what.push_str(&r.final_recipient);
    }
    format!("{id} {n} {:016x}", rsendmail::spool::key_hash(&what))
}

/// The addressees of a report to `to`: the postmaster first when it gets a copy, as
/// sendmail lists it (and sends to it first).
fn addressees<'a>(
    engine: &Engine,
    to: &'a str,
    double: bool,
    postmaster_copy: bool,
) -> Vec<&'a str> {
    if postmaster_copy && !double && !reaches_postmaster(engine, to) {
        vec!["postmaster", to]
    } else {
        vec![to]
    }
}

/// The keys ([`report_key`]) of the reports [`send`] will queue (`first` as there), not
/// those dropped. A `~/dead.letter` save's is the key of the report mailed when the save
/// fails, then [`SAVED_IN`] and the file it is saved in: done when that report is queued
/// or the file ends with the message ([`split_saved`]).
pub fn planned_keys(engine: &Engine, env: &Envelope, reports: &[Owed], first: u32) -> Vec<String> {
    (0u32..)
        .zip(reports)
        .filter_map(|(n, o)| {
            let (to, double, saved_in) = match &o.to {
                ReportTo::Sender(a) => (a.as_str(), false, None),
                ReportTo::Postmaster => ("postmaster", true, None),
                ReportTo::Dropped(_) => return None,
                // Saved by the submission: nothing is done here.
                ReportTo::DeadLetter(_) if engine.dead_letter_saved => return None,
                ReportTo::DeadLetter(a) => (a.as_str(), false, rsendmail::mbox::dead_letter_path()),
            };
            let to = addressees(engine, to, double, o.postmaster_copy);
            let key = report_key(&env.id, first.saturating_add(n), o.kind, &to, &o.recipients);
            Some(match saved_in {
                Some(p) => format!("{key}{SAVED_IN}{}", p.display()),
                None => key,
            })
        })
        .collect()
}

/// What separates a `~/dead.letter` save's key ([`planned_keys`]) from the file's path.
pub const SAVED_IN: &str = " saved-in ";

/// A planned key ([`planned_keys`]): the report's key, and for a `~/dead.letter` save
/// the file it is saved in.
pub fn split_saved(key: &str) -> (&str, Option<&str>) {
    match key.split_once(SAVED_IN) {
        Some((k, p)) => (k, Some(p)),
        None => (key, None),
    }
}

/// Queue the reports owed (or save the message in dead.letter). `first`: how many
/// reports the entry queued before (`State::reports`), the number in the first one's
/// key ([`report_key`]). `returned_by`: the entry was returned by `rsendmail-admin
/// bounce`, asked by whom (`dsn::Report::returned_by`).
pub fn send(
    engine: &Engine,
    spool: &Spool,
    env: &Envelope,
    reports: Vec<Owed>,
    first: u32,
    returned_by: Option<&str>,
    open_message: &dyn Fn() -> std::io::Result<(std::fs::File, u64)>,
) -> Sent {
    // Each report takes its number whether or not it is queued (nor saved instead), so
    // that a run repeating a crashed one's numbers its reports alike (`State::reports`
    // grows by as many as `reports` has).
    let mut sent = Sent::default();
    for (
        n,
        Owed {
            kind,
            to,
            recipients,
            notes,
            sent_from,
            postmaster_copy,
        },
    ) in (0u32..).zip(reports)
    {
        // A report listing a failure (a delay warning may): the failures stay queued
        // when it cannot be.
        let has_failure =
            kind == dsn::Kind::Failure || recipients.iter().any(|r| r.action == "failed");
        // Why ~/dead.letter could not be written, when the report is mailed instead.
        let mut unsaved = None;
        let (to, double) = match to {
            ReportTo::Sender(a) => (a, false),
            ReportTo::Postmaster => ("postmaster".to_string(), true),
            ReportTo::Dropped(why) => {
                log::warn!("{}: {why}", env.id);
                continue;
            }
            // Saved once per message: the submission did, for its own refusals.
            ReportTo::DeadLetter(_) if engine.dead_letter_saved => continue,
            // The save may wait for the file's lock (up to 10 s) with no look at the
            // entry's mark after it: it is the attempt's report of recipients it has
            // already failed, made after its last look (`LockedEntry::mark_at_end`),
            // not a delivery of the message; a mark made meanwhile is carried out when
            // the entry is let go, as one made during any report.
            ReportTo::DeadLetter(a) => {
                let saved = open_message()
                    .map_err(|e| e.to_string())
                    .and_then(|(f, len)| {
                        rsendmail::mbox::save_dead_letter(
                            &env.sender,
                            env.created,
                            &env.taken_fields,
                            &mut std::io::Read::take(f, len),
                        )
                    });
                match saved {
                    Ok(p) => {
                        let p = p.display();
                        let line = format!("{p}... Saved message in {p}");
                        rsendmail::tell!("{line}");
                        continue;
                    }
                    // Not saved: mail it back rather than lose the notice.
                    Err(e) => {
                        log::warn!("{}: cannot save in dead.letter ({e}); mailed back", env.id);
                        unsaved = Some(e);
                        (a, false)
                    }
                }
            }
        };
        // Mailed instead of saved in dead.letter: the whole message goes back.
        let headers_only = dsn::headers_only(
            env.ret.as_deref(),
            engine.no_body_return,
            engine.full_bounce || unsaved.is_some(),
        );
        let owners_copy = sent_from.map(|s| Envelope {
            sender: s,
            ..env.clone()
        });
        let original = owners_copy.as_ref().unwrap_or(env);
        // A report returned in a report (the postmaster's double bounce) is returned as
        // it is written locally (`local::open_as_written`), not in its queued form; its
        // header block is then the one written.
        let open_returned = || super::local::open_as_written(env, open_message);
        let written_copy = env
            .report
            .as_ref()
            .and_then(|_| header_length(&open_returned))
            .filter(|&n| n != original.header_bytes)
            .map(|header_bytes| Envelope {
                header_bytes,
                ..original.clone()
            });
        let original = written_copy.as_ref().unwrap_or(original);
        let eight_bit = open_returned().is_ok_and(|(f, len)| {
            dsn::returned_has_8bit(
                &mut std::io::Read::take(f, len),
                headers_only,
                original.header_bytes,
            )
        });
        let report = dsn::Report {
            kind,
            host: &engine.host_name,
            original,
            recipients,
            notes,
            headers_only,
            no_actual_recipient: engine.no_actual_recipient,
            waited: (kind == dsn::Kind::Delay).then(|| interval_words(engine.queue_warn)),
            eight_bit,
            returned_by,
        };
        let to = addressees(engine, &to, double, postmaster_copy);
        let key = report_key(
            &env.id,
            first.saturating_add(n),
            kind,
            &to,
            &report.recipients,
        );
        let queued = open_returned()
            .map_err(|e| Fatal::new(Sysexit::IoErr, e.to_string()))
            .and_then(|(f, len)| {
                report.queue_keyed(
                    spool,
                    &to,
                    double,
                    &mut std::io::Read::take(f, len),
                    Some((&env.id, &key)),
                )
            });
        // The user at the terminal is told that the message was not saved, and where
        // it went instead (a failure not reported stays queued: see `Sent`).
        if let Some(why) = &unsaved {
            let then = if queued.is_ok() {
                "returned to the sender"
            } else {
                "kept in the queue"
            };
            if let Some(line) = rsendmail::mbox::dead_letter_failed(why, then) {
                rsendmail::tell!("{line}");
            }
        }
        match queued {
            // Queued by a run that died before it recorded so: not again.
            Ok((id, true)) => {
                log::info!("{}: {}: DSN: {} (queued already)", env.id, id, kind.word());
                sent.ids.push(id);
            }
            Ok((id, false)) => {
                log::info!("{}: {}: DSN: {}", env.id, id, kind.word());
                if headers_only {
                    made_here(&id);
                }
                sent.ids.push(id);
            }
            Err(e) => {
                log::error!("{}: cannot queue a delivery report: {}", env.id, e.message);
                if has_failure {
                    sent.failure_unqueued = Some(e.message);
                }
            }
        }
    }
    sent
}

/// The length of the header block `open` gives, its blank line included (as
/// `Envelope::header_bytes` counts it); `None` when it cannot be read or has no end.
fn header_length(
    open: &dyn Fn() -> std::io::Result<(Box<dyn std::io::Read + Send>, u64)>,
) -> Option<u64> {
    use std::io::BufRead;
    let (f, len) = open().ok()?;
    let mut r = std::io::BufReader::new(std::io::Read::take(f, len));
    let mut n = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let k = r.read_until(b'\n', &mut line).ok()?;
        if k == 0 || line.last() != Some(&b'\n') {
            return None;
        }
        n += k as u64;
        if line == b"\n" {
            return Some(n);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::super::engine;
    use super::*;

    /// The report entry of the list `lst`'s member `listed`, refused at submission as
    /// unknown, met through `expanded_from` (a list with an owner) or not.
    fn refused_member(listed: &str, expanded_from: Option<&str>) -> dsn::RcptReport {
        dsn::RcptReport {
            final_recipient: "lst@test.example".into(),
            original_recipient: None,
            action: "failed",
            status: status::BAD_MAILBOX,
            remote_mta: None,
            diagnostic: None,
            diagnostic_type: "X-Unix",
            transcript: Vec::new(),
            listed: Some(listed.into()),
            comment: None,
            actual_recipient: None,
            expanded_from: expanded_from.map(Into::into),
            last_attempt: 0,
        }
    }

    /// A list owner's targets refused at submission: joined to the attempt's report to
    /// that owner (its lines first), or a report of their own with the owner's part of
    /// the transcript; the sender's report is left as it is (recorded:
    /// `owner-list-unknown-odi`, `owner-two-lists-odi`).
    #[test]
    fn owner_owed_goes_to_its_owner_alone() {
        let e = engine::for_tests();
        let entry = |listed: &str| refused_member(listed, Some("lst"));
        let state = rsendmail::spool::entry::State {
            owner_owed: vec![
                ("oa@example.org".into(), entry("nosucha")),
                ("ob@example.org".into(), entry("nosuchb")),
            ],
            owner_notes: vec![
                (
                    "oa@example.org".into(),
                    "Message delivered to mailing list la".into(),
                ),
                (
                    "ob@example.org".into(),
                    "Message delivered to mailing list lb".into(),
                ),
            ],
            ..Default::default()
        };
        let owed = |to: &str, sent_from: Option<&str>, listed: &str, note: &str| Owed {
            kind: dsn::Kind::Failure,
            to: ReportTo::Sender(to.into()),
            recipients: vec![entry(listed)],
            notes: vec![note.into()],
            sent_from: sent_from.map(str::to_string),
            postmaster_copy: false,
        };
        let mut reports = vec![
            owed("s@example.org", None, "w@example.org", "w's line"),
            owed(
                "ob@example.org",
                Some("ob@example.org"),
                "reject5b",
                "b's line",
            ),
        ];
        let transcripts = vec![("oa@example.org".to_string(), vec!["a's line".to_string()])];
        join_owner_owed(&e, "s@h.example", &mut reports, &state, &transcripts);
        let shown: Vec<(Option<&str>, Vec<&str>, Vec<&str>)> = reports
            .iter()
            .map(|r| {
                (
                    r.sent_from.as_deref(),
                    r.recipients
                        .iter()
                        .filter_map(|x| x.listed.as_deref())
                        .collect(),
                    r.notes.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (None, vec!["w@example.org"], vec!["w's line"]),
                (
                    Some("oa@example.org"),
                    vec!["nosucha"],
                    vec!["Message delivered to mailing list la", "a's line"]
                ),
                (
                    Some("ob@example.org"),
                    vec!["nosuchb", "reject5b"],
                    vec!["Message delivered to mailing list lb", "b's line"]
                ),
            ]
        );
        assert_eq!(reports[1].to, ReportTo::Sender("oa@example.org".into()));
    }

    /// A list owner who sent the message itself gets one report: the targets refused
    /// at submission and its list's line first, then the attempt's report to it as the
    /// sender (recorded: `owner-list-self-direct-reject-odi`).
    #[test]
    fn owner_owed_joins_the_senders_report_when_the_owner_sent_it() {
        let e = engine::for_tests();
        let entry = |listed: &str| refused_member(listed, None);
        let state = rsendmail::spool::entry::State {
            owner_owed: vec![("own@example.org".into(), entry("nosuchl"))],
            owner_notes: vec![(
                "own@example.org".into(),
                "Message delivered to mailing list lst".into(),
            )],
            ..Default::default()
        };
        let mut reports = vec![Owed {
            kind: dsn::Kind::Failure,
            to: ReportTo::Sender("own@example.org".into()),
            recipients: vec![entry("reject5w@example.org")],
            notes: vec!["w's line".into()],
            sent_from: None,
            postmaster_copy: false,
        }];
        join_owner_owed(&e, "own@example.org", &mut reports, &state, &[]);
        let shown: Vec<(Vec<&str>, Vec<&str>)> = reports
            .iter()
            .map(|r| {
                (
                    r.recipients
                        .iter()
                        .filter_map(|x| x.listed.as_deref())
                        .collect(),
                    r.notes.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![(
                vec!["nosuchl", "reject5w@example.org"],
                vec!["Message delivered to mailing list lst", "w's line"]
            )]
        );
    }

    /// A report owed for recipients refused at submission, when the delivery that
    /// follows owes none (its recipient deferred): the refusals' lines, then the
    /// attempt's transcript, as sendmail's (recorded: `argv-syntax-reject4-odi`).
    #[test]
    fn owed_report_carries_the_attempts_deferrals() {
        let e = engine::for_tests();
        let env = Envelope {
            sender: "s@example.org".into(),
            ..Default::default()
        };
        let state = rsendmail::spool::entry::State {
            owed_notes: vec!["553 5.1.3 a@@b.example... Invalid route address".into()],
            ..Default::default()
        };
        let deferred = [
            "... while talking to [127.0.0.1]:".to_string(),
            ">>> RCPT To:<x@example.org>".to_string(),
            "<<< 450 4.2.0 busy".to_string(),
            "x@example.org... Deferred: 450 4.2.0 busy".to_string(),
        ];
        let mut reports = Vec::new();
        join_owed(&e, &env, &mut reports, &state, &deferred);
        let [report] = reports.as_slice() else {
            panic!("one report expected: {}", reports.len());
        };
        assert_eq!(
            report.notes.first().map(String::as_str),
            state.owed_notes.first().map(String::as_str)
        );
        assert_eq!(report.notes.get(1..), Some(&deferred[..]));
    }

    fn item(addr: &str, kind: dsn::Kind, st: EnhancedStatus) -> ReportItem {
        ReportItem {
            rcpt: Recipient::new(addr),
            index: 0,
            kind,
            action: match kind {
                dsn::Kind::Failure => "failed",
                dsn::Kind::Delay => "delayed",
                dsn::Kind::Success => "relayed",
            },
            told: false,
            status: st,
            why: format!(
                "{} {st} why",
                if st.class == StatusClass::Permanent {
                    550
                } else {
                    451
                }
            ),
            reply: None,
            remote: String::new(),
            expired: false,
            made_here: false,
        }
    }

    /// Each report as `kind to: final-recipient status, ...`.
    fn shown(v: &[Owed]) -> Vec<String> {
        v.iter()
            .map(|o| {
                let r: Vec<String> = o
                    .recipients
                    .iter()
                    .map(|r| format!("{} {}", r.final_recipient, r.status))
                    .collect();
                format!("{} {:?}: {}", o.kind.word(), o.to, r.join(", "))
            })
            .collect()
    }

    #[test]
    fn who_gets_which_report() {
        use dsn::Kind::{Delay, Failure, Success};
        type Tweak = fn(&mut Envelope, &mut Engine, &mut Vec<ReportItem>);
        let plain: Tweak = |_, _, _| {};
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, Tweak, &[(&str, dsn::Kind, EnhancedStatus)], &[&str])] = &[
            (
                "failures and delays to the sender: one report, the delay warning",
                plain,
                &[
                    ("a@x", Failure, status::BAD_MAILBOX),
                    ("b@x", Delay, status::NO_ANSWER),
                    ("c@x", Failure, status::PERM),
                ],
                &["delay Sender(\"s@h.example\"): a@x 5.1.1, b@x 4.4.1, c@x 5.0.0"],
            ),
            (
                "no success report unless NOTIFY asks",
                plain,
                &[("a@x", Success, status::OK)],
                &[],
            ),
            (
                "NOTIFY=SUCCESS gets one; NOTIFY=NEVER nothing",
                |_, _, items| {
                    items[0].rcpt.notify = Some("SUCCESS".into());
                    items[1].rcpt.notify = Some("NEVER".into());
                },
                &[("a@x", Success, status::OK), ("b@x", Failure, status::PERM)],
                // Relayed: sendmail's 2.1.5 (receipt-success-odi).
                &["success Sender(\"s@h.example\"): a@x 2.1.5"],
            ),
            (
                "an expired temporary failure reads 4.4.7",
                plain,
                &[("a@x", Failure, status::NO_ANSWER)],
                &["failure Sender(\"s@h.example\"): a@x 4.4.7"],
            ),
            (
                "null sender: failures to the postmaster, no delay warnings",
                |env, _, _| env.sender.clear(),
                &[("a@x", Failure, status::PERM), ("b@x", Delay, status::TEMP)],
                &["failure Postmaster: a@x 5.0.0"],
            ),
            (
                "a failed double bounce is dropped",
                |env, _, _| {
                    env.sender.clear();
                    env.report = Some("double".into());
                },
                &[("a@x", Failure, status::PERM)],
                &[
                    "failure Dropped(\"a report to the postmaster could not be delivered; discarded\"): a@x 5.0.0",
                ],
            ),
            (
                "a recipient's own sender (owner-list) gets its failures",
                |_, _, items| items[0].rcpt.sender = Some("owner-l@h.example".into()),
                &[
                    ("a@x", Failure, status::PERM),
                    ("b@x", Failure, status::PERM),
                ],
                &[
                    "failure Sender(\"owner-l@h.example\"): a@x 5.0.0",
                    "failure Sender(\"s@h.example\"): b@x 5.0.0",
                ],
            ),
            (
                "interactive, ErrorMode p, local sender: dead.letter",
                |env, e, _| {
                    env.sender = "s".into();
                    e.interactive = true;
                },
                &[("a@x", Failure, status::PERM), ("b@x", Delay, status::TEMP)],
                &["delay DeadLetter(\"s@host.example\"): a@x 5.0.0, b@x 4.0.0"],
            ),
            (
                "interactive, ErrorMode p, remote sender: mailed",
                |_, e, _| e.interactive = true,
                &[("a@x", Failure, status::PERM)],
                &["failure Sender(\"s@h.example\"): a@x 5.0.0"],
            ),
            (
                "interactive, ErrorMode q: nothing",
                |_, e, _| {
                    e.interactive = true;
                    e.error_mode = 'q';
                },
                &[("a@x", Failure, status::PERM)],
                &["failure Dropped(\"failure report not sent (ErrorMode q)\"): a@x 5.0.0"],
            ),
            (
                "interactive, ErrorMode m: mailed",
                |env, e, _| {
                    env.sender = "s".into();
                    e.interactive = true;
                    e.error_mode = 'm';
                },
                &[("a@x", Failure, status::PERM)],
                &["failure Sender(\"s@host.example\"): a@x 5.0.0"],
            ),
        ];
        for (what, tweak, items, want) in cases {
            let mut env = Envelope {
                sender: "s@h.example".into(),
                ..Envelope::default()
            };
            let mut e = engine::for_tests();
            let mut list: Vec<ReportItem> = items.iter().map(|(a, k, s)| item(a, *k, *s)).collect();
            tweak(&mut env, &mut e, &mut list);
            assert_eq!(
                shown(&owed(&e, &env, list, &|_: Lines<'_>| Vec::new(), 0)),
                *want,
                "{what}"
            );
        }
    }

    #[test]
    fn intervals_in_sendmails_words() {
        for (secs, want) in [
            (0, "0 seconds"),
            (1, "1 second"),
            (2, "2 seconds"),
            (60, "1 minute"),
            (90, "1 minute, 30 seconds"),
            (4 * 3600, "4 hours"),
            (5 * 86400, "5 days"),
            (7 * 86400, "1 week"),
            (
                8 * 86400 + 3600 + 60 + 1,
                "1 week, 1 day, 1 hour, 1 minute, 1 second",
            ),
            (-5, "0 seconds"),
        ] {
            assert_eq!(interval_words(secs), want, "{secs}");
        }
    }

    #[test]
    fn the_attempts_transcript_as_sendmail_keeps_it() {
        use super::super::outcome::{Mailer, RcptOutcome};
        let relay = Some("127.0.0.1".to_string());
        let server = |i, code, text: &str, cmd: &str| {
            let reply = Reply {
                code,
                lines: vec![text.to_string()],
                command: None,
                local: false,
                accepted_by: None,
            };
            RcptOutcome::new(i, reply.to(cmd), Mailer::Relay, relay.clone())
        };
        let told = |v: &[(&'static str, RcptOutcome, bool)]| -> Vec<String> {
            let t: Vec<Told<'_>> = v
                .iter()
                .map(|(a, o, receipt)| Told {
                    address: a,
                    owner: None,
                    outcome: o,
                    receipt: *receipt,
                })
                .collect();
            transcript(&t, None)
        };
        // A deferral and a refusal on one connection: the server named once, each
        // command, reply and sendmail's line, in the order of delivery
        // (reason-reject4-reject5-v).
        let got = told(&[
            ("r5@x", server(0, 550, "5.1.1 no", "RCPT To:<r5@x>"), false),
            (
                "r4@x",
                server(1, 450, "4.2.0 later", "RCPT To:<r4@x>"),
                false,
            ),
            ("ok@x", server(2, 250, "2.0.0 Ok", "DATA"), false),
        ]);
        assert_eq!(
            got,
            [
                "... while talking to [127.0.0.1]:",
                ">>> RCPT To:<r5@x>",
                "<<< 550 5.1.1 no",
                "550 5.1.1 r5@x... User unknown",
                ">>> RCPT To:<r4@x>",
                "<<< 450 4.2.0 later",
                "r4@x... Deferred: 450 4.2.0 later",
            ]
        );
        // A refused connection: the recipients that share it on one line; a receipt
        // for a relayed recipient; the expiry (bounce-queuereturn-refused,
        // receipt-success-reject4-odi).
        let refused = |i| {
            RcptOutcome::local(
                i,
                451,
                "4.4.1 Connection refused by [127.0.0.1]",
                Mailer::Relay,
                relay.clone(),
            )
        };
        let (b, a) = (refused(1), refused(0));
        let t = [
            Told {
                address: "b@x",
                owner: None,
                outcome: &b,
                receipt: false,
            },
            Told {
                address: "a@x",
                owner: None,
                outcome: &a,
                receipt: false,
            },
        ];
        assert_eq!(
            transcript(&t, Some(1)),
            [
                "b@x,a@x... Deferred: Connection refused by [127.0.0.1]",
                "Message could not be delivered for 1 second",
                "Message will be deleted from queue",
            ]
        );
        let got = told(&[
            ("ok@x", server(0, 250, "2.0.0 Ok", "DATA"), true),
            ("ok2@x", server(1, 250, "2.0.0 Ok", "DATA"), true),
        ]);
        assert_eq!(
            got,
            [
                "ok@x... relayed; expect no further notifications",
                "ok2@x... relayed; expect no further notifications",
            ]
        );
        // Local delivery says nothing there.
        let local = RcptOutcome::local(0, 451, "4.2.0 locked", Mailer::Local, None);
        assert!(told(&[("u", local, false)]).is_empty());
    }

    #[test]
    fn transcript_of_a_refused_recipient() {
        let r = Reply::local(550, "5.1.1 no such user").to("RCPT To:<a@x>");
        assert_eq!(
            failure_transcript("a@x", &r),
            [
                ">>> RCPT To:<a@x>",
                "<<< 550 5.1.1 no such user",
                "550 5.1.1 a@x... User unknown"
            ]
        );
        let d = Reply::local(554, "rejected").to("DATA");
        assert_eq!(
            failure_transcript("a@x", &d).last().map(String::as_str),
            Some("554 5.0.0 Service unavailable")
        );
        assert!(failure_transcript("a@x", &Reply::local(451, "later").to("DATA")).is_empty());
    }
}
