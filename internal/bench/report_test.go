package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// A report whose "no policy" writes take 10 ms and whose A/A namespace's take 10.1 ms: a
// resolution of 0.1 ms at concurrency 8.
func aaReport() *Report {
	res := &E2EResult{Cells: map[string]*E2ECell{}}
	for _, op := range Ops {
		for _, c := range E2EConcurrency {
			for cfg, d := range map[string]time.Duration{ConfigNone: 10 * time.Millisecond, ConfigNoneAgain: 10*time.Millisecond + 100*time.Microsecond} {
				res.Cells[e2eKey(cfg, op, c)] = &E2ECell{Config: cfg, Op: op, Concurrency: c, Sample: harness.Sample{Latencies: []time.Duration{d}}}
			}
			res.Cells[e2eKey(ConfigBuiltin, op, c)] = &E2ECell{Sample: harness.Sample{Latencies: []time.Duration{10 * time.Millisecond}}}
		}
	}
	return &Report{E2E: res}
}

func TestAtMostJudgesAgainstTheAAResolution(t *testing.T) {
	r := aaReport()
	if got := r.resolution(8); got != 100*time.Microsecond {
		t.Fatalf("resolution %v, want the A/A namespace's 0.1 ms", got)
	}
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	for _, tc := range []struct {
		added, other time.Duration
		want         string
	}{
		{ms(1.0), ms(2), "met"},                        // target 1.2, 0.2 under
		{ms(1.15), ms(2), "met within noise"},          // 0.05 under, resolution 0.1
		{ms(1.25), ms(2), "**not resolved** (0.05 ms"}, // 0.05 over
		{ms(1.5), ms(2), "**missed**"},                 // 0.3 over
		{ms(-0.05), ms(-1), "met within noise"},        // a negative figure counts as 0
		{ms(0.05), ms(-1), "**not resolved**"},
		{ms(0.5), ms(-1), "**missed**"},
	} {
		if got := r.atMost(tc.added, tc.other, 0.6, 8); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%v against 0.6 x %v: %q, want %q...", tc.added, tc.other, got, tc.want)
		}
	}
}

func TestHandlerVerdictJudgesAgainstTheAANoise(t *testing.T) {
	// n requests in one second.
	perSecond := func(n int) harness.Sample {
		return harness.Sample{Latencies: make([]time.Duration, n), Elapsed: time.Second}
	}
	// The baseline again answers 3% fewer requests than the baseline: noise 0.03.
	r := &Report{Handler: []HandlerResult{{Base: perSecond(1000), Again: perSecond(970)}}}
	for q, want := range map[float64]string{0.96: "met", 0.93: "**not resolved** (0.020 short, A/A noise 0.030)", 0.90: "**missed**"} {
		if got := r.handlerVerdict(q, 0.95); got != want {
			t.Errorf("lowest ratio %.2f: %q, want %q", q, got, want)
		}
	}
}

// The admission times are judged from per-round differences paired with "no policy"'s
// round: a machine that drifts in the middle of the run moves both alike.
func TestAdmissionCostPairsRoundsAndJudges(t *testing.T) {
	us := func(f ...float64) []time.Duration {
		var d []time.Duration
		for _, x := range f {
			d = append(d, time.Duration(x*float64(time.Microsecond)))
		}
		return d
	}
	a := &AdmissionCostResult{Cells: map[string]*AdmissionCostCell{}, Options: AdmissionCostOptions{Rounds: 4, Writes: 10}}
	per := map[string][]time.Duration{
		ConfigNone:      us(100, 100, 300, 300), // the machine slowed down in rounds 3 and 4
		ConfigNoneAgain: us(104, 98, 303, 303),  // A/A: 4, -2, 3, 3 µs
		ConfigBuiltin:   us(150, 152, 350, 354), // 50, 52, 50, 54
		ConfigNative:    us(154, 156, 352, 358), // 54, 56, 52, 58: x1.08
		ConfigRef:       us(2100, 2100, 2300, 2300),
		ConfigOurs:      us(1300, 1300, 1500, 1500), // 1200 against 2000: x0.60, at the target
	}
	for _, op := range AdmissionCostOps {
		for _, c := range E2EConcurrency {
			for cfg, d := range per {
				a.Cells[e2eKey(cfg, op, c)] = &AdmissionCostCell{Config: cfg, Op: op, Concurrency: c, PerWrite: d, ByPlugin: map[string]time.Duration{}}
			}
		}
	}
	// Medians are the lower middle value of an even count.
	if med, q1, q3 := a.Added(ConfigNative, OpScaleClamped, 1); med != 54*time.Microsecond || q1 != 52*time.Microsecond || q3 != 58*time.Microsecond {
		t.Errorf("native added %v [%v, %v], want 54µs [52µs, 58µs]", med, q1, q3)
	}
	if res := a.Resolution(1); res != 3*time.Microsecond {
		t.Errorf("resolution %v, want the A/A's 3 µs (over half the built-in's [q1, q3], 2 µs)", res)
	}
	r := &Report{AdmissionCost: a}
	var b bytes.Buffer
	r.targets(printer(&b))
	r.admissionCost(printer(&b))
	for _, want := range []string{
		"| native, scale patch, half clamped, c=1: kube-apiserver's admission time added per write at most 1.2x the hand-written built-in's | native 54 µs, built-in 50 µs (x1.08) | met |",
		"| native | 156 | 54 [52, 58] |",
		"| scale patch, c=8: kube-apiserver's admission time added per write at most 0.6x the reference webhook's (two calls) | ours 1200 µs, reference 2000 µs (x0.60; round by round x0.60 [0.60, 0.60]) | met |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	for _, op := range AdmissionCostOps {
		a.Cell(ConfigNative, op, 1).PerWrite = us(170, 172, 370, 374) // 70, 72, 70, 74: x1.40
	}
	b.Reset()
	r.targets(printer(&b))
	if !strings.Contains(b.String(), "native 70 µs, built-in 50 µs (x1.40) | **missed** |") {
		t.Errorf("a native cost of x1.40 is not missed:\n%s", b.String())
	}
	// Round by round, ours against the reference: 0.55, 0.65, 0.55, 0.65 over the rounds'
	// own "no policy"; the medians of the added times alone would say x0.60 or so.
	a.Cell(ConfigOurs, OpScale, 8).PerWrite = us(1200, 1400, 1400, 1600)
	if med, q1, q3 := a.AddedRatio(ConfigOurs, ConfigRef, OpScale, 8); med != 0.55 || q1 != 0.55 || q3 != 0.65 {
		t.Errorf("round-by-round ratio %v [%v, %v], want 0.55 [0.55, 0.65]", med, q1, q3)
	}
	b.Reset()
	r.targets(printer(&b))
	if want := "(x0.55; round by round x0.55 [0.55, 0.65]) | met within noise (median x0.55; q3 x0.65, over the target) |"; !strings.Contains(b.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, b.String())
	}
}

func TestRatioJudgedOnTheRoundsSpread(t *testing.T) {
	for _, tc := range []struct {
		med, q1, q3 float64
		want        string
	}{
		{0.55, 0.50, 0.58, "met"},
		{0.58, 0.52, 0.66, "met within noise"},
		{0.63, 0.57, 0.70, "**not resolved** (median x0.63, over the target; q1 x0.57)"},
		{0.69, 0.62, 0.75, "**missed**"},
		{math.NaN(), math.NaN(), math.NaN(), "**not resolved** (no round"},
	} {
		if got := judgeRatioAtMost(tc.med, tc.q1, tc.q3, 0.6); !strings.HasPrefix(got, tc.want) {
			t.Errorf("x%v [%v, %v] against x0.6: %q, want %q...", tc.med, tc.q1, tc.q3, got, tc.want)
		}
	}
}

func TestScalerJudgedAgainstTheRawLoopsAroundIt(t *testing.T) {
	s := ScalerResult{
		Deployments: 1000, ScalerFirst: 200 * time.Millisecond, ScalerTime: 3400 * time.Millisecond, // corrections over 3.2 s
		RawBeforeTime: 2800 * time.Millisecond, RawTime: 3000 * time.Millisecond, // floor 2.9 s, A/A 0.2 s
		ScalerWrites: 1000,
	}
	if s.rawFloor() != 2900*time.Millisecond || s.rawSpread() != 200*time.Millisecond {
		t.Fatalf("floor %v, spread %v; want 2.9s and 0.2s", s.rawFloor(), s.rawSpread())
	}
	render := func(s ScalerResult) string {
		var b bytes.Buffer
		(&Report{Scaler: []ScalerResult{s}}).targets(printer(&b))
		return b.String()
	}
	// 2.9/3.2 = 0.91: met (3.2 s <= 3.22 s - 0.2 s does not hold: within noise).
	if got := render(s); !strings.Contains(got, "| scaler >= 0.9 of raw UpdateScale throughput, 1000 violators | 0.91 (312/s against 345/s") ||
		!strings.Contains(got, "met within noise (22.22 ms under the target, resolution 200.00 ms)") {
		t.Errorf("a scaler at 0.91 of its floor, 0.2 s A/A:\n%s", got)
	}
	s.ScalerTime = 3700 * time.Millisecond // 2.9/3.5 = 0.83: 0.28 s over 3.22 s, more than the A/A
	if got := render(s); !strings.Contains(got, "| 0.83 (") || !strings.Contains(got, "**missed**") {
		t.Errorf("a scaler at 0.83 of its floor, 0.2 s A/A:\n%s", got)
	}
	s.ScalerTime, s.RawBeforeTime = 2900*time.Millisecond, s.RawTime // both loops 3 s: no spread
	if got := render(s); !strings.Contains(got, "| 1.11 (") || !strings.Contains(got, "1000 violators | 1.11 (370/s against 333/s, the raw loops before and after it; 1.03 counting the 200 ms before the first correction) | met |") {
		t.Errorf("a scaler faster than its floor:\n%s", got)
	}
}
