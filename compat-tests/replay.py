#!/usr/bin/env python3
"""Replay the compat cases recorded from real sendmail 8.17 against rsendmail.

Usage: replay.py --bin PATH/TO/rsendmail [--cases DIR] [CASE ...]

For each case: a fresh spool and config (SPOOLDIR in a temporary directory, MAILNAME
vm.example.test, SMARTHOST 127.0.0.1 as in the recording set-up), then `sendmail -C conf ARGS... < stdin` through a symlink named
`sendmail` (argv[0] "sendmail", as scripts call it), then `sendmail -C conf -bp`.
Exit status, stdout, stderr and the queue listing are compared with the expected files
after the normalisation below is applied to both sides. Prints a diff for every failing
case and ends with the line `N passed, N failed`; exits 1 when any case failed.

Normalisation (all of it; nothing else is forgiven):
- 14-character queue ids                  -> QUEUEID
- ctime-style dates in listings            -> DATE
- the queue directory path                 -> QUEUEDIR (done at record time for sendmail)
- the host name vm.example.test            -> HOST
- the `-C`/`-oQ` arguments each side adds are not part of the case
- in SMTP dialogues (cases with a `pace` file), the 220 greeting line -> `S: 220 GREETING`
  (it names the program, its version and the time)
"""
import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

QID = re.compile(rb"\b[0-9A-Za-x]{8}[0-9]{6}\b")
CTIME = re.compile(rb"(Sun|Mon|Tue|Wed|Thu|Fri|Sat) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-9][0-9] [0-9]{2}:[0-9]{2}")


GREETING = re.compile(rb"^S: 220 [^\r\n]*", re.M)


def normalise(data: bytes) -> bytes:
    data = GREETING.sub(b"S: 220 GREETING", data)
    data = QID.sub(b"QUEUEID", data)
    data = CTIME.sub(b"DATE", data)
    data = data.replace(b"vm.example.test", b"HOST")
    return data


def run_case(binary, case_dir, name):
    with open(os.path.join(case_dir, "args")) as f:
        args = [l.rstrip("\n") for l in f if l.rstrip("\n") != ""]
    stdin = b""
    p = os.path.join(case_dir, "stdin")
    if os.path.exists(p):
        with open(p, "rb") as f:
            stdin = f.read()
    work = tempfile.mkdtemp(prefix="compat-")
    try:
        spool = os.path.join(work, "spool")
        conf = os.path.join(work, "rsendmail.conf")
        with open(conf, "w") as f:
            f.write("SPOOLDIR %s\nMAILNAME vm.example.test\nSMARTHOST 127.0.0.1\n" % spool)
        link = os.path.join(work, "sendmail")
        os.symlink(os.path.abspath(binary), link)
        env = dict(os.environ, LC_ALL="C")
        if os.path.exists(os.path.join(case_dir, "pace")):
            # The same lock-step driver as the recording (pace.py runs argv as given,
            # so the link's name is argv[0]).
            run = subprocess.run([sys.executable, os.path.join(HERE, "pace.py"), link,
                                  "-C", conf] + args, input=stdin, capture_output=True,
                                 timeout=60, env=env)
        else:
            run = subprocess.run(["sendmail", "-C", conf] + args, executable=link,
                                 input=stdin, capture_output=True, timeout=60, env=env)
        queue = subprocess.run(["sendmail", "-C", conf, "-bp"], executable=link,
                               capture_output=True, timeout=60, env=env,
                               stdin=subprocess.DEVNULL)
        actual = {
            "exit": b"%d\n" % run.returncode,
            "stdout": run.stdout.replace(spool.encode(), b"QUEUEDIR"),
            "stderr": run.stderr.replace(spool.encode(), b"QUEUEDIR"),
            "queue": queue.stdout.replace(spool.encode(), b"QUEUEDIR"),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    diffs = []
    for key, got in actual.items():
        with open(os.path.join(case_dir, "expected", key), "rb") as f:
            want = f.read()
        a, b = normalise(want), normalise(got)
        if a != b:
            d = difflib.unified_diff(a.decode("utf-8", "replace").splitlines(True),
                                     b.decode("utf-8", "replace").splitlines(True),
                                     "sendmail/" + key, "rsendmail/" + key)
            diffs.append("".join(d))
    return diffs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--cases", default=os.path.join(HERE, "cases"))
    ap.add_argument("names", nargs="*")
    o = ap.parse_args()
    names = o.names or sorted(os.listdir(o.cases))
    passed = failed = 0
    for n in names:
        case_dir = os.path.join(o.cases, n)
        with open(os.path.join(case_dir, "expected", "version")) as f:
            version = f.read().strip()
        if not version.startswith("sendmail 8.17"):
            print("%s: expected files do not come from sendmail 8.17 (%s)" % (n, version))
            failed += 1
            continue
        diffs = run_case(o.bin, case_dir, n)
        if diffs:
            failed += 1
            print("FAIL %s" % n)
            for d in diffs:
                sys.stdout.write(d if d.endswith("\n") else d + "\n")
        else:
            passed += 1
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
