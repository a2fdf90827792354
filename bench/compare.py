#!/usr/bin/env python3
"""rsendmail against dma and Postfix, and a queue growing to 100,000 entries
(run bench/run, which builds rsendmail and fetches the peers; `bench/run --quick` or
BENCH_QUICK=1 for a short run).

The peers come from Debian's packages unpacked under target/peers (scripts/fetch-peers)
and run in private mount and PID namespaces (bench/peerns.py, as root), each relaying to
its own Postfix smtp-sink on 127.0.0.1, which counts the SMTP sessions. Runs are
interleaved (rsendmail, dma, Postfix, rsendmail, ...) so that the ratios printed survive
a noisy machine; figures are printed, never asserted.

Prints:
1. submission latency, `-odq` (dma: `-bq`; Postfix: its sendmail to a running Postfix),
   2 KB: the median of each and rsendmail's ratio to each; and what one such submission
   does, counted by system call under strace (processes, shared objects, /proc/self/maps,
   syslog and nscd connections, password and host files, fsyncs);
2. local mail latency: from the submission's return until the message is in the
   mailbox, rsendmail with its queue runner (`-q30m`) up and without, dma, Postfix;
3. 200 default-mode submissions to 10 domains through the smarthost: time until all
   arrived, SMTP sessions (rsendmail with and without its runner up);
4. 1,000 queued messages to 10 domains drained by one run (`rsendmail -q`, `dma -q`,
   Postfix `postqueue -f` of mail held by `defer_transports`): time, sessions; and
   the sink's floor in the same interleave: the same number of messages sent from memory
   by a pipelining client (one round trip a message, 1, 2 and 8 sessions; Postfix's
   smtp-source does not pipeline and is shown beside it with one connection a session),
   the least any drain can take against that sink (the sinks throw messages away and
   only count them, so the floor is the sink's SMTP work, not its disk); the ratios to
   dma, also with the floor subtracted from both;
5. rsendmail's queue at 1,000, 10,000 and 100,000 entries (queue files written directly
   in rsendmail's format, see docs/ARCHITECTURE.md "File formats"): `mailq` time and
   peak RSS, a `-q` run's time to its first connection (the run lists the spool by
   name and opens its first 1,000 entries before it connects: queue::SWEEP_BATCH),
   `-qR` of one domain's 10 messages and ETRN of it through a -bD daemon (against the same in a 100-entry
   queue), the periodic runner's peak RSS;
   and how each grows from the smallest queue to the largest.

Without root (or without the peers) only rsendmail's figures are printed.

Sizes (environment; the --quick value in brackets): BENCH_LAT_RUNS 101 [21],
BENCH_LOCAL_RUNS 21 [7], BENCH_LOCAL_WAIT 5 [2] s, BENCH_BURST 200, BENCH_BURST_ROUNDS
3 [1], BENCH_BURST_WAIT 30 [20] s, BENCH_DRAIN 1000 [200], BENCH_DRAIN_ROUNDS 6 [2],
BENCH_QUEUE_SIZES 1000,10000,100000 [1000,10000], BENCH_FLUSH_REPS 5 [3],
BENCH_RUNNER_SECONDS 10 [5]. BENCH_SECTIONS (e.g. "1,4") runs only those sections.
BENCH_BEFORE=PATH (an earlier build's rsendmail) adds it to sections 1 and 4,
interleaved, as "before".
"""
import os
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerns  # noqa: E402
import peers  # noqa: E402

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
QUICK = "--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"
BIN = os.path.abspath(ARGS[0] if ARGS else "target/release/rsendmail")
SINK = os.path.abspath(ARGS[1] if len(ARGS) > 1 else
                       os.path.join(peerns.POSTFIX, "usr", "sbin", "smtp-sink"))


def env_int(name, full, quick):
    return int(os.environ.get(name, quick if QUICK else full))


LAT_RUNS = env_int("BENCH_LAT_RUNS", 101, 21)
LOCAL_RUNS = env_int("BENCH_LOCAL_RUNS", 21, 7)
BURST = env_int("BENCH_BURST", 200, 200)
BURST_ROUNDS = env_int("BENCH_BURST_ROUNDS", 3, 1)
DRAIN = env_int("BENCH_DRAIN", 1000, 200)
DRAIN_ROUNDS = env_int("BENCH_DRAIN_ROUNDS", 6, 2)
SIZES = [int(x) for x in os.environ.get(
    "BENCH_QUEUE_SIZES", "1000,10000" if QUICK else "1000,10000,100000").split(",")]
FLUSH_REPS = env_int("BENCH_FLUSH_REPS", 5, 3)
RUNNER_SECONDS = env_int("BENCH_RUNNER_SECONDS", 10, 5)
LOCAL_WAIT = env_int("BENCH_LOCAL_WAIT", 5, 2)
BURST_WAIT = env_int("BENCH_BURST_WAIT", 30, 20)  # then what is left waits for a queue run
SECTIONS = set(os.environ.get("BENCH_SECTIONS", "1,2,3,4,5").replace(" ", "").split(","))
WAIT = 300  # the most any phase waits for its mail, in seconds

MSG2K = b"From: bench@bench.example\nSubject: bench\n\n" + b"".join(
    b"line %04d of a two kilobyte message, padded to length.....\n" % i
    for i in range(40))[:2048 - 43]


def median_ms(xs):
    return statistics.median(xs) * 1000 if xs else float("nan")


def ratio(a, b):
    return "%.2fx" % (a / b) if b and a == a and b == b else "n/a"


class WithRunner:
    """A program with a periodic queue runner in the foreground, ours to stop."""
    runner = None

    def spawn_runner(self, argv):
        self.runner = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        time.sleep(0.3)

    def stop_runner(self):
        if self.runner:
            self.runner.terminate()
            self.runner.wait()
            self.runner = None


class Rsendmail(WithRunner):
    """rsendmail with a config of its own (spool, mailboxes, log) relaying to `port`."""

    def __init__(self, work, name, port, label=None, binary=None):
        self.name = label or "rsendmail"
        self.bin = binary or BIN
        self.dir = os.path.join(work, name)
        self.mail = os.path.join(self.dir, "mail")
        self.conf = peers.config(work, name, port,
                                 "MAILSPOOL %s\nMAILLOG %s/rsendmail.log\n" % (self.mail, self.dir))
        self.spool = os.path.join(self.dir, "spool")
        os.makedirs(self.mail)
        if os.getuid() == 0:
            os.chown(self.mail, 0, 8)
        os.chmod(self.mail, 0o3777)
        self.mailbox = os.path.join(self.mail, "benchuser")
        if os.getuid() == 0:
            peerns.mailbox(self.mailbox)
        self.runner = None

    def argv(self, mode, rcpts):
        return [self.bin, "-C", self.conf] + (["-odq"] if mode == "q" else []) + \
            ["-f", "bench@bench.example"] + rcpts

    def start_runner(self):
        """The periodic queue runner in the foreground (`-qf -q30m`), ours to stop."""
        self.spawn_runner([self.bin, "-C", self.conf, "-qf", "-q30m"])


    def run_queue(self):
        return subprocess.run([self.bin, "-C", self.conf, "-q"], stdin=subprocess.DEVNULL)

    def queued(self):
        try:
            return len([n for n in os.listdir(self.spool) if n.startswith("qf")])
        except FileNotFoundError:
            return 0


ERR = tempfile.TemporaryFile()


class Installed(WithRunner):
    """rsendmail as installed: a set-gid copy (group rsendmail) of both binaries, the
    system config /etc/rsendmail/rsendmail.conf (in the namespace), its spool 2770, the
    root runner as the packaged service starts it (`-q30m -qf`); submissions by
    benchsender, an ordinary user, to benchuser."""

    def __init__(self, work, port, runner):
        self.name = "rsendmail, user, " + ("runner up" if runner else "no runner")
        self.dir = os.path.join(work, "installed-%d" % runner)
        bindir = os.path.join(self.dir, "bin")
        self.spool = os.path.join(self.dir, "spool")
        self.mail = os.path.join(self.dir, "mail")
        os.makedirs(bindir)
        os.chmod(self.dir, 0o755)
        for d, mode in ((self.spool, 0o2770), (self.mail, 0o3777)):
            os.makedirs(d)
            os.chown(d, 0, peerns.RSENDMAIL_GID if d == self.spool else 8)
            os.chmod(d, mode)
        for b in ("rsendmail", "rsendmail-deliver"):
            shutil.copy(os.path.join(os.path.dirname(BIN), b), bindir)
        self.bin = os.path.join(bindir, "rsendmail")
        os.chown(self.bin, 0, peerns.RSENDMAIL_GID)
        os.chmod(self.bin, 0o2755)
        self.mailbox = os.path.join(self.mail, "benchuser")
        peerns.mailbox(self.mailbox)
        self.port = port
        self.runner = None
        self.with_runner = runner

    def configure(self):
        """Make this one the system config (one installation at a time)."""
        log = os.path.join(self.dir, "rsendmail.log")
        open(log, "a").close()
        os.chown(log, 0, peerns.RSENDMAIL_GID)
        os.chmod(log, 0o660)
        with open("/etc/rsendmail/rsendmail.conf", "w") as f:
            f.write("SPOOLDIR %s\nMAILSPOOL %s\nMAILNAME bench.example\nSMARTHOST 127.0.0.1\n"
                    "PORT %d\nMAILLOG %s\n" % (self.spool, self.mail, self.port, log))
        if self.with_runner and not self.runner:
            self.spawn_runner([self.bin, "-q30m", "-qf"])


    def argv(self, mode, rcpts):
        self.configure()
        return peerns.as_user([self.bin] + (["-odq"] if mode == "q" else []) + rcpts)

    def queued(self):
        return len([n for n in os.listdir(self.spool) if n.startswith("qf")])


def submit(prog, mode, rcpts, msg=MSG2K):
    """Run one submission; its wall time in seconds, until the process exits (a background
    deliverer that keeps the submission's stderr open is not waited for: its error output
    goes to a file, not a pipe)."""
    ERR.seek(0)
    ERR.truncate()
    t = time.perf_counter()
    r = subprocess.run(prog.argv(mode, rcpts), input=msg, stdout=subprocess.DEVNULL,
                       stderr=ERR)
    el = time.perf_counter() - t
    if r.returncode != 0:
        ERR.seek(0)
        raise SystemExit("%s: submission failed (%d): %s" % (
            prog.name, r.returncode, ERR.read().decode(errors="replace")))
    return el


def wait_for(pred, limit=WAIT, step=0.0005):
    t = time.perf_counter()
    while not pred():
        if time.perf_counter() - t > limit:
            return False
        time.sleep(step)
    return True


def size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


# 1. Submission latency.
def submission_latency(progs):
    times = {p.name: [] for p in progs}
    for p in progs:
        for _ in range(5):
            submit(p, "q", ["lat@d1.example"])
    for _ in range(LAT_RUNS):
        for p in progs:
            times[p.name].append(submit(p, "q", ["lat@d1.example"]))
    print("\n1. Submission latency, queue only (rsendmail -odq, dma -bq, Postfix sendmail), "
          "2 KB, median of %d, interleaved:" % LAT_RUNS)
    rs = median_ms(times[progs[0].name])
    for p in progs:
        m = median_ms(times[p.name])
        print("   %-28s %7.2f ms" % (p.name, m))
    for p in progs[1:]:
        print("   rsendmail / %-16s %s%s" % (p.name, ratio(rs, median_ms(times[p.name])),
                                           "  (target <= 0.5x)" if p.name == "dma" else ""))


# 1b. What a submission does at start-up, by system call.
STARTUP_KINDS = [
    ("system calls", lambda c, a: True),
    ("processes (clone/fork/execve)", lambda c, a: c in ("clone", "clone3", "fork", "vfork",
                                                         "execve")),
    ("shared objects opened", lambda c, a: c in ("openat", "open") and ".so" in a
     and "= -1" not in a),
    ("/proc/self/maps opened", lambda c, a: c in ("openat", "open") and "/proc/self/maps" in a),
    ("syslog connections (/dev/log)", lambda c, a: c == "connect" and "/dev/log" in a),
    ("nscd connections", lambda c, a: c == "connect" and "nscd" in a),
    ("passwd/group files opened", lambda c, a: c in ("openat", "open")
     and ("/etc/passwd" in a or "/etc/group" in a)),
    ("hosts/resolv.conf opened", lambda c, a: c in ("openat", "open")
     and ("/etc/hosts" in a or "resolv.conf" in a)),
    ("uname/gethostname", lambda c, a: c in ("uname", "gethostname")),
    ("fsync/fdatasync", lambda c, a: c in ("fsync", "fdatasync")),
]


def startup_costs(progs, work):
    if not shutil.which("strace"):
        print("\n1b. (strace is not installed: no start-up breakdown)")
        return
    counts = {}
    for p in progs:
        submit(p, "q", ["st@d1.example"])  # the spool is made; the second is the one shown
        out = os.path.join(work, "strace-%s" % p.name.split(",")[0])
        subprocess.run(["strace", "-f", "-qq", "-o", out] + p.argv("q", ["st@d1.example"]),
                       input=MSG2K, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = [0] * len(STARTUP_KINDS)
        with open(out, errors="replace") as f:
            for line in f:
                parts = line.split(None, 1)
                if len(parts) < 2 or parts[1].startswith(("+++", "---", "<...")):
                    continue
                call = parts[1].split("(", 1)[0]
                for i, (_, pred) in enumerate(STARTUP_KINDS):
                    if pred(call, parts[1]):
                        c[i] += 1
        counts[p.name] = c
    print("\n1b. One queue-only submission (the second into its spool), by system call "
          "(strace -f):")
    print("   %-32s" % "" + "".join("%12s" % p.name.split(",")[0] for p in progs))
    for i, (label, _) in enumerate(STARTUP_KINDS):
        print("   %-32s" % label + "".join("%12d" % counts[p.name][i] for p in progs))


# 2. Local mail latency.
def local_latency(progs):
    lat = {p.name: [] for p in progs}
    lost = {p.name: 0 for p in progs}
    for _ in range(LOCAL_RUNS):
        for p in progs:
            if lost[p.name] >= 3 and not lat[p.name]:
                continue  # never arrives (waits for a queue run): not tried again
            if hasattr(p, "configure"):
                p.configure()
            before = size(p.mailbox)
            submit(p, "b", ["benchuser"])
            t = time.perf_counter()
            if wait_for(lambda: size(p.mailbox) > before, limit=LOCAL_WAIT):
                lat[p.name].append(time.perf_counter() - t)
            else:
                lost[p.name] += 1
            # Let the last one finish writing before the next measurement starts.
            wait_for(lambda: False, limit=0.02, step=0.02)
    print("\n2. Local mail latency (default mode, to a local user): submission's return -> "
          "in the mailbox, median of %d, interleaved (\"user\": an ordinary user submits "
          "to an installed, set-gid rsendmail; otherwise root submits):" % LOCAL_RUNS)
    for p in progs:
        xs = lat[p.name]
        left = ""
        if hasattr(p, "queued"):
            left = ", %d left queued" % p.queued()
        if xs:
            print("   %-28s %8.1f ms median, %8.1f ms max%s%s  (target <= 50 ms)"
                  % (p.name, median_ms(xs), max(xs) * 1000,
                     ", %d not there after %d s" % (lost[p.name], LOCAL_WAIT)
                     if lost[p.name] else "", left))
        else:
            print("   %-28s none arrived within %d s (%d tried%s)"
                  % (p.name, LOCAL_WAIT, lost[p.name], left))


# 3. A burst of default-mode submissions.
def burst(progs, sinks):
    res = {p.name: [] for p in progs}
    for rnd in range(BURST_ROUNDS):
        for p in progs:
            sink = sinks[p.name]
            n0, c0 = sink.count(), sink.connects()
            t = time.perf_counter()
            for i in range(BURST):
                submit(p, "b", ["b%d-%d@d%d.example" % (rnd, i, i % 10)])
            # Until all arrived, or BURST_WAIT; the time is of the last arrival.
            last, seen = t, n0
            while seen < n0 + BURST and time.perf_counter() - t < BURST_WAIT:
                time.sleep(0.005)
                now = sink.count()
                if now != seen:
                    seen, last = now, time.perf_counter()
            ok = seen
            el = last - t
            time.sleep(0.2)  # sessions still closing are counted with this round
            left = p.queued() if hasattr(p, "queued") else 0
            res[p.name].append((el, sink.connects() - c0, ok - n0, left))
            if left and hasattr(p, "run_queue"):
                # Clear what was left for the next round (not timed).
                p.run_queue()
                sink.wait(sink.count() + left, WAIT)
                time.sleep(0.5)
    print("\n3. %d default-mode submissions to 10 domains via the smarthost, from the first "
          "submission until the last arrived (median of %d rounds, interleaved; waiting at most "
          "%d s):"
          % (BURST, BURST_ROUNDS, BURST_WAIT))
    def whole(name):
        """The median time to the last arrival."""
        return statistics.median(x[0] for x in res[name])
    for p in progs:
        r = res[p.name]
        short = [x for x in r if x[2] < BURST]
        print("   %-28s %7.2f s, %5.0f SMTP sessions, %d arrived%s"
              % (p.name, whole(p.name), statistics.median(x[1] for x in r),
                 min(x[2] for x in r),
                 "; in %d of %d rounds not all arrived within %d s (at most %d left queued "
                 "for a queue run; the time is to the last arrival)"
                 % (len(short), len(r), BURST_WAIT, max(x[3] for x in short))
                 if short else ""))
    for p in progs[1:]:
        if p.name.startswith("rsendmail"):
            continue
        for r in progs[:2]:
            print("   %s / %-16s %s%s" % (
                r.name, p.name, ratio(whole(r.name), whole(p.name)),
                "  (target <= 0.5x, <= 10 sessions)" if p.name == "dma" else ""))


# 4. One run drains a queue.
FLOORS = [("pipelined", 1), ("pipelined", 2), ("pipelined", 8), ("smtp-source -d", 1),
          ("smtp-source -d", 8)]


def fill(p, pf, rnd):
    """Queue DRAIN messages to 10 domains on `p` (Postfix: held in its deferred queue by
    `defer_transports` until its drain)."""
    if p is pf:
        pf.postconf("defer_transports = smtp")
    for i in range(DRAIN):
        submit(p, "q", ["q%d-%d@d%d.example" % (rnd, i, i % 10)])
    if p is pf:
        wait_for(lambda: pf.count("deferred") >= DRAIN and pf.count("maildrop") == 0
                 and pf.count("incoming") == 0 and pf.count("active") == 0, 120, 0.05)


def drain_once(p, sink, pf):
    """One run that drains `p`'s queue: (seconds until the sink counted every message,
    SMTP sessions, messages arrived). (No CPU time: `rsendmail -q` and `dma -q` leave
    the run to a process of their own and return.)"""
    if p is pf:
        pf.postconf("defer_transports =")
    n0, c0 = sink.count(), sink.connects()
    t = time.perf_counter()
    if p is pf:
        subprocess.run([os.path.join(pf.sbin, "postqueue"), "-f"], check=True)
    else:
        p.run_queue()
    ok = sink.wait(n0 + DRAIN, WAIT)
    el = time.perf_counter() - t
    time.sleep(0.2)  # sessions still closing are counted with this run
    return el, sink.connects() - c0, ok - n0


def floor_once(work, kind, sessions, tag):
    """The sink's floor: seconds until a sink of its own counted DRAIN 2 KB messages sent
    from memory (no spool) by a pipelining client (`pipelined`) or by Postfix's
    smtp-source keeping one connection per session (`smtp-source -d`, which does not
    pipeline); and the sessions the sink counted. None when smtp-source is missing."""
    s = peers.Sink(SINK, work, "sink-floor-%s" % tag, backlog=1024)
    try:
        t = time.perf_counter()
        if kind == "pipelined":
            peers.pipelined_source(s.port, DRAIN, sessions, MSG2K)
        else:
            source = os.path.join(os.path.dirname(SINK), "smtp-source")
            if not os.access(source, os.X_OK):
                return None
            env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(
                os.path.dirname(os.path.dirname(SINK)), "lib", "postfix"))
            subprocess.run([source, "-d", "-m", str(DRAIN), "-s", str(sessions), "-l",
                            str(len(MSG2K)), "-f", "bench@bench.example", "-t",
                            "floor@d1.example", "127.0.0.1:%d" % s.port], env=env,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s.wait(DRAIN, WAIT)
        el = time.perf_counter() - t
        time.sleep(0.1)
        return el, s.connections()
    finally:
        s.stop()


def drain(progs, sinks, pf, work):
    """Each round fills every queue first, then runs the drains and the floors back to
    back (rsendmail, dma, Postfix, floors; the order reversed every other round), so
    that a change in the machine's load falls on all of them alike."""
    res = {p.name: [] for p in progs}
    flo = {f: [] for f in FLOORS}
    for rnd in range(DRAIN_ROUNDS):
        for p in progs:
            fill(p, pf, rnd)
        steps = [("prog", p) for p in progs] + [("floor", f) for f in FLOORS]
        if rnd % 2:
            steps.reverse()
        for what, x in steps:
            if what == "prog":
                res[x.name].append(drain_once(x, sinks[x.name], pf))
            else:
                r = floor_once(work, x[0], x[1], "%d-%s-%d" % (rnd, x[0][0], x[1]))
                if r:
                    flo[x].append(r)
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    print("\n4. %d queued messages to 10 domains drained by one run (rsendmail -q, dma -q, "
          "Postfix postqueue -f) into smtp-sink, until the sink counted the last one; "
          "median of %d rounds, each filling every queue and then running the drains and "
          "the sink's floors back to back (order reversed every other round):"
          % (DRAIN, DRAIN_ROUNDS))
    for p in progs:
        r = res[p.name]
        print("   %-28s %7.3f s, %5.0f SMTP sessions, %d arrived  (rounds: %s)"
              % (p.name, med([x[0] for x in r]), med([x[1] for x in r]),
                 min(x[2] for x in r),
                 " ".join("%.3f" % x[0] for x in r)))
    for f in FLOORS:
        r = flo[f]
        if r:
            print("   floor, %-21s %7.3f s, %5.0f SMTP sessions  (rounds: %s)"
                  % ("%s %d" % f, med([x[0] for x in r]), med([x[1] for x in r]),
                     " ".join("%.3f" % x[0] for x in r)))
    print("   (the floor: the same number of 2 KB messages sent from memory, no spool, "
          "into a sink of its own; \"pipelined\" by the bench's own client, one round trip a "
          "message as rsendmail's run; smtp-source, which does not pipeline, with one "
          "connection a session)")
    rs = med([x[0] for x in res[progs[0].name]])
    floor = min((med([x[0] for x in flo[f]]) for f in FLOORS if f[0] == "pipelined"
                 and f[1] <= 8 and flo[f]), default=float("nan"))
    for p in progs[1:]:
        them = med([x[0] for x in res[p.name]])
        per_round = [a[0] / b[0] for a, b in zip(res[progs[0].name], res[p.name])]
        print("   rsendmail / %-16s %s (rounds: %s)%s" % (
            p.name, ratio(rs, them), " ".join("%.2f" % x for x in per_round),
            "  (target <= 0.2x, <= 8 sessions)" if p.name == "dma" else ""))
        print("   floor / %-20s %s  (the least ratio any drain can show here)"
              % (p.name, ratio(floor, them)))
        print("   (rsendmail - floor) / (%s - floor) %s" % (p.name, ratio(rs - floor,
                                                                         them - floor)))
    print("   rsendmail / floor            %s  (floor: the fastest pipelined one, %.3f s)"
          % (ratio(rs, floor), floor))


# 5. A large queue.
def fnv(state, data):
    for b in data:
        state = ((state ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return state


ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx"


def build_queue(prog, total):
    """A queue of `total` entries: `total - 10` to 999 other domains and 10 to
    target.example, written as copies of a real submission's queue file with their own
    ID and recipient, length and sum as the commit writes them. Returns seconds."""
    t0 = time.perf_counter()
    submit(prog, "q", ["template@d0000.example"])
    spool = prog.spool
    name = [n for n in os.listdir(spool) if n.startswith("qf")][0]
    path = os.path.join(spool, name)
    with open(path, "rb") as f:
        data = f.read()
    mode = os.stat(path).st_mode & 0o777
    os.unlink(path)
    env_end = data.index(b"\n\n") + 2
    envelope, message = data[:env_end], data[env_end:]
    old_id = name[2:].encode()
    sum_at = envelope.index(b"\nmessage-sum ") + len(b"\nmessage-sum ")
    envelope = envelope[:sum_at] + b"0" * 16 + envelope[sum_at + 16:]
    split = envelope.index(b"\nid ") + 1
    head, tail = envelope[:split], envelope[split:]
    state = fnv(fnv(0xcbf29ce484222325, message), head)
    prefix = old_id[:6].decode() + "xx"
    job = (spool, mode, total, head, tail, message, old_id, sum_at, state, prefix)
    # Two processes write halves (the sums are pure Python).
    kids = []
    for part in range(2):
        pid = os.fork()
        if pid == 0:
            try:
                write_entries(job, range(part, total, 2))
            finally:
                os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    return time.perf_counter() - t0


def write_entries(job, indexes):
    spool, mode, total, head, tail, message, old_id, sum_at, state, prefix = job
    for i in indexes:
        qid = "%s%06d" % (prefix, i)
        rcpt = "t%d@target.example" % i if i >= total - 10 else "u%d@d%04d.example" % (i, i % 999)
        t = tail.replace(old_id, qid.encode(), 1).replace(b"template@d0000.example",
                                                           rcpt.encode())
        s = fnv(state, t)
        body = head[:sum_at] + b"%016x" % s + head[sum_at + 16:] + t + message
        fd = os.open(os.path.join(spool, "qf" + qid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        os.write(fd, body)
        os.close(fd)


def timed(argv, reps):
    """Median wall time and largest peak RSS (KB, by GNU time) of `argv` run `reps` times."""
    ts, rss = [], 0
    for _ in range(reps):
        t = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ts.append(time.perf_counter() - t)
        rss = max(rss, int(r.stderr.strip().splitlines()[-1]))
    return statistics.median(ts), rss


class Listener:
    """A port that accepts connections and notes when the first came, then hangs up."""

    def __init__(self):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(64)
        self.port = self.s.getsockname()[1]
        self.first = None
        self.accepted = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            if self.first is None:
                self.first = time.perf_counter()
            self.accepted += 1
            try:
                c.sendall(b"421 4.3.2 bench listener\r\n")
            except OSError:
                pass
            c.close()


def hwm_kb(pid):
    """VmHWM (KB) of a process and of each of its children, the largest; 0 once gone."""
    best = 0
    pids = [pid]
    try:
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        if f.read().rsplit(")", 1)[1].split()[1] == str(pid):
                            pids.append(int(d))
                except (OSError, IndexError):
                    pass
    except OSError:
        pass
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        best = max(best, int(line.split()[1]))
        except OSError:
            pass
    return best


def big_queue(work, sink):
    rows = {}
    sizes = [100] + SIZES
    for n in sizes:
        prog = Rsendmail(work, "q%d" % n, sink.port)
        with open(prog.conf, "a") as f:
            f.write("O FastFlushDomains=target.example\n")
        built = build_queue(prog, n)
        # The first run after the files were written lists them all and builds the index,
        # as submissions would have.
        # (-qI of an ID that cannot be: a run that lists the spool and selects nothing.)
        warm, _ = timed([BIN, "-C", prog.conf, "-qf", "-qIzz"], 1)
        corrupt = os.path.join(prog.spool, "corrupt")
        if os.path.isdir(corrupt) and os.listdir(corrupt):
            raise SystemExit("the queue files written for the benchmark were refused as "
                             "corrupt (%s): has the format changed?" % corrupt)
        if prog.queued() != n:
            raise SystemExit("%d of %d queue files written are listed" % (prog.queued(), n))
        mailq_s, mailq_rss = timed([BIN, "-C", prog.conf, "-bp"], 3)

        # -qR for target.example's 10 messages (the first flush also sends those queued
        # with the rest; then re-queued and timed).
        def flush():
            for i in range(10):
                submit(prog, "q", ["t%d@target.example" % i], b"Subject: flush\n\nbody\n")
            before = sink.count()
            t = time.perf_counter()
            subprocess.run([BIN, "-C", prog.conf, "-qf", "-qR@target.example"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            sink.wait(before + 10, 60)
            return time.perf_counter() - t
        flush()
        qr = statistics.median(flush() for _ in range(FLUSH_REPS))

        # ETRN target.example through a -bD daemon: from the command until all 10 arrived.
        dport = peers.free_port()
        dconf = prog.conf + ".daemon"
        with open(prog.conf) as f:
            text = f.read()
        with open(dconf, "w") as f:
            f.write(text + "O DaemonPortOptions=Port=%d,Addr=127.0.0.1\n" % dport)
        daemon = subprocess.Popen([BIN, "-C", dconf, "-bD", "-odq"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL)
        etrn = []
        try:
            peers.wait_port(dport)
            c = smtplib.SMTP("127.0.0.1", dport)
            c.ehlo("bench")
            for _ in range(FLUSH_REPS):
                for i in range(10):
                    submit(prog, "q", ["t%d@target.example" % i], b"Subject: etrn\n\nbody\n")
                before = sink.count()
                t = time.perf_counter()
                c.docmd("ETRN", "target.example")
                sink.wait(before + 10, 60)
                etrn.append(time.perf_counter() - t)
            c.quit()
        finally:
            daemon.terminate()
            daemon.wait()
        etrn = statistics.median(etrn)

        # A -q run's start-up: from its start until its first connection; and the
        # periodic runner's peak RSS over its first seconds (the smarthost hangs up).
        lis = Listener()
        conf2 = prog.conf + ".listener"
        with open(prog.conf) as f:
            text = f.read().replace("PORT %d" % sink.port, "PORT %d" % lis.port)
        with open(conf2, "w") as f:
            f.write(text)
        starts = []
        for _ in range(3):
            lis.first = None
            t = time.perf_counter()
            p = subprocess.Popen([BIN, "-C", conf2, "-qf"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL)
            wait_for(lambda: lis.first is not None or p.poll() is not None, 120, 0.001)
            starts.append((lis.first or time.perf_counter()) - t)
            p.kill()
            p.wait()
        runner_rss = 0
        if n in SIZES:
            p = subprocess.Popen([BIN, "-C", conf2, "-qf", "-q30m"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL)
            t = time.perf_counter()
            while time.perf_counter() - t < RUNNER_SECONDS and p.poll() is None:
                runner_rss = max(runner_rss, hwm_kb(p.pid))
                time.sleep(0.05)
            p.send_signal(signal.SIGTERM)
            p.wait()
        lis.s.close()
        rows[n] = dict(built=built, warm=warm, mailq=mailq_s, mailq_rss=mailq_rss, qr=qr, etrn=etrn,
                       start=statistics.median(starts), runner_rss=runner_rss)
        shutil.rmtree(prog.dir, ignore_errors=True)
    print("\n5. rsendmail's queue at each size (queue files written directly; the first run "
          "builds the index):")
    print("   %-9s %9s %9s %10s %12s %12s %10s %10s %14s" % (
        "entries", "built s", "index s", "mailq ms", "mailq RSS", "-q 1st conn",
        "-qR 10 ms", "ETRN ms", "runner RSS"))
    for n in sizes:
        r = rows[n]
        print("   %-9d %9.1f %9.2f %10.1f %9.1f MB %9.1f ms %10.1f %10.1f %14s" % (
            n, r["built"], r["warm"], r["mailq"] * 1000, r["mailq_rss"] / 1024,
            r["start"] * 1000, r["qr"] * 1000, r["etrn"] * 1000,
            "%.1f MB" % (r["runner_rss"] / 1024) if r["runner_rss"] else "-"))
    a, b = rows[SIZES[0]], rows[SIZES[-1]]
    print("   growth %d -> %d entries: mailq time %s, mailq RSS %s, -q start-up %s, "
          "-qR %s, ETRN %s, runner RSS %s" % (
              SIZES[0], SIZES[-1], ratio(b["mailq"], a["mailq"]),
              ratio(b["mailq_rss"], a["mailq_rss"]), ratio(b["start"], a["start"]),
              ratio(b["qr"], a["qr"]), ratio(b["etrn"], a["etrn"]),
              ratio(b["runner_rss"], a["runner_rss"])))
    print("   in %d entries / in 100 entries: -qR of 10 %s, ETRN of 10 %s  (target <= 1.5x); "
          "runner peak RSS at %d: %.1f MB (target <= 16 MB; over its first %d s)" % (
              SIZES[-1], ratio(b["qr"], rows[100]["qr"]), ratio(b["etrn"], rows[100]["etrn"]),
              SIZES[-1], b["runner_rss"] / 1024, RUNNER_SECONDS))


def main():
    inside = peerns.enter()
    work = tempfile.mkdtemp(prefix="rsendmail-cbench-")
    os.chmod(work, 0o755)
    sinks = []
    pf = rs = rn = None
    try:
        have = peerns.setup(work) if inside else []
        print("rsendmail against %s (%s)%s; load average %.1f on %d CPUs" % (
            " and ".join(have) or "no peers", BIN,
            ", quick run" if QUICK else "", os.getloadavg()[0], os.cpu_count() or 0))
        if not inside:
            print("(the peers need root for their namespaces: rsendmail's figures only)")

        def sink(name, backlog=1024):
            s = peers.Sink(SINK, work, name, backlog=backlog)
            sinks.append(s)
            return s
        s_rs, s_rn, s_dma, s_pf = sink("sink-rs"), sink("sink-rs-runner"), None, None
        rs = Rsendmail(work, "rs", s_rs.port)
        rn = Rsendmail(work, "rs-runner", s_rn.port, "rsendmail, runner up")
        if SECTIONS & {"2", "3"}:
            rn.start_runner()
        peers_ = []
        if "dma" in have:
            s_dma = sink("sink-dma")
            peers_.append(peerns.Dma(work, s_dma.port))
        if "postfix" in have:
            s_pf = sink("sink-pf")
            pf = peerns.Postfix(work, s_pf.port)
            err = pf.start()
            if err:
                print("Postfix did not start (%s): measured against dma only" % err.strip())
                pf = None
            else:
                peers_.append(pf)
        by = {"rsendmail": s_rs, "rsendmail, runner up": s_rn, "dma": s_dma, "postfix": s_pf}

        lat = Rsendmail(work, "rs-lat", s_rs.port)
        # BENCH_BEFORE: another rsendmail binary (an earlier build) measured beside it.
        before = []
        if os.environ.get("BENCH_BEFORE"):
            before = [Rsendmail(work, "rs-before", s_rs.port, "before",
                                os.path.abspath(os.environ["BENCH_BEFORE"]))]
        if "1" in SECTIONS:
            submission_latency([lat] + before + peers_)
            startup_costs([lat] + before + peers_, work)
        for p in peers_:
            if p.name == "dma":
                p.clear()
        if "2" not in SECTIONS:
            pass
        elif inside:
            users = [Installed(work, s_rs.port, True), Installed(work, s_rs.port, False)]
            local_latency(users + [rn, rs] + peers_)
            for u in users:
                u.stop_runner()
        else:
            print("\n2. Local mail latency: needs root (a local account in the namespace)")
        if "3" in SECTIONS:
            burst([rn, rs] + peers_, by)
        rn.stop_runner()
        if "4" in SECTIONS:
            # BENCH_BEFORE: the earlier build drains a queue of its own into a sink of
            # its own, interleaved with the others.
            before4 = []
            if os.environ.get("BENCH_BEFORE"):
                by["before"] = sink("sink-before")
                before4 = [Rsendmail(work, "rs-before-drain", by["before"].port, "before",
                                     os.path.abspath(os.environ["BENCH_BEFORE"]))]
            drain([rs] + before4 + peers_, by, pf, work)
        if "5" in SECTIONS:
            big_queue(work, s_rs)
    finally:
        for p in (rs, rn):
            if p:
                p.stop_runner()
        if pf:
            pf.stop()
        for s in sinks:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
