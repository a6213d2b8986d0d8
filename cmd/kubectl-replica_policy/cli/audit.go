package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/version"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// auditPageSize is the page size of audit's lists: a cluster of 100,000 Deployments is
// read in pages, never in one response.
const auditPageSize = 500

// autoscalerResource is what audit lists HorizontalPodAutoscalers as: autoscaling/v2, the
// version the webhook is registered for (v1 objects are the same objects).
var autoscalerResource = schema.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}

// scaledObjectResource is KEDA's ScaledObjects, which audit lists where KEDA is installed.
var scaledObjectResource = workload.ScaledObjectGroupVersion.WithResource("scaledobjects")

// auditTimeout is --request-timeout's default.
const auditTimeout = 30 * time.Second

// AuditOptions are audit's.
type AuditOptions struct {
	// ConfigFlags are kubectl's connection flags: --kubeconfig, --context, --as,
	// --request-timeout, -n (audit one namespace) and the others.
	ConfigFlags     *genericclioptions.ConfigFlags
	LabelSelector   string
	PolicyFile      string
	PolicyNamespace string
	PolicyConfigMap string
	ReportOptions
	genericiooptions.IOStreams

	config    *rest.Config
	namespace string // "" for every namespace
}

func newAuditCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &AuditOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Judge the workloads of a live cluster against its policy, or a proposed one",
		Long: `Audit judges every bounded workload stored in the cluster (Deployments, StatefulSets,
ReplicaSets), with its stored spec.replicas and its Namespace's labels, and every
HorizontalPodAutoscaler (and, where KEDA is installed, every KEDA ScaledObject), by the
rule of its target workload, as check judges a manifest: what the scaler would correct
(clamp) or report, and what deny and warn rules report. An HPA or ScaledObject under a
clamp rule would have its range clamped by the webhook at its next write; the scaler
reports it (it never writes one). The policy is the cluster's ConfigMap
(--policy-namespace, --policy-configmap, the webhook's defaults); with --policy FILE, a
proposed policy instead: what a change would clamp, deny or report before anyone applies it.

Read-only: it needs get,list on namespaces, on each workload kind, on
horizontalpodautoscalers.autoscaling and, where KEDA is installed, on scaledobjects.keda.sh
at the cluster scope, and get on the policy ConfigMap
(not needed with --policy). The cluster is found as kubectl finds it: --kubeconfig, else
$KUBECONFIG, else in-cluster, else ~/.kube/config.

Outputs and exit codes are check's; exit 2 when the cluster cannot be reached or a right
is missing, naming the resource and the verb.`,
		Example: `  # What is outside its bounds right now?
  kubectl replica-policy audit

  # What would tightening the policy do? (preview before kubectl apply)
  kubectl replica-policy audit --policy new-policy.yaml -o json

  # Another cluster, failing on anything the webhook would clamp or deny
  kubectl replica-policy audit --kubeconfig ~/.kube/prod --context prod --fail-on clamp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSteps(func() error { return o.Complete(cmd) }, o.Validate, func() error { return o.Run(cmd.Context()) })
		},
	}
	o.ConfigFlags = genericclioptions.NewConfigFlags(true)
	o.ConfigFlags.AddFlags(cmd.Flags())
	cmd.Flags().StringVarP(&o.LabelSelector, "selector", "l", "", "judge only the workloads and HPAs with these labels (a label selector, as kubectl's -l)")
	cmd.Flags().StringVarP(&o.PolicyFile, "policy", "p", "", "judge against this proposed policy (a ReplicaPolicy document or its ConfigMap manifest) instead of the cluster's")
	cmd.Flags().StringVar(&o.PolicyNamespace, "policy-namespace", policy.DefaultNamespace, "the policy ConfigMap's namespace, the webhook's own (always exempt)")
	cmd.Flags().StringVar(&o.PolicyConfigMap, "policy-configmap", policy.DefaultConfigMapName, "the policy ConfigMap's name")
	o.ReportOptions.addFlags(cmd.Flags())
	return cmd
}

// Complete builds the client configuration from kubectl's connection flags; -n limits
// audit to one namespace.
func (o *AuditOptions) Complete(cmd *cobra.Command) error {
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("cannot load the cluster configuration: %w", err)
	}
	if !cmd.Flags().Changed("request-timeout") {
		cfg.Timeout = auditTimeout
	}
	cfg.UserAgent = toolName + "/" + version.Version
	o.config = cfg
	if cmd.Flags().Changed("namespace") {
		o.namespace = *o.ConfigFlags.Namespace
	}
	return nil
}

// Validate checks the flags.
func (o *AuditOptions) Validate() error {
	if o.PolicyNamespace == "" || o.PolicyConfigMap == "" {
		return fmt.Errorf("--policy-namespace and --policy-configmap must not be empty")
	}
	if _, err := labels.Parse(o.LabelSelector); err != nil {
		return fmt.Errorf("-l %q: %w", o.LabelSelector, err)
	}
	return o.ReportOptions.Validate()
}

// Run reads the policy, the Namespaces, every HorizontalPodAutoscaler (and ScaledObject)
// and every bounded workload, judges them and writes the report: the workloads, then the
// autoscalers.
func (o *AuditOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	core, err := corev1client.NewForConfig(o.config)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(o.config)
	if err != nil {
		return err
	}
	snap, err := o.policy(ctx, core)
	if err != nil {
		return err
	}
	namespaces, err := o.namespaces(ctx, core)
	if err != nil {
		return err
	}
	// Autoscalers first, so that only their target workloads' labels are kept while the
	// workloads are read (a cluster may hold 100,000 of those); they are judged after them.
	autoscalers, err := o.autoscalers(ctx, dyn, namespaces)
	if err != nil {
		return err
	}
	targeted := map[workloadKey]bool{}
	for _, t := range autoscalers {
		targeted[keyOf(t.Subject)] = true
	}
	var findings []Finding
	workloads := Workloads{}
	for _, k := range workload.Kinds {
		if err := o.eachTarget(ctx, dyn, k.GroupVersionKind().GroupVersion().WithResource(k.Resource), k.Kind, namespaces, func(t Target) {
			if targeted[keyOf(t.Subject)] {
				workloads.Add(t)
			}
			findings = append(findings, Judge(snap, t)...)
		}); err != nil {
			return o.apiError(err, "list", k.GroupResource(), "")
		}
	}
	for _, t := range autoscalers {
		workloads.Resolve(&t)
		findings = append(findings, Judge(snap, t)...)
	}
	return o.write(o.Out, "replica-policy audit", findings)
}

// autoscalers are the targets of every HorizontalPodAutoscaler and, where discovery says
// KEDA's CRD is served, every ScaledObject. (Discovery first: the API server answers a
// list of a resource it does not serve with Forbidden, not NotFound, to a user who may not
// list it.)
func (o *AuditOptions) autoscalers(ctx context.Context, dyn dynamic.Interface, namespaces Namespaces) ([]Target, error) {
	resources := []schema.GroupVersionResource{autoscalerResource}
	kinds := []string{policy.AutoscalerKind}
	served, err := o.serves(scaledObjectResource)
	if err != nil {
		return nil, o.apiError(err, "discover", scaledObjectResource.GroupResource(), "")
	}
	if served {
		resources, kinds = append(resources, scaledObjectResource), append(kinds, policy.ScaledObjectKind)
	}
	var targets []Target
	for i, gvr := range resources {
		if err := o.eachTarget(ctx, dyn, gvr, kinds[i], namespaces, func(t Target) { targets = append(targets, t) }); err != nil {
			return nil, o.apiError(err, "list", gvr.GroupResource(), "")
		}
	}
	return targets, nil
}

// serves reports whether the cluster's discovery lists gvr.
func (o *AuditOptions) serves(gvr schema.GroupVersionResource) (bool, error) {
	disco, err := discovery.NewDiscoveryClientForConfig(o.config)
	if err != nil {
		return false, err
	}
	list, err := disco.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, r := range list.APIResources {
		if r.Name == gvr.Resource {
			return true, nil
		}
	}
	return false, nil
}

// namespaces are the labels of the audited Namespace (-n), else of every Namespace: -l
// selects workloads, not Namespaces.
func (o *AuditOptions) namespaces(ctx context.Context, core corev1client.CoreV1Interface) (Namespaces, error) {
	namespaces := Namespaces{}
	nsResource := schema.GroupResource{Resource: "namespaces"}
	if o.namespace != "" {
		ns, err := core.Namespaces().Get(ctx, o.namespace, metav1.GetOptions{})
		if err != nil {
			return nil, o.apiError(err, "get", nsResource, o.namespace)
		}
		namespaces.Add(ns.Name, ns.Labels)
		return namespaces, nil
	}
	if err := addNamespaces(ctx, core, namespaces); err != nil {
		return nil, o.apiError(err, "list", nsResource, "")
	}
	return namespaces, nil
}

// eachTarget lists gvr in the audited namespace (every one without -n), page by page, and
// hands visit the target of each object, as kind.
func (o *AuditOptions) eachTarget(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, kind string, namespaces Namespaces, visit func(Target)) error {
	return o.listPages(ctx, func(opts metav1.ListOptions) (string, error) {
		list, err := dyn.Resource(gvr).Namespace(o.namespace).List(ctx, opts)
		if err != nil {
			return "", err
		}
		for i := range list.Items {
			obj := &list.Items[i]
			obj.SetAPIVersion(gvr.GroupVersion().String())
			obj.SetKind(kind)
			t, _, err := NewTarget(obj, Source{}, obj.GetNamespace(), namespaces)
			if err != nil {
				return "", err
			}
			visit(t)
		}
		return list.GetContinue(), nil
	})
}

// policy is the proposed policy of --policy, else the cluster's: no ConfigMap means no
// bounds, as for the webhook.
func (o *AuditOptions) policy(ctx context.Context, core corev1client.CoreV1Interface) (*policy.Snapshot, error) {
	opts := policy.Options{AlwaysExempt: []string{o.PolicyNamespace}}
	if o.PolicyFile != "" {
		return loadPolicyFile(o.PolicyFile, o.In, opts)
	}
	cm, err := core.ConfigMaps(o.PolicyNamespace).Get(ctx, o.PolicyConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		fmt.Fprintf(o.ErrOut, "note: no policy ConfigMap %s/%s: the webhook bounds nothing\n", o.PolicyNamespace, o.PolicyConfigMap)
		return policy.Empty(opts), nil
	}
	if err != nil {
		return nil, o.apiError(err, "get", schema.GroupResource{Resource: "configmaps"}, o.PolicyConfigMap)
	}
	snap, err := policy.LoadConfigMap(cm, opts)
	if errs := policyErrors(err); errs != nil {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("invalid replica policy in ConfigMap %s/%s (the webhook keeps the last valid one in force; audit cannot know it): %s",
			o.PolicyNamespace, o.PolicyConfigMap, strings.Join(msgs, "; "))
	}
	return snap, err
}

// listPages calls list with a page size and the continue token until the last page.
func (o *AuditOptions) listPages(ctx context.Context, list func(metav1.ListOptions) (string, error)) error {
	opts := metav1.ListOptions{Limit: auditPageSize, LabelSelector: o.LabelSelector}
	for {
		next, err := list(opts)
		if err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		opts.Continue = next
	}
}

// forbiddenUser finds the user in the API server's Forbidden message.
var forbiddenUser = regexp.MustCompile(`User "([^"]*)"`)

// apiError turns an API error into the one line a user acts on: a missing right names the
// verb, the resource and what audit needs; a cluster that cannot be reached says where it
// was looked for.
func (o *AuditOptions) apiError(err error, verb string, gr schema.GroupResource, name string) error {
	what := gr.String()
	scope := "at the cluster scope"
	if name != "" {
		what = fmt.Sprintf("%s %q", gr.String(), name)
		scope = fmt.Sprintf("in namespace %q", o.PolicyNamespace)
	}
	switch {
	case apierrors.IsForbidden(err):
		user := ""
		if m := forbiddenUser.FindStringSubmatch(err.Error()); m != nil {
			user = " for " + m[1]
		}
		return fmt.Errorf("cannot %s %s %s: forbidden%s (audit needs %s)", verb, what, scope, user, o.needs())
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("cannot %s %s: unauthorized: the credentials of the kubeconfig were refused by %s", verb, what, o.config.Host)
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		var uerr *url.Error
		if errors.As(err, &uerr) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("cannot reach the cluster at %s: %v", o.config.Host, err)
		}
	}
	return fmt.Errorf("cannot %s %s: %v", verb, what, err)
}

// needs lists the rights audit needs, for the message of a Forbidden error.
func (o *AuditOptions) needs() string {
	kinds := []string{"namespaces"}
	for _, k := range workload.Kinds {
		kinds = append(kinds, k.GroupResource().String())
	}
	kinds = append(kinds, autoscalerResource.GroupResource().String())
	s := "get,list on " + strings.Join(kinds, ", ") + " at the cluster scope (and on " + scaledObjectResource.GroupResource().String() + " where KEDA is installed)"
	if o.PolicyFile == "" {
		s += fmt.Sprintf(", and get on configmap %q in namespace %q", o.PolicyConfigMap, o.PolicyNamespace)
	}
	return s
}
