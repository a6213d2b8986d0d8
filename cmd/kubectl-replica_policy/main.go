// Command kubectl-replica_policy is the kubectl plugin "kubectl replica-policy": validate
// replica policies, check manifests, explain decisions and audit a cluster with the
// webhook's own verdict. The logic is in package cli.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/replica-policy/replica-policy/cmd/kubectl-replica_policy/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
