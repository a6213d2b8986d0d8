package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/admission"
)

// bareInformerSync starts a client-go SharedInformer of every namespace's Deployments,
// nothing else, asking for contentType, and returns the time until it has synced; it fails
// unless it holds want Deployments.
func bareInformerSync(ctx context.Context, cfg *rest.Config, contentType string, want int) (time.Duration, error) {
	c := rest.CopyConfig(cfg)
	c.QPS = -1
	c.ContentType = contentType
	c.AcceptContentTypes = contentType
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	f := informers.NewSharedInformerFactory(cs, 0)
	defer func() { cancel(); f.Shutdown() }() // Shutdown waits for the informers to stop
	inf := f.Apps().V1().Deployments().Informer()
	t0 := time.Now()
	f.Start(ctx.Done())
	err = harness.Poll(ctx, 2*time.Minute+time.Duration(want)*time.Millisecond, 5*time.Millisecond, func() (bool, string) {
		return inf.HasSynced(), "not synced"
	})
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("bare informer (%s): %w", contentType, err)
	}
	if n := len(inf.GetStore().ListKeys()); n != want {
		return 0, fmt.Errorf("bare informer (%s) holds %d Deployments, want %d", contentType, n, want)
	}
	return d, nil
}

// startBinary starts the binary and returns it once ready and its scaler's start-up pass
// has seen every Deployment; it records the time to ready and the memory.
func (e *scaleEnv) startBinary(ctx context.Context, s *ScaleStep) (*harness.Webhook, error) {
	e.runs++
	w, err := e.lc.RunWebhook(ctx, harness.WebhookOptions{Binary: e.o.Binary, Name: fmt.Sprintf("scale-%d", e.runs), Args: []string{"--shutdown-delay=0"}, NoWait: true})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			w.Kill()
		}
	}()
	timeout := time.Minute + time.Duration(s.Deployments)*time.Millisecond
	client := &http.Client{Timeout: time.Second}
	err = harness.Poll(ctx, timeout, 10*time.Millisecond, func() (bool, string) {
		if !w.Running() {
			return false, "exited"
		}
		resp, err := client.Get("http://" + w.Health + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	ready := time.Since(w.Started)
	if err != nil {
		return nil, fmt.Errorf("binary not ready: %w\n%s", err, harness.TailLines(w.Log(), 20))
	}
	s.Ready = append(s.Ready, ready)
	err = harness.Poll(ctx, timeout, 20*time.Millisecond, func() (bool, string) {
		m, err := w.ScrapeMetrics()
		if err != nil {
			return false, err.Error()
		}
		// Reconciled, or settled from the cache without a reconcile (a compliant one).
		v := m.Sum("controller_runtime_reconcile_total", `controller="replica-policy-scaler"`) + m.Sum("replicapolicy_scaler_settled_total")
		return v >= float64(s.Deployments), fmt.Sprintf("%v evaluated", v)
	})
	if err != nil {
		return nil, fmt.Errorf("the scaler's start-up pass: %w", err)
	}
	mem, err := harness.ProcessMemory(w.Cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	s.Memory.Peak, s.Memory.Current = max(s.Memory.Peak, mem.Peak), max(s.Memory.Current, mem.Current)
	ok = true
	return w, nil
}

// measureAdmission sends e.o.Reviews AdmissionReviews of a /scale write from 2 to 9
// replicas to the binary's /mutate, over one kept-alive HTTPS connection as the API server
// sends them, alternating a Deployment of rule scale-selector (spread over the whole
// cluster) and the control's; each answer must clamp to scaleMax. A tenth as many go first,
// unrecorded, as a warm-up.
func (e *scaleEnv) measureAdmission(ctx context.Context, w *harness.Webhook, s *ScaleStep) error {
	tlsc, err := e.lc.WebhookTLS()
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsc, MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("https://127.0.0.1:%d%s", e.lc.Port, admission.MutatePath)
	warm := e.o.Reviews / 10
	for k := range warm + e.o.Reviews {
		// A stride prime to the size visits Deployments all over the cluster.
		ns, name := scaleTarget((k * 7919) % s.Deployments)
		for _, c := range []struct {
			ns, name string
			into     *harness.Sample
		}{{ns, name, &s.Selector}, {nsScaleControl, "w-000", &s.Name}} {
			uid := fmt.Sprintf("scale-%d-%d", s.Deployments, k)
			body := harness.ScaleReview(uid, c.ns, c.name, 2, 9).JSON()
			t0 := time.Now()
			err := review(ctx, client, url, body, uid)
			d := time.Since(t0)
			if err != nil {
				return fmt.Errorf("review of %s/%s: %w", c.ns, c.name, err)
			}
			if k >= warm {
				c.into.Latencies = append(c.into.Latencies, d)
				c.into.Elapsed += d
			}
		}
	}
	return nil
}

// review posts an AdmissionReview and checks that the answer clamps the write to scaleMax.
func review(ctx context.Context, client *http.Client, url string, body []byte, uid string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var a struct {
		Response struct {
			UID     string `json:"uid"`
			Allowed bool   `json:"allowed"`
			Patch   []byte `json:"patch"`
		} `json:"response"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("HTTP %d, not an AdmissionReview: %.200q", resp.StatusCode, raw)
	}
	want := fmt.Sprintf(`"value":%d`, scaleMax)
	if a.Response.UID != uid || !a.Response.Allowed || !bytes.Contains(a.Response.Patch, []byte(want)) {
		return fmt.Errorf("the answer does not clamp to %d: %s", scaleMax, raw)
	}
	return nil
}

// controlPlaneMemory reads the resident memory of kube-apiserver and etcd and etcd's
// database size and quota from its /metrics.
func (e *scaleEnv) controlPlaneMemory(ctx context.Context, s *ScaleStep) error {
	cp := e.lc.ControlPlane.Environment.ControlPlane
	var err error
	if s.APIServer, err = processMemoryOf("kube-apiserver", fmt.Sprintf("--secure-port=%d", cp.APIServer.SecurePort)); err != nil {
		return err
	}
	if s.Etcd, err = processMemoryOf("etcd", "--data-dir="+cp.Etcd.DataDir); err != nil {
		return err
	}
	m, err := harness.ScrapeMetrics(cp.Etcd.URL.String() + "/metrics")
	if err != nil {
		return fmt.Errorf("etcd /metrics: %w", err)
	}
	s.EtcdDB, s.EtcdQuota = m.Sum("etcd_mvcc_db_total_size_in_bytes"), m.Sum("etcd_server_quota_backend_bytes")
	return nil
}

// processMemoryOf reads the memory of the process running binary with arg among its
// arguments.
func processMemoryOf(binary, arg string) (harness.Memory, error) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		raw, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(raw), "\x00")
		if filepath.Base(args[0]) != binary || !strings.Contains(string(raw), "\x00"+arg+"\x00") {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(d), "%d", &pid); err != nil {
			continue
		}
		return harness.ProcessMemory(pid)
	}
	return harness.Memory{}, fmt.Errorf("no %s process with %s", binary, arg)
}
