#!/usr/bin/env python3
"""A message as Python's email parser reads it, for rsendmail's tests.

Usage: inspect_message.py FILE

Prints one fact per line, `key=value` (line breaks inside a value shown as \\r and \\n):
  max_line          the longest line of the raw file, its CRLF excluded
  bare              how many bare CRs and bare LFs the raw file has
  fields            the header's field names, in order, joined by ","
  field.NAME        a field's value, unfolded (RFC 5322 2.2.3: each CRLF before WSP removed)
  count.NAME        how many fields of that name
  parts             the content types of the MIME parts, depth first
  part.N.fields, part.N.field.NAME, part.N.payload   the same for the N-th leaf part
For a delivery report (multipart/report), the returned message's header (from its
message/rfc822 or text/rfc822-headers part) as returned.fields, returned.field.NAME and
returned.count.NAME.
"""
import email
import re
import sys
from email import policy


def show(v):
    return v.replace("\r", "\\r").replace("\n", "\\n")


def unfold(v):
    return re.sub(r"\r?\n(?=[ \t])", "", v)


def header(prefix, msg):
    names = [k for k, _ in msg.items()]
    print("%sfields=%s" % (prefix, ",".join(names)))
    for k in dict.fromkeys(names):
        print("%scount.%s=%d" % (prefix, k, len(msg.get_all(k))))
        print("%sfield.%s=%s" % (prefix, k, show(unfold(msg.get_all(k)[0]))))


def main():
    raw = open(sys.argv[1], "rb").read()
    lines = raw.split(b"\r\n")
    print("max_line=%d" % max(len(l) for l in lines))
    print("bare=%d" % sum(l.count(b"\r") + l.count(b"\n") for l in lines))
    m = email.message_from_bytes(raw, policy=policy.compat32)
    header("", m)
    leaves = [p for p in m.walk() if not p.is_multipart()]
    print("parts=%s" % ",".join(p.get_content_type() for p in m.walk()))
    for i, p in enumerate(leaves):
        header("part.%d." % i, p)
        payload = p.get_payload()
        if isinstance(payload, str):
            print("part.%d.payload=%s" % (i, show(payload)))
    if m.get_content_type() == "multipart/report":
        ret = m.get_payload()[2]
        inner = ret.get_payload()
        if isinstance(inner, list):
            header("returned.", inner[0])
        else:
            header("returned.", email.message_from_string(inner, policy=policy.compat32))


main()
