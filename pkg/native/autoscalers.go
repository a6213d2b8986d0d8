package native

import (
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// The autoscaler policies decide the range of HorizontalPodAutoscalers and KEDA
// ScaledObjects as the webhook's /mutate does (pkg/admission's autoscalers): by the rule of
// spec.scaleTargetRef (same namespace, the target's kind; a ScaledObject's target is a
// Deployment unless it says otherwise), each end of the range (and a ScaledObject's
// idleReplicaCount) moved to the nearest bound by a clamp rule (policy.Bounds.NearestRange:
// the idle size removed where it would not stay below the moved minimum), denied or warned
// about by deny and warn rules, an autoscaler with a controller of its own never patched but
// warned about, and an update that changes neither the range nor the target never decided.
// The range is in the object, so CEL reads all of it; what CEL cannot read is the target
// workload: its labels (a rule with a selector) and its owner (a target of a kind whose
// objects may be owned, a ReplicaSet), which the webhook reads from its cache. Those are
// left to the webhook.
//
// They are compiled only with Options.Autoscalers, and emitted apart from the workload
// policies (Result.AutoscalerObjects): the binary's --native-policies applies only Objects,
// and leaves HPAs and ScaledObjects to the webhook's entry of their own, which it never
// narrows (both would warn twice).

// Suffixes of the autoscaler policies' names: NAME-autoscalers-clamp, -deny, -warn.
const autoscalerSuffix = "autoscalers-"

// AutoscalerNames are the names of every object Compile can produce with opts for
// autoscalers, policies and bindings alike.
func AutoscalerNames(opts Options) []string {
	return prefixed(opts, autoscalerSuffix+clampSuffix, autoscalerSuffix+string(policy.ActionDeny), autoscalerSuffix+string(policy.ActionWarn))
}

// autoscalerTargets are the compiled kinds an autoscaler's target may be for the policies to
// decide it: those whose objects cannot be owned.
func (c *compiler) autoscalerTargets() []policy.WorkloadKind {
	return slices.DeleteFunc(slices.Clone(c.kinds), c.mayBeOwned)
}

// autoscalerActs reports whether rule r may decide an autoscaler the policies see: it has
// no selector, names a namespace that is not exempt (or none), and names a target kind they
// decide (or every kind).
func (c *compiler) autoscalerActs(r rule) bool {
	exempt := c.exemptNames()
	if r.Selector() != nil || len(r.names) > 0 && len(r.globs) == 0 && !slices.ContainsFunc(r.names, func(ns string) bool { return !slices.Contains(exempt, ns) }) {
		return false // the webhook decides it, or it names only exempt namespaces
	}
	if r.kinds == nil {
		return len(c.autoscalerTargets()) > 0
	}
	return slices.ContainsFunc(c.autoscalerTargets(), func(k policy.WorkloadKind) bool { return slices.Contains(r.kinds, k.Name()) })
}

// compileAutoscalers adds to res the autoscaler policies the rules' actions ask for: the
// clamp (a MutatingAdmissionPolicy), deny, and warn (warn rules, and clamp rules for an
// autoscaler with a controller of its own, which is warned about instead).
func (c *compiler) compileAutoscalers(res *Result) error {
	acts := map[policy.Action]bool{}
	for _, r := range c.rules {
		if c.autoscalerActs(r) {
			acts[r.Action] = true
		}
	}
	if len(acts) == 0 {
		res.Notes = append(res.Notes, "no policy for HorizontalPodAutoscalers and KEDA ScaledObjects is emitted: no rule can decide one without the target's labels or owner")
		return nil
	}
	vars, err := c.autoscalerVariables()
	if err != nil {
		return err
	}
	constraints := autoscalerConstraints()
	conds := c.autoscalerConditions()
	out := scope{out: c.exemptNames()}.matchResources()
	name := c.opts.Name + "-" + autoscalerSuffix
	if acts[policy.ActionClamp] {
		res.AutoscalerClamp, res.AutoscalerClampBinding = c.mutating(name+string(policy.ActionClamp), autoscalerPatch, constraints, conds, vars, out)
	}
	if acts[policy.ActionDeny] {
		res.AutoscalerDeny, res.AutoscalerDenyBinding = c.validatingIn(name+string(policy.ActionDeny), "!(variables.out && variables.action == 'deny')",
			"variables.message", constraints, conds, vars, out, admissionregistrationv1.Deny)
	}
	if acts[policy.ActionWarn] || acts[policy.ActionClamp] {
		res.AutoscalerWarn, res.AutoscalerWarnBinding = c.validatingIn(name+string(policy.ActionWarn),
			"!(variables.out && (variables.action == 'warn' || variables.action == 'clamp' && variables.controlled))",
			"variables.action == 'clamp' ? variables.controlledMessage : variables.message", constraints, conds, vars, out, admissionregistrationv1.Warn)
	}
	res.Notes = append(res.Notes, c.opts.Name+"-"+autoscalerSuffix+"* decide HorizontalPodAutoscalers and KEDA ScaledObjects (the binary's --native-policies does not apply them: the webhook keeps deciding autoscalers); a clamp of a range by "+
		c.opts.Name+"-"+autoscalerSuffix+"clamp returns no warning (an admission policy cannot return one from a mutation)")
	return nil
}

// exemptNames are the exempt namespaces named literally, which a binding leaves out.
func (c *compiler) exemptNames() []string {
	exempt, _ := c.snap.ExemptNamespaces()
	return slices.Sorted(slices.Values(exempt))
}

// autoscalerConditions are the autoscaler policies' matchConditions: only the exempt
// namespaces' globs, which a binding cannot say (HPA writes are rare: the HPA controller
// writes their status subresource, which the policies do not match).
func (c *compiler) autoscalerConditions() []admissionregistrationv1.MatchCondition {
	_, globs := c.snap.ExemptNamespaces()
	if len(globs) == 0 {
		return nil
	}
	return []admissionregistrationv1.MatchCondition{{Name: "not-exempt", Expression: "!" + paren(namespacesTerm("request.namespace", nil, globs))}}
}

// autoscalerConstraints are CREATE and UPDATE of HPAs (every version: their range and
// target are the same fields in autoscaling/v1 and v2) and of KEDA's ScaledObjects.
func autoscalerConstraints() *admissionregistrationv1.MatchResources {
	scope := admissionregistrationv1.NamespacedScope
	equivalent := admissionregistrationv1.Equivalent
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	rule := func(group, version, resource string) admissionregistrationv1.NamedRuleWithOperations {
		return admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
			Operations: ops,
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{version}, Resources: []string{resource}, Scope: &scope},
		}}
	}
	return &admissionregistrationv1.MatchResources{MatchPolicy: &equivalent, ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{
		rule("autoscaling", "*", "horizontalpodautoscalers"),
		rule("keda.sh", "v1alpha1", "scaledobjects"),
	}}
}

// autoscalerPatch is the clamp: each end of the range outside the bounds set to its nearest
// bound (add: an omitted end is set), and the idle size set, or removed where it would not
// stay below the moved minimum. Fixed text.
const autoscalerPatch = "variables.out && variables.action == 'clamp' && !variables.controlled ? " +
	"(variables.wantMin != variables.min ? [JSONPatch{op: 'add', path: variables.so ? '/spec/minReplicaCount' : '/spec/minReplicas', value: variables.wantMin}] : []) + " +
	"(variables.wantMax != variables.max ? [JSONPatch{op: 'add', path: variables.so ? '/spec/maxReplicaCount' : '/spec/maxReplicas', value: variables.wantMax}] : []) + " +
	"(variables.hasIdle && !variables.keepIdle ? [JSONPatch{op: 'remove', path: '/spec/idleReplicaCount'}] : " +
	"variables.hasIdle && variables.wantIdle != variables.idle ? [JSONPatch{op: 'add', path: '/spec/idleReplicaCount', value: variables.wantIdle}] : []) : []"

// rangeExprs are the CEL of an autoscaler o's range as the webhook reads it
// (autoscalerRange): an HPA's minReplicas defaults to 1, a ScaledObject's minReplicaCount to
// 0 and maxReplicaCount to 100; hasIdle is whether a ScaledObject sets idleReplicaCount.
func rangeExprs(o string) (lo, hi, hasIdle, idle string) {
	return fmt.Sprintf("(variables.so ? %[1]s.spec.?minReplicaCount.orValue(0) : %[1]s.spec.?minReplicas.orValue(1))", o),
		fmt.Sprintf("(variables.so ? %[1]s.spec.?maxReplicaCount.orValue(100) : %[1]s.spec.maxReplicas)", o),
		fmt.Sprintf("(variables.so && has(%s.spec.idleReplicaCount))", o),
		fmt.Sprintf("%s.spec.?idleReplicaCount.orValue(0)", o)
}

// targetExprs are the CEL of o's scaleTargetRef: apiVersion, kind, name, "" when omitted.
func targetExprs(o string) []string {
	var out []string
	for _, f := range []string{"apiVersion", "kind", "name"} {
		out = append(out, fmt.Sprintf("%s.spec.scaleTargetRef.?%s.orValue('')", o, f))
	}
	return out
}

// autoscalerVariables are the autoscaler policies' variables: what the autoscaler is and
// its target, which rule decides, its range, the range it wants and the messages.
func (c *compiler) autoscalerVariables() ([]admissionregistrationv1.Variable, error) {
	kinds := map[string]string{}
	for _, k := range c.autoscalerTargets() {
		kinds[k.Group+"/"+k.Kind] = k.Name()
	}
	ref := targetExprs("object")
	vars := []admissionregistrationv1.Variable{
		variable("so", "request.resource.group == "+quote("keda.sh")),
		variable("apiVersion", ref[0]),
		// The target's group and kind as the webhook resolves them (schema.ParseGroupVersion;
		// KEDA's default, an apps/v1 Deployment, for a ScaledObject without a kind); "" for
		// an apiVersion that is not one.
		variable("target", fmt.Sprintf("variables.so && %s == '' ? 'apps/Deployment' : "+
			"(variables.apiVersion.indexOf('/') != variables.apiVersion.lastIndexOf('/') ? '' : "+
			"(variables.apiVersion.indexOf('/') < 0 ? '' : variables.apiVersion.substring(0, variables.apiVersion.indexOf('/'))) + '/' + %s)", ref[1], ref[1])),
		variable("kind", mapLiteral(kinds)+"[?variables.target].orValue('')"),
	}
	if slices.ContainsFunc(c.rules, func(r rule) bool { return r.NamespaceSelector() != nil }) {
		vars = append(vars, variable("nsLabels", "namespaceObject.metadata.?labels.orValue({})"))
	}
	rules, err := c.autoscalerRuleVariables()
	if err != nil {
		return nil, err
	}
	vars = append(vars, rules...)
	vars = append(vars, c.autoscalerRangeVariables()...)
	return append(vars, c.autoscalerMessageVariables()...), nil
}

// autoscalerRuleVariables find the rule of the target: rule is the index of the first rule
// that matches the autoscaler's namespace and its target's kind (the default's when none
// does; -1 when the target is not of a kind the policies decide, or no rule decides), a
// rule with a selector counting as matching when its other matchers do (unknown: the
// webhook decides).
func (c *compiler) autoscalerRuleVariables() ([]admissionregistrationv1.Variable, error) {
	rules, deflt := c.chainRules()
	candidate := func(r rule) string {
		return and(r.namespacesTerm(), c.kindsTerm(r, "variables.kind"), selectorTerm("variables.nsLabels", r.NamespaceSelector()))
	}
	first, ok := conditionalChain(rules, candidate, deflt)
	var vars []admissionregistrationv1.Variable
	if !ok {
		fv, err := c.firstVariables(rules, candidate)
		if err != nil {
			return nil, err
		}
		vars = fv
		first = fmt.Sprintf("variables.first >= 0 ? variables.first : %d", deflt)
	}
	vars = append(vars, variable("rule", "variables.kind == '' ? -1 :\n"+paren(first)))
	var selectorRules []int64
	for _, r := range rules {
		if r.Selector() != nil {
			selectorRules = append(selectorRules, int64(r.index))
		}
	}
	unknown := "false"
	if len(selectorRules) > 0 {
		unknown = "variables.rule in " + intList(selectorRules)
	}
	return append(vars, variable("unknown", unknown)), nil
}

// autoscalerRangeVariables are the deciding rule's bounds and action, the autoscaler's range
// (and the old one's), the range the bounds want (policy.Bounds.NearestRange) and whether
// the request is outside the bounds: decided (a rule, known), changed (a create, or an
// update of the range or the target), valid (the API server's or KEDA's validation rejects
// an invalid range) and a field that moves.
func (c *compiler) autoscalerRangeVariables() []admissionregistrationv1.Variable {
	mins, maxs, zeros, actions := c.ruleLists()
	// policy.Bounds.Nearest of x.
	nearest := func(x string) string {
		return fmt.Sprintf("(%[1]s == 0 && variables.allowZero ? 0 : (variables.lo >= 0 && %[1]s < variables.lo ? variables.lo : "+
			"(variables.hi >= 0 && %[1]s > variables.hi ? variables.hi : %[1]s)))", x)
	}
	lo, hi, hasIdle, idle := rangeExprs("object")
	oldLo, oldHi, oldHasIdle, oldIdle := rangeExprs("oldObject")
	var sameTarget []string
	for i, e := range targetExprs("object") {
		sameTarget = append(sameTarget, e+" == "+targetExprs("oldObject")[i])
	}
	return []admissionregistrationv1.Variable{
		variable("lo", atRule(intList(mins), "-1")),
		variable("hi", atRule(intList(maxs), "-1")),
		variable("allowZero", atRule(boolList(zeros), "false")),
		variable("action", atRule(quoteList(actions), "''")),
		variable("min", lo),
		variable("max", hi),
		variable("hasIdle", hasIdle),
		variable("idle", idle),
		variable("wantMin", nearest("variables.min")),
		variable("wantMax", nearest("variables.max")),
		variable("wantIdle", nearest("variables.idle")),
		variable("keepIdle", "variables.hasIdle && variables.wantIdle < variables.wantMin"),
		variable("changed", "request.operation != 'UPDATE' || !("+strings.Join(append([]string{
			"variables.min == " + oldLo, "variables.max == " + oldHi, "variables.hasIdle == " + oldHasIdle,
			"(!variables.hasIdle || variables.idle == " + oldIdle + ")"}, sameTarget...), " && ")+")"),
		variable("valid", "variables.min <= variables.max && (!variables.hasIdle || variables.idle < variables.min)"),
		variable("idleMoves", "variables.hasIdle && (!variables.keepIdle || variables.wantIdle != variables.idle)"),
		variable("out", "variables.rule >= 0 && !variables.unknown && variables.changed && variables.valid && "+
			"(variables.wantMin != variables.min || variables.wantMax != variables.max || variables.idleMoves)"),
		variable("controlled", "object.metadata.?ownerReferences.orValue([]).exists(o, o.?controller.orValue(false))"),
	}
}

// autoscalerMessageVariables are the webhook's texts: policy.RangeVerdict.OutOfBoundsMessage
// (a denial, a warn rule's warning) and ControlledMessage (a clamp rule's warning for an
// autoscaler with a controller of its own).
func (c *compiler) autoscalerMessageVariables() []admissionregistrationv1.Variable {
	bounds, names := make([]string, len(c.rules)), make([]string, len(c.rules))
	for i, r := range c.rules {
		bounds[i], names[i] = r.Bounds.String(), r.Name
	}
	hpa, so := policy.HPAFields, policy.ScaledObjectFields
	field := func(f func(policy.RangeFields) string) string {
		return fmt.Sprintf("(variables.so ? %s : %s)", quote(f(so)), quote(f(hpa)))
	}
	controller := "object.metadata.ownerReferences.filter(o, o.?controller.orValue(false))[0]"
	return []admissionregistrationv1.Variable{
		variable("object", field(func(f policy.RangeFields) string { return f.Kind })+" + ' \"' + request.name + '\": '"),
		variable("bounds", atRule(quoteList(bounds), "''")),
		variable("ruleName", atRule(quoteList(names), "''")),
		// A message a field that moves, in the order min, max, idle.
		variable("message", "[0, 1, 2].filter(i, [variables.wantMin != variables.min, variables.wantMax != variables.max, variables.idleMoves][i]).map(i, "+
			"variables.object + (variables.so ? "+quoteList([]string{so.Min, so.Max, so.Idle})+" : "+quoteList([]string{hpa.Min, hpa.Max, hpa.Idle})+")[i] + "+
			"': Invalid value: ' + string([variables.min, variables.max, variables.idle][i]) + ': must be within ' + variables.bounds + "+
			"' (replica policy rule \"' + variables.ruleName + '\", action ' + variables.action + ')').join('; ')"),
		variable("controlledMessage", "variables.object + 'controlled by ' + "+controller+".kind + ' \"' + "+controller+".name + "+
			"'\", which would write its range back, so it is not clamped: its range [' + string(variables.min) + ', ' + string(variables.max) + ']' + "+
			"(variables.hasIdle ? ', idle ' + string(variables.idle) : '') + "+
			"' is outside the bounds ' + variables.bounds + ' of replica policy rule \"' + variables.ruleName + '\"; its scale writes are clamped'"),
	}
}
