# Image for the replica-policy webhook: a static binary on distroless, running as non-root.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t replica-policy:latest .
#
# VERSION is passed in because .git is not part of the build context (.dockerignore).

# Build stage. The golang image ships make, so the image is built by the same `make build`
# (CGO_ENABLED=0, -trimpath, version ldflags) as a developer's binary.
FROM golang:1.26-bookworm AS builder
WORKDIR /src

# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG VERSION=dev
# Set by BuildKit (docker buildx build --platform linux/arm64 ...); empty means the host's.
ARG TARGETOS
ARG TARGETARCH
RUN GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} make webhook VERSION=${VERSION}

# Runtime stage: no shell, no package manager, only CA certificates, tzdata and /etc/passwd
# with the nonroot user (65532), which the manifests' securityContext also names.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="replica-policy" \
      org.opencontainers.image.description="Kubernetes admission webhook and scaler that keep workload replica counts within a platform team's policy" \
      org.opencontainers.image.source="https://github.com/replica-policy/replica-policy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=builder /src/bin/webhook /webhook
USER 65532:65532
ENTRYPOINT ["/webhook"]
