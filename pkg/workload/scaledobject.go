package workload

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// ScaledObjectGroupVersion is KEDA's API of ScaledObjects, keda.sh/v1alpha1.
var ScaledObjectGroupVersion = schema.GroupVersion{Group: "keda.sh", Version: "v1alpha1"}

// ScaledObjectGroupKind is the group and kind of KEDA's ScaledObjects.
var ScaledObjectGroupKind = ScaledObjectGroupVersion.WithKind(policy.ScaledObjectKind).GroupKind()

// KEDA's defaults for a ScaledObject that omits its range or its target's kind
// (github.com/kedacore/keda/v2 apis/keda/v1alpha1: minReplicaCount 0, maxReplicaCount 100,
// a Deployment unless scaleTargetRef says otherwise).
const (
	ScaledObjectMinReplicas   int32 = 0
	ScaledObjectMaxReplicas   int32 = 100
	ScaledObjectTargetKind          = "Deployment"
	ScaledObjectTargetVersion       = "apps/v1"
)

// ScaledObject is what replica-policy reads of a KEDA ScaledObject: its target and its
// range. Decoding into it drops every other field (triggers, advanced, status), so that a
// cache of ScaledObjects holds only these.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ScaledObjectSpec `json:"spec"`
}

// ScaledObjectSpec is the part of a ScaledObject's spec that the policy decides.
type ScaledObjectSpec struct {
	ScaleTargetRef   ScaledObjectTarget `json:"scaleTargetRef"`
	MinReplicaCount  *int32             `json:"minReplicaCount,omitempty"`
	MaxReplicaCount  *int32             `json:"maxReplicaCount,omitempty"`
	IdleReplicaCount *int32             `json:"idleReplicaCount,omitempty"`
}

// ScaledObjectTarget is a ScaledObject's scaleTargetRef.
type ScaledObjectTarget struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name"`
}

// Target is the reference with KEDA's default: a Deployment (apps/v1) when kind is empty.
func (t ScaledObjectTarget) Target() ScaledObjectTarget {
	if t.Kind == "" {
		t.APIVersion, t.Kind = ScaledObjectTargetVersion, ScaledObjectTargetKind
	}
	return t
}

// Range is the ScaledObject's range with KEDA's defaults (0 and 100), and its
// idleReplicaCount where set.
func (s ScaledObjectSpec) Range() policy.Range {
	r := policy.Range{Min: ScaledObjectMinReplicas, Max: ScaledObjectMaxReplicas}
	if s.MinReplicaCount != nil {
		r.Min = *s.MinReplicaCount
	}
	if s.MaxReplicaCount != nil {
		r.Max = *s.MaxReplicaCount
	}
	if s.IdleReplicaCount != nil {
		r.Idle, r.HasIdle = *s.IdleReplicaCount, true
	}
	return r
}

// ScaledObjectList is a list of ScaledObjects.
type ScaledObjectList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ScaledObject `json:"items"`
}

// AddScaledObjectToScheme registers ScaledObject and ScaledObjectList as keda.sh/v1alpha1
// in s, for a client or a cache to read them.
func AddScaledObjectToScheme(s *runtime.Scheme) {
	s.AddKnownTypes(ScaledObjectGroupVersion, &ScaledObject{}, &ScaledObjectList{})
	metav1.AddToGroupVersion(s, ScaledObjectGroupVersion)
}

// DeepCopyObject implements runtime.Object.
func (so *ScaledObject) DeepCopyObject() runtime.Object { return so.DeepCopy() }

// DeepCopy copies the ScaledObject.
func (so *ScaledObject) DeepCopy() *ScaledObject {
	if so == nil {
		return nil
	}
	out := &ScaledObject{TypeMeta: so.TypeMeta, Spec: so.Spec}
	so.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	for _, p := range []**int32{&out.Spec.MinReplicaCount, &out.Spec.MaxReplicaCount, &out.Spec.IdleReplicaCount} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *ScaledObjectList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &ScaledObjectList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]ScaledObject, len(l.Items))
		for i := range l.Items {
			out.Items[i] = *l.Items[i].DeepCopy()
		}
	}
	return out
}
