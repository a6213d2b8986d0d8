package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// Configurations of the end-to-end benchmark, live at once, each in its own namespace.
const (
	ConfigNone    = "no policy"
	ConfigBuiltin = "built-in MAP+VAP"
	ConfigRef     = "reference webhook"
	ConfigOurs    = "replica-policy"
	ConfigBand    = "replica-policy + band"
	nsNone        = "bench-none"
	nsBuiltin     = "bench-builtin"
	nsRef         = "bench-ref"
	nsOurs        = "bench-rp"
	nsBand        = "bench-rp-band"
	nsScale       = "bench-scale"
	// webhookConfigs is the name of the manifests' webhook configurations.
	webhookConfigs = "replica-policy"
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
var Configs = []Config{{ConfigNone, nsNone}, {ConfigBuiltin, nsBuiltin}, {ConfigRef, nsRef}, {ConfigOurs, nsOurs}, {ConfigBand, nsBand}}

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
	args    []string
	runs    int
	// Band is the always-allowed band of the ConfigBand configuration.
	Band [2]int32
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

// StartEnv starts the cluster, installs every configuration and starts the binary.
func StartEnv(ctx context.Context, o EnvOptions) (*Env, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	e := &Env{Binary: o.Binary, log: o.Log}
	if e.Binary == "" {
		e.Binary = filepath.Join(o.Dir, "webhook")
		e.progress("building the webhook binary with `make webhook`")
		if err := harness.BuildWebhook(ctx, e.Binary); err != nil {
			return nil, err
		}
	}
	lc, err := harness.StartCluster(ctx, harness.ClusterOptions{Dir: o.Dir, Log: o.Log})
	if err != nil {
		return nil, err
	}
	e.LC = lc
	ok := false
	defer func() {
		if !ok {
			e.Stop()
		}
	}()
	cfg := rest.CopyConfig(lc.Config)
	cfg.QPS = -1 // the load must not wait on client-go's default 5/s limiter
	cfg.WarningHandler = rest.NoWarnings{}
	if e.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	for _, ns := range []string{nsNone, nsBuiltin, nsRef, nsOurs, nsBand, nsScale} {
		if _, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	if err := e.SetPolicy(ctx, scaleStartMax); err != nil {
		return nil, err
	}
	e.progress("scoping replica-policy's webhook configurations (as the manifests register them) to namespace %s", nsOurs)
	if err := e.scopeOurWebhooks(ctx); err != nil {
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
	// own (10/s by default); it is lifted so the benchmark measures the scaler itself.
	e.args = []string{"--shutdown-delay=0", "--scaler-max-corrections-per-second=100000", "--scaler-correction-burst=100000"}
	if err := e.StartWebhook(ctx); err != nil {
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
// and the policy read.
func (e *Env) StartWebhook(ctx context.Context) error {
	if e.Webhook != nil {
		if err := e.Webhook.Stop(30 * time.Second); err != nil {
			return fmt.Errorf("stopping the webhook: %w", err)
		}
		e.Webhook = nil
	}
	e.runs++
	w, err := e.LC.RunWebhook(ctx, harness.WebhookOptions{Binary: e.Binary, Name: fmt.Sprintf("webhook-%d", e.runs), Args: e.args})
	if err != nil {
		return err
	}
	e.Webhook = w
	return nil
}

// SetPolicy writes the benchmark's policy, with the scaler namespace's rule at scaleMax.
func (e *Env) SetPolicy(ctx context.Context, scaleMax int32) error {
	return harness.SetPolicy(ctx, e.Client, PolicyDoc(nsOurs, nsBand, nsScale, scaleMax))
}

// namespaceIn selects one namespace by name.
func namespaceIn(ns string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: []string{ns},
	}}}
}

// ourWebhooks are the webhooks of the manifests that bound Deployments (the other one, for
// the policy ConfigMap, stays as installed).
var ourWebhooks = map[string]bool{"mutate.replicapolicy.io": true}

// scopeOurWebhooks narrows the namespaceSelector of the installed webhook configurations to
// the benchmark's namespace; everything else stays as the manifests register it.
func (e *Env) scopeOurWebhooks(ctx context.Context) error {
	ar := e.Client.AdmissionregistrationV1()
	m, err := ar.MutatingWebhookConfigurations().Get(ctx, webhookConfigs, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for i := range m.Webhooks {
		if ourWebhooks[m.Webhooks[i].Name] {
			m.Webhooks[i].NamespaceSelector = namespaceIn(nsOurs)
		}
	}
	if _, err := ar.MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		return err
	}
	v, err := ar.ValidatingWebhookConfigurations().Get(ctx, webhookConfigs, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for i := range v.Webhooks {
		if ourWebhooks[v.Webhooks[i].Name] {
			v.Webhooks[i].NamespaceSelector = namespaceIn(nsOurs)
		}
	}
	_, err = ar.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{})
	return err
}

// registerReference registers the reference webhook with copies of replica-policy's
// installed configurations (same rules, failure policy and timeout), pointed at the
// reference server, scoped to its namespace, without matchConditions.
func (e *Env) registerReference(ctx context.Context) error {
	ar := e.Client.AdmissionregistrationV1()
	m, err := ar.MutatingWebhookConfigurations().Get(ctx, webhookConfigs, metav1.GetOptions{})
	if err != nil {
		return err
	}
	mc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: referenceName}}
	for _, w := range m.Webhooks {
		if !ourWebhooks[w.Name] {
			continue
		}
		w.Name = "mutate.reference.bench"
		w.ClientConfig.URL = ptr(fmt.Sprintf("https://127.0.0.1:%d/mutate", e.ref.port))
		w.NamespaceSelector, w.MatchConditions = namespaceIn(nsRef), nil
		mc.Webhooks = append(mc.Webhooks, w)
	}
	v, err := ar.ValidatingWebhookConfigurations().Get(ctx, webhookConfigs, metav1.GetOptions{})
	if err != nil {
		return err
	}
	vc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: referenceName}}
	for _, w := range v.Webhooks {
		if !ourWebhooks[w.Name] {
			continue
		}
		w.Name = "validate.reference.bench"
		w.ClientConfig.URL = ptr(fmt.Sprintf("https://127.0.0.1:%d/validate", e.ref.port))
		w.NamespaceSelector, w.MatchConditions = namespaceIn(nsRef), nil
		vc.Webhooks = append(vc.Webhooks, w)
	}
	// One call per write: the manifests register workloads with the mutating webhook only.
	if len(mc.Webhooks) != 1 || len(vc.Webhooks) != 0 {
		return fmt.Errorf("the installed configurations hold %d mutating and %d validating workload webhooks, want 1 and 0", len(mc.Webhooks), len(vc.Webhooks))
	}
	_, err = ar.MutatingWebhookConfigurations().Create(ctx, mc, metav1.CreateOptions{})
	return err
}

// registerBand registers, for namespace nsBand, copies of replica-policy's installed
// configurations (same server, rules and matchConditions) with one more matchCondition:
// skip writes whose replicas lie inside the band that every rule of the policy allows.
func (e *Env) registerBand(ctx context.Context) error {
	snap, err := policy.Load([]byte(PolicyDoc(nsOurs, nsBand, nsScale, scaleStartMax)), policy.Options{})
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
	ar := e.Client.AdmissionregistrationV1()
	m, err := ar.MutatingWebhookConfigurations().Get(ctx, webhookConfigs, metav1.GetOptions{})
	if err != nil {
		return err
	}
	mc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: bandName}}
	for _, w := range m.Webhooks {
		if ourWebhooks[w.Name] {
			w.Name = "mutate.band.bench"
			w.NamespaceSelector, w.MatchConditions = namespaceIn(nsBand), append(w.MatchConditions, cond)
			mc.Webhooks = append(mc.Webhooks, w)
		}
	}
	v, err := ar.ValidatingWebhookConfigurations().Get(ctx, webhookConfigs, metav1.GetOptions{})
	if err != nil {
		return err
	}
	vc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: bandName}}
	for _, w := range v.Webhooks {
		if ourWebhooks[w.Name] {
			w.Name = "validate.band.bench"
			w.NamespaceSelector, w.MatchConditions = namespaceIn(nsBand), append(w.MatchConditions, cond)
			vc.Webhooks = append(vc.Webhooks, w)
		}
	}
	if _, err := ar.MutatingWebhookConfigurations().Create(ctx, mc, metav1.CreateOptions{}); err != nil {
		return err
	}
	if len(vc.Webhooks) == 0 {
		return nil // one call per write: no validating workload webhook to copy
	}
	_, err = ar.ValidatingWebhookConfigurations().Create(ctx, vc, metav1.CreateOptions{})
	return err
}

// waitInForce waits until every configuration clamps (a dry-run create of 99 replicas) and
// "no policy" does not: the benchmark must measure configurations that work.
func (e *Env) waitInForce(ctx context.Context) error {
	e.progress("waiting until every configuration is in force")
	deadline := time.Now().Add(webhookTimeout)
	for _, c := range Configs {
		want := int32(ClampMax)
		if c.Name == ConfigNone {
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
