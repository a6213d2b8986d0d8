// Package reliability injects faults into the built webhook binary, installed on a local
// control plane (a real kube-apiserver and etcd on 127.0.0.1) with the manifests' local
// overlay and run with its ServiceAccount's token, while a steady load of writes runs
// through the API server; and it measures what the API server's clients saw.
//
// Every test has a short mode, run by `make test`, and a long mode with more writes and
// longer faults: `make reliability` (RELIABILITY_LONG=1). docs/reliability.md tabulates the
// figures the tests log (lines starting with "FIGURE").
package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/test/controlplane"
	"github.com/replica-policy/replica-policy/test/localcluster"
)

// Built once by TestMain.
var (
	webhookBinary string // make build
	certsBinary   string // go build ./certs
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "replica-policy-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root := controlplane.RepoRoot()
	webhookBinary = filepath.Join(dir, "webhook")
	certsBinary = filepath.Join(dir, "certs")
	// The binary is built with exactly the Makefile target the Dockerfile runs.
	for _, cmd := range []*exec.Cmd{
		exec.Command("make", "-C", root, "build", "OUT="+webhookBinary),
		exec.Command("go", "build", "-o", certsBinary, "./certs"),
	} {
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
			return 1
		}
	}
	return m.Run()
}

// long reports whether the long versions run (make reliability).
func long() bool { return os.Getenv("RELIABILITY_LONG") != "" }

// pick returns short, or long in the long mode.
func pick[T any](short, long_ T) T {
	if long() {
		return long_
	}
	return short
}

// figure logs a measured figure in a form docs/reliability.md quotes, and greppable:
// `go test ./test/reliability -v | grep FIGURE`.
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURE %s: "+format, append([]any{t.Name()}, args...)...)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// env is one test's control plane with replica-policy installed, and an admin client.
type env struct {
	*localcluster.Cluster
	admin kubernetes.Interface
}

func startCluster(t *testing.T) *env {
	t.Helper()
	c, err := localcluster.Start(context.Background(), localcluster.Options{Dir: t.TempDir(), Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	cfg := rest.CopyConfig(c.Config)
	// The load generators send tens of requests per second: client-go's default of 5 QPS
	// would measure its own rate limiter, not the API server.
	cfg.QPS, cfg.Burst = 1000, 1000
	// The tests check answers, not warnings: thousands of them would bury the log.
	cfg.WarningHandler = rest.NoWarnings{}
	return &env{Cluster: c, admin: kubernetes.NewForConfigOrDie(cfg)}
}

// runWebhook starts the binary (with --leader-elect, as the manifests run it) and stops it
// at the end of the test if it still runs, reporting a non-zero exit.
func (e *env) runWebhook(t *testing.T, name string, args ...string) *localcluster.Webhook {
	t.Helper()
	w, err := e.RunWebhook(context.Background(), localcluster.WebhookOptions{Binary: webhookBinary, Name: name, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Kill() })
	return w
}

// setPolicy writes the policy ConfigMap (through the validating webhook, when it runs).
func (e *env) setPolicy(ctx context.Context, doc string) error {
	cms := e.admin.CoreV1().ConfigMaps(localcluster.Namespace)
	cur, err := cms.Get(ctx, "replica-policy", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: localcluster.Namespace, Name: "replica-policy"},
			Data:       map[string]string{"policy.yaml": doc},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	cur.Data = map[string]string{"policy.yaml": doc}
	_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

func (e *env) mustSetPolicy(t *testing.T, doc string) {
	t.Helper()
	if err := e.setPolicy(context.Background(), doc); err != nil {
		t.Fatalf("writing the policy: %v", err)
	}
}

// createDeployments creates namespace ns and n Deployments "d0".."d<n-1>" with replicas.
func (e *env) createDeployments(t *testing.T, ns string, n int, replicas int32) []string {
	t.Helper()
	ctx := context.Background()
	if _, err := e.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("d%d", i)
		if _, err := e.admin.AppsV1().Deployments(ns).Create(ctx, deployment(ns, names[i], replicas), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

func deployment(ns, name string, replicas int32) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
}

// scale writes spec.replicas through the scale subresource with a merge patch, as
// `kubectl scale` does, and returns the replicas the API server answered with (after
// admission). dryRun asks for the answer without storing it.
func scale(ctx context.Context, c kubernetes.Interface, ns, name string, replicas int32, dryRun bool) (int32, error) {
	req := c.AppsV1().RESTClient().Patch(types.MergePatchType).
		Namespace(ns).Resource("deployments").Name(name).SubResource("scale").
		Body([]byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)))
	if dryRun {
		req = req.Param("dryRun", metav1.DryRunAll)
	}
	var s autoscalingv1.Scale
	if err := req.Do(ctx).Into(&s); err != nil {
		return 0, err
	}
	return s.Spec.Replicas, nil
}

// replicas returns the stored spec.replicas of the Deployments in ns, by name.
func (e *env) replicas(ctx context.Context, ns string) (map[string]int32, error) {
	l, err := e.admin.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	m := map[string]int32{}
	for _, d := range l.Items {
		m[d.Name] = *d.Spec.Replicas
	}
	return m, nil
}

// result is one write of a load generator.
type result struct {
	start  time.Time
	dur    time.Duration
	target string
	sent   int32
	got    int32 // replicas in the API server's answer
	err    error
}

// load sends one write per tick, each in its own goroutine so that a write stalled by a
// webhook does not slow the stream down, until ctx ends; then it waits for the writes in
// flight and returns them all.
type load struct {
	mu      sync.Mutex
	results []result
	wg      sync.WaitGroup
	done    chan struct{}
}

func startLoad(ctx context.Context, perSecond int, write func(ctx context.Context, i int) result) *load {
	l := &load{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.wg.Add(1)
			go func(i int) {
				defer l.wg.Done()
				// Each write gets its own context: stopping the stream never cancels a write.
				wctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				start := time.Now()
				r := write(wctx, i)
				r.start, r.dur = start, time.Since(start)
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
			}(i)
		}
	}()
	return l
}

// wait waits for the stream to stop (its context ended) and for the writes in flight.
func (l *load) wait() []result {
	<-l.done
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	sort.Slice(l.results, func(i, j int) bool { return l.results[i].start.Before(l.results[j].start) })
	return l.results
}

// latencies summarizes durations: median, 99th percentile and maximum.
type latencies struct{ p50, p99, max time.Duration }

func summarize(rs []result) latencies {
	if len(rs) == 0 {
		return latencies{}
	}
	d := make([]time.Duration, len(rs))
	for i, r := range rs {
		d[i] = r.dur
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return latencies{p50: q(0.5), p99: q(0.99), max: d[len(d)-1]}
}

func (l latencies) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("p50 %v, p99 %v, max %v", r(l.p50), r(l.p99), r(l.max))
}

// metrics reads a Prometheus text endpoint into "name{labels}" -> value, labels as served.
func parseMetrics(r io.Reader) map[string]float64 {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m
}

// sum adds the series of metric name whose labels include every one of labels ("k=\"v\"").
func sum(m map[string]float64, name string, labels ...string) float64 {
	var s float64
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(k, l)
		}
		if ok {
			s += v
		}
	}
	return s
}

// apiServerMetrics scrapes kube-apiserver's /metrics as the admin.
func (e *env) apiServerMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	b, err := e.admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("kube-apiserver /metrics: %v", err)
	}
	return parseMetrics(bytes.NewReader(b))
}

// failOpen is the number of replica-policy webhook calls that failed and, under
// failurePolicy Ignore, let the request through unchanged, as the API server counts them
// (apiserver_admission_webhook_fail_open_count): every one of them is a write that was not
// checked.
func (e *env) failOpen(t *testing.T) float64 {
	t.Helper()
	return sum(e.apiServerMetrics(t), "apiserver_admission_webhook_fail_open_count", `replicapolicy.io"`)
}

// webhookMetrics scrapes the binary's own metrics endpoint.
func webhookMetrics(t *testing.T, w *localcluster.Webhook) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + w.Metrics + "/metrics")
	if err != nil {
		t.Fatalf("webhook /metrics: %v", err)
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body)
}

// waitFor polls cond every 20 ms until it holds or timeout passes, and returns how long it
// took; it fails the test on timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// webhookTLS returns a client configuration that trusts the certs tool's CA and checks the
// serving certificate for 127.0.0.1, as the API server does with the caBundle.
func (e *env) webhookTLS(t *testing.T) *tls.Config {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(e.CertDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("ca.crt holds no certificate")
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// reviewJSON is an AdmissionReview of a scale write to replicas of ns/name, as the API
// server sends it to /mutate.
func reviewJSON(uid, ns, name string, oldReplicas, replicas int32) []byte {
	scale := func(r int32) map[string]any {
		return map[string]any{
			"apiVersion": "autoscaling/v1", "kind": "Scale",
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec":     map[string]any{"replicas": r},
		}
	}
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid":         uid,
			"kind":        map[string]any{"group": "autoscaling", "version": "v1", "kind": "Scale"},
			"resource":    map[string]any{"group": "apps", "version": "v1", "resource": "deployments"},
			"subResource": "scale",
			"requestKind": map[string]any{"group": "autoscaling", "version": "v1", "kind": "Scale"},
			"name":        name, "namespace": ns, "operation": "UPDATE",
			"userInfo":  map[string]any{"username": "reliability-test"},
			"object":    scale(replicas),
			"oldObject": scale(oldReplicas),
			"dryRun":    true,
		},
	})
	return b
}

// reviewAnswer is what a complete answer to reviewJSON holds.
type reviewAnswer struct {
	Response struct {
		UID       string `json:"uid"`
		Allowed   bool   `json:"allowed"`
		Patch     []byte `json:"patch"`
		PatchType string `json:"patchType"`
		Warnings  []string
	} `json:"response"`
}

// clampedTo decodes an answer to reviewJSON and returns the replicas its patch sets, or an
// error when the answer is incomplete, for another request, or sets nothing.
func clampedTo(body []byte, uid string) (int32, error) {
	var a reviewAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return 0, fmt.Errorf("not an AdmissionReview (%v): %.200q", err, body)
	}
	if a.Response.UID != uid {
		return 0, fmt.Errorf("answer for uid %q, want %q", a.Response.UID, uid)
	}
	var ops []struct {
		Op, Path string
		Value    int32
	}
	if err := json.Unmarshal(a.Response.Patch, &ops); err != nil || len(ops) != 1 || ops[0].Path != "/spec/replicas" {
		return 0, fmt.Errorf("answer without a replicas patch: %s", body)
	}
	return ops[0].Value, nil
}

// policyDoc is a policy with one clamp rule for namespace ns.
func policyDoc(rule, ns string, minReplicas, maxReplicas int) string {
	return fmt.Sprintf(`apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- name: %s
  namespaces: [%s]
  minReplicas: %d
  maxReplicas: %d
  action: clamp
`, rule, ns, minReplicas, maxReplicas)
}
