package workload

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// crdResource is apiextensions.k8s.io/v1 CustomResourceDefinitions, read as unstructured:
// the binary needs one field of one object, not the apiextensions types.
var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Discover returns the kinds in force: the built-in kinds and each of resources
// (RESOURCE.GROUP, the webhook's --workload-resource), learned from the API server's
// discovery and the resource's CustomResourceDefinition. A resource it cannot serve is an
// error that names it and what is missing.
func Discover(ctx context.Context, cfg *rest.Config, resources []string) (*Set, error) {
	if len(resources) == 0 {
		return Builtin(), nil
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	l := learner{disco: disco, crds: dyn.Resource(crdResource), access: cs.AuthorizationV1().SelfSubjectAccessReviews()}
	var custom []Kind
	for _, r := range resources {
		k, err := l.learn(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("--workload-resource %s: %w", r, err)
		}
		custom = append(custom, k)
	}
	return NewSet(custom...)
}

type learner struct {
	disco  discovery.DiscoveryInterface
	crds   dynamic.NamespaceableResourceInterface
	access interface {
		Create(context.Context, *authorizationv1.SelfSubjectAccessReview, metav1.CreateOptions) (*authorizationv1.SelfSubjectAccessReview, error)
	}
}

// learn finds RESOURCE.GROUP's kind and preferred version in discovery, checks that it is
// namespaced and has a scale subresource, reads the replica path from its CRD and checks
// that this process may do what it will do with it.
func (l learner) learn(ctx context.Context, name string) (Kind, error) {
	resource, group, _ := strings.Cut(name, ".")
	groups, err := l.disco.ServerGroups()
	if err != nil {
		return Kind{}, fmt.Errorf("discovery: %w", err)
	}
	version := ""
	for _, g := range groups.Groups {
		if g.Name == group {
			version = g.PreferredVersion.Version
		}
	}
	if version == "" {
		return Kind{}, fmt.Errorf("unknown resource: the API server serves no API group %q (is the CRD installed?)", group)
	}
	gv := schema.GroupVersion{Group: group, Version: version}
	list, err := l.disco.ServerResourcesForGroupVersion(gv.String())
	if err != nil {
		return Kind{}, fmt.Errorf("discovery of %s: %w", gv, err)
	}
	var kind string
	var namespaced, scale bool
	for _, r := range list.APIResources {
		switch r.Name {
		case resource:
			kind, namespaced = r.Kind, r.Namespaced
		case resource + "/scale":
			scale = true
		}
	}
	switch {
	case kind == "":
		return Kind{}, fmt.Errorf("unknown resource: API group %s serves no resource %q", gv, resource)
	case !namespaced:
		return Kind{}, fmt.Errorf("%s is cluster-scoped: replica-policy bounds namespaced workloads", kind)
	case !scale:
		return Kind{}, fmt.Errorf("%s has no scale subresource (%s/scale): replica-policy bounds only workloads that have one", kind, resource)
	}
	path, err := l.replicasPath(ctx, name, version)
	if err != nil {
		return Kind{}, err
	}
	if err := l.allowed(ctx, group, resource); err != nil {
		return Kind{}, err
	}
	return Custom(gv.WithKind(kind), resource, path), nil
}

// replicasPath reads scale.specReplicasPath of version in the CRD name.
func (l learner) replicasPath(ctx context.Context, name, version string) ([]string, error) {
	crd, err := l.crds.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("cannot read its CustomResourceDefinition: missing RBAC: get on customresourcedefinitions.apiextensions.k8s.io %q (manifests/components/workload-resource grants it): %v", name, err)
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("no CustomResourceDefinition named %q: replica-policy learns a resource's replica path from its CRD", name)
	case err != nil:
		return nil, fmt.Errorf("reading its CustomResourceDefinition: %w", err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		m, ok := v.(map[string]any)
		if !ok || m["name"] != version {
			continue
		}
		p, found, _ := unstructured.NestedString(m, "subresources", "scale", "specReplicasPath")
		if !found {
			return nil, fmt.Errorf("its CustomResourceDefinition declares no scale subresource for version %s", version)
		}
		path, err := ParseReplicasPath(p)
		if err != nil {
			return nil, fmt.Errorf("unsupported scale.specReplicasPath in its CustomResourceDefinition: %w", err)
		}
		return path, nil
	}
	return nil, fmt.Errorf("its CustomResourceDefinition has no version %s", version)
}

// allowed checks, with SelfSubjectAccessReviews, the rights the webhook and the scaler will
// use: get,list,watch on the resource and update on its scale subresource. Without
// them the informer never syncs, and the process would never turn ready, silently.
func (l learner) allowed(ctx context.Context, group, resource string) error {
	var missing []string
	for _, c := range []struct{ verb, sub string }{{"get", ""}, {"list", ""}, {"watch", ""}, {"update", "scale"}} {
		r, err := l.access.Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: c.verb, Group: group, Resource: resource, Subresource: c.sub},
		}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("checking its RBAC: %w", err)
		}
		if !r.Status.Allowed {
			what := resource
			if c.sub != "" {
				what += "/" + c.sub
			}
			missing = append(missing, c.verb+" "+what)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing RBAC in API group %q: %s (manifests/components/workload-resource grants get,list,watch on the resource and update on its /scale)", group, strings.Join(missing, ", "))
	}
	return nil
}
