package bench

import (
	"context"
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// builtinMatch is what the two policies share: Deployments and their Scale, the replicas
// variable (a Scale omits spec.replicas when it is 0), and the condition that skips updates
// that leave replicas unchanged.
const builtinMatch = `  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [deployments, deployments/scale]
  variables:
  - name: replicas
    expression: "has(object.spec.replicas) ? object.spec.replicas : 0"
  matchConditions:
  - name: replicas-changed
    expression: "request.operation != 'UPDATE' || (has(object.spec.replicas) ? object.spec.replicas : 0) != (has(oldObject.spec.replicas) ? oldObject.spec.replicas : 0)"
`

// builtinPolicies is the clamp as the API server's own admission policies write it: a
// MutatingAdmissionPolicy that clamps spec.replicas of Deployments and their Scale, and a
// ValidatingAdmissionPolicy that rejects what is still outside the bounds, both skipping
// updates that leave replicas unchanged, as replica-policy does. The bindings scope them to
// one namespace. A Scale omits spec.replicas when it is 0.
const builtinPolicies = `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: NAME}
spec:
  failurePolicy: Ignore
  reinvocationPolicy: Never
` + builtinMatch + `  - name: out-of-bounds
    expression: "(has(object.spec.replicas) ? object.spec.replicas : 0) < MIN || (has(object.spec.replicas) ? object.spec.replicas : 0) > MAX"
  mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: "[JSONPatch{op: 'add', path: '/spec/replicas', value: variables.replicas < MIN ? MIN : MAX}]"
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: NAME}
spec:
  policyName: NAME
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: NAMESPACE}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: NAME}
spec:
  failurePolicy: Ignore
` + builtinMatch + `  validations:
  - expression: "variables.replicas >= MIN && variables.replicas <= MAX"
    messageExpression: "'spec.replicas: Invalid value: ' + string(variables.replicas) + ': must be within [MIN, MAX]'"
    reason: Invalid
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: NAME}
spec:
  policyName: NAME
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: NAMESPACE}
`

// installBuiltin creates the built-in policies and their bindings for namespace ns.
func installBuiltin(ctx context.Context, cs kubernetes.Interface, name, ns string) error {
	doc := strings.NewReplacer("NAMESPACE", ns, "NAME", name, "MIN", fmt.Sprint(ClampMin), "MAX", fmt.Sprint(ClampMax)).Replace(builtinPolicies)
	parts := strings.Split(doc, "\n---\n")
	if len(parts) != 4 {
		return fmt.Errorf("builtin policies: %d documents, want 4", len(parts))
	}
	var (
		mp  admissionregistrationv1.MutatingAdmissionPolicy
		mpb admissionregistrationv1.MutatingAdmissionPolicyBinding
		vp  admissionregistrationv1.ValidatingAdmissionPolicy
		vpb admissionregistrationv1.ValidatingAdmissionPolicyBinding
	)
	for i, into := range []any{&mp, &mpb, &vp, &vpb} {
		if err := yaml.UnmarshalStrict([]byte(parts[i]), into); err != nil {
			return fmt.Errorf("builtin policy document %d: %w", i, err)
		}
	}
	ar := cs.AdmissionregistrationV1()
	if _, err := ar.MutatingAdmissionPolicies().Create(ctx, &mp, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("MutatingAdmissionPolicy: %w", err)
	}
	if _, err := ar.MutatingAdmissionPolicyBindings().Create(ctx, &mpb, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("MutatingAdmissionPolicyBinding: %w", err)
	}
	if _, err := ar.ValidatingAdmissionPolicies().Create(ctx, &vp, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("ValidatingAdmissionPolicy: %w", err)
	}
	if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, &vpb, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("ValidatingAdmissionPolicyBinding: %w", err)
	}
	return nil
}
