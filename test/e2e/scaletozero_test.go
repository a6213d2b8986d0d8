package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// Scale to zero (HPAScaleToZero, on by default since Kubernetes 1.37): an HPA may keep
// minReplicas 0, and a workload may sit at 0, exactly where the deciding rule has allowZero.
// Run inside TestAutoscalersWithTheHPAController, with its webhook, scaler and HPA
// controller, under autoscalerPolicy's rules hpa-zero (allowZero) and hpa-nozero.
//
// Without a metrics API the HPA controller never decides to scale to 0 itself; it leaves a
// workload at 0 under an HPA whose minReplicas is 0 (scaling is then idle), which is what
// the scaler must leave alone too.
func checkScaleToZero(t *testing.T, c *harness.Cluster, admin kubernetes.Interface) {
	ctx := context.Background()
	createDeployments(t, c, admin, "web", 3, map[string]string{"app": "web"}, "hpa-zero", "hpa-nozero")
	waitClampReady(t, c, "hpa-nozero", "web", 40)

	// The HPA's minReplicas 0: kept under allowZero, clamped to the minimum without it. The
	// API server allows minReplicas 0 only with an Object or External metric.
	zeroHPA := func(ns string) string {
		return hpaManifest("autoscaling/v2", ns, "web", "Deployment", "web", 0, 8) + `  metrics:
  - type: External
    external:
      metric: {name: queue_messages_ready}
      target: {type: AverageValue, averageValue: "30"}
`
	}
	out := kubectlStdin(t, c, zeroHPA("hpa-zero"), "apply", "-f", "-")
	if strings.Contains(out, "clamped") {
		t.Errorf("an HPA with minReplicas 0 under allowZero was clamped:\n%s", out)
	}
	if got := hpaRange(t, c, "hpa-zero", "web"); got != "[0, 8]" {
		t.Errorf("HPA under allowZero stored as %s, want [0, 8]", got)
	}
	out = kubectlStdin(t, c, zeroHPA("hpa-nozero"), "apply", "-f", "-")
	if !strings.Contains(out, "spec.minReplicas 0 clamped to 2") {
		t.Errorf("an HPA with minReplicas 0 without allowZero: kubectl apply output lacks the clamp to 2:\n%s", out)
	}
	if got := hpaRange(t, c, "hpa-nozero", "web"); got != "[2, 8]" {
		t.Errorf("HPA without allowZero stored as %s, want [2, 8]", got)
	}

	// The workload at 0: stays there under allowZero, through the HPA controller's syncs
	// and the scaler's passes; clamped to the minimum without it.
	kubectl(t, c, "-n", "hpa-zero", "scale", "deployment", "web", "--replicas=0")
	out = kubectl(t, c, "-n", "hpa-nozero", "scale", "deployment", "web", "--replicas=0")
	if !strings.Contains(out, "clamped to 2") {
		t.Errorf("kubectl scale --replicas=0 without allowZero: output lacks the clamp to 2:\n%s", out)
	}
	time.Sleep(3 * hpaSyncPeriod)
	for ns, want := range map[string]int32{"hpa-zero": 0, "hpa-nozero": 2} {
		if got, err := replicasOf(ctx, admin, ns, "web"); err != nil || got != want {
			t.Errorf("%s/web at %d (%v) after three HPA syncs, want %d", ns, got, err, want)
		}
	}
}
