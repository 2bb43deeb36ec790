package config

import (
	"testing"
)

// minimalTail completes a config so that only the problem under test is
// reported.
const minimalTail = "sources:\n  - {name: spool, type: mbox, path: '/var/mail/{user}'}\n" +
	"users:\n  - {name: alice, password_hash: \"" + testHash + "\", sources: [spool]}\n"

// TestSyntaxErrorLine: a YAML syntax error names the line where it is, not
// the line where the block around it starts (which is what yaml.v3 says).
func TestSyntaxErrorLine(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"key indented less than its source", "log: {level: info}\nsources:\n  - name: x\n    type: mbox\n   path: /var/mail/{user}\n",
			"line 5: did not find expected '-' indicator"},
		{"key indented less than its section", "log: {level: info}\nimap:\n  listen: 127.0.0.1:143\n tls_listen: 127.0.0.1:993\n",
			"line 4: did not find expected key"},
		{"tab", "imap:\n  listen: 127.0.0.1:143\n\tmax_connections: 5\n",
			"line 3: found a tab character that violates indentation"},
		{"list item in a mapping", "data_dir: /d\nimap:\n  listen: 127.0.0.1:143\n  - oops\n",
			"line 4: did not find expected key"},
		{"unclosed flow list", "data_dir: /d\nimap:\n  listen: 127.0.0.1:143\nsources: [a, b\nusers: []\n",
			"line 4: did not find expected ',' or ']'"},
		{"two colons", "data_dir: /d\nimap:\n  listen: 127.0.0.1:143\n  tls_listen: a: b\n",
			"line 4: mapping values are not allowed in this context"},
		{"unclosed quote", "data_dir: /d\nimap:\n  listen: \"127.0.0.1:143\n\n",
			"line 3: found unexpected end of stream"},
		{"unknown anchor", "data_dir: /d\nimap:\n  listen: 127.0.0.1:143\nsources: *nope\n",
			"line 4: unknown anchor 'nope' referenced"},
		{"control character", "data_dir: /d\n\x01imap: {}\n",
			"line 2: control characters are not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseTest([]byte(tc.doc), "", nil)
			diffLines(t, "problems", problemsOf(t, err), []string{tc.want})
		})
	}
}

// TestUnknownKey: an unknown key is named by its path, with the known key
// of that mapping it was probably meant to be, wherever it is.
func TestUnknownKey(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"top level typo", "dat_dir: /d\n" + minimalTail, "dat_dir: unknown key; did you mean data_dir?"},
		{"top level, nothing close", "colour: red\n" + minimalTail, "colour: unknown key"},
		{"section", "imap:\n  max_conections: 5\n" + minimalTail, "imap.max_conections: unknown key; did you mean max_connections?"},
		{"nested section", "imap:\n  tls: {cert: a.pem}\n" + minimalTail, "imap.tls.cert: unknown key"},
		{"nested section typo", "imap:\n  tls: {cert_fil: a.pem}\n" + minimalTail, "imap.tls.cert_fil: unknown key; did you mean cert_file?"},
		{"dash for underscore", "admin:\n  listen: 127.0.0.1:9154\n  pprof-on: true\n" + minimalTail, "admin.pprof-on: unknown key"},
		{"upper case", "log:\n  Level: info\n" + minimalTail, "log.Level: unknown key; did you mean level?"},
		{"second list item", "sources:\n  - {name: a, type: mbox, path: /a}\n  - {name: b, type: mbox, path: /b, pol_interval: 5s}\n" +
			"users:\n  - {name: alice, password_hash: \"" + testHash + "\", sources: [a]}\n", "sources[1].pol_interval: unknown key; did you mean poll_interval?"},
		{"user", "sources:\n  - {name: spool, type: mbox, path: '/var/mail/{user}'}\n" +
			"users:\n  - {name: alice, password_hash: \"" + testHash + "\", sources: [spool], source_usr: al}\n", "users[0].source_usr: unknown key; did you mean source_user?"},
		{"through a merge key", "base: &b {name: a, type: mbox, path: /a}\n" + minimalTail, "base: unknown key"},
		{"key that is not a plain word", "\"my key\": 1\n" + minimalTail, `line 1: unknown key "my key"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseTest([]byte(tc.doc), "", nil)
			diffLines(t, "problems", problemsOf(t, err), []string{tc.want})
		})
	}
}

func TestClosestKey(t *testing.T) {
	known := []string{"name", "type", "path", "lock", "poll_interval", "idle_poll_interval", "delete_policy", "delete_after"}
	for key, want := range map[string]string{
		"pol_interval":   "poll_interval",
		"poll_intervall": "poll_interval",
		"idle_poll":      "",
		"delete_polcy":   "delete_policy",
		"nam":            "name",
		"x":              "",
		"tpye":           "type",
		"DELETE_AFTER":   "delete_after",
		"":               "",
	} {
		if got := closestKey(key, known); got != want {
			t.Errorf("closestKey(%q) = %q, want %q", key, got, want)
		}
	}
}
