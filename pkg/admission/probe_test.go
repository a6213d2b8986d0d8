package admission

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// TestProbeWarning: /mutate adds ProbeWarning to its answer to a dry-run write with field
// manager ProbeFieldManager, and to nothing else; the decision is the same either way.
func TestProbeWarning(t *testing.T) {
	mutate, validate := NewHandlers(workload.Builtin(), mustStore(t, "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n- {name: cap, namespaces: [apps], maxReplicas: 7}\n"), newLookup(), PolicyRef{})
	mux := http.NewServeMux()
	mux.Handle(MutatePath, Webhook(mutate))
	mux.Handle(ValidatePath, Webhook(validate))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	probeOptions := []byte(`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"` + ProbeFieldManager + `"}`)
	for _, c := range []struct {
		name    string
		path    string
		dryRun  bool
		options []byte
		want    bool
	}{
		{"a dry-run probe at /mutate", MutatePath, true, probeOptions, true},
		{"the same, not dry-run", MutatePath, false, probeOptions, false},
		{"a dry-run write of another field manager", MutatePath, true, nil, false},
		{"a dry-run probe at /validate", ValidatePath, true, probeOptions, false},
	} {
		r := harness.ScaleReview(c.name, "apps", "web", 2, 50)
		r.DryRun, r.Options = c.dryRun, c.options
		ans := typed(t, srv.URL+c.path, r)
		if got := slices.Contains(ans.Warnings, ProbeWarning); got != c.want {
			t.Errorf("%s: warnings %q, want the probe's warning %t", c.name, ans.Warnings, c.want)
		}
		if c.path == MutatePath && (!ans.Allowed || len(ans.Patch) == 0) {
			t.Errorf("%s: %+v, want the clamp to 7 all the same", c.name, ans)
		}
	}
}
