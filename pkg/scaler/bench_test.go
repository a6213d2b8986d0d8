package scaler_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/scaler"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// BenchmarkCorrect1000Violators measures the time from a policy change to the moment all of
// 1,000 violating Deployments are back inside their bounds, against a real kube-apiserver,
// with the corrections-per-second cap out of the way (with the default cap of 50/s, 1,000
// corrections take 20s by design). Each iteration tightens the maximum by four, so every
// Deployment is a violator again; after each, three loops over the same Deployments at the
// scaler's concurrency and client limits write one value each inside the bound (raw
// UpdateScale; GET+UpdateScale; UpdateScale+RV, the scaler's conditional write alone: the
// UPDATE with the resourceVersion of the manager's cache, no read), and scaler/<loop>
// reports the scaler's rate over the loop's (the design asks 0.9 or more of raw
// UpdateScale). Before each loop, and before the next round, the cache shows every
// Deployment at the value last written, so that UpdateScale+RV and the scaler write from
// the current resourceVersion (a stale one is a 409 Conflict). At most 10 iterations: the
// eleventh's maximum, 40 again, would find no violator. Two runs, side by side on one
// control plane: EventEach records an Event per correction (the scaler before its Event
// budget), EventBudget the default budget (100 Events per pass, the rest summarised per
// namespace and rule). Run it with:
//
//	go test ./pkg/scaler/ -run '^$' -bench Correct1000 -benchtime 3x
func BenchmarkCorrect1000Violators(b *testing.B) {
	const n = 1000
	env := harness.StartControlPlane(b, harness.ControlPlaneOptions{})
	b.Run("EventEach", func(b *testing.B) { benchCorrect(b, env, n, n) })
	b.Run("EventBudget", func(b *testing.B) { benchCorrect(b, env, n, scaler.DefaultOptions().EventBudget) })
}

// benchCorrect is BenchmarkCorrect1000Violators over n new Deployments of a namespace of
// their own, with the scaler's Event budget set to budget.
func benchCorrect(b *testing.B, env *harness.ControlPlane, n, budget int) {
	cs := env.Client
	ns := newNamespace(b, cs, nil)

	start := time.Now()
	var wg sync.WaitGroup
	names := make(chan string)
	for range 8 { // parallel creates: set-up only
		wg.Go(func() {
			for name := range names {
				createDeployment(b, cs, ns, name, 50, nil)
			}
		})
	}
	for i := range n {
		names <- fmt.Sprintf("v-%04d", i)
	}
	close(names)
	wg.Wait()
	b.Logf("created %d Deployments in %s", n, time.Since(start).Round(time.Millisecond))

	store := newStore()
	opts := testOptions()
	opts.MaxCorrectionsPerSecond, opts.CorrectionBurst = 1e6, n
	opts.EventBudget = budget
	run := startScaler(b, env.Config, store, opts, nil, nil)
	rule := "bench-" + suffix()

	// inBounds counts the Deployments of ns at want replicas, from the manager's cache (whose
	// entries are workload.Cached, which its typed List refuses).
	deployments, err := workload.NewCache(context.Background(), run.Mgr.GetCache(), workload.Builtin())
	if err != nil {
		b.Fatal(err)
	}
	inBounds := func(want int32) int {
		keys, err := deployments.Keys(context.Background(), workload.Deployment, ns)
		if err != nil {
			b.Fatal(err)
		}
		c := 0
		for _, key := range keys {
			d, err := deployments.Get(context.Background(), workload.Deployment, ns, strings.TrimPrefix(key, ns+"/"))
			if err == nil && ptr.Deref(d.Replicas(), 1) == want {
				c++
			}
		}
		return c
	}
	// waitCache waits until the cache shows every Deployment at want replicas.
	waitCache := func(want int32) {
		harness.Eventually(b, time.Minute, poll, "the cache", func() error {
			if got := inBounds(want); got != n {
				return fmt.Errorf("%d of %d Deployments at %d replicas in the cache", got, n, want)
			}
			return nil
		})
	}
	waitCache(50) // the cache holds them all

	// The floors, over the same Deployments at the scaler's concurrency and client limits
	// (env.Config), run after each of the scaler's rounds so that both see the same machine:
	// raw UpdateScale (a blind write), the guarded update (GET, then UPDATE with its
	// resourceVersion: the scaler's protocol before its conditional write) and the
	// conditional write alone (the scaler's UPDATE with the resourceVersion read from the
	// manager's cache, without reconcile or Event). Each writes one less than the one before
	// it, all inside the round's bound and above the next round's (target-4).
	deps := cs.AppsV1().Deployments(ns)
	ctx := context.Background()
	all := make([]string, n)
	for i := range all {
		all[i] = fmt.Sprintf("v-%04d", i)
	}
	floors := []struct {
		name  string
		op    func(name string, to int32) error
		total time.Duration
	}{
		{name: "UpdateScale", op: func(name string, to int32) error {
			_, err := deps.UpdateScale(ctx, name, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: autoscalingv1.ScaleSpec{Replicas: to}}, metav1.UpdateOptions{})
			return err
		}},
		{name: "GET+UpdateScale", op: func(name string, to int32) error {
			s, err := deps.GetScale(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			s.Spec.Replicas = to
			_, err = deps.UpdateScale(ctx, name, s, metav1.UpdateOptions{})
			return err
		}},
		{name: "UpdateScale+RV", op: func(name string, to int32) error {
			d, err := deployments.Get(ctx, workload.Deployment, ns, name)
			if err != nil {
				return err
			}
			_, err = deps.UpdateScale(ctx, name, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: d.GetResourceVersion()}, Spec: autoscalingv1.ScaleSpec{Replicas: to}}, metav1.UpdateOptions{})
			return err
		}},
	}

	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		target := int32(40 - 4*(i%10))
		writes0 := run.R.Counts().ScaleWrites
		t0 := time.Now()
		applyPolicy(b, store, fmt.Sprintf("rules:\n- {name: %s, namespaces: [%s], maxReplicas: %d}\n", rule, ns, target))
		for inBounds(target) != n {
			time.Sleep(10 * time.Millisecond)
		}
		d := time.Since(t0)
		total += d
		if w := run.R.Counts().ScaleWrites - writes0; w != int64(n) {
			b.Errorf("iteration %d: %d scale writes, want %d", i, w, n)
		}
		b.StopTimer()
		for j := range floors {
			to := target - 1 - int32(j)
			waitCache(to + 1)
			t0 := time.Now()
			smp := harness.RunConcurrently(opts.MaxConcurrentReconciles, n, func(_, k int) error { return floors[j].op(all[k], to) })
			floors[j].total += time.Since(t0)
			if smp.Errors > 0 {
				b.Fatalf("%s: %d errors, first %v", floors[j].name, smp.Errors, smp.FirstError)
			}
		}
		waitCache(target - int32(len(floors)))
		b.StartTimer()
	}
	b.StopTimer()
	scalerRate := float64(n*b.N) / total.Seconds()
	b.ReportMetric(total.Seconds()/float64(b.N), "s/1000-violators")
	b.ReportMetric(scalerRate, "corrections/s")
	for _, f := range floors {
		// The scaler's rate against the floor's: total time of the floor over the scaler's.
		b.ReportMetric(f.total.Seconds()/total.Seconds(), "scaler/"+f.name)
	}
	b.Logf("%d workers; scaler %.0f corrections/s; UpdateScale %.0f/s, GET+UpdateScale %.0f/s, UpdateScale+RV %.0f/s", opts.MaxConcurrentReconciles, scalerRate,
		float64(n*b.N)/floors[0].total.Seconds(), float64(n*b.N)/floors[1].total.Seconds(), float64(n*b.N)/floors[2].total.Seconds())
}
