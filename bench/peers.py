"""What the delivery benchmarks share: free loopback ports, Postfix's smtp-sink as the
smarthost, and a scratch config per run. Imported by deliver.py and flush.py (Python
puts the script's own directory on the import path)."""
import os
import socket
import subprocess
import threading
import time

# The spools' group as root: bench/peerns.py's `rsendmail` group (in its namespace;
# outside it a number no account has as its primary group).
SPOOL_GID = 64993


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, limit=10):
    """Wait until something accepts connections on 127.0.0.1:port."""
    t = time.time()
    while time.time() - t < limit:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit("port %d never opened" % port)


class Sink:
    """smtp-sink on a free port, throwing each message away and counting, as its `-c`
    counters say: messages received and sessions ended. Open sessions are read from the
    kernel's socket table (/proc/net/tcp), so a session a client keeps open is counted
    too. Writing no files and no verbose log, the sink is not the slow party: 1,000 2 KB
    messages take it about 0.3 s, against 0.7 s when it kept each as a file (`-d`).
    `verbose` is kept for callers' sake and changes nothing."""

    def __init__(self, binary, work, name, verbose=True, backlog=256):
        lib = os.path.join(os.path.dirname(os.path.dirname(binary)), "lib", "postfix")
        self.port = free_port()
        self.log = os.path.join(work, name + ".log")
        args = [binary, "-c"] + (["-u", "nobody"] if os.getuid() == 0 else []) + \
            ["127.0.0.1:%d" % self.port, str(backlog)]
        self.p = subprocess.Popen(args, env=dict(os.environ, LD_LIBRARY_PATH=lib),
                                  stdout=subprocess.PIPE, stderr=open(self.log, "w"))
        self.counters = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._read_counters, daemon=True).start()
        wait_port(self.port)

    def _read_counters(self):
        """Keeps the latest of smtp-sink's counter lines (`sess=N quit=N mesg=N`, each
        ended by a carriage return) in `counters`."""
        pending = b""
        while True:
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\r")
            for line in reversed(lines):
                fields = dict(f.split(b"=", 1) for f in line.split() if b"=" in f)
                if b"mesg" in fields:
                    with self.lock:
                        self.counters = {k.decode(): int(v) for k, v in fields.items()
                                         if v.isdigit()}
                    break

    def _counter(self, name):
        with self.lock:
            return self.counters.get(name, 0)

    def count(self):
        """Messages received so far."""
        return self._counter("mesg")

    def connections(self):
        return self.connects() - 1  # minus the readiness probe

    def connects(self):
        """Connections accepted so far, the readiness probe included: the sessions that
        ended, and those still open."""
        ended = self._counter("sess")
        return ended + open_connections(self.port)

    def wait(self, n, limit=120):
        t = time.time()
        while self.count() < n and time.time() - t < limit:
            time.sleep(0.005)
        return self.count()

    def stop(self):
        self.p.kill()
        self.p.wait()


def open_connections(port):
    """Established TCP connections whose local end is 127.0.0.1:`port` (the server's
    side), from /proc/net/tcp."""
    want = "0100007F:%04X" % port
    n = 0
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                cols = line.split()
                if len(cols) > 3 and cols[1] == want and cols[3] == "01":
                    n += 1
    except OSError:
        pass
    return n


def config(work, name, port, extra=""):
    """A config in work/name relaying everything to 127.0.0.1:port, its mailboxes in
    work/name/mail unless `extra` names a MAILSPOOL; returns its path."""
    d = os.path.join(work, name)
    os.makedirs(d)
    conf = os.path.join(d, "rsendmail.conf")
    # The spool, as an install makes it: rsendmail makes no spool a SPOOLDIR names; its
    # group neither root's nor a user's primary group (a group no account has, as
    # root), or nothing for the group (mode 0700, as an ordinary user).
    spool = os.path.join(d, "spool")
    os.mkdir(spool)
    if os.getuid() == 0:
        os.chown(spool, 0, SPOOL_GID)
        os.chmod(spool, 0o2770)
    else:
        os.chmod(spool, 0o700)
    # Mailboxes (a report to a local sender, or to postmaster when one fails) stay in
    # the scratch directory, never in the host's /var/mail.
    if "MAILSPOOL" not in extra:
        os.mkdir(os.path.join(d, "mail"))
        extra = "MAILSPOOL %s/mail\n%s" % (d, extra)
    with open(conf, "w") as f:
        f.write("SPOOLDIR %s/spool\nMAILNAME bench.example\nSMARTHOST 127.0.0.1\nPORT %d\n%s"
                % (d, port, extra))
    return conf


def pipelined_source(port, n, sessions, message, sender="bench@bench.example",
                     rcpt="floor@d%d.example"):
    """Send `n` copies of `message` (bytes, LF line ends, no dot at a line's start) to
    127.0.0.1:port from memory over `sessions` parallel SMTP sessions, each one
    connection for all its messages, with ESMTP PIPELINING (RFC 2920) the way a
    pipelining client can use it: MAIL, RCPT and DATA in one write, and each message's
    final dot in the same write as the next message's MAIL, RCPT and DATA (the server's
    354 must come before the text, so one round trip a message is the least). `rcpt`
    takes the message's number modulo 10. Postfix's smtp-source does not pipeline
    (its manual: "No SMTP command pipelining support"). Raises OSError or
    RuntimeError on a refusal."""
    data = message.replace(b"\n", b"\r\n")
    data += (b"" if data.endswith(b"\r\n") else b"\r\n") + b".\r\n"
    lock = threading.Lock()
    left = [n]
    errors = []

    def take():
        with lock:
            if left[0] == 0:
                return None
            left[0] -= 1
            return n - left[0] - 1

    def session():
        try:
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            f = s.makefile("rb")

            def reply():
                """One reply, its lines read; its code."""
                while True:
                    line = f.readline()
                    if len(line) < 4:
                        raise RuntimeError("connection lost")
                    if line[3:4] != b"-":
                        return int(line[:3])

            def expect(*codes):
                for want in codes:
                    got = reply()
                    if got != want:
                        raise RuntimeError("reply %d, expected %d" % (got, want))

            expect(220)
            s.sendall(b"EHLO floor.bench.example\r\n")
            ehlo = []
            while True:
                line = f.readline()
                ehlo.append(line[4:].strip().upper())
                if len(line) < 4 or line[3:4] != b"-":
                    break
            if b"PIPELINING" not in ehlo:
                raise RuntimeError("the server does not offer PIPELINING")
            i = take()
            if i is None:
                s.sendall(b"QUIT\r\n")
                return
            envelope = lambda k: b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (
                sender.encode(), (rcpt % (k % 10)).encode())
            s.sendall(envelope(i))
            expect(250, 250, 354)
            while True:
                nxt = take()
                if nxt is None:
                    s.sendall(data + b"QUIT\r\n")
                    expect(250, 221)
                    break
                s.sendall(data + envelope(nxt))
                expect(250, 250, 250, 354)
            s.close()
        except (OSError, RuntimeError) as e:
            errors.append(e)

    threads = [threading.Thread(target=session) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
