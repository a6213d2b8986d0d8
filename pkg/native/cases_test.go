package native_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"k8s.io/client-go/kubernetes"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// equivCase is one random policy of an equivalence test, the labels of its namespaces and
// the requests sent under it.
type equivCase[R any] struct {
	k        int
	pol      *policy.ReplicaPolicy
	nsLabels map[string]map[string]string // by short name
	reqs     []R
}

// randomCases draws n cases, each its policy, its namespaces' labels and its requests, in
// that order.
func randomCases[R any](rng *rand.Rand, n int, requests func(*rand.Rand) []R) []equivCase[R] {
	var cases []equivCase[R]
	for k := range n {
		pc := equivCase[R]{k: k, pol: randomNativePolicy(rng)}
		pc.nsLabels = randomNamespaceLabels(rng)
		pc.reqs = requests(rng)
		cases = append(cases, pc)
	}
	return cases
}

// setUpBothSides creates, before any policy is in force, every case's namespaces on both
// sides (prefix nK- for the native policies, wK- for the webhook) and, through base, the
// object each update starts from.
func setUpBothSides[R fmt.Stringer](t *testing.T, ctx context.Context, cs kubernetes.Interface, phase *phaseWebhook, cases []equivCase[R], base func(prefix string, r R) error) {
	t.Helper()
	phase.set(t, &policy.ReplicaPolicy{APIVersion: policy.APIVersion, Kind: policy.Kind}, policy.DefaultNamespace, cs)
	for _, pc := range cases {
		for _, side := range []string{"n", "w"} {
			prefix := fmt.Sprintf("%s%d-", side, pc.k)
			createNamespaces(t, ctx, cs, prefix, pc.nsLabels)
			for _, r := range pc.reqs {
				if err := base(prefix, r); err != nil {
					t.Fatalf("base object %s: %v", r, err)
				}
			}
		}
	}
}
