package admission

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// TestAnswered: a UID is remembered for at least one window and at most two, and a busy
// window rotates early instead of growing.
func TestAnswered(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	a := newAnswered()
	a.now = func() time.Time { return now }
	a.add("a")
	if !a.has("a") || a.has("b") {
		t.Fatal("a new UID is not remembered, or an unknown one is")
	}
	now = now.Add(a.window - time.Millisecond)
	if !a.has("a") {
		t.Error("forgotten within the window")
	}
	now = now.Add(time.Millisecond)
	a.add("b") // rotates: a moves to the previous generation
	if !a.has("a") || !a.has("b") {
		t.Error("a rotation forgot the previous window's UIDs")
	}
	now = now.Add(a.window)
	a.add("c") // rotates again: a is gone
	if a.has("a") || !a.has("b") || !a.has("c") {
		t.Errorf("after two windows: has(a)=%t has(b)=%t has(c)=%t, want false true true", a.has("a"), a.has("b"), a.has("c"))
	}
	now = now.Add(2 * a.window)
	if a.has("c") {
		t.Error("remembered after two idle windows")
	}

	a = newAnswered()
	a.now = func() time.Time { return now }
	a.maxPerWindow = 4
	for i := range 10 {
		a.add(types.UID(rune('a' + i)))
	}
	if len(a.cur) > 4 || len(a.prev) > 4 {
		t.Errorf("generations of %d and %d UIDs, want at most 4 each", len(a.cur), len(a.prev))
	}
	if !a.has("j") {
		t.Error("the newest UID is forgotten")
	}
}
