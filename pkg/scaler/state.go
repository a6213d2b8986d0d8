package scaler

import (
	"sync"
	"time"
)

// tracker holds what the scaler remembers per workload between reconciles: whether it is
// out of bounds (the out_of_bounds gauge is the count of these), which report it already
// made (so that resyncs do not repeat Events), and its recent corrections (to notice a
// fight with another writer). Compliant, quiet workloads have no entry.
type tracker struct {
	threshold           int
	window              time.Duration
	backoff, maxBackoff time.Duration

	mu        sync.Mutex
	items     map[Request]*itemState
	oob       map[[2]string]int // {rule, action} -> workloads
	hpaOOB    map[[2]string]int // {rule, action} -> HorizontalPodAutoscalers
	soOOB     map[[2]string]int // {rule, action} -> KEDA ScaledObjects
	contested map[[2]string]int // {rule, kind} -> workloads
}

type itemState struct {
	// autoscaler is set for a HorizontalPodAutoscaler, counted in its own gauge.
	autoscaler bool
	oob        [2]string // {rule, action} while out of bounds, zero otherwise
	reported   string    // what the last ReplicasOutOfBounds Event said, in short
	// scaledObject is set for a KEDA ScaledObject, counted in its own gauge.
	scaledObject bool
	// corrections made within the window, oldest first.
	corrections []time.Time
	// strikes counts contests since the workload was last left alone for a whole window;
	// while it is not zero a single correction within the window is a contest.
	strikes        int
	contestedUntil time.Time
	contested      [2]string // {rule, kind} while counted in the contested gauge
}

func newTracker(o Options) *tracker {
	return &tracker{
		threshold: o.ContestThreshold, window: o.ContestWindow,
		backoff: o.ContestBackoff, maxBackoff: o.ContestMaxBackoff,
		items:     map[Request]*itemState{},
		oob:       map[[2]string]int{},
		hpaOOB:    map[[2]string]int{},
		soOOB:     map[[2]string]int{},
		contested: map[[2]string]int{},
	}
}

func (t *tracker) state(req Request) *itemState {
	s, ok := t.items[req]
	if !ok {
		s = &itemState{autoscaler: req.Kind == AutoscalerGroupKind, scaledObject: req.Kind == ScaledObjectGroupKind}
		t.items[req] = s
	}
	return s
}

// known reports whether the tracker holds anything about req.
func (t *tracker) known(req Request) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.items[req]
	return ok
}

// inBounds records that req is compliant (or no rule applies to it) at now.
func (t *tracker) inBounds(req Request, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.items[req]
	if !ok {
		return
	}
	t.setOOB(s, [2]string{})
	t.setContested(s, [2]string{})
	s.reported = ""
	t.prune(s, now)
	if len(s.corrections) == 0 && s.strikes == 0 {
		delete(t.items, req)
	}
}

// outOfBounds records that req is outside the bounds of oob ({rule, action}), and reports
// whether report differs from the last report made for req, remembering it: an
// out-of-bounds Event is recorded once per workload, value and rule.
func (t *tracker) outOfBounds(req Request, oob [2]string, report string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(req)
	t.setOOB(s, oob)
	if s.reported == report {
		return false
	}
	s.reported = report
	return true
}

// admission is the tracker's answer to "may req be corrected now?".
type admission struct {
	// ok: correct it now.
	ok bool
	// wait: the workload is contested; ask again after wait.
	wait time.Duration
	// contested: it became contested just now (record an Event); backoff is how long.
	contested bool
	backoff   time.Duration
	// recent is the number of corrections that made it contested.
	recent int
}

// admit records that req is outside the bounds of oob ({rule, action}) and decides
// whether it may be corrected at now; label is {rule, kind} for the contested gauge. A
// correction it lets through is counted at once, so that a correction consults the tracker
// once; notCorrected takes it back when the write did not happen.
func (t *tracker) admit(req Request, oob, label [2]string, now time.Time) admission {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(req)
	t.setOOB(s, oob)
	if now.Before(s.contestedUntil) {
		t.setContested(s, label)
		return admission{wait: s.contestedUntil.Sub(now)}
	}
	// The back-off is over: no longer counted as contested; one probe correction follows.
	t.setContested(s, [2]string{})
	t.prune(s, now)
	limit := t.threshold
	if s.strikes > 0 {
		limit = 1
	}
	if len(s.corrections) < limit {
		s.corrections = append(s.corrections, now)
		return admission{ok: true}
	}
	s.strikes++
	backoff := t.backoff
	for i := 1; i < s.strikes && backoff < t.maxBackoff; i++ {
		backoff *= 2
	}
	backoff = min(backoff, t.maxBackoff)
	recent := len(s.corrections)
	s.contestedUntil = now.Add(backoff)
	s.corrections = nil
	t.setContested(s, label)
	return admission{wait: backoff, contested: true, backoff: backoff, recent: recent}
}

// notCorrected takes back the correction admit counted last for req: its write found the
// workload moved, or failed.
func (t *tracker) notCorrected(req Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.items[req]; ok && len(s.corrections) > 0 {
		s.corrections = s.corrections[:len(s.corrections)-1]
	}
}

// prune drops corrections older than the window and forgives past contests once a whole
// window has passed since the last back-off ended without a correction.
func (t *tracker) prune(s *itemState, now time.Time) {
	cut := now.Add(-t.window)
	i := 0
	for i < len(s.corrections) && !s.corrections[i].After(cut) {
		i++
	}
	s.corrections = s.corrections[i:]
	if s.strikes > 0 && len(s.corrections) == 0 && now.After(s.contestedUntil.Add(t.window)) {
		s.strikes = 0
	}
}

// policyChanged forgets every workload's correction history when the policy in force
// changes (or appears, or goes): a value that got outside the bounds while there was no
// policy, or under an earlier one, was not set by a writer fighting this policy. Without
// this, a policy ConfigMap replaced a few times by a GitOps tool made the scaler back off
// from the very workloads it had to correct. Workloads in a back-off are corrected again at
// once (a policy change also queues every workload).
func (t *tracker) policyChanged() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.items {
		s.corrections, s.strikes, s.contestedUntil = nil, 0, time.Time{}
		t.setContested(s, [2]string{})
	}
}

// forget drops everything known about req (deleted, exempt, or being deleted).
func (t *tracker) forget(req Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.items[req]; ok {
		t.setOOB(s, [2]string{})
		t.setContested(s, [2]string{})
		delete(t.items, req)
	}
}

// reset forgets every workload and withdraws this tracker's gauge series: the scaler
// stopped (lost leadership, shutdown) and another instance will report.
func (t *tracker) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.items {
		t.setOOB(s, [2]string{})
		t.setContested(s, [2]string{})
	}
	t.items = map[Request]*itemState{}
}

// Counts of workloads per label set are kept here and mirrored into the gauges; a series
// whose count drops to zero is deleted, so that a rule removed from the policy disappears.

func (t *tracker) setOOB(s *itemState, to [2]string) {
	if s.oob == to {
		return
	}
	switch {
	case s.autoscaler:
		move(t.hpaOOB, s.oob, to, autoscalersOutOfBounds.WithLabelValues, autoscalersOutOfBounds.DeleteLabelValues)
	case s.scaledObject:
		move(t.soOOB, s.oob, to, scaledObjectsOutOfBounds.WithLabelValues, scaledObjectsOutOfBounds.DeleteLabelValues)
	default:
		move(t.oob, s.oob, to, outOfBounds.WithLabelValues, outOfBounds.DeleteLabelValues)
	}
	s.oob = to
}

func (t *tracker) setContested(s *itemState, to [2]string) {
	if s.contested == to {
		return
	}
	move(t.contested, s.contested, to, contestedGauge.WithLabelValues, contestedGauge.DeleteLabelValues)
	s.contested = to
}

func move[G interface{ Set(float64) }](counts map[[2]string]int, from, to [2]string, series func(...string) G, del func(...string) bool) {
	if from != ([2]string{}) {
		counts[from]--
		if counts[from] <= 0 {
			delete(counts, from)
			del(from[0], from[1])
		} else {
			series(from[0], from[1]).Set(float64(counts[from]))
		}
	}
	if to != ([2]string{}) {
		counts[to]++
		series(to[0], to[1]).Set(float64(counts[to]))
	}
}
