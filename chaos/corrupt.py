"""Corrupt spool: valid entries beside planted damage — queue files truncated at many
offsets, zeroed, with a zero tail, scrambled or empty; orphan state and temporary files;
symlinks (to files outside the spool, and in place of tmp/, corrupt/, index/); FIFOs and
directories in place of state, index and queue files; a queue file of another owner.

For each: a queue run and `mailq` finish within a bound (run with a timeout), never die
by a signal nor print a panic; nothing partial or damaged is delivered (every arrival at
the counting server is checked whole); nothing outside the spool is read or written
through a symlink (the target's content and mtime are checked); the damaged thing is
moved to corrupt/ or refused with a message naming it; and the valid entries beside it
are delivered exactly once.
"""
from __future__ import annotations

import os
import random
import re
import subprocess
import time
from pathlib import Path

import common
from common import Row

SECTION = "corrupt"
BOUND = 30  # seconds a queue run or mailq may take before it counts as a hang


def run_bounded(argv, timeout=BOUND):
    """(code or -signal, output, hung)."""
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        return p.returncode, (p.stdout + p.stderr).decode(errors="replace"), False
    except subprocess.TimeoutExpired as e:
        out = ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace")
        return None, out, True


class Case:
    """A scratch spool relaying to the section's server, with `valid` good entries and
    `victims` entries to damage (their ids by Message-Id)."""

    def __init__(self, ctx, srv, name: str, valid: int = 2, victims: int = 1,
                 body_lines: int = 40):
        self.ctx = ctx
        self.srv = srv
        self.name = name
        self.sp = common.Spool(ctx, f"c-{name}")
        self.sp.add_config(f"MAILLOG {self.sp.dir / 'maillog'}")
        self.sp.add_config(f"SMARTHOST 127.0.0.1\nPORT {srv.port}")
        self.problems: list[str] = []
        self.valid: list[str] = []
        self.victims: dict[str, str] = {}  # Message-Id -> queue id
        self.originals: dict[str, bytes] = {}
        self.outside: list[tuple[Path, bytes, int]] = []
        self.output = ""
        tag = f"cv-{name}"
        for n in range(valid):
            mid = self.submit(tag, n, body_lines)
            if mid:
                self.valid.append(mid)
        tag = f"cx-{name}"
        for n in range(victims):
            mid = self.submit(tag, n, body_lines)
            if mid:
                qf = self.sp.entries_by_message_id().get(mid)
                self.victims[mid] = qf.name[2:] if qf else ""

    def submit(self, tag, n, body_lines):
        msg = common.message(tag, n, body_lines=body_lines)
        code, out, _ = self.sendmail(["-odq", "bob@example.org"], msg)
        mid = f"{tag}.{n}@chaos"
        if code != 0:
            self.problems.append(f"setup: submission failed: {out[:80]}")
            return None
        self.originals[mid] = msg
        return mid

    def sendmail(self, args, stdin=b""):
        try:
            p = subprocess.run(self.sp.argv(args), input=stdin, capture_output=True,
                               timeout=BOUND)
            return p.returncode, (p.stdout + p.stderr).decode(errors="replace"), False
        except subprocess.TimeoutExpired:
            return None, "", True

    def qf(self, mid) -> Path:
        return self.sp.spool / f"qf{self.victims[mid]}"

    def sf(self, mid) -> Path:
        return self.sp.spool / f"sf{self.victims[mid]}"

    def outside_file(self, name: str, content: bytes) -> Path:
        """A file outside the spool whose content and mtime must stay as they are."""
        d = self.sp.dir / "outside"
        d.mkdir(exist_ok=True)
        p = d / name
        p.write_bytes(content)
        old = time.time() - 100_000
        os.utime(p, (old, old))
        self.outside.append((p, content, p.stat().st_mtime_ns))
        return p

    def outside_dir(self, name: str) -> Path:
        d = self.sp.dir / "outside" / name
        d.mkdir(parents=True)
        old = time.time() - 100_000
        os.utime(d, (old, old))
        self.outside.append((d, b"", d.stat().st_mtime_ns))
        return d

    def exercise(self, runs: int = 2):
        """mailq, queue runs, mailq again: each bounded, none killed by a signal."""
        steps = [("mailq", ["-bp"])] + [("queue run", ["-qf"])] * runs + [("mailq", ["-bp"])]
        for what, args in steps:
            code, out, hung = run_bounded(self.sp.argv(args))
            self.output += out
            if hung:
                self.problems.append(f"{what} hung (> {BOUND} s)")
            elif code < 0:
                self.problems.append(f"{what} died by signal {-code}")
            if "panicked" in out or "RUST_BACKTRACE" in out:
                self.problems.append(f"{what} panicked: {out.strip()[:100]}")

    def maillog(self) -> str:
        try:
            return (self.sp.dir / "maillog").read_text(errors="replace")
        except OSError:
            return ""

    def told(self, word: str) -> bool:
        return word in self.output or word in self.maillog()

    def quarantined(self, mid) -> bool:
        qid = self.victims[mid]
        return os.path.lexists(self.sp.spool / "corrupt" / f"qf{qid}")

    def check(self, case: str, damaged: list[str], expect_aside: bool = True,
              tried: int | None = None, may_deliver_whole: bool = False) -> Row:
        """The row: valid entries once; the damaged ones never delivered (or, when
        `may_deliver_whole`, only whole and once), moved aside or named in a message;
        outside files untouched."""
        per_mid: dict[str, list[bytes]] = {}
        for _env, data in self.srv.messages():
            m = common.MESSAGE_ID.search(data)
            if m:
                per_mid.setdefault(m.group(1).decode(), []).append(data)
        arrivals = {mid: len(v) for mid, v in per_mid.items()
                    if mid in self.originals or mid.startswith(("cv-", "cx-"))}
        for mid in damaged:
            got = per_mid.get(mid, [])
            if got and not may_deliver_whole:
                whole = all(is_whole(d, self.originals.get(mid, b"")) for d in got)
                self.problems.append(f"damaged {mid} delivered"
                                     f" ({'whole' if whole else 'NOT whole'})")
            for d in got:
                if not is_whole(d, self.originals.get(mid, b"")):
                    if may_deliver_whole:
                        self.problems.append(f"{mid} delivered damaged")
            if expect_aside and not got:
                qid = self.victims.get(mid, "")
                if not self.quarantined(mid):
                    self.problems.append(f"{mid}: not moved to corrupt/"
                                         + ("" if qid and self.told(qid) else
                                            ", nor named in a message"))
                elif not (qid and self.told(qid)):
                    self.problems.append(f"{mid}: moved to corrupt/ without a message")
        for mid in self.valid:
            for d in per_mid.get(mid, []):
                if not is_whole(d, self.originals[mid]):
                    self.problems.append(f"valid {mid} delivered damaged")
        for p, content, mtime in self.outside:
            try:
                st = p.stat()
                if p.is_file() and p.read_bytes() != content:
                    self.problems.append(f"outside file {p.name} was changed")
                if st.st_mtime_ns != mtime:
                    self.problems.append(f"outside {p.name} was touched (mtime)")
                if p.is_dir() and any(p.iterdir()):
                    self.problems.append(f"something was written into outside {p.name}/: "
                                         f"{[q.name for q in p.iterdir()][:3]}")
            except OSError as e:
                self.problems.append(f"outside {p.name}: {e}")
        row = common.tally(SECTION, case, tried if tried is not None else len(damaged),
                           self.valid, arrivals, self.sp.queued_message_ids())
        dup_damaged = sum(n - 1 for mid, n in arrivals.items() if mid in damaged and n > 1)
        if dup_damaged:
            self.problems.append(f"damaged entries delivered {dup_damaged} extra times")
        return finish(row, self.problems)


def is_whole(arrived: bytes, original: bytes) -> bool:
    """The arrived message holds the original's body, line for line (CRLF on the wire),
    and nothing after it."""
    if not original:
        return False
    body = original.split(b"\n\n", 1)[1].replace(b"\n", b"\r\n")
    return arrived.endswith(body) and b"\0" not in arrived


def finish(row: Row, problems: list[str]) -> Row:
    if problems:
        row.held = False
        row.note = (row.note + "; " if row.note else "") + "; ".join(problems[:3])
        if len(problems) > 3:
            row.note += f" (+{len(problems) - 3} more)"
    return row


# ---------------------------------------------------------------------------------------

def offsets_for(size: int, env_end: int, rng: random.Random, many: bool) -> list[int]:
    """Where to cut a queue file of `size` bytes whose envelope ends at `env_end`."""
    fixed = [1, 20, env_end // 2, env_end - 1, env_end, env_end + 1,
             (env_end + size) // 2, size - 2, size - 1]
    if many:
        # Every offset of the envelope section, and a sample of the message's.
        fixed += list(range(1, env_end + 2))
        fixed += rng.sample(range(env_end, size), min(size - env_end, 60))
    return sorted({o for o in fixed if 0 < o < size})


def envelope_end(data: bytes) -> int:
    i = data.find(b"\n\n")
    return i + 2 if i >= 0 else len(data)


def truncated(ctx, srv, rng) -> Row:
    probe = Case(ctx, srv, "trunc-probe", valid=0, victims=1)
    data = probe.qf(next(iter(probe.victims))).read_bytes()
    offs = offsets_for(len(data), envelope_end(data), rng, not ctx.quick)
    c = Case(ctx, srv, "trunc", valid=2, victims=len(offs))
    for mid, off in zip(c.victims, offs):
        with open(c.qf(mid), "r+b") as f:
            f.truncate(off)
    c.exercise()
    row = c.check("queue files truncated at many offsets (envelope, its end, message)",
                  list(c.victims), tried=len(offs))
    row.note = (row.note + "; " if row.note else "") + f"{len(offs)} offsets"
    return row


def zeroed(ctx, srv, rng) -> Row:
    c = Case(ctx, srv, "zeroed", victims=3)
    mids = list(c.victims)
    for mid in mids[:2]:
        p = c.qf(mid)
        p.write_bytes(b"\0" * p.stat().st_size)
    # A state file of zeros (as long as a real one) beside a good queue file.
    c.sf(mids[2]).write_bytes(b"\0" * 120)
    c.exercise()
    return c.check("queue files zeroed (right length, all zeros); a zeroed state file",
                   mids)


def zero_tail(ctx, srv, rng) -> Row:
    """The message's last bytes zero, the file as long as its length line says (a
    crash of the file system after the size was written, a sparse copy)."""
    tails = [1, 7, 200] if ctx.quick else [1, 2, 7, 64, 200, 1000]
    c = Case(ctx, srv, "zerotail", victims=len(tails))
    for mid, n in zip(c.victims, tails):
        p = c.qf(mid)
        data = bytearray(p.read_bytes())
        n = min(n, len(data) - envelope_end(bytes(data)))
        data[len(data) - n:] = b"\0" * n
        p.write_bytes(bytes(data))
    c.exercise()
    return c.check("zero tail in the message (length line right)", list(c.victims),
                   tried=len(tails))


def scrambled(ctx, srv, rng) -> Row:
    """Random bytes changed: in the envelope section, and in the message."""
    k = 4 if ctx.quick else 100
    c = Case(ctx, srv, "scrambled", victims=k)
    where = []
    for i, mid in enumerate(c.victims):
        p = c.qf(mid)
        data = bytearray(p.read_bytes())
        end = envelope_end(bytes(data))
        in_env = i % 2 == 0
        lo, hi = (0, end - 1) if in_env else (end, len(data) - 1)
        for _ in range(rng.randint(1, 4)):
            j = rng.randint(lo, hi)
            data[j] = (data[j] + rng.randint(1, 255)) % 256
        p.write_bytes(bytes(data))
        where.append("envelope" if in_env else "message")
    c.exercise()
    return c.check("scrambled bytes (envelope section and message)", list(c.victims),
                   tried=k)


def empty(ctx, srv, rng) -> Row:
    c = Case(ctx, srv, "empty", victims=2)
    mids = list(c.victims)
    c.qf(mids[0]).write_bytes(b"")
    c.sf(mids[1]).write_bytes(b"")
    c.exercise()
    # An empty state file beside a good queue file: not a state rsendmail wrote.
    return c.check("empty queue file; empty state file", mids)


def orphans(ctx, srv, rng) -> Row:
    """A state file without its queue file; temporary files left by a crash (one a
    complete message that was never committed: it must never be delivered)."""
    c = Case(ctx, srv, "orphans", victims=1)
    mid = next(iter(c.victims))
    qf = c.qf(mid)
    tmp = c.sp.spool / "tmp"
    # An uncommitted complete message, old and new.
    old = time.time() - 7200
    for name, age in (("tf6AU00000000001", old), ("tf6AU00000000002", time.time())):
        t = tmp / name
        t.write_bytes(qf.read_bytes().replace(c.victims[mid].encode(), name[2:].encode()))
        os.utime(t, (age, age))
    sft = tmp / "sf6AU00000000003.999999"
    sft.write_text("rsendmail-state 1\nattempts 1\n")
    os.utime(sft, (old, old))
    # The victim's queue file removed: its state file is the orphan.
    c.sf(mid).write_text("rsendmail-state 1\nattempts 3\n")
    qf.unlink()
    (c.sp.spool / "sf6AU00000000004").write_text("rsendmail-state 1\nattempts 1\n")
    c.exercise()
    if c.sf(mid).exists():
        c.problems.append("an orphan state file was left")
    if (tmp / "tf6AU00000000001").exists():
        c.problems.append("an old orphan tmp file was left")
    return c.check("orphan state files, orphan tmp files (complete, uncommitted)",
                   [mid], expect_aside=False, tried=5)


def symlinks(ctx, srv, rng) -> Row:
    """Symlinks to files outside the spool as qf and sf; symlinks in place of tmp/,
    corrupt/ (in its own spool) and index/."""
    c = Case(ctx, srv, "symlinks", victims=2)
    mids = list(c.victims)
    # qf -> a valid queue file outside: never read, never delivered, never moved.
    q0 = c.qf(mids[0])
    target = c.outside_file("qf-outside", q0.read_bytes())
    q0.unlink()
    os.symlink(target, q0)
    # sf -> a state file outside that says every recipient was delivered.
    starget = c.outside_file("sf-outside", b"rsendmail-state 1\nattempts 9\n"
                             b"reason outside-state-was-read\nrcpt 0 delivered\n")
    os.symlink(starget, c.sf(mids[1]))
    for sub in ("tmp", "index"):
        d = c.sp.spool / sub
        out = c.outside_dir(f"{sub}-outside")
        subprocess.run(["rm", "-rf", str(d)], check=True)
        os.symlink(out, d)
    # New work while the links are there: a submission, then the runs.
    mid = c.submit("cv-symlinks", 9, 5)
    if mid:
        c.valid.append(mid)
    c.exercise()
    if "outside-state-was-read" in c.output:
        c.problems.append("the state file outside was read")
    row = c.check("symlinks: qf and sf to files outside; tmp/ and index/ to folders outside",
                  mids, tried=4)
    # corrupt/ a symlink, in a spool of its own, with a damaged entry to move aside.
    d = Case(ctx, srv, "symcorrupt", victims=1)
    dm = list(d.victims)
    d.qf(dm[0]).write_bytes(b"garbage\n")
    cd = d.sp.spool / "corrupt"
    out = d.outside_dir("corrupt-outside")
    subprocess.run(["rm", "-rf", str(cd)], check=True)
    os.symlink(out, cd)
    d.exercise()
    row2 = d.check("symlink in place of corrupt/, a damaged entry to move aside", dm,
                   expect_aside=False)
    if not d.told("corrupt"):
        row2 = finish(row2, ["corrupt/ refused without a message"])
    return [row, row2]


def fifos(ctx, srv, rng) -> Row:
    c = Case(ctx, srv, "fifos", victims=2)
    mids = list(c.victims)
    c.qf(mids[0]).unlink()
    os.mkfifo(c.qf(mids[0]))
    os.mkfifo(c.sf(mids[1]))
    idx = c.sp.spool / "index" / "recipients"
    if idx.exists():
        idx.unlink()
    os.mkfifo(idx)
    c.exercise()
    return c.check("FIFOs in place of a qf, an sf and index/recipients", mids, tried=3)


def directories(ctx, srv, rng) -> Row:
    c = Case(ctx, srv, "dirs", victims=2)
    mids = list(c.victims)
    c.qf(mids[0]).unlink()
    c.qf(mids[0]).mkdir()
    c.sf(mids[1]).mkdir()
    c.exercise()
    return c.check("directories in place of a qf and an sf", mids)


def wrong_owner(ctx, srv, rng) -> Row:
    """A queue file and a state file owned by another user (the group's members write
    the spool, so the owner is not checked): delivered once like any other, or refused
    with a message; never twice."""
    if not common.is_root():
        return Row(SECTION, "qf and sf owned by another user", note="skipped: needs root")
    c = Case(ctx, srv, "owner", victims=1)
    mid = next(iter(c.victims))
    os.chown(c.qf(mid), 54321, 54321)
    c.sf(mid).write_text("rsendmail-state 1\nattempts 1\n")
    os.chown(c.sf(mid), 54321, 54321)
    c.exercise()
    return c.check("qf and sf owned by another user", [mid], expect_aside=False,
                   may_deliver_whole=True)


def only_entry_unreadable(ctx, srv, rng) -> Row:
    """The only entry's state file damaged: mailq must not call the queue empty."""
    c = Case(ctx, srv, "onlyone", valid=0, victims=1)
    mid = next(iter(c.victims))
    c.sf(mid).write_bytes(b"\x00\xff garbage \x00")
    code, out, hung = run_bounded(c.sp.argv(["-bp"]))
    if hung or code is None or code < 0:
        c.problems.append("mailq hung or crashed")
    elif "is empty" in out and c.victims[mid] not in out:
        c.problems.append("mailq says the queue is empty while an entry is unreadable")
    c.output += out
    c.exercise()
    return c.check("the only entry's state file damaged: mailq, then runs", [mid])


CASES = [truncated, zeroed, zero_tail, scrambled, empty, orphans, symlinks, fifos,
         directories, wrong_owner, only_entry_unreadable]


def run(ctx) -> list[Row]:
    rng = random.Random(ctx.seed)
    srv = common.Server(ctx, "corrupt-srv")
    rows: list[Row] = []
    try:
        for fn in CASES:
            try:
                got = fn(ctx, srv, rng)
            except Exception as e:  # a case that cannot be set up is a row, not a crash
                got = Row(SECTION, fn.__name__, held=False, note=f"case crashed: {e!r}"[:200])
            rows.extend(got if isinstance(got, list) else [got])
    finally:
        srv.stop()
    return rows
