package admission

import (
	"fmt"

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

// ruleDecision starts the answer to a verdict of outcome by rule: an allow that says so for
// the outcomes no rule decides (exempt, owned, no rule), with decided false; else an allow
// that names the rule, for the caller to complete.
func ruleDecision(outcome policy.Outcome, rule *policy.CompiledRule) (d Decision, decided bool) {
	switch outcome {
	case policy.OutcomeExempt:
		return Decision{Allowed: true, Outcome: OutcomeExempt}, false
	case policy.OutcomeOwned:
		return Decision{Allowed: true, Outcome: OutcomeOwned}, false
	case policy.OutcomeNoRule:
		return Decision{Allowed: true, Outcome: OutcomeNoRule}, false
	}
	return Decision{Allowed: true, Rule: rule.Name, Action: rule.Action, Outcome: OutcomeAllowed}, true
}

// Decide turns the policy's verdict for one request into the answer of one stage.
//
// At both stages: an update that leaves replicas unchanged is allowed (an image rollout is
// never blocked by a policy tightened later; the scaler corrects clamp violations), as are
// exempt namespaces and workloads no rule matches. A workload whose deciding rule needs
// labels that are not in the cache yet is allowed with a warning: the request path never
// waits on the API server, and the scaler, which reads the workload itself, corrects it
// (clamp) or reports it (deny, warn).
//
// Outside the bounds, at Mutate, which decides every write in one call: clamp sets replicas
// to the nearest bound with a warning, deny rejects, warn allows with a warning. At Validate,
// which checks the final object where a webhook configuration sends it: clamp and deny reject
// what is still outside the bounds (the workloads adapter then asks whether /mutate ran at
// all), warn allows silently (its warning was given at Mutate).
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
	d, decided := ruleDecision(v.Outcome, v.Rule)
	if !decided {
		return d
	}
	r := v.Rule
	switch {
	case v.Outcome == policy.OutcomeUnknown:
		if stage == Mutate {
			// The scaler corrects workloads under clamp rules only; under deny and warn
			// rules it reports them (an Event) and never changes them.
			then := "correct spec.replicas"
			if r.Action != policy.ActionClamp {
				then = "report spec.replicas"
			}
			d.Warnings = []string{fmt.Sprintf("%s %q: replica policy rule %q could not be checked: its %s are not in the webhook's cache yet; the scaler will %s if it is outside %s",
				req.kindName(), req.Subject.Name, r.Name, v.Missing, then, r.Bounds)}
		}
		d.Outcome = OutcomeUnknown
	case v.Outcome == policy.OutcomeInBounds:
	case r.Action == policy.ActionClamp && stage == Mutate:
		d.Replicas = &v.Want
		d.Outcome = OutcomeClamped
		d.Warnings = []string{v.ClampMessage(req.kindName(), req.Subject.Name)}
	case r.Action == policy.ActionWarn:
		if stage == Mutate { // once per write: /validate would repeat it
			d.Warnings = []string{v.OutOfBoundsMessage(req.kindName(), req.Subject.Name)}
			d.Outcome = OutcomeWarned
		}
	default: // deny at either stage, or clamp at Validate
		d.Allowed = false
		d.Outcome = OutcomeDenied
		d.Message = v.OutOfBoundsMessage(req.kindName(), req.Subject.Name)
		if r.Action == policy.ActionClamp {
			d.Message += " (the clamp was not applied: the mutating webhook did not run, or a later mutation changed spec.replicas)"
		}
	}
	return d
}
