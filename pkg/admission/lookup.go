package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/replica-policy/replica-policy/pkg/workload"
)

// Lookup gives the labels the request itself does not carry. Implementations read informer
// caches and never call the API server; found is false when the object is not in the cache.
type Lookup interface {
	WorkloadLabels(kind workload.Kind, namespace, name string) (labels map[string]string, found bool)
	NamespaceLabels(namespace string) (labels map[string]string, found bool)
}

// CacheLookup reads labels from informer caches. It never waits: until the informers have
// synced, every lookup answers "not found", and the decision treats the labels as unknown.
type CacheLookup struct {
	reader client.Reader
	synced []func() bool
}

// NewCacheLookup registers informers for every workload kind and for Namespaces on c, so
// that they start with the cache, and returns a lookup that reads them.
func NewCacheLookup(ctx context.Context, c cache.Cache) (*CacheLookup, error) {
	l := &CacheLookup{reader: c}
	objs := []client.Object{&corev1.Namespace{}}
	for _, k := range workload.Kinds {
		objs = append(objs, k.New())
	}
	for _, obj := range objs {
		inf, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
		l.synced = append(l.synced, inf.HasSynced)
	}
	return l, nil
}

// Synced reports whether every informer the lookup reads has synced.
func (l *CacheLookup) Synced() bool {
	for _, s := range l.synced {
		if !s() {
			return false
		}
	}
	return true
}

// WorkloadLabels implements Lookup.
func (l *CacheLookup) WorkloadLabels(kind workload.Kind, namespace, name string) (map[string]string, bool) {
	return l.labels(kind.New(), namespace, name)
}

// NamespaceLabels implements Lookup.
func (l *CacheLookup) NamespaceLabels(namespace string) (map[string]string, bool) {
	return l.labels(&corev1.Namespace{}, "", namespace)
}

func (l *CacheLookup) labels(obj client.Object, namespace, name string) (map[string]string, bool) {
	if !l.Synced() {
		return nil, false
	}
	// An in-memory read: the informers are synced, so Get never blocks or calls the API server.
	if err := l.reader.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
		return nil, false
	}
	return obj.GetLabels(), true
}
