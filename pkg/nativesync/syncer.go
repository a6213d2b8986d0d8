// Package nativesync keeps the native admission policies that pkg/native compiles in step
// with the policy in force (--native-policies): the API server then enforces, in process,
// every request CEL can decide, and calls the webhook only for the rest.
//
// The Syncer owns the compiled objects (server-side apply, field manager "replica-policy")
// and three fields of the workload webhooks of the MutatingWebhookConfiguration it is given
// (rules, namespaceSelector and the matchCondition "native-policies"), and the scale entry
// beside each of them, which it gives the /scale writes a selector rule may decide
// (ScaleEntryPrefix). It is level-triggered: it watches the policy, each compiled object
// and the configuration, and whatever drifts from what it wants (an object deleted or
// edited by hand, the manifests re-applied) is restored at once, the webhook widened first
// while a native policy is missing. Its Finalizer holds a deleted object, which the API
// server keeps enforcing, until the API server is seen to call the widened webhook, so that
// no write is decided by nobody. It narrows the webhook only once the API server is seen to
// enforce the native policies (Prober).
//
// An invalid policy never reaches the store, so the objects stay as they were. A policy the
// API server cannot hold as native policies (native.LimitError) widens the webhook and then
// deletes the native objects: the webhook alone enforces it, as without --native-policies.
package nativesync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
)

// FieldManager owns the native policies' fields (server-side apply).
const FieldManager = "replica-policy"

// ConditionName is the matchCondition the Syncer sets on the webhook configuration.
const ConditionName = "native-policies"

// retryDelay is how long the Syncer waits before trying again after an API error; a change
// does not wait for it.
const retryDelay = 2 * time.Second

// probeDelay is how long it waits before probing again while the API server does not enforce
// the policies just applied: each API server loads them from its informers within about a
// second of the write, so the probes keep this pace for probeSteadyFor.
const (
	probeDelay     = 100 * time.Millisecond
	probeSteadyFor = 2 * time.Second
)

// maxProbeDelay bounds the back-off of the probes while they prove nothing (no Deployment
// to probe yet): the webhook stays wide meanwhile, which is safe.
const maxProbeDelay = 10 * time.Second

// probeBackoff paces the probes of one wait for the API server: every probeDelay for
// probeSteadyFor from the first "not yet", then twice as long each time, up to
// maxProbeDelay. It counts time, not Syncs: a Sync that a watch event triggers (the
// Syncer's own writes bring several) does not stretch the next probe, which it did when
// every "not yet" doubled the delay (a repair narrowed again after 2.03 s where 0.2 s is
// usual).
type probeBackoff struct {
	since time.Time // the first "not yet" of this wait; zero when not waiting
	wait  time.Duration
}

// next returns how long to wait before probing again after a "not yet" at now.
func (b *probeBackoff) next(now time.Time) time.Duration {
	if b.since.IsZero() {
		b.since, b.wait = now, probeDelay
	}
	if now.Sub(b.since) >= probeSteadyFor {
		b.wait = min(2*b.wait, maxProbeDelay)
	}
	return b.wait
}

// reset ends the wait: the next "not yet" starts a new one.
func (b *probeBackoff) reset() { *b = probeBackoff{} }

// Options configure a Syncer.
type Options struct {
	// Kinds are the workload kinds the native policies bound (policy.BuiltinWorkloadKinds and
	// the --workload-resource kinds; native.Compile leaves those whose replicas are not at
	// spec.replicas to the webhook).
	Kinds []policy.WorkloadKind
	// WebhookKinds are every bounded workload kind, Kinds and those the native policies
	// leave to the webhook: the rules of the webhook's workload entries.
	WebhookKinds []policy.WorkloadKind
	// NamespaceSelector is the workload entries' namespaceSelector (the manifests': not
	// kube-system, not the webhook's own namespace).
	NamespaceSelector *metav1.LabelSelector
	// Compile names the objects and the kinds whose objects may be owned.
	Compile native.Options
	// WebhookConfiguration names the MutatingWebhookConfiguration whose workload webhooks
	// the Syncer narrows.
	WebhookConfiguration string
	// Prober proves that the API server enforces what was applied.
	Prober Prober
	// Scope, when set, confines native mode to the namespaces it selects: the compiled
	// bindings and the workload webhook entries select only those.
	Scope *metav1.LabelSelector
}

// Syncer applies the compiled native policies. It is a manager Runnable that runs on the
// leader only.
type Syncer struct {
	client kubernetes.Interface
	store  *policystore.Store
	ready  func() bool // the policy has been read
	opts   Options
	log    logr.Logger

	changed chan struct{}
	// proven: the Prober saw the API server enforce the objects of the policy provenFor.
	proven      bool
	provenFor   string
	limitLogged bool
	// stores are the watch's caches of the compiled objects and the webhook configuration,
	// by "Kind/name"; nil until Start (Sync then reads from the API server).
	stores map[string]cache.Store
	// compile is native.Compile; tests replace it.
	compile func(*policy.Snapshot, []policy.WorkloadKind, native.Options) (*native.Result, error)
}

// New returns a Syncer of the policy in store; ready reports when the store holds the
// policy read from its ConfigMap (policystore.Watcher.Ready), before which nothing is applied.
func New(client kubernetes.Interface, store *policystore.Store, ready func() bool, opts Options, log logr.Logger) *Syncer {
	registerMetrics()
	if opts.WebhookKinds == nil {
		opts.WebhookKinds = opts.Kinds
	}
	if opts.NamespaceSelector == nil {
		opts.NamespaceSelector = &metav1.LabelSelector{}
	}
	if opts.Scope != nil {
		opts.NamespaceSelector = andSelectors(opts.NamespaceSelector, opts.Scope)
	}
	s := &Syncer{client: client, store: store, ready: ready, opts: opts, log: log,
		changed: make(chan struct{}, 1), compile: native.Compile}
	store.Subscribe(func(*policy.Snapshot) { s.poke() })
	return s
}

func (s *Syncer) poke() {
	select {
	case s.changed <- struct{}{}:
	default: // a sync is pending; it reads the newest snapshot
	}
}

// NeedLeaderElection is true: one replica writes the cluster's admission policies. The
// others keep serving admission requests, which need none of this.
func (s *Syncer) NeedLeaderElection() bool { return true }

// Start watches the compiled objects and the webhook configuration, and syncs once the
// policy has been read, then after every change of the policy or of what it watches,
// retrying failures every retryDelay, until ctx ends.
func (s *Syncer) Start(ctx context.Context) error {
	if err := s.watch(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond) // only until the policy has been read
	defer tick.Stop()
	for !s.ready() {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	s.poke()
	var retryC <-chan time.Time
	var backoff probeBackoff
	lastWhy := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.changed:
		case <-retryC:
		}
		retryC = nil
		err := s.Sync(ctx, s.store.Snapshot())
		var notYet *notYetError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &notYet):
			// Not a failure: the API server loads what was just applied. Each new reason once
			// at the default level (no Deployment to probe may last), repeats at -v=1.
			log := s.log.V(1)
			if notYet.why != lastWhy {
				log, lastWhy = s.log, notYet.why
			}
			log.Info("Waiting; the webhook decides every write meanwhile", "for", notYet.what, "reason", notYet.why)
			inSync.Set(0)
			// A probe lists Namespaces and Deployments: back off while none proves anything.
			retryC = time.After(backoff.next(time.Now()))
			continue
		case err != nil:
			inSync.Set(0)
			syncFailures.Inc()
			s.log.Error(err, "Applying the native admission policies; retrying", "in", retryDelay)
			retryC = time.After(retryDelay)
		default:
			inSync.Set(1)
		}
		backoff.reset()
		lastWhy = ""
	}
}

// Sync makes the cluster's native policies and the webhook's fields those of snap, from
// what it observes (level-triggered: it is called on every change of the policy, of a
// compiled object and of the webhook configuration), writing only what differs:
//
//  1. when a compiled object is missing, differs from what it should be, or is no longer
//     needed, or when the API server has not yet been seen to enforce the objects, the
//     webhook's entries are widened first (every write of every bounded kind);
//  2. before an object is removed (no longer needed, edited by another field manager, or
//     deleted by someone and held by Finalizer), the Prober must see the API server call
//     the widened webhook;
//  3. the compiled objects that differ are applied (those to replace removed first), those
//     no longer needed removed;
//  4. once the Prober sees the API server enforce them, the entries are narrowed.
//
// A policy CEL cannot hold (native.LimitError) leaves the webhook wide and no native object.
// Sync returns a notYetError while the API server does not enforce them yet, or does not yet
// call the widened webhook before an object is removed.
func (s *Syncer) Sync(ctx context.Context, snap *policy.Snapshot) error {
	res, want, err := s.wanted(snap)
	if err != nil {
		return err
	}
	stale, replace, err := s.outOfDate(ctx, want)
	if err != nil {
		return err
	}
	extra, err := s.liveExtra(ctx, want)
	if err != nil {
		return err
	}
	if len(stale) > 0 || len(extra) > 0 || res == nil {
		s.proven = false
		if err := s.repair(ctx, stale, replace, extra); err != nil {
			return err
		}
		if res == nil {
			return nil
		}
	}
	if err := s.prove(ctx, snap, res); err != nil {
		return err
	}
	narrowed, err := s.setWebhook(ctx, s.narrowState(res.WebhookMatchCondition, res.WebhookScale))
	if err != nil {
		return err
	}
	if narrowed || len(stale) > 0 || len(extra) > 0 {
		s.log.Info("Native admission policies in force; webhook narrowed", "applied", names(stale), "deleted", names(extra), "webhookFor", res.Webhook)
	}
	return nil
}

// wanted compiles snap into the objects the native policies need; res is nil (and want
// empty) for a policy CEL cannot hold, which the webhook enforces alone.
func (s *Syncer) wanted(snap *policy.Snapshot) (res *native.Result, want []compiled, err error) {
	res, err = s.compile(snap, s.opts.Kinds, s.opts.Compile)
	var limit *native.LimitError
	switch {
	case errors.As(err, &limit):
		if !s.limitLogged {
			s.log.Info("The policy cannot be enforced by native admission policies; the webhook enforces all of it", "reason", err.Error())
			s.limitLogged = true
		}
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("compiling the policy: %w", err)
	}
	s.limitLogged = false
	s.scope(res)
	for _, o := range res.Objects() {
		o.(metav1.Object).SetFinalizers([]string{Finalizer})
		c, err := compiledOf(o)
		if err != nil {
			return nil, nil, err
		}
		want = append(want, c)
	}
	return res, want, nil
}

// outOfDate are the wanted objects that are missing or differ from what is live (stale),
// and among them those that must go before they are applied again (replace: changed by
// another field manager, or being deleted).
func (s *Syncer) outOfDate(ctx context.Context, want []compiled) (stale, replace []compiled, err error) {
	for i := range want {
		c := &want[i]
		ok, other, err := c.upToDate(ctx, s)
		if err != nil {
			return nil, nil, err
		}
		if other {
			replace = append(replace, *c)
		}
		if !ok {
			stale = append(stale, *c)
		}
	}
	return stale, replace, nil
}

// repair widens the webhook first; before it removes any object (replace, extra) it waits
// until the API server calls the widened webhook (Prober.Widened), while Finalizer keeps the
// objects someone deleted in force. Then it removes the objects to replace, applies the stale
// ones and removes those no longer wanted.
func (s *Syncer) repair(ctx context.Context, stale, replace, extra []compiled) error {
	if err := s.widen(ctx, stale, extra); err != nil {
		return err
	}
	if len(replace) > 0 || len(extra) > 0 {
		ok, why, err := s.opts.Prober.Widened(ctx, s.opts.NamespaceSelector)
		if err != nil {
			return err
		}
		if !ok {
			return &notYetError{"the API server does not call the widened webhook yet, so no native policy is removed", why}
		}
	}
	for _, c := range replace {
		if err := c.remove(ctx, s); err != nil {
			return err
		}
	}
	for _, c := range stale {
		if err := c.apply(ctx, s); err != nil {
			return err
		}
	}
	for _, c := range extra {
		if err := c.remove(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// prove probes, once per policy and leader, that the API server enforces res before the
// webhook is narrowed (a new leader, or a policy whose objects were already in place, has
// nothing to write but is not proven either); until then the webhook stays wide and Sync
// returns a notYetError.
func (s *Syncer) prove(ctx context.Context, snap *policy.Snapshot, res *native.Result) error {
	key := snap.Source
	if s.proven && s.provenFor == key {
		return nil
	}
	ok, why, err := s.opts.Prober.Enforced(ctx, snap, res)
	if err != nil {
		return err
	}
	if !ok {
		if err := s.widen(ctx, nil, nil); err != nil {
			return err
		}
		return &notYetError{"the API server does not enforce the native policies yet", why}
	}
	s.proven, s.provenFor = true, key
	return nil
}

// widen makes the webhook decide every write of the bounded kinds.
func (s *Syncer) widen(ctx context.Context, stale, extra []compiled) error {
	widened, err := s.setWebhook(ctx, s.wideState())
	if widened {
		s.log.Info("Webhook widened: it decides every write of the bounded kinds", "missingOrChanged", names(stale), "unneeded", names(extra))
	}
	return err
}

// notYetError: the API server is not yet where the next step needs it (it does not enforce
// the applied policies, or does not call the widened webhook); the webhook decides every
// write meanwhile.
type notYetError struct{ what, why string }

func (e *notYetError) Error() string { return e.what + ": " + e.why }

func names(cs []compiled) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}
