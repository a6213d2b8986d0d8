package cli

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

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
		pol := randomPolicy(rng)
		polFile := filepath.Join(dir, fmt.Sprintf("policy-%d.yaml", p))
		writeYAML(t, polFile, pol)
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
			if v := pick(rng, "prod", "dev", ""); v != "" {
				l["env"] = v
			}
			fmt.Fprintf(&manifest, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: %s\n", ns, flow(l))
			l["kubernetes.io/metadata.name"] = ns // as the API server sets it
			nsLabels[ns] = l
		}
		var subjects []policy.Subject
		var replicas []*int32
		for i := range objects {
			ns := pick(rng, append(nsNames, "orphan", "")...)
			labels := map[string]string{}
			if v := pick(rng, "web", "db", "other", ""); v != "" {
				labels["app"] = v
			}
			var r *int32
			if rng.IntN(8) != 0 {
				v := []int32{-1, 0, 1, 2, 3, 4, 5, 7, 10, 11, 50}[rng.IntN(11)]
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
			failing = failing || want.severity() > 0
			ctx := fmt.Sprintf("policy %d, %s/%s replicas %v", p, subj.Namespace, subj.Name, replicas[i])
			if got.Name != subj.Name || got.Result != want {
				t.Errorf("%s: check says %s (%s), the webhook %s (mutate %+v, validate %+v)", ctx, got.Result, got.Message, want, mutate, validate)
				continue
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

func randomPolicy(rng *rand.Rand) *policy.ReplicaPolicy {
	i32 := func(v int32) *int32 { return &v }
	bounds := func() policy.BoundsSpec {
		var b policy.BoundsSpec
		for b.MinReplicas == nil && b.MaxReplicas == nil {
			if rng.IntN(3) != 0 {
				b.MinReplicas = i32([]int32{0, 1, 2, 3}[rng.IntN(4)])
			}
			if rng.IntN(3) != 0 {
				b.MaxReplicas = i32([]int32{3, 4, 5, 10}[rng.IntN(4)])
			}
		}
		if b.MinReplicas != nil && b.MaxReplicas != nil && *b.MinReplicas > *b.MaxReplicas {
			b.MinReplicas, b.MaxReplicas = b.MaxReplicas, b.MinReplicas
		}
		b.AllowZero = rng.IntN(4) == 0
		b.Action = []policy.Action{"", policy.ActionClamp, policy.ActionDeny, policy.ActionWarn}[rng.IntN(4)]
		return b
	}
	p := &policy.ReplicaPolicy{APIVersion: policy.APIVersion, Kind: policy.Kind}
	if rng.IntN(2) == 0 {
		p.ExemptNamespaces = []string{"ex"}
	}
	if rng.IntN(2) == 0 {
		b := bounds()
		p.Default = &b
	}
	for i := range rng.IntN(5) {
		r := policy.Rule{Name: fmt.Sprintf("r%d", i), BoundsSpec: bounds()}
		if rng.IntN(2) == 0 {
			r.Namespaces = [][]string{{"a"}, {"b", "c"}, {"team-*"}, {"a", "team-?"}}[rng.IntN(4)]
		}
		if rng.IntN(4) == 0 {
			r.Kinds = [][]string{{"Deployment"}, {"StatefulSet"}, {"Deployment", "Database.example.com"}}[rng.IntN(3)]
		}
		if rng.IntN(3) == 0 {
			r.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"env": pick(rng, "prod", "dev")}}
		}
		if rng.IntN(3) == 0 {
			r.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{pick(rng, "web", "db")}}}}
		}
		p.Rules = append(p.Rules, r)
	}
	return p
}

func pick(rng *rand.Rand, xs ...string) string { return xs[rng.IntN(len(xs))] }

// flow renders labels as a YAML flow mapping.
func flow(m map[string]string) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := sigsyaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
