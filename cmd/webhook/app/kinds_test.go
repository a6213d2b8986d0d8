package app

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// StatefulSets, ReplicaSets and a custom resource (the test CRD Widget, registered with
// --workload-resource and the webhook rules and RBAC of manifests/components/workload-resource)
// through kube-apiserver: objects and /scale, kubectl scale as a user types it, owned
// ReplicaSets left to their Deployment, the scaler's corrections, the metric's kind label.

const kindsPolicy = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
exemptNamespaces: [exempt]
rules:
- {name: queue, namespaces: [data], selector: {matchLabels: {tier: queue}}, maxReplicas: 2}
- {name: db, namespaces: [data], kinds: [StatefulSet], minReplicas: 3, maxReplicas: 7}
- {name: strict-db, namespaces: [strict], kinds: [StatefulSet], maxReplicas: 5, action: deny}
- {name: rs-min, namespaces: [rollout, exempt], kinds: [ReplicaSet], minReplicas: 2}
- {name: widgets, namespaces: [data], kinds: [Widget.example.com], maxReplicas: MAXW}
`

func kindsPolicyWith(maxWidgets int) string {
	return strings.Replace(kindsPolicy, "MAXW", fmt.Sprint(maxWidgets), 1)
}

func TestWorkloadKindsAgainstAPIServer(t *testing.T) {
	manifests := harness.WorkloadResourceManifests(t, "widgets", "example.com")
	f := launchWebhookOn(t, harness.ControlPlaneOptions{
		WebhookPaths: []string{manifests},
		CRDPaths:     []string{harness.TestCRDs()},
	}, func(_ *harness.ControlPlane, o *Options) {
		o.WorkloadResources = []string{"widgets.example.com"}
		o.EnableScaler = true
	})
	f.waitReady(t)
	ctx := context.Background()
	createNamespaces(t, f.client, "data", "strict", "rollout", "exempt")
	sts := f.client.AppsV1().StatefulSets("data")
	f.applyPolicy(t, kindsPolicyWith(4), func() bool {
		s, err := sts.Create(ctx, harness.StatefulSet("data", "probe", 50, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && *s.Spec.Replicas == 7
	})
	t.Run("the component's RBAC, as SubjectAccessReviews", func(t *testing.T) {
		testComponentRBAC(t, f, manifests)
	})
	cfg := rest.CopyConfig(f.env.Config)
	cfg.WarningHandler = f.warns
	dyn := dynamic.NewForConfigOrDie(cfg)
	widgets := dyn.Resource(harness.WidgetGVR).Namespace("data")
	kubectl := func(t *testing.T, args ...string) string {
		t.Helper()
		path, err := harness.FindKubectl()
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(path, append([]string{"--kubeconfig", f.kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	t.Run("StatefulSet create is clamped, the warning names the rule", func(t *testing.T) {
		s, err := sts.Create(ctx, harness.StatefulSet("data", "db", 12, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *s.Spec.Replicas != 7 {
			t.Fatalf("replicas = %d, want 7", *s.Spec.Replicas)
		}
		assertWarning(t, f.warns.Take(), `spec.replicas 12 clamped to 7 by replica policy rule "db"`)
	})

	t.Run("kubectl scale statefulset prints the clamp warning", func(t *testing.T) {
		out := kubectl(t, "-n", "data", "scale", "statefulset", "db", "--replicas=1")
		for _, want := range []string{`Warning: StatefulSet "db": spec.replicas 1 clamped to 3 by replica policy rule "db"`, "statefulset.apps/db scaled"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl printed\n%s\nwant a line %q", out, want)
			}
		}
		if s, err := sts.Get(ctx, "db", metav1.GetOptions{}); err != nil || *s.Spec.Replicas != 3 {
			t.Fatalf("stored replicas %v (%v), want 3", s.Spec.Replicas, err)
		}
	})

	t.Run("statefulsets/scale outside a deny rule is rejected, naming the StatefulSet", func(t *testing.T) {
		ss := f.client.AppsV1().StatefulSets("strict")
		if _, err := ss.Create(ctx, harness.StatefulSet("strict", "big", 4, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := ss.UpdateScale(ctx, "big", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "strict"}, Spec: autoscalingv1.ScaleSpec{Replicas: 9}}, metav1.UpdateOptions{})
		want := `StatefulSet "big": spec.replicas: Invalid value: 9: must be within [0, 5] (replica policy rule "strict-db", action deny)`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want one containing %s", err, want)
		}
	})

	t.Run("a selector rule matches statefulsets/scale through the StatefulSet's cached labels", func(t *testing.T) {
		if _, err := sts.Create(ctx, harness.StatefulSet("data", "q", 2, map[string]string{"tier": "queue"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.waitScaleWarning(t, sts.UpdateScale, "data", "q", 5, `spec.replicas 5 clamped to 2 by replica policy rule "queue"`)
		// Dry run changed nothing.
		if s, err := sts.Get(ctx, "q", metav1.GetOptions{}); err != nil || *s.Spec.Replicas != 2 {
			t.Fatalf("stored replicas %v (%v), want 2", s.Spec.Replicas, err)
		}
	})

	t.Run("exempt namespace: a ReplicaSet there is untouched", func(t *testing.T) {
		rs, err := f.client.AppsV1().ReplicaSets("exempt").Create(ctx, harness.ReplicaSet("exempt", "free", 0, nil), metav1.CreateOptions{})
		if err != nil || *rs.Spec.Replicas != 0 {
			t.Fatalf("replicas %v (%v), want 0", rs.Spec.Replicas, err)
		}
	})

	rss := f.client.AppsV1().ReplicaSets("rollout")
	t.Run("a ReplicaSet of its own is bounded on create and replicasets/scale", func(t *testing.T) {
		rs, err := rss.Create(ctx, harness.ReplicaSet("rollout", "solo", 0, nil), metav1.CreateOptions{})
		if err != nil || *rs.Spec.Replicas != 2 {
			t.Fatalf("replicas %v (%v), want 2", rs.Spec.Replicas, err)
		}
		assertWarning(t, f.warns.Take(), `spec.replicas 0 clamped to 2 by replica policy rule "rs-min"`)
		s, err := rss.UpdateScale(ctx, "solo", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: "rollout"}, Spec: autoscalingv1.ScaleSpec{Replicas: 1}}, metav1.UpdateOptions{})
		if err != nil || s.Spec.Replicas != 2 {
			t.Fatalf("scale replicas %v (%v), want 2", s, err)
		}
	})

	t.Run("a ReplicaSet that a Deployment controls is owned: scaled to 0 by update and by /scale, and the scaler leaves it", func(t *testing.T) {
		// As the Deployment controller does in a rollout: the owner, its ReplicaSet (with a
		// controller ownerReference), then the old ReplicaSet scaled to 0.
		dep, err := f.client.AppsV1().Deployments("rollout").Create(ctx, harness.Deployment("rollout", "web", 3, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rss.Create(ctx, harness.OwnedReplicaSet(dep, "web-1", 3), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.warns.Take()
		rs, err := rss.Get(ctx, "web-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rs.Spec.Replicas = ptr.To(int32(0))
		if rs, err = rss.Update(ctx, rs, metav1.UpdateOptions{}); err != nil || *rs.Spec.Replicas != 0 {
			t.Fatalf("update to 0: replicas %v (%v), want 0", rs.Spec.Replicas, err)
		}
		if ws := f.warns.Take(); len(ws) != 0 {
			t.Errorf("warnings for an owned ReplicaSet: %q", ws)
		}
		// Back to 3, then to 0 through /scale, which carries no owner: the webhook reads it
		// from the ReplicaSet in its cache.
		if _, err := setScale(ctx, rss.UpdateScale, "rollout", "web-1", 3, false); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 15*time.Second, 50*time.Millisecond, "web-1 in the webhook's cache", func() bool {
			s, err := setScale(ctx, rss.UpdateScale, "rollout", "web-1", 0, true)
			return err == nil && s.Spec.Replicas == 0
		})
		s, err := setScale(ctx, rss.UpdateScale, "rollout", "web-1", 0, false)
		if err != nil || s.Spec.Replicas != 0 {
			t.Fatalf("replicasets/scale to 0: %v (%v), want 0", s, err)
		}
		// The scaler's full pass (a policy change starts one) leaves it at 0, below the
		// ReplicaSet minimum of 2: its Deployment is bounded instead. (The scaler's
		// corrections of other kinds are shown with the Widget and StatefulSet below.)
		if err := harness.SetPolicy(ctx, f.client, kindsPolicyWith(4)+"- {name: touch, namespaces: [nowhere], maxReplicas: 1}\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if rs, err := rss.Get(ctx, "web-1", metav1.GetOptions{}); err != nil || *rs.Spec.Replicas != 0 {
			t.Fatalf("after the scaler's pass: replicas %v (%v), want 0", rs.Spec.Replicas, err)
		}
		evs, err := f.client.CoreV1().Events("rollout").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "web-1" && strings.HasPrefix(e.Reason, "Replicas") {
				t.Errorf("Event on the owned ReplicaSet: %s %s", e.Reason, e.Message)
			}
		}
	})

	t.Run("custom resource: create clamped, kubectl scale prints the warning", func(t *testing.T) {
		w, err := widgets.Create(ctx, harness.Widget("data", "w", 9, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r, _, _ := unstructured.NestedInt64(w.Object, "spec", "replicas"); r != 4 {
			t.Fatalf("replicas = %d, want 4", r)
		}
		assertWarning(t, f.warns.Take(), `spec.replicas 9 clamped to 4 by replica policy rule "widgets"`)
		out := kubectl(t, "-n", "data", "scale", "widget", "w", "--replicas=8")
		for _, want := range []string{`Warning: Widget "w": spec.replicas 8 clamped to 4 by replica policy rule "widgets"`, "widget.example.com/w scaled"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl printed\n%s\nwant a line %q", out, want)
			}
		}
	})

	t.Run("HPAs: of a Widget, bounded by its kinds rule; one KEDA controls warned, never patched, and reported", func(t *testing.T) {
		hpas := f.client.AutoscalingV2().HorizontalPodAutoscalers("data")
		h, err := hpas.Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "data"},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "example.com/v1", Kind: "Widget", Name: "w"},
				MaxReplicas:    9,
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *h.Spec.MinReplicas != 1 || h.Spec.MaxReplicas != 4 {
			t.Errorf("stored range [%d, %d], want [1, 4]", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		assertWarning(t, f.warns.Take(), `HorizontalPodAutoscaler "w": spec.maxReplicas 9 clamped to 4 by replica policy rule "widgets"`)

		keda := &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: "keda-hpa-db", Namespace: "data", OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "db", UID: "6b4c0a52-0f0e-4d43-9b35-2f4a4b9c1d11", Controller: ptr.To(true)}}},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"},
				MinReplicas:    ptr.To(int32(3)), MaxReplicas: 12,
			},
		}
		if h, err = hpas.Create(ctx, keda, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if *h.Spec.MinReplicas != 3 || h.Spec.MaxReplicas != 12 {
			t.Errorf("the KEDA HPA was changed to [%d, %d]", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		assertWarning(t, f.warns.Take(), `HorizontalPodAutoscaler "keda-hpa-db": controlled by ScaledObject "db", which would write its range back, so it is not clamped: its range [3, 12] is outside the bounds [3, 7] of replica policy rule "db"; its scale writes are clamped`)
		harness.Eventually(t, 15*time.Second, 100*time.Millisecond, "HPAOutOfBounds Event on the KEDA HPA", func() (bool, string) {
			evs, err := f.client.CoreV1().Events("data").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=keda-hpa-db,reason=HPAOutOfBounds"})
			if err != nil {
				return false, err.Error()
			}
			return len(evs.Items) == 1, fmt.Sprint(len(evs.Items), " events")
		})
	})

	t.Run("the scaler corrects a Widget and a StatefulSet through their scale subresources", func(t *testing.T) {
		if _, err := widgets.Create(ctx, harness.Widget("data", "w2", 4, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := sts.Create(ctx, harness.StatefulSet("data", "late", 7, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Tightened: Widgets to at most 2, StatefulSets to at most 5.
		if err := harness.SetPolicy(ctx, f.client, strings.Replace(kindsPolicyWith(2), "minReplicas: 3, maxReplicas: 7", "minReplicas: 3, maxReplicas: 5", 1)); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 30*time.Second, 100*time.Millisecond, "Widget w2 corrected to 2 and StatefulSet late to 5", func() (bool, string) {
			w, err := widgets.Get(ctx, "w2", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			wr, _, _ := unstructured.NestedInt64(w.Object, "spec", "replicas")
			s, err := sts.Get(ctx, "late", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return wr == 2 && *s.Spec.Replicas == 5, fmt.Sprintf("w2 %d, late %d", wr, *s.Spec.Replicas)
		})
		harness.Eventually(t, 15*time.Second, 100*time.Millisecond, "ReplicasCorrected Event on the Widget", func() (bool, string) {
			evs, err := f.client.CoreV1().Events("data").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=w2"})
			if err != nil {
				return false, err.Error()
			}
			for _, e := range evs.Items {
				if e.Reason == "ReplicasCorrected" && e.InvolvedObject.Kind == "Widget" {
					return true, ""
				}
			}
			return false, fmt.Sprint(len(evs.Items), " events")
		})
	})

	t.Run("the metric names the real kind, also for /scale writes", func(t *testing.T) {
		m := f.scrape(t)
		for _, l := range [][]string{
			{`kind="StatefulSet"`, `outcome="clamped"`},
			{`kind="StatefulSet"`, `outcome="denied"`},
			{`kind="ReplicaSet"`, `outcome="owned"`},
			{`kind="Widget"`, `outcome="clamped"`},
			{`kind="HorizontalPodAutoscaler"`, `outcome="clamped"`},
			{`kind="HorizontalPodAutoscaler"`, `outcome="warned"`},
		} {
			if v := m.Sum("replicapolicy_admission_decisions_total", l...); v < 1 {
				t.Errorf("replicapolicy_admission_decisions_total%v = %v, want at least 1", l, v)
			}
		}
		// (Requests the webhook does not handle, in other tests of this process, may still
		// say Scale: the kind of their request.)
		for _, outcome := range []string{"clamped", "denied", "warned", "allowed", "unchanged", "owned", "no_rule", "unknown", "exempt"} {
			if v := m.Sum("replicapolicy_admission_decisions_total", `kind="Scale"`, `outcome="`+outcome+`"`); v != 0 {
				t.Errorf(`kind="Scale" counted %v times with outcome %s: /scale writes must name their workload's kind`, v, outcome)
			}
		}
		if v := m.Sum("replicapolicy_scaler_corrections_total", `kind="Widget"`); v < 1 {
			t.Errorf("scaler corrections of Widgets = %v, want at least 1", v)
		}
	})
}

// TestWorkloadResourceRefusedAtStart: a --workload-resource the binary cannot serve stops
// the start with one line naming it and what is missing.
func TestWorkloadResourceRefusedAtStart(t *testing.T) {
	env := harness.StartControlPlane(t, harness.ControlPlaneOptions{CRDPaths: []string{harness.TestCRDs()}})
	dir := t.TempDir()
	admin := dir + "/admin"
	if err := env.AdminKubeconfig(admin); err != nil {
		t.Fatal(err)
	}
	// A user with no rights at all: it may discover, not read a CRD.
	if err := env.UserKubeconfig(dir+"/nobody", envtest.User{Name: "nobody"}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir+"/tls.crt", []byte("x"))
	writeFile(t, dir+"/tls.key", []byte("x"))
	for _, tc := range []struct {
		resource, kubeconfig, want string
	}{
		{"gizmos.example.com", admin, `--workload-resource gizmos.example.com: unknown resource: API group example.com/v1 serves no resource "gizmos"`},
		{"rollouts.argoproj.io", admin, `--workload-resource rollouts.argoproj.io: unknown resource: the API server serves no API group "argoproj.io" (is the CRD installed?)`},
		{"plains.example.com", admin, `--workload-resource plains.example.com: Plain has no scale subresource (plains/scale): replica-policy bounds only workloads that have one`},
		{"widgets.example.com", dir + "/nobody", `--workload-resource widgets.example.com: cannot read its CustomResourceDefinition: missing RBAC: get on customresourcedefinitions.apiextensions.k8s.io "widgets.example.com"`},
	} {
		t.Run(tc.resource, func(t *testing.T) {
			o := NewOptions()
			o.Kubeconfig = tc.kubeconfig
			o.CertDir = dir
			o.MetricsBindAddress = "0"
			o.HealthProbeBindAddress = "0"
			o.WorkloadResources = []string{tc.resource}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := Run(ctx, o)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Run returned\n %v\nwant one line starting with\n %s", err, tc.want)
			}
		})
	}
}

// testComponentRBAC installs the ClusterRole and ClusterRoleBinding that the base plus the
// component (built for widgets.example.com) give the ServiceAccount, and checks with
// SubjectAccessReviews what it may and may not do with the custom resource.
func testComponentRBAC(t *testing.T, f *fixture, manifests string) {
	ctx := context.Background()
	data, err := os.ReadFile(manifests)
	if err != nil {
		t.Fatal(err)
	}
	createRBAC(t, f.client, string(data))
	const sa = "system:serviceaccount:replica-policy-system:replica-policy"
	for _, c := range []struct {
		verb, group, resource, sub, ns, name string
		allowed                              bool
	}{
		{"get", "example.com", "widgets", "", "data", "", true},
		{"list", "example.com", "widgets", "", "", "", true},
		{"watch", "example.com", "widgets", "", "", "", true},
		{"update", "example.com", "widgets", "scale", "data", "w", true},
		{"get", "apiextensions.k8s.io", "customresourcedefinitions", "", "", "widgets.example.com", true},
		{"update", "apps", "statefulsets", "scale", "data", "db", true},
		// Never the object itself, nor another CRD, nor other custom resources.
		{"update", "example.com", "widgets", "", "data", "w", false},
		{"patch", "example.com", "widgets", "", "data", "w", false},
		{"create", "example.com", "widgets", "", "data", "", false},
		{"delete", "example.com", "widgets", "", "data", "w", false},
		{"get", "example.com", "widgets", "scale", "data", "w", false},
		{"patch", "example.com", "widgets", "scale", "data", "w", false},
		{"update", "example.com", "widgets", "status", "data", "w", false},
		{"get", "apiextensions.k8s.io", "customresourcedefinitions", "", "", "plains.example.com", false},
		{"list", "apiextensions.k8s.io", "customresourcedefinitions", "", "", "", false},
		{"update", "apiextensions.k8s.io", "customresourcedefinitions", "", "", "widgets.example.com", false},
		{"get", "example.com", "plains", "", "data", "", false},
	} {
		harness.Eventually(t, 10*time.Second, 100*time.Millisecond, fmt.Sprintf("%s %s/%s %s %s/%s allowed=%t", c.verb, c.group, c.resource, c.sub, c.ns, c.name, c.allowed), func() bool {
			r, err := f.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:replica-policy-system", "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: c.verb, Group: c.group, Resource: c.resource, Subresource: c.sub, Namespace: c.ns, Name: c.name},
			}}, metav1.CreateOptions{})
			return err == nil && r.Status.Allowed == c.allowed
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// createRBAC creates the ClusterRole, ClusterRoleBinding, Role and RoleBinding of built, a
// kustomize build of manifests/base (with a component): the ServiceAccount's rights as the
// manifests install them.
func createRBAC(t *testing.T, admin kubernetes.Interface, built string) {
	t.Helper()
	ctx := context.Background()
	var (
		cr  rbacv1.ClusterRole
		crb rbacv1.ClusterRoleBinding
		r   rbacv1.Role
		rb  rbacv1.RoleBinding
	)
	for kind, into := range map[string]any{"ClusterRole": &cr, "ClusterRoleBinding": &crb, "Role": &r, "RoleBinding": &rb} {
		if err := yaml.Unmarshal([]byte(harness.ManifestOfKind(built, kind)), into); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}
	rbac := admin.RbacV1()
	if _, err := rbac.ClusterRoles().Create(ctx, &cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.Roles(r.Namespace).Create(ctx, &r, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.RoleBindings(rb.Namespace).Create(ctx, &rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
