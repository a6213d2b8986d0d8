package workload

import (
	"context"
	"fmt"
	"slices"
	"unique"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Cached is a workload as the informer caches keep it: what the webhook's lookup and the
// scaler read (its labels, its controller when that is a bounded kind, its replica count)
// and what the informer and Events need (namespace, name, uid, resourceVersion, deletion).
// The cache transform (Set.TransformForCache) turns every workload the informers receive
// into one, 112 bytes against the 1,168-1,312 of a whole apps/v1 object however much of it
// is stripped: at 10,000 workloads about 11 MiB less live heap (docs/benchmarks.md, Memory).
//
// It implements client.Object so that informer events flow through controller-runtime's
// sources as any object's do. Fields it does not hold read as empty and their setters do
// nothing. A Cached from the cache is shared by every reader: it, its labels and its owner
// reference must not be changed.
type Cached struct {
	namespace, name string
	uid             types.UID
	resourceVersion string
	// labels are the workload's labels as key, value, key, value..., sorted by key: 16
	// bytes a string against about 330 bytes for a Go map of up to 8 entries (labelPairs).
	labels []string
	// owners is the controller ownerReference when it is a kind of the Set, else empty.
	owners            []metav1.OwnerReference
	deletionTimestamp *metav1.Time
	gvk               *schema.GroupVersionKind // the kind's, shared
	replicas          int32
	hasReplicas       bool // replicas is set (spec.replicas defaults on the server)
}

// Compact returns obj as the cache keeps it: obj itself when it is a *Cached, else a new
// Cached of obj when it is an object of one of the set's kinds (ok false otherwise). It
// reads obj and does not keep it: the strings and the controller reference are shared with
// obj, nothing else (the labels map is not: Cached holds its pairs).
func (s *Set) Compact(obj any) (c *Cached, ok bool) {
	if c, ok := obj.(*Cached); ok {
		return c, true
	}
	o, ok := obj.(client.Object)
	if !ok {
		return nil, false
	}
	k, ok := s.ForObject(o)
	if !ok {
		return nil, false
	}
	c = &Cached{
		namespace: intern(o.GetNamespace()), name: o.GetName(), uid: o.GetUID(), resourceVersion: o.GetResourceVersion(),
		labels: labelPairs(o.GetLabels()), deletionTimestamp: o.GetDeletionTimestamp(), gvk: s.gvks[k.GroupKind()],
	}
	if refs := o.GetOwnerReferences(); len(refs) > 0 {
		if i := s.controllerIndex(refs); i >= 0 {
			c.owners = refs[i : i+1 : i+1]
		}
	}
	if r := k.Replicas(o); r != nil {
		c.replicas, c.hasReplicas = *r, true
	}
	return c, true
}

// Replicas is the workload's replica count, nil when unset. The pointer is into the cached
// entry: read it, never write through it.
func (c *Cached) Replicas() *int32 {
	if !c.hasReplicas {
		return nil
	}
	return &c.replicas
}

// Controller is the workload's controller ownerReference when its kind is bounded (a
// ReplicaSet's Deployment), else nil: such a workload is bounded through its owner.
func (c *Cached) Controller() *metav1.OwnerReference {
	if len(c.owners) == 0 {
		return nil
	}
	return &c.owners[0]
}

// GetObjectKind implements runtime.Object: the kind's group, version and kind.
func (c *Cached) GetObjectKind() schema.ObjectKind { return c }

// GroupVersionKind implements schema.ObjectKind.
func (c *Cached) GroupVersionKind() schema.GroupVersionKind {
	if c.gvk == nil {
		return schema.GroupVersionKind{}
	}
	return *c.gvk
}

// SetGroupVersionKind implements schema.ObjectKind.
func (c *Cached) SetGroupVersionKind(gvk schema.GroupVersionKind) { c.gvk = &gvk }

// DeepCopyObject implements runtime.Object.
func (c *Cached) DeepCopyObject() runtime.Object {
	out := *c
	out.labels = slices.Clone(c.labels)
	if c.owners != nil {
		out.owners = []metav1.OwnerReference{*c.owners[0].DeepCopy()}
	}
	out.deletionTimestamp = c.deletionTimestamp.DeepCopy()
	return &out
}

// The metav1.Object getters and setters of what a Cached holds.

func (c *Cached) GetNamespace() string                            { return c.namespace }
func (c *Cached) SetNamespace(namespace string)                   { c.namespace = namespace }
func (c *Cached) GetName() string                                 { return c.name }
func (c *Cached) SetName(name string)                             { c.name = name }
func (c *Cached) GetUID() types.UID                               { return c.uid }
func (c *Cached) SetUID(uid types.UID)                            { c.uid = uid }
func (c *Cached) GetResourceVersion() string                      { return c.resourceVersion }
func (c *Cached) SetResourceVersion(version string)               { c.resourceVersion = version }
func (c *Cached) SetLabels(labels map[string]string)              { c.labels = labelPairs(labels) }
func (c *Cached) GetDeletionTimestamp() *metav1.Time              { return c.deletionTimestamp }
func (c *Cached) SetDeletionTimestamp(t *metav1.Time)             { c.deletionTimestamp = t }
func (c *Cached) GetOwnerReferences() []metav1.OwnerReference     { return c.owners }
func (c *Cached) SetOwnerReferences(refs []metav1.OwnerReference) { c.owners = refs }

// GetLabels returns the workload's labels, a new map at each call (nil when it has none).
func (c *Cached) GetLabels() map[string]string {
	if len(c.labels) == 0 {
		return nil
	}
	m := make(map[string]string, len(c.labels)/2)
	for i := 0; i < len(c.labels); i += 2 {
		m[c.labels[i]] = c.labels[i+1]
	}
	return m
}

// SameLabels reports whether c and o have the same labels, without building their maps.
func (c *Cached) SameLabels(o *Cached) bool { return slices.Equal(c.labels, o.labels) }

// labelPairs returns m as key, value, key, value..., sorted by key, the keys interned (a
// cluster's workloads share a few label keys); nil when m is empty.
func labelPairs(m map[string]string) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	pairs := make([]string, 0, 2*len(m))
	for _, k := range keys {
		pairs = append(pairs, intern(k), m[k])
	}
	return pairs
}

// intern returns the canonical copy of s (unique.Make): the namespaces and label keys that
// thousands of cached workloads repeat are held once.
func intern(s string) string { return unique.Make(s).Value() }

// The metav1.Object getters and setters of what a Cached drops: they read as empty, and
// setting them does nothing.

func (c *Cached) GetGenerateName() string                       { return "" }
func (c *Cached) SetGenerateName(string)                        {}
func (c *Cached) GetGeneration() int64                          { return 0 }
func (c *Cached) SetGeneration(int64)                           {}
func (c *Cached) GetSelfLink() string                           { return "" }
func (c *Cached) SetSelfLink(string)                            {}
func (c *Cached) GetCreationTimestamp() metav1.Time             { return metav1.Time{} }
func (c *Cached) SetCreationTimestamp(metav1.Time)              {}
func (c *Cached) GetDeletionGracePeriodSeconds() *int64         { return nil }
func (c *Cached) SetDeletionGracePeriodSeconds(*int64)          {}
func (c *Cached) GetAnnotations() map[string]string             { return nil }
func (c *Cached) SetAnnotations(map[string]string)              {}
func (c *Cached) GetFinalizers() []string                       { return nil }
func (c *Cached) SetFinalizers([]string)                        {}
func (c *Cached) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }
func (c *Cached) SetManagedFields([]metav1.ManagedFieldsEntry)  {}

var _ client.Object = &Cached{}

// Cache reads the workloads of a Set from the informer caches, as Cached entries, without
// copying them. The webhook's lookup and the scaler read workloads through it.
//
// controller-runtime's cache cannot serve them: its Get and List copy the stored object
// into the typed object asked for and refuse any other type ("cache had type
// *workload.Cached, but *v1.Deployment was asked for"), so Cache reads the informers'
// indexers. Over a reader that is not an informer cache (tests' fake clients), it reads
// typed objects through the reader and compacts them.
type Cache struct {
	kinds  *Set
	reader client.Reader
	// indexers are the informers' stores by kind; nil when reader is not an informer cache.
	indexers map[schema.GroupKind]toolscache.Indexer
	synced   []func() bool
}

// NewCache returns a Cache of kinds over reader. When reader is an informer cache (the
// manager's), it gets, without waiting for them to sync, the informers of every kind, so
// that they start with the cache.
func NewCache(ctx context.Context, reader client.Reader, kinds *Set) (*Cache, error) {
	c := &Cache{kinds: kinds, reader: reader}
	informers, ok := reader.(cache.Informers)
	if !ok {
		return c, nil
	}
	c.indexers = map[schema.GroupKind]toolscache.Indexer{}
	for _, k := range kinds.Kinds() {
		inf, err := informers.GetInformer(ctx, k.New(), cache.BlockUntilSynced(false))
		if err != nil {
			return nil, fmt.Errorf("informer for %s: %w", k.GroupKind(), err)
		}
		indexed, ok := inf.(interface{ GetIndexer() toolscache.Indexer })
		if !ok {
			return nil, fmt.Errorf("informer for %s: %T has no indexer", k.GroupKind(), inf)
		}
		c.indexers[k.GroupKind()] = indexed.GetIndexer()
		c.synced = append(c.synced, inf.HasSynced)
	}
	return c, nil
}

// Synced reports whether the informers of every kind have synced (always true over a
// reader that is not an informer cache).
func (c *Cache) Synced() bool {
	for _, s := range c.synced {
		if !s() {
			return false
		}
	}
	return true
}

// Get returns the cached workload of kind at namespace/name, a NotFound error when there is
// none. It never waits for the informer to sync. The entry is shared: do not change it.
func (c *Cache) Get(ctx context.Context, kind Kind, namespace, name string) (*Cached, error) {
	if c.indexers == nil {
		obj := kind.New()
		if err := c.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
			return nil, err
		}
		if w, ok := c.kinds.Compact(obj); ok {
			return w, nil
		}
		return nil, fmt.Errorf("%T is not a workload of kind %s", obj, kind.GroupKind())
	}
	indexer, ok := c.indexers[kind.GroupKind()]
	if !ok {
		return nil, fmt.Errorf("no informer for workload kind %s", kind.GroupKind())
	}
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	item, exists, err := indexer.GetByKey(key)
	switch {
	case err != nil:
		return nil, err
	case !exists:
		return nil, apierrors.NewNotFound(kind.GroupResource(), name)
	}
	// A cache whose transform is not the set's holds whole objects: compacted on read.
	if w, ok := c.kinds.Compact(item); ok {
		return w, nil
	}
	return nil, fmt.Errorf("the cache of %s holds %T", kind.GroupKind(), item)
}

// Keys returns the keys ("namespace/name") of the cached workloads of kind in namespace
// ("" for all), from the informer's index: a pass over the cache needs only names.
func (c *Cache) Keys(ctx context.Context, kind Kind, namespace string) ([]string, error) {
	if c.indexers == nil {
		list := kind.NewList()
		if err := c.reader.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, err
		}
		var keys []string
		err := meta.EachListItem(list, func(o runtime.Object) error {
			key, err := toolscache.MetaNamespaceKeyFunc(o)
			keys = append(keys, key)
			return err
		})
		return keys, err
	}
	indexer, ok := c.indexers[kind.GroupKind()]
	if !ok {
		return nil, fmt.Errorf("no informer for workload kind %s", kind.GroupKind())
	}
	if namespace == "" {
		return indexer.ListKeys(), nil
	}
	return indexer.IndexKeys(toolscache.NamespaceIndex, namespace)
}
