package native

import (
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A binding's namespaceSelector is the cheapest filter a compiled policy has: the API server
// checks it against the namespace's labels before it converts the object or evaluates any
// CEL, and a policy whose binding does not match costs a write next to nothing. A binding
// cannot read globs, but every namespace has the label kubernetes.io/metadata.name with its
// name (the API server sets it), so the namespaces a policy names literally go there:
//
//   - out: the exempt namespaces named literally, and each namespace a rule names literally
//     where no rule that may decide a request there, up to the first that decides every
//     request there, gives the policy anything to do (a deny policy is never evaluated in a
//     namespace that a clamp rule without other matchers decides);
//   - in: when every rule that may give the policy something to do names its namespaces, and
//     none by a glob, only those namespaces (a warn rule for namespace dev, and the deny
//     policy of a rule for databases in prod: neither is evaluated anywhere else).
//
// What a binding cannot say (globs, namespaces no rule names) stays in the policy's
// matchCondition.

// scope is where the policy of a purpose may act, split between its binding and its
// matchCondition.
type scope struct {
	// in, when not nil, are the only namespaces the binding selects; out are namespaces it
	// never selects.
	in, out []string
	// cel is a term of the matchCondition for what the binding cannot say: "" when none.
	cel string
}

func (c *compiler) scope(p purpose) scope {
	var s scope
	exempt, _ := c.snap.ExemptNamespaces() // exempt globs stay in the matchCondition
	names, globs, all := c.namespacesOf(p)
	if !all && len(globs) == 0 {
		s.in = slices.DeleteFunc(names, func(ns string) bool { return slices.Contains(exempt, ns) || c.idleIn(p, ns) })
		if len(s.in) == 0 {
			return scope{cel: "false"} // it acts nowhere; a selector cannot select no namespace
		}
		slices.Sort(s.in)
		return s
	}
	if !all {
		s.cel = paren(namespacesTerm("request.namespace", names, globs))
	}
	s.out = slices.Clone(exempt)
	for _, r := range c.rules {
		for _, ns := range r.names {
			if !slices.Contains(s.out, ns) && c.idleIn(p, ns) {
				s.out = append(s.out, ns)
			}
		}
	}
	slices.Sort(s.out)
	return s
}

// matchResources is the binding's matchResources for the scope: nil when it selects every
// namespace.
func (s scope) matchResources() *admissionregistrationv1.MatchResources {
	var reqs []metav1.LabelSelectorRequirement
	if len(s.in) > 0 {
		reqs = append(reqs, metav1.LabelSelectorRequirement{Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: s.in})
	}
	if len(s.out) > 0 {
		reqs = append(reqs, metav1.LabelSelectorRequirement{Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: s.out})
	}
	if len(reqs) == 0 {
		return nil
	}
	return &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: reqs}}
}

// namespacesOf returns the namespaces where a rule may give the policy of purpose p
// something to do, as names (each once, in the order of the rules) and globs; all is true
// when such a rule (or the default) names none, and may act in any namespace.
func (c *compiler) namespacesOf(p purpose) (names, globs []string, all bool) {
	for _, r := range c.rules {
		if c.kindKeysTerm(r) == "false" || c.leaf(r, p) == "false" {
			continue // it never matches a compiled kind, or never gives p anything to do
		}
		if len(r.names)+len(r.globs) == 0 {
			return nil, nil, true
		}
		for _, ns := range r.names {
			if !slices.Contains(names, ns) {
				names = append(names, ns)
			}
		}
		globs = append(globs, r.globs...)
	}
	return names, globs, false
}

// idleIn reports whether the policy of purpose p has nothing to do in namespace ns: no rule
// that may decide a request there, up to the first that decides every request there, gives
// it anything to do.
func (c *compiler) idleIn(p purpose, ns string) bool {
	for _, r := range c.rules {
		if c.kindKeysTerm(r) == "false" || !r.MatchesNamespace(ns) {
			continue
		}
		if c.leaf(r, p) != "false" {
			return false
		}
		if c.kindKeysTerm(r) == "" && r.Selector() == nil && (r.NamespaceSelector() == nil || r.NamespaceSelector().Empty()) {
			return true // it matches every request in ns: no rule after it decides there
		}
	}
	return true // no rule decides there
}
