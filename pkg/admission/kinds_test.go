package admission

import (
	"slices"
	"strconv"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// The kinds beyond Deployment: StatefulSets, ReplicaSets and a custom resource, each on its
// object and its /scale, named by their real kind in messages and the metric; the kinds
// matcher; owned workloads.

var widgetGVK = schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}

func kindsSet(t *testing.T) *workload.Set {
	t.Helper()
	s, err := workload.NewSet(
		workload.Custom(widgetGVK, "widgets", []string{"spec", "replicas"}),
		workload.Custom(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Gadget"}, "gadgets", []string{"spec", "scale", "count"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func deploymentOwner(name string) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: "d-uid", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
}

func TestWorkloadKinds(t *testing.T) {
	const doc = header + `rules:
- {name: rs-min, namespaces: [prod], kinds: [ReplicaSet], minReplicas: 2}
- {name: db, namespaces: [prod], kinds: [StatefulSet], minReplicas: 3, maxReplicas: 7, action: deny}
- {name: widgets, namespaces: [prod], kinds: [Widget.example.com], maxReplicas: 4, action: warn}
- {name: web, namespaces: [prod], selector: {matchLabels: {tier: web}}, maxReplicas: 5}
- {name: rest, namespaces: [prod], maxReplicas: 10}
`
	kinds := kindsSet(t)
	store := mustStore(t, doc)
	gadgetJSON := func(n int32) []byte {
		return []byte(`{"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"g","namespace":"prod","labels":{"tier":"web"}},"spec":{"scale":{"count":` + strconv.Itoa(int(n)) + `},"replicas":"not this one"}}`)
	}
	for _, tc := range []struct {
		name     string
		review   harness.Review
		allowed  bool
		patch    *int32
		warnings []string
		outcome  Outcome
		kind     string
	}{
		{"StatefulSet create denied", harness.WorkloadReview("a1", "apps", "StatefulSet", "statefulsets", "prod", "db", nil, ptr.To(int32(12)), nil, nil),
			false, nil, nil, OutcomeDenied, "StatefulSet"},
		{"statefulsets/scale denied, named StatefulSet", harness.ScaleReviewOf("a2", "apps", "statefulsets", "prod", "db", 3, 9),
			false, nil, nil, OutcomeDenied, "StatefulSet"},
		{"ReplicaSet of its own clamped", harness.WorkloadReview("a3", "apps", "ReplicaSet", "replicasets", "prod", "solo", ptr.To(int32(3)), ptr.To(int32(0)), nil, nil),
			true, ptr.To(int32(2)), []string{`ReplicaSet "solo": spec.replicas 0 clamped to 2 by replica policy rule "rs-min"`}, OutcomeClamped, "ReplicaSet"},
		{"ReplicaSet of a Deployment is owned", harness.WorkloadReview("a4", "apps", "ReplicaSet", "replicasets", "prod", "web-1", ptr.To(int32(3)), ptr.To(int32(0)), nil, deploymentOwner("web")),
			true, nil, nil, OutcomeOwned, "ReplicaSet"},
		{"replicasets/scale of a Deployment's ReplicaSet is owned", harness.ScaleReviewOf("a5", "apps", "replicasets", "prod", "web-1", 3, 0),
			true, nil, nil, OutcomeOwned, "ReplicaSet"},
		{"replicasets/scale of a ReplicaSet of its own clamped", harness.ScaleReviewOf("a6", "apps", "replicasets", "prod", "solo", 3, 0),
			true, ptr.To(int32(2)), []string{`ReplicaSet "solo": spec.replicas 0 clamped to 2 by replica policy rule "rs-min"`}, OutcomeClamped, "ReplicaSet"},
		{"custom resource warned", harness.WorkloadReview("a7", "example.com", "Widget", "widgets", "prod", "w", nil, ptr.To(int32(6)), nil, nil),
			true, nil, []string{`Widget "w": spec.replicas: Invalid value: 6: must be within [0, 4] (replica policy rule "widgets", action warn)`}, OutcomeWarned, "Widget"},
		{"custom resource /scale warned, named Widget", harness.ScaleReviewOf("a8", "example.com", "widgets", "prod", "w", 1, 6),
			true, nil, []string{`Widget "w": spec.replicas: Invalid value: 6: must be within [0, 4] (replica policy rule "widgets", action warn)`}, OutcomeWarned, "Widget"},
		{"custom resource at .spec.scale.count, selector from its labels", harness.Review{UID: "a9", Operation: "CREATE", Namespace: "prod", Name: "g", Kind: "Gadget", Group: "example.com", Resource: "gadgets",
			KindGroup: "example.com", KindVersion: "v1", Object: gadgetJSON(8)},
			true, ptr.To(int32(5)), []string{`Gadget "g": spec.replicas 8 clamped to 5 by replica policy rule "web"`}, OutcomeClamped, "Gadget"},
		{"StatefulSet kinds do not match a Deployment", harness.DeploymentReview("a10", "prod", "other", nil, ptr.To(int32(12)), nil),
			true, ptr.To(int32(10)), []string{`Deployment "other": spec.replicas 12 clamped to 10 by replica policy rule "rest"`}, OutcomeClamped, "Deployment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := newLookup()
			lookup.workloads["prod/web-1"] = map[string]string{"app": "web"}
			lookup.controllers = map[string]*metav1.OwnerReference{"prod/web-1": deploymentOwner("web")}
			lookup.workloads["prod/solo"] = map[string]string{}
			lookup.workloads["prod/db"] = map[string]string{}
			lookup.workloads["prod/w"] = map[string]string{}
			h := NewHandler(Mutate, kinds, store, lookup, PolicyRef{})
			a := h.admit(tc.review.Request(t))
			resp := a.resp
			if resp.Allowed != tc.allowed || a.outcome != tc.outcome || a.kind != tc.kind {
				t.Fatalf("allowed %t outcome %s kind %s (%v); want %t %s %s", resp.Allowed, a.outcome, a.kind, resp.Result, tc.allowed, tc.outcome, tc.kind)
			}
			// The metric names the real kind, custom resources included.
			series := decisions.WithLabelValues(string(Mutate), tc.kind, a.rule, string(a.action), string(tc.outcome))
			before := value(t, series)
			observe(Mutate, kinds, a)
			if value(t, series)-before != 1 {
				t.Errorf("metric series kind=%s outcome=%s not counted", tc.kind, tc.outcome)
			}
			switch {
			case tc.patch == nil && len(resp.Patches) != 0:
				t.Errorf("patches %v, want none", resp.Patches)
			case tc.patch != nil && (len(resp.Patches) != 1 || resp.Patches[0].Value != any(float64(*tc.patch)) && resp.Patches[0].Value != any(*tc.patch)):
				t.Errorf("patches %+v, want spec.replicas %d", resp.Patches, *tc.patch)
			}
			if !slices.Equal(resp.Warnings, tc.warnings) {
				t.Errorf("warnings %q, want %q", resp.Warnings, tc.warnings)
			}
			if !tc.allowed {
				want := map[string]string{
					"StatefulSet create denied":                    `StatefulSet "db": spec.replicas: Invalid value: 12: must be within [3, 7] (replica policy rule "db", action deny)`,
					"statefulsets/scale denied, named StatefulSet": `StatefulSet "db": spec.replicas: Invalid value: 9: must be within [3, 7] (replica policy rule "db", action deny)`,
				}[tc.name]
				if resp.Result == nil || resp.Result.Message != want {
					t.Errorf("denial %v, want %q", resp.Result, want)
				}
			}
		})
	}
}
