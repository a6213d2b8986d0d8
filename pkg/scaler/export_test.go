package scaler

// SetPassQueueBound lowers the queue length at which r's full passes wait (passQueueBound),
// so that a test sees the pacing with a few dozen workloads. Call it before
// SetupWithManager.
func SetPassQueueBound(r *Reconciler, n int) { r.passQueueBound = n }
