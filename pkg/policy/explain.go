package policy

import (
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// Matcher names one of a rule's matchers, as the policy document spells it.
type Matcher string

const (
	// MatcherNamespaces is a rule's list of namespace names and globs.
	MatcherNamespaces Matcher = "namespaces"
	// MatcherKinds is a rule's list of workload kinds.
	MatcherKinds Matcher = "kinds"
	// MatcherNamespaceSelector is a rule's selector on the Namespace's labels.
	MatcherNamespaceSelector Matcher = "namespaceSelector"
	// MatcherSelector is a rule's selector on the workload's own labels.
	MatcherSelector Matcher = "selector"
)

// MatcherResult is how one matcher of a rule fared for a subject.
type MatcherResult struct {
	Matcher Matcher
	// Spec is the matcher as a string: "prod, team-*" for namespaces, "env=prod" for a
	// selector.
	Spec string
	// Matched reports whether the matcher matched; false with Unknown set means it could
	// not be evaluated.
	Matched bool
	// Unknown is set when the matcher needs labels the caller could not provide.
	Unknown bool
}

// RuleTrace is how one rule fared for a subject.
type RuleTrace struct {
	Rule *CompiledRule
	// Matchers are the matchers the rule names, in the order namespaces, kinds,
	// namespaceSelector, selector; empty for a rule with none (and for the default), which matches everything.
	Matchers []MatcherResult
	// Matched reports whether every matcher matched.
	Matched bool
	// Missing, when not MissingNothing, names the labels the rule needs and the caller could
	// not provide; no other matcher of the rule failed, so the rule might match.
	Missing Missing
	// Decides marks the rule that decides: the first that matched or could not be
	// evaluated, as Snapshot.Match returns it.
	Decides bool
}

// Failed returns the matchers that did not match (not those that could not be evaluated).
func (t RuleTrace) Failed() []MatcherResult {
	var failed []MatcherResult
	for _, m := range t.Matchers {
		if !m.Matched && !m.Unknown {
			failed = append(failed, m)
		}
	}
	return failed
}

// Trace is the evaluation of a whole policy for one subject: every rule in order, the
// default last.
type Trace struct {
	// Exempt is set when the subject's namespace is exempt: no rule is evaluated.
	Exempt bool
	// Owned is set when the subject's owner is bounded instead (Subject.Owner), as Decide
	// says: no rule is evaluated.
	Owned bool
	Rules []RuleTrace
}

// Deciding returns the trace of the deciding rule, nil when none decides (exempt, or no
// rule matched and there is no default).
func (t Trace) Deciding() *RuleTrace {
	for i := range t.Rules {
		if t.Rules[i].Decides {
			return &t.Rules[i]
		}
	}
	return nil
}

// Explain evaluates every rule of the policy for subj, in order, including those after the
// deciding one, and says for each which matchers matched. The deciding rule is the one
// Match returns, and exempt and owned subjects are those of Decide. It is pure, like
// Decide: the command-line tool's `explain` prints it.
func (s *Snapshot) Explain(subj Subject) Trace {
	if s.Exempt(subj.Namespace) {
		return Trace{Exempt: true}
	}
	if subj.Owner != nil {
		return Trace{Owned: true}
	}
	var t Trace
	decided := false
	for _, r := range s.Rules() {
		rt := s.traceRule(r, subj)
		if !decided && (rt.Matched || rt.Missing != MissingNothing) {
			rt.Decides, decided = true, true
		}
		t.Rules = append(t.Rules, rt)
	}
	return t
}

// traceRule evaluates each matcher of r. A rule matches when every matcher matches; when
// none failed but some could not be evaluated, the first of those (in matcher order) is
// what is missing, as in CompiledRule.matches.
func (s *Snapshot) traceRule(r *CompiledRule, subj Subject) RuleTrace {
	rt := RuleTrace{Rule: r}
	if !r.namespaces.empty() {
		rt.Matchers = append(rt.Matchers, MatcherResult{
			Matcher: MatcherNamespaces,
			Spec:    strings.Join(s.Policy.Rules[r.index].Namespaces, ", "),
			Matched: r.namespaces.contains(subj.Namespace),
		})
	}
	if r.kinds != nil {
		_, ok := r.kinds[KindName(subj.Group, subj.Kind)]
		rt.Matchers = append(rt.Matchers, MatcherResult{
			Matcher: MatcherKinds,
			Spec:    strings.Join(s.Policy.Rules[r.index].Kinds, ", "),
			Matched: ok,
		})
	}
	if r.namespaceSelector != nil {
		rt.Matchers = append(rt.Matchers, selectorResult(MatcherNamespaceSelector, r.namespaceSelector, subj.NamespaceLabels, subj.NamespaceLabelsUnknown))
	}
	if r.selector != nil {
		rt.Matchers = append(rt.Matchers, selectorResult(MatcherSelector, r.selector, subj.Labels, subj.LabelsUnknown))
	}
	rt.Matched = true
	missing := MissingNothing
	for _, m := range rt.Matchers {
		switch {
		case m.Unknown:
			rt.Matched = false
			if missing == MissingNothing {
				missing = missingFor(m.Matcher)
			}
		case !m.Matched:
			rt.Matched = false
			return rt // a failed matcher: the rule does not match, whatever is missing
		}
	}
	rt.Missing = missing
	return rt
}

func selectorResult(m Matcher, sel labels.Selector, set map[string]string, unknown bool) MatcherResult {
	res := MatcherResult{Matcher: m, Spec: sel.String(), Unknown: unknown}
	if !unknown {
		res.Matched = sel.Matches(labels.Set(set))
	}
	return res
}

func missingFor(m Matcher) Missing {
	if m == MatcherNamespaceSelector {
		return MissingNamespaceLabels
	}
	return MissingWorkloadLabels
}
