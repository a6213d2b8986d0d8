package reliability

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// webhookTimeout is timeoutSeconds of the mutate and validate webhooks in
// manifests/base/webhooks.yaml; policyWebhookTimeout that of the policy ConfigMap's.
const (
	webhookTimeout       = 5 * time.Second
	policyWebhookTimeout = 10 * time.Second
)

// hungWrites sends, at once, one write of each kind a hung webhook can delay, and returns
// each one's latency by name. All must succeed: failurePolicy is Ignore.
func hungWrites(t *testing.T, e *env, ns string, targets []string, round int) map[string]time.Duration {
	t.Helper()
	ctx := context.Background()
	writes := map[string]func() error{
		// kubectl scale: mutate, then validate.
		"scale": func() error {
			_, err := scale(ctx, e.admin, ns, targets[0], int32(40+round), false)
			return err
		},
		// kubectl create deployment: mutate, then validate.
		"create": func() error {
			_, err := e.admin.AppsV1().Deployments(ns).Create(ctx, deployment(ns, fmt.Sprintf("new-%d", round), 3), metav1.CreateOptions{})
			return err
		},
		// An image rollout or label edit leaves replicas alone: the matchCondition skips
		// both webhooks, so a hung webhook must not delay it at all.
		"label": func() error {
			_, err := e.admin.AppsV1().Deployments(ns).Patch(ctx, targets[1], types.MergePatchType,
				[]byte(fmt.Sprintf(`{"metadata":{"labels":{"round":"%d"}}}`, round)), metav1.PatchOptions{})
			return err
		},
		// The policy ConfigMap: the policy webhook, whose timeout is 10 s.
		"policy": func() error {
			return e.setPolicy(ctx, policyDoc("slow-cap", ns, 1, 5)+fmt.Sprintf("# round %d\n", round))
		},
	}
	var mu sync.Mutex
	got := map[string]time.Duration{}
	var wg sync.WaitGroup
	for name, write := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := write()
			d := time.Since(start)
			if err != nil {
				t.Errorf("%s write against a hung webhook failed after %v: %v", name, d.Round(time.Millisecond), err)
			}
			mu.Lock()
			got[name] = d
			mu.Unlock()
		}()
	}
	wg.Wait()
	return got
}

// TestHungWebhook hangs the webhook two ways, a stopped process (SIGSTOP: the kernel still
// accepts connections, nobody answers) and a listener that accepts and never answers, and
// checks that writes still complete, allowed (failurePolicy Ignore), after the webhook's
// timeout and never later: a replica-changing write calls /mutate only, and waits for its
// 5 s; a policy write waits its webhook's 10 s; an update that leaves replicas alone (an
// image rollout) is not delayed at all.
func TestHungWebhook(t *testing.T) {
	e := startCluster(t)
	w := e.runWebhook(t, "webhook")
	const ns = "slow"
	e.mustSetPolicy(t, policyDoc("slow-cap", ns, 1, 5))
	names := e.createDeployments(t, ns, 2, 2)
	ctx := context.Background()
	harness.Eventually(t, 10*time.Second, poll, "the policy is in force", func() bool {
		got, err := scale(ctx, e.admin, ns, names[0], 50, true)
		return err == nil && got == 5
	})
	// The bound of a replica-changing write: one call to /mutate, which waits for its
	// timeout. The slack covers the API server's own work on a loaded 2-core machine.
	const slack = 1500 * time.Millisecond
	check := func(how string, got map[string]time.Duration) {
		t.Helper()
		figure(t, "%s: scale %v, create %v, label edit %v, policy ConfigMap %v", how,
			got["scale"].Round(10*time.Millisecond), got["create"].Round(10*time.Millisecond),
			got["label"].Round(10*time.Millisecond), got["policy"].Round(10*time.Millisecond))
		for _, kind := range []string{"scale", "create"} {
			if d := got[kind]; d < webhookTimeout || d > webhookTimeout+slack {
				t.Errorf("%s: %s write took %v; want /mutate's timeout, at most %v", how, kind, d, webhookTimeout+slack)
			}
		}
		if d := got["label"]; d > slack {
			t.Errorf("%s: a write that leaves replicas alone took %v: the matchCondition should skip the webhooks", how, d)
		}
		if d := got["policy"]; d < policyWebhookTimeout || d > policyWebhookTimeout+slack {
			t.Errorf("%s: the policy write took %v; want its webhook's timeout %v", how, d, policyWebhookTimeout)
		}
	}

	// resume continues the stopped process and waits until it clamps again. The process
	// must still run: a stop of about 10 s, the Lease's renew deadline, is survived when
	// the process is left to renew its Lease before it is stopped again (back to back, it
	// can lose its Lease and exit on resume, as when the API server is unreachable).
	resume := func() time.Duration {
		t.Helper()
		if err := w.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatalf("SIGCONT: %v\n%s", err, w.Log())
		}
		d := harness.Eventually(t, 15*time.Second, poll, "the resumed webhook clamps again", func() bool {
			got, err := scale(ctx, e.admin, ns, names[0], 50, true)
			return err == nil && got == 5
		})
		time.Sleep(3 * time.Second) // more than the Lease's retry period (2 s)
		if !w.Running() {
			t.Fatalf("the webhook exited after SIGCONT:\n%s", w.Log())
		}
		return d
	}

	// 1. SIGSTOP: the kernel still accepts connections into the backlog; nobody answers.
	rounds := pick(1, 3)
	var d time.Duration
	for i := range rounds {
		stopProcess(t, w.Cmd.Process.Pid)
		got := hungWrites(t, e, ns, names, i)
		d = max(d, resume())
		check("SIGSTOP", got)
	}
	figure(t, "after SIGCONT the webhook clamps again within %v", d.Round(10*time.Millisecond))

	// A pause that outlasts /mutate's timeout: the call fails open (failurePolicy Ignore) and
	// the write is stored unclamped. It is never failed: a workload write costs one webhook
	// call, so no second call can reject the clamp the first one did not make (docs/design.md,
	// "/validate for workloads, and a skipped /mutate"). Once the process resumes, the scaler
	// brings the workload inside the bounds.
	stopProcess(t, w.Cmd.Process.Pid)
	time.AfterFunc(webhookTimeout+1500*time.Millisecond, func() { _ = w.Cmd.Process.Signal(syscall.SIGCONT) })
	start := time.Now()
	stored, err := scale(ctx, e.admin, ns, names[0], 60, false)
	took := time.Since(start)
	if err != nil || stored != 60 {
		t.Fatalf("a pause past /mutate's timeout: the write returned %d, %v after %v; want it stored unclamped (60), not failed", stored, err, took)
	}
	corrected := harness.Eventually(t, 40*time.Second, poll, "the scaler corrects the unclamped write", func() bool {
		d, err := e.admin.AppsV1().Deployments(ns).Get(ctx, names[0], metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == 5
	})
	figure(t, "a pause past /mutate's timeout: the write failed open after %v (stored 60, unclamped, not failed); the scaler corrected it to 5 within %v",
		took.Round(10*time.Millisecond), corrected.Round(100*time.Millisecond))
	resume()

	// A write that conflicts with another write to the same object is retried by the API
	// server, admission included: it waits for the webhooks once more.
	if long() {
		stopProcess(t, w.Cmd.Process.Pid)
		time.AfterFunc(time.Second, func() {
			_, _ = e.admin.AppsV1().Deployments(ns).Patch(ctx, names[0], types.MergePatchType,
				[]byte(`{"metadata":{"labels":{"contended":"yes"}}}`), metav1.PatchOptions{})
		})
		start := time.Now()
		_, err := scale(ctx, e.admin, ns, names[0], 45, false)
		took := time.Since(start)
		if err := w.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if err != nil || took > 2*webhookTimeout+slack {
			t.Errorf("a contended write against a hung webhook: %v after %v", err, took)
		}
		figure(t, "SIGSTOP: a scale racing a label edit of the same Deployment took %v (admission runs again on the conflict retry)", took.Round(10*time.Millisecond))
		// Stopped for twice the Lease's renew deadline: the process may lose its Lease and
		// exit on resume (a Pod restarts); nothing below needs it.
		time.Sleep(3 * time.Second)
		if !w.Running() {
			figure(t, "after a 20 s stop the webhook exited on resume: %v", w.Wait(time.Second))
		}
	}

	// 2. A listener that accepts and never answers, in place of the webhook.
	w.Kill()
	_ = w.Wait(10 * time.Second)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", e.Port))
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // never read, never answered, never closed
			mu.Unlock()
		}
	}()
	for i := range rounds {
		check("black-hole listener", hungWrites(t, e, ns, names, rounds+i))
	}
	l.Close()
	mu.Lock()
	figure(t, "the black-hole listener held %d connections", len(held))
	for _, c := range held {
		c.Close()
	}
	mu.Unlock()
}

// proxy forwards TCP connections to target until frozen: then no byte moves in either
// direction on any connection, and new connections are accepted but not forwarded, as
// with an API server that stopped answering (a network partition, an overloaded server).
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
	closed bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	p.cond = sync.NewCond(&p.mu)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) URL() string { return "https://" + p.l.Addr().String() }

func (p *proxy) set(frozen bool) {
	p.mu.Lock()
	p.frozen = frozen
	p.mu.Unlock()
	p.cond.Broadcast()
}

// wait blocks while the proxy is frozen; it reports false once the proxy is closed.
func (p *proxy) wait() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.frozen && !p.closed {
		p.cond.Wait()
	}
	return !p.closed
}

func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *proxy) serve(c net.Conn) {
	p.track(c)
	if !p.wait() {
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.track(up)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if !p.wait() {
					break
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	go pipe(up, c)
	pipe(c, up)
}

func (p *proxy) close() {
	p.l.Close()
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.cond.Broadcast()
}

// directReview posts an AdmissionReview for a scale of ns/name to 50 straight to the
// webhook at addr and returns the answer's patch value (0 when it allows without a patch),
// its warnings, and how long it took.
func directReview(t *testing.T, tlsConfig *tls.Config, addr, ns, name string) (int32, []string, time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	uid := fmt.Sprintf("direct-%d", time.Now().UnixNano())
	start := time.Now()
	resp, err := client.Post("https://"+addr+"/mutate", "application/json", bytes.NewReader(reviewJSON(uid, ns, name, 2, 50)))
	if err != nil {
		t.Fatalf("AdmissionReview to %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	d := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	var a reviewAnswer
	if err := json.Unmarshal(b, &a); err != nil || a.Response.UID != uid || !a.Response.Allowed {
		t.Fatalf("AdmissionReview to %s: not an allowing answer for %s: %s", addr, uid, b)
	}
	if len(a.Response.Patch) == 0 {
		return 0, a.Response.Warnings, d
	}
	got, err := clampedTo(b, uid)
	if err != nil {
		t.Fatal(err)
	}
	return got, a.Response.Warnings, d
}

// TestRequestPathNeverWaits shows the request path's bound: an admission request never
// waits on the API server or on an unsynced cache. The binary reaches the API server
// through a proxy that the test freezes, so its watches stall:
//   - a request whose labels are in the cache is decided from it, at once;
//   - a Scale of a Deployment created meanwhile (not in the cache) is allowed unchanged,
//     at once, with a warning naming the rule: it fails open, and the scaler corrects the
//     Deployment once the cache catches up;
//   - a process started while the API server is unreachable does not listen at all;
//   - a starting process answers at once with HTTP 503 (no AdmissionReview: the failure
//     policy decides) until it has read the policy, never from an empty policy: that
//     window, while readiness is false, is measured.
func TestRequestPathNeverWaits(t *testing.T) {
	e := startCluster(t)
	p := startProxy(t, apiServerAddr(t, e))
	ctx := context.Background()
	w, err := e.RunWebhook(ctx, harness.WebhookOptions{Binary: webhookBinary, Name: "webhook", APIServer: p.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Kill)
	const ns = "frozen"
	e.mustSetPolicy(t, `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- name: web
  namespaces: [frozen]
  selector: {matchLabels: {tier: web}}
  minReplicas: 1
  maxReplicas: 3
`)
	e.createDeployments(t, ns, 0, 2)
	create := func(name string) {
		t.Helper()
		d := deployment(ns, name, 2)
		d.Labels["tier"] = "web"
		if _, err := e.admin.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create("known")
	harness.Eventually(t, 10*time.Second, poll, "the webhook has the Deployment's labels", func() bool {
		got, err := scale(ctx, e.admin, ns, "known", 50, true)
		return err == nil && got == 3
	})
	addr := fmt.Sprintf("127.0.0.1:%d", e.Port)
	tlsConfig := e.webhookTLS(t)
	warns := &harness.Warnings{}
	cfg := rest.CopyConfig(e.Config)
	cfg.WarningHandler = warns
	user := kubernetes.NewForConfigOrDie(cfg)

	// Freeze for less than the leader election's renew deadline (10 s): longer, and the
	// binary exits on losing its Lease (controller-runtime's design), see docs/reliability.md.
	freeze := pick(3*time.Second, 8*time.Second)
	p.set(true)
	frozenAt := time.Now()
	// Labels in the cache: decided from it.
	if got, _, d := directReview(t, tlsConfig, addr, ns, "known"); got != 3 || d > time.Second {
		t.Errorf("frozen API server: a scale of a cached Deployment answered %d in %v; want 3 at once", got, d)
	}
	// A Deployment the cache has not seen: its create carries labels and is decided as usual;
	// a scale of it is allowed unchanged with a warning.
	create("fresh")
	start := time.Now()
	got, err := scale(ctx, user, ns, "fresh", 50, false)
	d := time.Since(start)
	if err != nil || got != 50 {
		t.Fatalf("frozen API server: scale of the uncached Deployment answered %d, %v; want 50, allowed unchanged", got, err)
	}
	if !warns.Has(`replica policy rule "web" could not be checked`) {
		t.Errorf("no warning that the rule could not be checked; warnings: %q", warns.List())
	}
	_, dwarns, dd := directReview(t, tlsConfig, addr, ns, "fresh")
	figure(t, "API server frozen for the webhook: scale of an uncached Deployment allowed unchanged in %v through the API server (%v direct), warning %q",
		d.Round(time.Millisecond), dd.Round(time.Millisecond), strings.Join(dwarns, "; "))
	// A steady stream while frozen: every answer from the cache, at once.
	lctx, stop := context.WithCancel(ctx)
	l := dryRunLoad(lctx, e, ns, []string{"known"}, 20)
	time.Sleep(freeze - time.Since(frozenAt))
	stop()
	rs := l.Wait()
	for _, r := range rs {
		if r.Err != nil || r.Got != 3 {
			t.Errorf("frozen API server: dry-run scale of the cached Deployment answered %d, %v", r.Got, r.Err)
		}
	}
	lat := harness.Summarize(rs)
	if lat.Max > 2*time.Second {
		t.Errorf("frozen API server: an admission request took %v", lat.Max)
	}
	p.set(false)
	thawed := time.Now()
	corrected := harness.Eventually(t, 30*time.Second, poll, "the scaler corrects the Deployment that got through", func() bool {
		m, err := e.replicas(ctx, ns)
		return err == nil && m["fresh"] == 3
	})
	figure(t, "frozen %v: %d dry-run scale requests, all clamped from the cache, latency %v; after the thaw the scaler corrected the uncached Deployment in %v",
		thawed.Sub(frozenAt).Round(10*time.Millisecond), len(rs), lat, corrected.Round(10*time.Millisecond))
	if !w.Running() {
		t.Errorf("the webhook exited while the API server was frozen:\n%s", w.Log())
	}

	// Longer than the leader election's renew deadline (10 s): the leader cannot renew its
	// Lease, and controller-runtime ends the process ("leader election lost"), webhook
	// server included; a Pod's restart policy brings it back. Measured, in the long run.
	if long() {
		p.set(true)
		start := time.Now()
		var exited time.Duration
		for time.Since(start) < 20*time.Second && exited == 0 {
			if !w.Running() {
				exited = time.Since(start)
			}
			time.Sleep(50 * time.Millisecond)
		}
		p.set(false)
		if exited == 0 {
			figure(t, "API server frozen for the webhook for 20 s: the webhook kept running")
		} else {
			figure(t, "API server frozen for the webhook: the webhook exited after %v (%v)", exited.Round(100*time.Millisecond), w.Wait(time.Second))
			if !strings.Contains(w.Log(), "leader election lost") {
				t.Errorf("the webhook exited, not on losing its Lease:\n%s", w.Log())
			}
		}
	}

	// A process started while the API server is unreachable: its setup needs the API
	// server's discovery, so it never gets as far as listening: the API server's calls are
	// refused and fail open (counted), instead of being answered from an empty policy.
	dead := startProxy(t, apiServerAddr(t, e))
	dead.set(true)
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	w2, err := e.RunWebhook(ctx, harness.WebhookOptions{Binary: webhookBinary, Name: "unreachable", APIServer: dead.URL(), NoWait: true,
		Args: []string{"--port", fmt.Sprint(port)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w2.Kill)
	time.Sleep(3 * time.Second)
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Errorf("a webhook that never reached the API server listens on its port")
	}
	if !w2.Running() {
		t.Errorf("a webhook that cannot reach the API server exited:\n%s", w2.Log())
	}
	w2.Kill()

	// Start-up: the webhook server listens before the policy is read and the caches have
	// synced (readiness is false meanwhile). Requests in that window are answered at once,
	// with HTTP 503 and no AdmissionReview, so that the failure policy decides them.
	port3, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	w3, err := e.RunWebhook(ctx, harness.WebhookOptions{Binary: webhookBinary, Name: "starting", NoWait: true,
		Args: []string{"--port", fmt.Sprint(port3)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w3.Kill)
	addr3 := fmt.Sprintf("127.0.0.1:%d", port3)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	var before, notReady int
	var firstClamp, slowest time.Duration
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && firstClamp == 0; {
		uid := fmt.Sprintf("start-%d", before)
		start := time.Now()
		resp, err := client.Post("https://"+addr3+"/mutate", "application/json", bytes.NewReader(reviewJSON(uid, ns, "known", 2, 50)))
		if err != nil {
			time.Sleep(5 * time.Millisecond) // not listening yet
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slowest = max(slowest, time.Since(start))
		before++
		switch got, err := clampedTo(b, uid); {
		case resp.StatusCode == http.StatusServiceUnavailable && !bytes.Contains(b, []byte("AdmissionReview")):
			notReady++
		case err == nil && got == 3:
			firstClamp = time.Since(w3.Started)
		default:
			t.Errorf("the starting webhook answered HTTP %d %q before its first clamp: want 503 without an AdmissionReview", resp.StatusCode, b)
		}
	}
	if firstClamp == 0 {
		t.Fatalf("the starting webhook never clamped:\n%s", w3.Log())
	}
	if slowest > time.Second {
		t.Errorf("a request to the starting webhook took %v", slowest)
	}
	figure(t, "started while the API server is unreachable: never listens (API server calls refused, fail open); start-up: %d requests answered 503 (not ready: the failure policy decides) before the first clamp %v after exec, slowest answer %v",
		notReady, firstClamp.Round(time.Millisecond), slowest.Round(time.Millisecond))
}

// apiServerAddr is host:port of the control plane's API server.
func apiServerAddr(t *testing.T, e *env) string {
	t.Helper()
	u, err := url.Parse(e.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// stopProcess sends SIGSTOP to pid and waits until the kernel reports every thread of it
// stopped (state T in /proc/PID/task/*/stat). The signal stops the threads asynchronously:
// on a loaded machine a request that arrives in the meantime can still be answered (CI once
// saw a write clamped 16 ms after the signal was sent).
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %d: %v", pid, err)
	}
	harness.Eventually(t, 5*time.Second, 2*time.Millisecond, "every thread of the webhook process is stopped", func() bool {
		stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(stats) == 0 {
			return false
		}
		for _, stat := range stats {
			b, err := os.ReadFile(stat)
			// The state follows the command name, which is in parentheses and may hold spaces.
			i := bytes.LastIndexByte(b, ')')
			if err != nil || i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
				return false
			}
		}
		return true
	})
}
