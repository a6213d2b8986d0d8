package scaler

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	correctionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replicapolicy_scaler_corrections_total",
		Help: "Workloads whose replicas the scaler moved inside their bounds, by rule and kind.",
	}, []string{"rule", "kind"})
	correctionFailuresTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replicapolicy_scaler_correction_failures_total",
		Help: "Corrections that failed, by the API server's reason (Forbidden, Invalid, InternalError, ...; Unknown for errors without one).",
	}, []string{"reason"})
	scaleWritesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "replicapolicy_scaler_scale_writes_total",
		Help: "Conditional writes (PATCH) the scaler sent to scale subresources, whatever their outcome.",
	})
	movedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "replicapolicy_scaler_moved_total",
		Help: "Conditional scale writes refused because the workload's replicas had changed since the cache saw them; the workload is evaluated again from the cache, never raised from a value the scaler did not see.",
	})
	settledTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "replicapolicy_scaler_settled_total",
		Help: "Workloads a pass or a watch event found compliant in the cache and did not queue: evaluated without a reconcile (with controller_runtime_reconcile_total, every evaluation).",
	})
	eventsSummarisedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replicapolicy_scaler_events_summarised_total",
		Help: "Events on workloads past the scaler's per-pass budget (--scaler-event-budget), not recorded on their workloads but counted in a summary Event on their Namespace, by reason.",
	}, []string{"reason"})
	outOfBounds = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "replicapolicy_scaler_out_of_bounds",
		Help: "Workloads whose replicas are outside the bounds of the rule that matches them, by rule and action (clamp ones until corrected).",
	}, []string{"rule", "action"})
	autoscalersOutOfBounds = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "replicapolicy_scaler_autoscalers_out_of_bounds",
		Help: "HorizontalPodAutoscalers whose range [minReplicas, maxReplicas] leaves the bounds of their target workload's rule, by rule and action: their scale writes are clamped, and they report sizes they never reach. The scaler reports them (Event HPAOutOfBounds) and never changes them.",
	}, []string{"rule", "action"})
	scaledObjectsOutOfBounds = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "replicapolicy_scaler_scaledobjects_out_of_bounds",
		Help: "KEDA ScaledObjects whose range [minReplicaCount, maxReplicaCount] (or idleReplicaCount) leaves the bounds of their target workload's rule, by rule and action: the HPA KEDA writes from them asks for sizes the bounds forbid. The scaler reports them (Event ScaledObjectOutOfBounds) and never changes them; present only where KEDA's CRD is served.",
	}, []string{"rule", "action"})
	contestedGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "replicapolicy_scaler_contested",
		Help: "Workloads the scaler has stopped correcting for a back-off, because another writer (an HPA, a GitOps tool) keeps setting their replicas outside the bounds, by rule and kind.",
	}, []string{"rule", "kind"})
	contestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replicapolicy_scaler_contests_total",
		Help: "Times a workload was found contested by another writer and its corrections suspended, by rule and kind.",
	}, []string{"rule", "kind"})
	dryRunWouldCorrectTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replicapolicy_scaler_dry_run_would_correct_total",
		Help: "In dry-run mode, corrections the scaler would have made, by rule and kind; counted once per workload, value and rule.",
	}, []string{"rule", "kind"})
)

func init() {
	metrics.Registry.MustRegister(correctionsTotal, correctionFailuresTotal, scaleWritesTotal, movedTotal, settledTotal, eventsSummarisedTotal,
		outOfBounds, autoscalersOutOfBounds, scaledObjectsOutOfBounds, contestedGauge, contestsTotal, dryRunWouldCorrectTotal)
}
