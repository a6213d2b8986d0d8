// Package workload describes the workload kinds replica-policy bounds, as data: each kind
// has a replica count and a /scale subresource, so a kind is one more entry in a Set, not a
// new code path. The built-in kinds (apps/v1 Deployment, StatefulSet, ReplicaSet) are typed;
// custom resources named by --workload-resource are unstructured objects whose replica
// count sits at the path their CRD's scale subresource declares.
package workload

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// Kind is one workload kind with a scale subresource: the pure description the policy
// and the native policies share (policy.WorkloadKind), and how to make and read its
// objects with client-go.
type Kind struct {
	policy.WorkloadKind
	// New returns an empty object of the kind (for a custom resource an Unstructured with
	// its apiVersion and kind set).
	New func() client.Object
	// NewList returns an empty list of the kind.
	NewList func() client.ObjectList
	// Replicas returns the replica count of an object of the kind (nil when unset). A
	// cached workload's is Cached.Replicas.
	Replicas func(client.Object) *int32

	// goType is the Go type of New's objects, for ForObject; nil for unstructured kinds.
	goType reflect.Type
}

// Unstructured reports whether objects of the kind are *unstructured.Unstructured (a
// custom resource).
func (k Kind) Unstructured() bool { return k.goType == nil }

// typed builds the Kind of the built-in workload kind k, whose Go type is T and whose
// spec.replicas is read by replicas.
func typed[T any, PT interface {
	*T
	client.Object
}, L any, PL interface {
	*L
	client.ObjectList
}](k policy.WorkloadKind, replicas func(PT) *int32) Kind {
	return Kind{
		WorkloadKind: k,
		New:          func() client.Object { return PT(new(T)) },
		NewList:      func() client.ObjectList { return PL(new(L)) },
		Replicas:     func(o client.Object) *int32 { return replicas(o.(PT)) },
		goType:       reflect.TypeFor[PT](),
	}
}

// Deployment is apps/v1 Deployment.
var Deployment = typed[appsv1.Deployment, *appsv1.Deployment, appsv1.DeploymentList, *appsv1.DeploymentList](
	policy.BuiltinWorkloadKinds[0], func(d *appsv1.Deployment) *int32 { return d.Spec.Replicas })

// StatefulSet is apps/v1 StatefulSet.
var StatefulSet = typed[appsv1.StatefulSet, *appsv1.StatefulSet, appsv1.StatefulSetList, *appsv1.StatefulSetList](
	policy.BuiltinWorkloadKinds[1], func(s *appsv1.StatefulSet) *int32 { return s.Spec.Replicas })

// ReplicaSet is apps/v1 ReplicaSet.
var ReplicaSet = typed[appsv1.ReplicaSet, *appsv1.ReplicaSet, appsv1.ReplicaSetList, *appsv1.ReplicaSetList](
	policy.BuiltinWorkloadKinds[2], func(s *appsv1.ReplicaSet) *int32 { return s.Spec.Replicas })

// Kinds are the built-in workload kinds (policy.BuiltinWorkloadKinds), always bounded, with
// their Go types. The kinds in force in a process (these and the custom resources it
// learned at start) are a Set.
var Kinds = []Kind{Deployment, StatefulSet, ReplicaSet}

// Custom returns the Kind of a custom resource served as gvk at resource, whose replica
// count is at replicasPath (field names, e.g. ["spec", "replicas"]). Its objects are
// unstructured.
func Custom(gvk schema.GroupVersionKind, resource string, replicasPath []string) Kind {
	path := slices.Clone(replicasPath)
	return Kind{
		WorkloadKind: policy.WorkloadKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Resource: resource, ReplicasPath: path},
		New: func() client.Object {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(gvk)
			return u
		},
		NewList: func() client.ObjectList {
			l := &unstructured.UnstructuredList{}
			l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
			return l
		},
		Replicas: func(o client.Object) *int32 {
			u, ok := o.(*unstructured.Unstructured)
			if !ok {
				return nil
			}
			return NestedReplicas(u.Object, path)
		},
	}
}

// NestedReplicas reads an int32 at path in obj; nil when absent or not an integer.
func NestedReplicas(obj map[string]any, path []string) *int32 {
	v, found, err := unstructured.NestedFieldNoCopy(obj, path...)
	if err != nil || !found {
		return nil
	}
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case int32:
		n = int64(x)
	case int:
		n = int64(x)
	case float64:
		if x != float64(int64(x)) {
			return nil
		}
		n = int64(x)
	default:
		return nil
	}
	if n < -1<<31 || n > 1<<31-1 {
		return nil
	}
	r := int32(n)
	return &r
}

// ParseReplicasPath turns a CRD's scale.specReplicasPath (".spec.replicas") into field
// names. Only a dotted path of plain field names is supported: no array index, no quoted
// or escaped names, no empty segment.
func ParseReplicasPath(p string) ([]string, error) {
	if !strings.HasPrefix(p, ".") || len(p) < 2 {
		return nil, fmt.Errorf("replica path %q: must be a dotted path of field names such as .spec.replicas", p)
	}
	parts := strings.Split(p[1:], ".")
	for _, s := range parts {
		if s == "" || strings.ContainsAny(s, "[]'\"\\*") {
			return nil, fmt.Errorf("replica path %q: only a dotted path of field names such as .spec.replicas is supported", p)
		}
	}
	if parts[0] != "spec" {
		return nil, fmt.Errorf("replica path %q: must be under .spec", p)
	}
	return parts, nil
}

// Set is the kinds in force in one process: the built-in kinds and the custom resources
// it learned at start. The webhook, the scaler, the cache and the kubectl plugin take one.
// A Set is immutable once built.
type Set struct {
	kinds  []Kind
	byGR   map[schema.GroupResource]Kind
	byGK   map[schema.GroupKind]Kind
	byType map[reflect.Type]Kind
	// gvks are the kinds' GroupVersionKinds, which the Cached entries of a kind share.
	gvks map[schema.GroupKind]*schema.GroupVersionKind
}

// NewSet returns the built-in kinds and custom, in that order. A custom kind that repeats
// a kind or resource already in the set is an error.
func NewSet(custom ...Kind) (*Set, error) {
	s := &Set{byGR: map[schema.GroupResource]Kind{}, byGK: map[schema.GroupKind]Kind{}, byType: map[reflect.Type]Kind{}, gvks: map[schema.GroupKind]*schema.GroupVersionKind{}}
	for _, k := range append(slices.Clone(Kinds), custom...) {
		if _, dup := s.byGR[k.GroupResource()]; dup {
			return nil, fmt.Errorf("workload resource %s is named twice", k.GroupResource())
		}
		if _, dup := s.byGK[k.GroupKind()]; dup {
			return nil, fmt.Errorf("workload kind %s is named twice", k.GroupKind())
		}
		s.kinds = append(s.kinds, k)
		s.byGR[k.GroupResource()] = k
		s.byGK[k.GroupKind()] = k
		gvk := k.GroupVersionKind()
		s.gvks[k.GroupKind()] = &gvk
		if k.goType != nil {
			s.byType[k.goType] = k
		}
	}
	return s, nil
}

var builtin, _ = NewSet()

// Builtin is the set of the built-in kinds alone.
func Builtin() *Set { return builtin }

// Kinds returns the kinds of the set, built-in kinds first. The slice must not be changed.
func (s *Set) Kinds() []Kind { return s.kinds }

// WorkloadKinds returns the kinds of the set as data (policy.WorkloadKind), built-in kinds
// first: what the native policies compile for.
func (s *Set) WorkloadKinds() []policy.WorkloadKind {
	out := make([]policy.WorkloadKind, len(s.kinds))
	for i, k := range s.kinds {
		out[i] = k.WorkloadKind
	}
	return out
}

// ForResource returns the kind served at group/resource ("apps", "deployments").
func (s *Set) ForResource(group, resource string) (Kind, bool) {
	k, ok := s.byGR[schema.GroupResource{Group: group, Resource: resource}]
	return k, ok
}

// ForGroupKind returns the kind group/kind ("apps", "StatefulSet").
func (s *Set) ForGroupKind(group, kind string) (Kind, bool) {
	k, ok := s.byGK[schema.GroupKind{Group: group, Kind: kind}]
	return k, ok
}

// ForObject returns the kind of obj: by its Go type for the built-in kinds, by its
// apiVersion and kind for an unstructured object. It allocates nothing: it runs in the
// cache transform for every object the informers receive.
func (s *Set) ForObject(obj any) (Kind, bool) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		gvk := u.GroupVersionKind()
		k, ok := s.byGK[gvk.GroupKind()]
		return k, ok && k.Unstructured()
	}
	k, ok := s.byType[reflect.TypeOf(obj)]
	return k, ok
}

// Controller returns obj's controller (the ownerReference with controller: true) when it
// is a kind of the set, else nil: such a workload is bounded through its owner.
func (s *Set) Controller(refs []metav1.OwnerReference) *metav1.OwnerReference {
	if i := s.controllerIndex(refs); i >= 0 {
		return &refs[i]
	}
	return nil
}

// controllerIndex is the index in refs of Controller's reference, -1 when there is none.
func (s *Set) controllerIndex(refs []metav1.OwnerReference) int {
	for i := range refs {
		ref := &refs[i]
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			return -1
		}
		if _, ok := s.byGK[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}]; ok {
			return i
		}
		return -1 // one controller at most
	}
	return -1
}

// TransformForCache is a cache transform (controller-runtime cache.ByObject.Transform, or
// cache.Options.DefaultTransform) that keeps of each workload of the set a Cached entry
// (Compact), and leaves other objects as they are. Pod templates and managedFields are
// most of a workload's bytes, and even trimmed, a whole apps/v1 struct is ten times a
// Cached. A Cached is returned as it is: client-go applies the transform twice to every
// object of the initial watch-list (to the streamed objects and again when they replace the
// store), and the second time must neither copy nor allocate.
func (s *Set) TransformForCache(obj any) (any, error) {
	if c, ok := s.Compact(obj); ok {
		return c, nil
	}
	return obj, nil
}

// ForResource returns the built-in kind served at group/resource.
func ForResource(group, resource string) (Kind, bool) { return builtin.ForResource(group, resource) }

// ForObject returns the built-in kind of obj by its Go type.
func ForObject(obj any) (Kind, bool) { return builtin.ForObject(obj) }

// TransformForCache compacts objects of the built-in kinds (Builtin().TransformForCache).
func TransformForCache(obj any) (any, error) { return builtin.TransformForCache(obj) }
