package harness

import (
	"context"
	"sync"
	"testing"
	"time"
)

// RunInBackground runs start (a manager's Start, the webhook's Run, a server's Start) in a
// goroutine with a context of its own, and returns stop: it cancels that context and waits
// up to timeout for start to return, failing the test if start returned an error or did not
// return in time. stop runs at the end of the test if the test did not call it (an outage).
func RunInBackground(t testing.TB, what string, timeout time.Duration, start func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s exited with %v", what, err)
				}
			case <-time.After(timeout):
				t.Errorf("%s did not stop within %v of its context ending", what, timeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
