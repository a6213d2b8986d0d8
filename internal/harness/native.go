package harness

import (
	"maps"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScopeBinding returns the matchResources m of a compiled native binding (nil: every
// namespace) narrowed to the namespaces sel selects too: tests and benchmarks share one API
// server between configurations, and the compiled namespaceSelector must keep its own
// requirements (pkg/native leaves namespaces out there).
func ScopeBinding(m *admissionregistrationv1.MatchResources, sel *metav1.LabelSelector) *admissionregistrationv1.MatchResources {
	out := &admissionregistrationv1.MatchResources{}
	if m != nil {
		out = m.DeepCopy()
	}
	ns := &metav1.LabelSelector{}
	if out.NamespaceSelector != nil {
		ns = out.NamespaceSelector
	}
	if len(sel.MatchLabels) > 0 {
		if ns.MatchLabels == nil {
			ns.MatchLabels = map[string]string{}
		}
		maps.Copy(ns.MatchLabels, sel.MatchLabels)
	}
	ns.MatchExpressions = slices.Concat(ns.MatchExpressions, sel.MatchExpressions)
	out.NamespaceSelector = ns
	return out
}
