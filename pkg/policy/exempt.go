package policy

import (
	"maps"
	"slices"
)

// ExemptNamespaces returns the namespaces the snapshot never touches: those exempt whatever
// the policy says (Options.AlwaysExempt) and the policy's exemptNamespaces, as plain names,
// sorted, and shell-style globs, in the order given. Code that enforces the policy elsewhere
// (native admission policies) reads the exemptions from here.
func (s *Snapshot) ExemptNamespaces() (names, globs []string) {
	return slices.Sorted(maps.Keys(s.exempt.names)), s.exempt.globs
}
