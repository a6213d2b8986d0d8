package native

import (
	"encoding/json"
	"fmt"
	"reflect"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Limits of the API server that a compiled policy must stay within. They were found against
// kube-apiserver v1.37.2 with etcd v3.6 (TestLimits, opt-in, says how):
//
//   - Size. A MutatingAdmissionPolicy or ValidatingAdmissionPolicy (or a binding) is one etcd value, and
//     etcd refuses a request larger than its --max-request-bytes, 1.5 MiB by default
//     ("etcdserver: request is too large"). A compiled policy of 1.63 MB of JSON was stored,
//     one of 2.04 MB was refused. Compile refuses objects larger than MaxObjectBytes as JSON,
//     which is larger than the stored protobuf: about 6,500 rules of two namespaces and a
//     selector each, 10,000 and more of one literal namespace. An object within it is also
//     within kube-apiserver's limit of a request body, 3 MiB.
//   - Expressions. cel-go's parser refuses an expression of more than 100,000 code points or
//     nested more than 250 levels deep, and the API server keeps those defaults. Its parsing
//     and type checking also take time quadratic in one expression's length: a list of 400
//     rules in one 90,000-character expression took 18 s to create, the same rules in
//     5,000-character expressions 1.7 s. Compile puts at most maxChunk characters of rules
//     into one variable, and concatenates at most maxConcat of them in one expression.
//     The matchCondition of each policy nests one conditional a rule (due): chains of 160
//     rules of three namespaces and a two-term selector each were accepted (91,457
//     characters), 200 were refused for length; Compile chains at most maxChain rules
//     (about 28,000 characters of that shape) and lets the variables decide past them.
//   - Cost. There is no cost estimate at creation for admission policies (object is dynamic),
//     but at run time each expression may cost at most PerCallLimit and one policy's
//     evaluation RuntimeCELCostBudget (k8s.io/apiserver/pkg/apis/cel); past either the
//     evaluation fails, and failurePolicy Ignore lets the write through unchecked. CEL's
//     runtime cost of the compiled matchers is at most costPerChar per character: a regular
//     expression costs ceil((1+len(namespace))/10) × ceil(len(regex)/4), at most 7 × the
//     regex's length / 4 for a namespace name of 63 characters; a list membership, the list's
//     length; every other step 1 or a tenth of a short string's length. Compile checks
//     costPerChar × the characters of each expression against PerCallLimit and their sum
//     against RuntimeCELCostBudget: at MaxObjectBytes both hold with room to spare, so size
//     is the limit a policy meets first.
//   - Time. The API server compiles every expression when the object is created, within the
//     request's timeout: on two busy cores about 2 s per 1,000 rules of the shape above, and
//     up to 25 s at MaxObjectBytes.
const (
	// MaxObjectBytes is the largest compiled policy Compile returns, as JSON: etcd's default
	// request limit, 1.5 MiB (1,572,864 bytes), less room for the metadata the API server adds.
	MaxObjectBytes = 1_500_000
	// PerCallLimit is the API server's runtime cost limit of one CEL expression
	// (k8s.io/apiserver/pkg/apis/cel.PerCallLimit).
	PerCallLimit = 1_000_000
	// RuntimeCELCostBudget is the API server's runtime cost budget of one policy's evaluation
	// (k8s.io/apiserver/pkg/apis/cel.RuntimeCELCostBudget).
	RuntimeCELCostBudget = 10_000_000
	// costPerChar bounds the runtime cost of a compiled expression by its length (see above:
	// a regular expression, the costliest step per character, costs 7/4 per character).
	costPerChar = 2
)

// LimitError is a policy the API server cannot hold or evaluate as native policies.
type LimitError struct {
	Reason string
}

func (e *LimitError) Error() string {
	return "the policy is too large for native admission policies: " + e.Reason
}

// checkLimits records the size and cost bound of the result and refuses one past a limit.
func (c *compiler) checkLimits(res *Result) error {
	type named struct {
		what  string
		obj   any
		exprs []string
	}
	exprsOf := func(vars []admissionregistrationv1.Variable, conds []admissionregistrationv1.MatchCondition) []string {
		var e []string
		for _, v := range vars {
			e = append(e, v.Expression)
		}
		for _, m := range conds {
			e = append(e, m.Expression)
		}
		return e
	}
	var objs []named
	for _, p := range []*admissionregistrationv1.MutatingAdmissionPolicy{res.Clamp, res.AutoscalerClamp} {
		if p != nil {
			objs = append(objs, named{"MutatingAdmissionPolicy " + p.Name, p, exprsOf(p.Spec.Variables, p.Spec.MatchConditions)})
		}
	}
	for _, p := range []*admissionregistrationv1.ValidatingAdmissionPolicy{res.Deny, res.Warn, res.ClampNotice, res.AutoscalerDeny, res.AutoscalerWarn} {
		if p != nil {
			objs = append(objs, named{"ValidatingAdmissionPolicy " + p.Name, p, exprsOf(p.Spec.Variables, p.Spec.MatchConditions)})
		}
	}
	// A binding is one etcd value too: its namespaceSelector lists namespaces by name.
	for _, b := range []runtime.Object{res.ClampBinding, res.DenyBinding, res.WarnBinding, res.ClampNoticeBinding,
		res.AutoscalerClampBinding, res.AutoscalerDenyBinding, res.AutoscalerWarnBinding} {
		if b != nil && !reflect.ValueOf(b).IsNil() {
			objs = append(objs, named{b.GetObjectKind().GroupVersionKind().Kind + " " + b.(metav1.Object).GetName(), b, nil})
		}
	}
	for _, o := range objs {
		b, err := json.Marshal(o.obj)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", o.what, err)
		}
		res.Size = max(res.Size, len(b))
		if len(b) > MaxObjectBytes {
			return &LimitError{Reason: fmt.Sprintf("%s would be %d bytes, more than the %d that etcd's default request limit (1.5 MiB) leaves room for; %d rules",
				o.what, len(b), MaxObjectBytes, len(c.rules))}
		}
		var total int64
		for _, e := range o.exprs {
			cost := int64(costPerChar * len(e))
			if cost > PerCallLimit {
				return &LimitError{Reason: fmt.Sprintf("an expression of %s may cost %d at run time, more than the API server's limit of %d per expression",
					o.what, cost, PerCallLimit)}
			}
			total += cost
		}
		res.Cost = max(res.Cost, total)
		if total > RuntimeCELCostBudget {
			return &LimitError{Reason: fmt.Sprintf("%s may cost %d at run time, more than the API server's budget of %d per policy evaluation",
				o.what, total, RuntimeCELCostBudget)}
		}
	}
	return nil
}
