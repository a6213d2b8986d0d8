package admission

import (
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// Stage is the webhook a decision is made for.
type Stage string

const (
	// Mutate is the mutating webhook: it clamps, and rejects deny-rule violations early so
	// that a rejected write costs one webhook call.
	Mutate Stage = "mutate"
	// Validate is the validating webhook: it checks the final object after every mutation
	// and carries the warnings of warn rules.
	Validate Stage = "validate"
)

// Outcome is what an admission request came to: the "outcome" label of
// replicapolicy_admission_decisions_total. Every request records exactly one.
type Outcome string

const (
	OutcomeAllowed    Outcome = "allowed"     // inside the bounds, or nothing to check
	OutcomeUnchanged  Outcome = "unchanged"   // an update that leaves replicas as they were
	OutcomeExempt     Outcome = "exempt"      // exempt namespace
	OutcomeOwned      Outcome = "owned"       // its controller is a bounded workload, bounded instead
	OutcomeNoRule     Outcome = "no_rule"     // no rule and no default applies
	OutcomeUnknown    Outcome = "unknown"     // a rule needs labels not in the cache yet
	OutcomeClamped    Outcome = "clamped"     // replicas patched to the nearest bound
	OutcomeDenied     Outcome = "denied"      // rejected: outside the bounds, or an invalid policy
	OutcomeWarned     Outcome = "warned"      // allowed with a warning
	OutcomeNotHandled Outcome = "not_handled" // a resource or operation the webhook does not bound
	OutcomeBadRequest Outcome = "bad_request" // not a well-formed AdmissionReview of a workload
)

// Request is what the decision reads of an admission request for a workload.
type Request struct {
	Operation admissionv1.Operation
	// Subject is the workload being written: its kind, namespace, name and the labels rules
	// match against.
	Subject policy.Subject
	// Scale is set for a write to the workload's scale subresource.
	Scale bool
	// Replicas is the requested spec.replicas: a nil workload value defaults to 1 as the
	// API server does; a Scale that omits it means 0.
	Replicas int32
	// OldReplicas is the stored value on UPDATE, nil on CREATE.
	OldReplicas *int32
}

// kindName is the kind being written, as messages and metrics name it: the workload's
// kind, also for a write to its scale subresource (`for StatefulSet "db"`).
func (r Request) kindName() string {
	return r.Subject.Kind
}

// policyStage is where the policy is asked at this stage.
func (s Stage) policyStage() policy.Stage {
	if s == Validate {
		return policy.AtValidate
	}
	return policy.AtMutate
}

// Decision is the answer to one request at one stage.
type Decision struct {
	Allowed bool
	// Replicas, when not nil, is the value the mutating webhook sets spec.replicas to.
	Replicas *int32
	// Range, when not nil, is the range the mutating webhook sets a HorizontalPodAutoscaler's
	// spec.minReplicas and spec.maxReplicas to.
	Range *policy.Range
	// Message explains a denial.
	Message string
	// Warnings are returned to the client (kubectl prints them).
	Warnings []string
	// Rule and Action name the rule that decided, if any.
	Rule    string
	Action  policy.Action
	Outcome Outcome
}

// decisionOf turns the policy's effect into the webhook's answer: the one place where an
// effect becomes an admission decision, for workloads and autoscalers alike. patch is
// called for a Patch effect, to set the value it patches.
func decisionOf(e policy.Effect, patch func(*Decision)) Decision {
	d := Decision{Allowed: true, Outcome: outcomeOf(e)}
	if e.Decided() {
		d.Rule, d.Action = e.Rule.Name, e.Rule.Action
	}
	switch e.Kind {
	case policy.Patch:
		patch(&d)
		d.Warnings = e.Messages
	case policy.Warn:
		d.Warnings = e.Messages
	case policy.Deny:
		d.Allowed, d.Message = false, e.Messages[0]
	}
	return d
}

// outcomeOf is the metric's outcome of an effect.
func outcomeOf(e policy.Effect) Outcome {
	switch e.Kind {
	case policy.Patch:
		return OutcomeClamped
	case policy.Deny:
		return OutcomeDenied
	}
	switch e.Outcome {
	case policy.OutcomeExempt:
		return OutcomeExempt
	case policy.OutcomeOwned:
		return OutcomeOwned
	case policy.OutcomeNoRule:
		return OutcomeNoRule
	case policy.OutcomeUnknown:
		return OutcomeUnknown
	}
	if e.Kind == policy.Warn {
		return OutcomeWarned
	}
	return OutcomeAllowed
}

// Decide turns the policy's verdict for one request into the answer of one stage.
//
// At both stages: an update that leaves replicas unchanged is allowed (an image rollout is
// never blocked by a policy tightened later; the scaler corrects clamp violations), and a
// negative count is left to the API server's validation. Everything else is the policy's
// Effect at the stage (policy.Verdict.Effect): exempt namespaces and workloads no rule
// matches are allowed; a workload whose deciding rule needs labels that are not in the
// cache yet is allowed with a warning (the request path never waits on the API server, and
// the scaler, which reads the workload itself, corrects or reports it); outside the bounds,
// clamp patches at Mutate and rejects at Validate (the workloads adapter then asks whether
// /mutate ran at all), deny rejects, warn warns at Mutate.
func Decide(snap *policy.Snapshot, req Request, stage Stage) Decision {
	// A negative count is invalid, and the API server's validation, which runs after the
	// mutating webhooks, rejects it with its own message. Clamping it to a minimum would
	// turn a broken request (an autoscaler's arithmetic gone wrong) into an accepted one.
	if req.Replicas < 0 {
		return Decision{Allowed: true, Outcome: OutcomeAllowed}
	}
	if req.Operation == admissionv1.Update && req.OldReplicas != nil && *req.OldReplicas == req.Replicas {
		return Decision{Allowed: true, Outcome: OutcomeUnchanged}
	}
	v := snap.Decide(req.Subject, &req.Replicas)
	return decisionOf(v.Effect(stage.policyStage(), req.Subject), func(d *Decision) { d.Replicas = &v.Want })
}
