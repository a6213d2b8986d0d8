package workload

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	fakedynamic "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"
)

// fakeAccess answers SelfSubjectAccessReviews: everything is allowed but denied.
type fakeAccess struct{ denied []string }

func (f fakeAccess) Create(_ context.Context, r *authorizationv1.SelfSubjectAccessReview, _ metav1.CreateOptions) (*authorizationv1.SelfSubjectAccessReview, error) {
	a := r.Spec.ResourceAttributes
	what := a.Verb + " " + a.Resource
	if a.Subresource != "" {
		what += "/" + a.Subresource
	}
	r.Status.Allowed = !slices.Contains(f.denied, what)
	return r, nil
}

func crd(name, version string, scale map[string]any) *unstructured.Unstructured {
	v := map[string]any{"name": version, "served": true, "storage": true}
	if scale != nil {
		v["subresources"] = map[string]any{"scale": scale}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"versions": []any{v}},
	}}
}

// TestLearnWorkloadResource: a --workload-resource is learned from discovery and its CRD,
// and each way it cannot be served is one line naming the resource and what is missing.
func TestLearnWorkloadResource(t *testing.T) {
	widgets := []metav1.APIResource{
		{Name: "widgets", Kind: "Widget", Namespaced: true, Verbs: []string{"get", "list", "watch", "create", "update"}},
		{Name: "widgets/scale", Kind: "Scale", Group: "autoscaling", Version: "v1", Namespaced: true},
		{Name: "clusterwidgets", Kind: "ClusterWidget", Namespaced: false},
		{Name: "clusterwidgets/scale", Kind: "Scale", Namespaced: false},
		{Name: "plain", Kind: "Plain", Namespaced: true},
	}
	for _, tc := range []struct {
		name     string
		resource string
		crd      *unstructured.Unstructured
		crdErr   error
		denied   []string
		wantKind string
		wantPath string
		wantErr  string
	}{
		{name: "learned", resource: "widgets.example.com", crd: crd("widgets.example.com", "v1", map[string]any{"specReplicasPath": ".spec.replicas"}),
			wantKind: "example.com/v1, Kind=Widget", wantPath: "spec.replicas"},
		{name: "a nested path", resource: "widgets.example.com", crd: crd("widgets.example.com", "v1", map[string]any{"specReplicasPath": ".spec.scale.count"}),
			wantKind: "example.com/v1, Kind=Widget", wantPath: "spec.scale.count"},
		{name: "unknown group", resource: "rollouts.argoproj.io",
			wantErr: `--workload-resource rollouts.argoproj.io: unknown resource: the API server serves no API group "argoproj.io" (is the CRD installed?)`},
		{name: "unknown resource", resource: "gizmos.example.com",
			wantErr: `--workload-resource gizmos.example.com: unknown resource: API group example.com/v1 serves no resource "gizmos"`},
		{name: "no scale subresource", resource: "plain.example.com",
			wantErr: `--workload-resource plain.example.com: Plain has no scale subresource (plain/scale): replica-policy bounds only workloads that have one`},
		{name: "cluster-scoped", resource: "clusterwidgets.example.com",
			wantErr: `--workload-resource clusterwidgets.example.com: ClusterWidget is cluster-scoped: replica-policy bounds namespaced workloads`},
		{name: "unsupported path", resource: "widgets.example.com", crd: crd("widgets.example.com", "v1", map[string]any{"specReplicasPath": ".spec.replicas[0]"}),
			wantErr: `--workload-resource widgets.example.com: unsupported scale.specReplicasPath in its CustomResourceDefinition: replica path ".spec.replicas[0]": only a dotted path of field names such as .spec.replicas is supported`},
		{name: "no CRD", resource: "widgets.example.com",
			wantErr: `--workload-resource widgets.example.com: no CustomResourceDefinition named "widgets.example.com": replica-policy learns a resource's replica path from its CRD`},
		{name: "CRD forbidden", resource: "widgets.example.com", crdErr: apierrors.NewForbidden(schema.GroupResource{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}, "widgets.example.com", errors.New("no RBAC")),
			wantErr: `--workload-resource widgets.example.com: cannot read its CustomResourceDefinition: missing RBAC: get on customresourcedefinitions.apiextensions.k8s.io "widgets.example.com"`},
		{name: "scale update forbidden", resource: "widgets.example.com", crd: crd("widgets.example.com", "v1", map[string]any{"specReplicasPath": ".spec.replicas"}),
			denied:  []string{"watch widgets", "update widgets/scale"},
			wantErr: `--workload-resource widgets.example.com: missing RBAC in API group "example.com": watch widgets, update widgets/scale (manifests/components/workload-resource grants`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disco := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: []*metav1.APIResourceList{
				{GroupVersion: "example.com/v1", APIResources: widgets},
				{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{{Name: "deployments", Kind: "Deployment", Namespaced: true}}},
			}}}
			var objs []runtime.Object
			if tc.crd != nil {
				objs = append(objs, tc.crd)
			}
			dyn := fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{crdResource: "CustomResourceDefinitionList"}, objs...)
			if tc.crdErr != nil {
				dyn.PrependReactor("get", "customresourcedefinitions", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, tc.crdErr })
			}
			l := learner{disco: disco, crds: dyn.Resource(crdResource), access: fakeAccess{denied: tc.denied}}
			k, err := l.learn(context.Background(), tc.resource)
			if err != nil {
				err = errors.New("--workload-resource " + tc.resource + ": " + err.Error())
			}
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error\n %v\nwant one line starting with\n %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.GroupVersionKind().String() != tc.wantKind || strings.Join(k.ReplicasPath, ".") != tc.wantPath || k.Resource != "widgets" || !k.Unstructured() {
				t.Errorf("learned %v at %v (resource %s)", k.GroupVersionKind(), k.ReplicasPath, k.Resource)
			}
		})
	}
}
