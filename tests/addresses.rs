//! Addresses as real programs write them, through the real binaries, relayed to a
//! strict server (tests/peers/fault_server.py with STRICT=1: an RFC 5321 Mailbox in
//! every MAIL and RCPT, lines of at most 998 octets). Every source of addresses —
//! argv, `-t`, `-f`, `-bs` MAIL/RCPT, aliases — goes through one parser and one check:
//! a bad address is refused at submission with sendmail 8.17's words and exit status
//! (compat-tests `addr-*`) while the others are delivered, and nothing the relay would
//! refuse for its syntax ever reaches it. Header fields get their unqualified addresses
//! qualified like the envelope (`hdr-*`), and the fields sendmail treats specially are
//! treated so (`field-*`).

use crate::harness::Env;
use crate::harness::servers::{Daemon, Peer, Raw, relay_env, socket2_connect_from, start_peer};

use std::fs;

const MSG: &[u8] = b"Subject: compat\n\nhello\n";

/// The MAIL and RCPT addresses sent to the relay (as on the wire, before the relay
/// parses them), and every refusal the relay gave for its syntax.
fn seen(peer: &Peer) -> (Vec<String>, Vec<String>, Vec<String>) {
    let t = peer.transcript();
    let mut mail = Vec::new();
    let mut rcpt = Vec::new();
    let mut refused = Vec::new();
    let path = |arg: &str| -> String {
        let inner = arg.split_once('<').map(|(_, r)| r).unwrap_or(arg);
        inner
            .split_once('>')
            .map(|(a, _)| a)
            .unwrap_or(inner)
            .to_string()
    };
    for line in t.lines() {
        let Some((_, rest)) = line.split_once(' ') else {
            continue;
        };
        if let Some(a) = rest.strip_prefix("RAW-MAIL ") {
            mail.push(path(a));
        } else if let Some(a) = rest.strip_prefix("RAW-RCPT ") {
            rcpt.push(path(a));
        } else if rest.contains("REFUSED") {
            refused.push(rest.to_string());
        }
    }
    (mail, rcpt, refused)
}

/// The text of the one delivery report (ErrorMode m mails refusals back): in the queue,
/// or, after an interactive delivery, which sends it with the message, in the sender's
/// mailbox.
fn report(env: &Env) -> String {
    let mut reports: Vec<String> = env
        .entries()
        .iter()
        .map(|p| fs::read_to_string(p).unwrap())
        .filter(|t| t.contains("\nreport failure\n"))
        .collect();
    if let Ok(boxes) = fs::read_dir(env.dir.join("mail")) {
        for b in boxes.flatten() {
            let t = fs::read_to_string(b.path()).unwrap_or_default();
            if t.contains("Subject: Returned mail: see transcript for details") {
                reports.push(t);
            }
        }
    }
    assert_eq!(reports.len(), 1, "{}", env.listing());
    reports[0].clone()
}

#[test]
fn an_old_style_argument_is_a_list_and_blanks_never_reach_the_relay() {
    let Some((_scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    // sendmail's OldStyleHeaders: no `, ; < (` and blanks: a blank-separated list.
    env.sendmail(&["-odi", "a@example.org b@example.net"], MSG)
        .code(0)
        .stdout_is("");
    let (_, rcpt, refused) = seen(&peer);
    assert_eq!(rcpt, ["a@example.org", "b@example.net"]);
    assert!(refused.is_empty(), "{refused:?}");
    // -f with a blank: BlankSub turns it into a dot, as sendmail sends it.
    env.sendmail(&["-odi", "-f", "x y@example.net", "c@example.org"], MSG)
        .code(0);
    let (mail, _, refused) = seen(&peer);
    assert_eq!(mail.last().map(String::as_str), Some("x.y@example.net"));
    assert!(refused.is_empty(), "{refused:?}");
    let msgs = peer.wait_for(2, std::time::Duration::from_secs(10));
    let second = String::from_utf8_lossy(&msgs[1].1).into_owned();
    assert!(second.contains("\r\nFrom: x.y@example.net\r\n"), "{second}");
    // Once a list shows a comma it is not blank-separated: the blank inside the first
    // address makes it one (bad) address, refused here and never sent.
    env.sendmail(
        &["-odi", "-oem", "a@example.org b@example.net, d@example.org"],
        MSG,
    )
    .code(64)
    .stdout_is("");
    let (_, rcpt, refused) = seen(&peer);
    assert_eq!(rcpt.last().map(String::as_str), Some("d@example.org"));
    assert_eq!(rcpt.len(), 4, "{rcpt:?}");
    assert!(refused.is_empty(), "{refused:?}");
    assert!(
        report(&env).contains("a@example.org b@example.net... Invalid route address"),
        "{}",
        report(&env)
    );
}

/// Each kind of bad recipient, beside a good one: sendmail's message and exit status,
/// the good one delivered, the bad one never sent.
#[test]
fn bad_recipients_are_refused_with_sendmails_words_and_the_rest_delivered() {
    let Some((_scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let long = format!("{}@example.org", "x".repeat(600));
    // sendmail's shortenstring: the first and the last 100 characters.
    let long_shown = format!("{}...{}@example.org", "x".repeat(100), "x".repeat(88));
    let cases: &[(&str, String, i32)] = &[
        (
            "a@@example.org",
            "a@@example.org... Invalid route address".into(),
            64,
        ),
        (
            "a@example..org",
            "a@example..org... Invalid host name".into(),
            68,
        ),
        (
            "a@.example.org",
            "a@.example.org... Invalid host name".into(),
            68,
        ),
        (
            "@example.org",
            "@example.org... User address required".into(),
            64,
        ),
        ("a@", "a@... Hostname required".into(), 64),
        (
            "a@ex_ample.org",
            "a@ex_ample.org... Invalid host name".into(),
            68,
        ),
        (
            "a@-bad.example.org",
            "a@-bad.example.org... Invalid host name".into(),
            68,
        ),
        (
            "user@[300.1.1.1]",
            "user@[300.1.1.1]... Invalid host name".into(),
            68,
        ),
        (
            "a@example.org (x",
            "a@example.org (x... Unbalanced '('".into(),
            64,
        ),
        (
            "\"a@example.org",
            "\"a@example.org... Unbalanced '\"'".into(),
            64,
        ),
        (
            "bad address <",
            "bad address <... Unbalanced '<'".into(),
            64,
        ),
        (
            "a@example.org>",
            "a@example.org>... Unbalanced '>'".into(),
            64,
        ),
        (
            "a@example.org)",
            "a@example.org)... Unbalanced ')'".into(),
            64,
        ),
        (
            "<a@example.org",
            "<a@example.org... Unbalanced '<'".into(),
            64,
        ),
        // Naming no one: sendmail's local user with an empty name (badrcpt-empty-angle-*,
        // badrcpt-at-*); its report reads as an unknown user's (bounce-local-unknown).
        ("<>", "550 5.1.1 User unknown".into(), 67),
        ("Name <>", "550 5.1.1 User unknown".into(), 67),
        ("@", "550 5.1.1 User unknown".into(), 67),
        ("N <@>", "550 5.1.1 User unknown".into(), 67),
        // `<@>` without a display name is a group naming no one to sendmail's rules
        // (bv-at-angle-kind, rcpt-at-angle-*).
        (
            "<@>",
            "<@>... List:; syntax illegal for recipient addresses".into(),
            64,
        ),
        (
            "(c) < @ >",
            "(c) < @ >... List:; syntax illegal for recipient addresses".into(),
            64,
        ),
        (
            long.as_str(),
            format!("{long_shown}... prescan: token too long"),
            64,
        ),
    ];
    for (bad, text, code) in cases {
        let env = relay_env(peer.port, "");
        let before = seen(&peer).1.len();
        env.sendmail(&["-odi", "-oem", bad, "good@example.org"], MSG)
            .code(*code)
            .stdout_is("");
        let (_, rcpt, refused) = seen(&peer);
        assert_eq!(rcpt[before..], ["good@example.org"], "{bad}");
        assert!(refused.is_empty(), "{bad}: {refused:?}");
        let r = report(&env);
        if *code == 67 {
            assert!(
                r.contains(&format!("Diagnostic-Code: X-Unix; {text}\n")),
                "{bad}: {r}"
            );
        } else {
            // An address that is no address: its transcript line, with sendmail's 553
            // and its status, and no Diagnostic-Code (as a list's target refused so).
            assert!(
                r.lines()
                    .any(|l| l.starts_with("553 5.") && l.ends_with(text.as_str())),
                "{bad}: {r}"
            );
            assert!(!r.contains("Diagnostic-Code: X-Unix"), "{bad}: {r}");
        }
        // Queue-only mode: the good recipient is queued, the bad one is not.
        let env = relay_env(peer.port, "");
        env.sendmail(&["-odq", "-oeq", bad, "good@example.org"], MSG)
            .code(*code);
        let e = env.only_entry();
        assert!(e.contains("\nrcpt good@example.org\n"), "{bad}: {e}");
        assert_eq!(e.matches("\nrcpt ").count(), 1, "{bad}: {e}");
    }
    // Accepted as sendmail accepts them, normalised where sendmail normalises.
    let env = relay_env(peer.port, "");
    env.sendmail(
        &[
            "-odq",
            "a@example.org.",
            "\"john doe\"@example.org",
            "Bob <bob@example.org>",
        ],
        MSG,
    )
    .code(0)
    .stdout_is("");
    let e = env.only_entry();
    for r in [
        "\nrcpt a@example.org ",
        "\nrcpt \"john%20doe\"@example.org\n",
        "\nrcpt bob@example.org ",
    ] {
        assert!(e.contains(r), "{r}: {e}");
    }
    assert!(!e.contains("\nrcpt a@example.org."), "{e}");
}

/// Local parts sendmail takes but RFC 5321 does not are sent in their quoted form,
/// which the strict relay accepts; what the user wrote is what mailq shows.
#[test]
fn lenient_local_parts_go_out_in_rfc5321_form() {
    let Some((_scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &[
            "-odi",
            "-f",
            "s..x@example.net",
            ".a@example.org",
            "a..b@example.org",
        ],
        MSG,
    )
    .code(0)
    .stdout_is("");
    let (mail, rcpt, refused) = seen(&peer);
    assert_eq!(mail, ["\"s..x\"@example.net"]);
    // (RCPTs in sendmail's order: the reverse of the command line's.)
    assert_eq!(rcpt, ["\"a..b\"@example.org", "\".a\"@example.org"]);
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(peer.messages().len(), 1, "{}", peer.transcript());
    env.sendmail(&["-odq", "a..b@example.org"], MSG).code(0);
    let q = env.mailq(&[]);
    assert!(q.contains("\t a..b@example.org\n"), "{q}");
}

#[test]
fn header_recipients_are_checked_like_argv() {
    let Some((_scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &["-odi", "-oem", "-t"],
        b"To: a@@example.org, good@example.org\nCc: alice bob@example.org\nSubject: t\n\nbody\n",
    )
    .code(64)
    .stdout_is("");
    // Held in the queue, as sendmail holds a message whose header named a refused
    // address (compat-tests `addr-t-double-at`): a queue run delivers it.
    let (_, rcpt, _) = seen(&peer);
    assert!(rcpt.is_empty(), "{rcpt:?}");
    assert!(report(&env).contains("a@@example.org... Invalid route address"));
    env.sendmail(&["-qf"], b"").code(0);
    let (_, rcpt, refused) = seen(&peer);
    // The To: has a comma, so no list of the message is blank-separated: the Cc: is
    // one address, its blank made a dot. (RCPTs go in sendmail's order, the reverse of
    // the queue's.)
    assert_eq!(rcpt, ["alice.bob@example.org", "good@example.org"]);
    assert!(refused.is_empty(), "{refused:?}");
    assert!(report(&env).contains("a@@example.org... Invalid route address"));
    // An old-style message: blank-separated To: is two recipients, and goes out with a
    // comma (sendmail's commaize).
    env.sendmail(
        &["-odi", "-t"],
        b"To: c@example.org d@example.org\nSubject: old\n\nbody\n",
    )
    .code(0);
    let (_, rcpt, _) = seen(&peer);
    assert_eq!(rcpt[2..], ["c@example.org", "d@example.org"]);
    let msgs = peer.wait_for(2, std::time::Duration::from_secs(10));
    let m = String::from_utf8_lossy(&msgs[1].1).into_owned();
    assert!(
        m.contains("\r\nTo: c@example.org, d@example.org\r\n"),
        "{m}"
    );
}

/// A recipient naming no one (`<>`, `@`) never vanishes: from argv, from `-t` and with
/// `-bv` it is reported (`User unknown`, 67) and the others go out; a list of nothing but
/// commas is no recipient at all (compat-tests `badrcpt-*`).
#[test]
fn recipients_naming_no_one_are_reported() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &["-odi", "-oem", "-t"],
        b"To: <>, good@example.org\nCc: @\nSubject: t\n\nbody\n",
    )
    .code(67)
    .stdout_is("");
    // Held until a queue run (compat-tests `badrcpt-at-t`).
    let (_, rcpt, _) = seen(&peer);
    assert!(rcpt.is_empty(), "{rcpt:?}");
    let r = report(&env);
    env.sendmail(&["-qf"], b"").code(0);
    let (_, rcpt, _) = seen(&peer);
    assert_eq!(rcpt, ["good@example.org"]);
    assert!(r.contains("<>... User unknown"), "{r}");
    assert!(r.contains("@... User unknown"), "{r}");
    for bad in ["<>", "@"] {
        env.sendmail(&["-bv", bad], b"")
            .code(67)
            .stdout_is(&format!("{bad}... User unknown\n"));
    }
    let before = env.entries().len();
    for args in [&[","][..], &[" , ,"], &["-bv", ","]] {
        env.sendmail(args, MSG)
            .code(64)
            .stdout_is("Recipient names must be specified\n");
    }
    assert_eq!(env.entries().len(), before, "{}", env.listing());
}

#[test]
fn bs_paths_are_checked_with_sendmails_replies() {
    let env = Env::new();
    let dialogue = "HELO client\r\n\
        MAIL FROM:\r\n\
        MAIL FROM:<\r\n\
        MAIL FROM:<@a:>\r\n\
        MAIL FROM:<a@@example.org>\r\n\
        MAIL FROM:<x y@test.example>\r\n\
        RCPT TO:<a@example..org>\r\n\
        RCPT TO:<a@@example.org>\r\n\
        RCPT TO:<@example.org>\r\n\
        RCPT TO:<a@>\r\n\
        RCPT TO:<a b@example.org>\r\n\
        RCPT TO:<c@example.org.>\r\n\
        RCPT TO:<a@example.org\r\n\
        RCPT TO:<@x:>\r\n\
        RCPT TO:<\"a>b\"@example.org>\r\n\
        DATA\r\nSubject: bs\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let r = env.sendmail(&["-bs", "-odq"], dialogue.as_bytes());
    r.code(64);
    let replies: Vec<&str> = r.stdout.lines().skip(2).take(14).collect();
    assert_eq!(
        replies,
        [
            // sendmail's replies to a missing path, an unclosed `<` and a source route
            // with no mailbox: never the null sender.
            "501 5.5.2 Syntax error in parameters scanning \"FROM\"",
            "553 5.0.0 <... Unbalanced '<'",
            "553 5.1.3 <@a:>... User address required",
            "553 5.1.3 <a@@example.org>... Invalid route address",
            "250 2.1.0 <x y@test.example>... Sender ok",
            "553 5.1.2 <a@example..org>... Invalid host name",
            "553 5.1.3 <a@@example.org>... Invalid route address",
            "553 5.1.3 <@example.org>... User address required",
            "553 5.1.3 <a@>... Hostname required",
            "250 2.1.5 <a b@example.org>... Recipient ok",
            "250 2.1.5 <c@example.org.>... Recipient ok",
            "553 5.0.0 <a@example.org... Unbalanced '<'",
            "553 5.1.3 <@x:>... User address required",
            "250 2.1.5 <\"a>b\"@example.org>... Recipient ok",
        ],
        "{}",
        r.stdout
    );
    let e = env.only_entry();
    assert!(e.contains("\nsender x.y@test.example\n"), "{e}");
    assert!(e.contains("\nrcpt a.b@example.org\n"), "{e}");
    assert!(e.contains("\nrcpt c@example.org\n"), "{e}");
    assert!(e.contains("\nrcpt \"a>b\"@example.org\n"), "{e}");
    assert_eq!(e.matches("\nrcpt ").count(), 3, "{e}");
}

/// An odd MAIL path refused, then a transaction accepted in the same `-bs` session: the
/// session's exit status is sendmail's for that refusal (recorded:
/// compat-tests/cases/bs-mail-path-*): an unbalanced `<`, `>` or `"` (its prescan)
/// leaves it 0, as does nested brackets (which sendmail takes and rsendmail refuses:
/// DIFFERENCES.md); a lone `@` and a doubled `@` are usage errors, 64.
#[test]
fn bs_odd_sender_then_good_transaction_exit_status() {
    let env = Env::new();
    let table: &[(&str, &str, i32)] = &[
        ("<<a@x>>", "553 5.1.3 <<a@x>>... Nested '<' in address", 0),
        ("<a@x", "553 5.0.0 <a@x... Unbalanced '<'", 0),
        ("a@x>", "553 5.0.0 a@x>... Unbalanced '>'", 0),
        ("<\"a@x>", "553 5.0.0 <\"a@x>... Unbalanced '\"'", 0),
        (
            "<@>",
            "553 5.1.3 <@>... List:; syntax illegal for recipient addresses",
            64,
        ),
        ("<a@b@c>", "553 5.1.3 <a@b@c>... Invalid route address", 64),
    ];
    for &(path, refusal, code) in table {
        let before = env.entries().len();
        let dialogue = format!(
            "HELO client.example\r\nMAIL FROM:{path}\r\n\
             MAIL FROM:<s@test.example>\r\nRCPT TO:<ok@example.org>\r\n\
             DATA\r\nSubject: m\r\n\r\nbody\r\n.\r\nQUIT\r\n"
        );
        let r = env.sendmail(&["-bs", "-odq"], dialogue.as_bytes());
        let replies: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(
            replies.get(2).copied(),
            Some(refusal),
            "{path}: {}",
            r.stdout
        );
        assert!(
            r.stdout.contains("250 2.1.0 <s@test.example>... Sender ok"),
            "{path}: {}",
            r.stdout
        );
        assert_eq!(r.code, code, "{path}: {}", r.stdout);
        assert_eq!(env.entries().len(), before + 1, "{path}: {}", env.listing());
    }
}

/// A source route in MAIL FROM or RCPT TO over SMTP (`-bs`, `-bd`) is accepted and
/// ignored, as RFC 5321 §4.1.1.2, §4.1.1.3 and Appendix C say a server should and
/// sendmail 8.17 does (compat-tests/cases/bs-source-route): the mail goes to the mailbox
/// after the route, and the log names each route dropped. (On the command line a route
/// is refused: compat-tests/differences/addr-source-route.)
#[test]
fn smtp_source_routes_are_ignored_and_logged() {
    let Some((scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let log = scratch.dir.join("maillog");
    let env = relay_env(peer.port, &format!("MAILLOG {}\n", log.display()));
    let dialogue = "HELO client\r\n\
        MAIL FROM:<@r.example:l@test.example>\r\n\
        RCPT TO:<@relay.example:user@example.org>\r\n\
        RCPT TO:<@a.example,@b.example:other@example.net>\r\n\
        DATA\r\nSubject: routed\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let r = env.sendmail(&["-bs", "-odi"], dialogue.as_bytes());
    r.code(0);
    for reply in [
        "250 2.1.0 <@r.example:l@test.example>... Sender ok",
        "250 2.1.5 <@relay.example:user@example.org>... Recipient ok",
        "250 2.1.5 <@a.example,@b.example:other@example.net>... Recipient ok",
    ] {
        assert!(r.stdout.contains(reply), "{}", r.stdout);
    }
    let (mail, mut rcpt, refused) = seen(&peer);
    rcpt.sort();
    assert_eq!(mail, ["l@test.example"]);
    assert_eq!(rcpt, ["other@example.net", "user@example.org"]);
    assert!(refused.is_empty(), "{refused:?}");
    let logged = fs::read_to_string(&log).unwrap();
    for line in [
        "source route @r.example ignored in sender <@r.example:l@test.example>",
        "source route @relay.example ignored in recipient <@relay.example:user@example.org>",
        "source route @a.example,@b.example ignored in recipient <@a.example,@b.example:other@example.net>",
    ] {
        assert!(logged.contains(line), "{line}\n{logged}");
    }

    // -bd: the same.
    let d = Daemon::start(&env, &["-odi"]);
    let mut c = Raw::connect(d.port);
    c.line();
    c.cmd("HELO client");
    assert!(
        c.cmd("MAIL FROM:<@r.example:m@test.example>")
            .starts_with("250 ")
    );
    assert!(
        c.cmd("RCPT TO:<@relay.example,@x.example:third@example.org>")
            .starts_with("250 ")
    );
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(b"Subject: routed\r\n\r\nbody\r\n.\r\n");
    assert!(c.line().starts_with("250 "));
    c.cmd("QUIT");
    peer.wait_for(2, std::time::Duration::from_secs(20));
    let (mail, rcpt, refused) = seen(&peer);
    assert_eq!(mail, ["l@test.example", "m@test.example"]);
    assert!(rcpt.contains(&"third@example.org".to_string()), "{rcpt:?}");
    assert!(refused.is_empty(), "{refused:?}");
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("source route @relay.example,@x.example ignored in recipient"),
        "{logged}"
    );
}

#[test]
fn alias_targets_are_checked_when_used() {
    let Some((scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let aliases = scratch.dir.join("aliases");
    fs::write(
        &aliases,
        "list: good@example.org, a@@example.org, x y@example.org\n",
    )
    .unwrap();
    let env = relay_env(peer.port, &format!("ALIASES {}\n", aliases.display()));
    // newaliases says nothing of the targets (sendmail's CheckAliases is off) ...
    env.run_raw(
        &env.link("newaliases"),
        &["-C", env.conf.to_str().unwrap()],
        b"",
    )
    .code(0)
    .stdout_is(&format!(
        "{}: 1 aliases, longest 49 bytes, 53 bytes total\n",
        aliases.display()
    ));
    // ... and names each bad one with -O CheckAliases=true.
    let r = env.run_raw(
        &env.link("newaliases"),
        &["-C", env.conf.to_str().unwrap(), "-O", "CheckAliases=true"],
        b"",
    );
    assert!(
        r.stdout.contains("line 1: a@@example.org... bad address\n"),
        "{}",
        r.stdout
    );
    // Used, the bad target is refused and the others are delivered; the blank of the
    // last one is sendmail's BlankSub dot.
    env.sendmail(&["-odi", "-oem", "list"], MSG).code(64);
    let (_, mut rcpt, refused) = seen(&peer);
    rcpt.sort();
    assert_eq!(rcpt, ["good@example.org", "x.y@example.org"]);
    assert!(refused.is_empty(), "{refused:?}");
    assert!(report(&env).contains("a@@example.org... Invalid route address"));
}

/// What programs like cron and mdadm write: unqualified addresses in the header get the
/// mail name, as sendmail, Postfix and nullmailer give them; names, comments, groups
/// and encoded words are kept.
#[test]
fn header_addresses_are_qualified_like_the_envelope() {
    let Some((_scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "MASQUERADE example.net\n");
    let message = b"From: root (Cron Daemon)\n\
        To: root\n\
        Cc: team: a, b@example.org;\n\
        Bcc: \n\
        Reply-To: \"Doe, John\" <john>\n\
        Sender: mdadm monitoring <root>\n\
        X-Other: root\n\
        Return-Receipt-To: jo\n\
        Resent-To: =?UTF-8?B?SsO2cmc=?= <joerg>\n\
        Resent-Cc: undisclosed-recipients:;\n\
        Subject: Cron <root@host> test\n\
        \n\
        out\n";
    env.sendmail(&["-odi", "ops@example.org"], message)
        .code(0)
        .stdout_is("");
    let msgs = peer.wait_for(1, std::time::Duration::from_secs(10));
    let m = String::from_utf8_lossy(&msgs[0].1).into_owned();
    for want in [
        // Originator fields get MASQUERADE's domain, as the envelope sender does.
        "\r\nFrom: root@example.net (Cron Daemon)\r\n",
        "\r\nReply-To: \"Doe, John\" <john@example.net>\r\n",
        "\r\nSender: mdadm monitoring <root@example.net>\r\n",
        // Destination fields get the mail name.
        "\r\nTo: root@test.example\r\n",
        "\r\nCc: team: a@test.example, b@example.org;\r\n",
        "\r\nResent-To: =?UTF-8?B?SsO2cmc=?= <joerg@test.example>\r\n",
        "\r\nResent-Cc: undisclosed-recipients:;\r\n",
        // Not address fields in sendmail's table: as written.
        "\r\nX-Other: root\r\n",
        "\r\nReturn-Receipt-To: jo\r\n",
        "\r\nSubject: Cron <root@host> test\r\n",
    ] {
        assert!(m.contains(want), "{want:?} in\n{m}");
    }
    // The message has a To:, so its Bcc: is removed.
    assert!(!m.contains("\r\nBcc:"), "{m}");
    // Fields that need nothing keep their bytes, folding included.
    env.sendmail(
        &["-odi", "ops@example.org"],
        b"From: A <a@example.org>\nTo: b@example.org,\n   c@example.org\nSubject: x\n\nbody\n",
    )
    .code(0);
    let msgs = peer.wait_for(2, std::time::Duration::from_secs(10));
    let m = String::from_utf8_lossy(&msgs[1].1).into_owned();
    assert!(
        m.contains("\r\nTo: b@example.org,\r\n   c@example.org\r\n"),
        "{m}"
    );
}

/// SMTP clients on this host are local submitters; others' headers are theirs.
#[test]
fn smtp_headers_are_qualified_for_trusted_clients_only() {
    if std::net::TcpListener::bind("127.0.0.2:0").is_err() {
        crate::harness::unavailable("the 127.0.0.2 loopback address");
        return;
    }
    let env = Env::with_config("O TrustedNetworks=127.0.0.1/32\n");
    let d = Daemon::start(&env, &["-odq"]);
    for (from, qualified) in [("127.0.0.1", true), ("127.0.0.2", false)] {
        let mut c = Raw::from(socket2_connect_from(from, d.port));
        c.line();
        c.cmd("HELO client");
        c.cmd("MAIL FROM:<a@test.example>");
        assert!(c.cmd("RCPT TO:<root@test.example>").starts_with("250 "));
        assert!(c.cmd("DATA").starts_with("354 "));
        c.send(b"From: root (Cron Daemon)\r\nReturn-Path: <x@y>\r\nSubject: s\r\n\r\nb\r\n.\r\n");
        assert!(c.reply()[0].starts_with("250 "), "{from}");
        c.cmd("QUIT");
        let e = env.only_message();
        if qualified {
            assert!(
                e.contains("\nFrom: root@test.example (Cron Daemon)\n"),
                "{from}: {e}"
            );
        } else {
            assert!(e.contains("\nFrom: root (Cron Daemon)\n"), "{from}: {e}");
        }
        // A Return-Path on input is removed from every client.
        assert!(!e.contains("Return-Path: <x@y>"), "{from}: {e}");
        for p in env.entries() {
            fs::remove_file(p).unwrap();
        }
    }
}

/// RFC 5322 §3.6.6 resent messages and the other fields sendmail treats specially
/// (compat-tests `field-*`).
#[test]
fn resent_fields_and_special_fields() {
    let Some((_scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &["-odi", "-t"],
        b"Resent-Date: Mon, 23 Nov 2026 10:00:00 +0000\n\
          Resent-From: r2@example.org\n\
          Resent-To: new1@example.org\n\
          Resent-Bcc: newbcc@example.org\n\
          Resent-Date: Sun, 22 Nov 2026 10:00:00 +0000\n\
          Resent-From: r1@example.org\n\
          Resent-To: old@example.org\n\
          To: orig@example.org\n\
          From: author@example.org\n\
          Return-Path: <evil@example.net>\n\
          Content-Length: 5\n\
          Subject: resent\n\
          \n\
          hello world\n",
    )
    .code(0)
    .stdout_is("");
    let (_, rcpt, _) = seen(&peer);
    // The Resent- destination fields of every block, never To:.
    assert_eq!(
        rcpt,
        ["old@example.org", "newbcc@example.org", "new1@example.org"]
    );
    let msgs = peer.wait_for(1, std::time::Duration::from_secs(10));
    let m = String::from_utf8_lossy(&msgs[0].1).into_owned();
    assert!(m.contains("\r\nResent-Message-Id: <"), "{m}");
    assert!(!m.contains("Resent-Bcc"), "{m}");
    assert!(!m.contains("newbcc"), "{m}");
    assert!(!m.contains("Return-Path"), "{m}");
    assert!(!m.contains("Content-Length"), "{m}");
    assert!(m.contains("\r\nTo: orig@example.org\r\n"), "{m}");
    // Without -t and without To/Cc: Bcc and Resent-Bcc are emptied, not removed, and
    // the missing Resent- fields are added.
    env.sendmail(
        &["-odi", "rcpt@example.org"],
        b"From: author@example.org\nResent-To: x@example.org\nResent-Bcc: hidden@example.org\nBcc: b@example.org\nSubject: s\n\nhello\n",
    )
    .code(0);
    let msgs = peer.wait_for(2, std::time::Duration::from_secs(10));
    let m = String::from_utf8_lossy(&msgs[1].1).into_owned();
    for want in [
        "\r\nResent-Date: ",
        "\r\nResent-From: ",
        "\r\nResent-Message-Id: <",
        "\r\nResent-Bcc:\r\n",
        "\r\nBcc:\r\n",
    ] {
        assert!(m.contains(want), "{want:?} in\n{m}");
    }
    assert!(
        !m.contains("hidden@") && !m.contains("b@example.org"),
        "{m}"
    );
    // -t with only Apparently-To: it is the recipient.
    env.sendmail(
        &["-odi", "-t"],
        b"Apparently-To: at@example.org\nSubject: a\n\nb\n",
    )
    .code(0);
    let (_, rcpt, _) = seen(&peer);
    assert_eq!(rcpt.last().map(String::as_str), Some("at@example.org"));
}

/// A CR inside a header line from the command line never splits a field (the wire and
/// many readers take a CR as a line end): it becomes a blank, and a `\r\r\n` line end is
/// one line end. (In the body a CR is text, kept as sendmail keeps it, which this strict
/// relay would refuse: tests/content.rs.)
#[test]
fn a_lone_cr_in_a_header_never_splits_a_field() {
    let Some((_scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &["-odi", "-t"],
        b"To: bob@example.org\nSubject: hello\rBcc: leaked@example.org\rX-Injected: yes\n\nbody\n",
    )
    .code(0)
    .stdout_is("");
    env.sendmail(
        &["-odi", "-t"],
        b"To: carol@example.org\r\r\nSubject: split\r\r\n\r\r\nbody line\r\n",
    )
    .code(0);
    let (_, rcpt, refused) = seen(&peer);
    assert_eq!(rcpt, ["bob@example.org", "carol@example.org"]);
    assert!(refused.is_empty(), "{refused:?}");
    let msgs = peer.wait_for(2, std::time::Duration::from_secs(10));
    let first = String::from_utf8_lossy(&msgs[0].1).into_owned();
    assert!(
        first.contains("\r\nSubject: hello Bcc: leaked@example.org X-Injected: yes\r\n"),
        "{first}"
    );
    assert!(
        !first.contains("\r\nBcc:") && !first.contains("\r\nX-Injected:"),
        "{first}"
    );
    let second = String::from_utf8_lossy(&msgs[1].1).into_owned();
    assert!(
        second.contains("\r\nSubject: split\r\n\r\nbody line"),
        "{second}"
    );
}

/// MASQUERADE rewrites a `-f` sender as dma does (dma.c `set_from`) when it is local:
/// unqualified, or in the mail name or `localhost`; an address of another domain and the
/// null sender are the caller's and stay as given. `MASQUERADE user@` keeps the domain.
#[test]
fn masquerade_rewrites_local_f_senders() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    for (spec, f, want) in [
        ("example.net", "root", "root@example.net"),
        ("example.net", "www@test.example", "www@example.net"),
        ("example.net", "www@localhost", "www@example.net"),
        ("example.net", "bob@example.org", "bob@example.org"),
        ("john@", "root", "john@test.example"),
        ("herb@ert.example", "www@test.example", "herb@ert.example"),
        ("example.net", "<>", "<>"),
    ] {
        let env = relay_env(peer.port, &format!("MASQUERADE {spec}\n"));
        let mails = |t: &str| -> Vec<String> {
            t.lines()
                .filter_map(|l| l.split_once(" MAIL "))
                .map(|(_, m)| m.to_string())
                .collect()
        };
        let before = mails(&peer.transcript()).len();
        env.sendmail(&["-odi", "-f", f, "ops@example.org"], b"Subject: m\n\nx\n")
            .code(0);
        let t = peer.transcript();
        let mails = mails(&t);
        assert_eq!(mails.len(), before + 1, "{spec} -f {f}: {t}");
        let got = mails.last().unwrap().split(' ').next().unwrap();
        assert_eq!(got, want, "{spec} -f {f}: {t}");
    }
}

/// A command-line recipient with octets that are not UTF-8 (Latin-1, overlong, cut
/// short) is refused whole, exit 64, nothing queued, and the message shows each such
/// octet as `?`: never the raw octet, never a U+FFFD the caller did not write
/// (compat-tests/differences/addr-argv-non-utf8).
#[test]
fn a_recipient_argument_that_is_not_utf8_is_refused_and_shown_with_question_marks() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::process::{Command, Stdio};
    let env = Env::new();
    for (arg, shown) in [
        (&b"j\xf6hn@example.org"[..], "j?hn@example.org"),
        (b"\xc0\xafx@example.org", "??x@example.org"),
        (b"t\xc3@example.org", "t?@example.org"),
    ] {
        let out = Command::new(env.link("sendmail"))
            .arg("-C")
            .arg(&env.conf)
            .arg("-odq")
            .arg(OsStr::from_bytes(arg))
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(64), "{shown}");
        assert_eq!(
            out.stdout,
            format!("recipient: argument is not valid text: {shown}\n").into_bytes(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(env.entries().is_empty(), "{shown}");
    }
}

/// An address with octets that are not UTF-8 from every source read as text — `-t`
/// fields (To, Cc, Bcc, Resent-To), an alias target, an `:include:` file — is refused
/// by name (`Syntax error in mailbox address "j?hn@example.org" (not UTF-8)`, exit 64),
/// the other recipients delivered; the relay (smtp-sink, whose dumps keep the envelope's
/// octets as sent) never sees a U+FFFD or the raw octets in place of the address
/// (compat-tests/differences/rcpt-t-non-utf8-addr, t-bcc-nonutf8, alias-nonutf8).
/// `-bv -t` says the same.
#[test]
fn addresses_not_utf8_from_headers_aliases_and_lists_are_refused_never_changed() {
    use crate::harness::servers::Sink;
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    let inc = env.dir.join("inc.txt");
    fs::write(&inc, b"m\xf6\xf6@example.org, inc-ok@example.org\n").unwrap();
    let aliases = env.dir.join("aliases");
    let mut text = b"al: m\xfcller@example.org, al-ok@example.org\n".to_vec();
    text.extend_from_slice(format!("al2: :include:{}\n", inc.display()).as_bytes());
    fs::write(&aliases, text).unwrap();
    let alias_opt = format!("-oA{}", aliases.display());
    let cases: Vec<(Vec<&str>, &[u8], &str, &str)> = vec![
        (
            vec!["-t"],
            b"To: j\xf6hn@example.org, t-ok@example.org\n\nb\n",
            "j?hn@example.org",
            "t-ok@",
        ),
        (
            vec!["-t"],
            b"To: c-ok@example.org\nCc: c\xf6@example.org\n\nb\n",
            "c?@example.org",
            "c-ok@",
        ),
        (
            vec!["-t"],
            b"To: b-ok@example.org\nBcc: k\xe4se@example.org\n\nb\n",
            "k?se@example.org",
            "b-ok@",
        ),
        (
            vec!["-t"],
            b"To: x@example.org\nResent-To: r\xf6@example.org, r-ok@example.org\n\nb\n",
            "r?@example.org",
            "r-ok@",
        ),
        (
            vec![&alias_opt, "al"],
            b"Subject: t\n\nb\n",
            "m?ller@example.org",
            "al-ok@",
        ),
        (
            vec![&alias_opt, "al2"],
            b"Subject: t\n\nb\n",
            "m??@example.org",
            "inc-ok@",
        ),
    ];
    for (args, input, shown, ok) in &cases {
        let mut all = vec!["-odi", "-oep"];
        all.extend(args.iter().copied());
        let run = env.sendmail(&all, input);
        run.code(64);
        // A `-t` message whose header named a refused address is held in the queue,
        // as sendmail holds it: a queue run delivers it.
        if args.contains(&"-t") {
            env.sendmail(&["-qf"], b"").code(0);
        }
        let said = format!("{}{}", run.stdout, run.stderr);
        assert!(
            said.contains(&format!(
                "Syntax error in mailbox address \"{shown}\" (not UTF-8)"
            )),
            "{shown}: {said}"
        );
        let dumps = sink.raw_dumps();
        assert!(
            dumps
                .iter()
                .any(|d| String::from_utf8_lossy(d).contains(ok)),
            "{shown}: the good recipient arrives"
        );
        // The envelope as the relay got it (smtp-sink's `X-` lines); the header keeps
        // what the writer wrote.
        for line in dumps.iter().flat_map(|d| d.split(|&b| b == b'\n')) {
            if line.starts_with(b"X-") {
                assert!(
                    !line.windows(3).any(|w| w == b"\xef\xbf\xbd")
                        && !line.iter().any(|&b| b == 0xf6 || b == 0xe4 || b == 0xfc),
                    "{shown}: {}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }
    let run = env.sendmail(&["-bv", "-t"], b"To: v\xf6@example.org\n\nb\n");
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains("Syntax error in mailbox address \"v?@example.org\" (not UTF-8)"),
        "{said}"
    );
    assert!(!said.contains("deliverable"), "{said}");
    assert_ne!(run.code, 0);
}

/// The other places an address or a domain enters, each given octets that are not
/// UTF-8 (command-line recipients, `-t` To/Cc/Bcc/Resent-To, aliases and `:include:`
/// have the tests above; `.forward` and `:include:` lines
/// `local::odd_targets_of_a_forward_or_include_file_are_judged_one_by_one`; `-bs`/`-bd`
/// MAIL and RCPT and their parameters `smtp::hostile_helo_names_*`): the sender (`-f`,
/// `-r`), `-bv` recipients, `-qR`/`-qS` arguments, `-bv -t` over Cc, Resent-Cc,
/// Resent-Bcc and Apparently-To (read as `-t` reads them), and the `-bs` commands that
/// take a name (ETRN, VRFY, EXPN). Each is refused or answered without taking it, each such
/// octet shown as `?` (never the raw octet, never a U+FFFD), and nothing is queued.
/// Errors-To and Return-Receipt-To are not read as addresses: the message is taken,
/// for its recipient alone, those fields kept as written.
#[test]
fn octets_not_utf8_are_refused_wherever_an_address_or_a_domain_enters() {
    use std::ffi::OsStr;
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    use std::process::{Command, Stdio};
    let env = Env::new();
    // (arguments, input, exit status, what the output holds)
    type Case<'a> = (Vec<&'a [u8]>, &'a [u8], i32, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            vec![b"-odq", b"-f", b"j\xf6hn@example.org", b"x@example.org"],
            b"",
            64,
            vec!["-f: argument is not valid text: j?hn@example.org"],
        ),
        (
            vec![b"-odq", b"-r", b"j\xf6hn@example.org", b"x@example.org"],
            b"",
            64,
            vec!["argument is not valid text: j?hn@example.org"],
        ),
        (
            vec![b"-bv", b"ok@example.org", b"j\xf6hn@example.org"],
            b"",
            64,
            vec!["recipient: argument is not valid text: j?hn@example.org"],
        ),
        (
            vec![b"-qRex\xe4mple.org"],
            b"",
            64,
            vec!["-q: argument is not valid text: Rex?mple.org"],
        ),
        (
            vec![b"-qSj\xf6hn"],
            b"",
            64,
            vec!["-q: argument is not valid text: Sj?hn"],
        ),
        (
            vec![b"-bv", b"-t"],
            b"To: ok@example.org\nResent-From: a@example.org\nResent-Cc: r\xf6@example.org\n\nb\n",
            64,
            vec!["Syntax error in mailbox address \"r?@example.org\" (not UTF-8)"],
        ),
        (
            vec![b"-bv", b"-t"],
            b"To: ok@example.org\nResent-From: a@example.org\nResent-Bcc: b\xf6@example.org\n\nb\n",
            64,
            vec!["Syntax error in mailbox address \"b?@example.org\" (not UTF-8)"],
        ),
        (
            vec![b"-bv", b"-t"],
            b"Apparently-To: a\xf6@example.org\n\nb\n",
            64,
            vec!["Syntax error in mailbox address \"a?@example.org\" (not UTF-8)"],
        ),
        (
            vec![b"-bv", b"-t"],
            b"To: ok@example.org\nCc: c\xf6@example.org\n\nb\n",
            64,
            vec!["Syntax error in mailbox address \"c?@example.org\" (not UTF-8)"],
        ),
        (
            vec![b"-bv", b"-t"],
            b"To: ok@example.org\nResent-From: a@example.org\nResent-Cc: r\xf6@example.org\n\nb\n",
            64,
            vec!["Syntax error in mailbox address \"r?@example.org\" (not UTF-8)"],
        ),
        (
            vec![b"-bs"],
            b"HELO client.example\r\nETRN ex\xe4mple.org\r\nETRN #j\xf6hn\r\nETRN @ex\xe4mple.org\r\nVRFY j\xf6hn\r\nVRFY <j\xf6hn@example.org>\r\nEXPN j\xf6hn\r\nQUIT\r\n",
            0,
            vec![
                "501 5.5.4 Syntax error in ETRN parameter\r\n\
                 459 4.5.4 Queue j?hn unknown\r\n\
                 501 5.5.4 Syntax error in ETRN parameter\r\n\
                 252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)\r\n\
                 252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)\r\n\
                 502 5.7.0 Sorry, we do not allow this operation\r\n\
                 221 ",
            ],
        ),
    ];
    for (args, input, code, wants) in &cases {
        let shown: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let mut child = Command::new(env.link("sendmail"))
            .arg("-C")
            .arg(&env.conf)
            .args(args.iter().map(|a| OsStr::from_bytes(a)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().expect("run");
        let mut said = out.stdout.clone();
        said.extend_from_slice(&out.stderr);
        let text = String::from_utf8_lossy(&said);
        assert_eq!(out.status.code(), Some(*code), "{shown:?}: {text}");
        for want in wants {
            assert!(text.contains(want), "{shown:?}: {want:?} in {text}");
        }
        assert!(
            std::str::from_utf8(&said).is_ok() && !text.contains('\u{fffd}'),
            "{shown:?}: {text}"
        );
        assert!(env.entries().is_empty(), "{shown:?}: {}", env.listing());
    }
    // Errors-To and Return-Receipt-To are not recipients: taken as written.
    let input =
        b"To: ok@example.org\nErrors-To: j\xf6hn\nReturn-Receipt-To: r\xf6@example.org\n\nb\n";
    env.sendmail(&["-odq", "-t"], input).code(0);
    let entries = env.entries();
    assert_eq!(entries.len(), 1, "{}", env.listing());
    let entry = fs::read(&entries[0]).unwrap();
    let text = String::from_utf8_lossy(&entry);
    assert_eq!(text.matches("\nrcpt ").count(), 1, "{text}");
    assert!(text.contains("\nrcpt ok@example.org"), "{text}");
    for field in [
        &b"Errors-To: j\xf6hn\n"[..],
        b"Return-Receipt-To: r\xf6@example.org\n",
    ] {
        assert!(entry.windows(field.len()).any(|w| w == field), "{text}");
    }
}

/// `-bv` on a list names the list file and line of each bad target, as a submission
/// and sendmail do (`DIR/members: line 2: bad address <... Unbalanced '<'`; recorded:
/// differences/inc-malformed-bv).
#[test]
fn bv_names_the_file_and_line_of_a_bad_list_target() {
    let env = Env::new();
    let members = env.dir.join("members");
    fs::write(
        &members,
        "good1@example.org\nbad address <\nx@example.org (open\ngood2@example.org\n",
    )
    .unwrap();
    let aliases = env.dir.join("aliases");
    fs::write(&aliases, format!("lst: :include:{}\n", members.display())).unwrap();
    let run = env.sendmail(&[&format!("-oA{}", aliases.display()), "-bv", "lst"], b"");
    let m = members.display();
    assert!(
        run.stdout
            .contains(&format!("{m}: line 2: bad address <... Unbalanced '<'")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "{m}: line 3: x@example.org (open... Unbalanced '('"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("good2@example.org... deliverable"),
        "{}",
        run.stdout
    );
}

/// A bidirectional override (U+202E) in an address is never printed raw: `-bv` writes it
/// as its octets in octal, the form `mailq` and the log write it in, so that a terminal
/// shows the address as it is, not reversed; the log (MAILLOG) the same.
#[test]
fn bidi_controls_are_escaped_alike_in_bv_mailq_and_the_log() {
    let env = Env::new();
    let log = env.dir.join("mail.log");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let addr = "ev\u{202e}il@example.org";
    let escaped = "ev\\342\\200\\256il@example.org";
    let r = env.sendmail(&["-bv", addr], b"");
    assert!(!r.stdout.contains('\u{202e}'), "{}", r.stdout);
    assert!(r.stdout.contains(escaped), "{}", r.stdout);
    env.sendmail(&["-odq", addr], crate::harness::MSG).code(0);
    let q = env.mailq(&[]);
    assert!(q.contains(escaped), "{q}");
    // A refusal is logged with the address: the same form.
    env.sendmail(
        &["-odq", "-oeq", "ev\u{202e}il@@example.org"],
        crate::harness::MSG,
    );
    let text = fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\u{202e}'), "{text}");
    assert!(text.contains("ev\\342\\200\\256il@@example.org"), "{text}");
}

/// A `-t` message held for a queue run because its header named a refused address
/// (`To: undisclosed-recipients:;`) under `-odb` stays queued until a queue run, as
/// sendmail keeps it: no background delivery takes it, not its own, not a later `-odb`
/// submission's to the same relay (whose follow-ups take never-tried background
/// entries). Exit 64; a queue run then sends it once.
#[test]
fn a_held_t_message_is_not_taken_by_a_later_background_delivery() {
    use crate::harness::servers::Sink;
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    let held = env.sendmail(
        &["-odb", "-t", "-f", "s@example.org"],
        b"To: undisclosed-recipients:;\nBcc: held-rcpt@example.org\nSubject: held\n\nb\n",
    );
    held.code(64);
    // The message, queued (beside it, the report of the refused group to the sender).
    let holds = |p: &std::path::PathBuf| {
        fs::read_to_string(p).is_ok_and(|t| t.contains("held-rcpt@example.org"))
    };
    let ids: Vec<_> = env.entries().into_iter().filter(holds).collect();
    assert_eq!(ids.len(), 1, "{}", env.listing());
    // A later background submission to the same relay, and time for its delivery and
    // its follow-ups.
    env.sendmail(&["-odb", "later@example.org"], b"Subject: later\n\nb\n")
        .code(0);
    crate::harness::wait_until(
        std::time::Duration::from_secs(20),
        "the later message sent",
        || {
            sink.raw_dumps()
                .iter()
                .any(|d| String::from_utf8_lossy(d).contains("later@example.org"))
        },
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let sent = |who: &str| {
        sink.raw_dumps()
            .iter()
            .filter(|d| String::from_utf8_lossy(d).contains(who))
            .count()
    };
    assert_eq!(sent("held-rcpt@example.org"), 0, "{}", env.listing());
    assert!(
        env.entries().iter().any(|p| ids.contains(p)),
        "the held message is queued: {}",
        env.listing()
    );
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(sent("held-rcpt@example.org"), 1);
}
