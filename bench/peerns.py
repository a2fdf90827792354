"""dma and Postfix, run from their Debian packages unpacked under target/peers (by
scripts/fetch-peers), never installed on the host.

Both read fixed paths (dma: /etc/dma/dma.conf and /usr/lib/dma/dma-mbox-create; Postfix:
/etc/postfix and, through its binaries' RUNPATH, /usr/lib/postfix), so `enter()` runs the
benchmark in private mount and PID namespaces (unshare(1), as root): overlays on /etc and
/usr/lib hold their configs, a `benchuser` account and the `postfix`/`postdrop` accounts
Postfix needs, and a scratch directory is bound over /var/mail. Nothing of it is seen
outside; when the benchmark (PID 1 of its namespace) exits, the kernel ends every process
left in it (dma's background deliverers, Postfix's master and daemons) and the mounts go
with the namespace.
"""
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PEERS = os.path.join(ROOT, "target", "peers")
DMA = os.path.join(PEERS, "dma")
POSTFIX = os.path.join(PEERS, "postfix")

# Accounts added inside the namespace only (their ids are unused on the host).
BENCH_UID = 64990
POSTFIX_UID = 64991
POSTDROP_GID = 64992
RSENDMAIL_GID = 64993
SENDER_UID = 64994


def enter():
    """Re-run this program in private namespaces; return True when already inside (or
    False when that cannot be done: not root, no unshare)."""
    if os.environ.get("RSENDMAIL_BENCH_NS") == "1":
        if os.getpid() == 1:
            _reap()
        return True
    if os.getuid() != 0 or not shutil.which("unshare"):
        return False
    env = dict(os.environ, RSENDMAIL_BENCH_NS="1")
    cmd = ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation",
           "private", sys.executable] + sys.argv
    try:
        r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL)
    except KeyboardInterrupt:
        raise SystemExit(130)
    raise SystemExit(r.returncode)


def _reap():
    """As PID 1 of the namespace: fork the benchmark and reap every process that ends
    up here (dma's and rsendmail's detached deliverers) until it exits, then exit with
    its status; the kernel then ends whatever is left in the namespace. Returns in the
    child."""
    child = os.fork()
    if child == 0:
        return
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        except InterruptedError:
            continue
        if pid == child:
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _overlay(target, upper_root, name):
    upper = os.path.join(upper_root, name + "-upper")
    workd = os.path.join(upper_root, name + "-work")
    os.makedirs(workd, exist_ok=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    "lowerdir=%s,upperdir=%s,workdir=%s" % (target, upper, workd), target],
                   check=True)


def setup(work):
    """Inside the namespace: build the overlays under work/ns and mount them. Returns the
    names of the peers that are there ("dma", "postfix")."""
    have = []
    if os.access(os.path.join(DMA, "usr", "sbin", "dma"), os.X_OK):
        have.append("dma")
    if os.access(os.path.join(POSTFIX, "usr", "lib", "postfix", "sbin", "master"), os.X_OK):
        have.append("postfix")
    ns = os.path.join(work, "ns")
    etc = os.path.join(ns, "etc-upper")
    lib = os.path.join(ns, "lib-upper")
    os.makedirs(etc)
    os.makedirs(lib)
    with open("/etc/passwd") as f:
        passwd = f.read()
    with open("/etc/group") as f:
        group = f.read()
    passwd += "benchuser:x:%d:%d::/nonexistent:/usr/sbin/nologin\n" % (BENCH_UID, BENCH_UID)
    passwd += "postfix:x:%d:%d::/nonexistent:/usr/sbin/nologin\n" % (POSTFIX_UID, POSTFIX_UID)
    passwd += "benchsender:x:%d:%d::/nonexistent:/usr/sbin/nologin\n" % (SENDER_UID, SENDER_UID)
    group += "benchuser:x:%d:\npostfix:x:%d:\npostdrop:x:%d:\nrsendmail:x:%d:\n" \
        "benchsender:x:%d:\n" % (BENCH_UID, POSTFIX_UID, POSTDROP_GID, RSENDMAIL_GID, SENDER_UID)
    for name, text in [("passwd", passwd), ("group", group)]:
        with open(os.path.join(etc, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(etc, name), 0o644)
    os.makedirs(os.path.join(etc, "dma"))
    os.makedirs(os.path.join(etc, "postfix"))
    os.makedirs(os.path.join(etc, "rsendmail"))
    if "dma" in have:
        os.symlink(os.path.join(DMA, "usr", "lib", "dma"), os.path.join(lib, "dma"))
    if "postfix" in have:
        os.symlink(os.path.join(POSTFIX, "usr", "lib", "postfix"), os.path.join(lib, "postfix"))
    _overlay("/etc", ns, "etc")
    _overlay("/usr/lib", ns, "lib")
    mail = os.path.join(work, "var-mail")
    os.makedirs(mail)
    os.chown(mail, 0, 8)
    os.chmod(mail, 0o3777)
    subprocess.run(["mount", "--bind", mail, "/var/mail"], check=True)
    return have


def as_user(argv):
    """`argv` run as benchsender (an ordinary user, no groups)."""
    return ["setpriv", "--reuid=%d" % SENDER_UID, "--regid=%d" % SENDER_UID,
            "--clear-groups"] + argv


def mailbox(path):
    """An empty mailbox for benchuser, writable by group mail (dma delivers as `mail`)."""
    with open(path, "w"):
        pass
    os.chown(path, BENCH_UID, 8)
    os.chmod(path, 0o660)


class Dma:
    """dma with /etc/dma/dma.conf relaying to 127.0.0.1:port and its own spool."""

    name = "dma"

    def __init__(self, work, port):
        self.bin = os.path.join(DMA, "usr", "sbin", "dma")
        self.spool = os.path.join(work, "dma-spool")
        os.makedirs(self.spool)
        os.chown(self.spool, pwd.getpwnam("mail").pw_uid, 8)
        os.chmod(self.spool, 0o2775)
        aliases = os.path.join(work, "dma-aliases")
        open(aliases, "w").close()
        with open("/etc/dma/dma.conf", "w") as f:
            f.write("SMARTHOST 127.0.0.1\nPORT %d\nALIASES %s\nSPOOLDIR %s\n"
                    "MAILNAME bench.example\n" % (port, aliases, self.spool))
        self.mailbox = "/var/mail/benchuser"
        mailbox(self.mailbox)

    def argv(self, mode, rcpts):
        """mode: "b" (default: queue, then a background delivery), "q" (queue only)."""
        return [self.bin] + (["-bq"] if mode == "q" else []) + ["-f", "bench@bench.example"] + rcpts

    def run_queue(self):
        return subprocess.run([self.bin, "-q"], stdin=subprocess.DEVNULL)

    def clear(self):
        for n in os.listdir(self.spool):
            os.unlink(os.path.join(self.spool, n))


MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """Postfix with /etc/postfix (in the overlay) relaying to 127.0.0.1:port, its queue,
    data and mailbox directories under work; started with `postfix start`."""

    name = "postfix"

    def __init__(self, work, port):
        self.sbin = os.path.join(POSTFIX, "usr", "sbin")
        self.queue = os.path.join(work, "pf-queue")
        data = os.path.join(work, "pf-data")
        self.mail = os.path.join(work, "pf-mail")
        self.log = os.path.join(work, "pf.log")
        for d in (self.queue, data, self.mail):
            os.makedirs(d)
        os.chown(data, POSTFIX_UID, POSTFIX_UID)
        os.chown(self.mail, 0, 8)
        os.chmod(self.mail, 0o3777)
        self.mailbox = os.path.join(self.mail, "benchuser")
        mailbox(self.mailbox)
        conf = "/etc/postfix"
        for n in ("postfix-files", "dynamicmaps.cf"):
            src = os.path.join(POSTFIX, "etc", "postfix", n)
            if os.path.exists(src):
                shutil.copy(src, conf)
        with open(os.path.join(conf, "master.cf"), "w") as f:
            f.write(MASTER_CF)
        with open(os.path.join(conf, "main.cf"), "w") as f:
            f.write("""\
compatibility_level = 3.6
queue_directory = %(queue)s
data_directory = %(data)s
command_directory = %(sbin)s
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.example
mydomain = bench.example
myorigin = bench.example
mydestination = bench.example, localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost = [127.0.0.1]:%(port)d
smtp_host_lookup = native
alias_maps =
alias_database =
mail_spool_directory = %(mail)s
maillog_file = %(log)s
maillog_file_prefixes = %(work)s
biff = no
smtputf8_enable = no
""" % dict(queue=self.queue, data=data, sbin=self.sbin, port=port, mail=self.mail,
           log=self.log, work=work))
        self.sendmail = os.path.join(self.sbin, "sendmail")
        self.postfix = os.path.join(self.sbin, "postfix")

    def start(self):
        r = subprocess.run([self.postfix, "start"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
        if r.returncode != 0:
            return r.stdout + r.stderr
        # Ready when pickup's endpoint is there (master has made its services).
        t = time.time()
        while not os.path.exists(os.path.join(self.queue, "public", "pickup")):
            if time.time() - t > 10:
                return "public/pickup never appeared"
            time.sleep(0.01)
        return None

    def stop(self):
        subprocess.run([self.postfix, "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def argv(self, mode, rcpts):
        return [self.sendmail, "-f", "bench@bench.example"] + rcpts

    def count(self, sub):
        """Files in one of the queues (maildrop, incoming, active, deferred, hold)."""
        n = 0
        for _, _, files in os.walk(os.path.join(self.queue, sub)):
            n += len(files)
        return n

    def postconf(self, setting):
        """Change main.cf (`postconf -e`) and reload the running Postfix."""
        subprocess.run([os.path.join(self.sbin, "postconf"), "-e", setting], check=True)
        subprocess.run([self.postfix, "reload"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        time.sleep(0.5)
