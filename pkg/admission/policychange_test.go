package admission

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
	mux.Handle(MutatePath, Webhook(NewHandler(Mutate, store, lookup, PolicyRef{})))
	mux.Handle(ValidatePath, Webhook(NewHandler(Validate, store, lookup, PolicyRef{})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	if got := applyPatch(t, typed(t, srv.URL+MutatePath, scaleReview("m1", "apps", "web", 2, 50)), scaleJSON("apps", "web", 50), "add"); got != 7 {
		t.Fatalf("/mutate under max 7: %d", got)
	}
	if _, err := store.Apply(policyConfigMap(strings.Replace(maxSeven, "maxReplicas: 7", "maxReplicas: 5", 1))); err != nil {
		t.Fatal(err)
	}
	ans := typed(t, srv.URL+ValidatePath, scaleReview("v1", "apps", "web", 2, 7))
	if !ans.Allowed || len(ans.Warnings) != 1 || !strings.Contains(ans.Warnings[0], `spec.replicas 7 is outside the bounds [1, 5] of replica policy rule "cap", which the policy changed while this request was admitted`) {
		t.Errorf("/validate of the value /mutate clamped to under the replaced policy: want allowed with a warning, got allowed %t, %v, warnings %q", ans.Allowed, ans.Result, ans.Warnings)
	}
	// Outside the bounds of every recent policy: /mutate did not run. Still rejected.
	ans = typed(t, srv.URL+ValidatePath, scaleReview("v2", "apps", "web", 2, 9))
	if ans.Allowed || ans.Result == nil || !strings.Contains(ans.Result.Message, "the clamp was not applied") {
		t.Errorf("/validate of 9, which no recent policy allows: want rejected, got %+v", ans)
	}
	// Deny rules are not revisited: the policy in force decides.
	if _, err := store.Apply(policyConfigMap(strings.Replace(maxSeven, "maxReplicas: 7}", "maxReplicas: 5, action: deny}", 1))); err != nil {
		t.Fatal(err)
	}
	if ans = typed(t, srv.URL+ValidatePath, scaleReview("v3", "apps", "web", 2, 7)); ans.Allowed {
		t.Errorf("/validate under a deny rule that the policy just tightened: want rejected, got allowed %v", ans.Warnings)
	}
	// Deleting the policy and creating it again: /mutate saw no bounds.
	store = mustStore(t, maxSeven)
	if _, err := store.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Apply(policyConfigMap(maxSeven)); err != nil {
		t.Fatal(err)
	}
	h := NewHandler(Validate, store, lookup, PolicyRef{})
	srv2 := httptest.NewServer(Webhook(h))
	defer srv2.Close()
	if ans = typed(t, srv2.URL, scaleReview("v4", "apps", "web", 2, 50)); !ans.Allowed {
		t.Errorf("/validate right after the policy was created again: want allowed with a warning, got %+v", ans.Result)
	}
}
