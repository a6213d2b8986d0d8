package certgen

import (
	"flag"
	"fmt"
	"io"
)

// Run is the certs command: it parses args, validates them and generates the files,
// reporting to stdout; usage and flag syntax errors go to stderr.
func Run(args []string, stdout, stderr io.Writer) error {
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
