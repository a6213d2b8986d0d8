package scaler

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// HorizontalPodAutoscalers: reported (Event HPAOutOfBounds, once per range and rule, and
// the autoscalers gauge), never changed, judged by their target workload's rule.

func recHPA(name, targetKind, target string, lo *int32, hi int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: recNS, Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: targetKind, Name: target},
			MinReplicas:    lo, MaxReplicas: hi,
		},
	}
}

func hpaReq(name string) Request {
	return Request{Kind: AutoscalerGroupKind, NamespacedName: types.NamespacedName{Namespace: recNS, Name: name}}
}

func (f *fixture) hpaOOBCount(rule string, action policy.Action) int {
	f.r.tracker.mu.Lock()
	defer f.r.tracker.mu.Unlock()
	return f.r.tracker.hpaOOB[[2]string{rule, string(action)}]
}

func TestReconcileAutoscalers(t *testing.T) {
	const doc = `rules:
- {name: rt-hpa-db, namespaces: [prod], kinds: [StatefulSet], selector: {matchLabels: {tier: db}}, minReplicas: 3, maxReplicas: 5, action: deny}
- {name: rt-hpa-web, namespaces: [prod], minReplicas: 2, maxReplicas: 10}
`
	db := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: recNS, Name: "pg", Labels: map[string]string{"tier": "db"}}}
	web := recDeployment(recNS, recName, ptr.To[int32](3))
	outOfBounds := func(hpa, note string) recordedEvent {
		return recordedEvent{Regarding: recNS + "/" + hpa, Type: corev1.EventTypeWarning, Reason: ReasonAutoscalerOutOfBounds, Action: "Report", Note: note}
	}
	const suffix = ": its scale writes are clamped to the bounds and it reports sizes it never reaches; set its range inside the bounds (the scaler never changes an HPA)"
	for _, tc := range []struct {
		name       string
		objs       []client.Object
		hpa        string
		runs       int
		wantEvents []recordedEvent
		oob        map[string]int // rule -> HPAs counted out of bounds afterwards
	}{
		{name: "max above: reported once however often it is evaluated", objs: []client.Object{web, recHPA("web-hpa", "Deployment", recName, nil, 30)}, hpa: "web-hpa", runs: 3,
			wantEvents: []recordedEvent{outOfBounds("web-hpa", `HorizontalPodAutoscaler "web-hpa": spec.minReplicas: Invalid value: 1: must be within [2, 10] (replica policy rule "rt-hpa-web", action clamp); `+
				`HorizontalPodAutoscaler "web-hpa": spec.maxReplicas: Invalid value: 30: must be within [2, 10] (replica policy rule "rt-hpa-web", action clamp)`+suffix)},
			oob: map[string]int{"rt-hpa-web": 1}},
		{name: "inside the bounds: quiet", objs: []client.Object{web, recHPA("web-hpa", "Deployment", recName, ptr.To[int32](2), 10)}, hpa: "web-hpa", runs: 1,
			oob: map[string]int{"rt-hpa-web": 0}},
		{name: "the target's kind and cached labels choose the rule", objs: []client.Object{db, recHPA("pg-hpa", "StatefulSet", "pg", ptr.To[int32](3), 9)}, hpa: "pg-hpa", runs: 1,
			wantEvents: []recordedEvent{outOfBounds("pg-hpa", `HorizontalPodAutoscaler "pg-hpa": spec.maxReplicas: Invalid value: 9: must be within [3, 5] (replica policy rule "rt-hpa-db", action deny)`+suffix)},
			oob:        map[string]int{"rt-hpa-db": 1}},
		{name: "target not cached and a selector rule first: unknown, not reported", objs: []client.Object{recHPA("pg-hpa", "StatefulSet", "pg", ptr.To[int32](3), 9)}, hpa: "pg-hpa", runs: 1,
			oob: map[string]int{"rt-hpa-db": 0, "rt-hpa-web": 0}},
		{name: "target of a kind that is not bounded", objs: []client.Object{recHPA("rc-hpa", "ReplicationController", "rc", nil, 99)}, hpa: "rc-hpa", runs: 1,
			oob: map[string]int{"rt-hpa-web": 0}},
		{name: "deleted: forgotten", hpa: "gone", runs: 1, oob: map[string]int{"rt-hpa-web": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureConfig{policy: doc, opts: DefaultOptions(), objs: tc.objs})
			for range tc.runs {
				if res, err := f.r.Reconcile(context.Background(), hpaReq(tc.hpa)); err != nil || res.RequeueAfter != 0 {
					t.Fatalf("Reconcile: %v, %+v", err, res)
				}
			}
			if calls := f.scale.recorded(); len(calls) != 0 {
				t.Errorf("scale requests %+v: an HPA is never changed, nor its target for its sake", calls)
			}
			got := f.events.recorded()
			if len(got) != len(tc.wantEvents) {
				t.Fatalf("events %+v, want %+v", got, tc.wantEvents)
			}
			for i := range got {
				if got[i] != tc.wantEvents[i] {
					t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], tc.wantEvents[i])
				}
			}
			for rule, want := range tc.oob {
				action := policy.ActionClamp
				if rule == "rt-hpa-db" {
					action = policy.ActionDeny
				}
				if n := f.hpaOOBCount(rule, action); n != want {
					t.Errorf("autoscalers out of bounds for %s: %d, want %d", rule, n, want)
				}
				if n := f.oobCount(rule, action); n != 0 {
					t.Errorf("HPA counted among out-of-bounds workloads (%d)", n)
				}
			}
		})
	}
}

// A range that changes is reported again; one brought inside the bounds leaves the gauge,
// and deleting the HPA forgets it.
func TestReconcileAutoscalerRangeChanges(t *testing.T) {
	const doc = "rules:\n- {name: rt-hpa-change, namespaces: [prod], maxReplicas: 10}\n"
	hpa := recHPA("web-hpa", "Deployment", recName, nil, 30)
	f := newFixture(t, fixtureConfig{policy: doc, opts: DefaultOptions(), objs: []client.Object{recDeployment(recNS, recName, nil), hpa}})
	ctx := context.Background()
	step := func(max int32, wantEvents, wantOOB int) {
		t.Helper()
		cur := &autoscalingv2.HorizontalPodAutoscaler{}
		if err := f.cache.Get(ctx, client.ObjectKeyFromObject(hpa), cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec.MaxReplicas = max
		if err := f.cache.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		if _, err := f.r.Reconcile(ctx, hpaReq("web-hpa")); err != nil {
			t.Fatal(err)
		}
		if n := len(f.events.recorded()); n != wantEvents {
			t.Errorf("max %d: %d Events, want %d", max, n, wantEvents)
		}
		if n := f.hpaOOBCount("rt-hpa-change", policy.ActionClamp); n != wantOOB {
			t.Errorf("max %d: gauge count %d, want %d", max, n, wantOOB)
		}
	}
	step(30, 1, 1)
	step(30, 1, 1)
	step(40, 2, 1)
	step(10, 2, 0)
	step(40, 3, 1) // out again: reported again
	if err := f.cache.Delete(ctx, hpa); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Reconcile(ctx, hpaReq("web-hpa")); err != nil {
		t.Fatal(err)
	}
	if f.tracked(hpaReq("web-hpa")) || f.hpaOOBCount("rt-hpa-change", policy.ActionClamp) != 0 {
		t.Errorf("deleted HPA still tracked")
	}
}
