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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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
	// Scaler: time from the policy change until a watch of the namespace saw every violator
	// corrected, and the scale writes (PUT) kube-apiserver counted meanwhile. ScalerFirst
	// is the part of it before the first correction was stored (the reaction: the
	// ConfigMap's watch event, the policy's parse, the pass that queues the violators); the
	// rest is the corrections' span.
	ScalerTime, ScalerFirst time.Duration
	ScalerWrites            int64
	// ScalerGets and ScalerEvents are the scale GETs and the Event writes (creates and
	// patches, both API groups) kube-apiserver counted over the same time.
	ScalerGets, ScalerEvents int64
	// Raw: a tight loop of UpdateScale calls over the same Deployments, at the scaler's
	// number of workers (the floor), run after the scaler's round, and the writes counted.
	// RawBeforeTime is the same loop run before the policy change (to values the policy
	// then in force allows): the two bracket the scaler's round, so that a machine that
	// slows or speeds up during the size moves both, and their difference is the
	// measurement's resolution (rawSpread).
	RawTime, RawBeforeTime time.Duration
	RawWrites              int64
	RawConcurrency         int
	// RawGetUpdate: the same loop doing a guarded update, a GET of the scale subresource and
	// then the UPDATE with its resourceVersion (the scaler's protocol before its conditional
	// write, which needs no GET).
	RawGetUpdateTime time.Duration
	// ScalerCPU and RawCPU are the CPU time per write of the suite's processes (treeCPU:
	// kube-apiserver, etcd, the binary, this process) over the scaler's round, from the
	// policy change to the last correction, and over the raw UpdateScale loop: what a
	// correction costs the machine, which decides the rates on a machine the rounds keep
	// busy.
	ScalerCPU, RawCPU map[string]time.Duration
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
	// created at 5 replicas; for the first size the raw loop before the policy change writes
	// 4, the scaler bounds them to 3, the floor writes 2 and the guarded loop 3 again; for
	// the second, 2, then 1, 0 and 1.
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
		if err := e.StartWebhook(ctx, false); err != nil {
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
		// The raw loop before the policy change writes a value above the bound to come, which
		// the policy in force allows: every Deployment holds scaleStartMax (new) or the last
		// size's bound, neither of which is bound+1.
		e.progress("scaler: raw UpdateScale loop over the %d Deployments, %d at a time, before the policy change", n, ScalerWorkers)
		if r.RawBeforeTime, _, err = e.rawUpdateScale(ctx, n, bound+1); err != nil {
			return results, err
		}
		time.Sleep(time.Second) // let the binary's reconciles of those writes finish
		writes0, err := e.scaleUpdates(ctx)
		if err != nil {
			return results, err
		}
		gets0, events0, err := e.scaleGetsAndEvents(ctx)
		if err != nil {
			return results, err
		}
		e.progress("scaler: policy change, every one of %d Deployments now above %d replicas", n, bound)
		w, err := e.watchReplicas(ctx, nsScale, bound, n)
		if err != nil {
			return results, err
		}
		cpu0 := treeCPU(e.Webhook.Cmd.Process.Pid)
		t0 = time.Now()
		if err := e.SetPolicy(ctx, bound); err != nil {
			return results, err
		}
		first, done, err := w.wait(ctx, timeout)
		if err != nil {
			return results, fmt.Errorf("scaler corrections: %w", err)
		}
		r.ScalerTime, r.ScalerFirst = done.Sub(t0), first.Sub(t0)
		r.ScalerCPU = perWrite(cpu0, treeCPU(e.Webhook.Cmd.Process.Pid), n)
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
		if r.RawTime, r.RawCPU, err = e.rawUpdateScale(ctx, n, bound-1); err != nil {
			return results, err
		}
		writes2, err := e.scaleUpdates(ctx)
		if err != nil {
			return results, err
		}
		r.RawWrites = writes2 - writes1

		// GET then UPDATE, back to the bound itself: inside it, and above the next size's.
		e.progress("scaler: raw GET+UpdateScale loop over the same %d Deployments, %d at a time", n, ScalerWorkers)
		deps := e.Client.AppsV1().Deployments(nsScale)
		if r.RawGetUpdateTime, _, err = e.rawLoop(ctx, "raw GET+UpdateScale", n, bound, func(name string) error {
			s, err := deps.GetScale(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			s.Spec.Replicas = bound
			_, err = deps.UpdateScale(ctx, name, s, metav1.UpdateOptions{})
			return err
		}); err != nil {
			return results, err
		}
		results = append(results, r)
	}
	return results, nil
}

// rawUpdateScale is the floor: a tight loop of UpdateScale calls that sets each of the
// scaler namespace's n Deployments to value (rawLoop).
func (e *Env) rawUpdateScale(ctx context.Context, n int, value int32) (time.Duration, map[string]time.Duration, error) {
	deps := e.Client.AppsV1().Deployments(nsScale)
	return e.rawLoop(ctx, "raw UpdateScale", n, value, func(name string) error {
		_, err := deps.UpdateScale(ctx, name, &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsScale, Name: name},
			Spec:       autoscalingv1.ScaleSpec{Replicas: value},
		}, metav1.UpdateOptions{})
		return err
	})
}

// rawLoop runs write for each of the scaler namespace's n Deployments at the scaler's
// number of workers, timed until a watch saw them all hold value, and returns that time and
// the CPU time per write of the suite's processes; what names the loop in errors.
func (e *Env) rawLoop(ctx context.Context, what string, n int, value int32, write func(name string) error) (time.Duration, map[string]time.Duration, error) {
	w, err := e.watchReplicas(ctx, nsScale, value, n)
	if err != nil {
		return 0, nil, err
	}
	cpu0 := treeCPU(e.Webhook.Cmd.Process.Pid)
	t0 := time.Now()
	smp := harness.RunConcurrently(ScalerWorkers, n, func(_, j int) error { return write(scaleName(j)) })
	took := time.Since(t0)
	if smp.Errors > 0 {
		return 0, nil, fmt.Errorf("%s: %d errors, first: %v", what, smp.Errors, smp.FirstError)
	}
	if _, _, err := w.wait(ctx, 10*time.Second); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	return took, perWrite(cpu0, treeCPU(e.Webhook.Cmd.Process.Pid), n), nil
}

// rawFloor is the raw loop's time the scaler is judged against: the mean of the loops
// before and after its round. rawSpread, the difference between the two, is what the run
// can resolve (an A/A comparison: the same loop twice).
func (r ScalerResult) rawFloor() time.Duration { return (r.RawTime + r.RawBeforeTime) / 2 }

func (r ScalerResult) rawSpread() time.Duration {
	return max(r.RawTime-r.RawBeforeTime, r.RawBeforeTime-r.RawTime)
}

// replicasWatch is a watch of one namespace's Deployments that dates when the first of them,
// and when the want-th, came to hold the replicas value: a round of writes as the API server
// stored them, dated when its watch event arrived (within a millisecond of the write here).
// The scaler's round and the raw loops are watched alike, so that the watch is a load both
// pay; the binary is not asked for its metrics meanwhile (a scrape costs it CPU that the raw
// loops did not pay: 18% of its samples in a storm at one scrape per 20 ms, by perf).
type replicasWatch struct {
	first, done chan time.Time
	ended       chan error // the watch ended before want
}

// watchReplicas starts a replicasWatch of ns from now on. It asks for protobuf, as the
// binary's informers do: kube-apiserver's watch cache then encodes each event once for both,
// and this process decodes it at a fraction of JSON's cost, so that the observer takes as
// little as it can of the CPU the API server and the writers share.
func (e *Env) watchReplicas(ctx context.Context, ns string, value int32, want int) (*replicasWatch, error) {
	c := rest.CopyConfig(e.LC.Config)
	c.ContentType, c.AcceptContentTypes = runtime.ContentTypeProtobuf, runtime.ContentTypeProtobuf
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, err
	}
	l, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return nil, err
	}
	w, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		return nil, err
	}
	rw := &replicasWatch{first: make(chan time.Time, 1), done: make(chan time.Time, 1), ended: make(chan error, 1)}
	go func() {
		defer w.Stop()
		seen := make(map[string]bool, want)
		for ev := range w.ResultChan() {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok || d.Spec.Replicas == nil || *d.Spec.Replicas != value || seen[d.Name] {
				continue
			}
			seen[d.Name] = true
			if len(seen) == 1 {
				rw.first <- time.Now()
			}
			if len(seen) == want {
				rw.done <- time.Now()
				return
			}
		}
		rw.ended <- fmt.Errorf("the watch of namespace %s ended after %d of %d Deployments held %d replicas", ns, len(seen), want, value)
	}()
	return rw, nil
}

// wait returns when the first and the last Deployment came to hold the value, or an error
// when that took longer than timeout or the watch ended first.
func (rw *replicasWatch) wait(ctx context.Context, timeout time.Duration) (first, done time.Time, err error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case done = <-rw.done:
		return <-rw.first, done, nil
	case err = <-rw.ended:
	case <-t.C:
		err = fmt.Errorf("not every Deployment held the value after %v", timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	return time.Time{}, time.Time{}, err
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
// UPDATEs and the scaler's conditional UPDATEs (PUT, with the cache's resourceVersion), and
// any PATCH. Dry-run writes are left out: --native-policies sends one (its probe that the
// API server calls the webhook) when a policy change widens the webhook configuration, and
// it stores nothing.
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
