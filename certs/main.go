// Command certs generates the TLS material for replica-policy's webhook: a CA, a serving
// certificate for the webhook's Service signed by it, and the files manifests/certs wires
// into the kustomize manifests (the kubernetes.io/tls Secret and the webhook caBundle).
//
//	go run ./certs                              # into manifests/certs, for kubectl apply -k manifests/
//	go run ./certs --extra-san 127.0.0.1 --out-dir /tmp/webhook-certs   # local process
//
// Rerunning it reissues the serving certificate under the existing CA (rotation without
// touching the caBundle); --rotate-ca replaces the CA as well.
//
// The logic lives in package certgen, which tests and benchmarks import.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/replica-policy/replica-policy/certs/certgen"
)

func main() {
	if err := certgen.Run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "certs: %v\n", err)
		os.Exit(1)
	}
}
