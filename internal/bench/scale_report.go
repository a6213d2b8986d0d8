package bench

import (
	"fmt"
	"math"
	"time"
)

// Targets of the scale benchmark (docs/design.md, Scale).
const (
	// ScaleReadyFactor bounds the binary's start-up to ready against a bare informer's list
	// of the same Deployments.
	ScaleReadyFactor = 2.0
	// ScaleAdmissionFactor bounds the selector rule's admission p50 at the largest size
	// against that at the smallest.
	ScaleAdmissionFactor = 1.1
)

// memoryTargets are the contract's peak resident set bounds, by number of workloads.
var memoryTargets = map[int]int64{10000: 48 * mib, 100000: 160 * mib}

// scaleTargets renders the scale benchmark's rows of the targets table.
func (r *Report) scaleTargets(p printf) {
	if r.Scale == nil || len(r.Scale.Steps) == 0 {
		return
	}
	steps := r.Scale.Steps
	last := steps[len(steps)-1]
	ready, bare := Median(last.Ready), Median(last.Bare)
	q := float64(ready) / float64(bare)
	p("| start-up to ready with %d Deployments at most %.0fx a bare informer's list (protobuf), medians of %d | ready %s s, bare informer %s s (x%.2f) | %s |\n",
		last.Deployments, ScaleReadyFactor, len(last.Ready), secs(ready), secs(bare), q, pass(q <= ScaleReadyFactor))
	if len(steps) > 1 {
		first := steps[0]
		sel := ratioOf(last.Selector.Percentile(50), first.Selector.Percentile(50))
		ctl := ratioOf(last.Name.Percentile(50), first.Name.Percentile(50))
		p("| admission p50 of a selector-rule /scale review with %d Deployments cached at most %.1fx that with %d | %s µs against %s µs (x%.2f); control, a name rule: x%.2f; the selector rule's over the control's: x%.2f | %s |\n",
			last.Deployments, ScaleAdmissionFactor, first.Deployments, micros(last.Selector.Percentile(50)), micros(first.Selector.Percentile(50)), sel, ctl, sel/ctl,
			driftVerdict(sel, ctl, ScaleAdmissionFactor))
	}
	for _, s := range steps {
		if limit, ok := memoryTargets[s.Deployments]; ok {
			p("| peak RSS < %d MiB with %d workloads, start-up included | %.1f MiB | %s |\n", limit/mib, s.Deployments, float64(s.Memory.Peak)/mib, pass(s.Memory.Peak < limit))
		}
	}
}

// driftVerdict judges a ratio q of the same figure at two times against limit, given the
// ratio ctl of a control that should not have moved: a miss by less than the control's
// drift is not resolved.
func driftVerdict(q, ctl, limit float64) string {
	switch drift := math.Abs(ctl - 1); {
	case q <= limit:
		return "met"
	case q-limit < drift:
		return fmt.Sprintf("**not resolved** (%.2f over, the control moved %.2f)", q-limit, drift)
	}
	return "**missed**"
}

// scale renders the scale benchmark's section.
func (r *Report) scale(p printf) {
	if r.Scale == nil {
		return
	}
	o := r.Scale.Options
	p("### 6. Many workloads: start-up, admission and memory\n\n")
	p("A control plane of its own, grown to each size in turn with Deployments of one container and a label (%d to a namespace, created %d at a time with replica-policy's webhook configurations removed), and the built binary started afresh at each size, %d times (default flags, leader election on, under its ServiceAccount's token). ", scalePerNamespace, ScaleCreateWorkers, o.Rounds)
	p("*ready* is the time from the binary's exec to its `/readyz` answering 200 (policy read, the informer caches synced: Deployments, StatefulSets, ReplicaSets, Namespaces, the policy ConfigMap). *bare informer* is a client-go SharedInformer of every namespace's Deployments and nothing else, in the benchmark's process, from its start to HasSynced, run next to each start of the binary (the order alternates round by round): with protobuf, as the binary and kube-controller-manager read built-in kinds, which the target compares against, and (first round only) with client-go's default JSON. Medians of the rounds. ")
	p("Against the bare informer, the binary's *ready* also counts its process start, discovery and the serving certificate, which dominate at small sizes. ")
	p("*peak* is the binary's VmHWM once ready and its scaler's start-up pass has seen every Deployment (the highest of the rounds). *selector p50* is the binary's answer time to an AdmissionReview of a `/scale` write that a selector rule decides (the webhook reads the Deployment's labels from its cache; targets spread over the whole cluster), sent straight to its HTTPS port over one kept-alive connection, %d times; *name p50* is the same for a rule that names the namespace, sent alternately with it: a control for the machine's drift between sizes (the sizes are measured one after the other): whatever moves both alike is not the lookup.\n\n", o.Reviews)
	p("| Deployments | namespaces | created in s (/s) | ready s | bare informer s (protobuf) | ready / bare | bare informer s (JSON) | peak MiB | current MiB | selector p50 µs | p99 µs | name p50 µs | kube-apiserver RSS MiB | etcd RSS MiB | etcd database MiB (quota) |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var prev *ScaleStep
	for i := range r.Scale.Steps {
		s := &r.Scale.Steps[i]
		added := s.Deployments
		if prev != nil {
			added -= prev.Deployments
		}
		ready, bare := Median(s.Ready), Median(s.Bare)
		p("| %d | %d | %s (%.0f) | %s | %s | %.2f | %s | %.1f | %.1f | %s | %s | %s | %.0f | %.0f | %.0f (%.0f) |\n", s.Deployments, s.Namespaces,
			secs(s.Created), float64(added)/s.Created.Seconds(), secs(ready), secs(bare), float64(ready)/float64(bare), secs(Median(s.BareJSON)),
			float64(s.Memory.Peak)/mib, float64(s.Memory.Current)/mib, micros(s.Selector.Percentile(50)), micros(s.Selector.Percentile(99)), micros(s.Name.Percentile(50)),
			float64(s.APIServer.Current)/mib, float64(s.Etcd.Current)/mib, s.EtcdDB/mib, s.EtcdQuota/mib)
		prev = s
	}
	if n := len(r.Scale.Steps); n > 1 {
		first, last := r.Scale.Steps[0], r.Scale.Steps[n-1]
		per := float64(last.Memory.Peak-first.Memory.Peak) / float64(last.Deployments-first.Deployments)
		p("\nThe binary's peak grows by %.0f bytes per Deployment from %d to %d; ready / bare informer x%.2f at %d and x%.2f at %d; selector p50 x%.2f and name p50 x%.2f from %d to %d.\n",
			per, first.Deployments, last.Deployments, float64(Median(first.Ready))/float64(Median(first.Bare)), first.Deployments,
			float64(Median(last.Ready))/float64(Median(last.Bare)), last.Deployments,
			ratioOf(last.Selector.Percentile(50), first.Selector.Percentile(50)), ratioOf(last.Name.Percentile(50), first.Name.Percentile(50)), first.Deployments, last.Deployments)
	}
	p("\n")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

func micros(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

func ratioOf(a, b time.Duration) float64 {
	if b <= 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}
