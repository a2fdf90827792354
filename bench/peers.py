"""What the delivery benchmarks share: free loopback ports, Postfix's smtp-sink as the
smarthost, and a scratch config per run. Imported by deliver.py and flush.py (Python
puts the script's own directory on the import path)."""
import os
import socket
import subprocess
import time


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
    """smtp-sink on a free port, keeping each message as a file under `work`; with
    `verbose`, it logs connections (see `connections`)."""

    def __init__(self, binary, work, name, verbose=True, backlog=256):
        lib = os.path.join(os.path.dirname(os.path.dirname(binary)), "lib", "postfix")
        self.dumps = os.path.join(work, name + "-dumps")
        os.makedirs(self.dumps)
        os.chmod(self.dumps, 0o777)  # smtp-sink runs as nobody when we are root
        self.port = free_port()
        self.log = os.path.join(work, name + ".log")
        args = [binary] + (["-v"] if verbose else []) + \
            (["-u", "nobody"] if os.getuid() == 0 else []) + \
            ["-d", self.dumps + "/%M.", "127.0.0.1:%d" % self.port, str(backlog)]
        self.p = subprocess.Popen(args, env=dict(os.environ, LD_LIBRARY_PATH=lib),
                                  stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        wait_port(self.port)

    def count(self):
        return len(os.listdir(self.dumps))

    def connections(self):
        return self.connects() - 1  # minus the readiness probe

    def connects(self):
        """Connections accepted so far (with `verbose`), the readiness probe included."""
        with open(self.log) as f:
            return f.read().count(": connect (AF_INET")

    def wait(self, n, limit=120):
        t = time.time()
        while self.count() < n and time.time() - t < limit:
            time.sleep(0.005)
        return self.count()

    def stop(self):
        self.p.kill()
        self.p.wait()


def config(work, name, port, extra=""):
    """A config in work/name relaying everything to 127.0.0.1:port; returns its path."""
    d = os.path.join(work, name)
    os.makedirs(d)
    conf = os.path.join(d, "rsendmail.conf")
    # The spool, as an install makes it: rsendmail makes no spool a SPOOLDIR names.
    os.mkdir(os.path.join(d, "spool"))
    os.chmod(os.path.join(d, "spool"), 0o2770)
    with open(conf, "w") as f:
        f.write("SPOOLDIR %s/spool\nMAILNAME bench.example\nSMARTHOST 127.0.0.1\nPORT %d\n%s"
                % (d, port, extra))
    return conf
