package policy

import "fmt"

// Subject is what a policy is asked about: one workload, as the caller knows it. The
// admission webhook builds it from a request (for a Scale, the labels come from the parent
// workload in a cache), the scaler from its cache, and the command-line tool from a file.
type Subject struct {
	// Group and Kind are the workload's API group and kind ("apps", "Deployment"): rules
	// with kinds match them, and messages name the kind.
	Group, Kind string
	// Namespace and Name of the workload.
	Namespace, Name string
	// Labels are the workload's own metadata.labels (not its pod template's).
	Labels map[string]string
	// LabelsUnknown is set when the workload's labels could not be read (a Scale whose
	// parent is not in the cache yet). Rules with a selector then cannot be evaluated.
	LabelsUnknown bool
	// NamespaceLabels are the labels of the workload's Namespace.
	NamespaceLabels map[string]string
	// NamespaceLabelsUnknown is set when the Namespace could not be read.
	NamespaceLabelsUnknown bool
	// Owner, when set, is the subject's controller (the ownerReference with controller:
	// true), and it is itself a bounded workload: then the owner is bounded, not the subject
	// (a ReplicaSet that a Deployment manages). Callers set it only for bounded owners.
	Owner *Owner
}

// Owner names a subject's controller.
type Owner struct {
	Group, Kind, Name string
}

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
	v := Verdict{Replicas: Replicas(replicas)}
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

// ClampMessage is the warning that says a clamp happened to the workload kind/name (also
// for a write to its scale subresource), e.g.
// `StatefulSet "db": spec.replicas 40 clamped to 10 by replica policy rule "databases"`. It
// names the object because `kubectl apply -f dir/` and GitOps tools print warnings without
// saying which object they came from.
func (v Verdict) ClampMessage(kind, name string) string {
	return fmt.Sprintf("%s %q: spec.replicas %d clamped to %d by replica policy rule %q", kind, name, v.Replicas, v.Want, v.Rule.Name)
}

// OutOfBoundsMessage is the text of a denial and of a warn rule's warning for the workload
// (or Scale) kind/name: it names the field, the value, the bounds and the rule, e.g.
// `spec.replicas: Invalid value: 12: must be within [3, 7] for Deployment "db" (replica policy rule "databases", action deny)`.
func (v Verdict) OutOfBoundsMessage(kind, name string) string {
	return fmt.Sprintf("spec.replicas: Invalid value: %d: must be within %s for %s %q (replica policy rule %q, action %s)",
		v.Replicas, v.Rule.Bounds, kind, name, v.Rule.Name, v.Rule.Action)
}

// Replicas is the value of a workload's spec.replicas: nil means 1, the default the API
// server gives every built-in workload kind.
func Replicas(replicas *int32) int32 {
	if replicas == nil {
		return 1
	}
	return *replicas
}
