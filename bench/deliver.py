#!/usr/bin/env python3
"""Delivery benchmark for rsendmail (run bench/run, which builds and fetches smtp-sink).

Prints, from one run:
- 1,000 queued messages to 10 domains via a smarthost (Postfix's smtp-sink on 127.0.0.1)
  drained by one queue run: wall time until the sink has all 1,000, and SMTP connections;
  the same 1,000 delivered with one connection (and one process) per message, for the
  ratio (target: >= 5x faster, <= 8 connections);
- 200 background (default mode) submissions: time until all arrived (target <= 0.3 s);
- one 50 MB message delivered: time and peak RSS of the delivering process (<= 8 MB).
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time

import peers

BIN = os.path.abspath(sys.argv[1])
SINK = os.path.abspath(sys.argv[2])
N = int(os.environ.get("BENCH_MESSAGES", "1000"))

work = tempfile.mkdtemp(prefix="rsendmail-dbench-")
atexit.register(shutil.rmtree, work, True)  # also when a step fails
os.chmod(work, 0o755)  # the runs below read their configs as other users


def Sink(name):
    return peers.Sink(SINK, work, name)


def config(name, port, extra=""):
    return peers.config(work, name, port, extra)


MSG = b"From: a@bench.example\nSubject: bench\n\n" + b"x" * 1900 + b"\n"


def queue(conf, n):
    for i in range(n):
        r = subprocess.run([BIN, "-C", conf, "-odq", "r%d@d%d.example" % (i, i % 10)], input=MSG)
        assert r.returncode == 0


def ids(conf):
    spool = os.path.join(os.path.dirname(conf), "spool")
    return sorted(n[2:] for n in os.listdir(spool) if n.startswith("qf"))


# 1. One queue run over N messages.
sink = Sink("run")
conf = config("run", sink.port)
queue(conf, N)
t = time.perf_counter()
subprocess.run([BIN, "-C", conf, "-qf"], check=True)
got = sink.wait(N)
run_s = time.perf_counter() - t
run_conns = sink.connections()
sink.stop()

# 2. The same messages, one connection and one process per message.
sink = Sink("each")
conf = config("each", sink.port)
queue(conf, N)
t = time.perf_counter()
for qid in ids(conf):
    subprocess.run([BIN, "-C", conf, "-qf", "-qI" + qid], check=True)
each_got = sink.wait(N)
each_s = time.perf_counter() - t
each_conns = sink.connections()
sink.stop()

# 3. 200 background submissions.
sink = Sink("bg")
conf = config("bg", sink.port)
t = time.perf_counter()
for i in range(200):
    subprocess.run([BIN, "-C", conf, "bg%d@d%d.example" % (i, i % 10)], input=MSG, check=True)
bg_got = sink.wait(200, 60)
bg_s = time.perf_counter() - t
sink.stop()

# 4. One 50 MB message.
sink = Sink("big")
conf = config("big", sink.port)
big = os.path.join(work, "big.eml")
with open(big, "wb") as f:
    f.write(b"Subject: big\n\n")
    line = b"y" * 76 + b"\n"
    for _ in range(50 * 1024 * 1024 // len(line)):
        f.write(line)
with open(big, "rb") as f:
    subprocess.run([BIN, "-C", conf, "-odq", "big@d0.example"], stdin=f, check=True)
t = time.perf_counter()
r = subprocess.run(["/usr/bin/time", "-f", "%M", BIN, "-C", conf, "-qf"], stderr=subprocess.PIPE,
                   text=True, check=True)
big_s = time.perf_counter() - t
big_rss = int(r.stderr.strip().splitlines()[-1])
big_got = sink.wait(1)
sink.stop()

print("rsendmail delivery benchmark (smtp-sink on 127.0.0.1)")
print("%d messages, 10 domains, one queue run:     %.2f s, %d connections, %d arrived  (target <= 8 connections)"
      % (N, run_s, run_conns, got))
print("same, one connection+process per message: %.2f s, %d connections, %d arrived"
      % (each_s, each_conns, each_got))
print("queue run speed-up over one per message:   %.1fx  (target >= 5x)" % (each_s / run_s))
print("200 background submissions until arrived:  %.2f s, %d arrived  (target <= 0.3 s)" % (bg_s, bg_got))
print("50 MB message delivered:                    %.2f s, peak RSS %.1f MB, %d arrived  (target <= 8 MB)"
      % (big_s, big_rss / 1024, big_got))
shutil.rmtree(work, ignore_errors=True)
