package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// ValidateOptions are validate's: the policy files.
type ValidateOptions struct {
	Files []string
	genericiooptions.IOStreams
}

func newValidateCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &ValidateOptions{IOStreams: streams}
	return &cobra.Command{
		Use:   "validate FILE|- ...",
		Short: "Check policy files, listing every error at once",
		Long: `Validate checks each file as the webhook checks the policy ConfigMap at apply time: a
ReplicaPolicy document, or a ConfigMap manifest with the policy under data["policy.yaml"]
(also as one document of several, such as a kustomize build). Every error, of parsing and
of validation together, is printed with the file's name: unknown fields, min > max,
duplicate names, bad selectors and globs.

Exit 0 when every file is valid, 1 when one is not, 2 when a file cannot be read.`,
		Example: `  # A policy document, and the ConfigMap that the manifests apply
  kubectl replica-policy validate policy.yaml manifests/base/policy.yaml

  # A kustomize build, from stdin
  kustomize build manifests/ | kubectl replica-policy validate -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSteps(func() error { return o.Complete(args) }, o.Validate, o.Run)
		},
	}
}

// Complete takes the files from the arguments.
func (o *ValidateOptions) Complete(args []string) error {
	o.Files = args
	return nil
}

// Validate checks the arguments.
func (o *ValidateOptions) Validate() error {
	if len(o.Files) == 0 {
		return fmt.Errorf("validate needs at least one file, or - for stdin")
	}
	return nil
}

// Run validates each file, printing "FILE: valid" or one line per error.
func (o *ValidateOptions) Run() error {
	invalid := false
	for _, path := range o.Files {
		name, data, err := readFile(path, o.In)
		if err != nil {
			return err
		}
		_, err = loadPolicy(data, policy.Options{})
		errs := policyErrors(err)
		switch {
		case errs != nil:
			invalid = true
			for _, e := range errs {
				fmt.Fprintf(o.Out, "%s: %s\n", name, e.Error())
			}
		case err != nil:
			return fmt.Errorf("%s: %w", name, err)
		default:
			fmt.Fprintf(o.Out, "%s: valid\n", name)
		}
	}
	if invalid {
		return exitCode(ExitFound)
	}
	return nil
}
