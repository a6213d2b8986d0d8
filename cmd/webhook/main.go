// Command webhook runs replica-policy: the mutating and validating admission webhooks that
// keep workload replicas within a policy's bounds, and the scaler that corrects workloads
// already outside them. The wiring lives in package app.
package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/replica-policy/replica-policy/cmd/webhook/app"
)

func main() {
	opts := app.NewOptions()
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	opts.AddFlags(fs)
	_ = fs.Parse(os.Args[1:]) // ExitOnError: Parse exits on its own
	if err := app.Run(ctrl.SetupSignalHandler(), opts); err != nil {
		fmt.Fprintf(os.Stderr, "replica-policy: %v\n", err)
		os.Exit(1)
	}
}
