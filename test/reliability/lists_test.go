package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// listsAuditPolicy logs, at Metadata level, every list and watch of the webhook's
// ServiceAccount, and nothing else. A watch is logged when its answer starts (and again when
// it ends): the events are counted by auditID.
var listsAuditPolicy = fmt.Sprintf(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: ["system:serviceaccount:%s:%s"]
  verbs: [list, watch]
- level: None
`, policy.DefaultNamespace, harness.ServiceAccount)

// credentialID is the audit event's key of the token a request was made with: each start of
// the binary gets a token of its own (harness.RunWebhook), so it names the process.
const credentialID = "authentication.kubernetes.io/credential-id"

// auditEvent is what TestOneListPerResourcePerStart reads of an audit event.
type auditEvent struct {
	AuditID    string `json:"auditID"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Extra map[string][]string `json:"extra"`
	} `json:"user"`
	ObjectRef struct {
		Resource string `json:"resource"`
		APIGroup string `json:"apiGroup"`
	} `json:"objectRef"`
}

// initialReads lists, by process (the token's credential id) and resource, the verbs of
// the requests of the audit log at path that read a resource's whole state: "list", or
// "watchlist" for a WATCH that sends the initial state first (sendInitialEvents=true,
// client-go's WatchList, on by default since client-go 1.35: informers then list through a
// watch). Plain watches from a resourceVersion are not counted.
func initialReads(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	reads := map[string]map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit log %s: %v", path, err)
		}
		if seen[ev.AuditID] || (ev.Verb != "list" && !(ev.Verb == "watch" && strings.Contains(ev.RequestURI, "sendInitialEvents=true"))) {
			continue
		}
		seen[ev.AuditID] = true
		ids := ev.User.Extra[credentialID]
		if len(ids) != 1 {
			t.Fatalf("audit event without the token's %s: the processes cannot be told apart: %s", credentialID, sc.Text())
		}
		resource := ev.ObjectRef.Resource
		if ev.ObjectRef.APIGroup != "" {
			resource += "." + ev.ObjectRef.APIGroup
		}
		if reads[ids[0]] == nil {
			reads[ids[0]] = map[string][]string{}
		}
		verb := ev.Verb
		if verb == "watch" {
			verb = "watchlist"
		}
		reads[ids[0]][resource] = append(reads[ids[0]][resource], verb)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return reads
}

// TestOneListPerResourcePerStart runs two replicas of the binary (with --leader-elect, as
// the manifests run them) with 200 Deployments [long: 2,000], restarts both once [3 times]
// (one SIGTERM, one SIGKILL) while a stream of scale writes runs through the API server,
// and counts, from the API server's audit log, the requests each process made that read a
// resource's whole state (a LIST, or a WATCH with sendInitialEvents): at most one per
// resource per process start (docs/design.md, Scale).
// Informers list once and then watch from the resourceVersion they reached (with bookmarks,
// which keep it recent); a second read would come from a relist after a watch error (410
// Gone: a resourceVersion compacted away) or from a direct List call beside the cache.
func TestOneListPerResourcePerStart(t *testing.T) {
	dir := t.TempDir()
	auditPolicy, auditLog := filepath.Join(dir, "audit-policy.yaml"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(auditPolicy, []byte(listsAuditPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	e := startCluster(t, "audit-policy-file="+auditPolicy, "audit-log-path="+auditLog)
	const (
		ns          = "lists"
		maxReplicas = 5
	)
	var (
		deployments = pick(200, 2000)
		restarts    = pick(1, 3)
	)
	e.mustSetPolicy(t, policyDoc("lists-cap", ns, 1, maxReplicas))
	names := e.createDeployments(t, ns, deployments, 2)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	// Replica 0 serves the webhook configurations' port, replica 1 another: both list and
	// watch what a replica behind the Service would.
	start := func(round int) []*harness.Webhook {
		return []*harness.Webhook{
			e.runWebhook(t, fmt.Sprintf("webhook-0-%d", round)),
			e.runWebhook(t, fmt.Sprintf("webhook-1-%d", round), fmt.Sprintf("--port=%d", harness.MustFreePort(t))),
		}
	}
	ws := start(0)
	load := harness.StartLoad(ctx, 20, func(ctx context.Context, i int) harness.Write {
		v := int32(1 + i%9) // above the bound every other write or so
		got, err := scale(ctx, e.admin, ns, names[i%len(names)], v, false)
		return harness.Write{Target: names[i%len(names)], Sent: v, Got: got, Err: err}
	})
	for round := 1; round <= restarts; round++ {
		time.Sleep(3 * time.Second)
		if err := ws[0].Stop(30 * time.Second); err != nil {
			t.Errorf("replica 0 on SIGTERM: %v", err)
		}
		ws[1].Kill()
		_ = ws[1].Wait(10 * time.Second)
		ws = start(round)
		// A leader's start-up pass and its writes are part of what is counted: wait until
		// one of the restarted replicas leads (a killed leader's Lease expires first) and
		// has passed over every Deployment.
		harness.Eventually(t, 60*time.Second, poll, "a restarted replica's scaler passed over every Deployment", func() (bool, string) {
			var got []string
			for _, w := range ws {
				// A compliant Deployment is settled from the cache without a reconcile.
				v, _ := w.Metric("controller_runtime_reconcile_total", `controller="replica-policy-scaler"`)
				settled, _ := w.Metric("replicapolicy_scaler_settled_total")
				if v += settled; v >= float64(deployments) {
					return true, ""
				}
				got = append(got, fmt.Sprint(v))
			}
			return false, strings.Join(got, ", ")
		})
	}
	time.Sleep(2 * time.Second)
	stop()
	writes := load.Wait()
	for _, w := range ws {
		if err := w.Stop(30 * time.Second); err != nil {
			t.Errorf("stopping a replica: %v", err)
		}
	}
	var failed int
	for _, w := range writes {
		if w.Err != nil {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d writes failed", failed, len(writes))
	}
	checkInitialReads(t, initialReads(t, auditLog), 2*(restarts+1))
}

// checkInitialReads checks that the reads come from processes processes, and that none
// read a resource's whole state twice.
func checkInitialReads(t *testing.T, reads map[string]map[string][]string, processes int) {
	t.Helper()
	if len(reads) != processes {
		t.Errorf("the audit log shows reads of %d processes, want %d (2 replicas, each start)", len(reads), processes)
	}
	for id, byResource := range reads {
		var rows []string
		for r, verbs := range byResource {
			rows = append(rows, fmt.Sprintf("%s %s", r, strings.Join(verbs, "+")))
			if len(verbs) > 1 {
				t.Errorf("process %s read all of %s %d times (%s), want at most once", id, r, len(verbs), strings.Join(verbs, ", "))
			}
		}
		slices.Sort(rows)
		figure(t, "process %s: %s", id, strings.Join(rows, ", "))
		if len(byResource["deployments.apps"]) != 1 {
			t.Errorf("process %s never read all Deployments: the count does not see the informers' reads", id)
		}
	}
}
