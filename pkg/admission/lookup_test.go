package admission

import (
	"context"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllertest"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// fakeCache is controller-runtime's FakeInformers with a Get that behaves like the real
// informer cache: it blocks until the informer of the object's kind has synced (the real
// cache waits for sync), then answers from a map. Workloads are read from the informers'
// indexers (indexedInformer) instead, as from the real cache.
type fakeCache struct {
	informertest.FakeInformers
	objects map[schema.GroupVersionKind]map[client.ObjectKey]map[string]string // labels
	gets    atomic.Int64
}

func (c *fakeCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	c.gets.Add(1)
	gvks, _, err := c.Scheme.ObjectKinds(obj)
	if err != nil {
		return err
	}
	inf := c.InformersByGVK[gvks[0]]
	if !toolscache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return ctx.Err()
	}
	lbls, ok := c.objects[gvks[0]][key]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: gvks[0].Kind}, key.Name)
	}
	obj.SetLabels(maps.Clone(lbls))
	return nil
}

// indexedInformer is a fake informer whose indexer holds the workloads the test puts there
// (controllertest's returns a new empty one each time) and counts the reads.
type indexedInformer struct {
	*controllertest.FakeInformer
	indexer toolscache.Indexer
	gets    *atomic.Int64
}

func newIndexedInformer(gets *atomic.Int64, objs ...client.Object) *indexedInformer {
	i := &indexedInformer{FakeInformer: controllertest.NewFakeInformer(), gets: gets,
		indexer: toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})}
	for _, o := range objs {
		c, _ := workload.TransformForCache(o)
		if err := i.indexer.Add(c); err != nil {
			panic(err)
		}
	}
	return i
}

func (i *indexedInformer) GetIndexer() toolscache.Indexer { return countingIndexer{i.indexer, i.gets} }

type countingIndexer struct {
	toolscache.Indexer
	gets *atomic.Int64
}

func (c countingIndexer) GetByKey(key string) (any, bool, error) {
	c.gets.Add(1)
	return c.Indexer.GetByKey(key)
}

var (
	deploymentGVK = appsv1.SchemeGroupVersion.WithKind("Deployment")
	namespaceGVK  = corev1.SchemeGroupVersion.WithKind("Namespace")
)

func TestCacheLookupNotSyncedNeverBlocks(t *testing.T) {
	c := &fakeCache{objects: map[schema.GroupVersionKind]map[client.ObjectKey]map[string]string{
		namespaceGVK: {{Name: "prod"}: {"env": "prod"}},
	}}
	deployments := newIndexedInformer(&c.gets, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web", Labels: map[string]string{"tier": "web"}}}) // not synced
	namespaces := controllertest.NewFakeInformer()
	statefulSets, replicaSets := newIndexedInformer(&c.gets), newIndexedInformer(&c.gets)
	c.FakeInformers = informertest.FakeInformers{InformersByGVK: map[schema.GroupVersionKind]toolscache.SharedIndexInformer{
		deploymentGVK: deployments, namespaceGVK: namespaces,
		workload.StatefulSet.GroupVersionKind(): statefulSets, workload.ReplicaSet.GroupVersionKind(): replicaSets,
	}}
	l, err := NewCacheLookup(context.Background(), c, workload.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.InformersByGVK) != 4 {
		t.Errorf("NewCacheLookup registered informers for %v, want Deployments, StatefulSets, ReplicaSets and Namespaces", keys(c.InformersByGVK))
	}

	lookupAll := func() (wl, nl map[string]string, wok, nok bool) {
		wl, _, wok = l.WorkloadLabels(workload.Deployment, "prod", "web")
		nl, nok = l.NamespaceLabels("prod")
		return
	}
	// Not synced: not found, at once, without touching the cache (whose Get would block).
	notFound := func(state string) {
		t.Helper()
		done := make(chan struct{})
		start := time.Now()
		go func() {
			defer close(done)
			for range 1000 {
				if _, _, wok, nok := lookupAll(); wok || nok {
					t.Errorf("%s: found labels", state)
					return
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: lookups blocked", state)
		}
		t.Logf("%s: 2000 lookups in %v", state, time.Since(start))
		if l.Synced() {
			t.Errorf("%s: Synced() is true", state)
		}
		if n := c.gets.Load(); n != 0 {
			t.Errorf("%s: %d reads of an unsynced cache", state, n)
		}
	}
	notFound("nothing synced")
	deployments.Synced()
	notFound("only Deployments synced") // every informer the lookup reads must have synced
	namespaces.Synced()
	statefulSets.Synced()
	notFound("ReplicaSets not synced")
	replicaSets.Synced()

	if !l.Synced() {
		t.Fatal("Synced() is false with every informer synced")
	}
	wl, nl, wok, nok := lookupAll()
	if !wok || !maps.Equal(wl, map[string]string{"tier": "web"}) || !nok || !maps.Equal(nl, map[string]string{"env": "prod"}) {
		t.Errorf("synced: got workload %v (%t), namespace %v (%t)", wl, wok, nl, nok)
	}
	if _, _, ok := l.WorkloadLabels(workload.Deployment, "prod", "absent"); ok {
		t.Error("an absent Deployment was found")
	}
	if _, ok := l.NamespaceLabels("absent"); ok {
		t.Error("an absent Namespace was found")
	}
}

func keys[K comparable, V any](m map[K]V) []K {
	var ks []K
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestCacheLookupAgainstAPIServer runs the lookup over a real informer cache: before the
// cache starts it answers "not found" at once, after it syncs it finds what was created.
func TestCacheLookupAgainstAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	env := harness.StartControlPlane(t, harness.ControlPlaneOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	c, err := cache.New(env.Config, cache.Options{DefaultTransform: workload.TransformForCache})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewCacheLookup(ctx, c, workload.Builtin())
	if err != nil {
		t.Fatal(err)
	}

	// Before the cache starts: never blocks, never found, even for what exists.
	start := time.Now()
	for range 1000 {
		if _, ok := l.NamespaceLabels("default"); ok {
			t.Fatal("found a namespace before the cache started")
		}
		if _, _, ok := l.WorkloadLabels(workload.Deployment, "default", "web"); ok {
			t.Fatal("found a Deployment before the cache started")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("2000 lookups before the cache started took %v: they must not wait", d)
	} else {
		t.Logf("2000 lookups before the cache started: %v", d)
	}

	go func() {
		if err := c.Start(ctx); err != nil {
			t.Errorf("cache: %v", err)
		}
	}()
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !c.WaitForCacheSync(syncCtx) {
		t.Fatal("cache did not sync in 30s")
	}
	if !l.Synced() {
		t.Fatal("Synced() is false after the cache synced")
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lookup", Labels: map[string]string{"env": "prod"}}}
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	replicas := int32(3)
	sel := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "lookup", Name: "web", Labels: map[string]string{"tier": "web"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
	dep, err = env.Client.AppsV1().Deployments("lookup").Create(ctx, dep, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A ReplicaSet as the Deployment controller creates it: its controller is the Deployment.
	rs := harness.OwnedReplicaSet(dep, "web-1", 3)
	if _, err := env.Client.AppsV1().ReplicaSets("lookup").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, ctl, rok := l.WorkloadLabels(workload.ReplicaSet, "lookup", "web-1")
		if rok {
			if ctl == nil || ctl.Kind != "Deployment" || ctl.Name != "web" {
				t.Errorf("the ReplicaSet's bounded controller = %+v, want Deployment web", ctl)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ReplicaSet not found within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		wl, ctl, wok := l.WorkloadLabels(workload.Deployment, "lookup", "web")
		if wok && ctl != nil {
			t.Errorf("a Deployment without owners has controller %+v", ctl)
		}
		nl, nok := l.NamespaceLabels("lookup")
		if wok && nok {
			if !maps.Equal(wl, map[string]string{"tier": "web"}) || nl["env"] != "prod" || nl[corev1.LabelMetadataName] != "lookup" {
				t.Errorf("labels: Deployment %v, Namespace %v", wl, nl)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("created objects not found within 10s (Deployment %t, Namespace %t)", wok, nok)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, ok := l.WorkloadLabels(workload.Deployment, "lookup", "absent"); ok {
		t.Error("an absent Deployment was found")
	}
}
