package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// readFile reads a file, or stdin for "-".
func readFile(path string, stdin io.Reader) (name string, data []byte, err error) {
	if path == "-" {
		data, err = io.ReadAll(stdin)
		if err != nil {
			return stdinName, nil, fmt.Errorf("reading stdin: %w", err)
		}
		return stdinName, data, nil
	}
	data, err = os.ReadFile(path)
	return path, data, err
}

// loadPolicy loads the policy in data, as the webhook does: a ReplicaPolicy document, or a
// ConfigMap manifest holding one under data["policy.yaml"] (also when that ConfigMap is
// one document of several, as in a kustomize build). An invalid policy is returned as a
// *policy.InvalidError listing every problem, parsing and validation together.
func loadPolicy(data []byte, opts policy.Options) (*policy.Snapshot, error) {
	if cm := policyConfigMap(data); cm != nil {
		return policy.LoadConfigMap(cm, opts)
	}
	return policy.Load(data, opts)
}

// policyConfigMap returns the ConfigMap of data that holds a policy: the only document if
// it is a ConfigMap, else the only ConfigMap with a policy.yaml key; nil when data is not
// one of those (and is then read as a policy document).
func policyConfigMap(data []byte) *corev1.ConfigMap {
	docs, err := splitDocuments("", data)
	if err != nil {
		return nil
	}
	var configMaps, withPolicy []*corev1.ConfigMap
	objects := 0
	for _, d := range docs {
		// Only a ConfigMap is decoded whole: a document whose kind is plainly something
		// else (a ReplicaPolicy of 50 MB) is not parsed twice, and one too large for a
		// ConfigMap is refused by policy.Load before it is parsed at all.
		if kind, found := topLevelKind(d.data); found {
			if kind == "" {
				continue
			}
			objects++
			if kind != "ConfigMap" {
				continue
			}
		}
		cm := &corev1.ConfigMap{}
		if err := sigsyaml.Unmarshal(d.data, cm); err != nil || cm.Kind == "" {
			continue
		}
		if _, found := topLevelKind(d.data); !found {
			objects++
		}
		if cm.Kind != "ConfigMap" {
			continue
		}
		configMaps = append(configMaps, cm)
		if _, ok := cm.Data[policy.ConfigMapKey]; ok {
			withPolicy = append(withPolicy, cm)
		}
	}
	switch {
	case objects == 1 && len(configMaps) == 1:
		return configMaps[0] // LoadConfigMap names a missing key
	case len(withPolicy) == 1:
		return withPolicy[0]
	}
	return nil
}

// topLevelKind finds a block-style document's kind without parsing it: the value of its
// `kind:` line at the first column ("" when it has none). found is false for a document
// that may be in flow style (JSON), which must be parsed to be known.
func topLevelKind(doc []byte) (kind string, found bool) {
	seen := false
	for line := range strings.Lines(string(doc)) {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") || t == "---" {
			continue
		}
		if !seen && strings.HasPrefix(t, "{") {
			return "", false
		}
		seen = true
		if rest, ok := strings.CutPrefix(line, "kind:"); ok {
			rest, _, _ = strings.Cut(rest, "#")
			return strings.Trim(strings.TrimSpace(rest), `"'`), true
		}
	}
	return "", true
}

// policyErrors returns the field errors of an invalid policy, nil for any other error.
func policyErrors(err error) field.ErrorList {
	var invalid *policy.InvalidError
	if errors.As(err, &invalid) {
		return invalid.Errs
	}
	return nil
}

// loadPolicyFile loads the policy of a file for check, explain and audit: an unreadable
// file or an invalid policy is an error of one line, naming the file.
func loadPolicyFile(path string, stdin io.Reader, opts policy.Options) (*policy.Snapshot, error) {
	name, data, err := readFile(path, stdin)
	if err != nil {
		return nil, err
	}
	snap, err := loadPolicy(data, opts)
	if errs := policyErrors(err); errs != nil {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("%s: invalid replica policy (run validate for one error a line): %s", name, strings.Join(msgs, "; "))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return snap, nil
}
