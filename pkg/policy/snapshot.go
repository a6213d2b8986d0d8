package policy

import (
	"fmt"
	"path"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Bounds is an inclusive replica range; a nil end is unbounded.
type Bounds struct {
	Min, Max  *int32
	AllowZero bool
}

// Contains reports whether replicas is allowed.
func (b Bounds) Contains(replicas int32) bool {
	return b.Nearest(replicas) == replicas
}

// Nearest returns replicas moved to the nearest bound, or replicas itself when it is allowed.
// A scale to zero is allowed when AllowZero is set.
func (b Bounds) Nearest(replicas int32) int32 {
	if replicas == 0 && b.AllowZero {
		return 0
	}
	if b.Min != nil && replicas < *b.Min {
		return *b.Min
	}
	if b.Max != nil && replicas > *b.Max {
		return *b.Max
	}
	return replicas
}

// String renders the bounds for messages: "[2, 10]", "[2, ∞)", "[0, 10]".
func (b Bounds) String() string {
	lo, hi := "0", "∞)"
	if b.Min != nil {
		lo = fmt.Sprint(*b.Min)
	}
	if b.Max != nil {
		hi = fmt.Sprintf("%d]", *b.Max)
	}
	s := "[" + lo + ", " + hi
	if b.AllowZero && b.Min != nil && *b.Min > 0 {
		s += " or 0"
	}
	return s
}

// CompiledRule is a validated rule, ready to match: selectors parsed, globs split from names.
type CompiledRule struct {
	Name   string
	Action Action
	Bounds Bounds

	index             int
	matchesAll        bool // no matcher at all
	namespaces        namespaceSet
	kinds             map[string]struct{} // KindName values; nil matches every kind
	namespaceSelector labels.Selector
	selector          labels.Selector
}

// Match is the outcome of evaluating a policy's matchers for one subject.
type Match struct {
	// Rule is the first rule that matches (possibly the default), nil when none applies.
	Rule *CompiledRule
	// Exempt is set when the subject's namespace is exempt; Rule is then nil.
	Exempt bool
	// Missing, when not MissingNothing, names the labels that Rule needs but the caller
	// could not provide: the rules before Rule did not match, Rule might, and nothing can
	// be decided.
	Missing Missing
}

// Snapshot is an immutable, compiled policy. A request reads one Snapshot once; a reload
// builds a new one and swaps it in whole.
type Snapshot struct {
	// Policy is the document the snapshot was compiled from. Do not modify it.
	Policy *ReplicaPolicy
	// Source says where the policy came from (ConfigMap namespace/name@resourceVersion).
	Source string

	rules       []*CompiledRule
	byNamespace map[string][]int // rules that name only literal namespaces, by namespace
	unindexed   []int            // every other rule, in order
	deflt       *CompiledRule
	exempt      namespaceSet
}

// Options change how a policy is compiled.
type Options struct {
	// AlwaysExempt namespaces are exempt whatever the policy says (the webhook's own).
	AlwaysExempt []string
	// Source is recorded in the snapshot for logs and Events.
	Source string
}

// Empty returns a snapshot that bounds nothing: the state when no policy exists.
func Empty(opts Options) *Snapshot {
	s, _ := Compile(&ReplicaPolicy{APIVersion: APIVersion, Kind: Kind}, opts)
	return s
}

// Load parses, validates and compiles a policy document. Every problem, of parsing and of
// validation together, is returned in an *InvalidError.
func Load(data []byte, opts Options) (*Snapshot, error) {
	p, errs := ParseAndValidate(data)
	if len(errs) > 0 {
		return nil, &InvalidError{Errs: errs}
	}
	return Compile(p, opts)
}

// Compile validates p, applies defaults (action clamp) and builds a Snapshot.
func Compile(p *ReplicaPolicy, opts Options) (*Snapshot, error) {
	if errs := p.Validate(); len(errs) > 0 {
		return nil, &InvalidError{Errs: errs}
	}
	s := &Snapshot{
		Policy:      p,
		Source:      opts.Source,
		byNamespace: map[string][]int{},
	}
	s.exempt = newNamespaceSet(slices.Concat(opts.AlwaysExempt, p.ExemptNamespaces))
	for i := range p.Rules {
		r, err := compileRule(i, &p.Rules[i])
		if err != nil {
			return nil, &InvalidError{Errs: field.ErrorList{field.Invalid(field.NewPath("rules").Index(i), p.Rules[i].Name, err.Error())}}
		}
		s.rules = append(s.rules, r)
		if len(r.namespaces.globs) == 0 && len(r.namespaces.names) > 0 {
			for ns := range r.namespaces.names {
				s.byNamespace[ns] = append(s.byNamespace[ns], i)
			}
		} else {
			s.unindexed = append(s.unindexed, i)
		}
	}
	if p.Default != nil {
		s.deflt = &CompiledRule{Name: DefaultRuleName, Action: actionOrDefault(p.Default.Action), Bounds: boundsOf(p.Default), index: len(p.Rules), matchesAll: true}
	}
	return s, nil
}

func compileRule(i int, r *Rule) (*CompiledRule, error) {
	c := &CompiledRule{Name: r.Name, Action: actionOrDefault(r.Action), Bounds: boundsOf(&r.BoundsSpec), index: i}
	c.namespaces = newNamespaceSet(r.Namespaces)
	var err error
	if c.namespaceSelector, err = CompileSelector(r.NamespaceSelector); err != nil {
		return nil, err
	}
	if c.selector, err = CompileSelector(r.Selector); err != nil {
		return nil, err
	}
	for _, k := range r.Kinds {
		if c.kinds == nil {
			c.kinds = map[string]struct{}{}
		}
		c.kinds[k] = struct{}{}
	}
	c.matchesAll = len(r.Namespaces) == 0 && c.namespaceSelector == nil && c.selector == nil && c.kinds == nil
	return c, nil
}

// Selector is the rule's selector on workload labels, nil when it has none (or an empty one,
// which matches everything).
func (r *CompiledRule) Selector() labels.Selector { return r.selector }

// MatchesNamespace reports whether the rule's namespaces admit namespace ns: true when it
// names none. The rule's other matchers may still fail.
func (r *CompiledRule) MatchesNamespace(ns string) bool {
	return r.namespaces.empty() || r.namespaces.contains(ns)
}

// NamespaceSelector is the rule's selector on namespace labels, nil when it has none (or an
// empty one).
func (r *CompiledRule) NamespaceSelector() labels.Selector { return r.namespaceSelector }

// CompileSelector returns nil for an absent or empty selector: an empty selector matches
// everything, so it needs no labels, and a workload whose labels are unknown still matches.
func CompileSelector(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil || sel.Empty() {
		return nil, err
	}
	return sel, nil
}

func actionOrDefault(a Action) Action {
	if a == "" {
		return ActionClamp
	}
	return a
}

func boundsOf(b *BoundsSpec) Bounds {
	return Bounds{Min: b.MinReplicas, Max: b.MaxReplicas, AllowZero: b.AllowZero}
}

// Rules returns the compiled rules in order, followed by the default if there is one.
func (s *Snapshot) Rules() []*CompiledRule {
	if s.deflt == nil {
		return s.rules
	}
	return append(slices.Clip(s.rules), s.deflt)
}

// Exempt reports whether a namespace is never touched.
func (s *Snapshot) Exempt(namespace string) bool {
	return s.exempt.contains(namespace)
}

// Match returns the first rule that matches w. Rules that name only literal namespaces are
// found through an index, so a policy with thousands of them costs a map lookup, not a scan:
// the candidates are the indexed rules for w's namespace merged, in policy order, with the
// rules the index cannot hold (globs, selectors only, match-all).
func (s *Snapshot) Match(w Subject) Match {
	if s.Exempt(w.Namespace) {
		return Match{Exempt: true}
	}
	indexed := s.byNamespace[w.Namespace]
	i, j := 0, 0
	for i < len(indexed) || j < len(s.unindexed) {
		var r *CompiledRule
		if j >= len(s.unindexed) || (i < len(indexed) && indexed[i] < s.unindexed[j]) {
			r = s.rules[indexed[i]]
			i++
		} else {
			r = s.rules[s.unindexed[j]]
			j++
		}
		switch ok, missing := r.matches(w); {
		case missing != MissingNothing:
			return Match{Rule: r, Missing: missing}
		case ok:
			return Match{Rule: r}
		}
	}
	return Match{Rule: s.deflt}
}

// matches evaluates every matcher of the rule (AND). When a matcher needs labels the caller
// does not have and every other matcher matched, it returns which labels are missing.
func (r *CompiledRule) matches(w Subject) (ok bool, missing Missing) {
	if r.matchesAll {
		return true, MissingNothing
	}
	if !r.namespaces.empty() {
		if !r.namespaces.contains(w.Namespace) {
			return false, MissingNothing
		}
	}
	if r.kinds != nil {
		if _, ok := r.kinds[KindName(w.Group, w.Kind)]; !ok {
			return false, MissingNothing
		}
	}
	if r.namespaceSelector != nil {
		if w.NamespaceLabelsUnknown {
			missing = MissingNamespaceLabels
		} else if !r.namespaceSelector.Matches(labels.Set(w.NamespaceLabels)) {
			return false, MissingNothing
		}
	}
	if r.selector != nil {
		if w.LabelsUnknown {
			if missing == MissingNothing {
				missing = MissingWorkloadLabels
			}
		} else if !r.selector.Matches(labels.Set(w.Labels)) {
			return false, MissingNothing
		}
	}
	return missing == MissingNothing, missing
}

// namespaceSet is a list of namespace names and shell-style globs, split so that names
// cost a map lookup: a rule's namespaces, and the exempt namespaces.
type namespaceSet struct {
	names map[string]struct{}
	globs []string
}

func newNamespaceSet(patterns []string) namespaceSet {
	names, globs := SplitNamespaces(patterns)
	s := namespaceSet{globs: globs}
	for _, ns := range names {
		if s.names == nil {
			s.names = map[string]struct{}{}
		}
		s.names[ns] = struct{}{}
	}
	return s
}

// SplitNamespaces splits namespace patterns into plain names and shell-style globs, each in
// the order given: how a rule's namespaces and the exempt namespaces are read.
func SplitNamespaces(patterns []string) (names, globs []string) {
	for _, ns := range patterns {
		if isGlob(ns) {
			globs = append(globs, ns)
		} else {
			names = append(names, ns)
		}
	}
	return names, globs
}

func (s namespaceSet) empty() bool { return len(s.names) == 0 && len(s.globs) == 0 }

func (s namespaceSet) contains(ns string) bool {
	if _, ok := s.names[ns]; ok {
		return true
	}
	for _, g := range s.globs {
		if ok, _ := path.Match(g, ns); ok {
			return true
		}
	}
	return false
}
