package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Interrupting long commands (merge, search, synth, eval, sweep, ...).
//
// A long command wraps its work in a context cancelled by SIGINT (Ctrl-C)
// or SIGTERM, passes it down to every library call that takes one, and
// returns interrupted(ctx, err) when the work fails:
//
//	ctx, stop := signalContext()
//	defer stop()
//	if err := doTheWork(ctx, ...); err != nil {
//		return interrupted(ctx, err) // the signal's error when one arrived
//	}
//
// The work must remove its own temporary files when its context is
// cancelled (a deferred cleanup that runs on the error return does it;
// safetensors.OutDir does it for model folders). runMain turns the
// returned signalError into a newline (ending any progress line), one
// message line and the shell's exit status: 130 for SIGINT, 143 for
// SIGTERM. The first signal only cancels the context; a second one, while
// the command is still cleaning up, kills the process at once (the signal's
// default action), so a stuck command can always be stopped. A command that
// has partial results worth showing (eval's items scored so far) prints
// them before returning.

// signalError says that a command stopped because of a signal.
type signalError struct{ sig os.Signal }

func (e signalError) Error() string {
	name := "SIGINT"
	if e.sig == syscall.SIGTERM {
		name = "SIGTERM"
	}
	return "interrupted by " + name
}

// exitCode is the shell's status for a process ended by the signal.
func (e signalError) exitCode() int {
	if e.sig == syscall.SIGTERM {
		return 128 + 15
	}
	return 128 + 2
}

// signalContext returns a context cancelled (with a signalError as its
// cause) on the first SIGINT or SIGTERM, and a function that stops
// listening; call it when the command returns.
func signalContext() (context.Context, context.CancelFunc) {
	return signalContextFrom(context.Background())
}

// notifySignals is signal.Notify, replaced in tests.
var notifySignals = func(c chan<- os.Signal) { signal.Notify(c, os.Interrupt, syscall.SIGTERM) }

func signalContextFrom(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	c := make(chan os.Signal, 1)
	notifySignals(c)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-c:
			signal.Stop(c) // a second signal takes its default action
			cancel(signalError{s})
		case <-done:
		}
	}()
	stopped := false
	return ctx, func() {
		if !stopped {
			stopped = true
			signal.Stop(c)
			close(done)
			cancel(context.Canceled)
		}
	}
}

// interrupted returns the signal's error when ctx was cancelled by one
// (whatever err the interrupted work returned), else err.
func interrupted(ctx context.Context, err error) error {
	var se signalError
	if errors.As(context.Cause(ctx), &se) {
		return se
	}
	return err
}

// reportSignal prints an interrupted command's message and returns its exit
// status; ok is false when err is not a signal's.
func reportSignal(stderr interface{ Write([]byte) (int, error) }, name string, err error) (int, bool) {
	var se signalError
	if !errors.As(err, &se) {
		return 0, false
	}
	fmt.Fprintf(stderr, "\nmoco %s: %s\n", name, se.Error())
	return se.exitCode(), true
}
