package scaler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/replica-policy/replica-policy/pkg/workload"
)

// The recording fakes of the scale subresource and the Event recorder that the Reconcile
// tests (reconcile_test.go, autoscalers_test.go) wire a Reconciler to.

// scaleCall is one request to the fake scale subresource.
type scaleCall struct {
	Verb            string // "update": the scaler sends nothing else
	Kind            string // of the object the subresource belongs to
	Namespace       string
	Name            string
	ResourceVersion string // the Scale's, the write's condition
	Replicas        int32  // the Scale's spec.replicas
	FieldOwner      string // the field manager
}

// cachedRV is the resourceVersion controller-runtime's fake client gives the objects it is
// built with: the cache's view of every workload in these tests.
const cachedRV = "999"

// fakeScale is a client.SubResourceClient for "scale" that serves one workload as the API
// server does: an UPDATE whose Scale carries a resourceVersion other than the workload's is
// answered 409 Conflict; otherwise (or without one, an unconditional write) its replicas are
// stored and the resourceVersion moves on. resourceVersion "" is cachedRV: the workload has
// not changed since the cache saw it. updateErrs are returned by successive calls instead
// (a nil entry means: serve it).
type fakeScale struct {
	mu              sync.Mutex
	replicas        int32
	resourceVersion string
	updateErrs      []error
	calls           []scaleCall
}

var _ client.SubResourceClient = (*fakeScale)(nil)

func popErr(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

func kindOf(obj client.Object) string {
	if k, ok := workload.ForObject(obj); ok {
		return k.Kind
	}
	return fmt.Sprintf("%T", obj)
}

func (f *fakeScale) Get(context.Context, client.Object, client.Object, ...client.SubResourceGetOption) error {
	return errors.New("fakeScale: unexpected GET")
}

func (f *fakeScale) Update(_ context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := (&client.SubResourceUpdateOptions{}).ApplyOptions(opts)
	scale, ok := o.SubResourceBody.(*autoscalingv1.Scale)
	if !ok {
		return fmt.Errorf("fakeScale: UPDATE with body %T, want *autoscalingv1.Scale", o.SubResourceBody)
	}
	f.calls = append(f.calls, scaleCall{Verb: "update", Kind: kindOf(obj), Namespace: obj.GetNamespace(), Name: obj.GetName(),
		ResourceVersion: scale.ResourceVersion, Replicas: scale.Spec.Replicas, FieldOwner: o.FieldManager})
	if err := popErr(&f.updateErrs); err != nil {
		return err
	}
	if scale.Namespace != obj.GetNamespace() || scale.Name != obj.GetName() {
		return apierrors.NewBadRequest(fmt.Sprintf("fakeScale: Scale %s/%s sent to the scale of %s/%s", scale.Namespace, scale.Name, obj.GetNamespace(), obj.GetName()))
	}
	rv := cmp.Or(f.resourceVersion, cachedRV)
	if scale.ResourceVersion != "" && scale.ResourceVersion != rv { // kube-apiserver's answer
		return apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, scale.Name,
			errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	n, err := strconv.Atoi(rv)
	if err != nil {
		return err
	}
	f.replicas, f.resourceVersion = scale.Spec.Replicas, strconv.Itoa(n+1)
	return nil
}

func (f *fakeScale) Create(context.Context, client.Object, client.Object, ...client.SubResourceCreateOption) error {
	return errors.New("fakeScale: unexpected CREATE")
}

func (f *fakeScale) Patch(context.Context, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
	return errors.New("fakeScale: unexpected PATCH")
}

func (f *fakeScale) Apply(context.Context, runtime.ApplyConfiguration, ...client.SubResourceApplyOption) error {
	return errors.New("fakeScale: unexpected APPLY")
}

func (f *fakeScale) recorded() []scaleCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// recordedEvent is one Event, its note formatted.
type recordedEvent struct {
	Regarding string // namespace/name
	Type      string
	Reason    string
	Action    string
	Note      string
}

// fakeRecorder is a recorder.EventRecorder that remembers every Event.
type fakeRecorder struct {
	mu     sync.Mutex
	events []recordedEvent
}

func (f *fakeRecorder) Eventf(regarding, _ runtime.Object, eventtype, reason, action, note string, args ...any) {
	ref := fmt.Sprintf("%T", regarding)
	if m, err := meta.Accessor(regarding); err == nil {
		ref = m.GetNamespace() + "/" + m.GetName()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, recordedEvent{Regarding: ref, Type: eventtype, Reason: reason, Action: action, Note: fmt.Sprintf(note, args...)})
}

func (f *fakeRecorder) AnnotatedEventf(regarding, related runtime.Object, _ map[string]string, eventtype, reason, action, note string, args ...any) {
	f.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

func (f *fakeRecorder) recorded() []recordedEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}
