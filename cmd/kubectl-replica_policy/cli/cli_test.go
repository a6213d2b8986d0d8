package cli

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/replica-policy/replica-policy/internal/harness"
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
		harness.WriteFile(t, path, got)
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

// stable replaces what changes from run to run and machine to machine in an output: JUnit
// times, and the working directory in SARIF's base URI.
func stable(t *testing.T, out string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	out = regexp.MustCompile(`time="[0-9.]+"`).ReplaceAllString(out, `time="T"`)
	return strings.ReplaceAll(out, "file://"+filepath.ToSlash(wd)+"/", "file:///WORKDIR/")
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
			golden(t, "check."+ext, stable(t, out))
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
	got, rules := sarifResults(t, out)
	want := []sarifRow{
		{"prod-web", "warning", "testdata/manifests/apps.yaml:10", `Deployment prod/web: Deployment "web": spec.replicas 40 clamped to 10 by replica policy rule "prod-web"`},
		{"databases", "error", "testdata/manifests/apps.yaml:34", `Deployment prod/db: Deployment "db": spec.replicas: Invalid value: 12: must be within [3, 7] (replica policy rule "databases", action deny)`},
		// An HPA's two ends are one result, at its fields' lines.
		{"prod-web", "warning", "testdata/manifests/autoscalers.yaml:3-8", `HorizontalPodAutoscaler prod/web: HorizontalPodAutoscaler "web": spec.minReplicas 1 clamped to 2 by replica policy rule "prod-web"; HorizontalPodAutoscaler "web": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod-web"`},
		{"databases", "error", "testdata/manifests/autoscalers.yaml:18", `HorizontalPodAutoscaler prod/db: HorizontalPodAutoscaler "db": spec.maxReplicas: Invalid value: 20: must be within [3, 7] (replica policy rule "databases", action deny)`},
		{"prod-web", "warning", "testdata/manifests/autoscalers.yaml:48", `HorizontalPodAutoscaler prod/keda-hpa-web: HorizontalPodAutoscaler "keda-hpa-web": controlled by ScaledObject "web", which would write its range back, so it is not clamped: its range [2, 30] is outside the bounds [2, 10] of replica policy rule "prod-web"; its scale writes are clamped`},
		{"gold", "warning", "testdata/manifests/list.yaml:23", `Deployment payments/checkout: Deployment "checkout": spec.replicas: Invalid value: 6: must be within [0, 4] (replica policy rule "gold", action warn)`},
		// stdin is no file: a logical location.
		{"gold", "warning", "stdin:24 shop/Deployment/cart", `Deployment shop/cart: Deployment "cart": spec.replicas: Invalid value: 9: must be within [0, 4] (replica policy rule "gold", action warn)`},
	}
	if !slices.Equal(got, want) {
		t.Errorf("results\n got %q\nwant %q", got, want)
	}
	for id, help := range rules {
		if !strings.Contains(help, "Set the value inside the bounds") {
			t.Errorf("rule %s: help %q", id, help)
		}
	}
}

// TestSARIFLocations: artifact URIs are relative to the working directory, or --base-dir,
// also for an absolute -f path, and percent-encoded ("#" would start a fragment).
func TestSARIFLocations(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deploy", "my app#1.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, path, deployment("web", "40")+"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad, namespace: prod}\nspec: {replicas: 1.5}\n")
	code, out, _ := run(t, "", "check", "-p", "testdata/policy.yaml", "-f", path, "-o", "sarif", "--base-dir", dir)
	got, _ := sarifResults(t, out)
	want := []sarifRow{
		{"prod-web", "error", "deploy/my%20app%231.yaml:7", `Deployment prod/web: Deployment "web": spec.replicas 40 clamped to 10 by replica policy rule "prod-web"`},
		{refusedRule, "error", "deploy/my%20app%231.yaml:12", `Deployment prod/bad: spec.replicas: Invalid value: 1.5: must be a whole number (the API server refuses the object, so it is not judged)`},
	}
	if code != ExitError || !slices.Equal(got, want) {
		t.Errorf("exit %d, results\n got %q\nwant %q", code, got, want)
	}
	if !strings.Contains(out, `"uri": "file://`+filepath.ToSlash(dir)+`/"`) {
		t.Errorf("no originalUriBaseIds for %s:\n%s", dir, out)
	}
	// Without --base-dir: relative to the working directory.
	_, out, _ = run(t, "", "check", "-p", "testdata/policy.yaml", "-f", filepath.Join(mustGetwd(t), "testdata", "manifests", "apps.yaml"), "-o", "sarif")
	if got, _ := sarifResults(t, out); len(got) == 0 || got[0].location != "testdata/manifests/apps.yaml:10" {
		t.Errorf("an absolute -f path: %q, want testdata/manifests/apps.yaml:10", got)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

type sarifRow struct{ ruleID, level, location, text string }

// sarifResults reads a SARIF log's results, each located at "uri:startLine[-endLine]" or
// its logical location, and its rules' help texts by id; results of undefined rules fail.
func sarifResults(t *testing.T, out string) ([]sarifRow, map[string]string) {
	t.Helper()
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
	rules := map[string]string{}
	for _, r := range driver["rules"].([]any) {
		rule := r.(map[string]any)
		help, _ := dig(rule, "help", "text").(string)
		rules[rule["id"].(string)] = help
	}
	var got []sarifRow
	results, _ := run["results"].([]any)
	for _, r := range results {
		res := r.(map[string]any)
		loc := res["locations"].([]any)[0].(map[string]any)
		where := ""
		if pl, ok := loc["physicalLocation"]; ok {
			if base := dig(pl.(map[string]any), "artifactLocation", "uriBaseId"); base != sarifBase {
				t.Errorf("uriBaseId %v, want %s", base, sarifBase)
			}
			start := dig(pl.(map[string]any), "region", "startLine").(float64)
			end := dig(pl.(map[string]any), "region", "endLine").(float64)
			where = dig(pl.(map[string]any), "artifactLocation", "uri").(string) + ":" + itoa(int(start))
			if end != start {
				where += "-" + itoa(int(end))
			}
		} else {
			where = loc["logicalLocations"].([]any)[0].(map[string]any)["fullyQualifiedName"].(string)
		}
		got = append(got, sarifRow{res["ruleId"].(string), res["level"].(string), where, dig(res, "message", "text").(string)})
		if _, ok := rules[res["ruleId"].(string)]; !ok {
			t.Errorf("result of rule %v, which tool.driver.rules does not define", res["ruleId"])
		}
	}
	return got, rules
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

// TestJUnit: a testsuite per file, a testcase per object (an HPA's two ends outside the
// bounds are one case) named without the dots CI tools split classnames at, with times;
// failures for results at or above --fail-on, skipped for skips, errors for objects the
// API server would refuse.
func TestJUnit(t *testing.T) {
	stdin := readTestdata(t, "kustomized.yaml") + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: v1.2, namespace: shop}\nspec: {replicas: 1.5}\n"
	for _, tc := range []struct {
		failOn   string
		failures []string
	}{
		{"warn", []string{"Deployment prod/web", "Deployment prod/db", "HorizontalPodAutoscaler prod/web", "HorizontalPodAutoscaler prod/db", "HorizontalPodAutoscaler prod/keda-hpa-web", "Deployment payments/checkout", "Deployment shop/cart"}},
		{"clamp", []string{"Deployment prod/web", "Deployment prod/db", "HorizontalPodAutoscaler prod/web", "HorizontalPodAutoscaler prod/db"}},
		{"deny", []string{"Deployment prod/db", "HorizontalPodAutoscaler prod/db"}},
	} {
		t.Run(tc.failOn, func(t *testing.T) {
			code, out, _ := run(t, stdin, append(slices.Clone(checkArgs), "-o", "junit", "--fail-on", tc.failOn)...)
			if code != ExitError {
				t.Errorf("exit %d, want 2 (an error result)", code)
			}
			var doc struct {
				junitCounts
				Suites []struct {
					Name string `xml:"name,attr"`
					junitCounts
					Cases []struct {
						Name      string    `xml:"name,attr"`
						Classname string    `xml:"classname,attr"`
						Time      string    `xml:"time,attr"`
						Failure   *struct{} `xml:"failure"`
						Error     *struct{} `xml:"error"`
						Skipped   *struct{} `xml:"skipped"`
					} `xml:"testcase"`
				} `xml:"testsuite"`
			}
			if err := xml.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatal(err)
			}
			var suites, failures, errors []string
			cases, skipped := 0, 0
			for _, s := range doc.Suites {
				suites = append(suites, s.Name)
				if s.Tests != len(s.Cases) || s.Time == "" {
					t.Errorf("suite %s: tests=%d for %d testcases, time %q", s.Name, s.Tests, len(s.Cases), s.Time)
				}
				for _, c := range s.Cases {
					cases++
					if strings.Contains(c.Classname, ".") || strings.Contains(c.Name, ".") || c.Time == "" {
						t.Errorf("testcase %q classname %q time %q: no dots, and a time", c.Name, c.Classname, c.Time)
					}
					switch {
					case c.Failure != nil:
						failures = append(failures, c.Classname+" "+c.Name)
					case c.Error != nil:
						errors = append(errors, c.Classname+" "+c.Name)
					case c.Skipped != nil:
						skipped++
					}
				}
			}
			wantSuites := []string{"testdata/manifests/apps.yaml", "testdata/manifests/autoscalers.yaml", "testdata/manifests/list.yaml", "testdata/manifests/nested/worker.json", "stdin"}
			if !slices.Equal(suites, wantSuites) {
				t.Errorf("suites %q, want %q", suites, wantSuites)
			}
			if cases != 16 || doc.Tests != 16 {
				t.Errorf("%d testcases (tests=%d), want 16 objects", cases, doc.Tests)
			}
			if !slices.Equal(failures, tc.failures) || doc.Failures != len(tc.failures) {
				t.Errorf("failures %q (attribute %d), want %q", failures, doc.Failures, tc.failures)
			}
			if want := []string{"Deployment shop/v1_2"}; !slices.Equal(errors, want) || doc.Errors != 1 {
				t.Errorf("errors %q (attribute %d), want %q", errors, doc.Errors, want)
			}
			if skipped != 5 || doc.Skipped != 5 {
				t.Errorf("skipped %d (attribute %d), want 5", skipped, doc.Skipped)
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
		{"validate: no file", "", []string{"validate"}, ExitError, "validate needs at least one file"},
		{"validate: missing file", "", []string{"validate", filepath.Join(dir, "nope")}, ExitError, "no such file or directory"},
		{"audit: bad --fail-on before any cluster", "", []string{"audit", "--kubeconfig", onlyPass, "--fail-on", "x"}, ExitError, ""},
		{"audit: unreachable cluster", "", []string{"audit", "--kubeconfig", writeKubeconfig(t, filepath.Join(dir, "unreachable.kubeconfig"), "https://127.0.0.1:1", nil, "")}, ExitError, "cannot reach the cluster at https://127.0.0.1:1"},
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

// wantAll reports each of wants that text (what names it: stdout, check output) lacks.
func wantAll(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

// writeKubeconfig writes to path a kubeconfig for server, trusting the certificate
// authority ca (any certificate when ca is nil), authenticated by token, and returns path.
func writeKubeconfig(t *testing.T, path, server string, ca []byte, token string) string {
	t.Helper()
	trust := "insecure-skip-tls-verify: true"
	if ca != nil {
		trust = "certificate-authority-data: " + base64.StdEncoding.EncodeToString(ca)
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, %s}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, server, trust, token)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil { // it holds a token
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
