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
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// webhookBinary is built once by TestMain (make build).
var webhookBinary string

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
	// The binary is built with exactly the Makefile target the Dockerfile runs.
	webhookBinary = filepath.Join(dir, "webhook")
	if err := harness.BuildWebhook(context.Background(), webhookBinary); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
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

// env is one test's control plane with replica-policy installed, and an admin client.
type env struct {
	*harness.Cluster
	admin kubernetes.Interface
}

// startCluster starts the control plane, kube-apiserver with apiServerArgs ("name=value").
func startCluster(t *testing.T, apiServerArgs ...string) *env {
	t.Helper()
	c, err := harness.StartCluster(context.Background(), harness.ClusterOptions{Dir: t.TempDir(), Log: harness.LogWriter(t), APIServerArgs: apiServerArgs})
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
func (e *env) runWebhook(t *testing.T, name string, args ...string) *harness.Webhook {
	t.Helper()
	w, err := e.RunWebhook(context.Background(), harness.WebhookOptions{Binary: webhookBinary, Name: name, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Kill() })
	return w
}

// setPolicy writes the policy ConfigMap (through the validating webhook, when it runs).
func (e *env) setPolicy(ctx context.Context, doc string) error {
	return harness.SetPolicy(ctx, e.admin, doc)
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

// deployment is a Deployment labelled app=<name>.
func deployment(ns, name string, replicas int32) *appsv1.Deployment {
	return harness.Deployment(ns, name, replicas, map[string]string{"app": name})
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

// apiServerMetrics scrapes kube-apiserver's /metrics as the admin.
func (e *env) apiServerMetrics(t *testing.T) harness.Metrics {
	t.Helper()
	m, err := harness.APIServerMetrics(context.Background(), e.admin)
	if err != nil {
		t.Fatalf("kube-apiserver /metrics: %v", err)
	}
	return m
}

// failOpen is the number of replica-policy webhook calls that failed and, under
// failurePolicy Ignore, let the request through unchanged, as the API server counts them
// (apiserver_admission_webhook_fail_open_count): every one of them is a write that was not
// checked.
func (e *env) failOpen(t *testing.T) float64 {
	t.Helper()
	return e.apiServerMetrics(t).Sum("apiserver_admission_webhook_fail_open_count", `replicapolicy.io"`)
}

// webhookMetrics scrapes the binary's own metrics endpoint.
func webhookMetrics(t *testing.T, w *harness.Webhook) harness.Metrics {
	t.Helper()
	m, err := w.ScrapeMetrics()
	if err != nil {
		t.Fatalf("webhook /metrics: %v", err)
	}
	return m
}

// poll is how often the tests poll a condition: often, as how long it took is a figure.
const poll = 20 * time.Millisecond

// webhookTLS returns a client configuration that trusts the certs tool's CA and checks the
// serving certificate for 127.0.0.1, as the API server does with the caBundle.
func (e *env) webhookTLS(t *testing.T) *tls.Config {
	t.Helper()
	c, err := e.WebhookTLS()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reviewJSON is an AdmissionReview of a dry-run scale write to replicas of ns/name, as the
// API server sends it to /mutate.
func reviewJSON(uid, ns, name string, oldReplicas, replicas int32) []byte {
	r := harness.ScaleReview(uid, ns, name, oldReplicas, replicas)
	r.DryRun = true
	r.UserInfo = &authenticationv1.UserInfo{Username: "reliability-test"}
	return r.JSON()
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
