//! A server's reply text is untrusted: control characters in it (a bare CR, NUL, ESC, BEL,
//! DEL, C1) must reach neither the delivery report as line breaks (forged fields in its
//! `message/delivery-status` part), nor the terminal (`-v`, `mailq`, `mailq -v`), nor the
//! queue's state file. The fault server (tests/peers/fault_server.py) answers the `raw`
//! recipients' RCPT with RAW_REPLY and the data of a `rawdata` recipient with
//! RAW_DATA_REPLY, both spelled with backslash escapes.

use crate::harness::servers::{Peer, relay_env, start_peer};
use crate::harness::{Env, MSG};
use std::fs;
use std::time::Duration;

const SENDER: &str = "sender@example.com";

/// A 550 to RCPT that tries to forge the report's fields with bare CRs, then a NUL, a
/// screen clear, BEL, DEL and a C1 CSI.
const FORGING_550: &str =
    r"550 5.1.1 no\rAction: delivered\rStatus: 2.0.0\x00\x1b[2J\x07\x7f\u009b end";
/// The text the client reads from it: each control character a `?`.
const FORGING_550_READ: &str = "550 5.1.1 no?Action: delivered?Status: 2.0.0??[2J??? end";

/// A 450 to RCPT that sets the terminal's title, and a 451 to the data that clears it.
const TITLE_450: &str = r"450 4.2.0 busy\r\x1b]0;owned\x07\x00\x7f\u009b31m end";
const TITLE_450_READ: &str = "450 4.2.0 busy??]0;owned????31m end";
const CLEAR_451: &str = r"451 4.3.0 later\rX\x1b[2J\x07\x00\x7f\u0085 end";
const CLEAR_451_READ: &str = "451 4.3.0 later?X?[2J???? end";

/// The control characters in `s` other than the line end and HT.
fn controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| c != '\n' && c != '\t' && c.is_control())
        .collect()
}

/// The fields of each block of the report's `message/delivery-status` part: the
/// per-message block first, then one per recipient. `report` has LF line ends.
fn delivery_status(report: &str) -> Vec<Vec<(String, String)>> {
    let part = report
        .split("Content-Type: message/delivery-status\n\n")
        .nth(1)
        .expect("a delivery-status part");
    let part = &part[..part.find("\n--").expect("the part ends")];
    part.split("\n\n")
        .map(|block| {
            block
                .lines()
                .map(|l| {
                    let (name, value) = l.split_once(": ").unwrap_or((l, ""));
                    (name.to_string(), value.to_string())
                })
                .collect()
        })
        .collect()
}

/// The report the peer got (the message to SENDER), with LF line ends; its CRs are only
/// those of CRLF pairs.
fn report_at(peer: &Peer) -> String {
    let msgs = peer.wait_for(1, Duration::from_secs(20));
    let (_, raw) = msgs
        .iter()
        .find(|(json, _)| json.contains(SENDER))
        .unwrap_or_else(|| panic!("no report to {SENDER}: {msgs:?}"));
    let text = String::from_utf8(raw.clone()).expect("the report is UTF-8");
    let lf = text.replace("\r\n", "\n");
    assert!(controls(&lf).is_empty(), "control characters in\n{lf:?}");
    lf
}

#[test]
fn a_refusal_cannot_forge_report_fields_or_reach_the_terminal() {
    let Some((_scratch, peer)) = start_peer(&[("RAW_REPLY", FORGING_550)]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let r = env.sendmail(&["-v", "-f", SENDER, "raw5@example.org"], MSG);
    r.code(67);
    assert!(controls(&r.stdout).is_empty(), "{:?}", r.stdout);
    assert!(
        r.stdout.contains(&format!("\n{FORGING_550_READ}\n")),
        "{}",
        r.stdout
    );
    let report = report_at(&peer);
    let blocks = delivery_status(&report);
    assert_eq!(blocks.len(), 2, "{report}");
    let names: Vec<&str> = blocks[1].iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Final-Recipient",
            "X-Actual-Recipient",
            "Action",
            "Status",
            "Remote-MTA",
            "Diagnostic-Code",
            "Last-Attempt-Date"
        ],
        "{report}"
    );
    let field = |name: &str| {
        blocks[1]
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("Action"), Some("failed"));
    assert_eq!(field("Status"), Some("5.1.1"));
    assert_eq!(
        field("Diagnostic-Code"),
        Some(format!("SMTP; {FORGING_550_READ}").as_str())
    );
    // The explanation and the transcript: each one line.
    for want in [
        format!("\nraw5@example.org\n    (reason: {FORGING_550_READ})\n"),
        format!("\n<<< {FORGING_550_READ}\n"),
    ] {
        assert!(report.contains(&want), "{want:?} missing in\n{report}");
    }
    assert!(env.entries().is_empty(), "{}", env.listing());
}

#[test]
fn deferrals_reach_no_terminal_and_no_state_file() {
    let Some((_scratch, peer)) =
        start_peer(&[("RAW_REPLY", TITLE_450), ("RAW_DATA_REPLY", CLEAR_451)])
    else {
        return;
    };
    let env = relay_env(peer.port, "");
    let r = env.sendmail(
        &[
            "-v",
            "-f",
            SENDER,
            "raw4@example.org",
            "rawdata4@example.org",
        ],
        MSG,
    );
    r.code(0);
    assert!(controls(&r.stdout).is_empty(), "{:?}", r.stdout);
    for want in [
        format!("\n{TITLE_450_READ}\nraw4@example.org... Deferred: {TITLE_450_READ}\n"),
        format!("\n{CLEAR_451_READ}\nrawdata4@example.org... Deferred: {CLEAR_451_READ}\n"),
    ] {
        assert!(
            r.stdout.contains(&want),
            "{want:?} missing in\n{}",
            r.stdout
        );
    }
    // The state file keeps the text as read.
    let sf = env.spool.join(format!(
        "sf{}",
        env.only_entry()
            .lines()
            .find_map(|l| l.strip_prefix("id "))
            .unwrap()
    ));
    let state = fs::read_to_string(&sf).unwrap();
    assert!(!state.contains("%1B") && !state.contains("%0D"), "{state}");
    // The entry's reason is the first deferral's, a recipient's its own RCPT reply (`-v`).
    let reasons = [TITLE_450_READ, CLEAR_451_READ].map(|t| format!("(Deferred: {t})"));
    let listing = env.mailq(&[]);
    assert!(controls(&listing).is_empty(), "mailq: {listing:?}");
    assert!(
        reasons
            .iter()
            .any(|w| listing.contains(&format!("\n                 {w}\n"))),
        "mailq:\n{listing}"
    );
    let listing = env.mailq(&["-v"]);
    assert!(controls(&listing).is_empty(), "mailq -v: {listing:?}");
    // A recipient's own line holds a reply to its RCPT only; the DATA reply is the
    // entry's (as sendmail's: compat case bp-v-odi-data4xx).
    let [rcpt_reason, data_reason] = &reasons;
    assert!(
        listing.contains(&format!("\n\t\t {rcpt_reason}\n")),
        "mailq -v lacks {rcpt_reason:?}:\n{listing}"
    );
    assert!(
        !listing.contains(&format!("\n\t\t {data_reason}\n")),
        "mailq -v: {listing}"
    );
    // `--json` carries the text whole, as read.
    let json = env.json().join("\n");
    let want = format!("\"delay_reason\":\"{TITLE_450_READ}\"");
    assert!(json.contains(&want), "{want:?} missing in\n{json}");
    assert!(
        [TITLE_450_READ, CLEAR_451_READ]
            .iter()
            .any(|t| json.contains(&format!("\"reason\":\"Deferred: {t}\""))),
        "{json}"
    );
    old_state_file_shown_in_octal(&env, &sf);
}

/// A state file written before the text was made printable (or by anyone else) may
/// still hold control characters: `mailq` shows them in octal.
fn old_state_file_shown_in_octal(env: &Env, sf: &std::path::Path) {
    let state = fs::read_to_string(sf).unwrap();
    let old: String = state
        .lines()
        .map(|l| {
            if l.starts_with("reason ") {
                "reason Deferred:%20old%1B[2J%07%0D%00%7Fx%C2%9By".to_string()
            } else if l.starts_with("rcpt ") {
                l.replace('?', "%0D%1B")
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    fs::write(sf, old).unwrap();
    for args in [&[][..], &["-v"][..]] {
        let listing = env.mailq(args);
        assert!(controls(&listing).is_empty(), "mailq {args:?}: {listing:?}");
        assert!(
            listing.contains("(Deferred: old\\033[2J\\007\\015\\000\\177x\\302\\233y)"),
            "mailq {args:?}:\n{listing}"
        );
    }
    let listing = env.mailq(&["-v"]);
    assert!(
        listing.contains("\t\t (Deferred: 450 4.2.0 busy\\015\\033\\015\\033]0;owned"),
        "{listing}"
    );
}

/// A reply line over the reader's limit (4096 octets, its line end included) is refused
/// as such, its start shown: for the greeting and for any reply (here MAIL's), never read
/// on as "more replies than commands". The message stays queued (0, as sendmail).
#[test]
fn an_over_long_reply_line_is_named_with_its_limit() {
    for (var, reply, start) in [
        ("GREETING", "220 ", "220 "),
        ("WRONG_REPLY", "MAIL 250 ", "250 "),
    ] {
        let Some((_scratch, peer)) = start_peer(&[(var, reply), ("PAD", "2000000")]) else {
            return;
        };
        let env = relay_env(peer.port, "");
        let r = env.sendmail(&["-v", "-f", SENDER, "someone@example.org"], MSG);
        r.code(0);
        // The error shows the line's first 60 characters.
        let shown = format!("{start}{}...", "x".repeat(56));
        assert!(
            r.stdout.contains(&format!(
                "SMTP reply line longer than 4096 octets: \"{shown}\""
            )),
            "{var}: {}",
            r.stdout
        );
        assert!(
            !r.stdout.contains("more replies than commands"),
            "{}",
            r.stdout
        );
    }
}
