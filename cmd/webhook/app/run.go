package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/replica-policy/replica-policy/pkg/admission"
	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/nativesync"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/reports"
	"github.com/replica-policy/replica-policy/pkg/scaler"
	"github.com/replica-policy/replica-policy/pkg/servingcert"
	"github.com/replica-policy/replica-policy/pkg/version"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// LeaderElectionID names the scaler's Lease; the Role in manifests/ grants exactly it.
const LeaderElectionID = "replica-policy-leader"

// Run runs replica-policy with the options o until ctx ends: the webhook server, the policy
// watcher, the informer caches, the scaler (unless disabled) and the health probes. It
// returns when the process should exit, with an error when it failed.
func Run(ctx context.Context, o *Options) error {
	if o.ShowVersion {
		fmt.Printf("replica-policy %s (commit %s)\n", version.Version, version.Commit)
		return nil
	}
	if err := o.Validate(); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.Zap)))
	log := ctrl.Log.WithName("setup")
	log.Info("starting replica-policy", "version", version.Version, "commit", version.Commit)
	if err := checkCertDir(o.CertDir); err != nil {
		return err
	}
	p, err := newProcess(ctx, o)
	if err != nil {
		return err
	}
	for _, add := range []func(context.Context) error{p.addPolicy, p.addAdmission, p.addNative, p.addScaler, p.addReports, p.addHealth} {
		if err := add(ctx); err != nil {
			return err
		}
	}
	return p.runUntilDrained(ctx)
}

// process is what the parts of the binary share: the manager, its client, the kinds in
// force and the policy's store and watcher. Each add* method adds one part to it.
type process struct {
	o             *Options
	log           logr.Logger
	mgr           manager.Manager
	server        webhook.Server
	cert          *servingcert.Watcher
	clientset     kubernetes.Interface
	cfg           *rest.Config
	kinds         *workload.Set
	policyOptions policy.Options
	store         *policystore.Store
	watcher       *policystore.Watcher
	lookup        *admission.CacheLookup
	// shuttingDown turns readiness false on SIGTERM, before the server stops.
	shuttingDown atomic.Bool
}

// newProcess connects to the API server, learns the kinds in force and creates the manager.
func newProcess(ctx context.Context, o *Options) (*process, error) {
	p := &process{o: o, log: ctrl.Log.WithName("setup"), policyOptions: policy.Options{AlwaysExempt: []string{o.PolicyNamespace}}}
	cfg, source, err := restConfig(o.Kubeconfig)
	if err != nil {
		return nil, err
	}
	p.log.Info("API server configuration", "from", source, "host", cfg.Host)
	// --kube-api-qps and --kube-api-burst (why the defaults: NewOptions).
	cfg.QPS, cfg.Burst = float32(o.KubeAPIQPS), o.KubeAPIBurst
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := reports.AddToScheme(scheme); err != nil {
		return nil, err
	}
	workload.AddScaledObjectToScheme(scheme)
	// The kinds in force: the built-in ones and each --workload-resource, learned from
	// discovery and its CRD; a resource that cannot be served stops the start here.
	if p.kinds, err = workload.Discover(ctx, cfg, o.WorkloadResources); err != nil {
		return nil, err
	}
	for _, k := range p.kinds.Kinds() {
		p.log.Info("bounding workload kind", "kind", k.GroupVersionKind().String(), "resource", k.GroupResource().String(), "replicas", "."+strings.Join(k.ReplicasPath, "."))
	}
	// The serving certificate, reloaded on rotation, its expiry exported (pkg/servingcert).
	if p.cert, err = servingcert.New(o.CertDir); err != nil {
		return nil, err
	}
	p.server = newWebhookServer(o, p.cert.TLSConfig)
	if p.mgr, err = ctrl.NewManager(cfg, managerOptions(o, scheme, p.server, p.kinds)); err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	if p.clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	p.cfg = cfg
	return p, nil
}

// addPolicy adds the policy ConfigMap's watcher, which fills the store.
func (p *process) addPolicy(ctx context.Context) error {
	p.store = policystore.NewStore(p.policyOptions)
	p.watcher = &policystore.Watcher{
		Store:     p.store,
		Client:    p.clientset,
		Namespace: p.o.PolicyNamespace,
		Name:      p.o.PolicyConfigMap,
		Recorder:  p.mgr.GetEventRecorder("replica-policy"),
		Log:       ctrl.Log.WithName("policy"),
	}
	return p.mgr.Add(p.watcher)
}

// addAdmission registers the webhooks, which answer 503 until the policy is read and stop
// taking requests while the process drains.
func (p *process) addAdmission(ctx context.Context) error {
	var err error
	if p.lookup, err = admission.NewCacheLookup(ctx, p.mgr.GetCache(), p.kinds); err != nil {
		return err
	}
	ref := admission.PolicyRef{Namespace: p.o.PolicyNamespace, Name: p.o.PolicyConfigMap, Options: p.policyOptions}
	mutate, validate := admission.NewHandlers(p.kinds, p.store, p.lookup, ref)
	// The manager runs the webhook server only once it is asked for it.
	hooks := p.mgr.GetWebhookServer()
	hooks.Register(admission.MutatePath, drainOnShutdown(&p.shuttingDown, admission.UntilPolicyRead(admission.Mutate, p.watcher.Ready, admission.Webhook(mutate))))
	hooks.Register(admission.ValidatePath, drainOnShutdown(&p.shuttingDown, admission.UntilPolicyRead(admission.Validate, p.watcher.Ready, admission.Webhook(validate))))
	return nil
}

// addNative adds, with --native-policies, the syncer of the native admission policies,
// which proves the API server enforces them with dry-run writes before it narrows the
// webhook configuration.
func (p *process) addNative(ctx context.Context) error {
	if !p.o.NativePolicies {
		return nil
	}
	opts := nativeSyncOptions(p.o, p.kinds)
	var err error
	if opts.Prober, err = nativesync.NewDryRunProber(ctx, p.cfg, opts.Scope); err != nil {
		return err
	}
	return p.mgr.Add(nativesync.New(p.clientset, p.store, p.watcher.Ready, opts, ctrl.Log.WithName("native-policies")))
}

// nativeSyncOptions are the syncer's options: the kinds it compiles and the webhook's
// workload entries it owns, their namespaceSelector as the manifests have it, the
// configuration's name and the scope of --native-policies-namespace-selector.
func nativeSyncOptions(o *Options, kinds *workload.Set) nativesync.Options {
	all := kinds.WorkloadKinds()
	// The native policies patch spec.replicas: a kind whose count is elsewhere stays the
	// webhook's (native.Compile leaves it out too).
	compiled := slices.DeleteFunc(slices.Clone(all), func(k policy.WorkloadKind) bool { return !k.SpecReplicas() })
	return nativesync.Options{
		Kinds:        compiled,
		WebhookKinds: all,
		NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: []string{metav1.NamespaceSystem, o.PolicyNamespace},
		}}},
		WebhookConfiguration: o.WebhookConfiguration,
		// Validate parsed it.
		Scope:   scopeOf(o.NativeNamespaceSelector),
		Compile: native.Options{ClampWarnings: o.NativeClampWarnings},
	}
}

// scopeOf is --native-policies-namespace-selector as a label selector, nil when unset.
func scopeOf(selector string) *metav1.LabelSelector {
	if selector == "" {
		return nil
	}
	ls, _ := metav1.ParseToLabelSelector(selector)
	return ls
}

// addScaler adds the scaler, unless --enable-scaler=false.
func (p *process) addScaler(ctx context.Context) error {
	if !p.o.EnableScaler {
		return nil
	}
	s := scaler.New(p.store, p.o.Scaler)
	s.Kinds = p.kinds
	if err := s.SetupWithManager(p.mgr); err != nil {
		return fmt.Errorf("setting up the scaler: %w", err)
	}
	return nil
}

// addReports adds, with --reports, the leader's OpenReports policy reports; without, the
// leader's one-off removal of the reports an earlier --reports left.
func (p *process) addReports(ctx context.Context) error {
	if !p.o.Reports {
		if err := reports.NewCleanup().SetupWithManager(p.mgr); err != nil {
			return fmt.Errorf("setting up the removal of the policy reports: %w", err)
		}
		return nil
	}
	opts := reports.Options{Scaler: reports.ScalerCorrects}
	switch {
	case !p.o.EnableScaler:
		opts.Scaler = reports.ScalerOff
	case p.o.Scaler.DryRun:
		opts.Scaler = reports.ScalerDryRun
	}
	if err := reports.New(p.store, p.kinds, p.watcher.Ready, opts).SetupWithManager(p.mgr); err != nil {
		return fmt.Errorf("setting up the policy reports: %w", err)
	}
	return nil
}

// addHealth adds the probes: ready once the server runs, the caches have synced and the
// policy has been read, and not while shutting down.
func (p *process) addHealth(ctx context.Context) error {
	if err := p.mgr.Add(p.cert); err != nil {
		return err
	}
	if err := p.mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	return addReadyChecks(p.mgr, map[string]healthz.Checker{
		"webhook":  p.server.StartedChecker(),
		"caches":   readyWhen(p.lookup.Synced, "informer caches have not synced"),
		"policy":   readyWhen(p.watcher.Ready, "the policy ConfigMap has not been read"),
		"shutdown": readyWhen(func() bool { return !p.shuttingDown.Load() }, "shutting down"),
	})
}

// runUntilDrained runs the manager until ctx ends. On SIGTERM, readiness turns false at
// once while the webhook keeps answering for ShutdownDelay, so endpoints stop routing to
// this replica before it stops listening; then the manager shuts the server down
// gracefully, finishing in-flight requests.
func (p *process) runUntilDrained(ctx context.Context) error {
	mgrCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-ctx.Done()
		p.shuttingDown.Store(true)
		p.log.Info("shutting down: readiness is now false", "delay", p.o.ShutdownDelay)
		time.Sleep(p.o.ShutdownDelay)
		cancel()
	}()
	if err := p.mgr.Start(mgrCtx); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	p.log.Info("stopped")
	return nil
}

// newWebhookServer is the HTTPS server of the admission webhooks; certificate sets where its
// certificate comes from (servingcert.Watcher.TLSConfig).
func newWebhookServer(o *Options, certificate func(*tls.Config)) webhook.Server {
	return webhook.NewServer(webhook.Options{
		Port:    o.Port,
		CertDir: o.CertDir,
		TLSOpts: []func(*tls.Config){certificate, func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			// HTTP/2 off: its stream handling was open to the HTTP/2 Rapid Reset attack
			// (CVE-2023-44487) and stream-cancellation floods (CVE-2023-39325). The API
			// server speaks HTTP/1.1 to webhooks fine, and keep-alive connections are reused.
			c.NextProtos = []string{"http/1.1"}
		}},
	})
}

// managerOptions maps the options onto controller-runtime's manager.
func managerOptions(o *Options, scheme *runtime.Scheme, webhookServer webhook.Server, kinds *workload.Set) ctrl.Options {
	return ctrl.Options{
		Scheme: scheme,
		// "0" disables the metrics server (controller-runtime's convention).
		Metrics: metricsserver.Options{BindAddress: o.MetricsBindAddress, HandlerOpts: []func(*promhttp.HandlerOpts){
			// Plain text: a gzip writer is 0.8 MiB of heap per scrape (compress/flate), for a page
			// of a few tens of KiB served to a scraper in the cluster.
			func(h *promhttp.HandlerOpts) { h.DisableCompression = true },
		}},
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		WebhookServer:                 webhookServer,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       o.PolicyNamespace,
		LeaderElectionReleaseOnCancel: true,
		// Leaves room within the Pod's 30 s terminationGracePeriod for the shutdown delay.
		GracefulShutdownTimeout: ptr.To(20 * time.Second),
		// One cache serves the webhook's label lookups and the scaler: workloads keep only
		// metadata and spec.replicas (workload.Cached), Namespaces only their labels (pod templates and
		// managedFields are most of the bytes).
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject:         kinds.CacheByObject(),
		},
		// A process runs one scaler; tests run several processes' Run in one (controller
		// names are checked once per process, for their metrics).
		Controller: config.Controller{SkipNameValidation: ptr.To(o.inProcessTest)},
	}
}

// checkCertDir fails early, and clearly, when the serving certificate is missing.
func checkCertDir(dir string) error {
	for _, f := range []string{"tls.crt", "tls.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("--cert-dir %s: %w (generate a certificate with `go run ./certs`, or mount the webhook's TLS Secret there)", dir, err)
		}
	}
	return nil
}

// restConfig follows the contract's order: --kubeconfig, else $KUBECONFIG, else the
// in-cluster configuration of a Pod's ServiceAccount, else ~/.kube/config.
func restConfig(kubeconfig string) (*rest.Config, string, error) {
	if kubeconfig == "" {
		kubeconfig = os.Getenv(clientcmd.RecommendedConfigPathEnvVar)
	}
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, "", fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, "kubeconfig " + kubeconfig, nil
	}
	cfg, inClusterErr := rest.InClusterConfig()
	if inClusterErr == nil {
		return cfg, "in-cluster ServiceAccount", nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", clientcmd.RecommendedHomeFile)
	if err != nil {
		return nil, "", fmt.Errorf("no API server configuration: not in a cluster (%v) and %s: %w", inClusterErr, clientcmd.RecommendedHomeFile, err)
	}
	return cfg, "kubeconfig " + clientcmd.RecommendedHomeFile, nil
}
