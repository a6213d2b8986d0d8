package scaler

import (
	"context"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// ReasonAutoscalerOutOfBounds (Warning): a HorizontalPodAutoscaler's range leaves the
// bounds of its target workload's rule, so that its scale writes are clamped and it reports
// sizes it never reaches (created before the policy tightened, or while the webhook was
// down). The scaler reports it once per range and rule, and never changes an HPA.
const ReasonAutoscalerOutOfBounds = "HPAOutOfBounds"

// AutoscalerGroupKind is the kind of the HorizontalPodAutoscalers the scaler reports on.
var AutoscalerGroupKind = schema.GroupKind{Group: "autoscaling", Kind: policy.AutoscalerKind}

// reconcileAutoscaler evaluates one HorizontalPodAutoscaler from the cache by the rule of
// its target workload, and reports it when its range is outside that rule's bounds.
func (r *Reconciler) reconcileAutoscaler(ctx context.Context, req Request) (reconcile.Result, error) {
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	if err := r.reader.Get(ctx, req.NamespacedName, hpa); err != nil {
		if apierrors.IsNotFound(err) {
			r.tracker.forget(req)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if hpa.DeletionTimestamp != nil {
		r.tracker.forget(req)
		return reconcile.Result{}, nil
	}
	v, subj, ok, err := workload.DecideAutoscaler(ctx, r.reader, r.workloads, r.Kinds, r.store.Snapshot(), hpa)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !ok { // a target of a kind that is not bounded
		r.tracker.inBounds(req, r.now())
		return reconcile.Result{}, nil
	}
	// A target or Namespace not in the cache yet: the resync, a policy change or the HPA's
	// next change evaluates it again.
	e := v.Effect(policy.AtScaler, hpa.Name, subj, nil)
	if e.Kind != policy.Report {
		r.settled(ctx, req, e)
		return reconcile.Result{}, nil
	}
	r.tracker.outOfBounds(req, e.Rule.Name, string(e.Rule.Action))
	r.report(ctx, req, hpa, ReasonAutoscalerOutOfBounds, v.Range.String(), e)
	return reconcile.Result{}, nil
}

// autoscalerChanged lets through updates that can change an HPA's verdict: its range, its
// target, deletion. Status updates, every sync period of every HPA, are dropped.
func autoscalerChanged() predicate.TypedPredicate[client.Object] {
	return predicate.TypedFuncs[client.Object]{
		UpdateFunc: func(e event.TypedUpdateEvent[client.Object]) bool {
			o, ok1 := e.ObjectOld.(*autoscalingv2.HorizontalPodAutoscaler)
			n, ok2 := e.ObjectNew.(*autoscalingv2.HorizontalPodAutoscaler)
			if !ok1 || !ok2 {
				return true
			}
			return !int32PtrEqual(o.Spec.MinReplicas, n.Spec.MinReplicas) || o.Spec.MaxReplicas != n.Spec.MaxReplicas ||
				o.Spec.ScaleTargetRef != n.Spec.ScaleTargetRef ||
				(o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil)
		},
	}
}
