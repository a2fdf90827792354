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
}

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
}

/// The server as a report names it: an address in brackets, as sendmail writes it.
fn mta_name(host: &str) -> String {
    if host.parse::<std::net::IpAddr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// How long, in words, for a delay warning's subject.
pub fn waited_words(secs: i64) -> String {
    if secs >= 3600 && secs % 3600 == 0 {
        let h = secs / 3600;
        format!("{h} hour{}", if h == 1 { "" } else { "s" })
    } else if secs >= 60 {
        let m = secs / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("{secs} seconds")
    }
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
/// sender goes to the postmaster once; a failure of that report is only logged.
pub fn owed(engine: &Engine, env: &Envelope, items: Vec<ReportItem>, now: i64) -> Vec<Owed> {
    // (kind, return address) → the recipients reported on.
    type Groups = Vec<((dsn::Kind, Option<String>), Vec<dsn::RcptReport>)>;
    let mut groups: Groups = Vec::new();
    for item in items {
        let ReportItem {
            rcpt: r,
            kind,
            action,
            status,
            why,
            reply,
            remote,
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
        let status = match kind {
            dsn::Kind::Success => status::OK,
            // Still failing temporarily when the message expired.
            dsn::Kind::Failure if status.class != StatusClass::Permanent => status::EXPIRED,
            _ => status,
        };
        let final_recipient = if r.address.starts_with(['|', '/', '\\', ':']) {
            r.address.clone()
        } else {
            engine.qualify(&r.address)
        };
        let rr = dsn::RcptReport {
            final_recipient,
            original_recipient: r.orcpt.clone(),
            action,
            status,
            remote_mta: (!remote.is_empty()).then(|| mta_name(&remote)),
            transcript: match (&reply, kind) {
                (Some(reply), dsn::Kind::Failure) => failure_transcript(&r.address, reply),
                _ => Vec::new(),
            },
            diagnostic: (kind != dsn::Kind::Success || !remote.is_empty()).then_some(why),
            diagnostic_type: if remote.is_empty() { "X-Unix" } else { "SMTP" },
            last_attempt: now,
            will_retry_until: (kind == dsn::Kind::Delay && engine.queue_return > 0)
                .then_some(env.created.saturating_add(engine.queue_return)),
        };
        let key = (kind, ret);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(rr),
            None => groups.push((key, vec![rr])),
        }
    }
    groups
        .into_iter()
        .map(|((kind, ret), recipients)| {
            let to = match ret {
                // An interactive delivery's failures follow ErrorMode (recorded from 8.17
                // with and without a terminal): p saves the message in ~/dead.letter and
                // says so when the sender is local (sendmail's ESM_QUIET state: a local
                // sender's mailer is the local one); a remote sender (`-f a@example.com`)
                // gets it mailed back (compat case bounce-rcpt-550). q does nothing, m, w
                // and e mail it back. Elsewhere failures are mailed back.
                Some(a) if engine.interactive && kind == dsn::Kind::Failure => {
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
            }
        })
        .collect()
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

/// Queue the reports owed (or save the message in dead.letter).
pub fn send(
    engine: &Engine,
    spool: &Spool,
    env: &Envelope,
    reports: Vec<Owed>,
    open_message: &dyn Fn() -> std::io::Result<(std::fs::File, u64)>,
) -> Sent {
    let mut sent = Sent::default();
    for Owed {
        kind,
        to,
        recipients,
    } in reports
    {
        let (to, double) = match to {
            ReportTo::Sender(a) => (a, false),
            ReportTo::Postmaster => ("postmaster".to_string(), true),
            ReportTo::Dropped(why) => {
                log::warn!("{}: {why}", env.id);
                continue;
            }
            ReportTo::DeadLetter(a) => {
                let saved = open_message()
                    .map_err(|e| e.to_string())
                    .and_then(|(f, len)| {
                        rsendmail::mbox::save_dead_letter(
                            &env.sender,
                            env.created,
                            &mut std::io::Read::take(f, len),
                        )
                    });
                match saved {
                    Ok(p) => {
                        let p = p.display();
                        rsendmail::outln!("{p}... Saved message in {p}");
                        continue;
                    }
                    // Not saved: mail it back rather than lose the notice.
                    Err(e) => {
                        log::warn!("{}: cannot save in dead.letter ({e}); mailed back", env.id);
                        (a, false)
                    }
                }
            }
        };
        let report = dsn::Report {
            kind,
            host: &engine.host_name,
            original: env,
            recipients,
            headers_only: env.ret.as_deref() == Some("HDRS") || engine.no_body_return,
            no_actual_recipient: engine.no_actual_recipient,
            waited: (kind == dsn::Kind::Delay).then(|| waited_words(engine.queue_warn)),
        };
        let queued = open_message()
            .map_err(|e| Fatal::new(Sysexit::IoErr, e.to_string()))
            .and_then(|(f, len)| {
                report.queue(spool, &to, double, &mut std::io::Read::take(f, len))
            });
        match queued {
            Ok(id) => {
                log::info!("{}: {}: DSN: {}", env.id, id, kind.word());
                sent.ids.push(id);
            }
            Err(e) => {
                log::error!("{}: cannot queue a delivery report: {}", env.id, e.message);
                if kind == dsn::Kind::Failure {
                    sent.failure_unqueued = Some(e.message);
                }
            }
        }
    }
    sent
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::super::engine;
    use super::*;

    fn item(addr: &str, kind: dsn::Kind, st: EnhancedStatus) -> ReportItem {
        ReportItem {
            rcpt: Recipient::new(addr),
            kind,
            action: match kind {
                dsn::Kind::Failure => "failed",
                dsn::Kind::Delay => "delayed",
                dsn::Kind::Success => "relayed",
            },
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
                "failures and delays to the sender, one report per kind",
                plain,
                &[
                    ("a@x", Failure, status::BAD_MAILBOX),
                    ("b@x", Delay, status::NO_ANSWER),
                    ("c@x", Failure, status::PERM),
                ],
                &[
                    "failure Sender(\"s@h.example\"): a@x 5.1.1, c@x 5.0.0",
                    "delay Sender(\"s@h.example\"): b@x 4.4.1",
                ],
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
                &["success Sender(\"s@h.example\"): a@x 2.0.0"],
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
                &[
                    "failure DeadLetter(\"s@host.example\"): a@x 5.0.0",
                    "delay Sender(\"s@host.example\"): b@x 4.0.0",
                ],
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
            assert_eq!(shown(&owed(&e, &env, list, 0)), *want, "{what}");
        }
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
