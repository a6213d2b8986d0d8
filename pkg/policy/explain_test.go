package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// explainPolicy has a rule of each matcher kind and of their combinations, and a default.
const explainPolicy = `
apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
exemptNamespaces: [kube-system, "sandbox-*"]
rules:
- name: by-name
  namespaces: [prod, "team-*"]
  maxReplicas: 10
- name: by-ns-labels
  namespaceSelector: {matchLabels: {env: prod}}
  maxReplicas: 20
- name: by-labels
  selector: {matchExpressions: [{key: app, operator: In, values: [web, api]}]}
  maxReplicas: 30
- name: all-three
  namespaces: [staging]
  namespaceSelector: {matchLabels: {tier: gold}}
  selector: {matchLabels: {app: db}}
  minReplicas: 3
- name: empty-selector
  namespaces: [empty]
  selector: {}
  maxReplicas: 5
default: {maxReplicas: 50}
`

// traceLine renders a rule's trace compactly for the table: "name:matched",
// "name:missing=...", or "name:failed=m1,m2".
func traceLine(rt RuleTrace) string {
	s := rt.Rule.Name + ":"
	switch {
	case rt.Matched:
		s += "matched"
	case rt.Missing != MissingNothing:
		s += "missing=" + rt.Missing.String()
	default:
		var names []string
		for _, m := range rt.Failed() {
			names = append(names, string(m.Matcher))
		}
		s += fmt.Sprintf("failed=%v", names)
	}
	if rt.Decides {
		s += "*"
	}
	return s
}

func TestExplain(t *testing.T) {
	snap := compile(t, explainPolicy)
	prodNS := map[string]string{"env": "prod"}
	for _, tc := range []struct {
		name   string
		subj   Subject
		exempt bool
		want   []string // traceLine of each rule, in order; * marks the deciding rule
	}{
		{
			name: "listed namespace: the first rule decides, later ones are still shown",
			subj: Subject{Namespace: "prod", NamespaceLabels: prodNS, Labels: map[string]string{"app": "web"}},
			want: []string{"by-name:matched*", "by-ns-labels:matched", "by-labels:matched", "all-three:failed=[namespaces namespaceSelector selector]", "empty-selector:failed=[namespaces]", "default:matched"},
		},
		{
			name: "glob namespace",
			subj: Subject{Namespace: "team-a", Labels: map[string]string{}},
			want: []string{"by-name:matched*", "by-ns-labels:failed=[namespaceSelector]", "by-labels:failed=[selector]", "all-three:failed=[namespaces namespaceSelector selector]", "empty-selector:failed=[namespaces]", "default:matched"},
		},
		{
			name: "namespace labels decide",
			subj: Subject{Namespace: "other", NamespaceLabels: prodNS},
			want: []string{"by-name:failed=[namespaces]", "by-ns-labels:matched*", "by-labels:failed=[selector]", "all-three:failed=[namespaces namespaceSelector selector]", "empty-selector:failed=[namespaces]", "default:matched"},
		},
		{
			name: "falls through to default",
			subj: Subject{Namespace: "dev", NamespaceLabels: map[string]string{"env": "dev"}, Labels: map[string]string{"app": "db"}},
			want: []string{"by-name:failed=[namespaces]", "by-ns-labels:failed=[namespaceSelector]", "by-labels:failed=[selector]", "all-three:failed=[namespaces namespaceSelector]", "empty-selector:failed=[namespaces]", "default:matched*"},
		},
		{
			name: "one matcher of three fails",
			subj: Subject{Namespace: "staging", NamespaceLabels: map[string]string{"tier": "gold"}, Labels: map[string]string{"app": "cache"}},
			want: []string{"by-name:failed=[namespaces]", "by-ns-labels:failed=[namespaceSelector]", "by-labels:failed=[selector]", "all-three:failed=[selector]", "empty-selector:failed=[namespaces]", "default:matched*"},
		},
		{
			name: "all three match",
			subj: Subject{Namespace: "staging", NamespaceLabels: map[string]string{"tier": "gold"}, Labels: map[string]string{"app": "db"}},
			want: []string{"by-name:failed=[namespaces]", "by-ns-labels:failed=[namespaceSelector]", "by-labels:failed=[selector]", "all-three:matched*", "empty-selector:failed=[namespaces]", "default:matched"},
		},
		{
			name: "namespace labels unknown: the first rule that needs them decides as unknown",
			subj: Subject{Namespace: "other", NamespaceLabelsUnknown: true, Labels: map[string]string{"app": "web"}},
			want: []string{"by-name:failed=[namespaces]", "by-ns-labels:missing=namespace labels*", "by-labels:matched", "all-three:failed=[namespaces selector]", "empty-selector:failed=[namespaces]", "default:matched"},
		},
		{
			name: "workload labels unknown",
			subj: Subject{Namespace: "other", NamespaceLabels: map[string]string{}, LabelsUnknown: true},
			want: []string{"by-name:failed=[namespaces]", "by-ns-labels:failed=[namespaceSelector]", "by-labels:missing=workload labels*", "all-three:failed=[namespaces namespaceSelector]", "empty-selector:failed=[namespaces]", "default:matched"},
		},
		{
			name: "both unknown: namespace labels are named first; a failed matcher beats unknown ones",
			subj: Subject{Namespace: "staging", NamespaceLabelsUnknown: true, LabelsUnknown: true},
			want: []string{"by-name:failed=[namespaces]", "by-ns-labels:missing=namespace labels*", "by-labels:missing=workload labels", "all-three:missing=namespace labels", "empty-selector:failed=[namespaces]", "default:matched"},
		},
		{
			name: "unknown labels and a failed namespace: not a match, nothing missing",
			subj: Subject{Namespace: "nowhere", NamespaceLabelsUnknown: true, LabelsUnknown: true},
			want: []string{"by-name:failed=[namespaces]", "by-ns-labels:missing=namespace labels*", "by-labels:missing=workload labels", "all-three:failed=[namespaces]", "empty-selector:failed=[namespaces]", "default:matched"},
		},
		{
			name: "an empty selector needs no labels",
			subj: Subject{Namespace: "empty", NamespaceLabels: map[string]string{}, LabelsUnknown: true},
			want: []string{"by-name:failed=[namespaces]", "by-ns-labels:failed=[namespaceSelector]", "by-labels:missing=workload labels*", "all-three:failed=[namespaces namespaceSelector]", "empty-selector:matched", "default:matched"},
		},
		{name: "exempt by the policy", subj: Subject{Namespace: "kube-system"}, exempt: true},
		{name: "exempt by glob", subj: Subject{Namespace: "sandbox-1"}, exempt: true},
		{name: "the webhook's own namespace is always exempt", subj: Subject{Namespace: DefaultNamespace}, exempt: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := snap.Explain(tc.subj)
			if tr.Exempt != tc.exempt {
				t.Fatalf("Exempt = %v, want %v", tr.Exempt, tc.exempt)
			}
			var got []string
			for _, rt := range tr.Rules {
				got = append(got, traceLine(rt))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("trace\n got %q\nwant %q", got, tc.want)
			}
			checkAgreesWithMatch(t, snap, tc.subj, tr)
		})
	}
}

// TestExplainMatcherSpecs: the matchers are shown as the policy writes them.
func TestExplainMatcherSpecs(t *testing.T) {
	snap := compile(t, explainPolicy)
	tr := snap.Explain(Subject{Namespace: "x", NamespaceLabels: map[string]string{"tier": "gold"}, Labels: map[string]string{"app": "db"}})
	var got []string
	for _, rt := range tr.Rules {
		for _, m := range rt.Matchers {
			got = append(got, fmt.Sprintf("%s.%s=%s", rt.Rule.Name, m.Matcher, m.Spec))
		}
	}
	want := []string{
		"by-name.namespaces=prod, team-*",
		"by-ns-labels.namespaceSelector=env=prod",
		"by-labels.selector=app in (api,web)",
		"all-three.namespaces=staging",
		"all-three.namespaceSelector=tier=gold",
		"all-three.selector=app=db",
		"empty-selector.namespaces=empty",
	}
	if !slices.Equal(got, want) {
		t.Errorf("matchers\n got %q\nwant %q", got, want)
	}
	if d := tr.Deciding(); d == nil || d.Rule.Name != "default" {
		t.Errorf("Deciding() = %+v, want the default", d)
	}
}

// TestExplainWithoutDefault: no rule decides, as Match says.
func TestExplainWithoutDefault(t *testing.T) {
	snap := compile(t, "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n- {name: a, namespaces: [a], maxReplicas: 1}\n")
	subj := Subject{Namespace: "b"}
	tr := snap.Explain(subj)
	if tr.Deciding() != nil || len(tr.Rules) != 1 || tr.Rules[0].Matched {
		t.Errorf("got %+v, want one unmatched rule and none deciding", tr)
	}
	checkAgreesWithMatch(t, snap, subj, tr)
	if tr := Empty(Options{}).Explain(subj); len(tr.Rules) != 0 || tr.Deciding() != nil {
		t.Errorf("empty policy: got %+v", tr)
	}
}

// TestExplainAgreesWithMatch: for generated subjects over policies with literal namespaces
// (indexed by Match), globs and selectors, the deciding rule of the trace is Match's, with
// the same Missing, and exactly one rule decides whenever Match returns one.
func TestExplainAgreesWithMatch(t *testing.T) {
	snaps := []*Snapshot{compile(t, explainPolicy), compile(t, `
apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: r0, namespaces: [a], selector: {matchLabels: {app: x}}, maxReplicas: 1}
- {name: r1, namespaces: ["b*"], maxReplicas: 1}
- {name: r2, namespaces: [a, c], namespaceSelector: {matchLabels: {env: p}}, maxReplicas: 1}
- {name: r3, selector: {matchExpressions: [{key: app, operator: NotIn, values: [x]}]}, maxReplicas: 1}
- {name: r4, namespaces: [c], maxReplicas: 1}
- {name: r5, namespaceSelector: {matchExpressions: [{key: env, operator: Exists}]}, maxReplicas: 1}
- {name: r6, kinds: [StatefulSet, Database.example.com], namespaceSelector: {matchLabels: {env: p}}, maxReplicas: 1}
- {name: r7, namespaces: [a], kinds: [Deployment], maxReplicas: 1}
`)}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	labelsOf := func(key string, values ...string) map[string]string {
		if v := pick(values...); v != "" {
			return map[string]string{key: v}
		}
		return map[string]string{}
	}
	for i := range 5000 {
		kind := [][2]string{{"apps", "Deployment"}, {"apps", "StatefulSet"}, {"example.com", "Database"}, {"example.com", "Deployment"}}[rng.IntN(4)]
		subj := Subject{
			Group:                  kind[0],
			Kind:                   kind[1],
			Namespace:              pick("a", "b", "bb", "c", "d", "prod", "team-x", "staging", "empty", "kube-system", "sandbox-2"),
			Labels:                 labelsOf("app", "x", "y", "web", "db", ""),
			NamespaceLabels:        labelsOf(pick("env", "tier"), "p", "prod", "gold", ""),
			LabelsUnknown:          rng.IntN(4) == 0,
			NamespaceLabelsUnknown: rng.IntN(4) == 0,
		}
		snap := snaps[i%len(snaps)]
		checkAgreesWithMatch(t, snap, subj, snap.Explain(subj))
	}
}

// TestExplainKinds: a rule's kinds is a matcher like the others, shown between namespaces
// and the selectors as Match evaluates it; built-in kinds by name, custom ones as Kind.group.
func TestExplainKinds(t *testing.T) {
	snap := compile(t, `
apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- name: stateful
  namespaces: [prod]
  kinds: [StatefulSet, Database.example.com]
  selector: {matchLabels: {app: db}}
  maxReplicas: 3
default: {maxReplicas: 50}
`)
	for _, tc := range []struct {
		name string
		subj Subject
		want []string
	}{
		{"built-in kind", Subject{Group: "apps", Kind: "StatefulSet", Namespace: "prod", Labels: map[string]string{"app": "db"}}, []string{"stateful:matched*", "default:matched"}},
		{"custom kind", Subject{Group: "example.com", Kind: "Database", Namespace: "prod", Labels: map[string]string{"app": "db"}}, []string{"stateful:matched*", "default:matched"}},
		{"another kind", Subject{Group: "apps", Kind: "Deployment", Namespace: "prod", Labels: map[string]string{"app": "db"}}, []string{"stateful:failed=[kinds]", "default:matched*"}},
		{"a built-in name in another group", Subject{Group: "example.com", Kind: "StatefulSet", Namespace: "dev", Labels: map[string]string{}}, []string{"stateful:failed=[namespaces kinds selector]", "default:matched*"}},
		{"a failed kind beats unknown labels", Subject{Group: "apps", Kind: "Deployment", Namespace: "prod", LabelsUnknown: true}, []string{"stateful:failed=[kinds]", "default:matched*"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := snap.Explain(tc.subj)
			var got []string
			for _, rt := range tr.Rules {
				got = append(got, traceLine(rt))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("trace\n got %q\nwant %q", got, tc.want)
			}
			if m := tr.Rules[0].Matchers[1]; m.Matcher != MatcherKinds || m.Spec != "StatefulSet, Database.example.com" {
				t.Errorf("second matcher %+v, want kinds", m)
			}
			checkAgreesWithMatch(t, snap, tc.subj, tr)
		})
	}
}

// TestExplainOwned: a subject whose controller is bounded is owned, as Decide says, unless
// its namespace is exempt; no rule is evaluated.
func TestExplainOwned(t *testing.T) {
	snap := compile(t, explainPolicy)
	owner := &Owner{Group: "apps", Kind: "Deployment", Name: "web"}
	for _, tc := range []struct {
		subj          Subject
		exempt, owned bool
	}{
		{Subject{Group: "apps", Kind: "ReplicaSet", Namespace: "prod", Owner: owner}, false, true},
		{Subject{Group: "apps", Kind: "ReplicaSet", Namespace: "kube-system", Owner: owner}, true, false},
	} {
		tr := snap.Explain(tc.subj)
		v := snap.Decide(tc.subj, nil)
		if tr.Exempt != tc.exempt || tr.Owned != tc.owned || len(tr.Rules) != 0 || tr.Deciding() != nil {
			t.Errorf("%s: trace %+v", tc.subj.Namespace, tr)
		}
		if (v.Outcome == OutcomeOwned) != tr.Owned || (v.Outcome == OutcomeExempt) != tr.Exempt {
			t.Errorf("%s: Decide says %s, Explain %+v", tc.subj.Namespace, v.Outcome, tr)
		}
	}
}

func checkAgreesWithMatch(t *testing.T, snap *Snapshot, subj Subject, tr Trace) {
	t.Helper()
	m := snap.Match(subj)
	if tr.Exempt != m.Exempt {
		t.Fatalf("%+v: Explain exempt %v, Match exempt %v", subj, tr.Exempt, m.Exempt)
	}
	var first *RuleTrace // the first rule that matched or could not be evaluated
	deciding := 0
	for i := range tr.Rules {
		rt := &tr.Rules[i]
		if first == nil && (rt.Matched || rt.Missing != MissingNothing) {
			first = rt
		}
		if rt.Decides {
			deciding++
		}
	}
	switch {
	case m.Rule == nil && first != nil:
		t.Fatalf("%+v: Match decides nothing, Explain's first match is %q", subj, first.Rule.Name)
	case m.Rule == nil:
	case first == nil || first.Rule != m.Rule || first.Missing != m.Missing || !first.Decides || deciding != 1:
		t.Fatalf("%+v: Match decides %q (missing %q), Explain's first match %+v, %d deciding", subj, m.Rule.Name, m.Missing, first, deciding)
	}
}
