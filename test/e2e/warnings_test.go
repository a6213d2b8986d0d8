package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// warningsFolder is a folder of manifests as `kubectl apply -f dir/` reads it, one object
// per file, each outside the example policy's rule prod-web ([2, 10] for app in (web, api)
// in namespace prod): the webhook warns about each of them.
var warningsFolder = map[string]string{
	"1-web.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod, labels: {app: web}}
spec:
  replicas: 40
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: ` + harness.PauseImage + `}]}
`,
	"2-api.yaml": `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: api, namespace: prod, labels: {app: api}}
spec:
  replicas: 30
  serviceName: api
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: c, image: ` + harness.PauseImage + `}]}
`,
	"3-solo.yaml": `apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: solo, namespace: prod, labels: {app: web}}
spec:
  replicas: 0
  selector: {matchLabels: {app: solo}}
  template:
    metadata: {labels: {app: solo}}
    spec: {containers: [{name: c, image: ` + harness.PauseImage + `}]}
`,
	"4-web-hpa.yaml": `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web-hpa, namespace: prod}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 30
`,
}

// warningLine is a warning as kubectl prints it, in the contract's shape: the kind and the
// name of the object first, `StatefulSet "db": spec.replicas 40 clamped to 10 by ...`.
var warningLine = regexp.MustCompile(`^Warning: (\w+) "([^"]+)": `)

// TestWarningsNameTheObject: `kubectl apply -f dir/` prints the webhook's warnings without
// saying which object each came from, so every warning names its object itself: each line
// kubectl prints for the folder names the kind and the name of one of the folder's objects,
// and each object that the webhook clamps is named; a write to the /scale subresource of a
// StatefulSet names the StatefulSet.
func TestWarningsNameTheObject(t *testing.T) {
	bin := webhookBinary(t)
	c := startCluster(t)
	runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "warnings"})
	kubectl(t, c, "create", "namespace", "prod")

	dir := t.TempDir()
	for name, doc := range warningsFolder {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The webhook configurations take a moment to reach the API server's informer.
	harness.Eventually(t, 15*time.Second, poll, "the webhook clamps a dry-run apply of the folder", func() (bool, string) {
		out, err := c.KubectlCmd(context.Background(), "apply", "--dry-run=server", "-f", dir)
		return err == nil && strings.Contains(out, "clamped to"), out
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
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply -f %s printed no line %q:\n%s", dir, want, out)
		}
	}
	// The HPA's target may not be in the webhook's cache yet when the HPA arrives right
	// after it: then the warning says its rule could not be checked, still naming the HPA.
	for _, obj := range []string{"Deployment/web", "StatefulSet/api", "ReplicaSet/solo", "HorizontalPodAutoscaler/web-hpa"} {
		if !named[obj] {
			t.Errorf("no warning names %s:\n%s", obj, out)
		}
	}

	// A write to the scale subresource names the workload's real kind and name.
	out = kubectl(t, c, "-n", "prod", "scale", "statefulset", "api", "--replicas=50")
	if want := `Warning: StatefulSet "api": spec.replicas 50 clamped to 10 by replica policy rule "prod-web"`; !strings.Contains(out, want) {
		t.Errorf("kubectl scale statefulset printed no line %q:\n%s", want, out)
	}
}
