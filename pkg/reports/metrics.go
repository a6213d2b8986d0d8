package reports

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var writesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "replicapolicy_reports_writes_total",
	Help: "Requests that created, updated or deleted a policy report (openreports.io Report), whatever their outcome, by operation: with --reports at most one a second per namespace; without, the deletes of the reports an earlier --reports left.",
}, []string{"operation"})

var active = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "replicapolicy_reports_active",
	Help: "With --reports: 1 while the leader keeps the policy reports, 0 while it waits for the OpenReports CRD to be served (and on replicas that are not the leader).",
})

func init() { metrics.Registry.MustRegister(writesTotal, active) }
