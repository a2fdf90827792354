#!/usr/bin/env python3
"""Local mail latency while the persistent queue runner is busy with a slow delivery.

Usage: bench/slowpeer.py RSENDMAIL [BEFORE]

The runner (`-q30m -qf`) relays to a server on 127.0.0.1 that takes BENCH_SLOW seconds
(default 10) over its reply to each final dot. Each round submits a slow delivery
(`-odb`), waits until it is in progress, submits local mail to the user running this
(`-odb`) and measures the time from the submission's return until it is in the mailbox
(at most BENCH_SLOW + 5 s); then waits for the slow delivery to end. The kinds of slow
delivery, each in turn:
- remote: a message to the slow server;
- program: a message to an alias whose command takes BENCH_SLOW seconds (`|sleep`);
- forward: a message to a user whose `.forward` sends it to the slow server;
- mixed: one message to the slow server and to the local user (its local copy must
  not wait for the server either: the round's figure is until both local messages are
  in the mailbox).
The program and forward rounds need root (only a root runner runs commands and reads
another user's `.forward`); the forward round also needs BENCH_FORWARD_USER, a login
whose `.forward` the bench may write for its duration (it takes the test suite's lock
on that file, /tmp/rsendmail-tests-forward.lock, meanwhile). A round that cannot run is
said and left out. BENCH_SLOW_RUNS rounds of each (default 5), RSENDMAIL and BEFORE (an
earlier build) interleaved; the medians and their ratios are printed, never asserted.
"""
import fcntl
import os
import pwd
import shutil
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

SLOW = float(os.environ.get("BENCH_SLOW", "10"))
RUNS = int(os.environ.get("BENCH_SLOW_RUNS", "5"))
MSG = b"From: bench@bench.example\nSubject: bench\n\nbody\n"


class Slow(socketserver.StreamRequestHandler):
    """An SMTP server that takes SLOW seconds over its reply to the final dot."""

    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        srv = self.server
        self.reply("220 slow.test ESMTP")
        for raw in self.rfile:
            cmd = raw.decode("ascii", "replace").strip().upper()
            if cmd.startswith(("EHLO", "HELO")):
                self.reply("250 slow.test")
            elif cmd.startswith("DATA"):
                self.reply("354 go ahead")
                for line in self.rfile:
                    if line in (b".\r\n", b".\n"):
                        break
                with srv.lock:
                    srv.dots += 1
                time.sleep(SLOW)
                with srv.lock:
                    srv.taken += 1
                self.reply("250 2.0.0 taken")
            elif cmd.startswith("QUIT"):
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Slow)
        self.lock = threading.Lock()
        self.dots = 0
        self.taken = 0


def wait_for(pred, limit):
    return compare.wait_for(pred, limit, 0.001)


def messages(path):
    """The messages in an mbox."""
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.startswith(b"From "))
    except FileNotFoundError:
        return 0


class Prog(compare.Rsendmail):
    """compare.py's rsendmail (its config, mailboxes and runner start), with an alias
    whose command takes SLOW seconds and room for the slow server's reply."""

    def __init__(self, work, name, binary, port):
        super().__init__(work, name, port, label=name, binary=os.path.abspath(binary))
        # The command runs as the default user: its flag goes where anyone may write.
        flags = os.path.join(self.dir, "open")
        os.mkdir(flags)
        os.chmod(flags, 0o1777)
        self.flag = os.path.join(flags, "program-started")
        aliases = os.path.join(self.dir, "aliases")
        with open(aliases, "w") as f:
            f.write("slowprog: \"|/bin/sh -c 'touch %s; sleep %g; cat >/dev/null'\"\n"
                    % (self.flag, SLOW))
        with open(self.conf, "a") as f:
            f.write("ALIASES %s\nO Timeout.datafinal=120s\n" % aliases)
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.mailbox = os.path.join(self.mail, self.user)
        self.start_runner()
        wakeup = os.path.join(self.spool, "wakeup")
        wait_for(lambda: os.path.exists(wakeup), 10)

    def submit(self, *rcpts):
        subprocess.run([self.bin, "-C", self.conf] + list(rcpts), input=MSG, check=True,
                       stdout=subprocess.DEVNULL)

    def stop(self):
        self.stop_runner()


class Forward:
    """BENCH_FORWARD_USER's `.forward` to the slow server, under the test suite's lock
    on it, removed at the end."""

    def __init__(self, login):
        self.pw = pwd.getpwnam(login)
        self.path = os.path.join(self.pw.pw_dir, ".forward")
        self.lock = open(os.path.join(tempfile.gettempdir(),
                                      "rsendmail-tests-forward.lock"), "a")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        with open(self.path, "w") as f:
            f.write("slowfw@remote.example\n")
        os.chown(self.path, self.pw.pw_uid, self.pw.pw_gid)
        os.chmod(self.path, 0o644)

    def close(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.lock.close()


def rounds():
    """The kinds of slow delivery this run can make, and why the others are left out."""
    kinds, left = ["remote", "mixed"], []
    if os.getuid() == 0:
        kinds.insert(1, "program")
        if os.environ.get("BENCH_FORWARD_USER"):
            kinds.insert(2, "forward")
        else:
            left.append("forward (set BENCH_FORWARD_USER)")
    else:
        left += ["program (needs root)", "forward (needs root)"]
    return kinds, left


def one_round(p, kind, server, fwd_user):
    """One slow delivery of `kind` on `p` and local mail meanwhile: the local mail's
    latency in seconds, or None when it did not arrive within SLOW + 5 s."""
    dots, taken = server.dots, server.taken
    base = messages(p.mailbox)
    if kind == "program":
        try:
            os.unlink(p.flag)
        except FileNotFoundError:
            pass
        p.submit("slowprog")
        begun = wait_for(lambda: os.path.exists(p.flag), 10)
    elif kind == "forward":
        p.submit(fwd_user)
        begun = wait_for(lambda: server.dots > dots, 10)
    elif kind == "mixed":
        p.submit("slow@remote.example", p.user)
        begun = wait_for(lambda: server.dots > dots, 10)
    else:
        p.submit("slow@remote.example")
        begun = wait_for(lambda: server.dots > dots, 10)
    if not begun:
        raise SystemExit("%s: the %s delivery never began" % (p.name, kind))
    # The mixed message's own local copy counts too.
    want = base + (2 if kind == "mixed" else 1)
    p.submit(p.user)
    t = time.perf_counter()
    got = wait_for(lambda: messages(p.mailbox) >= want, SLOW + 5)
    el = time.perf_counter() - t
    if kind == "program":
        wait_for(lambda: p.queued() == 0, SLOW + 10)
    else:
        wait_for(lambda: server.taken > taken, SLOW + 10)
    return el if got else None


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: bench/slowpeer.py RSENDMAIL [BEFORE]")
    server = Server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    work = tempfile.mkdtemp(prefix="rsendmail-slowpeer-")
    os.chmod(work, 0o755)
    kinds, left = rounds()
    fwd_user = os.environ.get("BENCH_FORWARD_USER")
    fwd = Forward(fwd_user) if "forward" in kinds else None
    progs = [Prog(work, "after", sys.argv[1], port)]
    if len(sys.argv) > 2:
        progs.append(Prog(work, "before", sys.argv[2], port))
    lat = {(p.name, k): [] for p in progs for k in kinds}
    try:
        for _ in range(RUNS):
            for kind in kinds:
                for p in progs:
                    el = one_round(p, kind, server, fwd_user)
                    if el is not None:
                        lat[(p.name, kind)].append(el)
    finally:
        for p in progs:
            p.stop()
        if fwd:
            fwd.close()
        shutil.rmtree(work, ignore_errors=True)
    print("Local mail latency while the runner is busy %.0f s with a slow delivery: "
          "submission's return -> in the mailbox, median of %d:" % (SLOW, RUNS))
    for kind in kinds:
        print("  %s:" % kind)
        for p in progs:
            xs = lat[(p.name, kind)]
            print("   %-8s %9.1f ms median, %9.1f ms max, %d of %d arrived within %.0f s"
                  % (p.name, statistics.median(xs) * 1000 if xs else float("nan"),
                     max(xs) * 1000 if xs else float("nan"), len(xs), RUNS, SLOW + 5))
        a, b = lat.get(("after", kind)), lat.get(("before", kind))
        if a and b:
            print("   after/before: %.3fx" % (statistics.median(a) / statistics.median(b)))
    for why in left:
        print("  left out: %s" % why)


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
