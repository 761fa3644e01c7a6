# syntax=docker/dockerfile:1
#
# testsigma-exporter container image.
#
#   docker build --build-arg TESTSIGMA_EXPORTER_REVISION="$(git rev-parse --short=12 HEAD)" \
#     -t testsigma-exporter:0.1.0 .
#   docker run --rm -p 9874:9874 testsigma-exporter:0.1.0 --demo
#
# The build is `cargo build --release --locked` on Debian 12 (bookworm); the binary uses rustls,
# so it links no OpenSSL, only glibc and libgcc_s, which the distroless "cc" image provides.
# It runs as the unprivileged user 65532 (distroless "nonroot"), numerically so that
# Kubernetes' runAsNonRoot can verify it.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# The image has no .git: pass the revision for testsigma_exporter_build_info as a build argument.
ARG TESTSIGMA_EXPORTER_REVISION=unknown
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
# Cargo.toml declares the micro-benchmarks; cargo reads them even for a release build.
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/testsigma-exporter /out/testsigma-exporter

FROM gcr.io/distroless/cc-debian12:nonroot
ARG TESTSIGMA_EXPORTER_REVISION=unknown
LABEL org.opencontainers.image.title="testsigma-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the users of a Testsigma Test Management account" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${TESTSIGMA_EXPORTER_REVISION}"
COPY --from=builder /out/testsigma-exporter /usr/local/bin/testsigma-exporter
USER 65532:65532
EXPOSE 9874
ENTRYPOINT ["/usr/local/bin/testsigma-exporter"]
