package policy

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"
)

// FuzzParse feeds arbitrary bytes to Load, as the policy watcher and the validating webhook
// do with whatever a ConfigMap holds. The seed corpus is testdata/fuzz/FuzzParse (run
// `make fuzz` to search further; a crasher found there belongs in that folder).
//
// For every input: no panic; an error is an *InvalidError whose errors each name a field
// and read as one line. For every policy that loads: Match never panics and agrees with
// referenceMatch (the index keeps first-match semantics), and the policy written back out
// as YAML loads again into the same rules with the same answers.
func FuzzParse(f *testing.F) {
	for _, doc := range []string{designExample, header + "rules: []\n", header + "default: {maxReplicas: 3}\n"} {
		f.Add([]byte(doc))
	}
	opts := Options{AlwaysExempt: []string{DefaultNamespace}}
	f.Fuzz(func(t *testing.T, data []byte) {
		snap, err := Load(data, opts)
		if err != nil {
			checkInvalid(t, err)
			return
		}
		if snap == nil || snap.Policy == nil {
			t.Fatal("Load returned neither a snapshot nor an error")
		}
		workloads := fuzzWorkloads(snap.Policy)
		for _, w := range workloads {
			got, want := snap.Match(w), referenceMatch(snap.Policy, opts.AlwaysExempt, w)
			if ruleName(got) != ruleName(want) || got.Exempt != want.Exempt || got.Missing != want.Missing {
				t.Fatalf("workload %+v: Match gives rule %q exempt %v unknown %q, the reference rule %q exempt %v unknown %q",
					w, ruleName(got), got.Exempt, got.Missing, ruleName(want), want.Exempt, want.Missing)
			}
			if got.Rule != nil {
				_ = got.Rule.Bounds.String()
				if n := got.Rule.Bounds.Nearest(-1); !got.Rule.Bounds.Contains(n) {
					t.Fatalf("rule %q: Nearest(-1) = %d is outside %s", got.Rule.Name, n, got.Rule.Bounds)
				}
			}
		}

		// Round trip: what a tool writes back (kubectl edit, a GitOps renderer) means the same.
		out, err := yaml.Marshal(snap.Policy)
		if err != nil {
			t.Fatalf("marshalling a loaded policy: %v", err)
		}
		again, err := Load(out, opts)
		if err != nil {
			t.Fatalf("the policy written back does not load: %v\ninput:\n%s\nwritten:\n%s", err, data, out)
		}
		if !equality.Semantic.DeepEqual(snap.Policy, again.Policy) {
			t.Fatalf("round trip changed the policy:\ninput:\n%s\nwritten:\n%s", data, out)
		}
		for _, w := range workloads {
			if a, b := snap.Match(w), again.Match(w); ruleName(a) != ruleName(b) || a.Exempt != b.Exempt || a.Missing != b.Missing {
				t.Fatalf("workload %+v: rule %q before the round trip, %q after", w, ruleName(a), ruleName(b))
			}
		}
	})
}

// checkInvalid asserts what every caller of Load relies on: an *InvalidError, with at least
// one error, each naming its field and readable in an Event or in kubectl's output.
func checkInvalid(t *testing.T, err error) {
	t.Helper()
	var invalid *InvalidError
	if !errors.As(err, &invalid) {
		t.Fatalf("Load returned %T (%v), want *InvalidError", err, err)
	}
	if len(invalid.Errs) == 0 {
		t.Fatal("an *InvalidError without errors")
	}
	for i, e := range invalid.Errs {
		msg := e.Error()
		switch {
		case e == nil:
			t.Fatalf("error %d is nil", i)
		case e.Field == "":
			t.Fatalf("error %d has no field path: %q", i, msg)
		case e.Type == "":
			t.Fatalf("error %d has no type: %q", i, msg)
		case strings.TrimSpace(strings.TrimPrefix(msg, e.Field+":")) == "":
			t.Fatalf("error %d says nothing beyond its field: %q", i, msg)
		case strings.ContainsAny(msg, "\n\r"):
			t.Fatalf("error %d spans lines, which Events and kubectl render badly: %q", i, msg)
		case !utf8.ValidString(msg):
			t.Fatalf("error %d is not valid UTF-8: %q", i, msg)
		case strings.ContainsFunc(msg, func(r rune) bool { return !strconv.IsPrint(r) }):
			t.Fatalf("error %d holds a character that does not print: %q", i, msg)
		}
	}
}

// fuzzWorkloads are a few workloads for a loaded policy: in the namespaces it names (a glob
// is also tried as a literal name), in others, with labels its selectors name, and with
// labels unknown.
func fuzzWorkloads(p *ReplicaPolicy) []Subject {
	namespaces := []string{"", "default", "prod", "team-a", "kube-system", DefaultNamespace}
	labelSets := []map[string]string{nil, {"app": "web", "env": "prod", "tier": "web"}}
	for i, r := range p.Rules {
		if i == 8 {
			break // a few rules are enough to reach every code path of Match
		}
		namespaces = append(namespaces, r.Namespaces...)
		if r.Selector != nil && len(r.Selector.MatchLabels) > 0 {
			labelSets = append(labelSets, r.Selector.MatchLabels)
		}
		if r.NamespaceSelector != nil && len(r.NamespaceSelector.MatchLabels) > 0 {
			labelSets = append(labelSets, r.NamespaceSelector.MatchLabels)
		}
	}
	namespaces = append(namespaces, p.ExemptNamespaces...)
	var ws []Subject
	for i, ns := range namespaces {
		l := labelSets[i%len(labelSets)]
		nl := labelSets[(i+1)%len(labelSets)]
		ws = append(ws,
			Subject{Namespace: ns, Labels: l, NamespaceLabels: nl},
			Subject{Namespace: ns, LabelsUnknown: true, NamespaceLabels: l},
			Subject{Namespace: ns, Labels: nl, NamespaceLabelsUnknown: true},
		)
	}
	return ws
}
