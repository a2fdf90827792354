#!/usr/bin/env python3
"""Recipient index size on a host that only flushes (run bench/run, or by hand:
bench/index_growth.py BIN SINK).

BENCH_INDEX_CYCLES (1,000) cycles of: one message to 5 recipients queued with -odq,
then `-qf -qR@dial.example` delivering it to smtp-sink; never a full queue run. Prints
the size of index/recipients every fifth of the way, then the instructions (callgrind,
with the programs it runs; median of 3) of one `-qf -qR@nomatch.example` run, which
searches the whole recipient index and selects nothing.
"""
import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from peers import Sink, config

BIN = os.path.abspath(sys.argv[1])
SINK = os.path.abspath(sys.argv[2])
CYCLES = int(os.environ.get("BENCH_INDEX_CYCLES", "1000"))

work = tempfile.mkdtemp(prefix="rsendmail-ibench-")
atexit.register(shutil.rmtree, work, True)
os.chmod(work, 0o755)
MSG = b"Subject: cycle\n\nbody\n"


def run(conf, args, stdin=b""):
    p = subprocess.run([BIN, "-C", conf] + args, input=stdin, capture_output=True)
    if p.returncode != 0:
        raise SystemExit("%s: exit %d: %s" % (args, p.returncode, p.stderr.decode()))


def instructions(conf, args):
    """Instructions of `BIN -C conf ARGS` and the programs it runs (callgrind)."""
    p = subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=yes",
                        "--callgrind-out-file=/dev/null", BIN, "-C", conf] + args,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    counts = [int(line.split(":")[1].strip()) for line in p.stderr.splitlines()
              if "Collected :" in line]
    if not counts:
        raise SystemExit("callgrind gave no count: " + p.stderr)
    return sum(counts)


def main():
    sink = Sink(SINK, work, "sink", verbose=False)
    conf = config(work, "dial", sink.port, "MAILLOG %s/dial.log\n" % work)
    index = os.path.join(work, "dial", "spool", "index", "recipients")
    for cycle in range(1, CYCLES + 1):
        rcpts = ["user-%d-%d@dial.example" % (cycle, i) for i in range(5)]
        run(conf, ["-odq"] + rcpts, MSG)
        run(conf, ["-qf", "-qR@dial.example"])
        if cycle % max(1, CYCLES // 5) == 0:
            print("after %5d flush cycles: index/recipients %8d octets" %
                  (cycle, os.path.getsize(index)))
    counts = [instructions(conf, ["-qf", "-qR@nomatch.example"]) for _ in range(3)]
    print("-qf -qR@nomatch.example after %d cycles: %.2f M instructions (median of 3)"
          % (CYCLES, statistics.median(counts) / 1e6))


main()
