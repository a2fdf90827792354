"""Shared parts of the attack campaign (scripts/chaos): scratch spools, the real SMTP
servers that count what arrives, running the release binaries, and the result rows.

Every section module (chaos/<section>.py) has

    def run(ctx: Context) -> list[Row]

and uses only what is here plus the standard library. A row says what was tried and what
held; `Row.held` is False when a promise broke (a duplicate outside the documented
instant, a loss, a hang, a crash, a leak), and the campaign then exits 1.
"""
from __future__ import annotations

import dataclasses
import email.parser
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAULT_SERVER = ROOT / "tests" / "peers" / "fault_server.py"


@dataclasses.dataclass
class Row:
    """One line of the results table (docs/RELIABILITY.md).

    tried: attempts made (kills landed, connections, files planted...);
    acknowledged: messages the caller was told were taken (exit 0, 250 at the end of DATA);
    once: acknowledged messages that arrived exactly once;
    duplicated: arrivals beyond the first of one message (outside the documented instant
    counts against `held`; `instant` says how many the documented instant explains);
    lost: acknowledged messages that never arrived and are not queued.
    """
    section: str
    case: str
    tried: int = 0
    acknowledged: int = 0
    once: int = 0
    duplicated: int = 0
    lost: int = 0
    instant: int = 0
    held: bool = True
    note: str = ""

    def cells(self):
        return [self.section, self.case, str(self.tried), str(self.acknowledged),
                str(self.once), str(self.duplicated), str(self.lost),
                "yes" if self.held else "**NO**", self.note]


HEADER = ["section", "case", "tried", "acknowledged", "delivered once", "duplicated",
          "lost", "held", "note"]


def markdown(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |")
    return "\n".join(out) + "\n"


@dataclasses.dataclass
class Context:
    """What every section gets: the binaries, a scratch root, the mode and a budget."""
    bin: Path            # target/release/rsendmail
    deliver: Path        # target/release/rsendmail-deliver
    scratch: Path        # a private directory, removed at the end unless --keep
    quick: bool          # the bounded CI part
    seed: int
    smtp_sink: str | None  # Postfix's smtp-sink, when fetched (RSENDMAIL_SMTP_SINK)
    verbose: bool = False

    def say(self, *a):
        if self.verbose:
            print(*a, file=sys.stderr, flush=True)

    def dir(self, name: str) -> Path:
        d = Path(tempfile.mkdtemp(prefix=name + "-", dir=self.scratch))
        return d


def is_root() -> bool:
    return os.geteuid() == 0


def have(cmd: str) -> bool:
    return shutil.which(cmd) is not None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_until(limit: float, cond, step=0.02) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def fit_group() -> int:
    """A group fit for a system spool, as `rsendmail-admin init` wants one: not root's, no
    members, nobody's primary group (`rsendmail` when it is such a group)."""
    import grp
    import pwd
    primary = {p.pw_gid for p in pwd.getpwall()}
    fit = [g for g in grp.getgrall()
           if g.gr_gid != 0 and not g.gr_mem and g.gr_gid not in primary]
    if not fit:
        raise RuntimeError("no group fit for a spool (no members, nobody's primary group)")
    return next((g.gr_gid for g in fit if g.gr_name == "rsendmail"), fit[0].gr_gid)


def make_spool(path: Path):
    """Make the spool at `path` as an install makes it (rsendmail makes no spool a
    SPOOLDIR names): 2770, and as root in a group fit for it (every program refuses a
    spool of root's group)."""
    path.mkdir()
    if os.geteuid() == 0:
        os.chown(path, 0, fit_group())
    os.chmod(path, 0o2770)


class Spool:
    """A scratch configuration and spool: SPOOLDIR, MAILNAME, DNS to a closed port (no
    lookup leaves the machine), mailboxes in the scratch directory, plus `extra`."""

    def __init__(self, ctx: Context, name: str, extra: str = ""):
        self.ctx = ctx
        self.dir = ctx.dir(name)
        self.spool = self.dir / "spool"
        self.mail = self.dir / "mail"
        self.mail.mkdir()
        make_spool(self.spool)
        self.conf = self.dir / "rsendmail.conf"
        self.conf.write_text(
            f"SPOOLDIR {self.spool}\nMAILNAME chaos.example\n"
            f"RESOLVER 127.0.0.1:{free_port()}\nO Timeout.resolver.retrans=1s\n"
            f"O Timeout.resolver.retry=0\nMAILSPOOL {self.mail}\nO ErrorMode=m\n{extra}\n")
        for link in ("sendmail", "mailq"):
            os.symlink(ctx.bin, self.dir / link)

    def reset(self):
        """An empty spool again (made as __init__ makes it: rsendmail makes none)."""
        shutil.rmtree(self.spool, ignore_errors=True)
        make_spool(self.spool)

    def add_config(self, text: str):
        with open(self.conf, "a") as f:
            f.write(text + "\n")

    def argv(self, args, name="sendmail"):
        return [str(self.dir / name), "-C", str(self.conf), *args]

    def sendmail(self, args, stdin: bytes = b"", timeout=60, env=None, prefix=()):
        """Run sendmail -C conf ARGS; (exit code or -signal, stdout, stderr)."""
        p = subprocess.run([*prefix, *self.argv(args)], input=stdin, capture_output=True,
                           timeout=timeout, env=env)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def queue_run(self, extra_args=(), timeout=120):
        """One queue run, in the foreground (`-qf`: a bare `-q` runs in the background
        and returns at once); (code, stdout, stderr)."""
        return self.sendmail(["-qf", *extra_args], timeout=timeout)

    def entries(self) -> list[Path]:
        """Committed queue files (qf*), wherever the spool keeps them."""
        if not self.spool.exists():
            return []
        return sorted(p for p in self.spool.rglob("qf*")
                      if p.is_file() and not {"corrupt", "tmp"} & set(p.relative_to(self.spool).parts))

    def corrupt(self) -> list[Path]:
        c = self.spool / "corrupt"
        return sorted(c.iterdir()) if c.is_dir() else []

    def mailq(self) -> str:
        return self.sendmail(["-bp"], timeout=30)[1]

    def entries_by_message_id(self) -> dict[str, Path]:
        """The committed queue files by the Message-Id in their headers."""
        out = {}
        for qf in self.entries():
            try:
                m = MESSAGE_ID.search(qf.read_bytes())
            except OSError:
                continue
            if m:
                out[m.group(1).decode()] = qf
        return out

    def queued_message_ids(self) -> list[str]:
        """Message-Ids of the messages still queued (from the queue files' headers)."""
        return list(self.entries_by_message_id())

    def mbox_message_ids(self, user: str) -> list[str]:
        p = self.mail / user
        if not p.exists():
            return []
        return [m.decode() for m in MESSAGE_ID.findall(p.read_bytes())]


MESSAGE_ID = re.compile(rb"(?mi)^Message-Id:\s*<([^>\r\n]*)>")


def message(tag: str, n: int, to: str = "bob@example.org", body_lines: int = 3) -> bytes:
    """A message with a unique Message-Id `<tag.n@chaos>` and an end marker line."""
    body = "".join(f"line {i} of message {tag}.{n}\n" for i in range(body_lines))
    return (f"From: alice@chaos.example\nTo: {to}\nSubject: chaos {tag} {n}\n"
            f"Message-Id: <{tag}.{n}@chaos>\n\n{body}END {tag}.{n}\n").encode()


class Server:
    """The aiosmtpd fault server (tests/peers/fault_server.py) on 127.0.0.1: stores each
    accepted message; faults chosen by recipient local part or environment (see its doc)."""

    def __init__(self, ctx: Context, name="server", env: dict | None = None):
        self.state = ctx.dir(name)
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-W", "ignore", str(FAULT_SERVER),
                                      str(self.state)], env=e, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.state / "port"
        if not wait_until(20, port_file.exists):
            raise RuntimeError("fault server did not start")
        self.port = int(port_file.read_text().strip())
        if not wait_until(20, self._greets, step=0.1):
            raise RuntimeError("fault server does not greet")

    def _greets(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                ok = s.recv(4).startswith(b"220")
                s.sendall(b"QUIT\r\n")
                return ok
        except OSError:
            return False

    def messages(self) -> list[tuple[dict, bytes]]:
        d = self.state / "messages"
        out = []
        for j in sorted(d.glob("*.json"), key=lambda p: int(p.stem)):
            try:
                out.append((json.loads(j.read_text()), j.with_suffix(".eml").read_bytes()))
            except (OSError, ValueError):
                pass
        return out

    def arrivals(self) -> dict[str, int]:
        """Message-Id -> times it arrived (one per accepted transaction)."""
        counts: dict[str, int] = {}
        for _env, data in self.messages():
            m = MESSAGE_ID.search(data)
            key = m.group(1).decode() if m else "(no Message-Id)"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def arrivals_per_recipient(self) -> dict[tuple[str, str], int]:
        """(Message-Id, recipient) -> times delivered to that recipient."""
        counts: dict[tuple[str, str], int] = {}
        for env, data in self.messages():
            m = MESSAGE_ID.search(data)
            key = m.group(1).decode() if m else "(no Message-Id)"
            for r in env.get("rcpt_tos", env.get("rcpt", [])):
                counts[(key, r)] = counts.get((key, r), 0) + 1
        return counts

    def transcript(self) -> str:
        try:
            return (self.state / "transcript.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def tally(section: str, case: str, tried: int, acknowledged: list[str],
          arrivals: dict[str, int], still_queued: list[str] = (), instant_allowed: int = 0,
          note: str = "") -> Row:
    """The row for a run: each acknowledged Message-Id must have arrived exactly once
    (or still be queued, when the case leaves it queued on purpose); arrivals of messages
    never acknowledged are fine (the caller was told nothing; a killed submission may still
    have committed) but never twice. `instant_allowed` duplicates are explained by the
    documented "250 received, not yet recorded" instant (the kills that landed there)."""
    once = sum(1 for m in acknowledged if arrivals.get(m, 0) == 1)
    queued = set(still_queued)
    lost = sum(1 for m in acknowledged if arrivals.get(m, 0) == 0 and m not in queued)
    dup = sum(n - 1 for n in arrivals.values() if n > 1)
    held = lost == 0 and dup <= instant_allowed
    return Row(section, case, tried, len(acknowledged), once, dup, lost,
               min(dup, instant_allowed), held, note)


def pids_of(pattern: str) -> list[int]:
    """Processes whose command line contains `pattern` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pattern in cmd and int(d.name) != os.getpid():
            out.append(int(d.name))
    return out


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def kill_all(pattern: str):
    for p in pids_of(pattern):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
