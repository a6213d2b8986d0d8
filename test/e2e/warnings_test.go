package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// warningsFolder is a folder of manifests as `kubectl apply -f dir/` reads it, one object
// per file, each outside a rule of the example policy: prod-web ([2, 10], clamp, for app in
// (web, api) in namespace prod) or dev-large ([0, 5], warn, in namespaces dev-*). The
// webhook warns about each of them, and a database StatefulSet (rule databases: [3, 7],
// deny) inside its bounds is there for a /scale write to be denied.
var warningsFolder = map[string]string{
	"1-web.yaml":   workloadYAML("Deployment", "prod", "web", 40, "app: web"),
	"2-api.yaml":   workloadYAML("StatefulSet", "prod", "api", 30, "app: api"),
	"3-solo.yaml":  workloadYAML("ReplicaSet", "prod", "solo", 0, "app: web"),
	"5-big.yaml":   workloadYAML("Deployment", "dev-1", "big", 8, "app: big"),
	"6-cache.yaml": workloadYAML("StatefulSet", "dev-1", "cache", 9, "app: cache"),
	"7-db.yaml":    workloadYAML("StatefulSet", "prod", "db", 3, "replicapolicy.io/class: database"),
	"4-web-hpa.yaml": `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web-hpa, namespace: prod}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 30
`,
}

// workloadYAML is the manifest of a workload of kind (Deployment, StatefulSet, ReplicaSet)
// namespace/name with replicas and the labels, whose pods are labelled app=<name>.
func workloadYAML(kind, namespace, name string, replicas int, labels string) string {
	serviceName := ""
	if kind == "StatefulSet" {
		serviceName = "  serviceName: " + name + "\n"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: %s
metadata: {name: %s, namespace: %s, labels: {%s}}
spec:
  replicas: %d
%s  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec: {containers: [{name: c, image: %s}]}
`, kind, name, namespace, labels, replicas, serviceName, name, name, harness.PauseImage)
}

// bigHPA is an HPA outside dev-large's bounds, applied once its target is in the webhook's
// cache (before, its warning would say the rule could not be checked).
const bigHPA = `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: big-hpa, namespace: dev-1}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: big}
  minReplicas: 1
  maxReplicas: 9
`

// warningLine is a warning as kubectl prints it, in the contract's shape: the kind and the
// name of the object first, `StatefulSet "db": spec.replicas 40 clamped to 10 by ...`.
var warningLine = regexp.MustCompile(`^Warning: (\w+) "([^"]+)": `)

// TestWarningsNameTheObject: `kubectl apply -f dir/` prints the webhook's warnings without
// saying which object each came from, so every warning names its object itself: each line
// kubectl prints for the folder names the kind and the name of one of the folder's objects,
// and each object that the webhook clamps or warns about is named, Deployments,
// StatefulSets, ReplicaSets and HPAs alike, with the contract's text; a write to the /scale
// subresource (kubectl scale) names the workload's real kind and name, in a clamp warning, a
// warn rule's warning and a denial.
func TestWarningsNameTheObject(t *testing.T) {
	bin := webhookBinary(t)
	c := startCluster(t)
	runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "warnings"})
	kubectl(t, c, "create", "namespace", "prod")
	kubectl(t, c, "create", "namespace", "dev-1")

	dir := t.TempDir()
	for name, doc := range warningsFolder {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The webhook configurations take a moment to reach the API server's informer, and the
	// namespace dev-1 the webhook's cache (rule batch before dev-large reads its labels).
	devWarning := `Warning: Deployment "big": spec.replicas: Invalid value: 8: must be within [0, 5] (replica policy rule "dev-large", action warn)`
	harness.Eventually(t, 15*time.Second, poll, "the webhook clamps and warns in a dry-run apply of the folder", func() (bool, string) {
		out, err := c.KubectlCmd(context.Background(), "apply", "--dry-run=server", "-f", dir)
		return err == nil && strings.Contains(out, "clamped to") && strings.Contains(out, devWarning), out
	})

	out := kubectl(t, c, "apply", "-f", dir)
	named := map[string]bool{}
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "Warning:") {
			continue
		}
		m := warningLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("a warning that does not start with the kind and the name of its object: %q", line)
			continue
		}
		named[m[1]+"/"+m[2]] = true
	}
	for _, want := range []string{
		`Warning: Deployment "web": spec.replicas 40 clamped to 10 by replica policy rule "prod-web"`,
		`Warning: StatefulSet "api": spec.replicas 30 clamped to 10 by replica policy rule "prod-web"`,
		`Warning: ReplicaSet "solo": spec.replicas 0 clamped to 2 by replica policy rule "prod-web"`,
		devWarning,
		`Warning: StatefulSet "cache": spec.replicas: Invalid value: 9: must be within [0, 5] (replica policy rule "dev-large", action warn)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply -f %s printed no line %q:\n%s", dir, want, out)
		}
	}
	// The HPA's target may not be in the webhook's cache yet when the HPA arrives right
	// after it: then the warning says its rule could not be checked, still naming the HPA.
	for _, obj := range []string{"Deployment/web", "StatefulSet/api", "ReplicaSet/solo", "HorizontalPodAutoscaler/web-hpa", "Deployment/big", "StatefulSet/cache"} {
		if !named[obj] {
			t.Errorf("no warning names %s:\n%s", obj, out)
		}
	}

	// A write to the scale subresource names the workload's real kind and name.
	out = kubectl(t, c, "-n", "prod", "scale", "statefulset", "api", "--replicas=50")
	if want := `Warning: StatefulSet "api": spec.replicas 50 clamped to 10 by replica policy rule "prod-web"`; !strings.Contains(out, want) {
		t.Errorf("kubectl scale statefulset printed no line %q:\n%s", want, out)
	}

	// An HPA whose target is cached: a warn rule's warning names the HPA and its field.
	hpaDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hpaDir, "big-hpa.yaml"), []byte(bigHPA), 0o644); err != nil {
		t.Fatal(err)
	}
	hpaWarning := `Warning: HorizontalPodAutoscaler "big-hpa": spec.maxReplicas: Invalid value: 9: must be within [0, 5] (replica policy rule "dev-large", action warn)`
	harness.Eventually(t, 15*time.Second, poll, "the HPA's target in the webhook's cache", func() (bool, string) {
		out, err := c.KubectlCmd(context.Background(), "apply", "--dry-run=server", "-f", hpaDir)
		return err == nil && strings.Contains(out, hpaWarning), out
	})
	if out := kubectl(t, c, "apply", "-f", hpaDir); !strings.Contains(out, hpaWarning) {
		t.Errorf("kubectl apply -f %s printed no line %q:\n%s", hpaDir, hpaWarning, out)
	}

	// /scale writes decided by a warn rule and a deny rule name the workload too. Both rules
	// come after the selector rule databases, which reads the workload's labels from the
	// webhook's cache: a dry run first, until it has them.
	scaleWarning := `Warning: Deployment "big": spec.replicas: Invalid value: 9: must be within [0, 5] (replica policy rule "dev-large", action warn)`
	harness.Eventually(t, 15*time.Second, poll, "the scale write decided by dev-large", func() (bool, string) {
		out, err := c.KubectlCmd(context.Background(), "-n", "dev-1", "scale", "deployment", "big", "--replicas=9", "--dry-run=server")
		return err == nil && strings.Contains(out, scaleWarning), out
	})
	if out := kubectl(t, c, "-n", "dev-1", "scale", "deployment", "big", "--replicas=9"); !strings.Contains(out, scaleWarning) {
		t.Errorf("kubectl scale deployment printed no line %q:\n%s", scaleWarning, out)
	}
	denial := `StatefulSet "db": spec.replicas: Invalid value: 12: must be within [3, 7] (replica policy rule "databases", action deny)`
	harness.Eventually(t, 15*time.Second, poll, "the scale write denied by databases", func() (bool, string) {
		out, err := c.KubectlCmd(context.Background(), "-n", "prod", "scale", "statefulset", "db", "--replicas=12", "--dry-run=server")
		return err != nil && strings.Contains(out, "denied the request: "+denial), out
	})
	if out, err := c.KubectlCmd(context.Background(), "-n", "prod", "scale", "statefulset", "db", "--replicas=12"); err == nil || !strings.Contains(out, "denied the request: "+denial) {
		t.Errorf("kubectl scale statefulset db --replicas=12: %v, want the denial %q:\n%s", err, denial, out)
	}
}
