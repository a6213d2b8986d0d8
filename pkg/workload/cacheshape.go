package workload

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheByObject returns the cache settings (cache.Options.ByObject) for what the webhook
// and the scaler read: the workloads of s kept as Cached entries (TransformForCache, read
// through Cache), Namespaces trimmed to their labels, HorizontalPodAutoscalers to their
// target and range. Pod templates and managedFields are most of the bytes a cache would
// otherwise hold.
//
// Namespaces are read without a deep copy (UnsafeDisableDeepCopy): a Get copies the
// trimmed Namespace's struct and shares its labels map, which readers must not change. A
// pass of the scaler reads a Namespace for every workload whose rule selects namespaces by
// label; the deep copies (about 1 KiB each) were the largest part of a pass's garbage.
func (s *Set) CacheByObject() map[client.Object]cache.ByObject {
	m := map[client.Object]cache.ByObject{
		&corev1.Namespace{}:                      {Transform: TrimNamespace, UnsafeDisableDeepCopy: ptr.To(true)},
		&autoscalingv2.HorizontalPodAutoscaler{}: {Transform: TrimAutoscaler},
	}
	for _, k := range s.Kinds() {
		m[k.New()] = cache.ByObject{Transform: s.TransformForCache}
	}
	return m
}

// identity keeps of m what every cached object needs: who it is, its version, its birth
// and its deletion.
func identity(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: m.Namespace, Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
	}
}

// TrimNamespace keeps of a cached Namespace its identity and labels (namespaceSelector).
func TrimNamespace(obj any) (any, error) {
	return trim(obj, func(ns *corev1.Namespace) *corev1.Namespace {
		t := &corev1.Namespace{TypeMeta: ns.TypeMeta, ObjectMeta: identity(&ns.ObjectMeta)}
		t.Labels = ns.Labels
		return t
	})
}

// TrimAutoscaler keeps of a cached HPA what the scaler reads: its identity, owners,
// target and range. Metrics, behavior and status (rewritten every sync period) are
// dropped.
func TrimAutoscaler(obj any) (any, error) {
	return trim(obj, func(hpa *autoscalingv2.HorizontalPodAutoscaler) *autoscalingv2.HorizontalPodAutoscaler {
		t := &autoscalingv2.HorizontalPodAutoscaler{TypeMeta: hpa.TypeMeta, ObjectMeta: identity(&hpa.ObjectMeta)}
		t.OwnerReferences = hpa.OwnerReferences
		t.Spec = autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: hpa.Spec.ScaleTargetRef, MinReplicas: hpa.Spec.MinReplicas, MaxReplicas: hpa.Spec.MaxReplicas,
		}
		return t
	})
}

// trim is a cache transform that applies keep to an object of type T and passes anything
// else (another type, a deletion tombstone) through unchanged.
func trim[T any](obj any, keep func(T) T) (any, error) {
	if o, ok := obj.(T); ok {
		return keep(o), nil
	}
	return obj, nil
}
