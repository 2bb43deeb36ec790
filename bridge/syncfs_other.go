//go:build !linux

package bridge

import "errors"

// syncFS is Linux only; elsewhere every blob file is fsync'd on its own.
func syncFS(string) error { return errors.New("syncfs is not available on this system") }

func syncfsUsable() bool { return false }
