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
	workloads        *workload.Cache
	reader           client.Reader // Namespaces
	namespacesSynced func() bool
}

// NewCacheLookup registers informers for every workload kind of kinds and for Namespaces
// on c, so that they start with the cache, and returns a lookup that reads them.
func NewCacheLookup(ctx context.Context, c cache.Cache, kinds *workload.Set) (*CacheLookup, error) {
	workloads, err := workload.NewCache(ctx, c, kinds)
	if err != nil {
		return nil, err
	}
	inf, err := c.GetInformer(ctx, &corev1.Namespace{}, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("informer for Namespaces: %w", err)
	}
	return &CacheLookup{workloads: workloads, reader: c, namespacesSynced: inf.HasSynced}, nil
}

// Synced reports whether every informer the lookup reads has synced.
func (l *CacheLookup) Synced() bool {
	return l.workloads.Synced() && l.namespacesSynced()
}

// WorkloadLabels implements Lookup. The labels are the cached entry's: read them only.
func (l *CacheLookup) WorkloadLabels(kind workload.Kind, namespace, name string) (map[string]string, *metav1.OwnerReference, bool) {
	if !l.Synced() {
		return nil, nil, false
	}
	w, err := l.workloads.Get(context.Background(), kind, namespace, name)
	if err != nil {
		return nil, nil, false
	}
	return w.GetLabels(), w.Controller(), true
}

// NamespaceLabels implements Lookup.
func (l *CacheLookup) NamespaceLabels(namespace string) (map[string]string, bool) {
	if !l.Synced() {
		return nil, false
	}
	ns := &corev1.Namespace{}
	// An in-memory read: the informers are synced, so Get never blocks or calls the API server.
	if err := l.reader.Get(context.Background(), client.ObjectKey{Name: namespace}, ns); err != nil {
		return nil, false
	}
	return ns.Labels, true
}
