package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// interruptContext is cancelled by the first SIGINT or SIGTERM, so that a
// long command stops cleanly and reports what it has; once it is, the
// signals are let through again, so a second Ctrl-C ends the process at once.
func interruptContext() (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		cancel() // stop catching: the next signal terminates
	}()
	return ctx, cancel
}
