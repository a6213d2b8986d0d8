package policy

import (
	"fmt"
	"strings"
)

// AutoscalerKind is the kind messages name for a HorizontalPodAutoscaler.
const AutoscalerKind = "HorizontalPodAutoscaler"

// ScaledObjectKind is the kind messages name for a KEDA ScaledObject (keda.sh/v1alpha1),
// which owns the HPA it creates: its range is decided as an HPA's.
const ScaledObjectKind = "ScaledObject"

// RangeFields names an autoscaler's kind and the fields of its range, for messages.
type RangeFields struct {
	Kind, Min, Max string
}

var (
	// HPAFields are a HorizontalPodAutoscaler's: spec.minReplicas (1 when omitted) and
	// spec.maxReplicas.
	HPAFields = RangeFields{Kind: AutoscalerKind, Min: "spec.minReplicas", Max: "spec.maxReplicas"}
	// ScaledObjectFields are a ScaledObject's: spec.minReplicaCount (0 when omitted, KEDA's
	// default) and spec.maxReplicaCount (100 when omitted).
	ScaledObjectFields = RangeFields{Kind: ScaledObjectKind, Min: "spec.minReplicaCount", Max: "spec.maxReplicaCount"}
)

// Range is a HorizontalPodAutoscaler's replica range: spec.minReplicas (1 when omitted, the
// API's default) and spec.maxReplicas.
type Range struct {
	Min, Max int32
}

// String renders the range as the bounds are rendered: "[2, 30]".
func (r Range) String() string { return fmt.Sprintf("[%d, %d]", r.Min, r.Max) }

// NearestRange moves each end of r to the nearest bound: the range an autoscaler may keep
// without ever asking for a size the bounds forbid. A minReplicas of 0 stays when AllowZero
// is set. The result never has Min above Max for a valid range (Nearest never decreases);
// an invalid one (Min above Max) is returned as it is, for the API server's validation to
// reject.
func (b Bounds) NearestRange(r Range) Range {
	if r.Min > r.Max {
		return r
	}
	return Range{Min: b.Nearest(r.Min), Max: b.Nearest(r.Max)}
}

// RangeVerdict is the policy's answer for an autoscaler's range. The autoscaler is decided
// by the rule that decides for its target workload.
type RangeVerdict struct {
	// Of names the autoscaler's kind and fields (HPAFields when zero).
	Of RangeFields
	// Outcome is as for a workload: exempt, owned, no rule, unknown, or whether the range
	// is inside the deciding rule's bounds.
	Outcome Outcome
	// Rule decides (possibly the default); nil when exempt, owned or no rule applies.
	Rule *CompiledRule
	// Range is the range asked about; Want is NearestRange of it (Range itself when no rule
	// decides or it is inside the bounds).
	Range, Want Range
	// Missing names what the rule needed and the caller did not have (OutcomeUnknown).
	Missing Missing
}

// DecideRange is the verdict for a HorizontalPodAutoscaler of target whose range is r: the
// rule that Decide finds for the target workload, and the range moved inside its bounds.
// The admission webhook, the scaler and the command-line tool all call it.
func (s *Snapshot) DecideRange(target Subject, r Range) RangeVerdict {
	return s.DecideRangeOf(HPAFields, target, r)
}

// DecideRangeOf is DecideRange for an autoscaler whose range has the fields of (a
// ScaledObject's: ScaledObjectFields).
func (s *Snapshot) DecideRangeOf(of RangeFields, target Subject, r Range) RangeVerdict {
	v := s.Decide(target, nil)
	rv := RangeVerdict{Of: of, Outcome: v.Outcome, Rule: v.Rule, Range: r, Want: r, Missing: v.Missing}
	if v.Outcome != OutcomeInBounds && v.Outcome != OutcomeOutOfBounds {
		return rv
	}
	rv.Want = v.Rule.Bounds.NearestRange(r)
	rv.Outcome = OutcomeInBounds
	if rv.Want != r {
		rv.Outcome = OutcomeOutOfBounds
	}
	return rv
}

// RangeField is one end of an autoscaler's range that lies outside the bounds.
type RangeField struct {
	// Path is the field: "spec.minReplicas" or "spec.maxReplicas".
	Path string
	// Value is the autoscaler's; Want the nearest value the bounds allow.
	Value, Want int32
}

// Fields lists the ends of the range that are outside the bounds, minReplicas first.
func (v RangeVerdict) Fields() []RangeField {
	var fs []RangeField
	if v.Want.Min != v.Range.Min {
		fs = append(fs, RangeField{Path: v.fields().Min, Value: v.Range.Min, Want: v.Want.Min})
	}
	if v.Want.Max != v.Range.Max {
		fs = append(fs, RangeField{Path: v.fields().Max, Value: v.Range.Max, Want: v.Want.Max})
	}
	return fs
}

// ClampMessages are the warnings that say a clamp happened to the autoscaler name, one per
// field, in the shape of a workload's (Verdict.ClampMessage), e.g.
// `HorizontalPodAutoscaler "web": spec.maxReplicas 30 clamped to 10 by replica policy rule "prod-web"`.
func (v RangeVerdict) ClampMessages(name string) []string {
	var ms []string
	for _, f := range v.Fields() {
		ms = append(ms, fmt.Sprintf("%s %q: %s %d clamped to %d by replica policy rule %q", v.fields().Kind, name, f.Path, f.Value, f.Want, v.Rule.Name))
	}
	return ms
}

// OutOfBoundsMessage is the text of a denial and of a warn rule's warning for the
// autoscaler name: for each field outside the bounds, the autoscaler, the field, its value,
// the bounds and the rule, in the shape of a workload's (Verdict.OutOfBoundsMessage), joined
// by "; ", e.g. `HorizontalPodAutoscaler "web": spec.maxReplicas: Invalid value: 30: must be
// within [2, 10] (replica policy rule "prod-web", action deny)`.
func (v RangeVerdict) OutOfBoundsMessage(name string) string {
	var ms []string
	for _, f := range v.Fields() {
		ms = append(ms, fmt.Sprintf("%s %q: %s: Invalid value: %d: must be within %s (replica policy rule %q, action %s)",
			v.fields().Kind, name, f.Path, f.Value, v.Rule.Bounds, v.Rule.Name, v.Rule.Action))
	}
	return strings.Join(ms, "; ")
}

// ControlledMessage is the warning for the autoscaler name whose range is outside the
// bounds under a clamp rule, but which has a controller of its own (controllerKind
// controllerName, such as KEDA's ScaledObject) that would write its range back: it is not
// clamped, only reported, e.g. `HorizontalPodAutoscaler "web": controlled by ScaledObject
// "web", which would write its range back, so it is not clamped: its range [1, 30] is
// outside the bounds [2, 10] of replica policy rule "prod-web"; its scale writes are clamped`.
func (v RangeVerdict) ControlledMessage(name, controllerKind, controllerName string) string {
	return fmt.Sprintf("%s %q: controlled by %s %q, which would write its range back, so it is not clamped: its range %s is outside the bounds %s of replica policy rule %q; its scale writes are clamped",
		v.fields().Kind, name, controllerKind, controllerName, v.Range, v.Rule.Bounds, v.Rule.Name)
}

// fields are v.Of, HPAFields when unset.
func (v RangeVerdict) fields() RangeFields {
	if v.Of.Kind == "" {
		return HPAFields
	}
	return v.Of
}

// Kind is the autoscaler's kind as messages name it.
func (v RangeVerdict) Kind() string { return v.fields().Kind }
