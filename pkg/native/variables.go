package native

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

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

// variable is one of the policies' variables.
func variable(name, expr string) admissionregistrationv1.Variable {
	return admissionregistrationv1.Variable{Name: name, Expression: expr}
}

// variables are the policies' variables, in the order they read each other: what the
// request is, which rule decides it, what that rule wants, and the messages.
func (c *compiler) variables() ([]admissionregistrationv1.Variable, error) {
	vars, kindName := c.requestVariables()
	rules, err := c.ruleVariables()
	if err != nil {
		return nil, err
	}
	vars = append(vars, rules...)
	vars = append(vars, c.boundsVariables()...)
	return append(vars, c.messageVariables(kindName)...), nil
}

// requestVariables say what the request is: a Scale or not, its replicas, its kind as a
// rule's kinds names it (and as messages name it, where the two differ), its labels and its
// namespace's. kindName is the variable that messages name the kind by.
func (c *compiler) requestVariables() (vars []admissionregistrationv1.Variable, kindName string) {
	kinds, kindNames := map[string]string{}, map[string]string{}
	for _, k := range c.kinds {
		kinds[key(k)], kindNames[key(k)] = k.Name(), k.Kind
	}
	const resource = "[request.resource.group + '/' + request.resource.resource]"
	vars = []admissionregistrationv1.Variable{
		variable("scale", isScale),
		variable("replicas", replicasOf("object")),
		variable("kind", mapLiteral(kinds)+resource),
	}
	kindName = "variables.kind"
	if !maps.Equal(kinds, kindNames) {
		vars = append(vars, variable("kindName", mapLiteral(kindNames)+resource))
		kindName = "variables.kindName"
	}
	// The labels only where a rule reads them: no variable a reviewer must trace to nothing.
	if c.readsLabels() {
		vars = append(vars, variable("labels", "variables.scale ? {} : "+objectLabels))
	}
	if slices.ContainsFunc(c.rules, func(r rule) bool { return r.NamespaceSelector() != nil }) {
		vars = append(vars, variable("nsLabels", "namespaceObject.metadata.?labels.orValue({})"))
	}
	return vars, kindName
}

// readsLabels reports whether a rule has a selector: only then do the policies read the
// workload's labels, and a Scale (which has none) may be the webhook's to decide (unknown).
func (c *compiler) readsLabels() bool {
	return slices.ContainsFunc(c.rules, func(r rule) bool { return r.Selector() != nil })
}

// known is the term of an expression that holds unless the request is the webhook's to
// decide (variables.unknown): none when no rule has a selector.
func (c *compiler) known() string {
	if c.readsLabels() {
		return "!variables.unknown && "
	}
	return ""
}

// chainRules are the rules the first-match chain reads, in order, and the default's index
// (-1 without a default), which the chain falls back to.
func (c *compiler) chainRules() (rules []rule, deflt int) {
	deflt = -1
	for _, r := range c.rules {
		if c.isDefault(r) {
			deflt = r.index
			continue
		}
		rules = append(rules, r)
	}
	return rules, deflt
}

// ruleVariables find the rule that decides: rule is the index of the first rule that
// matches (the default's when none does, -1 without a default), unknown is set for a Scale
// whose deciding rule has a selector (the webhook's to decide); without selector rules
// there is no unknown.
func (c *compiler) ruleVariables() ([]admissionregistrationv1.Variable, error) {
	rules, deflt := c.chainRules()
	var vars []admissionregistrationv1.Variable
	candidate := func(r rule) string { return c.candidate(r, false) }
	if chain, ok := conditionalChain(rules, candidate, deflt); ok {
		vars = append(vars, variable("rule", chain))
	} else {
		first, err := c.firstVariables(rules, candidate)
		if err != nil {
			return nil, err
		}
		vars = first
		if deflt < 0 { // the first rule that matches is the rule: one variable, not an alias
			vars[len(vars)-1].Name = "rule"
		} else {
			vars = append(vars, variable("rule", fmt.Sprintf("variables.first >= 0 ? variables.first : %d", deflt)))
		}
	}
	var selectorRules []int64
	for _, r := range rules {
		if r.Selector() != nil {
			selectorRules = append(selectorRules, int64(r.index))
		}
	}
	if len(selectorRules) > 0 {
		vars = append(vars, variable("unknown", "variables.scale && variables.rule in "+intList(selectorRules)))
	}
	return vars, nil
}

// firstVariables hold the candidates of rules as lists, one bool a rule, in chunks that
// each stay an expression the parser accepts, concatenated at most maxConcat at a time (the
// parser nests a chain of + one level deeper a term, and stops at 250 levels); first is
// the index of the first that holds. candidate is a rule's CEL.
func (c *compiler) firstVariables(rules []rule, candidate func(rule) string) ([]admissionregistrationv1.Variable, error) {
	var chunks, cur []string
	size := 0
	flush := func() {
		if len(cur) > 0 {
			chunks = append(chunks, "[\n  "+strings.Join(cur, ",\n  ")+"]") // a rule a line, for a reviewer
			cur, size = nil, 0
		}
	}
	for _, r := range rules {
		cand := candidate(r)
		if len(cand) > maxExpression {
			return nil, &LimitError{Reason: fmt.Sprintf("rule %q compiles to %d characters of CEL, more than the 100,000 an expression may hold", r.Name, len(cand))}
		}
		if size+len(cand)+4 > maxChunk {
			flush()
		}
		cur = append(cur, cand)
		size += len(cand) + 4
		if cand == "true" {
			break // it matches every request: no rule after it is ever first
		}
	}
	flush()
	switch {
	case chunks[0] == "[\n  true]":
		return []admissionregistrationv1.Variable{variable("first", "0")}, nil
	case len(chunks) == 1: // one list, read where it is written
		return []admissionregistrationv1.Variable{variable("first", chunks[0]+".indexOf(true)")}, nil
	}
	var vars []admissionregistrationv1.Variable
	var refs []string
	for i, ch := range chunks {
		name := fmt.Sprintf("rules%d", i)
		vars = append(vars, variable(name, ch))
		refs = append(refs, "variables."+name)
	}
	for level := 0; len(refs) > maxConcat; level++ {
		var next []string
		for i := 0; i < len(refs); i += maxConcat {
			name := fmt.Sprintf("rules%s%d", strings.Repeat("x", level+1), i/maxConcat)
			vars = append(vars, variable(name, strings.Join(refs[i:min(i+maxConcat, len(refs))], " + ")))
			next = append(next, "variables."+name)
		}
		refs = next
	}
	all := refs[0]
	if len(refs) > 1 {
		all = "(" + strings.Join(refs, " + ") + ")"
	}
	return append(vars, variable("first", all+".indexOf(true)")), nil
}

// conditionalChain is the index of the first of rules whose candidate holds, deflt when none
// does, as a chain of conditionals, a rule a line: `cand0 ? 0 :\n cand1 ? 1 :\n deflt`. The API
// server evaluates a conditional's taken branch only, so it reads the rules up to the first
// that matches (a list evaluates every element). Not ok past maxChain rules (each is one
// level of nesting, which cel-go's parser limits) or maxChunk characters (its parse time
// grows with the square of an expression's length): firstVariables then writes lists.
func conditionalChain(rules []rule, candidate func(rule) string, deflt int) (string, bool) {
	if len(rules) > maxChain {
		return "", false
	}
	var b strings.Builder
	tail := fmt.Sprint(deflt)
	for i, r := range rules {
		cand := candidate(r)
		if cand == "false" {
			continue // it never matches
		}
		if cand == "" || cand == "true" {
			tail = fmt.Sprint(i) // it matches every request: no rule after it is ever first
			break
		}
		fmt.Fprintf(&b, "%s ? %d :\n", paren(cand), i)
		if b.Len() > maxChunk {
			return "", false
		}
	}
	return b.String() + tail, true
}

// atRule is the element of list for the deciding rule, none when no rule decides.
func atRule(list, none string) string {
	return fmt.Sprintf("(variables.rule >= 0 ? %s[variables.rule] : %s)", list, none)
}

// ruleLists are the rules' minimums and maximums (-1 where a rule has none), allowZero and
// actions, by rule index: the lists the policies' variables index with variables.rule.
func (c *compiler) ruleLists() (mins, maxs []int64, zeros []bool, actions []string) {
	mins, maxs = make([]int64, len(c.rules)), make([]int64, len(c.rules))
	zeros, actions = make([]bool, len(c.rules)), make([]string, len(c.rules))
	for i, r := range c.rules {
		mins[i], maxs[i] = -1, -1
		if r.Bounds.Min != nil {
			mins[i] = int64(*r.Bounds.Min)
		}
		if r.Bounds.Max != nil {
			maxs[i] = int64(*r.Bounds.Max)
		}
		zeros[i], actions[i] = r.Bounds.AllowZero, string(r.Action)
	}
	return mins, maxs, zeros, actions
}

// boundsVariables are the deciding rule's bounds and action, from lists indexed by rule,
// the value it wants and whether the request is outside its bounds.
func (c *compiler) boundsVariables() []admissionregistrationv1.Variable {
	mins, maxs, zeros, actions := c.ruleLists()
	// policy.Bounds.Nearest; allowZero only where a rule has it.
	want := "(variables.min >= 0 && variables.replicas < variables.min ? variables.min : " +
		"(variables.max >= 0 && variables.replicas > variables.max ? variables.max : variables.replicas))"
	vars := []admissionregistrationv1.Variable{
		variable("min", atRule(intList(mins), "-1")),
		variable("max", atRule(intList(maxs), "-1")),
	}
	if slices.Contains(zeros, true) {
		vars = append(vars, variable("allowZero", atRule(boolList(zeros), "false")))
		want = "variables.replicas == 0 && variables.allowZero ? 0 : " + want
	}
	return append(vars,
		variable("action", atRule(quoteList(actions), "''")),
		variable("want", want),
		// A negative count is left to the API server's validation, as the webhook leaves it.
		variable("out", "variables.rule >= 0 && "+c.known()+"variables.replicas >= 0 && variables.want != variables.replicas"),
	)
}

// messageVariables are the texts of the validating policies, which name the kind by the
// variable kindName: the webhook's denial and warning, and what stands in for its clamp
// warning.
func (c *compiler) messageVariables(kindName string) []admissionregistrationv1.Variable {
	bounds, names := make([]string, len(c.rules)), make([]string, len(c.rules))
	for i, r := range c.rules {
		bounds[i], names[i] = r.Bounds.String(), r.Name
	}
	return []admissionregistrationv1.Variable{
		// The object as every message names it first: `Deployment "db"`.
		variable("object", kindName+" + ' \"' + request.name + '\"'"),
		variable("bounds", atRule(quoteList(bounds), "''")),
		variable("ruleName", atRule(quoteList(names), "''")),
		// policy.Verdict.OutOfBoundsMessage: the object first, by its kind and name (a Scale's
		// by the workload's kind, which kindName gives for its resource).
		variable("message", "variables.object + ': spec.replicas: Invalid value: ' + string(variables.replicas) + ': must be within ' + variables.bounds + "+
			"' (replica policy rule \"' + variables.ruleName + '\", action ' + variables.action + ')'"),
		// What stands in for the webhook's clamp warning (Result.ClampNotice), in its shape.
		variable("clampNotice", "variables.object + ': spec.replicas ' + string(variables.replicas) + ' is at a bound of ' + variables.bounds + "+
			"' of replica policy rule \"' + variables.ruleName + '\", to which the API server clamps requests outside them'"),
	}
}

// variableRef is a reference to a variable in an expression.
var variableRef = regexp.MustCompile(`\bvariables\.(\w+)`)

// used are the variables of vars that the expressions exprs read, directly or through other
// variables, in their order: a policy carries no variable that nothing reads.
func used(vars []admissionregistrationv1.Variable, exprs ...string) []admissionregistrationv1.Variable {
	need := map[string]bool{}
	mark := func(expr string) {
		for _, m := range variableRef.FindAllStringSubmatch(expr, -1) {
			need[m[1]] = true
		}
	}
	for _, e := range exprs {
		mark(e)
	}
	// A variable reads only those before it: one pass from the last finds every one needed.
	for i := len(vars) - 1; i >= 0; i-- {
		if need[vars[i].Name] {
			mark(vars[i].Expression)
		}
	}
	return slices.DeleteFunc(slices.Clone(vars), func(v admissionregistrationv1.Variable) bool { return !need[v.Name] })
}

func mapLiteral(m map[string]string) string {
	var entries []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		entries = append(entries, quote(k)+": "+quote(m[k]))
	}
	return "{" + strings.Join(entries, ", ") + "}"
}
