package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// check judges KEDA ScaledObjects as the webhook's /mutate does: their range, with KEDA's
// defaults (0, 100), by the rule of their scaleTargetRef (kind default Deployment).
func TestCheckScaledObjects(t *testing.T) {
	dir := t.TempDir()
	policyFile := filepath.Join(dir, "policy.yaml")
	manifests := filepath.Join(dir, "keda.yaml")
	harness.WriteFile(t, policyFile, `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: queues, namespaces: [prod], kinds: [StatefulSet], maxReplicas: 5, action: deny}
- {name: prod-web, namespaces: [prod], minReplicas: 2, maxReplicas: 10, allowZero: true}
- {name: batch, namespaces: [batch], minReplicas: 2, maxReplicas: 10}
`)
	keda := `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: defaults, namespace: prod}
spec:
  scaleTargetRef: {name: web}
  triggers: [{type: cron, metadata: {timezone: UTC, start: "0 8 * * *", end: "0 18 * * *", desiredReplicas: "5"}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: inside, namespace: prod}
spec:
  scaleTargetRef: {name: web}
  minReplicaCount: 0
  maxReplicaCount: 8
  triggers: [{type: cron, metadata: {timezone: UTC, start: "0 8 * * *", end: "0 18 * * *", desiredReplicas: "5"}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: queue, namespace: prod}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: q}
  maxReplicaCount: 30
  triggers: [{type: cron, metadata: {timezone: UTC, start: "0 8 * * *", end: "0 18 * * *", desiredReplicas: "5"}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: idle-zero, namespace: prod}
spec: {scaleTargetRef: {name: web}, idleReplicaCount: 0, minReplicaCount: 2, maxReplicaCount: 10}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: idle-moved, namespace: batch}
spec: {scaleTargetRef: {name: web}, idleReplicaCount: 0, minReplicaCount: 4, maxReplicaCount: 10}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: idle-removed, namespace: batch}
spec: {scaleTargetRef: {name: web}, idleReplicaCount: 0, minReplicaCount: 2, maxReplicaCount: 30}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: idle-not-below, namespace: batch}
spec: {scaleTargetRef: {name: web}, idleReplicaCount: 3, minReplicaCount: 3, maxReplicaCount: 10}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: idle-refused, namespace: batch}
spec: {scaleTargetRef: {name: web}, idleReplicaCount: -1, minReplicaCount: 3, maxReplicaCount: 10}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: broken, namespace: prod}
spec:
  scaleTargetRef: {kind: Deployment}
  maxReplicaCount: "many"
  triggers: []
`
	harness.WriteFile(t, manifests, keda)
	code, out, errOut := run(t, "", "check", "-p", policyFile, "-f", manifests, "-v")
	if code != 2 {
		t.Errorf("exit %d, want 2 (a refused ScaledObject)\n%s%s", code, out, errOut)
	}
	wantAll(t, "check output", out,
		`ScaledObject prod/defaults: clamp: ScaledObject "defaults": spec.maxReplicaCount 100 clamped to 10 by replica policy rule "prod-web"`,
		`ScaledObject prod/inside: pass`,
		`ScaledObject prod/queue: deny: ScaledObject "queue": spec.maxReplicaCount: Invalid value: 30: must be within [0, 5] (replica policy rule "queues", action deny)`,
		`ScaledObject prod/broken: error`,
		`spec.scaleTargetRef.name`,
		// spec.idleReplicaCount: 0 under allowZero passes; without it, it is moved to the
		// lower bound, or removed where that is not below the (moved) minReplicaCount.
		`ScaledObject prod/idle-zero: pass: ScaledObject range [2, 10], idle 0 is within [2, 10] or 0 (replica policy rule "prod-web")`,
		`ScaledObject batch/idle-moved: clamp: ScaledObject "idle-moved": spec.idleReplicaCount 0 clamped to 2 by replica policy rule "batch"`,
		`ScaledObject batch/idle-removed: clamp: ScaledObject "idle-removed": spec.maxReplicaCount 30 clamped to 10 by replica policy rule "batch"`,
		`ScaledObject batch/idle-removed: clamp: ScaledObject "idle-removed": spec.idleReplicaCount 0 removed by replica policy rule "batch": its nearest bound 2 is not below spec.minReplicaCount 2, as KEDA requires, so the ScaledObject idles at spec.minReplicaCount`,
		`ScaledObject batch/idle-not-below: skip: spec.idleReplicaCount 3 is not below spec.minReplicaCount 3: KEDA refuses it, the webhook does not judge it`,
		`ScaledObject batch/idle-refused: error: spec.idleReplicaCount: Invalid value: -1: must be greater than or equal to 0`,
	)
	// allowZero keeps KEDA's default minReplicaCount 0: only the maximum is clamped.
	if strings.Contains(out, "spec.minReplicaCount 0 clamped") {
		t.Errorf("minReplicaCount 0 clamped under allowZero:\n%s", out)
	}
	// SARIF puts a result at the line of the field it is about, as for a workload or an HPA.
	wantLine := 1 + strings.Count(keda[:strings.Index(keda, "  maxReplicaCount: 30")], "\n")
	_, sarif, errOut := run(t, "", "check", "-p", policyFile, "-f", manifests, "-o", "sarif")
	rows, _ := sarifResults(t, sarif)
	found := false
	for _, r := range rows {
		if strings.Contains(r.text, `ScaledObject "queue": spec.maxReplicaCount`) {
			found = true
			if !strings.HasSuffix(r.location, ":"+itoa(wantLine)) {
				t.Errorf("the queue ScaledObject's result is at %s, want line %d (its maxReplicaCount)", r.location, wantLine)
			}
		}
	}
	if !found {
		t.Errorf("no SARIF result for the queue ScaledObject's maxReplicaCount: %+v\n%s", rows, errOut)
	}
}

// explain shows, for a ScaledObject, the rules of its target (with the target's labels from
// the input), its range with its idleReplicaCount, and a result for each field outside.
func TestExplainScaledObjects(t *testing.T) {
	dir := t.TempDir()
	policyFile, manifests := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "keda.yaml")
	harness.WriteFile(t, policyFile, `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: web, namespaces: [prod], selector: {matchLabels: {app: web}}, minReplicas: 2, maxReplicas: 10, allowZero: true}
- {name: batch, namespaces: [prod], minReplicas: 2, maxReplicas: 10}
`)
	harness.WriteFile(t, manifests, `apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: prod, labels: {app: worker}}
spec: {replicas: 3}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: worker, namespace: prod}
spec: {scaleTargetRef: {name: worker}, idleReplicaCount: 0, minReplicaCount: 2, maxReplicaCount: 30}
`)
	code, out, errOut := run(t, "", "explain", "-p", policyFile, "-f", manifests)
	if code != ExitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	want := manifests + `:6: ScaledObject prod/worker: range [2, 30], idle 0, decided by the rules for its target Deployment "worker" (its labels from the input)
    1. web    no: selector app=web does not match the labels of its target Deployment "worker" {app=worker}
 →  2. batch  matches: namespaces prod
  decided by "batch": bounds [2, 10], action clamp
  result: clamp: ScaledObject "worker": spec.maxReplicaCount 30 clamped to 10 by replica policy rule "batch"
  result: clamp: ScaledObject "worker": spec.idleReplicaCount 0 removed by replica policy rule "batch": its nearest bound 2 is not below spec.minReplicaCount 2, as KEDA requires, so the ScaledObject idles at spec.minReplicaCount
`
	if !strings.HasSuffix(out, want) {
		t.Errorf("explain output\n%s\nwant it to end with\n%s", out, want)
	}
}

// audit lists and judges ScaledObjects where KEDA's CRD (v2.21.1, from the module proxy)
// is served, by their targets' stored labels; a user who may not list them is told so. (A
// cluster without KEDA is TestAudit's: there audit lists no ScaledObject and needs no
// right on them.)
func TestAuditScaledObjects(t *testing.T) {
	crd, err := harness.KEDAScaledObjectCRD()
	if err != nil {
		t.Fatal(err)
	}
	cp := harness.StartControlPlane(t, harness.ControlPlaneOptions{CRDPaths: []string{crd}})
	ctx := context.Background()
	cs := cp.Client
	for _, ns := range []string{policy.DefaultNamespace, "prod", "audit"} {
		mustDo(t, func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		})
	}
	mustDo(t, func() error {
		return harness.SetPolicy(ctx, cs, `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: web, namespaces: [prod], selector: {matchLabels: {app: web}}, minReplicas: 2, maxReplicas: 10, allowZero: true}
- {name: batch, namespaces: [prod], minReplicas: 2, maxReplicas: 10}
`)
	})
	for name, app := range map[string]string{"web": "web", "worker": "worker"} {
		mustDo(t, func() error {
			_, err := cs.AppsV1().Deployments("prod").Create(ctx, harness.Deployment("prod", name, 3, map[string]string{"app": app}), metav1.CreateOptions{})
			return err
		})
	}
	sos := dynamic.NewForConfigOrDie(cp.Config).Resource(scaledObjectResource).Namespace("prod")
	for name, spec := range map[string]map[string]any{
		"web":    {"scaleTargetRef": map[string]any{"name": "web"}, "idleReplicaCount": int64(0), "minReplicaCount": int64(2), "maxReplicaCount": int64(10)},
		"worker": {"scaleTargetRef": map[string]any{"name": "worker"}, "idleReplicaCount": int64(0), "minReplicaCount": int64(2), "maxReplicaCount": int64(30)},
		"wide":   {"scaleTargetRef": map[string]any{"name": "worker"}},
	} {
		spec["triggers"] = []any{map[string]any{"type": "cron", "metadata": map[string]any{"timezone": "UTC", "start": "0 8 * * *", "end": "0 18 * * *", "desiredReplicas": "5"}}}
		mustDo(t, func() error {
			_, err := sos.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
				"metadata": map[string]any{"name": name, "namespace": "prod"}, "spec": spec}}, metav1.CreateOptions{})
			return err
		})
	}
	dir := t.TempDir()
	admin := filepath.Join(dir, "admin")
	if err := cp.AdminKubeconfig(admin); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "audit", "--kubeconfig", admin, "-o", "json")
	if code != ExitFound || errOut != "" {
		t.Fatalf("exit %d, stderr %q; want 1 (clamps)", code, errOut)
	}
	got := auditResults(t, out)
	for k, w := range map[string]string{
		// web's idle 0 is allowed by its rule's allowZero (the target's stored labels).
		"ScaledObject prod/web spec.maxReplicaCount": "pass:web:10",
		// worker's rule has no allowZero: idle 0 would be 2, not below minReplicaCount 2.
		"ScaledObject prod/worker spec.maxReplicaCount":  "clamp:batch:10",
		"ScaledObject prod/worker spec.idleReplicaCount": "clamp:batch:2",
		// KEDA's defaults [0, 100].
		"ScaledObject prod/wide spec.minReplicaCount": "clamp:batch:2",
		"ScaledObject prod/wide spec.maxReplicaCount": "clamp:batch:10",
	} {
		if got[k] != w {
			t.Errorf("%s: %q, want %q (all: %v)", k, got[k], w, got)
		}
	}

	getList := []string{"get", "list"}
	noKEDA := serviceAccountKubeconfig(t, cp, dir, "no-keda", getList, getList, true)
	want := `error: cannot list scaledobjects.keda.sh at the cluster scope: forbidden for system:serviceaccount:audit:no-keda`
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "the refusal", func() (bool, string) {
		code, _, errOut = run(t, "", "audit", "--kubeconfig", noKEDA)
		return code == ExitError && strings.HasPrefix(errOut, want), errOut
	})
}

// check's verdict on a ScaledObject is the webhook's: for a grid of ranges and idle sizes
// under a clamp, a deny and a warn rule (with and without allowZero), the result of check
// matches what kube-apiserver, with the keda component and KEDA's CRD, does with the
// ScaledObject's CREATE: stored as asked (pass, skip), patched to check's wants with its
// warnings (clamp; a removed idleReplicaCount included), denied with its message (deny), or
// warned (warn).
func TestScaledObjectEquivalence(t *testing.T) {
	crd, err := harness.KEDAScaledObjectCRD()
	if err != nil {
		t.Fatal(err)
	}
	cp := startWebhookOn(t, harness.ControlPlaneOptions{
		WebhookPaths: []string{harness.ComponentManifests(t, "keda", "keda.yaml", nil)}, CRDPaths: []string{crd}})
	ctx := context.Background()
	const doc = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: zero, namespaces: [clamp], selector: {matchLabels: {app: zero}}, minReplicas: 2, maxReplicas: 10, allowZero: true}
- {name: clamp, namespaces: [clamp], minReplicas: 2, maxReplicas: 10}
- {name: deny, namespaces: [deny], minReplicas: 2, maxReplicas: 10, action: deny}
- {name: warn, namespaces: [warn], minReplicas: 2, maxReplicas: 10, action: warn}
`
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	harness.WriteFile(t, policyFile, doc)
	mustDo(t, func() error { return harness.SetPolicy(ctx, cp.Client, doc) })
	var input strings.Builder
	for _, ns := range []string{"clamp", "deny", "warn"} {
		mustDo(t, func() error {
			_, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		})
		for _, app := range []string{"zero", "plain"} {
			mustDo(t, func() error {
				_, err := cp.Client.AppsV1().Deployments(ns).Create(ctx, harness.Deployment(ns, app, 3, map[string]string{"app": app}), metav1.CreateOptions{})
				return err
			})
			fmt.Fprintf(&input, "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %s, namespace: %s, labels: {app: %s}}\nspec: {replicas: 3}\n", app, ns, app)
		}
	}
	cfg := rest.CopyConfig(cp.Config)
	cfg.WarningHandlerWithContext = harness.ContextWarnings{}
	sos := dynamic.NewForConfigOrDie(cfg).Resource(scaledObjectResource)
	type asked struct {
		ns, name, target string
		spec             map[string]any
	}
	var all []asked
	for _, ns := range []string{"clamp", "deny", "warn"} {
		for _, target := range []string{"zero", "plain"} {
			for _, idle := range []int64{-1, 0, 1, 3} { // -1: unset
				for _, lo := range []int64{-1, 1, 2, 4} { // -1: unset (KEDA's 0)
					for _, hi := range []int64{5, 30} {
						spec := map[string]any{"scaleTargetRef": map[string]any{"name": target}, "maxReplicaCount": hi,
							"triggers": []any{map[string]any{"type": "cron", "metadata": map[string]any{"timezone": "UTC", "start": "0 8 * * *", "end": "0 18 * * *", "desiredReplicas": "5"}}}}
						if idle >= 0 {
							spec["idleReplicaCount"] = idle
						}
						if lo >= 0 {
							spec["minReplicaCount"] = lo
						}
						name := fmt.Sprintf("%s-i%d-m%d-x%d", target, idle, lo, hi)
						all = append(all, asked{ns, name, target, spec})
						b, _ := json.Marshal(map[string]any{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
							"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec})
						fmt.Fprintf(&input, "---\n%s\n", b)
					}
				}
			}
		}
	}
	// The policy is in force once the webhook denies in namespace deny.
	harness.Eventually(t, 15*time.Second, 50*time.Millisecond, "the policy in force", func() bool {
		_, err := sos.Namespace("deny").Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
			"metadata": map[string]any{"name": "probe", "namespace": "deny"}, "spec": map[string]any{"scaleTargetRef": map[string]any{"name": "plain"}, "triggers": all[0].spec["triggers"]}}},
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), `"deny"`)
	})

	code, out, errOut := run(t, input.String(), "check", "-p", policyFile, "-f", "-", "-o", "json")
	if code == ExitError {
		t.Fatalf("check: exit 2: %s", errOut)
	}
	var rep struct {
		Results []struct {
			Kind, Namespace, Name, Field string
			Want                         *int32
			Result                       Result
			Message                      string
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	counts, removals := map[Result]int{}, 0
	for _, a := range all {
		var results []Result
		var messages []string
		wants := map[string]int32{}
		for _, r := range rep.Results {
			if r.Kind == policy.ScaledObjectKind && r.Namespace == a.ns && r.Name == a.name {
				results, messages = append(results, r.Result), append(messages, r.Message)
				if r.Want != nil {
					wants[r.Field] = *r.Want
				}
			}
		}
		wctx, warnings := harness.WithWarnings(ctx)
		stored, err := sos.Namespace(a.ns).Create(wctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
			"metadata": map[string]any{"name": a.name, "namespace": a.ns}, "spec": a.spec}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		ws := warnings.Take()
		where := fmt.Sprintf("%s/%s %v", a.ns, a.name, a.spec)
		if len(results) == 0 {
			t.Errorf("%s: no result from check", where)
			continue
		}
		result := results[0]
		for _, r := range results[1:] {
			if r != result {
				t.Errorf("%s: check gives mixed results %v", where, results)
			}
		}
		counts[result]++
		switch {
		case err != nil:
			if result != Deny || !strings.HasSuffix(err.Error(), "denied the request: "+strings.Join(messages, "; ")) {
				t.Errorf("%s: the API server refuses it (%v); check says %v: %q", where, err, results, messages)
			}
		case result == Clamp:
			if !slices.Equal(ws, messages) {
				t.Errorf("%s: warnings %q; check says %q", where, ws, messages)
			}
			for field, want := range wants {
				path := strings.Split(field, ".")
				got, found, _ := unstructured.NestedInt64(stored.Object, path...)
				removed := slices.ContainsFunc(messages, func(m string) bool { return strings.Contains(m, ": "+field+" ") && strings.Contains(m, " removed by ") })
				switch {
				case removed:
					removals++
					if found {
						t.Errorf("%s: stored %s %d; check says it is removed", where, field, got)
					}
				case !found || got != int64(want):
					t.Errorf("%s: stored %s %d (set %t); check wants %d", where, field, got, found, want)
				}
			}
		case result == Warn:
			if len(ws) != 1 || ws[0] != strings.Join(messages, "; ") {
				t.Errorf("%s: warnings %q; check says %q", where, ws, messages)
			}
		default:
			if (result != Pass && result != Skip) || len(ws) != 0 || !equalSpecs(stored.Object["spec"], a.spec) {
				t.Errorf("%s: stored %v with warnings %q; check says %v: %q", where, stored.Object["spec"], ws, results, messages)
			}
		}
	}
	for _, r := range []Result{Pass, Clamp, Deny, Warn, Skip} {
		if counts[r] == 0 {
			t.Errorf("no %s among %d ScaledObjects: the grid does not cover it", r, len(all))
		}
	}
	if removals == 0 {
		t.Error("no clamp removes idleReplicaCount: the grid does not cover it")
	}
	t.Logf("answers: %v, idleReplicaCount removed %d times", counts, removals)
}

// equalSpecs compares the range fields of a stored spec with the asked one.
func equalSpecs(stored any, asked map[string]any) bool {
	s, _ := stored.(map[string]any)
	for _, f := range []string{"minReplicaCount", "maxReplicaCount", "idleReplicaCount"} {
		if fmt.Sprint(s[f]) != fmt.Sprint(asked[f]) {
			return false
		}
	}
	return true
}
