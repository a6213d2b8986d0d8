package chart

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// TestChartValues renders the values that have no kustomize twin (the drift test covers the
// rest) and checks that each lands everywhere it must.
func TestChartValues(t *testing.T) {
	ci := func(name string) string { return filepath.Join(harness.Chart(), "ci", name) }

	t.Run("policy.existingConfigMap: no ConfigMap; the binary, its Role and the policy webhook use the name", func(t *testing.T) {
		objs := helmTemplate(t, "-f", ci("existing-configmap-values.yaml"))
		const name = "platform-replica-policy"
		if o := find(objs, "ConfigMap", ""); o != nil {
			t.Errorf("a ConfigMap is rendered: %s", o.key())
		}
		if o := find(objs, "Namespace", ""); o != nil {
			t.Errorf("namespace.create=false, and a Namespace is rendered")
		}
		if args := containerArgs(t, objs); !slices.Contains(args, "--policy-configmap="+name) {
			t.Errorf("args %v: want --policy-configmap=%s", args, name)
		}
		role := get[[]any](find(objs, "Role", "replica-policy"), "rules")
		first, _ := role[0].(map[string]any)
		if names, _ := first["resourceNames"].([]any); len(names) != 1 || names[0] != name {
			t.Errorf("Role's ConfigMap rule %v: want resourceNames [%s]", first, name)
		}
		expr := get[string](webhook(t, objs, "ValidatingWebhookConfiguration", "policy.replicapolicy.io"), "matchConditions", 0, "expression")
		if !strings.Contains(expr, "'"+name+"'") {
			t.Errorf("policy webhook matchCondition %q does not name %s", expr, name)
		}
	})

	t.Run("certificates.mode=existingSecret: no Secret; the pods mount it, the caBundle is the PEM given", func(t *testing.T) {
		objs := helmTemplate(t, "-f", ci("existing-secret-values.yaml"))
		if o := find(objs, "Secret", ""); o != nil {
			t.Errorf("a Secret is rendered: %s", o.key())
		}
		vols := get[[]any](find(objs, "Deployment", "replica-policy-webhook"), "spec", "template", "spec", "volumes")
		if got := get[string](vols[0].(map[string]any), "secret", "secretName"); got != "my-webhook-tls" {
			t.Errorf("the pods mount Secret %q, want my-webhook-tls", got)
		}
		var values struct {
			Certificates struct {
				ExistingSecret struct {
					CABundle string `json:"caBundle"`
				} `json:"existingSecret"`
			} `json:"certificates"`
		}
		harness.ReadYAML(t, ci("existing-secret-values.yaml"), &values, false)
		want := base64.StdEncoding.EncodeToString([]byte(values.Certificates.ExistingSecret.CABundle))
		for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
			for _, h := range webhooksOf(find(objs, kind, "replica-policy")) {
				if got := get[string](h, "clientConfig", "caBundle"); got != want {
					t.Errorf("%s %v: caBundle %q, want the base64 of existingSecret.caBundle", kind, h["name"], got)
				}
			}
		}
	})

	t.Run("image, placement, webhooks and extraArgs from ci/policy-values.yaml", func(t *testing.T) {
		objs := helmTemplate(t, "-f", ci("policy-values.yaml"))
		d := find(objs, "Deployment", "replica-policy-webhook")
		pod := get[map[string]any](d, "spec", "template", "spec")
		ctr := get[map[string]any](pod, "containers", 0)
		checks := []struct {
			what      string
			got, want any
		}{
			{"image (a digest replaces the tag)", ctr["image"], "registry.example.com/replica-policy@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
			{"imagePullPolicy", ctr["imagePullPolicy"], "Always"},
			{"imagePullSecrets", get[string](pod, "imagePullSecrets", 0, "name"), "registry-credentials"},
			{"replicas", get[float64](d, "spec", "replicas"), float64(3)},
			{"nodeSelector", get[string](pod, "nodeSelector", "kubernetes.io/os"), "linux"},
			{"tolerations", get[string](pod, "tolerations", 0, "key"), "node-role.kubernetes.io/control-plane"},
			{"last arg (extraArgs)", lastArg(t, objs), "--kube-api-qps=50"},
			{"workload failurePolicy", get[string](webhook(t, objs, "MutatingWebhookConfiguration", "mutate.replicapolicy.io"), "failurePolicy"), "Fail"},
			{"workload timeoutSeconds", get[float64](webhook(t, objs, "MutatingWebhookConfiguration", "mutate.replicapolicy.io"), "timeoutSeconds"), float64(3)},
			{"policy failurePolicy", get[string](webhook(t, objs, "ValidatingWebhookConfiguration", "policy.replicapolicy.io"), "failurePolicy"), "Fail"},
			{"policy timeoutSeconds", get[float64](webhook(t, objs, "ValidatingWebhookConfiguration", "policy.replicapolicy.io"), "timeoutSeconds"), float64(15)},
			// The release namespace is always exempt, after the values' own.
			{"exempt namespaces", strings.Join(toStrings(get[[]any](webhook(t, objs, "MutatingWebhookConfiguration", "mutate.replicapolicy.io"), "namespaceSelector", "matchExpressions", 0, "values")), ","), "kube-system,kube-public," + policy.DefaultNamespace},
			{"policy text", get[string](find(objs, "ConfigMap", "replica-policy"), "data", "policy.yaml"), "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\ndefault: {minReplicas: 2, maxReplicas: 20, action: clamp}\n"},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
			}
		}
	})

	t.Run("workloadResources: an argument, two webhook rules and three RBAC rules per resource", func(t *testing.T) {
		objs := helmTemplate(t, "-f", ci("workload-resources-values.yaml"))
		args := containerArgs(t, objs)
		// The object on the workload entry, its /scale on the scale entry.
		entries := map[string][]any{}
		for _, name := range []string{"mutate.replicapolicy.io", "scale.mutate.replicapolicy.io"} {
			entries[name] = get[[]any](webhook(t, objs, "MutatingWebhookConfiguration", name), "rules")
		}
		crules := get[[]any](find(objs, "ClusterRole", "replica-policy"), "rules")
		for _, r := range []struct{ flag, group, resource string }{
			{"rollouts.argoproj.io", "argoproj.io", "rollouts"},
			{"clonesets.apps.kruise.io", "apps.kruise.io", "clonesets"},
		} {
			if !slices.Contains(args, "--workload-resource="+r.flag) {
				t.Errorf("args %v: no --workload-resource=%s", args, r.flag)
			}
			for entry, res := range map[string]string{"mutate.replicapolicy.io": r.resource, "scale.mutate.replicapolicy.io": r.resource + "/scale"} {
				if !hasRule(entries[entry], r.group, res) {
					t.Errorf("webhook %s has no rule for %s %s", entry, r.group, res)
				}
				if !hasRule(crules, r.group, res) {
					t.Errorf("the ClusterRole has no rule for %s %s", r.group, res)
				}
			}
			if !slices.ContainsFunc(crules, func(x any) bool {
				names, _ := x.(map[string]any)["resourceNames"].([]any)
				return slices.Contains(names, any(r.flag))
			}) {
				t.Errorf("the ClusterRole does not read CRD %s by name", r.flag)
			}
		}
	})
}

// TestChartRejectsWrongValues: values.schema.json and the templates refuse a wrong value
// before anything is installed, naming the value.
func TestChartRejectsWrongValues(t *testing.T) {
	for _, tc := range []struct {
		set, want string
	}{
		{"replicas=0", "at '/replicas': minimum: got 0, want 1"},
		{"image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"},
		{"image.digest=latest", "at '/image/digest'"},
		{"webhooks.workloads.failurePolicy=fail", "at '/webhooks/workloads/failurePolicy': value must be one of 'Ignore', 'Fail'"},
		{"webhooks.policy.timeoutSeconds=60", "at '/webhooks/policy/timeoutSeconds': maximum: got 60, want 30"},
		{"webhooks.url=http://127.0.0.1:9443", "at '/webhooks/url'"},
		{"workloadResources={rollouts}", "at '/workloadResources/0'"},
		{"certificates.mode=selfSigned", "at '/certificates/mode': value must be one of 'generate', 'certManager', 'existingSecret'"},
		{"certificates.mode=existingSecret", "at '/certificates/existingSecret/name'"},
		{"nativePolicies.enabled=yes", "at '/nativePolicies/enabled': got string, want boolean"},
		{"replica=3", "additional properties 'replica' not allowed"},
		{"policy.content=kind: Foo", `policy.content: want a YAML document with apiVersion replicapolicy.io/v1alpha1 and kind ReplicaPolicy, got apiVersion "", kind "Foo"`},
		{"reports.enabled=on", "at '/reports/enabled': got string, want boolean"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			out, err := harness.HelmCmd(context.Background(), t.TempDir(), "template", release, harness.Chart(), "--namespace", policy.DefaultNamespace, "--set", tc.set)
			if err == nil {
				t.Fatalf("--set %s rendered:\n%.300s", tc.set, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("--set %s: %v\nwant it to say %q", tc.set, err, tc.want)
			}
		})
	}
}

// find returns the first object of kind named name ("" for any name), or nil.
func find(objs []object, kind, name string) object {
	for _, o := range objs {
		if o["kind"] != kind {
			continue
		}
		if n, _ := o["metadata"].(map[string]any)["name"].(string); name == "" || n == name {
			return o
		}
	}
	return nil
}

// get walks v by map keys and list indexes and returns what it finds as T (its zero value
// when the path is missing or of another type).
func get[T any](v any, path ...any) T {
	var zero T
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := asMap(v)
			if !ok {
				return zero
			}
			v = m[p]
		case int:
			l, ok := v.([]any)
			if !ok || p >= len(l) {
				return zero
			}
			v = l[p]
		}
	}
	t, _ := v.(T)
	return t
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case object:
		return m, true
	}
	return nil, false
}

func webhook(t *testing.T, objs []object, kind, name string) map[string]any {
	t.Helper()
	for _, h := range webhooksOf(find(objs, kind, "replica-policy")) {
		if h["name"] == name {
			return h
		}
	}
	t.Fatalf("no webhook %s in %s replica-policy", name, kind)
	return nil
}

func containerArgs(t *testing.T, objs []object) []string {
	t.Helper()
	d := find(objs, "Deployment", "replica-policy-webhook")
	if d == nil {
		t.Fatal("no Deployment replica-policy-webhook")
	}
	return toStrings(get[[]any](d, "spec", "template", "spec", "containers", 0, "args"))
}

func lastArg(t *testing.T, objs []object) string {
	args := containerArgs(t, objs)
	return args[len(args)-1]
}

func toStrings(l []any) []string {
	var out []string
	for _, v := range l {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// hasRule reports whether a webhook or RBAC rule names group and resource.
func hasRule(rules []any, group, resource string) bool {
	return slices.ContainsFunc(rules, func(r any) bool {
		m, _ := r.(map[string]any)
		return slices.Contains(toStrings(get[[]any](m, "apiGroups")), group) && slices.Contains(toStrings(get[[]any](m, "resources")), resource)
	})
}
