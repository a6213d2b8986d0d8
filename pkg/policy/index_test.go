package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

// TestMatchManyLiteralRules: 10,000 rules that each name one namespace, as a policy near
// the ConfigMap size limit would hold, plus rules that share a namespace and a glob rule in
// the middle that competes with the indexed rules after it.
func TestMatchManyLiteralRules(t *testing.T) {
	const n = 10000
	p := &ReplicaPolicy{APIVersion: APIVersion, Kind: Kind, Default: &BoundsSpec{MaxReplicas: ptr.To[int32](1)}}
	for i := range n {
		r := Rule{Name: fmt.Sprintf("r%d", i), Namespaces: []string{fmt.Sprintf("ns-%d", i)}, BoundsSpec: BoundsSpec{MaxReplicas: ptr.To(int32(i))}}
		if i%1000 == 999 {
			r.Namespaces = append(r.Namespaces, "shared") // r999 is the first of these
		}
		if i == n/2 {
			r.Namespaces = []string{"ns-99*"} // unindexed: competes with ns-99xx after it
		}
		p.Rules = append(p.Rules, r)
	}
	s, err := Compile(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.unindexed); got != 1 {
		t.Errorf("%d rules outside the index, want only the glob rule", got)
	}
	if got := len(s.byNamespace); got != n {
		t.Errorf("index holds %d namespaces, want %d", got, n) // n-1 literal ones and "shared"
	}
	for ns, want := range map[string]string{
		"ns-0":    "r0", // first
		"ns-4999": "r4999",
		"ns-5000": "default", // its rule is the glob one, which names no ns-5000
		"ns-5001": "r5001",   // middle
		"ns-99":   "r99",     // before the glob rule
		"ns-991":  "r991",    // before the glob rule, and matches it too
		"ns-9900": "r5000",   // the glob rule comes first
		"ns-9999": "r5000",   // last, but the glob rule comes first
		"ns-9898": "r9898",   // last thousand, outside the glob
		"shared":  "r999",    // several indexed rules: the first
		"ns-x":    "default",
	} {
		m := s.Match(Subject{Namespace: ns})
		if ruleName(m) != want {
			t.Errorf("%s: rule %q, want %q", ns, ruleName(m), want)
		}
		if want != "default" && want != "r5000" && *m.Rule.Bounds.Max != int32(m.Rule.index) {
			t.Errorf("%s: rule %q has the bounds of another rule: max %d", ns, want, *m.Rule.Bounds.Max)
		}
	}
	// The index makes a match a map lookup: nothing to allocate.
	if a := testing.AllocsPerRun(100, func() { s.Match(Subject{Namespace: "ns-9898"}) }); a != 0 {
		t.Errorf("Match allocates %.0f times per call, want 0", a)
	}
}

// referenceMatch is Match written as the contract reads, without the index: every rule
// top to bottom, namespaces as globs (a literal name is a glob without wildcards),
// selectors converted on the spot. The index must give the same answers.
func referenceMatch(p *ReplicaPolicy, alwaysExempt []string, w Subject) Match {
	for _, g := range slices.Concat(alwaysExempt, p.ExemptNamespaces) {
		if ok, _ := path.Match(g, w.Namespace); ok {
			return Match{Exempt: true}
		}
	}
	matchesNamespace := func(g string) bool { ok, _ := path.Match(g, w.Namespace); return ok }
	for i, r := range p.Rules {
		if len(r.Namespaces) > 0 && !slices.ContainsFunc(r.Namespaces, matchesNamespace) {
			continue
		}
		if len(r.Kinds) > 0 && !slices.Contains(r.Kinds, KindName(w.Group, w.Kind)) {
			continue
		}
		missing, failed := MissingNothing, false
		for _, m := range []struct {
			sel     *metav1.LabelSelector
			set     map[string]string
			missing bool
			what    Missing
		}{
			{r.NamespaceSelector, w.NamespaceLabels, w.NamespaceLabelsUnknown, MissingNamespaceLabels},
			{r.Selector, w.Labels, w.LabelsUnknown, MissingWorkloadLabels},
		} {
			if m.sel == nil {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(m.sel)
			if err != nil {
				panic(err)
			}
			switch {
			case sel.Empty(): // matches everything, needs nothing
			case m.missing:
				if missing == MissingNothing {
					missing = m.what
				}
			case !sel.Matches(labels.Set(m.set)):
				failed = true
			}
		}
		if !failed {
			return Match{Rule: &CompiledRule{Name: r.Name, index: i}, Missing: missing}
		}
	}
	if p.Default != nil {
		return Match{Rule: &CompiledRule{Name: DefaultRuleName, index: len(p.Rules)}}
	}
	return Match{}
}

// randomPolicy draws a valid policy from small pools, so that rules overlap often.
func randomPolicy(rng *rand.Rand) (*ReplicaPolicy, []string) {
	literals := []string{"a", "b", "ab", "team-a", "team-b", "prod", "x"}
	globs := []string{"team-*", "?", "[ab]", "*b", "a*", "[!a]*", "pro?"}
	pick := func(l []string) string { return l[rng.IntN(len(l))] }
	selector := func() *metav1.LabelSelector {
		switch rng.IntN(8) {
		case 0:
			return &metav1.LabelSelector{} // matches everything
		case 1, 2:
			return &metav1.LabelSelector{MatchLabels: map[string]string{pick([]string{"app", "tier"}): pick([]string{"web", "api", "gold"})}}
		case 3:
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"web"}}}}
		case 4:
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: pick([]string{"app", "tier"}), Operator: metav1.LabelSelectorOpExists}}}
		case 5:
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpDoesNotExist}}}
		}
		return nil
	}
	p := &ReplicaPolicy{APIVersion: APIVersion, Kind: Kind}
	if rng.IntN(2) == 0 {
		p.Default = &BoundsSpec{MaxReplicas: ptr.To[int32](100)}
	}
	if rng.IntN(4) == 0 {
		p.ExemptNamespaces = []string{pick(append(literals, globs...))}
	}
	for i := range 1 + rng.IntN(12) {
		r := Rule{Name: fmt.Sprintf("r%d", i), BoundsSpec: BoundsSpec{MaxReplicas: ptr.To(int32(i))}}
		for range rng.IntN(4) {
			if rng.IntN(4) == 0 {
				r.Namespaces = append(r.Namespaces, pick(globs))
			} else {
				r.Namespaces = append(r.Namespaces, pick(literals))
			}
		}
		if rng.IntN(3) == 0 {
			r.NamespaceSelector = selector()
		}
		if rng.IntN(3) == 0 {
			r.Selector = selector()
		}
		if rng.IntN(3) == 0 {
			r.Kinds = []string{pick(randomKinds)}
		}
		p.Rules = append(p.Rules, r)
	}
	var alwaysExempt []string
	if rng.IntN(4) == 0 {
		alwaysExempt = []string{pick(literals)}
	}
	return p, alwaysExempt
}

// randomKinds are the kinds random rules bound and random workloads have.
var randomKinds = []string{"Deployment", "StatefulSet", "Rollout.argoproj.io"}

func randomWorkload(rng *rand.Rand) Subject {
	set := func() map[string]string {
		m := map[string]string{}
		for _, k := range []string{"app", "tier"} {
			if rng.IntN(2) == 0 {
				m[k] = []string{"web", "api", "gold"}[rng.IntN(3)]
			}
		}
		return m
	}
	kind, group, _ := strings.Cut(randomKinds[rng.IntN(len(randomKinds))], ".")
	if group == "" {
		group = BuiltinGroup
	}
	return Subject{
		Group:                  group,
		Kind:                   kind,
		Namespace:              []string{"a", "b", "ab", "ba", "team-a", "team-b", "team-c", "prod", "prom", "x", "zzz"}[rng.IntN(11)],
		Labels:                 set(),
		NamespaceLabels:        set(),
		LabelsUnknown:          rng.IntN(6) == 0,
		NamespaceLabelsUnknown: rng.IntN(6) == 0,
	}
}

// TestMatchAgainstReference is the proof that the index keeps first-match semantics:
// thousands of random policies and workloads, Match against referenceMatch.
func TestMatchAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed: a failure reproduces
	const policies, workloads = 1000, 10
	var indexed, unknown, exempt, none int
	for pi := range policies {
		p, alwaysExempt := randomPolicy(rng)
		s, err := Compile(p, Options{AlwaysExempt: alwaysExempt})
		if err != nil {
			t.Fatalf("policy %d: %v", pi, err)
		}
		indexed += len(s.rules) - len(s.unindexed)
		for range workloads {
			w := randomWorkload(rng)
			got, want := s.Match(w), referenceMatch(p, alwaysExempt, w)
			if ruleName(got) != ruleName(want) || got.Exempt != want.Exempt || got.Missing != want.Missing {
				doc, _ := json.Marshal(p)
				t.Fatalf("policy %d, workload %+v, always exempt %q:\n got rule %q exempt %v unknown %q\nwant rule %q exempt %v unknown %q\npolicy: %s",
					pi, w, alwaysExempt, ruleName(got), got.Exempt, got.Missing, ruleName(want), want.Exempt, want.Missing, doc)
			}
			if got.Rule != nil && got.Rule.index != want.Rule.index {
				t.Fatalf("policy %d: rule %q has index %d, want %d", pi, got.Rule.Name, got.Rule.index, want.Rule.index)
			}
			switch {
			case got.Exempt:
				exempt++
			case got.Missing != MissingNothing:
				unknown++
			case got.Rule == nil:
				none++
			}
		}
	}
	// The random policies must exercise what they are meant to; else the test proves little.
	total := policies * workloads
	for what, n := range map[string]int{"indexed rules": indexed, "unknown matches": unknown, "exempt matches": exempt, "no-rule matches": none} {
		if n < total/50 {
			t.Errorf("only %d %s in %d cases: the generator no longer covers them", n, what, total)
		}
	}
}

// benchPolicy builds a policy of n rules of one kind; the workload matches only the last.
func benchPolicy(b *testing.B, kind string, n int) (*Snapshot, Subject) {
	p := &ReplicaPolicy{APIVersion: APIVersion, Kind: Kind}
	for i := range n {
		r := Rule{Name: fmt.Sprintf("r%d", i), BoundsSpec: BoundsSpec{MaxReplicas: ptr.To[int32](10)}}
		switch kind {
		case "names":
			r.Namespaces = []string{fmt.Sprintf("ns-%d", i)}
		case "globs":
			r.Namespaces = []string{fmt.Sprintf("ns-%d-*", i)}
		case "selectors":
			r.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i)}}
		}
		p.Rules = append(p.Rules, r)
	}
	s, err := Compile(p, Options{AlwaysExempt: []string{DefaultNamespace}})
	if err != nil {
		b.Fatal(err)
	}
	w := Subject{Namespace: fmt.Sprintf("ns-%d", n-1), Labels: map[string]string{"app": fmt.Sprintf("app-%d", n-1), "team": "x"}}
	if kind == "globs" {
		w.Namespace += "-east"
	}
	if m := s.Match(w); ruleName(m) != fmt.Sprintf("r%d", n-1) {
		b.Fatalf("%s/%d: matched %q, want the last rule", kind, n, ruleName(m))
	}
	return s, w
}

// BenchmarkMatch: the workload matches the last rule, the worst case for a scan.
func BenchmarkMatch(b *testing.B) {
	for _, kind := range []string{"names", "globs", "selectors"} {
		for _, n := range []int{1, 100, 10000} {
			b.Run(fmt.Sprintf("%s/%d", kind, n), func(b *testing.B) {
				s, w := benchPolicy(b, kind, n)
				b.ReportAllocs()
				for b.Loop() {
					s.Match(w)
				}
			})
		}
	}
}
