package scaler_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/scaler"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// Set REPLICA_POLICY_TEST_LOG=1 to see the managers' logs (verbosity 1) on stderr.
func TestMain(m *testing.M) {
	logger := logr.Discard()
	if os.Getenv("REPLICA_POLICY_TEST_LOG") != "" {
		logger = funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{Verbosity: 1})
	}
	ctrl.SetLogger(logger)
	os.Exit(m.Run())
}

// suffix returns a short random suffix, so that namespaces and rule names (which label
// metrics shared by the whole process) are unique per test.
func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newNamespace creates a namespace. envtest runs no namespace controller, so a deleted
// namespace stays Terminating with its Deployments: tests scope their rules to their own
// namespaces and never use a default rule.
func newNamespace(t testing.TB, cs kubernetes.Interface, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "scaler-" + suffix(), Labels: labels}}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func createDeployment(t testing.TB, cs kubernetes.Interface, ns, name string, replicas int32, labels map[string]string) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Create(context.Background(), harness.Deployment(ns, name, replicas, labels), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func getDeployment(t testing.TB, cs kubernetes.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func setScale(t testing.TB, cs kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	ctx := context.Background()
	s, err := cs.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Replicas = replicas
	if _, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, name, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// applyPolicy swaps the store's policy as the ConfigMap watcher would.
func applyPolicy(t testing.TB, store *policystore.Store, doc string) {
	t.Helper()
	cm := harness.PolicyConfigMap("apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\n" + doc)
	cm.ResourceVersion = suffix()
	if _, err := store.Apply(cm); err != nil {
		t.Fatalf("policy:\n%s\n%v", doc, err)
	}
}

func newStore() *policystore.Store {
	return policystore.NewStore(policy.Options{AlwaysExempt: []string{policy.DefaultNamespace}})
}

// testOptions are the defaults with a cap high enough not to slow tests down.
func testOptions() scaler.Options {
	o := scaler.DefaultOptions()
	o.MaxCorrectionsPerSecond, o.CorrectionBurst = 1000, 1000
	return o
}

// running is a manager running a scaler.
type running struct {
	R    *scaler.Reconciler
	Mgr  manager.Manager
	stop func()
}

// startScaler starts a manager with the scaler, as cmd/webhook does (trimmed cache, no
// metrics or health servers); before runs just before SetupWithManager, mgrOpts before
// the manager is made. The manager stops when the test ends or when stop is called.
func startScaler(t testing.TB, cfg *rest.Config, store *policystore.Store, opts scaler.Options,
	before func(*scaler.Reconciler, manager.Manager), mgrOpts func(*manager.Options)) *running {
	t.Helper()
	// A scheme of its own, as cmd/webhook makes one: the scaler reads ScaledObjects only
	// where the manager's scheme knows them.
	sch := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	workload.AddScaledObjectToScheme(sch)
	o := manager.Options{
		Scheme:                 sch,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{ByObject: workload.Builtin().CacheByObject()},
		// Every test makes its own manager with the same controller name.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if mgrOpts != nil {
		mgrOpts(&o)
	}
	mgr, err := manager.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	r := scaler.New(store, opts)
	if before != nil {
		before(r, mgr)
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	stop := harness.RunInBackground(t, "manager", 30*time.Second, mgr.Start)
	syncCtx, cancelSync := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Fatal("the manager's cache did not sync within 30s")
	}
	return &running{R: r, Mgr: mgr, stop: stop}
}

// poll is how often the tests poll the cluster and the scaler.
const poll = 50 * time.Millisecond

// waitReplicas waits until the Deployment has the replicas.
func waitReplicas(t testing.TB, cs kubernetes.Interface, ns, name string, want int32, timeout time.Duration) {
	t.Helper()
	harness.Eventually(t, timeout, poll, "the scaler's outcome", func() error {
		d := getDeployment(t, cs, ns, name)
		if got := ptr.Deref(d.Spec.Replicas, 1); got != want {
			return fmt.Errorf("%s/%s has %d replicas, want %d", ns, name, got, want)
		}
		return nil
	})
}

// waitPass waits until the scaler has evaluated at least n more workloads than before
// (reconciled, or settled without a reconcile: evaluated), where n is every Deployment in
// the cluster: a full pass has been made.
func waitPass(t testing.TB, cs kubernetes.Interface, r *scaler.Reconciler, before int64) {
	t.Helper()
	all, err := cs.AppsV1().Deployments("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(all.Items))
	harness.Eventually(t, 10*time.Second, poll, "the scaler's outcome", func() error {
		if got := evaluated(r) - before; got < n {
			return fmt.Errorf("%d workloads evaluated since the trigger, want at least %d", got, n)
		}
		return nil
	})
}

// events lists the events.k8s.io Events of a namespace with a reason, by regarding name.
func events(t testing.TB, cs kubernetes.Interface, ns, reason string) map[string][]eventsv1.Event {
	t.Helper()
	list, err := cs.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]eventsv1.Event{}
	for _, e := range list.Items {
		if e.Reason == reason {
			out[e.Regarding.Name] = append(out[e.Regarding.Name], e)
		}
	}
	return out
}

// metric returns the value of a series in controller-runtime's registry, summed over the
// series whose labels include want; found is false when there is none.
func metric(t testing.TB, name string, want map[string]string) (sum float64, found bool) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			found = true
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum, found
}

// noSeries is an error while the gauge name has a series for rule: the scaler removes a
// rule's series once nothing is left to report.
func noSeries(t testing.TB, name, rule string) error {
	t.Helper()
	if v, found := metric(t, name, map[string]string{"rule": rule}); found {
		return fmt.Errorf("%s{rule=%s} = %v, want no series", name, rule, v)
	}
	return nil
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// evaluated is the workloads r has evaluated so far: reconciled, or settled without one.
func evaluated(r *scaler.Reconciler) int64 {
	c := r.Counts()
	return c.Reconciles + c.Settled
}
