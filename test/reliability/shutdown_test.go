package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// shutdownDelay is the binary's --shutdown-delay default, which the manifests keep.
const shutdownDelay = 5 * time.Second

// directResult is one AdmissionReview sent straight to the webhook's HTTPS port.
type directResult struct {
	start, end time.Time
	clamped    int32
	err        error
	// closed: the answer said "Connection: close".
	closed bool
	// inFlight: the request was written to a connection whose TLS handshake the server had
	// done; reused: to a kept-alive connection.
	inFlight, reused bool
}

// slowReview sends an AdmissionReview in two halves over its own TLS connection: the
// headers and half the body at once, the rest when release is closed. It is a request in
// flight for as long as the test wants.
func slowReview(tlsConfig *tls.Config, addr, ns, name, uid string, release <-chan struct{}) directResult {
	r := directResult{start: time.Now()}
	defer func() { r.end = time.Now() }()
	body := reviewJSON(uid, ns, name, 2, 50)
	conn, err := tls.Dial("tcp", addr, tlsConfig)
	if err != nil {
		r.err = err
		return r
	}
	defer conn.Close()
	half := len(body) / 2
	head := fmt.Sprintf("POST /mutate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, len(body))
	if _, err := conn.Write(append([]byte(head), body[:half]...)); err != nil {
		r.err = err
		return r
	}
	<-release
	if _, err := conn.Write(body[half:]); err != nil {
		r.err = fmt.Errorf("sending the rest of the body: %w", err)
		return r
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		r.err = fmt.Errorf("reading the answer: %w", err)
		return r
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.err = err
		return r
	}
	r.clamped, r.err = clampedTo(b, uid)
	return r
}

// TestGracefulShutdown sends SIGTERM while admission requests are in flight, through the
// API server and straight to the webhook, and checks the order the contract promises:
// readiness turns false at once; the webhook keeps answering for --shutdown-delay; the
// requests in flight when the server shuts down get complete answers; and the process
// exits 0 within 30 s.
func TestGracefulShutdown(t *testing.T) {
	e := startCluster(t)
	const ns = "term"
	e.mustSetPolicy(t, policyDoc("term-cap", ns, 1, 5))
	names := e.createDeployments(t, ns, 5, 2)
	for round := range pick(1, 5) {
		t.Run(fmt.Sprintf("round %d", round+1), func(t *testing.T) { shutdownRound(t, e, ns, names) })
	}
}

func shutdownRound(t *testing.T, e *env, ns string, names []string) {
	w := e.runWebhook(t, "webhook")
	ctx := context.Background()
	harness.Eventually(t, 10*time.Second, poll, "the policy is in force", func() bool {
		got, err := scale(ctx, e.admin, ns, names[0], 50, true)
		return err == nil && got == 5
	})
	addr := fmt.Sprintf("127.0.0.1:%d", e.Port)
	tlsConfig := e.webhookTLS(t)
	stopAll, stop := context.WithCancel(ctx)
	defer stop()

	// Readiness, every 20 ms.
	var (
		mu          sync.Mutex
		unreadyAt   time.Time
		listenerEnd time.Time // first refused connection
	)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		hc := &http.Client{Timeout: time.Second}
		for stopAll.Err() == nil {
			resp, err := hc.Get("http://" + w.Health + "/readyz")
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != http.StatusOK {
				mu.Lock()
				if unreadyAt.IsZero() {
					unreadyAt = time.Now()
				}
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	// The listener, every 20 ms: a refused TCP connection means it is closed.
	go func() {
		defer wg.Done()
		for stopAll.Err() == nil {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			} else if errors.Is(err, syscall.ECONNREFUSED) {
				mu.Lock()
				listenerEnd = time.Now()
				mu.Unlock()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// Direct AdmissionReviews from 4 keep-alive clients, as the API server sends them.
	var direct []directResult
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; stopAll.Err() == nil; i++ {
				uid := fmt.Sprintf("direct-%d-%d", g, i)
				r := directResult{start: time.Now()}
				// The trace's callbacks run on the transport's goroutines.
				var traceMu sync.Mutex
				var accepted, reused, inFlight bool
				trace := &httptrace.ClientTrace{
					GotConn: func(i httptrace.GotConnInfo) {
						traceMu.Lock()
						accepted, reused = accepted || i.Reused, i.Reused
						traceMu.Unlock()
					},
					TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
						traceMu.Lock()
						accepted = accepted || err == nil
						traceMu.Unlock()
					},
					WroteRequest: func(i httptrace.WroteRequestInfo) {
						traceMu.Lock()
						inFlight = accepted && i.Err == nil
						traceMu.Unlock()
					},
				}
				req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(stopAll, trace), http.MethodPost, "https://"+addr+"/mutate",
					bytes.NewReader(reviewJSON(uid, ns, names[0], 2, 50)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err == nil {
					r.closed = resp.Close
					var b []byte
					b, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil {
						r.clamped, err = clampedTo(b, uid)
					}
				}
				r.end, r.err = time.Now(), err
				traceMu.Lock()
				r.inFlight, r.reused = inFlight, reused
				traceMu.Unlock()
				mu.Lock()
				direct = append(direct, r)
				mu.Unlock()
				if errors.Is(err, syscall.ECONNREFUSED) {
					return // the listener is closed: nothing more to learn
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	// Dry-run scale requests through the API server.
	l := dryRunLoad(stopAll, e, ns, names, pick(20, 40))

	// Slow requests: half sent before SIGTERM, the rest after the shutdown delay, when the
	// server is shutting down; and one begun during the delay.
	release := make(chan struct{})
	slow := make([]directResult, 3)
	var slowWG sync.WaitGroup
	for i := range slow {
		slowWG.Add(1)
		go func() {
			defer slowWG.Done()
			if i == 2 {
				time.Sleep(time.Second + shutdownDelay/2)
			}
			slow[i] = slowReview(tlsConfig, addr, ns, names[0], fmt.Sprintf("slow-%d", i), release)
		}()
	}

	// A stalled client: half a request, and never the rest (a half-open connection looks
	// the same to the server). It must not hold the shutdown.
	never := make(chan struct{})
	defer close(never)
	go slowReview(tlsConfig, addr, ns, names[0], "stalled", never)
	time.Sleep(time.Second)
	sigterm := time.Now()
	if err := w.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Release the slow requests once the server has begun shutting down.
	go func() {
		for {
			mu.Lock()
			closed := !listenerEnd.IsZero()
			mu.Unlock()
			if closed || time.Since(sigterm) > shutdownDelay+5*time.Second {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		close(release)
	}()
	exitErr := w.Wait(35 * time.Second)
	exited := time.Since(sigterm)
	slowWG.Wait()
	stop()
	rs := l.Wait()
	wg.Wait()

	if exitErr != nil {
		t.Errorf("after SIGTERM: %v\n%s", exitErr, w.Log())
	}
	if exited > 30*time.Second {
		t.Errorf("exited %v after SIGTERM; the contract is 30 s", exited)
	}
	// At once: the poll runs every 20 ms; the bound leaves room for a loaded 2-core machine.
	if unreadyAt.IsZero() || unreadyAt.Sub(sigterm) > time.Second {
		t.Errorf("readiness turned false %v after SIGTERM; want at once", unreadyAt.Sub(sigterm))
	}
	if listenerEnd.IsZero() {
		t.Fatal("the webhook's listener never closed")
	}
	if !unreadyAt.Before(listenerEnd) {
		t.Errorf("readiness turned false at %v, after the listener closed at %v", unreadyAt.Sub(sigterm), listenerEnd.Sub(sigterm))
	}
	if d := listenerEnd.Sub(sigterm); d < shutdownDelay {
		t.Errorf("the listener closed %v after SIGTERM, before the shutdown delay of %v", d, shutdownDelay)
	}

	// Direct requests: every one that began before the listener closed got a complete,
	// clamped answer; later ones were refused.
	var directOK, directRefused, directBad, keptAlive, atClose int
	for _, r := range direct {
		// After SIGTERM every answer closes its connection, so that a client's next request
		// opens a new one (through the Service, to another replica) instead of racing the
		// server's shutdown on a kept-alive one.
		if r.err == nil && r.start.After(unreadyAt) && !r.closed {
			keptAlive++
		}
		switch {
		case r.err == nil && r.clamped == 5:
			directOK++
		case errors.Is(r.err, syscall.ECONNREFUSED) && !r.start.Before(listenerEnd.Add(-50*time.Millisecond)):
			directRefused++
		case !r.reused && !r.start.Before(listenerEnd.Add(-250*time.Millisecond)):
			// A new connection as the listener closed: it was left in the kernel's accept
			// queue, or accepted but its request not yet read when the shutdown began, and
			// Go's http.Server.Shutdown closes those without an answer. In a cluster no new
			// connection reaches a replica whose endpoint went during the shutdown delay.
			atClose++
		default:
			directBad++
			t.Errorf("direct request at %v after SIGTERM (in flight %t, kept-alive connection %t): clamped %d, %v",
				r.start.Sub(sigterm).Round(time.Millisecond), r.inFlight, r.reused, r.clamped, r.err)
		}
	}
	if keptAlive > 0 {
		t.Errorf("%d answers after SIGTERM kept their connection alive: want \"Connection: close\"", keptAlive)
	}
	for i, r := range slow {
		if r.err != nil || r.clamped != 5 {
			t.Errorf("slow request %d (begun %v after SIGTERM, finished %v after): clamped %d, %v", i,
				r.start.Sub(sigterm).Round(time.Millisecond), r.end.Sub(sigterm).Round(time.Millisecond), r.clamped, r.err)
		}
	}
	// Through the API server: clamped while the listener was open; after it closed the
	// API server fails open (no Service endpoints to take this replica out locally).
	var apiClamped, apiOpenAfter, apiBad int
	for _, r := range rs {
		switch {
		case r.Err == nil && r.Got == 5:
			apiClamped++
		case r.Err == nil && r.Got == 50 && !r.Start.Before(listenerEnd.Add(-250*time.Millisecond)):
			// After the close, or a new connection at the close (see the direct requests).
			apiOpenAfter++
		default:
			apiBad++
			t.Errorf("dry-run scale through the API server at %v after SIGTERM answered %d, %v", r.Start.Sub(sigterm).Round(time.Millisecond), r.Got, r.Err)
		}
	}
	exit := "exit code 0"
	if exitErr != nil {
		exit = exitErr.Error()
	}
	figure(t, "SIGTERM: unready after %v, listener closed after %v, %s after %v; direct requests %d complete, %d refused after the close, %d new connections dropped at the close, %d other; slow in-flight requests %d, complete %d; through the API server %d clamped, %d unchecked at or after the close, %d other",
		unreadyAt.Sub(sigterm).Round(time.Millisecond), listenerEnd.Sub(sigterm).Round(time.Millisecond), exit, exited.Round(time.Millisecond),
		directOK, directRefused, atClose, directBad, len(slow), countComplete(slow), apiClamped, apiOpenAfter, apiBad)
}

func countComplete(rs []directResult) int {
	n := 0
	for _, r := range rs {
		if r.err == nil && r.clamped == 5 {
			n++
		}
	}
	return n
}
