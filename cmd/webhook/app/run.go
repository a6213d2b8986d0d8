package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/replica-policy/replica-policy/pkg/admission"
	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/nativesync"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/scaler"
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
	cfg, source, err := restConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	log.Info("API server configuration", "from", source, "host", cfg.Host)
	// A correction is a GET and an UPDATE of the scale subresource: leave room above the
	// scaler's cap for them, Events and the informers' relists (client-go's default is 5/s).
	cfg.QPS = float32(max(20, 2*o.Scaler.MaxCorrectionsPerSecond+10))
	cfg.Burst = max(30, 2*o.Scaler.CorrectionBurst+10)

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	// The kinds in force: the built-in ones and each --workload-resource, learned from
	// discovery and its CRD; a resource that cannot be served stops the start here.
	kinds, err := workloadKinds(ctx, cfg, o.WorkloadResources)
	if err != nil {
		return err
	}
	for _, k := range kinds.Kinds() {
		log.Info("bounding workload kind", "kind", k.GroupVersionKind.String(), "resource", k.GroupResource().String(), "replicas", "."+strings.Join(k.ReplicasPath, "."))
	}

	webhookServer := newWebhookServer(o)
	mgr, err := ctrl.NewManager(cfg, managerOptions(o, scheme, webhookServer, kinds))
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	// The manager runs the webhook server only once it is asked for it.
	hooks := mgr.GetWebhookServer()
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	policyOpts := policy.Options{AlwaysExempt: []string{o.PolicyNamespace}}
	store := policystore.NewStore(policyOpts)
	watcher := &policystore.Watcher{
		Store:     store,
		Client:    clientset,
		Namespace: o.PolicyNamespace,
		Name:      o.PolicyConfigMap,
		Recorder:  mgr.GetEventRecorder("replica-policy"),
		Log:       ctrl.Log.WithName("policy"),
	}
	if err := mgr.Add(watcher); err != nil {
		return err
	}
	lookup, err := admission.NewCacheLookup(ctx, mgr.GetCache(), kinds)
	if err != nil {
		return err
	}
	ref := admission.PolicyRef{Namespace: o.PolicyNamespace, Name: o.PolicyConfigMap, Options: policyOpts}
	var shuttingDown atomic.Bool
	mutate, validate := admission.NewHandlers(kinds, store, lookup, ref)
	hooks.Register(admission.MutatePath, drainOnShutdown(&shuttingDown, admission.UntilPolicyRead(admission.Mutate, watcher.Ready, admission.Webhook(mutate))))
	hooks.Register(admission.ValidatePath, drainOnShutdown(&shuttingDown, admission.UntilPolicyRead(admission.Validate, watcher.Ready, admission.Webhook(validate))))

	if o.NativePolicies {
		syncOpts := nativeSyncOptions(o, kinds)
		if syncOpts.Prober, err = nativesync.NewDryRunProber(ctx, cfg, syncOpts.Scope); err != nil {
			return err
		}
		syncer := nativesync.New(clientset, store, watcher.Ready, syncOpts, ctrl.Log.WithName("native-policies"))
		if err := mgr.Add(syncer); err != nil {
			return err
		}
	}

	if o.EnableScaler {
		s := scaler.New(store, o.Scaler)
		s.Kinds = kinds
		if err := s.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up the scaler: %w", err)
		}
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	for name, check := range map[string]healthz.Checker{
		"webhook":  webhookServer.StartedChecker(),
		"caches":   readyWhen(lookup.Synced, "informer caches have not synced"),
		"policy":   readyWhen(watcher.Ready, "the policy ConfigMap has not been read"),
		"shutdown": readyWhen(func() bool { return !shuttingDown.Load() }, "shutting down"),
	} {
		if err := mgr.AddReadyzCheck(name, check); err != nil {
			return err
		}
	}

	// On SIGTERM, readiness turns false at once while the webhook keeps answering for
	// ShutdownDelay, so endpoints stop routing to this replica before it stops listening;
	// then the manager shuts the server down gracefully, finishing in-flight requests.
	mgrCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-ctx.Done()
		shuttingDown.Store(true)
		log.Info("shutting down: readiness is now false", "delay", o.ShutdownDelay)
		time.Sleep(o.ShutdownDelay)
		cancel()
	}()
	if err := mgr.Start(mgrCtx); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	log.Info("stopped")
	return nil
}

// nativeKinds are the workload kinds of kinds as the native policies name them. A custom
// resource whose replicas are not at spec.replicas is left to the webhook, which the native
// policies' matchCondition then sends every request of it.
func nativeKinds(kinds *workload.Set) []native.Kind {
	var out []native.Kind
	for _, k := range kinds.Kinds() {
		if !k.SpecReplicas() {
			continue
		}
		out = append(out, native.Kind{Group: k.Group, Version: k.Version, Kind: k.Kind, Resource: k.Resource})
	}
	return out
}

// nativeSyncOptions: the webhook entries the syncer narrows register every kind of kinds,
// in every namespace but kube-system and the webhook's own (the manifests' namespaceSelector).
func nativeSyncOptions(o *Options, kinds *workload.Set) nativesync.Options {
	var all []native.Kind
	for _, k := range kinds.Kinds() {
		all = append(all, native.Kind{Group: k.Group, Version: k.Version, Kind: k.Kind, Resource: k.Resource})
	}
	return nativesync.Options{
		Kinds:        nativeKinds(kinds),
		WebhookKinds: all,
		NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: []string{metav1.NamespaceSystem, o.PolicyNamespace},
		}}},
		WebhookConfiguration: o.WebhookConfiguration,
		// Validate parsed it.
		Scope: scopeOf(o.NativeNamespaceSelector),
	}
}

func scopeOf(selector string) *metav1.LabelSelector {
	if selector == "" {
		return nil
	}
	ls, _ := metav1.ParseToLabelSelector(selector)
	return ls
}

// newWebhookServer is the HTTPS server of the admission webhooks.
func newWebhookServer(o *Options) webhook.Server {
	return webhook.NewServer(webhook.Options{
		Port:    o.Port,
		CertDir: o.CertDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
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
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		WebhookServer:                 webhookServer,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       o.PolicyNamespace,
		LeaderElectionReleaseOnCancel: true,
		// Leaves room within the Pod's 30 s terminationGracePeriod for the shutdown delay.
		GracefulShutdownTimeout: ptr(20 * time.Second),
		// One cache serves the webhook's label lookups and the scaler: workloads keep only
		// metadata and spec.replicas (workload.Cached), Namespaces only their labels (pod templates and
		// managedFields are most of the bytes).
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject:         scaler.CacheByObject(kinds),
		},
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

// bodyReadTimeout bounds how long a client may take to send a request body. net/http's
// ReadHeaderTimeout (32 s in controller-runtime) covers only the headers, so a client
// trickling its body would otherwise hold a connection and a goroutine for ever. The API
// server sends a whole body at once and gives up on a webhook after timeoutSeconds (at most
// 10 s in manifests/).
const bodyReadTimeout = 10 * time.Second

// shutdownReadGrace is how long a request still receiving its body when the webhook server
// shuts down may take to finish it. The API server sends a whole body at once, so only a
// stalled or half-open connection needs it; without a bound such a connection held the
// shutdown for the manager's whole GracefulShutdownTimeout, and the process exited 1.
const shutdownReadGrace = 2 * time.Second

// drainOnShutdown wraps a webhook handler with bounds on slow clients and for graceful
// shutdown. A request's body must arrive within bodyReadTimeout. Once shuttingDown is set
// (SIGTERM), answers carry "Connection: close": the API server's kept-alive connections,
// which the Service's connection tracking pins to this replica, are closed after their
// next answer and reopened to a replica that stays, instead of being cut by the server's
// shutdown while a request may be on its way. When the server shuts down (the request's
// context, derived from the server's, ends) a request still reading its body gets
// shutdownReadGrace to finish it; one being answered is not affected.
func drainOnShutdown(shuttingDown *atomic.Bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
		if shuttingDown.Load() {
			w.Header().Set("Connection", "close")
		}
		stop := context.AfterFunc(r.Context(), func() {
			_ = rc.SetReadDeadline(time.Now().Add(shutdownReadGrace))
		})
		defer stop()
		h.ServeHTTP(w, r)
	})
}

func readyWhen(ok func() bool, notYet string) healthz.Checker {
	return func(*http.Request) error {
		if !ok() {
			return errors.New(notYet)
		}
		return nil
	}
}

func ptr[T any](v T) *T { return &v }
