//! The periodic runner's wake-up listener: it holds the spool's FIFO
//! (`SPOOLDIR/wakeup`, `rsendmail::spool::wake`) open, and delivers each entry a
//! background-mode submission names there at once, with the same code as a queue run
//! ([`super::runner::deliver_ids`]), beside the interval's runs: each entry's local
//! recipients in a delivery thread of their own (one at a time to each local
//! recipient), then each remote destination in one of its own, so that one slow program
//! or locked mailbox holds only the mail for it, and one slow server only the mail for
//! it while fewer than `O MaxBackgroundDeliveries=` destinations are slow ([`serve`]).
//! Run as root (the packaged `rsendmail-queue.service`, `-bd -q<interval>`), it
//! delivers local mail with the root runner's privilege model (`local.rs`: each mailbox
//! as its recipient, `|command` and `/file` as their owner), so mail from a user to
//! another local user arrives within milliseconds instead of at the next interval.
//!
//! The endpoint: made by the runner when missing (anything that is not a FIFO in its
//! place is moved into `corrupt/`, as `Spool::subdir` moves a wrong sub-directory), owned
//! by the runner, group the spool directory's group, mode 0620: only the spool's group
//! (the set-gid submissions) may write it, nobody else may read it. Every second the
//! listener checks that the path still names its FIFO and makes it again if not.
//!
//! What a line may name: an entry submitted in background mode and never tried (no
//! attempt recorded), then the reports of its refused recipients; or entries each
//! `rsendmail-admin retry` (or `bounce`, for its reports) marked due now (its state's
//! `retry`, which a group member can only set where it may write the state file
//! anyway); or, to a root runner,
//! an entry with a recipient a deliverer that was not root could only defer for want
//! of root (`needs the root queue runner`: it hands such an entry on,
//! `background::hand_to_root_runner`), whose local part a root sweep takes whatever
//! the entry's back-off too (one rule for a line, a marker and a turn: [`still_due`]);
//! a line naming
//! anything else (a `-odq` or `-odd` entry, a deferred entry within its back-off, a
//! finished one, garbage) is ignored, so a member of the spool group cannot make the
//! runner try an entry sooner than its mode and back-off allow. Lines longer than
//! `wake::MAX_LINE` or not made of queue IDs are dropped.
//!
//! The runner also takes the entries background deliveries left waiting in
//! `waiting/` ([`super::background`]) each time it wakes.

use super::attempt::Part;
use super::engine::Engine;
use rsendmail::app::Setup;
use rsendmail::spool::{self, Spool, wake};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The IDs an entry argument names (`ID[,[+]RID]`, as `--entry` and a poke give it),
/// in order; a report marked `+` is noted as made by the submission (see
/// [`super::bounce::made_here`]). None when any part is not a queue ID.
pub fn entry_ids(arg: &str) -> Option<Vec<String>> {
    let parts: Vec<(&str, bool)> = arg
        .split(',')
        .map(|i| match i.strip_prefix('+') {
            Some(r) => (r, true),
            None => (i, false),
        })
        .collect();
    if parts.iter().any(|(i, _)| !spool::valid_id(i)) {
        return None;
    }
    Some(
        parts
            .into_iter()
            .map(|(i, report)| {
                if report {
                    super::bounce::made_here(i);
                }
                i.to_string()
            })
            .collect(),
    )
}

/// The local retries this process knows of: entry ID → when the local recipients of
/// that entry are due (`State::local_next_attempt`), noted by the attempts that set it
/// ([`local_retry_at`]) and by the periodic runner's sweeps. The periodic runner's
/// listener tries their local part then ([`serve`]); in other processes nothing reads
/// them.
static LOCAL_RETRIES: std::sync::Mutex<Option<HashMap<String, i64>>> = std::sync::Mutex::new(None);

/// Note that the local recipients of entry `id` are due at `at` (the earliest time
/// noted wins).
pub fn local_retry_at(id: &str, at: i64) {
    if let Ok(mut m) = LOCAL_RETRIES.lock() {
        let t = m
            .get_or_insert_with(HashMap::new)
            .entry(id.to_string())
            .or_insert(at);
        *t = (*t).min(at);
    }
}

/// The entries whose local retry noted ([`local_retry_at`]) has come by `now`, taken.
fn due_local_retries(now: i64) -> Vec<String> {
    let Ok(mut m) = LOCAL_RETRIES.lock() else {
        return Vec::new();
    };
    let Some(m) = m.as_mut() else {
        return Vec::new();
    };
    let due: Vec<String> = m
        .iter()
        .filter(|(_, t)| **t <= now)
        .map(|(id, _)| id.clone())
        .collect();
    for id in &due {
        m.remove(id);
    }
    due
}

/// Whether this process is root and a deliverer that was not root deferred a
/// recipient of entry `e` for want of root (`needs the root queue runner`,
/// [`rsendmail::spool::entry::State::deferred_for_root`]): what such a deliverer hands
/// to a root runner ([`super::background::hand_to_root_runner`]), and what a root
/// process takes whatever the entry's back-off (its remote recipients keep theirs).
pub fn left_for_us(e: &rsendmail::spool::QueuedEntry) -> bool {
    rsendmail::privs::is_root() && e.state.deferred_for_root(e.envelope.recipients.len())
}

/// The one rule for what a poke or a waiting marker may have tried now, and what is
/// still to try when its turn comes: an entry never tried (no attempt recorded: a
/// submission that refused some recipients records their reason at once), one
/// `rsendmail-admin retry` marked due now, or one left for this root process
/// ([`left_for_us`]); with `local`, also one whose local recipients are due on their
/// own schedule (`State::local_next_attempt`). One tried meanwhile (by an interval's
/// run) waits for its back-off. The entry is read once; one that cannot be read is
/// due when it has no state file (never tried: its attempt says what is wrong), and
/// one that is gone never is.
pub fn still_due(spool: &Spool, id: &str, local: bool) -> bool {
    match spool.read_entry(id) {
        Ok(e) => {
            e.state.attempts == 0
                || e.state.retry
                || left_for_us(&e)
                || (local
                    && e.state
                        .local_next_attempt
                        .is_some_and(|t| t <= rsendmail::clock::now()))
        }
        Err(_) => spool.qf_path(id).exists() && !spool.sf_path(id).exists(),
    }
}

/// The entries a poke's line names that it may have delivered now: a line is what a
/// background submission writes, its entry (submitted in background mode) and the
/// report of its refused recipients (from the null sender), each never tried. A line
/// that names anything else (a `-odq` or `-odd` entry, one being retried, garbage)
/// gives nothing.
fn poked(spool: &Spool, line: &str) -> Vec<String> {
    let Some(ids) = entry_ids(line) else {
        return Vec::new();
    };
    // Each entry read once: none may be gone.
    let entries: Vec<rsendmail::spool::QueuedEntry> =
        match ids.iter().map(|id| spool.read_entry(id)).collect() {
            Ok(v) => v,
            Err(_) => return Vec::new(),
        };
    // `rsendmail-admin retry` marks an entry due now and pokes with its ID alone
    // (`bounce` with the IDs of the reports it marked so, several to a line); so does a
    // deliverer that is not root hand on an entry with a recipient it could only defer
    // for want of root (`background::hand_to_root_runner`), which a root runner takes
    // whatever its back-off ([`left_for_us`]). A line of such entries only is taken, as
    // each of them would be alone.
    if !entries.is_empty() && entries.iter().all(|e| e.state.retry || left_for_us(e)) {
        return ids;
    }
    let fits = entries.iter().enumerate().all(|(n, e)| {
        e.state.attempts == 0
            && if n == 0 {
                e.envelope.mode == 'b'
            } else {
                e.envelope.sender.is_empty()
            }
    });
    if fits { ids } else { Vec::new() }
}

/// The listening end of the FIFO.
pub struct Listener {
    file: fs::File,
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// Octets read after the last complete line.
    partial: Vec<u8>,
}

impl Listener {
    /// Make (or take over) `SPOOLDIR/wakeup` and open it for reading. A FIFO another
    /// runner of this spool holds is shared (each line reaches one of them).
    pub fn open(spool: &Spool) -> io::Result<Listener> {
        let path = wake::path(&spool.dir);
        let me = nix::unistd::geteuid().as_raw();
        match fs::symlink_metadata(&path) {
            Ok(md) if md.file_type().is_fifo() && md.uid() == me => {}
            // A FIFO someone else made: ours replaces it (its mode and reader are theirs).
            Ok(md) if md.file_type().is_fifo() => fs::remove_file(&path)?,
            Ok(_) => {
                let aside = spool.dir.join("corrupt").join(format!(
                    "{}.{}.{}",
                    wake::NAME,
                    rsendmail::clock::now(),
                    std::process::id()
                ));
                spool
                    .subdir("corrupt")
                    .map_err(|f| io::Error::other(f.message))?;
                fs::rename(&path, &aside)?;
                log::error!(
                    "{} was not a FIFO: moved to {}",
                    path.display(),
                    aside.display()
                );
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(wake::MODE)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        // Read and write: the FIFO always has a writer (this one), so a reader never sees
        // an end of file between pokes, and never a reader without a writer (Postfix's
        // fifo_listen does the same).
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        let md = file.metadata()?;
        if !md.file_type().is_fifo() {
            return Err(io::Error::other(format!(
                "{} is not a FIFO; refused",
                path.display()
            )));
        }
        let gid = fs::metadata(&spool.dir)?.gid();
        if md.gid() != gid {
            nix::unistd::fchown(file.as_fd(), None, Some(nix::unistd::Gid::from_raw(gid)))?;
        }
        file.set_permissions(fs::Permissions::from_mode(wake::MODE))?;
        Ok(Listener {
            file,
            path,
            dev: md.dev(),
            ino: md.ino(),
            partial: Vec::new(),
        })
    }

    /// Stop listening at once (a runner that is finishing: SIGHUP, SIGTERM's grace):
    /// the lines already in the pipe, which no reader would take after the close, are
    /// left in `waiting/` for the next runner or background delivery; then the reading
    /// end is closed, so that a submission's poke finds no reader (when no other runner
    /// of the spool holds the FIFO) and the submission delivers in the background itself.
    pub fn close(mut self, spool: &Spool) {
        let mut left: Vec<String> = Vec::new();
        loop {
            let lines = self.wait(Duration::ZERO);
            if lines.is_empty() {
                break;
            }
            left.extend(lines);
        }
        drop(self.file);
        LISTENING.store(false, Ordering::SeqCst);
        for line in left {
            if entry_ids(&line).is_some() {
                super::background::mark_waiting(spool, &line);
            }
        }
        log::info!(
            "queue runner no longer listening on {}",
            self.path.display()
        );
    }

    /// Whether the endpoint's path still names this listener's FIFO.
    fn in_place(&self) -> bool {
        fs::symlink_metadata(&self.path)
            .is_ok_and(|md| md.dev() == self.dev && md.ino() == self.ino)
    }

    /// Wait up to `timeout` for lines; the entry arguments read (whole lines only).
    pub fn wait(&mut self, timeout: Duration) -> Vec<String> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {}
            _ => return Vec::new(),
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self
                    .partial
                    .extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            // Thousands of pokes at most fit in a pipe; more than that at once is read in
            // the next round.
            if self.partial.len() > 1 << 20 {
                break;
            }
        }
        let mut lines = Vec::new();
        let mut rest = self.partial.as_slice();
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(at);
            rest = after.get(1..).unwrap_or_default();
            if line.len() < wake::MAX_LINE
                && let Ok(text) = std::str::from_utf8(line)
            {
                lines.push(text.to_string());
            }
        }
        // A tail longer than any line is garbage (a writer that is not ours).
        self.partial = if rest.len() < wake::MAX_LINE {
            rest.to_vec()
        } else {
            Vec::new()
        };
        lines
    }
}

/// Whether this runner listens on its wake-up endpoint now ([`listening`]).
static LISTENING: AtomicBool = AtomicBool::new(false);

/// Whether this runner listens on its wake-up endpoint now: what a restarted runner
/// waits for before it tells the runner that took the new work meanwhile to finish.
pub fn listening() -> bool {
    LISTENING.load(Ordering::SeqCst)
}

/// Open the endpoint for a periodic runner; None when it cannot be made (said when
/// `tell`): the runner then works by its interval alone, submissions deliver as without
/// it, and [`serve`] tries again every second.
fn listen(spool: &Spool, tell: bool) -> Option<Listener> {
    // A per-user spool may not exist yet (a runner started before the first
    // submission); any other missing spool is refused here (and said, when `tell`).
    if let Err(e) = spool.prepare()
        && tell
    {
        log::error!("{}", e.message);
    }
    match Listener::open(spool) {
        Ok(l) => {
            LISTENING.store(true, Ordering::SeqCst);
            log::info!("queue runner listening on {}", l.path.display());
            Some(l)
        }
        Err(e) => {
            if tell {
                log::error!(
                    "{}: {}; submissions do not wake the runner until it is made",
                    wake::path(&spool.dir).display(),
                    rsendmail::config::io_text(&e)
                );
            }
            None
        }
    }
}

/// Where entry `id` goes, as the runner keeps its deliveries apart: whether any of its
/// open recipients is local (or the entry cannot be read: its delivery says why), and
/// the destinations of its open remote recipients ([`super::runner::route_line`]),
/// sorted and joined, so that every entry for one relay or MX domain has the same one
/// (empty when there is none).
fn destination_of(engine: &Engine, spool: &Spool, id: &str) -> (bool, String) {
    let Ok(e) = spool.read_entry(id) else {
        return (true, String::new());
    };
    let local = super::runner::route_line(&super::plan::Route::Local);
    let mut routes: Vec<String> = e
        .envelope
        .recipients
        .iter()
        .enumerate()
        .filter(|(i, _)| !e.state.of(*i).is_final())
        .map(|(_, r)| super::runner::route_line(&super::plan::route(engine, &r.address)))
        .collect();
    routes.sort();
    routes.dedup();
    let has_local = routes.contains(&local);
    routes.retain(|r| *r != local);
    (has_local || e.state.bounce.is_some(), routes.join("\n"))
}

/// How many of the runner's local deliveries go to one local recipient at once: one,
/// a recipient being a mailbox or other final target ([`mailbox_keys`]), however it was
/// addressed. Each recipient's mail waits for the delivery before it (its mailbox's lock, its
/// `.forward`'s `|program`), so a second one at the same time would only wait too, in
/// a slot of [`max_local_deliveries`] that another recipient's mail could use: a
/// recipient's hung program or locked mailbox holds only one slot. (Postfix's
/// `local_destination_concurrency_limit` is 2.)
pub const LOCAL_PER_RECIPIENT: usize = 1;

/// The local recipients entry `id`'s local part goes to, as the runner keeps them
/// apart ([`LOCAL_PER_RECIPIENT`]): the mailboxes and other final targets its open local
/// recipients reach ([`mailbox_keys`]), so that two aliases of one mailbox, or a user
/// and an alias of hers, count as one recipient. None for an entry that cannot be read
/// (its attempt tells why).
fn recipient_keys(engine: &Engine, spool: &Spool, id: &str) -> Vec<String> {
    let Ok(e) = spool.read_entry(id) else {
        return Vec::new();
    };
    let is_local = |a: &str| super::plan::route(engine, a) == super::plan::Route::Local;
    let addrs: Vec<String> = e
        .envelope
        .recipients
        .iter()
        .enumerate()
        .filter(|(i, r)| !e.state.of(*i).is_final() && is_local(&r.address))
        .map(|(_, r)| r.address.clone())
        .collect();
    mailbox_keys(engine, &addrs, &is_local)
}

/// The final targets local addresses `addrs` reach through the aliases file, each as
/// one key, sorted, each once: a user's mailbox by the user's name folded to lower case
/// without its `+detail` (`\user` too), a `|command` or `/file` as written. Only the
/// aliases file is read (nothing may block the runner's loop): an `:include:` counts as
/// itself, and a user's `.forward` is the user's (her deliveries go one at a time
/// anyway).
pub fn mailbox_keys(
    engine: &Engine,
    addrs: &[String],
    is_local: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    use rsendmail::aliases::{Expander, ListFileError, Target, key_of, split_detail};
    let no_include =
        |_: &std::path::Path, _: Option<u32>| -> Result<(String, u32, bool), ListFileError> {
            Err(ListFileError::Io(String::new()))
        };
    let x = Expander {
        aliases: engine.local.aliases(),
        is_local,
        user_exists: &|_| true,
        read_include: &no_include,
        mailer_refusal: &|_, _| None,
        host: &engine.local.host,
    }
    .expand(addrs, None);
    let user = |u: &str| {
        let k = key_of(u);
        format!("user:{}", split_detail(&k).0)
    };
    let mut keys: Vec<String> = x
        .targets
        .iter()
        .filter_map(|t| match &t.target {
            Target::User(u) | Target::Mailbox(u) => Some(user(u)),
            Target::Pipe(_) | Target::File(_) => Some(t.target.address()),
            Target::Remote(_) => None,
        })
        .chain(x.errors.iter().map(|e| e.target().to_lowercase()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// How many local deliveries the runner makes at once, at most: four per CPU, at least
/// eight (each waits for a mailbox's lock or a `|program` more than it works).
pub fn max_local_deliveries() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .saturating_mul(4)
        .max(8)
}

/// The entries a poke or `waiting/` gave the runner for one remote destination
/// ([`destination_of`]), and its delivery in progress.
struct Lane<'scope> {
    destination: String,
    /// Entry IDs, in order.
    pending: Vec<String>,
    running: Option<std::thread::ScopedJoinHandle<'scope, ()>>,
}

/// A delivery the runner started that ended.
enum End {
    /// The local part of an entry ([`super::runner::deliver_local_part`]), and the
    /// entries it queued.
    Local(String, Vec<String>),
    /// A remote destination's delivery.
    Remote(String),
}

/// Says that a delivery ended, however it ended (a panic too).
struct Ended(std::sync::mpsc::Sender<End>, Option<End>);

impl Drop for Ended {
    fn drop(&mut self) {
        if let Some(end) = self.1.take() {
            let _ = self.0.send(end);
        }
    }
}

/// Join a lane's delivery that ended (or is ending), saying when it ended abnormally.
fn join(h: std::thread::ScopedJoinHandle<'_, ()>) {
    if h.join().is_err() {
        log::error!("queue runner: a delivery ended abnormally");
    }
}

/// The listener's loop, until `stop`: deliver what each poke names (entries never
/// tried), and the entries background deliveries left waiting; every second, make the
/// endpoint again if it is missing, was removed or was replaced.
///
/// Deliveries run at once, in threads of their own, so that nothing waits for what it
/// does not need:
/// - the local recipients of an entry first, each entry in a thread of its own, up to
///   [`max_local_deliveries`] at once (never behind the remote ones), and
///   [`LOCAL_PER_RECIPIENT`] to each local recipient: a slow `|program` or a mailbox its
///   user keeps locked delays only the mail for it;
/// - then its remote recipients (those a `.forward` gave too), one thread per
///   destination ([`destination_of`]: a relay or an MX domain): a slow server delays
///   only the entries for it, and the entries poked while a destination's delivery is
///   in progress go together once it ends, over its cached connection (so a burst keeps
///   to few sessions). At most `O MaxBackgroundDeliveries=` remote destinations are
///   delivered to at once (the runner takes the background deliveries' place: that
///   many slow destinations hold the rest of the remote mail until they end), and at
///   most `O MaxConnections=` connections go to one host ([`super::cache`]).
///
/// An entry is handed from one to the other, so that the entry lock keeps it to one
/// attempt at a time.
///
/// Once `stop` is set the endpoint is closed at once ([`Listener::close`]), the entries
/// whose turn had not come are left in `waiting/` for the next runner or background
/// delivery, and the deliveries in progress are let finish: a finishing runner takes
/// no new entry, so submissions must not wait for it.
pub fn serve(s: &Setup, engine: &Engine, stop: &AtomicBool) {
    let mut l = listen(&s.spool, true);
    let mut checked = Instant::now();
    let spool = &s.spool;
    let max_remote = engine.max_background.max(1);
    let max_local = max_local_deliveries();
    std::thread::scope(|scope| {
        let (ended, ends) = std::sync::mpsc::channel::<End>();
        let mut lanes: Vec<Lane<'_>> = Vec::new();
        // Entries whose local part is still to go, and those being delivered.
        let mut local_queue: VecDeque<String> = VecDeque::new();
        let mut local_running: HashMap<String, std::thread::ScopedJoinHandle<'_, ()>> =
            HashMap::new();
        // The local recipients ([`recipient_keys`]) of the entries being delivered, and
        // of those waiting in `local_queue` (found once).
        let mut local_keys: HashMap<String, Vec<String>> = HashMap::new();
        let mut queued_keys: HashMap<String, Vec<String>> = HashMap::new();
        // The IDs in `local_queue`, being delivered there, or in a lane's `pending`: a
        // burst of pokes is looked up, not scanned, and an entry is in one place.
        let mut pending: HashSet<String> = HashSet::new();
        // Where an entry goes next: its local part, or its remote destination.
        let place = |id: String,
                     pending: &mut HashSet<String>,
                     local_queue: &mut VecDeque<String>,
                     lanes: &mut Vec<Lane<'_>>,
                     after_local: bool| {
            let (has_local, destination) = destination_of(engine, spool, &id);
            if !after_local && (has_local || destination.is_empty()) {
                if pending.insert(id.clone()) {
                    local_queue.push_back(id);
                }
                return;
            }
            if destination.is_empty() || !pending.insert(id.clone()) {
                return;
            }
            match lanes.iter_mut().find(|x| x.destination == destination) {
                Some(x) => x.pending.push(id),
                None => lanes.push(Lane {
                    destination,
                    pending: vec![id],
                    running: None,
                }),
            }
        };
        while !stop.load(Ordering::SeqCst) {
            // Sooner while deliveries run: an ended one may have entries to go next.
            let pause = if !local_running.is_empty() || lanes.iter().any(|x| x.running.is_some()) {
                Duration::from_millis(50)
            } else {
                Duration::from_millis(200)
            };
            let lines = match l.as_mut() {
                Some(l) => l.wait(pause),
                None => {
                    std::thread::sleep(pause);
                    Vec::new()
                }
            };
            let mut args: Vec<String> = Vec::new();
            for line in &lines {
                if poked(spool, line).is_empty() {
                    continue;
                }
                args.extend(line.split(',').map(str::to_string));
            }
            args.extend(super::background::take_waiting(spool, usize::MAX, &|_| true).1);
            // Entries whose local recipients are due again before their remote ones: their
            // local part alone (its attempt leaves the entry's back-off as it is; one
            // placed already tries its local recipients anyway).
            for id in due_local_retries(rsendmail::clock::now()) {
                if pending.insert(id.clone()) {
                    local_queue.push_back(id);
                }
            }
            for arg in args {
                let id = arg.trim_start_matches('+').to_string();
                if pending.contains(&id) {
                    continue;
                }
                place(id, &mut pending, &mut local_queue, &mut lanes, false);
            }
            // The deliveries that ended: a remote destination's lane goes last, so that
            // one poked all the time does not keep the others waiting; an entry whose
            // local part ended goes to its remote destination, if it has one.
            while let Ok(end) = ends.try_recv() {
                match end {
                    End::Remote(destination) => {
                        if let Some(at) = lanes.iter().position(|x| x.destination == destination) {
                            let mut x = lanes.remove(at);
                            if let Some(h) = x.running.take() {
                                join(h);
                            }
                            if !x.pending.is_empty() {
                                lanes.push(x);
                            }
                        }
                    }
                    End::Local(id, queued) => {
                        if let Some(h) = local_running.remove(&id) {
                            join(h);
                        }
                        local_keys.remove(&id);
                        pending.remove(&id);
                        if still_due(spool, &id, false) {
                            place(id, &mut pending, &mut local_queue, &mut lanes, true);
                        }
                        for n in queued {
                            if !pending.contains(&n) {
                                place(n, &mut pending, &mut local_queue, &mut lanes, false);
                            }
                        }
                    }
                }
            }
            // In order, each entry whose local recipients have no delivery in progress
            // ([`LOCAL_PER_RECIPIENT`]); one that waits keeps its recipients for itself,
            // so that a later entry to them does not pass it.
            let mut in_use: HashMap<String, usize> = HashMap::new();
            if !local_queue.is_empty() && local_running.len() < max_local {
                for k in local_keys.values().flatten() {
                    *in_use.entry(k.clone()).or_default() += 1;
                }
            }
            let mut left: VecDeque<String> = VecDeque::new();
            while local_running.len() < max_local
                && let Some(id) = local_queue.pop_front()
            {
                let keys = queued_keys
                    .entry(id.clone())
                    .or_insert_with(|| recipient_keys(engine, spool, &id))
                    .clone();
                let free = keys
                    .iter()
                    .all(|k| in_use.get(k).copied().unwrap_or(0) < LOCAL_PER_RECIPIENT);
                for k in &keys {
                    let n = in_use.entry(k.clone()).or_default();
                    *n = if free { *n + 1 } else { LOCAL_PER_RECIPIENT };
                }
                if !free {
                    left.push_back(id);
                    continue;
                }
                queued_keys.remove(&id);
                if !still_due(spool, &id, true) {
                    pending.remove(&id);
                    continue;
                }
                local_keys.insert(id.clone(), keys);
                let end = Ended(ended.clone(), Some(End::Local(id.clone(), Vec::new())));
                let who = id.clone();
                let h = scope.spawn(move || {
                    let mut end = end;
                    match super::runner::deliver_local_part(engine, spool, &who) {
                        Ok(queued) => end.1 = Some(End::Local(who, queued)),
                        Err(e) => log::error!("{e}"),
                    }
                });
                local_running.insert(id, h);
            }
            left.append(&mut local_queue);
            local_queue = left;
            let mut remote = lanes.iter().filter(|x| x.running.is_some()).count();
            for x in lanes.iter_mut() {
                if x.running.is_some() || x.pending.is_empty() || remote >= max_remote {
                    continue;
                }
                let ids: Vec<String> = std::mem::take(&mut x.pending)
                    .into_iter()
                    .filter(|id| pending.remove(id) && still_due(spool, id, false))
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                remote += 1;
                let end = Ended(ended.clone(), Some(End::Remote(x.destination.clone())));
                x.running = Some(scope.spawn(move || {
                    let _end = end;
                    if let Err(e) =
                        super::runner::deliver_ids_part(engine, spool, ids, Part::Remote)
                    {
                        log::error!("{e}");
                    }
                }));
            }
            lanes.retain(|x| x.running.is_some() || !x.pending.is_empty());
            if checked.elapsed() >= Duration::from_secs(1) {
                checked = Instant::now();
                super::runner::hold_mark(spool);
                match &l {
                    Some(x) if x.in_place() => {}
                    Some(x) => {
                        log::error!(
                            "{} was removed or replaced; making it again",
                            x.path.display()
                        );
                        l = listen(spool, true);
                    }
                    None => l = listen(spool, false),
                }
            }
        }
        // A runner that stops for good lets its mark go first: a submission that finds
        // the endpoint closed then delivers itself.
        super::runner::let_go_of_mark_unless_restarting();
        if let Some(x) = l.take() {
            x.close(spool);
        }
        // Not begun: for the next runner or background delivery. Then the deliveries
        // in progress finish; what their local parts leave (their remote part, the
        // reports they queued) waits too.
        for id in local_queue.drain(..) {
            super::background::mark_waiting(spool, &id);
        }
        for x in lanes.iter_mut() {
            for id in x.pending.drain(..) {
                super::background::mark_waiting(spool, &id);
            }
        }
        for (_, h) in local_running.drain() {
            join(h);
        }
        for x in lanes {
            if let Some(h) = x.running {
                join(h);
            }
        }
        drop(ended);
        while let Ok(end) = ends.try_recv() {
            if let End::Local(id, queued) = end {
                for id in std::iter::once(id).chain(queued) {
                    if still_due(spool, &id, false) {
                        super::background::mark_waiting(spool, &id);
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::mailbox_keys;

    /// The runner's local limit counts mailboxes and final targets, not the names mail
    /// was addressed to: two aliases of one user, the user herself (any case, with a
    /// `+detail`, or `\\user`), and two aliases of one command are one recipient each.
    #[test]
    fn aliases_of_one_mailbox_have_one_key() {
        let engine = super::super::engine::for_tests();
        let aliases = rsendmail::aliases::Aliases::parse(
            "one: bob\ntwo: Bob+x\nprog: \"|/bin/cat\"\nprog2: \"|/bin/cat\"\nboth: one, prog\nnested: one\n",
            std::path::Path::new("aliases"),
            false,
        );
        let _ = engine.local.aliases_loaded.set(Some(aliases));
        let is_local = |a: &str| !a.contains('@');
        let keys = |a: &[&str]| {
            let addrs: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            mailbox_keys(&engine, &addrs, &is_local)
        };
        assert_eq!(keys(&["one"]), vec!["user:bob".to_string()]);
        for same in ["two", "bob", "BOB", "bob+y", "\\bob", "nested"] {
            assert_eq!(keys(&[same]), keys(&["one"]), "{same}");
        }
        assert_eq!(keys(&["prog"]), keys(&["prog2"]));
        assert_eq!(keys(&["prog"]), vec!["|/bin/cat".to_string()]);
        assert_eq!(
            keys(&["both"]),
            vec!["user:bob".to_string(), "|/bin/cat".to_string()]
        );
        assert_eq!(keys(&["one", "two", "remote@example.org"]), keys(&["one"]));
        assert_ne!(keys(&["carol"]), keys(&["one"]));
    }
}
