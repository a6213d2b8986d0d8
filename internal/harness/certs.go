package harness

import (
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/replica-policy/replica-policy/certs/certgen"
)

// GenerateCerts does what `go run ./certs --out-dir outDir --extra-san ...` does, through
// certs/certgen, and returns the tool's report: a CA (ca.crt, ca.key) and a serving
// certificate (tls.crt, tls.key) for the manifests' Service and extraSANs (e.g. "127.0.0.1"
// for a webhook on this machine). Rerun on a folder that holds a CA, it keeps the CA and
// issues a new serving certificate, each file replaced by a rename, as the manifests'
// rotation procedure does.
func GenerateCerts(outDir string, extraSANs ...string) (string, error) {
	return GenerateCertsValidFor(outDir, certgen.DefaultValidity, extraSANs...)
}

// GenerateCertsValidFor is GenerateCerts with a serving certificate valid for validity
// (the tool's --validity), e.g. one near its end for the expiry alert's test.
func GenerateCertsValidFor(outDir string, validity time.Duration, extraSANs ...string) (string, error) {
	o := certgen.NewOptions()
	o.OutDir = outDir
	o.Validity = validity
	o.ExtraSANs = extraSANs
	if err := o.Validate(); err != nil {
		return "", err
	}
	var out strings.Builder
	if err := certgen.Generate(o, &out); err != nil {
		return out.String(), fmt.Errorf("certs tool: %w", err)
	}
	return out.String(), nil
}

// ReadCert is the first certificate of a PEM file (tls.crt, ca.crt).
func ReadCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := certgen.ParseCertificatePEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// CertNotAfter is the NotAfter of the first certificate of a PEM file (tls.crt).
func CertNotAfter(path string) (time.Time, error) {
	c, err := ReadCert(path)
	if err != nil {
		return time.Time{}, err
	}
	return c.NotAfter, nil
}
