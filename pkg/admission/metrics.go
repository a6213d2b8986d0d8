package admission

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "replicapolicy_admission_decisions_total",
	Help: "Admission decisions by webhook (mutate, validate), kind (Deployment, Scale, ConfigMap), rule, action (clamp, deny, warn) and outcome (allowed, unchanged, exempt, no_rule, unknown, clamped, denied, warned, not_handled, bad_request).",
}, []string{"webhook", "kind", "rule", "action", "outcome"})

func init() {
	metrics.Registry.MustRegister(decisions)
}

func observe(stage Stage, kind, rule, action, outcome string) {
	decisions.WithLabelValues(string(stage), kind, rule, action, outcome).Inc()
}
