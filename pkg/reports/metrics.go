package reports

import "github.com/replica-policy/replica-policy/pkg/metrics"

var writesTotal = metrics.CounterVec("replicapolicy_reports_writes_total", []string{"operation"}, "Requests that created, updated or deleted a policy report (openreports.io Report), whatever their outcome, by operation: with --reports at most one a second per namespace; without, the deletes of the reports an earlier --reports left.")

var active = metrics.Gauge("replicapolicy_reports_active", "With --reports: 1 while the leader keeps the policy reports, 0 while it waits for the OpenReports CRD to be served (and on replicas that are not the leader).")
