package admission

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// benchPolicy has n rules; the request's namespace "target" matches only the last one.
// literal rules name namespaces the index finds with a map lookup; glob rules must be
// scanned in order.
func benchPolicy(n int, glob bool) string {
	var b strings.Builder
	b.WriteString(header + "rules:\n")
	for i := range n {
		ns := fmt.Sprintf("team-%d", i)
		if glob {
			ns = fmt.Sprintf("team-%d-*", i)
		}
		if i == n-1 {
			ns = "target"
		}
		fmt.Fprintf(&b, "- name: rule-%d\n  namespaces: [%q]\n  minReplicas: 2\n  maxReplicas: 10\n", i, ns)
	}
	return b.String()
}

// BenchmarkHandle measures Handler.Handle (decode, lookup, decide, build the answer) for
// a Deployment CREATE and a Scale UPDATE that are clamped by the policy's last rule.
func BenchmarkHandle(b *testing.B) {
	lookup := &fakeLookup{
		workloads:  map[string]map[string]string{"target/web": {"app": "web"}},
		namespaces: map[string]map[string]string{"target": {"env": "prod"}},
	}
	requests := map[string]admission.Request{
		"deployment-create": harness.DeploymentReview("bench", "target", "web", nil, ptr.To(int32(50)), map[string]string{"app": "web"}).Request(b),
		"scale-update":      harness.ScaleReview("bench", "target", "web", 3, 50).Request(b),
	}
	for _, kind := range []string{"deployment-create", "scale-update"} {
		for _, rules := range []string{"literal", "glob"} {
			for _, n := range []int{1, 100, 10000} {
				if rules == "glob" && n == 1 {
					continue // the same policy as literal/1
				}
				b.Run(fmt.Sprintf("%s/%s/rules=%d", kind, rules, n), func(b *testing.B) {
					h := NewHandler(Mutate, workload.Builtin(), mustStore(b, benchPolicy(n, rules == "glob")), lookup, PolicyRef{})
					req := requests[kind]
					ctx := context.Background()
					if resp := h.Handle(ctx, req); !resp.Allowed || len(resp.Patches) != 1 {
						b.Fatalf("want a clamp, got %+v", resp)
					}
					b.ReportAllocs()
					b.SetBytes(int64(len(req.Object.Raw) + len(req.OldObject.Raw)))
					for b.Loop() {
						h.Handle(ctx, req)
					}
				})
			}
		}
	}
}
