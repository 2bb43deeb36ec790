#!/usr/bin/env python3
"""A real IMAP client (Python's imaplib) against the bridge's IMAP front.

Usage: imaplib_client.py HOST PORT USER PASSWORD MESSAGE_FILE

INBOX must hold exactly two messages, the first one being MESSAGE_FILE.
Exits non-zero on the first failed check.
"""
import imaplib
import re
import sys


def check(cond, what):
    if not cond:
        raise SystemExit("imaplib check failed: " + what)


def ok(resp, what):
    typ, data = resp
    check(typ == "OK", "%s: %s %r" % (what, typ, data))
    return data


def main():
    host, port, user, password, msgfile = sys.argv[1:6]
    with open(msgfile, "rb") as f:
        expected = f.read()

    m = imaplib.IMAP4(host, int(port))
    check("IMAP4REV1" in m.capabilities, "capabilities %r" % (m.capabilities,))
    ok(m.login(user, password), "LOGIN")

    names = ok(m.list(), "LIST")
    joined = b"\n".join(names)
    check(b'"/" INBOX' in joined and b"\\Sent" in joined, "LIST %r" % names)

    count = ok(m.select("INBOX"), "SELECT")
    check(count == [b"2"], "SELECT count %r" % count)

    check(ok(m.search(None, "ALL"), "SEARCH") == [b"1 2"], "SEARCH ALL")
    check(ok(m.uid("SEARCH", None, "UNSEEN"), "UID SEARCH") == [b"1 2"], "UID SEARCH UNSEEN")
    check(ok(m.search("UTF-8", "SUBJECT", "note 1".encode()), "SEARCH SUBJECT") == [b"1"], "SEARCH SUBJECT")

    data = ok(m.fetch("1", "(FLAGS BODY.PEEK[] RFC822.SIZE)"), "FETCH")
    check(isinstance(data[0], tuple), "FETCH shape %r" % (data,))
    check(data[0][1] == expected, "BODY[] differs from the delivered message")
    check(b"RFC822.SIZE %d" % len(expected) in data[0][0], "RFC822.SIZE in %r" % data[0][0])

    data = ok(m.store("1", "+FLAGS", "(\\seen $Later)"), "STORE")
    # This session is the first to see the messages: they are \Recent here.
    check(re.search(rb"FLAGS \(\$Later \\Seen \\Recent\)", data[0]) is not None, "STORE answer %r" % data)
    check(ok(m.search(None, "SEEN"), "SEARCH SEEN") == [b"1"], "SEARCH SEEN")

    typ, data = m.uid("COPY", "2", "Archive")
    check(typ == "OK", "UID COPY %s %r" % (typ, data))
    check(m.untagged_responses.get("COPYUID") or b"COPYUID" in b"".join(d for d in data if d), "COPYUID")

    msg = b"From: py@example.org\r\nSubject: from imaplib\r\n\r\nhello\r\n"
    typ, data = m.append("Drafts", "(\\Draft)", None, msg)
    check(typ == "OK" and b"APPENDUID" in data[0], "APPEND %s %r" % (typ, data))

    ok(m.store("2", "+FLAGS.SILENT", "(\\Deleted)"), "STORE SILENT")
    data = ok(m.expunge(), "EXPUNGE")
    check(data == [b"2"], "EXPUNGE %r" % data)

    ok(m.noop(), "NOOP")
    ok(m.close(), "CLOSE")
    m.logout()
    print("imaplib: all checks passed")


if __name__ == "__main__":
    main()
