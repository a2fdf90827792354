//! Long header fields and long lines on their way to a peer. The relay is the fault
//! server in its strict mode (STRICT=1: any line over 998 octets or a bare CR or LF gets
//! 554), and what it stored is read back with Python's email parser
//! (tests/peers/inspect_message.py): a long `To:` arrives as one folded field, the fields
//! after it stay fields, and long body lines arrive whole once the inserted CRLF SP is
//! taken out. The same holds for the header a bounce returns.

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
    env.sendmail(&["-odi", "ok@example.org"], &long_message())
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
    // The part's long header line is continued with CRLF SP, so it is still a field
    // of the part: whole, with the one SP the break added.
    assert_eq!(fact(&f, "parts"), "multipart/mixed,text/plain");
    assert_eq!(
        fact(&f, "part.0.fields"),
        "Content-Type,Content-Disposition"
    );
    let cd = fact(&f, "part.0.field.Content-Disposition");
    assert_eq!(cd.len(), disposition().len() + 1);
    assert_eq!(cd.replacen("n n", "nn", 1), disposition());
    // The 2,500-octet line: 998, then SP and 997, then SP and the last 505.
    let x = |n| "x".repeat(n);
    assert_eq!(
        fact(&f, "part.0.payload").replace("\\r\\n", "\\n"),
        format!(
            "short line\\n{}\\n {}\\n {}\\nlast line",
            x(998),
            x(997),
            x(505)
        )
    );
    assert!(!peer.transcript().contains("DATA-REFUSED"));
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
        env.sendmail(&args, &long_message()).code(67);
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
