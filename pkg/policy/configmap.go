package policy

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// LoadConfigMap loads the policy document held by a policy ConfigMap. Field paths in errors
// are those of the policy document; a missing key is reported as data[policy.yaml].
func LoadConfigMap(cm *corev1.ConfigMap, opts Options) (*Snapshot, error) {
	size := 0
	for k, v := range cm.Data {
		size += len(k) + len(v)
	}
	for k, v := range cm.BinaryData {
		size += len(k) + len(v)
	}
	if size > MaxConfigMapData {
		return nil, &InvalidError{Errs: field.ErrorList{tooLarge(field.NewPath("data"), "the ConfigMap's data", size)}}
	}
	data, ok := cm.Data[ConfigMapKey]
	if !ok {
		return nil, &InvalidError{Errs: field.ErrorList{field.Required(field.NewPath("data").Key(ConfigMapKey), "the policy ConfigMap must hold the policy under this key")}}
	}
	opts.Source = fmt.Sprintf("configmap %s/%s@%s", cm.Namespace, cm.Name, cm.ResourceVersion)
	return Load([]byte(data), opts)
}

// MaxConfigMapData is the most data a ConfigMap holds, keys and values of data and
// binaryData together: the API server refuses a larger one (its validation of ConfigMaps,
// core.MaxSecretSize, 1 MiB).
const MaxConfigMapData = 1 << 20

// tooLarge is the error of a policy that no ConfigMap can hold, what being size bytes.
func tooLarge(fp *field.Path, what string, size int) *field.Error {
	return &field.Error{Type: field.ErrorTypeTooLong, Field: fp.String(), BadValue: field.OmitValueType{},
		Detail: fmt.Sprintf("%s is %d bytes: a ConfigMap holds at most 1 MiB (%d bytes) of data, keys included, so the API server would refuse it", what, size, MaxConfigMapData)}
}
