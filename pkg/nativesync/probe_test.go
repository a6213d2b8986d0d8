package nativesync

import (
	"testing"

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
