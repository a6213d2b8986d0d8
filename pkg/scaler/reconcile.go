package scaler

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// Event reasons the scaler records on workloads.
const (
	// ReasonReplicasCorrected (Normal): the scaler moved spec.replicas inside the bounds of
	// a clamp rule; the note says old → new and the rule.
	ReasonReplicasCorrected = "ReplicasCorrected"
	// ReasonReplicasOutOfBounds (Warning): spec.replicas is outside the bounds of a deny or
	// warn rule, which the scaler reports and never changes; or, with --scaler-dry-run, of
	// a clamp rule, and the note says what the scaler would set. Once per value and rule.
	ReasonReplicasOutOfBounds = "ReplicasOutOfBounds"
	// ReasonReplicasContested (Warning): another writer (an HPA, a GitOps tool) keeps
	// setting spec.replicas outside the bounds; the scaler stops correcting for a while.
	ReasonReplicasContested = "ReplicasContested"
	// ReasonCorrectionFailed (Warning): the scale subresource could not be updated; the
	// scaler retries with a back-off.
	ReasonCorrectionFailed = "CorrectionFailed"
)

// Event actions (events.k8s.io/v1 Event.action: what the scaler did or failed to do).
const (
	actionScale   = "Scale"
	actionReport  = "Report"
	actionBackOff = "BackOff"
)

// Reconcile evaluates one workload from the cache and, when it is outside the bounds of a
// clamp rule, corrects it through its scale subresource.
func (r *Reconciler) Reconcile(ctx context.Context, req Request) (reconcile.Result, error) {
	defer r.reconciles.Add(1)
	if req.Kind == AutoscalerGroupKind || req.Kind == ScaledObjectGroupKind {
		return r.reconcileAutoscaler(ctx, req)
	}
	kind, ok := r.kinds[req.Kind]
	if !ok {
		return reconcile.Result{}, reconcile.TerminalError(fmt.Errorf("not a workload kind: %s", req.Kind))
	}
	obj, err := r.workloads.Get(ctx, kind, req.Namespace, req.Name)
	if ok, err := r.present(req, obj, err); !ok {
		return reconcile.Result{}, err
	}
	v, _, err := workload.Decide(ctx, r.reader, r.store.Snapshot(), kind, obj)
	if err != nil {
		return reconcile.Result{}, err
	}
	e := v.Effect(policy.AtScaler, policy.Subject{Kind: kind.Kind, Name: req.Name})
	switch e.Kind {
	case policy.Patch:
		if r.opts.DryRun {
			r.reportWouldCorrect(ctx, req, kind, obj, v)
			return reconcile.Result{}, nil
		}
		return r.correct(ctx, req, kind, obj, v)
	case policy.Report:
		r.report(ctx, req, obj, ReasonReplicasOutOfBounds, fmt.Sprint(v.Replicas), e)
	default:
		// An unknown Namespace's create event queues this workload again.
		r.settled(ctx, req, e)
	}
	return reconcile.Result{}, nil
}

// present says whether the object read for req (err, the read's error) is there to be
// evaluated; one deleted, or being deleted, is forgotten. Other errors are returned.
func (r *Reconciler) present(req Request, obj interface{ GetDeletionTimestamp() *metav1.Time }, err error) (bool, error) {
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, err
	case obj.GetDeletionTimestamp() == nil:
		return true, nil
	}
	r.tracker.forget(req)
	return false, nil
}

// settled records what an Allow effect says of req: exempt and owned are forgotten, in
// bounds and no rule recorded as compliant, unknown left for a later evaluation.
func (r *Reconciler) settled(ctx context.Context, req Request, e policy.Effect) {
	switch e.Outcome {
	case policy.OutcomeExempt, policy.OutcomeOwned:
		r.tracker.forget(req)
	case policy.OutcomeUnknown:
		log.FromContext(ctx).V(1).Info("Cannot evaluate yet", "rule", e.Rule.Name)
	default:
		r.tracker.inBounds(req, r.now())
	}
}

// correct moves the workload's replicas to the nearest bound with one conditional write of
// its scale subresource, unless another writer is contesting it: an UPDATE of the Scale with
// the resourceVersion the cache saw and the bound (updateScale). There is no read first; a
// workload that changed since the cache saw it is refused (the API server answers 409
// Conflict) and evaluated again from the cache: the scaler never raises (or lowers) a
// workload from a value it did not see.
func (r *Reconciler) correct(ctx context.Context, req Request, kind workload.Kind, obj *workload.Cached, v policy.Verdict) (reconcile.Result, error) {
	logger := log.FromContext(ctx)
	rule := v.Rule
	adm := r.tracker.admit(req, [2]string{rule.Name, string(rule.Action)}, [2]string{rule.Name, kind.Kind}, r.now())
	if adm.contested {
		r.contests.Add(1)
		contestsTotal.WithLabelValues(rule.Name, kind.Kind).Inc()
		note := fmt.Sprintf("spec.replicas keeps being set outside the bounds %s of replica policy rule %q: another writer (an HPA, a GitOps tool) set it back after %d corrections; corrections suspended for %s",
			rule.Bounds, rule.Name, adm.recent, adm.backoff)
		r.event(obj, rule.Name, corev1.EventTypeWarning, ReasonReplicasContested, actionBackOff, "%s", note)
		logger.Info("Another writer keeps setting replicas outside the bounds; backing off", "rule", rule.Name, "replicas", v.Replicas, "backoff", adm.backoff)
	}
	if !adm.ok {
		return reconcile.Result{RequeueAfter: adm.wait}, nil
	}

	from, to := v.Replicas, v.Want
	err := r.limiter.Wait(ctx)
	if err == nil {
		err = r.updateScale(ctx, req, kind, obj, to)
	}
	switch {
	case apierrors.IsNotFound(err):
		logger.V(1).Info("Workload deleted while being corrected")
		r.tracker.forget(req)
		return reconcile.Result{}, nil
	case err != nil && ctx.Err() != nil:
		return reconcile.Result{}, err // shutting down or lost leadership: not a failure
	case apierrors.IsConflict(err):
		r.tracker.notCorrected(req)
		r.moved.Add(1)
		movedTotal.Inc()
		logger.V(1).Info("Workload changed since the cache saw it; evaluating again from the cache", "seen", from, "resourceVersion", obj.GetResourceVersion())
		return reconcile.Result{RequeueAfter: movedRequeue}, nil
	case err != nil:
		r.tracker.notCorrected(req)
		r.failures.Add(1)
		correctionFailuresTotal.WithLabelValues(failureReason(err)).Inc()
		r.event(obj, rule.Name, corev1.EventTypeWarning, ReasonCorrectionFailed, actionScale,
			"could not set spec.replicas %d to %d for replica policy rule %q: %v", from, to, rule.Name, err)
		return reconcile.Result{}, fmt.Errorf("updating the scale of %s: %w", req, err)
	}
	r.corrections.Add(1)
	correctionsTotal.WithLabelValues(rule.Name, kind.Kind).Inc()
	r.event(obj, rule.Name, corev1.EventTypeNormal, ReasonReplicasCorrected, actionScale,
		"spec.replicas %d → %d by replica policy rule %q (bounds %s)", from, to, rule.Name, rule.Bounds)
	logger.Info("Corrected replicas", "rule", rule.Name, "from", from, "to", to)
	return reconcile.Result{}, nil
}

// report records req as outside the bounds of e's rule and, once per what (the value
// judged) and rule, the Report effect e (a workload outside the bounds of a deny or warn
// rule, an autoscaler outside its target's bounds) as an Event of reason on obj.
func (r *Reconciler) report(ctx context.Context, req Request, obj client.Object, reason, what string, e policy.Effect) {
	rule := e.Rule
	if !r.tracker.outOfBounds(req, [2]string{rule.Name, string(rule.Action)}, fmt.Sprintf("%s %s %s %s", rule.Name, rule.Action, rule.Bounds, what)) {
		return
	}
	r.event(obj, rule.Name, corev1.EventTypeWarning, reason, actionReport, "%s", e.Messages[0])
	log.FromContext(ctx).V(1).Info("Out of bounds", "rule", rule.Name, "action", rule.Action, "what", what)
}

// reportWouldCorrect records req as outside the bounds of v's rule and, once per value and
// rule, what a dry run would have changed.
func (r *Reconciler) reportWouldCorrect(ctx context.Context, req Request, kind workload.Kind, obj client.Object, v policy.Verdict) {
	rule := v.Rule
	if !r.tracker.outOfBounds(req, [2]string{rule.Name, string(rule.Action)}, fmt.Sprintf("%s %s %s %d dry-run", rule.Name, rule.Action, rule.Bounds, v.Replicas)) {
		return
	}
	dryRunWouldCorrectTotal.WithLabelValues(rule.Name, kind.Kind).Inc()
	r.event(obj, rule.Name, corev1.EventTypeWarning, ReasonReplicasOutOfBounds, actionReport,
		"dry run: spec.replicas would be set %d → %d by replica policy rule %q (bounds %s)", v.Replicas, v.Want, rule.Name, rule.Bounds)
	log.FromContext(ctx).Info("Dry run: would correct replicas", "rule", rule.Name, "from", v.Replicas, "to", v.Want)
}

// failureReason is the metric label for a failed correction: the API server's reason.
func failureReason(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if reason := status.Status().Reason; reason != metav1.StatusReasonUnknown {
			return string(reason)
		}
	}
	return "Unknown"
}
