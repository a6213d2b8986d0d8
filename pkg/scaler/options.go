package scaler

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Options configure the scaler. Start from DefaultOptions: the zero value is not valid.
type Options struct {
	// DryRun reports what clamp rules would change (Event ReplicasOutOfBounds, metric
	// replicapolicy_scaler_dry_run_would_correct_total) and changes nothing.
	DryRun bool
	// ResyncPeriod is how often every workload in the cache is evaluated again, on top of
	// the passes that start-up, policy changes and workload changes trigger. 0 disables it.
	ResyncPeriod time.Duration
	// MaxCorrectionsPerSecond caps scale writes across all workloads, so that a policy
	// mistake cannot storm the API server; CorrectionBurst is the token bucket's size.
	MaxCorrectionsPerSecond float64
	CorrectionBurst         int
	// MaxConcurrentReconciles is the number of workers.
	MaxConcurrentReconciles int
	// EventBudget is how many Events the scaler records on workloads per pass of
	// EventWindow; past it they are summarised, one Event per namespace, rule and reason
	// at the end of the pass (events.go).
	EventBudget int
	EventWindow time.Duration

	// A workload corrected ContestThreshold times within ContestWindow is contested:
	// another writer (an HPA, a GitOps tool) keeps setting it outside its bounds. The
	// scaler then stops correcting it for ContestBackoff, doubling with every further
	// contest up to ContestMaxBackoff, and tries once more after each back-off.
	ContestThreshold  int
	ContestWindow     time.Duration
	ContestBackoff    time.Duration
	ContestMaxBackoff time.Duration
}

// DefaultOptions returns the defaults that the flags show.
func DefaultOptions() Options {
	return Options{
		// Drift is caught by watches; the resync is a safety net that reads only the cache.
		ResyncPeriod: 10 * time.Minute,
		// 50 writes/s corrects a correction storm of 10,000 violators (a policy tightened
		// over the cluster) in 3m20s, within the 5 minutes the design asks for, with room for
		// retries; a correction is one write and one Event, so the webhook's default
		// --kube-api-qps of 100 carries it. (It was 10/s: 17 minutes for 10,000.)
		MaxCorrectionsPerSecond: 50,
		CorrectionBurst:         20,
		// Reconciles of compliant workloads read only the cache; 4 workers keep a full pass
		// of thousands of workloads short while writes wait for the token bucket.
		MaxConcurrentReconciles: 4,
		// 100 Events a minute name every corrected workload of an ordinary change (a
		// namespace's worth of workloads, a policy tightened over a few teams) and bound a
		// storm: the broadcaster keeps what it sent for up to 12 minutes, so at most about
		// 1,200 Events and their summaries, 2 MiB, however many workloads are corrected.
		EventBudget: 100,
		EventWindow: time.Minute,
		// An HPA syncs every 15 s and a GitOps tool every few minutes: 3 corrections in
		// 10 minutes is a fight, not drift.
		ContestThreshold:  3,
		ContestWindow:     10 * time.Minute,
		ContestBackoff:    5 * time.Minute,
		ContestMaxBackoff: time.Hour,
	}
}

// AddFlags binds the options to flags named --scaler-*, with the current values as defaults.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.DryRun, "scaler-dry-run", o.DryRun, "Report (Events, metrics) what clamp rules would change in existing workloads, without changing it.")
	fs.DurationVar(&o.ResyncPeriod, "scaler-resync-period", o.ResyncPeriod, "How often the scaler evaluates every workload again from its cache (0 disables); workload and policy changes are acted on at once regardless.")
	fs.Float64Var(&o.MaxCorrectionsPerSecond, "scaler-max-corrections-per-second", o.MaxCorrectionsPerSecond, "Cap on scale subresource writes per second across all workloads.")
	fs.IntVar(&o.CorrectionBurst, "scaler-correction-burst", o.CorrectionBurst, "Scale writes allowed in a burst above --scaler-max-corrections-per-second.")
	fs.IntVar(&o.MaxConcurrentReconciles, "scaler-workers", o.MaxConcurrentReconciles, "Workloads the scaler evaluates concurrently.")
	fs.IntVar(&o.EventBudget, "scaler-event-budget", o.EventBudget, "Events the scaler records on workloads per --scaler-event-window; past it, one summary Event per namespace, rule and reason at the window's end says how many workloads it covers.")
	fs.DurationVar(&o.EventWindow, "scaler-event-window", o.EventWindow, "The pass over which --scaler-event-budget counts, from the first Event after a quiet spell.")
	fs.IntVar(&o.ContestThreshold, "scaler-contest-threshold", o.ContestThreshold, "Corrections of one workload within --scaler-contest-window after which the scaler stops fighting another writer and reports it.")
	fs.DurationVar(&o.ContestWindow, "scaler-contest-window", o.ContestWindow, "Window in which --scaler-contest-threshold corrections mark a workload as contested.")
	fs.DurationVar(&o.ContestBackoff, "scaler-contest-backoff", o.ContestBackoff, "How long the scaler leaves a contested workload alone the first time; doubles with each further contest.")
	fs.DurationVar(&o.ContestMaxBackoff, "scaler-contest-max-backoff", o.ContestMaxBackoff, "Upper bound of the doubling contest back-off.")
}

// Validate reports every invalid option, named by its flag.
func (o *Options) Validate() error {
	var errs []error
	if o.ResyncPeriod < 0 {
		errs = append(errs, fmt.Errorf("--scaler-resync-period must not be negative, got %s", o.ResyncPeriod))
	}
	if !(o.MaxCorrectionsPerSecond > 0) { // also rejects NaN
		errs = append(errs, fmt.Errorf("--scaler-max-corrections-per-second must be greater than 0, got %v", o.MaxCorrectionsPerSecond))
	}
	if o.CorrectionBurst < 1 {
		errs = append(errs, fmt.Errorf("--scaler-correction-burst must be at least 1, got %d", o.CorrectionBurst))
	}
	if o.MaxConcurrentReconciles < 1 {
		errs = append(errs, fmt.Errorf("--scaler-workers must be at least 1, got %d", o.MaxConcurrentReconciles))
	}
	if o.EventBudget < 0 {
		errs = append(errs, fmt.Errorf("--scaler-event-budget must not be negative, got %d", o.EventBudget))
	}
	if o.EventWindow <= 0 {
		errs = append(errs, fmt.Errorf("--scaler-event-window must be positive, got %s", o.EventWindow))
	}
	if o.ContestThreshold < 1 {
		errs = append(errs, fmt.Errorf("--scaler-contest-threshold must be at least 1, got %d", o.ContestThreshold))
	}
	if o.ContestWindow <= 0 {
		errs = append(errs, fmt.Errorf("--scaler-contest-window must be positive, got %s", o.ContestWindow))
	}
	if o.ContestBackoff <= 0 {
		errs = append(errs, fmt.Errorf("--scaler-contest-backoff must be positive, got %s", o.ContestBackoff))
	}
	if o.ContestMaxBackoff < o.ContestBackoff {
		errs = append(errs, fmt.Errorf("--scaler-contest-max-backoff (%s) must be at least --scaler-contest-backoff (%s)", o.ContestMaxBackoff, o.ContestBackoff))
	}
	return errors.Join(errs...)
}
