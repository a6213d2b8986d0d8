// Package admission adapts the policy's verdict to the mutating (/mutate) and validating
// (/validate) webhooks.
//
// A Handler dispatches each request by its GroupResource to one thin adapter: workloads.go
// for every workload kind and its /scale subresource, autoscalers.go for
// HorizontalPodAutoscalers (at /mutate), policyconfigmap.go for the policy ConfigMap. An adapter decodes the request, asks the policy for its verdict
// (policy.Snapshot.Decide, through Decide in decision.go for the stage's rules) and renders
// the answer with the constructors of response.go; the Handler records the outcome once.
// Nothing on the request path calls the API server: labels a request lacks come from
// informer caches (lookup.go).
package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// Paths of the two webhooks.
const (
	MutatePath   = "/mutate"
	ValidatePath = "/validate"
)

// answer is an adapter's reply: the response, and what the Handler records of it.
type answer struct {
	resp admission.Response
	// kind, rule, action and outcome are the labels of the decisions metric.
	kind    string
	rule    string
	action  policy.Action
	outcome Outcome
}

// resourceAdmitter answers the admission requests of one GroupResource.
type resourceAdmitter interface {
	admit(req admission.Request) answer
}

// Handler answers admission requests for one stage. It implements controller-runtime's
// admission.Handler; wrap it with Webhook for the HTTP details (body limit, content type,
// panic recovery, the request's UID on every answer).
type Handler struct {
	stage    Stage
	kinds    *workload.Set
	byGroups map[schema.GroupResource]resourceAdmitter
}

// NewHandlers returns the handlers of /mutate and /validate for the workload kinds in
// kinds: the policy in force comes from store, the labels a request lacks from lookup, and
// ref names the policy ConfigMap that /validate checks when it is written. The two share
// what /mutate answered, so that /validate can tell a clamp that was undone from one that
// was never made.
func NewHandlers(kinds *workload.Set, store *policystore.Store, lookup Lookup, ref PolicyRef) (mutate, validate *Handler) {
	mutated := newAnswered()
	return newHandler(Mutate, kinds, store, lookup, ref, mutated), newHandler(Validate, kinds, store, lookup, ref, mutated)
}

// NewHandler returns the handler of one stage on its own. A /validate handler made this way
// has seen no /mutate answer: it treats every clamp it finds missing as a /mutate that did
// not run.
func NewHandler(stage Stage, kinds *workload.Set, store *policystore.Store, lookup Lookup, ref PolicyRef) *Handler {
	return newHandler(stage, kinds, store, lookup, ref, newAnswered())
}

func newHandler(stage Stage, kinds *workload.Set, store *policystore.Store, lookup Lookup, ref PolicyRef, mutated *answered) *Handler {
	h := &Handler{stage: stage, kinds: kinds, byGroups: map[schema.GroupResource]resourceAdmitter{
		{Resource: "configmaps"}: policyConfigMaps{stage: stage, ref: ref},
	}}
	for _, k := range kinds.Kinds() {
		h.byGroups[k.GroupResource()] = workloads{kinds: kinds, kind: k, stage: stage, store: store, lookup: lookup, mutated: mutated}
	}
	if stage == Mutate {
		// An HPA's range is patched or rejected when it is written; nothing later can move
		// it outside the bounds again but another write, which /mutate decides in turn.
		h.byGroups[AutoscalerResource] = autoscalers{kinds: kinds, store: store, lookup: lookup}
		// KEDA's ScaledObjects, where the keda component's webhook rule sends them.
		h.byGroups[ScaledObjectResource] = autoscalers{kinds: kinds, store: store, lookup: lookup, of: policy.ScaledObjectFields}
	}
	return h
}

// Webhook serves h over HTTP: controller-runtime's admission.Webhook (panic recovery, the
// answer completed with the request's UID and the encoded patch) behind an HTTP adapter
// that decodes the AdmissionReview once (review.go).
func Webhook(h *Handler) http.Handler {
	return Serve(h)
}

// Serve serves any admission.Handler as Webhook serves the webhook's own: the benchmarks
// measure an allow-all handler behind it, to tell the policy's work from the HTTP path's.
func Serve(h admission.Handler) http.Handler {
	return reviewServer{wh: &admission.Webhook{Handler: h}}
}

// Handle implements admission.Handler.
func (h *Handler) Handle(_ context.Context, req admission.Request) admission.Response {
	a := h.admit(req)
	observe(h.stage, h.kinds, a)
	if h.stage == Mutate && isProbe(req) {
		return a.resp.WithWarnings(ProbeWarning)
	}
	return a.resp
}

func (h *Handler) admit(req admission.Request) answer {
	// controller-runtime decodes any JSON object into an empty request ("{}", a Deployment
	// posted by mistake): the API server always sends a uid and a resource.
	if req.UID == "" || req.Resource.Resource == "" {
		return answer{kind: req.Kind.Kind, outcome: OutcomeBadRequest,
			resp: badRequest(errors.New("not an AdmissionReview request: request.uid and request.resource are required"))}
	}
	a, ok := h.byGroups[schema.GroupResource{Group: req.Resource.Group, Resource: req.Resource.Resource}]
	if !ok {
		// Not ours to judge: allowed, but said, in case the webhook configuration is wrong.
		return answer{resp: notHandled(resourceName(req)), kind: req.Kind.Kind, outcome: OutcomeNotHandled}
	}
	return a.admit(req)
}

// resourceName names the request's resource for messages: `deployments/scale (group "apps")`.
func resourceName(req admission.Request) string {
	what := req.Resource.Resource
	if req.SubResource != "" {
		what += "/" + req.SubResource
	}
	return fmt.Sprintf("%s (group %q)", what, req.Resource.Group)
}
