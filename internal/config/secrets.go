package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Environment variables that override the file.
const (
	envSecretKey      = "IMAPBRIDGE_SECRET_KEY"
	envPasswordHash   = "IMAPBRIDGE_PASSWORD_HASH_"   // + envName(user)
	envSourcePassword = "IMAPBRIDGE_SOURCE_PASSWORD_" // + envName(user)
)

// envName turns a user name into the suffix of its environment variables.
func envName(user string) string {
	b := []byte(user)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// secret resolves one secret from the environment, its *_file key or the
// file itself, in that order, and returns the key (or "$VARIABLE") it came
// from, or "" when it is not set. failed is true when the problem has
// been reported.
func (p *parser) secret(inlineKey string, value *Secret, fileKey string, file *string, env string) (from string, failed bool) {
	if v, ok := p.env(env); ok {
		*value = Secret(v)
		return "$" + env, false
	}
	if *file == "" {
		if *value == "" {
			return "", p.isBad(inlineKey)
		}
		return inlineKey, false
	}
	if *value != "" {
		p.errorf(fileKey, "set only one of %s and %s", lastKey(inlineKey), lastKey(fileKey))
		*value = ""
		return "", true
	}
	*file = p.path(*file)
	v, err := readSecretFile(*file)
	if err != nil {
		p.errorf(fileKey, "%v", err)
		return "", true
	}
	*value = Secret(v)
	return fileKey, false
}

func lastKey(key string) string { return key[strings.LastIndex(key, ".")+1:] }

func (p *parser) env(name string) (string, bool) {
	if p.lookupEnv == nil {
		return "", false
	}
	v, ok := p.lookupEnv(name)
	return v, ok && v != ""
}

func (p *parser) envInUse(suffix string) bool {
	_, a := p.env(envPasswordHash + suffix)
	_, b := p.env(envSourcePassword + suffix)
	return a || b
}

// maxSecretFile bounds what readSecretFile reads: a password or a key, not
// a mistake like /dev/zero.
const maxSecretFile = 64 << 10

// readSecretFile reads a secret from a file, trimming trailing CR and LF.
// Its errors name the file but never its content.
func readSecretFile(name string) (string, error) {
	if err := checkRegularFile(name); err != nil {
		return "", err
	}
	f, err := os.Open(name)
	if err != nil {
		return "", fileError(name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fileError(name, err)
	}
	if len(data) > maxSecretFile {
		return "", fmt.Errorf("file %q is larger than %d bytes", name, maxSecretFile)
	}
	v := strings.TrimRight(string(data), "\r\n")
	if v == "" {
		return "", fmt.Errorf("file %q is empty", name)
	}
	return v, nil
}

// checkRegularFile refuses what is not a regular file before it is opened
// (a FIFO would block, a device could be endless).
func checkRegularFile(name string) error {
	fi, err := os.Stat(name)
	if err != nil {
		return fileError(name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%q is not a regular file", name)
	}
	return nil
}

func fileError(name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("file %q does not exist", name)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("file %q: permission denied", name)
	}
	var perr *fs.PathError
	if errors.As(err, &perr) {
		err = perr.Err
	}
	return fmt.Errorf("cannot read %q: %v", name, err)
}
