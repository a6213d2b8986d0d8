// Package harness is the one test harness of the repository, shared by the tests of pkg/ and
// cmd/, the end-to-end and reliability suites (test/), the benchmarks (internal/bench,
// bench/cmd) and the demo (hack/demo):
//
//	controlplane.go  a real kube-apiserver and etcd through envtest, from the cache
//	                 hack/controlplane.sh fills (RepoRoot, Assets, StartControlPlane)
//	cluster.go       replica-policy installed as a user installs it: certificates, kubectl
//	bare.go          apply -k of the local overlay, the built binary under its
//	                 ServiceAccount's token (StartCluster, StartBare, Cluster.RunWebhook,
//	                 StartProcess)
//	build.go         the binary as the Dockerfile builds it (BuildWebhook), test logs,
//	                 clients that collect warnings
//	certs.go         certificates from certs/certgen, never a copy of it
//	helm.go          helm from the cache hack/helm.sh fills (Helm), run as a user runs it
//	                 (HelmCmd, Cluster.Helm), and the chart's folder (Chart)
//	metrics.go       Prometheus text scraping and sums (ParseMetrics, ScrapeMetrics)
//	policies.go      random policies for the equivalence tests (RandomPolicy, Pick), YAML
//	                 files (WriteYAML)
//	review.go        AdmissionReviews as kube-apiserver sends them (Review)
//	workload.go      Deployments (Deployment, TypicalDeployment) and the policy ConfigMap
//	load.go          load generation and latency percentiles (RunConcurrently, StartLoad)
//	wait.go          polling (Eventually), free ports
//	warnings.go      the API server's Warning headers (Warnings)
//
// It imports pkg/policy and certs/certgen only from this module, so that the in-package
// tests of every other package can import it without a cycle.
package harness
