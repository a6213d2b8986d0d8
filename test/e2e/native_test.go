package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/nativesync"
)

// TestNativePoliciesComponent: manifests/components/native-policies gives the binary,
// running with its ServiceAccount's token, exactly the rights --native-policies needs: it
// applies the compiled policies and narrows its webhook configuration with them, and
// SubjectAccessReviews show each right pinned to its names where RBAC allows, and nothing
// more.
func TestNativePoliciesComponent(t *testing.T) {
	bin, c, admin := setup(t, startNativeCluster)
	ctx := context.Background()
	if err := harness.SetPolicy(ctx, admin, "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n- {name: labelled, namespaces: [sel], selector: {matchLabels: {app: web}}, maxReplicas: 4}\n- {name: cap, namespaces: [prod, sel], maxReplicas: 5}\n- {name: strict, namespaces: [strict], maxReplicas: 3, action: deny}\n"); err != nil {
		t.Fatal(err)
	}
	w := runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "native", Args: []string{"--native-policies"}})

	t.Run("the binary applies the native policies and narrows its webhook with these rights", func(t *testing.T) {
		harness.Eventually(t, 20*time.Second, 100*time.Millisecond, "clamp and deny policies, and the webhook's condition", func() (bool, string) {
			if _, err := admin.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Get(ctx, "replica-policy-clamp", metav1.GetOptions{}); err != nil {
				return false, err.Error()
			}
			if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, "replica-policy-deny", metav1.GetOptions{}); err != nil {
				return false, err.Error()
			}
			mwc, err := admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, cond := range mwc.Webhooks[0].MatchConditions {
				if cond.Name == nativesync.ConditionName {
					return true, ""
				}
			}
			return false, fmt.Sprintf("no matchCondition %s yet", nativesync.ConditionName)
		})
		kubectl(t, c, "create", "namespace", "prod")
		harness.Eventually(t, 15*time.Second, poll, "the native clamp in force", func() (bool, string) {
			out, err := c.KubectlCmd(ctx, "-n", "prod", "create", "deployment", "web", "--image="+harness.PauseImage, "--replicas=40", "--dry-run=server", "-o", "jsonpath={.spec.replicas}")
			// Clamped in silence: the manifests leave out the clamp notice
			// (--native-clamp-warnings), which costs a second policy on every write.
			return err == nil && strings.TrimSpace(out) == "5", out
		})
	})

	t.Run("SIGKILL: CEL-decidable writes stay clamped, the rest follow failurePolicy Ignore", func(t *testing.T) {
		kubectl(t, c, "create", "namespace", "sel")
		for _, ns := range []string{"prod", "sel"} {
			if _, err := admin.AppsV1().Deployments(ns).Create(ctx, harness.Deployment(ns, "app", 2, map[string]string{"app": "web"}), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		w.Kill()
		if err := w.Wait(10 * time.Second); err == nil {
			t.Fatal("the webhook exited 0 after SIGKILL")
		}
		const writes = 100 // bounded: 100 scale writes to 127.0.0.1
		slipped := 0
		for i := range writes {
			out, err := c.KubectlCmd(ctx, "-n", "prod", "scale", "deployment", "app", fmt.Sprintf("--replicas=%d", 20+i%30))
			if err != nil {
				t.Fatalf("write %d failed with the webhook killed: %v\n%s", i, err, out)
			}
			if got, err := replicasOf(ctx, admin, "prod", "app"); err != nil || got != 5 {
				slipped++
			}
		}
		// A /scale write the selector rule may decide needs the webhook: Ignore lets it pass.
		out, err := c.KubectlCmd(ctx, "-n", "sel", "scale", "deployment", "app", "--replicas=9")
		got, _ := replicasOf(ctx, admin, "sel", "app")
		t.Logf("webhook killed: %d of %d scale writes slipped past the native clamp; a /scale write for the selector rule stored %d", slipped, writes, got)
		if slipped != 0 {
			t.Errorf("%d of %d writes slipped past the native clamp", slipped, writes)
		}
		if err != nil || got != 9 {
			t.Errorf("the selector-rule /scale write: %v (%s), %d replicas; want it let through unclamped (failurePolicy Ignore)", err, out, got)
		}
	})

	t.Run("SubjectAccessReviews: pinned by name where RBAC allows", func(t *testing.T) {
		var rows []access
		can := func(verb, resource, name string) {
			rows = append(rows, access{verb, "admissionregistration.k8s.io", resource, "", "", name, true})
		}
		cannot := func(verb, resource, name string) {
			rows = append(rows, access{verb, "admissionregistration.k8s.io", resource, "", "", name, false})
		}
		for _, r := range []string{"mutatingadmissionpolicies", "mutatingadmissionpolicybindings", "validatingadmissionpolicies", "validatingadmissionpolicybindings"} {
			can("create", r, "") // RBAC cannot pin create to a name
			for _, name := range native.Names(nativeOptions) {
				for _, v := range []string{"get", "list", "watch", "patch", "update", "delete"} {
					can(v, r, name)
				}
			}
			for _, v := range []string{"get", "patch", "update", "delete"} {
				cannot(v, r, "someone-elses-policy")
			}
			cannot("list", r, "")
			cannot("watch", r, "")
			cannot("deletecollection", r, "")
		}
		for _, v := range []string{"get", "list", "watch", "patch"} {
			can(v, "mutatingwebhookconfigurations", "replica-policy")
		}
		cannot("update", "mutatingwebhookconfigurations", "replica-policy")
		cannot("delete", "mutatingwebhookconfigurations", "replica-policy")
		cannot("update", "mutatingwebhookconfigurations", "someone-elses-webhook")
		cannot("create", "mutatingwebhookconfigurations", "")
		cannot("update", "validatingwebhookconfigurations", "replica-policy")
		cannot("get", "validatingwebhookconfigurations", "replica-policy")
		// Everything the base grants and denies still holds.
		checkAccess(t, admin, append(rows, accessTableWithNative()...))
	})
}

// startNativeCluster is a cluster as base + manifests/components/native-policies leave it
// (the component's ClusterRole, as `kubectl apply -k` would), with the guard loaded by
// kube-apiserver: the binary must do all of its work within what the guard allows.
func startNativeCluster(t *testing.T) *harness.Cluster {
	t.Helper()
	c := startGuardedCluster(t)
	applyComponentRole(t, c, "native-policies", "mutatingadmissionpolicies")
	return c
}

// nativeOptions are the compile options the binary uses (the default names).
var nativeOptions = native.Options{}

// accessTableWithNative is the base's access table without its admission-configuration
// rows, which the component changes (and the test above states instead).
func accessTableWithNative() []access { return accessTableWithout("admissionregistration.k8s.io") }

// accessTableWithout is the base's access table without its rows of API group, which a
// component changes (and its test states instead).
func accessTableWithout(group string) []access {
	var rows []access
	for _, a := range accessTable() {
		if a.group != group {
			rows = append(rows, a)
		}
	}
	return rows
}
