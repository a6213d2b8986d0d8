package admission

import (
	"encoding/json"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// referenceDecode is what decodeReplicaFields did before the fast path: encoding/json.
func referenceDecode(raw []byte) (*replicaFields, error) {
	f := &replicaFields{}
	if err := json.Unmarshal(raw, f); err != nil {
		return nil, err
	}
	return f, nil
}

// fieldCases are inputs on which the fast path and encoding/json must agree: canonical
// objects (the fast path answers) and every kind of input it must hand over.
var fieldCases = []string{
	`{"metadata":{"labels":{"app":"web"}},"spec":{"replicas":3}}`,
	` { "spec" : { "replicas" : 0 } , "metadata" : { "name" : "x" } } `,
	`{"spec":{"replicas":null}}`,
	`{"spec":{"replicas":-0}}`,
	`{"spec":{"replicas":2147483647}}`,
	`{"spec":{"replicas":2147483648}}`,
	`{"spec":{"replicas":-2147483649}}`,
	`{"spec":{"replicas":3.0}}`,
	`{"spec":{"replicas":1e1}}`,
	`{"spec":{"replicas":"3"}}`,
	`{"spec":{"replicas":true}}`,
	`{"spec":{}}`,
	`{"spec":null}`,
	`{"spec":[]}`,
	`{"metadata":null}`,
	`{"metadata":{"labels":null}}`,
	`{"metadata":{"labels":{"a":1}}}`,
	`{"metadata":{"labels":{"a":"b","a":"c"}}}`,
	`{"metadata":{"labels":{"a":"\u00e9\n\"x"}}}`,
	`{"metadata":{"labels":{}}}`,
	`{"metadata":{"labels":{"a":null}}}`,
	`{"metadata":{"labels":{"a":"é","b":"","c":"x y"}}}`,
	"{\"metadata\":{\"labels\":{\"a\":\"\xff\"}}}",
	"{\"metadata\":{\"labels\":{\"\xc3\":\"b\"}}}",
	`{"metadata":{"labels":{"a":"b" , "c" : "d"}}}`,
	`{"metadata":{"labels":{"a":["b"]}}}`,
	`{"metadata":{"labels":{"a":"b"}},"metadata":{"labels":{"c":"d"}}}`,
	`{"spec":{"replicas":1},"spec":{"replicas":2}}`,
	`{"spec":{"replicas":1,"replicas":2}}`,
	`{"Spec":{"replicas":4}}`,
	`{"SPEC":{"Replicas":4}}`,
	`{"spec":{"Replicas":4}}`,
	`{"\u0073pec":{"replicas":5}}`,
	`{"spec":{"\u0072eplicas":5}}`,
	`{"ſpec":{"replicas":6}}`,
	`{"metadata":{"Labels":{"x":"y"}}}`,
	`{"metaData":{"labels":{"x":"y"}}}`,
	`{"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"a","args":["x",1,-2.5e+3,true,false,null,{}]}]}}}}`,
	`{"status":{"replicas":9},"spec":{"replicas":3}}`,
	`{}`,
	`null`,
	`[]`,
	`3`,
	`"x"`,
	``,
	`{`,
	`{"spec":{"replicas":3}`,
	`{"spec":{"replicas":3}}}`,
	`{"spec":{"replicas":3}} x`,
	`{"spec":{"replicas":03}}`,
	`{"spec":{"replicas":3,}}`,
	`{"spec":{"replicas":3}"x":1}`,
	`{"a":tru}`,
	`{"a":nul}`,
	`{"a":"\x"}`,
	`{"a":"\u12"}`,
	"{\"a\":\"tab\there\"}",
	`{"a":[1 2]}`,
	`{"a":-}`,
	`{"a":1.}`,
	`{"a":1e}`,
	`{a:1}`,
	"{\"a\":\"\xff\xfe\"}",
}

func TestScanReplicaFieldsAgreesWithEncodingJSON(t *testing.T) {
	fast := 0
	for _, in := range fieldCases {
		checkAgainstReference(t, []byte(in))
		if _, err := scanReplicaFields([]byte(in)); err == nil {
			fast++
		}
	}
	if fast < 5 {
		t.Errorf("the fast path answered only %d inputs: it no longer covers the canonical ones", fast)
	}
}

// The objects kube-apiserver sends, with status and managedFields, must take the fast path.
func TestScanReplicaFieldsTakesAPIServerObjects(t *testing.T) {
	replicas := int32(7)
	ts := metav1.Now()
	objs := []any{
		&appsv1.Deployment{
			TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod", Labels: map[string]string{"app": "web", "tier": "front"},
				Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"apps/v1","kind":"Deployment"}` + "\n"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: "Update", Time: &ts, FieldsType: "FieldsV1",
					FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{}}}`)}}}},
			Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx", Args: []string{"-v", "\"quoted\"", "ü"}}}}}},
			Status: appsv1.DeploymentStatus{Replicas: 3},
		},
		&autoscalingv1.Scale{TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"}, ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: autoscalingv1.ScaleSpec{Replicas: 0}},
		&autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: autoscalingv1.ScaleSpec{Replicas: 12}},
	}
	for _, o := range objs {
		raw, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := scanReplicaFields(raw); err != nil {
			t.Errorf("fast path refused %s", raw)
		}
		checkAgainstReference(t, raw)
	}
}

func checkAgainstReference(t *testing.T, raw []byte) {
	t.Helper()
	want, wantErr := referenceDecode(raw)
	if fast, err := scanReplicaFields(raw); err == nil {
		if wantErr != nil {
			t.Errorf("%q: fast path answered %+v, encoding/json fails: %v", raw, fast, wantErr)
		} else if !reflect.DeepEqual(fast, want) {
			t.Errorf("%q: fast path %+v, encoding/json %+v", raw, fast, want)
		}
	}
	got, err := decodeReplicaFields(raw, "object", nil)
	switch {
	case len(raw) == 0:
		if err == nil {
			t.Errorf("empty input accepted")
		}
	case (err == nil) != (wantErr == nil):
		t.Errorf("%q: decodeReplicaFields error %v, encoding/json error %v", raw, err, wantErr)
	case err != nil && err.Error() != "decoding the object: "+wantErr.Error():
		t.Errorf("%q: error %q, want encoding/json's %q", raw, err, wantErr)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Errorf("%q: decodeReplicaFields %+v, encoding/json %+v", raw, got, want)
	}
}

// FuzzScanReplicaFields: whatever the input, the fast path either hands over or agrees
// with encoding/json. `go test ./pkg/admission -run '^$' -fuzz FuzzScanReplicaFields`
func FuzzScanReplicaFields(f *testing.F) {
	for _, in := range fieldCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkAgainstReference(t, raw)
	})
}

func BenchmarkDecodeReplicaFields(b *testing.B) {
	replicas := int32(7)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod", Labels: map[string]string{"app": "web"}},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "nginx", Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}, Args: []string{"--port=8080", "--verbose"}},
			{Name: "sidecar", Image: "envoy", Command: []string{"envoy", "-c", "/etc/envoy.yaml"}},
		}}}},
	}
	raw, err := json.Marshal(d)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeReplicaFields(raw, "object", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := referenceDecode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
