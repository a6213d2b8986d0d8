package bench

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

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

// quartiles returns the median (the lower middle value of an even count) and the
// interquartile range of d, which it sorts; zeros when d is empty.
func quartiles[T cmp.Ordered](d []T) (med, q1, q3 T) {
	if len(d) == 0 {
		return med, q1, q3
	}
	slices.Sort(d)
	n := len(d) - 1
	return d[n/2], d[n/4], d[(3*n+3)/4]
}

// pairedQuartiles is quartiles of the per-round differences a[i]-base[i], over the rounds
// both have.
func pairedQuartiles(a, base []time.Duration) (med, q1, q3 time.Duration) {
	var d []time.Duration
	for i := range min(len(a), len(base)) {
		d = append(d, a[i]-base[i])
	}
	return quartiles(d)
}
