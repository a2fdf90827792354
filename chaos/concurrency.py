"""Concurrency: many queue runners and submitters on one spool, a runner stopped while it
holds an entry (in the middle of a delivery, or inside an index rebuild), and -qR/ETRN
selection while submissions and runs race the index.

Promises checked: every acknowledged message (exit 0) arrives exactly once at the
smarthost (counted by Message-Id) after a final queue run, none is lost, the spool ends
empty; a stopped runner stalls neither submissions (the longest one is measured and must
stay under SUBMIT_BOUND) nor the other runners, and its entry is not delivered twice
after it is continued or killed and a recovery run; an entry the index may miss is still
selected by -qR and ETRN.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
import time

import common
from common import Row, Server, Spool, message, tally, wait_until

SECTION = "concurrency"
SUBMIT_BOUND = 10.0   # seconds: the longest a submission may take while a runner is stopped
MODES = ["-odq", "-odb", "-odi"]


class Timer:
    """The longest duration seen, thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.longest = 0.0
        self.slow: list[str] = []

    def add(self, what: str, took: float):
        with self.lock:
            self.longest = max(self.longest, took)
            if took > SUBMIT_BOUND:
                self.slow.append(f"{what} {took:.1f}s")


RENAMES = "rename,renameat,renameat2"
DELAY_RENAME = ("strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={RENAMES}",
                "-e", f"inject={RENAMES}:delay_enter=50000:when=1")


def submit(sp: Spool, mode: str, tag: str, n: int, rcpt: str, timer: Timer | None = None,
           timeout: float = 60, prefix=()) -> bool:
    """One submission; whether it was acknowledged (exit 0)."""
    t0 = time.monotonic()
    try:
        code, _out, _err = sp.sendmail([mode, "-f", "alice@chaos.example", rcpt],
                                       message(tag, n, to=rcpt), timeout=timeout,
                                       prefix=prefix)
    except subprocess.TimeoutExpired:
        code = -999
    if timer is not None:
        timer.add(f"{mode} {tag}.{n}", time.monotonic() - t0)
    return code == 0


def spool_procs(sp: Spool) -> list[int]:
    """Processes working on this spool (its config path is on their command line)."""
    return common.pids_of(str(sp.conf))


def settle(sp: Spool, limit: float) -> bool:
    """Wait for the spool's background deliveries to end; whether they did."""
    return wait_until(limit, lambda: not spool_procs(sp), step=0.1)


def final_run(sp: Spool, timeout: float = 120) -> int:
    try:
        return sp.sendmail(["-qf"], timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        return -999


def leftovers(sp: Spool) -> str:
    """What should not be in a spool after a clean end: entries, temporary files, corrupt."""
    bits = []
    if sp.entries():
        bits.append(f"{len(sp.entries())} entries left")
    tmp = sp.spool / "tmp"
    if tmp.is_dir() and any(tmp.iterdir()):
        bits.append(f"tmp/ holds {len(list(tmp.iterdir()))}")
    if sp.corrupt():
        bits.append(f"{len(sp.corrupt())} in corrupt/")
    return "; ".join(bits)


def cleanup(sp: Spool, procs: list[subprocess.Popen]):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGCONT)
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
    common.kill_all(str(sp.conf))


def smarthost(ctx, name: str, srv: Server, extra: str = "") -> Spool:
    return Spool(ctx, name, f"SMARTHOST 127.0.0.1\nPORT {srv.port}\n"
                            f"O Timeout.connect=5s\nO Timeout.initial=20s\n{extra}")


# ---------------------------------------------------------------------------------------
# (1) many runners and submitters


def many(ctx) -> Row:
    quick = ctx.quick
    total = 150 if quick else 1000
    n_runners = 4 if quick else 8
    n_submitters = 8 if quick else 20
    rng = random.Random(ctx.seed)
    srv = Server(ctx, "many-server")
    sp = smarthost(ctx, "many", srv)
    procs: list[subprocess.Popen] = []
    acked: list[str] = []
    acked_lock = threading.Lock()
    timer = Timer()
    counter = iter(range(total))
    counter_lock = threading.Lock()
    done = threading.Event()
    runs = [0]
    t0 = time.monotonic()
    try:
        # Half the runners are persistent (-q1s in the foreground), half loop -qf.
        daemons = n_runners // 2
        for _ in range(daemons):
            procs.append(subprocess.Popen(sp.argv(["-q1s", "-qf"]), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))

        def looping_runner():
            while not done.is_set():
                final_run(sp, timeout=120)
                runs[0] += 1
                time.sleep(rng.random() * 0.2)

        def submitter(k: int):
            r = random.Random(ctx.seed * 1000 + k)
            while True:
                with counter_lock:
                    n = next(counter, None)
                if n is None:
                    return
                mode = r.choice(MODES)
                if submit(sp, mode, "many", n, f"user{n}@example.org", timer):
                    with acked_lock:
                        acked.append(f"many.{n}@chaos")

        loops = [threading.Thread(target=looping_runner, daemon=True)
                 for _ in range(n_runners - daemons)]
        subs = [threading.Thread(target=submitter, args=(k,), daemon=True)
                for k in range(n_submitters)]
        for t in loops + subs:
            t.start()
        for t in subs:
            t.join(600)
        done.set()
        for t in loops:
            t.join(150)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                pass
        hung = [p.pid for p in procs if p.poll() is None]
        settled = settle(sp, 60)
        code = final_run(sp)
        took = time.monotonic() - t0
        arrivals = srv.arrivals()
        left = leftovers(sp)
        row = tally(SECTION, f"{n_runners} runners ({daemons} -q1s, {n_runners - daemons} "
                    f"-qf loops) + {n_submitters} submitters (-odq/-odb/-odi)",
                    total, acked, arrivals, note="")
        notes = [f"{took:.0f} s, {runs[0]} looped runs, longest submission "
                 f"{timer.longest:.1f} s"]
        if len(acked) != total:
            notes.append(f"{total - len(acked)} submissions refused")
        for bad, why in ((hung, f"runners not stopping on SIGTERM: {hung}"),
                         (not settled, "background deliveries still running after 60 s"),
                         (code != 0, f"final run exit {code}"),
                         (left, left),
                         (timer.slow, f"slow submissions: {timer.slow[:3]}")):
            if bad:
                row.held = False
                notes.append(why)
        row.note = "; ".join(notes)
        return row
    finally:
        cleanup(sp, procs)
        srv.stop()


# ---------------------------------------------------------------------------------------
# (2) a runner stopped while it holds an entry


def beside(sp: Spool, n: int, tag: str, timer: Timer, acked: list[str], notes: list[str]):
    """`n` submissions in every mode, with a queue run after each tenth; False when a run
    beside failed."""
    ok = True
    for k in range(n):
        if submit(sp, MODES[k % 3], tag, k, f"{tag}{k}@example.org", timer, timeout=60):
            acked.append(f"{tag}.{k}@chaos")
        if k % 10 == 9:
            t = time.monotonic()
            code = final_run(sp, timeout=60)
            timer.add("-qf beside", time.monotonic() - t)
            if code != 0:
                notes.append(f"a run beside exited {code}")
                ok = False
    return ok


def stopped_in_delivery(ctx, how: str) -> Row:
    """A runner takes one entry to a server that answers slowly and is SIGSTOPped there:
    `cont` at the final dot (a `stall...` recipient: the server takes the message after
    STALL seconds and its 250 waits in the socket), then SIGCONT; `kill` at RCPT (a
    `stallrcpt...` recipient: the server has not taken the data), then SIGKILL.
    Meanwhile submissions in every mode and other runners go on. A recovery run ends it:
    every acknowledged message once, the stopped runner's included."""
    others = 30 if ctx.quick else 200
    stall = 4
    case = (f"runner SIGSTOPped holding an entry "
            f"({'after the data, then SIGCONT' if how == 'cont' else 'at RCPT, then SIGKILL'})"
            f", {others} submissions and runs beside it")
    srv = Server(ctx, f"stop-{how}-server", env={"STALL": str(stall)})
    rcpt = "stallrcpt@example.org" if how == "kill" else "stall@example.org"
    # Deadlines longer than the stop: the continued runner reads the 250 that waited.
    sp = smarthost(ctx, f"stop-{how}", srv, "O Timeout.datafinal=600s\nO Timeout.rcpt=600s")
    procs: list[subprocess.Popen] = []
    timer = Timer()
    acked: list[str] = []
    notes: list[str] = []
    held = True
    try:
        if submit(sp, "-odq", "held", 0, rcpt, timeout=30):
            acked.append("held.0@chaos")
        ids = [p.name[2:] for p in sp.entries()]
        if len(ids) != 1:
            return Row(SECTION, case, held=False, note=f"setup: {len(ids)} entries")
        runner = subprocess.Popen(sp.argv(["-qf", f"-qI{ids[0]}"]), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        procs.append(runner)
        mark = "RCPT stallrcpt" if how == "kill" else "DATA-END"
        if not wait_until(20, lambda: mark in srv.transcript(), step=0.02):
            return Row(SECTION, case, held=False,
                       note=f"the runner never reached the server's stall ({mark})")
        os.killpg(runner.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        held = beside(sp, others, "beside", timer, acked, notes)
        # The server's stall ends while the runner is still stopped.
        time.sleep(max(0.0, stall + 1 - (time.monotonic() - stopped_at)))
        t = time.monotonic()
        code = final_run(sp, timeout=60)
        timer.add("-qf beside", time.monotonic() - t)
        if ids[0] not in [p.name[2:] for p in sp.entries()]:
            notes.append("the stopped runner's entry was taken by another runner")
            held = False
        os.killpg(runner.pid, signal.SIGCONT if how == "cont" else signal.SIGKILL)
        try:
            runner.wait(60)
        except subprocess.TimeoutExpired:
            notes.append("the stopped runner did not end within 60 s")
            held = False
        return recover_and_tally(sp, srv, case, others + 1, acked, timer, notes, held,
                                 f"longest submission or run beside it {timer.longest:.1f} s")
    finally:
        cleanup(sp, procs)
        srv.stop()


def recover_and_tally(sp, srv, case, tried, acked, timer, notes, held, first) -> Row:
    """After a stopped runner was continued or killed: wait for background deliveries,
    a recovery run, then the row (every acknowledged message once, nothing left in the
    spool, no slow submission), `first` leading its note."""
    settle(sp, 60)
    code = final_run(sp)
    if code != 0:
        notes.append(f"recovery run exit {code}")
        held = False
    row = tally(SECTION, case, tried, acked, srv.arrivals())
    left = leftovers(sp)
    if left:
        notes.append(left)
        held = False
    if timer.slow:
        notes.append(f"slow: {timer.slow[:3]}")
        held = False
    notes.insert(0, first)
    row.held = row.held and held
    row.note = "; ".join(notes)
    return row


def holds_index_lock(sp: Spool, pid: int) -> bool:
    """Whether `pid` holds the index lock exclusively (from /proc/locks)."""
    try:
        ino = os.stat(sp.spool / "index" / "lock").st_ino
        text = open("/proc/locks").read()
    except OSError:
        return False
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[3] == "WRITE" and f[4] == str(pid) \
                and f[5].endswith(f":{ino}"):
            return True
    return False


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def stopped_in_rebuild(ctx, how: str) -> Row:
    """A runner frozen inside an index rebuild, holding the index lock exclusively (strace
    stops it at its first rename, the rebuilt index's): submissions in every mode, other
    runners and a -qR run go on and deliver everything; then the runner is continued or
    killed, and a recovery run finds nothing delivered twice."""
    then = "continued" if how == "cont" else "SIGKILLed"
    case = f"runner stopped inside an index rebuild (holding the index lock), then {then}"
    if not common.have("strace"):
        return Row(SECTION, case, note="skipped: strace not available")
    queued = 20 if ctx.quick else 200
    # Each submission beside waits up to a second for the index lock, then goes on.
    others = 10 if ctx.quick else 200
    srv = Server(ctx, f"rebuild-{how}-server")
    sp = smarthost(ctx, f"rebuild-{how}", srv)
    procs: list[subprocess.Popen] = []
    timer = Timer()
    acked: list[str] = []
    notes: list[str] = []
    held = True
    try:
        for k in range(queued):
            if submit(sp, "-odq", "queued", k, f"q{k}@example.org"):
                acked.append(f"queued.{k}@chaos")
        os.unlink(sp.spool / "index" / "recipients")   # the next full run rebuilds it
        tracer = subprocess.Popen(["strace", "-f", "-qq", "-o", "/dev/null", "-e",
                                   f"trace={RENAMES}", "-e",
                                   f"inject={RENAMES}:signal=STOP:when=1",
                                   *sp.argv(["-qf"])], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        procs.append(tracer)
        pid = [None]

        def frozen():
            for c in children(tracer.pid):
                if holds_index_lock(sp, c):
                    pid[0] = c
                    return True
            return False
        if not wait_until(20, frozen, step=0.05):
            return Row(SECTION, case, held=False,
                       note="the runner was never seen holding the index lock")
        held = beside(sp, others, "beside", timer, acked, notes)
        t = time.monotonic()
        try:
            code = sp.sendmail(["-qf", "-qRbeside"], timeout=60)[0]
        except subprocess.TimeoutExpired:
            code = -999
        timer.add("-qR beside", time.monotonic() - t)
        if code != 0:
            notes.append(f"-qR beside exited {code}")
            held = False
        if not holds_index_lock(sp, pid[0]):
            notes.append("the stopped runner no longer held the index lock")
            held = False
        os.kill(pid[0], signal.SIGCONT if how == "cont" else signal.SIGKILL)
        if how == "cont":
            try:
                tracer.wait(60)
            except subprocess.TimeoutExpired:
                notes.append("the continued runner did not end within 60 s")
                held = False
        return recover_and_tally(sp, srv, case, queued + others, acked, timer, notes, held,
                                 f"{queued} queued before, {others} submitted beside; longest "
                                 f"submission or run beside it {timer.longest:.1f} s")
    finally:
        for p in procs:
            for c in children(p.pid):
                try:
                    os.kill(c, signal.SIGKILL)
                except OSError:
                    pass
        cleanup(sp, procs)
        srv.stop()


# ---------------------------------------------------------------------------------------
# (3) -qR and ETRN selection while submissions and rebuilds race the index


def etrn(port: int, domain: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        f = s.makefile("rb")

        def reply():
            while True:
                line = f.readline()
                if not line or line[3:4] != b"-":
                    return line.decode(errors="replace").strip()
        reply()
        s.sendall(b"EHLO chaos.example\r\n")
        reply()
        s.sendall(f"ETRN {domain}\r\n".encode())
        r = reply()
        s.sendall(b"QUIT\r\n")
        reply()
        return r


def selection(ctx) -> Row:
    """Submitters (-odq) race full runs that rebuild the index (the index is removed now
    and then, and -qS runs list the spool and rebuild it) while -qR runs select; then one
    -qR run and one ETRN (a -bD daemon) must deliver every acknowledged message for their
    domains, and nothing else; a final run delivers the rest. Every message once."""
    total = 120 if ctx.quick else 800
    n_submitters = 6 if ctx.quick else 16
    case = (f"-qR and ETRN while {n_submitters} submitters race index rebuilds "
            f"({total} messages)")
    rng = random.Random(ctx.seed + 3)
    srv = Server(ctx, "select-server")
    sp = smarthost(ctx, "select", srv)
    daemon_port = common.free_port()
    sp.add_config(f"O DaemonPortOptions=Port={daemon_port},Addr=127.0.0.1")
    # ETRN reads etrn.example's own list (any other domain would run the whole queue).
    sp.add_config("O FastFlushDomains=etrn.example")
    procs: list[subprocess.Popen] = []
    acked: dict[str, list[str]] = {"sel": [], "etrn": [], "keep": []}
    lock = threading.Lock()
    counter = iter(range(total))
    done = threading.Event()
    notes: list[str] = []
    held = True
    missed = [0]
    try:
        def submitter(k):
            r = random.Random(ctx.seed * 7 + k)
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                kind = r.choice(["sel", "etrn", "keep"])
                rcpt = {"sel": f"u{n}@sel.example", "etrn": f"u{n}@etrn.example",
                        "keep": f"u{n}@keep.example"}[kind]
                # Half the submissions are held 50 ms between their index append and
                # their commit (strace delays the rename), so that rebuilds land there.
                prefix = DELAY_RENAME if (n % 2 and common.have("strace")) else ()
                if submit(sp, "-odq", kind, n, rcpt, prefix=prefix):
                    with lock:
                        acked[kind].append(f"{kind}.{n}@chaos")

        def racer():
            while not done.is_set():
                if True:
                    try:
                        os.unlink(sp.spool / "index" / "recipients")
                    except OSError:
                        pass
                try:
                    # Lists the spool and rebuilds the index; selects nothing.
                    sp.sendmail(["-qf", "-qSnobody.matches.this"], timeout=60)
                    # Selects and delivers nothing (no such recipient) through -qR.
                    sp.sendmail(["-qf", "-qRnobody.matches.this"], timeout=60)
                except subprocess.TimeoutExpired:
                    notes.append("a racing run passed 60 s")
                time.sleep(rng.random() * 0.05)

        subs = [threading.Thread(target=submitter, args=(k,), daemon=True)
                for k in range(n_submitters)]
        racers = [threading.Thread(target=racer, daemon=True) for _ in range(2)]
        for t in subs + racers:
            t.start()
        for t in subs:
            t.join(600)
        done.set()
        for t in racers:
            t.join(120)
        # And for certain: submissions held between their append and their commit for
        # 1.5 s while a rebuild runs, so that the rebuilt index misses them.
        planted = 3 if ctx.quick else 10
        slow = ("strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={RENAMES}",
                "-e", f"inject={RENAMES}:delay_enter=1500000:when=1")
        late = [threading.Thread(target=lambda n=n, kind=kind: (
            submit(sp, "-odq", kind, n, f"u{n}@{kind}.example", prefix=slow)
            and acked[kind].append(f"{kind}.{n}@chaos")), daemon=True)
            for n, kind in zip(range(total, total + planted), ["sel", "etrn"] * planted)]
        if common.have("strace"):
            for t in late:
                t.start()
            time.sleep(0.7)
            try:
                os.unlink(sp.spool / "index" / "recipients")
            except OSError:
                pass
            sp.sendmail(["-qf", "-qSnobody.matches.this"], timeout=60)
            for t in late:
                t.join(60)
        try:
            listed = {line.split(" ")[0] for line in
                      (sp.spool / "index" / "recipients").read_text().splitlines()}
            missed[0] = sum(1 for p in sp.entries() if p.name[2:] not in listed)
            notes.append(f"the index missed {missed[0]} of {len(sp.entries())} entries "
                         f"({planted} held between append and commit across a rebuild)")
        except OSError:
            notes.append("the index was missing")
        # -qR: every sel.example message, nothing else.
        code = sp.sendmail(["-qf", "-qRsel.example"], timeout=120)[0]
        got = srv.arrivals()
        wrong = [m for m in got if not m.startswith("sel.")]
        missing = [m for m in acked["sel"] if got.get(m, 0) != 1]
        if code != 0 or wrong or missing:
            held = False
            notes.append(f"-qR: exit {code}, {len(missing)} not delivered, "
                         f"{len(wrong)} others delivered")
        # ETRN: every etrn.example message, nothing of keep.example.
        d = subprocess.Popen(sp.argv(["-bD", "-odq"]), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        procs.append(d)
        if not wait_until(20, lambda: etrn_ready(daemon_port), step=0.1):
            held = False
            notes.append("the daemon did not listen")
        else:
            r = etrn(daemon_port, "etrn.example")
            if not r.startswith("25"):
                held = False
                notes.append(f"ETRN answered {r!r}")
            want = set(acked["etrn"])
            wait_until(60, lambda: all(srv.arrivals().get(m, 0) >= 1 for m in want), step=0.2)
            settle_daemon_children(d, 60)
            got = srv.arrivals()
            missing = [m for m in want if got.get(m, 0) != 1]
            wrong = [m for m in got if m.startswith("keep.")]
            if missing or wrong:
                held = False
                notes.append(f"ETRN: {len(missing)} not delivered, {len(wrong)} others "
                             "delivered")
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(20)
        except subprocess.TimeoutExpired:
            notes.append("the daemon did not stop on SIGTERM")
        code = final_run(sp)
        all_acked = acked["sel"] + acked["etrn"] + acked["keep"]
        row = tally(SECTION, case, total + planted, all_acked, srv.arrivals())
        left = leftovers(sp)
        if left or code != 0:
            held = False
            notes.append(f"final run exit {code}; {left}")
        row.held = row.held and held
        row.note = "; ".join(notes)
        return row
    finally:
        cleanup(sp, procs)
        srv.stop()


def etrn_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            ok = s.recv(4).startswith(b"220")
            s.sendall(b"QUIT\r\n")
            return ok
    except OSError:
        return False


def settle_daemon_children(d: subprocess.Popen, limit: float):
    wait_until(limit, lambda: not children(d.pid), step=0.2)


def run(ctx) -> list[Row]:
    rows = [many(ctx), stopped_in_delivery(ctx, "cont"), stopped_in_delivery(ctx, "kill"),
            stopped_in_rebuild(ctx, "cont")]
    if not ctx.quick:
        rows.append(stopped_in_rebuild(ctx, "kill"))
    rows.append(selection(ctx))
    return rows
