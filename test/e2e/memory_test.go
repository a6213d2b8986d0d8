package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
)

const (
	// loadDeployments is the cluster size the memory test is for (the design's Scale
	// section: 10,000 workloads), as workloads split evenly across the three built-in kinds.
	// REPLICA_POLICY_MEMORY_WORKLOADS sets another size.
	loadDeployments = 10000
	// loadNamespaces spreads them as a real cluster would.
	loadNamespaces = 10
	// Every loadViolatorEvery-th Deployment starts above the example policy's default clamp
	// bounds (1..50), as if created during an outage; the scaler must bring each to 50.
	loadViolatorEvery = 50
	violatorReplicas  = 80
	// loadCreateWorkers bounds the concurrent creates (the API server's default
	// max-requests-inflight is 400; etcd on 2 cores saturates long before 16).
	loadCreateWorkers = 16
	// memoryLimit is the Deployment's memory limit in manifests/base/deployment.yaml.
	memoryLimit = 256 << 20
	// contractPeak is the design's bound (Scale): a peak RSS under 48 MiB with
	// contractWorkloads workloads, start-up included. Fewer workloads need no more memory
	// (the informer caches, the start-up pass and the queue all shrink with the count), so
	// every run of up to contractWorkloads asserts it. Measured 44.3-46.6 MiB in nine runs
	// on 2026-12-07 (docs/benchmarks.md, Memory), about 27 MiB of it the binary's own pages.
	contractPeak      = 48 << 20
	contractWorkloads = 10000
	// largePeak is the design's bound with largeWorkloads workloads, asserted by runs of
	// more than contractWorkloads up to largeWorkloads (measured 114.6 MiB at 100,000).
	// Larger runs check only memoryLimit.
	largePeak      = 160 << 20
	largeWorkloads = 100000
)

// loadWorkloads is the number of workloads the memory test creates.
func loadWorkloads(t *testing.T) int {
	if v := os.Getenv("REPLICA_POLICY_MEMORY_WORKLOADS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 3*loadViolatorEvery {
			t.Fatalf("REPLICA_POLICY_MEMORY_WORKLOADS=%q: want a number of at least %d", v, 3*loadViolatorEvery)
		}
		return n
	}
	return loadDeployments
}

// TestMemoryWith10000Workloads measures the binary's peak resident memory (VmHWM) with
// 10,000 workloads in the cluster, a third each Deployments, StatefulSets and ReplicaSets,
// from start until the scaler has corrected every violator, and checks it stays under the
// design's 48 MiB (160 MiB for a run of up to 100,000) and the manifests' memory limit.
// Skipped with -short.
//
//	REPLICA_POLICY_MEMORY_WORKLOADS=100000 go test -count=1 -run TestMemoryWith10000Workloads -v ./test/e2e
//
// measures another size (docs/benchmarks.md).
func TestMemoryWith10000Workloads(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 workloads (about 2 minutes in all); run without -short")
	}
	n := loadWorkloads(t)
	loadViolators := (n + loadViolatorEvery - 1) / loadViolatorEvery
	bin := webhookBinary(t)
	c := startCluster(t)
	ctx := context.Background()

	// Created as during an outage: without the webhook configurations, so the violators get
	// in and the creates measure the API server alone. Restored before the binary starts.
	deleteWebhookConfigurations(t, c)
	cs := fastClient(t, c)
	start := time.Now()
	createLoad(t, cs, n)
	created := time.Since(start)
	t.Logf("created %d workloads (%s) in %d namespaces in %v (%d concurrent creates, %.0f/s)",
		n, loadKinds(), loadNamespaces, created.Round(100*time.Millisecond), loadCreateWorkers, float64(n)/created.Seconds())
	kubectl(t, c, "apply", "-k", c.LocalOverlay())

	start = time.Now()
	w := runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "memory"})
	ready := time.Since(start)
	harness.Eventually(t, 120*time.Second+time.Duration(loadViolators)*150*time.Millisecond, poll, fmt.Sprintf("%d corrections (replicapolicy_scaler_corrections_total)", loadViolators), func() (bool, string) {
		v, err := w.Metric("replicapolicy_scaler_corrections_total")
		return err == nil && v >= float64(loadViolators), fmt.Sprint(v, err)
	})
	corrected := time.Since(start)

	// Every violator is at the bound, and nothing else moved.
	var over, total int
	for i := 0; i < loadNamespaces; i++ {
		deps, err := cs.AppsV1().Deployments(loadNamespace(i)).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		stss, err := cs.AppsV1().StatefulSets(loadNamespace(i)).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rss, err := cs.AppsV1().ReplicaSets(loadNamespace(i)).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var replicas []int32
		for _, d := range deps.Items {
			replicas = append(replicas, *d.Spec.Replicas)
		}
		for _, s := range stss.Items {
			replicas = append(replicas, *s.Spec.Replicas)
		}
		for _, r := range rss.Items {
			replicas = append(replicas, *r.Spec.Replicas)
		}
		for _, r := range replicas {
			total++
			if r > 50 {
				over++
			}
		}
	}
	if total != n || over != 0 {
		t.Errorf("%d workloads, %d still above the default's 50 replicas", total, over)
	}

	mem, err := harness.ProcessMemory(w.Cmd.Process.Pid)
	if err != nil {
		t.Fatalf("reading the process's memory: %v", err)
	}
	hwm, rss := mem.Peak, mem.Current
	t.Logf("peak RSS (VmHWM) %.1f MiB, current RSS %.1f MiB, with %d workloads (%s): ready after %v, %d corrections done after %v",
		float64(hwm)/(1<<20), float64(rss)/(1<<20), n, loadKinds(), ready.Round(100*time.Millisecond), loadViolators, corrected.Round(100*time.Millisecond))
	switch {
	case hwm >= memoryLimit:
		t.Errorf("peak RSS %.1f MiB reaches the manifests' memory limit of 256 MiB: the pod would be OOM-killed", float64(hwm)/(1<<20))
	case n <= contractWorkloads && hwm >= contractPeak:
		t.Errorf("peak RSS %.1f MiB with %d workloads: the design's bound is %d MiB for up to %d workloads", float64(hwm)/(1<<20), n, contractPeak>>20, contractWorkloads)
	case n <= largeWorkloads && hwm >= largePeak:
		t.Errorf("peak RSS %.1f MiB with %d workloads: the design's bound is %d MiB for up to %d workloads", float64(hwm)/(1<<20), n, largePeak>>20, largeWorkloads)
	}
	stopWebhook(t, w)
	if log := w.Log(); strings.Contains(strings.ToLower(log), "forbidden") {
		t.Errorf("authorization errors in the log under the manifests' RBAC:\n%s", harness.TailLines(log, 20))
	}
}

// loadKinds says which kinds the memory test creates.
func loadKinds() string {
	if os.Getenv("REPLICA_POLICY_MEMORY_DEPLOYMENTS_ONLY") == "1" {
		return "Deployments only"
	}
	return "a third each Deployments, StatefulSets, ReplicaSets"
}

func loadNamespace(i int) string { return fmt.Sprintf("load-%02d", i) }

// fastClient is an admin client without client-side rate limiting, speaking protobuf.
func fastClient(t *testing.T, c *harness.Cluster) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(c.Config)
	cfg.QPS, cfg.Burst = 5000, 5000
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// createLoad creates n realistic workloads (a pod template with resources, probes,
// environment, annotations: what the informers list and decode), in turn a Deployment, a
// StatefulSet and a ReplicaSet, with bounded concurrency.
func createLoad(t *testing.T, cs kubernetes.Interface, n int) {
	t.Helper()
	// REPLICA_POLICY_MEMORY_DEPLOYMENTS_ONLY=1: Deployments alone, the baseline the split is
	// compared with in docs/benchmarks.md.
	deploymentsOnly := loadKinds() == "Deployments only"
	ctx := context.Background()
	for i := 0; i < loadNamespaces; i++ {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: loadNamespace(i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for range loadCreateWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				d := loadDeployment(i)
				var err error
				kind := i % 3
				if deploymentsOnly {
					kind = 0
				}
				switch kind {
				case 0:
					_, err = cs.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
				case 1:
					_, err = cs.AppsV1().StatefulSets(d.Namespace).Create(ctx, &appsv1.StatefulSet{ObjectMeta: d.ObjectMeta,
						Spec: appsv1.StatefulSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template, ServiceName: d.Name}}, metav1.CreateOptions{})
				default:
					_, err = cs.AppsV1().ReplicaSets(d.Namespace).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: d.ObjectMeta,
						Spec: appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template}}, metav1.CreateOptions{})
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d creates failed, the first: %v", n, firstErr.Load())
	}
}

func loadDeployment(i int) *appsv1.Deployment {
	name := fmt.Sprintf("app-%04d", i)
	replicas := int32(1 + i%5)
	if i%loadViolatorEvery == 0 {
		replicas = violatorReplicas
	}
	labels := map[string]string{"app": name, "team": fmt.Sprintf("team-%d", i%7), "tier": []string{"web", "worker", "cache"}[i%3]}
	d := harness.Deployment(loadNamespace(i%loadNamespaces), name, replicas, labels)
	d.Annotations = map[string]string{
		"deployment.kubernetes.io/revision": "1",
		"example.com/owner":                 fmt.Sprintf("team-%d@example.com", i%7),
	}
	c := &d.Spec.Template.Spec.Containers[0]
	c.Image = fmt.Sprintf("registry.example.com/%s:v1.%d.0", name, i%13)
	c.Args = []string{"--listen=:8080", "--log-level=info", "--config=/etc/app/config.yaml"}
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}}
	c.Env = []corev1.EnvVar{
		{Name: "APP_NAME", Value: name},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "GOMAXPROCS", Value: "2"},
	}
	c.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, PeriodSeconds: 10}
	c.LivenessProbe, c.ReadinessProbe = probe, probe
	return d
}
