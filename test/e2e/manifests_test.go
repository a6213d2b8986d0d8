package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// certManagerCRDs are stand-ins for cert-manager's CRDs, just enough for the API server to
// know the kinds cert-manager.io/v1 Certificate and Issuer. They accept any spec
// (x-kubernetes-preserve-unknown-fields), so the server-side dry-run of the cert-manager
// overlay validates everything else in it for real, but NOT the Certificates' and Issuers'
// own fields: cert-manager is not installed here (its real CRDs come only from its release
// manifests, outside the reachable registries).
var certManagerCRDs = certManagerCRD("Certificate", "certificates") + "---\n" + certManagerCRD("Issuer", "issuers")

// certManagerCRD is the stand-in CRD of the cert-manager.io/v1 kind whose plural is plural.
func certManagerCRD(kind, plural string) string {
	return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: %[2]s.cert-manager.io}
spec:
  group: cert-manager.io
  names: {kind: %[1]s, listKind: %[1]sList, plural: %[2]s, singular: %[3]s}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`, kind, plural, strings.ToLower(kind))
}

// TestManifestsAcceptedByAPIServer has the real kube-apiserver validate every way of
// installing (server-side dry-run of manifests/, overlays/local and overlays/cert-manager),
// installs manifests/ with kubectl as the README says, and checks what the API server
// stored, and that kubectl printed no warning (Pod Security in particular).
func TestManifestsAcceptedByAPIServer(t *testing.T) {
	needKubectl(t)
	ctx := context.Background()
	// Certificates as `go run ./certs` makes them for a user: no flags but the output folder.
	c, err := harness.StartBare(ctx, harness.ClusterOptions{Dir: t.TempDir(), Log: harness.LogWriter(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	// kubectl's discovery cache goes to the test's folder, not the user's ~/.kube.
	k := func(stdin string, args ...string) (string, error) {
		return c.KubectlStdin(ctx, stdin, append([]string{"--cache-dir", filepath.Join(c.Dir, "kube-cache")}, args...)...)
	}
	local := filepath.Join(c.Manifests, "overlays", "local")
	certManager := filepath.Join(c.Manifests, "overlays", "cert-manager")

	// On an empty cluster a server-side dry run cannot create anything inside a namespace that
	// the same run only pretends to create (kubectl does not create it): every namespaced
	// object fails with NotFound. That is kubectl's limitation, not the manifests'; check that
	// it is the only error and that the cluster-scoped objects pass.
	t.Run("dry-run on an empty cluster fails only for the missing namespace", func(t *testing.T) {
		out, err := k("", "apply", "--dry-run=server", "-k", c.Manifests)
		if err == nil {
			t.Fatalf("expected NotFound for the namespaced objects:\n%s", out)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if strings.Contains(line, "(server dry run)") {
				continue
			}
			if !strings.Contains(line, fmt.Sprintf("namespaces %q not found", policy.DefaultNamespace)) {
				t.Errorf("unexpected line: %s", line)
			}
		}
		for _, want := range []string{"clusterrole.rbac.authorization.k8s.io/replica-policy created", "mutatingwebhookconfiguration.admissionregistration.k8s.io/replica-policy created", "validatingwebhookconfiguration.admissionregistration.k8s.io/replica-policy created"} {
			if !strings.Contains(out, want) {
				t.Errorf("dry run did not accept %q:\n%s", want, out)
			}
		}
	})

	// The Namespace exactly as manifests/ builds it (labels included), so that the dry runs
	// below reach every namespaced object, and Pod Security admission judges the Deployment's
	// pod template against the namespace's "restricted" labels.
	nsDoc := namespaceDocument(t, k, c.Manifests)
	if out, err := k(nsDoc, "apply", "-f", "-"); err != nil {
		t.Fatalf("creating the Namespace from manifests/: %v\n%s", err, out)
	}

	serverDryRun := func(t *testing.T, dir string, wantCreated ...string) {
		t.Helper()
		out, err := k("", "apply", "--dry-run=server", "-k", dir)
		if err != nil {
			t.Fatalf("kubectl apply --dry-run=server -k %s: %v\n%s", dir, err, out)
		}
		t.Log(out)
		if strings.Contains(out, "Warning") {
			t.Errorf("kubectl printed a warning:\n%s", out)
		}
		for _, w := range wantCreated {
			if !strings.Contains(out, w+" created (server dry run)") {
				t.Errorf("no %q in:\n%s", w+" created (server dry run)", out)
			}
		}
	}
	t.Run("dry-run manifests/", func(t *testing.T) {
		serverDryRun(t, c.Manifests, "deployment.apps/replica-policy-webhook", "secret/replica-policy-webhook-tls",
			"poddisruptionbudget.policy/replica-policy-webhook", "networkpolicy.networking.k8s.io/replica-policy-webhook",
			"mutatingwebhookconfiguration.admissionregistration.k8s.io/replica-policy")
	})
	t.Run("dry-run overlays/local", func(t *testing.T) {
		serverDryRun(t, local, "configmap/replica-policy", "validatingwebhookconfiguration.admissionregistration.k8s.io/replica-policy")
	})
	t.Run("dry-run overlays/cert-manager with stand-in CRDs", func(t *testing.T) {
		if out, err := k(certManagerCRDs, "apply", "-f", "-"); err != nil {
			t.Fatalf("stand-in cert-manager CRDs: %v\n%s", err, out)
		}
		if out, err := k("", "wait", "--for=condition=Established", "--timeout=30s", "crd/certificates.cert-manager.io", "crd/issuers.cert-manager.io"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		serverDryRun(t, certManager, "deployment.apps/replica-policy-webhook", "certificate.cert-manager.io/replica-policy-webhook",
			"issuer.cert-manager.io/replica-policy-ca", "issuer.cert-manager.io/replica-policy-selfsigned")
	})

	t.Run("kubectl apply -k manifests/", func(t *testing.T) {
		out, err := k("", "apply", "-k", c.Manifests)
		if err != nil {
			t.Fatalf("kubectl apply -k manifests/: %v\n%s", err, out)
		}
		t.Log(out)
		if strings.Contains(out, "PodSecurity") || strings.Contains(out, "Warning") {
			t.Errorf("kubectl apply printed a warning (a Pod Security violation would read \"Warning: would violate PodSecurity\"):\n%s", out)
		}
		checkInstalled(t, c)
	})

	t.Run("without generated certificates, apply fails naming the missing file", func(t *testing.T) {
		bare := filepath.Join(t.TempDir(), "manifests")
		if err := harness.CopyManifests(bare); err != nil {
			t.Fatal(err)
		}
		out, err := k("", "apply", "-k", bare)
		if err == nil {
			t.Fatalf("kubectl apply -k of manifests/ without certificates succeeded:\n%s", out)
		}
		// kustomize has no way to add a hint of our own to this error: a missing generator
		// file is reported as "evalsymlink failure on '<path>'". The path names the file the
		// certs tool writes; the README quotes this message next to `go run ./certs`.
		missing := filepath.Join(bare, "certs", "tls.crt")
		if !strings.Contains(out, missing) || !strings.Contains(out, "no such file or directory") {
			t.Errorf("error does not name the missing %s:\n%s", missing, out)
		}
		if strings.Contains(out, " created") {
			t.Errorf("something was created:\n%s", out)
		}
		readme, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "manifests", "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(readme, []byte("evalsymlink failure on '.../manifests/certs/tls.crt'`: run `go run ./certs` first")) {
			t.Errorf("manifests/README.md no longer explains this error and its fix (`go run ./certs`)")
		}
		t.Logf("kubectl says:\n%s", out)
	})
}

// namespaceDocument returns the Namespace document of `kubectl kustomize dir`.
func namespaceDocument(t *testing.T, k func(string, ...string) (string, error), dir string) string {
	t.Helper()
	out, err := k("", "kustomize", dir)
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
	}
	for _, doc := range strings.Split(out, "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err == nil && meta.Kind == "Namespace" {
			return doc
		}
	}
	t.Fatalf("no Namespace in kubectl kustomize %s", dir)
	return ""
}

// checkInstalled checks the objects the API server holds after `kubectl apply -k manifests/`.
func checkInstalled(t *testing.T, c *harness.Cluster) {
	ctx := context.Background()
	cs := c.Client
	ca, err := os.ReadFile(filepath.Join(c.CertDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	tlsCrt, err := os.ReadFile(filepath.Join(c.CertDir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}

	workloadRules := []admissionregistrationv1.RuleWithOperations{
		{Operations: []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}, Rule: rule("apps", "deployments", "statefulsets", "replicasets")},
	}
	scaleRules := []admissionregistrationv1.RuleWithOperations{
		{Operations: []admissionregistrationv1.OperationType{"UPDATE"}, Rule: rule("apps", "deployments/scale", "statefulsets/scale", "replicasets/scale")},
	}
	hpaRules := []admissionregistrationv1.RuleWithOperations{
		{Operations: []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}, Rule: ruleAt("autoscaling", "v2", "horizontalpodautoscalers")},
	}
	notSystem := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", policy.DefaultNamespace}}}}
	onlyOwn := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{policy.DefaultNamespace}}}}
	type hook struct {
		name, path      string
		clientConfig    admissionregistrationv1.WebhookClientConfig
		rules           []admissionregistrationv1.RuleWithOperations
		failurePolicy   *admissionregistrationv1.FailurePolicyType
		sideEffects     *admissionregistrationv1.SideEffectClass
		timeout         *int32
		nsSelector      *metav1.LabelSelector
		matchConditions []admissionregistrationv1.MatchCondition
	}
	var hooks []hook
	mwc, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range mwc.Webhooks {
		hooks = append(hooks, hook{h.Name, "/mutate", h.ClientConfig, h.Rules, h.FailurePolicy, h.SideEffects, h.TimeoutSeconds, h.NamespaceSelector, h.MatchConditions})
	}
	vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "replica-policy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range vwc.Webhooks {
		hooks = append(hooks, hook{h.Name, "/validate", h.ClientConfig, h.Rules, h.FailurePolicy, h.SideEffects, h.TimeoutSeconds, h.NamespaceSelector, h.MatchConditions})
	}
	want := map[string]struct {
		rules      []admissionregistrationv1.RuleWithOperations
		timeout    int32
		nsSelector *metav1.LabelSelector
		condition  string
	}{
		// Workloads: /mutate only, one call per write; their /scale in an entry of its own,
		// without a matchCondition.
		"mutate.replicapolicy.io":       {workloadRules, 5, notSystem, "replicas-changed"},
		"scale.mutate.replicapolicy.io": {scaleRules, 5, notSystem, ""},
		// HPAs: an entry of their own, which --native-policies never touches.
		"hpa.replicapolicy.io": {hpaRules, 5, notSystem, "range-changed"},
		"policy.replicapolicy.io": {[]admissionregistrationv1.RuleWithOperations{
			{Operations: []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}, Rule: rule("", "configmaps")}}, 10, onlyOwn, "is-policy-configmap"},
	}
	if len(hooks) != len(want) {
		t.Errorf("%d webhooks installed, want %d", len(hooks), len(want))
	}
	for _, h := range hooks {
		w, ok := want[h.name]
		if !ok {
			t.Errorf("unexpected webhook %s", h.name)
			continue
		}
		if !reflect.DeepEqual(h.rules, w.rules) {
			t.Errorf("%s rules %+v, want %+v", h.name, h.rules, w.rules)
		}
		if h.failurePolicy == nil || *h.failurePolicy != admissionregistrationv1.Ignore {
			t.Errorf("%s failurePolicy %v, want Ignore (manifests/README.md: an outage must never block Deployment writes)", h.name, h.failurePolicy)
		}
		if h.sideEffects == nil || *h.sideEffects != admissionregistrationv1.SideEffectClassNone {
			t.Errorf("%s sideEffects %v, want None", h.name, h.sideEffects)
		}
		if h.timeout == nil || *h.timeout != w.timeout {
			t.Errorf("%s timeoutSeconds %v, want %d", h.name, h.timeout, w.timeout)
		}
		if !reflect.DeepEqual(h.nsSelector, w.nsSelector) {
			t.Errorf("%s namespaceSelector %+v, want %+v", h.name, h.nsSelector, w.nsSelector)
		}
		if w.condition == "" && len(h.matchConditions) != 0 {
			t.Errorf("%s matchConditions %+v, want none", h.name, h.matchConditions)
		} else if w.condition != "" && !slices.ContainsFunc(h.matchConditions, func(m admissionregistrationv1.MatchCondition) bool {
			return m.Name == w.condition && m.Expression != ""
		}) {
			t.Errorf("%s matchConditions %+v, want %q", h.name, h.matchConditions, w.condition)
		}
		if !bytes.Equal(h.clientConfig.CABundle, ca) {
			t.Errorf("%s caBundle is not the generated ca.crt", h.name)
		}
		svc := h.clientConfig.Service
		if h.clientConfig.URL != nil || svc == nil || svc.Name != "replica-policy-webhook" || svc.Namespace != policy.DefaultNamespace ||
			svc.Path == nil || *svc.Path != h.path || svc.Port == nil || *svc.Port != 443 {
			t.Errorf("%s clientConfig %+v, want Service replica-policy-system/replica-policy-webhook:443%s", h.name, h.clientConfig, h.path)
		}
	}

	// RBAC: exactly the design's least-privilege contract.
	cr, err := cs.RbacV1().ClusterRoles().Get(ctx, "replica-policy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkRules(t, "ClusterRole replica-policy", cr.Rules, []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "replicasets"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale", "statefulsets/scale", "replicasets/scale"}, Verbs: []string{"update"}},
		{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	})
	role, err := cs.RbacV1().Roles(policy.DefaultNamespace).Get(ctx, "replica-policy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkRules(t, "Role replica-policy-system/replica-policy", role.Rules, []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"replica-policy"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{"replica-policy-leader"}, Verbs: []string{"get", "update"}},
	})
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "replica-policy", Namespace: policy.DefaultNamespace}}
	if crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, "replica-policy", metav1.GetOptions{}); err != nil ||
		!reflect.DeepEqual(crb.Subjects, subject) || crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != "replica-policy" {
		t.Errorf("ClusterRoleBinding replica-policy: %v %+v", err, crb)
	}
	if rb, err := cs.RbacV1().RoleBindings(policy.DefaultNamespace).Get(ctx, "replica-policy", metav1.GetOptions{}); err != nil ||
		!reflect.DeepEqual(rb.Subjects, subject) || rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != "replica-policy" {
		t.Errorf("RoleBinding replica-policy: %v %+v", err, rb)
	}
	if sa, err := cs.CoreV1().ServiceAccounts(policy.DefaultNamespace).Get(ctx, "replica-policy", metav1.GetOptions{}); err != nil ||
		sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount replica-policy: %v, want automountServiceAccountToken false", err)
	}

	// The Deployment.
	d, err := cs.AppsV1().Deployments(policy.DefaultNamespace).Get(ctx, "replica-policy-webhook", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas %v, want 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "replica-policy" || pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Errorf("pod serviceAccountName %q automount %v, want replica-policy with its token", pod.ServiceAccountName, pod.AutomountServiceAccountToken)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v, want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	sc := ctr.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v, want allowPrivilegeEscalation false, readOnlyRootFilesystem true, drop ALL", sc)
	}
	for name, p := range map[string]*corev1.Probe{"/healthz": ctr.LivenessProbe, "/readyz": ctr.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port != intstr.FromString("health") {
			t.Errorf("probe %s: %+v", name, p)
		}
	}
	if !slices.ContainsFunc(ctr.Ports, func(p corev1.ContainerPort) bool { return p.Name == "health" && p.ContainerPort == 8081 }) ||
		!slices.Contains(ctr.Args, "--health-probe-bind-address=:8081") || !slices.Contains(ctr.Args, "--leader-elect") {
		t.Errorf("container ports %+v args %v: the probes' port must be the one the binary serves health on, and --leader-elect set", ctr.Ports, ctr.Args)
	}
	res := ctr.Resources
	if !res.Limits.Memory().Equal(resource.MustParse("256Mi")) || res.Requests.Memory().IsZero() || res.Requests.Cpu().IsZero() {
		t.Errorf("resources %+v, want requests for cpu and memory and a 256Mi memory limit", res)
	}
	if _, ok := res.Limits[corev1.ResourceCPU]; ok {
		t.Errorf("a CPU limit: the manifests deliberately have none (throttling stalls admission)")
	}
	if len(pod.Volumes) != 1 || pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "replica-policy-webhook-tls" {
		t.Errorf("volumes %+v, want the TLS Secret", pod.Volumes)
	}
	secret, err := cs.CoreV1().Secrets(policy.DefaultNamespace).Get(ctx, "replica-policy-webhook-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if secret.Type != corev1.SecretTypeTLS || !bytes.Equal(secret.Data["tls.crt"], tlsCrt) || !bytes.Equal(secret.Data["ca.crt"], ca) || len(secret.Data["tls.key"]) == 0 {
		t.Errorf("Secret replica-policy-webhook-tls: type %s, keys %v: want kubernetes.io/tls with the generated files", secret.Type, keys(secret.Data))
	}

	pdb, err := cs.PolicyV1().PodDisruptionBudgets(policy.DefaultNamespace).Get(ctx, "replica-policy-webhook", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) || pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget maxUnavailable %v minAvailable %v, want maxUnavailable 1", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, policy.DefaultNamespace, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("Namespace labels %v, want pod-security.kubernetes.io/enforce=restricted", ns.Labels)
	}
	if _, err := cs.CoreV1().ConfigMaps(policy.DefaultNamespace).Get(ctx, policy.DefaultConfigMapName, metav1.GetOptions{}); err != nil {
		t.Errorf("policy ConfigMap: %v", err)
	}
	svc, err := cs.CoreV1().Services(policy.DefaultNamespace).Get(ctx, "replica-policy-webhook", metav1.GetOptions{})
	if err != nil || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == 443 && p.TargetPort == intstr.FromString("webhook") }) {
		t.Errorf("Service replica-policy-webhook: %v, want port 443 -> webhook", err)
	}
}

func rule(group string, resources ...string) admissionregistrationv1.Rule {
	return ruleAt(group, "v1", resources...)
}

// ruleAt is rule at another API version.
func ruleAt(group, version string, resources ...string) admissionregistrationv1.Rule {
	return admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources, Scope: ptr.To(admissionregistrationv1.NamespacedScope)}
}

// checkRules compares RBAC rules as sets (order of rules and of the values in each ignored).
func checkRules(t *testing.T, what string, got, want []rbacv1.PolicyRule) {
	t.Helper()
	norm := func(rules []rbacv1.PolicyRule) []string {
		var out []string
		for _, r := range rules {
			parts := []string{}
			for _, l := range [][]string{r.APIGroups, r.Resources, r.ResourceNames, r.Verbs, r.NonResourceURLs} {
				l = slices.Clone(l)
				slices.Sort(l)
				parts = append(parts, fmt.Sprintf("%q", l))
			}
			out = append(out, strings.Join(parts, " "))
		}
		slices.Sort(out)
		return out
	}
	if g, w := norm(got), norm(want); !slices.Equal(g, w) {
		t.Errorf("%s rules (groups resources names verbs urls):\n  got  %s\n  want %s", what, strings.Join(g, "\n       "), strings.Join(w, "\n       "))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
