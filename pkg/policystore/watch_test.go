package policystore

import (
	"context"
	"fmt"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// propagation is the contract's bound on a policy change: "takes effect for admission
// within 2 seconds".
const propagation = 2 * time.Second

// TestWatcher runs the Watcher against a real kube-apiserver; the subtests share it, each
// in its own namespace.
func TestWatcher(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	env := harness.StartControlPlane(t, harness.ControlPlaneOptions{})
	t.Run("lifecycle", func(t *testing.T) { testWatcherLifecycle(t, env.Client) })
	t.Run("ready only once the policy is loaded", func(t *testing.T) { testWatcherReadyAfterLoad(t, env.Client) })
	t.Run("Event for a policy with many errors", func(t *testing.T) { testWatcherLongEvent(t, env.Client) })
	t.Run("least privilege", func(t *testing.T) { testWatcherLeastPrivilege(t, env.Client, env.Config) })
}

// testWatcherLifecycle: absent, created, edited, made invalid, fixed, deleted; other
// ConfigMaps never count.
func testWatcherLifecycle(t *testing.T, client kubernetes.Interface) {
	ns := createNamespace(t, client, "lifecycle")
	cms := client.CoreV1().ConfigMaps(ns)
	store := NewStore(policy.Options{AlwaysExempt: []string{ns}})
	var mu sync.Mutex
	var loaded []string // every rule name the store ever held
	store.Subscribe(func(s *policy.Snapshot) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range s.Rules() {
			loaded = append(loaded, r.Name)
		}
	})
	// A decoy before the watcher starts and one after, in the same namespace, and one with
	// the policy's name in another namespace: the informer must see none of them.
	if _, err := cms.Create(t.Context(), namedConfigMap(ns, "decoy", maxPolicy(90)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := createNamespace(t, client, "lifecycle-other")
	if _, err := client.CoreV1().ConfigMaps(other).Create(t.Context(), namedConfigMap(other, "replica-policy", maxPolicy(91)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	w := &Watcher{Store: store, Client: client, Namespace: ns, Name: "replica-policy", Log: testr.New(t), Recorder: newRecorder(t, client)}
	startWatcher(t, w)
	if n := len(store.Snapshot().Rules()); n != 0 {
		t.Fatalf("no policy ConfigMap, yet %d rules", n)
	}
	if m := store.Snapshot().Decide(policy.Subject{Namespace: "app"}, nil); m.Rule != nil {
		t.Errorf("no policy ConfigMap, yet rule %q applies", m.Rule.Name)
	}
	checkGauge(t, "replicapolicy_policy_present", 0)
	checkGauge(t, "replicapolicy_policy_valid", 1)
	if _, err := cms.Create(t.Context(), namedConfigMap(ns, "decoy-2", maxPolicy(92)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Created.
	cm, err := cms.Create(t.Context(), namedConfigMap(ns, "replica-policy", maxPolicy(3)), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitForRule(t, store, "max-3")
	checkGauge(t, "replicapolicy_policy_present", 1)
	checkGauge(t, "replicapolicy_policy_valid", 1)
	checkGauge(t, "replicapolicy_policy_rules", 1)
	waitForEvent(t, client, ns, cm.Name, corev1.EventTypeNormal, ReasonPolicyLoaded, "replica policy with 1 rules is in force")

	// Edited.
	cm.Data[policy.ConfigMapKey] = maxPolicy(5)
	if cm, err = cms.Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	good := waitForRule(t, store, "max-5")
	if got := *good.Decide(policy.Subject{Namespace: "app"}, nil).Rule.Bounds.Max; got != 5 {
		t.Errorf("max %d, want 5", got)
	}
	if want := fmt.Sprintf("configmap %s/replica-policy@%s", ns, cm.ResourceVersion); good.Source != want {
		t.Errorf("Source %q, want %q", good.Source, want)
	}

	// Made invalid: the last valid policy stays, and the mistake is reported.
	cm.Data[policy.ConfigMapKey] = header + "rules:\n- {name: max-5, maxReplicas: 5}\n- {name: b, minReplicas: 3, maxReplicas: 2}\n"
	if cm, err = cms.Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, propagation, poll, "replicapolicy_policy_valid to turn 0", func() bool { return gauge(t, "replicapolicy_policy_valid") == 0 })
	if store.Snapshot() != good {
		t.Errorf("an invalid policy replaced the one in force: now %q", store.Snapshot().Source)
	}
	ev := waitForEvent(t, client, ns, cm.Name, corev1.EventTypeWarning, ReasonPolicyInvalid,
		"rules[1].maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (3)")
	if want := "the last valid policy stays in force (" + good.Source + ")"; !strings.Contains(ev.Note, want) {
		t.Errorf("Event note %q does not say %q", ev.Note, want)
	}
	if ev.Regarding.Kind != "ConfigMap" || ev.Regarding.Namespace != ns || ev.Regarding.ResourceVersion != cm.ResourceVersion {
		t.Errorf("Event regarding %+v, want the ConfigMap at resourceVersion %s", ev.Regarding, cm.ResourceVersion)
	}
	checkGauge(t, "replicapolicy_policy_present", 1)

	// Fixed.
	cm.Data[policy.ConfigMapKey] = maxPolicy(6)
	if _, err = cms.Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForRule(t, store, "max-6")
	checkGauge(t, "replicapolicy_policy_valid", 1)

	// Deleted: no bounds.
	if err := cms.Delete(t.Context(), "replica-policy", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, propagation, poll, "no bounds after the ConfigMap's deletion", func() bool {
		return store.Snapshot().Decide(policy.Subject{Namespace: "app"}, nil).Rule == nil
	})
	checkGauge(t, "replicapolicy_policy_present", 0)
	checkGauge(t, "replicapolicy_policy_rules", 0)

	// The decoys changing does nothing either.
	decoy, err := cms.Get(t.Context(), "decoy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	decoy.Data[policy.ConfigMapKey] = maxPolicy(93)
	if _, err := cms.Update(t.Context(), decoy, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(propagation / 2)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"max-3", "max-5", "max-6"}; fmt.Sprint(loaded) != fmt.Sprint(want) {
		t.Errorf("the store held rules %q, want %q: another ConfigMap was read, or a change missed", loaded, want)
	}
	if store.Snapshot().Decide(policy.Subject{Namespace: "app"}, nil).Rule != nil {
		t.Error("a decoy ConfigMap's policy is in force")
	}
}

// testWatcherReadyAfterLoad: with the ConfigMap in place before the start, Ready() must not
// be true before the policy is in the Store (the contract's "ready only once the policy
// has been read"). The handler is slowed down to make a premature Ready() certain to show.
func testWatcherReadyAfterLoad(t *testing.T, client kubernetes.Interface) {
	ns := createNamespace(t, client, "ready")
	if _, err := client.CoreV1().ConfigMaps(ns).Create(t.Context(), namedConfigMap(ns, "replica-policy", maxPolicy(4)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store := NewStore(policy.Options{})
	w := &Watcher{Store: store, Client: client, Namespace: ns, Name: "replica-policy", Log: logr.New(slowSink{delay: 500 * time.Millisecond})}
	startWatcher(t, w)
	if got := ruleIn(store.Snapshot(), "app"); got != "max-4" {
		t.Fatalf("Ready() is true, but the store holds rule %q, not the ConfigMap's max-4", got)
	}
}

// slowSink is a logr.LogSink whose WithValues, the first thing the watcher's handler
// calls, takes a while.
type slowSink struct{ delay time.Duration }

func (slowSink) Init(logr.RuntimeInfo)            {}
func (slowSink) Enabled(int) bool                 { return false }
func (slowSink) Info(int, string, ...any)         {}
func (slowSink) Error(error, string, ...any)      {}
func (s slowSink) WithName(string) logr.LogSink   { return s }
func (s slowSink) WithValues(...any) logr.LogSink { time.Sleep(s.delay); return s }

// testWatcherLongEvent: a policy with many mistakes still gets its PolicyInvalid Event;
// the API server refuses notes over 1 KiB.
func testWatcherLongEvent(t *testing.T, client kubernetes.Interface) {
	ns := createNamespace(t, client, "long-event")
	var doc strings.Builder
	doc.WriteString(header + "rules:\n")
	for i := range 60 {
		fmt.Fprintf(&doc, "- {name: rule-%d, minReplicas: 3, maxReplicas: 2}\n", i)
	}
	cm, err := client.CoreV1().ConfigMaps(ns).Create(t.Context(), namedConfigMap(ns, "replica-policy", doc.String()), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := &Watcher{Store: NewStore(policy.Options{}), Client: client, Namespace: ns, Name: "replica-policy", Log: testr.New(t), Recorder: newRecorder(t, client)}
	startWatcher(t, w)
	checkGauge(t, "replicapolicy_policy_valid", 0)
	ev := waitForEvent(t, client, ns, cm.Name, corev1.EventTypeWarning, ReasonPolicyInvalid,
		"invalid replica policy: rules[0].maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (3); rules[1].maxReplicas")
	if len(ev.Note) > maxNoteBytes || !strings.Contains(ev.Note, " more (see the webhook's log)") {
		t.Errorf("note of %d bytes: %s", len(ev.Note), ev.Note)
	}
}

// testWatcherLeastPrivilege: the Watcher works under the contract's RBAC, get, list and
// watch on the one ConfigMap by resourceNames, which only its field selector satisfies.
func testWatcherLeastPrivilege(t *testing.T, admin kubernetes.Interface, cfg *rest.Config) {
	ns := createNamespace(t, admin, "least-privilege")
	ctx := t.Context()
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "webhook"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "policy-reader"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"configmaps"},
			Verbs: []string{"get", "list", "watch"}, ResourceNames: []string{"replica-policy"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "policy-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "policy-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "webhook"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"replica-policy", "unrelated"} {
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, namedConfigMap(ns, name, maxPolicy(7)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	saCfg := rest.CopyConfig(cfg)
	saCfg.Impersonate = rest.ImpersonationConfig{UserName: fmt.Sprintf("system:serviceaccount:%s:webhook", ns)}
	sa, err := kubernetes.NewForConfig(saCfg)
	if err != nil {
		t.Fatal(err)
	}
	// The grant is in force (RBAC reads its objects through informers)...
	harness.Eventually(t, 10*time.Second, poll, "the ServiceAccount to read the policy ConfigMap", func() bool {
		_, err := sa.CoreV1().ConfigMaps(ns).Get(ctx, "replica-policy", metav1.GetOptions{})
		return err == nil
	})
	// ...and it is no wider than the contract's: these must be refused, or this test
	// would prove nothing.
	if _, err := sa.CoreV1().ConfigMaps(ns).Get(ctx, "unrelated", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("get of another ConfigMap: %v, want Forbidden", err)
	}
	if _, err := sa.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list without a field selector: %v, want Forbidden", err)
	}

	store := NewStore(policy.Options{})
	w := &Watcher{Store: store, Client: sa, Namespace: ns, Name: "replica-policy", Log: testr.New(t)}
	startWatcher(t, w)
	if got := ruleIn(store.Snapshot(), "app"); got != "max-7" {
		t.Fatalf("under least privilege the store holds rule %q, want max-7", got)
	}
	// The watch works too, not only the list.
	cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "replica-policy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data[policy.ConfigMapKey] = maxPolicy(8)
	if _, err := admin.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForRule(t, store, "max-8")
}

func TestInvalidNote(t *testing.T) {
	var errs field.ErrorList
	for i := range 60 {
		errs = append(errs, field.Invalid(field.NewPath("rules").Index(i).Child("maxReplicas"), 2, "must be greater than or equal to minReplicas (3)"))
	}
	const inForce = "configmap replica-policy-system/replica-policy@12345"
	tail := "; the last valid policy stays in force (" + inForce + ")"

	short := invalidNote(&policy.InvalidError{Errs: errs[:2]}, inForce)
	if want := (&policy.InvalidError{Errs: errs[:2]}).Error() + tail; short != want {
		t.Errorf("\n got %s\nwant %s", short, want)
	}

	long := invalidNote(&policy.InvalidError{Errs: errs}, inForce)
	if len(long) > maxNoteBytes {
		t.Errorf("note of %d bytes, over the API server's %d", len(long), maxNoteBytes)
	}
	if len(long) < maxNoteBytes-200 {
		t.Errorf("note of %d bytes: too much left out", len(long))
	}
	if !strings.HasPrefix(long, "invalid replica policy: "+errs[0].Error()+"; "+errs[1].Error()) || !strings.HasSuffix(long, tail) {
		t.Errorf("note: %s", long)
	}
	shown := strings.Count(long, "must be greater")
	if want := fmt.Sprintf("; and %d more (see the webhook's log)"+tail, len(errs)-shown); !strings.HasSuffix(long, want) {
		t.Errorf("note %q\ndoes not end with %q", long, want)
	}

	// One error longer than a note on its own is cut, at a character boundary.
	huge := field.ErrorList{field.Invalid(field.NewPath("rules").Index(0).Child("name"), strings.Repeat("é", 800), "too long"), errs[0]}
	note := invalidNote(&policy.InvalidError{Errs: huge}, inForce)
	if len(note) > maxNoteBytes || !strings.Contains(note, "é…; and 1 more") || !strings.HasSuffix(note, tail) {
		t.Errorf("note of %d bytes: %s", len(note), note)
	}
}

// Helpers.

func createNamespace(t *testing.T, client kubernetes.Interface, name string) string {
	t.Helper()
	if _, err := client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

func namedConfigMap(ns, name, doc string) *corev1.ConfigMap {
	cm := policyConfigMap("", doc)
	cm.Namespace, cm.Name = ns, name
	return cm
}

// startWatcher starts w, waits until it is ready and stops it when the test ends.
func startWatcher(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Start did not return after its context ended")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !w.Ready() {
		select {
		case err := <-done:
			t.Fatalf("Start returned before the watcher was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher is not ready after 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newRecorder returns an events.k8s.io recorder, as the manager's GetEventRecorder gives,
// and checks that it is the recorder.EventRecorder the Watcher takes.
func newRecorder(t *testing.T, client kubernetes.Interface) recorder.EventRecorder {
	t.Helper()
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.StartRecordingToSinkWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); b.Shutdown() })
	r, ok := b.NewRecorder(clientgoscheme.Scheme, "replica-policy").(recorder.EventRecorder)
	if !ok {
		t.Fatal("client-go's events recorder is not a controller-runtime recorder.EventRecorder")
	}
	return r
}

// waitForRule waits until the store's policy applies the named rule to a workload in
// namespace "app" and returns that snapshot.
func waitForRule(t *testing.T, store *Store, rule string) *policy.Snapshot {
	t.Helper()
	var snap *policy.Snapshot
	harness.Eventually(t, propagation, poll, "rule "+rule+" in force", func() bool {
		snap = store.Snapshot()
		return ruleIn(snap, "app") == rule
	})
	return snap
}

func waitForEvent(t *testing.T, client kubernetes.Interface, ns, regarding, eventType, reason, noteHas string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	var seen []string
	harness.Eventually(t, 10*time.Second, poll, fmt.Sprintf("a %s %s Event on %s", eventType, reason, regarding), func() (bool, string) {
		list, err := client.EventsV1().Events(ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return false, fmt.Sprintf("listing Events: %v", err)
		}
		seen = seen[:0]
		for _, e := range list.Items {
			seen = append(seen, e.Reason+": "+e.Note)
			if e.Regarding.Name == regarding && e.Type == eventType && e.Reason == reason && strings.Contains(e.Note, noteHas) {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("Events seen: %q", seen)
	})
	return found
}

// poll is how often the tests poll the store and the API server.
const poll = 20 * time.Millisecond

// gauge reads a gauge from controller-runtime's registry, where the metrics are served.
func gauge(t *testing.T, name string) float64 {
	t.Helper()
	m, err := harness.GatherMetrics(metrics.Registry)
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Value(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func checkGauge(t *testing.T, name string, want float64) {
	t.Helper()
	if got := gauge(t, name); got != want {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}
