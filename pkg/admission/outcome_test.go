package admission

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// decisionsTotal sums every series of the decisions counter.
func decisionsTotal(t *testing.T) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() { decisions.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		sum += value(t, m)
	}
	return sum
}

// value reads one counter.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}

// TestEveryExitRecordsOneOutcome: whichever way a request ends (bad request, not handled,
// a policy ConfigMap judged, a workload decided), the Handler records exactly one decision,
// with the outcome that says how it ended.
func TestEveryExitRecordsOneOutcome(t *testing.T) {
	const doc = header + "rules:\n- {name: cap, namespaces: [apps], maxReplicas: 5}\n- {name: strict, namespaces: [strict], maxReplicas: 5, action: deny}\n"
	store := mustStore(t, doc)
	ref := PolicyRef{Namespace: ownNamespace, Name: policy.DefaultConfigMapName}
	cm := func(data string) []byte {
		b, _ := json.Marshal(policyConfigMap(data))
		return b
	}
	policyWrite := func(data string) harness.Review {
		return harness.Review{UID: "u", Operation: admissionv1.Update, Namespace: ownNamespace, Name: policy.DefaultConfigMapName, Kind: "ConfigMap", Resource: "configmaps", Object: cm(data), OldObject: cm(doc)}
	}
	for _, tc := range []struct {
		name    string
		stage   Stage
		req     admission.Request
		kind    string
		outcome Outcome
	}{
		{"empty request", Mutate, admission.Request{}, "", OutcomeBadRequest},
		{"broken workload", Mutate, harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: "apps", Name: "web", Kind: "Deployment", Group: "apps", Resource: "deployments", Object: []byte(`{"spec":{"replicas":"x"}}`)}.Request(t), "Deployment", OutcomeBadRequest},
		{"other resource", Mutate, harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: "apps", Name: "p", Kind: "Pod", Resource: "pods", Object: []byte(`{}`)}.Request(t), "other", OutcomeNotHandled},
		{"DELETE of a workload", Validate, harness.Review{UID: "u", Operation: admissionv1.Delete, Namespace: "apps", Name: "web", Kind: "Deployment", Group: "apps", Resource: "deployments", OldObject: harness.DeploymentJSON("apps", "web", ptr.To(int32(1)), nil)}.Request(t), "Deployment", OutcomeNotHandled},
		{"another ConfigMap", Validate, harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: "apps", Name: "settings", Kind: "ConfigMap", Resource: "configmaps", Object: cm(doc)}.Request(t), "ConfigMap", OutcomeNotHandled},
		{"valid policy", Validate, policyWrite(doc).Request(t), "ConfigMap", OutcomeAllowed},
		{"invalid policy", Validate, policyWrite(header + "rules: [{name: x}]\n").Request(t), "ConfigMap", OutcomeDenied},
		{"clamped", Mutate, harness.DeploymentReview("u", "apps", "web", nil, ptr.To(int32(9)), nil).Request(t), "Deployment", OutcomeClamped},
		{"denied", Mutate, harness.DeploymentReview("u", "strict", "web", nil, ptr.To(int32(9)), nil).Request(t), "Deployment", OutcomeDenied},
		{"in bounds", Mutate, harness.DeploymentReview("u", "apps", "web", nil, ptr.To(int32(2)), nil).Request(t), "Deployment", OutcomeAllowed},
		{"unchanged", Validate, harness.DeploymentReview("u", "apps", "web", ptr.To(int32(9)), ptr.To(int32(9)), nil).Request(t), "Deployment", OutcomeUnchanged},
		{"no rule", Mutate, harness.ScaleReview("u", "elsewhere", "web", 1, 9).Request(t), "Deployment", OutcomeNoRule},
		{"HPA clamped", Mutate, harness.AutoscalerReview("u", nil, harness.HPA{Namespace: "apps", Name: "h", TargetKind: "Deployment", TargetName: "web", Max: 9}).Request(t), "HorizontalPodAutoscaler", OutcomeClamped},
		{"broken HPA", Mutate, harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: "apps", Name: "h", Kind: "HorizontalPodAutoscaler", Group: "autoscaling", Resource: "horizontalpodautoscalers", Object: []byte(`[]`)}.Request(t), "HorizontalPodAutoscaler", OutcomeBadRequest},
		{"HPA at /validate", Validate, harness.AutoscalerReview("u", nil, harness.HPA{Namespace: "apps", Name: "h", TargetKind: "Deployment", TargetName: "web", Max: 9}).Request(t), "HorizontalPodAutoscaler", OutcomeNotHandled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHandler(tc.stage, workload.Builtin(), store, newLookup(), ref)
			series := decisions.WithLabelValues(string(tc.stage), tc.kind, "", "", string(tc.outcome))
			if tc.outcome == OutcomeClamped || tc.outcome == OutcomeDenied && tc.kind != "ConfigMap" || tc.outcome == OutcomeAllowed && tc.kind != "ConfigMap" {
				rule, action := "cap", "clamp"
				if tc.name == "denied" {
					rule, action = "strict", "deny"
				}
				series = decisions.WithLabelValues(string(tc.stage), tc.kind, rule, action, string(tc.outcome))
			}
			before, seriesBefore := decisionsTotal(t), value(t, series)
			h.Handle(t.Context(), tc.req)
			if got := decisionsTotal(t) - before; got != 1 {
				t.Errorf("%v decisions recorded, want exactly 1", got)
			}
			if got := value(t, series) - seriesBefore; got != 1 {
				t.Errorf("the series for outcome %s grew by %v, want 1", tc.outcome, got)
			}
		})
	}
}

// TestPolicyConfigMapListsEveryError: an apply-time rejection of the policy ConfigMap lists
// the parsing and the validation errors together.
func TestPolicyConfigMapListsEveryError(t *testing.T) {
	ref := PolicyRef{Namespace: ownNamespace, Name: policy.DefaultConfigMapName}
	b, _ := json.Marshal(policyConfigMap(header + "rules:\n- {name: a, minReplicas: 3, maxReplicas: 2, maxReplica: 5}\n- {name: a, maxReplicas: \"3\"}\n"))
	req := harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: ownNamespace, Name: policy.DefaultConfigMapName, Kind: "ConfigMap", Resource: "configmaps", Object: b}.Request(t)
	resp := NewHandler(Validate, workload.Builtin(), mustStore(t, header), newLookup(), ref).Handle(t.Context(), req)
	if resp.Allowed {
		t.Fatal("an invalid policy was allowed")
	}
	for _, line := range []string{
		`rules[0].maxReplica: Forbidden: unknown field (did you mean "maxReplicas"?)`,
		`rules[0].maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (3)`,
		// A value of the wrong type hides nothing else.
		`rules[1].maxReplicas: Invalid value: "3": must be a whole number that fits in 32 bits, not a string`,
		`rules[1].name: Duplicate value: "a"`,
	} {
		if !strings.Contains(resp.Result.Message, "\n"+line) {
			t.Errorf("the rejection does not list %q:\n%s", line, resp.Result.Message)
		}
	}
}
