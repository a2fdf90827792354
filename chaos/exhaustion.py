"""Exhaustion: the spool and the mailboxes on small filesystems that fill up (bytes,
inodes), and the process limits a submission or a queue run can meet (`ulimit -n`,
`ulimit -f`).

The promises checked in every case:
- a submission either exits 0 with its complete entry committed, or fails with
  EX_TEMPFAIL (75) or EX_IOERR (74) and a message, leaving nothing of itself behind
  (no entry, no temporary file); it never dies by a signal;
- once the resource is back, a queue run delivers every acknowledged message exactly
  once (counted by Message-Id at a real SMTP server, or in the mailbox), whole;
- while the spool is full, a queue run does not send a recipient again and again
  because its outcome cannot be recorded, and a failure report that cannot be queued
  keeps its entry queued (issue items 7 and 8).

The filesystems are tmpfs mounts under the scratch directory (root only: otherwise the
rows say they were skipped), always unmounted in `finally`.
"""
from __future__ import annotations

import errno
import os
import re
import resource
import signal
import subprocess
from pathlib import Path

import common
from common import Row

SECTION = "exhaustion"
# What a submission may answer when the spool has no room: sysexits' TEMPFAIL, IOERR.
NO_ROOM_CODES = (75, 74)


class Tmpfs:
    """A tmpfs of `size` bytes and `inodes` inodes mounted on `path` (made if missing)."""

    def __init__(self, path: Path, size: str = "1m", inodes: int | None = None,
                 mail_spool: bool = False):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        # Of a group fit for a spool, as an install makes one (a spool of root's group
        # is refused by every program); a mail spool (MAILSPOOL) sticky and writable by
        # all, one of the layouts root delivers into (a group-writable one must be the
        # group mail's).
        opts = (f"size={size},mode=1777" if mail_spool
                else f"size={size},mode=2770,gid={common.fit_group()}")
        if inodes is not None:
            opts += f",nr_inodes={inodes}"
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       check=True, capture_output=True, timeout=20)
        self.mounted = True

    def umount(self):
        if self.mounted:
            r = subprocess.run(["umount", str(self.path)], capture_output=True, timeout=20)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", str(self.path)], capture_output=True,
                               timeout=20)
            self.mounted = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.umount()


def fill_bytes(d: Path) -> Path:
    """Fill the filesystem of directory `d` to the last byte with one file; its path."""
    p = d / "fill"
    chunk = b"\0" * 4096
    with open(p, "ab", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
    # What is left below a page: byte by byte.
    with open(p, "ab", buffering=0) as f:
        while True:
            try:
                f.write(b"\0")
            except OSError:
                break
    return p


def fill_inodes(d: Path) -> list[Path]:
    """Use every free inode of the filesystem of `d` with empty files; their paths."""
    made = []
    base = d / "fill.d"
    try:
        base.mkdir()
    except OSError:
        return made
    n = 0
    while True:
        p = base / str(n)
        try:
            p.touch()
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            break
        made.append(p)
        n += 1
    return made


def free(d: Path):
    """Undo fill_bytes / fill_inodes in `d`."""
    f = d / "fill"
    if f.exists():
        f.unlink()
    base = d / "fill.d"
    if base.is_dir():
        for p in base.iterdir():
            p.unlink()
        base.rmdir()


def foreground_run(sp: common.Spool, timeout=120, preexec=None, env=None):
    """A queue run in the foreground (-qf): (code or -signal, output)."""
    p = subprocess.run(sp.argv(["-qf"]), capture_output=True, timeout=timeout,
                       preexec_fn=preexec, env=env)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def submit(sp: common.Spool, args, data: bytes, preexec=None, timeout=60):
    p = subprocess.run(sp.argv(args), input=data, capture_output=True, timeout=timeout,
                       preexec_fn=preexec)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def tmp_files(sp: common.Spool) -> list[Path]:
    t = sp.spool / "tmp"
    return sorted(t.iterdir()) if t.is_dir() else []


def entry_complete(qf: Path, msg: bytes) -> bool:
    """A committed queue file holds the whole message (the text given, after the
    headers rsendmail adds) and is as long as its message-bytes line says."""
    try:
        data = qf.read_bytes()
    except OSError:
        return False
    head, sep, rest = data.partition(b"\n\n")
    m = re.search(rb"(?m)^message-bytes (\d+)$", head)
    if not sep or not m or int(m.group(1)) != len(rest):
        return False
    return rest.endswith(msg.split(b"\n\n", 1)[1])


def whole(data: bytes, tag: str) -> bool:
    """An arrived message is whole: its END line is there (CRLF or LF)."""
    m = common.MESSAGE_ID.search(data)
    if not m:
        return False
    mid = m.group(1).decode()
    return f"END {mid.split('@')[0]}".encode() in data


def skipped(case: str, why: str) -> Row:
    return Row(SECTION, case, note=f"skipped: {why}")


def limit(kind, n):
    """A preexec_fn setting rlimit `kind` to `n` (soft and hard) with default signals."""
    def f():
        resource.setrlimit(kind, (n, n))
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    return f


def new_spool(ctx, name, server=None, extra=""):
    sp = common.Spool(ctx, name, extra)
    sp.add_config(f"MAILLOG {sp.dir / 'maillog'}")
    if server is not None:
        sp.add_config(f"SMARTHOST 127.0.0.1\nPORT {server.port}")
    return sp


def maillog(sp) -> str:
    try:
        return (sp.dir / "maillog").read_text(errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------
# (1), (2): submissions into a spool that fills up.

def spool_fills(ctx, case: str, inodes: bool) -> Row:
    """Submit until the spool's filesystem is full (of bytes, or of inodes), then free
    it and run the queue."""
    n_max = 40 if ctx.quick else 400
    srv = common.Server(ctx, f"srv-{'inodes' if inodes else 'bytes'}")
    sp = new_spool(ctx, f"fill-{'inodes' if inodes else 'bytes'}", srv)
    fs = None
    problems: list[str] = []
    acked: list[str] = []
    refused: list[str] = []
    tried = 0
    said = ""
    try:
        if inodes:
            fs = Tmpfs(sp.spool, size="16m", inodes=(40 if ctx.quick else 200))
        else:
            fs = Tmpfs(sp.spool, size=("96k" if ctx.quick else "1m"))
        # Make the spool's folders first (a queue run does).
        foreground_run(sp)
        fails_in_a_row = 0
        n = 0
        tag = "fi" if inodes else "fb"
        while n < n_max and fails_in_a_row < 4:
            n += 1
            # Sizes vary so that the last one may meet the limit anywhere in its write.
            msg = common.message(tag, n, body_lines=(3 if inodes else 40 + (n * 37) % 200))
            code, out = submit(sp, ["-odq", "-f", "alice@chaos.example", "bob@example.org"],
                               msg)
            tried += 1
            mid = f"{tag}.{n}@chaos"
            if code == 0:
                fails_in_a_row = 0
                acked.append(mid)
                qf = sp.entries_by_message_id().get(mid)
                if qf is None or not entry_complete(qf, msg):
                    problems.append(f"{mid}: exit 0 without its complete entry")
            elif code in NO_ROOM_CODES:
                fails_in_a_row += 1
                refused.append(mid)
                said = said or f"exit {code}: " + re.sub(r"/\S+", "…", out.strip())[:70]
                if not out.strip():
                    problems.append(f"{mid}: exit {code} with no message")
                if mid in sp.entries_by_message_id():
                    problems.append(f"{mid}: exit {code} but an entry was committed")
            else:
                fails_in_a_row += 1
                refused.append(mid)
                problems.append(f"{mid}: exit {code}: {out.strip()[:120]}")
            left = tmp_files(sp)
            if left:
                problems.append(f"{mid}: left {', '.join(p.name for p in left)} in tmp/")
                for p in left:
                    p.unlink()
        if fails_in_a_row < 4:
            problems.append(f"the spool never filled in {n} submissions")
        # A queue run while full must not lose or damage anything either.
        code, out = foreground_run(sp)
        if code < 0:
            problems.append(f"queue run while full died by signal {-code}")
        free(sp.spool)
        code, out = foreground_run(sp)
        if code != 0:
            problems.append(f"queue run after freeing: exit {code}: {out.strip()[:120]}")
        arrivals = srv.arrivals()
        for env, data in srv.messages():
            if not whole(data, tag):
                problems.append("a partial message arrived")
        for mid in refused:
            if arrivals.get(mid):
                problems.append(f"{mid}: refused at submission but delivered")
        row = common.tally(SECTION, case, tried, acked, arrivals, sp.queued_message_ids())
        row.note = f"{len(refused)} refused once full; {said}"
    finally:
        if fs:
            fs.umount()
        srv.stop()
    return finish(row, problems, sp)


def finish(row: Row, problems: list[str], sp=None) -> Row:
    if problems:
        row.held = False
        row.note = (row.note + "; " if row.note else "") + "; ".join(problems[:3])
        if len(problems) > 3:
            row.note += f" (+{len(problems) - 3} more)"
    return row



# ---------------------------------------------------------------------------------------
# (3): the spool fills while entries wait for delivery.

def full_during_delivery(ctx, case: str) -> Row:
    """Entries queued, then the spool's filesystem filled so that no state can be
    written and no report queued; several runs while full, then one after freeing."""
    k = 2 if ctx.quick else 10
    runs_full = 3 if ctx.quick else 6
    srv = common.Server(ctx, "srv-full")
    sp = new_spool(ctx, "full-delivery", srv)
    fs = None
    problems: list[str] = []
    sender = "owner@remote.test"
    shapes = {
        # accepted + deferred: the state must be written to keep the 250
        "d": ["ok{n}@remote.test", "reject4x{n}@remote.test"],
        # accepted + refused: a report must be queued, then the entry removed
        "b": ["ok{n}@remote.test", "reject5x{n}@remote.test"],
    }
    # (An entry with one recipient needs no state: removing it is its record. Such
    # entries are left out here, as removing them would free the room.)
    mids = {}
    try:
        fs = Tmpfs(sp.spool, size="512k")
        for shape, rcpts in shapes.items():
            for n in range(k):
                tag = f"full{shape}"
                to = [r.format(n=n) for r in rcpts]
                code, out = submit(sp, ["-odq", "-f", sender, *to],
                                   common.message(tag, n, to=", ".join(to)))
                if code != 0:
                    problems.append(f"submission failed before the disk was full: {out[:100]}")
                mids[f"{tag}.{n}@chaos"] = (shape, to)
        fill_bytes(sp.spool)
        per_run = []
        for _ in range(runs_full):
            code, out = foreground_run(sp)
            if code < 0:
                problems.append(f"a run while full died by signal {-code}")
            per_run.append(sum(srv.arrivals_per_recipient().values()))
        queued_full = set(sp.queued_message_ids())
        for mid, (shape, to) in mids.items():
            if shape == "b" and mid not in queued_full:
                bounced = [d for e, d in srv.messages()
                           if sender in e.get("rcpt_tos", []) and mid.encode() in d]
                if not bounced:
                    problems.append(f"{mid}: removed while full without its report")
        pr = srv.arrivals_per_recipient()
        for mid, (shape, to) in mids.items():
            if pr.get((mid, to[0]), 0) > 1:
                problems.append(f"{mid}: {to[0]} got {pr[(mid, to[0])]} copies while full")
        free(sp.spool)
        code, out = foreground_run(sp)
        if code != 0:
            problems.append(f"run after freeing: exit {code}: {out.strip()[:100]}")
        # What arrived, per message: the accepted recipient's copies; a report for "b".
        pr = srv.arrivals_per_recipient()
        got = {}
        for mid, (shape, to) in mids.items():
            got[mid] = pr.get((mid, to[0]), 0)
        reports = {}
        for e, d in srv.messages():
            if sender in e.get("rcpt_tos", []):
                for mid in mids:
                    if mid.encode() in d:
                        reports[mid] = reports.get(mid, 0) + 1
        for mid, (shape, to) in mids.items():
            if shape == "b" and reports.get(mid, 0) != 1:
                problems.append(f"{mid}: {reports.get(mid, 0)} failure reports")
            if shape != "b" and reports.get(mid):
                problems.append(f"{mid}: an unexpected report")
        # the report copies count as arrivals of the report, not of the message
        row = common.tally(SECTION, case, len(mids) * (runs_full + 1), list(mids), got,
                           sp.queued_message_ids())
        row.note = (f"{runs_full} runs while full sent {per_run[0]}"
                    f"{''.join(f'+{b - a}' for a, b in zip(per_run, per_run[1:]))} copies; "
                    f"reports {sum(reports.values())} for {k} refused")
    finally:
        if fs:
            fs.umount()
        srv.stop()
    return finish(row, problems, sp)




# ---------------------------------------------------------------------------------------
# (4): the mailboxes' filesystem is full.

def mbox_messages(path: Path) -> list[bytes]:
    """The messages of an mbox, split at its `From ` lines (each after a blank line)."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    if not data:
        return []
    parts = re.split(rb"(?:^|\n\n)(?=From )", data)
    return [p for p in parts if p]


def mbox_whole(path: Path, problems: list[str]) -> dict[str, int]:
    """Message-Id -> copies in the mbox; each message must be whole (its END line, then
    the blank line that ends it), and the file must end where a message ends."""
    counts: dict[str, int] = {}
    try:
        data = path.read_bytes()
    except OSError:
        return counts
    if data and not data.endswith(b"\n\n"):
        problems.append(f"{path.name}: the mbox does not end with a whole message")
    for m in mbox_messages(path):
        if not m.startswith(b"From "):
            problems.append(f"{path.name}: bytes that are not a message")
            continue
        mid = common.MESSAGE_ID.search(m)
        if not mid:
            problems.append(f"{path.name}: a message without its Message-Id")
            continue
        key = mid.group(1).decode()
        if f"END {key.split('@')[0]}".encode() not in m:
            problems.append(f"{path.name}: {key} is not whole")
        counts[key] = counts.get(key, 0) + 1
    return counts


def mbox_full(ctx, case: str) -> Row:
    """MAILSPOOL on a full tmpfs: local messages stay queued, the mailbox keeps only
    whole messages, and each is delivered once when there is room."""
    k = 3 if ctx.quick else 12
    runs_full = 2 if ctx.quick else 5
    srv = common.Server(ctx, "srv-mbox")
    sp = new_spool(ctx, "mbox-full", srv)
    fs = None
    problems: list[str] = []
    acked: list[str] = []
    box = sp.mail / "root"
    try:
        # Room for every message once freed; the filler takes it all before the runs.
        fs = Tmpfs(sp.mail, size=("64k" if ctx.quick else "512k"), mail_spool=True)
        # One message in the mailbox before it fills (rsendmail's own -odi).
        msg = common.message("mbf", 0, to="root")
        code, out = submit(sp, ["-odi", "root"], msg)
        if code != 0:
            problems.append(f"first local delivery: exit {code}: {out.strip()[:100]}")
        acked.append("mbf.0@chaos")
        for n in range(1, k + 1):
            # Bigger than the room left, a local-only one and one with a remote
            # recipient beside the local one.
            to = ["root"] if n % 2 else ["root", f"ok{n}@remote.test"]
            code, out = submit(sp, ["-odq", "-f", "alice@chaos.example", *to],
                               common.message("mbf", n, to=", ".join(to),
                                              body_lines=160 + 30 * n))
            if code != 0:
                problems.append(f"submission: exit {code}: {out.strip()[:100]}")
            else:
                acked.append(f"mbf.{n}@chaos")
        fill_bytes(sp.mail)
        before = box.read_bytes() if box.exists() else b""
        for _ in range(runs_full):
            code, out = foreground_run(sp)
            if code < 0:
                problems.append(f"a run with the mailbox disk full died by signal {-code}")
            now = box.read_bytes() if box.exists() else b""
            # Messages bigger than a page: none fits in what the last page has left.
            if now != before:
                problems.append(f"the mailbox changed while full ({len(before)} -> {len(now)} bytes)")
        queued = set(sp.queued_message_ids())
        in_box = mbox_whole(box, problems)
        for mid in acked[1:]:
            if mid not in queued and not in_box.get(mid):
                problems.append(f"{mid}: neither queued nor delivered while the disk was full")
        free(sp.mail)
        code, out = foreground_run(sp)
        if code != 0:
            problems.append(f"run after freeing: exit {code}: {out.strip()[:100]}")
        counts = mbox_whole(box, problems)
        left = [m for m in acked if counts.get(m, 0) != 1]
        if left:
            problems.append(f"{len(left)} not in the mailbox once after freeing: {left[:2]}")
        pr = srv.arrivals_per_recipient()
        for (mid, rcpt), c in pr.items():
            if c > 1:
                problems.append(f"{mid}: {rcpt} got {c} copies")
        row = common.tally(SECTION, case, len(acked) * (runs_full + 1), acked, counts,
                           sp.queued_message_ids())
        row.note = f"{runs_full} runs while full; mbox {len(before)} bytes kept as it was"
    finally:
        if fs:
            fs.umount()
        srv.stop()
    return finish(row, problems, sp)


# ---------------------------------------------------------------------------------------
# (5), (6): process limits.

def limited(ctx, case: str, kind: str) -> Row:
    """Submissions and queue runs under a small RLIMIT_NOFILE (`ulimit -n`) or
    RLIMIT_FSIZE (`ulimit -f`, SIGXFSZ at its default action): a clear failure or
    success, never a signal, nothing lost or sent twice; then a run without the limit
    delivers everything once."""
    srv = common.Server(ctx, f"srv-{kind}")
    # Without MAILLOG: a log file would meet the file-size limit too.
    sp = common.Spool(ctx, f"limit-{kind}", f"SMARTHOST 127.0.0.1\nPORT {srv.port}")
    problems: list[str] = []
    acked: list[str] = []
    tried = 0
    if kind == "nofile":
        lim = resource.RLIMIT_NOFILE
        values = list(range(4, 17))  # every limit: each takes a different path
    else:
        lim = resource.RLIMIT_FSIZE
        values = [64, 512, 4096, 16384] if not ctx.quick else [64, 512, 8192]
    messages: dict[str, bytes] = {}
    try:
        n = 0
        # Submissions: -odq, and -odi (delivery in the same limited process).
        for v in values:
            for mode in ("-odq", "-odi"):
                n += 1
                big = kind == "fsize" and n % 2 == 0
                to = ["ok@remote.test", "reject4x@remote.test"] if n % 3 == 0 else ["ok@remote.test"]
                msg = common.message(kind, n, to=", ".join(to),
                                     body_lines=(1200 if big else 5))
                mid = f"{kind}.{n}@chaos"
                messages[mid] = msg
                tried += 1
                code, out = submit(sp, [mode, "-f", "alice@chaos.example", *to], msg,
                                   preexec=limit(lim, v))
                left = tmp_files(sp)
                if left:
                    problems.append(f"{mid} (limit {v}): left {len(left)} files in tmp/")
                    for p in left:
                        p.unlink()
                if code < 0:
                    problems.append(f"{mid}: {mode} under limit {v} died by signal {-code}")
                elif code == 0:
                    acked.append(mid)
                    qf = sp.entries_by_message_id().get(mid)
                    if mode == "-odq" and (qf is None or not entry_complete(qf, msg)):
                        problems.append(f"{mid}: exit 0 without its complete entry")
                else:
                    if not out.strip():
                        problems.append(f"{mid}: exit {code} under limit {v} with no message")
                    if code not in (75, 74, 71, 70):
                        problems.append(f"{mid}: exit {code} under limit {v}: {out.strip()[:80]}")
                    if mid in sp.entries_by_message_id() and mode == "-odq":
                        problems.append(f"{mid}: exit {code} but its entry was committed")
                    if mid in srv.arrivals():
                        problems.append(f"{mid}: exit {code} but delivered")
        # Queue runs under each limit (the entries left queued, and new ones).
        for v in values:
            for shape in (["ok@remote.test", "reject4x@remote.test"],
                          ["ok@remote.test", "reject5x@remote.test"], ["ok@remote.test"]):
                n += 1
                mid = f"{kind}.{n}@chaos"
                msg = common.message(kind, n, to=", ".join(shape))
                messages[mid] = msg
                tried += 1
                code, out = submit(sp, ["-odq", "-f", "owner@remote.test", *shape], msg)
                if code == 0:
                    acked.append(mid)
            for _ in range(2):
                tried += 1
                code, out = foreground_run(sp, preexec=limit(lim, v))
                if code < 0:
                    problems.append(f"a queue run under limit {v} died by signal {-code}")
                elif code != 0 and not out.strip():
                    problems.append(f"a queue run under limit {v}: exit {code}, no message")
                dups = [(m, r) for (m, r), c in srv.arrivals_per_recipient().items() if c > 1]
                if dups:
                    problems.append(f"under limit {v}: {dups[0][1]} got {dups[0][0]} twice")
                    break
        code, out = foreground_run(sp)
        code2, out2 = foreground_run(sp)
        if code != 0 or code2 != 0:
            problems.append(f"runs without the limit: exit {code}, {code2}")
        pr = srv.arrivals_per_recipient()
        got = {mid: pr.get((mid, "ok@remote.test"), 0) for mid in messages}
        for env, data in srv.messages():
            if not whole(data, kind) and env.get("mail_from") != "<>":
                problems.append("a partial message arrived")
        row = common.tally(SECTION, case, tried, acked, got, [])
        row.note = (f"limits {values[0]}..{values[-1]}: submissions (-odq, -odi) and "
                    f"queue runs; tried counts processes")
    finally:
        srv.stop()
    return finish(row, problems, sp)




CASES = [
    ("spool fills (bytes): -odq submissions until the tmpfs is full, then freed and run",
     lambda ctx, c: spool_fills(ctx, c, inodes=False)),
    ("spool fills (inodes): -odq submissions until no inode is left, then freed and run",
     lambda ctx, c: spool_fills(ctx, c, inodes=True)),
    ("spool full during delivery: ok+450 and ok+550 entries, runs while full, then freed",
     full_during_delivery),
    ("MAILSPOOL on a full tmpfs: local (and local+remote) entries, runs while full, then freed",
     mbox_full),
]


def run(ctx) -> list[Row]:
    rows = []
    for case, fn in CASES:
        if not common.is_root():
            rows.append(skipped(case, "needs root (mount -t tmpfs)"))
            continue
        rows.append(fn(ctx, case))
    rows.append(limited(ctx, "ulimit -n 4..16: submissions (-odq, -odi) and queue runs",
                        "nofile"))
    rows.append(limited(ctx, "ulimit -f (SIGXFSZ default): submissions and queue runs, "
                        "state and reports over the limit", "fsize"))
    return rows
