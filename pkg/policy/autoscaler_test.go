package policy

import (
	"testing"

	"k8s.io/utils/ptr"
)

func TestNearestRange(t *testing.T) {
	b := Bounds{Min: ptr.To[int32](2), Max: ptr.To[int32](10)}
	zero := Bounds{Min: ptr.To[int32](2), Max: ptr.To[int32](10), AllowZero: true}
	tests := []struct {
		name string
		b    Bounds
		in   Range
		want Range
	}{
		{"inside", b, Range{3, 8}, Range{3, 8}},
		{"the bounds themselves", b, Range{2, 10}, Range{2, 10}},
		{"max above", b, Range{3, 30}, Range{3, 10}},
		{"min below", b, Range{1, 8}, Range{2, 8}},
		{"both outside", b, Range{1, 30}, Range{2, 10}},
		{"whole range above: min never above max", b, Range{20, 30}, Range{10, 10}},
		{"whole range below", b, Range{1, 1}, Range{2, 2}},
		{"min 0 without allowZero", b, Range{0, 5}, Range{2, 5}},
		{"min 0 with allowZero", zero, Range{0, 5}, Range{0, 5}},
		{"min 0 with allowZero, max above", zero, Range{0, 50}, Range{0, 10}},
		{"max only bound", Bounds{Max: ptr.To[int32](4)}, Range{1, 9}, Range{1, 4}},
		{"min only bound", Bounds{Min: ptr.To[int32](3)}, Range{1, 9}, Range{3, 9}},
		{"invalid range left to the API server", b, Range{30, 20}, Range{30, 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.b.NearestRange(tt.in)
			if got != tt.want {
				t.Fatalf("NearestRange(%v) = %v, want %v", tt.in, got, tt.want)
			}
			if tt.in.Min <= tt.in.Max && got.Min > got.Max {
				t.Errorf("NearestRange(%v) = %v: min above max", tt.in, got)
			}
			if again := tt.b.NearestRange(got); again != got {
				t.Errorf("not idempotent: NearestRange(%v) = %v", got, again)
			}
		})
	}
}

// rangePolicy bounds StatefulSets labelled as databases apart from everything else in
// prod, so that a verdict shows it used the target's kind and labels.
const rangePolicy = header + `exemptNamespaces: [kube-system]
rules:
- name: databases
  kinds: [StatefulSet]
  selector: {matchLabels: {tier: db}}
  minReplicas: 3
  maxReplicas: 5
  action: deny
- name: prod
  namespaces: [prod]
  minReplicas: 2
  maxReplicas: 10
`

func TestDecideRange(t *testing.T) {
	s := mustLoad(t, rangePolicy, Options{})
	deploy := Subject{Group: "apps", Kind: "Deployment", Namespace: "prod", Name: "web"}
	db := Subject{Group: "apps", Kind: "StatefulSet", Namespace: "prod", Name: "pg", Labels: map[string]string{"tier": "db"}}
	tests := []struct {
		name     string
		target   Subject
		r        Range
		outcome  Outcome
		rule     string
		want     Range
		clamp    []string
		outOfMsg string
	}{
		{name: "inside", target: deploy, r: Range{2, 10}, outcome: OutcomeInBounds, rule: "prod", want: Range{2, 10}},
		{name: "max above", target: deploy, r: Range{2, 30}, outcome: OutcomeOutOfBounds, rule: "prod", want: Range{2, 10},
			clamp:    []string{`HorizontalPodAutoscaler "web-hpa": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod"`},
			outOfMsg: `HorizontalPodAutoscaler "web-hpa": spec.maxReplicas: Invalid value: 30: must be within [2, 10] (replica policy rule "prod", action clamp)`},
		{name: "both outside", target: deploy, r: Range{1, 30}, outcome: OutcomeOutOfBounds, rule: "prod", want: Range{2, 10},
			clamp: []string{
				`HorizontalPodAutoscaler "web-hpa": spec.minReplicas 1 clamped to 2 by replica policy rule "prod"`,
				`HorizontalPodAutoscaler "web-hpa": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod"`,
			},
			outOfMsg: `HorizontalPodAutoscaler "web-hpa": spec.minReplicas: Invalid value: 1: must be within [2, 10] (replica policy rule "prod", action clamp); ` +
				`HorizontalPodAutoscaler "web-hpa": spec.maxReplicas: Invalid value: 30: must be within [2, 10] (replica policy rule "prod", action clamp)`},
		{name: "target's kind and labels decide", target: db, r: Range{3, 8}, outcome: OutcomeOutOfBounds, rule: "databases", want: Range{3, 5},
			outOfMsg: `HorizontalPodAutoscaler "web-hpa": spec.maxReplicas: Invalid value: 8: must be within [3, 5] (replica policy rule "databases", action deny)`},
		{name: "target's labels unknown", target: Subject{Group: "apps", Kind: "StatefulSet", Namespace: "prod", Name: "pg", LabelsUnknown: true},
			r: Range{3, 8}, outcome: OutcomeUnknown, rule: "databases", want: Range{3, 8}},
		{name: "no rule", target: Subject{Group: "apps", Kind: "Deployment", Namespace: "dev", Name: "web"}, r: Range{1, 99}, outcome: OutcomeNoRule, want: Range{1, 99}},
		{name: "exempt", target: Subject{Group: "apps", Kind: "Deployment", Namespace: "kube-system", Name: "dns"}, r: Range{1, 99}, outcome: OutcomeExempt, want: Range{1, 99}},
		{name: "owned target", target: Subject{Group: "apps", Kind: "ReplicaSet", Namespace: "prod", Name: "web-1", Owner: &Owner{Group: "apps", Kind: "Deployment", Name: "web"}},
			r: Range{1, 99}, outcome: OutcomeOwned, want: Range{1, 99}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := s.DecideRange(tt.target, tt.r)
			if v.Outcome != tt.outcome {
				t.Fatalf("outcome %v, want %v", v.Outcome, tt.outcome)
			}
			if got := ruleNameOf(v.Rule); got != tt.rule {
				t.Errorf("rule %q, want %q", got, tt.rule)
			}
			if v.Range != tt.r || v.Want != tt.want {
				t.Errorf("range %v want %v, expected %v want %v", v.Range, v.Want, tt.r, tt.want)
			}
			if v.Outcome != OutcomeOutOfBounds {
				if len(v.Fields()) != 0 {
					t.Errorf("fields %v for outcome %v", v.Fields(), v.Outcome)
				}
				return
			}
			if tt.clamp != nil {
				got := v.ClampMessages("web-hpa")
				if len(got) != len(tt.clamp) {
					t.Fatalf("clamp messages %q, want %q", got, tt.clamp)
				}
				for i := range got {
					if got[i] != tt.clamp[i] {
						t.Errorf("clamp message %d:\n got %s\nwant %s", i, got[i], tt.clamp[i])
					}
				}
			}
			if got := v.OutOfBoundsMessage("web-hpa"); got != tt.outOfMsg {
				t.Errorf("out-of-bounds message:\n got %s\nwant %s", got, tt.outOfMsg)
			}
		})
	}
}

func ruleNameOf(r *CompiledRule) string {
	if r == nil {
		return ""
	}
	return r.Name
}
