package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/nativesync"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// TestNativePoliciesGuard: the component's guard (ValidatingAdmissionPolicies enforced by
// kube-apiserver itself) lets the binary's ServiceAccount, with its own token, write every
// object `compile` emits, and refuses what a compromised pod would try with the same rights.
func TestNativePoliciesGuard(t *testing.T) {
	c := startGuardedCluster(t)
	ctx := context.Background()
	built, err := os.ReadFile(harness.ComponentManifests(t, "native-policies", "native.yaml", nil))
	if err != nil {
		t.Fatal(err)
	}
	kubectlStdin(t, c, harness.ManifestOfKind(string(built), "ClusterRole"), "apply", "-f", "-")

	kc := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := c.ServiceAccountKubeconfig(ctx, kc); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policy.Load([]byte("apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n"+
		"- {name: cap, namespaces: [prod], maxReplicas: 5}\n- {name: strict, namespaces: [strict], maxReplicas: 3, action: deny}\n"+
		"- {name: loose, namespaces: [dev], maxReplicas: 9, action: warn}\n"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := native.Compile(snap, policy.BuiltinWorkloadKinds, native.Options{ClampWarnings: true}) // every object compile can emit for these rules
	if err != nil {
		t.Fatal(err)
	}
	ar := sa.AdmissionregistrationV1()
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	create := func(obj runtime.Object) error {
		var err error
		switch o := obj.(type) {
		case *admissionregistrationv1.MutatingAdmissionPolicy:
			_, err = ar.MutatingAdmissionPolicies().Create(ctx, o, dry)
		case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
			_, err = ar.MutatingAdmissionPolicyBindings().Create(ctx, o, dry)
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			_, err = ar.ValidatingAdmissionPolicies().Create(ctx, o, dry)
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			_, err = ar.ValidatingAdmissionPolicyBindings().Create(ctx, o, dry)
		default:
			t.Fatalf("%T", obj)
		}
		return err
	}

	// The API server loads the guard from its informers a moment after it is written: a
	// policy under another name is refused once it is in force.
	otherName := res.Clamp.DeepCopy()
	otherName.Name = "rewrite-everything"
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.KubectlCmd(ctx, "get", "validatingadmissionpolicies", "-o", "yaml")
			t.Logf("the guards as stored:\n%s", out)
		}
	})
	harness.Eventually(t, 15*time.Second, poll, "the guard in force", func() (bool, string) {
		err := create(otherName)
		return err != nil && strings.Contains(err.Error(), "replica-policy-native-guard.static.k8s.io"), errString(err)
	})

	t.Run("every object compile emits is allowed", func(t *testing.T) {
		objs := res.Objects()
		if len(objs) != 8 {
			t.Fatalf("%d objects compiled, want clamp, deny, warn and clamped, each with its binding", len(objs))
		}
		for _, o := range objs {
			if err := create(o); err != nil {
				t.Errorf("%T %s: %v", o, o.(metav1.Object).GetName(), err)
			}
		}
	})

	refused := map[string]runtime.Object{"a policy under another name": otherName}
	onPods := res.Clamp.DeepCopy()
	onPods.Spec.MatchConstraints.ResourceRules[0].Resources = []string{"pods"}
	onPods.Spec.MatchConstraints.ResourceRules[0].APIGroups = []string{""}
	refused["a MutatingAdmissionPolicy on pods"] = onPods
	template := res.Clamp.DeepCopy()
	template.Spec.Mutations[0].JSONPatch.Expression = "[JSONPatch{op: 'add', path: '/spec/template/spec/serviceAccountName', value: 'admin'}]"
	refused["a patch of /spec/template"] = template
	wildcard := res.Deny.DeepCopy()
	wildcard.Spec.MatchConstraints.ResourceRules[0].Resources = []string{"*"}
	refused["a ValidatingAdmissionPolicy on every resource"] = wildcard
	other := res.DenyBinding.DeepCopy()
	other.Spec.PolicyName = "someone-elses-policy"
	refused["a binding to another policy"] = other
	otherMAPB := res.ClampBinding.DeepCopy()
	otherMAPB.Spec.PolicyName = "replica-policy-deny"
	refused["a binding to a policy of another name"] = otherMAPB
	for what, obj := range refused {
		t.Run(what+" is refused", func(t *testing.T) {
			err := create(obj)
			if err == nil || !strings.Contains(err.Error(), "replica-policy-native-guard.static.k8s.io") {
				t.Errorf("created: %v, want the guard's refusal", err)
			}
		})
	}

	t.Run("the webhook configuration: its rules stay on workloads, its clientConfig where it is", func(t *testing.T) {
		mwcs := sa.AdmissionregistrationV1().MutatingWebhookConfigurations()
		apply := func(patch string) error {
			_, err := mwcs.Patch(ctx, "replica-policy", "application/apply-patch+yaml", []byte(patch), metav1.PatchOptions{FieldManager: "replica-policy", Force: ptr.To(true), DryRun: []string{metav1.DryRunAll}})
			return err
		}
		const head = "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {name: replica-policy}\nwebhooks:\n- name: mutate.replicapolicy.io\n"
		if err := apply(head + "  rules: [{apiGroups: [apps], apiVersions: [v1], operations: [UPDATE], resources: [deployments/scale], scope: Namespaced}]\n"); err != nil {
			t.Errorf("narrowing the rules: %v", err)
		}
		// The entry the binary adds beside the workload entry (nativesync.ScaleEntryPrefix):
		// allowed with the workload entry's clientConfig, under that name only.
		mwc, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		entry := func(name string, edit func(*admissionregistrationv1.MutatingWebhook)) string {
			w := mwc.Webhooks[0].DeepCopy()
			w.Name = name
			w.Rules = []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments/scale"}}}}
			if edit != nil {
				edit(w)
			}
			raw, err := json.Marshal(map[string]any{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
				"metadata": map[string]any{"name": "replica-policy"}, "webhooks": []any{w}})
			if err != nil {
				t.Fatal(err)
			}
			return string(raw)
		}
		scaleEntry := nativesync.ScaleEntryPrefix + mwc.Webhooks[0].Name
		if err := apply(entry(scaleEntry, nil)); err != nil {
			t.Errorf("adding %s with the workload entry's clientConfig: %v", scaleEntry, err)
		}
		for what, patch := range map[string]string{
			"rules on secrets":          head + "  rules: [{apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [secrets], scope: Namespaced}]\n",
			"another URL":               head + "  clientConfig: {url: 'https://attacker.example/mutate'}\n",
			"a webhook of another name": entry("pods.attacker.example", nil),
			"the scale entry elsewhere": entry(scaleEntry, func(w *admissionregistrationv1.MutatingWebhook) {
				w.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://attacker.example/mutate")}
			}),
			"the scale entry on pods": entry(scaleEntry, func(w *admissionregistrationv1.MutatingWebhook) {
				w.Rules[0].APIGroups, w.Rules[0].Resources = []string{""}, []string{"pods"}
			}),
		} {
			if err := apply(patch); err == nil || !strings.Contains(err.Error(), "replica-policy-webhook-guard.static.k8s.io") {
				t.Errorf("%s: %v, want the guard's refusal", what, err)
			}
		}
	})
}

func errString(err error) string {
	if err == nil {
		return "allowed"
	}
	return err.Error()
}

// startGuardedCluster is startCluster with the native-policies guard loaded by kube-apiserver
// from disk (static manifests), as a cluster's control plane would from
// /etc/kubernetes/admission.
func startGuardedCluster(t *testing.T) *harness.Cluster {
	t.Helper()
	needKubectl(t)
	dir := t.TempDir()
	static := filepath.Join(dir, "validating-policies")
	if err := os.MkdirAll(static, 0o755); err != nil {
		t.Fatal(err)
	}
	guard, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "manifests", "components", "native-policies", "static-guard", "guard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(static, "guard.yaml"), guard, 0o644); err != nil {
		t.Fatal(err)
	}
	admissionConfig, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "manifests", "components", "native-policies", "static-guard", "admission-configuration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	configFile := filepath.Join(dir, "admission-configuration.yaml")
	if err := os.WriteFile(configFile, []byte(strings.Replace(string(admissionConfig), "/etc/kubernetes/admission/validating-policies", static, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := harness.StartCluster(context.Background(), harness.ClusterOptions{Dir: filepath.Join(dir, "cluster"), Log: harness.LogWriter(t),
		APIServerArgs: []string{"admission-control-config-file=" + configFile}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}
