package nativesync

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
)

// TestTerminatingPoliciesStayEnforced: what Finalizer relies on, against kube-apiserver. A
// deleted MutatingAdmissionPolicy, ValidatingAdmissionPolicy and their bindings that still
// carry the finalizer are still enforced (a /scale write outside the bounds clamped or
// denied) well after the deletion; once release has taken the finalizer away they are gone
// and enforce nothing.
func TestTerminatingPoliciesStayEnforced(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver")
	}
	cp := harness.StartControlPlane(t, harness.ControlPlaneOptions{})
	ctx := context.Background()
	c := cp.Client
	for _, ns := range []string{"prod", "strict"} {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AppsV1().Deployments(ns).Create(ctx, harness.Deployment(ns, "app", 2, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s := New(c, policystore.NewStore(policy.Options{}), func() bool { return true }, Options{Kinds: policy.BuiltinWorkloadKinds, Prober: &fakeProber{}}, logr.Discard())
	_, want, err := s.wanted(load(t, "rules:\n- {name: cap, namespaces: [prod], maxReplicas: 5}\n- {name: strict, namespaces: [strict], maxReplicas: 3, action: deny}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range want {
		if err := o.apply(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// enforced reports whether a dry-run scale to 50 is clamped in prod and denied in strict.
	enforced := func() (clamped, denied bool) {
		scale := func(ns string) (*autoscalingv1.Scale, error) {
			return c.AppsV1().Deployments(ns).UpdateScale(ctx, "app", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
				Spec: autoscalingv1.ScaleSpec{Replicas: 50}}, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		}
		got, err := scale("prod")
		clamped = err == nil && got.Spec.Replicas == 5
		_, err = scale("strict")
		return clamped, err != nil && strings.Contains(err.Error(), "'replica-policy-deny'")
	}
	harness.Eventually(t, 10*time.Second, 50*time.Millisecond, "the native policies enforced", func() (bool, string) {
		clamped, denied := enforced()
		return clamped && denied, ""
	})
	for _, o := range want {
		if err := o.res.del(ctx, s, o.name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Well past the moment the API server's informers have seen the deletions.
	for i := 0; i < 3; i++ {
		time.Sleep(time.Second)
		if clamped, denied := enforced(); !clamped || !denied {
			t.Fatalf("%d s after the deletion, the objects held by %s are not enforced: clamped %t, denied %t", i+1, Finalizer, clamped, denied)
		}
	}
	for _, o := range want {
		o.terminating = true
		if err := o.remove(ctx, s); err != nil {
			t.Fatal(err)
		}
		if _, err := o.res.get(ctx, s, o.name); err == nil {
			t.Errorf("%s still exists after its release", o)
		}
	}
	harness.Eventually(t, 10*time.Second, 50*time.Millisecond, "the released policies no longer enforced", func() (bool, string) {
		clamped, denied := enforced()
		return !clamped && !denied, ""
	})
}
