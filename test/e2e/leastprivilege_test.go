package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// serviceAccountUser is the user name the API server gives the webhook's token.
const serviceAccountUser = "system:serviceaccount:" + policy.DefaultNamespace + ":" + harness.ServiceAccount

// invalidPolicy fails validation with an "Invalid value" (not an unknown field, whose
// "Forbidden: unknown field" would muddy the log's check for authorization errors).
const invalidPolicy = `apiVersion: v1
kind: ConfigMap
metadata: {name: replica-policy, namespace: replica-policy-system}
data:
  policy.yaml: |
    apiVersion: replicapolicy.io/v1alpha1
    kind: ReplicaPolicy
    rules:
    - name: prod-web
      minReplicas: 5
      maxReplicas: 2
`

const invalidPolicyError = `rules[0].maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (5)`

// TestLeastPrivilege runs the binary, webhook and scaler with --leader-elect, with nothing
// but the ServiceAccount token that the manifests' RBAC applies to (issued by TokenRequest),
// and shows every feature works under it; then it checks with SubjectAccessReviews what that
// RBAC allows and, above all, what it does not.
func TestLeastPrivilege(t *testing.T) {
	bin, c, admin := setup(t, startCluster)
	ctx := context.Background()
	// harness.RunWebhook passes --leader-elect and leaves the scaler on (its default),
	// authenticated by a TokenRequest token of the manifests' ServiceAccount.
	w := runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "least-privilege"})

	t.Run("webhook clamps kubectl scale", checkScaleClamped(c))

	t.Run("policy loaded and an invalid one rejected at apply time", func(t *testing.T) {
		for name, want := range map[string]float64{"replicapolicy_policy_valid": 1, "replicapolicy_policy_present": 1, "replicapolicy_policy_rules": 5} {
			if got, err := w.Metric(name); err != nil || got != want {
				t.Errorf("%s = %v (%v), want %v (the example policy: 4 rules and a default)", name, got, err, want)
			}
		}
		waitEvent(t, admin, policy.DefaultNamespace, "ConfigMap", policy.DefaultConfigMapName, "PolicyLoaded", 10*time.Second)
		out, err := c.KubectlStdin(ctx, invalidPolicy, "apply", "-f", "-")
		if err == nil || !strings.Contains(out, invalidPolicyError) {
			t.Fatalf("kubectl apply of an invalid policy: err %v, want a rejection naming %q:\n%s", err, invalidPolicyError, out)
		}
	})

	// An outage: the webhook configurations are gone (or the API server could not reach the
	// webhook) while a violator is created and an invalid policy lands.
	deleteWebhookConfigurations(t, c)

	t.Run("scaler corrects a violator created while the webhooks were absent", func(t *testing.T) {
		kubectl(t, c, "-n", "prod", "create", "deployment", "api", "--image="+harness.PauseImage, "--replicas=30") // app=api: rule prod-web
		waitReplicas(t, admin, "prod", "api", 10, 30*time.Second)
		ev := waitEvent(t, admin, "prod", "Deployment", "api", "ReplicasCorrected", 10*time.Second)
		if !strings.Contains(ev.Note, "prod-web") {
			t.Errorf("ReplicasCorrected note %q does not name the rule prod-web", ev.Note)
		}
		harness.Eventually(t, 5*time.Second, poll, "replicapolicy_scaler_corrections_total >= 1", func() (bool, string) {
			v, err := w.Metric("replicapolicy_scaler_corrections_total", `rule="prod-web"`)
			return err == nil && v >= 1, fmt.Sprint(v, err)
		})
	})

	t.Run("invalid policy that lands is reported on the ConfigMap and not loaded", func(t *testing.T) {
		kubectlStdin(t, c, invalidPolicy, "apply", "-f", "-")
		ev := waitEvent(t, admin, policy.DefaultNamespace, "ConfigMap", policy.DefaultConfigMapName, "PolicyInvalid", 10*time.Second)
		if !strings.Contains(ev.Note, "rules[0].maxReplicas") {
			t.Errorf("PolicyInvalid note %q does not name the field rules[0].maxReplicas", ev.Note)
		}
		if ev.Type != "Warning" {
			t.Errorf("PolicyInvalid Event type %q, want Warning", ev.Type)
		}
		harness.Eventually(t, 5*time.Second, poll, "replicapolicy_policy_valid 0", func() (bool, string) {
			v, err := w.Metric("replicapolicy_policy_valid")
			return err == nil && v == 0, fmt.Sprint(v, err)
		})
		// The last valid policy stays in force: 5 rules, not the invalid one's single rule.
		if got, err := w.Metric("replicapolicy_policy_rules"); err != nil || got != 5 {
			t.Errorf("replicapolicy_policy_rules = %v (%v), want 5 (the last valid policy)", got, err)
		}
	})

	t.Run("webhooks and policy restored", func(t *testing.T) {
		kubectl(t, c, "apply", "-k", c.LocalOverlay())
		harness.Eventually(t, 5*time.Second, poll, "replicapolicy_policy_valid 1", func() (bool, string) {
			v, err := w.Metric("replicapolicy_policy_valid")
			return err == nil && v == 1, fmt.Sprint(v, err)
		})
		waitClampReady(t, c, "prod", "api", 50)
		kubectl(t, c, "-n", "prod", "scale", "deployment", "api", "--replicas=50")
		if got, err := replicasOf(ctx, admin, "prod", "api"); err != nil || got != 10 {
			t.Fatalf("prod/api replicas = %d (%v), want 10", got, err)
		}
	})

	host, _ := os.Hostname()
	var holder string
	t.Run("Lease held and renewed by the process", func(t *testing.T) {
		leases := admin.CoordinationV1().Leases(policy.DefaultNamespace)
		l, err := leases.Get(ctx, leaseName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Lease %s/%s: %v", policy.DefaultNamespace, leaseName, err)
		}
		if l.Spec.HolderIdentity == nil || !strings.HasPrefix(*l.Spec.HolderIdentity, host+"_") {
			t.Fatalf("Lease holder %v, want this host's process (%s_<uuid>)", l.Spec.HolderIdentity, host)
		}
		holder = *l.Spec.HolderIdentity
		first := l.Spec.RenewTime
		harness.Eventually(t, 10*time.Second, poll, "Lease renewed", func() (bool, string) {
			l, err := leases.Get(ctx, leaseName, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return l.Spec.RenewTime != nil && first != nil && l.Spec.RenewTime.After(first.Time) &&
				l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == holder, fmt.Sprint(l.Spec.RenewTime)
		})
	})

	t.Run("the token itself is refused what RBAC does not grant", func(t *testing.T) {
		sa := serviceAccountClient(t, c)
		// What the binary does: list/watch the one ConfigMap by a field selector on its name.
		if _, err := sa.CoreV1().ConfigMaps(policy.DefaultNamespace).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", policy.DefaultConfigMapName).String()}); err != nil {
			t.Errorf("list the policy ConfigMap by name: %v", err)
		}
		for what, err := range map[string]error{
			"list every ConfigMap of its namespace": func() error {
				_, err := sa.CoreV1().ConfigMaps(policy.DefaultNamespace).List(ctx, metav1.ListOptions{})
				return err
			}(),
			"update a Deployment": func() error {
				d, err := admin.AppsV1().Deployments("prod").Get(ctx, "web", metav1.GetOptions{})
				if err != nil {
					return err
				}
				d.Labels["touched"] = "yes"
				_, err = sa.AppsV1().Deployments("prod").Update(ctx, d, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
				return err
			}(),
			"list Secrets": func() error {
				_, err := sa.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
				return err
			}(),
		} {
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s with the ServiceAccount's token: %v, want Forbidden", what, err)
			}
		}
	})

	t.Run("SubjectAccessReviews", func(t *testing.T) {
		checkAccess(t, admin, accessTable())
	})

	t.Run("SIGTERM releases the Lease and the log has no authorization error", func(t *testing.T) {
		stopWebhook(t, w)
		l, err := admin.CoordinationV1().Leases(policy.DefaultNamespace).Get(ctx, leaseName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			t.Errorf("after exit the Lease is still held by %q: the process did not release it (holder while running: %q)", *l.Spec.HolderIdentity, holder)
		}
		log := w.Log()
		var denied []string
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(strings.ToLower(line), "forbidden") {
				denied = append(denied, line)
			}
		}
		if len(denied) > 0 {
			t.Errorf("webhook log has %d authorization errors under the manifests' RBAC, the first:\n%s", len(denied), denied[0])
		}
		if !strings.Contains(log, "policy rejected") {
			t.Errorf("the log does not report the rejected policy")
		}
	})
}

// serviceAccountClient is a client authenticated as the webhook's ServiceAccount.
func serviceAccountClient(t *testing.T, c *harness.Cluster) kubernetes.Interface {
	t.Helper()
	token, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{Host: c.Config.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.Config.CAData}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// access is one row of the RBAC table: may the ServiceAccount do verb on group/resource
// (/subresource) named name in namespace ("" for cluster-scoped or all namespaces)?
type access struct {
	verb, group, resource, subresource, namespace, name string
	allowed                                             bool
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	where := "cluster-wide"
	if a.namespace != "" {
		where = "in " + a.namespace
	}
	if a.name != "" {
		r += " " + a.name
	}
	return fmt.Sprintf("%s %s %s", a.verb, r, where)
}

// The design's least-privilege contract: for each bounded workload resource (deployments,
// statefulsets, replicasets) get/list/watch, and update on its /scale (the scaler's conditional write);
// horizontalpodautoscalers get/list/watch; namespaces get/list/watch; events create/patch; in its own namespace only, the policy ConfigMap
// get/list/watch by name and its leader-election Lease; nothing else. A custom resource's
// rights come only with manifests/components/workload-resource.
func accessTable() []access {
	const own, other = policy.DefaultNamespace, "prod"
	var rows []access
	can := func(verb, group, resource, sub, ns, name string) {
		rows = append(rows, access{verb, group, resource, sub, ns, name, true})
	}
	cannot := func(verb, group, resource, sub, ns, name string) {
		rows = append(rows, access{verb, group, resource, sub, ns, name, false})
	}
	// What the binary needs.
	workloads := []string{"deployments", "statefulsets", "replicasets"}
	for _, v := range []string{"get", "list", "watch"} {
		for _, w := range workloads {
			can(v, "apps", w, "", other, "")
			can(v, "apps", w, "", "", "")
		}
		can(v, "", "namespaces", "", "", "")
		can(v, "autoscaling", "horizontalpodautoscalers", "", other, "")
		can(v, "autoscaling", "horizontalpodautoscalers", "", "", "")
		can(v, "", "configmaps", "", own, policy.DefaultConfigMapName)
	}
	for _, w := range workloads {
		can("update", "apps", w, "scale", other, "web")
	}
	for _, g := range []string{"", "events.k8s.io"} {
		for _, v := range []string{"create", "patch"} {
			can(v, g, "events", "", other, "")
			can(v, g, "events", "", own, "")
		}
	}
	can("create", "coordination.k8s.io", "leases", "", own, "")
	can("get", "coordination.k8s.io", "leases", "", own, "replica-policy-leader")
	can("update", "coordination.k8s.io", "leases", "", own, "replica-policy-leader")

	// Workloads only through the scale subresource, never the object itself, nor its status.
	for _, w := range workloads {
		for _, v := range []string{"update", "patch", "create", "delete", "deletecollection"} {
			cannot(v, "apps", w, "", other, "web")
		}
		cannot("get", "apps", w, "scale", other, "web")
		cannot("patch", "apps", w, "scale", other, "web")
		cannot("update", "apps", w, "status", other, "web")
		cannot("patch", "apps", w, "status", other, "web")
	}
	// Admission configuration: nothing without manifests/components/native-policies.
	for _, r := range []string{"mutatingadmissionpolicies", "mutatingadmissionpolicybindings", "validatingadmissionpolicies", "validatingadmissionpolicybindings"} {
		cannot("create", "admissionregistration.k8s.io", r, "", "", "")
		cannot("patch", "admissionregistration.k8s.io", r, "", "", "replica-policy-clamp")
	}
	cannot("update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "replica-policy")
	cannot("get", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "replica-policy")
	// Policy reports: nothing without manifests/components/reports.
	for _, v := range []string{"create", "list", "get", "update", "delete"} {
		cannot(v, "openreports.io", "reports", "", other, "")
	}
	// HPAs are reported, never changed.
	for _, v := range []string{"update", "patch", "create", "delete"} {
		cannot(v, "autoscaling", "horizontalpodautoscalers", "", other, "web")
	}
	cannot("update", "autoscaling", "horizontalpodautoscalers", "status", other, "web")
	// Workload kinds that are not bounded, and custom resources without the component.
	cannot("get", "apps", "daemonsets", "", other, "")
	cannot("update", "apps", "daemonsets", "", other, "")
	for _, v := range []string{"get", "list", "watch"} {
		cannot(v, "argoproj.io", "rollouts", "", other, "")
	}
	cannot("update", "argoproj.io", "rollouts", "scale", other, "web")
	cannot("get", "apiextensions.k8s.io", "customresourcedefinitions", "", "", "rollouts.argoproj.io")
	// No Secrets anywhere (its own TLS Secret lives in its namespace).
	for _, ns := range []string{own, other, "kube-system", ""} {
		for _, v := range []string{"get", "list", "watch"} {
			cannot(v, "", "secrets", "", ns, "")
		}
	}
	cannot("get", "", "secrets", "", own, "replica-policy-webhook-tls")
	// ConfigMaps: the policy only, read only.
	cannot("get", "", "configmaps", "", own, "kube-root-ca.crt")
	cannot("get", "", "configmaps", "", own, "other")
	cannot("list", "", "configmaps", "", own, "")
	cannot("watch", "", "configmaps", "", own, "")
	cannot("list", "", "configmaps", "", "", "")
	cannot("get", "", "configmaps", "", "kube-system", policy.DefaultConfigMapName)
	cannot("get", "", "configmaps", "", other, policy.DefaultConfigMapName)
	cannot("list", "", "configmaps", "", other, "")
	for _, v := range []string{"update", "patch", "delete"} {
		cannot(v, "", "configmaps", "", own, policy.DefaultConfigMapName)
	}
	cannot("create", "", "configmaps", "", own, "")
	// Leases: its own, in its own namespace.
	cannot("update", "coordination.k8s.io", "leases", "", own, "other-leader")
	cannot("get", "coordination.k8s.io", "leases", "", own, "other-leader")
	cannot("delete", "coordination.k8s.io", "leases", "", own, "replica-policy-leader")
	cannot("update", "coordination.k8s.io", "leases", "", "kube-system", "replica-policy-leader")
	cannot("create", "coordination.k8s.io", "leases", "", "kube-system", "")
	cannot("list", "coordination.k8s.io", "leases", "", own, "")
	// Namespaces: read only.
	for _, v := range []string{"create", "update", "patch", "delete"} {
		cannot(v, "", "namespaces", "", "", "prod")
	}
	// Events: write only.
	cannot("delete", "", "events", "", other, "")
	cannot("list", "events.k8s.io", "events", "", other, "")
	// Nothing else, in particular nothing that escalates.
	for _, r := range []struct{ verb, group, resource, sub, ns string }{
		{"create", "", "pods", "", other},
		{"create", "", "pods", "", own},
		{"create", "", "pods", "eviction", other},
		{"create", "", "pods", "exec", own},
		{"create", "", "services", "", own},
		{"update", "", "services", "", own},
		{"create", "", "serviceaccounts", "token", own},
		{"update", "", "serviceaccounts", "", own},
		{"update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", ""},
		{"delete", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", ""},
		{"update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", ""},
		{"delete", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", ""},
		{"create", "rbac.authorization.k8s.io", "clusterroles", "", ""},
		{"update", "rbac.authorization.k8s.io", "clusterroles", "", ""},
		{"escalate", "rbac.authorization.k8s.io", "clusterroles", "", ""},
		{"bind", "rbac.authorization.k8s.io", "clusterroles", "", ""},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""},
		{"create", "rbac.authorization.k8s.io", "rolebindings", "", own},
		{"update", "rbac.authorization.k8s.io", "roles", "", own},
		{"impersonate", "", "users", "", ""},
		{"impersonate", "", "serviceaccounts", "", own},
		{"update", "", "nodes", "", ""},
		{"create", "apiextensions.k8s.io", "customresourcedefinitions", "", ""},
		{"create", "networking.k8s.io", "networkpolicies", "", own},
	} {
		cannot(r.verb, r.group, r.resource, r.sub, r.ns, "")
	}
	return rows
}

// checkAccess asks the API server, through SubjectAccessReviews for the ServiceAccount's user
// and groups, about every row of accessTable.
func checkAccess(t *testing.T, admin kubernetes.Interface, rows []access) {
	ctx := context.Background()
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + policy.DefaultNamespace, "system:authenticated"}
	for _, a := range rows {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: serviceAccountUser, Groups: groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: a.namespace, Verb: a.verb, Group: a.group, Resource: a.resource,
				Subresource: a.subresource, Name: a.name,
			},
		}}
		res, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		switch {
		case a.allowed && !res.Status.Allowed:
			t.Errorf("the ServiceAccount cannot %s, which the binary needs (%s)", a, res.Status.Reason)
		case !a.allowed && res.Status.Allowed:
			t.Errorf("the ServiceAccount can %s: more than least privilege (%s)", a, res.Status.Reason)
		}
	}
}
