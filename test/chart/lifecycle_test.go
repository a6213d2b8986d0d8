package chart

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// lifecycleValues points the webhook configurations at the binary this test runs on the
// host, and makes both fail closed: a write the API server cannot get decided (no webhook,
// a certificate it does not trust) then fails instead of passing unchecked, so "0 failed
// writes" means the webhook answered every write it was sent.
const lifecycleValues = `webhooks:
  url: https://127.0.0.1:%d
  workloads: {failurePolicy: Fail}
  policy: {failurePolicy: Fail}
certificates:
  extraSANs: [127.0.0.1]
`

// policyMax is a policy whose default rule clamps every workload to 1..max.
func policyMax(max int) string {
	return fmt.Sprintf("policy:\n  content: |\n    apiVersion: replicapolicy.io/v1alpha1\n    kind: ReplicaPolicy\n    default: {minReplicas: 1, maxReplicas: %d, action: clamp}\n", max)
}

// fixture is a control plane, the built webhook binary and the values files the chart's
// lifecycle tests install with.
type fixture struct {
	c   *harness.Cluster
	cs  kubernetes.Interface // the cluster admin, without warnings
	bin string
	// base points the webhooks at the binary (lifecycleValues); max10 and max8 are policies.
	base, max10, max8 string
	webhook           *harness.Webhook
}

// workloads is how many Deployments the writes scale (one writer each).
const workloads = 4

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	needKubectl(t)
	ctx := context.Background()
	c, err := harness.StartBare(ctx, harness.ClusterOptions{Dir: t.TempDir(), Port: harness.MustFreePort(t), Log: harness.LogWriter(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	// One build per test binary, as the Dockerfile builds it.
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "replica-policy-chart-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "webhook")
		binErr = harness.BuildWebhook(ctx, binPath)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	// The writes' client: the native policies' clamp notices would fill the log as warnings.
	cfg := rest.CopyConfig(c.Config)
	cfg.WarningHandler = rest.NoWarnings{}
	f := &fixture{c: c, bin: binPath, cs: kubernetes.NewForConfigOrDie(cfg)}
	write := func(name, content string) string {
		p := filepath.Join(c.Dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f.base = write("lifecycle-values.yaml", fmt.Sprintf(lifecycleValues, c.Port))
	f.max10 = write("max10-values.yaml", policyMax(10))
	f.max8 = write("max8-values.yaml", policyMax(8))
	// The workloads the writes scale.
	cs := c.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range workloads {
		if _, err := cs.AppsV1().Deployments("app").Create(ctx, harness.Deployment("app", fmt.Sprintf("web-%d", i), 1, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// helm runs helm in the release namespace; t is the (sub)test that fails if it does.
func (f *fixture) helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := f.c.Helm(context.Background(), append(args, "--namespace", policy.DefaultNamespace)...)
	if err != nil {
		t.Fatal(err)
	}
	if args[0] != "get" {
		t.Logf("helm %s:\n%s", strings.Join(args, " "), out)
	}
	return out
}

// install installs the chart as docs/install.md says (--create-namespace), checks the
// namespace, and starts the binary under the chart's ServiceAccount with the chart's
// certificate and args; it returns the TLS Secret's data.
func (f *fixture) install(t *testing.T, args []string, values ...string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	cmd := []string{"install", release, harness.Chart(), "--create-namespace", "-f", f.base}
	for _, v := range values {
		cmd = append(cmd, "-f", v)
	}
	out := f.helm(t, cmd...)
	if strings.Contains(out, "Warning") {
		t.Errorf("helm install printed a warning from the API server:\n%s", out)
	}
	ns, err := f.c.Client.CoreV1().Namespaces().Get(ctx, policy.DefaultNamespace, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" || ns.Labels["app.kubernetes.io/managed-by"] != "Helm" {
		t.Errorf("Namespace %s labels %v: want the chart's (Pod Security restricted, managed by Helm)", ns.Name, ns.Labels)
	}
	tls := readTLS(t, f.c)
	f.webhook, err = f.c.RunWebhook(ctx, harness.WebhookOptions{Binary: f.bin, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.webhook.Kill)
	return tls
}

func (f *fixture) scale(ctx context.Context, name string, replicas int32) (int32, error) {
	s, err := f.cs.AppsV1().Deployments("app").UpdateScale(ctx, name, &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "app"}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}, metav1.UpdateOptions{})
	if err != nil {
		return 0, err
	}
	return s.Spec.Replicas, nil
}

// clampsTo is a condition: a scale to 100 is stored as want. It first scales to 1, so that
// the scale to 100 always changes replicas: a write that changes nothing is neither sent to
// the webhook nor clamped by the native policies (their matchConditions), and a 100 that got
// through once would otherwise stay.
func (f *fixture) clampsTo(want int32) func() (bool, string) {
	return func() (bool, string) {
		if _, err := f.scale(context.Background(), "web-0", 1); err != nil {
			return false, err.Error()
		}
		got, err := f.scale(context.Background(), "web-0", 100)
		if err != nil {
			return false, err.Error()
		}
		return got == want, fmt.Sprintf("a scale to 100 stored %d", got)
	}
}

// writeResult counts the writes of writes.
type writeResult struct {
	sent, failed int
	firstErr     error
}

// writes sends scale writes of varying sizes, one writer per workload, until stop is called.
// A conflict (two writers on one object) is not a failure; everything else is.
func (f *fixture) writes() (stop func() writeResult) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var r writeResult
	for w := range workloads {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				_, err := f.scale(context.Background(), fmt.Sprintf("web-%d", w), int32(1+(i*7)%30))
				mu.Lock()
				r.sent++
				if err != nil && !apierrors.IsConflict(err) {
					r.failed++
					if r.firstErr == nil {
						r.firstErr = err
					}
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	return func() writeResult { cancel(); wg.Wait(); return r }
}

// uninstall runs helm uninstall with writes running and checks: the webhook configurations
// go before the Service, no write fails during it or after the binary stops, and no object
// of the release nor its history is left. It returns the release's objects.
func (f *fixture) uninstall(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ns := policy.DefaultNamespace
	rendered := parseObjects(t, f.helm(t, "get", "manifest", release))
	deletions := watchDeletions(t, f.c, ns)
	stop := f.writes()
	f.helm(t, "uninstall", release)
	// The pods go away after the objects (the Deployment is deleted after the Service):
	// the binary stops now, and the writes go on without it.
	if err := f.webhook.Stop(30 * time.Second); err != nil {
		t.Errorf("webhook exit: %v", err)
	}
	time.Sleep(2 * time.Second)
	r := stop()
	t.Logf("%d scale writes during and after helm uninstall, %d failed", r.sent, r.failed)
	if r.failed > 0 {
		t.Errorf("%d of %d writes failed during or after helm uninstall (first: %v)", r.failed, r.sent, r.firstErr)
	}

	order := deletions()
	svc := order["Service/replica-policy-webhook"]
	for _, k := range []string{"MutatingWebhookConfiguration/replica-policy", "ValidatingWebhookConfiguration/replica-policy"} {
		if order[k] == 0 || svc == 0 || order[k] >= svc {
			t.Errorf("deletion revisions %v: want %s deleted before the Service", order, k)
		}
	}
	for _, o := range rendered {
		checkGone(t, f.c, o)
	}
	if out := f.helm(t, "list", "--short", "--uninstalled", "--uninstalling", "--failed", "--pending"); strings.TrimSpace(out) != "" {
		t.Errorf("helm still lists a release: %q", out)
	}
	// The release's history: Secrets owner=helm (helm's default storage).
	records, err := f.c.Client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + release})
	if err != nil || len(records.Items) > 0 {
		t.Errorf("release records left after helm uninstall: %v %d", err, len(records.Items))
	}
}

// TestHelmLifecycle installs the chart with helm on a real kube-apiserver, runs the webhook
// binary under the chart's ServiceAccount token with the chart's certificate (as a pod would
// mount it), and checks: install clamps a scale; upgrade, with writes running, fails none
// and keeps the CA and certificate; rollback brings the earlier policy back; uninstall
// deletes the webhook configurations before the Service, fails no write, and leaves nothing
// of the release behind.
func TestHelmLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cs := f.c.Client

	t.Run("install into a namespace that exists: refused, naming it", func(t *testing.T) {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "platform"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, err := f.c.Helm(ctx, "install", release, harness.Chart(), "--namespace", "platform", "-f", f.base)
		if err == nil || !strings.Contains(out, `Namespace "platform"`) || !strings.Contains(out, "exists and cannot be imported into the current release") {
			t.Errorf("helm install into an existing namespace: %v\n%s\nwant the refusal docs/install.md quotes", err, out)
		}
		if out, err := f.c.Helm(ctx, "install", release, harness.Chart(), "--namespace", "platform", "-f", f.base, "--dry-run=server", "--set", "namespace.create=false"); err != nil {
			t.Errorf("with namespace.create=false: %v\n%s", err, out)
		}
	})

	tls := f.install(t, nil, f.max10)
	t.Run("install: the binary under the chart's ServiceAccount clamps a scale", func(t *testing.T) {
		harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "a scale to 100 clamped to 10", f.clampsTo(10))
	})

	t.Run("upgrade with writes running: none fails, the CA and certificate stay", func(t *testing.T) {
		stop := f.writes()
		time.Sleep(time.Second)
		f.helm(t, "upgrade", release, harness.Chart(), "-f", f.base, "-f", f.max8)
		harness.Eventually(t, 15*time.Second, 100*time.Millisecond, "the upgraded policy (max 8) in force", f.clampsTo(8))
		time.Sleep(time.Second)
		r := stop()
		t.Logf("%d scale writes during the upgrade, %d failed", r.sent, r.failed)
		if r.failed > 0 || r.sent < 50 {
			t.Errorf("%d of %d writes failed during helm upgrade (first: %v); want 0 of at least 50", r.failed, r.sent, r.firstErr)
		}
		checkTLSKept(t, f.c, tls)
	})

	t.Run("rollback: the first revision's policy, the same CA and certificate", func(t *testing.T) {
		stop := f.writes()
		f.helm(t, "rollback", release, "1")
		harness.Eventually(t, 15*time.Second, 100*time.Millisecond, "the first revision's policy (max 10) in force", f.clampsTo(10))
		if r := stop(); r.failed > 0 {
			t.Errorf("%d of %d writes failed during helm rollback (first: %v)", r.failed, r.sent, r.firstErr)
		}
		checkTLSKept(t, f.c, tls)
	})

	t.Run("uninstall: webhook configurations first, no write fails, nothing left", func(t *testing.T) {
		f.uninstall(t)
		// kube-apiserver drops a deleted policy from its informers a moment after the
		// deletion (and after the finalizer patch, an update it recompiles the policy for).
		harness.Eventually(t, 10*time.Second, 200*time.Millisecond, "after uninstall, a scale to 100 stored as 100 (nothing decides it)", func() (bool, string) {
			if _, err := f.scale(ctx, "web-0", 1); err != nil {
				return false, err.Error()
			}
			got, err := f.scale(ctx, "web-0", 100)
			return err == nil && got == 100, fmt.Sprintf("stored %d (%v)", got, err)
		})
	})
}

// compiled are the native objects the binary writes with --native-policies (policy and
// binding share each name), which are not objects of the release.
var compiled = []string{"replica-policy-clamp", "replica-policy-deny", "replica-policy-warn", "replica-policy-clamped"}

// TestHelmNativePolicies installs the chart with nativePolicies.enabled and runs the binary
// with --native-policies under the chart's ServiceAccount: the chart's RBAC lets it compile
// the policy into native admission policies and narrow its webhook configuration; helm
// upgrade (server-side apply) keeps working over the fields the binary owns and the new
// policy is enforced; after helm uninstall, docs/install.md's command removes the compiled
// objects, which are not part of the release.
func TestHelmNativePolicies(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ar := f.c.Client.AdmissionregistrationV1()
	nativeValues := filepath.Join(harness.Chart(), "ci", "native-policies-values.yaml")
	f.install(t, []string{"--native-policies"}, nativeValues, f.max10)

	narrowed := func() (bool, string) {
		if _, err := ar.MutatingAdmissionPolicies().Get(ctx, "replica-policy-clamp", metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		m, err := ar.MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range m.Webhooks[0].MatchConditions {
			if c.Name == "native-policies" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("matchConditions %v", m.Webhooks[0].MatchConditions)
	}
	t.Run("install: compiled and narrowed with the chart's RBAC, clamps", func(t *testing.T) {
		harness.Eventually(t, 20*time.Second, 200*time.Millisecond, "the native policies applied and the webhook narrowed", narrowed)
		harness.Eventually(t, 20*time.Second, 100*time.Millisecond, "a scale to 100 clamped to 10", f.clampsTo(10))
	})
	// The binary owns fields of the workload webhook that the chart renders too (server-side
	// apply, field manager replica-policy: its rules once it narrows them), so helm 4's
	// server-side apply stops with "conflict with \"replica-policy\"" unless told to take
	// them back: --force-conflicts, as docs/install.md says. Taking them back widens the
	// webhook (safe: it decides whatever it is sent), and the binary narrows it again.
	t.Run("upgrade --force-conflicts over the fields the binary owns: none fails, the new policy in force", func(t *testing.T) {
		stop := f.writes()
		f.helm(t, "upgrade", release, harness.Chart(), "--force-conflicts", "-f", f.base, "-f", nativeValues, "-f", f.max8)
		harness.Eventually(t, 20*time.Second, 100*time.Millisecond, "the upgraded policy (max 8) in force", f.clampsTo(8))
		harness.Eventually(t, 20*time.Second, 200*time.Millisecond, "the webhook narrowed again", narrowed)
		r := stop()
		t.Logf("%d scale writes during the upgrade, %d failed", r.sent, r.failed)
		if r.failed > 0 {
			t.Errorf("%d of %d writes failed during helm upgrade (first: %v)", r.failed, r.sent, r.firstErr)
		}
	})
	t.Run("rollback --force-conflicts: none fails, the first policy in force", func(t *testing.T) {
		stop := f.writes()
		f.helm(t, "rollback", release, "1", "--force-conflicts")
		harness.Eventually(t, 20*time.Second, 100*time.Millisecond, "the first revision's policy (max 10) in force", f.clampsTo(10))
		harness.Eventually(t, 20*time.Second, 200*time.Millisecond, "the webhook narrowed again", narrowed)
		if r := stop(); r.failed > 0 {
			t.Errorf("%d of %d writes failed during helm rollback (first: %v)", r.failed, r.sent, r.firstErr)
		}
	})
	t.Run("uninstall, then the compiled objects by docs/install.md's command", func(t *testing.T) {
		f.uninstall(t)
		var left []string
		for _, n := range compiled {
			if _, err := ar.MutatingAdmissionPolicies().Get(ctx, n, metav1.GetOptions{}); err == nil {
				left = append(left, "MutatingAdmissionPolicy/"+n)
			}
			if _, err := ar.ValidatingAdmissionPolicies().Get(ctx, n, metav1.GetOptions{}); err == nil {
				left = append(left, "ValidatingAdmissionPolicy/"+n)
			}
		}
		t.Logf("left by helm uninstall (not objects of the release): %v", left)
		// docs/install.md: the binary's finalizer removed, then the objects deleted.
		kinds, selector := "mutatingadmissionpolicies,mutatingadmissionpolicybindings,validatingadmissionpolicies,validatingadmissionpolicybindings", native.ManagedByLabel+"="+native.ManagedBy
		kubectl := func(args ...string) string {
			out, err := f.c.KubectlCmd(ctx, args...)
			if err != nil {
				t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return out
		}
		for _, name := range strings.Fields(kubectl("get", kinds, "-l", selector, "-o", "name")) {
			kubectl("patch", name, "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
		}
		kubectl("delete", kinds, "-l", selector, "--ignore-not-found")
		all := metav1.ListOptions{}
		for _, list := range []func() (runtime.Object, error){
			func() (runtime.Object, error) { return ar.MutatingAdmissionPolicies().List(ctx, all) },
			func() (runtime.Object, error) { return ar.MutatingAdmissionPolicyBindings().List(ctx, all) },
			func() (runtime.Object, error) { return ar.ValidatingAdmissionPolicies().List(ctx, all) },
			func() (runtime.Object, error) { return ar.ValidatingAdmissionPolicyBindings().List(ctx, all) },
		} {
			l, err := list()
			if err != nil {
				t.Errorf("admission policies after the documented delete: %v", err)
			} else if n := meta.LenList(l); n > 0 {
				t.Errorf("admission policies left after the documented delete: %d %T", n, l)
			}
		}
		// kube-apiserver drops a deleted policy from its informers a moment after the
		// deletion (and after the finalizer patch, an update it recompiles the policy for).
		harness.Eventually(t, 10*time.Second, 200*time.Millisecond, "after uninstall, a scale to 100 stored as 100 (nothing decides it)", func() (bool, string) {
			if _, err := f.scale(ctx, "web-0", 1); err != nil {
				return false, err.Error()
			}
			got, err := f.scale(ctx, "web-0", 100)
			return err == nil && got == 100, fmt.Sprintf("stored %d (%v)", got, err)
		})
	})
}

// readTLS returns the chart's TLS Secret data and writes its files into c.CertDir, where
// the binary reads them (as the kubelet mounts the Secret into a pod).
func readTLS(t *testing.T, c *harness.Cluster) map[string][]byte {
	t.Helper()
	s, err := c.Client.CoreV1().Secrets(policy.DefaultNamespace).Get(context.Background(), tlsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if len(s.Data[k]) == 0 {
			t.Fatalf("Secret %s has no %s", tlsSecret, k)
		}
		if err := os.WriteFile(filepath.Join(c.CertDir, k), s.Data[k], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	checkCABundles(t, c, s.Data["ca.crt"])
	return s.Data
}

// checkTLSKept checks that the Secret and both caBundles still hold what install made.
func checkTLSKept(t *testing.T, c *harness.Cluster, was map[string][]byte) {
	t.Helper()
	s, err := c.Client.CoreV1().Secrets(policy.DefaultNamespace).Get(context.Background(), tlsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range was {
		if !bytes.Equal(s.Data[k], v) {
			t.Errorf("Secret %s: %s changed", tlsSecret, k)
		}
	}
	checkCABundles(t, c, was["ca.crt"])
}

func checkCABundles(t *testing.T, c *harness.Cluster, ca []byte) {
	t.Helper()
	ctx := context.Background()
	ar := c.Client.AdmissionregistrationV1()
	m, err := ar.MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.ValidatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range m.Webhooks {
		if !bytes.Equal(h.ClientConfig.CABundle, ca) {
			t.Errorf("MutatingWebhookConfiguration webhook %s: caBundle is not the Secret's ca.crt", h.Name)
		}
	}
	for _, h := range v.Webhooks {
		if !bytes.Equal(h.ClientConfig.CABundle, ca) {
			t.Errorf("ValidatingWebhookConfiguration webhook %s: caBundle is not the Secret's ca.crt", h.Name)
		}
	}
}

// watchDeletions watches the webhook configurations and the Services of ns, and returns a
// function that stops the watches and returns, for each deleted object ("Kind/name"), the
// resourceVersion of its deletion: etcd's revision, one counter for the whole store, so it
// orders deletions across kinds.
func watchDeletions(t *testing.T, c *harness.Cluster, ns string) func() map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ar := c.Client.AdmissionregistrationV1()
	var ws []watch.Interface
	for _, start := range []func() (watch.Interface, error){
		func() (watch.Interface, error) {
			return ar.MutatingWebhookConfigurations().Watch(ctx, metav1.ListOptions{})
		},
		func() (watch.Interface, error) {
			return ar.ValidatingWebhookConfigurations().Watch(ctx, metav1.ListOptions{})
		},
		func() (watch.Interface, error) {
			return c.Client.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{})
		},
	} {
		w, err := start()
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	var mu sync.Mutex
	got := map[string]int64{}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for ev := range w.ResultChan() {
				if ev.Type != watch.Deleted {
					continue
				}
				o, ok := ev.Object.(metav1.Object)
				if !ok {
					continue
				}
				kind := strings.TrimPrefix(fmt.Sprintf("%T", ev.Object), "*v1.")
				rv, _ := strconv.ParseInt(o.GetResourceVersion(), 10, 64)
				mu.Lock()
				got[kind+"/"+o.GetName()] = rv
				mu.Unlock()
			}
		})
	}
	return func() map[string]int64 {
		time.Sleep(500 * time.Millisecond) // the last events in flight
		cancel()
		for _, w := range ws {
			w.Stop()
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

// checkGone checks that a rendered object is gone; the Namespace may still be terminating
// (the test's control plane runs no namespace controller to finish deleting it).
func checkGone(t *testing.T, c *harness.Cluster, o object) {
	t.Helper()
	meta, _ := o["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	kind, _ := o["kind"].(string)
	if kind == "Namespace" {
		n, err := c.Client.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && n.DeletionTimestamp == nil {
			t.Errorf("Namespace %s is still there after helm uninstall, not terminating", name)
		} else if err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
		return
	}
	// kubectl names a resource as kind.group ("deployment.apps"), a core one by its kind.
	resource := strings.ToLower(kind)
	if group, _, ok := strings.Cut(fmt.Sprint(o["apiVersion"]), "/"); ok {
		resource += "." + group
	}
	args := []string{"get", resource, name, "-o", "name", "--ignore-not-found"}
	if ns != "" {
		args = append(args, "-n", ns)
	}
	out, err := c.KubectlCmd(context.Background(), args...)
	if err != nil {
		t.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	} else if strings.TrimSpace(out) != "" {
		t.Errorf("%s is still there after helm uninstall", strings.TrimSpace(out))
	}
}
