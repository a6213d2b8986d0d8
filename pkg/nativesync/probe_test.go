package nativesync

import (
	"testing"
	"time"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// TestDecidesIn: an action needs a probe only where one of its rules decides /scale writes
// in an existing namespace; a rule behind a selector rule, or in no existing namespace, does
// not.
func TestDecidesIn(t *testing.T) {
	snap := load(t, "rules:\n- {name: sel, namespaces: [mixed], selector: {matchLabels: {app: web}}, maxReplicas: 2}\n"+
		"- {name: strict, namespaces: [strict, mixed], maxReplicas: 3, action: deny}\n- {name: sets, namespaces: [sets], kinds: [StatefulSet], maxReplicas: 3, action: warn}\n")
	for _, c := range []struct {
		action     policy.Action
		namespaces []string
		want       bool
	}{
		{policy.ActionDeny, []string{"prod"}, false},
		{policy.ActionDeny, []string{"prod", "strict"}, true},
		{policy.ActionDeny, []string{"mixed"}, false}, // the selector rule comes first
		{policy.ActionWarn, []string{"sets"}, true},   // for StatefulSets only
		{policy.ActionWarn, []string{"strict"}, false},
	} {
		ns := map[string]map[string]string{}
		for _, n := range c.namespaces {
			ns[n] = map[string]string{"kubernetes.io/metadata.name": n}
		}
		if got := decidesIn(snap, c.action, ns); got != c.want {
			t.Errorf("decidesIn(%s, %v) = %t, want %t", c.action, c.namespaces, got, c.want)
		}
	}
}

// TestProbeBackoffCountsTime: while the API server does not yet enforce what was applied,
// the probes keep probeDelay's pace for probeSteadyFor however many Syncs say "not yet" (a
// watch event triggers one), then double up to maxProbeDelay; a reset starts over.
func TestProbeBackoffCountsTime(t *testing.T) {
	var b probeBackoff
	t0 := time.Unix(0, 0)
	for i := range 10 { // ten Syncs within 50 ms, as the Syncer's own writes bring
		if got := b.next(t0.Add(time.Duration(i) * 5 * time.Millisecond)); got != probeDelay {
			t.Fatalf("Sync %d in the first 50 ms: wait %v, want %v", i, got, probeDelay)
		}
	}
	if got := b.next(t0.Add(probeSteadyFor - time.Millisecond)); got != probeDelay {
		t.Errorf("just before probeSteadyFor: wait %v, want %v", got, probeDelay)
	}
	want := probeDelay
	for i := range 10 {
		want = min(2*want, maxProbeDelay)
		if got := b.next(t0.Add(probeSteadyFor + time.Duration(i)*time.Second)); got != want {
			t.Fatalf("probe %d after probeSteadyFor: wait %v, want %v", i, got, want)
		}
	}
	if want != maxProbeDelay {
		t.Fatalf("the back-off never reached maxProbeDelay: %v", want)
	}
	b.reset()
	if got := b.next(t0.Add(time.Hour)); got != probeDelay {
		t.Errorf("after a reset: wait %v, want %v", got, probeDelay)
	}
}
