# syntax=docker/dockerfile:1
#
# The `skein` binary in a small Debian image.
#
#   docker build -t skein:dev .
#   docker run --rm -p 127.0.0.1:3200:3200 skein:dev
#   docker run ... skein:dev --config /etc/skein/skein.toml --target ingester   (one role)
#
# Build facts reported by `skein version` and /api/status/buildinfo can be passed in:
#   docker build --build-arg SKEIN_BUILD_REVISION=$(git rev-parse HEAD) ...

FROM rust:1.95-bookworm AS builder
WORKDIR /src
ARG SKEIN_BUILD_REVISION
ARG SKEIN_BUILD_BRANCH
ARG SKEIN_BUILD_USER
ARG SKEIN_BUILD_DATE
COPY . .
# The caches keep downloaded crates and compiled dependencies between builds; the binary is
# copied out of the cached target directory in the same step, since the cache is not part of
# the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin skein \
    && install -D target/release/skein /out/skein

FROM debian:bookworm-slim
# CA certificates for S3 over HTTPS; a system user so the server does not run as root.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/skein --create-home skein \
    && install -d -o skein -g skein /var/lib/skein/data
COPY --from=builder /out/skein /usr/local/bin/skein
USER skein
# Data (local blocks and the write-ahead log) goes to ./data, i.e. /var/lib/skein/data.
WORKDIR /var/lib/skein
VOLUME ["/var/lib/skein/data"]
# API and UI 3200, ingester internal API 3201 (queriers read recent data there: bind it with
# ingester.internal_listen = "0.0.0.0:3201" in a cluster), Jaeger 16686, OTLP gRPC 4317 and
# HTTP 4318.
EXPOSE 3200 3201 16686 4317 4318
# SIGTERM (docker stop) stops accepting, flushes every live trace to object storage and exits;
# give it time: `docker stop -t 40`, or `stop_grace_period: 40s` in compose.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/skein"]
