package harness

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// PauseImage is the image of the Deployments the harness builds; it is never pulled (the
// control plane has no kubelet).
const PauseImage = "registry.k8s.io/pause:3.10"

// DemoDatabase is the database Deployment of the demo (hack/demo, and test/e2e's check of
// it): 12 replicas, which rule "databases" of the example policy (manifests/base) denies,
// since it allows 3 to 7.
const DemoDatabase = `apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: prod, labels: {replicapolicy.io/class: database}}
spec:
  replicas: 12
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: ` + PauseImage + `}]}
`

// Deployment is a minimal valid Deployment: labels on the Deployment itself (what policy
// selectors match; nil leaves none), one pause container, and a selector app=<name> on the
// pod template.
func Deployment(ns, name string, replicas int32, labels map[string]string) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: PauseImage}}},
			},
		},
	}
}

// TypicalDeployment is a Deployment shaped like a typical application's: a few labels, an
// application container with environment, resources and probes, and a logging sidecar.
// Its JSON is about 2.5 KiB, before the server adds status and managedFields.
func TypicalDeployment(ns, name string, replicas int32, image string) *appsv1.Deployment {
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
	d := Deployment(ns, name, replicas, labels)
	d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
	d.Annotations = map[string]string{"shop.example.com/owner": "payments@example.com"}
	d.Spec.Template.ObjectMeta = metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}}
	d.Spec.Template.Spec = corev1.PodSpec{
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
	}
	return d
}

// PolicyConfigMap is the policy ConfigMap (policy.DefaultNamespace/policy.DefaultConfigMapName)
// holding doc under policy.ConfigMapKey.
func PolicyConfigMap(doc string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: policy.DefaultNamespace, Name: policy.DefaultConfigMapName},
		Data:       map[string]string{policy.ConfigMapKey: doc},
	}
}

// SetPolicy creates the policy ConfigMap with doc, or updates the one there, and returns the
// API server's answer (the validating webhook's, when one runs).
func SetPolicy(ctx context.Context, cs kubernetes.Interface, doc string) error {
	want := PolicyConfigMap(doc)
	cms := cs.CoreV1().ConfigMaps(want.Namespace)
	cur, err := cms.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, want, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	cur.Data = want.Data
	_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// StatefulSet is a minimal valid StatefulSet, shaped like Deployment's.
func StatefulSet(ns, name string, replicas int32, labels map[string]string) *appsv1.StatefulSet {
	d := Deployment(ns, name, replicas, labels)
	return &appsv1.StatefulSet{
		ObjectMeta: d.ObjectMeta,
		Spec:       appsv1.StatefulSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template, ServiceName: name},
	}
}

// ReplicaSet is a minimal valid ReplicaSet of its own (no owner), shaped like Deployment's.
func ReplicaSet(ns, name string, replicas int32, labels map[string]string) *appsv1.ReplicaSet {
	d := Deployment(ns, name, replicas, labels)
	return &appsv1.ReplicaSet{
		ObjectMeta: d.ObjectMeta,
		Spec:       appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template},
	}
}

// OwnedReplicaSet is the ReplicaSet named name that the Deployment controller would create
// for owner (a Deployment read back from the API server: its UID is set): the owner's
// labels and template, a pod-template-hash, and a controller ownerReference to the owner.
func OwnedReplicaSet(owner *appsv1.Deployment, name string, replicas int32) *appsv1.ReplicaSet {
	tmpl := *owner.Spec.Template.DeepCopy()
	labels := map[string]string{"pod-template-hash": name}
	for k, v := range tmpl.Labels {
		labels[k] = v
	}
	tmpl.Labels = labels
	sel := owner.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels["pod-template-hash"] = name
	rsLabels := map[string]string{"pod-template-hash": name}
	for k, v := range owner.Labels {
		rsLabels[k] = v
	}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: owner.Namespace, Name: name, Labels: rsLabels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: sel, Template: tmpl},
	}
}
