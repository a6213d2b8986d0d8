package bench

import (
	"fmt"
	"math"
	"strings"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// Bounds of the clamp that every configuration of the end-to-end benchmark enforces: the
// built-in policies, the reference webhook and replica-policy's rule for its namespace.
const (
	ClampMin = 1
	ClampMax = 50
)

// exampleRules are the rules of manifests/base/policy.yaml: the benchmark's policy carries
// them after its own, so that matching is that of a realistic policy (literal namespaces
// through the index, globs, selectors), not of a single rule.
const exampleRules = `- name: prod-web
  namespaces: [prod, "prod-*"]
  selector:
    matchExpressions:
    - {key: app, operator: In, values: [web, api]}
  minReplicas: 2
  maxReplicas: 10
- name: batch
  namespaceSelector:
    matchLabels: {tier: batch}
  minReplicas: 1
  maxReplicas: 20
  allowZero: true
- name: databases
  selector:
    matchLabels: {replicapolicy.io/class: database}
  minReplicas: 3
  maxReplicas: 7
  action: deny
- name: dev-large
  namespaces: ["dev-*", "team-*-dev"]
  maxReplicas: 5
  action: warn
`

// PolicyDoc returns the benchmark's policy: a clamp to [ClampMin, ClampMax] in namespace
// oursNS (rule bench-clamp) and, under another name so that its decisions can be counted
// apart, in bandNS (rule bench-band); a clamp to at most scaleMax in scaleNS (rule
// bench-scaler, the scaler benchmark); then the example policy's rules and default.
func PolicyDoc(oursNS, bandNS, scaleNS string, scaleMax int32) string {
	var b strings.Builder
	b.WriteString("apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\n")
	b.WriteString("exemptNamespaces: [kube-system, kube-public, kube-node-lease]\n")
	fmt.Fprintf(&b, "default: {minReplicas: %d, maxReplicas: %d, action: clamp}\n", ClampMin, ClampMax)
	b.WriteString("rules:\n")
	fmt.Fprintf(&b, "- name: %s\n  namespaces: [%s]\n  minReplicas: %d\n  maxReplicas: %d\n", RuleOurs, oursNS, ClampMin, ClampMax)
	if bandNS != "" {
		fmt.Fprintf(&b, "- name: %s\n  namespaces: [%s]\n  minReplicas: %d\n  maxReplicas: %d\n", RuleBand, bandNS, ClampMin, ClampMax)
	}
	if scaleNS != "" {
		fmt.Fprintf(&b, "- name: bench-scaler\n  namespaces: [%s]\n  maxReplicas: %d\n", scaleNS, scaleMax)
	}
	b.WriteString(exampleRules)
	return b.String()
}

// Rule names of the end-to-end benchmark's policy.
const (
	RuleOurs = "bench-clamp"
	RuleBand = "bench-band"
)

// AlwaysAllowedBand returns the replicas every rule of snap, and its default, allows: the
// intersection of their bounds (a rule's allowZero is left out, conservatively). A write
// inside it cannot be clamped, denied or warned about by any rule, whatever the workload's
// namespace and labels. ok is false when the intersection is empty.
func AlwaysAllowedBand(snap *policy.Snapshot) (lo, hi int32, ok bool) {
	lo, hi = 0, math.MaxInt32
	for _, r := range snap.Rules() {
		if r.Bounds.Min != nil {
			lo = max(lo, *r.Bounds.Min)
		}
		if r.Bounds.Max != nil {
			hi = min(hi, *r.Bounds.Max)
		}
	}
	return lo, hi, lo <= hi
}
