//! Step three of an attempt, and the attempt itself: [`attempt`] takes one locked entry
//! through plan → send (SMTP per transaction, local delivery per recipient) → record
//! → report, and writes the new state. Every transport's result becomes a
//! [`RcptOutcome`]; nothing after this file reads a reply's text to decide anything.
//!
//! What a transaction (or a local delivery) delivered is recorded durably before the
//! next one begins, and before any report is queued (the state file replaced: write,
//! fsync, rename, directory fsync), so a run that dies later never sends it again;
//! failures stay open until their reports are queued. The attempt's full record follows
//! at its end: when every recipient is final the entry is removed (unlink; the directory
//! fsync is shared by the run's removals: `runner::Removals`), which is the record;
//! otherwise
//! the state file is replaced. When a record cannot be written, nothing more is sent
//! for the entry in that run; and before each transaction or local delivery, room for
//! that record is made (its file written to the size it may take, it and the spool
//! directory kept open: `make_room`, `LockedEntry::reserve_state`), so that a full disk,
//! no inode, a file-size limit or no descriptor left means nothing is sent whose outcome
//! could not be kept.

use super::engine::Engine;
use super::outcome::{Class, Mailer, RcptOutcome};
use super::plan::{self, Relay, Route, Transaction, route};
use super::record::{self, Counts};
use super::smtp::{self, Credentials, OpenFailure, Session, Step, TlsPolicy, Transcript};
use super::transcript::{outcome_lines, reply_lines, say};
use super::{bounce, cache, dns, local, reply};
use rsendmail::clock;
use rsendmail::exit::{Fatal, Sysexit};
use rsendmail::spool::entry::{Envelope, RcptState, Recipient, Reported, State};
use rsendmail::spool::{LockedEntry, Request, Spool};
use rsendmail::status::{self, StatusClass};
use std::io::{Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::os::unix::fs::FileExt;

/// Looks up a relay's host name: its addresses, or the reply to defer with.
type Resolve<'a> = dyn FnMut(&str) -> Result<Vec<IpAddr>, reply::Reply> + 'a;

/// A worker's connection to one set of hosts. Between transactions a usable one is in
/// the process's connection cache ([`cache`]), where any worker may take it; one that
/// broke stays here until it is replaced or the run ends (so that `-v` says `Closing
/// connection` where sendmail does).
#[derive(Default)]
pub struct Conn {
    session: Option<Session>,
    /// The relay could not be reached in this run (or loops back here): the failure to
    /// give without retrying.
    dead: Option<OpenFailure>,
    /// When `dead` is a server that is this host: sendmail's line for it
    /// ([`smtp::loop_line`]), for the report's transcript.
    loop_line: Option<String>,
    /// The cache's key, while this connection counts as busy in the cache.
    key: Option<cache::Key>,
    /// A connection of its own, outside the cache (a copy with shorter lines sent after
    /// a line-length refusal cost the connection).
    uncached: bool,
}

impl Conn {
    /// The worker's session to `targets`, opened on first use; a reused one is announced
    /// as sendmail does (`Using cached ESMTP connection to [ip] via relay...`). Host
    /// names are looked up by `resolve`. `mx`: the targets are MX hosts, not relays: TLS
    /// is opportunistic and unverified (as most MTAs do between MX hosts), and no AUTH
    /// is offered to them.
    fn get(
        &mut self,
        engine: &Engine,
        targets: &[(String, u16)],
        mx: bool,
        resolve: &mut Resolve<'_>,
        out: &mut Transcript<'_>,
        label: &str,
    ) -> Result<&mut Session, OpenFailure> {
        let via = if mx { "esmtp" } else { "relay" };
        if let Some(f) = &self.dead {
            let mut f = OpenFailure {
                closing: None,
                ..f.clone()
            };
            // A server that refused its greeting for now ([`refused_for_now`]): a later
            // message to it in this run is deferred without the server's words, as
            // sendmail's cached connection status defers it (`Deferred`). A failure made
            // here (`Connection refused by [ip]`) keeps its words (recorded:
            // `reason-refused-syntax-report-odi`).
            if refused_for_now(&f) {
                f.reply = reply::Reply::local(f.reply.code, f.reply.enhanced().unwrap_or_default());
            }
            return Err(f);
        }
        // A connection primed with the next message's commands is kept for it (its
        // `send` checks that it is that message, and gives it up if not).
        if self
            .session
            .as_ref()
            .is_some_and(|s| !s.is_usable() && !s.is_primed())
            && let Some(s) = self.session.take()
            && !s.quit_sent
        {
            s.close(out);
        }
        if self.session.is_none() && !self.uncached {
            // A cached connection to these hosts; or, while other workers use as many as
            // the run keeps busy in parallel (`cache::parallel`, usually one), one of them
            // when it is done (a moment's wait) rather than another connection; else one
            // opened below. Counted as busy from here.
            self.give_up_slot();
            let key: cache::Key = (targets.to_vec(), mx);
            match cache::acquire(&key, cache::WAIT_FOR_BUSY, cache::parallel(), out, label) {
                Ok(s) => {
                    self.session = s;
                    self.key = Some(key);
                }
                // Not `dead`: the next message to these hosts waits for a connection again.
                Err(cache::Full) => {
                    return Err(reply::Reply::with_status(
                        451,
                        status::CONGESTION,
                        format_args!(
                            "too many connections to {}",
                            targets.first().map_or("", |t| t.0.as_str())
                        ),
                    )
                    .into());
                }
            }
        }
        let reused = self.session.as_ref().is_some_and(Session::was_used);
        // The check costs a round trip per message. Unless a transcript shows it (where
        // sendmail's `Using cached` line comes after it), a server with PIPELINING gets
        // the RSET in the same group as MAIL, RCPT and DATA instead: a connection it
        // ended while cached is found out at that RSET's reply, before anything of the
        // message was sent, and the message goes over another ([`Session::lost_unused`]).
        let check = |s: &Session| !s.is_primed() && (out.is_some() || !s.caps.pipelining);
        if let Some(s) = &mut self.session
            && check(s)
            && s.reset_for_reuse(out).is_err()
            && let Some(s) = self.session.take()
        {
            s.close(out);
        }
        if let Some(s) = &self.session {
            if reused {
                say(
                    out,
                    &[format!(
                        "{label}... Using cached ESMTP connection to [{}] via {via}...",
                        s.peer.ip()
                    )],
                );
            }
        } else {
            let mut last: OpenFailure =
                reply::Reply::with_status(451, status::NO_ANSWER, "no smarthost configured").into();
            let none = Vec::new();
            let auth = match &engine.auth {
                _ if mx => &none,
                Ok(a) => a,
                Err(why) => {
                    self.give_up_slot();
                    let r = reply::Reply::with_status(451, status::SECURITY_TEMP, why);
                    self.dead = Some(r.clone().into());
                    return Err(r.into());
                }
            };
            for (host, port) in targets {
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                let addrs = match bare.parse::<IpAddr>() {
                    Ok(ip) => vec![ip],
                    Err(_) => {
                        // sendmail names the host it connects to as configured, before
                        // it looks the name up.
                        say(
                            out,
                            &[format!(
                                "{label}... Connecting to [{bare}] port {port} via {via}..."
                            )],
                        );
                        match resolve(bare) {
                            Ok(a) => a,
                            Err(r) => {
                                last = r.into();
                                continue;
                            }
                        }
                    }
                };
                let creds = Credentials::for_host(auth, bare);
                let mx_tls = TlsPolicy::for_mx();
                match Session::open(
                    host,
                    *port,
                    &addrs,
                    &engine.host_name,
                    &engine.timeouts,
                    if mx { &mx_tls } else { &engine.tls },
                    creds.as_ref(),
                    true,
                    out,
                    label,
                    via,
                    engine.interactive,
                ) {
                    Ok(mut s) => {
                        s.caps.pipelining &= engine.pipelining;
                        self.session = Some(s);
                        break;
                    }
                    Err(f) => {
                        if f.loops {
                            self.loop_line = Some(smtp::loop_line(host));
                        }
                        last = f;
                    }
                }
            }
            if self.session.is_none() {
                self.give_up_slot();
                // A permanent greeting refusal is still only a deferral for the message
                // (but a server that is this host: the mail would loop, and fails).
                if last.reply.is_permanent() && !last.loops {
                    last.reply =
                        reply::Reply::with_status(451, status::NETWORK_TEMP, last.reply.summary());
                }
                self.dead = Some(last.clone());
                return Err(last);
            }
        }
        self.session
            .as_mut()
            .ok_or_else(|| reply::Reply::with_status(451, status::NO_ANSWER, "no session").into())
    }

    /// After a transaction: a usable connection goes back to the cache for the next
    /// message to these hosts (this worker's or another's); a broken one stays here.
    fn release(&mut self, out: &mut Transcript<'_>) {
        if self.session.as_ref().is_some_and(Session::is_primed) {
            // Kept here, still counted as busy, for the message sent ahead.
            return;
        }
        if self.session.as_ref().is_some_and(Session::is_usable)
            && let Some(key) = self.key.take()
        {
            cache::put(&key, self.session.take(), out);
        } else {
            self.give_up_slot();
        }
    }

    /// Drop a session found dead (its close tells `-v` of it); the next [`Conn::get`]
    /// takes another cached connection to these hosts or opens a new one.
    fn discard(&mut self, out: &mut Transcript<'_>) {
        if let Some(s) = self.session.take() {
            s.close(out);
        }
    }

    /// This connection no longer counts as busy in the cache.
    fn give_up_slot(&mut self) {
        if let Some(key) = self.key.take() {
            cache::put(&key, None, &mut None);
        }
    }

    fn close(&mut self, out: &mut Transcript<'_>) {
        self.give_up_slot();
        if let Some(s) = self.session.take() {
            s.close(out);
        } else if let Some(f) = self.dead.take()
            && (f.loops || refused_for_now(&f))
        {
            // A server that is this host, or one that refused its greeting for now:
            // sendmail keeps its connection's status to the end of the run, and says
            // it closes it last (recorded: `loop-ehlo-self-v`, `greet421-q-two-v`).
            say(out, f.closing.as_slice());
        }
    }
}

/// A server that answered and refused to go on for now (a 421 greeting): sendmail keeps such a connection's status to the end of the run, defers later
/// messages to it without the server's words and says it closes it last (recorded:
/// `greet421-syntax-report-v`, `greet421-q-two-v`).
fn refused_for_now(f: &OpenFailure) -> bool {
    matches!(f.phase, Some(smtp::State::Greeting)) && !f.reply.local && !f.reply.is_permanent()
}

/// One worker's connections, by relay.
pub type Conns = std::collections::HashMap<Relay, Conn>;

/// Which of an entry's open recipients an attempt delivers to (the runner's wake-up
/// deliveries: `wake.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Part {
    /// Every open recipient.
    #[default]
    All,
    /// The local recipients only, aliases and `.forward` files expanded first; the
    /// remote recipients (those expansions added too) are left open, and while any is
    /// left the attempt is not counted (its number, back-off and `retry` mark stay), so
    /// that the remote part is tried at once, as the entry's first attempt, elsewhere.
    Local,
    /// The remote recipients only (nothing is expanded): the local ones stay open.
    Remote,
}

/// What one worker thread keeps between entries.
pub struct Worker {
    pub conns: Conns,
    /// The resolver, made on the first MX lookup.
    pub dns: Option<Result<dns::Dns, String>>,
    pub index: usize,
    /// Which recipients the next attempt delivers to.
    pub part: Part,
}

impl Worker {
    pub fn new(index: usize) -> Worker {
        Worker {
            conns: Conns::new(),
            dns: None,
            index,
            part: Part::All,
        }
    }

    /// Close every connection (QUIT), at the end of a run.
    pub fn close(&mut self, out: &mut Transcript<'_>) {
        for (_, mut c) in self.conns.drain() {
            c.close(out);
        }
    }
}

/// What one attempt did.
#[derive(Debug, Default)]
pub struct Attempt {
    pub counts: Counts,
    /// Every recipient is final: the entry is to be removed ([`super::runner`] does it
    /// once the lock's work is done).
    pub removed: bool,
    /// Entries this attempt queued (delivery reports), to deliver next.
    pub new_entries: Vec<String>,
    /// The recipients this attempt, by a deliverer that is not root, deferred for want
    /// of root and handed to the root queue runner
    /// ([`super::background::hand_to_root_runner`]), once the entry was unlocked.
    pub handed: Vec<String>,
}

/// The entry a worker attempts next, locked before its turn, so that its MAIL, RCPT and
/// DATA can go out with the final dot of the message before it (RFC 2920 §3.1:
/// [`smtp::Outgoing::next`]), one round trip per message on a reused connection.
pub struct Lookahead<'a> {
    /// The entry locked ahead: the worker's next attempt is at it, whatever was sent.
    pub ahead: Option<LockedEntry>,
    /// The worker's next entry, locked, when one is at hand without waiting for it.
    pub fetch: &'a mut dyn FnMut() -> Option<LockedEntry>,
}

/// The recipients of an entry still open, in the order an attempt plans them.
fn open_recipients(locked: &LockedEntry) -> Vec<usize> {
    let env = &locked.entry.envelope;
    // In queue order: a `.forward`'s targets where the user was among the recipients.
    let mut open: Vec<usize> = env
        .queue_order()
        .into_iter()
        .filter(|&i| !locked.entry.state.of(i).is_final())
        .collect();
    // An entry tried before goes out with its open recipients sorted by address, as
    // sendmail sends them once it has rewritten its queue file after an attempt (the
    // plan sends a transaction's recipients in reverse queue order, so the queue order
    // is made descending); its report then lists them in reverse (recorded:
    // `report-order-expire`, `report-order-three-runs`, `report-order-two-lists`).
    if locked.entry.state.attempts > 0 {
        open.sort_by(|&a, &b| {
            let key = |i: usize| env.recipients.get(i).map(|r| r.address.as_str());
            key(b).cmp(&key(a))
        });
    }
    open
}

/// The command lines the entry `next` would go out with on `s`, the connection of the
/// transaction `t` that is about to end, when its whole attempt is one SMTP transaction
/// to the same hosts, routed without a lookup (nothing to wait for); `None` otherwise.
/// Its own attempt plans it again and sends it, and the session checks that the
/// commands are the same ([`smtp::Session::send`]).
fn following(
    engine: &Engine,
    next: &LockedEntry,
    t: &Transaction,
    index: usize,
    s: &Session,
) -> Option<(String, Vec<String>)> {
    let env = &next.entry.envelope;
    if next.entry.state.bounce.is_some()
        // A report of ours in 8-bit text is reformed for the server (`send_transaction`).
        || (env.report.is_some() && env.body_type.as_deref() == Some("8BITMIME"))
    {
        return None;
    }
    let open = open_recipients(next);
    let relayed = |i: &usize| {
        env.recipients
            .get(*i)
            .is_some_and(|r| matches!(route(engine, &r.address), Route::Relay(_)))
    };
    if open.is_empty() || !open.iter().all(relayed) {
        return None;
    }
    // The entry's own descriptor, read at offsets (no copy, no seek).
    let file: &std::fs::File = &next.entry.file;
    let mut head = vec![0u8; env.header_bytes.min(1 << 20) as usize];
    let _ = file.read_exact_at(&mut head, next.entry.data_offset);
    let hops = plan::received_count(&head);
    // Never asked: every recipient goes to a relay.
    let mut no_mx = |_: &str| dns::MxResult::Temp(status::DIRECTORY_TEMP, String::new());
    let p = plan::plan(engine, env, &open, hops, index, &mut no_mx);
    let [nt] = &p.transactions[..] else {
        return None;
    };
    if !p.decided.is_empty()
        || !p.local.is_empty()
        || nt.hosts != t.hosts
        || nt.mailer != t.mailer
        || nt.verp.is_some()
    {
        return None;
    }
    let rcpts: Vec<(usize, &Recipient)> = nt
        .rcpts
        .iter()
        .filter_map(|&i| Some((i, env.recipients.get(i)?)))
        .collect();
    let (sender, xverp, addrs) = envelope_of(engine, env, nt, &rcpts, s);
    let mut f = MessageAt::new(file, next.entry.data_offset, next.entry.size);
    let mut m = smtp::Outgoing {
        sender: &sender,
        recipients: out_rcpts(&rcpts, &addrs),
        data: &mut f,
        body: env.body_type.as_deref(),
        ret: env.ret.as_deref(),
        envid: env.envid.as_deref(),
        xverp,
        null_size: !bounce::made_here_headers_only(&env.id),
        notify: None,
        body_limit: rsendmail::message::wire::MAX_BODY_LINE,
        reconnect: None,
        id: &env.id,
        next: None,
        go: None,
    };
    let lines = s.commands(&mut m)?;
    Some((env.id.clone(), lines))
}

/// A transaction's envelope as it goes out on `s`: the sender (the recipient's own VERP
/// sender when the server does not make it), `XVERP=` when the server does, and the
/// recipients qualified (as sendmail -v names them).
fn envelope_of<'t>(
    engine: &Engine,
    env: &Envelope,
    t: &'t Transaction,
    rcpts: &[(usize, &Recipient)],
    s: &Session,
) -> (String, Option<&'t str>, Vec<String>) {
    let sender = engine.qualify(t.sender.as_deref().unwrap_or(&env.sender));
    // With XVERP the server makes each recipient's sender; without it, this
    // transaction's one recipient gets its own here.
    let xverp = t.verp.as_deref().filter(|_| s.caps.xverp);
    let sender = match (&t.verp, rcpts) {
        (Some(d), [(_, r)]) if xverp.is_none() => {
            rsendmail::verp::sender(&sender, d, &engine.qualify(&r.address))
        }
        _ => sender,
    };
    let addrs = rcpts
        .iter()
        .map(|(_, r)| engine.qualify(&r.address))
        .collect();
    (sender, xverp, addrs)
}

/// A VERP transaction whose recipient's sender would have a local part over RFC 5321's
/// 64 octets goes from the plain sender ([`rsendmail::verp::sender`]); the log and `-v`
/// say so, and why.
fn overlong_verp_note(
    engine: &Engine,
    env: &Envelope,
    t: &Transaction,
    addrs: &[String],
    xverp: bool,
    out: &mut Transcript<'_>,
) {
    let (Some(d), [rcpt], false) = (&t.verp, addrs, xverp) else {
        return;
    };
    let sender = engine.qualify(t.sender.as_deref().unwrap_or(&env.sender));
    if let Some(n) = rsendmail::verp::overlong(&sender, d, rcpt) {
        let line = format!(
            "{rcpt}... VERP sender not used: its local part would be {n} octets, over \
             RFC 5321's {}; sent from <{sender}>",
            rsendmail::verp::MAX_LOCAL_PART
        );
        log::info!("{}: {line}", env.id);
        say(out, &[line]);
    }
}

/// The recipients of a transaction as its RCPTs give them.
fn out_rcpts<'r>(rcpts: &[(usize, &'r Recipient)], addrs: &'r [String]) -> Vec<smtp::OutRcpt<'r>> {
    rcpts
        .iter()
        .zip(addrs)
        .map(|((_, r), a)| smtp::OutRcpt {
            address: a,
            notify: r.notify.as_deref().filter(|_| super::record::primary(r)),
            orcpt: r.orcpt.as_deref(),
        })
        .collect()
}

/// When the open local recipients of an entry are next due after an attempt that left
/// `after` (from `before`, with `outcomes`, at `now`), if before `after.next_attempt`
/// ([`State::local_next_attempt`]): `O QueueRetryLocal=` after this attempt when it
/// deferred a local recipient while a remote one stays open; what it was when this
/// attempt tried no local recipient (a remote part's); otherwise none (every local
/// recipient is final, or the entry is all local and follows its own back-off).
fn local_next_attempt(
    engine: &Engine,
    before: &rsendmail::spool::entry::State,
    after: &rsendmail::spool::entry::State,
    recipients: usize,
    outcomes: &[RcptOutcome],
    now: i64,
    is_local: &dyn Fn(usize) -> bool,
) -> Option<i64> {
    let open =
        |local: bool| (0..recipients).any(|i| !after.of(i).is_final() && is_local(i) == local);
    if !open(true) {
        return None;
    }
    let tried_local = outcomes.iter().any(|o| is_local(o.rcpt));
    let at = if !tried_local {
        before.local_next_attempt?
    } else if open(false)
        && outcomes
            .iter()
            .any(|o| is_local(o.rcpt) && o.class == super::outcome::Class::Temporary)
    {
        now.saturating_add(engine.retry_local)
    } else {
        return None;
    };
    after.next_attempt.is_none_or(|n| at < n).then_some(at)
}

/// Try one locked entry once. `look`: the worker's next entry may be locked ahead and
/// its commands sent with this one's final dot ([`Lookahead`]).
pub fn attempt(
    engine: &Engine,
    spool: &Spool,
    locked: &mut LockedEntry,
    w: &mut Worker,
    out: &mut Transcript<'_>,
    mut look: Option<&mut Lookahead<'_>>,
) -> Result<Attempt, Fatal> {
    let started = std::time::Instant::now();
    // A report whose original has not recorded it yet (a run died between the report's
    // commit and that record): left, not counted as tried, until the run that completes
    // the original's step has; sent now, it would be made again by that run.
    if waits_for_its_original(spool, &locked.entry.envelope) {
        log::info!(
            "{}: its original has not recorded it yet: left for now",
            locked.entry.envelope.id
        );
        return Ok(Attempt::default());
    }
    // A run killed between queuing its reports and its record: that record, when
    // every report is queued.
    // Those reports are named as this attempt's (`--queued` prints them, and
    // `rsendmail-admin bounce` hands them on to delivery).
    let (gone, recovered) = take_reported(spool, locked)?;
    if gone {
        return Ok(Attempt {
            removed: true,
            new_entries: recovered,
            ..Attempt::default()
        });
    }
    // An entry `rsendmail-admin bounce` marked returns every open recipient at once.
    let part = if locked.entry.state.bounce.is_some() {
        Part::All
    } else {
        w.part
    };
    // Aliases met here and `.forward` files first: their targets join this entry and go
    // out with its other recipients in this attempt (`expand_at_delivery`).
    let (expanded, refused, owned) = if locked.entry.state.bounce.is_none() && part != Part::Remote
    {
        expand_at_delivery(engine, locked, out)?
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
    let env = locked.entry.envelope.clone();
    let mut result = Attempt {
        new_entries: recovered,
        ..Attempt::default()
    };
    let is_local = |i: usize| {
        env.recipients
            .get(i)
            .is_some_and(|r| route(engine, &r.address) == Route::Local)
    };
    let open: Vec<usize> = open_recipients(locked)
        .into_iter()
        .filter(|&i| !expanded.iter().any(|o| o.rcpt == i))
        .filter(|&i| match part {
            Part::All => true,
            Part::Local => is_local(i),
            Part::Remote => !is_local(i),
        })
        .collect();
    // Nothing of this part to do: the entry is left as it is, not counted as tried.
    if part != Part::All && open.is_empty() && expanded.is_empty() && refused.is_empty() {
        return Ok(result);
    }
    let qf_error = |e: std::io::Error| Fatal::new(Sysexit::IoErr, format!("qf{}: {e}", env.id));
    // The message (header block and body) and its length, for every transport.
    let qf = locked.entry.file.try_clone().map_err(qf_error)?;
    let (data_offset, size) = (locked.entry.data_offset, locked.entry.size);
    let open_message = || -> std::io::Result<(std::fs::File, u64)> {
        let mut f = qf.try_clone()?;
        f.seek(SeekFrom::Start(data_offset))?;
        Ok((f, size.saturating_sub(data_offset)))
    };
    let hops = {
        let mut head = vec![0u8; env.header_bytes.min(1 << 20) as usize];
        let _ = qf.read_exact_at(&mut head, data_offset);
        plan::received_count(&head)
    };
    // Our own Received field counts, as sendmail counts the one it adds (a message that
    // came with 25 is one hop too many for MaxHopCount=25: `hop-received-25`).
    let Worker {
        conns, dns, index, ..
    } = w;
    // The resolver (and its runtime) is made on the first MX lookup only, and this
    // host's names (gethostname(2)) are asked for then too: mail through a smarthost
    // needs neither.
    let mut own: Option<Vec<String>> = None;
    let mut mx = |d: &str| match dns.get_or_insert_with(|| {
        dns::Dns::new(&engine.resolver, engine.dns_timeout, engine.dns_retries)
    }) {
        Ok(r) => r.mx(
            d,
            own.get_or_insert_with(|| dns::own_names(&engine.host_name)),
        ),
        Err(e) => dns::MxResult::Temp(status::DIRECTORY_TEMP, e.clone()),
    };
    let planned = match &locked.entry.state.bounce {
        // `rsendmail-admin bounce`: every open recipient is returned, nothing is sent.
        Some(reason) => plan::returned(
            &open,
            reason,
            locked.entry.state.bounce_by.as_deref(),
            &|i| {
                env.recipients
                    .get(i)
                    .map(|r| plan::route(engine, &r.address))
            },
        ),
        None => plan::plan(engine, &env, &open, hops, *index, &mut mx),
    };
    let address = |i: usize| {
        env.recipients
            .get(i)
            .map(|r| rsendmail::aliases::shown_target(&r.address).into_owned())
            .unwrap_or_default()
    };
    say(out, &outcome_lines(&planned.decided, &address));
    let mut outcomes = expanded;
    outcomes.extend(planned.decided);
    // The state before this attempt: what `record` starts from at the end, whatever
    // was recorded on the way.
    let before = locked.entry.state.clone();
    // Units of delivery (transactions, then local recipients) still to go: after each
    // one that delivered, while others remain, what it delivered is recorded at once,
    // so that a run that dies later never sends it again (the duplicate window is the
    // one instant between a 250 and its record). When that record cannot be written,
    // nothing more is sent for this entry: no delivery whose result cannot be kept.
    let mut units_left = planned.transactions.len() + planned.local.len();
    // An entry that wants no connection (its recipients are local, or decided) keeps no
    // later entry of its run waiting for its turn (`cache::take_turn`).
    if planned.transactions.is_empty() {
        cache::wants_no_connection();
    }
    let mut unrecorded: Option<String> = None;
    // A mark (`rsendmail-admin hold`, `bounce`, `delete`) found before the first unit
    // was sent (`make_room`, or at a point of no return: `Looks::go`), and how many
    // units sent something.
    let (mut marked_first, mut sent_units) = (false, 0usize);
    let looks = Looks::new();
    let mut resolve = |name: &str| relay_addresses(engine, dns, name);
    for t in planned.transactions {
        units_left -= 1;
        if make_room(locked, env.recipients.len(), &mut unrecorded, &looks) && sent_units == 0 {
            marked_first = true;
        }
        if let Some(why) = &unrecorded {
            let held_back = not_sent(&t.rcpts, why, t.mailer);
            say(out, &withheld_lines(&held_back, why, &address));
            outcomes.extend(held_back);
            continue;
        }
        // Before MAIL (the connection may have taken long: its greeting, TLS, AUTH)
        // and, without PIPELINING, before DATA: the mark looked at again.
        let go = || looks.go_smtp(locked);
        let conn = conns.entry(t.hosts.clone()).or_default();
        let message = MessageAt::new(&qf, data_offset, size);
        // The last unit of the attempt: the worker's next entry may follow on its
        // connection, its commands sent with this one's final dot.
        let worker = *index;
        let mut prime = |s: &Session| {
            // Only where a connection is kept for the next message, and no other
            // worker waits for this one (it goes back to the cache for that worker).
            let key: cache::Key = (t.hosts.clone(), t.mailer == Mailer::Esmtp);
            if engine.cache_size == 0 || cache::others_waiting(&key, cache::parallel()) {
                return None;
            }
            let la = look.as_deref_mut()?;
            if la.ahead.is_none() {
                la.ahead = (la.fetch)();
            }
            following(engine, la.ahead.as_ref()?, &t, worker, s)
        };
        let next: Option<&mut smtp::Next<'_>> = if units_left == 0 {
            Some(&mut prime)
        } else {
            None
        };
        let got = send_transaction(
            engine,
            &env,
            &t,
            conn,
            &mut resolve,
            message,
            next,
            &go,
            out,
        );
        // A connection that works: these destinations' other due entries may follow it
        // (`runner::FollowUp`).
        if got
            .as_ref()
            .is_ok_and(|g| g.iter().any(RcptOutcome::is_success))
            && conn
                .session
                .as_ref()
                .is_some_and(|s| s.is_usable() || s.is_primed())
        {
            for &i in &t.rcpts {
                if let Some(r) = env.recipients.get(i) {
                    cache::worked(route(engine, &r.address));
                }
            }
        }
        conn.release(out);
        let got = got?;
        // A mark found at its MAIL or DATA: nothing more is sent (a unit that sent
        // nothing counts as one held back before it began).
        let stopped = looks.found();
        if !got.iter().all(|o| o.held_back) {
            sent_units += 1;
        } else if stopped.is_some() && sent_units == 0 {
            marked_first = true;
        }
        if units_left > 0 {
            unrecorded = record_on_the_way(locked, &got);
        }
        if stopped.is_some() {
            unrecorded = stopped;
        }
        outcomes.extend(got);
    }
    // Local recipients, one at a time (each in a child with the target's privileges).
    // Who wrote the queue file: root (a root runner's expansion) or the submitter.
    let qf_owner = {
        use std::os::unix::fs::MetadataExt;
        locked.entry.file.metadata().map(|m| m.uid()).ok()
    };
    for i in planned.local {
        units_left = units_left.saturating_sub(1);
        let Some(r) = env.recipients.get(i) else {
            continue;
        };
        // A `|command` or `/file` target runs as the uid its queue file names (the owner
        // of the aliases, `:include:` or `.forward` file it came from). Only root, or
        // that user's own process, writes such a line: a queue file of another owner (one
        // planted or copied by a member of the spool's group) may not make a command
        // run as someone else.
        if let Some(o) = r.owner
            && o != 0
            && qf_owner.is_none_or(|q| q != 0 && q != o)
        {
            let why = format!(
                "queue file owned by uid {} may not run {} as uid {o}",
                qf_owner.map_or_else(|| "?".to_string(), |q| q.to_string()),
                r.address
            );
            log::error!("{}: {why}", env.id);
            let o = RcptOutcome::new(
                i,
                reply::Reply::with_status(550, status::NOT_AUTHORIZED, why),
                Mailer::Local,
                None,
            );
            say(out, &outcome_lines(std::slice::from_ref(&o), &address));
            outcomes.push(o);
            continue;
        }
        if make_room(locked, env.recipients.len(), &mut unrecorded, &looks) && sent_units == 0 {
            marked_first = true;
        }
        if let Some(why) = &unrecorded {
            let held_back = not_sent(&[i], why, Mailer::Local);
            say(out, &withheld_lines(&held_back, why, &address));
            outcomes.extend(held_back);
            continue;
        }
        // Its supervisor journals it in `jf<ID>`, which the next state written takes in.
        locked.entry.journal = true;
        // A mailbox or file: once its locks are held (a wait of up to Timeout.mboxlock
        // for each), the mark looked at again. A `|command` has no such wait
        // (`local::Supervised::go`).
        let go = || looks.go(locked);
        let sup = local::Supervised {
            qf: &qf,
            offset: data_offset,
            len: size.saturating_sub(data_offset),
            spool,
            rcpt: i,
            go: &go,
        };
        let o = deliver_local(engine, &env, i, &sup);
        // A mark found then: nothing appended (unless its supervisor journalled the
        // delivery all the same), nothing more sent, as one found before it.
        let stopped = looks.found();
        if let Some(why) = &stopped
            && !o.is_success()
        {
            let held_back = not_sent(&[i], why, Mailer::Local);
            say(out, &withheld_lines(&held_back, why, &address));
            outcomes.extend(held_back);
            if sent_units == 0 {
                marked_first = true;
            }
            unrecorded = stopped;
            continue;
        }
        sent_units += 1;
        if r.address.starts_with(['|', '/']) {
            // sendmail's prog mailer: `Sent` alone, and nothing for a failure, which
            // its report tells (recorded: `prog-space-v-odi`, `prog-signal-kill-v-odi`);
            // its file mailer the same without the `Connecting` line
            // (`file-devnull-v-odi`, `file-space-v-odi`).
            let shown = rsendmail::aliases::shown_target(&r.address);
            if r.address.starts_with('|') {
                say(out, &[format!("{shown}... Connecting to prog...")]);
            }
            match o.class {
                Class::Delivered => say(out, &[format!("{shown}... Sent")]),
                Class::Permanent => {}
                _ => say(out, &outcome_lines(std::slice::from_ref(&o), &address)),
            }
        } else {
            say(out, &[format!("{}... Connecting to local...", r.address)]);
            // sendmail's local mailer tells a delivery as `Sent` alone (recorded:
            // `data5-double-alias-v`); the log's `stat=` keeps the mailbox's path.
            match o.class {
                Class::Delivered => say(out, &[format!("{}... Sent", r.address)]),
                _ => say(out, &outcome_lines(std::slice::from_ref(&o), &address)),
            }
        }
        if units_left > 0 {
            unrecorded = record_on_the_way(locked, std::slice::from_ref(&o));
        }
        if stopped.is_some() {
            unrecorded = stopped;
        }
        outcomes.push(o);
    }
    // Its deletion asked for during the attempt: the entry goes now, with what it
    // delivered, and nothing more (no report, no record of a later attempt), as
    // `rsendmail-admin delete` of an entry not being delivered takes it. Should the
    // removal fail, what was delivered is recorded and the mark stays, so that the next
    // holder of its lock removes it.
    if locked
        .mark_at_end()
        .is_some_and(|m| m.request == Request::Delete)
    {
        deleted_during_delivery(engine, locked, &env, &before, &outcomes, &owned, started);
        result.removed = true;
        locked.pending_state = Some(record::delivered_so_far(&locked.entry.state, &outcomes));
        return Ok(result);
    }
    // Its hold or return asked for after the run listed it, and found before any of it
    // was sent or decided: not an attempt. Nothing is recorded; the mark is carried out
    // as the entry is let go (held, or returned by its next attempt, due now), or,
    // withdrawn meanwhile (`release`), the entry stays queued as it was.
    if marked_first && outcomes.iter().all(|o| o.held_back) && refused.is_empty() {
        log::info!(
            "{}: not counted as an attempt: nothing of it was sent",
            env.id
        );
        return Ok(result);
    }
    // Measured when the attempt ends, as sendmail does: `delay` is never less than
    // `xdelay`, and the back-off counts from the end.
    let xdelay = started.elapsed().as_secs() as i64;
    let now = clock::now();
    let rec = record::record_owned(
        engine,
        &env,
        &before,
        locked.entry.size,
        &outcomes,
        refused,
        &owned,
        now,
        xdelay,
    );
    for line in &rec.log {
        log::info!("{line}");
    }
    say(out, &rec.said);
    let mut rec = rec;
    // The local part of an entry whose remote part is still to go: not counted as an
    // attempt (`Part::Local`), so that the remote part goes out at once.
    let remote_to_go = part == Part::Local
        && (0..env.recipients.len()).any(|i| !rec.state.of(i).is_final() && !is_local(i));
    if remote_to_go {
        rec.state.attempts = before.attempts;
        rec.state.next_attempt = before.next_attempt;
        rec.state.retry = before.retry;
        // The remote recipients' deferral stays what mailq shows.
        if rec.state.reason.is_none() {
            rec.state.reason.clone_from(&before.reason);
        }
    }
    rec.state.local_next_attempt = local_next_attempt(
        engine,
        &before,
        &rec.state,
        env.recipients.len(),
        &outcomes,
        now,
        &is_local,
    );
    if let Some(t) = rec.state.local_next_attempt {
        super::wake::local_retry_at(&env.id, t);
    }
    let owed = !before.owed.is_empty();
    if owed {
        bounce::join_owed(engine, &env, &mut rec.reports, &before, &rec.transcript);
    }
    if !before.owner_owed.is_empty() || !before.owner_notes.is_empty() {
        bounce::join_owner_owed(
            engine,
            &env.sender,
            &mut rec.reports,
            &before,
            &rec.owner_transcripts,
        );
    }
    // The lines of refusals no report is owed for (NOTIFY without FAILURE): kept until
    // a return receipt to the sender carries them.
    let notes_kept = !owed
        && !before.owed_notes.is_empty()
        && !bounce::join_receipt_notes(engine, &env, &mut rec.reports, &before.owed_notes);
    // What the submission's expansion told the sender (`State::expansion_notes`): first
    // in this attempt's report to the sender; without one here, kept only for the
    // remote part still to go, never for a later run.
    let expansion_joined = !before.expansion_notes.is_empty()
        && bounce::join_expansion_notes(engine, &env, &mut rec.reports, &before.expansion_notes);
    // Reports are queued before the attempt's record: what the last unit delivered is
    // recorded first, so that a run that dies while queuing them does not send it again.
    if !rec.reports.is_empty()
        && unrecorded.is_none()
        && record::delivered_so_far(&locked.entry.state, &outcomes) != locked.entry.state
    {
        // Not the recipients expanded: until their refused targets' report is queued
        // they stay open, so that a crash before cannot lose it (their expansion is
        // then done again, and nothing it added is sent twice).
        let delivered: Vec<RcptOutcome> =
            outcomes.iter().filter(|o| !o.expanded).cloned().collect();
        let _ = record_on_the_way(locked, &delivered);
    }
    // The attempt's record once its reports are queued (`failure_unqueued`: why a
    // failure report could not be): the state, and whether every recipient is final.
    let reports = before
        .reports
        .saturating_add(u32::try_from(rec.reports.len()).unwrap_or(u32::MAX));
    let record_after = |failure_unqueued: Option<&str>| -> (State, bool) {
        let mut rec_state = rec.state.clone();
        // The report owed for recipients refused at submission went with this
        // attempt's, unless a failure report could not be queued: then it stays owed
        // (nothing else holds those recipients) for the report of a later run.
        if failure_unqueued.is_none() {
            rec_state.owed.clear();
            rec_state.owed_notes.clear();
            rec_state.owner_owed.clear();
            rec_state.owner_notes.clear();
        } else {
            rec_state.owed.clone_from(&before.owed);
            rec_state.owed_notes.clone_from(&before.owed_notes);
            rec_state.owner_owed.clone_from(&before.owner_owed);
            rec_state.owner_notes.clone_from(&before.owner_notes);
        }
        if notes_kept {
            rec_state.owed_notes.clone_from(&before.owed_notes);
        }
        if expansion_joined || !remote_to_go {
            rec_state.expansion_notes.clear();
        }
        let mut all_final = rec.all_final;
        if let Some(why) = failure_unqueued {
            // The failures stay queued until their report can be: tried again (and
            // reported) by a later run, never dropped with the entry.
            rec_state = record::unreport(&before, rec_state, why);
            all_final = false;
        }
        rec_state.reports = reports;
        rec_state.reporting.clear();
        rec_state.reported = None;
        (rec_state, all_final)
    };
    // Before the first report is queued, their keys and the record to make once they
    // all are: a run that finds them (this one killed before its record) takes that
    // record when it finds every report queued (`take_reported`), and tries no
    // recipient they report again. Without it (it could not be written), such a run
    // makes the attempt again, and finds the reports queued by their keys.
    let keys = bounce::planned_keys(engine, &env, &rec.reports, before.reports);
    if !keys.is_empty() && unrecorded.is_none() {
        let (then, all_final) = record_after(None);
        let mut marked = locked.entry.state.clone();
        marked.reporting = keys;
        marked.reported = Some(if all_final {
            Reported::Remove
        } else {
            Reported::State(then.to_text())
        });
        if let Err(e) = locked.record_state(marked) {
            log::warn!("{}: {}", env.id, e.message);
        }
    }
    // Each report's ID is derived from the entry's and the count of reports it queued
    // before, recorded below with the attempt: a run that dies between a report's
    // commit and that record leaves the count as it was, and the next run, repeating
    // the attempt, finds the report queued rather than queuing it again.
    // A report that could not be delivered goes to the postmaster; sendmail first
    // looks for its sender, `MAILER-DAEMON`, among the aliases, and `-v` shows what that
    // found (`MAILER-DAEMON... aliased to postmaster`; recorded: `data5-double-alias-v`).
    if rec
        .reports
        .iter()
        .any(|o| o.to == bounce::ReportTo::Postmaster)
    {
        let is_local = |a: &str| route(engine, a) == Route::Local;
        let found = engine
            .local
            .expand(&["MAILER-DAEMON".to_string()], None, &is_local);
        say(out, &found.notes);
    }
    let sent = bounce::send(
        engine,
        spool,
        &env,
        std::mem::take(&mut rec.reports),
        before.reports,
        locked.entry.state.bounce.as_ref().map(|_| {
            locked
                .entry
                .state
                .bounce_by
                .as_deref()
                .unwrap_or(rsendmail::spool::entry::BY_ADMINISTRATOR)
        }),
        &open_message,
    );
    result.new_entries.extend(sent.ids);
    result.counts = rec.counts.clone();
    let (rec_state, all_final) = record_after(sent.failure_unqueued.as_deref());
    if all_final {
        // Removing the entry is the durable record that every recipient is final; only
        // when that fails is the state written, so that no recipient is tried again.
        result.removed = true;
        locked.pending_state = Some(rec_state);
    } else {
        // What must survive when the full record cannot be written: the recipients
        // delivered (without their replies, so that it takes few bytes).
        let mut smaller = record::delivered_so_far(&locked.entry.state, &outcomes);
        for (_, st, why) in &mut smaller.recipients {
            if *st == RcptState::Delivered {
                *why = None;
            }
        }
        // A report owed stays owed until it was queued, and only until then.
        smaller.owed.clone_from(&rec_state.owed);
        smaller.owed_notes.clone_from(&rec_state.owed_notes);
        smaller.owner_owed.clone_from(&rec_state.owner_owed);
        smaller.owner_notes.clone_from(&rec_state.owner_notes);
        smaller.reports = reports;
        smaller.reporting.clear();
        smaller.reported = None;
        locked.record_outcome(rec_state, smaller)?;
    }
    Ok(result)
}

/// Why the units of an attempt left after `rsendmail-admin delete` asked for its
/// entry's deletion are not sent.
const DELETION_REQUESTED: &str = "deletion asked for during the delivery";

/// The end of an attempt at an entry whose deletion was asked for during it: every
/// recipient a server or mailbox accepted is logged as any delivery is (`stat=Sent`);
/// then what became of the entry: delivered before the deletion took effect, or
/// deleted with the recipients it had reached named and the rest dropped. The count
/// is added to the mark, for the `rsendmail-admin delete` that waits for it.
fn deleted_during_delivery(
    engine: &Engine,
    locked: &LockedEntry,
    env: &Envelope,
    before: &State,
    outcomes: &[RcptOutcome],
    owned: &[(String, String)],
    started: std::time::Instant,
) {
    let sent: Vec<RcptOutcome> = outcomes
        .iter()
        .filter(|o| o.is_success())
        .cloned()
        .collect();
    if !sent.is_empty() {
        let rec = record::record_owned(
            engine,
            env,
            before,
            locked.entry.size,
            &sent,
            Vec::new(),
            owned,
            clock::now(),
            started.elapsed().as_secs() as i64,
        );
        for line in &rec.log {
            log::info!("{line}");
        }
    }
    let total = env.recipients.len();
    let state = record::delivered_so_far(before, outcomes);
    let reached: Vec<&str> = (0..total)
        .filter(|&i| state.of(i) == RcptState::Delivered)
        .filter_map(|i| env.recipients.get(i).map(|r| r.address.as_str()))
        .collect();
    let asked = locked.note_sent_before_deletion(reached.len(), total);
    let id = &env.id;
    let by = if asked.by.is_empty() {
        "an administrator".to_string()
    } else {
        asked.by
    };
    if reached.len() == total {
        log::info!("{id}: delivered before its deletion, asked for by {by}, took effect");
    } else if reached.is_empty() {
        log::info!("{id}: deleted unsent, as {by} asked during its delivery");
    } else {
        log::info!(
            "{id}: deleted as {by} asked during its delivery; {} of {total} recipients had \
             been delivered (<{}>), the rest were dropped by the request",
            reached.len(),
            reached.join(">, <")
        );
    }
}

/// Before a unit of delivery: nothing when the entry's deletion was asked for meanwhile
/// (`unrecorded` then says so). Then, for an entry with more than one recipient open, room for
/// the state record that must keep its outcome (`LockedEntry::reserve_state`): the
/// current record, the delivered markers of every recipient, and replies for them up
/// to 64 KiB (`entry::reply_room`, which also bounds the lines of a multi-line reply a
/// record keeps: `entry::reply_lines_kept`; beyond that, the record falls back to the state without its texts, then
/// to the delivered markers alone: `LockedEntry::record_outcome`). When there is no
/// room, `unrecorded` says why and nothing more is sent for the entry in this run.
/// Whether this call found a mark.
fn make_room(
    locked: &mut LockedEntry,
    recipients: usize,
    unrecorded: &mut Option<String>,
    looks: &Looks,
) -> bool {
    if unrecorded.is_some() {
        return false;
    }
    // `rsendmail-admin delete` asked for while this attempt held the entry: no unit
    // begun after the request is sent; the entry goes at the attempt's end.
    // `hold` and `bounce` the same: the entry is held, or returned, when it is let go.
    looks.looked();
    if let Some(why) = mark_found(locked) {
        *unrecorded = Some(why);
        return true;
    }
    // Only an entry with more than one recipient open may have an outcome to keep in
    // its state file (one accepted while another is deferred, or refused with a report
    // to queue). With one, a success removes the entry (which needs no room, and frees
    // some: a full spool drains) and a deferral lost costs only its back-off.
    let open = (0..recipients)
        .filter(|&i| !locked.entry.state.of(i).is_final())
        .count();
    if open <= 1 {
        return false;
    }
    let n = recipients as u64;
    let room = (locked.entry.state.to_text().len() as u64)
        .saturating_add(n.saturating_mul(64))
        .saturating_add(rsendmail::spool::entry::reply_room(recipients) as u64);
    // The room is fsynced too, so that a disk whose fsyncs fail shows before the send.
    if let Err(e) = locked.reserve_state(room, true) {
        log::error!("{e}; nothing is sent for this entry in this run");
        *unrecorded = Some(format!("cannot record delivery state: {}", e.message));
    }
    false
}

/// The entry's mark, when it has one: logged (nothing more of the entry is sent), and
/// why the units not sent are not (`not_sent`).
fn mark_found(locked: &LockedEntry) -> Option<String> {
    let mark = locked.mark()?;
    log::info!(
        "{}: {} asked for during its delivery by {}: nothing more is sent",
        locked.entry.envelope.id,
        mark.what(),
        mark.by
    );
    Some(
        match mark.request {
            Request::Delete => DELETION_REQUESTED,
            Request::Hold => HOLD_REQUESTED,
            Request::Bounce { .. } => RETURN_REQUESTED,
        }
        .to_string(),
    )
}

/// Why the units of an attempt left after `rsendmail-admin hold` asked for its entry's
/// hold are not sent.
const HOLD_REQUESTED: &str = "hold asked for during the delivery";

/// Why the units of an attempt left after `rsendmail-admin bounce` asked for its entry's
/// return are not sent.
const RETURN_REQUESTED: &str = "return to the sender asked for during the delivery";

/// What the `-v` transcript says of recipients not sent for `why` ([`not_sent`]): for a
/// mark, what the request makes of them (`bob@example.org... Dropped: the message was
/// deleted during its delivery (rsendmail-admin delete), not sent`), for they are not
/// deferred; any other reason (a state that cannot be recorded) as the deferral it is.
/// The log and the state keep `why`.
fn withheld_lines(
    held_back: &[RcptOutcome],
    why: &str,
    address: &dyn Fn(usize) -> String,
) -> Vec<String> {
    let said = match why {
        DELETION_REQUESTED => {
            "Dropped: the message was deleted during its delivery (rsendmail-admin delete), \
             not sent"
        }
        HOLD_REQUESTED => {
            "Held: a hold of the message was asked for during its delivery (rsendmail-admin \
             hold), not sent"
        }
        RETURN_REQUESTED => {
            "Returned: a return of the message to its sender was asked for during its \
             delivery (rsendmail-admin bounce), not sent"
        }
        _ => return outcome_lines(held_back, address),
    };
    if held_back.is_empty() {
        return Vec::new();
    }
    let addrs: Vec<String> = held_back.iter().map(|o| address(o.rcpt)).collect();
    vec![format!("{}... {said}", addrs.join(","))]
}

/// How long after the attempt's last look at its entry's mark a point of no return
/// (a mailbox's first byte, an SMTP transaction's MAIL, its DATA without PIPELINING)
/// is passed without looking again ([`Looks::go`]). A longer wait since (for a
/// mailbox's locks, up to Timeout.mboxlock each; for a connection, its greeting, TLS
/// and AUTH; for the RCPT replies) is followed by another look, so that a deletion,
/// hold or return asked for during it stops what had not begun; a shorter one costs no
/// lookup (a run's lookups of marks stay about two an entry), and a mark made within it
/// finds the delivery under way, as one made just after the last look does.
const LOOK_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// The attempt's looks at its entry's mark: when it last looked (`make_room`, or
/// [`Looks::go`]), and what a look before a point of no return found.
struct Looks {
    last: std::cell::Cell<std::time::Instant>,
    /// Why the delivery was stopped by a mark [`Looks::go`] found (as `make_room` says
    /// it), until the attempt takes it ([`Looks::found`]).
    found: std::cell::RefCell<Option<String>>,
}

impl Looks {
    fn new() -> Looks {
        Looks {
            last: std::cell::Cell::new(std::time::Instant::now()),
            found: std::cell::RefCell::new(None),
        }
    }

    /// The mark was looked for just now.
    fn looked(&self) {
        self.last.set(std::time::Instant::now());
    }

    /// At a point of no return of `locked`'s delivery: whether it goes on. When the
    /// last look is older than [`LOOK_AGAIN_AFTER`], the mark is looked for again (one
    /// `lstat(2)`); a mark found stops it (logged as `make_room` logs it, and kept for
    /// [`Looks::found`]), as does one found before.
    fn go(&self, locked: &LockedEntry) -> bool {
        if self.found.borrow().is_some() {
            return false;
        }
        if self.last.get().elapsed() < LOOK_AGAIN_AFTER {
            return true;
        }
        self.looked();
        if !locked.marked() {
            return true;
        }
        match mark_found(locked) {
            Some(why) => {
                *self.found.borrow_mut() = Some(why);
                false
            }
            None => true,
        }
    }

    /// [`Looks::go`] for an SMTP transaction ([`smtp::Outgoing::go`]): `None` to go
    /// on, else the reply its recipients are held back with (`not_sent`'s).
    fn go_smtp(&self, locked: &LockedEntry) -> Option<reply::Reply> {
        if self.go(locked) {
            return None;
        }
        let why = self.found.borrow().clone().unwrap_or_default();
        Some(withheld_reply(&why))
    }

    /// Why a mark found by [`Looks::go`] stopped the delivery, taken once.
    fn found(&self) -> Option<String> {
        self.found.borrow_mut().take()
    }
}

/// The addresses of a relay's host name, with sendmail's words when there are none:
/// through RESOLVER when it is set, else the system's resolver (getaddrinfo, with
/// `/etc/hosts`: [`dns::system_host`]).
/// A name that does not exist (NXDOMAIN) or has no address (NODATA) defers like a failed
/// lookup, with sendmail's words for each (`reason-nxdomain-*`, `reason-nodata-*`,
/// `reason-servfail-*`, `reason-dnstimeout-*`): a mistyped SMARTHOST must not return
/// every message (DIFFERENCES.md).
pub fn relay_addresses(
    engine: &Engine,
    dns: &mut Option<Result<dns::Dns, String>>,
    name: &str,
) -> Result<Vec<IpAddr>, reply::Reply> {
    relay_lookup(engine, dns, name).map_err(|(r, _)| r)
}

/// [`relay_addresses`], a lookup that failed for now with the resolver's own account
/// (a refusal, a time-out), which sendmail's words leave out: `check` says it.
pub fn relay_lookup(
    engine: &Engine,
    dns: &mut Option<Result<dns::Dns, String>>,
    name: &str,
) -> Result<Vec<IpAddr>, (reply::Reply, Option<String>)> {
    let unknown = |text: String| {
        reply::Reply::with_status(
            451,
            status::BAD_SYSTEM.with_class(StatusClass::Transient),
            text,
        )
    };
    let not_found = || unknown(dns::host_not_found(&format!("[{name}]")));
    let failed = |why: &str| {
        log::info!("relay {name}: {why}");
        reply::Reply::with_status(
            451,
            status::DIRECTORY_TEMP,
            dns::lookup_failed(&format!("[{name}]")),
        )
    };
    let found = if engine.resolver.is_empty() {
        dns::system_host(name)
    } else {
        match dns.get_or_insert_with(|| {
            dns::Dns::new(&engine.resolver, engine.dns_timeout, engine.dns_retries)
        }) {
            Ok(d) => d.host(name),
            Err(why) => Err(dns::HostError::Failed(why.clone())),
        }
    };
    match found {
        Ok(v) => Ok(v),
        Err(dns::HostError::NotFound) => Err((not_found(), None)),
        Err(dns::HostError::NoData) => {
            Err((unknown(dns::no_data_known(&format!("[{name}]"))), None))
        }
        Err(dns::HostError::Failed(why)) => Err((failed(&why), Some(why))),
    }
}

/// Record what `got` delivered before the attempt goes on (see [`attempt`]). `Some`:
/// the record could not be written, and why.
fn record_on_the_way(locked: &mut LockedEntry, got: &[RcptOutcome]) -> Option<String> {
    if !got.iter().any(RcptOutcome::is_success) {
        return None;
    }
    let interim = record::delivered_so_far(&locked.entry.state, got);
    if interim == locked.entry.state {
        return None;
    }
    // Recorded; the room for the next record is made again before anything more is
    // sent (`make_room`).
    match locked.record_state(interim) {
        Ok(()) => None,
        Err(e) => {
            log::error!("{e}; nothing more is sent for this entry in this run");
            Some(format!("cannot record delivery state: {}", e.message))
        }
    }
}

/// The record of an attempt killed after it marked the reports it was queuing
/// (`State::reporting`), before that record: when every one of them is queued, the
/// record it was to make (`State::reported`), so that no recipient they report is tried
/// again; else the marks go, and the attempt is made again (finding by their keys the
/// reports queued). First: every recipient is final, and the entry is to be removed
/// (`LockedEntry::pending_state` holds its state); second: the IDs of the reports found
/// queued when the record is taken (the attempt's, as if it had queued them).
fn take_reported(spool: &Spool, locked: &mut LockedEntry) -> Result<(bool, Vec<String>), Fatal> {
    let st = &locked.entry.state;
    if st.reporting.is_empty() && st.reported.is_none() {
        return Ok((false, Vec::new()));
    }
    let id = locked.entry.envelope.id.clone();
    // A `~/dead.letter` save is done when the file ends with the message, or when the
    // report mailed for a save that failed is queued.
    let env = &locked.entry.envelope;
    let saved = |path: &str| {
        let mut f = match locked.entry.file.try_clone() {
            Ok(f) => f,
            Err(_) => return false,
        };
        let data_offset = locked.entry.data_offset;
        if f.seek(SeekFrom::Start(data_offset)).is_err() {
            return false;
        }
        rsendmail::mbox::dead_letter_holds(
            std::path::Path::new(path),
            &env.sender,
            env.created,
            &env.taken_fields,
            &mut std::io::Read::take(f, locked.entry.size.saturating_sub(data_offset)),
        )
    };
    let done = |k: &String| match bounce::split_saved(k) {
        (k, None) => spool.report_queued(&id, k),
        (k, Some(path)) => spool.report_queued(&id, k) || saved(path),
    };
    let all_queued = st.reporting.iter().all(done);
    let queued: Vec<String> = if all_queued {
        st.reporting
            .iter()
            .map(|k| bounce::split_saved(k).0)
            .filter(|k| spool.report_queued(&id, k))
            .filter_map(|k| rsendmail::spool::report_queue_id(&id, k))
            .collect()
    } else {
        Vec::new()
    };
    // The log's words for what the killed run had done.
    let made = |queued: &[String]| {
        if queued.is_empty() {
            "its reports were made (saved in dead.letter)".to_string()
        } else {
            format!("its reports ({}) were queued", queued.join(", "))
        }
    };
    let mut unmarked = st.clone();
    unmarked.reporting.clear();
    unmarked.reported = None;
    let then = match (&st.reported, all_queued) {
        (Some(Reported::Remove), true) => {
            log::info!(
                "{id}: {} by a run that ended before its record: removed",
                made(&queued)
            );
            locked.pending_state = Some(unmarked);
            return Ok((true, queued));
        }
        (Some(Reported::State(text)), true) => State::parse(text).ok(),
        _ => None,
    };
    match then {
        Some(then) => {
            log::info!(
                "{id}: {} by a run that ended before its record: recorded",
                made(&queued)
            );
            locked.record_state(then)?;
            return Ok((false, queued));
        }
        None => {
            log::info!("{id}: a run ended while it queued its reports: the attempt is made again");
            locked.record_state(unmarked)?;
        }
    }
    Ok((false, Vec::new()))
}

/// Whether `env` is a report (`Envelope::report_of`) whose original is still queued (or
/// held)
/// and has not recorded it: its count of reports queued (`State::reports`) is not past
/// the report's number.
fn waits_for_its_original(spool: &Spool, env: &Envelope) -> bool {
    let Some(key) = &env.report_of else {
        return false;
    };
    let mut f = key.split(' ');
    let (Some(origin), Some(Ok(n))) = (f.next(), f.next().map(str::parse::<u32>)) else {
        return false;
    };
    if !rsendmail::spool::valid_id(origin) {
        return false;
    }
    // A held original (`rsendmail-admin hold`) keeps it back too: its step is finished
    // by the run after its release, which would queue the report again were it sent
    // meanwhile. One deleted lets it go.
    let original = if spool.qf_path(origin).exists() {
        spool.read_entry(origin)
    } else {
        let held = spool.held();
        if !held.qf_path(origin).exists() {
            return false;
        }
        held.read_entry(origin)
    };
    original.is_ok_and(|o| o.state.reports <= n)
}

/// The outcome of recipients not tried because the attempt's record could not be
/// written, or a mark asked for an action on the entry meanwhile: deferred with `why`
/// (`cannot record delivery state: ...`, `hold asked for during the delivery`).
fn not_sent(rcpts: &[usize], why: &str, mailer: Mailer) -> Vec<RcptOutcome> {
    rcpts
        .iter()
        .map(|&i| {
            let mut o = RcptOutcome::new(i, withheld_reply(why), mailer, None);
            o.held_back = true;
            o
        })
        .collect()
}

/// The reply of a recipient not sent for `why` ([`not_sent`]).
fn withheld_reply(why: &str) -> reply::Reply {
    reply::Reply::with_status(451, status::SYSTEM_TEMP, why.to_string())
}

/// One SMTP transaction: connect (or reuse the worker's connection to these hosts),
/// send, and give each recipient its outcome. A relay that cannot be reached defers
/// every recipient with the reason, and is not tried again in this run. `-v` shows each
/// outcome where sendmail shows it: right after the reply that decided it.
#[allow(clippy::too_many_arguments)]
fn send_transaction(
    engine: &Engine,
    env: &Envelope,
    t: &Transaction,
    conn: &mut Conn,
    resolve: &mut Resolve<'_>,
    message: MessageAt<'_>,
    mut next: Option<&mut smtp::Next<'_>>,
    go: &smtp::Go<'_>,
    out: &mut Transcript<'_>,
) -> Result<Vec<RcptOutcome>, Fatal> {
    let rcpts: Vec<(usize, &Recipient)> = t
        .rcpts
        .iter()
        .filter_map(|&i| Some((i, env.recipients.get(i)?)))
        .collect();
    let label: Vec<&str> = rcpts.iter().map(|(_, r)| r.address.as_str()).collect();
    let label = label.join(",");
    let is_mx = t.mailer == Mailer::Esmtp;
    let session = match conn.get(engine, &t.hosts, is_mx, resolve, out, &label) {
        Ok(s) => s,
        Err(f) => {
            let name = t.hosts.first().map(|h| h.0.clone()).unwrap_or_default();
            let got: Vec<RcptOutcome> = rcpts
                .iter()
                .map(|&(i, _)| {
                    let mut o = RcptOutcome::new(i, f.reply.clone(), t.mailer, Some(name.clone()));
                    o.loops = conn.loop_line.clone().filter(|_| f.loops);
                    o
                })
                .collect();
            let address = |i: usize| {
                env.recipients
                    .get(i)
                    .map(|r| rsendmail::aliases::shown_target(&r.address).into_owned())
                    .unwrap_or_default()
            };
            if f.loops {
                // sendmail's words for the failure, only in a queue run, and
                // without the addresses; its `Closing connection` line comes at the
                // end of the run (`Conn::close`).
                if !engine.interactive {
                    say(out, &[super::outcome::LOCAL_CONFIG_ERROR.to_string()]);
                }
            } else {
                say(out, &outcome_lines(&got, &address));
                if !refused_for_now(&f) {
                    say(out, f.closing.as_slice());
                }
            }
            return Ok(got);
        }
    };
    // VERP to a server without XVERP: each recipient in a transaction of its own over
    // this connection, from its own sender.
    if t.verp.is_some() && !session.caps.xverp && rcpts.len() > 1 {
        let mut got = Vec::with_capacity(rcpts.len());
        for &(i, _) in &rcpts {
            let one = Transaction {
                rcpts: vec![i],
                ..t.clone()
            };
            got.extend(send_transaction(
                engine, env, &one, conn, resolve, message, None, go, out,
            )?);
        }
        return Ok(got);
    }
    let mut data = message;
    // A report rsendmail wrote with 8-bit text goes in the form this server can take
    // (rsendmail::dsn::form): 7-bit to a server without 8BITMIME, RFC 6533's
    // internationalized report to one offering SMTPUTF8.
    let mut body = env.body_type.as_deref();
    let mut reformed = None;
    if env.report.is_some() && body == Some("8BITMIME") {
        let qf_read_error =
            |e: &std::io::Error| Fatal::new(Sysexit::IoErr, format!("qf{}: {e}", env.id));
        let takes = rsendmail::dsn::form::Takes {
            eight_bit: session.caps.eightbitmime,
            utf8: session.caps.smtputf8,
        };
        let origin = data.stream_position();
        match origin.and_then(|o| Ok((o, rsendmail::dsn::form::for_server(&mut data, takes)?))) {
            Ok((origin, Some(r))) => {
                if !r.eight_bit {
                    body = None;
                }
                reformed = Some(rsendmail::dsn::form::Spliced::new(data, origin, r));
            }
            Ok((origin, None)) => {
                data.seek(SeekFrom::Start(origin))
                    .map_err(|e| qf_read_error(&e))?;
            }
            Err(e) => return Err(qf_read_error(&e)),
        }
    }
    let data: &mut dyn smtp::Stored = match reformed.as_mut() {
        Some(r) => r,
        None => &mut data,
    };
    let (sender, xverp, addrs) = envelope_of(engine, env, t, &rcpts, session);
    overlong_verp_note(engine, env, t, &addrs, xverp.is_some(), out);
    // What each recipient was told as its reply came (to show the others at the end).
    let mut told: Vec<Option<smtp::Outcome>> = vec![None; rcpts.len()];
    let mut notify = |which: &[usize], o: &smtp::Outcome, step: Step| -> Vec<String> {
        let shown: Vec<&str> = which
            .iter()
            .filter_map(|&k| {
                if let Some(slot) = told.get_mut(k) {
                    *slot = Some(o.clone());
                }
                addrs.get(k).map(String::as_str)
            })
            .collect();
        let as_outcome = RcptOutcome::from_smtp(0, o.clone(), t.mailer, String::new());
        reply_lines(&shown, &as_outcome, step, engine.interactive)
    };
    // A new connection to the same hosts, for a copy with shorter lines after a
    // line-length refusal that cost the connection (`Session::send`).
    let mut reconnect = |out: &mut Transcript<'_>| {
        let mut fresh = Conn {
            uncached: true,
            ..Conn::default()
        };
        fresh
            .get(engine, &t.hosts, is_mx, resolve, out, &label)
            .map_err(|f| f.reply)?;
        fresh
            .session
            .take()
            .ok_or_else(|| reply::Reply::with_status(451, status::NO_ANSWER, "no session"))
    };
    let mut msg = smtp::Outgoing {
        sender: &sender,
        recipients: out_rcpts(&rcpts, &addrs),
        data,
        body,
        ret: env.ret.as_deref(),
        envid: env.envid.as_deref(),
        xverp,
        null_size: !bounce::made_here_headers_only(&env.id),
        notify: Some(&mut notify),
        body_limit: rsendmail::message::wire::MAX_BODY_LINE,
        reconnect: Some(&mut reconnect),
        id: &env.id,
        // The closure's lifetime, shortened to this message's.
        next: match next.as_deref_mut() {
            Some(n) => Some(n),
            None => None,
        },
        go: Some(go),
    };
    let res = session.send(&mut msg, out);
    drop(msg);
    if session.lost_unused {
        // A cached connection the server had ended (found out at RSET's reply or MAIL's):
        // nothing of the message was sent, so it goes over another connection now (the
        // next cached one, or a new one, which cannot be lost this way), not deferred.
        log::info!(
            "{}: the cached connection to {} [{}] was closed by the server; sending over another",
            env.id,
            session.host,
            session.peer.ip()
        );
        conn.discard(out);
        return send_transaction(engine, env, t, conn, resolve, message, next, go, out);
    }
    // After `send`: a line-length refusal may have moved the message to a new connection.
    let relay_name = format!("{} [{}]", session.host, session.peer.ip());
    let mut got = Vec::with_capacity(rcpts.len());
    let mut untold = Vec::new();
    for (k, (&(i, _), o)) in rcpts.iter().zip(res).enumerate() {
        // The reply told, whichever RCPT reply accepted the recipient.
        let was_told = told
            .get(k)
            .and_then(Option::as_ref)
            .is_some_and(|t| t.reply().same_as(o.reply()));
        let mut o = RcptOutcome::from_smtp(i, o, t.mailer, relay_name.clone());
        o.dsn_passed = session.caps.dsn && !o.held_back;
        o.data_refused = session.data_refused && !o.held_back;
        if !was_told {
            untold.push(o.clone());
        }
        got.push(o);
    }
    // In the order things happened: the recipients the server refused at MAIL or RCPT
    // before those the DATA or the final dot decided, as sendmail's transcript tells them
    // and as its exit status takes the first refusal (recorded: `reject5-data5-odi`).
    got.sort_by_key(|o| {
        let command = o.reply.command.as_deref().unwrap_or_default();
        if command.starts_with("MAIL") {
            0
        } else if command.starts_with("RCPT") {
            1
        } else {
            2
        }
    });
    // Outcomes the session's failure gave (a lost connection, a protocol error).
    let qualified = |i: usize| {
        engine.qualify(
            &env.recipients
                .get(i)
                .map(|r| r.address.clone())
                .unwrap_or_default(),
        )
    };
    say(out, &outcome_lines(&untold, &qualified));
    Ok(got)
}

/// Deliver to one local recipient (its mailbox, a command, a file): a recipient to
/// expand was expanded before the attempt's plan (`expand_at_delivery`); one found to
/// expand only now (its `.forward` made meanwhile) is deferred, and expanded by the next
/// attempt.
fn deliver_local(
    engine: &Engine,
    env: &Envelope,
    i: usize,
    sup: &local::Supervised<'_>,
) -> RcptOutcome {
    let Some(r) = env.recipients.get(i) else {
        return RcptOutcome::local(i, 554, status::PERM.to_string(), Mailer::Local, None);
    };
    let is_local = |a: &str| route(engine, a) == Route::Local;
    let sender = engine.qualify(env.owner_sender(r).unwrap_or(&env.sender));
    // VERP: a mailbox's envelope sender names it too (not a command's or a file's).
    let sender = match &env.verp {
        Some(d) if !sender.is_empty() && !r.address.starts_with(['|', '/']) => {
            let to = engine.qualify(r.address.trim_start_matches('\\'));
            rsendmail::verp::sender(&sender, d, &to)
        }
        _ => sender,
    };
    match engine.local.deliver(env, r, &is_local, sup, &sender) {
        local::LocalOutcome::Delivered(text) => RcptOutcome::local(
            i,
            250,
            format!("{} {text}", status::OK),
            Mailer::Local,
            None,
        ),
        local::LocalOutcome::Failed(f) => local_failure(i, &f),
        local::LocalOutcome::Expanded(..) => RcptOutcome::new(
            i,
            reply::Reply::with_status(
                451,
                status::SYSTEM_TEMP,
                format_args!("{}... expanded at the next attempt", r.address),
            ),
            Mailer::Local,
            None,
        ),
    }
}

/// Expand the entry's open local recipients that are aliases met at delivery (the
/// aliases changed, an `:include:` unreadable at submission) or users with a `.forward`,
/// as sendmail expands them before it delivers: their targets join this entry (appended
/// to its recipients, each once: one already among them is not added again, as at
/// submission), so that they go out in this attempt with the entry's other recipients,
/// grouped by destination as they are, and the targets the expansions refused are
/// reported in the attempt's one report. A target that is itself to be expanded (an
/// alias's member with a `.forward`) is expanded in turn, each round counted in the
/// entry's `expansions`, up to [`rsendmail::aliases::MAX_DEPTH`]: past it, a recipient
/// that would expand fails as a loop.
///
/// The new recipients are written (the queue file replaced: `LockedEntry::rewrite`)
/// before any of them is sent. The recipients expanded stay open in the state file
/// until the attempt's record: a run that dies first expands them again in the next
/// one, where their targets are found among the recipients already (delivered or not)
/// and are not added, nor sent, twice.
///
/// Returns the outcomes of the recipients expanded (delivered as `expanded`, or failed:
/// an unknown user, a `.forward` that cannot be read now, the loop) and the targets the
/// expansions refused.
fn expand_at_delivery(
    engine: &Engine,
    locked: &mut LockedEntry,
    out: &mut Transcript<'_>,
) -> Result<
    (
        Vec<RcptOutcome>,
        Vec<local::Refused>,
        rsendmail::submit::Owned,
    ),
    Fatal,
> {
    let is_local = |a: &str| route(engine, a) == Route::Local;
    let mut decided: Vec<RcptOutcome> = Vec::new();
    let mut owned: Vec<(String, String)> = Vec::new();
    let mut refused: Vec<local::Refused> = Vec::new();
    let mut refused_keys = std::collections::HashSet::new();
    let mut todo: Vec<usize> = open_recipients(locked);
    todo.sort_unstable();
    while !todo.is_empty() {
        let env = locked.entry.envelope.clone();
        let address = |i: usize| {
            env.recipients
                .get(i)
                .map(|r| rsendmail::aliases::shown_target(&r.address).into_owned())
                .unwrap_or_default()
        };
        // Every recipient the entry has, delivered or not: a target among them is one
        // recipient already.
        let mut keys: std::collections::HashSet<String> = env
            .recipients
            .iter()
            .map(|r| rsendmail::aliases::recipient_key(&r.address, &is_local))
            .collect();
        let mut added: Vec<Recipient> = Vec::new();
        // Expanded in this round: the recipient, what is logged of it, its refusals,
        // whether the transcript says it went to several targets.
        let mut round: Vec<(usize, String, Vec<local::Refused>, bool)> = Vec::new();
        for i in std::mem::take(&mut todo) {
            let Some(r) = env.recipients.get(i) else {
                continue;
            };
            if !is_local(&r.address) {
                continue;
            }
            match engine.local.expansion(r, &is_local) {
                // A `.forward` that is not used: `-v` says why, as sendmail's does before
                // it delivers to the mailbox (`rsmtest... forward: PATH: Group writable
                // file`).
                None => {
                    let name = r.address.split('@').next().unwrap_or_default();
                    if let Some(why) = local::unused_forward(&rsendmail::aliases::key_of(name)) {
                        say(out, &[format!("{}... forward: {why}", r.address)]);
                    }
                }
                Some(local::LocalOutcome::Delivered(_)) => {}
                Some(local::LocalOutcome::Failed(f)) => {
                    let o = local_failure(i, &f);
                    say(out, &[format!("{}... Connecting to local...", r.address)]);
                    say(out, &outcome_lines(std::slice::from_ref(&o), &address));
                    decided.push(o);
                }
                Some(local::LocalOutcome::Expanded(list, failed, text, said, lists)) => {
                    owned.extend(lists);
                    // sendmail's transcript tells a success notice asked for of a
                    // recipient that fans out that none will come for it.
                    let multiple =
                        list.len() > 1 && rsendmail::dsn::wanted(r, rsendmail::dsn::Kind::Success);
                    // What `-v` tells of an expansion is sendmail's (`/home/u/.forward:
                    // line 1: forwarding to ...`; recorded: `v-forward`).
                    say(out, &said);
                    // Each target takes the user's place in the queue order.
                    let new: Vec<Recipient> = list
                        .into_iter()
                        .filter(|t| {
                            keys.insert(rsendmail::aliases::recipient_key(&t.address, &is_local))
                        })
                        .map(|t| Recipient {
                            parent: Some(i),
                            ..t
                        })
                        .collect();
                    if !new.is_empty() && env.expansions as usize >= rsendmail::aliases::MAX_DEPTH {
                        // `.forward` files that forward to each other: expanded as often
                        // as aliases may nest.
                        decided.push(RcptOutcome::new(
                            i,
                            reply::Reply::with_status(
                                554,
                                status::LOOP,
                                format_args!("{}... aliasing/forwarding loop broken", r.address),
                            ),
                            Mailer::Local,
                            None,
                        ));
                        continue;
                    }
                    // A list reached through several recipients of the entry reports
                    // each refused target once, as at submission.
                    let failed: Vec<local::Refused> = failed
                        .into_iter()
                        .map(|f| local::Refused { parent: i, ..f })
                        .filter(|f| {
                            let key = rsendmail::aliases::refused_key(&f.recipient.address);
                            refused_keys.insert(key)
                        })
                        .collect();
                    let lines: Vec<String> = failed
                        .iter()
                        .map(|f| {
                            if f.told {
                                f.failure.text.clone()
                            } else {
                                let why = f.failure.reply().summary();
                                format!("{}... {why}", f.recipient.address)
                            }
                        })
                        .collect();
                    say(out, &lines);
                    // What sendmail tells while expanding reaches the terminal of an
                    // interactive delivery without -v too (recorded:
                    // `forward-prog-noshell-odi`).
                    if out.is_none() && engine.interactive {
                        for f in failed.iter().filter(|f| f.told) {
                            rsendmail::tell!("{}", f.failure.text);
                        }
                    }
                    // In the expansion's queue order (a transaction's recipients go out
                    // in reverse queue order, as sendmail sends a list's targets), after
                    // the user ([`Envelope::queue_order`]).
                    added.extend(new);
                    round.push((i, text, failed, multiple));
                }
            }
        }
        if !added.is_empty() {
            let mut next = env.clone();
            next.expansions += 1;
            let first = next.recipients.len();
            next.recipients.extend(added.iter().cloned());
            if let Err(e) = locked.rewrite(&next, &added) {
                log::error!("{}: {e}", env.id);
                // Nothing was added, unless the file was renamed into place and only
                // the directory's sync failed: then nothing more is done in this run.
                if locked.entry.envelope.recipients.len() != env.recipients.len() {
                    return Err(e);
                }
                for (i, _, _, _) in round {
                    decided.push(RcptOutcome::new(
                        i,
                        reply::Reply::with_status(451, status::SYSTEM_TEMP, &e.message),
                        Mailer::Local,
                        None,
                    ));
                }
                continue;
            }
            todo = (first..locked.entry.envelope.recipients.len()).collect();
        }
        for (i, text, failed, multiple) in round {
            refused.extend(failed);
            let mut o = RcptOutcome::local(
                i,
                250,
                format!("{} {text}", status::OK),
                Mailer::Local,
                None,
            );
            o.expanded = true;
            o.expanded_to_multiple = multiple;
            decided.push(o);
        }
    }
    Ok((decided, refused, owned))
}

/// A queue file's message (from `start`, the first header line, to the file's end) read
/// with `pread(2)` on the entry's own descriptor, the position kept here: sending a
/// message copies no descriptor and makes no `lseek(2)`, however often the transaction
/// goes back to the start (for `SIZE=`, a reformed report, a second transaction).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageAt<'a> {
    file: &'a std::fs::File,
    pos: u64,
    /// The file's length as it was opened (for [`SeekFrom::End`]).
    len: u64,
}

impl<'a> MessageAt<'a> {
    /// The message in `file` from `start`; `len` is the file's length.
    pub(crate) fn new(file: &'a std::fs::File, start: u64, len: u64) -> MessageAt<'a> {
        MessageAt {
            file,
            pos: start,
            len,
        }
    }
}

impl Read for MessageAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }
}

impl Seek for MessageAt<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        Ok(self.pos)
    }
}

/// The outcome of recipient `i` whose local delivery failed: the failure's reply, and
/// what it says beyond it (a `/file` that cannot be created, a program's exit status,
/// sendmail's words, DSN status, transcript lines and Diagnostic-Code).
fn local_failure(i: usize, f: &local::Failure) -> RcptOutcome {
    let mut o = RcptOutcome::new(i, f.reply(), Mailer::Local, None);
    o.cant_create = f.cant_create;
    o.exit = f.exit;
    o.stat = f.stat.clone();
    o.notes = f.notes.clone();
    o.diagnostic = f.diagnostic.clone();
    if let Some(dsn) = f.dsn {
        o.status = dsn;
    }
    o
}

#[cfg(test)]
mod message_at_tests {
    use super::MessageAt;
    use std::io::{Read, Seek, SeekFrom, Write};

    #[test]
    fn reads_from_its_start_and_seeks_without_the_descriptor() {
        let path = std::env::temp_dir().join(format!("rsendmail-at-{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        f.write_all(b"envelope\n\nSubject: x\n\nbody\n").unwrap();
        let mut m = MessageAt::new(&f, 10, 27);
        let mut s = String::new();
        m.read_to_string(&mut s).unwrap();
        assert_eq!(s, "Subject: x\n\nbody\n");
        assert_eq!(m.stream_position().unwrap(), 27);
        assert_eq!(m.seek(SeekFrom::Current(-5)).unwrap(), 22);
        let mut t = String::new();
        m.read_to_string(&mut t).unwrap();
        assert_eq!(t, "body\n");
        assert_eq!(m.seek(SeekFrom::Start(10)).unwrap(), 10);
        assert_eq!(m.seek(SeekFrom::End(-2)).unwrap(), 25);
        assert!(m.seek(SeekFrom::Current(-100)).is_err());
        // The descriptor's own offset was never moved.
        assert_eq!((&f).stream_position().unwrap(), 27);
    }
}
