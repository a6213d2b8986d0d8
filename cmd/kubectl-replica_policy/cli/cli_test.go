package cli

import (
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// run runs the command line args with stdin and returns the exit code and both outputs.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	streams, in, out, errOut := genericiooptions.NewTestIOStreams()
	in.WriteString(stdin)
	code = Main(args, streams)
	return code, out.String(), errOut.String()
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// The fixture: testdata/manifests (a multi-document file with comments and a Service, a
// List, a JSON Deployment without namespace in a subfolder, Namespace objects, a README
// and a Helm values file that are not manifests) and a kustomize build on stdin, against
// testdata/policy.yaml.
var checkArgs = []string{"check", "-p", "testdata/policy.yaml", "-f", "testdata/manifests", "-f", "-"}

func TestCheckGolden(t *testing.T) {
	stdin := readTestdata(t, "kustomized.yaml")
	for _, format := range []string{"text", "json", "junit", "sarif"} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := run(t, stdin, append(slices.Clone(checkArgs), "-o", format)...)
			if code != ExitFound || errOut != "" {
				t.Errorf("exit %d, stderr %q; want exit 1 (a clamp and a deny), nothing on stderr", code, errOut)
			}
			ext := map[string]string{"text": "txt", "json": "json", "junit": "xml", "sarif": "sarif"}[format]
			golden(t, "check."+ext, out)
		})
	}
}

// TestCheckJSON pins each object's result, rule, field, value, want and first line: the
// line of its document after comments and separators, of its item in a List, 1 for JSON.
// An HPA has a result for each end of its range outside the bounds, else one.
func TestCheckJSON(t *testing.T) {
	code, out, _ := run(t, readTestdata(t, "kustomized.yaml"), append(slices.Clone(checkArgs), "-o", "json")...)
	if code != ExitFound {
		t.Fatalf("exit %d", code)
	}
	var rep struct {
		Results []struct {
			File      *string
			Line      *int
			Kind      string
			Namespace string
			Name      string
			Field     string
			Value     int32
			Rule      *string
			Want      *int32
			Bounds    *struct{ Min, Max *int32 }
			Result    string
		}
		Summary map[string]int
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	type row struct {
		where, object, rule, result, field string
		value, want                        int32 // want -1: null
	}
	var got []row
	for _, r := range rep.Results {
		x := row{where: *r.File + ":" + itoa(*r.Line), object: r.Namespace + "/" + r.Name, result: r.Result, want: -1, field: r.Field, value: r.Value}
		if r.Kind == "HorizontalPodAutoscaler" {
			x.object = "hpa " + x.object
		}
		if r.Rule != nil {
			x.rule = *r.Rule
			if r.Bounds == nil {
				t.Errorf("%s: a rule without bounds", x.object)
			}
		}
		if r.Want != nil {
			x.want = *r.Want
		}
		got = append(got, x)
	}
	const replicas, minReplicas, maxReplicas = "spec.replicas", "spec.minReplicas", "spec.maxReplicas"
	want := []row{
		{"testdata/manifests/apps.yaml:3", "prod/web", "prod-web", "clamp", replicas, 40, 10},
		{"testdata/manifests/apps.yaml:27", "prod/db", "databases", "deny", replicas, 12, 7},
		{"testdata/manifests/apps.yaml:41", "kube-system/coredns-extra", "", "skip", replicas, 100, -1},
		// Both ends of [1 (omitted), 30] outside [2, 10]: a result each.
		{"testdata/manifests/autoscalers.yaml:3", "hpa prod/web", "prod-web", "clamp", minReplicas, 1, 2},
		{"testdata/manifests/autoscalers.yaml:3", "hpa prod/web", "prod-web", "clamp", maxReplicas, 30, 10},
		{"testdata/manifests/autoscalers.yaml:12", "hpa prod/db", "databases", "deny", maxReplicas, 20, 7},
		// Its target prod/api is in list.yaml, read after it.
		{"testdata/manifests/autoscalers.yaml:21", "hpa prod/api", "prod-web", "pass", maxReplicas, 8, 8},
		{"testdata/manifests/autoscalers.yaml:30", "hpa prod/search", "prod-web", "skip", maxReplicas, 30, -1},
		{"testdata/manifests/autoscalers.yaml:39", "hpa prod/keda-hpa-web", "prod-web", "warn", maxReplicas, 30, 10},
		{"testdata/manifests/autoscalers.yaml:51", "hpa prod/legacy", "", "skip", maxReplicas, 5, -1},
		{"testdata/manifests/list.yaml:4", "prod/api", "prod-web", "pass", replicas, 5, 5},
		{"testdata/manifests/list.yaml:17", "payments/checkout", "gold", "warn", replicas, 6, 4},
		{"testdata/manifests/list.yaml:29", "analytics/report", "gold", "skip", replicas, 0, -1},
		{"testdata/manifests/nested/worker.json:1", "default/worker", "gold", "skip", replicas, 1, -1},
		{"stdin:16", "shop/cart", "gold", "warn", replicas, 9, 4},
		{"stdin:37", "shop/search", "gold", "pass", replicas, 3, 3},
	}
	if !slices.Equal(got, want) {
		t.Errorf("results\n got %+v\nwant %+v", got, want)
	}
	wantSummary := map[string]int{"pass": 3, "clamp": 3, "deny": 2, "warn": 3, "skip": 5, "error": 0}
	if !mapsEqual(rep.Summary, wantSummary) {
		t.Errorf("summary %v, want %v", rep.Summary, wantSummary)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestSARIF checks the fields SARIF 2.1.0 requires, and those code scanning reads.
func TestSARIF(t *testing.T) {
	_, out, _ := run(t, readTestdata(t, "kustomized.yaml"), append(slices.Clone(checkArgs), "-o", "sarif", "--fail-on", "deny")...)
	var log map[string]any
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatal(err)
	}
	if log["version"] != "2.1.0" {
		t.Errorf("version %v", log["version"])
	}
	if s, _ := log["$schema"].(string); !strings.Contains(s, "sarif-schema-2.1.0.json") {
		t.Errorf("$schema %q", s)
	}
	runs, _ := log["runs"].([]any)
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
	run := runs[0].(map[string]any)
	driver := dig(run, "tool", "driver").(map[string]any)
	if driver["name"] != toolName {
		t.Errorf("tool.driver.name %v", driver["name"])
	}
	var ruleIDs []string
	for _, r := range driver["rules"].([]any) {
		ruleIDs = append(ruleIDs, r.(map[string]any)["id"].(string))
	}
	results := run["results"].([]any)
	type row struct{ ruleID, level, uri, text string }
	var got []row
	for _, r := range results {
		res := r.(map[string]any)
		loc := res["locations"].([]any)[0].(map[string]any)
		line := dig(loc, "physicalLocation", "region", "startLine").(float64)
		got = append(got, row{
			ruleID: res["ruleId"].(string),
			level:  res["level"].(string),
			uri:    dig(loc, "physicalLocation", "artifactLocation", "uri").(string) + ":" + itoa(int(line)),
			text:   dig(res, "message", "text").(string),
		})
		if !slices.Contains(ruleIDs, res["ruleId"].(string)) {
			t.Errorf("result of rule %v, which tool.driver.rules does not define", res["ruleId"])
		}
	}
	want := []row{
		{"prod-web", "warning", "testdata/manifests/apps.yaml:3", `Deployment prod/web: Deployment "web": spec.replicas 40 clamped to 10 by replica policy rule "prod-web"`},
		{"databases", "error", "testdata/manifests/apps.yaml:27", `Deployment prod/db: spec.replicas: Invalid value: 12: must be within [3, 7] for Deployment "db" (replica policy rule "databases", action deny)`},
		{"prod-web", "warning", "testdata/manifests/autoscalers.yaml:3", `HorizontalPodAutoscaler prod/web: HorizontalPodAutoscaler "web": spec.minReplicas 1 clamped to 2 by replica policy rule "prod-web"`},
		{"prod-web", "warning", "testdata/manifests/autoscalers.yaml:3", `HorizontalPodAutoscaler prod/web: HorizontalPodAutoscaler "web": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod-web"`},
		{"databases", "error", "testdata/manifests/autoscalers.yaml:12", `HorizontalPodAutoscaler prod/db: spec.maxReplicas: Invalid value: 20: must be within [3, 7] for HorizontalPodAutoscaler "db" (replica policy rule "databases", action deny)`},
		{"prod-web", "warning", "testdata/manifests/autoscalers.yaml:39", `HorizontalPodAutoscaler prod/keda-hpa-web: HorizontalPodAutoscaler "keda-hpa-web" is controlled by ScaledObject "web", which would write its range back, so it is not clamped: its range [2, 30] is outside the bounds [2, 10] of replica policy rule "prod-web"; its scale writes are clamped`},
		{"gold", "warning", "testdata/manifests/list.yaml:17", `Deployment payments/checkout: spec.replicas: Invalid value: 6: must be within [0, 4] for Deployment "checkout" (replica policy rule "gold", action warn)`},
		{"gold", "warning", "stdin:16", `Deployment shop/cart: spec.replicas: Invalid value: 9: must be within [0, 4] for Deployment "cart" (replica policy rule "gold", action warn)`},
	}
	if !slices.Equal(got, want) {
		t.Errorf("results\n got %q\nwant %q", got, want)
	}
}

func dig(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// TestJUnit: one testcase per result (an HPA's ends outside the bounds are a case each,
// named with the field); failures for results at or above --fail-on, skipped for skips.
func TestJUnit(t *testing.T) {
	stdin := readTestdata(t, "kustomized.yaml")
	const (
		hpaWebMin = "HorizontalPodAutoscaler prod/web spec.minReplicas"
		hpaWebMax = "HorizontalPodAutoscaler prod/web spec.maxReplicas"
		hpaDBMax  = "HorizontalPodAutoscaler prod/db spec.maxReplicas"
	)
	for _, tc := range []struct {
		failOn        string
		failures      []string
		code, skipped int
	}{
		{"warn", []string{"prod/web", "prod/db", hpaWebMin, hpaWebMax, hpaDBMax, "HorizontalPodAutoscaler prod/keda-hpa-web spec.maxReplicas", "payments/checkout", "shop/cart"}, ExitFound, 5},
		{"clamp", []string{"prod/web", "prod/db", hpaWebMin, hpaWebMax, hpaDBMax}, ExitFound, 5},
		{"deny", []string{"prod/db", hpaDBMax}, ExitFound, 5},
	} {
		t.Run(tc.failOn, func(t *testing.T) {
			code, out, _ := run(t, stdin, append(slices.Clone(checkArgs), "-o", "junit", "--fail-on", tc.failOn)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			var doc struct {
				Suites []struct {
					Tests    int `xml:"tests,attr"`
					Failures int `xml:"failures,attr"`
					Skipped  int `xml:"skipped,attr"`
					Cases    []struct {
						Name    string `xml:"name,attr"`
						Failure *struct {
							Type string `xml:"type,attr"`
						} `xml:"failure"`
						Skipped *struct{} `xml:"skipped"`
					} `xml:"testcase"`
				} `xml:"testsuite"`
			}
			if err := xml.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatal(err)
			}
			s := doc.Suites[0]
			if s.Tests != 16 || len(s.Cases) != 16 {
				t.Errorf("tests=%d, %d testcases; want 16 results", s.Tests, len(s.Cases))
			}
			var failures []string
			skipped := 0
			for _, c := range s.Cases {
				if c.Failure != nil {
					failures = append(failures, strings.TrimPrefix(c.Name, "Deployment "))
				}
				if c.Skipped != nil {
					skipped++
				}
			}
			if !slices.Equal(failures, tc.failures) || s.Failures != len(tc.failures) {
				t.Errorf("failures %q (attribute %d), want %q", failures, s.Failures, tc.failures)
			}
			if skipped != tc.skipped || s.Skipped != tc.skipped {
				t.Errorf("skipped %d (attribute %d), want %d", skipped, s.Skipped, tc.skipped)
			}
		})
	}
}

// TestExitCodes: 0, 1 and 2 for every subcommand, with one line on stderr for 2.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	onlyPass := filepath.Join(dir, "pass.yaml")
	if err := os.WriteFile(onlyPass, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: prod, labels: {app: api}}
spec: {replicas: 3}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stderr string // a substring of the one line on stderr; "" for none
	}{
		{"check: only results below --fail-on", "", []string{"check", "-p", "testdata/policy.yaml", "-f", "testdata/manifests", "--fail-on", "deny", "-f", onlyPass}, ExitFound, ""},
		{"check: nothing at or above --fail-on", "", []string{"check", "-p", "testdata/policy.yaml", "-f", onlyPass}, ExitOK, ""},
		{"check: warn results fail --fail-on warn", readTestdata(t, "kustomized.yaml"), []string{"check", "-p", "testdata/policy.yaml", "-f", "-", "--fail-on", "warn"}, ExitFound, ""},
		{"check: no --policy", "", []string{"check", "-f", onlyPass}, ExitError, "--policy is required"},
		{"check: no -f", "", []string{"check", "-p", "testdata/policy.yaml"}, ExitError, "-f is required"},
		{"check: bad --fail-on", "", []string{"check", "-p", "testdata/policy.yaml", "-f", onlyPass, "--fail-on", "pass"}, ExitError, `--fail-on "pass"`},
		{"check: bad -o", "", []string{"check", "-p", "testdata/policy.yaml", "-f", onlyPass, "-o", "yaml"}, ExitError, `--output "yaml"`},
		{"check: unknown flag", "", []string{"check", "--bogus"}, ExitError, "unknown flag: --bogus"},
		{"check: missing input", "", []string{"check", "-p", "testdata/policy.yaml", "-f", filepath.Join(dir, "nope")}, ExitError, "no such file or directory"},
		{"check: a folder as the policy", "", []string{"check", "-p", "testdata", "-f", onlyPass}, ExitError, "testdata: is a directory"},
		{"check: malformed YAML names file and line", "", []string{"check", "-p", "testdata/policy.yaml", "-f", "testdata/bad/malformed.yaml"}, ExitError, "testdata/bad/malformed.yaml:10: not valid YAML: mapping values are not allowed in this context"},
		{"check: malformed YAML on stdin", "apiVersion: v1\nkind: [\n", []string{"check", "-p", "testdata/policy.yaml", "-f", "-"}, ExitError, "stdin:"},
		{"check: invalid policy, the webhook's messages", "", []string{"check", "-p", "testdata/bad/invalid-policy.yaml", "-f", onlyPass}, ExitError,
			`rules[0].maxReplica: Forbidden: unknown field (did you mean "maxReplicas"?); rules[0].maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (5)`},
		{"check: policy and manifests both from stdin", "", []string{"check", "-p", "-", "-f", "-"}, ExitError, "cannot both read stdin"},
		{"check: wrong type of spec.replicas", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: many}\n", []string{"check", "-p", "testdata/policy.yaml", "-f", "-"}, ExitError, `1 object(s) that the API server would refuse`},
		{"explain: always 0", "", []string{"explain", "-p", "testdata/policy.yaml", "-f", "testdata/manifests"}, ExitOK, ""},
		{"explain: bad input is 2", "", []string{"explain", "-p", "testdata/policy.yaml", "-f", "testdata/bad/malformed.yaml"}, ExitError, "malformed.yaml:10"},
		{"explain: bad -o", "", []string{"explain", "-p", "testdata/policy.yaml", "-f", onlyPass, "-o", "sarif"}, ExitError, "must be text or json"},
		{"validate: valid", "", []string{"validate", "testdata/policy.yaml", "testdata/policy-configmap.yaml"}, ExitOK, ""},
		{"validate: invalid", "", []string{"validate", "testdata/policy.yaml", "testdata/bad/invalid-policy.yaml"}, ExitFound, ""},
		{"validate: no file", "", []string{"validate"}, ExitError, "requires at least 1 arg"},
		{"validate: missing file", "", []string{"validate", filepath.Join(dir, "nope")}, ExitError, "no such file or directory"},
		{"audit: bad --fail-on before any cluster", "", []string{"audit", "--kubeconfig", onlyPass, "--fail-on", "x"}, ExitError, ""},
		{"audit: unreachable cluster", "", []string{"audit", "--kubeconfig", writeKubeconfig(t, dir, "https://127.0.0.1:1", "")}, ExitError, "cannot reach the cluster at https://127.0.0.1:1"},
		{"unknown subcommand", "", []string{"compiles"}, ExitError, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if tc.code != ExitError {
				if stderr != "" {
					t.Errorf("stderr %q, want none", stderr)
				}
				return
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "error: ") {
				t.Errorf("stderr %q: want one line starting with error:", stderr)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tc.stderr)
			}
		})
	}
}

// writeKubeconfig writes a kubeconfig for server, authenticated by token, and returns its path.
func writeKubeconfig(t *testing.T, dir, server, token string) string {
	t.Helper()
	path := filepath.Join(dir, "kubeconfig-"+strings.NewReplacer(":", "-", "/", "-").Replace(server))
	kc := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "` + server + `", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: "` + token + `"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestValidate: every error of the file at once, prefixed with the file, as the webhook
// lists them at apply time; a ConfigMap manifest is read as the webhook reads it.
func TestValidate(t *testing.T) {
	code, out, _ := run(t, "", "validate", "testdata/bad/invalid-policy.yaml", "testdata/policy.yaml")
	want := `testdata/bad/invalid-policy.yaml: rules[0].maxReplica: Forbidden: unknown field (did you mean "maxReplicas"?)
testdata/bad/invalid-policy.yaml: rules[0].maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (5)
testdata/policy.yaml: valid
`
	if code != ExitFound || out != want {
		t.Errorf("exit %d, output\n%s\nwant exit 1 and\n%s", code, out, want)
	}
	for _, tc := range []struct{ name, stdin, want string }{
		{"a ConfigMap without the key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: replica-policy}\ndata: {other: x}\n",
			"stdin: data[policy.yaml]: Required value: the policy ConfigMap must hold the policy under this key\n"},
		{"a ConfigMap among other objects, with an invalid policy", "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: replica-policy}\ndata:\n  policy.yaml: |\n    apiVersion: replicapolicy.io/v1alpha1\n    kind: ReplicaPolicy\n    rules: [{name: a}]\n",
			"stdin: rules[0].maxReplicas: Required value: at least one of minReplicas or maxReplicas is required\n"},
		{"not YAML", "a: [\n", "stdin: policy.yaml: Invalid value: …"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, _ := run(t, tc.stdin, "validate", "-")
			if code != ExitFound {
				t.Errorf("exit %d, want 1", code)
			}
			if prefix, ok := strings.CutSuffix(tc.want, "…"); ok {
				if !strings.HasPrefix(out, prefix) {
					t.Errorf("output %q, want it to start with %q", out, prefix)
				}
			} else if out != tc.want {
				t.Errorf("output %q, want %q", out, tc.want)
			}
		})
	}
}

func TestExplainGolden(t *testing.T) {
	code, out, errOut := run(t, readTestdata(t, "kustomized.yaml"), "explain", "-p", "testdata/policy.yaml", "-f", "testdata/manifests", "-f", "-")
	if code != ExitOK || errOut != "" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	golden(t, "explain.txt", out)
}

// TestExplainJSON: the deciding rule is the one check reports, for every object.
func TestExplainJSON(t *testing.T) {
	stdin := readTestdata(t, "kustomized.yaml")
	_, out, _ := run(t, stdin, "explain", "-p", "testdata/policy.yaml", "-f", "testdata/manifests", "-f", "-", "-o", "json")
	var doc struct {
		Objects []struct {
			Kind   string
			Name   string
			Rule   *string
			Result string
			Exempt bool
			Rules  []struct {
				Name     string
				Decides  bool
				Matched  bool
				Matchers []struct{ Matcher string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Objects) != 16 {
		t.Fatalf("%d objects, want 16: one for each result of check", len(doc.Objects))
	}
	for _, o := range doc.Objects {
		var deciding []string
		for _, r := range o.Rules {
			if r.Decides {
				deciding = append(deciding, r.Name)
			}
		}
		switch {
		case o.Kind == "HorizontalPodAutoscaler" && o.Name == "legacy":
			// Its target, a ReplicationController, is of no bounded kind: no rule is evaluated.
			if len(o.Rules) != 0 || o.Rule != nil || o.Result != "skip" {
				t.Errorf("%s: rules %v, rule %v, result %s; want none, none, skip", o.Name, o.Rules, o.Rule, o.Result)
			}
		case o.Exempt && (len(o.Rules) != 0 || o.Rule != nil):
			t.Errorf("%s: exempt, yet rules %v", o.Name, o.Rules)
		case !o.Exempt && (o.Rule == nil || len(deciding) != 1 || deciding[0] != *o.Rule):
			t.Errorf("%s: deciding %q, result's rule %v", o.Name, deciding, o.Rule)
		case !o.Exempt && len(o.Rules) != 4:
			t.Errorf("%s: %d rules, want every rule of the policy and the default", o.Name, len(o.Rules))
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "", "--version")
	if code != ExitOK || out != "kubectl-replica_policy dev (commit unknown)\n" {
		t.Errorf("exit %d, %q", code, out)
	}
}

// TestHelp: each subcommand has an example.
func TestHelp(t *testing.T) {
	for _, sub := range []string{"validate", "check", "explain", "audit"} {
		code, out, _ := run(t, "", sub, "--help")
		if code != ExitOK || !strings.Contains(out, "Examples:\n  # ") || !strings.Contains(out, "kubectl replica-policy "+sub) {
			t.Errorf("%s --help: exit %d\n%s", sub, code, out)
		}
	}
}
