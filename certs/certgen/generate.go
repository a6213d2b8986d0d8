package certgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Names of the files in the output directory. tls.crt and tls.key are what the webhook's
// --cert-dir and a kubernetes.io/tls Secret hold; ca.crt is also the caBundle source.
const (
	CACertFile  = "ca.crt"
	CAKeyFile   = "ca.key"
	TLSCertFile = "tls.crt"
	TLSKeyFile  = "tls.key"
)

// clockSkew backdates NotBefore so that an API server whose clock is a little behind ours
// accepts a certificate made a moment ago (kubeadm and client-go's cert helpers do the same).
const clockSkew = 5 * time.Minute

// keyPair is a certificate with its private key, parsed and PEM-encoded.
type keyPair struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// Generate writes a serving certificate for o, signed by the CA in o.OutDir (created there
// when missing or when o.RotateCA is set), and reports what it wrote to out.
func Generate(o *Options, out io.Writer) error {
	return GenerateAt(o, out, time.Now())
}

// GenerateAt is Generate as if the time were now: certificates are valid from now (less a
// little clock skew) for o.Validity.
func GenerateAt(o *Options, out io.Writer, now time.Time) error {
	if err := ensureWritableDir(o.OutDir); err != nil {
		return err
	}

	var ca *keyPair
	if !o.RotateCA {
		var err error
		if ca, err = loadCA(o.OutDir, now, o.Validity); err != nil {
			return err
		}
	}
	caCreated := ca == nil
	if caCreated {
		var err error
		if ca, err = newCA(o, now); err != nil {
			return err
		}
	}
	serving, err := newServingCert(o, ca, now)
	if err != nil {
		return err
	}

	// Keys before certificates, CA before the serving pair: a reader that sees a new tls.crt
	// (the webhook watching --cert-dir) always finds its key already in place.
	type file struct {
		name string
		data []byte
		perm fs.FileMode
	}
	var files []file
	if caCreated {
		files = append(files, file{CAKeyFile, ca.keyPEM, 0o600}, file{CACertFile, ca.certPEM, 0o644})
	}
	files = append(files, file{TLSKeyFile, serving.keyPEM, 0o600}, file{TLSCertFile, serving.certPEM, 0o644})
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(o.OutDir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}

	report(out, o, ca, caCreated, serving)
	return nil
}

// report prints what was written, with the expiry dates that tell when to run the tool again.
func report(out io.Writer, o *Options, ca *keyPair, caCreated bool, serving *keyPair) {
	const when = "2006-01-02 15:04:05 MST"
	caVerb := "reused"
	if caCreated {
		caVerb = "created"
	}
	fmt.Fprintf(out, "CA:      %s %s and %s (%s, serial %x, expires %s)\n",
		caVerb, filepath.Join(o.OutDir, CACertFile), CAKeyFile, ca.cert.Subject.CommonName,
		ca.cert.SerialNumber, ca.cert.NotAfter.UTC().Format(when))
	fmt.Fprintf(out, "serving: wrote %s and %s (serial %x, expires %s)\n",
		filepath.Join(o.OutDir, TLSCertFile), TLSKeyFile, serving.cert.SerialNumber,
		serving.cert.NotAfter.UTC().Format(when))
	fmt.Fprintf(out, "         DNS names: %s\n", strings.Join(serving.cert.DNSNames, ", "))
	if len(serving.cert.IPAddresses) > 0 {
		ips := make([]string, len(serving.cert.IPAddresses))
		for i, ip := range serving.cert.IPAddresses {
			ips[i] = ip.String()
		}
		fmt.Fprintf(out, "         IP addresses: %s\n", strings.Join(ips, ", "))
	}
	if _, err := os.Stat(filepath.Join(o.OutDir, "kustomization.yaml")); err == nil {
		fmt.Fprintf(out, "next:    kubectl apply -k %s\n", filepath.Dir(filepath.Clean(o.OutDir)))
	}
}

// loadCA returns the CA stored in dir, or nil if dir holds none. A CA that is incomplete,
// unreadable, expired, or expires before a new serving certificate would is an error: the
// tool never silently replaces a CA, because that changes the caBundle.
func loadCA(dir string, now time.Time, validity time.Duration) (*keyPair, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return nil, nil
	case errors.Is(certErr, fs.ErrNotExist):
		return nil, fmt.Errorf("found %s but not %s: restore it, or pass --rotate-ca to create a new CA", keyPath, certPath)
	case errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("found %s but not %s: restore it, or pass --rotate-ca to create a new CA", certPath, keyPath)
	case certErr != nil:
		return nil, fmt.Errorf("read existing CA: %w", certErr)
	case keyErr != nil:
		return nil, fmt.Errorf("read existing CA: %w", keyErr)
	}

	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("existing CA %s: %w (pass --rotate-ca to replace it)", certPath, err)
	}
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("existing CA key %s: %w (pass --rotate-ca to replace it)", keyPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("existing %s is not a CA certificate (pass --rotate-ca to replace it)", certPath)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("existing %s does not belong to %s (pass --rotate-ca to replace both)", keyPath, certPath)
	}
	if !now.Before(cert.NotAfter) {
		return nil, fmt.Errorf("existing CA %s expired at %s: pass --rotate-ca to create a new one", certPath, cert.NotAfter.UTC())
	}
	if notAfter := now.Add(validity); notAfter.After(cert.NotAfter) {
		return nil, fmt.Errorf("existing CA %s expires at %s, before a serving certificate valid for %s would: pass --rotate-ca, or a shorter --validity",
			certPath, cert.NotAfter.UTC(), validity)
	}
	return &keyPair{cert: cert, key: key, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// newCA creates a self-signed CA that may sign only end-entity certificates.
func newCA(o *Options, now time.Time) (*keyPair, error) {
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:   o.Service + "-ca",
			Organization: []string{"replica-policy"},
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(o.CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return newKeyPair(tmpl, nil)
}

// newServingCert issues a TLS server certificate for the Service's names and the extra SANs.
func newServingCert(o *Options, ca *keyPair, now time.Time) (*keyPair, error) {
	dnsNames := o.DNSNames()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: dnsNames[0]},
		DNSNames:              dnsNames,
		IPAddresses:           o.IPAddresses(),
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(o.Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	return newKeyPair(tmpl, ca)
}

// newKeyPair makes a new ECDSA P-256 key and a certificate for it from tmpl, signed by
// parent, or self-signed when parent is nil.
func newKeyPair(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	// 128 random bits: RFC 5280 allows up to 20 octets, CA/Browser Forum asks for >= 64 bits.
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)); err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("sign certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// ParseCertificatePEM returns the first certificate (CERTIFICATE block) in the PEM data,
// such as a tls.crt or ca.crt the tool wrote.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// parsePrivateKeyPEM accepts the key encodings openssl and other tools write: PKCS#8,
// SEC 1 (EC PRIVATE KEY) and PKCS#1 (RSA PRIVATE KEY), so an existing CA can be brought in.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key block")
		}
		switch block.Type {
		case "PRIVATE KEY":
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			signer, ok := key.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported private key type %T", key)
			}
			return signer, nil
		case "EC PRIVATE KEY":
			key, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			return key, nil
		case "RSA PRIVATE KEY":
			key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			return key, nil
		}
	}
}
