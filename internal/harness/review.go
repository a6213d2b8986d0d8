package harness

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// DeploymentJSON is an apps/v1 Deployment as kube-apiserver sends it to a webhook: after
// defaulting, with managedFields, the pod template and an empty status. replicas nil
// leaves spec.replicas out (which defaulting never does, but a webhook must not rely on).
func DeploymentJSON(namespace, name string, replicas *int32, labels map[string]string) []byte {
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

// ScaleJSON is an autoscaling/v1 Scale as kube-apiserver sends it for deployments/scale:
// spec.replicas is omitempty, so a scale to 0 arrives as "spec":{}.
func ScaleJSON(namespace, name string, replicas int32) []byte {
	spec := "{}"
	if replicas != 0 {
		spec = fmt.Sprintf(`{"replicas":%d}`, replicas)
	}
	return []byte(fmt.Sprintf(`{"kind":"Scale","apiVersion":"autoscaling/v1",`+
		`"metadata":{"name":%q,"namespace":%q,"uid":"0b7c1d4e-2f8a-4a47-9c55-0e1e6f0f6a11","resourceVersion":"48213","creationTimestamp":"2026-03-02T10:15:04Z"},`+
		`"spec":%s,"status":{"replicas":3,"selector":"app=web"}}`, name, namespace, spec))
}

// Review is one AdmissionReview request, rendered by JSON as kube-apiserver sends it.
type Review struct {
	UID                    string
	Operation              admissionv1.Operation
	Namespace, Name        string
	Kind                   string // "Deployment", "Scale", "ConfigMap", "Pod", ...
	Group, Resource        string // of the resource: "apps", "deployments"
	SubResource            string
	Object, OldObject      []byte
	DryRun                 bool
	KindGroup, KindVersion string // of the kind; derived from Kind when empty
	// UserInfo is the requester; empty renders a cluster admin using kubectl.
	UserInfo *authenticationv1.UserInfo
	// Options is the request's options object; nil renders kubectl's for the operation.
	Options []byte
}

// DeploymentReview is a CREATE (old == nil) or UPDATE of a Deployment.
func DeploymentReview(uid, namespace, name string, old, replicas *int32, labels map[string]string) Review {
	r := Review{UID: uid, Operation: admissionv1.Create, Namespace: namespace, Name: name, Kind: "Deployment", Group: "apps", Resource: "deployments",
		Object: DeploymentJSON(namespace, name, replicas, labels)}
	if old != nil {
		r.Operation = admissionv1.Update
		r.OldObject = DeploymentJSON(namespace, name, old, labels)
	}
	return r
}

// ScaleReview is an UPDATE of deployments/scale.
func ScaleReview(uid, namespace, name string, old, replicas int32) Review {
	return Review{UID: uid, Operation: admissionv1.Update, Namespace: namespace, Name: name, Kind: "Scale", Group: "apps", Resource: "deployments",
		SubResource: "scale", Object: ScaleJSON(namespace, name, replicas), OldObject: ScaleJSON(namespace, name, old)}
}

// JSON renders the AdmissionReview the way kube-apiserver does (admission.k8s.io/v1,
// kind and requestKind, resource and requestResource, userInfo, options).
func (r Review) JSON() []byte {
	kg, kv := r.KindGroup, r.KindVersion
	if kg == "" && kv == "" {
		switch r.Kind {
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
	}[r.Operation]
	if r.Options != nil {
		opts = string(r.Options)
	}
	if opts == "" {
		opts = "null"
	}
	user := `{"username":"kubernetes-admin","groups":["kubeadm:cluster-admins","system:authenticated"]}`
	if r.UserInfo != nil {
		b, _ := json.Marshal(r.UserInfo)
		user = string(b)
	}
	raw := func(b []byte) string {
		if b == nil {
			return "null"
		}
		return string(b)
	}
	var sub strings.Builder
	if r.SubResource != "" {
		fmt.Fprintf(&sub, `"subResource":%q,"requestSubResource":%q,`, r.SubResource, r.SubResource)
	}
	return []byte(fmt.Sprintf(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{`+
		`"uid":%q,"kind":{"group":%q,"version":%q,"kind":%q},"resource":{"group":%q,"version":"v1","resource":%q},%s`+
		`"requestKind":{"group":%q,"version":%q,"kind":%q},"requestResource":{"group":%q,"version":"v1","resource":%q},`+
		`"name":%q,"namespace":%q,"operation":%q,`+
		`"userInfo":%s,`+
		`"object":%s,"oldObject":%s,"dryRun":%t,"options":%s}}`,
		r.UID, kg, kv, r.Kind, r.Group, r.Resource, sub.String(),
		kg, kv, r.Kind, r.Group, r.Resource,
		r.Name, r.Namespace, r.Operation, user,
		raw(r.Object), raw(r.OldObject), r.DryRun, opts))
}

// Request decodes the review JSON as the webhook does, into controller-runtime's Request.
func (r Review) Request(t testing.TB) admission.Request {
	t.Helper()
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(r.JSON(), &ar); err != nil {
		t.Fatalf("test fixture is not an AdmissionReview: %v", err)
	}
	return admission.Request{AdmissionRequest: *ar.Request}
}

// WorkloadJSON is an object of any workload kind (apiVersion "apps/v1" and kind
// "StatefulSet", or a custom resource's) as kube-apiserver sends it, with a pod template,
// managedFields, the controller ownerReference owner when not nil, and a status. replicas
// nil leaves spec.replicas out.
func WorkloadJSON(apiVersion, kind, namespace, name string, replicas *int32, labels map[string]string, owner *metav1.OwnerReference) []byte {
	lbls, _ := json.Marshal(labels)
	repl := ""
	if replicas != nil {
		repl = fmt.Sprintf(`"replicas":%d,`, *replicas)
	}
	owners := ""
	if owner != nil {
		b, _ := json.Marshal([]metav1.OwnerReference{*owner})
		owners = fmt.Sprintf(`"ownerReferences":%s,`, b)
	}
	return []byte(fmt.Sprintf(`{"kind":%[5]q,"apiVersion":%[6]q,`+
		`"metadata":{"name":%[1]q,"namespace":%[2]q,"uid":"5f0c1d4e-2f8a-4a47-9c55-0e1e6f0f6a12","resourceVersion":"48213","generation":3,`+
		`"creationTimestamp":"2026-03-02T10:15:04Z","labels":%[3]s,%[7]s`+
		`"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":%[6]q,"time":"2026-03-02T10:15:04Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:replicas":{}}}}]},`+
		`"spec":{%[4]s"selector":{"matchLabels":{"app":"web"}},`+
		`"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"registry.k8s.io/nginx:1.27"}]}}},`+
		`"status":{"replicas":3}}`,
		name, namespace, lbls, repl, kind, apiVersion, owners))
}

// WorkloadReview is a CREATE (old == nil) or UPDATE of an object of kind, served at
// group/resource (apiVersion group/v1, or v1 for the core group's absence: the built-in
// kinds are apps/v1).
func WorkloadReview(uid, group, kind, resource, namespace, name string, old, replicas *int32, labels map[string]string, owner *metav1.OwnerReference) Review {
	apiVersion := group + "/v1"
	r := Review{UID: uid, Operation: admissionv1.Create, Namespace: namespace, Name: name, Kind: kind, Group: group, Resource: resource,
		KindGroup: group, KindVersion: "v1",
		Object: WorkloadJSON(apiVersion, kind, namespace, name, replicas, labels, owner)}
	if old != nil {
		r.Operation = admissionv1.Update
		r.OldObject = WorkloadJSON(apiVersion, kind, namespace, name, old, labels, owner)
	}
	return r
}

// ScaleReviewOf is an UPDATE of the scale subresource of group/resource
// ("apps", "statefulsets").
func ScaleReviewOf(uid, group, resource, namespace, name string, old, replicas int32) Review {
	r := ScaleReview(uid, namespace, name, old, replicas)
	r.Group, r.Resource = group, resource
	return r
}

// HPA describes a HorizontalPodAutoscaler for AutoscalerJSON: its target (a workload of
// TargetKind, apiVersion TargetAPIVersion, "apps/v1" when empty), its range (Min nil leaves
// spec.minReplicas out) and its controller, when not nil (KEDA's ScaledObject).
type HPA struct {
	Namespace, Name              string
	TargetAPIVersion, TargetKind string
	TargetName                   string
	Min                          *int32
	Max                          int32
	Owner                        *metav1.OwnerReference
}

// AutoscalerJSON is h as kube-apiserver sends an autoscaling/v2 HorizontalPodAutoscaler to
// a webhook: with metrics, behavior, managedFields and a status.
func AutoscalerJSON(h HPA) []byte {
	apiVersion := h.TargetAPIVersion
	if apiVersion == "" {
		apiVersion = "apps/v1"
	}
	minReplicas := ""
	if h.Min != nil {
		minReplicas = fmt.Sprintf(`"minReplicas":%d,`, *h.Min)
	}
	owners := ""
	if h.Owner != nil {
		b, _ := json.Marshal([]metav1.OwnerReference{*h.Owner})
		owners = fmt.Sprintf(`"ownerReferences":%s,`, b)
	}
	return []byte(fmt.Sprintf(`{"kind":"HorizontalPodAutoscaler","apiVersion":"autoscaling/v2",`+
		`"metadata":{"name":%q,"namespace":%q,"uid":"0b7e4f0e-64b1-4f7c-a3c5-5d0c8d1f2e33","resourceVersion":"5120",%s`+
		`"creationTimestamp":"2026-03-02T10:15:04Z","managedFields":[{"manager":"kubectl","operation":"Update","apiVersion":"autoscaling/v2","time":"2026-03-02T10:15:04Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:maxReplicas":{}}}}]},`+
		`"spec":{"scaleTargetRef":{"apiVersion":%q,"kind":%q,"name":%q},%s"maxReplicas":%d,`+
		`"metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":80}}}],`+
		`"behavior":{"scaleDown":{"stabilizationWindowSeconds":300,"selectPolicy":"Max","policies":[{"type":"Percent","value":100,"periodSeconds":15}]}}},`+
		`"status":{"currentReplicas":3,"desiredReplicas":3,"currentMetrics":null}}`,
		h.Name, h.Namespace, owners, apiVersion, h.TargetKind, h.TargetName, minReplicas, h.Max))
}

// AutoscalerReview is a CREATE (old == nil) or UPDATE of the HorizontalPodAutoscaler h,
// sent as autoscaling/v2.
func AutoscalerReview(uid string, old *HPA, h HPA) Review {
	r := Review{UID: uid, Operation: admissionv1.Create, Namespace: h.Namespace, Name: h.Name, Kind: "HorizontalPodAutoscaler",
		Group: "autoscaling", Resource: "horizontalpodautoscalers", KindGroup: "autoscaling", KindVersion: "v2", Object: AutoscalerJSON(h)}
	if old != nil {
		r.Operation = admissionv1.Update
		r.OldObject = AutoscalerJSON(*old)
	}
	return r
}
