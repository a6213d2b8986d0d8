package workload

import (
	"context"
	"maps"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestCacheOverAReader: over a reader that is not an informer cache (a fake client), Cache
// reads typed objects and compacts them, and lists keys.
func TestCacheOverAReader(t *testing.T) {
	ctx := context.Background()
	objs := []*appsv1.Deployment{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "web", Labels: map[string]string{"app": "web"}}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3)}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "api"}},
	}
	b := fake.NewClientBuilder().WithScheme(scheme.Scheme)
	for _, o := range objs {
		b = b.WithObjects(o)
	}
	c, err := NewCache(ctx, b.Build(), Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Synced() {
		t.Error("Synced() is false over a reader")
	}
	w, err := c.Get(ctx, Deployment, "a", "web")
	if err != nil || w.GetLabels()["app"] != "web" || w.Replicas() == nil || *w.Replicas() != 3 || w.GroupVersionKind() != Deployment.GroupVersionKind() {
		t.Errorf("Get = %+v, %v", w, err)
	}
	if _, err := c.Get(ctx, Deployment, "a", "absent"); !apierrors.IsNotFound(err) {
		t.Errorf("Get of an absent Deployment: %v, want NotFound", err)
	}
	keys, err := c.Keys(ctx, Deployment, "")
	slices.Sort(keys)
	if err != nil || !slices.Equal(keys, []string{"a/web", "b/api"}) {
		t.Errorf("Keys = %v, %v", keys, err)
	}
	if keys, err := c.Keys(ctx, Deployment, "b"); err != nil || !slices.Equal(keys, []string{"b/api"}) {
		t.Errorf("Keys(b) = %v, %v", keys, err)
	}
	if keys, err := c.Keys(ctx, StatefulSet, ""); err != nil || len(keys) != 0 {
		t.Errorf("Keys(StatefulSet) = %v, %v", keys, err)
	}
}

// A Cached keeps the labels as sorted pairs: GetLabels gives them back as a map of its own,
// SameLabels compares them, and a deep copy does not share them.
func TestCachedLabels(t *testing.T) {
	labels := map[string]string{"tier": "web", "app": "shop", "team": "a"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "shop", Labels: labels}}
	c, ok := Builtin().Compact(d)
	if !ok {
		t.Fatal("not compacted")
	}
	if !slices.Equal(c.labels, []string{"app", "shop", "team", "a", "tier", "web"}) {
		t.Errorf("pairs = %q", c.labels)
	}
	got := c.GetLabels()
	if !maps.Equal(got, labels) {
		t.Errorf("GetLabels() = %v, want %v", got, labels)
	}
	got["app"] = "changed"
	if c.GetLabels()["app"] != "shop" {
		t.Error("changing GetLabels()'s map changed the entry")
	}
	other, _ := Builtin().Compact(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "x", Labels: map[string]string{"app": "shop", "team": "a", "tier": "web"}}})
	if !c.SameLabels(other) {
		t.Error("SameLabels is false for equal labels")
	}
	other.SetLabels(map[string]string{"app": "shop"})
	if c.SameLabels(other) || !maps.Equal(other.GetLabels(), map[string]string{"app": "shop"}) {
		t.Errorf("after SetLabels: %v", other.GetLabels())
	}
	cp := c.DeepCopyObject().(*Cached)
	cp.labels[1] = "copy"
	if c.GetLabels()["app"] != "shop" {
		t.Error("the deep copy shares the labels")
	}
	if none, _ := Builtin().Compact(&appsv1.Deployment{}); none.GetLabels() != nil {
		t.Errorf("GetLabels() of an unlabelled workload = %v, want nil", none.GetLabels())
	}
}
