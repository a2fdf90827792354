"""What record.py and replay.py share: reading a case, the recording helpers, the sink.

The lock-step `-bs` driver (pace.py) and the recording SMTP sink (sink.py) are the ones in
../shared/sendmail-recording (RECORDING_HELPERS overrides where that is), so recording and
replay talk to the very same programs.
"""
import base64
import glob
import grp
import json
import os
import pwd
import re
import socket
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HELPERS = os.environ.get(
    "RECORDING_HELPERS",
    os.path.join(HERE, "..", "..", "shared", "sendmail-recording"))


def helper(name):
    p = os.path.join(HELPERS, name)
    if not os.path.exists(p):
        raise SystemExit("%s not found: set RECORDING_HELPERS to the directory holding "
                         "pace.py and sink.py" % p)
    return p


class Case:
    """A case directory: args, stdin, and the optional pace, sink, before and files."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)
        # One argument a line; an empty line is an empty argument (`-f` then ``).
        args = (self.read("args") or b"").decode("utf-8", "surrogateescape").split("\n")
        self.args = args[:-1] if args and args[-1] == "" else args
        self.stdin = self.read("stdin") or b""
        self.paced = os.path.exists(os.path.join(path, "pace"))
        sink = self.read("sink")
        self.sink_mode = (sink.decode().strip() or "ok") if sink is not None else None
        # Runs before the case's own, each line one argv, with the case's stdin.
        self.before = [l.split() for l in self.lines("before")]
        self.files = os.path.join(path, "files")
        # What is wrong with the smarthost (FAULTS); None: the sink is the smarthost.
        fault = self.read("fault")
        self.fault = fault.decode().strip() if fault is not None else None
        # The user the case's own command runs as (the `before` runs and the listing
        # stay root's): a login name, or None.
        # `LOGIN queue`: the queue (sendmail's) or spool (rsendmail's) is that user's own.
        user = (self.read("user") or b"").decode().split()
        self.user = user[0] if user else None
        # A case run as a user with nothing queued first (no `before`) has no queue for
        # root to have made: the queue is the user's own then too.
        self.user_queue = self.user is not None and (user[1:] == ["queue"] or not self.before)
        # The PrivacyOptions the case runs with instead of Debian's (DEBIAN_PRIVACY).
        privacy = self.read("privacy")
        self.privacy = privacy.decode().strip() if privacy is not None else None
        # The case writes a traffic log (`-X @DIR@/xlog`): kept as expected/xlog.
        self.xlog = os.path.exists(os.path.join(path, "xlog"))
        # A recorded difference (differences/): the parts of the outcome (`exit`,
        # `stdout`, `stderr`, `queue`, `sink`, `xlog`) in which rsendmail may differ,
        # one a line; every other part must still be sendmail's. None: not a difference.
        differs = self.read("differs")
        self.differs = (set(differs.decode().split()) if differs is not None else None)
        if self.fault is not None and self.fault not in FAULTS:
            raise SystemExit("%s: unknown fault %r (one of %s)"
                             % (self.name, self.fault, ", ".join(FAULTS)))
        # A fault the smarthost is for the `before` runs only; the case's own run then
        # finds the sink (or the case's `fault`) there: a message deferred by a refused
        # connection, then a queue run that delivers it (or its bounce).
        before_fault = self.read("before-fault")
        self.before_fault = (before_fault.decode().strip()
                             if before_fault is not None else None)
        if self.before_fault is not None and self.before_fault not in FAULTS:
            raise SystemExit("%s: unknown before-fault %r (one of %s)"
                             % (self.name, self.before_fault, ", ".join(FAULTS)))
        if self.before_fault in FAULT_NAMES:
            raise SystemExit("%s: before-fault %r: only the address faults (refused, "
                             "silent) are supported there" % (self.name, self.before_fault))

    def run_before(self, run, run_dir):
        """The `before` lines in order: `run(argv)` for each, except that a line
        `%sleep N` waits N seconds (an entry older than a Timeout.queuereturn of 1s)."""
        for argv in self.before:
            if argv[0] == "%sleep":
                time.sleep(float(argv[1]))
            else:
                run(self.argv(argv, run_dir))

    def read(self, name):
        p = os.path.join(self.path, name)
        if not os.path.exists(p):
            return None
        with open(p, "rb") as f:
            return f.read()

    def lines(self, name):
        data = self.read(name)
        if data is None:
            return []
        return [l for l in data.decode().split("\n") if l != ""]

    def argv(self, args, run_dir, qid=None):
        """`args` with `@DIR@` standing for the directory the case runs in (where its
        files are): sendmail works in its queue directory, so paths must be absolute;
        and `@QID@` for the id of the first message the queue listing shows (what
        `before` queued: `-qI@QID@`); `@LF@` stands for a line feed (an argument
        with a line break, which `args`' one-a-line form cannot hold)."""
        out = [a.replace("@DIR@", run_dir).replace("@LF@", "\n") for a in args]
        if qid is not None:
            out = [a.replace("@QID@", qid) for a in out]
        return out

    def copy_files(self, into):
        """The case's `files/` (an aliases file, say) into the run's directory, `@DIR@`
        in their text standing for that directory (an `:include:` path in an aliases
        file must be absolute)."""
        if os.path.isdir(self.files):
            named = False
            for n in sorted(os.listdir(self.files)):
                with open(os.path.join(self.files, n), "rb") as src:
                    text = src.read()
                named = named or b"@DIR@" in text
                with open(os.path.join(into, n), "wb") as dst:
                    dst.write(text.replace(b"@DIR@", into.encode()))
            if named:
                # A file named in another (an `:include:` list) is read with the rights
                # of the list's owner or DefaultUser: the directory must be searchable.
                os.chmod(into, 0o755)
        # `modes`: lines `FILE MODE [OWNER]` (octal mode, a login): a copied file's mode
        # and owner (an :include: file writable by all, or a user's own list).
        for line in self.lines("modes"):
            parts = line.split()
            target = os.path.join(into, parts[0])
            os.chmod(target, int(parts[1], 8))
            if len(parts) > 2:
                pw = pwd.getpwnam(parts[2])
                os.chown(target, pw.pw_uid, pw.pw_gid)
        # `owners`: lines `FILE LOGIN`, each copied file given to that user (an
        # `:include:` list a user owns, whose members `mailq -v` lists under the user).
        owners = os.path.join(self.path, "owners")
        if os.path.isfile(owners):
            with open(owners) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2:
                        pw = pwd.getpwnam(parts[1])
                        os.chown(os.path.join(into, parts[0]), pw.pw_uid, pw.pw_gid)


    def mounts(self, run_dir, scratch):
        """The command prefix that runs a program with the case's `forward` and `shells`
        files in place, in a private mount namespace of its own (so root; nothing
        outside the namespace changes), or [] when the case has neither.

        `forward`: lines `LOGIN FILE [MODE [OWNER]]`: the copied FILE is LOGIN's
        `.forward` (owned by LOGIN or OWNER, mode 0644 or MODE) in a fresh home directory (owned by LOGIN, 0755) mounted over
        LOGIN's own (which must exist); and /var/mail is a fresh directory too (for
        every case when run as root: a report to the postmaster or a local recipient's
        copy is delivered to a mailbox), so that a mailbox delivery never reaches a real
        mailbox. `shells`: the copied file of
        that name stands for /etc/shells."""
        binds = []
        forwards = [l.split() for l in self.lines("forward")]
        if forwards or os.path.exists(os.path.join(self.path, "mail")) or os.getuid() == 0:
            mail = os.path.join(scratch, "mail")
            os.makedirs(mail, exist_ok=True)
            # As Debian's: root's, the mail group's, writable by all, sticky.
            try:
                os.chown(mail, 0, grp.getgrnam("mail").gr_gid)
            except KeyError:
                pass
            os.chmod(mail, 0o3777)
            binds.append((mail, "/var/mail"))
        for login, name, *rest in forwards:
            pw = login_made(login)
            home = os.path.join(scratch, "home-" + login)
            os.makedirs(home, exist_ok=True)
            fwd = os.path.join(home, ".forward")
            shutil.copyfile(os.path.join(run_dir, name), fwd)
            fmode = int(rest[0], 8) if rest else 0o644
            for n, mode in ((home, 0o755), (fwd, fmode)):
                os.chown(n, pw.pw_uid, pw.pw_gid)
                os.chmod(n, mode)
            if len(rest) > 1:
                other = pwd.getpwnam(rest[1])
                os.chown(fwd, other.pw_uid, other.pw_gid)
            binds.append((home, pw.pw_dir))
        if os.path.exists(os.path.join(self.path, "shells")):
            binds.append((os.path.join(run_dir, "shells"), "/etc/shells"))
        if not binds:
            return []
        script = " && ".join('mount --bind "$%d" "$%d"' % (2 * i + 1, 2 * i + 2)
                             for i in range(len(binds)))
        script += ' && shift %d && exec "$@"' % (2 * len(binds))
        return (["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script, "sh"]
                + [p for b in binds for p in b])


# sendmail.cf's PrivacyOptions on the recording machine (Debian's); replay's config says
# the same. A case's `privacy` file replaces them on both sides.
DEBIAN_PRIVACY = ("needmailhelo,needexpnhelo,needvrfyhelo,restrictqrun,restrictexpand,"
                  "nobodyreturn,authwarnings")


def login_made(login):
    """The password entry of `login`, which a case's `forward` names: made (with a home,
    which replay binds the case's own over) when this machine has none, so that the
    cases need no set-up beyond root."""
    try:
        return pwd.getpwnam(login)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", login], check=True,
                       stdout=subprocess.DEVNULL)
        return pwd.getpwnam(login)


def as_user(user):
    """The command prefix that runs a program as `user` (its uid, gid and groups), or
    nothing for None."""
    if user is None:
        return []
    pw = pwd.getpwnam(user)
    return ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--init-groups",
            "--"]


def chown_tree(path, user):
    """`path` and everything under it given to `user` (uid and gid)."""
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for n in [root] + [os.path.join(root, f) for f in files]:
            os.chown(n, pw.pw_uid, pw.pw_gid)


def fit_group():
    """The group a system spool is given here, as `rsendmail-admin init` wants one: not
    root's, no members, nobody's primary group; `rsendmail` when it is such a group,
    else the first such group of the group file. Its gid."""
    primary = {p.pw_gid for p in pwd.getpwall()}
    fit = [g for g in grp.getgrall()
           if g.gr_gid != 0 and not g.gr_mem and g.gr_gid not in primary]
    for g in fit:
        if g.gr_name == "rsendmail":
            return g.gr_gid
    if not fit:
        sys.exit("no group fit for a spool (no members, nobody's primary group)")
    return fit[0].gr_gid


def as_setgid_user(user, gid):
    """The command prefix that runs a program as `user` runs a program installed set-gid
    to the group `gid` (the spool's): her uid, real gid and groups, and `gid` as the
    effective gid, as the kernel gives them at such an exec."""
    pw = pwd.getpwnam(user)
    return ["setpriv", "--reuid=%d" % pw.pw_uid, "--rgid=%d" % pw.pw_gid,
            "--egid=%d" % gid, "--init-groups", "--"]


def give_to(user, *paths):
    """Let `user` reach the case's directories: each one readable and searchable by
    all (the spool or queue inside keeps its own modes)."""
    if user is None:
        return
    for p in paths:
        os.chmod(p, 0o755)


def read_xlog(run_dir):
    """The traffic log a case wrote (`-X @DIR@/xlog`): its mode on a first line
    (`mode 0644`), then its lines; b"" when there is none."""
    path = os.path.join(run_dir, "xlog")
    try:
        mode = os.stat(path).st_mode & 0o7777
        with open(path, "rb") as f:
            return b"mode %04o\n" % mode + f.read()
    except OSError:
        return b"no file\n"


def locked(directory):
    """Whether a process holds a lock on a file under `directory` (a deliverer at work):
    flock and fcntl locks both show in /proc/locks by inode."""
    inodes = set()
    for root, _, files in os.walk(directory):
        for n in files:
            try:
                inodes.add(os.stat(os.path.join(root, n)).st_ino)
            except OSError:
                pass
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                # 1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF   (or "->" for waiters)
                dev = next((x for x in fields if x.count(":") == 2), None)
                if dev and int(dev.rsplit(":", 1)[1]) in inodes:
                    return True
    except OSError:
        pass
    return False


def first_queue_id(listing):
    """The first queue id in a `-bp` listing, or None."""
    m = QID.search(listing)
    return m.group(0).decode() if m else None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def data_text(data: bytes) -> str:
    """A message's DATA bytes as transcript text, exactly: CRLF becomes a line break;
    a CR or LF alone stays as it is, and an LF alone is marked `<LF>` (so it cannot pass
    for a CRLF); octets that are not UTF-8 are written `\\xNN` (so that the 8th bit
    stripped, a Latin-1 octet and a UTF-8 character each read as they were sent); other
    octets (NUL and the control octets included) are written as they are."""
    lines = data.split(b"\r\n")
    lines = [l.replace(b"\n", b"<LF>\n") for l in lines]
    return "\n".join(l.decode("utf-8", "backslashreplace") for l in lines)


class Sink:
    """sink.py in the background (replay), or the already running one (recording)."""

    def __init__(self, state, port, start):
        self.state = state
        self.port = port
        self.proc = None
        os.makedirs(os.path.join(state, "sessions"), exist_ok=True)
        if start:
            self.proc = subprocess.Popen(
                [sys.executable, helper("sink.py"), state, str(port)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.time() > deadline or self.proc.poll() is not None:
                        raise SystemExit("sink.py did not start on port %d" % port)
                    time.sleep(0.05)

    def reset(self, mode):
        for f in glob.glob(os.path.join(self.state, "sessions", "*")):
            os.unlink(f)
        with open(os.path.join(self.state, "mode"), "w") as f:
            f.write(mode + "\n")

    def sessions(self):
        return sorted(glob.glob(os.path.join(self.state, "sessions", "*.json")))

    def settle(self, busy, limit=20.0, quiet=1.5):
        """Wait until the delivery under way is over: `busy()` false (no deliverer left
        holding the queue) and no new session for `quiet` seconds."""
        deadline = time.time() + limit
        seen, since = -1, time.time()
        while time.time() < deadline:
            # A recording fault server (Refusing) marks each connection still open.
            open_now = len(glob.glob(os.path.join(self.state, "sessions", "*.open")))
            n = len(self.sessions()) + open_now
            if n != seen:
                seen, since = n, time.time()
            elif time.time() - since >= quiet and not busy() and not open_now:
                return
            time.sleep(0.1)

    def transcript(self):
        """What the sink received, as text: each session's client lines, then each
        transaction's message exactly as sent (dot-stuffing kept)."""
        out = []
        for i, path in enumerate(self.sessions(), 1):
            with open(path) as f:
                s = json.load(f)
            out.append("session %d\n" % i)
            for _, who, line in s["transcript"]:
                if who == "C":
                    out.append("C: %s\n" % line)
            for t in s["transactions"]:
                out.append("message to %s (%d)\n" % (" ".join(t["rcpt"]), t["result"]))
                out.append(data_text(base64.b64decode(t["data_b64"])))
                out.append(".\n")
        return "".join(out).encode()

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()


# sendmail's queue ids, and rsendmail's ids of delivery reports, which are derived from
# their original's: its first 8 characters (the second the month, 0-9AB), then a letter
# and 5 more (never a submission's).
QID = re.compile(rb"\b(?:[0-9A-Za-x]{8}[0-9]{6}|[0-9A-Za-x][0-9AB][0-9A-Za-x]{6}[A-Za-x][0-9A-Za-x]{5})\b")
CTIME = re.compile(rb"(Sun|Mon|Tue|Wed|Thu|Fri|Sat) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct"
                   rb"|Nov|Dec) [ 0-9][0-9] [0-9]{2}:[0-9]{2}(?::[0-9]{2} [0-9]{4})?")
# The 12-character date of a verbose listing (`-bp -v`): ctime without the weekday, after
# the priority column and its warning mark.
VERBOSE_DATE = re.compile(rb"(?<=[0-9][ +])(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                          rb" [ 0-9][0-9] [0-9]{2}:[0-9]{2}(?= )")
# RFC 5322 dates, with whatever zone form follows.
RFCDATE = re.compile(rb"(?:(?:Sun|Mon|Tue|Wed|Thu|Fri|Sat), )?[ 0-9]?[0-9] (?:Jan|Feb|Mar|Apr"
                     rb"|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}"
                     rb"(?: [+-][0-9]{4}(?: \([A-Z]+\))?| [A-Z]{2,4})?")
# The Message-Id's time stamp before the queue id.
MSGID_STAMP = re.compile(rb"<[0-9]{12}\.QUEUEID@")
# The product and version in a Received: line's `by host (...)` comment.
BY_VERSION = re.compile(rb"(\n\tby HOST )\([^)\n]*\)")
SIZE = re.compile(rb"\bSIZE=[0-9]+")
# A MIME boundary made of the queue id and the time: `6AMB51va019229.1795345501/host`.
BOUNDARY_TIME = re.compile(rb"QUEUEID\.[0-9]{9,11}/")
GREETING = re.compile(rb"^S: 220 [^\r\n]*", re.M)
# The sink's own queue id in its 250 reply (a counter over the sink's life).
SINK_ID = re.compile(rb"\bSINK[0-9]+\b")


# The process id before each line of a traffic log (`-X`).
XLOG_PID = re.compile(rb"^[0-9]+ ", re.M)


# In a traffic log: the program and version of an added Received: line as it was sent,
# and the SMTP server's greeting (as in a `-bs` dialogue).
XLOG_BY_VERSION = re.compile(rb"(>>> \tby HOST )\([^)\n]*\)")
XLOG_GREETING = re.compile(rb"^PID >>> 220 [^\n]*", re.M)


def normalise_xlog(data: bytes) -> bytes:
    """A traffic log: each line's process id -> PID, the server's greeting, then as
    `normalise` (and the version of a Received: line sent)."""
    data = XLOG_GREETING.sub(b"PID >>> 220 GREETING", XLOG_PID.sub(b"PID ", data))
    return XLOG_BY_VERSION.sub(rb"\1(VERSION)", normalise(data))


# The size column of a delivery report's entry in a queue listing (`-bp`, `-bp -v`): a
# report's text holds what the recording machine's lookups said (`451 x.example: Name
# server timeout` lines, see DIFFERENCES.md), so its size is not compared; its place,
# priority and reason are.
REPORT_SIZE = re.compile(rb"^QUEUEID +[0-9]+(?= (?:.* )?DATE MAILER-DAEMON$)", re.M)


def normalise(data: bytes) -> bytes:
    data = GREETING.sub(b"S: 220 GREETING", data)
    data = QID.sub(b"QUEUEID", data)
    data = CTIME.sub(b"DATE", data)
    data = VERBOSE_DATE.sub(b"DATE", data)
    data = RFCDATE.sub(b"DATE", data)
    data = data.replace(b"vm.example.test", b"HOST")
    data = MSGID_STAMP.sub(b"<STAMP.QUEUEID@", data)
    data = BY_VERSION.sub(rb"\1(VERSION)", data)
    data = SIZE.sub(b"SIZE=N", data)
    data = SINK_ID.sub(b"SINKID", data)
    data = BOUNDARY_TIME.sub(b"QUEUEID.TIME/", data)
    data = REPORT_SIZE.sub(b"QUEUEID REPORTSIZE", data)
    return data


# Where a header block starts in a sink transcript: after a message's first line, after
# a MIME boundary line, and after the blank line that ends the header of a part holding
# a message or a message's header (the returned header of a bounce).
BOUNDARY = re.compile(rb"^--[^\s]+$")
EMBEDDED = re.compile(rb"^content-type:\s*(message/rfc822|text/rfc822-headers)", re.I)


def relax_headers(data: bytes) -> bytes:
    """Header fields in DKIM's relaxed form (RFC 6376 section 3.4.2) without the name
    and colon rules: continuation lines unfolded, runs of blanks made one blank, blanks
    at the end of a line dropped. Only where the folding white space of a field may
    differ without changing the field: sendmail re-folds address fields at 78 columns
    with eight blanks, rsendmail keeps the writer's folding and folds lines over 998
    octets (DIFFERENCES.md). Bodies are compared as they are."""
    out = []
    in_header = False
    embedded = False
    for line in data.split(b"\n"):
        if in_header:
            if line == b"":
                in_header = embedded
                embedded = False
                out.append(line)
                continue
            if line[:1] in (b" ", b"\t") and out and out[-1] != b"":
                out[-1] = out[-1] + b" " + re.sub(rb"[ \t]+", b" ", line.strip(b" \t"))
                continue
            if EMBEDDED.match(line):
                embedded = True
            out.append(re.sub(rb"[ \t]+", b" ", line).rstrip(b" \t"))
            continue
        out.append(line)
        if line.startswith(b"message to ") or BOUNDARY.match(line):
            in_header = True
    return b"\n".join(out)



# Faults a case's `fault` file can name: what the smarthost is instead of the sink.
#   refused   127.0.0.1 on a port where nothing listens (connection refused)
#   silent    127.0.0.1 on a port where a listener accepts and never says a word
#             (the case sets Timeout.initial small)
#   nxdomain  the name relay.nx.test, which the name server says does not exist
#   servfail  the name relay.fail.test, whose lookup fails (the server refuses it)
#   nodata    the name relay.nodata.test, which exists (a TXT record) but has no address
#             (NOERROR with no A or AAAA answer: "NODATA")
#   dnstimeout the name relay.to.test, whose lookup is never answered (the case sets
#             -O Timeout.resolver.retrans=1s -O Timeout.resolver.retry=1)
#   nxdomain-refused  two smarthosts in turn: relay.nx.test (NXDOMAIN), then
#             127.0.0.1 on a port where nothing listens
# The name faults run in a private network namespace with dnsmasq as the only name
# server (see Namespace), so that no lookup ever leaves the machine.
#   mail4xx   127.0.0.1 on a port where a server answers MAIL with 450 (Refusing)
#   data4xx-init  the same, answering DATA with 451 instead of 354
#   mail5xx   the same, answering MAIL with 550 for every sender but the null one
#             (a failure report, `MAIL From:<>`, is accepted and its DATA taken)
#   mail553, mail501  the same, answering MAIL with 553 or 501 (sendmail's other exit
#             status for a refused sender)
FAULTS = ("refused", "silent", "nxdomain", "servfail", "nodata", "dnstimeout",
          "nxdomain-refused", "mail4xx", "data4xx-init", "mail5xx", "mail553", "mail501")
# What Refusing answers, per fault: (command, reply).
REFUSALS = {
    "mail4xx": ("MAIL", "450 4.3.2 Sender temporarily refused (test)"),
    "data4xx-init": ("DATA", "451 4.3.0 Not now (test)"),
    "mail5xx": ("MAIL", "550 5.7.1 Sender refused (test)"),
    "mail553": ("MAIL", "553 5.1.8 Sender address rejected (test)"),
    "mail501": ("MAIL", "501 5.1.7 Bad sender address syntax (test)"),
}
# Servers that record what they received as the sink does (a case with a `sink` file
# compares it): the refusal of REFUSALS' fault they make (None: none), and the EHLO
# keywords they offer beyond sink.py's.
RECORDING = {
    "dsn": (None, ("DSN",)),
    "pipelining": (None, ("PIPELINING",)),
    "pipelining-mail5xx": ("mail5xx", ("PIPELINING",)),
    "pipelining-mail4xx": ("mail4xx", ("PIPELINING",)),
    "pipelining-mail553": ("mail553", ("PIPELINING",)),
    "pipelining-mail501": ("mail501", ("PIPELINING",)),
    "ehlo-self": (None, ()),
}
# Recording servers that name themselves as the host under test (vm.example.test, the
# host name of the recording and the MAILNAME of the replay) in their greeting and
# EHLO reply: the mail would loop back to the sender's own host.
SELF_NAMED = ("ehlo-self",)
FAULTS = FAULTS + tuple(RECORDING)
FAULT_NAMES = {"nxdomain": "relay.nx.test", "servfail": "relay.fail.test",
               "nodata": "relay.nodata.test", "dnstimeout": "relay.to.test",
               "nxdomain-refused": "relay.nx.test"}
# Faults that are a list of smarthosts, tried in turn (the first is FAULT_NAMES').
FAULT_MORE_HOSTS = {"nxdomain-refused": ["127.0.0.1"]}
# dnsmasq answers NXDOMAIN for these domains and everything under them, REFUSED (a
# temporary lookup failure) for every other name it is asked, except NODATA's and
# TIMEOUT's names.
NXDOMAINS = ("com", "org", "net", "nx.test")
# A name that exists with no address: answered from local data only (NOERROR, no
# answer for A/AAAA/MX), other names under the domain NXDOMAIN.
NODATA = ("nodata.test", "relay.nodata.test")
# A domain whose lookups are forwarded to a port where no name server listens: dnsmasq
# never answers them, and the client times out.
TIMEOUT = "to.test"


class Listener:
    """A listener on a free loopback port whose connections go to `take(conn)`, each
    as it is accepted (on the accepting thread)."""

    def __init__(self, backlog):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.take(conn)

    def stop(self):
        self.sock.close()


class Silent(Listener):
    """A listener that accepts connections and holds them open without a word (a
    smarthost that never greets)."""

    def __init__(self):
        self.held = []
        super().__init__(64)

    def take(self, conn):
        self.held.append(conn)

    def stop(self):
        super().stop()
        for c in self.held:
            c.close()


class Refusing(Listener):
    """A listener that speaks SMTP as sink.py does (the same greeting and EHLO reply),
    accepts RCPT, and answers `command` (MAIL or DATA) with `reply`: the reply classes
    at the commands sink.py's modes do not cover (a 5xx reply to MAIL spares the null
    sender, so that a failure report goes through). `command` None: it refuses nothing.
    Records nothing unless given `record`, a directory: then each session is written
    there as sink.py writes it (`Recorder` reads them), and `keywords` (`PIPELINING`,
    `DSN`) are offered in the EHLO reply beside sink.py's. With PIPELINING offered, it
    keeps the state a pipelining client relies on: RCPT after a refused MAIL gets
    `503 5.5.1 Error: need MAIL command`, DATA without an accepted RCPT
    `554 5.5.1 Error: no valid recipients` (as sink.py's DATA)."""

    def __init__(self, command, reply, keywords=(), record=None, name="sink.test"):
        self.command, self.reply = command, reply
        self.name = name
        self.keywords = tuple(keywords)
        self.record = record
        self.count = 0
        self.lock = threading.Lock()
        if record:
            os.makedirs(os.path.join(record, "sessions"), exist_ok=True)
        super().__init__(16)

    def take(self, conn):
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        f = conn.makefile("rb")
        t0 = time.time()
        with self.lock:
            self.count += 1
            n = self.count
        sess = {"connect_epoch": t0, "mode": "fault", "transcript": [], "transactions": []}
        marker = None
        if self.record:
            # The connection is open: `Sink.settle` waits for it to end.
            marker = os.path.join(self.record, "sessions", "%d-%04d.open" % (int(t0 * 1e9), n))
            try:
                open(marker, "w").close()
            except OSError:
                marker = None
        strict = "PIPELINING" in self.keywords
        cur = None

        def note(who, line):
            sess["transcript"].append([round(time.time() - t0, 3), who, line])

        def say(line):
            note("S", line)
            conn.sendall((line + "\r\n").encode())

        try:
            say("220 %s ESMTP recording-sink" % self.name)
            for raw in f:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                note("C", line)
                cmd = line.strip()[:4].upper()
                null_mail = cmd == "MAIL" and "<>" in line
                if cmd == self.command and not (self.reply.startswith("5") and null_mail):
                    say(self.reply)
                    if cmd == "MAIL":
                        cur = None
                elif cmd == "EHLO":
                    for l in ("250-" + self.name, "250-8BITMIME", "250-SIZE 52428800") + tuple(
                            "250-" + k for k in self.keywords):
                        say(l)
                    say("250 ENHANCEDSTATUSCODES")
                elif cmd == "HELO":
                    say("250 " + self.name)
                elif cmd == "MAIL":
                    cur = {"mail_from": line[5:].strip(), "rcpt": [], "rcpt_rejected": []}
                    say("250 2.1.0 Ok")
                elif cmd == "RCPT":
                    if strict and cur is None:
                        say("503 5.5.1 Error: need MAIL command")
                        continue
                    if cur is not None:
                        cur["rcpt"].append(line[4:].strip())
                    say("250 2.1.5 Ok")
                elif cmd == "DATA":
                    if strict and (cur is None or not cur["rcpt"]):
                        say("554 5.5.1 Error: no valid recipients")
                        continue
                    say("354 End data with <CR><LF>.<CR><LF>")
                    data = []
                    for d in f:
                        if d in (b".\r\n", b".\n"):
                            break
                        data.append(d)
                    say("250 2.0.0 Ok: queued" + (" as SINK%d" % n if self.record else ""))
                    if cur is not None:
                        cur["result"] = 250
                        cur["data_b64"] = base64.b64encode(b"".join(data)).decode()
                        sess["transactions"].append(cur)
                    cur = None
                elif cmd in ("RSET", "NOOP"):
                    if cmd == "RSET":
                        cur = None
                    say("250 2.0.0 Ok")
                elif cmd == "QUIT":
                    say("221 2.0.0 Bye")
                    break
                else:
                    say("502 5.5.2 Error: command not recognized")
            else:
                note("C", "<EOF>")
        except OSError:
            pass
        finally:
            # Written before the connection is closed: a client that saw the close
            # finds the session recorded.
            if self.record and any(d == "C" and l != "<EOF>" for _, d, l in sess["transcript"]):
                fn = os.path.join(self.record, "sessions", "%d-%04d.json" % (int(t0 * 1e9), n))
                try:
                    with open(fn + ".tmp", "w") as out:
                        json.dump(sess, out, indent=1)
                    os.rename(fn + ".tmp", fn)
                except OSError:
                    pass  # the case is over and its directory gone
            if marker:
                try:
                    os.unlink(marker)
                except OSError:
                    pass
            conn.close()


class Fault:
    """The smarthost a `fault` case is pointed at: `host` and `port` (the port is
    normalised as SINKPORT like the sink's)."""

    def __init__(self, kind):
        self.kind = kind
        self.silent = None
        self.recorder = None
        self.host = FAULT_NAMES.get(kind, "127.0.0.1")
        # Every smarthost, in the order they are tried (sendmail's `[a]:[b]`,
        # rsendmail's `SMARTHOST a b`).
        self.hosts = [self.host] + FAULT_MORE_HOSTS.get(kind, [])
        if kind == "silent":
            self.silent = Silent()
            self.port = self.silent.port
        elif kind in REFUSALS:
            self.silent = Refusing(*REFUSALS[kind])
            self.port = self.silent.port
        elif kind in RECORDING:
            self.state = tempfile.mkdtemp(prefix="compat-fault-")
            command, reply = REFUSALS.get(RECORDING[kind][0], (None, None))
            name = "vm.example.test" if kind in SELF_NAMED else "sink.test"
            self.silent = Refusing(command, reply, RECORDING[kind][1], self.state, name)
            self.port = self.silent.port
            # What the server received, read as the sink's (`Sink.transcript`).
            self.recorder = Sink(self.state, self.port, start=False)
        else:
            # Bound and released: nothing listens there.
            self.port = free_port()

    @property
    def by_name(self):
        return self.kind in FAULT_NAMES

    def stop(self):
        if self.silent:
            self.silent.stop()
        if self.recorder:
            shutil.rmtree(self.state, ignore_errors=True)


def dnsmasq_args(port, log):
    """dnsmasq as the fault cases' name server: on 127.0.0.1:`port`, no upstream, no
    /etc/hosts, NXDOMAIN for NXDOMAINS, NODATA for NODATA's name, no answer at all under
    TIMEOUT, REFUSED for the rest."""
    args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--port=%d" % port, "--log-queries", "--log-facility=%s" % log,
            "--pid-file=%s.pid" % log]
    if os.getuid() == 0:
        args.append("--user=root")
    args += ["--local=/%s/" % NODATA[0], "--txt-record=%s,nodata" % NODATA[1],
             "--server=/%s/127.0.0.1#9" % TIMEOUT]
    return args + ["--address=/%s/" % d for d in NXDOMAINS]


class Namespace:
    """A private network namespace holding only a loopback interface (unshare -n), kept
    by a sleeping process; `prefix` runs a command in it (nsenter). Nothing run in it can
    reach past 127.0.0.0/8, whatever /etc/resolv.conf names. Needs root (or
    unprivileged user namespaces)."""

    def __init__(self):
        self.holder = subprocess.Popen(
            ["unshare", "-n", "--", "sh", "-c",
             "ip link set lo up && echo ready && exec sleep 1000000"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        if self.holder.stdout.readline().strip() != b"ready":
            self.holder.wait()
            raise SystemExit("cannot make a network namespace (unshare -n): the name "
                             "fault cases need one")
        self.prefix = ["nsenter", "-t", str(self.holder.pid), "-n", "--"]
        self.dns = None

    def start_dns(self, port, directory):
        """dnsmasq (dnsmasq_args) inside, on 127.0.0.1:`port`."""
        log = os.path.join(directory, "dnsmasq-%d.log" % port)
        self.dns = subprocess.Popen(self.prefix + dnsmasq_args(port, log),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                with open(log) as f:
                    if "started" in f.read():
                        return
            except OSError:
                pass
            if self.dns.poll() is not None or time.time() > deadline:
                raise SystemExit("dnsmasq did not start on port %d" % port)
            time.sleep(0.05)

    def stop(self):
        for p in (self.dns, self.holder):
            if p:
                p.kill()
                p.wait()
