# replica-policy: `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
PKG     := github.com/replica-policy/replica-policy
LDFLAGS := -s -w -X $(PKG)/pkg/version.Version=$(VERSION) -X $(PKG)/pkg/version.Commit=$(COMMIT)
GOTEST_FLAGS ?= -race
# Where `make build` writes the binaries: the webhook, and the kubectl plugin beside it.
OUT ?= bin/webhook
PLUGIN_OUT ?= $(dir $(OUT))kubectl-replica_policy

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: webhook plugin ## Build both binaries: the webhook into $(OUT) (bin/webhook) and the kubectl plugin into bin/kubectl-replica_policy.

.PHONY: webhook
webhook: ## Build the static webhook binary into $(OUT) (the Dockerfile runs this target).
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(OUT) ./cmd/webhook

.PHONY: plugin
plugin: ## Build the kubectl plugin into bin/kubectl-replica_policy (on the PATH: kubectl replica-policy).
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(PLUGIN_OUT) ./cmd/kubectl-replica_policy

.PHONY: controlplane
controlplane: ## Build (once) kube-apiserver and etcd for the tests and print their folder.
	@hack/controlplane.sh

.PHONY: keda-operator
keda-operator: ## Build (once) KEDA's operator for the tests (Go go1.27.3 from the module proxy) and print its path.
	@hack/keda-operator.sh

.PHONY: lint
lint: ## go vet, and fail on files gofmt would change.
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

CHART := charts/replica-policy

.PHONY: chart-lint
chart-lint: ## helm lint --strict the chart with its default values and each ci/*-values.yaml (helm from hack/helm.sh).
	@helm=$$(hack/helm.sh) && \
	for values in "" $(CHART)/ci/*-values.yaml; do \
	  if ! out=$$($$helm lint --strict $(CHART) --namespace replica-policy-system $${values:+--values $$values} 2>&1); then \
	    echo "helm lint --strict $(CHART) $${values:+--values $$values}:"; echo "$$out"; exit 1; \
	  fi; \
	  echo "chart-lint: $${values:-default values} ok"; \
	done

# The slowest packages (5-6 minutes each with -race) first: go test starts packages in the
# order given, and names a package twice only once, so they no longer start last and leave
# one of the 2 cores idle at the end.
SLOW_PACKAGES := ./test/e2e ./test/reliability ./cmd/webhook/app

.PHONY: test
test: lint chart-lint ## Run every test against a real kube-apiserver and KEDA's operator (builds them the first time).
	@assets=$$(hack/controlplane.sh) && echo "control plane: $$assets" && \
	keda=$$(hack/keda-operator.sh) && echo "KEDA's operator: $$keda" && \
	KUBEBUILDER_ASSETS=$$assets KEDA_OPERATOR=$$keda go test $(GOTEST_FLAGS) -count=1 -timeout 30m $(SLOW_PACKAGES) ./...
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-monitoring smoke

# The monitoring tests wait on scrapes more than they compute (their deadlines are 30 s), so
# make test runs them beside the smoke runs: about 2 and 3 minutes alone.
.PHONY: smoke
smoke: ## Fuzz each target for FUZZ_SMOKE (10s), then run each benchmark once (make test runs this).
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZ_SMOKE)
	@$(MAKE) --no-print-directory bench BRIEF=1

# test/monitoring is a Go module of its own (Prometheus's code would raise the webhook's own
# dependencies): `go test ./...` of the main module does not reach it.
.PHONY: test-monitoring
test-monitoring: ## Test manifests/components/monitoring with Prometheus's parser and engine against the real binary (about 2 minutes).
	@assets=$$(hack/controlplane.sh) && cd test/monitoring && go vet ./... && \
	KUBEBUILDER_ASSETS=$$assets go test $(GOTEST_FLAGS) -count=1 -timeout 20m ./...

# Fuzz targets are found by name (func FuzzX in a _test.go file); Go fuzzes one target per
# run. FUZZTIME is per target; make test fuzzes each for FUZZ_SMOKE. Minimizing each new
# interesting input takes up to a minute by default (the AdmissionReview seeds are large),
# which would leave a short run no time to explore: FUZZMINIMIZETIME caps it.
FUZZTIME ?= 5m
FUZZ_SMOKE ?= 10s
FUZZMINIMIZETIME ?= 5s

.PHONY: fuzz
fuzz: ## Fuzz every target for FUZZTIME (5m) each; a failing input lands in testdata/fuzz/: fix the bug, commit the input.
	@grep -rHo --include='*_test.go' --exclude-dir=testdata '^func Fuzz[A-Za-z0-9_]*' . | sort | while IFS=: read -r file fn; do \
	  pkg=./$$(dirname "$${file#./}"); name=$${fn#func }; \
	  echo "fuzz: $$name ($$pkg) for $(FUZZTIME)"; \
	  if ! out=$$(go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg 2>&1); then \
	    if grep -q 'Failing input written' <<<"$$out" || ! grep -q '^    context deadline exceeded' <<<"$$out"; then echo "$$out"; exit 1; fi; \
	    echo "  the run ended on Go 1.26's own fuzztime deadline race (go.dev/issue/75804), not on an input"; \
	  fi; \
	  grep '^fuzz: elapsed' <<<"$$out" | tail -1 | sed 's/^/  /'; \
	done

.PHONY: reliability
reliability: ## Fault injection, long versions (RELIABILITY_LONG=1; make test runs the short ones): see docs/reliability.md.
	@mkdir -p bin && assets=$$(hack/controlplane.sh) && echo "control plane: $$assets" && \
	rc=0 && RELIABILITY_LONG=1 KUBEBUILDER_ASSETS=$$assets go test $(GOTEST_FLAGS) -count=1 -timeout 60m -v ./test/reliability \
	  >bin/reliability.log 2>&1 || rc=$$?; \
	grep -E 'FIGURE|^ *--- |^(ok|FAIL)' bin/reliability.log || true; \
	if [ $$rc -ne 0 ]; then echo "reliability tests failed: the whole log is bin/reliability.log"; fi; exit $$rc

# BRIEF=1 runs every benchmark of the repository once, with tiny counts, and the report's
# end-to-end driver in a smoke mode, so that none can rot (make test does; the figures mean
# nothing). Without it, the full suite writes docs/benchmarks.md.
BRIEF ?=

.PHONY: bench
bench: build ## Run the benchmark suite (about 15 minutes on 2 cores) and write docs/benchmarks.md; BRIEF=1: each benchmark once, briefly.
	@assets=$$(hack/controlplane.sh) && export KUBEBUILDER_ASSETS=$$assets && \
	if [ -n "$(BRIEF)" ]; then \
	  go test -run '^$$' -bench . -benchtime 1x ./... && \
	  go run ./bench/cmd/report --brief --binary $(OUT) >bin/bench-brief.md && echo "bench: brief report in bin/bench-brief.md"; \
	else \
	  BENCH_COMMAND="make bench" go run ./bench/cmd/report --binary $(OUT) --out docs/benchmarks.md; \
	fi

.PHONY: clean
clean: ## Remove build output (the control plane cache stays: see hack/controlplane.sh).
	rm -rf bin

.PHONY: demo
demo: build ## Run the webhook against a local control plane: clamp, deny, scaler correction; Ctrl-C ends it (DEMO_FLAGS=--no-wait: exit after the show).
	@hack/controlplane.sh --with-kubectl >/dev/null
	go run ./hack/demo --binary $(OUT) $(DEMO_FLAGS)
