package nativesync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	admissionregistrationv1client "k8s.io/client-go/kubernetes/typed/admissionregistration/v1"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/pkg/native"
)

// The compiled objects: four resources, each under the names native.Names gives. A live
// object is as the Syncer wants it when the fields its field manager applied (managedFields)
// hold exactly the compiled object: an edit by anyone else moves the fields it changes to
// its own manager, a deletion leaves nothing, and both are drift.

// resource is one of the four admission policy resources.
type resource struct {
	kind string
	obj  runtime.Object // an empty object of the kind, for the watch
	get  func(ctx context.Context, c *Syncer, name string) (runtime.Object, error)
	// list and watch serve the Syncer's watch.
	list  func(ctx context.Context, c *Syncer, opts metav1.ListOptions) (runtime.Object, error)
	watch func(ctx context.Context, c *Syncer, opts metav1.ListOptions) (watch.Interface, error)
	// applied extracts the fields FieldManager applied to a live object.
	applied func(live runtime.Object) (any, error)
	patch   func(ctx context.Context, c *Syncer, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions) error
	del     func(ctx context.Context, c *Syncer, name string, opts metav1.DeleteOptions) error
}

// resources, bindings first: a binding is deleted before its policy (a binding without its
// policy is an error the API server reports); for apply, Objects gives policies first.
var resources = []resource{
	typed[*admissionregistrationv1.MutatingAdmissionPolicyBindingList](policyClients.MutatingAdmissionPolicyBindings, admissionregistrationv1ac.ExtractMutatingAdmissionPolicyBinding),
	typed[*admissionregistrationv1.MutatingAdmissionPolicyList](policyClients.MutatingAdmissionPolicies, admissionregistrationv1ac.ExtractMutatingAdmissionPolicy),
	typed[*admissionregistrationv1.ValidatingAdmissionPolicyBindingList](policyClients.ValidatingAdmissionPolicyBindings, admissionregistrationv1ac.ExtractValidatingAdmissionPolicyBinding),
	typed[*admissionregistrationv1.ValidatingAdmissionPolicyList](policyClients.ValidatingAdmissionPolicies, admissionregistrationv1ac.ExtractValidatingAdmissionPolicy),
}

// policyClients gives the typed client of each admission policy kind; resources names them
// by method expression (policyClients.MutatingAdmissionPolicies).
type policyClients = admissionregistrationv1client.AdmissionregistrationV1Interface

// typedClient is what the Syncer uses of the typed client of one admission policy kind: O is
// the kind's object type, L its list's.
type typedClient[O, L runtime.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (O, error)
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (O, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// typed describes one admission policy kind by its typed client (client picks it from the
// Syncer's clientset) and the function that extracts the fields a field manager applied.
// The kind is the name of the object's Go type: admissionregistration/v1 names its types
// after their kinds.
func typed[L, O runtime.Object, A any, C typedClient[O, L]](client func(policyClients) C, extract func(O, string) (A, error)) resource {
	of := func(s *Syncer) C { return client(s.client.AdmissionregistrationV1()) }
	t := reflect.TypeFor[O]().Elem()
	return resource{
		kind: t.Name(),
		obj:  reflect.New(t).Interface().(runtime.Object),
		get: func(ctx context.Context, s *Syncer, name string) (runtime.Object, error) {
			return of(s).Get(ctx, name, metav1.GetOptions{})
		},
		list: func(ctx context.Context, s *Syncer, opts metav1.ListOptions) (runtime.Object, error) {
			return of(s).List(ctx, opts)
		},
		watch: func(ctx context.Context, s *Syncer, opts metav1.ListOptions) (watch.Interface, error) {
			return of(s).Watch(ctx, opts)
		},
		applied: func(live runtime.Object) (any, error) { return extract(live.(O), FieldManager) },
		patch: func(ctx context.Context, s *Syncer, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions) error {
			_, err := of(s).Patch(ctx, name, pt, data, opts)
			return err
		},
		del: func(ctx context.Context, s *Syncer, name string, opts metav1.DeleteOptions) error {
			return of(s).Delete(ctx, name, opts)
		},
	}
}

func resourceOf(kind string) *resource {
	for i := range resources {
		if resources[i].kind == kind {
			return &resources[i]
		}
	}
	return nil
}

// compiled is one object Compile returned, as the Syncer applies it.
type compiled struct {
	res  *resource
	name string
	data []byte    // the apply patch
	want any       // data decoded, without empty fields: what the live object's applied fields must be
	uid  types.UID // of the live object to delete: only the one observed is deleted
	// terminating: the live object has been deleted and waits for its finalizers (Finalizer).
	terminating bool
}

func compiledOf(obj runtime.Object) (compiled, error) {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	res := resourceOf(kind)
	m, ok := obj.(metav1.Object)
	if res == nil || !ok {
		return compiled{}, fmt.Errorf("cannot apply %T", obj)
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return compiled{}, err
	}
	want, err := pruned(data)
	if err != nil {
		return compiled{}, err
	}
	return compiled{res: res, name: m.GetName(), data: data, want: want}, nil
}

func (c compiled) String() string { return c.res.kind + " " + c.name }

// upToDate reports whether the live object exists and holds, as applied by FieldManager,
// exactly the compiled object, and nothing in its spec that another field manager set.
// replace is set when the live object must go before the compiled one is applied: another
// manager owns fields of its spec (an apply cannot take away list elements or fields that
// only someone else set, a matchCondition added by hand), or it is being deleted (someone
// deleted it; Finalizer holds it, still enforced, until the webhook is wide).
func (c *compiled) upToDate(ctx context.Context, s *Syncer) (ok, replace bool, err error) {
	live, err := s.read(ctx, c.res, c.name)
	if apierrors.IsNotFound(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("reading %s: %w", c, err)
	}
	m, _ := live.(metav1.Object)
	if m.GetDeletionTimestamp() != nil {
		c.uid, c.terminating = m.GetUID(), true
		return false, true, nil
	}
	for _, mf := range m.GetManagedFields() {
		if mf.Manager != FieldManager && mf.FieldsV1 != nil && bytes.Contains(mf.FieldsV1.Raw, []byte(`"f:spec"`)) {
			c.uid = m.GetUID()
			return false, true, nil
		}
	}
	ok, err = c.sameApplied(live)
	return ok, false, err
}

func (c compiled) sameApplied(live runtime.Object) (bool, error) {
	ac, err := c.res.applied(live)
	if err != nil {
		return false, fmt.Errorf("reading the fields applied to %s: %w", c, err)
	}
	data, err := json.Marshal(ac)
	if err != nil {
		return false, err
	}
	got, err := pruned(data)
	if err != nil {
		return false, err
	}
	return reflect.DeepEqual(got, c.want), nil
}

func (c compiled) apply(ctx context.Context, s *Syncer) error {
	if err := c.res.patch(ctx, s, c.name, types.ApplyPatchType, c.data, metav1.PatchOptions{FieldManager: FieldManager, Force: ptr.To(true)}); err != nil {
		return fmt.Errorf("applying %s: %w", c, err)
	}
	return nil
}

// pruned decodes JSON, leaving out nulls, empty objects and empty lists (a typed object
// marshals "creationTimestamp": null and "status": {}, which no apply sets),
// metadata.managedFields, and a matchPolicy of Equivalent, the API server's default, which it
// counts among the applier's fields of a matchResources it applied without one.
func pruned(data []byte) (any, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return prune(v), nil
}

func prune(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range t {
			if k == "managedFields" || k == "status" || k == "matchPolicy" && e == "Equivalent" {
				continue
			}
			if e = prune(e); e != nil {
				out[k] = e
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		var out []any
		for _, e := range t {
			if e = prune(e); e != nil {
				out = append(out, e)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	return v
}

// liveExtra lists the compiled objects that exist but are not in want: those a policy no
// longer needs.
func (s *Syncer) liveExtra(ctx context.Context, want []compiled) ([]compiled, error) {
	var extra []compiled
	for i := range resources {
		r := &resources[i]
		for _, name := range native.Names(s.opts.Compile) {
			if containsObject(want, r, name) {
				continue
			}
			live, err := s.read(ctx, r, name)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading %s %s: %w", r.kind, name, err)
			}
			m := live.(metav1.Object)
			extra = append(extra, compiled{res: r, name: name, uid: m.GetUID(), terminating: m.GetDeletionTimestamp() != nil})
		}
	}
	return extra, nil
}

func containsObject(objs []compiled, r *resource, name string) bool {
	for _, o := range objs {
		if o.res == r && o.name == name {
			return true
		}
	}
	return false
}

// remove deletes the object observed (its UID: a watch cache a moment behind never makes the
// Syncer delete a newer object of the same name), unless it is being deleted already, and
// then releases it (release). Another object under that name (Conflict) is left to the sync
// its event brings. The caller has made sure the webhook decides what the object did.
func (c compiled) remove(ctx context.Context, s *Syncer) error {
	if !c.terminating {
		opts := metav1.DeleteOptions{}
		if c.uid != "" {
			opts.Preconditions = &metav1.Preconditions{UID: &c.uid}
		}
		err := c.res.del(ctx, s, c.name, opts)
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("deleting %s: %w", c, err)
		}
	}
	return c.release(ctx, s)
}

// read returns the live object kind/name: from the Syncer's watch when it runs (no request),
// else from the API server.
func (s *Syncer) read(ctx context.Context, r *resource, name string) (runtime.Object, error) {
	if st := s.stores[r.kind+"/"+name]; st != nil {
		obj, ok, err := st.GetByKey(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, apierrors.NewNotFound(schema.GroupResource{Group: admissionregistrationv1.GroupName, Resource: r.kind}, name)
		}
		return obj.(runtime.Object), nil
	}
	return r.get(ctx, s, name)
}
