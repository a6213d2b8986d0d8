package policy

import (
	"fmt"
	"slices"
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
		{"inside", b, Range{Min: 3, Max: 8}, Range{Min: 3, Max: 8}},
		{"the bounds themselves", b, Range{Min: 2, Max: 10}, Range{Min: 2, Max: 10}},
		{"max above", b, Range{Min: 3, Max: 30}, Range{Min: 3, Max: 10}},
		{"min below", b, Range{Min: 1, Max: 8}, Range{Min: 2, Max: 8}},
		{"both outside", b, Range{Min: 1, Max: 30}, Range{Min: 2, Max: 10}},
		{"whole range above: min never above max", b, Range{Min: 20, Max: 30}, Range{Min: 10, Max: 10}},
		{"whole range below", b, Range{Min: 1, Max: 1}, Range{Min: 2, Max: 2}},
		{"min 0 without allowZero", b, Range{Min: 0, Max: 5}, Range{Min: 2, Max: 5}},
		{"min 0 with allowZero", zero, Range{Min: 0, Max: 5}, Range{Min: 0, Max: 5}},
		{"min 0 with allowZero, max above", zero, Range{Min: 0, Max: 50}, Range{Min: 0, Max: 10}},
		{"max only bound", Bounds{Max: ptr.To[int32](4)}, Range{Min: 1, Max: 9}, Range{Min: 1, Max: 4}},
		{"min only bound", Bounds{Min: ptr.To[int32](3)}, Range{Min: 1, Max: 9}, Range{Min: 3, Max: 9}},
		{"invalid range left to the API server", b, Range{Min: 30, Max: 20}, Range{Min: 30, Max: 20}},
		// A ScaledObject's spec.idleReplicaCount moves as the ends do, and stays below Min.
		{"idle inside", b, idle(5, 10, 3), idle(5, 10, 3)},
		{"idle 0 with allowZero", zero, idle(2, 10, 0), idle(2, 10, 0)},
		{"idle 0 without allowZero, min above the lower bound: idle to the bound", b, idle(5, 10, 0), idle(5, 10, 2)},
		{"idle 0 without allowZero, min at the lower bound: removed", b, idle(2, 10, 0), Range{Min: 2, Max: 10}},
		{"idle and min both below: removed, min moved", b, idle(1, 10, 0), Range{Min: 2, Max: 10}},
		{"idle and min both above: removed", b, idle(20, 30, 15), Range{Min: 10, Max: 10}},
		{"idle below min only bound", Bounds{Min: ptr.To[int32](3)}, idle(8, 9, 1), idle(8, 9, 3)},
		{"idle not below min left to KEDA", b, idle(3, 10, 3), idle(3, 10, 3)},
		{"idle with min omitted (KEDA's 0) left to KEDA", b, idle(0, 10, 0), idle(0, 10, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.b.NearestRange(tt.in)
			if got != tt.want {
				t.Fatalf("NearestRange(%v) = %v, want %v", tt.in, got, tt.want)
			}
			if tt.in.Valid() && !got.Valid() {
				t.Errorf("NearestRange(%v) = %v: not a valid range (min above max, or idle not below min)", tt.in, got)
			}
			if again := tt.b.NearestRange(got); again != got {
				t.Errorf("not idempotent: NearestRange(%v) = %v", got, again)
			}
		})
	}
}

// idle is a ScaledObject's range with spec.idleReplicaCount set.
func idle(minimum, maximum, idle int32) Range {
	return Range{Min: minimum, Max: maximum, Idle: idle, HasIdle: true}
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
		{name: "inside", target: deploy, r: Range{Min: 2, Max: 10}, outcome: OutcomeInBounds, rule: "prod", want: Range{Min: 2, Max: 10}},
		{name: "max above", target: deploy, r: Range{Min: 2, Max: 30}, outcome: OutcomeOutOfBounds, rule: "prod", want: Range{Min: 2, Max: 10},
			clamp:    []string{`HorizontalPodAutoscaler "web-hpa": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod"`},
			outOfMsg: `HorizontalPodAutoscaler "web-hpa": spec.maxReplicas: Invalid value: 30: must be within [2, 10] (replica policy rule "prod", action clamp)`},
		{name: "both outside", target: deploy, r: Range{Min: 1, Max: 30}, outcome: OutcomeOutOfBounds, rule: "prod", want: Range{Min: 2, Max: 10},
			clamp: []string{
				`HorizontalPodAutoscaler "web-hpa": spec.minReplicas 1 clamped to 2 by replica policy rule "prod"`,
				`HorizontalPodAutoscaler "web-hpa": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod"`,
			},
			outOfMsg: `HorizontalPodAutoscaler "web-hpa": spec.minReplicas: Invalid value: 1: must be within [2, 10] (replica policy rule "prod", action clamp); ` +
				`HorizontalPodAutoscaler "web-hpa": spec.maxReplicas: Invalid value: 30: must be within [2, 10] (replica policy rule "prod", action clamp)`},
		{name: "target's kind and labels decide", target: db, r: Range{Min: 3, Max: 8}, outcome: OutcomeOutOfBounds, rule: "databases", want: Range{Min: 3, Max: 5},
			outOfMsg: `HorizontalPodAutoscaler "web-hpa": spec.maxReplicas: Invalid value: 8: must be within [3, 5] (replica policy rule "databases", action deny)`},
		{name: "target's labels unknown", target: Subject{Group: "apps", Kind: "StatefulSet", Namespace: "prod", Name: "pg", LabelsUnknown: true},
			r: Range{Min: 3, Max: 8}, outcome: OutcomeUnknown, rule: "databases", want: Range{Min: 3, Max: 8}},
		{name: "no rule", target: Subject{Group: "apps", Kind: "Deployment", Namespace: "dev", Name: "web"}, r: Range{Min: 1, Max: 99}, outcome: OutcomeNoRule, want: Range{Min: 1, Max: 99}},
		{name: "exempt", target: Subject{Group: "apps", Kind: "Deployment", Namespace: "kube-system", Name: "dns"}, r: Range{Min: 1, Max: 99}, outcome: OutcomeExempt, want: Range{Min: 1, Max: 99}},
		{name: "owned target", target: Subject{Group: "apps", Kind: "ReplicaSet", Namespace: "prod", Name: "web-1", Owner: &Owner{Group: "apps", Kind: "Deployment", Name: "web"}},
			r: Range{Min: 1, Max: 99}, outcome: OutcomeOwned, want: Range{Min: 1, Max: 99}},
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

// A ScaledObject's spec.idleReplicaCount is decided by the rule of its target, as its two
// ends are: outside the bounds, clamp moves (or removes) it, deny and warn name it.
func TestScaledObjectIdle(t *testing.T) {
	s := mustLoad(t, header+`rules:
- {name: workers, namespaces: [prod], kinds: [ReplicaSet], minReplicas: 2, maxReplicas: 10, allowZero: true}
- {name: web, namespaces: [prod], kinds: [Deployment], minReplicas: 2, maxReplicas: 10}
- {name: queues, namespaces: [prod], kinds: [StatefulSet], minReplicas: 2, maxReplicas: 10, action: deny}
- {name: dev, namespaces: [dev], minReplicas: 2, maxReplicas: 3, action: warn}
`, Options{})
	web := Subject{Group: "apps", Kind: "Deployment", Namespace: "prod", Name: "web"}
	worker := Subject{Group: "apps", Kind: "ReplicaSet", Namespace: "prod", Name: "worker"}
	queue := Subject{Group: "apps", Kind: "StatefulSet", Namespace: "prod", Name: "q"}
	dev := Subject{Group: "apps", Kind: "Deployment", Namespace: "dev", Name: "web"}
	tests := []struct {
		name     string
		target   Subject
		r        Range
		at       Stage
		kind     EffectKind
		want     Range
		fields   []RangeField
		messages []string
	}{
		{name: "idle 0 under allowZero", target: worker, r: idle(2, 10, 0), at: AtMutate, kind: Allow, want: idle(2, 10, 0)},
		{name: "idle 1 under allowZero: to the bound", target: worker, r: idle(5, 10, 1), at: AtMutate, kind: Patch, want: idle(5, 10, 2),
			fields:   []RangeField{{Path: "spec.idleReplicaCount", Value: 1, Want: 2}},
			messages: []string{`ScaledObject "so": spec.idleReplicaCount 1 clamped to 2 by replica policy rule "workers"`}},
		{name: "idle 0 without allowZero, min above the bound", target: web, r: idle(4, 10, 0), at: AtMutate, kind: Patch, want: idle(4, 10, 2),
			fields:   []RangeField{{Path: "spec.idleReplicaCount", Value: 0, Want: 2}},
			messages: []string{`ScaledObject "so": spec.idleReplicaCount 0 clamped to 2 by replica policy rule "web"`}},
		{name: "idle 0 without allowZero, min at the bound: removed", target: web, r: idle(2, 30, 0), at: AtMutate, kind: Patch, want: Range{Min: 2, Max: 10},
			fields: []RangeField{{Path: "spec.maxReplicaCount", Value: 30, Want: 10}, {Path: "spec.idleReplicaCount", Value: 0, Want: 2, Removed: true}},
			messages: []string{
				`ScaledObject "so": spec.maxReplicaCount 30 clamped to 10 by replica policy rule "web"`,
				`ScaledObject "so": spec.idleReplicaCount 0 removed by replica policy rule "web": its nearest bound 2 is not below spec.minReplicaCount 2, as KEDA requires, so the ScaledObject idles at spec.minReplicaCount`,
			}},
		{name: "deny names the idle size", target: queue, r: idle(3, 10, 0), at: AtMutate, kind: Deny, want: idle(3, 10, 2),
			fields:   []RangeField{{Path: "spec.idleReplicaCount", Value: 0, Want: 2}},
			messages: []string{`ScaledObject "so": spec.idleReplicaCount: Invalid value: 0: must be within [2, 10] (replica policy rule "queues", action deny)`}},
		{name: "warn names each field", target: dev, r: idle(2, 5, 0), at: AtMutate, kind: Warn, want: Range{Min: 2, Max: 3},
			fields: []RangeField{{Path: "spec.maxReplicaCount", Value: 5, Want: 3}, {Path: "spec.idleReplicaCount", Value: 0, Want: 2, Removed: true}},
			messages: []string{`ScaledObject "so": spec.maxReplicaCount: Invalid value: 5: must be within [2, 3] (replica policy rule "dev", action warn); ` +
				`ScaledObject "so": spec.idleReplicaCount: Invalid value: 0: must be within [2, 3] (replica policy rule "dev", action warn)`}},
		{name: "the scaler reports, never patches", target: web, r: idle(4, 10, 0), at: AtScaler, kind: Report, want: idle(4, 10, 2),
			fields: []RangeField{{Path: "spec.idleReplicaCount", Value: 0, Want: 2}},
			messages: []string{`ScaledObject "so": spec.idleReplicaCount: Invalid value: 0: must be within [2, 10] (replica policy rule "web", action clamp)` +
				`: KEDA writes it into the HPA it owns, which then asks for sizes the bounds forbid; set it inside the bounds (the scaler never changes a ScaledObject)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := s.DecideRangeOf(ScaledObjectFields, tt.target, tt.r)
			if v.Want != tt.want {
				t.Errorf("want %v, expected %v", v.Want, tt.want)
			}
			if got := v.Fields(); fmt.Sprint(got) != fmt.Sprint(tt.fields) {
				t.Errorf("fields %+v, want %+v", got, tt.fields)
			}
			e := v.Effect(tt.at, "so", tt.target, nil)
			if e.Kind != tt.kind || !slices.Equal(e.Messages, tt.messages) {
				t.Errorf("effect %s %q\nwant %s %q", e.Kind, e.Messages, tt.kind, tt.messages)
			}
		})
	}
}
