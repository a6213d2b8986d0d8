package scaler

import "github.com/replica-policy/replica-policy/pkg/metrics"

var (
	correctionsTotal         = metrics.CounterVec("replicapolicy_scaler_corrections_total", []string{"rule", "kind"}, "Workloads whose replicas the scaler moved inside their bounds, by rule and kind.")
	correctionFailuresTotal  = metrics.CounterVec("replicapolicy_scaler_correction_failures_total", []string{"reason"}, "Corrections that failed, by the API server's reason (Forbidden, Invalid, InternalError, ...; Unknown for errors without one).")
	scaleWritesTotal         = metrics.Counter("replicapolicy_scaler_scale_writes_total", "Writes the scaler sent to scale subresources, each a conditional UPDATE of the scale subresource carrying the resourceVersion the cache saw, whatever their outcome.")
	movedTotal               = metrics.Counter("replicapolicy_scaler_moved_total", "Conditional scale writes refused with 409 Conflict because the workload changed since the cache saw it (its replicas, labels or status); the workload is evaluated again from the cache, never raised from a value the scaler did not see.")
	settledTotal             = metrics.Counter("replicapolicy_scaler_settled_total", "Workloads a pass or a watch event found compliant in the cache and did not queue: evaluated without a reconcile (with controller_runtime_reconcile_total, every evaluation).")
	eventsSummarisedTotal    = metrics.CounterVec("replicapolicy_scaler_events_summarised_total", []string{"reason"}, "Events on workloads past the scaler's per-pass budget (--scaler-event-budget), not recorded on their workloads but counted in a summary Event on their Namespace, by reason.")
	outOfBounds              = metrics.GaugeVec("replicapolicy_scaler_out_of_bounds", []string{"rule", "action"}, "Workloads whose replicas are outside the bounds of the rule that matches them, by rule and action (clamp ones until corrected).")
	autoscalersOutOfBounds   = metrics.GaugeVec("replicapolicy_scaler_autoscalers_out_of_bounds", []string{"rule", "action"}, "HorizontalPodAutoscalers whose range [minReplicas, maxReplicas] leaves the bounds of their target workload's rule, by rule and action: their scale writes are clamped, and they report sizes they never reach. The scaler reports them (Event HPAOutOfBounds) and never changes them.")
	scaledObjectsOutOfBounds = metrics.GaugeVec("replicapolicy_scaler_scaledobjects_out_of_bounds", []string{"rule", "action"}, "KEDA ScaledObjects whose range [minReplicaCount, maxReplicaCount] (or idleReplicaCount) leaves the bounds of their target workload's rule, by rule and action: the HPA KEDA writes from them asks for sizes the bounds forbid. The scaler reports them (Event ScaledObjectOutOfBounds) and never changes them; present only where KEDA's CRD is served.")
	contestedGauge           = metrics.GaugeVec("replicapolicy_scaler_contested", []string{"rule", "kind"}, "Workloads the scaler has stopped correcting for a back-off, because another writer (an HPA, a GitOps tool) keeps setting their replicas outside the bounds, by rule and kind.")
	contestsTotal            = metrics.CounterVec("replicapolicy_scaler_contests_total", []string{"rule", "kind"}, "Times a workload was found contested by another writer and its corrections suspended, by rule and kind.")
	dryRunWouldCorrectTotal  = metrics.CounterVec("replicapolicy_scaler_dry_run_would_correct_total", []string{"rule", "kind"}, "In dry-run mode, corrections the scaler would have made, by rule and kind; counted once per workload, value and rule.")
)
