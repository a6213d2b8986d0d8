package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// Writes of the end-to-end benchmark.
const (
	// OpScale is a merge patch of the scale subresource, as kubectl scale sends it.
	OpScale = "scale patch"
	// OpReplicas is an update of the Deployment that changes spec.replicas.
	OpReplicas = "replica update"
	// OpImage is an update of the Deployment that changes only the image: most of a real
	// cluster's writes to Deployments.
	OpImage = "image update"
	// OpScaleClamped and OpReplicasClamped are OpScale and OpReplicas with every other
	// write above the bounds, which every configuration with a policy clamps to ClampMax:
	// what admission is for, and the writes where a mutation is applied.
	OpScaleClamped    = "scale patch, half clamped"
	OpReplicasClamped = "replica update, half clamped"
)

// Ops in the order the report shows them.
var Ops = []string{OpScale, OpScaleClamped, OpReplicas, OpReplicasClamped, OpImage}

// unclamped is the write op sends, whether its values stay in bounds or not.
func unclamped(op string) string {
	switch op {
	case OpScaleClamped:
		return OpScale
	case OpReplicasClamped:
		return OpReplicas
	}
	return op
}

// E2EConcurrency are the concurrencies of the end-to-end benchmark: sequential and 8.
var E2EConcurrency = []int{1, 8}

// E2EOptions size the end-to-end benchmark.
type E2EOptions struct {
	// Rounds of interleaved slices that count; one more round before them warms up.
	Rounds int
	// Writes per slice: Sequential at concurrency 1, Concurrent at concurrency 8.
	Sequential, Concurrent int
}

// E2ECell is what one configuration did for one write at one concurrency, over all rounds.
type E2ECell struct {
	Config, Op  string
	Concurrency int
	Sample      harness.Sample
	// RoundP50 is the median latency of each round, for the spread of the differences.
	RoundP50 []time.Duration
	// Calls is the number of webhook calls the configuration's webhooks answered (-1 when
	// it has none to count).
	Calls int64
}

// E2EResult holds every cell.
type E2EResult struct {
	Cells   map[string]*E2ECell // by e2eKey
	Options E2EOptions
	// ConnOurs and ConnRef are the most connections seen open to replica-policy's and the
	// reference webhook's port, and recently closed ones, sampled after every round.
	ConnOurs, ConnRef TCPStats
}

func e2eKey(config, op string, c int) string { return fmt.Sprintf("%s|%s|%d", config, op, c) }

// Cell returns a cell of the result.
func (r *E2EResult) Cell(config, op string, c int) *E2ECell { return r.Cells[e2eKey(config, op, c)] }

// writer holds what one worker of one configuration writes: its own Deployment per write
// kind (updates then never conflict), the last object the API server returned for it, and
// a counter that picks the next value.
type writer struct {
	ns, name string
	last     *appsv1.Deployment
	k        int
}

func deploymentName(op string, worker int) string {
	return fmt.Sprintf("%s-%d", map[string]string{OpScale: "scale", OpReplicas: "replicas", OpImage: "image",
		OpScaleClamped: "scale-clamped", OpReplicasClamped: "replicas-clamped"}[op], worker)
}

// writers returns n writers per configuration of cfgs and write of ops, by config|op, each
// with its own Deployment: created, or read when an earlier measurement created it.
func (e *Env) writers(ctx context.Context, cfgs []Config, ops []string, n int) (map[string][]*writer, error) {
	writers := map[string][]*writer{}
	for _, cfg := range cfgs {
		deps := e.Client.AppsV1().Deployments(cfg.Namespace)
		for _, op := range ops {
			for w := range n {
				name := deploymentName(op, w)
				d, err := deps.Create(ctx, harness.TypicalDeployment(cfg.Namespace, name, 2, "registry.example.com/payments/api:1.0"), metav1.CreateOptions{})
				if apierrors.IsAlreadyExists(err) {
					d, err = deps.Get(ctx, name, metav1.GetOptions{})
				}
				if err != nil {
					return nil, fmt.Errorf("%s: %w", cfg.Name, err)
				}
				writers[cfg.Name+"|"+op] = append(writers[cfg.Name+"|"+op], &writer{ns: cfg.Namespace, name: name, last: d})
			}
		}
	}
	return writers, nil
}

// newCells returns a cell per configuration of cfgs, write of ops and concurrency of
// E2EConcurrency, by e2eKey, each made by mk.
func newCells[C any](cfgs []Config, ops []string, mk func(config, op string, c int) *C) map[string]*C {
	cells := map[string]*C{}
	for _, cfg := range cfgs {
		for _, op := range ops {
			for _, c := range E2EConcurrency {
				cells[e2eKey(cfg.Name, op, c)] = mk(cfg.Name, op, c)
			}
		}
	}
	return cells
}

// RunE2E measures every configuration, write and concurrency in interleaved slices: for
// each round, write and concurrency, every configuration runs one slice, in an order that
// rotates from round to round, so drift of the machine spreads evenly over them.
func (e *Env) RunE2E(ctx context.Context, o E2EOptions) (*E2EResult, error) {
	maxC := slices.Max(E2EConcurrency)
	e.progress("creating %d Deployments per configuration", len(Ops)*maxC)
	writers, err := e.writers(ctx, Configs, Ops, maxC)
	if err != nil {
		return nil, err
	}
	res := &E2EResult{Options: o, Cells: newCells(Configs, Ops, func(config, op string, c int) *E2ECell {
		return &E2ECell{Config: config, Op: op, Concurrency: c}
	})}
	start := time.Now()
	for round := 0; round <= o.Rounds; round++ {
		for _, op := range Ops {
			for _, c := range E2EConcurrency {
				var smps []harness.Sample
				calls0, err := e.allCalls()
				if err != nil {
					return nil, err
				}
				if c == 1 {
					smps = e.sequentialInterleaved(ctx, op, writers, o.Sequential, round)
				} else {
					smps = e.concurrentSlices(ctx, op, writers, c, o.Concurrent, round)
				}
				calls1, err := e.allCalls()
				if err != nil {
					return nil, err
				}
				if round == 0 {
					continue // warm-up: connections, caches, the API server's CEL programs
				}
				for i, cfg := range Configs {
					cell := res.Cell(cfg.Name, op, c)
					cell.Sample.Add(smps[i])
					cell.RoundP50 = append(cell.RoundP50, smps[i].Percentile(50))
					if calls0[i] < 0 {
						cell.Calls = -1
					} else {
						cell.Calls += calls1[i] - calls0[i]
					}
				}
			}
		}
		po, pr := e.Ports()
		for _, c := range []struct {
			port int
			into *TCPStats
		}{{po, &res.ConnOurs}, {pr, &res.ConnRef}} {
			if st, err := ReadTCPStats(c.port); err == nil {
				c.into.Established = max(c.into.Established, st.Established)
				c.into.TimeWait = max(c.into.TimeWait, st.TimeWait)
			}
		}
		if round == 0 {
			e.progress("end-to-end: warm-up round done in %v", time.Since(start).Round(time.Millisecond))
		} else {
			e.progress("end-to-end: round %d/%d done (%v)", round, o.Rounds, time.Since(start).Round(time.Second))
		}
	}
	for _, cell := range res.Cells {
		if cell.Sample.Errors > 0 {
			return res, fmt.Errorf("%s, %s, concurrency %d: %d of %d writes failed; first: %v", cell.Config, cell.Op, cell.Concurrency,
				cell.Sample.Errors, cell.Sample.Errors+cell.Sample.Count(), cell.Sample.FirstError)
		}
	}
	return res, nil
}

// sequentialInterleaved sends n writes per configuration one at a time, alternating the
// configurations write by write, in a fresh random order each time (seeded by round and
// write, so runs repeat), so that each configuration's samples are taken under the same
// conditions as the others'. The order is shuffled rather than rotated: in a rotation each
// configuration always follows the same one, and a write pays for what the write before it
// left the API server to do (a webhook call's connection and garbage, say). Elapsed is the
// sum of the configuration's own latencies.
func (e *Env) sequentialInterleaved(ctx context.Context, op string, writers map[string][]*writer, n, round int) []harness.Sample {
	smps := make([]harness.Sample, len(Configs))
	for i := range n {
		for _, k := range rand.New(rand.NewPCG(uint64(round), uint64(i))).Perm(len(Configs)) {
			w := writers[Configs[k].Name+"|"+op][0]
			t0 := time.Now()
			err := e.write(ctx, op, w)
			d := time.Since(t0)
			if err != nil {
				smps[k].Errors++
				if smps[k].FirstError == nil {
					smps[k].FirstError = err
				}
				continue
			}
			smps[k].Latencies = append(smps[k].Latencies, d)
			smps[k].Elapsed += d
		}
	}
	return smps
}

// concurrentSlices lets each configuration in turn (in an order that rotates) send n writes
// from c workers, each worker writing its own Deployment.
func (e *Env) concurrentSlices(ctx context.Context, op string, writers map[string][]*writer, c, n, round int) []harness.Sample {
	smps := make([]harness.Sample, len(Configs))
	for j := range Configs {
		k := (j + round) % len(Configs)
		ws := writers[Configs[k].Name+"|"+op]
		smps[k] = harness.RunConcurrently(c, n, func(worker, _ int) error { return e.write(ctx, op, ws[worker]) })
	}
	return smps
}

// allCalls counts, per configuration, the webhook calls its server has answered so far: -1
// for those without webhooks of their own. replica-policy's four configurations share the
// binary; their calls are told apart by the rule that decided (every call to them decides
// through their own rule: configRules).
func (e *Env) allCalls() ([]int64, error) {
	out := make([]int64, len(Configs))
	for i, cfg := range Configs {
		switch cfg.Name {
		case ConfigRef:
			n, err := e.ReferenceCalls()
			if err != nil {
				return nil, err
			}
			out[i] = n
		case ConfigOurs, ConfigBand, ConfigNative, ConfigNativeSelector:
			m, err := e.WebhookMetric("replicapolicy_admission_decisions_total", fmt.Sprintf("rule=%q", configRules[cfg.Name]))
			if err != nil {
				return nil, err
			}
			out[i] = int64(m)
		default:
			out[i] = -1
		}
	}
	return out, nil
}

// write sends one write of kind op for w and checks that the API server stored it: the value
// asked for, or ClampMax where the configuration clamps it.
func (e *Env) write(ctx context.Context, op string, w *writer) error {
	w.k++
	replicas := int32(2 + w.k%8) // inside every configuration's bounds; differs from the last
	if op != unclamped(op) && w.k%2 == 1 {
		replicas = ClampMax + 1 + int32(w.k%8) // above them; differs from the last too
	}
	want := replicas
	if replicas > ClampMax && w.ns != nsNone && w.ns != nsNoneAgain {
		want = ClampMax
	}
	deps := e.Client.AppsV1().Deployments(w.ns)
	switch unclamped(op) {
	case OpScale:
		// As kubectl scale sends it; the answer is an autoscaling/v1 Scale.
		s := &autoscalingv1.Scale{}
		err := e.Client.AppsV1().RESTClient().Patch(types.MergePatchType).Namespace(w.ns).Resource("deployments").Name(w.name).
			SubResource("scale").Body(fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas)).Do(ctx).Into(s)
		if err != nil {
			return err
		}
		if s.Spec.Replicas != want {
			return fmt.Errorf("%s/%s: scale to %d stored %d, want %d", w.ns, w.name, replicas, s.Spec.Replicas, want)
		}
		return nil
	case OpReplicas:
		w.last.Spec.Replicas = &replicas
	case OpImage:
		w.last.Spec.Template.Spec.Containers[0].Image = fmt.Sprintf("registry.example.com/payments/api:1.%d", w.k%8)
	}
	d, err := deps.Update(ctx, w.last, metav1.UpdateOptions{})
	if err != nil {
		if cur, gerr := deps.Get(ctx, w.name, metav1.GetOptions{}); gerr == nil {
			w.last = cur // resynchronise after a conflict
		}
		return err
	}
	if unclamped(op) == OpReplicas && *d.Spec.Replicas != want {
		return fmt.Errorf("%s/%s: update to %d stored %d, want %d", w.ns, w.name, replicas, *d.Spec.Replicas, want)
	}
	w.last = d
	return nil
}
