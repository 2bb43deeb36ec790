#!/usr/bin/env bash
# test-deps.sh: check that the tools the tests drive are installed; install
# them (Debian/Ubuntu, as root) when they are not.
#
#   dovecot + its pop3 and imap services   the real POP3 host of the tests
#   mbsync (isync), python3, curl          real IMAP clients
#   fetchmail, getmail (getmail6), python3 real POP3 clients of the POP3 face
#   promtool (prometheus)                  checks the metrics and alert rules
#   systemd-analyze (systemd)              verifies the systemd unit
#   gcc                                    cgo, which go test -race needs
#   chromium                               a real browser for the status page
#   postfix                                the real MTA delivering over LMTP
#                                          (internal/postfixtest runs a private
#                                          instance; preseeded "No configuration"
#                                          so no system MTA is set up or started)
#
# Not root and something missing: prints the apt-get command and exits 1.
set -euo pipefail

packages="dovecot-pop3d dovecot-imapd isync python3 curl prometheus systemd gcc postfix fetchmail getmail6 chromium"

missing() {
	local m=()
	[ -x /usr/sbin/dovecot ] || m+=("/usr/sbin/dovecot")
	[ -x /usr/lib/dovecot/pop3 ] || m+=("/usr/lib/dovecot/pop3")
	[ -x /usr/lib/dovecot/imap ] || m+=("/usr/lib/dovecot/imap")
	[ -x /usr/sbin/postfix ] || m+=("/usr/sbin/postfix")
	[ -x /usr/lib/postfix/sbin/lmtp ] || m+=("/usr/lib/postfix/sbin/lmtp")
	local tool
	for tool in mbsync python3 curl promtool systemd-analyze gcc fetchmail getmail chromium; do
		command -v "$tool" >/dev/null 2>&1 || m+=("$tool")
	done
	echo "${m[*]:-}"
}

need="$(missing)"
if [ -z "$need" ]; then
	exit 0
fi

echo "test-deps: missing: $need" >&2
if [ "$(id -u)" -ne 0 ]; then
	echo "test-deps: install them with (after sudo apt-get update if the package lists are old):" >&2
	echo "sudo apt-get install -y $packages" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# postfix's debconf question (the type of mail configuration), answered
# before it is asked: "No configuration" writes no /etc/postfix/main.cf and
# starts no system MTA on port 25; the tests start their own instance.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update
# shellcheck disable=SC2086 # word splitting of $packages is intended
apt-get install -y $packages

need="$(missing)"
if [ -n "$need" ]; then
	echo "test-deps: still missing after apt-get install: $need" >&2
	exit 1
fi
echo "test-deps: installed $packages" >&2
