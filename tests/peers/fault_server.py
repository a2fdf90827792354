#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for rsendmail's tests, with faults chosen per recipient.

Usage: fault_server.py STATE_DIR

Listens on 127.0.0.1 on an ephemeral port, writes the port to STATE_DIR/port when it is
ready, and stores each accepted message as STATE_DIR/messages/<n>.eml with its envelope in
STATE_DIR/messages/<n>.json. Every session's commands are appended to
STATE_DIR/transcript.log ("<session> <command>").

Faults, by the local part of the sender:
  rejectmail5...  550 5.7.1 at MAIL
  rejectmail4...  451 4.7.1 at MAIL
Faults, by the local part of a recipient:
  reject5...      550 5.1.1 at RCPT
  reject4...      450 4.2.0 at RCPT
  toomany...      452 4.5.3 at RCPT the first time it is seen, then accepted
  rejectdata5...  554 5.6.0 after the data
  rejectdata4...  451 4.3.0 after the data
  dropdata...     the connection is closed at the end of the data with no reply, the
                  first time for each such recipient
  stall...        no reply after the data, for STALL seconds (default 30), then taken
                  (sooner once the file STALL_UNTIL names, if set, exists)
  stallrcpt...    no reply to RCPT for STALL seconds the first time it is seen, then 250
                  (no stall after its data)
  hangdot...      no reply after the data for STALL seconds, then the connection is
                  closed with no reply and the message is not taken (a server that hangs
                  before it commits)
  dropmid...      the connection is closed after two lines of the data, before the final
                  dot, the first time for each such recipient
  raw...          the reply RAW_REPLY at RCPT (default "550 5.1.1 raw reply (test)")
  rawdata...      the reply RAW_DATA_REPLY after the data (default "554 5.6.0 raw reply
                  (test)")
RAW_REPLY and RAW_DATA_REPLY are written in ASCII with Python's backslash escapes
(\\r, \\x00, \\x1b, \\u009b), so that a reply can hold any character, a bare CR or a NUL
among them; the server sends the text as it is, then CRLF.
A client's commands already received when a message's data ends (sent with its final
dot, RFC 2920 3.1) are logged "AHEAD <their first 4 octets>".
Options (environment): PIPELINING=1 offers PIPELINING (RFC 2920) where aiosmtpd does
not offer it itself; NO_PIPELINING=1 hides PIPELINING; NO_8BITMIME=1 hides 8BITMIME
(with NO_SMTPUTF8=1: a server that takes only 7-bit mail); NO_EHLO=1 refuses EHLO (502);
RSET_FAIL=1 answers RSET with 500;
replies outside what a command allows (RFC 5321 4.3.2), each logged as "WRONG-REPLY":
DATA_250=1 answers DATA with 250 and reads no data; EXTRA_REPLIES=1 sends two more
250 replies after each MAIL reply, in the same write; WRONG_REPLY="VERB reply" answers
the command VERB (EHLO, HELO, MAIL, RCPT, DATA, RSET, STARTTLS, AUTH, or DOT for the end
of the data) with that reply instead, doing nothing else; EXTRA_AFTER_DOT=1 sends a
421 right after the reply that accepts a message, in the same write; CLOSE_AFTER_DOT=1
closes the connection, with no reply, at the first RSET or MAIL after a message was
accepted (logged "CLOSE-AFTER-DOT at VERB"): a cached connection the server ended;
MAIL_AFTER_DOT=close|421|reset answers an RSET after an accepted message as usual and
the MAIL after it by closing the connection with no reply (close), with 421 4.3.2 and
closing it (421), or by resetting it (reset: a TCP RST) (logged "MAIL-AFTER-DOT <mode>"):
a cached connection that dies on its next transaction;
STRICT=1 refuses (554 5.6.0) any message with a line over 998 octets (RFC 5321
4.5.3.1.6, the transparency dot not counted) or a bare CR or LF, and keeps what it got in
STATE_DIR/refused/<n>.eml; it also refuses (501 5.1.3) a MAIL or RCPT address that is not
an RFC 5321 Mailbox (dot-string or quoted local part, LDH labels or an address literal)
or whose local part is over RFC 5321's 64 octets (4.5.3.1.1);
TLS_CERT and TLS_KEY with TLS_MODE=starttls (offer STARTTLS) or implicit (TLS from the
first byte); AUTH_USER and AUTH_PASS make AUTH PLAIN/LOGIN/CRAM-MD5 required (AUTH_ONLY_CRAM=1 offers
only CRAM-MD5, AUTH_NO_CRAM=1 only PLAIN and LOGIN; AUTH_ECHO=1 answers refused PLAIN
or LOGIN credentials with a 535 that echoes the user, the password, and the password's
base64 forms as PLAIN and LOGIN send them; ECHO_LATER=1, once a client has
authenticated with PLAIN or LOGIN, greets every later connection with a 421 that echoes
that password and its base64, and closes it; SPLIT_ECHO=MAIL or SPLIT_ECHO=RCPT answers
that command with a two-line 450 that splits AUTH_PASS across its lines, logged
"SPLIT-ECHO <verb>"). TLS_CLIENT_CA=ca.pem requires a
client certificate that CA signed, and the transcript names its CN ("client=<cn>"). The transcript marks
MAIL commands given over TLS ("tls") and after AUTH ("auth=<user>"). BIND=::1 listens
on IPv6 loopback instead of 127.0.0.1. NO_SMTPUTF8=1 does not offer SMTPUTF8 (and
refuses commands that are not ASCII, as aiosmtpd does then). DATA_SIZE_LIMIT=n takes
messages up to n bytes (0: any size) instead of aiosmtpd's 32 MiB.
Line length: by default the server keeps aiosmtpd's own limit (line_length_limit 1001,
a line of at most 999 octets and its CRLF) and answers a message with a longer line
"500 Line too long (see RFC5321 4.5.3.1.6)" at the end of its data, the session going
on. LONG_LINES=554 takes lines of any length and answers a message with a line over 998
octets (the transparency dot not counted) "554 5.6.0 Line too long" at the end of its
data; LONG_LINES=close closes the connection there instead, with no reply;
LONG_LINES=mid answers "500 5.5.2 Line too long" as soon as a line over aiosmtpd's limit
arrives, in the middle of the data, and closes the connection. Each such refusal is
logged "LONG-LINE <mode>".
XVERP=1 offers XVERP (Postfix's extension) and takes `XVERP` or `XVERP=xy` in MAIL
(kept in the message's mail_options). HEALTHY=1 ignores the faults chosen by recipient. PORT=n listens on that port instead of one the kernel chooses (a healthy server taking
the place of a faulty one). GREETING="reply" greets with that reply instead of 220
(logged "WRONG-REPLY GREETING"); a 421 greeting is followed by closing the connection.
PAD=n ends the GREETING and WRONG_REPLY replies with n more "x" (a line longer than an
environment variable may hold; the log shows its first 80 characters).
DRIP=seconds sends every reply one byte at a time, that many seconds apart (a server that
drips); DRIP_FROM=VERB starts dripping only with the reply to that command (EHLO, MAIL,
RCPT, DATA, or DOT for the end of the data). STARTTLS_FAIL=close answers STARTTLS with
220 and then closes the connection; STARTTLS_FAIL=plain answers it with 220 and then
reads the next commands in clear (a TLS handshake never starts: logged "TLS-FAIL").
"""
import asyncio
import json
import os
import re
import socket
import struct
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

STATE = sys.argv[1]
MSGS = os.path.join(STATE, "messages")
os.makedirs(MSGS, exist_ok=True)
SEEN = set()
# The password a client authenticated with (ECHO_LATER).
LEARNED = []
COUNT = [0]
STALL = float(os.environ.get("STALL", "30"))
HEALTHY = bool(os.environ.get("HEALTHY"))


async def stall():
    """The stall after a stall recipient's data: STALL seconds, or less when the file
    STALL_UNTIL names comes to exist before."""
    gate = os.environ.get("STALL_UNTIL")
    if not gate:
        await asyncio.sleep(STALL)
        return
    end = asyncio.get_running_loop().time() + STALL
    while asyncio.get_running_loop().time() < end and not os.path.exists(gate):
        await asyncio.sleep(0.05)


def raw_reply(name, default):
    """The reply the environment variable `name` spells with backslash escapes."""
    import codecs
    return codecs.decode(os.environ.get(name, default), "unicode_escape")


def strict_problem(data):
    """Why a strict server refuses this DATA (unstuffed, CRLF lines), or None."""
    if data and not data.endswith(b"\r\n"):
        return "no CRLF at the end"
    for n, line in enumerate(data.split(b"\r\n")[:-1], 1):
        if b"\r" in line or b"\n" in line:
            return "bare CR or LF in line %d" % n
        if len(line) > 998:
            return "line %d has %d octets" % (n, len(line))
    return None


# RFC 5321 section 4.1.2 Mailbox, strictly: a Dot-string or Quoted-string local part,
# and a domain of letter-digit-hyphen labels or an address literal.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
MAILBOX = re.compile(
    r"^(?:%s+(?:\.%s+)*|\"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*\")"
    r"@(?:%s(?:\.%s)*|\[[\x21-\x5a\x5e-\x7e]+\])$" % (_ATEXT, _ATEXT, _LABEL, _LABEL))


def strict_address(address, null_ok):
    """Why a strict server refuses this MAIL or RCPT address, or None."""
    if address in ("", "<>") and null_ok:
        return None
    if not MAILBOX.match(address or ""):
        return "501 5.1.3 Bad address syntax: %r (strict)" % address
    local = address.rsplit("@", 1)[0]
    if len(local.encode()) > 64:
        return "501 5.1.3 Local part over 64 octets: %r (strict)" % address
    return None


def wrong_reply(verb):
    """The reply WRONG_REPLY (or DATA_250) gives the command `verb` instead, or None."""
    if verb == "DATA" and os.environ.get("DATA_250"):
        return "250 2.0.0 Ok: no data needed (test)"
    v, _, reply = os.environ.get("WRONG_REPLY", "").partition(" ")
    return padded(reply) if v.upper() == verb else None


def padded(reply):
    """`reply` with PAD more "x" at its end."""
    return reply + "x" * int(os.environ.get("PAD", "0"))


def split_echo(session, verb):
    """SPLIT_ECHO's reply: AUTH_PASS split across the lines of a 450."""
    log(id(session), "SPLIT-ECHO %s" % verb)
    password = os.environ.get("AUTH_PASS", "")
    half = len(password) // 2
    return "450-4.2.0 first half %s\r\n450 4.2.0 %s second half" % (
        password[:half], password[half:])


def log(session, line):
    with open(os.path.join(STATE, "transcript.log"), "a") as f:
        f.write("%s %s\n" % (session, line))


class Handler:
    async def auth_CRAM__MD5(self, server, args):
        """RFC 2195, so that the client's CRAM-MD5 meets a real exchange."""
        import hashlib
        import hmac
        from aiosmtpd.smtp import AuthResult
        challenge = b"<%d.%d@fault.test>" % (os.getpid(), COUNT[0])
        resp = await server.challenge_auth(challenge)
        try:
            # aiosmtpd hands back the client's line already base64-decoded.
            user, digest = bytes(resp).decode().split(" ", 1)
        except Exception:
            log(id(server.session), "AUTH CRAM-MD5 unreadable response")
            return AuthResult(success=False, handled=False)
        want = hmac.new(os.environ.get("AUTH_PASS", "").encode(), challenge, hashlib.md5).hexdigest()
        ok = user == os.environ.get("AUTH_USER") and hmac.compare_digest(digest, want)
        log(id(server.session), "AUTH CRAM-MD5 %s" % ("ok" if ok else "refused"))
        if ok:
            server.session.auth_user = user
        return AuthResult(success=ok, handled=False)

    async def handle_HELO(self, server, session, envelope, hostname):
        log(id(session), "HELO %s" % hostname)
        session.host_name = hostname
        return "250 fault.test"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        log(id(session), "EHLO %s" % hostname)
        if os.environ.get("NO_EHLO"):
            return ["502 5.5.2 EHLO not implemented"]
        session.host_name = hostname
        if os.environ.get("XVERP"):
            responses = [r.replace("250 ", "250-", 1) if r.startswith("250 ") else r
                         for r in responses] + ["250 XVERP"]
        if os.environ.get("PIPELINING") and not any("PIPELINING" in r for r in responses):
            # aiosmtpd reads its commands in order from one stream: it takes them
            # pipelined, but does not say so itself (before 1.4.7).
            responses = [r.replace("250 ", "250-", 1) if r.startswith("250 ") else r
                         for r in responses] + ["250 PIPELINING"]
        hidden = [k for k, v in (("PIPELINING", "NO_PIPELINING"), ("8BITMIME", "NO_8BITMIME"))
                  if os.environ.get(v)]
        if hidden:
            responses = [r for r in responses if not any(k in r for k in hidden)]
            # keep the last line a final line
            if responses and responses[-1].startswith("250-"):
                responses[-1] = "250 " + responses[-1][4:]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if os.environ.get("SPLIT_ECHO") == "MAIL":
            return split_echo(session, "MAIL")
        marks = []
        if session.ssl or server.transport.get_extra_info("ssl_object") is not None:
            marks.append("tls")
            peer = server.transport.get_extra_info("peercert")
            if peer:
                subject = dict(x[0] for x in peer.get("subject", ()))
                marks.append("client=%s" % subject.get("commonName", "?"))
        if session.authenticated:
            marks.append("auth=%s" % getattr(session, "auth_user", "?"))
        log(id(session), "MAIL %s %s %s" % (address, " ".join(mail_options), " ".join(marks)))
        if not os.environ.get("HEALTHY"):
            if address.startswith("rejectmail5"):
                return "550 5.7.1 Sender refused (test)"
            if address.startswith("rejectmail4"):
                return "451 4.7.1 Sender deferred (test)"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.mail_options.extend(getattr(session, "xverp", []))
        session.xverp = []
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if os.environ.get("SPLIT_ECHO") == "RCPT":
            return split_echo(session, "RCPT")
        log(id(session), "RCPT %s %s" % (address, " ".join(rcpt_options)))
        local = "" if HEALTHY else address.split("@")[0].lower()
        if local.startswith("rawdata"):
            pass
        elif local.startswith("raw"):
            return raw_reply("RAW_REPLY", "550 5.1.1 raw reply (test)")
        if local.startswith("reject5"):
            return "550 5.1.1 <%s>: Recipient address rejected: test" % address
        if local.startswith("reject4"):
            return "450 4.2.0 <%s>: Recipient address temporarily rejected: test" % address
        if local.startswith("stallrcpt") and ("stall " + address) not in SEEN:
            SEEN.add("stall " + address)
            await asyncio.sleep(STALL)
        if local.startswith("toomany") and address not in SEEN:
            SEEN.add(address)
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_QUIT(self, server, session, envelope):
        log(id(session), "QUIT")
        return "221 Bye"

    async def handle_RSET(self, server, session, envelope):
        log(id(session), "RSET")
        if os.environ.get("RSET_FAIL"):
            return "500 5.5.1 RSET refused (test)"
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        rcpts = [] if HEALTHY else [r.split("@")[0].lower() for r in envelope.rcpt_tos]
        log(id(session), "DATA-END %d bytes" % len(envelope.original_content or b""))
        # The client's next commands already here when the data ends: sent with the
        # final dot, before its reply (RFC 2920 3.1).
        waiting = getattr(getattr(server, "_reader", None), "_buffer", b"")
        if waiting:
            log(id(session), "AHEAD %s" % bytes(waiting[:4]).decode("ascii", "replace"))
        wrong = wrong_reply("DOT")
        if wrong is not None:
            log(id(session), "WRONG-REPLY DOT %s" % wrong)
            return wrong
        long_lines = os.environ.get("LONG_LINES")
        if long_lines in ("554", "close"):
            longest = max((len(l) for l in (envelope.original_content or b"").split(b"\r\n")),
                          default=0)
            if longest > 998:
                log(id(session), "LONG-LINE %s %d octets" % (long_lines, longest))
                if long_lines == "close":
                    server.transport.close()
                    return "451 4.3.0 (connection closed)"
                return "554 5.6.0 Line too long: %d octets (test)" % longest
        if os.environ.get("STRICT"):
            why = strict_problem(envelope.original_content or b"")
            if why:
                log(id(session), "DATA-REFUSED %s" % why)
                refused = os.path.join(STATE, "refused")
                os.makedirs(refused, exist_ok=True)
                with open(os.path.join(refused, "%06d.eml" % len(os.listdir(refused))), "wb") as f:
                    f.write(envelope.original_content or b"")
                return "554 5.6.0 Message refused: %s (strict)" % why
        drops = ["drop " + r for r in rcpts if r.startswith("dropdata")]
        if drops and not SEEN.issuperset(drops):
            SEEN.update(drops)
            server.transport.close()
            return "451 4.3.0 (connection closed)"
        if any(r.startswith("hangdot") for r in rcpts):
            await asyncio.sleep(STALL)
            log(id(session), "HANG-DOT closed with no reply, message not taken")
            server.transport.close()
            return "451 4.3.0 (connection closed)"
        if any(r.startswith("stall") and not r.startswith("stallrcpt") for r in rcpts):
            await stall()
        if any(r.startswith("rawdata") for r in rcpts):
            return raw_reply("RAW_DATA_REPLY", "554 5.6.0 raw reply (test)")
        if any(r.startswith("rejectdata5") for r in rcpts):
            return "554 5.6.0 Message rejected (test)"
        if any(r.startswith("rejectdata4") for r in rcpts):
            return "451 4.3.0 Try again later (test)"
        if os.environ.get("DRIP_FROM", "").upper() == "DOT":
            server.dripping = True
        COUNT[0] += 1
        n = COUNT[0]
        base = os.path.join(MSGS, "%06d" % n)
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or b"")
        with open(base + ".json.tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "mail_options": envelope.mail_options,
                       "rcpt_options": envelope.rcpt_options}, f)
        os.rename(base + ".json.tmp", base + ".json")
        if os.environ.get("EXTRA_AFTER_DOT"):
            log(id(session), "WRONG-REPLY DOT 421 after the 250")
            return "250 2.0.0 Ok: queued as TEST%d\r\n421 4.3.2 Going away (test)" % n
        if os.environ.get("CLOSE_AFTER_DOT"):
            # The 250 goes out; the next command finds the connection closed, as a
            # client finds its cached connection after the server ended the idle session.
            server.close_next = True
        if os.environ.get("MAIL_AFTER_DOT"):
            server.mail_fault_next = True
        return "250 2.0.0 Ok: queued as TEST%d" % n


def tls_context():
    import ssl
    if not os.environ.get("TLS_CERT"):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    if os.environ.get("TLS_CLIENT_CA"):
        ctx.load_verify_locations(os.environ["TLS_CLIENT_CA"])
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def authenticator(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult
    ok = (auth_data.login.decode() == os.environ.get("AUTH_USER")
          and auth_data.password.decode() == os.environ.get("AUTH_PASS"))
    if ok:
        session.auth_user = auth_data.login.decode()
        if mechanism in ("PLAIN", "LOGIN"):
            LEARNED[:] = [auth_data.password]
    log(id(session), "AUTH %s %s" % (mechanism, "ok" if ok else "refused"))
    if not ok and os.environ.get("AUTH_ECHO"):
        import base64
        login, password = auth_data.login, auth_data.password
        plain = base64.b64encode(b"\0" + login + b"\0" + password).decode()
        return AuthResult(success=False, handled=False, message=(
            "535 5.7.8 Authentication failed for %s pw %s plain %s login %s"
            % (login.decode(), password.decode(), plain,
               base64.b64encode(password).decode())))
    return AuthResult(success=ok, handled=False)


class LoggingSMTP(SMTP):
    """aiosmtpd's server, logging each MAIL and RCPT argument as the client sent it
    ("RAW-MAIL FROM:<...> ..."), before aiosmtpd's own parsing can refuse it, and
    breaking the protocol where the options above say so."""

    greeted = False
    dripping = False

    def drip_from(self, verb):
        if os.environ.get("DRIP_FROM", "").upper() == verb:
            self.dripping = True

    async def push(self, status):
        if not self.greeted:
            self.greeted = True
            self.dripping = bool(os.environ.get("DRIP")) and not os.environ.get("DRIP_FROM")
            greeting = os.environ.get("GREETING")
            if os.environ.get("ECHO_LATER") and LEARNED:
                import base64
                greeting = "421 4.3.2 busy, last password was %s (b64 %s)" % (
                    LEARNED[0].decode(), base64.b64encode(LEARNED[0]).decode())
            if greeting:
                greeting = padded(greeting)
                log(id(self.session), "WRONG-REPLY GREETING %s" % greeting[:80])
                await self.push_bytes(greeting)
                if greeting.startswith("421"):
                    self.transport.close()
                return
        await self.push_bytes(status)

    async def push_bytes(self, status):
        if not (self.dripping and os.environ.get("DRIP")):
            return await SMTP.push(self, status)
        if isinstance(status, str):
            status = status.encode("utf-8")
        delay = float(os.environ["DRIP"])
        for i in range(len(status) + 2):
            if self.transport is None or self.transport.is_closing():
                log(id(self.session), "DRIP client gone after %d bytes" % i)
                return
            self._writer.write((status + b"\r\n")[i:i + 1])
            await asyncio.sleep(delay)

    async def wrong(self, verb):
        """Answer `verb` with the reply WRONG_REPLY gives it, if any; whether it did."""
        reply = wrong_reply(verb)
        if reply is None:
            return False
        log(id(self.session), "WRONG-REPLY %s %s" % (verb, reply[:80]))
        await self.push(reply)
        return True

    async def smtp_EHLO(self, arg):
        self.drip_from("EHLO")
        if not await self.wrong("EHLO"):
            return await super().smtp_EHLO(arg)

    async def smtp_HELO(self, arg):
        if not await self.wrong("HELO"):
            return await super().smtp_HELO(arg)

    async def smtp_MAIL(self, arg):
        if self.closed_after_dot("MAIL"):
            return
        if getattr(self, "mail_fault_next", False):
            mode = os.environ.get("MAIL_AFTER_DOT")
            log(id(self.session), "MAIL-AFTER-DOT %s" % mode)
            if mode == "421":
                await self.push("421 4.3.2 Going away (test)")
            elif mode == "reset":
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                self.transport.abort()
                return
            self.transport.close()
            return
        self.drip_from("MAIL")
        log(id(self.session), "RAW-MAIL %s" % arg)
        if os.environ.get("XVERP") and arg:
            # aiosmtpd refuses parameters it does not know: XVERP is taken out here
            # and given to handle_MAIL.
            found = re.findall(r"\s(XVERP(?:=\S*)?)", arg, re.I)
            self.session.xverp = found
            arg = re.sub(r"\sXVERP(?:=\S*)?", "", arg, flags=re.I)
        if await self.strict_refused("MAIL", arg, True):
            return
        if await self.wrong("MAIL"):
            return
        if not os.environ.get("EXTRA_REPLIES"):
            return await super().smtp_MAIL(arg)
        # aiosmtpd's own reply, then two more in the same write.
        replies = []
        push = self.push

        async def collect(status):
            replies.append(status)
        self.push = collect
        try:
            await super().smtp_MAIL(arg)
        finally:
            self.push = push
        if replies and replies[-1].startswith("250"):
            log(id(self.session), "WRONG-REPLY MAIL two extra replies")
            replies += ["250 2.0.0 Extra reply (test)", "250 2.0.0 Another (test)"]
        await self.push("\r\n".join(replies))

    async def smtp_RCPT(self, arg):
        self.drip_from("RCPT")
        log(id(self.session), "RAW-RCPT %s" % arg)
        if await self.strict_refused("RCPT", arg, False):
            return
        if not await self.wrong("RCPT"):
            return await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg):
        self.drip_from("DATA")
        if await self.wrong("DATA"):
            return
        if os.environ.get("LONG_LINES") == "mid" and not getattr(self, "mid_armed", False):
            # aiosmtpd's reader meets a line over its limit: refuse it there and then.
            self.mid_armed = True
            reader = self._reader
            readuntil = reader.readuntil

            async def refusing(separator=b"\n"):
                try:
                    return await readuntil(separator)
                except asyncio.LimitOverrunError:
                    log(id(self.session), "LONG-LINE mid 500 and closed")
                    await self.push("500 5.5.2 Line too long (test)")
                    self.transport.close()
                    raise asyncio.CancelledError()
            reader.readuntil = refusing
        rcpts = [] if HEALTHY else [r.split("@")[0].lower()
                                    for r in (self.envelope.rcpt_tos or [])]
        drops = ["dropmid " + r for r in rcpts if r.startswith("dropmid")]
        if drops and not SEEN.issuperset(drops):
            SEEN.update(drops)
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            for _ in range(2):
                await self._reader.readuntil(b"\r\n")
            log(id(self.session), "DROP-MID-DATA closed after two lines of data")
            self.transport.close()
            return
        return await super().smtp_DATA(arg)

    def closed_after_dot(self, verb):
        if getattr(self, "close_next", False):
            log(id(self.session), "CLOSE-AFTER-DOT at %s" % verb)
            self.transport.close()
            return True
        return False

    async def smtp_RSET(self, arg):
        if self.closed_after_dot("RSET"):
            return
        if not await self.wrong("RSET"):
            return await super().smtp_RSET(arg)

    async def smtp_STARTTLS(self, arg):
        fail = os.environ.get("STARTTLS_FAIL")
        if fail and not await self.wrong("STARTTLS"):
            await self.push("220 2.0.0 Ready to start TLS")
            log(id(self.session), "TLS-FAIL %s" % fail)
            if fail == "close":
                self.transport.close()
            return
        if not await self.wrong("STARTTLS"):
            return await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg):
        if not await self.wrong("AUTH"):
            return await super().smtp_AUTH(arg)



    async def strict_refused(self, verb, arg, null_ok):
        """STRICT=1: refuse a path that is not an RFC 5321 Mailbox, judged on the text
        between the angle brackets as sent (aiosmtpd would unquote it first)."""
        if not os.environ.get("STRICT") or not arg:
            return False
        start = arg.find("<")
        end = arg.rfind(">")
        path = arg[start + 1:end] if 0 <= start < end else ""
        why = strict_address(path, null_ok)
        if why:
            log(id(self.session), "%s-REFUSED %s" % (verb, why))
            await self.push(why)
        return bool(why)

# The overrides keep what aiosmtpd's decorators say about each command (HELP, STARTTLS).
for _name in [n for n in vars(LoggingSMTP) if n.startswith("smtp_")]:
    for _attr, _value in vars(getattr(SMTP, _name)).items():
        if _attr.startswith("__smtp_syntax"):
            setattr(getattr(LoggingSMTP, _name), _attr, _value)


class C(Controller):
    def factory(self):
        kw = {}
        if os.environ.get("TLS_MODE") == "starttls":
            kw["tls_context"] = tls_context()
        if os.environ.get("AUTH_USER"):
            kw.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=False)
        if os.environ.get("AUTH_ONLY_CRAM"):
            kw["auth_exclude_mechanism"] = ["PLAIN", "LOGIN"]
        elif os.environ.get("AUTH_NO_CRAM"):
            kw["auth_exclude_mechanism"] = ["CRAM-MD5"]
        if os.environ.get("DATA_SIZE_LIMIT"):
            kw["data_size_limit"] = int(os.environ["DATA_SIZE_LIMIT"]) or None
        if os.environ.get("LONG_LINES") in ("554", "close"):
            # Lines of any length reach the handler, which judges them (aiosmtpd makes
            # its reader with the class's limit).
            LoggingSMTP.line_length_limit = 1 << 20
        return LoggingSMTP(self.handler, decode_data=False, hostname="fault.test",
                    enable_SMTPUTF8=not os.environ.get("NO_SMTPUTF8"), **kw)


HOST = os.environ.get("BIND", "127.0.0.1")


def free_port():
    import socket
    s = socket.socket(socket.AF_INET6 if ":" in HOST else socket.AF_INET)
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    port = int(os.environ.get("PORT") or 0) or free_port()
    kw = {}
    if os.environ.get("TLS_MODE") == "implicit":
        kw["ssl_context"] = tls_context()
    c = C(Handler(), hostname=HOST, port=port, **kw)
    c.start()
    with open(os.path.join(STATE, "port.tmp"), "w") as f:
        f.write(str(port))
    os.rename(os.path.join(STATE, "port.tmp"), os.path.join(STATE, "port"))
    try:
        while True:
            import time
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
