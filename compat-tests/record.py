#!/usr/bin/env python3
"""Record (bless) compat cases from real sendmail 8.17.

Usage: record.py [CASE ...]    (all cases when none are named)

Runs on a machine with Debian's sendmail-bin set up as ../shared/sendmail-recording
describes (it never runs rsendmail). For each case directory under cases/ it reads
`args` (one argument per line) and `stdin`, runs

    sendmail -Am -oQ<private queue dir> ARGS... < stdin

(through pace.py, lock-step, when the case holds a `pace` file: an `-bs` dialogue whose
stdout is then the S:/C: transcript) and writes what real sendmail did into the case's
`expected/`:
  exit      the exit status
  stdout    standard output
  stderr    standard error
  queue     `sendmail -Am -oQ<dir> -bp` afterwards (the queue effect)
  version   the sendmail version that produced them
The private queue directory's path is written as QUEUEDIR; everything else is stored
exactly as printed (ids, dates and host names are normalised at compare time, see
normalise.py).
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")
SENDMAIL = os.environ.get("SENDMAIL", "/usr/sbin/sendmail")


def sendmail_version():
    out = subprocess.run([SENDMAIL, "-Am", "-d0.1", "-bv", "root"], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL).stdout
    for line in out.splitlines():
        if line.startswith("Version "):
            return "sendmail " + line.split()[1]
    raise SystemExit("cannot tell the sendmail version: is sendmail-bin installed?")


def record(name, version):
    case = os.path.join(CASES, name)
    with open(os.path.join(case, "args")) as f:
        args = [l.rstrip("\n") for l in f if l.rstrip("\n") != ""]
    stdin = b""
    if os.path.exists(os.path.join(case, "stdin")):
        with open(os.path.join(case, "stdin"), "rb") as f:
            stdin = f.read()
    qdir = tempfile.mkdtemp(prefix="compat-q-")
    os.chmod(qdir, 0o700)
    # argv[0] is "sendmail", as a script calling it through PATH would give it. An SMTP
    # dialogue (a `pace` file in the case) is driven lock-step by pace.py, because
    # sendmail refuses commands sent before its reply.
    if os.path.exists(os.path.join(case, "pace")):
        run = subprocess.run([sys.executable, os.path.join(HERE, "pace.py"), SENDMAIL,
                              "-Am", "-oQ" + qdir] + args,
                             input=stdin, capture_output=True, timeout=120)
    else:
        run = subprocess.run(["sendmail", "-Am", "-oQ" + qdir] + args, executable=SENDMAIL,
                             input=stdin, capture_output=True, timeout=120)
    queue = subprocess.run(["sendmail", "-Am", "-oQ" + qdir, "-bp"], executable=SENDMAIL,
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    exp = os.path.join(case, "expected")
    os.makedirs(exp, exist_ok=True)

    def put(fname, data):
        with open(os.path.join(exp, fname), "wb") as f:
            f.write(data.replace(qdir.encode(), b"QUEUEDIR"))

    put("exit", b"%d\n" % run.returncode)
    put("stdout", run.stdout)
    put("stderr", run.stderr)
    put("queue", queue.stdout)
    put("version", (version + "\n").encode())
    subprocess.run(["rm", "-rf", qdir])
    print("%-40s exit %d" % (name, run.returncode))


def main():
    version = sendmail_version()
    names = sys.argv[1:] or sorted(os.listdir(CASES))
    for n in names:
        record(n, version)


if __name__ == "__main__":
    main()
