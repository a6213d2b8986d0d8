package scaler

import (
	"context"
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/replica-policy/replica-policy/pkg/policy"
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
	subj, ok, err := r.autoscalerTarget(ctx, hpa)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !ok { // a target of a kind that is not bounded
		r.tracker.inBounds(req, r.now())
		return reconcile.Result{}, nil
	}
	snap := r.store.Snapshot()
	rng := policy.Range{Min: policy.Replicas(hpa.Spec.MinReplicas), Max: hpa.Spec.MaxReplicas}
	v := snap.DecideRange(subj, rng)
	if v.Missing == policy.MissingNamespaceLabels {
		if ok, err := r.namespaceLabels(ctx, &subj); err != nil {
			return reconcile.Result{}, err
		} else if ok {
			v = snap.DecideRange(subj, rng)
		}
	}
	// A target or Namespace not in the cache yet: the resync, a policy change or the HPA's
	// next change evaluates it again.
	if !r.outOfBounds(ctx, req, v.Outcome, v.Rule, v.Missing) {
		return reconcile.Result{}, nil
	}
	rule := v.Rule
	r.tracker.outOfBounds(req, rule.Name, string(rule.Action))
	if !r.tracker.firstReport(req, fmt.Sprintf("%s %s %s %s", rule.Name, rule.Action, rule.Bounds, v.Range)) {
		return reconcile.Result{}, nil
	}
	r.Recorder.Eventf(hpa, nil, corev1.EventTypeWarning, ReasonAutoscalerOutOfBounds, actionReport,
		"%s: its scale writes are clamped to the bounds and it reports sizes it never reaches; set its range inside the bounds (the scaler never changes an HPA)",
		v.OutOfBoundsMessage(hpa.Name))
	log.FromContext(ctx).V(1).Info("HorizontalPodAutoscaler out of bounds", "rule", rule.Name, "action", rule.Action, "range", v.Range.String())
	return reconcile.Result{}, nil
}

// autoscalerTarget is the policy's subject for hpa's scaleTargetRef, with its labels and
// controller from the cache (unknown when it is not cached). ok is false for a target of a
// kind the scaler does not bound.
func (r *Reconciler) autoscalerTarget(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler) (subj policy.Subject, ok bool, err error) {
	ref := hpa.Spec.ScaleTargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return subj, false, nil
	}
	kind, ok := r.Kinds.ForGroupKind(gv.Group, ref.Kind)
	if !ok {
		return subj, false, nil
	}
	subj = policy.Subject{Group: kind.Group, Kind: kind.Kind, Namespace: hpa.Namespace, Name: ref.Name, NamespaceLabelsUnknown: true}
	switch target, err := r.workloads.Get(ctx, kind, hpa.Namespace, ref.Name); {
	case apierrors.IsNotFound(err):
		subj.LabelsUnknown = true
	case err != nil:
		return subj, false, err
	default:
		subj.Labels = target.GetLabels()
		if ctl := target.Controller(); ctl != nil {
			subj.Owner = ownerOf(ctl)
		}
	}
	return subj, true, nil
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

// trimAutoscaler keeps of a cached HPA what the scaler reads: its identity, owners,
// deletion, target and range. Metrics, behavior and status (rewritten every sync period)
// are dropped.
func trimAutoscaler(obj any) (any, error) {
	hpa, ok := obj.(*autoscalingv2.HorizontalPodAutoscaler)
	if !ok {
		return obj, nil
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta: hpa.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Namespace: hpa.Namespace, Name: hpa.Name, UID: hpa.UID, ResourceVersion: hpa.ResourceVersion,
			CreationTimestamp: hpa.CreationTimestamp, DeletionTimestamp: hpa.DeletionTimestamp,
			OwnerReferences: hpa.OwnerReferences,
		},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: hpa.Spec.ScaleTargetRef,
			MinReplicas:    hpa.Spec.MinReplicas,
			MaxReplicas:    hpa.Spec.MaxReplicas,
		},
	}, nil
}
