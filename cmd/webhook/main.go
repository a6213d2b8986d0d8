// Command webhook runs replica-policy: the mutating and validating admission webhooks that
// keep workload replicas within a policy's bounds, and the scaler that corrects workloads
// already outside them. The wiring lives in package app.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/replica-policy/replica-policy/cmd/webhook/app"
)

// gcPercent is the collector's target when GOGC is not set: collect once the heap has grown
// by half of what survived the last collection, not by all of it (Go's default of 100).
// What survives is mostly the informer caches (about 27 MiB at 10,000 workloads, which no
// transform makes smaller: each cached object is a whole appsv1 struct), so with the default
// the heap grew to twice that between collections and the resident set stayed near its
// start-up peak. At 50 the peak at 10,000 workloads drops by about 15 MiB (docs/benchmarks.md,
// Memory) for twice as many collections, which cost little CPU at this process's allocation
// rate. GOGC (and GOMEMLIMIT) in the environment still take precedence.
const gcPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	opts := app.NewOptions()
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	opts.AddFlags(fs)
	_ = fs.Parse(os.Args[1:]) // ExitOnError: Parse exits on its own
	if err := app.Run(ctrl.SetupSignalHandler(), opts); err != nil {
		fmt.Fprintf(os.Stderr, "replica-policy: %v\n", err)
		os.Exit(1)
	}
}
