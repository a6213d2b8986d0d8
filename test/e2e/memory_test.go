package e2e

import (
	"context"
	"fmt"
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
	// loadDeployments is the cluster size the memory figure is for (issue 3).
	loadDeployments = 5000
	// loadNamespaces spreads them as a real cluster would.
	loadNamespaces = 10
	// Every loadViolatorEvery-th Deployment starts above the example policy's default clamp
	// bounds (1..50), as if created during an outage; the scaler must bring each to 50.
	loadViolatorEvery = 50
	loadViolators     = loadDeployments / loadViolatorEvery
	violatorReplicas  = 80
	// loadCreateWorkers bounds the concurrent creates (the API server's default
	// max-requests-inflight is 400; etcd on 2 cores saturates long before 16).
	loadCreateWorkers = 16
	// memoryLimit is the Deployment's memory limit in manifests/base/deployment.yaml.
	memoryLimit = 256 << 20
)

// TestMemoryWith5000Deployments measures the binary's peak resident memory (VmHWM) with
// 5,000 Deployments in the cluster, from start until the scaler has corrected every
// violator, and checks it stays under the manifests' memory limit. Skipped with -short.
func TestMemoryWith5000Deployments(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 5,000 Deployments (about 40 s in all); run without -short")
	}
	bin := webhookBinary(t)
	c := startCluster(t)
	ctx := context.Background()

	// Created as during an outage: without the webhook configurations, so the violators get
	// in and the creates measure the API server alone. Restored before the binary starts.
	deleteWebhookConfigurations(t, c)
	cs := fastClient(t, c)
	start := time.Now()
	createLoad(t, cs)
	created := time.Since(start)
	t.Logf("created %d Deployments in %d namespaces in %v (%d concurrent creates, %.0f/s)",
		loadDeployments, loadNamespaces, created.Round(100*time.Millisecond), loadCreateWorkers, float64(loadDeployments)/created.Seconds())
	kubectl(t, c, "apply", "-k", c.LocalOverlay())

	start = time.Now()
	w := runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "memory"})
	ready := time.Since(start)
	harness.Eventually(t, 120*time.Second, poll, fmt.Sprintf("%d corrections (replicapolicy_scaler_corrections_total)", loadViolators), func() (bool, string) {
		v, err := w.Metric("replicapolicy_scaler_corrections_total")
		return err == nil && v >= loadViolators, fmt.Sprint(v, err)
	})
	corrected := time.Since(start)

	// Every violator is at the bound, and nothing else moved.
	var over, total int
	for i := 0; i < loadNamespaces; i++ {
		list, err := cs.AppsV1().Deployments(loadNamespace(i)).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range list.Items {
			total++
			if *d.Spec.Replicas > 50 {
				over++
			}
		}
	}
	if total != loadDeployments || over != 0 {
		t.Errorf("%d Deployments, %d still above the default's 50 replicas", total, over)
	}

	mem, err := harness.ProcessMemory(w.Cmd.Process.Pid)
	if err != nil {
		t.Fatalf("reading the process's memory: %v", err)
	}
	hwm, rss := mem.Peak, mem.Current
	t.Logf("peak RSS (VmHWM) %.1f MiB, current RSS %.1f MiB, with %d Deployments: ready after %v, %d corrections done after %v",
		float64(hwm)/(1<<20), float64(rss)/(1<<20), loadDeployments, ready.Round(100*time.Millisecond), loadViolators, corrected.Round(100*time.Millisecond))
	if hwm >= memoryLimit {
		t.Errorf("peak RSS %.1f MiB reaches the manifests' memory limit of 256 MiB: the pod would be OOM-killed", float64(hwm)/(1<<20))
	}
	stopWebhook(t, w)
	if log := w.Log(); strings.Contains(strings.ToLower(log), "forbidden") {
		t.Errorf("authorization errors in the log under the manifests' RBAC:\n%s", harness.TailLines(log, 20))
	}
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

// createLoad creates loadDeployments realistic Deployments (a pod template with resources,
// probes, environment, annotations: what the informer lists and decodes), with bounded
// concurrency.
func createLoad(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
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
				if _, err := cs.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	for i := 0; i < loadDeployments; i++ {
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
