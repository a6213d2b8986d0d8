package workload

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var rolloutGVK = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"}

func fullMeta() metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: "web", Namespace: "prod", UID: "u1", ResourceVersion: "7", Generation: 3,
		Labels:          map[string]string{"app": "web"},
		Annotations:     map[string]string{"big": "annotation"},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", Controller: ptr.To(true)}},
	}
}

var podTemplate = corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}

func TestBuiltinCompact(t *testing.T) {
	for _, tc := range []struct {
		obj  client.Object
		kind Kind
	}{
		{&appsv1.Deployment{ObjectMeta: fullMeta(), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Template: podTemplate}}, Deployment},
		{&appsv1.StatefulSet{ObjectMeta: fullMeta(), Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), Template: podTemplate}}, StatefulSet},
		{&appsv1.ReplicaSet{ObjectMeta: fullMeta(), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Template: podTemplate}}, ReplicaSet},
	} {
		t.Run(tc.kind.Kind, func(t *testing.T) {
			k, ok := ForObject(tc.obj)
			if !ok || k.GroupKind() != tc.kind.GroupKind() {
				t.Fatalf("ForObject(%T) = %v, %v", tc.obj, k.GroupKind(), ok)
			}
			got, err := TransformForCache(tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			c, ok := got.(*Cached)
			if !ok {
				t.Fatalf("TransformForCache returned %T, want *Cached", got)
			}
			if c.GetAnnotations() != nil || c.GetManagedFields() != nil {
				t.Errorf("annotations or managedFields kept: %v %v", c.GetAnnotations(), c.GetManagedFields())
			}
			if c.GetNamespace() != "prod" || c.GetName() != "web" || c.GetUID() != "u1" || c.GetResourceVersion() != "7" || c.GetLabels()["app"] != "web" {
				t.Errorf("metadata lost: %+v", c)
			}
			if ctl := c.Controller(); ctl == nil || ctl.Kind != "Deployment" || ctl.Name != "web" || len(c.GetOwnerReferences()) != 1 {
				t.Errorf("controller = %+v, want Deployment web", ctl)
			}
			if r := c.Replicas(); r == nil || *r != 3 {
				t.Errorf("replicas = %v, want 3", r)
			}
			if gvk := c.GetObjectKind().GroupVersionKind(); gvk != tc.kind.GroupVersionKind() {
				t.Errorf("kind %v, want %v", gvk, tc.kind.GroupVersionKind())
			}
			if _, ok := k.NewList().(client.ObjectList); !ok {
				t.Error("NewList")
			}
			// Idempotent: client-go transforms the objects of a watch-list twice, and the
			// second time must neither copy nor allocate.
			if n := testing.AllocsPerRun(100, func() { again, _ := TransformForCache(got); got = again }); n != 0 || got != any(c) {
				t.Errorf("compacting a Cached: %v allocations, same entry %v; want 0, true", n, got == any(c))
			}
			cp := c.DeepCopyObject().(*Cached)
			cp.GetLabels()["app"] = "changed"
			if !reflect.DeepEqual(cp.Controller(), c.Controller()) || c.GetLabels()["app"] != "web" {
				t.Errorf("DeepCopyObject shares labels or lost the controller: %+v", cp)
			}
		})
	}
	// No replicas, no owners, a controller of another kind.
	meta := metav1.ObjectMeta{Name: "x", OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "c", Controller: ptr.To(true)}}}
	c, ok := Builtin().Compact(&appsv1.ReplicaSet{ObjectMeta: meta})
	if !ok || c.Replicas() != nil || c.Controller() != nil {
		t.Errorf("Compact = %+v, %v; want no replicas and no bounded controller", c, ok)
	}
	if _, ok := Builtin().Compact(&corev1.ConfigMap{}); ok {
		t.Error("a ConfigMap compacted")
	}
}

func TestForObjectAllocatesNothing(t *testing.T) {
	s, err := NewSet(Custom(rolloutGVK, "rollouts", []string{"spec", "replicas"}))
	if err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout"}}
	cm := &corev1.ConfigMap{}
	if n := testing.AllocsPerRun(100, func() {
		_, _ = s.ForObject(d)
		_, _ = s.ForObject(cm)
	}); n != 0 {
		t.Errorf("ForObject of typed objects: %v allocations, want 0", n)
	}
	if k, ok := s.ForObject(u); !ok || k.Kind != "Rollout" {
		t.Errorf("ForObject(Rollout) = %v, %v", k.Kind, ok)
	}
	other := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}}
	if _, ok := s.ForObject(other); ok {
		t.Error("an unstructured Deployment is not trimmed as a typed kind")
	}
	if _, ok := s.ForObject(cm); ok {
		t.Error("ConfigMap is not a workload")
	}
}

func TestCustom(t *testing.T) {
	k := Custom(rolloutGVK, "rollouts", []string{"spec", "scale", "count"})
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "r", "namespace": "prod", "labels": map[string]any{"a": "b"},
			"annotations": map[string]any{"x": "y"}, "managedFields": []any{map[string]any{"manager": "m"}}},
		"spec": map[string]any{"scale": map[string]any{"count": int64(4)}, "template": map[string]any{"big": "yes"}},
	}}
	if r := k.Replicas(u); r == nil || *r != 4 {
		t.Fatalf("Replicas = %v, want 4", r)
	}
	s, err := NewSet(k)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := s.Compact(u)
	if !ok || c.GetName() != "r" || c.GetNamespace() != "prod" || !reflect.DeepEqual(c.GetLabels(), map[string]string{"a": "b"}) ||
		c.Replicas() == nil || *c.Replicas() != 4 || c.GetObjectKind().GroupVersionKind() != rolloutGVK {
		t.Errorf("Compact = %+v, %v", c, ok)
	}
	if k.SpecReplicas() || !Deployment.SpecReplicas() {
		t.Error("SpecReplicas")
	}
	n := k.New()
	if n.GetObjectKind().GroupVersionKind() != rolloutGVK {
		t.Errorf("New's GVK = %v", n.GetObjectKind().GroupVersionKind())
	}
	if got := k.NewList().GetObjectKind().GroupVersionKind().Kind; got != "RolloutList" {
		t.Errorf("NewList kind %q", got)
	}
	delete(u.Object, "spec")
	if r := k.Replicas(u); r != nil {
		t.Errorf("absent replicas = %v, want nil", *r)
	}
}

func TestParseReplicasPath(t *testing.T) {
	for in, want := range map[string][]string{
		".spec.replicas":        {"spec", "replicas"},
		".spec.scale.instances": {"spec", "scale", "instances"},
	} {
		got, err := ParseReplicasPath(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseReplicasPath(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", ".", "spec.replicas", ".spec..replicas", ".spec.replicas[0]", ".spec['replicas']", ".status.replicas", ".spec.*"} {
		if _, err := ParseReplicasPath(bad); err == nil {
			t.Errorf("ParseReplicasPath(%q): no error", bad)
		}
	}
}

func TestSet(t *testing.T) {
	s, err := NewSet(Custom(rolloutGVK, "rollouts", []string{"spec", "replicas"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Kinds()) != 4 {
		t.Errorf("%d kinds", len(s.Kinds()))
	}
	if k, ok := s.ForResource("argoproj.io", "rollouts"); !ok || k.Kind != "Rollout" {
		t.Errorf("ForResource(rollouts)")
	}
	if k, ok := s.ForResource("apps", "statefulsets"); !ok || k.Kind != "StatefulSet" {
		t.Errorf("ForResource(statefulsets)")
	}
	if _, ok := Builtin().ForResource("argoproj.io", "rollouts"); ok {
		t.Error("Builtin knows rollouts")
	}
	if _, err := NewSet(Custom(appsv1.SchemeGroupVersion.WithKind("Deployment"), "deployments", []string{"spec", "replicas"})); err == nil {
		t.Error("a custom kind repeating deployments: no error")
	}
	ctl := func(apiVersion, kind string, controller bool) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "x"}, {APIVersion: apiVersion, Kind: kind, Name: "o", Controller: &controller}}
	}
	if s.Controller(ctl("apps/v1", "Deployment", true)) == nil {
		t.Error("a Deployment controller is bounded")
	}
	if s.Controller(ctl("argoproj.io/v1alpha1", "Rollout", true)) == nil {
		t.Error("a Rollout controller is bounded")
	}
	if s.Controller(ctl("apps/v1", "Deployment", false)) != nil {
		t.Error("a non-controller owner counts")
	}
	if s.Controller(ctl("batch/v1", "CronJob", true)) != nil {
		t.Error("a CronJob controller counts")
	}
	if Builtin().Controller(ctl("argoproj.io/v1alpha1", "Rollout", true)) != nil {
		t.Error("Rollout is not a built-in kind")
	}
}
