package harness

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// Sample is the outcome of a measured run: every request's latency and the wall time the
// run took (for throughput at a concurrency above one, latencies overlap).
type Sample struct {
	Latencies []time.Duration
	Elapsed   time.Duration
	Errors    int
	// FirstError is the first error seen, for the report.
	FirstError error
}

// Add appends another run of the same cell: the samples of interleaved slices pool into one.
func (s *Sample) Add(o Sample) {
	s.Latencies = append(s.Latencies, o.Latencies...)
	s.Elapsed += o.Elapsed
	s.Errors += o.Errors
	if s.FirstError == nil {
		s.FirstError = o.FirstError
	}
}

// Count is the number of successful requests.
func (s *Sample) Count() int { return len(s.Latencies) }

// PerSecond is the throughput: successful requests per second of wall time.
func (s *Sample) PerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(len(s.Latencies)) / s.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0 < p <= 100) of the latencies.
func (s *Sample) Percentile(p float64) time.Duration {
	return Percentile(s.Latencies, p)
}

// Percentile returns the p-th percentile (0 < p <= 100) of l by the nearest-rank method, or
// 0 for an empty l. l is left as it is.
func Percentile(l []time.Duration, p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	sorted := slices.Clone(l)
	slices.Sort(sorted)
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// recorder collects latencies from concurrent workers.
type recorder struct {
	mu    sync.Mutex
	lat   []time.Duration
	errs  int
	first error
}

func (r *recorder) record(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs++
		if r.first == nil {
			r.first = err
		}
		return
	}
	r.lat = append(r.lat, d)
}

// RunConcurrently calls op(worker, i) n times in total from c workers, each worker taking
// the next index, and measures every call.
func RunConcurrently(c, n int, op func(worker, i int) error) Sample {
	rec := &recorder{lat: make([]time.Duration, 0, n)}
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			for i := range next {
				t0 := time.Now()
				err := op(w, i)
				rec.record(time.Since(t0), err)
			}
		})
	}
	wg.Wait()
	return Sample{Latencies: rec.lat, Elapsed: time.Since(start), Errors: rec.errs, FirstError: rec.first}
}

// RunFor calls op from c workers until d has passed, and measures every call.
func RunFor(c int, d time.Duration, op func(worker, i int) error) Sample {
	rec := &recorder{}
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range c {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				err := op(w, i)
				rec.record(time.Since(t0), err)
			}
		})
	}
	wg.Wait()
	return Sample{Latencies: rec.lat, Elapsed: time.Since(start), Errors: rec.errs, FirstError: rec.first}
}

// Write is one write of a Load: what was sent to which object, what the API server answered.
type Write struct {
	Start  time.Time
	Dur    time.Duration
	Target string
	Sent   int32
	Got    int32 // replicas in the API server's answer
	Err    error
}

// Load sends one write per tick, each in its own goroutine so that a write stalled by a
// webhook does not slow the stream down, until its context ends (an open-loop load, unlike
// RunConcurrently's closed loop).
type Load struct {
	mu     sync.Mutex
	writes []Write
	wg     sync.WaitGroup
	done   chan struct{}
}

// StartLoad calls write perSecond times a second until ctx ends. Each write gets a context
// of its own, with a 60 s timeout: stopping the stream never cancels a write in flight.
// write's Start and Dur are filled in by the Load.
func StartLoad(ctx context.Context, perSecond int, write func(ctx context.Context, i int) Write) *Load {
	l := &Load{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.wg.Add(1)
			go func(i int) {
				defer l.wg.Done()
				wctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				start := time.Now()
				w := write(wctx, i)
				w.Start, w.Dur = start, time.Since(start)
				l.mu.Lock()
				l.writes = append(l.writes, w)
				l.mu.Unlock()
			}(i)
		}
	}()
	return l
}

// Wait waits for the stream to stop (its context ended) and for the writes in flight, and
// returns every write in the order they started.
func (l *Load) Wait() []Write {
	<-l.done
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	sort.Slice(l.writes, func(i, j int) bool { return l.writes[i].Start.Before(l.writes[j].Start) })
	return l.writes
}

// Latencies summarizes durations: median, 99th percentile and maximum.
type Latencies struct{ P50, P99, Max time.Duration }

// Summarize returns the latencies of writes (by Percentile).
func Summarize(ws []Write) Latencies {
	d := make([]time.Duration, len(ws))
	for i, w := range ws {
		d[i] = w.Dur
	}
	return Latencies{P50: Percentile(d, 50), P99: Percentile(d, 99), Max: Percentile(d, 100)}
}

func (l Latencies) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("p50 %v, p99 %v, max %v", r(l.P50), r(l.P99), r(l.Max))
}
