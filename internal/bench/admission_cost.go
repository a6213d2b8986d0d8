package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// AdmissionPlugins are kube-apiserver's admission plugins in which the configurations
// differ: the admission policies and the webhooks. Every other plugin of the chain does the
// same work in every namespace.
var AdmissionPlugins = []string{"MutatingAdmissionPolicy", "MutatingAdmissionWebhook", "ValidatingAdmissionPolicy", "ValidatingAdmissionWebhook"}

// AdmissionCostConfigs are the configurations whose admission time is measured: native mode
// against the hand-written pair, replica-policy's one-call webhook against the two-call
// reference, over "no policy" and its A/A twin. A webhook's time is in its plugin's: the API
// server waits for the call.
var AdmissionCostConfigs = []string{ConfigNone, ConfigNoneAgain, ConfigBuiltin, ConfigNative, ConfigRef, ConfigOurs}

// AdmissionCostOps are the writes measured: those native mode's targets name.
var AdmissionCostOps = []string{OpScale, OpScaleClamped, OpReplicas, OpReplicasClamped}

// AdmissionCostOptions size the admission-time measurement.
type AdmissionCostOptions struct {
	// Rounds that count; one more round before them warms up.
	Rounds int
	// Writes per configuration, write and concurrency in each round.
	Writes int
}

// AdmissionCostCell is the admission time of one configuration, write and concurrency.
type AdmissionCostCell struct {
	Config, Op  string
	Concurrency int
	// PerWrite is, for each round, the time AdmissionPlugins spent per write, by
	// kube-apiserver's own count (the sums of its admission-controller histogram).
	PerWrite []time.Duration
	// ByPlugin is each plugin's time per write over all rounds.
	ByPlugin map[string]time.Duration
	// Sample is the writes' latencies as the client saw them, in blocks of one
	// configuration's writes (each follows a write of its own configuration).
	Sample harness.Sample
	writes int
}

// AdmissionCostResult holds every cell.
type AdmissionCostResult struct {
	Cells   map[string]*AdmissionCostCell // by e2eKey
	Options AdmissionCostOptions
}

// Cell returns a cell of the result.
func (r *AdmissionCostResult) Cell(config, op string, c int) *AdmissionCostCell {
	return r.Cells[e2eKey(config, op, c)]
}

// Added is the per-round differences of config's time per write from "no policy"'s: their
// median and interquartile range.
func (r *AdmissionCostResult) Added(config, op string, c int) (med, q1, q3 time.Duration) {
	return pairedQuartiles(r.Cell(config, op, c).PerWrite, r.Cell(ConfigNone, op, c).PerWrite)
}

// AddedRatio is, round by round, config's added time over base's (each the difference from
// "no policy" in the same round): the median and interquartile range of the ratios. Pairing
// the rounds cancels what moves the machine between them; a ratio is only taken where
// base's added time is positive.
func (r *AdmissionCostResult) AddedRatio(config, base, op string, c int) (med, q1, q3 float64) {
	none := r.Cell(ConfigNone, op, c).PerWrite
	a, b := r.Cell(config, op, c).PerWrite, r.Cell(base, op, c).PerWrite
	var q []float64
	for i := range min(len(a), len(b), len(none)) {
		if d := b[i] - none[i]; d > 0 {
			q = append(q, float64(a[i]-none[i])/float64(d))
		}
	}
	if len(q) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	return quartiles(q)
}

// Resolution is the smallest difference the measurement tells apart at concurrency c, by
// the rule of the end-to-end figures: the largest added time, either way, of "no policy,
// again" (A/A), and at least half the widest interquartile range of the built-in's.
func (r *AdmissionCostResult) Resolution(c int) time.Duration {
	res := time.Microsecond
	for _, op := range AdmissionCostOps {
		aa, _, _ := r.Added(ConfigNoneAgain, op, c)
		_, q1, q3 := r.Added(ConfigBuiltin, op, c)
		res = max(res, aa, -aa, (q3-q1)/2)
	}
	return res
}

// RunAdmissionCost measures, for each configuration of AdmissionCostConfigs, write and
// concurrency, the time kube-apiserver spends in AdmissionPlugins per write: the API
// server's own histogram sums, read before and after a block of o.Writes writes that only
// that configuration sends (the configurations take turns, in an order that rotates each
// round). Unlike the end-to-end latency, which carries the whole request (the client, the
// network, etcd, the watch cache) and its noise, this is only the part where the
// configurations differ; both passes of a clamped write's mutating chain are in it.
// Background writes of the cluster (the binary's lease renewals) fall into every block alike.
func (e *Env) RunAdmissionCost(ctx context.Context, o AdmissionCostOptions) (*AdmissionCostResult, error) {
	var cfgs []Config
	for _, name := range AdmissionCostConfigs {
		for _, c := range Configs {
			if c.Name == name {
				cfgs = append(cfgs, c)
			}
		}
	}
	writers, err := e.writers(ctx, cfgs, AdmissionCostOps, slices.Max(E2EConcurrency))
	if err != nil {
		return nil, err
	}
	res := &AdmissionCostResult{Options: o, Cells: newCells(cfgs, AdmissionCostOps, func(config, op string, c int) *AdmissionCostCell {
		return &AdmissionCostCell{Config: config, Op: op, Concurrency: c, ByPlugin: map[string]time.Duration{}}
	})}
	before, err := e.admissionTime(ctx)
	if err != nil {
		return nil, err
	}
	for round := 0; round <= o.Rounds; round++ {
		for _, op := range AdmissionCostOps {
			for _, c := range E2EConcurrency {
				for j := range cfgs {
					cfg := cfgs[(j+round)%len(cfgs)]
					ws := writers[cfg.Name+"|"+op]
					smp := harness.RunConcurrently(c, o.Writes, func(worker, _ int) error { return e.write(ctx, op, ws[worker]) })
					if smp.Errors > 0 {
						return nil, fmt.Errorf("admission time, %s, %s, concurrency %d: %d of %d writes failed; first: %v", cfg.Name, op, c, smp.Errors, o.Writes, smp.FirstError)
					}
					after, err := e.admissionTime(ctx)
					if err != nil {
						return nil, err
					}
					if round > 0 { // the warm-up round: connections, caches, CEL programs
						cell := res.Cell(cfg.Name, op, c)
						var total time.Duration
						for _, p := range AdmissionPlugins {
							d := after[p] - before[p]
							total += d
							cell.ByPlugin[p] += d
						}
						cell.PerWrite = append(cell.PerWrite, total/time.Duration(o.Writes))
						cell.Sample.Add(smp)
						cell.writes += o.Writes
					}
					before = after
				}
			}
		}
		e.progress("admission time: round %d/%d done", round, o.Rounds)
	}
	for _, cell := range res.Cells {
		for p, d := range cell.ByPlugin {
			cell.ByPlugin[p] = d / time.Duration(max(cell.writes, 1))
		}
	}
	// The hand-written pair's policy clamped half of its writes: a histogram that counted
	// nothing is one this measurement does not read right (a renamed metric, say).
	if res.Cell(ConfigBuiltin, OpScaleClamped, 1).ByPlugin["MutatingAdmissionPolicy"] <= 0 {
		return nil, fmt.Errorf("admission time: kube-apiserver's apiserver_admission_controller_admission_duration_seconds counted no time in MutatingAdmissionPolicy")
	}
	return res, nil
}

// admissionTime is kube-apiserver's total time so far in each of AdmissionPlugins, over
// updates (every write the measurement sends is one), both admission steps.
func (e *Env) admissionTime(ctx context.Context) (map[string]time.Duration, error) {
	m, err := harness.APIServerMetrics(ctx, e.Client)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver's metrics: %w", err)
	}
	out := map[string]time.Duration{}
	for _, p := range AdmissionPlugins {
		s := m.Sum("apiserver_admission_controller_admission_duration_seconds_sum", fmt.Sprintf("name=%q", p), `operation="UPDATE"`)
		out[p] = time.Duration(s * float64(time.Second))
	}
	return out, nil
}
