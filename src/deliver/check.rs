//! The network half of `rsendmail-admin check` (`rsendmail-deliver --check [--to
//! ADDRESS] -- ARGV`): DNS, TCP, the greeting, EHLO, TLS with the server's certificate,
//! AUTH, and with `--to` a MAIL/RCPT probe followed by RSET and QUIT. The steps are
//! those of a delivery and run through its code ([`Session::open`], [`Session::probe`],
//! [`attempt::relay_addresses`], [`dns::Dns::mx`]): what passes here is what a delivery
//! does. One line a step, as [`rsendmail::admin::check::say`] prints them; credentials
//! are never printed (the session's transcript, which hides them, is only read for the
//! server's own lines).
//!
//! Exit status: 0 when every step passed (a `warn` line does not fail); else the first
//! failure's: EX_UNAVAILABLE (69) for a permanent refusal (a name that does not exist, a
//! 5yz reply, AUTH refused), EX_TEMPFAIL (75) for the rest (no connection, a timeout,
//! a TLS failure, a 4yz reply, a DNS lookup failure). Every wait is bounded by the
//! configured timeouts (`O Timeout.connect=`, `.initial`, `.helo`, `.mail`, `.rcpt`,
//! `.rset`, `.quit`, `.resolver.retrans`).

use super::attempt;
use super::dns::{self, MxResult};
use super::engine::Engine;
use super::plan::{self, Route};
use super::reply::Reply;
use super::smtp::{Credentials, OpenFailure, Session, State, TlsMode, TlsPolicy};
use rsendmail::admin::check::{Mark, Tally};
use rsendmail::app::Setup;
use rsendmail::exit::{Fatal, Sysexit};
use std::net::IpAddr;

/// Run the checks; the exit status as the module says.
pub fn check(s: &Setup, engine: &Engine, to: Option<&str>) -> Result<Sysexit, Fatal> {
    let mut t = Tally::default();
    let mut dns_state: Option<Result<dns::Dns, String>> = None;
    let through = if engine.resolver.is_empty() {
        "the system's resolver".to_string()
    } else {
        format!("RESOLVER {}", engine.resolver.join(", "))
    };
    let to = match to {
        Some(a) => {
            if a.is_empty()
                || a.chars()
                    .any(|c| c.is_control() || c.is_whitespace() || "<>".contains(c))
            {
                return Err(Fatal::new(
                    Sysexit::Usage,
                    format!("check --to: not an address: {a:?}"),
                ));
            }
            Some(engine.qualify(a))
        }
        None => None,
    };
    // The relay table's hosts: each must resolve.
    for r in &engine.relay_table {
        if r.by_mx {
            continue;
        }
        let _ = resolve(&mut t, engine, &mut dns_state, &r.host, &through);
    }
    // Where the mail goes: the route a delivery takes.
    let mut mx = false;
    let route = to.as_deref().map(|a| plan::route(engine, a));
    let hosts: Vec<(String, u16, Option<Vec<IpAddr>>)> = match (&to, route) {
        (Some(a), Some(Route::Local)) => {
            t.say(
                Mark::Ok,
                "route",
                &format!("{a} is delivered on this host (no network step)"),
            );
            return Ok(t.status());
        }
        (None, _) if engine.smarthost.is_empty() => {
            t.say(
                Mark::Skip,
                "network",
                "no SMARTHOST: mail goes to each domain's MX hosts (give --to ADDRESS to check one)",
            );
            return Ok(t.status());
        }
        (Some(_), None) => return Ok(t.status()),
        (None, _) => engine
            .smarthost
            .iter()
            .map(|(h, p)| (h.clone(), *p, None))
            .collect(),
        (Some(_), Some(Route::Relay(list))) => {
            list.into_iter().map(|(h, p)| (h, p, None)).collect()
        }
        (Some(a), Some(Route::Mx(domain))) => {
            mx = true;
            let d = dns_state.get_or_insert_with(|| {
                dns::Dns::new(&engine.resolver, engine.dns_timeout, engine.dns_retries)
            });
            let found = match d {
                Ok(d) => d.mx(&domain, &dns::own_names(&engine.host_name)),
                Err(e) => MxResult::Temp(rsendmail::status::DIRECTORY_TEMP, e.clone()),
            };
            match found {
                MxResult::Hosts(h) => {
                    let names: Vec<String> = h
                        .iter()
                        .map(|(n, a)| format!("{n} ({})", addresses(a)))
                        .collect();
                    t.say(
                        Mark::Ok,
                        "dns",
                        &format!(
                            "MX of {domain} (for {a}) through {through}: {}",
                            names.join(", ")
                        ),
                    );
                    h.into_iter()
                        .map(|(n, a)| (n, engine.mx_port, Some(a)))
                        .collect()
                }
                MxResult::NoHost(_, why) => {
                    t.fail(
                        Sysexit::Unavailable,
                        "dns",
                        &format!("MX of {domain} through {through}: {why}"),
                    );
                    return Ok(t.status());
                }
                MxResult::Temp(_, why) => {
                    t.fail(
                        Sysexit::TempFail,
                        "dns",
                        &format!("MX of {domain} through {through}: {why}"),
                    );
                    return Ok(t.status());
                }
            }
        }
    };
    // The first host that resolves is the one tried, as a delivery tries them in order.
    let mut target = None;
    for (host, port, addrs) in hosts {
        let addrs = match addrs {
            Some(a) => Some(a),
            None => resolve(&mut t, engine, &mut dns_state, &host, &through),
        };
        if let Some(a) = addrs {
            target = Some((host, port, a));
            break;
        }
    }
    let Some((host, port, addrs)) = target else {
        return Ok(t.status());
    };
    session(&mut t, s, engine, &host, port, &addrs, mx, to.as_deref());
    Ok(t.status())
}

/// A relay's addresses through the delivery's own lookup; a `dns` line either way.
fn resolve(
    t: &mut Tally,
    engine: &Engine,
    dns_state: &mut Option<Result<dns::Dns, String>>,
    host: &str,
    through: &str,
) -> Option<Vec<IpAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        t.say(
            Mark::Ok,
            "dns",
            &format!("{host} is an address (no lookup)"),
        );
        return Some(vec![ip]);
    }
    match attempt::relay_addresses(engine, dns_state, bare) {
        Ok(a) => {
            t.say(
                Mark::Ok,
                "dns",
                &format!("{bare} through {through}: {}", addresses(&a)),
            );
            Some(a)
        }
        Err(r) => {
            // A name that does not exist (x.1.2) is for the admin to fix, not to wait on.
            let code = if r.enhanced().is_some_and(|e| e.ends_with(".1.2")) {
                Sysexit::Unavailable
            } else {
                Sysexit::TempFail
            };
            t.fail(
                code,
                "dns",
                &format!("{bare} through {through}: {}", r.text_without_enhanced()),
            );
            None
        }
    }
}

fn addresses(a: &[IpAddr]) -> String {
    a.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The longest the check waits for each reply to AUTH (`Timeout.helo` when shorter, as
/// a delivery waits): a server that never answers a wrong password is a failed step
/// within a minute, not a five-minute silence.
pub const AUTH_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Connect, greet, EHLO, TLS (the delivery's [`Session::open`]), each line printed as
/// soon as the session is open; then AUTH ([`Session::authenticate_within`], bounded by
/// [`AUTH_WAIT`]) and the probe.
#[allow(clippy::too_many_arguments)]
fn session(
    t: &mut Tally,
    s: &Setup,
    engine: &Engine,
    host: &str,
    port: u16,
    addrs: &[IpAddr],
    mx: bool,
    to: Option<&str>,
) {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    // The policy and credentials a delivery to this host would use.
    let mx_tls = TlsPolicy {
        mode: TlsMode::Opportunistic,
        verify: false,
        ..TlsPolicy::default()
    };
    let policy = if mx { &mx_tls } else { &engine.tls };
    let creds = match &engine.auth {
        _ if mx => None,
        Ok(a) => a
            .iter()
            .find(|a| a.host.eq_ignore_ascii_case(bare))
            .map(|a| Credentials {
                user: a.user.clone(),
                password: a.password.clone(),
            }),
        Err(why) => {
            // Readable by root and the spool's group alone, as it should be: say so.
            let hint = if nix::unistd::geteuid().is_root() {
                ""
            } else {
                " (run the check as root to use the credentials)"
            };
            t.fail(Sysexit::Config, "auth", &format!("{why}{hint}"));
            return;
        }
    };
    let mut buf: Vec<u8> = Vec::new();
    let opened = {
        let mut out: Option<&mut dyn std::io::Write> = Some(&mut buf);
        Session::open(
            host,
            port,
            addrs,
            &engine.host_name,
            &engine.timeouts,
            policy,
            // AUTH comes after the lines of the steps before it (below).
            None,
            &mut out,
            "check",
            "check",
        )
    };
    let transcript = String::from_utf8_lossy(&buf).into_owned();
    // The server's lines only: its greeting is the first.
    let greeting = transcript
        .lines()
        .find(|l| !l.starts_with(">>> ") && !l.starts_with("check... "))
        .unwrap_or("")
        .to_string();
    let tls_name = match policy.mode {
        TlsMode::Implicit => "TLS (SMTPS)",
        _ => "STARTTLS",
    };
    let connected = |t: &mut Tally, peer: &str| {
        t.say(Mark::Ok, "connect", &format!("{bare} [{peer}] port {port}"));
    };
    let mut session = match opened {
        Ok(sess) => sess,
        Err(OpenFailure { reply, phase, .. }) => {
            let why = reply.text_without_enhanced();
            let code = if reply.is_permanent() {
                Sysexit::Unavailable
            } else {
                Sysexit::TempFail
            };
            let peer = addrs.first().map(IpAddr::to_string).unwrap_or_default();
            match phase {
                None => t.fail(code, "connect", &format!("{bare} port {port}: {why}")),
                Some(p) => {
                    connected(t, &peer);
                    let implicit = policy.mode == TlsMode::Implicit;
                    if implicit && p != State::StartTlsReply {
                        t.say(Mark::Ok, "tls", &format!("{tls_name} handshake"));
                    }
                    match p {
                        State::Greeting => t.fail(code, "greeting", &why),
                        State::EhloReply => {
                            t.say(Mark::Ok, "greeting", &greeting);
                            t.fail(code, "ehlo", &why);
                        }
                        State::StartTlsReply => {
                            if !implicit {
                                t.say(Mark::Ok, "greeting", &greeting);
                                t.say(Mark::Ok, "ehlo", &ehlo_words(&transcript));
                            }
                            t.fail(Sysexit::TempFail, "tls", &why);
                            if let Some(der) =
                                offered_certificate(engine, host, port, addrs, policy)
                            {
                                t.say(
                                    Mark::Info,
                                    "tls",
                                    &format!(
                                        "the certificate {bare} offers: {}",
                                        describe_certificate(&der)
                                    ),
                                );
                            }
                        }
                        _ => {
                            t.say(Mark::Ok, "greeting", &greeting);
                            t.say(Mark::Ok, "ehlo", &ehlo_words(&transcript));
                            if policy.mode != TlsMode::Off {
                                t.say(Mark::Ok, "tls", tls_name);
                            }
                            t.fail(Sysexit::Unavailable, "auth", &why);
                        }
                    }
                }
            }
            return;
        }
    };
    connected(t, &session.peer.ip().to_string());
    if policy.mode == TlsMode::Implicit {
        t.say(Mark::Ok, "tls", "TLS (SMTPS) handshake");
    }
    t.say(Mark::Ok, "greeting", &greeting);
    t.say(Mark::Ok, "ehlo", &offers(&session));
    tls_lines(t, &session, policy, tls_name);
    match (&creds, session.caps.auth.is_empty()) {
        (Some(c), false) => {
            let mut out: Option<&mut dyn std::io::Write> = None;
            if let Err(reply) = session.authenticate_within(c, policy, AUTH_WAIT, &mut out) {
                // A refusal of the login (the server's reply, or no mechanism it may
                // use) is permanent for the check; a timeout or a closed connection
                // is not.
                let security = format!("{} ", rsendmail::status::SECURITY_TEMP);
                let code = if reply.is_permanent()
                    || reply
                        .lines
                        .first()
                        .is_some_and(|l| l.starts_with(&security))
                {
                    Sysexit::Unavailable
                } else {
                    Sysexit::TempFail
                };
                t.fail(code, "auth", &reply.text_without_enhanced());
                return;
            }
            t.say(
                Mark::Ok,
                "auth",
                &format!(
                    "{bare} accepted the credentials from {}",
                    s.cfg
                        .auth_path
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
            )
        }
        (Some(_), true) => t.say(
            Mark::Warn,
            "auth",
            &format!("{bare} offers no AUTH: the credentials for it are not used"),
        ),
        (None, false) if !mx => t.say(
            Mark::Warn,
            "auth",
            &format!(
                "{bare} offers AUTH ({}) but auth.conf has no credentials for {bare}",
                session.caps.auth.join(" ")
            ),
        ),
        (None, _) => {}
    }
    if let Some(rcpt) = to {
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "root".into());
        let from = engine.qualify(&user);
        let mut out: Option<&mut dyn std::io::Write> = None;
        match session.probe(&from, rcpt, &mut out) {
            Ok(p) => {
                let line = |r: &Reply| r.summary();
                if !p.mail.is_positive() {
                    t.fail(
                        reply_code(&p.mail),
                        "mail",
                        &format!("MAIL FROM:<{from}>: {}", line(&p.mail)),
                    );
                } else {
                    t.say(
                        Mark::Ok,
                        "mail",
                        &format!("MAIL FROM:<{from}>: {}", line(&p.mail)),
                    );
                }
                if let Some(r) = &p.rcpt {
                    let text = format!(
                        "RCPT TO:<{rcpt}>: {} (then RSET: nothing was sent)",
                        line(r)
                    );
                    if r.is_positive() {
                        t.say(Mark::Ok, "rcpt", &text);
                    } else {
                        t.fail(reply_code(r), "rcpt", &text);
                    }
                }
            }
            Err(r) => t.fail(Sysexit::TempFail, "probe", &r.text_without_enhanced()),
        }
    }
    session.close(&mut None);
}

fn reply_code(r: &Reply) -> Sysexit {
    if r.is_permanent() {
        Sysexit::Unavailable
    } else {
        Sysexit::TempFail
    }
}

/// The keywords of the first EHLO reply in a session's transcript (a session that
/// failed later has no [`Session::caps`] to read).
fn ehlo_words(transcript: &str) -> String {
    let words: Vec<&str> = transcript
        .lines()
        .skip_while(|l| !l.starts_with(">>> EHLO"))
        .skip(1)
        .take_while(|l| !l.starts_with(">>> "))
        .skip(1)
        .filter_map(|l| l.get(4..))
        .collect();
    words.join(", ")
}

/// What the server offers, in its EHLO words.
fn offers(s: &Session) -> String {
    let c = &s.caps;
    let mut v: Vec<String> = Vec::new();
    if !c.esmtp {
        return "HELO only (EHLO refused)".into();
    }
    for (on, name) in [
        (c.pipelining, "PIPELINING"),
        (c.eightbitmime, "8BITMIME"),
        (c.dsn, "DSN"),
        (c.smtputf8, "SMTPUTF8"),
        (c.starttls, "STARTTLS"),
    ] {
        if on {
            v.push(name.into());
        }
    }
    if let Some(n) = c.size {
        v.push(format!("SIZE {n}"));
    }
    if !c.auth.is_empty() {
        v.push(format!("AUTH {}", c.auth.join(" ")));
    }
    if v.is_empty() {
        "no extensions".into()
    } else {
        v.join(", ")
    }
}

/// The certificate the server offers, fetched on a second connection that checks
/// nothing and sends no credentials (after a TLS failure, to show what did not pass);
/// `None` when there is none to get (the server does not speak TLS at all).
fn offered_certificate(
    engine: &Engine,
    host: &str,
    port: u16,
    addrs: &[IpAddr],
    policy: &TlsPolicy,
) -> Option<Vec<u8>> {
    let look = TlsPolicy {
        mode: policy.mode,
        verify: false,
        ..TlsPolicy::default()
    };
    let s = Session::open(
        host,
        port,
        addrs,
        &engine.host_name,
        &engine.timeouts,
        &look,
        None,
        &mut None,
        "check",
        "check",
    )
    .ok()?;
    let der = s.peer_certificate();
    s.close(&mut None);
    der
}

/// The TLS step of an open session: the certificate, how it was checked.
fn tls_lines(t: &mut Tally, s: &Session, policy: &TlsPolicy, name: &str) {
    if !s.tls {
        match policy.mode {
            TlsMode::Off => t.say(
                Mark::Skip,
                "tls",
                "no TLS configured: mail goes in clear text",
            ),
            _ => t.say(
                Mark::Warn,
                "tls",
                &format!(
                    "{} does not offer STARTTLS: mail goes in clear text",
                    s.host
                ),
            ),
        }
        return;
    }
    let Some(der) = s.peer_certificate() else {
        t.say(Mark::Ok, "tls", &format!("{name}: no certificate to show"));
        return;
    };
    let how = if policy.fingerprint.is_some() {
        "matches FINGERPRINT"
    } else if policy.verify {
        "verified"
    } else {
        "NOT verified (INSECURE)"
    };
    let desc = describe_certificate(&der);
    let mark = if policy.verify || policy.fingerprint.is_some() {
        Mark::Ok
    } else {
        Mark::Warn
    };
    t.say(mark, "tls", &format!("{name}, certificate {how}: {desc}"));
}

/// `subject ...; issuer ...; expires ... (in N days); SHA-256 ...` of a DER certificate.
fn describe_certificate(der: &[u8]) -> String {
    use openssl::x509::{X509, X509NameRef};
    use sha2::Digest;
    let fp: String = sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let Ok(x) = X509::from_der(der) else {
        return format!("unreadable certificate; SHA-256 {fp}");
    };
    let name = |n: &X509NameRef| -> String {
        n.entries()
            .map(|e| {
                let key = e.object().nid().short_name().unwrap_or("?");
                let val = e.data().to_string().unwrap_or_else(|_| "?".into());
                format!("{key}={val}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let left = openssl::asn1::Asn1Time::days_from_now(0)
        .ok()
        .and_then(|now| now.diff(x.not_after()).ok())
        .map(|d| format!(" (in {} days)", d.days))
        .unwrap_or_default();
    format!(
        "subject {}; issuer {}; expires {}{left}; SHA-256 {fp}",
        name(x.subject_name()),
        name(x.issuer_name()),
        x.not_after()
    )
}
