package admission

import (
	"encoding/json"
	"slices"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// HorizontalPodAutoscalers at /mutate: decided by the rule of their target workload, with
// the range patched (clamp), rejected (deny) or warned about (warn).

const autoscalerPolicy = header + `rules:
- {name: db, namespaces: [prod], kinds: [StatefulSet], minReplicas: 3, maxReplicas: 7, action: deny}
- {name: canary, namespaces: [prod], selector: {matchLabels: {track: canary}}, maxReplicas: 4, action: warn}
- {name: batch, namespaces: [prod], selector: {matchLabels: {tier: batch}}, minReplicas: 2, maxReplicas: 6, allowZero: true}
- {name: prod-web, namespaces: [prod], minReplicas: 2, maxReplicas: 10}
`

func TestAutoscalers(t *testing.T) {
	store := mustStore(t, autoscalerPolicy)
	hpa := func(target string, lo *int32, hi int32) harness.HPA {
		return harness.HPA{Namespace: "prod", Name: "web-hpa", TargetKind: "Deployment", TargetName: target, Min: lo, Max: hi}
	}
	kedaOwned := hpa("web", ptr.To(int32(1)), 30)
	kedaOwned.Owner = &metav1.OwnerReference{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "web", UID: "k-uid", Controller: ptr.To(true)}
	statefulSet := hpa("db", ptr.To(int32(3)), 12)
	statefulSet.TargetKind = "StatefulSet"
	uncachedStatefulSet := statefulSet
	uncachedStatefulSet.TargetName = "db-new"
	pod := hpa("web", nil, 50)
	pod.TargetAPIVersion, pod.TargetKind = "v1", "ReplicationController"
	oldMetrics := hpa("web", ptr.To(int32(1)), 30)

	for _, tc := range []struct {
		name     string
		review   harness.Review
		allowed  bool
		patch    *policy.Range
		warnings []string
		message  string
		outcome  Outcome
		rule     string
	}{
		{name: "inside the bounds", review: harness.AutoscalerReview("h1", nil, hpa("web", ptr.To(int32(2)), 10)),
			allowed: true, outcome: OutcomeAllowed, rule: "prod-web"},
		{name: "max clamped", review: harness.AutoscalerReview("h2", nil, hpa("web", ptr.To(int32(2)), 30)),
			allowed: true, patch: &policy.Range{Min: 2, Max: 10}, outcome: OutcomeClamped, rule: "prod-web",
			warnings: []string{`HorizontalPodAutoscaler "web-hpa": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod-web"`}},
		{name: "omitted minReplicas is 1, clamped up", review: harness.AutoscalerReview("h3", nil, hpa("web", nil, 8)),
			allowed: true, patch: &policy.Range{Min: 2, Max: 8}, outcome: OutcomeClamped, rule: "prod-web",
			warnings: []string{`HorizontalPodAutoscaler "web-hpa": spec.minReplicas 1 clamped to 2 by replica policy rule "prod-web"`}},
		{name: "whole range above: min never above max", review: harness.AutoscalerReview("h4", nil, hpa("web", ptr.To(int32(20)), 30)),
			allowed: true, patch: &policy.Range{Min: 10, Max: 10}, outcome: OutcomeClamped, rule: "prod-web",
			warnings: []string{
				`HorizontalPodAutoscaler "web-hpa": spec.minReplicas 20 clamped to 10 by replica policy rule "prod-web"`,
				`HorizontalPodAutoscaler "web-hpa": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod-web"`,
			}},
		{name: "StatefulSet target denied by a kinds rule", review: harness.AutoscalerReview("h5", nil, statefulSet),
			outcome: OutcomeDenied, rule: "db",
			message: `HorizontalPodAutoscaler "web-hpa": spec.maxReplicas: Invalid value: 12: must be within [3, 7] (replica policy rule "db", action deny)`},
		{name: "target's labels from the cache: warn", review: harness.AutoscalerReview("h6", nil, hpa("canary", ptr.To(int32(1)), 9)),
			allowed: true, outcome: OutcomeWarned, rule: "canary",
			warnings: []string{`HorizontalPodAutoscaler "web-hpa": spec.maxReplicas: Invalid value: 9: must be within [0, 4] (replica policy rule "canary", action warn)`}},
		{name: "allowZero permits minReplicas 0", review: harness.AutoscalerReview("h7", nil, hpa("batch", ptr.To(int32(0)), 6)),
			allowed: true, outcome: OutcomeAllowed, rule: "batch"},
		{name: "target not cached: a selector rule first allows with a warning", review: harness.AutoscalerReview("h8", nil, hpa("new", ptr.To(int32(1)), 30)),
			allowed: true, outcome: OutcomeUnknown, rule: "canary",
			warnings: []string{`HorizontalPodAutoscaler "web-hpa": replica policy rule "canary" could not be checked: the workload labels of its target Deployment "new" are not in the webhook's cache yet; the scaler will report it if its range is outside [0, 4]`}},
		{name: "target not cached: a rule without selectors still decides", review: harness.AutoscalerReview("h8b", nil, uncachedStatefulSet),
			outcome: OutcomeDenied, rule: "db",
			message: `HorizontalPodAutoscaler "web-hpa": spec.maxReplicas: Invalid value: 12: must be within [3, 7] (replica policy rule "db", action deny)`},
		{name: "controlled by KEDA: warned, never patched", review: harness.AutoscalerReview("h9", nil, kedaOwned),
			allowed: true, outcome: OutcomeWarned, rule: "prod-web",
			warnings: []string{`HorizontalPodAutoscaler "web-hpa": controlled by ScaledObject "web", which would write its range back, so it is not clamped: its range [1, 30] is outside the bounds [2, 10] of replica policy rule "prod-web"; its scale writes are clamped`}},
		{name: "update leaving range and target alone is never denied", review: harness.AutoscalerReview("h10", &statefulSet, statefulSet),
			allowed: true, outcome: OutcomeUnchanged},
		{name: "update moving the range is decided", review: harness.AutoscalerReview("h11", &oldMetrics, hpa("web", ptr.To(int32(1)), 40)),
			allowed: true, patch: &policy.Range{Min: 2, Max: 10}, outcome: OutcomeClamped, rule: "prod-web",
			warnings: []string{
				`HorizontalPodAutoscaler "web-hpa": spec.minReplicas 1 clamped to 2 by replica policy rule "prod-web"`,
				`HorizontalPodAutoscaler "web-hpa": spec.maxReplicas 40 clamped to 10 by replica policy rule "prod-web"`,
			}},
		{name: "target of a kind that is not bounded", review: harness.AutoscalerReview("h12", nil, pod),
			allowed: true, outcome: OutcomeNoRule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := newLookup()
			lookup.workloads["prod/canary"] = map[string]string{"track": "canary"}
			lookup.workloads["prod/batch"] = map[string]string{"tier": "batch"}
			lookup.workloads["prod/db"] = map[string]string{}
			mutate, _ := NewHandlers(workload.Builtin(), store, lookup, PolicyRef{})
			a := mutate.admit(tc.review.Request(t))
			resp := a.resp
			if resp.Allowed != tc.allowed || a.outcome != tc.outcome || a.rule != tc.rule || a.kind != "HorizontalPodAutoscaler" {
				t.Fatalf("allowed %t outcome %s rule %q kind %s (%v); want %t %s %q", resp.Allowed, a.outcome, a.rule, a.kind, resp.Result, tc.allowed, tc.outcome, tc.rule)
			}
			if got := patchedRangeOf(t, resp.Patches); (got == nil) != (tc.patch == nil) || (got != nil && *got != *tc.patch) {
				t.Errorf("patched range %v, want %v (patches %+v)", got, tc.patch, resp.Patches)
			}
			if !slices.Equal(resp.Warnings, tc.warnings) {
				t.Errorf("warnings\n got %q\nwant %q", resp.Warnings, tc.warnings)
			}
			if !tc.allowed && (resp.Result == nil || resp.Result.Message != tc.message || resp.Result.Code != 422) {
				t.Errorf("denial %+v, want 422 %q", resp.Result, tc.message)
			}
		})
	}
}

// patchedRangeOf reads the range a response's patch sets; it fails the test for a patch of
// any other path, since the HPA adapter may write those two fields only.
func patchedRangeOf(t *testing.T, patches []jsonpatch.JsonPatchOperation) *policy.Range {
	t.Helper()
	if len(patches) == 0 {
		return nil
	}
	r := &policy.Range{}
	for _, p := range patches {
		b, _ := json.Marshal(p.Value)
		var v int32
		if err := json.Unmarshal(b, &v); err != nil || p.Operation != "add" {
			t.Fatalf("patch %+v", p)
		}
		switch p.Path {
		case "/spec/minReplicas":
			r.Min = v
		case "/spec/maxReplicas":
			r.Max = v
		default:
			t.Fatalf("patch of %s: only the range may be patched", p.Path)
		}
	}
	return r
}

// The HPA adapter serves /mutate only: /validate is not registered for HPAs, and a
// misconfigured one is told so rather than judged twice.
func TestAutoscalersNotAtValidate(t *testing.T) {
	_, validate := NewHandlers(workload.Builtin(), mustStore(t, autoscalerPolicy), newLookup(), PolicyRef{})
	a := validate.admit(harness.AutoscalerReview("v1", nil, harness.HPA{Namespace: "prod", Name: "x", TargetKind: "Deployment", TargetName: "web", Max: 50}).Request(t))
	if !a.resp.Allowed || a.outcome != OutcomeNotHandled || len(a.resp.Warnings) != 1 {
		t.Fatalf("allowed %t outcome %s warnings %q", a.resp.Allowed, a.outcome, a.resp.Warnings)
	}
}

func TestAutoscalerBadRequests(t *testing.T) {
	mutate, _ := NewHandlers(workload.Builtin(), mustStore(t, autoscalerPolicy), newLookup(), PolicyRef{})
	good := harness.AutoscalerReview("b0", nil, harness.HPA{Namespace: "prod", Name: "x", TargetKind: "Deployment", TargetName: "web", Max: 50})
	for name, mutateReview := range map[string]func(*harness.Review){
		"no object":            func(r *harness.Review) { r.Object = nil },
		"maxReplicas a string": func(r *harness.Review) { r.Object = []byte(`{"spec":{"maxReplicas":"ten"}}`) },
		"update without oldObject": func(r *harness.Review) {
			r.Operation = "UPDATE"
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := good
			mutateReview(&r)
			a := mutate.admit(r.Request(t))
			if a.resp.Allowed || a.outcome != OutcomeBadRequest || a.resp.Result.Code != 400 {
				t.Fatalf("allowed %t outcome %s result %+v", a.resp.Allowed, a.outcome, a.resp.Result)
			}
		})
	}
}
