package native

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// TestLimits finds, against kube-apiserver, the limits Limits states: the largest policy of
// bigPolicy's shape that Compile accepts is stored, and every one of its rules is evaluated
// for a request (its default decides) within the runtime cost limits, under failurePolicy
// Fail, so that an evaluation error would fail the write; a compiled policy larger than
// etcd's request limit is refused. It takes a minute or two of two cores, so it runs only
// with REPLICA_POLICY_LIMITS=1.
func TestLimits(t *testing.T) {
	if os.Getenv("REPLICA_POLICY_LIMITS") == "" {
		t.Skip("set REPLICA_POLICY_LIMITS=1 to run it (a minute or two)")
	}
	load := func(n int) *policy.Snapshot {
		snap, err := policy.Load([]byte(bigPolicy(n)+"default: {maxReplicas: 2}\n"), policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	// The most rules Compile accepts.
	lo, hi := 1000, 8000
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if _, err := Compile(load(mid), policy.BuiltinWorkloadKinds, Options{}); err == nil {
			lo = mid
		} else {
			hi = mid
		}
	}
	res, err := Compile(load(lo), policy.BuiltinWorkloadKinds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Compile accepts up to %d rules: %d bytes, cost bound %d", lo, res.Size, res.Cost)

	cp := harness.StartControlPlane(t, harness.ControlPlaneOptions{})
	ctx := context.Background()
	ar := cp.Client.AdmissionregistrationV1()
	fail := admissionregistrationv1.Fail
	res.Clamp.Spec.FailurePolicy = &fail
	start := time.Now()
	if _, err := ar.MutatingAdmissionPolicies().Create(ctx, res.Clamp, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%d rules, %d bytes: %v", lo, res.Size, err)
	}
	t.Logf("created in %v", time.Since(start).Round(time.Millisecond))
	if _, err := ar.MutatingAdmissionPolicyBindings().Create(ctx, res.ClampBinding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The longest namespace name, matched by no rule: every candidate is evaluated, the
	// globs at their most expensive, and the default decides.
	ns := strings.Repeat("n", 63)
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"env": "prod"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web-x", "tier": strings.Repeat("t", 63)}
	var lastErr error
	harness.Eventually(t, 120*time.Second, 500*time.Millisecond, "the policy clamps", func() (bool, string) {
		d, err := cp.Client.AppsV1().Deployments(ns).Create(ctx, harness.Deployment(ns, "w", 5, labels), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			lastErr = err
			return false, err.Error()
		}
		return *d.Spec.Replicas == 2, "not clamped yet"
	})
	t.Logf("in force %v after its creation; last error before %v", time.Since(start).Round(time.Millisecond), lastErr)

	// Past the limit: about 2 MB of JSON.
	c := &compiler{snap: load(9000), kinds: policy.BuiltinWorkloadKinds, opts: Options{Name: "too-large", MayBeOwned: DefaultMayBeOwned}, skipLimits: true}
	c.readRules()
	big, err := c.compile()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ar.MutatingAdmissionPolicies().Create(ctx, big.Clamp, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "request is too large") {
		t.Fatalf("9,000 rules, %d bytes: %v, want etcd's refusal", big.Size, err)
	}
	t.Logf("9,000 rules, %d bytes: %v", big.Size, err)
}

// namespaceGlobPolicy is a policy of n rules, each naming a namespace and a glob, of the
// three actions in turn, and a default.
func namespaceGlobPolicy(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n")
	for i := range n {
		fmt.Fprintf(&b, "- {name: r%d, namespaces: [ns-%d, team%d-*], maxReplicas: %d, action: %s}\n", i, i, i, i%50+1, []string{"clamp", "deny", "warn"}[i%3])
	}
	return b.String() + "default: {maxReplicas: 20}\n"
}

// Every object Compile returns, bindings and autoscaler policies too, is one etcd can store
// (and so within the API server's 3 MiB request body): 6,000 rules that each name a
// namespace and a glob compile to objects under MaxObjectBytes; twice as many are refused,
// naming the limit; a binding past it is refused too.
func TestEveryObjectWithinLimits(t *testing.T) {
	snap, err := policy.Load([]byte(namespaceGlobPolicy(6000)), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Compile(snap, policy.BuiltinWorkloadKinds, Options{Autoscalers: true})
	if err != nil {
		t.Fatalf("6,000 rules: %v", err)
	}
	if len(res.AutoscalerObjects()) == 0 {
		t.Fatal("6,000 rules with Options.Autoscalers: no autoscaler policy to weigh")
	}
	total := 0
	for _, o := range append(res.Objects(), res.AutoscalerObjects()...) {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
		if len(b) > MaxObjectBytes {
			t.Errorf("%s: %d bytes, more than %d", o.GetObjectKind().GroupVersionKind().Kind, len(b), MaxObjectBytes)
		}
	}
	t.Logf("6,000 rules: %d objects, %d bytes in all, the largest policy %d", len(res.Objects())+len(res.AutoscalerObjects()), total, res.Size)

	snap, err = policy.Load([]byte(namespaceGlobPolicy(12000)), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var limit *LimitError
	if _, err := Compile(snap, policy.BuiltinWorkloadKinds, Options{Autoscalers: true}); !errors.As(err, &limit) || !strings.Contains(err.Error(), "1.5 MiB") {
		t.Errorf("12,000 rules: %v, want a LimitError naming etcd's 1.5 MiB", err)
	}

	c := compilerFor(snap, policy.BuiltinWorkloadKinds, Options{})
	names := make([]string, 40_000)
	for i := range names {
		names[i] = fmt.Sprintf("namespace-%040d", i)
	}
	big := &Result{}
	big.AutoscalerDeny, big.AutoscalerDenyBinding = c.validatingIn("x", "true", "''", autoscalerConstraints(), nil, nil, scope{out: names}.matchResources(), admissionregistrationv1.Deny)
	if err := c.checkLimits(big); !errors.As(err, &limit) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicyBinding x") {
		t.Errorf("a binding of %d namespaces: %v, want a LimitError naming it", len(names), err)
	}
}
