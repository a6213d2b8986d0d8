// Package scaler brings existing workloads back inside the bounds of the replica policy.
//
// For each workload under a clamp rule whose spec.replicas is outside its bounds, the
// Reconciler writes the corrected replicas through the workload's scale subresource with one
// conditional write and no read (an UPDATE of the Scale with the resourceVersion the cache
// saw: a workload that changed meanwhile is refused with 409 Conflict and evaluated again,
// never raised from a value the scaler did not see); it never updates the workload object
// itself. Workloads under deny and warn rules are reported (Event, metric), never changed.
// Reads of workloads and Namespaces come from the manager's cache; a compliant workload
// costs no API request at all.
//
// Triggers: start-up (the cache's initial list), every workload change, every Namespace
// label change, every policy change and a periodic resync, each a pass over the cache.
//
// HorizontalPodAutoscalers whose range leaves their target's bounds are reported (Event
// HPAOutOfBounds, a gauge), never changed: the scaler has no right to update them. So are
// KEDA ScaledObjects (Event ScaledObjectOutOfBounds), where their CRD is served and the
// scaler may list them.
// Writes go through a global token bucket (Options.MaxCorrectionsPerSecond), failures back
// off per workload, and a workload that another writer keeps setting outside its bounds
// is left alone for a doubling back-off and reported as contested.
//
// The controller runs only on the leader when the manager uses leader election.
package scaler

import (
	"context"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

const (
	// ControllerName names the controller (logs, controller-runtime metrics) and is the
	// reportingController of its Events.
	ControllerName = "replica-policy-scaler"
	// FieldManager is the field manager of the scaler's scale updates.
	FieldManager = "replica-policy-scaler"
)

// Failure back-off per workload: from
// half a second, doubling, up to the resync-scale of 5 minutes, so that a persistent
// error (Forbidden, a webhook rejecting the write) costs a request every 5 minutes.
const (
	failureBaseDelay = 500 * time.Millisecond
	failureMaxDelay  = 5 * time.Minute
)

// Request names one workload: its kind and namespace/name.
type Request struct {
	Kind schema.GroupKind
	types.NamespacedName
}

// String renders the request for logs, e.g. "Deployment.apps prod/web".
func (r Request) String() string { return r.Kind.String() + " " + r.NamespacedName.String() }

// Counts are this Reconciler's own totals (the metrics add up all instances in a process).
type Counts struct {
	// Reconciles is the number of reconciles that finished.
	Reconciles int64
	// ScaleWrites is the conditional writes (UPDATE with the cache's resourceVersion) sent
	// to scale subresources; the scaler reads no scale.
	ScaleWrites int64
	// Moved is the conditional writes refused with 409 Conflict, the workload having
	// changed since the cache saw it (neither a correction nor a failure: it is evaluated
	// again from the cache).
	Moved int64
	// Corrections is the number of workloads moved inside their bounds.
	Corrections int64
	// Failures is the number of corrections that failed (NotFound is not a failure).
	Failures int64
	// Contests is the number of times a workload was found contested.
	Contests int64
	// Settled is the workloads that a pass or a watch event found compliant in the cache
	// and did not queue (needed): evaluated without a reconcile.
	Settled int64
}

// Reconciler corrects workloads whose replicas are outside the bounds of a clamp rule.
// Create it with New, optionally set ScaleClient, Recorder or Kinds, then call
// SetupWithManager.
type Reconciler struct {
	// ScaleClient writes (UPDATE) the scale subresource; default
	// mgr.GetClient().SubResource("scale"). Tests wrap it to inject faults.
	ScaleClient client.SubResourceClient
	// Recorder records Events; default mgr.GetEventRecorder(ControllerName).
	Recorder recorder.EventRecorder
	// Kinds are the workload kinds the scaler corrects; default workload.Builtin(). The
	// manager's cache must compact them (Set.CacheByObject of the same set).
	Kinds *workload.Set

	store     *policystore.Store
	opts      Options
	reader    client.Reader   // the manager's cache: Namespaces and HorizontalPodAutoscalers
	workloads *workload.Cache // the workloads in the manager's cache
	kinds     map[schema.GroupKind]workload.Kind
	limiter   *rate.Limiter
	tracker   *tracker
	budget    *eventBudget // the Events on workloads in the current pass (events.go)
	now       func() time.Time
	// policyChanged has room for one pending full pass: policy changes coalesce.
	policyChanged chan struct{}
	// passQueueBound is the queue length at which a full pass waits (the constant's value;
	// tests lower it).
	passQueueBound int
	// scaledObjects is the watch of KEDA's ScaledObjects, started when they can be read.
	scaledObjects scaledObjectWatch

	reconciles, scaleWrites, moved, corrections, failures, contests, settledInPass atomic.Int64
}

// New returns a scaler that enforces the policy in store.
func New(store *policystore.Store, opts Options) *Reconciler {
	return &Reconciler{Kinds: workload.Builtin(), store: store, opts: opts, now: time.Now, policyChanged: make(chan struct{}, 1), passQueueBound: passQueueBound,
		budget: newEventBudget(opts.EventBudget)}
}

// Counts returns this Reconciler's totals so far.
func (r *Reconciler) Counts() Counts {
	return Counts{
		Reconciles: r.reconciles.Load(), ScaleWrites: r.scaleWrites.Load(), Moved: r.moved.Load(),
		Corrections: r.corrections.Load(), Failures: r.failures.Load(), Contests: r.contests.Load(),
		Settled: r.settledInPass.Load(),
	}
}

// SetupWithManager validates the options and adds the scaler's controller to mgr. The
// controller needs leader election (when the manager has it on), so only one replica writes.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := r.opts.Validate(); err != nil {
		return fmt.Errorf("scaler options: %w", err)
	}
	if r.ScaleClient == nil {
		r.ScaleClient = mgr.GetClient().SubResource("scale")
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(ControllerName)
	}
	r.reader = mgr.GetCache()
	r.limiter = rate.NewLimiter(rate.Limit(r.opts.MaxCorrectionsPerSecond), r.opts.CorrectionBurst)
	r.tracker = newTracker(r.opts)
	if r.Kinds == nil {
		r.Kinds = workload.Builtin()
	}
	workloads, err := workload.NewCache(context.Background(), r.reader, r.Kinds)
	if err != nil {
		return fmt.Errorf("scaler: %w", err)
	}
	r.workloads = workloads
	r.kinds = map[schema.GroupKind]workload.Kind{}
	b := r.watches(mgr, builder.TypedControllerManagedBy[Request](mgr).
		Named(ControllerName).
		WithOptions(controller.TypedOptions[Request]{
			MaxConcurrentReconciles: r.opts.MaxConcurrentReconciles,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[Request](failureBaseDelay, failureMaxDelay),
		}).
		WithLogConstructor(requestLogger(mgr.GetLogger().WithValues("controller", ControllerName))))
	r.store.Subscribe(func(*policy.Snapshot) {
		r.tracker.policyChanged()
		select {
		case r.policyChanged <- struct{}{}:
		default: // a pass is already pending; it will read the newest snapshot
		}
	})
	c, err := b.Build(r)
	if err != nil {
		return err
	}
	// KEDA's ScaledObjects, reported as HPAs are, when their CRD is served.
	r.scaledObjects.controller, r.scaledObjects.cache, r.scaledObjects.apiReader = c, mgr.GetCache(), mgr.GetAPIReader()
	r.scaledObjects.scheme = mgr.GetScheme()
	r.watchScaledObjects(context.Background())
	return nil
}

// requestLogger is the controller's logger for a request: the workload's kind and name.
func requestLogger(logger logr.Logger) func(*Request) logr.Logger {
	return func(req *Request) logr.Logger {
		if req == nil {
			return logger
		}
		return logger.WithValues(req.Kind.Kind, klog.KRef(req.Namespace, req.Name))
	}
}

// watches adds to b what the scaler watches: each workload kind, HorizontalPodAutoscalers,
// Namespaces (their labels decide namespaceSelector rules), and the full passes of policy
// changes and the periodic resync.
func (r *Reconciler) watches(mgr ctrl.Manager, b *builder.TypedBuilder[Request]) *builder.TypedBuilder[Request] {
	for _, k := range r.Kinds.Kinds() {
		gk := k.GroupKind()
		r.kinds[gk] = k
		// The informer's objects are Cached entries (CacheByObject): source.Kind's handler
		// takes any client.Object, so they flow through as the typed objects did.
		b = b.WatchesRawSource(source.TypedKind(mgr.GetCache(), k.New(), enqueueWorkload(gk, r.needed), workloadChanged(r.Kinds)))
	}
	// HorizontalPodAutoscalers, reported when their range leaves their target's bounds.
	b = b.WatchesRawSource(source.TypedKind(mgr.GetCache(), client.Object(&autoscalingv2.HorizontalPodAutoscaler{}),
		enqueueWorkload(AutoscalerGroupKind, nil), autoscalerChanged()))
	b = b.WatchesRawSource(source.TypedKind(mgr.GetCache(), client.Object(&corev1.Namespace{}),
		handler.TypedFuncs[client.Object, Request]{
			CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[client.Object], q workqueue.TypedRateLimitingInterface[Request]) {
				// The Namespaces of the cache's initial list: their workloads come in the
				// workload sources' own initial lists, a second pass would repeat them.
				if !e.IsInInitialList {
					r.enqueueAll(ctx, q, e.Object.GetName(), "namespace created", nil)
				}
			},
			UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[client.Object], q workqueue.TypedRateLimitingInterface[Request]) {
				r.enqueueAll(ctx, q, e.ObjectNew.GetName(), "namespace labels changed", nil)
			},
		},
		predicate.TypedFuncs[client.Object]{
			UpdateFunc: func(e event.TypedUpdateEvent[client.Object]) bool {
				return !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels())
			},
			DeleteFunc:  func(event.TypedDeleteEvent[client.Object]) bool { return false },
			GenericFunc: func(event.TypedGenericEvent[client.Object]) bool { return false },
		}))
	// Policy changes and the periodic resync: a full pass over the cache. The start-up pass
	// is the cache's initial list, which the workload sources deliver as create events.
	return b.WatchesRawSource(source.TypedFunc[Request](r.startPasses))
}

// enqueueWorkload maps events of one workload kind (or of HorizontalPodAutoscalers) to
// requests; need, when not nil, says which of them to queue (Reconciler.needed).
func enqueueWorkload(gk schema.GroupKind, need func(context.Context, Request) bool) handler.TypedEventHandler[client.Object, Request] {
	add := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[Request], o client.Object) {
		req := Request{Kind: gk, NamespacedName: client.ObjectKeyFromObject(o)}
		if need == nil || need(ctx, req) {
			q.Add(req)
		}
	}
	return handler.TypedFuncs[client.Object, Request]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[client.Object], q workqueue.TypedRateLimitingInterface[Request]) {
			add(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[client.Object], q workqueue.TypedRateLimitingInterface[Request]) {
			add(ctx, q, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[Request]) {
			add(ctx, q, e.Object)
		},
		GenericFunc: func(ctx context.Context, e event.TypedGenericEvent[client.Object], q workqueue.TypedRateLimitingInterface[Request]) {
			add(ctx, q, e.Object)
		},
	}
}

// needed reports whether the workload req needs a reconcile: the tracker remembers it (out
// of bounds, reported, corrected lately), or the cache shows it outside the bounds of its
// rule, or its verdict waits for what the cache lacks, or it cannot be read. A compliant
// workload is settled here instead (counted in Counts.Settled): evaluating it is one cache
// read and one decision, what its reconcile would do, while queueing it costs more than
// that. A request in controller-runtime's priority queue holds about 750 bytes (its item,
// the queue's index and its metrics' timestamps): 7 MiB of a start-up pass over 10,000
// workloads, 70 MiB over 100,000, when only the violators need the queue.
func (r *Reconciler) needed(ctx context.Context, req Request) bool {
	if r.tracker.known(req) {
		return true
	}
	kind, ok := r.kinds[req.Kind]
	if !ok {
		return true
	}
	obj, err := r.workloads.Get(ctx, kind, req.Namespace, req.Name)
	switch {
	case apierrors.IsNotFound(err):
		return false
	case err != nil:
		return true
	case obj.GetDeletionTimestamp() != nil:
		return false
	}
	v, _, err := workload.Decide(ctx, r.reader, r.store.Snapshot(), kind, obj)
	if err != nil || v.Outcome == policy.OutcomeUnknown || v.Outcome == policy.OutcomeOutOfBounds {
		return true
	}
	r.settledInPass.Add(1)
	settledTotal.Inc()
	return false
}

// workloadChanged lets through updates that can change the outcome: replicas, labels,
// deletion. Status updates (most of a busy cluster's watch events) are dropped.
// The objects are the cache's Cached entries (compacted here when a cache without the
// transform holds whole objects).
func workloadChanged(kinds *workload.Set) predicate.TypedPredicate[client.Object] {
	compact := func(obj client.Object) (*workload.Cached, bool) { return kinds.Compact(obj) }
	return changedWhen(compact, func(o, n *workload.Cached) bool {
		return !int32PtrEqual(o.Replicas(), n.Replicas()) || !o.SameLabels(n)
	})
}

// changedWhen lets through the updates whose objects, read by as, differ as differs says or
// start or stop being deleted; an update whose objects as cannot read passes.
func changedWhen[T client.Object](as func(client.Object) (T, bool), differs func(o, n T) bool) predicate.TypedPredicate[client.Object] {
	return predicate.TypedFuncs[client.Object]{
		UpdateFunc: func(e event.TypedUpdateEvent[client.Object]) bool {
			o, ok1 := as(e.ObjectOld)
			n, ok2 := as(e.ObjectNew)
			if !ok1 || !ok2 {
				return true
			}
			return differs(o, n) || (o.GetDeletionTimestamp() == nil) != (n.GetDeletionTimestamp() == nil)
		},
	}
}

// typed reads an object as its Go type T.
func typed[T client.Object](obj client.Object) (T, bool) {
	t, ok := obj.(T)
	return t, ok
}

// startPasses runs, on the leader only, the full passes that policy changes and the resync
// period trigger. It is a controller source: it gets the controller's queue.
func (r *Reconciler) startPasses(ctx context.Context, q workqueue.TypedRateLimitingInterface[Request]) error {
	var tick <-chan time.Time
	if r.opts.ResyncPeriod > 0 {
		t := time.NewTicker(r.opts.ResyncPeriod)
		tick = t.C
		context.AfterFunc(ctx, t.Stop)
	}
	go func() {
		defer r.tracker.reset()
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.policyChanged:
				r.enqueueAll(ctx, q, "", "policy changed", r.room)
			case <-tick:
				r.enqueueAll(ctx, q, "", "resync", r.room)
			}
		}
	}()
	return nil
}

// enqueueAll queues every workload in the cache that needs a reconcile (needed), and every
// HorizontalPodAutoscaler and watched ScaledObject, in namespace ns ("" for all; a full pass
// first tries to start the ScaledObjects' watch). Compliant workloads cost a cache read and a
// decision each, no queue entry and no API request. room, when not nil, is asked before each
// workload is queued and paces the pass (Reconciler.room); false ends the pass there.
func (r *Reconciler) enqueueAll(ctx context.Context, q workqueue.TypedRateLimitingInterface[Request], ns, why string, room func(context.Context, workqueue.TypedRateLimitingInterface[Request]) bool) {
	logger := log.FromContext(ctx).WithValues("controller", ControllerName)
	n := 0
	add := func(gk schema.GroupKind, namespace, name string) {
		q.Add(Request{Kind: gk, NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}})
		n++
	}
	// The workloads' keys from the informers' indexes: a pass needs only the names, and a
	// List of the cache would copy every object into one slice.
	for _, k := range r.Kinds.Kinds() {
		keys, err := r.workloads.Keys(ctx, k, ns)
		if err != nil {
			logger.Error(err, "Listing workloads from the cache", "kind", k.Kind, "namespace", ns)
			continue
		}
		for _, key := range keys {
			namespace, name, err := toolscache.SplitMetaNamespaceKey(key)
			req := Request{Kind: k.GroupKind(), NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}}
			if err == nil && r.needed(ctx, req) {
				if room != nil && !room(ctx, q) {
					logger.V(1).Info("Pass ended early", "reason", why, "workloads", n)
					return
				}
				add(k.GroupKind(), namespace, name)
			}
		}
	}
	hpas := &autoscalingv2.HorizontalPodAutoscalerList{}
	if err := r.reader.List(ctx, hpas, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		logger.Error(err, "Listing HorizontalPodAutoscalers from the cache", "namespace", ns)
	}
	for i := range hpas.Items {
		add(AutoscalerGroupKind, hpas.Items[i].Namespace, hpas.Items[i].Name)
	}
	if ns == "" {
		r.watchScaledObjects(ctx)
	}
	r.enqueueScaledObjects(ctx, ns, add)
	logger.V(1).Info("Queued workloads for evaluation", "reason", why, "namespace", ns, "workloads", n)
}

// passQueueBound is how many ready requests a full pass leaves in the queue before it waits
// for the workers. A request in controller-runtime's priority queue holds about 500 bytes
// (its item, the queue's index and its metrics' timestamps: 5.0 MiB of heap with 10,000
// violators queued at once, in a heap profile of the correction storm), so a pass over
// 10,000 violators held all of them while the workers corrected 50 a second. 1,000 is 20
// seconds of corrections at the default --scaler-max-corrections-per-second: the workers
// do not wait for the pass.
const passQueueBound = 1000

// passQueuePoll is how often a waiting pass looks at the queue's length again.
const passQueuePoll = 100 * time.Millisecond

// room waits until q holds fewer than passQueueBound ready requests, so that a full pass
// over many violators queues them as the workers take them. It returns false when the pass
// should end instead: ctx ended, or the policy changed again, whose own full pass (signalled
// again here) evaluates every workload under the newer policy.
func (r *Reconciler) room(ctx context.Context, q workqueue.TypedRateLimitingInterface[Request]) bool {
	for q.Len() >= r.passQueueBound {
		select {
		case <-ctx.Done():
			return false
		case <-r.policyChanged:
			select {
			case r.policyChanged <- struct{}{}:
			default: // already signalled again
			}
			return false
		case <-time.After(passQueuePoll):
		}
	}
	return true
}

func int32PtrEqual(a, b *int32) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}
