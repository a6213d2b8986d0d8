package policy

import (
	"fmt"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Store holds the policy in force. Readers call Snapshot once per request and never see a
// half-loaded policy: a reload compiles a whole new Snapshot and swaps the pointer.
type Store struct {
	current atomic.Pointer[Snapshot]
	opts    Options

	mu          sync.Mutex
	subscribers []func(*Snapshot)
}

// NewStore returns a store that bounds nothing until a policy is applied.
func NewStore(opts Options) *Store {
	s := &Store{opts: opts}
	s.current.Store(Empty(opts))
	return s
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
