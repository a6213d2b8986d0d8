package certgen

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// outputs holds what one run wrote.
type outputs struct {
	caPEM, caKeyPEM, certPEM, keyPEM []byte
	ca, cert                         *x509.Certificate
}

func readOutputs(t *testing.T, dir string) outputs {
	t.Helper()
	var o outputs
	for name, dst := range map[string]*[]byte{
		CACertFile: &o.caPEM, CAKeyFile: &o.caKeyPEM, TLSCertFile: &o.certPEM, TLSKeyFile: &o.keyPEM,
	} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		*dst = data
	}
	var err error
	if o.ca, err = ParseCertificatePEM(o.caPEM); err != nil {
		t.Fatalf("parse ca.crt: %v", err)
	}
	if o.cert, err = ParseCertificatePEM(o.certPEM); err != nil {
		t.Fatalf("parse tls.crt: %v", err)
	}
	return o
}

// runCerts runs the tool as `go run ./certs args...` would, and fails the test on error.
func runCerts(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := Run(args, &stdout, &stderr); err != nil {
		t.Fatalf("certs %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// verify checks that cert chains to caPEM for a TLS server named name.
func verify(t *testing.T, caPEM []byte, cert *x509.Certificate, name string) error {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no certificate in CA PEM")
	}
	_, err := cert.Verify(x509.VerifyOptions{
		DNSName:   name,
		Roots:     roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

func TestChainVerifiesForEveryName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out := runCerts(t, "--out-dir", dir, "--extra-san", "127.0.0.1,webhook.example.com", "--extra-san", "::1")
	got := readOutputs(t, dir)

	for _, name := range []string{
		"replica-policy-webhook.replica-policy-system.svc",
		"replica-policy-webhook.replica-policy-system.svc.cluster.local",
		"replica-policy-webhook.replica-policy-system",
		"replica-policy-webhook",
		"webhook.example.com",
		"127.0.0.1",
		"::1",
	} {
		if err := verify(t, got.caPEM, got.cert, name); err != nil {
			t.Errorf("serving certificate does not verify for %q: %v", name, err)
		}
	}
	for _, name := range []string{"other.replica-policy-system.svc", "127.0.0.2"} {
		if err := verify(t, got.caPEM, got.cert, name); err == nil {
			t.Errorf("serving certificate verifies for %q, which it was not issued for", name)
		}
	}
	if len(got.cert.IPAddresses) != 2 {
		t.Errorf("IP SANs = %v, want 127.0.0.1 and ::1 only (IPs must not become DNS names)", got.cert.IPAddresses)
	}
	if !got.ca.IsCA || got.cert.IsCA {
		t.Errorf("IsCA: CA %v, serving %v; want true, false", got.ca.IsCA, got.cert.IsCA)
	}
	for _, want := range []string{"created", "expires", "127.0.0.1", dir} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not mention %q:\n%s", want, out)
		}
	}
}

func TestServesTLSWithGeneratedFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	runCerts(t, "--out-dir", dir, "--extra-san", "127.0.0.1")
	got := readOutputs(t, dir)

	// What the webhook does with --cert-dir: load tls.crt and tls.key as a pair.
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile))
	if err != nil {
		t.Fatalf("tls.crt and tls.key do not form a key pair: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()

	// What the API server does with the caBundle.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(got.caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Get(srv.URL) // https://127.0.0.1:<port>
	if err != nil {
		t.Fatalf("HTTPS request trusting only ca.crt: %v", err)
	}
	_ = resp.Body.Close()
}

func TestValidityHonoured(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	opts := NewOptions()
	opts.OutDir = dir
	opts.Validity = 48 * time.Hour
	opts.CAValidity = 1000 * time.Hour
	if err := GenerateAt(opts, io.Discard, now); err != nil {
		t.Fatal(err)
	}
	got := readOutputs(t, dir)
	for _, c := range []struct {
		name            string
		cert            *x509.Certificate
		notAfter        time.Time
		wantNotBeforeAt time.Time
	}{
		{"serving", got.cert, now.Add(48 * time.Hour), now.Add(-clockSkew)},
		{"CA", got.ca, now.Add(1000 * time.Hour), now.Add(-clockSkew)},
	} {
		if !c.cert.NotAfter.Equal(c.notAfter) {
			t.Errorf("%s NotAfter = %s, want %s", c.name, c.cert.NotAfter, c.notAfter)
		}
		if !c.cert.NotBefore.Equal(c.wantNotBeforeAt) {
			t.Errorf("%s NotBefore = %s, want %s", c.name, c.cert.NotBefore, c.wantNotBeforeAt)
		}
	}

	// Default lifetimes through the flags: one year and ten years.
	dir2 := filepath.Join(t.TempDir(), "certs")
	before := time.Now()
	runCerts(t, "--out-dir", dir2)
	got = readOutputs(t, dir2)
	if d := got.cert.NotAfter.Sub(before); d < DefaultValidity-time.Minute || d > DefaultValidity+time.Minute {
		t.Errorf("default serving validity = %s, want about %s", d, DefaultValidity)
	}
	if d := got.ca.NotAfter.Sub(before); d < DefaultCAValidity-time.Minute || d > DefaultCAValidity+time.Minute {
		t.Errorf("default CA validity = %s, want about %s", d, DefaultCAValidity)
	}
}

func TestRerunReusesCAAndIssuesNewServingCert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	runCerts(t, "--out-dir", dir)
	first := readOutputs(t, dir)

	out := runCerts(t, "--out-dir", dir)
	second := readOutputs(t, dir)
	if !strings.Contains(out, "reused") {
		t.Errorf("output does not say the CA was reused:\n%s", out)
	}
	if !bytes.Equal(first.caPEM, second.caPEM) || !bytes.Equal(first.caKeyPEM, second.caKeyPEM) {
		t.Error("rerun changed ca.crt or ca.key; the CA (and so the caBundle) must be reused")
	}
	if first.cert.SerialNumber.Cmp(second.cert.SerialNumber) == 0 {
		t.Error("rerun kept the serving certificate's serial number")
	}
	if bytes.Equal(first.keyPEM, second.keyPEM) || bytes.Equal(first.cert.RawSubjectPublicKeyInfo, second.cert.RawSubjectPublicKeyInfo) {
		t.Error("rerun kept the serving key; rotation must issue a new key")
	}
	// The old caBundle still trusts the new certificate: rotation needs no manifest change.
	if err := verify(t, first.caPEM, second.cert, "replica-policy-webhook.replica-policy-system.svc"); err != nil {
		t.Errorf("new serving certificate does not verify against the original CA: %v", err)
	}
}

func TestRotateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	runCerts(t, "--out-dir", dir)
	first := readOutputs(t, dir)

	out := runCerts(t, "--out-dir", dir, "--rotate-ca")
	second := readOutputs(t, dir)
	if !strings.Contains(out, "created") {
		t.Errorf("output does not say a CA was created:\n%s", out)
	}
	if bytes.Equal(first.caPEM, second.caPEM) || bytes.Equal(first.caKeyPEM, second.caKeyPEM) {
		t.Fatal("--rotate-ca kept the CA")
	}
	name := "replica-policy-webhook.replica-policy-system.svc"
	if err := verify(t, second.caPEM, second.cert, name); err != nil {
		t.Errorf("serving certificate does not verify against the new CA: %v", err)
	}
	if err := verify(t, first.caPEM, second.cert, name); err == nil {
		t.Error("serving certificate still verifies against the old CA")
	}
}

func TestFilePermissionsAndNoTempFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	runCerts(t, "--out-dir", dir)
	runCerts(t, "--out-dir", dir) // rewrites tls.* over existing files
	want := map[string]os.FileMode{CACertFile: 0o644, CAKeyFile: 0o600, TLSCertFile: 0o644, TLSKeyFile: 0o600}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		perm, ok := want[e.Name()]
		if !ok {
			t.Errorf("unexpected file %s left in the output directory", e.Name())
			continue
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != perm {
			t.Errorf("%s mode = %v, want %v", e.Name(), info.Mode().Perm(), perm)
		}
		delete(want, e.Name())
	}
	for name := range want {
		t.Errorf("%s was not written", name)
	}
}

func TestInvalidFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"negative validity", []string{"--validity", "-1h"}, []string{"--validity -1h0m0s: must be positive"}},
		{"zero CA validity", []string{"--ca-validity", "0s"}, []string{"--ca-validity 0s: must be positive"}},
		{"certificate outlives CA", []string{"--validity", "2h", "--ca-validity", "1h"}, []string{"must not exceed --ca-validity"}},
		{"bad namespace", []string{"--namespace", "Bad_Namespace"}, []string{`--namespace "Bad_Namespace"`, "RFC 1123 label"}},
		{"bad service", []string{"--service", "9lives"}, []string{`--service "9lives"`, "DNS-1035 label"}},
		{"bad extra SAN", []string{"--extra-san", "not a name"}, []string{`--extra-san "not a name": must be an IP address or a DNS name`}},
		{"empty out-dir", []string{"--out-dir", ""}, []string{"--out-dir: must not be empty"}},
		{"every error at once", []string{"--namespace", "-x", "--validity", "-1s"}, []string{"--namespace", "--validity"}},
		{"positional argument", []string{"extra"}, []string{`unexpected arguments ["extra"]`}},
		{"unknown flag", []string{"--rotate-cert"}, []string{"flag provided but not defined: -rotate-cert"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			args := append([]string{"--out-dir", dir}, tc.args...)
			err := Run(args, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if _, statErr := os.Stat(dir); statErr == nil {
				t.Error("invalid flags still created the output directory")
			}
		})
	}
}

func TestExtraSANsAreDeduplicated(t *testing.T) {
	opts := NewOptions()
	if err := (*sanList)(&opts.ExtraSANs).Set(" 127.0.0.1, replica-policy-webhook ,127.0.0.1,,foo.example"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(opts.DNSNames(), ","), "replica-policy-webhook.replica-policy-system.svc,"+
		"replica-policy-webhook.replica-policy-system.svc.cluster.local,replica-policy-webhook.replica-policy-system,"+
		"replica-policy-webhook,foo.example"; got != want {
		t.Errorf("DNSNames() = %s, want %s", got, want)
	}
	if ips := opts.IPAddresses(); len(ips) != 1 || ips[0].String() != "127.0.0.1" {
		t.Errorf("IPAddresses() = %v, want [127.0.0.1]", ips)
	}
}

func TestOutDirNotWritable(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, outDir, want string
	}{
		// These fail for root too, unlike permission bits.
		{"out-dir is a file", file, "exists and is not a directory"},
		{"parent is a file", filepath.Join(file, "certs"), "not a directory"},
		{"parent missing", filepath.Join(base, "missing", "certs"), "its parent must exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run([]string{"--out-dir", tc.outDir}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}

	t.Run("read-only directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root, which ignores directory permissions; covered by the cases above")
		}
		dir := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		err := Run([]string{"--out-dir", dir}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "is not writable") {
			t.Errorf("error = %v, want one saying the directory is not writable", err)
		}
	})
}

func TestBrokenExistingCA(t *testing.T) {
	t.Run("key without certificate", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "certs")
		runCerts(t, "--out-dir", dir)
		if err := os.Remove(filepath.Join(dir, CACertFile)); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(filepath.Join(dir, TLSCertFile))
		err := Run([]string{"--out-dir", dir}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--rotate-ca") {
			t.Fatalf("error = %v, want one that suggests --rotate-ca", err)
		}
		if after, _ := os.ReadFile(filepath.Join(dir, TLSCertFile)); !bytes.Equal(before, after) {
			t.Error("a failed run rewrote tls.crt")
		}
		// --rotate-ca recovers.
		runCerts(t, "--out-dir", dir, "--rotate-ca")
	})

	t.Run("key of another CA", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "certs")
		other := filepath.Join(t.TempDir(), "other")
		runCerts(t, "--out-dir", dir)
		runCerts(t, "--out-dir", other)
		key, _ := os.ReadFile(filepath.Join(other, CAKeyFile))
		if err := os.WriteFile(filepath.Join(dir, CAKeyFile), key, 0o600); err != nil {
			t.Fatal(err)
		}
		err := Run([]string{"--out-dir", dir}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "does not belong to") {
			t.Fatalf("error = %v, want a key mismatch", err)
		}
	})

	t.Run("CA expires before the new certificate would", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "certs")
		runCerts(t, "--out-dir", dir, "--ca-validity", "2h", "--validity", "1h")
		err := Run([]string{"--out-dir", dir, "--validity", "3h"}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "before a serving certificate valid for 3h0m0s would") {
			t.Fatalf("error = %v, want one about the CA expiring first", err)
		}
	})
}
