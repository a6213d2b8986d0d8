package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/replica-policy/replica-policy/internal/harness"
)

func TestCompile(t *testing.T) {
	t.Run("yaml", func(t *testing.T) {
		code, out, errOut := run(t, "", "compile", "-p", "testdata/policy.yaml", "--clamp-warnings")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var kinds []string
		for _, doc := range strings.Split(out, "\n---\n") {
			var o struct {
				Kind     string
				Metadata struct{ Name string }
				Status   any
			}
			if err := sigsyaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatalf("document %q: %v", doc, err)
			}
			if o.Status != nil {
				t.Errorf("%s %s carries a status", o.Kind, o.Metadata.Name)
			}
			kinds = append(kinds, o.Kind+"/"+o.Metadata.Name)
		}
		want := "MutatingAdmissionPolicy/replica-policy-clamp MutatingAdmissionPolicyBinding/replica-policy-clamp " +
			"ValidatingAdmissionPolicy/replica-policy-deny ValidatingAdmissionPolicyBinding/replica-policy-deny " +
			"ValidatingAdmissionPolicy/replica-policy-warn ValidatingAdmissionPolicyBinding/replica-policy-warn " +
			"ValidatingAdmissionPolicy/replica-policy-clamped ValidatingAdmissionPolicyBinding/replica-policy-clamped"
		if strings.Join(kinds, " ") != want {
			t.Errorf("objects %v, want %s", kinds, want)
		}
		wantErr := `the webhook still decides: /scale writes of replicasets: a ReplicaSet may be owned by a bounded workload, which is bounded instead, and a Scale does not name its owner
the webhook still decides: /scale writes that rule "prod-web" may decide (namespaces prod, prod-*): its selector needs the workload's labels, which a Scale does not carry
the webhook still decides: /scale writes that rule "databases" may decide: its selector needs the workload's labels, which a Scale does not carry
note: HorizontalPodAutoscalers and KEDA ScaledObjects are left to the webhook, as --native-policies leaves them; --autoscalers also compiles the policies that decide their range
note: a clamp by the MutatingAdmissionPolicy returns no warning (an admission policy cannot return one from a mutation): instead, replica-policy-clamped warns (and records in the audit log) whenever a write leaves replicas at a bound of a clamp rule, naming the rule
`
		if errOut != wantErr {
			t.Errorf("stderr\n%s\nwant\n%s", errOut, wantErr)
		}
		// A comment line a rule, saying which objects enforce it.
		wantAll(t, "compile output", out,
			"#   0 prod-web: namespaces prod, prod-*; selector app in (api,web): clamp [2, 10]; enforced by replica-policy-clamp and replica-policy-clamped (the /scale writes it decides: the webhook)\n",
			"#   1 databases: selector tier=db: deny [3, 7]; enforced by replica-policy-deny (the /scale writes it decides: the webhook)\n",
			"#   2 gold: namespaceSelector tier=gold: warn [0, 4]; enforced by replica-policy-warn\n",
			"#   3 default: every workload: clamp [1, 50]; enforced by replica-policy-clamp and replica-policy-clamped\n",
		)
	})

	t.Run("without --clamp-warnings, no clamp notice, and a note says so", func(t *testing.T) {
		code, out, errOut := run(t, "", "compile", "-p", "testdata/policy.yaml")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if strings.Contains(out, "replica-policy-clamped") {
			t.Errorf("replica-policy-clamped printed without --clamp-warnings:\n%s", out)
		}
		note := "note: a clamp by the MutatingAdmissionPolicy returns no warning (an admission policy cannot return one from a mutation): with --clamp-warnings, replica-policy-clamped warns instead, at the cost of a second policy on every write\n"
		if !strings.Contains(errOut, note) || !strings.Contains(out, "clamp [1, 50]; enforced by replica-policy-clamp\n") {
			t.Errorf("stderr\n%s\nwant the line\n%s", errOut, note)
		}
	})

	t.Run("reviewable: short lists on one line, CEL without escaped quotes, names first", func(t *testing.T) {
		_, out, _ := run(t, "", "compile", "-p", "testdata/policy.yaml")
		wantAll(t, "compile output", out,
			"      operations: [CREATE, UPDATE]\n",
			"  - name: action\n    expression: \"(variables.rule >= 0 ? ['clamp', 'deny', 'warn', 'clamp'][variables.rule] : '')\"\n",
			"  validationActions: [Deny]\n",
		)
		for _, line := range strings.Split(out, "\n") {
			if _, v, ok := strings.Cut(line, "expression: '"); ok && strings.Contains(v, "''") {
				t.Errorf("a CEL expression with YAML's escaped quotes: %s", line)
			}
		}
	})

	t.Run("--autoscalers adds the autoscaler policies", func(t *testing.T) {
		code, out, errOut := run(t, "", "compile", "-p", "testdata/policy.yaml", "--autoscalers")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		_, plain, _ := run(t, "", "compile", "-p", "testdata/policy.yaml")
		added, ok := strings.CutPrefix(out, plain+"---\n")
		if !ok {
			t.Fatalf("the output with --autoscalers does not start with the output without it:\n%s", out)
		}
		var names []string
		for _, doc := range strings.Split(added, "\n---\n") {
			var o struct {
				Kind     string
				Metadata struct{ Name string }
			}
			if err := sigsyaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatalf("document %q: %v", doc, err)
			}
			names = append(names, o.Kind+"/"+o.Metadata.Name)
		}
		want := "MutatingAdmissionPolicy/replica-policy-autoscalers-clamp MutatingAdmissionPolicyBinding/replica-policy-autoscalers-clamp " +
			"ValidatingAdmissionPolicy/replica-policy-autoscalers-warn ValidatingAdmissionPolicyBinding/replica-policy-autoscalers-warn"
		if strings.Join(names, " ") != want {
			t.Errorf("--autoscalers adds %v, want %s", names, want)
		}
		wantAll(t, "stderr", errOut,
			"the webhook still decides: HorizontalPodAutoscalers and ScaledObjects whose target is a ReplicaSet: it may be owned by a bounded workload, which CEL cannot read\n",
			"the webhook still decides: HorizontalPodAutoscalers and ScaledObjects whose target rule \"prod-web\" may decide: its selector needs the target's labels, which CEL cannot read\n",
			"note: replica-policy-autoscalers-* decide HorizontalPodAutoscalers and KEDA ScaledObjects (the binary's --native-policies does not apply them",
		)
		if strings.Contains(errOut, "--autoscalers also compiles") {
			t.Errorf("stderr says HPAs are left to the webhook although --autoscalers compiled them:\n%s", errOut)
		}
	})

	t.Run("policies that can never act are left out, and said so", func(t *testing.T) {
		pol := `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
exemptNamespaces: [legacy]
rules:
- {name: rollouts, kinds: [Rollout.argoproj.io], maxReplicas: 10, action: warn}
- {name: legacy, namespaces: [legacy], maxReplicas: 10, action: deny}
`
		code, out, errOut := run(t, pol, "compile", "-p", "-")
		if code != ExitOK || out != "" {
			t.Fatalf("exit %d, stdout %q (want nothing): %s", code, out, errOut)
		}
		wantAll(t, "stderr", errOut,
			`the webhook still decides: writes of Rollout.argoproj.io (named by rule "rollouts"): not a compiled kind`,
			"note: no replica-policy-deny is emitted: no deny rule can act on a write the native policies see",
			"note: nothing is emitted: no rule can act on a write of a compiled kind",
		)
	})

	t.Run("json list, names, policy namespace, stdin", func(t *testing.T) {
		code, out, errOut := run(t, readTestdata(t, "policy-configmap.yaml"), "compile", "-p", "-", "-o", "json", "--name", "rp", "--policy-namespace", "own")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var list struct {
			Kind  string
			Items []struct {
				Metadata struct{ Name string }
				Spec     struct {
					MatchResources struct {
						NamespaceSelector metav1.LabelSelector
					}
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatal(err)
		}
		if list.Kind != "List" || len(list.Items) == 0 || !strings.HasPrefix(list.Items[0].Metadata.Name, "rp-") {
			t.Fatalf("output %s", out)
		}
		// The exempt namespaces are left out by the bindings' namespaceSelector.
		binding := list.Items[1]
		if got := fmt.Sprint(binding.Spec.MatchResources.NamespaceSelector.MatchExpressions); !strings.HasSuffix(binding.Metadata.Name, "-clamp") ||
			got != "[{kubernetes.io/metadata.name NotIn [own]}]" {
			t.Errorf("--policy-namespace own is not exempt by binding %s: %s", binding.Metadata.Name, got)
		}
	})

	big := filepath.Join(t.TempDir(), "big.yaml")
	var b strings.Builder
	b.WriteString("apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules:\n")
	for i := range 7000 {
		fmt.Fprintf(&b, "- {name: rule-%d, namespaces: [team-%d-*, ns-%d], selector: {matchLabels: {app: web-%d}}, maxReplicas: 3}\n", i, i, i, i)
	}
	harness.WriteFile(t, big, b.String())
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no policy", []string{"compile"}, "error: --policy is required\n"},
		{"bad output", []string{"compile", "-p", "testdata/policy.yaml", "-o", "xml"}, "error: --output \"xml\": must be yaml or json\n"},
		{"empty name", []string{"compile", "-p", "testdata/policy.yaml", "--name", ""}, "error: --name must not be empty\n"},
		{"an argument", []string{"compile", "-p", "testdata/policy.yaml", "extra"}, "error: unknown command \"extra\" for \"kubectl replica-policy compile\"\n"},
		{"unreadable", []string{"compile", "-p", "testdata/none.yaml"}, "error: open testdata/none.yaml: no such file or directory\n"},
		{"invalid policy", []string{"compile", "-p", "testdata/bad/invalid-policy.yaml"}, "error: testdata/bad/invalid-policy.yaml: invalid replica policy (run validate for one error a line): "},
		{"too large", []string{"compile", "-p", big}, "error: " + big + ": the policy is too large for native admission policies: MutatingAdmissionPolicy replica-policy-clamp would be "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, "", tc.args...)
			if code != ExitError || out != "" {
				t.Errorf("exit %d, stdout %q; want exit 2 and nothing", code, out)
			}
			if !strings.HasPrefix(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr %q, want one line starting %q", errOut, tc.want)
			}
		})
	}
}
