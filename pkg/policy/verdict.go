package policy

// Missing names what a rule needed to be evaluated and the caller could not provide.
type Missing uint8

const (
	// MissingNothing: everything the deciding rule needs was known.
	MissingNothing Missing = iota
	// MissingNamespaceLabels: a namespaceSelector needs the Namespace's labels.
	MissingNamespaceLabels
	// MissingWorkloadLabels: a selector needs the workload's labels.
	MissingWorkloadLabels
)

// String is the phrase messages use: "namespace labels", "workload labels".
func (m Missing) String() string {
	switch m {
	case MissingNamespaceLabels:
		return "namespace labels"
	case MissingWorkloadLabels:
		return "workload labels"
	}
	return ""
}

// Outcome classifies a Verdict.
type Outcome uint8

const (
	// OutcomeExempt: the subject's namespace is exempt; no rule applies.
	OutcomeExempt Outcome = iota + 1
	// OutcomeOwned: the subject's controller is a bounded workload, which is bounded instead.
	OutcomeOwned
	// OutcomeNoRule: no rule matches and the policy has no default.
	OutcomeNoRule
	// OutcomeUnknown: the deciding rule needs what Verdict.Missing names.
	OutcomeUnknown
	// OutcomeInBounds: the replicas are inside the deciding rule's bounds.
	OutcomeInBounds
	// OutcomeOutOfBounds: the replicas are outside them; Verdict.Want is the nearest bound.
	OutcomeOutOfBounds
)

// String is the outcome's name in logs and tests.
func (o Outcome) String() string {
	switch o {
	case OutcomeExempt:
		return "exempt"
	case OutcomeOwned:
		return "owned"
	case OutcomeNoRule:
		return "no_rule"
	case OutcomeUnknown:
		return "unknown"
	case OutcomeInBounds:
		return "in_bounds"
	case OutcomeOutOfBounds:
		return "out_of_bounds"
	}
	return "invalid"
}

// Verdict is the policy's answer for one subject and one replica count.
type Verdict struct {
	Outcome Outcome
	// Rule decides (possibly the default); nil when exempt, owned or no rule applies.
	Rule *CompiledRule
	// Replicas is the count asked about, after the API's default (nil means 1).
	Replicas int32
	// Want is the value the rule allows that is nearest to Replicas: Replicas itself when it
	// is inside the bounds, or when no rule decides.
	Want int32
	// Missing names what the rule needed and the caller did not have (OutcomeUnknown).
	Missing Missing
}

// Decide is the verdict: which rule decides for subj, its bounds, and the value wanted for
// replicas. A nil replicas means 1, the default the API server gives spec.replicas of every
// built-in workload kind. It is a pure function of the snapshot and its arguments: the
// admission webhook, the scaler and the command-line tool all call it, so they agree.
func (s *Snapshot) Decide(subj Subject, replicas *int32) Verdict {
	v := Verdict{Replicas: DefaultReplicas}
	if replicas != nil {
		v.Replicas = *replicas
	}
	v.Want = v.Replicas
	if subj.Owner != nil && !s.Exempt(subj.Namespace) {
		v.Outcome = OutcomeOwned
		return v
	}
	m := s.Match(subj)
	v.Rule, v.Missing = m.Rule, m.Missing
	switch {
	case m.Exempt:
		v.Outcome = OutcomeExempt
	case m.Rule == nil:
		v.Outcome = OutcomeNoRule
	case m.Missing != MissingNothing:
		v.Outcome = OutcomeUnknown
	default:
		v.Want = m.Rule.Bounds.Nearest(v.Replicas)
		v.Outcome = OutcomeInBounds
		if v.Want != v.Replicas {
			v.Outcome = OutcomeOutOfBounds
		}
	}
	return v
}
