package bench

import (
	"fmt"
	"math"
	"slices"
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

// Percentile returns the p-th percentile (0 < p <= 100) by the nearest-rank method, or 0
// without samples.
func (s *Sample) Percentile(p float64) time.Duration {
	return percentile(s.Latencies, p)
}

func percentile(l []time.Duration, p float64) time.Duration {
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

// runConcurrently calls op(worker, i) n times in total from c workers, each worker taking
// the next index, and measures every call.
func runConcurrently(c, n int, op func(worker, i int) error) Sample {
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

// runFor calls op from c workers until d has passed, and measures every call.
func runFor(c int, d time.Duration, op func(worker, i int) error) Sample {
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

// ms renders a duration in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// us renders a duration in microseconds.
func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

// ratio renders a/b, or "n/a" when b is not positive.
func ratio(a, b float64) string {
	if b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}
