package harness

// A Cluster is replica-policy installed the way a user installs it, on a local control plane:
// certificates from the certs tool, `kubectl apply -k` of the manifests' local overlay, and
// the webhook binary running with the ServiceAccount token of the manifests' RBAC, so it has
// exactly the privileges it would have in a cluster. The demo (hack/demo), the end-to-end
// and reliability tests and the benchmarks use it.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// ServiceAccount is the webhook's ServiceAccount in manifests/base, in namespace
// policy.DefaultNamespace.
const ServiceAccount = "replica-policy"

// Cluster is a control plane with replica-policy's manifests applied.
type Cluster struct {
	*ControlPlane
	// Dir holds everything the cluster writes: kubeconfigs, manifests copy, certificates, logs.
	Dir string
	// AdminKubeconfig is a system:masters kubeconfig, for the user's own kubectl.
	AdminKubeconfig string
	// Manifests is the copy of manifests/ the certificates were generated into.
	Manifests string
	// CertDir holds ca.crt, tls.crt and tls.key (from the certs tool).
	CertDir string
	// Port is the webhook's HTTPS port on 127.0.0.1 that the webhook configurations call.
	Port int
	// Kubectl is the kubectl binary used.
	Kubectl string
	log     io.Writer
}

// ClusterOptions for StartCluster and StartBare.
type ClusterOptions struct {
	// Dir is the working folder (created if missing).
	Dir string
	// Port is the webhook port; 0 picks a free one.
	Port int
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// APIServerArgs are extra kube-apiserver flags, "name=value" (ControlPlaneOptions).
	APIServerArgs []string
}

// StartCluster starts a control plane, generates certificates for 127.0.0.1 and applies the
// local overlay, its webhook URLs pointing at o.Port (a free port when 0).
func StartCluster(ctx context.Context, o ClusterOptions) (*Cluster, error) {
	if o.Port == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		o.Port = p
	}
	c, err := StartBare(ctx, o, "127.0.0.1")
	if err != nil {
		return nil, err
	}
	if err := c.applyLocalOverlay(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) progress(format string, args ...any) {
	fmt.Fprintf(c.log, "==> "+format+"\n", args...)
}

func (c *Cluster) applyLocalOverlay(ctx context.Context) error {
	// The local overlay calls https://127.0.0.1:9443; another port is a kustomize patch on
	// top of it, never an edit of the manifests.
	overlay := c.LocalOverlay()
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		return err
	}
	var patches strings.Builder
	// The mutating configuration has three webhooks on /mutate (workload objects, their
	// /scale, HPAs), the validating one one on /validate (the policy).
	for _, p := range []struct {
		kind, path string
		entries    int
	}{{"MutatingWebhookConfiguration", "mutate", 3}, {"ValidatingWebhookConfiguration", "validate", 1}} {
		fmt.Fprintf(&patches, "- target: {kind: %s, name: replica-policy}\n  patch: |-\n", p.kind)
		for i := range p.entries {
			fmt.Fprintf(&patches, "    - {op: replace, path: /webhooks/%d/clientConfig/url, value: \"https://127.0.0.1:%d/%s\"}\n", i, c.Port, p.path)
		}
	}
	kust := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../manifests/overlays/local\npatches:\n%s", patches.String())
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		return err
	}
	c.progress("kubectl apply -k (the local overlay: webhook configurations call https://127.0.0.1:%d)", c.Port)
	if out, err := c.KubectlCmd(ctx, "apply", "-k", overlay); err != nil {
		return fmt.Errorf("kubectl apply -k %s: %w\n%s", overlay, err, out)
	}
	return nil
}

// KubectlCmd runs kubectl as the cluster admin and returns its combined output.
func (c *Cluster) KubectlCmd(ctx context.Context, args ...string) (string, error) {
	return c.KubectlStdin(ctx, "", args...)
}

// KubectlStdin runs kubectl as the cluster admin with stdin and returns its combined output.
func (c *Cluster) KubectlStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Kubectl, append([]string{"--kubeconfig", c.AdminKubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// ServiceAccountKubeconfig requests a token for the webhook's ServiceAccount through the
// TokenRequest API and writes a kubeconfig that authenticates with it.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, path string) error {
	return c.serviceAccountKubeconfig(ctx, path, "")
}

func (c *Cluster) serviceAccountKubeconfig(ctx context.Context, path, server string) error {
	if server == "" {
		server = c.Config.Host
	}
	token, err := c.Token(ctx)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: c.Config.CAData}
	cfg.AuthInfos[ServiceAccount] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: ServiceAccount, Namespace: policy.DefaultNamespace}
	cfg.CurrentContext = "local"
	return clientcmd.WriteToFile(*cfg, path)
}

// Token returns a fresh ServiceAccount token (for in-cluster configuration files).
func (c *Cluster) Token(ctx context.Context) (string, error) {
	tr, err := c.Client.CoreV1().ServiceAccounts(policy.DefaultNamespace).CreateToken(ctx, ServiceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(24 * 3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenRequest for %s/%s: %w", policy.DefaultNamespace, ServiceAccount, err)
	}
	return tr.Status.Token, nil
}

// WebhookTLS is a client configuration for the webhook's port as the API server has it from
// the caBundle: it trusts the certs tool's CA (CertDir/ca.crt) and checks the serving
// certificate for 127.0.0.1.
func (c *Cluster) WebhookTLS() (*tls.Config, error) {
	ca, err := os.ReadFile(filepath.Join(c.CertDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no certificate", filepath.Join(c.CertDir, "ca.crt"))
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, nil
}

// Stop stops the control plane.
func (c *Cluster) Stop() {
	if c.ControlPlane != nil {
		_ = c.ControlPlane.Stop()
	}
}

// Webhook is a running webhook binary.
type Webhook struct {
	Cmd *exec.Cmd
	// Health and Metrics are host:port of the probe and metrics endpoints.
	Health, Metrics string
	LogFile         string
	// Started is when the process was started.
	Started time.Time
	done    chan error
}

// WebhookOptions say how to run the binary.
type WebhookOptions struct {
	// Binary is the webhook binary (built with `make build`).
	Binary string
	// Name tells instances apart in log file names.
	Name string
	// Args are extra flags.
	Args []string
	// InCluster runs the binary as a Pod would, with the in-cluster configuration: the
	// KUBERNETES_SERVICE_HOST/PORT variables and the ServiceAccount's token, CA and namespace
	// files at /var/run/secrets/kubernetes.io/serviceaccount. It uses a private mount
	// namespace (unshare -m, as root) with a tmpfs there, leaving the machine untouched.
	InCluster bool
	// APIServer, when set, is the API server URL the binary uses instead of the control
	// plane's own (e.g. "https://127.0.0.1:<port>" of a proxy that a test can stall). The
	// address must be one the API server's certificate is valid for (127.0.0.1 is).
	APIServer string
	// NoWait returns as soon as the process has started, without waiting for /readyz.
	NoWait bool
}

// RunWebhook starts the binary with the ServiceAccount's privileges and waits until ready.
func (c *Cluster) RunWebhook(ctx context.Context, o WebhookOptions) (*Webhook, error) {
	if o.Name == "" {
		o.Name = "webhook"
	}
	ports, err := FreePorts(2, c.Port) // health, metrics; the webhook serves on c.Port
	if err != nil {
		return nil, err
	}
	hp, mp := ports[0], ports[1]
	w := &Webhook{
		Health:  fmt.Sprintf("127.0.0.1:%d", hp),
		Metrics: fmt.Sprintf("127.0.0.1:%d", mp),
		LogFile: filepath.Join(c.Dir, o.Name+".log"),
	}
	args := []string{
		"--cert-dir", c.CertDir,
		"--port", fmt.Sprint(c.Port),
		"--health-probe-bind-address", w.Health,
		"--metrics-bind-address", w.Metrics,
		"--leader-elect",
	}
	env := os.Environ()
	var cmd *exec.Cmd
	if o.InCluster {
		if cmd, env, err = c.inClusterCommand(ctx, o.Binary, append(args, o.Args...)); err != nil {
			return nil, err
		}
	} else {
		kc := filepath.Join(c.Dir, o.Name+".kubeconfig")
		if err := c.serviceAccountKubeconfig(ctx, kc, o.APIServer); err != nil {
			return nil, err
		}
		cmd = exec.Command(o.Binary, append(append([]string{"--kubeconfig", kc}, args...), o.Args...)...)
		env = withoutEnv(env, "KUBECONFIG")
	}
	cmd.Env = env
	if w.done, err = StartProcess(cmd, w.LogFile); err != nil {
		return nil, err
	}
	w.Cmd = cmd
	w.Started = time.Now()
	if o.NoWait {
		return w, nil
	}
	if err := w.WaitReady(ctx, 60*time.Second); err != nil {
		w.Kill()
		log, _ := os.ReadFile(w.LogFile)
		return nil, fmt.Errorf("%w\nwebhook log:\n%s", err, TailLines(string(log), 40))
	}
	return w, nil
}

// StartProcess starts cmd in a process group of its own (so that a kill of the group ends
// whatever it started), its output written to logFile, and returns a channel that receives
// its exit error once.
func StartProcess(cmd *exec.Cmd, logFile string) (chan error, error) {
	logf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	return done, nil
}

// inClusterCommand wraps the binary in a private mount namespace holding the Pod files.
func (c *Cluster) inClusterCommand(ctx context.Context, binary string, args []string) (*exec.Cmd, []string, error) {
	token, err := c.Token(ctx)
	if err != nil {
		return nil, nil, err
	}
	files := filepath.Join(c.Dir, "serviceaccount")
	if err := os.MkdirAll(files, 0o700); err != nil {
		return nil, nil, err
	}
	for name, data := range map[string][]byte{"token": []byte(token), "ca.crt": c.Config.CAData, "namespace": []byte(policy.DefaultNamespace)} {
		if err := os.WriteFile(filepath.Join(files, name), data, 0o600); err != nil {
			return nil, nil, err
		}
	}
	host, port, err := net.SplitHostPort(strings.TrimPrefix(c.Config.Host, "https://"))
	if err != nil {
		return nil, nil, fmt.Errorf("API server address %q: %w", c.Config.Host, err)
	}
	// A tmpfs over /run (which /var/run points to) hides the host's /run from this process
	// only; the ServiceAccount folder is created inside it.
	script := `set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
cp "$SA_FILES"/token "$SA_FILES"/ca.crt "$SA_FILES"/namespace /run/secrets/kubernetes.io/serviceaccount/
exec "$@"`
	cmd := exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh", binary}, args...)...)
	env := append(withoutEnv(os.Environ(), "KUBECONFIG"),
		"KUBERNETES_SERVICE_HOST="+host, "KUBERNETES_SERVICE_PORT="+port, "SA_FILES="+files,
		"HOME="+filepath.Join(c.Dir, "no-home")) // no ~/.kube/config to fall back to
	return cmd, env, nil
}

// WaitReady polls /readyz.
func (w *Webhook) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-w.done:
			w.done <- err
			return fmt.Errorf("webhook exited before it was ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get("http://" + w.Health + "/readyz?verbose")
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		last = string(body)
	}
	return fmt.Errorf("webhook not ready after %v: %s", timeout, last)
}

// Stop sends SIGTERM and waits for the exit; it returns the exit error, if any.
func (w *Webhook) Stop(timeout time.Duration) error {
	_ = w.Cmd.Process.Signal(syscall.SIGTERM)
	return w.Wait(timeout)
}

// Wait waits for the process to exit and returns its exit error (nil for exit code 0); it
// kills the process if it has not exited within timeout.
func (w *Webhook) Wait(timeout time.Duration) error {
	select {
	case err := <-w.done:
		w.done <- err
		return err
	case <-time.After(timeout):
		w.Kill()
		return fmt.Errorf("webhook did not exit within %v", timeout)
	}
}

// Running reports whether the process has not exited yet.
func (w *Webhook) Running() bool {
	select {
	case err := <-w.done:
		w.done <- err
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the process group.
func (w *Webhook) Kill() {
	if w.Cmd != nil && w.Cmd.Process != nil {
		_ = syscall.Kill(-w.Cmd.Process.Pid, syscall.SIGKILL)
	}
}

// Metric sums the series of a metric on the webhook's metrics endpoint whose label text
// contains every one of labels (e.g. `result="valid"`); a metric without such a series is
// an error.
func (w *Webhook) Metric(name string, labels ...string) (float64, error) {
	m, err := w.ScrapeMetrics()
	if err != nil {
		return 0, err
	}
	return m.Value(name, labels...)
}

// Log returns what the webhook has logged so far.
func (w *Webhook) Log() string {
	b, _ := os.ReadFile(w.LogFile)
	return string(b)
}

// findKubectl returns the machine's kubectl, else the one hack/controlplane.sh builds.
func findKubectl() (string, error) {
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p, nil
	}
	assets, err := Assets()
	if err == nil {
		if p := filepath.Join(assets, "kubectl"); fileExists(p) {
			return p, nil
		}
	}
	return "", errors.New("kubectl is not on the PATH and was not built: run `hack/controlplane.sh --with-kubectl` (make demo does)")
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		// Generated certificates of the checkout are not copied: the copy gets its own.
		if filepath.Base(filepath.Dir(path)) == "certs" && (strings.HasSuffix(path, ".crt") || strings.HasSuffix(path, ".key")) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TailLines returns the last n lines of s.
func TailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
