package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// deployment is a Deployment manifest in namespace prod, labelled app=web (rule prod-web
// of testdata/policy.yaml: [2, 10], clamp), with spec.replicas given as replicas, verbatim
// ("" omits it).
func deployment(name, replicas string) string {
	doc := "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: " + name + ", namespace: prod, labels: {app: web}}\nspec:\n  selector: {matchLabels: {app: web}}\n"
	if replicas != "" {
		doc += "  replicas: " + replicas + "\n"
	}
	return doc
}

type gateResult struct {
	File    string
	Line    int
	Name    string
	Field   string
	Result  Result
	Message string
}

func checkJSON(t *testing.T, stdin string, args ...string) (int, []gateResult, string) {
	t.Helper()
	code, out, stderr := run(t, stdin, append([]string{"check", "-p", "testdata/policy.yaml", "-o", "json"}, args...)...)
	var rep struct{ Results []gateResult }
	if out != "" {
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
	}
	return code, rep.Results, stderr
}

// TestRefusedObjects: an object the API server would refuse is an error result naming the
// file, the line and the field, never judged with a value the API server would never store
// (99999999999 wrapped to 1215752191, "5" stopping the whole run); the other objects are
// still judged; the exit is 2.
func TestRefusedObjects(t *testing.T) {
	input := deployment("too-big", "99999999999") + deployment("quoted", `"5"`) + deployment("fraction", "1.5") +
		deployment("negative", "-1") + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {namespace: prod}\nspec: {replicas: 3}\n" +
		deployment("fine", "40")
	code, results, stderr := checkJSON(t, input, "-f", "-")
	if code != ExitError || stderr != "error: 5 object(s) that the API server would refuse: see the error results\n" {
		t.Errorf("exit %d, stderr %q; want 2 and the count of error results", code, stderr)
	}
	want := []gateResult{
		{"stdin", 2, "too-big", "spec.replicas", Error, `spec.replicas: Invalid value: 99999999999: must be at most 2147483647 (a 32-bit integer) (the API server refuses the object, so it is not judged)`},
		{"stdin", 9, "quoted", "spec.replicas", Error, `spec.replicas: Invalid value: "5": must be a whole number, not a string (the API server refuses the object, so it is not judged)`},
		{"stdin", 16, "fraction", "spec.replicas", Error, `spec.replicas: Invalid value: 1.5: must be a whole number (the API server refuses the object, so it is not judged)`},
		{"stdin", 23, "negative", "spec.replicas", Error, `spec.replicas: Invalid value: -1: must be greater than or equal to 0 (the API server refuses the object, so it is not judged)`},
		{"stdin", 30, "", "metadata.name", Error, `metadata.name: Required value: every object needs a name or a generateName (the API server refuses the object, so it is not judged)`},
		{"stdin", 35, "fine", "spec.replicas", Clamp, `Deployment "fine": spec.replicas 40 clamped to 10 by replica policy rule "prod-web"`},
	}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(results), len(want), results)
	}
	for i := range want {
		if results[i] != want[i] {
			t.Errorf("result %d:\n got %+v\nwant %+v", i, results[i], want[i])
		}
	}
	// Text names the file, the line and the field too.
	_, out, _ := run(t, input, "check", "-p", "testdata/policy.yaml", "-f", "-")
	if want := "stdin:2: Deployment prod/too-big: error: spec.replicas: Invalid value: 99999999999:"; !strings.Contains(out, want) {
		t.Errorf("text output lacks %q:\n%s", want, out)
	}
}

// TestEmptyInput: input with no object at all never passes: an empty file, a folder without
// manifests, an empty stdin (a failed `kustomize build | check -f -` without pipefail).
func TestEmptyInput(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	comments := filepath.Join(dir, "comments.yaml")
	folder := filepath.Join(dir, "folder")
	for path, data := range map[string]string{empty: "", comments: "# nothing yet\n---\n", filepath.Join(folder, "README.md"): "# not a manifest\n", filepath.Join(folder, "values.yaml"): "replicas: 3\n"} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		harness.WriteFile(t, path, data)
	}
	for _, tc := range []struct {
		name, stdin, path, reason string
	}{
		{"empty stdin", "", "-", "-f -: stdin holds no Kubernetes object"},
		{"stdin of comments", "# kustomize failed\n", "-", "-f -: stdin holds no Kubernetes object"},
		{"empty file", "", empty, "the file holds no Kubernetes object"},
		{"comments only", "", comments, "the file holds no Kubernetes object"},
		{"folder without manifests", "", folder, "the folder (its .yaml, .yml, .json files) holds no Kubernetes object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, sub := range []string{"check", "explain"} {
				code, out, stderr := run(t, tc.stdin, sub, "-p", "testdata/policy.yaml", "-f", tc.path)
				if code != ExitError || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.reason) {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2, nothing, one line with %q", sub, code, out, stderr, tc.reason)
				}
			}
		})
	}
	// One empty input among others is enough to fail: its build may have failed.
	code, _, stderr := run(t, "", "check", "-p", "testdata/policy.yaml", "-f", "testdata/manifests", "-f", "-")
	if code != ExitError || !strings.Contains(stderr, "stdin holds no Kubernetes object") {
		t.Errorf("manifests and an empty stdin: exit %d, stderr %q; want 2", code, stderr)
	}
}

// TestFailOnSkip: --fail-on skip fails on anything left unjudged, and on everything above.
func TestFailOnSkip(t *testing.T) {
	exempt := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: dns, namespace: kube-system}\nspec: {replicas: 2}\n"
	for _, tc := range []struct {
		failOn string
		code   int
	}{{"skip", ExitFound}, {"warn", ExitOK}, {"clamp", ExitOK}} {
		code, out, stderr := run(t, exempt, "check", "-p", "testdata/policy.yaml", "-f", "-", "--fail-on", tc.failOn)
		if code != tc.code || stderr != "" {
			t.Errorf("--fail-on %s: exit %d, stderr %q; want %d\n%s", tc.failOn, code, stderr, tc.code, out)
		}
	}
	if code, _, _ := run(t, deployment("web", "40"), "check", "-p", "testdata/policy.yaml", "-f", "-", "--fail-on", "skip"); code != ExitFound {
		t.Errorf("--fail-on skip with a clamp: exit %d, want 1", code)
	}
}

// TestNamespaceLabels: a namespaceSelector rule without the Namespace in the input says how
// to give its labels; --namespace-labels gives them, as Namespace objects or a mapping.
func TestNamespaceLabels(t *testing.T) {
	dir := t.TempDir()
	gold := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: pay, namespace: payments}\nspec: {replicas: 6}\n"
	_, results, _ := checkJSON(t, gold, "-f", "-")
	if want := `replica policy rule "gold" needs the labels of namespace "payments", which the input lacks: add its Namespace object to the input, give its labels with --namespace-labels FILE, or read them with --namespaces-from-cluster`; len(results) != 1 || results[0].Message != want {
		t.Errorf("results %+v, want a skip saying %q", results, want)
	}
	for name, data := range map[string]string{
		"mapping.yaml":    "payments: {tier: gold}\nother: {}\n",
		"namespaces.yaml": "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: payments, labels: {tier: gold}}\n",
	} {
		path := filepath.Join(dir, name)
		harness.WriteFile(t, path, data)
		code, results, stderr := checkJSON(t, gold, "-f", "-", "--namespace-labels", path)
		if code != ExitOK || stderr != "" || len(results) != 1 || results[0].Result != Warn {
			t.Errorf("%s: exit %d, stderr %q, results %+v; want the gold rule's warn", name, code, stderr, results)
		}
	}
	for name, data := range map[string]string{
		"service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
		"scalar.yaml":  "prod\n",
		"empty.yaml":   "",
	} {
		path := filepath.Join(dir, name)
		harness.WriteFile(t, path, data)
		code, _, stderr := run(t, gold, "check", "-p", "testdata/policy.yaml", "-f", "-", "--namespace-labels", path)
		if code != ExitError || !strings.Contains(stderr, "--namespace-labels "+path+": ") {
			t.Errorf("%s: exit %d, stderr %q; want 2 naming the flag", name, code, stderr)
		}
	}
}

// TestServedAPIVersions: only what the API server serves is judged; an object of a removed
// apiVersion, or one that never existed, is a skip that says so, and is not judged as if
// it were apps/v1 (nor silently ignored).
func TestServedAPIVersions(t *testing.T) {
	input := strings.ReplaceAll(deployment("v1beta2", "40"), "apps/v1", "apps/v1beta2") +
		strings.ReplaceAll(deployment("v2", "40"), "apps/v1", "apps/v2") +
		strings.ReplaceAll(deployment("ext", "40"), "apps/v1", "extensions/v1beta1") +
		"---\napiVersion: autoscaling/v2beta2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h, namespace: prod}\nspec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, maxReplicas: 30}\n" +
		deployment("served", "40")
	code, results, _ := checkJSON(t, input, "-f", "-")
	if code != ExitFound || len(results) != 5 {
		t.Fatalf("exit %d, results %+v; want 1 (the served Deployment's clamp) and 5 results", code, results)
	}
	for i, want := range []string{
		`apiVersion "apps/v1beta2" is not served by the API server (it serves Deployment as apps/v1): kubectl apply refuses it, so it is not judged`,
		`apiVersion "apps/v2" is not served by the API server (it serves Deployment as apps/v1)`,
		`apiVersion "extensions/v1beta1" is not served by the API server (it serves Deployment as apps/v1)`,
		`apiVersion "autoscaling/v2beta2" is not served by the API server (it serves HorizontalPodAutoscaler as autoscaling/v2)`,
	} {
		if results[i].Result != Skip || !strings.HasPrefix(results[i].Message, want) {
			t.Errorf("result %d: %s %q, want a skip starting %q", i, results[i].Result, results[i].Message, want)
		}
	}
	if results[4].Result != Clamp {
		t.Errorf("the apps/v1 Deployment: %+v, want a clamp", results[4])
	}
}

// TestOmittedReplicas: a workload without spec.replicas is judged at 1, and the result says
// that 1 is the API server's default, not a value in the file.
func TestOmittedReplicas(t *testing.T) {
	_, results, _ := checkJSON(t, deployment("web", ""), "-f", "-")
	want := `Deployment "web": spec.replicas 1 clamped to 2 by replica policy rule "prod-web" (spec.replicas is omitted: 1 is the API server's default)`
	if len(results) != 1 || results[0].Message != want {
		t.Errorf("results %+v, want the message %q", results, want)
	}
	_, out, _ := run(t, deployment("web", ""), "explain", "-p", "testdata/policy.yaml", "-f", "-")
	if want := "stdin:2: Deployment prod/web: spec.replicas omitted: 1, the API server's default\n"; !strings.HasPrefix(out, want) {
		t.Errorf("explain:\n%s\nwant it to start %q", out, want)
	}
}

// TestVerbose: text output hides pass results unless -v.
func TestVerbose(t *testing.T) {
	in := deployment("ok", "5") + deployment("big", "40")
	passLine := "stdin:2: Deployment prod/ok: pass: spec.replicas 5 is within [2, 10] (replica policy rule \"prod-web\")\n"
	_, out, _ := run(t, in, "check", "-p", "testdata/policy.yaml", "-f", "-")
	if strings.Contains(out, "pass: spec.replicas") {
		t.Errorf("a pass result without -v:\n%s", out)
	}
	for _, flag := range []string{"-v", "--verbose"} {
		_, out, _ = run(t, in, "check", "-p", "testdata/policy.yaml", "-f", "-", flag)
		if !strings.HasPrefix(out, passLine) || !strings.Contains(out, "Deployment prod/big: clamp:") {
			t.Errorf("%s:\n%s\nwant it to start with %q, then the clamp", flag, out, passLine)
		}
	}
}

// TestExplainNothing: explain on input without a bounded object exits 0 but says so.
func TestExplainNothing(t *testing.T) {
	code, out, stderr := run(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", "explain", "-p", "testdata/policy.yaml", "-f", "-")
	if want := "note: the input holds no Deployment, StatefulSet, ReplicaSet, HorizontalPodAutoscaler or ScaledObject: nothing to explain\n"; code != ExitOK || out != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0, nothing, %q", code, out, stderr, want)
	}
}

// TestValidateTooLarge: a policy that no ConfigMap can hold is invalid with that reason,
// as a policy document and as a ConfigMap manifest, and is refused before it is parsed.
func TestValidateTooLarge(t *testing.T) {
	dir := t.TempDir()
	var rules strings.Builder
	for i := 0; rules.Len() < 2<<20; i++ {
		fmt.Fprintf(&rules, "- {name: r%d, namespaces: [ns-%d], maxReplicas: 3}\n", i, i)
	}
	doc := "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n" + rules.String()
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: replica-policy, namespace: replica-policy-system}\ndata:\n  policy.yaml: |\n    " +
		strings.ReplaceAll(strings.TrimSuffix(doc, "\n"), "\n", "\n    ") + "\n"
	for name, data := range map[string]string{"policy.yaml": doc, "configmap.yaml": cm} {
		path := filepath.Join(dir, name)
		harness.WriteFile(t, path, data)
		code, out, _ := run(t, "", "validate", path)
		if code != ExitFound || strings.Count(out, "\n") != 1 || !strings.Contains(out, "a ConfigMap holds at most 1 MiB (1048576 bytes) of data") {
			t.Errorf("%s: exit %d, output %q; want 1 and one line naming the 1 MiB limit", name, code, out)
		}
		code, _, stderr := run(t, "", "check", "-p", path, "-f", "testdata/manifests")
		if code != ExitError || !strings.Contains(stderr, "1 MiB") {
			t.Errorf("check -p %s: exit %d, stderr %q; want 2 naming the limit", name, code, stderr)
		}
	}
}

// TestValidateFlags: validate takes -f as kubectl does, and -o json lists every error with
// its field, type and detail.
func TestValidateFlags(t *testing.T) {
	code, out, _ := run(t, "", "validate", "-f", "testdata/bad/invalid-policy.yaml", "-f", "testdata/policy.yaml", "-o", "json")
	var doc struct {
		Files []struct {
			File   string
			Valid  bool
			Errors []struct{ Field, Type, Detail, Message string }
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if code != ExitFound || len(doc.Files) != 2 || doc.Files[0].Valid || !doc.Files[1].Valid || len(doc.Files[1].Errors) != 0 {
		t.Fatalf("exit %d, %+v; want 1, the first file invalid, the second valid", code, doc)
	}
	e := doc.Files[0].Errors
	if len(e) != 2 || e[0].Field != "rules[0].maxReplica" || e[0].Type != "FieldValueForbidden" ||
		e[1].Message != "rules[0].maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (5)" {
		t.Errorf("errors %+v", e)
	}
	// -f and arguments together, stdin by -f -.
	code, out, _ = run(t, readTestdata(t, "policy.yaml"), "validate", "testdata/policy-configmap.yaml", "-f", "-")
	if code != ExitOK || out != "stdin: valid\ntestdata/policy-configmap.yaml: valid\n" {
		t.Errorf("exit %d, output %q", code, out)
	}
	if code, _, stderr := run(t, "", "validate", "-f", "testdata/policy.yaml", "-o", "yaml"); code != ExitError || !strings.Contains(stderr, `--output "yaml"`) {
		t.Errorf("-o yaml: exit %d, stderr %q", code, stderr)
	}
}

// TestFieldLines: the line of each replica field, read from a block-style document's lines
// or, for any other, from its parse: the two agree.
func TestFieldLines(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want fieldLineSet
	}{
		{"apiVersion: apps/v1\nkind: Deployment\nspec:\n  selector: {}\n  replicas: 3 # three\n  template:\n    spec:\n      replicas: 9\nstatus:\n  replicas: 1\n", fieldLineSet{5, 0, 0}},
		{"# c\nkind: HorizontalPodAutoscaler\nspec:\n\n    minReplicas: 1\n    # maxReplicas: 2\n    maxReplicas: 3\n", fieldLineSet{0, 5, 7}},
		{"kind: Deployment\nspec: {replicas: 3}\n", fieldLineSet{2, 0, 0}},
		{"{\"kind\": \"Deployment\",\n \"spec\": {\n  \"replicas\": 3}}\n", fieldLineSet{3, 0, 0}},
		{"kind: Deployment\nspec:\n  \"replicas\": 4\n", fieldLineSet{3, 0, 0}},
		{"kind: Deployment\nmetadata: {name: x}\n", fieldLineSet{}},
		{"kind: ScaledObject\nspec:\n  scaleTargetRef: {name: web}\n  idleReplicaCount: 0\n  minReplicaCount: 1\n  maxReplicaCount: 30\n", fieldLineSet{0, 0, 0, 5, 6, 4}},
	} {
		if got := docFieldLines([]byte(tc.doc), 1); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.doc, got, tc.want)
		}
		if lines, ok := scanFieldLines([]byte(tc.doc), 1); ok && lines != fieldLines(rootNode([]byte(tc.doc)), 1) {
			t.Errorf("%q: the line scan says %v, the parse %v", tc.doc, lines, fieldLines(rootNode([]byte(tc.doc)), 1))
		}
	}
}

// TestValidateEveryMistake: a value of the wrong type hides no other mistake in validate's
// output either: the policy gets its four errors at once.
func TestValidateEveryMistake(t *testing.T) {
	doc := `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: web, maxReplicas: "3"}
- {name: web, minReplicas: 5, maxReplicas: 2, selecter: {}}
`
	code, out, _ := run(t, doc, "validate", "-")
	want := `stdin: rules[0].maxReplicas: Invalid value: "3": must be a whole number that fits in 32 bits, not a string
stdin: rules[1].selecter: Forbidden: unknown field (did you mean "selector"?)
stdin: rules[1].name: Duplicate value: "web"
stdin: rules[1].maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (5)
`
	if code != ExitFound || out != want {
		t.Errorf("exit %d, output\n%s\nwant exit 1 and\n%s", code, out, want)
	}
}
