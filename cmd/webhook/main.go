// Command webhook runs replica-policy: the mutating and validating admission webhooks that
// keep workload replicas within a policy's bounds, and the scaler that corrects workloads
// already outside them. The wiring lives in package app.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/replica-policy/replica-policy/cmd/webhook/app"
)

// gcPercent is the collector's target when GOGC is not set: collect once the heap has grown
// by a quarter of what survived the last collection, not by all of it (Go's default of 100).
// At 10,000 workloads the resident set is about 27 MiB of the binary's own pages, resident
// before the first workload is listed, about 6 MiB of the runtime's own, and the heap: about
// 9 MiB live at the start-up peak, so the heap's growth between collections decides whether
// the peak stays under the design's 48 MiB. Measured with the e2e memory test at 10,000
// workloads (docs/benchmarks.md, Memory): 50.0-51.8 MiB at 50, 44.3-46.6 at 25 (with the
// memory profiler off, below). At 100,000 workloads the live heap is about 90 MiB and a
// collection runs every 22 MiB allocated: more often than at 50, never back to back, as a
// soft memory limit under the live heap would (ready after 8.4-9.0 s, peak 114 MiB). 20
// gave 2 MiB less at 10,000 but was ready only after 19.9 s at 100,000. No GOMEMLIMIT is
// set. GOGC (and GOMEMLIMIT) in the environment still take precedence.
const gcPercent = 25

// init turns the runtime's heap profiler off: the binary serves no profiles, and each sample
// (one per 512 KiB allocated, Go's default) walks the allocating stack, which keeps pages of
// the binary's function tables resident and holds the profile's buckets. With it off and the
// metrics served uncompressed (app's managerOptions), the binary's resident pages at the
// 10,000-workload peak fell from 28.4-29.4 MiB to 26.7-27.7 (smaps_rollup).
func init() {
	runtime.MemProfileRate = 0
}

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
