//! The message's content at intake and as relayed, as sendmail 8.17 treats it (recorded in
//! compat-tests `content-*`): a NUL octet refuses the message in every mode; a CR inside
//! a body line goes out unchanged; body lines up to 2,040 octets go out unchanged; a
//! message declared `-B7BIT` that holds 8-bit octets is never relayed as `BODY=7BIT`.
//! The relays are Postfix's smtp-sink (with and without 8BITMIME) and the fault server.

use crate::harness::servers::{Sink, relay_env, start_peer};
use crate::harness::{Env, wait_until};
use std::fs;
use std::time::Duration;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(b).escape_debug().to_string()
}

/// A NUL octet in the header or the body, with and without `-t`, in every delivery
/// mode: `NUL byte not allowed`, exit 65, nothing queued and nothing sent.
#[test]
fn a_nul_octet_refuses_the_message_in_every_mode() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    let body: &[u8] = b"Subject: nul in body\n\nbefore\0after\nline two\n";
    let header: &[u8] = b"Subject: nul\0here\n\nbody\n";
    let t: &[u8] = b"To: rcpt@example.org\nSubject: t\n\nbefore\0after\n";
    for (args, input) in [
        (&["-odq", "rcpt@example.org"][..], body),
        (&["-odi", "rcpt@example.org"], body),
        (&["-odb", "rcpt@example.org"], body),
        (&["-odi", "rcpt@example.org"], header),
        (&["-odi", "-t"], t),
        (&["-odi", "-i", "rcpt@example.org"], body),
    ] {
        env.sendmail(args, input)
            .code(65)
            .stdout_is("NUL byte not allowed\n");
        assert!(env.entries().is_empty(), "{args:?}: {}", env.listing());
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.raw_dumps().is_empty());
    // The same message without the NUL goes out.
    env.sendmail(
        &["-odi", "rcpt@example.org"],
        b"Subject: s\n\nbeforeafter\n",
    )
    .code(0);
    wait_until(Duration::from_secs(10), "the message at smtp-sink", || {
        sink.raw_dumps().len() == 1
    });
}

/// Over SMTP (`-bs`): sendmail's `554 5.6.1 NUL byte not allowed` after the data, and
/// the session goes on (the next message is taken).
#[test]
fn a_nul_octet_in_smtp_data_gets_554_and_the_session_goes_on() {
    let env = Env::new();
    let dialogue = "HELO client.example\r\nMAIL FROM:<root@test.example>\r\nRCPT TO:<b@example.org>\r\n\
        DATA\r\nSubject: nul\r\n\r\nbefore\0after\r\n.\r\n\
        MAIL FROM:<root@test.example>\r\nRCPT TO:<b@example.org>\r\n\
        DATA\r\nSubject: fine\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let r = env.sendmail(&["-bs", "-odq"], dialogue.as_bytes());
    r.code(0);
    let replies: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(replies[5], "554 5.6.1 NUL byte not allowed", "{replies:?}");
    assert!(replies[9].starts_with("250 2.0.0 "), "{replies:?}");
    assert_eq!(env.entries().len(), 1, "{}", env.listing());
    assert!(env.only_message().contains("Subject: fine"));
}

/// CRs in the body as sendmail relays them: `before\rafter` unchanged, `line\r\r\n`
/// with its first CR kept, a CR as the last octet of the input dropped.
#[test]
fn a_cr_inside_a_body_line_is_relayed_unchanged() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &["-odi", "ok@example.org"],
        b"Subject: cr\n\nbefore\rafter\nline\r\r\nends in cr\r",
    )
    .code(0);
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 1, "{}", peer.transcript());
    let raw = &msgs[0].1;
    assert!(
        contains(raw, b"\r\n\r\nbefore\rafter\r\nline\r\r\nends in cr\r\n"),
        "{}",
        shown(raw)
    );
    assert!(!contains(raw, b"cr\r\r\n"), "{}", shown(raw));
}

/// A 1,500-octet and a 2,040-octet body line reach the relay as they were (sendmail's
/// `L=2040`); a longer one is continued with CRLF SP after 2,040 octets, nothing lost.
/// The relay is smtp-sink, which takes lines of that length (the fault server, built on
/// aiosmtpd, refuses lines over RFC 5321's 1,000 octets, as strict servers do).
#[test]
fn body_lines_up_to_2040_octets_are_relayed_unchanged() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    let (a, b, c) = ("a".repeat(1500), "b".repeat(2040), "c".repeat(2500));
    let msg = format!("Subject: long\n\n{a}\n{b}\n{c}\nend\n");
    env.sendmail(&["-odi", "ok@example.org"], msg.as_bytes())
        .code(0);
    wait_until(Duration::from_secs(10), "the message at smtp-sink", || {
        sink.raw_dumps().len() == 1
    });
    let raw = String::from_utf8_lossy(&sink.raw_dumps()[0]).replace("\r\n", "\n");
    let want = format!(
        "\n\n{a}\n{b}\n{}\n {}\nend\n",
        "c".repeat(2040),
        "c".repeat(460)
    );
    // (smtp-sink's dump ends with a blank line of its own)
    assert!(raw.contains(&want), "{raw}");
}

/// `-B7BIT` over 8-bit octets: queued as 8BITMIME; `BODY=8BITMIME` to a server that
/// offers 8BITMIME, no BODY= to one that does not (smtp-sink -8), the octets as they
/// were in both (sendmail strips the 8th bit and says `BODY=7BIT`). `-B7BIT` over 7-bit
/// text stays 7BIT.
#[test]
fn b7bit_over_8bit_octets_is_never_relayed_as_7bit() {
    let msg: &[u8] = b"Subject: caf\xc3\xa9\n\nlatin1 caf\xe9\nutf8 caf\xc3\xa9\n";
    for (flags, want_args) in [
        (&[][..], "X-Mail-Args: <root@test.example> BODY=8BITMIME\n"),
        (&["-8"][..], "X-Mail-Args: <root@test.example>\n"),
    ] {
        let env0 = Env::new();
        let Some(sink) = Sink::start(&env0.dir, flags) else {
            return;
        };
        let env = relay_env(sink.port, "");
        env.sendmail(&["-odq", "-B7BIT", "rcpt@example.org"], msg)
            .code(0);
        let entries = env.entries();
        assert_eq!(entries.len(), 1, "{}", env.listing());
        let entry = fs::read(&entries[0]).unwrap();
        assert!(contains(&entry, b"\nbody 8BITMIME\n"), "{}", shown(&entry));
        env.sendmail(
            &["-odq", "-B7BIT", "plain@example.org"],
            b"Subject: x\n\nascii\n",
        )
        .code(0);
        env.sendmail(&["-qf"], b"").code(0);
        wait_until(Duration::from_secs(10), "two messages at smtp-sink", || {
            sink.raw_dumps().len() == 2
        });
        let dumps = sink.raw_dumps();
        let eight = dumps
            .iter()
            .find(|d| contains(d, b"rcpt@example.org"))
            .unwrap();
        assert!(
            contains(eight, want_args.as_bytes()),
            "{flags:?}: {}",
            shown(eight)
        );
        assert!(
            contains(eight, b"Subject: caf\xc3\xa9\n")
                && contains(eight, b"\nlatin1 caf\xe9\nutf8 caf\xc3\xa9\n"),
            "{flags:?}: {}",
            shown(eight)
        );
        let plain = dumps
            .iter()
            .find(|d| contains(d, b"plain@example.org"))
            .unwrap();
        let plain_args = if flags.is_empty() {
            &b"X-Mail-Args: <root@test.example> BODY=7BIT\n"[..]
        } else {
            b"X-Mail-Args: <root@test.example>\n"
        };
        assert!(contains(plain, plain_args), "{flags:?}: {}", shown(plain));
    }
}

/// Over SMTP the same rule: `BODY=7BIT` with 8-bit octets in the data is queued as
/// 8BITMIME, `BODY=8BITMIME` over 7-bit text as 7BIT.
#[test]
fn smtp_body_7bit_over_8bit_data_is_queued_as_8bitmime() {
    let env = Env::new();
    let dialogue = "EHLO client.example\r\nMAIL FROM:<root@test.example> BODY=7BIT\r\nRCPT TO:<b@example.org>\r\n\
        DATA\r\nSubject: eight\r\n\r\ncafé\r\n.\r\nQUIT\r\n";
    env.sendmail(&["-bs", "-odq"], dialogue.as_bytes()).code(0);
    let e = env.only_entry();
    assert!(e.contains("\nbody 8BITMIME\n"), "{e}");
    let env = Env::new();
    let dialogue = "EHLO client.example\r\nMAIL FROM:<root@test.example> BODY=8BITMIME\r\nRCPT TO:<b@example.org>\r\n\
        DATA\r\nSubject: seven\r\n\r\nascii\r\n.\r\nQUIT\r\n";
    env.sendmail(&["-bs", "-odq"], dialogue.as_bytes()).code(0);
    let e = env.only_entry();
    assert!(e.contains("\nbody 7BIT"), "{e}");
}
