package policystore

import (
	"github.com/replica-policy/replica-policy/pkg/policy"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Store holds the policy in force. Readers call Snapshot once per request and never see a
// half-loaded policy: a reload compiles a whole new snapshot and swaps the pointer.
type Store struct {
	current atomic.Pointer[policy.Snapshot]
	// replaced holds the snapshots replaced within ReplacedWindow, newest first.
	replaced atomic.Pointer[[]replacedSnapshot]
	opts     policy.Options
	now      func() time.Time

	mu          sync.Mutex
	applied     bool // a snapshot has been applied
	subscribers []func(*policy.Snapshot)
}

// ReplacedWindow is how long Replaced remembers a snapshot after it was replaced. One
// admission request's /mutate and /validate calls are two HTTP requests, which the mutating
// webhooks' timeouts can put apart by up to that much (the API server caps a webhook's
// timeoutSeconds at 30).
const ReplacedWindow = 30 * time.Second

// maxReplaced bounds what Replaced remembers when the policy changes very often.
const maxReplaced = 16

type replacedSnapshot struct {
	snap *policy.Snapshot
	at   time.Time
}

// NewStore returns a store that bounds nothing until a policy is applied.
func NewStore(opts policy.Options) *Store {
	s := &Store{opts: opts, now: time.Now}
	s.current.Store(policy.Empty(opts))
	return s
}

// Replaced returns the snapshots that were in force within the last ReplacedWindow and have
// been replaced since, newest first. A validating admission request uses them to tell a
// clamp made by /mutate under the policy of a moment ago from one that was never applied.
func (s *Store) Replaced() []*policy.Snapshot {
	l := s.replaced.Load()
	if l == nil {
		return nil
	}
	cut := s.now().Add(-ReplacedWindow)
	var out []*policy.Snapshot
	for _, r := range *l {
		if r.at.Before(cut) {
			break
		}
		out = append(out, r.snap)
	}
	return out
}

// Snapshot returns the policy in force. It is never nil.
func (s *Store) Snapshot() *policy.Snapshot { return s.current.Load() }

// Subscribe registers fn to be called, after the swap, with every new snapshot.
func (s *Store) Subscribe(fn func(*policy.Snapshot)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subscribers = append(s.subscribers, fn)
}

// Apply loads the policy from a ConfigMap; nil means the ConfigMap does not exist, which
// means no bounds. An invalid policy returns a *policy.InvalidError and leaves the last valid
// snapshot in force.
func (s *Store) Apply(cm *corev1.ConfigMap) (*policy.Snapshot, error) {
	var next *policy.Snapshot
	if cm == nil {
		next = policy.Empty(s.opts)
	} else {
		var err error
		if next, err = policy.LoadConfigMap(cm, s.opts); err != nil {
			return nil, err
		}
	}
	s.swap(next)
	return next, nil
}

func (s *Store) swap(next *policy.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var replaced []replacedSnapshot
	// The store's first snapshot is a placeholder until the policy has been read, not a
	// policy that was ever in force.
	if s.applied {
		replaced = append(replaced, replacedSnapshot{snap: s.current.Load(), at: now})
	}
	s.applied = true
	if l := s.replaced.Load(); l != nil {
		for _, r := range *l {
			if len(replaced) == maxReplaced || r.at.Before(now.Add(-ReplacedWindow)) {
				break
			}
			replaced = append(replaced, r)
		}
	}
	s.replaced.Store(&replaced)
	s.current.Store(next)
	for _, fn := range s.subscribers {
		fn(next)
	}
}
