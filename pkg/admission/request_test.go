package admission

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// scaleToZeroReview is what kube-apiserver v1.37 sends for `kubectl scale deploy/web
// --replicas=0`: the Scale's spec.replicas is omitempty, so the object has "spec":{}.
const scaleToZeroReview = `{
  "kind": "AdmissionReview",
  "apiVersion": "admission.k8s.io/v1",
  "request": {
    "uid": "3f1c0e8e-5d55-4a4b-a0e8-94b1f0b5f3a7",
    "kind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
    "subResource": "scale",
    "requestKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
    "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
    "requestSubResource": "scale",
    "name": "web",
    "namespace": "prod",
    "operation": "UPDATE",
    "userInfo": {"username": "kubernetes-admin", "groups": ["kubeadm:cluster-admins", "system:authenticated"]},
    "object": {
      "kind": "Scale",
      "apiVersion": "autoscaling/v1",
      "metadata": {"name": "web", "namespace": "prod", "uid": "0b7c1d4e-2f8a-4a47-9c55-0e1e6f0f6a11", "resourceVersion": "48213", "creationTimestamp": "2026-03-02T10:15:04Z"},
      "spec": {},
      "status": {"replicas": 3, "selector": "app=web"}
    },
    "oldObject": {
      "kind": "Scale",
      "apiVersion": "autoscaling/v1",
      "metadata": {"name": "web", "namespace": "prod", "uid": "0b7c1d4e-2f8a-4a47-9c55-0e1e6f0f6a11", "resourceVersion": "48213", "creationTimestamp": "2026-03-02T10:15:04Z"},
      "spec": {"replicas": 3},
      "status": {"replicas": 3, "selector": "app=web"}
    },
    "dryRun": false,
    "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-scale"}
  }
}`

func decodeReview(t *testing.T, body string) admission.Request {
	t.Helper()
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal([]byte(body), &ar); err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: *ar.Request}
}

func newLookup() *fakeLookup {
	return &fakeLookup{
		// The cache's copy of prod/web carries other labels than any object in these
		// requests, so that the tests can tell where the labels came from.
		workloads:  map[string]map[string]string{"prod/web": {"from": "cache", "tier": "web"}},
		namespaces: map[string]map[string]string{"prod": {"env": "prod"}},
	}
}

func TestNewRequestScaleToZero(t *testing.T) {
	r, err := newRequest(decodeReview(t, scaleToZeroReview), workload.Builtin(), workload.Deployment, newLookup())
	if err != nil {
		t.Fatal(err)
	}
	if r.Operation != admissionv1.Update || !r.Scale || r.Subject.Kind != "Deployment" || r.Subject.Name != "web" || r.Subject.Namespace != "prod" {
		t.Errorf("identity: got %+v", r)
	}
	if r.Replicas != 0 || r.OldReplicas == nil || *r.OldReplicas != 3 {
		t.Errorf("replicas: got %d (old %v), want 0 (old 3): an omitted Scale replicas is 0", r.Replicas, r.OldReplicas)
	}
	// A Scale carries no labels: the parent's come from the cache, as do the namespace's.
	if !maps.Equal(r.Subject.Labels, map[string]string{"from": "cache", "tier": "web"}) || r.Subject.LabelsUnknown {
		t.Errorf("labels: got %v (unknown %t), want the cached parent's", r.Subject.Labels, r.Subject.LabelsUnknown)
	}
	if !maps.Equal(r.Subject.NamespaceLabels, map[string]string{"env": "prod"}) || r.Subject.NamespaceLabelsUnknown {
		t.Errorf("namespace labels: got %v (unknown %t)", r.Subject.NamespaceLabels, r.Subject.NamespaceLabelsUnknown)
	}
}

func TestNewRequest(t *testing.T) {
	labels := map[string]string{"app": "web", "from": "object"}
	for _, tc := range []struct {
		name   string
		review harness.Review
		lookup *fakeLookup
		want   Request
	}{
		{
			name:   "Deployment CREATE: labels from the object",
			review: harness.DeploymentReview("u", "prod", "web", nil, ptr.To(int32(50)), labels),
			want: Request{Operation: admissionv1.Create, Replicas: 50,
				Subject: wl("Deployment", "web", "prod", labels, false, map[string]string{"env": "prod"}, false)},
		},
		{
			name:   "Deployment UPDATE",
			review: harness.DeploymentReview("u", "prod", "web", ptr.To(int32(3)), ptr.To(int32(7)), labels),
			want: Request{Operation: admissionv1.Update, Replicas: 7, OldReplicas: ptr.To(int32(3)),
				Subject: wl("Deployment", "web", "prod", labels, false, map[string]string{"env": "prod"}, false)},
		},
		{
			name:   "Deployment without spec.replicas is 1, old and new",
			review: harness.DeploymentReview("u", "prod", "web", ptr.To(int32(0)), nil, nil),
			want: Request{Operation: admissionv1.Update, Replicas: 1, OldReplicas: ptr.To(int32(0)),
				Subject: wl("Deployment", "web", "prod", nil, false, map[string]string{"env": "prod"}, false)},
		},
		{
			name:   "Deployment in a namespace the cache has not seen",
			review: harness.DeploymentReview("u", "fresh", "web", nil, ptr.To(int32(2)), labels),
			want: Request{Operation: admissionv1.Create, Replicas: 2,
				Subject: wl("Deployment", "web", "fresh", labels, false, nil, true)},
		},
		{
			name:   "Scale UPDATE: labels from the lookup",
			review: harness.ScaleReview("u", "prod", "web", 2, 9),
			want: Request{Operation: admissionv1.Update, Scale: true, Replicas: 9, OldReplicas: ptr.To(int32(2)),
				Subject: wl("Deployment", "web", "prod", map[string]string{"from": "cache", "tier": "web"}, false, map[string]string{"env": "prod"}, false)},
		},
		{
			name:   "Scale from 0: old replicas omitted",
			review: harness.ScaleReview("u", "prod", "web", 0, 4),
			want: Request{Operation: admissionv1.Update, Scale: true, Replicas: 4, OldReplicas: ptr.To(int32(0)),
				Subject: wl("Deployment", "web", "prod", map[string]string{"from": "cache", "tier": "web"}, false, map[string]string{"env": "prod"}, false)},
		},
		{
			name:   "Scale whose parent is not in the cache",
			review: harness.ScaleReview("u", "prod", "api", 2, 9),
			want: Request{Operation: admissionv1.Update, Scale: true, Replicas: 9, OldReplicas: ptr.To(int32(2)),
				Subject: wl("Deployment", "api", "prod", nil, true, map[string]string{"env": "prod"}, false)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := newLookup()
			got, err := newRequest(tc.review.Request(t), workload.Builtin(), workload.Deployment, lookup)
			if err != nil {
				t.Fatal(err)
			}
			if !equalRequest(got, tc.want) {
				t.Errorf("got  %s\nwant %s", dump(got), dump(tc.want))
			}
		})
	}
}

func wl(kind, name, ns string, labels map[string]string, unknown bool, nsLabels map[string]string, nsUnknown bool) policy.Subject {
	return policy.Subject{Kind: kind, Name: name, Namespace: ns, Labels: labels, LabelsUnknown: unknown, NamespaceLabels: nsLabels, NamespaceLabelsUnknown: nsUnknown}
}

func equalRequest(a, b Request) bool {
	eqPtr := func(x, y *int32) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Operation == b.Operation && a.Scale == b.Scale && a.Subject.Kind == b.Subject.Kind && a.Subject.Name == b.Subject.Name && a.Replicas == b.Replicas &&
		eqPtr(a.OldReplicas, b.OldReplicas) && a.Subject.Namespace == b.Subject.Namespace &&
		maps.Equal(a.Subject.Labels, b.Subject.Labels) && a.Subject.LabelsUnknown == b.Subject.LabelsUnknown &&
		maps.Equal(a.Subject.NamespaceLabels, b.Subject.NamespaceLabels) && a.Subject.NamespaceLabelsUnknown == b.Subject.NamespaceLabelsUnknown
}

func dump(r Request) string {
	b, _ := json.Marshal(r)
	return string(b)
}

// TestNotWorkload: requests for what the webhook does not bound are dispatched to no
// adapter, or refused by the workload adapter, and allowed with a warning that says so.
func TestNotWorkload(t *testing.T) {
	dep := harness.DeploymentJSON("prod", "web", ptr.To(int32(3)), nil)
	for _, tc := range []struct {
		name   string
		review harness.Review
		what   string // in the error
	}{
		{"daemonsets", harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: "prod", Name: "logs", Kind: "DaemonSet", Group: "apps", Resource: "daemonsets", Object: []byte(`{"kind":"DaemonSet","apiVersion":"apps/v1","metadata":{"name":"logs"},"spec":{}}`)}, `daemonsets (group "apps")`},
		{"pods", harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: "prod", Name: "p", Kind: "Pod", Group: "", Resource: "pods", Object: []byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"}}`)}, `pods (group "")`},
		{"deployments/status", harness.Review{UID: "u", Operation: admissionv1.Update, Namespace: "prod", Name: "web", Kind: "Deployment", Group: "apps", Resource: "deployments", SubResource: "status", Object: dep, OldObject: dep}, `deployments/status (group "apps")`},
		{"deployments of another group", harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: "prod", Name: "web", Kind: "Deployment", Group: "example.com", Resource: "deployments", Object: dep}, `deployments (group "example.com")`},
		{"DELETE of a Deployment", harness.Review{UID: "u", Operation: admissionv1.Delete, Namespace: "prod", Name: "web", Kind: "Deployment", Group: "apps", Resource: "deployments", OldObject: dep}, `DELETE of deployments (group "apps")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := newLookup()
			for _, stage := range []Stage{Mutate, Validate} {
				resp := NewHandler(stage, workload.Builtin(), mustStore(t, header+"default: {maxReplicas: 1}\n"), lookup, PolicyRef{}).Handle(t.Context(), tc.review.Request(t))
				want := "replica-policy does not handle " + tc.what
				if !resp.Allowed || len(resp.Patches) != 0 || !slices.Equal(resp.Warnings, []string{want}) {
					t.Errorf("%s: got allowed %t, patches %v, warnings %q; want allowed untouched with the warning %q", stage, resp.Allowed, resp.Patches, resp.Warnings, want)
				}
			}
			if n := lookup.calls.Load(); n != 0 {
				t.Errorf("%d cache lookups for a request that is not ours", n)
			}
		})
	}
}

func TestNewRequestBroken(t *testing.T) {
	dep := harness.DeploymentJSON("prod", "web", ptr.To(int32(3)), nil)
	for _, tc := range []struct {
		name   string
		review harness.Review
		want   []string // in the error
	}{
		{"object is not JSON", harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: "prod", Name: "web", Kind: "Deployment", Group: "apps", Resource: "deployments",
			Object: []byte(`"not an object"`)}, []string{"decoding the object"}},
		{"replicas of the wrong type", harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: "prod", Name: "web", Kind: "Deployment", Group: "apps", Resource: "deployments",
			Object: []byte(`{"metadata":{"name":"web"},"spec":{"replicas":"three"}}`)}, []string{"decoding the object", "replicas"}},
		{"replicas beyond int32", harness.Review{UID: "u", Operation: admissionv1.Update, Namespace: "prod", Name: "web", Kind: "Scale", Group: "apps", Resource: "deployments", SubResource: "scale",
			Object: []byte(`{"spec":{"replicas":4294967296}}`), OldObject: harness.ScaleJSON("prod", "web", 1)}, []string{"decoding the object", "replicas"}},
		{"labels of the wrong type", harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: "prod", Name: "web", Kind: "Deployment", Group: "apps", Resource: "deployments",
			Object: []byte(`{"metadata":{"labels":["a"]},"spec":{"replicas":1}}`)}, []string{"decoding the object", "labels"}},
		{"broken oldObject", harness.Review{UID: "u", Operation: admissionv1.Update, Namespace: "prod", Name: "web", Kind: "Deployment", Group: "apps", Resource: "deployments",
			Object: dep, OldObject: []byte(`{"spec":{"replicas":true}}`)}, []string{"decoding the oldObject"}},
		{"CREATE without object", harness.Review{UID: "u", Operation: admissionv1.Create, Namespace: "prod", Name: "web", Kind: "Deployment", Group: "apps", Resource: "deployments"},
			[]string{"the request carries no object"}},
		{"UPDATE without oldObject", harness.Review{UID: "u", Operation: admissionv1.Update, Namespace: "prod", Name: "web", Kind: "Deployment", Group: "apps", Resource: "deployments", Object: dep},
			[]string{"the request carries no oldObject"}},
		{"Scale UPDATE without oldObject", harness.Review{UID: "u", Operation: admissionv1.Update, Namespace: "prod", Name: "web", Kind: "Scale", Group: "apps", Resource: "deployments", SubResource: "scale",
			Object: harness.ScaleJSON("prod", "web", 3)}, []string{"the request carries no oldObject"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newRequest(tc.review.Request(t), workload.Builtin(), workload.Deployment, newLookup())
			if err == nil {
				t.Fatal("no error")
			}
			var nw errNotWorkload
			if errors.As(err, &nw) {
				t.Fatalf("a broken request is not 'not ours': %v", err)
			}
			for _, part := range tc.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not mention %q", err, part)
				}
			}
		})
	}
}
