package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// ServeReference runs the reference webhook until ctx ends: the minimal webhook a team
// would write for the same clamp. A controller-runtime webhook server on 127.0.0.1:port
// with the certificate in certDir, typed decoding of the Deployment or Scale, a hard-coded
// bound, a mutating handler that clamps and a validating handler that rejects; no policy,
// no caches, no matchConditions. controller-runtime's webhook metrics (requests answered)
// are served on 127.0.0.1:metricsPort.
//
// The end-to-end benchmark runs it in a process of its own (bench/cmd/reference), as
// replica-policy runs in its own: a webhook sharing the load generator's process would be
// favoured (its threads are already running when the API server calls).
func ServeReference(ctx context.Context, certDir string, port, metricsPort int) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	decoder := cradmission.NewDecoder(scheme)
	replicasOf := func(req cradmission.Request) (int32, error) {
		if req.SubResource == "scale" {
			var s autoscalingv1.Scale
			err := decoder.Decode(req, &s)
			return s.Spec.Replicas, err
		}
		var d appsv1.Deployment
		if err := decoder.Decode(req, &d); err != nil {
			return 0, err
		}
		if d.Spec.Replicas == nil {
			return 1, nil
		}
		return *d.Spec.Replicas, nil
	}
	clamp := func(r int32) int32 { return min(max(r, ClampMin), ClampMax) }
	srv := webhook.NewServer(webhook.Options{
		Host: "127.0.0.1", Port: port, CertDir: certDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	})
	srv.Register("/mutate", &cradmission.Webhook{Handler: cradmission.HandlerFunc(func(_ context.Context, req cradmission.Request) cradmission.Response {
		n, err := replicasOf(req)
		if err != nil {
			return cradmission.Errored(http.StatusBadRequest, err)
		}
		if c := clamp(n); c != n {
			return cradmission.Patched("clamped", jsonpatch.NewOperation("add", "/spec/replicas", c))
		}
		return cradmission.Allowed("")
	})})
	srv.Register("/validate", &cradmission.Webhook{Handler: cradmission.HandlerFunc(func(_ context.Context, req cradmission.Request) cradmission.Response {
		n, err := replicasOf(req)
		if err != nil {
			return cradmission.Errored(http.StatusBadRequest, err)
		}
		if clamp(n) != n {
			return cradmission.Denied(fmt.Sprintf("spec.replicas %d outside [%d, %d]", n, ClampMin, ClampMax))
		}
		return cradmission.Allowed("")
	})})
	ms := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", metricsPort), Handler: promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ms.ListenAndServe() }()
	defer ms.Close()
	return srv.Start(ctx)
}

// referenceProcess is the reference webhook running as a process of its own.
type referenceProcess struct {
	port, metricsPort int
	cmd               *exec.Cmd
	done              chan error
}

// startReferenceProcess runs the reference webhook's binary with a free port and the
// certificate folder, and waits until it serves.
func startReferenceProcess(binary, certDir, logDir string) (*referenceProcess, error) {
	ports, err := harness.FreePorts(2)
	if err != nil {
		return nil, err
	}
	port, mport := ports[0], ports[1]
	cmd := exec.Command(binary, "--cert-dir", certDir, "--port", strconv.Itoa(port), "--metrics-port", strconv.Itoa(mport))
	logFile := filepath.Join(logDir, "reference-webhook.log")
	done, err := harness.StartProcess(cmd, logFile)
	if err != nil {
		return nil, err
	}
	r := &referenceProcess{port: port, metricsPort: mport, cmd: cmd, done: done}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-r.done:
			return nil, fmt.Errorf("the reference webhook exited: %v (log: %s)", err, logFile)
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			if _, err := r.calls(); err == nil {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("the reference webhook is not serving on port %d after 30s", port)
		}
	}
}

// calls is the number of requests the reference webhook has answered.
func (r *referenceProcess) calls() (int64, error) {
	m, err := harness.ScrapeMetrics(fmt.Sprintf("127.0.0.1:%d", r.metricsPort))
	if err != nil {
		return 0, err
	}
	return int64(m.Sum("controller_runtime_webhook_requests_total")), nil
}

func (r *referenceProcess) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
}
