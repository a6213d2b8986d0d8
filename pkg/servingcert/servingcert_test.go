package servingcert

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// notAfter reads the NotAfter of dir/tls.crt as the certs tool wrote it.
func notAfter(t *testing.T, dir string) time.Time {
	t.Helper()
	na, err := harness.CertNotAfter(filepath.Join(dir, CertFile))
	if err != nil {
		t.Fatal(err)
	}
	return na
}

// TestExpiryFollowsRotation loads a certificate valid for 2 days, then rotates it the way
// the manifests' procedure does (the certs tool rerun on the folder: each file replaced by a
// rename) with one valid for 90 days: the metric follows the certificate being served.
func TestExpiryFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	if _, err := harness.GenerateCertsValidFor(dir, 48*time.Hour, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	first := notAfter(t, dir)
	w, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The callback that sets the metric runs in its own goroutine.
	harness.Eventually(t, 5*time.Second, 10*time.Millisecond, "expiry of the first certificate", func() bool {
		return testutil.ToFloat64(expiry) == float64(first.Unix())
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Start(ctx) }()

	if _, err := harness.GenerateCertsValidFor(dir, 90*24*time.Hour, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	second := notAfter(t, dir)
	if !second.After(first.Add(80 * 24 * time.Hour)) {
		t.Fatalf("the rotated certificate ends %v, the first %v", second, first)
	}
	// fsnotify sees the renames at once; the watcher's 10 s poll is the fallback.
	took := harness.Eventually(t, 25*time.Second, 50*time.Millisecond, "expiry of the rotated certificate", func() (bool, string) {
		v := testutil.ToFloat64(expiry)
		return v == float64(second.Unix()), time.Unix(int64(v), 0).UTC().String()
	})
	served, err := w.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, err := leaf(*served); err != nil || !leaf.NotAfter.Equal(second) {
		t.Fatalf("serving a certificate that ends %v (%v), want %v", leaf.NotAfter, err, second)
	}
	t.Logf("metric followed the rotation after %v", took)
}

// TestNewFailsWithoutCertificate: a folder without a pair is a clear error, not a server
// that answers every handshake with no certificate.
func TestNewFailsWithoutCertificate(t *testing.T) {
	if _, err := New(t.TempDir()); err == nil {
		t.Fatal("New of an empty folder succeeded")
	}
}
