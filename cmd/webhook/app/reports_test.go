package app

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/reports"
)

// --reports through kube-apiserver with the OpenReports CRD installed: 200 workloads in 10
// namespaces (the 1,000 in 20 scaled down to keep CI fast), 20 outside their bounds
// (10 under clamp with the scaler off, 5 under deny, 5 under warn).

const reportsPolicy = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: web, namespaces: ["team-*"], selector: {matchLabels: {tier: web}}, minReplicas: 1, maxReplicas: 5}
- {name: db, namespaces: ["team-*"], selector: {matchLabels: {tier: db}}, maxReplicas: 3, action: deny}
- {name: batch, namespaces: ["team-*"], selector: {matchLabels: {tier: batch}}, maxReplicas: 4, action: warn}
`

const (
	reportNamespaces = 10
	reportWorkloads  = 20 // per namespace
)

// reportWatch counts the writes of the replica-policy reports, by namespace, as a watch
// sees them, with their times.
type reportWatch struct {
	mu     sync.Mutex
	writes map[string][]time.Time
}

func (w *reportWatch) count(ns string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.writes[ns])
}

// since returns the times of ns's writes from index i on.
func (w *reportWatch) since(ns string, i int) []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes[ns][i:])
}

func watchReports(t *testing.T, c client.WithWatch) *reportWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	wi, err := c.Watch(ctx, &openreportsv1alpha1.ReportList{})
	if err != nil {
		t.Fatal(err)
	}
	w := &reportWatch{writes: map[string][]time.Time{}}
	go func() {
		defer wi.Stop()
		for ev := range wi.ResultChan() {
			rep, ok := ev.Object.(*openreportsv1alpha1.Report)
			if !ok || rep.Name != reports.Name || (ev.Type != watch.Added && ev.Type != watch.Modified && ev.Type != watch.Deleted) {
				continue
			}
			w.mu.Lock()
			w.writes[rep.Namespace] = append(w.writes[rep.Namespace], time.Now())
			w.mu.Unlock()
		}
	}()
	return w
}

func TestReports(t *testing.T) {
	crd, err := harness.OpenReportsReportCRD()
	if err != nil {
		t.Fatal(err)
	}
	f := launchWebhookOn(t, harness.ControlPlaneOptions{
		WebhookPaths: []string{filepath.Join(harness.RepoRoot(), "manifests", "base", "webhooks.yaml")},
		CRDPaths:     []string{crd},
	}, func(_ *harness.ControlPlane, o *Options) { o.Reports = true })
	f.waitReady(t)
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := reports.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	// Polling 11 reports every 100 ms: without client-go's default 5 requests a second, which
	// would make the times measured the test's own throttling.
	cfg := rest.CopyConfig(f.env.Config)
	cfg.QPS, cfg.Burst = 1000, 1000
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	writes := watchReports(t, c)

	// The workloads, created before the policy so that the webhook lets the violators in:
	// in each namespace one clamp violator (web-0, 8 replicas), and one deny violator (db-0,
	// 6) in even namespaces or one warn violator (batch-0, 7) in odd ones; the rest inside.
	// Namespace "free" has workloads no rule bounds.
	type wl struct {
		ns, name, tier string
		replicas       int32
	}
	var wls []wl
	for i := range reportNamespaces {
		ns := fmt.Sprintf("team-%d", i)
		other := wl{ns, "db-0", "db", 6}
		if i%2 == 1 {
			other = wl{ns, "batch-0", "batch", 7}
		}
		wls = append(wls, wl{ns, "web-0", "web", 8}, other)
		for j := 2; j < reportWorkloads; j++ {
			wls = append(wls, wl{ns, fmt.Sprintf("ok-%d", j), "web", 2})
		}
	}
	for j := range 3 {
		wls = append(wls, wl{"free", fmt.Sprintf("free-%d", j), "", 40})
	}
	for i := range reportNamespaces {
		mustCreate(t, f.client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("team-%d", i)}})
	}
	mustCreate(t, f.client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "free"}})
	// Namespace team-hpa: a compliant workload whose HPA's range [1, 20] leaves its bounds.
	mustCreate(t, f.client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-hpa"}})
	wls = append(wls, wl{"team-hpa", "app", "web", 2})
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-hpa", Name: "app"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "app"},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 20,
		},
	}
	if _, err := f.client.AutoscalingV2().HorizontalPodAutoscalers("team-hpa").Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(wls))
	for i := range 8 {
		wg.Go(func() {
			for k := i; k < len(wls); k += 8 {
				w := wls[k]
				var labels map[string]string
				if w.tier != "" {
					labels = map[string]string{"tier": w.tier}
				}
				if _, err := f.client.AppsV1().Deployments(w.ns).Create(ctx, harness.Deployment(w.ns, w.name, w.replicas, labels), metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	get := func(ns string) (*openreportsv1alpha1.Report, error) {
		rep := &openreportsv1alpha1.Report{}
		return rep, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: reports.Name}, rep)
	}
	// results says what ns's report holds: its summary and "result rule name" lines.
	results := func(ns string) (string, error) {
		rep, err := get(ns)
		if err != nil {
			return "", err
		}
		lines := []string{fmt.Sprintf("source %s pass %d fail %d warn %d", rep.Source, rep.Summary.Pass, rep.Summary.Fail, rep.Summary.Warn)}
		for _, r := range rep.Results {
			lines = append(lines, fmt.Sprintf("%s %s %s %s/%s %s %s", r.Source, r.Result, r.Rule, r.Subjects[0].Kind, r.Subjects[0].Name, r.Properties["replicas"], r.Properties["bounds"]))
		}
		return strings.Join(lines, "; "), nil
	}
	want := func(i, pass int, clampFixed bool) string {
		web := "; replica-policy fail web Deployment/web-0 8 [1, 5]"
		if clampFixed {
			web = ""
		}
		if i%2 == 0 {
			fails := 2
			if clampFixed {
				fails = 1
			}
			return fmt.Sprintf("source replica-policy pass %d fail %d warn 0; replica-policy fail db Deployment/db-0 6 [0, 3]%s", pass, fails, web)
		}
		fails := 1
		if clampFixed {
			fails = 0
		}
		return fmt.Sprintf("source replica-policy pass %d fail %d warn 1%s; replica-policy warn batch Deployment/batch-0 7 [0, 4]", pass, fails, web)
	}
	allRight := func(fixed map[int]bool) func() (bool, string) {
		return func() (bool, string) {
			for i := range reportNamespaces {
				ns := fmt.Sprintf("team-%d", i)
				got, err := results(ns)
				pass := reportWorkloads - 2
				if fixed[i] {
					pass++
				}
				if w := want(i, pass, fixed[i]); err != nil || got != w {
					return false, fmt.Sprintf("%s: %v %q, want %q", ns, err, got, w)
				}
			}
			return true, ""
		}
	}

	set := time.Now()
	if err := harness.SetPolicy(ctx, f.client, reportsPolicy); err != nil {
		t.Fatal(err)
	}
	t.Run("every namespace's report right within 10s", func(t *testing.T) {
		took := harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "the 10 reports", allRight(nil))
		t.Logf("10 reports right %v after the policy was set", time.Since(set).Round(time.Millisecond))
		_ = took
		// The HPA's namespace is written by the same pass but in no set
		// order with the ten above, so it gets the same 10 s.
		hpaWant := "source replica-policy pass 1 fail 1 warn 0; replica-policy fail web HorizontalPodAutoscaler/app [1, 20] [1, 5]"
		harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "the HPA's report", func() (bool, string) {
			got, err := results("team-hpa")
			if err != nil || got != hpaWant {
				return false, fmt.Sprintf("team-hpa: %v %q, want %q", err, got, hpaWant)
			}
			return true, ""
		})
		if _, err := get("free"); !apierrors.IsNotFound(err) {
			t.Errorf("namespace free, with nothing bounded, has a report: %v", err)
		}
		rep, err := get("team-0")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rep.Results {
			if r.Policy != reports.Policy || r.Description == "" || r.Properties["action"] == "" || r.Subjects[0].Namespace != "team-0" || r.Subjects[0].UID == "" {
				t.Errorf("result %+v", r)
			}
		}
	})

	t.Run("a fixed workload leaves its report within 10s, a deny violator stays fail", func(t *testing.T) {
		for _, ns := range []string{"team-0", "team-1"} {
			if _, err := f.client.AppsV1().Deployments(ns).Patch(ctx, "web-0", "application/merge-patch+json", []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		fixed := time.Now()
		harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "web-0 out of the reports of team-0 and team-1", allRight(map[int]bool{0: true, 1: true}))
		t.Logf("fixed workloads left their reports after %v", time.Since(fixed).Round(time.Millisecond))
		got, _ := results("team-0")
		if !strings.Contains(got, "fail db Deployment/db-0") {
			t.Errorf("the deny violator db-0 is no longer fail: %s", got)
		}
	})

	t.Run("writes only on change, at most one a second per namespace", func(t *testing.T) {
		time.Sleep(1500 * time.Millisecond) // let the previous writes settle
		before := map[string]int{}
		for i := range reportNamespaces {
			ns := fmt.Sprintf("team-%d", i)
			before[ns] = writes.count(ns)
		}
		// 100 changes: 20 replica changes of the warn violator in each odd namespace over 3 s,
		// each a new message; and 50 changes that change no report (a label of a compliant
		// workload).
		start := time.Now()
		var wg sync.WaitGroup
		for i := 1; i < reportNamespaces; i += 2 {
			ns := fmt.Sprintf("team-%d", i)
			wg.Go(func() {
				for k := range 20 {
					patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, 10+k)
					if _, err := f.client.AppsV1().Deployments(ns).Patch(ctx, "batch-0", "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
						t.Error(err)
					}
					time.Sleep(150 * time.Millisecond) // 20 changes over 3 s: the cap, not the burst, decides
				}
			})
		}
		for k := range 50 {
			ns := fmt.Sprintf("team-%d", 2*(k%5))
			patch := fmt.Sprintf(`{"metadata":{"labels":{"touched":"%d"}}}`, k)
			if _, err := f.client.AppsV1().Deployments(ns).Patch(ctx, "ok-2", "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Error(err)
			}
		}
		wg.Wait()
		changed := time.Since(start)
		// The last value is in every odd report within 10 s.
		harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "the last replicas of batch-0 reported", func() (bool, string) {
			for i := 1; i < reportNamespaces; i += 2 {
				got, err := results(fmt.Sprintf("team-%d", i))
				if err != nil || !strings.Contains(got, "batch-0 29 [0, 4]") {
					return false, fmt.Sprint(got, err)
				}
			}
			return true, ""
		})
		time.Sleep(1500 * time.Millisecond) // nothing more should come
		total := 0
		var minGap time.Duration = time.Hour
		for i := range reportNamespaces {
			ns := fmt.Sprintf("team-%d", i)
			ts := writes.since(ns, before[ns])
			n := len(ts)
			total += n
			if i%2 == 0 && n != 0 {
				t.Errorf("%s: %d report writes for changes that change no report", ns, n)
			}
			if i%2 == 1 && n == 0 {
				t.Errorf("%s: no report write for 20 changes", ns)
			}
			for k := 1; k < n; k++ {
				minGap = min(minGap, ts[k].Sub(ts[k-1]))
			}
			// At most one a second: within the changes' span and the one after it.
			if limit := int(changed/time.Second) + 2; n > limit {
				t.Errorf("%s: %d writes in %v, more than one a second", ns, n, changed)
			}
		}
		// The watch sees writes a little apart from when they were sent: 900 ms of slack.
		if minGap < 900*time.Millisecond {
			t.Errorf("two writes of one report %v apart, want at least a second", minGap)
		}
		t.Logf("150 changes (100 that change 5 reports, 50 that change none) in %v: %d report writes, the closest two of one namespace %v apart", changed.Round(time.Millisecond), total, minGap.Round(time.Millisecond))
	})

	t.Run("a namespace left with nothing bounded loses its report", func(t *testing.T) {
		if err := f.client.AppsV1().Deployments("team-9").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "team-9's report deleted", func() (bool, string) {
			_, err := get("team-9")
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
	})
}

// TestReportsWithoutCRD: --reports without the OpenReports CRD runs on: ready, the webhook
// still clamps, replicapolicy_reports_active is 0. (That it says so once in its log is
// TestWaitForCRD in pkg/reports: the process-wide logger is the first Run's in this
// package.)
func TestReportsWithoutCRD(t *testing.T) {
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", harness.MustFreePort(t))
	f := startWebhook(t, func(o *Options) {
		o.Reports = true
		o.MetricsBindAddress = metricsAddr
	})
	ctx := context.Background()
	if err := harness.SetPolicy(ctx, f.client, basePolicy); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, f.client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}})
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "a clamp by the webhook", func() (bool, string) {
		d, err := f.client.AppsV1().Deployments("apps").Create(ctx, harness.Deployment("apps", "big", 40, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && ptr.Deref(d.Spec.Replicas, 0) == 10, fmt.Sprint(err, " ", replicasOf(d))
	})
	f.waitReady(t)
	m, err := harness.ScrapeMetrics("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := m.Value("replicapolicy_reports_active"); err != nil || v != 0 {
		t.Errorf("replicapolicy_reports_active %v (%v), want 0 without the CRD", v, err)
	}
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d == nil {
		return -1
	}
	return ptr.Deref(d.Spec.Replicas, -1)
}
