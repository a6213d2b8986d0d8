// Package servingcert serves the webhook's TLS certificate from --cert-dir, reloaded when
// the files change (controller-runtime's certwatcher: fsnotify, and a poll every 10 s), and
// exports the NotAfter of the certificate being served, so that an expiry is alerted on
// before the API server's calls start failing.
package servingcert

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// Names of the files in the certificate folder, as in a kubernetes.io/tls Secret.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
)

// Watcher is the serving certificate of a folder. Start (a manager Runnable) watches the
// files; GetCertificate serves the last pair that loaded.
type Watcher struct {
	*certwatcher.CertWatcher
}

// New loads dir/tls.crt and dir/tls.key; a folder without a valid pair is an error. The
// expiry metric is set now and on every rotation.
func New(dir string) (*Watcher, error) {
	cw, err := certwatcher.New(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("serving certificate in %s: %w", dir, err)
	}
	// The callback runs at once with the certificate just loaded, then after each change.
	cw.RegisterCallback(func(c tls.Certificate) {
		if leaf, err := leaf(c); err == nil {
			expiry.Set(float64(leaf.NotAfter.Unix()))
		}
	})
	return &Watcher{cw}, nil
}

// TLSConfig makes c serve the watched certificate (controller-runtime's webhook server then
// starts no watcher of its own).
func (w *Watcher) TLSConfig(c *tls.Config) { c.GetCertificate = w.GetCertificate }

// leaf is the certificate's first (serving) certificate, parsed.
func leaf(c tls.Certificate) (*x509.Certificate, error) {
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	if len(c.Certificate) == 0 {
		return nil, fmt.Errorf("no certificate in the pair")
	}
	return x509.ParseCertificate(c.Certificate[0])
}
