package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// Poll calls cond every `every` until it holds, ctx ends or timeout passes: Eventually for
// code without a testing.T (the benchmarks, the demo). Its error says the last state cond
// reported.
func Poll(ctx context.Context, timeout, every time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// Condition is what Eventually polls: a predicate, a check that returns what is still
// wrong, or a predicate with a note on the state it saw.
type Condition interface {
	func() bool | func() error | func() (bool, string)
}

// Eventually calls cond every `every` until it holds and returns how long that took; when
// timeout passes first it fails t, naming what and the last state cond reported.
func Eventually[C Condition](t testing.TB, timeout, every time.Duration, what string, cond C) time.Duration {
	t.Helper()
	check := func() (bool, string) {
		switch c := any(cond).(type) {
		case func() bool:
			return c(), ""
		case func() error:
			if err := c(); err != nil {
				return false, err.Error()
			}
			return true, ""
		case func() (bool, string):
			return c()
		}
		panic("unreachable")
	}
	start := time.Now()
	for {
		ok, note := check()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			if note == "" {
				t.Fatalf("%s: not within %v", what, timeout)
			}
			t.Fatalf("%s: not within %v (last: %s)", what, timeout, note)
		}
		time.Sleep(every)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// MustFreePort is FreePort for a test: it fails t when no port can be had.
func MustFreePort(t testing.TB) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatal(errors.Join(errors.New("no free port on 127.0.0.1"), err))
	}
	return p
}
