package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ptrs "k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

const capPolicy = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: cap, namespaces: [apps], maxReplicas: 10}
`

// setter is a second mutating webhook that sets spec.replicas of every Deployment to 50: a
// mutation after replica-policy's, as another admission controller could make.
type setter struct {
	calls atomic.Int64
	url   string
}

// startSetter serves the setter with the control plane's webhook serving certificate (which
// the API server trusts through WebhookInstallOptions' CA) on a port of its own.
func startSetter(t *testing.T, env *harness.ControlPlane) *setter {
	t.Helper()
	s := &setter{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "not a review", http.StatusBadRequest)
			return
		}
		pt := admissionv1.PatchTypeJSONPatch
		review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true, PatchType: &pt,
			Patch: []byte(`[{"op":"add","path":"/spec/replicas","value":50}]`)}
		review.Request = nil
		_ = json.NewEncoder(w).Encode(&review)
	})}
	dir := env.WebhookInstallOptions.LocalServingCertDir
	go func() { _ = srv.ServeTLS(l, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")) }()
	t.Cleanup(func() { _ = srv.Close() })
	s.url = "https://" + l.Addr().String() + "/set"
	return s
}

// TestLaterMutationIsDecidedAgain: a mutating webhook that runs after replica-policy's and
// sets replicas out of bounds makes the API server call /mutate again (reinvocationPolicy
// IfNeeded in manifests/): the stored object is inside the bounds, in one webhook decision
// per call. With reinvocationPolicy Never (the baseline) the later mutation would win.
func TestLaterMutationIsDecidedAgain(t *testing.T) {
	f := startWebhook(t, nil)
	ctx := context.Background()
	if err := harness.SetPolicy(ctx, f.client, capPolicy); err != nil {
		t.Fatal(err)
	}
	createNamespaces(t, f.client, "apps")
	s := startSetter(t, f.env)
	// The API server calls mutating webhooks in the order of their configurations' names:
	// "replica-policy" first, then this one.
	mwcs := f.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := mwcs.Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "zz-replica-setter"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "set.replicas.example.com",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &s.url, CABundle: f.env.WebhookInstallOptions.LocalServingCAData},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{"CREATE"}, Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "apps"}},
			SideEffects:             ptrs.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			FailurePolicy:           ptrs.To(admissionregistrationv1.Fail),
			ReinvocationPolicy:      ptrs.To(admissionregistrationv1.NeverReinvocationPolicy),
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	create := func(name string) int32 {
		t.Helper()
		var stored int32
		harness.Eventually(t, 15*time.Second, 200*time.Millisecond, "the Deployment "+name+" is created", func() error {
			d, err := f.client.AppsV1().Deployments("apps").Create(ctx, harness.Deployment("apps", name, 3, nil), metav1.CreateOptions{})
			if err != nil {
				return err
			}
			stored = *d.Spec.Replicas
			return nil
		})
		return stored
	}
	// A new webhook configuration reaches the API server's dispatcher a moment after it is
	// created: wait until a dry run calls the setter, so the create below is decided with it.
	harness.Eventually(t, 15*time.Second, 200*time.Millisecond, "the API server calls the setter webhook", func() error {
		if _, err := f.client.AppsV1().Deployments("apps").Create(ctx, harness.Deployment("apps", "probe", 3, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			return err
		}
		if s.calls.Load() == 0 {
			return errors.New("not called yet")
		}
		return nil
	})
	if got := create("web"); got != 10 {
		t.Errorf("created with 3, set to 50 by a later webhook: stored %d, want 10 (clamped on reinvocation)", got)
	}
	if s.calls.Load() == 0 {
		t.Fatal("the second webhook was never called: the test did not test anything")
	}

	// The baseline: without reinvocation, the later mutation is what is stored.
	editWebhooks(t, f.client, func(w *admissionregistrationv1.MutatingWebhook) {
		w.ReinvocationPolicy = ptrs.To(admissionregistrationv1.NeverReinvocationPolicy)
	})
	harness.Eventually(t, 15*time.Second, 200*time.Millisecond, "without reinvocation the later webhook wins", func() bool {
		name := fmt.Sprintf("never-%d", time.Now().UnixNano())
		return create(name) == 50
	})
}

// editWebhooks has edit change each webhook of the configuration replica-policy, and
// updates it.
func editWebhooks(t *testing.T, c kubernetes.Interface, edit func(*admissionregistrationv1.MutatingWebhook)) {
	t.Helper()
	mwcs := c.AdmissionregistrationV1().MutatingWebhookConfigurations()
	ours, err := mwcs.Get(context.Background(), "replica-policy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ours.Webhooks {
		edit(&ours.Webhooks[i])
	}
	if _, err := mwcs.Update(context.Background(), ours, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// notReadyTotal reads replicapolicy_admission_not_ready_total{webhook} from the process's
// registry (Run serves it in this process).
func notReadyTotal(t *testing.T, webhook string) float64 {
	t.Helper()
	m, err := harness.GatherMetrics(metrics.Registry)
	if err != nil {
		t.Fatal(err)
	}
	return m.Sum("replicapolicy_admission_not_ready_total", fmt.Sprintf("webhook=%q", webhook))
}

// TestNoAnswerBeforeThePolicyIsRead starts the webhook under a user that may read workloads
// and Namespaces but not yet the policy ConfigMap, so the policy cannot be read. Its answers
// are HTTP 503, and the webhook configuration's failurePolicy decides: Ignore lets a write
// through unchecked, Fail rejects it; both are counted. Once the user may read the policy,
// the webhook decides.
func TestNoAnswerBeforeThePolicyIsRead(t *testing.T) {
	ctx := context.Background()
	const user = "replica-policy-no-policy-yet"
	f := launchWebhook(t, func(env *harness.ControlPlane, o *Options) {
		if err := harness.GrantClusterRole(ctx, env.Client, user, []rbacv1.PolicyRule{
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "replicasets"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		}, harness.User(user)); err != nil {
			t.Fatal(err)
		}
		o.Kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
		if err := env.UserKubeconfig(o.Kubeconfig, envtest.User{Name: user}); err != nil {
			t.Fatal(err)
		}
	})
	if err := harness.SetPolicy(ctx, f.client, capPolicy); err != nil {
		t.Fatal(err)
	}
	createNamespaces(t, f.client, "apps")
	// The webhook serves, but has not read its policy: every call is answered 503.
	harness.Eventually(t, 30*time.Second, 200*time.Millisecond, "the webhook answers 503", func() bool {
		_, _ = f.client.AppsV1().Deployments("apps").Create(ctx, harness.Deployment("apps", fmt.Sprintf("probe-%d", time.Now().UnixNano()), 1, nil), metav1.CreateOptions{})
		return notReadyTotal(t, "mutate") > 0
	})
	if resp, err := http.Get("http://" + f.health + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("ready before the policy was read")
		}
	}

	// failurePolicy Ignore (the manifests'): the write goes through, unchecked.
	before := notReadyTotal(t, "mutate")
	d, err := f.client.AppsV1().Deployments("apps").Create(ctx, harness.Deployment("apps", "ignored", 50, nil), metav1.CreateOptions{})
	if err != nil || *d.Spec.Replicas != 50 {
		t.Fatalf("under Ignore before the policy is read: %v, %v; want the write stored unchecked (50)", d, err)
	}
	if got := notReadyTotal(t, "mutate") - before; got != 1 {
		t.Errorf("not-ready answers counted: %v, want 1", got)
	}

	// failurePolicy Fail: the same write is rejected, with the webhook's reason.
	editWebhooks(t, f.client, func(w *admissionregistrationv1.MutatingWebhook) {
		w.FailurePolicy = ptrs.To(admissionregistrationv1.Fail)
	})
	harness.Eventually(t, 15*time.Second, 200*time.Millisecond, "under Fail the write is rejected", func() (bool, string) {
		_, err := f.client.AppsV1().Deployments("apps").Create(ctx, harness.Deployment("apps", fmt.Sprintf("failed-%d", time.Now().UnixNano()), 50, nil), metav1.CreateOptions{})
		if err == nil {
			return false, "created"
		}
		return strings.Contains(err.Error(), `failed calling webhook "mutate.replicapolicy.io"`) && strings.Contains(err.Error(), "the server is currently unable to handle the request"), err.Error()
	})

	// Once the policy can be read, the webhook decides: clamped.
	if _, err := f.client.RbacV1().Roles(policy.DefaultNamespace).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: policy.DefaultNamespace},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{policy.DefaultConfigMapName}, Verbs: []string{"get", "list", "watch"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.RbacV1().RoleBindings(policy.DefaultNamespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: policy.DefaultNamespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitReady(t)
	d, err = f.client.AppsV1().Deployments("apps").Create(ctx, harness.Deployment("apps", "decided", 50, nil), metav1.CreateOptions{})
	if err != nil || *d.Spec.Replicas != 10 {
		t.Fatalf("after the policy was read: %v, %v; want clamped to 10", d, err)
	}
}
