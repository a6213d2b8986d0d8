package admission

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/replica-policy/replica-policy/pkg/policystore"
)

// answered remembers the UIDs of the workload requests that /mutate answered in this
// process. An admission request keeps its UID across every webhook call the API server makes
// for it, so /validate can tell a clamp that /mutate applied and a later mutation undid
// (reject: the final object is what counts) from a request /mutate never decided (it failed,
// timed out, or went to another replica: under failurePolicy Ignore that must not turn into
// a failed write, so /validate allows it with a warning and the scaler corrects it).
//
// Two generations of a set, swapped every window: a UID is remembered for one to two
// windows, and memory stays bounded by the traffic of two windows (capped in size).
type answered struct {
	mu           sync.Mutex
	now          func() time.Time
	cur, prev    map[types.UID]struct{}
	rotatedAt    time.Time
	window       time.Duration
	maxPerWindow int
}

// answeredWindow is as long as the API server can take between the two calls of one request:
// it caps each webhook's timeoutSeconds at 30.
const answeredWindow = policystore.ReplacedWindow

// maxAnsweredPerWindow bounds a generation to about 4 MiB (UIDs are 36 bytes) whatever the
// write rate; a busier window rotates early, and only forgets sooner.
const maxAnsweredPerWindow = 1 << 16

func newAnswered() *answered {
	return &answered{now: time.Now, cur: map[types.UID]struct{}{}, window: answeredWindow, maxPerWindow: maxAnsweredPerWindow}
}

// record notes at Mutate that /mutate answered uid, and reports at Validate whether it did
// (in this process); at Mutate it reports true.
func (a *answered) record(stage Stage, uid types.UID) bool {
	if stage == Mutate {
		a.add(uid)
		return true
	}
	return a.has(uid)
}

func (a *answered) add(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now := a.now(); now.Sub(a.rotatedAt) >= a.window || len(a.cur) >= a.maxPerWindow {
		a.prev, a.cur, a.rotatedAt = a.cur, make(map[types.UID]struct{}, len(a.cur)), now
	}
	a.cur[uid] = struct{}{}
}

func (a *answered) has(uid types.UID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.now().Sub(a.rotatedAt) >= 2*a.window {
		return false // both generations are older than a window
	}
	_, inCur := a.cur[uid]
	_, inPrev := a.prev[uid]
	return inCur || inPrev
}
