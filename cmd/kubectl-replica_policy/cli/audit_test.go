package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// TestAudit runs audit against a real kube-apiserver under ServiceAccount tokens (from
// TokenRequest) whose rights are exactly what audit claims to need: get,list on
// deployments, statefulsets and replicasets (apps), horizontalpodautoscalers and
// namespaces, and get,list on the policy ConfigMap by name. It must work with those,
// preview a proposed policy, and, when list on deployments or on HPAs is missing, say so in
// one line with exit 2.
func TestAudit(t *testing.T) {
	cp := harness.StartControlPlane(t, harness.ControlPlaneOptions{})
	ctx := context.Background()
	cs := cp.Client
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for name, labels := range map[string]map[string]string{
		policy.DefaultNamespace: nil, "prod": {"env": "prod"}, "payments": {"tier": "gold"}, "audit": nil,
	} {
		must(cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}))
	}
	must(nil, harness.SetPolicy(ctx, cs, readTestdata(t, "policy.yaml")))
	for _, d := range []struct {
		ns, name string
		replicas int32
		labels   map[string]string
	}{
		{"prod", "web", 40, map[string]string{"app": "web"}},
		{"prod", "db", 12, map[string]string{"tier": "db"}},
		{"prod", "api", 5, map[string]string{"app": "api"}},
		{"payments", "checkout", 6, nil},
		{"kube-system", "extra-dns", 100, nil},
		{policy.DefaultNamespace, "replica-policy-webhook", 2, nil},
	} {
		must(cs.AppsV1().Deployments(d.ns).Create(ctx, harness.Deployment(d.ns, d.name, d.replicas, d.labels), metav1.CreateOptions{}))
	}
	// A StatefulSet, judged as Deployments are, and a ReplicaSet that the Deployment prod/web
	// controls: owned, skipped (its Deployment is bounded instead).
	must(cs.AppsV1().StatefulSets("prod").Create(ctx, harness.StatefulSet("prod", "queue", 12, map[string]string{"tier": "db"}), metav1.CreateOptions{}))
	web, err := cs.AppsV1().Deployments("prod").Get(ctx, "web", metav1.GetOptions{})
	must(web, err)
	must(cs.AppsV1().ReplicaSets("prod").Create(ctx, harness.OwnedReplicaSet(web, "web-1", 0), metav1.CreateOptions{}))
	// HPAs, judged by their targets' rules: web's range [1 (omitted), 30] leaves prod-web's
	// [2, 10] at both ends; db's, created as autoscaling/v1, leaves databases' [3, 7] above;
	// ghost's target does not exist, so the selector of prod-web cannot be evaluated.
	hpa := func(ns, name, target string, minReplicas *int32, maxReplicas int32) *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
				MinReplicas:    minReplicas, MaxReplicas: maxReplicas,
			},
		}
	}
	three := int32(3)
	must(cs.AutoscalingV2().HorizontalPodAutoscalers("prod").Create(ctx, hpa("prod", "web-hpa", "web", nil, 30), metav1.CreateOptions{}))
	must(cs.AutoscalingV2().HorizontalPodAutoscalers("prod").Create(ctx, hpa("prod", "ghost-hpa", "ghost", &three, 30), metav1.CreateOptions{}))
	must(cs.AutoscalingV1().HorizontalPodAutoscalers("prod").Create(ctx, &autoscalingv1.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "db-hpa"},
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "db"},
			MinReplicas:    &three, MaxReplicas: 20,
		},
	}, metav1.CreateOptions{}))
	// Enough Deployments for audit to read more than one page.
	for i := range auditPageSize + 10 {
		must(cs.AppsV1().Deployments("audit").Create(ctx, harness.Deployment("audit", fmt.Sprintf("d%03d", i), 1, nil), metav1.CreateOptions{}))
	}

	dir := t.TempDir()
	getList := []string{"get", "list"}
	full := serviceAccountKubeconfig(t, cp, dir, "auditor", getList, getList, true)
	noList := serviceAccountKubeconfig(t, cp, dir, "no-list", []string{"get"}, getList, true)
	noAutoscalers := serviceAccountKubeconfig(t, cp, dir, "no-hpa", getList, nil, true)
	noConfigMap := serviceAccountKubeconfig(t, cp, dir, "no-configmap", getList, getList, false)

	t.Run("the cluster's policy", func(t *testing.T) {
		// RBAC reaches the authorizer through an informer: allow it a moment.
		var code int
		var out, errOut string
		harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "audit under the auditor's token", func() (bool, string) {
			code, out, errOut = run(t, "", "audit", "--kubeconfig", full, "-o", "json")
			return code != ExitError, errOut
		})
		if code != ExitFound || errOut != "" {
			t.Fatalf("exit %d, stderr %q; want 1 (a clamp and a deny) and nothing on stderr", code, errOut)
		}
		got := auditResults(t, out)
		want := map[string]string{
			"prod/web":              "clamp:prod-web:10",
			"prod/db":               "deny:databases:7",
			"prod/api":              "pass:prod-web:5",
			"payments/checkout":     "warn:gold:4",
			"kube-system/extra-dns": "skip::",
			"replica-policy-system/replica-policy-webhook": "skip::",
			"audit/d000": "pass:default:1",
			"prod/queue": "deny:databases:7",
			"prod/web-1": "skip::",
			"HorizontalPodAutoscaler prod/web-hpa spec.minReplicas":   "clamp:prod-web:2",
			"HorizontalPodAutoscaler prod/web-hpa spec.maxReplicas":   "clamp:prod-web:10",
			"HorizontalPodAutoscaler prod/db-hpa spec.maxReplicas":    "deny:databases:7",
			"HorizontalPodAutoscaler prod/ghost-hpa spec.maxReplicas": "skip:prod-web:",
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %q, want %q", k, got[k], w)
			}
		}
		if n := len(got); n != 8+auditPageSize+10+4 {
			t.Errorf("%d results, want every workload (%d), over several pages, and 4 of the 3 HPAs", n, 8+auditPageSize+10)
		}

		code, out, _ = run(t, "", "audit", "--kubeconfig", full)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		wantLines := []string{
			`Deployment kube-system/extra-dns: skip: namespace "kube-system" is exempt`,
			`Deployment payments/checkout: warn: Deployment "checkout": spec.replicas: Invalid value: 6: must be within [0, 4] (replica policy rule "gold", action warn)`,
			`Deployment prod/db: deny: Deployment "db": spec.replicas: Invalid value: 12: must be within [3, 7] (replica policy rule "databases", action deny)`,
			`Deployment prod/web: clamp: Deployment "web": spec.replicas 40 clamped to 10 by replica policy rule "prod-web"`,
			`Deployment replica-policy-system/replica-policy-webhook: skip: namespace "replica-policy-system" is exempt`,
			`StatefulSet prod/queue: deny: StatefulSet "queue": spec.replicas: Invalid value: 12: must be within [3, 7] (replica policy rule "databases", action deny)`,
			`ReplicaSet prod/web-1: skip: owned by Deployment "web", which the policy bounds instead`,
			`HorizontalPodAutoscaler prod/db-hpa: deny: HorizontalPodAutoscaler "db-hpa": spec.maxReplicas: Invalid value: 20: must be within [3, 7] (replica policy rule "databases", action deny)`,
			`HorizontalPodAutoscaler prod/ghost-hpa: skip: replica policy rule "prod-web" needs the labels of its target Deployment "ghost", which is not in the cluster`,
			`HorizontalPodAutoscaler prod/web-hpa: clamp: HorizontalPodAutoscaler "web-hpa": spec.minReplicas 1 clamped to 2 by replica policy rule "prod-web"`,
			`HorizontalPodAutoscaler prod/web-hpa: clamp: HorizontalPodAutoscaler "web-hpa": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod-web"`,
			`522 judged: 511 pass, 3 clamp, 3 deny, 1 warn, 4 skip; 6 at or above --fail-on=clamp`,
		}
		if code != ExitFound || !slices.Equal(lines, wantLines) {
			t.Errorf("exit %d, text\n%s\nwant\n%s", code, out, strings.Join(wantLines, "\n"))
		}
	})

	t.Run("kubectl's connection flags: -n, -l, --request-timeout", func(t *testing.T) {
		code, out, errOut := run(t, "", "audit", "--kubeconfig", full, "-n", "prod", "-l", "app in (web, api)", "--request-timeout", "20s", "-o", "json")
		if code != ExitFound || errOut != "" {
			t.Fatalf("exit %d, stderr %q; want 1 (prod/web's clamp)", code, errOut)
		}
		got := auditResults(t, out)
		want := map[string]string{"prod/web": "clamp:prod-web:10", "prod/api": "pass:prod-web:5", "prod/web-1": "skip::"} // web-1: the ReplicaSet of web, labelled app=web
		if !maps.Equal(got, want) {
			t.Errorf("results %v, want only the workloads of prod labelled app=web or api: %v", got, want)
		}
		if code, _, errOut := run(t, "", "audit", "--kubeconfig", full, "-l", "app in ("); code != ExitError || !strings.Contains(errOut, "-l") {
			t.Errorf("a bad -l: exit %d, stderr %q", code, errOut)
		}
		// -l selects workloads, never the Namespaces whose labels rules read.
		code, out, _ = run(t, "", "audit", "--kubeconfig", full, "-n", "payments", "-o", "json")
		if got := auditResults(t, out); got["payments/checkout"] != "warn:gold:4" || code != ExitOK {
			t.Errorf("-n payments: exit %d, %v; want the gold rule's warn", code, got)
		}
		code, out, _ = run(t, "", "audit", "--kubeconfig", full, "-l", "!tier", "-o", "json")
		if got := auditResults(t, out); got["payments/checkout"] != "warn:gold:4" {
			t.Errorf("-l !tier: %v; want the gold rule's warn, from the labels of namespace payments", got)
		}
	})

	t.Run("check --namespaces-from-cluster", func(t *testing.T) {
		const checkout = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: checkout, namespace: payments}\nspec: {replicas: 6}\n"
		code, out, errOut := run(t, checkout, "check", "-p", "testdata/policy.yaml", "-f", "-", "--namespaces-from-cluster", "--kubeconfig", full)
		if code != ExitOK || errOut != "" || !strings.Contains(out, `warn: Deployment "checkout": spec.replicas: Invalid value: 6: must be within [0, 4] (replica policy rule "gold", action warn)`) {
			t.Errorf("exit %d, stderr %q, output\n%s\nwant the gold rule's warn, from the cluster's labels of payments", code, errOut, out)
		}
		code, _, errOut = run(t, checkout, "check", "-p", "testdata/policy.yaml", "-f", "-", "--namespaces-from-cluster", "--kubeconfig", writeKubeconfig(t, filepath.Join(dir, "unreachable.kubeconfig"), "https://127.0.0.1:1", nil, ""))
		if code != ExitError || !strings.Contains(errOut, "--namespaces-from-cluster: cannot list namespaces at https://127.0.0.1:1") {
			t.Errorf("an unreachable cluster: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("a proposed policy", func(t *testing.T) {
		// The proposed policy bounds everything to 5: what it would change, before it is
		// applied. It needs no right on the ConfigMap.
		code, out, errOut := run(t, "", "audit", "--kubeconfig", noConfigMap, "--policy", "testdata/policy-configmap.yaml", "-o", "json", "--fail-on", "deny")
		if code != ExitOK || errOut != "" {
			t.Fatalf("exit %d, stderr %q; want 0 (clamps only, --fail-on deny)", code, errOut)
		}
		got := auditResults(t, out)
		for k, w := range map[string]string{
			"prod/web": "clamp:everything:5", "prod/db": "clamp:everything:5", "payments/checkout": "clamp:everything:5",
			"prod/api": "pass:everything:5", "audit/d001": "pass:everything:1",
			// The proposed policy needs no labels: ghost-hpa's missing target no longer matters.
			"HorizontalPodAutoscaler prod/ghost-hpa spec.maxReplicas": "clamp:everything:5",
		} {
			if got[k] != w {
				t.Errorf("%s: %q, want %q", k, got[k], w)
			}
		}
		// The cluster's policy is unchanged: audit only reads.
		cm, err := cs.CoreV1().ConfigMaps(policy.DefaultNamespace).Get(ctx, policy.DefaultConfigMapName, metav1.GetOptions{})
		if err != nil || cm.Data[policy.ConfigMapKey] != readTestdata(t, "policy.yaml") {
			t.Errorf("the policy ConfigMap changed: %v", err)
		}
	})

	for _, tc := range []struct {
		name, kubeconfig, stderr string
	}{
		{"without list on deployments", noList,
			`error: cannot list deployments.apps at the cluster scope: forbidden for system:serviceaccount:audit:no-list (audit needs get,list on namespaces, deployments.apps, statefulsets.apps, replicasets.apps, horizontalpodautoscalers.autoscaling at the cluster scope (and on scaledobjects.keda.sh where KEDA is installed), and get on configmap "replica-policy" in namespace "replica-policy-system")` + "\n"},
		{"without list on HPAs", noAutoscalers,
			`error: cannot list horizontalpodautoscalers.autoscaling at the cluster scope: forbidden for system:serviceaccount:audit:no-hpa (audit needs get,list on namespaces, deployments.apps, statefulsets.apps, replicasets.apps, horizontalpodautoscalers.autoscaling at the cluster scope (and on scaledobjects.keda.sh where KEDA is installed), and get on configmap "replica-policy" in namespace "replica-policy-system")` + "\n"},
		{"without get on the policy ConfigMap", noConfigMap,
			`error: cannot get configmaps "replica-policy" in namespace "replica-policy-system": forbidden for system:serviceaccount:audit:no-configmap (audit needs get,list on namespaces, deployments.apps, statefulsets.apps, replicasets.apps, horizontalpodautoscalers.autoscaling at the cluster scope (and on scaledobjects.keda.sh where KEDA is installed), and get on configmap "replica-policy" in namespace "replica-policy-system")` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var code int
			var out, errOut string
			// Until RBAC has synced, the first refusal may be of another right.
			harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "the refusal", func() (bool, string) {
				code, out, errOut = run(t, "", "audit", "--kubeconfig", tc.kubeconfig)
				return errOut == tc.stderr, errOut
			})
			if code != ExitError || out != "" {
				t.Errorf("exit %d, stdout %q; want 2 and no report", code, out)
			}
		})
	}
}

// auditResults maps namespace/name (for an HPA "HorizontalPodAutoscaler namespace/name
// field", for a ScaledObject "ScaledObject namespace/name field") to "result:rule:want" from audit's JSON, and checks that cluster objects have no
// file and line.
func auditResults(t *testing.T, out string) map[string]string {
	t.Helper()
	var rep struct {
		Results []struct {
			File                         *string
			Line                         *int
			Kind, Namespace, Name, Field string
			Rule                         *string
			Want                         *int32
			Result                       string
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]string{}
	for _, r := range rep.Results {
		if r.File != nil || r.Line != nil {
			t.Errorf("%s/%s: file %v line %v, want null for a cluster object", r.Namespace, r.Name, r.File, r.Line)
		}
		rule, want := "", ""
		if r.Rule != nil {
			rule = *r.Rule
		}
		if r.Want != nil {
			want = fmt.Sprint(*r.Want)
		}
		key := r.Namespace + "/" + r.Name
		if r.Kind == "HorizontalPodAutoscaler" || r.Kind == "ScaledObject" {
			key = fmt.Sprintf("%s %s %s", r.Kind, key, r.Field)
		}
		got[key] = r.Result + ":" + rule + ":" + want
	}
	return got
}

// serviceAccountKubeconfig creates ServiceAccount audit/name with a ClusterRole of exactly
// deploymentVerbs on deployments, statefulsets and replicasets (apps), autoscalerVerbs on
// horizontalpodautoscalers and get,list on namespaces, and, with configMap, a
// Role of get,list on the policy ConfigMap by name; it writes a kubeconfig carrying a
// TokenRequest token of the ServiceAccount, and returns its path.
func serviceAccountKubeconfig(t *testing.T, cp *harness.ControlPlane, dir, name string, deploymentVerbs, autoscalerVerbs []string, configMap bool) string {
	t.Helper()
	ctx := context.Background()
	cs := cp.Client
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "audit", Name: name}}
	create := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := cs.CoreV1().ServiceAccounts("audit").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	create(err)
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "replicasets"}, Verbs: deploymentVerbs},
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list"}},
	}
	if len(autoscalerVerbs) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: autoscalerVerbs})
	}
	create(harness.GrantClusterRole(ctx, cs, "audit-"+name, rules, subject[0]))
	if configMap {
		_, err = cs.RbacV1().Roles(policy.DefaultNamespace).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "audit-" + name},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"},
				ResourceNames: []string{policy.DefaultConfigMapName}, Verbs: []string{"get", "list"}}},
		}, metav1.CreateOptions{})
		create(err)
		_, err = cs.RbacV1().RoleBindings(policy.DefaultNamespace).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "audit-" + name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "audit-" + name},
			Subjects:   subject,
		}, metav1.CreateOptions{})
		create(err)
	}
	return tokenKubeconfig(t, cs, cp.Config.Host, cp.Config.CAData, dir, name)
}

func tokenKubeconfig(t *testing.T, cs kubernetes.Interface, server string, ca []byte, dir, name string) string {
	t.Helper()
	expiry := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts("audit").CreateToken(context.Background(), name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for audit/%s: %v", name, err)
	}
	return writeKubeconfig(t, filepath.Join(dir, name+".kubeconfig"), server, ca, tr.Status.Token)
}
