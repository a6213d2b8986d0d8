package native_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

var hpaResource = schema.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}

// TestCompileAgreesWithWebhookOnAutoscalers is TestCompileAgreesWithWebhook for
// HorizontalPodAutoscalers and KEDA ScaledObjects (KEDA's own CRD), on one kube-apiserver:
// each generated policy's autoscaler policies (Compile with Options.Autoscalers, what
// `compile --autoscalers` prints), on the native side;
// the webhook's /mutate (its entry hpa.replicapolicy.io, with the keda component's rule for
// ScaledObjects) on the webhook side. Creates, range-changing updates and updates that
// change neither range nor target must give the same allow or deny, the same stored range
// and idle size, the same denial text and the same warnings, but for the webhook's clamp
// warnings, which a MutatingAdmissionPolicy cannot return. Autoscalers the native policies
// leave to the webhook (a ReplicaSet target, a rule with a selector) must pass the native
// side untouched.
func TestCompileAgreesWithWebhookOnAutoscalers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver")
	}
	start := time.Now()
	const policies = 12
	dir := t.TempDir()
	crd, err := harness.KEDAScaledObjectCRD()
	if err != nil {
		t.Fatal(err)
	}
	cp := harness.StartControlPlane(t, harness.ControlPlaneOptions{WebhookPaths: []string{testWebhookConfiguration(t, dir)}, CRDPaths: []string{crd}})
	ctx := context.Background()
	phase := &phaseWebhook{}
	startTestWebhook(t, cp, phase)
	cs, warns, err := harness.WarningClient(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(cp.Config)
	cfg.WarningHandler = warns
	dyn := dynamic.NewForConfigOrDie(cfg)
	rng := rand.New(rand.NewPCG(26, 2037))

	cases := randomCases(rng, policies, func(rng *rand.Rand) []autoscalerRequest { return randomAutoscalerRequests(rng, 60) })
	setUpBothSides(t, ctx, cs, phase, cases, func(prefix string, r autoscalerRequest) error {
		if r.op == opCreate {
			return nil
		}
		_, err := r.client(dyn, prefix).Create(ctx, r.object(r.base), metav1.CreateOptions{})
		return err
	})
	snaps := map[int]*policy.Snapshot{}
	for _, pc := range cases {
		prefix := fmt.Sprintf("n%d-", pc.k)
		snap, res := compileNative(t, pc.pol, prefix, pc.k, native.Options{Autoscalers: true})
		applyCompiled(t, ctx, cs, append(res.Objects(), res.AutoscalerObjects()...), prefix)
		snaps[pc.k] = snap
	}
	// In force once a dry-run create the policy acts on is acted on.
	installed := time.Now()
	for _, pc := range cases {
		prefix := fmt.Sprintf("n%d-", pc.k)
		for _, r := range pc.reqs {
			if r.op != opCreate || !r.native(snaps[pc.k], prefix, pc.nsLabels) || r.effect(snaps[pc.k], prefix, pc.nsLabels) == policy.Allow {
				continue
			}
			harness.Eventually(t, 30*time.Second, 100*time.Millisecond, fmt.Sprintf("policy %d's autoscaler policies in force", pc.k), func() bool {
				got, err := r.client(dyn, prefix).Create(ctx, r.object(r.spec), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				return err != nil || len(warns.Take()) > 0 || rangeOf(got) != rangeOf(r.object(r.spec))
			})
			break
		}
	}
	t.Logf("autoscaler policies of %d policies in force %v after they were created", policies, time.Since(installed).Round(time.Millisecond))

	counts := map[string]int{}
	for _, pc := range cases {
		wprefix, nprefix := fmt.Sprintf("w%d-", pc.k), fmt.Sprintf("n%d-", pc.k)
		phase.set(t, prefixedPolicy(pc.pol, wprefix), wprefix+"sys", cs)
		for _, r := range pc.reqs {
			ctxName := fmt.Sprintf("policy %d, %s", pc.k, r)
			warns.Take()
			w := r.do(ctx, dyn, wprefix)
			w.warnings = warns.Take()
			n := r.do(ctx, dyn, nprefix)
			n.warnings = warns.Take()
			wo, no := w.normalize(false), n.normalize(true)
			if !r.native(snaps[pc.k], nprefix, pc.nsLabels) {
				counts["left to the webhook"]++
				// The API server's own validation (an invalid range) refuses it on both sides.
				if strings.Contains(no.err, "replica policy") || len(no.warnings) > 0 || no.err == "" && no.stored != rangeOf(r.requested()) {
					t.Errorf("%s: the native policies decided an autoscaler they leave to the webhook: %+v", ctxName, no)
				}
				continue
			}
			counts[r.effect(snaps[pc.k], nprefix, pc.nsLabels).String()]++
			if wo.err != no.err || wo.code != no.code {
				t.Errorf("%s: webhook error %d %q, native error %d %q", ctxName, wo.code, wo.err, no.code, no.err)
			}
			if wo.err == "" && wo.stored != no.stored {
				t.Errorf("%s: webhook stores %s, native %s (webhook warnings %q)", ctxName, wo.stored, no.stored, w.warnings)
			}
			if !slices.Equal(wo.warnings, no.warnings) {
				t.Errorf("%s: webhook warnings %q, native %q", ctxName, wo.warnings, no.warnings)
			}
		}
	}
	t.Logf("%d policies × %d autoscaler requests: %v; %v in all", policies, len(cases[0].reqs), counts, time.Since(start).Round(time.Second))
	for _, k := range []policy.EffectKind{policy.Patch, policy.Deny, policy.Warn, policy.Allow} {
		if counts[k.String()] < 5 {
			t.Errorf("only %d requests of effect %q: the generator does not cover them", counts[k.String()], k)
		}
	}
	if counts["left to the webhook"] < 5 {
		t.Errorf("only %d requests left to the webhook", counts["left to the webhook"])
	}
}

// autoscalerRequest is one write of an HPA or a ScaledObject, made alike on both sides.
type autoscalerRequest struct {
	op         equivOp // opCreate, opUpdate (the range changes), opUpdateLabels (neither range nor target)
	so         bool
	ns, name   string
	spec, base autoscalerSpec
}

// autoscalerSpec is what a request sets of the autoscaler.
type autoscalerSpec struct {
	apiVersion, kind, target string // scaleTargetRef; kind "" for a ScaledObject: KEDA's default
	min, max, idle           *int32
	controlled               bool // a controller ownerReference
}

func (r autoscalerRequest) String() string {
	kind := "HPA"
	if r.so {
		kind = "ScaledObject"
	}
	s := fmt.Sprintf("%s %s %s/%s %s", r.op, kind, r.ns, r.name, r.spec)
	if r.op != opCreate {
		s += fmt.Sprintf(" (from %s)", r.base)
	}
	return s
}

func (s autoscalerSpec) String() string {
	v := func(p *int32) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("target %s %s/%s range [%s, %s] idle %s controlled %v", s.apiVersion, s.kind, s.target, v(s.min), v(s.max), v(s.idle), s.controlled)
}

func randomAutoscalerRequests(rng *rand.Rand, n int) []autoscalerRequest {
	i32 := func(xs ...int32) *int32 {
		i := rng.IntN(len(xs) + 1)
		if i == len(xs) {
			return nil
		}
		return &xs[i]
	}
	spec := func(so bool) autoscalerSpec {
		s := autoscalerSpec{apiVersion: "apps/v1", kind: harness.Pick(rng, "Deployment", "Deployment", "StatefulSet", "ReplicaSet"), target: "t"}
		if rng.IntN(10) == 0 {
			s.apiVersion = harness.Pick(rng, "apps/v1beta2", "extensions/v1beta1")
		}
		s.controlled = rng.IntN(5) == 0
		if !so {
			s.min = i32(0, 1, 2, 3, 5, 12)
			v := []int32{1, 3, 5, 8, 10, 30}[rng.IntN(6)]
			s.max = &v
			return s
		}
		if rng.IntN(3) == 0 {
			s.apiVersion, s.kind = "", ""
		}
		s.min, s.max = i32(0, 1, 2, 3, 5), i32(3, 5, 10, 30)
		if rng.IntN(2) == 0 {
			s.idle = i32(0, 1)
		}
		return s
	}
	var reqs []autoscalerRequest
	for i := range n {
		r := autoscalerRequest{op: []equivOp{opCreate, opCreate, opUpdate, opUpdateLabels}[rng.IntN(4)], so: rng.IntN(2) == 0,
			ns: harness.Pick(rng, equivNamespaces...), name: fmt.Sprintf("a%d", i)}
		r.spec = spec(r.so)
		// Mostly ranges the API server accepts: an invalid one is its to refuse.
		if r.spec.min != nil && r.spec.max != nil && *r.spec.min > *r.spec.max && rng.IntN(5) != 0 {
			r.spec.min, r.spec.max = r.spec.max, r.spec.min
		}
		if r.op != opCreate {
			r.base = spec(r.so)
			// The object an update starts from is one the API server stores.
			if r.base.min != nil && r.base.max != nil && *r.base.min > *r.base.max {
				r.base.min, r.base.max = r.base.max, r.base.min
			}
			if r.base.idle != nil && *r.base.idle >= rangeOf(r.object(r.base)).Min {
				r.base.idle = nil
			}
			r.base.controlled = r.spec.controlled
			if r.op == opUpdateLabels {
				r.spec = r.base
			}
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// requested is the object the request asks to store.
func (r autoscalerRequest) requested() *unstructured.Unstructured { return r.object(r.spec) }

func (r autoscalerRequest) client(dyn dynamic.Interface, prefix string) dynamic.ResourceInterface {
	if r.so {
		return dyn.Resource(workload.ScaledObjectGroupVersion.WithResource("scaledobjects")).Namespace(prefix + r.ns)
	}
	return dyn.Resource(hpaResource).Namespace(prefix + r.ns)
}

// object is the autoscaler with spec s.
func (r autoscalerRequest) object(s autoscalerSpec) *unstructured.Unstructured {
	ref := map[string]any{"name": s.target}
	if s.kind != "" {
		ref["kind"], ref["apiVersion"] = s.kind, s.apiVersion
	}
	spec := map[string]any{"scaleTargetRef": ref}
	set := func(field string, v *int32) {
		if v != nil {
			spec[field] = int64(*v)
		}
	}
	obj := map[string]any{"metadata": map[string]any{"name": r.name}, "spec": spec}
	if r.so {
		obj["apiVersion"], obj["kind"] = "keda.sh/v1alpha1", "ScaledObject"
		set("minReplicaCount", s.min)
		set("maxReplicaCount", s.max)
		set("idleReplicaCount", s.idle)
		spec["triggers"] = []any{map[string]any{"type": "cron", "metadata": map[string]any{"timezone": "UTC", "start": "0 8 * * *", "end": "0 18 * * *", "desiredReplicas": "5"}}}
	} else {
		obj["apiVersion"], obj["kind"] = "autoscaling/v2", "HorizontalPodAutoscaler"
		set("minReplicas", s.min)
		set("maxReplicas", s.max)
		// An External metric lets minReplicas be 0 (HPA scale to zero).
		spec["metrics"] = []any{map[string]any{"type": "External", "external": map[string]any{
			"metric": map[string]any{"name": "queue"}, "target": map[string]any{"type": "AverageValue", "averageValue": "5"}}}}
	}
	if s.controlled {
		obj["metadata"].(map[string]any)["ownerReferences"] = []any{map[string]any{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "owner",
			"uid": "0b7c3a52-0000-4000-8000-000000000002", "controller": true}}
	}
	return &unstructured.Unstructured{Object: obj}
}

// subject is the policy's subject for r's target in prefix+r.ns, without its labels.
func (r autoscalerRequest) subject(prefix string, nsLabels map[string]map[string]string) policy.Subject {
	kind := r.spec.kind
	if kind == "" {
		kind = "Deployment"
	}
	s := policy.NewSubject("apps", kind, prefix+r.ns, r.spec.target)
	s.LabelsUnknown = true
	l := map[string]string{"kubernetes.io/metadata.name": prefix + r.ns, equivSideLabel: prefix[:1], equivPolicyLabel: strings.TrimSuffix(prefix, "-")}
	for k, v := range nsLabels[r.ns] {
		l[k] = v
	}
	s.SetNamespaceLabels(l, true)
	return s
}

// resolved reports whether the target is a bounded kind, as the webhook resolves it.
func (r autoscalerRequest) resolved() bool {
	return r.spec.kind == "" || strings.HasPrefix(r.spec.apiVersion, "apps/") && slices.Contains([]string{"Deployment", "StatefulSet", "ReplicaSet"}, r.spec.kind)
}

// native reports whether the native policies decide r: its target is not a ReplicaSet
// (which may be owned), and its rule does not need the target's labels.
func (r autoscalerRequest) native(snap *policy.Snapshot, prefix string, nsLabels map[string]map[string]string) bool {
	if !r.resolved() {
		return true
	}
	return r.spec.kind != "ReplicaSet" && snap.Decide(r.subject(prefix, nsLabels), nil).Outcome != policy.OutcomeUnknown
}

// effect is what the webhook does with r (Allow for an unchanged update).
func (r autoscalerRequest) effect(snap *policy.Snapshot, prefix string, nsLabels map[string]map[string]string) policy.EffectKind {
	if r.op == opUpdateLabels || !r.resolved() {
		return policy.Allow
	}
	of := policy.HPAFields
	if r.so {
		of = policy.ScaledObjectFields
	}
	subj := r.subject(prefix, nsLabels)
	v := snap.DecideRangeOf(of, subj, rangeOf(r.requested()))
	var controller *policy.Owner
	if r.spec.controlled {
		controller = &policy.Owner{Group: "keda.sh", Kind: "ScaledObject", Name: "owner"}
	}
	return v.Effect(policy.AtMutate, r.name, subj, controller).Kind
}

// rangeOf is the stored range of an autoscaler (HPA or ScaledObject), as the webhook reads
// it; the zero Range for nil.
func rangeOf(u *unstructured.Unstructured) policy.Range {
	if u == nil {
		return policy.Range{}
	}
	get := func(field string, deflt int32) int32 {
		v, ok, _ := unstructured.NestedInt64(u.Object, "spec", field)
		if !ok {
			return deflt
		}
		return int32(v)
	}
	if u.GetKind() != "ScaledObject" {
		return policy.Range{Min: get("minReplicas", 1), Max: get("maxReplicas", 0)}
	}
	r := policy.Range{Min: get("minReplicaCount", 0), Max: get("maxReplicaCount", 100)}
	if v, ok, _ := unstructured.NestedInt64(u.Object, "spec", "idleReplicaCount"); ok {
		r.Idle, r.HasIdle = int32(v), true
	}
	return r
}

// autoscalerResult is what a user sees of one write.
type autoscalerResult struct {
	stored   policy.Range
	err      error
	warnings []string
}

func (r autoscalerRequest) do(ctx context.Context, dyn dynamic.Interface, prefix string) autoscalerResult {
	c := r.client(dyn, prefix)
	if r.op == opCreate {
		got, err := c.Create(ctx, r.requested(), metav1.CreateOptions{})
		return autoscalerResult{stored: rangeOf(got), err: err}
	}
	cur, err := c.Get(ctx, r.name, metav1.GetOptions{})
	if err != nil {
		return autoscalerResult{err: err}
	}
	if r.op == opUpdateLabels {
		cur.SetLabels(map[string]string{"touched": "yes"})
	} else {
		want := r.requested()
		want.SetResourceVersion(cur.GetResourceVersion())
		cur = want
	}
	got, err := c.Update(ctx, cur, metav1.UpdateOptions{})
	return autoscalerResult{stored: rangeOf(got), err: err}
}

// autoscalerNormalized is a result with the enforcer's words taken out (as normalized),
// and the webhook's clamp warnings dropped: a native clamp returns none.
type autoscalerNormalized struct {
	stored   policy.Range
	err      string
	code     int32
	warnings []string
}

func (res autoscalerResult) normalize(native bool) autoscalerNormalized {
	n := autoscalerNormalized{stored: res.stored}
	if res.err != nil {
		n.err = res.err.Error()
		var status apierrors.APIStatus
		if errors.As(res.err, &status) {
			n.code = status.Status().Code
		}
		for _, sep := range []string{" denied the request: ", " denied request: "} {
			if _, after, ok := strings.Cut(n.err, sep); ok {
				n.err = after
			}
		}
	}
	for _, w := range res.warnings {
		w, _ = strings.CutPrefix(w, "Validation failed for ValidatingAdmissionPolicy ")
		if _, after, ok := strings.Cut(w, "': "); ok && native {
			w = after
		}
		if !native && (strings.Contains(w, " clamped to ") || strings.Contains(w, " removed by replica policy rule ")) {
			continue
		}
		n.warnings = append(n.warnings, w)
	}
	return n
}
