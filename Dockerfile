# Multi-stage build: the same commands CI runs (scripts/setup's build
# packages, then cargo), and a small non-root runtime image.
FROM rust:1-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends nasm pkg-config meson ninja-build cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pixpress

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/pixpress --create-home pixpress
COPY --from=build /src/target/release/pixpress /usr/local/bin/pixpress
COPY config.yaml /etc/pixpress/config.yaml
USER pixpress
WORKDIR /var/lib/pixpress
EXPOSE 8080 9090
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["pixpress", "--config", "/etc/pixpress/config.yaml"]
