//go:build !unix

package bench

// lockResults does nothing where flock is missing.
func lockResults(out string) (unlock func(), err error) { return func() {}, nil }
