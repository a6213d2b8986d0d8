package policystore

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Reload results, the values of the "result" label of replicapolicy_policy_reloads_total.
const (
	ReloadValid   = "valid"
	ReloadInvalid = "invalid"
	ReloadAbsent  = "absent"
)

var (
	reloadsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replicapolicy_policy_reloads_total",
		Help: "Policy ConfigMap changes seen, by result: valid (now in force), invalid (rejected, the last valid policy stays), absent (no ConfigMap: no bounds).",
	}, []string{"result"})
	policyValid = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "replicapolicy_policy_valid",
		Help: "1 when the policy ConfigMap's current content is in force, 0 when it is invalid and an older policy is enforced instead.",
	})
	policyPresent = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "replicapolicy_policy_present",
		Help: "1 when the policy ConfigMap exists, 0 when it does not (no bounds are enforced).",
	})
	policyRules = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "replicapolicy_policy_rules",
		Help: "Rules in the policy in force, counting the default as one.",
	})
	lastReload = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "replicapolicy_policy_last_reload_timestamp_seconds",
		Help: "Unix time of the last policy ConfigMap change that was processed.",
	})
)

func init() {
	metrics.Registry.MustRegister(reloadsTotal, policyValid, policyPresent, policyRules, lastReload)
}
