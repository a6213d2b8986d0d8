package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/reports"
)

// --reports through kube-apiserver with the OpenReports CRD installed, at the scale of the
// issue: 1,000 workloads in 20 namespaces, 100 of them outside their bounds (in each
// namespace 3 under a clamp rule, 1 under deny, 1 under warn, 45 inside), an HPA whose range
// leaves its target's bounds, and a namespace with nothing bounded. The webhook runs as the
// manifests' ServiceAccount with the RBAC of manifests/base plus manifests/components/reports,
// and is restarted as an operator would: scaler off, then on, then --reports=false, then
// with the component's rights gone.

const reportsPolicy = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: web, namespaces: ["team-*"], selector: {matchLabels: {tier: web}}, minReplicas: 1, maxReplicas: 5}
- {name: db, namespaces: ["team-*"], selector: {matchLabels: {tier: db}}, maxReplicas: 3, action: deny}
- {name: batch, namespaces: ["team-*"], selector: {matchLabels: {tier: batch}}, maxReplicas: 4, action: warn}
`

const (
	reportNamespaces = 20
	reportWorkloads  = 50 // per namespace
	// serviceAccount is the user the webhook runs as: the manifests' ServiceAccount (RBAC
	// binds a ServiceAccount subject to this user name), so that it may do what the
	// manifests grant, nothing more.
	serviceAccount = "system:serviceaccount:" + policy.DefaultNamespace + ":replica-policy"
)

func teamNS(i int) string { return fmt.Sprintf("team-%02d", i) }

// reportsEnv is the control plane of TestReports, its clients and what it runs.
type reportsEnv struct {
	env    *harness.ControlPlane
	admin  kubernetes.Interface
	rc     client.WithWatch // reads reports
	sa     string           // kubeconfig of the ServiceAccount
	f      *fixture         // the webhook running now
	scrape string           // its metrics address
	audit  string           // kube-apiserver's audit log of the requests on reports
}

// auditArgs are the kube-apiserver flags that log every request on reports to path.
func auditArgs(t *testing.T, path string) []string {
	t.Helper()
	policyFile := filepath.Join(t.TempDir(), "audit-policy.yaml")
	writeFile(t, policyFile, []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  resources: [{group: openreports.io, resources: [reports]}]
- level: None
`))
	return []string{"audit-policy-file=" + policyFile, "audit-log-path=" + path}
}

// auditEvent is what TestReports reads of an event of kube-apiserver's audit log.
type auditEvent struct {
	Verb string `json:"verb"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceived metav1.MicroTime `json:"requestReceivedTimestamp"`
}

// requests returns the requests on reports that the ServiceAccount sent and the API server
// received at or after from, as its audit log has them.
func (e *reportsEnv) requests(t *testing.T, from time.Time) []auditEvent {
	t.Helper()
	data, err := os.ReadFile(e.audit)
	if err != nil {
		t.Fatal(err)
	}
	var out []auditEvent
	for _, line := range strings.Split(string(data), "\n") {
		var ev auditEvent
		if json.Unmarshal([]byte(line), &ev) == nil && ev.User.Username == serviceAccount && ev.ObjectRef.Resource == "reports" && !ev.RequestReceived.Time.Before(from) {
			out = append(out, ev)
		}
	}
	return out
}

// writes returns, by namespace, when the API server received each write (create, update,
// delete) of a report that the ServiceAccount sent at or after from: the audit log's
// times, which no watch delay blurs.
func (e *reportsEnv) writes(t *testing.T, from time.Time) map[string][]time.Time {
	t.Helper()
	out := map[string][]time.Time{}
	for _, ev := range e.requests(t, from) {
		if ev.Verb == "create" || ev.Verb == "update" || ev.Verb == "delete" {
			out[ev.ObjectRef.Namespace] = append(out[ev.ObjectRef.Namespace], ev.RequestReceived.Time)
		}
	}
	for _, ts := range out {
		slices.SortFunc(ts, time.Time.Compare)
	}
	return out
}

// refusedLists counts the LISTs of reports by the ServiceAccount since from that the API
// server refused.
func (e *reportsEnv) refusedLists(t *testing.T, from time.Time) int {
	t.Helper()
	n := 0
	for _, ev := range e.requests(t, from) {
		if ev.Verb == "list" && ev.ResponseStatus.Code == http.StatusForbidden {
			n++
		}
	}
	return n
}

// start starts the webhook as the ServiceAccount, after stopping the one running, and
// waits until it is ready.
func (e *reportsEnv) start(t *testing.T, configure func(*Options)) {
	t.Helper()
	if e.f != nil {
		e.f.stop()
	}
	e.scrape = freeAddress(t)
	e.f = runWebhookOn(t, e.env, func(_ *harness.ControlPlane, o *Options) {
		o.Kubeconfig = e.sa
		o.MetricsBindAddress = e.scrape
		configure(o)
	})
	e.f.waitReady(t)
}

// metric is the sum of a counter of the webhook running now.
func (e *reportsEnv) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	m, err := harness.ScrapeMetrics(e.scrape)
	if err != nil {
		t.Fatal(err)
	}
	return m.Sum(name, labels...)
}

// results says what the report rep holds: its summary and "result rule kind/name replicas
// bounds" lines.
func results(rep *openreportsv1alpha1.Report) string {
	lines := []string{fmt.Sprintf("source %s pass %d fail %d warn %d", rep.Source, rep.Summary.Pass, rep.Summary.Fail, rep.Summary.Warn)}
	for _, r := range rep.Results {
		lines = append(lines, fmt.Sprintf("%s %s %s %s/%s %s %s", r.Source, r.Result, r.Rule, r.Subjects[0].Kind, r.Subjects[0].Name, r.Properties["replicas"], r.Properties["bounds"]))
	}
	return strings.Join(lines, "; ")
}

// teamState is what a team namespace's report should say: the web workloads outside their
// bounds (8 replicas, under the clamp rule) and the replicas of the warn violator batch-0.
// Its deny violator db-0 (6 replicas) is always there, fail.
type teamState struct {
	web   []string
	batch int32
}

func (s teamState) want() string {
	lines := []string{
		fmt.Sprintf("source replica-policy pass %d fail %d warn 1", reportWorkloads-2-len(s.web), 1+len(s.web)),
		"replica-policy fail db Deployment/db-0 6 [0, 3]",
	}
	for _, w := range s.web {
		lines = append(lines, fmt.Sprintf("replica-policy fail web Deployment/%s 8 [1, 5]", w))
	}
	return strings.Join(append(lines, fmt.Sprintf("replica-policy warn batch Deployment/batch-0 %d [0, 4]", s.batch)), "; ")
}

const hpaWant = "source replica-policy pass 1 fail 1 warn 0; replica-policy fail web HorizontalPodAutoscaler/app [1, 20] [1, 5]"

// allRight is a condition: every report in the cluster is what teams (and the HPA's
// namespace, when withHPA) want, with one list of them; no other namespace has one.
func (e *reportsEnv) allRight(teams map[string]teamState, withHPA bool) func() (bool, string) {
	return func() (bool, string) {
		list := &openreportsv1alpha1.ReportList{}
		if err := e.rc.List(context.Background(), list, client.MatchingLabels{reports.ManagedByLabel: reports.Source}); err != nil {
			return false, err.Error()
		}
		got := map[string]string{}
		for i := range list.Items {
			got[list.Items[i].Namespace] = results(&list.Items[i])
		}
		want := map[string]string{}
		for ns, s := range teams {
			want[ns] = s.want()
		}
		if withHPA {
			want["team-hpa"] = hpaWant
		}
		for ns := range got {
			if _, ok := want[ns]; !ok {
				return false, fmt.Sprintf("namespace %s has a report: %s", ns, got[ns])
			}
		}
		for ns, w := range want {
			if got[ns] != w {
				return false, fmt.Sprintf("%s: %q, want %q", ns, got[ns], w)
			}
		}
		return true, ""
	}
}

func TestReports(t *testing.T) {
	crd, err := harness.OpenReportsReportCRD()
	if err != nil {
		t.Fatal(err)
	}
	e := &reportsEnv{audit: filepath.Join(t.TempDir(), "audit.log")}
	e.env = harness.StartControlPlane(t, harness.ControlPlaneOptions{
		WebhookPaths:  []string{filepath.Join(harness.RepoRoot(), "manifests", "base", "webhooks.yaml")},
		CRDPaths:      []string{crd},
		APIServerArgs: auditArgs(t, e.audit),
	})
	ctx := context.Background()
	// The test's own clients: without client-go's default 5 requests a second, which would
	// make the times measured the test's own throttling; without printing the warn rule's
	// 500 warnings.
	cfg := rest.CopyConfig(e.env.Config)
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.WarningHandler = rest.NoWarnings{}
	e.admin = kubernetes.NewForConfigOrDie(cfg)
	scheme := runtime.NewScheme()
	if err := reports.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if e.rc, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	var baseRole *rbacv1.ClusterRole
	e.sa, baseRole = installReportsRBAC(t, e.env, e.admin)
	e.start(t, func(o *Options) { o.Reports = true })

	teams := createReportWorkloads(t, e.admin)

	set := time.Now()
	if err := harness.SetPolicy(ctx, e.admin, reportsPolicy); err != nil {
		t.Fatal(err)
	}
	t.Run("every namespace's report right within 10s", func(t *testing.T) {
		took := harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "the 21 reports", e.allRight(teams, true))
		var all []time.Time
		// (kube-apiserver logs a request just after it answers it.)
		harness.Eventually(t, 5*time.Second, 50*time.Millisecond, "the writes in the audit log", func() bool {
			all = nil
			for _, ts := range e.writes(t, set) {
				all = append(all, ts...)
			}
			return len(all) >= reportNamespaces+1
		})
		slices.SortFunc(all, time.Time.Compare)
		t.Logf("20 reports (1,000 workloads, 100 outside) and the HPA's right %v after the policy was set: %d report writes, the first %v after it, the last %v",
			took.Round(time.Millisecond), len(all), all[0].Sub(set).Round(time.Millisecond), all[len(all)-1].Sub(set).Round(time.Millisecond))
		if len(all) != reportNamespaces+1 {
			t.Errorf("%d report writes for 21 new reports", len(all))
		}
		rep := &openreportsv1alpha1.Report{}
		if err := e.rc.Get(ctx, client.ObjectKey{Namespace: teamNS(0), Name: reports.Name}, rep); err != nil {
			t.Fatal(err)
		}
		if b, err := json.Marshal(rep); err == nil {
			t.Logf("a report of 50 workloads, 5 results: %d bytes (the cap and the size of a full report: TestCleanup in pkg/reports)", len(b))
		}
		for _, r := range rep.Results {
			if r.Policy != reports.Policy || r.Description == "" || r.Properties["action"] == "" || r.Subjects[0].Namespace != teamNS(0) || r.Subjects[0].UID == "" {
				t.Errorf("result %+v", r)
			}
			// With the scaler off, a clamp violator's result says it stays; it was not clamped.
			if r.Rule == "web" && (!strings.Contains(r.Description, "is outside the bounds [1, 5]") || !strings.Contains(r.Description, "the scaler is off") || strings.Contains(r.Description, "clamped to")) {
				t.Errorf("clamp violator %s: %q", r.Subjects[0].Name, r.Description)
			}
		}
	})

	t.Run("a fixed workload leaves its report within 10s, a deny violator stays fail", func(t *testing.T) {
		for _, ns := range []string{teamNS(0), teamNS(1)} {
			if _, err := e.admin.AppsV1().Deployments(ns).Patch(ctx, "web-0", types.MergePatchType, []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			teams[ns] = teamState{web: []string{"web-1", "web-2"}, batch: teams[ns].batch}
		}
		took := harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "web-0 out of two reports", e.allRight(teams, true))
		t.Logf("fixed workloads left their reports %v after the fix", took.Round(time.Millisecond))
	})

	t.Run("1,000 changes: writes only on change, at most one a second per namespace", func(t *testing.T) {
		testReportWrites(t, e, teams)
	})

	t.Run("a namespace left with nothing bounded loses its report", func(t *testing.T) {
		if err := e.admin.AutoscalingV2().HorizontalPodAutoscalers("team-hpa").Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := e.admin.AppsV1().Deployments("team-hpa").Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		took := harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "team-hpa's report deleted", e.allRight(teams, false))
		t.Logf("the report of a namespace left with nothing bounded deleted %v after its last workload", took.Round(time.Millisecond))
	})

	t.Run("restarted with the scaler on: corrected workloads leave their reports within 10s", func(t *testing.T) {
		testCorrectedLeave(t, e, teams)
	})

	t.Run("restarted with --reports=false: the reports are deleted, no other", func(t *testing.T) {
		foreign := &openreportsv1alpha1.Report{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS(0), Name: "kyverno-pol-1", Labels: map[string]string{reports.ManagedByLabel: "kyverno"}}, Source: "kyverno"}
		if err := e.rc.Create(ctx, foreign); err != nil {
			t.Fatal(err)
		}
		restart := time.Now()
		e.start(t, func(o *Options) { o.Reports = false })
		took := harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "the reports deleted", e.allRight(nil, false))
		deletes := 0
		harness.Eventually(t, 5*time.Second, 50*time.Millisecond, "the deletes in the audit log", func() bool {
			deletes = 0
			for _, ts := range e.writes(t, restart) {
				deletes += len(ts)
			}
			return deletes >= reportNamespaces
		})
		if deletes != reportNamespaces {
			t.Errorf("%d report writes to delete %d reports", deletes, reportNamespaces)
		}
		t.Logf("20 reports deleted (%d requests) %v after the restart with --reports=false (%v after ready)", deletes, time.Since(restart).Round(time.Millisecond), took.Round(time.Millisecond))
		if err := e.rc.Get(ctx, client.ObjectKeyFromObject(foreign), foreign); err != nil {
			t.Errorf("Kyverno's report: %v", err)
		}
	})

	t.Run("restarted without the component's rights: starts, leaves a report", func(t *testing.T) {
		if _, err := e.admin.RbacV1().ClusterRoles().Update(ctx, baseRole, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitAccess(t, e.admin, "list", false)
		left := &openreportsv1alpha1.Report{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS(0), Name: reports.Name, Labels: map[string]string{reports.ManagedByLabel: reports.Source}}, Source: reports.Source}
		if err := e.rc.Create(ctx, left); err != nil {
			t.Fatal(err)
		}
		// The leader's look at the reports is a LIST that the API server refuses: its audit
		// log says so.
		restart := time.Now()
		e.start(t, func(o *Options) { o.Reports = false }) // fails the test unless ready
		harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "the leader's LIST of the reports refused", func() bool { return e.refusedLists(t, restart) == 1 })
		if err := e.rc.Get(ctx, client.ObjectKeyFromObject(left), left); err != nil {
			t.Errorf("the report left behind: %v", err)
		}
		e.f.waitReady(t)
	})
}

// installReportsRBAC installs the ServiceAccount's RBAC of manifests/base plus
// manifests/components/reports, and returns a kubeconfig of the ServiceAccount and the
// ClusterRole of manifests/base alone (the rights once the component is removed).
func installReportsRBAC(t *testing.T, env *harness.ControlPlane, admin kubernetes.Interface) (string, *rbacv1.ClusterRole) {
	t.Helper()
	createNamespaces(t, admin, policy.DefaultNamespace)
	built, err := os.ReadFile(harness.ComponentManifests(t, "reports", "reports.yaml", nil))
	if err != nil {
		t.Fatal(err)
	}
	createRBAC(t, admin, string(built))
	waitAccess(t, admin, "list", true)

	baseRBAC, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "manifests", "base", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal([]byte(harness.ManifestOfKind(string(baseRBAC), "ClusterRole")), base); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(base.Rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.APIGroups, openreportsv1alpha1.GroupName) }) {
		t.Fatalf("manifests/base grants rights on reports: %+v", base.Rules)
	}

	path := filepath.Join(t.TempDir(), "serviceaccount")
	if err := env.UserKubeconfig(path, envtest.User{Name: serviceAccount}); err != nil {
		t.Fatal(err)
	}
	return path, base
}

// waitAccess waits until the API server's authorizer says the ServiceAccount may (or may
// not) do verb on reports in all namespaces: RBAC changes take effect a moment later.
func waitAccess(t *testing.T, admin kubernetes.Interface, verb string, allowed bool) {
	t.Helper()
	harness.Eventually(t, 10*time.Second, 50*time.Millisecond, fmt.Sprintf("%s reports allowed=%t", verb, allowed), func() bool {
		r, err := admin.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               serviceAccount,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: openreportsv1alpha1.GroupName, Resource: "reports"},
		}}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed == allowed
	})
}

// createReportWorkloads creates the namespaces and workloads, before the policy so that the
// webhook lets the violators in: in each team namespace web-0..2 (8 replicas, clamp rule
// [1, 5]), db-0 (6, deny rule [0, 3]), batch-0 (7, warn rule [0, 4]) and 45 inside their
// bounds; namespace free with workloads no rule bounds; namespace team-hpa with a compliant
// workload whose HPA's range [1, 20] leaves its bounds. It returns what each team
// namespace's report should say.
func createReportWorkloads(t *testing.T, admin kubernetes.Interface) map[string]teamState {
	t.Helper()
	ctx := context.Background()
	teams := map[string]teamState{}
	var deployments []*appsv1.Deployment
	add := func(ns, name, tier string, replicas int32) {
		var labels map[string]string
		if tier != "" {
			labels = map[string]string{"tier": tier}
		}
		deployments = append(deployments, harness.Deployment(ns, name, replicas, labels))
	}
	for i := range reportNamespaces {
		ns := teamNS(i)
		createNamespaces(t, admin, ns)
		teams[ns] = teamState{web: []string{"web-0", "web-1", "web-2"}, batch: 7}
		for _, w := range teams[ns].web {
			add(ns, w, "web", 8)
		}
		add(ns, "db-0", "db", 6)
		add(ns, "batch-0", "batch", 7)
		for j := 5; j < reportWorkloads; j++ {
			add(ns, fmt.Sprintf("ok-%02d", j), "web", 2)
		}
	}
	createNamespaces(t, admin, "free")
	for j := range 3 {
		add("free", fmt.Sprintf("free-%d", j), "", 40)
	}
	createNamespaces(t, admin, "team-hpa")
	add("team-hpa", "app", "web", 2)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-hpa", Name: "app"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "app"},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 20,
		},
	}
	if _, err := admin.AutoscalingV2().HorizontalPodAutoscalers("team-hpa").Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// 16 at a time: the API server and the webhook on 2 cores take them at a few hundred a
	// second.
	start := time.Now()
	s := harness.RunConcurrently(16, len(deployments), func(_, i int) error {
		_, err := admin.AppsV1().Deployments(deployments[i].Namespace).Create(ctx, deployments[i], metav1.CreateOptions{})
		return err
	})
	if s.Errors > 0 {
		t.Fatalf("%d of %d creates failed: %v", s.Errors, len(deployments), s.FirstError)
	}
	t.Logf("%d Deployments created in %v", len(deployments), time.Since(start).Round(time.Millisecond))
	return teams
}

// testReportWrites makes 1,000 changes, 50 in each team namespace, each change 100 ms after
// the last: in the odd namespaces 50 replica counts of the warn violator batch-0 (each
// changes the report), in the even ones 50 label changes of workloads inside their bounds
// (none changes a report). A report is written only when its content changed, at most once a
// second: the even namespaces get no write, the odd ones at most one a second of the changes'
// span, and one more after it.
func testReportWrites(t *testing.T, e *reportsEnv, teams map[string]teamState) {
	ctx := context.Background()
	time.Sleep(1500 * time.Millisecond) // let the previous writes settle
	const perNamespace = 50
	metricBefore := e.metric(t, "replicapolicy_reports_writes_total")
	start := time.Now()
	s := harness.RunConcurrently(reportNamespaces, reportNamespaces, func(_, i int) error {
		ns := teamNS(i)
		for k := range perNamespace {
			name, patch := fmt.Sprintf("ok-%02d", 5+k%45), fmt.Sprintf(`{"metadata":{"labels":{"touched":"%d"}}}`, k)
			if i%2 == 1 {
				name, patch = "batch-0", fmt.Sprintf(`{"spec":{"replicas":%d}}`, 10+k)
			}
			if _, err := e.admin.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond) // the changes spread over 5 s: the cap, not one burst, decides
		}
		return nil
	})
	changed := time.Since(start)
	if s.Errors > 0 {
		t.Fatalf("%d namespaces' changes failed: %v", s.Errors, s.FirstError)
	}
	for i := 1; i < reportNamespaces; i += 2 {
		teams[teamNS(i)] = teamState{web: teams[teamNS(i)].web, batch: 10 + perNamespace - 1}
	}
	took := harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "the last replicas of batch-0 reported", e.allRight(teams, true))
	time.Sleep(1500 * time.Millisecond) // nothing more should come
	limit := int(changed/time.Second) + 2
	total, fewest, most := 0, 1<<30, 0
	minGap := time.Hour
	writes := e.writes(t, start)
	for i := range reportNamespaces {
		ns := teamNS(i)
		ts := writes[ns]
		n := len(ts)
		total += n
		switch {
		case i%2 == 0 && n != 0:
			t.Errorf("%s: %d report writes for changes that change no report", ns, n)
		case i%2 == 1 && (n == 0 || n > limit):
			t.Errorf("%s: %d report writes for %d changes in %v, want 1 to %d (one a second and one after)", ns, n, perNamespace, changed.Round(time.Millisecond), limit)
		}
		if i%2 == 1 {
			fewest, most = min(fewest, n), max(most, n)
		}
		for k := 1; k < n; k++ {
			minGap = min(minGap, ts[k].Sub(ts[k-1]))
		}
	}
	// The Reporter sends a namespace's next write a second after the last one returned, so
	// the API server receives them more than a second apart. (Without the cap they would be
	// 100 ms apart, as the changes are.)
	if minGap < time.Second {
		t.Errorf("two writes of one report received %v apart, want at least a second", minGap)
	}
	metric := e.metric(t, "replicapolicy_reports_writes_total") - metricBefore
	if metric > float64(reportNamespaces/2*limit) {
		t.Errorf("replicapolicy_reports_writes_total rose by %v, more than %d", metric, reportNamespaces/2*limit)
	}
	t.Logf("%d changes in %v (%d that change %d reports, %d that change none): %d report writes (the binary counted %v), %d to %d per changed namespace (at most %d allowed), the closest two of one namespace %v apart; the last change reported %v after it",
		reportNamespaces*perNamespace, changed.Round(time.Millisecond), reportNamespaces/2*perNamespace, reportNamespaces/2, reportNamespaces/2*perNamespace,
		total, metric, fewest, most, limit, minGap.Round(time.Millisecond), took.Round(time.Millisecond))
}

// testCorrectedLeave restarts the webhook with the scaler on: it corrects the 58 clamp
// violators left, and their results leave the reports within 10 s of the last correction;
// the deny and warn violators stay.
func testCorrectedLeave(t *testing.T, e *reportsEnv, teams map[string]teamState) {
	want := 0
	for ns, s := range teams {
		want += len(s.web)
		teams[ns] = teamState{batch: s.batch}
	}
	before := 0.0 // the counter is the test process's: every Run in it adds to it
	if m, err := harness.ScrapeMetrics(e.scrape); err == nil {
		before = m.Sum("replicapolicy_scaler_corrections_total")
	}
	restart := time.Now()
	e.start(t, func(o *Options) {
		o.Reports = true
		o.EnableScaler = true
	})
	harness.Eventually(t, 30*time.Second, 50*time.Millisecond, fmt.Sprintf("%d corrections", want), func() (bool, string) {
		got := e.metric(t, "replicapolicy_scaler_corrections_total") - before
		return got >= float64(want), fmt.Sprint(got)
	})
	corrected := time.Now()
	took := harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "the corrected workloads out of the reports", e.allRight(teams, false))
	n := 0
	for _, ts := range e.writes(t, restart) {
		n += len(ts)
	}
	t.Logf("%d clamp violators corrected %v after the restart with the scaler on; the reports right %v after the last correction, after %d report writes",
		want, corrected.Sub(restart).Round(time.Millisecond), took.Round(time.Millisecond), n)
	list, err := e.admin.AppsV1().Deployments("").List(context.Background(), metav1.ListOptions{LabelSelector: "tier in (web, db)"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list.Items {
		r := ptr.Deref(d.Spec.Replicas, -1)
		if (d.Labels["tier"] == "web" && r > 5) || (d.Labels["tier"] == "db" && r != 6) {
			t.Errorf("%s/%s: %d replicas", d.Namespace, d.Name, r)
		}
	}
}

// TestReportsWithoutCRD: --reports without the OpenReports CRD runs on: ready, the webhook
// still clamps, replicapolicy_reports_active is 0. (That it says so once in its log is
// TestWaitForCRD in pkg/reports: the process-wide logger is the first Run's in this
// package.) Restarted with --reports=false, whose leader looks for reports to delete, it
// starts as well (that it says nothing: TestCleanup).
func TestReportsWithoutCRD(t *testing.T) {
	f := startWebhook(t, func(o *Options) {
		o.Reports = true
	})
	ctx := context.Background()
	if err := harness.SetPolicy(ctx, f.client, basePolicy); err != nil {
		t.Fatal(err)
	}
	createNamespaces(t, f.client, "apps")
	clamps := func() (bool, string) {
		d, err := f.client.AppsV1().Deployments("apps").Create(ctx, harness.Deployment("apps", "big", 40, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && ptr.Deref(d.Spec.Replicas, 0) == 10, fmt.Sprint(err, " ", replicasOf(d))
	}
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "a clamp by the webhook", clamps)
	f.waitReady(t)
	m := f.scrape(t)
	if v, err := m.Value("replicapolicy_reports_active"); err != nil || v != 0 {
		t.Errorf("replicapolicy_reports_active %v (%v), want 0 without the CRD", v, err)
	}

	f.stop()
	f = runWebhookOn(t, f.env, func(_ *harness.ControlPlane, o *Options) { o.Reports = false })
	f.waitReady(t)
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, "a clamp by the webhook with --reports=false", clamps)
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d == nil {
		return -1
	}
	return ptr.Deref(d.Spec.Replicas, -1)
}

// TestReportsOffWithTheRights: the way docs/operations.md ("Turning it off") tells an operator
// to turn reports off before removing their rights gives the webhook --reports=false and
// keeps the component's rights to list and delete reports, with kustomize (a patch after
// the component) and with Helm (extraArgs beside reports.enabled).
func TestReportsOffWithTheRights(t *testing.T) {
	dir := t.TempDir()
	if err := harness.CopyManifests(filepath.Join(dir, "manifests")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "kustomization.yaml"), []byte(`resources: [manifests/base]
components: [manifests/components/reports]
patches:
- target: {kind: Deployment, name: replica-policy-webhook}
  patch: |-
    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: --reports=false
`))
	kubectl := harness.NeedKubectl(t, "kubectl kustomize")
	kustomized, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	helmed, err := harness.HelmCmd(context.Background(), t.TempDir(), "template", "replica-policy", harness.Chart(),
		"--namespace", policy.DefaultNamespace, "--set", "reports.enabled=true", "--set", "extraArgs={--reports=false}")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	for tool, out := range map[string]string{"kustomize": string(kustomized), "helm": helmed} {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(harness.ManifestOfKind(out, "Deployment")), &d); err != nil {
			t.Fatal(err)
		}
		o := NewOptions()
		fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
		o.AddFlags(fs)
		if err := fs.Parse(d.Spec.Template.Spec.Containers[0].Args); err != nil || o.Reports {
			t.Errorf("%s: --reports %t (%v) from %q, want false", tool, o.Reports, err, d.Spec.Template.Spec.Containers[0].Args)
		}
		var role rbacv1.ClusterRole
		if err := yaml.Unmarshal([]byte(harness.ManifestOfKind(out, "ClusterRole")), &role); err != nil {
			t.Fatal(err)
		}
		may := map[string]bool{}
		for _, r := range role.Rules {
			if slices.Contains(r.APIGroups, openreportsv1alpha1.GroupName) {
				for _, v := range r.Verbs {
					may[v] = true
				}
			}
		}
		if !may["list"] || !may["delete"] {
			t.Errorf("%s: the ClusterRole may %v on reports, want list and delete", tool, may)
		}
	}
}
