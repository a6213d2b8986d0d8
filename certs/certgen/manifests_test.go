package certgen_test

// These tests build the kustomize manifests with certificates from this tool, in a copy of
// manifests/ so that the real manifests/certs is never touched, and check that the pieces
// fit: the Secret and caBundle carry the generated files, every name and port one object
// refers to exists in another, and RBAC is exactly the design's least privilege. Every
// document is decoded strictly into the Kubernetes API types, so a misspelt field fails here
// rather than at kubectl apply time.
//
// They need kubectl (v1.32+, which embeds kustomize v5.5) on PATH and skip without it.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/replica-policy/replica-policy/certs/certgen"
	"github.com/replica-policy/replica-policy/internal/harness"
)

const (
	namespace     = "replica-policy-system"
	webhookSecret = "replica-policy-webhook-tls"
	serviceName   = "replica-policy-webhook"
)

// manifestsWithCerts copies manifests/ (without any generated files) into a temporary
// directory, generates certificates into its certs/ with extraArgs, and returns the copy.
func manifestsWithCerts(t *testing.T, extraArgs ...string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "manifests")
	if err := harness.CopyManifests(dst); err != nil {
		t.Fatalf("copy manifests: %v", err)
	}
	certgen.RunCerts(t, append([]string{"--out-dir", filepath.Join(dst, "certs")}, extraArgs...)...)
	return dst
}

// kustomize runs `kubectl kustomize dir` and decodes the output.
func kustomize(t *testing.T, dir string) *objects {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not on PATH: skipping the kustomize build tests (they need kubectl v1.32+ with its embedded kustomize)")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	return decodeObjects(t, stdout.Bytes())
}

// objects is a kustomize build, decoded. Each field holds every object of its kind.
type objects struct {
	names              []string // kind/namespace/name, in output order
	namespaces         []corev1.Namespace
	serviceAccounts    []corev1.ServiceAccount
	configMaps         []corev1.ConfigMap
	secrets            []corev1.Secret
	services           []corev1.Service
	deployments        []appsv1.Deployment
	pdbs               []policyv1.PodDisruptionBudget
	networkPolicies    []networkingv1.NetworkPolicy
	clusterRoles       []rbacv1.ClusterRole
	clusterRoleBinding []rbacv1.ClusterRoleBinding
	roles              []rbacv1.Role
	roleBindings       []rbacv1.RoleBinding
	mutating           []admissionregistrationv1.MutatingWebhookConfiguration
	validating         []admissionregistrationv1.ValidatingWebhookConfiguration
	certManager        []map[string]any // cert-manager.io Issuers and Certificates
	allLabels          []map[string]string
}

func decodeObjects(t *testing.T, data []byte) *objects {
	t.Helper()
	objs := &objects{}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var head struct {
			metav1.TypeMeta   `json:",inline"`
			metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("decode document: %v\n%s", err, doc)
		}
		objs.names = append(objs.names, fmt.Sprintf("%s/%s/%s", head.Kind, head.Namespace, head.Name))
		objs.allLabels = append(objs.allLabels, head.Labels)

		var into any
		switch gvk := head.APIVersion + "/" + head.Kind; gvk {
		case "v1/Namespace":
			into = appendNew(&objs.namespaces)
		case "v1/ServiceAccount":
			into = appendNew(&objs.serviceAccounts)
		case "v1/ConfigMap":
			into = appendNew(&objs.configMaps)
		case "v1/Secret":
			into = appendNew(&objs.secrets)
		case "v1/Service":
			into = appendNew(&objs.services)
		case "apps/v1/Deployment":
			into = appendNew(&objs.deployments)
		case "policy/v1/PodDisruptionBudget":
			into = appendNew(&objs.pdbs)
		case "networking.k8s.io/v1/NetworkPolicy":
			into = appendNew(&objs.networkPolicies)
		case "rbac.authorization.k8s.io/v1/ClusterRole":
			into = appendNew(&objs.clusterRoles)
		case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
			into = appendNew(&objs.clusterRoleBinding)
		case "rbac.authorization.k8s.io/v1/Role":
			into = appendNew(&objs.roles)
		case "rbac.authorization.k8s.io/v1/RoleBinding":
			into = appendNew(&objs.roleBindings)
		case "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration":
			into = appendNew(&objs.mutating)
		case "admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration":
			into = appendNew(&objs.validating)
		case "cert-manager.io/v1/Issuer", "cert-manager.io/v1/Certificate":
			into = appendNew(&objs.certManager)
		default:
			t.Fatalf("unexpected object %s %s in the build", gvk, head.Name)
		}
		// Strict: a field the Kubernetes API does not know is an error, as the API server's
		// field validation would report it.
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			t.Errorf("%s %s: %v", head.Kind, head.Name, err)
		}
	}
	return objs
}

// appendNew appends a zero element to s and returns a pointer to it.
func appendNew[T any](s *[]T) *T {
	var zero T
	*s = append(*s, zero)
	return &(*s)[len(*s)-1]
}

// eachWebhook calls f with the clientConfig of every webhook in both configurations.
func (o *objects) eachWebhook(f func(config, name string, cc admissionregistrationv1.WebhookClientConfig)) {
	for _, c := range o.mutating {
		for _, w := range c.Webhooks {
			f("MutatingWebhookConfiguration", w.Name, w.ClientConfig)
		}
	}
	for _, c := range o.validating {
		for _, w := range c.Webhooks {
			f("ValidatingWebhookConfiguration", w.Name, w.ClientConfig)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// verifyAgainstBundle checks that the serving certificate in certPEM is trusted by a
// caBundle for a server named name, as the API server checks it.
func verifyAgainstBundle(t *testing.T, caBundle, certPEM []byte, name string) {
	t.Helper()
	cert, err := certgen.ParseCertificatePEM(certPEM)
	if err != nil {
		t.Fatalf("tls.crt: %v", err)
	}
	if err := certgen.Verify(t, caBundle, cert, name); err != nil {
		t.Errorf("serving certificate not trusted by the caBundle for %q: %v", name, err)
	}
}

func TestKustomizeDefault(t *testing.T) {
	dir := manifestsWithCerts(t)
	objs := kustomize(t, dir)
	caPEM := readFile(t, filepath.Join(dir, "certs", certgen.CACertFile))
	certPEM := readFile(t, filepath.Join(dir, "certs", certgen.TLSCertFile))
	keyPEM := readFile(t, filepath.Join(dir, "certs", certgen.TLSKeyFile))

	wantNames := []string{
		"Namespace//replica-policy-system",
		"ServiceAccount/replica-policy-system/replica-policy",
		"Role/replica-policy-system/replica-policy",
		"ClusterRole//replica-policy",
		"RoleBinding/replica-policy-system/replica-policy",
		"ClusterRoleBinding//replica-policy",
		"ConfigMap/replica-policy-system/replica-policy",
		"Secret/replica-policy-system/replica-policy-webhook-tls",
		"Service/replica-policy-system/replica-policy-webhook",
		"Deployment/replica-policy-system/replica-policy-webhook",
		"PodDisruptionBudget/replica-policy-system/replica-policy-webhook",
		"NetworkPolicy/replica-policy-system/replica-policy-webhook",
		"MutatingWebhookConfiguration//replica-policy",
		"ValidatingWebhookConfiguration//replica-policy",
	}
	if !slices.Equal(sorted(objs.names), sorted(wantNames)) {
		t.Errorf("objects = %v\nwant %v", objs.names, wantNames)
	}

	// The Secret carries exactly the generated files.
	if len(objs.secrets) != 1 {
		t.Fatalf("%d Secrets, want 1", len(objs.secrets))
	}
	s := objs.secrets[0]
	if s.Name != webhookSecret || s.Namespace != namespace || s.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret %s/%s type %s, want %s/%s type %s", s.Namespace, s.Name, s.Type, namespace, webhookSecret, corev1.SecretTypeTLS)
	}
	for key, want := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": caPEM} {
		if !bytes.Equal(s.Data[key], want) {
			t.Errorf("Secret data %s differs from the generated file", key)
		}
	}

	// Every webhook calls the Service with the generated CA as its caBundle.
	n := 0
	objs.eachWebhook(func(config, name string, cc admissionregistrationv1.WebhookClientConfig) {
		n++
		if !bytes.Equal(cc.CABundle, caPEM) {
			t.Errorf("%s webhook %s: caBundle does not decode to ca.crt", config, name)
		}
		if cc.URL != nil || cc.Service == nil || cc.Service.Name != serviceName || cc.Service.Namespace != namespace ||
			cc.Service.Port == nil || *cc.Service.Port != 443 {
			t.Errorf("%s webhook %s: clientConfig %+v, want Service %s/%s port 443", config, name, cc, namespace, serviceName)
		}
	})
	if n != 4 {
		t.Errorf("%d webhooks, want 4 (mutate for workload objects, scale.mutate for their /scale, hpa for HPAs, policy for the ConfigMap)", n)
	}
	verifyAgainstBundle(t, caPEM, certPEM, serviceName+"."+namespace+".svc")

	checkDeployment(t, objs)
	checkRBAC(t, objs)
	checkWebhookConfigurations(t, objs)
	checkCommonLabels(t, objs)
}

func TestKustomizeBase(t *testing.T) {
	// The base alone builds, and carries no TLS material.
	objs := kustomize(t, filepath.Join("..", "..", "manifests", "base"))
	if len(objs.secrets) != 0 {
		t.Errorf("base has %d Secrets, want none", len(objs.secrets))
	}
	objs.eachWebhook(func(config, name string, cc admissionregistrationv1.WebhookClientConfig) {
		if len(cc.CABundle) != 0 {
			t.Errorf("base %s webhook %s has a caBundle", config, name)
		}
	})
	checkDeployment(t, objs)
	checkRBAC(t, objs)
	checkWebhookConfigurations(t, objs)
}

func TestKustomizeLocalOverlay(t *testing.T) {
	dir := manifestsWithCerts(t, "--extra-san", "127.0.0.1")
	objs := kustomize(t, filepath.Join(dir, "overlays", "local"))
	caPEM := readFile(t, filepath.Join(dir, "certs", certgen.CACertFile))

	for _, name := range objs.names {
		kind := strings.SplitN(name, "/", 2)[0]
		if slices.Contains([]string{"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "Secret"}, kind) {
			t.Errorf("local overlay still has %s", name)
		}
	}
	if len(objs.configMaps) != 1 || len(objs.roles) != 1 || len(objs.clusterRoles) != 1 || len(objs.serviceAccounts) != 1 {
		t.Errorf("local overlay lost the policy, RBAC or ServiceAccount: %v", objs.names)
	}
	n := 0
	objs.eachWebhook(func(config, name string, cc admissionregistrationv1.WebhookClientConfig) {
		n++
		want := "https://127.0.0.1:9443/validate"
		if config == "MutatingWebhookConfiguration" {
			want = "https://127.0.0.1:9443/mutate"
		}
		if cc.Service != nil || cc.URL == nil || *cc.URL != want {
			t.Errorf("%s webhook %s: clientConfig %+v, want only url %s", config, name, cc, want)
		}
		if !bytes.Equal(cc.CABundle, caPEM) {
			t.Errorf("%s webhook %s: caBundle does not decode to ca.crt", config, name)
		}
	})
	if n != 4 {
		t.Errorf("%d webhooks, want 4 (workload objects, their /scale, HPAs, the policy)", n)
	}
	verifyAgainstBundle(t, caPEM, readFile(t, filepath.Join(dir, "certs", certgen.TLSCertFile)), "127.0.0.1")
	checkRBAC(t, objs)
	checkWebhookConfigurations(t, objs)
}

// TestKustomizeWorkloadResourceComponent: the component adds, for Argo Rollouts, the
// container argument, the two webhook rules and the RBAC, together, and nothing else.
func TestKustomizeWorkloadResourceComponent(t *testing.T) {
	dir := manifestsWithCerts(t)
	overlay := filepath.Join(filepath.Dir(dir), "rollouts")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte("resources: [../manifests]\ncomponents: [../manifests/components/workload-resource]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := kustomize(t, overlay)
	checkDeployment(t, objs)
	checkRBAC(t, objs,
		rbacv1.PolicyRule{APIGroups: []string{"argoproj.io"}, Resources: []string{"rollouts"}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{"argoproj.io"}, Resources: []string{"rollouts/scale"}, Verbs: []string{"update"}},
		rbacv1.PolicyRule{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, ResourceNames: []string{"rollouts.argoproj.io"}, Verbs: []string{"get"}},
	)
	checkWebhookConfigurations(t, objs, "argoproj.io/rollouts:[CREATE UPDATE]", "argoproj.io/rollouts/scale:[UPDATE]")
	args := objs.deployments[0].Spec.Template.Spec.Containers[0].Args
	if n := slices.Index(args, "--workload-resource=rollouts.argoproj.io"); n < 0 || slices.ContainsFunc(args[:n], func(a string) bool { return strings.HasPrefix(a, "--workload-resource") }) {
		t.Errorf("container args %q, want --workload-resource=rollouts.argoproj.io once", args)
	}
}

func TestKustomizeCertManagerOverlay(t *testing.T) {
	objs := kustomize(t, filepath.Join("..", "..", "manifests", "overlays", "cert-manager"))
	if len(objs.secrets) != 0 {
		t.Errorf("cert-manager overlay has %d Secrets; cert-manager must create the Secret", len(objs.secrets))
	}
	var serving map[string]any
	for _, o := range objs.certManager {
		spec, _ := o["spec"].(map[string]any)
		if o["kind"] == "Certificate" && spec["secretName"] == webhookSecret {
			serving = o
		}
	}
	if serving == nil {
		t.Fatalf("no Certificate writes Secret %s", webhookSecret)
	}
	meta := serving["metadata"].(map[string]any)
	wantInject := fmt.Sprintf("%s/%s", meta["namespace"], meta["name"])
	var dnsNames []string
	for _, n := range serving["spec"].(map[string]any)["dnsNames"].([]any) {
		dnsNames = append(dnsNames, n.(string))
	}
	if want := certgen.NewOptions().DNSNames(); !slices.Equal(sorted(dnsNames), sorted(want)) {
		t.Errorf("Certificate dnsNames = %v, want the names the certs tool uses: %v", dnsNames, want)
	}
	annotations := map[string]map[string]string{}
	for _, c := range objs.mutating {
		annotations["MutatingWebhookConfiguration"] = c.Annotations
	}
	for _, c := range objs.validating {
		annotations["ValidatingWebhookConfiguration"] = c.Annotations
	}
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		if got := annotations[kind]["cert-manager.io/inject-ca-from"]; got != wantInject {
			t.Errorf("%s annotation cert-manager.io/inject-ca-from = %q, want %q", kind, got, wantInject)
		}
	}
	checkDeployment(t, objs)
	checkWebhookConfigurations(t, objs)
	checkCommonLabels(t, objs)
}

// checkDeployment checks that the Deployment and the objects that refer to it fit together.
func checkDeployment(t *testing.T, objs *objects) {
	t.Helper()
	if len(objs.deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(objs.deployments))
	}
	d := objs.deployments[0]
	pod := d.Spec.Template
	podLabels := labels.Set(pod.Labels)
	matches := func(what string, sel *metav1.LabelSelector) {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() || !s.Matches(podLabels) {
			t.Errorf("%s selector %v does not select the webhook pods (%v): %v", what, sel, podLabels, err)
		}
	}
	matches("Deployment", d.Spec.Selector)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
	}
	for _, l := range []string{"app.kubernetes.io/part-of"} {
		if _, ok := d.Spec.Selector.MatchLabels[l]; ok {
			t.Errorf("Deployment selector includes %s: the common labels must stay out of the immutable selector", l)
		}
	}
	for _, pdb := range objs.pdbs {
		matches("PodDisruptionBudget", pdb.Spec.Selector)
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
			t.Errorf("PodDisruptionBudget maxUnavailable = %v, want 1", pdb.Spec.MaxUnavailable)
		}
	}
	for _, np := range objs.networkPolicies {
		matches("NetworkPolicy", &np.Spec.PodSelector)
		if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
			t.Errorf("NetworkPolicy policyTypes = %v, want [Ingress] (egress to the API server must work)", np.Spec.PolicyTypes)
		}
	}

	if pod.Spec.ServiceAccountName != "replica-policy" {
		t.Errorf("serviceAccountName = %q", pod.Spec.ServiceAccountName)
	}
	if pod.Spec.AutomountServiceAccountToken == nil || !*pod.Spec.AutomountServiceAccountToken {
		t.Error("the pod must automount its token: it talks to the API server")
	}
	for _, sa := range objs.serviceAccounts {
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount %s must set automountServiceAccountToken: false", sa.Name)
		}
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	flags := map[string]string{}
	for _, a := range c.Args {
		k, v, _ := strings.Cut(a, "=")
		flags[k] = v
	}
	for flag, want := range map[string]string{
		"--leader-elect": "", "--cert-dir": "/tmp/k8s-webhook-server/serving-certs", "--port": "9443",
		"--metrics-bind-address": ":8080", "--health-probe-bind-address": ":8081",
		"--policy-namespace": namespace, "--policy-configmap": "replica-policy",
	} {
		if got, ok := flags[flag]; !ok || got != want {
			t.Errorf("container arg %s = %q (set %v), want %q", flag, got, ok, want)
		}
	}
	if ports["webhook"] != 9443 || ports["metrics"] != 8080 || ports["health"] != 8081 {
		t.Errorf("container ports = %v, want webhook 9443, metrics 8080, health 8081 (matching the args)", ports)
	}
	for what, probe := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[what]
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "health" {
			t.Errorf("%s probe = %+v, want GET %s on port health", what, probe, want)
		}
	}

	// The Secret volume is mounted at --cert-dir and names the Secret the build (or
	// cert-manager) produces.
	var secretName string
	for _, v := range pod.Spec.Volumes {
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name && m.MountPath == flags["--cert-dir"] && m.ReadOnly && v.Secret != nil {
				secretName = v.Secret.SecretName
			}
		}
	}
	if secretName != webhookSecret {
		t.Errorf("no read-only Secret %s volume mounted at --cert-dir (found %q)", webhookSecret, secretName)
	}

	// The restricted Pod Security Standard, which the namespace enforces.
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("security context does not meet the restricted standard: pod %+v, container %+v", psc, sc)
	}
	for _, ns := range objs.namespaces {
		for _, mode := range []string{"enforce", "warn", "audit"} {
			if got := ns.Labels["pod-security.kubernetes.io/"+mode]; got != "restricted" {
				t.Errorf("Namespace %s label pod-security.kubernetes.io/%s = %q, want restricted", ns.Name, mode, got)
			}
		}
	}

	for _, svc := range objs.services {
		if s := labels.SelectorFromSet(svc.Spec.Selector); s.Empty() || !s.Matches(podLabels) {
			t.Errorf("Service selector %v does not select the webhook pods", svc.Spec.Selector)
		}
		var webhookPort *corev1.ServicePort
		for i, p := range svc.Spec.Ports {
			if ports[p.TargetPort.String()] == 0 && p.TargetPort.IntValue() == 0 {
				t.Errorf("Service port %s targets %s, which the container does not expose", p.Name, p.TargetPort.String())
			}
			if p.Name == "webhook" {
				webhookPort = &svc.Spec.Ports[i]
			}
		}
		if webhookPort == nil || webhookPort.Port != 443 || ports[webhookPort.TargetPort.String()] != 9443 {
			t.Errorf("Service has no port 443 named webhook targeting container port 9443: %+v", svc.Spec.Ports)
		}
	}
}

// checkRBAC checks that the ServiceAccount may do exactly what the design allows.
func checkRBAC(t *testing.T, objs *objects, extra ...rbacv1.PolicyRule) {
	t.Helper()
	wantCluster := append([]rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "replicasets"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale", "statefulsets/scale", "replicasets/scale"}, Verbs: []string{"update"}},
		{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}, extra...)
	wantNamespaced := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"replica-policy"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{"replica-policy-leader"}, Verbs: []string{"get", "update"}},
	}
	if len(objs.clusterRoles) != 1 || !reflect.DeepEqual(objs.clusterRoles[0].Rules, wantCluster) {
		t.Errorf("ClusterRoles = %+v\nwant exactly one with rules %+v", objs.clusterRoles, wantCluster)
	}
	if len(objs.roles) != 1 || objs.roles[0].Namespace != namespace || !reflect.DeepEqual(objs.roles[0].Rules, wantNamespaced) {
		t.Errorf("Roles = %+v\nwant exactly one in %s with rules %+v", objs.roles, namespace, wantNamespaced)
	}
	sa := rbacv1.Subject{Kind: "ServiceAccount", Name: "replica-policy", Namespace: namespace}
	for _, b := range objs.clusterRoleBinding {
		if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != objs.clusterRoles[0].Name || !slices.Equal(b.Subjects, []rbacv1.Subject{sa}) {
			t.Errorf("ClusterRoleBinding %s: roleRef %+v subjects %+v", b.Name, b.RoleRef, b.Subjects)
		}
	}
	for _, b := range objs.roleBindings {
		if b.Namespace != namespace || b.RoleRef.Kind != "Role" || b.RoleRef.Name != objs.roles[0].Name || !slices.Equal(b.Subjects, []rbacv1.Subject{sa}) {
			t.Errorf("RoleBinding %s: roleRef %+v subjects %+v", b.Name, b.RoleRef, b.Subjects)
		}
	}
	if len(objs.clusterRoleBinding) != 1 || len(objs.roleBindings) != 1 {
		t.Errorf("%d ClusterRoleBindings and %d RoleBindings, want 1 each", len(objs.clusterRoleBinding), len(objs.roleBindings))
	}
}

// checkWebhookConfigurations checks the failure mode and scoping docs/operations.md promises.
func checkWebhookConfigurations(t *testing.T, objs *objects, extraResources ...string) {
	t.Helper()
	if len(objs.mutating) != 1 || len(objs.validating) != 1 {
		t.Fatalf("%d mutating and %d validating configurations, want 1 each", len(objs.mutating), len(objs.validating))
	}
	type common struct {
		failurePolicy  admissionregistrationv1.FailurePolicyType
		sideEffects    admissionregistrationv1.SideEffectClass
		versions       []string
		timeout        int32
		conditionNames []string
		nsOperator     metav1.LabelSelectorOperator
		nsValues       []string
		resources      []string
	}
	describe := func(fp *admissionregistrationv1.FailurePolicyType, se *admissionregistrationv1.SideEffectClass, versions []string,
		timeout *int32, conds []admissionregistrationv1.MatchCondition, ns *metav1.LabelSelector, rules []admissionregistrationv1.RuleWithOperations) common {
		c := common{versions: versions}
		if fp != nil {
			c.failurePolicy = *fp
		}
		if se != nil {
			c.sideEffects = *se
		}
		if timeout != nil {
			c.timeout = *timeout
		}
		for _, mc := range conds {
			c.conditionNames = append(c.conditionNames, mc.Name)
		}
		if ns != nil && len(ns.MatchExpressions) == 1 && ns.MatchExpressions[0].Key == "kubernetes.io/metadata.name" {
			c.nsOperator, c.nsValues = ns.MatchExpressions[0].Operator, ns.MatchExpressions[0].Values
		}
		for _, r := range rules {
			for _, res := range r.Resources {
				c.resources = append(c.resources, fmt.Sprintf("%s/%s:%v", strings.Join(r.APIGroups, ","), res, r.Operations))
			}
		}
		return c
	}
	workloads := common{
		failurePolicy: admissionregistrationv1.Ignore, sideEffects: admissionregistrationv1.SideEffectClassNone,
		versions: []string{"v1"}, timeout: 5, conditionNames: []string{"replicas-changed"},
		nsOperator: metav1.LabelSelectorOpNotIn, nsValues: []string{"kube-system", namespace},
		resources: []string{"apps/deployments:[CREATE UPDATE]", "apps/statefulsets:[CREATE UPDATE]", "apps/replicasets:[CREATE UPDATE]"},
	}
	// Their /scale has an entry of its own, without the condition (a /scale write changes
	// replicas; a condition costs each call a conversion of the object).
	scales := workloads
	scales.conditionNames = nil
	scales.resources = []string{"apps/deployments/scale:[UPDATE]", "apps/statefulsets/scale:[UPDATE]", "apps/replicasets/scale:[UPDATE]"}
	for _, r := range extraResources {
		if strings.Contains(r, "/scale:") {
			scales.resources = append(scales.resources, r)
		} else {
			workloads.resources = append(workloads.resources, r)
		}
	}
	// HPAs have an entry of their own, which --native-policies never touches.
	hpas := workloads
	hpas.conditionNames = []string{"range-changed"}
	hpas.resources = []string{"autoscaling/horizontalpodautoscalers:[CREATE UPDATE]"}
	// Workloads go to /mutate only: one call per write.
	want := map[string]common{
		"mutate.replicapolicy.io":       workloads,
		"scale.mutate.replicapolicy.io": scales,
		"hpa.replicapolicy.io":          hpas,
		"policy.replicapolicy.io": {
			failurePolicy: admissionregistrationv1.Ignore, sideEffects: admissionregistrationv1.SideEffectClassNone,
			versions: []string{"v1"}, timeout: 10, conditionNames: []string{"is-policy-configmap"},
			nsOperator: metav1.LabelSelectorOpIn, nsValues: []string{namespace},
			resources: []string{"/configmaps:[CREATE UPDATE]"},
		},
	}
	got := map[string]common{}
	paths := map[string]string{}
	for _, w := range objs.mutating[0].Webhooks {
		got[w.Name] = describe(w.FailurePolicy, w.SideEffects, w.AdmissionReviewVersions, w.TimeoutSeconds, w.MatchConditions, w.NamespaceSelector, w.Rules)
		// The final object counts: a later mutation of replicas calls /mutate again.
		if w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
			t.Errorf("webhook %s: reinvocationPolicy = %v, want IfNeeded", w.Name, w.ReinvocationPolicy)
		}
		if w.MatchPolicy == nil || *w.MatchPolicy != admissionregistrationv1.Equivalent {
			t.Errorf("webhook %s: matchPolicy = %v, want Equivalent", w.Name, w.MatchPolicy)
		}
		paths[w.Name] = clientPath(w.ClientConfig)
	}
	for _, w := range objs.validating[0].Webhooks {
		got[w.Name] = describe(w.FailurePolicy, w.SideEffects, w.AdmissionReviewVersions, w.TimeoutSeconds, w.MatchConditions, w.NamespaceSelector, w.Rules)
		if w.MatchPolicy == nil || *w.MatchPolicy != admissionregistrationv1.Equivalent {
			t.Errorf("webhook %s: matchPolicy = %v, want Equivalent", w.Name, w.MatchPolicy)
		}
		paths[w.Name] = clientPath(w.ClientConfig)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("webhooks =\n%+v\nwant\n%+v", got, want)
	}
	wantPaths := map[string]string{"mutate.replicapolicy.io": "/mutate", "scale.mutate.replicapolicy.io": "/mutate", "hpa.replicapolicy.io": "/mutate", "policy.replicapolicy.io": "/validate"}
	if !reflect.DeepEqual(paths, wantPaths) {
		t.Errorf("webhook paths = %v, want %v", paths, wantPaths)
	}
}

// clientPath returns the HTTP path a webhook calls, from its Service or its URL.
func clientPath(cc admissionregistrationv1.WebhookClientConfig) string {
	if cc.Service != nil && cc.Service.Path != nil {
		return *cc.Service.Path
	}
	if cc.URL != nil {
		if i := strings.Index(strings.TrimPrefix(*cc.URL, "https://"), "/"); i >= 0 {
			return strings.TrimPrefix(*cc.URL, "https://")[i:]
		}
	}
	return ""
}

// checkCommonLabels checks that every object carries the common labels.
func checkCommonLabels(t *testing.T, objs *objects) {
	t.Helper()
	for i, l := range objs.allLabels {
		if l["app.kubernetes.io/name"] != "replica-policy" || l["app.kubernetes.io/part-of"] != "replica-policy" {
			t.Errorf("%s lacks the common labels: %v", objs.names[i], l)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
