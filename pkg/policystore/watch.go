package policystore

import (
	"context"
	"errors"
	"fmt"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"sync"
	"sync/atomic"
	"unicode/utf8"

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

	mu           sync.Mutex // serializes apply: informer handlers and Start's absence check
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
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { w.apply(obj.(*corev1.ConfigMap)) },
		UpdateFunc: func(old, obj any) {
			// A relist delivers the unchanged object again: nothing to load or to report.
			if old.(*corev1.ConfigMap).ResourceVersion == obj.(*corev1.ConfigMap).ResourceVersion {
				return
			}
			w.apply(obj.(*corev1.ConfigMap))
		},
		DeleteFunc: func(any) { w.apply(nil) },
	})
	if err != nil {
		return fmt.Errorf("watching policy ConfigMap: %w", err)
	}
	go inf.RunWithContext(ctx)
	// The registration, unlike the informer, has synced only once the handler has run for
	// the initial list: only then is the policy in the Store.
	if !toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return fmt.Errorf("policy ConfigMap %s/%s: cache did not sync: %w", w.Namespace, w.Name, ctx.Err())
	}
	// Under the lock, so that a ConfigMap created meanwhile is applied after, not before,
	// this "absent": the informer stores an object before it calls the handler.
	w.mu.Lock()
	if len(inf.GetStore().List()) == 0 {
		w.applyLocked(nil)
	}
	w.mu.Unlock()
	w.synced.Store(true)
	<-ctx.Done()
	return nil
}

// Ready reports whether the policy has been read (or found absent) at least once.
func (w *Watcher) Ready() bool { return w.synced.Load() }

// NeedLeaderElection is false: every replica serves admission and needs the policy.
func (w *Watcher) NeedLeaderElection() bool { return false }

func (w *Watcher) apply(cm *corev1.ConfigMap) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.applyLocked(cm)
}

func (w *Watcher) applyLocked(cm *corev1.ConfigMap) {
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
	var invalid *policy.InvalidError
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
				"%s", invalidNote(invalid, in))
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

// maxNoteBytes is the API server's limit on an Event's note (message):
// NoteLengthLimit in k8s.io/kubernetes pkg/apis/core/validation/events.go. A longer
// Event is rejected, and the recorder only logs that.
const maxNoteBytes = 1024

// invalidNote is the note of a PolicyInvalid Event: as many of the errors as fit in an
// Event, then how many were left out, then which policy stays in force.
func invalidNote(err *policy.InvalidError, inForce string) string {
	tail := fmt.Sprintf("; the last valid policy stays in force (%s)", inForce)
	note := "invalid replica policy: "
	n := 0 // errors in the note
	for ; n < len(err.Errs); n++ {
		msg := err.Errs[n].Error()
		if n > 0 {
			msg = "; " + msg
		}
		if len(note)+len(msg)+len(moreErrors(len(err.Errs)-n-1))+len(tail) > maxNoteBytes {
			break
		}
		note += msg
	}
	if n == 0 { // the first error alone is too long: cut it
		room := maxNoteBytes - len(note) - len(moreErrors(len(err.Errs)-1)) - len(tail) - len("…")
		note += truncateUTF8(err.Errs[0].Error(), room) + "…"
		n = 1
	}
	return truncateUTF8(note+moreErrors(len(err.Errs)-n)+tail, maxNoteBytes)
}

func moreErrors(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; and %d more (see the webhook's log)", n)
}

// truncateUTF8 returns at most n bytes of s, cut at a character boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
