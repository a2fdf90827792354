//! `rsendmail-admin`'s queue commands through the real binaries: list, show, delete,
//! hold, release, retry, bounce; who may act on which entry; an entry deleted while a
//! queue run delivers another; clap's usage errors.

use crate::harness::servers::{Sink, relay_env};
use crate::harness::{
    Env, MSG, Run, TEST_USER, as_user, bounce_report_id, can_switch_user, closed_tcp_port,
    copy_executable, wait_until, write_config,
};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn admin_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-admin"))
}

/// `rsendmail-admin -C conf ARGS`.
fn admin(env: &Env, args: &[&str]) -> Run {
    let mut full = vec!["-C", env.conf.to_str().unwrap()];
    full.extend_from_slice(args);
    env.run_raw(&admin_bin(), &full, b"")
}

/// Queue a message to `rcpt` (`-odq`) and return its ID.
fn queue(env: &Env, rcpt: &str) -> String {
    let before: Vec<PathBuf> = env.entries();
    env.sendmail(&["-odq", "-f", "alice@example.org", rcpt], MSG)
        .code(0);
    let after = env.entries();
    let new: Vec<&PathBuf> = after.iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "{}", env.listing());
    id_of(new[0])
}

fn id_of(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap()[2..].to_string()
}

fn index_text(env: &Env) -> String {
    fs::read_to_string(env.spool.join("index/recipients")).unwrap_or_default()
}

fn held(env: &Env, id: &str) -> bool {
    env.spool.join("hold").join(format!("qf{id}")).exists()
}

fn queued(env: &Env, id: &str) -> bool {
    env.spool.join(format!("qf{id}")).exists()
}

/// The report ID in `bounce`'s line for entry `id` returned to its sender, its report
/// queued and handed to a delivery that `bounce` started (no runner listens in these
/// tests): `ID: returned to its sender; its report is queued as RID (a delivery was
/// started)`.
fn report_queued(line: &str, id: &str) -> String {
    report_queued_as(line, id, "a delivery was started")
}

/// [`report_queued`] with the report handed on `how`.
fn report_queued_as(line: &str, id: &str, how: &str) -> String {
    bounce_report_id(
        line,
        &format!("{id}: returned to its sender; its report is queued as "),
        how,
    )
}

/// Usage errors are clap's message on stderr and exit 64 (EX_USAGE); `--help` and
/// `--version` exit 0.
#[test]
fn usage_errors_exit_64() {
    let env = Env::new();
    for args in [
        &["frobnicate"][..],
        &[][..],
        &["hold"][..],
        &["delete", "--all", "6AUIIquc023976"][..],
        &["list", "--bogus"][..],
    ] {
        let r = admin(&env, args);
        r.code(64);
        assert!(r.stderr.contains("Usage: rsendmail-admin"), "{}", r.stderr);
        assert_eq!(r.stdout, "");
    }
    let r = admin(&env, &["--help"]);
    r.code(0);
    assert!(r.stdout.contains("hold"), "{}", r.stdout);
    admin(&env, &["--version"]).code(0);
    // An argument that is not a queue ID: 64 as well, the other IDs still done.
    let id = queue(&env, "bob@example.org");
    let r = admin(&env, &["hold", "../../etc/passwd", &id]);
    r.code(64);
    assert!(
        r.stderr.contains("../../etc/passwd: not a queue ID"),
        "{}",
        r.stderr
    );
    assert!(held(&env, &id));
    // An empty reason (blanks only too) is refused, the entry left as it was.
    for empty in ["", " \t "] {
        let r = admin(&env, &["bounce", "--reason", empty, &id]);
        r.code(64);
        assert!(r.stderr.contains("the reason is empty"), "{}", r.stderr);
        assert!(held(&env, &id));
    }
}

/// A hostile argument (a long one, one that is not UTF-8, an empty group) comes back
/// in every error as a bounded, escaped prefix, named, and exits 64 (EX_USAGE).
#[test]
fn hostile_arguments_come_back_bounded_and_named() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let long = format!("{}\u{1b}[2J", "A".repeat(10_000));
    let dashed = format!("--{long}");
    let conf = env.conf.to_str().unwrap();
    for args in [
        vec!["hold", long.as_str()],
        vec!["show", long.as_str()],
        vec!["delete", long.as_str()],
        vec!["bounce", "--reason", "r", long.as_str()],
        vec!["init", "--group", long.as_str()],
        vec!["hold", dashed.as_str()],
        vec!["hold", &long[..8_000]],
        vec![long.as_str()],
    ] {
        let mut full = vec!["-C", conf];
        full.extend(&args);
        let r = env.run_raw(&admin_bin(), &full, b"");
        r.code(64);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(said.len() < 2_000, "{:?}: {} bytes", &args[0], said.len());
        assert!(said.contains("AAAAAAAA"), "{said}");
        assert!(!said.contains('\u{1b}'), "{said}");
    }
    // Not UTF-8: the message names the argument and shows its octets.
    for (args, name) in [
        (&["hold", "6AUIIquc023976"][..], "<ID>"),
        (&["show"][..], "<ID>"),
        (&["bounce", "--reason", "x"][..], "<ID>"),
        (&["init", "--group"][..], "--group"),
        (&["delete", "--recipient"][..], "--recipient"),
        (&[][..], "subcommand"),
    ] {
        let out = Command::new(admin_bin())
            .arg("-C")
            .arg(&env.conf)
            .args(args)
            .arg(OsStr::from_bytes(b"ab\xffcd"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(name), "{args:?}: {stderr}");
        assert!(stderr.contains("ab\\377cd"), "{args:?}: {stderr}");
    }
    // An empty group or one no command could name: refused before anything else.
    // Digits alone: groupadd refuses such a name.
    for g in ["", " ", "a b", "-x", "a:b", "a/b", "a\nb", "0", "1000"] {
        let r = admin(&env, &["init", &format!("--group={g}")]);
        r.code(64);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(!said.contains("groupadd"), "{g:?}: {said}");
        assert!(said.contains("--group"), "{g:?}: {said}");
    }
}

/// A control character in an argument clap echoes in a usage error (a subcommand or
/// an option it does not know, an argument too many) is shown as its octets in octal,
/// as every other message shows one: never dropped, never raw (clap's own rendering
/// drops BS, SOH and DEL, and takes ESC and what follows it for an escape sequence).
#[test]
fn control_characters_in_usage_errors_are_shown_in_octal() {
    let env = Env::new();
    for (c, octal) in [
        ('\u{8}', "\\010"),
        ('\u{1}', "\\001"),
        ('\u{7f}', "\\177"),
        ('\u{1b}', "\\033"),
    ] {
        for (args, echoed) in [
            (vec![format!("fro{c}b")], format!("'fro{octal}b'")),
            (vec![format!("fro{c}[2Jb")], format!("'fro{octal}[2Jb'")),
            (
                vec!["list".to_string(), format!("--bo{c}gus")],
                format!("'--bo{octal}gus'"),
            ),
            (
                vec![
                    "show".to_string(),
                    "6AUIIquc023976".to_string(),
                    format!("x{c}y"),
                ],
                format!("'x{octal}y'"),
            ),
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let r = admin(&env, &args);
            r.code(64);
            assert!(r.stderr.contains(&echoed), "{args:?}: {}", r.stderr);
            assert!(!r.stderr.contains(c), "{args:?}: {}", r.stderr);
        }
    }
}

/// Every fix printed inline is a command to paste: a path that needs it shell-quoted,
/// and an `rsendmail-admin` command with the `-C FILE` this spool needs.
#[test]
fn printed_fixes_are_quoted_and_carry_c() {
    let env = Env::new();
    let here = env.dir.join("sp ace");
    let spool = here.join("spool");
    fs::create_dir_all(&spool).unwrap();
    // An established spool (an empty one everyone may write is shared, never taken).
    fs::create_dir(spool.join("tmp")).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o777)).unwrap();
    let conf = here.join("c f.conf");
    let with_spool = |dir: &Path| {
        let text: String = fs::read_to_string(&env.conf)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("SPOOLDIR"))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&conf, format!("{text}SPOOLDIR {}\n", dir.display())).unwrap();
    };
    with_spool(&spool);
    let c = conf.to_str().unwrap();
    let r = env.run_raw(&admin_bin(), &["-C", c, "hold", "6AUIIquc023976"], b"");
    assert!(
        r.stderr
            .contains(&format!(" '{}'` repairs it)", spool.display())),
        "{}",
        r.stderr
    );
    let r = env.run_raw(
        &env.link("sendmail"),
        &["-C", c, "-odq", "bob@example.org"],
        MSG,
    );
    assert!(
        format!("{}{}", r.stdout, r.stderr)
            .contains(&format!("`rsendmail-admin -C '{c}' check` says how")),
        "{}{}",
        r.stdout,
        r.stderr
    );
    // A SPOOLDIR that is a file: the init to run names this configuration.
    let file = here.join("file");
    fs::write(&file, "").unwrap();
    with_spool(&file);
    let r = env.run_raw(&admin_bin(), &["-C", c, "list"], b"");
    r.code(78);
    assert!(
        r.stderr.contains(&format!("rsendmail-admin -C '{c}' init")),
        "{}",
        r.stderr
    );
}

/// `list` is the `mailq` listing, `list --json` is `mailq --json`.
#[test]
fn list_is_the_mailq_listing() {
    let env = Env::new();
    queue(&env, "bob@example.org");
    queue(&env, "carol@example.org");
    let r = admin(&env, &["list"]);
    r.code(0);
    assert_eq!(r.stdout, env.mailq(&[]));
    assert!(r.stdout.contains("(2 requests)"), "{}", r.stdout);
    let r = admin(&env, &["list", "--json"]);
    r.code(0);
    assert_eq!(r.stdout, env.mailq(&["--json"]));
    assert_eq!(r.stdout.lines().count(), 2);
}

/// `show ID`: envelope, each recipient's state and full reason, next attempt, header.
/// An ID that names no entry: 66 (EX_NOINPUT), said on stderr.
#[test]
fn show_gives_envelope_state_next_attempt_and_header() {
    let env = relay_env(closed_tcp_port(), "");
    env.sendmail(&["-odi", "-f", "alice@example.org", "bob@example.org"], MSG)
        .code(0);
    let id = env.only_id();
    let r = admin(&env, &["show", &id]);
    r.code(0);
    for want in [
        format!("Queue ID:       {id}\n"),
        "Status:         queued\n".into(),
        "Submitted by:   root (uid 0)\n".into(),
        "Sender:         alice@example.org\n".into(),
        "Attempts:       1\n".into(),
        "Next attempt:   ".into(),
        "Reason:         Deferred: Connection refused by [127.0.0.1]\n".into(),
        "  bob@example.org: deferred".into(),
        "  Subject: test\n".into(),
        format!("   by test.example (rsendmail 0.1.0) id {id}"),
    ] {
        assert!(r.stdout.contains(&want), "{want:?} in\n{}", r.stdout);
    }
    assert!(r.stdout.contains(" (in "), "{}", r.stdout);
    let r = admin(&env, &["show", "6AUIIquc023976"]);
    r.code(66);
    assert!(
        r.stderr
            .contains("6AUIIquc023976: no such entry in the queue"),
        "{}",
        r.stderr
    );
}

/// `show` gives a multi-line reply whole, each line as the server sent it (a control
/// character in one as `?`), where `mailq -v` keeps sendmail's one line (the last); a
/// reply longer than the room the state record reserves keeps its first lines and its
/// last, and says how many were not kept.
#[test]
fn show_gives_a_multi_line_reply_whole() {
    use crate::harness::servers::start_peer;
    let reply = r"450-4.2.0 first line\r\n450-4.2.0 second \x1b[2J line\r\n450 4.2.0 last line";
    let Some((_scratch, peer)) = start_peer(&[("RAW_REPLY", reply)]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &["-odi", "-f", "alice@example.org", "raw4@example.org"],
        MSG,
    )
    .code(0);
    let id = env.only_id();
    let r = admin(&env, &["show", &id]);
    r.code(0);
    let want = "  raw4@example.org: deferred: 450-4.2.0 first line\n      \
                450-4.2.0 second ?[2J line\n      450 4.2.0 last line\n";
    assert!(r.stdout.contains(want), "{want:?} in\n{}", r.stdout);
    let q = env.mailq(&["-v"]);
    assert!(q.contains("(Deferred: 450 4.2.0 last line)"), "{q}");
    assert!(!q.contains("first line"), "{q}");
    drop(peer);

    // Sixty lines: more than the room of one recipient.
    let many: String = (1..60)
        .map(|n| format!(r"550-5.7.1 line {n:02} of a long refusal\r\n"))
        .collect::<String>()
        + "550 5.7.1 the last line";
    let Some((_scratch, peer)) = start_peer(&[("RAW_REPLY", &many)]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(
        &[
            "-odq",
            "-f",
            "alice@example.org",
            "raw5@example.org",
            "reject4@example.org",
        ],
        MSG,
    )
    .code(0);
    let id = env.only_id();
    env.sendmail(&["-qf"], b"").code(0);
    let r = admin(&env, &["show", &id]);
    r.code(0);
    let out = &r.stdout;
    assert!(
        out.contains("  raw5@example.org: failed: 550-5.7.1 line 01 of a long refusal\n"),
        "{out}"
    );
    let cut = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix('(')?
                .strip_suffix(" more lines not kept)")
        })
        .unwrap_or_else(|| panic!("no cut line in\n{out}"));
    let kept = out.matches("of a long refusal").count();
    assert!(kept > 3, "{out}");
    assert_eq!(kept + cut.parse::<usize>().unwrap(), 59, "{out}");
    assert!(out.contains("\n      550 5.7.1 the last line\n"), "{out}");
    // The state file stays within the room reserved for it.
    let sf = fs::read_to_string(env.spool.join(format!("sf{id}"))).unwrap();
    assert!(sf.len() < 4096, "{sf}");
}

/// `delete`: the entry and its index lines go, the others stay; an unknown ID among
/// the arguments is said and exits 66 while the others are deleted; `--recipient` and
/// `--all`.
#[test]
fn delete_removes_entries_and_their_index_lines() {
    let env = relay_env(closed_tcp_port(), "");
    let a = queue(&env, "bob@example.org");
    let b = queue(&env, "carol@example.net");
    let c = queue(&env, "dave@example.com");
    let d = queue(&env, "erin@example.com");
    // A tried entry has a state file.
    env.sendmail(&["-qf"], b"").code(0);
    assert!(env.spool.join(format!("sf{a}")).exists());
    assert!(index_text(&env).contains(&a), "{}", index_text(&env));
    let r = admin(&env, &["delete", "6AUIIquc023976", &a]);
    r.code(66);
    assert_eq!(r.stdout, format!("{a}: deleted\n"));
    assert!(!queued(&env, &a) && !env.spool.join(format!("sf{a}")).exists());
    let idx = index_text(&env);
    assert!(!idx.contains(&a), "{idx}");
    assert!(idx.contains(&b) && idx.contains(&c), "{idx}");
    // --recipient: a case-insensitive substring of a recipient still open.
    let r = admin(&env, &["delete", "--recipient", "EXAMPLE.COM"]);
    r.code(0);
    assert_eq!(r.stdout, {
        let mut v = [c.clone(), d.clone()];
        v.sort();
        format!("{}: deleted\n{}: deleted\n2 entries deleted\n", v[0], v[1])
    });
    assert!(queued(&env, &b));
    // --all, a held entry included.
    admin(&env, &["hold", &b]).code(0);
    admin(&env, &["delete", "--all"]).code(0);
    assert!(
        env.entries().is_empty() && !held(&env, &b),
        "{}",
        env.listing()
    );
    assert_eq!(index_text(&env), "");
    let r = admin(&env, &["delete", "--all"]);
    r.code(0);
    assert_eq!(r.stdout, "no entries matched\n");
}

/// A held entry is selected by no run (`-q`, `-qR`, `-qI`, `-qf` on its own ID, a
/// background delivery of it); `mailq` lists it with sendmail's quarantine line; once
/// released, `-q` delivers it.
#[test]
fn held_entries_are_never_selected_until_released() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    let id = queue(&env, "held@example.org");
    let other = queue(&env, "other@example.org");
    let r = admin(&env, &["hold", &id]);
    r.code(0);
    assert_eq!(r.stdout, format!("{id}: held\n"));
    assert!(held(&env, &id) && !queued(&env, &id));
    assert!(!index_text(&env).contains(&id), "{}", index_text(&env));
    let listing = env.mailq(&[]);
    assert!(
        listing.contains(&format!("{id}        6 "))
            && listing.contains("\n     QUARANTINE: held\n"),
        "{listing}"
    );
    assert!(
        env.mailq(&["--json"])
            .contains(&format!("\"queue_name\":\"hold\",\"queue_id\":\"{id}\"")),
        "{}",
        env.mailq(&["--json"])
    );
    let by_id = format!("-qI{id}");
    for args in [
        &["-qRheld@"][..],
        &[by_id.as_str()][..],
        &["-q"][..],
        &["-qf"][..],
    ] {
        env.sendmail(args, b"").code(0);
    }
    // Named by its ID, with or without -v: nothing said, exit 0, as sendmail 8.17 runs a
    // quarantined entry's ID without -qQ (recorded: `q-I-quarantined`,
    // `q-I-quarantined-v`).
    for v in [&[][..], &["-v"][..]] {
        let r = env.sendmail(&[&[by_id.as_str(), "-qf"][..], v].concat(), b"");
        r.code(0);
        assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""), "{v:?}");
    }
    // The deliverer named with the entry, as a background submission starts it.
    let deliver = PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-deliver"));
    let _ = Command::new(&deliver)
        .args([
            "--entry",
            &id,
            "--",
            "sendmail",
            "-C",
            env.conf.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    // (`-q` and its selections run in the background; `-qf` in the foreground.)
    wait_until(
        Duration::from_secs(10),
        "the other entry at the sink",
        || sink.dumps().len() == 1,
    );
    crate::harness::holds_for(Duration::from_secs(1), "nothing more sent", || {
        sink.dumps().len() == 1
    });
    let dumps = sink.dumps();
    assert!(dumps[0].contains("other@example.org"));
    assert!(!queued(&env, &other));
    assert!(held(&env, &id), "{}", env.listing());
    // Holding again says so; releasing a queued entry says so; both exit 0.
    admin(&env, &["hold", &id])
        .code(0)
        .stdout_is(&format!("{id}: already held\n"));
    let r = admin(&env, &["release", &id]);
    r.code(0).stdout_is(&format!("{id}: released\n"));
    assert!(queued(&env, &id) && !held(&env, &id));
    assert!(index_text(&env).contains(&id), "{}", index_text(&env));
    admin(&env, &["release", &id])
        .code(0)
        .stdout_is(&format!("{id}: not held\n"));
    env.sendmail(&["-qf"], b"").code(0);
    wait_until(
        Duration::from_secs(10),
        "the released entry at the sink",
        || sink.dumps().len() == 2,
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// Rewrite the config's `PORT` line.
fn set_port(env: &Env, port: u16) {
    let text = fs::read_to_string(&env.conf).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("PORT ") {
                format!("PORT {port}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&env.conf, text).unwrap();
}

/// `retry ID`: a deferred entry whose back-off has hours to go is due now: the
/// delivery `retry` starts (no runner listens) delivers it, and the back-off is gone.
#[test]
fn retry_delivers_a_deferred_entry_without_waiting_for_its_back_off() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(closed_tcp_port(), "O QueueRetryMin=2h\n");
    env.sendmail(&["-odi", "bob@example.org"], MSG).code(0);
    let id = env.only_id();
    let json = env.mailq(&["--json"]);
    assert!(json.contains("\"next_attempt\""), "{json}");
    set_port(&env, sink.port);
    // A periodic run (not a selection) leaves it to its back-off.
    let r = admin(&env, &["retry", &id]);
    r.code(0);
    assert!(
        r.stdout.starts_with(&format!("{id}: due now (")),
        "{}",
        r.stdout
    );
    wait_until(
        Duration::from_secs(15),
        "the retried entry at the sink",
        || sink.dumps().len() == 1,
    );
    env.wait_until_empty(Duration::from_secs(10));
}

/// `retry` of a held entry releases it; an unknown ID: 66.
#[test]
fn retry_of_a_held_entry_releases_it() {
    let env = relay_env(closed_tcp_port(), "");
    let id = queue(&env, "bob@example.org");
    admin(&env, &["hold", &id]).code(0);
    let r = admin(&env, &["retry", &id, "6AUIIquc023976"]);
    r.code(66);
    assert!(
        r.stdout.starts_with(&format!("{id}: released, due now (")),
        "{}",
        r.stdout
    );
    // The delivery it started finds the port closed: the entry stays, queued.
    wait_until(
        Duration::from_secs(10),
        "the entry back in the queue",
        || queued(&env, &id) && !held(&env, &id),
    );
}

/// `bounce` of an entry whose recipients asked for no failure report (`-N never`): it
/// goes, no report is made to anyone, and the line says so, not "returned to its
/// sender".
#[test]
fn bounce_of_an_entry_that_wants_no_report_says_none_was_made() {
    let env = Env::new();
    env.sendmail(&["-odq", "-N", "never", "bob@example.org"], MSG)
        .code(0);
    let id = env.only_id();
    let r = admin(&env, &["bounce", &id]);
    r.code(0);
    assert_eq!(
        r.stdout,
        format!("{id}: returned; no report was made: its recipients' NOTIFY asks for none\n"),
        "{}",
        r.stderr
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
    let mail = env.dir.join("mail");
    let boxes: Vec<_> = fs::read_dir(&mail).map(|d| d.count()).into_iter().collect();
    assert!(boxes.iter().all(|n| *n == 0), "{}", mail.display());
}

/// `bounce ID --reason TEXT`: exactly one RFC 3464 report, to the sender, naming the
/// reason; the message is sent to no recipient; the entry is gone; a later run sends
/// nothing more.
#[test]
fn bounce_returns_exactly_one_report_to_the_sender() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    // ErrorMode left at its default (p), which a queue run's report does not follow.
    let conf = fs::read_to_string(&env.conf).unwrap();
    assert!(conf.contains("O ErrorMode=m\n"));
    fs::write(&env.conf, conf.replace("O ErrorMode=m\n", "")).unwrap();
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let id = queue(&env, "bob@example.org");
    let r = admin(&env, &["bounce", &id, "--reason", "spam run\r\nBcc: x"]);
    r.code(0);
    let rid = report_queued(r.stdout.trim_end(), &id);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(!queued(&env, &id));
    // The report goes out without the command, through the delivery it started.
    wait_until(Duration::from_secs(10), "the report at the sink", || {
        !sink.dumps().is_empty() && !queued(&env, &rid)
    });
    env.sendmail(&["-qf"], b"").code(0);
    std::thread::sleep(Duration::from_millis(300));
    let dumps = sink.dumps();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let d = &dumps[0];
    assert!(
        d.contains("X-Rcpt-Args: <alice@example.org>") || d.contains("alice@example.org"),
        "{d}"
    );
    assert!(
        d.contains("multipart/report; report-type=delivery-status"),
        "{d}"
    );
    assert!(
        d.contains("Returned to sender by the administrator: spam run\\015\\012Bcc: x"),
        "{d}"
    );
    assert!(
        d.contains("Final-Recipient: RFC822; bob@example.org"),
        "{d}"
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
    // The log line of the returned recipient names the mailer it would have gone by
    // (the smarthost's), not local delivery, and no relay: none was contacted.
    let logged = fs::read_to_string(&log).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains(&format!("{id}: to=<bob@example.org>,")))
        .unwrap_or_else(|| panic!("no line for bob in\n{logged}"));
    assert!(
        line.contains(", mailer=relay, ")
            && !line.contains("relay=127")
            && !line.contains(", relay="),
        "{line}"
    );
    // The log names the report queued, and the report's own lines its delivery.
    assert!(
        logged.contains(&format!(
            "{id}: its report is queued as {rid} (a delivery was started)"
        )),
        "{logged}"
    );
    assert!(
        logged.contains(&format!("{rid}: to=<alice@example.org>,")),
        "{logged}"
    );
}

/// `bounce --reason` with text outside US-ASCII: the report's explanation keeps it as
/// UTF-8 (the part declared so), its control characters still escaped; only the
/// Diagnostic-Code, which RFC 3464 keeps US-ASCII, has `?` for it.
#[test]
fn bounce_reason_keeps_utf8_in_the_reports_explanation() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    let id = queue(&env, "bob@example.org");
    let r = admin(&env, &["bounce", &id, "--reason", "Spam über\r\nBcc: x"]);
    r.code(0);
    let rid = report_queued(r.stdout.trim_end(), &id);
    wait_until(Duration::from_secs(10), "the report at the sink", || {
        !sink.dumps().is_empty() && !queued(&env, &rid)
    });
    let dumps = sink.dumps();
    let d = &dumps[0];
    assert!(
        d.contains(
            "    (reason: 550 5.0.0 Returned to sender by the administrator: Spam über\\015\\012Bcc: x)\n"
        ),
        "{d}"
    );
    assert!(
        d.contains("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n"),
        "{d}"
    );
    assert!(
        d.contains(
            "Diagnostic-Code: X-Unix; 550 5.0.0 Returned to sender by the administrator: \
             Spam ?ber\\015\\012Bcc: x\n"
        ),
        "{d}"
    );
}

/// `bounce` whose deliverer cannot queue the report (a full disk): one line, the
/// admin's, naming the deliverer's reason; never the deliverer's own line beside it
/// saying something else (75, the mark kept).
#[test]
fn bounce_whose_report_cannot_be_queued_says_it_in_one_line() {
    let env = Env::new();
    let id = queue(&env, "bob@example.org");
    let here = env.dir.join("bin");
    fs::create_dir(&here).unwrap();
    let adm = here.join("rsendmail-admin");
    copy_executable(&admin_bin(), &adm);
    let deliver = here.join("rsendmail-deliver");
    fs::write(
        &deliver,
        "#!/bin/sh\necho 'cannot record state in /s/sfX: No space left on device; the \
         message stays queued' >&2\nexit 75\n",
    )
    .unwrap();
    fs::set_permissions(&deliver, fs::Permissions::from_mode(0o755)).unwrap();
    let r = env.run_raw(
        &adm,
        &["-C", env.conf.to_str().unwrap(), "bounce", &id],
        b"",
    );
    r.code(75);
    assert_eq!(
        r.stderr,
        format!(
            "rsendmail-admin: {id}: marked to be returned; its report could not be queued \
             yet (cannot record state in /s/sfX: No space left on device); the next queue \
             run returns it\n"
        )
    );
    assert!(queued(&env, &id));
    // `show` says it waits to be returned, and who asked, as the report will.
    let r = admin(&env, &["show", &id]);
    r.code(0);
    assert!(
        r.stdout
            .contains("Status:         to be returned to its sender by the next attempt\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Returned:       by the administrator\n"),
        "{}",
        r.stdout
    );
}

/// A deliverer beside a copy of `rsendmail-admin` in `env`'s `bin/` that notes its
/// arguments (a line each run, in `calls`) and runs the real one: the copy, and `calls`.
fn admin_noting_deliveries(env: &Env) -> (PathBuf, PathBuf) {
    let here = env.dir.join("bin");
    fs::create_dir(&here).unwrap();
    let adm = here.join("rsendmail-admin");
    copy_executable(&admin_bin(), &adm);
    let calls = env.dir.join("calls");
    let deliver = here.join("rsendmail-deliver");
    fs::write(
        &deliver,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            calls.display(),
            Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver")).display()
        ),
    )
    .unwrap();
    fs::set_permissions(&deliver, fs::Permissions::from_mode(0o755)).unwrap();
    (adm, calls)
}

/// `bounce` of several entries returns them all in one deliverer process, and hands
/// their reports on together (one background delivery, no runner listening): each
/// entry's line as when it is returned alone, each report queued once.
#[test]
fn bounce_of_several_entries_returns_them_in_one_process() {
    let env = Env::new();
    let ids: Vec<String> = (0..4)
        .map(|i| queue(&env, &format!("r{i}@example.org")))
        .collect();
    let (adm, calls) = admin_noting_deliveries(&env);
    let mut args = vec!["-C", env.conf.to_str().unwrap(), "bounce"];
    args.extend(ids.iter().map(String::as_str));
    let r = env.run_raw(&adm, &args, b"");
    r.code(0);
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
    let reports: Vec<String> = ids
        .iter()
        .zip(r.stdout.lines())
        .map(|(id, line)| report_queued(line, id))
        .collect();
    for id in &ids {
        assert!(!queued(&env, id), "{}", env.listing());
    }
    // The background delivery is started, not waited for: its line may come later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let calls = loop {
        let text = fs::read_to_string(&calls).unwrap();
        if text.contains("--background") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let returns: Vec<&str> = calls.lines().filter(|l| l.contains("--queued")).collect();
    assert_eq!(returns.len(), 1, "{calls}");
    assert!(
        returns[0].starts_with(&format!("--entry {} --queued", ids.join(","))),
        "{calls}"
    );
    let handed: Vec<&str> = calls
        .lines()
        .filter(|l| l.contains("--background"))
        .collect();
    assert_eq!(handed.len(), 1, "{calls}");
    assert!(
        handed[0].starts_with(&format!("--entry {} --background", reports.join(","))),
        "{calls}"
    );
}

/// `bounce` of an entry whose sender is local (submitted with `-odq` by a user, no
/// `-f`), with ErrorMode left at its default (p): the report is delivered to the
/// sender's mailbox as a queue run's failure report is, never saved in the caller's
/// ~/dead.letter; exactly one report, and nothing left queued.
#[test]
fn bounce_of_a_local_senders_entry_mails_the_report() {
    let env = Env::new();
    let conf = fs::read_to_string(&env.conf).unwrap();
    fs::write(&env.conf, conf.replace("O ErrorMode=m\n", "")).unwrap();
    let dead = PathBuf::from("/root/dead.letter");
    let before = fs::metadata(&dead).map(|m| m.len()).ok();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let id = env.only_id();
    let r = admin(&env, &["bounce", &id, "--reason", "retired"]);
    r.code(0);
    report_queued(r.stdout.trim_end(), &id);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert_eq!(fs::metadata(&dead).map(|m| m.len()).ok(), before);
    // Delivered by the delivery it started, or by a run once that one is done.
    wait_until(Duration::from_secs(20), "the queue emptied", || {
        env.sendmail(&["-q"], b"").code(0);
        env.entries().is_empty()
    });
    let mbox = fs::read_to_string(env.dir.join("mail/root")).unwrap_or_default();
    assert_eq!(
        mbox.matches("report-type=delivery-status").count(),
        1,
        "{mbox}"
    );
    assert!(
        mbox.contains("Returned to sender by the administrator: retired"),
        "{mbox}"
    );
    assert!(
        mbox.contains("Final-Recipient: RFC822; bob@example.org"),
        "{mbox}"
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// A deliverer killed between the commit of a failure report and the removal of its
/// original (the unlink of `qf<ID>`): the next run finds the report queued and sends it
/// once, for `rsendmail-admin bounce` and for a queue run's own failure alike; the
/// administrator is told that the deliverer was killed, not that the report could not
/// be queued, and a `bounce` said again names the report queued before the crash.
#[test]
fn a_report_is_sent_once_after_a_crash_before_its_original_goes() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    for how in ["queue run", "bounce"] {
        let env = Env::new();
        // The queue run's failure: a program that says the user is unknown (67).
        let aliases = env.dir.join("aliases");
        fs::write(&aliases, "gone: \"|exit 67\"\n").unwrap();
        env.add_config(&format!("ALIASES {}\n", aliases.display()));
        let rcpt = if how == "bounce" {
            "bob@example.org"
        } else {
            "gone"
        };
        env.add_config(&format!("MAILLOG {}\n", env.dir.join("maillog").display()));
        env.sendmail(&["-odq", rcpt], MSG).code(0);
        let id = env.only_id();
        let qf = env.spool.join(format!("qf{id}"));
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-o", "/dev/null", "-P"])
            .arg(&qf)
            .args(["-e", "trace=unlink,unlinkat"])
            .args(["-e", "inject=unlink,unlinkat:signal=KILL", "--"]);
        if how == "bounce" {
            cmd.arg(admin_bin())
                .args(["-C", env.conf.to_str().unwrap(), "bounce", &id]);
        } else {
            cmd.arg(env!("CARGO_BIN_EXE_rsendmail"))
                .args(["-C", env.conf.to_str().unwrap(), "-q"]);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // Killed at the unlink: the original is queued, its report too.
        assert!(queued(&env, &id), "{how}: {err} {}", env.listing());
        let log = fs::read_to_string(env.dir.join("maillog")).unwrap_or_default();
        assert!(log.contains(": DSN: failure"), "{how}: {log}");
        if how == "bounce" {
            assert_eq!(out.status.code(), Some(75), "{err}");
            assert!(
                err.contains(&format!(
                    "{id}: marked to be returned; the deliverer was killed by signal 9 before it was done, the next queue run finishes returning it"
                )),
                "{err}"
            );
            assert!(!err.contains("could not be queued"), "{err}");
            // The administrator says it again: the report queued before the crash is
            // found by its ID, named, and handed on; none is made a second time.
            let before: Vec<String> = env
                .entries()
                .iter()
                .map(|p| id_of(p))
                .filter(|e| *e != id)
                .collect();
            assert_eq!(before.len(), 1, "{}", env.listing());
            let r = admin(&env, &["bounce", &id]);
            r.code(0);
            assert_eq!(report_queued(r.stdout.trim_end(), &id), before[0]);
            let log = fs::read_to_string(env.dir.join("maillog")).unwrap_or_default();
            assert!(
                log.contains(&format!(
                    "{id}: its reports ({}) were queued by a run that ended before its record: removed",
                    before[0]
                )),
                "{log}"
            );
        }
        wait_until(Duration::from_secs(20), "the queue emptied", || {
            env.sendmail(&["-q"], b"").code(0);
            env.entries().is_empty()
        });
        let mbox = fs::read_to_string(env.dir.join("mail/root")).unwrap_or_default();
        assert_eq!(
            mbox.matches("report-type=delivery-status").count(),
            1,
            "{how}: {}",
            fs::read_to_string(env.dir.join("maillog")).unwrap_or_default()
        );
    }
}

/// A deliverer killed between the commit of a failure report and the record of its
/// original (the unlink of `qf<ID>` when every recipient is final, the rename of the
/// state file when one is deferred): the next run finds the report queued by its derived
/// ID and records the recipient it reports as failed; it does not try that recipient
/// again (the program runs once), and the report is sent once.
#[test]
fn a_reported_recipient_is_not_tried_again_after_a_crash() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    // The original's record is the last unlink of its queue file, or the last rename of
    // its state file: counted in a run that is not killed, then killed at it.
    let setup = |with_deferred: bool| {
        let env = Env::new();
        // The program runs as the aliases' owner's or the default user: it may write here.
        let runs = env.dir.join("runs");
        fs::write(&runs, "").unwrap();
        fs::set_permissions(&runs, fs::Permissions::from_mode(0o666)).unwrap();
        let aliases = env.dir.join("aliases");
        fs::write(
            &aliases,
            format!(
                "gone: \"|echo run >> {}; exit 67\"\nlater: \"|exit 75\"\n",
                runs.display()
            ),
        )
        .unwrap();
        env.add_config(&format!("ALIASES {}\n", aliases.display()));
        env.add_config(&format!("MAILLOG {}\n", env.dir.join("maillog").display()));
        let rcpts: &[&str] = if with_deferred {
            &["-odq", "gone", "later"]
        } else {
            &["-odq", "gone"]
        };
        env.sendmail(rcpts, MSG).code(0);
        let id = env.only_id();
        let (path, calls) = if with_deferred {
            (
                env.spool.join(format!("sf{id}")),
                "rename,renameat,renameat2",
            )
        } else {
            (env.spool.join(format!("qf{id}")), "unlink,unlinkat")
        };
        (env, runs, id, path, calls)
    };
    // The calls are counted per process, as strace counts them for `when=`: the
    // record's place among the calls of the process that makes it. (`-P` is not used: it
    // matches a rename's first path only.)
    let traced = |env: &Env, path: &Path, calls: &str, inject: Option<usize>| {
        let trace = env.dir.join("trace");
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-o"]).arg(&trace);
        cmd.args(["-e", &format!("trace={calls}")]);
        if let Some(n) = inject {
            cmd.args(["-e", &format!("inject={calls}:signal=KILL:when={n}")]);
        }
        let out = cmd
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_rsendmail"))
            .args(["-C", env.conf.to_str().unwrap(), "-q"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = fs::read_to_string(&trace).unwrap_or_default();
        let calls: Vec<(&str, &str)> = text
            .lines()
            .filter(|l| !l.contains(" --- ") && !l.contains(" +++ ") && !l.contains("resumed>"))
            .filter_map(|l| l.split_once(' '))
            .collect();
        let wanted = format!("\"{}\"", path.display());
        let last = calls
            .iter()
            .rposition(|(_, c)| c.contains(&wanted))
            .map_or(0, |at| {
                let pid = calls[at].0;
                calls[..=at].iter().filter(|(p, _)| *p == pid).count()
            });
        (out, last)
    };
    // Held after the crash (`rsendmail-admin hold`): its report waits until it is
    // released, then is sent once.
    for (with_deferred, hold) in [(false, false), (true, false), (false, true)] {
        let (env, _, _, path, calls) = setup(with_deferred);
        let (_, last) = traced(&env, &path, calls, None);
        assert!(last > 0, "{with_deferred}: no record traced");
        let (env, runs, id, path, calls) = setup(with_deferred);
        let (out, _) = traced(&env, &path, calls, Some(last));
        let err = String::from_utf8_lossy(&out.stderr);
        let log = fs::read_to_string(env.dir.join("maillog")).unwrap_or_default();
        assert!(
            queued(&env, &id),
            "{with_deferred}: {err} {}",
            env.listing()
        );
        assert!(log.contains(": DSN: failure"), "{with_deferred}: {log}");
        // Killed before the attempt's record: the failure is not recorded.
        let sf = fs::read_to_string(env.spool.join(format!("sf{id}"))).unwrap_or_default();
        assert!(!sf.contains("\nrcpt 0 failed"), "{with_deferred}: {sf}");
        assert_eq!(
            fs::read_to_string(&runs).unwrap_or_default(),
            "run\n",
            "{with_deferred}: {log}"
        );
        let mbox = || fs::read_to_string(env.dir.join("mail/root")).unwrap_or_default();
        if hold {
            admin(&env, &["hold", &id]).code(0);
            for _ in 0..3 {
                env.sendmail(&["-q"], b"").code(0);
            }
            // The runs' background deliverers.
            std::thread::sleep(Duration::from_secs(1));
            let log = fs::read_to_string(env.dir.join("maillog")).unwrap_or_default();
            assert!(!mbox().contains("report-type"), "sent while held: {log}");
            assert_eq!(env.entries().len(), 1, "{}", env.listing());
            admin(&env, &["release", &id]).code(0);
        }
        for _ in 0..3 {
            env.sendmail(&["-q"], b"").code(0);
        }
        let log = fs::read_to_string(env.dir.join("maillog")).unwrap_or_default();
        assert_eq!(
            fs::read_to_string(&runs).unwrap_or_default(),
            "run\n",
            "{with_deferred}: tried again: {log}"
        );
        wait_until(Duration::from_secs(20), "the report delivered", || {
            env.sendmail(&["-q"], b"").code(0);
            mbox().contains("report-type=delivery-status")
        });
        assert_eq!(
            mbox().matches("report-type=delivery-status").count(),
            1,
            "{with_deferred}: {log}"
        );
        assert_eq!(fs::read_to_string(&runs).unwrap_or_default(), "run\n");
        // The deferred recipient is still queued, the reported one never again.
        assert_eq!(queued(&env, &id), with_deferred, "{}", env.listing());
    }
}

/// A `SPOOLDIR` that is not there (a typo: its parent missing too; or a spool not made
/// yet) is refused by every queue command and by `config` as by every other entry
/// point: exit 78 (EX_CONFIG), the configuration's file and line, nothing created; never
/// "is empty" nor "no such entry".
#[test]
fn a_missing_spool_is_refused_with_its_file_and_line() {
    let env = Env::new();
    let conf = fs::read_to_string(&env.conf).unwrap();
    let id = "6AUIIquc023976";
    let init_said = format!(
        "no such directory (nothing was created: the spool is made by the install, or by \
         \"rsendmail-admin -C {} init\" as root)",
        env.conf.display()
    );
    for (spool, says) in [
        (
            env.dir.join("nonexist/spool"),
            "(a typo? nothing was created)",
        ),
        (env.dir.join("notyet"), &init_said),
    ] {
        fs::write(&env.conf, env.config_naming_spool(&spool)).unwrap();
        let want = format!(
            "{}: line 1: SPOOLDIR {}: no such directory",
            env.conf.display(),
            spool.display()
        );
        for args in [
            &["list"][..],
            &["list", "--json"][..],
            &["show", id][..],
            &["delete", id][..],
            &["delete", "--all"][..],
            &["delete", "--recipient", "bob"][..],
            &["hold", id][..],
            &["release", id][..],
            &["retry", id][..],
            &["bounce", id][..],
            &["config"][..],
        ] {
            let r = admin(&env, args);
            r.code(78);
            // Every command says it on stderr, `config` too.
            let said = &r.stderr;
            assert!(said.contains(&want), "{args:?}: {said}");
            assert!(said.contains(says), "{args:?}: {said}");
            assert!(!r.stdout.contains("empty"), "{args:?}: {}", r.stdout);
            assert!(!spool.exists());
        }
    }
    // `config -O QueueDirectory=` naming a missing directory: refused the same way.
    fs::write(&env.conf, &conf).unwrap();
    let q = env.dir.join("nonexist/q");
    let r = admin(
        &env,
        &["config", "-O", &format!("QueueDirectory={}", q.display())],
    );
    r.code(78);
    assert!(r.stderr.contains(&q.display().to_string()), "{}", r.stderr);
    assert!(!r.stderr.contains("SPOOLDIR"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    admin(&env, &["config", "-O", "MaxHopCount=12"]).code(0);
}

/// `list --json` and `mailq --json` with unreadable entries (a truncated queue file, a
/// symbolic link planted in `hold/`): every line of stdout is a JSON object, the
/// unreadable ones `{"queue_name":...,"queue_id":ID,"error":TEXT}`; nothing else. The
/// text listing marks the held one held.
#[test]
fn json_listings_stay_json_with_unreadable_entries() {
    let env = Env::new();
    let good = queue(&env, "bob@example.org");
    let cut = queue(&env, "carol@example.org");
    let linked = queue(&env, "dave@example.org");
    admin(&env, &["hold", &linked]).code(0);
    let qf = env.spool.join(format!("qf{cut}"));
    let f = fs::OpenOptions::new().write(true).open(&qf).unwrap();
    f.set_len(50).unwrap();
    let held_qf = env.spool.join("hold").join(format!("qf{linked}"));
    fs::remove_file(&held_qf).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &held_qf).unwrap();
    let mq = env.link("mailq");
    for (admins, r) in [
        (true, admin(&env, &["list", "--json"])),
        (
            false,
            env.run_raw(&mq, &["-C", env.conf.to_str().unwrap(), "--json"], b""),
        ),
    ] {
        r.code(0);
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{}", r.stdout);
        for l in &lines {
            assert!(l.starts_with('{') && l.ends_with('}'), "{}", r.stdout);
        }
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("\"queue_id\":\"{good}\""))
                    && l.contains("\"recipients\"")),
            "{}",
            r.stdout
        );
        let bad = format!(
            "{{\"queue_name\":\"queued\",\"queue_id\":\"{cut}\",\"error\":\"cannot read queue file: "
        );
        assert!(lines.iter().any(|l| l.starts_with(&bad)), "{}", r.stdout);
        let bad = format!(
            "{{\"queue_name\":\"hold\",\"queue_id\":\"{linked}\",\"error\":\"cannot read queue file: "
        );
        assert!(lines.iter().any(|l| l.starts_with(&bad)), "{}", r.stdout);
        // Who held it, from its state file, in `rsendmail-admin list` alone.
        let by = ",\"held_by\":{\"user\":";
        let uid = format!(",\"uid\":{}}}}}", unsafe { libc::getuid() });
        assert_eq!(
            lines
                .iter()
                .any(|l| l.starts_with(&bad) && l.contains(by) && l.ends_with(&uid)),
            admins,
            "{}",
            r.stdout
        );
    }
    // The text listing: the held one unreadable is marked held all the same, as a
    // readable held entry is; the queued one is not.
    let r = admin(&env, &["list"]);
    r.code(0);
    assert!(
        r.stdout
            .contains(&format!("{linked} (cannot read queue file: "))
            && r.stdout
                .split(&format!("{linked} (cannot read queue file: "))
                .nth(1)
                .and_then(|rest| rest.lines().nth(1))
                .is_some_and(|l| l.starts_with("     QUARANTINE: held by ")),
        "{}",
        r.stdout
    );
    // `mailq`'s line is sendmail's, without the holder.
    let r = env.run_raw(&mq, &["-C", env.conf.to_str().unwrap()], b"");
    r.code(0);
    assert_eq!(
        r.stdout
            .split(&format!("{linked} (cannot read queue file: "))
            .nth(1)
            .and_then(|rest| rest.lines().nth(1)),
        Some("     QUARANTINE: held"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .split(&format!("{cut} (cannot read queue file: "))
            .nth(1)
            .and_then(|rest| rest.lines().nth(1))
            != Some("     QUARANTINE: held"),
        "{}",
        r.stdout
    );
}

/// A queue file that is not a regular file (a symbolic link planted in `hold/` or in the
/// spool, a directory): every action but `delete` refuses it with 65 (EX_DATAERR) and
/// says how to remove it; `delete` (by ID or `--all`) by root removes the name itself,
/// never what a link points to.
#[test]
fn a_planted_link_is_refused_by_actions_and_removed_by_delete() {
    let env = Env::new();
    let target = env.dir.join("target");
    fs::write(&target, "keep me\n").unwrap();
    let plant = |id: &str, held: bool| {
        let qf = if held {
            env.spool.join("hold").join(format!("qf{id}"))
        } else {
            env.spool.join(format!("qf{id}"))
        };
        fs::remove_file(&qf).unwrap();
        std::os::unix::fs::symlink(&target, &qf).unwrap();
        qf
    };
    let a = queue(&env, "bob@example.org");
    admin(&env, &["hold", &a]).code(0);
    let qa = plant(&a, true);
    for action in ["release", "retry", "bounce", "show", "hold"] {
        let r = admin(&env, &[action, &a]);
        r.code(65);
        assert!(
            r.stderr.contains(&format!(
                "{a}: its queue file {} is a symbolic link, not a queue entry: refused, nothing followed (\"rsendmail-admin -C {} delete {a}\" removes it)",
                qa.display(),
                env.conf.display()
            )),
            "{action}: {}",
            r.stderr
        );
        assert!(fs::symlink_metadata(&qa).is_ok());
    }
    let r = admin(&env, &["delete", &a]);
    r.code(0);
    assert_eq!(
        r.stdout,
        format!(
            "{a}: deleted (its queue file was a symbolic link, removed without following it)\n"
        )
    );
    assert!(fs::symlink_metadata(&qa).is_err());
    assert!(!env.spool.join("hold").join(format!("sf{a}")).exists());
    // --all takes them too, held or queued.
    let b = queue(&env, "carol@example.org");
    let c = queue(&env, "dave@example.org");
    admin(&env, &["hold", &b]).code(0);
    let qb = plant(&b, true);
    let qc = plant(&c, false);
    let r = admin(&env, &["delete", "--all"]);
    r.code(0);
    assert!(fs::symlink_metadata(&qb).is_err() && fs::symlink_metadata(&qc).is_err());
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep me\n");
}

/// A user without a configuration whose own default spool is not made yet: `list`
/// says so (it is made with her first message), not "is empty".
#[test]
fn list_of_an_own_spool_not_made_yet_says_so() {
    if !can_switch_user() {
        return;
    }
    let here = std::env::temp_dir().join(format!("rsendmail-admin-own-{}", std::process::id()));
    let _ = fs::remove_dir_all(&here);
    fs::create_dir_all(&here).unwrap();
    fs::set_permissions(&here, fs::Permissions::from_mode(0o755)).unwrap();
    let adm = here.join("rsendmail-admin");
    copy_executable(&admin_bin(), &adm);
    fs::set_permissions(&adm, fs::Permissions::from_mode(0o755)).unwrap();
    let home = here.join("home");
    let none = here.join("no.conf");
    let out = as_nobody(
        &adm,
        &["list"],
        &[
            ("HOME", home.to_str().unwrap()),
            ("RSENDMAIL_SYSTEM_CONFIG", none.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let spool = home.join(".local/state/rsendmail/spool");
    assert_eq!(
        text(&out.stdout),
        format!(
            "{} does not exist yet: it is made when the first message is queued\n\t\tTotal requests: 0\n",
            spool.display()
        )
    );
    assert!(!spool.exists());
    let _ = fs::remove_dir_all(&here);
}

/// Each action is logged with who, what and which ID.
#[test]
fn every_action_is_logged() {
    let env = Env::new();
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let id = queue(&env, "bob@example.org");
    admin(&env, &["hold", &id]).code(0);
    admin(&env, &["release", &id]).code(0);
    admin(&env, &["delete", &id]).code(0);
    let text = fs::read_to_string(&log).unwrap();
    for what in ["held", "released", "deleted"] {
        assert!(
            text.contains(&format!("{id}: {what} by root (uid 0)")),
            "{what} in\n{text}"
        );
    }
}

/// The user `nobody`, running `program ARGS` with a clean environment.
fn as_nobody(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "nobody", "--", "env", "-i", "PATH=/usr/bin:/bin"]);
    for (k, v) in envs {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg(program).args(args).stdin(Stdio::null());
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An installed system, seen through a private mount namespace: `/etc` overlaid with
/// `upper` (its `rsendmail/rsendmail.conf`, and a `group` file when one is given), so
/// that set-gid copies of the programs read that configuration; the host's `/etc` is
/// not changed. Runs `program ARGS` there as `user` with `stdin`.
pub(crate) fn in_system(
    upper: &Path,
    user: &str,
    program: &Path,
    args: &[&str],
    stdin: &[u8],
) -> std::process::Output {
    use std::io::Write;
    let work = upper.with_extension("work");
    fs::create_dir_all(&work).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t overlay overlay -o lowerdir=/etc,upperdir=\"$1\",workdir=\"$2\" /etc \
             && u=$3 && shift 3 && exec runuser -u \"$u\" -- env -i PATH=/usr/bin:/bin \"$@\"",
        )
        .arg("sh")
        .arg(upper)
        .arg(&work)
        .arg(user)
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// An installed system for the tests of two users (in a private mount namespace,
/// [`in_system`]): a spool of a fit group, its configuration, an `/etc` overlay with it
/// (`etc`) and one that also makes the test user a member of the spool's group
/// (`member_etc`), and set-gid copies of `sendmail` and `rsendmail-admin`.
struct SetgidSystem {
    here: PathBuf,
    spool: PathBuf,
    conf: PathBuf,
    etc: PathBuf,
    member_etc: PathBuf,
    group: &'static str,
    sm: PathBuf,
    adm: PathBuf,
}

impl SetgidSystem {
    /// `rsendmail-admin ARGS` as the test user, not a member of the spool's group.
    fn user(&self, args: &[&str]) -> std::process::Output {
        in_system(&self.etc, TEST_USER, &self.adm, args, b"")
    }

    /// `rsendmail-admin ARGS` as the test user made a member of the spool's group.
    fn member(&self, args: &[&str]) -> std::process::Output {
        in_system(&self.member_etc, TEST_USER, &self.adm, args, b"")
    }

    /// `program ARGS` as root (the plain program, told the system configuration).
    fn root_runs(&self, program: &Path, args: &[&str]) -> std::process::Output {
        Command::new(program)
            .args(args)
            .env("RSENDMAIL_SYSTEM_CONFIG", &self.conf)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `rsendmail-admin ARGS` as root.
    fn root(&self, args: &[&str]) -> std::process::Output {
        self.root_runs(&admin_bin(), args)
    }

    /// The ID of a message the test user queues (`-odq`, to bob@example.org).
    fn users_entry(&self) -> String {
        let out = in_system(
            &self.etc,
            TEST_USER,
            &self.sm,
            &["-odq", "bob@example.org"],
            MSG,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        crate::harness::queued_ids(&self.spool).pop().unwrap()
    }
}

/// [`SetgidSystem`] in a directory of its own named `name`; None where users cannot be
/// switched or mount namespaces made (or in a release build, whose set-gid copies
/// refuse the test's overrides).
fn setgid_system(name: &str) -> Option<SetgidSystem> {
    if !can_switch_user() || !cfg!(debug_assertions) {
        return None;
    }
    if !Path::new("/usr/bin/unshare").exists() {
        return None;
    }
    let here = crate::privileges::setgid_dir(name);
    let spool = here.join("spool");
    let (group, gid) = crate::harness::fit_group();
    for d in ["", "tmp", "index", "corrupt", "hold"] {
        let p = spool.join(d);
        fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(0), Some(gid)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o2770)).unwrap();
    }
    let conf = here.join("rsendmail.conf");
    write_config(
        &conf,
        &spool,
        &format!("MAILSPOOL {}\n", here.join("mail").display()),
    );
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    // The overlaid /etc: the configuration, and (for the member) a group file naming
    // the test user in the spool's group.
    let etc = here.join("etc");
    let member_etc = here.join("etc-member");
    for e in [&etc, &member_etc] {
        fs::create_dir_all(e.join("rsendmail")).unwrap();
        fs::copy(&conf, e.join("rsendmail/rsendmail.conf")).unwrap();
    }
    let groups: String = fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .map(|l| {
            if l.split(':').next() == Some(group) {
                format!("{}{TEST_USER}\n", l.trim_end_matches(','))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(member_etc.join("group"), groups).unwrap();
    fs::set_permissions(member_etc.join("group"), fs::Permissions::from_mode(0o644)).unwrap();
    let sm = crate::privileges::setgid_install(&here, &crate::harness::bin(), "sendmail");
    let adm = crate::privileges::setgid_install(&here, &admin_bin(), "rsendmail-admin");
    Some(SetgidSystem {
        here,
        spool,
        conf,
        etc,
        member_etc,
        group,
        sm,
        adm,
    })
}

/// Two users, each with an entry in the shared spool: each may act on her own entry
/// only; a refusal names the ID and exits 77, and the other IDs given are still done;
/// root may act on both. (The users run set-gid copies of the programs, which read the
/// system configuration of an `/etc` overlaid in a private mount namespace, as an
/// installed system's users do; they are not members of the spool's group, whose
/// members may act on any entry.)
#[test]
fn two_users_act_only_on_their_own_entries() {
    // The test user's mailbox is delivered to: no `.forward` meanwhile.
    let _turn = crate::local::mailbox_turn();
    let Some(SetgidSystem {
        here,
        spool,
        conf,
        etc,
        member_etc,
        sm,
        adm,
        ..
    }) = setgid_system("admin-users")
    else {
        return;
    };
    fs::create_dir_all(here.join("mail")).unwrap();
    fs::set_permissions(here.join("mail"), fs::Permissions::from_mode(0o1777)).unwrap();
    let deliver = here.join("rsendmail-deliver");
    crate::harness::copy_executable(Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver")), &deliver);
    fs::set_permissions(&deliver, fs::Permissions::from_mode(0o755)).unwrap();
    // Root's own commands: the plain programs, told the configuration.
    let root_sm = crate::harness::bin();
    let root_adm = admin_bin();
    let envs = [("RSENDMAIL_SYSTEM_CONFIG", conf.to_str().unwrap())];
    let as_user = |p: &Path, args: &[&str], _: &[(&str, &str)], stdin: &[u8]| {
        in_system(&etc, TEST_USER, p, args, stdin)
    };
    let as_nobody =
        |p: &Path, args: &[&str], _: &[(&str, &str)]| in_system(&etc, "nobody", p, args, b"");
    let ids = || crate::harness::queued_ids(&spool);
    let out = as_user(&sm, &["-odq", "bob@example.org"], &envs, MSG);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let mine = ids().pop().unwrap();
    let out = as_nobody(&sm, &["-odq", "carol@example.org"], &envs);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let theirs = ids().into_iter().find(|i| *i != mine).unwrap();
    // The test user may not touch nobody's entry, for any action; her own is done.
    for action in ["delete", "hold", "release", "retry", "bounce", "show"] {
        let out = as_user(&adm, &[action, &theirs], &envs, b"");
        assert_eq!(
            out.status.code(),
            Some(77),
            "{action}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(&format!("{theirs}: permission denied: the user \"{TEST_USER}\" may act only on the entries that user submitted")),
            "{action}: {}",
            text(&out.stderr)
        );
    }
    assert!(spool.join(format!("qf{theirs}")).exists());
    let out = as_user(&adm, &["hold", &theirs, &mine], &envs, b"");
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{mine}: held\n"));
    assert!(spool.join("hold").join(format!("qf{mine}")).exists());
    // --all takes only her own entries, and says how many it left.
    let out = as_nobody(&adm, &["delete", "--all"], &envs);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{theirs}: deleted\n1 entry deleted; 1 entry left, not yours (the user \
             \"nobody\" may act only on the entries that user submitted)\n"
        )
    );
    assert!(spool.join("hold").join(format!("qf{mine}")).exists());
    // nobody may not release or delete the test user's held entry.
    let out = as_nobody(&adm, &["delete", &mine], &envs);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    assert!(spool.join("hold").join(format!("qf{mine}")).exists());
    // root may act on anyone's.
    let out = Command::new(&root_adm)
        .args(["delete", &mine])
        .envs(envs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!spool.join("hold").join(format!("qf{mine}")).exists());
    // Her own entry, damaged: whose it is cannot be read, and the refusal says so.
    let out = as_user(&sm, &["-odq", "erin@example.org"], &envs, MSG);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let damaged = ids().pop().unwrap();
    let out = as_user(&adm, &["hold", &damaged], &envs, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let f = fs::OpenOptions::new()
        .write(true)
        .open(spool.join("hold").join(format!("qf{damaged}")))
        .unwrap();
    f.set_len(50).unwrap();
    let out = as_user(&adm, &["release", &damaged], &envs, b"");
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("{damaged}: its queue file cannot be read (")),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains(
            "so whose entry it is is unknown: only root or the spool's group may act on it"
        ),
        "{}",
        text(&out.stderr)
    );
    let out = Command::new(&root_adm)
        .args(["delete", &damaged])
        .envs(envs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A member of the spool's group may act on anyone's entry.
    let out = as_nobody(&sm, &["-odq", "carol@example.org"], &envs);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let theirs = ids().pop().unwrap();
    let out = in_system(&member_etc, TEST_USER, &adm, &["delete", &theirs], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{theirs}: deleted\n"));
    // The owner bounces her own entry (her address is local, ErrorMode the default p):
    // one report in her mailbox, nothing in her ~/dead.letter.
    let dead = crate::harness::test_user().home.join("dead.letter");
    let _ = fs::remove_file(&dead);
    let out = as_user(&sm, &["-odq", "dave@example.org"], &envs, MSG);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let own = ids().pop().unwrap();
    let out = as_user(&adm, &["bounce", &own], &envs, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rid = report_queued(text(&out.stdout).trim_end(), &own);
    assert!(!dead.exists(), "{}", text(&out.stdout));
    // The report is queued, handed to a delivery it started; a queue run (root's)
    // delivers it if that one could not.
    wait_until(Duration::from_secs(20), "the report delivered", || {
        let out = Command::new(&root_sm)
            .arg("-q")
            .envs(envs)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        !ids().contains(&rid)
    });
    let mbox = fs::read_to_string(here.join("mail").join(TEST_USER)).unwrap_or_default();
    assert_eq!(
        mbox.matches("report-type=delivery-status").count(),
        1,
        "{mbox}"
    );
    assert!(
        mbox.contains("Final-Recipient: RFC822; dave@example.org"),
        "{mbox}"
    );
    // The report says who returned it: its sender, by login, not the administrator.
    assert!(
        mbox.contains(&format!(
            "Returned to sender at its sender's request (user {TEST_USER}): no reason given"
        )),
        "{mbox}"
    );
    assert!(!mbox.contains("by the administrator"), "{mbox}");
    // Under restrictmailq, `list` says it as mailq does; `list --json` keeps its
    // stdout JSON: the refusal on stderr, 77.
    let user_conf = etc.join("rsendmail/rsendmail.conf");
    let mut c = fs::read_to_string(&user_conf).unwrap();
    c.push_str("O PrivacyOptions=restrictmailq\n");
    fs::write(&user_conf, c).unwrap();
    let out = as_user(&adm, &["list"], &envs, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "You are not permitted to see the queue\n\t\tTotal requests: 0\n"
    );
    let out = as_user(&adm, &["list", "--json"], &envs, b"");
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("You are not permitted to see the queue"),
        "{}",
        text(&out.stderr)
    );
    // So does mailq: sendmail's two lines and 0; with --json, stdout stays JSON (empty),
    // the refusal on stderr, 77.
    let mailq = here.join("mailq");
    std::os::unix::fs::symlink(&sm, &mailq).unwrap();
    let out = as_user(&mailq, &[], &envs, b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "You are not permitted to see the queue\n\t\tTotal requests: 0\n"
    );
    let out = as_user(&mailq, &["--json"], &envs, b"");
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("You are not permitted to see the queue"),
        "{}",
        text(&out.stderr)
    );
    // Nor does any action tell her which IDs exist: another's entry is answered as an
    // ID that names none, in the same words and status.
    let earlier = ids();
    let out = as_nobody(&sm, &["-odq", "erin@example.org"], &envs);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let before: Vec<String> = ids();
    let hidden = before
        .iter()
        .find(|i| !earlier.contains(i))
        .unwrap()
        .clone();
    let last = if hidden.ends_with('0') { "1" } else { "0" };
    let absent = format!("{}{last}", &hidden[..hidden.len() - 1]);
    assert!(!before.contains(&absent));
    for action in ["delete", "hold", "release", "retry", "bounce", "show"] {
        let seen = as_user(&adm, &[action, &hidden], &envs, b"");
        let none = as_user(&adm, &[action, &absent], &envs, b"");
        assert_eq!(
            seen.status.code(),
            Some(66),
            "{action}: {}",
            text(&seen.stderr)
        );
        assert_eq!(
            none.status.code(),
            Some(66),
            "{action}: {}",
            text(&none.stderr)
        );
        assert_eq!(
            text(&seen.stderr).replace(&hidden, "ID"),
            text(&none.stderr).replace(&absent, "ID"),
            "{action}"
        );
    }
    assert_eq!(ids(), before);
    let _ = fs::remove_dir_all(&here);
}

/// A queue run (`-qf`) under way: an entry queued to each recipient given, in that
/// order (`ids`), for a server that waits 3 s before answering the DATA command, and the
/// entry it is delivering (`busy`: the one mailq marks `*`).
struct Delivering {
    _sink_dir: Env,
    sink: Sink,
    env: Env,
    ids: Vec<String>,
    busy: String,
    run: std::process::Child,
}

/// [`Delivering`], `extra` added to the relay's configuration; None without smtp-sink.
fn delivering(extra: &str, rcpts: &[&str]) -> Option<Delivering> {
    delivering_with_stall("3", extra, rcpts)
}

/// [`delivering`] for a server that waits `stall` seconds before answering DATA.
fn delivering_with_stall(stall: &str, extra: &str, rcpts: &[&str]) -> Option<Delivering> {
    let sink_dir = Env::new();
    let sink = Sink::start(&sink_dir.dir, &["-w", stall])?;
    let env = relay_env(sink.port, extra);
    let ids: Vec<String> = rcpts.iter().map(|r| queue(&env, r)).collect();
    let run = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-qf"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // An entry locked on two listings half a second apart: the run also locks each
    // entry for a moment as it reads it, which a single listing can catch.
    let mut busy = String::new();
    let mut seen: Option<(String, std::time::Instant)> = None;
    wait_until(Duration::from_secs(15), "an entry being delivered", || {
        let l = env.mailq(&[]);
        let locked = ids.iter().find(|id| l.contains(&format!("{id}*")));
        match (locked, &seen) {
            (Some(id), Some((s, at))) if s == id => {
                if at.elapsed() >= Duration::from_millis(500) {
                    busy = id.to_string();
                    return true;
                }
            }
            (Some(id), _) => seen = Some((id.to_string(), std::time::Instant::now())),
            (None, _) => seen = None,
        }
        false
    });
    Some(Delivering {
        _sink_dir: sink_dir,
        sink,
        env,
        ids,
        busy,
        run,
    })
}

/// While a queue run delivers one entry to a slow server, another is deleted: the
/// first is delivered whole, the deleted one is never sent, and its entry and index
/// lines are gone. Deleting the entry being delivered (its server holding the DATA
/// command) returns at once, 0, saying it is marked; the transaction under way is not
/// cut (the server gets the message once), and the entry, its state and its mark are
/// gone when the delivery ends; a later run sends nothing.
#[test]
fn deleting_an_entry_while_a_run_delivers_another() {
    let Some(Delivering {
        _sink_dir,
        sink,
        env,
        ids,
        busy,
        mut run,
    }) = delivering(
        "O MaxConnections=1\n",
        &["first@example.org", "second@example.org"],
    )
    else {
        return;
    };
    let (a, b) = (ids[0].clone(), ids[1].clone());
    let other = if busy == a { b.clone() } else { a.clone() };
    let r = admin(&env, &["delete", &other]);
    r.code(0).stdout_is(&format!("{other}: deleted\n"));
    assert!(!queued(&env, &other));
    assert!(!index_text(&env).contains(&other), "{}", index_text(&env));
    // The one being delivered: marked, never waited for, never cut.
    let start = std::time::Instant::now();
    let r = admin(&env, &["delete", &busy]);
    let took = start.elapsed();
    r.code(0).stdout_is(&format!(
        "{busy}: being delivered: marked for deletion; it is deleted as soon as its \
         delivery ends, and nothing more of it is sent (its delivery logs what of it was sent)\n"
    ));
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(
        env.spool.join(format!("kf{busy}")).exists(),
        "{}",
        env.listing()
    );
    let _ = run.wait();
    assert!(
        !env.spool.join(format!("kf{busy}")).exists()
            && !env.spool.join(format!("sf{busy}")).exists(),
        "{}",
        env.listing()
    );
    env.sendmail(&["-q"], b"").code(0);
    let dumps = sink.dumps();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let (sent, gone) = if busy == a {
        ("first@", "second@")
    } else {
        ("second@", "first@")
    };
    assert!(
        dumps[0].contains(sent) && !dumps[0].contains(gone),
        "{}",
        dumps[0]
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// A periodic queue runner (`-q1h -qf`, the packaged service's form) leaves a deferred
/// entry to its back-off, and a held one even when the wake-up endpoint names it (as a
/// submission's line would); `retry` wakes the runner through the endpoint, and the
/// runner delivers it at once; so does `bounce` for the report it queues.
#[test]
fn retry_wakes_the_periodic_runner_and_held_entries_stay_unselected() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let env = relay_env(closed_tcp_port(), "O QueueRetryMin=2h\n");
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    env.sendmail(&["-odi", "bob@example.org"], MSG).code(0);
    let id = env.only_id();
    set_port(&env, sink.port);
    let mut runner = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-q1h", "-qf"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let fifo = env.spool.join("wakeup");
    wait_until(Duration::from_secs(10), "the runner's endpoint", || {
        fifo.exists()
    });
    admin(&env, &["hold", &id]).code(0);
    {
        use std::io::Write;
        let mut w = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        w.write_all(format!("{id}\n").as_bytes()).unwrap();
    }
    crate::harness::holds_for(Duration::from_secs(1), "nothing sent", || {
        sink.dumps().is_empty()
    });
    admin(&env, &["release", &id]).code(0);
    crate::harness::holds_for(
        Duration::from_millis(500),
        "nothing sent within the back-off",
        || sink.dumps().is_empty(),
    );
    let r = admin(&env, &["retry", &id]);
    r.code(0)
        .stdout_is(&format!("{id}: due now (the queue runner was woken)\n"));
    wait_until(
        Duration::from_secs(10),
        "the retried entry at the sink",
        || sink.dumps().len() == 1,
    );
    env.wait_until_empty(Duration::from_secs(10));
    let text = fs::read_to_string(&log).unwrap_or_default();
    let by_runner = text.lines().any(|l| {
        l.contains("to=<bob@example.org>,")
            && l.contains("stat=Sent")
            && l.contains(&format!("rsendmail-deliver[{}]", runner.id()))
    });
    assert!(by_runner, "{text}");
    // `bounce` queues the report and wakes the runner for it, which sends it.
    let id2 = queue(&env, "carol@example.org");
    let r = admin(&env, &["bounce", &id2]);
    r.code(0);
    let rid = report_queued_as(
        r.stdout.strip_suffix('\n').unwrap_or(&r.stdout),
        &id2,
        "the queue runner was woken",
    );
    wait_until(Duration::from_secs(10), "the report at the sink", || {
        sink.dumps().len() == 2
    });
    env.wait_until_empty(Duration::from_secs(10));
    let text = fs::read_to_string(&log).unwrap_or_default();
    let by_runner = text.lines().any(|l| {
        l.contains(&format!("{rid}: to=<alice@example.org>,"))
            && l.contains("stat=Sent")
            && l.contains(&format!("rsendmail-deliver[{}]", runner.id()))
    });
    assert!(by_runner, "{text}");
    crate::harness::sigterm(&runner);
    let _ = crate::harness::wait_exit(&mut runner, Duration::from_secs(10));
}

/// Installed set-gid to the spool's group, `rsendmail-admin` gives its group up for
/// `-C` when the caller is not root (so a configuration of her own cannot reach the
/// group's spool), and no environment variable chooses its configuration: the entry
/// in the group-only spool is neither listed nor deleted.
#[test]
fn a_setgid_admin_gives_up_its_group_for_c_and_reads_no_environment() {
    if !can_switch_user() {
        return;
    }
    let here = crate::privileges::setgid_dir("admin-sgid");
    let adm = crate::privileges::setgid_install(&here, &admin_bin(), "rsendmail-admin");
    let (spool, conf) = crate::privileges::system_config(&here);
    let out = Command::new(crate::harness::bin())
        .args(["-C", conf.to_str().unwrap(), "-odq", "bob@example.org"])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(MSG)?;
            c.wait()
        })
        .unwrap();
    assert!(out.success());
    let qf = fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("qf"))
        .unwrap()
        .path();
    let entry = id_of(&qf);
    let c = conf.to_str().unwrap();
    let out = as_user(&adm, &["-C", c, "list"], &[], b"");
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains(&entry), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Said once: -C gave up the group (stderr; `check` an info line).
    assert_eq!(
        text(&out.stderr).matches("-C gave up").count(),
        1,
        "{}",
        text(&out.stderr)
    );
    for args in [&["show", &entry][..], &["hold", &entry, &entry][..]] {
        let mut full = vec!["-C", c];
        full.extend_from_slice(args);
        let out = as_user(&adm, &full, &[], b"");
        assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stderr).matches("-C gave up").count(),
            1,
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // Her own spool, with -C: the group gives nothing there, so no note.
    let own = here.join("own");
    fs::create_dir(&own).unwrap();
    let me = crate::harness::user_ids(TEST_USER);
    fs::create_dir(own.join("spool")).unwrap();
    fs::set_permissions(own.join("spool"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(own.join("aliases"), "").unwrap();
    let own_conf = own.join("c.conf");
    fs::write(
        &own_conf,
        format!(
            "SPOOLDIR {0}/spool\nALIASES {0}/aliases\nMAILNAME test.example\n",
            own.display()
        ),
    )
    .unwrap();
    for p in [&own, &own.join("spool"), &own.join("aliases"), &own_conf] {
        std::os::unix::fs::chown(p, Some(me.uid), Some(me.gid)).unwrap();
    }
    let oc = own_conf.to_str().unwrap();
    for args in [&["list"][..], &["show", "6AUIIquc023976"][..]] {
        let mut full = vec!["-C", oc];
        full.extend_from_slice(args);
        let out = as_user(&adm, &full, &[], b"");
        assert!(
            !text(&out.stderr).contains("gave up"),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(66),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = as_user(&adm, &["-C", c, "check"], &[], b"");
    assert!(
        text(&out.stdout).contains("\ninfo privileges: -C gave up the set-group-id privilege"),
        "{}",
        text(&out.stdout)
    );
    // An option that may choose files is named as it was given, never blamed on -C.
    let out = as_user(&adm, &["check", "-O", "Timeout.connect=5s"], &[], b"");
    assert!(
        text(&out.stdout)
            .contains("\ninfo privileges: -O Timeout.connect gave up the set-group-id privilege")
            && text(&out.stdout).contains("leave it out, or run as root"),
        "{}",
        text(&out.stdout)
    );
    let out = as_user(
        &adm,
        &["-C", c, "check", "-oA/x", "-O", "MaxHopCount=9"],
        &[],
        b"",
    );
    assert!(
        text(&out.stdout).contains(
            "\ninfo privileges: -C, -oA and -O MaxHopCount gave up the set-group-id privilege"
        ) && text(&out.stdout).contains("leave them out (without -C"),
        "{}",
        text(&out.stdout)
    );
    // A safe option costs nothing: no such line.
    let out = as_user(&adm, &["check", "-O", "DeliveryMode=q"], &[], b"");
    assert!(
        !text(&out.stdout).contains("info privileges"),
        "{}",
        text(&out.stdout)
    );
    let out = as_user(&adm, &["-C", c, "delete", &entry], &[], b"");
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Every command that looks an entry up says it cannot read the spool (77), never
    // that the entry, which is there, does not exist (66), and why, once: -C gave the
    // group up (not a set-gid bit, which is in place).
    for cmd in ["show", "delete", "hold", "release", "retry", "bounce"] {
        let out = as_user(&adm, &["-C", c, cmd, &entry], &[], b"");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(77), "{cmd}: {err}");
        assert!(
            err.contains(&format!(
                "rsendmail-admin: {entry}: cannot read the spool {}: Permission denied",
                spool.display()
            )) && !err.contains("no such entry")
                && err.contains(
                    "rsendmail-admin: note: -C gave up the set-group-id privilege of \
                     rsendmail-admin (the spool's group)"
                )
                && err.matches("gave up").count() == 1,
            "{cmd}: {err}"
        );
    }
    // The tests' variable for the system configuration is not read by a set-id program.
    let out = as_user(
        &adm,
        &["delete", &entry],
        &[("RSENDMAIL_SYSTEM_CONFIG", c)],
        b"",
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(qf.exists(), "the group-only spool's entry was deleted");
    let _ = fs::remove_dir_all(&here);
}

/// A held entry is not flushed by ETRN (fast flush list or not) nor by the daemon's
/// periodic runner; once released, the next ETRN flushes it.
#[test]
fn etrn_and_the_daemons_runner_leave_held_entries() {
    use crate::harness::servers::{Daemon, Raw, start_peer};
    let Some((_scratch, peer)) = start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "O FastFlushDomains=dial.example\n");
    let held_id = queue(&env, "held@dial.example");
    queue(&env, "free@dial.example");
    admin(&env, &["hold", &held_id]).code(0);
    let d = Daemon::start(&env, &["-odq", "-q1s"]);
    let mut c = Raw::connect(d.port);
    c.line();
    c.cmd("EHLO dialup");
    for arg in ["dial.example", "@dial.example", "example"] {
        assert!(c.cmd(&format!("ETRN {arg}")).starts_with("250 "));
    }
    let got = peer.wait_for(1, Duration::from_secs(20));
    assert_eq!(got.len(), 1);
    assert!(got[0].0.contains("free@dial.example"), "{got:?}");
    // Three periodic runs of the daemon's runner.
    crate::harness::holds_for(Duration::from_secs(3), "the held entry not sent", || {
        peer.messages().len() == 1
    });
    assert!(held(&env, &held_id), "{}", env.listing());
    admin(&env, &["release", &held_id]).code(0);
    assert!(c.cmd("ETRN dial.example").starts_with("250 "));
    let got = peer.wait_for(2, Duration::from_secs(20));
    assert!(
        got.iter().any(|m| m.0.contains("held@dial.example")),
        "{got:?}"
    );
}

/// An entry whose delivery lock stays held (a delivery that lasts) is waited for by
/// `hold`, then left as it is: the command says so and exits 75, and the entry is
/// whole; the other IDs given are still processed.
#[test]
fn an_entry_locked_for_long_is_left_with_exit_75() {
    let env = Env::new();
    let id = queue(&env, "bob@example.org");
    let other = queue(&env, "carol@example.org");
    let qf = env.spool.join(format!("qf{id}"));
    // The lock a delivery takes: an exclusive flock on the queue file.
    let f = fs::File::open(&qf).unwrap();
    f.lock().unwrap();
    let start = std::time::Instant::now();
    let r = admin(&env, &["retry", &id, &other]);
    r.code(75);
    assert!(
        start.elapsed() >= Duration::from_secs(9),
        "{:?}",
        start.elapsed()
    );
    assert!(
        r.stderr.contains(&format!("{id}: being delivered")),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.starts_with(&format!("{other}: due now")),
        "{}",
        r.stdout
    );
    assert!(qf.exists());
    drop(f);
    admin(&env, &["hold", &id]).code(0);
}

/// `delete` of entries whose lock a delivery holds (here the test's own flock, which
/// never ends) returns at once, 0: each is marked (`kf<ID>`), the others given are
/// deleted; the entry stays while the lock is held, and the next holder of its lock (a
/// queue run, another command) removes it without delivering it. `--all` says which it
/// marked.
#[test]
fn delete_of_a_locked_entry_marks_it_and_its_next_holder_removes_it() {
    let env = relay_env(closed_tcp_port(), "");
    let id = queue(&env, "bob@example.org");
    let other = queue(&env, "carol@example.org");
    let qf = env.spool.join(format!("qf{id}"));
    let kf = env.spool.join(format!("kf{id}"));
    let f = fs::File::open(&qf).unwrap();
    f.lock().unwrap();
    let start = std::time::Instant::now();
    let r = admin(&env, &["delete", &id, &other]);
    let took = start.elapsed();
    r.code(0).stdout_is(&format!(
        "{other}: deleted\n{id}: being delivered: marked for deletion; it is deleted as soon \
         as its delivery ends, and nothing more of it is sent (its delivery logs what of it was sent)\n"
    ));
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(qf.exists() && kf.exists(), "{}", env.listing());
    assert!(!queued(&env, &other));
    // Marked again by a selection: said in its summary.
    let r = admin(&env, &["delete", "--all"]);
    r.code(0);
    assert!(
        r.stdout.ends_with(&format!(
            "0 entries deleted; 1 entry being delivered, marked for deletion: {id} (it goes \
             as soon as its delivery has ended)\n"
        )),
        "{}",
        r.stdout
    );
    drop(f);
    // The next queue run (in the foreground: -v) removes it, sends nothing, and leaves
    // nothing of it.
    env.sendmail(&["-q", "-v"], b"").code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert!(!kf.exists(), "{}", env.listing());
    let sf = env.spool.join(format!("sf{id}"));
    assert!(!sf.exists(), "{}", env.listing());
}

/// `hold` and `bounce` of an entry whose lock a delivery holds (the test's own flock)
/// return at once, 0, saying it is marked (`kf<ID>`); the others given are acted on.
/// The next holder of its lock (a queue run) carries the mark out without delivering
/// it: held (who asked recorded as its holder), or returned to its sender.
#[test]
fn hold_and_bounce_of_a_locked_entry_mark_it_and_its_next_holder_carries_it_out() {
    for action in ["hold", "bounce"] {
        let env = relay_env(closed_tcp_port(), "");
        let id = queue(&env, "bob@example.org");
        let qf = env.spool.join(format!("qf{id}"));
        let kf = env.spool.join(format!("kf{id}"));
        let f = fs::File::open(&qf).unwrap();
        f.lock().unwrap();
        let start = std::time::Instant::now();
        let r = admin(&env, &[action, &id]);
        let took = start.elapsed();
        r.code(0);
        let said = if action == "hold" {
            format!(
                "{id}: being delivered: marked to be held; it is held as soon as its \
                 delivery ends, and no further transaction of it starts (unless the one \
                 under way ends every recipient: the log says which)\n"
            )
        } else {
            format!(
                "{id}: being delivered: marked to be returned; the recipients it has not \
                 delivered are returned to its sender as soon as its delivery ends, and \
                 none is tried again\n"
            )
        };
        assert_eq!(r.stdout, said, "{}", r.stderr);
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(qf.exists() && kf.exists(), "{}", env.listing());
        // The mark is shown: mailq and list, list --json, show.
        let what = if action == "hold" {
            "hold"
        } else {
            "return to the sender"
        };
        let line = format!("     MARKED: {what} asked for by root (uid 0)\n");
        assert!(env.mailq(&[]).contains(&line), "{}", env.mailq(&[]));
        let list = admin(&env, &["list"]);
        assert!(list.stdout.contains(&line), "{}", list.stdout);
        let json = admin(&env, &["list", "--json"]);
        assert!(
            json.stdout.contains(&format!(
                "\"marked\":{{\"action\":\"{action}\",\"by\":\"root (uid 0)\",\"at\":"
            )),
            "{}",
            json.stdout
        );
        let show = admin(&env, &["show", &id]);
        assert!(
            show.stdout.contains(&format!(
                "\nMarked:         {what} requested by root (uid 0) at "
            )),
            "{}",
            show.stdout
        );
        drop(f);
        let q = env.sendmail(&["-q", "-v"], b"");
        assert!(!kf.exists(), "{}", env.listing());
        assert!(!queued(&env, &id), "{}{}", env.listing(), q.stdout);
        if action == "hold" {
            assert!(held(&env, &id), "{}", env.listing());
            let show = admin(&env, &["show", &id]);
            assert!(
                show.stdout
                    .lines()
                    .any(|l| l.starts_with("Held by:") && l.contains("root")),
                "{}",
                show.stdout
            );
            admin(&env, &["release", &id]).code(0);
            assert!(queued(&env, &id), "{}", env.listing());
        } else {
            // Its report to the sender is queued (the relay is closed).
            let left = env.entries();
            assert_eq!(left.len(), 1, "{}", env.listing());
            let report = admin(&env, &["show", &id_of(&left[0])]);
            assert!(report.stdout.contains("MAILER-DAEMON"), "{}", report.stdout);
        }
    }
}

/// A deletion asked for while a delivery holds an entry with a remote recipient and a
/// local `|command` one: the SMTP transaction under way ends (its message is accepted
/// once), the command that would have followed in the same attempt never runs, and the
/// entry goes when the attempt ends. Killed (SIGKILL) after the request instead, the
/// run leaves the entry with its mark, and the next run removes it without sending
/// anything.
#[test]
fn a_deletion_during_a_delivery_stops_what_follows_and_survives_a_kill() {
    request_during_a_delivery("delete");
}

/// `hold` asked for while a delivery holds an entry, as the deletion above: `hold`
/// returns at once (0), the transaction under way ends, the command never runs, and the
/// entry is held when the attempt ends (after a SIGKILL: held by the next run, unsent).
#[test]
fn a_hold_during_a_delivery_stops_what_follows_and_survives_a_kill() {
    request_during_a_delivery("hold");
}

/// `bounce` asked for while a delivery holds an entry, as the deletion above: `bounce`
/// returns at once (0), the transaction under way ends, the command never runs, and
/// what was not delivered is returned to the sender when the attempt ends (after a
/// SIGKILL: by the next run, nothing else sent).
#[test]
fn a_bounce_during_a_delivery_stops_what_follows_and_survives_a_kill() {
    request_during_a_delivery("bounce");
}

/// A relay env (`extra` added to its configuration) whose smarthost is an smtp-sink that
/// waits 3 s before its reply to the message, and whose alias `prog` is a `|command`
/// appending a line `run` to a file each time it runs: (the sink's scratch env, to be
/// kept, the sink, the env, that file). None without smtp-sink.
fn stalled_relay_with_prog(extra: &str) -> Option<(Env, Sink, Env, PathBuf)> {
    let sink_dir = Env::new();
    let sink = Sink::start(&sink_dir.dir, &["-w", "3"])?;
    let env = relay_env(sink.port, extra);
    let runs = env.dir.join("runs");
    fs::write(&runs, "").unwrap();
    fs::set_permissions(&runs, fs::Permissions::from_mode(0o666)).unwrap();
    let aliases = env.dir.join("aliases");
    fs::write(
        &aliases,
        format!("prog: \"|echo run >> {}\"\n", runs.display()),
    )
    .unwrap();
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    Some((sink_dir, sink, env, runs))
}

/// `action` (`delete`, `hold`, `bounce`) of an entry with a remote and a `|command`
/// recipient while a queue run delivers it to a server that stalls before its reply to
/// the message; then, killed or not, what is left of it.
fn request_during_a_delivery(action: &str) {
    let marked = match action {
        "delete" => "marked for deletion",
        "hold" => "marked to be held",
        _ => "marked to be returned",
    };
    for kill in [false, true] {
        let Some((_sink_dir, sink, env, runs)) = stalled_relay_with_prog("O MaxConnections=1\n")
        else {
            return;
        };
        let maillog = env.dir.join("maillog");
        env.add_config(&format!("MAILLOG {}\n", maillog.display()));
        env.sendmail(
            &["-odq", "-f", "alice@example.org", "bob@example.org", "prog"],
            MSG,
        )
        .code(0);
        let id = env.only_id();
        let mut run = Command::new(env.link("sendmail"))
            .args(["-C", env.conf.to_str().unwrap(), "-qf"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Locked on two listings half a second apart: in its transaction.
        let mut since: Option<std::time::Instant> = None;
        wait_until(Duration::from_secs(15), "the entry being delivered", || {
            if env.mailq(&[]).contains(&format!("{id}*")) {
                let at = *since.get_or_insert_with(std::time::Instant::now);
                at.elapsed() >= Duration::from_millis(500)
            } else {
                since = None;
                false
            }
        });
        let start = std::time::Instant::now();
        let r = admin(&env, &[action, &id]);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        r.code(0);
        assert!(r.stdout.contains(marked), "{}{}", r.stdout, r.stderr);
        if kill {
            // The process that holds the entry's lock (its deliverer, which may be in a
            // process group of its own), then the run.
            use std::os::unix::fs::MetadataExt as _;
            let ino = fs::metadata(env.spool.join(format!("qf{id}")))
                .unwrap()
                .ino();
            let holders: Vec<i32> = fs::read_to_string("/proc/locks")
                .unwrap()
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let at = f.iter().position(|w| *w == "FLOCK")?;
                    let pid = f.get(at + 3)?.parse().ok()?;
                    let file = f.get(at + 4)?;
                    (file.rsplit(':').next()? == ino.to_string()).then_some(pid)
                })
                .collect();
            assert!(!holders.is_empty(), "no lock holder found");
            for pid in &holders {
                // SAFETY: kill(2) of the deliverer this test's run started.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            let _ = run.kill();
            let _ = run.wait();
            wait_until(Duration::from_secs(10), "the deliverer gone", || {
                // SAFETY: kill(2) with signal 0 only asks whether the process exists.
                holders.iter().all(|p| unsafe { libc::kill(*p, 0) } != 0)
            });
            assert!(queued(&env, &id), "{}", env.listing());
            assert!(
                env.spool.join(format!("kf{id}")).exists(),
                "{}",
                env.listing()
            );
        } else {
            let _ = run.wait();
        }
        assert!(
            !queued(&env, &id) || kill,
            "{}{}",
            env.listing(),
            fs::read_to_string(&maillog).unwrap_or_default()
        );
        // The next run (in the foreground: -v) carries out what is left, unsent (a
        // report of a return is sent).
        let q = env.sendmail(&["-q", "-v"], b"");
        assert!(
            env.entries().is_empty(),
            "{}{}{}",
            env.listing(),
            q.stdout,
            q.stderr
        );
        assert_eq!(held(&env, &id), action == "hold", "{}", env.listing());
        let left: Vec<String> = fs::read_dir(&env.spool)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(id.as_str()))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // Killed before its final dot: nothing sent; else the transaction under way,
        // once. The command that would have followed, never.
        let (reports, dumps): (Vec<String>, Vec<String>) = sink
            .dumps()
            .into_iter()
            .filter(|d| d.contains("Subject:"))
            .partition(|d| d.contains("MAILER-DAEMON"));
        assert_eq!(dumps.len(), usize::from(!kill), "{dumps:?}");
        assert_eq!(fs::read_to_string(&runs).unwrap(), "", "kill: {kill}");
        // A return: one report to the sender, naming the command as returned.
        if action == "bounce" {
            assert_eq!(reports.len(), 1, "{reports:?}{}", env.listing());
            assert!(
                reports.iter().all(|r| r.contains("alice@example.org")),
                "{reports:?}"
            );
        } else {
            assert!(reports.is_empty(), "{reports:?}");
        }
    }
}

/// A queue run (`sendmail -q`) under strace, each of its system calls `calls` (and
/// those of the deliveries it starts) made to wait 3 s (`how`: `delay_enter`, before
/// the call; `delay_exit`, after it), once it has entry `id` locked.
fn slowed_run(env: &Env, id: &str, calls: &str, how: &str) -> std::process::Child {
    let run = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            &format!("trace={calls}"),
        ])
        .args(["-e", &format!("inject={calls}:{how}=3000000")])
        .arg(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the entry locked by the run",
        || env.mailq(&[]).contains(&format!("{id}*")),
    );
    run
}

/// A queue run (`-qf`, in the foreground) of `env`'s queue, once entry `id` is seen
/// locked by it on listings half a second apart: its delivery waits where the test
/// stalls it.
fn run_stalled_on(env: &Env, id: &str) -> std::process::Child {
    let run = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-qf"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut since: Option<std::time::Instant> = None;
    wait_until(Duration::from_secs(15), "the entry being delivered", || {
        if env.mailq(&[]).contains(&format!("{id}*")) {
            let at = *since.get_or_insert_with(std::time::Instant::now);
            at.elapsed() >= Duration::from_millis(500)
        } else {
            since = None;
            false
        }
    });
    run
}

/// The fcntl write lock of a file, held by this process (as a mail reader holds a
/// mailbox's) until dropped.
struct FcntlLock {
    _file: fs::File,
}

impl FcntlLock {
    fn take(path: &Path) -> FcntlLock {
        use std::os::fd::AsRawFd;
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        // SAFETY: a plain struct flock for F_SETLK on a descriptor just opened.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        FcntlLock { _file: f }
    }
}

/// `delete` (and `hold`) of an entry whose local delivery waits for its mailbox's lock
/// (the fcntl lock another program holds, or its dotlock): marked; once the lock is
/// let go, the delivery looks at the mark again before it appends, and appends
/// nothing: the mailbox stays empty, and the entry is deleted unsent (or held, the
/// attempt not counted), as the log says.
#[test]
fn a_mark_made_while_a_mailbox_lock_is_awaited_stops_the_append() {
    if !crate::harness::is_root() {
        return;
    }
    for (action, lock) in [
        ("delete", "fcntl"),
        ("delete", "dotlock"),
        ("hold", "fcntl"),
    ] {
        let env = Env::new();
        let aliases = env.dir.join("aliases");
        fs::write(&aliases, "").unwrap();
        let maillog = env.dir.join("maillog");
        env.add_config(&format!(
            "ALIASES {}\nMAILLOG {}\nO Timeout.mboxlock=60s\n",
            aliases.display(),
            maillog.display()
        ));
        let mbox = env.dir.join("mail/root");
        fs::write(&mbox, "").unwrap();
        fs::set_permissions(&mbox, fs::Permissions::from_mode(0o600)).unwrap();
        let id = queue(&env, "root");
        let dotlock = env.dir.join("mail/root.lock");
        let fcntl = if lock == "fcntl" {
            Some(FcntlLock::take(&mbox))
        } else {
            fs::write(&dotlock, "").unwrap();
            None
        };
        let mut run = run_stalled_on(&env, &id);
        let r = admin(&env, &[action, &id]);
        r.code(0);
        assert!(
            r.stdout.contains("being delivered: marked"),
            "{action} {lock}: {}{}",
            r.stdout,
            r.stderr
        );
        drop(fcntl);
        let _ = fs::remove_file(&dotlock);
        let _ = run.wait();
        let log = fs::read_to_string(&maillog).unwrap_or_default();
        assert_eq!(
            fs::read_to_string(&mbox).unwrap(),
            "",
            "{action} {lock}: appended after the mark: {log}"
        );
        assert!(
            !env.spool.join(format!("kf{id}")).exists(),
            "{}",
            env.listing()
        );
        if action == "delete" {
            assert!(env.entries().is_empty(), "{}", env.listing());
            assert!(!held(&env, &id), "{}", env.listing());
            assert!(
                log.contains(&format!(
                    "{id}: deleted unsent, as root (uid 0) asked during its delivery"
                )),
                "{lock}: {log}"
            );
        } else {
            assert!(held(&env, &id), "{}{log}", env.listing());
            assert!(
                log.contains(&format!(
                    "{id}: not counted as an attempt: nothing of it was sent"
                )),
                "{log}"
            );
            let json = admin(&env, &["list", "--json"]);
            assert!(json.stdout.contains("\"attempts\":0,"), "{}", json.stdout);
            // Released, it is delivered once.
            admin(&env, &["release", &id]).code(0);
            env.sendmail(&["-qf"], b"").code(0);
            assert!(env.entries().is_empty(), "{}", env.listing());
            let got = fs::read_to_string(&mbox).unwrap();
            assert_eq!(got.matches("\nSubject: test\n").count(), 1, "{got}");
        }
    }
}

/// `delete` of an entry whose SMTP delivery waits for the server's greeting: marked;
/// once the greeting comes, the delivery looks at the mark again before MAIL and sends
/// nothing (the server gets no message), and the entry is deleted unsent.
#[test]
fn a_mark_made_while_a_connection_is_made_stops_before_mail() {
    let sink_dir = Env::new();
    let Some(sink) = Sink::start(&sink_dir.dir, &["-W", "connect:5"]) else {
        return;
    };
    let env = relay_env(sink.port, "");
    let maillog = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", maillog.display()));
    let id = queue(&env, "bob@example.org");
    let mut run = run_stalled_on(&env, &id);
    admin(&env, &["delete", &id]).code(0);
    let _ = run.wait();
    let log = fs::read_to_string(&maillog).unwrap_or_default();
    assert_eq!(sink.dumps(), Vec::<String>::new(), "{log}");
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert!(
        log.contains(&format!(
            "{id}: deleted unsent, as root (uid 0) asked during its delivery"
        )),
        "{log}"
    );
    let sink_log = fs::read_to_string(&sink.log)
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(sink_log.contains(": ehlo "), "{sink_log}");
    assert!(!sink_log.contains(": mail from"), "{sink_log}");
}

/// `delete` and `hold` of an entry whose SMTP delivery, to a server without
/// PIPELINING, waits for a RCPT reply: marked; once the reply comes, the delivery looks
/// at the mark again before DATA, sends RSET instead, and the server gets no message:
/// the entry is deleted unsent, or held with the attempt not counted.
#[test]
fn a_mark_made_while_a_rcpt_reply_is_awaited_stops_before_data() {
    for action in ["delete", "hold"] {
        let sink_dir = Env::new();
        let Some(sink) = Sink::start(&sink_dir.dir, &["-p", "-W", "rcpt:5"]) else {
            return;
        };
        let env = relay_env(sink.port, "");
        let maillog = env.dir.join("maillog");
        env.add_config(&format!("MAILLOG {}\n", maillog.display()));
        let id = queue(&env, "bob@example.org");
        let mut run = run_stalled_on(&env, &id);
        admin(&env, &[action, &id]).code(0);
        let _ = run.wait();
        let log = fs::read_to_string(&maillog).unwrap_or_default();
        assert_eq!(sink.dumps(), Vec::<String>::new(), "{action}: {log}");
        // Its envelope went out, then RSET, never DATA.
        let sink_log = fs::read_to_string(&sink.log)
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            sink_log.contains(": rcpt to:<bob@example.org>") && sink_log.contains(": rset"),
            "{sink_log}"
        );
        assert!(!sink_log.contains(": data"), "{sink_log}");
        if action == "delete" {
            assert!(env.entries().is_empty(), "{}", env.listing());
            assert!(
                log.contains(&format!(
                    "{id}: deleted unsent, as root (uid 0) asked during its delivery"
                )),
                "{log}"
            );
        } else {
            assert!(held(&env, &id), "{}{log}", env.listing());
            assert!(
                log.contains(&format!(
                    "{id}: not counted as an attempt: nothing of it was sent"
                )),
                "{log}"
            );
        }
    }
}

/// `hold` or `bounce` of an entry a queue run has listed and locked, before its attempt
/// sent anything (every `flock(2)` of the run made to last 3 s under strace, so that the
/// request finds the entry locked, and its mark is found before the first transaction):
/// marked (0), nothing sent to its recipient, and the attempt not counted: held with
/// `"attempts":0` and no reason recorded, or returned (its report at the server).
#[test]
fn a_mark_made_after_a_runs_listing_costs_no_attempt() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    for action in ["hold", "bounce"] {
        let sink_dir = Env::new();
        let Some(sink) = Sink::start(&sink_dir.dir, &[]) else {
            return;
        };
        let env = relay_env(sink.port, "");
        let maillog = env.dir.join("rsendmail.log");
        env.add_config(&format!("MAILLOG {}\n", maillog.display()));
        let id = queue(&env, "bob@example.org");
        let mut run = slowed_run(&env, &id, "flock", "delay_exit");
        let r = admin(&env, &[action, &id]);
        r.code(0);
        assert!(
            r.stdout.contains("marked to be"),
            "{}{}",
            r.stdout,
            r.stderr
        );
        let _ = run.wait();
        let log = fs::read_to_string(&maillog).unwrap_or_default();
        if action == "hold" {
            assert!(held(&env, &id), "{}{log}", env.listing());
            let json = admin(&env, &["list", "--json"]);
            assert!(json.stdout.contains("\"attempts\":0,"), "{}", json.stdout);
            assert!(!json.stdout.contains("\"reason\""), "{}", json.stdout);
        } else {
            // Returned by this run or the next, its report to the sender.
            if queued(&env, &id) {
                env.sendmail(&["-q"], b"").code(0);
            }
            wait_until(Duration::from_secs(20), "the report at the sink", || {
                sink.dumps().iter().any(|d| d.contains("MAILER-DAEMON"))
            });
            assert!(!queued(&env, &id), "{}", env.listing());
        }
        assert!(
            log.contains(&format!(
                "{id}: not counted as an attempt: nothing of it was sent"
            )),
            "{log}"
        );
        assert!(
            sink.dumps().iter().all(|d| d.contains("MAILER-DAEMON")),
            "{:?}",
            sink.dumps()
        );
    }
}

/// A release cut short between its two renames (its state file moved back, its queue
/// file still in `hold/`, the process killed at the second `rename(2)` under strace)
/// keeps the record of who held it: `show` still names the holder, and the next
/// `release` releases it, with its state.
#[test]
fn a_release_cut_short_keeps_who_held_the_entry() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    let env = relay_env(closed_tcp_port(), "");
    env.sendmail(&["-odi", "bob@example.org"], MSG).code(0);
    let id = env.only_id();
    admin(&env, &["hold", &id]).code(0);
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=rename"])
        .args(["-e", "inject=rename:signal=KILL:when=2", "--"])
        .arg(admin_bin())
        .args(["-C", env.conf.to_str().unwrap(), "release", &id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(held(&env, &id), "{}", env.listing());
    assert!(
        env.spool.join(format!("sf{id}")).exists(),
        "{}",
        env.listing()
    );
    let r = admin(&env, &["show", &id]);
    r.code(0);
    assert!(
        r.stdout.contains("Held by:        root (uid 0)\n"),
        "{}",
        r.stdout
    );
    admin(&env, &["release", &id])
        .code(0)
        .stdout_is(&format!("{id}: released\n"));
    assert!(queued(&env, &id) && !held(&env, &id), "{}", env.listing());
    let r = admin(&env, &["show", &id]);
    assert!(r.stdout.contains("Attempts:       1"), "{}", r.stdout);
    assert!(!r.stdout.contains("Held by"), "{}", r.stdout);
}

/// A hold cut short between its two renames (the queue file in `hold/`, its state file
/// still in the spool) loses nothing: queue runs keep the state file, and `hold` or
/// `release` puts the entry together again with its state.
#[test]
fn a_hold_cut_short_keeps_the_entrys_state() {
    let env = relay_env(closed_tcp_port(), "");
    env.sendmail(&["-odi", "bob@example.org"], MSG).code(0);
    let id = env.only_id();
    let sf = env.spool.join(format!("sf{id}"));
    assert!(sf.exists());
    let hold = env.spool.join("hold");
    fs::create_dir(&hold).unwrap();
    // As the spool's own sub-directories are: others may not enter it.
    fs::set_permissions(&hold, fs::Permissions::from_mode(0o2770)).unwrap();
    fs::rename(
        env.spool.join(format!("qf{id}")),
        hold.join(format!("qf{id}")),
    )
    .unwrap();
    env.sendmail(&["-qf"], b"").code(0);
    assert!(sf.exists(), "a queue run removed the held entry's state");
    // `show` gives the entry's real state meanwhile (the attempt made), held.
    let r = admin(&env, &["show", &id]);
    r.code(0);
    assert!(r.stdout.contains("Attempts:       1\n"), "{}", r.stdout);
    assert!(r.stdout.contains("Status:         held"), "{}", r.stdout);
    admin(&env, &["hold", &id])
        .code(0)
        .stdout_is(&format!("{id}: already held\n"));
    assert!(hold.join(format!("sf{id}")).exists() && !sf.exists());
    // Cut short again, the other way (a release that moved the state file first).
    fs::rename(hold.join(format!("sf{id}")), &sf).unwrap();
    admin(&env, &["release", &id]).code(0);
    assert!(queued(&env, &id) && sf.exists());
    let json = env.mailq(&["--json"]);
    assert!(json.contains("\"attempts\":1"), "{json}");
    // Held again, cut short with the record of who held it still in the spool's state
    // file: `rsendmail-admin list` names the holder all the same.
    admin(&env, &["hold", &id]).code(0);
    fs::rename(hold.join(format!("sf{id}")), &sf).unwrap();
    let r = admin(&env, &["list"]);
    r.code(0);
    assert!(
        r.stdout.contains("\n     QUARANTINE: held by "),
        "{}",
        r.stdout
    );
    let r = admin(&env, &["list", "--json"]);
    r.code(0);
    assert!(
        r.stdout.contains(",\"held_by\":{\"user\":")
            && r.stdout
                .contains(&format!(",\"uid\":{}}}", unsafe { libc::getuid() })),
        "{}",
        r.stdout
    );
}

/// `delete --recipient ''` (a script's empty variable) is a usage error (64), not every
/// entry: an empty or blank SUBSTR is in every address; `--all` is its own flag.
#[test]
fn delete_refuses_an_empty_recipient_pattern() {
    let env = Env::new();
    let a = queue(&env, "bob@example.org");
    let b = queue(&env, "carol@example.org");
    for pat in ["", "  "] {
        let r = admin(&env, &["delete", "--recipient", pat]);
        r.code(64);
        assert!(
            r.stderr
                .contains("needs a SUBSTR that is not empty or blanks"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stdout, "");
    }
    assert!(queued(&env, &a) && queued(&env, &b));
    let r = admin(&env, &["delete", "--all", &a]);
    r.code(64);
    assert!(
        r.stderr
            .contains("rsendmail-admin delete [--dry-run] --all\n"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("--all [ID]"), "{}", r.stderr);
}

/// `delete --recipient` with a pattern of no letter or digit (`@`, `.`, `<>`, `-`, ...)
/// names no recipient (it is in nearly every address): a usage error (64), nothing
/// deleted, the pattern shown escaped; a pattern with a letter or digit still deletes
/// what it names.
#[test]
fn delete_refuses_a_pattern_without_a_letter_or_digit() {
    let env = Env::new();
    let a = queue(&env, "bob@example.org");
    let b = queue(&env, "carol-x@example.org");
    for pat in ["@", ".", " .", "@.", "<>", "-", "_", "+", "%!", "'\""] {
        let r = admin(&env, &["delete", "--recipient", pat]);
        r.code(64);
        assert!(
            r.stderr
                .contains("has no letter or digit, so it names no recipient"),
            "{pat:?}: {}",
            r.stderr
        );
        assert_eq!(r.stdout, "", "{pat:?}");
    }
    // A pattern that matches nothing is shown back, an invisible character in it as
    // every program shows one: its octets in octal.
    let r = admin(&env, &["delete", "-n", "--recipient", "bob\u{200b}"]);
    r.code(0);
    assert!(
        r.stdout
            .starts_with("no entries matched: no recipient contains \"bob\\342\\200\\213\"\n"),
        "{}",
        r.stdout
    );
    // An invisible character is shown as every program shows one: its octets in octal.
    let r = admin(&env, &["delete", "--recipient", "\u{200b}"]);
    r.code(64);
    assert!(
        r.stderr
            .contains("--recipient \"\\342\\200\\213\" has no letter or digit"),
        "{}",
        r.stderr
    );
    assert!(queued(&env, &a) && queued(&env, &b));
    let r = admin(&env, &["delete", "--recipient=-x@"]);
    r.code(0);
    assert!(queued(&env, &a) && !queued(&env, &b), "{}", r.stdout);
    admin(&env, &["delete", "--recipient", "Bob@"]).code(0);
    assert!(!queued(&env, &a));
}

/// `delete --recipient` with a 100 KB pattern: its messages echo the first characters
/// of it and its length, in short lines, with the exit status a short one gets (0 when
/// nothing matched, 64 for a pattern without a letter or digit); nothing is deleted.
#[test]
fn delete_echoes_a_huge_recipient_pattern_cut() {
    let env = Env::new();
    let a = queue(&env, "bob@example.org");
    let huge = format!("{}\u{1b}", "b".repeat(100_000));
    for args in [
        &["delete", "--recipient", &huge][..],
        &["delete", "-n", "--recipient", &huge][..],
    ] {
        let r = admin(&env, args);
        let shown = &r.stdout[..r.stdout.len().min(2000)];
        r.code(0);
        assert!(r.stdout.len() < 1000, "{}: {shown}", args[1]);
        let l = r.stdout.lines().next().unwrap();
        assert!(
            l.starts_with("no entries matched: no recipient contains \"bbbb")
                && l.ends_with("b... (100001 characters)\""),
            "{l}"
        );
    }
    let dots = "@".repeat(100_000);
    let r = admin(&env, &["delete", "--recipient", &dots]);
    r.code(64);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "{} bytes", r.stderr.len());
    assert!(r.stderr.len() < 1000, "{} bytes", r.stderr.len());
    assert!(
        r.stderr
            .contains("@... (100000 characters)\" has no letter or digit"),
        "{}",
        r.stderr
    );
    assert!(queued(&env, &a));
}

/// An internationalised domain matches in both its forms, whichever the queue holds and
/// whichever is asked: `mailq -qR` (the listing's selection, as a run's) and
/// `delete --recipient`.
#[test]
fn recipient_selection_takes_both_forms_of_an_idn_domain() {
    let env = Env::new();
    let a = queue(&env, "u@b\u{fc}cher.example");
    let b = queue(&env, "v@xn--bcher-kva.example");
    let c = queue(&env, "w@bucher.example");
    for asked in [
        "xn--bcher",
        "b\u{fc}cher.example",
        "B\u{dc}CHER",
        "XN--BCHER-KVA",
    ] {
        let listed = env.sendmail(&["-bp", &format!("-qR{asked}")], b"");
        let out = &listed.stdout;
        assert!(out.contains(&a) && out.contains(&b), "{asked}: {out}");
        assert!(!out.contains(&c), "{asked}: {out}");
    }
    let r = admin(&env, &["delete", "--recipient", "B\u{dc}CHER.example"]);
    r.code(0);
    let mut want = [a.clone(), b.clone()];
    want.sort();
    assert_eq!(
        r.stdout,
        format!(
            "{}: deleted\n{}: deleted\n2 entries deleted\n",
            want[0], want[1]
        )
    );
    assert_eq!(env.entries().len(), 1, "{}", env.listing());
}

/// A command that only looks (`list`, `show`, `delete --dry-run`) logs nothing, its
/// failures included (an ID that names no entry, one that is no ID, a selection that
/// matches nothing, a spool that is not there): MAILLOG is left as it was, and is not
/// made when it is not there. An action's failure is logged.
#[test]
fn commands_that_only_look_log_nothing() {
    let env = Env::new();
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let id = queue(&env, "bob@example.org");
    let before = fs::read_to_string(&log).unwrap();
    let looks: &[(&[&str], i32)] = &[
        (&["show", "6AUIIquc023976"], 66),
        (&["show", "nosuchid"], 64),
        (&["show", &id], 0),
        (&["list"], 0),
        (&["list", "--json"], 0),
        (&["delete", "--dry-run", "6AUIIquc023976"], 66),
        (&["delete", "--dry-run", &id], 0),
        (&["delete", "--dry-run", "--all"], 0),
        (&["delete", "--dry-run", "--recipient", "nobody"], 0),
    ];
    for (args, code) in looks {
        admin(&env, args).code(*code);
        assert_eq!(fs::read_to_string(&log).unwrap(), before, "{args:?}");
    }
    // An action's failure is logged.
    admin(&env, &["hold", "6AUIIquc023976"]).code(66);
    assert!(
        fs::read_to_string(&log)
            .unwrap()
            .contains("6AUIIquc023976: no such entry"),
        "{}",
        env.listing()
    );
    // No MAILLOG made either, the spool's refusal (78) not logged.
    fs::remove_file(&log).unwrap();
    let missing = env.dir.join("nospool");
    fs::write(&env.conf, env.config_naming_spool(&missing)).unwrap();
    for (args, _) in looks {
        admin(&env, args).code(78);
        assert!(!log.exists(), "{args:?}");
    }
}

/// `delete --dry-run`: every selection `delete` takes (IDs, `--recipient`, `--all`)
/// prints each entry it would delete (ID, sender, open recipients; a held one marked),
/// refuses what `delete` refuses with its status, and deletes nothing.
#[test]
fn delete_dry_run_prints_each_entry_and_deletes_nothing() {
    let env = Env::new();
    let a = queue(&env, "bob@example.org");
    let b = queue(&env, "carol@example.net");
    admin(&env, &["hold", &b]).code(0);
    let idx = index_text(&env);
    let all = |r: &Run| {
        assert!(queued(&env, &a) && held(&env, &b), "{}", r.stdout);
        assert_eq!(index_text(&env), idx);
    };
    let r = admin(&env, &["delete", "--dry-run", &a]);
    r.code(0);
    assert_eq!(
        r.stdout,
        format!(
            "{a}: would be deleted: from <alice@example.org> to bob@example.org\n\
             dry run: 1 entry would be deleted; nothing was deleted\n"
        )
    );
    all(&r);
    let r = admin(&env, &["delete", "-n", "--recipient", "CAROL"]);
    r.code(0);
    assert_eq!(
        r.stdout,
        format!(
            "{b}: would be deleted (held): from <alice@example.org> to carol@example.net\n\
             dry run: 1 entry would be deleted; nothing was deleted\n"
        )
    );
    all(&r);
    let r = admin(&env, &["delete", "--all", "--dry-run"]);
    r.code(0);
    for id in [&a, &b] {
        assert!(
            r.stdout.contains(&format!("{id}: would be deleted")),
            "{}",
            r.stdout
        );
    }
    assert!(
        r.stdout
            .ends_with("dry run: 2 entries would be deleted; nothing was deleted\n"),
        "{}",
        r.stdout
    );
    all(&r);
    // An ID that names no entry: 66, as without --dry-run; the others still shown.
    let r = admin(&env, &["delete", "--dry-run", "6AUIIquc023976", &a]);
    r.code(66);
    assert!(
        r.stdout.contains(&format!("{a}: would be deleted")),
        "{}",
        r.stdout
    );
    all(&r);
    // Only IDs that name no entry, or are none: the error alone, no summary.
    for (id, code) in [("6AUIIquc023976", 66), ("nosuchid", 64)] {
        let r = admin(&env, &["delete", "--dry-run", id]);
        r.code(code);
        assert_eq!(r.stdout, "", "{id}");
        assert!(r.stderr.contains(id), "{id}: {}", r.stderr);
        all(&r);
    }
    // Without it, they go.
    admin(&env, &["delete", "--all"]).code(0);
    assert!(!queued(&env, &a) && !held(&env, &b));
}

/// `delete --all` (and `--recipient`) passes over an entry that a delivery finished
/// between the listing and the deletion, as `postsuper -d ALL` does: not an error, exit
/// 0. Here the second entry's lock is held (a delivery) while the first is deleted; the
/// "delivery" then removes the entry and lets go of the lock. An ID given that names
/// no entry is still an error (66).
#[test]
fn delete_all_passes_over_entries_delivered_meanwhile() {
    use std::io::BufRead as _;
    for selection in [&["--all"][..], &["--recipient", "example.org"][..]] {
        let env = Env::new();
        let mut ids = [
            queue(&env, "bob@example.org"),
            queue(&env, "carol@example.org"),
        ];
        ids.sort();
        let [first, last] = ids;
        let qf = env.spool.join(format!("qf{last}"));
        let f = fs::File::open(&qf).unwrap();
        f.lock().unwrap();
        let mut args = vec!["-C", env.conf.to_str().unwrap(), "delete"];
        args.extend_from_slice(selection);
        let mut child = Command::new(admin_bin())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The first entry is deleted: the listing is made, and the second one is next.
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{first}: deleted\n"));
        // The delivery of the second ends: its files go, then its lock.
        fs::remove_file(&qf).unwrap();
        let _ = fs::remove_file(env.spool.join(format!("sf{last}")));
        drop(f);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let done = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(0), "{selection:?}: {stderr}");
        assert!(
            rest.contains(" no longer queued (delivered or removed meanwhile)\n"),
            "{selection:?}: {rest}"
        );
        assert_eq!(stderr, "", "{selection:?}");
        assert!(env.entries().is_empty(), "{}", env.listing());
        // Named, the entry that is gone is an error.
        let r = admin(&env, &["delete", &last]);
        r.code(66);
        assert!(
            r.stderr
                .contains(&format!("{last}: no such entry in the queue")),
            "{}",
            r.stderr
        );
    }
}

/// `show`, `list` and `list --json` never put a bidirectional control (U+202E, the
/// isolates U+2066-U+2069, the marks U+200E/U+200F), a zero-width or another invisible
/// format character on the terminal: `show` and `list` show them as their octets in
/// octal, as they show control characters (one form everywhere), and `list --json` stays JSON with them as
/// `\uXXXX` escapes, the same text once decoded.
#[test]
fn queue_listings_escape_bidi_controls_and_invisible_characters() {
    let env = Env::new();
    let sender = "al\u{202e}ice@example.org";
    let rcpt = "b\u{2066}o\u{2069}b\u{200f}@example.org";
    let msg = "Subject: invoice\u{202e}fdp.exe\u{200e} \u{200b}\u{2028}x\n\nbody\n";
    env.sendmail(&["-odq", "-f", sender, rcpt], msg.as_bytes())
        .code(0);
    let id = env.only_id();
    let invisible = |s: &str| {
        s.chars()
            .find(|c| {
                matches!(
                    c,
                    '\u{202a}'..='\u{202e}'
                        | '\u{2066}'..='\u{2069}'
                        | '\u{200b}'..='\u{200f}'
                        | '\u{2028}'
                        | '\u{2029}'
                )
            })
            .map(|c| format!("U+{:04X}", u32::from(c)))
    };
    let r = admin(&env, &["show", &id]);
    r.code(0);
    assert_eq!(invisible(&r.stdout), None, "{}", r.stdout);
    for want in [
        "Sender:         al\\342\\200\\256ice@example.org\n",
        "  b\\342\\201\\246o\\342\\201\\251b\\342\\200\\217@example.org: pending\n",
        "  Subject: invoice\\342\\200\\256fdp.exe\\342\\200\\216 \\342\\200\\213\\342\\200\\250x\n",
    ] {
        assert!(r.stdout.contains(want), "{want:?} in\n{}", r.stdout);
    }
    let r = admin(&env, &["list"]);
    r.code(0);
    assert_eq!(invisible(&r.stdout), None, "{}", r.stdout);
    assert!(
        r.stdout.contains("al\\342\\200\\256ice@example.org"),
        "{}",
        r.stdout
    );
    let r = admin(&env, &["list", "--json"]);
    r.code(0);
    assert_eq!(invisible(&r.stdout), None, "{}", r.stdout);
    assert!(
        r.stdout.contains("\"sender\":\"al\\u202eice@example.org\""),
        "{}",
        r.stdout
    );
    // Valid JSON, the same addresses once decoded.
    if crate::harness::have("python3") {
        let mut py = Command::new("python3")
            .args([
                "-c",
                "import json,sys\nfor l in sys.stdin:\n o=json.loads(l)\n \
                 print(ascii(o['sender']), ascii(o['recipients'][0]['address']))",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        py.stdin
            .take()
            .unwrap()
            .write_all(r.stdout.as_bytes())
            .unwrap();
        let out = py.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "'al\\u202eice@example.org' 'b\\u2066o\\u2069b\\u200f@example.org'\n"
        );
    }
}

/// A queue ID as `mailq` lists it (followed by its mark) or as its queue file's name is
/// taken, blanks around it too; the name of another file of the entry or a path is
/// refused (64) with the ID to give, and nothing is done.
#[test]
fn ids_are_taken_as_listings_show_them() {
    let env = Env::new();
    let id = queue(&env, "bob@example.org");
    admin(&env, &["hold", &format!("qf{id}")])
        .code(0)
        .stdout_is(&format!("{id}: held\n"));
    admin(&env, &["release", &format!("{id}!")])
        .code(0)
        .stdout_is(&format!("{id}: released\n"));
    admin(&env, &["show", &format!("{id}* ")]).code(0);
    for arg in [
        format!("sf{id}"),
        format!("df{id}"),
        env.spool.join(format!("qf{id}")).display().to_string(),
    ] {
        let r = admin(&env, &["delete", &arg]);
        r.code(64);
        assert!(
            r.stderr.contains(&format!("{arg}: "))
                && r.stderr
                    .contains(&format!("give the ID {id} (as mailq lists it)")),
            "{}",
            r.stderr
        );
        assert_eq!(r.stdout, "");
        assert!(queued(&env, &id));
    }
}

/// `delete --all` says what became of its selection, as `postsuper -d ALL` prints a
/// count: how many it deleted, and the entry a run was delivering, marked (or deleted,
/// when its delivery ended within the moment `delete` waits); the transaction under way
/// is not cut.
#[test]
fn delete_all_counts_what_it_deleted_and_what_it_marked() {
    // The server waits 1 s before answering DATA.
    let Some(Delivering {
        _sink_dir,
        sink,
        env,
        mut run,
        busy,
        ..
    }) = delivering_with_stall("1", "", &["first@example.org"])
    else {
        return;
    };
    let r = admin(&env, &["delete", "--all"]);
    r.code(0);
    let marked = format!(
        "{busy}: being delivered: marked for deletion; it is deleted as soon as its delivery \
         ends, and nothing more of it is sent (its delivery logs what of it was sent)\n0 entries deleted; 1 entry being delivered, \
         marked for deletion: {busy} (it goes as soon as its delivery has ended)\n"
    );
    let ended = format!(
        "{busy}: delivered before the deletion took effect\n0 entries deleted; 1 entry \
         delivered before the deletion took effect\n"
    );
    assert!(r.stdout == marked || r.stdout == ended, "{}", r.stdout);
    let _ = run.wait();
    assert_eq!(sink.dumps().len(), 1);
    assert!(env.entries().is_empty(), "{}", env.listing());
    let a = queue(&env, "second@example.org");
    let b = queue(&env, "third@example.org");
    let r = admin(&env, &["delete", "--all"]);
    let mut want = [a, b];
    want.sort();
    r.code(0).stdout_is(&format!(
        "{}: deleted\n{}: deleted\n2 entries deleted\n",
        want[0], want[1]
    ));
}

/// `delete --all` while a queue run delivers the first of six entries to a slow server:
/// every entry the run has not reached is deleted at once (never waited for in turn as
/// the run reaches it), the one in flight is left to its delivery and said, and the run
/// sends none of those `delete` said it deleted.
#[test]
fn delete_all_during_a_run_deletes_what_is_not_in_flight_at_once() {
    let env0 = Env::new();
    // smtp-sink waits 10 s before answering each DATA command.
    let Some(sink) = Sink::start(&env0.dir, &["-w", "10"]) else {
        return;
    };
    let env = relay_env(sink.port, "O MaxConnections=1\n");
    let ids: Vec<(String, String)> = (0..6)
        .map(|i| {
            let rcpt = format!("r{i}@example.org");
            (queue(&env, &rcpt), rcpt)
        })
        .collect();
    let mut run = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-qf"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The run is connected (our readiness probe was the first connection) and an entry
    // is being delivered.
    wait_until(Duration::from_secs(10), "an entry being delivered", || {
        sink.connections() >= 2 && env.mailq(&[]).contains('*')
    });
    let start = std::time::Instant::now();
    let r = admin(&env, &["delete", "--all"]);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "{took:?}: {}{}",
        r.stdout,
        r.stderr
    );
    r.code(0);
    let deleted: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_suffix(": deleted"))
        .collect();
    let busy: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.split_once(": being delivered: marked for deletion"))
        .map(|(id, _)| id)
        .collect();
    // One worker: the entry it delivers, and at most the next one, locked ahead.
    assert!(
        (1..=2).contains(&busy.len()) && deleted.len() + busy.len() == ids.len(),
        "{}{}",
        r.stdout,
        r.stderr
    );
    let mut marked = busy.clone();
    marked.sort();
    assert!(
        r.stdout.ends_with(&format!(
            "{} entries deleted; {} {} being delivered, marked for deletion: {} ({} as soon \
             as {} ended)\n",
            deleted.len(),
            busy.len(),
            if busy.len() == 1 { "entry" } else { "entries" },
            marked.join(" "),
            if busy.len() == 1 {
                "it goes"
            } else {
                "they go"
            },
            if busy.len() == 1 {
                "its delivery has"
            } else {
                "their deliveries have"
            }
        )),
        "{}",
        r.stdout
    );
    for id in &deleted {
        assert!(!queued(&env, id), "{}", env.listing());
    }
    let _ = run.wait();
    // Only what was in flight went out; nothing `delete` deleted.
    let dumps = sink.dumps();
    assert!(!dumps.is_empty() && dumps.len() <= busy.len(), "{dumps:?}");
    for (id, rcpt) in &ids {
        let sent = dumps.iter().any(|d| d.contains(rcpt.as_str()));
        assert!(
            !sent || busy.contains(&id.as_str()),
            "{id} ({rcpt}) was deleted, then sent: {dumps:?}"
        );
    }
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// `delete --all` takes its selection out of the runs' reach at the pace of unlinks: the
/// spool directory is synced once at the end, not once an entry (1,000 entries took
/// 12 s at 8 ms a sync, while a run started new transactions on entries the command had
/// been asked to delete). Counted with strace: one fsync for 20 entries, every entry
/// gone and counted.
#[test]
fn delete_all_syncs_the_spool_once_not_once_an_entry() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    let env = Env::new();
    for i in 0..20 {
        queue(&env, &format!("r{i}@example.org"));
    }
    let trace = env.dir.join("fsyncs");
    let out = Command::new("strace")
        .args(["-f", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(admin_bin())
        .args(["-C", env.conf.to_str().unwrap(), "delete", "--all"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with("\n20 entries deleted\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
    let syncs = fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains("sync("))
        .count();
    assert!((1..=2).contains(&syncs), "{syncs} syncs");
}

/// `delete` of several IDs deletes those no delivery holds at once, marks one being
/// delivered (named first), and deletes that one itself when its delivery lets go of it
/// within the moment it waits.
#[test]
fn delete_of_several_ids_takes_the_unlocked_ones_before_waiting() {
    use std::io::BufRead as _;
    let env = Env::new();
    let id = queue(&env, "bob@example.org");
    let other = queue(&env, "carol@example.org");
    let qf = env.spool.join(format!("qf{id}"));
    // The lock a delivery takes: an exclusive flock on the queue file.
    let f = fs::File::open(&qf).unwrap();
    f.lock().unwrap();
    let start = std::time::Instant::now();
    let mut child = Command::new(admin_bin())
        .args(["-C", env.conf.to_str().unwrap(), "delete", &id, &other])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, format!("{other}: deleted\n"));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(!queued(&env, &other) && qf.exists(), "{}", env.listing());
    assert!(
        env.spool.join(format!("kf{id}")).exists(),
        "{}",
        env.listing()
    );
    // The delivery ends with the entry still queued: it is deleted then.
    drop(f);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{stderr}");
    if rest != format!("{id}: deleted unsent\n") {
        // The moment it waits was over first (a busy machine): left marked, and
        // removed by the next holder of its lock, which says who asked for it.
        assert!(rest.contains("marked for deletion"), "{rest}");
        let r = admin(&env, &["delete", &id]);
        r.code(0);
        assert!(
            r.stdout.starts_with(&format!(
                "{id}: deleted (its deletion had been asked for by "
            )),
            "{}",
            r.stdout
        );
    }
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert!(
        !env.spool.join(format!("kf{id}")).exists(),
        "{}",
        env.listing()
    );
}

/// The same entry named twice (as its ID, its queue file's name, with mailq's mark) is
/// acted on once: one line, and, when a delivery holds it, one wait and one "being
/// delivered" line, not one per mention.
#[test]
fn an_id_given_twice_is_acted_on_once() {
    let env =
        Env::with_config("O Timeout.connect=30s\nO Timeout.initial=2m\nO Timeout.datablock=3m\n");
    let id = queue(&env, "bob@example.org");
    let other = queue(&env, "carol@example.org");
    let r = admin(&env, &["hold", &other, &format!("qf{other}"), &other]);
    r.code(0);
    assert_eq!(r.stdout, format!("{other}: held\n"));
    let f = fs::File::open(env.spool.join(format!("qf{id}"))).unwrap();
    f.lock().unwrap();
    let r = admin(&env, &["retry", &id, &format!("{id}*"), &id]);
    r.code(75);
    assert_eq!(left_busy(&r.stderr), vec![id.clone()], "{}", r.stderr);
    // The line says when to try again: when the delivery has ended, which no time
    // bounds for a transfer under way; the bounds the timeouts in force give, each for
    // what it bounds (a time named only for a server that does not answer, one address).
    assert!(
        r.stderr
            .contains("left as it is, try again when its delivery has ended: ")
            && r.stderr.contains(
                "for each address it tries, a server that does not answer holds it up to \
                 150 s (Timeout.connect 30 s + Timeout.initial 2 min; until "
            )
            && r.stderr.contains(
                " for the first address), a transfer under way up to 3 min a block \
                 (Timeout.datablock) and as long as the message takes (the timeouts as \
                 configured: a run given other Timeout options on its command line takes as \
                 long as those say)"
            )
            && !r.stderr.contains("try again after"),
        "{}",
        r.stderr
    );
    drop(f);
    assert!(queued(&env, &id), "{}", env.listing());
}

/// `delete --recipient` by a user whose every match is refused (her own entry, held by
/// root: only root or the spool's group may end that hold) says its count as the
/// deletion does, with `--dry-run` too: none would be deleted, one refused (said on
/// stderr), 77; never a silent stdout.
#[test]
fn a_dry_run_whose_matches_are_all_refused_prints_its_count() {
    let Some(sys) = setgid_system("admin-dry-refused") else {
        return;
    };
    let mine = sys.users_entry();
    let out = sys.root(&["hold", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for (dry, line) in [
        (
            true,
            "dry run: 0 entries would be deleted, 1 entry refused (said above); nothing was \
             deleted\n",
        ),
        (false, "0 entries deleted; 1 entry refused (said above)\n"),
    ] {
        let mut args = vec!["delete", "--recipient", "bob"];
        if dry {
            args.push("--dry-run");
        }
        let out = sys.user(&args);
        assert_eq!(
            out.status.code(),
            Some(77),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(&format!("{mine}: permission denied: held by")),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), line, "{args:?}");
        assert!(sys.spool.join(format!("hold/qf{mine}")).exists());
    }
}

/// A delivery to an SMTPS relay (SECURETRANSFER without STARTTLS) waits for the TLS
/// handshake between the connection and the greeting: the "being delivered" line counts
/// that wait (Timeout.helo) in the time a server that does not answer holds the entry.
#[test]
fn the_bound_said_for_an_smtps_relay_counts_the_handshake() {
    let env = Env::with_config(
        "SECURETRANSFER\nO Timeout.connect=30s\nO Timeout.helo=1m\nO Timeout.initial=2m\n",
    );
    let id = queue(&env, "bob@example.org");
    let f = fs::File::open(env.spool.join(format!("qf{id}"))).unwrap();
    f.lock().unwrap();
    let r = admin(&env, &["retry", &id]);
    r.code(75);
    assert!(
        r.stderr.contains(
            "for each address it tries, a server that does not answer holds it up to \
             210 s (Timeout.connect 30 s + Timeout.helo 1 min (the TLS handshake) + \
             Timeout.initial 2 min; until "
        ),
        "{}",
        r.stderr
    );
    drop(f);
}

/// `delete --recipient` by a user whose only match is another user's entry (which
/// `mailq` shows her) refuses it as `delete ID` does (the ID named on stderr, 77), and
/// never says that no recipient contains the pattern; her `--all`, which takes her own
/// entries only, says how many it left as not hers. The entry stays.
#[test]
fn a_users_selection_of_another_users_entry_says_it_is_not_hers() {
    let Some(sys) = setgid_system("admin-rcpt-others") else {
        return;
    };
    let out = sys.root_runs(&crate::harness::bin(), &["-odq", "r1@example.org"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let theirs = crate::harness::queued_ids(&sys.spool).pop().unwrap();
    let who = format!("the user \"{TEST_USER}\"");
    for dry in [false, true] {
        let mut args = vec!["delete", "--recipient", "r1"];
        if dry {
            args.push("--dry-run");
        }
        let out = sys.user(&args);
        assert_eq!(
            out.status.code(),
            Some(77),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(&format!(
                "{theirs}: permission denied: {who} may act only on the entries that user \
                 submitted"
            )),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            !text(&out.stdout).contains("no entries matched"),
            "{args:?}: {}",
            text(&out.stdout)
        );
        assert!(
            text(&out.stdout).contains("1 entry refused (said above)"),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
    let out = sys.user(&["delete", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "no entries matched: 1 entry left, not yours ({who} may act only on the entries \
             that user submitted)\n"
        )
    );
    assert!(sys.spool.join(format!("qf{theirs}")).exists());
}

/// A delivery report belongs to the owner of the entry it reports on, whichever
/// process queued it: a user's background delivery (`-odb`) that also takes root's
/// waiting entries queues the failure report and the delay warning about them, and
/// those are root's. The user may not `show`, `hold`, `delete`, `release`, `retry` or
/// `bounce` them (77), as root's own entries; root's `show` says whose each is and
/// which run queued it.
#[test]
fn reports_a_users_delivery_queues_about_roots_entries_are_roots() {
    let _turn = crate::local::mailbox_turn();
    let Some(sys) = setgid_system("admin-report-owner") else {
        return;
    };
    // A smarthost that refuses `reject5...` (550) and defers `reject4...` (450).
    let Some((_peer_dir, peer)) = crate::harness::servers::start_peer(&[]) else {
        return;
    };
    fs::create_dir_all(sys.here.join("mail")).unwrap();
    fs::set_permissions(sys.here.join("mail"), fs::Permissions::from_mode(0o1777)).unwrap();
    let deliver = sys.here.join("rsendmail-deliver");
    copy_executable(Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver")), &deliver);
    fs::set_permissions(&deliver, fs::Permissions::from_mode(0o755)).unwrap();
    let relay = format!(
        "SMARTHOST 127.0.0.1\nPORT {}\nO Timeout.connect=5s\nO Timeout.queuewarn=1s\n",
        peer.port
    );
    for c in [
        sys.conf.clone(),
        sys.etc.join("rsendmail/rsendmail.conf"),
        sys.member_etc.join("rsendmail/rsendmail.conf"),
    ] {
        let mut t = fs::read_to_string(&c).unwrap();
        t.push_str(&relay);
        fs::write(&c, t).unwrap();
    }
    // The spool's layout for background deliveries, root's, as the install makes it.
    let (_, gid) = crate::harness::fit_group();
    for d in ["slots", "waiting"] {
        let p = sys.spool.join(d);
        fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(0), Some(gid)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o2770)).unwrap();
    }
    // Root's entries, never tried, past the warning time, left waiting for a
    // background delivery (as a root submission that found every slot busy leaves
    // them).
    let mut roots = Vec::new();
    for rcpt in ["reject5gone@example.org", "reject4slow@example.org"] {
        let before = crate::harness::queued_ids(&sys.spool);
        let out = sys.root_runs(&crate::harness::bin(), &["-odq", rcpt]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        roots.push(
            crate::harness::queued_ids(&sys.spool)
                .into_iter()
                .find(|i| !before.contains(i))
                .unwrap(),
        );
    }
    std::thread::sleep(Duration::from_millis(1100));
    for id in &roots {
        let marker = sys.spool.join("waiting").join(id);
        fs::write(&marker, "").unwrap();
        std::os::unix::fs::chown(&marker, Some(0), Some(gid)).unwrap();
        fs::set_permissions(&marker, fs::Permissions::from_mode(0o660)).unwrap();
    }
    // The user's background delivery: her own entry, then root's waiting ones.
    let out = in_system(
        &sys.etc,
        TEST_USER,
        &sys.sm,
        &["-odb", "carol@example.org"],
        MSG,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report_of = |kind: &str, id: &str| {
        crate::harness::queued_ids(&sys.spool)
            .into_iter()
            .find(|r| {
                text(&sys.root(&["show", r]).stdout)
                    .contains(&format!("Report:         {kind} of {id}\n"))
            })
    };
    let mut reports = Vec::new();
    wait_until(
        Duration::from_secs(30),
        "root's entries reported on",
        || {
            reports = [("failure", &roots[0]), ("delay", &roots[1])]
                .iter()
                .filter_map(|(kind, id)| report_of(kind, id))
                .collect();
            reports.len() == 2
        },
    );
    for report in &reports {
        // Queued by her process, yet root's: hers to act on no more than root's own.
        for action in ["show", "hold", "release", "retry", "bounce", "delete"] {
            let out = sys.user(&[action, report]);
            assert_eq!(
                out.status.code(),
                Some(77),
                "{action}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            assert!(
                text(&out.stderr).contains(&format!("{report}: permission denied")),
                "{action}: {}",
                text(&out.stderr)
            );
        }
        // Root's `show` says whose it is, and which run queued it.
        let shown = text(&sys.root(&["show", report]).stdout);
        assert!(
            shown.contains(&format!(
                "Submitted by:   MAILER-DAEMON (a delivery report, queued by a delivery run \
                 as {TEST_USER} (uid "
            )),
            "{shown}"
        );
        assert!(
            shown.contains("Owner:          root (uid 0) (the owner of the entry it reports on)\n"),
            "{shown}"
        );
    }
    // Her `delete --all` leaves them too.
    let out = sys.user(&["delete", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for report in &reports {
        assert!(sys.spool.join(format!("qf{report}")).exists());
    }
    let _ = fs::remove_dir_all(&sys.here);
}

/// A hold is the administrator's quarantine (sendmail's `-Q`, Postfix's `postsuper -h`,
/// which are theirs alone): a user may not end one that root or the spool's group made
/// on her entry, by `release`, `retry`, `bounce` or `delete` (77, naming who held it and
/// who may release it), nor take it over by holding it again; a member of the group may
/// release it. A hold she made herself she may release. `show` and `list` name who held
/// an entry; `mailq` keeps sendmail's line. An entry held by an earlier version (its
/// state without the record) is root's and the group's to release, and `show` says the
/// record is missing. (Set-gid copies of the programs, an `/etc` overlaid in a private
/// mount namespace, as in `two_users_act_only_on_their_own_entries`.)
#[test]
fn a_hold_made_by_root_is_released_only_by_root_the_group_or_its_maker() {
    let Some(sys) = setgid_system("admin-holds") else {
        return;
    };
    let SetgidSystem {
        here, spool, group, ..
    } = &sys;
    let is_held = |id: &str| spool.join("hold").join(format!("qf{id}")).exists();
    let mine = sys.users_entry();
    let uid = crate::harness::test_user().uid;

    // Root holds the test user's entry: who held it is shown.
    let out = sys.root(&["hold", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(is_held(&mine));
    let out = sys.root(&["show", &mine]);
    assert!(
        text(&out.stdout).contains("\nHeld by:        root (uid 0)\n"),
        "{}",
        text(&out.stdout)
    );
    let out = sys.root(&["list"]);
    assert!(
        text(&out.stdout).contains("\n     QUARANTINE: held by root\n"),
        "{}",
        text(&out.stdout)
    );
    let out = sys.root(&["list", "--json"]);
    assert!(
        text(&out.stdout).contains(r#","held_by":{"user":"root","uid":0}"#),
        "{}",
        text(&out.stdout)
    );
    // mailq keeps sendmail's quarantine line, which carries the reason alone.
    let out = sys.root_runs(&crate::harness::bin(), &["-bp"]);
    assert!(
        text(&out.stdout).contains("\n     QUARANTINE: held\n"),
        "{}",
        text(&out.stdout)
    );
    let mailq = here.join("mailq");
    std::os::unix::fs::symlink(crate::harness::bin(), &mailq).unwrap();
    let out = sys.root_runs(&mailq, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(r#""queue_name":"hold""#),
        "{}",
        text(&out.stdout)
    );
    assert!(
        !text(&out.stdout).contains("held_by"),
        "{}",
        text(&out.stdout)
    );

    // The test user may see it, but not end root's hold, whatever the command.
    let out = sys.user(&["show", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\nHeld by:        root (uid 0)\n"),
        "{}",
        text(&out.stdout)
    );
    let refusal = format!(
        "{mine}: permission denied: held by the user \"root\" (uid 0): only root or a member of the \
         spool's group {group} may release it"
    );
    for action in ["release", "retry", "bounce", "delete"] {
        let out = sys.user(&[action, &mine]);
        assert_eq!(
            out.status.code(),
            Some(77),
            "{action}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(&refusal),
            "{action}: {}",
            text(&out.stderr)
        );
        if action != "release" {
            assert!(
                text(&out.stderr).contains(&format!(" (or {action} it while it is held)")),
                "{action}: {}",
                text(&out.stderr)
            );
        }
        assert!(
            text(&out.stdout).is_empty(),
            "{action}: {}",
            text(&out.stdout)
        );
        assert!(is_held(&mine), "{action}");
    }
    // Her `delete --all` takes her entries, and refuses this one the same way.
    let out = sys.user(&["delete", "--all"]);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains(&refusal),
        "{}",
        text(&out.stderr)
    );
    assert!(is_held(&mine));
    // Holding it again takes nothing over.
    let out = sys.user(&["hold", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{mine}: already held\n"));
    let out = sys.user(&["release", &mine]);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    assert!(is_held(&mine));
    // A member of the spool's group may release it.
    let out = sys.member(&["release", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{mine}: released\n"));
    assert!(!is_held(&mine) && spool.join(format!("qf{mine}")).exists());
    // The record went with the hold: the entry, never tried, has no state file again.
    assert!(!spool.join(format!("sf{mine}")).exists());

    // A hold she made herself she may release.
    let out = sys.user(&["hold", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = sys.user(&["show", &mine]);
    assert!(
        text(&out.stdout).contains(&format!("\nHeld by:        {TEST_USER} (uid {uid})\n")),
        "{}",
        text(&out.stdout)
    );
    let out = sys.root(&["list"]);
    assert!(
        text(&out.stdout).contains(&format!("\n     QUARANTINE: held by {TEST_USER}\n")),
        "{}",
        text(&out.stdout)
    );
    let out = sys.user(&["release", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{mine}: released\n"));
    assert!(!is_held(&mine));

    // Held by an earlier version: its state file has no record of who held it.
    let out = sys.root(&["hold", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sf = spool.join("hold").join(format!("sf{mine}"));
    let state = fs::read_to_string(&sf).unwrap();
    assert!(state.contains("\nheld-by 0 root\n"), "{state}");
    let old: String = state
        .lines()
        .filter(|l| !l.starts_with("held-by "))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&sf, old).unwrap();
    let out = sys.user(&["release", &mine]);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "{mine}: permission denied: held, and who held it is not recorded (a hold made \
             by an earlier version): only root or a member of the spool's group {group} may \
             release it"
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(is_held(&mine));
    let out = sys.root(&["show", &mine]);
    assert!(
        text(&out.stdout).contains("\nHeld by:        not recorded (a hold made by an earlier"),
        "{}",
        text(&out.stdout)
    );
    let out = sys.root(&["list"]);
    assert!(
        text(&out.stdout).contains("\n     QUARANTINE: held\n"),
        "{}",
        text(&out.stdout)
    );
    let out = sys.root(&["release", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!is_held(&mine));
    let _ = fs::remove_dir_all(here);
}

/// A user's own hold is no quarantine: root's `hold` of an entry she held herself takes
/// the record (said, 0), and she can no longer release, retry, bounce or delete it; her
/// hold of it again changes nothing; root's hold of its own hold, or of a member's, says
/// "already held". A member of the spool's group takes a user's hold as root does (the
/// record of another user's hold written into the state file, as no second test user
/// exists). (Set-gid copies, an overlaid `/etc`, as in
/// `a_hold_made_by_root_is_released_only_by_root_the_group_or_its_maker`.)
#[test]
fn a_hold_by_root_or_the_group_over_a_users_own_hold_takes_it() {
    let Some(sys) = setgid_system("admin-hold-over") else {
        return;
    };
    let SetgidSystem {
        here, spool, group, ..
    } = &sys;
    let is_held = |id: &str| spool.join("hold").join(format!("qf{id}")).exists();
    let mine = sys.users_entry();
    let uid = crate::harness::test_user().uid;
    let sf = spool.join("hold").join(format!("sf{mine}"));

    // She holds it, then root holds it: the hold is root's now, and said so.
    let out = sys.user(&["hold", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(is_held(&mine));
    let out = sys.root(&["hold", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{mine}: already held by {TEST_USER} (uid {uid}): now held by root (uid 0); only \
             root or a member of the spool's group {group} may release it\n"
        )
    );
    assert!(
        fs::read_to_string(&sf)
            .unwrap()
            .contains("\nheld-by 0 root\n")
    );
    for action in ["release", "retry", "bounce", "delete"] {
        let out = sys.user(&[action, &mine]);
        assert_eq!(
            out.status.code(),
            Some(77),
            "{action}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("permission denied: held by the user \"root\" (uid 0)"),
            "{action}: {}",
            text(&out.stderr)
        );
        assert!(is_held(&mine), "{action}");
    }
    // Her hold again takes nothing back; root's again changes nothing.
    for (who, out) in [
        ("user", sys.user(&["hold", &mine])),
        ("root", sys.root(&["hold", &mine])),
    ] {
        assert_eq!(out.status.code(), Some(0), "{who}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("{mine}: already held\n"),
            "{who}"
        );
        assert!(
            fs::read_to_string(&sf)
                .unwrap()
                .contains("\nheld-by 0 root\n"),
            "{who}"
        );
    }
    let out = sys.user(&["release", &mine]);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    let out = sys.root(&["release", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!is_held(&mine));

    // Another user's own hold (its record written here): a member of the group takes it.
    let out = sys.user(&["hold", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let state = fs::read_to_string(&sf).unwrap();
    let line = format!("\nheld-by {uid} {TEST_USER}\n");
    assert!(state.contains(&line), "{state}");
    fs::write(&sf, state.replace(&line, "\nheld-by 4242 carol\n")).unwrap();
    let out = sys.member(&["hold", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!(
            "{mine}: already held by carol (uid 4242): now held by {TEST_USER} (uid {uid}); only "
        )),
        "{}",
        text(&out.stdout)
    );
    assert!(fs::read_to_string(&sf).unwrap().contains(&line));
    let _ = fs::remove_dir_all(here);
}

/// An entry a queue run set aside in `corrupt/` (its queue file cut short) is named
/// where it is by every command, never "no such entry": `list` names it (stderr, after
/// the listing; `--json`, an object with its `error`), `show`, `hold`, `release`, `retry`, `bounce` say where it is and how to
/// remove it (65); `delete --dry-run` would delete it, and `delete` removes it and its
/// state file, so that no file is removed by hand.
#[test]
fn an_entry_set_aside_as_damaged_is_named_and_deleted() {
    let env = Env::new();
    let id = queue(&env, "yy@example.org");
    let qf = env.spool.join(format!("qf{id}"));
    let bytes = fs::read(&qf).unwrap();
    fs::write(&qf, bytes.get(..40).unwrap()).unwrap();
    env.sendmail(&["-q"], b"").code(0);
    let aside = env.spool.join("corrupt");
    wait_until(Duration::from_secs(20), "the entry set aside", || {
        aside.join(format!("qf{id}")).exists()
    });
    fs::write(aside.join(format!("sf{id}")), "x").unwrap();
    let where_ = format!(
        "{id}: set aside in {}/ as a damaged queue file by a queue run, never delivered",
        aside.display()
    );
    let r = admin(&env, &["list"]);
    r.code(0);
    assert!(r.stderr.contains(&format!("{where_}\n")), "{}", r.stderr);
    assert!(r.stderr.contains("delete ID` removes one"), "{}", r.stderr);
    // `--json`: an object of its own (stdout stays JSON, one object a line).
    let r = admin(&env, &["list", "--json"]);
    r.code(0);
    assert_eq!(
        r.stdout,
        format!(
            "{{\"queue_name\":\"corrupt\",\"queue_id\":\"{id}\",\"error\":\"set aside in {}/ \
             as a damaged queue file by a queue run, never delivered\"}}\n",
            aside.display()
        )
    );
    for action in ["show", "hold", "release", "retry", "bounce"] {
        let r = admin(&env, &[action, &id]);
        r.code(65);
        assert!(
            r.stderr.contains(&format!(
                "{where_}; \"rsendmail-admin -C {} delete {id}\" removes it",
                env.conf.display()
            )),
            "{action}: {}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("no such entry"),
            "{action}: {}",
            r.stderr
        );
    }
    let r = admin(&env, &["delete", "-n", &id]);
    r.code(0);
    assert!(
        r.stdout.starts_with(&format!(
            "{id}: would be deleted: set aside in {}/",
            aside.display()
        )),
        "{}",
        r.stdout
    );
    assert!(aside.join(format!("qf{id}")).exists());
    let r = admin(&env, &["delete", &id]);
    r.code(0);
    assert_eq!(
        r.stdout,
        format!(
            "{id}: deleted (it was set aside in {}/ as a damaged queue file by a queue run, \
             never delivered)\n",
            aside.display()
        )
    );
    assert!(!aside.join(format!("qf{id}")).exists());
    assert!(!aside.join(format!("sf{id}")).exists());
    let r = admin(&env, &["show", &id]);
    r.code(66);
    assert!(r.stderr.contains("no such entry"), "{}", r.stderr);
}

/// A queue command that cannot write in the spool (a full file system, the fsync of
/// the state file's directory failing with ENOSPC; a read-only one, its rename failing
/// with EROFS) names the file and the spool's file system, and what to do, and keeps the
/// entry as it was: `bounce` and `retry` exit 75 and 74.
#[test]
fn a_full_or_read_only_spool_is_said_with_what_to_do() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    let env = Env::new();
    let id = queue(&env, "bob@example.org");
    let sf = env.spool.join(format!("sf{id}"));
    for (action, inject, code, what, todo) in [
        (
            "bounce",
            "fsync:error=ENOSPC",
            75,
            "has no room left",
            "free space there",
        ),
        (
            "retry",
            "rename:error=EROFS",
            74,
            "is mounted read-only",
            "remount it read-write",
        ),
    ] {
        let out = Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e"])
            .arg(format!("inject={inject}"))
            .arg("--")
            .arg(admin_bin())
            .args(["-C", env.conf.to_str().unwrap(), action, &id])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{action}: {err}");
        assert!(
            err.contains(&format!(
                "{id}: cannot record its state in {}: ",
                sf.display()
            )) && err.contains(&format!(
                "; the file system of the spool {} {what}: the entry is kept as it was; {todo}",
                env.spool.display()
            )) && err.contains("then run this again"),
            "{action}: {err}"
        );
        assert!(queued(&env, &id), "{action}: {}", env.listing());
    }
    // `hold` and `release`: the move into `hold/` and back (a rename) fails alike.
    for (action, inject, code, what, todo, into) in [
        (
            "hold",
            "rename:error=EDQUOT",
            75,
            "is over its owner's disk quota",
            "free space there",
            env.spool.join("hold"),
        ),
        (
            "release",
            "rename:error=EROFS",
            74,
            "is mounted read-only",
            "remount it read-write",
            env.spool.clone(),
        ),
    ] {
        if action == "release" {
            admin(&env, &["hold", &id]).code(0);
        }
        let out = Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e"])
            .arg(format!("inject={inject}"))
            .arg("--")
            .arg(admin_bin())
            .args(["-C", env.conf.to_str().unwrap(), action, &id])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{action}: {err}");
        assert!(
            err.contains(&format!("{id}: cannot move it "))
                && err.contains(&format!("{}: ", into.display()))
                && err.contains(&format!(
                    "; the file system of the spool {} {what}: the entry is kept as it was; {todo}",
                    env.spool.display()
                ))
                && err.contains("then run this again"),
            "{action}: {err}"
        );
        // As it was: queued before `hold`, held before `release`.
        assert_eq!(held(&env, &id), action == "release", "{}", env.listing());
        assert_eq!(queued(&env, &id), action == "hold", "{}", env.listing());
    }
}

/// What [`timed_admin`] saw: the exit status, each line of stdout with the time it
/// came at (since the start), stderr, and how long the command took.
struct Timed {
    code: Option<i32>,
    lines: Vec<(String, Duration)>,
    stderr: String,
    took: Duration,
}

/// `rsendmail-admin -C conf ARGS`, its stdout read line by line as it comes.
fn timed_admin(env: &Env, args: &[&str]) -> Timed {
    use std::io::BufRead as _;
    let start = std::time::Instant::now();
    let mut child = Command::new(admin_bin())
        .arg("-C")
        .arg(&env.conf)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let lines = out.lines().map(|l| (l.unwrap(), start.elapsed())).collect();
    let done = child.wait_with_output().unwrap();
    Timed {
        code: done.status.code(),
        lines,
        stderr: text(&done.stderr),
        took: start.elapsed(),
    }
}

/// The IDs a command's stderr says it left "being delivered".
fn left_busy(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("rsendmail-admin: "))
        .filter_map(|l| l.split_once(": being delivered "))
        .map(|(id, _)| id.to_string())
        .collect()
}

/// `hold` of several entries while a queue run delivers one of them to a server that
/// stalls: every entry no delivery holds is held at once (never after waiting for the
/// one being delivered, given first), the one in flight is waited for, then named and
/// left to its delivery (75); the run sends none of those held.
#[test]
fn hold_of_several_ids_takes_the_unlocked_ones_before_waiting() {
    // The server waits 15 s before answering DATA: longer than LOCK_WAIT.
    let Some(Delivering {
        _sink_dir,
        sink,
        env,
        ids,
        busy,
        mut run,
    }) = delivering_with_stall(
        "15",
        "O MaxConnections=1\n",
        &[
            "r0@example.org",
            "r1@example.org",
            "r2@example.org",
            "r3@example.org",
        ],
    )
    else {
        return;
    };
    let mut args = vec!["hold", busy.as_str()];
    args.extend(ids.iter().filter(|id| **id != busy).map(String::as_str));
    let t = timed_admin(&env, &args);
    assert_eq!(t.code, Some(0), "{:?}{}", t.lines, t.stderr);
    // The entry in flight, and at most the next one, locked ahead by the run: marked.
    let marked: Vec<String> = t.lines.iter().filter_map(|(l, _)| marked_id(l)).collect();
    assert!(
        marked.contains(&busy) && marked.len() <= 2,
        "{:?}{}",
        t.lines,
        t.stderr
    );
    assert!(
        t.took < Duration::from_secs(5),
        "{:?}: {:?}{}",
        t.took,
        t.lines,
        t.stderr
    );
    for id in ids.iter().filter(|id| !marked.contains(id)) {
        let (_, at) = t
            .lines
            .iter()
            .find(|(l, _)| *l == format!("{id}: held"))
            .unwrap_or_else(|| panic!("{id} not held: {:?}{}", t.lines, t.stderr));
        assert!(*at < Duration::from_secs(5), "{id} held at {at:?}");
        assert!(held(&env, id), "{}", env.listing());
    }
    assert!(queued(&env, &busy), "{}", env.listing());
    let _ = run.wait();
    let dumps = sink.dumps();
    // The one in flight is sent once (its transaction is not cut); every other one is
    // held, and none of them sent.
    for id in &ids {
        let i = ids.iter().position(|x| x == id).unwrap();
        let rcpt = format!("X-Rcpt-Args: <r{i}@example.org>");
        let sent = dumps.iter().filter(|d| d.contains(&rcpt)).count();
        if *id == busy {
            assert!(sent <= 1, "{dumps:?}");
            assert!(held(&env, id) != (sent == 1), "{}", env.listing());
        } else {
            assert!(held(&env, id), "{}", env.listing());
            assert_eq!(sent, 0, "{id} (r{i}) was held, then sent: {dumps:?}");
        }
        assert!(!queued(&env, id), "{}", env.listing());
        assert!(
            !env.spool.join(format!("kf{id}")).exists(),
            "{}",
            env.listing()
        );
    }
}

/// The ID of a line saying an entry being delivered was marked.
fn marked_id(line: &str) -> Option<String> {
    let (id, _) = line.split_once(": being delivered: marked ")?;
    Some(id.to_string())
}

/// `bounce` of several entries while a queue run delivers one of them to a server that
/// stalls: every entry no delivery holds is marked at once, before any is returned (a
/// return sends its report through that slow server), so the run, reaching one still
/// waiting for its turn, returns it too: none of them is delivered.
#[test]
fn bounce_of_several_ids_marks_them_all_before_returning_any() {
    let Some(Delivering {
        _sink_dir,
        sink,
        env,
        ids,
        busy,
        mut run,
    }) = delivering_with_stall(
        "6",
        "O MaxConnections=1\n",
        &[
            "r0@example.org",
            "r1@example.org",
            "r2@example.org",
            "r3@example.org",
        ],
    )
    else {
        return;
    };
    let free: Vec<&String> = ids.iter().filter(|id| **id != busy).collect();
    let mut args = vec!["bounce"];
    args.extend(free.iter().map(|id| id.as_str()));
    let t = timed_admin(&env, &args);
    let _ = run.wait();
    let dumps = sink.dumps();
    let left = left_busy(&t.stderr);
    for id in free.iter().filter(|id| !left.contains(id)) {
        let i = ids.iter().position(|x| x == *id).unwrap();
        let rcpt = format!("X-Rcpt-Args: <r{i}@example.org>");
        assert!(
            !dumps.iter().any(|d| d.contains(&rcpt)),
            "{id} (r{i}) was to be returned, and was delivered: {:?}{}",
            t.lines,
            t.stderr
        );
        assert!(!queued(&env, id), "{id}: {}", env.listing());
    }
    // At most the one the run had locked ahead was left to it.
    assert!(left.len() <= 1, "{:?}{}", t.lines, t.stderr);
}

/// `release`, `retry` and `bounce` of several IDs, one of them locked by a delivery
/// that lasts: each acts on the others at once, then waits for that one, names it
/// and exits 75, leaving it as it is.
#[test]
fn release_retry_and_bounce_take_the_unlocked_ones_before_waiting() {
    let env = relay_env(closed_tcp_port(), "");
    let q = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| queue(&env, &format!("r{i}@example.org")))
            .collect()
    };
    let (rel, ret, bou) = (q(2), q(2), q(2));
    admin(&env, &["hold", &rel[0], &rel[1]]).code(0);
    // The lock a delivery takes: an exclusive flock on each first queue file.
    let locks: Vec<fs::File> = [
        env.spool.join("hold").join(format!("qf{}", rel[0])),
        env.spool.join(format!("qf{}", ret[0])),
        env.spool.join(format!("qf{}", bou[0])),
    ]
    .iter()
    .map(|p| {
        let f = fs::File::open(p).unwrap();
        f.lock().unwrap();
        f
    })
    .collect();
    let runs: Vec<(&str, &[String], Timed)> = std::thread::scope(|s| {
        let started: Vec<_> = [("release", &rel), ("retry", &ret), ("bounce", &bou)]
            .into_iter()
            .map(|(cmd, ids)| {
                let env = &env;
                (
                    cmd,
                    ids.as_slice(),
                    s.spawn(move || timed_admin(env, &[cmd, &ids[0], &ids[1]])),
                )
            })
            .collect();
        started
            .into_iter()
            .map(|(cmd, ids, h)| (cmd, ids, h.join().unwrap()))
            .collect()
    });
    for (cmd, ids, t) in &runs {
        // A bounce marks the entry a delivery holds, and returns at once.
        if *cmd == "bounce" {
            assert_eq!(t.code, Some(0), "{cmd}: {:?}{}", t.lines, t.stderr);
            assert!(t.took < Duration::from_secs(5), "{:?}", t.took);
            assert!(
                t.lines
                    .iter()
                    .any(|(l, _)| marked_id(l).as_ref() == Some(&ids[0])),
                "{:?}{}",
                t.lines,
                t.stderr
            );
            assert!(env.spool.join(format!("kf{}", ids[0])).exists());
            continue;
        }
        assert_eq!(t.code, Some(75), "{cmd}: {:?}{}", t.lines, t.stderr);
        assert_eq!(
            left_busy(&t.stderr),
            [ids[0].clone()],
            "{cmd}: {}",
            t.stderr
        );
        let first = t.lines.first();
        assert!(
            first
                .is_some_and(|(l, at)| l.starts_with(&format!("{}: ", ids[1]))
                    && *at < Duration::from_secs(5)),
            "{cmd}: {:?}{}",
            t.lines,
            t.stderr
        );
        assert_eq!(t.lines.len(), 1, "{cmd}: {:?}", t.lines);
    }
    // Left as they were: still held, still queued.
    assert!(
        held(&env, &rel[0]) && !held(&env, &rel[1]),
        "{}",
        env.listing()
    );
    assert!(
        queued(&env, &ret[0]) && queued(&env, &bou[0]),
        "{}",
        env.listing()
    );
    drop(locks);
}

/// A `SPOOLDIR` typo in a directory above the spool (`DIR/qq/spool` for `DIR/q/spool`,
/// `DIR/qq` missing too): the submission, `mailq` and `check` name the spool that holds
/// the entries and the line to correct, as for a typo of its own name; `check` offers
/// no `install -d` of the mistyped parent.
#[test]
fn a_typo_above_the_spool_names_the_spool_that_holds_the_queue() {
    let env = Env::new();
    queue(&env, "bob@example.org");
    let moved = env.dir.join("q").join("spool");
    fs::create_dir(env.dir.join("q")).unwrap();
    fs::rename(&env.spool, &moved).unwrap();
    let typo = env.dir.join("qq").join("spool");
    fs::write(&env.conf, env.config_naming_spool(&typo)).unwrap();
    let hint = format!(
        "{} holds 1 entry: a typo at {}: line 1? (fix: {})",
        moved.display(),
        env.conf.display(),
        crate::harness::line_fix(
            &env.conf,
            &format!("SPOOLDIR {}", typo.display()),
            &format!("SPOOLDIR {}", moved.display())
        )
    );
    let r = env.sendmail(&["-odq", "dave@example.org"], MSG);
    r.code(78);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.ends_with(&format!("\n{hint}\n")), "{said}");
    let r = env.run_raw(&env.link("mailq"), &["-C", env.conf.to_str().unwrap()], b"");
    r.code(78);
    assert!(r.stdout.ends_with(&format!("\n{hint}\n")), "{}", r.stdout);
    let r = admin(&env, &["check"]);
    r.code(78);
    assert!(
        r.stdout
            .contains(&format!("{} holds 1 entry: a typo at", moved.display()))
            && !r.stdout.contains("install -d"),
        "{}",
        r.stdout
    );
    assert!(!env.dir.join("qq").exists());
}

/// `mailq` (and `rsendmail-admin list`) with a `SPOOLDIR` typo beside the spool that
/// holds the queue: the refusal of a missing spool as it was (sendmail's line for a
/// queue directory named on the command line: compat-tests/cases/queuedir-missing-bp),
/// exit 78, then the likely typo `check` names: the spool holding entries, the line to
/// correct and its fix. Beside no spool with entries, the refusal alone.
#[test]
fn mailq_of_a_missing_spool_names_the_spool_that_holds_the_queue() {
    let env = Env::new();
    queue(&env, "bob@example.org");
    queue(&env, "carol@example.org");
    let conf = fs::read_to_string(&env.conf).unwrap();
    let typo = env.dir.join("spoool");
    fs::write(&env.conf, env.config_naming_spool(&typo)).unwrap();
    let refusal = format!(
        "{}: line 1: SPOOLDIR {}: no such directory (nothing was created: the spool is \
         made by the install, or by \"rsendmail-admin -C {} init\" as root)",
        env.conf.display(),
        typo.display(),
        env.conf.display()
    );
    let hint = format!(
        "{} holds 2 entries: a typo at {}: line 1? (fix: {})",
        env.spool.display(),
        env.conf.display(),
        crate::harness::line_fix(
            &env.conf,
            &format!("SPOOLDIR {}", typo.display()),
            &format!("SPOOLDIR {}", env.spool.display())
        )
    );
    let r = env.run_raw(&env.link("mailq"), &["-C", env.conf.to_str().unwrap()], b"");
    r.code(78);
    assert_eq!(r.stdout, format!("{refusal}\n{hint}\n"), "{}", r.stderr);
    let r = admin(&env, &["list"]);
    r.code(78);
    assert!(
        r.stderr.contains(&format!("{refusal}\n{hint}\n")),
        "{}",
        r.stderr
    );
    // A submission and a queue run (and the daemon) refuse with the same two lines:
    // the message is not taken, nothing is made at the mistyped path.
    for args in [
        &["-odq", "-f", "alice@example.org", "dave@example.org"][..],
        &["-q"][..],
        &["-bd"][..],
    ] {
        let r = env.sendmail(args, MSG);
        r.code(78);
        assert_eq!(
            format!("{}{}", r.stdout, r.stderr),
            format!("{refusal}\n{hint}\n"),
            "{args:?}"
        );
    }
    // `rsendmail-admin config`, which refuses a missing spool before printing anything.
    let r = admin(&env, &["config"]);
    r.code(78);
    assert!(
        r.stderr.contains(&format!("{refusal}\n{hint}\n")),
        "{}",
        r.stderr
    );
    assert!(!typo.exists());
    assert_eq!(env.entries().len(), 2, "{}", env.listing());
    // Named on the command line: sendmail's line, then the hint.
    fs::write(&env.conf, &conf).unwrap();
    let r = env.run_raw(
        &env.link("mailq"),
        &[
            "-C",
            env.conf.to_str().unwrap(),
            &format!("-oQ{}", typo.display()),
        ],
        b"",
    );
    r.code(78);
    assert_eq!(
        r.stdout,
        format!(
            "can not chdir({}/): No such file or directory\n{} holds 2 entries: a typo on \
             the command line? (name {} on the command line)\n",
            typo.display(),
            env.spool.display(),
            env.spool.display()
        ),
        "{}",
        r.stderr
    );
    assert!(!typo.exists());
    // No spool beside it holds entries: the refusal alone.
    admin(&env, &["delete", "--all"]).code(0);
    let r = env.run_raw(
        &env.link("mailq"),
        &[
            "-C",
            env.conf.to_str().unwrap(),
            &format!("-oQ{}", typo.display()),
        ],
        b"",
    );
    r.code(78);
    assert_eq!(
        r.stdout,
        format!(
            "can not chdir({}/): No such file or directory\n",
            typo.display()
        )
    );
}

/// A relay that accepts connections and never greets (the test's own listener, on
/// 127.0.0.1), until dropped: then the connections it took are closed, and so is the
/// port (a delivery that tries again is refused at once).
struct Mute {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mute {
    fn start() -> Mute {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, a) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            // Bounded: a minute at most, whatever the test does.
            let until = std::time::Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::SeqCst) && std::time::Instant::now() < until {
                match listener.accept() {
                    Ok((c, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        held.push(c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Mute {
            port,
            stop,
            accepted,
            thread: Some(thread),
        }
    }
}

impl Drop for Mute {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `bounce` of several entries whose smarthost accepts the connection and never greets:
/// each report is queued, the original removed, and the report handed to a delivery
/// that runs without the command (no runner listens here: a background one), so the
/// command returns at once, naming each report's queue ID. A later run sends each
/// report exactly once.
#[test]
fn bounce_queues_the_reports_and_returns_without_waiting_for_the_relay() {
    let sink_dir = Env::new();
    let Some(sink) = Sink::start(&sink_dir.dir, &[]) else {
        return;
    };
    let mute = Mute::start();
    let env = relay_env(mute.port, "");
    let ids: Vec<String> = (0..3)
        .map(|i| queue(&env, &format!("r{i}@example.org")))
        .collect();
    let start = std::time::Instant::now();
    let mut child = Command::new(admin_bin())
        .arg("-C")
        .arg(&env.conf)
        .arg("bounce")
        .args(&ids)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "bounce still waiting after {:?} ({} connections to the relay)",
            start.elapsed(),
            mute.accepted.load(std::sync::atomic::Ordering::SeqCst)
        );
    }
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    // One line an entry: returned, its report queued under the ID given.
    let mut reports = Vec::new();
    for (id, line) in ids.iter().zip(stdout.lines()) {
        reports.push(report_queued(line, id));
    }
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let mut queued_now: Vec<String> = env.entries().iter().map(|p| id_of(p)).collect();
    queued_now.sort();
    let mut want = reports.clone();
    want.sort();
    assert_eq!(queued_now, want, "{stdout}{}", env.listing());
    // `show` of a report names its original and who returned it (the original is
    // gone), and who made it: the mail system, by a delivery run as root here, its
    // sender as `list` names it.
    for (id, rid) in ids.iter().zip(&reports) {
        let r = admin(&env, &["show", rid]);
        r.code(0);
        assert!(
            r.stdout.contains(
                "Submitted by:   MAILER-DAEMON (a delivery report, queued by a delivery run \
                 as root (uid 0))\nOwner:          root (uid 0) (the owner of the entry it \
                 reports on)\nSender:         MAILER-DAEMON (<>)\n"
            ),
            "{}",
            r.stdout
        );
        assert!(admin(&env, &["list"]).stdout.contains("MAILER-DAEMON"));
        assert!(
            r.stdout.contains(&format!(
                "Report:         failure of {id}\nReturned:       by the administrator\n"
            )),
            "{}",
            r.stdout
        );
    }
    // The relay's connections closed (the deliveries started give up for now), then
    // a relay that works: a later run sends each report, once.
    drop(mute);
    let conf = fs::read_to_string(&env.conf).unwrap();
    let port_line = conf
        .lines()
        .find(|l| l.starts_with("PORT "))
        .unwrap()
        .to_string();
    fs::write(
        &env.conf,
        conf.replace(&port_line, &format!("PORT {}", sink.port)),
    )
    .unwrap();
    wait_until(Duration::from_secs(30), "the reports sent", || {
        env.sendmail(&["-q"], b"").code(0);
        env.entries().is_empty()
    });
    env.sendmail(&["-q"], b"").code(0);
    let dumps = sink.dumps();
    assert_eq!(dumps.len(), 3, "{dumps:?}");
    for i in 0..3 {
        let rcpt = format!("Final-Recipient: RFC822; r{i}@example.org");
        assert_eq!(
            dumps.iter().filter(|d| d.contains(&rcpt)).count(),
            1,
            "r{i}: {dumps:?}"
        );
    }
}

/// An entry to `rcpts` (aliases: `prog`, a command that appends to `runs`) delivered by
/// a queue run to a server that waits `stall` seconds before answering DATA, and
/// `delete` of it run while that delivery holds it: the sink, the run (ended), the
/// entry's ID, `delete`'s output, the MAILLOG text and what the command appended.
fn deleted_in_flight(
    stall: &str,
    rcpts: &[&str],
) -> Option<(Env, Sink, Env, String, Run, String, String)> {
    requested_in_flight("delete", stall, rcpts)
}

/// [`deleted_in_flight`] with `action` (`delete`, `hold`, `bounce`) in place of `delete`.
fn requested_in_flight(
    action: &str,
    stall: &str,
    rcpts: &[&str],
) -> Option<(Env, Sink, Env, String, Run, String, String)> {
    let sink_dir = Env::new();
    let sink = Sink::start(&sink_dir.dir, &["-w", stall])?;
    let env = relay_env(sink.port, "O MaxConnections=1\n");
    let runs = env.dir.join("runs");
    fs::write(&runs, "").unwrap();
    fs::set_permissions(&runs, fs::Permissions::from_mode(0o666)).unwrap();
    let aliases = env.dir.join("aliases");
    fs::write(
        &aliases,
        format!("prog: \"|echo run >> {}\"\n", runs.display()),
    )
    .unwrap();
    env.add_config(&format!("ALIASES {}\n", aliases.display()));
    let maillog = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", maillog.display()));
    let mut args = vec!["-odq", "-f", "alice@example.org"];
    args.extend_from_slice(rcpts);
    env.sendmail(&args, MSG).code(0);
    let id = env.only_id();
    let mut run = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-qf"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Locked on two listings half a second apart: in its transaction.
    let mut since: Option<std::time::Instant> = None;
    wait_until(Duration::from_secs(15), "the entry being delivered", || {
        if env.mailq(&[]).contains(&format!("{id}*")) {
            let at = *since.get_or_insert_with(std::time::Instant::now);
            at.elapsed() >= Duration::from_millis(500)
        } else {
            since = None;
            false
        }
    });
    let r = admin(&env, &[action, &id]);
    let _ = run.wait();
    let log = fs::read_to_string(&maillog).unwrap_or_default();
    let ran = fs::read_to_string(&runs).unwrap();
    assert!(env.entries().is_empty(), "{}", env.listing());
    Some((sink_dir, sink, env, id, r, log, ran))
}

/// A hold or a return asked for while the transaction under way goes on, which then
/// delivers the entry's only recipient: nothing is held or returned (no report), the
/// recipient is logged sent, and the log says the request came too late, as it says of
/// a deletion.
#[test]
fn a_hold_or_bounce_during_a_delivery_that_succeeds_is_said_too_late() {
    for action in ["hold", "bounce"] {
        let Some((_sink_dir, sink, env, id, r, log, _)) =
            requested_in_flight(action, "3", &["bob@example.org"])
        else {
            return;
        };
        r.code(0);
        assert!(
            r.stdout.contains("being delivered: marked to be"),
            "{}",
            r.stdout
        );
        assert!(!held(&env, &id), "{}", env.listing());
        assert_eq!(sink.dumps().len(), 1, "{:?}", sink.dumps());
        assert!(
            log.contains(&format!("{id}: to=<bob@example.org>,")) && log.contains("stat=Sent"),
            "{log}"
        );
        let what = if action == "hold" {
            "hold"
        } else {
            "return to the sender"
        };
        assert!(
            log.contains(&format!(
                "{id}: every recipient had its outcome before its {what}, asked for by root \
                 (uid 0), took effect"
            )),
            "{log}"
        );
    }
}

/// A mark made while the transaction under way goes on: when the server accepts the
/// message, its recipient is logged as any delivery is (`stat=Sent`, relay, dsn), and
/// the entry said delivered before the deletion took effect, not deleted.
#[test]
fn a_deletion_during_a_delivery_that_succeeds_logs_it_sent_and_says_delivered() {
    let Some((_sink_dir, sink, _env, id, r, log, _)) = deleted_in_flight("1", &["bob@example.org"])
    else {
        return;
    };
    r.code(0);
    let said = r.stdout.lines().next().unwrap_or_default();
    assert!(
        said == format!("{id}: delivered before the deletion took effect")
            || said.starts_with(&format!("{id}: being delivered: marked for deletion;")),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("deleted when"), "{}", r.stdout);
    assert_eq!(sink.dumps().len(), 1);
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("{id}: to=<bob@example.org>,"))
                && l.contains(", relay=")
                && l.contains(", dsn=2.0.0, stat=Sent")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "{id}: delivered before its deletion, asked for by "
        )),
        "{log}"
    );
}

/// A mark made while the first of two transactions goes on: the one under way is
/// delivered and logged `stat=Sent`, the command that would have followed never runs,
/// and the log names what was delivered and that the rest was dropped by the request.
#[test]
fn a_deletion_during_a_delivery_part_delivered_says_what_was_sent() {
    let Some((_sink_dir, sink, _env, id, r, log, ran)) =
        deleted_in_flight("3", &["bob@example.org", "prog"])
    else {
        return;
    };
    r.code(0);
    assert!(
        r.stdout
            .starts_with(&format!("{id}: being delivered: marked for deletion;"))
            && r.stdout.contains("(its delivery logs what of it was sent)"),
        "{}",
        r.stdout
    );
    assert_eq!(ran, "");
    assert_eq!(sink.dumps().len(), 1);
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("{id}: to=<bob@example.org>,"))
                && l.contains(", dsn=2.0.0, stat=Sent")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("{id}: deleted as "))
                && l.ends_with(
                    " asked during its delivery; 1 of 2 recipients had been delivered \
                 (<bob@example.org>), the rest were dropped by the request"
                )),
        "{log}"
    );
}

/// An entry whose mark a delivery left when it ended without honouring it (a crash:
/// its lock let go, the entry still there): a later `delete` says who had asked for
/// its deletion and when, not that a delivery ended.
#[test]
fn delete_of_an_entry_a_crashed_delivery_left_marked_says_who_asked() {
    let env = Env::new();
    let id = queue(&env, "bob@example.org");
    let qf = env.spool.join(format!("qf{id}"));
    let kf = env.spool.join(format!("kf{id}"));
    // The lock a delivery takes: an exclusive flock on the queue file.
    let f = fs::File::open(&qf).unwrap();
    f.lock().unwrap();
    let r = admin(&env, &["delete", &id]);
    r.code(0);
    assert!(r.stdout.contains("marked for deletion"), "{}", r.stdout);
    assert!(qf.exists() && kf.exists(), "{}", env.listing());
    // The holder dies without honouring the mark.
    drop(f);
    let r = admin(&env, &["delete", &id]);
    r.code(0);
    assert!(
        r.stdout.starts_with(&format!(
            "{id}: deleted (its deletion had been asked for by "
        )) && r.stdout.contains(" at ")
            && r.stdout.ends_with(")\n"),
        "{}",
        r.stdout
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert!(!kf.exists(), "{}", env.listing());
}

/// The pending mark of an entry a delivery holds (the test's own flock), asked for a
/// second time with another action: a deletion stays, and `hold` or `bounce` over it
/// says so (69, the mark untouched); otherwise the later request replaces the earlier
/// one and says which it replaced (0), and the mark holds the later action.
#[test]
fn a_second_request_on_a_locked_entry_says_which_mark_is_in_effect() {
    let what = |a: &str| match a {
        "delete" => "deletion",
        "hold" => "hold",
        _ => "return to the sender",
    };
    for (first, second) in [
        ("delete", "hold"),
        ("delete", "bounce"),
        ("bounce", "hold"),
        ("hold", "bounce"),
        ("hold", "delete"),
        ("bounce", "delete"),
    ] {
        let env = relay_env(closed_tcp_port(), "");
        let id = queue(&env, "bob@example.org");
        let qf = env.spool.join(format!("qf{id}"));
        let kf = env.spool.join(format!("kf{id}"));
        let f = fs::File::open(&qf).unwrap();
        f.lock().unwrap();
        admin(&env, &[first, &id]).code(0);
        let r = admin(&env, &[second, &id]);
        let kept = fs::read_to_string(&kf).unwrap();
        if first == "delete" {
            r.code(69);
            assert_eq!(r.stdout, "", "{first} {second}");
            assert!(
                r.stderr.contains(&format!(
                    "{id}: being delivered, and already marked for deletion by root (uid 0): \
                     it is deleted as soon as its delivery ends; not marked for {}",
                    what(second)
                )),
                "{first} {second}: {}",
                r.stderr
            );
            assert!(kept.starts_with("rsendmail-delete 1\n"), "{kept}");
        } else {
            r.code(0);
            assert!(
                r.stdout.starts_with(&format!(
                    "{id}: being delivered: its pending {} asked for by root (uid 0) is \
                     replaced by the {}\n",
                    what(first),
                    what(second)
                )),
                "{first} {second}: {}{}",
                r.stdout,
                r.stderr
            );
            assert!(
                kept.starts_with(&format!("rsendmail-{second} 1\n")),
                "{first} {second}: {kept}"
            );
        }
        drop(f);
    }
}

/// `release` of an entry a delivery holds and that is marked to be held withdraws the
/// mark and says so (0): the delivery's end then leaves it queued, not held. A hold
/// carried out already is released as any hold is.
#[test]
fn release_of_a_locked_entry_marked_to_be_held_withdraws_the_mark() {
    let env = relay_env(closed_tcp_port(), "");
    let id = queue(&env, "bob@example.org");
    let qf = env.spool.join(format!("qf{id}"));
    let kf = env.spool.join(format!("kf{id}"));
    let f = fs::File::open(&qf).unwrap();
    f.lock().unwrap();
    admin(&env, &["hold", &id]).code(0);
    assert!(kf.exists());
    let r = admin(&env, &["release", &id]);
    r.code(0).stdout_is(&format!(
        "{id}: being delivered: the hold asked for by root (uid 0) during its delivery is \
         withdrawn; it stays queued\n"
    ));
    assert!(!kf.exists(), "{}", env.listing());
    drop(f);
    env.sendmail(&["-q", "-v"], b"");
    assert!(queued(&env, &id) && !held(&env, &id), "{}", env.listing());
    // Marked again, and carried out by the next holder of its lock: released as held.
    let f = fs::File::open(&qf).unwrap();
    f.lock().unwrap();
    admin(&env, &["hold", &id]).code(0);
    drop(f);
    env.sendmail(&["-q", "-v"], b"");
    assert!(held(&env, &id), "{}", env.listing());
    admin(&env, &["release", &id])
        .code(0)
        .stdout_is(&format!("{id}: released\n"));
    assert!(queued(&env, &id), "{}", env.listing());
    // Marked, and its delivery gone without carrying the mark out (killed): `show` says
    // who will carry it out; `release` carries it out and releases the entry, never
    // "being delivered".
    let f = fs::File::open(&qf).unwrap();
    f.lock().unwrap();
    admin(&env, &["hold", &id]).code(0);
    drop(f);
    let r = admin(&env, &["show", &id]);
    r.code(0);
    assert!(
        r.stdout.contains(
            "; carried out by the next queue run or command that takes the entry (its \
             delivery ended without it)\n"
        ),
        "{}",
        r.stdout
    );
    admin(&env, &["release", &id])
        .code(0)
        .stdout_is(&format!("{id}: released\n"));
    assert!(queued(&env, &id) && !kf.exists(), "{}", env.listing());
}

/// `show` of an entry whose mark cannot be understood (written by no rsendmail): taken
/// as a hold, said without a time (it has none), never "Jan 1 1970".
#[test]
fn show_of_an_unreadable_mark_gives_no_time() {
    let env = Env::new();
    let id = queue(&env, "bob@example.org");
    fs::write(env.spool.join(format!("kf{id}")), "garbage\n").unwrap();
    let r = admin(&env, &["show", &id]);
    r.code(0);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("Marked:"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.starts_with("Marked:         hold requested by an unreadable mark; carried out "),
        "{}",
        r.stdout
    );
    // What becomes of it: a run holds the entry, a command acts itself.
    assert!(
        line.ends_with(
            "as a hold by the queue run that takes the entry next; a command that acts on \
             the entry removes it and does what it was asked instead"
        ),
        "{line}"
    );
}

/// A hold asked for while another command held the entry's lock for a moment and held
/// the entry itself (two `hold`s at once: the second found it locked, marked it and
/// then found it held) leaves a spent mark beside a held entry. `release` removes it
/// with the hold, so that the next run does not hold the entry again; `delete` of the
/// held entry removes it with the entry.
#[test]
fn a_spent_hold_mark_goes_with_the_hold_or_the_entry() {
    let env = relay_env(closed_tcp_port(), "");
    for then in ["release", "delete"] {
        let id = queue(&env, "bob@example.org");
        let qf = env.spool.join(format!("qf{id}"));
        let kf = env.spool.join(format!("kf{id}"));
        let f = fs::File::open(&qf).unwrap();
        f.lock().unwrap();
        let r = admin(&env, &["hold", &id]);
        r.code(0);
        assert!(r.stdout.contains("marked to be held"), "{}", r.stdout);
        // The other command's hold, under the lock: the entry into `hold/`.
        let hold = env.spool.join("hold");
        for name in [format!("qf{id}"), format!("sf{id}")] {
            if env.spool.join(&name).exists() {
                fs::rename(env.spool.join(&name), hold.join(&name)).unwrap();
            }
        }
        drop(f);
        assert!(held(&env, &id) && kf.exists(), "{}", env.listing());
        match then {
            "release" => {
                admin(&env, &["release", &id])
                    .code(0)
                    .stdout_is(&format!("{id}: released\n"));
                assert!(!kf.exists(), "{}", env.listing());
                env.sendmail(&["-q"], b"");
                assert!(
                    queued(&env, &id) && !held(&env, &id),
                    "held again by a spent mark: {}",
                    env.listing()
                );
                admin(&env, &["delete", &id]).code(0);
            }
            _ => {
                admin(&env, &["delete", &id])
                    .code(0)
                    .stdout_is(&format!("{id}: deleted\n"));
                assert!(!kf.exists() && !held(&env, &id), "{}", env.listing());
            }
        }
    }
}

/// `release` of an entry whose delivery is carrying out the hold marked on it (its
/// state file for `hold/` written, not yet renamed: every `rename(2)` and `connect(2)`
/// of the run made to wait 3 s under strace) waits for the hold to be carried out (the
/// holder has the spool's marks lock), says it took effect, releases it, and the entry
/// is queued, its state without a holder; the next `release` says "not held".
#[test]
fn release_while_the_delivery_carries_out_the_hold_keeps_the_entry_queued() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    let env = relay_env(closed_tcp_port(), "");
    let id = queue(&env, "bob@example.org");
    let mut run = slowed_run(&env, &id, "connect,rename", "delay_enter");
    let r = admin(&env, &["hold", &id]);
    r.code(0);
    assert!(
        r.stdout.contains("marked to be held"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    // The holder's state file for the hold, in `tmp/` until its (delayed) rename.
    let tmp = env.spool.join("tmp");
    let prefix = format!("sf{id}.");
    wait_until(
        Duration::from_secs(60),
        "the hold being carried out",
        || {
            fs::read_dir(&tmp).unwrap().flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(&prefix) && n.ends_with(".mark")
            })
        },
    );
    let r = admin(&env, &["release", &id]);
    r.code(0).stdout_is(&format!(
        "{id}: the hold asked for during its delivery took effect as it ended\n{id}: released\n"
    ));
    let _ = run.wait();
    assert!(queued(&env, &id) && !held(&env, &id), "{}", env.listing());
    let json = admin(&env, &["list", "--json"]);
    assert!(!json.stdout.contains("held_by"), "{}", json.stdout);
    admin(&env, &["release", &id])
        .code(0)
        .stdout_is(&format!("{id}: not held\n"));
}

/// A user's `hold`, `bounce`, `delete` or `release` of her own entry while a delivery
/// holds it (the test's flock) never replaces or withdraws the mark root made on it:
/// refused, 77, saying whose mark it is, the mark left as it was; the same hold asked
/// for again changes nothing and is said as for an entry already held (0). Her own mark
/// she may replace and withdraw.
#[test]
fn a_users_request_never_replaces_roots_pending_mark() {
    let Some(sys) = setgid_system("admin-busy-marks") else {
        return;
    };
    let SetgidSystem { here, spool, .. } = &sys;
    let mine = sys.users_entry();
    let kf = spool.join(format!("kf{mine}"));
    let f = fs::File::open(spool.join(format!("qf{mine}"))).unwrap();
    f.lock().unwrap();
    let out = sys.root(&["hold", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let roots = fs::read_to_string(&kf).unwrap();
    let out = sys.user(&["hold", &mine]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        format!(
            "{mine}: being delivered: already marked to be held by root (uid 0); it is held \
             as soon as its delivery ends\n"
        )
    );
    assert_eq!(fs::read_to_string(&kf).unwrap(), roots);
    for action in ["bounce", "delete", "release"] {
        let out = sys.user(&[action, &mine]);
        assert_eq!(
            out.status.code(),
            Some(77),
            "{action}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(&format!(
                "{mine}: permission denied: being delivered, and marked for hold by root \
                 (uid 0)"
            )),
            "{action}: {}",
            text(&out.stderr)
        );
        assert_eq!(fs::read_to_string(&kf).unwrap(), roots, "{action}");
    }
    // Her own mark: replaced by her, and withdrawn by her.
    let out = sys.root(&["release", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!kf.exists());
    for action in ["hold", "bounce", "hold"] {
        let out = sys.user(&[action, &mine]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{action}: {}",
            text(&out.stderr)
        );
    }
    let out = sys.user(&["release", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!kf.exists());
    // Root's mark, and its delivery gone without carrying it out (killed): her release
    // carries the hold out, as the next queue run would, and is refused as for any of
    // root's holds; never "being delivered".
    let out = sys.root(&["hold", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    drop(f);
    let out = sys.user(&["release", &mine]);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains(&format!(
            "{mine}: permission denied: held by the user \"root\" (uid 0): only "
        )) && !text(&out.stderr).contains("being delivered"),
        "{}",
        text(&out.stderr)
    );
    assert!(!kf.exists() && spool.join(format!("hold/qf{mine}")).exists());
    let out = sys.root(&["release", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(spool.join(format!("qf{mine}")).exists());
    let _ = fs::remove_dir_all(here);
}

/// `bounce` whose entry another command changes between its mark and its return (every
/// `execve(2)` made to wait 2 s under strace, the deliverer's among them, so that the
/// other command runs in the gap) says what became of it, never "returned" for mail
/// that was not: deleted meanwhile, no report made (66, the log says which); held
/// meanwhile, not returned yet (75), and returned by the first queue run after its
/// release (its report at the server); returned by a queue run meanwhile, that run's
/// report named (0).
#[test]
fn bounce_says_what_another_command_did_to_its_entry_meanwhile() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    for other in ["delete", "hold", "run"] {
        let sink_dir = Env::new();
        let Some(sink) = Sink::start(&sink_dir.dir, &[]) else {
            return;
        };
        // The queue run's report stays queued (its relay refuses connections), so that
        // `bounce` finds it.
        let port = if other == "run" {
            closed_tcp_port()
        } else {
            sink.port
        };
        let env = relay_env(port, "");
        let id = queue(&env, "bob@example.org");
        let bounce = Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=execve"])
            .args(["-e", "inject=execve:delay_enter=2000000"])
            .arg(admin_bin())
            .args(["-C", env.conf.to_str().unwrap(), "bounce", &id])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let sf = env.spool.join(format!("sf{id}"));
        wait_until(Duration::from_secs(30), "the entry marked", || {
            fs::read_to_string(&sf).is_ok_and(|t| t.lines().any(|l| l.starts_with("bounce ")))
        });
        match other {
            "run" => env.sendmail(&["-q"], b"").code(0),
            action => admin(&env, &[action, &id]).code(0),
        };
        let out = bounce.wait_with_output().unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let code = out.status.code();
        let said = format!("{other}: {code:?}\n{stdout}{stderr}");
        match other {
            "delete" => {
                assert_eq!(code, Some(66), "{said}");
                assert!(!stdout.contains("returned"), "{said}");
                assert!(
                    stderr.contains("no longer queued: another delivery returned it, or another command deleted it"),
                    "{said}"
                );
                assert!(sink.dumps().is_empty(), "{:?}", sink.dumps());
            }
            "hold" => {
                assert_eq!(code, Some(75), "{said}");
                assert!(!stdout.contains("returned"), "{said}");
                assert!(
                    stderr.contains(&format!(
                        "{id}: held meanwhile by another command: not returned yet; the first \
                         queue run after its release (rsendmail-admin release {id}) returns it"
                    )),
                    "{said}"
                );
                assert!(held(&env, &id), "{}", env.listing());
                admin(&env, &["release", &id]).code(0);
                env.sendmail(&["-q"], b"").code(0);
                wait_until(Duration::from_secs(20), "the report at the sink", || {
                    sink.dumps().iter().any(|d| d.contains("MAILER-DAEMON"))
                });
                assert!(!queued(&env, &id) && !held(&env, &id), "{}", env.listing());
                assert!(
                    sink.dumps().iter().all(|d| d.contains("MAILER-DAEMON")),
                    "{:?}",
                    sink.dumps()
                );
            }
            _ => {
                assert_eq!(code, Some(0), "{said}");
                let rid = stdout
                    .strip_prefix(&format!(
                        "{id}: returned to its sender by another delivery; its report is queued as "
                    ))
                    .map(|r| r.trim_end().to_string())
                    .unwrap_or_else(|| panic!("{said}"));
                assert!(queued(&env, &rid), "{said}{}", env.listing());
            }
        }
    }
}

/// `hold` or `bounce` of an entry whose delivery then ends every recipient before the
/// mark can take effect (the server holds its reply to DATA for 3 s; the command's
/// waits are made to last 4 s under strace, so that it looks again only after the
/// delivery ended): the mail went, and the command says so, 66, never "held" or
/// "returned". No mark is left, and no report is made.
#[test]
fn a_hold_or_return_that_the_delivery_outlived_is_said() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    for (action, what) in [("hold", "held"), ("bounce", "returned")] {
        let Some(Delivering {
            _sink_dir,
            sink,
            env,
            busy,
            mut run,
            ..
        }) = delivering("", &["bob@example.org"])
        else {
            return;
        };
        let out = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "trace=clock_nanosleep",
            ])
            .args(["-e", "inject=clock_nanosleep:delay_exit=4000000", "--"])
            .arg(admin_bin())
            .args(["-C", env.conf.to_str().unwrap(), action, &busy])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let _ = run.wait();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(66), "{action}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!(
                "{busy}: not {what}: no longer queued: its delivery ended first, every \
                 recipient having had its outcome"
            )),
            "{action}: {stdout}{stderr}"
        );
        assert!(!stdout.contains(&format!("{busy}: {what}")), "{stdout}");
        assert!(
            !queued(&env, &busy) && !held(&env, &busy),
            "{}",
            env.listing()
        );
        assert!(
            !env.spool.join(format!("kf{busy}")).exists(),
            "{}",
            env.listing()
        );
        let dumps = sink.dumps();
        assert_eq!(dumps.len(), 1, "{dumps:?}");
        assert!(!dumps[0].contains("MAILER-DAEMON"), "{dumps:?}");
    }
}

/// A file where an entry's mark belongs that no rsendmail wrote (garbage, or one that
/// cannot be read): `hold`, `delete` and `bounce` of the entry, which no delivery holds,
/// act on it themselves (a delivery would take such a file as a hold): held by the
/// caller (`show` names her), deleted, or returned; the file goes (an empty directory
/// planted there too).
#[test]
fn a_command_acts_itself_on_an_entry_with_a_mark_that_cannot_be_read() {
    for (action, planted_dir) in [
        ("hold", false),
        ("delete", false),
        ("bounce", false),
        ("hold", true),
        ("delete", true),
    ] {
        let env = relay_env(closed_tcp_port(), "");
        let id = queue(&env, "bob@example.org");
        let kf = env.spool.join(format!("kf{id}"));
        if planted_dir {
            fs::create_dir(&kf).unwrap();
        } else {
            fs::write(&kf, "not a mark\n").unwrap();
        }
        let r = admin(&env, &[action, &id]);
        r.code(0);
        match action {
            "hold" => {
                assert_eq!(r.stdout, format!("{id}: held\n"), "{}", r.stderr);
                assert!(held(&env, &id), "{}", env.listing());
                let show = admin(&env, &["show", &id]);
                assert!(
                    show.stdout.contains("Held by:        root"),
                    "{}",
                    show.stdout
                );
            }
            "delete" => {
                assert_eq!(r.stdout, format!("{id}: deleted\n"), "{}", r.stderr);
                assert!(!queued(&env, &id) && !held(&env, &id), "{}", env.listing());
            }
            _ => {
                assert!(r.stdout.contains("returned"), "{}{}", r.stdout, r.stderr);
                assert!(!held(&env, &id), "{}", env.listing());
            }
        }
        assert!(!kf.exists(), "{action}: {}", env.listing());
    }
}

/// A mark that cannot be read (garbage, or a directory planted where it belongs) is
/// logged once by a command that acts on its entry (`hold`, `release`, `retry`,
/// `delete`, `bounce`: the line that it was removed and the command acted on the
/// entry), however often the command looks at the mark; `list`, `show` and `delete
/// --dry-run`, which change nothing, log nothing of it. A queue run that takes it as a
/// hold logs it once too.
#[test]
fn a_mark_that_cannot_be_read_is_logged_once_per_command() {
    let actions: &[&[&str]] = &[
        &["hold"],
        &["release"],
        &["retry"],
        &["delete"],
        &["bounce"],
        &["list"],
        &["show"],
        &["delete", "--dry-run"],
    ];
    for planted_dir in [false, true] {
        for action in actions {
            let env = relay_env(closed_tcp_port(), "");
            let log = env.dir.join("maillog");
            env.add_config(&format!("MAILLOG {}\n", log.display()));
            let id = queue(&env, "bob@example.org");
            let kf = env.spool.join(format!("kf{id}"));
            if planted_dir {
                fs::create_dir(&kf).unwrap();
            } else {
                fs::write(&kf, "not a mark\n").unwrap();
            }
            let mut args = action.to_vec();
            if action[0] != "list" {
                args.push(&id);
            }
            let r = admin(&env, &args);
            r.code(0);
            let text = fs::read_to_string(&log).unwrap_or_default();
            let said = text
                .lines()
                .filter(|l| l.contains(&format!("kf{id}")))
                .count();
            let changes = !matches!(action, ["list"] | ["show"] | ["delete", "--dry-run"]);
            assert_eq!(
                said,
                usize::from(changes),
                "{action:?} (a directory: {planted_dir}):\n{text}"
            );
        }
        // A queue run holds the entry for it, and says so once.
        let env = relay_env(closed_tcp_port(), "");
        let log = env.dir.join("maillog");
        env.add_config(&format!("MAILLOG {}\n", log.display()));
        let id = queue(&env, "bob@example.org");
        let kf = env.spool.join(format!("kf{id}"));
        if planted_dir {
            fs::create_dir(&kf).unwrap();
        } else {
            fs::write(&kf, "not a mark\n").unwrap();
        }
        env.sendmail(&["-qf"], b"").code(0);
        let text = fs::read_to_string(&log).unwrap_or_default();
        let said = text
            .lines()
            .filter(|l| l.contains(&format!("kf{id}:")))
            .count();
        assert_eq!(said, 1, "-qf (a directory: {planted_dir}):\n{text}");
    }
}

/// `hold` of an entry whose delivery lets go of it just as the mark is made (the run
/// held up 3 s before it connects, under strace, to a closed port; the command's
/// `rename(2)` of its mark into place (its first) held up 15 s, past the end of the delivery): the delivery's last look found no
/// mark, and the command, trying the entry's lock again once its mark is in place,
/// holds the entry itself. It says "held" (0), the entry is held, and no mark is left
/// that nothing would carry out.
#[test]
fn a_hold_marked_as_the_delivery_ends_is_carried_out_by_the_command() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    let env = relay_env(closed_tcp_port(), "");
    let id = queue(&env, "bob@example.org");
    let mut run = slowed_run(&env, &id, "connect", "delay_enter");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=rename"])
        .args(["-e", "inject=rename:delay_enter=15000000:when=1", "--"])
        .arg(admin_bin())
        .args(["-C", env.conf.to_str().unwrap(), "hold", &id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = run.wait();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, format!("{id}: held\n"), "{stderr}");
    assert!(held(&env, &id) && !queued(&env, &id), "{}", env.listing());
    assert!(
        !env.spool.join(format!("kf{id}")).exists(),
        "{}",
        env.listing()
    );
}

/// `bounce` of an entry whose delivery lets go of it just as the mark is made (as in
/// `a_hold_marked_as_the_delivery_ends_is_carried_out_by_the_command`: the run held up
/// 3 s before it connects, under strace, to a closed port its RELAYTABLE names for the
/// recipient's domain; the command's `rename(2)` of its mark into place held up 15 s):
/// the command carries the return out itself. It says the entry is returned (0), one
/// report reaches the sender (through SMARTHOST, at the sink), the entry is gone and no
/// mark is left.
#[test]
fn a_return_marked_as_the_delivery_ends_is_carried_out_by_the_command() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    let sink_dir = Env::new();
    let Some(sink) = Sink::start(&sink_dir.dir, &[]) else {
        return;
    };
    let table = sink_dir.dir.join("relays");
    fs::write(
        &table,
        format!("example.net 127.0.0.1:{}\n", closed_tcp_port()),
    )
    .unwrap();
    let env = relay_env(sink.port, &format!("RELAYTABLE {}\n", table.display()));
    let maillog = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", maillog.display()));
    let id = queue(&env, "bob@example.net");
    let mut run = slowed_run(&env, &id, "connect", "delay_enter");
    // The command alone (not the delivery it starts for the report) held up.
    let out = Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "-e", "trace=rename"])
        .args(["-e", "inject=rename:delay_enter=15000000:when=1", "--"])
        .arg(admin_bin())
        .args(["-C", env.conf.to_str().unwrap(), "bounce", &id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = run.wait();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let line = stdout.lines().last().unwrap_or_default();
    report_queued(line, &id);
    wait_until(Duration::from_secs(20), "the report at the sink", || {
        !sink.dumps().is_empty()
    });
    crate::harness::holds_for(Duration::from_secs(1), "no second report", || {
        sink.dumps().len() == 1
    });
    let dumps = sink.dumps();
    assert!(
        dumps[0].contains("MAILER-DAEMON")
            && dumps[0].contains("alice@example.org")
            && dumps[0].contains("bob@example.net"),
        "{dumps:?}"
    );
    assert!(!queued(&env, &id) && !held(&env, &id), "{}", env.listing());
    assert!(
        !env.spool.join(format!("kf{id}")).exists(),
        "{}",
        env.listing()
    );
    // Carried out by the command, its delivery having let go of the entry.
    let log = fs::read_to_string(&maillog).unwrap_or_default();
    assert!(
        log.contains(&format!(
            "{id}: marked for return to the sender, and carried out (its delivery had just \
             ended)"
        )),
        "{log}"
    );
}

/// An entry deleted between another command's open of its queue file and that
/// command's look at what it opened (the open held up 1.5 s under strace, the `delete`
/// run meanwhile): the entry is gone, said as such (66, "delivered or removed
/// meanwhile"), never "a regular file with 0 links ... refused" (77).
#[test]
fn an_entry_removed_between_open_and_look_is_gone() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    for action in ["hold", "retry", "show"] {
        let env = relay_env(closed_tcp_port(), "");
        let id = queue(&env, "bob@example.org");
        let qf = env.spool.join(format!("qf{id}"));
        let slowed = Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-P"])
            .arg(&qf)
            .args([
                "-e",
                "trace=openat",
                "-e",
                "inject=openat:delay_exit=1500000",
                "--",
            ])
            .arg(admin_bin())
            .args(["-C", env.conf.to_str().unwrap(), action, &id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        admin(&env, &["delete", &id]).code(0);
        let out = slowed.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(66), "{action}: {stderr}");
        assert!(
            stderr.contains(&format!("{id}: no longer queued")) && !stderr.contains("0 links"),
            "{action}: {stderr}"
        );
    }
}

/// `delete --all` whose entry another command holds between the listing and the lock
/// (every `flock(2)` of the delete held up 2 s under strace, a `hold` run meanwhile):
/// the entry is still in the selection, which takes held entries too, and is deleted
/// from `hold/`, never counted "no longer queued (delivered or removed meanwhile)".
#[test]
fn delete_all_deletes_an_entry_held_meanwhile() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    let env = relay_env(closed_tcp_port(), "");
    let id = queue(&env, "bob@example.org");
    let slowed = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null"])
        .args([
            "-e",
            "trace=flock",
            "-e",
            "inject=flock:delay_enter=2000000",
            "--",
        ])
        .arg(admin_bin())
        .args(["-C", env.conf.to_str().unwrap(), "delete", "--all"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    admin(&env, &["hold", &id]).code(0);
    let out = slowed.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("1 entry deleted"), "{stdout}{stderr}");
    assert!(!stdout.contains("no longer queued"), "{stdout}{stderr}");
    assert!(!held(&env, &id) && !queued(&env, &id), "{}", env.listing());
}

/// `list` shows what `show` shows: a sender and recipients in UTF-8 as they are in
/// both (not in octal in one of them), an invisible or control character as its octets
/// in octal in both; `list --json` stays JSON with the same text.
#[test]
fn list_and_show_show_utf8_addresses_alike() {
    let env = Env::new();
    let sender = "jörg@example.org";
    let rcpt = "zoë\u{202e}@example.org";
    env.sendmail(&["-odq", "-f", sender, rcpt], MSG).code(0);
    let id = env.only_id();
    let shown_rcpt = "zoë\\342\\200\\256@example.org";
    let show = admin(&env, &["show", &id]);
    show.code(0);
    assert!(
        show.stdout.contains(&format!("Sender:         {sender}\n")),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains(&format!("  {shown_rcpt}: pending\n")),
        "{}",
        show.stdout
    );
    let list = admin(&env, &["list"]);
    list.code(0);
    let line = |what: &str| list.stdout.lines().any(|l| l.trim_end().ends_with(what));
    assert!(line(&format!(" {sender}")), "{}", list.stdout);
    assert!(line(&format!("\t {shown_rcpt}")), "{}", list.stdout);
    assert!(!list.stdout.contains("\\303"), "{}", list.stdout);
    // mailq keeps sendmail's listing, every octet that is not ASCII in octal.
    let mailq = env.mailq(&[]);
    assert!(mailq.contains("j\\303\\266rg@example.org"), "{mailq}");
    let json = admin(&env, &["list", "--json"]);
    json.code(0);
    assert!(
        json.stdout.contains(&format!("\"sender\":\"{sender}\"")),
        "{}",
        json.stdout
    );
    assert!(
        json.stdout
            .contains("\"address\":\"zoë\\u202e@example.org\""),
        "{}",
        json.stdout
    );
}

/// `rsendmail -v`'s transcript of an interactive delivery whose message is deleted, or
/// held, by `rsendmail-admin` during it says what became of the recipients not yet
/// sent: `Dropped` (deleted) or `Held`, never `Deferred`, which they are not; the
/// transaction under way ends (its recipient `Sent`), and the command exits 0: the
/// message was taken, and what became of it afterwards is the administrator's doing.
#[test]
fn a_deletion_or_hold_during_an_interactive_delivery_is_said_as_such() {
    for (action, said) in [
        (
            "delete",
            "Dropped: the message was deleted during its delivery (rsendmail-admin delete), \
             not sent",
        ),
        (
            "hold",
            "Held: a hold of the message was asked for during its delivery \
             (rsendmail-admin hold), not sent",
        ),
    ] {
        let Some((_sink_dir, sink, env, runs)) = stalled_relay_with_prog("") else {
            return;
        };
        let mut submit = Command::new(env.link("sendmail"))
            .args([
                "-C",
                env.conf.to_str().unwrap(),
                "-v",
                "-odi",
                "-f",
                "alice@example.org",
                "bob@example.org",
                "prog",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            let mut stdin = submit.stdin.take().unwrap();
            stdin.write_all(MSG).unwrap();
        }
        // Locked on two listings half a second apart: in its transaction.
        let mut id = String::new();
        let mut since: Option<std::time::Instant> = None;
        wait_until(Duration::from_secs(15), "the entry being delivered", || {
            let l = env.mailq(&[]);
            let locked = env
                .entries()
                .first()
                .map(|p| id_of(p))
                .filter(|i| l.contains(&format!("{i}*")));
            match locked {
                Some(i) => {
                    id = i;
                    let at = *since.get_or_insert_with(std::time::Instant::now);
                    at.elapsed() >= Duration::from_millis(500)
                }
                None => {
                    since = None;
                    false
                }
            }
        });
        admin(&env, &[action, &id]).code(0);
        let out = submit.wait_with_output().unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            stdout.contains("bob@example.org... Sent"),
            "{stdout}{stderr}"
        );
        assert!(
            stdout
                .lines()
                .any(|l| l.ends_with(&format!("... {said}")) && l.contains("echo run")),
            "{action}: {stdout}{stderr}"
        );
        assert!(!stdout.contains("Deferred"), "{action}: {stdout}{stderr}");
        assert_eq!(out.status.code(), Some(0), "{action}: {stdout}{stderr}");
        assert_eq!(fs::read_to_string(&runs).unwrap(), "", "{action}");
        assert_eq!(held(&env, &id), action == "hold", "{}", env.listing());
        assert!(!queued(&env, &id), "{}", env.listing());
        drop(sink);
    }
}

/// An entry a delivery holds, and that the delivery ends (delivered: its files go, then
/// its lock) while `retry` or `release` waits for it, is said plainly as no longer
/// queued, with the status of an ID that names no entry (66), as `delete` says it.
#[test]
fn an_entry_delivered_while_waited_for_is_no_longer_queued() {
    for action in ["retry", "release"] {
        let env = Env::new();
        let id = queue(&env, "bob@example.org");
        let dir = if action == "release" {
            admin(&env, &["hold", &id]).code(0);
            env.spool.join("hold")
        } else {
            env.spool.clone()
        };
        let qf = dir.join(format!("qf{id}"));
        let f = fs::File::open(&qf).unwrap();
        f.lock().unwrap();
        let child = Command::new(admin_bin())
            .args(["-C", env.conf.to_str().unwrap(), action, &id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // It waits up to 10 s for the lock; the "delivery" ends well within that.
        std::thread::sleep(Duration::from_millis(1500));
        fs::remove_file(&qf).unwrap();
        let _ = fs::remove_file(dir.join(format!("sf{id}")));
        drop(f);
        let done = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(66), "{action}: {stderr}");
        assert!(
            stderr.contains(&format!("{id}: no longer queued")),
            "{action}: {stderr}"
        );
        let why = if action == "release" {
            "(released and delivered, or removed, meanwhile)"
        } else {
            "(delivered or removed meanwhile)"
        };
        assert!(stderr.contains(why), "{action}: {stderr}");
    }
}

/// A usage error of a command that changes the queue (`delete` with no ID, no `--all`
/// and no `--recipient`, an empty or letterless `--recipient`, an argument that is no
/// queue ID, an empty `--reason`, a `--group` that is no group name) did nothing: it is
/// said on stderr (64) and logs nothing, as the looks log nothing; the same commands'
/// other failures are still logged.
#[test]
fn usage_errors_log_nothing() {
    let env = Env::new();
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let id = queue(&env, "bob@example.org");
    let before = fs::read_to_string(&log).unwrap();
    let sf = format!("sf{id}");
    let qf_path = env.spool.join(format!("qf{id}"));
    let qf_path = qf_path.to_str().unwrap();
    let usage: &[&[&str]] = &[
        &["delete"],
        &["delete", "--recipient", ""],
        &["delete", "--recipient", "@"],
        &["delete", "nosuchid"],
        &["delete", &sf],
        &["hold", "nosuchid"],
        &["hold", &sf],
        &["release", qf_path],
        &["retry", "nosuchid"],
        &["bounce", "nosuchid"],
        &["bounce", "--reason", " ", &id],
        &["init", "--group", "-x"],
        &["frobnicate"],
    ];
    for args in usage {
        let r = admin(&env, args);
        r.code(64);
        assert!(!r.stderr.is_empty(), "{args:?}");
        assert_eq!(fs::read_to_string(&log).unwrap(), before, "{args:?}");
    }
    assert!(queued(&env, &id), "{}", env.listing());
    // A failure that is no usage error is logged.
    admin(&env, &["delete", "6AUIIquc023976"]).code(66);
    assert!(
        fs::read_to_string(&log)
            .unwrap()
            .contains("6AUIIquc023976: no such entry"),
        "{}",
        env.listing()
    );
}

/// Several IDs with mixed outcomes exit with the status of the first failure in the
/// order the IDs were given, whenever each was decided: a held entry another command
/// holds locked (75 once the wait is over, decided after the others) given before an
/// ID that names no entry (66, said at once) exits 75, and after it 66; a malformed ID
/// (64) counts at its place too. Every other ID is acted on all the same.
#[test]
fn mixed_outcomes_exit_with_the_first_failure_in_the_order_given() {
    let env = Env::new();
    let missing = "6AUIIquc023976";
    for (first_locked, want) in [(true, 75), (false, 66)] {
        let locked = queue(&env, "bob@example.org");
        let ok = queue(&env, "carol@example.org");
        admin(&env, &["hold", &locked]).code(0);
        let f = fs::File::open(env.spool.join("hold").join(format!("qf{locked}"))).unwrap();
        f.lock().unwrap();
        let args = if first_locked {
            ["delete", &locked, missing, &ok]
        } else {
            ["delete", missing, &locked, &ok]
        };
        let r = admin(&env, &args);
        r.code(want);
        assert!(
            r.stderr.contains(&format!("{missing}: no such entry")),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains(&format!("{locked}: being delivered")),
            "{}",
            r.stderr
        );
        assert!(r.stdout.contains(&format!("{ok}: deleted")), "{}", r.stdout);
        drop(f);
        admin(&env, &["delete", &locked]).code(0);
    }
    let ok = queue(&env, "dave@example.org");
    let r = admin(&env, &["hold", &format!("sf{ok}"), missing, &ok]);
    r.code(64);
    assert!(held(&env, &ok), "{}", env.listing());
    let r = admin(&env, &["release", missing, &format!("sf{ok}"), &ok]);
    r.code(66);
    assert!(queued(&env, &ok), "{}", env.listing());
}

/// `bounce` of an entry being delivered (the test's lock on it), which another
/// command's `hold` takes once its delivery let go of it, before `bounce` looks again
/// (its waits made to last 3 s under strace): that `hold` carries the return out into
/// the entry's state as a delivery would, then holds it. The return stays asked for,
/// and the line says so (75), never "bounce it again"; the first queue run after its
/// release returns it.
#[test]
fn bounce_of_an_entry_held_after_its_return_was_recorded_says_it_stays() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("note: strace is missing: skipped");
        return;
    }
    let env = relay_env(closed_tcp_port(), "");
    let id = queue(&env, "bob@example.org");
    let f = fs::File::open(env.spool.join(format!("qf{id}"))).unwrap();
    f.lock().unwrap();
    let bounce = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null"])
        .args(["-e", "trace=clock_nanosleep,nanosleep"])
        .args(["-e", "inject=clock_nanosleep,nanosleep:delay_enter=3000000"])
        .arg(admin_bin())
        .args(["-C", env.conf.to_str().unwrap(), "bounce", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let kf = env.spool.join(format!("kf{id}"));
    wait_until(Duration::from_secs(10), "the return marked", || kf.exists());
    drop(f);
    admin(&env, &["hold", &id]).code(0);
    let sf = env.spool.join(format!("hold/sf{id}"));
    assert!(
        !kf.exists()
            && fs::read_to_string(&sf).is_ok_and(|t| t.lines().any(|l| l.starts_with("bounce "))),
        "{}",
        env.listing()
    );
    let out = bounce.wait_with_output().unwrap();
    let said = format!(
        "{:?}\n{}{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(75), "{said}");
    assert!(
        text(&out.stderr).contains(&format!(
            "{id}: held meanwhile by another command: not returned yet; the first queue run \
             after its release (rsendmail-admin release {id}) returns it"
        )) && !said.contains("again"),
        "{said}"
    );
    admin(&env, &["release", &id]).code(0);
    env.sendmail(&["-qf"], b"").code(0);
    assert!(!queued(&env, &id) && !held(&env, &id), "{}", env.listing());
}
