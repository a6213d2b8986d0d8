package policy

import (
	"maps"
	"slices"
)

// ExemptNamespaces returns the patterns of the namespaces the snapshot never touches: the
// namespaces exempt whatever the policy says (Options.AlwaysExempt) and the policy's
// exemptNamespaces, the names sorted, then the globs in the order given. Code that enforces
// the policy elsewhere (native admission policies) reads the exemptions from here.
func (s *Snapshot) ExemptNamespaces() []string {
	return append(slices.Sorted(maps.Keys(s.exempt.names)), s.exempt.globs...)
}
