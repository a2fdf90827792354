//! MX delivery against a real DNS server (Debian's dnsmasq-base on a high port of
//! 127.0.0.1, `--conf-file=/dev/null`) and the fault SMTP server, and proof from dnsmasq's
//! query log that deferred mode asks nothing until the queue run.

use crate::harness::servers::{DnsServer, Peer, have_peer};
use crate::harness::{Env, MSG};
use std::fs;

fn setup(records: &[&str]) -> Option<(Env, DnsServer, Peer, Env)> {
    if !have_peer() {
        return None;
    }
    let env0 = Env::new();
    let dns = DnsServer::start(&env0.dir, records)?;
    let peer = Peer::start(&env0.dir, &[]);
    let env = Env::with_config(&format!(
        "RESOLVER 127.0.0.1:{}\nO MXPort={}\nO Timeout.resolver.retrans=1s\nO Timeout.connect=5s\n",
        dns.port, peer.port
    ));
    Some((env, dns, peer, env0))
}

const RECORDS: &[&str] = &[
    "--mx-host=mx.test,mx1.mx.test,10",
    "--mx-host=mx.test,mx2.mx.test,20",
    "--host-record=mx2.mx.test,127.0.0.1",
    "--host-record=implicit.test,127.0.0.1",
    "--mx-host=nullmx.test,.,0",
    "--server=/fail.test/127.0.0.1#1",
];

#[test]
fn mx_delivery_with_fallback_and_implicit_mx() {
    let Some((env, dns, peer, _keep)) = setup(RECORDS) else {
        return;
    };
    // mx1 has no address: mx2 (preference 20) takes the mail.
    env.sendmail(&["-odi", "a@mx.test", "b@implicit.test"], MSG)
        .code(0);
    let m = peer.messages();
    assert_eq!(m.len(), 1, "{}", peer.transcript());
    assert!(
        m[0].0.contains("[\"b@implicit.test\", \"a@mx.test\"]"),
        "{}",
        m[0].0
    );
    let q = dns.queries().join("\n");
    assert!(q.contains("query[MX] mx.test"), "{q}");
    assert!(q.contains("query[A] mx2.mx.test"), "{q}");
    assert!(q.contains("query[MX] implicit.test"), "{q}");
    assert!(env.entries().is_empty());
}

#[test]
fn unknown_domains_fail_at_once_lookup_failures_wait() {
    let Some((env, _dns, peer, _keep)) = setup(RECORDS) else {
        return;
    };
    env.sendmail(&["-odi", "c@nx.test"], MSG).code(68);
    assert!(env.entries().is_empty(), "NXDOMAIN is final");
    env.sendmail(&["-odi", "c@nullmx.test"], MSG).code(68);
    assert!(env.entries().is_empty(), "a null MX is final");
    env.sendmail(&["-odi", "c@x.fail.test"], MSG).code(0);
    let j = env.json();
    assert_eq!(j.len(), 1);
    assert!(
        j[0].contains(
            "\"reason\":\"Deferred: Name server: x.fail.test: host name lookup failure\""
        ),
        "{}",
        j[0]
    );
    assert!(peer.messages().is_empty());
}

/// Deferred mode: no query at submission (no MAILNAME either), all of it at the queue run.
#[test]
fn deferred_mode_asks_dns_only_at_the_queue_run() {
    let Some((env, dns, peer, _keep)) = setup(RECORDS) else {
        return;
    };
    fs::write(
        &env.conf,
        fs::read_to_string(&env.conf)
            .unwrap()
            .replace("MAILNAME test.example\n", ""),
    )
    .unwrap();
    env.sendmail(&["-odd", "a@mx.test", "b@implicit.test"], MSG)
        .code(0);
    env.sendmail(&["-odq", "c@mx.test"], MSG).code(0);
    assert!(
        dns.queries().is_empty(),
        "queries at submission: {:?}",
        dns.queries()
    );
    env.sendmail(&["-qf"], b"").code(0);
    assert!(!dns.queries().is_empty());
    assert_eq!(peer.messages().len(), 2);
}

/// Smarthost routes never touch DNS, whatever the mode.
#[test]
fn smarthost_routes_ask_no_dns() {
    let Some((env, dns, peer, _keep)) = setup(RECORDS) else {
        return;
    };
    env.add_config(&format!("SMARTHOST 127.0.0.1\nPORT {}\n", peer.port));
    env.sendmail(&["-odi", "a@mx.test"], MSG).code(0);
    assert_eq!(peer.messages().len(), 1);
    assert!(dns.queries().is_empty(), "{:?}", dns.queries());
}

/// SMARTHOST and relay-table host names are looked up through RESOLVER, like MX names:
/// names only that name server knows (not /etc/hosts, not the system's resolver) are
/// reached, and the queries show in its log.
#[test]
fn relay_names_are_resolved_through_resolver() {
    let Some((env, dns, peer, env0)) = setup(&[
        "--host-record=smarthost.relay.test,127.0.0.1",
        "--host-record=table.relay.test,127.0.0.1",
    ]) else {
        return;
    };
    let table = env0.dir.join("relays");
    fs::write(
        &table,
        format!("example.net table.relay.test:{}\n", peer.port),
    )
    .unwrap();
    env.add_config(&format!(
        "SMARTHOST smarthost.relay.test\nPORT {}\nRELAYTABLE {}\n",
        peer.port,
        table.display()
    ));
    env.sendmail(&["-odi", "a@example.org", "b@example.net"], MSG)
        .code(0);
    assert!(env.entries().is_empty(), "{:?}", env.json());
    assert_eq!(peer.messages().len(), 2, "{}", peer.transcript());
    let q = dns.queries().join("\n");
    assert!(q.contains("query[A] smarthost.relay.test"), "{q}");
    assert!(q.contains("query[A] table.relay.test"), "{q}");
}

/// An MX host with only an IPv6 address (::1) is reached over IPv6.
#[test]
fn mx_host_over_ipv6() {
    if !have_peer() {
        return;
    }
    let env0 = Env::new();
    let Some(dns) = DnsServer::start(
        &env0.dir,
        &[
            "--mx-host=six.test,mx6.six.test,10",
            "--host-record=mx6.six.test,::1",
        ],
    ) else {
        return;
    };
    let peer = Peer::start(&env0.dir, &[("BIND", "::1")]);
    let env = Env::with_config(&format!(
        "RESOLVER 127.0.0.1:{}\nO MXPort={}\nO Timeout.resolver.retrans=1s\nO Timeout.connect=5s\n",
        dns.port, peer.port
    ));
    let r = env.sendmail(&["-v", "-odi", "a@six.test"], MSG);
    r.code(0);
    assert!(
        r.stdout.contains(&format!(
            "Connecting to [::1] port {} via esmtp...",
            peer.port
        )),
        "{}",
        r.stdout
    );
    assert_eq!(peer.messages().len(), 1);
    assert!(
        dns.queries()
            .iter()
            .any(|q| q.contains("query[AAAA] mx6.six.test"))
    );
}

/// sendmail's MX loop rule: an MX record naming this host (MAILNAME) drops itself and
/// every record of its preference or worse; when none are left the recipient fails with
/// `554 5.3.5 MX list for DOMAIN. points back to HOST`, and nothing is sent anywhere.
#[test]
fn mx_list_pointing_back_here_is_not_followed() {
    let Some((env, _dns, peer, _keep)) = setup(&[
        "--host-record=test.example,127.0.0.1",
        // This host is the best MX: the mail would loop.
        "--mx-host=loop.test,test.example,10",
        // ... and worse hosts after it are no way out either.
        "--mx-host=loop2.test,TEST.example,10",
        "--mx-host=loop2.test,worse.loop2.test,20",
        "--host-record=worse.loop2.test,127.0.0.1",
        // This host a backup MX: the better host takes the mail.
        "--mx-host=backup.test,good.backup.test,10",
        "--mx-host=backup.test,test.example,20",
        "--host-record=good.backup.test,127.0.0.1",
    ]) else {
        return;
    };
    let r = env.sendmail(&["-v", "-odi", "a@loop.test"], MSG);
    assert!(
        r.stdout
            .contains("a@loop.test... MX list for loop.test. points back to test.example"),
        "{}",
        r.stdout
    );
    let r = env.sendmail(&["-v", "-odi", "b@loop2.test"], MSG);
    assert!(
        r.stdout
            .contains("b@loop2.test... MX list for loop2.test. points back to test.example"),
        "{}",
        r.stdout
    );
    // The reports (ErrorMode=m: mailed back to the local sender) carry sendmail's code.
    let reports: String = fs::read_dir(env.dir.join("mail"))
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    assert!(
        reports.contains(
            "554 5.3.5 a@loop.test... MX list for loop.test. points back to test.example"
        ),
        "{reports}"
    );
    assert!(reports.contains("Status: 5.3.5"), "{reports}");
    assert!(peer.messages().is_empty(), "{}", peer.transcript());
    env.sendmail(&["-odi", "c@backup.test"], MSG).code(0);
    let m = peer.messages();
    assert_eq!(m.len(), 1, "{}", peer.transcript());
    assert!(m[0].0.contains("c@backup.test"), "{}", m[0].0);
    assert!(env.entries().is_empty());
}
