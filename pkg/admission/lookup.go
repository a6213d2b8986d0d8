package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/replica-policy/replica-policy/pkg/workload"
)

// Lookup gives the labels the request itself does not carry. Implementations read informer
// caches and never call the API server; found is false when the object is not in the cache.
type Lookup interface {
	// WorkloadLabels returns the labels of the workload of a Scale and its controller
	// ownerReference when that is a bounded workload kind (else nil).
	WorkloadLabels(kind workload.Kind, namespace, name string) (labels map[string]string, controller *metav1.OwnerReference, found bool)
	NamespaceLabels(namespace string) (labels map[string]string, found bool)
}

// CacheLookup reads labels from informer caches. It never waits: until the informers have
// synced, every lookup answers "not found", and the decision treats the labels as unknown.
type CacheLookup struct {
	kinds  *workload.Set
	reader client.Reader
	synced []func() bool
}

// NewCacheLookup registers informers for every workload kind of kinds and for Namespaces
// on c, so that they start with the cache, and returns a lookup that reads them.
func NewCacheLookup(ctx context.Context, c cache.Cache, kinds *workload.Set) (*CacheLookup, error) {
	l := &CacheLookup{kinds: kinds, reader: c}
	objs := []client.Object{&corev1.Namespace{}}
	for _, k := range kinds.Kinds() {
		objs = append(objs, k.New())
	}
	for _, obj := range objs {
		inf, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return nil, fmt.Errorf("informer for %T %s: %w", obj, obj.GetObjectKind().GroupVersionKind().Kind, err)
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
func (l *CacheLookup) WorkloadLabels(kind workload.Kind, namespace, name string) (map[string]string, *metav1.OwnerReference, bool) {
	obj, ok := l.get(kind.New(), namespace, name)
	if !ok {
		return nil, nil, false
	}
	return obj.GetLabels(), l.kinds.Controller(obj.GetOwnerReferences()), true
}

// NamespaceLabels implements Lookup.
func (l *CacheLookup) NamespaceLabels(namespace string) (map[string]string, bool) {
	obj, ok := l.get(&corev1.Namespace{}, "", namespace)
	if !ok {
		return nil, false
	}
	return obj.GetLabels(), true
}

func (l *CacheLookup) get(obj client.Object, namespace, name string) (client.Object, bool) {
	if !l.Synced() {
		return nil, false
	}
	// An in-memory read: the informers are synced, so Get never blocks or calls the API server.
	if err := l.reader.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
		return nil, false
	}
	return obj, true
}
