package admission

import (
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// ScaleSubresource is the subresource through which kubectl scale and the HPA write.
const ScaleSubresource = "scale"

// workloads admits writes of one workload kind and of its scale subresource. Each step is
// one file, visited once: the request and its subject (request.go, fields.go), what /mutate
// answered (answered.go), the decision (decision.go, which asks pkg/policy) and the answer
// (response.go).
type workloads struct {
	kinds  *workload.Set
	kind   workload.Kind
	stage  Stage
	store  *policystore.Store
	lookup Lookup
	// mutated holds the requests /mutate answered, shared by the two stages' handlers.
	mutated *answered
}

func (w workloads) admit(req admission.Request) answer {
	r, err := newRequest(req, w.kinds, w.kind, w.lookup)
	if nw, ok := err.(errNotWorkload); ok {
		return answer{resp: notHandled(nw.what), kind: req.Kind.Kind, outcome: OutcomeNotHandled}
	}
	if err != nil {
		return answer{resp: badRequest(err), kind: req.Kind.Kind, outcome: OutcomeBadRequest}
	}
	d := decide(w.store, r, w.stage, w.mutated.record(w.stage, req.UID))
	return answer{resp: decisionResponse(d, fmt.Sprintf(`"replicas":%d`, r.Replicas)), kind: r.kindName(), rule: d.Rule, action: d.Action, outcome: d.Outcome}
}
