package cli

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// Result is what the webhook would do with one object's CREATE.
type Result string

const (
	// Pass: inside the bounds of the deciding rule.
	Pass Result = "pass"
	// Clamp: the webhook would change spec.replicas (Git and the cluster would disagree).
	Clamp Result = "clamp"
	// Deny: the webhook would reject the object.
	Deny Result = "deny"
	// Warn: the webhook would admit it with a warning.
	Warn Result = "warn"
	// Skip: nothing to judge (exempt, owned by a bounded workload, no rule), or the deciding rule needs what the input
	// lacks; the message says which.
	Skip Result = "skip"
)

// severity orders the results for --fail-on: warn < clamp < deny; pass and skip never fail.
func (r Result) severity() int {
	switch r {
	case Warn:
		return 1
	case Clamp:
		return 2
	case Deny:
		return 3
	}
	return 0
}

// failOnResults are the values --fail-on accepts, lowest first.
var failOnResults = []Result{Warn, Clamp, Deny}

// Source says where a judged object was read: a file and the object's first line in it,
// or nothing for an object read from a cluster.
type Source struct {
	File string
	Line int
}

// Target is one bounded object to judge: who it is and the value of the field the policy
// bounds. Workloads bound spec.replicas; when HorizontalPodAutoscalers are bounded, they
// become targets too, with their own field (spec.minReplicas/maxReplicas) and value.
type Target struct {
	Source
	APIVersion string
	Subject    policy.Subject
	Field      string
	Replicas   *int32
}

// Finding is the judgement of one target.
type Finding struct {
	Target
	// Value is the replica count judged, after the API server's default (nil is 1).
	Value   int32
	Verdict policy.Verdict
	Result  Result
	Message string
}

// Rule is the deciding rule, nil when none decides.
func (f Finding) Rule() *policy.CompiledRule {
	switch f.Verdict.Outcome {
	case policy.OutcomeUnknown, policy.OutcomeInBounds, policy.OutcomeOutOfBounds:
		return f.Verdict.Rule
	}
	return nil
}

// Want is the value the deciding rule wants, nil when no rule could decide.
func (f Finding) Want() *int32 {
	switch f.Verdict.Outcome {
	case policy.OutcomeInBounds, policy.OutcomeOutOfBounds:
		w := f.Verdict.Want
		return &w
	}
	return nil
}

// Judge answers for t as the webhook answers its CREATE (admission.Decide): exempt, owned
// (its controller is a bounded workload), no rule and unknown labels skip; inside the bounds passes; outside, the rule's action decides,
// with the webhook's own texts: the clamp warning of /mutate, the denial of /mutate, the
// warning of /validate.
func Judge(snap *policy.Snapshot, t Target) Finding {
	f := Finding{Target: t, Value: policy.Replicas(t.Replicas)}
	if f.Value < 0 {
		// The webhook leaves a negative count to the API server's validation.
		f.Result = Skip
		f.Message = fmt.Sprintf("%s %d is negative: the API server rejects it, the webhook does not judge it", t.Field, f.Value)
		return f
	}
	v := snap.Decide(t.Subject, t.Replicas)
	f.Verdict = v
	switch v.Outcome {
	case policy.OutcomeExempt:
		f.Result, f.Message = Skip, fmt.Sprintf("namespace %q is exempt", t.Subject.Namespace)
	case policy.OutcomeOwned:
		o := t.Subject.Owner
		f.Result, f.Message = Skip, fmt.Sprintf("owned by %s %q, which the policy bounds instead", o.Kind, o.Name)
	case policy.OutcomeNoRule:
		f.Result, f.Message = Skip, "no rule matches and the policy has no default"
	case policy.OutcomeUnknown:
		f.Result, f.Message = Skip, unknownMessage(v, t.Subject)
	case policy.OutcomeInBounds:
		f.Result, f.Message = Pass, fmt.Sprintf("%s %d is within %s (replica policy rule %q)", t.Field, v.Replicas, v.Rule.Bounds, v.Rule.Name)
	case policy.OutcomeOutOfBounds:
		switch v.Rule.Action {
		case policy.ActionClamp:
			f.Result, f.Message = Clamp, v.ClampMessage()
		case policy.ActionDeny:
			f.Result, f.Message = Deny, v.OutOfBoundsMessage(t.Subject.Kind, t.Subject.Name)
		default:
			f.Result, f.Message = Warn, v.OutOfBoundsMessage(t.Subject.Kind, t.Subject.Name)
		}
	}
	return f
}

func unknownMessage(v policy.Verdict, s policy.Subject) string {
	if v.Missing == policy.MissingNamespaceLabels {
		return fmt.Sprintf("replica policy rule %q needs the labels of namespace %q, which the input lacks: add its Namespace object to the input", v.Rule.Name, s.Namespace)
	}
	return fmt.Sprintf("replica policy rule %q needs the %s of %s %q, which the input lacks", v.Rule.Name, v.Missing, s.Kind, s.Name)
}

// namespaceLabelsKey is the label the API server sets on every Namespace, with its name.
const namespaceLabelsKey = "kubernetes.io/metadata.name"

// Namespaces holds the labels of the Namespaces known to the caller: from the input's
// Namespace objects (check, explain) or from the cluster (audit).
type Namespaces map[string]map[string]string

// Add records a Namespace's labels, with the name label the API server adds to each.
func (n Namespaces) Add(name string, labels map[string]string) {
	l := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		l[k] = v
	}
	l[namespaceLabelsKey] = name
	n[name] = l
}

// NewTarget turns an object of a bounded kind into a target; ok is false for any other
// object. namespace is the namespace of an object that names none.
func NewTarget(obj *unstructured.Unstructured, src Source, namespace string, namespaces Namespaces) (t Target, ok bool, err error) {
	gvk := obj.GroupVersionKind()
	for _, k := range workload.Kinds {
		if k.Group != gvk.Group || k.Kind != gvk.Kind {
			continue
		}
		typed := k.New()
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, typed); err != nil {
			return Target{}, false, fmt.Errorf("%s %q: %w", gvk.Kind, obj.GetName(), err)
		}
		ns := obj.GetNamespace()
		if ns == "" {
			ns = namespace
		}
		nsLabels, known := namespaces[ns]
		return Target{
			Source:     src,
			APIVersion: obj.GetAPIVersion(),
			Subject: policy.Subject{
				Group:                  gvk.Group,
				Kind:                   gvk.Kind,
				Owner:                  boundedOwner(obj),
				Namespace:              ns,
				Name:                   obj.GetName(),
				Labels:                 obj.GetLabels(),
				NamespaceLabels:        nsLabels,
				NamespaceLabelsUnknown: !known,
			},
			Field:    "spec.replicas",
			Replicas: k.Replicas(typed),
		}, true, nil
	}
	return Target{}, false, nil
}

// boundedOwner is the object's controller when it is itself a bounded workload (a
// ReplicaSet that a Deployment manages, once ReplicaSets are bounded): the policy bounds
// the owner, not the object, as in the webhook.
func boundedOwner(obj *unstructured.Unstructured) *policy.Owner {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			return nil
		}
		for _, k := range workload.Kinds {
			if k.Group == gv.Group && k.Kind == ref.Kind {
				return &policy.Owner{Group: gv.Group, Kind: ref.Kind, Name: ref.Name}
			}
		}
	}
	return nil
}

// Summary counts the findings by result.
type Summary struct {
	Pass  int `json:"pass"`
	Clamp int `json:"clamp"`
	Deny  int `json:"deny"`
	Warn  int `json:"warn"`
	Skip  int `json:"skip"`
}

func summarize(fs []Finding) Summary {
	var s Summary
	for _, f := range fs {
		switch f.Result {
		case Pass:
			s.Pass++
		case Clamp:
			s.Clamp++
		case Deny:
			s.Deny++
		case Warn:
			s.Warn++
		case Skip:
			s.Skip++
		}
	}
	return s
}
