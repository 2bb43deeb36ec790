package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Error lists every problem found in a configuration, each as
// "key: problem" (or "line N: problem" where no key can be named).
type Error struct {
	File     string // "" when the config did not come from a file
	Problems []string
}

func (e *Error) Error() string {
	where := "config"
	if e.File != "" {
		where = "config " + e.File
	}
	if len(e.Problems) == 1 {
		return where + ": " + e.Problems[0]
	}
	return fmt.Sprintf("%s: %d problems: %s", where, len(e.Problems), strings.Join(e.Problems, "; "))
}

// Load reads, parses and validates the config file at path. Warnings
// are problems that do not stop the bridge but that an operator should see.
// A config that is invalid returns a *Error.
func Load(path string) (*Config, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	p := newParser(filepath.Dir(path), os.LookupEnv)
	cfg, warnings, err := p.parse(data)
	var cerr *Error
	if errors.As(err, &cerr) {
		cerr.File = path
	}
	if err != nil {
		return nil, warnings, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		for _, w := range p.inline {
			warnings = append(warnings, fmt.Sprintf("%s: password written in a config file that others can read (mode %04o); use %s", w.key, fi.Mode().Perm(), w.instead))
		}
	}
	return cfg, warnings, nil
}

// Parse parses and validates a config held in memory. Relative paths
// in it are taken relative to baseDir.
func Parse(data []byte, baseDir string) (*Config, []string, error) {
	return newParser(baseDir, os.LookupEnv).parse(data)
}

// ParseEnv is Parse with the environment given: lookupEnv stands in for
// os.LookupEnv (nil: no variable is set). Tests use it so that what they
// parse does not depend on the environment of whoever runs them.
func ParseEnv(data []byte, baseDir string, lookupEnv func(string) (string, bool)) (*Config, []string, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	return newParser(baseDir, lookupEnv).parse(data)
}
