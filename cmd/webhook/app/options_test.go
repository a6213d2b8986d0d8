package app

import (
	"crypto/tls"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/replica-policy/replica-policy/pkg/workload"
)

func TestDefaultsAreValid(t *testing.T) {
	o := NewOptions()
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults are invalid: %v", err)
	}
	// The defaults docs/design.md ("Interfaces") documents.
	for flagName, want := range map[string]string{
		"port": "9443", "metrics-bind-address": ":8080", "health-probe-bind-address": ":8081",
		"policy-namespace": "replica-policy-system", "policy-configmap": "replica-policy",
		"leader-elect": "false", "enable-scaler": "true",
	} {
		f := fs.Lookup(flagName)
		if f == nil {
			t.Errorf("flag --%s is missing", flagName)
			continue
		}
		if f.DefValue != want {
			t.Errorf("--%s defaults to %q, want %q", flagName, f.DefValue, want)
		}
	}
}

// The defaults of the client limits and of the scaler's cap correct a storm of 10,000
// violators within 5 minutes (the design's "Scale"): a correction is one scale write and one
// Event, and the slower of the two limits decides.
func TestDefaultsCorrect10000ViolatorsIn5Minutes(t *testing.T) {
	o := NewOptions()
	perSecond := min(o.Scaler.MaxCorrectionsPerSecond, o.KubeAPIQPS/2)
	if took := 10000 / perSecond; took > 300 {
		t.Errorf("--scaler-max-corrections-per-second %v and --kube-api-qps %v correct 10,000 violators in %.0fs, want at most 300s",
			o.Scaler.MaxCorrectionsPerSecond, o.KubeAPIQPS, took)
	}
	if o.KubeAPIBurst < int(o.KubeAPIQPS) || o.KubeAPIBurst < 2*o.Scaler.CorrectionBurst {
		t.Errorf("--kube-api-burst %d is below --kube-api-qps %v or two requests per correction of --scaler-correction-burst %d",
			o.KubeAPIBurst, o.KubeAPIQPS, o.Scaler.CorrectionBurst)
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	o := NewOptions()
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	o.AddFlags(fs)
	err := fs.Parse([]string{
		"--port=70000", "--metrics-bind-address=nope", "--policy-namespace=Not_A_Namespace",
		"--policy-configmap=", "--cert-dir=", "--shutdown-delay=-1s", "--scaler-max-corrections-per-second=0",
		"--native-policies-namespace-selector=name in (a",
		"--kube-api-qps=0", "--kube-api-burst=0",
	})
	if err != nil {
		t.Fatal(err)
	}
	err = o.Validate()
	if err == nil {
		t.Fatal("invalid options were accepted")
	}
	for _, part := range []string{"--port 70000", "--metrics-bind-address", "--policy-namespace", "--policy-configmap", "--cert-dir", "--shutdown-delay", "--scaler-max-corrections-per-second", "--native-policies-namespace-selector", "--kube-api-qps 0", "--kube-api-burst 0"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error does not name %s:\n%v", part, err)
		}
	}
}

// TestMetricsCanBeDisabled: --metrics-bind-address=0 is valid and reaches controller-runtime
// as its "disabled" value, so that no metrics server is created; any other address creates one.
func TestMetricsCanBeDisabled(t *testing.T) {
	for addr, wantServer := range map[string]bool{"0": false, "127.0.0.1:0": true, ":8080": true} {
		o := NewOptions()
		o.MetricsBindAddress = addr
		if err := o.Validate(); err != nil {
			t.Fatalf("--metrics-bind-address=%s: %v", addr, err)
		}
		mo := managerOptions(o, runtime.NewScheme(), newWebhookServer(o, func(*tls.Config) {}), workload.Builtin())
		srv, err := metricsserver.NewServer(mo.Metrics, &rest.Config{Host: "https://127.0.0.1:1"}, http.DefaultClient)
		if err != nil {
			t.Fatalf("--metrics-bind-address=%s: metrics server: %v", addr, err)
		}
		if got := srv != nil; got != wantServer {
			t.Errorf("--metrics-bind-address=%s: metrics server created %t, want %t", addr, got, wantServer)
		}
	}
}

func TestCheckCertDirNamesTheMissingFile(t *testing.T) {
	dir := t.TempDir()
	err := checkCertDir(dir)
	if err == nil || !strings.Contains(err.Error(), "tls.crt") || !strings.Contains(err.Error(), "go run ./certs") {
		t.Fatalf("missing certificate: got %v, want an error naming tls.crt and the certs tool", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkCertDir(dir); err == nil || !strings.Contains(err.Error(), "tls.key") {
		t.Fatalf("missing key: got %v, want an error naming tls.key", err)
	}
}

func writeKubeconfig(t *testing.T, path, server string) {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: server}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "c"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
}

// TestRestConfigOrder checks the contract's order: --kubeconfig, $KUBECONFIG, in-cluster,
// ~/.kube/config. The in-cluster case is exercised by test/e2e, which runs the binary with
// a ServiceAccount's files mounted where client-go reads them.
func TestRestConfigOrder(t *testing.T) {
	dir := t.TempDir()
	flagFile, envFile := filepath.Join(dir, "flag"), filepath.Join(dir, "env")
	writeKubeconfig(t, flagFile, "https://flag.example:6443")
	writeKubeconfig(t, envFile, "https://env.example:6443")
	home := filepath.Join(dir, "home")
	writeKubeconfig(t, filepath.Join(home, ".kube", "config"), "https://home.example:6443")
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a cluster
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	t.Setenv("HOME", home)
	old := clientcmd.RecommendedHomeFile
	clientcmd.RecommendedHomeFile = filepath.Join(home, ".kube", "config")
	t.Cleanup(func() { clientcmd.RecommendedHomeFile = old })

	t.Setenv("KUBECONFIG", envFile)
	for _, tc := range []struct{ flag, want string }{
		{flagFile, "https://flag.example:6443"},
		{"", "https://env.example:6443"},
	} {
		cfg, _, err := restConfig(tc.flag)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != tc.want {
			t.Errorf("restConfig(%q) host = %s, want %s", tc.flag, cfg.Host, tc.want)
		}
	}
	t.Setenv("KUBECONFIG", "")
	cfg, source, err := restConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://home.example:6443" || !strings.Contains(source, ".kube/config") {
		t.Errorf("outside a cluster without a kubeconfig: host %s from %s, want ~/.kube/config", cfg.Host, source)
	}
	clientcmd.RecommendedHomeFile = filepath.Join(dir, "nowhere", "config")
	if _, _, err := restConfig(""); err == nil || !strings.Contains(err.Error(), "not in a cluster") {
		t.Errorf("no configuration at all: got %v, want a clear error", err)
	}
	if _, _, err := restConfig(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("--kubeconfig to a missing file: got %v, want an error naming it", err)
	}
}
