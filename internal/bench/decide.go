package bench

import (
	"fmt"
	"runtime"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/pkg/admission"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// Rule kinds of the decision benchmark: rules that name one namespace each (found through
// the policy's index), rules with one namespace glob each, and rules with a label selector.
const (
	RuleNames     = "names"
	RuleGlobs     = "globs"
	RuleSelectors = "selectors"
)

// RuleKinds and PolicySizes span the decision benchmark (issue: 1, 100 and 10,000 rules of
// names, globs and selectors).
var (
	RuleKinds   = []string{RuleNames, RuleGlobs, RuleSelectors}
	PolicySizes = []int{1, 100, 10000}
)

// DecideCase returns a policy of n rules of one kind and a request that only the last rule
// matches: the worst case for a scan, and for names the case the index must make cheap.
// The request is a Deployment update from 3 to 60 replicas; the rule clamps it to 50, so
// the decision builds its warning too.
func DecideCase(kind string, n int) (*policy.Snapshot, admission.Request, error) {
	p := &policy.ReplicaPolicy{APIVersion: policy.APIVersion, Kind: policy.Kind}
	for i := range n {
		r := policy.Rule{Name: fmt.Sprintf("r%d", i), BoundsSpec: policy.BoundsSpec{MinReplicas: ptr.To[int32](1), MaxReplicas: ptr.To[int32](50)}}
		switch kind {
		case RuleNames:
			r.Namespaces = []string{fmt.Sprintf("ns-%d", i)}
		case RuleGlobs:
			r.Namespaces = []string{fmt.Sprintf("ns-%d-*", i)}
		case RuleSelectors:
			r.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i)}}
		default:
			return nil, admission.Request{}, fmt.Errorf("unknown rule kind %q", kind)
		}
		p.Rules = append(p.Rules, r)
	}
	snap, err := policy.Compile(p, policy.Options{AlwaysExempt: []string{policy.DefaultNamespace}})
	if err != nil {
		return nil, admission.Request{}, err
	}
	ns := fmt.Sprintf("ns-%d", n-1)
	if kind == RuleGlobs {
		ns += "-east"
	}
	req := admission.Request{
		Operation:   admissionv1.Update,
		Replicas:    60,
		OldReplicas: ptr.To[int32](3),
		Subject: policy.Subject{
			Kind:            "Deployment",
			Name:            "web",
			Namespace:       ns,
			Labels:          map[string]string{"app": fmt.Sprintf("app-%d", n-1), "team": "payments"},
			NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": ns},
		},
	}
	d := admission.Decide(snap, req, admission.Mutate)
	if want := fmt.Sprintf("r%d", n-1); d.Rule != want || d.Outcome != admission.OutcomeClamped {
		return nil, admission.Request{}, fmt.Errorf("%s/%d: rule %q outcome %q, want rule %q clamped", kind, n, d.Rule, d.Outcome, want)
	}
	return snap, req, nil
}

// OpCost is what one call of a function costs.
type OpCost struct {
	NsPerOp     float64
	AllocsPerOp float64
	BytesPerOp  float64
	N           int
}

// MeasureOp calls f in growing batches until a batch takes at least minTime, like
// testing.B does, and reports the last batch's time and allocations per call.
func MeasureOp(f func(), minTime time.Duration) OpCost {
	f() // warm caches and lazily built state
	n := 1
	for {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		for range n {
			f()
		}
		elapsed := time.Since(start)
		runtime.ReadMemStats(&after)
		if elapsed >= minTime || n >= 1<<30 {
			return OpCost{
				NsPerOp:     float64(elapsed.Nanoseconds()) / float64(n),
				AllocsPerOp: float64(after.Mallocs-before.Mallocs) / float64(n),
				BytesPerOp:  float64(after.TotalAlloc-before.TotalAlloc) / float64(n),
				N:           n,
			}
		}
		// Aim 20% past minTime from the rate so far, growing at most 100x per step.
		next := int(float64(n) * 1.2 * float64(minTime) / float64(max(elapsed, time.Microsecond)))
		n = min(max(next, n+1), 100*n)
	}
}
