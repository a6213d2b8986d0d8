package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/version"
)

// ManifestOptions are the flags check and explain share: the policy, the manifests and the
// namespaces they need.
type ManifestOptions struct {
	PolicyFile      string
	Filenames       []string
	Namespace       string
	PolicyNamespace string
	// NamespaceLabels is a file with the labels of namespaces the input has no Namespace
	// object for.
	NamespaceLabels string
	// NamespacesFromCluster reads the labels of every Namespace of the cluster that
	// Cluster's --kubeconfig and --context name.
	NamespacesFromCluster bool
	Cluster               *genericclioptions.ConfigFlags
}

func (o *ManifestOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.PolicyFile, "policy", "p", "", "the policy: a ReplicaPolicy document or its ConfigMap manifest (- for stdin)")
	fs.StringArrayVarP(&o.Filenames, "filename", "f", nil, "manifests: a file, a folder (read recursively for .yaml, .yml, .json) or - for stdin; repeatable")
	fs.StringVarP(&o.Namespace, "namespace", "n", "default", "the namespace of objects that name none")
	fs.StringVar(&o.PolicyNamespace, "policy-namespace", policy.DefaultNamespace, "the webhook's own namespace, always exempt, as the webhook's flag of that name")
	o.Cluster = genericclioptions.NewConfigFlags(false)
	fs.BoolVar(&o.NamespacesFromCluster, "namespaces-from-cluster", false, "read namespace labels from the cluster's Namespaces (--kubeconfig, --context; needs list on namespaces); --namespace-labels and Namespace objects in the input win")
	fs.StringVar(o.Cluster.KubeConfig, "kubeconfig", "", "with --namespaces-from-cluster: the kubeconfig file (else $KUBECONFIG, in-cluster, ~/.kube/config)")
	fs.StringVar(o.Cluster.Context, "context", "", "with --namespaces-from-cluster: the kubeconfig context")
	fs.StringVar(&o.NamespaceLabels, "namespace-labels", "", "namespace labels for namespaceSelector rules: a file of Namespace objects (kubectl get namespaces -o yaml > FILE) or a mapping of namespace names to labels ({prod: {env: prod}}); Namespace objects in the input win")
}

// namespaceLabels reads --namespace-labels: Namespace objects, or a mapping of namespace
// names to their labels.
func (o *ManifestOptions) namespaceLabels(ctx context.Context) (Namespaces, error) {
	n := Namespaces{}
	if o.NamespacesFromCluster {
		if err := o.clusterNamespaces(ctx, n); err != nil {
			return nil, err
		}
	}
	if o.NamespaceLabels == "" {
		return n, nil
	}
	bad := func(why string) error {
		return fmt.Errorf("--namespace-labels %s: %s; it must hold Namespace objects (kubectl get namespaces -o yaml) or a mapping of namespace names to labels ({prod: {env: prod}})", o.NamespaceLabels, why)
	}
	data, err := os.ReadFile(o.NamespaceLabels)
	if err != nil {
		return nil, err
	}
	objs, err := decodeManifest(filepath.ToSlash(o.NamespaceLabels), data)
	if err != nil {
		return nil, err
	}
	for _, obj := range objs {
		if obj.GetAPIVersion() != "v1" || obj.GetKind() != "Namespace" {
			return nil, bad(fmt.Sprintf("line %d holds a %s %s", obj.Line, obj.GetAPIVersion(), obj.GetKind()))
		}
		n.Add(obj.GetName(), obj.GetLabels())
	}
	if len(objs) == 0 {
		var m map[string]map[string]string
		if err := sigsyaml.UnmarshalStrict(data, &m); err != nil {
			return nil, bad(oneLine(err.Error()))
		}
		for name, labels := range m {
			n.Add(name, labels)
		}
	}
	if len(n) == 0 {
		return nil, bad("it names no namespace")
	}
	return n, nil
}

// clusterNamespaces adds the labels of every Namespace of the cluster to n.
func (o *ManifestOptions) clusterNamespaces(ctx context.Context, n Namespaces) error {
	cfg, err := o.Cluster.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("--namespaces-from-cluster: cannot load the cluster configuration: %w", err)
	}
	cfg.Timeout = auditTimeout
	cfg.UserAgent = toolName + "/" + version.Version
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := addNamespaces(ctx, core, n); err != nil {
		return fmt.Errorf("--namespaces-from-cluster: cannot list namespaces at %s: %v", cfg.Host, err)
	}
	return nil
}

// addNamespaces adds the labels of every Namespace of the cluster to n, a page at a time.
func addNamespaces(ctx context.Context, core corev1client.CoreV1Interface, n Namespaces) error {
	opts := metav1.ListOptions{Limit: auditPageSize}
	for {
		list, err := core.Namespaces().List(ctx, opts)
		if err != nil {
			return err
		}
		for _, ns := range list.Items {
			n.Add(ns.Name, ns.Labels)
		}
		if list.Continue == "" {
			return nil
		}
		opts.Continue = list.Continue
	}
}

// Validate checks the flags.
func (o *ManifestOptions) Validate() error {
	switch {
	case o.PolicyFile == "":
		return fmt.Errorf("--policy is required")
	case len(o.Filenames) == 0:
		return fmt.Errorf("-f is required: a file, a folder or - for stdin")
	case o.PolicyFile == "-" && slices.Contains(o.Filenames, "-"):
		return fmt.Errorf("--policy and -f cannot both read stdin")
	}
	return nil
}

// load reads the policy and the manifests and returns the bounded objects to judge, in the
// order they were read: workloads, and HorizontalPodAutoscalers with the labels and
// controller of their target workload when the input holds it. Only the targets are kept
// while the input is read, not the objects.
func (o *ManifestOptions) load(stdin io.Reader) (*policy.Snapshot, []Target, error) {
	snap, err := loadPolicyFile(o.PolicyFile, stdin, policy.Options{AlwaysExempt: []string{o.PolicyNamespace}})
	if err != nil {
		return nil, nil, err
	}
	namespaces, err := o.namespaceLabels(context.Background())
	if err != nil {
		return nil, nil, err
	}
	var targets []Target
	err = readManifests(o.Filenames, stdin, func(obj Object) error {
		if obj.GetAPIVersion() == "v1" && obj.GetKind() == "Namespace" {
			namespaces.Add(obj.GetName(), obj.GetLabels())
		}
		t, ok, err := NewTarget(obj.Unstructured, obj.Source, o.Namespace, nil)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", obj.File, obj.Line, err)
		}
		if ok {
			targets = append(targets, t)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// A Namespace, and an HPA's target workload, may come before or after the objects that
	// need them, in any file of the input.
	workloads := Workloads{}
	for i := range targets {
		namespaces.fill(&targets[i].Subject)
		workloads.Add(targets[i])
	}
	for i := range targets {
		workloads.Resolve(&targets[i])
	}
	return snap, targets, nil
}

// CheckOptions are check's.
type CheckOptions struct {
	ManifestOptions
	ReportOptions
	genericiooptions.IOStreams
}

// checkHelp is check's help, the command without its options (root.go joins them).
var checkHelp = cobra.Command{
	Use:   "check --policy FILE -f PATH...",
	Short: "Judge manifests as the webhook would judge their creation",
	Long: `Check judges every bounded workload in the manifests (Deployments, StatefulSets,
ReplicaSets), every HorizontalPodAutoscaler (autoscaling/v1 or v2) and every KEDA
ScaledObject as the webhook would judge its CREATE, with the webhook's own messages:

  pass   inside the bounds of the deciding rule
  clamp  the webhook would change spec.replicas, or an HPA's range: Git and the cluster
         would disagree
  deny   the webhook would reject it
  warn   the webhook would admit it with a warning
  skip   exempt namespace, owned by a bounded workload, no rule, or the deciding rule
         needs what the input lacks (the labels of a Namespace, or of an HPA's target
         workload, that is not in the input)

An HPA is decided by the rule of its scaleTargetRef workload, over its range [minReplicas
(1 when omitted), maxReplicas]. The target's labels come from the input when it holds the
workload (in any file); when it does not, rules that need them cannot decide (skip) and
rules that do not still decide. Each end of the range outside the bounds is a result of
its own (field spec.minReplicas or spec.maxReplicas); an HPA inside its bounds, or
skipped, is one result, reported on spec.maxReplicas. A KEDA ScaledObject is judged the
same way over spec.minReplicaCount (0 when omitted), spec.maxReplicaCount (100) and
spec.idleReplicaCount where set, by the rule of its scaleTargetRef (a Deployment when it
names no kind).

Namespace objects in the input give the labels that namespaceSelector rules read (with
kubernetes.io/metadata.name, which the API server adds). Other objects are ignored.

Locations are FILE:LINE of the object's first line; an item of a List is located at its
own line in the List (at the List's first line when the file cannot be read that way).

Exit 1 when a result is at or above --fail-on (warn < clamp < deny), else 0; 2 for bad
flags, unreadable or malformed input, or an invalid policy.`,
	Example: `  # A folder of manifests against the policy the cluster applies
  kubectl replica-policy check -p manifests/base/policy.yaml -f deploy/

  # A kustomize build from stdin, failing only on denials, as JSON
  kustomize build overlays/prod | kubectl replica-policy check -p policy.yaml -f - --fail-on deny -o json

  # SARIF for GitHub code scanning, JUnit for test reports
  kubectl replica-policy check -p policy.yaml -f deploy/ -o sarif > replica-policy.sarif
  kubectl replica-policy check -p policy.yaml -f deploy/ -o junit > replica-policy.xml`,
}

func (o *CheckOptions) addFlags(fs *pflag.FlagSet) {
	o.ManifestOptions.addFlags(fs)
	o.ReportOptions.addFlags(fs)
}

// Validate checks the flags.
func (o *CheckOptions) Validate() error {
	if err := o.ManifestOptions.Validate(); err != nil {
		return err
	}
	return o.ReportOptions.Validate()
}

// Run judges the manifests and writes the report.
func (o *CheckOptions) Run() error {
	snap, targets, err := o.load(o.In)
	if err != nil {
		return err
	}
	findings := make([]Finding, 0, len(targets))
	for _, t := range targets {
		findings = append(findings, Judge(snap, t)...)
	}
	return o.write(o.Out, "replica-policy check", findings)
}
