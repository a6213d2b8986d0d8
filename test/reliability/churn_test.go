package reliability

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/test/localcluster"
)

// dryRunLoad sends dry-run scale requests to 50 replicas through the API server, round
// robin over names; the answers say what the webhook decided without changing anything.
func dryRunLoad(ctx context.Context, e *env, ns string, names []string, perSecond int) *load {
	return startLoad(ctx, perSecond, func(ctx context.Context, i int) result {
		target := names[i%len(names)]
		got, err := scale(ctx, e.admin, ns, target, 50, true)
		return result{target: target, sent: 50, got: got, err: err}
	})
}

// servingSerial reads the serial number of the certificate in certDir/tls.crt.
func servingSerial(t *testing.T, certDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(certDir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("tls.crt holds no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// TestCertificateRotationUnderLoad rotates the serving certificate every two seconds
// (same CA, new key and certificate from the certs tool) while dry-run scale requests above
// the bound run through the API server and a prober opens a new TLS connection every 50 ms.
// With failurePolicy Ignore a failed handshake would silently let a request through
// unclamped: so every answer must be clamped, the API server must count no webhook call that
// failed open, and every handshake must succeed; each new certificate must be served within
// the contract's 15 s. Two ways of writing the files: in place (the certs tool renames each
// file over the old one) and as the kubelet updates a Secret volume (a new folder swapped
// in by renaming the "..data" symlink that tls.crt and tls.key point through).
func TestCertificateRotationUnderLoad(t *testing.T) {
	e := startCluster(t)
	const ns = "certs"
	e.mustSetPolicy(t, policyDoc("certs-cap", ns, 1, 5))
	names := e.createDeployments(t, ns, 5, 2)

	t.Run("in place", func(t *testing.T) {
		w := e.runWebhook(t, "webhook-in-place")
		defer w.Kill()
		rotateUnderLoad(t, e, ns, names, func() string {
			if out, err := exec.Command(certsBinary, "--extra-san", "127.0.0.1", "--out-dir", e.CertDir).CombinedOutput(); err != nil {
				t.Fatalf("certs tool: %v\n%s", err, out)
			}
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
		generate := func() string {
			if out, err := exec.Command(certsBinary, "--extra-san", "127.0.0.1", "--out-dir", staging).CombinedOutput(); err != nil {
				t.Fatalf("certs tool: %v\n%s", err, out)
			}
			files := map[string][]byte{}
			for _, f := range []string{"tls.crt", "tls.key"} {
				b, err := os.ReadFile(filepath.Join(staging, f))
				if err != nil {
					t.Fatal(err)
				}
				files[f] = b
			}
			vol.update(t, files)
			return servingSerial(t, vol.dir)
		}
		generate()
		w := e.runWebhook(t, "webhook-secret-volume", "--cert-dir", vol.dir)
		defer w.Kill()
		rotateUnderLoad(t, e, ns, names, generate)
	})
}

// secretVolume lays a folder out as the kubelet lays out a Secret volume: the files in a
// timestamped folder, "..data" a symlink to it, and each file a symlink through "..data".
type secretVolume struct {
	dir string
	n   int
}

// update swaps in a new set of files with one rename of "..data", then removes the old
// folder, as the kubelet's AtomicWriter does.
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

// rotateUnderLoad runs the load and the prober, calls rotate (which writes a new
// certificate and returns its serial number) every two seconds, and checks the outcome.
func rotateUnderLoad(t *testing.T, e *env, ns string, names []string, rotate func() string) {
	ctx := context.Background()
	waitFor(t, 10*time.Second, "the policy is in force", func() bool {
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
	l := dryRunLoad(lctx, e, ns, names, rate)
	type rotation struct {
		at     time.Time
		serial string
	}
	var rots []rotation
	for range rotations {
		time.Sleep(every)
		serial := rotate()
		rots = append(rots, rotation{at: time.Now(), serial: serial})
	}
	time.Sleep(every)
	stopLoad()
	rs := l.wait()
	stopProbes()
	<-probesDone

	bad := 0
	for _, r := range rs {
		if r.err != nil || r.got != 5 {
			bad++
			t.Errorf("dry-run scale of %s to 50 during rotation answered %d, %v: want 5 (clamped)", r.target, r.got, r.err)
		}
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
	figure(t, "%d rotations every %v; %d dry-run scale requests through the API server, %d not clamped, API server fail-open count %v; %d handshakes, %d failed; new certificate served within %v (slowest)",
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
	waitFor(t, 10*time.Second, "the policy is in force", func() bool {
		got, err := scale(ctx, e.admin, ns, names[0], 50, true)
		return err == nil && got == 5
	})
	restore := withoutPolicyWebhook(t, e)
	// The API server sees the configuration change through its own informer.
	waitFor(t, 10*time.Second, "an invalid policy gets past the API server", func() bool {
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
	rs := l.wait()
	restore()

	var others int
	for _, r := range rs {
		if r.err != nil || (r.got != 5 && r.got != 7) {
			others++
			t.Errorf("dry-run scale of %s to 50 at %v answered %d, %v: want 5 or 7, the clamps of the two valid policies",
				r.target, r.start.Format("15:04:05.000"), r.got, r.err)
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
			if r.start.Before(c.at) || !r.start.Before(next) || r.err != nil {
				continue
			}
			if r.got == c.valid {
				slowest = max(slowest, r.start.Add(r.dur).Sub(c.at))
				break
			}
			if r.got == prev && r.start.Sub(c.at) > 2*time.Second {
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
	if final.got != lastValid {
		t.Errorf("after the flapping ended on an invalid policy, the answer is %d: want %d, the last valid policy", final.got, lastValid)
	}
	m := webhookMetrics(t, w)
	if v := sum(m, "replicapolicy_policy_valid"); v != 0 {
		t.Errorf("replicapolicy_policy_valid = %v with an invalid policy in the ConfigMap, want 0", v)
	}
	reloads := fmt.Sprintf("valid %v, invalid %v", sum(m, "replicapolicy_policy_reloads_total", `result="valid"`), sum(m, "replicapolicy_policy_reloads_total", `result="invalid"`))
	// Requests whose /mutate and /validate calls saw different policies: /validate allows
	// the value /mutate clamped to under the policy of a moment ago, with a warning.
	straddled := sum(m, "replicapolicy_admission_decisions_total", `webhook="validate"`, `rule="flap"`, `outcome="warned"`)
	figure(t, "%d policy writes every %v (half invalid, past the webhook); reloads %s; %d dry-run scale requests, %d answers other than the two valid clamps (%v saw the policy change between /mutate and /validate); a valid change answered within %v (slowest)",
		len(writes), interval, reloads, len(rs), others, straddled, slowest.Round(time.Millisecond))
}

// TestPolicyDeleteRecreate deletes the policy ConfigMap (no bounds) and creates it again
// (enforced within 2 s), under load.
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
	waitFor(t, 10*time.Second, "the policy is in force", func() bool { return answer() == 5 })
	cms := e.admin.CoreV1().ConfigMaps(localcluster.Namespace)
	var slowestDelete, slowestCreate time.Duration
	cycles := pick(3, 20)
	for range cycles {
		if err := cms.Delete(ctx, "replica-policy", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		slowestDelete = max(slowestDelete, waitFor(t, 2*time.Second, "no bounds after the ConfigMap was deleted", func() bool { return answer() == 50 }))
		if err := e.setPolicy(ctx, doc); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		slowestCreate = max(slowestCreate, waitFor(t, 2*time.Second, "bounds enforced after the ConfigMap was created again", func() bool { return answer() == 5 }))
	}
	figure(t, "%d delete/create cycles: no bounds within %v of the delete, bounds again within %v of the create (slowest)",
		cycles, slowestDelete.Round(time.Millisecond), slowestCreate.Round(time.Millisecond))
}
