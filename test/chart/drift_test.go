// Package chart tests the Helm chart charts/replica-policy: that it never drifts from the
// kustomize manifests (this file: no cluster needed), and that helm installs, upgrades, rolls
// back and uninstalls it on a real kube-apiserver (lifecycle_test.go).
package chart

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/replica-policy/replica-policy/certs/certgen"
	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// release is the release name the tests render and install; any name gives the same objects.
const release = "replica-policy"

// chartLabels are the labels the chart adds to every object's metadata and manifests/ does
// not: helm's own and the release's. The drift test sets them aside on the chart's side only,
// so a label manifests/ gains is still drift.
var chartLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

// tlsSecret is the Secret both install paths mount; its data is certificate material, made
// anew by each render.
const tlsSecret = "replica-policy-webhook-tls"

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) key() string {
	meta, _ := o["metadata"].(map[string]any)
	ns, _ := meta["namespace"].(string)
	name, _ := meta["name"].(string)
	return fmt.Sprintf("%s %s %s/%s", o["apiVersion"], o["kind"], ns, name)
}

// TestChartMatchesManifests renders the chart with `helm template` and the manifests with
// `kubectl kustomize`, and compares them object by object: with the default values against
// manifests/, and with each switch against its kustomize component or overlay. A change made
// to one side and not to the other fails here.
func TestChartMatchesManifests(t *testing.T) {
	needKubectl(t)
	// manifests/ needs the certs tool's files to build; a copy gets them, the checkout none.
	dir := t.TempDir()
	manifests := filepath.Join(dir, "manifests")
	if err := harness.CopyManifests(manifests); err != nil {
		t.Fatal(err)
	}
	if _, err := harness.GenerateCerts(filepath.Join(manifests, "certs")); err != nil {
		t.Fatal(err)
	}
	// withComponents is a kustomization of manifests/ plus the named components.
	withComponents := func(name string, components ...string) string {
		d := filepath.Join(dir, name)
		k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../manifests\ncomponents:\n"
		for _, c := range components {
			k += "- ../manifests/components/" + c + "\n"
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	ci := func(name string) string { return filepath.Join(harness.Chart(), "ci", name) }

	cases := []struct {
		name string
		// helmArgs select the values; kustomize is the folder to build.
		helmArgs  []string
		kustomize string
		// onlyInChart are objects the chart renders and the kustomization deletes (by key).
		onlyInChart []string
	}{
		{name: "default values = manifests/", kustomize: manifests},
		{name: "nativePolicies = components/native-policies", helmArgs: []string{"-f", ci("native-policies-values.yaml")},
			kustomize: withComponents("native", "native-policies")},
		{name: "reports = components/reports", helmArgs: []string{"-f", ci("reports-values.yaml")},
			kustomize: withComponents("reports", "reports")},
		{name: "workloadResources = components/workload-resource", helmArgs: []string{"--set", "workloadResources={rollouts.argoproj.io}"},
			kustomize: withComponents("workload", "workload-resource")},
		{name: "monitoring = components/monitoring", helmArgs: []string{"-f", ci("monitoring-values.yaml")},
			kustomize: withComponents("monitoring", "monitoring")},
		{name: "keda = components/keda", helmArgs: []string{"-f", ci("keda-values.yaml")},
			kustomize: withComponents("keda", "keda")},
		{name: "both switches = both components", helmArgs: []string{"-f", ci("native-policies-values.yaml"), "--set", "workloadResources={rollouts.argoproj.io}"},
			kustomize: withComponents("both", "native-policies", "workload-resource")},
		{name: "certificates.mode=certManager = overlays/cert-manager", helmArgs: []string{"-f", ci("cert-manager-values.yaml")},
			kustomize: filepath.Join(manifests, "overlays", "cert-manager")},
		// The chart's url mode keeps the in-cluster objects (a test without kubelet never runs
		// them); the local overlay deletes them.
		{name: "webhooks.url = overlays/local", helmArgs: []string{"-f", ci("local-url-values.yaml")},
			kustomize: filepath.Join(manifests, "overlays", "local"),
			onlyInChart: []string{
				"apps/v1 Deployment replica-policy-system/replica-policy-webhook",
				"v1 Service replica-policy-system/replica-policy-webhook",
				"policy/v1 PodDisruptionBudget replica-policy-system/replica-policy-webhook",
				"networking.k8s.io/v1 NetworkPolicy replica-policy-system/replica-policy-webhook",
				"v1 Secret replica-policy-system/replica-policy-webhook-tls",
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chart := helmTemplate(t, tc.helmArgs...)
			checkChartTLS(t, chart)
			kust := kustomizeBuild(t, tc.kustomize)
			if diffs := compare(chart, kust, tc.onlyInChart); len(diffs) > 0 {
				t.Errorf("the chart (helm template %s) and kubectl kustomize %s differ; change both the same way:\n  %s",
					strings.Join(tc.helmArgs, " "), tc.kustomize, strings.Join(diffs, "\n  "))
			}
		})
	}
}

// TestChartAppVersionIsTheManifestsTag holds the chart's default image tag (its appVersion)
// and the manifests' image tag equal, which TestChartMatchesManifests checks through the
// Deployment; this names the two places to change together when it fails.
func TestChartAppVersionIsTheManifestsTag(t *testing.T) {
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	harness.ReadYAML(t, filepath.Join(harness.Chart(), "Chart.yaml"), &chart, false)
	var kust struct {
		Images []struct {
			Name   string `json:"name"`
			NewTag string `json:"newTag"`
		} `json:"images"`
	}
	harness.ReadYAML(t, filepath.Join(harness.RepoRoot(), "manifests", "base", "kustomization.yaml"), &kust, false)
	if len(kust.Images) != 1 || kust.Images[0].NewTag != chart.AppVersion {
		t.Errorf("charts/replica-policy/Chart.yaml appVersion %q, manifests/base/kustomization.yaml images %+v: a release sets both", chart.AppVersion, kust.Images)
	}
}

// helmTemplate renders the chart as `helm install` would into namespace
// policy.DefaultNamespace, without a cluster.
func helmTemplate(t *testing.T, args ...string) []object {
	t.Helper()
	out, err := harness.HelmCmd(context.Background(), t.TempDir(),
		append([]string{"template", release, harness.Chart(), "--namespace", policy.DefaultNamespace}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return parseObjects(t, out)
}

func kustomizeBuild(t *testing.T, dir string) []object {
	t.Helper()
	out, err := exec.Command(needKubectl(t), "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
	}
	return parseObjects(t, string(out))
}

func parseObjects(t *testing.T, stream string) []object {
	t.Helper()
	var objs []object
	for _, doc := range strings.Split(stream, "\n---") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%v in:\n%s", err, doc)
		}
		if len(o) > 0 {
			objs = append(objs, o)
		}
	}
	return objs
}

// checkChartTLS checks the chart's own certificate material before the comparison sets it
// aside: every caBundle is the TLS Secret's ca.crt, and that CA signed a serving certificate
// for the Service's DNS name.
func checkChartTLS(t *testing.T, objs []object) {
	t.Helper()
	var caCrt, tlsCrt string
	for _, o := range objs {
		if o["kind"] == "Secret" && o.key() == "v1 Secret "+policy.DefaultNamespace+"/"+tlsSecret {
			data, _ := o["data"].(map[string]any)
			caCrt, _ = data["ca.crt"].(string)
			tlsCrt, _ = data["tls.crt"].(string)
		}
	}
	for _, o := range objs {
		for _, h := range webhooksOf(o) {
			cc, _ := h["clientConfig"].(map[string]any)
			if cc["caBundle"] != nil && cc["caBundle"] != caCrt {
				t.Errorf("%s webhook %v: caBundle is not the TLS Secret's ca.crt", o.key(), h["name"])
			}
		}
	}
	if caCrt == "" { // cert-manager or an existing Secret: nothing generated to check
		return
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b64(t, caCrt)) {
		t.Fatal("the TLS Secret's ca.crt holds no certificate")
	}
	cert, err := certgen.ParseCertificatePEM(b64(t, tlsCrt))
	if err != nil {
		t.Fatalf("the TLS Secret's tls.crt: %v", err)
	}
	name := "replica-policy-webhook." + policy.DefaultNamespace + ".svc"
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the generated serving certificate does not verify for %s against the generated CA: %v", name, err)
	}
}

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func webhooksOf(o object) []map[string]any {
	list, _ := o["webhooks"].([]any)
	var out []map[string]any
	for _, h := range list {
		if m, ok := h.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// setAside removes what may differ between the two install paths: the chart's own labels
// (chart side only) and certificate material (both sides: the Secret's data, every caBundle),
// and normalizes the whitespace of CEL expressions.
func setAside(o object, chartSide bool) object {
	o = deepCopy(o)
	meta, _ := o["metadata"].(map[string]any)
	if labels, ok := meta["labels"].(map[string]any); ok && chartSide {
		for _, l := range chartLabels {
			delete(labels, l)
		}
		if len(labels) == 0 {
			delete(meta, "labels")
		}
	}
	if o["kind"] == "Secret" {
		if meta["name"] == tlsSecret {
			delete(o, "data")
		}
	}
	for _, h := range webhooksOf(o) {
		if cc, ok := h["clientConfig"].(map[string]any); ok {
			delete(cc, "caBundle")
		}
	}
	normalizeCEL(map[string]any(o))
	return o
}

// normalizeCEL makes runs of whitespace one space in every CEL expression (the values of
// "expression" keys: matchConditions, validations, mutations). CEL ignores whitespace between
// tokens, and kustomize changes it: kyaml reads the folded (>-) expression of
// manifests/base/webhooks.yaml with an extra line break before each more-indented line that
// follows a less-indented one ("?\n\n  (has(..."). The API server compiles both alike.
func normalizeCEL(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "expression" {
				v[k] = strings.Join(strings.Fields(s), " ")
				continue
			}
			normalizeCEL(e)
		}
	case []any:
		for _, e := range v {
			normalizeCEL(e)
		}
	}
}

// compare returns one line per difference: objects only on one side (except onlyInChart) and
// each differing field of the objects on both, with its path and both values.
func compare(chart, kust []object, onlyInChart []string) []string {
	index := func(objs []object, chartSide bool) map[string]object {
		m := map[string]object{}
		for _, o := range objs {
			m[o.key()] = setAside(o, chartSide)
		}
		return m
	}
	c, k := index(chart, true), index(kust, false)
	var diffs []string
	for key := range c {
		if _, ok := k[key]; !ok && !slices.Contains(onlyInChart, key) {
			diffs = append(diffs, fmt.Sprintf("%s: only in the chart", key))
		}
	}
	for _, key := range onlyInChart {
		if _, ok := c[key]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: expected in the chart, missing", key))
		}
	}
	for key, ko := range k {
		co, ok := c[key]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only in the manifests", key))
			continue
		}
		for _, d := range diffValues("", map[string]any(co), map[string]any(ko)) {
			diffs = append(diffs, key+": "+d)
		}
	}
	sort.Strings(diffs)
	return diffs
}

// diffValues lists the paths where a (the chart) and b (the manifests) differ.
func diffValues(path string, a, b any) []string {
	if reflect.DeepEqual(a, b) {
		return nil
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var out []string
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			out = append(out, diffValues(path+"."+k, am[k], bm[k])...)
		}
		return out
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if an, bn, ok := byName(al), byName(bl), aok && bok; ok && an != nil && bn != nil {
		// Entries with names (webhooks, containers, ports, matchConditions): by name, so that
		// an entry added on one side is named, not the whole list printed.
		return diffValues(path, an, bn)
	}
	if aok && bok && len(al) == len(bl) {
		var out []string
		for i := range al {
			out = append(out, diffValues(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i])...)
		}
		return out
	}
	return []string{fmt.Sprintf("%s: chart %s, manifests %s", strings.TrimPrefix(path, "."), show(a), show(b))}
}

// byName returns the list as a map by each entry's name ("name=<name>"), or nil when an
// entry has no name or two share one.
func byName(l []any) map[string]any {
	m := map[string]any{}
	for _, e := range l {
		em, ok := e.(map[string]any)
		if !ok {
			return nil
		}
		n, ok := em["name"].(string)
		if _, dup := m["name="+n]; !ok || dup {
			return nil
		}
		m["name="+n] = e
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

func show(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := strings.TrimSpace(string(b))
	if strings.Contains(s, "\n") {
		return "\n      " + strings.ReplaceAll(s, "\n", "\n      ")
	}
	return s
}

func deepCopy(o object) object {
	b, _ := yaml.Marshal(o)
	var c object
	_ = yaml.Unmarshal(b, &c)
	return c
}

// needKubectl returns kubectl, or fails saying why: the manifests are built with `kubectl
// kustomize`, as a user builds them.
func needKubectl(t *testing.T) string {
	t.Helper()
	return harness.NeedKubectl(t, "the chart is compared with `kubectl kustomize manifests/`")
}
