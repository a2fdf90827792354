//! Step two of an attempt: route each open recipient and group the remote ones into
//! SMTP transactions. Pure but for the MX lookup, which the caller passes in (a cached
//! resolver in a run, a table in the tests).
//!
//! - [`route`]: local, a relay (RELAYTABLE entry or SMARTHOST), or the domain's MX hosts.
//! - [`plan`]: the transactions (same hosts, same envelope sender), the local recipients,
//!   and the outcomes decided without sending (too many hops, a domain that does not
//!   exist or whose lookup failed).

use super::dns::MxResult;
use super::engine::Engine;
use super::outcome::{Mailer, RcptOutcome};
use super::reply::Reply;
use rsendmail::config::RelayRule;
use rsendmail::message::address::domain_of;
use rsendmail::spool::entry::Envelope;
use rsendmail::status;

/// A relay: its hosts and ports, tried in order.
pub type Relay = Vec<(String, u16)>;

/// The relay for a domain: an exact entry, else the nearest `.parent` entry, else `*`;
/// compared as [`rsendmail::config::domain_key`]s (case and a trailing dot do not count,
/// on either side).
#[deny(clippy::indexing_slicing)]
pub fn relay_for<'a>(table: &'a [RelayRule], domain: &str) -> Option<&'a RelayRule> {
    let d = rsendmail::config::domain_key(domain);
    if let Some(r) = table.iter().find(|r| r.pattern == d) {
        return Some(r);
    }
    let mut rest = d.as_str();
    while let Some((_, after)) = rest.split_once('.') {
        // `.after` is the parent's pattern.
        if let Some(r) = table
            .iter()
            .find(|r| r.pattern.strip_prefix('.') == Some(after))
        {
            return Some(r);
        }
        rest = after;
    }
    table.iter().find(|r| r.pattern == "*")
}

/// Where a recipient goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Through these relays, tried in order (the relay table's entry, or SMARTHOST).
    Relay(Relay),
    /// To the MX hosts of the domain.
    Mx(String),
    /// Local delivery: a mailbox, or what the aliases make of the name.
    Local,
}

pub fn route(engine: &Engine, addr: &str) -> Route {
    let to_smarthost = engine.null_client && !engine.smarthost.is_empty();
    if rsendmail::message::address::is_local(addr, &engine.host_name, to_smarthost) {
        return Route::Local;
    }
    let domain = domain_of(addr);
    if let Some(d) = &domain
        && let Some(r) = relay_for(&engine.relay_table, d)
    {
        // `domain mx:`: this domain by its MX hosts, whatever SMARTHOST says.
        if r.by_mx {
            return Route::Mx(d.clone());
        }
        return Route::Relay(vec![(r.host.clone(), r.port)]);
    }
    if !engine.smarthost.is_empty() {
        return Route::Relay(engine.smarthost.clone());
    }
    Route::Mx(domain.unwrap_or_default())
}

/// One SMTP transaction to plan: the hosts to try, the envelope sender when it is a
/// recipient's own (`owner-list`), and the recipients in the order of their RCPTs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub hosts: Relay,
    pub sender: Option<String>,
    pub mailer: Mailer,
    pub rcpts: Vec<usize>,
    /// VERP delimiters (the entry's `verp`, for a sender that is not null): each
    /// recipient gets its own envelope sender, made by the server when it offers XVERP,
    /// else in a transaction of its own (`attempt::send_transaction`).
    pub verp: Option<String>,
}

/// What an attempt will do with its open recipients.
#[derive(Debug, Default)]
pub struct Plan {
    /// The entry's own sender's first, then those from a list's owner (sendmail sends
    /// the envelope it splits off for an `owner-` alias after the original: compat case
    /// bp-v-alias-owner); each in the order its first recipient appears in the entry.
    pub transactions: Vec<Transaction>,
    /// Local recipients, in entry order, delivered one at a time.
    pub local: Vec<usize>,
    /// Outcomes decided without sending anything.
    pub decided: Vec<RcptOutcome>,
}

/// Count the trace fields of a header block (sendmail's hop count:
/// [`rsendmail::message::TRACE_FIELDS`]).
#[deny(clippy::indexing_slicing)]
pub fn received_count(header: &[u8]) -> usize {
    rsendmail::message::trace_count_raw(header)
}

/// The plan of an entry `rsendmail-admin bounce` marked: each of `open` fails at once
/// (`550 5.0.0 Returned to sender by the administrator: REASON`; `by` in place of "by
/// the administrator" when someone else asked, such as "at its sender's request (user
/// alice)"), so the attempt's
/// record fails them and queues the report they owe, as for any permanent failure, and
/// the entry is removed only after that (never two reports: the mark goes with it).
/// `route_of` gives each recipient's route: its log line names the mailer it would have
/// gone by, not `local` for a remote recipient, and no relay (none was contacted).
pub fn returned(
    open: &[usize],
    reason: &str,
    by: Option<&str>,
    route_of: &dyn Fn(usize) -> Option<Route>,
) -> Plan {
    let mut p = Plan::default();
    let reason = rsendmail::text::printable(reason);
    let by = rsendmail::text::printable(by.unwrap_or(rsendmail::spool::entry::BY_ADMINISTRATOR));
    for &i in open {
        let mut o = RcptOutcome::local(
            i,
            550,
            format!("5.0.0 Returned to sender {by}: {reason}"),
            Mailer::Local,
            None,
        );
        o.logged_as = match route_of(i) {
            Some(Route::Relay(_)) => Some(Mailer::Relay),
            Some(Route::Mx(_)) => Some(Mailer::Esmtp),
            Some(Route::Local) | None => None,
        };
        p.decided.push(o);
    }
    p
}

/// Plan an attempt at `open` (indexes of the entry's recipients still to deliver).
/// `hops`: the trace fields of the message as queued, ours included (sendmail counts
/// the `Received:` it adds). `worker`: this
/// worker's number, for `O SmarthostSplit=`. `mx`: the MX lookup, asked once per domain.
pub fn plan(
    engine: &Engine,
    env: &Envelope,
    open: &[usize],
    hops: usize,
    worker: usize,
    mx: &mut dyn FnMut(&str) -> MxResult,
) -> Plan {
    let mut p = Plan::default();
    // A message that has passed too many hosts is looping: it bounces (sendmail's
    // MaxHopCount; RFC 5321 §6.3).
    if hops > engine.max_hops {
        for &i in open {
            p.decided.push(RcptOutcome::local(
                i,
                554,
                format!(
                    "{} Too many hops {hops} ({} max)",
                    status::LOOP,
                    engine.max_hops
                ),
                Mailer::Local,
                None,
            ));
        }
        return p;
    }
    let mut looked_up: Vec<(String, MxResult)> = Vec::new();
    let add = |p: &mut Plan, hosts: Relay, mailer: Mailer, i: usize| {
        let sender = env
            .recipients
            .get(i)
            .and_then(|r| env.owner_sender(r))
            .map(str::to_string);
        let verp = env
            .verp
            .clone()
            .filter(|_| !sender.as_deref().unwrap_or(&env.sender).is_empty());
        match p
            .transactions
            .iter_mut()
            .find(|t| t.hosts == hosts && t.sender == sender && t.mailer == mailer)
        {
            Some(t) => t.rcpts.push(i),
            None => p.transactions.push(Transaction {
                hosts,
                sender,
                mailer,
                rcpts: vec![i],
                verp,
            }),
        }
    };
    for &i in open {
        let Some(r) = env.recipients.get(i) else {
            continue;
        };
        match route(engine, &r.address) {
            Route::Local => p.local.push(i),
            Route::Relay(hosts) => add(&mut p, hosts, Mailer::Relay, i),
            Route::Mx(d) => {
                let key = rsendmail::message::address::domain_key(&d);
                let resolved = match looked_up.iter().find(|(k, _)| *k == key) {
                    Some((_, r)) => r.clone(),
                    None => {
                        let r = mx(&d);
                        looked_up.push((key, r.clone()));
                        r
                    }
                };
                match resolved {
                    MxResult::Hosts(hosts) => {
                        let hosts: Relay = hosts
                            .iter()
                            .flat_map(|(_, addrs)| {
                                addrs.iter().map(|a| (a.to_string(), engine.mx_port))
                            })
                            .collect();
                        add(&mut p, hosts, Mailer::Esmtp, i);
                    }
                    // An MX list pointing back here is sendmail's configuration error
                    // (`554 5.3.5`, EX_CONFIG), not an unknown host.
                    // Decided by the lookup: the domain is named, no server was tried.
                    MxResult::NoHost(st, text) if st == status::MISCONFIGURED => {
                        let reply = Reply::with_status(554, st, text);
                        let mut o = RcptOutcome::new(i, reply, Mailer::Esmtp, Some(d));
                        o.looked_up = true;
                        p.decided.push(o);
                    }
                    MxResult::NoHost(st, text) => {
                        let reply = Reply::with_status(550, st, text);
                        let mut o = RcptOutcome::new(i, reply, Mailer::Esmtp, Some(d));
                        o.no_host = true;
                        o.looked_up = true;
                        p.decided.push(o);
                    }
                    MxResult::Temp(st, text) => {
                        let reply = Reply::with_status(451, st, text);
                        let mut o = RcptOutcome::new(i, reply, Mailer::Esmtp, Some(d));
                        o.looked_up = true;
                        p.decided.push(o);
                    }
                }
            }
        }
    }
    // Within each transaction the recipients in reverse queue order: the order in which
    // sendmail 8.17 sends its RCPTs (it chains them by prepending; recorded in
    // compat-tests, `deliver-mixed-recipients`).
    for t in &mut p.transactions {
        t.rcpts.reverse();
        // O SortByDomain: the recipients of one domain together, the domains in order
        // (fml's $SMTP_SORT_DOMAIN); within a domain the order above is kept.
        if engine.sort_by_domain {
            t.rcpts.sort_by_cached_key(|&i| {
                env.recipients
                    .get(i)
                    .map(|r| domain_key(&r.address))
                    .unwrap_or_default()
            });
        }
    }
    p.transactions.sort_by_key(|t| t.sender.is_some());
    p.transactions = spread(engine, p.transactions, worker);
    p
}

/// The smarthost transactions spread over the relays (`SMARTHOST` with several hosts).
/// `O SmarthostSplit=N`: worker k starts at smarthost k mod N, and a transaction's
/// recipients are cut into up to N runs of about equal length, run j starting at the
/// host after run j-1's (fml's `$MCI_SMTP_HOSTS`): a run's whole mail, and one
/// message's many recipients, go out over N relays at once. The other hosts stay each
/// run's fall-backs, in order, so a relay that is down costs no recipient.
/// `O SmarthostRandom=true`: the hosts in a random order for each transaction first.
fn spread(engine: &Engine, transactions: Vec<Transaction>, worker: usize) -> Vec<Transaction> {
    let mut out = Vec::with_capacity(transactions.len());
    for t in transactions {
        if t.mailer != Mailer::Relay || t.hosts != engine.smarthost || t.hosts.len() < 2 {
            out.push(t);
            continue;
        }
        let mut hosts = t.hosts.clone();
        if engine.smarthost_random {
            rsendmail::queue::shuffle(&mut hosts);
        }
        let n = engine.smarthost_split.min(hosts.len()).max(1);
        let runs = n.min(t.rcpts.len()).max(1);
        let per = t.rcpts.len().div_ceil(runs).max(1);
        for (j, chunk) in t.rcpts.chunks(per).enumerate() {
            let mut h = hosts.clone();
            h.rotate_left((worker + j) % n);
            out.push(Transaction {
                hosts: h,
                rcpts: chunk.to_vec(),
                ..t.clone()
            });
        }
    }
    out
}

/// What [`plan`] sorts by for `O SortByDomain`: the domain's labels from the top
/// (`mail.example.org` → `org.example.mail`), as a
/// [`rsendmail::message::address::domain_key`] (lower case, U-labels as A-labels), so
/// that the subdomains of a domain follow it and both forms of one domain sort together;
/// an address without a domain sorts first.
pub fn domain_key(addr: &str) -> String {
    let d = rsendmail::message::address::domain_key_of(addr).unwrap_or_default();
    let mut labels: Vec<&str> = d.split('.').collect();
    labels.reverse();
    labels.join(".")
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::super::engine;
    use super::super::outcome::Class;
    use super::*;
    use rsendmail::config::parse_relay_table;
    use rsendmail::spool::entry::Recipient;

    #[test]
    fn routes() {
        let mut e = engine::for_tests();
        assert_eq!(route(&e, "bob"), Route::Local);
        assert_eq!(route(&e, "bob@HOST.example"), Route::Local);
        assert_eq!(
            route(&e, "bob@example.org"),
            Route::Mx("example.org".into())
        );
        e.smarthost = vec![("127.0.0.1".into(), 25)];
        let smart = Route::Relay(e.smarthost.clone());
        assert_eq!(route(&e, "bob@example.org"), smart);
        assert_eq!(route(&e, "bob"), Route::Local);
        e.null_client = true;
        assert_eq!(route(&e, "bob"), smart);
        e.relay_table = parse_relay_table(
            "example.org [10.0.0.1]:2525\n.example.net relay.example\n",
            "t",
            25,
        )
        .unwrap();
        assert_eq!(
            route(&e, "bob@Example.ORG"),
            Route::Relay(vec![("[10.0.0.1]".into(), 2525)])
        );
        assert_eq!(
            route(&e, "bob@a.b.example.net"),
            Route::Relay(vec![("relay.example".into(), 25)])
        );
        assert_eq!(
            route(&e, "bob@example.net"),
            smart,
            "'.domain' is for subdomains only"
        );
        assert_eq!(route(&e, "bob@other.org"), smart);
        // `mx:`: the domain by its MX hosts, the rest still by the smarthost.
        e.relay_table =
            parse_relay_table("direct.example mx:\n.sub.example MX:\n", "t", 25).unwrap();
        assert_eq!(
            route(&e, "bob@Direct.Example"),
            Route::Mx("direct.example".into())
        );
        assert_eq!(
            route(&e, "bob@a.sub.example"),
            Route::Mx("a.sub.example".into())
        );
        assert_eq!(route(&e, "bob@other.example"), smart);
        assert_eq!(e.qualify("root"), "root@host.example");
        assert_eq!(e.qualify(""), "");
    }

    #[test]
    fn relay_table_rules() {
        let t = parse_relay_table(
            "# comment\nexample.org a.relay\n.example.org b.relay:26\n* [c.relay]\n\n",
            "t",
            25,
        )
        .unwrap();
        let host = |d: &str| relay_for(&t, d).map(|r| (r.host.as_str(), r.port));
        assert_eq!(host("example.org"), Some(("a.relay", 25)));
        assert_eq!(host("mail.example.org"), Some(("b.relay", 26)));
        assert_eq!(host("x.mail.example.org"), Some(("b.relay", 26)));
        assert_eq!(host("example.org.uk"), Some(("[c.relay]", 25)));
        assert_eq!(relay_for(&t[..2], "notexample.org"), None);
    }

    /// RELAYTABLE, this host's own name and the sort key take an internationalised
    /// domain in either form, whichever form the table and the address use.
    #[test]
    fn relay_table_and_routes_take_both_forms_of_an_idn_domain() {
        const U: &str = "bücher.example";
        const A: &str = "xn--bcher-kva.example";
        for (table, asked) in [
            (U, A),
            (A, U),
            ("BÜCHER.Example.", A),
            ("XN--BCHER-KVA.Example", "Bücher.example"),
        ] {
            let what = format!("table {table}, address {asked}");
            let t = parse_relay_table(
                &format!("{table} 127.0.0.1:31401\n.{table} 127.0.0.1:31402\n"),
                "t",
                25,
            )
            .unwrap_or_else(|e| panic!("{what}: {}", e.message));
            let port = |d: &str| relay_for(&t, d).map(|r| r.port);
            assert_eq!(port(asked), Some(31401), "{what}");
            assert_eq!(port(&format!("mail.{asked}")), Some(31402), "{what}");
            assert_eq!(port("bucher.example"), None, "{what}");
            let mut e = engine::for_tests();
            e.relay_table = t.clone();
            assert_eq!(
                route(&e, &format!("u@{asked}")),
                Route::Relay(vec![("127.0.0.1".into(), 31401)]),
                "{what}"
            );
            assert_eq!(
                domain_key(&format!("u@{table}")),
                domain_key(&format!("u@{asked}"))
            );
        }
        // This host's name (MAILNAME is ASCII: its A-labels) names the U-label form too.
        let mut e = engine::for_tests();
        e.host_name = A.into();
        assert_eq!(route(&e, &format!("u@{U}")), Route::Local);
        assert_eq!(route(&e, "u@B\u{dc}cher.example"), Route::Local);
    }

    /// A trailing dot and case count on neither side: `a.example.` is `a.example`.
    #[test]
    fn relay_table_domains_ignore_case_and_a_trailing_dot() {
        let t = parse_relay_table(
            "A.Example. 127.0.0.1:31401\n.Sub.Example. 127.0.0.1:31402\n",
            "t",
            25,
        )
        .unwrap();
        let port = |d: &str| relay_for(&t, d).map(|r| r.port);
        for (d, want) in [
            ("a.example", Some(31401)),
            ("A.EXAMPLE", Some(31401)),
            ("a.example.", Some(31401)),
            ("x.sub.example", Some(31402)),
            ("X.Sub.Example.", Some(31402)),
            ("sub.example", None),
            ("b.example", None),
        ] {
            assert_eq!(port(d), want, "{d}");
        }
    }

    #[test]
    fn hop_count_reads_trace_fields_only() {
        assert_eq!(received_count(b""), 0);
        assert_eq!(
            received_count(b"Received: a\nRECEIVED:b\nX-Received: c\n  Received: d\nreceived"),
            2
        );
        assert_eq!(
            received_count(
                b"Via: a\nMail-From: b\nX400-Received: c\nReceived : d\nVia-X: e\nX-Via: f\n"
            ),
            4
        );
    }

    fn env_with(addrs: &[(&str, Option<&str>)]) -> Envelope {
        Envelope {
            recipients: addrs
                .iter()
                .map(|(a, s)| {
                    let mut r = Recipient::new(*a);
                    r.sender = s.map(str::to_string);
                    r
                })
                .collect(),
            sender: "s@h.example".into(),
            ..Envelope::default()
        }
    }

    fn mx_table(d: &str) -> MxResult {
        match d {
            "mx.test" => MxResult::Hosts(vec![(
                "mail.mx.test".into(),
                vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()],
            )]),
            "nxdomain.test" => MxResult::NoHost(status::BAD_SYSTEM, "Host unknown".into()),
            _ => MxResult::Temp(status::DIRECTORY_TEMP, "lookup failed".into()),
        }
    }

    /// What a plan comes to, in words: each transaction as `mailer hosts [sender]: rcpts`,
    /// then `local: rcpts`, then each decided outcome as `rcpt class status`.
    fn shown(p: &Plan) -> Vec<String> {
        let mut v: Vec<String> = p
            .transactions
            .iter()
            .map(|t| {
                let hosts: Vec<String> = t.hosts.iter().map(|(h, n)| format!("{h}:{n}")).collect();
                format!(
                    "{} {}{}: {:?}",
                    t.mailer.as_str(),
                    hosts.join(","),
                    t.sender
                        .as_ref()
                        .map(|s| format!(" <{s}>"))
                        .unwrap_or_default(),
                    t.rcpts
                )
            })
            .collect();
        if !p.local.is_empty() {
            v.push(format!("local: {:?}", p.local));
        }
        for o in &p.decided {
            v.push(format!("{} {:?} {}", o.rcpt, o.class, o.status));
        }
        v
    }

    #[test]
    fn plans() {
        type Setup = fn(&mut Engine);
        let smart: Setup = |e| e.smarthost = vec![("s1".into(), 25), ("s2".into(), 26)];
        let none: Setup = |_| {};
        let table: Setup = |e| {
            e.smarthost = vec![("s1".into(), 25)];
            e.relay_table = parse_relay_table("x.test r:2525\n", "t", 25).unwrap();
        };
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, Setup, &[(&str, Option<&str>)], usize, usize, &[&str])] = &[
            (
                "one smarthost transaction, RCPTs in reverse order",
                smart,
                &[("a@x.test", None), ("b@y.test", None), ("c@z.test", None)],
                0,
                0,
                &["relay s1:25,s2:26: [2, 1, 0]"],
            ),
            (
                "a recipient's own sender is its own transaction",
                smart,
                &[
                    ("a@x.test", None),
                    ("b@y.test", Some("owner-l@h")),
                    ("c@z.test", None),
                ],
                0,
                0,
                &[
                    "relay s1:25,s2:26: [2, 0]",
                    "relay s1:25,s2:26 <owner-l@h>: [1]",
                ],
            ),
            (
                "local recipients apart, in entry order",
                smart,
                &[
                    ("bob", None),
                    ("a@x.test", None),
                    ("root@host.example", None),
                ],
                0,
                0,
                &["relay s1:25,s2:26: [1]", "local: [0, 2]"],
            ),
            (
                "relay table before smarthost",
                table,
                &[("a@x.test", None), ("b@y.test", None)],
                0,
                0,
                &["relay r:2525: [0]", "relay s1:25: [1]"],
            ),
            (
                "MX hosts, every address in order; unknown domain permanent; lookup failure temporary",
                none,
                &[
                    ("a@mx.test", None),
                    ("b@nxdomain.test", None),
                    ("c@tempfail.test", None),
                    ("d@MX.test", None),
                ],
                0,
                0,
                &[
                    "esmtp 192.0.2.1:25,192.0.2.2:25: [3, 0]",
                    "1 Permanent 5.1.2",
                    "2 Temporary 4.4.3",
                ],
            ),
            (
                "too many hops: every recipient bounces, nothing is sent",
                smart,
                &[("a@x.test", None), ("bob", None)],
                26,
                0,
                &["0 Permanent 5.4.6", "1 Permanent 5.4.6"],
            ),
            (
                "as many hops as allowed is fine",
                smart,
                &[("a@x.test", None)],
                25,
                0,
                &["relay s1:25,s2:26: [0]"],
            ),
        ];
        for (what, setup, rcpts, hops, worker, want) in cases {
            let mut e = engine::for_tests();
            setup(&mut e);
            let env = env_with(rcpts);
            let open: Vec<usize> = (0..rcpts.len()).collect();
            let mut asked = Vec::new();
            let p = plan(&e, &env, &open, *hops, *worker, &mut |d: &str| {
                asked.push(d.to_ascii_lowercase());
                mx_table(&d.to_ascii_lowercase())
            });
            assert_eq!(shown(&p), *want, "{what}");
            let mut once = asked.clone();
            once.dedup();
            assert_eq!(asked, once, "{what}: one lookup per domain");
        }
    }

    #[test]
    fn smarthost_split_spreads_workers() {
        let mut e = engine::for_tests();
        e.smarthost = vec![("s1".into(), 25), ("s2".into(), 25), ("s3".into(), 25)];
        e.smarthost_split = 2;
        let env = env_with(&[("a@x.test", None)]);
        let first = |worker| {
            let p = plan(&e, &env, &[0], 0, worker, &mut mx_table);
            p.transactions[0].hosts[0].0.clone()
        };
        assert_eq!(
            [first(0), first(1), first(2), first(3)],
            ["s1", "s2", "s1", "s2"]
        );
    }

    #[test]
    fn verp_and_domain_order() {
        let mut e = engine::for_tests();
        e.smarthost = vec![("s".into(), 25)];
        let mut env = env_with(&[
            ("a@b.example.org", None),
            ("b@example.net", None),
            ("c@example.org", None),
            ("d", None),
        ]);
        env.sender = "l@o.example".into();
        env.verp = Some("+=".into());
        let p = plan(&e, &env, &[0, 1, 2], 0, 0, &mut mx_table);
        assert_eq!(p.transactions[0].verp.as_deref(), Some("+="));
        assert_eq!(p.transactions[0].rcpts, [2, 1, 0]);
        e.sort_by_domain = true;
        let p = plan(&e, &env, &[0, 1, 2], 0, 0, &mut mx_table);
        assert_eq!(p.transactions[0].rcpts, [1, 2, 0]);
        // The null sender has no VERP.
        env.sender.clear();
        let p = plan(&e, &env, &[0], 0, 0, &mut mx_table);
        assert_eq!(p.transactions[0].verp, None);
        assert_eq!(domain_key("x@Mail.Example.ORG"), "org.example.mail");
        assert_eq!(domain_key("root"), "");
    }

    #[test]
    fn smarthost_split_spreads_one_messages_recipients() {
        let mut e = engine::for_tests();
        e.smarthost = vec![("s1".into(), 25), ("s2".into(), 25), ("s3".into(), 25)];
        e.smarthost_split = 3;
        let env = env_with(&[
            ("a@x.test", None),
            ("b@x.test", None),
            ("c@x.test", None),
            ("d@x.test", None),
            ("e@x.test", None),
        ]);
        let open: Vec<usize> = (0..5).collect();
        let p = plan(&e, &env, &open, 0, 0, &mut mx_table);
        assert_eq!(
            shown(&p),
            [
                "relay s1:25,s2:25,s3:25: [4, 3]",
                "relay s2:25,s3:25,s1:25: [2, 1]",
                "relay s3:25,s1:25,s2:25: [0]",
            ]
        );
        // Worker 1 starts one host further; fewer recipients than relays: one each.
        let p = plan(&e, &env, &[0, 1], 0, 1, &mut mx_table);
        assert_eq!(
            shown(&p),
            [
                "relay s2:25,s3:25,s1:25: [1]",
                "relay s3:25,s1:25,s2:25: [0]"
            ]
        );
        // Without SmarthostSplit: one transaction, the hosts in order.
        e.smarthost_split = 1;
        let p = plan(&e, &env, &open, 0, 0, &mut mx_table);
        assert_eq!(shown(&p), ["relay s1:25,s2:25,s3:25: [4, 3, 2, 1, 0]"]);
        // SmarthostRandom: every host is still there, each once.
        e.smarthost_random = true;
        e.smarthost_split = 3;
        for _ in 0..20 {
            let p = plan(&e, &env, &open, 0, 0, &mut mx_table);
            let mut all: Vec<usize> = p
                .transactions
                .iter()
                .flat_map(|t| t.rcpts.clone())
                .collect();
            all.sort();
            assert_eq!(all, open);
            for t in &p.transactions {
                let mut h = t.hosts.clone();
                h.sort();
                assert_eq!(h, e.smarthost);
            }
        }
    }

    #[test]
    fn only_open_recipients_are_planned() {
        let mut e = engine::for_tests();
        e.smarthost = vec![("s".into(), 25)];
        let env = env_with(&[("a@x.test", None), ("b@x.test", None), ("c@x.test", None)]);
        let p = plan(&e, &env, &[0, 2, 7], 0, 0, &mut mx_table);
        assert_eq!(shown(&p), ["relay s:25: [2, 0]"]);
        assert!(p.decided.iter().all(|o| o.class != Class::Delivered));
    }
}
