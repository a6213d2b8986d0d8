package scaler

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// ReasonAutoscalerOutOfBounds (Warning): a HorizontalPodAutoscaler's range leaves the
// bounds of its target workload's rule, so that its scale writes are clamped and it reports
// sizes it never reaches (created before the policy tightened, or while the webhook was
// down). The scaler reports it once per range and rule, and never changes an HPA.
const ReasonAutoscalerOutOfBounds = "HPAOutOfBounds"

// ReasonScaledObjectOutOfBounds (Warning): a KEDA ScaledObject's range (or its
// idleReplicaCount) leaves the bounds of its target workload's rule, so that the HPA KEDA
// writes from it asks for sizes the bounds forbid. Reported as HPAOutOfBounds is; the
// scaler never changes a ScaledObject.
const ReasonScaledObjectOutOfBounds = "ScaledObjectOutOfBounds"

// AutoscalerGroupKind is the kind of the HorizontalPodAutoscalers the scaler reports on.
var AutoscalerGroupKind = schema.GroupKind{Group: "autoscaling", Kind: policy.AutoscalerKind}

// ScaledObjectGroupKind is the kind of KEDA's ScaledObjects, which the scaler reports on
// when their CRD is served and it may read them.
var ScaledObjectGroupKind = workload.ScaledObjectGroupKind

// reconcileAutoscaler evaluates one HorizontalPodAutoscaler (or KEDA ScaledObject) from the
// cache by the rule of its target workload, and reports it when its range is outside that
// rule's bounds.
func (r *Reconciler) reconcileAutoscaler(ctx context.Context, req Request) (reconcile.Result, error) {
	obj, decide, reason := r.autoscalerOf(req)
	if ok, err := r.present(req, obj, r.reader.Get(ctx, req.NamespacedName, obj)); !ok {
		return reconcile.Result{}, err
	}
	v, subj, ok, err := decide(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !ok { // a target of a kind that is not bounded
		r.tracker.inBounds(req, r.now())
		return reconcile.Result{}, nil
	}
	// A target or Namespace not in the cache yet: the resync, a policy change or the
	// autoscaler's next change evaluates it again.
	e := v.Effect(policy.AtScaler, obj.GetName(), subj, nil)
	if e.Kind != policy.Report {
		r.settled(ctx, req, e)
		return reconcile.Result{}, nil
	}
	r.report(ctx, req, obj, reason, v.Range.String(), e)
	return reconcile.Result{}, nil
}

// autoscalerOf returns, for req, an empty object of its kind to read into, the decision on
// that object once read, and the reason of its out-of-bounds Event.
func (r *Reconciler) autoscalerOf(req Request) (client.Object, func(context.Context) (policy.RangeVerdict, policy.Subject, bool, error), string) {
	snap := r.store.Snapshot()
	if req.Kind == ScaledObjectGroupKind {
		so := &workload.ScaledObject{}
		return so, func(ctx context.Context) (policy.RangeVerdict, policy.Subject, bool, error) {
			return workload.DecideScaledObject(ctx, r.reader, r.workloads, r.Kinds, snap, so)
		}, ReasonScaledObjectOutOfBounds
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	return hpa, func(ctx context.Context) (policy.RangeVerdict, policy.Subject, bool, error) {
		return workload.DecideAutoscaler(ctx, r.reader, r.workloads, r.Kinds, snap, hpa)
	}, ReasonAutoscalerOutOfBounds
}

// autoscalerChanged lets through updates that can change an HPA's verdict: its range, its
// target, deletion. Status updates, every sync period of every HPA, are dropped.
func autoscalerChanged() predicate.TypedPredicate[client.Object] {
	return changedWhen(typed[*autoscalingv2.HorizontalPodAutoscaler], func(o, n *autoscalingv2.HorizontalPodAutoscaler) bool {
		return !int32PtrEqual(o.Spec.MinReplicas, n.Spec.MinReplicas) || o.Spec.MaxReplicas != n.Spec.MaxReplicas ||
			o.Spec.ScaleTargetRef != n.Spec.ScaleTargetRef
	})
}

// scaledObjectChanged lets through updates that can change a ScaledObject's verdict: its
// range, its idle size, its target, deletion. Status updates are dropped.
func scaledObjectChanged() predicate.TypedPredicate[client.Object] {
	return changedWhen(typed[*workload.ScaledObject], func(o, n *workload.ScaledObject) bool {
		return o.Spec.Range() != n.Spec.Range() || o.Spec.ScaleTargetRef != n.Spec.ScaleTargetRef
	})
}

// scaledObjectWatch is the scaler's watch of KEDA's ScaledObjects, which it starts only
// once their CRD is served and it may list them (manifests/components/keda grants get, list
// and watch): without KEDA, or without that component, the scaler runs as it would
// otherwise, and lists, watches and reports no ScaledObject.
type scaledObjectWatch struct {
	controller controller.TypedController[Request]
	cache      cache.Cache
	apiReader  client.Reader
	scheme     *runtime.Scheme
	mu         sync.Mutex
	watched    atomic.Bool
}

// probeTimeout bounds the one List that tells whether ScaledObjects can be watched.
const probeTimeout = 10 * time.Second

// watchScaledObjects starts the watch of ScaledObjects if it has not started and they can
// be read now: a List of one ScaledObject straight from the API server succeeds (it fails
// when their CRD is not served, or the scaler may not list them). It is called at setup and
// before each full pass (policy change, resync), so a KEDA installed later is watched from
// the next one. It reports whether ScaledObjects are watched.
func (r *Reconciler) watchScaledObjects(ctx context.Context) bool {
	w := &r.scaledObjects
	if w.watched.Load() {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watched.Load() {
		return true
	}
	logger := log.FromContext(ctx).WithValues("controller", ControllerName)
	// The manager's scheme is shared with whoever made it, and read concurrently by its
	// clients: the scaler does not add to it. cmd/webhook's has ScaledObjects
	// (workload.AddScaledObjectToScheme); one without them watches none.
	if !w.scheme.Recognizes(workload.ScaledObjectGroupVersion.WithKind("ScaledObject")) {
		logger.V(1).Info("Not watching KEDA ScaledObjects: the manager's scheme does not know them")
		return false
	}
	probe, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := w.apiReader.List(probe, &workload.ScaledObjectList{}, client.Limit(1)); err != nil {
		logger.V(1).Info("Not watching KEDA ScaledObjects: they cannot be listed", "reason", err.Error())
		return false
	}
	src := source.TypedKind(w.cache, client.Object(&workload.ScaledObject{}), enqueueWorkload(ScaledObjectGroupKind, nil), scaledObjectChanged())
	if err := w.controller.Watch(src); err != nil {
		logger.Error(err, "Watching KEDA ScaledObjects")
		return false
	}
	logger.Info("Watching KEDA ScaledObjects")
	w.watched.Store(true)
	return true
}

// enqueueScaledObjects queues every ScaledObject in the cache in namespace ns ("" for
// all), when they are watched; add queues one.
func (r *Reconciler) enqueueScaledObjects(ctx context.Context, ns string, add func(schema.GroupKind, string, string)) {
	if !r.scaledObjects.watched.Load() {
		return
	}
	sos := &workload.ScaledObjectList{}
	if err := r.reader.List(ctx, sos, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Listing ScaledObjects from the cache", "namespace", ns)
	}
	for i := range sos.Items {
		add(ScaledObjectGroupKind, sos.Items[i].Namespace, sos.Items[i].Name)
	}
}
