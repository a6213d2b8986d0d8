package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/replica-policy/replica-policy/test/controlplane"
	"github.com/replica-policy/replica-policy/test/localcluster"
)

// dbDeployment is hack/demo's database: rule "databases" of the example policy denies
// anything outside 3..7.
const dbDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: prod, labels: {replicapolicy.io/class: database}}
spec:
  replicas: 12
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: registry.k8s.io/pause:3.10}]}
`

// TestDemoFlow does what `make demo` shows, with assertions and no terminal: a clamped
// kubectl scale with its warning, a denied create naming the rule, a tightened policy that
// the scaler applies to the existing Deployment with an Event; then SIGTERM.
func TestDemoFlow(t *testing.T) {
	bin := webhookBinary(t)
	c := startCluster(t)
	ctx := context.Background()
	admin, _ := adminClient(t, c)
	w := runWebhook(t, c, localcluster.WebhookOptions{Binary: bin, Name: "demo"})

	t.Run("kubectl scale is clamped, with a warning", func(t *testing.T) {
		kubectl(t, c, "create", "namespace", "prod")
		kubectl(t, c, "-n", "prod", "create", "deployment", "web", "--image="+pauseImage, "--replicas=3")
		waitClampReady(t, c, "prod", "web", 40)
		out := kubectl(t, c, "-n", "prod", "scale", "deployment", "web", "--replicas=40")
		for _, want := range []string{`Warning: spec.replicas 40 clamped to 10 by replica policy rule "prod-web"`, "deployment.apps/web scaled"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl scale output lacks %q:\n%s", want, out)
			}
		}
		if got := strings.TrimSpace(kubectl(t, c, "-n", "prod", "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}")); got != "10" {
			t.Fatalf("replicas %s, want 10", got)
		}
	})

	t.Run("a deny rule rejects a create, naming the rule", func(t *testing.T) {
		out, err := c.KubectlStdin(ctx, dbDeployment, "apply", "-f", "-")
		if err == nil {
			t.Fatalf("the database Deployment with 12 replicas was not denied:\n%s", out)
		}
		for _, want := range []string{
			"denied the request",
			`spec.replicas: Invalid value: 12: must be within [3, 7] for Deployment "db" (replica policy rule "databases", action deny)`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("denial lacks %q:\n%s", want, out)
			}
		}
		if out, err := c.KubectlCmd(ctx, "-n", "prod", "get", "deployment", "db"); err == nil {
			t.Errorf("the denied Deployment exists:\n%s", out)
		}
	})

	t.Run("a tightened policy is applied by the scaler, with an Event", func(t *testing.T) {
		policy := kubectl(t, c, "-n", policyNamespace, "get", "configmap", policyConfigMap, "-o", "yaml")
		tightened := strings.Replace(policy, "maxReplicas: 10\n", "maxReplicas: 5\n", 1)
		if tightened == policy {
			t.Fatal("the example policy has no prod-web maxReplicas: 10 to tighten")
		}
		kubectlStdin(t, c, tightened, "apply", "-f", "-")
		applied := time.Now()
		// Design: a policy change takes effect within 2 s and the scaler starts at once.
		waitReplicas(t, admin, "prod", "web", 5, 10*time.Second)
		t.Logf("corrected %v after kubectl apply of the policy returned", time.Since(applied).Round(time.Millisecond))
		out := kubectl(t, c, "-n", "prod", "get", "events", "--field-selector", "reason=ReplicasCorrected",
			"-o", "custom-columns=OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message")
		if !strings.Contains(out, "web") || !strings.Contains(out, "prod-web") {
			t.Errorf("kubectl get events shows no ReplicasCorrected Event for web naming prod-web:\n%s", out)
		}
	})

	t.Run("SIGTERM: readiness false at once, still answering, exit 0 within 30s", func(t *testing.T) {
		checkGracefulStop(t, c, w, "prod", "web")
	})
}

// checkGracefulStop sends SIGTERM and checks the reliability contract: readiness turns false
// at once, an admission request meanwhile still gets the webhook's answer (a clamp of a
// dry-run scale of namespace/name to 40 replicas), and the process exits 0 within 30 seconds.
func checkGracefulStop(t *testing.T, c *localcluster.Cluster, w *localcluster.Webhook, namespace, name string) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- w.Stop(30 * time.Second) }()
	waitFor(t, 2*time.Second, "/readyz failing after SIGTERM", func() (bool, string) {
		resp, err := http.Get("http://" + w.Health + "/readyz")
		if err != nil {
			return true, "" // already gone is not ready either
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusOK, resp.Status
	})
	// The default --shutdown-delay (5s) keeps the webhook answering while endpoints drop it;
	// a request sent well within it must still be clamped (with failurePolicy Ignore, a
	// closed port would let it through unclamped).
	if time.Since(start) < 3*time.Second {
		s, err := c.Client.AppsV1().Deployments(namespace).UpdateScale(ctx, name, &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Spec: autoscalingv1.ScaleSpec{Replicas: 40}},
			metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil || s.Spec.Replicas == 40 {
			t.Errorf("an admission request %v after SIGTERM was not answered by the webhook: %v", time.Since(start).Round(time.Millisecond), err)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("after SIGTERM: %v (want exit code 0 within 30s)\n%s", err, tailLines(w.Log(), 30))
	}
	t.Logf("exited 0, %v after SIGTERM", time.Since(start).Round(100*time.Millisecond))
}

// TestCertificateRotationUnderLoad rotates the serving certificate (same CA, new serving
// certificate from the certs tool) while admission requests flow through the API server,
// written in place in --cert-dir and swapped by symlink as a Secret volume does. With
// failurePolicy Ignore a TLS failure would silently admit the request unchecked, so every
// response is checked for the webhook's clamp, not just for success.
func TestCertificateRotationUnderLoad(t *testing.T) {
	bin := webhookBinary(t)
	c := startCluster(t)
	ctx := context.Background()
	admin, warns := adminClient(t, c)
	kubectl(t, c, "create", "namespace", "prod")
	if _, err := admin.AppsV1().Deployments("prod").Create(ctx, deployment("prod", "rot", 3, map[string]string{"app": "api"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("written in place", func(t *testing.T) {
		// The binary reads c.CertDir, where the certs tool wrote the first certificate: rerun
		// it there (it keeps the CA and replaces tls.crt and tls.key, each by a rename).
		w := runWebhook(t, c, localcluster.WebhookOptions{Binary: bin, Name: "rotate-in-place"})
		rotationUnderLoad(t, c, w, admin, warns, func(t *testing.T) {
			if _, err := localcluster.GenerateCerts(ctx, c.CertDir, "--extra-san", "127.0.0.1"); err != nil {
				t.Fatal(err)
			}
		}, c.CertDir)
		stopWebhook(t, w)
	})

	t.Run("swapped by symlink like a Secret volume", func(t *testing.T) {
		vol := newSecretVolume(t, c.CertDir)
		w := runWebhook(t, c, localcluster.WebhookOptions{Binary: bin, Name: "rotate-symlink", Args: []string{"--cert-dir", vol.dir}})
		rotationUnderLoad(t, c, w, admin, warns, func(t *testing.T) {
			// A new serving certificate from the same CA, made next to a copy of the CA.
			staging := t.TempDir()
			for _, f := range []string{"ca.crt", "ca.key"} {
				copyFile(t, filepath.Join(c.CertDir, f), filepath.Join(staging, f))
			}
			if _, err := localcluster.GenerateCerts(ctx, staging, "--extra-san", "127.0.0.1"); err != nil {
				t.Fatal(err)
			}
			vol.update(t, staging)
		}, vol.dir)
		stopWebhook(t, w)
	})
}

// rotationUnderLoad runs admission traffic through the API server and direct TLS handshakes
// against the webhook for about 20 seconds, calls rotate 3 seconds in, and checks: no failed
// request, none that bypassed the webhook, no failed handshake, and the new certificate (read
// from certDir after rotate) served within 15 seconds.
func rotationUnderLoad(t *testing.T, c *localcluster.Cluster, w *localcluster.Webhook, admin kubernetes.Interface, warns *controlplane.Warnings, rotate func(*testing.T), certDir string) {
	t.Helper()
	ctx := context.Background()
	const (
		duration    = 20 * time.Second
		rotateAfter = 3 * time.Second
		// Reliability contract: a new certificate is served within 15 seconds.
		servedWithin = 15 * time.Second
		// Bounded rates: one admission request and one handshake every 50ms at most.
		interval = 50 * time.Millisecond
	)
	roots := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(c.CertDir, "ca.crt"))
	if err != nil || !roots.AppendCertsFromPEM(ca) {
		t.Fatalf("CA: %v", err)
	}
	oldSerial := servedSerial(t, c.Port, roots)

	// The parent's labels must be in the webhook's cache before its Scale is matched.
	waitFor(t, 15*time.Second, "dry-run scale of prod/rot clamped", func() (bool, string) {
		s, err := admin.AppsV1().Deployments("prod").UpdateScale(ctx, "rot", scaleTo("rot", 40), metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && s.Spec.Replicas == 10, fmt.Sprint(err)
	})
	warns.Take()

	var (
		stop                                = make(chan struct{})
		wg                                  sync.WaitGroup
		requests, failed, bypassed          atomic.Int64
		handshakes, handshakeFailures       atomic.Int64
		mu                                  sync.Mutex
		firstProblem, firstHandshakeProblem string
	)
	note := func(p *string, format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if *p == "" {
			*p = fmt.Sprintf(format, args...)
		}
	}
	// Admission traffic through the API server: dry-run scale updates and creates, each of
	// which the webhook clamps from 40 to 10 (rule prod-web) with a warning.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			requests.Add(1)
			var got int32
			var err error
			dryRun := []string{metav1.DryRunAll}
			if i%2 == 0 {
				var s *autoscalingv1.Scale
				if s, err = admin.AppsV1().Deployments("prod").UpdateScale(ctx, "rot", scaleTo("rot", 40), metav1.UpdateOptions{DryRun: dryRun}); err == nil {
					got = s.Spec.Replicas
				}
			} else {
				d := deployment("prod", fmt.Sprintf("probe-%d", i), 40, map[string]string{"app": "web"})
				if d, err = admin.AppsV1().Deployments("prod").Create(ctx, d, metav1.CreateOptions{DryRun: dryRun}); err == nil {
					got = *d.Spec.Replicas
				}
			}
			ws := strings.Join(warns.Take(), "\n")
			switch {
			case err != nil:
				failed.Add(1)
				note(&firstProblem, "request %d failed: %v", i, err)
			case got != 10 || !strings.Contains(ws, `clamped to 10 by replica policy rule "prod-web"`):
				bypassed.Add(1)
				note(&firstProblem, "request %d not answered by the webhook: replicas %d, warnings %q", i, got, ws)
			}
		}
	}()
	// Fresh TLS handshakes, as the API server makes whenever it opens a connection.
	var lastSerial atomic.Pointer[string]
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			handshakes.Add(1)
			serial, err := dialSerial(c.Port, roots)
			if err != nil {
				handshakeFailures.Add(1)
				note(&firstHandshakeProblem, "%v", err)
				continue
			}
			lastSerial.Store(&serial)
		}
	}()

	start := time.Now()
	time.Sleep(rotateAfter)
	rotate(t)
	rotated := time.Now()
	newSerial := fileSerial(t, filepath.Join(certDir, "tls.crt"))
	if newSerial == oldSerial {
		t.Fatalf("the certs tool did not issue a new serving certificate (serial %s)", newSerial)
	}
	var servedAfter time.Duration
	for servedAfter == 0 && time.Since(rotated) < servedWithin+time.Second {
		if s := lastSerial.Load(); s != nil && *s == newSerial {
			servedAfter = time.Since(rotated)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rest := duration - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	close(stop)
	wg.Wait()

	t.Logf("%d admission requests (%d failed, %d not answered by the webhook), %d handshakes (%d failed); new certificate served %v after the files changed",
		requests.Load(), failed.Load(), bypassed.Load(), handshakes.Load(), handshakeFailures.Load(), servedAfter.Round(time.Millisecond))
	if servedAfter == 0 || servedAfter > servedWithin {
		t.Errorf("the new certificate (serial %s) was not served within %v (still %v)", newSerial, servedWithin, lastSerial.Load())
	}
	if n := failed.Load() + bypassed.Load(); n > 0 {
		t.Errorf("%d admission requests failed or bypassed the webhook; the first: %s", n, firstProblem)
	}
	if n := handshakeFailures.Load(); n > 0 {
		t.Errorf("%d TLS handshakes failed; the first: %s", n, firstHandshakeProblem)
	}
	if resp, err := http.Get("http://" + w.Health + "/readyz?verbose"); err != nil {
		t.Errorf("readiness after the rotation: %v", err)
	} else {
		if resp.StatusCode != http.StatusOK {
			t.Errorf("not ready after the rotation: %s\n%s", resp.Status, readAll(resp.Body))
		}
		resp.Body.Close()
	}
	if requests.Load() < 50 {
		t.Errorf("only %d admission requests in %v: too few to show anything", requests.Load(), duration)
	}
}

func scaleTo(name string, replicas int32) *autoscalingv1.Scale {
	return &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "prod"}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
}

// dialSerial makes a TLS handshake with the webhook as the API server does (the caBundle's
// CA, the URL's host 127.0.0.1) and returns the served certificate's serial.
func dialSerial(port int, roots *x509.CertPool) (string, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func servedSerial(t *testing.T, port int, roots *x509.CertPool) string {
	t.Helper()
	s, err := dialSerial(port, roots)
	if err != nil {
		t.Fatalf("TLS handshake with the webhook: %v", err)
	}
	return s
}

func fileSerial(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber.String()
}

// secretVolume lays out a folder as the kubelet does for a Secret volume: the files live in
// a timestamped folder, ..data points to it, and each key is a symlink through ..data. An
// update writes a new timestamped folder and renames a new ..data symlink over the old one
// (atomic), then removes the old folder (kubernetes pkg/volume/util/atomic_writer.go).
type secretVolume struct {
	dir, current string
	n            int
}

func newSecretVolume(t *testing.T, from string) *secretVolume {
	t.Helper()
	v := &secretVolume{dir: t.TempDir()}
	v.current = v.writePayload(t, from)
	if err := os.Symlink(v.current, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(v.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func (v *secretVolume) writePayload(t *testing.T, from string) string {
	t.Helper()
	v.n++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%09d", v.n, v.n)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
		copyFile(t, filepath.Join(from, f), filepath.Join(v.dir, ts, f))
	}
	return ts
}

func (v *secretVolume) update(t *testing.T, from string) {
	t.Helper()
	old := v.current
	v.current = v.writePayload(t, from)
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(v.current, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestInCluster runs the binary as a Pod does, with no kubeconfig: the in-cluster
// configuration from KUBERNETES_SERVICE_HOST/PORT and the ServiceAccount files under
// /var/run/secrets/kubernetes.io/serviceaccount (a tmpfs in a private mount namespace), so
// with exactly the manifests' RBAC, and checks that the webhook clamps and the scaler
// corrects, and that SIGTERM ends it with exit code 0.
func TestInCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the in-cluster files are mounted in a private mount namespace (unshare -m)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed to give the process its own /var/run/secrets: %v", err)
	}
	bin := webhookBinary(t)
	c := startCluster(t)
	admin, _ := adminClient(t, c)
	w := runWebhook(t, c, localcluster.WebhookOptions{Binary: bin, Name: "in-cluster", InCluster: true})
	if log := w.Log(); !strings.Contains(log, `"from":"in-cluster ServiceAccount"`) {
		t.Fatalf("the binary did not use the in-cluster configuration:\n%s", tailLines(log, 20))
	}

	t.Run("webhook clamps", func(t *testing.T) {
		kubectl(t, c, "create", "namespace", "prod")
		kubectl(t, c, "-n", "prod", "create", "deployment", "web", "--image="+pauseImage, "--replicas=3")
		waitClampReady(t, c, "prod", "web", 40)
		out := kubectl(t, c, "-n", "prod", "scale", "deployment", "web", "--replicas=40")
		if !strings.Contains(out, `clamped to 10 by replica policy rule "prod-web"`) {
			t.Errorf("no clamp warning:\n%s", out)
		}
		waitReplicas(t, admin, "prod", "web", 10, time.Second)
	})

	t.Run("scaler corrects what got past during an outage", func(t *testing.T) {
		deleteWebhookConfigurations(t, c)
		kubectl(t, c, "-n", "prod", "create", "deployment", "api", "--image="+pauseImage, "--replicas=30")
		kubectl(t, c, "apply", "-k", c.LocalOverlay())
		waitReplicas(t, admin, "prod", "api", 10, 30*time.Second)
		waitEvent(t, admin, "prod", "Deployment", "api", "ReplicasCorrected", 10*time.Second)
	})

	t.Run("SIGTERM", func(t *testing.T) {
		checkGracefulStop(t, c, w, "prod", "web")
		if log := w.Log(); strings.Contains(strings.ToLower(log), "forbidden") {
			t.Errorf("authorization errors in the log under the manifests' RBAC:\n%s", tailLines(log, 20))
		}
	})
}

// TestDemoCommand runs hack/demo as `make demo` does, but without a terminal: no standard
// input and --no-wait. It must finish on its own with exit code 0, show each step's outcome
// and remove its working folder.
func TestDemoCommand(t *testing.T) {
	bin := webhookBinary(t)
	needKubectl(t)
	port, err := localcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./hack/demo", "--binary", bin, "--port", fmt.Sprint(port), "--no-wait")
	cmd.Dir = controlplane.RepoRoot()
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp) // its working folder, to check the cleanup
	cmd.Stdin = nil                               // no terminal
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./hack/demo --no-wait: %v\n%s", err, out)
	}
	for _, want := range []string{
		`Warning: spec.replicas 40 clamped to 10 by replica policy rule "prod-web"`,
		`(replica policy rule "databases", action deny)`,
		"corrected within",
		"ReplicasCorrected",
		"The demo took",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "replica-policy-demo-*")); len(left) > 0 {
		t.Errorf("the demo left its working folder behind: %v", left)
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
}
