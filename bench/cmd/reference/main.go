// Command reference is the end-to-end benchmark's reference webhook: the minimal webhook a
// team would write for the same clamp as replica-policy (see bench.ServeReference). The
// benchmark builds it and runs it in a process of its own, as replica-policy runs.
//
//	reference --cert-dir DIR --port 9444 --metrics-port 9445
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/replica-policy/replica-policy/internal/bench"
)

func main() {
	certDir := flag.String("cert-dir", "", "Folder of tls.crt and tls.key.")
	port := flag.Int("port", 9444, "Webhook port on 127.0.0.1.")
	metricsPort := flag.Int("metrics-port", 9445, "Metrics port on 127.0.0.1 (controller-runtime's webhook metrics).")
	flag.Parse()
	crlog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.ServeReference(ctx, *certDir, *port, *metricsPort); err != nil {
		fmt.Fprintf(os.Stderr, "reference: %v\n", err)
		os.Exit(1)
	}
}
