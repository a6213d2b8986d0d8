package policy

import (
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// WorkloadKind is a workload kind with a scale subresource, as data: what the policy, the
// native policies and the informer caches all need to know of it. The built-in kinds are
// BuiltinWorkloadKinds; a custom resource's comes from its CRD (workload.Discover).
type WorkloadKind struct {
	// Group, Version and Kind of the workload object, e.g. apps/v1 Deployment.
	Group, Version, Kind string
	// Resource is the plural resource name, e.g. "deployments".
	Resource string
	// ReplicasPath is the object's replica count as field names: ["spec", "replicas"] for
	// every built-in kind (a CRD's scale.specReplicasPath ".spec.replicas"); empty means
	// spec.replicas too.
	ReplicasPath []string
}

// specReplicas is the replica path of every built-in kind.
var specReplicas = []string{"spec", "replicas"}

// BuiltinGroup is the API group of the built-in workload kinds.
const BuiltinGroup = "apps"

// BuiltinWorkloadKinds are the workload kinds always bounded: apps/v1 Deployment,
// StatefulSet and ReplicaSet. The one list of them; every other is derived from it.
var BuiltinWorkloadKinds = []WorkloadKind{
	{Group: BuiltinGroup, Version: "v1", Kind: "Deployment", Resource: "deployments", ReplicasPath: specReplicas},
	{Group: BuiltinGroup, Version: "v1", Kind: "StatefulSet", Resource: "statefulsets", ReplicasPath: specReplicas},
	{Group: BuiltinGroup, Version: "v1", Kind: "ReplicaSet", Resource: "replicasets", ReplicasPath: specReplicas},
}

// BuiltinKinds are the names of the built-in kinds, as a rule's kinds names them.
var BuiltinKinds = func() []string {
	names := make([]string, len(BuiltinWorkloadKinds))
	for i, k := range BuiltinWorkloadKinds {
		names[i] = k.Kind
	}
	return names
}()

// Name is the kind as a rule's kinds names it (KindName).
func (k WorkloadKind) Name() string { return KindName(k.Group, k.Kind) }

// GroupVersionKind of the workload object.
func (k WorkloadKind) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind}
}

// GroupKind of the workload object.
func (k WorkloadKind) GroupKind() schema.GroupKind {
	return schema.GroupKind{Group: k.Group, Kind: k.Kind}
}

// GroupResource of the kind, e.g. deployments.apps.
func (k WorkloadKind) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: k.Group, Resource: k.Resource}
}

// SpecReplicas reports whether the replica count is spec.replicas, which the admission fast
// path reads and the native policies patch.
func (k WorkloadKind) SpecReplicas() bool {
	return len(k.ReplicasPath) == 0 || slices.Equal(k.ReplicasPath, specReplicas)
}

// KindName is how a rule's kinds names the workload kind of group: the kind alone for a
// built-in kind, "Kind.group" for any other.
func KindName(group, kind string) string {
	if group == BuiltinGroup && slices.Contains(BuiltinKinds, kind) {
		return kind
	}
	return kind + "." + group
}

// DefaultReplicas is the spec.replicas the API server gives every built-in workload kind
// that omits it.
const DefaultReplicas int32 = 1

// Replicas is the value of a workload's spec.replicas: nil means DefaultReplicas.
func Replicas(replicas *int32) int32 {
	if replicas == nil {
		return DefaultReplicas
	}
	return *replicas
}
