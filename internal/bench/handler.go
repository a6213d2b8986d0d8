package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/admission"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// Paths of the handler benchmark's server: replica-policy's two handlers at the paths the
// binary serves them, and the baseline.
const (
	PathMutate   = admission.MutatePath
	PathValidate = admission.ValidatePath
	// PathAllow is the baseline: the same controller-runtime webhook machinery (body limit,
	// AdmissionReview decoding, response encoding) with a handler that allows everything.
	PathAllow = "/allow"
	// PathAllowAdapter is the allow-all handler behind replica-policy's HTTP adapter
	// (admission.Serve, which decodes the AdmissionReview once): measured in-process only,
	// it tells what the policy's own work costs from what the adapter saves.
	PathAllowAdapter = "/allow-adapter"
	// PathAllowAgain is the baseline again, a second allow-all handler on the same server:
	// its throughput over the baseline's is the run's noise (an A/A comparison).
	PathAllowAgain = "/allow-again"
)

// handlerNamespace is the namespace of the handler benchmark's requests; the benchmark
// policy clamps it to [ClampMin, ClampMax] through its first rule.
const handlerNamespace = "bench"

// HandlerServer is a controller-runtime webhook server on 127.0.0.1, configured as
// cmd/webhook configures its own (TLS 1.2 minimum, HTTP/1.1 only), serving replica-policy's
// handlers and the allow-all baseline side by side.
type HandlerServer struct {
	// Base is https://127.0.0.1:<port>.
	Base string
	// Client trusts the server's CA and keeps connections alive, as kube-apiserver's
	// webhook client does; it speaks HTTP/1.1 only.
	Client *http.Client
	cancel context.CancelFunc
	done   chan error
}

// staticLookup answers like a synced informer cache that holds the request's Deployment and
// Namespace: the handler benchmark measures the HTTP path, not the cache.
type staticLookup struct{}

func (staticLookup) WorkloadLabels(workload.Kind, string, string) (map[string]string, *metav1.OwnerReference, bool) {
	return map[string]string{"app": "web", "team": "payments"}, nil, true
}

func (staticLookup) NamespaceLabels(ns string) (map[string]string, bool) {
	return map[string]string{corev1.LabelMetadataName: ns}, true
}

// StartHandlerServer starts the server with a fresh certificate in dir.
func StartHandlerServer(dir string) (*HandlerServer, error) {
	// A CA and a serving certificate for 127.0.0.1, as `go run ./certs --extra-san 127.0.0.1`
	// makes them.
	if _, err := harness.GenerateCerts(dir, "127.0.0.1"); err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	handlers, err := InProcessHandlers()
	if err != nil {
		return nil, err
	}
	srv := webhook.NewServer(webhook.Options{
		Host: "127.0.0.1", Port: port, CertDir: dir,
		// As cmd/webhook/app configures its server (unexported there): TLS 1.2 minimum,
		// HTTP/2 off.
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			c.NextProtos = []string{"http/1.1"}
		}},
	})
	for path, h := range handlers {
		srv.Register(path, h)
	}

	ctx, cancel := context.WithCancel(context.Background())
	s := &HandlerServer{Base: fmt.Sprintf("https://127.0.0.1:%d", port), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Start(ctx) }()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	s.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   false,
		MaxIdleConnsPerHost: 256,
		DisableCompression:  true,
	}}
	check := srv.StartedChecker()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := check(nil); err == nil {
			return s, nil
		} else if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("webhook server not serving: %w", err)
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("webhook server stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop shuts the server down.
func (s *HandlerServer) Stop() {
	s.cancel()
	<-s.done
	s.Client.CloseIdleConnections()
}

// Post sends one AdmissionReview and reads the whole answer.
func (s *HandlerServer) Post(path string, body []byte) error {
	resp, err := s.Client.Post(s.Base+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %s", path, resp.Status)
	}
	return err
}

// Review sends one AdmissionReview and decodes the answer.
func (s *HandlerServer) Review(path string, body []byte) (*admissionv1.AdmissionResponse, error) {
	resp, err := s.Client.Post(s.Base+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
		return nil, err
	}
	if ar.Response == nil {
		return nil, errors.New("no response in the AdmissionReview")
	}
	return ar.Response, nil
}

// HandlerCell is one cell of the handler benchmark.
type HandlerCell struct {
	Path        string // PathMutate or PathValidate; the baseline answers the same body at PathAllow
	Body        string // BodyDeployment or BodyScale
	Concurrency int
}

func (c HandlerCell) String() string {
	return fmt.Sprintf("%s/%s/c=%d", c.Path[1:], c.Body, c.Concurrency)
}

// HandlerCells are the cells of the handler benchmark (issue: /mutate and /validate,
// Deployment and Scale bodies, concurrency 1, 8 and 32).
func HandlerCells() []HandlerCell {
	var cells []HandlerCell
	for _, path := range []string{PathMutate, PathValidate} {
		for _, body := range []string{BodyDeployment, BodyScale} {
			for _, c := range []int{1, 8, 32} {
				cells = append(cells, HandlerCell{Path: path, Body: body, Concurrency: c})
			}
		}
	}
	return cells
}

// CellBody returns the request body of a cell: a scale-up from 3 to 60 replicas at
// /mutate, which the policy clamps to 50 (a patch, a warning and an audit annotation), and
// from 3 to 50 at /validate, which is what /validate sees after that clamp (allowed).
func CellBody(c HandlerCell) ([]byte, error) {
	replicas := int32(60)
	if c.Path == PathValidate {
		replicas = ClampMax
	}
	return ReviewBody(c.Body, handlerNamespace, "web", 3, replicas)
}

// CheckCell sends the cell's body once to replica-policy and once to the baseline and
// checks both answers: a benchmark of wrong answers measures nothing.
func (s *HandlerServer) CheckCell(c HandlerCell, body []byte) error {
	ours, err := s.Review(c.Path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	switch {
	case !ours.Allowed:
		return fmt.Errorf("%s: denied: %v", c, ours.Result)
	case c.Path == PathMutate && len(ours.Patch) == 0:
		return fmt.Errorf("%s: no clamp patch in the answer", c)
	case c.Path == PathValidate && len(ours.Patch) != 0:
		return fmt.Errorf("%s: /validate answered with a patch", c)
	}
	base, err := s.Review(PathAllow, body)
	if err != nil || !base.Allowed {
		return fmt.Errorf("%s baseline: %v %+v", c, err, base)
	}
	return nil
}

// Load sends body to path from c connections for d, or n requests in total when n > 0.
func (s *HandlerServer) Load(path string, body []byte, c, n int, d time.Duration) harness.Sample {
	op := func(int, int) error { return s.Post(path, body) }
	if n > 0 {
		return harness.RunConcurrently(c, n, op)
	}
	return harness.RunFor(c, d, op)
}

// allowAll is the baseline handler.
var allowAll = cradmission.HandlerFunc(func(context.Context, cradmission.Request) cradmission.Response {
	return cradmission.Allowed("")
})

// InProcessHandlers returns replica-policy's /mutate and /validate handlers and the
// allow-all baseline as plain http.Handlers, without TLS or a network, for measuring what
// one request costs in CPU and allocations.
func InProcessHandlers() (map[string]http.Handler, error) {
	opts := policy.Options{AlwaysExempt: []string{policy.DefaultNamespace}}
	store := policystore.NewStore(opts)
	if _, err := store.Apply(harness.PolicyConfigMap(PolicyDoc(PolicyNamespaces{Ours: handlerNamespace}, 0))); err != nil {
		return nil, err
	}
	ref := admission.PolicyRef{Namespace: policy.DefaultNamespace, Name: policy.DefaultConfigMapName, Options: opts}
	// As cmd/webhook/app wires them: one pair, /validate knowing what /mutate answered.
	mutate, validate := admission.NewHandlers(workload.Builtin(), store, staticLookup{}, ref)
	return map[string]http.Handler{
		PathMutate:       admission.Webhook(mutate),
		PathValidate:     admission.Webhook(validate),
		PathAllow:        &cradmission.Webhook{Handler: allowAll},
		PathAllowAdapter: admission.Serve(allowAll),
		PathAllowAgain:   &cradmission.Webhook{Handler: allowAll},
	}, nil
}

// discardWriter is an http.ResponseWriter that keeps nothing but the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// ServeOnce calls h with body as an AdmissionReview POST.
func ServeOnce(h http.Handler, body []byte) {
	r, _ := http.NewRequest(http.MethodPost, "https://127.0.0.1/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(&discardWriter{h: http.Header{}}, r)
}

// HandlerResult is one cell of the handler benchmark: replica-policy against the baseline,
// and the baseline again (A/A).
type HandlerResult struct {
	Cell              HandlerCell
	Ours, Base, Again harness.Sample
}

// HandlerOptions size the interleaved handler benchmark.
type HandlerOptions struct {
	Rounds int
	// Slice is how long each server is loaded per cell and round; Count, when set, is a
	// number of requests instead.
	Slice time.Duration
	Count int
}

// RunHandlers measures every cell, replica-policy, the baseline and the baseline again in
// turn (which of them goes first rotates every round), after a warm-up that opens the
// connections.
func (s *HandlerServer) RunHandlers(o HandlerOptions) ([]HandlerResult, error) {
	cells := HandlerCells()
	bodies := make([][]byte, len(cells))
	for i, c := range cells {
		b, err := CellBody(c)
		if err != nil {
			return nil, err
		}
		if err := s.CheckCell(c, b); err != nil {
			return nil, err
		}
		bodies[i] = b
		s.Load(c.Path, b, c.Concurrency, 4*c.Concurrency, 0)
		s.Load(PathAllow, b, c.Concurrency, 4*c.Concurrency, 0)
		s.Load(PathAllowAgain, b, c.Concurrency, 4*c.Concurrency, 0)
	}
	res := make([]HandlerResult, len(cells))
	for round := range o.Rounds {
		for i, c := range cells {
			res[i].Cell = c
			into := []*harness.Sample{&res[i].Ours, &res[i].Base, &res[i].Again}
			paths := []string{c.Path, PathAllow, PathAllowAgain}
			for k := range paths {
				j := (k + round) % len(paths)
				into[j].Add(s.Load(paths[j], bodies[i], c.Concurrency, o.Count, o.Slice))
			}
		}
	}
	for _, r := range res {
		if r.Ours.Errors+r.Base.Errors+r.Again.Errors > 0 {
			return res, fmt.Errorf("%s: %d errors (ours), %d (baseline), %d (baseline again); first: %v %v %v", r.Cell, r.Ours.Errors, r.Base.Errors, r.Again.Errors,
				r.Ours.FirstError, r.Base.FirstError, r.Again.FirstError)
		}
	}
	return res, nil
}

// HandlerCPU is what one request costs in-process, replica-policy against the baseline.
type HandlerCPU struct {
	Path, Body string
	Ours, Base OpCost
	// Adapter is the allow-all handler behind replica-policy's HTTP adapter.
	Adapter OpCost
}

// fastest is the faster of kept and run; the first run (i == 0) is kept whatever it took.
func fastest(i int, kept, run OpCost) OpCost {
	if i == 0 || run.NsPerOp < kept.NsPerOp {
		return run
	}
	return kept
}

// MeasureHandlerCPU measures every path and body in-process, alternating replica-policy and
// the baseline reps times and keeping each one's fastest run (the least disturbed by other
// processes).
func MeasureHandlerCPU(minTime time.Duration, reps int) ([]HandlerCPU, error) {
	handlers, err := InProcessHandlers()
	if err != nil {
		return nil, err
	}
	var out []HandlerCPU
	for _, path := range []string{PathMutate, PathValidate} {
		for _, body := range []string{BodyDeployment, BodyScale} {
			raw, err := CellBody(HandlerCell{Path: path, Body: body})
			if err != nil {
				return nil, err
			}
			r := HandlerCPU{Path: path, Body: body}
			for i := range reps {
				ours := MeasureOp(func() { ServeOnce(handlers[path], raw) }, minTime)
				base := MeasureOp(func() { ServeOnce(handlers[PathAllow], raw) }, minTime)
				adapter := MeasureOp(func() { ServeOnce(handlers[PathAllowAdapter], raw) }, minTime)
				r.Ours, r.Base, r.Adapter = fastest(i, r.Ours, ours), fastest(i, r.Base, base), fastest(i, r.Adapter, adapter)
			}
			out = append(out, r)
		}
	}
	return out, nil
}
