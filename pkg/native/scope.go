package native

import (
	"maps"
	"slices"
	"strings"

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

// scope returns the scope of the policy of purpose p, computed once per compiler.
func (c *compiler) scope(p purpose) scope {
	if s, ok := c.scopes[p]; ok {
		return s
	}
	s := c.computeScope(p)
	if c.scopes == nil {
		c.scopes = map[purpose]scope{}
	}
	c.scopes[p] = s
	return s
}

func (c *compiler) computeScope(p purpose) scope {
	exempt, _ := c.snap.ExemptNamespaces() // exempt globs stay in the matchCondition
	idle := c.idleNamespaces(p)
	names, globs, all := c.namespacesOf(p)
	if !all && len(globs) == 0 {
		in := slices.DeleteFunc(names, func(ns string) bool { return idle[ns] || slices.Contains(exempt, ns) })
		if len(in) == 0 {
			return scope{cel: "false"} // it acts nowhere; a selector cannot select no namespace
		}
		slices.Sort(in)
		return scope{in: in}
	}
	var s scope
	if !all {
		s.cel = paren(namespacesTerm("request.namespace", names, globs))
	}
	for ns := range idle {
		if !slices.Contains(exempt, ns) {
			s.out = append(s.out, ns)
		}
	}
	s.out = append(s.out, exempt...)
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
	seen := map[string]bool{}
	for _, r := range c.rules {
		if c.kindKeysTerm(r) == "false" || c.leaf(r, p) == "false" {
			continue // it never matches a compiled kind, or never gives p anything to do
		}
		if len(r.names)+len(r.globs) == 0 {
			return nil, nil, true
		}
		for _, ns := range r.names {
			if !seen[ns] {
				seen[ns] = true
				names = append(names, ns)
			}
		}
		globs = append(globs, r.globs...)
	}
	return names, globs, false
}

// idleNamespaces returns the namespaces that a rule names literally where the policy of
// purpose p has nothing to do: no rule that may decide a request there, up to the first
// that decides every request there, gives it anything to do. Only the rules that act or
// decide every request (decisive) matter: in a namespace, the first of them that may match
// there settles it, idle unless it acts. It reads each rule once, and for each namespace
// the rules that name it, the first decisive rule that names no namespace, and the decisive
// rules with a glob whose literal prefix begins the namespace's name: linear in the rules
// however many name a namespace and a glob.
func (c *compiler) idleNamespaces(p purpose) map[string]bool {
	acts := make([]bool, len(c.rules))
	byName := map[string][]int{}   // the decisive rules that name a namespace literally, in order
	byPrefix := map[string][]int{} // the decisive rules with a glob, by the glob's literal prefix
	everywhere := -1               // the first decisive rule that names no namespace
	for i, r := range c.rules {
		kinds := c.kindKeysTerm(r)
		acts[i] = c.leaf(r, p) != "false"
		// it matches every request in the namespaces it names
		whole := kinds == "" && r.Selector() == nil && (r.NamespaceSelector() == nil || r.NamespaceSelector().Empty())
		if kinds == "false" || (!acts[i] && !whole) {
			continue // it never matches a compiled kind, or never settles anything
		}
		for _, ns := range r.names {
			byName[ns] = append(byName[ns], i)
		}
		for _, g := range r.globs {
			prefix := g[:strings.IndexAny(g+"*", `*?[\`)]
			if n := len(byPrefix[prefix]); n == 0 || byPrefix[prefix][n-1] != i {
				byPrefix[prefix] = append(byPrefix[prefix], i)
			}
		}
		if len(r.names)+len(r.globs) == 0 && everywhere < 0 {
			everywhere = i
		}
	}
	idle := map[string]bool{}
	for _, r := range c.rules {
		for _, ns := range r.names {
			if _, seen := idle[ns]; seen {
				continue
			}
			first := everywhere
			if named := byName[ns]; len(named) > 0 && (first < 0 || named[0] < first) {
				first = named[0]
			}
			for l := 0; l <= len(ns); l++ {
				for _, i := range byPrefix[ns[:l]] {
					if first >= 0 && i >= first {
						break
					}
					if c.rules[i].MatchesNamespace(ns) {
						first = i
						break
					}
				}
			}
			idle[ns] = first < 0 || !acts[first]
		}
	}
	maps.DeleteFunc(idle, func(_ string, isIdle bool) bool { return !isIdle })
	return idle
}
