package nativesync

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
)

// The Syncer against client-go's fake clientset (an object tracker that implements
// server-side apply with managed fields): what it writes, in which order, and that it writes
// nothing when nothing changed.

const header = "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\n"

// fakeProber answers what the test says, and counts its calls.
type fakeProber struct {
	enforced    bool
	calls       int
	notWidened  bool
	widenedAsks int
}

func (p *fakeProber) Enforced(context.Context, *policy.Snapshot, *native.Result) (bool, string, error) {
	p.calls++
	return p.enforced, "the test says no", nil
}

func (p *fakeProber) WebhookExclusion() string { return "request.dryRun" }

func (p *fakeProber) Widened(context.Context, *metav1.LabelSelector) (bool, string, error) {
	p.widenedAsks++
	return !p.notWidened, "the test says not widened", nil
}

func (p *fakeProber) WidenProbe() string { return "request.options.fieldManager == 'probe'" }

// installed is the manifests' webhook configuration: a workload entry and an HPA entry.
func installed() *admissionregistrationv1.MutatingWebhookConfiguration {
	scope := admissionregistrationv1.NamespacedScope
	none := admissionregistrationv1.SideEffectClassNone
	url := "https://127.0.0.1:9443/mutate"
	entry := func(name string, rules ...admissionregistrationv1.RuleWithOperations) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{Name: name, Rules: rules, SideEffects: &none,
			AdmissionReviewVersions: []string{"v1"}, ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			MatchConditions: []admissionregistrationv1.MatchCondition{{Name: "replicas-changed", Expression: "true"}}}
	}
	rule := func(group string, ops []admissionregistrationv1.OperationType, resources ...string) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: resources, Scope: &scope}}
	}
	cu := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	u := []admissionregistrationv1.OperationType{admissionregistrationv1.Update}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "replica-policy"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			entry("mutate.replicapolicy.io", rule("apps", cu, "deployments", "statefulsets", "replicasets"),
				rule("apps", u, "deployments/scale", "statefulsets/scale", "replicasets/scale")),
			entry("hpa.replicapolicy.io", rule("autoscaling", cu, "horizontalpodautoscalers")),
		},
	}
}

type env struct {
	t      *testing.T
	client *fake.Clientset
	store  *policystore.Store
	prober *fakeProber
	s      *Syncer
}

func newEnv(t *testing.T, objs ...runtime.Object) *env {
	client := fake.NewClientset(append([]runtime.Object{installed()}, objs...)...)
	store := policystore.NewStore(policy.Options{})
	p := &fakeProber{enforced: true}
	s := New(client, store, func() bool { return true }, Options{
		Kinds: policy.BuiltinWorkloadKinds, WebhookConfiguration: "replica-policy", Prober: p,
		// Every object the compiler can emit for a clamp rule: the clamp notice too.
		Compile: native.Options{ClampWarnings: true},
		NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system"}}}},
	}, logr.Discard())
	return &env{t: t, client: client, store: store, prober: p, s: s}
}

func load(t *testing.T, doc string) *policy.Snapshot {
	t.Helper()
	snap, err := policy.Load([]byte(header+doc), policy.Options{Source: fmt.Sprintf("test@%d", len(doc))})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// sync runs one Sync and returns the writes it made, as "verb resource[/name]": patches
// (server-side applies) and deletes.
func (e *env) sync(snap *policy.Snapshot) ([]string, error) {
	e.t.Helper()
	e.client.ClearActions()
	err := e.s.Sync(context.Background(), snap)
	var writes []string
	for _, a := range e.client.Actions() {
		switch a := a.(type) {
		case clienttesting.PatchAction:
			w := "apply " + a.GetResource().Resource + "/" + a.GetName()
			if a.GetPatchType() == types.MergePatchType {
				w = "release " + a.GetResource().Resource + "/" + a.GetName()
			}
			if a.GetResource().Resource == "mutatingwebhookconfigurations" {
				w += " " + e.stateOf(a.GetPatch())
			}
			writes = append(writes, w)
		case clienttesting.DeleteAction:
			writes = append(writes, "delete "+a.GetResource().Resource+"/"+a.GetName())
		case clienttesting.CreateAction, clienttesting.UpdateAction:
			writes = append(writes, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	return writes, err
}

// stateOf says whether an apply patch of the webhook configuration widens or narrows.
func (e *env) stateOf(patch []byte) string {
	if strings.Contains(string(patch), `"deployments","statefulsets","replicasets"`) {
		return "(wide)"
	}
	return "(narrow)"
}

func (e *env) mustSync(snap *policy.Snapshot) []string {
	e.t.Helper()
	w, err := e.sync(snap)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// syncNotYet is a sync that must end in a notYetError (the API server does not enforce the
// native policies yet), and its writes. It takes t, which may be a subtest's.
func (e *env) syncNotYet(t *testing.T, snap *policy.Snapshot) []string {
	t.Helper()
	w, err := e.sync(snap)
	var notYet *notYetError
	if !errors.As(err, &notYet) {
		t.Fatalf("Sync: %v, want a notYetError", err)
	}
	return w
}

func (e *env) webhook() *admissionregistrationv1.MutatingWebhookConfiguration {
	e.t.Helper()
	m, err := e.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), "replica-policy", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func equal(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s wrote:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

const clampAndDeny = "rules:\n- {name: cap, namespaces: [prod], maxReplicas: 5}\n- {name: strict, namespaces: [strict], maxReplicas: 3, action: deny}\n"

var appliedClampAndDeny = []string{
	"apply mutatingadmissionpolicies/replica-policy-clamp", "apply mutatingadmissionpolicybindings/replica-policy-clamp",
	"apply validatingadmissionpolicies/replica-policy-deny", "apply validatingadmissionpolicybindings/replica-policy-deny",
	"apply validatingadmissionpolicies/replica-policy-clamped", "apply validatingadmissionpolicybindings/replica-policy-clamped",
}

func TestSyncOrderAndIdempotence(t *testing.T) {
	e := newEnv(t)
	snap := load(t, clampAndDeny)
	writes := e.mustSync(snap)
	equal(t, "the first sync", writes, append(append([]string{"apply mutatingwebhookconfigurations/replica-policy (wide)"},
		appliedClampAndDeny...), "apply mutatingwebhookconfigurations/replica-policy (narrow)")...)

	mwc := e.webhook()
	workload, hpa := mwc.Webhooks[0], mwc.Webhooks[1]
	if len(workload.Rules) != 1 || strings.Join(workload.Rules[0].Resources, ",") != "replicasets/scale" {
		t.Errorf("narrowed rules %+v, want the /scale of ReplicaSets only (object writes of compiled kinds leave the webhook, and no selector rule may decide a /scale write)", workload.Rules)
	}
	res, err := native.Compile(snap, policy.BuiltinWorkloadKinds, native.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantCond := admissionregistrationv1.MatchCondition{Name: ConditionName, Expression: "!(request.dryRun) && (" + res.WebhookMatchCondition + ")"}
	if len(workload.MatchConditions) != 2 || workload.MatchConditions[0].Name != "replicas-changed" || workload.MatchConditions[1] != wantCond {
		t.Errorf("matchConditions %+v, want the manifests' and %+v", workload.MatchConditions, wantCond)
	}
	if workload.NamespaceSelector == nil || len(workload.NamespaceSelector.MatchExpressions) != 1 {
		t.Errorf("namespaceSelector %+v, want the Syncer's", workload.NamespaceSelector)
	}
	if want := installed().Webhooks[1]; len(hpa.Rules) != 1 || hpa.Rules[0].Resources[0] != "horizontalpodautoscalers" ||
		len(hpa.MatchConditions) != 1 || hpa.NamespaceSelector != nil && len(hpa.NamespaceSelector.MatchExpressions) > 0 {
		t.Errorf("the HPA entry changed: %+v, installed %+v", hpa, want)
	}

	equal(t, "a second sync with nothing changed", e.mustSync(snap))
	if e.prober.calls != 1 {
		t.Errorf("the prober was asked %d times; once proven, a sync without change need not ask", e.prober.calls)
	}
}

func TestSyncRepairsDrift(t *testing.T) {
	e := newEnv(t)
	snap := load(t, clampAndDeny)
	e.mustSync(snap)
	ctx := context.Background()
	ar := e.client.AdmissionregistrationV1()

	t.Run("a deleted policy: widen, apply it again, prove, narrow", func(t *testing.T) {
		if err := ar.MutatingAdmissionPolicies().Delete(ctx, "replica-policy-clamp", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		equal(t, "the repair", e.mustSync(snap), "apply mutatingwebhookconfigurations/replica-policy (wide)",
			"apply mutatingadmissionpolicies/replica-policy-clamp", "apply mutatingwebhookconfigurations/replica-policy (narrow)")
	})

	t.Run("an edited binding: another manager owns fields of its spec, so it is replaced", func(t *testing.T) {
		b, err := ar.ValidatingAdmissionPolicyBindings().Get(ctx, "replica-policy-deny", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Audit}
		if _, err := ar.ValidatingAdmissionPolicyBindings().Update(ctx, b, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		equal(t, "the repair", e.mustSync(snap), "apply mutatingwebhookconfigurations/replica-policy (wide)",
			"delete validatingadmissionpolicybindings/replica-policy-deny",
			"apply validatingadmissionpolicybindings/replica-policy-deny", "apply mutatingwebhookconfigurations/replica-policy (narrow)")
		b, _ = ar.ValidatingAdmissionPolicyBindings().Get(ctx, "replica-policy-deny", metav1.GetOptions{})
		if len(b.Spec.ValidationActions) != 1 || b.Spec.ValidationActions[0] != admissionregistrationv1.Deny {
			t.Errorf("validationActions %v after the repair, want [Deny]", b.Spec.ValidationActions)
		}
	})

	t.Run("a policy someone deleted, held by the finalizer: released only once the widened webhook is called", func(t *testing.T) {
		p, err := ar.MutatingAdmissionPolicies().Get(ctx, "replica-policy-clamp", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Finalizers, []string{Finalizer}) {
			t.Fatalf("finalizers %v, want [%s]", p.Finalizers, Finalizer)
		}
		// What the API server does with a DELETE of an object with a finalizer (the fake
		// tracker deletes at once).
		p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		if _, err := ar.MutatingAdmissionPolicies().Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.prober.notWidened = true
		writes := e.syncNotYet(t, snap)
		equal(t, "while the widened webhook is not called yet", writes, "apply mutatingwebhookconfigurations/replica-policy (wide)")
		if p, err := ar.MutatingAdmissionPolicies().Get(ctx, "replica-policy-clamp", metav1.GetOptions{}); err != nil || len(p.Finalizers) != 1 {
			t.Fatalf("the deleted policy lost its finalizer before the widened webhook was called: %v %v", p, err)
		}
		// The release of a deleted object's last finalizer deletes it (the fake tracker
		// would keep it).
		e.client.PrependReactor("patch", "mutatingadmissionpolicies", func(a clienttesting.Action) (bool, runtime.Object, error) {
			if a.(clienttesting.PatchAction).GetPatchType() != types.MergePatchType {
				return false, nil, nil
			}
			return true, nil, e.client.Tracker().Delete(a.GetResource(), "", a.(clienttesting.PatchAction).GetName())
		})
		e.prober.notWidened = false
		equal(t, "once it is", e.mustSync(snap), "release mutatingadmissionpolicies/replica-policy-clamp",
			"apply mutatingadmissionpolicies/replica-policy-clamp", "apply mutatingwebhookconfigurations/replica-policy (narrow)")
	})

	t.Run("the configuration re-applied as installed: narrowed again, no policy rewritten", func(t *testing.T) {
		if _, err := ar.MutatingWebhookConfigurations().Update(ctx, installed(), metav1.UpdateOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
			t.Fatal(err)
		}
		equal(t, "the repair", e.mustSync(snap), "apply mutatingwebhookconfigurations/replica-policy (narrow)")
	})
}

func TestSyncNarrowsOnlyOnceEnforced(t *testing.T) {
	e := newEnv(t)
	snap := load(t, clampAndDeny)
	e.prober.enforced = false
	writes := e.syncNotYet(t, snap)
	equal(t, "a sync the API server does not enforce yet", writes,
		append([]string{"apply mutatingwebhookconfigurations/replica-policy (wide)"}, appliedClampAndDeny...)...)
	writes = e.syncNotYet(t, snap)
	equal(t, "the next sync, still not enforced", writes)
	e.prober.enforced = true
	equal(t, "once enforced", e.mustSync(snap), "apply mutatingwebhookconfigurations/replica-policy (narrow)")
}

// TestSyncNarrowsScaleToWhatSelectorsMayDecide: the /scale writes of kinds a selector rule
// names go to the scale entry next to the workload entry (its condition then says which),
// in the namespaces where such a rule may decide one; those of owned kinds stay in the
// workload entry; while the webhook is wide, the scale entry selects no namespace.
func TestSyncNarrowsScaleToWhatSelectorsMayDecide(t *testing.T) {
	e := newEnv(t)
	e.prober.enforced = false
	const doc = "rules:\n- {name: cap, namespaces: [prod], maxReplicas: 5}\n- {name: web, kinds: [StatefulSet], selector: {matchLabels: {app: web}}, maxReplicas: 4}\n- {name: rest, maxReplicas: 6}\n"
	e.syncNotYet(t, load(t, doc))
	main, scale := e.entries(t)
	if n := len(main.Rules); n != 2 || !reflect.DeepEqual(scale.NamespaceSelector, native.NoNamespaces()) {
		t.Errorf("wide: %d workload rules (want 2) and the scale entry's namespaceSelector %v, want none selected", n, scale.NamespaceSelector)
	}
	e.prober.enforced = true
	e.mustSync(load(t, doc))
	main, scale = e.entries(t)
	if len(main.Rules) != 1 || strings.Join(main.Rules[0].Resources, ",") != "replicasets/scale" {
		t.Errorf("narrowed workload rules %+v, want the /scale of ReplicaSets (owned) only", main.Rules)
	}
	if len(scale.Rules) != 1 || strings.Join(scale.Rules[0].Resources, ",") != "statefulsets/scale" {
		t.Errorf("the scale entry's rules %+v, want the /scale of StatefulSets (a selector rule names them)", scale.Rules)
	}
	// prod is decided by rule cap, which has no selector: no /scale write there reaches it.
	want := []metav1.LabelSelectorRequirement{
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system"}},
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"prod"}}}
	if !reflect.DeepEqual(scale.NamespaceSelector.MatchExpressions, want) {
		t.Errorf("the scale entry's namespaceSelector %+v, want %+v", scale.NamespaceSelector.MatchExpressions, want)
	}
	if scale.ClientConfig.URL == nil || *scale.ClientConfig.URL != *main.ClientConfig.URL || len(scale.MatchConditions) != 2 ||
		scale.MatchConditions[0].Name != "replicas-changed" || scale.MatchConditions[1] != main.MatchConditions[1] {
		t.Errorf("the scale entry %+v, want the workload entry's clientConfig and matchConditions", scale)
	}
	equal(t, "a second sync", e.mustSync(load(t, doc)))

	t.Run("a new CA bundle in the workload entry reaches the scale entry", func(t *testing.T) {
		mwc := e.webhook()
		mwc.Webhooks[0].ClientConfig.CABundle = []byte("new CA")
		if _, err := e.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(context.Background(), mwc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		equal(t, "the sync", e.mustSync(load(t, doc)), "apply mutatingwebhookconfigurations/replica-policy (narrow)")
		if _, scale := e.entries(t); string(scale.ClientConfig.CABundle) != "new CA" {
			t.Errorf("the scale entry's CA bundle %q, want the workload entry's", scale.ClientConfig.CABundle)
		}
	})
}

// TestSyncClosesAnEmptyWorkloadEntry: with no kind left for the workload entry (none may be
// owned, every one compiled), it keeps /scale rules, which an apply cannot omit, under a
// condition that never holds, so that a /scale write the scale entry takes is not sent twice.
func TestSyncClosesAnEmptyWorkloadEntry(t *testing.T) {
	e := newEnv(t)
	kinds := slices.DeleteFunc(slices.Clone(policy.BuiltinWorkloadKinds), func(k policy.WorkloadKind) bool { return k.Kind == "ReplicaSet" })
	e.s = New(e.client, e.store, func() bool { return true }, Options{
		Kinds: kinds, WebhookConfiguration: "replica-policy", Prober: e.prober, NamespaceSelector: e.s.opts.NamespaceSelector,
	}, logr.Discard())
	const doc = "rules:\n- {name: web, selector: {matchLabels: {app: web}}, maxReplicas: 4}\n"
	e.mustSync(load(t, doc))
	main, scale := e.entries(t)
	if i := slices.IndexFunc(main.MatchConditions, func(c admissionregistrationv1.MatchCondition) bool { return c.Name == ConditionName }); i < 0 || main.MatchConditions[i].Expression != "false" {
		t.Errorf("the workload entry's conditions %+v, want %s closed (false)", main.MatchConditions, ConditionName)
	}
	if len(scale.Rules) != 1 || strings.Join(scale.Rules[0].Resources, ",") != "deployments/scale,statefulsets/scale" ||
		scale.MatchConditions[len(scale.MatchConditions)-1].Expression == "false" {
		t.Errorf("the scale entry %+v, want the /scale of both kinds and the compiled condition", scale)
	}
	equal(t, "a second sync", e.mustSync(load(t, doc)))
}

// entries returns the workload entry of the webhook configuration and the scale entry next
// to it.
func (e *env) entries(t *testing.T) (main, scale admissionregistrationv1.MutatingWebhook) {
	t.Helper()
	var found int
	for _, w := range e.webhook().Webhooks {
		switch w.Name {
		case "mutate.replicapolicy.io":
			main = w
			found++
		case ScaleEntryPrefix + "mutate.replicapolicy.io":
			scale = w
			found++
		}
	}
	if found != 2 {
		t.Fatalf("the configuration lacks the workload entry or the scale entry next to it: %+v", e.webhook().Webhooks)
	}
	return main, scale
}

func TestSyncPolicyChange(t *testing.T) {
	e := newEnv(t)
	e.mustSync(load(t, clampAndDeny))

	t.Run("a rule's action changes: widen, apply, delete what is no longer needed, narrow", func(t *testing.T) {
		writes := e.mustSync(load(t, strings.Replace(clampAndDeny, "action: deny", "action: warn", 1)))
		// The bindings of clamp and clamped select the same namespaces as before: unchanged.
		equal(t, "the change", writes, "apply mutatingwebhookconfigurations/replica-policy (wide)",
			"apply mutatingadmissionpolicies/replica-policy-clamp",
			"apply validatingadmissionpolicies/replica-policy-warn", "apply validatingadmissionpolicybindings/replica-policy-warn",
			"apply validatingadmissionpolicies/replica-policy-clamped",
			"delete validatingadmissionpolicybindings/replica-policy-deny", "delete validatingadmissionpolicies/replica-policy-deny",
			"apply mutatingwebhookconfigurations/replica-policy (narrow)")
	})

	t.Run("a policy CEL cannot hold: widen first, then delete every native object", func(t *testing.T) {
		// A policy past the limits takes a minute to compile; the LimitError is what counts.
		e.s.compile = func(*policy.Snapshot, []policy.WorkloadKind, native.Options) (*native.Result, error) {
			return nil, &native.LimitError{Reason: "too large"}
		}
		defer func() { e.s.compile = native.Compile }()
		big := load(t, clampAndDeny)
		writes := e.mustSync(big)
		equal(t, "the sync", writes, "apply mutatingwebhookconfigurations/replica-policy (wide)",
			"delete mutatingadmissionpolicybindings/replica-policy-clamp", "delete mutatingadmissionpolicies/replica-policy-clamp",
			"delete validatingadmissionpolicybindings/replica-policy-warn", "delete validatingadmissionpolicybindings/replica-policy-clamped",
			"delete validatingadmissionpolicies/replica-policy-warn", "delete validatingadmissionpolicies/replica-policy-clamped")
		if rules := e.webhook().Webhooks[0].Rules; len(rules) != 2 {
			t.Errorf("rules %+v, want objects and /scale of every kind", rules)
		}
		equal(t, "the next sync", e.mustSync(big))
	})
}

func TestSyncClampWarningsOff(t *testing.T) {
	e := newEnv(t)
	e.mustSync(load(t, clampAndDeny))
	e.s.opts.Compile.ClampWarnings = false
	equal(t, "the sync without the clamp notice", e.mustSync(load(t, clampAndDeny)),
		"apply mutatingwebhookconfigurations/replica-policy (wide)",
		"delete validatingadmissionpolicybindings/replica-policy-clamped", "delete validatingadmissionpolicies/replica-policy-clamped",
		"apply mutatingwebhookconfigurations/replica-policy (narrow)")
}

func TestSyncRetriesAfterAnError(t *testing.T) {
	e := newEnv(t)
	snap := load(t, clampAndDeny)
	failures := 1
	e.client.PrependReactor("patch", "validatingadmissionpolicies", func(clienttesting.Action) (bool, runtime.Object, error) {
		if failures > 0 {
			failures--
			return true, nil, apierrors.NewServiceUnavailable("etcd is away")
		}
		return false, nil, nil
	})
	if _, err := e.sync(snap); err == nil || !strings.Contains(err.Error(), "etcd is away") {
		t.Fatalf("Sync: %v, want the API error", err)
	}
	if cond := e.webhook().Webhooks[0].MatchConditions; len(cond) != 2 || cond[1].Expression != "!(request.dryRun) || (request.options.fieldManager == 'probe')" {
		t.Errorf("after the failure, matchConditions %+v: want the webhook left wide", cond)
	}
	writes := e.mustSync(snap)
	equal(t, "the retry", writes, append(appliedClampAndDeny[2:], "apply mutatingwebhookconfigurations/replica-policy (narrow)")...)
}

func TestSyncNeedsTheConfiguration(t *testing.T) {
	e := newEnv(t)
	e.s.opts.WebhookConfiguration = "renamed"
	if _, err := e.sync(load(t, clampAndDeny)); err == nil || !apierrors.IsNotFound(errors.Unwrap(err)) {
		t.Errorf("Sync: %v, want NotFound", err)
	}
	if _, err := e.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), "renamed", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a configuration was created: %v", err)
	}
}

// TestSyncTakeover: a new leader over objects its predecessor left in force probes them and
// writes nothing: no widening, no gap.
func TestSyncTakeover(t *testing.T) {
	e := newEnv(t)
	snap := load(t, clampAndDeny)
	e.mustSync(snap)
	next := &fakeProber{enforced: true}
	e.s = New(e.client, e.store, func() bool { return true }, Options{
		Kinds: policy.BuiltinWorkloadKinds, WebhookConfiguration: "replica-policy", Prober: next,
		NamespaceSelector: e.s.opts.NamespaceSelector, Compile: e.s.opts.Compile,
	}, logr.Discard())
	equal(t, "the new leader's first sync", e.mustSync(snap))
	if next.calls != 1 {
		t.Errorf("the new leader probed %d times, want once", next.calls)
	}
	next.enforced = false
	e.s.proven = false
	writes := e.syncNotYet(t, snap)
	equal(t, "a leader that cannot prove what is in force", writes, "apply mutatingwebhookconfigurations/replica-policy (wide)")
}

// TestStartRepairsDrift: the running Syncer (its watch on the fake clientset) puts back a
// deleted policy and narrows the webhook again, with no call but the event.
func TestStartRepairsDrift(t *testing.T) {
	e := newEnv(t)
	// (internal/harness imports this package: the ConfigMap is built here.)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: policy.DefaultNamespace, Name: policy.DefaultConfigMapName},
		Data: map[string]string{policy.ConfigMapKey: header + clampAndDeny}}
	if _, err := e.store.Apply(cm); err != nil {
		t.Fatal(err)
	}
	e.s.log = testr.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.s.Start(ctx) }()
	defer func() { cancel(); <-done }()
	ar := e.client.AdmissionregistrationV1()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	narrowed := func() bool {
		m, err := ar.MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
		return err == nil && len(m.Webhooks[0].Rules) == 1
	}
	waitFor("the first sync", narrowed)
	if err := ar.MutatingAdmissionPolicies().Delete(ctx, "replica-policy-clamp", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the clamp policy back", func() bool {
		_, err := ar.MutatingAdmissionPolicies().Get(ctx, "replica-policy-clamp", metav1.GetOptions{})
		return err == nil
	})
	waitFor("narrowed again", narrowed)
}

// TestSyncScope: Options.Scope narrows every compiled binding and the workload webhook to
// the namespaces it selects, keeping their own requirements.
func TestSyncScope(t *testing.T) {
	scope := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{"prod", "strict"}}}}
	e := newEnv(t)
	e.s = New(e.client, e.store, func() bool { return true }, Options{
		Kinds: policy.BuiltinWorkloadKinds, WebhookConfiguration: "replica-policy", Prober: e.prober, Scope: scope,
		NamespaceSelector: e.s.opts.NamespaceSelector,
	}, logr.Discard())
	e.mustSync(load(t, clampAndDeny))
	ctx := context.Background()
	b, err := e.client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Get(ctx, "replica-policy-clamp", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sel := b.Spec.MatchResources.NamespaceSelector; len(sel.MatchExpressions) != 2 || sel.MatchExpressions[1].Operator != metav1.LabelSelectorOpIn {
		t.Errorf("the clamp binding's namespaceSelector %+v, want its own requirement and the scope's", sel)
	}
	if sel := e.webhook().Webhooks[0].NamespaceSelector; len(sel.MatchExpressions) != 2 || sel.MatchExpressions[1].Values[0] != "prod" {
		t.Errorf("the workload webhook's namespaceSelector %+v, want NotIn kube-system and the scope", sel)
	}
	equal(t, "a second sync", e.mustSync(load(t, clampAndDeny)))
}
