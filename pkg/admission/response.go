package admission

import (
	"fmt"
	"net/http"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// The answers the webhook gives, each built in one place.

// allowed lets the write through unchanged.
func allowed() admission.Response { return admission.Allowed("") }

// denied rejects the write as invalid (HTTP 422, reason Invalid, as the API server's own
// validation does), with a message that names what is wrong.
func denied(message string) admission.Response {
	resp := admission.Denied(message)
	resp.Result.Code = http.StatusUnprocessableEntity
	resp.Result.Reason = "Invalid"
	return resp
}

// patchedReplicas sets spec.replicas. Add replaces an existing member (RFC 6902 4.1), and
// creates it in a Scale whose replicas were omitted because they were 0.
func patchedReplicas(replicas int32) admission.Response {
	return admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "add", Path: "/spec/replicas", Value: replicas})
}

// patchedRange sets an autoscaler's two ends to those of r, the fields of of (a
// HorizontalPodAutoscaler's spec.minReplicas and spec.maxReplicas when zero), and nothing
// else (add creates an end that was omitted). A ScaledObject's idle size, which asked sets,
// is set to r's, or removed when r has none (policy.Bounds.NearestRange says when).
func patchedRange(r, asked policy.Range, of policy.RangeFields) admission.Response {
	if of.Kind == "" {
		of = policy.HPAFields
	}
	pointer := func(path string) string { return "/" + strings.ReplaceAll(path, ".", "/") }
	ops := []jsonpatch.JsonPatchOperation{
		{Operation: "add", Path: pointer(of.Min), Value: r.Min},
		{Operation: "add", Path: pointer(of.Max), Value: r.Max},
	}
	switch {
	case of.Idle == "" || !asked.HasIdle:
	case r.HasIdle:
		ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: pointer(of.Idle), Value: r.Idle})
	default:
		ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "remove", Path: pointer(of.Idle)})
	}
	return admission.Patched("", ops...)
}

// badRequest answers a request the webhook cannot read.
func badRequest(err error) admission.Response {
	return admission.Errored(http.StatusBadRequest, err)
}

// internalError answers a request the webhook read but could not judge for a reason of its
// own (an error that is neither a bad request nor a policy verdict).
func internalError(err error) admission.Response {
	return admission.Errored(http.StatusInternalServerError, err)
}

// notHandled allows a request for something the webhook does not bound, and says so in a
// warning in case the webhook configuration is wrong.
func notHandled(what string) admission.Response {
	return admission.Allowed("").WithWarnings(fmt.Sprintf("replica-policy does not handle %s", what))
}

// decisionResponse renders a decision: a denial, a patch or an allow, with the decision's
// warnings and, when a rule acted, an audit annotation that records asked, the requested
// value as JSON members (`"replicas":50`).
func decisionResponse(d Decision, asked string) admission.Response {
	var resp admission.Response
	switch {
	case !d.Allowed:
		resp = denied(d.Message)
	case d.Replicas != nil:
		resp = patchedReplicas(*d.Replicas)
	case d.Range != nil:
		resp = patchedRange(*d.Range, d.rangeAsked, d.rangeOf)
	default:
		resp = allowed()
	}
	if d.Rule != "" && d.Outcome != OutcomeAllowed {
		resp.AuditAnnotations = map[string]string{
			"decision": fmt.Sprintf(`{"rule":%q,"action":%q,"outcome":%q,%s}`, d.Rule, d.Action, d.Outcome, asked),
		}
	}
	return resp.WithWarnings(d.Warnings...)
}
