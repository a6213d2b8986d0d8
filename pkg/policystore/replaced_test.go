package policystore

import (
	"github.com/replica-policy/replica-policy/pkg/policy"
	"testing"
	"time"
)

// TestStoreReplaced: the snapshots replaced within ReplacedWindow, newest first; not the
// placeholder a new store starts with; not invalid policies, which replace nothing; at
// most maxReplaced of them.
func TestStoreReplaced(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	s := NewStore(policy.Options{})
	s.now = func() time.Time { return now }
	if got := s.Replaced(); len(got) != 0 {
		t.Fatalf("new store: %d replaced snapshots", len(got))
	}
	first, err := s.Apply(policyConfigMap("1", maxPolicy(3)))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Replaced(); len(got) != 0 {
		t.Errorf("after the first policy: %d replaced snapshots, want none (the placeholder was never in force)", len(got))
	}
	now = now.Add(time.Second)
	second, err := s.Apply(policyConfigMap("2", maxPolicy(4)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(policyConfigMap("3", header+"rules:\n- {name: a, minReplicas: 2, maxReplicas: 1}\n")); err == nil {
		t.Fatal("an invalid policy was applied")
	}
	now = now.Add(time.Second)
	if _, err := s.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if got := s.Replaced(); len(got) != 2 || got[0] != second || got[1] != first {
		t.Errorf("replaced: %v, want the second policy, then the first", got)
	}
	now = now.Add(ReplacedWindow - time.Second + time.Millisecond) // just over a window since the first was replaced
	if got := s.Replaced(); len(got) != 1 || got[0] != second {
		t.Errorf("a window after the first was replaced: %v, want only the second", got)
	}
	now = now.Add(2 * time.Second)
	if got := s.Replaced(); len(got) != 0 {
		t.Errorf("after the window: %d replaced snapshots", len(got))
	}
	for i := range 3 * maxReplaced {
		if _, err := s.Apply(policyConfigMap("x", maxPolicy(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Replaced(); len(got) != maxReplaced {
		t.Errorf("after %d changes: %d replaced snapshots, want at most %d", 3*maxReplaced, len(got), maxReplaced)
	}
}
