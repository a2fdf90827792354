"""Faulty servers: 4xx and 5xx at the greeting, EHLO, MAIL, RCPT, DATA and after the final
dot; a connection dropped in the middle of the data and at the dot; silence at RCPT and
after the dot; replies that drip a byte at a time; STARTTLS that fails after its 220; and
Postfix's smtp-sink with its own fault switches.

For each case a message is queued (-odq) and a first run (-qf) meets the faulty server.
Then the faulty server is replaced by a healthy one on the same port and a second run
ends it. Promises checked, per message (by Message-Id): a temporary fault leaves it
queued after the first run and it arrives exactly once in the end; a permanent one
bounces it exactly once to the sender (its mailbox) and it never arrives; never both,
never lost, never partial (the data that arrived ends with the message's END line); the
spool ends empty; each run ends within its deadline (the SMTP timeouts are set to a few
seconds, so a run that waits longer than a bound derived from them failed to keep them);
after a failed STARTTLS nothing of the message went in clear.
"""
from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from pathlib import Path

import common
from common import Row, Server, Spool, message, wait_until

SECTION = "faults"
T = 3  # seconds: every SMTP client timeout in these cases


class FaultyServer(Server):
    """The fault server, started with no greeting check (its greeting may be a refusal, a
    drip, or nothing at all): ready when it accepts a connection."""

    def _greets(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            return True
        except OSError:
            return False


class Sink:
    """Postfix's smtp-sink with fault switches; it keeps nothing (no arrivals counted)."""

    def __init__(self, ctx, args: list[str]):
        self.dir = ctx.dir("sink")
        binary = Path(ctx.smtp_sink)
        lib = binary.parent.parent / "lib" / "postfix"
        self.port = common.free_port()
        env = dict(os.environ, LD_LIBRARY_PATH=str(lib))
        user = ["-u", "nobody"] if common.is_root() else []
        self.log = self.dir / "sink.log"
        self.proc = subprocess.Popen([str(binary), "-v", *user, *args,
                                      f"127.0.0.1:{self.port}", "64"],
                                     env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))
        if not wait_until(10, self._listens, step=0.05):
            self.stop()
            raise RuntimeError("smtp-sink did not start")

    def _listens(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            return True
        except OSError:
            return False

    def arrivals(self):
        return {}

    def transcript(self):
        return self.log.read_text(errors="replace")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def me() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def timeouts(t: int = T) -> str:
    return "\n".join(f"O Timeout.{n}={t}s" for n in
                     ("connect", "initial", "helo", "mail", "rcpt", "datainit",
                      "datablock", "datafinal", "rset", "quit"))


def timed_run(sp: Spool, bound: float) -> tuple[int, float]:
    """-qf, killed after `bound` seconds (exit -999 then); (exit, seconds)."""
    t0 = time.monotonic()
    try:
        code = sp.sendmail(["-qf"], timeout=bound)[0]
    except subprocess.TimeoutExpired:
        code = -999
        common.kill_all(str(sp.conf))
    return code, time.monotonic() - t0


def scenario(ctx, title: str, cases: list[tuple[str, str, str]], env: dict | None = None,
             extra: str = "", sink: list[str] | None = None, healthy_env: dict | None = None,
             healthy_extra: str = "", bound: float = 30.0, tls: dict | None = None,
             check_clear: bool = False, deadline: float | None = 2 * T + 2) -> list[Row]:
    """Run one faulty server over `cases` (name, recipient, expect: "temp", "perm",
    "once" (delivered in the first run, e.g. after a fall-back) or "any" (delivered or
    bounced exactly once)); a row per case. Each run is killed after `bound` seconds; the
    first must end within `deadline` (what its SMTP timeouts promise) when given."""
    sender = f"{me()}@chaos.example"
    rows = []
    faulty = healthy = None
    sp = None
    try:
        if sink is not None:
            if not ctx.smtp_sink:
                return [Row(SECTION, f"{title}: {c[0]}", held=True,
                            note="skipped: smtp-sink not available (RSENDMAIL_SMTP_SINK)")
                        for c in cases]
            faulty = Sink(ctx, sink)
        else:
            faulty = FaultyServer(ctx, "faulty", env=dict(env or {}, **(tls or {})))
        port = faulty.port
        sp = Spool(ctx, "faults", f"SMARTHOST 127.0.0.1\nPORT {port}\n{timeouts()}\n{extra}")
        acked = set()
        for n, (name, rcpt, _expect) in enumerate(cases):
            code, out, _err = sp.sendmail(["-odq", "-f", sender, rcpt],
                                          message("fault", n, to=rcpt), timeout=30)
            if code == 0:
                acked.add(f"fault.{n}@chaos")
        code1, took1 = timed_run(sp, bound)
        queued1 = set(sp.queued_message_ids())
        first = dict(faulty.arrivals())
        bounced1 = sp.mbox_message_ids(me())
        transcript = faulty.transcript()
        faulty_messages = faulty.messages() if isinstance(faulty, Server) else []
        faulty.stop()
        faulty = None
        h_env = dict(healthy_env or {}, PORT=str(port), HEALTHY="1", **(tls or {}))
        healthy = FaultyServer(ctx, "healthy", env=h_env)
        if healthy_extra:
            sp.add_config(healthy_extra)
        code2, took2 = timed_run(sp, bound)
        second = healthy.arrivals()
        got = [d for _e, d in healthy.messages()]
        got += [d for _e, d in faulty_messages]
        data = [(m.group(1).decode(), d) for m, d in
                ((common.MESSAGE_ID.search(d), d) for d in got) if m]
        bounced = sp.mbox_message_ids(me())
        left = common.Spool.entries(sp)
        for n, (name, rcpt, expect) in enumerate(cases):
            mid = f"fault.{n}@chaos"
            arrived = first.get(mid, 0) + second.get(mid, 0)
            nb = bounced.count(mid)
            notes = [f"runs {took1:.1f} s + {took2:.1f} s"]
            if nb == 1 and arrived == 0:
                notes.insert(0, "bounced to the sender once")
            ok = mid in acked
            if not ok:
                notes.append("submission refused")
            if arrived + nb != 1:
                ok = False
                notes.append(f"arrived {arrived}, bounced {nb}")
            if expect == "temp" and (mid not in queued1 or first.get(mid, 0) or
                                     mid in bounced1):
                ok = False
                notes.append("not queued after the temporary fault")
            if expect == "temp" and second.get(mid, 0) != 1:
                ok = False
                notes.append("not delivered by the healthy server")
            if expect == "perm" and (nb != 1 or arrived or mid not in bounced1):
                ok = False
                notes.append("not bounced in the first run")
            if expect == "once" and first.get(mid, 0) != 1:
                ok = False
                notes.append("not delivered in the first run")
            for m, d in data:
                if m == mid and not d.rstrip(b"\r\n").endswith(f"END fault.{n}".encode()):
                    ok = False
                    notes.append("partial message arrived")
            if code1 == -999 or code2 == -999:
                ok = False
                notes.append(f"a run passed its {bound:.0f} s bound")
            elif deadline is not None and took1 > deadline:
                ok = False
                notes.append(f"the first run passed its {deadline:.0f} s deadline")
            if left:
                ok = False
                notes.append(f"{len(left)} entries left")
            if check_clear and "TLS-FAIL" not in transcript:
                ok = False
                notes.append("STARTTLS never tried")
            if check_clear:
                clear = clear_after_starttls(transcript)
                if clear:
                    ok = False
                    notes.append(f"sent in clear after STARTTLS: {clear[:2]}")
            row = Row(SECTION, f"{title}: {name}", 1, int(mid in acked),
                      1 if arrived == 1 and nb == 0 else 0, max(0, arrived - 1) + max(0, nb - 1),
                      1 if (arrived + nb == 0 and mid not in set(sp.queued_message_ids())) else 0,
                      0, ok, "; ".join(notes))
            rows.append(row)
        return rows
    finally:
        for s in (faulty, healthy):
            if s is not None:
                s.stop()
        if sp is not None:
            common.kill_all(str(sp.conf))


def aggregate(rows: list[Row]) -> list[Row]:
    """One row per case of rows named "<case> #<k>": counts added, held by all, the notes
    that differ kept once each."""
    out: dict[str, Row] = {}
    for r in rows:
        name = r.case.rsplit(" #", 1)[0]
        a = out.setdefault(name, Row(r.section, name))
        a.tried += r.tried
        a.acknowledged += r.acknowledged
        a.once += r.once
        a.duplicated += r.duplicated
        a.lost += r.lost
        a.held = a.held and r.held
        a.note = "; ".join(dict.fromkeys(filter(None, a.note.split("; ") + r.note.split("; "))))
    return list(out.values())


def clear_after_starttls(transcript: str) -> list[str]:
    """Commands a session gave in clear after its STARTTLS got 220 (TLS-FAIL logged)."""
    failed = set()
    bad = []
    for line in transcript.splitlines():
        sess, _, what = line.partition(" ")
        if what.startswith("TLS-FAIL"):
            failed.add(sess)
        elif sess in failed and what.split(" ")[0] in ("MAIL", "RAW-MAIL", "RCPT",
                                                       "RAW-RCPT", "DATA-END", "AUTH"):
            bad.append(what)
    return bad


def make_cert(ctx) -> dict | None:
    if not common.have("openssl"):
        return None
    d = ctx.dir("pki")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(d / "k.pem"), "-out", str(d / "c.pem"), "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        return None
    return {"TLS_CERT": str(d / "c.pem"), "TLS_KEY": str(d / "k.pem"),
            "TLS_MODE": "starttls"}


def run(ctx) -> list[Row]:
    rows: list[Row] = []
    quick = ctx.quick
    # Faults chosen by recipient, all on one server and one run (connections are reused
    # across entries, so a fault in one transaction meets the next entry too).
    by_rcpt = [
        ("550 at RCPT", "reject5@example.org", "perm"),
        ("450 at RCPT", "reject4@example.org", "temp"),
        ("554 after the final dot", "rejectdata5@example.org", "perm"),
        ("451 after the final dot", "rejectdata4@example.org", "temp"),
        ("connection closed at the final dot, no reply", "dropdata@example.org", "temp"),
        ("connection closed in the middle of the data", "dropmid@example.org", "temp"),
        (f"silence after the final dot (Timeout.datafinal={T}s)", "hangdot@example.org",
         "temp"),
        (f"silence at RCPT (Timeout.rcpt={T}s)", "stallrcpt@example.org", "temp"),
    ]
    rows += scenario(ctx, "by recipient", by_rcpt, env={"STALL": str(3 * T)})
    if not quick:
        # Five of each, interleaved: the faults meet each other on reused connections.
        rows += aggregate(scenario(ctx, "by recipient, five of each interleaved",
                                   [(f"{name} #{k}", rcpt.replace("@", f"{k}@"), expect)
                                    for k in range(5) for name, rcpt, expect in by_rcpt],
                                   env={"STALL": str(3 * T)}, deadline=None))
    # Faults by command, one server each.
    by_verb = [
        ("421 greeting", {"GREETING": "421 4.3.2 Not now (test)"}, "temp"),
        ("554 greeting", {"GREETING": "554 5.3.2 No service (test)"}, "any"),
        ("421 to EHLO", {"WRONG_REPLY": "EHLO 421 4.3.2 Not now (test)"}, "temp"),
        ("550 to EHLO (HELO follows)", {"WRONG_REPLY": "EHLO 550 5.5.1 No EHLO (test)"},
         "any"),
        ("451 to MAIL", {"WRONG_REPLY": "MAIL 451 4.3.0 Try later (test)"}, "temp"),
        ("553 to MAIL", {"WRONG_REPLY": "MAIL 553 5.1.8 Sender refused (test)"}, "perm"),
        ("451 to DATA", {"WRONG_REPLY": "DATA 451 4.3.0 Try later (test)"}, "temp"),
        ("554 to DATA", {"WRONG_REPLY": "DATA 554 5.3.0 No data (test)"}, "perm"),
        ("421 after the final dot", {"WRONG_REPLY": "DOT 421 4.3.2 Closing (test)"}, "temp"),
    ]
    if quick:
        by_verb = [c for c in by_verb if c[0] not in ("421 to EHLO", "451 to DATA")]
    for name, env, expect in by_verb:
        rows += scenario(ctx, "by command", [(name, "ok@example.org", expect)], env=env)
    # RSET refused between the transactions of one connection.
    rows += scenario(ctx, "RSET answered 500 between transactions",
                     [(f"message {i}", f"r{i}@example.org", "once") for i in range(3)],
                     env={"RSET_FAIL": "1"})
    # Replies that drip one byte at a time: each run must end within its deadline.
    drips = [("from the greeting", {"DRIP": "1"}),
             ("from the RCPT reply", {"DRIP": "1", "DRIP_FROM": "RCPT"}),
             ("from the DATA reply", {"DRIP": "1", "DRIP_FROM": "DATA"})]
    if not quick:
        drips += [("from the EHLO reply", {"DRIP": "1", "DRIP_FROM": "EHLO"}),
                  ("from the MAIL reply", {"DRIP": "1", "DRIP_FROM": "MAIL"}),
                  ("fast drip (0.2 s a byte) from the greeting", {"DRIP": "0.2"})]
    for name, env in drips:
        rows += scenario(ctx, f"1 byte a second, Timeout.*={T}s",
                         [(name, "ok@example.org", "temp")], env=env, bound=4 * T + 10,
                         deadline=2 * T + 2)
    # STARTTLS that fails after its 220: nothing of the message in clear.
    tls = make_cert(ctx)
    for how in ("close", "plain"):
        name = f"STARTTLS 220 then {'the connection closed' if how == 'close' else 'no handshake'}"
        if tls is None:
            rows.append(Row(SECTION, name, note="skipped: openssl not available"))
            continue
        rows += scenario(ctx, "STARTTLS required", [(name, "ok@example.org", "temp")],
                         env={"STARTTLS_FAIL": how}, tls=tls, extra="STARTTLS\nINSECURE",
                         check_clear=True)
        if not quick:
            rows += scenario(ctx, "STARTTLS opportunistic", [(name, "ok@example.org", "any")],
                             env={"STARTTLS_FAIL": how}, tls=tls,
                             extra="STARTTLS\nOPPORTUNISTIC_TLS\nINSECURE", check_clear=True)
    # Postfix's smtp-sink fault switches.
    sink_cases = [("smtp-sink -r rcpt (4xx)", ["-r", "rcpt"], "temp"),
                  ("smtp-sink -f data (5xx)", ["-f", "data"], "perm"),
                  ("smtp-sink -q . (no reply after the dot, disconnect)", ["-q", "."], "temp")]
    if not quick:
        sink_cases += [("smtp-sink -r connect (4xx greeting)", ["-r", "connect"], "temp"),
                       ("smtp-sink -f mail (5xx)", ["-f", "mail"], "perm"),
                       ("smtp-sink -r . (4xx after the dot)", ["-r", "."], "temp"),
                       ("smtp-sink -f . (5xx after the dot)", ["-f", "."], "perm")]
    for name, args, expect in sink_cases:
        rows += scenario(ctx, "smtp-sink", [(name, "ok@example.org", expect)], sink=args)
    return rows
