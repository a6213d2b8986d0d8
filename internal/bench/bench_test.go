package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/replica-policy/replica-policy/pkg/admission"
)

// BenchmarkDecide measures the decision function (policy match and clamp) for a policy of
// 1, 100 and 10,000 rules of names, globs or selectors, where only the last rule matches.
func BenchmarkDecide(b *testing.B) {
	for _, kind := range RuleKinds {
		for _, n := range PolicySizes {
			b.Run(fmt.Sprintf("%s/rules=%d", kind, n), func(b *testing.B) {
				snap, req, err := DecideCase(kind, n)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					admission.Decide(snap, req, admission.Mutate)
				}
			})
		}
	}
}

// BenchmarkHandler measures AdmissionReviews over HTTPS on 127.0.0.1 against replica-policy's
// handlers ("ours") and the allow-all baseline on the same controller-runtime server. b.N is
// the number of requests, spread over the cell's concurrency; metrics are requests per
// second and latency percentiles. The report (bench/cmd/report) runs the same cells
// interleaved and gives the ratios.
func BenchmarkHandler(b *testing.B) {
	s, err := StartHandlerServer(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Stop)
	for _, cell := range HandlerCells() {
		body, err := CellBody(cell)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.CheckCell(cell, body); err != nil {
			b.Fatal(err)
		}
		for _, server := range []struct{ name, path string }{{"ours", cell.Path}, {"allow-all", PathAllow}} {
			b.Run(fmt.Sprintf("%s/%s", server.name, cell), func(b *testing.B) {
				s.Load(server.path, body, cell.Concurrency, 2*cell.Concurrency, 0) // open the connections
				b.ResetTimer()
				smp := s.Load(server.path, body, cell.Concurrency, b.N, 0)
				b.StopTimer()
				if smp.Errors > 0 {
					b.Fatalf("%d errors, first: %v", smp.Errors, smp.FirstError)
				}
				b.ReportMetric(smp.PerSecond(), "req/s")
				b.ReportMetric(float64(smp.Percentile(50))/float64(time.Microsecond), "p50-µs")
				b.ReportMetric(float64(smp.Percentile(99))/float64(time.Microsecond), "p99-µs")
			})
		}
	}
}

// BenchmarkServeHTTP measures what one AdmissionReview costs the handler itself, without
// TLS or the network: replica-policy's handlers against the allow-all baseline.
func BenchmarkServeHTTP(b *testing.B) {
	handlers, err := InProcessHandlers()
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{PathMutate, PathValidate} {
		for _, body := range []string{BodyDeployment, BodyScale} {
			raw, err := CellBody(HandlerCell{Path: path, Body: body})
			if err != nil {
				b.Fatal(err)
			}
			for _, server := range []struct{ name, path string }{{"ours", path}, {"allow-all", PathAllow}, {"allow-all-adapter", PathAllowAdapter}} {
				b.Run(fmt.Sprintf("%s/%s/%s", server.name, path[1:], body), func(b *testing.B) {
					h := handlers[server.path]
					b.ReportAllocs()
					b.SetBytes(int64(len(raw)))
					for b.Loop() {
						ServeOnce(h, raw)
					}
				})
			}
		}
	}
}
