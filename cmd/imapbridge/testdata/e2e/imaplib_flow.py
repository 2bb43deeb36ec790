#!/usr/bin/env python3
"""A real IMAP client session against a running imapbridge, with Python's
imaplib. The Go end-to-end test starts the bridge, runs this script and
checks what it prints (one JSON object); the script itself only drives the
protocol and records what the server said.

usage: imaplib_flow.py HOST PORT USER PASSWORD SPOOL MODE
MODE is "full" (the whole flow) or "verify" (read state after a restart).
"""
import base64
import fcntl
import imaplib
import json
import re
import socket
import sys
import time

host, port, user, password, spool, mode = sys.argv[1:7]
port = int(port)
out = {}


def connect():
    c = imaplib.IMAP4(host, port)
    c.sock.settimeout(20)
    return c


def uid_map(c):
    """UID -> (flags, body) for every message in the selected mailbox."""
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
    assert typ == "OK", (typ, data)
    res = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta, body = item
        m = re.search(rb"UID (\d+)", meta)
        f = re.search(rb"FLAGS \(([^)]*)\)", meta)
        res[int(m.group(1))] = {"flags": f.group(1).decode().split() if f else None, "body": base64.b64encode(body).decode()}
    # FLAGS may come after the literal in some servers' layouts: fetch them apart.
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
    for item in data:
        if isinstance(item, bytes):
            m = re.search(rb"UID (\d+)", item)
            f = re.search(rb"FLAGS \(([^)]*)\)", item)
            if m and f and int(m.group(1)) in res:
                res[int(m.group(1))]["flags"] = f.group(1).decode().split()
    # \Recent belongs to one session (IMAP4rev1), not to the message.
    for v in res.values():
        v["flags"] = [x for x in (v["flags"] or []) if x != "\\Recent"]
    return res


def idle_start(c):
    tag = c._new_tag().decode()
    c.send(f"{tag} IDLE\r\n".encode())
    line = c.readline()
    assert line.startswith(b"+"), line
    return tag


def idle_read(c, want, timeout=20):
    """Read untagged lines until one matches want (regex bytes). Lines are
    read through imaplib's buffered file (never select() on the socket: a
    line may already sit in the buffer), with a socket timeout."""
    got = []
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            c.sock.settimeout(max(0.1, deadline - time.time()))
            line = c.readline()
            if not line:
                break
            got.append(line.decode("latin-1").rstrip("\r\n"))
            if re.search(want, line):
                return got
    except (socket.timeout, TimeoutError):
        pass
    finally:
        c.sock.settimeout(20)
    raise AssertionError(f"no {want!r} within {timeout}s; got {got}")


def idle_stop(c, tag):
    c.send(b"DONE\r\n")
    lines = []
    while True:
        line = c.readline()
        lines.append(line.decode("latin-1").rstrip("\r\n"))
        if line.startswith(tag.encode()):
            return lines


def deliver(path, sender, body):
    """Append one message to the spool as a local MDA would (fcntl lock,
    mboxrd From_ line, blank separator line)."""
    with open(path, "ab") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        f.write(b"From " + sender.encode() + b" " + time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime()).encode() + b"\n")
        f.write(body.replace(b"\r\n", b"\n"))
        if not body.endswith(b"\n"):
            f.write(b"\n")
        f.write(b"\n")
        f.flush()
        fcntl.lockf(f, fcntl.LOCK_UN)


if mode == "verify":
    a = connect()
    a.login(user, password)
    typ, data = a.select("INBOX")
    out["exists"] = int(data[0])
    out["uidvalidity"] = int(re.search(rb"\d+", a.untagged_responses.get("UIDVALIDITY", [b"0"])[0]).group(0))
    out["messages"] = uid_map(a)
    typ, data = a.list()
    out["list"] = [d.decode() for d in data]
    a.logout()
    print(json.dumps(out))
    sys.exit(0)

a = connect()
try:
    a.login(user, password + "-wrong")
    out["bad_login"] = "accepted"
except imaplib.IMAP4.error as e:
    out["bad_login"] = str(e)
a = connect()
a.login(user, password)
typ, caps = a.capability()
out["capability"] = caps[0].decode()
typ, data = a.list()
out["list"] = [d.decode() for d in data]
typ, data = a.select("INBOX")
out["exists"] = int(data[0])
out["uidvalidity"] = int(a.untagged_responses["UIDVALIDITY"][0])
out["before"] = uid_map(a)
typ, data = a.search(None, "SUBJECT", '"Quarterly"')
out["search_subject"] = data[0].decode()
typ, data = a.uid("SEARCH", "FROM", '"carol"')
out["search_from_uid"] = data[0].decode()
typ, data = a.search(None, "UNSEEN")
out["search_unseen"] = data[0].decode()

# Session B idles on INBOX while A changes things.
b = connect()
b.login(user, password)
b.select("INBOX")
tag = idle_start(b)

typ, data = a.store("1", "+FLAGS", r"(\Flagged $Important)")
out["store_resp"] = [d.decode() for d in data]
out["idle_store"] = idle_read(b, rb"^\* 1 FETCH")

a.store("2", "+FLAGS", r"(\Deleted)")
typ, data = a.expunge()
out["expunge_resp"] = [d.decode() if d else "" for d in data]
out["idle_expunge"] = idle_read(b, rb"^\* 2 EXPUNGE")

new_body = b"From: Zed <zed@example.net>\r\nTo: alice@example.org\r\nSubject: pushed while idling\r\nMessage-ID: <push-1@example.net>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\nDelivered to the spool while a client idled.\r\n"
deliver(spool, "zed@example.net", new_body)
out["idle_exists"] = idle_read(b, rb"^\* \d+ EXISTS")
out["idle_done"] = idle_stop(b, tag)

typ, data = a.noop()
out["after"] = uid_map(a)
a.logout()
b.logout()
print(json.dumps(out))
