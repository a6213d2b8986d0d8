package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// The edge tests send bad input at every edge of the running command: malformed and huge
// bodies and slow or silent clients straight at its HTTPS port, old TLS versions and
// HTTP/2, odd requests through the API server, and a policy at the ConfigMap size limit.
// They share one control plane and one webhook, started by Run() as in webhook_test.go.

const edgePolicy = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- name: edge
  namespaces: [edge]
  minReplicas: 2
  maxReplicas: 10
`

// webhookConn is how the tests reach the webhook server directly, as the API server does.
type webhookConn struct {
	addr string // host:port
	tls  *tls.Config
}

func (f *fixture) webhookConn(t *testing.T) webhookConn {
	t.Helper()
	wio := f.env.WebhookInstallOptions
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(wio.LocalServingCAData) {
		t.Fatal("envtest's webhook CA is not PEM")
	}
	host := wio.LocalServingHost
	if host == "" {
		host = "127.0.0.1"
	}
	return webhookConn{
		addr: net.JoinHostPort(host, strconv.Itoa(wio.LocalServingPort)),
		tls:  &tls.Config{RootCAs: pool, ServerName: "localhost"},
	}
}

// client is an HTTP/1.1 client of the webhook server that opens a new connection per request.
func (w webhookConn) client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: w.tls.Clone(), DisableKeepAlives: true}}
}

// review posts body to path and returns the HTTP status and the decoded AdmissionReview.
func (w webhookConn) review(t *testing.T, path, contentType string, body io.Reader) (int, *admissionv1.AdmissionResponse) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://"+w.addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := w.client().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &ar); err != nil || ar.Response == nil {
		t.Fatalf("POST %s: HTTP %d, not an AdmissionReview with a response (%v): %q", path, resp.StatusCode, err, raw)
	}
	return resp.StatusCode, ar.Response
}

// reviewJSON is an AdmissionReview for a Deployment create in namespace edge: 50 replicas,
// which the edge policy clamps to 10.
func reviewJSON(uid string) []byte {
	fifty := int32(50)
	r := harness.DeploymentReview(uid, "edge", "direct", nil, &fifty, nil)
	r.UserInfo = edgeUser
	return r.JSON()
}

// edgeUser is the requester of the reviews the edge tests send directly.
var edgeUser = &authenticationv1.UserInfo{Username: "edge-test"}

// stillServes checks that the webhook answers a good request directly, clamped.
func (w webhookConn) stillServes(t *testing.T) {
	t.Helper()
	uid := fmt.Sprintf("still-serves-%d", time.Now().UnixNano())
	code, ans := w.review(t, "/mutate", "application/json", bytes.NewReader(reviewJSON(uid)))
	if code != http.StatusOK || !ans.Allowed || string(ans.UID) != uid || ans.Patch == nil {
		t.Fatalf("the server no longer decides: HTTP %d, %+v", code, ans)
	}
}

func TestEdges(t *testing.T) {
	f := startWebhook(t, nil)
	ctx := context.Background()
	createNamespaces(t, f.client, "edge", "edge-big")
	deps := f.client.AppsV1().Deployments("edge")
	f.applyPolicy(t, edgePolicy, func() bool {
		d, err := deps.Create(ctx, harness.Deployment("edge", "probe", 50, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && *d.Spec.Replicas == 10
	})
	w := f.webhookConn(t)

	t.Run("malformed requests over HTTPS get clear answers", func(t *testing.T) { testMalformed(t, w) })
	t.Run("a body over 7 MiB is refused and the server keeps serving", func(t *testing.T) { testHugeBody(t, w) })
	t.Run("TLS 1.0 and 1.1 are refused, 1.2 and 1.3 served", func(t *testing.T) { testTLSVersions(t, w) })
	t.Run("HTTP/2 is never negotiated", func(t *testing.T) { testNoHTTP2(t, w) })
	t.Run("slow and silent clients delay no admission", func(t *testing.T) { testSlowClients(t, f, w) })
	t.Run("nil replicas are defaulted to 1 before the webhook decides", func(t *testing.T) { testNilReplicas(t, f) })
	t.Run("negative replicas are left to the API server's validation", func(t *testing.T) { testNegativeReplicas(t, f) })
	t.Run("kinds and subresources the webhook does not handle", func(t *testing.T) { testNotHandled(t, w) })
	t.Run("a 1 MiB policy is checked at apply and enforced in time", func(t *testing.T) { testHugePolicy(t, f) })
}

func testMalformed(t *testing.T, w webhookConn) {
	good := reviewJSON("m-good")
	for _, tc := range []struct {
		name        string
		path        string
		contentType string
		body        []byte
		chunked     bool
		wantCode    int32  // in the AdmissionReview's response.status
		want        string // in its message
	}{
		{"truncated JSON", "/mutate", "application/json", good[:len(good)/2], false, http.StatusBadRequest, "unexpected end of JSON input"},
		{"a JSON array", "/validate", "application/json", []byte(`[1,2,3]`), false, http.StatusBadRequest, ""},
		{"another kind", "/mutate", "application/json", []byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"}}`), false, http.StatusBadRequest, "not an AdmissionReview request"},
		{"a request without uid", "/validate", "application/json", bytes.Replace(good, []byte(`"uid":"m-good",`), nil, 1), false, http.StatusBadRequest, "request.uid and request.resource are required"},
		{"replicas of the wrong type", "/mutate", "application/json", bytes.Replace(good, []byte(`"replicas":50`), []byte(`"replicas":"many"`), 1), false, http.StatusBadRequest, "decoding the object"},
		{"YAML, not JSON", "/mutate", "application/yaml", []byte("kind: AdmissionReview\n"), false, http.StatusBadRequest, "contentType=application/yaml, expected application/json"},
		{"no body", "/validate", "application/json", nil, false, http.StatusBadRequest, "request body is empty"},
		// Chunked transfer encoding carries a good review as well as a Content-Length does.
		{"chunked, good", "/mutate", "application/json", good, true, 0, ""},
	} {
		var body io.Reader
		if tc.body != nil {
			body = bytes.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // no Len: net/http sends it chunked
			}
		}
		code, ans := w.review(t, tc.path, tc.contentType, body)
		if code != http.StatusOK {
			t.Errorf("%s: HTTP %d, want 200 with the outcome in the AdmissionReview", tc.name, code)
		}
		if tc.wantCode == 0 {
			if !ans.Allowed || ans.Patch == nil || ans.UID != "m-good" {
				t.Errorf("%s: want the review decided (clamped) with its uid, got %+v", tc.name, ans)
			}
			continue
		}
		if ans.Allowed || ans.Result == nil || ans.Result.Code != tc.wantCode || !strings.Contains(ans.Result.Message, tc.want) {
			t.Errorf("%s: want a %d answer mentioning %q, got allowed=%t %+v", tc.name, tc.wantCode, tc.want, ans.Allowed, ans.Result)
		}
	}

	// Below the AdmissionReview: a path nobody serves, a request line that is not HTTP, and
	// headers over the server's 1 MiB limit are refused by net/http itself.
	resp, err := w.client().Post("https://"+w.addr+"/admit", "application/json", bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /admit: HTTP %d, want 404", resp.StatusCode)
	}
	if line := rawExchange(t, w, "\x16\x03\x01 not http at all\r\n\r\n"); !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Errorf("a request line that is not HTTP: answered %q, want HTTP/1.1 400", line)
	}
	big := "POST /mutate HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20+4096) + "\r\n\r\n"
	if line := rawExchange(t, w, big); !strings.HasPrefix(line, "HTTP/1.1 431") {
		t.Errorf("headers over 1 MiB: answered %q, want HTTP/1.1 431", line)
	}
	w.stillServes(t)
}

// rawExchange writes req on a new TLS connection and returns the first line of the answer.
func rawExchange(t *testing.T, w webhookConn, req string) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", w.addr, w.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = io.WriteString(c, req) }() // the server may answer before reading it all
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

func testHugeBody(t *testing.T, w webhookConn) {
	// A good review followed by 8 MiB of whitespace: it would decode if it were read whole.
	const size = 8 << 20
	body := append(reviewJSON("huge"), bytes.Repeat([]byte{' '}, size)...)
	start := time.Now()
	code, ans := w.review(t, "/mutate", "application/json", bytes.NewReader(body))
	if code != http.StatusOK || ans.Allowed || ans.Result == nil || ans.Result.Code != http.StatusRequestEntityTooLarge ||
		!strings.Contains(ans.Result.Message, "request entity is too large; limit is 7340032 bytes") {
		t.Fatalf("want a 413 answer naming the 7 MiB limit, got HTTP %d allowed=%t %+v", code, ans.Allowed, ans.Result)
	}
	t.Logf("%d-byte body refused in %v", len(body), time.Since(start).Round(time.Millisecond))
	w.stillServes(t)
}

func testTLSVersions(t *testing.T, w webhookConn) {
	for _, tc := range []struct {
		name     string
		min, max uint16
		ok       bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS11, false},
		{"TLS 1.0 or 1.1", tls.VersionTLS10, tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		cfg := w.tls.Clone()
		cfg.MinVersion, cfg.MaxVersion = tc.min, tc.max
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", w.addr, cfg)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: handshake failed: %v", tc.name, err)
		case tc.ok:
			if v := c.ConnectionState().Version; v != tc.max {
				t.Errorf("%s: negotiated %s", tc.name, tls.VersionName(v))
			}
			c.Close()
		case err == nil:
			t.Errorf("%s: handshake succeeded (%s), want it refused", tc.name, tls.VersionName(c.ConnectionState().Version))
			c.Close()
		// "remote error": the server refused the hello the client did send.
		case !strings.Contains(err.Error(), "remote error: tls: protocol version not supported"):
			t.Errorf("%s: handshake failed with %v, want the server's protocol_version alert", tc.name, err)
		}
	}
	w.stillServes(t)
}

func testNoHTTP2(t *testing.T, w webhookConn) {
	// A client that prefers h2 (as Go's and most others do) gets HTTP/1.1.
	cfg := w.tls.Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	c, err := tls.Dial("tcp", w.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("offered h2 and http/1.1: negotiated %q, want http/1.1", p)
	}
	c.Close()

	// A client that speaks only h2 is refused.
	cfg.NextProtos = []string{"h2"}
	if c, err := tls.Dial("tcp", w.addr, cfg); err == nil {
		if p := c.ConnectionState().NegotiatedProtocol; p == "h2" {
			t.Errorf("an h2-only client negotiated h2")
		}
		c.Close()
	} else if !strings.Contains(err.Error(), "no application protocol") {
		t.Errorf("h2-only client: %v, want the no_application_protocol alert", err)
	}

	// The HTTP/2 preface without ALPN ("prior knowledge") is answered as HTTP/1.1, not with
	// an HTTP/2 SETTINGS frame.
	if line := rawExchange(t, w, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"); !strings.HasPrefix(line, "HTTP/1.1 ") {
		t.Errorf("HTTP/2 preface: answered %q, want an HTTP/1.1 status line", line)
	}

	// And Go's own HTTP/2-capable client ends up on HTTP/1.1.
	tr := &http.Transport{TLSClientConfig: w.tls.Clone(), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Post("https://"+w.addr+"/mutate", "application/json", bytes.NewReader(reviewJSON("h2")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Errorf("an HTTP/2-capable client was answered over %s", resp.Proto)
	}
}

// stalled is a connection a slow or silent client holds open, and when the server closed it.
type stalled struct {
	kind   string
	conn   net.Conn
	closed chan time.Duration // when the server closed it, after opening
}

func testSlowClients(t *testing.T, f *fixture, w webhookConn) {
	const perKind = 50
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conns []*stalled
	var wg sync.WaitGroup
	defer func() {
		cancel()
		for _, s := range conns {
			s.conn.Close()
		}
		wg.Wait()
	}()
	opened := time.Now()
	// open connects a stalled client of kind (with the TLS handshake done when handshake
	// is set) and reads from it until the server closes it (a stalled client reads nothing
	// else).
	open := func(kind string, handshake bool) net.Conn {
		var c net.Conn
		var err error
		if handshake {
			c, err = tls.Dial("tcp", w.addr, w.tls)
		} else {
			c, err = net.Dial("tcp", w.addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		s := &stalled{kind: kind, conn: c, closed: make(chan time.Duration, 1)}
		conns = append(conns, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(io.Discard, s.conn)
			s.closed <- time.Since(opened)
		}()
		return c
	}
	for i := range perKind {
		// TCP connected, never a ClientHello: a half-open TLS connection.
		open("silent before the TLS handshake", false)

		// The handshake done, then silence.
		open("silent after the TLS handshake", true)

		// Slowloris: headers one byte every 500 ms, never finished.
		c := open("headers one byte at a time", true)
		wg.Add(1)
		go func(c net.Conn, i int) {
			defer wg.Done()
			head := fmt.Sprintf("POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Slow-%d: ", i)
			for j := 0; ; j++ {
				b := byte('a')
				if j < len(head) {
					b = head[j]
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(500 * time.Millisecond):
				}
			}
		}(c, i)

		// Headers complete, then the body one byte at a time.
		c = open("body one byte at a time", true)
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			if _, err := io.WriteString(c, "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"); err != nil {
				return
			}
			for {
				if _, err := c.Write([]byte{' '}); err != nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}(c)
	}
	t.Logf("%d stalled connections open after %v", len(conns), time.Since(opened).Round(time.Millisecond))

	// Meanwhile, admission through the API server answers promptly. The clamp proves the
	// webhook answered: with failurePolicy Ignore, a webhook that timed out would leave 50.
	deps := f.client.AppsV1().Deployments("edge")
	var slowest time.Duration
	for i := range 5 {
		start := time.Now()
		d, err := deps.Create(context.Background(), harness.Deployment("edge", fmt.Sprintf("during-stall-%d", i), 50, nil), metav1.CreateOptions{})
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if *d.Spec.Replicas != 10 {
			t.Fatalf("create during the stall: replicas %d, want 10 (the webhook did not answer)", *d.Spec.Replicas)
		}
		slowest = max(slowest, took)
	}
	// A liveness bound, not a performance target: the webhook's own timeout is 5 s.
	if slowest > 2*time.Second {
		t.Errorf("a Deployment create took %v with %d stalled connections open, want under 2s", slowest, len(conns))
	}
	t.Logf("5 creates through the API server while %d connections stall: slowest %v", len(conns), slowest.Round(time.Millisecond))
	w.stillServes(t)

	// The server drops what stalls before the request's headers are read: net/http's
	// ReadHeaderTimeout, which controller-runtime sets to 32 s (pkg/internal/httpserver),
	// also bounds the TLS handshake. A slow body is bounded by the handlers' own read
	// deadline (bodyReadTimeout in run.go), which is shorter.
	const readHeaderTimeout = 32 * time.Second
	deadline := time.After(readHeaderTimeout + 10*time.Second)
	dropped := map[string][]time.Duration{}
wait:
	for _, s := range conns {
		if s.kind == "body one byte at a time" {
			continue
		}
		select {
		case d := <-s.closed:
			dropped[s.kind] = append(dropped[s.kind], d)
		case <-deadline:
			break wait
		}
	}
	for _, kind := range []string{"silent before the TLS handshake", "silent after the TLS handshake", "headers one byte at a time"} {
		ds := dropped[kind]
		if len(ds) != perKind {
			t.Errorf("%s: %d of %d connections dropped by the server within %v", kind, len(ds), perKind, readHeaderTimeout+10*time.Second)
			continue
		}
		lo, hi := ds[0], ds[0]
		for _, d := range ds {
			lo, hi = min(lo, d), max(hi, d)
		}
		t.Logf("%s: all %d dropped by the server %v to %v after opening", kind, perKind, lo.Round(100*time.Millisecond), hi.Round(100*time.Millisecond))
		if lo < readHeaderTimeout-time.Second {
			t.Errorf("%s: dropped after %v, before the %v ReadHeaderTimeout", kind, lo, readHeaderTimeout)
		}
	}
	var bodyOpen int
	for _, s := range conns {
		if s.kind == "body one byte at a time" && len(s.closed) == 0 {
			bodyOpen++
		}
	}
	if bodyOpen > 0 {
		t.Errorf("body one byte at a time: %d of %d connections still open after %v, want all dropped after bodyReadTimeout (%v)", bodyOpen, perKind, time.Since(opened).Round(time.Second), bodyReadTimeout)
	}
	w.stillServes(t)
}

func testNilReplicas(t *testing.T, f *fixture) {
	d := harness.Deployment("edge", "defaulted", 0, nil)
	d.Spec.Replicas = nil
	f.warns.Take()
	got, err := f.client.AppsV1().Deployments("edge").Create(context.Background(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The API server defaults spec.replicas to 1 before admission; the rule's minimum is 2.
	if got.Spec.Replicas == nil || *got.Spec.Replicas != 2 {
		t.Fatalf("replicas %v, want 2 (defaulted to 1, then clamped)", got.Spec.Replicas)
	}
	assertWarning(t, f.warns.Take(), `spec.replicas 1 clamped to 2 by replica policy rule "edge"`)
}

func testNegativeReplicas(t *testing.T, f *fixture) {
	ctx := context.Background()
	deps := f.client.AppsV1().Deployments("edge")
	if _, err := deps.Create(ctx, harness.Deployment("edge", "scaled", 4, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.warns.Take()
	checkRejected := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s with replicas -1 was accepted, with warnings %q", what, f.warns.Take())
			return
		}
		// The API server's own validation message, not a clamp to the rule's minimum.
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.replicas: Invalid value: -1: must be greater than or equal to 0") {
			t.Errorf("%s with replicas -1: %v, want the API server's Invalid error", what, err)
		}
		if strings.Contains(err.Error(), "admission webhook") {
			t.Errorf("%s with replicas -1: rejected by the webhook rather than the API server: %v", what, err)
		}
		if ws := f.warns.Take(); len(ws) > 0 {
			t.Errorf("%s with replicas -1: warnings %q, want none", what, ws)
		}
		t.Logf("%s with replicas -1: %v", what, err)
	}
	_, err := deps.UpdateScale(ctx, "scaled", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "scaled", Namespace: "edge"}, Spec: autoscalingv1.ScaleSpec{Replicas: -1}}, metav1.UpdateOptions{})
	checkRejected("a Scale", err)
	assertStored(t, f.client, "edge", "scaled", 4)
	_, err = deps.Create(ctx, harness.Deployment("edge", "negative", -1, nil), metav1.CreateOptions{})
	checkRejected("a Deployment create", err)
}

func testNotHandled(t *testing.T, w webhookConn) {
	dep, _ := json.Marshal(harness.Deployment("edge", "web", 50, nil))
	for i, tc := range []struct {
		name               string
		kindGroup, kind    string
		group, resource    string
		subResource        string
		object, wantWarned string
	}{
		{"deployments/status", "apps", "Deployment", "apps", "deployments", "status", string(dep),
			`replica-policy does not handle deployments/status (group "apps")`},
		{"daemonsets", "apps", "DaemonSet", "apps", "daemonsets", "",
			`{"kind":"DaemonSet","apiVersion":"apps/v1","metadata":{"name":"logs","namespace":"edge"},"spec":{}}`,
			`replica-policy does not handle daemonsets (group "apps")`},
		{"replicationcontrollers/scale", "autoscaling", "Scale", "", "replicationcontrollers", "scale",
			`{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"db","namespace":"edge"},"spec":{"replicas":50}}`,
			`replica-policy does not handle replicationcontrollers/scale (group "")`},
		{"deployments of another group", "extensions", "Deployment", "extensions", "deployments", "", string(dep),
			`replica-policy does not handle deployments (group "extensions")`},
	} {
		uid := fmt.Sprintf("not-handled-%d", i)
		body := harness.Review{UID: uid, Operation: admissionv1.Update, Namespace: "edge", Name: "x",
			Kind: tc.kind, KindGroup: tc.kindGroup, KindVersion: "v1", Group: tc.group, Resource: tc.resource, SubResource: tc.subResource,
			Object: []byte(tc.object), OldObject: []byte(tc.object), UserInfo: edgeUser}.JSON()
		for _, path := range []string{"/mutate", "/validate"} {
			code, ans := w.review(t, path, "application/json", bytes.NewReader(body))
			if code != http.StatusOK || !ans.Allowed || string(ans.UID) != uid || ans.Patch != nil || len(ans.Warnings) != 1 || ans.Warnings[0] != tc.wantWarned {
				t.Errorf("%s at %s: want allowed unchanged with warning %q, got HTTP %d allowed=%t uid %q patch=%s warnings %q",
					tc.name, path, tc.wantWarned, code, ans.Allowed, ans.UID, ans.Patch, ans.Warnings)
			}
		}
	}
}

// hugePolicy is a policy of about size bytes: thousands of rules, mostly literal
// namespaces (indexed), every tenth a glob (scanned), and last the rule "last" for
// namespace edge-big. brokenLast makes that rule invalid (min > max).
func hugePolicy(size int, brokenLast bool) (doc string, rules int) {
	var b strings.Builder
	b.WriteString("apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nexemptNamespaces: [kube-system]\nrules:\n")
	last := "- name: last\n  namespaces: [edge-big]\n  minReplicas: 1\n  maxReplicas: 3\n"
	if brokenLast {
		last = "- name: last\n  namespaces: [edge-big]\n  minReplicas: 4\n  maxReplicas: 3\n"
	}
	for i := 0; ; i++ {
		ns := fmt.Sprintf("tenant-%05d", i)
		if i%10 == 0 {
			ns = fmt.Sprintf(`"glob-%05d-*"`, i)
		}
		rule := fmt.Sprintf("- name: rule-%05d\n  namespaces: [%s]\n  selector:\n    matchLabels: {app: web, tier: t%d}\n  minReplicas: 1\n  maxReplicas: %d\n  action: clamp\n", i, ns, i%7, 5+i%20)
		if b.Len()+len(rule)+len(last) > size {
			break
		}
		b.WriteString(rule)
		rules++
	}
	b.WriteString(last)
	return b.String(), rules + 1
}

func testHugePolicy(t *testing.T, f *fixture) {
	ctx := context.Background()
	// The ConfigMap size limit is 1 MiB of data (keys and values); leave room for the key.
	const size = 1<<20 - 1024
	// The contract's bound. The race detector (make test uses -race) makes parsing about 15
	// times slower: a 1 MiB policy takes some 4.5 s to load, once at apply and again in the
	// watcher. There the bound only checks that the policy is enforced at all; the contract's
	// figure is the one without -race.
	enforceBound := 10 * time.Second
	if raceEnabled() {
		enforceBound = 60 * time.Second
		t.Logf("built with -race: the bound is %v, not the contract's 10 s", enforceBound)
	}
	broken, _ := hugePolicy(size, true)
	doc, rules := hugePolicy(size, false)
	debug.FreeOSMemory() // what earlier tests left behind (an 8 MiB body) is not the policy's
	peak := watchMemory(ctx)

	// The validating webhook reads all of it: a mistake in the very last rule is named.
	start := time.Now()
	err := harness.SetPolicy(ctx, f.client, broken)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("rules[%d].maxReplicas: Invalid value: 3: must be greater than or equal to minReplicas (4)", rules-1)) {
		t.Fatalf("a %d-byte policy with its last rule broken: %v, want it rejected naming rules[%d]", len(broken), err, rules-1)
	}
	t.Logf("%d-byte policy with a broken last rule rejected at apply in %v", len(broken), time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := harness.SetPolicy(ctx, f.client, doc); err != nil {
		t.Fatalf("a valid %d-byte policy of %d rules: %v", len(doc), rules, err)
	}
	applied := time.Since(start)
	deps := f.client.AppsV1().Deployments("edge-big")
	for {
		d, err := deps.Create(ctx, harness.Deployment("edge-big", "probe", 50, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && *d.Spec.Replicas == 3 {
			break
		}
		if time.Since(start) > enforceBound {
			t.Fatalf("the %d-byte policy is not enforced %v after it was applied", len(doc), enforceBound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	enforced := time.Since(start)
	goBefore, goPeak := peak()
	hwm := vmHWM(t)
	t.Logf("%d-byte policy of %d rules: accepted at apply in %v, enforced %v after the apply began", len(doc), rules, applied.Round(time.Millisecond), enforced.Round(time.Millisecond))
	t.Logf("memory of the whole test process (webhook, clients, test): Go runtime %.0f MiB before, %.0f MiB at peak; peak RSS (VmHWM) %.0f MiB",
		float64(goBefore)/(1<<20), float64(goPeak)/(1<<20), float64(hwm)/(1<<20))
	// The manifests' memory limit is 256 MiB. The Go runtime's own figure excludes the race
	// detector's shadow memory, which would make RSS meaningless under -race.
	if goPeak > 256<<20/2 {
		t.Errorf("peak Go memory %.0f MiB while loading a 1 MiB policy: not well under the 256 MiB limit", float64(goPeak)/(1<<20))
	}

	// The workloads the other rules name are still matched by their rule.
	d, err := f.client.AppsV1().Deployments("edge").Create(ctx, harness.Deployment("edge", "outside-big", 50, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil || *d.Spec.Replicas != 50 {
		t.Errorf("namespace edge, which the big policy does not name: %v replicas %v, want 50 unchanged", err, d)
	}
}

// watchMemory samples the Go runtime's total memory (what it has mapped from the OS: heap,
// stacks, metadata) every 10 ms until ctx ends, and returns a function that stops it and
// gives the first sample and the peak.
func watchMemory(ctx context.Context) func() (first, peak uint64) {
	var mu sync.Mutex
	var peak uint64
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	read := func() {
		metrics.Read(sample)
		mu.Lock()
		peak = max(peak, sample[0].Value.Uint64())
		mu.Unlock()
	}
	read()
	first := peak
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() (uint64, uint64) {
		cancel()
		read()
		mu.Lock()
		defer mu.Unlock()
		return first, peak
	}
}

// raceEnabled reports whether the test binary was built with the race detector.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// vmHWM is the process's peak resident set size, from /proc/self/status.
func vmHWM(t *testing.T) uint64 {
	m, err := harness.ProcessMemory(os.Getpid())
	if err != nil {
		t.Logf("no VmHWM: %v", err)
		return 0
	}
	return uint64(m.Peak)
}
