//! Step four of an attempt: what the outcomes mean for the entry. [`record`] is a pure
//! function of the entry's state, the outcomes, the time and the settings: it returns
//! the new state (each recipient's state and reply, the back-off, the reason `mailq`
//! shows, whether a delay warning went out), the log lines, and the delivery reports
//! owed. Writing the state, queueing the reports and logging are the caller's.
//!
//! Expiry is `O Timeout.queuereturn=` counted from the submission; a delay warning goes
//! out once, `O Timeout.queuewarn=` after it; the back-off doubles from
//! `O QueueRetryMin=` up to `O QueueRetryMax=` (see [`Engine::backoff`]).

use super::bounce::{self, Owed, ReportItem};
use super::engine::Engine;
use super::local::Refused;
use super::outcome::{Class, Mailer, RcptOutcome};
use rsendmail::dsn;
use rsendmail::exit::Sysexit;
use rsendmail::spool::entry::{self, Envelope, RcptState, State};
use rsendmail::status;

/// sendmail's QPRIMARY (recipient.c `sendtolist`): a recipient the sender named (argv,
/// RCPT, `-t`), or the one target of a one-to-one alias, `:include:` or `.forward`
/// expansion with no `owner-` alias on the way. Only such a recipient gets a success
/// receipt (savemail.c `errbody`) or has its NOTIFY passed on in RCPT (usersmtp.c): the
/// members of a list are not revealed to its sender by receipts, and a list with an
/// owner sends none (recorded: compat cases receipt-alias-list, receipt-alias-one,
/// receipt-alias-list-owner).
pub fn primary(r: &rsendmail::spool::entry::Recipient) -> bool {
    !r.fanout && r.sender.is_none()
}

/// The state after an attempt whose failure report could not be queued: the recipients
/// this attempt failed are deferred again (with `why`), so that the entry stays queued
/// and a later run fails and reports them. Those already final before stay final.
pub fn unreport(before: &State, mut after: State, why: &str) -> State {
    for (i, st, reason) in &mut after.recipients {
        if *st == RcptState::Failed && !before.of(*i).is_final() {
            *st = RcptState::Deferred;
            *reason = Some(format!("cannot queue the failure report: {why}"));
        }
    }
    if after.reason.is_none() {
        after.reason = Some(format!("Deferred: cannot queue the failure report: {why}"));
    }
    after
}

/// How many recipients came to what (for the interactive exit status).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub delivered: usize,
    pub deferred: usize,
    /// Failed for good (refused, expired, or a target an expansion refused).
    pub failed_rcpt: usize,
    /// Of those, the ones whose message was refused after DATA.
    pub failed_data: usize,
    /// Of those, the ones whose domain does not exist or takes no mail.
    pub failed_host: usize,
    /// Of those, the ones whose server refused the sender (a 5yz to MAIL).
    pub failed_sender: usize,
    /// Of those, the ones whose server refused the sender's syntax or name (501 or 553
    /// to MAIL: sendmail's EX_DATAERR; compat cases reason-mail501-v, reason-mail553-v).
    pub failed_sender_dataerr: usize,
    /// Failed because the message expired (Timeout.queuereturn) while they were
    /// deferred: returned to the sender, not counted in the exit status.
    pub expired: usize,
    /// Targets an expansion refused with sendmail's usage error (a program or file a
    /// list's user may not have: `local::Refused::told`), EX_USAGE.
    pub failed_usage: usize,
    /// `/file` targets that could not be created (EX_CANTCREAT; compat cases
    /// file-perm, file-readonly, file-nodir-mixed).
    pub failed_cant_create: usize,
    /// The exit status the first local failure that sets one gave (a `|program`'s
    /// sysexits code, permanent or not: `local::Failure::exit`).
    pub local_exit: Option<Sysexit>,
    /// Failed because the server they were sent to is this host (the mail would loop):
    /// sendmail's configuration error, which sets EX_SOFTWARE (compat cases
    /// loop-ehlo-self-*).
    pub failed_config: usize,
    /// The status of the first refusal a server gave, in the order things happened
    /// (MAIL, then each RCPT, then DATA and the final dot): EX_NOUSER for a recipient,
    /// EX_UNAVAILABLE for the message, EX_DATAERR or EX_UNAVAILABLE for the sender.
    /// The first decides, as sendmail's `setstat` keeps it (recorded:
    /// `reject5-data5-odi`, `data5-reject5-two-odi`).
    pub first_refusal: Option<Sysexit>,
}

/// What an attempt comes to.
#[derive(Debug)]
pub struct Recorded {
    pub state: State,
    /// One line per recipient, sendmail's `to=<...>, delay=..., stat=...` form.
    pub log: Vec<String>,
    pub reports: Vec<Owed>,
    pub counts: Counts,
    /// Every recipient is final: the entry is to be removed.
    pub all_final: bool,
    /// What `-v` shows after the attempt (`Cannot send message for 1 second` when the
    /// message expired).
    pub said: Vec<String>,
    /// The attempt's transcript, when a report is owed for recipients refused at
    /// submission (`State::owed`): that report carries it also when the attempt itself
    /// owes none (its deferrals; [`bounce::join_owed`]). Empty otherwise. Only the
    /// lines of the recipients whose reports go to the sender.
    pub transcript: Vec<String>,
    /// The same for each list owner owed a report on targets refused at submission
    /// (`State::owner_owed`): the lines of that owner's recipients alone.
    pub owner_transcripts: Vec<(String, Vec<String>)>,
}

/// `[d+]hh:mm:ss`, sendmail's delay format.
pub fn hms(secs: i64) -> String {
    let s = secs.max(0);
    if s >= 86400 {
        format!(
            "{}+{:02}:{:02}:{:02}",
            s / 86400,
            s % 86400 / 3600,
            s % 3600 / 60,
            s % 60
        )
    } else {
        format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    }
}

/// Where recipient `i` stands among the entry's recipients in descending address order
/// (the order a report lists an entry tried before).
fn sorted_rank(env: &Envelope, i: usize) -> usize {
    let Some(me) = env.recipients.get(i) else {
        return i;
    };
    env.recipients
        .iter()
        .enumerate()
        .filter(|(j, r)| (r.address.as_str(), *j) > (me.address.as_str(), i))
        .count()
}

/// Record an attempt at `env` (whose state was `before`, whose queue file is `size`
/// bytes) that gave `outcomes`, and whose expansions refused `refused`, at `now`,
/// having taken `xdelay` seconds.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub fn record(
    engine: &Engine,
    env: &Envelope,
    before: &State,
    size: u64,
    outcomes: &[RcptOutcome],
    refused: Vec<Refused>,
    now: i64,
    xdelay: i64,
) -> Recorded {
    record_owned(
        engine,
        env,
        before,
        size,
        outcomes,
        refused,
        &[],
        now,
        xdelay,
    )
}

/// [`record`], where the attempt's expansions also expanded `owned`, the aliases with
/// an owner alias (each as written, with its owner's envelope sender): their owner's
/// transcript says `Message delivered to mailing list LIST` after what the expansions
/// refused, as sendmail's does (recorded: `owner-list-forward-odq-q`).
#[allow(clippy::too_many_arguments)]
pub fn record_owned(
    engine: &Engine,
    env: &Envelope,
    before: &State,
    size: u64,
    outcomes: &[RcptOutcome],
    refused: Vec<Refused>,
    owned: &[(String, String)],
    now: i64,
    xdelay: i64,
) -> Recorded {
    let mut state = before.clone();
    // `rsendmail-admin retry`'s mark is spent by this attempt.
    state.retry = false;
    let open = (0..env.recipients.len())
        .filter(|&i| !before.of(i).is_final())
        .count();
    state.attempts = state.attempts.saturating_add(1);
    state.last_attempt = Some(now);
    // How long the message has been queued (a creation time from a damaged entry may be
    // anything: the difference saturates).
    let age = now.saturating_sub(env.created);
    let expired = engine.queue_return > 0 && age >= engine.queue_return;
    let pri = size
        .saturating_add(30000u64.saturating_mul(open as u64))
        .saturating_add(90000 * u64::from(state.attempts));
    let mut counts = Counts::default();
    let mut log = Vec::new();
    let mut first_deferral: Option<String> = None;
    // sendmail's word for a server's refusal in this attempt (`User unknown`): the
    // entry's reason then, before any deferral's (compat cases reason-reject5-reject4-v,
    // reason-reject4-reject5-v).
    let mut refusal: Option<&'static str> = None;
    let mut items: Vec<ReportItem> = Vec::new();
    for o in outcomes {
        let Some(r) = env.recipients.get(o.rcpt) else {
            continue;
        };
        // What is stored for the recipient: the reply, or what happened when its
        // words say less (`RcptOutcome::stored`).
        let summary = o.stored_summary();
        if counts.local_exit.is_none() {
            counts.local_exit = o.exit;
        }
        let (st, why, st_status, stat) = match o.class {
            Class::Delivered | Class::Relayed => {
                counts.delivered += 1;
                (RcptState::Delivered, summary, o.status, o.stat_text())
            }
            Class::Permanent => {
                if o.mailer != Mailer::Local && !o.reply.local {
                    let command = o.reply.command.as_deref().unwrap_or_default();
                    let to_rcpt = command.starts_with("RCPT");
                    let sender_dataerr = matches!(o.reply.code, 501 | 553);
                    if command.starts_with("MAIL") {
                        counts.failed_sender += 1;
                        counts.failed_sender_dataerr += usize::from(sender_dataerr);
                    }
                    let stage = if command.starts_with("MAIL") {
                        Some(if sender_dataerr {
                            Sysexit::DataErr
                        } else {
                            Sysexit::Unavailable
                        })
                    } else if to_rcpt {
                        Some(Sysexit::NoUser)
                    } else if o.data_refused {
                        Some(Sysexit::Unavailable)
                    } else {
                        None
                    };
                    if counts.first_refusal.is_none() {
                        counts.first_refusal = stage;
                    }
                    refusal = Some(if o.reply.is_user_unknown(to_rcpt) {
                        "User unknown"
                    } else {
                        "Service unavailable"
                    });
                }
                counts.failed_rcpt += 1;
                counts.failed_host += usize::from(o.no_host);
                counts.failed_data += usize::from(o.data_refused);
                counts.failed_cant_create += usize::from(o.cant_create);
                counts.failed_config += usize::from(o.loops.is_some());
                let why = o.diagnostic.clone().unwrap_or(summary);
                (RcptState::Failed, why, o.status, o.stat_text())
            }
            // The reply stays the last one the server gave (or none, when it was made
            // here): the expiry is the report's transcript's to tell (sendmail's
            // `Message could not be delivered for ...`; compat cases
            // bounce-queuereturn-*).
            Class::Temporary if expired => {
                counts.expired += 1;
                (
                    RcptState::Failed,
                    summary,
                    status::EXPIRED,
                    format!("{} (expired)", o.stat_text()),
                )
            }
            Class::Temporary => {
                counts.deferred += 1;
                first_deferral.get_or_insert_with(|| o.listed());
                (RcptState::Deferred, summary, o.status, o.stat_text())
            }
        };
        // sendmail's line leaves `relay=` out when no host was involved.
        let (mailer, relay) = match o.logged_as {
            Some(m) => (m, String::new()),
            None => (
                o.mailer,
                format!("relay={}, ", o.relay.as_deref().unwrap_or("local")),
            ),
        };
        log.push(format!(
            "{}: to=<{}>, delay={}, xdelay={}, mailer={}, pri={pri}, {relay}dsn={st_status}, stat={stat}",
            env.id,
            r.address,
            hms(age),
            hms(xdelay),
            mailer.as_str(),
        ));
        // The host part alone: `mx.example.org` of `mx.example.org [192.0.2.1]`; none
        // when the domain's lookup decided (no MTA was involved).
        let remote = o
            .relay
            .as_deref()
            .filter(|_| !o.looked_up)
            .and_then(|n| n.split(' ').next())
            .unwrap_or_default()
            .to_string();
        let item = |kind, action| ReportItem {
            rcpt: r.clone(),
            index: o.rcpt,
            kind,
            action,
            status: o.status,
            why: why.clone(),
            reply: (!remote.is_empty()).then(|| o.reply.clone()),
            remote: remote.clone(),
            expired: o.class == Class::Temporary && expired,
            told: false,
            made_here: o.mailer != Mailer::Local && o.reply.local,
        };
        match st {
            RcptState::Failed => items.push(item(dsn::Kind::Failure, "failed")),
            // PrivacyOptions=noreceipts: no success reports at all.
            // A recipient expanded (an alias met here, a `.forward`) is reported
            // through its targets alone, as an alias expanded at submission is.
            RcptState::Delivered
                if !o.dsn_passed && !o.expanded && !engine.no_receipts && primary(r) =>
            {
                let action = match o.mailer {
                    Mailer::Local => "delivered",
                    _ => "relayed",
                };
                items.push(item(dsn::Kind::Success, action))
            }
            RcptState::Deferred
                if engine.queue_warn > 0 && !state.warned && age >= engine.queue_warn =>
            {
                items.push(item(dsn::Kind::Delay, "delayed"))
            }
            _ => {}
        }
        // What `mailq -v` and `--json` show for a deferred recipient: sendmail's words,
        // without a code where the reason was made here; and only a reply to this
        // recipient's own RCPT. sendmail keeps a recipient's own status line only then:
        // a refused connection, a greeting, a lookup failure or a refused DATA is the
        // entry's reason alone (compat cases bp-v-odi-refused, bp-v-odi-greet421,
        // bp-v-odi-data4xx, bp-v-odi-servfail).
        // A recipient left for the root queue runner keeps its reason too: a root run
        // takes the entry whatever its back-off when that is all it waits for
        // (`State::waits_for_root`).
        let stored = if st == RcptState::Deferred {
            let reason = o.reason();
            (o.reply
                .command
                .as_deref()
                .is_some_and(|c| c.starts_with("RCPT"))
                || reason.contains(rsendmail::spool::entry::NEEDS_ROOT_RUNNER))
            .then_some(reason)
        } else {
            Some(why)
        };
        // Of a server's reply of more than one line, the lines before the last too, as
        // the room reserved for the record allows (`attempt::make_room`): `show`
        // shows the reply whole.
        let earlier = match (&stored, o.reply.lines.split_last()) {
            (Some(w), Some((_, before)))
                if !before.is_empty() && !o.reply.local && *w == o.reply.summary() =>
            {
                let lines: Vec<String> = before
                    .iter()
                    .map(|l| format!("{}-{l}", o.reply.code))
                    .collect();
                let room = entry::reply_room(env.recipients.len()) / env.recipients.len().max(1);
                entry::reply_lines_kept(&lines, room.saturating_sub(entry::escape(w).len()))
            }
            _ => None,
        };
        state.set_recipient(o.rcpt, st, stored, earlier);
    }
    // The targets an expansion refused are not recipients of this entry: their failure
    // is recorded by their report (the entry's recipient that led to them is final
    // only once that report is queued).
    let mut told_lines = Vec::new();
    // Reported in the order refused, but a target refused as no address after the
    // others, in queue order (sendmail's; recorded: `forward-bad-order-odi`).
    let mut refused_items = Vec::new();
    // Listed at the place of the first recipient whose expansion refused them: the
    // expansions come before the deliveries, and so do their refused targets in the
    // report, before what the servers refused of their other targets (recorded:
    // `forward-once-odi`).
    let place = refused.iter().map(|f| f.parent).min().unwrap_or(usize::MAX);
    for f in refused {
        counts.failed_rcpt += 1;
        if f.told {
            counts.failed_usage +=
                usize::from((f.reason.is_none() && f.syntax.is_none()) || f.usage);
            told_lines.push((
                f.recipient.address.clone(),
                env.owner_sender(&f.recipient).map(str::to_string),
                format!("{} {} {}", f.failure.code, f.failure.status, f.failure.text),
            ));
        }
        let st = f.failure.status;
        let why = match &f.reason {
            Some(r) => format!("{} {st} {r}", f.failure.code),
            None => f.failure.reply().summary(),
        };
        log.push(format!(
            "{}: to=<{}>, delay={}, xdelay={}, mailer=local, relay=local, dsn={st}, stat={why}",
            env.id,
            f.recipient.address,
            hms(age),
            hms(xdelay),
        ));
        refused_items.push((
            f.syntax,
            ReportItem {
                rcpt: f.recipient,
                index: place,
                kind: dsn::Kind::Failure,
                action: "failed",
                status: st,
                why,
                reply: None,
                remote: String::new(),
                expired: false,
                told: f.told && f.reason.is_none(),
                made_here: false,
            },
        ));
    }
    // Each list with an owner expanded here: its owner's transcript says so after what
    // the expansion refused (never the sender's: a message from `<>` has no owner).
    if !env.sender.is_empty() {
        for (list, owner) in owned {
            told_lines.push((
                String::new(),
                Some(owner.clone()),
                format!("Message delivered to mailing list {list}"),
            ));
        }
    }
    refused_items.sort_by_key(|(syntax, _)| syntax.map_or((0, 0), |place| (1, place)));
    items.extend(refused_items.into_iter().map(|(_, item)| item));
    if items.iter().any(|r| r.kind == dsn::Kind::Delay) {
        state.warned = true;
    }
    let told: Vec<bounce::Told<'_>> = outcomes
        .iter()
        .filter_map(|o| {
            let r = env.recipients.get(o.rcpt)?;
            let receipt = o.class == Class::Relayed
                && !o.dsn_passed
                && primary(r)
                && dsn::return_address(env, r).is_some()
                && dsn::wanted(r, dsn::Kind::Success);
            Some(bounce::Told {
                address: &r.address,
                owner: env.owner_sender(r),
                outcome: o,
                receipt,
            })
        })
        .collect();
    // What the expansion told comes first, as sendmail finds it before it delivers.
    // A VERP report's transcript has only the lines about its own recipients (`only`:
    // their addresses as the entry or the expansion names them), the expiry's lines
    // only when one of them expired.
    // A list owner's report has only its own recipients' lines, the sender's only the
    // others'.
    let transcript = |only: bounce::Lines<'_>| -> Vec<String> {
        let mine = |a: &str, owner: Option<&str>| match only {
            bounce::Lines::Of(v) => v.iter().any(|m| m == a),
            bounce::Lines::Owner(o) => o == owner,
        };
        let mut t: Vec<String> = told_lines
            .iter()
            .filter(|(a, o, _)| mine(a, o.as_deref()))
            .map(|(_, _, l)| l.clone())
            .collect();
        let told: Vec<bounce::Told<'_>> = told
            .iter()
            .copied()
            .filter(|t| mine(t.address, t.owner))
            .collect();
        let expired_here = counts.expired > 0
            && (only == bounce::Lines::Owner(None)
                || told.iter().any(|t| t.outcome.class == Class::Temporary));
        t.extend(bounce::transcript(
            &told,
            expired_here.then_some(engine.queue_return),
        ));
        t
    };
    // sendmail -v, when the message expired in this attempt, or a delay warning is
    // owed (which is then the entry's reason; compat case delay-queuewarn-reject4-v).
    let warned_now = items.iter().any(|r| r.kind == dsn::Kind::Delay);
    // An entry tried before sent its recipients sorted by address (`attempt`): its
    // report lists them in the reverse of that order, as sendmail's does (recorded:
    // `report-order-expire`, `report-order-expire-four`); a first attempt's report
    // keeps the entry's order.
    if before.attempts > 0 {
        for item in &mut items {
            if item.index != usize::MAX {
                item.index = sorted_rank(env, item.index);
            }
        }
    }
    let mut reports = bounce::owed(engine, env, items, &transcript, now);
    // sendmail copies the postmaster on a failure report mailed back when the
    // delivery's exit status is EX_SOFTWARE or EX_CONFIG (its savemail): a program
    // that exits 70 or 78, a server that is this host. Whatever the ErrorMode says of
    // the exit status, the status it would have is what counts.
    if matches!(
        exit_status(&counts, 'p'),
        Sysexit::Software | Sysexit::Config
    ) {
        for r in &mut reports {
            if r.kind == dsn::Kind::Failure && matches!(r.to, bounce::ReportTo::Sender(_)) {
                r.postmaster_copy = true;
            }
        }
    }
    let transcript_of_owed = if before.owed.is_empty() {
        Vec::new()
    } else {
        transcript(bounce::Lines::Owner(None))
    };
    let mut owner_transcripts: Vec<(String, Vec<String>)> = Vec::new();
    for (o, _) in &before.owner_owed {
        if !owner_transcripts.iter().any(|(k, _)| k == o) {
            owner_transcripts.push((o.clone(), transcript(bounce::Lines::Owner(Some(o)))));
        }
    }
    let transcript = transcript_of_owed;
    let warning = warned_now.then(|| {
        format!(
            "Warning: could not send message for past {}",
            bounce::interval_words(engine.queue_warn)
        )
    });
    let said = if counts.expired > 0 {
        vec![format!(
            "Cannot send message for {}",
            bounce::interval_words(engine.queue_return)
        )]
    } else {
        warning.iter().cloned().collect()
    };
    state.recipients.sort_by_key(|(i, _, _)| *i);
    // (Only an entry that stays queued shows a reason.)
    // A refusal recorded before (a recipient refused at submission: `User unknown`)
    // stays the reason too, as sendmail keeps its message (reason-local-unknown-refused-v).
    let earlier = before
        .reason
        .as_deref()
        .filter(|r| !r.starts_with("Deferred"));
    state.reason = first_deferral.map(|d| {
        warning
            .clone()
            .unwrap_or_else(|| refusal.or(earlier).map_or(d, str::to_string))
    });
    state.next_attempt = Some(now.saturating_add(engine.backoff(state.attempts)));
    let all_final = (0..env.recipients.len()).all(|i| state.of(i).is_final());
    Recorded {
        state,
        log,
        reports,
        counts,
        all_final,
        said,
        transcript,
        owner_transcripts,
    }
}

/// The state with the recipients `done` delivered marked so, and nothing else changed:
/// recorded after a transaction while the attempt goes on, so that a run that dies
/// later does not send to them again. The attempt's full record (attempts, back-off,
/// reason, reports) follows at its end. Failures are not recorded early: a failed
/// recipient stays open until its report is queued with the final record.
pub fn delivered_so_far(state: &State, done: &[RcptOutcome]) -> State {
    let mut s = state.clone();
    for o in done.iter().filter(|o| o.is_success()) {
        s.set_recipient(o.rcpt, RcptState::Delivered, Some(o.reply.summary()), None);
    }
    s.recipients.sort_by_key(|(i, _, _)| *i);
    s
}

/// The exit status of an interactive delivery (`-odi`, `-v`), as sendmail 8.17's:
/// temporary failures exit 0 (the message is queued); the message refused after DATA
/// EX_UNAVAILABLE; the sender refused at MAIL EX_DATAERR for 501 and 553, else
/// EX_UNAVAILABLE (compat cases reason-mail5xx-v, reason-mail553-v, reason-mail501-v);
/// of a server's refusals the first decides (a recipient refused before the message:
/// EX_NOUSER, `reject5-data5-odi`);
/// every failure a domain that does not exist EX_NOHOST; any other refused recipient
/// EX_NOUSER; a server that is this host (the mail would loop) EX_SOFTWARE, the status
/// sendmail's error for it sets (compat cases loop-ehlo-self-*). ErrorMode e mails
/// errors back and exits 0.
pub fn exit_status(c: &Counts, error_mode: char) -> Sysexit {
    if error_mode == 'e' {
        Sysexit::Ok
    } else if c.failed_config > 0 {
        Sysexit::Software
    } else if let Some(first @ (Sysexit::Unavailable | Sysexit::DataErr)) = c.first_refusal {
        first
    } else if c.first_refusal.is_none()
        && (c.failed_data > 0 || c.failed_sender > c.failed_sender_dataerr)
    {
        Sysexit::Unavailable
    } else if c.first_refusal.is_none() && c.failed_sender_dataerr > 0 {
        Sysexit::DataErr
    } else if c.failed_usage > 0 {
        Sysexit::Usage
    } else if c.failed_cant_create > 0 {
        Sysexit::CantCreat
    } else if let Some(x) = c.local_exit {
        x
    } else if c.failed_host > 0 && c.failed_host == c.failed_rcpt {
        Sysexit::NoHost
    } else if c.failed_rcpt > 0 {
        Sysexit::NoUser
    } else {
        Sysexit::Ok
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::super::bounce::ReportTo;
    use super::super::engine;
    use super::super::local::Failure;
    use super::super::reply::Reply;
    use super::*;
    use rsendmail::spool::entry::Recipient;

    const DAY: i64 = 86400;
    const T0: i64 = 1_700_000_000;

    fn env(n: usize) -> Envelope {
        Envelope {
            id: "QID".into(),
            created: T0,
            sender: "s@h.example".into(),
            recipients: (0..n)
                .map(|i| Recipient::new(format!("r{i}@x.test")))
                .collect(),
            ..Envelope::default()
        }
    }

    /// A server's reply to recipient `i`.
    fn out(i: usize, code: u16, text: &str) -> RcptOutcome {
        let reply = Reply {
            code,
            lines: vec![text.into()],
            command: None,
            local: false,
            accepted_by: None,
        };
        RcptOutcome::new(
            i,
            reply,
            Mailer::Relay,
            Some("relay.test [192.0.2.1]".into()),
        )
    }

    /// [`record`] of a first attempt at `now` (no state before), with `outcomes`: a
    /// message of size 0, nothing refused before delivery, no `xdelay`.
    fn first_attempt(e: &Engine, env: &Envelope, outcomes: &[RcptOutcome], now: i64) -> Recorded {
        record(e, env, &State::default(), 0, outcomes, vec![], now, 0)
    }

    /// sendmail's QPRIMARY: the recipient named, and the one target of a one-to-one
    /// expansion without an owner, get receipts; a list's members do not, nor anything
    /// a member's own expansion (a `.forward` at delivery) leads to, nor an owned list's.
    #[test]
    fn only_primary_recipients_get_receipts() {
        use rsendmail::aliases::{Expanded, Target, recipients_from};
        let t = |a: &str| Expanded {
            target: Target::Remote(a.into()),
            sender: None,
            owner: None,
            ctl: None,
        };
        let top = Recipient::new("list");
        assert!(primary(&top));
        let members = recipients_from(&top, vec![t("a@x.example"), t("b@x.example")], "h");
        assert!(members.iter().all(|m| !primary(m)));
        let forwarded = recipients_from(&members[1], vec![t("c@y.example")], "h");
        assert!(!primary(&forwarded[0]), "one of many stays so below");
        let one = recipients_from(&top, vec![t("l1@x.example")], "h");
        assert!(primary(&one[0]));
        let owned = Expanded {
            sender: Some("lowner@x.example".into()),
            ..t("l4a@x.example")
        };
        assert!(!primary(&recipients_from(&top, vec![owned], "h")[0]));
    }

    #[test]
    fn backoff_doubles_to_its_cap() {
        let e = engine::for_tests();
        let seq: Vec<i64> = (1..=8).map(|a| e.backoff(a)).collect();
        assert_eq!(seq, [300, 600, 1200, 2400, 4800, 9600, 14400, 14400]);
        // From the state: attempt n is followed by backoff(n).
        let mut st = State::default();
        for (n, want) in [(1, 300), (2, 600), (3, 1200)] {
            let r = record(
                &e,
                &env(1),
                &st,
                0,
                &[out(0, 451, "4.4.1 later")],
                vec![],
                T0,
                0,
            );
            assert_eq!(r.state.attempts, n);
            assert_eq!(r.state.next_attempt, Some(T0 + want), "attempt {n}");
            st = r.state;
        }
        assert_eq!(e.backoff(u32::MAX), 14400, "no overflow");
    }

    #[test]
    fn min_queue_age_and_back_off_decide_when_due() {
        let e = engine::for_tests();
        let r = first_attempt(&e, &env(1), &[out(0, 451, "4.4.1 x")], T0);
        // Not due before its back-off, due after; MinQueueAge keeps a recently tried
        // entry back even when its back-off has passed.
        assert!(!r.state.is_due(T0 + 299, 0));
        assert!(r.state.is_due(T0 + 300, 0));
        assert!(!r.state.is_due(T0 + 300, 600));
        assert!(r.state.is_due(T0 + 600, 600));
    }

    /// One attempt in words: each recipient's state, the reason, and each report.
    fn summary(r: &Recorded) -> Vec<String> {
        let mut v: Vec<String> = r
            .state
            .recipients
            .iter()
            .map(|(i, st, _)| format!("{i} {}", st.word()))
            .collect();
        if let Some(why) = &r.state.reason {
            v.push(format!("reason {why}"));
        }
        for o in &r.reports {
            let who: Vec<String> = o
                .recipients
                .iter()
                .map(|x| format!("{} {} {}", x.final_recipient, x.action, x.status))
                .collect();
            v.push(format!("{} {:?}: {}", o.kind.word(), o.to, who.join(", ")));
        }
        v
    }

    #[test]
    fn outcomes_recorded() {
        let e = engine::for_tests();
        let sender = || ReportTo::Sender("s@h.example".into());
        let cases: &[(&str, i64, Vec<RcptOutcome>, Vec<String>)] = &[
            (
                "delivered and relayed: final, no report",
                0,
                vec![
                    out(0, 250, "2.0.0 Ok"),
                    RcptOutcome::local(1, 250, "2.0.0 delivered to mailbox", Mailer::Local, None),
                ],
                vec!["0 delivered".into(), "1 delivered".into()],
            ),
            (
                "refused: failed, reported with the server's status",
                0,
                vec![
                    out(0, 550, "5.1.1 <r0@x.test>... User unknown"),
                    out(1, 250, "2.0.0 Ok"),
                ],
                vec![
                    "0 failed".into(),
                    "1 delivered".into(),
                    format!("failure {:?}: r0@x.test failed 5.1.1", sender()),
                ],
            ),
            (
                "deferred young: the reason is mailq's, no warning",
                3600,
                vec![out(0, 451, "4.4.1 Connection refused")],
                vec![
                    "0 deferred".into(),
                    "reason Deferred: 451 4.4.1 Connection refused".into(),
                ],
            ),
            (
                "deferred past Timeout.queuewarn: one delay warning, the entry's reason",
                4 * 3600,
                vec![out(0, 451, "4.4.1 Connection refused")],
                vec![
                    "0 deferred".into(),
                    "reason Warning: could not send message for past 4 hours".into(),
                    format!("delay {:?}: r0@x.test delayed 4.4.1", sender()),
                ],
            ),
            (
                "deferred past Timeout.queuereturn: failed, 4.4.7",
                5 * DAY,
                vec![
                    out(0, 451, "4.4.1 Connection refused"),
                    out(1, 451, "no code"),
                ],
                vec![
                    "0 failed".into(),
                    "1 failed".into(),
                    format!(
                        "failure {:?}: r0@x.test failed 4.4.7, r1@x.test failed 4.4.7",
                        sender()
                    ),
                ],
            ),
            (
                "the first deferral is the reason",
                0,
                vec![out(0, 450, "4.2.0 first"), out(1, 451, "4.3.0 second")],
                vec![
                    "0 deferred".into(),
                    "1 deferred".into(),
                    "reason Deferred: 450 4.2.0 first".into(),
                ],
            ),
        ];
        for (what, age, outcomes, want) in cases {
            let r = record(
                &e,
                &env(outcomes.len()),
                &State::default(),
                0,
                outcomes,
                vec![],
                T0 + age,
                0,
            );
            assert_eq!(summary(&r), *want, "{what}");
            let final_all = outcomes
                .iter()
                .all(|o| o.is_success() || o.class == Class::Permanent)
                || *age >= e.queue_return;
            assert_eq!(r.all_final, final_all, "{what}");
            assert_eq!(r.log.len(), outcomes.len(), "{what}: one log line each");
        }
    }

    #[test]
    fn warning_sent_once() {
        let e = engine::for_tests();
        let first = first_attempt(&e, &env(1), &[out(0, 451, "4.4.1 x")], T0 + 5 * 3600);
        assert!(first.state.warned);
        assert_eq!(first.reports.len(), 1);
        let second = record(
            &e,
            &env(1),
            &first.state,
            0,
            &[out(0, 451, "4.4.1 x")],
            vec![],
            T0 + 6 * 3600,
            0,
        );
        assert!(second.reports.is_empty(), "no second warning");
        let mut never = engine::for_tests();
        never.queue_warn = 0;
        let none = first_attempt(&never, &env(1), &[out(0, 451, "4.4.1 x")], T0 + 9 * 3600);
        assert!(
            none.reports.is_empty() && !none.state.warned,
            "queuewarn=0: never"
        );
    }

    #[test]
    fn notify_and_dsn_passed() {
        let e = engine::for_tests();
        let mut en = env(3);
        en.recipients[0].notify = Some("SUCCESS".into());
        en.recipients[1].notify = Some("SUCCESS".into());
        en.recipients[2].notify = Some("NEVER".into());
        let mut passed = out(1, 250, "2.0.0 Ok");
        passed.dsn_passed = true;
        let mut expanded =
            RcptOutcome::local(0, 250, "2.0.0 expanded by alias", Mailer::Local, None);
        expanded.expanded = true;
        let r = first_attempt(&e, &en, &[expanded, passed, out(2, 550, "5.1.1 no")], T0);
        assert_eq!(
            summary(&r),
            ["0 delivered", "1 delivered", "2 failed",],
            "an expanded recipient is reported through its targets alone"
        );
    }

    /// A server's reply to a command for recipient `i`.
    fn answered(i: usize, code: u16, text: &str, command: &str) -> RcptOutcome {
        let mut o = out(i, code, text);
        o.reply = o.reply.to(command);
        o
    }

    /// With VERP each report goes to its recipient's own sender and names that
    /// recipient alone: its status block and its transcript (a return receipt, a
    /// failure, a delay warning). Without VERP one report per kind carries the whole
    /// attempt's transcript, as before.
    #[test]
    fn verp_reports_name_their_own_recipient_alone() {
        let e = engine::for_tests();
        let mut en = env(5);
        en.recipients[0].notify = Some("SUCCESS,FAILURE".into());
        en.recipients[1].notify = Some("SUCCESS,FAILURE".into());
        let relayed = |i| {
            let mut o = answered(i, 250, "2.0.0 Ok", "DATA");
            o.reply.accepted_by = Some("250 2.1.5 Ok".into());
            o
        };
        let outcomes = [
            relayed(0),
            relayed(1),
            answered(2, 550, "5.1.1 no such user", "RCPT To:<r2@x.test>"),
            answered(3, 550, "5.1.1 no such user", "RCPT To:<r3@x.test>"),
            answered(4, 450, "4.2.0 later", "RCPT To:<r4@x.test>"),
        ];
        let now = T0 + 5 * 3600;
        let mut verp = en.clone();
        verp.verp = Some("+=".into());
        let r = first_attempt(&e, &verp, &outcomes, now);
        let mut seen = Vec::new();
        for o in &r.reports {
            let [one] = &o.recipients[..] else {
                panic!("{} reports on {:?}", o.kind.word(), o.recipients);
            };
            let own = one.final_recipient.clone();
            let i: usize = own.get(1..2).and_then(|d| d.parse().ok()).unwrap();
            assert_eq!(
                o.to,
                ReportTo::Sender(format!("s+r{i}=x.test@h.example")),
                "{own}"
            );
            let notes = o.notes.join("\n");
            assert!(notes.contains(&own), "{own}: {notes}");
            for k in (0..5).filter(|&k| k != i) {
                assert!(!notes.contains(&format!("r{k}@")), "{own}: {notes}");
            }
            seen.push(format!("{} {own}", o.kind.word()));
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                "delay r4@x.test",
                "failure r2@x.test",
                "failure r3@x.test",
                "success r0@x.test",
                "success r1@x.test",
            ]
        );
        // Without VERP: one report for the attempt, with the whole transcript: the delay
        // warning, listing the failures and the successes asked for too (sendmail's:
        // delay-failure-mixed-q).
        let r = first_attempt(&e, &en, &outcomes, now);
        assert_eq!(r.reports.len(), 1, "{:?}", summary(&r));
        assert_eq!(r.reports[0].kind, dsn::Kind::Delay);
        assert_eq!(r.reports[0].recipients.len(), 5);
        for o in &r.reports {
            assert_eq!(o.to, ReportTo::Sender("s@h.example".into()));
            let notes = o.notes.join("\n");
            for k in 0..5 {
                assert!(notes.contains(&format!("r{k}@x.test")), "{notes}");
            }
        }
    }

    /// A refusal made here for a remote recipient (the server lacks SMTPUTF8 the address
    /// needs; the domain does not exist) has no server reply: no Diagnostic-Code and
    /// no reason line, the transcript tells it; Remote-MTA only when a server was
    /// talked to. A server's own refusal keeps its Diagnostic-Code.
    #[test]
    fn locally_made_refusals_are_not_reported_as_a_servers() {
        let e = engine::for_tests();
        let utf8 = RcptOutcome::local(
            0,
            553,
            "5.6.7 The server does not offer SMTPUTF8, which the address needs",
            Mailer::Relay,
            Some("relay.test [192.0.2.1]".into()),
        );
        let mut nohost = RcptOutcome::local(
            1,
            550,
            "5.1.2 Host unknown (Name server: nx.test: host not found)",
            Mailer::Esmtp,
            Some("nx.test".into()),
        );
        nohost.no_host = true;
        nohost.looked_up = true;
        let server = answered(2, 550, "5.1.1 no such user", "RCPT To:<r2@x.test>");
        let r = first_attempt(&e, &env(3), &[utf8, nohost, server], T0);
        let [o] = &r.reports[..] else {
            panic!("{:?}", summary(&r));
        };
        let fields: Vec<(String, Option<String>, Option<String>)> = o
            .recipients
            .iter()
            .map(|x| {
                (
                    x.final_recipient.clone(),
                    x.remote_mta.clone(),
                    x.diagnostic.clone(),
                )
            })
            .collect();
        assert_eq!(
            fields,
            [
                ("r0@x.test".into(), Some("relay.test".into()), None),
                ("r1@x.test".into(), None, None),
                (
                    "r2@x.test".into(),
                    Some("relay.test".into()),
                    Some("550 5.1.1 no such user".into())
                ),
            ]
        );
        let notes = o.notes.join("\n");
        for line in [
            "553 5.6.7 r0@x.test... The server does not offer SMTPUTF8, which the address needs",
            "550 5.1.2 r1@x.test... Host unknown (Name server: nx.test: host not found)",
            "550 5.1.1 r2@x.test... User unknown",
        ] {
            assert!(notes.contains(line), "{line}: {notes}");
        }
    }

    #[test]
    fn reports_of_reports() {
        let e = engine::for_tests();
        let mut bounce = env(1);
        bounce.sender.clear();
        let r = first_attempt(&e, &bounce, &[out(0, 550, "5.1.1 no")], T0);
        assert_eq!(r.reports.len(), 1);
        assert_eq!(r.reports[0].to, ReportTo::Postmaster, "double bounce");
        bounce.report = Some("double".into());
        let r = first_attempt(&e, &bounce, &[out(0, 550, "5.1.1 no")], T0);
        assert!(
            matches!(r.reports[0].to, ReportTo::Dropped(_)),
            "never a triple"
        );
        let young = first_attempt(&e, &bounce, &[out(0, 451, "4.4.1 x")], T0 + 5 * 3600);
        assert!(young.reports.is_empty(), "no delay warning for a report");
    }

    #[test]
    fn refused_expansion_targets_fail_with_a_report() {
        let e = engine::for_tests();
        let delivered = RcptOutcome::local(0, 250, "2.0.0 expanded", Mailer::Local, None);
        let refused = vec![Refused {
            recipient: Recipient::new("nosuch"),
            failure: Failure::new(550, status::BAD_MAILBOX, "nosuch... User unknown"),
            told: false,
            reason: None,
            usage: false,
            syntax: None,
            parent: 0,
        }];
        let r = record(
            &e,
            &env(1),
            &State::default(),
            0,
            &[delivered],
            refused,
            T0,
            0,
        );
        assert_eq!(r.counts.failed_rcpt, 1);
        assert!(r.all_final);
        assert_eq!(
            summary(&r),
            [
                "0 delivered",
                "failure Sender(\"s@h.example\"): nosuch@host.example failed 5.1.1"
            ]
        );
        assert!(
            r.log[1].contains("dsn=5.1.1, stat=550 5.1.1 nosuch... User unknown"),
            "{}",
            r.log[1]
        );
    }

    #[test]
    fn log_line_as_sendmail_writes_it() {
        let e = engine::for_tests();
        let r = record(
            &e,
            &env(1),
            &State::default(),
            1000,
            &[out(0, 250, "2.0.0 Ok: queued as X")],
            vec![],
            T0 + 3725,
            2,
        );
        assert_eq!(
            r.log,
            [
                "QID: to=<r0@x.test>, delay=01:02:05, xdelay=00:00:02, mailer=relay, pri=121000, relay=relay.test [192.0.2.1], dsn=2.0.0, stat=Sent (Ok: queued as X)"
            ]
        );
        assert_eq!(hms(2 * DAY + 61), "2+00:01:01");
        assert_eq!(hms(-5), "00:00:00");
    }

    #[test]
    fn delivered_so_far_marks_only_successes() {
        let before = State {
            attempts: 3,
            reason: Some("Deferred: x".into()),
            ..State::default()
        };
        let s = delivered_so_far(
            &before,
            &[
                out(2, 250, "2.0.0 Ok"),
                out(0, 550, "5.1.1 no"),
                out(1, 451, "4.4.1 later"),
            ],
        );
        assert_eq!(
            s.recipients,
            [(2, RcptState::Delivered, Some("250 2.0.0 Ok".into()))],
            "failures stay open until their report is queued"
        );
        assert_eq!(s.attempts, 3, "the attempt is counted at its end");
        assert_eq!(s.reason, before.reason);
    }

    #[test]
    fn unreported_failures_stay_queued() {
        let before = State {
            recipients: vec![(0, RcptState::Failed, Some("550 old".into()))],
            ..State::default()
        };
        let after = State {
            recipients: vec![
                (0, RcptState::Failed, Some("550 old".into())),
                (1, RcptState::Failed, Some("550 new".into())),
                (2, RcptState::Delivered, Some("250 ok".into())),
            ],
            ..State::default()
        };
        let s = unreport(&before, after, "No space left on device");
        let states: Vec<RcptState> = s.recipients.iter().map(|(_, st, _)| *st).collect();
        assert_eq!(
            states,
            [RcptState::Failed, RcptState::Deferred, RcptState::Delivered]
        );
        assert!(
            s.reason
                .unwrap()
                .contains("cannot queue the failure report")
        );
    }

    #[test]
    fn a_recipients_own_reason_is_its_own_rcpt_reply() {
        let e = engine::for_tests();
        let env = env(3);
        let rcpt = |i: usize, code, text: &str| {
            let mut o = out(i, code, text);
            o.reply = o.reply.clone().to(&format!("RCPT To:<r{i}@x.test>"));
            o
        };
        let data = |i: usize| {
            let mut o = out(i, 451, "4.3.0 later");
            o.reply = o.reply.clone().to("DATA");
            o
        };
        let attempt = |before: &State, outcomes: &[RcptOutcome]| {
            record(&e, &env, before, 100, outcomes, Vec::new(), T0 + 10, 0)
        };
        // A 450 to RCPT is the recipient's; a refused connection and a refused DATA
        // are the entry's alone (bp-v-some-delivered, bp-v-odi-refused,
        // bp-v-odi-data4xx).
        let refused = RcptOutcome::local(
            2,
            451,
            "4.4.1 Connection refused by [127.0.0.1]",
            Mailer::Relay,
            Some("127.0.0.1".into()),
        );
        let outcomes = [rcpt(0, 450, "4.2.0 busy"), data(1), refused];
        let rec = attempt(&State::default(), &outcomes);
        let whys: Vec<Option<&str>> = rec
            .state
            .recipients
            .iter()
            .map(|(_, _, w)| w.as_deref())
            .collect();
        assert_eq!(whys, [Some("450 4.2.0 busy"), None, None]);
        assert_eq!(
            rec.state.reason.as_deref(),
            Some("Deferred: 450 4.2.0 busy")
        );
        // A refusal in the same attempt is the entry's reason, whichever came first
        // (reason-reject5-reject4-v, reason-reject4-reject5-v).
        let outcomes = [rcpt(0, 450, "4.2.0 busy"), rcpt(1, 550, "5.1.1 no")];
        let rec = attempt(&State::default(), &outcomes);
        assert_eq!(rec.state.reason.as_deref(), Some("User unknown"));
        // One recorded at submission stays (reason-local-unknown-refused-v); an earlier
        // deferral gives way to this attempt's.
        let outcomes = [rcpt(0, 450, "4.2.0 busy")];
        for (before, want) in [
            ("User unknown", "User unknown"),
            ("Deferred: 451 old", "Deferred: 450 4.2.0 busy"),
        ] {
            let st = State {
                reason: Some(before.into()),
                ..State::default()
            };
            let rec = attempt(&st, &outcomes);
            assert_eq!(rec.state.reason.as_deref(), Some(want), "{before}");
        }
    }

    #[test]
    fn interactive_exit_status() {
        let c = |failed_rcpt, failed_data, failed_host, deferred| Counts {
            failed_rcpt,
            failed_data,
            failed_host,
            deferred,
            ..Counts::default()
        };
        // The first of a server's refusals decides: a recipient refused at RCPT, then
        // the message at DATA (reject5-data5-odi), and the other way round
        // (data5-reject5-two-odi).
        let ordered = |first| Counts {
            first_refusal: Some(first),
            ..c(2, 1, 0, 0)
        };
        assert_eq!(exit_status(&ordered(Sysexit::NoUser), 'p'), Sysexit::NoUser);
        assert_eq!(
            exit_status(&ordered(Sysexit::Unavailable), 'p'),
            Sysexit::Unavailable
        );
        let cases = [
            (c(0, 0, 0, 0), 'p', Sysexit::Ok),
            (c(0, 0, 0, 3), 'p', Sysexit::Ok),
            (c(1, 0, 0, 0), 'p', Sysexit::NoUser),
            (c(2, 0, 2, 0), 'p', Sysexit::NoHost),
            (c(2, 0, 1, 0), 'p', Sysexit::NoUser),
            (c(1, 1, 0, 0), 'p', Sysexit::Unavailable),
            (c(1, 1, 1, 0), 'p', Sysexit::Unavailable),
            (c(1, 0, 0, 0), 'e', Sysexit::Ok),
            (c(1, 0, 0, 0), 'q', Sysexit::NoUser),
        ];
        let sender = |failed_sender, failed_sender_dataerr| Counts {
            failed_rcpt: 2,
            failed_sender,
            failed_sender_dataerr,
            ..Counts::default()
        };
        // A server that is this host: sendmail's configuration error, EX_SOFTWARE
        // (loop-ehlo-self-odi).
        let looped = Counts {
            failed_rcpt: 2,
            failed_config: 1,
            ..Counts::default()
        };
        assert_eq!(exit_status(&looped, 'p'), Sysexit::Software);
        assert_eq!(exit_status(&sender(2, 0), 'p'), Sysexit::Unavailable);
        assert_eq!(exit_status(&sender(2, 2), 'p'), Sysexit::DataErr);
        assert_eq!(exit_status(&sender(2, 1), 'p'), Sysexit::Unavailable);
        // A /file that cannot be created is EX_CANTCREAT, also beside a refused
        // recipient (file-nodir-mixed); a program or file a list's user may not have is
        // EX_USAGE (forward-prog-noshell-odi).
        let local = |failed_cant_create, failed_usage| Counts {
            failed_rcpt: 2,
            failed_cant_create,
            failed_usage,
            ..Counts::default()
        };
        assert_eq!(exit_status(&local(1, 0), 'p'), Sysexit::CantCreat);
        assert_eq!(exit_status(&local(0, 1), 'p'), Sysexit::Usage);
        assert_eq!(exit_status(&local(1, 1), 'p'), Sysexit::Usage);
        assert_eq!(exit_status(&local(1, 0), 'e'), Sysexit::Ok);
        for (counts, mode, want) in cases {
            assert_eq!(exit_status(&counts, mode), want, "{counts:?} {mode}");
        }
        // From outcomes to the status.
        let e = engine::for_tests();
        let mut nohost = RcptOutcome::local(
            0,
            550,
            "5.1.2 Host unknown",
            Mailer::Esmtp,
            Some("nx.test".into()),
        );
        nohost.no_host = true;
        let r = first_attempt(&e, &env(1), &[nohost], T0);
        assert_eq!(exit_status(&r.counts, 'p'), Sysexit::NoHost);
        let mut data = out(0, 554, "5.6.0 content refused");
        data.data_refused = true;
        let r = first_attempt(&e, &env(1), &[data], T0);
        assert_eq!(exit_status(&r.counts, 'p'), Sysexit::Unavailable);
    }
}
