package harness

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/pkg/nativesync"
)

// ScopeBinding returns the matchResources m of a compiled native binding (nil: every
// namespace) narrowed to the namespaces sel selects too: tests share one API server between
// configurations (nativesync.ScopeMatchResources, what --native-policies-namespace-selector
// does).
func ScopeBinding(m *admissionregistrationv1.MatchResources, sel *metav1.LabelSelector) *admissionregistrationv1.MatchResources {
	return nativesync.ScopeMatchResources(m, sel)
}
