package reports

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

const testPolicy = `
apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- name: web
  selector: {matchLabels: {app: web}}
  minReplicas: 2
  maxReplicas: 10
- name: db
  selector: {matchLabels: {app: db}}
  maxReplicas: 3
  action: deny
- name: batch
  selector: {matchLabels: {app: batch}}
  maxReplicas: 5
  action: warn
`

// item judges a Deployment ns/name labelled app=app with replicas under testPolicy.
func item(t *testing.T, snap *policy.Snapshot, name, app string, replicas int32) Item {
	t.Helper()
	subj := policy.NewSubject("apps", "Deployment", "team", name)
	subj.SetWorkload(map[string]string{"app": app}, nil)
	v := snap.Decide(subj, &replicas)
	return workloadItem(corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "team", Name: name}, v, subj, ScalerCorrects)
}

func TestBuild(t *testing.T) {
	snap, err := policy.Load([]byte(testPolicy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	items := []Item{
		item(t, snap, "ok", "web", 5),
		item(t, snap, "big", "web", 40),   // clamp: fail
		item(t, snap, "db", "db", 4),      // deny: fail
		item(t, snap, "jobs", "batch", 9), // warn: warn
		item(t, snap, "free", "none", 99), // no rule: not bounded
	}
	rep := Build("team", items, nil, now)
	if rep == nil {
		t.Fatal("no report for a namespace with bounded workloads")
	}
	if rep.Name != Name || rep.Namespace != "team" || rep.Source != Source || rep.Labels[ManagedByLabel] != Source {
		t.Errorf("metadata/source: %s/%s source %q labels %v", rep.Namespace, rep.Name, rep.Source, rep.Labels)
	}
	if s := rep.Summary; s.Pass != 1 || s.Fail != 2 || s.Warn != 1 || s.Error != 0 || s.Skip != 0 {
		t.Errorf("summary %+v, want pass 1 fail 2 warn 1", s)
	}
	got := map[string]string{}
	for _, r := range rep.Results {
		if r.Source != Source || r.Policy != Policy || len(r.Subjects) != 1 || r.Timestamp.Seconds != now.Unix() {
			t.Errorf("result %+v", r)
		}
		got[r.Subjects[0].Name] = fmt.Sprintf("%s %s %s %v", r.Result, r.Rule, r.Description, r.Properties)
	}
	want := map[string]string{
		"big":  `fail web spec.replicas 40 is outside the bounds [2, 10] of replica policy rule "web" (action clamp) and not corrected yet: the scaler sets it to 10 (if it stays here, the workload's Events say why: a failed or contested correction); the webhook clamps its next write into the bounds map[action:clamp bounds:[2, 10] replicas:40]`,
		"db":   `fail db spec.replicas 4 is outside the bounds [0, 3] of replica policy rule "db" (action deny); the scaler does not change it map[action:deny bounds:[0, 3] replicas:4]`,
		"jobs": `warn batch spec.replicas 9 is outside the bounds [0, 5] of replica policy rule "batch" (action warn); the scaler does not change it map[action:warn bounds:[0, 5] replicas:9]`,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("result of %s:\n got %s\nwant %s", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("results %v, want only %v", got, want)
	}
	if rep.Results[len(rep.Results)-1].Result != "warn" {
		t.Errorf("fail results first: %v", rep.Results)
	}

	// Rebuilt later from the same items: equal (timestamps kept), so nothing is written.
	again := Build("team", items, rep, now.Add(time.Hour))
	if !SameContent(rep, again) {
		t.Errorf("an unchanged namespace changed its report:\n%+v\n%+v", rep.Results, again.Results)
	}
	// One more violator: a change, the old results keep their timestamps.
	more := Build("team", append(items, item(t, snap, "huge", "web", 50)), rep, now.Add(time.Hour))
	if SameContent(rep, more) || more.Summary.Fail != 3 {
		t.Errorf("a new violator did not change the report: %+v", more.Summary)
	}
	for _, r := range more.Results {
		if wantTS := now.Unix() + map[bool]int64{true: 3600}[r.Subjects[0].Name == "huge"]; r.Timestamp.Seconds != wantTS {
			t.Errorf("%s: timestamp %d, want %d", r.Subjects[0].Name, r.Timestamp.Seconds, wantTS)
		}
	}

	// Nothing bounded: no report.
	if rep := Build("team", []Item{item(t, snap, "free", "none", 99)}, nil, now); rep != nil {
		t.Errorf("report for a namespace with nothing bounded: %+v", rep)
	}
	if rep := Build("team", nil, nil, now); rep != nil {
		t.Errorf("report for an empty namespace: %+v", rep)
	}
}

// TestBuildCapped: 3,000 violators and 500 compliant workloads list MaxResults results,
// count all 3,500 in the summary, and stay well under etcd's 1.5 MiB.
func TestBuildCapped(t *testing.T) {
	snap, err := policy.Load([]byte(testPolicy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var items []Item
	for i := range 3000 {
		app := []string{"web", "db", "batch"}[i%3]
		items = append(items, item(t, snap, fmt.Sprintf("violator-with-a-rather-long-name-%05d", i), app, 60))
	}
	for i := range 500 {
		items = append(items, item(t, snap, fmt.Sprintf("ok-%05d", i), "web", 3))
	}
	rep := Build("team", items, nil, time.Now())
	if len(rep.Results) != MaxResults {
		t.Errorf("%d results, want the cap %d", len(rep.Results), MaxResults)
	}
	if s := rep.Summary; s.Pass != 500 || s.Fail != 2000 || s.Warn != 1000 {
		t.Errorf("summary %+v, want pass 500 fail 2000 warn 1000", s)
	}
	for _, r := range rep.Results {
		if r.Result != "fail" {
			t.Fatalf("the capped list should hold fail results first, got %s", r.Result)
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report with %d results: %d bytes", len(rep.Results), len(b))
	if len(b) > 1024*1024 {
		t.Errorf("report of %d bytes: too close to etcd's 1.5 MiB", len(b))
	}
}

// TestClampMessage: the result of a workload outside the bounds of a clamp rule says it is
// outside them, not that it was clamped, and what the scaler in each mode does with it.
func TestClampMessage(t *testing.T) {
	snap, err := policy.Load([]byte(testPolicy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	subj := policy.NewSubject("apps", "Deployment", "team", "big")
	subj.SetWorkload(map[string]string{"app": "web"}, nil)
	replicas := int32(40)
	v := snap.Decide(subj, &replicas)
	const head = `spec.replicas 40 is outside the bounds [2, 10] of replica policy rule "web" (action clamp)`
	const next = "; the webhook clamps its next write into the bounds"
	for mode, want := range map[ScalerMode]string{
		ScalerCorrects: head + ` and not corrected yet: the scaler sets it to 10 (if it stays here, the workload's Events say why: a failed or contested correction)` + next,
		ScalerDryRun:   head + `: the scaler runs in dry-run mode (--scaler-dry-run) and leaves it (it would set 10)` + next,
		ScalerOff:      head + `: the scaler is off (--enable-scaler=false) and leaves it` + next,
	} {
		it := workloadItem(corev1.ObjectReference{Kind: "Deployment", Name: "big"}, v, subj, mode)
		if it.Message != want {
			t.Errorf("mode %d:\n got %s\nwant %s", mode, it.Message, want)
		}
		if strings.Contains(it.Message, "clamped to") {
			t.Errorf("mode %d: %q says the workload was clamped", mode, it.Message)
		}
	}
	// Deny and warn rules keep the scaler's Event text.
	db := policy.NewSubject("apps", "Deployment", "team", "db")
	db.SetWorkload(map[string]string{"app": "db"}, nil)
	replicas = 4
	dv := snap.Decide(db, &replicas)
	if it := workloadItem(corev1.ObjectReference{Kind: "Deployment", Name: "db"}, dv, db, ScalerOff); it.Message != it.Effect.Messages[0] {
		t.Errorf("deny violator: message %q, want the Event's %q", it.Message, it.Effect.Messages[0])
	}
}
