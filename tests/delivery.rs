//! Delivery through a smarthost, against real SMTP servers started here: aiosmtpd with
//! per-recipient faults (tests/peers/fault_server.py) and Postfix's smtp-sink.

use crate::harness::servers::{
    Daemon, DnsServer, Peer, Raw, Sink, have_peer, relay_env, socket2_connect_from, start_peer,
};
use crate::harness::{Env, MSG, closed_tcp_port, holds_for, sigterm, wait_exit};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Queue `n` messages (`-odq`) to r0@example.org, r1@...
fn queue_many(env: &Env, n: usize) {
    for i in 0..n {
        env.sendmail(&["-odq", &format!("r{i}@example.org")], MSG)
            .code(0);
    }
}

/// Start a foreground queue run (`-qf`) without waiting for it.
fn spawn_runner(env: &Env, args: &[&str]) -> Child {
    Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap()])
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

pub fn message_ids(msgs: &[(String, Vec<u8>)]) -> Vec<String> {
    msgs.iter()
        .map(|(_, m)| {
            let t = String::from_utf8_lossy(m);
            t.lines()
                .find_map(|l| l.strip_prefix("Message-Id: "))
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn interactive_delivers_and_removes_the_entry() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &["-odi", "ok@example.org", "other@example.net"],
        b"Subject: hi\n\n.dot\nbody\n",
    )
    .code(0)
    .stdout_is("")
    .stderr_is("");
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 1);
    assert!(
        msgs[0]
            .0
            // In reverse order, as sendmail sends its RCPTs (compat deliver-mixed-recipients).
            .contains("\"rcpt_tos\": [\"other@example.net\", \"ok@example.org\"]"),
        "{}",
        msgs[0].0
    );
    assert!(msgs[0].0.contains("\"mail_from\": \""), "{}", msgs[0].0);
    let text = String::from_utf8_lossy(&msgs[0].1);
    assert!(
        text.contains("\r\n\r\n.dot\r\nbody\r\n"),
        "dot-stuffing undone by the server: {text:?}"
    );
    assert!(text.starts_with("Received: (from "), "{text}");
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// A MAILNAME with U-labels is taken and goes out as its A-labels: in EHLO, the envelope
/// sender, and every header field rsendmail writes (`Received:`, `From:`,
/// `Message-Id:`, the `for` clause), so that no line of its own is raw UTF-8 to a
/// server; a local recipient written with either form is this host's.
#[test]
fn a_u_label_mail_name_goes_out_as_its_a_labels() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "MAILNAME Bücher.example\n");
    let r = env.sendmail(
        &["-v", "-odi", "ok@übung.example"],
        b"Subject: hi\n\nbody\n",
    );
    r.code(0);
    assert!(
        r.stdout.contains(">>> EHLO xn--bcher-kva.example\n"),
        "{}",
        r.stdout
    );
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 1);
    assert!(
        msgs[0].0.contains("@xn--bcher-kva.example\""),
        "{}",
        msgs[0].0
    );
    let text = String::from_utf8_lossy(&msgs[0].1).replace("\r\n", "\n");
    let head = text.split("\n\n").next().unwrap_or("");
    assert!(head.is_ascii(), "{head}");
    for want in [
        "\tby xn--bcher-kva.example (rsendmail ",
        "\tfor ok@xn--bung-zra.example; ",
    ] {
        assert!(head.contains(want), "{want:?} in\n{head}");
    }
    assert!(
        head.lines()
            .any(|l| l.starts_with("From: ") && l.ends_with("@xn--bcher-kva.example>")),
        "{head}"
    );
    assert!(
        head.lines()
            .any(|l| l.starts_with("Message-Id: <") && l.ends_with("@xn--bcher-kva.example>")),
        "{head}"
    );
}

#[test]
fn verbose_prints_the_dialogue() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let r = env.sendmail(&["-v", "-odq", "ok@example.org"], MSG);
    r.code(0);
    let out = &r.stdout;
    for want in [
        format!(
            "ok@example.org... Connecting to [127.0.0.1] port {} via relay...\n",
            peer.port
        ),
        "220 fault.test".to_string(),
        ">>> EHLO test.example\n".to_string(),
        ">>> RCPT To:<ok@example.org>\n".to_string(),
        ">>> DATA\n".to_string(),
        ">>> .\n".to_string(),
        "ok@example.org... Sent (Ok: queued as TEST1)\n".to_string(),
        "Closing connection to [127.0.0.1]\n".to_string(),
        ">>> QUIT\n".to_string(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    // As sendmail: the dialogue only, no log line on stderr.
    assert_eq!(r.stderr, "");
    assert_eq!(peer.messages().len(), 1);
}

#[test]
fn partial_failures_in_one_transaction() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &[
            "-odi",
            "ok@example.org",
            "reject5@example.org",
            "reject4@example.org",
            "toomany@example.org",
        ],
        MSG,
    )
    .code(67)
    .stdout_is("");
    let msgs = peer.messages();
    // ok in the first transaction, toomany (452 first) in a second one on the same session.
    assert_eq!(msgs.len(), 2, "{}", peer.transcript());
    assert!(msgs[0].0.contains("[\"ok@example.org\"]"));
    assert!(msgs[1].0.contains("[\"toomany@example.org\"]"));
    let t = peer.transcript();
    assert_eq!(t.matches(" EHLO ").count(), 1, "{t}");
    assert_eq!(t.matches(" MAIL ").count(), 2, "{t}");
    // Only the temporarily refused recipient is still queued, with its reason.
    let j = env.json();
    assert_eq!(j.len(), 1);
    assert!(
        j[0].contains(
            "\"recipients\":[{\"address\":\"reject4@example.org\",\"state\":\"deferred\""
        ),
        "{}",
        j[0]
    );
    // The refusal in the same attempt is the entry's reason, as sendmail's
    // (reason-reject5-reject4-v); the recipient keeps its own.
    assert!(j[0].contains("\"reason\":\"User unknown\""), "{}", j[0]);
    assert!(
        j[0].contains("\"delay_reason\":\"450 4.2.0 <reject4@example.org>"),
        "{}",
        j[0]
    );
    assert!(j[0].contains("\"attempts\":1"), "{}", j[0]);
    // A later run tries only that recipient again; the others are never resent.
    env.sendmail(&["-qf"], b"").code(0);
    let t = peer.transcript();
    assert_eq!(t.matches("RCPT ok@example.org").count(), 1, "{t}");
    assert_eq!(t.matches("RCPT reject4@example.org").count(), 2, "{t}");
    assert!(env.json()[0].contains("\"attempts\":2"));
    // The state file records the back-off: the next try 5 minutes after the last.
    let sf = fs::read_dir(&env.spool)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("sf"))
        .unwrap()
        .path();
    let st = fs::read_to_string(sf).unwrap();
    let num = |k: &str| -> i64 {
        st.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(
        num("next-attempt ") - num("last-attempt "),
        600,
        "second attempt: 10 minutes\n{st}"
    );
}

#[test]
fn refused_at_data_exits_69_temporary_exits_0() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(&["-odi", "rejectdata5@example.org"], MSG)
        .code(69)
        .stdout_is("");
    assert!(env.entries().is_empty(), "a permanent failure is final");
    env.sendmail(&["-odi", "rejectdata4@example.org"], MSG)
        .code(0)
        .stdout_is("");
    let j = env.json();
    assert_eq!(j.len(), 1);
    assert!(
        j[0].contains("Deferred: 451 4.3.0 Try again later (test)"),
        "{}",
        j[0]
    );
    assert!(peer.messages().is_empty());
}

#[test]
fn server_down_then_up_delivers_once() {
    if !have_peer() {
        return;
    }
    // A port nobody listens on.
    let port = closed_tcp_port();
    let env = relay_env(port, "");
    env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
    let j = env.json();
    assert!(
        j[0].contains("\"reason\":\"Deferred: Connection refused by [127.0.0.1]\""),
        "{}",
        j[0]
    );
    let peer = Peer::start(&env.dir, &[]);
    fs::write(
        &env.conf,
        fs::read_to_string(&env.conf)
            .unwrap()
            .replace(&format!("PORT {port}"), &format!("PORT {}", peer.port)),
    )
    .unwrap();
    env.sendmail(&["-qf"], b"").code(0);
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(peer.messages().len(), 1);
    assert!(env.entries().is_empty());
}

#[test]
fn connection_closed_in_data_is_retried_and_delivered_once_intact() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let body = b"Subject: intact\n\nline one\nline two\n";
    env.sendmail(&["-odi", "dropdata@example.org"], body)
        .code(0);
    assert!(peer.messages().is_empty());
    let j = env.json();
    assert!(
        j[0].contains("\"reason\":\"Deferred: Connection lost to 127.0.0.1"),
        "{}",
        j[0]
    );
    env.sendmail(&["-qf"], b"").code(0);
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 1);
    assert!(
        String::from_utf8_lossy(&msgs[0].1)
            .ends_with("Subject: intact\r\n\r\nline one\r\nline two\r\n")
    );
    assert!(env.entries().is_empty());
}

#[test]
fn a_server_that_never_answers_times_out() {
    let Some((_scratch, peer)) = start_peer(&[("STALL", "60")]) else {
        return;
    };
    let env = relay_env(peer.port, "O Timeout.datafinal=2s\n");
    let start = Instant::now();
    env.sendmail(&["-odi", "stall@example.org"], MSG).code(0);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    let j = env.json();
    assert!(
        j[0].contains("timeout waiting for input from 127.0.0.1 during message transfer"),
        "{}",
        j[0]
    );
}

#[test]
fn helo_fallback_and_no_pipelining() {
    if !have_peer() {
        return;
    }
    for envs in [&[("NO_EHLO", "1")][..], &[("NO_PIPELINING", "1")]] {
        let env0 = Env::new();
        let peer = Peer::start(&env0.dir, envs);
        let env = relay_env(peer.port, "");
        env.sendmail(&["-odi", "ok@example.org", "reject5@example.org"], MSG)
            .code(67);
        assert_eq!(peer.messages().len(), 1, "{envs:?}");
        if envs[0].0 == "NO_EHLO" {
            assert!(
                peer.transcript().contains(" HELO test.example"),
                "{}",
                peer.transcript()
            );
        }
    }
}

#[test]
fn background_returns_at_once_and_delivers_later() {
    let Some((_scratch, peer)) = start_peer(&[("STALL", "3")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    // A caller that reads our stdout to EOF, like PHP or cron, while the server stalls.
    let start = Instant::now();
    let mut child = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "stall@example.org"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(MSG).unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    let waited = start.elapsed();
    assert!(status.success());
    assert_eq!((out.as_str(), err.as_str()), ("", ""));
    assert!(
        waited < Duration::from_millis(2500),
        "the caller waited {waited:?} for EOF"
    );
    let msgs = peer.wait_for(1, Duration::from_secs(20));
    assert_eq!(msgs.len(), 1, "the background delivery did not arrive");
    env.wait_until_empty(Duration::from_secs(10));
}

#[test]
fn many_messages_per_connection_and_parallel_connections() {
    if !have_peer() {
        return;
    }
    for (conns, max_sessions) in [(1usize, 1usize), (3, 3)] {
        let env0 = Env::new();
        let peer = Peer::start(&env0.dir, &[]);
        let env = relay_env(peer.port, &format!("O MaxConnections={conns}\n"));
        queue_many(&env, 20);
        env.sendmail(&["-qf"], b"").code(0);
        assert_eq!(peer.messages().len(), 20);
        let sessions = peer.transcript().matches(" EHLO ").count();
        assert!(
            sessions >= 1 && sessions <= max_sessions,
            "{conns} connections allowed, {sessions} used"
        );
        assert!(env.entries().is_empty());
    }
}

#[test]
fn two_concurrent_runners_deliver_each_message_once() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "O MaxConnections=2\n");
    queue_many(&env, 200);
    let runners: Vec<Child> = (0..2).map(|_| spawn_runner(&env, &["-qf"])).collect();
    for mut r in runners {
        assert!(r.wait().unwrap().success());
    }
    let msgs = peer.messages();
    let mut ids = message_ids(&msgs);
    assert_eq!(ids.len(), 200, "duplicates or losses");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    assert!(env.entries().is_empty());
}

#[test]
fn a_runner_killed_mid_run_loses_nothing() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "O MaxConnections=1\n");
    queue_many(&env, 200);
    let mut runner = spawn_runner(&env, &["-qf"]);
    peer.wait_for(50, Duration::from_secs(30));
    runner.kill().unwrap();
    runner.wait().unwrap();
    let before = peer.messages().len();
    assert!(before < 200, "the runner finished before it was killed");
    env.sendmail(&["-qf"], b"").code(0);
    let mut ids = message_ids(&peer.messages());
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "lost messages");
    // The one documented window (accepted by the server, not yet recorded) may repeat
    // the message in flight when the kill landed; nothing else may.
    assert!(total - 200 <= 1, "{} duplicates", total - 200);
    assert!(env.entries().is_empty());
}

#[test]
fn expired_entries_are_failed_and_removed() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "O Timeout.queuereturn=1s\n");
    env.sendmail(&["-odq", "reject4@example.org"], MSG).code(0);
    // Time must pass (no event to wait for): the entry outlives Timeout.queuereturn.
    std::thread::sleep(Duration::from_millis(1100));
    let r = env.sendmail(&["-qf", "-v"], b"");
    r.code(0);
    // The failure report (status 4.4.7) reached the sender's mailbox in the same run.
    assert!(
        r.stdout.contains("root@test.example... Sent"),
        "{}",
        r.stdout
    );
    let mbox = fs::read_to_string(env.dir.join("mail/root")).unwrap();
    assert!(mbox.contains("Status: 4.4.7"), "{mbox}");
    // The server's last reply, as it gave it, and sendmail's words for the expiry in
    // the transcript (compat case bounce-queuereturn-reject4).
    assert!(
        mbox.contains("Diagnostic-Code: SMTP; 450 ") && !mbox.contains("message expired"),
        "{mbox}"
    );
    assert!(
        mbox.contains(
            "Message could not be delivered for 1 second\nMessage will be deleted from queue\n"
        ),
        "{mbox}"
    );
    assert!(
        r.stdout.contains("\nCannot send message for 1 second\n"),
        "{}",
        r.stdout
    );
    assert!(env.entries().is_empty());
}

/// Every line goes out ending in CRLF (no bare LF), and a CR inside a body line is text,
/// sent as it is, as sendmail sends it (compat-tests `content-bare-cr-body`). Lines over
/// 998 octets: tests/content.rs and tests/folding.rs (this peer, on aiosmtpd, refuses
/// them).
#[test]
fn lines_go_out_as_crlf_lines_and_a_cr_stays_text() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let mut body = b"Subject: lines\n\n".to_vec();
    body.extend(std::iter::repeat_n(b'x', 990));
    body.extend_from_slice(b"\nbare\rcr\n");
    env.sendmail(&["-odi", "ok@example.org"], &body).code(0);
    let m = &peer.messages()[0].1;
    for (i, &b) in m.iter().enumerate() {
        if b == b'\n' {
            assert_eq!(m[i - 1], b'\r', "bare LF at {i}");
        }
    }
    assert!(
        m.windows(9).any(|w| w == b"bare\rcr\r\n"),
        "{}",
        String::from_utf8_lossy(m)
    );
    let body_at = m.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let x = m[body_at..].iter().filter(|&&b| b == b'x').count();
    assert_eq!(x, 990);
}

#[test]
fn dsn_parameters_and_grouping_at_smtp_sink() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "O MaxConnections=1\n");
    env.sendmail(
        &[
            "-odq",
            "-N",
            "failure,delay",
            "-R",
            "hdrs",
            "-V",
            "env+1",
            "-B",
            "8BITMIME",
            "a@example.org",
            "b@example.net",
        ],
        b"Subject: dsn\n\n\xc3\xa9t\xc3\xa9\n",
    )
    .code(0);
    env.sendmail(&["-odq", "c@example.org"], MSG).code(0);
    let before = sink.connections();
    env.sendmail(&["-qf"], b"").code(0);
    let d = sink.dumps();
    assert_eq!(d.len(), 2, "{d:?}");
    let dsn = d
        .iter()
        .find(|m| m.contains("ENVID"))
        .expect("the DSN message");
    assert!(
        dsn.contains("X-Mail-Args: <root@test.example> BODY=8BITMIME RET=HDRS ENVID=env+2B1\n"),
        "{dsn}"
    );
    // NOTIFY without an ORCPT: sendmail sends none for -N (RFC 3461 §4.2 makes it
    // optional; observed with 8.17.1.9 against a server offering DSN).
    assert!(
        dsn.contains("X-Rcpt-Args: <a@example.org> NOTIFY=FAILURE,DELAY\n"),
        "{dsn}"
    );
    assert!(
        dsn.contains("X-Rcpt-Args: <b@example.net> NOTIFY=FAILURE,DELAY\n"),
        "{dsn}"
    );
    let plain = d.iter().find(|m| !m.contains("ENVID")).unwrap();
    assert!(
        plain.contains("X-Mail-Args: <root@test.example>\n"),
        "{plain}"
    );
    // Both messages, all recipients, over one connection.
    assert_eq!(
        sink.connections() - before,
        1,
        "{}",
        fs::read_to_string(&sink.log).unwrap()
    );
    assert!(env.entries().is_empty());
}

/// The targets of an alias with `-N`, at a server offering DSN: the members of a list
/// get neither NOTIFY nor ORCPT, the one target of a one-to-one alias keeps NOTIFY, as
/// sendmail 8.17.1.9 sends them (observed against smtp-sink; its reports: compat cases
/// alias-list-member-reject5*, alias-one-member-reject5).
#[test]
fn alias_targets_dsn_parameters_at_smtp_sink() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let aliases = env0.dir.join("aliases");
    fs::write(
        &aliases,
        "list: m1@example.org, m2@example.org\none: solo@example.org\n",
    )
    .unwrap();
    let env = relay_env(sink.port, &format!("ALIASES {}\n", aliases.display()));
    env.sendmail(
        &[
            "-odi",
            "-N",
            "success,delay",
            "list",
            "one",
            "direct@example.org",
        ],
        MSG,
    )
    .code(0);
    let d = sink.dumps().concat();
    for (rcpt, args) in [
        ("m1@example.org", ""),
        ("m2@example.org", ""),
        ("solo@example.org", " NOTIFY=SUCCESS,DELAY"),
        ("direct@example.org", " NOTIFY=SUCCESS,DELAY"),
    ] {
        assert!(
            d.contains(&format!("X-Rcpt-Args: <{rcpt}>{args}\n")),
            "{rcpt}: {d}"
        );
    }
    assert!(!d.contains("ORCPT"), "{d}");
}

/// `-q<interval>`: wakes every interval, retries only what is due, marks the rest `-` in
/// mailq, and stops on SIGTERM.
#[test]
fn periodic_runner_respects_back_off_and_stops_on_sigterm() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(&["-odq", "ok@example.org"], MSG).code(0);
    let mut runner = spawn_runner(&env, &["-q1s", "-qf"]);
    assert_eq!(peer.wait_for(1, Duration::from_secs(10)).len(), 1);
    env.sendmail(&["-odq", "reject4@example.org"], MSG).code(0);
    peer.wait_transcript("RCPT reject4@example.org", Duration::from_secs(10));
    // Three more wake-ups: the deferred entry is not due for 5 minutes.
    holds_for(
        Duration::from_millis(3200),
        "the deferred entry is tried once, not again before its back-off",
        || {
            peer.transcript()
                .matches("RCPT reject4@example.org")
                .count()
                == 1
        },
    );
    // The back-off is not marked in the listing (sendmail marks none either: the
    // compat case bp-deferred-and-queued); `mailq --json` tells when the next try is,
    // and MinQueueAge gives sendmail's `-` for an entry tried too recently.
    let listing = env.sendmail(&["-bp"], b"").stdout;
    assert_eq!(
        listing.lines().nth(2).unwrap().as_bytes()[14],
        b' ',
        "{listing}"
    );
    let json = env.mailq(&["--json"]);
    let next: i64 = json
        .split("\"next_attempt\":")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no next_attempt in {json}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(next > now + 200 && next <= now + 300, "{next} vs {now}");
    let listing = env.sendmail(&["-O", "MinQueueAge=1h", "-bp"], b"").stdout;
    assert_eq!(
        listing.lines().nth(2).unwrap().as_bytes()[14],
        b'-',
        "{listing}"
    );
    sigterm(&runner);
    let st = wait_exit(&mut runner, Duration::from_secs(6)).expect("the runner did not stop");
    assert!(st.success());
    assert_eq!(env.entries().len(), 1);
    // A plain -q tries everything at once, back-off or not.
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(
        peer.transcript()
            .matches("RCPT reject4@example.org")
            .count(),
        2
    );
}

/// `O MinQueueAge=` in the configuration file: a one-time `-q` (the cron job's run) leaves
/// an entry tried within it alone and tries the others, back-off or not; a selection
/// (`-qR`) tries it all the same; `mailq` marks it `-`. As sendmail does
/// (compat-tests/cases/minqueueage-*).
#[test]
fn one_time_run_honours_min_queue_age_from_the_config() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "O MinQueueAge=1h\n");
    let count = |rcpt: &str| peer.transcript().matches(&format!("RCPT {rcpt}")).count();
    // Tried once at submission: deferred, its back-off running.
    env.sendmail(&["-odi", "reject4@example.org"], MSG).code(0);
    assert_eq!(count("reject4@example.org"), 1);
    // Never tried.
    env.sendmail(&["-odq", "ok@example.org"], MSG).code(0);
    let listing = env.sendmail(&["-bp"], b"").stdout;
    let marks: Vec<u8> = listing
        .lines()
        .filter(|l| l.len() > 14 && l.as_bytes()[0].is_ascii_alphanumeric())
        .map(|l| l.as_bytes()[14])
        .collect();
    let mut sorted = marks.clone();
    sorted.sort();
    assert_eq!(sorted, vec![b' ', b'-'], "{listing}");
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(count("ok@example.org"), 1);
    assert_eq!(count("reject4@example.org"), 1, "{}", peer.transcript());
    env.sendmail(&["-q", "-v"], b"").code(0);
    assert_eq!(count("reject4@example.org"), 1, "{}", peer.transcript());
    env.sendmail(&["-qRreject4", "-qf"], b"").code(0);
    assert_eq!(count("reject4@example.org"), 2, "{}", peer.transcript());
    // -O on the command line overrides the file.
    env.sendmail(&["-qf", "-O", "MinQueueAge=0"], b"").code(0);
    assert_eq!(count("reject4@example.org"), 3, "{}", peer.transcript());
}

/// A runner stopped by SIGTERM while a server never answers the final dot waits for the
/// reply at most its grace (60 s, the daemon's restart grace: a slower reply is the
/// server's fault, and the message may then be sent again), then stops with the entry
/// intact and still queued.
#[test]
fn sigterm_with_a_stalled_server_stops_within_its_grace() {
    let Some((_scratch, peer)) = start_peer(&[("STALL", "150")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(&["-odq", "stall@example.org"], MSG).code(0);
    let before = fs::read(&env.entries()[0]).unwrap();
    let mut runner = spawn_runner(&env, &["-q30m", "-qf"]);
    peer.wait_transcript("DATA-END", Duration::from_secs(10));
    sigterm(&runner);
    let t = Instant::now();
    let st = wait_exit(&mut runner, Duration::from_secs(120)).expect("the runner did not stop");
    assert!(st.success());
    assert!(
        t.elapsed() < Duration::from_secs(90),
        "stopping took {:?}",
        t.elapsed()
    );
    // The entry is as it was: intact, still queued, readable.
    let e = env.entries();
    assert_eq!(e.len(), 1);
    assert_eq!(fs::read(&e[0]).unwrap(), before);
    assert_eq!(env.json().len(), 1);
}

/// Beyond `O MaxBackgroundDeliveries=` running deliveries, a background submission
/// waits: no delivery runs beyond the limit; the one that holds the slot takes the
/// waiting entries once its own is done, over its connection, with no queue run.
#[test]
fn background_deliveries_are_bounded_and_the_waiting_ones_follow() {
    let Some((_scratch, peer)) = start_peer(&[("STALL", "3")]) else {
        return;
    };
    let env = relay_env(peer.port, "O MaxBackgroundDeliveries=1\n");
    env.sendmail(&["stall@example.org"], MSG).code(0);
    peer.wait_transcript("DATA-END", Duration::from_secs(10));
    env.sendmail(&["ok1@example.org"], MSG).code(0);
    env.sendmail(&["ok2@example.org"], MSG).code(0);
    holds_for(
        Duration::from_millis(1000),
        "no delivery ran beyond the limit while the first one stalls",
        || peer.messages().is_empty() && peer.transcript().matches(" EHLO ").count() == 1,
    );
    let j = env.json();
    assert_eq!(j.len(), 3, "{j:?}");
    assert!(j.iter().all(|l| l.contains("\"attempts\":0")), "{j:?}");
    assert_eq!(peer.wait_for(3, Duration::from_secs(15)).len(), 3);
    env.wait_until_empty(Duration::from_secs(10));
    let t = peer.transcript();
    assert_eq!(
        t.matches(" EHLO ").count(),
        1,
        "one session for the three: {t}"
    );
}

/// RELAYTABLE routes by domain (exact, `.subdomains`, `*`), before SMARTHOST; the
/// recipients of one message are split into one transaction per relay.
#[test]
fn relay_table_splits_recipients_by_domain() {
    let Some((scratch, a)) = start_peer(&[]) else {
        return;
    };
    let b = Peer::start(&scratch.dir, &[]);
    let table = scratch.dir.join("relays");
    fs::write(
        &table,
        format!(
            "# per-domain relays\nexample.org [127.0.0.1]:{}\n.example.net 127.0.0.1:{}\n",
            a.port, b.port
        ),
    )
    .unwrap();
    // Everything else goes to the smarthost, here peer b as well.
    let env = relay_env(b.port, &format!("RELAYTABLE {}\n", table.display()));
    env.sendmail(
        &[
            "-odi",
            "x@example.org",
            "y@mail.example.net",
            "z@other.com",
            "w@example.org",
        ],
        MSG,
    )
    .code(0);
    let ma = a.messages();
    let mb = b.messages();
    assert_eq!(ma.len(), 1);
    assert!(
        ma[0].0.contains("[\"w@example.org\", \"x@example.org\"]"),
        "{}",
        ma[0].0
    );
    assert_eq!(
        mb.len(),
        1,
        "one connection, one transaction for both of b's recipients"
    );
    assert!(
        mb[0]
            .0
            .contains("[\"z@other.com\", \"y@mail.example.net\"]"),
        "{}",
        mb[0].0
    );
    assert!(env.entries().is_empty());
    // A broken table is a configuration error naming file and line, found before the
    // message is read: nothing is queued.
    fs::write(&table, "example.org\n").unwrap();
    let r = env.sendmail(&["-odi", "x@example.org"], MSG);
    r.code(78);
    assert_eq!(
        r.stdout,
        format!(
            "{}: line 1: expected: domain relay[:port]\n",
            table.display()
        )
    );
    assert!(env.entries().is_empty());
}

/// `-X file` logs the traffic in sendmail 8.17's format (compat-tests/cases/xlog-*): the
/// message read (`<<<`, then `<<< [EOF]`), `=== CONNECT [ip]`, each command and message
/// line sent (`>>>`), each reply line read with its CR (`<<<`), every line begun with
/// the process id; a `-bs` session's commands (`<<<`) and replies (`>>>`) likewise. The
/// file is created 0644 and appended to by each process.
#[test]
fn traffic_log_with_x() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let xlog = env.dir.join("traffic.log");
    let x = xlog.to_str().unwrap();
    env.sendmail(&["-X", x, "-odi", "ok@example.org"], MSG)
        .code(0)
        .stdout_is("");
    let mode = fs::metadata(&xlog).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);
    env.sendmail(&["-odq", "two@example.org"], MSG).code(0);
    env.sendmail(&["-X", x, "-qf"], b"").code(0).stdout_is("");
    env.sendmail(&["-X", x, "-odq", "-bs"], b"HELO c.example\r\nQUIT\r\n")
        .code(0);
    let log = fs::read_to_string(&xlog).unwrap();
    // Split at LF only: a line read keeps its CR.
    let lines: Vec<&str> = log
        .split('\n')
        .map(|l| l.split_once(' ').map_or("", |(_, rest)| rest))
        .collect();
    for want in [
        "<<< Subject: test",
        "<<< [EOF]",
        "=== CONNECT [127.0.0.1]",
        ">>> EHLO test.example",
        ">>> RCPT To:<ok@example.org>",
        ">>> RCPT To:<two@example.org>",
        ">>> DATA",
        ">>> Subject: test",
        ">>> .",
        "<<< 250 2.0.0 Ok: queued as TEST1\r",
        ">>> QUIT",
        "<<< HELO c.example\r",
        ">>> 250 test.example Hello root@localhost, pleased to meet you",
        ">>> 221 2.0.0 test.example closing connection",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{log}");
    }
    // The -v transcript's own lines are not traffic.
    assert!(
        !log.contains("Sent (") && !log.contains("Connecting to"),
        "{log}"
    );
    for line in log.lines() {
        let pid = line.split(' ').next().unwrap();
        assert!(
            !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()),
            "{line:?}"
        );
    }
    assert_eq!(peer.messages().len(), 2);
}

/// SMARTHOST with several hosts: fall-backs in order by default; `O SmarthostSplit=2`
/// spreads a run over both, as mailing-list software does with several relays.
#[test]
fn several_smarthosts_fallback_and_split() {
    let Some((scratch, a)) = start_peer(&[]) else {
        return;
    };
    let b = Peer::start(&scratch.dir, &[]);
    let dead = closed_tcp_port();
    // The first host refuses connections: the second takes the mail.
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1:{dead} 127.0.0.1:{}\n",
        a.port
    ));
    env.sendmail(&["-odi", "one@example.org"], MSG).code(0);
    assert_eq!(a.messages().len(), 1);
    // Split over two live relays.
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1:{} 127.0.0.1:{}\nO SmarthostSplit=2\nO MaxConnections=2\n",
        a.port, b.port
    ));
    queue_many(&env, 20);
    env.sendmail(&["-qf"], b"").code(0);
    let (na, nb) = (a.messages().len() - 1, b.messages().len());
    assert_eq!(na + nb, 20);
    assert!(na > 0 && nb > 0, "not spread: {na} and {nb}");
}

/// `-v` with `O SmarthostSplit`: each connection opened says `Closing connection to`
/// once, as sendmail does, also the one a full connection cache (2 by default) lets go
/// before the end.
#[test]
fn split_smarthosts_verbose_closes_each_connection() {
    let Some((scratch, a)) = start_peer(&[]) else {
        return;
    };
    let b = Peer::start(&scratch.dir, &[]);
    let c = Peer::start(&scratch.dir, &[]);
    let env = Env::with_config(&format!(
        "SMARTHOST 127.0.0.1:{} 127.0.0.1:{} 127.0.0.1:{}\nO SmarthostSplit=3\n",
        a.port, b.port, c.port
    ));
    let r = env.sendmail(
        &[
            "-odi",
            "-v",
            "a@d1.example",
            "b@d2.example",
            "c@d3.example",
            "d@d4.example",
            "e@d5.example",
            "f@d6.example",
        ],
        MSG,
    );
    r.code(0);
    let used = [&a, &b, &c]
        .iter()
        .filter(|p| !p.messages().is_empty())
        .count();
    assert_eq!(used, 3, "{}", r.stdout);
    let opened = r.stdout.matches("\n220 ").count();
    let closed = r
        .stdout
        .matches("Closing connection to [127.0.0.1]\n")
        .count();
    assert_eq!((opened, closed), (3, 3), "{}", r.stdout);
    assert_eq!(r.stdout.matches(">>> QUIT\n").count(), 3, "{}", r.stdout);
}

/// NOPIPELINING: one command, one reply, even when the server offers PIPELINING; and
/// `-q -v` names each entry before its transcript, as sendmail does.
#[test]
fn no_pipelining_keyword_and_queue_run_verbose() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "NOPIPELINING\n");
    env.sendmail(&["-odq", "a@example.org"], MSG).code(0);
    let r = env.sendmail(&["-q", "-v"], b"");
    r.code(0);
    let out = &r.stdout;
    assert!(
        out.starts_with(&format!("\nRunning {}/", env.spool.display())),
        "{out}"
    );
    assert!(out.contains(" (sequence 1 of 1)\n"), "{out}");
    assert!(out.contains("250-PIPELINING"), "the sink offers it: {out}");
    assert!(out.contains(">>> MAIL From:<root@test.example>\n250 2.1.0 Ok\n>>> RCPT To:<a@example.org>\n250 2.1.5 Ok\n>>> DATA\n354"), "{out}");
    assert_eq!(sink.dumps().len(), 1);
}

/// A 421 in the middle of a session defers what was not accepted; nothing is lost.
#[test]
fn a_421_in_mid_session_defers() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &["-Q", "rcpt"]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    env.sendmail(&["-odi", "a@example.org"], MSG).code(0);
    assert!(sink.dumps().is_empty());
    let j = env.json();
    assert_eq!(j.len(), 1);
    assert!(j[0].contains("\"reason\":\"Deferred: 4"), "{}", j[0]);
}

/// Before reusing a connection for the next message rsendmail sends RSET and waits for
/// its reply, as sendmail checks a cached connection (compat cases bounce-*, reason-*).
/// A server that refuses it loses the connection, not the message: the next message goes
/// over a new connection, never a bounce.
#[test]
fn rset_before_reuse_and_a_refused_rset_reconnects() {
    for (fault, pipelining) in [(true, true), (true, false), (false, true)] {
        let mut opts = Vec::new();
        if fault {
            opts.push(("RSET_FAIL", "1"));
        }
        if !pipelining {
            opts.push(("NO_PIPELINING", "1"));
        }
        let Some((_scratch, peer)) = start_peer(&opts) else {
            return;
        };
        let env = relay_env(peer.port, "O MaxConnections=1\n");
        env.sendmail(&["-odq", "first@example.org"], MSG).code(0);
        env.sendmail(&["-odq", "second@example.org"], MSG).code(0);
        env.sendmail(&["-qf"], b"").code(0);
        let t = peer.transcript();
        assert_eq!(t.matches("RSET").count(), 1, "{t}");
        assert_eq!(peer.messages().len(), 2, "{t}");
        assert!(env.entries().is_empty(), "{}", env.listing());
        let connections = if fault { 2 } else { 1 };
        assert_eq!(t.matches("EHLO").count(), connections, "{t}");
    }
}

/// Point a test's config at another port (the SMARTHOST's `PORT` line).
fn use_port(env: &Env, from: u16, to: u16) {
    let conf = fs::read_to_string(&env.conf).unwrap();
    fs::write(
        &env.conf,
        conf.replace(&format!("PORT {from}\n"), &format!("PORT {to}\n")),
    )
    .unwrap();
}

/// RFC 5321 §4.3.2: a reply its command may not get (a 250 to DATA, replies shifted by
/// extra ones, a 354 where a 250 is due, a code outside 2yz-5yz) is a protocol error.
/// Nothing is reported delivered, the message stays queued with a reason saying so (exit
/// 0, as for any temporary failure), and the next run delivers it, once, through a server
/// that keeps the protocol.
#[test]
fn replies_outside_a_commands_set_never_deliver() {
    if !have_peer() {
        return;
    }
    let scratch = Env::new();
    let good = Peer::start(&scratch.dir, &[]);
    let faults: &[&[(&str, &str)]] = &[
        &[("DATA_250", "1")],
        &[("DATA_250", "1"), ("NO_PIPELINING", "1")],
        &[("EXTRA_REPLIES", "1")],
        &[("EXTRA_REPLIES", "1"), ("NO_PIPELINING", "1")],
        &[("WRONG_REPLY", "DOT 354 more please (test)")],
        &[("WRONG_REPLY", "DOT 600 what (test)")],
        &[("WRONG_REPLY", "RCPT 354 go ahead (test)")],
        &[("WRONG_REPLY", "MAIL 334 a challenge (test)")],
        &[("WRONG_REPLY", "EHLO 354 go ahead (test)")],
    ];
    let mut delivered = 0;
    for fault in faults {
        let bad = Peer::start(&scratch.dir, fault);
        let env = relay_env(bad.port, "");
        let r = env.sendmail(&["-odi", "-v", "a@example.org", "b@example.org"], MSG);
        r.code(0);
        assert!(!r.stdout.contains("Sent ("), "{fault:?}\n{}", r.stdout);
        assert!(
            bad.transcript().contains("WRONG-REPLY"),
            "{fault:?}\n{}",
            bad.transcript()
        );
        assert!(bad.messages().is_empty(), "{fault:?}");
        let j = env.json();
        assert_eq!(j.len(), 1, "{fault:?}: stays queued\n{}", r.stdout);
        assert!(
            j[0].contains("\"reason\":\"Deferred: Protocol error: 127.0.0.1 "),
            "{fault:?}\n{}",
            j[0]
        );
        use_port(&env, bad.port, good.port);
        env.sendmail(&["-qf"], b"").code(0);
        assert!(env.entries().is_empty(), "{fault:?}\n{}", env.listing());
        delivered += 1;
        let msgs = good.wait_for(delivered, Duration::from_secs(10));
        assert_eq!(msgs.len(), delivered, "{fault:?}");
        let last = &msgs[delivered - 1].0;
        assert!(
            last.contains("\"a@example.org\"") && last.contains("\"b@example.org\""),
            "{fault:?}: {last}"
        );
    }
}

/// A wrong reply to the RSET that checks a connection before its reuse: the connection
/// is given up (a protocol error), and the next message goes over a new one, never over
/// the connection whose dialogue is out of step.
#[test]
fn a_wrong_reply_to_rset_gives_up_the_connection() {
    for pipelining in [true, false] {
        let mut opts = vec![("WRONG_REPLY", "RSET 354 go ahead (test)")];
        if !pipelining {
            opts.push(("NO_PIPELINING", "1"));
        }
        let Some((_scratch, peer)) = start_peer(&opts) else {
            return;
        };
        let env = relay_env(peer.port, "O MaxConnections=1\n");
        env.sendmail(&["-odq", "first@example.org"], MSG).code(0);
        env.sendmail(&["-odq", "second@example.org"], MSG).code(0);
        env.sendmail(&["-qf"], b"").code(0);
        let t = peer.transcript();
        assert_eq!(peer.messages().len(), 2, "{t}");
        assert!(env.entries().is_empty(), "{t}");
        // The connection that answered RSET wrongly carried nothing after it.
        let bad = t
            .lines()
            .find(|l| l.contains("WRONG-REPLY RSET"))
            .and_then(|l| l.split(' ').next())
            .expect("the wrong reply was sent");
        let after: Vec<&str> = t
            .lines()
            .skip_while(|l| !l.contains("WRONG-REPLY RSET"))
            .skip(1)
            .filter(|l| l.starts_with(&format!("{bad} ")))
            .collect();
        assert!(
            after
                .iter()
                .all(|l| !l.contains("MAIL") && !l.contains("DATA")),
            "{t}"
        );
        assert_eq!(t.matches("EHLO").count(), 2, "{t}");
    }
}

/// RFC 6531 §3.2: to a server that does not offer SMTPUTF8 only the recipients whose
/// address needs it fail (`553 5.6.7`, reported to the sender); the others are sent in a
/// transaction without SMTPUTF8. A sender whose address needs it fails every recipient.
#[test]
fn without_smtputf8_only_the_recipients_that_need_it_fail() {
    // smtp-sink never offers SMTPUTF8; the fault server is told not to.
    let scratch = Env::new();
    if let Some(sink) = Sink::start(&scratch.dir, &[]) {
        let env = relay_env(sink.port, "");
        env.sendmail(
            &[
                "-odi",
                "-f",
                "sender@example.org",
                "jörg@example.org",
                "ok@example.org",
            ],
            MSG,
        )
        .code(67);
        let d = sink.dumps();
        assert_eq!(d.len(), 2, "the message and the report: {d:?}");
        let msg = d
            .iter()
            .find(|m| m.contains("X-Rcpt-Args: <ok@example.org>"))
            .expect("the ASCII recipient got the message");
        assert!(!msg.contains("jörg") && !msg.contains("SMTPUTF8"), "{msg}");
        let report = d
            .iter()
            .find(|m| m.contains("X-Rcpt-Args: <sender@example.org>"))
            .expect("a report to the sender");
        assert!(
            report.contains("jörg@example.org")
                && report.contains("does not offer SMTPUTF8, which the address needs"),
            "{report}"
        );
        assert!(!report.contains("Final-Recipient: RFC822; ok@"), "{report}");
        assert!(env.entries().is_empty(), "{}", env.listing());
        // A sender that needs SMTPUTF8: no recipient can be sent.
        let before = sink.dumps().len();
        env.sendmail(&["-odi", "-f", "jörg@example.org", "ok2@example.org"], MSG)
            .code(67);
        assert!(
            !sink.dumps().iter().any(|m| m.contains("ok2@example.org")),
            "{before}"
        );
    }
    let Some((_scratch, peer)) = start_peer(&[("NO_SMTPUTF8", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &[
            "-odi",
            "ok@example.org",
            "jörg@example.org",
            "b@example.org",
        ],
        MSG,
    )
    .code(67);
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 1, "{}", peer.transcript());
    let j = &msgs[0].0;
    assert!(
        j.contains("\"rcpt_tos\": [\"b@example.org\", \"ok@example.org\"]"),
        "{j}"
    );
    assert!(j.contains("\"mail_options\": [\"SIZE="), "{j}");
    assert!(!j.contains("SMTPUTF8"), "{j}");
    assert!(
        !peer.transcript().contains("j\u{f6}rg"),
        "{}",
        peer.transcript()
    );
}

/// More than the reply to the end of the data (a 421 right after the 250): the message
/// was accepted in a dialogue that was in step, so it counts as delivered, once; only
/// the connection is not used again.
#[test]
fn data_after_the_last_reply_ends_the_connection_not_the_delivery() {
    let Some((_scratch, peer)) = start_peer(&[("EXTRA_AFTER_DOT", "1")]) else {
        return;
    };
    let env = relay_env(peer.port, "O MaxConnections=1\n");
    env.sendmail(&["-odq", "first@example.org"], MSG).code(0);
    env.sendmail(&["-odq", "second@example.org"], MSG).code(0);
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    env.sendmail(&["-qf"], b"").code(0);
    let t = peer.transcript();
    assert_eq!(peer.messages().len(), 2, "{t}");
    assert_eq!(t.matches(" EHLO ").count(), 2, "a new connection each: {t}");
    assert!(!t.contains("RSET"), "{t}");
}

/// An entry whose recipients go through two relays: what the first relay took is
/// recorded before the second is tried, so that a run killed while the second relay
/// hangs never sends to the first again (the duplicate window is the one instant
/// between a 250 and its record, not the whole attempt).
#[test]
fn a_run_killed_while_queuing_a_report_does_not_resend() {
    // One transaction: x@a.test accepted, reject5@a.test refused. The failure report is
    // queued after the transaction; a run killed while it is being queued must have
    // recorded x@a.test already.
    let Some((scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let _ = &scratch;
    let env = relay_env(peer.port, "");
    env.sendmail(&["-odq", "x@a.test", "reject5@a.test"], MSG)
        .code(0);
    // A rebuild holding the index lock: the report's commit waits for it (a second at
    // most), long enough to kill the run while the report is in tmp/.
    let lock = fs::File::open(env.spool.join("index/lock")).unwrap();
    lock.lock().unwrap();
    let mut runner = spawn_runner(&env, &["-qf"]);
    let tmp = env.spool.join("tmp");
    let reports_in_tmp = || {
        fs::read_dir(&tmp)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("tf"))
            })
            .unwrap_or(false)
    };
    crate::harness::wait_until_or(
        Duration::from_secs(20),
        "a report being queued",
        || format!("{:?}", peer.messages()),
        reports_in_tmp,
    );
    runner.kill().unwrap();
    runner.wait().unwrap();
    drop(lock);
    env.sendmail(&["-qf"], b"");
    let envelopes: Vec<String> = peer.messages().into_iter().map(|(e, _)| e).collect();
    let to_x = envelopes.iter().filter(|e| e.contains("x@a.test")).count();
    assert_eq!(to_x, 1, "sent to x@a.test again: {envelopes:?}");
}

#[test]
fn a_run_killed_between_relays_does_not_resend() {
    let Some((scratch, peer)) = start_peer(&[]) else {
        return;
    };
    // The second relay takes connections and never greets.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().flatten() {
            held.push(c);
        }
    });
    let table = scratch.dir.join("relays");
    fs::write(&table, format!("b.test [127.0.0.1]:{silent_port}\n")).unwrap();
    let env = relay_env(
        peer.port,
        &format!("RELAYTABLE {}\nO Timeout.initial=120s\n", table.display()),
    );
    env.sendmail(&["-odq", "x@a.test", "y@b.test"], MSG).code(0);
    let mut runner = spawn_runner(&env, &["-qf"]);
    peer.wait_for(1, Duration::from_secs(20));
    // The runner now waits for the second relay's greeting: the first relay's 250 is
    // on disk before that.
    crate::harness::wait_until_or(
        Duration::from_secs(10),
        "x@a.test recorded as delivered",
        || env.json().join("\n"),
        // (the listing shows the recipients still to deliver)
        || {
            env.json()
                .first()
                .is_some_and(|j| !j.contains("x@a.test") && j.contains("y@b.test"))
        },
    );
    runner.kill().unwrap();
    runner.wait().unwrap();
    // The next run, with the second relay still silent (briefly), sends nothing again.
    let r = env.sendmail(&["-qf", "-O", "Timeout.initial=1s"], b"");
    r.code(0);
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 1, "sent to the first relay again: {msgs:?}");
    let j = env.json();
    assert_eq!(j.len(), 1, "{j:?}");
    assert!(
        j[0].contains("{\"address\":\"y@b.test\",\"state\":\"deferred\""),
        "{}",
        j[0]
    );
}

/// SIGTERM to a one-shot queue run (cron's end, a shutdown, `timeout`) while a server is
/// slow to answer the final dot: the run takes no more entries but waits for that reply
/// and records it, so the next run does not send the message again (the periodic runner
/// stops the same way).
#[test]
fn a_queue_run_stopped_by_sigterm_records_the_transaction_in_flight() {
    let Some((_scratch, peer)) = start_peer(&[("STALL", "1.5")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(&["-odq", "stall@example.org"], MSG).code(0);
    let mut child = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-qf"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    crate::harness::wait_until(Duration::from_secs(20), "the final dot", || {
        peer.transcript().contains("DATA-END")
    });
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.is_some(), "the run did not stop after SIGTERM");
    assert_eq!(peer.wait_for(1, Duration::from_secs(10)).len(), 1);
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(peer.messages().len(), 1, "sent again after SIGTERM");
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// A `-bs` client's AUTH credentials never reach the `-X` log: the AUTH command's
/// initial response and the lines after it up to the next command (LOGIN's user name and
/// password) are `(credentials not shown)`; the commands around them are logged.
#[test]
fn traffic_log_hides_server_side_auth_credentials() {
    let env = Env::new();
    let xlog = env.dir.join("x3.log");
    env.sendmail(
        &["-X", xlog.to_str().unwrap(), "-odq", "-bs"],
        b"EHLO c\r\nAUTH PLAIN YWxpY2UAYWxpY2UAczNjcmV0\r\nAUTH LOGIN\r\nYWxpY2U=\r\nczNjcmV0\r\nNOOP\r\nQUIT\r\n",
    );
    let log = fs::read_to_string(&xlog).unwrap();
    for secret in ["YWxpY2UAYWxpY2UAczNjcmV0", "YWxpY2U=", "czNjcmV0"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    let lines: Vec<&str> = log
        .split('\n')
        .map(|l| l.split_once(' ').map_or("", |(_, rest)| rest))
        .collect();
    for want in [
        "<<< EHLO c\r",
        "<<< AUTH PLAIN (credentials not shown)\r",
        "<<< AUTH LOGIN\r",
        "<<< (credentials not shown)\r",
        "<<< NOOP\r",
        "<<< QUIT\r",
    ] {
        assert!(lines.contains(&want), "{want:?} missing:\n{log}");
    }
}

/// Success receipts (`-N success`, RCPT NOTIFY=SUCCESS) to a server without DSN never
/// name a list's members: only a recipient the sender named, or the one target of a
/// one-to-one alias without an owner, gets one (sendmail's QPRIMARY; recorded:
/// compat-tests/cases/receipt-alias-list, receipt-alias-one, receipt-alias-list-owner),
/// from the command line and from an SMTP client the server does not trust alike.
#[test]
fn success_receipts_never_name_a_lists_members() {
    let Some((scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let aliases = scratch.dir.join("aliases");
    fs::write(
        &aliases,
        "list3: l3a@example.org, l3b@example.org\none: l1@example.org\n\
         list4: l4a@example.org\nowner-list4: lowner@example.org\n\
         nested: sub\nsub: n1@example.org, inner\ninner: n2@example.org\n",
    )
    .unwrap();
    // The sender's domain exists for the SMTP server's check.
    let Some(dns) = DnsServer::start(
        &scratch.dir,
        &[
            "--mx-host=example.com,mx.example.com,10",
            "--address=/mx.example.com/127.0.0.1",
        ],
    ) else {
        return;
    };
    let env = relay_env(
        peer.port,
        &format!(
            "ALIASES {}\nO TrustedNetworks=127.0.0.1/32\nRESOLVER 127.0.0.1:{}\n",
            aliases.display(),
            dns.port
        ),
    );
    let receipts = || -> Vec<String> {
        peer.messages()
            .into_iter()
            .filter(|(j, _)| j.contains("\"mail_from\": \"<>\""))
            .map(|(_, m)| String::from_utf8_lossy(&m).into_owned())
            .collect()
    };
    for list in ["list3", "list4", "nested"] {
        env.sendmail(
            &["-odi", "-N", "success", "-f", "snd@example.com", list],
            MSG,
        )
        .code(0);
    }
    assert!(receipts().is_empty(), "{:?}", receipts());
    // A one-to-one alias: the receipt names its target, as sendmail's does.
    env.sendmail(
        &["-odi", "-N", "success", "-f", "snd@example.com", "one"],
        MSG,
    )
    .code(0);
    let got = receipts();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("X-Actual-Recipient: rfc822; l1@example.org"),
        "{}",
        got[0]
    );
    assert!(got[0].contains("    (expanded from: one)"), "{}", got[0]);

    // The same lists for a client outside TrustedNetworks, which EXPN would not tell.
    if std::net::TcpListener::bind("127.0.0.2:0").is_err() {
        crate::harness::unavailable("the 127.0.0.2 loopback address");
        return;
    }
    let before = peer.messages().len();
    let d = Daemon::start(&env, &["-odi"]);
    let mut c = Raw::from(socket2_connect_from("127.0.0.2", d.port));
    c.line();
    c.cmd("EHLO outside.example");
    assert!(c.cmd("MAIL FROM:<snd@example.com>").starts_with("250 "));
    for list in ["list3", "list4", "nested"] {
        let reply = c.cmd(&format!("RCPT TO:<{list}@test.example> NOTIFY=SUCCESS"));
        assert!(reply.starts_with("250 "), "{list}: {reply}");
    }
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(c.cmd("Subject: s\r\n\r\nbody\r\n.").starts_with("250 "));
    c.cmd("QUIT");
    // The members' transactions (list3's and nested's with the sender, list4's with
    // its owner), then time for a receipt that must not come.
    let m = peer.wait_for(before + 2, Duration::from_secs(20));
    assert!(m.len() >= before + 2, "{}", peer.transcript());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(receipts().len(), 1, "{:?}", receipts());
}

/// A queue run stopped by SIGTERM (a service stop, the daemon's SIGHUP restart) while
/// the server has yet to answer the final dot waits for that reply and records it: the
/// entry goes, and the next run sends nothing again. Cut after 3 s, as a stopping run
/// used to be, the message stayed queued after the server had taken it, and the next
/// run sent it a second time.
#[test]
fn a_stopped_queue_run_waits_for_the_reply_to_the_final_dot() {
    let Some((_scratch, peer)) = start_peer(&[("STALL", "6")]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(&["-odq", "stall@example.org"], MSG).code(0);
    let mut run = Command::new(env.link("sendmail"))
        // -qf: in the foreground, the signalled process is the one delivering.
        .args(["-C", env.conf.to_str().unwrap(), "-qf"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The data is on its way once DATA was answered; the server then waits 6 s.
    let start = Instant::now();
    while !peer.transcript().contains(" DATA") && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(peer.transcript().contains(" DATA"), "{}", peer.transcript());
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&run);
    let status = wait_exit(&mut run, Duration::from_secs(90)).expect("the run ended");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        peer.messages().len(),
        1,
        "{}\n{}\n{:?}",
        env.listing(),
        peer.transcript(),
        env.json()
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(peer.messages().len(), 1, "sent again");
}

/// `O QueueSortOrder=time` with `O MaxQueueRunSize=2`: a queue run tries the two oldest
/// entries, oldest first, though the oldest has the highest priority (the most
/// recipients: last in sendmail's default order); the newest waits (compat cases
/// q-sort-time, q-sort-time-v; differences/q-maxrun-size).
#[test]
fn a_run_takes_the_first_entries_of_its_sort_order_up_to_max_queue_run_size() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let submit = |args: &[&str]| {
        let mut full = vec!["-odq"];
        full.extend_from_slice(args);
        env.sendmail(&full, MSG).code(0);
        // Each a second newer than the one before (`Envelope::created` counts seconds).
        std::thread::sleep(Duration::from_millis(1100));
    };
    submit(&[
        "-f",
        "s1@example.org",
        "a1@example.org",
        "a2@example.org",
        "a3@example.org",
    ]);
    submit(&["-f", "s2@example.org", "b1@example.org", "b2@example.org"]);
    submit(&["-f", "s3@example.org", "c1@example.org"]);
    env.sendmail(
        &[
            "-qf",
            "-O",
            "QueueSortOrder=time",
            "-O",
            "MaxQueueRunSize=2",
        ],
        b"",
    )
    .code(0);
    let senders: Vec<String> = peer
        .messages()
        .iter()
        .map(|(j, _)| {
            ["s1", "s2", "s3"]
                .into_iter()
                .find(|s| j.contains(&format!("\"mail_from\": \"{s}@")))
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    assert_eq!(senders, ["s1", "s2"], "{}", env.listing());
    assert_eq!(env.entries().len(), 1, "{}", env.listing());
    // The next run takes the one left.
    env.sendmail(&["-qf", "-O", "MaxQueueRunSize=2"], b"")
        .code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// An AUTHPATH that is not rsendmail's (here a file with another link, which
/// `rsendmail-admin check` fails by the same rule) is never read by a delivery: the
/// message is deferred with the reason, shown by mailq, and nothing reaches the server.
#[test]
fn an_auth_file_not_rsendmails_defers_with_the_reason() {
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, "bob|127.0.0.1:s3cret-pw\n").unwrap();
    fs::set_permissions(&auth, fs::Permissions::from_mode(0o600)).unwrap();
    fs::hard_link(&auth, env.dir.join("auth-link")).unwrap();
    env.add_config(&format!("AUTHPATH {}\n", auth.display()));
    env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
    // mailq shows the reason cut to its column; the listing holds it whole.
    assert!(
        env.mailq(&[]).contains("(Deferred: AUTHPATH "),
        "{}",
        env.mailq(&[])
    );
    let listing = env.json().join("\n");
    assert!(
        listing.contains(&format!(
            "AUTHPATH {} is not rsendmail's (a file with other links): its credentials \
             are not sent",
            auth.display()
        )),
        "{listing}"
    );
    assert_eq!(env.entries().len(), 1, "{listing}");
    assert!(peer.messages().is_empty());
    // Once it has one name, it is used.
    fs::remove_file(env.dir.join("auth-link")).unwrap();
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.entries().is_empty(), "{}", env.mailq(&[]));
    assert_eq!(peer.messages().len(), 1);
}

/// The env of the masking tests: a relay at `port` over clear text (INSECURE), the
/// password `password` for bob there in a 0600 auth.conf, and a MAILLOG: (the env, the
/// log's path).
fn masking_env(port: u16, password: &str) -> (Env, std::path::PathBuf) {
    let env = relay_env(port, "INSECURE\n");
    let auth = env.dir.join("auth.conf");
    fs::write(&auth, format!("bob|127.0.0.1:{password}\n")).unwrap();
    fs::set_permissions(&auth, fs::Permissions::from_mode(0o600)).unwrap();
    let log = env.dir.join("mail.log");
    env.add_config(&format!(
        "AUTHPATH {}\nMAILLOG {}\n",
        auth.display(),
        log.display()
    ));
    (env, log)
}

/// A server that echoes the credentials it refused in its 535: once AUTH is tried, no
/// text from the server shows the password or its base64 forms as AUTH sends them (the
/// `-v` transcript, the `-X` traffic log, the log line, the reason `mailq` shows); each
/// is masked `********`.
#[test]
fn a_refused_password_echoed_by_the_server_is_masked() {
    let Some((_scratch, peer)) = start_peer(&[
        ("AUTH_USER", "bob"),
        ("AUTH_PASS", "right"),
        ("AUTH_NO_CRAM", "1"),
        ("AUTH_ECHO", "1"),
    ]) else {
        return;
    };
    let (env, log) = masking_env(peer.port, "wr0ng-pass");
    let xlog = env.dir.join("traffic.log");
    let r = env.sendmail(
        &["-v", "-X", xlog.to_str().unwrap(), "-odi", "ok@example.org"],
        MSG,
    );
    r.code(0);
    let reason = env.json().remove(0);
    let texts = [
        ("-v", r.stdout.clone()),
        ("-X", fs::read_to_string(&xlog).unwrap()),
        ("log", fs::read_to_string(&log).unwrap()),
        ("mailq", reason),
    ];
    // The password, AUTH PLAIN's base64 of "\0bob\0wr0ng-pass", LOGIN's of the password.
    let forms = ["wr0ng-pass", "AGJvYgB3cjBuZy1wYXNz", "d3IwbmctcGFzcw=="];
    for (what, text) in &texts {
        assert!(
            text.contains("535 5.7.8 Authentication failed for bob pw ********"),
            "{what}: {text}"
        );
        for f in forms {
            assert!(!text.contains(f), "{what} shows {f}: {text}");
        }
    }
    assert!(
        texts[0].1.contains("plain ******** login ********"),
        "{}",
        texts[0].1
    );
    assert!(peer.messages().is_empty());
}

/// `rsendmail-admin show ID`.
fn show(env: &Env, id: &str) -> String {
    let admin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-admin"));
    let r = env.run_raw(&admin, &["-C", env.conf.to_str().unwrap(), "show", id], b"");
    r.code(0);
    r.stdout.clone()
}

/// A relay that learned the password from one delivery's AUTH and echoes it, and its
/// base64, in the greeting of a later connection: that connection's texts (the `-v`
/// transcript, the `-X` traffic log, the log line, `mailq`'s reason, `show`) mask both,
/// though AUTH is never reached on it.
#[test]
fn a_password_echoed_in_a_later_greeting_is_masked() {
    let Some((_scratch, peer)) = start_peer(&[
        ("AUTH_USER", "bob"),
        ("AUTH_PASS", "S3cr3tPassw0rdXYZ"),
        ("AUTH_NO_CRAM", "1"),
        ("ECHO_LATER", "1"),
    ]) else {
        return;
    };
    let (env, log) = masking_env(peer.port, "S3cr3tPassw0rdXYZ");
    env.sendmail(&["-odi", "ok@example.org"], MSG).code(0);
    assert_eq!(peer.messages().len(), 1);
    let xlog = env.dir.join("traffic.log");
    let r = env.sendmail(
        &["-v", "-X", xlog.to_str().unwrap(), "-odi", "ok@example.org"],
        MSG,
    );
    r.code(0);
    let id = env.only_id();
    let texts = [
        ("-v", r.stdout.clone()),
        ("-X", fs::read_to_string(&xlog).unwrap()),
        ("log", fs::read_to_string(&log).unwrap()),
        ("mailq", env.json().remove(0)),
        ("show", show(&env, &id)),
    ];
    // The password, and its base64 (AUTH LOGIN's form).
    for (what, text) in &texts {
        assert!(
            text.contains("421 4.3.2 busy, last password was ******** (b64 ********)"),
            "{what}: {text}"
        );
        for f in ["S3cr3tPassw0rdXYZ", "UzNjcjN0UGFzc3cwcmRYWVo="] {
            assert!(!text.contains(f), "{what} shows {f}: {text}");
        }
    }
    assert_eq!(peer.messages().len(), 1);
}

/// A relay that splits the password across the two lines of its reply to RCPT: each
/// line's part is masked, in the `-v` transcript, the `-X` traffic log, the log line,
/// `mailq`'s reason and `show`; neither half is shown.
#[test]
fn a_password_split_across_a_replys_lines_is_masked() {
    let Some((_scratch, peer)) = start_peer(&[
        ("AUTH_USER", "bob"),
        ("AUTH_PASS", "S3cr3tPassw0rdXYZ"),
        ("AUTH_NO_CRAM", "1"),
        ("SPLIT_ECHO", "RCPT"),
    ]) else {
        return;
    };
    let (env, log) = masking_env(peer.port, "S3cr3tPassw0rdXYZ");
    let xlog = env.dir.join("traffic.log");
    let r = env.sendmail(
        &["-v", "-X", xlog.to_str().unwrap(), "-odi", "ok@example.org"],
        MSG,
    );
    r.code(0);
    let id = env.only_id();
    let texts = [
        ("-v", r.stdout.clone()),
        ("-X", fs::read_to_string(&xlog).unwrap()),
        ("log", fs::read_to_string(&log).unwrap()),
        ("mailq", env.json().remove(0)),
        ("show", show(&env, &id)),
    ];
    for (what, text) in &texts {
        assert!(
            text.contains("4.2.0 ******** second half"),
            "{what}: {text}"
        );
        // Either half, and so the whole.
        for f in ["S3cr3tPa", "ssw0rdXYZ"] {
            assert!(!text.contains(f), "{what} shows {f}: {text}");
        }
    }
    for (what, text) in [&texts[0], &texts[1], &texts[4]] {
        assert!(text.contains("first half ********"), "{what}: {text}");
    }
    assert!(peer.messages().is_empty());
}
