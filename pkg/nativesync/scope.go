package nativesync

import (
	"maps"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/pkg/native"
)

// Options.Scope confines native mode to the namespaces a label selector selects: every
// compiled binding and the workload webhook entries then select only those (a gradual
// rollout, several installations of replica-policy side by side, a benchmark that shares
// one API server between configurations).

// ScopeMatchResources returns the matchResources m of a compiled binding (nil: every
// namespace) narrowed to the namespaces sel selects too; the compiled namespaceSelector keeps
// its own requirements (pkg/native leaves namespaces out there).
func ScopeMatchResources(m *admissionregistrationv1.MatchResources, sel *metav1.LabelSelector) *admissionregistrationv1.MatchResources {
	out := &admissionregistrationv1.MatchResources{}
	if m != nil {
		out = m.DeepCopy()
	}
	out.NamespaceSelector = andSelectors(out.NamespaceSelector, sel)
	return out
}

// andSelectors is a selector of what both a and b select (nil: everything).
func andSelectors(a, b *metav1.LabelSelector) *metav1.LabelSelector {
	out := &metav1.LabelSelector{}
	for _, s := range []*metav1.LabelSelector{a, b} {
		if s == nil {
			continue
		}
		if len(s.MatchLabels) > 0 {
			if out.MatchLabels == nil {
				out.MatchLabels = map[string]string{}
			}
			maps.Copy(out.MatchLabels, s.MatchLabels)
		}
		out.MatchExpressions = slices.Concat(out.MatchExpressions, s.MatchExpressions)
	}
	return out
}

// scope narrows the bindings of res to Options.Scope.
func (s *Syncer) scope(res *native.Result) {
	if s.opts.Scope == nil {
		return
	}
	if res.ClampBinding != nil {
		res.ClampBinding.Spec.MatchResources = ScopeMatchResources(res.ClampBinding.Spec.MatchResources, s.opts.Scope)
	}
	for _, b := range []*admissionregistrationv1.ValidatingAdmissionPolicyBinding{res.DenyBinding, res.WarnBinding, res.ClampNoticeBinding} {
		if b != nil {
			b.Spec.MatchResources = ScopeMatchResources(b.Spec.MatchResources, s.opts.Scope)
		}
	}
}
