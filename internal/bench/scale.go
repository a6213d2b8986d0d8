package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// The scale benchmark (docs/design.md, Scale): a cluster grown to each size in turn, the
// built binary started fresh at each, its start-up against a bare informer's list of the
// same Deployments, its memory, and its admission latency for a /scale write that a
// selector rule decides (the webhook reads the workload's labels from its cache).

// ScaleOptions size the scale benchmark.
type ScaleOptions struct {
	// Dir holds the cluster's files; Binary is the built webhook; Log receives progress.
	Dir, Binary string
	Log         io.Writer
	// Sizes are the numbers of Deployments in the cluster at each step, growing; the
	// admission latency of the last is compared with that of the first.
	Sizes []int
	// Rounds is the number of start-ups of the binary at each size, each next to a list of
	// the bare informers.
	Rounds int
	// Reviews is the number of AdmissionReviews of each kind sent at each size.
	Reviews int
}

// ScaleStep is what the benchmark measured at one size.
type ScaleStep struct {
	Deployments, Namespaces int
	// Created is how long creating this step's new Deployments took (set-up, not a figure
	// of the product), with ScaleCreateWorkers creates at a time.
	Created time.Duration
	// Ready is, per round, the time from the binary's exec to its /readyz answering 200
	// (the policy read, every informer cache synced, the HTTPS server up).
	Ready []time.Duration
	// Bare is, per round, the time a client-go SharedInformer of Deployments takes from its
	// start to HasSynced with protobuf (as the binary and kube-controller-manager read
	// built-in kinds); BareJSON the same, in the first round only, with client-go's default
	// JSON.
	Bare, BareJSON []time.Duration
	// Memory is the binary's resident memory once ready and its scaler's start-up pass
	// done, the highest peak of the rounds.
	Memory harness.Memory
	// Selector is the webhook's answer time to a /scale AdmissionReview that a selector
	// rule decides (a cache lookup of the Deployment's labels); Name to one that a rule of
	// namespace names decides, sent interleaved with it (the control).
	Selector, Name harness.Sample
	// APIServer and Etcd are the control plane's memory after the step; EtcdDB is etcd's
	// database size and EtcdQuota its quota (bytes).
	APIServer, Etcd   harness.Memory
	EtcdDB, EtcdQuota float64
}

// ScaleResult is the scale benchmark.
type ScaleResult struct {
	Options ScaleOptions
	Steps   []ScaleStep
}

// ScaleCreateWorkers is the number of concurrent creates that fill the cluster.
const ScaleCreateWorkers = 48

// scaleEnv is the scale benchmark's cluster: replica-policy's manifests applied (its RBAC
// and namespace), its webhook configurations removed, so that the Deployments are created
// without calling it and the binary is measured alone.
type scaleEnv struct {
	lc     *harness.Cluster
	client kubernetes.Interface
	o      ScaleOptions
	runs   int
}

// RunScale runs the scale benchmark on a control plane of its own.
func RunScale(ctx context.Context, o ScaleOptions) (*ScaleResult, error) {
	if len(o.Sizes) == 0 || !slices.IsSorted(o.Sizes) || o.Sizes[0] < scalePerNamespace {
		return nil, fmt.Errorf("scale sizes %v: want growing sizes of at least %d", o.Sizes, scalePerNamespace)
	}
	o.Rounds, o.Reviews = max(o.Rounds, 1), max(o.Reviews, 10)
	if o.Log == nil {
		o.Log = io.Discard
	}
	lc, binary, cs, err := startCluster(ctx, o.Dir, o.Binary, o.Log)
	if err != nil {
		return nil, err
	}
	defer lc.Stop()
	o.Binary = binary
	e := &scaleEnv{lc: lc, client: cs, o: o}
	if err := e.setUp(ctx); err != nil {
		return nil, err
	}
	res := &ScaleResult{Options: o}
	have := 0
	for _, n := range o.Sizes {
		s, err := e.step(ctx, have, n)
		if s.Deployments > 0 {
			res.Steps = append(res.Steps, s)
		}
		if err != nil {
			return res, fmt.Errorf("at %d Deployments: %w", n, err)
		}
		have = n
	}
	return res, nil
}

func (e *scaleEnv) progress(format string, args ...any) {
	fmt.Fprintf(e.o.Log, "==> scale: "+format+"\n", args...)
}

// setUp removes the webhook configurations, writes the policy and creates the control
// namespace.
func (e *scaleEnv) setUp(ctx context.Context) error {
	ar := e.client.AdmissionregistrationV1()
	if err := ar.MutatingWebhookConfigurations().Delete(ctx, webhookConfigs, metav1.DeleteOptions{}); err != nil {
		return err
	}
	if err := ar.ValidatingWebhookConfigurations().Delete(ctx, webhookConfigs, metav1.DeleteOptions{}); err != nil {
		return err
	}
	return harness.SetPolicy(ctx, e.client, scalePolicy)
}

// step grows the cluster from have to n Deployments and measures.
func (e *scaleEnv) step(ctx context.Context, have, n int) (ScaleStep, error) {
	s := ScaleStep{Deployments: n, Namespaces: (n + scalePerNamespace - 1) / scalePerNamespace}
	e.progress("creating %d Deployments (%d in all, in %d namespaces), %d at a time", n-have, n, s.Namespaces, ScaleCreateWorkers)
	t0 := time.Now()
	if err := e.createScaleLoad(ctx, have, n); err != nil {
		return ScaleStep{}, err
	}
	s.Created = time.Since(t0)
	e.progress("created in %v (%.0f/s)", s.Created.Round(time.Second), float64(n-have)/s.Created.Seconds())
	var w *harness.Webhook
	defer func() {
		if w != nil {
			_ = w.Stop(30 * time.Second)
		}
	}()
	for r := range e.o.Rounds {
		if w != nil {
			if err := w.Stop(30 * time.Second); err != nil {
				return s, fmt.Errorf("stopping the binary: %w", err)
			}
		}
		var err error
		if w, err = e.round(ctx, &s, r); err != nil {
			return s, err
		}
	}
	e.progress("%d AdmissionReviews of each kind, interleaved", e.o.Reviews)
	if err := e.measureAdmission(ctx, w, &s); err != nil {
		return s, err
	}
	return s, e.controlPlaneMemory(ctx, &s)
}

// round is one start-up of the binary next to the bare informers' lists, in an order that
// alternates from round to round; it returns the binary, running.
func (e *scaleEnv) round(ctx context.Context, s *ScaleStep, r int) (*harness.Webhook, error) {
	var w *harness.Webhook
	bare := func() error {
		cts := []string{k8sruntime.ContentTypeProtobuf}
		if r == 0 {
			cts = append(cts, k8sruntime.ContentTypeJSON) // for comparison only, and slow: once
		}
		for _, ct := range cts {
			d, err := bareInformerSync(ctx, e.lc.Config, ct, s.Deployments)
			if err != nil {
				return err
			}
			if ct == k8sruntime.ContentTypeJSON {
				s.BareJSON = append(s.BareJSON, d)
			} else {
				s.Bare = append(s.Bare, d)
			}
		}
		return nil
	}
	binary := func() error {
		var err error
		w, err = e.startBinary(ctx, s)
		return err
	}
	steps := []func() error{bare, binary}
	if r%2 == 1 {
		steps = []func() error{binary, bare}
	}
	for _, f := range steps {
		if err := f(); err != nil {
			if w != nil {
				_ = w.Stop(30 * time.Second)
			}
			return nil, err
		}
	}
	e.progress("round %d/%d: binary ready in %v, bare informer synced in %v (protobuf)", r+1, e.o.Rounds,
		s.Ready[len(s.Ready)-1].Round(time.Millisecond), s.Bare[len(s.Bare)-1].Round(time.Millisecond))
	return w, nil
}

// Median is the middle of ds (the lower of the two middle ones), 0 for none.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
