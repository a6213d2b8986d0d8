package native_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/go-logr/logr"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/admission"
	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/nativesync"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// TestCompileAgreesWithWebhook is the proof that the native admission policies Compile
// returns enforce the policy as the webhook does, on one real kube-apiserver. Each generated
// policy is written twice, its namespaces prefixed "n<k>-" for the native side and "w<k>-"
// for the webhook side (renaming namespaces changes nothing a rule decides), with the same
// namespace labels, workloads and requests on both sides:
//   - native: the objects of Compile (what `kubectl replica-policy compile -p FILE --name
//     rp<k> --policy-namespace n<k>-sys` prints), applied as they are, except that each
//     binding gets a namespaceSelector for the policy's own namespaces (all policies are in
//     force at once);
//   - webhook: the MutatingWebhookConfiguration of manifests/base (failurePolicy Fail, so
//     that a failed call shows, and a namespaceSelector for the webhook side's namespaces),
//     calling pkg/admission's /mutate handler in this process, over the policy of the phase.
//
// Creates, replica-changing updates and label-only updates of Deployments, StatefulSets
// and ReplicaSets (owned ones too), and /scale writes the native policies decide, must give
// the same allow or deny, the same stored replicas, the same denial text and the same warn
// warnings (both name the rule). A native clamp returns no warning (an admission policy
// cannot), so a webhook clamp warning must come with the same clamped value and the native
// clamp notice (replicas at a bound of the rule). /scale writes
// the native policies leave to the webhook must pass the native side untouched.
func TestCompileAgreesWithWebhook(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver")
	}
	start := time.Now()
	const policies = 14
	dir := t.TempDir()
	webhookConfig := testWebhookConfiguration(t, dir)
	cp := harness.StartControlPlane(t, harness.ControlPlaneOptions{WebhookPaths: []string{webhookConfig}})
	ctx := context.Background()
	phase := &phaseWebhook{}
	startTestWebhook(t, cp, phase)
	cs, warns, err := harness.WarningClient(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(14, 2037))

	cases := randomCases(rng, policies, func(rng *rand.Rand) []equivRequest { return randomRequests(rng, 44) })
	// Namespaces and the workloads the updates start from, on both sides, before any policy.
	setUpBothSides(t, ctx, cs, phase, cases, func(prefix string, r equivRequest) error {
		if r.op == opCreate {
			return nil
		}
		_, err := r.create(ctx, cs, prefix, r.base, false)
		return err
	})

	// The native policies of every policy, as Compile returns them.
	snaps := map[int]*policy.Snapshot{}
	scoped := map[string]int{} // bindings by how their compiled namespaceSelector narrows them
	for _, pc := range cases {
		prefix := fmt.Sprintf("n%d-", pc.k)
		snap, res := compileNative(t, pc.pol, prefix, pc.k, native.Options{ClampWarnings: true}) // the notice too, checked against every webhook clamp
		for k, n := range applyCompiled(t, ctx, cs, res.Objects(), prefix) {
			scoped[k] += n
		}
		snaps[pc.k] = snap
		if pc.k == cases[0].k && res.Clamp != nil {
			conditionCannotReadVariables(t, ctx, cs, res.Clamp)
		}
	}
	installed := time.Now()
	// A new admission policy is in force once the API server's policy informer has compiled
	// it: probe each policy's clamp, deny and warn with a dry-run create the webhook's
	// decision says they act on.
	for _, pc := range cases {
		prefix := fmt.Sprintf("n%d-", pc.k)
		probes := map[admission.Outcome]equivRequest{}
		for _, r := range pc.reqs {
			if r.op != opCreate || r.replicas == nil {
				continue
			}
			d := admission.Decide(snaps[pc.k], r.admissionRequest(prefix, pc.nsLabels), admission.Mutate)
			if _, ok := probes[d.Outcome]; !ok {
				probes[d.Outcome] = r
			}
		}
		for _, o := range []admission.Outcome{admission.OutcomeClamped, admission.OutcomeDenied, admission.OutcomeWarned} {
			r, ok := probes[o]
			if !ok {
				continue
			}
			harness.Eventually(t, 30*time.Second, 100*time.Millisecond, fmt.Sprintf("policy %d's %s in force", pc.k, o), func() bool {
				got, err := r.create(ctx, cs, prefix, *r.replicas, true)
				ws := warns.Take()
				switch o {
				case admission.OutcomeClamped:
					return err == nil && got != *r.replicas
				case admission.OutcomeDenied:
					return err != nil
				}
				return err == nil && len(ws) > 0
			})
		}
	}
	t.Logf("native policies of %d policies in force %v after they were created; bindings narrowed by namespace: %v", policies, time.Since(installed).Round(time.Millisecond), scoped)
	// The bindings' namespaceSelectors decide which requests reach a policy at all: the
	// comparison below must cover both ways they narrow.
	for _, k := range []string{"In", "NotIn"} {
		if scoped[k] < 3 {
			t.Errorf("only %d bindings select namespaces with %s (beyond the exempt ones): the generator does not cover them", scoped[k], k)
		}
	}

	counts := map[string]int{}
	compared := 0
	for _, pc := range cases {
		wprefix, nprefix := fmt.Sprintf("w%d-", pc.k), fmt.Sprintf("n%d-", pc.k)
		wpol := prefixedPolicy(pc.pol, wprefix)
		phase.set(t, wpol, wprefix+"sys", cs)
		wsnap, err := policy.Compile(wpol, policy.Options{AlwaysExempt: []string{wprefix + "sys"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range pc.reqs {
			ctxName := fmt.Sprintf("policy %d, %s", pc.k, r)
			// Whether the native policies decide this request: not a /scale write of a kind
			// that may be owned, nor one whose deciding rule needs the workload's labels.
			native := true
			if r.op == opScale {
				req := r.admissionRequest(wprefix, pc.nsLabels)
				req.Subject.Labels, req.Subject.LabelsUnknown = nil, true
				native = r.kind != "ReplicaSet" && admission.Decide(wsnap, req, admission.Mutate).Outcome != admission.OutcomeUnknown
			}
			warns.Take()
			w := r.do(ctx, cs, wprefix)
			w.warnings = warns.Take()
			n := r.do(ctx, cs, nprefix)
			n.warnings = warns.Take()
			wo, err := w.normalize(false, r.named())
			if err != nil {
				t.Errorf("%s: webhook: %v", ctxName, err)
				continue
			}
			no, err := n.normalize(true, r.named())
			if err != nil {
				t.Errorf("%s: native: %v", ctxName, err)
				continue
			}
			if !native {
				counts["left to the webhook"]++
				if no.err != "" || len(no.warnings) > 0 || no.atBound || no.replicas != r.requested() {
					t.Errorf("%s: the native policies decided a /scale write they leave to the webhook: %+v", ctxName, no)
				}
				continue
			}
			compared++
			counts[string(admission.Decide(wsnap, r.admissionRequest(wprefix, pc.nsLabels), admission.Mutate).Outcome)]++
			if wo.err != no.err || wo.code != no.code {
				t.Errorf("%s: webhook error %d %q, native error %d %q", ctxName, wo.code, wo.err, no.code, no.err)
			}
			if wo.err == "" && wo.replicas != no.replicas {
				t.Errorf("%s: webhook stores %d replicas, native %d (webhook warnings %q)", ctxName, wo.replicas, no.replicas, w.warnings)
			}
			if !slices.Equal(wo.warnings, no.warnings) {
				t.Errorf("%s: webhook warnings %q, native %q", ctxName, wo.warnings, no.warnings)
			}
			if wo.clamped != (wo.err == "" && no.replicas != r.requested()) {
				t.Errorf("%s: the webhook clamped %v, native stores %d for %d", ctxName, wo.clamped, no.replicas, r.requested())
			}
			// What a native clamp says instead of the webhook's warning.
			if wo.clamped && !no.atBound {
				t.Errorf("%s: the webhook clamped with a warning, the native policies gave no clamp notice", ctxName)
			}
			if wo.clamped && no.atBound {
				counts["clamp notice"]++
			}
		}
	}
	t.Logf("%d policies × %d requests, %d compared on both sides: %v; %v in all", policies, len(cases[0].reqs), compared, counts, time.Since(start).Round(time.Second))
	for _, k := range []string{"clamped", "denied", "warned", "allowed", "unchanged", "exempt", "owned", "no_rule", "left to the webhook"} {
		if counts[k] < 5 {
			t.Errorf("only %d %q requests: the generator does not cover them", counts[k], k)
		}
	}
}

// createNamespaces creates the namespaces of equivNamespaces, prefixed, with their labels
// and those that say the side and the policy.
func createNamespaces(t *testing.T, ctx context.Context, cs kubernetes.Interface, prefix string, nsLabels map[string]map[string]string) {
	t.Helper()
	for _, ns := range equivNamespaces {
		labels := map[string]string{equivSideLabel: prefix[:1], equivPolicyLabel: strings.TrimSuffix(prefix, "-")}
		for k, v := range nsLabels[ns] {
			labels[k] = v
		}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + ns, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// The namespaces of each policy on each side (prefixed), "sys" being the always-exempt one
// (--policy-namespace) and "ex" in the policies' exemptNamespaces half the time.
var equivNamespaces = []string{"a", "b", "c", "team-1", "team-2", "ex", "default", "sys"}

const (
	equivSideLabel   = "replica-policy.test/side"
	equivPolicyLabel = "replica-policy.test/policy"
)

// randomNativePolicy is randomPolicy with more kinds of selector terms.
func randomNativePolicy(rng *rand.Rand) *policy.ReplicaPolicy {
	p := harness.RandomPolicy(rng)
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Selector != nil && rng.IntN(2) == 0 {
			r.Selector = &[]metav1.LabelSelector{
				{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db", "other"}}}},
				{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}},
				{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpDoesNotExist}}},
				{MatchLabels: map[string]string{"app": "web"}, MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "y"}}}},
			}[rng.IntN(4)]
		}
		if r.NamespaceSelector != nil && rng.IntN(2) == 0 {
			r.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"gold"}}}}
		}
	}
	if rng.IntN(3) == 0 {
		p.ExemptNamespaces = append(p.ExemptNamespaces, "team-?")
	}
	return p
}

// prefixedPolicy is p with every namespace name and glob prefixed.
func prefixedPolicy(p *policy.ReplicaPolicy, prefix string) *policy.ReplicaPolicy {
	q := *p
	add := func(ns []string) []string {
		out := make([]string, len(ns))
		for i, n := range ns {
			out[i] = prefix + n
		}
		return out
	}
	q.ExemptNamespaces = add(p.ExemptNamespaces)
	q.Rules = slices.Clone(p.Rules)
	for i := range q.Rules {
		if q.Rules[i].Namespaces != nil {
			q.Rules[i].Namespaces = add(q.Rules[i].Namespaces)
		}
	}
	return &q
}

type equivOp string

const (
	opCreate       equivOp = "create"
	opUpdate       equivOp = "update"        // replicas changed on the object
	opUpdateLabels equivOp = "update-labels" // a label added, replicas as they were
	opScale        equivOp = "scale"         // a write to /scale
)

// equivRequest is one request, made alike on both sides.
type equivRequest struct {
	op        equivOp
	kind      string
	ns, name  string
	labels    map[string]string
	owned     bool   // a controller ownerReference to a Deployment
	replicas  *int32 // the requested count; nil on a create leaves it to the API's default
	base      int32  // the stored count an update starts from
	shortName string
}

// named is how the messages about r begin: `Deployment "web": `, a /scale write's too.
func (r equivRequest) named() string { return fmt.Sprintf("%s %q: ", r.kind, r.name) }

func (r equivRequest) String() string {
	rep := "nil"
	if r.replicas != nil {
		rep = fmt.Sprint(*r.replicas)
	}
	s := fmt.Sprintf("%s %s %s/%s labels %v replicas %s", r.op, r.kind, r.ns, r.name, r.labels, rep)
	if r.op != opCreate {
		s += fmt.Sprintf(" (from %d)", r.base)
	}
	if r.owned {
		s += " owned"
	}
	return s
}

// requested is the count the request asks for, after the API's default.
func (r equivRequest) requested() int32 {
	if r.op == opUpdateLabels {
		return r.base
	}
	return policy.Replicas(r.replicas)
}

func randomRequests(rng *rand.Rand, n int) []equivRequest {
	values := []int32{-1, 0, 1, 2, 3, 4, 5, 7, 10, 11, 50}
	var reqs []equivRequest
	for i := range n {
		r := equivRequest{
			op:   []equivOp{opCreate, opCreate, opCreate, opUpdate, opUpdateLabels, opScale, opScale}[rng.IntN(7)],
			kind: harness.Pick(rng, "Deployment", "StatefulSet", "ReplicaSet"),
			ns:   harness.Pick(rng, equivNamespaces...),
			name: fmt.Sprintf("r%d", i),
		}
		r.labels = map[string]string{}
		if v := harness.Pick(rng, "web", "db", "other", ""); v != "" {
			r.labels["app"] = v
		}
		if rng.IntN(3) == 0 {
			r.labels["team"] = harness.Pick(rng, "x", "z")
		}
		r.owned = r.kind == "ReplicaSet" && r.op != opScale && rng.IntN(3) == 0
		v := values[rng.IntN(len(values))]
		if r.op == opCreate && rng.IntN(8) == 0 {
			r.replicas = nil
		} else {
			r.replicas = &v
		}
		if r.op != opCreate {
			r.base = []int32{0, 1, 3, 6, 20}[rng.IntN(5)]
			if r.op == opScale && v < 0 {
				v = 4 // a negative Scale is the API server's to refuse, as for objects
			}
			if rng.IntN(6) == 0 {
				v = r.base // unchanged: never denied
			}
			r.replicas = &v
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// admissionRequest is what the webhook reads of r's CREATE (for the probes' expectations)
// or of its write, in the namespace prefix+r.ns.
func (r equivRequest) admissionRequest(prefix string, nsLabels map[string]map[string]string) admission.Request {
	l := map[string]string{"kubernetes.io/metadata.name": prefix + r.ns, equivSideLabel: prefix[:1], equivPolicyLabel: strings.TrimSuffix(prefix, "-")}
	for k, v := range nsLabels[r.ns] {
		l[k] = v
	}
	req := admission.Request{
		Operation: admissionv1.Create,
		Subject:   policy.Subject{Group: "apps", Kind: r.kind, Namespace: prefix + r.ns, Name: r.name, Labels: r.labels, NamespaceLabels: l},
		Scale:     r.op == opScale,
		Replicas:  r.requested(),
	}
	if r.owned {
		req.Subject.Owner = &policy.Owner{Group: "apps", Kind: "Deployment", Name: "parent"}
	}
	if r.op != opCreate {
		req.Operation = admissionv1.Update
		req.OldReplicas = &r.base
	}
	return req
}

// object is r's workload with replicas.
func (r equivRequest) object(ns string, replicas *int32) any {
	var obj interface {
		metav1.Object
	}
	switch r.kind {
	case "Deployment":
		d := harness.Deployment(ns, r.name, 1, r.labels)
		d.Spec.Replicas = replicas
		obj = d
	case "StatefulSet":
		s := harness.StatefulSet(ns, r.name, 1, r.labels)
		s.Spec.Replicas = replicas
		obj = s
	default:
		s := harness.ReplicaSet(ns, r.name, 1, r.labels)
		s.Spec.Replicas = replicas
		obj = s
	}
	if r.owned {
		yes := true
		obj.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "parent", UID: "0b7c3a52-0000-4000-8000-000000000001", Controller: &yes}})
	}
	return obj
}

// create creates r's workload in prefix+r.ns with replicas (dry-run: a probe named after it)
// and returns the replicas stored.
func (r equivRequest) create(ctx context.Context, cs kubernetes.Interface, prefix string, replicas int32, dryRun bool) (int32, error) {
	return r.createPtr(ctx, cs, prefix, &replicas, dryRun)
}

func (r equivRequest) createPtr(ctx context.Context, cs kubernetes.Interface, prefix string, replicas *int32, dryRun bool) (int32, error) {
	ns := prefix + r.ns
	opts := metav1.CreateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	apps := cs.AppsV1()
	switch o := r.object(ns, replicas).(type) {
	case *appsv1.Deployment:
		if dryRun {
			o.Name = "probe-" + o.Name
		}
		got, err := apps.Deployments(ns).Create(ctx, o, opts)
		if err != nil {
			return 0, err
		}
		return *got.Spec.Replicas, nil
	case *appsv1.StatefulSet:
		if dryRun {
			o.Name = "probe-" + o.Name
		}
		got, err := apps.StatefulSets(ns).Create(ctx, o, opts)
		if err != nil {
			return 0, err
		}
		return *got.Spec.Replicas, nil
	case *appsv1.ReplicaSet:
		if dryRun {
			o.Name = "probe-" + o.Name
		}
		got, err := apps.ReplicaSets(ns).Create(ctx, o, opts)
		if err != nil {
			return 0, err
		}
		return *got.Spec.Replicas, nil
	}
	return 0, errors.New("unreachable")
}

// equivResult is what a user sees of one request.
type equivResult struct {
	replicas int32 // stored, when err is nil
	err      error
	warnings []string
}

func (r equivRequest) do(ctx context.Context, cs kubernetes.Interface, prefix string) equivResult {
	ns := prefix + r.ns
	if r.op == opCreate {
		got, err := r.createPtr(ctx, cs, prefix, r.replicas, false)
		return equivResult{replicas: got, err: err}
	}
	if r.op == opScale {
		scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: r.name, Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: *r.replicas}}
		var got *autoscalingv1.Scale
		var err error
		switch r.kind {
		case "Deployment":
			got, err = cs.AppsV1().Deployments(ns).UpdateScale(ctx, r.name, scale, metav1.UpdateOptions{})
		case "StatefulSet":
			got, err = cs.AppsV1().StatefulSets(ns).UpdateScale(ctx, r.name, scale, metav1.UpdateOptions{})
		default:
			got, err = cs.AppsV1().ReplicaSets(ns).UpdateScale(ctx, r.name, scale, metav1.UpdateOptions{})
		}
		if err != nil {
			return equivResult{err: err}
		}
		return equivResult{replicas: got.Spec.Replicas}
	}
	// An update of the object: replicas changed, or a label added.
	edit := func(replicas **int32, labels *map[string]string) {
		if r.op == opUpdate {
			v := *r.replicas
			*replicas = &v
			return
		}
		if *labels == nil {
			*labels = map[string]string{}
		}
		(*labels)["touched"] = "yes"
	}
	apps := cs.AppsV1()
	var stored *int32
	var err error
	switch r.kind {
	case "Deployment":
		var d *appsv1.Deployment
		if d, err = apps.Deployments(ns).Get(ctx, r.name, metav1.GetOptions{}); err == nil {
			edit(&d.Spec.Replicas, &d.Labels)
			if d, err = apps.Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err == nil {
				stored = d.Spec.Replicas
			}
		}
	case "StatefulSet":
		var s *appsv1.StatefulSet
		if s, err = apps.StatefulSets(ns).Get(ctx, r.name, metav1.GetOptions{}); err == nil {
			edit(&s.Spec.Replicas, &s.Labels)
			if s, err = apps.StatefulSets(ns).Update(ctx, s, metav1.UpdateOptions{}); err == nil {
				stored = s.Spec.Replicas
			}
		}
	default:
		var s *appsv1.ReplicaSet
		if s, err = apps.ReplicaSets(ns).Get(ctx, r.name, metav1.GetOptions{}); err == nil {
			edit(&s.Spec.Replicas, &s.Labels)
			if s, err = apps.ReplicaSets(ns).Update(ctx, s, metav1.UpdateOptions{}); err == nil {
				stored = s.Spec.Replicas
			}
		}
	}
	if err != nil {
		return equivResult{err: err}
	}
	return equivResult{replicas: *stored}
}

// normalized is a result with the words that name the enforcer taken out: the webhook's
// "admission webhook ... denied the request: " and the admission policies' "... denied
// request: " and "Validation failed for ValidatingAdmissionPolicy ...: ", leaving the text
// both give. Each of those texts must name the request's object first (object).
type normalized struct {
	replicas int32
	err      string
	code     int32
	warnings []string
	clamped  bool // the webhook's clamp warning
	// atBound is the native notice that stands in for it (Result.ClampNotice): replicas left
	// at a bound of a clamp rule, clamped there or asked for exactly.
	atBound bool
}

func (res equivResult) normalize(native bool, object string) (normalized, error) {
	n := normalized{replicas: res.replicas}
	named := func(text string) error {
		if !strings.HasPrefix(text, object) {
			return fmt.Errorf("%q does not name its object first (%q)", text, object)
		}
		return nil
	}
	if res.err != nil {
		var status apierrors.APIStatus
		if !errors.As(res.err, &status) {
			return n, res.err
		}
		msg := res.err.Error()
		for _, sep := range []string{" denied the request: ", " denied request: "} {
			if _, after, ok := strings.Cut(msg, sep); ok {
				msg = after
			}
		}
		n.err, n.code = msg, status.Status().Code
		// The API server's own validation (a negative count) names the object its own way.
		if err := named(msg); strings.Contains(msg, "replica policy rule") && err != nil {
			return n, err
		}
	}
	for _, w := range res.warnings {
		w, _ = strings.CutPrefix(w, "Validation failed for ValidatingAdmissionPolicy ")
		if _, after, ok := strings.Cut(w, "': "); ok && native {
			w = after
		}
		if err := named(w); err != nil {
			return n, err
		}
		switch {
		case !native && strings.Contains(w, " clamped to "):
			n.clamped = true
		case native && strings.Contains(w, " is at a bound of "):
			n.atBound = true
		case strings.HasPrefix(w, object+"spec.replicas: Invalid value: "):
			n.warnings = append(n.warnings, w)
		default:
			return n, fmt.Errorf("unexpected warning %q", w)
		}
	}
	return n, nil
}

// testWebhookConfiguration writes the manifests' MutatingWebhookConfiguration for this test:
// failurePolicy Fail (a failed call must show), and only the webhook side's namespaces.
func testWebhookConfiguration(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "manifests", "base", "webhooks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, _, _ := strings.Cut(string(b), "\n---\n")
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := sigsyaml.UnmarshalStrict([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	fail := admissionregistrationv1.Fail
	for i := range cfg.Webhooks {
		if cfg.Webhooks[i].Name == "hpa.replicapolicy.io" { // and ScaledObjects, as manifests/components/keda adds them
			scope := admissionregistrationv1.NamespacedScope
			cfg.Webhooks[i].Rules = append(cfg.Webhooks[i].Rules, admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"keda.sh"}, APIVersions: []string{"v1alpha1"}, Resources: []string{"scaledobjects"}, Scope: &scope},
			})
		}
		cfg.Webhooks[i].FailurePolicy = &fail
		cfg.Webhooks[i].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{equivSideLabel: "w"}}
	}
	path := filepath.Join(dir, "webhook.yaml")
	harness.WriteYAML(t, path, &cfg)
	return path
}

// phaseWebhook serves /mutate with the handler of the policy in force in this phase.
type phaseWebhook struct {
	current atomic.Pointer[http.Handler]
}

func (p *phaseWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := p.current.Load()
	if h == nil {
		http.Error(w, "no policy yet", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

// set puts pol in force, with alwaysExempt as the webhook's own namespace.
func (p *phaseWebhook) set(t *testing.T, pol *policy.ReplicaPolicy, alwaysExempt string, cs kubernetes.Interface) {
	t.Helper()
	opts := policy.Options{AlwaysExempt: []string{alwaysExempt}}
	store := policystore.NewStore(opts)
	doc, err := sigsyaml.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Apply(harness.PolicyConfigMap(string(doc))); err != nil {
		t.Fatal(err)
	}
	mutate, _ := admission.NewHandlers(workload.Builtin(), store, getLookup{cs}, admission.PolicyRef{Namespace: alwaysExempt, Name: policy.DefaultConfigMapName, Options: opts})
	var h http.Handler = admission.Webhook(mutate)
	p.current.Store(&h)
}

// startTestWebhook serves h at /mutate where the control plane's webhook configuration
// calls it.
func startTestWebhook(t *testing.T, cp *harness.ControlPlane, h http.Handler) {
	t.Helper()
	crlog.SetLogger(logr.Discard()) // controller-runtime's webhook logs, which the test does not read
	wio := cp.WebhookInstallOptions
	srv := crwebhook.NewServer(crwebhook.Options{Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir})
	srv.Register(admission.MutatePath, h)
	harness.RunInBackground(t, "webhook server", 10*time.Second, srv.Start)
	harness.Eventually(t, 10*time.Second, 50*time.Millisecond, "webhook server listening", func() bool {
		return srv.StartedChecker()(nil) == nil
	})
}

// getLookup reads labels with a GET per request: the test's webhook needs no cache.
type getLookup struct{ cs kubernetes.Interface }

func (l getLookup) WorkloadLabels(kind workload.Kind, namespace, name string) (map[string]string, *metav1.OwnerReference, bool) {
	var obj metav1.Object
	var err error
	ctx := context.Background()
	switch kind.Kind {
	case "Deployment":
		obj, err = l.cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	case "StatefulSet":
		obj, err = l.cs.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
	case "ReplicaSet":
		obj, err = l.cs.AppsV1().ReplicaSets(namespace).Get(ctx, name, metav1.GetOptions{})
	default:
		return nil, nil, false
	}
	if err != nil {
		return nil, nil, false
	}
	return obj.GetLabels(), workload.Builtin().Controller(obj.GetOwnerReferences()), true
}

func (l getLookup) NamespaceLabels(namespace string) (map[string]string, bool) {
	ns, err := l.cs.CoreV1().Namespaces().Get(context.Background(), namespace, metav1.GetOptions{})
	if err != nil {
		return nil, false
	}
	return ns.Labels, true
}

// compileNative compiles pol with its namespaces prefixed, as the webhook with
// --policy-namespace prefix+"sys" would, into objects named rp<k>-*.
// conditionCannotReadVariables checks why the clamp's matchCondition spells the rule chain
// that its variables spell again: kube-apiserver refuses a MutatingAdmissionPolicy whose
// matchCondition reads a variable (its validation compiles matchConditions without them),
// and a condition that holds for in-bounds writes too would make every such write pay a
// mutation (the object re-encoded, the mutating chain run again) for an empty patch. The
// day the API server accepts it, this fails, and the chain can be written once.
func conditionCannotReadVariables(t *testing.T, ctx context.Context, cs kubernetes.Interface, clamp *admissionregistrationv1.MutatingAdmissionPolicy) {
	t.Helper()
	p := clamp.DeepCopy()
	p.Name += "-reads-variables"
	p.Spec.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "out", Expression: "variables.out && variables.action == 'clamp'"}}
	_, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicies().Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "variables") {
		t.Errorf("a clamp whose matchCondition reads its variables: %v, want Invalid (undeclared variables)", err)
	}
}

func compileNative(t *testing.T, pol *policy.ReplicaPolicy, prefix string, k int, opts native.Options) (*policy.Snapshot, *native.Result) {
	t.Helper()
	snap, err := policy.Compile(prefixedPolicy(pol, prefix), policy.Options{AlwaysExempt: []string{prefix + "sys"}})
	if err != nil {
		t.Fatal(err)
	}
	opts.Name = fmt.Sprintf("rp%d", k)
	res, err := native.Compile(snap, policy.BuiltinWorkloadKinds, opts)
	if err != nil {
		t.Fatalf("policy %d: %v", k, err)
	}
	return snap, res
}

// applyCompiled creates the compiled objects, each binding narrowed to the namespaces of
// prefix, and counts the bindings whose compiled namespaceSelector selects namespaces (In)
// or leaves out some that are not exempt (NotIn).
func applyCompiled(t *testing.T, ctx context.Context, cs kubernetes.Interface, objs []runtime.Object, prefix string) map[string]int {
	t.Helper()
	scoped := map[string]int{}
	count := func(m *admissionregistrationv1.MatchResources) {
		if m == nil || m.NamespaceSelector == nil {
			return
		}
		for _, r := range m.NamespaceSelector.MatchExpressions {
			if r.Operator == metav1.LabelSelectorOpIn || slices.ContainsFunc(r.Values, func(ns string) bool { return ns != prefix+"sys" && ns != prefix+"ex" }) {
				scoped[string(r.Operator)]++
			}
		}
	}
	ar := cs.AdmissionregistrationV1()
	scope := &metav1.LabelSelector{MatchLabels: map[string]string{equivPolicyLabel: strings.TrimSuffix(prefix, "-")}}
	for _, obj := range objs {
		var err error
		switch o := obj.(type) {
		case *admissionregistrationv1.MutatingAdmissionPolicy:
			_, err = ar.MutatingAdmissionPolicies().Create(ctx, o, metav1.CreateOptions{})
		case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
			count(o.Spec.MatchResources)
			o.Spec.MatchResources = nativesync.ScopeMatchResources(o.Spec.MatchResources, scope)
			_, err = ar.MutatingAdmissionPolicyBindings().Create(ctx, o, metav1.CreateOptions{})
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			_, err = ar.ValidatingAdmissionPolicies().Create(ctx, o, metav1.CreateOptions{})
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			count(o.Spec.MatchResources)
			o.Spec.MatchResources = nativesync.ScopeMatchResources(o.Spec.MatchResources, scope)
			_, err = ar.ValidatingAdmissionPolicyBindings().Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("Compile returned a %T", obj)
		}
		if err != nil {
			t.Fatalf("%T: %v", obj, err)
		}
	}
	return scoped
}

// randomNamespaceLabels gives each of equivNamespaces (by short name) random env and tier
// labels, the Namespace labels a policy's namespaceSelector is judged against.
func randomNamespaceLabels(rng *rand.Rand) map[string]map[string]string {
	labels := map[string]map[string]string{}
	for _, ns := range equivNamespaces {
		l := map[string]string{}
		if v := harness.Pick(rng, "prod", "dev", ""); v != "" {
			l["env"] = v
		}
		if rng.IntN(3) == 0 {
			l["tier"] = harness.Pick(rng, "gold", "silver")
		}
		labels[ns] = l
	}
	return labels
}
