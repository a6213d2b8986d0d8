package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// TestReportsComponent: manifests/components/reports gives the binary, running with its
// ServiceAccount's token and the OpenReports CRD installed, exactly the rights --reports
// needs: it writes a namespace's report and deletes it when nothing there is bounded any
// more; SubjectAccessReviews show get, update and delete pinned to the name replica-policy,
// and nothing more.
func TestReportsComponent(t *testing.T) {
	bin, c, admin := setup(t, startCluster)
	ctx := context.Background()
	crd, err := harness.OpenReportsReportCRD()
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, c, "apply", "-f", crd)
	kubectl(t, c, "wait", "--for=condition=Established", "crd/reports.openreports.io", "--timeout=30s")

	built := applyComponentRole(t, c, "reports", "openreports.io")
	if !strings.Contains(harness.ManifestOfKind(built, "Deployment"), "--reports") {
		t.Errorf("the component's Deployment lacks --reports")
	}

	// A deny violator, created before the policy so that the webhook lets it in.
	kubectl(t, c, "create", "namespace", "prod")
	if _, err := admin.AppsV1().Deployments("prod").Create(ctx, harness.Deployment("prod", "db", 9, map[string]string{"tier": "db"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := harness.SetPolicy(ctx, admin, "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n- {name: db, namespaces: [prod], selector: {matchLabels: {tier: db}}, maxReplicas: 3, action: deny}\n"); err != nil {
		t.Fatal(err)
	}
	w := runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "reports", Args: []string{"--reports"}})

	t.Run("the binary writes and deletes reports with these rights", func(t *testing.T) {
		harness.Eventually(t, 20*time.Second, poll, "prod's report with db failing", func() (bool, string) {
			out, err := c.KubectlCmd(ctx, "-n", "prod", "get", "reports.openreports.io", "replica-policy",
				"-o", "jsonpath={.source} {.summary.fail} {.results[0].result} {.results[0].rule} {.results[0].resources[0].name}")
			return err == nil && strings.TrimSpace(out) == "replica-policy 1 fail db db", out
		})
		if err := admin.AppsV1().Deployments("prod").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 20*time.Second, poll, "prod's report deleted", func() (bool, string) {
			out, err := c.KubectlCmd(ctx, "-n", "prod", "get", "reports.openreports.io", "replica-policy")
			return err != nil && strings.Contains(out, "NotFound"), out
		})
		if log := w.Log(); strings.Contains(log, "forbidden") {
			t.Errorf("the binary was refused a request:\n%s", harness.TailLines(log, 30))
		}
	})

	t.Run("SubjectAccessReviews: pinned by name where RBAC allows", func(t *testing.T) {
		var rows []access
		for _, ns := range []string{"prod", ""} {
			rows = append(rows, access{"create", "openreports.io", "reports", "", ns, "", true},
				access{"list", "openreports.io", "reports", "", ns, "", true})
			for _, v := range []string{"get", "update", "delete"} {
				rows = append(rows, access{v, "openreports.io", "reports", "", ns, "replica-policy", true},
					access{v, "openreports.io", "reports", "", ns, "kyverno-report", false})
			}
			for _, v := range []string{"watch", "patch", "deletecollection"} {
				rows = append(rows, access{v, "openreports.io", "reports", "", ns, "", false})
			}
			rows = append(rows, access{"create", "openreports.io", "clusterreports", "", "", "", false},
				access{"update", "openreports.io", "reports", "status", ns, "replica-policy", false})
		}
		checkAccess(t, admin, append(rows, accessTableWithout("openreports.io")...))
	})
}
