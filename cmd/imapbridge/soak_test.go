//go:build soak

package main

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestSoak is the long crash-safety campaign of crashsoak_test.go, run by
// `make soak`: SIGKILL rounds until SOAK_DURATION (default 4m) is spent or
// SOAK_ROUNDS (default unlimited) are done. SOAK_SEED replays a run's
// random choices.
func TestSoak(t *testing.T) {
	budget := 4 * time.Minute
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SOAK_DURATION=%q: %v", s, err)
		}
		budget = d
	}
	rounds := 1 << 30
	if s := os.Getenv("SOAK_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("SOAK_ROUNDS=%q: want a positive number", s)
		}
		rounds = n
	}
	runCrashSoak(t, rounds, budget)
}
