"""Crash points: SIGKILL at the Nth system call of a submission (-odq, -odb, -odi, -bs)
and of a queue run, then a recovery run, then counting what arrived at real SMTP servers.

How a kill point is chosen: strace counts the calls of each thread separately (its
`when=N` applies per thread and per system call name), so an unkilled run is traced
first and every (system call name, n-th call of that name in one thread) pair it made
becomes one kill point, in the order the run first reached it
(`-e inject=NAME:signal=KILL:when=N`). Full mode tries every pair; quick mode a stride.

What is checked after each kill and a recovery run (`-qf`, after the killed run's
detached deliverers are gone and the tmp/ files are made older than the grace period):
- every message acknowledged (exit 0; for -bs a 250 to the final dot) arrived exactly
  once, by Message-Id, and whole (its END line in every arrival); none lost;
- a message not acknowledged may arrive (the kill came after the commit point), but
  never twice;
- nothing stays in the spool that nobody will deliver (qf, sf, tmp/, corrupt/);
- queue runs (entries with recipients through two relays, 250/450/550 outcomes, bounces
  to a third server): each (Message-Id, recipient) arrived once, each refused recipient
  was reported once, each 450 recipient is still queued.

A duplicate is allowed only for a kill that landed in the documented window, read from
the killed run's trace, thread by thread:
- "250 read, not recorded": the reply to a final dot was read and the thread had not yet
  renamed the entry's state file into place (or unlinked the entry) when it died, and had
  done nothing else of note since (no new transaction, no connection, no report queued:
  then the window had been left open too long, and a duplicate is a break);
- "dot sent, no reply": the final dot was sent and the reply not read (the server may
  have taken the message: RFC 1047's window, which no client can close);
- "report queued, not recorded": a failure report was committed and the entry's state
  not yet written (the failed recipient stays open, so the next run reports it again).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import common
from common import MESSAGE_ID, Row

SECTION = "crash"
SENDER = "alice@sender.example"
KILLED = "+++ killed by SIGKILL +++"


# ---------------------------------------------------------------- strace traces


_LINE = re.compile(r"^(\d+)\s+(.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)$", re.S)


class Call:
    """One system call of a trace: thread, name, argument text, result text ('?' when
    it never returned)."""
    __slots__ = ("tid", "name", "args", "result")

    def __init__(self, tid, name, args, result):
        self.tid, self.name, self.args, self.result = tid, name, args, result

    def ok(self) -> bool:
        return self.result not in ("?", "") and not self.result.startswith("-1")

    def value(self) -> int:
        try:
            return int(self.result.split()[0], 0)
        except (ValueError, IndexError):
            return -1


_NO_ERRNO = re.compile(r"^-1 \(errno (\d+)\)")


def result_of(text: str) -> str:
    """A call's result text; '?' for every form of "no result" strace prints for a call
    its thread's death cut short: `= ?` (the call the kill interrupted), `= ?
    <unavailable>` (another thread took the kill before strace could read the result),
    `= -1 (errno 18446744073709551572)` (a value that is no errno: the thread was gone
    when the result was read). Such a call may have taken effect (a sendto's bytes
    reached the server, a rename was made) or not: all are judged alike (see
    `open_windows`)."""
    text = text.strip()
    m = _NO_ERRNO.match(text)
    if text.startswith("?") or (m and int(m.group(1)) > 4095):
        return "?"
    return text


def parse_trace(text: str):
    """(calls in the order they completed, entries in the order they began as
    (tid, name), tids killed by SIGKILL).

    While a killed process's threads die, strace may print for one of them a call
    that is a copy, name and arguments, of a call another thread began (its register
    buffer still holds that thread's; seen: a worker's `MAIL From` `sendto` on another
    worker's socket, printed for a thread that was between the write and the rename
    of a state record). A call that never returned and repeats the text of the last
    call another thread began is such a ghost and is left out: no two threads make the
    same call with the same arguments (a socket, a state file's temporary name, belong
    to one worker at a time)."""
    calls, entries, killed = [], [], set()
    open_: dict[int, tuple[str, str, bool]] = {}
    latest: dict[int, tuple[str, str]] = {}  # by thread: its last call begun (name, args)
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        tid, rest = int(m.group(1)), m.group(2)
        if rest.startswith("+++") or rest.startswith("---"):
            if KILLED in rest:
                killed.add(tid)
            continue
        r = _RESUMED.match(rest)
        ghost = False
        if r:
            name, head, ghost = open_.pop(tid, (r.group(1), "", False))
            body = head + r.group(2)
        else:
            c = _CALL.match(rest)
            if not c:
                continue
            name, body = c.group(1), c.group(2)
            entries.append((tid, name))
            unfinished = body.endswith("<unfinished ...>")
            args = body[: -len("<unfinished ...>")] if unfinished else body
            if not unfinished:
                cut = args.rfind(" = ")
                args = args[:cut] if cut >= 0 else args
            call = (name, args.strip())
            ghost = any(t != tid and v == call for t, v in latest.items())
            latest[tid] = call
            if unfinished:
                open_[tid] = (name, body[: -len("<unfinished ...>")], ghost)
                continue
        cut = body.rfind(" = ")
        result = "?" if cut < 0 else result_of(body[cut + 3:])
        if ghost and result == "?":
            continue
        calls.append(Call(tid, name, body if cut < 0 else body[:cut], result))
    for tid, (name, head, ghost) in open_.items():
        if not ghost:
            calls.append(Call(tid, name, head, "?"))
    return calls, entries, killed


def kill_points(entries) -> list[tuple[str, int]]:
    """Every (name, n) pair the run made, n counted per thread, in the order first
    reached."""
    per: dict[tuple[int, str], int] = {}
    seen, out = set(), []
    for tid, name in entries:
        n = per.get((tid, name), 0) + 1
        per[(tid, name)] = n
        if (name, n) not in seen:
            seen.add((name, n))
            out.append((name, n))
    return out


def pick(points: list, want: int, quick: bool) -> list:
    if not quick or len(points) <= want:
        return list(points)
    stride = len(points) / want
    return [points[int(i * stride)] for i in range(want)]


_STR = re.compile(r'^\s*\d+,\s*"((?:[^"\\]|\\.)*)"(\.\.\.)?')
_ESC = re.compile(r"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)", re.S)
_SIMPLE = {"n": b"\n", "r": b"\r", "t": b"\t", "v": b"\v", "f": b"\f", "\\": b"\\",
           '"': b'"', "a": b"\a", "b": b"\b", "e": b"\x1b"}


def unescape(s: str) -> bytes:
    def sub(m):
        e = m.group(1)
        if e[0] == "x":
            return "\0x%02x\0" % int(e[1:], 16)
        if e[0].isdigit():
            return "\0x%02x\0" % (int(e, 8) & 0xFF)
        return "\0x%02x\0" % _SIMPLE.get(e, e.encode()[:1])[0]
    out = bytearray()
    for part in re.split(r"(\0x[0-9a-f]{2}\0)", _ESC.sub(sub, s)):
        if part.startswith("\0x"):
            out.append(int(part[2:4], 16))
        else:
            out += part.encode("utf-8", "surrogateescape")
    return bytes(out)


def buffer_of(c: Call) -> tuple[bytes, bool] | None:
    """The data of a read or write call (fd, "string"...): (bytes, whole)."""
    m = _STR.match(c.args)
    if not m:
        return None
    return unescape(m.group(1)), m.group(2) is None


WRITES = {"write", "sendto", "sendmsg", "writev"}
READS = {"read", "recvfrom", "recvmsg"}


class Window:
    """One thread's piece of work the kill may have caught: a transaction whose final
    dot went out (`kind` 'dot', then '250' once its positive reply was read) or a
    report committed ('report', with the report's queue id); `late` when the thread went
    on to other things before recording it."""

    def __init__(self, kind, data=b"", rcpts=(), report_id=""):
        self.kind, self.data, self.rcpts, self.report_id = kind, data, list(rcpts), report_id
        self.late = False


def open_windows(calls, killed) -> list[Window]:
    """What each killed thread had done and not yet recorded when it died."""
    state: dict[int, dict] = {}
    # Which program each thread runs: only the deliverer's threads deliver and queue
    # reports (a submission's own commit is not a report).
    # (A first pass: a new thread's first calls may come before its clone returns.)
    # strace reports the kill once per process, for its first thread: every thread of
    # a killed process died with it.
    prog: dict[int, str] = {}
    group: dict[int, int] = {}
    for c in calls:
        if c.name == "execve" and c.ok():
            m = re.match(r'\s*"([^"]*)"', c.args)
            prog[c.tid] = os.path.basename(m.group(1)) if m else ""
        elif c.name in ("clone", "clone3", "fork", "vfork") and c.value() > 0:
            prog[c.value()] = prog.get(c.tid, "")
            thread = "CLONE_THREAD" in c.args
            group[c.value()] = group.get(c.tid, c.tid) if thread else c.value()
    dead = {group.get(t, t) for t in killed}
    killed = {t for t in {c.tid for c in calls} if group.get(t, t) in dead}
    for c in calls:
        if c.name == "execve" and c.ok():
            state.pop(c.tid, None)
            continue
        if c.tid not in killed or prog.get(c.tid) != "rsendmail-deliver":
            continue
        s = state.setdefault(c.tid, {"rcpts": [], "open": [], "await": None, "data": None})
        if c.name == "connect" and ("AF_INET" in c.args):
            # A new connection (even one still in progress) is other work.
            for w in s["open"]:
                w.late = True
            continue
        # A call the kill interrupted ('?') may have taken effect (another thread was
        # killed at its own call): a write or a report's rename counts as done (a window
        # more), a record as not done (a window left open).
        unsure = c.result == "?"
        if not c.ok() and not unsure:
            continue
        if unsure and c.name not in WRITES and not c.name.startswith("rename"):
            continue
        if c.name in ("rename", "renameat", "renameat2"):
            paths = re.findall(r'"([^"]*)"', c.args)
            if len(paths) >= 2:
                dst = os.path.basename(paths[-1])
                src = paths[0]
                if dst.startswith("sf"):
                    if not unsure:
                        s["open"], s["await"] = [], None
                elif dst.startswith("qf") and "/tmp/tf" in src:
                    for w in s["open"]:
                        w.late = True
                    s["open"].append(Window("report", report_id=dst[2:]))
            continue
        if c.name in ("unlink", "unlinkat"):
            paths = re.findall(r'"([^"]*)"', c.args)
            if paths and os.path.basename(paths[-1]).startswith("qf"):
                s["open"], s["await"] = [], None
            continue
        b = None
        if c.name in WRITES or c.name in READS:
            b = buffer_of(c)
        if b is None:
            continue
        data, whole = b
        if c.name in WRITES and s["data"] is not None:
            # The message, after the 354 (one write or several).
            if not whole:
                s["data"] = None  # longer than the trace shows: not judged
                continue
            s["data"] += data if unsure else data[:max(c.value(), 0)]
            if s["data"].endswith(b"\r\n.\r\n"):
                w = Window("dot", s["data"], s["rcpts"])
                s["open"].append(w)
                s["await"], s["data"] = w, None
        elif c.name in WRITES:
            if re.match(rb"(?i)MAIL FROM:", data):
                for w in s["open"]:
                    w.late = True
                s["rcpts"] = []
            for r in re.findall(rb"(?im)^RCPT TO:<([^>]*)>", data):
                s["rcpts"].append(r.decode(errors="replace"))
            if re.search(rb"(?i)(^|\n)DATA\r\n$", data):
                s["data"] = b""
        elif re.match(rb"\d{3}[ -]", data):
            if s["data"] == b"" and not data.startswith(b"354"):
                s["data"] = None  # DATA refused: no message follows
            w = s["await"]
            if w is None:
                continue
            s["await"] = None
            if data.startswith(b"2"):
                w.kind = "250"
            else:
                s["open"].remove(w)
    out = []
    for s in state.values():
        out.extend(s["open"])
    return out


# Traces of killed runs, cut down (seen with strace 6.1): what the reader must make of
# the ways a dying thread's calls are printed. Each: (trace, the windows expected, as
# (kind, late) pairs).
_DOT = r'"Received: x\r\nMessage-Id: <m.1@chaos>\r\n\r\nbody\r\n.\r\n"'
_READING_CASES = [
    # The final dot's write in flight in another thread when the kill came: its result
    # "unavailable" (the message may have reached the server).
    ("""10 execve("/x/rsendmail-deliver", ["rsendmail-deliver"], 0x1 /* 1 var */) = 0
10 clone3({flags=CLONE_VM|CLONE_THREAD, child_tid=0x1}, 88) = 11
11 connect(5, {sa_family=AF_INET, sin_port=htons(25)}, 16) = -1 EINPROGRESS (x)
11 sendto(5, "RCPT To:<x@a.example>\\r\\n", 23, MSG_NOSIGNAL, NULL, 0) = 23
11 sendto(5, "DATA\\r\\n", 6, MSG_NOSIGNAL, NULL, 0) = 6
11 recvfrom(5, "354 go ahead\\r\\n", 8192, 0, NULL, NULL) = 14
11 sendto(5, %s, 49, MSG_NOSIGNAL, NULL, 0 <unfinished ...>
10 sendto(7, "QUIT\\r\\n", 6, MSG_NOSIGNAL, NULL, 0) = ?
11 <... sendto resumed>)             = ? <unavailable>
10 +++ killed by SIGKILL +++
""" % _DOT, [("dot", False)]),
    # The same, its result a value that is no errno.
    ("""10 execve("/x/rsendmail-deliver", ["rsendmail-deliver"], 0x1 /* 1 var */) = 0
10 clone3({flags=CLONE_VM|CLONE_THREAD, child_tid=0x1}, 88) = 11
11 sendto(5, "RCPT To:<x@a.example>\\r\\n", 23, MSG_NOSIGNAL, NULL, 0) = 23
11 sendto(5, "DATA\\r\\n", 6, MSG_NOSIGNAL, NULL, 0) = 6
11 recvfrom(5, "354 go ahead\\r\\n", 8192, 0, NULL, NULL) = 14
11 sendto(5, %s, 49, MSG_NOSIGNAL, NULL, 0) = -1 (errno 18446744073709551572)
10 sendto(7, "QUIT\\r\\n", 6, MSG_NOSIGNAL, NULL, 0) = ?
10 +++ killed by SIGKILL +++
""" % _DOT, [("dot", False)]),
    # A thread between its 250 and the rename of its record is printed, as it dies, with
    # a copy of the call another thread began: not a new transaction of its own.
    ("""10 execve("/x/rsendmail-deliver", ["rsendmail-deliver"], 0x1 /* 1 var */) = 0
10 clone3({flags=CLONE_VM|CLONE_THREAD, child_tid=0x1}, 88) = 11
10 clone3({flags=CLONE_VM|CLONE_THREAD, child_tid=0x2}, 88) = 12
11 sendto(5, "RCPT To:<x@a.example>\\r\\n", 23, MSG_NOSIGNAL, NULL, 0) = 23
11 sendto(5, "DATA\\r\\n", 6, MSG_NOSIGNAL, NULL, 0) = 6
11 recvfrom(5, "354 go ahead\\r\\n", 8192, 0, NULL, NULL) = 14
11 sendto(5, %s, 49, MSG_NOSIGNAL, NULL, 0) = 49
11 recvfrom(5, "250 2.0.0 Ok\\r\\n", 8192, 0, NULL, NULL) = 14
11 pwrite64(8, "rsendmail-state 1\\n", 18, 0 <unfinished ...>
11 <... pwrite64 resumed>)           = 18
12 sendto(9, "MAIL From:<a@b.example> SIZE=9\\r\\n", 32, MSG_NOSIGNAL, NULL, 0 <unfinished ...>
11 sendto(9, "MAIL From:<a@b.example> SIZE=9\\r\\n", 32, MSG_NOSIGNAL, NULL, 0 <unfinished ...>
12 <... sendto resumed>)             = ?
10 +++ killed by SIGKILL +++
""" % _DOT, [("250", False)]),
    # A thread that did begin another transaction before recording: late.
    ("""10 execve("/x/rsendmail-deliver", ["rsendmail-deliver"], 0x1 /* 1 var */) = 0
10 clone3({flags=CLONE_VM|CLONE_THREAD, child_tid=0x1}, 88) = 11
11 sendto(5, "RCPT To:<x@a.example>\\r\\n", 23, MSG_NOSIGNAL, NULL, 0) = 23
11 sendto(5, "DATA\\r\\n", 6, MSG_NOSIGNAL, NULL, 0) = 6
11 recvfrom(5, "354 go ahead\\r\\n", 8192, 0, NULL, NULL) = 14
11 sendto(5, %s, 49, MSG_NOSIGNAL, NULL, 0) = 49
11 recvfrom(5, "250 2.0.0 Ok\\r\\n", 8192, 0, NULL, NULL) = 14
11 sendto(9, "MAIL From:<a@b.example> SIZE=9\\r\\n", 32, MSG_NOSIGNAL, NULL, 0 <unfinished ...>
10 +++ killed by SIGKILL +++
""" % _DOT, [("250", True)]),
]


def trace_reading_problems() -> list[str]:
    """The reader checked on `_READING_CASES`: what it got wrong."""
    out = []
    for n, (text, want) in enumerate(_READING_CASES, 1):
        calls, _e, killed = parse_trace(text)
        got = [(w.kind, w.late) for w in open_windows(calls, killed)]
        if got != want:
            out.append(f"trace {n}: windows {got}, expected {want}")
    return out


# ---------------------------------------------------------------- what arrived


def is_report(data: bytes) -> bool:
    head = data.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    return b"report-type=delivery-status" in head


def keys_of(data: bytes, rcpts) -> list[tuple]:
    """What one arrival delivers: (Message-Id, recipient) for a message; ('report',
    original Message-Id, failed recipient) for each recipient a failure report names."""
    ids = [m.decode(errors="replace") for m in MESSAGE_ID.findall(data)]
    if is_report(data):
        orig = ids[1] if len(ids) > 1 else "(no original)"
        failed = re.findall(rb"(?im)^Final-Recipient:\s*rfc822;\s*(\S+)", data)
        return [("report", orig, f.decode(errors="replace")) for f in failed]
    own = ids[0] if ids else "(no Message-Id)"
    return [(own, r) for r in rcpts]


def own_id(data: bytes) -> str:
    m = MESSAGE_ID.search(data)
    return m.group(1).decode(errors="replace") if m else ""


def stored_after(server: common.Server, n: int) -> list[tuple[int, dict, bytes]]:
    """The messages a fault server stored after its n-th, read in its numbering order
    (each one's envelope is renamed into place after its data), without reading the
    older ones again."""
    import json
    out = []
    d = server.state / "messages"
    while True:
        base = d / ("%06d" % (n + 1))
        try:
            env = json.loads(base.with_suffix(".json").read_text())
            data = base.with_suffix(".eml").read_bytes()
        except (OSError, ValueError):
            return out
        n += 1
        out.append((n, env, data))


class Arrivals:
    """What the servers took since a mark."""
    _last: dict[str, int] = {}  # by server state folder: the last number seen

    def __init__(self, servers):
        self.servers = servers
        self.marks = {}
        for s in servers:
            key = str(s.state)
            got = stored_after(s, Arrivals._last.get(key, 0))
            last = got[-1][0] if got else Arrivals._last.get(key, 0)
            Arrivals._last[key] = self.marks[key] = last

    def since(self):
        out = []
        for s in self.servers:
            out += [(s, env, data) for _n, env, data in stored_after(s, self.marks[str(s.state)])]
        return out


def allowed_keys(windows: list[Window], arrived) -> tuple[dict, dict]:
    """Duplicates each key may have (one per window in the documented instant), and the
    kinds of windows in the instant and outside it."""
    allow: dict[tuple, int] = {}
    kinds: dict[str, int] = {}
    for w in windows:
        if w.kind == "report":
            keys = set()
            for _s, env, data in arrived:
                if w.report_id and w.report_id in own_id(data):
                    keys.update(keys_of(data, env.get("rcpt_tos", [])))
        else:
            keys = set(keys_of(w.data.replace(b"\r\n", b"\n"), w.rcpts))
        if w.kind == "report" and not keys:
            continue  # an entry committed that is no failure report (a submission's)
        kind = ("late " if w.late else "") + w.kind
        kinds[kind] = kinds.get(kind, 0) + 1
        if w.late:
            continue
        for k in keys:
            allow[k] = allow.get(k, 0) + 1
    return allow, kinds


# ---------------------------------------------------------------- runs


def strace_argv(trace: Path, inject: tuple[str, int] | None):
    a = ["strace", "-f", "-qq", "-s", "16384", "-o", str(trace)]
    if inject:
        a += ["-e", f"inject={inject[0]}:signal=KILL:when={inject[1]}"]
    return a + ["--"]


def age_tmp(spool: common.Spool):
    """Make the tmp/ leftovers older than the grace period (1 hour)."""
    tmp = spool.spool / "tmp"
    old = time.time() - 2 * 3600
    if tmp.is_dir():
        for f in tmp.iterdir():
            try:
                os.utime(f, (old, old), follow_symlinks=False)
            except OSError:
                pass


def leftovers(spool: common.Spool, keep_ids=()) -> list[str]:
    """Files in the spool that nobody will deliver or clean: tmp/ files (older than the
    grace period by now), corrupt entries, state files without an entry, entries other
    than those expected to stay."""
    out = []
    root = spool.spool
    tmp = root / "tmp"
    if tmp.is_dir():
        out += [f"tmp/{f.name}" for f in tmp.iterdir()]
    out += [f"corrupt/{p.name}" for p in spool.corrupt()]
    if root.is_dir():
        qfs = {p.name[2:] for p in root.glob("qf*")}
        out += [p.name for p in root.glob("sf*") if p.name[2:] not in qfs]
    keep = list(keep_ids)
    for qf in spool.entries():
        try:
            mid = own_id(qf.read_bytes())
        except OSError:
            mid = ""
        if mid in keep:
            keep.remove(mid)
        else:
            out.append(f"{qf.name} ({mid})")
    return out


def wait_detached(spool: common.Spool, limit=30.0) -> bool:
    """Wait (bounded) until no process of this spool's configuration runs."""
    return common.wait_until(limit, lambda: not common.pids_of(str(spool.conf)), step=0.05)


def recover(spool: common.Spool, arrivals: Arrivals, runs=3):
    """Recovery runs (-qf) until one delivers nothing new (at most `runs`)."""
    wait_detached(spool)
    age_tmp(spool)
    seen = -1
    for _ in range(runs):
        spool.sendmail(["-qf"], timeout=120)
        n = len(arrivals.since())
        if n == seen:
            break
        seen = n


class Tally:
    def __init__(self):
        self.tried = self.ack = self.once = self.dup = self.lost = self.instant = 0
        self.partial = self.unacked_arrived = self.orphans = self.bad_dups = 0
        self.kinds: dict[str, int] = {}
        self.problems: list[str] = []
        self.seconds = 0.0

    def problem(self, what):
        if len(self.problems) < 5:
            self.problems.append(what)

    def add_kinds(self, kinds):
        for k, v in kinds.items():
            self.kinds[k] = self.kinds.get(k, 0) + v

    def count_dups(self, counts: dict, allow: dict, label):
        for k, n in counts.items():
            if n > 1:
                extra = n - 1
                ok = min(extra, allow.get(k, 0))
                self.dup += extra
                self.instant += ok
                if extra > ok:
                    self.bad_dups += extra - ok
                    self.problem(f"{label}: {k} arrived {n} times")

    def row(self, case, extra_note="") -> Row:
        held = (self.lost == 0 and self.bad_dups == 0 and self.partial == 0
                and self.orphans == 0 and self.tried > 0)
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(self.kinds.items()))
        note = [f"{self.seconds:.0f} s"]
        if kinds:
            note.append(f"windows at kill ({kinds})")
        if self.unacked_arrived:
            note.append(f"{self.unacked_arrived} not acknowledged arrived once")
        if self.partial:
            note.append(f"{self.partial} partial arrivals")
        if self.orphans:
            note.append(f"{self.orphans} leftovers in the spool")
        if self.tried == 0:
            note.append("no kill landed")
        if extra_note:
            note.append(extra_note)
        note += self.problems
        return Row(SECTION, case, self.tried, self.ack, self.once, self.dup, self.lost,
                   self.instant, held, "; ".join(note))


# ---------------------------------------------------------------- submissions


def bs_dialogue(msg: bytes, rcpt: str) -> bytes:
    lines = []
    for line in msg.decode().split("\n")[:-1]:
        lines.append(("." + line) if line.startswith(".") else line)
    # The sender's domain is the spool's own: an SMTP session checks the sender's domain
    # in DNS, and the scratch resolver answers nothing.
    return ("EHLO client.example\r\nMAIL FROM:<alice@chaos.example>\r\nRCPT TO:<%s>\r\n"
            "DATA\r\n" % rcpt
            + "\r\n".join(lines) + "\r\n.\r\nQUIT\r\n").encode()


def bs_acknowledged(stdout: str) -> bool:
    """Whether the reply to the final dot was a 250: the first final reply after 354."""
    after = stdout.split("\n354", 1)
    if len(after) < 2:
        return False
    for line in after[1].split("\n")[1:]:
        line = line.strip("\r")
        if re.match(r"^\d{3} ", line):
            return line.startswith("250")
    return False


MODES = [("-odq", ["-odq"], "a -odq submission"),
         ("-odb", ["-odb"], "a -odb submission and its detached deliverer"),
         ("-odi", ["-odi"], "a -odi submission and its delivery"),
         ("-bs", ["-bs"], "a -bs session (EHLO ... QUIT) and its background delivery")]
RCPT = "bob@example.org"


def submission_run(ctx, spool, mode, args, tag, k, trace, inject):
    msg = common.message(tag, k, to=RCPT)
    if mode == "-bs":
        stdin = bs_dialogue(msg, RCPT)
        argv = spool.argv(args)
    else:
        stdin = msg
        argv = spool.argv([*args, "-f", SENDER, RCPT])
    try:
        p = subprocess.run([*strace_argv(trace, inject), *argv], input=stdin,
                           capture_output=True, timeout=120)
        code, out = p.returncode, p.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return msg, False, "timeout"
    acked = bs_acknowledged(out) if mode == "-bs" else code == 0
    return msg, acked, out


def submissions(ctx, server) -> list[Row]:
    rows = []
    for mode, args, what in MODES:
        t0 = time.monotonic()
        t = Tally()
        spool = common.Spool(ctx, "crash" + mode, extra=f"SMARTHOST [127.0.0.1]:{server.port}")
        tag = "crash" + mode.strip("-")
        trace = spool.dir / "trace"
        # The unkilled run: its kill points, and proof that the setup delivers.
        arr = Arrivals([server])
        _msg, acked, out = submission_run(ctx, spool, mode, args, tag, 0, trace, None)
        _calls, entries, _ = parse_trace(trace.read_text(errors="replace"))
        recover(spool, arr)
        got = [own_id(d) for _s, _e, d in arr.since()]
        if not acked or got != [f"{tag}.0@chaos"]:
            t.problem(f"the unkilled run was not delivered once (acked {acked}, got {got}, "
                      f"output {out[:200]!r})")
            t.lost += 1
        points = pick(kill_points(entries), 50, ctx.quick)
        ctx.say(f"crash {mode}: {len(entries)} calls, {len(kill_points(entries))} points, "
                f"trying {len(points)}")
        for k, point in enumerate(points, 1):
            arr = Arrivals([server])
            msg, acked, out = submission_run(ctx, spool, mode, args, tag, k, trace, point)
            text = trace.read_text(errors="replace")
            calls, _e, killed = parse_trace(text)
            if not killed:
                # The point was not reached in this run (threads, timing): nothing to see.
                recover(spool, arr)
                continue
            t.tried += 1
            windows = open_windows(calls, killed)
            recover(spool, arr)
            arrived = arr.since()
            allow, kinds = allowed_keys(windows, arrived)
            t.add_kinds(kinds)
            mid = f"{tag}.{k}@chaos"
            counts: dict[tuple, int] = {}
            for _s, env, data in arrived:
                for key in keys_of(data, env.get("rcpt_tos", [])):
                    counts[key] = counts.get(key, 0) + 1
                if own_id(data) == mid and f"END {tag}.{k}".encode() not in data:
                    t.partial += 1
                    t.problem(f"{point}: partial arrival of {mid}")
            n = counts.get((mid, RCPT), 0)
            if acked:
                t.ack += 1
                if n == 1:
                    t.once += 1
                elif n == 0:
                    t.lost += 1
                    t.problem(f"{point}: {mid} acknowledged, lost")
            elif n:
                t.unacked_arrived += 1
            t.count_dups(counts, allow, str(point))
            left = leftovers(spool)
            if left:
                t.orphans += len(left)
                t.problem(f"{point}: left in the spool: {', '.join(left[:3])}")
                spool.reset()
        t.seconds = time.monotonic() - t0
        rows.append(t.row(f"SIGKILL at system calls of {what}, then -qf"))
        if rows[-1].held:
            shutil.rmtree(spool.dir, ignore_errors=True)
    return rows


# ---------------------------------------------------------------- queue runs

# Entries of the queue-run spool: a.example goes to server A, b.example to server B, the
# sender's domain (failure reports) to server C. reject4... gets 450 at RCPT, reject5...
# 550.
QUEUE_ENTRIES = [
    ["x@a.example", "y@b.example"],
    ["x@a.example", "reject5x@a.example", "y@b.example"],
    ["reject4x@a.example", "y@b.example", "reject5y@b.example"],
    ["x@a.example", "reject4y@b.example"],
    ["reject5x@a.example", "reject5y@b.example"],
    ["x@a.example", "y@b.example", "z@b.example", "reject5q@a.example", "reject4q@b.example"],
    ["x@a.example", "reject5x@a.example"],
]


def queue_runs(ctx) -> list[Row]:
    t0 = time.monotonic()
    servers = [common.Server(ctx, n) for n in ("relay-a", "relay-b", "senders")]
    a, b, c = servers
    rows = []
    try:
        spool = common.Spool(ctx, "crash-queue")
        table = spool.dir / "relays"
        table.write_text(f"a.example [127.0.0.1]:{a.port}\nb.example [127.0.0.1]:{b.port}\n"
                         f"sender.example [127.0.0.1]:{c.port}\n")
        spool.add_config(f"RELAYTABLE {table}")
        expect_msg, expect_report, expect_queued = [], [], []
        for i, rcpts in enumerate(QUEUE_ENTRIES):
            mid = f"crashq.{i}@chaos"
            code, out, err = spool.sendmail(["-odq", "-f", SENDER, *rcpts],
                                            common.message("crashq", i, to=", ".join(rcpts)))
            if code != 0:
                raise RuntimeError(f"queue-run spool: sendmail exited {code}: {out}{err}")
            for r in rcpts:
                local = r.split("@")[0]
                if local.startswith("reject5"):
                    expect_report.append(("report", mid, r))
                elif local.startswith("reject4"):
                    if mid not in expect_queued:
                        expect_queued.append(mid)
                else:
                    expect_msg.append((mid, r))
        trace = spool.dir / "trace"

        def one(template, point):
            """A killed (or, with no point, whole) run over a copy of `template` and its
            recovery: (landed, windows, arrivals, entries of the trace)."""
            shutil.rmtree(spool.spool, ignore_errors=True)
            shutil.copytree(template, spool.spool, symlinks=True)
            # A copy is made in root's group: given the spool's (fit) group again, as
            # every program requires of a system spool.
            if os.geteuid() == 0:
                gid = common.fit_group()
                for top, dirs, files in os.walk(spool.spool):
                    for n in [top, *(os.path.join(top, f) for f in dirs + files)]:
                        os.lchown(n, 0, gid)
            arr = Arrivals(servers)
            try:
                subprocess.run([*strace_argv(trace, point), *spool.argv(["-qf"])],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=180)
            except subprocess.TimeoutExpired:
                pass
            calls, entries, killed = parse_trace(trace.read_text(errors="replace"))
            windows = open_windows(calls, killed) if killed else []
            recover(spool, arr)
            return bool(killed), windows, arr.since(), entries

        def sweep(template, expect_msg, expect_report, prior=()):
            """Kill runs over copies of `template`; `prior`: keys delivered before (any
            arrival of them is a duplicate)."""
            msgs, reports = Tally(), Tally()
            _l, _w, arrived, entries = one(template, None)
            points_all = kill_points(entries)
            points = pick(points_all, 60 if not prior else 30, ctx.quick)
            ctx.say(f"crash queue: {len(entries)} calls, {len(points_all)} points, "
                    f"trying {len(points)}")
            for point in [None, *points]:
                if point is not None:
                    landed, windows, arrived, _e = one(template, point)
                    if not landed:
                        continue
                    msgs.tried += 1
                    reports.tried += 1
                else:
                    windows = []
                allow, kinds = allowed_keys(windows, arrived)
                msgs.add_kinds(kinds)
                counts: dict[tuple, int] = {}
                for key in prior:
                    counts[key] = 1
                for _s, env, data in arrived:
                    for key in keys_of(data, env.get("rcpt_tos", [])):
                        counts[key] = counts.get(key, 0) + 1
                    if not is_report(data):
                        m = re.search(rb"(?m)^END (\S+)\s*$", data)
                        if not m or own_id(data) != m.group(1).decode() + "@chaos":
                            msgs.partial += 1
                            msgs.problem(f"{point}: partial arrival {own_id(data)}")
                label = str(point) if point else "the unkilled run"
                for tal, expect, report in ((msgs, expect_msg, False),
                                            (reports, expect_report, True)):
                    for key in expect:
                        tal.ack += 1
                        n = counts.get(key, 0)
                        if n == 1:
                            tal.once += 1
                        elif n == 0:
                            tal.lost += 1
                            tal.problem(f"{label}: {key} never arrived")
                    for key in prior if not report else ():
                        tal.ack += 1
                        tal.once += counts.get(key, 0) == 1
                msgs.count_dups({k_: n for k_, n in counts.items() if k_[0] != "report"},
                                allow, label)
                reports_to = msgs if prior else reports
                reports_to.count_dups({k_: n for k_, n in counts.items() if k_[0] == "report"},
                                      allow, label)
                left = leftovers(spool, keep_ids=expect_queued)
                queued = set(spool.queued_message_ids())
                missing = [m for m in expect_queued if m not in queued]
                if missing:
                    msgs.lost += len(missing)
                    msgs.problem(f"{label}: 450 recipients of {missing} no longer queued")
                if left:
                    msgs.orphans += len(left)
                    msgs.problem(f"{label}: left in the spool: {', '.join(left[:3])}")
            msgs.seconds = reports.seconds = time.monotonic() - t0
            return msgs, reports

        template = spool.dir / "template"
        shutil.copytree(spool.spool, template, symlinks=True)
        msgs, reports = sweep(template, expect_msg, expect_report)
        rows.append(msgs.row("SIGKILL at system calls of a queue run (two relays, "
                             "250/450/550), then -qf", "counted per (Message-Id, recipient)"))
        rows.append(reports.row("the same runs: failure reports for the 550 recipients",
                                "counted per (original Message-Id, failed recipient)"))
        # The spool as one whole run leaves it (the 450 recipients deferred, with their
        # state files), run again: nothing may arrive.
        t0 = time.monotonic()
        tried = spool.dir / "tried"
        one(template, None)
        shutil.copytree(spool.spool, tried, symlinks=True)
        msgs, _r = sweep(tried, [], [], prior=[*expect_msg, *expect_report])
        rows.append(msgs.row("SIGKILL at system calls of a queue run over entries already "
                             "tried (450 recipients left), then -qf",
                             "acknowledged: deliveries and reports made before"))
        if all(r.held for r in rows):
            shutil.rmtree(spool.dir, ignore_errors=True)
    finally:
        for s in servers:
            s.stop()
    return rows


def run(ctx) -> list[Row]:
    if not common.have("strace"):
        return [Row(SECTION, "SIGKILL at system calls", held=True, note="strace missing: skipped")]
    rows = []
    wrong = trace_reading_problems()
    if wrong:
        rows.append(Row(SECTION, "reading the traces of killed runs", tried=len(_READING_CASES),
                        held=False, note="; ".join(wrong)))
    server = common.Server(ctx, "crash-smarthost")
    try:
        rows += submissions(ctx, server)
    finally:
        server.stop()
    rows += queue_runs(ctx)
    return rows
