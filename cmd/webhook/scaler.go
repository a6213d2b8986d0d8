package main

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// setupScaler is filled in once pkg/scaler lands.
func setupScaler(mgr ctrl.Manager, store *policy.Store, o *Options) error { return nil }
