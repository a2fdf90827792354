"""Hostile clients of the SMTP daemon (`rsendmail -C conf -bd`).

The daemon listens on 127.0.0.1 (a port the kernel chose) with short server timeouts
(`O Timeout.command=2s`, `O Timeout.datablock=2s`), so that every case is bounded:

- slow drip: clients that send one byte at a time, in a command line and in a DATA
  block; each must be cut off by the deadline of the whole command line / data block
  with `421 4.4.2 ... Timeout waiting for input`. While `MaxDaemonChildren` drippers
  hold every slot, another client gets the daemon's clear `421 4.3.2 ... Too many
  connections` at once (sendmail stops accepting instead and lets the client wait in
  the listen queue: compat-tests/DIFFERENCES.md) and is served as soon as the drippers'
  deadline has freed a slot;
- pipelined garbage: random bytes, NULs, a 100 KiB line without a newline, commands out
  of order, 10,000 RCPTs, a huge DATA (accepted, and over MaxMessageSize), a huge line
  in DATA: the daemon never crashes, every reply is a well-formed line with the code the
  case calls for, the session's memory stays bounded (VmHWM from /proc), and a normal
  message sent afterwards is accepted and delivered once;
- a storm of connections (1,000; quick: 200) opened and closed abruptly (RST), left
  half-open, or cut in the middle of a command or of DATA, mixed with whole messages:
  afterwards the daemon's open descriptors and child processes are back to the baseline
  (no leak, no zombie), and every message acknowledged (250 after the final dot) is
  delivered exactly once after a queue run, counted by Message-Id at a real SMTP server
  (the smarthost).
"""
from __future__ import annotations

import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common

SECTION = "hostile"
COMMAND_TIMEOUT = 2.0   # O Timeout.command
DATA_TIMEOUT = 2.0      # O Timeout.datablock
SLACK = 3.0             # how late past its deadline a cut-off may come
MEMORY_BOUND = 64 << 20  # a session's VmHWM must stay under this, whatever it is sent
REPLY = re.compile(rb"^[2-5][0-9][0-9][ -]")


def proc_children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def proc_state(pid: int) -> str:
    """The state letter of /proc/PID/stat ('' when gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[0]


def proc_status(pid: int, field: str) -> int:
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM), in bytes; 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Daemon:
    """`rsendmail -C conf -bd` on 127.0.0.1:<free port>, delivering to `smarthost` (queue
    only: a queue run sends what was accepted)."""

    def __init__(self, ctx, name: str, smarthost_port: int, extra: str = ""):
        self.ctx = ctx
        self.port = common.free_port()
        self.spool = common.Spool(ctx, name)
        self.pidfile = self.spool.dir / "daemon.pid"
        self.spool.add_config(
            f"SMARTHOST 127.0.0.1\nPORT {smarthost_port}\nO Timeout.connect=5s\n"
            f"O DaemonPortOptions=Port={self.port},Addr=127.0.0.1\n"
            f"O PidFile={self.pidfile}\nMAILLOG {self.spool.dir / 'maillog'}\n"
            f"O DeliveryMode=q\nO Timeout.command={int(COMMAND_TIMEOUT)}s\n"
            f"O Timeout.datablock={int(DATA_TIMEOUT)}s\n"
            # HELO before MAIL, as Debian's sendmail.cf asks (the out-of-order check).
            f"O PrivacyOptions=needmailhelo\n{extra}")
        self.pid = 0
        self.seen_children: set[int] = set()
        with open(self.spool.dir / "daemon.out", "wb") as log:
            p = subprocess.run(self.spool.argv(["-bd"]), stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"-bd exited {p.returncode}: {self.log()}")
        # The pid on the first line (the command line follows, as sendmail writes it).
        def first_line():
            try:
                return self.pidfile.read_text().split("\n", 1)[0].strip()
            except FileNotFoundError:
                return ""
        if not common.wait_until(20, lambda: first_line().isdigit()):
            raise RuntimeError("the daemon wrote no pid file")
        self.pid = int(first_line())
        if not common.wait_until(20, self._greets, step=0.1):
            raise RuntimeError("the daemon does not greet")
        self.settle()

    def log(self, tail: int = 2000) -> str:
        out = []
        for n in ("daemon.out", "maillog"):
            try:
                out.append((self.spool.dir / n).read_text(errors="replace"))
            except OSError:
                pass
        return "".join(out)[-tail:] if tail else "".join(out)

    def _greets(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.settimeout(5)
                ok = s.recv(4).startswith(b"220")
                s.sendall(b"QUIT\r\n")
                return ok
        except OSError:
            return False

    def alive(self) -> bool:
        return proc_state(self.pid) not in ("", "Z", "X")

    def children(self) -> list[int]:
        kids = proc_children(self.pid)
        self.seen_children.update(kids)
        return kids

    def zombies(self) -> int:
        return sum(1 for c in self.children() if proc_state(c) == "Z")

    def fds(self) -> int:
        return common.fd_count(self.pid)

    def settle(self, limit: float = COMMAND_TIMEOUT + 8) -> bool:
        """Wait until no session is left (all reaped)."""
        return common.wait_until(limit, lambda: not self.children(), step=0.05)

    def connect(self, timeout=10.0) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.settimeout(timeout)
        return s

    def stop(self):
        if not self.pid:
            return
        kids = set(self.children()) | self.seen_children
        try:
            os.kill(self.pid, signal.SIGTERM)
        except OSError:
            pass
        if not common.wait_until(10, lambda: not self.alive(), step=0.05):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        for k in kids:
            if proc_state(k) not in ("", "Z", "X"):
                try:
                    # Only our own session processes: their parent is our daemon.
                    if Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[-1].split()[1] \
                            == str(self.pid):
                        os.kill(k, signal.SIGKILL)
                except (OSError, IndexError):
                    pass


class Conn:
    """A raw client connection: bytes out, reply lines in (each checked for form)."""

    def __init__(self, sock: socket.socket):
        self.s = sock
        self.buf = b""
        self.closed = False
        self.bad_lines: list[bytes] = []

    def line(self, timeout: float = 10.0) -> bytes | None:
        """The next reply line (without CRLF), None when the server closed (or timed out:
        `self.closed` says which)."""
        end = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                got = self.s.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                got = b""
            if not got:
                self.closed = True
                if self.buf:
                    rest, self.buf = self.buf, b""
                    self.bad_lines.append(rest)
                return None
            self.buf += got
        l, self.buf = self.buf.split(b"\r\n", 1)
        if not REPLY.match(l) or b"\r" in l or b"\n" in l:
            self.bad_lines.append(l)
        return l

    def reply(self, timeout: float = 10.0) -> bytes | None:
        """A whole (possibly multi-line) reply: its last line."""
        while True:
            l = self.line(timeout)
            if l is None or l[3:4] != b"-":
                return l

    def send(self, data: bytes) -> bool:
        try:
            self.s.sendall(data)
            return True
        except OSError:
            return False

    def cmd(self, text: str, timeout: float = 10.0) -> bytes | None:
        self.send(text.encode() + b"\r\n")
        return self.reply(timeout)

    def rest(self, timeout: float = 10.0) -> list[bytes]:
        """Every reply line until the server closes (or `timeout` passes)."""
        out = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            l = self.line(end - time.monotonic())
            if l is None:
                break
            out.append(l)
        return out

    def close(self, abort: bool = False):
        try:
            if abort:
                # RST instead of FIN: SO_LINGER on, 0 s.
                self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.s.close()
        except OSError:
            pass


def code(line: bytes | None) -> int:
    try:
        return int(line[:3]) if line else 0
    except ValueError:
        return -1


def dot_stuffed(msg: bytes) -> bytes:
    lines = msg.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)


def send_message(d: Daemon, tag: str, n: int, close_abruptly=False) -> str | None:
    """One whole message on its own connection; its Message-Id when the final dot got
    250, else None."""
    try:
        c = Conn(d.connect())
    except OSError:
        return None
    try:
        if code(c.reply()) != 220:
            return None
        if code(c.cmd("EHLO chaos.client")) != 250:
            return None
        if code(c.cmd("MAIL FROM:<alice@chaos.example>")) != 250:
            return None
        if code(c.cmd("RCPT TO:<bob@example.org>")) != 250:
            return None
        if code(c.cmd("DATA")) != 354:
            return None
        c.send(dot_stuffed(common.message(tag, n)) + b".\r\n")
        ok = code(c.reply(30)) == 250
        if not close_abruptly:
            c.cmd("QUIT", 5)
        return f"{tag}.{n}@chaos" if ok else None
    finally:
        c.close(abort=close_abruptly)


# ---------------------------------------------------------------- slow drip


def drip(c: Conn, data: bytes, every: float, stop: threading.Event):
    for b in data:
        if stop.is_set() or not c.send(bytes([b])):
            return
        if stop.wait(every):
            return


def case_drip(ctx, server, rows, rng):
    """Drippers in a command line fill every slot; another client gets 421 4.3.2 and is
    served once the deadline frees a slot; drippers in DATA are cut off too."""
    slots = 4 if ctx.quick else 5
    every = 0.5 if ctx.quick else 1.0
    d = Daemon(ctx, "hostile-drip", server.port, f"O MaxDaemonChildren={slots}\n")
    acked = []
    try:
        # (1) Command lines: half before HELO, half after.
        stop = threading.Event()
        conns = []
        for i in range(slots):
            c = Conn(d.connect())
            c.reply()
            if i % 2:
                c.cmd("EHLO dripper")
            conns.append(c)
        # All slots are taken once each session is forked (it greeted).
        t0 = time.monotonic()
        threads = [threading.Thread(target=drip, args=(
            c, b"MAIL FROM:<dripper@chaos.example> a command far slower than its timeout\r\n",
            every, stop), daemon=True) for c in conns]
        for t in threads:
            t.start()
        # Another client while every slot is held: the daemon's 421 4.3.2, at once.
        time.sleep(0.3)
        t1 = time.monotonic()
        try:
            extra = Conn(d.connect(5))
            refusal = extra.reply(5)
            extra.close()
        except OSError as e:
            refusal = f"({e})".encode()
        refused_in = time.monotonic() - t1
        # And it is served as soon as a slot is free again.
        served_at = None
        mid = None
        while time.monotonic() - t0 < COMMAND_TIMEOUT + SLACK + 5:
            mid = send_message(d, "drip-served", 0)
            if mid:
                served_at = time.monotonic() - t0
                break
            time.sleep(0.2)
        if mid:
            acked.append(mid)
        cut = []
        for c in conns:
            lines = c.rest(COMMAND_TIMEOUT + SLACK + 2)
            cut.append((time.monotonic() - t0, lines[-1] if lines else b"", c.closed))
        stop.set()
        for c in conns:
            c.close()
        in_time = [x for x in cut if x[1].startswith(b"421 4.4.2 ")
                   and x[1].endswith(b"Timeout waiting for input") and x[2]
                   and x[0] <= COMMAND_TIMEOUT + SLACK]
        worst = max(x[0] for x in cut)
        rows.append(common.Row(
            SECTION, f"slow drip: {slots} clients, a command line at 1 byte/{every:g}s",
            tried=slots, held=len(in_time) == slots and d.alive(),
            note=f"{len(in_time)}/{slots} cut off with 421 4.4.2 (Timeout.command "
                 f"{COMMAND_TIMEOUT:g}s), last after {worst:.1f}s"))
        full_ok = refusal.startswith(b"421 4.3.2 ") and refused_in < 2.0
        rows.append(common.Row(
            SECTION, f"slow drip: all {slots} MaxDaemonChildren slots held, another client",
            tried=1, held=full_ok and served_at is not None
            and served_at <= COMMAND_TIMEOUT + SLACK + 1,
            note=f"got {refusal[:60].decode(errors='replace')!r} after {refused_in:.2f}s; "
                 f"served {'after %.1fs' % served_at if served_at else 'never'} "
                 f"(slots freed by the deadline)"))
        # (2) DATA blocks.
        d.settle()
        entries_before = len(d.spool.entries())
        stop = threading.Event()
        conns = []
        for i in range(slots):
            c = Conn(d.connect())
            c.reply()
            c.cmd("EHLO dripper")
            c.cmd("MAIL FROM:<dripper@chaos.example>")
            c.cmd(f"RCPT TO:<drip{i}@example.org>")
            c.cmd("DATA")
            conns.append(c)
        t0 = time.monotonic()
        body = dot_stuffed(common.message("drip-data", 0)) * 10 + b".\r\n"
        threads = [threading.Thread(target=drip, args=(c, body, every, stop), daemon=True)
                   for c in conns]
        for t in threads:
            t.start()
        cut = []
        for c in conns:
            lines = c.rest(DATA_TIMEOUT + SLACK + 2)
            cut.append((time.monotonic() - t0, lines[-1] if lines else b"", c.closed))
        stop.set()
        for c in conns:
            c.close()
        in_time = [x for x in cut if x[1].startswith(b"421 4.4.2 ") and x[2]
                   and x[0] <= DATA_TIMEOUT + SLACK]
        worst = max(x[0] for x in cut)
        d.settle()
        queued = len(d.spool.entries()) - entries_before
        tmp = d.spool.spool / "tmp"
        left_tmp = len(list(tmp.iterdir())) if tmp.is_dir() else 0
        rows.append(common.Row(
            SECTION, f"slow drip: {slots} clients, a DATA block at 1 byte/{every:g}s",
            tried=slots, held=len(in_time) == slots and queued == 0 and left_tmp == 0
            and d.alive(),
            note=f"{len(in_time)}/{slots} cut off with 421 4.4.2 (Timeout.datablock "
                 f"{DATA_TIMEOUT:g}s), last after {worst:.1f}s; {queued} queued, "
                 f"{left_tmp} temporary files left"))
        # What was acknowledged is delivered once.
        d.spool.queue_run()
        arrivals = server.arrivals()
        rows.append(common.tally(SECTION, "slow drip: messages served around the drippers",
                                 1, acked, arrivals, (),
                                 note="delivered by one queue run"))
    finally:
        d.stop()


def case_slow_reader(ctx, server, rows, rng):
    """Clients that pipeline a flood of commands, then read the replies 64 KiB every
    half second (each write of the session makes progress, the whole would take
    minutes): a session may live no longer than the deadline of its group of replies."""
    n = 3 if ctx.quick else 5
    d = Daemon(ctx, "hostile-slowread", server.port, f"O MaxDaemonChildren={n}\n")
    limit = COMMAND_TIMEOUT + SLACK + 1
    try:
        stop = threading.Event()
        socks = []
        before = set(d.children())
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            socks.append(s)

        def flood(s):
            try:
                s.sendall(b"HELP\r\n" * 200000)
            except OSError:
                pass

        def trickle(s):
            s.settimeout(0.5)
            while not stop.is_set():
                try:
                    if not s.recv(65536):
                        return
                except socket.timeout:
                    continue
                except OSError:
                    return
                stop.wait(0.5)

        ths = [threading.Thread(target=f, args=(s,), daemon=True)
               for s in socks for f in (flood, trickle)]
        for t in ths:
            t.start()
        t0 = time.monotonic()
        common.wait_until(5, lambda: len(set(d.children()) - before) >= n)
        sessions = set(d.children()) - before
        lived = {}
        while sessions - set(lived) and time.monotonic() - t0 < limit + 10:
            now = set(d.children())
            for p in sessions - now - set(lived):
                lived[p] = time.monotonic() - t0
            time.sleep(0.05)
        stop.set()
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass
        for t in ths:
            t.join(5)
        ended = [x for x in lived.values() if x <= limit]
        longest = max(lived.values()) if len(lived) == len(sessions) else None
        rows.append(common.Row(
            SECTION, f"slow reader: {n} clients pipeline 200,000 HELPs, read 64 KiB/0.5s",
            tried=n, held=len(sessions) == n and len(ended) == n and d.alive(),
            note=f"{len(ended)}/{n} sessions ended within {limit:g}s (Timeout.command "
                 f"{COMMAND_TIMEOUT:g}s for a group of replies); longest "
                 + (f"{longest:.1f}s" if longest is not None else f"over {limit + 10:g}s")))
        d.settle()
    finally:
        d.stop()


# ---------------------------------------------------------------- pipelined garbage


class MemWatch:
    """Samples a session process's VmHWM (its peak resident size) until stopped."""

    def __init__(self, d: Daemon, before: set[int]):
        self.pid = 0
        self.peak = 0
        self.stop_ = threading.Event()
        end = time.monotonic() + 5
        while time.monotonic() < end:
            new = set(d.children()) - before
            if new:
                self.pid = max(new)
                break
            time.sleep(0.01)
        # One sample before the attack begins (the session may end at once).
        if self.pid:
            self.peak = proc_status(self.pid, "VmHWM")
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop_.is_set() and self.pid:
            v = proc_status(self.pid, "VmHWM")
            if v == 0:
                return
            self.peak = max(self.peak, v)
            time.sleep(0.02)

    def stop(self) -> int:
        self.stop_.set()
        self.t.join(5)
        return self.peak


def pipelined(d: Daemon, payload, timeout: float = 60.0):
    """Connect, read the greeting, write `payload` (bytes, or an iterable of chunks) from
    a thread while reading every reply until the server closes; (reply lines, bad lines,
    peak VmHWM of the session, whether the server closed)."""
    before = set(d.children())
    c = Conn(d.connect())
    greeting = c.line()
    watch = MemWatch(d, before)

    def writer():
        chunks = [payload] if isinstance(payload, (bytes, bytearray)) else payload
        for ch in chunks:
            if not c.send(ch):
                return

    w = threading.Thread(target=writer, daemon=True)
    w.start()
    lines = c.rest(timeout)
    w.join(timeout)
    peak = watch.stop()
    c.close()
    return [greeting] + lines, c.bad_lines, peak, c.closed


def case_garbage(ctx, server, rows, rng):
    big = (8 << 20) if ctx.quick else (64 << 20)
    d = Daemon(ctx, "hostile-garbage", server.port, f"O MaxMessageSize={big + (1 << 20)}\n")
    acked, rcpt_acked = [], []
    follow = [0]

    def after(name: str) -> str:
        """A normal message after the attack: accepted?"""
        follow[0] += 1
        mid = send_message(d, f"after-{name}", follow[0])
        if mid:
            acked.append(mid)
        return "a message after it accepted" if mid else "**the message after it was not accepted**"

    def row(name, tried, ok, lines, bad, peak, closed, note):
        alive = d.alive()
        held = ok and not bad and alive and 0 < peak < MEMORY_BOUND
        note = (f"{note}; {len(lines)} reply lines, {len(bad)} malformed; session peak "
                f"VmHWM {peak / 2**20:.1f} MiB; daemon {'up' if alive else '**gone**'}; "
                f"{after(name) if alive else ''}")
        rows.append(common.Row(SECTION, f"pipelined garbage: {name}", tried=tried,
                               held=held and "**" not in note, note=note))
        d.settle()

    try:
        # Random bytes (NULs and every other byte among them) in lines of up to 1,500.
        data = bytearray()
        size = 256 << 10 if ctx.quick else 4 << 20
        while len(data) < size:
            data += rng.randbytes(rng.randrange(1, 1500)) + b"\r\n"
        lines, bad, peak, closed = pipelined(d, [bytes(data), b"QUIT\r\n"])
        codes = {code(l) for l in lines[1:]}
        rows_ok = closed and lines[-1:] and code(lines[-1]) in (221, 421) \
            and codes <= {250, 500, 501, 502, 503, 221, 421, 214, 252, 458, 459, 550, 553}
        row("random bytes", len(data), bool(rows_ok), lines, bad, peak, closed,
            f"{len(data) >> 10} KiB, replies {sorted(codes)}")
        # NULs.
        payload = (b"\0" * 1000 + b"\r\n" + b"HELO \0nul\0\r\n" + b"MAIL FROM:<a\0b@chaos.example>\r\n"
                   + b"\0\0\0\r\n" * 20 + b"RSET\0\r\nQUIT\r\n")
        lines, bad, peak, closed = pipelined(d, payload)
        # The HELO with NULs is refused (501 Invalid domain name), so the MAIL after it
        # meets needmailhelo's 503, as in sendmail.
        ok = closed and code(lines[-1]) == 221 and all(code(l) in (220, 250, 221, 500, 501, 503, 553)
                                                        for l in lines)
        row("NUL bytes in and as commands", len(payload), ok, lines, bad, peak, closed,
            f"last {lines[-1][:40].decode(errors='replace')!r}")
        # A flood of unrecognized commands: sendmail's limit of 25, then 421.
        lines, bad, peak, closed = pipelined(d, b"".join(b"XYZZY %d\r\n" % i
                                                         for i in range(1000)))
        n500 = sum(1 for l in lines if l.startswith(b"500 5.5.1 "))
        ok = closed and n500 == 25 and lines[-1].startswith(b"421 4.7.0 ") \
            and lines[-1].endswith(b"Too many bad commands; closing connection")
        row("1,000 unrecognized commands", 1000, ok, lines, bad, peak, closed,
            f"{n500} answered 500, then {lines[-1][:30].decode(errors='replace')!r}...")
        # A 100 KiB line without a newline.
        lines, bad, peak, closed = pipelined(d, b"HELO " + b"A" * (100 << 10))
        ok = closed and lines[-1].startswith(b"421 4.7.0 ") and b"Command too long" in lines[-1]
        row("a 100 KiB command line without a newline", 1, ok, lines, bad, peak, closed,
            f"got {lines[-1][:50].decode(errors='replace')!r}")
        # Commands out of order.
        seq = ["DATA", "RCPT TO:<bob@example.org>", "MAIL FROM:<alice@chaos.example>",
               "HELO chaos.client", "DATA", "RCPT TO:<bob@example.org>",
               "MAIL FROM:<alice@chaos.example>", "MAIL FROM:<alice@chaos.example>", "DATA",
               "RSET", ".", "QUIT"]
        want = [503, 503, 503, 250, 503, 503, 250, 503, 503, 250, 500, 221]
        lines, bad, peak, closed = pipelined(d, "".join(s + "\r\n" for s in seq).encode())
        got = [code(l) for l in lines[1:]]
        row("commands out of order", len(seq), got == want, lines, bad, peak, closed,
            "codes as sendmail's" if got == want else f"codes {got}, want {want}")
        # 10,000 RCPTs in one pipelined write, then a message.
        n = 10000
        head = b"EHLO chaos.client\r\nMAIL FROM:<alice@chaos.example>\r\n"
        rcpts = b"".join(b"RCPT TO:<r%d@example.org>\r\n" % i for i in range(n))
        msg = common.message("rcpt10k", 0)
        lines, bad, peak, closed = pipelined(
            d, [head, rcpts, b"DATA\r\n", dot_stuffed(msg) + b".\r\nQUIT\r\n"], timeout=120)
        final = [l for l in lines if l.startswith(b"250 2.0.0 ") and b"accepted" in l]
        c250 = sum(1 for l in lines if l.startswith(b"250 2.1.5"))
        c452 = sum(1 for l in lines if l.startswith(b"452 "))
        ok = c250 == 1000 and c452 == n - 1000 and len(final) == 1 and code(lines[-1]) == 221
        if final:
            rcpt_acked.append("rcpt10k.0@chaos")
        row(f"{n:,} RCPTs in one pipelined write", n, ok, lines, bad, peak, closed,
            f"{c250} taken (MaxRecipientsPerMessage 1000), {c452} 452, message "
            f"{'accepted' if final else 'NOT accepted'}")
        # A huge DATA, accepted.
        line = b"x" * 998 + b"\r\n"
        chunk = line * 1024
        count = big // len(chunk)
        hdr = dot_stuffed(common.message("huge", 0).split(b"\n\n")[0] + b"\n\n")

        def huge(count):
            yield b"EHLO chaos.client\r\nMAIL FROM:<alice@chaos.example>\r\n"
            yield b"RCPT TO:<bob@example.org>\r\nDATA\r\n" + hdr
            for _ in range(count):
                yield chunk
            yield b".\r\nQUIT\r\n"

        lines, bad, peak, closed = pipelined(d, huge(count), timeout=300)
        acc = any(l.startswith(b"250 2.0.0 ") and b"accepted" in l for l in lines)
        if acc:
            acked.append("huge.0@chaos")
        row(f"a {count * len(chunk) >> 20} MiB DATA", 1, acc and code(lines[-1]) == 221,
            lines, bad, peak, closed, "accepted" if acc else "NOT accepted")
        # A huge DATA over MaxMessageSize: read to its end, refused with 552.
        hdr = dot_stuffed(common.message("toobig", 0).split(b"\n\n")[0] + b"\n\n")
        lines, bad, peak, closed = pipelined(d, huge(2 * count), timeout=300)
        r552 = any(l.startswith(b"552 5.2.3 ") for l in lines)
        row(f"a {2 * count * len(chunk) >> 20} MiB DATA over MaxMessageSize", 1,
            r552 and code(lines[-1]) == 221, lines, bad, peak, closed,
            "552 5.2.3" if r552 else "no 552")
        # One huge line in DATA (no newline for megabytes).
        hdr = dot_stuffed(common.message("longline", 0).split(b"\n\n")[0] + b"\n\n")
        mb = 4 if ctx.quick else 32

        def longline():
            yield (b"EHLO chaos.client\r\nMAIL FROM:<alice@chaos.example>\r\n"
                   b"RCPT TO:<bob@example.org>\r\nDATA\r\n" + hdr)
            for _ in range(mb * 16):
                yield b"y" * (64 << 10)
            yield b"\r\n.\r\nQUIT\r\n"

        lines, bad, peak, closed = pipelined(d, longline(), timeout=300)
        acc = any(l.startswith(b"250 2.0.0 ") and b"accepted" in l for l in lines)
        if acc:
            acked.append("longline.0@chaos")
        row(f"a {mb} MiB line in DATA", 1, acc and code(lines[-1]) == 221, lines, bad, peak,
            closed, "accepted" if acc else "NOT accepted")
        # Everything acknowledged arrives once.
        d.spool.queue_run(timeout=600)
        arrivals = server.arrivals()
        rows.append(common.tally(SECTION, "pipelined garbage: messages acknowledged around it",
                                 len(acked), acked, arrivals, (),
                                 note="delivered by one queue run"))
        per = server.arrivals_per_recipient()
        got = [k for k in per if k[0] == "rcpt10k.0@chaos"]
        dup = sum(v - 1 for k, v in per.items() if k[0] == "rcpt10k.0@chaos" and v > 1)
        rows.append(common.Row(
            SECTION, "pipelined garbage: the 1,000-recipient message", tried=1000,
            acknowledged=1000 if rcpt_acked else 0,
            once=sum(1 for k in got if per[k] == 1), duplicated=dup,
            lost=(1000 - len(got)) if rcpt_acked else 0,
            held=bool(rcpt_acked) and len(got) == 1000 and dup == 0,
            note="counted per (Message-Id, recipient)"))
    finally:
        d.stop()


# ---------------------------------------------------------------- connection storm


def storm_one(d: Daemon, i: int, kind: str, idle: list, lock: threading.Lock, tag: str):
    """One connection of the storm; the Message-Id it got acknowledged, if any."""
    try:
        if kind == "message":
            return send_message(d, tag, i)
        if kind == "message-rst":
            return send_message(d, tag, i, close_abruptly=True)
        c = Conn(d.connect())
        if kind == "rst":
            c.close(abort=True)
        elif kind == "fin":
            c.close()
        elif kind == "half-command":
            c.reply(5)
            c.send(b"MAIL FROM:<half@chao")
            c.close(abort=True)
        elif kind == "half-open":
            # Our side shut for writing, never read: the server sees the end of input.
            c.s.shutdown(socket.SHUT_WR)
            with lock:
                idle.append((c, kind))
        elif kind == "idle":
            # Connected, silent: the command deadline must end it.
            with lock:
                idle.append((c, kind))
        elif kind == "mid-data":
            c.reply(5)
            c.cmd("EHLO storm")
            c.cmd("MAIL FROM:<alice@chaos.example>")
            c.cmd("RCPT TO:<bob@example.org>")
            if code(c.cmd("DATA")) == 354:
                c.send(dot_stuffed(common.message(tag + "-cut", i))[:100])
            c.close(abort=True)
    except OSError:
        pass
    return None


def case_storm(ctx, server, rows, rng, cap: int = 64):
    """`cap`: MaxDaemonChildren (0: no limit, every connection gets a session)."""
    n = 200 if ctx.quick else 1000
    workers = 16 if ctx.quick else 32
    d = Daemon(ctx, "hostile-storm", server.port, f"O MaxDaemonChildren={cap}\n")
    tag = f"storm{cap}"
    try:
        base_fds = d.fds()
        base_children = len(d.children())
        base_rss = proc_status(d.pid, "VmRSS")
        kinds = ["rst", "fin", "half-command", "half-open", "idle", "mid-data", "message",
                 "message-rst"]
        plan = [rng.choice(kinds) for _ in range(n)]
        idle, lock = [], threading.Lock()
        t0 = time.monotonic()
        peak_children = [0]
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                peak_children[0] = max(peak_children[0], len(d.children()))
                time.sleep(0.05)

        wt = threading.Thread(target=watch, daemon=True)
        wt.start()
        with ThreadPoolExecutor(workers) as ex:
            results = list(ex.map(lambda a: storm_one(d, a[0], a[1], idle, lock, tag),
                                  enumerate(plan)))
        took = time.monotonic() - t0
        # The silent ones get the command deadline's 421, the half-open ones are closed
        # when the server reads the end of their input; then ours are closed too.
        idle_cut = half_closed = 0
        n_idle = n_half = 0
        for c, kind in idle:
            lines = c.rest(COMMAND_TIMEOUT + SLACK + 2)
            if kind == "idle":
                n_idle += 1
                refused = bool(lines) and lines[0].startswith(b"421 4.3.2 ")
                idle_cut += c.closed and bool(lines) and (refused or (
                    lines[-1].startswith(b"421 4.4.2 ")
                    and lines[-1].endswith(b"Timeout waiting for input")))
            else:
                n_half += 1
                half_closed += c.closed
            c.close()
        refusals = d.log(0).count("sessions already (MaxDaemonChildren)")
        settled = d.settle(COMMAND_TIMEOUT + SLACK + 10)
        stop.set()
        wt.join(5)
        # fds and children back to the baseline (the daemon reaps within its poll tick).
        fds_ok = common.wait_until(5, lambda: d.fds() == base_fds, step=0.1)
        fds_after = d.fds()
        kids_after = len(d.children())
        zombies = d.zombies()
        rss = proc_status(d.pid, "VmRSS")
        counts = {k: plan.count(k) for k in kinds}
        rows.append(common.Row(
            SECTION, f"{n:,} connections: abrupt close, half-open, cut mid-command/DATA, "
                     f"whole messages (MaxDaemonChildren {cap or 'unlimited'})", tried=n,
            held=settled and fds_ok and kids_after == base_children and zombies == 0
            and d.alive() and idle_cut == n_idle and half_closed == n_half,
            note=f"{took:.1f}s; {idle_cut}/{n_idle} silent ones cut off (421), "
                 f"{half_closed}/{n_half} half-open ones closed; {refusals} refused "
                 f"(MaxDaemonChildren {cap or 'unlimited'}); daemon fds {base_fds} before, {fds_after} after; sessions "
                 f"{base_children} before, peak {peak_children[0]}, {kids_after} after; "
                 f"zombies {zombies}; daemon VmRSS {base_rss >> 10} KiB before, {rss >> 10} "
                 f"KiB after; mix " + ", ".join(f"{k} {v}" for k, v in counts.items())))
        acked = [r for r in results if r]
        d.spool.queue_run(timeout=300)
        arrivals = server.arrivals()
        storm_arrivals = {k: v for k, v in arrivals.items() if k.startswith(tag + ".")}
        tried = counts["message"] + counts["message-rst"]
        rows.append(common.tally(SECTION, f"storm (MaxDaemonChildren {cap or 'unlimited'}): "
                                 "messages acknowledged during it", tried,
                                 acked, storm_arrivals, (),
                                 note="250 after the final dot; delivered by one queue run; "
                                      "cut DATA never queued"
                                 if not any(k.startswith(tag + "-cut") for k in arrivals)
                                 else "**a cut DATA was delivered**"))
        if any(k.startswith(tag + "-cut") for k in arrivals):
            rows[-1].held = False
    finally:
        d.stop()


def run(ctx) -> list:
    rows: list = []
    rng = random.Random(ctx.seed)
    server = common.Server(ctx, "hostile-smarthost", env={"DATA_SIZE_LIMIT": "0"})
    try:
        cases = [case_drip, case_slow_reader, case_garbage, case_storm]
        if not ctx.quick:
            cases.append(lambda *a: case_storm(*a, cap=0))
        for case in cases:
            t = time.monotonic()
            try:
                case(ctx, server, rows, rng)
            except Exception as e:  # a case that crashed is a broken row, the rest still run
                import traceback
                traceback.print_exc()
                rows.append(common.Row(SECTION, f"{getattr(case, '__name__', 'case')} (crashed)",
                                       held=False,
                                       note=f"{type(e).__name__}: {e}"[:200]))
            ctx.say(f"hostile: {getattr(case, '__name__', 'case')} {time.monotonic() - t:.1f}s")
    finally:
        server.stop()
    return rows
