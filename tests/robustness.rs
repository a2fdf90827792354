//! No input crashes a process. Hostile bytes on `-bs`, over-long addresses whose
//! multi-byte characters fall across every offset where text used to be cut, and damaged
//! or hostile queue files are each refused with a message, and the program goes on. A
//! panic would abort: exit status 134 in the release build (`panic = "abort"`), 101 in
//! the test build; neither may appear.

use crate::harness::servers::{Sink, relay_env};
use crate::harness::{
    Env, MSG, Run, TEST_USER, can_switch_user, closed_tcp_port, make_user_spool, user_visible_bin,
    wait_exit, wait_until,
};
use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The run ended by itself: no panic, no signal.
#[track_caller]
fn no_panic(r: &Run) {
    assert!(
        r.code >= 0 && r.code != 101 && r.code != 134 && !r.stderr.contains("panicked"),
        "command: {}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        r.cmd,
        r.code,
        r.stdout,
        r.stderr
    );
}

/// The reply lines of a `-bs` session, each checked to be `ddd` and ` ` or `-`, with
/// nothing but its own CRLF for a line end.
#[track_caller]
fn replies(r: &Run) -> Vec<String> {
    let body = r
        .stdout
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("no CRLF at the end: {:?}", r.stdout));
    body.split("\r\n")
        .map(|l| {
            assert!(!l.contains(['\r', '\n']), "a bare line end in {l:?}");
            let b = l.as_bytes();
            assert!(
                b.len() >= 4
                    && b[..3].iter().all(u8::is_ascii_digit)
                    && matches!(b[3], b' ' | b'-'),
                "not a reply line: {l:?}"
            );
            l.to_string()
        })
        .collect()
}

/// An address of about 600 octets: `prefix` ASCII letters, then `c` repeated. With every
/// prefix length below the character's width, the character falls across each octet
/// offset (64, 100, 203, ...) in one of the runs.
fn long_local_part(prefix: usize, c: &str) -> String {
    format!("{}{}", "a".repeat(prefix), c.repeat(540 / c.len()))
}

#[test]
fn bs_answers_non_ascii_and_overlong_commands_and_goes_on_to_quit() {
    let env = Env::new();
    let long = format!("{}@example.org", long_local_part(63, "€"));
    let lines: Vec<Vec<u8>> = vec![
        b"EHLO client.example".to_vec(),
        "MAIL FROé:<a@b>".into(),
        b"MAIL FRO\xff:<a@b>".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        "é".repeat(1000).into(),
        format!("MAIL FROM:<{long}>").into(),
        b"MAIL FROM:<a\rb@example.org>".to_vec(),
        b"MAIL FROM:<a@example.org>".to_vec(),
        format!("RCPT TO:<{long}>").into(),
        "RCPT TÖ:<b@example.org>".into(),
        format!("RCPT TO:<b@example.org> NOTIFY={}", "é".repeat(300)).into(),
        format!("ETRN {}", "é".repeat(500)).into(),
        b"QUIT".to_vec(),
    ];
    let mut input = Vec::new();
    for l in &lines {
        input.extend_from_slice(l);
        input.extend_from_slice(b"\r\n");
    }
    let r = env.sendmail(&["-odq", "-bs"], &input);
    no_panic(&r);
    let replies = replies(&r);
    let finals: Vec<&str> = replies
        .iter()
        .filter(|l| l.as_bytes()[3] == b' ')
        .map(|l| &l[..3])
        .collect();
    // One reply for each command, the greeting first.
    assert_eq!(
        finals,
        [
            "220", "250", "501", "501", "500", "500", "553", "501", "250", "553", "501", "501",
            "501", "221"
        ],
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(
                "501 5.1.7 Syntax error in mailbox address \"a?b@example.org\" (non-printable character)\r\n"
            ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("... prescan: token too long\r\n"),
        "{}",
        r.stdout
    );
    // The control character's 501 leaves the exit status alone and the over-long
    // paths' 553 give none, as in sendmail (compat-tests/cases/addr-ctl-bs).
    r.code(0);
    assert!(env.entries().is_empty(), "{}", env.listing());
}

#[test]
fn bs_command_line_over_the_limit_gets_421_not_a_crash() {
    let env = Env::new();
    for tail in ["é", "€", "𝄞"] {
        // Over 2,048 octets, the limit falling inside a character.
        let mut input = b"EHLO client.example\r\nMAIL FROM:<".to_vec();
        input.extend_from_slice(tail.repeat(3000 / tail.len()).as_bytes());
        input.extend_from_slice(b">\r\nQUIT\r\n");
        let r = env.sendmail(&["-odq", "-bs"], &input);
        no_panic(&r);
        r.code(0);
        let replies = replies(&r);
        let last = replies.last().unwrap();
        assert!(
            last.starts_with("421 4.7.0 ") && last.contains("Command too long"),
            "{}",
            r.stdout
        );
    }
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// A recipient of about 600 octets with multi-byte characters across every offset: the
/// submission is refused with sendmail's words and status, and nothing is queued for it.
#[test]
fn overlong_recipients_with_multibyte_characters_are_refused_not_a_crash() {
    let env = Env::new();
    for c in ["é", "€", "𝄞"] {
        for prefix in 60..60 + c.len() {
            let local = long_local_part(prefix, c);
            for rcpt in [format!("{local}@example.org"), format!("x@{local}.example")] {
                assert!(rcpt.len() >= 600);
                // Quiet (ErrorMode q): the status says it, and nothing is mailed back.
                let r = env.sendmail(&["-odq", "-oeq", &rcpt], MSG);
                no_panic(&r);
                r.code(64);
                assert!(env.entries().is_empty(), "{rcpt}: {}", env.listing());
                // With -bv the address is checked, and said why it is refused.
                let r = env.sendmail(&["-bv", &rcpt], b"");
                no_panic(&r);
                assert!(
                    r.stdout.contains("... prescan: token too long"),
                    "{}",
                    r.stdout
                );
            }
        }
    }
    // Beside a good recipient: the good one is queued, the refusal mailed back (ErrorMode
    // m) with the address shortened between characters, as sendmail shortens it. Deferred
    // (-odd), so the report waits in the queue beside the message, to be read.
    let bad = format!("{}@example.org", long_local_part(63, "€"));
    let r = env.sendmail(&["-odd", "good@example.org", &bad], MSG);
    no_panic(&r);
    r.code(64);
    let texts: Vec<String> = env
        .entries()
        .iter()
        .map(|p| fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(texts.len(), 2, "{}", env.listing());
    assert!(
        texts.iter().all(|t| !t.contains(&format!("rcpt {bad}"))),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("\nrcpt good@example.org\n"))
    );
    // Shortened by characters, never inside one, in the report's transcript (its UTF-8
    // text part, as sendmail reports an address refused as no address: a `553` line, no
    // Diagnostic-Code).
    let chars: Vec<char> = bad.chars().collect();
    let shown = format!(
        "{}...{}",
        chars[..100].iter().collect::<String>(),
        chars[chars.len() - 100..].iter().collect::<String>()
    );
    let report = texts
        .iter()
        .find(|t| t.contains("\nreport failure\n"))
        .expect("a failure report");
    assert!(
        report.contains(&format!("\n553 5.1.0 {shown}... prescan: token too long\n")),
        "{report}"
    );
}

/// A queue entry as rsendmail writes one, with the given envelope lines.
fn entry(id: &str, lines: &str) -> String {
    format!(
        "rsendmail-queue 1\nid {id}\nuser 0 root\nmode q\n{lines}sender a@example.org\n\
         rcpt b@example.org\n\nSubject: hostile\n\nhello\n"
    )
}

#[test]
fn hostile_queue_files_are_reported_and_the_queue_goes_on() {
    let env = Env::with_config(&format!("SMARTHOST 127.0.0.1:{}", closed_tcp_port()));
    env.sendmail(&["-odq", "good@example.org"], MSG).code(0);
    let qf = |id: &str| env.spool.join(format!("qf{id}"));
    let sf = |id: &str| env.spool.join(format!("sf{id}"));
    // Truncated in the envelope.
    let whole = entry("6AU00000000001", "created 1\nheader-bytes 20\n");
    fs::write(qf("6AU00000000001"), &whole[..40]).unwrap();
    // Binary garbage.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    fs::write(qf("6AU00000000002"), &garbage).unwrap();
    // The largest numbers each field holds, and state at the extremes.
    fs::write(
        qf("6AU00000000003"),
        entry(
            "6AU00000000003",
            &format!(
                "created {}\nheader-bytes {}\nexpansions {}\n",
                i64::MIN,
                u64::MAX,
                u32::MAX
            ),
        )
        .replace(
            "rcpt b@example.org",
            &format!("rcpt b@example.org owner={}", u32::MAX),
        ),
    )
    .unwrap();
    fs::write(
        sf("6AU00000000003"),
        format!(
            "rsendmail-state 1\nattempts {}\nlast-attempt {}\nnext-attempt {}\nrcpt {} deferred x\n",
            u32::MAX,
            i64::MAX,
            i64::MIN,
            usize::MAX
        ),
    )
    .unwrap();
    fs::write(
        qf("6AU00000000004"),
        entry(
            "6AU00000000004",
            &format!("created {}\nheader-bytes 0\n", i64::MAX),
        ),
    )
    .unwrap();
    fs::write(
        sf("6AU00000000004"),
        format!("rsendmail-state 1\nattempts 0\nlast-attempt {}\n", i64::MIN),
    )
    .unwrap();
    // Numbers out of their field's range.
    fs::write(
        qf("6AU00000000005"),
        entry(
            "6AU00000000005",
            "created 99999999999999999999\nheader-bytes -1\n",
        ),
    )
    .unwrap();
    // Another entry's id; a state file that is not text.
    fs::write(qf("6AU00000000006"), entry("6AU00000000007", "created 1\n")).unwrap();
    fs::write(qf("6AU00000000008"), entry("6AU00000000008", "created 1\n")).unwrap();
    fs::write(sf("6AU00000000008"), &garbage).unwrap();
    // A damaged index.
    let mut index = fs::read(env.spool.join("index/recipients")).unwrap();
    index.extend_from_slice(&garbage);
    index.extend_from_slice("\n6AU00000000003 é%\n%%\n".as_bytes());
    fs::write(env.spool.join("index/recipients"), &index).unwrap();

    let list = env.run_raw(&env.link("mailq"), &["-C", env.conf.to_str().unwrap()], b"");
    no_panic(&list);
    list.code(0);
    for id in ["1", "2", "5", "6", "8"] {
        assert!(
            list.stdout
                .contains(&format!("6AU0000000000{id} (cannot read queue file: ")),
            "{id}: {}",
            list.stdout
        );
    }
    assert!(list.stdout.contains("6AU00000000003"), "{}", list.stdout);
    assert!(list.stdout.contains("6AU00000000004"), "{}", list.stdout);
    let json = env.run_raw(
        &env.link("mailq"),
        &["-C", env.conf.to_str().unwrap(), "--json"],
        b"",
    );
    no_panic(&json);
    json.code(0);

    // A -qR run reads the damaged index; a full run reads every entry.
    let r = env.sendmail(&["-qf", "-qRexample"], b"");
    no_panic(&r);
    let r = env.sendmail(&["-qf"], b"");
    no_panic(&r);
    r.code(0);
    for id in ["1", "2", "5", "6", "8"] {
        assert!(
            env.spool
                .join(format!("corrupt/qf6AU0000000000{id}"))
                .exists(),
            "{id}: {}\n{}",
            r.stdout,
            env.listing()
        );
    }
    // The entries at the numbers' extremes were tried, not moved aside: the one created
    // at the beginning of time has expired and bounced, the one from the end of time
    // waits. The good entry was tried and stays queued with the reason.
    for id in ["3", "4"] {
        assert!(
            !env.spool
                .join(format!("corrupt/qf6AU0000000000{id}"))
                .exists()
        );
    }
    assert!(!qf("6AU00000000003").exists(), "{}", env.listing());
    assert!(qf("6AU00000000004").exists(), "{}", env.listing());
    let reports = env
        .entries()
        .iter()
        .filter(|p| {
            let t = fs::read_to_string(p).unwrap_or_default();
            t.contains("\nreport failure\n") && t.contains("\nrcpt a@example.org\n")
        })
        .count();
    assert_eq!(reports, 1, "{}", env.listing());
    let list = env.mailq(&[]);
    assert!(
        list.contains("(Deferred: Connection refused by [127.0.0.1])"),
        "{list}"
    );
}

/// A stdout that cannot be written (a full disk, a closed pipe, a file-size limit) never
/// makes a program panic: what it prints is lost, the mail is not.
#[test]
fn an_unwritable_stdout_is_no_crash() {
    let env = Env::new();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    for args in [
        &["-bv", "a@b.example", "root"][..],
        &["-q", "-v", "-O", "Timeout.connect=1s"],
        &["-bp"],
        &["--version"],
        &["-odi", "-v", "nosuchuser"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = std::process::Command::new(env.link("sendmail"))
            .args(["-C", env.conf.to_str().unwrap()])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(full)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.code().is_some(), "{args:?}: killed by a signal");
    }
}

/// How long a run over a hostile spool may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(30);

/// Run `program args` (as the test user with `user`), killed after [`DEADLINE`]: a run
/// that waits on a planted FIFO fails the test instead of hanging it. Returns the exit
/// status and stdout followed by stderr.
#[track_caller]
fn bounded(program: &Path, args: &[&str], user: bool) -> (i32, String) {
    let mut cmd = if user {
        let mut c = Command::new("runuser");
        c.args(["-u", TEST_USER, "--", "env", "-i", "PATH=/usr/bin:/bin"])
            .arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let _ = child.stdin.take().unwrap().write_all(MSG);
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let status = wait_exit(&mut child, DEADLINE);
    let Some(status) = status else {
        panic!(
            "{} {args:?} still running after {DEADLINE:?}: killed",
            program.display()
        );
    };
    let text = out.join().unwrap() + &err.join().unwrap();
    let code = status.code().unwrap_or(-1);
    assert!(code != 101 && code != 134 && code >= 0, "{code}\n{text}");
    (code, text)
}

/// A spool for the hostile-file tests: the config and the binaries the runner can use,
/// as root or (`user`) as the test user, with a smarthost where nothing listens.
struct Hostile {
    env: Env,
    conf: String,
    bin: PathBuf,
    spool: PathBuf,
    user: bool,
}

impl Hostile {
    fn new(user: bool) -> Hostile {
        let env = Env::with_config(&format!("SMARTHOST 127.0.0.1:{}", closed_tcp_port()));
        if !user {
            let conf = env.conf.to_str().unwrap().to_string();
            let (bin, spool) = (env.link("sendmail"), env.spool.clone());
            return Hostile {
                env,
                conf,
                bin,
                spool,
                user,
            };
        }
        let dir = env.dir.join("user");
        fs::create_dir_all(&dir).unwrap();
        // Sticky, as /tmp is: the user's spool below it may not be swapped by others.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(env.dir.join("mail"), fs::Permissions::from_mode(0o777)).unwrap();
        let spool = dir.join("spool");
        make_user_spool(&spool);
        let text = env.config_naming_spool(&spool);
        let conf = dir.join("user.conf");
        fs::write(&conf, text).unwrap();
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
        let bin = user_visible_bin(&dir, "sendmail");
        Hostile {
            conf: conf.to_str().unwrap().to_string(),
            env,
            bin,
            spool,
            user,
        }
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> (i32, String) {
        let mut a = vec!["-C", self.conf.as_str()];
        a.extend_from_slice(args);
        bounded(&self.bin, &a, self.user)
    }

    #[track_caller]
    fn mailq(&self) -> String {
        let (code, text) = self.run(&["-bp"]);
        assert_eq!(code, 0, "{text}");
        text
    }

    /// Queue one message; its ID.
    #[track_caller]
    fn queued(&self, rcpt: &str) -> String {
        let before = self.ids();
        let (code, text) = self.run(&["-odq", rcpt]);
        assert_eq!(code, 0, "{text}");
        let after = self.ids();
        let new: Vec<_> = after.difference(&before).collect();
        assert_eq!(new.len(), 1, "{new:?}");
        new[0].clone()
    }

    fn ids(&self) -> BTreeSet<String> {
        fs::read_dir(&self.spool)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.strip_prefix("qf").map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An empty directory outside the spool.
    fn outside(&self, name: &str) -> PathBuf {
        let d = self.env.dir.join("outside").join(name);
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        d
    }

    /// Put a symlink to `target` in place of the spool's folder `name`.
    fn replace_with_link(&self, name: &str, target: &Path) {
        let p = self.spool.join(name);
        let _ = fs::remove_dir_all(&p);
        std::os::unix::fs::symlink(target, &p).unwrap();
    }
}

fn mkfifo(p: &Path) {
    let _ = fs::remove_file(p);
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn hostile_state_files(user: bool) {
    let h = Hostile::new(user);
    let fifo = h.queued("fifo@example.org");
    let link = h.queued("link@example.org");
    mkfifo(&h.spool.join(format!("sf{fifo}")));
    // A state file outside the spool that would say the entry was tried and why.
    let outside = h.outside("state").join("sf");
    let planted = "rsendmail-state 1\nattempts 7\nreason outside-state-was-read\n";
    fs::write(&outside, planted).unwrap();
    std::os::unix::fs::symlink(&outside, h.spool.join(format!("sf{link}"))).unwrap();

    let list = h.mailq();
    assert!(
        list.contains(&format!(
            "{fifo} (cannot read queue file: state file sf{fifo}"
        )) && list.contains("is a FIFO"),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            "{link} (cannot read queue file: state file sf{link}"
        )) && list.contains("is a symbolic link"),
        "{list}"
    );
    assert!(!list.contains("outside-state-was-read"), "{list}");

    let (_, run) = h.run(&["-qf"]);
    for id in [&fifo, &link] {
        assert!(
            h.spool.join(format!("corrupt/qf{id}")).exists(),
            "{id}: {run}\n{:?}",
            names(&h.spool)
        );
    }
    assert_eq!(fs::read_to_string(&outside).unwrap(), planted);
    assert!(!h.mailq().contains("outside-state-was-read"));
}

#[test]
fn fifo_or_symlink_as_state_file_is_moved_aside_never_waited_on_nor_followed() {
    hostile_state_files(false);
}

#[test]
fn fifo_or_symlink_as_state_file_as_an_ordinary_user() {
    if !can_switch_user() {
        return;
    }
    hostile_state_files(true);
}

fn symlinked_folders(user: bool) {
    let h = Hostile::new(user);
    h.queued("first@example.org");
    let (tmp, index, slots) = (h.outside("tmp"), h.outside("index"), h.outside("slots"));
    // A leftover a queue run would remove, were it in the spool's tmp/.
    let old = tmp.join("tf6AU00000000001");
    fs::File::create(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();
    h.replace_with_link("tmp", &tmp);
    h.replace_with_link("index", &index);
    h.replace_with_link("slots", &slots);
    let list = h.mailq();
    for sub in ["tmp", "index", "slots"] {
        assert!(
            list.contains(&format!(
                "/{sub} is a symbolic link, not a directory; refused"
            )),
            "{sub}: {list}"
        );
    }

    let id = h.queued("second@example.org");
    let (code, text) = h.run(&["-odb", "third@example.org"]);
    assert_eq!(code, 0, "{text}");
    wait_until(DEADLINE, "the background delivery's state file", || {
        h.ids()
            .iter()
            .filter(|i| **i != id)
            .any(|i| h.spool.join(format!("sf{i}")).exists())
    });
    h.run(&["-qf"]);
    h.run(&["-qf", "-qRexample"]);
    assert_eq!(names(&tmp), ["tf6AU00000000001"]);
    assert!(names(&index).is_empty(), "{:?}", names(&index));
    assert!(names(&slots).is_empty(), "{:?}", names(&slots));
    for sub in ["tmp", "index", "slots"] {
        let md = fs::symlink_metadata(h.spool.join(sub)).unwrap();
        assert!(md.is_dir(), "{sub}: {:?}", names(&h.spool));
        assert!(
            names(&h.spool.join("corrupt"))
                .iter()
                .any(|n| n.starts_with(&format!("{sub}."))),
            "{sub}: {:?}",
            names(&h.spool.join("corrupt"))
        );
    }
    let list = h.mailq();
    assert!(!list.contains("not a directory"), "{list}");
}

#[test]
fn symlinks_in_place_of_spool_folders_are_moved_aside_and_nothing_is_written_outside() {
    symlinked_folders(false);
}

#[test]
fn symlinks_in_place_of_spool_folders_as_an_ordinary_user() {
    if !can_switch_user() {
        return;
    }
    symlinked_folders(true);
}

#[test]
fn a_symlinked_corrupt_folder_is_never_moved_into() {
    let h = Hostile::new(false);
    h.queued("first@example.org");
    let (corrupt, tmp) = (h.outside("corrupt"), h.outside("tmp"));
    h.replace_with_link("corrupt", &corrupt);
    fs::write(h.spool.join("qf6AU00000000002"), "garbage\n").unwrap();
    let list = h.mailq();
    assert!(
        list.contains("/corrupt is a symbolic link, not a directory; refused"),
        "{list}"
    );
    let (code, run) = h.run(&["-qf"]);
    assert_eq!(code, 0, "{run}");
    assert!(h.spool.join("qf6AU00000000002").exists(), "{run}");
    assert!(names(&corrupt).is_empty(), "{:?}", names(&corrupt));
    // With corrupt/ unusable, a symlink in place of tmp/ cannot be moved aside: refused.
    h.replace_with_link("tmp", &tmp);
    let (code, text) = h.run(&["-odq", "second@example.org"]);
    assert_eq!(code, 75, "{text}");
    assert!(text.contains("is a symbolic link"), "{text}");
    assert!(names(&tmp).is_empty(), "{:?}", names(&tmp));
    assert!(names(&corrupt).is_empty(), "{:?}", names(&corrupt));
}

/// A FIFO, a directory or a symlink (to a queue file outside) in place of a queue file:
/// never waited on, never followed, and moved to corrupt/ (the link itself) like a
/// queue file that does not parse, rather than refused again by every run.
#[test]
fn fifo_directory_or_symlink_as_queue_file_is_moved_aside() {
    let h = Hostile::new(false);
    let fifo = h.queued("fifo@example.org");
    let dir = h.queued("dir@example.org");
    let link = h.queued("link@example.org");
    mkfifo(&h.spool.join(format!("qf{fifo}")));
    let qd = h.spool.join(format!("qf{dir}"));
    fs::remove_file(&qd).unwrap();
    fs::create_dir(&qd).unwrap();
    let outside = h.outside("qf").join(format!("qf{link}"));
    let ql = h.spool.join(format!("qf{link}"));
    fs::rename(&ql, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &ql).unwrap();
    let before = fs::read(&outside).unwrap();
    let (_, run) = h.run(&["-qf"]);
    for id in [&fifo, &dir, &link] {
        assert!(
            fs::symlink_metadata(h.spool.join(format!("corrupt/qf{id}"))).is_ok(),
            "{id}: {run}\n{:?}",
            names(&h.spool)
        );
    }
    assert!(
        fs::symlink_metadata(h.spool.join(format!("corrupt/qf{link}")))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&outside).unwrap(), before);
    assert!(h.ids().is_empty(), "{:?}", names(&h.spool));
}

#[test]
fn fifos_in_the_index_are_never_waited_on() {
    let h = Hostile::new(false);
    h.queued("first@example.org");
    mkfifo(&h.spool.join("index/recipients"));
    // (No domain has a fast flush list here: the directory is made for the FIFO.)
    fs::create_dir_all(h.spool.join("index/domains")).unwrap();
    mkfifo(&h.spool.join("index/domains/example.org"));
    mkfifo(&h.spool.join("index/lock"));
    h.run(&["-qf", "-qRexample"]);
    h.run(&["-qf"]);
    h.run(&["-qf", "-qRexample"]);
    // Submissions append to the index: with the lock a FIFO, they go on without it.
    mkfifo(&h.spool.join("index/recipients"));
    let (code, text) = h.run(&["-odq", "second@example.org"]);
    assert_eq!(code, 0, "{text}");
    h.run(&["-qf"]);
    assert!(h.mailq().contains("second@example.org"));
}

/// `n` copies of a 200-line message queued for smtp-sink as the relay, with a MAILLOG:
/// (the scratch environment that holds the sink, the environment, the sink, the log),
/// or `None` without smtp-sink.
fn queued_copies(n: usize) -> Option<(Env, Env, Sink, PathBuf)> {
    let env0 = Env::new();
    let sink = Sink::start(&env0.dir, &[])?;
    let env = relay_env(sink.port, "");
    let log = env.dir.join("maillog");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    let mut message = String::from("Subject: damaged\n\n");
    for i in 0..200 {
        message.push_str(&format!("line {i} of a message that must arrive whole\n"));
    }
    for _ in 0..n {
        env.sendmail(&["-odq", "a@example.org"], message.as_bytes())
            .code(0);
    }
    Some((env0, env, sink, log))
}

/// A queue file must be as long as its envelope says. One cut short (by a byte, by half,
/// to its envelope alone) or with bytes after its end, as a partial restore or copy
/// leaves it, is shown by mailq as a problem, moved to corrupt/ and logged by a run, and
/// never delivered in part. An entry of the previous version, without the length, is
/// still delivered.
#[test]
fn truncated_or_extended_queue_files_are_moved_aside_not_delivered() {
    let Some((_env0, env, sink, log)) = queued_copies(4) else {
        return;
    };
    let entries = env.entries();
    assert_eq!(entries.len(), 4, "{}", env.listing());
    let whole = fs::read(&entries[0]).unwrap();
    let envelope = whole.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let damaged: [(&str, Vec<u8>); 4] = [
        ("cut by one byte", whole[..whole.len() - 1].to_vec()),
        ("cut by half", whole[..whole.len() / 2].to_vec()),
        ("cut to its envelope", whole[..envelope].to_vec()),
        ("with bytes appended", [&whole[..], b"appended\n"].concat()),
    ];
    let ids: Vec<String> = entries
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap()[2..].to_string())
        .collect();
    for ((what, bytes), (path, id)) in damaged.iter().zip(entries.iter().zip(&ids)) {
        // Each entry keeps its own id (the envelope names it).
        let own = fs::read(path).unwrap();
        let text = String::from_utf8(bytes.clone())
            .unwrap()
            .replace(&ids[0], id);
        assert_eq!(own.len(), whole.len(), "{what}");
        fs::write(path, text).unwrap();
    }
    // An entry as the previous version wrote it: no message-bytes.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old_message = "Subject: old version\n\nwritten before the length was recorded\n";
    fs::write(
        env.spool.join("qf6AU00000000009"),
        format!(
            "rsendmail-queue 1\nid 6AU00000000009\ncreated {now}\nuser 0 root\nmode q\n\
             header-bytes 22\nsender a@example.org\nrcpt old@example.org\n\n{old_message}"
        ),
    )
    .unwrap();

    let list = env.run_raw(&env.link("mailq"), &["-C", env.conf.to_str().unwrap()], b"");
    no_panic(&list);
    list.code(0);
    for id in &ids {
        assert!(
            list.stdout
                .contains(&format!("{id} (cannot read queue file: queue file ")),
            "{id}: {}",
            list.stdout
        );
    }
    assert!(list.stdout.contains("6AU00000000009"), "{}", list.stdout);

    let r = env.sendmail(&["-qf"], b"");
    no_panic(&r);
    r.code(0);
    let dumps = sink.dumps();
    assert_eq!(dumps.len(), 1, "only the old entry: {dumps:?}");
    assert!(
        dumps[0].contains("written before the length was recorded"),
        "{dumps:?}"
    );
    assert!(!dumps.iter().any(|d| d.contains("damaged")), "{dumps:?}");
    let logged = fs::read_to_string(&log).unwrap();
    for ((what, _), id) in damaged.iter().zip(&ids) {
        assert!(
            env.spool.join(format!("corrupt/qf{id}")).exists(),
            "{what}: {}",
            env.listing()
        );
        assert!(
            logged.contains(&format!(
                "qf{id}: corrupt queue file moved aside: queue file "
            )),
            "{what}: {logged}"
        );
    }
    assert!(env.entries().is_empty(), "{}", env.listing());
    // Nothing was delivered later either.
    let r = env.sendmail(&["-qf"], b"");
    r.code(0);
    assert_eq!(sink.dumps().len(), 1);
}

/// A queue file of the right length whose message was damaged — a zero tail (a file
/// system that lost the last blocks after the size was written, a sparse copy), bytes
/// changed in the middle or in the envelope section — is refused by its `message-sum`:
/// moved to corrupt/, logged,
/// and never delivered. The entries beside it are delivered.
#[test]
fn a_damaged_message_of_the_right_length_is_moved_aside_not_delivered() {
    let Some((_env0, env, sink, log)) = queued_copies(5) else {
        return;
    };
    let entries = env.entries();
    let ids: Vec<String> = entries
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap()[2..].to_string())
        .collect();
    // The first: its last 100 bytes zero; the second: one byte changed mid-message.
    let mut bytes = fs::read(&entries[0]).unwrap();
    let n = bytes.len();
    bytes[n - 100..].fill(0);
    fs::write(&entries[0], &bytes).unwrap();
    let mut bytes = fs::read(&entries[1]).unwrap();
    let n = bytes.len();
    bytes[n - 2000] ^= 0x20;
    fs::write(&entries[1], &bytes).unwrap();
    // The third: its recipient changed in the envelope section (as long as before).
    let text = fs::read_to_string(&entries[2]).unwrap();
    assert!(text.contains("\nrcpt a@example.org"), "{text}");
    fs::write(
        &entries[2],
        text.replace("\nrcpt a@example.org", "\nrcpt b@example.org"),
    )
    .unwrap();
    // The fourth: the sum's line renamed, as if to switch the check off.
    let text = fs::read_to_string(&entries[3]).unwrap();
    fs::write(
        &entries[3],
        text.replacen("message-sum ", "messagf-sum ", 1),
    )
    .unwrap();

    let r = env.sendmail(&["-qf"], b"");
    no_panic(&r);
    r.code(0);
    let dumps = sink.dumps();
    assert_eq!(dumps.len(), 1, "only the whole entry: {}", dumps.len());
    let logged = fs::read_to_string(&log).unwrap();
    for id in &ids[..4] {
        assert!(
            env.spool.join(format!("corrupt/qf{id}")).exists(),
            "{id}: {}",
            env.listing()
        );
        assert!(
            logged.contains(&format!(
                "qf{id}: corrupt queue file moved aside: queue file"
            )),
            "{logged}"
        );
    }
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// A damaged state file of gigabytes (a sparse file: a bad restore, a disk error) is
/// neither read into memory nor quoted whole: `mailq` lists the entry as unreadable in a
/// line of bounded length, at once, and a queue run moves it aside.
#[test]
fn a_huge_damaged_state_file_is_refused_not_read() {
    let env = Env::new();
    env.sendmail(&["-odq", "a@x.test", "b@y.test"], MSG).code(0);
    let id = env.only_id();
    let sf = env.spool.join(format!("sf{id}"));
    fs::File::create(&sf)
        .unwrap()
        .set_len(3 << 30)
        .expect("a sparse 3 GiB file");
    let t = std::time::Instant::now();
    let listing = env.mailq(&[]);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(listing.len() < 2000, "{} bytes", listing.len());
    assert!(listing.contains(&id), "{listing}");
    assert!(listing.contains("too large"), "{listing}");
    let r = env.sendmail(&["-qf"], b"");
    no_panic(&r);
    assert!(env.entries().is_empty(), "{}", env.listing());
    assert!(env.spool.join("corrupt").join(format!("qf{id}")).exists());
}

/// A queue file (or state file) hard-linked elsewhere (a backup made with `cp -al`,
/// rsnapshot) is refused while the link lasts, never moved to `corrupt/`: once the link
/// is gone, the next run delivers the entry.
#[test]
fn a_hard_linked_entry_is_refused_until_the_link_goes_not_moved_aside() {
    let Some((_scratch, peer)) = crate::harness::servers::start_peer(&[]) else {
        return;
    };
    let env = relay_env(peer.port, "");
    env.sendmail(&["-odq", "a@x.test"], MSG).code(0);
    let name = format!("qf{}", env.only_id());
    let backup = env.dir.join("backup");
    fs::create_dir_all(&backup).unwrap();
    fs::hard_link(env.spool.join(&name), backup.join(&name)).unwrap();
    let r = env.sendmail(&["-qf"], b"");
    no_panic(&r);
    assert!(peer.messages().is_empty());
    assert_eq!(env.entries().len(), 1, "{}", env.listing());
    assert!(!env.spool.join("corrupt").join(&name).exists());
    assert!(env.mailq(&[]).contains("2 links"), "{}", env.mailq(&[]));
    fs::remove_file(backup.join(&name)).unwrap();
    env.sendmail(&["-qf"], b"").code(0);
    assert_eq!(peer.wait_for(1, Duration::from_secs(20)).len(), 1);
    assert!(env.entries().is_empty(), "{}", env.listing());
}

/// Run `program ARGS` with stdin closed, its address space capped at 1 GiB (so that
/// reading `/dev/zero` whole fails instead of filling the machine) and killed after
/// 10 s (so that waiting on a FIFO fails the test instead of hanging it).
fn bounded_run(env: &Env, args: &[&str]) -> Run {
    use std::os::unix::process::CommandExt;
    let program = env.link("sendmail");
    let mut cmd = Command::new(&program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let out = child.wait_with_output().expect("wait");
    assert!(status.is_some(), "hung: {program:?} {args:?}");
    env.finish(&program, args, out)
}

/// Every file the config or the command line names is read only as a regular file of
/// at most 1 MiB: `/dev/zero`, a FIFO, a directory and a 2 MB file are each refused with
/// the file, the reason and the config line that names it, EX_CONFIG, before a message
/// is read; nothing hangs and nothing grows. `/dev/null` is an empty file.
#[test]
fn files_the_config_names_are_bounded() {
    let scratch = Env::new();
    let fifo = scratch.dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let dir = scratch.dir.join("a-dir");
    fs::create_dir(&dir).unwrap();
    let big = scratch.dir.join("big");
    fs::write(&big, vec![b'x'; 2_000_000]).unwrap();
    let bad: [(&str, &str); 4] = [
        ("/dev/zero", "not a regular file (a device)"),
        (fifo.to_str().unwrap(), "not a regular file (a FIFO)"),
        (dir.to_str().unwrap(), "not a regular file (a directory)"),
        (
            big.to_str().unwrap(),
            "larger than 1048576 bytes, the limit (2000000 bytes)",
        ),
    ];
    for keyword in ["CERTFILE", "MAILNAME", "RELAYTABLE", "AUTHPATH", "ALIASES"] {
        for (path, why) in bad {
            let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\n{keyword} {path}"));
            let r = bounded_run(
                &env,
                &["-C", env.conf.to_str().unwrap(), "-odq", "a@example.org"],
            );
            no_panic(&r);
            r.code(78);
            // A device named as credentials or a certificate is refused by its name
            // before it is opened (it never holds either).
            let want = match keyword {
                "CERTFILE" | "AUTHPATH" if path == "/dev/zero" => format!(
                    "{}: line 7: {keyword} {path} is a device, not a file of {}; correct the line",
                    env.conf.display(),
                    if keyword == "CERTFILE" {
                        "a certificate"
                    } else {
                        "credentials"
                    }
                ),
                _ => format!(
                    "{}: line 7: cannot open {keyword} {path}: {why}",
                    env.conf.display()
                ),
            };
            assert!(
                r.stdout.contains(&want) || r.stderr.contains(&want),
                "want {want:?}\nstdout: {}\nstderr: {}",
                r.stdout,
                r.stderr
            );
            assert!(
                env.entries().is_empty(),
                "a message was taken: {keyword} {path}"
            );
        }
    }
    // The config file itself.
    for (path, why) in bad {
        let r = bounded_run(&scratch, &["-C", path, "-odq", "a@example.org"]);
        no_panic(&r);
        r.code(78);
        let want = format!("cannot open {path}: {why}");
        assert!(
            r.stdout.contains(&want) || r.stderr.contains(&want),
            "want {want:?}\n{}{}",
            r.stdout,
            r.stderr
        );
    }
    // The -X traffic log: a FIFO or a directory is refused (EX_CANTCREAT), never waited on.
    for path in [fifo.to_str().unwrap(), dir.to_str().unwrap()] {
        let r = bounded_run(
            &scratch,
            &[
                "-C",
                scratch.conf.to_str().unwrap(),
                "-X",
                path,
                "-odq",
                "a@example.org",
            ],
        );
        no_panic(&r);
        r.code(73);
    }
    // /dev/null is an empty file wherever a file is named.
    let env = Env::with_config("ALIASES /dev/null");
    let r = bounded_run(
        &env,
        &["-C", env.conf.to_str().unwrap(), "-odq", "a@example.org"],
    );
    r.code(0);
}
