package app

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// TestCorrectionStormWithDefaultLimits: the binary with its default client limits
// (--kube-api-qps, --kube-api-burst) and scaler cap corrects a correction storm (the policy
// tightened under every Deployment at once) at the rate that corrects 10,000 violators
// within 5 minutes, with one scale write and no scale read per correction, as
// kube-apiserver counts them. 500 violators keep it near 10 s; REPLICA_POLICY_STORM=2000
// measures the design's larger storm.
func TestCorrectionStormWithDefaultLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	n := 500
	if v := os.Getenv("REPLICA_POLICY_STORM"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("REPLICA_POLICY_STORM=%q: want a positive number of violators", v)
		}
	}
	f := launchWebhook(t, func(_ *harness.ControlPlane, o *Options) { o.EnableScaler = true })
	f.waitReady(t)
	ctx := context.Background()
	const ns = "storm"
	createNamespaces(t, f.client, ns)
	// No policy yet: the Deployments are created at 5 replicas, inside every bound.
	smp := harness.RunConcurrently(16, n, func(_, i int) error {
		_, err := f.client.AppsV1().Deployments(ns).Create(ctx, harness.Deployment(ns, fmt.Sprintf("s-%05d", i), 5, nil), metav1.CreateOptions{})
		return err
	})
	if smp.Errors > 0 {
		t.Fatalf("creating %d Deployments: %d errors, first %v", n, smp.Errors, smp.FirstError)
	}
	before, err := harness.APIServerMetrics(ctx, f.client)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := harness.SetPolicy(ctx, f.client, fmt.Sprintf("apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n- {name: storm, namespaces: [%s], maxReplicas: 3}\n", ns)); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 5*time.Minute, 250*time.Millisecond, "every violator corrected", func() error {
		l, err := f.client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		left := 0
		for _, d := range l.Items {
			if ptr.Deref(d.Spec.Replicas, 1) > 3 {
				left++
			}
		}
		if left > 0 {
			return fmt.Errorf("%d of %d still above 3 after %s", left, n, time.Since(t0).Round(time.Second))
		}
		return nil
	})
	took := time.Since(t0)
	time.Sleep(time.Second) // the last Events are sent asynchronously
	after, err := harness.APIServerMetrics(ctx, f.client)
	if err != nil {
		t.Fatal(err)
	}
	count := func(labels ...string) float64 {
		return after.Sum("apiserver_request_total", labels...) - before.Sum("apiserver_request_total", labels...)
	}
	updates := count(`resource="deployments"`, `subresource="scale"`, `verb="PUT"`)
	reads := count(`resource="deployments"`, `subresource="scale"`, `verb="GET"`)
	patches := count(`resource="deployments"`, `subresource="scale"`, `verb="PATCH"`)
	events := count(`resource="events"`, `verb="POST"`) + count(`resource="events"`, `verb="PATCH"`)
	rate := float64(n) / took.Seconds()
	t.Logf("%d violators corrected in %s (%.1f corrections/s; 10,000 would take %s); per correction: %.2f scale PUT, %.2f scale GET, %.2f scale PATCH, %.2f Event writes",
		n, took.Round(10*time.Millisecond), rate, time.Duration(10000/rate*float64(time.Second)).Round(time.Second), updates/float64(n), reads/float64(n), patches/float64(n), events/float64(n))
	if rate < 10000.0/300 {
		t.Errorf("%.1f corrections/s: 10,000 violators would take more than 5 minutes", rate)
	}
	if updates != float64(n) || reads != 0 || patches != 0 {
		t.Errorf("scale requests: %v PUT, %v GET, %v PATCH; want %d conditional writes (PUT) and nothing else", updates, reads, patches, n)
	}
}
