package harness

import (
	"fmt"
	"math/rand/v2"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// RandomPolicy is a small valid policy for the equivalence tests, which compare two
// deciders of the same policy (the plugin's check and the webhook, the native policies and
// the webhook): up to four rules over the namespaces a, b, c and team-*, with kinds,
// namespace selectors on env and selectors on app, bounds within [0, 10], any action; a
// default half the time, and namespace ex exempt half the time.
func RandomPolicy(rng *rand.Rand) *policy.ReplicaPolicy {
	i32 := func(v int32) *int32 { return &v }
	bounds := func() policy.BoundsSpec {
		var b policy.BoundsSpec
		for b.MinReplicas == nil && b.MaxReplicas == nil {
			if rng.IntN(3) != 0 {
				b.MinReplicas = i32([]int32{0, 1, 2, 3}[rng.IntN(4)])
			}
			if rng.IntN(3) != 0 {
				b.MaxReplicas = i32([]int32{3, 4, 5, 10}[rng.IntN(4)])
			}
		}
		if b.MinReplicas != nil && b.MaxReplicas != nil && *b.MinReplicas > *b.MaxReplicas {
			b.MinReplicas, b.MaxReplicas = b.MaxReplicas, b.MinReplicas
		}
		b.AllowZero = rng.IntN(4) == 0
		b.Action = []policy.Action{"", policy.ActionClamp, policy.ActionDeny, policy.ActionWarn}[rng.IntN(4)]
		return b
	}
	p := &policy.ReplicaPolicy{APIVersion: policy.APIVersion, Kind: policy.Kind}
	if rng.IntN(2) == 0 {
		p.ExemptNamespaces = []string{"ex"}
	}
	if rng.IntN(2) == 0 {
		b := bounds()
		p.Default = &b
	}
	for i := range rng.IntN(5) {
		r := policy.Rule{Name: fmt.Sprintf("r%d", i), BoundsSpec: bounds()}
		if rng.IntN(2) == 0 {
			r.Namespaces = [][]string{{"a"}, {"b", "c"}, {"team-*"}, {"a", "team-?"}}[rng.IntN(4)]
		}
		if rng.IntN(4) == 0 {
			r.Kinds = [][]string{{"Deployment"}, {"StatefulSet"}, {"Deployment", "Database.example.com"}}[rng.IntN(3)]
		}
		if rng.IntN(3) == 0 {
			r.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"env": Pick(rng, "prod", "dev")}}
		}
		if rng.IntN(3) == 0 {
			r.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{Pick(rng, "web", "db")}}}}
		}
		p.Rules = append(p.Rules, r)
	}
	return p
}

// Pick is one of xs, chosen by rng.
func Pick(rng *rand.Rand, xs ...string) string { return xs[rng.IntN(len(xs))] }
