#!/usr/bin/env python3
"""Submission benchmark for rsendmail (run bench/run, which builds the release binary).

Prints, from one run on this machine (figures are noisy; ratios within a run are not):
- floor: starting a trivial process (/bin/true) plus write + fsync + rename + directory
  fsync of 2 KB, the least a durable submission can cost;
- median latency of one `-odq` submission of a 2 KB message (RUNS runs);
- 1,000 sequential submissions, messages per second;
- a 50 MB message: time and peak RSS; peak RSS of the 2 KB submission;
each with its ratio to the floor and the target from the issue.
"""
import atexit
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/rsendmail")
RUNS = int(os.environ.get("BENCH_RUNS", "101"))
SEQ = int(os.environ.get("BENCH_SEQ", "1000"))

work = tempfile.mkdtemp(prefix="rsendmail-bench-")
atexit.register(shutil.rmtree, work, True)  # also when a step fails
spool = os.path.join(work, "spool")
os.mkdir(spool, 0o700)  # rsendmail makes no spool a SPOOLDIR names
conf = os.path.join(work, "rsendmail.conf")
with open(conf, "w") as f:
    f.write("SPOOLDIR %s\nMAILNAME bench.example\n" % spool)

msg2k = os.path.join(work, "2k.eml")
with open(msg2k, "wb") as f:
    body = b"".join(b"line %04d of a two kilobyte message, padded to length.....\n" % i for i in range(32))
    f.write(b"From: a@bench.example\nTo: b@bench.example\nSubject: bench\n\n" + body[:2048 - 60])

big = os.path.join(work, "50m.eml")
with open(big, "wb") as f:
    f.write(b"Subject: big\n\n")
    line = b"x" * 76 + b"\n"
    for _ in range(50 * 1024 * 1024 // len(line)):
        f.write(line)


def submit(path):
    with open(path, "rb") as stdin:
        r = subprocess.run([BIN, "-C", conf, "-odq", "b@dest.example"], stdin=stdin,
                           stdout=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SystemExit("submission failed: %d" % r.returncode)


def timed(fn, *a):
    t = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t


def floor_once(i):
    t = time.perf_counter()
    subprocess.run(["/bin/true"])
    d = os.path.join(work, "floor")
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, "t%d" % i)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"x" * 2048)
    os.fsync(fd)
    os.close(fd)
    os.rename(tmp, os.path.join(d, "f%d" % i))
    dfd = os.open(d, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    return time.perf_counter() - t


def peak_rss_kb(path):
    """Peak RSS of one submission. GNU time forks the submission from its own small
    process and reports that child's maximum (a child forked from Python would carry
    Python's high-water mark through exec)."""
    with open(path, "rb") as stdin:
        r = subprocess.run(["/usr/bin/time", "-f", "%M", BIN, "-C", conf, "-odq",
                            "b@dest.example"], stdin=stdin, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit("submission failed: " + r.stderr)
    return int(r.stderr.strip().splitlines()[-1])


def baseline_rss_kb():
    """Peak RSS of /bin/true measured the same way, for comparison."""
    r = subprocess.run(["/usr/bin/time", "-f", "%M", "/bin/true"], stderr=subprocess.PIPE,
                       text=True)
    return int(r.stderr.strip().splitlines()[-1])


# Warm up caches.
for i in range(5):
    submit(msg2k)
    floor_once(1000 + i)

floor = statistics.median(floor_once(i) for i in range(RUNS))
lat = statistics.median(timed(submit, msg2k) for _ in range(RUNS))
t0 = time.perf_counter()
for _ in range(SEQ):
    submit(msg2k)
seq_s = time.perf_counter() - t0
rate = SEQ / seq_s
rss_small = peak_rss_kb(msg2k)
t0 = time.perf_counter()
rss_big = peak_rss_kb(big)
big_s = time.perf_counter() - t0

print("rsendmail submission benchmark (%s)" % BIN)
print("floor (/bin/true + durable 2 KB write), median of %d: %.3f ms" % (RUNS, floor * 1e3))
print("-odq 2 KB submission, median of %d:       %.3f ms  = %.2fx floor  (target <= 2x)" % (RUNS, lat * 1e3, lat / floor))
print("%d sequential submissions:             %.0f msg/s (%.2f s)  (target >= 1000/s)  = %.2fx floor rate" % (SEQ, rate, seq_s, rate * floor))
print("50 MB message:                           %.2f s, peak RSS %.1f MB  (target <= 8 MB)" % (big_s, rss_big / 1024))
print("2 KB message peak RSS:                   %.1f MB  (target <= 4 MB; /bin/true: %.1f MB)" % (rss_small / 1024, baseline_rss_kb() / 1024))
shutil.rmtree(work, ignore_errors=True)
