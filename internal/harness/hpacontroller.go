package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// A Process is a component running beside a Cluster as a process of its own (the HPA
// controller, KEDA's operator), its output in LogFile.
type Process struct {
	// LogFile holds its output.
	LogFile string
	cmd     *exec.Cmd
	done    chan error
}

// StartHPAController starts kube-controller-manager (from Assets, which hack/controlplane.sh
// builds next to kube-apiserver) as the cluster admin, running the HorizontalPodAutoscaler
// controller and nothing else, syncing every HPA every syncPeriod (the controller's default
// is 15 s): the real autoscaler, whose scale writes the webhook clamps. Without a metrics API
// it still scales whenever a target's replicas are outside [minReplicas, maxReplicas]
// (pkg/controller/podautoscaler/horizontal.go); inside the range it only reports that it
// cannot read metrics.
func (c *Cluster) StartHPAController(ctx context.Context, syncPeriod time.Duration) (*Process, error) {
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(assets, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("kube-controller-manager is not in %s (run hack/controlplane.sh, which builds it): %w", assets, err)
	}
	h := &Process{LogFile: filepath.Join(c.Dir, "kube-controller-manager.log")}
	h.cmd = exec.CommandContext(ctx, bin,
		"--kubeconfig="+c.AdminKubeconfig,
		"--controllers=horizontalpodautoscaling",
		"--horizontal-pod-autoscaler-sync-period="+syncPeriod.String(),
		"--leader-elect=false",
		// No HTTPS endpoint: nothing scrapes it, and it would need a port and certificates.
		"--secure-port=0",
		"--v=2")
	c.progress("starting kube-controller-manager with the HPA controller only (sync period %v)", syncPeriod)
	if h.done, err = StartProcess(h.cmd, h.LogFile); err != nil {
		return nil, err
	}
	return h, nil
}

// Log is the process's output so far.
func (h *Process) Log() string {
	b, _ := os.ReadFile(h.LogFile)
	return string(b)
}

// Stop kills the process (and what it started) and waits for it to exit.
func (h *Process) Stop() {
	_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
	}
}

// Exited reports whether the process has exited, with its exit error.
func (h *Process) Exited() (bool, error) {
	select {
	case err := <-h.done:
		h.done <- err
		return true, err
	default:
		return false, nil
	}
}
