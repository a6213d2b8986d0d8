package reports

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var writesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "replicapolicy_reports_writes_total",
	Help: "Requests that created, updated or deleted a policy report (openreports.io Report), whatever their outcome, by operation; at most one a second per namespace.",
}, []string{"operation"})

func init() { metrics.Registry.MustRegister(writesTotal) }
