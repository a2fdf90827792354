#!/usr/bin/env python3
"""Record (bless) compat cases from real sendmail 8.17.

Usage: record.py [CASE ...]    (all cases when none are named)

Runs on a machine with Debian's sendmail-bin set up as ../shared/sendmail-recording
describes (it never runs rsendmail). For each case directory under cases/ it reads
`args` (one argument per line) and `stdin`, runs

    sendmail -Am -C<derived sendmail.cf> -oQ<private queue dir> ARGS... < stdin

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
  before    argv lines run first, each with the case's stdin (to fill the queue); a
            line `%sleep N` waits N seconds there
  files/    copied into the directory the case runs in (an aliases file, say); `@DIR@`
            in args, before and the files' text stands for that directory, written
            back as DIR
  fault     what is wrong with the smarthost instead (common.FAULTS): refused, silent,
            nxdomain, servfail, nodata, dnstimeout, nxdomain-refused
  before-fault  the same for the `before` runs only (refused, silent); the case's own
            run finds the sink (or its `fault`)
  forward   lines `LOGIN FILE [MODE [OWNER]]`: FILE (a copied file) is LOGIN's .forward
            (mode 0644 or MODE, owned by LOGIN or OWNER), in a home
            directory mounted over LOGIN's in a private mount namespace (with a fresh
            /var/mail there); `shells`: a copied file standing for /etc/shells there
`@QID@` in args stands for the id of the message `before` queued (`-qI@QID@`).
The private queue directory's path is written as QUEUEDIR and the smarthost's port as
SINKPORT; everything else is stored exactly as printed (ids, dates and host names are
normalised at compare time, see common.py).

Isolation: the script runs itself again in private network and mount namespaces
(unshare -n -m; it must run as root): only a loopback interface, /etc/resolv.conf naming
127.0.0.1, where dnsmasq answers (NXDOMAIN for common.NXDOMAINS, a refusal for other
names), so that sendmail's lookups (it canonicalises recipient domains) never leave the
machine. It starts its own sink there (SINK_STATE: its directory) and points sendmail at
the sink, or at a case's fault, through a copy of /etc/mail/sendmail.cf (SENDMAIL_CF)
whose smart host (`DSrelay:[127.0.0.1]`) and relay port (`TCP $h 2525`) are rewritten.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from common import (DEBIAN_PRIVACY, Case, Fault, Sink, as_user, chown_tree, dnsmasq_args, first_queue_id, free_port, give_to,
                    helper, locked, read_xlog)

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")
SENDMAIL = os.environ.get("SENDMAIL", "/usr/sbin/sendmail")
SENDMAIL_CF = os.environ.get("SENDMAIL_CF", "/etc/mail/sendmail.cf")
ISOLATED = "RECORD_ISOLATED"


def sendmail_version():
    out = subprocess.run([SENDMAIL, "-Am", "-d0.1", "-bv", "root"], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL).stdout
    for line in out.splitlines():
        if line.startswith("Version "):
            return "sendmail " + line.split()[1]
    raise SystemExit("cannot tell the sendmail version: is sendmail-bin installed?")


def isolate():
    """Run this script again in private network and mount namespaces (see the module
    doc), or, when already there, set them up: loopback up, /etc/resolv.conf naming
    127.0.0.1, dnsmasq on its port 53. Returns the dnsmasq process."""
    if os.environ.get(ISOLATED) != "1":
        env = dict(os.environ, **{ISOLATED: "1"})
        os.execvpe("unshare", ["unshare", "-n", "-m", "--", sys.executable,
                               os.path.abspath(__file__)] + sys.argv[1:], env)
    scratch = tempfile.mkdtemp(prefix="compat-ns-")
    resolv = os.path.join(scratch, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\n")
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    log = os.path.join(scratch, "dnsmasq.log")
    dns = subprocess.Popen(dnsmasq_args(53, log), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while "started" not in (open(log).read() if os.path.exists(log) else ""):
        if dns.poll() is not None or time.time() > deadline:
            raise SystemExit("dnsmasq did not start")
        time.sleep(0.05)
    return dns


def derived_cf(into, hosts, port, user=None, privacy=None):
    """A copy of sendmail.cf relaying to [host] on port (several: `[a]:[b]`, tried in
    turn). For a case run as a `user`,
    the access map is a copy the user may read (sendmail run with -C by a user other
    than root keeps no group to read /etc/mail/access.db, and says so before its
    greeting)."""
    with open(SENDMAIL_CF) as f:
        cf = f.read()
    if privacy is not None:
        old = "\nO PrivacyOptions=%s\n" % DEBIAN_PRIVACY
        if old not in cf:
            raise SystemExit("%s: no %r to rewrite" % (SENDMAIL_CF, old.strip()))
        cf = cf.replace(old, "\nO PrivacyOptions=%s\n" % privacy)
    if user is not None:
        for line in cf.splitlines():
            if line.startswith("Kaccess ") and os.path.exists(line.split()[-1] + ".db"):
                db = line.split()[-1]
                copy = os.path.join(into, "access")
                shutil.copyfile(db + ".db", copy + ".db")
                os.chmod(copy + ".db", 0o644)
                cf = cf.replace(line, line[:-len(db)] + copy)
    for old in ("\nDSrelay:[127.0.0.1]\n", "TCP $h 2525\n"):
        if old not in cf:
            raise SystemExit("%s: no %r to rewrite" % (SENDMAIL_CF, old.strip()))
    cf = cf.replace("\nDSrelay:[127.0.0.1]\n",
                    "\nDSrelay:%s\n" % ":".join("[%s]" % h for h in hosts))
    cf = cf.replace("TCP $h 2525\n", "TCP $h %d\n" % port)
    path = os.path.join(into, "sendmail.cf")
    with open(path, "w") as f:
        f.write(cf)
    return path


def record(case, version, sink):
    qdir = tempfile.mkdtemp(prefix="compat-q-")
    os.chmod(qdir, 0o700)
    work = tempfile.mkdtemp(prefix="compat-w-")
    case.copy_files(work)
    scratch = tempfile.mkdtemp(prefix="compat-m-")
    mounts = case.mounts(work, scratch)

    def sendmail(cmd, **kw):
        # `cmd` starts with argv[0]; with the case's mounts, the program by its path.
        if mounts:
            return subprocess.run(mounts + [SENDMAIL] + cmd[1:], **kw)
        return subprocess.run(cmd, executable=SENDMAIL, **kw)

    fault = Fault(case.fault) if case.fault else None
    hosts, port = (fault.hosts, fault.port) if fault else (["127.0.0.1"], sink.port)
    cf = derived_cf(tempfile.mkdtemp(prefix="compat-cf-"), hosts, port, case.user,
                    case.privacy)
    # A fault that records (common.RECORDING) is the case's sink.
    rec = fault.recorder if fault and fault.recorder else sink
    if case.sink_mode:
        sink.reset(case.sink_mode)
    base = ["sendmail", "-Am", "-C" + cf, "-oQ" + qdir]
    before_base, before_fault = base, None
    if case.before_fault:
        before_fault = Fault(case.before_fault)
        before_cf = derived_cf(tempfile.mkdtemp(prefix="compat-cf-"), before_fault.hosts,
                               before_fault.port, privacy=case.privacy)
        before_base = ["sendmail", "-Am", "-C" + before_cf, "-oQ" + qdir]
    case.run_before(lambda argv: sendmail(before_base + argv, input=case.stdin, cwd=work,
                                          capture_output=True, timeout=120), work)
    if before_fault:
        before_fault.stop()
        shutil.rmtree(os.path.dirname(before_cf), ignore_errors=True)
    qid = None
    if case.before:
        qid = first_queue_id(sendmail(base + ["-bp"], capture_output=True, timeout=60,
                                      stdin=subprocess.DEVNULL, cwd=work).stdout)
    # argv[0] is "sendmail", as a script calling it through PATH would give it. An SMTP
    # dialogue is driven lock-step by pace.py, because sendmail refuses commands sent
    # before its reply.
    args = case.argv(case.args, work, qid)
    # A case with a `user` file runs its command as that user (the queue stays root's).
    give_to(case.user, work, os.path.dirname(cf), qdir)
    if case.user_queue:
        chown_tree(qdir, case.user)
    user = as_user(case.user)
    if case.paced:
        run = subprocess.run(mounts + user + [sys.executable, helper("pace.py"), SENDMAIL, "-Am",
                                     "-C" + cf, "-oQ" + qdir] + args, input=case.stdin,
                             capture_output=True, timeout=120, cwd=work)
    elif user:
        run = subprocess.run(mounts + user + [SENDMAIL] + base[1:] + args, input=case.stdin,
                             capture_output=True, timeout=120, cwd=work)
    else:
        run = sendmail(base + args, input=case.stdin, capture_output=True, timeout=120,
                       cwd=work)
    if case.sink_mode:
        rec.settle(lambda: locked(qdir))
    queue = sendmail(base + ["-bp"], capture_output=True, timeout=60,
                     stdin=subprocess.DEVNULL, cwd=work)
    exp = os.path.join(case.path, "expected")
    shutil.rmtree(exp, ignore_errors=True)
    os.makedirs(exp)

    def put(fname, data):
        data = data.replace(qdir.encode(), b"QUEUEDIR").replace(work.encode(), b"DIR")
        data = data.replace(b" port %d " % port, b" port SINKPORT ")
        if case.user:
            # What only the recording's own -C and -oQ make sendmail say of a user it
            # does not trust; the replay passes neither to rsendmail that way.
            data = re.sub(rb"(?m)^X-Authentication-Warning: [^\n]*: Processed (from queue"
                          rb" QUEUEDIR|by [^ \n]+ with -C [^\n]*)\n", b"", data)
        with open(os.path.join(exp, fname), "wb") as f:
            f.write(data)

    put("exit", b"%d\n" % run.returncode)
    put("stdout", run.stdout)
    put("stderr", run.stderr)
    put("queue", queue.stdout)
    if case.sink_mode:
        put("sink", rec.transcript())
        sink.reset("ok")
    if case.xlog:
        put("xlog", read_xlog(work))
    put("version", (version + "\n").encode())
    if fault:
        fault.stop()
    shutil.rmtree(qdir, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(os.path.dirname(cf), ignore_errors=True)
    print("%-40s exit %d" % (case.name, run.returncode))


def main():
    dns = isolate()
    sink = None
    try:
        version = sendmail_version()
        state = os.environ.get("SINK_STATE") or tempfile.mkdtemp(prefix="compat-sink-")
        sink = Sink(state, free_port(), start=True)
        names = sys.argv[1:] or sorted(os.listdir(CASES))
        for n in names:
            record(Case(os.path.join(CASES, n)), version, sink)
    finally:
        if sink:
            sink.stop()
        dns.kill()
        dns.wait()


if __name__ == "__main__":
    main()
