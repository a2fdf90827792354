//! Routing of a message's recipients: VERP senders (`-XV`, `O Verp=`), XVERP, the order
//! of RCPTs (`O SortByDomain=`), against real servers (smtp-sink, the aiosmtpd server).

use crate::harness::servers::{
    Daemon, DnsServer, Peer, Raw, Sink, have_peer, relay_env, start_peer,
};
use crate::harness::{Env, MSG, wait_until};
use std::fs;
use std::time::Duration;

/// The `X-Mail-Args:` and `X-Rcpt-Args:` lines of each message smtp-sink took, sorted.
fn envelopes(sink: &Sink) -> Vec<String> {
    let mut v: Vec<String> = sink
        .dumps()
        .iter()
        .map(|d| {
            d.lines()
                .filter(|l| l.starts_with("X-Mail-Args: ") || l.starts_with("X-Rcpt-Args: "))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    v.sort();
    v
}

/// A fault server, without SMTPUTF8 where `no_utf8`, and an Env relaying to it: the
/// server's scratch Env, the server, the relaying Env; None where the server is not
/// available.
fn utf8_peer(no_utf8: bool) -> Option<(Env, Peer, Env)> {
    let envs: &[(&str, &str)] = if no_utf8 {
        &[("NO_SMTPUTF8", "1")]
    } else {
        &[]
    };
    let (scratch, peer) = start_peer(envs)?;
    let env = relay_env(peer.port, "");
    Some((scratch, peer, env))
}

/// VERP senders for local parts that need quoting, in the recipient and in the sender,
/// by `-XV` and by `O Verp`: every MAIL FROM is an RFC 5321 Mailbox, the whole new local
/// part quoted (as Postfix writes its internal form on the wire), never a quoted string
/// pasted inside a dot-string.
#[test]
fn verp_senders_are_quoted_whole_when_they_must_be() {
    for (how, conf) in [("-XV", ""), ("O Verp", "O Verp=true\n")] {
        let (env0, env1) = (Env::new(), Env::new());
        let (Some(sink), Some(sink1)) = (Sink::start(&env0.dir, &[]), Sink::start(&env1.dir, &[]))
        else {
            return;
        };
        let env = relay_env(sink.port, conf);
        let env1 = relay_env(sink1.port, conf);
        let mut args = vec!["-odi", "-f", "list-bounces@remote.example"];
        if conf.is_empty() {
            args.insert(0, "-XV");
        }
        args.extend([
            "\"a@b\"@remote.example",
            "a..b@remote.example",
            "\"q x\"@remote.example",
        ]);
        env.sendmail(&args, MSG).code(0);
        assert_eq!(
            envelopes(&sink),
            [
                "X-Mail-Args: <\"list-bounces+a..b=remote.example\"@remote.example> | X-Rcpt-Args: <\"a..b\"@remote.example>",
                "X-Mail-Args: <\"list-bounces+a@b=remote.example\"@remote.example> | X-Rcpt-Args: <\"a@b\"@remote.example>",
                "X-Mail-Args: <\"list-bounces+q x=remote.example\"@remote.example> | X-Rcpt-Args: <\"q x\"@remote.example>",
            ],
            "{how}"
        );
        let mut args = vec!["-odi", "-f", "\"list bounces\"@remote.example"];
        if conf.is_empty() {
            args.insert(0, "-XV");
        }
        args.push("v1@remote.example");
        env1.sendmail(&args, MSG).code(0);
        assert_eq!(
            envelopes(&sink1),
            [
                "X-Mail-Args: <\"list bounces+v1=remote.example\"@remote.example> | X-Rcpt-Args: <v1@remote.example>"
            ],
            "{how}"
        );
    }
}

/// `-XV` to a server without XVERP (smtp-sink): one transaction per recipient, each from
/// `sender+user=domain@origin` (Postfix's form); `-XV-=` chooses the delimiters, and
/// `O VerpDelimiters=` the default ones. The request survives the queue. `-X file` is
/// still the traffic log, beside it.
#[test]
fn verp_one_transaction_per_recipient_without_xverp() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    let log = env.dir.join("traffic");
    let log_arg = format!("-X{}", log.display());
    env.sendmail(
        &[
            "-odi",
            "-XV",
            &log_arg,
            "-f",
            "list-bounces@list.example",
            "a@example.org",
            "b@example.net",
        ],
        MSG,
    )
    .code(0);
    assert_eq!(
        envelopes(&sink),
        [
            "X-Mail-Args: <list-bounces+a=example.org@list.example> | X-Rcpt-Args: <a@example.org>",
            "X-Mail-Args: <list-bounces+b=example.net@list.example> | X-Rcpt-Args: <b@example.net>",
        ]
    );
    let traffic = fs::read_to_string(&log).unwrap();
    assert!(
        traffic.contains("MAIL From:<list-bounces+b=example.net@list.example>"),
        "{traffic}"
    );
    assert!(!env.dir.join("V").exists() && !env0.dir.join("V").exists());
    // With -v: one connection, announced as reused only before the second transaction.
    let r = env.sendmail(
        &[
            "-v",
            "-XV",
            "-f",
            "l@o.example",
            "e@example.org",
            "f@example.org",
        ],
        MSG,
    );
    r.code(0);
    assert_eq!(
        r.stdout.matches("Connecting to [127.0.0.1]").count(),
        1,
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.matches("Using cached ESMTP connection").count(),
        1,
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(">>> MAIL From:<l+f=example.org@o.example>"),
        "{}",
        r.stdout
    );

    // Queued first, sent by a queue run: the request is in the queue file. The
    // delimiters are the message's own.
    let env = relay_env(sink.port, "O VerpDelimiters=-=\n");
    env.sendmail(&["-odq", "-XV", "-f", "l@o.example", "c@example.org"], MSG)
        .code(0);
    assert!(
        env.only_entry().contains("\nverp -=\n"),
        "{}",
        env.only_entry()
    );
    env.sendmail(
        &["-odq", "-XV+=", "-f", "l@o.example", "d@example.org"],
        MSG,
    )
    .code(0);
    env.sendmail(&["-qf"], b"").code(0);
    let all = envelopes(&sink);
    assert!(
        all.contains(
            &"X-Mail-Args: <l-c=example.org@o.example> | X-Rcpt-Args: <c@example.org>".to_string()
        ),
        "{all:?}"
    );
    assert!(
        all.contains(
            &"X-Mail-Args: <l+d=example.org@o.example> | X-Rcpt-Args: <d@example.org>".to_string()
        ),
        "{all:?}"
    );
}

/// `-XV` to a server that offers XVERP: one transaction with `XVERP=+=` and the
/// sender as given; the server makes the senders.
#[test]
fn verp_passes_xverp_to_a_server_that_offers_it() {
    let Some((_scratch, peer)) = start_peer(&[("XVERP", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &[
            "-odi",
            "-XV",
            "-f",
            "list@l.example",
            "a@example.org",
            "b@example.net",
        ],
        MSG,
    )
    .code(0);
    let m = peer.messages();
    assert_eq!(m.len(), 1, "{m:?}");
    let j = &m[0].0;
    assert!(j.contains("\"mail_from\": \"list@l.example\""), "{j}");
    assert_passed_on(j, "+=", "a@example.org", "b@example.net");
    // Without -XV, no XVERP.
    env.sendmail(&["-odi", "-f", "list@l.example", "c@example.org"], MSG)
        .code(0);
    let m = peer.messages();
    assert_eq!(m.len(), 2);
    assert!(!m[1].0.contains("XVERP"), "{}", m[1].0);
}

/// The peer's record `j` of one transaction holds `XVERP=delimiters` and both
/// recipients.
fn assert_passed_on(j: &str, delimiters: &str, a: &str, b: &str) {
    assert!(j.contains(&format!("\"XVERP={delimiters}\"")), "{j}");
    assert!(j.contains(a) && j.contains(b), "{j}");
}

/// One SMTP transaction, as a mailing list's software sends it (from this host's own
/// domain, `test.example`, whose existence the server does not look up): EHLO (whose reply is
/// returned), `MAIL FROM:<sender> PARAMS`, the recipients, the message, QUIT.
fn smtp_dialogue(sender_and_params: &str, rcpts: &[&str]) -> String {
    let mut d = format!("EHLO list.example\r\nMAIL FROM:{sender_and_params}\r\n");
    for r in rcpts {
        d.push_str(&format!("RCPT TO:<{r}>\r\n"));
    }
    d.push_str("DATA\r\nSubject: list post\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    d
}

/// The same dialogue over a connection to a daemon: each reply's last line, the EHLO
/// reply whole.
fn smtp_over(port: u16, sender_and_params: &str, rcpts: &[&str]) -> Vec<String> {
    let mut c = Raw::connect(port);
    c.line();
    let mut out = c.reply_to("EHLO list.example");
    out.push(c.cmd(&format!("MAIL FROM:{sender_and_params}")));
    for r in rcpts {
        out.push(c.cmd(&format!("RCPT TO:<{r}>")));
    }
    out.push(c.cmd("DATA"));
    c.send(b"Subject: list post\r\n\r\nbody\r\n.\r\n");
    out.push(c.line());
    out.push(c.cmd("QUIT"));
    out
}

/// XVERP over SMTP (`-bs`, `-bd`), as Postfix's smtpd takes it: EHLO offers it to a
/// local client, `XVERP=xy` / `XVERP` in MAIL queue the VERP request with the message,
/// and the deliverer makes one transaction per recipient from a VERP sender to a
/// server without XVERP (smtp-sink). Bad delimiters and the null sender are refused.
#[test]
fn xverp_over_smtp_is_queued_and_delivered_verp_style() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "O VerpDelimiters=-=\n");
    let r = env.sendmail(
        &["-bs", "-odi"],
        smtp_dialogue(
            "<list-bounces@test.example> XVERP=+=",
            &["a@example.org", "b@example.net"],
        )
        .as_bytes(),
    );
    r.code(0);
    assert!(r.stdout.contains("\r\n250-XVERP\r\n"), "{}", r.stdout);
    assert_eq!(
        envelopes(&sink),
        [
            "X-Mail-Args: <list-bounces+a=example.org@test.example> | X-Rcpt-Args: <a@example.org>",
            "X-Mail-Args: <list-bounces+b=example.net@test.example> | X-Rcpt-Args: <b@example.net>",
        ]
    );
    // Bad delimiters, the null sender: refused at MAIL, with the reason.
    let r = env.sendmail(
        &["-bs", "-odq"],
        b"EHLO c\r\nMAIL FROM:<l@test.example> XVERP=a@\r\n\
          MAIL FROM:<> XVERP\r\nQUIT\r\n",
    );
    assert!(
        r.stdout
            .contains("501 5.5.4 XVERP needs two characters from -=+ (got \"a@\")\r\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("503 5.5.4 XVERP requires a sender other than the null sender <>\r\n"),
        "{}",
        r.stdout
    );
    assert!(env.entries().is_empty());

    // -bd: a bare XVERP takes `O VerpDelimiters=`.
    let d = Daemon::start(&env, &["-odi"]);
    let replies = smtp_over(
        d.port,
        "<l@test.example> XVERP",
        &["c@example.org", "d@example.org"],
    );
    assert!(replies.contains(&"250-XVERP".to_string()), "{replies:?}");
    assert!(
        replies.iter().any(|l| l.starts_with("250 2.0.0 ")),
        "{replies:?}"
    );
    wait_until(Duration::from_secs(20), "the VERP deliveries", || {
        envelopes(&sink).len() == 4
    });
    let all = envelopes(&sink);
    for want in [
        "X-Mail-Args: <l-c=example.org@test.example> | X-Rcpt-Args: <c@example.org>",
        "X-Mail-Args: <l-d=example.org@test.example> | X-Rcpt-Args: <d@example.org>",
    ] {
        assert!(all.contains(&want.to_string()), "{all:?}");
    }
}

/// A client the daemon does not relay for is not offered XVERP, and its XVERP is an
/// unrecognised parameter, as sendmail answers every XVERP (compat-tests/differences/
/// bs-xverp).
#[test]
fn xverp_is_not_offered_to_untrusted_clients() {
    let env = Env::with_config("O TrustedNetworks=10.9.9.9/32\nO RelayDomains=example.org\n");
    let d = Daemon::start(&env, &["-odq"]);
    let mut c = Raw::connect(d.port);
    c.line();
    let ehlo = c.reply_to("EHLO c");
    assert!(!ehlo.iter().any(|l| l.contains("XVERP")), "{ehlo:?}");
    assert_eq!(
        c.cmd("MAIL FROM:<l@test.example> XVERP"),
        "555 5.5.4 XVERP parameter unrecognized"
    );
    c.cmd("QUIT");
}

/// XVERP over SMTP to a next hop that offers XVERP (the aiosmtpd server): the request
/// is passed on in one transaction (`XVERP=xy`), over `-bs` and `-bd`.
#[test]
fn xverp_over_smtp_is_passed_on_to_a_server_that_offers_it() {
    let Some((_scratch, peer)) = start_peer(&[("XVERP", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &["-bs", "-odi"],
        smtp_dialogue(
            "<list@test.example> XVERP=-=",
            &["a@example.org", "b@example.net"],
        )
        .as_bytes(),
    )
    .code(0);
    let m = peer.messages();
    assert_eq!(m.len(), 1, "{m:?}");
    let j = &m[0].0;
    assert!(j.contains("\"mail_from\": \"list@test.example\""), "{j}");
    assert_passed_on(j, "-=", "a@example.org", "b@example.net");

    let d = Daemon::start(&env, &["-odi"]);
    smtp_over(
        d.port,
        "<list@test.example> XVERP",
        &["c@example.org", "d@example.net"],
    );
    let m = peer.wait_for(2, Duration::from_secs(20));
    let j = &m[1].0;
    assert_passed_on(j, "+=", "c@example.org", "d@example.net");
    // Without XVERP, nothing is passed on.
    smtp_over(d.port, "<list@test.example>", &["e@example.org"]);
    let m = peer.wait_for(3, Duration::from_secs(20));
    assert!(!m[2].0.contains("XVERP"), "{}", m[2].0);
}

/// `O Verp=true` VERPs every message with a sender, from the command line or over SMTP;
/// a report (null sender) stays as it is. `-XV` with the null sender is refused before the message is read, nothing
/// queued (exit 64).
#[test]
fn verp_by_option_and_never_for_the_null_sender() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "O Verp=true\n");
    env.sendmail(&["-odi", "-f", "l@o.example", "a@example.org"], MSG)
        .code(0);
    env.sendmail(&["-odi", "-f", "<>", "b@example.org"], MSG)
        .code(0);
    assert_eq!(
        envelopes(&sink),
        [
            "X-Mail-Args: <> | X-Rcpt-Args: <b@example.org>",
            "X-Mail-Args: <l+a=example.org@o.example> | X-Rcpt-Args: <a@example.org>",
        ]
    );
    // A message taken over SMTP too (the null sender again left alone).
    env.sendmail(
        &["-bs", "-odi"],
        smtp_dialogue("<s@test.example>", &["e@example.org"]).as_bytes(),
    )
    .code(0);
    env.sendmail(
        &["-bs", "-odi"],
        smtp_dialogue("<>", &["f@example.org"]).as_bytes(),
    )
    .code(0);
    let all = envelopes(&sink);
    for want in [
        "X-Mail-Args: <s+e=example.org@test.example> | X-Rcpt-Args: <e@example.org>",
        "X-Mail-Args: <> | X-Rcpt-Args: <f@example.org>",
    ] {
        assert!(all.contains(&want.to_string()), "{all:?}");
    }
    let r = env.sendmail(&["-odq", "-XV", "-f", "<>", "c@example.org"], MSG);
    r.code(64);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("-XV requires a sender"), "{said}");
    assert!(env.entries().is_empty());
    // Bad delimiters in the option are refused like any bad value.
    let r = env.sendmail(&["-O", "VerpDelimiters=@@", "-odq", "c@example.org"], MSG);
    r.code(64);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("Invalid value for VerpDelimiters: @@"),
        "{said}"
    );
}

/// `-X` with a value that begins with `V` is a VERP request, attached or apart (as
/// Postfix's sendmail reads it): delimiters that are not two of `-=+` are refused with
/// EX_USAGE and nothing is queued, never taken for a traffic log file named `V...` in the
/// current directory (with the mail then sent without VERP).
#[test]
fn bad_xv_delimiters_are_refused_not_a_traffic_log() {
    let env = Env::new();
    let conf = env.conf.to_str().unwrap().to_string();
    let run = |x: &[&str]| {
        let mut args = vec!["-C", &conf, "-odq", "-f", "l-b@list.example"];
        args.extend_from_slice(x);
        args.push("a@example.org");
        let out = std::process::Command::new(env.link("sendmail"))
            .args(&args)
            .current_dir(&env.dir)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        env.finish(&env.link("sendmail"), &args, out)
    };
    let v_files = || -> Vec<String> {
        fs::read_dir(&env.dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with('V'))
            .collect()
    };
    for x in [
        &["-XVab"][..],
        &["-XV+"],
        &["-XV="],
        &["-XV+=-"],
        &["-X", "Vab"],
        &["-X", "V+=-"],
        &["-XVlog"],
    ] {
        let r = run(x);
        r.code(64);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(
            said.contains("Invalid -XV delimiters (") && said.contains("two characters from -=+"),
            "{x:?}: {said}"
        );
        assert!(env.entries().is_empty(), "{x:?}");
        assert!(v_files().is_empty(), "{x:?}: {:?}", v_files());
    }
    // Given apart, `V` alone is VERP as attached: queued with the request, no file.
    run(&["-X", "V"]).code(0);
    let entry = env.only_entry();
    assert!(entry.contains("\nverp +=\n"), "{entry}");
    assert!(v_files().is_empty(), "{:?}", v_files());
}

/// `O SortByDomain=true`: one transaction's RCPTs grouped by domain, the domains in
/// order from their top label; without it, sendmail's order (the reverse of the
/// command line).
#[test]
fn recipients_sorted_by_domain_on_request() {
    let args = [
        "-odi",
        "a@b.example.org",
        "b@example.net",
        "c@example.org",
        "d@b.example.org",
        "e@example.net",
    ];
    let rcpts = |t: &str| -> Vec<String> {
        t.lines()
            .filter_map(|l| l.split_once(" RCPT ").map(|(_, r)| r.trim().to_string()))
            .collect()
    };
    for (extra, want) in [
        (
            "",
            [
                "e@example.net",
                "d@b.example.org",
                "c@example.org",
                "b@example.net",
                "a@b.example.org",
            ],
        ),
        (
            "O SortByDomain=true\n",
            [
                "e@example.net",
                "b@example.net",
                "c@example.org",
                "d@b.example.org",
                "a@b.example.org",
            ],
        ),
    ] {
        let Some((_scratch, peer)) = start_peer(&[]) else {
            return;
        };
        let env = relay_env(peer.port, extra);
        env.sendmail(&args, MSG).code(0);
        assert_eq!(rcpts(&peer.transcript()), want, "{extra:?}");
    }
}

/// `O SmarthostSplit=3` with three relays, one of them down (a closed port): one
/// message's nine recipients are cut into three runs, each starting at another relay;
/// the run whose relay is down goes to the next one. Every recipient arrives once, and
/// both live relays took a share. `O SmarthostRandom=true` changes the order only.
#[test]
fn one_message_split_over_several_relays_with_one_down() {
    let env0 = Env::new();
    let dead = crate::harness::closed_tcp_port();
    let rcpts: Vec<String> = (1..=9).map(|n| format!("r{n}@example.org")).collect();
    for random in ["false", "true"] {
        let (a_dir, b_dir) = (
            env0.dir.join(format!("a-{random}")),
            env0.dir.join(format!("b-{random}")),
        );
        fs::create_dir_all(&a_dir).unwrap();
        fs::create_dir_all(&b_dir).unwrap();
        let (Some(a), Some(b)) = (Sink::start(&a_dir, &[]), Sink::start(&b_dir, &[])) else {
            return;
        };
        let env = Env::with_config(&format!(
            "SMARTHOST 127.0.0.1:{} 127.0.0.1:{dead} 127.0.0.1:{}\nO SmarthostSplit=3\nO SmarthostRandom={random}\nO MaxConnections=1\n",
            a.port, b.port
        ));
        let mut args = vec!["-odi"];
        args.extend(rcpts.iter().map(String::as_str));
        env.sendmail(&args, MSG).code(0);
        let got = |s: &Sink| -> Vec<String> {
            s.dumps()
                .iter()
                .flat_map(|d| {
                    d.lines()
                        .filter_map(|l| l.strip_prefix("X-Rcpt-Args: <"))
                        .map(|r| r.trim_end_matches('>').to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let (got_a, got_b) = (got(&a), got(&b));
        let mut all: Vec<String> = got_a.iter().chain(&got_b).cloned().collect();
        all.sort();
        let mut want = rcpts.clone();
        want.sort();
        assert_eq!(all, want, "random={random}");
        if random == "false" {
            assert!(
                got_a.len() >= 3 && got_b.len() >= 3,
                "not spread: {got_a:?} {got_b:?}"
            );
        }
        assert!(env.entries().is_empty());
    }
}

/// A relay-table line `domain mx:` sends that domain to its MX hosts (dnsmasq answers
/// for them) while everything else still goes through SMARTHOST; `-bv` says so.
#[test]
fn relay_table_entry_for_delivery_by_mx() {
    if !have_peer() {
        return;
    }
    let env0 = Env::new();
    let Some(dns) = DnsServer::start(
        &env0.dir,
        &[
            "--mx-host=direct.test,mx.direct.test,10",
            "--host-record=mx.direct.test,127.0.0.1",
        ],
    ) else {
        return;
    };
    let Some(smart) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let mx = Peer::start(&env0.dir, &[]);
    let table = env0.dir.join("relays");
    fs::write(&table, "direct.test mx:\n").unwrap();
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1:{}\nRELAYTABLE {}\nRESOLVER 127.0.0.1:{}\nO MXPort={}\nO Timeout.connect=5s\n",
        smart.port,
        table.display(),
        dns.port,
        mx.port
    ));
    env.sendmail(&["-odi", "a@direct.test", "b@elsewhere.example"], MSG)
        .code(0);
    let m = mx.messages();
    assert_eq!(m.len(), 1, "{}", mx.transcript());
    assert!(m[0].0.contains("[\"a@direct.test\"]"), "{}", m[0].0);
    assert_eq!(
        envelopes(&smart),
        ["X-Mail-Args: <root@test.example> | X-Rcpt-Args: <b@elsewhere.example>"]
    );
    assert!(dns.queries().join("\n").contains("query[MX] direct.test"));
    env.sendmail(&["-bv", "a@direct.test"], b"")
        .code(0)
        .stdout_is(
            "a@direct.test... deliverable: mailer esmtp, host direct.test., user a@direct.test\n",
        );
}

/// A report rsendmail makes on a VERP message goes to the sender made for the failed
/// recipient, one report per recipient (Postfix's `disable_verp_bounces = no`).
#[test]
fn verp_reports_go_to_each_recipients_sender() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &[
            "-odi",
            "-XV",
            "-f",
            "l@o.example",
            "reject5a@example.org",
            "reject5b@example.net",
            "ok@example.org",
        ],
        MSG,
    );
    let m = peer.wait_for(3, std::time::Duration::from_secs(10));
    let all: Vec<&String> = m.iter().map(|(j, _)| j).collect();
    let reports: Vec<&String> = all
        .iter()
        .copied()
        .filter(|j| j.contains("\"mail_from\": \"<>\""))
        .collect();
    assert_eq!(reports.len(), 2, "{all:?}");
    for to in [
        "l+reject5a=example.org@o.example",
        "l+reject5b=example.net@o.example",
    ] {
        assert!(
            reports.iter().any(|j| j.contains(&format!("[\"{to}\"]"))),
            "{to}: {reports:?}"
        );
    }
}

/// RELAYTABLE entries written with a trailing dot or in capitals match the domain and
/// (for `.domain`) its subdomains as written in any case or with a trailing dot; the rest
/// goes through the smarthost (smtp-sink as both).
#[test]
fn relay_table_domains_match_whatever_the_case_or_trailing_dot() {
    let env0 = Env::new();
    let Some(smart) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let Some(table_relay) = Sink::start(&env0.dir.join("t"), &[]) else {
        return;
    };
    let table = env0.dir.join("relays");
    fs::write(
        &table,
        format!(
            "Trail.Example. 127.0.0.1:{p}\n.Sub.Example. 127.0.0.1:{p}\n",
            p = table_relay.port
        ),
    )
    .unwrap();
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1:{}\nRELAYTABLE {}\n",
        smart.port,
        table.display()
    ));
    env.sendmail(
        &[
            "-odi",
            "a@trail.example",
            "b@x.sub.example",
            "c@other.example",
        ],
        MSG,
    )
    .code(0);
    let through_table = envelopes(&table_relay);
    assert_eq!(through_table.len(), 1, "{through_table:?}");
    for rcpt in [
        "X-Rcpt-Args: <a@trail.example>",
        "X-Rcpt-Args: <b@x.sub.example>",
    ] {
        assert!(through_table[0].contains(rcpt), "{through_table:?}");
    }
    assert_eq!(
        envelopes(&smart),
        ["X-Mail-Args: <root@test.example> | X-Rcpt-Args: <c@other.example>"]
    );
}

/// To a server without SMTPUTF8, an address whose only non-ASCII part is its domain goes
/// with the domain's A-labels (RFC 5891, RFC 6531 §3.2), sender and recipients alike;
/// only an address with a non-ASCII local part needs SMTPUTF8 and fails.
#[test]
fn idn_domains_go_as_a_labels_without_smtputf8() {
    let Some((_scratch, peer)) = start_peer(&[("NO_SMTPUTF8", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &[
            "-odi",
            "-f",
            "s@bücher.example",
            "c@bücher.example",
            "jörg@bücher.example",
            "ok@example.org",
        ],
        MSG,
    )
    .code(67);
    let msgs = peer.messages();
    // The message, and the report for jörg@ to the sender, also by its A-labels.
    assert_eq!(msgs.len(), 2, "{}", peer.transcript());
    let j = &msgs[0].0;
    assert!(
        j.contains("\"mail_from\": \"s@xn--bcher-kva.example\""),
        "{j}"
    );
    assert!(
        j.contains("\"rcpt_tos\": [\"ok@example.org\", \"c@xn--bcher-kva.example\"]"),
        "{j}"
    );
    assert!(!j.contains("SMTPUTF8"), "{j}");
    let report = &msgs[1].0;
    assert!(
        report.contains("\"rcpt_tos\": [\"s@xn--bcher-kva.example\"]"),
        "{report}"
    );
    assert!(
        !peer.transcript().contains("j\u{f6}rg@"),
        "{}",
        peer.transcript()
    );
}

/// `-XV` with a recipient whose domain has U-labels, to a server without SMTPUTF8: the
/// VERP sender encodes the recipient's domain as its A-labels, as the recipient itself
/// goes, so the server takes the sender and the message is delivered.
#[test]
fn verp_sender_of_a_u_label_domain_goes_as_a_labels_without_smtputf8() {
    let Some((_scratch, peer)) = start_peer(&[("NO_SMTPUTF8", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &[
            "-odi",
            "-XV",
            "-f",
            "list-bounces@list.example",
            "user@\u{fc}.example",
        ],
        MSG,
    )
    .code(0);
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 1, "{}", peer.transcript());
    let j = &msgs[0].0;
    assert!(
        j.contains("\"mail_from\": \"list-bounces+user=xn--tda.example@list.example\""),
        "{j}"
    );
    assert!(
        j.contains("\"rcpt_tos\": [\"user@xn--tda.example\"]"),
        "{j}"
    );
    assert!(
        !peer.transcript().contains('\u{fc}'),
        "{}",
        peer.transcript()
    );
}

/// `-XV` to a server that refuses local parts over RFC 5321's 64 octets (the peer's
/// STRICT): a recipient whose VERP sender's local part would be longer gets the plain
/// sender, and `-v` says why; the other recipient gets its VERP sender. Both messages
/// are delivered (Postfix would send the long sender, and this server would refuse it).
#[test]
fn verp_sender_over_64_octets_falls_back_to_the_plain_sender() {
    let Some((_scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let long = format!("{}@example.org", "u".repeat(50));
    let r = env.sendmail(
        &[
            "-v",
            "-XV",
            "-f",
            "list-bounces@list.example",
            "short@example.org",
            &long,
        ],
        MSG,
    );
    r.code(0);
    assert!(
        r.stdout.contains(&format!(
            "{long}... VERP sender not used: its local part would be 75 octets, over \
             RFC 5321's 64; sent from <list-bounces@list.example>"
        )),
        "{}",
        r.stdout
    );
    let mut froms: Vec<String> = peer
        .messages()
        .iter()
        .map(|(j, _)| {
            j.split("\"mail_from\": \"")
                .nth(1)
                .and_then(|t| t.split('"').next())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    froms.sort();
    assert_eq!(
        froms,
        [
            "list-bounces+short=example.org@list.example",
            "list-bounces@list.example"
        ],
        "{}",
        peer.transcript()
    );
}

/// A smarthost that is this host's own daemon (the same MAILNAME): the mail would loop
/// back here. sendmail's check of the server's EHLO reply (its first word against this
/// host's name) is made: the recipient fails at once with `553 5.3.5 system config
/// error`, the report's transcript says `[127.0.0.1] config error: mail loops back to
/// me (MX problem?)`, the exit status is 70 (compat-tests/cases/loop-ehlo-self-*), and
/// the message never reaches the daemon, instead of going round until `Too many hops`.
/// A queue run's `-v` says so before QUIT; an interactive `-v` does not, as sendmail's.
#[test]
fn a_smarthost_that_is_this_host_loops_back() {
    let env = Env::new();
    let d = Daemon::start(&env, &["-odi"]);
    env.add_config(&format!("SMARTHOST 127.0.0.1\nPORT {}\n", d.port));
    let r = env.sendmail(&["-odi", "-f", "s@example.org", "r@example.org"], MSG);
    r.code(70);
    // The exit status is 70 (EX_SOFTWARE): the postmaster gets a copy of the report, as
    // sendmail's (recorded: `prog-exit-70-postmaster-*`). The report to s@example.org
    // goes the same way and loops too: its failure comes to the postmaster as well.
    let mailbox = env.dir.join("mail/root");
    let read = || fs::read_to_string(&mailbox).unwrap_or_default();
    let count = |got: &str| got.matches("\nFrom ").count() + usize::from(got.starts_with("From "));
    wait_until(Duration::from_secs(60), "the postmaster's reports", || {
        count(&read()) >= 2
    });
    env.wait_until_empty(Duration::from_secs(60));
    let got = read();
    assert_eq!(count(&got), 2, "{got}");
    // The first is the copy, to the postmaster and the sender.
    let first = got.split("\nFrom ").next().unwrap_or_default();
    assert!(first.contains("\nTo: postmaster@"), "{got}");
    assert!(first.contains("\nTo: s@example.org"), "{got}");
    for line in [
        "553 5.3.5 [127.0.0.1] config error: mail loops back to me (MX problem?)",
        "Status: 5.3.5",
        "Diagnostic-Code: SMTP; 553 5.3.5 system config error",
    ] {
        assert!(got.contains(line), "{line}\n{got}");
    }
    assert!(!got.contains("Too many hops"), "{got}");

    // A queue run's transcript, then an interactive one.
    env.sendmail(&["-odq", "-f", "s@example.org", "r2@example.org"], MSG)
        .code(0);
    let r = env.sendmail(&["-q", "-v"], b"");
    r.code(70);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let at = |l: &str| lines.iter().position(|x| *x == l);
    let said = at("[127.0.0.1] config error: mail loops back to me (MX problem?)");
    let quit = at(">>> QUIT");
    let failed = at("Local configuration error");
    assert!(
        said.is_some() && said < quit && quit < failed,
        "{}",
        r.stdout
    );
    let r = env.sendmail(&["-v", "-f", "s@example.org", "r3@example.org"], MSG);
    r.code(70);
    assert!(r.stdout.contains(">>> QUIT"), "{}", r.stdout);
    assert!(!r.stdout.contains("config error"), "{}", r.stdout);
    drop(d);
}

/// The loop check of the server's EHLO reply holds for every route, not only SMARTHOST:
/// an MX host (dnsmasq names it; its name is not this host's, so the MX list itself
/// does not point back here) and a RELAYTABLE host that are this host's own daemon. The
/// recipient fails at once with `553 5.3.5 system config error`, the report (to the
/// local sender) says `... config error: mail loops back to me (MX problem?)`, the
/// exit status is 70, and nothing stays queued or reaches the daemon's queue.
#[test]
fn an_mx_or_relay_table_host_that_is_this_host_loops_back() {
    let env0 = Env::new();
    let Some(dns) = DnsServer::start(
        &env0.dir,
        &[
            "--mx-host=mxloop.test,mx.mxloop.test,10",
            "--host-record=mx.mxloop.test,127.0.0.1",
        ],
    ) else {
        return;
    };
    for by_mx in [true, false] {
        let env = Env::new();
        let d = Daemon::start(&env, &["-odq"]);
        let table = env.dir.join("relays");
        fs::write(&table, format!("rtloop.test 127.0.0.1:{}\n", d.port)).unwrap();
        env.add_config(&format!(
            "RESOLVER 127.0.0.1:{}\nO MXPort={}\nRELAYTABLE {}\nO Timeout.connect=5s\n",
            dns.port,
            d.port,
            table.display()
        ));
        // An MX host is named by its address, as the connection to it is.
        let rcpt = if by_mx {
            "r@mxloop.test"
        } else {
            "r@rtloop.test"
        };
        let host = "[127.0.0.1]";
        env.sendmail(&["-odi", rcpt], MSG).code(70);
        let got = fs::read_to_string(env.dir.join("mail/root")).unwrap_or_default();
        for line in [
            format!("553 5.3.5 {host} config error: mail loops back to me (MX problem?)"),
            "Status: 5.3.5".to_string(),
            "Diagnostic-Code: SMTP; 553 5.3.5 system config error".to_string(),
        ] {
            assert!(got.contains(&line), "{by_mx}: {line}\n{got}");
        }
        assert_eq!(got.matches("\nStatus: ").count(), 1, "{by_mx}: {got}");
        assert!(env.entries().is_empty(), "{by_mx}: {}", env.listing());
        drop(d);
    }
}

/// One mailbox written with its domain's U-labels and with its A-labels (any case of the
/// U-labels) is one recipient: one RCPT, from the command line, from `-t` and over `-bs`
/// alike, to a server without SMTPUTF8 (which would otherwise be sent
/// `RCPT TO:<u@xn--bcher-kva.example>` twice: one message delivered twice) and to one
/// with it.
#[test]
fn a_mailbox_in_both_forms_of_its_idn_domain_is_one_recipient() {
    for no_utf8 in [true, false] {
        let Some((_scratch, peer, env)) = utf8_peer(no_utf8) else {
            return;
        };
        let argv = [
            "-odi",
            "u@bücher.example",
            "u@xn--bcher-kva.example",
            "u@B\u{dc}CHER.example",
        ];
        env.sendmail(&argv, MSG).code(0);
        env.sendmail(
            &["-odi", "-t"],
            "To: u@xn--bcher-kva.example, u@bücher.example\nCc: <u@Bücher.example>\nSubject: t\n\nb\n"
                .as_bytes(),
        )
        .code(0);
        let bs = "EHLO c.example\r\nMAIL FROM:<root@test.example>\r\n\
                  RCPT TO:<u@bücher.example>\r\nRCPT TO:<u@xn--bcher-kva.example>\r\n\
                  DATA\r\nSubject: bs\r\n\r\nb\r\n.\r\nQUIT\r\n";
        let said = env.sendmail(&["-bs", "-odi"], bs.as_bytes());
        let msgs = peer.wait_for(3, Duration::from_secs(120));
        assert_eq!(msgs.len(), 3, "{}\n{}", said.stdout, peer.transcript());
        for (j, _) in &msgs {
            let want = if no_utf8 {
                "\"rcpt_tos\": [\"u@xn--bcher-kva.example\"]".to_string()
            } else {
                "\"rcpt_tos\": [\"u@".to_string()
            };
            assert!(j.contains(&want), "{j}");
            let rcpts = j.split("\"rcpt_tos\": [").nth(1).unwrap_or("");
            let rcpts = rcpts.split(']').next().unwrap_or("");
            assert_eq!(rcpts.matches("\"u@").count(), 1, "{j}");
        }
    }
}

/// A delivery report about a UTF-8 recipient (a non-ASCII local part, or U-labels)
/// holds 8-bit text and says so: `BODY=8BITMIME` in its MAIL FROM, an 8bit
/// Content-Transfer-Encoding in its header and on the parts that hold it; never
/// undeclared 8-bit. Its delivery-status fields name the recipient as RFC 6533's
/// `utf-8` type: as it is in the `message/global-delivery-status` a server offering
/// SMTPUTF8 gets, in US-ASCII (`\x{FC}`) to one without. The `From:` rsendmail writes for a U-label sender has its
/// A-labels (the form a server without SMTPUTF8 takes).
#[test]
fn reports_about_utf8_recipients_declare_their_8bit_text() {
    for (no_utf8, sender, rcpt, from, field) in [
        (
            false,
            "s@example.org",
            "reject5.j\u{f6}rg@example.org",
            "From: s@example.org",
            "Final-Recipient: utf-8; reject5.j\u{f6}rg@example.org",
        ),
        (
            true,
            "s@b\u{fc}cher.example",
            "reject5.u@b\u{fc}cher.example",
            "From: s@xn--bcher-kva.example",
            "Final-Recipient: utf-8; reject5.u@b\\x{FC}cher.example",
        ),
    ] {
        let Some((_scratch, peer, env)) = utf8_peer(no_utf8) else {
            return;
        };
        env.sendmail(&["-odi", "-f", sender, rcpt, "ok@example.org"], MSG);
        let msgs = peer.wait_for(2, Duration::from_secs(120));
        assert_eq!(msgs.len(), 2, "{}", peer.transcript());
        let (j, original) = &msgs[0];
        let original = String::from_utf8_lossy(original);
        assert!(j.contains("ok@example.org"), "{j}");
        assert!(original.contains(from), "{original}");
        let (j, report) = &msgs[1];
        let report = String::from_utf8_lossy(report);
        assert!(j.contains("\"mail_from\": \"<>\""), "{j}");
        assert!(j.contains("BODY=8BITMIME"), "{rcpt}: {j}");
        let (head, body) = report.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.contains("Content-Transfer-Encoding: 8bit"), "{head}");
        // RFC 6533: the `utf-8` type, as it is in the internationalized report a
        // server offering SMTPUTF8 gets, in US-ASCII to any other.
        assert!(body.contains(field), "{body}");
        assert_eq!(
            body.contains("Content-Type: message/global-delivery-status"),
            !no_utf8,
            "{body}"
        );
        // Each part with 8-bit text declares it.
        for part in body.split("\r\n--").skip(1) {
            let Some((fields, text)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            assert_eq!(
                fields.contains("Content-Transfer-Encoding: 8bit"),
                !text.is_ascii(),
                "{part}"
            );
        }
    }
}
