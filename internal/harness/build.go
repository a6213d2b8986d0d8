package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// BuildWebhook builds the webhook binary into out with exactly the Makefile target the
// Dockerfile runs (`make webhook`: static, trimmed, version stamped).
func BuildWebhook(ctx context.Context, out string) error {
	if _, err := exec.LookPath("make"); err != nil {
		return fmt.Errorf("make is required to build the binary the way the Dockerfile does: %w", err)
	}
	cmd := exec.CommandContext(ctx, "make", "-C", RepoRoot(), "webhook", "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make webhook: %w\n%s", err, b)
	}
	return nil
}

// LogWriter is an io.Writer that logs each write as a line of t's log (for a Cluster's
// progress lines).
func LogWriter(t testing.TB) io.Writer { return testWriter{t} }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// WarningClient is a client of cfg whose Warning headers land in the returned collector.
func WarningClient(cfg *rest.Config) (kubernetes.Interface, *Warnings, error) {
	cfg = rest.CopyConfig(cfg)
	warns := &Warnings{}
	cfg.WarningHandler = warns
	cs, err := kubernetes.NewForConfig(cfg)
	return cs, warns, err
}

// A WebhookBuild builds the webhook binary once for a test process (BuildWebhook) into a
// folder of its own, which Remove deletes (from TestMain, after m.Run).
type WebhookBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Binary builds the binary the first time and returns its path; a failed build fails t.
func (b *WebhookBuild) Binary(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "replica-policy-build-"); b.err != nil {
			return
		}
		out := filepath.Join(b.dir, "webhook")
		if b.err = BuildWebhook(context.Background(), out); b.err == nil {
			b.bin = out
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// Remove deletes the folder of the build, if there was one.
func (b *WebhookBuild) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// Main is the TestMain of tests that run the built binary: it silences controller-runtime's
// logger (envtest logs through it; a Cluster reports its progress itself), runs the tests,
// removes the build and exits with the tests' code.
func (b *WebhookBuild) Main(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	b.Remove()
	os.Exit(code)
}
