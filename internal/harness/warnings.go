package harness

import (
	"context"
	"strings"
	"sync"
)

// Warnings collects the Warning headers the API server passes back from admission webhooks
// (a rest.WarningHandler: set it as rest.Config.WarningHandler).
type Warnings struct {
	mu   sync.Mutex
	list []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *Warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// Take returns the warnings collected so far and forgets them.
func (w *Warnings) Take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

// List returns the warnings collected so far and keeps them.
func (w *Warnings) List() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.list...)
}

// Has reports whether a warning collected so far contains part.
func (w *Warnings) Has(part string) bool { return HasWarning(w.List(), part) }

// HasWarning reports whether one of ws contains part.
func HasWarning(ws []string, part string) bool {
	for _, s := range ws {
		if strings.Contains(s, part) {
			return true
		}
	}
	return false
}

// ContextWarnings is a rest.WarningHandlerWithContext (set it as
// rest.Config.WarningHandlerWithContext) that hands each Warning header to the Warnings its
// request's context carries (WithWarnings), so that concurrent requests of one client each
// collect their own; requests without one drop theirs.
type ContextWarnings struct{}

type warningsKey struct{}

// HandleWarningHeaderWithContext implements rest.WarningHandlerWithContext.
func (ContextWarnings) HandleWarningHeaderWithContext(ctx context.Context, code int, agent, text string) {
	if w, ok := ctx.Value(warningsKey{}).(*Warnings); ok {
		w.HandleWarningHeader(code, agent, text)
	}
}

// WithWarnings returns a context whose requests' warnings (through a client with
// ContextWarnings) land in the returned Warnings.
func WithWarnings(ctx context.Context) (context.Context, *Warnings) {
	w := &Warnings{}
	return context.WithValue(ctx, warningsKey{}, w), w
}
