// Package native compiles a replica policy into the API server's own admission policies
// (admissionregistration.k8s.io/v1, Kubernetes 1.36 and later): a MutatingAdmissionPolicy
// that clamps, a ValidatingAdmissionPolicy that denies, one that warns, and their
// bindings. The API server then enforces, in process and without a webhook call, every
// request that CEL can decide with the webhook's own semantics: first match, globs,
// namespaceSelector (through namespaceObject), selector on workload objects, kinds, bounds,
// allowZero, exempt namespaces, owned workloads, updates that leave replicas unchanged, and
// the webhook's messages.
//
// A write to a workload's /scale subresource carries an autoscaling/v1 Scale, with neither
// the workload's labels nor its owner. The native policies leave to the webhook the /scale
// writes whose deciding rule has a selector, and those of kinds whose objects may be owned
// by a bounded workload (ReplicaSets, which Deployments own). Result says which requests
// still need the webhook, as lines for people and as a CEL expression for the webhook
// configuration's matchConditions.
//
// The package uses the types of k8s.io/api only: no client, no I/O.
package native

import (
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// key is how CEL names the resource of kind k: "apps/deployments".
func key(k policy.WorkloadKind) string { return k.Group + "/" + k.Resource }

// DefaultMayBeOwned are the kinds whose objects may have a bounded workload as their
// controller: a Deployment owns its ReplicaSets. Nothing in Kubernetes makes a Deployment or
// a StatefulSet the controlled object of another workload.
var DefaultMayBeOwned = []string{"ReplicaSet"}

// Labels of every object Compile returns.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "replica-policy"
)

// DefaultName is the prefix of the objects' names unless Options.Name says otherwise.
const DefaultName = "replica-policy"

// Suffixes of the objects' names (NAME-clamp, ...); a binding has its policy's name.
const (
	clampSuffix       = "clamp"
	clampNoticeSuffix = "clamped"
)

// Names are the names of every object Compile can produce with opts, policies and
// bindings alike, whichever the policy needs: what may have to be deleted when a policy no
// longer needs it.
func Names(opts Options) []string {
	return prefixed(opts, clampSuffix, string(policy.ActionDeny), string(policy.ActionWarn), clampNoticeSuffix)
}

// prefixed are the names NAME-suffix, NAME being opts.Name or DefaultName.
func prefixed(opts Options, suffixes ...string) []string {
	name := opts.Name
	if name == "" {
		name = DefaultName
	}
	names := make([]string, len(suffixes))
	for i, suffix := range suffixes {
		names[i] = name + "-" + suffix
	}
	return names
}

// Options change what Compile produces.
type Options struct {
	// Name prefixes the objects' names: NAME-clamp, NAME-deny, NAME-warn. Empty means
	// DefaultName.
	Name string
	// MayBeOwned are the kinds (as policy.KindName names them) whose objects may have a
	// bounded workload as controller: a write to their /scale subresource is left to the
	// webhook, which reads the owner from its cache. Nil means DefaultMayBeOwned; a custom
	// resource whose objects a bounded custom resource controls belongs here.
	MayBeOwned []string
	// Autoscalers also compiles the autoscaler policies (Result.AutoscalerObjects), which
	// decide the range of HorizontalPodAutoscalers and KEDA ScaledObjects. Off, those are
	// left to the webhook, and Result says nothing about them.
	Autoscalers bool
	// ClampWarnings also compiles NAME-clamped (Result.ClampNotice), which stands in for the
	// webhook's clamp warning. Off by default: it is a second policy that the API server
	// evaluates on every write the clamp sees.
	ClampWarnings bool
}

// Result is the compiled policy: the objects to apply (nil where the policy has no rule of
// that action) and what still needs the webhook.
type Result struct {
	Clamp        *admissionregistrationv1.MutatingAdmissionPolicy
	ClampBinding *admissionregistrationv1.MutatingAdmissionPolicyBinding
	Deny         *admissionregistrationv1.ValidatingAdmissionPolicy
	DenyBinding  *admissionregistrationv1.ValidatingAdmissionPolicyBinding
	Warn         *admissionregistrationv1.ValidatingAdmissionPolicy
	WarnBinding  *admissionregistrationv1.ValidatingAdmissionPolicyBinding
	// ClampNotice (with ClampNoticeBinding, bound with Warn and Audit) stands in for the
	// webhook's clamp warning, which a MutatingAdmissionPolicy cannot return: validating
	// policies see the object after the clamp, not the count asked for, so it warns whenever
	// a write leaves replicas at a bound of a clamp rule, clamped there or asked for exactly.
	ClampNotice        *admissionregistrationv1.ValidatingAdmissionPolicy
	ClampNoticeBinding *admissionregistrationv1.ValidatingAdmissionPolicyBinding

	// The autoscaler policies (AutoscalerObjects), which decide the range of
	// HorizontalPodAutoscalers and KEDA ScaledObjects: not among Objects, and compiled only
	// with Options.Autoscalers.
	AutoscalerClamp        *admissionregistrationv1.MutatingAdmissionPolicy
	AutoscalerClampBinding *admissionregistrationv1.MutatingAdmissionPolicyBinding
	AutoscalerDeny         *admissionregistrationv1.ValidatingAdmissionPolicy
	AutoscalerDenyBinding  *admissionregistrationv1.ValidatingAdmissionPolicyBinding
	AutoscalerWarn         *admissionregistrationv1.ValidatingAdmissionPolicy
	AutoscalerWarnBinding  *admissionregistrationv1.ValidatingAdmissionPolicyBinding

	// WebhookMatchCondition is a CEL expression for a matchCondition of the webhook
	// configuration that registers the workload kinds: true for every request the native
	// policies leave to the webhook. It reads only request (a webhook's matchConditions
	// cannot see namespace labels), so it is true for some requests the native policies
	// decide too, where the webhook then gives the same answer.
	WebhookMatchCondition string
	// WebhookScale is which /scale writes the native policies leave to the webhook, by kind,
	// and in which namespaces those a selector rule may decide can arise.
	WebhookScale WebhookScale
	// Webhook says, a line each, which requests still need the webhook and why.
	Webhook []string
	// Notes are other things an operator should know about the compiled form.
	Notes []string
	// Rules describe the policy's rules, one line each, by the index the policies'
	// variables use (variables.rule): for a reviewer of the compiled objects.
	Rules []string
	// Size is the largest compiled policy's size in bytes, as JSON.
	Size int
	// Cost is the largest runtime cost bound of one request's evaluation (see Limits).
	Cost int64
}

// Objects returns the objects to apply, policies before their bindings.
func (r *Result) Objects() []runtime.Object {
	return emitted(
		emittedPair{r.Clamp != nil, r.Clamp, r.ClampBinding},
		emittedPair{r.Deny != nil, r.Deny, r.DenyBinding},
		emittedPair{r.Warn != nil, r.Warn, r.WarnBinding},
		emittedPair{r.ClampNotice != nil, r.ClampNotice, r.ClampNoticeBinding},
	)
}

// AutoscalerObjects returns the autoscaler policies to apply, policies before their
// bindings: for a user who applies compile's output without the webhook's --native-policies.
func (r *Result) AutoscalerObjects() []runtime.Object {
	return emitted(
		emittedPair{r.AutoscalerClamp != nil, r.AutoscalerClamp, r.AutoscalerClampBinding},
		emittedPair{r.AutoscalerDeny != nil, r.AutoscalerDeny, r.AutoscalerDenyBinding},
		emittedPair{r.AutoscalerWarn != nil, r.AutoscalerWarn, r.AutoscalerWarnBinding},
	)
}

// emittedPair is a policy and its binding, and whether the compiler emitted them (a nil
// pointer in a runtime.Object is not a nil interface, hence the flag).
type emittedPair struct {
	ok              bool
	policy, binding runtime.Object
}

// emitted lists the emitted pairs' objects in order, each policy before its binding.
func emitted(pairs ...emittedPair) []runtime.Object {
	var objs []runtime.Object
	for _, p := range pairs {
		if p.ok {
			objs = append(objs, p.policy, p.binding)
		}
	}
	return objs
}

// rule is one rule of the policy (the default last) as the compiler reads it.
type rule struct {
	*policy.CompiledRule
	index        int
	names, globs []string
	kinds        []string // nil: every kind
}

// Compile turns a validated policy into native admission policies for the workload kinds
// kinds (policy.BuiltinWorkloadKinds, plus the custom resources the webhook bounds). A kind
// whose replicas are not at spec.replicas is left to the webhook, which the webhook
// configuration's matchCondition then sends every request of it. It fails with a
// *LimitError when the policy is larger than the API server holds or evaluates (Limits).
func Compile(snap *policy.Snapshot, kinds []policy.WorkloadKind, opts Options) (*Result, error) {
	return compilerFor(snap, kinds, opts).compile()
}

func compilerFor(snap *policy.Snapshot, kinds []policy.WorkloadKind, opts Options) *compiler {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.MayBeOwned == nil {
		opts.MayBeOwned = DefaultMayBeOwned
	}
	var atSpec []policy.WorkloadKind
	for _, k := range kinds {
		if k.SpecReplicas() {
			atSpec = append(atSpec, k)
		}
	}
	c := &compiler{snap: snap, kinds: atSpec, opts: opts}
	c.readRules()
	return c
}

type compiler struct {
	snap  *policy.Snapshot
	kinds []policy.WorkloadKind
	opts  Options
	rules []rule
	// hasAction reports which actions some rule (or the default) takes.
	hasAction map[policy.Action]bool
	// skipLimits lets a test build a policy past the limits, to see the API server refuse it.
	skipLimits bool
	// scopes caches the scope of each purpose's policy.
	scopes map[purpose]scope
}

func (c *compiler) readRules() {
	c.hasAction = map[policy.Action]bool{}
	for i, cr := range c.snap.Rules() {
		r := rule{CompiledRule: cr, index: i}
		if i < len(c.snap.Policy.Rules) {
			pr := &c.snap.Policy.Rules[i]
			r.names, r.globs = policy.SplitNamespaces(pr.Namespaces)
			r.kinds = pr.Kinds
		}
		// A rule none of whose kinds is compiled never matches here: it asks for no policy
		// (the webhook decides its kinds), so none is emitted that could never act.
		if c.kindKeysTerm(r) != "false" {
			c.hasAction[cr.Action] = true
		}
		c.rules = append(c.rules, r)
	}
}

// mayBeOwned reports whether objects of k may be controlled by a bounded workload.
func (c *compiler) mayBeOwned(k policy.WorkloadKind) bool {
	return slices.Contains(c.opts.MayBeOwned, k.Name())
}

func (c *compiler) compile() (*Result, error) {
	bySelector := c.scaleBySelector()
	res := &Result{WebhookMatchCondition: c.webhookCondition(bySelector), WebhookScale: c.webhookScale(bySelector), Webhook: c.webhookLines()}
	if c.opts.Autoscalers {
		res.Webhook = append(res.Webhook, c.autoscalerWebhookLines()...)
	}
	if len(c.rules) == 0 {
		res.Notes = append(res.Notes, "the policy has no rules and no default: it bounds nothing, so there is nothing to compile")
		return res, nil
	}
	if c.opts.Autoscalers {
		if err := c.compileAutoscalers(res); err != nil {
			return nil, err
		}
	}
	conds := c.actingConditions(res)
	res.Rules = c.ruleLines(conds)
	if len(conds) == 0 && len(res.AutoscalerObjects()) == 0 {
		res.Notes = append(res.Notes, "nothing is emitted: no rule can act on a write of a compiled kind")
		return res, nil
	}
	if len(conds) == 0 {
		res.Notes = append(res.Notes, "no policy for workload writes is emitted: no rule can act on a write of a compiled kind")
		return res, c.limitsUnlessSkipped(res)
	}
	vars, err := c.variables()
	if err != nil {
		return nil, err
	}
	// One set of match constraints, shared by every policy, as the API server reads them.
	constraints := c.matchConstraints()
	if cs, ok := conds[purposeClamp]; ok {
		res.Notes = append(res.Notes, c.clampNote())
		res.Clamp, res.ClampBinding = c.clampPolicy(constraints, cs, vars)
	}
	if cs, ok := conds[purposeNotice]; ok {
		res.ClampNotice, res.ClampNoticeBinding = c.validating(clampNoticeSuffix, purposeNotice, c.clampNoticeExpression(),
			"variables.clampNotice", constraints, cs, vars, admissionregistrationv1.Warn, admissionregistrationv1.Audit)
	}
	if cs, ok := conds[purposeDeny]; ok {
		res.Deny, res.DenyBinding = c.validating(string(policy.ActionDeny), purposeDeny, outOfBounds(policy.ActionDeny),
			"variables.message", constraints, cs, vars, admissionregistrationv1.Deny)
	}
	if cs, ok := conds[purposeWarn]; ok {
		res.Warn, res.WarnBinding = c.validating(string(policy.ActionWarn), purposeWarn, outOfBounds(policy.ActionWarn),
			"variables.message", constraints, cs, vars, admissionregistrationv1.Warn)
	}
	if err := c.limitsUnlessSkipped(res); err != nil {
		return nil, err
	}
	return res, nil
}

// clampNote says what a native clamp tells the writer: nothing, unless ClampWarnings adds
// the notice.
func (c *compiler) clampNote() string {
	const silent = "a clamp by the MutatingAdmissionPolicy returns no warning (an admission policy cannot return one from a mutation)"
	if !c.opts.ClampWarnings {
		return silent + ": with --clamp-warnings, " + c.opts.Name + "-clamped warns instead, at the cost of a second policy on every write"
	}
	return silent + ": instead, " + c.opts.Name + "-clamped warns (and records in the audit log) whenever a write leaves replicas at a bound of a clamp rule, naming the rule"
}

// limitsUnlessSkipped is checkLimits, unless a test skips it.
func (c *compiler) limitsUnlessSkipped(res *Result) error {
	if c.skipLimits {
		return nil
	}
	return c.checkLimits(res)
}

// actingConditions are the matchConditions of each policy the rules' actions ask for and
// that can act at all: one whose condition is false (its rules name only kinds that are not
// compiled, or namespaces that are exempt or that earlier rules decide) is not emitted, and
// a note says so. The clamp notice goes with the clamp.
func (c *compiler) actingConditions(res *Result) map[purpose][]admissionregistrationv1.MatchCondition {
	conds := map[purpose][]admissionregistrationv1.MatchCondition{}
	for _, p := range []purpose{purposeClamp, purposeNotice, purposeDeny, purposeWarn} {
		_, clamps := conds[purposeClamp]
		if !c.hasAction[p.action] || p == purposeNotice && (!clamps || !c.opts.ClampWarnings) {
			continue
		}
		cs := c.matchConditions(p)
		if cs[0].Expression != "false" {
			conds[p] = cs
		} else if p != purposeNotice {
			res.Notes = append(res.Notes, fmt.Sprintf("no %s-%s is emitted: no %s rule can act on a write the native policies see (its kinds are not compiled, or its namespaces are exempt or decided by earlier rules)",
				c.opts.Name, p.suffix, p.action))
		}
	}
	return conds
}

// ruleLines are Result.Rules: each rule's index, name, matchers, action and bounds, and
// which emitted policies enforce it (conds has those emitted), or why none does.
func (c *compiler) ruleLines(conds map[purpose][]admissionregistrationv1.MatchCondition) []string {
	lines := make([]string, len(c.rules))
	for i, r := range c.rules {
		var m []string
		if ns := append(slices.Clone(r.names), r.globs...); len(ns) > 0 {
			m = append(m, "namespaces "+strings.Join(ns, ", "))
		}
		if sel := r.NamespaceSelector(); sel != nil && !sel.Empty() {
			m = append(m, "namespaceSelector "+sel.String())
		}
		if sel := r.Selector(); sel != nil {
			m = append(m, "selector "+sel.String())
		}
		if r.kinds != nil {
			m = append(m, "kinds "+strings.Join(r.kinds, ", "))
		}
		if len(m) == 0 {
			m = append(m, "every workload")
		}
		zero := ""
		if r.Bounds.AllowZero {
			zero = ", allowZero"
		}
		lines[i] = fmt.Sprintf("%d %s: %s: %s %s%s; %s", r.index, r.Name, strings.Join(m, "; "), r.Action, r.Bounds, zero, c.enforcedBy(r, conds))
	}
	return lines
}

// enforcedBy says which emitted policies enforce rule r, or why none does.
func (c *compiler) enforcedBy(r rule, conds map[purpose][]admissionregistrationv1.MatchCondition) string {
	if c.kindKeysTerm(r) == "false" {
		return "not compiled: the webhook decides its kinds"
	}
	var names []string
	for _, p := range []purpose{purposeClamp, purposeNotice, purposeDeny, purposeWarn} {
		if _, ok := conds[p]; ok && p.action == r.Action {
			names = append(names, c.opts.Name+"-"+p.suffix)
		}
	}
	if len(names) == 0 {
		return "not compiled: it can never act on a write the native policies see"
	}
	s := "enforced by " + strings.Join(names, " and ")
	if r.Selector() != nil {
		s += " (the /scale writes it decides: the webhook)"
	}
	return s
}
