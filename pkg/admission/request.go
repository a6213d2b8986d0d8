package admission

import (
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
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
// kind, also for a write to its scale subresource (`StatefulSet "db": ...`).
func (r Request) kindName() string {
	return r.Subject.Kind
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
	r := Request{Operation: req.Operation, Scale: req.SubResource == ScaleSubresource}
	obj, err := decodeRequest(req, kind, &r)
	if err != nil {
		return Request{}, err
	}
	// Its labels, and its controller when that is a bounded workload, which the policy
	// bounds instead (a ReplicaSet of a Deployment, scaled to 0 in a rollout). A Scale
	// carries neither: the parent's come from the cache.
	labels, known := obj.Metadata.Labels, true
	var controller *metav1.OwnerReference
	if r.Scale {
		labels, controller, known = lookup.WorkloadLabels(kind, req.Namespace, req.Name)
	} else {
		controller = kinds.Controller(obj.Metadata.OwnerReferences)
	}
	nsLabels, nsKnown := lookup.NamespaceLabels(req.Namespace)
	r.Subject = policy.NewSubject(kind.Group, kind.Kind, req.Namespace, req.Name)
	if known {
		r.Subject.SetWorkload(labels, controller)
	}
	r.Subject.SetNamespaceLabels(nsLabels, nsKnown)
	return r, nil
}
