package admission

import (
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
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
	// spec.minReplicas and spec.maxReplicas to (a ScaledObject's spec.minReplicaCount,
	// spec.maxReplicaCount and spec.idleReplicaCount).
	Range *policy.Range
	// Message explains a denial.
	Message string
	// Warnings are returned to the client (kubectl prints them).
	Warnings []string
	// Rule and Action name the rule that decided, if any.
	Rule    string
	Action  policy.Action
	Outcome Outcome
	// bounds are the deciding rule's, for the texts of a clamp revisited at Validate.
	bounds policy.Bounds
	// rangeOf names the fields Range patches (policy.HPAFields when zero); rangeAsked is
	// the range the request asked for (whether it sets an idle size to patch or remove).
	rangeOf    policy.RangeFields
	rangeAsked policy.Range
}

// decisionOf turns the policy's effect into the webhook's answer: the one place where an
// effect becomes an admission decision, for workloads and autoscalers alike. patch is
// called for a Patch effect, to set the value it patches.
func decisionOf(e policy.Effect, patch func(*Decision)) Decision {
	d := Decision{Allowed: true, Outcome: outcomeOf(e)}
	if e.Decided() {
		d.Rule, d.Action, d.bounds = e.Rule.Name, e.Rule.Action, e.Rule.Bounds
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

// outcomeOf is the metric's outcome of an effect. A verdict that is neither inside nor
// outside a rule's bounds (exempt, owned, no_rule, unknown) keeps the policy's name for it.
func outcomeOf(e policy.Effect) Outcome {
	switch {
	case e.Kind == policy.Patch:
		return OutcomeClamped
	case e.Kind == policy.Deny:
		return OutcomeDenied
	case e.Outcome != policy.OutcomeInBounds && e.Outcome != policy.OutcomeOutOfBounds:
		return Outcome(e.Outcome.String())
	case e.Kind == policy.Warn:
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

// decide is Decide for a request this process admits with the policy in store. At
// Validate, a clamp rule's rejection is revisited: mutated says whether /mutate answered the
// request here.
func decide(store *policystore.Store, r Request, stage Stage, mutated bool) Decision {
	d := Decide(store.Snapshot(), r, stage)
	switch {
	case d.Allowed || d.Action != policy.ActionClamp || stage != Validate:
		return d
	case !mutated:
		return notClamped(r, d)
	}
	return clampedUnderReplacedPolicy(store, r, d)
}

// notClamped answers /validate for a workload outside the bounds of a clamp rule whose
// request /mutate did not answer in this process: /mutate failed, timed out or ran on another
// replica. Under failurePolicy Ignore the write would have passed unclamped had /validate
// failed too, so rejecting it here would turn a skipped /mutate into a failed write: it is
// allowed with a warning, and the scaler brings the workload inside the bounds.
func notClamped(r Request, d Decision) Decision {
	return Decision{Allowed: true, Rule: d.Rule, Action: d.Action, Outcome: OutcomeWarned, Warnings: []string{fmt.Sprintf(
		"spec.replicas %d is outside the bounds %s of replica policy rule %q and was not clamped: the mutating webhook did not decide this request; the scaler will correct it",
		r.Replicas, d.bounds, d.Rule)}}
}

// clampedUnderReplacedPolicy revisits a clamp rule's rejection at Validate. /mutate and
// /validate are two calls, and the policy can change between them: /mutate then clamped to
// the bounds of the policy of a moment ago, and the new bounds would reject the write as
// if the clamp had never been applied, failing a write that the clamp action promises to
// let through. When a policy replaced within the last moments (policystore.ReplacedWindow)
// allows the final object, the write is allowed with a warning, and the scaler brings the
// workload inside the new bounds.
func clampedUnderReplacedPolicy(store *policystore.Store, r Request, d Decision) Decision {
	for _, prev := range store.Replaced() {
		if !Decide(prev, r, Validate).Allowed {
			continue
		}
		return Decision{Allowed: true, Rule: d.Rule, Action: d.Action, Outcome: OutcomeWarned, Warnings: []string{fmt.Sprintf(
			"spec.replicas %d is outside the bounds %s of replica policy rule %q, which the policy changed while this request was admitted; the scaler will correct it",
			r.Replicas, d.bounds, d.Rule)}}
	}
	return d
}
