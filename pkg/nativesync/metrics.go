package nativesync

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	inSync = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "replicapolicy_native_policies_in_sync",
		Help: "1 when the native admission policies and the webhook configuration's matchCondition are those of the policy in force (the last sync succeeded), 0 before the first sync and while the last one failed (the Syncer retries every 2 seconds).",
	})
	syncFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "replicapolicy_native_policies_sync_failures_total",
		Help: "Failed attempts to apply the native admission policies or to set the webhook configuration's matchCondition (API errors: missing rights, a missing webhook configuration).",
	})
)

var registerOnce sync.Once

// registerMetrics exports the metrics once a Syncer exists (New): a process without
// --native-policies exports no replicapolicy_native_policies_in_sync at all, rather than a 0
// that would read as "out of sync" to an alert.
func registerMetrics() {
	registerOnce.Do(func() { metrics.Registry.MustRegister(inSync, syncFailures) })
}
