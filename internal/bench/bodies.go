package bench

import (
	"encoding/json"
	"fmt"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Body kinds of the handler benchmark: a Deployment update (what kubectl apply, GitOps tools
// and most controllers send) and an autoscaling/v1 Scale update (kubectl scale, the HPA).
const (
	BodyDeployment = "deployment"
	BodyScale      = "scale"
)

// Deployment returns a Deployment shaped like a typical application's: a few labels, an
// application container with environment, resources and probes, and a logging sidecar.
// Its JSON is about 2.5 KiB, before the server adds status and managedFields.
func Deployment(ns, name string, replicas int32, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name, "app.kubernetes.io/part-of": "shop", "team": "payments", "tier": "backend"}
	env := []corev1.EnvVar{
		{Name: "LOG_LEVEL", Value: "info"},
		{Name: "HTTP_PORT", Value: "8080"},
		{Name: "DB_HOST", Value: "postgres.payments.svc.cluster.local"},
		{Name: "FEATURE_FLAGS", Value: "checkout-v2,fast-refunds"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3,
		}
	}
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, Labels: labels,
			Annotations: map[string]string{"shop.example.com/owner": "payments@example.com"},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{
						{
							Name: "app", Image: image, Env: env,
							Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}},
							Resources: corev1.ResourceRequirements{
								Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
								Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
							},
							ReadinessProbe: probe("/readyz"), LivenessProbe: probe("/healthz"),
							VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}},
						},
						{
							Name: "log-shipper", Image: "registry.example.com/fluent-bit:3.1",
							Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
						},
					},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name + "-config"}}}}},
				},
			},
		},
	}
}

// storedDeployment adds what the API server adds before it calls admission: defaults, a
// uid, a resourceVersion, status and managedFields.
func storedDeployment(ns, name string, replicas int32) *appsv1.Deployment {
	d := Deployment(ns, name, replicas, "registry.example.com/payments/api:1.42.0")
	d.UID = types.UID("6f1c1b1e-8a1f-4d8e-9a55-0d5c2b7f1a10")
	d.ResourceVersion = "123456"
	d.Generation = 7
	d.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
		MaxUnavailable: ptr(intstr.FromString("25%")), MaxSurge: ptr(intstr.FromString("25%")),
	}}
	d.Spec.RevisionHistoryLimit = ptr[int32](10)
	d.Spec.ProgressDeadlineSeconds = ptr[int32](600)
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
// to replicas, in namespace ns.
func ReviewBody(body, ns, name string, oldReplicas, replicas int32) ([]byte, error) {
	req := &admissionv1.AdmissionRequest{
		UID:       types.UID("0b1e7b4c-5d3a-4a7e-8f0e-1a2b3c4d5e6f"),
		Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
		Name:      name,
		Namespace: ns,
		Operation: admissionv1.Update,
		UserInfo:  authenticationv1.UserInfo{Username: "system:serviceaccount:kube-system:horizontal-pod-autoscaler", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}},
		DryRun:    ptr(false),
	}
	var obj, old runtime.Object
	switch body {
	case BodyDeployment:
		req.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
		obj, old = storedDeployment(ns, name, replicas), storedDeployment(ns, name, oldReplicas)
	case BodyScale:
		req.Kind = metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
		req.SubResource = "scale"
		obj, old = storedScale(ns, name, replicas), storedScale(ns, name, oldReplicas)
	default:
		return nil, fmt.Errorf("unknown body %q", body)
	}
	req.RequestKind, req.RequestResource, req.RequestSubResource = &req.Kind, &req.Resource, req.SubResource
	var err error
	if req.Object.Raw, err = json.Marshal(obj); err != nil {
		return nil, err
	}
	if req.OldObject.Raw, err = json.Marshal(old); err != nil {
		return nil, err
	}
	if req.Options.Raw, err = json.Marshal(&metav1.UpdateOptions{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "UpdateOptions"}, FieldManager: "kubectl-scale"}); err != nil {
		return nil, err
	}
	return json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
}
