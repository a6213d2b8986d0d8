package policystore

import "github.com/replica-policy/replica-policy/pkg/metrics"

// Reload results, the values of the "result" label of replicapolicy_policy_reloads_total.
const (
	ReloadValid   = "valid"
	ReloadInvalid = "invalid"
	ReloadAbsent  = "absent"
)

var (
	reloadsTotal  = metrics.CounterVec("replicapolicy_policy_reloads_total", []string{"result"}, "Policy ConfigMap changes seen, by result: valid (now in force), invalid (rejected, the last valid policy stays), absent (no ConfigMap: no bounds).")
	policyValid   = metrics.Gauge("replicapolicy_policy_valid", "1 when the policy ConfigMap's current content is in force, 0 when it is invalid and an older policy is enforced instead.")
	policyPresent = metrics.Gauge("replicapolicy_policy_present", "1 when the policy ConfigMap exists, 0 when it does not (no bounds are enforced).")
	policyRules   = metrics.Gauge("replicapolicy_policy_rules", "Rules in the policy in force, counting the default as one.")
	lastReload    = metrics.Gauge("replicapolicy_policy_last_reload_timestamp_seconds", "Unix time of the last policy ConfigMap change that was processed.")
)
