package native

import (
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// The objects Compile emits: one MutatingAdmissionPolicy that clamps, ValidatingAdmission
// Policies that deny, warn and stand in for the clamp's warning, each with a binding of its
// own name. They share the match constraints and the variables.

// objectMeta is the type and name of an object Compile emits of kind, with its own copy of
// the labels every one of them carries.
func objectMeta(kind, name string) (metav1.TypeMeta, metav1.ObjectMeta) {
	return metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: kind},
		metav1.ObjectMeta{Name: name, Labels: map[string]string{ManagedByLabel: ManagedBy}}
}

// clampPatch is the clamp's mutation: the rule's nearest bound into spec.replicas. Fixed
// text, which the native-policies component's guard compares exactly.
const clampPatch = "variables.out && variables.action == 'clamp' ? " +
	"[JSONPatch{op: 'add', path: '/spec/replicas', value: variables.want}] : []"

// clampNoticeExpression holds unless a write leaves replicas at a bound of a clamp rule.
func (c *compiler) clampNoticeExpression() string {
	return "!(variables.rule >= 0 && " + c.known() + "variables.action == 'clamp' && variables.replicas >= 0 && " +
		"((variables.max >= 0 && variables.replicas == variables.max) || (variables.min >= 0 && variables.replicas == variables.min)))"
}

// outOfBounds holds unless the deciding rule, of action, has replicas outside its bounds.
func outOfBounds(action policy.Action) string {
	return fmt.Sprintf("!(variables.out && variables.action == %s)", quote(string(action)))
}

// clampPolicy is the MutatingAdmissionPolicy that clamps when conds hold, and its binding.
func (c *compiler) clampPolicy(constraints *admissionregistrationv1.MatchResources, conds []admissionregistrationv1.MatchCondition, vars []admissionregistrationv1.Variable) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
	return c.mutating(c.opts.Name+"-"+clampSuffix, clampPatch, constraints, conds, vars, c.scope(purposeClamp).matchResources())
}

// mutating is the MutatingAdmissionPolicy name that applies the JSON patch expression patch
// when conds hold, and its binding, which selects the namespaces of in (nil: every one).
func (c *compiler) mutating(name, patch string, constraints *admissionregistrationv1.MatchResources, conds []admissionregistrationv1.MatchCondition, vars []admissionregistrationv1.Variable, in *admissionregistrationv1.MatchResources) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
	ignore := admissionregistrationv1.Ignore
	p := &admissionregistrationv1.MutatingAdmissionPolicy{
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: constraints,
			MatchConditions:  conds,
			Variables:        used(vars, patch),
			Mutations: []admissionregistrationv1.Mutation{{
				PatchType: admissionregistrationv1.PatchTypeJSONPatch,
				JSONPatch: &admissionregistrationv1.JSONPatch{Expression: patch},
			}},
			FailurePolicy:      &ignore,
			ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
		},
	}
	b := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: name, MatchResources: in},
	}
	p.TypeMeta, p.ObjectMeta = objectMeta("MutatingAdmissionPolicy", name)
	b.TypeMeta, b.ObjectMeta = objectMeta("MutatingAdmissionPolicyBinding", name)
	return p, b
}

// validating is the ValidatingAdmissionPolicy NAME-suffix for purpose pur, evaluated when
// conds hold, which holds when expr does and otherwise says message, and its binding with the
// validation actions va.
func (c *compiler) validating(suffix string, pur purpose, expr, message string, constraints *admissionregistrationv1.MatchResources, conds []admissionregistrationv1.MatchCondition, vars []admissionregistrationv1.Variable, va ...admissionregistrationv1.ValidationAction) (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	return c.validatingIn(c.opts.Name+"-"+suffix, expr, message, constraints, conds, vars, c.scope(pur).matchResources(), va...)
}

// validatingIn is the ValidatingAdmissionPolicy name, evaluated when conds hold, which holds
// when expr does and otherwise says message, and its binding with the validation actions va,
// which selects the namespaces of in (nil: every one).
func (c *compiler) validatingIn(name, expr, message string, constraints *admissionregistrationv1.MatchResources, conds []admissionregistrationv1.MatchCondition, vars []admissionregistrationv1.Variable, in *admissionregistrationv1.MatchResources, va ...admissionregistrationv1.ValidationAction) (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	reason := metav1.StatusReasonInvalid
	ignore := admissionregistrationv1.Ignore
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: constraints,
			MatchConditions:  conds,
			Variables:        used(vars, expr, message),
			Validations:      []admissionregistrationv1.Validation{{Expression: expr, MessageExpression: message, Reason: &reason}},
			FailurePolicy:    &ignore,
		},
	}
	b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name, ValidationActions: va, MatchResources: in},
	}
	p.TypeMeta, p.ObjectMeta = objectMeta("ValidatingAdmissionPolicy", name)
	b.TypeMeta, b.ObjectMeta = objectMeta("ValidatingAdmissionPolicyBinding", name)
	return p, b
}
