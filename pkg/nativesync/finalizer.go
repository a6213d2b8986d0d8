package nativesync

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Finalizer is on every object the Syncer applies. A deletion then only marks the object
// (metadata.deletionTimestamp), and kube-apiserver keeps enforcing a policy or binding so
// marked (tested against v1.37.2: TestTerminatingPoliciesStayEnforced). The Syncer sees the
// mark, widens the webhook, waits until the API server calls the widened webhook
// (Prober.Widened), and only then releases the object and applies it again: no moment in
// which neither the native policy nor the webhook decides a write.
//
// With the binary gone (uninstalled), nothing releases the objects: a deletion waits until
// the finalizer is removed by hand (docs/native-policies.md, "Removing the native policies").
const Finalizer = "replicapolicy.io/widen-first"

// release removes Finalizer from the live object if it is the one observed (its UID) and is
// being deleted: the API server then deletes it at once, or when the other finalizers are
// gone. It reads the object from the API server (a deletion just made is not in the watch
// yet) and writes with its resourceVersion: a Conflict is left to the sync its event brings.
func (c compiled) release(ctx context.Context, s *Syncer) error {
	live, err := c.res.get(ctx, s, c.name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", c, err)
	}
	m := live.(metav1.Object)
	if m.GetDeletionTimestamp() == nil || (c.uid != "" && m.GetUID() != c.uid) || !slices.Contains(m.GetFinalizers(), Finalizer) {
		return nil
	}
	others := slices.DeleteFunc(slices.Clone(m.GetFinalizers()), func(f string) bool { return f == Finalizer })
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": m.GetResourceVersion(), "finalizers": others}})
	if err != nil {
		return err
	}
	err = c.res.patch(ctx, s, c.name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("removing the finalizer %s of %s: %w", Finalizer, c, err)
	}
	return nil
}
