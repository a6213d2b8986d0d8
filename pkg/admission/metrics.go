package admission

import (
	"github.com/replica-policy/replica-policy/pkg/metrics"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

var decisions = metrics.CounterVec("replicapolicy_admission_decisions_total", []string{"webhook", "kind", "rule", "action", "outcome"}, "Admission decisions by webhook (mutate, validate), kind (the workload kind, also for writes to its scale subresource; HorizontalPodAutoscaler; ConfigMap; other), rule, action (clamp, deny, warn) and outcome (allowed, unchanged, exempt, no_rule, unknown, clamped, denied, warned, not_handled, bad_request).")

var notReady = metrics.CounterVec("replicapolicy_admission_not_ready_total", []string{"webhook"}, "Admission requests answered with HTTP 503 because the policy had not been read yet, by webhook (mutate, validate); the webhook configuration's failurePolicy decided them.")

// observe records one answer: every request is counted once, whichever way it ended.
func observe(stage Stage, kinds *workload.Set, a answer) {
	decisions.WithLabelValues(string(stage), kindLabel(kinds, a.kind), a.rule, string(a.action), string(a.outcome)).Inc()
}

// kindLabel keeps the kind label to a known set. For a bad or unhandled request the kind
// is whatever the request says, and anything that reaches the webhook's port can say
// anything: every new value would be a new series, kept for the life of the process.
func kindLabel(kinds *workload.Set, kind string) string {
	switch kind {
	case "", "Scale", "ConfigMap", policy.AutoscalerKind:
		return kind
	}
	for _, k := range kinds.Kinds() {
		if k.Kind == kind {
			return kind
		}
	}
	return "other"
}
