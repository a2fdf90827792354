//! Delivery reports as the server taking them can take them (RFC 6152, RFC 6531,
//! RFC 3464, RFC 6533): all 7-bit to a server that offers neither 8BITMIME nor SMTPUTF8,
//! the `message/delivery-status` fields in US-ASCII to one without SMTPUTF8, and the
//! internationalized report (`message/global-delivery-status`) to one offering SMTPUTF8
//! when an address in it is not US-ASCII. Each report is read back with Python's email
//! parser.

use crate::harness::Env;
use crate::harness::servers::{Peer, relay_env, start_peer};
use std::process::{Command, Stdio};

/// An 8-bit message: its header and its body.
const MSG8: &[u8] = "Subject: caf\u{e9}\n\n8bit body caf\u{e9}\n".as_bytes();

/// A report as Python's email parser reads it: per part, `type`, `cte` and `text` (a
/// text part decoded from its transfer encoding; any other part as its content), and the
/// report's `report-type`.
#[derive(Debug)]
struct Parsed {
    report_type: String,
    parts: Vec<(String, String, String)>,
}

fn parse(raw: &[u8]) -> Parsed {
    let code = r#"
import email, sys
from email import policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.compat32)
parts = []
for p in m.get_payload():
    if p.get_content_maintype() == "text":
        text = p.get_payload(decode=True).decode("utf-8", "replace")
    else:
        text = p.as_bytes().decode("utf-8", "replace").split("\n\n", 1)[-1]
    parts.append("\x1f".join([p.get_content_type(), p.get("Content-Transfer-Encoding") or "", text]))
sys.stdout.write("\x1e".join([m.get_param("report-type") or ""] + parts))
"#;
    let mut child = Command::new("python3")
        .args(["-c", code])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python could not parse the report");
    let out = String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n");
    let mut records = out.split('\x1e');
    let report_type = records.next().unwrap_or_default().to_string();
    let parts = records
        .map(|r| {
            let mut f = r.splitn(3, '\x1f').map(str::to_string);
            let mut next = || f.next().unwrap_or_default();
            (next(), next(), next())
        })
        .collect();
    Parsed { report_type, parts }
}

/// A fresh aiosmtpd peer started with `vars` and a relay to it with the `extra` config
/// lines: (the peer's scratch env, the peer, the relay's env); `None` without aiosmtpd.
fn relay_to_peer(vars: &[(&str, &str)], extra: &str) -> Option<(Env, Peer, Env)> {
    let (scratch, peer) = start_peer(vars)?;
    let env = relay_env(peer.port, extra);
    Some((scratch, peer, env))
}

/// `msg` from `sender` to `rcpts`, delivered at once, any report to return the whole
/// message (`-odi -R full -f sender rcpts...`).
fn send_full(env: &Env, sender: &str, rcpts: &[&str], msg: &[u8]) {
    let mut args = vec!["-odi", "-R", "full", "-f", sender];
    args.extend_from_slice(rcpts);
    env.sendmail(&args, msg);
}

/// The messages the peer took whose envelope json begins its recipients with `prefix`:
/// (envelope json, message).
fn messages_to(peer: &Peer, prefix: &str) -> Vec<(String, Vec<u8>)> {
    peer.messages()
        .into_iter()
        .filter(|(j, _)| j.contains(&format!("\"rcpt_tos\": [\"{prefix}")))
        .collect()
}

/// [`messages_to`], once at least `want` came (or a minute passed).
fn wait_messages_to(peer: &Peer, prefix: &str, want: usize) -> Vec<(String, Vec<u8>)> {
    let start = std::time::Instant::now();
    loop {
        let got = messages_to(peer, prefix);
        if got.len() >= want || start.elapsed() > std::time::Duration::from_secs(60) {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The reports the peer took for `to` alone: (envelope json, message).
fn reports_to(peer: &Peer, to: &str) -> Vec<(String, Vec<u8>)> {
    messages_to(peer, &format!("{to}\"]"))
}

/// [`reports_to`], once at least one came (or a minute passed).
fn wait_reports_to(peer: &Peer, to: &str) -> Vec<(String, Vec<u8>)> {
    wait_messages_to(peer, &format!("{to}\"]"), 1)
}

/// The text of the report's delivery-status part (its lines ending in `\n`).
fn delivery_status(p: &Parsed) -> String {
    p.parts
        .iter()
        .find(|(t, _, _)| t.ends_with("delivery-status"))
        .map(|(_, _, s)| s.replace("\r\n", "\n"))
        .expect("a delivery-status part")
}

fn types(p: &Parsed) -> Vec<&str> {
    p.parts.iter().map(|(t, _, _)| t.as_str()).collect()
}

/// To a server that offers neither 8BITMIME nor SMTPUTF8, every report (a bounce
/// returning the header or the whole message, a return receipt, a delay warning) naming a UTF-8
/// recipient about an 8-bit message goes all in 7-bit octets and without BODY=8BITMIME:
/// its explanation quoted-printable, the UTF-8 address in the delivery-status fields as
/// RFC 6533's `utf-8` type (`\x{F6}`), the returned message as its header only,
/// quoted-printable, which the explanation says. Decoded, it says what the 8-bit report
/// says.
#[test]
fn a_report_to_a_7bit_server_is_all_7bit() {
    let Some((_scratch, peer, env)) = relay_to_peer(
        &[("NO_8BITMIME", "1"), ("NO_SMTPUTF8", "1")],
        "O Timeout.queuewarn=1s\n",
    ) else {
        return;
    };
    // A delay warning: the message deferred, then a run after the warning time.
    env.sendmail(
        &["-odq", "-f", "s4@example.org", "reject4@example.org"],
        MSG8,
    )
    .code(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.sendmail(&["-qf"], b"").code(0);
    let runs: &[&[&str]] = &[
        &["-odi", "-f", "s1@example.org", "j\u{f6}rg@example.org"],
        &[
            "-odi",
            "-R",
            "full",
            "-f",
            "s2@example.org",
            "j\u{f6}rg@example.org",
        ],
        &[
            "-odi",
            "-N",
            "success",
            "-f",
            "s3@example.org",
            "ok@example.org",
        ],
    ];
    for args in runs {
        env.sendmail(args, MSG8);
    }
    for (k, to) in [
        "s1@example.org",
        "s2@example.org",
        "s3@example.org",
        "s4@example.org",
    ]
    .iter()
    .enumerate()
    {
        let got = wait_reports_to(&peer, to);
        assert_eq!(got.len(), 1, "{to}: {}", peer.transcript());
        let (j, raw) = &got[0];
        assert!(!j.contains("8BITMIME"), "{j}");
        let bad: Vec<&u8> = raw.iter().filter(|b| !b.is_ascii()).collect();
        assert!(
            bad.is_empty(),
            "{to}: 8-bit octets on the wire\n{}",
            String::from_utf8_lossy(raw)
        );
        let p = parse(raw);
        assert_eq!(p.report_type, "delivery-status", "{p:?}");
        assert_eq!(
            types(&p),
            [
                "text/plain",
                "message/delivery-status",
                "text/rfc822-headers"
            ],
            "{to}: {p:?}"
        );
        let returned = &p.parts[2].2;
        assert!(returned.contains("Subject: caf\u{e9}"), "{to}: {p:?}");
        assert!(!returned.contains("8bit body"), "{to}: {p:?}");
        if k < 2 {
            let text = &p.parts[0].2;
            assert!(text.contains("\nj\u{f6}rg@example.org\n"), "{to}: {p:?}");
            assert!(
                p.parts[1]
                    .2
                    .contains("Final-Recipient: utf-8; j\\x{F6}rg@example.org"),
                "{to}: {p:?}"
            );
            assert_eq!(p.parts[0].1, "quoted-printable", "{p:?}");
        }
        // Only where the whole message was to be returned does the explanation say why
        // only its header came.
        if k == 1 {
            assert!(
                p.parts[0]
                    .2
                    .contains("\nthis report does not accept: only its header is returned.\n"),
                "{p:?}"
            );
        }
        assert_eq!(p.parts[2].1, "quoted-printable", "{p:?}");
    }
}

/// To a server offering 8BITMIME but not SMTPUTF8, a bounce naming a UTF-8 recipient
/// keeps its 8-bit text (BODY=8BITMIME) but writes the address in its delivery-status
/// fields as RFC 6533's `utf-8` type in US-ASCII; the returned message stays whole.
#[test]
fn a_report_to_an_8bitmime_server_has_ascii_status_fields() {
    let Some((_scratch, peer, env)) = relay_to_peer(&[("NO_SMTPUTF8", "1")], "") else {
        return;
    };
    send_full(&env, "s@example.org", &["j\u{f6}rg@example.org"], MSG8);
    env.wait_until_empty(std::time::Duration::from_secs(60));
    let got = reports_to(&peer, "s@example.org");
    assert_eq!(got.len(), 1, "{}", peer.transcript());
    let (j, raw) = &got[0];
    assert!(j.contains("BODY=8BITMIME"), "{j}");
    let p = parse(raw);
    assert_eq!(
        types(&p),
        ["text/plain", "message/delivery-status", "message/rfc822"],
        "{p:?}"
    );
    assert!(p.parts[1].2.is_ascii(), "{p:?}");
    assert!(
        p.parts[1]
            .2
            .contains("Final-Recipient: utf-8; j\\x{F6}rg@example.org"),
        "{p:?}"
    );
    assert!(p.parts[0].2.contains("\nj\u{f6}rg@example.org\n"), "{p:?}");
    assert!(p.parts[2].2.contains("8bit body caf\u{e9}"), "{p:?}");
}

/// To a server offering SMTPUTF8, a report naming a UTF-8 recipient is RFC 6533's
/// internationalized report: `message/global-delivery-status` with the address as the
/// `utf-8` type as it is, and the returned header, which holds UTF-8, as
/// `message/global-headers` (`message/global` for the whole message). A report whose
/// addresses are all US-ASCII stays `message/delivery-status`.
#[test]
fn a_report_naming_a_utf8_address_to_an_smtputf8_server_is_global() {
    let Some((_scratch, peer, env)) = relay_to_peer(&[], "") else {
        return;
    };
    let runs: &[(&[&str], &str, &str, &str)] = &[
        (
            &[
                "-odi",
                "-f",
                "s1@example.org",
                "reject5j\u{f6}rg@example.org",
            ],
            "s1@example.org",
            "message/global-delivery-status",
            "message/global-headers",
        ),
        (
            &[
                "-odi",
                "-R",
                "full",
                "-f",
                "s2@example.org",
                "reject5j\u{f6}rg@example.org",
            ],
            "s2@example.org",
            "message/global-delivery-status",
            "message/global",
        ),
        (
            &["-odi", "-f", "s3@example.org", "reject5@example.org"],
            "s3@example.org",
            "message/delivery-status",
            "text/rfc822-headers",
        ),
    ];
    for (args, to, status, returned) in runs {
        env.sendmail(args, MSG8);
        env.wait_until_empty(std::time::Duration::from_secs(60));
        let got = reports_to(&peer, to);
        assert_eq!(got.len(), 1, "{to}: {}", peer.transcript());
        let p = parse(&got[0].1);
        assert_eq!(types(&p), ["text/plain", *status, *returned], "{to}: {p:?}");
        assert_eq!(
            p.report_type,
            status.trim_start_matches("message/"),
            "{p:?}"
        );
        if status.contains("global") {
            assert!(
                p.parts[1]
                    .2
                    .contains("Final-Recipient: utf-8; reject5j\u{f6}rg@example.org"),
                "{to}: {p:?}"
            );
        }
    }
}

/// The explanation and the `message/delivery-status` part of a report (what it says
/// about its recipients; the returned header may name others, as the message did).
fn said_about_recipients(raw: &[u8]) -> String {
    let p = parse(raw);
    p.parts
        .iter()
        .filter(|(t, _, _)| t == "text/plain" || t.ends_with("delivery-status"))
        .map(|(_, _, text)| text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// With VERP each recipient's report (a return receipt, a bounce, a delay warning)
/// goes to its own sender and names that recipient alone, in its status block and in
/// its transcript, a Bcc recipient of `-t` too; without VERP the report names them all.
#[test]
fn verp_reports_name_only_their_own_recipient() {
    let Some((_scratch, peer, env)) = relay_to_peer(&[], "O Timeout.queuewarn=1s\n") else {
        return;
    };
    let msg = b"To: a@example.org, reject5x@example.net, reject4y@example.net\nBcc: hidden@example.org\nSubject: v\n\nbody\n";
    let args = [
        "-t",
        "-XV",
        "-N",
        "success,failure,delay",
        "-f",
        "l-b@list.example",
    ];
    let mut first = vec!["-odq"];
    first.extend_from_slice(&args);
    env.sendmail(&first, msg).code(0);
    // Past the warning time: the delay warning comes with the others.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.sendmail(&["-qf"], b"").code(0);
    let everyone = [
        "a@example.org",
        "hidden@example.org",
        "reject5x@example.net",
        "reject4y@example.net",
    ];
    for (own, what) in [
        ("a@example.org", "relayed"),
        ("hidden@example.org", "relayed"),
        ("reject5x@example.net", "failed"),
        ("reject4y@example.net", "delayed"),
    ] {
        let (user, domain) = own.split_once('@').unwrap();
        let to = format!("l-b+{user}={domain}@list.example");
        let got = wait_reports_to(&peer, &to);
        assert_eq!(got.len(), 1, "{to}: {got:?}");
        let said = said_about_recipients(&got[0].1);
        assert!(said.contains(&format!("Action: {what}")), "{to}: {said}");
        assert!(said.contains(own), "{to}: {said}");
        for other in everyone.iter().filter(|o| **o != own) {
            assert!(!said.contains(other), "{to} names {other}: {said}");
        }
    }
    // Without VERP: one report to the sender, the failure report listing the successes
    // asked for too, as sendmail's (N-mixed-R-full-odi), naming every recipient the
    // attempt tells of (the Bcc one too).
    let env = relay_env(peer.port, "");
    env.sendmail(
        &[
            "-odi",
            "-t",
            "-N",
            "success,failure",
            "-f",
            "plain@list.example",
        ],
        msg,
    )
    .code(67);
    let reports = wait_reports_to(&peer, "plain@list.example");
    // (Sent over the delivery's own connection, before the submission exits.)
    assert_eq!(reports.len(), 1, "{reports:?}");
    for (_, raw) in &reports {
        let said = said_about_recipients(raw);
        assert!(
            said.contains("Action: failed") && said.contains("Action: relayed"),
            "{said}"
        );
        assert!(
            String::from_utf8_lossy(raw).contains("Subject: Returned mail: see transcript"),
            "{said}"
        );
        for who in [
            "a@example.org",
            "hidden@example.org",
            "reject5x@example.net",
        ] {
            assert!(said.contains(who), "{who}: {said}");
        }
    }
}

/// A refusal rsendmail makes itself is not reported as a server's: an address that needs
/// SMTPUTF8 to a server that does not offer it fails with no `Diagnostic-Code` (no
/// server said anything about it) and no reason line; the transcript tells it in
/// sendmail's form. The server was talked to, so the report names it (`Remote-MTA`, as
/// sendmail names the host it tried). A recipient the server refused keeps the server's
/// reply as its Diagnostic-Code.
#[test]
fn a_refusal_made_here_has_no_servers_diagnostic() {
    let Some((_scratch, peer, env)) = relay_to_peer(&[("NO_SMTPUTF8", "1")], "") else {
        return;
    };
    send_full(
        &env,
        "sender@example.net",
        &[
            "zo\u{eb}@example.org",
            "reject5z@example.org",
            "ok@example.org",
        ],
        b"Subject: s\n\nbody\n",
    );
    let got = wait_reports_to(&peer, "sender@example.net");
    assert_eq!(got.len(), 1, "{got:?}");
    let p = parse(&got[0].1);
    let status = delivery_status(&p);
    let blocks: Vec<&str> = status.split("\n\n").collect();
    let utf8 = blocks
        .iter()
        .find(|b| b.contains("zo\\x{EB}@example.org") || b.contains("zo\u{eb}@example.org"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(utf8.contains("Status: 5.6.7"), "{utf8}");
    assert!(!utf8.contains("Diagnostic-Code"), "{utf8}");
    assert!(utf8.contains("Remote-MTA: DNS; [127.0.0.1]"), "{utf8}");
    let refused = blocks
        .iter()
        .find(|b| b.contains("reject5z@example.org"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        refused.contains("Diagnostic-Code: SMTP;") && refused.contains(" 550 5.1.1 <reject5z@"),
        "{refused}"
    );
    let text = &p.parts[0].2;
    assert!(
        text.contains("553 5.6.7 zo\u{eb}@example.org... The server does not offer SMTPUTF8"),
        "{text}"
    );
    assert!(!text.contains("(reason: 553"), "{text}");
}

/// With VERP, recipients refused at submission (unknown local users) are reported as the
/// delivery's failures are: one report each, to the sender made for it, naming it alone
/// (interactive, and queued for later).
#[test]
fn verp_refusals_at_submission_are_reported_one_each() {
    let Some((_scratch, peer, env)) = relay_to_peer(&[], "") else {
        return;
    };
    for (mode, a, b) in [
        ("-odi", "nosuchusera", "nosuchuserb"),
        ("-odq", "nosuchuserc", "nosuchuserd"),
    ] {
        env.sendmail(
            &[
                mode,
                "-XV",
                "-f",
                "l-b@list.example",
                a,
                b,
                "ok@example.org",
            ],
            MSG8,
        )
        .code(67);
        if mode == "-odq" {
            env.sendmail(&["-qf"], b"").code(0);
        }
        for (own, other) in [(a, b), (b, a)] {
            let got = wait_messages_to(&peer, &format!("l-b+{own}="), 1);
            let all: Vec<String> = peer.messages().into_iter().map(|(j, _)| j).collect();
            assert_eq!(got.len(), 1, "{mode} {own}: {all:?}");
            let said = said_about_recipients(&got[0].1);
            assert!(said.contains(own), "{mode} {own}: {said}");
            assert!(!said.contains(other), "{mode} {own} names {other}: {said}");
        }
    }
    assert!(
        reports_to(&peer, "l-b@list.example").is_empty(),
        "no report to the list's own sender"
    );
}

/// A `-t` message whose header names an empty group (`To: undisclosed-recipients:;`) is
/// held in the queue for a queue run, as sendmail holds it: with `-N success` nothing
/// goes at submission, and the run's return receipt carries no line of the
/// submission's refusal (compat-tests `z-rcpt-bcc-only`).
#[test]
fn a_held_t_message_gets_its_receipt_from_the_queue_run_without_the_refusal() {
    let Some((_scratch, peer, env)) = relay_to_peer(&[], "") else {
        return;
    };
    env.sendmail(
        &["-odi", "-t", "-N", "success", "-f", "held-s@example.org"],
        b"To: undisclosed-recipients:;\nBcc: held@example.org\nSubject: b\n\nhello\n",
    )
    .code(64);
    assert!(
        !peer.transcript().contains("held@example.org"),
        "{}",
        peer.transcript()
    );
    assert!(reports_to(&peer, "held-s@example.org").is_empty());
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(messages_to(&peer, "held@example.org").len(), 1);
    let got = wait_reports_to(&peer, "held-s@example.org");
    assert_eq!(got.len(), 1, "{}", peer.transcript());
    let text = String::from_utf8_lossy(&got[0].1);
    assert!(text.contains("Subject: Return receipt"), "{text}");
    assert!(!text.contains("syntax illegal"), "{text}");
}
