package scaler

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/replica-policy/replica-policy/pkg/workload"
)

// contestTracker is a tracker that finds a contest at 3 corrections in 10 minutes and backs
// off 1, 2, then 3 minutes, with one Deployment named name and its {rule, kind} label.
func contestTracker(name string) (*tracker, Request, [2]string) {
	o := DefaultOptions()
	o.ContestThreshold, o.ContestWindow, o.ContestBackoff, o.ContestMaxBackoff = 3, 10*time.Minute, time.Minute, 3*time.Minute
	req := Request{Kind: schema.GroupKind{Group: "apps", Kind: "Deployment"}, NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}}
	return newTracker(o), req, [2]string{name + "-rule", "Deployment"}
}

// corrected counts a correction of req at at, as admit does for one it lets through.
func (t *tracker) corrected(req Request, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(req)
	s.corrections = append(s.corrections, at)
}

// mustCorrect fails the test unless tr lets a correction of req under label's clamp rule
// through at at; what names the correction.
func mustCorrect(t *testing.T, tr *tracker, req Request, label [2]string, at time.Time, what string) {
	t.Helper()
	if a := tr.admit(req, clampOf(label), label, at); !a.ok {
		t.Fatalf("%s refused: %+v", what, a)
	}
}

// clampOf is the {rule, action} of label's rule, a clamp rule.
func clampOf(label [2]string) [2]string { return [2]string{label[0], "clamp"} }

func TestTrackerContest(t *testing.T) {
	tr, req, label := contestTracker("unit-contest")
	t0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	// Three corrections within the window are allowed.
	for i := range 3 {
		now := at(time.Duration(i) * time.Second)
		mustCorrect(t, tr, req, label, now, fmt.Sprintf("correction %d", i+1))
	}
	// The fourth is a contest: first back-off.
	a := tr.admit(req, clampOf(label), label, at(3*time.Second))
	if a.ok || !a.contested || a.backoff != time.Minute || a.recent != 3 {
		t.Fatalf("4th admission = %+v, want contested for 1m after 3 corrections", a)
	}
	if got := tr.contested[label]; got != 1 {
		t.Errorf("contested count = %d, want 1", got)
	}
	// During the back-off: wait, no new contest.
	a = tr.admit(req, clampOf(label), label, at(33*time.Second))
	if a.ok || a.contested || a.wait != 30*time.Second {
		t.Fatalf("admission during back-off = %+v, want wait 30s", a)
	}
	// After it: one probe correction.
	probe := at(time.Minute + 4*time.Second)
	mustCorrect(t, tr, req, label, probe, "probe")
	if got := tr.contested[label]; got != 0 {
		t.Errorf("contested count after back-off = %d, want 0", got)
	}
	// Reverted again within the window: contested at once, for twice as long.
	if a = tr.admit(req, clampOf(label), label, probe.Add(time.Second)); !a.contested || a.backoff != 2*time.Minute {
		t.Fatalf("after a reverted probe = %+v, want contested for 2m", a)
	}
	// Third contest: 4m, capped at 3m.
	probe = probe.Add(time.Second + 2*time.Minute)
	mustCorrect(t, tr, req, label, probe, "second probe")
	if a = tr.admit(req, clampOf(label), label, probe.Add(time.Second)); !a.contested || a.backoff != 3*time.Minute {
		t.Fatalf("third contest = %+v, want capped at 3m", a)
	}
	end := probe.Add(time.Second + 3*time.Minute)
	// The other writer stops: the probe sticks, and the workload is compliant from then on.
	mustCorrect(t, tr, req, label, end, "third probe")
	tr.inBounds(req, end.Add(time.Second))
	if _, ok := tr.items[req]; !ok {
		t.Fatal("state dropped while the probe is within the window")
	}
	// A whole window later it is forgiven: three corrections are allowed again.
	tr.inBounds(req, end.Add(tr.window+time.Second))
	if _, ok := tr.items[req]; ok {
		t.Fatal("state kept after a quiet window")
	}
	later := end.Add(tr.window + time.Minute)
	for i := range 3 {
		mustCorrect(t, tr, req, label, later, fmt.Sprintf("correction %d after forgiveness", i+1))
	}
}

// TestTrackerPolicyChange: corrections made under an earlier policy (or none) are not a
// fight with the policy in force: a change of policy forgets them, and ends a back-off.
func TestTrackerPolicyChange(t *testing.T) {
	tr, req, label := contestTracker("unit-policy-change")
	now := time.Unix(2_000_000, 0)
	// The policy is deleted and created again three times; each time the scaler corrects
	// the value that landed while there was none.
	for i := range 3 {
		mustCorrect(t, tr, req, label, now, fmt.Sprintf("correction %d after policy change %d", i+1, i))
		now = now.Add(time.Second)
		tr.policyChanged()
	}
	if a := tr.admit(req, clampOf(label), label, now); !a.ok || a.contested {
		t.Fatalf("after three corrections each under a new policy: %+v, want a correction, no contest", a)
	}
	// Under one policy the same three corrections are a fight (admit counted the first)...
	for range 2 {
		tr.corrected(req, now)
	}
	if a := tr.admit(req, clampOf(label), label, now); !a.contested {
		t.Fatalf("three corrections under one policy: %+v, want contested", a)
	}
	if got := tr.contested[label]; got != 1 {
		t.Errorf("contested count = %d, want 1", got)
	}
	// ...and a new policy ends the back-off at once.
	tr.policyChanged()
	if a := tr.admit(req, clampOf(label), label, now.Add(time.Second)); !a.ok {
		t.Errorf("after a policy change during a back-off: %+v, want a correction", a)
	}
	if got := tr.contested[label]; got != 0 {
		t.Errorf("contested count after the policy change = %d, want 0", got)
	}
}

func TestTrackerGauges(t *testing.T) {
	tr := newTracker(DefaultOptions())
	r := func(name string) Request {
		return Request{Kind: schema.GroupKind{Group: "apps", Kind: "Deployment"}, NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}}
	}
	a, d := [2]string{"unit-gauge-a", "deny"}, [2]string{"unit-gauge-b", "clamp"}
	tr.outOfBounds(r("1"), a, "")
	tr.outOfBounds(r("2"), a, "")
	tr.outOfBounds(r("2"), a, "") // repeated: counted once
	tr.outOfBounds(r("3"), d, "")
	if tr.oob[a] != 2 || tr.oob[d] != 1 {
		t.Fatalf("counts = %v", tr.oob)
	}
	tr.outOfBounds(r("2"), d, "") // moved to another rule
	tr.inBounds(r("1"), time.Now())
	tr.forget(r("3"))
	if _, ok := tr.oob[a]; ok || tr.oob[d] != 1 {
		t.Fatalf("counts = %v, want only %v: 1", tr.oob, d)
	}
	if !tr.outOfBounds(r("2"), d, "x") || tr.outOfBounds(r("2"), d, "x") || !tr.outOfBounds(r("2"), d, "y") {
		t.Error("outOfBounds does not report each new value once")
	}
	tr.reset()
	if len(tr.oob) != 0 || len(tr.items) != 0 {
		t.Fatalf("after reset: counts %v, items %d", tr.oob, len(tr.items))
	}
}

func TestOptions(t *testing.T) {
	o := DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{"--scaler-dry-run", "--scaler-resync-period=30s", "--scaler-max-corrections-per-second=2.5", "--scaler-contest-threshold=5"}); err != nil {
		t.Fatal(err)
	}
	if !o.DryRun || o.ResyncPeriod != 30*time.Second || o.MaxCorrectionsPerSecond != 2.5 || o.ContestThreshold != 5 || o.CorrectionBurst != DefaultOptions().CorrectionBurst {
		t.Errorf("parsed options = %+v", o)
	}
	bad := Options{ResyncPeriod: -1, ContestBackoff: time.Hour, ContestMaxBackoff: time.Minute}
	err := bad.Validate()
	for _, flagName := range []string{"--scaler-resync-period", "--scaler-max-corrections-per-second", "--scaler-correction-burst", "--scaler-workers", "--scaler-contest-threshold", "--scaler-contest-window", "--scaler-contest-max-backoff"} {
		if err == nil || !strings.Contains(err.Error(), flagName) {
			t.Errorf("Validate() = %v, want a complaint about %s", err, flagName)
		}
	}
}

// A custom resource's scale subresource is written with an unstructured Scale body
// (controller-runtime's client wants the body unstructured like the object); both bodies
// carry the request's namespace and name, the cache's resourceVersion and the replicas.
func TestScaleBody(t *testing.T) {
	req := Request{NamespacedName: types.NamespacedName{Namespace: "prod", Name: "web"}}
	k := workload.Custom(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}, "widgets", []string{"spec", "replicas"})
	u, ok := newScale(k, req, "42", 0).(*unstructured.Unstructured)
	if !ok || u.GetKind() != "Scale" || u.GetAPIVersion() != "autoscaling/v1" {
		t.Fatalf("newScale(Widget) = %#v", u)
	}
	if r, found, err := unstructured.NestedInt64(u.Object, "spec", "replicas"); u.GetNamespace() != "prod" || u.GetName() != "web" || u.GetResourceVersion() != "42" || !found || err != nil || r != 0 {
		t.Errorf("newScale(Widget) = %v, want prod/web at resourceVersion 42 with spec.replicas 0", u.Object)
	}
	s, ok := newScale(workload.StatefulSet, req, "42", 7).(*autoscalingv1.Scale)
	if !ok {
		t.Fatal("a built-in kind's scale body is typed")
	}
	if s.Namespace != "prod" || s.Name != "web" || s.ResourceVersion != "42" || s.Spec.Replicas != 7 {
		t.Errorf("newScale(StatefulSet) = %+v, want prod/web at resourceVersion 42 with spec.replicas 7", s)
	}
}

// The budget lets the first limit Events of a window through, counts the rest by key, and
// a closed window starts afresh.
func TestEventBudget(t *testing.T) {
	b := newEventBudget(2)
	a := summaryKey{namespace: "a", rule: "r", reason: ReasonReplicasCorrected}
	c := summaryKey{namespace: "c", rule: "r", reason: ReasonReplicasCorrected}
	var got []bool
	for i, k := range []summaryKey{a, c, a, c, c} {
		ok, opened := b.admit(k)
		if opened != (i == 0) {
			t.Errorf("Event %d: opened = %v", i, opened)
		}
		got = append(got, ok)
	}
	if !slices.Equal(got, []bool{true, true, false, false, false}) {
		t.Errorf("admitted %v, want the first two", got)
	}
	keys, counts := b.close()
	if !slices.Equal(keys, []summaryKey{a, c}) || counts[a] != (summaryCount{all: 2, over: 1}) || counts[c] != (summaryCount{all: 3, over: 2}) {
		t.Errorf("summaries %v %v", keys, counts)
	}
	if ok, opened := b.admit(a); !ok || !opened {
		t.Errorf("after close: admitted %v, opened %v; want a new window", ok, opened)
	}
	if keys, _ := b.close(); len(keys) != 0 {
		t.Errorf("a window within its budget has summaries: %v", keys)
	}
}

// TestTrackerCountsOnlyWritesThatHappened: admit counts the correction it lets through;
// one whose write found the workload moved, or failed, is taken back with notCorrected and
// never adds up to a contest.
func TestTrackerCountsOnlyWritesThatHappened(t *testing.T) {
	tr, req, label := contestTracker("unit-not-corrected")
	now := time.Unix(3_000_000, 0)
	for i := range 5 {
		mustCorrect(t, tr, req, label, now, fmt.Sprintf("attempt %d after %d writes that did not happen", i+1, i))
		tr.notCorrected(req)
	}
	if got := tr.oob[clampOf(label)]; got != 1 {
		t.Errorf("out-of-bounds count = %d, want 1 (admit records it)", got)
	}
	for range 3 {
		mustCorrect(t, tr, req, label, now, "correction")
	}
	if a := tr.admit(req, clampOf(label), label, now); !a.contested {
		t.Fatalf("after three corrections that happened: %+v, want contested", a)
	}
}
