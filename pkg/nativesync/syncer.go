// Package nativesync keeps the native admission policies that pkg/native compiles in step
// with the policy in force (--native-policies): the API server then enforces, in process,
// every request CEL can decide, and calls the webhook only for the rest.
//
// On every policy the store swaps in (and once the policy has first been read), the Syncer
// compiles it and, in this order, so that no request is left to nobody in between:
//
//  1. server-side applies the compiled MutatingAdmissionPolicy, ValidatingAdmissionPolicies
//     and their bindings (field manager "replica-policy");
//  2. sets the matchCondition "native-policies" on every webhook of the mutating webhook
//     configuration, so that the API server calls the webhook only for what the native
//     policies leave to it;
//  3. deletes the compiled objects the policy no longer needs (a policy without deny rules
//     needs no deny policy; no policy at all needs none).
//
// An invalid policy never reaches the store, so the objects stay as they were. A policy the
// API server cannot hold as native policies (native.LimitError) widens the webhook's
// condition to every request first and then deletes the native objects: the webhook alone
// enforces it, as without --native-policies.
package nativesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
)

// FieldManager owns the native policies' fields (server-side apply).
const FieldManager = "replica-policy"

// ConditionName is the matchCondition the Syncer sets on the webhook configuration.
const ConditionName = "native-policies"

// retryDelay is how long the Syncer waits before trying again after an API error; a new
// policy does not wait for it.
const retryDelay = 2 * time.Second

// Options configure a Syncer.
type Options struct {
	// Kinds are the workload kinds the native policies bound (policy.BuiltinWorkloadKinds and the
	// --workload-resource kinds).
	Kinds []policy.WorkloadKind
	// Compile names the objects and the kinds whose objects may be owned.
	Compile native.Options
	// WebhookConfiguration names the MutatingWebhookConfiguration whose webhooks the Syncer
	// narrows.
	WebhookConfiguration string
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
}

// New returns a Syncer of the policy in store; ready reports when the store holds the
// policy read from its ConfigMap (policystore.Watcher.Ready), before which nothing is applied.
func New(client kubernetes.Interface, store *policystore.Store, ready func() bool, opts Options, log logr.Logger) *Syncer {
	registerMetrics()
	s := &Syncer{client: client, store: store, ready: ready, opts: opts, log: log,
		changed: make(chan struct{}, 1)}
	store.Subscribe(func(*policy.Snapshot) { s.poke() })
	return s
}

func (s *Syncer) poke() {
	select {
	case s.changed <- struct{}{}:
	default: // a sync is pending; it reads the newest snapshot
	}
}

// NeedLeaderElection is true: one replica writes the cluster's admission policies.
func (s *Syncer) NeedLeaderElection() bool { return true }

// Start syncs once the policy has been read, then after every policy change, retrying
// failures every retryDelay, until ctx ends.
func (s *Syncer) Start(ctx context.Context) error {
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.changed:
		case <-retryC:
		}
		retryC = nil
		if err := s.Sync(ctx, s.store.Snapshot()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			inSync.Set(0)
			syncFailures.Inc()
			s.log.Error(err, "Applying the native admission policies; retrying", "in", retryDelay)
			retryC = time.After(retryDelay)
			continue
		}
		inSync.Set(1)
	}
}

// Sync makes the cluster's native policies and the webhook's condition those of snap.
func (s *Syncer) Sync(ctx context.Context, snap *policy.Snapshot) error {
	res, err := native.Compile(snap, s.opts.Kinds, s.opts.Compile)
	var limit *native.LimitError
	switch {
	case errors.As(err, &limit):
		// The webhook decides everything again before the native policies go.
		s.log.Info("The policy cannot be enforced by native admission policies; the webhook enforces all of it", "reason", err.Error())
		if err := s.setCondition(ctx, "true"); err != nil {
			return err
		}
		if err := s.deleteExcept(ctx, nil); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("compiling the policy: %w", err)
	default:
		objs := res.Objects()
		for _, o := range objs {
			if err := s.apply(ctx, o); err != nil {
				return err
			}
		}
		if err := s.setCondition(ctx, res.WebhookMatchCondition); err != nil {
			return err
		}
		if err := s.deleteExcept(ctx, objs); err != nil {
			return err
		}
		s.log.Info("Native admission policies applied", "objects", len(objs), "webhookFor", res.Webhook)
	}
	return nil
}

// apply server-side applies one compiled object (Compile sets their apiVersion and kind).
func (s *Syncer) apply(ctx context.Context, obj runtime.Object) error {
	ar := s.client.AdmissionregistrationV1()
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true)}
	var err error
	switch o := obj.(type) {
	case *admissionregistrationv1.MutatingAdmissionPolicy:
		err = patch(ctx, o, o.Name, opts, ar.MutatingAdmissionPolicies().Patch)
	case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
		err = patch(ctx, o, o.Name, opts, ar.MutatingAdmissionPolicyBindings().Patch)
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		err = patch(ctx, o, o.Name, opts, ar.ValidatingAdmissionPolicies().Patch)
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		err = patch(ctx, o, o.Name, opts, ar.ValidatingAdmissionPolicyBindings().Patch)
	default:
		return fmt.Errorf("cannot apply %T", obj)
	}
	return err
}

// patch sends obj as an apply patch through a typed client's Patch.
func patch[T any](ctx context.Context, obj any, name string, opts metav1.PatchOptions,
	fn func(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (T, error)) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	if _, err := fn(ctx, name, types.ApplyPatchType, data, opts); err != nil {
		return fmt.Errorf("applying %s: %w", name, err)
	}
	return nil
}

// deleteExcept deletes the compiled objects that are not in keep.
func (s *Syncer) deleteExcept(ctx context.Context, keep []runtime.Object) error {
	kept := map[string]bool{}
	for _, o := range keep {
		m, err := metaOf(o)
		if err != nil {
			return err
		}
		kept[fmt.Sprintf("%T/%s", o, m.GetName())] = true
	}
	ar := s.client.AdmissionregistrationV1()
	for _, name := range native.Names(s.opts.Compile) {
		for _, d := range []struct {
			typ string
			del func(context.Context, string, metav1.DeleteOptions) error
		}{
			// Bindings first: a binding without its policy is an error the API server reports.
			{fmt.Sprintf("%T", &admissionregistrationv1.MutatingAdmissionPolicyBinding{}), ar.MutatingAdmissionPolicyBindings().Delete},
			{fmt.Sprintf("%T", &admissionregistrationv1.MutatingAdmissionPolicy{}), ar.MutatingAdmissionPolicies().Delete},
			{fmt.Sprintf("%T", &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}), ar.ValidatingAdmissionPolicyBindings().Delete},
			{fmt.Sprintf("%T", &admissionregistrationv1.ValidatingAdmissionPolicy{}), ar.ValidatingAdmissionPolicies().Delete},
		} {
			if kept[d.typ+"/"+name] {
				continue
			}
			// The names are fixed: a GET of each would cost as much as the DELETE, and
			// NotFound is the common answer.
			if err := d.del(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting %s %s: %w", d.typ, name, err)
			}
		}
	}
	return nil
}

// setCondition sets the matchCondition ConditionName to expr on every webhook of the
// mutating webhook configuration (a read and an update, retried on conflict: the
// configuration's other fields belong to whoever installed it).
func (s *Syncer) setCondition(ctx context.Context, expr string) error {
	mwcs := s.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		mwc, err := mwcs.Get(ctx, s.opts.WebhookConfiguration, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", s.opts.WebhookConfiguration, err)
		}
		changed := false
		for i := range mwc.Webhooks {
			w := &mwc.Webhooks[i]
			want := admissionregistrationv1.MatchCondition{Name: ConditionName, Expression: expr}
			j := slices.IndexFunc(w.MatchConditions, func(c admissionregistrationv1.MatchCondition) bool { return c.Name == ConditionName })
			switch {
			case j < 0:
				w.MatchConditions = append(w.MatchConditions, want)
			case w.MatchConditions[j] == want:
				continue
			default:
				w.MatchConditions[j] = want
			}
			changed = true
		}
		if !changed {
			return nil
		}
		_, err = mwcs.Update(ctx, mwc, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no metadata", o)
	}
	return m, nil
}

func ptr[T any](v T) *T { return &v }
