package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/imapbridge/imapbridge/internal/config"
	"golang.org/x/crypto/bcrypt"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// runCheck is "imapbridge check -config FILE": it validates the config
// file, prints its warnings, and prints "config OK: …" or every problem.
// It returns 0 for a valid config, 1 for an invalid one, 2 for bad usage.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: imapbridge check -config FILE")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "config file (YAML)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "imapbridge check: -config FILE is required")
		fs.Usage()
		return 2
	}

	cfg, warnings, err := config.Load(*configPath)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	var cerr *config.Error
	switch {
	case errors.As(err, &cerr):
		if len(cerr.Problems) == 1 {
			fmt.Fprintf(stderr, "config %s: 1 problem:\n", *configPath)
		} else {
			fmt.Fprintf(stderr, "config %s: %d problems:\n", *configPath, len(cerr.Problems))
		}
		for _, p := range cerr.Problems {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "imapbridge check: %v\n", err)
		return 1
	}
	// A fixed format, for scripts: "config OK: 1 sources, 1 users".
	fmt.Fprintf(stdout, "config OK: %d sources, %d users\n", len(cfg.Sources), len(cfg.Users))
	return 0
}

// Limits of hash-password.
const (
	minHashCost       = 10
	maxPasswordLength = 72 // bcrypt uses the first 72 bytes and no more
	maxPasswordLine   = 4096
)

// runHashPassword is "imapbridge hash-password": it reads one line from
// stdin and prints a bcrypt hash of it for password_hash. The line ending
// is not part of the password; other white space is. golang.org/x/term is
// not a dependency, so a password typed at a terminal is echoed; pipe it in
// (or use a password manager) where that matters.
func runHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: imapbridge hash-password [-cost N] < password-file")
		fmt.Fprintln(stderr, "Reads one line (the password) from stdin and prints its bcrypt hash.")
		fs.PrintDefaults()
	}
	cost := fs.Int("cost", bcrypt.DefaultCost, fmt.Sprintf("bcrypt cost, %d to %d", minHashCost, bcrypt.MaxCost))
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *cost < minHashCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(stderr, "imapbridge hash-password: -cost must be between %d and %d\n", minHashCost, bcrypt.MaxCost)
		return 2
	}

	if isTerminal(stdin) {
		fmt.Fprint(stderr, "Password (will be shown as you type): ")
	}
	password, err := readPasswordLine(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge hash-password: %v\n", err)
		return 1
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), *cost)
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge hash-password: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", hash)
	return 0
}

// readPasswordLine reads the first line of r without its line ending.
// Its errors never contain the password.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxPasswordLine+1)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read stdin: %w", err)
	}
	if err == io.EOF && len(line) > maxPasswordLine {
		return "", fmt.Errorf("no line ending in the first %d bytes of stdin", maxPasswordLine)
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	switch {
	case line == "":
		return "", errors.New("empty password refused")
	case len(line) > maxPasswordLength:
		return "", fmt.Errorf("password is %d bytes long; bcrypt uses at most %d", len(line), maxPasswordLength)
	}
	return line, nil
}

// isTerminal reports whether r is likely a terminal: a character device
// other than /dev/null. (golang.org/x/term would know for sure; it is not
// a dependency, and this only decides whether to print a prompt.)
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

// runVersion is "imapbridge version".
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: imapbridge version") }
	if code, done := parseFlags(fs, args); done {
		return code
	}
	fmt.Fprintf(stdout, "imapbridge %s (%s, %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}

// buildVersion is version, or for a plain "go install …@v1.2.3" build the
// module version Go recorded.
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// parseFlags parses a sub-command's flags and refuses positional
// arguments. done is true when the command should return code now: 0 after
// -h, 2 for bad usage.
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "imapbridge %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, true
	}
	return 0, false
}
