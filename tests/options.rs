//! Options and config files are checked before the commit point (issue 11, part 6): every
//! option the binaries act on, given a bad value on the command line or in the config
//! file, and every file delivery needs, is refused before the message is read — with the
//! option's name (and the config file's name and line), the exit status of the rule
//! "non-zero: nothing queued" — and the spool holds no entry and no temporary file.
//! Good values of each kind still deliver.

use crate::harness::servers::Sink;
use crate::harness::{Env, MSG, Run, wait_exit, wait_until_or};
use rsendmail::options::{ACTED_ON, Kind};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A bad value of each kind (`None`: the kind refuses nothing, as sendmail's ErrorMode).
fn bad_value(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::DeliveryMode => Some("Z"),
        Kind::ErrorMode => None,
        Kind::Bool => Some("maybe"),
        Kind::Time => Some("forever"),
        Kind::Count => Some("abc"),
        Kind::Positive => Some("0"),
        Kind::Limit => Some("10M"),
        Kind::Port => Some("70000"),
        Kind::Path => Some(""),
        Kind::AbsolutePath => Some("relspool"),
        Kind::User => Some("a:b:c"),
        Kind::Privacy => Some("noexpm"),
        Kind::Networks => Some("10.0.0.0/33"),
        Kind::Listen => Some("Port=x"),
        Kind::Domains => Some("ex/ample"),
        Kind::Char => Some("ab"),
        Kind::VerpDelimiters => Some("+@"),
        Kind::QueueSortOrder => Some("xyz"),
    }
}

/// The line a bad value gets (sendmail's own where it is recorded).
fn message(name: &str, kind: Kind, bad: &str) -> String {
    match kind {
        Kind::DeliveryMode => format!("Unknown delivery mode {bad}"),
        Kind::Listen => format!("DaemonPortOptions={bad}: invalid port \"x\""),
        _ => format!("Invalid value for {name}: {bad}"),
    }
}

/// Run `sendmail -C conf ARGS` with a stdin that stays open and is never written: a run
/// that read the message, served SMTP on it or listened would not end, so one that ends
/// was refused before any of that. Ten seconds at most. It runs in the scratch
/// directory, so that a relative spool would show there.
pub fn run_refused(env: &Env, program: &Path, args: &[&str]) -> Run {
    let mut full = vec!["-C", env.conf.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut child = Command::new(program)
        .current_dir(&env.dir)
        .args(&full)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _keep_open = child.stdin.take();
    let status = wait_exit(&mut child, Duration::from_secs(10)).unwrap_or_else(|| {
        panic!("{args:?}: still running after 10 s: not refused before it started")
    });
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    env.finish(
        program,
        &full,
        Output {
            status,
            stdout,
            stderr,
        },
    )
}

/// Nothing in the spool: no entry, no temporary file (and no spool made in the working
/// directory from a relative `relspool`).
#[track_caller]
fn nothing_queued(env: &Env, what: &str) {
    assert!(env.entries().is_empty(), "{what}: {}", env.listing());
    let tmp: Vec<_> = fs::read_dir(env.spool.join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "{what}: temporary files {tmp:?}");
    assert!(
        !env.dir.join("relspool").exists(),
        "{what}: a relative spool"
    );
}

const MODES: [&str; 3] = ["-odi", "-odb", "-odq"];

#[test]
fn every_bad_option_value_is_refused_before_anything_is_queued() {
    let mut checked = 0;
    for &(name, kind) in ACTED_ON {
        let Some(bad) = bad_value(kind) else { continue };
        let want = message(name, kind, bad);
        for mode in MODES {
            // On the command line: EX_USAGE.
            let env = Env::new();
            let opt = format!("{name}={bad}");
            run_refused(
                &env,
                &env.link("sendmail"),
                &[mode, "-O", &opt, "bob@example.org"],
            )
            .code(64)
            .stdout_is(&format!("{want}\n"))
            .stderr_is("");
            nothing_queued(&env, &format!("{mode} -O {opt}"));
            // In the config file (line 6 of the harness's file): its name and line, and
            // EX_CONFIG — but for a bad delivery mode, sendmail's EX_USAGE. An option
            // given on the command line is not read from the file: the mode then comes
            // from the file itself.
            let env = Env::with_config(&format!("O {name}={bad}\n"));
            let (args, code): (&[&str], i32) = if kind == Kind::DeliveryMode {
                (&["bob@example.org"], 64)
            } else {
                (&[mode, "bob@example.org"], 78)
            };
            // (the file's whole value named, and the modes it may be)
            let in_file = if kind == Kind::DeliveryMode {
                format!("Unknown delivery mode {bad} (the mode is b, i, q or d)")
            } else {
                want.clone()
            };
            run_refused(&env, &env.link("sendmail"), args)
                .code(code)
                .stdout_is(&format!("{}: line 6: {in_file}\n", env.conf.display()))
                .stderr_is("");
            nothing_queued(&env, &format!("{mode} O {opt}"));
            checked += 1;
        }
    }
    // Every kind that refuses anything was seen, so the table is not empty by mistake.
    assert!(checked >= 3 * 35, "{checked}");
}

/// A config line whose value delivery would use as it is — the mail name (EHLO, the
/// envelope sender, the header), MASQUERADE, the relays, the certificate files, the
/// spool, a timeout name — is refused before the message is read when delivery could not
/// use it: with the file and line (or the file it names and the reason), the exit status,
/// and nothing queued. `@` stands for the config file's name and line 6, where the
/// harness puts the case's text.
#[test]
fn config_values_delivery_cannot_use_are_refused_before_anything_is_queued() {
    let scratch = Env::new();
    let file = |name: &str, text: &str| -> String {
        let p = scratch.dir.join(name);
        fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let mailname_bad = file("mailname-bad", "bad host\n");
    let mailname_dots = file("mailname-dots", "bad..host\n");
    let mailname_empty = file("mailname-empty", "");
    // One DER SEQUENCE (30 03 02 01 00): the framing is what rsendmail checks.
    let cert = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
    let cert_only = file("cert.pem", cert);
    let not_pem = file("not-pem", "root:x:0:0:root:/root:/bin/sh\n");
    let relays = |name: &str, line: &str| file(name, &format!("# relays\n{line}\n"));
    let port0 = relays("relays-port0", "remote.example 127.0.0.1:0");
    let dots = relays("relays-dots", "remote.example bad..host");
    let big = relays("relays-big", "remote.example relay.example:65536");
    let empty = relays("relays-empty", "remote.example :25");
    let brackets = relays("relays-brackets", "remote.example []:25");
    let space = "' ' is not a letter, digit, hyphen or dot";
    let port = |p: &str| format!("port {p} is not a number from 1 to 65535");
    let no_cert = "no certificate in it (-----BEGIN CERTIFICATE-----)";
    let no_key =
        "no private key in it (-----BEGIN PRIVATE KEY-----, or RSA PRIVATE KEY or EC PRIVATE KEY)";
    let cases: Vec<(String, Vec<&str>, i32, String)> = vec![
        // 1. The mail name: a domain, from the line or the file's first line.
        (
            "MAILNAME bad host\n".into(),
            vec![],
            78,
            format!("@invalid MAILNAME bad host: {space}"),
        ),
        (
            "MAILNAME bad..host\n".into(),
            vec![],
            78,
            "@invalid MAILNAME bad..host: empty label".into(),
        ),
        (
            format!("MAILNAME {mailname_bad}\n"),
            vec![],
            78,
            format!("{mailname_bad}: line 1: invalid mail name bad host: {space}"),
        ),
        (
            format!("MAILNAME {mailname_dots}\n"),
            vec![],
            78,
            format!("{mailname_dots}: line 1: invalid mail name bad..host: empty label"),
        ),
        (
            "MAILNAME /nonexistent\n".into(),
            vec![],
            78,
            "@cannot open MAILNAME /nonexistent: No such file or directory".into(),
        ),
        (
            format!("MAILNAME {mailname_empty}\n"),
            vec![],
            78,
            format!("MAILNAME {mailname_empty}: no mail name on its first line"),
        ),
        // 2. MASQUERADE: [user@][host], a mailbox and a domain.
        (
            "MASQUERADE a@b@c\n".into(),
            vec![],
            78,
            "@invalid MASQUERADE a@b@c: Invalid route address".into(),
        ),
        (
            "MASQUERADE bad..dom\n".into(),
            vec![],
            78,
            "@invalid MASQUERADE bad..dom: empty label".into(),
        ),
        // 3. The relay table's relays, as PORT and SMARTHOST: a host, a port 1-65535.
        (
            format!("RELAYTABLE {port0}\n"),
            vec![],
            78,
            format!("{port0}: line 2: invalid relay 127.0.0.1:0: {}", port("0")),
        ),
        (
            format!("RELAYTABLE {dots}\n"),
            vec![],
            78,
            format!("{dots}: line 2: invalid relay bad..host: empty label"),
        ),
        (
            format!("RELAYTABLE {big}\n"),
            vec![],
            78,
            format!(
                "{big}: line 2: invalid relay relay.example:65536: {}",
                port("65536")
            ),
        ),
        (
            format!("RELAYTABLE {empty}\n"),
            vec![],
            78,
            format!("{empty}: line 2: invalid relay :25: no host"),
        ),
        (
            format!("RELAYTABLE {brackets}\n"),
            vec![],
            78,
            format!("{brackets}: line 2: invalid relay []:25: no host"),
        ),
        (
            "SMARTHOST relay.example:0\n".into(),
            vec![],
            78,
            format!("@invalid SMARTHOST relay.example:0: {}", port("0")),
        ),
        // 4. Timeout names: sendmail's message for one it does not know (exit 70 on
        // the command line, as sendmail's; 78 in the file); a name it knows that
        // rsendmail does not act on still has its value checked.
        (
            String::new(),
            vec!["-O", "Timeout.bogus=abc"],
            70,
            "settimeout: invalid timeout bogus".into(),
        ),
        (
            "O Timeout.bogus=abc\n".into(),
            vec![],
            78,
            "@settimeout: invalid timeout bogus".into(),
        ),
        (
            String::new(),
            vec!["-O", "Timeout=mail:5m,bogus:5m"],
            70,
            "settimeout: invalid timeout bogus".into(),
        ),
        (
            String::new(),
            vec!["-O", "Timeout.queuereturn.normal=abc"],
            64,
            "Invalid value for Timeout.queuereturn.normal: abc".into(),
        ),
        (
            "O Timeout.queuereturn.normal=abc\n".into(),
            vec![],
            78,
            "@Invalid value for Timeout.queuereturn.normal: abc".into(),
        ),
        // 5. Limits of 0 that would mean "never deliver" (the table test has them in
        // every mode too).
        (
            String::new(),
            vec!["-O", "MaxBackgroundDeliveries=0"],
            64,
            "Invalid value for MaxBackgroundDeliveries: 0".into(),
        ),
        (
            "O MaxConnections=0\n".into(),
            vec![],
            78,
            "@Invalid value for MaxConnections: 0".into(),
        ),
        (
            String::new(),
            vec!["-O", "SmarthostSplit=0"],
            64,
            "Invalid value for SmarthostSplit: 0".into(),
        ),
        // 6. Certificate files: PEM text the deliverer's TLS code takes.
        (
            format!("CERTFILE {not_pem}\n"),
            vec![],
            78,
            format!("@CERTFILE {not_pem}: {no_cert}"),
        ),
        (
            "CERTFILE /etc/passwd\n".into(),
            vec![],
            78,
            "@CERTFILE /etc/passwd is the system's password file, not a file of a certificate; \
             correct the line"
                .into(),
        ),
        (
            format!("CERTFILE {cert_only}\n"),
            vec![],
            78,
            format!("@CERTFILE {cert_only}: {no_key}"),
        ),
        (
            format!("O CACertFile={not_pem}\n"),
            vec![],
            78,
            format!("@CACertFile {not_pem}: {no_cert}"),
        ),
        (
            String::new(),
            vec!["-O", "CACertFile=/etc/passwd"],
            78,
            format!("the command line: CACertFile /etc/passwd: {no_cert}"),
        ),
        // 7. The spool: an absolute path.
        (
            "SPOOLDIR relspool\n".into(),
            vec![],
            78,
            "@invalid SPOOLDIR relspool: not an absolute path".into(),
        ),
        (
            "O QueueDirectory=relspool\n".into(),
            vec![],
            78,
            "@Invalid value for QueueDirectory: relspool".into(),
        ),
        (
            String::new(),
            vec!["-O", "QueueDirectory=relspool"],
            64,
            "Invalid value for QueueDirectory: relspool".into(),
        ),
        (
            String::new(),
            vec!["-oQrelspool"],
            64,
            "Invalid value for QueueDirectory: relspool".into(),
        ),
    ];
    for (conf, extra, code, want) in &cases {
        for mode in MODES {
            let env = Env::with_config(conf);
            let want = match want.strip_prefix('@') {
                Some(rest) => format!("{}: line 6: {rest}\n", env.conf.display()),
                None => format!("{want}\n"),
            };
            let mut args = extra.clone();
            args.extend([mode, "bob@example.org"]);
            run_refused(&env, &env.link("sendmail"), &args)
                .code(*code)
                .stdout_is(&want)
                .stderr_is("");
            nothing_queued(&env, &format!("{conf:?} {extra:?} {mode}"));
        }
    }
}

/// What the checks take is what delivery uses: the mail name from MAILNAME's file is
/// the name in EHLO, the envelope sender and the added header; a relay table with a
/// port, a literal host and a name with `_`; a certificate file of the form the
/// deliverer reads; a timeout name sendmail knows that rsendmail does not act on.
#[test]
fn checked_values_are_the_ones_delivery_uses() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let mailname = env0.dir.join("mailname");
    fs::write(&mailname, "mail.example.org\n").unwrap();
    let table = env0.dir.join("relays");
    fs::write(
        &table,
        format!(
            "example.org [127.0.0.1]:{}\nexample.net no_such_host.invalid:2525\n",
            sink.port
        ),
    )
    .unwrap();
    let ca = env0.dir.join("ca.pem");
    fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let env = Env::with_config(&format!(
        "MAILNAME {}\nRELAYTABLE {}\nO CACertFile={}\nO Timeout.queuereturn.normal=5d\n\
         O Timeout.iconnect=1m\nO MaxConnections=1\n",
        mailname.display(),
        table.display(),
        ca.display()
    ));
    env.sendmail(
        &[
            "-odi",
            "-O",
            "Timeout=connect:30s",
            "-O",
            "SmarthostSplit=1",
            "bob@example.org",
        ],
        b"Subject: names\n\nbody\n",
    )
    .code(0)
    .stdout_is("");
    wait_until_or(
        Duration::from_secs(20),
        "the message at smtp-sink",
        || format!("{:?}", env.json()),
        || !sink.dumps().is_empty(),
    );
    let dump = &sink.dumps()[0];
    let login = login_name();
    for want in [
        "X-Helo-Args: mail.example.org\n".to_string(),
        format!("X-Mail-Args: <{login}@mail.example.org>\n"),
        "\tby mail.example.org (".to_string(),
        format!("<{login}@mail.example.org>\nMessage-Id: <"),
        "@mail.example.org>\nSubject: names\n".to_string(),
    ] {
        assert!(dump.contains(&want), "{want:?} in\n{dump}");
    }
    assert!(!dump.contains("test.example"), "{dump}");
}

/// The caller's login name, as rsendmail names the sender.
pub fn login_name() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The example of the issue: a bad time in the config file was accepted at submission
/// and the message then sat untried.
#[test]
fn bad_timeout_in_the_config_is_refused_at_submission() {
    let env = Env::with_config("O Timeout.connect=forever\n");
    for mode in MODES {
        env.sendmail(&[mode, "bob@example.org"], MSG)
            .code(78)
            .stdout_is(&format!(
                "{}: line 6: Invalid value for Timeout.connect: forever\n",
                env.conf.display()
            ));
        nothing_queued(&env, mode);
    }
    // A timeout given on the command line is not read from the file, but only that one:
    // the file's other timeouts are still read (and checked), as in sendmail.
    env.sendmail(
        &["-odq", "-O", "Timeout.connect=5s", "bob@example.org"],
        MSG,
    )
    .code(0)
    .stdout_is("");
    assert_eq!(env.entries().len(), 1);
    let env = Env::with_config("O Timeout.datafinal=forever\n");
    env.sendmail(
        &["-odq", "-O", "Timeout.connect=5s", "bob@example.org"],
        MSG,
    )
    .code(78)
    .stdout_is(&format!(
        "{}: line 6: Invalid value for Timeout.datafinal: forever\n",
        env.conf.display()
    ));
    nothing_queued(&env, "-O Timeout.connect=5s");
    // The deprecated one-letter form of a config line, and -o on the command line.
    let env = Env::with_config("Ohabc\n");
    env.sendmail(&["-odq", "bob@example.org"], MSG)
        .code(78)
        .stdout_is(&format!(
            "{}: line 6: Invalid value for MaxHopCount: abc\n",
            env.conf.display()
        ));
    let env = Env::new();
    env.sendmail(&["-odi", "-ohabc", "bob@example.org"], MSG)
        .code(64)
        .stdout_is("Invalid value for MaxHopCount: abc\n");
    nothing_queued(&env, "-ohabc");
    // -h keeps sendmail's own message.
    env.sendmail(&["-odi", "-h", "abc", "bob@example.org"], MSG)
        .code(64)
        .stdout_is("Bad hop count (abc)\n");
    nothing_queued(&env, "-h abc");
}

#[test]
fn unopenable_traffic_log_is_refused_before_anything_is_queued() {
    for mode in MODES {
        let env = Env::new();
        run_refused(
            &env,
            &env.link("sendmail"),
            &["-X", "/nonexistent-dir/x.log", mode, "bob@example.org"],
        )
        .code(73)
        .stdout_is("cannot open /nonexistent-dir/x.log: No such file or directory\n")
        .stderr_is("");
        nothing_queued(&env, mode);
    }
    // The file is created by rsendmail itself, even when nothing is delivered.
    let env = Env::new();
    let log = env.dir.join("x.log");
    env.sendmail(
        &["-X", log.to_str().unwrap(), "-odq", "bob@example.org"],
        MSG,
    )
    .code(0);
    assert!(log.exists());
    assert_eq!(env.entries().len(), 1);
}

#[test]
fn files_named_by_the_config_are_checked_before_anything_is_queued() {
    let scratch = Env::new();
    let table = scratch.dir.join("relays");
    fs::write(
        &table,
        "# relays\nexample.org [127.0.0.1]:2525\nexample.net\n",
    )
    .unwrap();
    let t = table.display();
    let missing = scratch.dir.join("missing");
    let m = missing.display();
    let open_auth = scratch.dir.join("auth.conf");
    fs::write(&open_auth, "bob|127.0.0.1:pw\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&open_auth, fs::Permissions::from_mode(0o644)).unwrap();
    let a = open_auth.display();
    let cases: Vec<(String, Vec<String>, String)> = vec![
        (
            format!("RELAYTABLE {m}\n"),
            vec![],
            format!("cannot open RELAYTABLE {m}: No such file or directory"),
        ),
        (
            format!("RELAYTABLE {t}\n"),
            vec![],
            format!("{t}: line 3: expected: domain relay[:port]"),
        ),
        (
            format!("AUTHPATH {m}\n"),
            vec![],
            format!("cannot read AUTHPATH {m}: No such file or directory"),
        ),
        (
            format!("AUTHPATH {a}\n"),
            vec![],
            format!("AUTHPATH {a} is readable by others; refusing to use it (chmod o-r)"),
        ),
        (
            "AUTHPATH /etc/shadow\n".to_string(),
            vec![],
            "AUTHPATH /etc/shadow is the system's shadow password file, not a file of \
             credentials; correct the line"
                .to_string(),
        ),
        (
            "AUTHPATH /etc/passwd\n".to_string(),
            vec![],
            "AUTHPATH /etc/passwd is the system's password file, not a file of \
             credentials; correct the line"
                .to_string(),
        ),
        (
            format!("O CACertFile={m}\n"),
            vec![],
            format!("cannot open CACertFile {m}: No such file or directory"),
        ),
        (
            String::new(),
            vec!["-O".into(), format!("CACertFile={m}")],
            format!("the command line: cannot open CACertFile {m}: No such file or directory"),
        ),
        (
            format!("CERTFILE {m}\n"),
            vec![],
            format!("cannot open CERTFILE {m}: No such file or directory"),
        ),
    ];
    for (conf, extra, want) in &cases {
        for mode in MODES {
            let env = Env::with_config(conf);
            let mut args: Vec<&str> = extra.iter().map(String::as_str).collect();
            args.extend([mode, "bob@example.org"]);
            // A file the config names that cannot be read is named with the config's
            // line (the extra text is its line 6); `-O` names it on the command line.
            let want = if (want.starts_with("cannot ") || want.ends_with("correct the line"))
                && !conf.is_empty()
            {
                format!("{}: line 6: {want}", env.conf.display())
            } else {
                want.clone()
            };
            run_refused(&env, &env.link("sendmail"), &args)
                .code(78)
                .stdout_is(&format!("{want}\n"))
                .stderr_is("");
            nothing_queued(&env, &format!("{conf:?} {mode}"));
        }
    }
}

/// `-bs`, `-bd`/`-bD`, `-q` and `-bv` fail at start, before any greeting, listening
/// socket or queue run, with the same messages (`-bs` as a reply).
#[test]
fn smtp_server_and_queue_runs_refuse_bad_options_at_start() {
    let port = crate::harness::closed_tcp_port();
    let listen = format!("DaemonPortOptions=Port={port},Addr=127.0.0.1");
    let runs: &[(&str, &[&str], i32, &str)] = &[
        (
            "",
            &["-bs", "-O", "MaxRecipientsPerMessage=abc"],
            64,
            "Invalid value for MaxRecipientsPerMessage: abc",
        ),
        (
            "",
            &["-bs", "-O", "TrustedNetworks=10.0.0.0/33"],
            64,
            "Invalid value for TrustedNetworks: 10.0.0.0/33",
        ),
        (
            "O Timeout.command=soon\n",
            &["-bs"],
            78,
            "@line 6: Invalid value for Timeout.command: soon",
        ),
        (
            "",
            &["-bD", "-O", "DaemonPortOptions=Port=x"],
            64,
            "DaemonPortOptions=Port=x: invalid port \"x\"",
        ),
        (
            "",
            &["-bD", "-O", listen.as_str(), "-O", "MaxDaemonChildren=many"],
            64,
            "Invalid value for MaxDaemonChildren: many",
        ),
        (
            "",
            &["-bd", "-O", listen.as_str(), "-O", "PidFile="],
            64,
            "Invalid value for PidFile: ",
        ),
        (
            "RELAYTABLE /nonexistent/relays\n",
            &["-bs"],
            78,
            "@line 6: cannot open RELAYTABLE /nonexistent/relays: No such file or directory",
        ),
        (
            "RELAYTABLE /nonexistent/relays\n",
            &["-bD", "-O", listen.as_str()],
            78,
            "@line 6: cannot open RELAYTABLE /nonexistent/relays: No such file or directory",
        ),
        (
            "",
            &["-bs", "-X", "/nonexistent-dir/x.log"],
            73,
            "cannot open /nonexistent-dir/x.log: No such file or directory",
        ),
        (
            "",
            &["-qf", "-O", "QueueRetryMin=5x"],
            64,
            "Invalid value for QueueRetryMin: 5x",
        ),
        (
            "RELAYTABLE /nonexistent/relays\n",
            &["-qf"],
            78,
            "@line 6: cannot open RELAYTABLE /nonexistent/relays: No such file or directory",
        ),
        (
            "",
            &["-q30m", "-O", "MinQueueAge=later"],
            64,
            "Invalid value for MinQueueAge: later",
        ),
        (
            "O MXPort=0\n",
            &["-bv", "bob@example.org"],
            78,
            "@line 6: Invalid value for MXPort: 0",
        ),
        (
            "MAILNAME /nonexistent\n",
            &["-bs"],
            78,
            "@line 6: cannot open MAILNAME /nonexistent: No such file or directory",
        ),
        (
            "MAILNAME bad..host\n",
            &["-bD", "-O", listen.as_str()],
            78,
            "@line 6: invalid MAILNAME bad..host: empty label",
        ),
        (
            "CERTFILE /etc/passwd\n",
            &["-qf"],
            78,
            "@line 6: CERTFILE /etc/passwd is the system's password file, not a file of a \
             certificate; correct the line",
        ),
        (
            "",
            &["-bs", "-O", "Timeout.bogus=1m"],
            70,
            "settimeout: invalid timeout bogus",
        ),
        (
            "",
            &["-qf", "-O", "MaxConnections=0"],
            64,
            "Invalid value for MaxConnections: 0",
        ),
    ];
    for (conf, args, code, want) in runs {
        let env = Env::with_config(conf);
        let r = run_refused(&env, &env.link("sendmail"), args);
        let want = match want.strip_prefix('@') {
            Some(rest) => format!("{}: {rest}\n", env.conf.display()),
            None => format!("{want}\n"),
        };
        // `-bs` says a fault of its configuration or of a file it cannot open as a
        // reply, as sendmail's `-bs` does before its greeting (recorded from 8.17:
        // `451 4.0.0 cannot open /nonexistent-dir/x.log: No such file or directory`,
        // exit 73). A command line refused as it is read (64, 70) is said as text.
        let want = if args[0] == "-bs" && !matches!(code, 64 | 70) {
            format!("451 4.0.0 {}\r\n", want.trim_end())
        } else {
            want
        };
        r.code(*code).stdout_is(&want).stderr_is("");
        assert!(!r.stdout.contains("220"), "{args:?}: a greeting");
        nothing_queued(&env, &format!("{args:?}"));
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{args:?}: something listens on {port}"
        );
    }
}

/// A sample of good values of every kind, on the command line and in the config file,
/// taken and delivered at Postfix's smtp-sink in each delivery mode.
#[test]
fn good_values_of_every_kind_deliver() {
    let env0 = Env::new();
    let Some(sink) = Sink::start(&env0.dir, &[]) else {
        return;
    };
    let table = env0.dir.join("relays");
    fs::write(&table, format!("example.org [127.0.0.1]:{}\n", sink.port)).unwrap();
    let ca = env0.dir.join("ca.pem");
    fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let auth = env0.dir.join("auth.conf");
    fs::write(&auth, "bob|elsewhere.example:pw\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&auth, fs::Permissions::from_mode(0o600)).unwrap();
    let config = format!(
        "RELAYTABLE {}\nAUTHPATH {}\nO CACertFile={}\nO Timeout.connect=30s\n\
         O Timeout.queuereturn=5d\nO QueueRetryMin=1m\nO MaxConnections=2\nO MXPort=2525\n\
         O MaxMessageSize=1000000\nO IgnoreDots=false\nO PrivacyOptions=goaway,nobodyreturn\n\
         O TrustedNetworks=127.0.0.1/32\nO DaemonPortOptions=Port=2525,Addr=127.0.0.1\n\
         O RelayDomains=partner.example\nO DefaultUser=nobody\nO PidFile={}\n\
         O Timeout.resolver.retry=1\n",
        table.display(),
        auth.display(),
        ca.display(),
        env0.dir.join("pid").display(),
    );
    let cmdline: &[&str] = &[
        "-O",
        "Timeout.datafinal=1m",
        "-O",
        "MaxHopCount=30",
        "-O",
        "IgnoreDots=yes",
        "-O",
        "SmarthostSplit=1",
        "-O",
        "PrivacyOptions=noreceipts",
        "-O",
        "MaxRecipientsPerMessage=10",
        "-O",
        "QueueSortOrder=Time",
        "-O",
        "MaxQueueRunSize=5",
        "-o",
        "h40",
    ];
    for (i, mode) in MODES.into_iter().enumerate() {
        let env = Env::with_config(&config);
        let log = env.dir.join("x.log");
        let mut args = vec!["-X", log.to_str().unwrap(), mode];
        args.extend_from_slice(cmdline);
        let rcpt = format!("good{i}@example.org");
        args.push(&rcpt);
        env.sendmail(&args, MSG).code(0).stdout_is("").stderr_is("");
        let sent = i + 1;
        if mode == "-odq" {
            assert_eq!(env.entries().len(), 1);
            let mut run = vec!["-X", log.to_str().unwrap(), "-qf"];
            run.extend_from_slice(cmdline);
            env.sendmail(&run, b"").code(0).stdout_is("");
        }
        wait_until_or(
            Duration::from_secs(20),
            &format!("{mode}: the message at smtp-sink"),
            || format!("{:?}", env.json()),
            || sink.dumps().len() >= sent,
        );
        env.wait_until_empty(Duration::from_secs(20));
        let x = fs::read_to_string(&log).unwrap_or_default();
        assert!(
            x.contains(&format!("RCPT To:<{rcpt}>")),
            "{mode}: -X log {x}"
        );
    }
    let dumps = sink.dumps();
    for i in 0..3 {
        assert!(
            dumps
                .iter()
                .any(|d| d.contains(&format!("good{i}@example.org"))),
            "{dumps:?}"
        );
    }
}

/// After the commit point nothing refuses what was accepted; what can still fail (here
/// the deliverer cannot be started) leaves the message queued, is said once, and the
/// exit status is the submission's: 0, or 67 for a recipient refused at submission.
#[test]
fn a_deliverer_that_cannot_start_leaves_the_message_queued() {
    let installed = Path::new("/usr/libexec/rsendmail/rsendmail-deliver");
    if installed.exists() {
        eprintln!("skipped: {} exists", installed.display());
        return;
    }
    let env = Env::new();
    // A copy of rsendmail alone: no deliverer beside it, none installed.
    let lone = env.dir.join("lone");
    fs::create_dir_all(&lone).unwrap();
    let bin = lone.join("sendmail");
    crate::harness::copy_executable(&crate::harness::bin(), &bin);
    let said = "cannot execute /usr/libexec/rsendmail/rsendmail-deliver: No such file or \
                directory; the message stays queued\n";
    let conf = env.conf.to_str().unwrap();
    env.run_raw(&bin, &["-C", conf, "-odi", "bob@example.org"], MSG)
        .code(0)
        .stdout_is(said);
    assert_eq!(env.entries().len(), 1);
    env.run_raw(
        &bin,
        &[
            "-C",
            conf,
            "-odi",
            "-oeq",
            "nosuchuser",
            "carol@example.org",
        ],
        MSG,
    )
    .code(67)
    .stdout_is(said);
    assert_eq!(env.entries().len(), 2);
}

/// The deliverer of one queued entry that fails to set up (here the relay table went
/// away after the submission's check) leaves it queued, says so once, exits with the
/// submission's status.
#[test]
fn a_deliverer_that_cannot_set_up_leaves_the_message_queued() {
    let scratch = Env::new();
    let table = scratch.dir.join("relays");
    fs::write(&table, "example.org [127.0.0.1]:9\n").unwrap();
    let env = Env::with_config(&format!("RELAYTABLE {}\n", table.display()));
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let entry = env.entries()[0].clone();
    let id = entry.file_name().unwrap().to_str().unwrap()[2..].to_string();
    fs::remove_file(&table).unwrap();
    let deliver = Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver"));
    let conf = env.conf.to_str().unwrap();
    for (status, code) in [("0", 0), ("67", 67)] {
        let r = env.run_raw(
            deliver,
            &[
                "--entry",
                &id,
                "--status",
                status,
                "--",
                "sendmail",
                "-C",
                conf,
                "-odi",
                "bob@example.org",
            ],
            b"",
        );
        r.code(code).stdout_is(&format!(
            "cannot open RELAYTABLE {}: No such file or directory; the message stays queued\n",
            table.display()
        ));
        assert_eq!(env.entries(), std::slice::from_ref(&entry));
    }
}

/// Every text file rsendmail reads names a byte order mark at its start, one inside a
/// line and a NUL with its file and line, through the real binary: the config (`-C`)
/// file, the MAILNAME file, RELAYTABLE, AUTHPATH, CERTFILE and CACertFile refuse the
/// submission (78, nothing queued); `newaliases` reports the aliases file's line (70);
/// an `:include:` file is not used (`-bv`, 64). A file the config names that is missing
/// is named with the config's line (6, where the harness's file has the extra text).
#[test]
fn every_file_names_a_byte_order_mark_a_nul_and_a_missing_file() {
    use std::os::unix::fs::PermissionsExt;
    const BOM: &str = "\u{feff}";
    let begins = "line 1: the file begins with a byte order mark (U+FEFF); save it without one";
    let nul = "line 2: a NUL octet; the file is not text";
    let inside = "line 2: an invisible byte order mark (U+FEFF) inside the line; remove it";
    let cert = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
    let key = "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n";
    // The config file itself.
    for (damage, want) in [
        (
            &(|t: &str| format!("{BOM}{t}")) as &dyn Fn(&str) -> String,
            begins,
        ),
        (&|t: &str| t.replacen('\n', "\n\0", 1), nul),
        (
            &|t: &str| t.replacen('\n', &format!("\n#{BOM}\n"), 1),
            inside,
        ),
    ] {
        let env = Env::new();
        let text = fs::read_to_string(&env.conf).unwrap();
        fs::write(&env.conf, damage(&text)).unwrap();
        let want = format!("{}: {want}\n", env.conf.display());
        run_refused(&env, &env.link("sendmail"), &["-odq", "bob@example.org"])
            .code(78)
            .stdout_is(&want);
        nothing_queued(&env, &want);
    }
    // The files the config names: (keyword line, good text, mode, what a missing one
    // is refused as).
    let named: [(&str, String, u32, &str); 5] = [
        (
            "MAILNAME {f}",
            "mail.example\n".into(),
            0o644,
            "cannot open MAILNAME",
        ),
        (
            "RELAYTABLE {f}",
            "example.org [127.0.0.1]:2525\n# the relays\n".into(),
            0o644,
            "cannot open RELAYTABLE",
        ),
        (
            "AUTHPATH {f}",
            "bob|smtp.example:pw\n# passwords\n".into(),
            0o600,
            "cannot read AUTHPATH",
        ),
        (
            "CERTFILE {f}",
            format!("{key}{cert}"),
            0o644,
            "cannot open CERTFILE",
        ),
        (
            "O CACertFile={f}",
            cert.into(),
            0o644,
            "cannot open CACertFile",
        ),
    ];
    for (line, good, mode, missing_is) in named {
        for (text, want) in [
            (format!("{BOM}{good}"), begins),
            (good.replacen('\n', "\n\0", 1), nul),
            (good.replacen('\n', &format!("\n{BOM}"), 1), inside),
            (good.clone(), ""),
        ] {
            let env = Env::new();
            let f = env.dir.join("file");
            fs::write(&f, &text).unwrap();
            fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
            env.add_config(&format!("{}\n", line.replace("{f}", f.to_str().unwrap())));
            // Only the MAILNAME file's first line is read.
            if want.is_empty() || (line.starts_with("MAILNAME") && want != begins) {
                env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
                continue;
            }
            let run = run_refused(&env, &env.link("sendmail"), &["-odq", "bob@example.org"]);
            let want = format!("{}: {want}\n", f.display());
            run.code(78).stdout_is(&want);
            nothing_queued(&env, &want);
        }
        let env = Env::new();
        let missing = env.dir.join("missing");
        let config_line = line.replace("{f}", missing.to_str().unwrap());
        env.add_config(&format!("{config_line}\n"));
        // The harness's file has eight lines; the added one is the ninth.
        let want = format!(
            "{}: line 9: {missing_is} {}: No such file or directory\n",
            env.conf.display(),
            missing.display()
        );
        run_refused(&env, &env.link("sendmail"), &["-odq", "bob@example.org"])
            .code(78)
            .stdout_is(&want);
    }
    // The aliases file and an :include: file it names.
    for (text, want) in [
        (
            format!("{BOM}postmaster: root\nlst: :include:INC\n"),
            begins,
        ),
        (
            "postmaster: root\nb\0ob: root\nlst: :include:INC\n".into(),
            nul,
        ),
        (
            format!("postmaster: root\nbob: {BOM}root\nlst: :include:INC\n"),
            inside,
        ),
    ] {
        let env = Env::new();
        let aliases = env.dir.join("aliases");
        let members = env.dir.join("members");
        fs::write(&aliases, text.replace("INC", members.to_str().unwrap())).unwrap();
        fs::write(&members, "m1@example.org\n").unwrap();
        let oa = format!("-oA{}", aliases.display());
        let run = run_refused(&env, &env.link("sendmail"), &["-bi", &oa]);
        run.code(70);
        assert!(
            run.stdout
                .starts_with(&format!("{}: {want}\n", aliases.display())),
            "{}",
            run.stdout
        );
        // A NUL octet: no line of the file is used, every local name waits.
        if want == nul {
            let run = run_refused(&env, &env.link("sendmail"), &["-bv", &oa, "lst"]);
            run.code(75).stdout_is(&format!(
                "lst... alias not read: {}: {nul}\n",
                aliases.display()
            ));
            continue;
        }
        // Otherwise the other aliases are read: lst is one of them.
        for (list, want) in [
            (format!("{BOM}m1@example.org\n"), begins),
            ("m1@example.org\nm2\0@example.org\n".into(), nul),
            (format!("m1@example.org\nm2@{BOM}example.org\n"), inside),
        ] {
            fs::write(&members, list).unwrap();
            let run = run_refused(&env, &env.link("sendmail"), &["-bv", &oa, "lst"]);
            run.code(64).stdout_is(&format!(
                ":include:{0}... Cannot open {0}: {want}\n",
                members.display()
            ));
        }
    }
}

/// A MAILNAME file whose first line is no mail name: the error quotes that line only
/// when everyone may read the file, never a line of one that is root's alone
/// (`MAILNAME /etc/shadow` named by mistake).
#[test]
fn a_mailname_error_quotes_no_text_of_a_file_not_everyone_may_read() {
    let env = Env::new();
    let secret = env.dir.join("secret");
    fs::write(&secret, "root:$6$s3cret-hash:19000:0:99999:7:::\n").unwrap();
    env.add_config(&format!("MAILNAME {}\n", secret.display()));
    for (mode, shown) in [(0o644, true), (0o600, false)] {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&secret, fs::Permissions::from_mode(mode)).unwrap();
        let r = env.sendmail(&["-bv", "bob@example.org"], b"");
        r.code(78);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(
            all.contains(&format!("{}: line 1: ", secret.display())),
            "{mode:o}: {all}"
        );
        assert_eq!(all.contains("s3cret-hash"), shown, "{mode:o}: {all}");
    }
}
