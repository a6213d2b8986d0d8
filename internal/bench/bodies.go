package bench

import (
	"encoding/json"
	"fmt"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// Body kinds of the handler benchmark: a Deployment update (what kubectl apply, GitOps tools
// and most controllers send) and an autoscaling/v1 Scale update (kubectl scale, the HPA).
const (
	BodyDeployment = "deployment"
	BodyScale      = "scale"
)

// storedDeployment adds what the API server adds before it calls admission: defaults, a
// uid, a resourceVersion, status and managedFields.
func storedDeployment(ns, name string, replicas int32) *appsv1.Deployment {
	d := harness.TypicalDeployment(ns, name, replicas, "registry.example.com/payments/api:1.42.0")
	d.UID = types.UID("6f1c1b1e-8a1f-4d8e-9a55-0d5c2b7f1a10")
	d.ResourceVersion = "123456"
	d.Generation = 7
	d.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
		MaxUnavailable: ptr.To(intstr.FromString("25%")), MaxSurge: ptr.To(intstr.FromString("25%")),
	}}
	d.Spec.RevisionHistoryLimit = ptr.To[int32](10)
	d.Spec.ProgressDeadlineSeconds = ptr.To[int32](600)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 7, Replicas: 3, ReadyReplicas: 3, AvailableReplicas: 3, UpdatedReplicas: 3}
	fields := func(manager, op string, raw string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationType(op), APIVersion: "apps/v1",
			Time: &d.CreationTimestamp, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(raw)}}
	}
	d.ManagedFields = []metav1.ManagedFieldsEntry{
		fields("kubectl-client-side-apply", "Update", `{"f:metadata":{"f:annotations":{".":{},"f:shop.example.com/owner":{}},"f:labels":{".":{},"f:app":{},"f:team":{},"f:tier":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:env":{},"f:image":{},"f:name":{},"f:ports":{},"f:resources":{}}}}}}}`),
		fields("kube-controller-manager", "Update", `{"f:status":{"f:availableReplicas":{},"f:observedGeneration":{},"f:readyReplicas":{},"f:replicas":{},"f:updatedReplicas":{}}}`),
	}
	return d
}

func storedScale(ns, name string, replicas int32) *autoscalingv1.Scale {
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("6f1c1b1e-8a1f-4d8e-9a55-0d5c2b7f1a10"),
			ResourceVersion: "123456", CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))},
		Spec:   autoscalingv1.ScaleSpec{Replicas: replicas},
		Status: autoscalingv1.ScaleStatus{Replicas: 3, Selector: "app=" + name},
	}
}

// ReviewBody returns an AdmissionReview as kube-apiserver sends it for an UPDATE of a
// Deployment (body BodyDeployment) or of its scale subresource (BodyScale) from oldReplicas
// to replicas, in namespace ns, by the HorizontalPodAutoscaler.
func ReviewBody(body, ns, name string, oldReplicas, replicas int32) ([]byte, error) {
	r := harness.Review{
		UID:       "0b1e7b4c-5d3a-4a7e-8f0e-1a2b3c4d5e6f",
		Operation: admissionv1.Update,
		Namespace: ns, Name: name,
		Group: "apps", Resource: "deployments",
		UserInfo: &authenticationv1.UserInfo{Username: "system:serviceaccount:kube-system:horizontal-pod-autoscaler", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}},
	}
	var obj, old runtime.Object
	switch body {
	case BodyDeployment:
		r.Kind = "Deployment"
		obj, old = storedDeployment(ns, name, replicas), storedDeployment(ns, name, oldReplicas)
	case BodyScale:
		r.Kind, r.SubResource = "Scale", "scale"
		obj, old = storedScale(ns, name, replicas), storedScale(ns, name, oldReplicas)
	default:
		return nil, fmt.Errorf("unknown body %q", body)
	}
	var err error
	if r.Object, err = json.Marshal(obj); err != nil {
		return nil, err
	}
	if r.OldObject, err = json.Marshal(old); err != nil {
		return nil, err
	}
	if r.Options, err = json.Marshal(&metav1.UpdateOptions{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "UpdateOptions"}, FieldManager: "kubectl-scale"}); err != nil {
		return nil, err
	}
	return r.JSON(), nil
}
