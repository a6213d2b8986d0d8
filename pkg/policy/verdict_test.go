package policy

import (
	"strings"
	"testing"
)

func compile(t *testing.T, doc string) *Snapshot {
	t.Helper()
	s, err := Load([]byte(doc), Options{AlwaysExempt: []string{DefaultNamespace}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDecide: the verdict's rule, replicas (nil is 1), wanted value and outcome.
func TestDecide(t *testing.T) {
	snap := compile(t, `
apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
exemptNamespaces: [kube-system]
rules:
- name: web
  namespaces: [prod]
  selector: {matchLabels: {app: web}}
  minReplicas: 2
  maxReplicas: 10
- name: batch
  namespaces: [prod]
  minReplicas: 1
  allowZero: true
  action: deny
- name: by-label
  namespaceSelector: {matchLabels: {env: prod}}
  maxReplicas: 3
  action: warn
default: {maxReplicas: 50}
`)
	i32 := func(v int32) *int32 { return &v }
	web := map[string]string{"app": "web"}
	for _, tc := range []struct {
		name     string
		w        Subject
		replicas *int32
		rule     string // "" when no rule applies
		from, to int32
		unknown  bool
	}{
		{"clamped to max", Subject{Namespace: "prod", Labels: web}, i32(50), "web", 50, 10, false},
		{"raised to min", Subject{Namespace: "prod", Labels: web}, i32(1), "web", 1, 2, false},
		{"zero is below min", Subject{Namespace: "prod", Labels: web}, i32(0), "web", 0, 2, false},
		{"in bounds", Subject{Namespace: "prod", Labels: web}, i32(5), "web", 5, 5, false},
		{"nil replicas is 1, below min", Subject{Namespace: "prod", Labels: web}, nil, "web", 1, 2, false},
		{"allowZero", Subject{Namespace: "prod"}, i32(0), "batch", 0, 0, false},
		{"deny rule, in bounds", Subject{Namespace: "prod", Labels: map[string]string{"app": "x"}}, i32(7), "batch", 7, 7, false},
		{"default", Subject{Namespace: "dev"}, i32(60), DefaultRuleName, 60, 50, false},
		{"exempt", Subject{Namespace: "kube-system"}, i32(60), "", 60, 60, false},
		{"always exempt", Subject{Namespace: DefaultNamespace}, i32(60), "", 60, 60, false},
		{"namespace labels", Subject{Namespace: "qa", NamespaceLabels: map[string]string{"env": "prod"}}, i32(5), "by-label", 5, 3, false},
		{"namespace labels unknown", Subject{Namespace: "qa", NamespaceLabelsUnknown: true}, i32(5), "by-label", 5, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := snap.Decide(tc.w, tc.replicas)
			rule := ""
			if v.Rule != nil {
				rule = v.Rule.Name
			}
			if rule != tc.rule || v.Replicas != tc.from || v.Want != tc.to || (v.Missing != MissingNothing) != tc.unknown {
				t.Errorf("Decide = rule %q %d → %d missing %q; want rule %q %d → %d unknown %v", rule, v.Replicas, v.Want, v.Missing, tc.rule, tc.from, tc.to, tc.unknown)
			}
			var want Outcome
			switch {
			case tc.rule == "" && strings.Contains(tc.name, "exempt"):
				want = OutcomeExempt
			case tc.unknown:
				want = OutcomeUnknown
			case tc.from != tc.to:
				want = OutcomeOutOfBounds
			default:
				want = OutcomeInBounds
			}
			if v.Outcome != want {
				t.Errorf("Outcome = %s, want %s", v.Outcome, want)
			}
		})
	}
}

// TestDecideNoRule: without a rule or a default, nothing is wanted.
func TestDecideNoRule(t *testing.T) {
	snap := compile(t, "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n- {name: prod, namespaces: [prod], maxReplicas: 3}\n")
	five := int32(5)
	if v := snap.Decide(Subject{Namespace: "dev"}, &five); v.Outcome != OutcomeNoRule || v.Rule != nil || v.Want != 5 {
		t.Errorf("Decide = %+v, want no rule and want 5", v)
	}
}
