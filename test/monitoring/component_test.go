package monitoring

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	yamlv3 "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// firedBy names, for every alert of the rule file, the test that makes it fire from the real
// binary's metrics. An alert added without a test fails TestRuleFile.
var firedBy = map[string]string{
	webhookDown:         "TestHealthyRunIsSilent",
	replicaDown:         "TestHealthyRunIsSilent",
	webhookNotReady:     "TestNotReady",
	policyInvalid:       "TestPolicyInvalid",
	admissionErrors:     "TestPolicyInvalid, TestNotReady",
	scalerFailing:       "TestScalerWithoutRights",
	scalerContested:     "TestScalerContested",
	nativeOutOfSync:     "TestNativeSyncFailing",
	workloadsOutside:    "TestScalerWithoutRights, TestScalerDryRun",
	violators:           "TestViolatorLeftAlone",
	certificateExpiring: "TestCertificateNearItsEnd",
}

var alertName = regexp.MustCompile(`^ReplicaPolicy[A-Z][A-Za-z]+$`)

// TestRuleFile: the PrometheusRule decodes strictly into the operator's type, its groups
// parse with Prometheus's rule-file parser (which also parses every expression and
// template), and every alert is named ReplicaPolicy..., has a severity Alertmanager routes
// on, a summary, a description, a runbook_url to a section of docs/operations.md, and a
// test that makes it fire.
func TestRuleFile(t *testing.T) {
	ops, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := markdownAnchors(string(ops))
	seen := map[string]bool{}
	for _, g := range ruleGroups(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			seen[r.Alert] = true
			if !alertName.MatchString(r.Alert) {
				t.Errorf("%s: not CamelCase with the ReplicaPolicy prefix", r.Alert)
			}
			if sev := r.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, sev) {
				t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, sev)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			const prefix = "https://github.com/replica-policy/replica-policy/blob/main/docs/operations.md#"
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], prefix)
			if !ok {
				t.Errorf("%s: runbook_url %q is not a section of docs/operations.md", r.Alert, r.Annotations["runbook_url"])
			} else if !anchors[anchor] {
				t.Errorf("%s: docs/operations.md has no section #%s", r.Alert, anchor)
			} else if anchor != strings.ToLower(r.Alert) {
				t.Errorf("%s: runbook_url names section #%s, not its own", r.Alert, anchor)
			}
			if firedBy[r.Alert] == "" {
				t.Errorf("%s: no test makes it fire (add it to firedBy with the test)", r.Alert)
			}
		}
	}
	for a := range firedBy {
		if !seen[a] {
			t.Errorf("firedBy names %s, which the rule file does not have", a)
		}
	}
}

// markdownAnchors are the anchors GitHub gives the headings of a Markdown document.
func markdownAnchors(doc string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(doc, "\n") {
		h, ok := strings.CutPrefix(line, "#")
		if !ok {
			continue
		}
		h = strings.TrimSpace(strings.TrimLeft(h, "#"))
		out[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
	}
	return out
}

// rendered is `kubectl kustomize` of the base with the monitoring component, as a user
// builds it, split into objects.
func rendered(t *testing.T) []map[string]any {
	t.Helper()
	kubectl, err := harness.FindKubectl()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := harness.CopyManifests(filepath.Join(dir, "manifests")); err != nil {
		t.Fatal(err)
	}
	kust := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [manifests/base]\ncomponents: [manifests/components/monitoring]\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	var objs []map[string]any
	dec := yamlv3.NewDecoder(bytes.NewReader(out))
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	return objs
}

// find returns the rendered object of kind and name, strictly decoded into into.
func find(t *testing.T, objs []map[string]any, kind, name string, into any) {
	t.Helper()
	for _, o := range objs {
		md, _ := o["metadata"].(map[string]any)
		if o["kind"] == kind && md["name"] == name {
			b, err := yaml.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.UnmarshalStrict(b, into); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return
		}
	}
	t.Fatalf("the rendered component has no %s %s", kind, name)
}

// TestComponent renders the base with the component and checks its objects: the
// ServiceMonitor and the PrometheusRule decode strictly into the Prometheus Operator's
// types; the ServiceMonitor selects the webhook's Service, in its namespace, by the port
// that serves the metrics; the dashboard ConfigMap carries the sidecar's label and holds
// dashboard.json byte for byte.
func TestComponent(t *testing.T) {
	objs := rendered(t)

	var svc corev1.Service
	find(t, objs, "Service", jobName, &svc)
	var sm monitoringv1.ServiceMonitor
	find(t, objs, "ServiceMonitor", jobName, &sm)
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(svc.Labels)) {
		t.Errorf("the ServiceMonitor's selector %s does not select the Service (labels %v)", sel, svc.Labels)
	}
	if !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, svc.Namespace) {
		t.Errorf("the ServiceMonitor looks in %v, the Service is in %s", sm.Spec.NamespaceSelector.MatchNames, svc.Namespace)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("%d endpoints, want 1", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port && p.Port == 8080 }) {
		t.Errorf("the ServiceMonitor scrapes port %q, which is not the Service's metrics port 8080", ep.Port)
	}
	if ep.Interval != monitoringv1.Duration(scrapeInterval.String()) {
		t.Errorf("scrape interval %s, the alerts are written for %s", ep.Interval, scrapeInterval)
	}

	var pr monitoringv1.PrometheusRule
	find(t, objs, "PrometheusRule", "replica-policy", &pr)
	if len(pr.Spec.Groups) == 0 {
		t.Fatal("the PrometheusRule has no groups")
	}

	var cm corev1.ConfigMap
	find(t, objs, "ConfigMap", "replica-policy-dashboard", &cm)
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v, want grafana_dashboard: \"1\"", cm.Labels)
	}
	want, err := os.ReadFile(filepath.Join(harness.RepoRoot(), componentPath, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["replica-policy.json"] != string(want) {
		t.Error("the dashboard ConfigMap does not hold dashboard.json as it is")
	}
}

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// grafanaVariables are the variables Grafana replaces in a query before Prometheus sees it,
// with what a 30 s scrape makes of them.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "2m", "$__interval", "30s", "$__range", "6h")

// TestDashboardQueries: every query of the dashboard, and every alert expression, parses
// with Prometheus's parser and names only series that the binary exported in the scrapes of
// the situation tests (which must all have run: their scrapes make every series appear, e.g.
// the native policies' with --native-policies, the contested gauge while a workload is).
func TestDashboardQueries(t *testing.T) {
	if missing := situationsNotRun(); len(missing) > 0 {
		// Skipped only when -run chose some tests; in a whole run it is a failure.
		if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
			t.Skipf("needs the scrapes of every situation test; not run: %v", missing)
		}
		t.Fatalf("needs the scrapes of every situation test; these did not pass: %v", missing)
	}
	b, err := os.ReadFile(filepath.Join(harness.RepoRoot(), componentPath, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	queries := map[string]string{}
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, q := range p.Targets {
			queries["panel "+p.Title+" #"+string(rune('A'+i))] = grafanaVariables.Replace(q.Expr)
		}
	}
	for _, g := range ruleGroups(t).Groups {
		for _, r := range g.Rules {
			queries["alert "+r.Alert] = r.Expr
		}
	}
	exported.Lock()
	defer exported.Unlock()
	var keys []string
	for k := range queries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		expr, err := promParser.ParseExpr(queries[k])
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && !exported.names[vs.Name] {
				t.Errorf("%s names %s, which the binary never exported", k, vs.Name)
			}
			return nil
		})
	}
	t.Logf("%d queries checked against %d series names scraped", len(keys), len(exported.names))
}

// situationsRun are the situation tests that ran to the end and passed.
var situationsRun = struct {
	sync.Mutex
	names map[string]bool
}{names: map[string]bool{}}

// situationPassed records, at the end of a situation test, that it passed.
func situationPassed(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			situationsRun.Lock()
			situationsRun.names[path.Base(t.Name())] = true // TestSituations/TestNotReady
			situationsRun.Unlock()
		}
	})
}

// situationsNotRun are the tests of firedBy that have not passed in this run.
func situationsNotRun() []string {
	situationsRun.Lock()
	defer situationsRun.Unlock()
	var out []string
	for _, tests := range firedBy {
		for _, name := range strings.Split(tests, ", ") {
			if !situationsRun.names[name] && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}
