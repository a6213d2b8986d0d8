package admission

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// TestPolicyChangeBetweenMutateAndValidate: /mutate and /validate are two calls, and the
// policy can change between them. /mutate clamps 50 to 7 under the policy of a moment ago;
// /validate, under the new bounds [1, 5], must not reject that write as if the clamp had
// never been applied (it used to: one write in a hundred failed while the policy flapped
// in test/reliability), but still rejects a value no recent policy allowed.
func TestPolicyChangeBetweenMutateAndValidate(t *testing.T) {
	const maxSeven = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: cap, namespaces: [apps], minReplicas: 1, maxReplicas: 7}
`
	store := mustStore(t, maxSeven)
	lookup := newLookup()
	mux := http.NewServeMux()
	mutate, validate := NewHandlers(workload.Builtin(), store, lookup, PolicyRef{})
	mux.Handle(MutatePath, Webhook(mutate))
	mux.Handle(ValidatePath, Webhook(validate))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	if got := applyPatch(t, typed(t, srv.URL+MutatePath, harness.ScaleReview("m1", "apps", "web", 2, 50)), harness.ScaleJSON("apps", "web", 50), "add"); got != 7 {
		t.Fatalf("/mutate under max 7: %d", got)
	}
	if _, err := store.Apply(policyConfigMap(strings.Replace(maxSeven, "maxReplicas: 7", "maxReplicas: 5", 1))); err != nil {
		t.Fatal(err)
	}
	ans := typed(t, srv.URL+ValidatePath, harness.ScaleReview("m1", "apps", "web", 2, 7))
	if !ans.Allowed || len(ans.Warnings) != 1 || !strings.Contains(ans.Warnings[0], `spec.replicas 7 is outside the bounds [1, 5] of replica policy rule "cap", which the policy changed while this request was admitted`) {
		t.Errorf("/validate of the value /mutate clamped to under the replaced policy: want allowed with a warning, got allowed %t, %v, warnings %q", ans.Allowed, ans.Result, ans.Warnings)
	}
	// /mutate answered this request, and the final object is outside the bounds of every
	// recent policy: a later mutation undid the clamp. Rejected.
	typed(t, srv.URL+MutatePath, harness.ScaleReview("v2", "apps", "web", 2, 9))
	ans = typed(t, srv.URL+ValidatePath, harness.ScaleReview("v2", "apps", "web", 2, 9))
	if ans.Allowed || ans.Result == nil || !strings.Contains(ans.Result.Message, "the clamp was not applied") {
		t.Errorf("/validate of 9 after /mutate answered, which no recent policy allows: want rejected, got %+v", ans)
	}
	// /mutate never saw this request (it failed, timed out, or ran on another replica):
	// under failurePolicy Ignore the write must not fail here. Allowed, with a warning.
	ans = typed(t, srv.URL+ValidatePath, harness.ScaleReview("v2b", "apps", "web", 2, 9))
	if !ans.Allowed || len(ans.Warnings) != 1 || !strings.Contains(ans.Warnings[0], "was not clamped: the mutating webhook did not decide this request; the scaler will correct it") {
		t.Errorf("/validate of a request /mutate did not answer: want allowed with a warning, got allowed %t %v %q", ans.Allowed, ans.Result, ans.Warnings)
	}
	// Deny rules are not revisited: the policy in force decides.
	if _, err := store.Apply(policyConfigMap(strings.Replace(maxSeven, "maxReplicas: 7}", "maxReplicas: 5, action: deny}", 1))); err != nil {
		t.Fatal(err)
	}
	if ans = typed(t, srv.URL+ValidatePath, harness.ScaleReview("v3", "apps", "web", 2, 7)); ans.Allowed {
		t.Errorf("/validate under a deny rule that the policy just tightened: want rejected, got allowed %v", ans.Warnings)
	}
	// Deleting the policy and creating it again: /mutate saw no bounds.
	store = mustStore(t, maxSeven)
	if _, err := store.Apply(nil); err != nil {
		t.Fatal(err)
	}
	mutate, validate = NewHandlers(workload.Builtin(), store, lookup, PolicyRef{})
	mux2 := http.NewServeMux()
	mux2.Handle(MutatePath, Webhook(mutate))
	mux2.Handle(ValidatePath, Webhook(validate))
	srv2 := httptest.NewServer(mux2)
	defer srv2.Close()
	if ans = typed(t, srv2.URL+MutatePath, harness.ScaleReview("v4", "apps", "web", 2, 50)); !ans.Allowed || ans.Patch != nil {
		t.Fatalf("/mutate without a policy: want allowed untouched, got %+v", ans)
	}
	if _, err := store.Apply(policyConfigMap(maxSeven)); err != nil {
		t.Fatal(err)
	}
	if ans = typed(t, srv2.URL+ValidatePath, harness.ScaleReview("v4", "apps", "web", 2, 50)); !ans.Allowed || len(ans.Warnings) != 1 || !strings.Contains(ans.Warnings[0], "which the policy changed while this request was admitted") {
		t.Errorf("/validate right after the policy was created again: want allowed with a warning, got %+v %q", ans.Result, ans.Warnings)
	}
}
