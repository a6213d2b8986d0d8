# replica-policy: `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
PKG     := github.com/replica-policy/replica-policy
LDFLAGS := -s -w -X $(PKG)/pkg/version.Version=$(VERSION) -X $(PKG)/pkg/version.Commit=$(COMMIT)
GOTEST_FLAGS ?= -race
# Where `make build` writes the binary.
OUT ?= bin/webhook

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the static webhook binary into $(OUT) (bin/webhook; the Dockerfile runs this target).
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(OUT) ./cmd/webhook

.PHONY: controlplane
controlplane: ## Build (once) kube-apiserver and etcd for the tests and print their folder.
	@hack/controlplane.sh

.PHONY: lint
lint: ## go vet, and fail on files gofmt would change.
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: test
test: lint ## Run every test against a real kube-apiserver (builds it the first time).
	@assets=$$(hack/controlplane.sh) && echo "control plane: $$assets" && \
	KUBEBUILDER_ASSETS=$$assets go test $(GOTEST_FLAGS) -count=1 -timeout 30m ./...

.PHONY: clean
clean: ## Remove build output (the control plane cache stays: see hack/controlplane.sh).
	rm -rf bin

.PHONY: demo
demo: build ## Run the webhook against a local control plane: clamp, deny, scaler correction; Ctrl-C ends it.
	@hack/controlplane.sh --with-kubectl >/dev/null
	go run ./hack/demo --binary $(OUT)
