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
	// Idle is the field of the size the autoscaler scales to while idle (a ScaledObject's
	// spec.idleReplicaCount); "" for an autoscaler without one.
	Idle string
}

var (
	// HPAFields are a HorizontalPodAutoscaler's: spec.minReplicas (1 when omitted) and
	// spec.maxReplicas.
	HPAFields = RangeFields{Kind: AutoscalerKind, Min: "spec.minReplicas", Max: "spec.maxReplicas"}
	// ScaledObjectFields are a ScaledObject's: spec.minReplicaCount (0 when omitted, KEDA's
	// default), spec.maxReplicaCount (100 when omitted) and spec.idleReplicaCount (where set).
	ScaledObjectFields = RangeFields{Kind: ScaledObjectKind, Min: "spec.minReplicaCount", Max: "spec.maxReplicaCount", Idle: "spec.idleReplicaCount"}
)

// Range is a HorizontalPodAutoscaler's replica range: spec.minReplicas (1 when omitted, the
// API's default) and spec.maxReplicas; or a ScaledObject's, whose idle size may be set too.
type Range struct {
	Min, Max int32
	// Idle, when HasIdle, is a ScaledObject's spec.idleReplicaCount: the size KEDA scales
	// the target to while no trigger is active. KEDA requires it below Min.
	Idle    int32
	HasIdle bool
}

// String renders the range as the bounds are rendered: "[2, 30]", with the idle size when
// set: "[2, 30], idle 0".
func (r Range) String() string {
	s := fmt.Sprintf("[%d, %d]", r.Min, r.Max)
	if r.HasIdle {
		s += fmt.Sprintf(", idle %d", r.Idle)
	}
	return s
}

// Valid reports whether the range is one its autoscaler accepts: Min not above Max, and an
// idle size below Min (KEDA refuses a ScaledObject whose idleReplicaCount is not below its
// minReplicaCount: its webhook rejects it, its operator creates no HPA for it).
func (r Range) Valid() bool {
	return r.Min <= r.Max && (!r.HasIdle || r.Idle < r.Min)
}

// NearestRange moves each end of r, and its idle size, to the nearest bound: the range an
// autoscaler may keep without ever asking for a size the bounds forbid. A 0 stays when
// AllowZero is set. The result never has Min above Max for a valid range (Nearest never
// decreases); an invalid one is returned as it is, for the API server's (or KEDA's)
// validation to reject.
//
// The idle size moves as the ends do, but it must stay below Min. Nearest never decreases,
// so the moved idle size is at most the moved Min; when the two meet (both were below the
// lower bound, or both above the upper one), the idle size is dropped (HasIdle false):
// without spec.idleReplicaCount KEDA idles the target at minReplicaCount, which is then the
// very size the moved idle size would have been, and the ScaledObject stays one KEDA accepts.
func (b Bounds) NearestRange(r Range) Range {
	if !r.Valid() {
		return r
	}
	w := Range{Min: b.Nearest(r.Min), Max: b.Nearest(r.Max)}
	if r.HasIdle {
		w.Idle, w.HasIdle = b.Nearest(r.Idle), true
		if w.Idle >= w.Min {
			w.Idle, w.HasIdle = 0, false
		}
	}
	return w
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

// RangeField is one end of an autoscaler's range (or its idle size) that lies outside the
// bounds.
type RangeField struct {
	// Path is the field: "spec.minReplicas", "spec.maxReplicas", "spec.idleReplicaCount".
	Path string
	// Value is the autoscaler's; Want the nearest value the bounds allow.
	Value, Want int32
	// Removed is set for an idle size whose nearest bound is not below the moved minimum:
	// a clamp removes the field, and the autoscaler idles at its minimum, Want (see
	// NearestRange).
	Removed bool
}

// Fields lists the ends of the range that are outside the bounds, minReplicas first, then
// the idle size.
func (v RangeVerdict) Fields() []RangeField {
	var fs []RangeField
	if v.Want.Min != v.Range.Min {
		fs = append(fs, RangeField{Path: v.fields().Min, Value: v.Range.Min, Want: v.Want.Min})
	}
	if v.Want.Max != v.Range.Max {
		fs = append(fs, RangeField{Path: v.fields().Max, Value: v.Range.Max, Want: v.Want.Max})
	}
	if v.Range.HasIdle && (!v.Want.HasIdle || v.Want.Idle != v.Range.Idle) {
		f := RangeField{Path: v.fields().Idle, Value: v.Range.Idle, Want: v.Want.Idle}
		if !v.Want.HasIdle {
			f.Want, f.Removed = v.Want.Min, true
		}
		fs = append(fs, f)
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

// IdleRemovedMessage is the warning of a clamp that removes the idle size of the autoscaler
// name (see NearestRange); it names the minimum as the clamp moves it, e.g.
// `ScaledObject "so": spec.idleReplicaCount 0 removed by replica policy rule "prod-web": its
// nearest bound 2 is not below spec.minReplicaCount 2, as KEDA requires, so the ScaledObject
// idles at spec.minReplicaCount`.
func (v RangeVerdict) IdleRemovedMessage(name string) string {
	f := v.fields()
	return fmt.Sprintf("%s %q: %s %d removed by replica policy rule %q: its nearest bound %d is not below %s %d, as KEDA requires, so the %s idles at %s",
		f.Kind, name, f.Idle, v.Range.Idle, v.Rule.Name, v.Rule.Bounds.Nearest(v.Range.Idle), f.Min, v.Rule.Bounds.Nearest(v.Range.Min), f.Kind, f.Min)
}

// clampWarnings are the warnings of a clamp of the autoscaler name: ClampMessages for the
// fields it sets, and IdleRemovedMessage when it removes the idle size.
func (v RangeVerdict) clampWarnings(name string) []string {
	if v.Want.HasIdle || !v.Range.HasIdle {
		return v.ClampMessages(name)
	}
	set := v
	set.Want.Idle, set.Want.HasIdle = v.Range.Idle, true
	return append(set.ClampMessages(name), v.IdleRemovedMessage(name))
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
