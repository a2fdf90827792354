#!/usr/bin/env python3
"""Replay the compat cases recorded from real sendmail 8.17 against rsendmail.

Usage: replay.py --bin PATH/TO/rsendmail [--cases DIR] [CASE ...]

For each case (record.py describes the files): a fresh spool (made here, 2770, as an
install makes it) and config (SPOOLDIR in a temporary directory, MAILNAME vm.example.test, SMARTHOST 127.0.0.1 and the sink's PORT
as in the recording set-up, and the PrivacyOptions of Debian's sendmail.cf, whose
`nobodyreturn` makes bounces return the header only), the case's `before` runs, then `sendmail -C conf ARGS... <
stdin` through a symlink named `sendmail` (argv[0] "sendmail", as scripts call it), in a
directory holding the case's `files/`; when the case delivers, the wait until delivery is
over; then `sendmail -C conf -bp`. Exit status, stdout, stderr, the queue listing and what
the sink received are compared with the expected files after the normalisation below is
applied to both sides. Prints a diff for every failing case and ends with the line
`N passed, N failed`; exits 1 when any case failed.

Normalisation (all of it, in common.py; nothing else is forgiven):
- 14-character queue ids (also a report's id derived from its original's) -> QUEUEID
- ctime-style dates in listings (also the 12-character one of `-bp -v`) and RFC 5322
  dates in headers -> DATE
- the time stamp of a Message-Id           -> STAMP
- the queue directory path                 -> QUEUEDIR (done at record time for sendmail)
- the directory the case runs in (`@DIR@`) -> DIR (likewise)
- the smarthost's port (the sink's, or a fault's) -> SINKPORT (likewise)
- the host name vm.example.test            -> HOST
- the program and version in `Received: ... by HOST (...)` -> (VERSION)
- `SIZE=` values in MAIL commands          -> SIZE=N
- the sink's queue id in its replies (`queued as SINK7`) -> SINKID
- in SMTP dialogues (cases with a `pace` file), the 220 greeting line -> `S: 220 GREETING`
  (it names the program, its version and the time)
- the `-C`/`-oQ` arguments each side adds are not part of the case
- in what the sink received, header fields (a message's, a MIME part's, a returned
  header's) are compared unfolded with runs of blanks made one (`relax_headers`):
  where a field is folded may differ, what it says may not

A case with a `fault` file points the smarthost at that fault instead of the sink
(common.FAULTS): a closed loopback port, a listener that never answers, or a name that
dnsmasq answers NXDOMAIN for or refuses; the name faults run rsendmail in a private
network namespace (unshare -n, so root) with `RESOLVER` naming that dnsmasq. `@QID@` in
args stands for the id of the message the case's `before` queued.

Cases recorded from sendmail where rsendmail differs on purpose live in
`differences/` (DIFFERENCES.md gives each reason); `--cases differences` shows those
diffs. With `--differ`, a case passes when it differs in at least one part and only in the
parts its `differs` file names (a case without one fails): what is documented still
differs, and nothing else does. `--write-differs` writes each case's `differs` from the
parts that differ now.
"""
import argparse
import difflib
import os
import shutil
import subprocess
import sys
import tempfile

from common import (DEBIAN_PRIVACY, Case, Fault, Namespace, Sink, as_user, chown_tree, first_queue_id, free_port, give_to,
                    as_setgid_user, fit_group,
                    helper, locked, normalise, normalise_xlog, read_xlog, relax_headers)

HERE = os.path.dirname(os.path.abspath(__file__))


def run_case(binary, case, sink):
    # The directory the case runs in (`work/cwd`, `@DIR@`) is as long as the one the
    # recording ran in (record.py's `compat-w-XXXXXXXX`), so that a text holding it and
    # cut to a width (mailq's reason, 60 characters) is cut at the same place.
    work = tempfile.mkdtemp(prefix="cmpt-")
    # Searchable by all, as the recording's directory was: an `:include:` file the
    # aliases name is read, and a `|@DIR@/prog` of theirs run, with DefaultUser's rights.
    os.chmod(work, 0o755)
    fault = Fault(case.fault) if case.fault else None
    ns = None
    before_fault = None
    try:
        spool = os.path.join(work, "spool")
        # Made as an install makes it (rsendmail makes no spool a SPOOLDIR names).
        os.mkdir(spool)
        os.chown(spool, 0, fit_group())
        os.chmod(spool, 0o2770)
        conf = os.path.join(work, "rsendmail.conf")
        hosts, port = (fault.hosts, fault.port) if fault else (["127.0.0.1"], sink.port)
        # A name fault: rsendmail runs in a network namespace of its own with dnsmasq,
        # the only name server it can reach (RESOLVER).
        prefix = []
        if fault and fault.by_name:
            ns = Namespace()
            dns_port = free_port()
            ns.start_dns(dns_port, work)
            prefix = ns.prefix
        def write_conf(hosts, port):
            with open(conf, "w") as f:
                f.write("SPOOLDIR %s\nMAILNAME vm.example.test\nSMARTHOST %s\nPORT %d\n"
                        % (spool, " ".join(hosts), port))
                if ns:
                    f.write("RESOLVER 127.0.0.1:%d\n" % dns_port)
                # Debian's sendmail.cf, which the recording used, says this.
                f.write("O PrivacyOptions=%s\n" % (case.privacy or DEBIAN_PRIVACY))
                # And this (the uid `mailq -v` shows for an alias's members).
                f.write("O DefaultUser=mail:mail\n")

        if case.before_fault:
            before_fault = Fault(case.before_fault)
            write_conf(before_fault.hosts, before_fault.port)
        else:
            write_conf(hosts, port)
        link = os.path.join(work, "sendmail")
        os.symlink(os.path.abspath(binary), link)
        run_dir = os.path.join(work, "cwd")
        os.mkdir(run_dir)
        case.copy_files(run_dir)
        # The case's `.forward` files and /etc/shells, in a mount namespace of its own.
        scratch = os.path.join(work, "mounts")
        os.mkdir(scratch)
        prefix = prefix + case.mounts(run_dir, scratch)
        env = dict(os.environ, LC_ALL="C")
        sink.reset(case.sink_mode or "ok")
        # A fault that records (common.RECORDING) is the case's sink.
        rec = fault.recorder if fault and fault.recorder else sink

        # A user's run of the installed program reads the system configuration: `-C`
        # would make it give up its group, as sendmail gives up its privileges.
        system_run = []

        def conf_args(user):
            return [] if user and user is system_run else ["-C", conf]

        def sendmail(argv, stdin, user=()):
            if user:
                # setpriv runs the link by its path: its name is still "sendmail".
                return subprocess.run(prefix + list(user) + [link] + conf_args(user) + argv,
                                      input=stdin, capture_output=True, timeout=60, env=env,
                                      cwd=run_dir)
            if prefix:
                # The namespace's shell finds the link on PATH, so that argv[0] is
                # "sendmail" as in the recording (getopt's `sendmail: illegal option`).
                return subprocess.run(prefix + ["sendmail"] + conf_args(user) + argv,
                                      input=stdin, capture_output=True, timeout=60,
                                      env=dict(env, PATH=work + ":" + env.get("PATH", "")),
                                      cwd=run_dir)
            return subprocess.run(["sendmail", "-C", conf] + argv, executable=link,
                                  input=stdin, capture_output=True, timeout=60, env=env,
                                  cwd=run_dir)

        case.run_before(lambda argv: sendmail(argv, case.stdin), run_dir)
        if case.before_fault:
            before_fault.stop()
            write_conf(hosts, port)
        qid = first_queue_id(sendmail(["-bp"], b"").stdout) if case.before else None
        # A case with a `user` file runs its command as that user; the spool stays
        # whoever made it (root, in `before`).
        give_to(case.user, work, run_dir)
        user = as_user(case.user)
        if case.user_queue:
            # The spool is the user's own (rsendmail's per-user spool).
            os.makedirs(spool, exist_ok=True)
            chown_tree(spool, case.user)
        elif case.user is not None:
            # The user reaches root's spool as an installed rsendmail does: set-gid to
            # the spool's group, which she is not in (as in the recording).
            # Its configuration is the system's (/etc/rsendmail/rsendmail.conf, in a
            # private mount namespace's overlay of /etc: nothing outside it changes).
            upper, lower_work = os.path.join(scratch, "etc-up"), os.path.join(scratch, "etc-wk")
            os.mkdir(upper)
            os.mkdir(lower_work)
            system_run[:] = (
                ["unshare", "-m", "--propagation", "private", "--", "sh", "-c",
                 'mount -t overlay overlay -o lowerdir=/etc,upperdir="$1",workdir="$2" /etc'
                 ' && mkdir -p /etc/rsendmail && cp "$3" /etc/rsendmail/rsendmail.conf'
                 ' && shift 3 && exec "$@"', "sh", upper, lower_work, conf]
                + as_setgid_user(case.user, fit_group()))
            user = system_run
        if case.paced:
            # The same lock-step driver as the recording (pace.py runs argv as given,
            # so the link's name is argv[0]).
            run = subprocess.run(prefix + user + [sys.executable, helper("pace.py"), link]
                                 + conf_args(user) + case.argv(case.args, run_dir, qid),
                                 input=case.stdin, capture_output=True, timeout=60, env=env,
                                 cwd=run_dir)
        else:
            run = sendmail(case.argv(case.args, run_dir, qid), case.stdin, user)
        if case.sink_mode:
            rec.settle(lambda: locked(spool))
        # The queue is listed by root, or, when it is the user's own spool, by her (root
        # refuses a spool of a user's group as a system spool).
        queue = sendmail(["-bp"], b"", user if case.user_queue else ())

        def ours(data):
            data = data.replace(spool.encode(), b"QUEUEDIR").replace(run_dir.encode(), b"DIR")
            return data.replace(b" port %d " % port, b" port SINKPORT ")

        actual = {
            "exit": b"%d\n" % run.returncode,
            "stdout": ours(run.stdout),
            "stderr": ours(run.stderr),
            "queue": ours(queue.stdout),
        }
        if case.xlog:
            actual["xlog"] = ours(read_xlog(run_dir))
        if case.sink_mode:
            actual["sink"] = ours(rec.transcript())
        elif rec.sessions():
            actual["sink"] = ours(rec.transcript())
    finally:
        if ns:
            ns.stop()
        if before_fault:
            before_fault.stop()
        if fault:
            fault.stop()
        shutil.rmtree(work, ignore_errors=True)
    diffs = {}
    for key, got in actual.items():
        p = os.path.join(case.path, "expected", key)
        want = b""
        if os.path.exists(p):
            with open(p, "rb") as f:
                want = f.read()
        norm = normalise_xlog if key == "xlog" else normalise
        a, b = norm(want), norm(got)
        if key == "sink":
            a, b = relax_headers(a), relax_headers(b)
        if a != b:
            d = difflib.unified_diff(a.decode("utf-8", "replace").splitlines(True),
                                     b.decode("utf-8", "replace").splitlines(True),
                                     "sendmail/" + key, "rsendmail/" + key)
            diffs[key] = "".join(d)
    return diffs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--cases", default=os.path.join(HERE, "cases"))
    ap.add_argument("--differ", action="store_true",
                    help="pass a case that differs only in the parts its `differs` file names")
    ap.add_argument("--write-differs", action="store_true",
                    help="write each case's `differs` file from the parts that differ now")
    ap.add_argument("names", nargs="*")
    o = ap.parse_args()
    names = o.names or sorted(os.listdir(o.cases))
    passed = failed = 0
    state = tempfile.mkdtemp(prefix="compat-sink-")
    sink = Sink(state, free_port(), start=True)
    try:
        for n in names:
            case = Case(os.path.join(o.cases, n))
            with open(os.path.join(case.path, "expected", "version")) as f:
                version = f.read().strip()
            if not version.startswith("sendmail 8.17"):
                print("%s: expected files do not come from sendmail 8.17 (%s)" % (n, version))
                failed += 1
                continue
            diffs = run_case(o.bin, case, sink)
            if o.write_differs and diffs:
                with open(os.path.join(case.path, "differs"), "w") as f:
                    f.write("".join(k + "\n" for k in sorted(diffs)))
            if o.differ:
                allowed = case.differs if case.differs is not None else set()
                unexpected = sorted(set(diffs) - allowed)
                if case.differs is None:
                    why = "no `differs` file names the parts that may differ"
                elif not diffs:
                    why = "no longer differs from sendmail"
                elif unexpected:
                    why = "differs also in " + ", ".join(unexpected)
                else:
                    why = None
                if why is None:
                    passed += 1
                    continue
                failed += 1
                print("FAIL %s: %s" % (n, why))
                for k in unexpected:
                    d = diffs[k]
                    sys.stdout.write(d if d.endswith("\n") else d + "\n")
            elif diffs:
                failed += 1
                print("FAIL %s" % n)
                for d in diffs.values():
                    sys.stdout.write(d if d.endswith("\n") else d + "\n")
            else:
                passed += 1
    finally:
        sink.stop()
        shutil.rmtree(state, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
