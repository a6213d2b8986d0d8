package reports

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// FieldManager is the field manager of the report writes.
const FieldManager = "replica-policy-reports"

// reportGK is the OpenReports Report kind.
var reportGK = schema.GroupKind{Group: openreportsv1alpha1.GroupName, Kind: "Report"}

// Options of a Reporter.
type Options struct {
	// MinInterval is the least time between two writes of one namespace's report: changes
	// within it coalesce into one write. Default one second.
	MinInterval time.Duration
	// ResyncPeriod recomputes every namespace's report this often (0: never); default 10
	// minutes. Events recompute the namespace they touch in between.
	ResyncPeriod time.Duration
	// CRDPollInterval is how often, while the OpenReports CRD is not served, the Reporter
	// looks for it again; default 30 seconds.
	CRDPollInterval time.Duration
	// Scaler is what the scaler does with workloads outside the bounds of clamp rules,
	// which their results say; default ScalerCorrects.
	Scaler ScalerMode
}

func (o *Options) defaults() {
	if o.MinInterval <= 0 {
		o.MinInterval = time.Second
	}
	if o.ResyncPeriod == 0 {
		o.ResyncPeriod = 10 * time.Minute
	}
	if o.CRDPollInterval <= 0 {
		o.CRDPollInterval = 30 * time.Second
	}
}

// Reporter keeps the namespaces' Reports. It is a manager Runnable that runs on the leader
// only: create it with New and add it with SetupWithManager.
type Reporter struct {
	store *policystore.Store
	kinds *workload.Set
	ready func() bool
	opts  Options

	log       logr.Logger
	client    client.Client // writes reports
	apiReader client.Reader // reads reports: they are not cached
	mapper    meta.RESTMapper
	cache     cache.Cache
	workloads *workload.Cache

	queue workqueue.TypedRateLimitingInterface[string]
	// known is each namespace's report as last read or written (absent: not known yet; nil:
	// none). lastWrite is when it was last written. Both belong to the one worker.
	known     map[string]*openreportsv1alpha1.Report
	lastWrite map[string]time.Time
	now       func() time.Time

	mu     sync.Mutex
	writes map[string]int // by namespace, for tests
}

// New returns a Reporter of the bounded objects of kinds under the policy in store. ready
// says whether the policy has been read: before, nothing is written.
func New(store *policystore.Store, kinds *workload.Set, ready func() bool, opts Options) *Reporter {
	opts.defaults()
	return &Reporter{store: store, kinds: kinds, ready: ready, opts: opts, now: time.Now,
		known: map[string]*openreportsv1alpha1.Report{}, lastWrite: map[string]time.Time{}, writes: map[string]int{}}
}

// SetupWithManager adds the Reporter to mgr. mgr's scheme must hold the OpenReports types
// (AddToScheme).
func (r *Reporter) SetupWithManager(mgr ctrl.Manager) error {
	r.log = mgr.GetLogger().WithName("reports")
	r.client = mgr.GetClient()
	r.apiReader = mgr.GetAPIReader()
	r.mapper = mgr.GetRESTMapper()
	r.cache = mgr.GetCache()
	var err error
	if r.workloads, err = workload.NewCache(context.Background(), r.cache, r.kinds); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	return mgr.Add(r)
}

// AddToScheme registers the OpenReports types.
var AddToScheme = openreportsv1alpha1.AddToScheme

// NeedLeaderElection makes the Reporter run on the leader only.
func (r *Reporter) NeedLeaderElection() bool { return true }

// Writes returns the report writes (create, update, delete) so far, by namespace.
func (r *Reporter) Writes() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.writes))
	for k, v := range r.writes {
		out[k] = v
	}
	return out
}

// Start waits for the OpenReports CRD (saying once that it is missing, and running on),
// then keeps the reports until ctx ends.
func (r *Reporter) Start(ctx context.Context) error {
	if !r.waitForCRD(ctx) {
		return nil
	}
	active.Set(1)
	defer active.Set(0)
	r.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, 5*time.Minute),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "replica-policy-reports"})
	context.AfterFunc(ctx, r.queue.ShutDown)
	if !r.cache.WaitForCacheSync(ctx) {
		return nil
	}
	if err := r.watch(ctx); err != nil {
		return err
	}
	// The reports of an earlier leader: known, and their namespaces checked (a namespace
	// left with nothing bounded loses its report).
	list := &openreportsv1alpha1.ReportList{}
	if err := r.apiReader.List(ctx, list, client.MatchingLabels{ManagedByLabel: Source}); err != nil {
		r.log.Error(err, "Listing the existing policy reports")
	}
	for i := range list.Items {
		if list.Items[i].Name == Name {
			r.known[list.Items[i].Namespace] = &list.Items[i]
			r.queue.Add(list.Items[i].Namespace)
		}
	}
	r.enqueueAll(ctx)
	r.store.Subscribe(func(*policy.Snapshot) { r.enqueueAll(ctx) })
	if r.opts.ResyncPeriod > 0 {
		t := time.NewTicker(r.opts.ResyncPeriod)
		defer t.Stop()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					r.enqueueAll(ctx)
				}
			}
		}()
	}
	for r.processNext(ctx) {
	}
	return nil
}

// waitForCRD returns once the OpenReports Report kind is served (true), or ctx ended
// (false). While it is not, it says so once and looks again every CRDPollInterval.
func (r *Reporter) waitForCRD(ctx context.Context) bool {
	said := false
	for {
		_, err := r.mapper.RESTMapping(reportGK, openreportsv1alpha1.SchemeGroupVersion.Version)
		if err == nil {
			if said {
				r.log.Info("The OpenReports CRD is served now: writing policy reports")
			}
			return true
		}
		if !said {
			r.log.Info("Policy reports are off until the OpenReports CRD (reports.openreports.io, v1alpha1) is installed; running on without them", "error", err.Error())
			said = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(r.opts.CRDPollInterval):
		}
	}
}

// watch queues a namespace on every change of its workloads, HPAs or the Namespace itself.
func (r *Reporter) watch(ctx context.Context) error {
	objs := []client.Object{&autoscalingv2.HorizontalPodAutoscaler{}, &corev1.Namespace{}}
	for _, k := range r.kinds.Kinds() {
		objs = append(objs, k.New())
	}
	for _, o := range objs {
		inf, err := r.cache.GetInformer(ctx, o)
		if err != nil {
			return fmt.Errorf("reports: informer for %T: %w", o, err)
		}
		_, isNS := o.(*corev1.Namespace)
		enqueue := func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			m, err := meta.Accessor(obj)
			if err != nil {
				return
			}
			if isNS {
				r.queue.Add(m.GetName())
			} else {
				r.queue.Add(m.GetNamespace())
			}
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    enqueue,
			UpdateFunc: func(_, n any) { enqueue(n) },
			DeleteFunc: enqueue,
		})
		if err != nil {
			return fmt.Errorf("reports: event handler for %T: %w", o, err)
		}
		context.AfterFunc(ctx, func() { _ = inf.RemoveEventHandler(reg) })
	}
	return nil
}

// enqueueAll queues every namespace in the cache. A namespace with a report is in the
// cache, or deleted, its report with it (its Namespace's delete event queues it).
func (r *Reporter) enqueueAll(ctx context.Context) {
	list := &corev1.NamespaceList{}
	if err := r.cache.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		r.log.Error(err, "Listing namespaces from the cache")
	}
	for i := range list.Items {
		r.queue.Add(list.Items[i].Name)
	}
}

func (r *Reporter) processNext(ctx context.Context) bool {
	ns, shutdown := r.queue.Get()
	if shutdown {
		return false
	}
	defer r.queue.Done(ns)
	if err := r.sync(ctx, ns); err != nil {
		if ctx.Err() != nil {
			return false
		}
		r.log.Error(err, "Writing the policy report", "namespace", ns)
		r.queue.AddRateLimited(ns)
		return true
	}
	r.queue.Forget(ns)
	return true
}

// sync brings namespace ns's report up to date, unless it was written less than
// MinInterval ago: then it comes back when that has passed, and all the changes in between
// make one write.
func (r *Reporter) sync(ctx context.Context, ns string) error {
	if !r.ready() {
		r.queue.AddAfter(ns, r.opts.MinInterval)
		return nil
	}
	if wait := r.opts.MinInterval - r.now().Sub(r.lastWrite[ns]); wait > 0 {
		r.queue.AddAfter(ns, wait)
		return nil
	}
	prev, known := r.known[ns]
	if !known {
		got := &openreportsv1alpha1.Report{}
		switch err := r.apiReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: Name}, got); {
		case apierrors.IsNotFound(err):
			got = nil
		case err != nil:
			return err
		}
		prev = got
		r.known[ns] = got
	}
	items, err := r.items(ctx, ns)
	if err != nil {
		return err
	}
	next := Build(ns, items, prev, r.now())
	var op string
	switch {
	case next == nil && prev == nil:
		return nil
	case next == nil:
		op, err = "delete", client.IgnoreNotFound(r.client.Delete(ctx, prev))
	case prev == nil:
		op, err = "create", r.client.Create(ctx, next, client.FieldOwner(FieldManager))
	case SameContent(prev, next):
		return nil
	default:
		next.ResourceVersion = prev.ResourceVersion
		op, err = "update", r.client.Update(ctx, next, client.FieldOwner(FieldManager))
	}
	r.lastWrite[ns] = r.now()
	r.mu.Lock()
	r.writes[ns]++
	r.mu.Unlock()
	writesTotal.WithLabelValues(op).Inc()
	if err != nil {
		// Another writer, or a report deleted under us: read it again next time.
		delete(r.known, ns)
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) {
			r.queue.AddAfter(ns, r.opts.MinInterval)
			return nil
		}
		return err
	}
	r.known[ns] = next
	return nil
}

// items are the verdicts' effects on namespace ns's workloads and HPAs, from the cache.
func (r *Reporter) items(ctx context.Context, ns string) ([]Item, error) {
	snap := r.store.Snapshot()
	var items []Item
	for _, k := range r.kinds.Kinds() {
		keys, err := r.workloads.Keys(ctx, k, ns)
		if err != nil {
			return nil, err
		}
		apiVersion := k.GroupVersionKind().GroupVersion().String()
		for _, key := range keys {
			_, name, err := toolscache.SplitMetaNamespaceKey(key)
			if err != nil {
				continue
			}
			obj, err := r.workloads.Get(ctx, k, ns, name)
			if apierrors.IsNotFound(err) {
				continue
			} else if err != nil {
				return nil, err
			}
			if obj.GetDeletionTimestamp() != nil {
				continue
			}
			v, subj, err := workload.Decide(ctx, r.cache, snap, k, obj)
			if err != nil {
				return nil, err
			}
			ref := corev1.ObjectReference{APIVersion: apiVersion, Kind: k.Kind, Namespace: ns, Name: name, UID: obj.GetUID()}
			items = append(items, workloadItem(ref, v, subj, r.opts.Scaler))
		}
	}
	hpas := &autoscalingv2.HorizontalPodAutoscalerList{}
	if err := r.cache.List(ctx, hpas, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	for i := range hpas.Items {
		hpa := &hpas.Items[i]
		if hpa.DeletionTimestamp != nil {
			continue
		}
		v, target, ok, err := workload.DecideAutoscaler(ctx, r.cache, r.workloads, r.kinds, snap, hpa)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		it := Item{
			Object:   corev1.ObjectReference{APIVersion: "autoscaling/v2", Kind: policy.AutoscalerKind, Namespace: ns, Name: hpa.Name, UID: hpa.UID},
			Effect:   v.Effect(policy.AtScaler, hpa.Name, target, nil),
			Replicas: v.Range.String(),
		}
		if len(it.Effect.Messages) > 0 {
			it.Message = it.Effect.Messages[0]
		}
		items = append(items, it)
	}
	return items, nil
}
