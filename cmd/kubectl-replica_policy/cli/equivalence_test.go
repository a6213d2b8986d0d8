package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/cmd/webhook/app"
	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/admission"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// TestCheckAgreesWithWebhook is the proof that check answers as the webhook: for generated
// policies and Deployments, written as files and judged through the whole command (flags,
// reading, decoding, JSON output), each result and message is what admission.Decide gives
// the same object's CREATE: deny is a rejection with its message, clamp is /mutate's patch
// with its warning, warn is the warning of the stage that gives it, skip is an exempt
// namespace, an owned workload, no rule, labels the webhook would not know, or a negative
// count; pass is everything else.
func TestCheckAgreesWithWebhook(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 2026))
	dir := t.TempDir()
	// Namespaces with a Namespace object in the input, and their labels; "orphan" has none,
	// so its labels are unknown to check (and would be to a webhook whose cache lacks it).
	nsNames := []string{"a", "b", "team-1", "team-2", "c", "ex", "default", policy.DefaultNamespace}
	counts := map[Result]int{}
	const policies, objects = 120, 40
	for p := range policies {
		pol := harness.RandomPolicy(rng)
		polFile := filepath.Join(dir, fmt.Sprintf("policy-%d.yaml", p))
		harness.WriteYAML(t, polFile, pol)
		snap, err := policy.Compile(pol, policy.Options{AlwaysExempt: []string{policy.DefaultNamespace}})
		if err != nil {
			t.Fatalf("generated policy %d: %v", p, err)
		}

		var manifest strings.Builder
		nsLabels := map[string]map[string]string{}
		for _, ns := range nsNames {
			if rng.IntN(5) == 0 {
				continue // no Namespace object: its labels are unknown
			}
			l := map[string]string{}
			if v := harness.Pick(rng, "prod", "dev", ""); v != "" {
				l["env"] = v
			}
			fmt.Fprintf(&manifest, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: %s\n", ns, flow(l))
			l["kubernetes.io/metadata.name"] = ns // as the API server sets it
			nsLabels[ns] = l
		}
		var subjects []policy.Subject
		var replicas []*int32
		for i := range objects {
			ns := harness.Pick(rng, append(nsNames, "orphan", "")...)
			labels := map[string]string{}
			if v := harness.Pick(rng, "web", "db", "other", ""); v != "" {
				labels["app"] = v
			}
			var r *int32
			if rng.IntN(8) != 0 {
				// Not negative: the API server refuses that before the webhook's answer
				// matters, and check says so with an error result (TestRefusedObjects).
				v := []int32{0, 1, 2, 3, 4, 5, 7, 10, 11, 50}[rng.IntN(10)]
				r = &v
			}
			name := fmt.Sprintf("w%d", i)
			fmt.Fprintf(&manifest, "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\n", name)
			if ns != "" {
				fmt.Fprintf(&manifest, "  namespace: %s\n", ns)
			} else {
				ns = "default" // the --namespace default
			}
			fmt.Fprintf(&manifest, "  labels: %s\n", flow(labels))
			var owner *policy.Owner
			switch rng.IntN(12) {
			case 0: // managed by a bounded workload: the owner is bounded instead
				owner = &policy.Owner{Group: "apps", Kind: "Deployment", Name: "parent"}
				manifest.WriteString("  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: parent, uid: u, controller: true}]\n")
			case 1: // owned, but not by its controller, or by a kind that is not bounded
				manifest.WriteString("  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: p, uid: u}, {apiVersion: example.com/v1, kind: Rollout, name: r, uid: v, controller: true}]\n")
			}
			manifest.WriteString("spec:\n")
			if r != nil {
				fmt.Fprintf(&manifest, "  replicas: %d\n", *r)
			}
			manifest.WriteString("  template: {spec: {containers: [{name: c, image: nginx}]}}\n")
			l, known := nsLabels[ns]
			subjects = append(subjects, policy.Subject{Group: "apps", Kind: "Deployment", Namespace: ns, Name: name, Labels: labels, NamespaceLabels: l, NamespaceLabelsUnknown: !known, Owner: owner})
			replicas = append(replicas, r)
		}

		code, out, errOut := run(t, manifest.String(), "check", "-p", polFile, "-f", "-", "-o", "json", "--fail-on", "warn")
		if code == ExitError {
			t.Fatalf("policy %d: exit 2: %s", p, errOut)
		}
		var rep struct {
			Results []struct {
				Name    string
				Rule    *string
				Want    *int32
				Result  Result
				Message string
			}
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Results) != objects {
			t.Fatalf("policy %d: %d results, want %d", p, len(rep.Results), objects)
		}
		failing := false
		for i, got := range rep.Results {
			subj := subjects[i]
			req := admission.Request{Operation: admissionv1.Create, Subject: subj, Replicas: policy.Replicas(replicas[i])}
			mutate := admission.Decide(snap, req, admission.Mutate)
			validate := admission.Decide(snap, req, admission.Validate)
			want, msg := webhookResult(mutate, validate)
			counts[want]++
			failing = failing || want.severity() >= Warn.severity()
			ctx := fmt.Sprintf("policy %d, %s/%s replicas %v", p, subj.Namespace, subj.Name, replicas[i])
			if got.Name != subj.Name || got.Result != want {
				t.Errorf("%s: check says %s (%s), the webhook %s (mutate %+v, validate %+v)", ctx, got.Result, got.Message, want, mutate, validate)
				continue
			}
			if replicas[i] == nil {
				got.Message = strings.TrimSuffix(got.Message, omittedReplicas)
			}
			if msg != "" && got.Message != msg {
				t.Errorf("%s: check's message\n%s\nthe webhook's\n%s", ctx, got.Message, msg)
			}
			if want == Clamp && (got.Want == nil || *got.Want != *mutate.Replicas) {
				t.Errorf("%s: check wants %v, the webhook patches to %d", ctx, got.Want, *mutate.Replicas)
			}
			if want != Skip && (got.Rule == nil || *got.Rule != mutate.Rule) {
				t.Errorf("%s: check's rule %v, the webhook's %q", ctx, got.Rule, mutate.Rule)
			}
		}
		if wantCode := map[bool]int{true: ExitFound, false: ExitOK}[failing]; code != wantCode {
			t.Errorf("policy %d: exit %d, want %d", p, code, wantCode)
		}
	}
	// The generator must reach every result, or the test proves less than it says.
	for _, r := range []Result{Pass, Clamp, Deny, Warn, Skip} {
		if counts[r] < 50 {
			t.Errorf("only %d %s results among %d objects: the generator does not cover them", counts[r], r, policies*objects)
		}
	}
	t.Logf("results: %v", counts)
}

// webhookResult is the result the webhook's two stages come to for a CREATE, and the text
// the user sees: /mutate's rejection or clamp warning, /validate's warning.
func webhookResult(mutate, validate admission.Decision) (Result, string) {
	switch {
	case !mutate.Allowed:
		return Deny, mutate.Message
	case mutate.Outcome == admission.OutcomeClamped:
		return Clamp, mutate.Warnings[0]
	case !validate.Allowed:
		return Deny, validate.Message // cannot happen after a clamp: caught as a mismatch
	case mutate.Outcome == admission.OutcomeWarned:
		return Warn, mutate.Warnings[0]
	case validate.Outcome == admission.OutcomeWarned:
		return Warn, validate.Warnings[0]
	case mutate.Outcome == admission.OutcomeExempt, mutate.Outcome == admission.OutcomeOwned,
		mutate.Outcome == admission.OutcomeNoRule, mutate.Outcome == admission.OutcomeUnknown:
		return Skip, ""
	case mutate.Rule == "":
		return Skip, "" // a negative count, left to the API server
	}
	return Pass, ""
}

// flow renders labels as a YAML flow mapping.
func flow(m map[string]string) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// TestCheckAgreesWithWebhookOnAutoscalers is the proof that check judges
// HorizontalPodAutoscalers as the webhook does, against the webhook's real answers: a
// kube-apiserver with the webhook configurations of manifests/base calls this process's
// webhook (app.Run, the binary's own wiring, scaler off). Namespaces and workloads are
// created once; then, for each generated policy, every generated HPA is created as
// autoscaling/v1 or v2 (a dry run: the webhook answers, nothing is stored) and check
// judges the same objects from a file. The answers must agree: a denial is check's deny
// results, their messages joined by "; "; a patched range is check's clamp results, their
// wants the patched ends and their messages the warnings; a warning without a patch is
// check's warn results (or a skip, when the webhook could not read the target's labels);
// no patch and no warning is a pass or a skip; an API server validation error (minReplicas
// above maxReplicas) is a skip.
func TestCheckAgreesWithWebhookOnAutoscalers(t *testing.T) {
	cp := startWebhook(t)
	ctx := context.Background()
	cfg := rest.CopyConfig(cp.Config)
	cfg.WarningHandlerWithContext = harness.ContextWarnings{}
	cs := kubernetes.NewForConfigOrDie(cfg)
	rng := rand.New(rand.NewPCG(37, 2026))

	// The cluster and check's input hold the same Namespaces and workloads: what the
	// webhook's caches know, the input says.
	var input strings.Builder
	nsNames := []string{"a", "b", "team-1", "c", "ex", "default"}
	for _, ns := range nsNames {
		l := map[string]string{}
		if v := harness.Pick(rng, "prod", "dev", ""); v != "" && ns != "default" {
			l["env"] = v
		}
		if ns != "default" {
			mustDo(t, func() error {
				_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: l}}, metav1.CreateOptions{})
				return err
			})
		}
		fmt.Fprintf(&input, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: %s}\n", ns, flow(l))
	}
	type workloadRef struct{ ns, kind, name string }
	var workloads []workloadRef
	isTrue := true
	for i := range 24 {
		w := workloadRef{ns: harness.Pick(rng, nsNames...), kind: harness.Pick(rng, "Deployment", "Deployment", "StatefulSet"), name: fmt.Sprintf("w%d", i)}
		labels := map[string]string{}
		if v := harness.Pick(rng, "web", "db", ""); v != "" {
			labels["app"] = v
		}
		var owners []metav1.OwnerReference
		ownersYAML := ""
		if i%6 == 0 { // managed by a bounded workload: its HPA is not bounded either
			owners = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "parent", UID: "5d1f0c2e-8c1a-4a51-9a43-2f8d9a0b7c11", Controller: &isTrue}}
			ownersYAML = "  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: parent, uid: 5d1f0c2e-8c1a-4a51-9a43-2f8d9a0b7c11, controller: true}]\n"
		}
		mustDo(t, func() error {
			var err error
			if w.kind == "Deployment" {
				d := harness.Deployment(w.ns, w.name, 1, labels)
				d.OwnerReferences = owners
				_, err = cs.AppsV1().Deployments(w.ns).Create(ctx, d, metav1.CreateOptions{})
			} else {
				s := harness.StatefulSet(w.ns, w.name, 1, labels)
				s.OwnerReferences = owners
				_, err = cs.AppsV1().StatefulSets(w.ns).Create(ctx, s, metav1.CreateOptions{})
			}
			return err
		})
		fmt.Fprintf(&input, "---\napiVersion: apps/v1\nkind: %s\nmetadata:\n  name: %s\n  namespace: %s\n  labels: %s\n%sspec: {replicas: 1}\n", w.kind, w.name, w.ns, flow(labels), ownersYAML)
		workloads = append(workloads, w)
	}
	// The probe, created last: once the webhook denies its HPAs by the probe rule of a
	// policy, that policy is in force and the caches hold every Namespace and workload above
	// (each informer receives its kind's objects in the order they were written).
	probe := map[string]string{"probe": "yes"}
	mustDo(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "probe", Labels: probe}}, metav1.CreateOptions{})
		return err
	})
	mustDo(t, func() error {
		_, err := cs.AppsV1().Deployments("probe").Create(ctx, harness.Deployment("probe", "target", 1, probe), metav1.CreateOptions{})
		return err
	})
	mustDo(t, func() error {
		_, err := cs.AppsV1().StatefulSets("probe").Create(ctx, harness.StatefulSet("probe", "target", 1, probe), metav1.CreateOptions{})
		return err
	})

	dir := t.TempDir()
	counts := map[Result]int{}
	const policies, autoscalers = 12, 40
	for p := range policies {
		pol := harness.RandomPolicy(rng)
		probeRule := fmt.Sprintf("probe-%d", p)
		one := int32(1)
		pol.Rules = append([]policy.Rule{{Name: probeRule, Namespaces: []string{"probe"},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: probe}, Selector: &metav1.LabelSelector{MatchLabels: probe},
			BoundsSpec: policy.BoundsSpec{MaxReplicas: &one, Action: policy.ActionDeny}}}, pol.Rules...)
		polFile := filepath.Join(dir, fmt.Sprintf("policy-%d.yaml", p))
		doc := harness.WriteYAML(t, polFile, pol)
		if err := harness.SetPolicy(ctx, cs, doc); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{"Deployment", "StatefulSet"} {
			h := newAutoscaler("probe", "probe-"+strings.ToLower(kind), "apps/v1", kind, "target", nil, 5, nil)
			harness.Eventually(t, 15*time.Second, 50*time.Millisecond, "policy "+probeRule+" in force", func() (bool, string) {
				_, err := cs.AutoscalingV2().HorizontalPodAutoscalers("probe").Create(ctx, h, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				return err != nil && strings.Contains(err.Error(), fmt.Sprintf("%q", probeRule)), fmt.Sprint(err)
			})
		}

		// The HPAs: most target a workload of their namespace; some a workload that does not
		// exist, or a kind that is not bounded; some are KEDA's.
		var hpas strings.Builder
		var created []*autoscalingv2.HorizontalPodAutoscaler
		v1 := map[string]bool{}
		for i := range autoscalers {
			ns := harness.Pick(rng, nsNames...)
			apiVersion, kind, target := "apps/v1", "Deployment", "ghost"
			var local []workloadRef
			for _, w := range workloads {
				if w.ns == ns {
					local = append(local, w)
				}
			}
			switch n := rng.IntN(10); {
			case n == 0:
				apiVersion, kind, target = "v1", "ReplicationController", "legacy"
			case n == 1 || len(local) == 0: // not in the cluster, nor in the input
			default:
				w := local[rng.IntN(len(local))]
				kind, target = w.kind, w.name
			}
			var minReplicas *int32
			if rng.IntN(3) != 0 {
				v := []int32{1, 2, 3, 5}[rng.IntN(4)]
				minReplicas = &v
			}
			maxReplicas := []int32{1, 2, 3, 4, 5, 7, 10, 11, 50}[rng.IntN(9)]
			var owner *metav1.OwnerReference
			if rng.IntN(8) == 0 {
				owner = &metav1.OwnerReference{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "so", UID: "7a0e6f4c-2b9d-4d8e-9f1a-3c5b7d9e1f20", Controller: &isTrue}
			}
			h := newAutoscaler(ns, fmt.Sprintf("h%d", i), apiVersion, kind, target, minReplicas, maxReplicas, owner)
			created = append(created, h)
			version := harness.Pick(rng, "v1", "v2")
			v1[h.Name] = version == "v1"
			fmt.Fprintf(&hpas, "---\napiVersion: autoscaling/%s\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: %s\n  namespace: %s\n", version, h.Name, ns)
			if owner != nil {
				fmt.Fprintf(&hpas, "  ownerReferences: [{apiVersion: %s, kind: %s, name: %s, uid: %s, controller: true}]\n", owner.APIVersion, owner.Kind, owner.Name, owner.UID)
			}
			fmt.Fprintf(&hpas, "spec:\n  scaleTargetRef: {apiVersion: %s, kind: %s, name: %s}\n", apiVersion, kind, target)
			if minReplicas != nil {
				fmt.Fprintf(&hpas, "  minReplicas: %d\n", *minReplicas)
			}
			fmt.Fprintf(&hpas, "  maxReplicas: %d\n", maxReplicas)
		}

		code, out, errOut := run(t, input.String()+hpas.String(), "check", "-p", polFile, "-f", "-", "-o", "json")
		if code == ExitError {
			t.Fatalf("policy %d: exit 2: %s", p, errOut)
		}
		var rep struct {
			Results []struct {
				Kind, Name, Field string
				Want              *int32
				Result            Result
				Message           string
			}
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		type result struct {
			field   string
			want    *int32
			result  Result
			message string
		}
		byName := map[string][]result{}
		for _, r := range rep.Results {
			if r.Kind == policy.AutoscalerKind {
				byName[r.Name] = append(byName[r.Name], result{r.Field, r.Want, r.Result, r.Message})
			}
		}

		for _, h := range created {
			got := byName[h.Name]
			asked := policy.Range{Min: policy.Replicas(h.Spec.MinReplicas), Max: h.Spec.MaxReplicas}
			ctx, warnings := harness.WithWarnings(ctx)
			stored, err := createAutoscaler(ctx, cs, h, v1[h.Name])
			ws := warnings.Take()
			where := fmt.Sprintf("policy %d, HPA %s/%s %s of %s %s (v1 %t, controlled %t)", p, h.Namespace, h.Name, asked, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name, v1[h.Name], len(h.OwnerReferences) > 0)
			if len(got) == 0 {
				t.Errorf("%s: no result from check", where)
				continue
			}
			results := func() []Result {
				var rs []Result
				for _, g := range got {
					rs = append(rs, g.result)
				}
				return rs
			}
			messages := func() string {
				var ms []string
				for _, g := range got {
					if !slices.Contains(ms, g.message) {
						ms = append(ms, g.message)
					}
				}
				return strings.Join(ms, "; ")
			}
			all := func(r Result) bool {
				for _, g := range got {
					if g.result != r {
						return false
					}
				}
				return true
			}
			var want Result
			switch {
			case err != nil && strings.Contains(err.Error(), "denied the request"):
				want = Deny
				if !all(Deny) || !strings.HasSuffix(err.Error(), "denied the request: "+messages()) {
					t.Errorf("%s: the webhook denies it (%v); check says %v: %s", where, err, results(), messages())
				}
			case err != nil:
				want = Skip // the API server's own validation
				if len(got) != 1 || got[0].result != Skip || asked.Min <= asked.Max {
					t.Errorf("%s: the API server rejects it (%v); check says %v: %s", where, err, results(), messages())
				}
			case stored != asked:
				want = Clamp
				if !all(Clamp) || messages() != strings.Join(ws, "; ") {
					t.Errorf("%s: the webhook patches it to %s with warnings %q; check says %v: %s", where, stored, ws, results(), messages())
				}
				for _, g := range got {
					if w := map[string]int32{policy.HPAFields.Min: stored.Min, policy.HPAFields.Max: stored.Max}[g.field]; g.want == nil || *g.want != w {
						t.Errorf("%s: check wants %s %v, the webhook patches it to %d", where, g.field, g.want, w)
					}
				}
			case len(ws) > 0 && strings.Contains(ws[0], "could not be checked"):
				want = Skip
				if len(got) != 1 || got[0].result != Skip || !strings.Contains(got[0].message, "labels") {
					t.Errorf("%s: the webhook cannot read its target's labels (%q); check says %v: %s", where, ws, results(), messages())
				}
			case len(ws) > 0:
				want = Warn
				if !all(Warn) || len(ws) != 1 || messages() != ws[0] {
					t.Errorf("%s: the webhook warns %q; check says %v: %s", where, ws, results(), messages())
				}
			default:
				want = got[0].result
				if len(got) != 1 || (want != Pass && want != Skip) {
					t.Errorf("%s: the webhook allows it as it is, without a warning; check says %v: %s", where, results(), messages())
				}
			}
			counts[want]++
		}
	}
	// The generator must reach every answer, or the test proves less than it says.
	for _, r := range []Result{Pass, Clamp, Deny, Warn, Skip} {
		if counts[r] < 10 {
			t.Errorf("only %d %s answers among %d HPAs: the generator does not cover them", counts[r], r, policies*autoscalers)
		}
	}
	t.Logf("answers: %v", counts)
}

// newAutoscaler is an autoscaling/v2 HPA of target (apiVersion, kind, name) with the range
// [minReplicas, maxReplicas] and, when not nil, a controller of its own.
func newAutoscaler(ns, name, apiVersion, kind, target string, minReplicas *int32, maxReplicas int32, controller *metav1.OwnerReference) *autoscalingv2.HorizontalPodAutoscaler {
	h := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: apiVersion, Kind: kind, Name: target},
			MinReplicas:    minReplicas,
			MaxReplicas:    maxReplicas,
		},
	}
	if controller != nil {
		h.OwnerReferences = []metav1.OwnerReference{*controller}
	}
	return h
}

// createAutoscaler creates h in a dry run, as autoscaling/v1 when v1 is set (the API
// server converts it for the webhook, registered for v2), and returns the range the API
// server would store.
func createAutoscaler(ctx context.Context, cs kubernetes.Interface, h *autoscalingv2.HorizontalPodAutoscaler, v1 bool) (policy.Range, error) {
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	if !v1 {
		got, err := cs.AutoscalingV2().HorizontalPodAutoscalers(h.Namespace).Create(ctx, h, dryRun)
		if err != nil {
			return policy.Range{}, err
		}
		return policy.Range{Min: policy.Replicas(got.Spec.MinReplicas), Max: got.Spec.MaxReplicas}, nil
	}
	ref := h.Spec.ScaleTargetRef
	got, err := cs.AutoscalingV1().HorizontalPodAutoscalers(h.Namespace).Create(ctx, &autoscalingv1.HorizontalPodAutoscaler{
		ObjectMeta: h.ObjectMeta,
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name},
			MinReplicas:    h.Spec.MinReplicas,
			MaxReplicas:    h.Spec.MaxReplicas,
		},
	}, dryRun)
	if err != nil {
		return policy.Range{}, err
	}
	return policy.Range{Min: policy.Replicas(got.Spec.MinReplicas), Max: got.Spec.MaxReplicas}, nil
}

// startWebhook starts a control plane with the webhook configurations of manifests/base
// and, in this process, the webhook they call (app.Run, the scaler off), and waits until
// it is ready.
func startWebhook(t *testing.T) *harness.ControlPlane {
	t.Helper()
	return startWebhookOn(t, harness.ControlPlaneOptions{
		WebhookPaths: []string{filepath.Join(harness.RepoRoot(), "manifests", "base", "webhooks.yaml")},
	})
}

// startWebhookOn is startWebhook with the webhook configurations (and CRDs) of opts.
func startWebhookOn(t *testing.T, opts harness.ControlPlaneOptions) *harness.ControlPlane {
	t.Helper()
	cp := harness.StartControlPlane(t, opts)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cp.AdminKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	o := app.NewOptions()
	o.Kubeconfig = kubeconfig
	o.CertDir = cp.WebhookInstallOptions.LocalServingCertDir
	o.Port = cp.WebhookInstallOptions.LocalServingPort
	o.MetricsBindAddress = "0"
	health := fmt.Sprintf("127.0.0.1:%d", harness.MustFreePort(t))
	o.HealthProbeBindAddress = health
	o.EnableScaler = false
	o.ShutdownDelay = 0
	harness.RunInBackground(t, "webhook", 40*time.Second, func(ctx context.Context) error { return app.Run(ctx, o) })
	mustDo(t, func() error {
		_, err := cp.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: policy.DefaultNamespace}}, metav1.CreateOptions{})
		return err
	})
	harness.Eventually(t, 30*time.Second, 100*time.Millisecond, "the webhook ready", func() (bool, string) {
		resp, err := http.Get("http://" + health + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return cp
}

func mustDo(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}
