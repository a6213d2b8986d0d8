package policy

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Store holds the policy in force. Readers call Snapshot once per request and never see a
// half-loaded policy: a reload compiles a whole new Snapshot and swaps the pointer.
type Store struct {
	current atomic.Pointer[Snapshot]
	// replaced holds the snapshots replaced within ReplacedWindow, newest first.
	replaced atomic.Pointer[[]replacedSnapshot]
	opts     Options
	now      func() time.Time

	mu          sync.Mutex
	applied     bool // a snapshot has been applied
	subscribers []func(*Snapshot)
}

// ReplacedWindow is how long Replaced remembers a snapshot after it was replaced. One
// admission request's /mutate and /validate calls are two HTTP requests, which the mutating
// webhooks' timeouts can put apart by up to that much (the API server caps a webhook's
// timeoutSeconds at 30).
const ReplacedWindow = 30 * time.Second

// maxReplaced bounds what Replaced remembers when the policy changes very often.
const maxReplaced = 16

type replacedSnapshot struct {
	snap *Snapshot
	at   time.Time
}

// NewStore returns a store that bounds nothing until a policy is applied.
func NewStore(opts Options) *Store {
	s := &Store{opts: opts, now: time.Now}
	s.current.Store(Empty(opts))
	return s
}

// Replaced returns the snapshots that were in force within the last ReplacedWindow and have
// been replaced since, newest first. A validating admission request uses them to tell a
// clamp made by /mutate under the policy of a moment ago from one that was never applied.
func (s *Store) Replaced() []*Snapshot {
	l := s.replaced.Load()
	if l == nil {
		return nil
	}
	cut := s.now().Add(-ReplacedWindow)
	var out []*Snapshot
	for _, r := range *l {
		if r.at.Before(cut) {
			break
		}
		out = append(out, r.snap)
	}
	return out
}

// Snapshot returns the policy in force. It is never nil.
func (s *Store) Snapshot() *Snapshot { return s.current.Load() }

// Subscribe registers fn to be called, after the swap, with every new snapshot.
func (s *Store) Subscribe(fn func(*Snapshot)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subscribers = append(s.subscribers, fn)
}

// Apply loads the policy from a ConfigMap; nil means the ConfigMap does not exist, which
// means no bounds. An invalid policy returns an *InvalidError and leaves the last valid
// snapshot in force.
func (s *Store) Apply(cm *corev1.ConfigMap) (*Snapshot, error) {
	var next *Snapshot
	if cm == nil {
		next = Empty(s.opts)
	} else {
		var err error
		if next, err = LoadConfigMap(cm, s.opts); err != nil {
			return nil, err
		}
	}
	s.swap(next)
	return next, nil
}

func (s *Store) swap(next *Snapshot) {
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

// LoadConfigMap loads the policy document held by a policy ConfigMap. Field paths in errors
// are those of the policy document; a missing key is reported as data[policy.yaml].
func LoadConfigMap(cm *corev1.ConfigMap, opts Options) (*Snapshot, error) {
	data, ok := cm.Data[ConfigMapKey]
	if !ok {
		return nil, &InvalidError{Errs: field.ErrorList{field.Required(field.NewPath("data").Key(ConfigMapKey), "the policy ConfigMap must hold the policy under this key")}}
	}
	opts.Source = fmt.Sprintf("configmap %s/%s@%s", cm.Namespace, cm.Name, cm.ResourceVersion)
	return Load([]byte(data), opts)
}
