package reliability

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// dryRunLoad sends dry-run scale requests to 50 replicas through the API server, round
// robin over names; the answers say what the webhook decided without changing anything.
func dryRunLoad(ctx context.Context, e *env, ns string, names []string, perSecond int) *harness.Load {
	return harness.StartLoad(ctx, perSecond, func(ctx context.Context, i int) harness.Write {
		target := names[i%len(names)]
		got, err := scale(ctx, e.admin, ns, target, 50, true)
		return harness.Write{Target: target, Sent: 50, Got: got, Err: err}
	})
}

// servingSerial reads the serial number of the certificate in certDir/tls.crt.
func servingSerial(t *testing.T, certDir string) string {
	t.Helper()
	c, err := harness.ReadCert(filepath.Join(certDir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// TestCertificateRotationUnderLoad rotates the serving certificate every two seconds
// (same CA, new key and certificate from the certs tool's logic, certs/certgen) while
// admission requests above the bound run through the API server, alternating dry-run scale
// updates and dry-run Deployment creates, and a prober opens a new TLS connection every
// 50 ms. With failurePolicy Ignore a failed handshake would silently let a request through
// unclamped: so every answer must be clamped and carry the clamp's warning, the API server
// must count no webhook call that failed open, and every handshake must succeed; each
// rotation must issue a new certificate, served within the contract's 15 s, and the webhook
// must still be ready afterwards. Two ways of writing the files: in place (the certs tool
// renames each file over the old one) and as the kubelet updates a Secret volume (a new
// folder swapped in by renaming the "..data" symlink that tls.crt, tls.key and ca.crt point
// through).
func TestCertificateRotationUnderLoad(t *testing.T) {
	e := startCluster(t)
	const ns = "certs"
	e.mustSetPolicy(t, policyDoc("certs-cap", ns, 1, 5))
	names := e.createDeployments(t, ns, 5, 2)
	generate := func(dir string) {
		t.Helper()
		if out, err := harness.GenerateCerts(dir, "127.0.0.1"); err != nil {
			t.Fatalf("certs tool: %v\n%s", err, out)
		}
	}

	t.Run("in place", func(t *testing.T) {
		w := e.runWebhook(t, "webhook-in-place")
		defer w.Kill()
		rotateUnderLoad(t, e, w, ns, names, e.CertDir, func() string {
			generate(e.CertDir)
			return servingSerial(t, e.CertDir)
		})
	})
	t.Run("secret volume", func(t *testing.T) {
		staging := t.TempDir()
		for _, f := range []string{"ca.crt", "ca.key"} { // the same CA
			b, err := os.ReadFile(filepath.Join(e.CertDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(staging, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		vol := &secretVolume{dir: t.TempDir()}
		rotate := func() string {
			generate(staging)
			files := map[string][]byte{}
			for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
				b, err := os.ReadFile(filepath.Join(staging, f))
				if err != nil {
					t.Fatal(err)
				}
				files[f] = b
			}
			vol.update(t, files)
			return servingSerial(t, vol.dir)
		}
		rotate()
		w := e.runWebhook(t, "webhook-secret-volume", "--cert-dir", vol.dir)
		defer w.Kill()
		rotateUnderLoad(t, e, w, ns, names, vol.dir, rotate)
	})
}

// secretVolume lays a folder out as the kubelet lays out a Secret volume: the files in a
// timestamped folder, "..data" a symlink to it, and each file a symlink through "..data".
type secretVolume struct {
	dir string
	n   int
}

// update swaps in a new set of files with one rename of "..data", then removes the old
// folder, as the kubelet's AtomicWriter does (kubernetes pkg/volume/util/atomic_writer.go).
func (v *secretVolume) update(t *testing.T, files map[string][]byte) {
	t.Helper()
	v.n++
	ts := fmt.Sprintf("..%s_%d", time.Now().Format("2006_01_02_15_04_05"), v.n)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(v.dir, ts, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(v.dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// rotationLoad sends, perSecond times a second, a dry-run write of 50 replicas through the
// API server: scale updates round robin over names and, every other write, a create of a
// new Deployment. A write whose answer lacks the clamp's warning (to want, by rule) is an
// error: the webhook did not answer it.
func rotationLoad(ctx context.Context, e *env, ns string, names []string, perSecond int, rule string, want int32) *harness.Load {
	cfg := rest.CopyConfig(e.Config)
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.WarningHandler, cfg.WarningHandlerWithContext = nil, harness.ContextWarnings{}
	cs := kubernetes.NewForConfigOrDie(cfg)
	clamped := fmt.Sprintf("clamped to %d by replica policy rule %q", want, rule)
	return harness.StartLoad(ctx, perSecond, func(ctx context.Context, i int) harness.Write {
		ctx, warns := harness.WithWarnings(ctx)
		w := harness.Write{Target: names[i%len(names)], Sent: 50}
		if i%2 == 0 {
			w.Got, w.Err = scale(ctx, cs, ns, w.Target, 50, true)
		} else {
			w.Target = fmt.Sprintf("probe-%d", i)
			var d *appsv1.Deployment
			if d, w.Err = cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, w.Target, 50), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); w.Err == nil {
				w.Got = *d.Spec.Replicas
			}
		}
		if w.Err == nil && !warns.Has(clamped) {
			w.Err = fmt.Errorf("answered without the warning %q: %q", clamped, warns.List())
		}
		return w
	})
}

// rotateUnderLoad runs the load and the prober against w, serving from certDir, calls
// rotate (which writes a new certificate and returns its serial number) every two seconds,
// and checks the outcome.
func rotateUnderLoad(t *testing.T, e *env, w *harness.Webhook, ns string, names []string, certDir string, rotate func() string) {
	ctx := context.Background()
	harness.Eventually(t, 10*time.Second, poll, "the policy is in force", func() bool {
		got, err := scale(ctx, e.admin, ns, names[0], 50, true)
		return err == nil && got == 5
	})
	var (
		every     = 2 * time.Second
		rotations = pick(5, 60)
		rate      = pick(20, 40)
	)
	tlsConfig := e.webhookTLS(t)
	failOpen0 := e.failOpen(t)
	initial := servingSerial(t, certDir)

	// The prober: a new connection, hence a new handshake, every 50 ms; it records the
	// serial it was served and when.
	type probe struct {
		at     time.Time
		serial string
		err    error
	}
	var (
		probesMu sync.Mutex
		probes   []probe
	)
	pctx, stopProbes := context.WithCancel(ctx)
	probesDone := make(chan struct{})
	go func() {
		defer close(probesDone)
		for pctx.Err() == nil {
			p := probe{at: time.Now()}
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", e.Port), tlsConfig)
			if err != nil {
				p.err = err
			} else {
				p.serial = conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
				conn.Close()
			}
			probesMu.Lock()
			probes = append(probes, p)
			probesMu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()

	lctx, stopLoad := context.WithCancel(ctx)
	l := rotationLoad(lctx, e, ns, names, rate, "certs-cap", 5)
	type rotation struct {
		at     time.Time
		serial string
	}
	var rots []rotation
	prev := initial
	for range rotations {
		time.Sleep(every)
		serial := rotate()
		if serial == prev {
			t.Fatalf("the certs tool did not issue a new serving certificate (serial %s)", serial)
		}
		prev = serial
		rots = append(rots, rotation{at: time.Now(), serial: serial})
	}
	time.Sleep(every)
	stopLoad()
	rs := l.Wait()
	stopProbes()
	<-probesDone

	bad := 0
	for _, r := range rs {
		if r.Err != nil || r.Got != 5 {
			bad++
			t.Errorf("dry-run write of %s with 50 replicas during rotation answered %d, %v: want 5 (clamped, with the warning)", r.Target, r.Got, r.Err)
		}
	}
	if len(rs) < 50 {
		t.Errorf("only %d admission requests during the rotations: too few to show anything", len(rs))
	}
	failOpen := e.failOpen(t) - failOpen0
	if failOpen != 0 {
		t.Errorf("the API server counted %v webhook calls that failed open during rotation", failOpen)
	}
	failedHandshakes := 0
	for _, p := range probes {
		if p.err != nil {
			failedHandshakes++
			t.Errorf("handshake at %v failed: %v", p.at.Format("15:04:05.000"), p.err)
		}
	}
	// Every rotation must be served, within the contract's 15 s; report the slowest.
	var slowest time.Duration
	for _, r := range rots {
		served := false
		for _, p := range probes {
			if p.serial == r.serial && !p.at.Before(r.at) {
				slowest = max(slowest, p.at.Sub(r.at))
				served = true
				break
			}
		}
		if !served {
			t.Errorf("the certificate %s written at %v was never served", r.serial, r.at.Format("15:04:05.000"))
		}
	}
	if slowest > 15*time.Second {
		t.Errorf("a new certificate took %v to be served: the contract is 15 s", slowest)
	}
	if resp, err := http.Get("http://" + w.Health + "/readyz?verbose"); err != nil {
		t.Errorf("readiness after the rotations: %v", err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("not ready after the rotations: %s\n%s", resp.Status, body)
		}
	}
	figure(t, "%d rotations every %v; %d dry-run writes (scale updates and creates) through the API server, %d not clamped with a warning, API server fail-open count %v; %d handshakes, %d failed; new certificate served within %v (slowest)",
		len(rots), every, len(rs), bad, failOpen, len(probes), failedHandshakes, slowest.Round(time.Millisecond))
}

// withoutPolicyWebhook removes the policy ConfigMap's webhook from the validating webhook
// configuration, so that an invalid policy lands as it would during a webhook outage; it
// returns a function that puts it back.
func withoutPolicyWebhook(t *testing.T, e *env) (restore func()) {
	t.Helper()
	ctx := context.Background()
	vwcs := e.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	orig, err := vwcs.Get(ctx, "replica-policy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cut := orig.DeepCopy()
	var kept []admissionregistrationv1.ValidatingWebhook
	for _, w := range cut.Webhooks {
		if w.Name != "policy.replicapolicy.io" {
			kept = append(kept, w)
		}
	}
	if len(kept) == len(cut.Webhooks) {
		t.Fatal("the validating webhook configuration has no policy.replicapolicy.io webhook")
	}
	cut.Webhooks = kept
	if _, err := vwcs.Update(ctx, cut, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore = func() {
		if restored {
			return
		}
		restored = true
		cur, err := vwcs.Get(ctx, "replica-policy", metav1.GetOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		cur.Webhooks = orig.Webhooks
		if _, err := vwcs.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(restore)
	return restore
}

// Flapping policies. The two valid ones clamp 50 to 5 and to 7. Each invalid one would
// clamp to another value (3, 2 or 9) if any part of it were ever loaded.
var (
	flapValid = map[int32]string{
		5: policyDoc("flap", "flap", 1, 5),
		7: `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- name: decoy
  namespaces: [elsewhere]
  maxReplicas: 3
- name: flap
  namespaces: [flap]
  minReplicas: 1
  maxReplicas: 7
`,
	}
	flapInvalid = []string{
		// An unknown field after a rule that would clamp to 3.
		`apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- name: flap
  namespaces: [flap]
  maxReplicas: 3
- name: later
  namespaces: [flap]
  maxReplica: 4
`,
		// minReplicas above maxReplicas: would clamp to 2 or 9.
		policyDoc("flap", "flap", 9, 2),
		// Not YAML.
		"apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\nrules: [{name: flap, namespaces: [flap], maxReplicas: 9\n",
	}
)

// TestPolicyFlapUnderLoad alternates the policy ConfigMap between two valid policies and
// invalid ones (written past the validating webhook, as during an outage), while dry-run
// scale requests run through the API server. Every answer must be one of the two valid
// outcomes, never one an invalid policy or a mix would give; a valid change must be in force
// within 2 s; and once the flapping stops on an invalid policy, the last valid one stays.
func TestPolicyFlapUnderLoad(t *testing.T) {
	e := startCluster(t)
	w := e.runWebhook(t, "webhook")
	const ns = "flap"
	e.mustSetPolicy(t, flapValid[5])
	names := e.createDeployments(t, ns, 5, 2)
	ctx := context.Background()
	harness.Eventually(t, 10*time.Second, poll, "the policy is in force", func() bool {
		got, err := scale(ctx, e.admin, ns, names[0], 50, true)
		return err == nil && got == 5
	})
	restore := withoutPolicyWebhook(t, e)
	// The API server sees the configuration change through its own informer.
	harness.Eventually(t, 10*time.Second, poll, "an invalid policy gets past the API server", func() bool {
		return e.setPolicy(ctx, flapInvalid[0]) == nil
	})

	var (
		interval = 250 * time.Millisecond
		changes  = pick(40, 400) // policy writes
		rate     = pick(25, 40)
	)
	type change struct {
		at    time.Time
		valid int32 // the clamp of a valid policy, 0 for an invalid one
	}
	var writes []change
	lctx, stopLoad := context.WithCancel(ctx)
	l := dryRunLoad(lctx, e, ns, names, rate)
	lastValid := int32(5)
	for i := range changes {
		time.Sleep(interval)
		c := change{}
		doc := flapInvalid[(i/2)%len(flapInvalid)]
		if i%2 == 1 { // valid and invalid alternate; the valid ones alternate 7, 5, 7, ...
			c.valid = map[int32]int32{5: 7, 7: 5}[lastValid]
			doc = flapValid[c.valid]
			lastValid = c.valid
		}
		if err := e.setPolicy(ctx, doc); err != nil {
			t.Fatalf("policy write %d: %v", i, err)
		}
		c.at = time.Now()
		writes = append(writes, c)
	}
	// End on an invalid policy: the last valid one must stay in force.
	if err := e.setPolicy(ctx, flapInvalid[0]); err != nil {
		t.Fatal(err)
	}
	writes = append(writes, change{at: time.Now()})
	time.Sleep(3 * time.Second)
	stopLoad()
	rs := l.Wait()
	restore()

	var others int
	for _, r := range rs {
		if r.Err != nil || (r.Got != 5 && r.Got != 7) {
			others++
			t.Errorf("dry-run scale of %s to 50 at %v answered %d, %v: want 5 or 7, the clamps of the two valid policies",
				r.Target, r.Start.Format("15:04:05.000"), r.Got, r.Err)
		}
	}
	// Propagation: for each valid write, the first answer given from its policy. An answer
	// from the previous valid policy to a request that starts more than 2 s after the write
	// breaks the contract.
	var slowest time.Duration
	late := 0
	prev := int32(5)
	for i, c := range writes {
		if c.valid == 0 {
			continue
		}
		next := time.Now().Add(time.Hour)
		for _, n := range writes[i+1:] {
			if n.valid != 0 {
				next = n.at
				break
			}
		}
		for _, r := range rs {
			if r.Start.Before(c.at) || !r.Start.Before(next) || r.Err != nil {
				continue
			}
			if r.Got == c.valid {
				slowest = max(slowest, r.Start.Add(r.Dur).Sub(c.at))
				break
			}
			if r.Got == prev && r.Start.Sub(c.at) > 2*time.Second {
				late++
			}
		}
		prev = c.valid
	}
	if late > 0 {
		t.Errorf("%d answers came from the previous valid policy more than 2 s after a valid change", late)
	}
	// After the last (invalid) write: the last valid policy, and the metric says invalid.
	final := rs[len(rs)-1]
	if final.Got != lastValid {
		t.Errorf("after the flapping ended on an invalid policy, the answer is %d: want %d, the last valid policy", final.Got, lastValid)
	}
	m := webhookMetrics(t, w)
	if v := m.Sum("replicapolicy_policy_valid"); v != 0 {
		t.Errorf("replicapolicy_policy_valid = %v with an invalid policy in the ConfigMap, want 0", v)
	}
	reloads := fmt.Sprintf("valid %v, invalid %v", m.Sum("replicapolicy_policy_reloads_total", `result="valid"`), m.Sum("replicapolicy_policy_reloads_total", `result="invalid"`))
	figure(t, "%d policy writes every %v (half invalid, past the webhook); reloads %s; %d dry-run scale requests, %d answers other than the two valid clamps; a valid change answered within %v (slowest)",
		len(writes), interval, reloads, len(rs), others, slowest.Round(time.Millisecond))
}

// TestPolicyDeleteRecreate deletes the policy ConfigMap (no bounds) and creates it again
// (enforced within 2 s), under load; a write of 50 lands in each gap, and the scaler corrects
// it after each re-creation, never taking the policy's absence for another writer's fight.
func TestPolicyDeleteRecreate(t *testing.T) {
	e := startCluster(t)
	e.runWebhook(t, "webhook")
	const ns = "recreate"
	doc := policyDoc("recreate-cap", ns, 1, 5)
	e.mustSetPolicy(t, doc)
	names := e.createDeployments(t, ns, 1, 2)
	ctx := context.Background()
	answer := func() int32 {
		got, err := scale(ctx, e.admin, ns, names[0], 50, true)
		if err != nil {
			t.Fatalf("dry-run scale: %v", err)
		}
		return got
	}
	harness.Eventually(t, 10*time.Second, poll, "the policy is in force", func() bool { return answer() == 5 })
	cms := e.admin.CoreV1().ConfigMaps(policy.DefaultNamespace)
	var slowestDelete, slowestCreate, slowestCorrected time.Duration
	// More cycles than the scaler's contest threshold (3): each correction is under a new
	// policy, so none of them is a fight with another writer.
	cycles := pick(4, 20)
	for range cycles {
		if err := cms.Delete(ctx, policy.DefaultConfigMapName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		slowestDelete = max(slowestDelete, harness.Eventually(t, 2*time.Second, poll, "no bounds after the ConfigMap was deleted", func() bool { return answer() == 50 }))
		// A client's out-of-bounds write lands while there is no policy.
		if got, err := scale(ctx, e.admin, ns, names[0], 50, false); err != nil || got != 50 {
			t.Fatalf("scale to 50 without a policy: %d, %v", got, err)
		}
		created := time.Now()
		if err := e.setPolicy(ctx, doc); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		slowestCreate = max(slowestCreate, harness.Eventually(t, 2*time.Second, poll, "bounds enforced after the ConfigMap was created again", func() bool { return answer() == 5 }))
		// The 2 s reload contract plus one scaler pass over one Deployment.
		harness.Eventually(t, 5*time.Second, poll, "the scaler corrects what landed while there was no policy", func() bool {
			d, err := e.admin.AppsV1().Deployments(ns).Get(ctx, names[0], metav1.GetOptions{})
			return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == 5
		})
		slowestCorrected = max(slowestCorrected, time.Since(created))
	}
	figure(t, "%d delete/create cycles, a scale to 50 landing in each gap: no bounds within %v of the delete, bounds again within %v of the create, corrected by the scaler within %v of the create (slowest)",
		cycles, slowestDelete.Round(time.Millisecond), slowestCreate.Round(time.Millisecond), slowestCorrected.Round(time.Millisecond))
}
