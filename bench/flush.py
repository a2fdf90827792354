#!/usr/bin/env python3
"""Selective flush and SMTP injection benchmark (run bench/run).

Prints, from one run (figures are noisy; compare the ratios):
- a queue of 20,000 messages over 1,000 domains (queued with -odq through one -bs
  session), and a queue of 100: `-qf -qR@target.example` for the one domain with 10
  messages, delivered to smtp-sink (a smarthost on 127.0.0.1): the median time until
  those 10 have arrived, for each queue size, and their ratio
  (targets: <= 30 ms, and within 1.5x of each other);
- the same through ETRN on a -bd daemon (time from the ETRN command until all 10
  arrived);
- 1,000 messages injected over 4 concurrent SMTP sessions into -bd with -odq:
  messages per second (and for one session, for the ratio).
"""
import atexit
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from peers import Sink, config, free_port, wait_port

BIN = os.path.abspath(sys.argv[1])
SINK = os.path.abspath(sys.argv[2])
BIG = int(os.environ.get("BENCH_FLUSH_QUEUE", "20000"))
REPS = int(os.environ.get("BENCH_FLUSH_REPS", "7"))

work = tempfile.mkdtemp(prefix="rsendmail-fbench-")
atexit.register(shutil.rmtree, work, True)  # also when a step fails
os.chmod(work, 0o755)


def start_daemon(conf):
    """`-bD -odq` on a free port, added to `conf`: (process, port)."""
    port = free_port()
    with open(conf, "a") as f:
        f.write("O DaemonPortOptions=Port=%d,Addr=127.0.0.1\n" % port)
    d = subprocess.Popen([BIN, "-C", conf, "-bD", "-odq"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL)
    wait_port(port)
    return d, port


def inject_bs(conf, recipients):
    """Queue one message per recipient through a single -bs session (-odq)."""
    out = []
    for i, r in enumerate(recipients):
        out.append("MAIL FROM:<bench@bench.example>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                   "Subject: %d\r\n\r\nbody %d\r\n.\r\n" % (r, i, i))
    data = ("HELO bench\r\n" + "".join(out) + "QUIT\r\n").encode()
    p = subprocess.run([BIN, "-C", conf, "-odq", "-bs"], input=data, capture_output=True)
    accepted = p.stdout.count(b"Message accepted for delivery")
    if accepted != len(recipients):
        raise SystemExit("injection accepted %d of %d" % (accepted, len(recipients)))


def queue_of(conf, total):
    others = ["u%d@d%04d.example" % (i, i % 999) for i in range(total - 10)]
    inject_bs(conf, others)
    inject_bs(conf, ["t%d@target.example" % i for i in range(10)])


def timed_flush(conf, sink, how):
    """Re-queue 10 for target.example, flush them, return seconds until all arrived."""
    inject_bs(conf, ["t%d@target.example" % i for i in range(10)])
    before = sink.count()
    t0 = time.perf_counter()
    how()
    while sink.count() < before + 10:
        time.sleep(0.0005)
        if time.perf_counter() - t0 > 30:
            raise SystemExit("the 10 messages never arrived")
    return time.perf_counter() - t0


def qr(conf):
    return lambda: subprocess.run([BIN, "-C", conf, "-qf", "-qR@target.example"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def main():
    sink = Sink(SINK, work, "sink", verbose=False)
    results = {}
    for name, size in [("big", BIG), ("small", 100)]:
        conf = config(work, name, sink.port, "MAILLOG %s/%s.log\n" % (work, name))
        # target.example has its own list in the index, for ETRN (FastFlushDomains).
        with open(conf, "a") as f:
            f.write("O FastFlushDomains=target.example\n")
        t0 = time.perf_counter()
        queue_of(conf, size)
        built = time.perf_counter() - t0
        # The first flush delivers the 10 queued with the rest; then REPS timed ones.
        timed_flush(conf, sink, qr(conf))
        times = [timed_flush(conf, sink, qr(conf)) for _ in range(REPS)]
        results[name] = statistics.median(times)
        left = len([f for f in os.listdir(os.path.join(work, name, "spool")) if f.startswith("qf")])
        print("queue of %6d (built in %5.1f s via -bs): -qR@target.example, 10 arrive in "
              "%6.1f ms median of %d  (%d entries left queued)"
              % (size, built, results[name] * 1000, REPS, left))
    ratio = results["big"] / results["small"]
    print("ratio %d entries / 100 entries: %.2fx  (target <= 1.5x; each <= 30 ms: %s)"
          % (BIG, ratio, "yes" if max(results.values()) <= 0.030 else "no"))

    # ETRN through the daemon, on the big queue.
    conf = os.path.join(work, "big", "rsendmail.conf")
    d, port = start_daemon(conf)
    s = smtplib.SMTP("127.0.0.1", port)
    s.ehlo("bench")
    times = [timed_flush(conf, sink, lambda: s.docmd("ETRN", "target.example"))
             for _ in range(REPS)]
    s.quit()
    print("ETRN target.example on the %d-entry queue: 10 arrive in %.1f ms median"
          % (BIG, statistics.median(times) * 1000))
    d.terminate()
    d.wait()

    # SMTP injection into -bd -odq.
    def inject_rate(sessions, total):
        conf = config(work, "inject%d" % sessions, sink.port,
                      "MAILLOG %s/inject%d.log\n" % (work, sessions))
        d, port = start_daemon(conf)
        msg = "Subject: inject\r\n\r\n" + "x" * 2000 + "\r\n"

        def one(n):
            c = smtplib.SMTP("127.0.0.1", port)
            c.ehlo("bench")
            for i in range(n):
                c.sendmail("bench@bench.example", ["r%d@dest.example" % i], msg)
            c.quit()

        threads = [threading.Thread(target=one, args=(total // sessions,))
                   for _ in range(sessions)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        el = time.perf_counter() - t0
        d.terminate()
        d.wait()
        n = len([f for f in os.listdir(os.path.join(work, "inject%d" % sessions, "spool"))
                 if f.startswith("qf")])
        return total / el, n

    r4, n4 = inject_rate(4, 1000)
    r1, n1 = inject_rate(1, 1000)
    print("SMTP injection into -bd -odq, 2 KB messages: 4 sessions %.0f msg/s (%d queued), "
          "1 session %.0f msg/s (%d queued), ratio %.2fx" % (r4, n4, r1, n1, r4 / r1))
    sink.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
