package policy

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestKindsValidation(t *testing.T) {
	for _, tc := range []struct {
		kind string
		want []wantErr // nil: valid
	}{
		{"Deployment", nil},
		{"StatefulSet", nil},
		{"ReplicaSet", nil},
		{"Rollout.argoproj.io", nil},
		{"CloneSet.apps.kruise.io", nil},
		{"deployment", []wantErr{{"rules[0].kinds[0]", field.ErrorTypeInvalid, `rules[0].kinds[0]: Invalid value: "deployment": must be one of Deployment, StatefulSet, ReplicaSet, or "Kind.group" for a custom resource (did you mean "Deployment"?)`}}},
		{"StatefulSets", []wantErr{{"rules[0].kinds[0]", field.ErrorTypeInvalid, `rules[0].kinds[0]: Invalid value: "StatefulSets": must be one of Deployment, StatefulSet, ReplicaSet, or "Kind.group" for a custom resource (did you mean "StatefulSet"?)`}}},
		{"CronJob", []wantErr{{"rules[0].kinds[0]", field.ErrorTypeInvalid, `rules[0].kinds[0]: Invalid value: "CronJob": must be one of Deployment, StatefulSet, ReplicaSet, or "Kind.group" for a custom resource`}}},
		{"Deployment.apps", []wantErr{{"rules[0].kinds[0]", field.ErrorTypeInvalid, `rules[0].kinds[0]: Invalid value: "Deployment.apps": built-in kinds are named without their group (did you mean "Deployment"?)`}}},
		{"rollout.argoproj.io", []wantErr{{"rules[0].kinds[0]", field.ErrorTypeInvalid, `rules[0].kinds[0]: Invalid value: "rollout.argoproj.io": the kind before the first "." must be a Kind name such as "Rollout"`}}},
		{"Rollout.Argo_Proj", []wantErr{{"rules[0].kinds[0]", field.ErrorTypeInvalid, `rules[0].kinds[0]: Invalid value: "Rollout.Argo_Proj": the group after the first ".": …`}}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			errs := loadErrs(t, header+"rules:\n- {name: r, maxReplicas: 3, kinds: ["+tc.kind+"]}\n")
			checkErrs(t, errs, tc.want)
		})
	}
	checkErrs(t, loadErrs(t, header+"rules:\n- {name: r, maxReplicas: 3, kinds: [Deployment, Deployment]}\n"),
		[]wantErr{{"rules[0].kinds[1]", field.ErrorTypeDuplicate, `rules[0].kinds[1]: Duplicate value: "Deployment"`}})
}

func TestKindsMatch(t *testing.T) {
	snap := mustLoad(t, header+`rules:
- {name: dbs, kinds: [StatefulSet], maxReplicas: 5}
- {name: rollouts, namespaces: [prod], kinds: [Rollout.argoproj.io], maxReplicas: 7}
- {name: rest, namespaces: [prod], maxReplicas: 9}
`, Options{})
	for _, tc := range []struct {
		group, kind, ns string
		rule            string
	}{
		{"apps", "StatefulSet", "dev", "dbs"},
		{"apps", "Deployment", "dev", ""},
		{"apps", "Deployment", "prod", "rest"},
		{"argoproj.io", "Rollout", "prod", "rollouts"},
		{"argoproj.io", "Rollout", "dev", ""},
		{"other.io", "StatefulSet", "dev", ""}, // a custom StatefulSet is not the built-in one
		{"", "", "prod", "rest"},               // no kind: only rules without kinds
	} {
		v := snap.Decide(Subject{Group: tc.group, Kind: tc.kind, Namespace: tc.ns}, nil)
		got := ""
		if v.Rule != nil {
			got = v.Rule.Name
		}
		if got != tc.rule {
			t.Errorf("%s.%s in %s: rule %q, want %q", tc.kind, tc.group, tc.ns, got, tc.rule)
		}
	}
}

// TestDecideOwned: a workload whose controller is a bounded workload is left to its owner,
// whatever the rules say; an exempt namespace stays exempt.
func TestDecideOwned(t *testing.T) {
	snap := mustLoad(t, header+"rules:\n- {name: floor, kinds: [ReplicaSet], minReplicas: 2}\n", Options{AlwaysExempt: []string{"own"}})
	zero := int32(0)
	owner := &Owner{Group: "apps", Kind: "Deployment", Name: "web"}
	if v := snap.Decide(Subject{Group: "apps", Kind: "ReplicaSet", Namespace: "prod", Owner: owner}, &zero); v.Outcome != OutcomeOwned || v.Rule != nil || v.Want != 0 {
		t.Errorf("owned ReplicaSet: %+v, want owned, no rule, want 0", v)
	}
	if v := snap.Decide(Subject{Group: "apps", Kind: "ReplicaSet", Namespace: "prod"}, &zero); v.Outcome != OutcomeOutOfBounds || v.Want != 2 {
		t.Errorf("a ReplicaSet of its own: %+v, want out of bounds, want 2", v)
	}
	if v := snap.Decide(Subject{Group: "apps", Kind: "ReplicaSet", Namespace: "own", Owner: owner}, &zero); v.Outcome != OutcomeExempt {
		t.Errorf("owned in an exempt namespace: %s, want exempt", v.Outcome)
	}
}
