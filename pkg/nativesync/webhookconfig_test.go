package nativesync

import (
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// The workload entries are those whose rules name a bounded workload resource or its /scale,
// but for the scale entries: the manifests' (scale.<entry>) and one an earlier build added
// (native-scale.<entry>), which an upgraded installation may still hold.
func TestWorkloadEntries(t *testing.T) {
	scale := func(name string) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{Name: name, Rules: []admissionregistrationv1.RuleWithOperations{{
			Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}}}}}
	}
	objects := admissionregistrationv1.MutatingWebhook{Name: "mutate.replicapolicy.io", Rules: []admissionregistrationv1.RuleWithOperations{{
		Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}}}}}
	hpa := admissionregistrationv1.MutatingWebhook{Name: "hpa.replicapolicy.io", Rules: []admissionregistrationv1.RuleWithOperations{{
		Rule: admissionregistrationv1.Rule{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}}}}}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{Webhooks: []admissionregistrationv1.MutatingWebhook{
		objects, scale("scale.mutate.replicapolicy.io"), hpa, scale("native-scale.mutate.replicapolicy.io"), scale("scales.example.com"),
	}}
	got := workloadEntries(mwc, policy.BuiltinWorkloadKinds)
	if want := []string{"mutate.replicapolicy.io", "scales.example.com"}; !slices.Equal(got, want) {
		t.Errorf("workloadEntries = %v, want %v", got, want)
	}
}
