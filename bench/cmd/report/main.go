// Command report runs replica-policy's benchmark suite (bench/), prints the tables and, with
// --out, writes them into docs/benchmarks.md between the generated-section markers.
//
//	go run ./bench/cmd/report --out docs/benchmarks.md   # the full suite: make bench
//	go run ./bench/cmd/report --brief                    # every benchmark once, tiny: make test
//
// It needs the control plane of hack/controlplane.sh (KUBEBUILDER_ASSETS, or it builds it),
// kubectl, and make (to build the binary unless --binary names one).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/replica-policy/replica-policy/internal/bench"
	"github.com/replica-policy/replica-policy/pkg/admission"
)

// Markers of the generated section of docs/benchmarks.md; the text around them is kept.
const (
	beginMarker = "<!-- BEGIN GENERATED: go run ./bench/cmd/report (make bench) rewrites this section -->"
	endMarker   = "<!-- END GENERATED -->"
)

type options struct {
	brief  bool
	out    string
	binary string
	dir    string
	keep   bool
	only   string
	rounds int
	sizes  string
	scale  string
}

// sizes of the suite: full for the figures of docs/benchmarks.md, brief so that make test
// runs every benchmark once in well under a minute.
type sizes struct {
	decideTime  time.Duration
	cpuTime     time.Duration
	cpuReps     int
	handler     bench.HandlerOptions
	e2e         bench.E2EOptions
	admission   bench.AdmissionCostOptions
	scaler      []int
	scalerLimit time.Duration
	scale       bench.ScaleOptions
}

var (
	full = sizes{
		decideTime: time.Second, cpuTime: time.Second, cpuReps: 3,
		handler: bench.HandlerOptions{Rounds: 5, Slice: time.Second},
		e2e:     bench.E2EOptions{Rounds: 12, Sequential: 40, Concurrent: 160},
		// 8 rounds of 100 writes per configuration, write and concurrency: about 3 minutes.
		admission: bench.AdmissionCostOptions{Rounds: 8, Writes: 100},
		scaler:    []int{1000, 10000}, scalerLimit: 10 * time.Minute,
		scale: bench.ScaleOptions{Sizes: []int{1000, 10000, 100000}, Rounds: 5, Reviews: 2000},
	}
	brief = sizes{
		decideTime: 2 * time.Millisecond, cpuTime: 2 * time.Millisecond, cpuReps: 1,
		handler:   bench.HandlerOptions{Rounds: 1, Count: 16},
		e2e:       bench.E2EOptions{Rounds: 1, Sequential: 3, Concurrent: 8},
		admission: bench.AdmissionCostOptions{Rounds: 1, Writes: 8},
		scaler:    []int{20, 40}, scalerLimit: time.Minute,
		scale: bench.ScaleOptions{Sizes: []int{100, 300}, Rounds: 1, Reviews: 20},
	}
)

func main() {
	var o options
	flag.BoolVar(&o.brief, "brief", false, "Run every benchmark once with tiny counts (a smoke test for make test); the figures mean nothing.")
	flag.StringVar(&o.out, "out", "", "Write the report into this Markdown file (docs/benchmarks.md), between its generated-section markers.")
	flag.StringVar(&o.binary, "binary", "", "The webhook binary to run; default: built with `make build` into the work folder.")
	flag.StringVar(&o.dir, "dir", "", "Work folder (control plane files, logs); default: a temporary folder.")
	flag.BoolVar(&o.keep, "keep", false, "Keep the work folder.")
	flag.StringVar(&o.only, "only", "", "Comma-separated sections to run: decide, handler, e2e, scaler, scale (default: all).")
	flag.IntVar(&o.rounds, "rounds", 0, "Rounds of the handler and end-to-end benchmarks (default: 5 and 12, or 1 with --brief).")
	flag.StringVar(&o.sizes, "scaler-sizes", "", "Comma-separated numbers of Deployments for the scaler and memory benchmarks, at most two, growing (default: 1000,10000, or 20,40 with --brief).")
	flag.StringVar(&o.scale, "scale-sizes", "", "Comma-separated numbers of Deployments for the scale benchmark, growing, at least 100 (default: 1000,10000,100000, or 100,300 with --brief).")
	flag.Parse()
	// The reference webhook's controller-runtime server logs nothing worth the noise.
	crlog.SetLogger(logr.Discard())
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	sz := full
	if o.brief {
		sz = brief
	}
	if o.rounds > 0 {
		sz.handler.Rounds, sz.e2e.Rounds = o.rounds, o.rounds
	}
	var err error
	if o.sizes != "" {
		if sz.scaler, err = parseSizes("--scaler-sizes", o.sizes); err != nil {
			return err
		}
	}
	if o.scale != "" {
		if sz.scale.Sizes, err = parseSizes("--scale-sizes", o.scale); err != nil {
			return err
		}
	}
	want := func(section string) bool {
		return o.only == "" || strings.Contains(","+o.only+",", ","+section+",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...) }

	r := &bench.Report{Brief: o.brief, Command: command(), Started: time.Now(), Machine: bench.DescribeMachine(), LoadBefore: bench.LoadAverage()}
	r.LoadMax = r.LoadBefore
	other := bench.StartOtherCPU(2 * time.Second)
	var loadMu sync.Mutex
	sampler, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	go func() {
		for {
			select {
			case <-sampler.Done():
				return
			case <-time.After(5 * time.Second):
				loadMu.Lock()
				r.LoadMax = max(r.LoadMax, bench.LoadAverage())
				loadMu.Unlock()
			}
		}
	}()
	fail := func(section string, err error) {
		logf("%s: %v", section, err)
		r.Errors = append(r.Errors, fmt.Sprintf("%s: %v", section, err))
	}

	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "replica-policy-bench-")
		if err != nil {
			return err
		}
		dir = d
		if !o.keep {
			defer os.RemoveAll(d)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	if want("decide") {
		logf("decision function: %d kinds x %d policy sizes", len(bench.RuleKinds), len(bench.PolicySizes))
		r.Decide = map[string]bench.OpCost{}
		for _, kind := range bench.RuleKinds {
			for _, n := range bench.PolicySizes {
				snap, req, err := bench.DecideCase(kind, n)
				if err != nil {
					fail("decide", err)
					continue
				}
				r.Decide[fmt.Sprintf("%s/%d", kind, n)] = bench.MeasureOp(func() { admission.Decide(snap, req, admission.Mutate) }, sz.decideTime)
			}
		}
	}

	if want("handler") {
		logf("handlers in-process (CPU per request)")
		var err error
		if r.HandlerCPU, err = bench.MeasureHandlerCPU(sz.cpuTime, sz.cpuReps); err != nil {
			fail("handler CPU", err)
		}
		logf("handlers over HTTPS: %d cells, %d rounds", len(bench.HandlerCells()), sz.handler.Rounds)
		hdir := filepath.Join(dir, "handler")
		if err := os.MkdirAll(hdir, 0o755); err != nil {
			return err
		}
		s, err := bench.StartHandlerServer(hdir)
		if err != nil {
			fail("handler", err)
		} else {
			r.HandlerOpt = sz.handler
			if r.Handler, err = s.RunHandlers(sz.handler); err != nil {
				fail("handler", err)
			}
			s.Stop()
		}
	}

	if want("e2e") || want("scaler") {
		if err := clusterSections(ctx, o, sz, r, filepath.Join(dir, "cluster"), want, fail); err != nil {
			fail("cluster", err)
		}
	}

	if want("scale") {
		sz.scale.Dir, sz.scale.Binary, sz.scale.Log = filepath.Join(dir, "scale"), o.binary, os.Stderr
		logf("scale: %v Deployments", sz.scale.Sizes)
		if r.Scale, err = bench.RunScale(ctx, sz.scale); err != nil {
			fail("scale", err)
		}
	}

	stopSampler()
	r.OtherCPU = other.Stop(r.Machine.Cores)
	r.LoadAfter = bench.LoadAverage()
	loadMu.Lock()
	r.LoadMax = max(r.LoadMax, r.LoadAfter)
	loadMu.Unlock()
	r.Duration = time.Since(r.Started)
	md := r.Markdown()
	fmt.Println(md)
	if o.out != "" {
		if err := writeSection(o.out, md); err != nil {
			return err
		}
		logf("wrote %s", o.out)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("%d sections failed", len(r.Errors))
	}
	return nil
}

func clusterSections(ctx context.Context, o options, sz sizes, r *bench.Report, dir string, want func(string) bool, fail func(string, error)) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	env, err := bench.StartEnv(ctx, bench.EnvOptions{Dir: dir, Binary: o.binary, Log: os.Stderr})
	if err != nil {
		return err
	}
	defer env.Stop()
	if env.Native != nil {
		r.NativeWebhook = env.Native.Webhook
	}
	if v, err := env.Client.Discovery().ServerVersion(); err == nil {
		r.APIServerVersion = v.GitVersion
	}
	time.Sleep(2 * time.Second) // idle: nothing but the informers' start-up behind it
	if r.MemoryIdle, err = env.WebhookMemory(); err != nil {
		fail("memory", err)
	}
	if want("e2e") {
		if r.E2E, err = env.RunE2E(ctx, sz.e2e); err != nil {
			fail("e2e", err)
			if r.E2E != nil && r.E2E.Cell(bench.ConfigNone, bench.Ops[0], 1).Sample.Count() == 0 {
				r.E2E = nil
			}
		}
		if r.MemoryAfterE2E, err = env.WebhookMemory(); err != nil {
			fail("memory", err)
		}
		if r.AdmissionCost, err = env.RunAdmissionCost(ctx, sz.admission); err != nil {
			fail("e2e", err)
		}
		if r.MemoryReference, err = env.ReferenceMemory(); err != nil {
			fail("memory", err)
		}
	}
	if want("scaler") {
		if r.Scaler, err = env.RunScaler(ctx, sz.scaler, sz.scalerLimit); err != nil {
			fail("scaler", err)
		}
	}
	return nil
}

// parseSizes reads a flag's comma-separated list of positive numbers.
func parseSizes(flagName, list string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s %q: %q is not a positive number", flagName, list, f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// writeSection replaces the generated section of the Markdown file at path, or creates the
// file with only that section.
func writeSection(path, md string) error {
	section := beginMarker + "\n\n" + md + "\n" + endMarker
	old, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return os.WriteFile(path, []byte("# Benchmarks\n\n"+section+"\n"), 0o644)
	}
	if err != nil {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no generated section (%q ... %q)", path, beginMarker, endMarker)
	}
	return os.WriteFile(path, []byte(s[:i]+section+s[j+len(endMarker):]), 0o644)
}

// command is how this run was started, for the report's reproduction line.
func command() string {
	if c := os.Getenv("BENCH_COMMAND"); c != "" {
		return c
	}
	return "go run ./bench/cmd/report " + strings.Join(os.Args[1:], " ")
}
