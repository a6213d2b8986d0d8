// Package policystore is the policy's source in a cluster: the Store that holds the policy
// in force (an immutable policy.Snapshot, swapped atomically on every change), the Watcher
// that keeps it in step with the policy ConfigMap through an informer, the Events recorded
// on that ConfigMap and the reload metrics. Everything pure about a policy (parsing,
// validation, the verdict) is in package policy, which imports none of this.
package policystore
