package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
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

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. It is picked at
// random below the kernel's ephemeral range (net.ipv4.ip_local_port_range), from which the
// kernel takes the local port of every outgoing connection and of every listener on port 0:
// a port from that range could be taken by a connection of the API server or of another test
// between this call and the listener that wants it (CI saw "bind: address already in use"
// on a loaded machine). Where the range leaves no room, the kernel picks one.
func FreePort() (int, error) {
	if low := ephemeralLow(); low > minPort+1000 {
		for range 50 {
			port := minPort + rand.IntN(low-minPort)
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				return port, l.Close()
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePorts returns n distinct ports as FreePort does, none of them in taken: two picks of
// FreePort are independent and can return the same port (CI saw a binary's health probe and
// metrics listener given one port, "bind: address already in use").
func FreePorts(n int, taken ...int) ([]int, error) {
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries == 100*n {
			return nil, fmt.Errorf("no %d distinct free ports after %d tries", n, tries)
		}
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(taken, p) && !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// minPort is the lowest port FreePort picks: above the ports services are known by.
const minPort = 20000

// ephemeralLow is the first port of the kernel's ephemeral range, or 0 when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil {
		return 0
	}
	return low
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
