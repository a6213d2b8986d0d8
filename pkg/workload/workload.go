// Package workload describes the workload kinds replica-policy bounds, as data: each kind
// has spec.replicas and a /scale subresource, so adding StatefulSets or ReplicaSets is one
// more entry in Kinds, not a new code path.
package workload

import (
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kind is one workload kind with a scale subresource.
type Kind struct {
	// GroupVersionKind of the workload object, e.g. apps/v1 Deployment.
	schema.GroupVersionKind
	// Resource is the plural resource name, e.g. "deployments".
	Resource string
	// New returns an empty object of the kind.
	New func() client.Object
	// Replicas returns the object's spec.replicas (nil when unset).
	Replicas func(client.Object) *int32
	// Trim strips an object to what replica-policy reads (metadata without managedFields
	// and annotations, spec.replicas): the cache transform that keeps memory flat.
	Trim func(client.Object) client.Object
}

// GroupResource of the kind, e.g. deployments.apps.
func (k Kind) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: k.Group, Resource: k.Resource}
}

// Deployment is apps/v1 Deployment.
var Deployment = Kind{
	GroupVersionKind: appsv1.SchemeGroupVersion.WithKind("Deployment"),
	Resource:         "deployments",
	New:              func() client.Object { return &appsv1.Deployment{} },
	Replicas:         func(o client.Object) *int32 { return o.(*appsv1.Deployment).Spec.Replicas },
	Trim: func(o client.Object) client.Object {
		d := o.(*appsv1.Deployment)
		return &appsv1.Deployment{
			TypeMeta:   d.TypeMeta,
			ObjectMeta: trimMeta(d.ObjectMeta),
			Spec:       appsv1.DeploymentSpec{Replicas: d.Spec.Replicas},
		}
	},
}

// Kinds are the workload kinds replica-policy bounds.
var Kinds = []Kind{Deployment}

// ForResource returns the kind served at group/resource ("apps", "deployments").
func ForResource(group, resource string) (Kind, bool) {
	for _, k := range Kinds {
		if k.Group == group && k.Resource == resource {
			return k, true
		}
	}
	return Kind{}, false
}

// ForObject returns the kind of obj by its Go type.
func ForObject(obj any) (Kind, bool) {
	t := reflect.TypeOf(obj)
	for _, k := range Kinds {
		if reflect.TypeOf(k.New()) == t {
			return k, true
		}
	}
	return Kind{}, false
}

// TransformForCache is a cache transform (controller-runtime cache.Options.DefaultTransform
// or ByObject[..].Transform) that trims workload objects with their kind's Trim. Pod
// templates and managedFields are most of a Deployment's bytes.
func TransformForCache(obj any) (any, error) {
	o, ok := obj.(client.Object)
	if !ok {
		return obj, nil
	}
	if k, ok := ForObject(o); ok {
		return k.Trim(o), nil
	}
	return obj, nil
}

func trimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
		Labels:            m.Labels,
		OwnerReferences:   m.OwnerReferences,
	}
}
