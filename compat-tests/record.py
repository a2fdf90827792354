#!/usr/bin/env python3
"""Record (bless) compat cases from real sendmail 8.17.

Usage: record.py [CASE ...]    (all cases when none are named)

Runs on a machine with Debian's sendmail-bin set up as ../shared/sendmail-recording
describes (it never runs rsendmail). For each case directory under cases/ it reads
`args` (one argument per line) and `stdin`, runs

    sendmail -Am -oQ<private queue dir> ARGS... < stdin

and writes what real sendmail did into the case's `expected/`:
  exit      the exit status
  stdout    standard output
  stderr    standard error
  queue     `sendmail -Am -oQ<dir> -bp` afterwards (the queue effect)
  sink      (cases with a `sink` file) what the recording sink received
  version   the sendmail version that produced them
Optional files in a case:
  pace      an `-bs` dialogue: run lock-step through pace.py; stdout is the transcript
  sink      the sink's mode (ok, rcpt4xx, rcpt5xx, data4xx, data5xx, ...): the case
            delivers; the recording waits until delivery is over and keeps the transcript
  before    argv lines run first, each with the case's stdin (to fill the queue)
  files/    copied into the directory the case runs in (an aliases file, say); `@DIR@`
            in args and before stands for that directory, written back as DIR
The private queue directory's path is written as QUEUEDIR and the sink's port as
SINKPORT; everything else is stored exactly as printed (ids, dates and host names are
normalised at compare time, see common.py).

The sink is the one already running for sendmail's relay (sink.py STATE PORT, started by
hand as the recording README says); SINK_STATE and SINK_PORT say where (default
/tmp/rec and 2525).
"""
import os
import shutil
import subprocess
import sys
import tempfile

from common import Case, Sink, helper, locked

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")
SENDMAIL = os.environ.get("SENDMAIL", "/usr/sbin/sendmail")
SINK_STATE = os.environ.get("SINK_STATE", "/tmp/rec")
SINK_PORT = int(os.environ.get("SINK_PORT", "2525"))


def sendmail_version():
    out = subprocess.run([SENDMAIL, "-Am", "-d0.1", "-bv", "root"], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL).stdout
    for line in out.splitlines():
        if line.startswith("Version "):
            return "sendmail " + line.split()[1]
    raise SystemExit("cannot tell the sendmail version: is sendmail-bin installed?")


def record(case, version, sink):
    qdir = tempfile.mkdtemp(prefix="compat-q-")
    os.chmod(qdir, 0o700)
    work = tempfile.mkdtemp(prefix="compat-w-")
    case.copy_files(work)
    if case.sink_mode:
        sink.reset(case.sink_mode)
    base = ["sendmail", "-Am", "-oQ" + qdir]
    for argv in case.before:
        subprocess.run(base + case.argv(argv, work), executable=SENDMAIL, input=case.stdin, cwd=work,
                       capture_output=True, timeout=120)
    # argv[0] is "sendmail", as a script calling it through PATH would give it. An SMTP
    # dialogue is driven lock-step by pace.py, because sendmail refuses commands sent
    # before its reply.
    args = case.argv(case.args, work)
    if case.paced:
        run = subprocess.run([sys.executable, helper("pace.py"), SENDMAIL, "-Am", "-oQ" + qdir]
                             + args, input=case.stdin, capture_output=True, timeout=120,
                             cwd=work)
    else:
        run = subprocess.run(base + args, executable=SENDMAIL, input=case.stdin,
                             capture_output=True, timeout=120, cwd=work)
    if case.sink_mode:
        sink.settle(lambda: locked(qdir))
    queue = subprocess.run(base + ["-bp"], executable=SENDMAIL, capture_output=True,
                           timeout=60, stdin=subprocess.DEVNULL, cwd=work)
    exp = os.path.join(case.path, "expected")
    shutil.rmtree(exp, ignore_errors=True)
    os.makedirs(exp)

    def put(fname, data):
        data = data.replace(qdir.encode(), b"QUEUEDIR").replace(work.encode(), b"DIR")
        data = data.replace(b" port %d " % SINK_PORT, b" port SINKPORT ")
        with open(os.path.join(exp, fname), "wb") as f:
            f.write(data)

    put("exit", b"%d\n" % run.returncode)
    put("stdout", run.stdout)
    put("stderr", run.stderr)
    put("queue", queue.stdout)
    if case.sink_mode:
        put("sink", sink.transcript())
        sink.reset("ok")
    put("version", (version + "\n").encode())
    shutil.rmtree(qdir, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    print("%-40s exit %d" % (case.name, run.returncode))


def main():
    version = sendmail_version()
    sink = Sink(SINK_STATE, SINK_PORT, start=False)
    names = sys.argv[1:] or sorted(os.listdir(CASES))
    for n in names:
        record(Case(os.path.join(CASES, n)), version, sink)


if __name__ == "__main__":
    main()
