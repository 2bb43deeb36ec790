#!/usr/bin/env python3
"""A POP3 client on Python's poplib, for the pop3front tests.

usage: poplib_client.py HOST PORT USER CAFILE OUTDIR [ACTION...]
The password is read from the environment (POP3_PASSWORD), never the
command line. The session uses STLS when CAFILE is given (or "-" for
none). ACTIONs, in order: "retr" writes every message to OUTDIR/N.eml
(dot-stuffing undone by poplib, line endings CRLF as on the wire),
"dele:N" deletes message N, "top:N:L" writes TOP N L to OUTDIR/top-N.eml.
It ends with QUIT and prints a JSON report: stat, list, uidl, quit.
"""
import json
import os
import poplib
import ssl
import sys

# poplib refuses lines over 2048 bytes by default; mail has longer ones.
poplib._MAXLINE = 1 << 20


def body(lines):
    return b"".join(l + b"\r\n" for l in lines)


def main():
    host, port, user, cafile, outdir = sys.argv[1:6]
    actions = sys.argv[6:]
    p = poplib.POP3(host, int(port), timeout=60)
    report = {"welcome": p.getwelcome().decode()}
    if cafile != "-":
        report["capa_before"] = sorted(p.capa().keys())
        p.stls(ssl.create_default_context(cafile=cafile))
    p.user(user)
    p.pass_(os.environ["POP3_PASSWORD"])
    count, size = p.stat()
    report["stat"] = [count, size]
    report["list"] = [int(l.split()[1]) for l in p.list()[1]]
    report["uidl"] = [l.decode().split(" ", 1)[1] for l in p.uidl()[1]]
    for a in actions:
        if a == "retr":
            for i in range(1, count + 1):
                _, lines, octets = p.retr(i)
                data = body(lines)
                with open(os.path.join(outdir, "%d.eml" % i), "wb") as f:
                    f.write(data)
        elif a.startswith("dele:"):
            p.dele(int(a[5:]))
        elif a.startswith("top:"):
            _, n, l = a.split(":")
            _, lines, _ = p.top(int(n), int(l))
            with open(os.path.join(outdir, "top-%s.eml" % n), "wb") as f:
                f.write(body(lines))
        else:
            raise SystemExit("unknown action " + a)
    report["quit"] = p.quit().decode()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
