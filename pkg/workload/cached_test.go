package workload

import (
	"context"
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
