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
// through the index, globs, selectors), not of a single rule. Under --native-policies the
// databases rule (a selector, no namespaces) sends to the webhook the /scale writes of every
// namespace that no earlier rule without a selector decides: not those of the benchmark's
// namespaces, whose rules come first.
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

// PolicyNamespaces are the namespaces the benchmark's policy has rules for; an empty one
// gets no rule.
type PolicyNamespaces struct {
	// Ours and Band get a clamp to [ClampMin, ClampMax] each (rules bench-clamp and
	// bench-band, so that their decisions can be counted apart).
	Ours, Band string
	// Native gets the same clamp without a selector (rule bench-native); NativeSelector gets
	// it with a selector that the benchmark's Deployments match (rule bench-native-selector).
	Native, NativeSelector string
	// Scale gets a clamp to at most the scaler benchmark's bound (rule bench-scaler).
	Scale string
	// Exempt are exempt besides the system namespaces: those of the configurations without a
	// policy, whose writes outside the bounds the scaler must not correct.
	Exempt []string
}

// PolicyDoc returns the benchmark's policy: a rule for each namespace of ns (the scaler's at
// most scaleMax), then the example policy's rules and default.
func PolicyDoc(ns PolicyNamespaces, scaleMax int32) string {
	var b strings.Builder
	b.WriteString("apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\n")
	fmt.Fprintf(&b, "exemptNamespaces: [%s]\n", strings.Join(append([]string{"kube-system", "kube-public", "kube-node-lease"}, ns.Exempt...), ", "))
	fmt.Fprintf(&b, "default: {minReplicas: %d, maxReplicas: %d, action: clamp}\n", ClampMin, ClampMax)
	b.WriteString("rules:\n")
	clamp := func(rule, namespace, selector string) {
		if namespace == "" {
			return
		}
		fmt.Fprintf(&b, "- name: %s\n  namespaces: [%q]\n%s  minReplicas: %d\n  maxReplicas: %d\n", rule, namespace, selector, ClampMin, ClampMax)
	}
	clamp(RuleOurs, ns.Ours, "")
	clamp(RuleBand, ns.Band, "")
	clamp(RuleNative, ns.Native, "")
	clamp(RuleNativeSelector, ns.NativeSelector, "  selector:\n    matchLabels: {"+NativeSelectorLabel+"}\n")
	if ns.Scale != "" {
		fmt.Fprintf(&b, "- name: bench-scaler\n  namespaces: [%s]\n  maxReplicas: %d\n", ns.Scale, scaleMax)
	}
	b.WriteString(exampleRules)
	return b.String()
}

// Rule names of the end-to-end benchmark's policy.
const (
	RuleOurs           = "bench-clamp"
	RuleBand           = "bench-band"
	RuleNative         = "bench-native"
	RuleNativeSelector = "bench-native-selector"
)

// NativeSelectorLabel is the selector of rule bench-native-selector: a label of
// harness.TypicalDeployment, so that the rule decides every write of the benchmark.
const NativeSelectorLabel = "team: payments"

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
