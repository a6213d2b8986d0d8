package native

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

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
// Absent fields are read with CEL's optional syntax (.? and orValue), which the API server
// has offered since Kubernetes 1.28.
func replicasOf(o string) string {
	return fmt.Sprintf("%s.spec.?replicas.orValue(%s ? 0 : 1)", o, isScale)
}

// isScale is true for a write to the /scale subresource. The request of a write to the
// object itself has no subResource at all.
const isScale = "(request.?subResource.orValue('') == 'scale')"

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
//  3. the MutatingAdmissionPolicy's only: the first-match decision for the clamp (due), as a
//     chain of conditionals that reads the rules only up to the first that matches. A
//     ValidatingAdmissionPolicy leaves it to its variables, which it evaluates lazily and
//     whose result it does not copy: the chain is written once there;
//  4. not owned by a bounded workload (which the policy bounds instead).
//
// It may hold for a request the policy then leaves alone (the variables decide exactly),
// but never fails to hold for one the policy would act on: TestCompileAgreesWithWebhook
// checks the two against the webhook.

// purpose is what a compiled policy does for the rule that decides a request.
type purpose struct {
	// name of the policy's matchCondition.
	name string
	// suffix of the policy's name: NAME-suffix.
	suffix string
	// action is the rules' action the policy acts for.
	action policy.Action
	// atBound: the clamp notice, which acts when replicas are at a bound of a clamp rule;
	// otherwise the policy acts when they are outside the bounds.
	atBound bool
	// bySelector: not a policy but the webhook entry for the /scale writes a selector rule
	// may decide (WebhookScale), which acts wherever a rule with a selector may decide.
	bySelector bool
}

var (
	purposeClamp = purpose{name: "outside-clamp-bounds", suffix: clampSuffix, action: policy.ActionClamp}
	// A validating policy's condition only scopes the request and asks that replicas changed:
	// its variables decide the rest.
	purposeDeny   = purpose{name: "replicas-changed", suffix: string(policy.ActionDeny), action: policy.ActionDeny}
	purposeWarn   = purpose{name: "replicas-changed", suffix: string(policy.ActionWarn), action: policy.ActionWarn}
	purposeNotice = purpose{name: "replicas-changed", suffix: clampNoticeSuffix, action: policy.ActionClamp, atBound: true}

	purposeWebhookScale = purpose{bySelector: true}
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
	due := c.due(p)
	if due == "(false)" {
		terms = append(terms, "false") // it can never act: the policy is not emitted
	}
	if p == purposeClamp {
		inner := andLines(
			fmt.Sprintf("(request.operation != 'UPDATE' || %s != %s)", replicaVar, replicasOf("oldObject")),
			due,
		)
		terms = append(terms, fmt.Sprintf("[%s].exists(%s, %s)", replicasOf("object"), replicaVar, inner))
	} else {
		// A validating policy copies nothing: its variables, which it reads only as far as
		// its validation needs them, decide; the rule chain is written there alone.
		terms = append(terms, fmt.Sprintf("(request.operation != 'UPDATE' || %s != %s)", replicasOf("object"), replicasOf("oldObject")))
	}
	// The owner's group is the part of its apiVersion before the "/".
	byGroup := map[string][]string{}
	for _, k := range c.kinds {
		byGroup[k.Group] = append(byGroup[k.Group], k.Kind)
	}
	var owners []string
	for _, g := range slices.Sorted(maps.Keys(byGroup)) {
		owners = append(owners, and(fmt.Sprintf("o.apiVersion.startsWith(%s)", quote(g+"/")), kindIn("o.kind", byGroup[g])))
	}
	terms = append(terms, "!object.metadata.?ownerReferences.orValue([]).exists(o, o.?controller.orValue(false) && "+or(owners...)+")")
	return []admissionregistrationv1.MatchCondition{{Name: p.name, Expression: andLines(terms...)}}
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
	links, tail := c.chainLinks(candidate, leafOf)
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
			rest = cand + " ? " + paren(l.leaf) + " :\n  " + rest // a rule a line, for a reviewer
			expr = "(" + rest + ")"
			continue
		}
		rest = paren(expr)
	}
	return paren(expr)
}

// link is one rule of firstMatch's chain: its candidate and leaf, and whether it is unsure
// (a namespaceSelector, which a matchCondition cannot read).
type link struct {
	cand, leaf string
	unsure     bool
}

// chainLinks are the rules firstMatch chains, in order, and what the chain gives after
// them: the leaf of the first rule that matches every request, false when none does, true
// past maxChain rules (the variables then decide).
func (c *compiler) chainLinks(candidate, leafOf func(rule) string) (links []link, tail string) {
	for _, r := range c.rules {
		if len(links) == maxChain {
			return links, "true"
		}
		cand, leaf := candidate(r), leafOf(r)
		switch {
		case cand == "false":
			// none of its kinds is compiled: it never matches
		case r.NamespaceSelector() != nil && !r.NamespaceSelector().Empty():
			if leaf != "false" {
				links = append(links, link{cand, leaf, true})
			}
		case cand == "" || cand == "true" || c.isDefault(r):
			return links, leaf // it matches whatever the request: no rule after it decides
		default:
			links = append(links, link{cand, leaf, false})
		}
	}
	return links, "false"
}

// isDefault reports whether r is the policy's default, which matches every request.
func (c *compiler) isDefault(r rule) bool {
	return r.Name == policy.DefaultRuleName && r.index == len(c.snap.Policy.Rules)
}

// leaf is true when rule r, deciding the request, gives the policy p something to do: an
// action of p's, and replicas (replicaVar) outside its bounds or, for the notice, at one.
// Under a selector rule a Scale is the webhook's to decide.
func (c *compiler) leaf(r rule, p purpose) string {
	if p.bySelector {
		return fmt.Sprint(r.Selector() != nil)
	}
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

// kindsTerm is true when the rule's kinds include the request's kind, named by kindVar;
// "false" when none of them is a compiled kind, "" (no term) when the rule names every
// compiled kind or none.
func (c *compiler) kindsTerm(r rule, kindVar string) string {
	return c.kindsTermBy(r, policy.WorkloadKind.Name, func(in []string) string { return kindIn(kindVar, in) })
}

// kindsTermBy is kindsTerm with each compiled kind of the rule named by name, and the term
// written by in.
func (c *compiler) kindsTermBy(r rule, name func(policy.WorkloadKind) string, in func([]string) string) string {
	if r.kinds == nil {
		return ""
	}
	var names []string
	for _, k := range c.kinds {
		if slices.Contains(r.kinds, k.Name()) {
			names = append(names, name(k))
		}
	}
	switch len(names) {
	case 0:
		return "false"
	case len(c.kinds):
		return ""
	}
	return in(names)
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
const objectLabels = "object.metadata.?labels.orValue({})"
