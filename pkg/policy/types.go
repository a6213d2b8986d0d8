// Package policy holds the ReplicaPolicy type: its strict parsing, its validation (every
// mistake named by its field path), its evaluation (first matching rule wins) and the
// immutable Snapshot that the admission webhook and the scaler read.
package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// APIVersion is the only apiVersion a policy document may declare.
	APIVersion = "replicapolicy.io/v1alpha1"
	// Kind is the only kind a policy document may declare.
	Kind = "ReplicaPolicy"
	// ConfigMapKey is the key of the policy ConfigMap that holds the policy document.
	ConfigMapKey = "policy.yaml"
	// DefaultNamespace is the policy ConfigMap's namespace unless a flag says otherwise; it
	// is also the webhook's own namespace, which is always exempt.
	DefaultNamespace = "replica-policy-system"
	// DefaultConfigMapName is the policy ConfigMap's name unless a flag says otherwise.
	DefaultConfigMapName = "replica-policy"
	// DefaultRuleName is the name under which the policy's default bounds appear in
	// warnings, Events and metrics: default behaves as a last rule of that name.
	DefaultRuleName = "default"
)

// Action is what happens to a workload whose replicas fall outside a rule's bounds.
type Action string

const (
	// ActionClamp moves replicas to the nearest bound (webhook and scaler).
	ActionClamp Action = "clamp"
	// ActionDeny rejects creates and replica-changing updates outside the bounds.
	ActionDeny Action = "deny"
	// ActionWarn allows the write with a warning.
	ActionWarn Action = "warn"
)

// Actions lists the supported actions, in the order error messages show them.
var Actions = []Action{ActionClamp, ActionDeny, ActionWarn}

// ReplicaPolicy is the document stored under ConfigMapKey in the policy ConfigMap.
type ReplicaPolicy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// ExemptNamespaces are never touched; names or shell-style globs.
	ExemptNamespaces []string `json:"exemptNamespaces,omitempty"`
	// Default applies where no rule matches; absent means no bounds.
	Default *BoundsSpec `json:"default,omitempty"`
	// Rules are evaluated top to bottom; the first rule that matches decides.
	Rules []Rule `json:"rules,omitempty"`
}

// BoundsSpec is the part of a rule that says what is allowed: the bounds and the action.
type BoundsSpec struct {
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`
	// AllowZero lets a workload scale to 0 even when MinReplicas > 0.
	AllowZero bool `json:"allowZero,omitempty"`
	// Action defaults to clamp.
	Action Action `json:"action,omitempty"`
}

// Rule selects workloads (every matcher it names must match) and bounds their replicas.
type Rule struct {
	// Name is required, unique and a DNS-1123 label.
	Name string `json:"name"`
	// Namespaces are names or shell-style globs ("team-*").
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespaceSelector matches the labels of the workload's Namespace.
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Selector matches the workload's own metadata.labels.
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Kinds are the workload kinds the rule bounds: a built-in kind (BuiltinKinds) by its
	// exact name, or "Kind.group" for a custom resource. Absent means every kind.
	Kinds []string `json:"kinds,omitempty"`

	BoundsSpec `json:",inline"`
}
