"""What a POP3 client that keeps mail on the server sees: poplib logs in
(after STLS when a CA file is given), lists the UIDLs and fetches every
message, then QUITs without deleting anything.

usage: poplib_uidl.py HOST PORT USER PASSWORD [CAFILE]
prints one line per message: "<uidl> <sha256 of RETR's bytes> <octets>"
"""
import hashlib
import poplib
import ssl
import sys


def main():
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    p = poplib.POP3(host, port, timeout=30)
    if len(sys.argv) > 5:
        ctx = ssl.create_default_context(cafile=sys.argv[5])
        p.stls(context=ctx)
    p.user(user)
    p.pass_(password)
    _, listing, _ = p.uidl()
    for line in listing:
        num, uidl = line.decode("ascii").split(" ", 1)
        _, lines, _ = p.retr(int(num))
        data = b"\r\n".join(lines) + b"\r\n"
        print(uidl, hashlib.sha256(data).hexdigest(), len(data))
    p.quit()


if __name__ == "__main__":
    main()
