#!/usr/bin/env python3
"""Local mail latency while the persistent queue runner waits for a slow server.

Usage: bench/slowpeer.py RSENDMAIL [BEFORE]

The runner (`-q30m -qf`) relays to a server on 127.0.0.1 that takes BENCH_SLOW seconds
(default 10) over its reply to each final dot. Each round submits a remote message
(`-odb`), waits until the server has its data (the runner is then waiting for the
reply), submits local mail to the user running this (`-odb`) and measures the time
from the submission's return until it is in the mailbox (at most BENCH_SLOW + 5 s);
then waits for the remote message to be taken. BENCH_SLOW_RUNS rounds (default 5),
RSENDMAIL and BEFORE (an earlier build) interleaved; the medians and their ratio are
printed, never asserted.
"""
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
import peers  # noqa: E402

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
    t = time.perf_counter()
    while not pred():
        if time.perf_counter() - t > limit:
            return False
        time.sleep(0.001)
    return True


def size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


class Prog:
    def __init__(self, work, name, binary, port):
        self.name, self.bin = name, os.path.abspath(binary)
        mail = os.path.join(work, name, "mail")
        self.conf = peers.config(work, name, port,
                                 "MAILSPOOL %s\nMAILLOG %s.log\nO Timeout.datafinal=120s\n"
                                 % (mail, mail))
        os.makedirs(mail)
        os.chmod(mail, 0o1777)
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.mailbox = os.path.join(mail, self.user)
        self.runner = subprocess.Popen([self.bin, "-C", self.conf, "-qf", "-q30m"],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        wakeup = os.path.join(work, name, "spool", "wakeup")
        wait_for(lambda: os.path.exists(wakeup), 10)

    def submit(self, rcpt):
        subprocess.run([self.bin, "-C", self.conf, rcpt], input=MSG, check=True,
                       stdout=subprocess.DEVNULL)

    def stop(self):
        self.runner.terminate()
        self.runner.wait()


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: bench/slowpeer.py RSENDMAIL [BEFORE]")
    server = Server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    work = tempfile.mkdtemp(prefix="rsendmail-slowpeer-")
    os.chmod(work, 0o755)
    progs = [Prog(work, "after", sys.argv[1], port)]
    if len(sys.argv) > 2:
        progs.append(Prog(work, "before", sys.argv[2], port))
    lat = {p.name: [] for p in progs}
    try:
        for _ in range(RUNS):
            for p in progs:
                dots, taken = server.dots, server.taken
                p.submit("slow@remote.example")
                if not wait_for(lambda: server.dots > dots, 10):
                    raise SystemExit("%s: the remote message never reached the server" % p.name)
                before = size(p.mailbox)
                p.submit(p.user)
                t = time.perf_counter()
                if wait_for(lambda: size(p.mailbox) > before, SLOW + 5):
                    lat[p.name].append(time.perf_counter() - t)
                wait_for(lambda: server.taken > taken, SLOW + 10)
    finally:
        for p in progs:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("Local mail latency while the runner waits %.0f s for a server's reply to the "
          "final dot: submission's return -> in the mailbox, median of %d:" % (SLOW, RUNS))
    for p in progs:
        xs = lat[p.name]
        print("   %-8s %9.1f ms median, %9.1f ms max, %d of %d arrived within %.0f s"
              % (p.name, statistics.median(xs) * 1000 if xs else float("nan"),
                 max(xs) * 1000 if xs else float("nan"), len(xs), RUNS, SLOW + 5))
    if len(progs) == 2 and lat["after"] and lat["before"]:
        print("   after/before: %.3fx" % (statistics.median(lat["after"])
                                          / statistics.median(lat["before"])))


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
