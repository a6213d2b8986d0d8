package monitoring

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// The alerts of prometheusrule.yaml.
const (
	webhookDown         = "ReplicaPolicyWebhookDown"
	replicaDown         = "ReplicaPolicyReplicaDown"
	webhookNotReady     = "ReplicaPolicyWebhookNotReady"
	policyInvalid       = "ReplicaPolicyPolicyInvalid"
	admissionErrors     = "ReplicaPolicyAdmissionErrors"
	scalerFailing       = "ReplicaPolicyScalerFailing"
	scalerContested     = "ReplicaPolicyScalerContested"
	nativeOutOfSync     = "ReplicaPolicyNativePoliciesOutOfSync"
	workloadsOutside    = "ReplicaPolicyWorkloadsOutOfBounds"
	violators           = "ReplicaPolicyViolators"
	certificateExpiring = "ReplicaPolicyCertificateExpiring"
)

// The example policy of manifests/base/policy.yaml, which the local overlay installs: the
// default clamps to 1..50, the rule "databases" (label replicapolicy.io/class: database)
// denies outside 3..7.
const (
	appNamespace  = "apps"
	defaultMax    = 50
	databaseLabel = "replicapolicy.io/class"
)

// build is the webhook binary, built once with the Makefile target the Dockerfile runs.
var build harness.WebhookBuild

func TestMain(m *testing.M) { build.Main(m) }

// TestSituations runs each alert's situation, every one on a cluster of its own, as parallel
// subtests (two at a time on 2 cores: go test's -parallel defaults to GOMAXPROCS): they
// wait on the binary and its scrapes more than they compute, and one after the other took
// about 4 minutes. Each subtest has the name docs/operations.md gives it; one alone:
// go test -run 'TestSituations/TestNotReady'. TestDashboardQueries, in a later file, runs
// once they have all finished.
func TestSituations(t *testing.T) {
	for _, s := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"TestHealthyRunIsSilent", situationHealthyRunIsSilent},
		{"TestPolicyInvalid", situationPolicyInvalid},
		{"TestScalerWithoutRights", situationScalerWithoutRights},
		{"TestNativeSyncFailing", situationNativeSyncFailing},
		{"TestViolatorLeftAlone", situationViolatorLeftAlone},
		{"TestScalerDryRun", situationScalerDryRun},
		{"TestCertificateNearItsEnd", situationCertificateNearItsEnd},
		{"TestNotReady", situationNotReady},
		{"TestScalerContested", situationScalerContested},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.run(t)
		})
	}
}

// situation is one cluster with the manifests' local overlay and the built binary, and a
// Prometheus that scrapes it.
type situation struct {
	t *testing.T
	c *harness.Cluster
	w *harness.Webhook
	p *prometheus
}

func newCluster(t *testing.T) *situation {
	t.Helper()
	situationPassed(t)
	if _, err := harness.FindKubectl(); err != nil {
		t.Fatal(err)
	}
	c, err := harness.StartCluster(context.Background(), harness.ClusterOptions{Dir: t.TempDir(), Log: harness.LogWriter(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	if _, err := c.KubectlCmd(context.Background(), "create", "namespace", appNamespace); err != nil {
		t.Fatal(err)
	}
	return &situation{t: t, c: c}
}

// run starts the binary (with o's options) and a Prometheus that scrapes it.
func (s *situation) run(o harness.WebhookOptions) {
	s.t.Helper()
	o.Binary = build.Binary(s.t)
	w, err := s.c.RunWebhook(context.Background(), o)
	if err != nil {
		s.t.Fatal(err)
	}
	s.w = w
	s.t.Cleanup(func() {
		w.Kill()
		if s.t.Failed() {
			s.t.Logf("webhook log:\n%s", harness.TailLines(w.Log(), 60))
		}
	})
	s.p = newPrometheus(s.t, w.Metrics, "replica-policy-webhook-0")
}

func (s *situation) kubectl(args ...string) string {
	s.t.Helper()
	out, err := s.c.KubectlCmd(context.Background(), args...)
	if err != nil {
		s.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// deployment creates a Deployment in the apps namespace as the API server stores it.
func (s *situation) deployment(name string, replicas int32, labels map[string]string) {
	s.t.Helper()
	if _, err := s.c.Client.AppsV1().Deployments(appNamespace).Create(context.Background(), harness.Deployment(appNamespace, name, replicas, labels), metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *situation) replicas(name string) int32 {
	s.t.Helper()
	d, err := s.c.Client.AppsV1().Deployments(appNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	return *d.Spec.Replicas
}

// withoutRule removes from the ClusterRole or Role (kind) replica-policy the rules that name
// resource, as an RBAC change that forgot the webhook would.
func (s *situation) withoutRule(kind, resource string) {
	s.t.Helper()
	ctx := context.Background()
	drop := func(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
		kept := slices.DeleteFunc(slices.Clone(rules), func(r rbacv1.PolicyRule) bool { return slices.Contains(r.Resources, resource) })
		if len(kept) == len(rules) {
			s.t.Fatalf("%s replica-policy has no rule for %s", kind, resource)
		}
		return kept
	}
	var err error
	if kind == "ClusterRole" {
		roles := s.c.Client.RbacV1().ClusterRoles()
		var cr *rbacv1.ClusterRole
		if cr, err = roles.Get(ctx, "replica-policy", metav1.GetOptions{}); err == nil {
			cr.Rules = drop(cr.Rules)
			_, err = roles.Update(ctx, cr, metav1.UpdateOptions{})
		}
	} else {
		roles := s.c.Client.RbacV1().Roles(policy.DefaultNamespace)
		var r *rbacv1.Role
		if r, err = roles.Get(ctx, "replica-policy", metav1.GetOptions{}); err == nil {
			r.Rules = drop(r.Rules)
			_, err = roles.Update(ctx, r, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		s.t.Fatal(err)
	}
}

// situationHealthyRunIsSilent is TestSituations/TestHealthyRunIsSilent: the example policy, a
// Deployment inside its bounds, one clamped at create and one the scaler corrects, admission
// traffic through the API server, for 40 scrapes (20 minutes of compressed time, longer than
// every alert's `for:` and window): no alert fires. Then the process, the only replica, is
// killed: ReplicaPolicyWebhookDown and ReplicaPolicyReplicaDown fire (up == 0).
func situationHealthyRunIsSilent(t *testing.T) {
	s := newCluster(t)
	// Created before the binary runs (failurePolicy Ignore lets it through unclamped): the
	// scaler corrects it at start.
	s.deployment("drifted", defaultMax+10, nil)
	s.run(harness.WebhookOptions{Name: "healthy"})
	s.deployment("web", 3, nil)
	s.deployment("big", defaultMax+30, nil) // clamped at create
	if got := s.replicas("big"); got != defaultMax {
		t.Fatalf("big has %d replicas, want %d (clamped by the webhook)", got, defaultMax)
	}
	harness.Eventually(t, 30*time.Second, 100*time.Millisecond, "drifted corrected by the scaler", func() bool { return s.replicas("drifted") == defaultMax })
	for i := range 40 {
		if i%4 == 0 { // admission traffic: a scale the webhook clamps, one it allows
			s.kubectl("scale", "-n", appNamespace, "deployment/web", fmt.Sprintf("--replicas=%d", 2+i%3))
			s.kubectl("scale", "-n", appNamespace, "deployment/big", "--replicas=90")
		}
		s.p.scrape()
		time.Sleep(time.Second)
	}
	s.p.onlyFired()

	// The certificate metric is the NotAfter of the certificate on disk.
	notAfter, err := harness.CertNotAfter(filepath.Join(s.c.CertDir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if v := s.p.query(`replicapolicy_serving_certificate_expiry_timestamp_seconds`); len(v) != 1 || v[0].F != float64(notAfter.Unix()) {
		t.Errorf("replicapolicy_serving_certificate_expiry_timestamp_seconds = %v, want %d (%v)", v, notAfter.Unix(), notAfter)
	}
	if v := s.p.query(`min(replicapolicy_ready)`); len(v) != 1 || v[0].F != 1 {
		t.Errorf("min(replicapolicy_ready) = %v, want 1", v)
	}

	s.w.Kill()
	s.p.scrapeUntilFiring(10, webhookDown, replicaDown)
	s.p.onlyFired(webhookDown, replicaDown)
}

// situationPolicyInvalid is TestSituations/TestPolicyInvalid: with the validating webhook out
// of the way (deleted, as during an outage with failurePolicy Ignore), the policy ConfigMap is
// changed to an invalid policy: ReplicaPolicyPolicyInvalid fires while the last valid policy
// is still enforced. A client that posts a request the webhook cannot decide makes
// ReplicaPolicyAdmissionErrors fire.
func situationPolicyInvalid(t *testing.T) {
	s := newCluster(t)
	s.run(harness.WebhookOptions{Name: "invalid-policy"})
	s.p.scrapeFor(2)
	s.kubectl("delete", "validatingwebhookconfiguration", "replica-policy")
	if err := harness.SetPolicy(context.Background(), s.c.Client, "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n- name: broken\n  minReplicas: 5\n  maxReplicas: 2\n"); err != nil {
		t.Fatal(err)
	}
	s.p.scrapeUntilFiring(20, policyInvalid)
	// The last valid policy is in force: a create above 50 is still clamped.
	s.deployment("big", defaultMax+30, nil)
	if got := s.replicas("big"); got != defaultMax {
		t.Fatalf("big has %d replicas under the last valid policy, want %d", got, defaultMax)
	}

	// An AdmissionReview without uid and resource: answered bad_request.
	tlsConf, err := s.c.WebhookTLS()
	if err != nil {
		t.Fatal(err)
	}
	client := http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: 5 * time.Second}
	resp, err := client.Post(fmt.Sprintf("https://127.0.0.1:%d/mutate", s.c.Port), "application/json",
		bytes.NewReader([]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{}}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.p.scrapeUntilFiring(5, admissionErrors)
	s.p.onlyFired(policyInvalid, admissionErrors)
}

// situationScalerWithoutRights is TestSituations/TestScalerWithoutRights: an RBAC change takes
// the scaler's rights on deployments/scale; a Deployment created above its clamp bounds while
// the webhook was not running stays there. ReplicaPolicyScalerFailing (Forbidden) and
// ReplicaPolicyWorkloadsOutOfBounds fire.
func situationScalerWithoutRights(t *testing.T) {
	s := newCluster(t)
	s.withoutRule("ClusterRole", "deployments/scale")
	s.deployment("drifted", defaultMax+10, nil)
	s.run(harness.WebhookOptions{Name: "forbidden"})
	s.p.scrapeUntilFiring(40, scalerFailing, workloadsOutside)
	if got := s.replicas("drifted"); got != defaultMax+10 {
		t.Fatalf("drifted has %d replicas: the scaler should have been Forbidden", got)
	}
	if v := s.p.query(`replicapolicy_scaler_correction_failures_total{reason="Forbidden"}`); len(v) == 0 || v[0].F == 0 {
		t.Errorf("no Forbidden correction failure counted: %v", v)
	}
	s.p.onlyFired(scalerFailing, workloadsOutside)
}

// situationNativeSyncFailing is TestSituations/TestNativeSyncFailing: --native-policies
// without the native-policies component's rights: every sync is Forbidden and
// ReplicaPolicyNativePoliciesOutOfSync fires.
func situationNativeSyncFailing(t *testing.T) {
	s := newCluster(t)
	s.run(harness.WebhookOptions{Name: "native", Args: []string{"--native-policies"}})
	s.p.scrapeUntilFiring(10, nativeOutOfSync)
	s.p.scrapeFor(2)
	s.p.onlyFired(nativeOutOfSync)
}

// situationViolatorLeftAlone is TestSituations/TestViolatorLeftAlone: a Deployment created
// outside the deny rule's bounds while the webhook was not running stays outside (the scaler
// never changes deny violators): ReplicaPolicyViolators fires, and nothing else. Its HPA's
// range, 2..20, leaves the rule's 3..7 too, and so does a KEDA ScaledObject's (KEDA's CRD
// served, the keda component's read right granted): the scaler reports both (no alert; the
// dashboard shows them).
func situationViolatorLeftAlone(t *testing.T) {
	s := newCluster(t)
	s.deployment("db", 10, map[string]string{databaseLabel: "database"})
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace, Name: "db"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "db"},
			MinReplicas:    ptr(int32(2)),
			MaxReplicas:    20,
		},
	}
	if _, err := s.c.Client.AutoscalingV2().HorizontalPodAutoscalers(appNamespace).Create(context.Background(), hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crd, err := harness.KEDAScaledObjectCRD()
	if err != nil {
		t.Fatal(err)
	}
	s.kubectl("create", "-f", crd)
	s.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd/scaledobjects.keda.sh")
	s.kubectl("patch", "clusterrole", "replica-policy", "--type=json", "-p",
		`[{"op":"add","path":"/rules/-","value":{"apiGroups":["keda.sh"],"resources":["scaledobjects"],"verbs":["get","list","watch"]}}]`)
	so := filepath.Join(t.TempDir(), "scaledobject.yaml")
	harness.WriteFile(t, so, `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: db, namespace: `+appNamespace+`}
spec:
  scaleTargetRef: {name: db}
  minReplicaCount: 2
  maxReplicaCount: 20
  triggers:
  - type: cron
    metadata: {timezone: UTC, start: "0 8 * * *", end: "0 18 * * *", desiredReplicas: "5"}
`)
	s.kubectl("create", "-f", so)
	s.run(harness.WebhookOptions{Name: "violator"})
	s.p.scrapeUntilFiring(30, violators)
	if got := s.replicas("db"); got != 10 {
		t.Fatalf("db has %d replicas, want 10 (a deny violator is left alone)", got)
	}
	if v := s.p.query(`replicapolicy_scaler_autoscalers_out_of_bounds{rule="databases"}`); len(v) != 1 || v[0].F != 1 {
		t.Errorf("replicapolicy_scaler_autoscalers_out_of_bounds{rule=\"databases\"} = %v, want 1", v)
	}
	if v := s.p.query(`replicapolicy_scaler_scaledobjects_out_of_bounds{rule="databases"}`); len(v) != 1 || v[0].F != 1 {
		t.Errorf("replicapolicy_scaler_scaledobjects_out_of_bounds{rule=\"databases\"} = %v, want 1", v)
	}
	s.p.onlyFired(violators)
}

// situationScalerDryRun is TestSituations/TestScalerDryRun: with --scaler-dry-run the scaler
// reports a clamp violator and leaves it: ReplicaPolicyWorkloadsOutOfBounds fires (the runbook
// says to silence it for a dry run), ReplicaPolicyScalerFailing does not.
func situationScalerDryRun(t *testing.T) {
	s := newCluster(t)
	s.deployment("drifted", defaultMax+10, nil)
	s.run(harness.WebhookOptions{Name: "dry-run", Args: []string{"--scaler-dry-run"}})
	s.p.scrapeUntilFiring(30, workloadsOutside)
	if got := s.replicas("drifted"); got != defaultMax+10 {
		t.Fatalf("drifted has %d replicas: a dry run changes nothing", got)
	}
	s.p.onlyFired(workloadsOutside)
}

func ptr[T any](v T) *T { return &v }

// situationCertificateNearItsEnd is TestSituations/TestCertificateNearItsEnd: the serving
// certificate is reissued (same CA) for 7 days before the binary starts:
// ReplicaPolicyCertificateExpiring fires.
func situationCertificateNearItsEnd(t *testing.T) {
	s := newCluster(t)
	if _, err := harness.GenerateCertsValidFor(s.c.CertDir, 7*24*time.Hour, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	s.run(harness.WebhookOptions{Name: "expiring"})
	s.p.scrapeUntilFiring(30, certificateExpiring)
	s.p.onlyFired(certificateExpiring)
}

// situationNotReady is TestSituations/TestNotReady: the Role loses the rights on the policy
// ConfigMap before the binary starts: it never reads its policy, stays not ready (check
// "policy") and answers the API server's calls with 503. ReplicaPolicyWebhookNotReady fires,
// and ReplicaPolicyAdmissionErrors once the process is past its start-up (3 minutes of
// compressed time).
func situationNotReady(t *testing.T) {
	s := newCluster(t)
	s.withoutRule("Role", "configmaps")
	s.run(harness.WebhookOptions{Name: "not-ready", NoWait: true})
	for i := range 30 {
		if i%3 == 0 { // through the API server: /mutate answers 503, failurePolicy Ignore lets it in
			s.deployment(fmt.Sprintf("web-%d", i), 3, nil)
		}
		s.p.scrape()
		if len(s.p.missing([]string{webhookNotReady, admissionErrors})) == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	if m := s.p.missing([]string{webhookNotReady, admissionErrors}); len(m) > 0 {
		t.Fatalf("not firing: %v (firing: %v)", m, s.p.fired())
	}
	if v := s.p.query(`replicapolicy_ready{check="policy"}`); len(v) != 1 || v[0].F != 0 {
		t.Errorf(`replicapolicy_ready{check="policy"} = %v, want 0`, v)
	}
	s.p.onlyFired(webhookNotReady, admissionErrors)
}

// situationScalerContested is TestSituations/TestScalerContested: with the webhook
// configurations deleted (writes reach the API server unclamped), a Deployment is set above
// its bounds again after each correction: after the third correction within 10 minutes the
// scaler backs off and ReplicaPolicyScalerContested fires.
func situationScalerContested(t *testing.T) {
	s := newCluster(t)
	s.kubectl("delete", "mutatingwebhookconfiguration", "replica-policy")
	s.deployment("fought", 3, nil)
	s.run(harness.WebhookOptions{Name: "contested"})
	for i := range 3 {
		s.kubectl("scale", "-n", appNamespace, "deployment/fought", fmt.Sprintf("--replicas=%d", defaultMax+10+i))
		harness.Eventually(t, 30*time.Second, 100*time.Millisecond, fmt.Sprintf("correction %d", i+1), func() bool { return s.replicas("fought") == defaultMax })
		s.p.scrape()
	}
	s.kubectl("scale", "-n", appNamespace, "deployment/fought", fmt.Sprintf("--replicas=%d", defaultMax+20))
	s.p.scrapeUntilFiring(10, scalerContested)
	if got := s.replicas("fought"); got != defaultMax+20 {
		t.Errorf("fought has %d replicas, want %d: the scaler should have backed off", got, defaultMax+20)
	}
	s.p.onlyFired(scalerContested)
}
