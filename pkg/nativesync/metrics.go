package nativesync

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	inSync = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "replicapolicy_native_policies_in_sync",
		Help: "1 when the native admission policies are those of the policy in force, the API server enforces them and the webhook is narrowed to the rest; 0 before, while a sync fails (retried every 2 seconds) and while the probes cannot yet show the API server enforcing them (the webhook then decides everything).",
	})
	syncFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "replicapolicy_native_policies_sync_failures_total",
		Help: "Failed attempts to apply the native admission policies or the webhook configuration's fields (API errors: missing rights, a missing webhook configuration).",
	})
)

var registerOnce sync.Once

// registerMetrics exports the metrics once a Syncer exists (New): a process without
// --native-policies exports no replicapolicy_native_policies_in_sync at all, rather than a 0
// that would read as "out of sync" to an alert.
func registerMetrics() {
	registerOnce.Do(func() { metrics.Registry.MustRegister(inSync, syncFailures) })
}
