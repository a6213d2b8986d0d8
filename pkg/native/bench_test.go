package native

import (
	"fmt"
	"strings"
	"testing"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// BenchmarkCompile compiles policies of rules that each name two namespaces literally, the
// actions taking turns: the shape for which the bindings' scopes read every namespace
// against the rules, which must stay linear (--native-policies recompiles on every policy
// change, within the reload contract).
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{100, 1000, 6000} {
		var doc strings.Builder
		doc.WriteString(header + "rules:\n")
		for i := range n {
			fmt.Fprintf(&doc, "- {name: r%d, namespaces: [team-%d, ns-%d], maxReplicas: 3, action: %s}\n", i, i, i, []string{"clamp", "deny", "warn"}[i%3])
		}
		snap, err := policy.Load([]byte(doc.String()), policy.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Compile(snap, policy.BuiltinWorkloadKinds, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
