package policy

import (
	"testing"

	"k8s.io/utils/ptr"
)

// matchPolicy exercises every kind of matcher; each rule's maxReplicas is its position + 1,
// so a wrong rule with the right name would still show.
const matchPolicy = header + `exemptNamespaces: [kube-system, "sys-*"]
default: {maxReplicas: 100}
rules:
- name: literal-prod                # indexed
  namespaces: [prod]
  maxReplicas: 1
- name: glob-team                   # unindexed
  namespaces: ["team-*"]
  maxReplicas: 2
- name: single-char
  namespaces: ["?"]
  maxReplicas: 3
- name: class
  namespaces: ["[ab]x"]
  maxReplicas: 4
- name: ns-labels
  namespaceSelector: {matchLabels: {env: staging}}
  maxReplicas: 5
- name: workload-labels
  selector: {matchExpressions: [{key: app, operator: In, values: [web, api]}]}
  maxReplicas: 6
- name: all-three                   # indexed, with selectors: every matcher must match
  namespaces: [shop]
  namespaceSelector: {matchLabels: {tier: gold}}
  selector: {matchLabels: {app: cart}}
  maxReplicas: 7
- name: shop-rest
  namespaces: [shop]
  maxReplicas: 8
`

func TestMatch(t *testing.T) {
	s := mustLoad(t, matchPolicy, Options{AlwaysExempt: []string{DefaultNamespace}})
	tests := []struct {
		name string
		w    Subject
		rule string // "" for no rule
	}{
		{"literal namespace", Subject{Namespace: "prod"}, "literal-prod"},
		{"literal namespace is not a prefix", Subject{Namespace: "prod2"}, "default"},
		{"glob *", Subject{Namespace: "team-a"}, "glob-team"},
		{"glob * matches the empty rest", Subject{Namespace: "team-"}, "glob-team"},
		{"glob * anchors at the start", Subject{Namespace: "my-team-a"}, "default"},
		{"glob ?", Subject{Namespace: "q"}, "single-char"},
		{"glob ? is one character", Subject{Namespace: "qq"}, "default"},
		{"glob [ab] a", Subject{Namespace: "ax"}, "class"},
		{"glob [ab] b", Subject{Namespace: "bx"}, "class"},
		{"glob [ab] c", Subject{Namespace: "cx"}, "default"},
		{"namespaceSelector", Subject{Namespace: "qa", NamespaceLabels: map[string]string{"env": "staging", "x": "y"}}, "ns-labels"},
		{"namespaceSelector, other value", Subject{Namespace: "qa", NamespaceLabels: map[string]string{"env": "prod"}}, "default"},
		{"selector on workload labels", Subject{Namespace: "qa", Labels: map[string]string{"app": "api"}}, "workload-labels"},
		{"selector does not look at namespace labels", Subject{Namespace: "qa", NamespaceLabels: map[string]string{"app": "api"}}, "default"},
		{"all three match", Subject{Namespace: "shop", NamespaceLabels: map[string]string{"tier": "gold"}, Labels: map[string]string{"app": "cart"}}, "all-three"},
		{"AND: workload label missing", Subject{Namespace: "shop", NamespaceLabels: map[string]string{"tier": "gold"}, Labels: map[string]string{"app": "till"}}, "shop-rest"},
		{"AND: namespace label missing", Subject{Namespace: "shop", Labels: map[string]string{"app": "cart"}}, "shop-rest"},
		{"AND: namespace differs", Subject{Namespace: "mall", NamespaceLabels: map[string]string{"tier": "gold"}, Labels: map[string]string{"app": "cart"}}, "default"},
		{"first match wins: literal before selectors", Subject{Namespace: "prod", NamespaceLabels: map[string]string{"env": "staging"}, Labels: map[string]string{"app": "web"}}, "literal-prod"},
		{"first match wins: glob before selectors", Subject{Namespace: "team-x", NamespaceLabels: map[string]string{"env": "staging"}}, "glob-team"},
		{"first match wins: selector before a later literal", Subject{Namespace: "shop", Labels: map[string]string{"app": "web"}}, "workload-labels"},
		{"default when none match", Subject{Namespace: "elsewhere"}, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := s.Match(tt.w)
			if m.Exempt || m.Missing != MissingNothing {
				t.Errorf("Match = %+v, want neither exempt nor unknown", m)
			}
			if got := ruleName(m); got != tt.rule {
				t.Fatalf("rule %q, want %q", got, tt.rule)
			}
			if m.Rule.Action != ActionClamp {
				t.Errorf("action %q, want clamp (the default action)", m.Rule.Action)
			}
			// Names and bounds belong together: each rule's max is its position + 1.
			want := map[string]int32{"literal-prod": 1, "glob-team": 2, "single-char": 3, "class": 4, "ns-labels": 5,
				"workload-labels": 6, "all-three": 7, "shop-rest": 8, "default": 100}[tt.rule]
			if got := *m.Rule.Bounds.Max; got != want {
				t.Errorf("rule %q has max %d, want %d", tt.rule, got, want)
			}
		})
	}
}

func ruleName(m Match) string {
	if m.Rule == nil {
		return ""
	}
	return m.Rule.Name
}

// TestMatchFirstWinsAcrossIndex: a rule found through the namespace index and a rule the
// index cannot hold both match; whichever comes first in the policy must win.
func TestMatchFirstWinsAcrossIndex(t *testing.T) {
	literal := "- {name: literal, namespaces: [team-a], maxReplicas: 1}\n"
	glob := "- {name: glob, namespaces: [\"team-*\"], maxReplicas: 2}\n"
	all := "- {name: all, maxReplicas: 3}\n"
	sel := "- {name: sel, selector: {matchLabels: {app: web}}, maxReplicas: 4}\n"
	w := Subject{Namespace: "team-a", Labels: map[string]string{"app": "web"}}
	for _, tt := range []struct {
		rules, want string
	}{
		{literal + glob, "literal"},
		{glob + literal, "glob"},
		{literal + all, "literal"},
		{all + literal, "all"},
		{sel + literal + glob, "sel"},
		{glob + sel + literal, "glob"},
		{"- {name: other, namespaces: [team-b], maxReplicas: 9}\n" + glob + literal, "glob"},
		{"- {name: other, namespaces: [team-b], maxReplicas: 9}\n" + literal + glob, "literal"},
	} {
		s := mustLoad(t, header+"rules:\n"+tt.rules, Options{})
		if got := ruleName(s.Match(w)); got != tt.want {
			t.Errorf("rules:\n%sgot %q, want %q", tt.rules, got, tt.want)
		}
	}
}

func TestMatchNoDefault(t *testing.T) {
	s := mustLoad(t, header+"rules: [{name: a, namespaces: [prod], maxReplicas: 3}]\n", Options{})
	if m := s.Match(Subject{Namespace: "dev"}); m.Rule != nil || m.Exempt || m.Missing != MissingNothing {
		t.Errorf("Match = %+v, want no rule", m)
	}
	if m := s.Match(Subject{Namespace: "prod"}); ruleName(m) != "a" {
		t.Errorf("Match = %+v, want rule a", m)
	}
}

func TestMatchRuleWithoutMatchers(t *testing.T) {
	s := mustLoad(t, header+"default: {maxReplicas: 9}\nrules: [{name: everything, minReplicas: 2}]\n", Options{})
	for _, w := range []Subject{
		{Namespace: "a"},
		{Namespace: "b", Labels: map[string]string{"x": "y"}, NamespaceLabels: map[string]string{"z": "w"}},
		{Namespace: "c", LabelsUnknown: true, NamespaceLabelsUnknown: true},
	} {
		if m := s.Match(w); ruleName(m) != "everything" || m.Missing != MissingNothing {
			t.Errorf("Match(%+v) = %+v, want everything", w, m)
		}
	}
}

func TestMatchExempt(t *testing.T) {
	s := mustLoad(t, matchPolicy, Options{AlwaysExempt: []string{DefaultNamespace, "ops-*"}})
	for ns, exempt := range map[string]bool{
		"kube-system":    true, // policy, literal
		"sys-1":          true, // policy, glob
		DefaultNamespace: true, // Options.AlwaysExempt, literal
		"ops-east":       true, // Options.AlwaysExempt, glob
		"kube-public":    false,
		"prod":           false,
		"sys":            false,
	} {
		m := s.Match(Subject{Namespace: ns})
		if m.Exempt != exempt || s.Exempt(ns) != exempt {
			t.Errorf("%s: Match = %+v, Exempt() = %v, want exempt %v", ns, m, s.Exempt(ns), exempt)
		}
		if exempt && m.Rule != nil {
			t.Errorf("%s: exempt, yet rule %q", ns, m.Rule.Name)
		}
	}
	// Exempt even where a rule names the namespace.
	s = mustLoad(t, header+"exemptNamespaces: [prod]\nrules: [{name: a, namespaces: [prod], maxReplicas: 3}]\n", Options{})
	if m := s.Match(Subject{Namespace: "prod"}); !m.Exempt {
		t.Errorf("Match = %+v, want exempt", m)
	}
	// AlwaysExempt holds for the empty policy too (no ConfigMap).
	if !Empty(Options{AlwaysExempt: []string{DefaultNamespace}}).Match(Subject{Namespace: DefaultNamespace}).Exempt {
		t.Error("Empty snapshot does not exempt Options.AlwaysExempt")
	}
}

func TestMatchUnknownLabels(t *testing.T) {
	s := mustLoad(t, header+`default: {maxReplicas: 100}
rules:
- name: empty-selectors       # {} matches everything: it needs no labels
  namespaces: [open]
  selector: {}
  namespaceSelector: {}
  maxReplicas: 5
- name: prod-only             # fails on the namespace first: no labels needed to skip it
  namespaces: [prod]
  selector: {matchLabels: {app: web}}
  namespaceSelector: {matchLabels: {env: prod}}
  maxReplicas: 1
- name: by-ns-labels
  namespaces: ["team-*"]
  namespaceSelector: {matchLabels: {env: prod}}
  maxReplicas: 2
- name: by-labels
  selector: {matchLabels: {app: web}}
  maxReplicas: 3
- name: both
  namespaceSelector: {matchLabels: {env: qa}}
  selector: {matchLabels: {app: api}}
  maxReplicas: 4
`, Options{})
	tests := []struct {
		name    string
		w       Subject
		rule    string
		unknown Missing
	}{
		{"workload labels unknown, no selector rule before", Subject{Namespace: "dev", LabelsUnknown: true}, "by-labels", MissingWorkloadLabels},
		{"namespace rule skipped without unknown", Subject{Namespace: "dev", LabelsUnknown: true, NamespaceLabelsUnknown: true}, "by-labels", MissingWorkloadLabels},
		{"namespace labels unknown where the namespace matches", Subject{Namespace: "team-a", NamespaceLabelsUnknown: true}, "by-ns-labels", MissingNamespaceLabels},
		{"both unknown: namespace labels named first", Subject{Namespace: "prod", LabelsUnknown: true, NamespaceLabelsUnknown: true}, "prod-only", MissingNamespaceLabels},
		{"known labels that fail decide despite unknown ones", Subject{Namespace: "prod", LabelsUnknown: true, NamespaceLabels: map[string]string{"env": "dev"}}, "by-labels", MissingWorkloadLabels},
		{"known selector fails, namespace labels unknown", Subject{Namespace: "qa", Labels: map[string]string{"app": "api2"}, NamespaceLabelsUnknown: true}, "default", MissingNothing},
		{"known selector matches, namespace labels unknown", Subject{Namespace: "qa", Labels: map[string]string{"app": "api"}, NamespaceLabelsUnknown: true}, "both", MissingNamespaceLabels},
		{"workload labels known and matching", Subject{Namespace: "dev", Labels: map[string]string{"app": "web"}, NamespaceLabelsUnknown: true}, "by-labels", MissingNothing},
		{"unknown labels, earlier rule matched on what is known", Subject{Namespace: "prod", Labels: map[string]string{"app": "web"}, NamespaceLabels: map[string]string{"env": "prod"}}, "prod-only", MissingNothing},
		{"empty selectors need no labels", Subject{Namespace: "open", LabelsUnknown: true, NamespaceLabelsUnknown: true}, "empty-selectors", MissingNothing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := s.Match(tt.w)
			if ruleName(m) != tt.rule || m.Missing != tt.unknown {
				t.Errorf("Match = rule %q, unknown %q; want rule %q, unknown %q", ruleName(m), m.Missing, tt.rule, tt.unknown)
			}
		})
	}
}

func TestCompileDefaults(t *testing.T) {
	s := mustLoad(t, header+`default: {minReplicas: 1}
rules:
- {name: a, maxReplicas: 1}
- {name: b, maxReplicas: 1, action: deny}
- {name: c, maxReplicas: 1, action: warn}
`, Options{Source: "test"})
	want := []struct {
		name   string
		action Action
	}{{"a", ActionClamp}, {"b", ActionDeny}, {"c", ActionWarn}, {DefaultRuleName, ActionClamp}}
	rules := s.Rules()
	if len(rules) != len(want) {
		t.Fatalf("Rules() has %d entries, want %d", len(rules), len(want))
	}
	for i, w := range want {
		if rules[i].Name != w.name || rules[i].Action != w.action {
			t.Errorf("rule %d: %q %q, want %q %q", i, rules[i].Name, rules[i].Action, w.name, w.action)
		}
	}
	if s.Source != "test" {
		t.Errorf("Source %q, want test", s.Source)
	}
	// Rules() must not let the default leak into the snapshot's own rule list.
	_ = append(s.Rules(), &CompiledRule{Name: "intruder"})
	if got := s.Rules(); len(got) != 4 || got[3].Name != DefaultRuleName {
		t.Errorf("Rules() changed by a caller's append: %d rules", len(got))
	}
	// The document is not modified by defaulting.
	if s.Policy.Rules[0].Action != "" {
		t.Errorf("Compile wrote %q into the policy document", s.Policy.Rules[0].Action)
	}
}

func TestEmpty(t *testing.T) {
	s := Empty(Options{})
	if len(s.Rules()) != 0 {
		t.Errorf("empty snapshot has %d rules", len(s.Rules()))
	}
	if m := s.Match(Subject{Namespace: "prod", Labels: map[string]string{"a": "b"}}); m.Rule != nil || m.Exempt {
		t.Errorf("empty snapshot matched %+v", m)
	}
}

func TestCompileRejectsInvalid(t *testing.T) {
	p := &ReplicaPolicy{APIVersion: APIVersion, Kind: Kind, Rules: []Rule{{Name: "a"}}}
	if s, err := Compile(p, Options{}); s != nil || err == nil {
		t.Fatalf("Compile of a rule without bounds = %v, %v; want an error", s, err)
	}
}

func TestBounds(t *testing.T) {
	tests := []struct {
		name    string
		b       Bounds
		in      int32
		nearest int32
		str     string
	}{
		{"below min", Bounds{Min: ptr.To[int32](2), Max: ptr.To[int32](10)}, 1, 2, "[2, 10]"},
		{"above max", Bounds{Min: ptr.To[int32](2), Max: ptr.To[int32](10)}, 50, 10, "[2, 10]"},
		{"inside", Bounds{Min: ptr.To[int32](2), Max: ptr.To[int32](10)}, 5, 5, "[2, 10]"},
		{"at min", Bounds{Min: ptr.To[int32](2), Max: ptr.To[int32](10)}, 2, 2, "[2, 10]"},
		{"at max", Bounds{Min: ptr.To[int32](2), Max: ptr.To[int32](10)}, 10, 10, "[2, 10]"},
		{"min only, below", Bounds{Min: ptr.To[int32](3)}, 1, 3, "[3, ∞)"},
		{"min only, far above", Bounds{Min: ptr.To[int32](3)}, 1 << 30, 1 << 30, "[3, ∞)"},
		{"max only, above", Bounds{Max: ptr.To[int32](4)}, 9, 4, "[0, 4]"},
		{"max only, zero", Bounds{Max: ptr.To[int32](4)}, 0, 0, "[0, 4]"},
		{"allowZero with 0", Bounds{Min: ptr.To[int32](2), Max: ptr.To[int32](10), AllowZero: true}, 0, 0, "[2, 10] or 0"},
		{"allowZero with 1", Bounds{Min: ptr.To[int32](2), Max: ptr.To[int32](10), AllowZero: true}, 1, 2, "[2, 10] or 0"},
		{"allowZero false with 0", Bounds{Min: ptr.To[int32](2), Max: ptr.To[int32](10)}, 0, 2, "[2, 10]"},
		{"allowZero, min only", Bounds{Min: ptr.To[int32](2), AllowZero: true}, 0, 0, "[2, ∞) or 0"},
		{"min 0 with 0", Bounds{Min: ptr.To[int32](0), Max: ptr.To[int32](3)}, 0, 0, "[0, 3]"},
		{"min 0, allowZero says nothing more", Bounds{Min: ptr.To[int32](0), AllowZero: true}, 0, 0, "[0, ∞)"},
		{"max 0", Bounds{Max: ptr.To[int32](0)}, 5, 0, "[0, 0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Nearest(tt.in); got != tt.nearest {
				t.Errorf("Nearest(%d) = %d, want %d", tt.in, got, tt.nearest)
			}
			if got, want := tt.b.Contains(tt.in), tt.in == tt.nearest; got != want {
				t.Errorf("Contains(%d) = %v, want %v", tt.in, got, want)
			}
			if got := tt.b.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			// Nearest is idempotent: the corrected value is allowed.
			if n := tt.b.Nearest(tt.in); !tt.b.Contains(n) {
				t.Errorf("Nearest(%d) = %d is not contained", tt.in, n)
			}
		})
	}
}

// TestBoundsFromPolicy checks that the bounds reach the compiled rule and the default.
func TestBoundsFromPolicy(t *testing.T) {
	s := mustLoad(t, designExample, Options{})
	m := s.Match(Subject{Namespace: "team-x", NamespaceLabels: map[string]string{"env": "prod"}, Labels: map[string]string{"app": "web"}})
	if ruleName(m) != "prod-web" || m.Rule.Bounds.String() != "[2, 10]" || m.Rule.Bounds.Nearest(50) != 10 {
		t.Errorf("Match = %q %v, want prod-web [2, 10]", ruleName(m), m.Rule.Bounds)
	}
	m = s.Match(Subject{Namespace: "team-x", NamespaceLabels: map[string]string{"env": "dev"}, Labels: map[string]string{"app": "web"}})
	if ruleName(m) != DefaultRuleName || m.Rule.Bounds.String() != "[1, 50]" || m.Rule.Action != ActionClamp {
		t.Errorf("Match = %q %v %q, want default [1, 50] clamp", ruleName(m), m.Rule.Bounds, m.Rule.Action)
	}
	if !s.Match(Subject{Namespace: "kube-system"}).Exempt {
		t.Error("kube-system is not exempt")
	}
}
