package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

const outputYAML = "yaml"

// CompileOptions are compile's.
type CompileOptions struct {
	PolicyFile      string
	PolicyNamespace string
	Name            string
	Output          string
	// Autoscalers adds the autoscaler policies, which --native-policies does not apply.
	Autoscalers bool
	// ClampWarnings adds NAME-clamped, the stand-in for the webhook's clamp warning.
	ClampWarnings bool
	genericiooptions.IOStreams
}

// compileHelp is compile's help, the command without its options (root.go joins them).
var compileHelp = cobra.Command{
	Use:   "compile --policy FILE",
	Short: "Print the native admission policies that enforce a policy in the API server",
	Long: `Compile prints the MutatingAdmissionPolicy (clamp rules), the ValidatingAdmissionPolicies
(deny rules, and warn rules as a Warn action) and their bindings that make the API server
(admissionregistration.k8s.io/v1, Kubernetes 1.36 and later) enforce the policy on
Deployments, StatefulSets and ReplicaSets itself, with the webhook's first-match order,
globs, selectors, kinds, bounds, allowZero, exemptions and messages. Only the objects the
policy's actions need, and that can act, are printed; stderr notes any left out.

A write to /scale carries a Scale, which has neither the workload's labels nor its owner:
such writes that a rule with a selector may decide, and those of ReplicaSets (which a
Deployment may own), are left to the webhook. Stderr says, a line each, which requests
still need the webhook, and what else differs: a native clamp returns no warning.

The output is what the webhook's --native-policies applies: HorizontalPodAutoscalers and
KEDA ScaledObjects are left to the webhook. With --autoscalers, compile also prints
NAME-autoscalers-clamp, -deny and -warn, which decide their range by the rule of their
target, except where that rule has a selector or the target is a ReplicaSet (the webhook
reads the target's labels and owner): for a cluster where compile's output is applied on
its own, since --native-policies leaves HPAs to the webhook's entry of their own.

Exit 0 when the policy compiles; 2 for bad flags, an unreadable file, an invalid policy, or
a policy larger than the API server holds (about 6,500 rules with two namespaces and a
selector each: see the design document), with the reason on stderr.`,
	Example: `  # Review the native policies, then apply them
  kubectl replica-policy compile -p policy.yaml > native.yaml
  kubectl apply -f native.yaml

  # From the policy ConfigMap the manifests apply, as JSON
  kubectl replica-policy compile -p manifests/base/policy.yaml -o json

  # The autoscaler policies too, for a cluster without the webhook
  kubectl replica-policy compile -p policy.yaml --autoscalers > native.yaml`,
}

func (o *CompileOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.PolicyFile, "policy", "p", "", "the policy: a ReplicaPolicy document or its ConfigMap manifest (- for stdin)")
	fs.StringVar(&o.PolicyNamespace, "policy-namespace", policy.DefaultNamespace, "the webhook's own namespace, always exempt, as the webhook's flag of that name")
	fs.StringVar(&o.Name, "name", native.DefaultName, "the prefix of the objects' names: NAME-clamp, NAME-deny, NAME-warn, NAME-clamped")
	fs.StringVarP(&o.Output, "output", "o", outputYAML, "output format: yaml (one document an object), json (a List)")
	fs.BoolVar(&o.ClampWarnings, "clamp-warnings", false, "also print NAME-clamped, which warns when a write leaves replicas at a bound of a clamp rule (a MutatingAdmissionPolicy cannot warn): a second policy the API server evaluates on every write the clamp sees")
	fs.BoolVar(&o.Autoscalers, "autoscalers", false, "also print NAME-autoscalers-*, which decide the range of HorizontalPodAutoscalers and KEDA ScaledObjects (--native-policies does not apply them)")
}

// Validate checks the flags.
func (o *CompileOptions) Validate() error {
	switch {
	case o.PolicyFile == "":
		return fmt.Errorf("--policy is required")
	case o.Output != outputYAML && o.Output != outputJSON:
		return fmt.Errorf("--output %q: must be yaml or json", o.Output)
	case o.Name == "":
		return fmt.Errorf("--name must not be empty")
	}
	return nil
}

// Run compiles the policy, prints the objects on stdout and what still needs the webhook
// on stderr.
func (o *CompileOptions) Run() error {
	snap, err := loadPolicyFile(o.PolicyFile, o.In, policy.Options{AlwaysExempt: []string{o.PolicyNamespace}})
	if err != nil {
		return err
	}
	res, err := native.Compile(snap, policy.BuiltinWorkloadKinds, native.Options{Name: o.Name, Autoscalers: o.Autoscalers, ClampWarnings: o.ClampWarnings})
	var limit *native.LimitError
	if errors.As(err, &limit) {
		return fmt.Errorf("%s: %w", o.PolicyFile, err)
	}
	if err != nil {
		return err
	}
	objs := append(res.Objects(), res.AutoscalerObjects()...)
	if o.Output != outputJSON && len(objs) > 0 {
		fmt.Fprintf(o.Out, "# Compiled by kubectl replica-policy compile from %s. The policies' variables name\n# the deciding rule by its index (variables.rule; -1: none):\n", o.PolicyFile)
		for _, l := range res.Rules {
			fmt.Fprintf(o.Out, "#   %s\n", l)
		}
	}
	if err := writeObjects(o.Out, o.Output, objs); err != nil {
		return err
	}
	for _, l := range res.Webhook {
		fmt.Fprintf(o.ErrOut, "the webhook still decides: %s\n", l)
	}
	notes := res.Notes
	if !o.Autoscalers {
		notes = append([]string{"HorizontalPodAutoscalers and KEDA ScaledObjects are left to the webhook, as --native-policies leaves them; --autoscalers also compiles the policies that decide their range"}, notes...)
	}
	for _, l := range notes {
		fmt.Fprintf(o.ErrOut, "note: %s\n", l)
	}
	return nil
}

// writeObjects prints objs as YAML documents or as a JSON List, without the empty status
// and creationTimestamp that typed objects carry.
func writeObjects(w io.Writer, format string, objs []runtime.Object) error {
	items := make([]map[string]any, 0, len(objs))
	for _, obj := range objs {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return err
		}
		delete(u, "status")
		if md, ok := u["metadata"].(map[string]any); ok {
			delete(md, "creationTimestamp")
		}
		items = append(items, u)
	}
	if format == outputJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	}
	for i, item := range items {
		b, err := reviewYAML(item)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
