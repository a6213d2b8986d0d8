package admission

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// Fixtures shared by the tests of this package: a Lookup backed by maps, and admission
// requests written the way kube-apiserver sends them.

// fakeLookup answers from maps; an absent key is "not in the cache".
type fakeLookup struct {
	workloads  map[string]map[string]string // "namespace/name" -> labels
	namespaces map[string]map[string]string // name -> labels
	calls      atomic.Int64
}

func (l *fakeLookup) WorkloadLabels(kind workload.Kind, namespace, name string) (map[string]string, bool) {
	l.calls.Add(1)
	if kind.Kind != "Deployment" {
		panic(fmt.Sprintf("WorkloadLabels asked for kind %q", kind.Kind))
	}
	lbls, ok := l.workloads[namespace+"/"+name]
	return lbls, ok
}

func (l *fakeLookup) NamespaceLabels(namespace string) (map[string]string, bool) {
	l.calls.Add(1)
	lbls, ok := l.namespaces[namespace]
	return lbls, ok
}

// panicLookup panics for requests in namespace "boom" and answers like an empty, synced
// cache otherwise.
type panicLookup struct{}

func (panicLookup) WorkloadLabels(_ workload.Kind, namespace, _ string) (map[string]string, bool) {
	if namespace == "boom" {
		panic("lookup exploded")
	}
	return nil, false
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

const ownNamespace = "replica-policy-system"

func ptr[T any](v T) *T { return &v }

// deploymentJSON is an apps/v1 Deployment as kube-apiserver sends it to a webhook: after
// defaulting, with managedFields, the pod template and an empty status. replicas nil
// leaves spec.replicas out (which defaulting never does, but a webhook must not rely on).
func deploymentJSON(namespace, name string, replicas *int32, labels map[string]string) []byte {
	lbls, _ := json.Marshal(labels)
	repl := ""
	if replicas != nil {
		repl = fmt.Sprintf(`"replicas":%d,`, *replicas)
	}
	return []byte(fmt.Sprintf(`{"kind":"Deployment","apiVersion":"apps/v1",`+
		`"metadata":{"name":%[1]q,"namespace":%[2]q,"uid":"0b7c1d4e-2f8a-4a47-9c55-0e1e6f0f6a11","resourceVersion":"48213","generation":3,`+
		`"creationTimestamp":"2026-03-02T10:15:04Z","labels":%[3]s,`+
		`"annotations":{"deployment.kubernetes.io/revision":"2","kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"annotations\":{},\"name\":\"web\"}}\n"},`+
		`"managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"apps/v1","time":"2026-03-02T10:15:04Z","fieldsType":"FieldsV1",`+
		`"fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app":{}}},`+
		`"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},`+
		`"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}},`+
		`{"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1","time":"2026-03-02T10:16:40Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{"f:deployment.kubernetes.io/revision":{}}},"f:status":{"f:availableReplicas":{},"f:conditions":{},"f:observedGeneration":{},"f:readyReplicas":{},"f:replicas":{},"f:updatedReplicas":{}}},"subresource":"status"}]},`+
		`"spec":{%[4]s"selector":{"matchLabels":{"app":"web"}},`+
		`"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"registry.k8s.io/nginx:1.27","ports":[{"containerPort":80,"protocol":"TCP"}],`+
		`"resources":{"requests":{"cpu":"100m","memory":"64Mi"}},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],`+
		`"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler"}},`+
		`"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%%","maxSurge":"25%%"}},"revisionHistoryLimit":10,"progressDeadlineSeconds":600},`+
		`"status":{"observedGeneration":3,"replicas":3,"updatedReplicas":3,"readyReplicas":3,"availableReplicas":3}}`,
		name, namespace, lbls, repl))
}

// scaleJSON is an autoscaling/v1 Scale as kube-apiserver sends it for deployments/scale:
// spec.replicas is omitempty, so a scale to 0 arrives as "spec":{}.
func scaleJSON(namespace, name string, replicas int32) []byte {
	spec := "{}"
	if replicas != 0 {
		spec = fmt.Sprintf(`{"replicas":%d}`, replicas)
	}
	return []byte(fmt.Sprintf(`{"kind":"Scale","apiVersion":"autoscaling/v1",`+
		`"metadata":{"name":%q,"namespace":%q,"uid":"0b7c1d4e-2f8a-4a47-9c55-0e1e6f0f6a11","resourceVersion":"48213","creationTimestamp":"2026-03-02T10:15:04Z"},`+
		`"spec":%s,"status":{"replicas":3,"selector":"app=web"}}`, name, namespace, spec))
}

// review describes one AdmissionReview request.
type review struct {
	uid                 string
	op                  admissionv1.Operation
	namespace, name     string
	kind                string // "Deployment", "Scale", "ConfigMap", "Pod", ...
	group, resource     string // of the resource: "apps", "deployments"
	subResource         string
	object, oldObject   []byte
	dryRun              bool
	kindGroup, kindVers string // of the kind; derived from kind when empty
}

// deploymentReview is a CREATE (old == nil) or UPDATE of a Deployment.
func deploymentReview(uid, namespace, name string, old, replicas *int32, labels map[string]string) review {
	r := review{uid: uid, op: admissionv1.Create, namespace: namespace, name: name, kind: "Deployment", group: "apps", resource: "deployments",
		object: deploymentJSON(namespace, name, replicas, labels)}
	if old != nil {
		r.op = admissionv1.Update
		r.oldObject = deploymentJSON(namespace, name, old, labels)
	}
	return r
}

// scaleReview is an UPDATE of deployments/scale.
func scaleReview(uid, namespace, name string, old, replicas int32) review {
	return review{uid: uid, op: admissionv1.Update, namespace: namespace, name: name, kind: "Scale", group: "apps", resource: "deployments",
		subResource: "scale", object: scaleJSON(namespace, name, replicas), oldObject: scaleJSON(namespace, name, old)}
}

// JSON renders the AdmissionReview the way kube-apiserver does (admission.k8s.io/v1,
// kind and requestKind, resource and requestResource, userInfo, options).
func (r review) JSON() []byte {
	kg, kv := r.kindGroup, r.kindVers
	if kg == "" && kv == "" {
		switch r.kind {
		case "Scale":
			kg, kv = "autoscaling", "v1"
		case "Deployment", "StatefulSet", "ReplicaSet":
			kg, kv = "apps", "v1"
		default:
			kg, kv = "", "v1"
		}
	}
	opts := map[admissionv1.Operation]string{
		admissionv1.Create: `{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl-client-side-apply","fieldValidation":"Strict"}`,
		admissionv1.Update: `{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl","fieldValidation":"Strict"}`,
		admissionv1.Delete: `{"kind":"DeleteOptions","apiVersion":"meta.k8s.io/v1","propagationPolicy":"Background"}`,
	}[r.op]
	if opts == "" {
		opts = "null"
	}
	raw := func(b []byte) string {
		if b == nil {
			return "null"
		}
		return string(b)
	}
	var sub strings.Builder
	if r.subResource != "" {
		fmt.Fprintf(&sub, `"subResource":%q,"requestSubResource":%q,`, r.subResource, r.subResource)
	}
	return []byte(fmt.Sprintf(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{`+
		`"uid":%q,"kind":{"group":%q,"version":%q,"kind":%q},"resource":{"group":%q,"version":"v1","resource":%q},%s`+
		`"requestKind":{"group":%q,"version":%q,"kind":%q},"requestResource":{"group":%q,"version":"v1","resource":%q},`+
		`"name":%q,"namespace":%q,"operation":%q,`+
		`"userInfo":{"username":"kubernetes-admin","groups":["kubeadm:cluster-admins","system:authenticated"]},`+
		`"object":%s,"oldObject":%s,"dryRun":%t,"options":%s}}`,
		r.uid, kg, kv, r.kind, r.group, r.resource, sub.String(),
		kg, kv, r.kind, r.group, r.resource,
		r.name, r.namespace, r.op,
		raw(r.object), raw(r.oldObject), r.dryRun, opts))
}

// Request decodes the review JSON as the webhook does, into controller-runtime's Request.
func (r review) Request(t testing.TB) admission.Request {
	t.Helper()
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(r.JSON(), &ar); err != nil {
		t.Fatalf("test fixture is not an AdmissionReview: %v", err)
	}
	return admission.Request{AdmissionRequest: *ar.Request}
}

// policyConfigMap is the policy ConfigMap holding doc under policy.yaml.
func policyConfigMap(doc string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ownNamespace, Name: "replica-policy", ResourceVersion: "1"},
		Data:       map[string]string{policy.ConfigMapKey: doc},
	}
}
