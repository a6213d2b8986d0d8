package scaler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/time/rate"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// The Reconcile branches, without a control plane: the cache is controller-runtime's fake
// client, the scale subresource and the Event recorder are recording fakes. Rule names
// start with "rt-" so that the process-wide metric series they touch are their own.

const policyHeader = "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\n"

// fixture is a Reconciler wired to fakes, as SetupWithManager would wire it to a manager.
type fixture struct {
	r      *Reconciler
	cache  client.WithWatch
	scale  *fakeScale
	events *fakeRecorder
	now    time.Time
}

type fixtureConfig struct {
	policy      string // the policy document without its header
	opts        Options
	objs        []client.Object // the cache's contents
	interceptor *interceptor.Funcs
	scale       *fakeScale // what the scale subresource serves; nil: an empty one
}

func newFixture(t *testing.T, c fixtureConfig) *fixture {
	t.Helper()
	if err := c.opts.Validate(); err != nil {
		t.Fatalf("options: %v", err)
	}
	store := policystore.NewStore(policy.Options{AlwaysExempt: []string{policy.DefaultNamespace}})
	if _, err := store.Apply(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: policy.DefaultNamespace, Name: policy.DefaultConfigMapName, ResourceVersion: "1"},
		Data:       map[string]string{policy.ConfigMapKey: policyHeader + c.policy},
	}); err != nil {
		t.Fatalf("policy: %v", err)
	}
	b := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(c.objs...)
	if c.interceptor != nil {
		b = b.WithInterceptorFuncs(*c.interceptor)
	}
	f := &fixture{cache: b.Build(), scale: c.scale, events: &fakeRecorder{}, now: time.Unix(1_700_000_000, 0)}
	if f.scale == nil {
		f.scale = &fakeScale{}
	}
	r := New(store, c.opts)
	r.ScaleClient = f.scale
	r.Recorder = f.events
	r.reader = f.cache
	// Not an informer cache: the workloads are read through the fake client and compacted.
	workloads, err := workload.NewCache(context.Background(), f.cache, r.Kinds)
	if err != nil {
		t.Fatal(err)
	}
	r.workloads = workloads
	r.limiter = rate.NewLimiter(rate.Inf, c.opts.CorrectionBurst)
	r.tracker = newTracker(c.opts)
	r.kinds = map[schema.GroupKind]workload.Kind{}
	for _, k := range workload.Kinds {
		r.kinds[k.GroupKind()] = k
	}
	r.now = func() time.Time { return f.now }
	f.r = r
	return f
}

func deploymentReq(ns, name string) Request {
	return Request{Kind: workload.Deployment.GroupKind(), NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
}

func recDeployment(ns, name string, replicas *int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec:       appsv1.DeploymentSpec{Replicas: replicas},
	}
}

func recNamespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// counterValue reads one series of a counter metric.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	m := &dto.Metric{}
	if err := c.Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// tracked reports whether the tracker holds state for req.
func (f *fixture) tracked(req Request) bool {
	f.r.tracker.mu.Lock()
	defer f.r.tracker.mu.Unlock()
	_, ok := f.r.tracker.items[req]
	return ok
}

// oobCount is the tracker's out-of-bounds count for {rule, action}.
func (f *fixture) oobCount(rule string, action policy.Action) int {
	f.r.tracker.mu.Lock()
	defer f.r.tracker.mu.Unlock()
	return f.r.tracker.oob[[2]string{rule, string(action)}]
}

// wantOutOfBounds checks the tracker's out-of-bounds count for {rule, action}.
func (f *fixture) wantOutOfBounds(t *testing.T, rule string, action policy.Action, want int) {
	t.Helper()
	if n := f.oobCount(rule, action); n != want {
		t.Errorf("out of bounds {%s, %s} = %d, want %d", rule, action, n, want)
	}
}

func (f *fixture) contestedCount(rule, kind string) int {
	f.r.tracker.mu.Lock()
	defer f.r.tracker.mu.Unlock()
	return f.r.tracker.contested[[2]string{rule, kind}]
}

const (
	recNS   = "prod"
	recName = "web"
)

var webReq = deploymentReq(recNS, recName)

// updateCall is the scaler's conditional write of kind's scale: an UPDATE carrying the
// resourceVersion the cache saw (cachedRV) and want.
func updateCall(kind string, want int32) scaleCall {
	return scaleCall{Verb: "update", Kind: kind, Namespace: recNS, Name: recName, ResourceVersion: cachedRV, Replicas: want, FieldOwner: "replica-policy-scaler"}
}

// leftMoved checks a reconcile whose conditional write was refused with 409 Conflict: the
// scale still holds what the API holds (api), one write counted as moved, nothing else.
func leftMoved(api int32) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		if f.scale.replicas != api {
			t.Errorf("scale replicas = %d, want %d: written from a value the cache never saw", f.scale.replicas, api)
		}
		if c := f.r.Counts(); c != (Counts{Reconciles: 1, ScaleWrites: 1, Moved: 1}) {
			t.Errorf("counts = %+v, want 1 write found moved and nothing else", c)
		}
	}
}

// forgets checks that the tracker holds nothing of webReq any more, neither the workload
// nor rule's out-of-bounds count; what names the workload in the failure.
func forgets(rule, what string) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		if f.tracked(webReq) || f.oobCount(rule, policy.ActionClamp) != 0 {
			t.Errorf("tracker still holds the %s (out of bounds %d)", what, f.oobCount(rule, policy.ActionClamp))
		}
	}
}

// trackedOutOfBounds is a setup in which the tracker already counts webReq out of bounds of
// rule's clamp, from an earlier reconcile.
func trackedOutOfBounds(rule string) func(f *fixture) {
	return func(f *fixture) { f.r.tracker.outOfBounds(webReq, [2]string{rule, "clamp"}, "") }
}

// countedOutOfBounds checks that the tracker counts one workload out of bounds of {rule, action}.
func countedOutOfBounds(rule string, action policy.Action) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) { f.wantOutOfBounds(t, rule, action, 1) }
}

func TestReconcile(t *testing.T) {
	defaults := DefaultOptions()
	clampPolicy := func(rule string) string {
		return fmt.Sprintf("rules:\n- {name: %s, namespaces: [%s], maxReplicas: 10}\n", rule, recNS)
	}
	nsSelPolicy := "rules:\n- name: rt-nssel\n  namespaceSelector: {matchLabels: {env: production}}\n  maxReplicas: 10\n"
	web50 := recDeployment(recNS, recName, ptr.To[int32](50))

	type row struct {
		name        string
		policy      string
		opts        func(*Options)
		objs        []client.Object
		interceptor *interceptor.Funcs
		scale       *fakeScale
		req         Request // webReq when zero
		runs        int     // reconciles of req, 1 when zero
		setup       func(f *fixture)

		// Every run returns wantResult and an error for which wantErr holds (nil: no error).
		wantResult reconcile.Result
		wantErr    func(error) bool
		wantCalls  []scaleCall     // the scale subresource requests, in order, over all runs
		wantEvents []recordedEvent // the Events, in order, over all runs
		check      func(t *testing.T, f *fixture)
	}
	corrected := func(from, to int32, rule, bounds string) recordedEvent {
		return recordedEvent{Regarding: recNS + "/" + recName, Type: corev1.EventTypeNormal, Reason: ReasonReplicasCorrected, Action: "Scale",
			Note: fmt.Sprintf("spec.replicas %d → %d by replica policy rule %q (bounds %s)", from, to, rule, bounds)}
	}
	// reported is the Event of a workload out of bounds that the scaler does not correct.
	reported := func(note string) []recordedEvent {
		return []recordedEvent{{Regarding: recNS + "/" + recName, Type: corev1.EventTypeWarning, Reason: ReasonReplicasOutOfBounds, Action: "Report", Note: note}}
	}
	rows := []row{
		{
			name:   "exempt namespace: nothing written, no Event, the tracker forgets",
			policy: fmt.Sprintf("exemptNamespaces: [%s]\ndefault: {maxReplicas: 10}\n", recNS),
			objs:   []client.Object{web50},
			setup:  trackedOutOfBounds("rt-exempt"), // from before the namespace was exempt
			check:  forgets("rt-exempt", "exempt workload"),
		},
		{
			name:   "unknown: namespaceSelector rule, Namespace not in the cache: nothing written, no Event, no error",
			policy: nsSelPolicy,
			objs:   []client.Object{web50},
			check: func(t *testing.T, f *fixture) {
				if f.tracked(webReq) {
					t.Error("tracker holds state for a workload that could not be evaluated")
				}
			},
		},
		{
			name:       "namespaceSelector rule, Namespace in the cache and matching: corrected",
			policy:     nsSelPolicy,
			objs:       []client.Object{web50, recNamespace(recNS, map[string]string{"env": "production"})},
			scale:      &fakeScale{replicas: 50},
			wantCalls:  []scaleCall{updateCall("Deployment", 10)},
			wantEvents: []recordedEvent{corrected(50, 10, "rt-nssel", "[0, 10]")},
		},
		{
			name:   "namespaceSelector rule, Namespace in the cache and not matching: no rule, nothing written",
			policy: nsSelPolicy,
			objs:   []client.Object{web50, recNamespace(recNS, map[string]string{"env": "staging"})},
		},
		{
			name:   "namespaceSelector rule, the Namespace read fails: the error is returned",
			policy: nsSelPolicy,
			objs:   []client.Object{web50},
			interceptor: &interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.Namespace); ok {
					return errors.New("cache unavailable")
				}
				return c.Get(ctx, key, obj, opts...)
			}},
			wantErr: func(err error) bool { return err != nil && err.Error() == "cache unavailable" },
		},
		{
			name:       "report, deny rule: one ReplicasOutOfBounds Event for two reconciles, nothing written",
			policy:     fmt.Sprintf("rules:\n- {name: rt-deny, namespaces: [%s], maxReplicas: 10, action: deny}\n", recNS),
			objs:       []client.Object{web50},
			runs:       2,
			wantEvents: reported(`spec.replicas 50 is outside the bounds [0, 10] of replica policy rule "rt-deny" (action deny); the scaler does not change it`),
			check:      countedOutOfBounds("rt-deny", policy.ActionDeny),
		},
		{
			name:       "report, warn rule: one Event per value, a new value is reported again",
			policy:     fmt.Sprintf("rules:\n- {name: rt-warn, namespaces: [%s], minReplicas: 2, maxReplicas: 10, action: warn}\n", recNS),
			objs:       []client.Object{web50},
			runs:       2,
			wantEvents: reported(`spec.replicas 50 is outside the bounds [2, 10] of replica policy rule "rt-warn" (action warn); the scaler does not change it`),
			check: func(t *testing.T, f *fixture) {
				f.wantOutOfBounds(t, "rt-warn", policy.ActionWarn, 1)
				// The workload moves to another out-of-bounds value: a second Event.
				d := &appsv1.Deployment{}
				if err := f.cache.Get(context.Background(), webReq.NamespacedName, d); err != nil {
					t.Fatal(err)
				}
				d.Spec.Replicas = nil // the API's default, 1
				if err := f.cache.Update(context.Background(), d); err != nil {
					t.Fatal(err)
				}
				if _, err := f.r.Reconcile(context.Background(), webReq); err != nil {
					t.Fatal(err)
				}
				ev := f.events.recorded()
				if len(ev) != 2 || ev[1].Note != `spec.replicas 1 is outside the bounds [2, 10] of replica policy rule "rt-warn" (action warn); the scaler does not change it` {
					t.Errorf("after the value changed, Events = %+v, want a second one for replicas 1", ev)
				}
				if calls := f.scale.recorded(); len(calls) != 0 {
					t.Errorf("scale requests for a warn rule: %+v", calls)
				}
			},
		},
		{
			name:       "dry run, clamp rule: one Event saying what would be set, nothing written",
			policy:     clampPolicy("rt-dry-run"),
			opts:       func(o *Options) { o.DryRun = true },
			objs:       []client.Object{web50},
			scale:      &fakeScale{replicas: 50},
			runs:       2,
			wantEvents: reported(`dry run: spec.replicas would be set 50 → 10 by replica policy rule "rt-dry-run" (bounds [0, 10])`),
			check: func(t *testing.T, f *fixture) {
				f.wantOutOfBounds(t, "rt-dry-run", policy.ActionClamp, 1)
				if c := f.r.Counts(); c.Corrections != 0 || c.ScaleWrites != 0 {
					t.Errorf("counts = %+v, want no corrections or writes", c)
				}
			},
		},
		{
			name:   "contested: threshold reached, one ReplicasContested Event, requeued after the back-off, nothing written",
			policy: clampPolicy("rt-contested"),
			objs:   []client.Object{web50},
			scale:  &fakeScale{replicas: 50},
			runs:   2, // the second, during the back-off, waits for the rest of it and records nothing
			setup: func(f *fixture) {
				for i := range defaults.ContestThreshold {
					f.r.tracker.corrected(webReq, f.now.Add(time.Duration(i-defaults.ContestThreshold)*time.Second))
				}
			},
			wantResult: reconcile.Result{RequeueAfter: defaults.ContestBackoff},
			wantEvents: []recordedEvent{{Regarding: "prod/web", Type: corev1.EventTypeWarning, Reason: ReasonReplicasContested, Action: "BackOff",
				Note: `spec.replicas keeps being set outside the bounds [0, 10] of replica policy rule "rt-contested": another writer (an HPA, a GitOps tool) set it back after 3 corrections; corrections suspended for 5m0s`}},
			check: func(t *testing.T, f *fixture) {
				if c := f.r.Counts(); c.Contests != 1 || c.ScaleWrites != 0 {
					t.Errorf("counts = %+v, want 1 contest and no scale write", c)
				}
				if n := f.contestedCount("rt-contested", "Deployment"); n != 1 {
					t.Errorf("contested {rt-contested, Deployment} = %d, want 1", n)
				}
			},
		},
		{
			name: "not found in the cache: no error, the tracker forgets",
			// The Deployment is absent from the cache.
			policy: clampPolicy("rt-gone"),
			setup:  trackedOutOfBounds("rt-gone"),
			check:  forgets("rt-gone", "deleted workload"),
		},
		{
			name:   "being deleted: nothing written, the tracker forgets",
			policy: clampPolicy("rt-deleting"),
			objs: []client.Object{func() client.Object {
				d := recDeployment(recNS, recName, ptr.To[int32](50))
				d.DeletionTimestamp = &metav1.Time{Time: time.Unix(1_700_000_000, 0)}
				d.Finalizers = []string{"example.com/hold"}
				return d
			}()},
			setup: trackedOutOfBounds("rt-deleting"),
			check: forgets("rt-deleting", "workload being deleted"),
		},
		{
			name:      "not found from the scale UPDATE during a correction: no error, no Event, the tracker forgets",
			policy:    clampPolicy("rt-deleted-meanwhile"),
			objs:      []client.Object{web50},
			scale:     &fakeScale{updateErrs: []error{apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, recName)}},
			wantCalls: []scaleCall{updateCall("Deployment", 10)},
			check: func(t *testing.T, f *fixture) {
				forgets("rt-deleted-meanwhile", "workload deleted during its correction")(t, f)
				if c := f.r.Counts(); c.Failures != 0 {
					t.Errorf("counts = %+v, NotFound counted as a failure", c)
				}
			},
		},
		{
			name:       "correction: one scale UPDATE, carrying the cached resourceVersion and the nearest bound, ReplicasCorrected Event",
			policy:     clampPolicy("rt-clamp"),
			objs:       []client.Object{web50},
			scale:      &fakeScale{replicas: 50},
			wantCalls:  []scaleCall{updateCall("Deployment", 10)},
			wantEvents: []recordedEvent{corrected(50, 10, "rt-clamp", "[0, 10]")},
			check: func(t *testing.T, f *fixture) {
				if f.scale.replicas != 10 {
					t.Errorf("scale replicas = %d, want 10", f.scale.replicas)
				}
				if c := f.r.Counts(); c != (Counts{Reconciles: 1, ScaleWrites: 1, Corrections: 1}) {
					t.Errorf("counts = %+v", c)
				}
				f.r.tracker.mu.Lock()
				s := f.r.tracker.items[webReq]
				f.r.tracker.mu.Unlock()
				if s == nil || len(s.corrections) != 1 || !s.corrections[0].Equal(f.now) {
					t.Errorf("tracker state = %+v, want one correction at now", s)
				}
			},
		},
		{
			name:       "correction up to the minimum, replicas unset in the cache (the policy's default 1)",
			policy:     fmt.Sprintf("rules:\n- {name: rt-min, namespaces: [%s], minReplicas: 3}\n", recNS),
			objs:       []client.Object{recDeployment(recNS, recName, nil)},
			scale:      &fakeScale{replicas: 0},
			wantCalls:  []scaleCall{updateCall("Deployment", 3)},
			wantEvents: []recordedEvent{corrected(1, 3, "rt-min", "[3, ∞)")},
		},
		{
			name:       "moved since the cache saw it, or the cache is behind (the API holds 2): 409 Conflict, nothing written, no Event, no failure, evaluated again",
			policy:     clampPolicy("rt-moved"),
			objs:       []client.Object{web50},
			scale:      &fakeScale{replicas: 2, resourceVersion: "1000"},
			wantResult: reconcile.Result{RequeueAfter: movedRequeue},
			wantCalls:  []scaleCall{updateCall("Deployment", 10)},
			check:      leftMoved(2),
		},
		{
			name:       "changed since the cache saw it, replicas the same (a label, a status update): 409 Conflict, nothing written, evaluated again",
			policy:     clampPolicy("rt-relabelled"),
			objs:       []client.Object{web50},
			scale:      &fakeScale{replicas: 50, resourceVersion: "1000"},
			wantResult: reconcile.Result{RequeueAfter: movedRequeue},
			wantCalls:  []scaleCall{updateCall("Deployment", 10)},
			check:      leftMoved(50),
		},
		{
			name:       "replicas 0 in the cache (absent from the Scale's JSON): corrected",
			policy:     fmt.Sprintf("rules:\n- {name: rt-zero, namespaces: [%s], minReplicas: 2}\n", recNS),
			objs:       []client.Object{recDeployment(recNS, recName, ptr.To[int32](0))},
			scale:      &fakeScale{replicas: 0},
			wantCalls:  []scaleCall{updateCall("Deployment", 2)},
			wantEvents: []recordedEvent{corrected(0, 2, "rt-zero", "[2, ∞)")},
		},
		{
			name:       "replicas 0 in the cache, 1 in the API: moved, not raised",
			policy:     fmt.Sprintf("rules:\n- {name: rt-zero-moved, namespaces: [%s], minReplicas: 2}\n", recNS),
			objs:       []client.Object{recDeployment(recNS, recName, ptr.To[int32](0))},
			scale:      &fakeScale{replicas: 1, resourceVersion: "1000"},
			wantResult: reconcile.Result{RequeueAfter: movedRequeue},
			wantCalls:  []scaleCall{updateCall("Deployment", 2)},
			check:      leftMoved(1),
		},
		{
			name:   "another error (422, a validation error) is a failure, not a move",
			policy: clampPolicy("rt-invalid"),
			objs:   []client.Object{web50},
			scale: &fakeScale{replicas: 50, updateErrs: []error{apierrors.NewInvalid(schema.GroupKind{Group: "autoscaling", Kind: "Scale"}, recName,
				field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), 10, "no")})}},
			wantErr:   apierrors.IsInvalid,
			wantCalls: []scaleCall{updateCall("Deployment", 10)},
			wantEvents: []recordedEvent{{Regarding: "prod/web", Type: corev1.EventTypeWarning, Reason: ReasonCorrectionFailed, Action: "Scale",
				Note: `could not set spec.replicas 50 to 10 for replica policy rule "rt-invalid": Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: 10: no`}},
			check: func(t *testing.T, f *fixture) {
				if c := f.r.Counts(); c.Failures != 1 || c.Moved != 0 {
					t.Errorf("counts = %+v, want 1 failure", c)
				}
			},
		},
		{
			name:   "correction fails: CorrectionFailed Event, error returned, counted",
			policy: clampPolicy("rt-forbidden"),
			objs:   []client.Object{web50},
			scale:  &fakeScale{replicas: 50, updateErrs: []error{apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, recName, errors.New("no"))}},
			wantErr: func(err error) bool {
				return apierrors.IsForbidden(err) && !errors.Is(err, reconcile.TerminalError(nil))
			},
			wantCalls: []scaleCall{updateCall("Deployment", 10)},
			wantEvents: []recordedEvent{{Regarding: "prod/web", Type: corev1.EventTypeWarning, Reason: ReasonCorrectionFailed, Action: "Scale",
				Note: `could not set spec.replicas 50 to 10 for replica policy rule "rt-forbidden": deployments.apps "web" is forbidden: no`}},
			check: func(t *testing.T, f *fixture) {
				if c := f.r.Counts(); c.Failures != 1 || c.Corrections != 0 {
					t.Errorf("counts = %+v, want 1 failure and no correction", c)
				}
			},
		},
		{
			name:   "in bounds: nothing written, no Event, the tracker drops the workload",
			policy: clampPolicy("rt-in-bounds"),
			objs:   []client.Object{recDeployment(recNS, recName, ptr.To[int32](5))},
			setup:  trackedOutOfBounds("rt-in-bounds"),
			check:  forgets("rt-in-bounds", "compliant workload"),
		},
		{
			name:   "no rule matches: nothing written, no Event",
			policy: "rules:\n- {name: rt-elsewhere, namespaces: [staging], maxReplicas: 10}\n",
			objs:   []client.Object{web50},
		},
		{
			name:   "owned: a ReplicaSet whose controller is a Deployment stays at 0 under a ReplicaSet minimum, nothing written",
			policy: fmt.Sprintf("rules:\n- {name: rt-owned, namespaces: [%s], kinds: [ReplicaSet], minReplicas: 2}\n", recNS),
			objs: []client.Object{&appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Namespace: recNS, Name: "web-1", OwnerReferences: []metav1.OwnerReference{
					{APIVersion: "apps/v1", Kind: "Deployment", Name: recName, UID: "d1", Controller: ptr.To(true)}}},
				Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0)},
			}},
			req: Request{Kind: workload.ReplicaSet.GroupKind(), NamespacedName: types.NamespacedName{Namespace: recNS, Name: "web-1"}},
			setup: func(f *fixture) {
				f.r.tracker.outOfBounds(Request{Kind: workload.ReplicaSet.GroupKind(), NamespacedName: types.NamespacedName{Namespace: recNS, Name: "web-1"}}, [2]string{"rt-owned", "clamp"}, "")
			},
			check: func(t *testing.T, f *fixture) {
				if f.oobCount("rt-owned", policy.ActionClamp) != 0 {
					t.Error("tracker still counts the owned ReplicaSet out of bounds")
				}
			},
		},
		{
			name:   "a ReplicaSet of its own (a non-controller owner) is bounded: corrected through replicasets/scale",
			policy: fmt.Sprintf("rules:\n- {name: rt-rs, namespaces: [%s], kinds: [ReplicaSet], minReplicas: 2}\n", recNS),
			objs: []client.Object{&appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Namespace: recNS, Name: recName, OwnerReferences: []metav1.OwnerReference{
					{APIVersion: "apps/v1", Kind: "Deployment", Name: "other", UID: "d2"}}},
				Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0)},
			}},
			req:        Request{Kind: workload.ReplicaSet.GroupKind(), NamespacedName: webReq.NamespacedName},
			scale:      &fakeScale{replicas: 0},
			wantCalls:  []scaleCall{updateCall("ReplicaSet", 2)},
			wantEvents: []recordedEvent{corrected(0, 2, "rt-rs", "[2, ∞)")},
		},
		{
			name:   "StatefulSet: corrected through statefulsets/scale, counted under its kind",
			policy: fmt.Sprintf("rules:\n- {name: rt-sts, namespaces: [%s], kinds: [StatefulSet], minReplicas: 3, maxReplicas: 7}\n- {name: rt-not-sts, maxReplicas: 100}\n", recNS),
			objs: []client.Object{&appsv1.StatefulSet{
				ObjectMeta: metav1.ObjectMeta{Namespace: recNS, Name: recName, Labels: map[string]string{"app": "db"}},
				Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To[int32](12)},
			}},
			req:        Request{Kind: workload.StatefulSet.GroupKind(), NamespacedName: webReq.NamespacedName},
			scale:      &fakeScale{replicas: 12},
			wantCalls:  []scaleCall{updateCall("StatefulSet", 7)},
			wantEvents: []recordedEvent{corrected(12, 7, "rt-sts", "[3, 7]")},
			check: func(t *testing.T, f *fixture) {
				if v := counterValue(t, correctionsTotal.WithLabelValues("rt-sts", "StatefulSet")); v != 1 {
					t.Errorf("corrections{rule=rt-sts,kind=StatefulSet} = %v, want 1", v)
				}
			},
		},
		{
			name:   "kinds: a StatefulSet rule does not bound a Deployment",
			policy: fmt.Sprintf("rules:\n- {name: rt-sts-only, namespaces: [%s], kinds: [StatefulSet], maxReplicas: 10}\n", recNS),
			objs:   []client.Object{web50},
		},
		{
			name:    "not a workload kind: terminal error",
			policy:  clampPolicy("rt-kind"),
			req:     Request{Kind: schema.GroupKind{Group: "apps", Kind: "DaemonSet"}, NamespacedName: webReq.NamespacedName},
			wantErr: func(err error) bool { return errors.Is(err, reconcile.TerminalError(nil)) },
		},
	}

	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultOptions()
			if tc.opts != nil {
				tc.opts(&opts)
			}
			f := newFixture(t, fixtureConfig{policy: tc.policy, opts: opts, objs: tc.objs, interceptor: tc.interceptor, scale: tc.scale})
			if tc.setup != nil {
				tc.setup(f)
			}
			req := tc.req
			if req == (Request{}) {
				req = webReq
			}
			runs := max(tc.runs, 1)
			for i := range runs {
				res, err := f.r.Reconcile(context.Background(), req)
				if tc.wantErr == nil && err != nil {
					t.Errorf("run %d: Reconcile error = %v, want none", i+1, err)
				}
				if tc.wantErr != nil && !tc.wantErr(err) {
					t.Errorf("run %d: Reconcile error = %v, not the one wanted", i+1, err)
				}
				if res != tc.wantResult {
					t.Errorf("run %d: Reconcile result = %+v, want %+v", i+1, res, tc.wantResult)
				}
			}
			if got := f.scale.recorded(); !slices.Equal(got, tc.wantCalls) {
				t.Errorf("scale requests:\n got  %+v\n want %+v", got, tc.wantCalls)
			}
			if got := f.events.recorded(); !slices.Equal(got, tc.wantEvents) {
				t.Errorf("Events:\n got  %+v\n want %+v", got, tc.wantEvents)
			}
			if got := f.r.Counts().Reconciles; got != int64(runs) {
				t.Errorf("Counts().Reconciles = %d, want %d", got, runs)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

// TestReconcileMetrics checks the process-wide counters of the branches that count, as
// differences, so that other tests in the process do not matter.
func TestReconcileMetrics(t *testing.T) {
	web50 := recDeployment(recNS, recName, ptr.To[int32](50))
	policyFor := func(rule string) string {
		return fmt.Sprintf("rules:\n- {name: %s, namespaces: [%s], maxReplicas: 10}\n", rule, recNS)
	}

	t.Run("correction", func(t *testing.T) {
		before, writes := counterValue(t, correctionsTotal.WithLabelValues("rt-m-clamp", "Deployment")), counterValue(t, scaleWritesTotal)
		f := newFixture(t, fixtureConfig{policy: policyFor("rt-m-clamp"), opts: DefaultOptions(), objs: []client.Object{web50}, scale: &fakeScale{replicas: 50}})
		if _, err := f.r.Reconcile(context.Background(), webReq); err != nil {
			t.Fatal(err)
		}
		if d := counterValue(t, correctionsTotal.WithLabelValues("rt-m-clamp", "Deployment")) - before; d != 1 {
			t.Errorf("corrections_total grew by %v, want 1", d)
		}
		if d := counterValue(t, scaleWritesTotal) - writes; d != 1 {
			t.Errorf("scale_writes_total grew by %v, want 1", d)
		}
	})

	t.Run("dry run counts once per value", func(t *testing.T) {
		before := counterValue(t, dryRunWouldCorrectTotal.WithLabelValues("rt-m-dry-run", "Deployment"))
		opts := DefaultOptions()
		opts.DryRun = true
		f := newFixture(t, fixtureConfig{policy: policyFor("rt-m-dry-run"), opts: opts, objs: []client.Object{web50}})
		for range 3 {
			if _, err := f.r.Reconcile(context.Background(), webReq); err != nil {
				t.Fatal(err)
			}
		}
		if d := counterValue(t, dryRunWouldCorrectTotal.WithLabelValues("rt-m-dry-run", "Deployment")) - before; d != 1 {
			t.Errorf("dry_run_would_correct_total grew by %v, want 1", d)
		}
	})

	t.Run("contest", func(t *testing.T) {
		before := counterValue(t, contestsTotal.WithLabelValues("rt-m-contested", "Deployment"))
		opts := DefaultOptions()
		opts.ContestThreshold = 1
		f := newFixture(t, fixtureConfig{policy: policyFor("rt-m-contested"), opts: opts, objs: []client.Object{web50}, scale: &fakeScale{replicas: 50}})
		f.r.tracker.corrected(webReq, f.now.Add(-time.Second))
		res, err := f.r.Reconcile(context.Background(), webReq)
		if err != nil || res.RequeueAfter != opts.ContestBackoff {
			t.Fatalf("Reconcile = %+v, %v; want RequeueAfter %s", res, err, opts.ContestBackoff)
		}
		if d := counterValue(t, contestsTotal.WithLabelValues("rt-m-contested", "Deployment")) - before; d != 1 {
			t.Errorf("contests_total grew by %v, want 1", d)
		}
		// After the back-off, one probe correction is allowed.
		f.now = f.now.Add(opts.ContestBackoff)
		if res, err := f.r.Reconcile(context.Background(), webReq); err != nil || res != (reconcile.Result{}) {
			t.Fatalf("probe Reconcile = %+v, %v", res, err)
		}
		if c := f.r.Counts(); c.Corrections != 1 || c.Contests != 1 {
			t.Errorf("counts after the probe = %+v, want 1 correction and 1 contest", c)
		}
	})

	t.Run("failure by reason", func(t *testing.T) {
		before := counterValue(t, correctionFailuresTotal.WithLabelValues("Forbidden"))
		f := newFixture(t, fixtureConfig{policy: policyFor("rt-m-forbidden"), opts: DefaultOptions(), objs: []client.Object{web50},
			scale: &fakeScale{replicas: 50, updateErrs: []error{apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, recName, errors.New("no"))}}})
		if _, err := f.r.Reconcile(context.Background(), webReq); err == nil {
			t.Fatal("Reconcile succeeded, want the Forbidden error")
		}
		if d := counterValue(t, correctionFailuresTotal.WithLabelValues("Forbidden")) - before; d != 1 {
			t.Errorf("correction_failures_total{reason=Forbidden} grew by %v, want 1", d)
		}
	})
}
