package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	admissionregistrationv1client "k8s.io/client-go/kubernetes/typed/admissionregistration/v1"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/nativesync"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// TestNativePoliciesHealThemselves: the binary under --native-policies (and
// --native-clamp-warnings, so that every object the compiler can emit is in the game), as the component
// installs it (its ServiceAccount, the guard), with writes running throughout, while
// someone deletes each compiled object, edits one, re-applies the webhook configuration
// (server-side and client-side), changes the policy, deletes and recreates it, and kills the
// leader in the middle of a sync, a second replica taking over. Every write outside the
// bounds must come back clamped or denied (none decided by nobody), no write may fail
// (failurePolicy Ignore), and each drift must be repaired within 2 seconds.
func TestNativePoliciesHealThemselves(t *testing.T) {
	bin, c, admin := setup(t, startNativeCluster)
	ctx := context.Background()
	createDeployments(t, c, admin, "app", 2, nil, "prod", "strict")
	policyWith := func(max int) string {
		return fmt.Sprintf("apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n"+
			"- {name: cap, namespaces: [prod], maxReplicas: %d}\n- {name: strict, namespaces: [strict], maxReplicas: 3, action: deny}\n", max)
	}
	if err := harness.SetPolicy(ctx, admin, policyWith(5)); err != nil {
		t.Fatal(err)
	}
	a := runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "native-a", Args: []string{"--native-policies", "--native-clamp-warnings"}})
	ar := admin.AdmissionregistrationV1()
	h := &healing{t: t, ctx: ctx, ar: ar, dyn: dynamic.NewForConfigOrDie(c.Config), admin: admin}
	h.waitNarrowed("the first sync", time.Now(), 30*time.Second)

	w := startWriter(t, c, 5)
	defer w.stop()
	var last *harness.Webhook // the leader at the end

	t.Run("each compiled object deleted", func(t *testing.T) {
		for _, o := range []struct{ kind, name string }{
			{"MutatingAdmissionPolicy", "replica-policy-clamp"},
			{"MutatingAdmissionPolicyBinding", "replica-policy-clamp"},
			{"ValidatingAdmissionPolicy", "replica-policy-deny"},
			{"ValidatingAdmissionPolicyBinding", "replica-policy-deny"},
			{"ValidatingAdmissionPolicy", "replica-policy-clamped"},
			{"ValidatingAdmissionPolicyBinding", "replica-policy-clamped"},
		} {
			what := "deleted " + o.kind + " " + o.name
			w.phase(what)
			uid := h.uid(o.kind, o.name)
			start := time.Now()
			if err := h.resource(o.kind).Delete(ctx, o.name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			h.waitBack(what, start, o.kind, o.name, uid)
			h.waitNarrowed(what, start, 10*time.Second)
		}
	})

	t.Run("a compiled binding edited", func(t *testing.T) {
		const what = "ValidatingAdmissionPolicyBinding replica-policy-deny edited to Audit"
		w.phase(what)
		start := time.Now()
		if _, err := ar.ValidatingAdmissionPolicyBindings().Patch(ctx, "replica-policy-deny", types.MergePatchType,
			[]byte(`{"spec":{"validationActions":["Audit"]}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		h.until(what+": validationActions back to [Deny]", start, func() bool {
			b, err := ar.ValidatingAdmissionPolicyBindings().Get(ctx, "replica-policy-deny", metav1.GetOptions{})
			return err == nil && slices.Equal(b.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny})
		})
		h.waitNarrowed(what, start, 10*time.Second)
	})

	overlay, err := c.KubectlCmd(ctx, "kustomize", c.LocalOverlay())
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, overlay)
	}
	mwcManifest := harness.ManifestOfKind(overlay, "MutatingWebhookConfiguration")
	for _, apply := range [][]string{
		{"apply", "--server-side", "--force-conflicts", "-f", "-"},
		{"apply", "-f", "-"},
		// A replace puts both entries back as installed in one write (the objects on the
		// workload entry, every /scale on the scale entry): the webhook decides every write.
		{"replace", "-f", "-"},
	} {
		what := "the webhook configuration re-applied with kubectl " + strings.Join(apply[:len(apply)-2], " ")
		t.Run(what, func(t *testing.T) {
			w.phase(what)
			start := time.Now()
			kubectlStdin(t, c, mwcManifest, apply...)
			// kubectl has put the manifests' rules back: the binary narrows them again.
			h.waitNarrowed(what, start, 10*time.Second)
		})
	}

	t.Run("a policy change", func(t *testing.T) {
		const what = "the policy's max changed from 5 to 7"
		w.phase(what)
		w.max.Store(7) // outside [0, 7] is outside [0, 5] too
		start := time.Now()
		if err := harness.SetPolicy(ctx, admin, policyWith(7)); err != nil {
			t.Fatal(err)
		}
		h.waitNarrowedWith(what, start, 7)
	})

	t.Run("the policy deleted and recreated", func(t *testing.T) {
		w.phase("the policy deleted (nothing to enforce)")
		w.enforce.Store(false)
		start := time.Now()
		if err := admin.CoreV1().ConfigMaps(policy.DefaultNamespace).Delete(ctx, policy.DefaultConfigMapName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		h.until("the policy deleted: the native objects deleted", start, func() bool {
			_, err := ar.MutatingAdmissionPolicies().Get(ctx, "replica-policy-clamp", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
		const what = "the policy recreated"
		w.phase(what)
		start = time.Now()
		if err := harness.SetPolicy(ctx, admin, policyWith(7)); err != nil {
			t.Fatal(err)
		}
		h.waitNarrowedWith(what, start, 7)
		w.enforce.Store(true)
	})

	t.Run("the leader killed as the policy changes; the other replica takes over", func(t *testing.T) {
		port := harness.MustFreePort(t)
		b := runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "native-b", Args: []string{"--native-policies", "--native-clamp-warnings", "--port", fmt.Sprint(port)}})
		// Not the leader, it still serves admission requests: ready, and it decides a review
		// sent to its port (a scale of prod/app to 50: clamped to the policy's 7).
		if resp, err := http.Get("http://" + b.Health + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("the second replica is not ready: %v %v", resp, err)
		}
		tlsConfig, err := c.WebhookTLS()
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}, Timeout: 5 * time.Second}
		harness.Eventually(t, 10*time.Second, poll, "the non-leader clamps a review", func() (bool, string) {
			resp, err := hc.Post(fmt.Sprintf("https://127.0.0.1:%d/mutate", port), "application/json",
				bytes.NewReader(harness.ScaleReview("non-leader", "prod", "app", 2, 50).JSON()))
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			var ar admissionv1.AdmissionReview
			if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil || ar.Response == nil {
				return false, fmt.Sprint(resp.StatusCode, err)
			}
			return ar.Response.Allowed && strings.Contains(string(ar.Response.Patch), `"value":7`), fmt.Sprintf("%+v %s", ar.Response.Result, ar.Response.Patch)
		})
		const what = "the policy's max changed from 7 to 6 and the leader killed"
		w.phase(what)
		w.max.Store(7)
		start := time.Now()
		if err := harness.SetPolicy(ctx, admin, policyWith(6)); err != nil {
			t.Fatal(err)
		}
		// SIGKILL 20 ms after the write: the leader has the change, or is syncing it. The
		// Lease it held expires after controller-runtime's 15 s; until then what it left
		// stays in force, and the next leader finishes the sync.
		time.Sleep(20 * time.Millisecond)
		a.Kill()
		killed := time.Now()
		defer func() {
			t.Logf("killed at %s; log of the killed leader:\n%s", killed.Format("15:04:05.000"), harness.TailLines(a.Log(), 15))
			out, _ := c.KubectlCmd(ctx, "get", "mutatingadmissionpolicies,mutatingadmissionpolicybindings,validatingadmissionpolicies,validatingadmissionpolicybindings", "-o", "custom-columns=KIND:.kind,NAME:.metadata.name,GEN:.metadata.generation,RV:.metadata.resourceVersion,CREATED:.metadata.creationTimestamp")
			t.Logf("after the takeover:\n%s\nlog of the new leader:\n%s", out, harness.TailLines(b.Log(), 15))
		}()
		h.waitNarrowedWith(what, start, 6)
		l, err := admin.CoordinationV1().Leases(policy.DefaultNamespace).Get(ctx, leaseName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("leader now %s", *l.Spec.HolderIdentity)
		// The API server still calls the killed replica's port: what the native policies
		// decide is still decided; the rest follows failurePolicy Ignore.
		w.phase("after the takeover")
		time.Sleep(2 * time.Second)

		// A graceful stop hands over at once: the leader releases its Lease on SIGTERM, and
		// the next one, started now, takes the objects over as the policy changes again.
		last = runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "native-c", Args: []string{"--native-policies", "--native-clamp-warnings", "--port", fmt.Sprint(harness.MustFreePort(t))}})
		const graceful = "the leader stopped (SIGTERM) as the policy's max changes from 6 to 5"
		w.phase(graceful)
		start = time.Now()
		if err := harness.SetPolicy(ctx, admin, policyWith(5)); err != nil {
			t.Fatal(err)
		}
		stopWebhook(t, b)
		h.waitNarrowedWith(graceful, start, 5)
	})

	total, nobody, failed := w.stop()
	for _, r := range h.repairs {
		t.Logf("repair: %-95s %v", r.what, r.took.Round(time.Millisecond))
	}
	t.Logf("%d writes throughout: %d decided by nobody, %d failed", total, len(nobody), len(failed))
	byPhase := map[string][]string{}
	var phases []string
	for _, s := range nobody {
		p := s[strings.Index(s, "(")+1 : strings.Index(s, ")")]
		if byPhase[p] == nil {
			phases = append(phases, p)
		}
		byPhase[p] = append(byPhase[p], s)
	}
	for _, p := range phases {
		l := byPhase[p]
		t.Errorf("%d writes decided by nobody while %s, from %s to %s; the first: %s", len(l), p, l[0][:12], l[len(l)-1][:12], strings.Join(l[:min(3, len(l))], "; "))
	}
	for _, s := range failed {
		t.Errorf("failed: %s", s)
	}
	if total < 100 {
		t.Errorf("only %d writes ran", total)
	}

	t.Run("the binary gone: the finalizer holds a deletion until removed as documented", func(t *testing.T) {
		if last == nil {
			t.Skip("no leader left to stop")
		}
		// Uninstalled: the pod is gone (runWebhook's cleanup may have killed it already).
		last.Kill()
		_ = last.Wait(10 * time.Second)
		kinds := "mutatingadmissionpolicies,mutatingadmissionpolicybindings,validatingadmissionpolicies,validatingadmissionpolicybindings"
		selector := native.ManagedByLabel + "=" + native.ManagedBy
		kubectl(t, c, "delete", kinds, "-l", selector, "--wait=false")
		time.Sleep(time.Second)
		held := strings.Fields(kubectl(t, c, "get", kinds, "-l", selector, "-o", "name"))
		if len(held) != 6 {
			t.Fatalf("with the binary gone, %d objects held by the finalizer after a delete, want the 6: %v", len(held), held)
		}
		// docs/native-policies.md, "Removing the native policies", in its order: the webhook
		// configuration wide again while the compiled objects still decide, then the objects.
		// 1. The manifests applied again: rules and namespaceSelectors as installed.
		kubectlStdin(t, c, mwcManifest, "apply", "--server-side", "--force-conflicts", "-f", "-")
		// 2. The binary's matchConditions, by index, tested by name: native-policies on the
		// workload entry, all of the scale entry's.
		conds := strings.Fields(kubectl(t, c, "get", "mutatingwebhookconfiguration", "replica-policy", "-o", "jsonpath={.webhooks[0].matchConditions[*].name}"))
		if j := slices.Index(conds, nativesync.ConditionName); j < 0 {
			t.Errorf("no matchCondition %s on the workload entry to remove: %v", nativesync.ConditionName, conds)
		} else {
			kubectl(t, c, "patch", "mutatingwebhookconfiguration", "replica-policy", "--type=json", "-p", fmt.Sprintf(
				`[{"op":"test","path":"/webhooks/0/matchConditions/%d/name","value":"native-policies"},{"op":"remove","path":"/webhooks/0/matchConditions/%d"}]`, j, j))
		}
		i := webhookIndex(t, c, nativesync.ScaleEntryPrefix+"mutate.replicapolicy.io")
		kubectl(t, c, "patch", "mutatingwebhookconfiguration", "replica-policy", "--type=json", "-p", fmt.Sprintf(
			`[{"op":"test","path":"/webhooks/%d/name","value":"scale.mutate.replicapolicy.io"},{"op":"remove","path":"/webhooks/%d/matchConditions"}]`, i, i))
		// 3. The compiled objects: the finalizer, then the objects.
		for _, name := range held {
			kubectl(t, c, "patch", name, "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
		}
		kubectl(t, c, "delete", kinds, "-l", selector, "--ignore-not-found")
		if left := kubectl(t, c, "get", kinds, "-l", selector, "-o", "name"); strings.TrimSpace(left) != "" {
			t.Errorf("left after the documented removal: %s", left)
		}
		// The configuration as the manifests install it.
		mwc, err := ar.MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range mwc.Webhooks {
			for _, cond := range w.MatchConditions {
				if cond.Name == nativesync.ConditionName {
					t.Errorf("%s keeps the matchCondition %s after the documented removal", w.Name, cond.Name)
				}
			}
			if strings.HasPrefix(w.Name, nativesync.ScaleEntryPrefix) && (len(w.MatchConditions) != 0 || len(w.Rules) != 1 || !apiequality.Semantic.DeepEqual(w.NamespaceSelector, mwc.Webhooks[0].NamespaceSelector)) {
				t.Errorf("the scale entry is not as installed after the documented removal: %+v", w)
			}
		}
		if r := mwc.Webhooks[0].Rules; len(r) != 1 || !slices.Contains(r[0].Resources, "deployments") {
			t.Errorf("the workload entry's rules are not as installed after the documented removal: %+v", r)
		}
	})
}

// healing waits for repairs and records how long each took.
type healing struct {
	t       *testing.T
	ctx     context.Context
	ar      admissionregistrationv1client.AdmissionregistrationV1Interface
	dyn     *dynamic.DynamicClient
	admin   kubernetes.Interface
	repairs []repair
}

type repair struct {
	what string
	took time.Duration
}

// until polls cond every 10 ms for up to 40 s and records the time since start.
func (h *healing) until(what string, start time.Time, cond func() bool) time.Duration {
	h.t.Helper()
	for !cond() {
		if time.Since(start) > 40*time.Second {
			h.t.Fatalf("%s: not repaired after %v", what, time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	h.repairs = append(h.repairs, repair{what, took})
	return took
}

// compiledResources are the resources of the kinds of compiled objects.
var compiledResources = map[string]string{
	"MutatingAdmissionPolicy":          "mutatingadmissionpolicies",
	"MutatingAdmissionPolicyBinding":   "mutatingadmissionpolicybindings",
	"ValidatingAdmissionPolicy":        "validatingadmissionpolicies",
	"ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
}

// resource is the client of the compiled objects of kind.
func (h *healing) resource(kind string) dynamic.ResourceInterface {
	return h.dyn.Resource(admissionregistrationv1.SchemeGroupVersion.WithResource(compiledResources[kind]))
}

// object reads the compiled object kind/name.
func (h *healing) object(kind, name string) (metav1.Object, error) {
	return h.resource(kind).Get(h.ctx, name, metav1.GetOptions{})
}

// uid is the UID of the compiled object kind/name, which must carry the binary's finalizer.
func (h *healing) uid(kind, name string) types.UID {
	h.t.Helper()
	o, err := h.object(kind, name)
	if err != nil {
		h.t.Fatal(err)
	}
	if !slices.Contains(o.GetFinalizers(), nativesync.Finalizer) {
		h.t.Fatalf("%s %s has finalizers %v, want %s", kind, name, o.GetFinalizers(), nativesync.Finalizer)
	}
	return o.GetUID()
}

// waitBack waits until the deleted object (uid) has been replaced by a new one, not being
// deleted; within 2 s.
func (h *healing) waitBack(what string, start time.Time, kind, name string, uid types.UID) {
	h.t.Helper()
	took := h.until(what+": the object back", start, func() bool {
		o, err := h.object(kind, name)
		return err == nil && o.GetUID() != uid && o.GetDeletionTimestamp() == nil
	})
	if took > 2*time.Second {
		h.t.Errorf("%s: back after %v, want within 2s", what, took.Round(time.Millisecond))
	}
}

// narrowed reports whether the workload webhook is narrowed: no object rule, the
// native-policies condition with the /scale writes it leaves to the webhook, and the scale
// entry beside it, no longer selecting the namespaces the manifests have it select.
func (h *healing) narrowed() bool {
	mwc, err := h.ar.MutatingWebhookConfigurations().Get(h.ctx, "replica-policy", metav1.GetOptions{})
	if err != nil {
		return false
	}
	w := mwc.Webhooks[0]
	for _, r := range w.Rules {
		for _, res := range r.Resources {
			if !strings.HasSuffix(res, "/scale") {
				return false
			}
		}
	}
	return slices.ContainsFunc(w.MatchConditions, func(c admissionregistrationv1.MatchCondition) bool {
		return c.Name == nativesync.ConditionName && strings.Contains(c.Expression, "scale")
	}) && slices.ContainsFunc(mwc.Webhooks, func(s admissionregistrationv1.MutatingWebhook) bool {
		return s.Name == nativesync.ScaleEntryPrefix+w.Name && !apiequality.Semantic.DeepEqual(s.NamespaceSelector, w.NamespaceSelector)
	})
}

// waitNarrowed waits until the webhook is narrowed again; a drift must be repaired within
// 2 s (limit is larger for what is not a drift: the first sync).
func (h *healing) waitNarrowed(what string, start time.Time, limit time.Duration) {
	h.t.Helper()
	took := h.until(what+": narrowed again", start, h.narrowed)
	if limit <= 10*time.Second && took > 2*time.Second {
		h.t.Errorf("%s: narrowed again after %v, want within 2s", what, took.Round(time.Millisecond))
	}
}

// waitNarrowedWith waits until the webhook is narrowed and a dry-run scale of prod/app to 50
// comes back at want: the native clamp of the new policy in force, nothing else deciding.
func (h *healing) waitNarrowedWith(what string, start time.Time, want int32) {
	h.t.Helper()
	h.until(what+": the new bound in force, narrowed", start, func() bool {
		// The clamp policy must exist: the API server enforces a deleted one a moment longer.
		if _, err := h.ar.MutatingAdmissionPolicies().Get(h.ctx, "replica-policy-clamp", metav1.GetOptions{}); err != nil || !h.narrowed() {
			return false
		}
		s, err := h.admin.AppsV1().Deployments("prod").UpdateScale(h.ctx, "app", &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "prod"}, Spec: autoscalingv1.ScaleSpec{Replicas: 50}},
			metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && s.Spec.Replicas == want
	})
}

// writer writes replicas throughout: /scale and object writes in prod (clamp rule "cap"),
// /scale writes in strict (deny rule "strict", [0, 3]). A write outside the bounds that comes
// back stored outside them was decided by nobody; a write that fails otherwise than by a
// denial failed.
type writer struct {
	client  kubernetes.Interface
	max     atomic.Int32 // prod's max, or the larger of two while a change is rolled out
	enforce atomic.Bool  // false while no policy exists
	mu      sync.Mutex
	name    string
	total   int
	nobody  []string
	failed  []string
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// startWriter starts the writes with prod's max, set before the first write (a write that
// read the zero max once counted an in-bounds scale to 1 as decided by nobody).
func startWriter(t *testing.T, c *harness.Cluster, max int32) *writer {
	cfg := rest.CopyConfig(c.Config)
	cfg.QPS, cfg.Burst = 1000, 1000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{client: client, done: make(chan struct{}), name: "start"}
	w.enforce.Store(true)
	w.max.Store(max)
	w.wg.Add(1)
	go w.run()
	return w
}

func (w *writer) phase(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.name = name
}

func (w *writer) run() {
	defer w.wg.Done()
	ctx := context.Background()
	for i := 0; ; i++ {
		select {
		case <-w.done:
			return
		default:
		}
		n := int32(i%12 + 1)
		max := w.max.Load()
		var got int32
		var err error
		var what string
		switch i % 3 {
		case 0:
			what = fmt.Sprintf("scale prod/app to %d", n)
			var s *autoscalingv1.Scale
			s, err = w.client.AppsV1().Deployments("prod").UpdateScale(ctx, "app", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "prod"}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}, metav1.UpdateOptions{})
			if err == nil {
				got = s.Spec.Replicas
			}
		case 1:
			what = fmt.Sprintf("patch prod/app spec.replicas to %d", n)
			d, e := w.client.AppsV1().Deployments("prod").Patch(ctx, "app", types.MergePatchType, []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)), metav1.PatchOptions{})
			err = e
			if err == nil {
				got = *d.Spec.Replicas
			}
		default:
			n, max = int32(i%6+1), 3
			what = fmt.Sprintf("scale strict/app to %d", n)
			var s *autoscalingv1.Scale
			s, err = w.client.AppsV1().Deployments("strict").UpdateScale(ctx, "app", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "strict"}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}, metav1.UpdateOptions{})
			if err == nil {
				got = s.Spec.Replicas
			}
		}
		w.mu.Lock()
		w.total++
		at := time.Now().Format("15:04:05.000") + " (" + w.name + ") " + what
		switch {
		case err != nil && n > max && strings.Contains(err.Error(), "replica policy rule"):
			// denied
		case err != nil:
			w.failed = append(w.failed, at+": "+err.Error())
		case n > max && got > max && w.enforce.Load():
			w.nobody = append(w.nobody, fmt.Sprintf("%s: stored %d", at, got))
		}
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends the writes and returns their count and what went wrong.
func (w *writer) stop() (total int, nobody, failed []string) {
	w.once.Do(func() { close(w.done) })
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	sort.Strings(w.nobody)
	return w.total, w.nobody, w.failed
}
