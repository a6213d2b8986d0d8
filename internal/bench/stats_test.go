package bench

import (
	"testing"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

func TestAlwaysAllowedBand(t *testing.T) {
	snap, err := policy.Load([]byte(PolicyDoc("a", "b", "c", 10)), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Rules: [1, 50] twice, max 10, prod-web [2, 10], batch [1, 20] or 0, databases [3, 7],
	// dev-large max 5, default [1, 50].
	if lo, hi, ok := AlwaysAllowedBand(snap); !ok || lo != 3 || hi != 5 {
		t.Errorf("band [%d, %d] (%v), want [3, 5]", lo, hi, ok)
	}
	snap, err = policy.Load([]byte(PolicyDoc("a", "", "c", 1)), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi, ok := AlwaysAllowedBand(snap); ok {
		t.Errorf("band [%d, %d] for rules that allow at most 1 and at least 3", lo, hi)
	}
}

func TestDecideCases(t *testing.T) {
	for _, kind := range RuleKinds {
		for _, n := range []int{1, 100} {
			if _, _, err := DecideCase(kind, n); err != nil {
				t.Error(err)
			}
		}
	}
}
