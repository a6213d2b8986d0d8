package admission

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// ScaleSubresource is the subresource through which kubectl scale and the HPA write.
const ScaleSubresource = "scale"

// workloads admits writes of one workload kind and of its scale subresource: it decodes the
// request, asks the policy for its verdict (Decide) and renders the answer.
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
	snap := w.store.Snapshot()
	d := Decide(snap, r, w.stage)
	switch {
	case w.stage == Mutate:
		w.mutated.add(req.UID)
	case !d.Allowed && d.Action == policy.ActionClamp && !w.mutated.has(req.UID):
		d = notClamped(snap, r, d)
	case !d.Allowed && d.Action == policy.ActionClamp:
		d = w.clampedUnderReplacedPolicy(snap, r, d)
	}
	return answer{resp: decisionResponse(d, fmt.Sprintf(`"replicas":%d`, r.Replicas)), kind: r.kindName(), rule: d.Rule, action: d.Action, outcome: d.Outcome}
}

// notClamped answers /validate for a workload outside the bounds of a clamp rule whose
// request /mutate did not answer in this process: /mutate failed, timed out or ran on another
// replica. Under failurePolicy Ignore the write would have passed unclamped had /validate
// failed too, so rejecting it here would turn a skipped /mutate into a failed write: it is
// allowed with a warning, and the scaler brings the workload inside the bounds.
func notClamped(snap *policy.Snapshot, r Request, d Decision) Decision {
	bounds := snap.Decide(r.Subject, &r.Replicas).Rule.Bounds
	return Decision{Allowed: true, Rule: d.Rule, Action: d.Action, Outcome: OutcomeWarned, Warnings: []string{fmt.Sprintf(
		"spec.replicas %d is outside the bounds %s of replica policy rule %q and was not clamped: the mutating webhook did not decide this request; the scaler will correct it",
		r.Replicas, bounds, d.Rule)}}
}

// clampedUnderReplacedPolicy revisits a clamp rule's rejection at Validate. /mutate and
// /validate are two calls, and the policy can change between them: /mutate then clamped to
// the bounds of the policy of a moment ago, and the new bounds would reject the write as
// if the clamp had never been applied, failing a write that the clamp action promises to
// let through. When a policy replaced within the last moments (policystore.ReplacedWindow)
// allows the final object, the write is allowed with a warning, and the scaler brings the
// workload inside the new bounds.
func (w workloads) clampedUnderReplacedPolicy(snap *policy.Snapshot, r Request, d Decision) Decision {
	for _, prev := range w.store.Replaced() {
		if !Decide(prev, r, Validate).Allowed {
			continue
		}
		bounds := snap.Decide(r.Subject, &r.Replicas).Rule.Bounds
		return Decision{Allowed: true, Rule: d.Rule, Action: d.Action, Outcome: OutcomeWarned, Warnings: []string{fmt.Sprintf(
			"spec.replicas %d is outside the bounds %s of replica policy rule %q, which the policy changed while this request was admitted; the scaler will correct it",
			r.Replicas, bounds, d.Rule)}}
	}
	return d
}

// errNotWorkload marks requests of a workload resource that set no replicas: another
// subresource, or an operation other than CREATE and UPDATE.
type errNotWorkload struct{ what string }

func (e errNotWorkload) Error() string {
	return fmt.Sprintf("replica-policy does not handle %s", e.what)
}

// newRequest turns an admission request for a workload of kind, or its scale subresource,
// into the decision's input.
func newRequest(req admission.Request, kinds *workload.Set, kind workload.Kind, lookup Lookup) (Request, error) {
	if req.SubResource != "" && req.SubResource != ScaleSubresource {
		return Request{}, errNotWorkload{what: resourceName(req)}
	}
	// Only a create or an update sets replicas. A DELETE carries no object, and CONNECT
	// no workload: not ours to judge, rather than a bad request.
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return Request{}, errNotWorkload{what: fmt.Sprintf("%s of %s", req.Operation, resourceName(req))}
	}
	r := Request{
		Operation: req.Operation,
		Subject:   policy.NewSubject(kind.Group, kind.Kind, req.Namespace, req.Name),
		Scale:     req.SubResource == ScaleSubresource,
	}
	// A Scale always has spec.replicas; a custom resource's object may keep its count
	// elsewhere (its CRD's specReplicasPath).
	path := []string(nil)
	if !r.Scale && !kind.SpecReplicas() {
		path = kind.ReplicasPath
	}
	obj, err := decodeReplicaFields(req.Object.Raw, "object", path)
	if err != nil {
		return Request{}, err
	}
	r.Replicas = replicasOf(obj, r.Scale)
	if req.Operation == admissionv1.Update {
		old, err := decodeReplicaFields(req.OldObject.Raw, "oldObject", path)
		if err != nil {
			return Request{}, err
		}
		v := replicasOf(old, r.Scale)
		r.OldReplicas = &v
	}
	if r.Scale {
		// A Scale carries no labels and no owners: the parent's come from the cache.
		if labels, controller, ok := lookup.WorkloadLabels(kind, req.Namespace, req.Name); ok {
			r.Subject.SetWorkload(labels, controller)
		}
	} else {
		r.Subject.SetWorkload(obj.Metadata.Labels, kinds.Controller(obj.Metadata.OwnerReferences))
	}
	r.Subject.SetNamespaceLabels(lookup.NamespaceLabels(req.Namespace))
	return r, nil
}

// replicaFields is all a decision reads of a workload or a Scale: decoding just these
// fields skips the pod template, which is most of a Deployment's bytes.
type replicaFields struct {
	Metadata struct {
		Labels          map[string]string       `json:"labels"`
		OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int32 `json:"replicas"`
	} `json:"spec"`
}

// decodeReplicaFields reads the labels, owners and replicas of raw; replicasPath, when not
// nil, is where the replica count is instead of spec.replicas (a custom resource).
func decodeReplicaFields(raw []byte, what string, replicasPath []string) (*replicaFields, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("the request carries no %s", what)
	}
	if replicasPath != nil {
		return decodeAtPath(raw, what, replicasPath)
	}
	// The fast path reads the object once; anything it does not fully understand is
	// decoded by encoding/json, which stays the reference (fields.go).
	if f, err := scanReplicaFields(raw); err == nil {
		return f, nil
	}
	f := &replicaFields{}
	if err := json.Unmarshal(raw, f); err != nil {
		return nil, fmt.Errorf("decoding the %s: %w", what, err)
	}
	return f, nil
}

// decodeAtPath decodes an object whose replica count is at path (a custom resource's
// specReplicasPath other than .spec.replicas): with encoding/json, as a whole.
func decodeAtPath(raw []byte, what string, path []string) (*replicaFields, error) {
	f := &replicaFields{}
	if err := json.Unmarshal(raw, &struct {
		Metadata *struct {
			Labels          map[string]string       `json:"labels"`
			OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
		} `json:"metadata"`
	}{Metadata: &f.Metadata}); err != nil {
		return nil, fmt.Errorf("decoding the %s: %w", what, err)
	}
	var obj map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&obj); err != nil {
		return nil, fmt.Errorf("decoding the %s: %w", what, err)
	}
	v, found, err := unstructured.NestedFieldNoCopy(obj, path...)
	if err != nil || !found || v == nil {
		return f, nil
	}
	n, ok := v.(json.Number)
	i, err := n.Int64()
	if !ok || err != nil || i < math.MinInt32 || i > math.MaxInt32 {
		return nil, fmt.Errorf("decoding the %s: .%s is not a 32-bit integer: %v", what, strings.Join(path, "."), v)
	}
	r := int32(i)
	f.Spec.Replicas = &r
	return f, nil
}

// replicasOf reads the requested replicas. A Scale (autoscaling/v1) omits replicas when it
// is 0; a workload's nil replicas is 1, the API's default, which policy.Decide applies, so
// that it is written in one place.
func replicasOf(f *replicaFields, isScale bool) int32 {
	if f.Spec.Replicas == nil && isScale {
		return 0
	}
	return policy.Replicas(f.Spec.Replicas)
}
