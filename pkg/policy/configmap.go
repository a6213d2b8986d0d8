package policy

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// LoadConfigMap loads the policy document held by a policy ConfigMap. Field paths in errors
// are those of the policy document; a missing key is reported as data[policy.yaml].
func LoadConfigMap(cm *corev1.ConfigMap, opts Options) (*Snapshot, error) {
	data, ok := cm.Data[ConfigMapKey]
	if !ok {
		return nil, &InvalidError{Errs: field.ErrorList{field.Required(field.NewPath("data").Key(ConfigMapKey), "the policy ConfigMap must hold the policy under this key")}}
	}
	opts.Source = fmt.Sprintf("configmap %s/%s@%s", cm.Namespace, cm.Name, cm.ResourceVersion)
	return Load([]byte(data), opts)
}
