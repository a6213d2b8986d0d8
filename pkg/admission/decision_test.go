package admission

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// Decide is tested directly: policies from YAML through policy.Load, requests as structs.
// The matrix test derives the expected answer from the semantics in docs/design.md for every
// action, stage, operation, kind and replica count; the tests after it pin exact texts and
// the matching rules (first match, globs, selectors, exemptions, unknown labels).

const header = "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\n"

// matrixPolicy has one rule per action, with and without allowZero, all bounding [2, 10],
// each selected by its namespace.
const matrixPolicy = header + `rules:
- {name: r-clamp, namespaces: [clamp], minReplicas: 2, maxReplicas: 10}
- {name: r-deny, namespaces: [deny], minReplicas: 2, maxReplicas: 10, action: deny}
- {name: r-warn, namespaces: [warn], minReplicas: 2, maxReplicas: 10, action: warn}
- {name: r-clamp-zero, namespaces: [clamp-zero], minReplicas: 2, maxReplicas: 10, allowZero: true}
- {name: r-deny-zero, namespaces: [deny-zero], minReplicas: 2, maxReplicas: 10, allowZero: true, action: deny}
- {name: r-warn-zero, namespaces: [warn-zero], minReplicas: 2, maxReplicas: 10, allowZero: true, action: warn}
`

func TestDecideMatrix(t *testing.T) {
	snap := mustLoad(t, matrixPolicy)
	values := []int32{0, 1, 2, 3, 9, 10, 11, 50, 1 << 30}
	type op struct {
		name string
		op   admissionv1.Operation
		old  func(r int32) *int32 // nil: CREATE
	}
	ops := []op{
		{"create", admissionv1.Create, func(int32) *int32 { return nil }},
		{"update from in-bounds 5", admissionv1.Update, func(int32) *int32 { return ptr.To(int32(5)) }},
		{"update from out-of-bounds 40", admissionv1.Update, func(int32) *int32 { return ptr.To(int32(40)) }},
		{"update from 0", admissionv1.Update, func(int32) *int32 { return ptr.To(int32(0)) }},
		{"update unchanged", admissionv1.Update, func(r int32) *int32 { return ptr.To(r) }},
	}
	cases := 0
	for _, action := range policy.Actions {
		for _, allowZero := range []bool{false, true} {
			ns := string(action)
			if allowZero {
				ns += "-zero"
			}
			rule := "r-" + ns
			for _, kind := range []string{"Deployment", "Scale"} {
				for _, o := range ops {
					if kind == "Scale" && o.op == admissionv1.Create {
						continue // the scale subresource is only ever updated
					}
					for _, stage := range []Stage{Mutate, Validate} {
						for _, v := range values {
							req := Request{Operation: o.op, Replicas: v, OldReplicas: o.old(v),
								Subject: policy.Subject{Kind: kind, Name: "api", Namespace: ns}}
							name := fmt.Sprintf("%s/%s/%s/%s/%d", ns, kind, o.name, stage, v)
							if o.old(v) != nil && *o.old(v) == v && o.name != "update unchanged" {
								continue // same as "update unchanged"
							}
							cases++
							checkContract(t, name, Decide(snap, req, stage), req, stage, action, allowZero, rule)
						}
					}
				}
			}
		}
	}
	t.Logf("%d cases", cases)
}

// checkContract asserts what docs/design.md promises for bounds [2, 10] (or 0 with allowZero).
func checkContract(t *testing.T, name string, d Decision, req Request, stage Stage, action policy.Action, allowZero bool, rule string) {
	t.Helper()
	v := req.Replicas
	inBounds := (v >= 2 && v <= 10) || (allowZero && v == 0)
	nearest := v
	switch {
	case inBounds:
	case v < 2:
		nearest = 2
	default:
		nearest = 10
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: "+format+"\n decision: %+v", append([]any{name}, append(args, d)...)...)
	}
	unchanged := req.Operation == admissionv1.Update && *req.OldReplicas == v
	switch {
	case unchanged || inBounds:
		if !d.Allowed || d.Replicas != nil || len(d.Warnings) != 0 || d.Message != "" {
			fail("want allowed untouched and silent")
		}
		if unchanged && d.Outcome != OutcomeUnchanged {
			fail("outcome %q, want %q", d.Outcome, OutcomeUnchanged)
		}
		if !unchanged && (d.Outcome != OutcomeAllowed || d.Rule != rule) {
			fail("outcome %q rule %q, want %q by %q", d.Outcome, d.Rule, OutcomeAllowed, rule)
		}
		return
	}
	if d.Rule != rule || d.Action != action {
		fail("rule %q action %q, want %q %q", d.Rule, d.Action, rule, action)
	}
	switch {
	case action == policy.ActionClamp && stage == Mutate:
		want := fmt.Sprintf("%s %q: spec.replicas %d clamped to %d by replica policy rule %q", req.Subject.Kind, req.Subject.Name, v, nearest, rule)
		if !d.Allowed || d.Replicas == nil || *d.Replicas != nearest || !slices.Equal(d.Warnings, []string{want}) || d.Outcome != OutcomeClamped {
			fail("want clamped to %d with warning %q", nearest, want)
		}
	case action == policy.ActionWarn && stage == Mutate:
		// /mutate decides every write in one call: the warning is given there.
		if !d.Allowed || d.Replicas != nil || len(d.Warnings) != 1 || d.Outcome != OutcomeWarned {
			fail("want allowed with one warning")
		} else {
			checkOutOfBoundsText(t, name, d.Warnings[0], req, rule)
		}
	case action == policy.ActionWarn && stage == Validate:
		// ...and not again by /validate, where a configuration still sends the write.
		if !d.Allowed || d.Replicas != nil || len(d.Warnings) != 0 {
			fail("want allowed, unchanged, without a warning")
		}
	default: // deny at both stages, clamp at Validate
		if d.Allowed || d.Replicas != nil || d.Outcome != OutcomeDenied {
			fail("want denied without a patch")
		}
		checkOutOfBoundsText(t, name, d.Message, req, rule)
		clampNote := strings.Contains(d.Message, "clamp was not applied")
		if want := action == policy.ActionClamp; clampNote != want {
			fail("message mentions the clamp not applied: %t, want %t", clampNote, want)
		}
	}
}

// checkOutOfBoundsText: a deny message or warn warning names the field, the value, the
// bounds and the rule.
func checkOutOfBoundsText(t *testing.T, name, text string, req Request, rule string) {
	t.Helper()
	for _, part := range []string{"spec.replicas", fmt.Sprintf(" %d:", req.Replicas), "[2, 10]", fmt.Sprintf("rule %q", rule), fmt.Sprintf("%s %q", req.kindName(), req.Subject.Name)} {
		if !strings.Contains(text, part) {
			t.Errorf("%s: %q does not mention %q", name, text, part)
		}
	}
}

// prodWeb is the rule of the example policy in docs/design.md.
const prodWeb = header + `rules:
- name: prod-web
  namespaces: [prod, "team-*"]
  minReplicas: 2
  maxReplicas: 10
`

func deployment(ns string, replicas int32) Request {
	return Request{Operation: admissionv1.Create, Replicas: replicas, Subject: policy.Subject{Kind: "Deployment", Name: "web", Namespace: ns}}
}

func TestDecideClampTexts(t *testing.T) {
	snap := mustLoad(t, prodWeb)
	for _, tc := range []struct {
		replicas, want int32
		warning        string
	}{
		{50, 10, `Deployment "web": spec.replicas 50 clamped to 10 by replica policy rule "prod-web"`},
		{11, 10, `Deployment "web": spec.replicas 11 clamped to 10 by replica policy rule "prod-web"`},
		{1, 2, `Deployment "web": spec.replicas 1 clamped to 2 by replica policy rule "prod-web"`},
		{0, 2, `Deployment "web": spec.replicas 0 clamped to 2 by replica policy rule "prod-web"`},
	} {
		d := Decide(snap, deployment("prod", tc.replicas), Mutate)
		if !d.Allowed || d.Replicas == nil || *d.Replicas != tc.want {
			t.Errorf("%d: want allowed and clamped to %d, got %+v", tc.replicas, tc.want, d)
			continue
		}
		if !slices.Equal(d.Warnings, []string{tc.warning}) {
			t.Errorf("%d: warnings %q, want exactly %q", tc.replicas, d.Warnings, tc.warning)
		}
	}
	for _, v := range []int32{2, 5, 10} {
		if d := Decide(snap, deployment("prod", v), Mutate); !d.Allowed || d.Replicas != nil || len(d.Warnings) > 0 {
			t.Errorf("%d in bounds: want no patch and no warning, got %+v", v, d)
		}
	}
	// Validate: the mutation did not happen (another webhook undid it, or /mutate was not called).
	d := Decide(snap, deployment("prod", 50), Validate)
	if d.Allowed {
		t.Fatalf("clamp rule at Validate with 50 > 10 was allowed: %+v", d)
	}
	for _, part := range []string{"spec.replicas", "50", "[2, 10]", `"prod-web"`, "the clamp was not applied"} {
		if !strings.Contains(d.Message, part) {
			t.Errorf("message %q does not mention %q", d.Message, part)
		}
	}
}

func TestDecideDenyAndWarnTexts(t *testing.T) {
	deny := mustLoad(t, header+"rules:\n- {name: prod-web, namespaces: [prod], minReplicas: 2, maxReplicas: 10, action: deny}\n")
	warn := mustLoad(t, header+"rules:\n- {name: prod-web, namespaces: [prod], minReplicas: 2, maxReplicas: 10, action: warn}\n")
	req := deployment("prod", 50)
	for _, stage := range []Stage{Mutate, Validate} {
		d := Decide(deny, req, stage)
		const want = `Deployment "web": spec.replicas: Invalid value: 50: must be within [2, 10] (replica policy rule "prod-web", action deny)`
		if d.Allowed || d.Message != want || len(d.Warnings) != 0 {
			t.Errorf("deny at %s: got %+v, want denied with %q", stage, d, want)
		}
	}
	if d := Decide(warn, req, Validate); !d.Allowed || len(d.Warnings) != 0 || d.Replicas != nil {
		t.Errorf("warn at validate: want allowed silently (the warning comes from /mutate), got %+v", d)
	}
	d := Decide(warn, req, Mutate)
	denied := Decide(deny, req, Mutate).Message
	if !d.Allowed || len(d.Warnings) != 1 || d.Replicas != nil {
		t.Fatalf("warn at mutate: want allowed with one warning, got %+v", d)
	}
	// The same text as deny would give, naming its own action.
	if want := strings.Replace(denied, "action deny", "action warn", 1); d.Warnings[0] != want {
		t.Errorf("warn warning %q, want %q", d.Warnings[0], want)
	}
}

func TestDecideUpdates(t *testing.T) {
	for _, action := range []string{"clamp", "deny", "warn"} {
		snap := mustLoad(t, header+"rules:\n- {name: tight, maxReplicas: 5, action: "+action+"}\n")
		for _, stage := range []Stage{Mutate, Validate} {
			// An image rollout of a workload created before the policy was tightened.
			unchanged := Request{Operation: admissionv1.Update, Replicas: 8, OldReplicas: ptr.To(int32(8)), Subject: policy.Subject{Kind: "Deployment", Name: "legacy", Namespace: "apps"}}
			if d := Decide(snap, unchanged, stage); !d.Allowed || d.Replicas != nil || len(d.Warnings) != 0 || d.Outcome != OutcomeUnchanged {
				t.Errorf("%s/%s: unchanged out-of-bounds update: want allowed untouched, got %+v", action, stage, d)
			}
			changed := unchanged
			changed.Replicas = 9
			d := Decide(snap, changed, stage)
			judged := !d.Allowed || d.Replicas != nil || len(d.Warnings) != 0
			if want := !(action == "warn" && stage == Validate); judged != want {
				t.Errorf("%s/%s: update 8 -> 9 with max 5: judged %t, want %t: %+v", action, stage, judged, want, d)
			}
		}
	}
}

func TestDecideMatching(t *testing.T) {
	const doc = header + `exemptNamespaces: [kube-system, "sandbox-*"]
default: {minReplicas: 1, maxReplicas: 50}
rules:
- name: first
  namespaces: [shared]
  maxReplicas: 3
- name: second
  namespaces: [shared]
  maxReplicas: 4
- name: teams
  namespaces: ["team-*", "ns-?", "[xy]-prod"]
  maxReplicas: 5
- name: web
  selector: {matchLabels: {app: web}}
  maxReplicas: 6
- name: tiers
  selector:
    matchExpressions:
    - {key: tier, operator: In, values: [front, back]}
    - {key: canary, operator: DoesNotExist}
  maxReplicas: 7
- name: labelled-ns
  namespaceSelector: {matchLabels: {env: prod}}
  maxReplicas: 8
- name: both
  namespaces: [mixed]
  selector: {matchExpressions: [{key: app, operator: NotIn, values: [db]}]}
  maxReplicas: 9
- name: own
  namespaces: [replica-policy-system]
  maxReplicas: 1
`
	snap := mustLoad(t, doc)
	for _, tc := range []struct {
		name     string
		ns       string
		labels   map[string]string
		nsLabels map[string]string
		// wantRule "" means nothing bounds the request; exempt is separate.
		wantRule string
		wantMax  int32 // the value 100 replicas is clamped to
		exempt   bool
	}{
		{name: "first matching rule wins", ns: "shared", wantRule: "first", wantMax: 3},
		{name: "glob star", ns: "team-a", wantRule: "teams", wantMax: 5},
		{name: "glob star, empty suffix", ns: "team-", wantRule: "teams", wantMax: 5},
		{name: "glob needs its prefix", ns: "xteam-a", wantRule: "default", wantMax: 50},
		{name: "glob needs the dash", ns: "team", wantRule: "default", wantMax: 50},
		{name: "glob question mark", ns: "ns-1", wantRule: "teams", wantMax: 5},
		{name: "glob question mark is one character", ns: "ns-12", wantRule: "default", wantMax: 50},
		{name: "glob class", ns: "y-prod", wantRule: "teams", wantMax: 5},
		{name: "glob class miss", ns: "z-prod", wantRule: "default", wantMax: 50},
		{name: "selector matchLabels", ns: "apps", labels: map[string]string{"app": "web"}, wantRule: "web", wantMax: 6},
		{name: "selector is on the workload's labels, not the namespace's", ns: "apps", nsLabels: map[string]string{"app": "web"}, wantRule: "default", wantMax: 50},
		{name: "selector In", ns: "apps", labels: map[string]string{"tier": "back"}, wantRule: "tiers", wantMax: 7},
		{name: "selector DoesNotExist fails", ns: "apps", labels: map[string]string{"tier": "back", "canary": "true"}, wantRule: "default", wantMax: 50},
		{name: "selector In miss", ns: "apps", labels: map[string]string{"tier": "db"}, wantRule: "default", wantMax: 50},
		{name: "namespaceSelector", ns: "apps", nsLabels: map[string]string{"env": "prod"}, wantRule: "labelled-ns", wantMax: 8},
		{name: "namespaceSelector miss", ns: "apps", nsLabels: map[string]string{"env": "dev"}, wantRule: "default", wantMax: 50},
		{name: "namespaceSelector is on the namespace's labels", ns: "apps", labels: map[string]string{"env": "prod"}, wantRule: "default", wantMax: 50},
		{name: "namespaces AND selector", ns: "mixed", labels: map[string]string{"app": "api"}, wantRule: "both", wantMax: 9},
		{name: "namespaces AND selector, selector fails", ns: "mixed", labels: map[string]string{"app": "db"}, wantRule: "default", wantMax: 50},
		{name: "an earlier glob rule beats a later selector rule", ns: "team-b", labels: map[string]string{"app": "web"}, wantRule: "teams", wantMax: 5},
		{name: "default rule named default", ns: "elsewhere", wantRule: "default", wantMax: 50},
		{name: "exempt", ns: "kube-system", exempt: true},
		{name: "exempt glob", ns: "sandbox-42", exempt: true},
		{name: "own namespace is exempt even though a rule names it", ns: policy.DefaultNamespace, exempt: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := deployment(tc.ns, 100)
			req.Subject.Labels = tc.labels
			req.Subject.NamespaceLabels = tc.nsLabels
			for _, stage := range []Stage{Mutate, Validate} {
				d := Decide(snap, req, stage)
				if tc.exempt {
					if !d.Allowed || d.Replicas != nil || len(d.Warnings) > 0 || d.Outcome != OutcomeExempt || d.Rule != "" {
						t.Errorf("%s: want exempt, got %+v", stage, d)
					}
					continue
				}
				if d.Rule != tc.wantRule {
					t.Errorf("%s: rule %q, want %q", stage, d.Rule, tc.wantRule)
				}
				if stage == Mutate {
					want := fmt.Sprintf("Deployment \"web\": spec.replicas 100 clamped to %d by replica policy rule %q", tc.wantMax, tc.wantRule)
					if d.Replicas == nil || *d.Replicas != tc.wantMax || !slices.Equal(d.Warnings, []string{want}) {
						t.Errorf("mutate: want clamped to %d with %q, got %+v", tc.wantMax, want, d)
					}
				} else if d.Allowed {
					t.Errorf("validate: 100 replicas under a clamp rule was allowed: %+v", d)
				}
			}
		})
	}
}

func TestDecideDefaultRule(t *testing.T) {
	snap := mustLoad(t, header+"default: {minReplicas: 2, maxReplicas: 4, action: deny}\n")
	d := Decide(snap, deployment("anywhere", 5), Mutate)
	if d.Allowed || d.Rule != "default" || !strings.Contains(d.Message, `replica policy rule "default"`) || !strings.Contains(d.Message, "[2, 4]") {
		t.Errorf("want denied by the rule named default, got %+v", d)
	}
	// Without a default, what no rule matches is unbounded.
	snap = mustLoad(t, header+"rules:\n- {name: only, namespaces: [prod], maxReplicas: 1}\n")
	if d := Decide(snap, deployment("dev", 1000), Mutate); !d.Allowed || d.Replicas != nil || d.Outcome != OutcomeNoRule || d.Rule != "" {
		t.Errorf("no rule, no default: want allowed untouched, got %+v", d)
	}
}

func TestDecideBoundsTexts(t *testing.T) {
	for _, tc := range []struct {
		bounds   string
		replicas int32
		want     string
	}{
		{"maxReplicas: 5", 6, "[0, 5]"},
		{"minReplicas: 2", 1, "[2, ∞)"},
		{"minReplicas: 2, maxReplicas: 10, allowZero: true", 11, "[2, 10] or 0"},
		{"minReplicas: 3, maxReplicas: 3", 4, "[3, 3]"},
	} {
		snap := mustLoad(t, header+"rules:\n- {name: b, action: deny, "+tc.bounds+"}\n")
		if d := Decide(snap, deployment("x", tc.replicas), Validate); d.Allowed || !strings.Contains(d.Message, "must be within "+tc.want+" ") {
			t.Errorf("%s with %d: message %q does not give the bounds as %q", tc.bounds, tc.replicas, d.Message, tc.want)
		}
	}
}

func TestDecideAllowZero(t *testing.T) {
	with := mustLoad(t, header+"rules:\n- {name: batch, minReplicas: 2, maxReplicas: 10, allowZero: true}\n")
	without := mustLoad(t, header+"rules:\n- {name: batch, minReplicas: 2, maxReplicas: 10}\n")
	toZero := Request{Operation: admissionv1.Update, Scale: true, Replicas: 0, OldReplicas: ptr.To(int32(4)), Subject: policy.Subject{Kind: "Deployment", Name: "job", Namespace: "batch"}}
	for _, stage := range []Stage{Mutate, Validate} {
		if d := Decide(with, toZero, stage); !d.Allowed || d.Replicas != nil || len(d.Warnings) > 0 {
			t.Errorf("%s: scale to 0 with allowZero: want allowed untouched, got %+v", stage, d)
		}
	}
	d := Decide(without, toZero, Mutate)
	if d.Replicas == nil || *d.Replicas != 2 || !slices.Equal(d.Warnings, []string{`Deployment "job": spec.replicas 0 clamped to 2 by replica policy rule "batch"`}) {
		t.Errorf("scale to 0 without allowZero: want raised to 2, got %+v", d)
	}
	// allowZero lets 0 through, not 1.
	one := toZero
	one.Replicas = 1
	if d := Decide(with, one, Mutate); d.Replicas == nil || *d.Replicas != 2 {
		t.Errorf("scale to 1 with allowZero: want raised to 2, got %+v", d)
	}
}

func TestDecideNoPolicy(t *testing.T) {
	snap := policy.Empty(policy.Options{AlwaysExempt: []string{ownNamespace}})
	for _, stage := range []Stage{Mutate, Validate} {
		for _, req := range []Request{
			deployment("prod", 0),
			deployment("prod", 1<<30),
			{Operation: admissionv1.Update, Scale: true, Replicas: 500, OldReplicas: ptr.To(int32(1)), Subject: policy.Subject{Kind: "Deployment", Name: "web", Namespace: "prod", LabelsUnknown: true, NamespaceLabelsUnknown: true}},
		} {
			if d := Decide(snap, req, stage); !d.Allowed || d.Replicas != nil || len(d.Warnings) > 0 || d.Message != "" || d.Outcome != OutcomeNoRule {
				t.Errorf("%s %+v: want allowed untouched, got %+v", stage, req, d)
			}
		}
	}
}

func TestDecideUnknownLabels(t *testing.T) {
	const doc = header + `rules:
- name: other-ns
  namespaces: [other]
  selector: {matchLabels: {tier: web}}
  maxReplicas: 1
- name: web-tier
  namespaces: [apps]
  selector: {matchLabels: {tier: web}}
  minReplicas: 3
  maxReplicas: 6
- name: capped
  namespaces: [apps, prod]
  minReplicas: 2
  maxReplicas: 10
- name: prod-ns
  namespaceSelector: {matchLabels: {env: prod}}
  maxReplicas: 4
  action: deny
`
	snap := mustLoad(t, doc)
	scale := func(ns string, replicas int32) Request {
		return Request{Operation: admissionv1.Update, Scale: true, Replicas: replicas, OldReplicas: ptr.To(int32(4)),
			Subject: policy.Subject{Kind: "Deployment", Name: "web", Namespace: ns, LabelsUnknown: true, NamespaceLabels: map[string]string{}}}
	}

	// The parent Deployment is not in the cache: web-tier might match, nothing can be
	// decided, and the scaler, which reads the workload itself, corrects it later.
	d := Decide(snap, scale("apps", 40), Mutate)
	if !d.Allowed || d.Replicas != nil || d.Outcome != OutcomeUnknown || d.Rule != "web-tier" || len(d.Warnings) != 1 {
		t.Fatalf("unknown labels at mutate: want allowed, unpatched, one warning, outcome unknown by web-tier; got %+v", d)
	}
	const want = `Deployment "web": replica policy rule "web-tier" could not be checked: its workload labels are not in the webhook's cache yet; the scaler will correct spec.replicas if it is outside [3, 6]`
	if d.Warnings[0] != want {
		t.Errorf("warning\n %q\nwant\n %q", d.Warnings[0], want)
	}
	if d := Decide(snap, scale("apps", 40), Validate); !d.Allowed || len(d.Warnings) != 0 || d.Outcome != OutcomeUnknown {
		t.Errorf("unknown labels at validate: want allowed without a second warning, got %+v", d)
	}

	// other-ns needs labels too, but fails on its namespace first: it is skipped, and
	// capped, which needs no labels, decides for prod.
	d = Decide(snap, scale("prod", 40), Mutate)
	if d.Rule != "capped" || d.Replicas == nil || *d.Replicas != 10 {
		t.Errorf("a rule that fails on its namespace must not need labels: want clamped to 10 by capped, got %+v", d)
	}

	// Namespace labels unknown (a namespace the cache has not seen yet) for a namespace
	// selector rule. It is a deny rule: the scaler reports, it never corrects.
	req := deployment("fresh", 40)
	req.Subject.NamespaceLabelsUnknown = true
	d = Decide(snap, req, Mutate)
	if !d.Allowed || d.Outcome != OutcomeUnknown || d.Rule != "prod-ns" || len(d.Warnings) != 1 ||
		!strings.Contains(d.Warnings[0], "namespace labels") || !strings.Contains(d.Warnings[0], `"prod-ns"`) {
		t.Fatalf("unknown namespace labels: want allowed with a warning naming prod-ns and namespace labels, got %+v", d)
	}
	if strings.Contains(d.Warnings[0], "will correct") || !strings.Contains(d.Warnings[0], "the scaler will report spec.replicas if it is outside [0, 4]") {
		t.Errorf("warning for a deny rule must say the scaler reports, not corrects: %q", d.Warnings[0])
	}

	// Unknown labels that no candidate rule needs change nothing.
	d = Decide(snap, deployment("prod", 40), Mutate)
	if d.Rule != "capped" || d.Outcome != OutcomeClamped {
		t.Errorf("known labels: want clamped by capped, got %+v", d)
	}
	// With the namespace labels known, the namespace selector rule decides.
	req = deployment("elsewhere", 40)
	req.Subject.Labels = map[string]string{"tier": "db"}
	req.Subject.NamespaceLabels = map[string]string{"env": "prod"}
	if d := Decide(snap, req, Mutate); d.Rule != "prod-ns" || d.Allowed {
		t.Errorf("namespace selector on known labels: want denied by prod-ns, got %+v", d)
	}
}

// TestDecideThroughRequest decodes the API server's defaults: a Deployment without
// spec.replicas means 1, a Scale without it means 0.
func TestDecideThroughRequest(t *testing.T) {
	snap := mustLoad(t, header+"rules:\n- {name: floor, minReplicas: 2, maxReplicas: 10}\n- {name: zero-ok, namespaces: [batch], minReplicas: 2, allowZero: true}\n")
	swapped := mustLoad(t, header+"rules:\n- {name: zero-ok, namespaces: [batch], minReplicas: 2, allowZero: true}\n- {name: floor, minReplicas: 2, maxReplicas: 10}\n")
	lookup := &fakeLookup{workloads: map[string]map[string]string{"apps/web": {}, "batch/job": {}}, namespaces: map[string]map[string]string{"apps": {}, "batch": {}}}

	r, err := newRequest(harness.DeploymentReview("u1", "apps", "web", nil, nil, map[string]string{"app": "web"}).Request(t), workload.Builtin(), workload.Deployment, lookup)
	if err != nil {
		t.Fatal(err)
	}
	d := Decide(snap, r, Mutate)
	if r.Replicas != 1 || d.Replicas == nil || *d.Replicas != 2 || !slices.Equal(d.Warnings, []string{`Deployment "web": spec.replicas 1 clamped to 2 by replica policy rule "floor"`}) {
		t.Errorf("Deployment without replicas: want 1 raised to 2, got request %+v decision %+v", r, d)
	}

	r, err = newRequest(harness.ScaleReview("u2", "batch", "job", 3, 0).Request(t), workload.Builtin(), workload.Deployment, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if r.Replicas != 0 || r.OldReplicas == nil || *r.OldReplicas != 3 {
		t.Fatalf("Scale without replicas: want 0 (old 3), got %+v", r)
	}
	if d := Decide(snap, r, Mutate); d.Replicas == nil || *d.Replicas != 2 || !slices.Equal(d.Warnings, []string{`Deployment "job": spec.replicas 0 clamped to 2 by replica policy rule "floor"`}) {
		t.Errorf("Scale to 0 under floor: want raised to 2, got %+v", d)
	}
	if d := Decide(swapped, r, Mutate); !d.Allowed || d.Replicas != nil || d.Rule != "zero-ok" {
		t.Errorf("Scale to 0 under allowZero: want allowed untouched, got %+v", d)
	}
}

// TestOutcomeOfKeepsThePolicysNames: the outcomes no rule decides take their metric label
// from policy.Outcome's name, so each must be one of the labels the metric documents.
func TestOutcomeOfKeepsThePolicysNames(t *testing.T) {
	for o, want := range map[policy.Outcome]Outcome{
		policy.OutcomeExempt:  OutcomeExempt,
		policy.OutcomeOwned:   OutcomeOwned,
		policy.OutcomeNoRule:  OutcomeNoRule,
		policy.OutcomeUnknown: OutcomeUnknown,
	} {
		for _, kind := range []policy.EffectKind{policy.Allow, policy.Warn} {
			if got := outcomeOf(policy.Effect{Kind: kind, Outcome: o}); got != want {
				t.Errorf("outcomeOf(%s, %s) = %q, want %q", kind, o, got, want)
			}
		}
	}
}
