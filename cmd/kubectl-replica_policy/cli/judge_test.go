package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// autoscalerPolicy bounds web Deployments in prod by a selector (clamp), everything in
// strict by namespace alone (deny), StatefulSets in loose by kind (warn, allowZero), and
// has no default.
const autoscalerPolicy = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
exemptNamespaces: [free]
rules:
- name: prod-web
  namespaces: [prod]
  selector: {matchLabels: {app: web}}
  minReplicas: 2
  maxReplicas: 10
- name: strict
  namespaces: [strict]
  minReplicas: 3
  maxReplicas: 7
  action: deny
- name: loose
  namespaces: [loose]
  kinds: [StatefulSet]
  minReplicas: 2
  maxReplicas: 4
  allowZero: true
  action: warn
`

// TestJudgeAutoscaler: the results of an HPA, in table form. Its target's labels come from
// the input's workloads (Workloads.Resolve); one result per end of its range outside the
// bounds, else one, on spec.maxReplicas.
func TestJudgeAutoscaler(t *testing.T) {
	snap, err := policy.Load([]byte(autoscalerPolicy), policy.Options{AlwaysExempt: []string{policy.DefaultNamespace}})
	if err != nil {
		t.Fatal(err)
	}
	// The input's workloads.
	workloads := Workloads{}
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod, labels: {app: web}}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other, namespace: prod, labels: {app: other}}\n",
		"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: queue, namespace: loose}\n",
		"apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web-1, namespace: prod, labels: {app: web}, ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: u, controller: true}]}\n",
	} {
		objs, err := decodeManifest("input", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		wt, ok, err := NewTarget(objs[0].Unstructured, objs[0].Source, "default", Namespaces{})
		if err != nil || !ok {
			t.Fatalf("%v %v", ok, err)
		}
		workloads.Add(wt)
	}
	hpa := func(ns, kind, target, rng string) string {
		apiVersion := "apps/v1"
		if kind == "ReplicationController" {
			apiVersion = "v1"
		}
		return "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h, namespace: " + ns + "}\n" +
			"spec:\n  scaleTargetRef: {apiVersion: " + apiVersion + ", kind: " + kind + ", name: " + target + "}\n" + rng
	}
	type result struct {
		field  string
		value  int32
		result Result
		msg    string // a substring of the message
	}
	for _, tc := range []struct {
		name, doc string
		want      []result
	}{
		{"inside: one pass on maxReplicas", hpa("prod", "Deployment", "web", "  minReplicas: 2\n  maxReplicas: 10\n"),
			[]result{{"spec.maxReplicas", 10, Pass, `HorizontalPodAutoscaler range [2, 10] is within [2, 10] (replica policy rule "prod-web")`}}},
		{"max above: one clamp", hpa("prod", "Deployment", "web", "  minReplicas: 3\n  maxReplicas: 30\n"),
			[]result{{"spec.maxReplicas", 30, Clamp, `HorizontalPodAutoscaler "h": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod-web"`}}},
		{"minReplicas omitted is 1, both ends outside: a clamp each", hpa("prod", "Deployment", "web", "  maxReplicas: 30\n"),
			[]result{
				{"spec.minReplicas", 1, Clamp, `HorizontalPodAutoscaler "h": spec.minReplicas 1 clamped to 2 by replica policy rule "prod-web"`},
				{"spec.maxReplicas", 30, Clamp, `HorizontalPodAutoscaler "h": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod-web"`},
			}},
		{"the target's labels decide: another app, no rule", hpa("prod", "Deployment", "other", "  maxReplicas: 30\n"),
			[]result{{"spec.maxReplicas", 30, Skip, `no rule matches its target Deployment "other" and the policy has no default`}}},
		{"target not in the input: the selector rule cannot decide", hpa("prod", "Deployment", "ghost", "  maxReplicas: 30\n"),
			[]result{{"spec.maxReplicas", 30, Skip, `replica policy rule "prod-web" needs the labels of its target Deployment "ghost", which is not in the input: its labels are unknown`}}},
		{"target not in the input: a rule without a selector still decides", hpa("strict", "Deployment", "ghost", "  minReplicas: 1\n  maxReplicas: 30\n"),
			[]result{
				{"spec.minReplicas", 1, Deny, `HorizontalPodAutoscaler "h": spec.minReplicas: Invalid value: 1: must be within [3, 7] (replica policy rule "strict", action deny)`},
				{"spec.maxReplicas", 30, Deny, `HorizontalPodAutoscaler "h": spec.maxReplicas: Invalid value: 30: must be within [3, 7] (replica policy rule "strict", action deny)`},
			}},
		{"kinds honoured: a StatefulSet rule for a Deployment target", hpa("loose", "Deployment", "queue", "  maxReplicas: 30\n"),
			[]result{{"spec.maxReplicas", 30, Skip, "no rule matches"}}},
		{"warn, and allowZero permits minReplicas 0", hpa("loose", "StatefulSet", "queue", "  minReplicas: 0\n  maxReplicas: 9\n"),
			[]result{{"spec.maxReplicas", 9, Warn, `HorizontalPodAutoscaler "h": spec.maxReplicas: Invalid value: 9: must be within [2, 4] or 0 (replica policy rule "loose", action warn)`}}},
		{"a target that is owned by a bounded workload", hpa("prod", "ReplicaSet", "web-1", "  maxReplicas: 30\n"),
			[]result{{"spec.maxReplicas", 30, Skip, `its target ReplicaSet "web-1" is owned by Deployment "web", which the policy bounds instead`}}},
		{"a target of a kind that is not bounded", hpa("prod", "ReplicationController", "web", "  maxReplicas: 30\n"),
			[]result{{"spec.maxReplicas", 30, Skip, `its scaleTargetRef ReplicationController "web" (apiVersion "v1") is not a kind the policy bounds: no rule applies`}}},
		{"exempt namespace", hpa("free", "Deployment", "web", "  maxReplicas: 300\n"),
			[]result{{"spec.maxReplicas", 300, Skip, `namespace "free" is exempt`}}},
		{"minReplicas above maxReplicas: the API server's to reject", hpa("prod", "Deployment", "web", "  minReplicas: 8\n  maxReplicas: 4\n"),
			[]result{{"spec.maxReplicas", 4, Skip, "spec.minReplicas 8 is greater than spec.maxReplicas 4: the API server rejects it"}}},
		{"KEDA's under clamp: warned, not clamped", strings.Replace(hpa("prod", "Deployment", "web", "  minReplicas: 2\n  maxReplicas: 30\n"),
			"namespace: prod}", "namespace: prod, ownerReferences: [{apiVersion: keda.sh/v1alpha1, kind: ScaledObject, name: web, uid: u, controller: true}]}", 1),
			[]result{{"spec.maxReplicas", 30, Warn, `HorizontalPodAutoscaler "h": controlled by ScaledObject "web", which would write its range back, so it is not clamped: its range [2, 30] is outside the bounds [2, 10] of replica policy rule "prod-web"; its scale writes are clamped`}}},
		{"KEDA's under deny: denied as any other", strings.Replace(hpa("strict", "Deployment", "web", "  minReplicas: 3\n  maxReplicas: 30\n"),
			"namespace: strict}", "namespace: strict, ownerReferences: [{apiVersion: keda.sh/v1alpha1, kind: ScaledObject, name: web, uid: u, controller: true}]}", 1),
			[]result{{"spec.maxReplicas", 30, Deny, "spec.maxReplicas: Invalid value: 30"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := decodeManifest("input", []byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			target, ok, err := NewTarget(objs[0].Unstructured, objs[0].Source, "default", Namespaces{})
			if err != nil || !ok || target.Autoscaler == nil {
				t.Fatalf("NewTarget: %v %v %+v", ok, err, target)
			}
			workloads.Resolve(&target)
			var got []result
			for _, f := range Judge(snap, target) {
				got = append(got, result{f.Field, f.Value, f.Result, f.Message})
				if f.Kind() != policy.AutoscalerKind || f.Name() != "h" {
					t.Errorf("finding of %s %s, want HorizontalPodAutoscaler h", f.Kind(), f.Name())
				}
			}
			ok = len(got) == len(tc.want)
			for i := 0; ok && i < len(got); i++ {
				w := tc.want[i]
				ok = got[i].field == w.field && got[i].value == w.value && got[i].result == w.result && strings.Contains(got[i].msg, w.msg)
			}
			if !ok {
				t.Errorf("results\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestAutoscalerInputErrors: an HPA without what the API server requires is an error
// result named by file, line and field (exit 2, the other objects still judged); malformed
// YAML is bad input (exit 2, one line on stderr).
func TestAutoscalerInputErrors(t *testing.T) {
	const other = "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod, labels: {app: web}}\nspec: {replicas: 40}\n"
	for _, tc := range []struct{ name, doc, result string }{
		{"no scaleTargetRef", "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {maxReplicas: 3}\n",
			`stdin:1: HorizontalPodAutoscaler default/h: error: spec.scaleTargetRef: Required value: the workload it scales (the API server refuses the object, so it is not judged)`},
		{"no maxReplicas, no target name", "# an HPA\napiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment}\n",
			`stdin:2: HorizontalPodAutoscaler default/h: error: spec.scaleTargetRef.name: Required value; spec.maxReplicas: Required value (the API server refuses the object, so it is not judged)`},
		{"maxReplicas of the wrong type", "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, maxReplicas: many}\n",
			`stdin:1: HorizontalPodAutoscaler default/h: error: spec.maxReplicas: Invalid value: "many": must be a whole number, not a string (the API server refuses the object, so it is not judged)`},
		{"minReplicas negative", "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, minReplicas: -1, maxReplicas: 3}\n",
			`stdin:1: HorizontalPodAutoscaler default/h: error: spec.minReplicas: Invalid value: -1: must be greater than or equal to 0 (the API server refuses the object, so it is not judged)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := run(t, tc.doc+other, "check", "-p", "testdata/policy.yaml", "-f", "-")
			if code != ExitError || !strings.Contains(out, tc.result+"\n") || !strings.Contains(out, "Deployment prod/web: clamp:") ||
				stderr != "error: 1 object(s) that the API server would refuse: see the error results\n" {
				t.Errorf("check: exit %d, stdout %q, stderr %q; want 2, a line %q and the Deployment's clamp", code, out, stderr, tc.result)
			}
			code, out, stderr = run(t, tc.doc, "explain", "-p", "testdata/policy.yaml", "-f", "-")
			if code != ExitError || !strings.Contains(out, "  result: error: ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "the API server would refuse it") {
				t.Errorf("explain: exit %d, stdout %q, stderr %q; want 2, the error result, one line on stderr", code, out, stderr)
			}
		})
	}
	code, out, stderr := run(t, "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec:\n  maxReplicas: 3\n   minReplicas: 1\n", "check", "-p", "testdata/policy.yaml", "-f", "-")
	if want := "error: stdin:6: not valid YAML: mapping values are not allowed in this context"; code != ExitError || out != "" || !strings.HasPrefix(stderr, want) {
		t.Errorf("malformed YAML: exit %d, stdout %q, stderr %q; want 2, nothing, %q", code, out, stderr, want)
	}
}

// TestExplainAutoscaler: the rules for an HPA are evaluated with its target's kind and
// labels, and each result of check is a result line.
func TestExplainAutoscaler(t *testing.T) {
	input := `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: prod}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 30
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: ghost, namespace: prod}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: ghost}
  maxReplicas: 30
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod, labels: {app: web}}
`
	code, out, _ := run(t, input, "explain", "-p", "testdata/policy.yaml", "-f", "-")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	blocks := strings.Split(out, "\n\n")
	want := [][]string{{
		`stdin:1: HorizontalPodAutoscaler prod/web: range [1, 30], decided by the rules for its target Deployment "web" (its labels from the input)`,
		` →  1. prod-web   matches: namespaces prod, prod-*; selector app in (api,web)`,
		`    2. databases  no: selector tier=db does not match the labels of its target Deployment "web" {app=web}`,
		`    3. gold       cannot tell: namespaceSelector tier=gold needs the labels of namespace "prod", which the input lacks`,
		`    4. default    matches everything (not used: an earlier rule decides)`,
		`  decided by "prod-web": bounds [2, 10], action clamp`,
		`  result: clamp: HorizontalPodAutoscaler "web": spec.minReplicas 1 clamped to 2 by replica policy rule "prod-web"`,
		`  result: clamp: HorizontalPodAutoscaler "web": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod-web"`,
	}, {
		`stdin:8: HorizontalPodAutoscaler prod/ghost: range [1, 30], decided by the rules for its target Deployment "ghost" (not in the input: its labels are unknown)`,
		` →  1. prod-web   cannot tell: selector app in (api,web) needs the labels of its target Deployment "ghost", which the input lacks`,
	}}
	if len(blocks) != 3 {
		t.Fatalf("%d explanations, want 3 (two HPAs, a Deployment):\n%s", len(blocks), out)
	}
	for i, w := range want {
		lines := strings.Split(blocks[i], "\n")
		if len(lines) < len(w) || !slices.Equal(lines[:len(w)], w) {
			t.Errorf("explanation %d\n%s\nwant it to start with\n%s", i, blocks[i], strings.Join(w, "\n"))
		}
	}
}
