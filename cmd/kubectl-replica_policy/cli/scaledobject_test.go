package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check judges KEDA ScaledObjects as the webhook's /mutate does: their range, with KEDA's
// defaults (0, 100), by the rule of their scaleTargetRef (kind default Deployment).
func TestCheckScaledObjects(t *testing.T) {
	dir := t.TempDir()
	policyFile := filepath.Join(dir, "policy.yaml")
	manifests := filepath.Join(dir, "keda.yaml")
	for path, text := range map[string]string{
		policyFile: `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: queues, namespaces: [prod], kinds: [StatefulSet], maxReplicas: 5, action: deny}
- {name: prod-web, namespaces: [prod], minReplicas: 2, maxReplicas: 10, allowZero: true}
`,
		manifests: `apiVersion: keda.sh/v1alpha1
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
metadata: {name: broken, namespace: prod}
spec:
  scaleTargetRef: {kind: Deployment}
  maxReplicaCount: "many"
  triggers: []
`,
	} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := run(t, "", "check", "-p", policyFile, "-f", manifests, "-v")
	if code != 2 {
		t.Errorf("exit %d, want 2 (a refused ScaledObject)\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		`ScaledObject prod/defaults: clamp: ScaledObject "defaults": spec.maxReplicaCount 100 clamped to 10 by replica policy rule "prod-web"`,
		`ScaledObject prod/inside: pass`,
		`ScaledObject prod/queue: deny: ScaledObject "queue": spec.maxReplicaCount: Invalid value: 30: must be within [0, 5] (replica policy rule "queues", action deny)`,
		`ScaledObject prod/broken: error`,
		`spec.scaleTargetRef.name`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	// allowZero keeps KEDA's default minReplicaCount 0: only the maximum is clamped.
	if strings.Contains(out, "spec.minReplicaCount 0 clamped") {
		t.Errorf("minReplicaCount 0 clamped under allowZero:\n%s", out)
	}
}
