// Package check holds the small helpers every test package uses: taking a
// result that must not fail, and waiting for something that should
// happen. Their deadlines guard against hangs; they never measure speed.
package check

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Must checks a (value, error) result: v := check.Must(s.Get(ctx, k))(t).
func Must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// OK fails the test at once on an error.
func OK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Eventually calls cond until it returns nil, and fails the test with its
// last error once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := Retry(ctx, cond); err != nil {
		t.Fatalf("not reached after %v: %v", timeout, err)
	}
}

// Holds is a condition for Eventually that says what it waits for.
func Holds(what string, cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errors.New("waiting for " + what)
	}
}

// Retry calls fn every 50 ms until it returns nil or ctx ends, and then
// returns fn's last error.
func Retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
