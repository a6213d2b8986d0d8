package reliability

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// TestOutageUnderLoad kills the webhook (SIGKILL) while a steady stream of out-of-bounds
// scale writes runs through the API server, keeps writing through the outage, and restarts
// it. Under the manifests' failurePolicy Ignore no write may fail; writes during the outage
// get through unclamped, and the restarted binary's scaler must bring every one of them back
// inside the bounds within 30 seconds of the restart (docs/design.md, Reliability), although the
// killed process's leader Lease must expire first.
func TestOutageUnderLoad(t *testing.T) {
	e := startCluster(t)
	w := e.runWebhook(t, "webhook-1")
	const (
		ns          = "outage"
		maxReplicas = 5
	)
	var (
		deployments = pick(10, 40)
		rate        = pick(20, 40) // writes per second
		before      = pick(3*time.Second, 10*time.Second)
		outage      = pick(5*time.Second, 20*time.Second)
		after       = pick(3*time.Second, 10*time.Second) // writes after the restart
	)
	e.mustSetPolicy(t, policyDoc("outage-cap", ns, 1, maxReplicas))
	names := e.createDeployments(t, ns, deployments, 2)
	ctx := context.Background()
	harness.Eventually(t, 10*time.Second, poll, "the policy is in force", func() bool {
		got, err := scale(ctx, e.admin, ns, names[0], 50, true)
		return err == nil && got == maxReplicas
	})

	// Every write asks for more than the bound, and for another value than the last 29
	// writes to the same Deployment, so that the webhooks' matchCondition (replicas changed)
	// always sends it to the webhook, even after a write that failed. From the restart on,
	// writes go to the first half of the Deployments only: the other half were last written
	// during the outage, and only the scaler can bring them back.
	var restarted atomic.Bool
	writes := make([]atomic.Int32, len(names))
	write := func(ctx context.Context, i int) harness.Write {
		d := i % len(names)
		if restarted.Load() {
			d = i % (len(names) / 2)
		}
		sent := 20 + writes[d].Add(1)%30
		got, err := scale(ctx, e.admin, ns, names[d], sent, false)
		return harness.Write{Target: names[d], Sent: sent, Got: got, Err: err}
	}

	failOpen0 := e.failOpen(t)
	lctx, stop := context.WithCancel(ctx)
	l := harness.StartLoad(lctx, rate, write)
	// Phase 1: the webhook is up.
	time.Sleep(before)
	// Phase 2: SIGKILL, and keep writing.
	var killedHolder string
	harness.Eventually(t, 10*time.Second, poll, "the webhook holds the scaler's Lease", func() bool {
		killedHolder = e.leaseHolder(t)
		return killedHolder != ""
	})
	killed := time.Now()
	w.Kill()
	if err := w.Wait(10 * time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("after SIGKILL the webhook exited with %v", err)
	}
	time.Sleep(outage)
	stored, err := e.replicas(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	violators := 0
	for _, r := range stored {
		if r > maxReplicas {
			violators++
		}
	}
	// Phase 3: restart, with writes going on; the clock starts when the process does.
	restarted.Store(true)
	w2, err := e.RunWebhook(ctx, harness.WebhookOptions{Binary: webhookBinary, Name: "webhook-2", NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w2.Kill)
	var readyAfter atomic.Int64
	failOpenAtReady := make(chan float64, 1)
	go func() {
		if w2.WaitReady(ctx, 60*time.Second) == nil {
			readyAfter.Store(int64(time.Since(w2.Started)))
			failOpenAtReady <- e.failOpen(t)
		}
	}()
	time.AfterFunc(after, stop)
	var leaderAfter time.Duration
	harness.Eventually(t, 60*time.Second, poll, "every Deployment back inside the bounds, writes stopped", func() bool {
		if leaderAfter == 0 && e.leaseHolder(t) != killedHolder {
			leaderAfter = time.Since(w2.Started)
		}
		if lctx.Err() == nil {
			return false
		}
		m, err := e.replicas(ctx, ns)
		if err != nil {
			return false
		}
		for _, r := range m {
			if r > maxReplicas {
				return false
			}
		}
		return true
	})
	converged := time.Since(w2.Started)
	rs := l.Wait()
	failOpen := e.failOpen(t) - failOpen0
	m2 := webhookMetrics(t, w2)
	corrections := m2.Sum("replicapolicy_scaler_corrections_total", `rule="outage-cap"`)
	// Requests the restarted process answered before it had read the policy: HTTP 503, so
	// that the failurePolicy decided them, never an answer from an empty policy.
	notReady := m2.Sum("replicapolicy_admission_not_ready_total")
	if n := m2.Sum("replicapolicy_admission_decisions_total", `webhook="mutate"`, `outcome="no_rule"`); n != 0 {
		t.Errorf("the restarted process answered %v requests with no rule: an answer before the policy was read", n)
	}
	if n := e.failOpen(t) - <-failOpenAtReady; n != 0 {
		t.Errorf("the API server counted %v webhook calls that failed open after the restarted webhook was ready", n)
	}

	// Every write succeeded; each was clamped, or got through unclamped while the webhook
	// was down or starting.
	ready := w2.Started.Add(time.Duration(readyAfter.Load()))
	if readyAfter.Load() == 0 {
		t.Fatalf("the restarted webhook never became ready:\n%s", w2.Log())
	}
	var phases [3][]harness.Write // up, down (killed until the restarted process is ready), after
	var failed, slipped int
	for _, r := range rs {
		ph := 0
		switch {
		case !r.Start.Before(ready):
			ph = 2
		case !r.Start.Add(r.Dur).Before(killed):
			ph = 1
		}
		phases[ph] = append(phases[ph], r)
		switch {
		case r.Err != nil:
			// One webhook call per write, and 503 until the policy is read: nothing can
			// turn a restart into a failed write.
			failed++
			t.Errorf("write %s -> %d, %v after the kill, failed: %v", r.Target, r.Sent, r.Start.Sub(killed).Round(time.Millisecond), r.Err)
		case r.Got > maxReplicas:
			slipped++
			if ph != 1 {
				t.Errorf("write %s -> %d, %v after the kill (took %v; ready at %v), while the webhook was up, was not clamped: %d", r.Target, r.Sent,
					r.Start.Sub(killed).Round(time.Millisecond), r.Dur.Round(time.Millisecond), ready.Sub(killed).Round(time.Millisecond), r.Got)
			}
		case r.Got != maxReplicas:
			t.Errorf("write %s -> %d answered %d: neither clamped nor unchanged", r.Target, r.Sent, r.Got)
		}
	}
	// A write that fails open counts once at the API server: it calls /mutate only.
	figure(t, "writes %d (%d/s), failed %d, got through unclamped %d (API server fail-open count %v; %v requests answered 503 by the restarting process before it read the policy); Deployments outside the bounds at the restart %d/%d",
		len(rs), rate, failed, slipped, failOpen, notReady, violators, len(stored))
	figure(t, "write latency: webhook up %v; down (port closed) %v; after the restart %v", harness.Summarize(phases[0]), harness.Summarize(phases[1]), harness.Summarize(phases[2]))
	figure(t, "after the restart (%v after the kill): ready in %v, leader in %v, every Deployment inside the bounds in %v; scaler corrections %v",
		w2.Started.Sub(killed).Round(10*time.Millisecond), time.Duration(readyAfter.Load()).Round(10*time.Millisecond),
		leaderAfter.Round(10*time.Millisecond), converged.Round(10*time.Millisecond), corrections)
	if violators == 0 {
		t.Fatal("no write got through during the outage: the test did not test anything")
	}
	if converged > 30*time.Second {
		t.Errorf("violators corrected %v after the restart: the contract is 30 s", converged)
	}
	if int(corrections) < len(names)/2 {
		t.Errorf("the scaler made %v corrections; the %d Deployments last written during the outage needed one each", corrections, len(names)/2)
	}
}

// leaseHolder returns the holder of the scaler's leader-election Lease ("" if none).
func (e *env) leaseHolder(t *testing.T) string {
	t.Helper()
	l, err := e.admin.CoordinationV1().Leases(policy.DefaultNamespace).Get(context.Background(), "replica-policy-leader", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}
