package app

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// bodyReadTimeout bounds how long a client may take to send a request body. net/http's
// ReadHeaderTimeout (32 s in controller-runtime) covers only the headers, so a client
// trickling its body would otherwise hold a connection and a goroutine for ever. The API
// server sends a whole body at once and gives up on a webhook after timeoutSeconds (at most
// 10 s in manifests/).
const bodyReadTimeout = 10 * time.Second

// shutdownReadGrace is how long a request still receiving its body when the webhook server
// shuts down may take to finish it. The API server sends a whole body at once, so only a
// stalled or half-open connection needs it; without a bound such a connection held the
// shutdown for the manager's whole GracefulShutdownTimeout, and the process exited 1.
const shutdownReadGrace = 2 * time.Second

// drainOnShutdown wraps a webhook handler with bounds on slow clients and for graceful
// shutdown. A request's body must arrive within bodyReadTimeout. Once shuttingDown is set
// (SIGTERM), answers carry "Connection: close": the API server's kept-alive connections,
// which the Service's connection tracking pins to this replica, are closed after their
// next answer and reopened to a replica that stays, instead of being cut by the server's
// shutdown while a request may be on its way. When the server shuts down (the request's
// context, derived from the server's, ends) a request still reading its body gets
// shutdownReadGrace to finish it; one being answered is not affected.
func drainOnShutdown(shuttingDown *atomic.Bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
		if shuttingDown.Load() {
			w.Header().Set("Connection", "close")
		}
		stop := context.AfterFunc(r.Context(), func() {
			_ = rc.SetReadDeadline(time.Now().Add(shutdownReadGrace))
		})
		defer stop()
		h.ServeHTTP(w, r)
	})
}
