package reports

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DeleteCommand is what an operator runs to delete the reports by hand: every Report that
// carries the label of this controller's reports.
const DeleteCommand = "kubectl delete reports.openreports.io -A -l " + ManagedByLabel + "=" + Source

// cleanupBackoff retries a failed list of the reports for about half a minute (1+2+4+8+16
// s): an API server that is briefly unavailable at start does not leave the reports behind.
var cleanupBackoff = wait.Backoff{Duration: time.Second, Factor: 2, Steps: 5}

// Cleanup removes, once on the leader at start, the reports that a leader running with
// --reports left: what a process with --reports=false runs, so that turning the flag off
// removes the reports as turning it on made them. It deletes only reports named Name that
// carry ManagedByLabel=Source, each by its UID. Where the OpenReports CRD is not served it
// does nothing, silently; where it may not list the reports (the rights of the reports
// component are gone) it says so once, with DeleteCommand, and does nothing. That line
// does not quote the API server's refusal: a log with "forbidden" in it means a right the
// manifests should grant, and the base manifests grant none on reports on purpose.
type Cleanup struct {
	log     logr.Logger
	client  client.Client // deletes
	reader  client.Reader // lists: reports are not cached
	backoff wait.Backoff
}

// NewCleanup returns a Cleanup; add it to a manager with SetupWithManager.
func NewCleanup() *Cleanup { return &Cleanup{backoff: cleanupBackoff} }

// SetupWithManager adds the Cleanup to mgr. mgr's scheme must hold the OpenReports types
// (AddToScheme).
func (c *Cleanup) SetupWithManager(mgr ctrl.Manager) error {
	c.log = mgr.GetLogger().WithName("reports")
	c.client = mgr.GetClient()
	c.reader = mgr.GetAPIReader()
	return mgr.Add(c)
}

// NeedLeaderElection makes the Cleanup run on the leader only: once the leader that wrote
// the reports has stopped.
func (c *Cleanup) NeedLeaderElection() bool { return true }

// Start removes the reports and returns; it never fails the process.
func (c *Cleanup) Start(ctx context.Context) error {
	list, ok := c.list(ctx)
	if !ok {
		return nil
	}
	deleted, failed := 0, 0
	for i := range list.Items {
		rep := &list.Items[i]
		if rep.Name != Name {
			continue
		}
		err := c.client.Delete(ctx, rep, client.Preconditions{UID: &rep.UID})
		writesTotal.WithLabelValues("delete").Inc()
		switch {
		case err == nil:
			deleted++
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
			// Gone already, or a report of the same name made since the list: not ours to judge.
		case apierrors.IsForbidden(err):
			c.log.Info("Policy reports are off (--reports=false), but the reports an earlier --reports left stay: no rights to delete reports.openreports.io", "deleteThemWith", DeleteCommand)
			return nil
		default:
			failed++
			c.log.Error(err, "Deleting a policy report left by --reports", "namespace", rep.Namespace)
		}
	}
	if deleted+failed > 0 {
		c.log.Info("Policy reports are off (--reports=false): deleted the reports an earlier --reports left", "deleted", deleted, "failed", failed)
	}
	return nil
}

// list lists the reports this controller made, retrying errors other than a CRD that is not
// served or missing rights; ok is false when there is nothing to do.
func (c *Cleanup) list(ctx context.Context) (*openreportsv1alpha1.ReportList, bool) {
	list := &openreportsv1alpha1.ReportList{}
	var err error
	_ = wait.ExponentialBackoffWithContext(ctx, c.backoff, func(ctx context.Context) (bool, error) {
		err = c.reader.List(ctx, list, client.MatchingLabels{ManagedByLabel: Source})
		return err == nil || meta.IsNoMatchError(err) || apierrors.IsNotFound(err) || apierrors.IsForbidden(err), nil
	})
	switch {
	case err == nil:
		return list, true
	case ctx.Err() != nil:
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
		c.log.V(1).Info("Policy reports are off and the OpenReports CRD is not served: no reports to delete")
	case apierrors.IsForbidden(err):
		c.log.Info("Policy reports are off (--reports=false); reports an earlier --reports left, if any, stay: no rights to list reports.openreports.io", "deleteThemWith", DeleteCommand)
	default:
		c.log.Error(err, "Listing the policy reports an earlier --reports left; they stay", "deleteThemWith", DeleteCommand)
	}
	return nil, false
}
