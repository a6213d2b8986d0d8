package app

import (
	"errors"
	"flag"
	"fmt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/scaler"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// Options are the webhook command's flags, with defaults from NewOptions.
type Options struct {
	Kubeconfig             string
	CertDir                string
	Port                   int
	MetricsBindAddress     string
	HealthProbeBindAddress string
	PolicyNamespace        string
	PolicyConfigMap        string
	LeaderElect            bool
	EnableScaler           bool
	// WorkloadResources are the custom resources to bound besides the built-in kinds, as
	// RESOURCE.GROUP (the repeatable --workload-resource, e.g. rollouts.argoproj.io).
	WorkloadResources []string
	// NativePolicies compiles the policy into native admission policies that the API server
	// enforces in process, and narrows WebhookConfiguration to what they cannot decide.
	NativePolicies bool
	// Reports keeps an OpenReports policy report per namespace (pkg/reports).
	Reports bool
	// WebhookConfiguration is the MutatingWebhookConfiguration that registers /mutate.
	WebhookConfiguration string
	// NativeNamespaceSelector, a label selector, confines --native-policies to the namespaces
	// it selects ("" for all).
	NativeNamespaceSelector string
	// NativeClampWarnings adds to the native policies the one that warns of a clamp.
	NativeClampWarnings bool
	// Scaler holds the --scaler-* flags.
	Scaler scaler.Options
	// KubeAPIQPS and KubeAPIBurst are the client-side limits of each of the process's API
	// clients (as kube-controller-manager's flags of the same names).
	KubeAPIQPS   float64
	KubeAPIBurst int
	// ShutdownDelay is how long the process keeps serving after SIGTERM, with readiness
	// already false, so that endpoints stop sending it new requests first.
	ShutdownDelay time.Duration
	ShowVersion   bool
	Zap           zap.Options

	// inProcessTest is set by this package's tests, which call Run more than once in one
	// process.
	inProcessTest bool
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		CertDir:                filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs"), // controller-runtime's default
		Port:                   9443,
		MetricsBindAddress:     ":8080",
		HealthProbeBindAddress: ":8081",
		PolicyNamespace:        policy.DefaultNamespace,
		PolicyConfigMap:        policy.DefaultConfigMapName,
		EnableScaler:           true,
		WebhookConfiguration:   "replica-policy", // manifests/base/webhooks.yaml
		Scaler:                 scaler.DefaultOptions(),
		// A correction storm is the heaviest thing the process sends: per correction one
		// conditional scale write and one Event (each through its own client). The contract
		// is 10,000 violators corrected within 5 minutes, at least 34 corrections a second;
		// the scaler's own cap (--scaler-max-corrections-per-second, 50) does 10,000 in
		// 3m20s, and 100 requests a second keeps that cap the limit even if the write and the
		// Event shared one client, with the burst for the informers' relists and the start-up
		// pass on top. The API server's priority and fairness (the ServiceAccount's requests
		// share a priority level with other workload controllers, queued fairly) keeps such a
		// storm polite; client-go's default of 5/s would take 17 minutes and more.
		KubeAPIQPS:    100,
		KubeAPIBurst:  200,
		ShutdownDelay: 5 * time.Second,
		Zap:           zap.Options{Development: false},
	}
}

// AddFlags registers the options on fs.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig. Default: $KUBECONFIG, else the in-cluster configuration, else ~/.kube/config.")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "Folder holding tls.crt and tls.key for the webhook server; reloaded when they change.")
	fs.IntVar(&o.Port, "port", o.Port, "Port of the webhook HTTPS server.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "Address of the Prometheus metrics endpoint (plain HTTP); \"0\" disables it.")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "Address of /healthz and /readyz.")
	fs.StringVar(&o.PolicyNamespace, "policy-namespace", o.PolicyNamespace, "Namespace of the policy ConfigMap; also the webhook's own namespace (always exempt) and that of its leader-election Lease.")
	fs.StringVar(&o.PolicyConfigMap, "policy-configmap", o.PolicyConfigMap, "Name of the policy ConfigMap.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Elect a leader (Lease replica-policy-leader) so that only one replica's scaler writes; every replica serves the webhooks.")
	fs.BoolVar(&o.EnableScaler, "enable-scaler", o.EnableScaler, "Correct existing workloads outside their clamp bounds through the scale subresource.")
	fs.Func("workload-resource", "A custom resource with a scale subresource to bound besides Deployments, StatefulSets and ReplicaSets, as RESOURCE.GROUP (e.g. rollouts.argoproj.io); repeatable. Its kind and replica path are learned at start from discovery and its CRD.",
		func(v string) error {
			o.WorkloadResources = append(o.WorkloadResources, v)
			return nil
		})
	o.Scaler.AddFlags(fs)
	fs.Float64Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Requests per second each of the process's API clients may send (client-side limit); the scaler's corrections, one scale write and one Event each, stay within it at the default --scaler-max-corrections-per-second.")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Requests each API client may send in a burst above --kube-api-qps.")
	fs.BoolVar(&o.NativePolicies, "native-policies", o.NativePolicies, "Compile the policy into MutatingAdmissionPolicy and ValidatingAdmissionPolicy objects (Kubernetes 1.36+) that the API server enforces in process, keep them in step with the policy, and narrow --webhook-configuration so that the API server calls this webhook only for what they cannot decide. Needs the rights of manifests/components/native-policies.")
	fs.BoolVar(&o.Reports, "reports", o.Reports, "On the leader, keep one OpenReports policy report (openreports.io/v1alpha1 Report, named replica-policy) per namespace listing the bounded workloads and HPAs outside their bounds, for Policy Reporter and Headlamp. Needs the OpenReports CRD and the rights of manifests/components/reports. Off, the leader deletes at start the reports an earlier --reports left, where it may.")
	fs.StringVar(&o.WebhookConfiguration, "webhook-configuration", o.WebhookConfiguration, "The MutatingWebhookConfiguration that --native-policies narrows.")
	fs.BoolVar(&o.NativeClampWarnings, "native-clamp-warnings", o.NativeClampWarnings, "With --native-policies, also apply NAME-clamped, a ValidatingAdmissionPolicy that warns (and records in the audit log) when a write leaves replicas at a bound of a clamp rule, as the webhook warns of a clamp; it is a second policy on every write the clamp sees.")
	fs.StringVar(&o.NativeNamespaceSelector, "native-policies-namespace-selector", o.NativeNamespaceSelector, "A label selector of namespaces (e.g. \"kubernetes.io/metadata.name in (prod,staging)\") to which --native-policies confines the compiled policies and the webhook configuration it narrows: a gradual rollout, or several installations side by side. Default: every namespace.")
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", o.ShutdownDelay, "After SIGTERM, keep serving this long with readiness false before stopping.")
	fs.BoolVar(&o.ShowVersion, "version", false, "Print the version and exit.")
	o.Zap.BindFlags(fs)
}

// Validate reports every invalid option at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Port < 1 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d: must be between 1 and 65535", o.Port))
	}
	for name, addr := range map[string]string{"--metrics-bind-address": o.MetricsBindAddress, "--health-probe-bind-address": o.HealthProbeBindAddress} {
		if addr == "0" || (name == "--health-probe-bind-address" && addr == "") {
			continue
		}
		if _, port, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %v", name, addr, err))
		} else if _, err := strconv.Atoi(port); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: port must be a number", name, addr))
		}
	}
	for _, msg := range validation.IsDNS1123Label(o.PolicyNamespace) {
		errs = append(errs, fmt.Errorf("--policy-namespace %q: %s", o.PolicyNamespace, msg))
	}
	for _, msg := range validation.IsDNS1123Subdomain(o.PolicyConfigMap) {
		errs = append(errs, fmt.Errorf("--policy-configmap %q: %s", o.PolicyConfigMap, msg))
	}
	if o.CertDir == "" {
		errs = append(errs, errors.New("--cert-dir: must not be empty"))
	}
	seen := map[string]bool{}
	for _, r := range o.WorkloadResources {
		if err := validateWorkloadResource(r); err != nil {
			errs = append(errs, err)
		} else if seen[r] {
			errs = append(errs, fmt.Errorf("--workload-resource %q: named twice", r))
		}
		seen[r] = true
	}
	if err := o.Scaler.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !(o.KubeAPIQPS > 0) { // also rejects NaN
		errs = append(errs, fmt.Errorf("--kube-api-qps %v: must be greater than 0", o.KubeAPIQPS))
	}
	if o.KubeAPIBurst < 1 {
		errs = append(errs, fmt.Errorf("--kube-api-burst %d: must be at least 1", o.KubeAPIBurst))
	}
	for _, msg := range validation.IsDNS1123Subdomain(o.WebhookConfiguration) {
		errs = append(errs, fmt.Errorf("--webhook-configuration %q: %s", o.WebhookConfiguration, msg))
	}
	if _, err := metav1.ParseToLabelSelector(o.NativeNamespaceSelector); o.NativeNamespaceSelector != "" && err != nil {
		errs = append(errs, fmt.Errorf("--native-policies-namespace-selector %q: %w", o.NativeNamespaceSelector, err))
	}
	if o.ShutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("--shutdown-delay %s: must not be negative", o.ShutdownDelay))
	}
	return errors.Join(errs...)
}

// validateWorkloadResource checks the form RESOURCE.GROUP of a --workload-resource.
func validateWorkloadResource(v string) error {
	resource, group, ok := strings.Cut(v, ".")
	if !ok || resource == "" || group == "" {
		return fmt.Errorf("--workload-resource %q: must be RESOURCE.GROUP, e.g. rollouts.argoproj.io", v)
	}
	if msgs := validation.IsDNS1035Label(resource); len(msgs) > 0 {
		return fmt.Errorf("--workload-resource %q: resource %q: %s", v, resource, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Subdomain(group); len(msgs) > 0 {
		return fmt.Errorf("--workload-resource %q: group %q: %s", v, group, strings.Join(msgs, "; "))
	}
	if _, builtin := workload.ForResource(group, resource); builtin {
		return fmt.Errorf("--workload-resource %q: a built-in kind, always bounded", v)
	}
	return nil
}
