//! mailq / -bp output, byte for byte in sendmail's format (ids and dates normalised).

use crate::harness::{Env, MSG};
use std::fs;

/// Replace queue ids and ctime dates as the compat suite does.
fn normalise(s: &str, env: &Env) -> String {
    let mut out = String::new();
    for line in s.lines() {
        let mut l = line.replace(&env.spool.display().to_string(), "QUEUEDIR");
        let b = l.as_bytes();
        if b.len() >= 41
            && b[..14].iter().all(u8::is_ascii_alphanumeric)
            && (b[14] == b' ' || b[14] == b'*')
        {
            l = format!("QUEUEID{}DATE{}", &l[14..24], &l[40..]);
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

#[test]
fn empty_queue() {
    let env = Env::new();
    let out = env.mailq(&[]);
    assert_eq!(
        out,
        format!("{} is empty\n\t\tTotal requests: 0\n", env.spool.display())
    );
}

#[test]
fn one_request_singular_and_several_recipients() {
    let env = Env::new();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let login = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let login = String::from_utf8_lossy(&login.stdout).trim().to_string();
    assert_eq!(
        normalise(&env.mailq(&[]), &env),
        format!(
            "\t\tQUEUEDIR (1 request)\n\
             -----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n\
             QUEUEID        6 DATE {login}\n\
             \t\t\t\t\t bob@example.org\n\
             \t\tTotal requests: 1\n"
        )
    );
    env.sendmail(
        &[
            "-odq",
            "-f",
            "averyveryverylongsenderaddress1234567890@example.com",
            "a@x.example",
            "averyveryveryveryveryverylongrecipientaddress@example.org",
        ],
        b"Subject: s\n\nsome body text\n",
    )
    .code(0);
    let out = normalise(&env.mailq(&[]), &env);
    assert!(out.starts_with("\t\tQUEUEDIR (2 requests)\n"), "{out}");
    // Priority order: the smaller entry with fewer recipients first.
    let want_second = "QUEUEID       15 DATE averyveryverylongsenderaddress123456789\n\
                       \t\t\t\t\t a@x.example\n\
                       \t\t\t\t\t averyveryveryveryveryverylongrecipient\n\
                       \t\tTotal requests: 2\n";
    assert!(out.ends_with(want_second), "{out}");
}

#[test]
fn reason_cut_at_60_and_busy_star() {
    let env = Env::new();
    env.sendmail(&["-odq", "bob@example.org", "carol@example.net"], MSG)
        .code(0);
    let qf = env.entries().remove(0);
    let id = qf.file_name().unwrap().to_string_lossy()[2..].to_string();
    let reason =
        "Deferred: 450 4.2.0 <carol@example.net>: Recipient address temporarily rejected: test";
    fs::write(
        env.spool.join(format!("sf{id}")),
        format!(
            "rsendmail-state 1\nattempts 1\nreason {}\nrcpt 0 delivered 250%20ok\n",
            reason.replace(' ', "%20")
        ),
    )
    .unwrap();
    let out = env.mailq(&[]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[3],
        "                 (Deferred: 450 4.2.0 <carol@example.net>: Recipient address t)"
    );
    assert_eq!(lines[3].len(), 79);
    // The delivered recipient is no longer listed.
    assert_eq!(lines[4], "\t\t\t\t\t carol@example.net");
    assert_eq!(lines[5], "\t\tTotal requests: 1");
    assert_eq!(&lines[2][14..15], " ");

    // While a deliverer holds the entry's lock, mailq marks it with '*'.
    let f = fs::File::open(&qf).unwrap();
    f.lock().unwrap();
    let out = env.mailq(&[]);
    assert_eq!(&out.lines().nth(2).unwrap()[..15], format!("{id}*"));
    f.unlock().unwrap();
    let out = env.mailq(&[]);
    assert_eq!(&out.lines().nth(2).unwrap()[..15], format!("{id} "));
}

#[test]
fn filters_select_entries() {
    let env = Env::new();
    env.sendmail(&["-odq", "-f", "alice@a.example", "bob@example.org"], MSG)
        .code(0);
    env.sendmail(&["-odq", "-f", "carol@c.example", "dave@example.net"], MSG)
        .code(0);
    let count = |args: &[&str]| -> usize {
        env.mailq(args)
            .lines()
            .filter(|l| l.starts_with("\t\t\t\t\t "))
            .count()
    };
    assert_eq!(count(&[]), 2);
    assert_eq!(count(&["-qRexample.ORG"]), 1);
    assert_eq!(count(&["-q!Rexample.org"]), 1);
    assert_eq!(count(&["-qSalice"]), 1);
    assert_eq!(count(&["-qSnobody"]), 0);
    assert_eq!(count(&["-qRexample", "-qSalice"]), 1);
    let id = env.entries()[0].file_name().unwrap().to_string_lossy()[2..].to_string();
    assert_eq!(count(&[&format!("-qI{id}")]), 1);
    // A filter given in a separate argument is empty: everything.
    assert_eq!(count(&["-qR", "nomatch"]), 2);
    let none = env.mailq(&["-qRnothing"]);
    assert!(
        none.ends_with(" is empty\n\t\tTotal requests: 0\n"),
        "{none}"
    );
}

#[test]
fn json_lines() {
    let env = Env::new();
    env.sendmail(
        &[
            "-odd",
            "-f",
            "<>",
            "bob@example.org",
            "\"x\\\"y\"@example.net",
        ],
        MSG,
    )
    .code(0);
    let j = env.json();
    assert_eq!(j.len(), 1);
    let l = &j[0];
    assert!(
        l.starts_with("{\"queue_name\":\"queued\",\"queue_id\":\""),
        "{l}"
    );
    assert!(l.contains("\"sender\":\"\""), "{l}");
    assert!(l.contains("\"delivery_mode\":\"d\""), "{l}");
    assert!(l.contains("\"message_size\":6"), "{l}");
    assert!(
        l.contains("{\"address\":\"bob@example.org\",\"state\":\"pending\"}"),
        "{l}"
    );
    // A quoted local part with a quoted pair: `"x\"y"@example.net`, escaped for JSON.
    assert!(l.contains("\"\\\"x\\\\\\\"y\\\"@example.net\""), "{l}");
    assert!(l.ends_with("]}"), "{l}");
}

#[test]
fn unreadable_entry_reported_listing_goes_on() {
    let env = Env::new();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    fs::write(env.spool.join("qf6AM5eIkR004034"), "garbage\n\n").unwrap();
    let out = env.mailq(&[]);
    assert!(out.contains("(2 requests)"), "{out}");
    assert!(
        out.contains(
            "\n6AM5eIkR004034 (cannot read queue file: not a queue file (first line \"garbage\"))\n"
        ),
        "{out}"
    );
    assert!(out.ends_with("\t\tTotal requests: 2\n"), "{out}");
}

/// A queue holding only entries that cannot be read (a damaged queue file, a state file
/// that is not text) is not empty: each is counted and listed with why, as sendmail lists
/// a queue file it cannot open.
#[test]
fn a_queue_of_unreadable_entries_is_not_empty() {
    let env = Env::new();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let qf = env.entries()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let id = qf.trim_start_matches("qf").to_string();
    fs::write(env.spool.join(format!("sf{id}")), b"\xff\xfe\0").unwrap();
    fs::write(env.spool.join("qf6AM5eIkR004034"), "garbage\n\n").unwrap();
    let out = env.mailq(&[]);
    assert!(!out.contains("is empty"), "{out}");
    assert!(out.contains("(2 requests)"), "{out}");
    assert!(
        out.contains(&format!(
            "\n{id} (cannot read queue file: state file sf{id} is not text)\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "\n6AM5eIkR004034 (cannot read queue file: not a queue file (first line \"garbage\"))\n"
        ),
        "{out}"
    );
    assert!(out.ends_with("\t\tTotal requests: 2\n"), "{out}");
}

/// An entry whose message no longer matches its sum (one octet changed, its length the
/// same) is listed by `mailq` (which does not read the message through), and moved into
/// `corrupt/` by the next run, which says so on stdout as for other damage, also with
/// `-v`.
#[test]
fn a_damaged_sum_is_said_when_moved_aside() {
    for args in [&["-qf", "-v"][..], &["-qf"][..]] {
        let env = Env::new();
        env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
        let qf = env.entries()[0].clone();
        let id = qf
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches("qf")
            .to_string();
        let mut bytes = fs::read(&qf).unwrap();
        let at = bytes
            .windows(6)
            .rposition(|w| w == b"hello\n")
            .expect("the body in the queue file");
        bytes[at] = b'j';
        fs::write(&qf, &bytes).unwrap();
        assert!(env.mailq(&[]).contains(&id));
        let r = env.sendmail(args, b"");
        r.code(0);
        assert!(
            r.stdout
                .contains(&format!("qf{id}: corrupt queue file moved to corrupt/")),
            "{args:?}: {}{}",
            r.stdout,
            r.stderr
        );
        assert!(
            env.spool.join(format!("corrupt/qf{id}")).exists(),
            "{args:?}"
        );
        assert!(env.entries().is_empty(), "{args:?}");
    }
}

/// `-q` removes what crashes left behind (a temporary file no live submission holds,
/// whatever its age), keeps one a submission holds locked, moves corrupt entries aside,
/// rebuilds a lost index, and leaves good entries queued while delivery is absent.
#[test]
fn queue_run_cleans_leftovers_and_corrupt_entries() {
    let env = Env::new();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let old = env.spool.join("tmp/tf6AM5eIkR004034");
    let young = env.spool.join("tmp/tf6AM5eIkR004035");
    let unheld = env.spool.join("tmp/tf6AM5eIkR004037");
    fs::write(&old, "partial").unwrap();
    fs::write(&young, "partial").unwrap();
    fs::write(&unheld, "partial").unwrap();
    // A live submission holds its temporary file locked until it is renamed.
    let live = fs::File::open(&young).unwrap();
    live.lock().unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    fs::write(env.spool.join("qf6AM5eIkR004036"), "not a queue file\n\n").unwrap();
    fs::remove_file(env.spool.join("index/recipients")).unwrap();
    let r = env.sendmail(&["-qf"], b"");
    r.code(0);
    assert!(
        r.stdout
            .contains("qf6AM5eIkR004036: corrupt queue file moved to corrupt/"),
        "{}",
        r.stdout
    );
    assert!(!old.exists(), "old temporary file kept");
    assert!(
        !unheld.exists(),
        "a temporary file no submission holds kept"
    );
    assert!(
        young.exists(),
        "a live submission's temporary file was removed"
    );
    drop(live);
    assert!(env.spool.join("corrupt/qf6AM5eIkR004036").exists());
    assert_eq!(env.entries().len(), 1);
    let idx = fs::read_to_string(env.spool.join("index/recipients")).unwrap();
    assert!(
        idx.contains(" bob@example.org\n"),
        "index not rebuilt: {idx:?}"
    );
    // Without SMARTHOST the entry goes to MX delivery; the harness's resolver (a closed
    // port on 127.0.0.1) fails, so it stays queued with the reason.
    let listing = env.mailq(&[]);
    assert!(
        listing.contains("(Deferred: Name server: example.org: host name lookup failure)"),
        "{listing}"
    );
    // -Ac is accepted (one queue); -v gives the verbose listing of the same entry.
    let a = env.mailq(&["-Ac"]);
    assert_eq!(a, listing);
    let v = env.mailq(&["-v"]);
    assert!(
        v.contains("(1 request)\n-----Q-ID----- --Size-- -Priority- "),
        "{v}"
    );
}

/// `mailq -v`: sendmail's verbose columns, the reason at sendmail's verbose width (100)
/// instead of 60, each pending recipient's own reason, the sender not cut at 39.
#[test]
fn verbose_listing_whole_reason_priority_and_sender() {
    let env = Env::new();
    let sender = "an-extremely-long-sender-address-that-goes-past-column-39@example.com";
    env.sendmail(
        &["-odq", "-f", sender, "bob@example.org", "carol@example.net"],
        MSG,
    )
    .code(0);
    let id = env.only_id();
    // 86 characters: cut at 60 without -v, whole with it.
    let reason = "450 4.2.0 <carol@example.net>: Recipient address temporarily rejected: test";
    let long = format!("Deferred: {reason}");
    fs::write(
        env.spool.join(format!("sf{id}")),
        format!(
            "rsendmail-state 1\nattempts 1\nreason {}\nrcpt 0 delivered 250%20ok\nrcpt 1 deferred {}\n",
            long.replace(' ', "%20"),
            reason.replace(' ', "%20")
        ),
    )
    .unwrap();
    let out = env.mailq(&["-v"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1],
        "-----Q-ID----- --Size-- -Priority- ---Q-Time--- --------Sender/Recipient--------",
        "{out}"
    );
    // Size 6 (the body); priority: the 21 bytes submitted + 30000 for each of the two
    // recipients + 90000 for the try a queue run made; then the date without weekday.
    let head = format!("{id}        6     150021 ");
    assert!(lines[2].starts_with(&head), "{out}");
    let rest = &lines[2][head.len()..];
    assert_eq!(rest.len(), 12 + 1 + sender.len(), "{out}");
    assert!(
        rest.as_bytes()[..3].iter().all(u8::is_ascii_alphabetic),
        "{out}"
    );
    assert_eq!(&rest[13..], sender, "{out}");
    assert_eq!(lines[3], format!("{:17}({long})", ""), "{out}");
    assert_eq!(lines[4], "\t\t\t\t\t\tcarol@example.net", "{out}");
    assert_eq!(lines[5], format!("\t\t (Deferred: {reason})"), "{out}");
    assert_eq!(lines[6], "\t\tTotal requests: 1", "{out}");
    assert_eq!(lines.len(), 7, "{out}");

    // Without -v: the 80-column listing, the reason cut at 60, the sender at 39.
    let plain = env.mailq(&[]);
    let p: Vec<&str> = plain.lines().collect();
    assert!(p[2].ends_with(&format!(" {}", &sender[..39])), "{plain}");
    assert_eq!(p[3], format!("{:17}({})", "", &long[..60]), "{plain}");
    assert_eq!(p[4], "\t\t\t\t\t carol@example.net", "{plain}");
}

/// A reason longer than sendmail's 100 columns is cut there in `mailq -v`; `--json`
/// keeps it whole. A sent delay warning shows as `+` after the priority.
#[test]
fn verbose_listing_cuts_at_100_json_keeps_everything() {
    let env = Env::new();
    env.sendmail(&["-odi", "bob@example.org"], MSG);
    let id = env.only_id();
    let reason = format!("Deferred: 451 4.3.0 {}", "x".repeat(150));
    fs::write(
        env.spool.join(format!("sf{id}")),
        format!(
            "rsendmail-state 1\nattempts 2\nwarned\nreason {reason}\nrcpt 0 deferred {}\n",
            &reason["Deferred: ".len()..]
        ),
    )
    .unwrap();
    let out = env.mailq(&["-v"]);
    let lines: Vec<&str> = out.lines().collect();
    // Mode i: the try at submission does not count, the second (a queue run's) does.
    assert!(
        lines[2].starts_with(&format!("{id}        6     120021+")),
        "{out}"
    );
    assert_eq!(lines[3], format!("{:17}({})", "", &reason[..100]), "{out}");
    assert_eq!(lines[5], format!("\t\t ({})", &reason[..100]), "{out}");
    let j = env.json();
    assert_eq!(j.len(), 1);
    assert!(
        j[0].contains(&format!("\"reason\":\"{reason}\"")),
        "{}",
        j[0]
    );
    assert!(
        j[0].contains(&format!(
            "\"delay_reason\":\"{}\"",
            &reason["Deferred: ".len()..]
        )),
        "{}",
        j[0]
    );
}

/// Entries are listed in sendmail's priority order in both forms: fewer recipients and
/// fewer queue-run tries first.
#[test]
fn verbose_listing_priority_order() {
    let env = Env::new();
    env.sendmail(&["-odq", "a@example.org", "b@example.org"], MSG)
        .code(0);
    env.sendmail(&["-odq", "c@example.org"], MSG).code(0);
    let out = env.mailq(&["-v"]);
    let pri: Vec<&str> = out
        .lines()
        .skip(2)
        .filter(|l| !l.starts_with('\t'))
        .map(|l| l[15..].split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(pri, ["30021", "60021"], "{out}");
}

/// sendmail's controlling-user lines (`C` lines in its queue file, compat-tests
/// `bp-v-alias*`): one before the recipients of each alias or `:include:` file, whenever
/// it changes from the recipient before, `(------)` before a recipient given as it is;
/// `--json` names the alias or file of each recipient.
#[test]
fn verbose_listing_controlling_user_lines() {
    let env = Env::new();
    let members = env.dir.join("members");
    fs::write(&members, "inc-a@example.org\n").unwrap();
    let aliases = env.dir.join("aliases");
    fs::write(
        &aliases,
        format!(
            "outer: x@example.org, inner, y@example.org\n\
             inner: a@example.org, b@example.org\n\
             incl: :include:{}\n",
            members.display()
        ),
    )
    .unwrap();
    env.add_config(&format!(
        "ALIASES {}\nO DefaultUser=1234:5678\n",
        aliases.display()
    ));
    env.sendmail(&["-odq", "outer", "direct@example.org", "incl"], MSG)
        .code(0);
    let out = normalise(&env.mailq(&["-v"]), &env);
    let m = members.display();
    let rcpts: Vec<&str> = out.lines().skip(3).collect();
    assert_eq!(
        rcpts,
        [
            "\t\t\t\t\t\t(---outer:1234:0:outer---)".to_string(),
            "\t\t\t\t\t\ty@example.org".into(),
            "\t\t\t\t\t\t(---inner:1234:0:inner---)".into(),
            "\t\t\t\t\t\tb@example.org".into(),
            "\t\t\t\t\t\ta@example.org".into(),
            "\t\t\t\t\t\t(---outer:1234:0:outer---)".into(),
            "\t\t\t\t\t\tx@example.org".into(),
            "\t\t\t\t\t\t(------)".into(),
            "\t\t\t\t\t\tdirect@example.org".into(),
            format!("\t\t\t\t\t\t(---::include:{m}---)"),
            "\t\t\t\t\t\tinc-a@example.org".into(),
            "\t\tTotal requests: 1".into(),
        ],
        "{out}"
    );
    // The short listing has no such lines.
    assert!(!env.mailq(&[]).contains("(---"));
    let j = env.json();
    assert!(
        j[0].contains(
            "{\"address\":\"a@example.org\",\"state\":\"pending\",\"expanded_from\":\"inner\"}"
        ),
        "{j:?}"
    );
    assert!(
        j[0].contains("{\"address\":\"direct@example.org\",\"state\":\"pending\"}"),
        "{j:?}"
    );
    assert!(
        j[0].contains(&format!("\"expanded_from\":\":include:{m}\"")),
        "{j:?}"
    );
}

/// A queue with more entries than the process may open files at once is listed whole:
/// each queue file is closed once read (it was kept open to the end, and every entry
/// after the limit was listed as `cannot read queue file: Too many open files`).
#[test]
fn a_queue_larger_than_the_open_file_limit_is_listed_whole() {
    let env = Env::new();
    let mut session = String::from("HELO client.example\r\n");
    for i in 0..80 {
        session.push_str(&format!(
            "MAIL FROM:<sender>\r\nRCPT TO:<r{i}@example.org>\r\nDATA\r\nSubject: {i}\r\n\r\nbody\r\n.\r\n"
        ));
    }
    session.push_str("QUIT\r\n");
    env.sendmail(&["-odq", "-bs"], session.as_bytes()).code(0);
    assert_eq!(env.entries().len(), 80, "{}", env.listing());
    let run = env.sendmail_rlimit(libc::RLIMIT_NOFILE as i32, 40, &["-bp"], b"");
    run.code(0);
    assert!(!run.stdout.contains("cannot read"), "{}", run.stdout);
    assert!(run.stdout.contains("(80 requests)"), "{}", run.stdout);
    assert_eq!(
        run.stdout.matches("@example.org").count(),
        80,
        "{}",
        run.stdout
    );
}

/// mailq reads a state file only for the entries the spool's listing shows one beside
/// (an entry never tried has none: no lookup of a file that is not there), and still
/// shows what the state files it reads say: one listing of three entries, one of them
/// with a state file, under strace.
#[test]
fn listing_looks_for_state_files_only_where_there_are_some() {
    if !crate::harness::require("strace") {
        return;
    }
    let env = Env::new();
    for rcpt in ["one@example.org", "two@example.org", "three@example.org"] {
        env.sendmail(&["-odq", rcpt], MSG).code(0);
    }
    let mut ids: Vec<String> = env
        .entries()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy()[2..].to_string())
        .collect();
    ids.sort();
    let tried = &ids[1];
    fs::write(
        env.spool.join(format!("sf{tried}")),
        "rsendmail-state 1\nattempts 1\nreason Deferred:%20451%204.3.0%20try%20again\n",
    )
    .unwrap();
    let trace = env.dir.join("opens");
    let out = std::process::Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=openat,open,statx,newfstatat",
            "-o",
        ])
        .arg(&trace)
        .arg(env.link("mailq"))
        .args(["-C", env.conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("Total requests: 3"), "{listing}");
    assert!(
        listing.contains("(Deferred: 451 4.3.0 try again)"),
        "{listing}"
    );
    let t = fs::read_to_string(&trace).unwrap();
    let looked: Vec<&str> = t.lines().filter(|l| l.contains("/sf")).collect();
    assert!(
        looked.iter().all(|l| l.contains(&format!("/sf{tried}\""))),
        "state files looked for that the listing did not show:\n{}",
        looked.join("\n")
    );
    assert!(!looked.is_empty(), "the state file was not read:\n{t}");
}

/// A run in the background (`sendmail -q`: its stdout goes nowhere) that moves a damaged
/// entry into `corrupt/` tells no one there; `mailq` (on stderr, after the listing) and
/// `rsendmail-admin check` (a `warn corrupt` line) say it for as long as it is there.
#[test]
fn entries_set_aside_in_corrupt_are_said_by_mailq_and_check() {
    let env = Env::new();
    env.sendmail(&["-odq", "yy@example.org"], MSG).code(0);
    let qf = env.entries()[0].clone();
    let bytes = fs::read(&qf).unwrap();
    fs::write(&qf, bytes.get(..40).unwrap()).unwrap();
    let admin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-admin"));
    let check = || env.run_raw(&admin, &["-C", env.conf.to_str().unwrap(), "check"], b"");
    assert!(!check().stdout.contains("corrupt"));
    env.sendmail(&["-q"], b"").code(0);
    crate::harness::wait_until(
        std::time::Duration::from_secs(20),
        "the entry moved aside",
        || env.entries().is_empty(),
    );
    let r = env.sendmail(&["-bp"], b"");
    r.code(0);
    let said = format!(
        "1 damaged queue file set aside in {}/ since ",
        env.spool.join("corrupt").display()
    );
    assert!(r.stderr.contains(&said), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("is empty"), "{}", r.stdout);
    let c = check();
    assert!(
        c.stdout
            .lines()
            .any(|l| l.starts_with("warn corrupt: ") && l.contains(&said)),
        "{}",
        c.stdout
    );
}

/// The priority counts the whole header as submitted, the fields rsendmail removes
/// (`Bcc:` here) included, so the order is sendmail's: a short body under a long `Bcc:`
/// runs after a longer body without one (recorded with 8.17: `small 30163`, then
/// `big 30312`).
#[test]
fn priority_counts_removed_fields_as_submitted() {
    let env = Env::new();
    let bcc: Vec<String> = (0..15).map(|i| format!("h{i:02}@example.org")).collect();
    let big = format!(
        "Bcc: {}\nSubject: x\n\n{}\n",
        bcc.join(", "),
        "b".repeat(40)
    );
    let small = format!("Subject: x\n\n{}\n", "s".repeat(150));
    env.sendmail(
        &["-odq", "-f", "big@example.com", "a@example.org"],
        big.as_bytes(),
    )
    .code(0);
    env.sendmail(
        &["-odq", "-f", "small@example.com", "a@example.org"],
        small.as_bytes(),
    )
    .code(0);
    let out = env.mailq(&["-v"]);
    let rows: Vec<(String, String)> = out
        .lines()
        .skip(2)
        .filter(|l| !l.starts_with('\t'))
        .map(|l| {
            let mut f = l.get(15..).unwrap_or_default().split_whitespace();
            let pri = f.nth(1).unwrap_or_default().to_string();
            (f.nth(3).unwrap_or_default().to_string(), pri)
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("small@example.com".to_string(), "30163".to_string()),
            ("big@example.com".to_string(), "30312".to_string())
        ],
        "{out}"
    );
}
