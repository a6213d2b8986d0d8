package native

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// What the native policies leave to the webhook: /scale writes a selector rule may decide,
// /scale writes of kinds whose objects may be owned, and every kind not compiled.

// requestKey is the CEL of the request's resource as key spells it.
const requestKey = "(request.resource.group + '/' + request.resource.resource)"

// scaleBySelector is the CEL term for a /scale write that the rule deciding it first
// (firstMatch, over what a webhook's condition can read: namespace and kind) selects by the
// workload's labels. A selector rule without namespaces thus reaches only the namespaces no
// earlier rule without a selector decides.
func (c *compiler) scaleBySelector() string {
	return c.firstMatch(
		func(r rule) string { return and(r.namespacesTerm(), c.kindKeysTerm(r)) },
		func(r rule) string { return c.leaf(r, purposeWebhookScale) })
}

// webhookCondition is Result.WebhookMatchCondition: a kind not compiled, or a /scale write
// of a kind that may be owned or that bySelector (scaleBySelector) holds for.
func (c *compiler) webhookCondition(bySelector string) string {
	var compiled, owned []string
	for _, k := range c.kinds {
		compiled = append(compiled, key(k))
		if c.mayBeOwned(k) {
			owned = append(owned, key(k))
		}
	}
	var scale []string
	if len(owned) > 0 {
		scale = append(scale, requestKey+" in "+quoteList(owned))
	}
	switch bySelector {
	case "false":
	case "true", "(true)":
		scale = []string{"true"}
	default:
		scale = append(scale, bySelector)
	}
	cond := "!(" + requestKey + " in " + quoteList(compiled) + ")"
	switch {
	case len(scale) == 0:
	case len(scale) == 1 && scale[0] == "true":
		cond += " || " + isScale
	default:
		cond += " || (" + isScale + " && " + or(scale...) + ")"
	}
	return cond
}

// WebhookScale is which /scale writes of compiled kinds the native policies leave to the
// webhook, split by why:
//   - Owned: the kinds whose objects may be owned by a bounded workload: every /scale write
//     of them, in every namespace (a Scale does not name its owner);
//   - BySelector: the other kinds a selector rule may decide a /scale write of (a Scale
//     carries no labels), in the namespaces Namespaces selects (nil: every namespace;
//     WebhookMatchCondition says which writes of theirs).
//
// A webhook configuration need not register the /scale of the other kinds: the native
// policies decide every write of it. Namespaces is for a webhook entry of their own: the API
// server checks an entry's namespaceSelector before it converts the object or evaluates a
// matchCondition, so the /scale writes of a namespace it leaves out (one that rules without
// a selector decide) cost a write next to nothing there, where a matchCondition costs a
// conversion and an evaluation on every write, and twice on a write a native clamp mutates
// (the API server then runs the mutating chain again).
type WebhookScale struct {
	Owned, BySelector []policy.WorkloadKind
	Namespaces        *metav1.LabelSelector
}

// webhookScale is Result.WebhookScale; bySelector is scaleBySelector.
func (c *compiler) webhookScale(bySelector string) WebhookScale {
	var out WebhookScale
	for _, k := range c.kinds {
		switch {
		case c.mayBeOwned(k):
			out.Owned = append(out.Owned, k)
		case bySelector != "false" && c.selectorMayDecide(k):
			out.BySelector = append(out.BySelector, k)
		}
	}
	if len(out.BySelector) == 0 {
		return out
	}
	sc := c.scope(purposeWebhookScale)
	if sc.cel == "false" {
		out.Namespaces = NoNamespaces()
	} else if m := sc.matchResources(); m != nil {
		out.Namespaces = m.NamespaceSelector
	}
	return out
}

// NoNamespaces is a namespaceSelector that selects no namespace: every namespace has the
// label kubernetes.io/metadata.name (the API server sets it).
func NoNamespaces() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpDoesNotExist}}}
}

// selectorMayDecide reports whether a rule with a selector names kind k (or every kind).
func (c *compiler) selectorMayDecide(k policy.WorkloadKind) bool {
	for _, r := range c.rules {
		if r.Selector() != nil && (r.kinds == nil || slices.Contains(r.kinds, k.Name())) {
			return true
		}
	}
	return false
}

// kindKeysTerm is kindsTerm for a webhook's matchConditions, which have no variables.
func (c *compiler) kindKeysTerm(r rule) string {
	return c.kindsTermBy(r, key, func(in []string) string { return requestKey + " in " + quoteList(in) })
}

// webhookLines is Result.Webhook.
func (c *compiler) webhookLines() []string {
	var lines []string
	for _, k := range c.kinds {
		if c.mayBeOwned(k) {
			lines = append(lines, fmt.Sprintf("/scale writes of %s: a %s may be owned by a bounded workload, which is bounded instead, and a Scale does not name its owner",
				k.Resource, k.Kind))
		}
	}
	var before []string // rules without a selector that decide /scale writes first
	for _, r := range c.rules {
		if r.Selector() == nil {
			if len(r.names)+len(r.globs) > 0 && (r.NamespaceSelector() == nil || r.NamespaceSelector().Empty()) {
				before = append(before, fmt.Sprintf("%q", r.Name))
			}
			continue
		}
		if c.kindKeysTerm(r) == "false" {
			continue
		}
		var scope []string
		switch {
		case len(r.names)+len(r.globs) > 0:
			scope = append(scope, "namespaces "+strings.Join(append(slices.Clone(r.names), r.globs...), ", "))
		case len(before) > 3:
			scope = append(scope, fmt.Sprintf("namespaces that the %d rules without a selector before it do not decide", len(before)))
		case len(before) > 0:
			scope = append(scope, "namespaces that rules "+strings.Join(before, ", ")+" before it do not decide")
		}
		if r.NamespaceSelector() != nil {
			scope = append(scope, "namespaceSelector "+r.NamespaceSelector().String())
		}
		if r.kinds != nil {
			scope = append(scope, "kinds "+strings.Join(r.kinds, ", "))
		}
		where := ""
		if len(scope) > 0 {
			where = " (" + strings.Join(scope, "; ") + ")"
		}
		lines = append(lines, fmt.Sprintf("/scale writes that rule %q may decide%s: its selector needs the workload's labels, which a Scale does not carry",
			r.Name, where))
	}
	return append(lines, c.uncompiledKindLines()...)
}

// uncompiledKindLines say, a line a kind, which kinds the rules name that are not compiled
// (their writes are the webhook's), and which rules name them.
func (c *compiler) uncompiledKindLines() []string {
	compiled := map[string]bool{}
	for _, k := range c.kinds {
		compiled[k.Name()] = true
	}
	named := map[string][]string{}
	var order []string
	for _, r := range c.rules {
		for _, k := range r.kinds {
			if !compiled[k] {
				if named[k] == nil {
					order = append(order, k)
				}
				named[k] = append(named[k], fmt.Sprintf("%q", r.Name))
			}
		}
	}
	lines := make([]string, 0, len(order))
	for _, k := range order {
		lines = append(lines, fmt.Sprintf("writes of %s (named by rule %s): not a compiled kind", k, strings.Join(named[k], ", ")))
	}
	return lines
}

// autoscalerWebhookLines are the lines of Result.Webhook for autoscalers: those whose
// target may be owned, and those whose target's rule may have a selector.
func (c *compiler) autoscalerWebhookLines() []string {
	var lines []string
	for _, k := range c.kinds {
		if c.mayBeOwned(k) {
			lines = append(lines, fmt.Sprintf("HorizontalPodAutoscalers and ScaledObjects whose target is a %s: it may be owned by a bounded workload, which CEL cannot read", k.Kind))
		}
	}
	for _, r := range c.rules {
		if r.Selector() != nil && c.kindKeysTerm(r) != "false" {
			lines = append(lines, fmt.Sprintf("HorizontalPodAutoscalers and ScaledObjects whose target rule %q may decide: its selector needs the target's labels, which CEL cannot read", r.Name))
		}
	}
	return lines
}
