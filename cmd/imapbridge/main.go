// Command imapbridge serves IMAP in front of legacy mail hosts (POP3
// maildrops and mbox spools), keeping a durable copy with stable UIDs so
// every IMAP client and device sees the same mailbox.
//
// Usage:
//
//	imapbridge serve -config FILE   run the bridge
//	imapbridge check -config FILE   validate a config file
//	imapbridge export -config FILE (-user NAME | -all) -to DIR
//	                                write mailboxes out for Dovecot (or -format mbox)
//	imapbridge demo                 serve a bundled sample mailbox on 127.0.0.1:1143
//	imapbridge hash-password        read a password on stdin, print a bcrypt hash
//	imapbridge health [-url URL]    exit 0 if the bridge's /readyz says ready
//	imapbridge version              print the version
//
// This package only wires: it reads the config (internal/config), opens
// the store (bridge), builds the sources (pop3, mboxstore), the login
// service (internal/login), the IMAP face (imapfront), the LMTP intake
// (lmtpfront, lmtp.go), the POP3 face (pop3front, pop3face.go) and the
// admin listener (internal/admin), runs the export (maildirexport,
// export.go), and handles signals and the shutdown. It is
// the only package that imports those together; logic that is not wiring
// belongs in one of them.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(rest, stdout, stderr)
	case "demo":
		return runDemo(rest, stdout, stderr)
	case "check":
		return runCheck(rest, stdout, stderr)
	case "export":
		return runExport(rest, stdout, stderr)
	case "hash-password":
		return runHashPassword(rest, stdin, stdout, stderr)
	case "health":
		return runHealth(rest, stdout, stderr)
	case "oauth2-login":
		return runOAuth2Login(rest, stdout, stderr)
	case "status":
		return runStatus(rest, stdout, stderr)
	case "version":
		return runVersion(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "imapbridge: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: imapbridge <command> [flags]

commands:
  serve -config FILE   run the bridge
  check -config FILE   validate a config file and exit
  export -config FILE (-user NAME | -all) -to DIR [-format maildir|mbox] [-force]
                       write mailboxes out for Dovecot, keeping UIDs and UIDLs (runs beside a serving bridge)
  demo                 serve a bundled sample mailbox on 127.0.0.1:1143 (user demo, password demo)
  hash-password        read a password on stdin and print a bcrypt hash for password_hash
  health [-url URL]    exit 0 if the bridge's /readyz answers ready (container HEALTHCHECK)
  oauth2-login -config FILE -user NAME -account N
                       get a user's first OAuth2 refresh token (device sign-in) and store it sealed
  status -config FILE [-json] [-user NAME]
                       show every user's readiness, read from the running server's admin listener
  version              print the version
`)
}
