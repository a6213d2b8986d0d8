package admission

import (
	"fmt"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// Fixtures shared by the tests of this package: a Lookup backed by maps, and admission
// requests written the way kube-apiserver sends them.

// fakeLookup answers from maps; an absent key is "not in the cache".
type fakeLookup struct {
	workloads   map[string]map[string]string      // "namespace/name" -> labels
	controllers map[string]*metav1.OwnerReference // "namespace/name" -> bounded controller
	namespaces  map[string]map[string]string      // name -> labels
	calls       atomic.Int64
}

func (l *fakeLookup) WorkloadLabels(kind workload.Kind, namespace, name string) (map[string]string, *metav1.OwnerReference, bool) {
	l.calls.Add(1)
	if _, ok := workload.Builtin().ForGroupKind(kind.Group, kind.Kind); !ok && kind.Group != "example.com" {
		panic(fmt.Sprintf("WorkloadLabels asked for kind %q", kind.Kind))
	}
	lbls, ok := l.workloads[namespace+"/"+name]
	return lbls, l.controllers[namespace+"/"+name], ok
}

func (l *fakeLookup) NamespaceLabels(namespace string) (map[string]string, bool) {
	l.calls.Add(1)
	lbls, ok := l.namespaces[namespace]
	return lbls, ok
}

// panicLookup panics for requests in namespace "boom" and answers like an empty, synced
// cache otherwise.
type panicLookup struct{}

func (panicLookup) WorkloadLabels(_ workload.Kind, namespace, _ string) (map[string]string, *metav1.OwnerReference, bool) {
	if namespace == "boom" {
		panic("lookup exploded")
	}
	return nil, nil, false
}

func (panicLookup) NamespaceLabels(namespace string) (map[string]string, bool) {
	if namespace == "boom" {
		panic("lookup exploded")
	}
	return map[string]string{}, true
}

// mustLoad compiles a policy document, with the webhook's own namespace always exempt as
// cmd/webhook configures it.
func mustLoad(t testing.TB, doc string) *policy.Snapshot {
	t.Helper()
	snap, err := policy.Load([]byte(doc), policy.Options{AlwaysExempt: []string{ownNamespace}})
	if err != nil {
		t.Fatalf("policy.Load: %v\n%s", err, doc)
	}
	return snap
}

// mustStore returns a Store holding doc.
func mustStore(t testing.TB, doc string) *policystore.Store {
	t.Helper()
	s := policystore.NewStore(policy.Options{AlwaysExempt: []string{ownNamespace}})
	if _, err := s.Apply(policyConfigMap(doc)); err != nil {
		t.Fatalf("Store.Apply: %v", err)
	}
	return s
}

const ownNamespace = policy.DefaultNamespace

// policyConfigMap is the policy ConfigMap holding doc under policy.yaml.
func policyConfigMap(doc string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ownNamespace, Name: policy.DefaultConfigMapName, ResourceVersion: "1"},
		Data:       map[string]string{policy.ConfigMapKey: doc},
	}
}
