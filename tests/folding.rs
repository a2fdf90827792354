//! Long header fields and long lines on their way to a peer. Header fields go to the
//! fault server in its strict mode (STRICT=1: any line over 998 octets or a bare CR or LF
//! gets 554), and what it stored is read back with Python's email parser
//! (tests/peers/inspect_message.py): a long `To:` arrives as one folded field and the
//! fields after it stay fields; the same holds for the header a bounce returns. Body
//! lines go out unchanged up to 2,040 octets, as sendmail relays them (its relay mailer's
//! `L=2040`), so they go to the fault server in its normal mode: a MIME part's long
//! header line arrives whole, and a line past 2,040 octets arrives whole once the
//! inserted CRLF SP is taken out. A server that refuses lines over 998 octets (aiosmtpd's
//! own limit, and the fault server's `LONG_LINES` modes) gets the message once more with
//! its body lines broken at 998, and only that copy's outcome counts; smtp-sink, which
//! takes long lines, gets them unchanged.

use crate::harness::servers::{relay_env, start_peer};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `user1@example.org, ..., user60@example.org`: 1,189 octets, 1,193 with `To: `.
pub fn addresses() -> String {
    (1..=60)
        .map(|n| format!("user{n}@example.org"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A MIME part's `Content-Disposition:` value whose line is over 998 octets.
fn disposition() -> String {
    format!("attachment; filename=report-{}.pdf", "n".repeat(1000))
}

/// The long `To:` and fields after it, and a body whose lines fit RFC 5321's limit: what
/// a strict relay takes.
pub fn long_header_message() -> Vec<u8> {
    format!(
        "To: {}\nSubject: folded fields\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\nshort line\nlast line\n--b1--\n",
        addresses(),
    )
    .into_bytes()
}

/// The test message: the long `To:`, fields after it, and a multipart body with a long
/// part header line and a 2,500-octet line.
pub fn long_message() -> Vec<u8> {
    format!(
        "To: {}\nSubject: folded fields\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\nContent-Disposition: {}\n\nshort line\n{}\nlast line\n--b1--\n",
        addresses(),
        disposition(),
        "x".repeat(2500)
    )
    .into_bytes()
}

/// What tests/peers/inspect_message.py says about a message.
pub fn facts(raw: &[u8], dir: &Path) -> HashMap<String, String> {
    let file = dir.join(format!("inspect-{}.eml", raw.len()));
    std::fs::write(&file, raw).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/inspect_message.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The fact `key`, or a failure that shows them all.
#[track_caller]
fn fact<'a>(f: &'a HashMap<String, String>, key: &str) -> &'a str {
    f.get(key)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no {key} in {f:#?}"))
}

/// Lines no longer than 998 octets and no bare CR or LF, by the parser's count.
#[track_caller]
fn strict_lines(f: &HashMap<String, String>) {
    let longest: usize = fact(f, "max_line").parse().unwrap();
    assert!(longest <= 998, "a line of {longest} octets");
    assert_eq!(fact(f, "bare"), "0");
}

#[test]
fn a_long_to_field_reaches_a_strict_relay_as_one_folded_field() {
    let Some((scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(&["-odi", "ok@example.org"], &long_header_message())
        .code(0)
        .stdout_is("");
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 1, "{}", peer.transcript());
    let (json, raw) = &msgs[0];
    // SIZE= was the size as sent (RFC 1870: CRLF counted, no transparency dots).
    assert!(
        json.contains(&format!("\"SIZE={}\"", raw.len())),
        "{json}, {} octets stored",
        raw.len()
    );
    // Folded after user50's comma: "To: " and 50 addresses with their separators, 994.
    let fold_at = raw
        .windows(11)
        .position(|w| w == b",\r\n user51@")
        .expect("folded before user51");
    let line_start = raw[..fold_at]
        .windows(2)
        .rposition(|w| w == b"\r\n")
        .unwrap()
        + 2;
    assert_eq!(fold_at + 1 - line_start, 994);
    let f = facts(raw, &scratch.dir);
    strict_lines(&f);
    assert_eq!(fact(&f, "count.To"), "1");
    assert_eq!(fact(&f, "field.To"), addresses());
    assert!(
        fact(&f, "fields").ends_with(",To,Subject,MIME-Version,Content-Type"),
        "{}",
        fact(&f, "fields")
    );
    assert_eq!(fact(&f, "field.Subject"), "folded fields");
    assert_eq!(fact(&f, "field.MIME-Version"), "1.0");
    assert_eq!(
        fact(&f, "field.Content-Type"),
        "multipart/mixed; boundary=\"b1\""
    );
    assert_eq!(fact(&f, "parts"), "multipart/mixed,text/plain");
    assert_eq!(
        fact(&f, "part.0.payload").replace("\\r\\n", "\\n"),
        "short line\\nlast line"
    );
    assert!(!peer.transcript().contains("DATA-REFUSED"));
}

/// The long body lines: the part's 1,055-octet header line and a 1,500-octet line go out
/// unchanged (sendmail's limit is 2,040); the 2,500-octet line is continued with CRLF SP
/// after 2,040 octets, so nothing is lost and the part's header stays a header. The
/// relay is Postfix's smtp-sink, which takes such lines (the fault server, built on
/// aiosmtpd, refuses lines over RFC 5321's 1,000 octets); its dump holds the message
/// after its own `X-` lines, with LF line ends.
#[test]
fn long_body_lines_reach_the_relay_whole() {
    let scratch = crate::harness::Env::new();
    let Some(sink) = crate::harness::servers::Sink::start(&scratch.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    env.sendmail(&["-odi", "ok@example.org"], &long_message())
        .code(0)
        .stdout_is("");
    crate::harness::wait_until(Duration::from_secs(10), "the message at smtp-sink", || {
        sink.dumps().len() == 1
    });
    let raw = sink.dumps().remove(0).into_bytes();
    let line = format!("\nContent-Disposition: {}\n", disposition());
    assert!(
        String::from_utf8_lossy(&raw).contains(&line),
        "the part's header line unchanged"
    );
    let f = facts(&raw, &scratch.dir);
    assert_eq!(fact(&f, "count.To"), "1");
    assert_eq!(fact(&f, "parts"), "multipart/mixed,text/plain");
    assert_eq!(
        fact(&f, "part.0.fields"),
        "Content-Type,Content-Disposition"
    );
    assert_eq!(fact(&f, "part.0.field.Content-Disposition"), disposition());
    // The 2,500-octet line: 2,040, then SP and the last 460.
    let x = |n| "x".repeat(n);
    assert_eq!(
        fact(&f, "part.0.payload").replace("\\r\\n", "\\n"),
        format!("short line\\n{}\\n {}\\nlast line", x(2040), x(460))
    );
}

/// One command and its (possibly multi-line) reply.
fn say(conn: &mut BufReader<TcpStream>, line: &[u8]) -> String {
    conn.get_mut().write_all(line).unwrap();
    let mut reply = String::new();
    loop {
        let mut l = String::new();
        if conn.read_line(&mut l).unwrap() == 0 {
            return reply;
        }
        reply.push_str(&l);
        if l.as_bytes().get(3) != Some(&b'-') {
            return reply;
        }
    }
}

/// The strict relay does refuse what the tests above say it would: a line of 999 octets
/// and a bare LF, each in its own message.
#[test]
fn the_strict_relay_refuses_long_lines_and_bare_line_feeds() {
    let Some((_scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let s = TcpStream::connect(("127.0.0.1", peer.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut conn = BufReader::new(s);
    let mut greeting = String::new();
    conn.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(say(&mut conn, b"EHLO client.test\r\n").starts_with("250"));
    let fits = format!("S: x\r\n\r\n{}\r\n", "a".repeat(998));
    let long = format!("S: x\r\n\r\n{}\r\n", "a".repeat(999));
    for (data, want) in [
        (fits.as_bytes(), "250 "),
        (
            long.as_bytes(),
            "554 5.6.0 Message refused: line 3 has 999 octets",
        ),
        (
            b"S: x\r\n\r\nbare\nlf\r\n",
            "554 5.6.0 Message refused: bare CR or LF",
        ),
    ] {
        assert!(say(&mut conn, b"MAIL FROM:<a@example.org>\r\n").starts_with("250"));
        assert!(say(&mut conn, b"RCPT TO:<b@example.org>\r\n").starts_with("250"));
        assert!(say(&mut conn, b"DATA\r\n").starts_with("354"));
        let mut d = data.to_vec();
        d.extend_from_slice(b".\r\n");
        let r = say(&mut conn, &d);
        assert!(r.starts_with(want), "{r}");
    }
    say(&mut conn, b"QUIT\r\n");
    assert_eq!(peer.messages().len(), 1);
}

/// A bounce sent back through the strict relay (the sender is remote): the header it
/// returns has the `To:` as one field and the fields after it as fields, whether the
/// whole message is returned or its header only (`-R hdrs`).
#[test]
fn a_bounce_returns_the_long_header_as_header_fields() {
    let Some((scratch, peer)) = start_peer(&[("STRICT", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    for (n, (ret, part)) in [
        (&["-R", "full"][..], "message/rfc822"),
        (&["-R", "hdrs"][..], "text/rfc822-headers"),
        // Without FULLBOUNCE, dma's default: the header only.
        (&[][..], "text/rfc822-headers"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut args = vec!["-odi", "-f", "sender@example.net"];
        args.extend_from_slice(ret);
        let rcpt = format!("reject5-{n}@example.org");
        args.push(&rcpt);
        env.sendmail(&args, &long_header_message()).code(67);
        let msgs = peer.wait_for(n + 1, Duration::from_secs(10));
        assert_eq!(msgs.len(), n + 1, "{}", peer.transcript());
        let (json, raw) = &msgs[n];
        assert!(
            json.contains("\"rcpt_tos\": [\"sender@example.net\"]"),
            "{json}"
        );
        let f = facts(raw, &scratch.dir);
        strict_lines(&f);
        let parts = fact(&f, "parts");
        assert!(
            parts.starts_with("multipart/report,text/plain,message/delivery-status,")
                && parts.contains(part),
            "{parts}"
        );
        assert_eq!(fact(&f, "returned.count.To"), "1");
        assert_eq!(fact(&f, "returned.field.To"), addresses());
        assert_eq!(fact(&f, "returned.field.Subject"), "folded fields");
        assert!(
            fact(&f, "returned.fields").ends_with(",To,Subject,MIME-Version,Content-Type"),
            "{}",
            fact(&f, "returned.fields")
        );
    }
    assert!(!peer.transcript().contains("DATA-REFUSED"));
}

/// A body with lines over RFC 5321's limit: 1,500 octets, 1,200 that begin with a dot,
/// 2,500 (over sendmail's 2,040 too).
fn long_lines_body() -> String {
    format!(
        "short line\n{}\n.{}\n{}\nlast line\n",
        "a".repeat(1500),
        "d".repeat(1199),
        "b".repeat(2500)
    )
}

fn long_lines_message() -> Vec<u8> {
    format!("Subject: long lines\n\n{}", long_lines_body()).into_bytes()
}

/// The message as a strict server stored it: no line over 998 octets, and its body, the
/// CRLF SP continuations taken out, is the body sent.
#[track_caller]
fn arrived_broken_at_998(raw: &[u8]) {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    for l in text.split("\r\n") {
        assert!(l.len() <= 998, "a line of {} octets", l.len());
    }
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(body.contains(&format!(
        "\r\n{}\r\n {}\r\n",
        "a".repeat(998),
        "a".repeat(502)
    )));
    assert_eq!(
        body.replace("\r\n ", "").replace("\r\n", "\n"),
        long_lines_body()
    );
}

/// The sessions (connections) in which the fault server saw a MAIL command.
fn mail_sessions(transcript: &str) -> Vec<&str> {
    let mut v: Vec<&str> = transcript
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, c)| c.starts_with("MAIL "))
        .map(|(s, _)| s)
        .collect();
    v.dedup();
    v
}

const RESENT: &str = "sending it again with body lines broken at 998";

/// A server that holds lines to RFC 5321's 1,000 octets, in each way it can refuse a
/// longer one: aiosmtpd's own `500 Line too long` at the end of the data (the session
/// goes on), a 554 there, the connection closed there, a 500 in the middle of the data
/// and the connection closed. The message arrives once, whole, its lines broken at 998
/// (in the same session after RSET while it is usable, else in a new one), and `-v`
/// says so in one line.
#[test]
fn a_server_refusing_long_lines_gets_them_broken_at_998() {
    for (mode, sessions, reply) in [
        ("", 1, "(500 Line too long (see RFC5321 4.5.3.1.6))"),
        ("554", 1, "(554 5.6.0 Line too long: 2040 octets (test))"),
        ("close", 2, "(451 4.4.2 Connection lost to "),
        // Either the reply or the closed connection, whichever the client meets first.
        ("mid", 2, "(500 5.5.2 Line too long (test))|(451 4.4.2 "),
    ] {
        let Some((_scratch, peer)) = start_peer(&[("LONG_LINES", mode)]) else {
            return;
        };
        let env = relay_env(peer.port, "");
        let log = env.dir.join("mail.log");
        env.add_config(&format!("MAILLOG {}\n", log.display()));
        let run = env.sendmail(&["-v", "-odi", "ok@example.org"], &long_lines_message());
        run.code(0);
        // The log says it too, in one line.
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            logged.lines().filter(|l| l.contains(RESENT)).count(),
            1,
            "{mode}: {logged}"
        );
        let msgs = peer.wait_for(1, Duration::from_secs(10));
        assert_eq!(msgs.len(), 1, "{mode}: {}", peer.transcript());
        arrived_broken_at_998(&msgs[0].1);
        // SIZE= of the second copy is its size.
        assert!(
            msgs[0].0.contains(&format!("\"SIZE={}\"", msgs[0].1.len())),
            "{mode}: {}",
            msgs[0].0
        );
        let said: Vec<&str> = run.stdout.lines().filter(|l| l.contains(RESENT)).collect();
        assert_eq!(said.len(), 1, "{mode}: {}", run.stdout);
        assert!(
            said[0].starts_with("127.0.0.1 refused a message with a body line of 2040 octets ")
                && reply.split('|').any(|r| said[0].contains(r)),
            "{mode}: {}",
            said[0]
        );
        let t = peer.transcript();
        assert_eq!(mail_sessions(&t).len(), sessions, "{mode}: {t}");
        if sessions == 1 {
            assert!(t.contains(" RSET"), "{mode}: {t}");
        }
        if !mode.is_empty() {
            assert!(t.contains(&format!("LONG-LINE {mode}")), "{mode}: {t}");
        }
        assert!(env.entries().is_empty(), "{mode}");
    }
}

/// The traffic log (`-X`) only watches what is sent: with it, a strict server still gets
/// the second copy broken at 998, and the log shows that copy's lines as they went out.
#[test]
fn a_traffic_log_does_not_change_the_copy_broken_at_998() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let xlog = env.dir.join("traffic.log");
    let x = xlog.display().to_string();
    let run = env.sendmail(&["-odi", "-X", &x, "ok@example.org"], &long_lines_message());
    run.code(0);
    let msgs = peer.wait_for(1, Duration::from_secs(10));
    assert_eq!(msgs.len(), 1, "{}", peer.transcript());
    arrived_broken_at_998(&msgs[0].1);
    assert!(env.entries().is_empty());
    // Two DATA phases in the log: the first with the 2,040-octet line, the second
    // without any line over 998 octets (each log line is `PID >>> text`).
    let log = std::fs::read_to_string(&xlog).expect("the traffic log");
    let sent: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(" >>> ").map(|(_, t)| t))
        .collect();
    let longest_after_rset = sent
        .iter()
        .skip_while(|l| !l.starts_with("RSET"))
        // The transparency dot is not counted (RFC 5321 §4.5.2).
        .map(|l| l.strip_prefix('.').unwrap_or(l).len())
        .max()
        .unwrap_or(0);
    assert!(sent.iter().any(|l| l.len() == 2040), "{log}");
    assert!(
        (1..=998).contains(&longest_after_rset),
        "longest line after RSET: {longest_after_rset}\n{log}"
    );
}

/// Only the copy with lines broken at 998 decides: when the server refuses it too
/// (554), the message is returned with that reply; a 4yz for it defers the message.
#[test]
fn a_refusal_of_the_broken_copy_is_the_outcome() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    // FULLBOUNCE: the report returns the whole message, long lines and all, so that it
    // too meets the strict server's refusal and is sent again broken at 998.
    let env = relay_env(peer.port, "FULLBOUNCE\n");
    let run = env.sendmail(
        &[
            "-v",
            "-odi",
            "-f",
            "sender@example.net",
            "rejectdata5@example.org",
        ],
        &long_lines_message(),
    );
    run.code(69);
    assert_eq!(run.stdout.matches(RESENT).count(), 2, "{}", run.stdout);
    // The bounce, through the same server (its returned message has the long lines).
    let msgs = peer.wait_for(1, Duration::from_secs(10));
    assert_eq!(msgs.len(), 1, "{}", peer.transcript());
    let (json, raw) = &msgs[0];
    assert!(
        json.contains("\"rcpt_tos\": [\"sender@example.net\"]"),
        "{json}"
    );
    let text = String::from_utf8_lossy(raw);
    assert!(text.contains("Diagnostic-Code: SMTP; 554 5.6.0"), "{text}");
    assert!(!text.contains("Line too long"), "{text}");
    assert!(env.entries().is_empty());
    // A 4yz for the second copy: deferred, as any 4yz.
    let run = env.sendmail(
        &["-v", "-odi", "rejectdata4@example.org"],
        &long_lines_message(),
    );
    run.code(0);
    assert_eq!(run.stdout.matches(RESENT).count(), 1, "{}", run.stdout);
    let j = env.json();
    assert_eq!(j.len(), 1);
    assert!(j[0].contains("Deferred: 451 4.3.0"), "{}", j[0]);
}

/// A server that takes long lines gets them unchanged (a 1,500-octet line whole), in one
/// transaction, and `-v` says nothing of line lengths.
#[test]
fn a_server_taking_long_lines_gets_them_unchanged() {
    let scratch = crate::harness::Env::new();
    let Some(sink) = crate::harness::servers::Sink::start(&scratch.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    let run = env.sendmail(&["-v", "-odi", "ok@example.org"], &long_lines_message());
    run.code(0);
    assert!(!run.stdout.contains(RESENT), "{}", run.stdout);
    crate::harness::wait_until(Duration::from_secs(10), "the message at smtp-sink", || {
        sink.dumps().len() == 1
    });
    let dump = sink.dumps().remove(0);
    assert!(dump.contains(&format!(
        "\nshort line\n{}\n.{}\n",
        "a".repeat(1500),
        "d".repeat(1199)
    )));
    assert!(dump.contains(&format!(
        "\n{}\n {}\nlast line\n",
        "b".repeat(2040),
        "b".repeat(460)
    )));
}

/// With other recipients in the transaction: one refused at RCPT keeps its refusal and
/// is not sent again, one that got 452 goes with the second copy, on the new connection
/// a closed one makes.
#[test]
fn the_second_copy_goes_to_the_recipients_the_data_was_refused_for() {
    let Some((_scratch, peer)) = start_peer(&[("LONG_LINES", "close")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let run = env.sendmail(
        &[
            "-v",
            "-odi",
            "ok@example.org",
            "reject5@example.org",
            "toomany@example.org",
        ],
        &long_lines_message(),
    );
    assert_eq!(run.stdout.matches(RESENT).count(), 1, "{}", run.stdout);
    let msgs = peer.wait_for(1, Duration::from_secs(10));
    assert_eq!(msgs.len(), 1, "{}", peer.transcript());
    // (sendmail's order: argv words reversed.)
    assert!(
        msgs[0]
            .0
            .contains("\"rcpt_tos\": [\"toomany@example.org\", \"ok@example.org\"]"),
        "{}",
        msgs[0].0
    );
    arrived_broken_at_998(&msgs[0].1);
    let t = peer.transcript();
    assert_eq!(t.matches("RCPT reject5@example.org").count(), 1, "{t}");
    assert_eq!(mail_sessions(&t).len(), 2, "{t}");
    // The refusal at RCPT stands: EX_NOUSER.
    run.code(67);
    assert!(env.entries().is_empty());
}
