// Package reports keeps, on the leader, one OpenReports Report (openreports.io/v1alpha1)
// per namespace, named replica-policy, that lists the bounded workloads and
// HorizontalPodAutoscalers outside their bounds: what Kyverno and Kubewarden write, so that
// Policy Reporter and Headlamp show replica-policy's violations beside theirs.
//
// Build is the pure part: the report of one namespace from the effects of its bounded
// objects. Reporter is the controller: it recomputes a namespace's report from the
// manager's cache on every change there, and writes it only when its content changed, at
// most once a second per namespace.
package reports

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

const (
	// Name is the name of the Report in each namespace.
	Name = "replica-policy"
	// Source is the report's and each result's source, which Policy Reporter shows and
	// filters by.
	Source = "replica-policy"
	// Policy is each result's policy: the one replica policy of the cluster.
	Policy = "replica-policy"
	// ManagedByLabel marks the reports this controller owns; its value is Source.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// MaxResults caps the results of one report. etcd refuses objects over 1.5 MiB
	// (--max-request-bytes); a result is about 530 bytes with 40-character names (its
	// message, the object reference and properties: TestBuildCapped, 1,000 results in 518
	// KiB) and about 850 with the longest (253 characters): TestCleanup writes such a
	// capped report through kube-apiserver into etcd, 829 KiB, 54% of the limit. The
	// summary still counts every object.
	MaxResults = 1000
)

// Item is one bounded object of a namespace and what its verdict comes to at
// policy.AtScaler.
type Item struct {
	// Object is the workload or HorizontalPodAutoscaler.
	Object corev1.ObjectReference
	// Effect is its verdict's effect at policy.AtScaler (RangeVerdict.Effect for an HPA).
	Effect policy.Effect
	// Replicas is what was judged: spec.replicas ("12"), or an HPA's range ("[1, 20]").
	Replicas string
	// Message is the result's message when the item is outside its bounds: the text of
	// the Event the scaler records for it (Effect.Messages[0]), or for a workload under a
	// clamp rule what becomes of it (clampMessage).
	Message string
}

// ScalerMode is what the scaler does with a workload outside the bounds of a clamp rule,
// which that workload's result says.
type ScalerMode uint8

const (
	// ScalerCorrects: the scaler sets it to the nearest bound (the default).
	ScalerCorrects ScalerMode = iota
	// ScalerDryRun: --scaler-dry-run, the scaler only says what it would set.
	ScalerDryRun
	// ScalerOff: --enable-scaler=false.
	ScalerOff
)

// workloadItem is the item of the workload obj judged v (its subject subj), its message
// saying what the scaler in mode scaler does with it.
func workloadItem(obj corev1.ObjectReference, v policy.Verdict, subj policy.Subject, scaler ScalerMode) Item {
	it := Item{Object: obj, Effect: v.Effect(policy.AtScaler, subj), Replicas: fmt.Sprint(v.Replicas)}
	switch {
	case it.Effect.Kind == policy.Patch:
		it.Message = clampMessage(v, scaler)
	case len(it.Effect.Messages) > 0:
		it.Message = it.Effect.Messages[0]
	}
	return it
}

// clampMessage is the message of a workload outside the bounds of a clamp rule. The
// scaler's own text at this stage (Verdict.ClampMessage) says the clamp happened, which
// is what a write's warning says; a stored workload in a report has not been clamped: it
// is outside its bounds until the scaler corrects it, or, without the scaler, until its
// next write, which the webhook clamps.
func clampMessage(v policy.Verdict, scaler ScalerMode) string {
	const next = "; the webhook clamps its next write into the bounds"
	out := fmt.Sprintf("spec.replicas %d is outside the bounds %s of replica policy rule %q (action clamp)", v.Replicas, v.Rule.Bounds, v.Rule.Name)
	switch scaler {
	case ScalerOff:
		return out + ": the scaler is off (--enable-scaler=false) and leaves it" + next
	case ScalerDryRun:
		return out + fmt.Sprintf(": the scaler runs in dry-run mode (--scaler-dry-run) and leaves it (it would set %d)", v.Want) + next
	}
	return out + fmt.Sprintf(" and not corrected yet: the scaler sets it to %d (if it stays here, the workload's Events say why: a failed or contested correction)", v.Want) + next
}

// Result is the OpenReports result of an item outside its bounds: fail under clamp and
// deny rules, warn under warn rules.
func (it Item) result() openreportsv1alpha1.Result {
	if it.Effect.Rule.Action == policy.ActionWarn {
		return "warn"
	}
	return "fail"
}

// Build is the Report of namespace ns from its items, nil when none is bounded (no item
// decided by a rule, in or out of its bounds). The summary counts every bounded item: pass
// for those inside their bounds, fail or warn for those outside, skip for those whose
// verdict is unknown (a Namespace or target not in the cache yet). Results list those
// outside, fail first, then by kind and name, at most MaxResults of them. A result also in
// prev (same object, rule and message) keeps its timestamp; a new one is stamped now, so
// that an unchanged namespace builds a report equal to prev.
func Build(ns string, items []Item, prev *openreportsv1alpha1.Report, now time.Time) *openreportsv1alpha1.Report {
	summary, out, bounded := summarize(items)
	if !bounded {
		return nil
	}
	stamps := map[string]metav1.Timestamp{}
	if prev != nil {
		for _, r := range prev.Results {
			if len(r.Subjects) == 1 {
				stamps[resultKey(r.Subjects[0], r.Rule, r.Description)] = r.Timestamp
			}
		}
	}
	rep := &openreportsv1alpha1.Report{
		TypeMeta: metav1.TypeMeta{APIVersion: openreportsv1alpha1.SchemeGroupVersion.String(), Kind: "Report"},
		ObjectMeta: metav1.ObjectMeta{
			Name: Name, Namespace: ns,
			Labels: map[string]string{ManagedByLabel: Source},
		},
		Source:  Source,
		Summary: summary,
		Results: make([]openreportsv1alpha1.ReportResult, 0, len(out)),
	}
	for _, it := range out {
		ts, ok := stamps[resultKey(it.Object, it.Effect.Rule.Name, it.Message)]
		if !ok {
			ts = metav1.Timestamp{Seconds: now.Unix()}
		}
		rep.Results = append(rep.Results, it.reportResult(ts))
	}
	return rep
}

// summarize counts the bounded items (decided by a rule) by result and returns those outside
// their bounds in the report's order (fail first, then by kind and name), at most MaxResults;
// bounded says whether any item was bounded at all.
func summarize(items []Item) (summary openreportsv1alpha1.ReportSummary, out []Item, bounded bool) {
	for _, it := range items {
		if !it.Effect.Decided() {
			continue
		}
		bounded = true
		switch it.Effect.Outcome {
		case policy.OutcomeInBounds:
			summary.Pass++
		case policy.OutcomeUnknown:
			summary.Skip++
		default:
			if it.result() == "warn" {
				summary.Warn++
			} else {
				summary.Fail++
			}
			out = append(out, it)
		}
	}
	slices.SortFunc(out, func(a, b Item) int {
		return cmp.Or(cmp.Compare(a.result(), b.result()), // fail before warn
			cmp.Compare(a.Object.Kind, b.Object.Kind), cmp.Compare(a.Object.Name, b.Object.Name),
			cmp.Compare(a.Object.APIVersion, b.Object.APIVersion))
	})
	if len(out) > MaxResults {
		out = out[:MaxResults]
	}
	return summary, out, bounded
}

// reportResult is the item's result in a report, stamped ts.
func (it Item) reportResult(ts metav1.Timestamp) openreportsv1alpha1.ReportResult {
	rule := it.Effect.Rule
	return openreportsv1alpha1.ReportResult{
		Source:      Source,
		Policy:      Policy,
		Rule:        rule.Name,
		Result:      it.result(),
		Timestamp:   ts,
		Subjects:    []corev1.ObjectReference{it.Object},
		Description: it.Message,
		Properties: map[string]string{
			"replicas": it.Replicas,
			"bounds":   rule.Bounds.String(),
			"action":   string(rule.Action),
		},
	}
}

func resultKey(o corev1.ObjectReference, rule, msg string) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s", o.APIVersion, o.Kind, o.Name, rule, msg)
}

// SameContent reports whether a and b hold the same source, labels, summary and results:
// whether writing b over a would change anything a reader sees.
func SameContent(a, b *openreportsv1alpha1.Report) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Source == b.Source && equality.Semantic.DeepEqual(a.Labels, b.Labels) &&
		a.Summary == b.Summary && equality.Semantic.DeepEqual(a.Results, b.Results)
}
