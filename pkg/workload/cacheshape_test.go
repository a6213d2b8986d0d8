package workload

import (
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestTrimAutoscaler(t *testing.T) {
	full := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web-hpa", Labels: map[string]string{"a": "b"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "web", Controller: ptr.To(true)}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](2), MaxReplicas: 30,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType}},
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{DesiredReplicas: 7},
	}
	got, err := TrimAutoscaler(full)
	if err != nil {
		t.Fatal(err)
	}
	h := got.(*autoscalingv2.HorizontalPodAutoscaler)
	if h.Spec.Metrics != nil || h.ManagedFields != nil || h.Labels != nil || h.Status.DesiredReplicas != 0 {
		t.Errorf("not trimmed: %+v", h)
	}
	if h.Spec.ScaleTargetRef != full.Spec.ScaleTargetRef || *h.Spec.MinReplicas != 2 || h.Spec.MaxReplicas != 30 || len(h.OwnerReferences) != 1 || h.Name != "web-hpa" || h.Namespace != "prod" {
		t.Errorf("trimmed too much: %+v", h)
	}
}

func TestTrimNamespace(t *testing.T) {
	full := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "prod", UID: "u", Labels: map[string]string{"env": "prod"}, Annotations: map[string]string{"big": "x"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
	}
	got, err := TrimNamespace(full)
	if err != nil {
		t.Fatal(err)
	}
	ns := got.(*corev1.Namespace)
	if ns.Annotations != nil || ns.ManagedFields != nil || ns.Spec.Finalizers != nil {
		t.Errorf("not trimmed: %+v", ns)
	}
	if ns.Name != "prod" || ns.UID != "u" || ns.Labels["env"] != "prod" {
		t.Errorf("trimmed too much: %+v", ns)
	}
	if other, _ := TrimNamespace("not a namespace"); other != "not a namespace" {
		t.Errorf("another object was changed: %v", other)
	}
}
