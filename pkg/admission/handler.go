package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// Paths of the two webhooks (interfaces contract).
const (
	MutatePath   = "/mutate"
	ValidatePath = "/validate"
)

// PolicyRef names the policy ConfigMap, which /validate checks at apply time.
type PolicyRef struct {
	Namespace, Name string
	// Options are those the running policy store compiles with, so that apply-time checks
	// agree with what the store would accept.
	Options policy.Options
}

// Handler answers admission requests for one stage. It implements controller-runtime's
// admission.Handler; wrap it with Webhook for the HTTP details (body limit, content type,
// panic recovery, the request's UID on every answer).
type Handler struct {
	Stage  Stage
	Store  *policy.Store
	Lookup Lookup
	// Policy is checked by the Validate stage when its ConfigMap is written.
	Policy PolicyRef
}

// Webhook wraps h in controller-runtime's HTTP adapter.
func Webhook(h *Handler) *admission.Webhook {
	return &admission.Webhook{Handler: h}
}

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	// controller-runtime decodes any JSON object into an empty request ("{}", a Deployment
	// posted by mistake): the API server always sends a uid and a resource.
	if req.UID == "" || req.Resource.Resource == "" {
		observe(h.Stage, req.Kind.Kind, "", "", "bad_request")
		return admission.Errored(http.StatusBadRequest, errors.New("not an AdmissionReview request: request.uid and request.resource are required"))
	}
	if req.Kind.Kind == "ConfigMap" && req.Resource.Group == "" && req.SubResource == "" {
		return h.handlePolicy(req)
	}
	r, err := newRequest(req, h.Lookup)
	if err != nil {
		var nw errNotWorkload
		if errors.As(err, &nw) {
			// Not ours to judge: allowed, but say so in case the webhook configuration is wrong.
			observe(h.Stage, req.Kind.Kind, "", "", "not_handled")
			return admission.Allowed("").WithWarnings(nw.Error())
		}
		observe(h.Stage, req.Kind.Kind, "", "", "bad_request")
		return admission.Errored(http.StatusBadRequest, err)
	}
	snap := h.Store.Snapshot()
	d := Decide(snap, r, h.Stage)
	if !d.Allowed && h.Stage == Validate && d.Action == policy.ActionClamp {
		d = h.clampedUnderReplacedPolicy(snap, r, d)
	}
	observe(h.Stage, r.KindName, d.Rule, string(d.Action), string(d.Outcome))
	return h.response(req, r, d)
}

// clampedUnderReplacedPolicy revisits a clamp rule's rejection at Validate. /mutate and
// /validate are two calls, and the policy can change between them: /mutate then clamped to
// the bounds of the policy of a moment ago, and the new bounds would reject the write as
// if the clamp had never been applied, failing a write that the clamp action promises to
// let through. When a policy replaced within the last moments (policy.ReplacedWindow)
// allows the final object, the write is allowed with a warning, and the scaler brings the
// workload inside the new bounds.
func (h *Handler) clampedUnderReplacedPolicy(snap *policy.Snapshot, r Request, d Decision) Decision {
	for _, prev := range h.Store.Replaced() {
		if !Decide(prev, r, Validate).Allowed {
			continue
		}
		bounds := snap.Match(r.Workload).Rule.Bounds
		return Decision{Allowed: true, Rule: d.Rule, Action: d.Action, Outcome: OutcomeWarned, Warnings: []string{fmt.Sprintf(
			"spec.replicas %d is outside the bounds %s of replica policy rule %q, which the policy changed while this request was admitted; the scaler will correct it",
			r.Replicas, bounds, d.Rule)}}
	}
	return d
}

func (h *Handler) response(req admission.Request, r Request, d Decision) admission.Response {
	var resp admission.Response
	switch {
	case !d.Allowed:
		resp = admission.Denied(d.Message)
		resp.Result.Code = http.StatusUnprocessableEntity
		resp.Result.Reason = "Invalid"
	case d.Replicas != nil:
		// Add replaces an existing member (RFC 6902 4.1), and creates it in a Scale whose
		// replicas were omitted because they were 0.
		resp = admission.Patched("", jsonPatchAdd("/spec/replicas", *d.Replicas))
	default:
		resp = admission.Allowed("")
	}
	if d.Rule != "" && d.Outcome != OutcomeAllowed {
		resp.AuditAnnotations = map[string]string{
			"decision": fmt.Sprintf(`{"rule":%q,"action":%q,"outcome":%q,"replicas":%d}`, d.Rule, d.Action, d.Outcome, r.Replicas),
		}
	}
	return resp.WithWarnings(d.Warnings...)
}

// handlePolicy rejects an invalid policy ConfigMap at apply time, listing every problem.
func (h *Handler) handlePolicy(req admission.Request) admission.Response {
	if h.Stage != Validate || req.Namespace != h.Policy.Namespace || req.Name != h.Policy.Name {
		return admission.Allowed("")
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	cm := &corev1.ConfigMap{}
	if err := json.Unmarshal(req.Object.Raw, cm); err != nil {
		observe(h.Stage, "ConfigMap", "", "", "bad_request")
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the policy ConfigMap: %w", err))
	}
	_, err := policy.LoadConfigMap(cm, h.Policy.Options)
	var invalid *policy.InvalidError
	if errors.As(err, &invalid) {
		observe(h.Stage, "ConfigMap", "", "", string(OutcomeDenied))
		msgs := make([]string, len(invalid.Errs))
		for i, e := range invalid.Errs {
			msgs[i] = e.Error()
		}
		resp := admission.Denied(fmt.Sprintf("invalid replica policy in ConfigMap %s/%s (the policy in force is unchanged):\n%s",
			req.Namespace, req.Name, strings.Join(msgs, "\n")))
		resp.Result.Code = http.StatusUnprocessableEntity
		resp.Result.Reason = "Invalid"
		return resp
	}
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	observe(h.Stage, "ConfigMap", "", "", string(OutcomeAllowed))
	return admission.Allowed("")
}
