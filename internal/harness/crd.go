package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestCRDs is the folder of the tests' CustomResourceDefinitions (ControlPlaneOptions.CRDPaths):
// widgets.example.com, kind Widget, with a scale subresource at .spec.replicas, and
// plains.example.com, kind Plain, without one.
func TestCRDs() string { return filepath.Join(RepoRoot(), "internal", "harness", "testdata", "crds") }

// WidgetGVR is the resource of the test CRD Widget.
var WidgetGVR = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

// Widget is a Widget (the test custom resource with a scale subresource) with spec.replicas.
func Widget(ns, name string, replicas int64, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"namespace": ns, "name": name},
		"spec":     map[string]any{"replicas": replicas, "image": PauseImage},
	}}
	if labels != nil {
		u.SetLabels(labels)
	}
	return u
}

// WorkloadResourceManifests builds manifests/ with the component
// manifests/components/workload-resource copied for resource.group (its Argo Rollouts names
// replaced, as the component's comment tells an operator to), and writes the result to a
// file in a temporary folder, whose path it returns: the webhook configurations and RBAC a
// cluster gets with the component.
func WorkloadResourceManifests(t testing.TB, resource, group string) string {
	t.Helper()
	return ComponentManifests(t, "workload-resource", fmt.Sprintf("with-%s.%s.yaml", resource, group),
		strings.NewReplacer("rollouts.argoproj.io", resource+"."+group, "argoproj.io", group, "rollouts", resource).Replace)
}

// ComponentManifests builds manifests/base with the component manifests/components/NAME,
// its kustomization.yaml first passed through edit (nil: as it is), and writes the result to
// file in a temporary folder, whose path it returns.
func ComponentManifests(t testing.TB, name, file string, edit func(string) string) string {
	t.Helper()
	path, err := BuildComponentManifests(t.TempDir(), name, file, edit)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// BuildComponentManifests is ComponentManifests in the folder dir, for callers that are not
// tests (the benchmarks).
func BuildComponentManifests(dir, name, file string, edit func(string) string) (string, error) {
	kubectl, err := findKubectl()
	if err != nil {
		return "", err
	}
	if err := CopyManifests(filepath.Join(dir, "manifests")); err != nil {
		return "", err
	}
	comp := filepath.Join(dir, "manifests", "components", name, "kustomization.yaml")
	b, err := os.ReadFile(comp)
	if err != nil {
		return "", err
	}
	if edit != nil {
		if err := os.WriteFile(comp, []byte(edit(string(b))), 0o644); err != nil {
			return "", err
		}
	}
	overlay := filepath.Join(dir, "overlay")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte("resources: [../manifests/base]\ncomponents: [../manifests/components/"+name+"]\n"), 0o644); err != nil {
		return "", err
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", overlay)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kubectl kustomize: %v\n%s", err, stderr.String())
	}
	built := filepath.Join(dir, "built")
	if err := os.MkdirAll(built, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(built, file)
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// ManifestOfKind returns the last document of kind in a multi-document YAML stream as
// `kubectl kustomize` prints it (top-level "kind: KIND" line), or "" when there is none.
func ManifestOfKind(stream, kind string) string {
	var found string
	for _, doc := range strings.Split(stream, "\n---\n") {
		// (A ClusterRoleBinding's roleRef says "kind: ClusterRole" too, indented.)
		if strings.Contains("\n"+doc+"\n", "\nkind: "+kind+"\n") {
			found = doc
		}
	}
	return found
}
