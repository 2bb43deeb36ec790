#!/usr/bin/env bash
# check-imports.sh: the import arrows point inward, to bridge. For every
# package of the module, the module packages it depends on (the set
# `go list -deps` prints, transitively, tests excluded) must be among those
# its rule below allows, besides itself and its own sub-packages.
#
#   bridge                      nothing of the module: it owns the domain
#   imapfront, pop3front,       bridge only, and nothing of each other:
#   lmtpfront, pop3, mboxstore, a face, a source or a store format is a
#   any other top-level package sibling of the others
#   internal/config             bridge
#   internal/login              bridge, internal/config
#   internal/admin              bridge
#   cmd/imapbridge              anything: it is the only place that wires
#
# A new package needs no line here if "bridge only" is right for it (a
# Dovecot Maildir writer, pop3front/, lmtpfront/); otherwise add its rule.
# Exits 1 naming every arrow that points the wrong way.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
module=$($GO list -m)

# allowed PACKAGE prints the module packages PACKAGE may depend on, or "*".
allowed() {
	case "$1" in
	cmd/*) echo '*' ;;
	bench) echo 'internal/dovecottest internal/testtool' ;;
	bridge | bridge/*) echo 'bridge' ;;
	internal/config) echo 'bridge' ;;
	internal/login) echo 'bridge internal/config' ;;
	internal/admin) echo 'bridge' ;;
	internal/testtool) echo '' ;;
	internal/dovecottest) echo 'internal/testtool' ;;
	deploy) echo '' ;;
	*) echo 'bridge' ;;
	esac
}

# One go list for the whole module; a failure (an import cycle) stops here.
list=$($GO list -f '{{.ImportPath}}{{range .Deps}} {{.}}{{end}}' ./...)

bad=0
while read -r pkg deps; do
	rel=${pkg#"$module"/}
	[ "$pkg" = "$module" ] && rel=.
	ok=$(allowed "$rel")
	[ "$ok" = '*' ] && continue
	for dep in $deps; do
		case "$dep" in "$module"/*) ;; *) continue ;; esac
		d=${dep#"$module"/}
		case "$d" in "$rel" | "$rel"/*) continue ;; esac
		fine=no
		for a in $ok; do
			case "$d" in "$a" | "$a"/*) fine=yes ;; esac
		done
		if [ "$fine" = no ]; then
			echo "import arrow: $rel depends on $d (allowed: ${ok:-nothing of the module}; see scripts/check-imports.sh)"
			bad=1
		fi
	done
done <<<"$list"
exit $bad
