package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Subject is what a policy is asked about: one workload, as the caller knows it. The
// admission webhook builds it from a request (for a Scale, the labels come from the parent
// workload in a cache), the scaler from its cache, and the command-line tool from a file.
type Subject struct {
	// Group and Kind are the workload's API group and kind ("apps", "Deployment"): rules
	// with kinds match them, and messages name the kind.
	Group, Kind string
	// Namespace and Name of the workload.
	Namespace, Name string
	// Labels are the workload's own metadata.labels (not its pod template's).
	Labels map[string]string
	// LabelsUnknown is set when the workload's labels could not be read (a Scale whose
	// parent is not in the cache yet). Rules with a selector then cannot be evaluated.
	LabelsUnknown bool
	// NamespaceLabels are the labels of the workload's Namespace.
	NamespaceLabels map[string]string
	// NamespaceLabelsUnknown is set when the Namespace could not be read.
	NamespaceLabelsUnknown bool
	// Owner, when set, is the subject's controller (the ownerReference with controller:
	// true), and it is itself a bounded workload: then the owner is bounded, not the subject
	// (a ReplicaSet that a Deployment manages). Callers set it only for bounded owners.
	Owner *Owner
}

// Owner names a subject's controller.
type Owner struct {
	Group, Kind, Name string
}

// NewSubject starts the subject for the workload of group and kind in namespace called
// name. Every caller builds its subject with it and the setters below, so that the owner
// rule and what "unknown" means are written once: labels and Namespace labels are unknown
// until set.
func NewSubject(group, kind, namespace, name string) Subject {
	return Subject{Group: group, Kind: kind, Namespace: namespace, Name: name, LabelsUnknown: true, NamespaceLabelsUnknown: true}
}

// SetWorkload records the workload's own labels and its controller, the ownerReference
// with controller: true when it is itself a bounded workload kind (workload.Set.Controller
// finds it; nil when there is none). Such a subject is bounded through its owner (a
// ReplicaSet that a Deployment manages, scaled to 0 in a rollout).
func (s *Subject) SetWorkload(labels map[string]string, controller *metav1.OwnerReference) {
	s.Labels, s.LabelsUnknown, s.Owner = labels, false, OwnerOf(controller)
}

// SetNamespaceLabels records the labels of the subject's Namespace; found false leaves
// them unknown (not in the cache, not in the input).
func (s *Subject) SetNamespaceLabels(labels map[string]string, found bool) {
	s.NamespaceLabels, s.NamespaceLabelsUnknown = labels, !found
}

// OwnerOf names a controller ownerReference for the verdict; nil for nil.
func OwnerOf(ref *metav1.OwnerReference) *Owner {
	if ref == nil {
		return nil
	}
	gv, _ := schema.ParseGroupVersion(ref.APIVersion)
	return &Owner{Group: gv.Group, Kind: ref.Kind, Name: ref.Name}
}
