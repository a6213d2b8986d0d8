package cli

import (
	"fmt"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

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
	// Skip: nothing to judge (exempt, owned by a bounded workload, no rule, an apiVersion
	// the API server does not serve), or the deciding rule needs what the input lacks; the
	// message says which.
	Skip Result = "skip"
	// Error: the API server would refuse the object (replicas not a whole number, beyond
	// int32, negative; no name): not judged, and the command exits 2.
	Error Result = "error"
)

// severity orders the results for --fail-on: skip < warn < clamp < deny; pass never fails,
// and skip only with --fail-on skip. An error always fails, with exit 2 (see write).
func (r Result) severity() int {
	switch r {
	case Skip:
		return 1
	case Warn:
		return 2
	case Clamp:
		return 3
	case Deny:
		return 4
	}
	return 0
}

// failOnResults are the values --fail-on accepts, lowest first.
var failOnResults = []Result{Skip, Warn, Clamp, Deny}

// Source says where a judged object was read: a file and the object's first line in it,
// or nothing for an object read from a cluster.
type Source struct {
	File string
	Line int
	// FieldLines are the lines of the object's replica fields that it sets, in the order
	// of replicaFields (spec.replicas, spec.minReplicas, spec.maxReplicas and a
	// ScaledObject's three); 0 for one it does not set.
	FieldLines fieldLineSet
}

// FieldLine is the line of field ("spec.replicas", "spec.maxReplicas") in the file, or
// the object's first line when the object does not set it.
func (s Source) FieldLine(field string) int {
	for i, f := range replicaFields {
		if "spec."+f == field && s.FieldLines[i] > 0 {
			return s.FieldLines[i]
		}
	}
	return s.Line
}

// Target is one bounded object to judge: who it is and the value of the field the policy
// bounds. Workloads bound spec.replicas. A HorizontalPodAutoscaler is a target too: its
// Autoscaler is set, and its Subject is the workload of its scaleTargetRef, whose rule
// decides its range (spec.minReplicas, spec.maxReplicas).
type Target struct {
	Source
	APIVersion string
	// Subject is what the policy is asked about: the workload itself, or an autoscaler's
	// target workload.
	Subject policy.Subject
	// Field and Replicas are the bounded field and its value. For an autoscaler they are
	// spec.maxReplicas, the field of its one result when no end of its range is outside the
	// bounds; each end outside gets a result of its own field.
	Field    string
	Replicas *int32
	// Autoscaler is set when the target is a HorizontalPodAutoscaler.
	Autoscaler *Autoscaler
	// Invalid, when set, says what the API server would refuse in the object: it is an
	// error result, not judged. Unserved says that the API server does not serve its
	// apiVersion: a skip.
	Invalid, Unserved string
}

// Autoscaler is what a HorizontalPodAutoscaler adds to its target.
type Autoscaler struct {
	// Name is the HPA's (its namespace is its target's).
	Name string
	// Range is [spec.minReplicas (1 when omitted), spec.maxReplicas].
	Range policy.Range
	// TargetAPIVersion is its scaleTargetRef's; TargetBounded is false when that names no
	// bounded workload kind: no rule decides, as in the webhook.
	TargetAPIVersion string
	TargetBounded    bool
	// Controller is the HPA's own controller (an ownerReference with controller: true, such
	// as KEDA's ScaledObject): the webhook never patches such an HPA, it warns.
	Controller *metav1.OwnerReference
	// Of names its kind and the fields of its range: policy.HPAFields when zero,
	// policy.ScaledObjectFields for a KEDA ScaledObject.
	Of policy.RangeFields
}

// fields are a.Of, policy.HPAFields when unset.
func (a *Autoscaler) fields() policy.RangeFields {
	if a.Of.Kind == "" {
		return policy.HPAFields
	}
	return a.Of
}

// Kind is the judged object's kind: the workload's, or HorizontalPodAutoscaler.
func (t Target) Kind() string {
	if t.Autoscaler != nil {
		return t.Autoscaler.fields().Kind
	}
	return t.Subject.Kind
}

// Name is the judged object's name.
func (t Target) Name() string {
	if t.Autoscaler != nil {
		return t.Autoscaler.Name
	}
	return t.Subject.Name
}

// Finding is the judgement of one target, or for an autoscaler of one end of its range.
type Finding struct {
	Target
	// Value is the replica count judged, after the API server's default (nil is 1).
	Value int32
	// Verdict is the policy's, for the finding's field.
	Verdict policy.Verdict
	Result  Result
	Message string
	// Elapsed is the time its judgement took (JUnit's time).
	Elapsed time.Duration
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

// Judge answers for t as the webhook answers its CREATE (admission.Decide for a workload,
// the HorizontalPodAutoscaler adapter of /mutate for an autoscaler): exempt, owned (its
// controller is a bounded workload), no rule and unknown labels skip; inside the bounds
// passes; outside, the rule's action decides, with the webhook's own texts: the clamp
// warning of /mutate, the denial of /mutate, the warning of /validate (of /mutate for an
// autoscaler). A workload has one finding; an autoscaler has one for each end of its range
// outside the bounds, else one.
func Judge(snap *policy.Snapshot, t Target) []Finding {
	start := time.Now()
	fs := judge(snap, t)
	for i := range fs {
		fs[i].Elapsed = time.Since(start) / time.Duration(len(fs))
	}
	return fs
}

func judge(snap *policy.Snapshot, t Target) []Finding {
	switch {
	case t.Invalid != "":
		return []Finding{{Target: t, Result: Error, Message: t.Invalid}}
	case t.Unserved != "":
		return []Finding{{Target: t, Result: Skip, Message: t.Unserved}}
	case t.Autoscaler != nil:
		return judgeAutoscaler(snap, t)
	}
	f := judgeWorkload(snap, t)
	if t.Replicas == nil {
		f.Message += omittedReplicas
	}
	return []Finding{f}
}

// omittedReplicas ends the message of a workload that omits spec.replicas.
const omittedReplicas = " (spec.replicas is omitted: 1 is the API server's default)"

// judgeWorkload is Judge for a workload.
func judgeWorkload(snap *policy.Snapshot, t Target) Finding {
	f := Finding{Target: t, Value: policy.Replicas(t.Replicas)}
	if f.Value < 0 {
		// The webhook leaves a negative count to the API server's validation.
		f.Result = Skip
		f.Message = fmt.Sprintf("%s %d is negative: the API server rejects it, the webhook does not judge it", t.Field, f.Value)
		return f
	}
	v := snap.Decide(t.Subject, t.Replicas)
	f.Verdict = v
	e := v.Effect(policy.AtCheck, t.Subject)
	switch f.Result = resultOf(e); f.Result {
	case Pass:
		f.Message = fmt.Sprintf("%s %d is within %s (replica policy rule %q)", t.Field, v.Replicas, v.Rule.Bounds, v.Rule.Name)
	case Skip:
		f.Message = skipMessage(t, v)
	default:
		f.Message = strings.Join(e.Messages, "; ")
	}
	return f
}

// resultOf is the result of the policy's Effect at AtCheck, what /mutate would do with a
// CREATE: a patch is a clamp, a denial a deny, a warning a warn; an allow passes inside the
// bounds and is a skip otherwise (exempt, owned, no rule, or labels the input lacks).
func resultOf(e policy.Effect) Result {
	switch e.Kind {
	case policy.Patch:
		return Clamp
	case policy.Deny:
		return Deny
	case policy.Warn:
		return Warn
	}
	if e.Outcome == policy.OutcomeInBounds {
		return Pass
	}
	return Skip
}

// judgeAutoscaler judges an autoscaler's range by the rule of its target (DecideRange),
// as the webhook's /mutate does: clamp patches the ends outside the bounds (but warns for
// an HPA that its own controller writes), deny rejects, warn warns. Each end outside the
// bounds is a finding of its own, since a result has one field, value and want; the
// webhook's denial is their messages joined by "; ", its clamp warnings are theirs.
func judgeAutoscaler(snap *policy.Snapshot, t Target) []Finding {
	a := t.Autoscaler
	whole := Finding{Target: t, Value: a.Range.Max}
	switch {
	case !a.TargetBounded:
		whole.Verdict = policy.Verdict{Outcome: policy.OutcomeNoRule}
		whole.Result, whole.Message = Skip, fmt.Sprintf("its scaleTargetRef %s %q (apiVersion %q) is not a kind the policy bounds: no rule applies", t.Subject.Kind, t.Subject.Name, a.TargetAPIVersion)
		return []Finding{whole}
	case a.Range.Min > a.Range.Max:
		// The webhook finds nothing to move in an invalid range; the API server rejects it.
		whole.Result, whole.Message = Skip, fmt.Sprintf("%s %d is greater than %s %d: the API server rejects it, the webhook does not judge it", a.fields().Min, a.Range.Min, a.fields().Max, a.Range.Max)
		return []Finding{whole}
	case !a.Range.Valid():
		// Nor in an idle size that is not below the minimum, which KEDA refuses.
		whole.Result, whole.Message = Skip, fmt.Sprintf("%s %d is not below %s %d: KEDA refuses it, the webhook does not judge it", a.fields().Idle, a.Range.Idle, a.fields().Min, a.Range.Min)
		return []Finding{whole}
	}
	v := snap.DecideRangeOf(a.fields(), t.Subject, a.Range)
	whole.Verdict = policy.Verdict{Outcome: v.Outcome, Rule: v.Rule, Replicas: a.Range.Max, Want: v.Want.Max, Missing: v.Missing}
	switch v.Outcome {
	case policy.OutcomeInBounds:
		whole.Result, whole.Message = Pass, fmt.Sprintf("%s range %s is within %s (replica policy rule %q)", v.Kind(), v.Range, v.Rule.Bounds, v.Rule.Name)
		return []Finding{whole}
	case policy.OutcomeOutOfBounds:
	default:
		whole.Result, whole.Message = Skip, skipMessage(t, whole.Verdict)
		return []Finding{whole}
	}
	var fs []Finding
	for _, field := range v.Fields() {
		f := Finding{Target: t, Value: field.Value,
			Verdict: policy.Verdict{Outcome: v.Outcome, Rule: v.Rule, Replicas: field.Value, Want: field.Want}}
		f.Field, f.Replicas = field.Path, &field.Value
		// The verdict for this end alone: its messages are the webhook's for this field.
		one := v
		one.Want = v.Range
		switch field.Path {
		case a.fields().Min:
			one.Want.Min = field.Want
		case a.fields().Max:
			one.Want.Max = field.Want
		default: // the idle size: moved, or removed
			one.Want.Idle, one.Want.HasIdle = field.Want, !field.Removed
			if field.Removed {
				one.Want.Idle = 0
			}
		}
		e := one.Effect(policy.AtCheck, a.Name, t.Subject, policy.OwnerOf(a.Controller))
		f.Result, f.Message = resultOf(e), strings.Join(e.Messages, "; ")
		fs = append(fs, f)
	}
	return fs
}

// skipMessage says why t is skipped: an exempt namespace, an owner that is bounded
// instead, no rule, or what the deciding rule needs that the input lacks.
func skipMessage(t Target, v policy.Verdict) string {
	s := t.Subject
	target := ""
	if t.Autoscaler != nil {
		target = fmt.Sprintf("its target %s %q ", s.Kind, s.Name)
	}
	switch v.Outcome {
	case policy.OutcomeExempt:
		return fmt.Sprintf("namespace %q is exempt", s.Namespace)
	case policy.OutcomeOwned:
		if target != "" {
			return fmt.Sprintf("%sis owned by %s %q, which the policy bounds instead", target, s.Owner.Kind, s.Owner.Name)
		}
		return fmt.Sprintf("owned by %s %q, which the policy bounds instead", s.Owner.Kind, s.Owner.Name)
	case policy.OutcomeNoRule:
		if target != "" {
			return fmt.Sprintf("no rule matches %sand the policy has no default", target)
		}
		return "no rule matches and the policy has no default"
	}
	// OutcomeUnknown.
	if v.Missing == policy.MissingNamespaceLabels {
		return fmt.Sprintf("replica policy rule %q needs the labels of namespace %q, which the input lacks: add its Namespace object to the input, give its labels with --namespace-labels FILE, or read them with --namespaces-from-cluster", v.Rule.Name, s.Namespace)
	}
	if target == "" {
		return fmt.Sprintf("replica policy rule %q needs the %s of %s %q, which the input lacks", v.Rule.Name, v.Missing, s.Kind, s.Name)
	}
	if t.File == "" {
		return fmt.Sprintf("replica policy rule %q needs the labels of %s, which is not in the cluster", v.Rule.Name, strings.TrimSpace(target))
	}
	return fmt.Sprintf("replica policy rule %q needs the labels of %s, which is not in the input: its labels are unknown (add its manifest to the input)", v.Rule.Name, strings.TrimSpace(target))
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
// object. namespace is the namespace of an object that names none. An object whose
// apiVersion the API server does not serve is a target that is skipped (Unserved); one the
// API server would refuse is a target that is an error result (Invalid). err is not nil
// only for what no API server request could hold.
func NewTarget(obj *unstructured.Unstructured, src Source, namespace string, namespaces Namespaces) (t Target, ok bool, err error) {
	if !judged(obj) {
		return Target{}, false, nil
	}
	gvk := obj.GroupVersionKind()
	ns := obj.GetNamespace()
	if ns == "" {
		ns = namespace
	}
	name, named := objectName(obj)
	t = Target{
		Source:     src,
		APIVersion: obj.GetAPIVersion(),
		Subject:    policy.NewSubject(gvk.Group, gvk.Kind, ns, name),
		Field:      "spec.replicas",
	}
	switch gvk.GroupKind() {
	case autoscalerGroupKind:
		t.Field = policy.HPAFields.Max
	case scaledObjectGroupKind:
		t.Field = policy.ScaledObjectFields.Max
	}
	namespaces.fill(&t.Subject)
	switch {
	case notServed(obj) != "":
		t.Unserved = notServed(obj)
		return t, true, nil
	case !named:
		t.Field, t.Invalid = "metadata.name", refused(field.Required(field.NewPath("metadata", "name"), "every object needs a name or a generateName"))
		return t, true, nil
	case gvk.GroupKind() == autoscalerGroupKind:
		return newAutoscalerTarget(obj, t, namespaces), true, nil
	case gvk.GroupKind() == scaledObjectGroupKind:
		return newScaledObjectTarget(obj, t, namespaces), true, nil
	}
	k, _ := workload.Builtin().ForGroupKind(gvk.Group, gvk.Kind)
	replicas, ferr := replicaCount(obj.Object, "spec", "replicas")
	if ferr != nil {
		t.Invalid = refused(ferr)
		return t, true, nil
	}
	typed := k.New()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, typed); err != nil {
		t.Field, t.Invalid = "", oneLine(err.Error())+" (the API server refuses the object, so it is not judged)"
		return t, true, nil
	}
	t.Subject.SetWorkload(obj.GetLabels(), workload.Builtin().Controller(obj.GetOwnerReferences()))
	t.Replicas = replicas
	return t, true, nil
}

// autoscalerGroupKind is HorizontalPodAutoscalers', in autoscaling/v1 and v2 alike;
// scaledObjectGroupKind KEDA's ScaledObjects'.
var (
	autoscalerGroupKind   = schema.GroupKind{Group: "autoscaling", Kind: policy.AutoscalerKind}
	scaledObjectGroupKind = schema.GroupKind{Group: "keda.sh", Kind: policy.ScaledObjectKind}
)

// newAutoscalerTarget completes t, a HorizontalPodAutoscaler (autoscaling/v1 or v2: the
// fields read are the same), into a target whose subject is its scaleTargetRef workload,
// with the labels of its namespace. The workload's labels and controller are unknown until
// Workloads.Resolve finds it. An HPA without the fields the API server requires
// (spec.scaleTargetRef.kind and .name, spec.maxReplicas), or with a range it refuses, is an
// error result, as it is there.
func newAutoscalerTarget(obj *unstructured.Unstructured, t Target, namespaces Namespaces) Target {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "scaleTargetRef"); !found {
		errs = append(errs, field.Required(spec.Child("scaleTargetRef"), "the workload it scales"))
	} else {
		for _, f := range []string{"kind", "name"} {
			if v, _, _ := unstructured.NestedString(obj.Object, "spec", "scaleTargetRef", f); v == "" {
				errs = append(errs, field.Required(spec.Child("scaleTargetRef", f), ""))
			}
		}
	}
	minReplicas, ferr := replicaCount(obj.Object, "spec", "minReplicas")
	if ferr != nil {
		errs = append(errs, ferr)
	}
	maxReplicas, ferr := replicaCount(obj.Object, "spec", "maxReplicas")
	switch {
	case ferr != nil:
		errs = append(errs, ferr)
	case maxReplicas == nil:
		errs = append(errs, field.Required(spec.Child("maxReplicas"), ""))
	}
	if len(errs) > 0 {
		t.Field, t.Invalid = errs[0].Field, refused(errs...)
		return t
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, hpa); err != nil {
		t.Field, t.Invalid = "", oneLine(err.Error())+" (the API server refuses the object, so it is not judged)"
		return t
	}
	ref := hpa.Spec.ScaleTargetRef
	a := &Autoscaler{
		Name:       t.Subject.Name,
		Range:      policy.Range{Min: policy.Replicas(minReplicas), Max: *maxReplicas},
		Controller: metav1.GetControllerOfNoCopy(obj),
	}
	return a.target(t, ref.APIVersion, ref.Kind, ref.Name, namespaces)
}

// target completes t, the autoscaler a, with its target workload apiVersion/kind name: the
// subject the rule is found for, a bounded kind or none (as the webhook resolves it), with
// the labels of its namespace.
func (a *Autoscaler) target(t Target, apiVersion, kind, name string, namespaces Namespaces) Target {
	a.TargetAPIVersion = apiVersion
	group := ""
	if gv, err := schema.ParseGroupVersion(apiVersion); err == nil {
		group = gv.Group
		_, a.TargetBounded = workload.Builtin().ForGroupKind(gv.Group, kind)
	}
	subj := policy.NewSubject(group, kind, t.Subject.Namespace, name)
	namespaces.fill(&subj)
	t.Subject, t.Replicas, t.Autoscaler = subj, &a.Range.Max, a
	return t
}

// newScaledObjectTarget completes t, a KEDA ScaledObject, into a target whose subject is its
// scaleTargetRef (kind default Deployment), with its range as workload.ScaledObjectSpec
// reads it: KEDA's defaults spec.minReplicaCount 0, spec.maxReplicaCount 100, and
// spec.idleReplicaCount where set. A ScaledObject without spec.scaleTargetRef.name, or with
// a count the API server refuses, is an error result.
func newScaledObjectTarget(obj *unstructured.Unstructured, t Target, namespaces Namespaces) Target {
	var errs field.ErrorList
	var spec workload.ScaledObjectSpec
	spec.ScaleTargetRef.Name, _, _ = unstructured.NestedString(obj.Object, "spec", "scaleTargetRef", "name")
	if spec.ScaleTargetRef.Name == "" {
		errs = append(errs, field.Required(field.NewPath("spec", "scaleTargetRef", "name"), "the workload it scales"))
	}
	for _, count := range []struct {
		field string
		to    **int32
	}{{"minReplicaCount", &spec.MinReplicaCount}, {"maxReplicaCount", &spec.MaxReplicaCount}, {"idleReplicaCount", &spec.IdleReplicaCount}} {
		v, ferr := replicaCount(obj.Object, "spec", count.field)
		if ferr != nil {
			errs = append(errs, ferr)
		}
		*count.to = v
	}
	if len(errs) > 0 {
		t.Field, t.Invalid = errs[0].Field, refused(errs...)
		return t
	}
	spec.ScaleTargetRef.APIVersion, _, _ = unstructured.NestedString(obj.Object, "spec", "scaleTargetRef", "apiVersion")
	spec.ScaleTargetRef.Kind, _, _ = unstructured.NestedString(obj.Object, "spec", "scaleTargetRef", "kind")
	ref := spec.ScaleTargetRef.Target() // KEDA scales a Deployment unless told otherwise
	a := &Autoscaler{Name: t.Subject.Name, Range: spec.Range(), Of: policy.ScaledObjectFields, Controller: metav1.GetControllerOfNoCopy(obj)}
	return a.target(t, ref.APIVersion, ref.Kind, ref.Name, namespaces)
}

// Workloads are the bounded workloads known to the caller, by kind, namespace and name: an
// autoscaler's target takes its labels and its controller from them.
type Workloads map[workloadKey]policy.Subject

type workloadKey struct{ group, kind, namespace, name string }

func keyOf(s policy.Subject) workloadKey {
	return workloadKey{group: s.Group, kind: s.Kind, namespace: s.Namespace, name: s.Name}
}

// Add records a workload target's subject.
func (w Workloads) Add(t Target) {
	if t.Autoscaler == nil && t.Invalid == "" && t.Unserved == "" {
		w[keyOf(t.Subject)] = t.Subject
	}
}

// Resolve gives an autoscaler target the labels and controller of its target workload
// when w holds it; otherwise they stay unknown, as for a Scale whose workload the webhook
// has not cached: rules that need them cannot decide.
func (w Workloads) Resolve(t *Target) {
	if t.Autoscaler == nil || !t.Autoscaler.TargetBounded || t.Invalid != "" {
		return
	}
	s, ok := w[keyOf(t.Subject)]
	if !ok {
		return
	}
	t.Subject.Labels, t.Subject.LabelsUnknown, t.Subject.Owner = s.Labels, s.LabelsUnknown, s.Owner
}

// Summary counts the findings by result.
type Summary struct {
	Pass  int `json:"pass"`
	Clamp int `json:"clamp"`
	Deny  int `json:"deny"`
	Warn  int `json:"warn"`
	Skip  int `json:"skip"`
	Error int `json:"error"`
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
		case Error:
			s.Error++
		}
	}
	return s
}
