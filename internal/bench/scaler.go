package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// ScalerResult is the scaler and memory benchmark at one cluster size.
type ScalerResult struct {
	// Deployments in the scaler's namespace; all of them violate the policy after the change.
	Deployments int
	// Created is how long creating the new ones took (set-up, not a figure of the product).
	Created time.Duration
	// Ready is how long the freshly started binary took to be ready (caches synced).
	Ready time.Duration
	// MemoryStart is the binary's memory once it has started and passed over every
	// Deployment; MemoryAfter once it has corrected them all.
	MemoryStart, MemoryAfter harness.Memory
	// Scaler: time from the policy change until every violator was corrected, and the
	// scale writes (PATCH) kube-apiserver counted meanwhile. ScalerFirst is the part of it
	// before the first correction was stored (the reaction: the ConfigMap's watch event, the
	// policy's parse, the pass that queues the violators); the rest is the corrections' span.
	ScalerTime, ScalerFirst time.Duration
	ScalerWrites            int64
	// ScalerGets and ScalerEvents are the scale GETs and the Event writes (creates and
	// patches, both API groups) kube-apiserver counted over the same time.
	ScalerGets, ScalerEvents int64
	// Raw: a tight loop of UpdateScale calls over the same Deployments, at the scaler's
	// number of workers (the floor), and the writes counted.
	RawTime        time.Duration
	RawWrites      int64
	RawConcurrency int
	// RawGetUpdate: the same loop doing a guarded update, a GET of the scale subresource and
	// then the UPDATE with its resourceVersion (the scaler's protocol before its conditional
	// write, which needs no GET).
	RawGetUpdateTime time.Duration
	// OutOfBounds is the number of Deployments still above the bound after the scaler ran.
	OutOfBounds int
}

// ScalerWorkers is the scaler's default number of workers (pkg/scaler DefaultOptions); the
// raw loop runs at the same concurrency.
const ScalerWorkers = 4

// RunScaler grows the scaler's namespace to each size in turn and measures, with a freshly
// started binary each time: its memory, the scaler correcting every Deployment after a
// policy change, and the raw UpdateScale floor over the same Deployments.
func (e *Env) RunScaler(ctx context.Context, sizes []int, timeout time.Duration) ([]ScalerResult, error) {
	var results []ScalerResult
	have := 0
	// Each size tightens the bound below every value the Deployments hold: new ones are
	// created at 5 replicas, the first pass bounds them to 3 and the floor writes 2, the
	// second bounds everything to 1 and the floor writes 0.
	bounds := []int32{3, 1}
	for i, n := range sizes {
		if i >= len(bounds) {
			return results, fmt.Errorf("at most %d sizes", len(bounds))
		}
		r := ScalerResult{Deployments: n, RawConcurrency: ScalerWorkers}
		// Stop the binary while the new Deployments arrive; they are inside the bound until
		// the policy changes.
		if err := e.Webhook.Stop(30 * time.Second); err != nil {
			return results, fmt.Errorf("stopping the webhook: %w", err)
		}
		e.Webhook = nil
		if err := e.SetPolicy(ctx, scaleStartMax); err != nil {
			return results, err
		}
		e.progress("scaler: creating %d Deployments (%d in total)", n-have, n)
		t0 := time.Now()
		if err := e.createDeployments(ctx, nsScale, have, n, 5); err != nil {
			return results, err
		}
		r.Created = time.Since(t0)
		have = n
		t0 = time.Now()
		if err := e.StartWebhook(ctx); err != nil {
			return results, err
		}
		r.Ready = time.Since(t0)
		// The start-up pass evaluates every Deployment of the cluster once: it reconciles
		// those that need it and settles the others from the cache.
		total, err := e.countDeployments(ctx)
		if err != nil {
			return results, err
		}
		if err := e.waitEvaluated(ctx, timeout, total); err != nil {
			return results, fmt.Errorf("scaler start-up pass: %w", err)
		}
		time.Sleep(time.Second) // let the pass's last requests finish
		if r.MemoryStart, err = e.WebhookMemory(); err != nil {
			return results, err
		}

		bound := bounds[i]
		writes0, err := e.scaleUpdates(ctx)
		if err != nil {
			return results, err
		}
		gets0, events0, err := e.scaleGetsAndEvents(ctx)
		if err != nil {
			return results, err
		}
		e.progress("scaler: policy change, every one of %d Deployments now above %d replicas", n, bound)
		first, err := e.watchFirstCorrection(ctx, nsScale, bound)
		if err != nil {
			return results, err
		}
		t0 = time.Now()
		if err := e.SetPolicy(ctx, bound); err != nil {
			return results, err
		}
		done, err := e.waitCorrections(ctx, timeout, n)
		if err != nil {
			return results, fmt.Errorf("scaler corrections: %w", err)
		}
		r.ScalerTime = done.Sub(t0)
		select {
		case at := <-first:
			r.ScalerFirst = at.Sub(t0)
		case <-time.After(10 * time.Second):
			return results, fmt.Errorf("scaler corrections: the watch of namespace %s saw no correction", nsScale)
		}
		time.Sleep(500 * time.Millisecond) // a write beyond the corrections would show now
		writes1, err := e.scaleUpdates(ctx)
		if err != nil {
			return results, err
		}
		r.ScalerWrites = writes1 - writes0
		gets1, events1, err := e.scaleGetsAndEvents(ctx)
		if err != nil {
			return results, err
		}
		r.ScalerGets, r.ScalerEvents = gets1-gets0, events1-events0
		if r.MemoryAfter, err = e.WebhookMemory(); err != nil {
			return results, err
		}
		if r.OutOfBounds, err = e.countAbove(ctx, nsScale, bound); err != nil {
			return results, err
		}

		e.progress("scaler: raw UpdateScale floor over the same %d Deployments, %d at a time", n, ScalerWorkers)
		target := bound - 1
		t0 = time.Now()
		smp := harness.RunConcurrently(ScalerWorkers, n, func(_, j int) error {
			_, err := e.Client.AppsV1().Deployments(nsScale).UpdateScale(ctx, scaleName(j), &autoscalingv1.Scale{
				ObjectMeta: metav1.ObjectMeta{Namespace: nsScale, Name: scaleName(j)},
				Spec:       autoscalingv1.ScaleSpec{Replicas: target},
			}, metav1.UpdateOptions{})
			return err
		})
		r.RawTime = time.Since(t0)
		if smp.Errors > 0 {
			return results, fmt.Errorf("raw UpdateScale: %d errors, first: %v", smp.Errors, smp.FirstError)
		}
		writes2, err := e.scaleUpdates(ctx)
		if err != nil {
			return results, err
		}
		r.RawWrites = writes2 - writes1

		// GET then UPDATE, back to the bound itself: inside it, and above the next size's.
		e.progress("scaler: raw GET+UpdateScale loop over the same %d Deployments, %d at a time", n, ScalerWorkers)
		t0 = time.Now()
		smp = harness.RunConcurrently(ScalerWorkers, n, func(_, j int) error {
			deps := e.Client.AppsV1().Deployments(nsScale)
			s, err := deps.GetScale(ctx, scaleName(j), metav1.GetOptions{})
			if err != nil {
				return err
			}
			s.Spec.Replicas = bound
			_, err = deps.UpdateScale(ctx, scaleName(j), s, metav1.UpdateOptions{})
			return err
		})
		r.RawGetUpdateTime = time.Since(t0)
		if smp.Errors > 0 {
			return results, fmt.Errorf("raw GET+UpdateScale: %d errors, first: %v", smp.Errors, smp.FirstError)
		}
		results = append(results, r)
	}
	return results, nil
}

// watchFirstCorrection watches the Deployments of ns from now on and sends, once, when the
// first of them holds at most bound replicas: the first correction, dated when the API
// server's watch event for it arrived (within a millisecond of its write here, where the
// poll of the binary's metrics would date it up to 100 ms late). The watch ends with it.
func (e *Env) watchFirstCorrection(ctx context.Context, ns string, bound int32) (<-chan time.Time, error) {
	l, err := e.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return nil, err
	}
	w, err := e.Client.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		return nil, err
	}
	out := make(chan time.Time, 1)
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok && d.Spec.Replicas != nil && *d.Spec.Replicas <= bound {
				out <- time.Now()
				return
			}
		}
	}()
	return out, nil
}

// span is the time the corrections took, from the first to the last: what the scaler's rate
// is measured over.
func (r ScalerResult) span() time.Duration { return r.ScalerTime - r.ScalerFirst }

func scaleName(i int) string { return fmt.Sprintf("w-%05d", i) }

// createDeployments creates Deployments from index from to to (exclusive) with 16
// concurrent creates: set-up only.
func (e *Env) createDeployments(ctx context.Context, ns string, from, to int, replicas int32) error {
	var failed atomic.Int64
	var first error
	var once sync.Once
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range next {
				_, err := e.Client.AppsV1().Deployments(ns).Create(ctx, harness.TypicalDeployment(ns, scaleName(i), replicas, "registry.example.com/payments/api:1.0"), metav1.CreateOptions{})
				if err != nil {
					failed.Add(1)
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if failed.Load() > 0 {
		return fmt.Errorf("%d creates failed; first: %w", failed.Load(), first)
	}
	return nil
}

func (e *Env) countDeployments(ctx context.Context) (int, error) {
	l, err := e.Client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return 0, err
	}
	return len(l.Items), nil
}

func (e *Env) countAbove(ctx context.Context, ns string, bound int32) (int, error) {
	l, err := e.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range l.Items {
		if d.Spec.Replicas == nil || *d.Spec.Replicas > bound {
			n++
		}
	}
	return n, nil
}

// scaleUpdates is kube-apiserver's count of writes to deployments/scale: the raw loops'
// UPDATEs and the scaler's conditional PATCHes. Dry-run writes are left out: --native-policies
// sends one (its probe that the API server calls the webhook) when a policy change widens
// the webhook configuration, and it stores nothing.
func (e *Env) scaleUpdates(ctx context.Context) (int64, error) {
	var n float64
	for _, verb := range []string{"PUT", "PATCH"} {
		v, err := e.APIServerMetric(ctx, "apiserver_request_total", `resource="deployments"`, `subresource="scale"`, fmt.Sprintf("verb=%q", verb), `dry_run=""`)
		if err != nil {
			return 0, err
		}
		n += v
	}
	return int64(n), nil
}

// scaleGetsAndEvents is kube-apiserver's count of GETs of deployments/scale and of Event
// writes.
func (e *Env) scaleGetsAndEvents(ctx context.Context) (gets, events int64, err error) {
	g, err := e.APIServerMetric(ctx, "apiserver_request_total", `resource="deployments"`, `subresource="scale"`, `verb="GET"`)
	if err != nil {
		return 0, 0, err
	}
	var ev float64
	for _, verb := range []string{"POST", "PATCH"} {
		v, err := e.APIServerMetric(ctx, "apiserver_request_total", `resource="events"`, fmt.Sprintf("verb=%q", verb))
		if err != nil {
			return 0, 0, err
		}
		ev += v
	}
	return int64(g), int64(ev), nil
}

// waitEvaluated polls the binary's metrics until its scaler has evaluated at least want
// workloads: reconciled (controller_runtime_reconcile_total) or settled without a reconcile
// (replicapolicy_scaler_settled_total).
func (e *Env) waitEvaluated(ctx context.Context, timeout time.Duration, want int) error {
	deadline := time.Now().Add(timeout)
	var got float64
	for time.Now().Before(deadline) {
		m, err := e.Webhook.ScrapeMetrics()
		if err == nil {
			got = m.Sum("controller_runtime_reconcile_total", `controller="replica-policy-scaler"`) + m.Sum("replicapolicy_scaler_settled_total")
			if got >= float64(want) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%v workloads evaluated after %v, want %d", got, timeout, want)
}

// correctionsPoll is how often waitCorrections scrapes the binary's metrics. A scrape is not
// free: the binary gathers every series (its readiness series dials its own webhook server
// over TLS) and this process parses the text. Scraped every 20 ms, during a storm of 10,000
// corrections the binary's metrics handler took 18% of its CPU samples (perf) and this
// process 0.09 s of CPU a second (/proc/<pid>/stat), from the 2 cores it shares with
// kube-apiserver, and during the scaler's round only: the raw loops time themselves.
const correctionsPoll = 100 * time.Millisecond

// waitCorrections polls the binary's count of corrections until it reaches want and returns
// when the want-th correction happened: within the last poll interval, where the count
// crossed want, at the rate of the interval before it (linear; never before the last poll
// below want, never after the first at or above it). Each count is dated when its scrape's
// answer arrived, after the binary counted it: the estimate errs late, against the scaler.
func (e *Env) waitCorrections(ctx context.Context, timeout time.Duration, want int) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	type poll struct {
		at time.Time
		n  float64
	}
	var prev, last poll // the two latest polls below want
	for time.Now().Before(deadline) {
		v, err := e.WebhookMetric("replicapolicy_scaler_corrections_total")
		p := poll{time.Now(), v}
		switch {
		case err != nil:
		case v >= float64(want) && last.at.IsZero():
			return p.at, nil
		case v >= float64(want):
			return crossing(prev.at, prev.n, last.at, last.n, p.at, float64(want)), nil
		default:
			prev, last = last, p
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(correctionsPoll):
		}
	}
	return time.Time{}, fmt.Errorf("replicapolicy_scaler_corrections_total reached %v after %v, want %d", last.n, timeout, want)
}

// crossing is when a count that was n0 at t0 and n1 at t1 (below want), and at least want at
// t2, reached want: at the rate from t0 to t1, clamped to [t1, t2]; t2 without a rate.
func crossing(t0 time.Time, n0 float64, t1 time.Time, n1 float64, t2 time.Time, want float64) time.Time {
	if t0.IsZero() || n1 <= n0 {
		return t2
	}
	rate := (n1 - n0) / t1.Sub(t0).Seconds()
	at := t1.Add(time.Duration((want - n1) / rate * float64(time.Second)))
	if at.After(t2) {
		return t2
	}
	return at
}
