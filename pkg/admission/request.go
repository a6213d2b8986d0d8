package admission

import (
	"encoding/json"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// ScaleSubresource is the subresource through which kubectl scale and the HPA write.
const ScaleSubresource = "scale"

// replicaFields is all a decision reads of a workload or a Scale: decoding just these
// fields skips the pod template, which is most of a Deployment's bytes.
type replicaFields struct {
	Metadata struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int32 `json:"replicas"`
	} `json:"spec"`
}

func decodeReplicaFields(raw []byte, what string) (*replicaFields, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("the request carries no %s", what)
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

// Lookup gives the labels the request itself does not carry. Implementations read informer
// caches and never call the API server; found is false when the object is not in the cache.
type Lookup interface {
	WorkloadLabels(kind workload.Kind, namespace, name string) (labels map[string]string, found bool)
	NamespaceLabels(namespace string) (labels map[string]string, found bool)
}

// errNotWorkload marks requests for resources the webhook does not bound.
type errNotWorkload struct{ what string }

func (e errNotWorkload) Error() string {
	return fmt.Sprintf("replica-policy does not handle %s", e.what)
}

// newRequest turns an admission request for a workload or its scale subresource into the
// decision's input.
func newRequest(req admission.Request, lookup Lookup) (Request, error) {
	what := req.Resource.Resource
	if req.SubResource != "" {
		what += "/" + req.SubResource
	}
	kind, ok := workload.ForResource(req.Resource.Group, req.Resource.Resource)
	if !ok || (req.SubResource != "" && req.SubResource != ScaleSubresource) {
		return Request{}, errNotWorkload{what: fmt.Sprintf("%s (group %q)", what, req.Resource.Group)}
	}
	// Only a create or an update sets replicas. A DELETE carries no object, and CONNECT
	// no workload: not ours to judge, rather than a bad request.
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return Request{}, errNotWorkload{what: fmt.Sprintf("%s of %s (group %q)", req.Operation, what, req.Resource.Group)}
	}
	r := Request{
		Operation: req.Operation,
		KindName:  kind.Kind,
		Name:      req.Name,
		Workload:  policy.Workload{Namespace: req.Namespace},
	}
	isScale := req.SubResource == ScaleSubresource
	if isScale {
		r.KindName = "Scale"
	}
	obj, err := decodeReplicaFields(req.Object.Raw, "object")
	if err != nil {
		return Request{}, err
	}
	r.Replicas = replicasOf(obj, isScale)
	if req.Operation == admissionv1.Update {
		old, err := decodeReplicaFields(req.OldObject.Raw, "oldObject")
		if err != nil {
			return Request{}, err
		}
		v := replicasOf(old, isScale)
		r.OldReplicas = &v
	}
	if isScale {
		// A Scale carries no labels: the parent's come from the cache.
		r.Workload.Labels, ok = lookup.WorkloadLabels(kind, req.Namespace, req.Name)
		r.Workload.LabelsUnknown = !ok
	} else {
		r.Workload.Labels = obj.Metadata.Labels
	}
	r.Workload.NamespaceLabels, ok = lookup.NamespaceLabels(req.Namespace)
	r.Workload.NamespaceLabelsUnknown = !ok
	return r, nil
}

// replicasOf applies the API's defaults: a Scale (autoscaling/v1) omits replicas when it is
// 0; an apps/v1 workload's nil replicas means 1.
func replicasOf(f *replicaFields, isScale bool) int32 {
	switch {
	case f.Spec.Replicas != nil:
		return *f.Spec.Replicas
	case isScale:
		return 0
	default:
		return 1
	}
}
