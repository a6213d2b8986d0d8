package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/nativesync"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// --native-policies through kube-apiserver: the compiled policies follow the policy
// ConfigMap (applied, updated, left alone for an invalid policy, removed with the policy),
// the webhook configuration is narrowed so that the API server calls the webhook only for
// what they cannot decide, and with the webhook gone the native clamp still holds.

const nativePolicy = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: labelled, namespaces: [sel], selector: {matchLabels: {app: web}}, maxReplicas: 4}
- {name: strict, namespaces: [strict], maxReplicas: 3, action: deny}
- {name: cap, namespaces: [native, sel], maxReplicas: MAX}
- {name: anywhere, selector: {matchLabels: {class: db}}, maxReplicas: 2}
`

func nativePolicyWith(max int) string {
	return strings.Replace(nativePolicy, "MAX", fmt.Sprint(max), 1)
}

func TestNativePolicies(t *testing.T) {
	f := startWebhook(t, func(o *Options) {
		o.NativePolicies = true
		o.NativeClampWarnings = true // every object the compiler can emit
	})
	ctx := context.Background()
	ar := f.client.AdmissionregistrationV1()
	createNamespaces(t, f.client, "native", "sel", "strict", "other")
	// Workloads the syncer's dry-run probes can scale: a Deployment where a clamp rule
	// decides (native), a StatefulSet where a deny rule does (strict).
	probeTargets(t, f.client, "native")
	if _, err := f.client.AppsV1().StatefulSets("strict").Create(ctx, harness.StatefulSet("strict", "probe-target", 1, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	webhookCalls := func() float64 {
		m := f.scrape(t)
		return m.Sum("replicapolicy_admission_decisions_total", `webhook="mutate"`, `kind="Deployment"`)
	}
	clampMax := func() (string, error) {
		m, err := ar.MutatingAdmissionPolicies().Get(ctx, "replica-policy-clamp", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		for _, mf := range m.ManagedFields {
			if mf.Manager == nativesync.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply {
				return m.ResourceVersion, nil
			}
		}
		return "", fmt.Errorf("not applied by field manager %s: %+v", nativesync.FieldManager, m.ManagedFields)
	}
	condition := func() string {
		mwc, err := ar.MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range mwc.Webhooks[0].MatchConditions {
			if c.Name == nativesync.ConditionName {
				return c.Expression
			}
		}
		return ""
	}
	deploys := f.client.AppsV1().Deployments("native")
	dryRunCreate := func(ns string, replicas int32) (int32, error) {
		d, err := f.client.AppsV1().Deployments(ns).Create(ctx, harness.Deployment(ns, "probe", replicas, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return 0, err
		}
		return *d.Spec.Replicas, nil
	}

	set := time.Now()
	if err := harness.SetPolicy(ctx, f.client, nativePolicyWith(5)); err != nil {
		t.Fatal(err)
	}
	t.Run("the compiled policies are applied and the webhook narrowed", func(t *testing.T) {
		harness.Eventually(t, 15*time.Second, 50*time.Millisecond, "the native clamp, clamp notice and deny policies applied", func() (bool, string) {
			_, err := clampMax()
			for _, name := range []string{"replica-policy-deny", "replica-policy-clamped"} {
				if err == nil {
					_, err = ar.ValidatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
				}
			}
			return err == nil, fmt.Sprint(err)
		})
		t.Logf("native policies applied %v after the policy ConfigMap was written", time.Since(set).Round(time.Millisecond))
		for _, name := range []string{"replica-policy-deny"} {
			if _, err := ar.ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Errorf("ValidatingAdmissionPolicy %s: %v", name, err)
			}
			if _, err := ar.ValidatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Errorf("ValidatingAdmissionPolicyBinding %s: %v", name, err)
			}
		}
		if _, err := ar.ValidatingAdmissionPolicies().Get(ctx, "replica-policy-warn", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("a warn policy for a policy without warn rules: %v", err)
		}
		harness.Eventually(t, 15*time.Second, 50*time.Millisecond, "the webhook narrowed", func() (bool, string) {
			c := condition()
			return strings.Contains(c, "scale"), c
		})
		t.Logf("webhook narrowed %v after the policy ConfigMap was written", time.Since(set).Round(time.Millisecond))
		mwc, err := ar.MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range mwc.Webhooks[0].Rules {
			for _, res := range r.Resources {
				if !strings.HasSuffix(res, "/scale") {
					t.Errorf("narrowed workload webhook still has object rule %s %v", res, r.Operations)
				}
			}
		}
		if h := slices.IndexFunc(mwc.Webhooks, func(w admissionregistrationv1.MutatingWebhook) bool { return w.Name == "hpa.replicapolicy.io" }); h < 0 {
			t.Errorf("no HPA webhook entry: %+v", mwc.Webhooks)
		} else if hpa := mwc.Webhooks[h]; len(hpa.Rules) != 1 || hpa.Rules[0].Resources[0] != "horizontalpodautoscalers" || len(hpa.MatchConditions) != 1 {
			t.Errorf("the HPA webhook entry was touched: %+v", hpa)
		}
		// The /scale writes a selector rule may decide have an entry of their own, which
		// leaves out namespace native: rule cap, without a selector, decides every write there.
		i := slices.IndexFunc(mwc.Webhooks, func(w admissionregistrationv1.MutatingWebhook) bool {
			return w.Name == nativesync.ScaleEntryPrefix+mwc.Webhooks[0].Name
		})
		if i < 0 {
			t.Fatalf("no scale entry next to %s: %+v", mwc.Webhooks[0].Name, mwc.Webhooks)
		}
		if sel := mwc.Webhooks[i].NamespaceSelector; !slices.ContainsFunc(sel.MatchExpressions, func(r metav1.LabelSelectorRequirement) bool {
			return r.Operator == metav1.LabelSelectorOpNotIn && slices.Contains(r.Values, "native")
		}) {
			t.Errorf("the scale entry's namespaceSelector %v does not leave out namespace native", sel)
		}
		// What the API server stored is what the syncer wants (defaults included): its own
		// write's watch event brings no further write.
		time.Sleep(2 * time.Second)
		if again, err := ar.MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{}); err != nil || again.ResourceVersion != mwc.ResourceVersion {
			t.Errorf("the configuration was written again without a change (resourceVersion %s, then %s; %v)", mwc.ResourceVersion, again.ResourceVersion, err)
		}
	})

	t.Run("a Deployment write is clamped by the API server, without a webhook call", func(t *testing.T) {
		// The notice names the object first, as the webhook's warnings do.
		notice := func(name string) string {
			return `Deployment "` + name + `": spec.replicas 5 is at a bound of [0, 5] of replica policy rule "cap", to which the API server clamps requests outside them`
		}
		// The API server activates each admission policy on its own: wait for the clamp and
		// its notice both.
		harness.Eventually(t, 20*time.Second, 100*time.Millisecond, "the native clamp and its notice in force", func() (bool, string) {
			before := webhookCalls()
			f.warns.Take()
			got, err := dryRunCreate("native", 50)
			noticed := harness.HasWarning(f.warns.Take(), notice("probe"))
			after := webhookCalls()
			return err == nil && got == 5 && noticed && after == before, fmt.Sprintf("replicas %d (%v), notice %t, webhook calls %v -> %v", got, err, noticed, before, after)
		})
		before := webhookCalls()
		f.warns.Take()
		d, err := deploys.Create(ctx, harness.Deployment("native", "web", 40, map[string]string{"app": "web"}), metav1.CreateOptions{})
		if err != nil || *d.Spec.Replicas != 5 {
			t.Fatalf("create: %v, replicas %v; want 5", err, d.Spec.Replicas)
		}
		// What a native clamp says instead of the webhook's "clamped to" warning.
		assertWarning(t, f.warns.Take(), notice("web"))
		if _, err := deploys.UpdateScale(ctx, "web", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "native"}, Spec: autoscalingv1.ScaleSpec{Replicas: 30}}, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if r, _ := deploys.Get(ctx, "web", metav1.GetOptions{}); *r.Spec.Replicas != 5 {
			t.Errorf("after a scale to 30: %d replicas, want 5", *r.Spec.Replicas)
		}
		// In bounds, so that the webhook configuration's replicas-changed condition holds
		// after the admission policies ran (a clamp to the old count leaves it false): rule
		// "anywhere" (a selector, no namespaces) comes after "cap", which decides here.
		if _, err := deploys.UpdateScale(ctx, "web", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "native"}, Spec: autoscalingv1.ScaleSpec{Replicas: 4}}, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err = f.client.AppsV1().Deployments("strict").Create(ctx, harness.Deployment("strict", "big", 9, nil), metav1.CreateOptions{})
		want := `Deployment "big": spec.replicas: Invalid value: 9: must be within [0, 3] (replica policy rule "strict", action deny)`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("deny: %v, want it to contain %s", err, want)
		}
		if after := webhookCalls(); after != before {
			t.Errorf("the webhook was called %v times for writes the native policies decide", after-before)
		}
	})

	// webhookClampsScale waits until a /scale write of ns/name to 9 (or 8) replicas comes
	// back clamped to want with the webhook's warning naming rule: the webhook decided it,
	// through the workload's cached labels. Not a dry run: the syncer's probes are dry runs of
	// the binary's own user, which is this test's too, and the webhook never sees them. Each
	// try asks for another count than the last: a write that leaves replicas as they are does
	// not call the webhook (the configuration's replicas-changed condition), so a first try
	// stored unclamped (the workload not in the cache yet) would make every later try of the
	// same count pass unseen.
	webhookClampsScale := func(t *testing.T, ns, name string, want int32, rule string) {
		t.Helper()
		ask := int32(8)
		harness.Eventually(t, 15*time.Second, 100*time.Millisecond, ns+"/"+name+" clamped by the webhook through its cached labels", func() (bool, string) {
			f.warns.Take()
			ask = 17 - ask // 9, 8, 9, ...
			s, err := f.client.AppsV1().Deployments(ns).UpdateScale(ctx, name, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: ask}}, metav1.UpdateOptions{})
			if err != nil {
				return false, err.Error()
			}
			warns := f.warns.Take()
			return s.Spec.Replicas == want && harness.HasWarning(warns, fmt.Sprintf("clamped to %d by replica policy rule %q", want, rule)),
				fmt.Sprintf("replicas %d, warnings %q, webhook calls %v", s.Spec.Replicas, warns, webhookCalls())
		})
	}

	t.Run("a /scale write a selector rule may decide still goes to the webhook", func(t *testing.T) {
		sel := f.client.AppsV1().Deployments("sel")
		if _, err := sel.Create(ctx, harness.Deployment("sel", "web", 2, map[string]string{"app": "web"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		webhookClampsScale(t, "sel", "web", 4, "labelled")
	})

	t.Run("a selector rule without namespaces sends the webhook only what earlier rules leave", func(t *testing.T) {
		// Rule "anywhere" comes after "cap": /scale writes in namespace native (above, no
		// webhook call) are cap's; in namespace other they may be anywhere's.
		other := f.client.AppsV1().Deployments("other")
		if _, err := other.Create(ctx, harness.Deployment("other", "db", 2, map[string]string{"class": "db"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		webhookClampsScale(t, "other", "db", 2, "anywhere")
	})

	t.Run("a policy change updates them", func(t *testing.T) {
		rv, err := clampMax()
		if err != nil {
			t.Fatal(err)
		}
		changed := time.Now()
		if err := harness.SetPolicy(ctx, f.client, nativePolicyWith(7)); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 15*time.Second, 50*time.Millisecond, "the native clamp updated", func() (bool, string) {
			now, err := clampMax()
			return err == nil && now != rv, fmt.Sprint(err)
		})
		t.Logf("native policies updated %v after the policy ConfigMap changed", time.Since(changed).Round(time.Millisecond))
		harness.Eventually(t, 15*time.Second, 100*time.Millisecond, "the new bound in force", func() (bool, string) {
			got, err := dryRunCreate("native", 50)
			return err == nil && got == 7, fmt.Sprint(got, err)
		})
	})

	t.Run("an invalid policy leaves them as they were", func(t *testing.T) {
		rv, err := clampMax()
		if err != nil {
			t.Fatal(err)
		}
		// The validating webhook would reject it at apply: take it away, as an outage would.
		if err := ar.ValidatingWebhookConfigurations().Delete(ctx, "replica-policy", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		cm := harness.PolicyConfigMap("apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules: [{name: x, maxReplica: 1}]\n")
		// The API server drops the deleted configuration a moment later (its informer).
		harness.Eventually(t, 10*time.Second, 50*time.Millisecond, "the invalid policy written", func() (bool, string) {
			_, err := f.client.CoreV1().ConfigMaps(policy.DefaultNamespace).Update(ctx, cm, metav1.UpdateOptions{})
			return err == nil, fmt.Sprint(err)
		})
		// The policy reload contract is 2 s; a sync that happened would have happened by then.
		time.Sleep(3 * time.Second)
		if now, err := clampMax(); err != nil || now != rv {
			t.Errorf("the native clamp changed (%v) under an invalid policy", err)
		}
		if got, err := dryRunCreate("native", 50); err != nil || got != 7 {
			t.Errorf("the last valid bound is not in force: %d (%v)", got, err)
		}
	})

	t.Run("with the webhook down, the native clamp still holds; the rest follows failurePolicy Ignore", func(t *testing.T) {
		if err := harness.SetPolicy(ctx, f.client, nativePolicyWith(7)); err != nil {
			t.Fatal(err)
		}
		f.stop()
		slipped := 0
		const writes = 100 // bounded: 100 writes to 127.0.0.1
		for i := range writes {
			if _, err := deploys.UpdateScale(ctx, "web", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "native"}, Spec: autoscalingv1.ScaleSpec{Replicas: int32(20 + i%30)}}, metav1.UpdateOptions{}); err != nil {
				t.Fatalf("write %d failed with the webhook down: %v", i, err)
			}
			if d, err := deploys.Get(ctx, "web", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 7 {
				slipped++
			}
		}
		// A /scale write a selector rule may decide needs the webhook: under Ignore it passes.
		sel := f.client.AppsV1().Deployments("sel")
		s, err := sel.UpdateScale(ctx, "web", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "sel"}, Spec: autoscalingv1.ScaleSpec{Replicas: 9}}, metav1.UpdateOptions{})
		t.Logf("webhook down: %d of %d scale writes slipped past the native clamp; a selector-rule /scale write: %v replicas (%v)", slipped, writes, s.Spec.Replicas, err)
		if slipped != 0 {
			t.Errorf("%d writes slipped past the native clamp", slipped)
		}
		if err != nil || s.Spec.Replicas != 9 {
			t.Errorf("the selector-rule /scale write: %v, %d replicas; want it let through unclamped (failurePolicy Ignore)", err, s.Spec.Replicas)
		}
	})
}

// TestNativePoliciesRemovedWithThePolicy: deleting the policy ConfigMap deletes the native
// policies (no policy means no bounds) and leaves the webhook called only for what is not
// compiled.
func TestNativePoliciesRemovedWithThePolicy(t *testing.T) {
	f := startWebhook(t, func(o *Options) { o.NativePolicies = true })
	ctx := context.Background()
	ar := f.client.AdmissionregistrationV1()
	if err := harness.SetPolicy(ctx, f.client, strings.Replace(nativePolicyWith(5), "action: deny", "action: warn", 1)); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 15*time.Second, 50*time.Millisecond, "clamp and warn policies applied", func() (bool, string) {
		_, err1 := ar.MutatingAdmissionPolicyBindings().Get(ctx, "replica-policy-clamp", metav1.GetOptions{})
		_, err2 := ar.ValidatingAdmissionPolicyBindings().Get(ctx, "replica-policy-warn", metav1.GetOptions{})
		return err1 == nil && err2 == nil, fmt.Sprint(err1, err2)
	})
	if err := f.client.CoreV1().ConfigMaps(policy.DefaultNamespace).Delete(ctx, policy.DefaultConfigMapName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 15*time.Second, 50*time.Millisecond, "every native policy and binding removed", func() (bool, string) {
		var left []string
		for _, name := range native.Names(nativeOpts()) {
			for what, get := range map[string]func() error{
				"MutatingAdmissionPolicy": func() error { _, err := ar.MutatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{}); return err },
				"MutatingAdmissionPolicyBinding": func() error {
					_, err := ar.MutatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
					return err
				},
				"ValidatingAdmissionPolicy": func() error {
					_, err := ar.ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
					return err
				},
				"ValidatingAdmissionPolicyBinding": func() error {
					_, err := ar.ValidatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
					return err
				},
			} {
				if err := get(); !apierrors.IsNotFound(err) {
					left = append(left, what+" "+name)
				}
			}
		}
		return len(left) == 0, strings.Join(left, ", ")
	})
	empty, err := native.Compile(policy.Empty(policy.Options{}), policy.BuiltinWorkloadKinds, nativeOpts())
	if err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 5*time.Second, 50*time.Millisecond, "the webhook's condition that of an empty policy", func() (bool, string) {
		mwc, err := ar.MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		var conds []admissionregistrationv1.MatchCondition
		for _, c := range mwc.Webhooks[0].MatchConditions {
			if c.Name == nativesync.ConditionName {
				conds = append(conds, c)
			}
		}
		return len(conds) == 1 && strings.HasSuffix(conds[0].Expression, ") && ("+empty.WebhookMatchCondition+")"), fmt.Sprintf("%+v", conds)
	})
}

// probeTargets creates a Deployment of one replica in each namespace, for the syncer's
// dry-run probes, which scale an existing Deployment.
func probeTargets(t *testing.T, client kubernetes.Interface, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		if _, err := client.AppsV1().Deployments(ns).Create(context.Background(), harness.Deployment(ns, "probe-target", 1, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// nativeOpts are the compile options Run gives the syncer.
func nativeOpts() native.Options { return native.Options{} }

// TestNativePoliciesSyncFailure: when --native-policies cannot do its work (here, the webhook
// configuration it should narrow does not exist), it says so in its metrics, retries, and
// recovers by itself once the cause is gone.
func TestNativePoliciesSyncFailure(t *testing.T) {
	f := startWebhook(t, func(o *Options) {
		o.NativePolicies = true
		o.WebhookConfiguration = "replica-policy-renamed"
	})
	ctx := context.Background()
	ar := f.client.AdmissionregistrationV1()
	metric := func(name string) float64 {
		m := f.scrape(t)
		return m.Sum(name)
	}
	createNamespaces(t, f.client, "native", "strict")
	probeTargets(t, f.client, "native", "strict")
	if err := harness.SetPolicy(ctx, f.client, nativePolicyWith(5)); err != nil {
		t.Fatal(err)
	}
	// The webhook is widened before any native object is applied: with the configuration
	// the binary was given missing, the sync fails there, again and again, and applies nothing.
	var failures float64
	harness.Eventually(t, 15*time.Second, 100*time.Millisecond, "a failed sync counted", func() (bool, string) {
		in := metric("replicapolicy_native_policies_in_sync")
		failures = metric("replicapolicy_native_policies_sync_failures_total")
		return failures >= 1 && in == 0, fmt.Sprintf("failures %v, in sync %v", failures, in)
	})
	if _, err := ar.MutatingAdmissionPolicies().Get(ctx, "replica-policy-clamp", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the clamp policy was applied without a webhook configuration to widen first: %v", err)
	}
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "retried", func() (bool, string) {
		n := metric("replicapolicy_native_policies_sync_failures_total")
		return n > failures && metric("replicapolicy_native_policies_in_sync") == 0, fmt.Sprint("failures ", n)
	})
	installed, err := ar.MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	renamed := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "replica-policy-renamed"}, Webhooks: installed.Webhooks}
	for i := range renamed.Webhooks {
		renamed.Webhooks[i].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "none"}}
	}
	if _, err := ar.MutatingWebhookConfigurations().Create(ctx, renamed, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Renamed: the configuration under the old name goes (it would send the syncer's
	// probes to the webhook, which the renamed one keeps away from it).
	if err := ar.MutatingWebhookConfigurations().Delete(ctx, "replica-policy", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 15*time.Second, 100*time.Millisecond, "in sync once the configuration exists", func() (bool, string) {
		return metric("replicapolicy_native_policies_in_sync") == 1, "not yet"
	})
	got, err := ar.MutatingWebhookConfigurations().Get(ctx, "replica-policy-renamed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range got.Webhooks[0].MatchConditions {
		found = found || c.Name == nativesync.ConditionName
	}
	if !found {
		t.Errorf("the configuration's matchConditions %+v lack %s", got.Webhooks[0].MatchConditions, nativesync.ConditionName)
	}
}
