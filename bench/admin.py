#!/usr/bin/env python3
"""Queue administration benchmark (run bench/run).

Prints, for a queue of BENCH_ADMIN (100) entries to a relay that refuses connections,
filled afresh before each command, interleaved over BENCH_ADMIN_ROUNDS (5) rounds:
- `rsendmail-admin delete ID...` of every entry: entries per second;
- `rsendmail-admin bounce ID...` of every entry (each returned, its report queued and
  handed to a delivery): entries per second;
- their ratio (bounce / delete), with the single rounds beside the medians;
- with strace, one bounce round's fsyncs and process starts per entry.
"""
import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from peers import config, free_port

BIN = os.path.abspath(sys.argv[1])
ADMIN = os.path.join(os.path.dirname(BIN), "rsendmail-admin")
N = int(os.environ.get("BENCH_ADMIN", "30" if os.environ.get("BENCH_QUICK") else "100"))
ROUNDS = int(os.environ.get("BENCH_ADMIN_ROUNDS", "3" if os.environ.get("BENCH_QUICK") else "5"))

work = tempfile.mkdtemp(prefix="rsendmail-abench-")
atexit.register(shutil.rmtree, work, True)  # also when a step fails
os.chmod(work, 0o755)


def fill(conf, n):
    """Queue `n` messages (-odq, one -bs session); their IDs."""
    spool = os.path.join(os.path.dirname(conf), "spool")
    before = set(os.listdir(spool))
    out = []
    for i in range(n):
        out.append("MAIL FROM:<bench@bench.example>\r\nRCPT TO:<r%d@example.org>\r\nDATA\r\n"
                   "Subject: %d\r\n\r\nbody %d\r\n.\r\n" % (i, i, i))
    data = ("HELO bench\r\n" + "".join(out) + "QUIT\r\n").encode()
    subprocess.run([BIN, "-C", conf, "-odq", "-bs"], input=data, capture_output=True,
                   check=True)
    return sorted(f[2:] for f in set(os.listdir(spool)) - before if f.startswith("qf"))


def empty(conf):
    subprocess.run([ADMIN, "-C", conf, "delete", "--all"], capture_output=True)


def timed(conf, cmd, ids, prefix=(), check=True):
    t = time.monotonic()
    p = subprocess.run(list(prefix) + [ADMIN, "-C", conf, cmd] + ids, capture_output=True)
    took = time.monotonic() - t
    if check and p.returncode != 0:
        raise SystemExit("%s: exit %d: %s" % (cmd, p.returncode, p.stderr[-500:]))
    return took


def main():
    # A relay nothing listens on: the reports' deliveries are refused at once.
    conf = config(work, "q", free_port())
    rates = {"delete": [], "bounce": []}
    for r in range(ROUNDS):
        order = ["delete", "bounce"] if r % 2 == 0 else ["bounce", "delete"]
        for cmd in order:
            empty(conf)
            ids = fill(conf, N)
            rates[cmd].append(len(ids) / timed(conf, cmd, ids))
    empty(conf)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("queue administration, %d entries, %d rounds (entries per second):" % (N, ROUNDS))
    for k in ("delete", "bounce"):
        print("  %-6s median %8.1f  rounds %s" % (k, med[k], " ".join("%.1f" % x for x in rates[k])))
    print("  bounce / delete: %.3fx" % (med["bounce"] / med["delete"]))
    if shutil.which("strace"):
        ids = fill(conf, N)
        out = os.path.join(work, "strace")
        # (Traced, a deliverer may be too slow for some entries, which then stay
        # marked for the next run: the calls are counted all the same.)
        timed(conf, "bounce", ids, ["strace", "-f", "-c", "-o", out], check=False)
        calls = {}
        for line in open(out):
            f = line.split()
            if len(f) >= 5 and f[-1].isidentifier() and f[3].isdigit():
                calls[f[-1]] = int(f[3])
        print("  bounce, per entry: %.1f fsync, %.1f fdatasync, %.1f execve (process starts)"
              % tuple(calls.get(c, 0) / len(ids) for c in ("fsync", "fdatasync", "execve")))
        empty(conf)


main()
