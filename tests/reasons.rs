//! What rsendmail tells the user when delivery fails, in the words sendmail 8.17 uses
//! (compat-tests/cases/reason-*): connection refused, a greeting that never comes, a
//! smarthost name that does not resolve or whose lookup fails, an MX domain that does
//! not exist, and 4xx and 5xx replies to RCPT and to the data, each in `-v`, `-odi`,
//! `-odq` then `-q -v`, and `-odq` then `-qI<id> -v`.
//!
//! Servers are real ones started here: the aiosmtpd fault server
//! (tests/peers/fault_server.py: `reject4`, `reject5`, `rejectdata4`, `rejectdata5`
//! recipients), a listener that never answers, a closed port, and dnsmasq. The DNS tests
//! run rsendmail in a private network namespace (`unshare -n`, loopback only) with
//! dnsmasq as its name server, so that no lookup leaves the machine.

use crate::harness::{Env, MSG, Run, closed_tcp_port, is_root, require, unavailable};
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SENDER: &str = "sender@example.com";

/// How the message is sent and delivered.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// `-v`: interactive, verbose.
    V,
    /// `-odi`: interactive, quiet.
    Odi,
    /// `-odq`, then `-q -v`.
    QV,
    /// `-odq`, then `-qI<id> -v`.
    QiV,
}

const MODES: [Mode; 4] = [Mode::V, Mode::Odi, Mode::QV, Mode::QiV];

/// Send MSG from SENDER to `rcpts` in `mode`, with `extra` options on the delivering
/// command line; `run` runs rsendmail (`Env::sendmail`, or in a namespace).
fn deliver(
    env: &Env,
    mode: Mode,
    rcpts: &[&str],
    extra: &[&str],
    run: &dyn Fn(&[&str], &[u8]) -> Run,
) -> (Run, String) {
    let mut args: Vec<&str> = Vec::new();
    match mode {
        Mode::V | Mode::Odi => {
            args.push(if matches!(mode, Mode::V) {
                "-v"
            } else {
                "-odi"
            });
            args.extend_from_slice(extra);
            args.extend_from_slice(&["-f", SENDER]);
            args.extend_from_slice(rcpts);
            (run(&args, MSG), String::new())
        }
        Mode::QV | Mode::QiV => {
            let mut queue = vec!["-odq", "-f", SENDER];
            queue.extend_from_slice(rcpts);
            run(&queue, MSG).code(0);
            let entries = env.entries();
            assert_eq!(entries.len(), 1, "{}", env.listing());
            let id = entries[0].file_name().unwrap().to_str().unwrap()[2..].to_string();
            let select = format!("-qI{id}");
            let mut args: Vec<&str> = if matches!(mode, Mode::QV) {
                vec!["-q", "-v"]
            } else {
                vec![select.as_str(), "-v"]
            };
            args.extend_from_slice(extra);
            let r = run(&args, b"");
            (
                r,
                format!("\nRunning {}/{id} (sequence 1 of 1)\n", env.spool.display()),
            )
        }
    }
}

#[track_caller]
fn assert_lines(r: &Run, want: &str, mode: Mode) {
    assert!(
        r.stdout.contains(want),
        "{mode:?}: stdout lacks\n{want}\n--- stdout:\n{}\n--- stderr:\n{}",
        r.stdout,
        r.stderr
    );
}

/// The message is still queued and `mailq` shows sendmail's status line for it.
#[track_caller]
fn assert_deferred(env: &Env, status: &str, mode: Mode) {
    let listing = env.mailq(&[]);
    let want = format!("\n                 ({status})\n");
    assert!(
        listing.contains(&want),
        "{mode:?}: mailq lacks\n{want}\n--- mailq:\n{listing}"
    );
}

/// The whole output of a deferral without an SMTP dialogue (refused, lookup failure,
/// timeout): `lines` after the "Running" line of a queue run, nothing for `-odi`.
#[track_caller]
fn assert_quiet_deferral(mode: Mode, r: &Run, running: &str, lines: &str) {
    r.code(0);
    match mode {
        Mode::Odi => r.stdout_is(""),
        Mode::V => r.stdout_is(lines),
        Mode::QV | Mode::QiV => r.stdout_is(&format!("{running}{lines}")),
    };
}

#[test]
fn connection_refused() {
    for mode in MODES {
        let port = closed_tcp_port();
        let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\nPORT {port}\n"));
        let (r, running) = deliver(&env, mode, &["a@example.org"], &[], &|a, s| {
            env.sendmail(a, s)
        });
        let lines = format!(
            "a@example.org... Connecting to [127.0.0.1] port {port} via relay...\n\
             a@example.org... Deferred: Connection refused by [127.0.0.1]\n"
        );
        assert_quiet_deferral(mode, &r, &running, &lines);
        assert_deferred(&env, "Deferred: Connection refused by [127.0.0.1]", mode);
    }
}

/// A listener that accepts connections and never says a word.
fn silent_listener() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    port
}

#[test]
fn greeting_timeout() {
    for mode in MODES {
        let port = silent_listener();
        let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\nPORT {port}\n"));
        let (r, running) = deliver(
            &env,
            mode,
            &["a@example.org"],
            &["-O", "Timeout.initial=3s"],
            &|a, s| env.sendmail(a, s),
        );
        let lines = format!(
            "a@example.org... Connecting to [127.0.0.1] port {port} via relay...\n\
             a@example.org... Deferred: Connection timed out with [127.0.0.1]\n\
             Closing connection to [127.0.0.1]\n"
        );
        assert_quiet_deferral(mode, &r, &running, &lines);
        // sendmail lists `(reply: read error from [127.0.0.1])` here; rsendmail what
        // happened, the wait first (the listing cuts the line at its width), where -v
        // keeps sendmail's words (DIFFERENCES.md, reason-timeout-*).
        assert_deferred(
            &env,
            "Deferred: no greeting within 3s (Timeout.initial) from [127.",
            mode,
        );
        // Whole in the wider listing (`mailq -v`).
        let listing = env.mailq(&["-v"]);
        assert!(
            listing.contains(
                "\n                 (Deferred: no greeting within 3s (Timeout.initial) from \
                 [127.0.0.1])\n"
            ),
            "{mode:?}: {listing}"
        );
    }
}

/// A private network namespace holding only loopback (kept by a sleeping process), with
/// dnsmasq in it on `port`: NXDOMAIN for nx.test, com and org, NODATA for
/// relay.nodata.test, no answer under to.test, a refusal (a lookup failure) for any other
/// name. With `system` (`Netns::system`) it has a mount namespace too, in which
/// /etc/resolv.conf names that dnsmasq (on port 53, one try of one second): the system
/// resolver (getaddrinfo) asks it.
struct Netns {
    holder: Child,
    dns: Option<Child>,
    port: u16,
    system: bool,
}

impl Netns {
    fn start(dir: &Path) -> Option<Netns> {
        Netns::start_with(dir, false)
    }

    /// A namespace whose system resolver (/etc/resolv.conf) asks its dnsmasq.
    fn system(dir: &Path) -> Option<Netns> {
        Netns::start_with(dir, true)
    }

    fn start_with(dir: &Path, system: bool) -> Option<Netns> {
        if !(require("unshare") && require("nsenter") && require("dnsmasq") && require("ip")) {
            return None;
        }
        if !is_root() {
            unavailable("root (for a network namespace)");
            return None;
        }
        let resolv = dir.join(format!("resolv-{}.conf", std::process::id()));
        fs::write(
            &resolv,
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .unwrap();
        let (flags, setup) = if system {
            (
                "-nm",
                format!(
                    "ip link set lo up && mount --bind {} /etc/resolv.conf && echo ready && exec sleep 1000000",
                    resolv.display()
                ),
            )
        } else {
            (
                "-n",
                "ip link set lo up && echo ready && exec sleep 1000000".to_string(),
            )
        };
        let mut holder = Command::new("unshare")
            .args([flags, "--", "sh", "-c"])
            .arg(setup)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "no network namespace");
        // The namespace has ports of its own: any is free there (53 for the system
        // resolver, which asks no other).
        let port = if system { 53 } else { closed_tcp_port() };
        let mut ns = Netns {
            holder,
            dns: None,
            port,
            system,
        };
        let log = dir.join(format!("dnsmasq-{port}.log"));
        let dns = ns
            .command("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--log-queries",
                "--user=root",
                "--address=/nx.test/",
                "--address=/com/",
                "--address=/org/",
                // relay.nodata.test exists (a TXT record) with no address: NODATA.
                "--local=/nodata.test/",
                "--txt-record=relay.nodata.test,nodata",
                // Lookups under to.test go to a port where no name server listens:
                // never answered.
                "--server=/to.test/127.0.0.1#9",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--log-facility={}", log.display()))
            .arg(format!(
                "--pid-file={}",
                dir.join(format!("dnsmasq-{port}.pid")).display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        ns.dns = Some(dns);
        let start = Instant::now();
        while !fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("started")
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "dnsmasq did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(ns)
    }

    /// `program` run inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.holder.id().to_string(), "-n"]);
        if self.system {
            c.arg("-m");
        }
        c.args(["--", program]);
        c
    }

    /// `sendmail -C conf ARGS` inside the namespace.
    fn sendmail(&self, env: &Env, args: &[&str], stdin: &[u8]) -> Run {
        use std::io::Write;
        let link: PathBuf = env.link("sendmail");
        let mut full = vec!["-C", env.conf.to_str().unwrap()];
        full.extend_from_slice(args);
        let mut child = self
            .command(link.to_str().unwrap())
            .args(&full)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nsenter");
        let _ = child.stdin.take().unwrap().write_all(stdin);
        let out = child.wait_with_output().unwrap();
        env.finish(&link, &full, out)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(d) = self.dns.as_mut() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// An Env whose name server is the namespace's dnsmasq, with `extra` config.
fn dns_env(scratch: &Env, extra: &str) -> Option<(Netns, Env)> {
    let ns = Netns::start(&scratch.dir)?;
    let env = Env::with_config(&format!(
        "RESOLVER 127.0.0.1:{}\nO Timeout.resolver.retrans=1s\nO Timeout.resolver.retry=1\n{extra}",
        ns.port
    ));
    Some((ns, env))
}

#[test]
fn smarthost_lookup_failure() {
    let scratch = Env::new();
    for mode in MODES {
        let port = closed_tcp_port();
        let Some((ns, env)) = dns_env(
            &scratch,
            &format!("SMARTHOST relay.fail.test\nPORT {port}\n"),
        ) else {
            return;
        };
        let (r, running) = deliver(&env, mode, &["a@example.org"], &[], &|a, s| {
            ns.sendmail(&env, a, s)
        });
        let lines = format!(
            "a@example.org... Connecting to [relay.fail.test] port {port} via relay...\n\
             a@example.org... Deferred: Name server: [relay.fail.test]: host name lookup failure\n"
        );
        assert_quiet_deferral(mode, &r, &running, &lines);
        assert_deferred(
            &env,
            "Deferred: Name server: [relay.fail.test]: host name lookup f",
            mode,
        );
    }
}

/// A smarthost name that does not exist: sendmail returns the message (exit 68);
/// rsendmail defers it, as Postfix does for a relayhost, so that a mistyped SMARTHOST
/// returns nothing (DIFFERENCES.md, reason-nxdomain-*). The reason is sendmail's words.
#[test]
fn smarthost_host_unknown() {
    let scratch = Env::new();
    for mode in MODES {
        let port = closed_tcp_port();
        let Some((ns, env)) = dns_env(&scratch, &format!("SMARTHOST relay.nx.test\nPORT {port}\n"))
        else {
            return;
        };
        let (r, running) = deliver(&env, mode, &["a@example.org"], &[], &|a, s| {
            ns.sendmail(&env, a, s)
        });
        let lines = format!(
            "a@example.org... Connecting to [relay.nx.test] port {port} via relay...\n\
             a@example.org... Deferred: Host unknown (Name server: [relay.nx.test]: host not found)\n"
        );
        assert_quiet_deferral(mode, &r, &running, &lines);
        assert_deferred(
            &env,
            "Deferred: Host unknown (Name server: [relay.nx.test]: host n",
            mode,
        );
    }
}

/// A smarthost name that exists with no address (NODATA): sendmail's words
/// (`Host unknown (Name server: [host]: no data known)`, reason-nodata-*), deferred like
/// a name that does not exist (DIFFERENCES.md).
#[test]
fn smarthost_no_address() {
    let scratch = Env::new();
    for mode in MODES {
        let port = closed_tcp_port();
        let Some((ns, env)) = dns_env(
            &scratch,
            &format!("SMARTHOST relay.nodata.test\nPORT {port}\n"),
        ) else {
            return;
        };
        let (r, running) = deliver(&env, mode, &["a@example.org"], &[], &|a, s| {
            ns.sendmail(&env, a, s)
        });
        let lines = format!(
            "a@example.org... Connecting to [relay.nodata.test] port {port} via relay...\n\
             a@example.org... Deferred: Host unknown (Name server: [relay.nodata.test]: no data known)\n"
        );
        assert_quiet_deferral(mode, &r, &running, &lines);
        assert_deferred(
            &env,
            "Deferred: Host unknown (Name server: [relay.nodata.test]: no",
            mode,
        );
    }
}

/// A smarthost name whose lookup is never answered: a lookup failure once the resolver
/// gives up (`Timeout.resolver.retrans` times `Timeout.resolver.retry`), in sendmail's
/// words (reason-dnstimeout-*).
#[test]
fn smarthost_lookup_timeout() {
    let scratch = Env::new();
    for mode in MODES {
        let port = closed_tcp_port();
        let Some((ns, env)) = dns_env(&scratch, &format!("SMARTHOST relay.to.test\nPORT {port}\n"))
        else {
            return;
        };
        let (r, running) = deliver(&env, mode, &["a@example.org"], &[], &|a, s| {
            ns.sendmail(&env, a, s)
        });
        let lines = format!(
            "a@example.org... Connecting to [relay.to.test] port {port} via relay...\n\
             a@example.org... Deferred: Name server: [relay.to.test]: host name lookup failure\n"
        );
        assert_quiet_deferral(mode, &r, &running, &lines);
        assert_deferred(
            &env,
            "Deferred: Name server: [relay.to.test]: host name lookup fai",
            mode,
        );
    }
}

/// Without RESOLVER, relay names are looked up by the system's resolver (getaddrinfo,
/// which also reads /etc/hosts), and its answers are told apart as RESOLVER's are: a name
/// that does not exist, one without an address, a failed lookup, no answer.
#[test]
fn smarthost_through_the_system_resolver() {
    let scratch = Env::new();
    for (host, reason) in [
        (
            "relay.nx.test",
            "Host unknown (Name server: [relay.nx.test]: host not found)",
        ),
        (
            "relay.nodata.test",
            "Host unknown (Name server: [relay.nodata.test]: no data known)",
        ),
        (
            "relay.fail.test",
            "Name server: [relay.fail.test]: host name lookup failure",
        ),
        (
            "relay.to.test",
            "Name server: [relay.to.test]: host name lookup failure",
        ),
    ] {
        let Some(ns) = Netns::system(&scratch.dir) else {
            return;
        };
        let port = closed_tcp_port();
        let env = Env::with_config(&format!("SMARTHOST {host}\nPORT {port}\n"));
        // Env's config names a RESOLVER: without it, the system's resolver is asked.
        let conf = fs::read_to_string(&env.conf).unwrap();
        let conf: String = conf
            .lines()
            .filter(|l| !l.starts_with("RESOLVER "))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&env.conf, conf).unwrap();
        let (r, _) = deliver(&env, Mode::V, &["a@example.org"], &[], &|a, s| {
            ns.sendmail(&env, a, s)
        });
        let lines = format!(
            "a@example.org... Connecting to [{host}] port {port} via relay...\n\
             a@example.org... Deferred: {reason}\n"
        );
        assert_quiet_deferral(Mode::V, &r, "", &lines);
        let cut: String = format!("Deferred: {reason}").chars().take(60).collect();
        assert_deferred(&env, &cut, Mode::V);
    }
}

/// MX delivery to a domain that does not exist (NXDOMAIN): permanent, exit 68.
#[test]
fn mx_domain_host_unknown() {
    let scratch = Env::new();
    for mode in MODES {
        let Some((ns, env)) = dns_env(&scratch, "") else {
            return;
        };
        let (r, running) = deliver(&env, mode, &["a@nx.test"], &[], &|a, s| {
            ns.sendmail(&env, a, s)
        });
        r.code(68);
        if matches!(mode, Mode::QV | Mode::QiV) {
            assert_lines(
                &r,
                &format!(
                    "{running}a@nx.test... Host unknown (Name server: nx.test: host not found)\n\
                     sender@example.com... Host unknown (Name server: example.com: host not found)\n"
                ),
                mode,
            );
        }
        assert!(
            !env.mailq(&[]).contains("a@nx.test"),
            "{mode:?}: {}",
            env.mailq(&[])
        );
    }
}

/// The aiosmtpd fault server in `dir`; None (after a note) without aiosmtpd.
struct Peer {
    child: Child,
    port: u16,
}

impl Peer {
    fn start(dir: &Path) -> Option<Peer> {
        if !require("python3") {
            return None;
        }
        let ok = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            unavailable("aiosmtpd");
            return None;
        }
        let state = dir.join("peer");
        fs::create_dir_all(&state).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/fault_server.py");
        let child = Command::new("python3")
            .args(["-W", "ignore", script])
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("python3");
        let port_file = state.join("port");
        let start = Instant::now();
        while !port_file.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the fault server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let port = fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Some(Peer { child, port })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deliver to `rcpt` at the fault server in every mode: `check(mode, run, running, env)`.
fn at_fault_server(rcpt: &str, check: &dyn Fn(Mode, &Run, &str, &Env)) {
    let scratch = Env::new();
    let Some(peer) = Peer::start(&scratch.dir) else {
        return;
    };
    for mode in MODES {
        let env = Env::with_config(&format!(
            "SMARTHOST 127.0.0.1\nPORT {}\nO Timeout.connect=5s\n",
            peer.port
        ));
        let (r, running) = deliver(&env, mode, &[rcpt], &[], &|a, s| env.sendmail(a, s));
        check(mode, &r, &running, &env);
    }
}

#[test]
fn rcpt_4xx_deferred() {
    at_fault_server("reject4@example.org", &|mode, r, running, env| {
        r.code(0);
        let reply = "450 4.2.0 <reject4@example.org>: Recipient address temporarily rejected: test";
        match mode {
            Mode::Odi => {
                r.stdout_is("");
            }
            _ => {
                // The deferral is said before the RSET, as the reply is read.
                assert_lines(
                    r,
                    &format!("{reply}\nreject4@example.org... Deferred: {reply}\n>>> RSET\n"),
                    mode,
                );
                assert!(r.stdout.starts_with(&format!(
                    "{running}reject4@example.org... Connecting to [127.0.0.1] port "
                )));
            }
        }
        assert_deferred(
            env,
            "Deferred: 450 4.2.0 <reject4@example.org>: Recipient address",
            mode,
        );
    });
}

#[test]
fn data_4xx_deferred() {
    at_fault_server("rejectdata4@example.org", &|mode, r, _running, env| {
        r.code(0);
        let reply = "451 4.3.0 Try again later (test)";
        match mode {
            Mode::Odi => {
                r.stdout_is("");
            }
            _ => assert_lines(
                r,
                &format!(
                    ">>> .\n{reply}\nrejectdata4@example.org... Deferred: {reply}\n\
                     Closing connection to [127.0.0.1]\n"
                ),
                mode,
            ),
        }
        assert_deferred(env, &format!("Deferred: {reply}"), mode);
    });
}

/// A 550 to RCPT: exit 67, the bounce to SENDER over the same connection. Interactive
/// `-v` shows the reply alone; a queue run adds "User unknown". The bounce returns the
/// header only (no FULLBOUNCE) and is sent in the same run: no `SIZE=`, as sendmail's
/// (compat case reason-reject5-v).
#[test]
fn rcpt_5xx_bounced() {
    at_fault_server("reject5@example.org", &|mode, r, _running, env| {
        r.code(67);
        let reply = "550 5.1.1 <reject5@example.org>: Recipient address rejected: test";
        match mode {
            Mode::Odi => {
                r.stdout_is("");
            }
            Mode::V => {
                assert_lines(r, &format!("{reply}\n>>> RSET\n"), mode);
                assert!(!r.stdout.contains("User unknown"), "{}", r.stdout);
            }
            Mode::QV | Mode::QiV => assert_lines(
                r,
                &format!("{reply}\nreject5@example.org... User unknown\n>>> RSET\n"),
                mode,
            ),
        }
        if !matches!(mode, Mode::Odi) {
            assert_lines(
                r,
                "sender@example.com... Using cached ESMTP connection to [127.0.0.1] via relay...\n\
                 >>> MAIL From:<>\n",
                mode,
            );
        }
        assert!(env.entries().is_empty(), "{mode:?}: {}", env.listing());
    });
}

/// A 554 after the data: exit 69. A queue run adds sendmail's "Service unavailable".
#[test]
fn data_5xx_bounced() {
    at_fault_server("rejectdata5@example.org", &|mode, r, _running, env| {
        r.code(69);
        let reply = "554 5.6.0 Message rejected (test)";
        match mode {
            Mode::Odi => {
                r.stdout_is("");
            }
            Mode::V => assert_lines(r, &format!(">>> .\n{reply}\n>>> RSET\n"), mode),
            Mode::QV | Mode::QiV => assert_lines(
                r,
                &format!(">>> .\n{reply}\nService unavailable\n>>> RSET\n"),
                mode,
            ),
        }
        assert!(env.entries().is_empty(), "{mode:?}: {}", env.listing());
    });
}

/// `-q -v` over several entries: each one's delivery report goes out under that entry,
/// before the next `Running` line, as sendmail prints a bounce inside its message's block.
#[test]
fn reports_are_shown_under_their_entry() {
    let scratch = Env::new();
    let Some(peer) = Peer::start(&scratch.dir) else {
        return;
    };
    let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\nPORT {}\n", peer.port));
    for sender in ["one@example.com", "two@example.com"] {
        env.sendmail(&["-odq", "-f", sender, "reject5@example.org"], MSG)
            .code(0);
    }
    let r = env.sendmail(&["-q", "-v"], b"");
    r.code(67);
    let blocks: Vec<&str> = r.stdout.split("\nRunning ").skip(1).collect();
    assert_eq!(blocks.len(), 2, "{}", r.stdout);
    for b in &blocks {
        assert_eq!(b.matches(">>> MAIL From:<>").count(), 1, "{}", r.stdout);
        let sender = if b.contains("From:<one@example.com>") {
            "one@example.com"
        } else {
            "two@example.com"
        };
        assert!(
            b.contains(&format!(">>> RCPT To:<{sender}>")),
            "the report to {sender} is shown under its own entry:\n{}",
            r.stdout
        );
    }
}

/// The log's `delay` is measured when the attempt ends: never less than `xdelay`.
#[test]
fn the_logged_delay_covers_the_attempt() {
    let port = silent_listener();
    let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\nPORT {port}\n"));
    let log = env.dir.join("mail.log");
    env.add_config(&format!("MAILLOG {}\n", log.display()));
    env.sendmail(&["-odi", "-O", "Timeout.initial=2s", "a@example.org"], MSG)
        .code(0);
    let text = fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("to=<a@example.org>"))
        .unwrap_or_else(|| panic!("{text}"));
    let field = |name: &str| -> u64 {
        let v = line
            .split(", ")
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {line}"));
        v.split(':')
            .fold(0, |acc, p| acc * 60 + p.parse::<u64>().unwrap())
    };
    let (delay, xdelay) = (field("delay="), field("xdelay="));
    assert!(xdelay >= 2, "{line}");
    assert!(delay >= xdelay, "{line}");
}

/// A server that answers each command at once (EHLO, MAIL, the rest with 250) but
/// writes `dripped` one byte every 300 ms: as its greeting when `at` is `None`, else as
/// its reply to the command beginning with `at`.
fn drip_server(dripped: &'static str, at: Option<&'static str>) -> u16 {
    use std::io::Write;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let drip = |w: &mut std::net::TcpStream| {
                    for b in dripped.bytes() {
                        if w.write_all(&[b]).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(300));
                    }
                };
                match at {
                    None => return drip(&mut w),
                    Some(_) => {
                        let _ = w.write_all(b"220 drip.test ESMTP\r\n");
                    }
                }
                for line in BufReader::new(c).lines() {
                    let Ok(line) = line else { return };
                    let verb = line.to_ascii_uppercase();
                    if at.is_some_and(|a| verb.starts_with(a)) {
                        drip(&mut w);
                        return;
                    }
                    let reply: &[u8] = if verb.starts_with("QUIT") {
                        b"221 bye\r\n"
                    } else if verb.starts_with("DATA") {
                        b"354 go\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    if w.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Deliver MSG at once to a@example.org through the smarthost on `port` with `opts`:
/// how long it took, or `None` when it was still going after `limit` (and was killed).
fn timed_delivery(env: &Env, opts: &[&str], limit: Duration) -> Option<Duration> {
    use std::io::Write;
    let mut child = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-odi"])
        .args(opts)
        .arg("a@example.org")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(MSG).unwrap();
    let t = Instant::now();
    crate::harness::wait_exit(&mut child, limit).map(|_| t.elapsed())
}

/// A greeting dripped a byte at a time is still a greeting that did not come within
/// `Timeout.initial`: the timeout is for the whole reply, not for each read.
#[test]
fn a_dripped_greeting_times_out_whole() {
    let port = drip_server(
        "220 drip.test ESMTP a greeting that takes far longer than its timeout\r\n",
        None,
    );
    let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\nPORT {port}\n"));
    let took = timed_delivery(&env, &["-O", "Timeout.initial=2s"], Duration::from_secs(10));
    let took = took.expect("the delivery was still waiting for the greeting after 10s");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert_deferred(
        &env,
        "Deferred: no greeting within 2s (Timeout.initial) from [127.",
        Mode::Odi,
    );
}

/// The same for the reply to RCPT under `Timeout.rcpt`.
#[test]
fn a_dripped_rcpt_reply_times_out_whole() {
    let port = drip_server(
        "250 2.1.5 a recipient reply that takes far longer than its timeout\r\n",
        Some("RCPT"),
    );
    let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\nPORT {port}\n"));
    let took = timed_delivery(&env, &["-O", "Timeout.rcpt=2s"], Duration::from_secs(10));
    let took = took.expect("the delivery was still waiting for the RCPT reply after 10s");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // mailq cuts the reason to its column.
    let listing = env.mailq(&[]);
    assert!(
        listing.contains("(Deferred: timeout waiting for input from 127.0.0.1 during RC"),
        "{listing}"
    );
}

/// A server that reads the message slowly (4 KiB a second after its 354) cannot hold
/// the delivery: each 64 KiB of the message must be taken within `Timeout.datablock`,
/// not merely some bytes of each write (RFC 5321 §4.5.3.2.6: the data block timeout).
#[test]
fn a_server_that_reads_the_message_slowly_times_out_per_block() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    // A small receive buffer (inherited by the accepted socket), so that each read
    // opens the window again and every write of the client makes some progress.
    let small: libc::c_int = 4096;
    // SAFETY: a valid socket and a c_int option value of the size given.
    let r = unsafe {
        libc::setsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let _ = w.write_all(b"220 slow.test ESMTP\r\n");
                let mut r = BufReader::new(c);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    let verb = line.to_ascii_uppercase();
                    line.clear();
                    if verb.starts_with("DATA") {
                        let _ = w.write_all(b"354 go\r\n");
                        // 1 KiB every 250 ms (4 KiB/s: 64 KiB would take 16 s), until
                        // the client gives up.
                        let mut buf = [0u8; 1024];
                        loop {
                            std::thread::sleep(Duration::from_millis(250));
                            match r.get_mut().read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                        }
                    }
                    let reply: &[u8] = if verb.starts_with("QUIT") {
                        b"221 bye\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    if w.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let env = Env::with_config(&format!("SMARTHOST 127.0.0.1\nPORT {port}\n"));
    // 16 MiB: more than the kernel's socket buffers hold, so the client must wait on
    // the server's reading.
    let mut msg = b"Subject: big\n\n".to_vec();
    let line = [b'x'; 79];
    while msg.len() < 16 << 20 {
        msg.extend_from_slice(&line);
        msg.push(b'\n');
    }
    let mut child = Command::new(env.link("sendmail"))
        .args(["-C", env.conf.to_str().unwrap(), "-odi"])
        .args(["-O", "Timeout.datablock=2s", "a@example.org"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&msg).unwrap();
    let t = Instant::now();
    let took = crate::harness::wait_exit(&mut child, Duration::from_secs(40)).map(|_| t.elapsed());
    assert!(
        took.is_some(),
        "the delivery was still writing to a slow reader after 40s"
    );
    let listing = env.mailq(&[]);
    assert!(listing.contains("a@example.org"), "{listing}");
    assert!(
        listing.contains("(Deferred: timeout writing message to 127.0.0.1)"),
        "{listing}"
    );
}
