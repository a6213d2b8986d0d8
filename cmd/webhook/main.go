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
// What survives is mostly the informer caches and the start-up pass's queue (about 17 MiB
// at 10,000 workloads, with the caches' compact entries, workload.Cached), the binary's own
// pages about 24 MiB of the resident set and the runtime's stacks and metadata a few more,
// so the heap's growth between collections decides whether the peak stays under 64 MiB.
// Measured with the e2e memory test at 10,000 Deployments: 59.0 MiB at 50 (77 collections
// in the first 25 s), 68.0 MiB at Go's default (38); docs/benchmarks.md, Memory. The extra
// collections cost little CPU at this process's allocation rate. No GOMEMLIMIT is set: the
// bound holds without one, and a soft limit near the live heap makes the collector run
// several times a second. GOGC (and GOMEMLIMIT) in the environment still take precedence.
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
