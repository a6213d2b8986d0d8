package scaler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The scaler's Events on workloads go through a budget: in each pass (a window of
// Options.EventWindow that opens with the first Event after a quiet spell) the first
// Options.EventBudget are recorded on their workloads, and the rest are counted by
// namespace, rule and reason and summarised when the window closes, in one Event per
// namespace, rule and reason, on the Namespace and in it (`kubectl get events -n NS`
// shows it beside the workloads' own).
//
// Why: client-go's events.k8s.io broadcaster keeps every distinct Event it sent for 6 to
// 12 minutes (its series cache, dropped by finishSeries every 6 minutes), and each Event
// is an API write as costly as the correction itself. A correction storm of 10,000
// violators recorded 10,000 Events, kept about 30 MiB for minutes and halved the rate of
// corrections. With the budget, a storm of any size records at most EventBudget Events and
// a summary per namespace, rule and reason in each window.

// summaryKey is what a summary Event counts: the Events of one reason, type and action
// for one rule in one namespace.
type summaryKey struct {
	namespace, rule, reason, eventType, action string
}

// summaryCount is a key's Events in the window: all of them, and those past the budget.
type summaryCount struct{ all, over int }

// eventBudget counts the scaler's Events in the current window.
type eventBudget struct {
	limit int

	mu     sync.Mutex
	open   bool
	sent   int
	counts map[summaryKey]*summaryCount
}

func newEventBudget(limit int) *eventBudget {
	return &eventBudget{limit: limit, counts: map[summaryKey]*summaryCount{}}
}

// admit counts an Event of key and reports whether it may be recorded on its workload:
// yes for the first limit Events of a window. opened is true when this Event opened the
// window, whose closing the caller schedules.
func (b *eventBudget) admit(key summaryKey) (ok, opened bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	opened = !b.open
	b.open = true
	c := b.counts[key]
	if c == nil {
		c = &summaryCount{}
		b.counts[key] = c
	}
	c.all++
	if b.sent < b.limit {
		b.sent++
		return true, opened
	}
	c.over++
	return false, opened
}

// close ends the window and returns the keys that had Events past the budget, with their
// counts, in a stable order (namespace, rule, reason).
func (b *eventBudget) close() ([]summaryKey, map[summaryKey]summaryCount) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var keys []summaryKey
	over := map[summaryKey]summaryCount{}
	for k, c := range b.counts {
		if c.over > 0 {
			keys = append(keys, k)
			over[k] = *c
		}
	}
	b.open, b.sent, b.counts = false, 0, map[summaryKey]*summaryCount{}
	slices.SortFunc(keys, func(a, b summaryKey) int {
		return strings.Compare(a.namespace+"\x00"+a.rule+"\x00"+a.reason, b.namespace+"\x00"+b.rule+"\x00"+b.reason)
	})
	return keys, over
}

// event records an Event on the workload obj for rule through the budget: on obj when the
// budget allows, else counted for its namespace's summary.
func (r *Reconciler) event(obj client.Object, rule, eventType, reason, action, note string, args ...any) {
	ok, opened := r.budget.admit(summaryKey{namespace: obj.GetNamespace(), rule: rule, reason: reason, eventType: eventType, action: action})
	if opened {
		time.AfterFunc(r.opts.EventWindow, r.summarise)
	}
	if !ok {
		eventsSummarisedTotal.WithLabelValues(reason).Inc()
		return
	}
	r.Recorder.Eventf(obj, nil, eventType, reason, action, note, args...)
}

// summarise closes the budget's window and records a summary Event for each namespace,
// rule and reason that had Events past the budget.
func (r *Reconciler) summarise() {
	keys, counts := r.budget.close()
	for _, k := range keys {
		c := counts[k]
		r.Recorder.Eventf(r.namespaceRef(k.namespace), nil, k.eventType, k.reason, k.action,
			"replica policy rule %q: %d workloads in namespace %s %s within %s; %d of them have no Event of their own (the scaler records at most %d Events on workloads per %s)",
			k.rule, c.all, k.namespace, summaryVerb(k.reason), r.opts.EventWindow, c.over, r.opts.EventBudget, r.opts.EventWindow)
	}
}

// summaryVerb says what the Events of reason were about, for a summary's note.
func summaryVerb(reason string) string {
	switch reason {
	case ReasonReplicasCorrected:
		return "had spec.replicas corrected"
	case ReasonReplicasOutOfBounds:
		return "were reported outside their bounds"
	case ReasonCorrectionFailed:
		return "could not be corrected"
	case ReasonReplicasContested:
		return "were found contested by another writer"
	}
	return fmt.Sprintf("had %s Events", reason)
}

// namespaceRef is the object a summary Event for namespace ns regards: the Namespace, with
// its uid from the cache when the cache has it, and ns as its own namespace, so that the
// Event is recorded in ns (an Event regarding a cluster-scoped object would go to
// "default", where the namespace's team does not look).
func (r *Reconciler) namespaceRef(ns string) *corev1.Namespace {
	ref := &corev1.Namespace{}
	if r.reader == nil || r.reader.Get(context.Background(), client.ObjectKey{Name: ns}, ref) != nil {
		ref = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	}
	ref.Namespace = ns
	return ref
}
