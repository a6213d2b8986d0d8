package scaler_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/scaler"
)

// TestScaler runs the scaler against a real kube-apiserver and etcd, one control plane for
// all subtests; each subtest has its own namespaces, policy store and manager.
func TestScaler(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	env := harness.StartControlPlane(t, harness.ControlPlaneOptions{})
	cfg, cs := env.Config, env.Client
	for _, tc := range []struct {
		name string
		test func(*testing.T, *rest.Config, kubernetes.Interface)
	}{
		{"TighteningPolicyCorrectsOnlyViolators", testTightening},
		{"StartUpAndDrift", testStartUpAndDrift},
		{"NamespaceSelector", testNamespaceSelector},
		{"DenyAndWarnReportOnly", testDenyAndWarn},
		{"DryRunWritesNothing", testDryRun},
		{"MovedIsNeverRaised", testMovedIsNeverRaised},
		{"DeletedMidReconcile", testDeletedMidReconcile},
		{"APIErrorsAreReportedAndRetried", testAPIErrors},
		{"BacksOffFromAnotherWriter", testFight},
		{"PolicyAbsenceIsNotAFight", testPolicyAbsence},
		{"CorrectionsPerSecondCap", testRateLimit},
		{"FullPassIsPaced", testPassPaced},
		{"EventBudgetSummarises", testEventBudget},
		{"LeaderElection", testLeaderElection},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, cfg, cs) })
	}
}

// Tightening the policy corrects the existing violators within seconds, through the
// scale subresource, with an Event each; compliant and exempt Deployments are not written,
// and a policy change that affects nothing writes nothing.
func testTightening(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	ns, exempt := newNamespace(t, cs, nil), newNamespace(t, cs, nil)
	rule := "tighten-" + suffix()
	initial := map[string]int32{"d-1": 1, "d-3": 3, "d-5": 5, "d-12": 12, "d-30": 30}
	for name, n := range initial {
		createDeployment(t, cs, ns, name, n, nil)
	}
	createDeployment(t, cs, exempt, "e-30", 30, nil)

	store := newStore()
	loose := fmt.Sprintf("exemptNamespaces: [%s]\nrules:\n- {name: %s, namespaces: [%s, %s], maxReplicas: 100}\n", exempt, rule, ns, exempt)
	applyPolicy(t, store, loose)
	run := startScaler(t, cfg, store, testOptions(), nil, nil)
	r := run.R
	waitPass(t, cs, r, 0)

	// A policy change that affects nothing: a full pass, no request to any scale.
	before := evaluated(r)
	applyPolicy(t, store, loose+fmt.Sprintf("- {name: other-%s, namespaces: [nowhere], maxReplicas: 1}\n", rule))
	waitPass(t, cs, r, before)
	if c := r.Counts(); c.ScaleWrites != 0 {
		t.Fatalf("a policy change that affects nothing: %d scale writes; want none", c.ScaleWrites)
	}

	rvs := map[string]string{}
	for name := range initial {
		rvs[name] = getDeployment(t, cs, ns, name).ResourceVersion
	}
	exemptRV := getDeployment(t, cs, exempt, "e-30").ResourceVersion
	corrections0, _ := metric(t, "replicapolicy_scaler_corrections_total", map[string]string{"rule": rule, "kind": "Deployment"})

	start := time.Now()
	tight := fmt.Sprintf("exemptNamespaces: [%s]\nrules:\n- {name: %s, namespaces: [%s, %s], minReplicas: 2, maxReplicas: 10}\n", exempt, rule, ns, exempt)
	applyPolicy(t, store, tight)
	want := map[string]int32{"d-1": 2, "d-3": 3, "d-5": 5, "d-12": 10, "d-30": 10}
	for name, n := range want {
		waitReplicas(t, cs, ns, name, n, 10*time.Second)
	}
	t.Logf("3 violators corrected %s after the policy change", time.Since(start).Round(time.Millisecond))

	if c := r.Counts(); c.ScaleWrites != 3 || c.Corrections != 3 || c.Failures != 0 {
		t.Errorf("counts = %+v, want 3 writes, 3 corrections, no failure", c)
	}
	for _, name := range []string{"d-3", "d-5"} {
		if rv := getDeployment(t, cs, ns, name).ResourceVersion; rv != rvs[name] {
			t.Errorf("compliant %s was written: resourceVersion %s → %s", name, rvs[name], rv)
		}
	}
	if d := getDeployment(t, cs, exempt, "e-30"); d.ResourceVersion != exemptRV || *d.Spec.Replicas != 30 {
		t.Errorf("exempt Deployment was written: replicas %d, resourceVersion %s → %s", *d.Spec.Replicas, exemptRV, d.ResourceVersion)
	}
	for name, from := range map[string]int32{"d-1": 1, "d-12": 12, "d-30": 30} {
		d := getDeployment(t, cs, ns, name)
		var manager string
		for _, f := range d.ManagedFields {
			if f.Subresource == "scale" {
				manager = f.Manager
			}
		}
		if manager != scaler.FieldManager {
			t.Errorf("%s: scale written by field manager %q, want %q", name, manager, scaler.FieldManager)
		}
		note := fmt.Sprintf("spec.replicas %d → %d by replica policy rule %q", from, want[name], rule)
		harness.Eventually(t, 5*time.Second, poll, "the scaler's outcome", func() error {
			evs := events(t, cs, ns, scaler.ReasonReplicasCorrected)[name]
			if len(evs) != 1 || !contains(evs[0].Note, note) || evs[0].Type != corev1.EventTypeNormal || evs[0].ReportingController != scaler.ControllerName {
				return fmt.Errorf("%s: ReplicasCorrected events %+v, want one saying %q", name, evs, note)
			}
			return nil
		})
	}
	if got, _ := metric(t, "replicapolicy_scaler_corrections_total", map[string]string{"rule": rule, "kind": "Deployment"}); got-corrections0 != 3 {
		t.Errorf("corrections_total{rule=%s} grew by %v, want 3", rule, got-corrections0)
	}

	// Idempotent: the same policy again (a new ConfigMap version) writes nothing more.
	before = evaluated(r)
	applyPolicy(t, store, tight)
	waitPass(t, cs, r, before)
	if c := r.Counts(); c.ScaleWrites != 3 {
		t.Errorf("re-applying the policy wrote again: %d writes in all, want 3", c.ScaleWrites)
	}
	if err := noSeries(t, "replicapolicy_scaler_out_of_bounds", rule); err != nil {
		t.Errorf("after the corrections: %v", err)
	}
}

// A violator that exists when the scaler starts is corrected (start-up pass); one created
// or scaled while the scaler runs, as if the webhook were absent, is corrected too (drift);
// a Deployment without spec.replicas counts as 1.
func testStartUpAndDrift(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	ns := newNamespace(t, cs, nil)
	createDeployment(t, cs, ns, "before", 20, nil)
	store := newStore()
	applyPolicy(t, store, fmt.Sprintf("rules:\n- {name: drift-%s, namespaces: [%s], minReplicas: 2, maxReplicas: 5}\n", suffix(), ns))
	start := time.Now()
	startScaler(t, cfg, store, testOptions(), nil, nil)
	waitReplicas(t, cs, ns, "before", 5, 15*time.Second)
	t.Logf("pre-existing violator corrected %s after the scaler started", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	createDeployment(t, cs, ns, "after", 30, nil)
	waitReplicas(t, cs, ns, "after", 5, 10*time.Second)
	t.Logf("violator created without the webhook corrected in %s", time.Since(start).Round(time.Millisecond))

	setScale(t, cs, ns, "before", 40) // as kubectl scale does
	waitReplicas(t, cs, ns, "before", 5, 10*time.Second)

	if _, err := cs.AppsV1().Deployments(ns).Create(context.Background(), unsetReplicas(harness.Deployment(ns, "unset", 0, nil)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, cs, ns, "unset", 2, 10*time.Second)
}

// A namespaceSelector rule reads the Namespace's labels from the cache; labelling the
// Namespace brings its workloads under the rule at once.
func testNamespaceSelector(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	env := "prod-" + suffix()
	ns := newNamespace(t, cs, nil)
	createDeployment(t, cs, ns, "web", 20, nil)
	store := newStore()
	applyPolicy(t, store, fmt.Sprintf("rules:\n- name: nssel-%s\n  namespaceSelector: {matchLabels: {env: %s}}\n  maxReplicas: 4\n", env, env))
	run := startScaler(t, cfg, store, testOptions(), nil, nil)
	waitPass(t, cs, run.R, 0)
	if c := run.R.Counts(); c.ScaleWrites != 0 {
		t.Fatalf("wrote %d times before the namespace matched", c.ScaleWrites)
	}
	n, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels = map[string]string{"env": env}
	if _, err := cs.CoreV1().Namespaces().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, cs, ns, "web", 4, 10*time.Second)
}

// deny and warn rules are reported (Event once, gauge), never changed; the gauge follows
// the workloads and its series goes when none is out of bounds any more.
func testDenyAndWarn(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	ns := newNamespace(t, cs, nil)
	deny, warn := "deny-"+suffix(), "warn-"+suffix()
	createDeployment(t, cs, ns, "d", 20, map[string]string{"app": "d"})
	createDeployment(t, cs, ns, "w", 20, map[string]string{"app": "w"})
	createDeployment(t, cs, ns, "ok", 3, map[string]string{"app": "d"})
	store := newStore()
	applyPolicy(t, store, fmt.Sprintf(`rules:
- {name: %s, namespaces: [%s], selector: {matchLabels: {app: d}}, maxReplicas: 5, action: deny}
- {name: %s, namespaces: [%s], selector: {matchLabels: {app: w}}, maxReplicas: 5, action: warn}
`, deny, ns, warn, ns))
	opts := testOptions()
	opts.ResyncPeriod = 200 * time.Millisecond
	run := startScaler(t, cfg, store, opts, nil, nil)

	for name, rule := range map[string]string{"d": deny, "w": warn} {
		harness.Eventually(t, 10*time.Second, poll, "the scaler's outcome", func() error {
			evs := events(t, cs, ns, scaler.ReasonReplicasOutOfBounds)[name]
			if len(evs) != 1 || evs[0].Type != corev1.EventTypeWarning || !contains(evs[0].Note, "spec.replicas 20 is outside the bounds [0, 5]", fmt.Sprintf("rule %q", rule)) {
				return fmt.Errorf("%s: ReplicasOutOfBounds events %+v", name, evs)
			}
			return nil
		})
	}
	for rule, action := range map[string]string{deny: "deny", warn: "warn"} {
		if v, _ := metric(t, "replicapolicy_scaler_out_of_bounds", map[string]string{"rule": rule, "action": action}); v != 1 {
			t.Errorf("out_of_bounds{rule=%s,action=%s} = %v, want 1", rule, action, v)
		}
	}
	// Several resyncs later: still one Event each (no series), nothing written.
	before := evaluated(run.R)
	waitPass(t, cs, run.R, before)
	waitPass(t, cs, run.R, evaluated(run.R))
	time.Sleep(time.Second) // let the event broadcaster flush anything a pass recorded
	for _, name := range []string{"d", "w"} {
		if evs := events(t, cs, ns, scaler.ReasonReplicasOutOfBounds)[name]; len(evs) != 1 || evs[0].Series != nil {
			t.Errorf("%s: after resyncs, ReplicasOutOfBounds events %+v, want exactly one, without a series", name, evs)
		}
		if d := getDeployment(t, cs, ns, name); *d.Spec.Replicas != 20 {
			t.Errorf("%s was changed to %d", name, *d.Spec.Replicas)
		}
	}
	if c := run.R.Counts(); c.ScaleWrites != 0 {
		t.Errorf("counts = %+v, want no scale request", c)
	}
	setScale(t, cs, ns, "d", 4)
	harness.Eventually(t, 10*time.Second, poll, "no out-of-bounds series once in bounds", func() error {
		return noSeries(t, "replicapolicy_scaler_out_of_bounds", deny)
	})
}

// --scaler-dry-run reports what clamp rules would change, once, and writes nothing.
func testDryRun(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	ns := newNamespace(t, cs, nil)
	rule := "dry-" + suffix()
	rvs := map[string]string{}
	for name, n := range map[string]int32{"a": 20, "b": 30, "c": 1, "ok": 3} {
		rvs[name] = createDeployment(t, cs, ns, name, n, nil).ResourceVersion
	}
	store := newStore()
	applyPolicy(t, store, fmt.Sprintf("rules:\n- {name: %s, namespaces: [%s], minReplicas: 2, maxReplicas: 5}\n", rule, ns))
	opts := testOptions()
	opts.DryRun, opts.ResyncPeriod = true, 200*time.Millisecond
	would0, _ := metric(t, "replicapolicy_scaler_dry_run_would_correct_total", map[string]string{"rule": rule})
	run := startScaler(t, cfg, store, opts, nil, nil)

	wantNotes := map[string]string{"a": "20 → 5", "b": "30 → 5", "c": "1 → 2"}
	harness.Eventually(t, 10*time.Second, poll, "the scaler's outcome", func() error {
		evs := events(t, cs, ns, scaler.ReasonReplicasOutOfBounds)
		for name, n := range wantNotes {
			if e := evs[name]; len(e) != 1 || !contains(e[0].Note, "dry run", n, rule) {
				return fmt.Errorf("%s: ReplicasOutOfBounds events %+v, want one saying %q", name, e, n)
			}
		}
		return nil
	})
	waitPass(t, cs, run.R, evaluated(run.R))
	waitPass(t, cs, run.R, evaluated(run.R))
	time.Sleep(time.Second)
	for name, rv := range rvs {
		if got := getDeployment(t, cs, ns, name).ResourceVersion; got != rv {
			t.Errorf("%s written in dry run: resourceVersion %s → %s", name, rv, got)
		}
	}
	if c := run.R.Counts(); c.ScaleWrites != 0 || c.Corrections != 0 {
		t.Errorf("counts = %+v, want no scale request", c)
	}
	if evs := events(t, cs, ns, scaler.ReasonReplicasOutOfBounds); len(evs) != 3 || len(evs["ok"]) != 0 {
		t.Errorf("events after resyncs: %v, want one each for a, b, c", evs)
	}
	if got, _ := metric(t, "replicapolicy_scaler_dry_run_would_correct_total", map[string]string{"rule": rule}); got-would0 != 3 {
		t.Errorf("dry_run_would_correct_total{rule=%s} grew by %v, want 3 (once per workload)", rule, got-would0)
	}
	if v, _ := metric(t, "replicapolicy_scaler_out_of_bounds", map[string]string{"rule": rule, "action": "clamp"}); v != 3 {
		t.Errorf("out_of_bounds{rule=%s} = %v, want 3", rule, v)
	}
}

// hookedScale wraps the scale subresource client with hooks run around its UPDATE (the
// scaler sends nothing else to it).
type hookedScale struct {
	client.SubResourceClient
	beforeWrite func(obj client.Object)
	afterWrite  func(err error)
	// failWrite, when it returns an error, answers the UPDATE with it instead of the API.
	failWrite func() error
}

func (h *hookedScale) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if h.beforeWrite != nil {
		h.beforeWrite(obj)
	}
	var err error
	if h.failWrite != nil {
		err = h.failWrite()
	}
	if err == nil {
		err = h.SubResourceClient.Update(ctx, obj, opts...)
	}
	if h.afterWrite != nil {
		h.afterWrite(err)
	}
	return err
}

// The race the conditional write closes: another writer changes the Deployment between the
// cache's view and the scaler's write. A blind write of the bound would raise one scaled
// down meanwhile; the scaler's UPDATE carries the resourceVersion the cache saw, the API
// server refuses it (409 Conflict), and the scaler evaluates the workload again from the
// cache: in bounds now, left alone. Driven deterministically: the other writer writes from
// the hook, just before the UPDATE leaves. Also the zero case (autoscaling/v1 Scale omits
// replicas 0), and changes that leave the replicas alone: a label, whose watch event queues
// the workload again, and an annotation, which the watch drops (workloadChanged), so that
// only the scaler's requeue after a conflict (movedRequeue, 1 s) brings the correction.
func testMovedIsNeverRaised(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	label := func(ns, name string) error {
		_, err := cs.AppsV1().Deployments(ns).Patch(context.Background(), name, types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"web"}}}`), metav1.PatchOptions{})
		return err
	}
	annotate := func(ns, name string) error {
		_, err := cs.AppsV1().Deployments(ns).Patch(context.Background(), name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"owner":"team-a"}}}`), metav1.PatchOptions{})
		return err
	}
	scaleTo := func(n int32) func(ns, name string) error {
		return func(ns, name string) error { setScale(t, cs, ns, name, n); return nil }
	}
	for _, tc := range []struct {
		name               string
		initial            int32                       // the cache's view
		other              func(ns, name string) error // what another writer does before the UPDATE (nil: nobody)
		want               int32
		moved, corrections int64
	}{
		{"scaled down meanwhile: not raised", 50, scaleTo(2), 2, 1, 0},
		{"scaled from 0 into bounds meanwhile: left there", 0, scaleTo(7), 7, 1, 0},
		{"scaled up meanwhile: not lowered from a value never seen, corrected once seen", 50, scaleTo(60), 10, 1, 1},
		{"0 under a minimum: corrected", 0, nil, 2, 0, 1},
		{"relabelled meanwhile: refused, corrected once the cache has the label", 50, label, 10, 1, 1},
		{"annotated meanwhile (no watch event): refused, corrected by the requeue", 50, annotate, 10, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t, cs, nil)
			createDeployment(t, cs, ns, "web", tc.initial, nil)
			store := newStore()
			applyPolicy(t, store, fmt.Sprintf("rules:\n- {name: moved-%s, namespaces: [%s], minReplicas: 2, maxReplicas: 10}\n", suffix(), ns))
			var once atomic.Bool
			var mu sync.Mutex
			type write struct {
				err error
				at  time.Time
			}
			var writes []write
			run := startScaler(t, cfg, store, testOptions(), func(r *scaler.Reconciler, mgr manager.Manager) {
				r.ScaleClient = &hookedScale{
					SubResourceClient: mgr.GetClient().SubResource("scale"),
					beforeWrite: func(obj client.Object) {
						if tc.other != nil && !once.Swap(true) {
							if err := tc.other(ns, obj.GetName()); err != nil {
								t.Errorf("the other writer: %v", err)
							}
						}
					},
					afterWrite: func(err error) { mu.Lock(); writes = append(writes, write{err, time.Now()}); mu.Unlock() },
				}
			}, nil)
			waitReplicas(t, cs, ns, "web", tc.want, 10*time.Second)
			harness.Eventually(t, 10*time.Second, poll, "the scaler's counts", func() (bool, string) {
				c := run.R.Counts()
				return c.Moved == tc.moved && c.Corrections == tc.corrections, fmt.Sprintf("counts = %+v, want %d moved, %d corrections", c, tc.moved, tc.corrections)
			})
			time.Sleep(300 * time.Millisecond) // a wrong write would have landed by now
			waitReplicas(t, cs, ns, "web", tc.want, time.Second)
			mu.Lock()
			defer mu.Unlock()
			if tc.moved > 0 {
				if len(writes) == 0 || !apierrors.IsConflict(writes[0].err) {
					t.Fatalf("scale UPDATEs returned %v, want 409 Conflict first", writes)
				}
				t.Logf("the API server's answer to a write from a stale view: %v", writes[0].err)
			}
			if tc.moved > 0 && tc.corrections > 0 {
				// The retry comes within the requeue (1 s) and its reconcile, not a resync.
				d := writes[len(writes)-1].at.Sub(writes[0].at)
				if d > 3*time.Second {
					t.Errorf("corrected %s after the conflict, want within 3s", d.Round(time.Millisecond))
				}
				t.Logf("corrected %s after the conflict", d.Round(time.Millisecond))
			}
			if c := run.R.Counts(); c.Failures != 0 || c.ScaleWrites != tc.moved+tc.corrections {
				t.Errorf("counts = %+v, want no failure and %d writes", c, tc.moved+tc.corrections)
			}
			if evs := events(t, cs, ns, scaler.ReasonCorrectionFailed); len(evs) != 0 {
				t.Errorf("CorrectionFailed events: %v", evs)
			}
		})
	}
}

// A Deployment deleted while the scaler corrects it (between the cache's view and the scale
// UPDATE) is not an error: no failure, no CorrectionFailed Event, no retry.
func testDeletedMidReconcile(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	for _, when := range []string{"BeforeWrite"} {
		t.Run(when, func(t *testing.T) {
			ns := newNamespace(t, cs, nil)
			createDeployment(t, cs, ns, "doomed", 20, nil)
			store := newStore()
			applyPolicy(t, store, fmt.Sprintf("rules:\n- {name: deleted-%s, namespaces: [%s], maxReplicas: 5}\n", suffix(), ns))
			failures0, _ := metric(t, "replicapolicy_scaler_correction_failures_total", nil)
			var deleted atomic.Bool
			var rec *scaler.Reconciler
			var atHook atomic.Int64 // reconciles finished when the hook ran
			del := func(obj client.Object) {
				if obj.GetNamespace() != ns || deleted.Swap(true) {
					return
				}
				atHook.Store(rec.Counts().Reconciles)
				if err := cs.AppsV1().Deployments(ns).Delete(context.Background(), obj.GetName(), metav1.DeleteOptions{}); err != nil {
					t.Errorf("deleting: %v", err)
				}
			}
			run := startScaler(t, cfg, store, testOptions(), func(r *scaler.Reconciler, mgr manager.Manager) {
				rec = r
				r.ScaleClient = &hookedScale{SubResourceClient: mgr.GetClient().SubResource("scale"), beforeWrite: del}
			}, nil)
			harness.Eventually(t, 10*time.Second, poll, "the scaler's outcome", func() error {
				if !deleted.Load() {
					return fmt.Errorf("the scaler did not try to correct the Deployment")
				}
				_, err := cs.AppsV1().Deployments(ns).Get(context.Background(), "doomed", metav1.GetOptions{})
				if !apierrors.IsNotFound(err) {
					return fmt.Errorf("Deployment still there: %v", err)
				}
				return nil
			})
			// The interrupted reconcile has finished. The deletion event queues another only
			// if it comes while the scaler still remembers the workload (needed): once the
			// interrupted one has forgotten it, a deleted workload needs nothing.
			harness.Eventually(t, 10*time.Second, poll, "the scaler's outcome", func() error {
				if got := run.R.Counts().Reconciles; got < atHook.Load()+1 {
					return fmt.Errorf("%d reconciles since the deletion, want 1", got-atHook.Load())
				}
				return nil
			})
			time.Sleep(500 * time.Millisecond) // a failure would be retried within 500ms
			if c := run.R.Counts(); c.Failures != 0 || c.Corrections != 0 {
				t.Errorf("counts = %+v, want no failure and no correction", c)
			}
			if got, _ := metric(t, "replicapolicy_scaler_correction_failures_total", nil); got != failures0 {
				t.Errorf("correction_failures_total grew by %v", got-failures0)
			}
			if evs := events(t, cs, ns, scaler.ReasonCorrectionFailed); len(evs) != 0 {
				t.Errorf("CorrectionFailed events: %v", evs)
			}
		})
	}
}

// An HPA-like writer keeps setting the replicas back out of bounds: the scaler corrects
// ContestThreshold times, then backs off (doubling), records ReplicasContested and sets the
// contested gauge, instead of flapping; once the other writer stops, the next probe sticks.
// A GitOps tool replaces the policy ConfigMap: each time it is gone, a client's 50 lands (no
// policy, no bounds); each time it is back, the scaler corrects it. Those corrections were
// each under a new policy, so they are not a fight: after the fourth round the workload is
// corrected at once, with no back-off, although the contest threshold is 3.
func testPolicyAbsence(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	ns := newNamespace(t, cs, nil)
	rule := "absence-" + suffix()
	createDeployment(t, cs, ns, "web", 50, nil)
	store := newStore()
	doc := fmt.Sprintf("rules:\n- {name: %s, namespaces: [%s], maxReplicas: 7}\n", rule, ns)
	applyPolicy(t, store, doc)
	opts := testOptions()
	opts.ContestThreshold, opts.ContestWindow, opts.ContestBackoff, opts.ContestMaxBackoff = 3, time.Minute, time.Minute, time.Minute
	run := startScaler(t, cfg, store, opts, nil, nil)
	waitReplicas(t, cs, ns, "web", 7, 10*time.Second)
	for round := range 4 {
		if _, err := store.Apply(nil); err != nil { // the ConfigMap is deleted
			t.Fatal(err)
		}
		setScale(t, cs, ns, "web", 50) // allowed: no policy
		applyPolicy(t, store, doc)     // and created again
		waitReplicas(t, cs, ns, "web", 7, 10*time.Second)
		t.Logf("round %d corrected", round+1)
	}
	// The last correction is counted a moment after its write lands.
	harness.Eventually(t, 5*time.Second, 50*time.Millisecond, "5 corrections counted", func() error {
		if c := run.R.Counts(); c.Contests != 0 || c.Corrections < 5 {
			return fmt.Errorf("counts = %+v: want 5 corrections and no contest", c)
		}
		return nil
	})
}

func testFight(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	ns := newNamespace(t, cs, nil)
	rule := "fight-" + suffix()
	createDeployment(t, cs, ns, "hpa", 20, nil)
	store := newStore()
	applyPolicy(t, store, fmt.Sprintf("rules:\n- {name: %s, namespaces: [%s], maxReplicas: 5}\n", rule, ns))
	opts := testOptions()
	opts.ContestThreshold, opts.ContestWindow, opts.ContestBackoff, opts.ContestMaxBackoff = 3, time.Minute, 2*time.Second, 8*time.Second
	run := startScaler(t, cfg, store, opts, nil, nil)

	// The other writer: every 50ms, sets the scale back to 20 through the scale subresource.
	fightCtx, stopFight := context.WithCancel(context.Background())
	var fighterWrites atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for fightCtx.Err() == nil {
			s, err := cs.AppsV1().Deployments(ns).GetScale(fightCtx, "hpa", metav1.GetOptions{})
			if err == nil && s.Spec.Replicas != 20 {
				s.Spec.Replicas = 20
				if _, err := cs.AppsV1().Deployments(ns).UpdateScale(fightCtx, "hpa", s, metav1.UpdateOptions{FieldManager: "fake-hpa"}); err == nil {
					fighterWrites.Add(1)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	defer func() { stopFight(); wg.Wait() }()

	harness.Eventually(t, 15*time.Second, poll, "the scaler's outcome", func() error {
		if c := run.R.Counts(); c.Contests < 1 {
			return fmt.Errorf("not contested yet: %+v", c)
		}
		return nil
	})
	firstContest := time.Now()
	if c := run.R.Counts(); c.Corrections != 3 {
		t.Errorf("corrections before the first contest = %d, want 3 (the threshold)", c.Corrections)
	}
	if v, _ := metric(t, "replicapolicy_scaler_contested", map[string]string{"rule": rule, "kind": "Deployment"}); v != 1 {
		t.Errorf("contested{rule=%s} = %v, want 1", rule, v)
	}
	harness.Eventually(t, 5*time.Second, poll, "the scaler's outcome", func() error {
		evs := events(t, cs, ns, scaler.ReasonReplicasContested)["hpa"]
		if len(evs) == 0 || evs[0].Type != corev1.EventTypeWarning || !contains(evs[0].Note, rule, "another writer", "suspended for 2s") {
			return fmt.Errorf("ReplicasContested events %+v", evs)
		}
		return nil
	})

	// Keep fighting past the first back-off (2s): one probe, reverted, then 4s of back-off.
	time.Sleep(3500 * time.Millisecond)
	c := run.R.Counts()
	t.Logf("after %s of fighting: the other writer wrote %d times, the scaler corrected %d times, %d contests",
		time.Since(firstContest).Round(time.Millisecond), fighterWrites.Load(), c.Corrections, c.Contests)
	if c.Corrections != 4 || c.Contests != 2 {
		t.Errorf("counts = %+v, want 4 corrections (3, then one probe) and 2 contests", c)
	}

	// The other writer stops: after the back-off the probe sticks, and the gauge clears.
	stopFight()
	wg.Wait()
	waitReplicas(t, cs, ns, "hpa", 5, 10*time.Second)
	harness.Eventually(t, 5*time.Second, poll, "no contested series after the fight", func() error {
		return noSeries(t, "replicapolicy_scaler_contested", rule)
	})
}

// --scaler-max-corrections-per-second caps the writes: 30 violators at 10/s with a burst
// of 5 take at least 2.5s.
func testRateLimit(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	ns := newNamespace(t, cs, nil)
	const n = 30
	for i := range n {
		createDeployment(t, cs, ns, fmt.Sprintf("v-%02d", i), 20, nil)
	}
	store := newStore()
	applyPolicy(t, store, fmt.Sprintf("rules:\n- {name: cap-%s, namespaces: [%s], maxReplicas: 5}\n", suffix(), ns))
	opts := testOptions()
	opts.MaxCorrectionsPerSecond, opts.CorrectionBurst = 10, 5
	start := time.Now()
	run := startScaler(t, cfg, store, opts, nil, nil)
	harness.Eventually(t, 20*time.Second, poll, "the scaler's outcome", func() error {
		if c := run.R.Counts(); c.Corrections != n {
			return fmt.Errorf("%d of %d corrected", c.Corrections, n)
		}
		return nil
	})
	elapsed := time.Since(start)
	t.Logf("%d corrections at 10/s (burst 5) took %s", n, elapsed.Round(time.Millisecond))
	if min := time.Duration(float64(n-5) / 10 * float64(time.Second)); elapsed < min-100*time.Millisecond {
		t.Errorf("%d corrections took %s, faster than the cap allows (%s)", n, elapsed, min)
	}
	for i := range n {
		if d := getDeployment(t, cs, ns, fmt.Sprintf("v-%02d", i)); *d.Spec.Replicas != 5 {
			t.Errorf("%s has %d replicas", d.Name, *d.Spec.Replicas)
		}
	}
	if c := run.R.Counts(); c.ScaleWrites != n {
		t.Errorf("counts = %+v, want %d writes", c, n)
	}
}

// A full pass over more violators than the queue's bound queues them as the workers take
// them: the queue's depth stays near the bound (not every violator at once, as a pass did
// before), and every violator is still corrected.
func testPassPaced(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	ns := newNamespace(t, cs, nil)
	const n, bound = 60, 5
	for i := range n {
		createDeployment(t, cs, ns, fmt.Sprintf("p-%02d", i), 20, nil)
	}
	store := newStore()
	rule := "paced-" + suffix()
	applyPolicy(t, store, fmt.Sprintf("rules:\n- {name: %s, namespaces: [%s], maxReplicas: 50}\n", rule, ns))
	opts := testOptions()
	opts.MaxCorrectionsPerSecond, opts.CorrectionBurst = 30, 1
	run := startScaler(t, cfg, store, opts, func(r *scaler.Reconciler, _ manager.Manager) { scaler.SetPassQueueBound(r, bound) }, nil)
	waitPass(t, cs, run.R, 0)

	applyPolicy(t, store, fmt.Sprintf("rules:\n- {name: %s, namespaces: [%s], maxReplicas: 5}\n", rule, ns))
	depth := 0.0
	harness.Eventually(t, 20*time.Second, 10*time.Millisecond, "the scaler's outcome", func() error {
		if d, _ := metric(t, "workqueue_depth", map[string]string{"name": scaler.ControllerName}); d > depth {
			depth = d
		}
		if c := run.R.Counts(); c.Corrections != n {
			return fmt.Errorf("%d of %d corrected", c.Corrections, n)
		}
		return nil
	})
	t.Logf("%d violators, a pass bound of %d: the queue's depth reached %.0f", n, bound, depth)
	// The bound, plus the corrected workloads that their own update events bring back while
	// the workers wait for the corrections' rate limit (at most one a worker).
	if max := float64(bound + opts.MaxConcurrentReconciles); depth > max {
		t.Errorf("the queue's depth reached %.0f, want at most %.0f (the pass's bound %d and the workers' %d)", depth, max, bound, opts.MaxConcurrentReconciles)
	}
	for i := range n {
		if d := getDeployment(t, cs, ns, fmt.Sprintf("p-%02d", i)); *d.Spec.Replicas != 5 {
			t.Errorf("%s has %d replicas", d.Name, *d.Spec.Replicas)
		}
	}
}

// With two instances and leader election, only the leader writes; when it stops, the
// other takes over and corrects.
func testLeaderElection(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	ns := newNamespace(t, cs, nil)
	store := newStore()
	applyPolicy(t, store, fmt.Sprintf("rules:\n- {name: leader-%s, namespaces: [%s], maxReplicas: 5}\n", suffix(), ns))
	leaderElection := func(o *manager.Options) {
		o.LeaderElection = true
		o.LeaderElectionID = "replica-policy-leader"
		o.LeaderElectionNamespace = ns
		o.LeaderElectionReleaseOnCancel = true
		// Short, to keep the test quick; they must satisfy lease > renew > retry × 1.2.
		o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = ptr.To(3*time.Second), ptr.To(2*time.Second), ptr.To(500*time.Millisecond)
	}
	a := startScaler(t, cfg, store, testOptions(), nil, leaderElection)
	select {
	case <-a.Mgr.Elected():
	case <-time.After(20 * time.Second):
		t.Fatal("the first instance was not elected")
	}
	b := startScaler(t, cfg, store, testOptions(), nil, leaderElection)

	for i := range 5 {
		createDeployment(t, cs, ns, fmt.Sprintf("v-%d", i), 20, nil)
	}
	for i := range 5 {
		waitReplicas(t, cs, ns, fmt.Sprintf("v-%d", i), 5, 10*time.Second)
	}
	time.Sleep(time.Second)
	if ca, cb := a.R.Counts(), b.R.Counts(); ca.Corrections != 5 || cb.ScaleWrites != 0 || cb.Reconciles != 0 {
		t.Fatalf("leader %+v, follower %+v: want the leader to make all 5 corrections and the follower nothing", ca, cb)
	}
	select {
	case <-b.Mgr.Elected():
		t.Fatal("both instances are leaders")
	default:
	}
	lease, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), "replica-policy-leader", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Lease replica-policy-leader in %s: %v", ns, err)
	}
	t.Logf("Lease held by %s", ptr.Deref(lease.Spec.HolderIdentity, ""))

	a.stop()
	start := time.Now()
	select {
	case <-b.Mgr.Elected():
	case <-time.After(20 * time.Second):
		t.Fatal("the second instance did not take over")
	}
	t.Logf("second instance elected %s after the first stopped", time.Since(start).Round(time.Millisecond))
	createDeployment(t, cs, ns, "v-late", 30, nil)
	waitReplicas(t, cs, ns, "v-late", 5, 10*time.Second)
	// The write is stored before the reconciler counts it as a correction (its UPDATE has
	// to return first): wait for the count rather than read it at once.
	harness.Eventually(t, 5*time.Second, 20*time.Millisecond, "the second instance counts its correction", func() (bool, string) {
		ca, cb := a.R.Counts(), b.R.Counts()
		return ca.Corrections == 5 && cb.Corrections == 1, fmt.Sprintf("first %+v, second %+v; want 5 and 1 corrections", ca, cb)
	})
}

// A scale UPDATE refused by the API server (403 Forbidden: RBAC was changed; 500: the API
// server failed) is a failure: counted by reason, reported with a CorrectionFailed Event,
// and retried with back-off until it succeeds; nothing is lost.
func testAPIErrors(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments/scale"}
	for _, tc := range []struct {
		reason string
		err    error
	}{
		{"Forbidden", apierrors.NewForbidden(gr, "web", errors.New("RBAC changed under the scaler"))},
		{"InternalError", apierrors.NewInternalError(errors.New("etcd went away"))},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			ns := newNamespace(t, cs, nil)
			createDeployment(t, cs, ns, "web", 20, nil)
			store := newStore()
			applyPolicy(t, store, fmt.Sprintf("rules:\n- {name: apierr-%s, namespaces: [%s], maxReplicas: 5}\n", suffix(), ns))
			failures0, _ := metric(t, "replicapolicy_scaler_correction_failures_total", map[string]string{"reason": tc.reason})
			var calls atomic.Int32
			run := startScaler(t, cfg, store, testOptions(), func(r *scaler.Reconciler, mgr manager.Manager) {
				r.ScaleClient = &hookedScale{
					SubResourceClient: mgr.GetClient().SubResource("scale"),
					// The first two UPDATEs fail; the API answers the rest.
					failWrite: func() error {
						if calls.Add(1) <= 2 {
							return tc.err
						}
						return nil
					},
				}
			}, nil)
			waitReplicas(t, cs, ns, "web", 5, 20*time.Second)
			failures, _ := metric(t, "replicapolicy_scaler_correction_failures_total", map[string]string{"reason": tc.reason})
			if failures-failures0 != 2 {
				t.Errorf("replicapolicy_scaler_correction_failures_total{reason=%q} grew by %v, want 2", tc.reason, failures-failures0)
			}
			if c := run.R.Counts(); c.Failures != 2 || c.Corrections != 1 {
				t.Errorf("counts = %+v, want 2 failures then 1 correction", c)
			}
			harness.Eventually(t, 10*time.Second, poll, "the scaler's outcome", func() error {
				evs := events(t, cs, ns, scaler.ReasonCorrectionFailed)["web"]
				if len(evs) == 0 || !contains(evs[0].Note, "20 to 5", tc.err.Error()) {
					return fmt.Errorf("CorrectionFailed Events on web: %v", evs)
				}
				return nil
			})
		})
	}
}

// unsetReplicas leaves spec.replicas out of d, for the API server to default.
func unsetReplicas(d *appsv1.Deployment) *appsv1.Deployment {
	d.Spec.Replicas = nil
	return d
}

// A correction storm past the Event budget: of 16 violators in two namespaces, exactly the
// budget's 5 get a ReplicasCorrected Event of their own, and at the end of the pass each
// namespace gets one summary Event (on the Namespace, in it) that names the rule, how many
// of its workloads were corrected and how many of them have no Event of their own.
func testEventBudget(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	const budget, perNamespace = 5, 8
	namespaces := []string{newNamespace(t, cs, nil), newNamespace(t, cs, nil)}
	for _, ns := range namespaces {
		for i := range perNamespace {
			createDeployment(t, cs, ns, fmt.Sprintf("v-%d", i), 20, nil)
		}
	}
	rule := "budget-" + suffix()
	store := newStore()
	applyPolicy(t, store, fmt.Sprintf("rules:\n- {name: %s, namespaces: [%s, %s], maxReplicas: 5}\n", rule, namespaces[0], namespaces[1]))
	opts := testOptions()
	opts.EventBudget, opts.EventWindow = budget, 5*time.Second
	startScaler(t, cfg, store, opts, nil, nil)
	for _, ns := range namespaces {
		for i := range perNamespace {
			waitReplicas(t, cs, ns, fmt.Sprintf("v-%d", i), 5, 10*time.Second)
		}
	}

	// own[ns] are the workloads' own Events, summaries[ns] the Namespace's.
	read := func() (own map[string]int, summaries map[string][]eventsv1.Event) {
		own, summaries = map[string]int{}, map[string][]eventsv1.Event{}
		for _, ns := range namespaces {
			for _, evs := range events(t, cs, ns, scaler.ReasonReplicasCorrected) {
				for _, e := range evs {
					switch e.Regarding.Kind {
					case "Deployment":
						own[ns]++
					case "Namespace":
						summaries[ns] = append(summaries[ns], e)
					}
				}
			}
		}
		return own, summaries
	}
	harness.Eventually(t, 20*time.Second, poll, "the scaler's Events", func() error {
		own, summaries := read()
		if own[namespaces[0]]+own[namespaces[1]] != budget || len(summaries[namespaces[0]]) != 1 || len(summaries[namespaces[1]]) != 1 {
			return fmt.Errorf("own Events by namespace %v, summaries %v: want %d own Events in all and one summary per namespace", own, summaries, budget)
		}
		return nil
	})
	time.Sleep(time.Second) // anything more the pass recorded has landed
	own, summaries := read()
	if n := own[namespaces[0]] + own[namespaces[1]]; n != budget {
		t.Errorf("%d ReplicasCorrected Events on Deployments, want exactly the budget, %d", n, budget)
	}
	for _, ns := range namespaces {
		if len(summaries[ns]) != 1 {
			t.Errorf("namespace %s: %d summary Events, want 1", ns, len(summaries[ns]))
			continue
		}
		e := summaries[ns][0]
		want := fmt.Sprintf("replica policy rule %q: %d workloads in namespace %s had spec.replicas corrected within 5s; %d of them have no Event of their own", rule, perNamespace, ns, perNamespace-own[ns])
		if !contains(e.Note, want) || e.Regarding.Name != ns || e.Type != corev1.EventTypeNormal || e.ReportingController != scaler.ControllerName {
			t.Errorf("namespace %s: summary %q regarding %s/%s (%s), want a Normal Event regarding the Namespace saying %q", ns, e.Note, e.Regarding.Kind, e.Regarding.Name, e.Type, want)
		}
	}
}
