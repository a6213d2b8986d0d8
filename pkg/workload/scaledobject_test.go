package workload

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// A ScaledObject as KEDA stores it decodes into workload.ScaledObject with KEDA's defaults
// for what it omits, and every other field dropped.
func TestScaledObjectDecode(t *testing.T) {
	scheme := runtime.NewScheme()
	AddScaledObjectToScheme(scheme)
	decode := serializer.NewCodecFactory(scheme).UniversalDeserializer().Decode
	for _, tc := range []struct {
		name, spec string
		target     ScaledObjectTarget
		r          policy.Range
	}{
		{"KEDA's defaults", `{"scaleTargetRef":{"name":"web"}}`,
			ScaledObjectTarget{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}, policy.Range{Min: 0, Max: 100}},
		{"all set", `{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"StatefulSet","name":"q"},"idleReplicaCount":0,"minReplicaCount":2,"maxReplicaCount":7,"triggers":[{"type":"cron"}]}`,
			ScaledObjectTarget{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "q"}, policy.Range{Min: 2, Max: 7, HasIdle: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := `{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","metadata":{"name":"so","namespace":"prod"},"spec":` + tc.spec + `,"status":{"hpaName":"keda-hpa-so"}}`
			obj, gvk, err := decode([]byte(raw), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			so, ok := obj.(*ScaledObject)
			if !ok || gvk.GroupKind() != ScaledObjectGroupKind {
				t.Fatalf("decoded %T as %v", obj, gvk)
			}
			if got := so.Spec.ScaleTargetRef.Target(); got != tc.target {
				t.Errorf("target %+v, want %+v", got, tc.target)
			}
			if got := so.Spec.Range(); got != tc.r {
				t.Errorf("range %v, want %v", got, tc.r)
			}
			// The copy shares no pointer with the original.
			cp := so.DeepCopyObject().(*ScaledObject)
			if cp.Spec.MinReplicaCount != nil {
				*cp.Spec.MinReplicaCount = 99
				if *so.Spec.MinReplicaCount == 99 {
					t.Error("DeepCopy shares spec.minReplicaCount")
				}
			}
		})
	}
	list := &ScaledObjectList{Items: []ScaledObject{{Spec: ScaledObjectSpec{IdleReplicaCount: ptr.To[int32](1)}}}}
	cp := list.DeepCopyObject().(*ScaledObjectList)
	*cp.Items[0].Spec.IdleReplicaCount = 5
	if *list.Items[0].Spec.IdleReplicaCount != 1 {
		t.Error("the list's DeepCopy shares its items' fields")
	}
}
