package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// shutdownBudget is how long each phase of a shutdown may take. A phase
// that overruns is logged at ERROR and the next one starts anyway, so one
// slow phase never eats the budget of the phases after it.
type shutdownBudget struct {
	Accept  time.Duration // close the IMAP listeners; their accept loops return
	Drain   time.Duration // BYE to every IMAP session; wait for each to end
	Pollers time.Duration // cancel the poll loops (a poll in flight is aborted); wait for them
	Store   time.Duration // admin requests in flight, then the store closes
}

var (
	// serveShutdown is serve's, on SIGINT/SIGTERM: a systemd unit's
	// TimeoutStopSec and Docker's stop timeout must exceed the sum (45 s).
	serveShutdown = shutdownBudget{Accept: 5 * time.Second, Drain: 20 * time.Second, Pollers: 10 * time.Second, Store: 10 * time.Second}
	// quickShutdown is the demo's, a failed start's and the tests'.
	quickShutdown = shutdownBudget{Accept: 2 * time.Second, Drain: 5 * time.Second, Pollers: 5 * time.Second, Store: 5 * time.Second}
)

// shutdown stops the app in phases, each with its own budget and one log
// line ("shutdown: ...", with phase, took and budget):
//
//  1. stop accepting: the IMAP listeners close, so no new session starts;
//  2. drain IMAP sessions: each gets BYE once the response it is writing
//     is out, and ends; at the budget's end the rest are cut;
//  3. stop pollers: the poll loops' context is cancelled, which aborts a
//     poll in flight (what it stored stays, nothing unstored is deleted at
//     the source), and they are waited for;
//  4. close the store: the admin listener stops (it answers /readyz 503
//     "shutting down" until here), then the store closes.
//
// So the store closes only once the sessions and the pollers that write to
// it have stopped, or their budget is spent.
func (a *app) shutdown(b shutdownBudget) error {
	a.ready.set(errors.New("shutting down"))
	var errs []error
	run := func(n int, done string, budget time.Duration, fn func(context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		start := time.Now()
		err := fn(ctx)
		took := time.Since(start).Round(time.Millisecond)
		if err != nil {
			a.log.Error("shutdown: phase failed", "phase", n, "took", took, "budget", budget, "err", err)
			errs = append(errs, err)
			return
		}
		a.log.Info("shutdown: "+done, "phase", n, "took", took, "budget", budget)
	}

	run(1, "stopped accepting", b.Accept, func(ctx context.Context) error {
		var errs []error
		for _, ln := range a.listeners {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, fmt.Errorf("imap: close %s: %w", ln.Addr(), err))
			}
		}
		if err := waitCtx(ctx, &a.acceptWG); err != nil {
			errs = append(errs, fmt.Errorf("imap: accept loops: %w", err))
		}
		return errors.Join(errs...)
	})
	run(2, "IMAP sessions drained", b.Drain, func(ctx context.Context) error {
		if a.front == nil {
			return nil
		}
		if err := a.front.Shutdown(ctx); err != nil {
			return fmt.Errorf("imap: %w", err)
		}
		return nil
	})
	run(3, "pollers stopped", b.Pollers, func(ctx context.Context) error {
		bgErr := a.stopBackground(ctx)
		return errors.Join(a.syncer.Stop(ctx), bgErr)
	})
	run(4, "store closed", b.Store, func(ctx context.Context) error {
		var errs []error
		if a.admin != nil {
			if err := a.admin.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("admin: %w", err))
			}
		}
		a.logins.stop() // no session is left to log in
		if err := waitCtx(ctx, &a.wg); err != nil {
			errs = append(errs, fmt.Errorf("listeners: %w", err))
		}
		if err := a.bridge.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: %w", err))
		}
		return errors.Join(errs...)
	})
	return errors.Join(errs...)
}

// waitCtx waits for wg until ctx ends.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *app) stopAll() {
	if err := a.shutdown(quickShutdown); err != nil {
		a.log.Error("shutdown after failed start", "err", err)
	}
}
