package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// ValidateOptions are validate's: the policy files and the output format.
type ValidateOptions struct {
	Files  []string
	Output string
	genericiooptions.IOStreams
}

func newValidateCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &ValidateOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "validate [-f] FILE|- ...",
		Short: "Check policy files, listing every error at once",
		Long: `Validate checks each file as the webhook checks the policy ConfigMap at apply time: a
ReplicaPolicy document, or a ConfigMap manifest with the policy under data["policy.yaml"]
(also as one document of several, such as a kustomize build). Every error, of parsing and
of validation together, is printed with the file's name: unknown fields, values of the
wrong type, min > max, duplicate names, bad selectors and globs, a policy larger than a
ConfigMap holds (1 MiB).

Files are arguments or -f, as kubectl takes them. -o json prints
{"files": [{"file", "valid", "errors": [{"field", "type", "detail", "message"}]}]}.

Exit 0 when every file is valid, 1 when one is not, 2 when a file cannot be read.`,
		Example: `  # A policy document, and the ConfigMap that the manifests apply
  kubectl replica-policy validate policy.yaml manifests/base/policy.yaml

  # A kustomize build, from stdin, as JSON
  kustomize build manifests/ | kubectl replica-policy validate -f - -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSteps(func() error { return o.Complete(args) }, o.Validate, o.Run)
		},
	}
	cmd.Flags().StringArrayVarP(&o.Files, "filename", "f", nil, "a policy file, or - for stdin; repeatable (files may also be given as arguments)")
	cmd.Flags().StringVarP(&o.Output, "output", "o", outputText, "output format: text, json")
	return cmd
}

// Complete adds the arguments to the files of -f.
func (o *ValidateOptions) Complete(args []string) error {
	o.Files = append(o.Files, args...)
	return nil
}

// Validate checks the arguments.
func (o *ValidateOptions) Validate() error {
	if len(o.Files) == 0 {
		return fmt.Errorf("validate needs at least one file (an argument or -f), or - for stdin")
	}
	if o.Output != outputText && o.Output != outputJSON {
		return fmt.Errorf("--output %q: must be text or json", o.Output)
	}
	return nil
}

// validateJSON is the -o json document.
type validateJSON struct {
	Files []validateFileJSON `json:"files"`
}

type validateFileJSON struct {
	File   string              `json:"file"`
	Valid  bool                `json:"valid"`
	Errors []validateErrorJSON `json:"errors"`
}

type validateErrorJSON struct {
	Field   string `json:"field"`
	Type    string `json:"type"`
	Detail  string `json:"detail"`
	Message string `json:"message"`
}

// Run validates each file, printing "FILE: valid" or one line per error (or the JSON
// document).
func (o *ValidateOptions) Run() error {
	doc := validateJSON{Files: []validateFileJSON{}}
	invalid := false
	for _, path := range o.Files {
		name, data, err := readFile(path, o.In)
		if err != nil {
			return err
		}
		_, err = loadPolicy(data, policy.Options{})
		errs := policyErrors(err)
		if errs == nil && err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		file := validateFileJSON{File: name, Valid: errs == nil, Errors: []validateErrorJSON{}}
		invalid = invalid || errs != nil
		for _, e := range errs {
			file.Errors = append(file.Errors, validateErrorJSON{Field: e.Field, Type: string(e.Type), Detail: e.Detail, Message: e.Error()})
		}
		doc.Files = append(doc.Files, file)
		if o.Output == outputJSON {
			continue
		}
		if errs == nil {
			fmt.Fprintf(o.Out, "%s: valid\n", name)
		}
		for _, e := range errs {
			fmt.Fprintf(o.Out, "%s: %s\n", name, e.Error())
		}
	}
	if o.Output == outputJSON {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			return err
		}
	}
	if invalid {
		return exitCode(ExitFound)
	}
	return nil
}
