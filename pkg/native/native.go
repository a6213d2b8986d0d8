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
	"maps"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// Kind is a workload kind the native policies bound: its API group, version, kind and plural
// resource. Its replica count is spec.replicas and it has a /scale subresource.
type Kind struct {
	Group, Version, Kind, Resource string
}

// Name is the kind as a rule's kinds names it (policy.KindName).
func (k Kind) Name() string { return policy.KindName(k.Group, k.Kind) }

// key is how CEL names the kind's resource: "apps/deployments".
func (k Kind) key() string { return k.Group + "/" + k.Resource }

// BuiltinKinds are the apps/v1 workload kinds replica-policy always bounds.
var BuiltinKinds = []Kind{
	{Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments"},
	{Group: "apps", Version: "v1", Kind: "StatefulSet", Resource: "statefulsets"},
	{Group: "apps", Version: "v1", Kind: "ReplicaSet", Resource: "replicasets"},
}

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
	name := opts.Name
	if name == "" {
		name = DefaultName
	}
	var names []string
	for _, suffix := range []string{clampSuffix, string(policy.ActionDeny), string(policy.ActionWarn), clampNoticeSuffix} {
		names = append(names, name+"-"+suffix)
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

	// WebhookMatchCondition is a CEL expression for a matchCondition of the webhook
	// configuration that registers the workload kinds: true for every request the native
	// policies leave to the webhook. It reads only request (a webhook's matchConditions
	// cannot see namespace labels), so it is true for some requests the native policies
	// decide too, where the webhook then gives the same answer.
	WebhookMatchCondition string
	// Webhook says, a line each, which requests still need the webhook and why.
	Webhook []string
	// Notes are other things an operator should know about the compiled form.
	Notes []string
	// Size is the largest compiled policy's size in bytes, as JSON.
	Size int
	// Cost is the largest runtime cost bound of one request's evaluation (see Limits).
	Cost int64
}

// Objects returns the objects to apply, policies before their bindings.
func (r *Result) Objects() []runtime.Object {
	var objs []runtime.Object
	if r.Clamp != nil {
		objs = append(objs, r.Clamp, r.ClampBinding)
	}
	if r.Deny != nil {
		objs = append(objs, r.Deny, r.DenyBinding)
	}
	if r.Warn != nil {
		objs = append(objs, r.Warn, r.WarnBinding)
	}
	if r.ClampNotice != nil {
		objs = append(objs, r.ClampNotice, r.ClampNoticeBinding)
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
// kinds (BuiltinKinds, plus the custom resources the webhook bounds). It fails with a
// *LimitError when the policy is larger than the API server holds or evaluates (Limits).
func Compile(snap *policy.Snapshot, kinds []Kind, opts Options) (*Result, error) {
	return compilerFor(snap, kinds, opts).compile()
}

func compilerFor(snap *policy.Snapshot, kinds []Kind, opts Options) *compiler {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.MayBeOwned == nil {
		opts.MayBeOwned = DefaultMayBeOwned
	}
	c := &compiler{snap: snap, kinds: kinds, opts: opts}
	c.readRules()
	return c
}

type compiler struct {
	snap  *policy.Snapshot
	kinds []Kind
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
		c.hasAction[cr.Action] = true
		if i < len(c.snap.Policy.Rules) {
			pr := &c.snap.Policy.Rules[i]
			r.names, r.globs = policy.SplitNamespaces(pr.Namespaces)
			r.kinds = pr.Kinds
		}
		c.rules = append(c.rules, r)
	}
}

// mayBeOwned reports whether objects of k may be controlled by a bounded workload.
func (c *compiler) mayBeOwned(k Kind) bool { return slices.Contains(c.opts.MayBeOwned, k.Name()) }

func (c *compiler) compile() (*Result, error) {
	res := &Result{}
	res.WebhookMatchCondition = c.webhookCondition()
	res.Webhook = c.webhookLines()
	res.Notes = append(res.Notes, "HorizontalPodAutoscalers are not compiled: the webhook bounds them")
	if len(c.rules) == 0 {
		res.Notes = append(res.Notes, "the policy has no rules and no default: it bounds nothing, so there is nothing to compile")
		return res, nil
	}
	if c.hasAction[policy.ActionClamp] {
		res.Notes = append(res.Notes, "a clamp by the MutatingAdmissionPolicy returns no warning (an admission policy cannot return one from a mutation): instead, "+c.opts.Name+"-clamped warns (and records in the audit log) whenever a write leaves replicas at a bound of a clamp rule, naming the rule")
	}
	vars, err := c.variables()
	if err != nil {
		return nil, err
	}
	labels := map[string]string{ManagedByLabel: ManagedBy}
	constraints := c.matchConstraints()
	ignore := admissionregistrationv1.Ignore
	if c.hasAction[policy.ActionClamp] {
		name := c.opts.Name + "-" + clampSuffix
		res.Clamp = &admissionregistrationv1.MutatingAdmissionPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "MutatingAdmissionPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
				MatchConstraints: constraints,
				MatchConditions:  c.matchConditions(purposeClamp),
				Variables:        withoutMessage(vars),
				Mutations: []admissionregistrationv1.Mutation{{
					PatchType: admissionregistrationv1.PatchTypeJSONPatch,
					JSONPatch: &admissionregistrationv1.JSONPatch{Expression: "variables.out && variables.action == 'clamp' ? " +
						"[JSONPatch{op: 'add', path: '/spec/replicas', value: variables.want}] : []"},
				}},
				FailurePolicy:      &ignore,
				ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
			},
		}
		res.ClampBinding = &admissionregistrationv1.MutatingAdmissionPolicyBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "MutatingAdmissionPolicyBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: name, MatchResources: c.scope(purposeClamp).matchResources()},
		}
	}
	validating := func(suffix string, pur purpose, expr, message string, va ...admissionregistrationv1.ValidationAction) (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
		name := c.opts.Name + "-" + suffix
		reason := metav1.StatusReasonInvalid
		p := &admissionregistrationv1.ValidatingAdmissionPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				MatchConstraints: constraints,
				MatchConditions:  c.matchConditions(pur),
				Variables:        vars,
				Validations: []admissionregistrationv1.Validation{{
					Expression:        expr,
					MessageExpression: message,
					Reason:            &reason,
				}},
				FailurePolicy: &ignore,
			},
		}
		b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicyBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        name,
				ValidationActions: va,
				MatchResources:    c.scope(pur).matchResources(),
			},
		}
		return p, b
	}
	outOfBounds := func(action policy.Action) string {
		return fmt.Sprintf("!(variables.out && variables.action == %s)", quote(string(action)))
	}
	if c.hasAction[policy.ActionDeny] {
		res.Deny, res.DenyBinding = validating(string(policy.ActionDeny), purposeDeny, outOfBounds(policy.ActionDeny), "variables.message", admissionregistrationv1.Deny)
	}
	if c.hasAction[policy.ActionWarn] {
		res.Warn, res.WarnBinding = validating(string(policy.ActionWarn), purposeWarn, outOfBounds(policy.ActionWarn), "variables.message", admissionregistrationv1.Warn)
	}
	if c.hasAction[policy.ActionClamp] {
		res.ClampNotice, res.ClampNoticeBinding = validating(clampNoticeSuffix, purposeNotice,
			"!(variables.rule >= 0 && !variables.unknown && variables.action == 'clamp' && variables.replicas >= 0 && "+
				"((variables.max >= 0 && variables.replicas == variables.max) || (variables.min >= 0 && variables.replicas == variables.min)))",
			"variables.clampNotice", admissionregistrationv1.Warn, admissionregistrationv1.Audit)
	}
	if err := c.checkLimits(res); err != nil && !c.skipLimits {
		return nil, err
	}
	return res, nil
}

// matchConstraints are the requests the policies look at: CREATE and UPDATE of every kind,
// UPDATE of the /scale subresource of every kind whose objects cannot be owned.
func (c *compiler) matchConstraints() *admissionregistrationv1.MatchResources {
	type gv struct{ group, version string }
	objects, scales := map[gv][]string{}, map[gv][]string{}
	var order []gv
	for _, k := range c.kinds {
		g := gv{k.Group, k.Version}
		if _, ok := objects[g]; !ok {
			order = append(order, g)
		}
		objects[g] = append(objects[g], k.Resource)
		if !c.mayBeOwned(k) {
			scales[g] = append(scales[g], k.Resource+"/scale")
		}
	}
	scope := admissionregistrationv1.NamespacedScope
	equivalent := admissionregistrationv1.Equivalent
	m := &admissionregistrationv1.MatchResources{MatchPolicy: &equivalent}
	rule := func(g gv, ops []admissionregistrationv1.OperationType, resources []string) admissionregistrationv1.NamedRuleWithOperations {
		return admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
			Operations: ops,
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{g.group}, APIVersions: []string{g.version}, Resources: resources, Scope: &scope},
		}}
	}
	for _, g := range order {
		m.ResourceRules = append(m.ResourceRules, rule(g, []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}, objects[g]))
		if len(scales[g]) > 0 {
			m.ResourceRules = append(m.ResourceRules, rule(g, []admissionregistrationv1.OperationType{admissionregistrationv1.Update}, scales[g]))
		}
	}
	return m
}

// replicasOf is the replica count of the object expression o: a Scale omits replicas when
// they are 0; a workload's absent replicas are 1, the API's default (policy.Replicas).
func replicasOf(o string) string {
	return fmt.Sprintf("(has(%[1]s.spec.replicas) ? %[1]s.spec.replicas : (%[2]s ? 0 : 1))", o, isScale)
}

// isScale is true for a write to the /scale subresource. The request of a write to the
// object itself has no subResource at all, so it is tested for first.
const isScale = "(has(request.subResource) && request.subResource == 'scale')"

// A policy's matchCondition decides whether the policy acts at all: the API server
// evaluates a policy's variables and its mutation or validation only when it holds, and a
// MutatingAdmissionPolicy that runs re-encodes the object even for an empty patch. Most
// writes are left as they are, so the condition carries what a write costs: it is one
// expression (the API server evaluates every matchCondition of a policy, whatever the
// others gave, and && stops at the first false), cheapest terms first:
//
//  1. request-only terms, for what the binding's namespaceSelector cannot say (scope): not in
//     an exempt namespace matched by a glob; in a namespace that a rule which may give the
//     policy something to do names, when one of them names it by a glob;
//  2. replicas changed by an update;
//  3. the first-match decision for this policy's purpose (due), as a chain of conditionals
//     that reads the rules only up to the first that matches;
//  4. not owned by a bounded workload (which the policy bounds instead).
//
// It may hold for a request the policy then leaves alone (the variables decide exactly),
// but never fails to hold for one the policy would act on: TestCompileAgreesWithWebhook
// checks the two against the webhook.

// purpose is what a compiled policy does for the rule that decides a request.
type purpose struct {
	// name of the matchCondition.
	name string
	// action is the rules' action the policy acts for.
	action policy.Action
	// atBound: the clamp notice, which acts when replicas are at a bound of a clamp rule;
	// otherwise the policy acts when they are outside the bounds.
	atBound bool
}

var (
	purposeClamp  = purpose{name: "outside-clamp-bounds", action: policy.ActionClamp}
	purposeDeny   = purpose{name: "outside-deny-bounds", action: policy.ActionDeny}
	purposeWarn   = purpose{name: "outside-warn-bounds", action: policy.ActionWarn}
	purposeNotice = purpose{name: "at-clamp-bound", action: policy.ActionClamp, atBound: true}
)

// replicaVar is the name the conditions bind the requested replicas to: a matchCondition
// cannot read variables, and [x].exists(r, ...) evaluates x once.
const replicaVar = "r"

func (c *compiler) matchConditions(p purpose) []admissionregistrationv1.MatchCondition {
	var terms []string
	if _, globs := c.snap.ExemptNamespaces(); len(globs) > 0 { // the binding leaves out the names
		terms = append(terms, "!"+paren(namespacesTerm("request.namespace", nil, globs)))
	}
	terms = append(terms, c.scope(p).cel)
	inner := and(
		fmt.Sprintf("(request.operation != 'UPDATE' || %s != %s)", replicaVar, replicasOf("oldObject")),
		c.due(p),
	)
	terms = append(terms, fmt.Sprintf("[%s].exists(%s, %s)", replicasOf("object"), replicaVar, inner))
	// The owner's group is the part of its apiVersion before the "/".
	byGroup := map[string][]string{}
	for _, k := range c.kinds {
		byGroup[k.Group] = append(byGroup[k.Group], k.Kind)
	}
	var owners []string
	for _, g := range slices.Sorted(maps.Keys(byGroup)) {
		owners = append(owners, and(fmt.Sprintf("o.apiVersion.startsWith(%s)", quote(g+"/")), kindIn("o.kind", byGroup[g])))
	}
	terms = append(terms, "(!has(object.metadata.ownerReferences) || !object.metadata.ownerReferences.exists(o, has(o.controller) && o.controller && "+
		or(owners...)+"))")
	return []admissionregistrationv1.MatchCondition{{Name: p.name, Expression: and(terms...)}}
}

// maxChain is the most rules a matchCondition's chain reads: each is one level of nesting
// of the expression, which cel-go's parser limits. Past them the chain ends in true, and
// the policy's variables decide.
const maxChain = 48

// due is true when the rule that decides the request (the first that matches) gives the
// policy p something to do, for replicas bound to replicaVar: a chain of conditionals,
// `rule0 ? leaf0 : rule1 ? leaf1 : ... : default's leaf`, so that the API server reads the
// rules only up to the first that matches. A matchCondition cannot read the namespace's
// labels (namespaceObject is null there), so a rule with a namespaceSelector is unsure: it
// counts as (rule's other matchers && leaf) || the rules after it, which holds whenever the
// exact answer does; one whose leaf cannot hold is left out. Rules after the last one
// whose leaf can hold are left out too.
func (c *compiler) due(p purpose) string {
	return c.firstMatch(func(r rule) string { return c.candidate(r, true) }, func(r rule) string { return c.leaf(r, p) })
}

// firstMatch is the chain of conditionals of due for any candidate and leaf of a rule: true
// when the first rule whose candidate holds has a leaf that holds, a rule with a
// namespaceSelector counting as unsure.
func (c *compiler) firstMatch(candidate, leafOf func(rule) string) string {
	type link struct {
		cand, leaf string
		unsure     bool
	}
	var links []link
	tail := "false"
	for _, r := range c.rules {
		if len(links) == maxChain {
			tail = "true"
			break
		}
		cand, leaf := candidate(r), leafOf(r)
		switch {
		case cand == "false":
			continue // none of its kinds is compiled: it never matches
		case r.NamespaceSelector() != nil && !r.NamespaceSelector().Empty():
			if leaf != "false" {
				links = append(links, link{cand, leaf, true})
			}
			continue
		case cand == "" || cand == "true" || c.isDefault(r):
			tail = leaf // it matches whatever the request: no rule after it decides
		default:
			links = append(links, link{cand, leaf, false})
			continue
		}
		break
	}
	// Built from the end; rest is the chain after a rule, unwrapped when it is a chain of
	// conditionals itself (they nest to the right without parentheses).
	expr, rest := tail, paren(tail)
	for i := len(links) - 1; i >= 0; i-- {
		l := links[i]
		cand := paren(l.cand)
		switch {
		case l.unsure:
			this := paren(l.leaf)
			if l.cand != "" && l.cand != "true" {
				this = "(" + cand + " && " + this + ")"
			}
			if expr != "false" {
				this = or(this, paren(expr))
			}
			expr = this
		case l.leaf == "false" && expr == "false":
			continue
		case l.leaf == "true" && expr == "false":
			expr = cand
		case l.leaf == "true":
			expr = or(cand, paren(expr))
		case expr == "false":
			expr = "(" + cand + " && " + paren(l.leaf) + ")"
		default:
			rest = cand + " ? " + paren(l.leaf) + " : " + rest
			expr = "(" + rest + ")"
			continue
		}
		rest = paren(expr)
	}
	return paren(expr)
}

// isDefault reports whether r is the policy's default, which matches every request.
func (c *compiler) isDefault(r rule) bool {
	return r.Name == policy.DefaultRuleName && r.index == len(c.snap.Policy.Rules)
}

// leaf is true when rule r, deciding the request, gives the policy p something to do: an
// action of p's, and replicas (replicaVar) outside its bounds or, for the notice, at one.
// Under a selector rule a Scale is the webhook's to decide.
func (c *compiler) leaf(r rule, p purpose) string {
	if r.Action != p.action {
		return "false"
	}
	b := r.Bounds
	var terms []string
	if p.atBound {
		if b.Max != nil {
			terms = append(terms, fmt.Sprintf("%s == %d", replicaVar, *b.Max))
		}
		if b.Min != nil && (b.Max == nil || *b.Min != *b.Max) {
			terms = append(terms, fmt.Sprintf("%s == %d", replicaVar, *b.Min))
		}
	} else {
		// policy.Bounds.Nearest: 0 with allowZero is inside; a negative count is left to
		// the API server's validation, as the webhook leaves it.
		low := int32(0)
		if b.AllowZero {
			low = 1
		}
		if b.Min != nil && *b.Min > low {
			terms = append(terms, fmt.Sprintf("(%s >= %d && %s < %d)", replicaVar, low, replicaVar, *b.Min))
		}
		if b.Max != nil {
			terms = append(terms, fmt.Sprintf("%s > %d", replicaVar, *b.Max))
		}
	}
	t := or(terms...)
	if t == "" {
		return "false"
	}
	if r.Selector() != nil {
		t = and("!"+isScale, paren(t))
	}
	return t
}

func kindIn(expr string, kinds []string) string {
	if len(kinds) == 1 {
		return expr + " == " + quote(kinds[0])
	}
	return expr + " in " + quoteList(kinds)
}

func paren(s string) string {
	if strings.HasPrefix(s, "(") && strings.HasSuffix(s, ")") {
		return s
	}
	return "(" + s + ")"
}

// kindsTerm is true when the rule's kinds include the request's kind; "false" when none of
// them is a compiled kind, "" (no term) when the rule names every compiled kind or none.
func (c *compiler) kindsTerm(r rule, kindVar string) string {
	if r.kinds == nil {
		return ""
	}
	var in []string
	for _, k := range c.kinds {
		if slices.Contains(r.kinds, k.Name()) {
			in = append(in, k.Name())
		}
	}
	switch len(in) {
	case 0:
		return "false"
	case len(c.kinds):
		return ""
	}
	return kindIn(kindVar, in)
}

// candidate is the rule's CEL: true when it matches, and for a Scale when every matcher but
// its selector matches (the deciding rule is then unknown: variables.unknown). inline
// writes the request's facts out for a matchCondition, which cannot read the variables,
// and leaves out the rule's namespaceSelector, which it cannot read either (namespaceObject
// is null in a matchCondition; see due).
func (c *compiler) candidate(r rule, inline bool) string {
	scale, labels := "variables.scale", "variables.labels"
	kinds := c.kindsTerm(r, "variables.kind")
	nsSelector := selectorTerm("variables.nsLabels", r.NamespaceSelector())
	if inline {
		scale, labels = isScale, objectLabels
		kinds = c.kindKeysTerm(r)
		nsSelector = ""
	}
	terms := []string{r.namespacesTerm(), kinds, nsSelector}
	if r.Selector() != nil {
		terms = append(terms, or(scale, selectorTerm(labels, r.Selector())))
	}
	return and(terms...)
}

// namespacesTerm is true in the namespaces the rule names; "" (no term) when it names none.
func (r rule) namespacesTerm() string {
	if len(r.names)+len(r.globs) == 0 {
		return ""
	}
	return paren(namespacesTerm("request.namespace", r.names, r.globs))
}

// objectLabels are the object's labels, an empty map when it has none.
const objectLabels = "(has(object.metadata.labels) ? object.metadata.labels : {})"

// maxChunk is the most characters of rule candidates one variable holds, unless a single
// rule is longer: cel-go takes time quadratic in an expression's length to parse and check
// it, and the API server does so within the create request's timeout (see Limits).
const maxChunk = 5_000

// maxExpression is the longest expression Compile writes: cel-go's parser refuses more than
// 100,000 code points (its default, which the API server keeps), and the list brackets must
// fit too.
const maxExpression = 99_000

// maxConcat is the most lists one expression concatenates.
const maxConcat = 32

func (c *compiler) variables() ([]admissionregistrationv1.Variable, error) {
	v := func(name, expr string) admissionregistrationv1.Variable {
		return admissionregistrationv1.Variable{Name: name, Expression: expr}
	}
	kinds, kindNames := map[string]string{}, map[string]string{}
	for _, k := range c.kinds {
		kinds[k.key()], kindNames[k.key()] = k.Name(), k.Kind
	}
	vars := []admissionregistrationv1.Variable{
		v("scale", isScale),
		v("replicas", replicasOf("object")),
		v("kind", mapLiteral(kinds)+"[request.resource.group + '/' + request.resource.resource]"),
	}
	kindName := "variables.kind"
	if !maps.Equal(kinds, kindNames) {
		vars = append(vars, v("kindName", mapLiteral(kindNames)+"[request.resource.group + '/' + request.resource.resource]"))
		kindName = "variables.kindName"
	}
	vars = append(vars,
		v("labels", "!variables.scale && has(object.metadata.labels) ? object.metadata.labels : {}"),
		v("nsLabels", "has(namespaceObject.metadata.labels) ? namespaceObject.metadata.labels : {}"),
	)
	// The first rule that matches decides: the candidates are a list, one bool a rule, in
	// chunks that each stay an expression the parser accepts.
	var rules []rule
	deflt := -1
	for _, r := range c.rules {
		if c.isDefault(r) {
			deflt = r.index
			continue
		}
		rules = append(rules, r)
	}
	ruleExpr := fmt.Sprint(deflt)
	if len(rules) > 0 {
		var chunks []string
		var cur []string
		size := 0
		flush := func() {
			if len(cur) > 0 {
				chunks = append(chunks, "["+strings.Join(cur, ", ")+"]")
				cur, size = nil, 0
			}
		}
		for _, r := range rules {
			cand := c.candidate(r, false)
			if len(cand) > maxExpression {
				return nil, &LimitError{Reason: fmt.Sprintf("rule %q compiles to %d characters of CEL, more than the 100,000 an expression may hold", r.Name, len(cand))}
			}
			if size+len(cand)+2 > maxChunk {
				flush()
			}
			cur = append(cur, cand)
			size += len(cand) + 2
		}
		flush()
		var refs []string
		for i, ch := range chunks {
			name := fmt.Sprintf("rules%d", i)
			vars = append(vars, v(name, ch))
			refs = append(refs, "variables."+name)
		}
		// Concatenations of at most maxConcat lists each, and of those: the parser nests a
		// chain of + one level deeper a term, and stops at 250 levels.
		for level := 0; len(refs) > maxConcat; level++ {
			var next []string
			for i := 0; i < len(refs); i += maxConcat {
				name := fmt.Sprintf("rules%s%d", strings.Repeat("x", level+1), i/maxConcat)
				vars = append(vars, v(name, strings.Join(refs[i:min(i+maxConcat, len(refs))], " + ")))
				next = append(next, "variables."+name)
			}
			refs = next
		}
		all := refs[0]
		if len(refs) > 1 {
			all = "(" + strings.Join(refs, " + ") + ")"
		}
		vars = append(vars, v("first", all+".indexOf(true)"))
		ruleExpr = "variables.first"
		if deflt >= 0 {
			ruleExpr = fmt.Sprintf("variables.first >= 0 ? variables.first : %d", deflt)
		}
	}
	vars = append(vars, v("rule", ruleExpr))
	var selectorRules []int64
	for _, r := range rules {
		if r.Selector() != nil {
			selectorRules = append(selectorRules, int64(r.index))
		}
	}
	if len(selectorRules) > 0 {
		vars = append(vars, v("unknown", "variables.scale && variables.rule in "+intList(selectorRules)))
	} else {
		vars = append(vars, v("unknown", "false"))
	}
	// The deciding rule's bounds, action and text, from lists indexed by rule.
	mins, maxs := make([]int64, len(c.rules)), make([]int64, len(c.rules))
	zeros := make([]bool, len(c.rules))
	actions, bounds, names := make([]string, len(c.rules)), make([]string, len(c.rules)), make([]string, len(c.rules))
	for i, r := range c.rules {
		mins[i], maxs[i] = -1, -1
		if r.Bounds.Min != nil {
			mins[i] = int64(*r.Bounds.Min)
		}
		if r.Bounds.Max != nil {
			maxs[i] = int64(*r.Bounds.Max)
		}
		zeros[i] = r.Bounds.AllowZero
		actions[i], bounds[i], names[i] = string(r.Action), r.Bounds.String(), r.Name
	}
	at := func(list, none string) string {
		return fmt.Sprintf("(variables.rule >= 0 ? %s[variables.rule] : %s)", list, none)
	}
	vars = append(vars,
		v("min", at(intList(mins), "-1")),
		v("max", at(intList(maxs), "-1")),
		v("allowZero", at(boolList(zeros), "false")),
		v("action", at(quoteList(actions), "''")),
		// policy.Bounds.Nearest.
		v("want", "variables.replicas == 0 && variables.allowZero ? 0 : "+
			"(variables.min >= 0 && variables.replicas < variables.min ? variables.min : "+
			"(variables.max >= 0 && variables.replicas > variables.max ? variables.max : variables.replicas))"),
		// A negative count is left to the API server's validation, as the webhook leaves it.
		v("out", "variables.rule >= 0 && !variables.unknown && variables.replicas >= 0 && variables.want != variables.replicas"),
		v("bounds", at(quoteList(bounds), "''")),
		v("ruleName", at(quoteList(names), "''")),
		// policy.Verdict.OutOfBoundsMessage.
		v("message", "'spec.replicas: Invalid value: ' + string(variables.replicas) + ': must be within ' + variables.bounds + "+
			"' for ' + "+kindName+" + ' \"' + request.name + '\" (replica policy rule \"' + variables.ruleName + '\", action ' + variables.action + ')'"),
		// What stands in for the webhook's clamp warning (Result.ClampNotice).
		v("clampNotice", "'spec.replicas ' + string(variables.replicas) + ' is at a bound of ' + variables.bounds + "+
			"' of replica policy rule \"' + variables.ruleName + '\", to which the API server clamps requests outside them'"),
	)
	return vars, nil
}

// withoutMessage drops the variables of the messages, which only the validating policies use.
func withoutMessage(vars []admissionregistrationv1.Variable) []admissionregistrationv1.Variable {
	return slices.DeleteFunc(slices.Clone(vars), func(v admissionregistrationv1.Variable) bool {
		switch v.Name {
		case "message", "clampNotice", "bounds", "ruleName":
			return true
		}
		return false
	})
}

func mapLiteral(m map[string]string) string {
	var entries []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		entries = append(entries, quote(k)+": "+quote(m[k]))
	}
	return "{" + strings.Join(entries, ", ") + "}"
}
