package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/internal/config"
	"golang.org/x/crypto/bcrypt"
)

func TestRunCheck(t *testing.T) {
	// A private copy: the warnings depend on the file's mode.
	data, err := os.ReadFile("../../internal/config/testdata/config/good_full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(t.TempDir(), "full.yaml")
	if err := os.WriteFile(full, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string // exact, unless it ends in "…": then a prefix
	}{{
		name:   "good",
		args:   []string{"-config", "../../internal/config/testdata/config/good_minimal.yaml"},
		stdout: "config OK: 1 sources, 1 users\n",
	}, {
		name:   "good with warnings",
		args:   []string{"-config", full},
		stdout: "config OK: 2 sources, 2 users\n",
		stderr: "warning: sources[0].delete_after: ignored: delete_policy is \"keep\", not after_days\n",
	}, {
		name: "one problem",
		args: []string{"-config=../../internal/config/testdata/config/err_duplicate_source.yaml"},
		code: 1,
		stderr: "config ../../internal/config/testdata/config/err_duplicate_source.yaml: 1 problem:\n" +
			"  sources[1].name: duplicate source name \"spool\"\n",
	}, {
		name: "problems",
		args: []string{"-config", "../../internal/config/testdata/config/err_unknown_key.yaml"},
		code: 1,
		stderr: "config ../../internal/config/testdata/config/err_unknown_key.yaml: 2 problems:\n" +
			"  imap.colour: unknown key\n" +
			"  sources[0].pol_interval: unknown key; did you mean poll_interval?\n",
	}, {
		name:   "missing file",
		args:   []string{"-config", "../../internal/config/testdata/config/nope.yaml"},
		code:   1,
		stderr: "imapbridge check: read config: open ../../internal/config/testdata/config/nope.yaml: no such file or directory\n",
	}, {
		name:   "no -config",
		code:   2,
		stderr: "imapbridge check: -config FILE is required\nusage: imapbridge check -config FILE\n…",
	}, {
		name:   "extra argument",
		args:   []string{"-config", "../../internal/config/testdata/config/good_minimal.yaml", "more"},
		code:   2,
		stderr: "imapbridge check: unexpected argument \"more\"\n…",
	}, {
		name:   "unknown flag",
		args:   []string{"-conifg", "x"},
		code:   2,
		stderr: "flag provided but not defined: -conifg\n…",
	}, {
		name:   "help",
		args:   []string{"-h"},
		stderr: "usage: imapbridge check -config FILE\n…",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runCheck(tc.args, &stdout, &stderr)
			if code != tc.code || stdout.String() != tc.stdout || !matchOutput(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout:\n%s\nstderr:\n%s",
					code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

func matchOutput(got, want string) bool {
	if prefix, ok := strings.CutSuffix(want, "…"); ok {
		return strings.HasPrefix(got, prefix)
	}
	return got == want
}

func TestReadPasswordLine(t *testing.T) {
	for _, tc := range []struct {
		name, stdin, password, err string
	}{
		{name: "line", stdin: "s3cret\n", password: "s3cret"},
		{name: "no line ending", stdin: "s3cret", password: "s3cret"},
		{name: "crlf", stdin: "s3cret\r\n", password: "s3cret"},
		{name: "first line only, spaces kept, utf-8", stdin: " pässwörd \nsecond\n", password: " pässwörd "},
		{name: "72 bytes", stdin: strings.Repeat("x", 72) + "\n", password: strings.Repeat("x", 72)},
		{name: "empty line", stdin: "\nsecond\n", err: "empty password refused"},
		{name: "no input", stdin: "", err: "empty password refused"},
		{name: "crlf only", stdin: "\r\n", err: "empty password refused"},
		{name: "too long", stdin: strings.Repeat("x", 73) + "\n", err: "password is 73 bytes long; bcrypt uses at most 72"},
		{name: "no line", stdin: strings.Repeat("x", 5000), err: "no line ending in the first 4096 bytes of stdin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			password, err := readPasswordLine(strings.NewReader(tc.stdin))
			if password != tc.password || (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
				t.Errorf("got %q, %v; want %q, %q", password, err, tc.password, tc.err)
			}
		})
	}
}

func TestRunHashPassword(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		stdin    string
		password string // "" when the command must fail
		cost     int
		code     int
		stderr   string
	}{
		{name: "default cost", stdin: " s3cret\r\n", password: " s3cret", cost: 10},
		{name: "cost", args: []string{"-cost", "11"}, stdin: "s3cret\n", password: "s3cret", cost: 11},
		{name: "empty", stdin: "\n", code: 1, stderr: "imapbridge hash-password: empty password refused\n"},
		{
			name: "too long", stdin: strings.Repeat("x", 73) + "\n", code: 1,
			stderr: "imapbridge hash-password: password is 73 bytes long; bcrypt uses at most 72\n",
		},
		{name: "low cost", args: []string{"-cost", "4"}, stdin: "s3cret\n", code: 2, stderr: "imapbridge hash-password: -cost must be between 10 and 31\n"},
		{name: "argument", args: []string{"s3cret"}, stdin: "s3cret\n", code: 2, stderr: "imapbridge hash-password: unexpected argument \"s3cret\"\n…"},
		{name: "help", args: []string{"-help"}, code: 0, stderr: "usage: imapbridge hash-password [-cost N] < password-file\n…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // bcrypt is slow under -race
			var stdout, stderr bytes.Buffer
			code := runHashPassword(tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.code || !matchOutput(stderr.String(), tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tc.code, tc.stderr)
			}
			if tc.password == "" {
				if stdout.Len() != 0 {
					t.Errorf("stdout %q", stdout.String())
				}
				return
			}
			hash, ok := strings.CutSuffix(stdout.String(), "\n")
			if !ok || strings.Contains(hash, "\n") {
				t.Fatalf("stdout %q is not one line", stdout.String())
			}
			if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != tc.cost {
				t.Errorf("cost %d, %v; want %d", cost, err, tc.cost)
			}
			if tc.cost > bcrypt.DefaultCost {
				return // slow to check, and no different
			}
			if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(tc.password)); err != nil {
				t.Errorf("hash does not match %q: %v", tc.password, err)
			}
		})
	}
}

// TestHashPasswordForConfig: what hash-password prints is what
// password_hash accepts, with no warning.
func TestHashPasswordForConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runHashPassword(nil, strings.NewReader("demo\n"), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	hash := strings.TrimSpace(stdout.String())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "demo.hash"), stdout.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf("sources: [{name: s, type: mbox, path: '/m/{user}'}]\nusers:\n"+
		"  - {name: inline, password_hash: %q, sources: [s]}\n"+
		"  - {name: file, password_hash_file: demo.hash, sources: [s]}\n", hash)
	cfg, warnings, err := config.ParseEnv([]byte(doc), dir, nil)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("err %v, warnings %q", err, warnings)
	}
	for _, u := range cfg.Users {
		if err := bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("demo")); err != nil {
			t.Errorf("user %s: %v", u.Name, err)
		}
	}
}

func TestRunVersion(t *testing.T) {
	defer func(v string) { version = v }(version)
	for _, v := range []string{"dev", "v1.2.3-4-gabcdef-dirty"} {
		version = v
		var stdout, stderr bytes.Buffer
		if code := runVersion(nil, &stdout, &stderr); code != 0 || stderr.Len() > 0 {
			t.Fatalf("exit %d, stderr %q", code, stderr.String())
		}
		want := fmt.Sprintf("imapbridge %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		if stdout.String() != want {
			t.Errorf("stdout %q, want %q", stdout.String(), want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runVersion([]string{"extra"}, &stdout, &stderr); code != 2 || stdout.Len() > 0 {
		t.Errorf("with an argument: exit %d, stdout %q", code, stdout.String())
	}
}

func TestIsTerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	file, err := os.Open("commands_test.go")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for name, r := range map[string]io.Reader{"reader": strings.NewReader("x"), "/dev/null": null, "file": file} {
		if isTerminal(r) {
			t.Errorf("%s is a terminal", name)
		}
	}
}

// TestDeployExampleConfigChecks: the example config shipped in deploy/
// is what operators copy; `imapbridge check` must accept it as it is.
func TestDeployExampleConfigChecks(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runCheck([]string{"-config", "../../deploy/imapbridge.example.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("check deploy/imapbridge.example.yaml = %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	if !strings.HasPrefix(out.String(), "config OK: ") {
		t.Errorf("check output = %q", out.String())
	}
}
