package native

import (
	"fmt"
	"slices"
	"strings"
)

// What the native policies leave to the webhook: /scale writes a selector rule may decide,
// /scale writes of kinds whose objects may be owned, and every kind not compiled.

// requestKey is the CEL of the request's resource as Kind.key spells it.
const requestKey = "(request.resource.group + '/' + request.resource.resource)"

// webhookCondition is Result.WebhookMatchCondition.
func (c *compiler) webhookCondition() string {
	var compiled, owned []string
	for _, k := range c.kinds {
		compiled = append(compiled, k.key())
		if c.mayBeOwned(k) {
			owned = append(owned, k.key())
		}
	}
	var scale []string
	if len(owned) > 0 {
		scale = append(scale, requestKey+" in "+quoteList(owned))
	}
	for _, r := range c.rules {
		if r.Selector() == nil {
			continue
		}
		var ns string
		if len(r.names)+len(r.globs) > 0 {
			ns = namespacesTerm("request.namespace", r.names, r.globs)
		}
		t := and(ns, c.kindKeysTerm(r))
		if t == "false" {
			continue
		}
		scale = append(scale, t)
		if t == "true" {
			scale = []string{"true"}
			break
		}
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

// kindKeysTerm is kindsTerm for a webhook's matchConditions, which have no variables.
func (c *compiler) kindKeysTerm(r rule) string {
	if r.kinds == nil {
		return ""
	}
	var in []string
	for _, k := range c.kinds {
		if slices.Contains(r.kinds, k.Name()) {
			in = append(in, k.key())
		}
	}
	switch len(in) {
	case 0:
		return "false"
	case len(c.kinds):
		return ""
	}
	return requestKey + " in " + quoteList(in)
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
	for _, r := range c.rules {
		if r.Selector() == nil || c.kindKeysTerm(r) == "false" {
			continue
		}
		var scope []string
		if len(r.names)+len(r.globs) > 0 {
			scope = append(scope, "namespaces "+strings.Join(append(slices.Clone(r.names), r.globs...), ", "))
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
	for _, k := range order {
		lines = append(lines, fmt.Sprintf("writes of %s (named by rule %s): not a compiled kind", k, strings.Join(named[k], ", ")))
	}
	return lines
}
