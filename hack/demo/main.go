// Command demo runs replica-policy against a local control plane, as `make demo` does: it
// installs the manifests with kubectl, runs the webhook binary with its ServiceAccount's
// token, shows a clamped `kubectl scale`, a denied create and a scaler correction, then stays
// up for you to try things until Ctrl-C, and cleans up.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

func main() {
	binary := flag.String("binary", "bin/webhook", "The webhook binary (make build).")
	port := flag.Int("port", 9443, "Webhook port on 127.0.0.1.")
	keep := flag.Bool("keep", false, "Keep the working folder after exit.")
	noWait := flag.Bool("no-wait", false, "Exit after the demonstration instead of waiting for Ctrl-C.")
	flag.Parse()
	if err := run(*binary, *port, *keep, *noWait); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(binary string, port int, keep, noWait bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	bin, err := filepath.Abs(binary)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: %w (run `make build` first, or `make demo`)", bin, err)
	}
	dir, err := os.MkdirTemp("", "replica-policy-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	c, err := harness.StartCluster(ctx, harness.ClusterOptions{Dir: dir, Port: port, Log: os.Stdout})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the control plane")
		c.Stop()
	}()
	step("starting the webhook with the ServiceAccount token of manifests/ (TokenRequest), so it has exactly the manifests' RBAC")
	w, err := c.RunWebhook(ctx, harness.WebhookOptions{Binary: bin})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the webhook (SIGTERM)")
		if err := w.Stop(40 * time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "webhook: %v\n", err)
		}
	}()
	fmt.Printf("    ready after %v; log: %s\n", time.Since(start).Round(100*time.Millisecond), w.LogFile)

	k := func(stdin string, args ...string) (string, error) {
		fmt.Printf("\n$ kubectl %s\n", strings.Join(args, " "))
		out, err := c.KubectlStdin(ctx, stdin, args...)
		fmt.Print(indent(out))
		return out, err
	}
	step("1. kubectl scale bypasses Deployment-only policies: here it is clamped (example policy, rule prod-web: 2..10)")
	for _, args := range [][]string{
		{"create", "namespace", "prod"},
		{"-n", "prod", "create", "deployment", "web", "--image=registry.k8s.io/pause:3.10", "--replicas=3"},
	} {
		if _, err := k("", args...); err != nil {
			return err
		}
	}
	if err := waitCached(ctx, func() (string, error) {
		return c.KubectlCmd(ctx, "-n", "prod", "scale", "deployment", "web", "--replicas=4", "--dry-run=server")
	}); err != nil {
		return err
	}
	if _, err := k("", "-n", "prod", "scale", "deployment", "web", "--replicas=40"); err != nil {
		return err
	}
	if _, err := k("", "-n", "prod", "get", "deployment", "web", "-o", "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas"); err != nil {
		return err
	}

	step("2. a deny rule rejects a create outside its bounds (rule databases: 3..7)")
	if _, err := k(harness.DemoDatabase, "apply", "-f", "-"); err == nil {
		return errors.New("the database Deployment with 12 replicas was not denied")
	}

	step("3. the policy is tightened (prod-web max 10 -> 5): the scaler corrects the existing Deployment through its scale subresource")
	doc, err := c.KubectlCmd(ctx, "-n", policy.DefaultNamespace, "get", "configmap", policy.DefaultConfigMapName, "-o", "yaml")
	if err != nil {
		return err
	}
	tightened := strings.Replace(doc, "maxReplicas: 10\n", "maxReplicas: 5\n", 1)
	if _, err := k(tightened, "apply", "-f", "-"); err != nil {
		return err
	}
	applied := time.Now()
	deadline := applied.Add(30 * time.Second)
	for {
		out, _ := c.KubectlCmd(ctx, "-n", "prod", "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}")
		if strings.TrimSpace(out) == "5" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the scaler did not correct prod/web to 5 within 30s (replicas %s); webhook log: %s", out, w.LogFile)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("    corrected within %v\n", time.Since(applied).Round(10*time.Millisecond))
	for _, args := range [][]string{
		{"-n", "prod", "get", "deployment", "web", "-o", "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas"},
		{"-n", "prod", "get", "events", "--field-selector", "reason=ReplicasCorrected", "-o", "custom-columns=OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message"},
	} {
		if _, err := k("", args...); err != nil {
			return err
		}
	}

	fmt.Printf("\nThe demo took %v. Try it yourself in another terminal:\n\n    export KUBECONFIG=%s\n    kubectl -n prod scale deployment web --replicas=50\n\n", time.Since(start).Round(100*time.Millisecond), c.AdminKubeconfig)
	if noWait {
		return nil
	}
	fmt.Println("Press Ctrl-C to stop and clean up.")
	<-ctx.Done()
	return nil
}

// waitCached retries a dry-run until the webhook's cache holds what the next step needs.
func waitCached(ctx context.Context, try func() (string, error)) error {
	return harness.Poll(ctx, 10*time.Second, 100*time.Millisecond, func() (bool, string) {
		out, err := try()
		return err == nil && strings.Contains(out, "scaled"), fmt.Sprintf("dry-run scale kept failing: %v %s", err, out)
	})
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
