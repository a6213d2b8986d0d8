package policystore

import (
	"errors"
	"fmt"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// header starts every policy document in the tests.
const header = "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\n"

func policyConfigMap(rv, doc string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: policy.DefaultNamespace, Name: "replica-policy", ResourceVersion: rv},
		Data:       map[string]string{policy.ConfigMapKey: doc},
	}
}

// maxPolicy is a valid policy whose one rule is named after its maximum, so that a
// snapshot mixing two policies would show.
func maxPolicy(n int) string {
	return header + fmt.Sprintf("rules:\n- {name: max-%d, maxReplicas: %d}\n", n, n)
}

func TestStoreApply(t *testing.T) {
	opts := policy.Options{AlwaysExempt: []string{policy.DefaultNamespace}}
	s := NewStore(opts)
	first := s.Snapshot()
	if first == nil || len(first.Rules()) != 0 {
		t.Fatalf("a new store must bound nothing, got %+v", first)
	}
	if !first.Exempt(policy.DefaultNamespace) {
		t.Error("the new store's snapshot does not apply policy.Options.AlwaysExempt")
	}

	// A valid policy is swapped in.
	snap, err := s.Apply(policyConfigMap("1", maxPolicy(3)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Snapshot() != snap {
		t.Fatal("Apply returned a snapshot other than the one in force")
	}
	if got := ruleIn(snap, "a"); got != "max-3" {
		t.Errorf("rule %q, want max-3", got)
	}
	if want := "configmap replica-policy-system/replica-policy@1"; snap.Source != want {
		t.Errorf("Source %q, want %q", snap.Source, want)
	}
	if !snap.Exempt(policy.DefaultNamespace) {
		t.Error("a loaded snapshot lost policy.Options.AlwaysExempt")
	}

	// An invalid policy is refused and the last valid one stays, the very same snapshot.
	_, err = s.Apply(policyConfigMap("2", header+"rules:\n- {name: a, minReplicas: 2, maxReplicas: 1}\n"))
	var invalid *policy.InvalidError
	if !errors.As(err, &invalid) {
		t.Fatalf("Apply(invalid) = %v, want *InvalidError", err)
	}
	if len(invalid.Errs) != 1 || invalid.Errs[0].Error() != `rules[0].maxReplicas: Invalid value: 1: must be greater than or equal to minReplicas (2)` {
		t.Errorf("errors %v, want only %s", invalid.Errs, `rules[0].maxReplicas: Invalid value: 1: must be greater than or equal to minReplicas (2)`)
	}
	if s.Snapshot() != snap {
		t.Error("Apply(invalid) replaced the snapshot in force")
	}

	// A ConfigMap without the key is invalid too, and says which key it wants.
	_, err = s.Apply(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "replica-policy"}, Data: map[string]string{"policy.yml": maxPolicy(1)}})
	if !errors.As(err, &invalid) {
		t.Fatalf("Apply(no key) = %v, want *InvalidError", err)
	}
	if len(invalid.Errs) != 1 || invalid.Errs[0].Error() != `data[policy.yaml]: Required value: the policy ConfigMap must hold the policy under this key` {
		t.Errorf("errors %v, want only %s", invalid.Errs, `data[policy.yaml]: Required value: the policy ConfigMap must hold the policy under this key`)
	}
	if s.Snapshot() != snap {
		t.Error("Apply(no key) replaced the snapshot in force")
	}

	// No ConfigMap: no bounds.
	empty, err := s.Apply(nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Snapshot() != empty || len(empty.Rules()) != 0 {
		t.Errorf("after Apply(nil) the store holds %d rules", len(s.Snapshot().Rules()))
	}
	if m := empty.Decide(policy.Subject{Namespace: "a"}, nil); m.Rule != nil {
		t.Errorf("after Apply(nil) rule %q still applies", m.Rule.Name)
	}
	if !empty.Exempt(policy.DefaultNamespace) {
		t.Error("the empty snapshot lost policy.Options.AlwaysExempt")
	}
}

func TestStoreSubscribe(t *testing.T) {
	s := NewStore(policy.Options{})
	var got []*policy.Snapshot
	var other int
	s.Subscribe(func(snap *policy.Snapshot) {
		if s.Snapshot() != snap {
			t.Error("subscriber called before the swap")
		}
		got = append(got, snap)
	})
	s.Subscribe(func(*policy.Snapshot) { other++ })

	a, _ := s.Apply(policyConfigMap("1", maxPolicy(1)))
	if _, err := s.Apply(policyConfigMap("2", "rules: nope")); err == nil {
		t.Fatal("Apply of an invalid policy succeeded")
	}
	b, _ := s.Apply(policyConfigMap("3", maxPolicy(2)))
	c, _ := s.Apply(nil)
	want := []*policy.Snapshot{a, b, c}
	if len(got) != len(want) {
		t.Fatalf("subscriber called %d times, want %d (not for the invalid policy)", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d: got snapshot %p, want %p", i, got[i], want[i])
		}
	}
	if other != 3 {
		t.Errorf("second subscriber called %d times, want 3", other)
	}
}

// TestStoreConcurrent: readers never see a nil snapshot, nor one that mixes two policies,
// while a writer flips between policies (and invalid ones). Run it with -race.
func TestStoreConcurrent(t *testing.T) {
	s := NewStore(policy.Options{})
	cms := []*corev1.ConfigMap{
		policyConfigMap("1", maxPolicy(1)),
		policyConfigMap("2", maxPolicy(2)),
		policyConfigMap("3", "rules: [{name: broken}]"),
		nil,
	}
	var seen [3]atomic.Int64 // empty, max-1, max-2
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				snap := s.Snapshot()
				if snap == nil {
					t.Error("nil snapshot")
					return
				}
				m := snap.Decide(policy.Subject{Namespace: "ns"}, nil)
				if m.Rule == nil {
					if snap.Source != "" || len(snap.Rules()) != 0 {
						t.Errorf("no rule matched in snapshot %q with %d rules", snap.Source, len(snap.Rules()))
					}
					seen[0].Add(1)
					continue
				}
				mx := *m.Rule.Bounds.Max
				if m.Rule.Name != fmt.Sprintf("max-%d", mx) || snap.Source != fmt.Sprintf("configmap replica-policy-system/replica-policy@%d", mx) {
					t.Errorf("mixed snapshot: rule %q, max %d, source %q", m.Rule.Name, mx, snap.Source)
					return
				}
				seen[mx].Add(1)
			}
		})
	}
	for i := range 3000 {
		s.Apply(cms[i%len(cms)]) // the invalid one is refused, as it should be
	}
	close(stop)
	wg.Wait()
	if seen[0].Load()+seen[1].Load()+seen[2].Load() == 0 {
		t.Error("the readers read nothing")
	}
}

// ruleIn names the rule that decides for a workload in namespace ns under snap.
func ruleIn(snap *policy.Snapshot, ns string) string {
	if v := snap.Decide(policy.Subject{Namespace: ns}, nil); v.Rule != nil {
		return v.Rule.Name
	}
	return ""
}
