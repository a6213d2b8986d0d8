// Command certs generates the TLS material for replica-policy's webhook: a CA, a serving
// certificate for the webhook's Service signed by it, and the files manifests/certs wires
// into the kustomize manifests (the kubernetes.io/tls Secret and the webhook caBundle).
//
//	go run ./certs                              # into manifests/certs, for kubectl apply -k manifests/
//	go run ./certs --extra-san 127.0.0.1 --out-dir /tmp/webhook-certs   # local process
//
// Rerunning it reissues the serving certificate under the existing CA (rotation without
// touching the caBundle); --rotate-ca replaces the CA as well.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "certs: %v\n", err)
		os.Exit(1)
	}
}

// run parses args, validates them and generates the files, reporting to stdout; usage and
// flag syntax errors go to stderr.
func run(args []string, stdout, stderr io.Writer) error {
	opts := NewOptions()
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: every setting is a flag (see --help)", fs.Args())
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	return Generate(opts, stdout)
}
