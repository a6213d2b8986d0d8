package policy

import "fmt"

// Stage is where a verdict is asked. The same verdict comes to different effects at each:
// the mutating webhook clamps what the scaler corrects later, the validating webhook
// rejects what the mutating one should have clamped, the command-line tool says what the
// mutating webhook would do.
type Stage uint8

const (
	// AtMutate is the mutating webhook, which decides a write in one call: clamp patches,
	// deny rejects, warn warns; a rule that needs labels it cannot read warns that it
	// could not be checked.
	AtMutate Stage = iota + 1
	// AtValidate is the validating webhook, which checks the final object: clamp and deny
	// reject what is still outside the bounds, warn is silent (AtMutate gave its warning).
	AtValidate
	// AtCheck is the command-line tool, which answers as AtMutate answers a CREATE, but
	// says nothing of labels it lacks: it reports them itself, for its input.
	AtCheck
	// AtScaler is a stored object: clamp corrects it, deny and warn are reported.
	AtScaler
)

// EffectKind is what happens to the subject.
type EffectKind uint8

const (
	// Allow lets the write through, or leaves the stored object, unchanged and silent.
	Allow EffectKind = iota
	// Patch sets the value the rule wants (Verdict.Want, RangeVerdict.Want): the mutating
	// webhook patches the write, the scaler corrects the stored object. Messages are the
	// clamp warnings.
	Patch
	// Deny rejects the write; Messages[0] is the reason.
	Deny
	// Warn allows the write with Messages as warnings.
	Warn
	// Report leaves a stored object as it is and reports Messages[0] (an Event).
	Report
)

// String is the effect's name in tests and logs.
func (k EffectKind) String() string {
	switch k {
	case Allow:
		return "allow"
	case Patch:
		return "patch"
	case Deny:
		return "deny"
	case Warn:
		return "warn"
	case Report:
		return "report"
	}
	return "invalid"
}

// Effect is what a verdict comes to at one stage: the one step from a verdict to what
// happens, for workloads and autoscalers, in the webhook, the command-line tool and the
// scaler alike.
type Effect struct {
	Kind EffectKind
	// Outcome and Rule are the verdict's: why the effect is what it is.
	Outcome Outcome
	Rule    *CompiledRule
	// Messages are the warnings of Patch and Warn, the reason of Deny, the report of
	// Report; none for Allow.
	Messages []string
}

// Decided reports whether a rule decided (in bounds, out of bounds or unknown), as
// opposed to an exempt namespace, an owned subject or no rule at all.
func (e Effect) Decided() bool {
	return e.Rule != nil && (e.Outcome == OutcomeUnknown || e.Outcome == OutcomeInBounds || e.Outcome == OutcomeOutOfBounds)
}

// effectOf starts the effect of a verdict of outcome by rule: Allow, with the outcome and
// the rule when one decided.
func effectOf(outcome Outcome, rule *CompiledRule) Effect {
	e := Effect{Kind: Allow, Outcome: outcome}
	if outcome == OutcomeUnknown || outcome == OutcomeInBounds || outcome == OutcomeOutOfBounds {
		e.Rule = rule
	}
	return e
}

// Effect is what the verdict for subj comes to at stage. A subject whose deciding rule
// needs labels the caller lacks is allowed; at AtMutate with a warning that says what the
// scaler will do (it reads the workload itself). Outside the bounds, by the rule's action:
//
//	        AtMutate, AtCheck   AtValidate        AtScaler
//	clamp   Patch               Deny (not clamped) Patch (correct)
//	deny    Deny                Deny              Report
//	warn    Warn                Allow             Report
func (v Verdict) Effect(at Stage, subj Subject) Effect {
	e := effectOf(v.Outcome, v.Rule)
	r := v.Rule
	switch {
	case v.Outcome == OutcomeUnknown && at == AtMutate:
		then := "correct spec.replicas"
		if r.Action != ActionClamp {
			then = "report spec.replicas"
		}
		e.Kind, e.Messages = Warn, []string{fmt.Sprintf("%s %q: replica policy rule %q could not be checked: its %s are not in the webhook's cache yet; the scaler will %s if it is outside %s",
			subj.Kind, subj.Name, r.Name, v.Missing, then, r.Bounds)}
	case v.Outcome != OutcomeOutOfBounds:
	case at == AtScaler && r.Action == ActionClamp:
		e.Kind, e.Messages = Patch, []string{v.ClampMessage(subj.Kind, subj.Name)}
	case at == AtScaler:
		e.Kind, e.Messages = Report, []string{fmt.Sprintf("spec.replicas %d is outside the bounds %s of replica policy rule %q (action %s); the scaler does not change it",
			v.Replicas, r.Bounds, r.Name, r.Action)}
	case r.Action == ActionClamp && at == AtValidate:
		e.Kind, e.Messages = Deny, []string{v.OutOfBoundsMessage(subj.Kind, subj.Name) +
			" (the clamp was not applied: the mutating webhook did not run, or a later mutation changed spec.replicas)"}
	case r.Action == ActionClamp:
		e.Kind, e.Messages = Patch, []string{v.ClampMessage(subj.Kind, subj.Name)}
	case r.Action == ActionWarn && at == AtValidate:
	case r.Action == ActionWarn:
		e.Kind, e.Messages = Warn, []string{v.OutOfBoundsMessage(subj.Kind, subj.Name)}
	default:
		e.Kind, e.Messages = Deny, []string{v.OutOfBoundsMessage(subj.Kind, subj.Name)}
	}
	return e
}

// Effect is what the verdict for the autoscaler name, whose target is target, comes to
// at stage. controller is the autoscaler's own controller (KEDA's ScaledObject), nil when
// it has none: such an autoscaler is never patched, since its controller would write the
// range back; under a clamp rule it is allowed with a warning. Outside the bounds:
//
//	        AtMutate, AtCheck            AtScaler
//	clamp   Patch (Warn if controlled)   Report
//	deny    Deny                         Report
//	warn    Warn                         Report
//
// The scaler never writes an autoscaler. Autoscalers are decided at AtMutate only.
func (v RangeVerdict) Effect(at Stage, name string, target Subject, controller *Owner) Effect {
	e := effectOf(v.Outcome, v.Rule)
	r := v.Rule
	switch {
	case v.Outcome == OutcomeUnknown && at == AtMutate:
		e.Kind, e.Messages = Warn, []string{fmt.Sprintf("%s %q: replica policy rule %q could not be checked: the %s of its target %s %q are not in the webhook's cache yet; the scaler will report it if its range is outside %s",
			v.Kind(), name, r.Name, v.Missing, target.Kind, target.Name, r.Bounds)}
	case v.Outcome != OutcomeOutOfBounds:
	case at == AtScaler && v.Kind() == ScaledObjectKind:
		e.Kind, e.Messages = Report, []string{v.OutOfBoundsMessage(name) +
			": KEDA writes it into the HPA it owns, which then asks for sizes the bounds forbid; set it inside the bounds (the scaler never changes a ScaledObject)"}
	case at == AtScaler:
		e.Kind, e.Messages = Report, []string{v.OutOfBoundsMessage(name) +
			": its scale writes are clamped to the bounds and it reports sizes it never reaches; set its range inside the bounds (the scaler never changes an HPA)"}
	case r.Action == ActionClamp && controller != nil:
		e.Kind, e.Messages = Warn, []string{v.ControlledMessage(name, controller.Kind, controller.Name)}
	case r.Action == ActionClamp:
		e.Kind, e.Messages = Patch, v.clampWarnings(name)
	case r.Action == ActionWarn:
		e.Kind, e.Messages = Warn, []string{v.OutOfBoundsMessage(name)}
	default:
		e.Kind, e.Messages = Deny, []string{v.OutOfBoundsMessage(name)}
	}
	return e
}

// ClampMessage is the warning that says a clamp happened to the workload kind/name (also
// for a write to its scale subresource), e.g.
// `StatefulSet "db": spec.replicas 40 clamped to 10 by replica policy rule "databases"`. It
// names the object because `kubectl apply -f dir/` and GitOps tools print warnings without
// saying which object they came from.
func (v Verdict) ClampMessage(kind, name string) string {
	return fmt.Sprintf("%s %q: spec.replicas %d clamped to %d by replica policy rule %q", kind, name, v.Replicas, v.Want, v.Rule.Name)
}

// OutOfBoundsMessage is the text of a denial and of a warn rule's warning for the workload
// kind/name (also for a write to its scale subresource): the object first, as in
// ClampMessage, then the field, the value, the bounds and the rule, e.g.
// `Deployment "db": spec.replicas: Invalid value: 12: must be within [3, 7] (replica policy rule "databases", action deny)`.
func (v Verdict) OutOfBoundsMessage(kind, name string) string {
	return fmt.Sprintf("%s %q: spec.replicas: Invalid value: %d: must be within %s (replica policy rule %q, action %s)",
		kind, name, v.Replicas, v.Rule.Bounds, v.Rule.Name, v.Rule.Action)
}
