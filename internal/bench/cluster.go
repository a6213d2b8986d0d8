package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/nativesync"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// Configurations of the end-to-end benchmark, live at once, each in its own namespace.
const (
	ConfigNone = "no policy"
	// ConfigNoneAgain is "no policy" in a second namespace: whatever it adds over "no
	// policy" is the run's noise (an A/A comparison), against which the report judges how
	// close a target may be told apart.
	ConfigNoneAgain = "no policy, again"
	ConfigBuiltin   = "built-in MAP+VAP"
	ConfigRef       = "reference webhook"
	ConfigOurs      = "replica-policy"
	ConfigBand      = "replica-policy + band"
	// ConfigNative is the binary with --native-policies for a namespace whose rules have no
	// selector: the API server decides every write in process.
	ConfigNative = "native"
	// ConfigNativeSelector is the same for a namespace under a rule with a selector: the
	// API server calls the webhook for its /scale writes (a Scale carries no labels).
	ConfigNativeSelector = "native + selector rule"
	nsNone               = "bench-none"
	nsNoneAgain          = "bench-none-again"
	nsBuiltin            = "bench-builtin"
	nsRef                = "bench-ref"
	nsOurs               = "bench-rp"
	nsBand               = "bench-rp-band"
	nsNative             = "bench-native"
	nsNativeSelector     = "bench-native-sel"
	nsScale              = "bench-scale"
	// webhookConfigs is the name of the manifests' webhook configurations.
	webhookConfigs = "replica-policy"
	oursName       = "bench-rp"
	referenceName  = "bench-reference"
	bandName       = "bench-band"
	scaleStartMax  = 10 // the scaler benchmark's rule before the policy change
	webhookTimeout = 60 * time.Second
)

// Config is one configuration of the end-to-end benchmark.
type Config struct {
	Name, Namespace string
}

// Configs in the order the report shows them.
// ConfigBand is a proposal, not the manifests: replica-policy's webhook configurations with
// one more matchCondition that skips writes inside the band every rule of the policy allows.
var Configs = []Config{{ConfigNone, nsNone}, {ConfigNoneAgain, nsNoneAgain}, {ConfigBuiltin, nsBuiltin}, {ConfigRef, nsRef}, {ConfigOurs, nsOurs}, {ConfigBand, nsBand},
	{ConfigNative, nsNative}, {ConfigNativeSelector, nsNativeSelector}}

// configRules are the policy's rules that decide each configuration of the binary: every
// call of the webhook for a write in the configuration's namespace is decided by it.
var configRules = map[string]string{ConfigOurs: RuleOurs, ConfigBand: RuleBand, ConfigNative: RuleNative, ConfigNativeSelector: RuleNativeSelector}

// benchPolicy names the namespaces of the benchmark's policy.
var benchPolicy = PolicyNamespaces{Ours: nsOurs, Band: nsBand, Native: nsNative, NativeSelector: nsNativeSelector, Scale: nsScale, Exempt: []string{nsNone, nsNoneAgain}}

// Env is the cluster of the end-to-end, scaler and memory benchmarks: a real kube-apiserver
// and etcd with replica-policy installed from manifests/ by kubectl (internal/harness),
// the built binary running under its ServiceAccount's token, and the other configurations
// next to it.
type Env struct {
	LC *harness.Cluster
	// Client is a cluster-admin client without client-side rate limiting.
	Client  kubernetes.Interface
	Binary  string
	Webhook *harness.Webhook
	ref     *referenceProcess
	log     io.Writer
	// args are the binary's flags; nativeArgs those StartWebhook adds for native mode.
	args, nativeArgs []string
	runs             int
	// Band is the always-allowed band of the ConfigBand configuration.
	Band [2]int32
	// Native is the policy as --native-policies compiles it: the objects the binary applies
	// and the matchCondition it sets.
	Native *native.Result
}

// EnvOptions configure StartEnv.
type EnvOptions struct {
	// Dir holds the cluster's files.
	Dir string
	// Binary is the webhook binary; empty builds it with `make webhook`.
	Binary string
	// Log receives progress lines.
	Log io.Writer
	// Reference is the reference webhook's binary (bench/cmd/reference); empty builds it.
	Reference string
}

// startCluster starts a cluster of its own in dir (created if missing), building the
// webhook binary there first when binary is empty. It returns the cluster, the binary, and
// a cluster-admin client without client-side rate limiting (the load must not wait on
// client-go's default 5/s limiter) that drops the API server's warnings.
func startCluster(ctx context.Context, dir, binary string, log io.Writer) (*harness.Cluster, string, kubernetes.Interface, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", nil, err
	}
	if binary == "" {
		binary = filepath.Join(dir, "webhook")
		fmt.Fprintln(log, "==> building the webhook binary with `make webhook`")
		if err := harness.BuildWebhook(ctx, binary); err != nil {
			return nil, "", nil, err
		}
	}
	lc, err := harness.StartCluster(ctx, harness.ClusterOptions{Dir: dir, Log: log})
	if err != nil {
		return nil, "", nil, err
	}
	cfg := rest.CopyConfig(lc.Config)
	cfg.QPS = -1
	cfg.WarningHandler = rest.NoWarnings{}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		lc.Stop()
		return nil, "", nil, err
	}
	return lc, binary, cs, nil
}

// StartEnv starts the cluster, installs every configuration and starts the binary.
func StartEnv(ctx context.Context, o EnvOptions) (*Env, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	lc, binary, cs, err := startCluster(ctx, o.Dir, o.Binary, o.Log)
	if err != nil {
		return nil, err
	}
	e := &Env{LC: lc, Client: cs, Binary: binary, log: o.Log}
	ok := false
	defer func() {
		if !ok {
			e.Stop()
		}
	}()
	for _, ns := range []string{nsNone, nsNoneAgain, nsBuiltin, nsRef, nsOurs, nsBand, nsNative, nsNativeSelector, nsScale} {
		if _, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	if err := e.SetPolicy(ctx, scaleStartMax); err != nil {
		return nil, err
	}
	// replica-policy's configuration is copied for its namespace before the binary starts:
	// --native-policies narrows the installed one, which serves the native namespaces.
	e.progress("registering replica-policy's mutating webhook (a copy of the installed one) for namespace %s", nsOurs)
	if err := e.copyWorkloadWebhook(ctx, oursName, "mutate.rp.bench", nsOurs, nil); err != nil {
		return nil, err
	}
	e.progress("granting the rights of manifests/components/native-policies")
	if err := e.grantNative(ctx, o.Dir); err != nil {
		return nil, err
	}
	e.progress("installing the built-in MutatingAdmissionPolicy and ValidatingAdmissionPolicy for namespace %s", nsBuiltin)
	if err := installBuiltin(ctx, e.Client, "bench-clamp", nsBuiltin); err != nil {
		return nil, err
	}
	e.progress("starting the reference webhook and registering it for namespace %s", nsRef)
	if o.Reference == "" {
		o.Reference = filepath.Join(o.Dir, "reference")
		// Built like the Makefile builds replica-policy, so that their memory compares.
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", o.Reference, "./bench/cmd/reference")
		cmd.Dir = harness.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building the reference webhook: %w\n%s", err, out)
		}
	}
	if e.ref, err = startReferenceProcess(o.Reference, lc.CertDir, o.Dir); err != nil {
		return nil, err
	}
	if err := e.registerReference(ctx); err != nil {
		return nil, err
	}
	if err := e.registerBand(ctx); err != nil {
		return nil, err
	}
	// The scaler's cap on corrections per second would decide the scaler benchmark on its
	// own (50/s by default), and so would the client limits (--kube-api-qps, 100/s): both are
	// lifted so the benchmark measures the scaler itself.
	e.args = []string{"--shutdown-delay=0", "--scaler-max-corrections-per-second=100000", "--scaler-correction-burst=100000", "--kube-api-qps=100000", "--kube-api-burst=100000"}
	// --native-policies-namespace-selector confines the compiled bindings and the installed
	// webhook configuration to the native namespaces: the other configurations share the API
	// server. The syncer's dry-run probes scale a Deployment of the native namespace.
	e.nativeArgs = []string{"--native-policies", fmt.Sprintf("--native-policies-namespace-selector=%s in (%s,%s)", corev1.LabelMetadataName, nsNative, nsNativeSelector)}
	if _, err := e.Client.AppsV1().Deployments(nsNative).Create(ctx, harness.Deployment(nsNative, "probe-target", ClampMin, nil), metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if err := e.StartWebhook(ctx, true); err != nil {
		return nil, err
	}
	if err := e.scopeNative(ctx); err != nil {
		return nil, err
	}
	if err := e.waitInForce(ctx); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

func (e *Env) progress(format string, args ...any) {
	fmt.Fprintf(e.log, "==> "+format+"\n", args...)
}

// Stop stops the binary, the reference webhook and the cluster.
func (e *Env) Stop() {
	if e.Webhook != nil {
		_ = e.Webhook.Stop(30 * time.Second)
	}
	if e.ref != nil {
		e.ref.stop()
	}
	if e.LC != nil {
		e.LC.Stop()
	}
}

// StartWebhook starts the binary (again) and waits until it is ready: its caches synced
// and the policy read. native adds --native-policies (confined to the native namespaces);
// without it the binary runs as the manifests run it by default, and the compiled policies
// an earlier run applied stay as they are (their bindings reach only the native namespaces).
func (e *Env) StartWebhook(ctx context.Context, native bool) error {
	if e.Webhook != nil {
		if err := e.Webhook.Stop(30 * time.Second); err != nil {
			return fmt.Errorf("stopping the webhook: %w", err)
		}
		e.Webhook = nil
	}
	e.runs++
	args := e.args
	if native {
		args = append(slices.Clone(e.args), e.nativeArgs...)
	}
	w, err := e.LC.RunWebhook(ctx, harness.WebhookOptions{Binary: e.Binary, Name: fmt.Sprintf("webhook-%d", e.runs), Args: args})
	if err != nil {
		return err
	}
	e.Webhook = w
	return nil
}

// SetPolicy writes the benchmark's policy, with the scaler namespace's rule at scaleMax.
func (e *Env) SetPolicy(ctx context.Context, scaleMax int32) error {
	return harness.SetPolicy(ctx, e.Client, PolicyDoc(benchPolicy, scaleMax))
}

// namespaceIn selects namespaces by name.
func namespaceIn(ns ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: ns,
	}}}
}

// workloadEntry is the manifests' webhook for the objects of the bounded workloads, the one
// --native-policies narrows.
const workloadEntry = "mutate.replicapolicy.io"

// ourWebhooks are the webhooks of the manifests that bound Deployments: the objects' and
// their /scale's (the others, for HPAs and the policy ConfigMap, stay as installed).
var ourWebhooks = map[string]bool{workloadEntry: true, nativesync.ScaleEntryPrefix + workloadEntry: true}

// copyWorkloadWebhook registers a copy of the installed mutating workload webhooks (same
// rules, matchConditions, failure policy and timeout) as configuration name, the objects'
// called webhook and their /scale's "scale." + webhook, scoped to namespace ns, each passed
// through edit (nil: as it is). The manifests register a workload write with one of them
// only: one call per write.
func (e *Env) copyWorkloadWebhook(ctx context.Context, name, webhook, ns string, edit func(*admissionregistrationv1.MutatingWebhook)) error {
	mwcs := e.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	m, err := mwcs.Get(ctx, webhookConfigs, metav1.GetOptions{})
	if err != nil {
		return err
	}
	mc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, w := range m.Webhooks {
		if !ourWebhooks[w.Name] {
			continue
		}
		if slices.ContainsFunc(w.MatchConditions, func(c admissionregistrationv1.MatchCondition) bool { return c.Name == nativesync.ConditionName }) {
			return fmt.Errorf("copying %s: the installed webhook already has the matchCondition of --native-policies", name)
		}
		w.Name, w.NamespaceSelector = strings.Replace(w.Name, workloadEntry, webhook, 1), namespaceIn(ns)
		if edit != nil {
			edit(&w)
		}
		mc.Webhooks = append(mc.Webhooks, w)
	}
	if len(mc.Webhooks) != len(ourWebhooks) {
		return fmt.Errorf("the installed configuration holds %d mutating workload webhooks, want %d", len(mc.Webhooks), len(ourWebhooks))
	}
	if v, err := e.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, webhookConfigs, metav1.GetOptions{}); err != nil {
		return err
	} else if slices.ContainsFunc(v.Webhooks, func(w admissionregistrationv1.ValidatingWebhook) bool { return ourWebhooks[w.Name] }) {
		return errors.New("the installed validating configuration holds a workload webhook: a write would cost two calls")
	}
	_, err = mwcs.Create(ctx, mc, metav1.CreateOptions{})
	return err
}

// registerReference registers the reference webhook as such a webhook is commonly
// written: a mutating webhook that clamps and a validating one that rejects what is still
// outside the bounds, two calls per write. Both are copies of replica-policy's installed
// mutating workload webhooks (same rules, failure policy and timeout), pointed at the
// reference server's /mutate and /validate, scoped to its namespace, without
// matchConditions: the mutating ones as installed (objects, /scale), the validating one with
// the rules of both.
func (e *Env) registerReference(ctx context.Context) error {
	var validating admissionregistrationv1.ValidatingWebhook
	err := e.copyWorkloadWebhook(ctx, referenceName, "mutate.reference.bench", nsRef, func(w *admissionregistrationv1.MutatingWebhook) {
		w.ClientConfig.URL = ptr.To(fmt.Sprintf("https://127.0.0.1:%d/mutate", e.ref.port))
		w.MatchConditions = nil
		validating = admissionregistrationv1.ValidatingWebhook{
			Name:                    "validate.reference.bench",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(fmt.Sprintf("https://127.0.0.1:%d/validate", e.ref.port)), CABundle: w.ClientConfig.CABundle},
			Rules:                   append(validating.Rules, w.Rules...),
			FailurePolicy:           w.FailurePolicy,
			MatchPolicy:             w.MatchPolicy,
			NamespaceSelector:       w.NamespaceSelector,
			ObjectSelector:          w.ObjectSelector,
			SideEffects:             w.SideEffects,
			TimeoutSeconds:          w.TimeoutSeconds,
			AdmissionReviewVersions: w.AdmissionReviewVersions,
		}
	})
	if err != nil {
		return err
	}
	vc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: referenceName},
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{validating},
	}
	_, err = e.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vc, metav1.CreateOptions{})
	return err
}

// registerBand registers, for namespace nsBand, a copy of replica-policy's installed
// configuration (same server, rules and matchConditions) with one more matchCondition:
// skip writes whose replicas lie inside the band that every rule of the policy allows.
func (e *Env) registerBand(ctx context.Context) error {
	snap, err := policy.Load([]byte(PolicyDoc(benchPolicy, scaleStartMax)), policy.Options{})
	if err != nil {
		return err
	}
	lo, hi, ok := AlwaysAllowedBand(snap)
	if !ok {
		return errors.New("the benchmark policy's rules allow no common band")
	}
	e.Band = [2]int32{lo, hi}
	e.progress("registering replica-policy with a band matchCondition [%d, %d] for namespace %s (proposal)", lo, hi, nsBand)
	cond := admissionregistrationv1.MatchCondition{
		Name: "outside-always-allowed-band",
		Expression: fmt.Sprintf("!has(object.spec) || (has(object.spec.replicas) ? object.spec.replicas : 0) < %d || (has(object.spec.replicas) ? object.spec.replicas : 0) > %d",
			lo, hi),
	}
	return e.copyWorkloadWebhook(ctx, bandName, "mutate.band.bench", nsBand, func(w *admissionregistrationv1.MutatingWebhook) {
		w.MatchConditions = append(w.MatchConditions, cond)
	})
}

// grantNative applies the ClusterRole of manifests/base with the component
// manifests/components/native-policies, as `kubectl apply -k` of both would leave it: the
// binary runs --native-policies with exactly those rights.
func (e *Env) grantNative(ctx context.Context, dir string) error {
	path, err := harness.BuildComponentManifests(filepath.Join(dir, "native-component"), "native-policies", "native.yaml", nil)
	if err != nil {
		return err
	}
	built, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	role := harness.ManifestOfKind(string(built), "ClusterRole")
	if !strings.Contains(role, "mutatingadmissionpolicies") {
		return fmt.Errorf("the native-policies component's ClusterRole lacks the admission policy rules:\n%s", role)
	}
	if out, err := e.LC.KubectlStdin(ctx, role, "apply", "-f", "-"); err != nil {
		return fmt.Errorf("kubectl apply of the component's ClusterRole: %w\n%s", err, out)
	}
	return nil
}

// scopeNative waits until the binary has applied the policy's native admission policies
// and narrowed the installed webhook configuration: the syncer narrows only once its probes
// show the API server enforcing them. --native-policies-namespace-selector confines the
// bindings to the native namespaces: the compiled bindings select every namespace but those
// where the policy's rules leave them nothing to do, and the clamp policy and its notice
// would otherwise act in the other clamping configurations' namespaces too.
func (e *Env) scopeNative(ctx context.Context) error {
	snap, err := policy.Load([]byte(PolicyDoc(benchPolicy, scaleStartMax)), policy.Options{AlwaysExempt: []string{policy.DefaultNamespace}})
	if err != nil {
		return err
	}
	if e.Native, err = native.Compile(snap, policy.BuiltinWorkloadKinds, native.Options{}); err != nil {
		return fmt.Errorf("compiling the benchmark's policy: %w", err)
	}
	e.progress("waiting for --native-policies to apply %d objects and narrow the installed webhook configuration; the webhook is left: %s", len(e.Native.Objects()), strings.Join(e.Native.Webhook, "; "))
	ar := e.Client.AdmissionregistrationV1()
	applied := func() (bool, string) {
		for _, o := range e.Native.Objects() {
			var err error
			switch o := o.(type) {
			case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
				_, err = ar.MutatingAdmissionPolicyBindings().Get(ctx, o.Name, metav1.GetOptions{})
			case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
				_, err = ar.ValidatingAdmissionPolicyBindings().Get(ctx, o.Name, metav1.GetOptions{})
			}
			if err != nil {
				return false, err.Error()
			}
		}
		m, err := ar.MutatingWebhookConfigurations().Get(ctx, webhookConfigs, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, w := range m.Webhooks {
			if w.Name != workloadEntry {
				continue
			}
			i := slices.IndexFunc(w.MatchConditions, func(c admissionregistrationv1.MatchCondition) bool { return c.Name == nativesync.ConditionName })
			if i < 0 {
				return false, "the installed webhook has no matchCondition " + nativesync.ConditionName + " yet"
			}
			// Narrowed: the binary's condition ends with the compiled one (it keeps its own
			// dry-run probes away from the webhook in front of it).
			if !strings.HasSuffix(w.MatchConditions[i].Expression, "("+e.Native.WebhookMatchCondition+")") {
				return false, "the installed webhook is not narrowed yet: " + w.MatchConditions[i].Expression
			}
		}
		return true, ""
	}
	deadline := time.Now().Add(webhookTimeout)
	for {
		ok, why := applied()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("--native-policies: %s\nwebhook log:\n%s", why, harness.TailLines(e.Webhook.Log(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// waitInForce waits until every configuration clamps (a dry-run create of 99 replicas) and
// "no policy" (both) does not: the benchmark must measure configurations that work.
func (e *Env) waitInForce(ctx context.Context) error {
	e.progress("waiting until every configuration is in force")
	deadline := time.Now().Add(webhookTimeout)
	for _, c := range Configs {
		want := int32(ClampMax)
		if c.Name == ConfigNone || c.Name == ConfigNoneAgain {
			want = 99
		}
		for {
			d, err := e.Client.AppsV1().Deployments(c.Namespace).Create(ctx, harness.TypicalDeployment(c.Namespace, "probe", 99, "registry.example.com/probe:1"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil && *d.Spec.Replicas == want {
				break
			}
			if time.Now().After(deadline) {
				got := "error"
				if err == nil {
					got = fmt.Sprint(*d.Spec.Replicas)
				}
				return fmt.Errorf("%s: a create of 99 replicas got %s (%v), want %d", c.Name, got, err, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// WebhookMetric sums the samples of a metric of the binary whose labels contain every one
// of labels (e.g. `webhook="/mutate"`).
func (e *Env) WebhookMetric(name string, labels ...string) (float64, error) {
	m, err := e.Webhook.ScrapeMetrics()
	if err != nil {
		return 0, err
	}
	return m.Sum(name, labels...), nil
}

// APIServerMetric is WebhookMetric for kube-apiserver's own /metrics.
func (e *Env) APIServerMetric(ctx context.Context, name string, labels ...string) (float64, error) {
	m, err := harness.APIServerMetrics(ctx, e.Client)
	if err != nil {
		return 0, err
	}
	return m.Sum(name, labels...), nil
}

// WebhookMemory reads the binary's resident memory.
func (e *Env) WebhookMemory() (harness.Memory, error) {
	return harness.ProcessMemory(e.Webhook.Cmd.Process.Pid)
}

// ReferenceCalls is the number of requests the reference webhook has answered.
func (e *Env) ReferenceCalls() (int64, error) { return e.ref.calls() }

// ReferenceMemory reads the reference webhook's resident memory.
func (e *Env) ReferenceMemory() (harness.Memory, error) {
	return harness.ProcessMemory(e.ref.cmd.Process.Pid)
}

// TCPStats counts the TCP sockets of this machine that have port at either end, by state:
// how many connections kube-apiserver holds open to a webhook, and how many it has closed
// recently (TIME_WAIT), which tells whether it reuses them.
type TCPStats struct {
	// Established counts the server's side of open connections.
	Established int
	// TimeWait counts recently closed connections (either side).
	TimeWait int
}

// ReadTCPStats reads /proc/net/tcp and /proc/net/tcp6.
func ReadTCPStats(port int) (TCPStats, error) {
	var s TCPStats
	hexPort := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return s, err
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(l)
			if len(fields) < 4 {
				continue
			}
			local, remote, state := fields[1], fields[2], fields[3]
			switch {
			case state == "01" && strings.HasSuffix(local, hexPort):
				s.Established++
			case state == "06" && (strings.HasSuffix(local, hexPort) || strings.HasSuffix(remote, hexPort)):
				s.TimeWait++
			}
		}
	}
	return s, nil
}

// Ports returns the ports of replica-policy's binary and of the reference webhook.
func (e *Env) Ports() (ours, reference int) { return e.LC.Port, e.ref.port }
