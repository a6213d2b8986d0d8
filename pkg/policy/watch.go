package policy

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// Event reasons recorded on the policy ConfigMap.
const (
	// ReasonPolicyInvalid: the ConfigMap's policy was rejected; the last valid one stays.
	ReasonPolicyInvalid = "PolicyInvalid"
	// ReasonPolicyLoaded: the ConfigMap's policy is now in force.
	ReasonPolicyLoaded = "PolicyLoaded"
)

// Watcher keeps a Store in step with the policy ConfigMap. Its informer watches that one
// object only (its namespace, and a field selector on its name), so RBAC can grant get,
// list and watch on just that ConfigMap by resourceNames.
type Watcher struct {
	Store     *Store
	Client    kubernetes.Interface
	Namespace string
	Name      string
	// Recorder, when set, records PolicyInvalid and PolicyLoaded Events on the ConfigMap.
	Recorder recorder.EventRecorder
	Log      logr.Logger

	synced       atomic.Bool
	saidAbsent   atomic.Bool
	lastRejected atomic.Pointer[string] // resourceVersion of the last rejected ConfigMap
}

// Start runs the informer until ctx ends (a controller-runtime Runnable).
func (w *Watcher) Start(ctx context.Context) error {
	selector := fields.OneTermEqualSelector("metadata.name", w.Name).String()
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return w.Client.CoreV1().ConfigMaps(w.Namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return w.Client.CoreV1().ConfigMaps(w.Namespace).Watch(ctx, o)
		},
	}
	inf := toolscache.NewSharedIndexInformer(lw, &corev1.ConfigMap{}, 0, toolscache.Indexers{})
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.apply(obj.(*corev1.ConfigMap)) },
		UpdateFunc: func(_, obj any) { w.apply(obj.(*corev1.ConfigMap)) },
		DeleteFunc: func(any) { w.apply(nil) },
	}); err != nil {
		return fmt.Errorf("watching policy ConfigMap: %w", err)
	}
	go inf.RunWithContext(ctx)
	if !toolscache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("policy ConfigMap %s/%s: cache did not sync: %w", w.Namespace, w.Name, ctx.Err())
	}
	if len(inf.GetStore().List()) == 0 {
		w.apply(nil)
	}
	w.synced.Store(true)
	<-ctx.Done()
	return nil
}

// Ready reports whether the policy has been read (or found absent) at least once.
func (w *Watcher) Ready() bool { return w.synced.Load() }

// NeedLeaderElection is false: every replica serves admission and needs the policy.
func (w *Watcher) NeedLeaderElection() bool { return false }

func (w *Watcher) apply(cm *corev1.ConfigMap) {
	log := w.Log.WithValues("configMap", fmt.Sprintf("%s/%s", w.Namespace, w.Name))
	lastReload.SetToCurrentTime()
	snap, err := w.Store.Apply(cm)
	if cm == nil {
		reloadsTotal.WithLabelValues(ReloadAbsent).Inc()
		policyPresent.Set(0)
		policyValid.Set(1)
		policyRules.Set(0)
		if !w.saidAbsent.Swap(true) {
			log.Info("policy ConfigMap not found: no replica bounds are enforced until it is created")
		}
		return
	}
	w.saidAbsent.Store(false)
	policyPresent.Set(1)
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		reloadsTotal.WithLabelValues(ReloadInvalid).Inc()
		policyValid.Set(0)
		rv := cm.ResourceVersion
		if prev := w.lastRejected.Swap(&rv); prev != nil && *prev == rv {
			return // the same object again (a resync): said already
		}
		in := w.Store.Snapshot().Source
		if in == "" {
			in = "no bounds"
		}
		log.Error(err, "policy rejected, the last valid policy stays in force", "resourceVersion", rv, "inForce", in)
		if w.Recorder != nil {
			w.Recorder.Eventf(cm, nil, corev1.EventTypeWarning, ReasonPolicyInvalid, "Load",
				"%v; the last valid policy stays in force (%s)", err, in)
		}
		return
	}
	reloadsTotal.WithLabelValues(ReloadValid).Inc()
	policyValid.Set(1)
	policyRules.Set(float64(len(snap.Rules())))
	log.Info("policy loaded", "resourceVersion", cm.ResourceVersion, "rules", len(snap.Rules()))
	if w.Recorder != nil {
		w.Recorder.Eventf(cm, nil, corev1.EventTypeNormal, ReasonPolicyLoaded, "Load",
			"replica policy with %d rules is in force", len(snap.Rules()))
	}
}
