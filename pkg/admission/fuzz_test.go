package admission

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// fuzzPolicy reaches every branch of the decision: literal, glob, namespace-selector and
// selector rules (the last need the cache), each action, allowZero, exempt namespaces and a
// default.
const fuzzPolicy = header + `exemptNamespaces: [kube-system, "free-*"]
default: {minReplicas: 1, maxReplicas: 50}
rules:
- name: prod-web
  namespaces: [prod]
  selector: {matchLabels: {tier: web}}
  minReplicas: 2
  maxReplicas: 10
  allowZero: true
- name: labelled
  namespaceSelector: {matchLabels: {env: prod}}
  minReplicas: 3
- name: strict
  namespaces: ["strict*"]
  maxReplicas: 5
  action: deny
- name: loose
  namespaces: [loose]
  minReplicas: 2
  maxReplicas: 4
  action: warn
`

// FuzzHandler sends arbitrary bytes, as the body of a POST with content type
// application/json, through controller-runtime's HTTP adapter (admission.Webhook, as the
// webhook server serves it) to both webhooks. The seeds are the requests kube-apiserver
// sends (Deployment, Scale, policy ConfigMap) and, in testdata/fuzz/FuzzHandler, mutations
// of them.
//
// Panic recovery is turned off, so a panic anywhere in the handler fails the fuzz instead
// of becoming a 500 answer. For every input, at each webhook: an HTTP 200 whose body is
// an AdmissionReview with a response and nothing else; a denial or error carries a 4xx
// code and a message; a patch comes only from /mutate and is exactly one add of a
// non-negative spec.replicas, never for a request with a negative one; when the body was an
// AdmissionReview (JSON) with a request.uid, the answer carries that uid; and the decision metric's kind label takes no
// value from the request.
func FuzzHandler(f *testing.F) {
	const uid = "705ab4f5-6393-11e8-b7cc-42010a800002"
	old, fifty := ptr.To(int32(3)), ptr.To(int32(50))
	policyDoc := map[string]string{policy.ConfigMapKey: fuzzPolicy}
	for _, r := range []harness.Review{
		harness.DeploymentReview(uid, "prod", "web", nil, fifty, map[string]string{"tier": "web"}),
		harness.DeploymentReview(uid, "prod", "web", old, ptr.To(int32(0)), map[string]string{"tier": "web"}),
		harness.DeploymentReview(uid, "strict-a", "big", nil, ptr.To(int32(7)), nil),
		harness.DeploymentReview(uid, "loose", "chatty", old, ptr.To(int32(9)), nil),
		harness.DeploymentReview(uid, "free-1", "any", nil, nil, nil),
		harness.DeploymentReview(uid, "other", "same", old, old, nil),
		harness.ScaleReview(uid, "prod", "web", 3, 0),
		harness.ScaleReview(uid, "prod", "web", 3, 40),
		harness.ScaleReview(uid, "prod", "uncached", 3, 40),
		harness.ScaleReview(uid, "strict-b", "db", 3, 8),
		harness.AutoscalerReview(uid, nil, harness.HPA{Namespace: "prod", Name: "web", TargetKind: "Deployment", TargetName: "web", Max: 40}),
		harness.AutoscalerReview(uid, &harness.HPA{Namespace: "strict-a", Name: "big", TargetKind: "Deployment", TargetName: "big", Max: 4},
			harness.HPA{Namespace: "strict-a", Name: "big", TargetKind: "Deployment", TargetName: "big", Min: ptr.To(int32(0)), Max: 40}),
		configMapReview(uid, admissionv1.Create, policyDoc),
		configMapReview(uid, admissionv1.Update, map[string]string{policy.ConfigMapKey: "rules: [{name: a, maxReplica: 1}]"}),
		configMapReview(uid, admissionv1.Create, nil),
	} {
		f.Add(r.JSON())
	}
	f.Add([]byte(scaleToZeroReview))

	opts := policy.Options{AlwaysExempt: []string{ownNamespace}}
	store := mustStore(f, fuzzPolicy)
	lookup := &fakeLookup{
		workloads:  map[string]map[string]string{"prod/web": {"tier": "web"}},
		namespaces: map[string]map[string]string{"prod": {"env": "prod"}, "strict-a": {}, "loose": {}},
	}
	ref := PolicyRef{Namespace: ownNamespace, Name: policy.DefaultConfigMapName, Options: opts}
	// The decision metric, alone in a registry of its own for checkKindLabels.
	reg := prometheus.NewRegistry()
	reg.MustRegister(decisions)
	// As Webhook serves them, with panics not recovered, so that the fuzzer sees them.
	hooks := map[string]http.Handler{
		MutatePath:   reviewServer{wh: (&admission.Webhook{Handler: NewHandler(Mutate, workload.Builtin(), store, lookup, ref)}).WithRecoverPanic(false)},
		ValidatePath: reviewServer{wh: (&admission.Webhook{Handler: NewHandler(Validate, workload.Builtin(), store, lookup, ref)}).WithRecoverPanic(false)},
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		decisions.Reset() // so that checkKindLabels blames the input that added a series
		sent, isReview := readSent(body)
		for _, path := range []string{MutatePath, ValidatePath} {
			req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			hooks[path].ServeHTTP(rec, req)
			ans := checkAnswer(t, path, rec, sent.autoscaler)
			if isReview && sent.UID != "" && ans.UID != sent.UID {
				t.Fatalf("%s: answer uid %q, want the request's %q", path, ans.UID, sent.UID)
			}
			// The API server rejects a negative count after the mutating webhooks; a clamp
			// would turn that invalid request into an accepted one.
			if isReview && ans.Patch != nil && sent.replicas != nil && *sent.replicas < 0 {
				t.Fatalf("%s: patched a request for %d replicas: %s", path, *sent.replicas, ans.Patch)
			}
		}
		checkKindLabels(t, reg)
	})
}

// checkKindLabels fails when the decision metric has a series whose kind label is not one
// the webhook knows: the label would then take its values from requests, and anything
// that reaches the webhook's port could add series (memory) without bound.
func checkKindLabels(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "kind" {
					continue
				}
				switch l.GetValue() {
				case "", "Deployment", "StatefulSet", "ReplicaSet", "Scale", "ConfigMap", "HorizontalPodAutoscaler", "other":
				default:
					t.Fatalf("%s has a series with kind %q, taken from the request", mf.GetName(), l.GetValue())
				}
			}
		}
	}
}

// configMapReview is a write of the policy ConfigMap holding data.
func configMapReview(uid string, op admissionv1.Operation, data map[string]string) harness.Review {
	obj, _ := json.Marshal(policyConfigMap(data[policy.ConfigMapKey]))
	if data == nil {
		obj = []byte(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"replica-policy","namespace":"` + ownNamespace + `"}}`)
	}
	r := harness.Review{UID: uid, Operation: op, Namespace: ownNamespace, Name: policy.DefaultConfigMapName, Kind: "ConfigMap", Resource: "configmaps", Object: obj}
	if op == admissionv1.Update {
		r.OldObject = obj
	}
	return r
}

// sentRequest is what the fuzz input says, read independently of the handler.
type sentRequest struct {
	UID types.UID
	// replicas is the object's spec.replicas, when it is a plain JSON integer.
	replicas *int64
	// autoscaler is set for a request of a HorizontalPodAutoscaler, whose patch sets its
	// range instead of spec.replicas.
	autoscaler bool
}

// readSent decodes body the way the API server would have encoded an AdmissionReview
// (JSON, case-sensitive keys); isReview is false for anything else, including other kinds
// and versions, for which nothing is expected back.
func readSent(body []byte) (sent sentRequest, isReview bool) {
	var ar admissionv1.AdmissionReview
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &ar); err != nil {
		return sent, false
	}
	switch {
	case ar.Kind != "" && ar.Kind != "AdmissionReview":
		return sent, false
	case ar.APIVersion != "" && ar.APIVersion != "admission.k8s.io/v1" && ar.APIVersion != "admission.k8s.io/v1beta1":
		return sent, false
	case ar.Request == nil:
		return sent, true
	}
	sent.UID = ar.Request.UID
	sent.autoscaler = ar.Request.Resource.Group == AutoscalerResource.Group && ar.Request.Resource.Resource == AutoscalerResource.Resource
	var obj struct {
		Spec struct {
			Replicas *int64 `json:"replicas"`
		} `json:"spec"`
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(ar.Request.Object.Raw, &obj); err == nil {
		sent.replicas = obj.Spec.Replicas
	}
	return sent, true
}

// checkAnswer checks one answer of the HTTP adapter and returns its response. A patch
// sets spec.replicas, or for an autoscaler its range, and nothing else.
func checkAnswer(t *testing.T, path string, rec *httptest.ResponseRecorder, autoscaler bool) *admissionv1.AdmissionResponse {
	t.Helper()
	raw := rec.Body.Bytes()
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: HTTP %d, want 200 with the outcome in the AdmissionReview: %s", path, rec.Code, raw)
	}
	var ar admissionv1.AdmissionReview
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ar); err != nil || dec.More() {
		t.Fatalf("%s: the answer is not one AdmissionReview (%v): %s", path, err, raw)
	}
	if ar.Response == nil || ar.Request != nil {
		t.Fatalf("%s: the answer carries no response, or echoes the request: %s", path, raw)
	}
	ans := ar.Response
	if !ans.Allowed {
		if ans.Result == nil || ans.Result.Message == "" {
			t.Fatalf("%s: a denial without a message: %s", path, raw)
		}
		// 400 bad request, 413 too large, 422 denied by the policy: never a 5xx, which
		// would mean the handler failed (or panicked and was recovered).
		if c := ans.Result.Code; c != http.StatusBadRequest && c != http.StatusRequestEntityTooLarge && c != http.StatusUnprocessableEntity {
			t.Fatalf("%s: denial with code %d: %s", path, c, raw)
		}
	}
	if ans.Result != nil && strings.Contains(strings.ToLower(ans.Result.Message), "panic") {
		t.Fatalf("%s: the answer reports a panic: %s", path, raw)
	}
	for _, w := range ans.Warnings {
		if w == "" || !utf8.ValidString(w) {
			t.Fatalf("%s: warning %q is empty or not UTF-8", path, w)
		}
	}
	if a, ok := ans.AuditAnnotations["decision"]; ok && !json.Valid([]byte(a)) {
		t.Fatalf("%s: audit annotation %q is not JSON", path, a)
	}
	if ans.Patch == nil && ans.PatchType == nil {
		return ans
	}
	if path != MutatePath || !ans.Allowed {
		t.Fatalf("%s: a patch from the validating webhook or on a denial: %s", path, raw)
	}
	if ans.PatchType == nil || *ans.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("%s: patch type %v, want JSONPatch", path, ans.PatchType)
	}
	var ops []struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value *int64 `json:"value"`
	}
	if err := json.Unmarshal(ans.Patch, &ops); err != nil {
		t.Fatalf("%s: patch %s: %v", path, ans.Patch, err)
	}
	int32Add := func(i int, at string) bool {
		return ops[i].Op == "add" && ops[i].Path == at && ops[i].Value != nil && *ops[i].Value >= 0 && *ops[i].Value <= 1<<31-1
	}
	if autoscaler {
		if len(ops) != 2 || !int32Add(0, "/spec/minReplicas") || !int32Add(1, "/spec/maxReplicas") || *ops[0].Value > *ops[1].Value {
			t.Fatalf("%s: patch %s, want adds of non-negative int32 at /spec/minReplicas and /spec/maxReplicas, min <= max", path, ans.Patch)
		}
		return ans
	}
	if len(ops) != 1 || !int32Add(0, "/spec/replicas") {
		t.Fatalf("%s: patch %s, want one add of a non-negative int32 at /spec/replicas", path, ans.Patch)
	}
	return ans
}
