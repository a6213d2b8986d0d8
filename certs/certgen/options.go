package certgen

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// Defaults match manifests/base: the Service the webhook configurations call, its namespace,
// and manifests/certs, the directory manifests/kustomization.yaml reads the files from.
const (
	DefaultService   = "replica-policy-webhook"
	DefaultNamespace = policy.DefaultNamespace
	DefaultOutDir    = "manifests/certs"
	// DefaultValidity is one year: rerunning the tool (or cert-manager) renews well before.
	DefaultValidity = 365 * 24 * time.Hour
	// DefaultCAValidity is ten years: a CA rotation changes the caBundle, so it should be rare.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
)

// Options configures one run of the tool.
type Options struct {
	// Service and Namespace name the Service the API server calls; the serving certificate
	// is valid for <service>, <service>.<namespace>, <service>.<namespace>.svc and
	// <service>.<namespace>.svc.cluster.local.
	Service   string
	Namespace string
	// ExtraSANs are additional subject alternative names: IP addresses become IP SANs,
	// everything else DNS SANs.
	ExtraSANs []string
	// Validity is the serving certificate's lifetime, CAValidity the CA's (when one is made).
	Validity   time.Duration
	CAValidity time.Duration
	// OutDir receives ca.crt, ca.key, tls.crt and tls.key.
	OutDir string
	// RotateCA makes a new CA even when OutDir already holds one.
	RotateCA bool
}

// NewOptions returns Options with the defaults the manifests expect.
func NewOptions() *Options {
	return &Options{
		Service:    DefaultService,
		Namespace:  DefaultNamespace,
		Validity:   DefaultValidity,
		CAValidity: DefaultCAValidity,
		OutDir:     DefaultOutDir,
	}
}

// AddFlags registers the options on fs.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Service, "service", o.Service, "name of the webhook's Service")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "namespace of the webhook's Service")
	fs.Var((*sanList)(&o.ExtraSANs), "extra-san",
		"additional subject alternative name, repeatable or comma-separated; IP addresses become IP SANs (e.g. 127.0.0.1 for a local process)")
	fs.DurationVar(&o.Validity, "validity", o.Validity, "lifetime of the serving certificate")
	fs.DurationVar(&o.CAValidity, "ca-validity", o.CAValidity, "lifetime of a newly created CA")
	fs.StringVar(&o.OutDir, "out-dir", o.OutDir,
		"directory for ca.crt, ca.key, tls.crt and tls.key (created if missing; its parent must exist)")
	fs.BoolVar(&o.RotateCA, "rotate-ca", o.RotateCA,
		"create a new CA even if out-dir has one (changes the caBundle; by default an existing CA is reused)")
}

// Validate reports every invalid option at once, naming each flag.
func (o *Options) Validate() error {
	var errs []error
	for _, msg := range validation.IsDNS1035Label(o.Service) {
		errs = append(errs, fmt.Errorf("--service %q: %s", o.Service, msg))
	}
	for _, msg := range validation.IsDNS1123Label(o.Namespace) {
		errs = append(errs, fmt.Errorf("--namespace %q: %s", o.Namespace, msg))
	}
	for _, san := range o.ExtraSANs {
		if net.ParseIP(san) != nil {
			continue
		}
		if msgs := dnsNameErrors(san); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--extra-san %q: must be an IP address or a DNS name: %s", san, strings.Join(msgs, "; ")))
		}
	}
	if o.Validity <= 0 {
		errs = append(errs, fmt.Errorf("--validity %s: must be positive", o.Validity))
	}
	if o.CAValidity <= 0 {
		errs = append(errs, fmt.Errorf("--ca-validity %s: must be positive", o.CAValidity))
	}
	if o.Validity > 0 && o.CAValidity > 0 && o.Validity > o.CAValidity {
		errs = append(errs, fmt.Errorf("--validity %s: must not exceed --ca-validity %s (a certificate must not outlive its CA)", o.Validity, o.CAValidity))
	}
	if o.OutDir == "" {
		errs = append(errs, errors.New("--out-dir: must not be empty"))
	}
	if len(errs) == 0 {
		return nil
	}
	return invalidFlags(errs)
}

// invalidFlags lists every invalid flag, one per line.
type invalidFlags []error

func (e invalidFlags) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return "invalid flags:\n  " + strings.Join(msgs, "\n  ")
}

func (e invalidFlags) Unwrap() []error { return e }

// DNSNames returns the serving certificate's DNS SANs, the in-cluster names first.
func (o *Options) DNSNames() []string {
	names := []string{
		fmt.Sprintf("%s.%s.svc", o.Service, o.Namespace),
		fmt.Sprintf("%s.%s.svc.cluster.local", o.Service, o.Namespace),
		fmt.Sprintf("%s.%s", o.Service, o.Namespace),
		o.Service,
	}
	for _, san := range o.ExtraSANs {
		if net.ParseIP(san) == nil && !slices.Contains(names, san) {
			names = append(names, san)
		}
	}
	return names
}

// IPAddresses returns the serving certificate's IP SANs.
func (o *Options) IPAddresses() []net.IP {
	var ips []net.IP
	for _, san := range o.ExtraSANs {
		ip := net.ParseIP(san)
		if ip != nil && !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	return ips
}

// dnsNameErrors validates a DNS SAN: a DNS-1123 subdomain, or a wildcard one (*.example.com).
func dnsNameErrors(name string) []string {
	if strings.HasPrefix(name, "*.") {
		return validation.IsWildcardDNS1123Subdomain(name)
	}
	return validation.IsDNS1123Subdomain(name)
}

// sanList is a flag.Value that collects repeated and comma-separated values.
type sanList []string

func (l *sanList) String() string { return strings.Join(*l, ",") }

func (l *sanList) Set(value string) error {
	for _, san := range strings.Split(value, ",") {
		if san = strings.TrimSpace(san); san != "" {
			*l = append(*l, san)
		}
	}
	return nil
}
