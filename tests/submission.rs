//! Submission from the command line: delivery modes, options, intake, headers, errors.

use crate::harness::{Env, MSG};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

fn mode_of(env: &Env) -> String {
    let j = env.json();
    assert_eq!(j.len(), 1, "{j:?}");
    let at = j[0].find("\"delivery_mode\":\"").expect("mode field") + 17;
    j[0][at..at + 1].to_string()
}

#[test]
fn delivery_mode_spellings() {
    let cases: &[(&[&str], &str)] = &[
        (&["-odq"], "q"),
        (&["-odqueueonly"], "q"),
        (&["-odd"], "d"),
        (&["-oddeferred"], "d"),
        (&["-odb"], "b"),
        (&["-odi"], "i"),
        (&["-od"], "i"),
        (&["-o", "dq"], "q"),
        (&["-O", "DeliveryMode=q"], "q"),
        (&["-ODeliveryMode=d"], "d"),
        (&["-O", "deliverymode = q"], "q"),
        (&["-O", "DELIVERYMODE=d"], "d"),
        (&["-O", "DeliveryMode="], "i"),
        (&["-O", "DeliveryMode"], "i"),
        (&["-odq", "-O", "DeliveryMode=d"], "d"),
        (&["-O", "DeliveryMode=d", "-odq"], "q"),
        (&["-odd", "-odq"], "q"),
        (&["-v", "-odq"], "i"),
        (&["-odq", "-v"], "i"),
        (&[], "b"),
    ];
    for (args, want) in cases {
        let env = Env::new();
        let mut a = args.to_vec();
        a.push("bob@example.org");
        let r = env.sendmail(&a, MSG);
        r.code(0);
        if args.contains(&"-v") {
            // -v delivers at once and says why the message stays queued (no
            // SMARTHOST, and no name server answers for example.org here).
            assert!(
                r.stdout.starts_with("bob@example.org... Deferred: "),
                "args {args:?}: {}",
                r.stdout
            );
        } else {
            r.stdout_is("");
            r.stderr_is("");
        }
        // No SMARTHOST: the delivering modes leave the message queued with a reason.
        assert_eq!(mode_of(&env), *want, "args {args:?}");
    }
}

#[test]
fn config_mode_and_command_line_precedence() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("DEFER\n", &[], "d"),
        ("DEFER\n", &["-odq"], "q"),
        ("O DeliveryMode=q\n", &[], "q"),
        ("Odd\n", &[], "d"),
        ("O DeliveryMode=q\nDEFER\n", &[], "d"),
        ("DEFER\nO DeliveryMode=b\n", &[], "b"),
        ("DEFER\n", &["-v"], "i"),
    ];
    for (conf, args, want) in cases {
        let env = Env::with_config(conf);
        let mut a = args.to_vec();
        a.push("bob@example.org");
        env.sendmail(&a, MSG).code(0);
        assert_eq!(mode_of(&env), *want, "config {conf:?} args {args:?}");
    }
}

/// A bad mode ends the program before stdin is read: stdin is a pipe nobody ever writes
/// to or closes, so a program that read it would hang.
#[test]
fn bad_mode_exits_before_reading_stdin() {
    let cases: &[(&[&str], &str)] = &[
        (&["-odQ"], "Q"),
        (&["-odx"], "x"),
        (&["-O", "DeliveryMode=Z"], "Z"),
        (&["-odQ", "-odq"], "Q"),
        (&["-odq", "-odB"], "B"),
        (&["-oi", "-odX", "-t"], "X"),
    ];
    for (args, c) in cases {
        let env = Env::new();
        let mut full = args.to_vec();
        full.push("bob@example.org");
        crate::options::run_refused(&env, &env.link("sendmail"), &full)
            .code(64)
            .stdout_is(&format!("Unknown delivery mode {c}\n"))
            .stderr_is("");
        assert!(env.entries().is_empty(), "{args:?}");
    }
}

#[test]
fn config_errors_name_file_and_line() {
    let cases: &[(&str, i32, &str)] = &[
        ("O DeliveryMode=x\n", 64, "line 6: Unknown delivery mode x"),
        ("STARTLS\n", 78, "line 6: unknown keyword STARTLS"),
        ("SMARTHOST\n", 78, "line 6: SMARTHOST requires a value"),
        ("NULLCLIENT yes\n", 78, "line 6: NULLCLIENT takes no value"),
        ("NULLCLIENT\n", 78, "line 6: NULLCLIENT requires SMARTHOST"),
        (
            "O NoSuchOption=1\n",
            78,
            "line 6: readcf: unknown option name NoSuchOption",
        ),
    ];
    for (conf, code, msg) in cases {
        let env = Env::with_config(conf);
        let r = env.sendmail(&["bob@example.org"], MSG);
        r.code(*code).stderr_is("");
        let want = format!("{}: {msg}", env.conf.display());
        assert!(r.stdout.starts_with(&want), "{conf:?}: {:?}", r.stdout);
        assert!(env.entries().is_empty());
    }
    let env = Env::new();
    env.run_raw(
        &env.link("sendmail"),
        &[
            "-C",
            "/nonexistent/rsendmail.conf",
            "-odq",
            "bob@example.org",
        ],
        MSG,
    )
    .code(78)
    .stdout_is("cannot open /nonexistent/rsendmail.conf: No such file or directory\n");
}

/// An empty auth.conf (mode 0600) named by a later AUTHPATH line.
fn with_auth_file(env: &Env) {
    use std::os::unix::fs::PermissionsExt;
    let p = env.dir.join("auth.conf");
    std::fs::write(&p, "").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.add_config(&format!("AUTHPATH {}\n", p.display()));
}

/// When the config's ALIASES (the NetBSD example's `/etc/mail/aliases`) lies in a
/// directory that is not root's alone on this host (`/etc/mail` is sendmail's `smmta`'s
/// where sendmail is installed), root refuses it by the rule every file the config names
/// follows; the test then names an aliases file of its own after it, so that what is
/// tested is the rest of the example, on any host.
fn aliases_of_this_host(env: &Env, text: &str) {
    use std::os::unix::fs::MetadataExt;
    let Some(p) = text
        .lines()
        .find_map(|l| l.strip_prefix("ALIASES "))
        .map(|p| std::path::Path::new(p.trim()).to_path_buf())
    else {
        return;
    };
    let root_alone = |d: &std::path::Path| {
        std::fs::metadata(d).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o022 == 0)
    };
    if p.ancestors().skip(1).all(root_alone) {
        return;
    }
    let own = env.dir.join("aliases");
    std::fs::write(&own, "").unwrap();
    env.add_config(&format!("ALIASES {}\n", own.display()));
}

#[test]
fn dma_configs_are_read_unchanged() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    for f in ["debian-dma.conf", "netbsd-dma.conf"] {
        let text = std::fs::read_to_string(format!("{fixtures}{f}")).unwrap();
        let env = Env::with_config(&text);
        aliases_of_this_host(&env, &text);
        if f == "netbsd-dma.conf" {
            // Its AUTHPATH names a file this machine does not have: refused before the
            // message is taken (it could never be delivered with it).
            env.sendmail(&["-odq", "bob@example.org"], MSG)
                .code(78)
                .stdout_is(&format!(
                    "{}: line 9: cannot read AUTHPATH /usr/pkg/etc/dma/auth.conf: No such file or directory\n",
                    env.conf.display()
                ));
            assert!(env.entries().is_empty());
            with_auth_file(&env);
        }
        if f == "debian-dma.conf" && !std::path::Path::new("/etc/mailname").exists() {
            // Its MAILNAME names /etc/mailname, which this machine does not have: refused
            // before the message is taken, rather than a name guessed from the host's.
            // Named with the configuration line, as every other config problem is.
            let run = env.sendmail(&["-odq", "bob@example.org"], MSG);
            run.code(78);
            assert!(
                run.stdout
                    .starts_with(&format!("{}: line ", env.conf.display()))
                    && run.stdout.ends_with(
                        ": cannot open MAILNAME /etc/mailname: No such file or directory\n"
                    ),
                "{}",
                run.stdout
            );
            assert!(env.entries().is_empty());
            let p = env.dir.join("mailname");
            std::fs::write(&p, "mail.example.org\n").unwrap();
            env.add_config(&format!("MAILNAME {}\n", p.display()));
        }
        env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
        assert_eq!(env.entries().len(), 1, "{f}");
    }
    let env = Env::with_config(include_str!("fixtures/netbsd-dma.conf"));
    aliases_of_this_host(&env, include_str!("fixtures/netbsd-dma.conf"));
    with_auth_file(&env);
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    // MAILNAME and MASQUERADE from the NetBSD example shape the stored message.
    let m = env.only_message();
    assert!(m.contains("by sysbuild.vm.stupin.su "), "{m}");
    assert!(m.contains("From: "), "{m}");
    assert!(
        m.contains("<sysbuild@stupin.su>") || m.contains("From: sysbuild@stupin.su"),
        "{m}"
    );
}

/// `--version` and `--help` answer on stdout and exit 0 without a config file, a spool
/// or stdin, whatever the program is called; sendmail's flags around them are unchanged.
#[test]
fn version_and_help_answer() {
    let env = Env::new();
    let version = format!("rsendmail {}\n", env!("CARGO_PKG_VERSION"));
    for name in ["sendmail", "mailq", "newaliases"] {
        // No -C: the config (which might not exist) is not read.
        let r = env.run_raw(&env.link(name), &["--version"], b"");
        r.code(0).stdout_is(&version).stderr_is("");
        let r = env.run_raw(&env.link(name), &["--help"], b"");
        r.code(0).stderr_is("");
        assert!(r.stdout.starts_with("Usage: sendmail "), "{}", r.stdout);
        assert!(r.stdout.contains("--version"), "{}", r.stdout);
    }
    env.sendmail(&["-v", "-odq", "--version"], MSG)
        .code(0)
        .stdout_is(&version);
    assert!(env.entries().is_empty(), "{}", env.listing());
    // After `--` it is a recipient, queued as any other.
    env.sendmail(&["-odq", "--", "--help@example.org"], MSG)
        .code(0)
        .stdout_is("");
    assert!(env.only_entry().contains("rcpt --help@example.org"));
    // Any other long option is still getopt's error.
    env.sendmail(&["--verbose", "bob@example.org"], MSG)
        .code(64)
        .stdout_is("")
        .stderr_is(&format!(
            "{}: illegal option -- -\n",
            env.link("sendmail").display()
        ));
}

/// A usage error that echoes an argument holding a control character (BS, SOH, DEL,
/// ESC) shows each as its octets in octal on the stream sendmail uses, with sendmail's
/// status: never dropped, never raw (sendmail 8.17 echoes the octet as it is, which a
/// terminal hides or acts on: compat-tests/differences/opt-ctl-*). Nothing is queued.
#[test]
fn control_characters_in_option_errors_are_shown_in_octal() {
    let env = Env::new();
    let sendmail = env.link("sendmail").display().to_string();
    for (c, octal) in [
        ('\u{8}', "\\010"),
        ('\u{1}', "\\001"),
        ('\u{7f}', "\\177"),
        ('\u{1b}', "\\033"),
    ] {
        env.sendmail(&[&format!("-{c}"), "bob@example.org"], MSG)
            .code(64)
            .stdout_is("")
            .stderr_is(&format!("{sendmail}: illegal option -- {octal}\n"));
        for (args, code, said) in [
            (
                vec![format!("-od{c}")],
                64,
                format!("Unknown delivery mode {octal}\n"),
            ),
            (
                vec![format!("-b{c}")],
                64,
                format!("Invalid operation mode {octal}\n"),
            ),
            (
                vec!["-O".to_string(), format!("{c}x=1")],
                70,
                format!("readcf: unknown option name {octal}x\n"),
            ),
            (
                vec!["-O".to_string(), format!("MaxHopCount={c}")],
                64,
                format!("Invalid value for MaxHopCount: {octal}\n"),
            ),
        ] {
            let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
            args.push("bob@example.org");
            env.sendmail(&args, MSG)
                .code(code)
                .stdout_is(&said)
                .stderr_is("");
        }
    }
    assert!(env.entries().is_empty(), "{}", env.listing());
}

#[test]
fn option_errors_and_where_they_go() {
    let env = Env::new();
    env.sendmail(&["-Z", "bob@example.org"], MSG)
        .code(64)
        .stdout_is("")
        .stderr_is(&format!(
            "{}: illegal option -- Z\n",
            env.link("sendmail").display()
        ));
    env.sendmail(&["-O", "Foo=bar", "bob@example.org"], MSG)
        .code(70)
        .stdout_is("readcf: unknown option name Foo\n")
        .stderr_is("");
    env.sendmail(&["-O", "Deliv=q", "bob@example.org"], MSG)
        .code(70)
        .stdout_is("readcf: ambiguous option name Deliv (matches DeliveryMode and DeliverByMin)\n");
    let usage_errors: &[(&[&str], &str)] = &[
        (&["-bx"], "Invalid operation mode x\n"),
        (&["-N", "bogus", "b@x"], "Invalid -N argument\n"),
        (&["-R", "x", "b@x"], "Invalid -R value\n"),
        (&["-V", "a b", "b@x"], "Invalid syntax in -V flag\n"),
        (&["-h", "abc", "b@x"], "Bad hop count (abc)\n"),
    ];
    for (args, msg) in usage_errors {
        env.sendmail(args, MSG)
            .code(64)
            .stdout_is(msg)
            .stderr_is("");
    }
    assert!(env.entries().is_empty());
    // Unknown -o letters are ignored; a unique abbreviation is announced and works.
    env.sendmail(&["-oZzz", "-odq", "b@x"], MSG)
        .code(0)
        .stdout_is("");
    env.sendmail(&["-O", "Ve=false", "-odq", "b@x"], MSG)
        .code(0)
        .stdout_is("Option Ve used as abbreviation for Verbose\n");
    assert_eq!(env.entries().len(), 2);
}

#[test]
fn unsupported_operations_say_so() {
    let env = Env::new();
    // Each names what to use instead.
    for (op, instead) in [
        ("-bt", "rewriting rule sets to test; `-bv ADDRESS`"),
        ("-bh", "no host status directory; `mailq`"),
        ("-bH", "no host status directory; `mailq`"),
        ("-bP", "`mailq --json`"),
        ("-ba", "use `-bs`"),
    ] {
        let r = env.sendmail(&[op], b"");
        r.code(64);
        assert!(
            r.stdout.contains(&format!(
                "Operation mode {op} is not supported by rsendmail: "
            )) && r.stdout.contains(instead),
            "{op}: {}",
            r.stdout
        );
        assert!(env.entries().is_empty(), "{op}");
    }
}

#[test]
fn recipients_required_and_t_rules() {
    let env = Env::new();
    env.sendmail(&["-odq"], MSG)
        .code(64)
        .stdout_is("Recipient names must be specified\n");
    env.sendmail(&["-odq", "-t"], MSG)
        .code(0)
        .stdout_is("No recipient addresses found in header\n");
    assert!(env.entries().is_empty());
    assert!(
        std::fs::read_dir(env.spool.join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "the dropped message left a temporary file"
    );

    let env = Env::new();
    env.sendmail(
        &["-odq", "-t", "frank@example.org"],
        b"To: Bob <bob@example.org>, carol@example.net\nCc: (c) dave@example.com\nBcc: eve@example.org\nSubject: t\n\nhello\n",
    )
    .code(0);
    let j = env.json();
    let order: Vec<&str> = j[0]
        .split("\"address\":\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "frank@example.org",
            "carol@example.net",
            "Bob <bob@example.org>",
            "(c) dave@example.com",
            "eve@example.org"
        ]
    );
    let entry = env.only_entry();
    assert!(entry.contains("rcpt bob@example.org "), "{entry}");
    let m = env.only_message();
    // No Bcc field at all, as in the copies sendmail sends (compat deliver-t-headers).
    assert!(!m.contains("\nBcc:"), "Bcc removed: {m}");
    assert!(!m.contains("eve@example.org"), "Bcc address leaked: {m}");
}

/// Bcc is never passed on, with or without -t. As in sendmail (compat
/// `field-resent-bcc-no-t`), the field goes when the message has a To:, Cc: or
/// Apparently-To:, and is kept empty when it has none of them.
#[test]
fn bcc_removed_without_t() {
    let env = Env::new();
    env.sendmail(
        &["-odq", "bob@example.org"],
        b"To: bob@example.org\nBcc: secret@example.org\nSubject: x\n\nb\n",
    )
    .code(0);
    let m = env.only_message();
    assert!(!m.contains("secret@example.org"), "{m}");
    assert!(!m.contains("\nBcc:"), "{m}");
    fs::remove_file(&env.entries()[0]).unwrap();
    env.sendmail(
        &["-odq", "bob@example.org"],
        b"Bcc: secret@example.org\nSubject: x\n\nb\n",
    )
    .code(0);
    let m = env.only_message();
    assert!(!m.contains("secret@example.org"), "{m}");
    assert!(m.contains("\nBcc:\nSubject: x\n"), "{m}");
}

#[test]
fn dot_rules_end_to_end() {
    let body = b"Subject: d\n\nline1\n..dots\n.\nafter\n";
    let cases: &[(&[&str], &str)] = &[
        (&[], "line1\n.dots\n"),
        (&["-i"], "line1\n..dots\n.\nafter\n"),
        (&["-oi"], "line1\n..dots\n.\nafter\n"),
        (&["-O", "IgnoreDots=true"], "line1\n..dots\n.\nafter\n"),
    ];
    for (args, want) in cases {
        let env = Env::new();
        let mut a = vec!["-odq"];
        a.extend_from_slice(args);
        a.push("bob@example.org");
        env.sendmail(&a, body).code(0);
        let m = env.only_message();
        let b = &m[m.find("\n\n").unwrap() + 2..];
        assert_eq!(b, *want, "{args:?}");
    }
    // CRLF input is stored with LF; a lone dot with CRLF ends the message.
    let env = Env::new();
    env.sendmail(
        &["-odq", "bob@example.org"],
        b"Subject: c\r\n\r\na\r\n.\r\nb\r\n",
    )
    .code(0);
    let m = env.only_message();
    assert!(m.ends_with("\n\na\n"), "{m:?}");
    assert!(!m.contains('\r'));
}

/// `-p protocol[:host]` names the protocol and the host in the `Received:` field as
/// sendmail's does (recorded: `p-esmtp-host`, `p-foo`, `p-clean`), each kept to the octets sendmail's
/// `cleanstrcpy` keeps, so that no value can break or forge the field.
#[test]
fn p_names_protocol_and_host_in_received() {
    let login = crate::options::login_name();
    for (p, origin, with) in [
        (
            "esmtp:client.example",
            format!("from client.example ({login}@localhost)"),
            " with esmtp",
        ),
        ("foo", format!("(from {login}@localhost)"), " with foo"),
        (
            "e s(m)t\\x:cl ient(x)\"y",
            format!("from clientxy ({login}@localhost)"),
            " with esmtx",
        ),
        (":", format!("(from {login}@localhost)"), ""),
    ] {
        let env = Env::new();
        env.sendmail(
            &["-odq", "-p", p, "bob@example.org"],
            b"Subject: hi\n\nbody\n",
        )
        .code(0);
        let m = env.only_message();
        let id = env.only_id();
        assert!(
            m.starts_with(&format!(
                "Received: {origin}\n\tby test.example (rsendmail {}){with} id {id}\n\tfor bob@example.org; ",
                env!("CARGO_PKG_VERSION")
            )),
            "{p:?}: {m}"
        );
    }
}

#[test]
fn headers_added_in_sendmail_order() {
    let env = Env::new();
    env.sendmail(
        &["-odq", "-F", "Joe Q", "bob@example.org"],
        b"Subject: hi\n\nbody\n",
    )
    .code(0);
    let m = env.only_message();
    let names: Vec<&str> = m
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with('\t'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Received", "Date", "From", "Message-Id", "Subject"],
        "{m}"
    );
    let id = env.only_id();
    let login = crate::options::login_name();
    assert!(
        m.starts_with(&format!(
            "Received: (from {login}@localhost)\n\tby test.example (rsendmail {}) id {id}\n\tfor bob@example.org; ",
            env!("CARGO_PKG_VERSION")
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!("\nFrom: Joe Q <{login}@test.example>\n")),
        "{m}"
    );
    assert!(m.contains(&format!(".{id}@test.example>\n")), "{m}");

    // Several recipients: no "for" clause; the user's own headers are kept.
    let env = Env::new();
    env.sendmail(
        &[
            "-odq",
            "-f",
            "other@example.com",
            "a@x.example",
            "b@y.example",
        ],
        b"Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <abc@def>\n\nbody\n",
    )
    .code(0);
    let m = env.only_message();
    assert!(!m.contains("\tfor "), "{m}");
    assert!(m.contains(" id "), "{m}");
    let names: Vec<&str> = m
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with('\t'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(names, ["Received", "From", "Date", "Message-ID"], "{m}");
    assert!(m.contains("\nFrom: other@example.com\n"), "{m}");
}

/// The `From:` rsendmail adds, as sendmail builds it (compat-tests `F-*`, `from-*`): a
/// `-f` address qualified like the message's own fields, `-F ''` falling back to the
/// password entry's name, a `-F` that is already a phrase used as given, any other one
/// quoted.
#[test]
fn from_field_as_sendmail_builds_it() {
    let from = |args: &[&str], stdin: &[u8]| {
        let env = Env::new();
        let mut a = vec!["-odq"];
        a.extend_from_slice(args);
        a.push("bob@example.org");
        env.sendmail(&a, stdin).code(0);
        let m = env.only_message();
        m.lines()
            .find(|l| l.starts_with("From:"))
            .unwrap_or("")
            .to_string()
    };
    let msg = b"Subject: s\n\nbody\n";
    assert_eq!(from(&["-f", "someone"], msg), "From: someone@test.example");
    assert_eq!(
        from(&["-f", "<someone>"], msg),
        "From: someone@test.example"
    );
    assert_eq!(from(&["-f", "a@example.com"], msg), "From: a@example.com");
    assert_eq!(
        from(&[], b"From: someone\nSubject: s\n\nbody\n"),
        "From: someone@test.example"
    );
    // `-F ''` names no one: as without -F (the password entry's name).
    assert_eq!(from(&["-F", ""], msg), from(&[], msg));
    let login = crate::options::login_name();
    for (name, shown) in [
        ("John \"Q\" Public", "John \"Q\" Public"),
        ("John (Jack) Public", "John (Jack) Public"),
        ("\"John Public\"", "\"John Public\""),
        ("J\u{f6}rg M\u{fc}ller", "J\u{f6}rg M\u{fc}ller"),
        ("Joe Q. Public", "\"Joe Q. Public\""),
        ("Public, John", "\"Public, John\""),
        ("John <x>", "\"John <x>\""),
        ("John \"Q Public", "\"John \\\"Q Public\""),
        ("a\\b", "\"a\\\\b\""),
    ] {
        assert_eq!(
            from(&["-F", name], msg),
            format!("From: {shown} <{login}@test.example>"),
            "{name}"
        );
    }
}

/// The `for` clause of the added `Received:` names the command line's one recipient only
/// when it is the message's only one: never a blind copy to the `-t` recipients
/// (compat-tests `received-for-*`).
#[test]
fn received_for_names_the_only_recipient() {
    let received = |args: &[&str], stdin: &[u8]| {
        let env = Env::new();
        let mut a = vec!["-odq"];
        a.extend_from_slice(args);
        env.sendmail(&a, stdin).code(0);
        let m = env.only_message();
        m.split("\nDate:").next().unwrap_or("").to_string()
    };
    let to_alice = b"To: alice@example.org\nSubject: s\n\nbody\n";
    let plain = b"Subject: s\n\nbody\n";
    assert!(received(&["bob@example.org"], plain).contains("\tfor bob@example.org;"));
    assert!(!received(&["bob@example.org", "carol@example.org"], plain).contains("for "));
    // -t recipients come too late to be named (as in sendmail) ...
    assert!(!received(&["-t"], to_alice).contains("for "));
    // ... and a command-line one is not shown to them.
    assert!(!received(&["-t", "bob@example.org"], to_alice).contains("for "));
    // The same address from both: one recipient.
    assert!(received(&["-t", "alice@example.org"], to_alice).contains("\tfor alice@example.org;"));
    // A domain with U-labels is named with its A-labels; a recipient with a non-ASCII
    // local part has no form a server without SMTPUTF8 takes, and is not named.
    let r = received(&["u@Bücher.example"], plain);
    assert!(r.contains("\tfor u@xn--bcher-kva.example;"), "{r}");
    assert!(r.is_ascii(), "{r}");
    let r = received(&["jörg@bücher.example"], plain);
    assert!(!r.contains("for "), "{r}");
    assert!(r.is_ascii(), "{r}");
}

/// Over SMTP (`-bs`) the `Received:` rsendmail adds names its one
/// recipient with A-labels, a recipient with a non-ASCII local part not at all, and the
/// `From:` it adds for a message without one gives the sender's domain as A-labels: no
/// line of its own is raw UTF-8.
#[test]
fn smtp_received_and_from_write_a_u_label_domain_as_a_labels() {
    for (rcpt, want_for) in [
        ("u@Übung.example", Some("\tfor <u@xn--bung-zra.example>; ")),
        ("jörg@übung.example", None),
    ] {
        // The sender's domain is this host's (a U-label MAILNAME): no DNS is asked.
        let env = Env::with_config("MAILNAME bücher.example\n");
        let dialogue = format!(
            "EHLO client.example\r\nMAIL FROM:<s@Bücher.example>\r\n\
             RCPT TO:<{rcpt}>\r\nDATA\r\nSubject: m\r\n\r\nbody\r\n.\r\nQUIT\r\n"
        );
        let r = env.sendmail(&["-bs", "-odq"], dialogue.as_bytes());
        assert!(r.stdout.contains("250 2.0.0 "), "{}", r.stdout);
        let m = env.only_message();
        let (head, _) = m.split_once("\n\n").unwrap();
        let ours: String = head
            .lines()
            .filter(|l| !l.starts_with("Subject:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(ours.is_ascii(), "{rcpt}: {head}");
        match want_for {
            Some(f) => assert!(head.contains(f), "{rcpt}: {head}"),
            None => assert!(!head.contains("\tfor "), "{rcpt}: {head}"),
        }
        assert!(
            head.contains("\nFrom: s@xn--bcher-kva.example\n"),
            "{rcpt}: {head}"
        );
    }
}

#[test]
fn injection_refused_nothing_queued() {
    let cases: &[&[&str]] = &[
        &["-f", "a@b\r\nRCPT TO:<x@y>", "bob@x"],
        &["-F", "Name\nBcc: victim@x", "bob@x"],
        &["bob@x\nDATA"],
        &["-V", "id\r\n", "bob@x"],
        &["-N", "failure\n", "bob@x"],
        &["-O", "DeliveryMode=q\nfoo", "bob@x"],
        &["bob@x\0evil"],
    ];
    for args in cases {
        let env = Env::new();
        let mut a = vec!["-odq"];
        a.extend_from_slice(args);
        // NUL cannot be passed in argv; that case tests the parser's own check.
        if a.iter().any(|s| s.contains('\0')) {
            continue;
        }
        let r = env.sendmail(&a, MSG);
        assert!(
            matches!(r.code, 64 | 65),
            "{args:?}: {}\n{}",
            r.code,
            r.stdout
        );
        assert!(env.entries().is_empty(), "{args:?}");
    }
}

#[test]
fn header_injection_in_t_recipients_cannot_reach_envelope() {
    let env = Env::new();
    env.sendmail(&["-odq", "-t"], b"To: <a@x>\r\nSubject: t\r\n\r\nb\r\n")
        .code(0);
    let e = env.only_entry();
    assert!(e.contains("rcpt a@x display=<a@x>\n"), "{e}");
}

#[test]
fn max_message_size() {
    let env = Env::with_config("O MaxMessageSize=1000\n");
    let big = format!("Subject: big\n\n{}\n", "a".repeat(2000));
    env.sendmail(&["-odq", "bob@example.org"], big.as_bytes())
        .code(65)
        .stdout_is("Message exceeds maximum fixed size (1000)\n");
    assert!(env.entries().is_empty());
    assert!(
        std::fs::read_dir(env.spool.join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    env.sendmail(
        &["-odq", "-O", "MaxMessageSize=0", "bob@example.org"],
        big.as_bytes(),
    )
    .code(0);
    assert_eq!(env.entries().len(), 2);
}

#[test]
fn personalities_through_symlinks() {
    let env = Env::new();
    env.run_raw(
        &env.link("send-mail"),
        &["-C", env.conf.to_str().unwrap(), "-odq", "bob@example.org"],
        MSG,
    )
    .code(0);
    let q = env.mailq(&[]);
    assert!(q.contains("(1 request)"), "{q}");
    let via_bp = env.sendmail(&["-bp"], b"");
    assert_eq!(via_bp.stdout, q);
}

#[test]
fn one_hundred_parallel_submissions() {
    let env = Env::new();
    let children: Vec<_> = (0..100)
        .map(|i| {
            let mut c = Command::new(env.link("sendmail"))
                .args([
                    "-C",
                    env.conf.to_str().unwrap(),
                    "-odq",
                    &format!("r{i}@example.org"),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            c.stdin.take().unwrap().write_all(MSG).unwrap();
            c
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let entries = env.entries();
    assert_eq!(entries.len(), 100);
    let mut ids: Vec<String> = entries
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy()[2..].to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    let mut rcpts: Vec<String> = entries
        .iter()
        .map(|p| {
            let t = std::fs::read_to_string(p).unwrap();
            t.lines()
                .find(|l| l.starts_with("rcpt "))
                .unwrap()
                .to_string()
        })
        .collect();
    rcpts.sort();
    rcpts.dedup();
    assert_eq!(rcpts.len(), 100, "each submission is its own entry");
}

/// `rsendmail` carries no TLS or DNS code at all (OpenSSL, hickory and tokio are linked into
/// `rsendmail-deliver` only); the deliverer's own strings are the control.
#[test]
fn rsendmail_contains_no_tls_code() {
    let has = |path: &std::path::Path, needle: &[u8]| -> bool {
        let bytes = std::fs::read(path).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    };
    let deliver = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rsendmail-deliver"));
    for needle in [
        &b"SSL_CTX_new"[..],
        b"OpenSSL",
        b"native_tls",
        b"hickory",
        b"tokio",
    ] {
        assert!(
            has(&deliver, needle),
            "control: rsendmail-deliver lacks {needle:?}"
        );
        for b in [crate::harness::bin(), crate::harness::release_bin()] {
            assert!(
                !has(&b, needle),
                "{} contains {:?}",
                b.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn rsendmail_links_no_tls_or_dns_library() {
    if !crate::harness::require("ldd") {
        return;
    }
    for b in [crate::harness::bin(), crate::harness::release_bin()] {
        let out = Command::new("ldd").arg(&b).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "ldd {}: {text}", b.display());
        assert!(text.contains("libc.so"), "ldd output looks wrong: {text}");
        for lib in ["libssl", "libcrypto", "libresolv"] {
            assert!(!text.contains(lib), "{} links {lib}:\n{text}", b.display());
        }
    }
}

/// `rsendmail-deliver` run by hand never runs the queue by surprise: with no arguments
/// it prints its usage (exit 64); a message or another of sendmail's operations is
/// refused with the usage; `--help` and `--version` answer.
#[test]
fn the_deliverer_by_hand_prints_its_usage() {
    let env = Env::new();
    env.sendmail(&["-odq", "bob@example.org"], MSG).code(0);
    let deliver = std::path::Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver"));
    let none = env.run_raw(deliver, &[], b"");
    none.code(64).stdout_is("");
    assert!(
        none.stderr.starts_with("usage: rsendmail-deliver -q"),
        "{}",
        none.stderr
    );
    let message = env.run_raw(
        deliver,
        &["-C", env.conf.to_str().unwrap(), "bob@example.org"],
        MSG,
    );
    message.code(64);
    assert!(
        message
            .stderr
            .contains("rsendmail-deliver does not take messages: send them with sendmail"),
        "{}",
        message.stderr
    );
    let print = env.run_raw(deliver, &["-C", env.conf.to_str().unwrap(), "-bp"], b"");
    print.code(64);
    assert!(
        print.stderr.contains("-bp is sendmail's"),
        "{}",
        print.stderr
    );
    // Nothing was delivered or taken: the one queued message is still there.
    assert_eq!(env.entries().len(), 1, "{}", env.listing());
    let help = env.run_raw(deliver, &["--help"], b"");
    help.code(0);
    assert!(
        help.stdout.starts_with("usage: rsendmail-deliver"),
        "{}",
        help.stdout
    );
    let version = env.run_raw(deliver, &["--version"], b"");
    version.code(0).stdout_is(&format!(
        "rsendmail-deliver {}\n",
        env!("CARGO_PKG_VERSION")
    ));
}

/// Under a small limit of open files (`ulimit -n`) a submission either commits its
/// entry and exits 0, or fails with a message and leaves nothing: a failure to open the
/// queue directory for its fsync comes before the rename, not after it (which left a
/// committed entry behind a failure exit, and a duplicate when the caller retried).
#[test]
fn a_small_open_files_limit_commits_or_fails_cleanly() {
    let env = Env::new();
    let mut committed = 0;
    // Below 4 the dynamic loader itself cannot open the libraries.
    for n in 4..=12u64 {
        let before = env.entries().len();
        let run = env.sendmail_rlimit(
            libc::RLIMIT_NOFILE as i32,
            n,
            &["-odq", "bob@example.org"],
            MSG,
        );
        let after = env.entries().len();
        match run.code {
            0 => {
                assert_eq!(after, before + 1, "limit {n}: exit 0 without its entry");
                committed += 1;
            }
            -1 => panic!("limit {n}: killed by a signal"),
            code => {
                assert_eq!(
                    after,
                    before,
                    "limit {n}: exit {code} ({}) but the entry was committed",
                    run.stdout.trim()
                );
                assert!(
                    !run.stdout.trim().is_empty(),
                    "limit {n}: exit {code} in silence"
                );
            }
        }
    }
    assert!(committed > 0, "no submission got through");
}

/// The ACL reads (getxattr, lgetxattr) of a queue-only submission to a remote
/// recipient, as strace shows them, with MAILLOG set to `log`; None without strace.
fn acl_reads_of_a_submission(env: &Env, log: &Path) -> Option<String> {
    if !crate::harness::require("strace") {
        return None;
    }
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    env.sendmail(&["-odq", "first@example.org"], MSG).code(0);
    Some(traced_submission(env, "getxattr,lgetxattr"))
}

/// What strace shows of the system calls `calls` (its `-e trace=` list) of a queue-only
/// submission to a remote recipient (which must succeed), its processes followed.
fn traced_submission(env: &Env, calls: &str) -> String {
    let msg = env.dir.join("msg");
    fs::write(&msg, MSG).unwrap();
    let trace = env.dir.join("trace");
    let st = Command::new("strace")
        .args(["-f", "-qq", "-e", &format!("trace={calls}"), "-o"])
        .arg(&trace)
        .arg(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-odq", "bob@example.org"])
        .stdin(fs::File::open(&msg).unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    fs::read_to_string(&trace).unwrap()
}

/// A queue-only submission checks the ACLs of every path it trusts (the config, the
/// log, the spool and its directories, each directory above them), nearly always to find
/// none: each such read asks for a small buffer, not the 64 KiB an attribute may reach
/// (zeroing that buffer some 30 times was two thirds of the instructions a submission
/// executed). A larger attribute is still read whole (`spool::safety`'s unit tests).
#[test]
fn acl_reads_of_a_submission_ask_for_small_buffers() {
    let env = Env::new();
    let Some(t) = acl_reads_of_a_submission(&env, &env.dir.join("mail.log")) else {
        return;
    };
    let reads: Vec<&str> = t.lines().filter(|l| l.contains("getxattr(")).collect();
    assert!(!reads.is_empty(), "no ACL was read:\n{t}");
    let big: Vec<&&str> = reads.iter().filter(|l| l.contains(", 65536)")).collect();
    assert!(
        big.is_empty(),
        "{} of {} ACL reads asked for 64 KiB:\n{t}",
        big.len(),
        reads.len()
    );
}

/// The log file's path is checked once a submission, where the log is opened (an unsafe
/// log is not opened, and stops no mail); the check of the files the config names
/// before the message is read leaves it out rather than walking it again. The log file
/// itself is judged by the descriptor opened: its own ACL is not read.
#[test]
fn a_submission_checks_the_log_files_path_once() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let dir = env.dir.join("logs");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.join("mail.log");
    let Some(t) = acl_reads_of_a_submission(&env, &log) else {
        return;
    };
    let reads = |p: &Path| {
        let quoted = format!("\"{}\"", p.display());
        t.lines().filter(|l| l.contains(&quoted)).count()
    };
    let n = reads(&dir);
    assert_eq!(n, 1, "the log's directory's ACL read {n} times:\n{t}");
    let n = reads(&log);
    assert_eq!(n, 0, "the log's own ACL read {n} times:\n{t}");
}

/// Under a file-size limit (`ulimit -f`, systemd's `LimitFSIZE=`) a message larger than
/// it is not queued, and the caller is told so: exit 75 (EX_TEMPFAIL, try again) and
/// sendmail's `cannot write queue file ...: File too large`, not a death by SIGXFSZ with
/// nothing said. Nothing partial is left in the spool.
#[test]
fn a_file_size_limit_is_a_temporary_failure_with_a_message() {
    let env = Env::new();
    let big = format!("Subject: big\n\n{}", "0123456789abcdef\n".repeat(4096));
    let run = env.sendmail_fsize(16 * 1024, &["-odq", "bob@example.org"], big.as_bytes());
    run.code(75);
    assert!(
        run.stdout.contains("cannot write queue file") && run.stdout.contains("File too large"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    assert!(env.entries().is_empty(), "{}", env.listing());
    let tmp: Vec<_> = fs::read_dir(env.spool.join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "{tmp:?}");
    // A message within the limit is queued as usual.
    env.sendmail_fsize(16 * 1024, &["-odq", "bob@example.org"], MSG)
        .code(0);
    assert_eq!(env.entries().len(), 1, "{}", env.listing());
}

/// What a queue-only submission to a remote recipient leaves out (it returns sooner for
/// it): the aliases file is looked at (a FIFO or a device in its place is still refused:
/// robustness::files_the_config_names_are_bounded) but never opened or read, the queue
/// file is not looked at again after its commit, yet the log gives its size, and the
/// index directory is checked once by the index append (twice by the spool's set-up).
#[test]
fn queue_only_submission_reads_no_aliases_and_logs_the_entry_size() {
    if !crate::harness::require("strace") {
        return;
    }
    let env = Env::new();
    let aliases = env.dir.join("aliases");
    let big: String = (0..5000)
        .map(|i| format!("a{i}: b{i}@example.org\n"))
        .collect();
    fs::write(&aliases, big).unwrap();
    let log = env.dir.join("mail.log");
    env.add_config(&format!(
        "ALIASES {}\nMAILLOG {}\n",
        aliases.display(),
        log.display()
    ));
    // The first submission makes the spool's index; the second is the one looked at.
    env.sendmail(&["-odq", "first@example.org"], MSG).code(0);
    let first = env.entries();
    let t = traced_submission(&env, "openat,open,stat,statx,newfstatat");
    let aliases_name = aliases.to_str().unwrap();
    let opened: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("open") && l.contains(aliases_name))
        .collect();
    assert!(opened.is_empty(), "the aliases file was opened: {opened:?}");
    let index_dir = format!("{}\", O_RDONLY", env.spool.join("index").display());
    let index_opens = t.lines().filter(|l| l.contains(&index_dir)).count();
    assert!(
        index_opens <= 3,
        "the index directory opened {index_opens} times:\n{t}"
    );
    let entry = env
        .entries()
        .into_iter()
        .find(|e| !first.contains(e))
        .expect("queued");
    let id = entry.file_name().unwrap().to_str().unwrap()[2..].to_string();
    let qf = entry.to_str().unwrap();
    let after_rename: Vec<&str> = t
        .lines()
        .skip_while(|l| !l.contains("tmp/tf"))
        .filter(|l| l.contains("stat") && l.contains(qf))
        .collect();
    // One look before the commit (an ID in use?), none after it.
    assert!(after_rename.len() <= 1, "{after_rename:?}");
    let size = fs::metadata(&entry).unwrap().len();
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged.lines().any(|l| l.contains(&format!("{id}: from=<"))
            && l.contains(&format!(">, size={size}, nrcpts=1"))),
        "size={size} not in {logged}"
    );
}
