package bridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ProbeWrites checks, when the last write to the store failed, whether the
// store takes writes again: it writes, fsyncs and removes a small file where
// message bodies are written first, then commits an empty transaction to
// the state database. Success clears the failure Ready reports; a failure
// is recorded (and returned) like any other. With no failure recorded it
// does nothing: a readiness check can call it on every request.
//
// Without it a store that met a full or read-only disk would report not
// ready until some later write happened to succeed, which may be never
// when no mail arrives.
func (b *Bridge) ProbeWrites(ctx context.Context) error {
	if err := b.Ready(); err == nil || !errors.Is(err, ErrStoreNotWritable) {
		return err
	}
	if err := b.probeFile(); err != nil {
		b.noteWrite(fmt.Errorf("%w: %v", ErrStoreNotWritable, err))
		return err
	}
	// write records its own outcome (success clears the failure).
	if err := b.write(ctx, func(*wtx) error { return nil }); err != nil {
		return fmt.Errorf("store: probe the state database: %w", err)
	}
	return nil
}

func (b *Bridge) probeFile() error {
	f, err := os.CreateTemp(filepath.Join(b.dir, tmpDir), "probe-*")
	if err != nil {
		return fmt.Errorf("store: probe: %w", err)
	}
	name := f.Name()
	defer os.Remove(name)
	_, err = f.Write(make([]byte, 4096))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: probe: %w", err)
	}
	return nil
}
