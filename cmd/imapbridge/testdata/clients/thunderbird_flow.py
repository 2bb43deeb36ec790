#!/usr/bin/env python3
"""What Thunderbird does to a mailbox, done with Python's imaplib against a
running imapbridge, from two "devices" at once.

usage: thunderbird_flow.py HOST PORT USER PASSWORD

The INBOX must hold five messages with the Message-IDs <tb-1@example.org>
... <tb-5@example.org>; <tb-3@...> and <tb-5@...> dated 2025, the others
2026. The script drives the protocol the way Thunderbird does (special-use
folders found with LIST, delete = UID MOVE to Trash, send = APPEND to Sent,
a draft saved twice = APPEND the new one, STORE \\Deleted + EXPUNGE the old
one, archive by year = CREATE Archive/<year> and UID MOVE) and prints one
JSON object with what the server answered. The Go test checks it and the
server's state afterwards.
"""
import email
import email.utils
import imaplib
import json
import re
import sys

host, port, user, password = sys.argv[1:5]
out = {"steps": []}


def connect():
    c = imaplib.IMAP4(host, int(port))
    c.sock.settimeout(20)
    typ, _ = c.login(user, password)
    assert typ == "OK", typ
    return c


def ok(what, resp):
    typ, data = resp
    if typ != "OK":
        raise SystemExit("%s: %s %r" % (what, typ, data))
    out["steps"].append(what)
    return data


def uid_of(c, message_id):
    data = ok("search " + message_id, c.uid("SEARCH", None, "HEADER", "Message-ID", message_id))
    uids = data[0].split()
    assert len(uids) == 1, (message_id, uids)
    return uids[0].decode()


def appenduid(data):
    """The APPENDUID code of a tagged APPEND answer: "UIDVALIDITY UID"."""
    m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert m, data
    return "%s %s" % (m.group(1).decode(), m.group(2).decode())


def message(msgid, subject, date, body, extra=""):
    return ("From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\n"
            "Subject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n%sMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n" % (subject, date, msgid, extra, body)).encode()


tb = connect()
# After login, as Thunderbird does (the greeting's list is the pre-login one).
out["capability"] = ok("capability", tb.capability())[0].decode()

# Thunderbird finds its folders by special use (RFC 6154).
folders = {}
for line in ok("list", tb.list()):
    m = re.match(rb'\(([^)]*)\) "/" "?([^"]*)"?$', line)
    attrs, name = m.group(1).decode().split(), m.group(2).decode()
    for a in attrs:
        if a in ("\\Trash", "\\Sent", "\\Drafts", "\\Archive", "\\Junk"):
            folders[a] = name
out["special_use"] = folders

# The second device: selected INBOX and idling.
phone = connect()
ok("phone select", phone.select("INBOX"))
phone_tag = phone._new_tag().decode()
phone.send(("%s IDLE\r\n" % phone_tag).encode())
assert phone.readline().startswith(b"+")

ok("select INBOX", tb.select("INBOX"))
# The message list, the way Thunderbird asks for it.
ok("headers", tb.uid("FETCH", "1:*", "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID)])"))

# Read message 1 (BODY[] without PEEK sets \Seen) and flag it.
u1 = uid_of(tb, "<tb-1@example.org>")
data = ok("read", tb.uid("FETCH", u1, "(UID BODY[])"))
out["read_subject"] = email.message_from_bytes(data[0][1])["Subject"]
ok("flag", tb.uid("STORE", u1, "+FLAGS", "(\\Flagged)"))

# Delete message 2: move it to the Trash.
u2 = uid_of(tb, "<tb-2@example.org>")
data = ok("delete", tb.uid("MOVE", u2, folders["\\Trash"]))
out["delete_copyuid"] = [d.decode() for d in tb.untagged_responses.get("OK", []) if b"COPYUID" in d]
# The other device hears of it at once.
phone.sock.settimeout(10)
phone_lines = []
while True:
    line = phone.readline().rstrip(b"\r\n").decode()
    phone_lines.append(line)
    if line.endswith("EXPUNGE"):
        break
out["phone_saw"] = phone_lines

# Send a reply: the sent copy is APPENDed to Sent.
reply = message("<tb-reply@example.org>", "Re: Quarterly report", "Sat, 14 Mar 2026 12:00:00 +0100",
                "Great news.", "In-Reply-To: <tb-1@example.org>\r\n")
data = ok("send", tb.append(folders["\\Sent"], "(\\Seen)", '"14-Mar-2026 12:00:00 +0100"', reply))
out["sent_appenduid"] = appenduid(data)

# A draft saved twice: the new version is appended, the old one deleted.
draft1 = message("<tb-draft-1@example.org>", "Plans", "Sat, 14 Mar 2026 12:05:00 +0100", "First version.")
draft2 = message("<tb-draft-2@example.org>", "Plans", "Sat, 14 Mar 2026 12:10:00 +0100", "Second version.")
d1 = appenduid(ok("draft 1", tb.append(folders["\\Drafts"], "(\\Draft \\Seen)", None, draft1))).split()[1]
d2 = appenduid(ok("draft 2", tb.append(folders["\\Drafts"], "(\\Draft \\Seen)", None, draft2))).split()[1]
out["draft_appenduids"] = [d1, d2]
ok("select Drafts", tb.select(folders["\\Drafts"]))
ok("delete old draft", tb.uid("STORE", d1, "+FLAGS.SILENT", "(\\Deleted)"))
out["draft_expunge"] = [d.decode() for d in ok("expunge draft", tb.expunge()) if d]

# Archive by year: Archive/<year>, created when missing, filled by MOVE.
ok("select INBOX again", tb.select("INBOX"))
by_year = {}
for msgid in ("<tb-1@example.org>", "<tb-3@example.org>", "<tb-5@example.org>"):
    uid = uid_of(tb, msgid)
    data = ok("date " + msgid, tb.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (DATE)])"))
    date = email.utils.parsedate_to_datetime(email.message_from_bytes(data[0][1])["Date"])
    by_year.setdefault(str(date.year), []).append(uid)
created = []
for year in sorted(by_year):
    folder = "%s/%s" % (folders["\\Archive"], year)
    typ, data = tb.list('""', folder)  # imaplib does not quote arguments
    if not [d for d in data if d]:
        ok("create " + folder, tb.create(folder))
        ok("subscribe " + folder, tb.subscribe(folder))
        created.append(folder)
    ok("archive to " + folder, tb.uid("MOVE", ",".join(by_year[year]), folder))
out["archive_created"] = created
out["archive_by_year"] = by_year

# The phone leaves IDLE and sees the INBOX as it now is.
phone.send(b"DONE\r\n")
while True:
    line = phone.readline().rstrip(b"\r\n").decode()
    if line.startswith(phone_tag):
        out["phone_idle_end"] = line
        break
    phone_lines.append(line)
data = ok("phone fetch", phone.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"))
out["phone_inbox"] = sorted(email.message_from_bytes(d[1])["Message-ID"] for d in data if isinstance(d, tuple))

for c in (tb, phone):
    c.logout()
print(json.dumps(out))
