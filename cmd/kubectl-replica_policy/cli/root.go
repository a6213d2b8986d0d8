// Package cli is kubectl replica-policy: validate a policy, check manifests against it,
// explain a decision, audit a live cluster. It judges with the webhook's own parser and
// verdict (pkg/policy), so its answers are the webhook's.
package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/replica-policy/replica-policy/pkg/version"
)

// Exit codes.
const (
	ExitOK    = 0 // valid, or nothing at or above --fail-on
	ExitFound = 1 // an invalid policy (validate), results at or above --fail-on (check, audit)
	ExitError = 2 // bad flags, unreadable input, an invalid policy to judge with, an unreachable cluster
)

// exitError ends the command with a code; err, when set, is printed on stderr in one line.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode ends the command with code and no message: the output said it all.
func exitCode(code int) error { return &exitError{code: code} }

// NewCommand is the root command, kubectl replica-policy, writing to streams.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubectl-replica_policy",
		Short: "Validate replica policies, check manifests, explain decisions, audit a cluster, compile native policies",
		Long: `kubectl replica-policy answers, before a merge or a policy change, what the replica-policy
webhook would do: it runs the webhook's own policy parser and verdict.

Exit codes: 0 valid, or no result at or above --fail-on; 1 an invalid policy (validate) or
a result at or above --fail-on (check, audit); 2 bad flags, unreadable input, an invalid
policy to judge with, or a cluster that cannot be reached, with a one-line reason on stderr.`,
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl replica-policy"},
		Version:     fmt.Sprintf("%s (commit %s)", version.Version, version.Commit),
		// Errors are printed once, in one line, by Main; a usage dump would bury them.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	cmd.SetVersionTemplate("kubectl-replica_policy {{.Version}}\n")
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.AddCommand(
		newValidateCommand(streams),
		newSubcommand(&CheckOptions{IOStreams: streams}, checkHelp),
		newSubcommand(&ExplainOptions{IOStreams: streams}, explainHelp),
		newAuditCommand(streams),
		newSubcommand(&CompileOptions{IOStreams: streams}, compileHelp),
	)
	return cmd
}

// Main runs the command line args and returns the process's exit code.
func Main(args []string, streams genericiooptions.IOStreams) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return ExitOK
	}
	code := ExitError // cobra's own errors: unknown flags, commands, arguments
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		err = ee.err
	}
	if err != nil {
		fmt.Fprintf(streams.ErrOut, "error: %s\n", oneLine(strings.TrimSpace(err.Error())))
	}
	return code
}

// fail wraps an error as exit 2; nil stays nil, and an exit error keeps its code.
func fail(err error) error {
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &exitError{code: ExitError, err: err}
}

// runSteps runs an Options' steps (Complete, Validate, Run) in order up to the first error,
// every error but the exit codes of exitCode being exit 2.
func runSteps(steps ...func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return fail(err)
		}
	}
	return nil
}

// options are those of a subcommand that takes no arguments and has nothing to complete
// once its flags are parsed.
type options interface {
	addFlags(fs *pflag.FlagSet)
	Validate() error
	Run() error
}

// newSubcommand is the subcommand whose help c gives (Use, Short, Long, Example), with o's
// flags; it takes no arguments and runs o's Validate, then Run.
func newSubcommand(o options, c cobra.Command) *cobra.Command {
	c.Args = cobra.NoArgs
	c.RunE = func(*cobra.Command, []string) error { return runSteps(o.Validate, o.Run) }
	o.addFlags(c.Flags())
	return &c
}
