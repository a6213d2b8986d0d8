package bench

import (
	"fmt"
	"testing"

	"github.com/replica-policy/replica-policy/pkg/admission"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

func TestAlwaysAllowedBand(t *testing.T) {
	snap, err := policy.Load([]byte(PolicyDoc(PolicyNamespaces{Ours: "a", Band: "b", Native: "n", NativeSelector: "s", Scale: "c"}, 10)), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Rules: [1, 50] four times, max 10, prod-web [2, 10], batch [1, 20] or 0, databases [3, 7],
	// dev-large max 5, default [1, 50].
	if lo, hi, ok := AlwaysAllowedBand(snap); !ok || lo != 3 || hi != 5 {
		t.Errorf("band [%d, %d] (%v), want [3, 5]", lo, hi, ok)
	}
	snap, err = policy.Load([]byte(PolicyDoc(PolicyNamespaces{Ours: "a", Scale: "c"}, 1)), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi, ok := AlwaysAllowedBand(snap); ok {
		t.Errorf("band [%d, %d] for rules that allow at most 1 and at least 3", lo, hi)
	}
}

// TestDecideCases: each benchmark case is decided by its last rule (the worst case for the
// namespace index), clamped from 60 to that rule's maximum of 50; an unknown case is refused.
func TestDecideCases(t *testing.T) {
	for _, kind := range RuleKinds {
		for _, n := range []int{1, 100} {
			snap, req, err := DecideCase(kind, n)
			if err != nil {
				t.Fatal(err)
			}
			d := admission.Decide(snap, req, admission.Mutate)
			if want := fmt.Sprintf("r%d", n-1); d.Rule != want || d.Replicas == nil || *d.Replicas != 50 || len(snap.Rules()) != n {
				t.Errorf("%s/%d: %d rules, decided by %q to %v; want %d rules, %q clamping 60 to 50", kind, n, len(snap.Rules()), d.Rule, d.Replicas, n, want)
			}
		}
	}
	if _, _, err := DecideCase("no-such-kind", 1); err == nil {
		t.Error("an unknown rule kind was accepted")
	}
}
