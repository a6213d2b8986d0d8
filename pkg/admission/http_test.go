package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// The HTTP tests go through controller-runtime's adapter (admission.Webhook), as the
// webhook server does: raw bytes in, an AdmissionReview out.

const httpPolicy = header + `rules:
- name: prod-web
  namespaces: [prod]
  minReplicas: 2
  maxReplicas: 10
- name: strict
  namespaces: [strict]
  maxReplicas: 5
  action: deny
- name: loose
  namespaces: [loose]
  maxReplicas: 4
  action: warn
`

// server serves /mutate and /validate for doc (no policy when empty) with lookup.
func server(t *testing.T, doc string, lookup Lookup) *httptest.Server {
	t.Helper()
	store := policystore.NewStore(policy.Options{AlwaysExempt: []string{ownNamespace}})
	if doc != "" {
		store = mustStore(t, doc)
	}
	ref := PolicyRef{Namespace: ownNamespace, Name: policy.DefaultConfigMapName, Options: policy.Options{AlwaysExempt: []string{ownNamespace}}}
	mux := http.NewServeMux()
	mutate, validate := NewHandlers(workload.Builtin(), store, lookup, ref)
	mux.Handle(MutatePath, Webhook(mutate))
	mux.Handle(ValidatePath, Webhook(validate))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// post sends body and returns the decoded AdmissionReview. Every answer, errors included,
// is HTTP 200 with an AdmissionReview whose response carries the outcome.
func post(t *testing.T, url, contentType string, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return decodeAnswer(t, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Body)
}

func decodeAnswer(t *testing.T, status int, contentType string, body io.Reader) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		t.Fatalf("HTTP %d, want 200 (the outcome is in the AdmissionReview): %s", status, raw)
	}
	// contentType is not checked: controller-runtime leaves it to net/http's sniffing
	// ("text/plain; charset=utf-8"), and the API server's webhook client decodes the
	// answer as JSON whatever it says.
	_ = contentType
	var ar admissionv1.AdmissionReview
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ar); err != nil {
		t.Fatalf("answer is not an AdmissionReview: %v\n%s", err, raw)
	}
	if ar.Response == nil || ar.Request != nil {
		t.Fatalf("answer carries no response (or echoes the request): %s", raw)
	}
	return ar.Response
}

// typed checks the answer to a decoded request: the AdmissionReview names its version,
// as the API server requires, and carries the request's UID.
func typed(t *testing.T, url string, r harness.Review) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(r.JSON()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var meta metav1.TypeMeta
	if err := json.Unmarshal(raw, &meta); err != nil || meta.APIVersion != "admission.k8s.io/v1" || meta.Kind != "AdmissionReview" {
		t.Fatalf("answer is not an admission.k8s.io/v1 AdmissionReview (%v): %s", err, raw)
	}
	ans := decodeAnswer(t, resp.StatusCode, resp.Header.Get("Content-Type"), bytes.NewReader(raw))
	if string(ans.UID) != r.UID {
		t.Errorf("answer UID %q, want the request's %q", ans.UID, r.UID)
	}
	return ans
}

// wantClamped wants ans to allow obj with a JSON Patch that adds spec.replicas want, and
// the one warning warning.
func wantClamped(t *testing.T, ans *admissionv1.AdmissionResponse, obj []byte, want int32, warning string) {
	t.Helper()
	if !ans.Allowed {
		t.Fatalf("denied: %+v", ans.Result)
	}
	if got := applyPatch(t, ans, obj, "add"); got != want {
		t.Errorf("patched replicas %d, want %d", got, want)
	}
	if !slices.Equal(ans.Warnings, []string{warning}) {
		t.Errorf("warnings %q, want %q", ans.Warnings, []string{warning})
	}
}

// applyPatch checks that the answer's patch is exactly one JSON patch operation on
// /spec/replicas, applies it to obj and returns the result's spec.replicas.
func applyPatch(t *testing.T, ans *admissionv1.AdmissionResponse, obj []byte, wantOp string) int32 {
	t.Helper()
	if ans.PatchType == nil || *ans.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v, want JSONPatch", ans.PatchType)
	}
	var ops []map[string]any
	if err := json.Unmarshal(ans.Patch, &ops); err != nil {
		t.Fatalf("patch %q: %v", ans.Patch, err)
	}
	if len(ops) != 1 || ops[0]["op"] != wantOp || ops[0]["path"] != "/spec/replicas" {
		t.Fatalf("patch %s, want exactly one %q of /spec/replicas", ans.Patch, wantOp)
	}
	p, err := jsonpatch.DecodePatch(ans.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := p.Apply(obj)
	if err != nil {
		t.Fatalf("patch %s does not apply: %v", ans.Patch, err)
	}
	var f replicaFields
	if err := json.Unmarshal(patched, &f); err != nil || f.Spec.Replicas == nil {
		t.Fatalf("patched object has no spec.replicas (%v): %s", err, patched)
	}
	// Nothing but spec.replicas changed.
	var before, after map[string]any
	_ = json.Unmarshal(obj, &before)
	_ = json.Unmarshal(patched, &after)
	delete(before["spec"].(map[string]any), "replicas")
	delete(after["spec"].(map[string]any), "replicas")
	b1, _ := json.Marshal(before)
	b2, _ := json.Marshal(after)
	if !bytes.Equal(b1, b2) {
		t.Errorf("the patch changed more than spec.replicas")
	}
	return *f.Spec.Replicas
}

func TestHTTPDeploymentCreateClamped(t *testing.T) {
	srv := server(t, httpPolicy, newLookup())
	r := harness.DeploymentReview("7b0f3e7c-1d0e-4c8e-9a3e-5b7a4f6c2d10", "prod", "web", nil, ptr.To(int32(50)), map[string]string{"app": "web"})
	ans := typed(t, srv.URL+MutatePath, r)
	wantClamped(t, ans, r.Object, 10, `Deployment "web": spec.replicas 50 clamped to 10 by replica policy rule "prod-web"`)
	var audit map[string]any
	if err := json.Unmarshal([]byte(ans.AuditAnnotations["decision"]), &audit); err != nil {
		t.Fatalf("audit annotation %q is not JSON: %v", ans.AuditAnnotations, err)
	}
	if audit["rule"] != "prod-web" || audit["action"] != "clamp" || audit["outcome"] != "clamped" || audit["replicas"] != float64(50) {
		t.Errorf("audit annotation %v, want rule prod-web, action clamp, outcome clamped, replicas 50", audit)
	}

	// In bounds: allowed, no patch, no warning, no audit annotation.
	r = harness.DeploymentReview("7b0f3e7c-1d0e-4c8e-9a3e-5b7a4f6c2d11", "prod", "web", nil, ptr.To(int32(5)), nil)
	ans = typed(t, srv.URL+MutatePath, r)
	if !ans.Allowed || ans.Patch != nil || ans.PatchType != nil || len(ans.Warnings) > 0 || len(ans.AuditAnnotations) > 0 {
		t.Errorf("in bounds: want a bare allow, got %+v", ans)
	}
}

func TestHTTPScaleToZeroClampedUp(t *testing.T) {
	srv := server(t, httpPolicy, newLookup())
	r := harness.ScaleReview("5c8d2b1a-0f7e-4d3c-8b9a-1e2f3a4b5c6d", "prod", "web", 3, 0)
	ans := typed(t, srv.URL+MutatePath, r)
	// The Scale has "spec":{}: the patch must add the member, not replace a missing one.
	wantClamped(t, ans, r.Object, 2, `Deployment "web": spec.replicas 0 clamped to 2 by replica policy rule "prod-web"`)
	// /validate sees the final object, with the patch applied: allowed.
	r.Object = harness.ScaleJSON("prod", "web", 2)
	if ans := typed(t, srv.URL+ValidatePath, r); !ans.Allowed || len(ans.Warnings) > 0 {
		t.Errorf("validate after the clamp: want allowed silently, got %+v", ans)
	}
}

func TestHTTPDenyAndWarn(t *testing.T) {
	srv := server(t, httpPolicy, newLookup())
	r := harness.DeploymentReview("d1", "strict", "big", nil, ptr.To(int32(7)), nil)
	for _, path := range []string{MutatePath, ValidatePath} {
		ans := typed(t, srv.URL+path, r)
		if ans.Allowed || ans.Result == nil || ans.Result.Code != http.StatusUnprocessableEntity || ans.Result.Reason != metav1.StatusReasonInvalid {
			t.Fatalf("%s: want denied 422 Invalid, got %+v", path, ans.Result)
		}
		for _, part := range []string{"spec.replicas", "7", "[0, 5]", `"strict"`} {
			if !strings.Contains(ans.Result.Message, part) {
				t.Errorf("%s: denial %q does not mention %s", path, ans.Result.Message, part)
			}
		}
		if ans.Patch != nil {
			t.Errorf("%s: a denial carries a patch", path)
		}
	}
	r = harness.DeploymentReview("w1", "loose", "chatty", nil, ptr.To(int32(9)), nil)
	// One call decides: the warning comes from /mutate, and /validate does not repeat it.
	if ans := typed(t, srv.URL+MutatePath, r); !ans.Allowed || len(ans.Warnings) != 1 || ans.Patch != nil || !strings.Contains(ans.Warnings[0], `replica policy rule "loose", action warn`) {
		t.Errorf("warn at /mutate: want allowed with one warning, got %+v", ans)
	}
	if ans := typed(t, srv.URL+ValidatePath, r); !ans.Allowed || len(ans.Warnings) != 0 {
		t.Errorf("warn at /validate: want a bare allow, got %+v", ans)
	}
}

func TestHTTPBadRequests(t *testing.T) {
	lookup := newLookup()
	srv := server(t, httpPolicy, lookup)
	good := harness.DeploymentReview("b1", "prod", "web", nil, ptr.To(int32(50)), nil).JSON()
	for _, tc := range []struct {
		name        string
		contentType string
		body        []byte
		want        string // in the error message
	}{
		{"malformed JSON", "application/json", []byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"x"`), "json parse error"},
		{"not JSON at all", "application/json", []byte("<html>hello</html>"), ""},
		{"wrong content type", "text/plain", good, "contentType=text/plain"},
		{"empty body", "application/json", nil, "request body is empty"},
		{"not an AdmissionReview", "application/json", []byte(`{"kind":"Deployment","apiVersion":"apps/v1","spec":{"replicas":50}}`), "not an AdmissionReview request"},
		{"empty object", "application/json", []byte(`{}`), "not an AdmissionReview request"},
		{"review without a request", "application/json", []byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}`), "not an AdmissionReview request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{MutatePath, ValidatePath} {
				ans := post(t, srv.URL+path, tc.contentType, tc.body)
				if ans.Allowed || ans.Result == nil || ans.Result.Code < 400 || ans.Result.Code >= 500 {
					t.Fatalf("%s: want a 4xx error answer, got allowed=%t result %+v", path, ans.Allowed, ans.Result)
				}
				if !strings.Contains(ans.Result.Message, tc.want) {
					t.Errorf("%s: message %q does not mention %q", path, ans.Result.Message, tc.want)
				}
				if ans.Patch != nil {
					t.Errorf("%s: error answer with a patch", path)
				}
			}
		})
	}
	if n := lookup.calls.Load(); n != 0 {
		t.Errorf("%d cache lookups for requests that never decoded", n)
	}
	// A request that decodes but whose object is broken: a 400 that carries the UID.
	r := harness.DeploymentReview("b2", "prod", "web", nil, nil, nil)
	r.Object = []byte(`{"spec":{"replicas":"many"}}`)
	ans := typed(t, srv.URL+MutatePath, r)
	if ans.Allowed || ans.Result.Code != http.StatusBadRequest || !strings.Contains(ans.Result.Message, "decoding the object") {
		t.Errorf("broken object: want a 400 naming the object, got %+v", ans.Result)
	}
}

// countingReader serves n bytes of a valid-looking AdmissionReview padded with spaces
// and counts what was read.
type countingReader struct {
	prefix []byte
	n, off int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.off >= c.n {
		return 0, io.EOF
	}
	k := int64(len(p))
	if rest := c.n - c.off; k > rest {
		k = rest
	}
	for i := range k {
		if at := c.off + i; at < int64(len(c.prefix)) {
			p[i] = c.prefix[at]
		} else {
			p[i] = ' '
		}
	}
	c.off += k
	return int(k), nil
}

func TestHTTPOversizedBody(t *testing.T) {
	const limit = 7 << 20 // controller-runtime's maxRequestSize (pkg/webhook/admission/http.go)
	lookup := newLookup()
	store := mustStore(t, httpPolicy)
	wh := Webhook(NewHandler(Mutate, workload.Builtin(), store, lookup, PolicyRef{}))

	// A well-formed review followed by whitespace: it would decode if it were read whole.
	body := &countingReader{prefix: harness.DeploymentReview("big", "prod", "web", nil, ptr.To(int32(50)), nil).JSON(), n: 64 << 20}
	req := httptest.NewRequest(http.MethodPost, MutatePath, body)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	wh.ServeHTTP(rec, req)
	ans := decodeAnswer(t, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	if ans.Allowed || ans.Result == nil || ans.Result.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("want a 413 error answer, got allowed=%t %+v", ans.Allowed, ans.Result)
	}
	if body.off > limit+64<<10 {
		t.Errorf("the server read %d bytes of a %d-byte body: more than the %d-byte cap", body.off, body.n, limit)
	}
	if n := lookup.calls.Load(); n != 0 {
		t.Errorf("the oversized request reached the decision (%d lookups)", n)
	}

	// Just under the cap, the same request is decided.
	small := &countingReader{prefix: body.prefix, n: limit - 1}
	req = httptest.NewRequest(http.MethodPost, MutatePath, small)
	req.Header.Set("Content-Type", "application/json")
	rec = httptest.NewRecorder()
	wh.ServeHTTP(rec, req)
	if ans := decodeAnswer(t, rec.Code, rec.Header().Get("Content-Type"), rec.Body); !ans.Allowed || ans.Patch == nil {
		t.Errorf("a %d-byte request: want it decided (clamped), got allowed=%t %+v", small.n, ans.Allowed, ans.Result)
	}
}

func TestHTTPNotOurs(t *testing.T) {
	srv := server(t, httpPolicy, newLookup())
	for _, tc := range []struct {
		review harness.Review
		want   string
	}{
		{harness.Review{UID: "p1", Operation: admissionv1.Create, Namespace: "prod", Name: "p", Kind: "Pod", Resource: "pods",
			Object: []byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"prod"},"spec":{"containers":[{"name":"c","image":"x"}]}}`)},
			`replica-policy does not handle pods (group "")`},
		{harness.Review{UID: "s1", Operation: admissionv1.Create, Namespace: "prod", Name: "logs", Kind: "DaemonSet", Group: "apps", Resource: "daemonsets",
			Object: []byte(`{"kind":"DaemonSet","apiVersion":"apps/v1","metadata":{"name":"logs","namespace":"prod"},"spec":{}}`)},
			`replica-policy does not handle daemonsets (group "apps")`},
		{harness.Review{UID: "d1", Operation: admissionv1.Delete, Namespace: "prod", Name: "web", Kind: "Deployment", Group: "apps", Resource: "deployments",
			OldObject: harness.DeploymentJSON("prod", "web", ptr.To(int32(50)), nil)},
			`replica-policy does not handle DELETE of deployments (group "apps")`},
	} {
		for _, path := range []string{MutatePath, ValidatePath} {
			ans := typed(t, srv.URL+path, tc.review)
			if !ans.Allowed || ans.Patch != nil || !slices.Equal(ans.Warnings, []string{tc.want}) {
				t.Errorf("%s %s: want allowed with warning %q, got allowed=%t warnings %q", path, tc.review.Resource, tc.want, ans.Allowed, ans.Warnings)
			}
		}
	}
}

func TestHTTPPanicRecovered(t *testing.T) {
	srv := server(t, httpPolicy, panicLookup{})
	r := harness.DeploymentReview("c0ffee00-0000-4000-8000-000000000001", "boom", "web", nil, ptr.To(int32(50)), nil)
	ans := typed(t, srv.URL+MutatePath, r)
	if ans.Allowed || ans.Result == nil || ans.Result.Code != http.StatusInternalServerError || !strings.Contains(ans.Result.Message, "lookup exploded") {
		t.Fatalf("want a 500 error answer naming the panic, got allowed=%t %+v", ans.Allowed, ans.Result)
	}
	// The server keeps serving, on the same path and the other one: /validate of the request
	// /mutate just answered (same UID) sees the clamp undone and rejects it.
	for i, path := range []string{MutatePath, ValidatePath, MutatePath} {
		r := harness.DeploymentReview("c0ffee00-0000-4000-8000-000000000010", "prod", "web", nil, ptr.To(int32(50)), nil)
		ans := typed(t, srv.URL+path, r)
		if path == MutatePath && (!ans.Allowed || ans.Patch == nil) {
			t.Errorf("request %d after the panic: want clamped, got allowed=%t %+v", i, ans.Allowed, ans.Result)
		}
		if path == ValidatePath && ans.Allowed {
			t.Errorf("request %d after the panic: want denied (clamp not applied), got allowed", i)
		}
	}
}

// policyReview is a write of a ConfigMap in namespace ns named name.
func policyReview(t *testing.T, op admissionv1.Operation, ns, name string, data map[string]string) harness.Review {
	t.Helper()
	cm := corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: "6a4d0e5f-1111-4222-8333-444455556666", ResourceVersion: "901"},
		Data:       data}
	obj, err := json.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	r := harness.Review{UID: "cm-" + name + "-" + string(op), Operation: op, Namespace: ns, Name: name, Kind: "ConfigMap", Resource: "configmaps", Object: obj}
	switch op {
	case admissionv1.Update:
		r.OldObject = obj
	case admissionv1.Delete:
		r.Object, r.OldObject = nil, obj
	}
	return r
}

func TestHTTPPolicyConfigMap(t *testing.T) {
	srv := server(t, httpPolicy, newLookup())
	validate := srv.URL + ValidatePath
	const invalid = header + `rules:
- name: a
  minReplicas: 5
  maxReplicas: 1
- name: a
  maxReplicas: 3
  action: block
- name: third
  namespaces: ["[unclosed"]
  minReplicas: -1
`

	t.Run("valid", func(t *testing.T) {
		for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update} {
			if ans := typed(t, validate, policyReview(t, op, ownNamespace, policy.DefaultConfigMapName, map[string]string{"policy.yaml": httpPolicy})); !ans.Allowed {
				t.Errorf("%s: valid policy denied: %+v", op, ans.Result)
			}
		}
	})

	t.Run("invalid: every error, each with its field path", func(t *testing.T) {
		ans := typed(t, validate, policyReview(t, admissionv1.Update, ownNamespace, policy.DefaultConfigMapName, map[string]string{"policy.yaml": invalid}))
		if ans.Allowed || ans.Result == nil || ans.Result.Code != http.StatusUnprocessableEntity || ans.Result.Reason != metav1.StatusReasonInvalid {
			t.Fatalf("want denied 422 Invalid, got %+v", ans.Result)
		}
		msg := ans.Result.Message
		for _, path := range []string{"rules[0].maxReplicas: ", "rules[1].name: ", "rules[1].action: ", "rules[2].namespaces[0]: ", "rules[2].minReplicas: "} {
			if !strings.Contains(msg, path) {
				t.Errorf("denial does not list %q:\n%s", path, msg)
			}
		}
		// Exactly the errors the policy package finds, all of them.
		_, err := policy.Load([]byte(invalid), policy.Options{})
		var ie *policy.InvalidError
		if !errors.As(err, &ie) {
			t.Fatalf("policy.Load: %v", err)
		}
		for _, e := range ie.Errs {
			if !strings.Contains(msg, e.Error()) {
				t.Errorf("denial does not list %q:\n%s", e.Error(), msg)
			}
		}
		if !strings.Contains(msg, "rules[0].maxReplicas: Invalid value: 1: must be greater than or equal to minReplicas (5)") {
			t.Errorf("denial does not give the contract's example text:\n%s", msg)
		}
	})

	t.Run("unknown field named by its path", func(t *testing.T) {
		ans := typed(t, validate, policyReview(t, admissionv1.Create, ownNamespace, policy.DefaultConfigMapName,
			map[string]string{"policy.yaml": header + "rules:\n- name: a\n  maxReplica: 3\n"}))
		if ans.Allowed || !strings.Contains(ans.Result.Message, "rules[0].maxReplica") {
			t.Errorf("want denied naming rules[0].maxReplica, got %+v", ans.Result)
		}
	})

	t.Run("missing policy.yaml", func(t *testing.T) {
		ans := typed(t, validate, policyReview(t, admissionv1.Create, ownNamespace, policy.DefaultConfigMapName, map[string]string{"policy.yml": httpPolicy}))
		if ans.Allowed || !strings.Contains(ans.Result.Message, "data[policy.yaml]") {
			t.Errorf("want denied naming data[policy.yaml], got %+v", ans.Result)
		}
	})

	t.Run("other ConfigMaps, other stages and deletes are allowed", func(t *testing.T) {
		garbage := map[string]string{"policy.yaml": "rules: [{{{"}
		for _, tc := range []struct {
			name string
			url  string
			r    harness.Review
		}{
			{"another name", validate, policyReview(t, admissionv1.Create, ownNamespace, "settings", garbage)},
			{"another namespace", validate, policyReview(t, admissionv1.Create, "prod", "replica-policy", garbage)},
			{"the mutating webhook", srv.URL + MutatePath, policyReview(t, admissionv1.Update, ownNamespace, policy.DefaultConfigMapName, garbage)},
			{"delete", validate, policyReview(t, admissionv1.Delete, ownNamespace, policy.DefaultConfigMapName, garbage)},
		} {
			if ans := typed(t, tc.url, tc.r); !ans.Allowed || len(ans.Warnings) > 0 {
				t.Errorf("%s: want a bare allow, got allowed=%t %+v warnings %q", tc.name, ans.Allowed, ans.Result, ans.Warnings)
			}
		}
	})
}
