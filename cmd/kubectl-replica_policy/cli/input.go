package cli

import (
	"fmt"
	"math"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// What check reads of an object before judging it: whether the API server serves its
// apiVersion, and whether it would accept its replica fields. An object it would refuse is
// an error result, never judged with a value the API server would never store (a count
// beyond int32 wrapped around, a string read as 0).

// autoscalerVersions are the versions of HorizontalPodAutoscaler that the API server
// serves (autoscaling/v2beta1 and v2beta2 were removed in Kubernetes 1.25 and 1.26).
var autoscalerVersions = []string{"v1", "v2"}

// workloadGroups are the groups that once served the built-in workload kinds: extensions
// and apps/v1beta1, v1beta2 were removed in Kubernetes 1.16.
var workloadGroups = []string{"apps", "extensions"}

// judged reports whether obj is of a kind check judges, served or not: a built-in workload
// kind in any version of its group (or of extensions), or a HorizontalPodAutoscaler.
func judged(obj *unstructured.Unstructured) bool {
	_, ok := servedKind(obj)
	return ok
}

// servedKind returns, for an object of a kind check judges, the apiVersion the API server
// serves that kind as, and whether obj is of such a kind at all.
func servedKind(obj *unstructured.Unstructured) (served string, ok bool) {
	gvk := obj.GroupVersionKind()
	if gvk.GroupKind() == scaledObjectGroupKind {
		return "keda.sh/v1alpha1", true
	}
	if gvk.GroupKind() == autoscalerGroupKind {
		for _, v := range autoscalerVersions {
			if gvk.Version == v {
				return obj.GetAPIVersion(), true
			}
		}
		return "autoscaling/v2", true
	}
	for _, k := range workload.Kinds {
		if k.Kind != gvk.Kind {
			continue
		}
		for _, g := range workloadGroups {
			if gvk.Group == g {
				return k.GroupVersionKind().GroupVersion().String(), true
			}
		}
	}
	return "", false
}

// notServed is the skip message of an object whose apiVersion the API server does not
// serve, "" when it serves it.
func notServed(obj *unstructured.Unstructured) string {
	served, _ := servedKind(obj)
	if served == obj.GetAPIVersion() {
		return ""
	}
	return fmt.Sprintf("apiVersion %q is not served by the API server (it serves %s as %s): kubectl apply refuses it, so it is not judged",
		obj.GetAPIVersion(), obj.GetKind(), served)
}

// replicaCount reads the replica count at path in obj as the API server would: absent or
// null is nil (the server's default applies), a whole number from 0 to 2^31-1 is kept, and
// anything else (a string, a fraction, a negative count, one beyond int32) is an error
// naming the field, for the API server refuses it.
func replicaCount(obj map[string]any, path ...string) (*int32, *field.Error) {
	v, found, _ := unstructured.NestedFieldNoCopy(obj, path...)
	fp := field.NewPath(path[0], path[1:]...)
	if !found || v == nil {
		return nil, nil
	}
	var f float64
	switch n := v.(type) {
	case int64:
		f = float64(n)
	case float64:
		f = n
	default:
		bad := any(field.OmitValueType{})
		if s, ok := v.(string); ok {
			bad = s
		}
		return nil, field.TypeInvalid(fp, bad, fmt.Sprintf("must be a whole number, not %s", policy.JSONKind(v)))
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		v = int64(f) // shown as 99999999999, not 9.9999999999e+10
	}
	switch {
	case f != math.Trunc(f):
		return nil, field.Invalid(fp, v, "must be a whole number")
	case f < 0:
		return nil, field.Invalid(fp, v, "must be greater than or equal to 0")
	case f > math.MaxInt32:
		return nil, field.Invalid(fp, v, fmt.Sprintf("must be at most %d (a 32-bit integer)", math.MaxInt32))
	}
	r := int32(f)
	return &r, nil
}

// refused is the message of an error result: what the API server would refuse.
func refused(errs ...*field.Error) string {
	msg := ""
	for i, e := range errs {
		if i > 0 {
			msg += "; "
		}
		msg += e.Error()
	}
	return msg + " (the API server refuses the object, so it is not judged)"
}

// objectName is the name an object is judged under: its name, or for one that only has a
// generateName, that prefix and "*". ok is false for an object with neither, which the
// API server refuses.
func objectName(obj *unstructured.Unstructured) (name string, ok bool) {
	if n := obj.GetName(); n != "" {
		return n, true
	}
	if g := obj.GetGenerateName(); g != "" {
		return g + "*", true
	}
	return "", false
}

// fill sets the labels of subj's namespace, or says they are unknown.
func (n Namespaces) fill(subj *policy.Subject) {
	l, ok := n[subj.Namespace]
	subj.SetNamespaceLabels(l, ok)
}
