package admission

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// KEDA's ScaledObjects at /mutate: their range (spec.minReplicaCount, KEDA's default 0;
// spec.maxReplicaCount, default 100) is decided as an HPA's, by the rule of
// spec.scaleTargetRef (kind default Deployment), and patched in those two fields.

const scaledObjectPolicy = header + `rules:
- {name: queues, namespaces: [prod], kinds: [StatefulSet], maxReplicas: 5, action: deny}
- {name: workers, namespaces: [prod], selector: {matchLabels: {tier: worker}}, minReplicas: 2, maxReplicas: 20, allowZero: true}
- {name: prod-web, namespaces: [prod], minReplicas: 2, maxReplicas: 10}
- {name: dev, namespaces: [dev], maxReplicas: 3, action: warn}
- {name: strict, namespaces: [strict], minReplicas: 2, maxReplicas: 10, action: deny}
`

// scaledObjectReview is the AdmissionReview of a ScaledObject's CREATE (or, with old, its
// UPDATE); spec is the ScaledObject's spec as JSON.
func scaledObjectReview(uid, namespace, spec string, old string) harness.Review {
	obj := func(spec string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","metadata":{"name":"so","namespace":%q},"spec":%s}`, namespace, spec))
	}
	r := harness.Review{UID: uid, Operation: admissionv1.Create, Namespace: namespace, Name: "so", Kind: "ScaledObject",
		Group: "keda.sh", Resource: "scaledobjects", KindGroup: "keda.sh", KindVersion: "v1alpha1", Object: obj(spec)}
	if old != "" {
		r.Operation, r.OldObject = admissionv1.Update, obj(old)
	}
	return r
}

func TestScaledObjects(t *testing.T) {
	store := mustStore(t, scaledObjectPolicy)
	for _, tc := range []struct {
		name, namespace, spec, old string
		allowed                    bool
		patch                      map[string]int32
		removed                    bool // the patch removes spec.idleReplicaCount
		warnings                   []string
		message                    string
		outcome                    Outcome
	}{
		{name: "KEDA's defaults [0, 100] clamped to [2, 10]", namespace: "prod", spec: `{"scaleTargetRef":{"name":"web"}}`,
			allowed: true, outcome: OutcomeClamped, patch: map[string]int32{"/spec/minReplicaCount": 2, "/spec/maxReplicaCount": 10},
			warnings: []string{
				`ScaledObject "so": spec.minReplicaCount 0 clamped to 2 by replica policy rule "prod-web"`,
				`ScaledObject "so": spec.maxReplicaCount 100 clamped to 10 by replica policy rule "prod-web"`,
			}},
		{name: "inside the bounds", namespace: "prod", spec: `{"scaleTargetRef":{"name":"web"},"minReplicaCount":3,"maxReplicaCount":10}`,
			allowed: true, outcome: OutcomeAllowed},
		{name: "0 under allowZero, by the target's labels from the cache", namespace: "prod",
			spec:    `{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"worker"},"minReplicaCount":0,"maxReplicaCount":20}`,
			allowed: true, outcome: OutcomeAllowed},
		{name: "a StatefulSet target's deny rule", namespace: "prod",
			spec:    `{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"StatefulSet","name":"q"},"minReplicaCount":1,"maxReplicaCount":30}`,
			outcome: OutcomeDenied, message: `ScaledObject "so": spec.maxReplicaCount: Invalid value: 30: must be within [0, 5] (replica policy rule "queues", action deny)`},
		{name: "warn", namespace: "dev", spec: `{"scaleTargetRef":{"name":"web"},"maxReplicaCount":8}`,
			allowed: true, outcome: OutcomeWarned,
			warnings: []string{`ScaledObject "so": spec.maxReplicaCount: Invalid value: 8: must be within [0, 3] (replica policy rule "dev", action warn)`}},
		{name: "an update that leaves the range and the target alone", namespace: "prod",
			spec: `{"scaleTargetRef":{"name":"web"},"pollingInterval":5}`, old: `{"scaleTargetRef":{"name":"web"}}`,
			allowed: true, outcome: OutcomeUnchanged},
		// spec.idleReplicaCount, where set, is decided as the two ends are.
		{name: "idle 0 under allowZero", namespace: "prod",
			spec:    `{"scaleTargetRef":{"name":"worker"},"idleReplicaCount":0,"minReplicaCount":2,"maxReplicaCount":20}`,
			allowed: true, outcome: OutcomeAllowed},
		{name: "idle 0 without allowZero, min above the bound: set to the bound", namespace: "prod",
			spec:    `{"scaleTargetRef":{"name":"web"},"idleReplicaCount":0,"minReplicaCount":4,"maxReplicaCount":10}`,
			allowed: true, outcome: OutcomeClamped, patch: map[string]int32{"/spec/minReplicaCount": 4, "/spec/maxReplicaCount": 10, "/spec/idleReplicaCount": 2},
			warnings: []string{`ScaledObject "so": spec.idleReplicaCount 0 clamped to 2 by replica policy rule "prod-web"`}},
		{name: "idle 0 without allowZero, min at the bound: removed", namespace: "prod",
			spec:    `{"scaleTargetRef":{"name":"web"},"idleReplicaCount":0,"minReplicaCount":2,"maxReplicaCount":10}`,
			allowed: true, outcome: OutcomeClamped, patch: map[string]int32{"/spec/minReplicaCount": 2, "/spec/maxReplicaCount": 10}, removed: true,
			warnings: []string{`ScaledObject "so": spec.idleReplicaCount 0 removed by replica policy rule "prod-web": its nearest bound 2 is not below spec.minReplicaCount 2, as KEDA requires, so the ScaledObject idles at spec.minReplicaCount`}},
		{name: "idle inside a deny rule's bounds", namespace: "prod",
			spec:    `{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"StatefulSet","name":"q"},"idleReplicaCount":0,"minReplicaCount":1,"maxReplicaCount":5}`,
			allowed: true, outcome: OutcomeAllowed},
		{name: "idle denied", namespace: "strict",
			spec:    `{"scaleTargetRef":{"name":"web"},"idleReplicaCount":0,"minReplicaCount":3,"maxReplicaCount":10}`,
			outcome: OutcomeDenied, message: `ScaledObject "so": spec.idleReplicaCount: Invalid value: 0: must be within [2, 10] (replica policy rule "strict", action deny)`},
		{name: "idle warned", namespace: "dev", spec: `{"scaleTargetRef":{"name":"web"},"idleReplicaCount":4,"minReplicaCount":5,"maxReplicaCount":6}`,
			allowed: true, outcome: OutcomeWarned,
			warnings: []string{`ScaledObject "so": spec.minReplicaCount: Invalid value: 5: must be within [0, 3] (replica policy rule "dev", action warn); ` +
				`ScaledObject "so": spec.maxReplicaCount: Invalid value: 6: must be within [0, 3] (replica policy rule "dev", action warn); ` +
				`ScaledObject "so": spec.idleReplicaCount: Invalid value: 4: must be within [0, 3] (replica policy rule "dev", action warn)`}},
		{name: "an update that changes the idle size alone is decided", namespace: "prod",
			spec:    `{"scaleTargetRef":{"name":"web"},"idleReplicaCount":1,"minReplicaCount":4,"maxReplicaCount":10}`,
			old:     `{"scaleTargetRef":{"name":"web"},"idleReplicaCount":2,"minReplicaCount":4,"maxReplicaCount":10}`,
			allowed: true, outcome: OutcomeClamped, patch: map[string]int32{"/spec/minReplicaCount": 4, "/spec/maxReplicaCount": 10, "/spec/idleReplicaCount": 2},
			warnings: []string{`ScaledObject "so": spec.idleReplicaCount 1 clamped to 2 by replica policy rule "prod-web"`}},
		{name: "idle not below min is left to KEDA", namespace: "prod",
			spec:    `{"scaleTargetRef":{"name":"web"},"idleReplicaCount":3,"minReplicaCount":3,"maxReplicaCount":10}`,
			allowed: true, outcome: OutcomeAllowed},
		{name: "a target of a kind that is not bounded", namespace: "prod",
			spec:    `{"scaleTargetRef":{"apiVersion":"example.com/v1","kind":"Widget","name":"w"},"maxReplicaCount":50}`,
			allowed: true, outcome: OutcomeNoRule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := newLookup()
			lookup.workloads["prod/worker"] = map[string]string{"tier": "worker"}
			lookup.workloads["prod/web"] = map[string]string{}
			mutate, validate := NewHandlers(workload.Builtin(), store, lookup, PolicyRef{})
			a := mutate.admit(scaledObjectReview("s-"+tc.name, tc.namespace, tc.spec, tc.old).Request(t))
			resp := a.resp
			if resp.Allowed != tc.allowed || a.outcome != tc.outcome || a.kind != policy.ScaledObjectKind {
				t.Fatalf("allowed %t outcome %s kind %s (%v); want %t %s", resp.Allowed, a.outcome, a.kind, resp.Result, tc.allowed, tc.outcome)
			}
			got, removed := map[string]int32{}, false
			for _, p := range resp.Patches {
				if p.Operation == "remove" && p.Path == "/spec/idleReplicaCount" {
					removed = true
					continue
				}
				v, ok := p.Value.(int32)
				if !ok || p.Operation != "add" {
					t.Fatalf("patch %+v: only adds of the two ends", p)
				}
				got[p.Path] = v
			}
			if len(got) != len(tc.patch) || (tc.patch != nil && fmt.Sprint(got) != fmt.Sprint(tc.patch)) || removed != tc.removed {
				t.Errorf("patches %v (idle removed %t), want %v (%t)", got, removed, tc.patch, tc.removed)
			}
			if !slices.Equal(resp.Warnings, tc.warnings) {
				t.Errorf("warnings\n got %q\nwant %q", resp.Warnings, tc.warnings)
			}
			if !tc.allowed && (resp.Result == nil || resp.Result.Message != tc.message || resp.Result.Code != 422) {
				t.Errorf("denial %+v, want 422 %q", resp.Result, tc.message)
			}
			// /validate does not decide ScaledObjects: /mutate already did, once per write.
			if v := validate.admit(scaledObjectReview("v-"+tc.name, tc.namespace, tc.spec, tc.old).Request(t)); v.outcome != OutcomeNotHandled {
				t.Errorf("/validate: outcome %s, want not_handled", v.outcome)
			}
		})
	}
}
