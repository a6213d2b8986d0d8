package reports

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// countingReader counts the List calls of the reader it wraps.
type countingReader struct {
	client.Reader
	lists atomic.Int32
}

func (r *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	r.lists.Add(1)
	return r.Reader.List(ctx, list, opts...)
}

// runCleanup runs a Cleanup as cfg's user and returns the lines it logged at the default
// verbosity and how many times it listed the reports.
func runCleanup(t *testing.T, cfg *rest.Config) ([]string, int) {
	t.Helper()
	c := reportClient(t, cfg)
	var mu sync.Mutex
	var lines []string
	reader := &countingReader{Reader: c}
	cl := NewCleanup()
	cl.client, cl.reader = c, reader
	cl.log = funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, args)
	}, funcr.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.Start(ctx); err != nil {
		t.Fatalf("Cleanup.Start: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return lines, int(reader.lists.Load())
}

// TestCleanup: with --reports=false the leader deletes the reports an earlier --reports
// left (named replica-policy, with its label) and nothing else; without the CRD it says
// nothing; without the rights it says so once, with the command that deletes them (and
// without the word "forbidden", which the end-to-end tests look for), and leaves them. Against kube-apiserver, the OpenReports CRD installed half-way.
func TestCleanup(t *testing.T) {
	cp := harness.StartControlPlane(t, harness.ControlPlaneOptions{})
	ctx := context.Background()

	t.Run("no CRD: nothing to do, nothing said", func(t *testing.T) {
		lines, lists := runCleanup(t, cp.Config)
		if len(lines) != 0 || lists != 1 {
			t.Errorf("listed %d times (want 1, no retry) and said %q (want nothing)", lists, lines)
		}
	})

	crd, err := harness.OpenReportsReportCRD()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(cp.Config, envtest.CRDInstallOptions{Paths: []string{crd}}); err != nil {
		t.Fatal(err)
	}
	c := reportClient(t, cp.Config)
	ours := map[string]bool{}
	for _, r := range []struct {
		ns, name string
		labels   map[string]string
		ours     bool
	}{
		{"team-a", Name, map[string]string{ManagedByLabel: Source}, true},
		{"team-b", Name, map[string]string{ManagedByLabel: Source}, true},
		{"team-a", "kyverno-pol-1", map[string]string{ManagedByLabel: "kyverno"}, false},
		{"team-c", Name, nil, false},                                          // same name, not our label
		{"team-c", "other", map[string]string{ManagedByLabel: Source}, false}, // our label, not our name
	} {
		if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		rep := &openreportsv1alpha1.Report{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: r.name, Labels: r.labels}, Source: "x"}
		if err := c.Create(ctx, rep); err != nil {
			t.Fatal(err)
		}
		ours[r.ns+"/"+r.name] = r.ours
	}
	remaining := func() []string {
		list := &openreportsv1alpha1.ReportList{}
		if err := c.List(ctx, list); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range list.Items {
			out = append(out, r.Namespace+"/"+r.Name)
		}
		return out
	}
	all := len(remaining())

	t.Run("no rights to list: said once, nothing deleted", func(t *testing.T) {
		lines, lists := runCleanup(t, userConfig(t, cp, "nobody", nil))
		if len(lines) != 1 || lists != 1 || !strings.Contains(lines[0], "no rights to list reports.openreports.io") || !strings.Contains(lines[0], DeleteCommand) || strings.Contains(strings.ToLower(lines[0]), "forbidden") {
			t.Errorf("listed %d times (want 1, no retry) and said %q (want one line with %q)", lists, lines, DeleteCommand)
		}
		if n := len(remaining()); n != all {
			t.Errorf("%d reports left of %d", n, all)
		}
	})

	t.Run("may list, not delete: said once, nothing deleted", func(t *testing.T) {
		lines, _ := runCleanup(t, userConfig(t, cp, "lister", []string{"list"}))
		if len(lines) != 1 || !strings.Contains(lines[0], "no rights to delete reports.openreports.io") || strings.Contains(strings.ToLower(lines[0]), "forbidden") {
			t.Errorf("said %q, want one line", lines)
		}
		if n := len(remaining()); n != all {
			t.Errorf("%d reports left of %d", n, all)
		}
	})

	t.Run("the reports component's rights: ours deleted, the others kept", func(t *testing.T) {
		lines, _ := runCleanup(t, userConfig(t, cp, "component", []string{"create", "list"}, "get", "update", "delete"))
		for _, k := range remaining() {
			if ours[k] {
				t.Errorf("%s is still there", k)
			}
			delete(ours, k)
		}
		for k, o := range ours {
			if !o {
				t.Errorf("%s, not ours, was deleted", k)
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], `"deleted"=2`) {
			t.Errorf("said %q, want one line with deleted=2", lines)
		}
	})

	t.Run("a capped report of the longest names fits etcd", func(t *testing.T) {
		testCappedReportFits(t, cp)
	})
}

// userConfig is the configuration of a new user who may do verbs on reports.openreports.io
// in all namespaces and namedVerbs on those named Name (RBAC as manifests/components/reports
// grants it).
func userConfig(t *testing.T, cp *harness.ControlPlane, name string, verbs []string, namedVerbs ...string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	var rules []rbacv1.PolicyRule
	if len(verbs) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{openreportsv1alpha1.GroupName}, Resources: []string{"reports"}, Verbs: verbs})
	}
	if len(namedVerbs) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{openreportsv1alpha1.GroupName}, Resources: []string{"reports"}, ResourceNames: []string{Name}, Verbs: namedVerbs})
	}
	if len(rules) > 0 {
		if err := harness.GrantClusterRole(ctx, cp.Client, name, rules, harness.User(name)); err != nil {
			t.Fatal(err)
		}
	}
	u, err := cp.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := u.Config()
	// RBAC takes effect once the API server's authorizer cache has the binding: wait for it.
	harness.Eventually(t, 10*time.Second, 50*time.Millisecond, name+"'s rights in force", func() bool {
		if len(rules) == 0 {
			return true
		}
		err := reportClient(t, cfg).List(ctx, &openreportsv1alpha1.ReportList{}, client.Limit(1))
		return (err == nil) == (len(verbs) > 0)
	})
	return cfg
}

func reportClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testCappedReportFits writes, through kube-apiserver into etcd (whose default
// --max-request-bytes, 1.5 MiB, bounds an object), the report of a namespace of the
// longest name with 3,000 violators of the longest names and 500 workloads inside: the
// list is capped at MaxResults, the summary counts all 3,500, and etcd takes it.
func testCappedReportFits(t *testing.T, cp *harness.ControlPlane) {
	ctx := context.Background()
	snap, err := policy.Load([]byte(testPolicy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ns := strings.Repeat("n", 63) // a namespace name's longest (a DNS label)
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var items []Item
	for i := range 3500 {
		app, replicas := []string{"web", "db", "batch"}[i%3], int32(60)
		if i >= 3000 {
			app, replicas = "web", 3
		}
		name := fmt.Sprintf("%0253d", i) // a workload name's longest (a DNS subdomain)
		subj := policy.NewSubject("apps", "Deployment", ns, name)
		subj.SetWorkload(map[string]string{"app": app}, nil)
		v := snap.Decide(subj, &replicas)
		ref := corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns, Name: name, UID: "0f9c2a4e-6b1d-4c3e-9a8f-7d2e5b1c0a94"}
		items = append(items, workloadItem(ref, v, subj, ScalerCorrects))
	}
	rep := Build(ns, items, nil, time.Now())
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	c := reportClient(t, cp.Config)
	if err := c.Create(ctx, rep); err != nil {
		t.Fatalf("a report of %d bytes: %v", len(b), err)
	}
	got := &openreportsv1alpha1.Report{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(rep), got); err != nil {
		t.Fatal(err)
	}
	if s := got.Summary; len(got.Results) != MaxResults || s.Pass != 500 || s.Fail != 2000 || s.Warn != 1000 {
		t.Errorf("%d results (want %d), summary %+v (want pass 500 fail 2000 warn 1000)", len(got.Results), MaxResults, s)
	}
	t.Logf("a capped report with the longest names: %d results, %d bytes (%.0f%% of etcd's 1.5 MiB)", len(got.Results), len(b), 100*float64(len(b))/(1.5*1024*1024))
}
