# Tributary: one binary for the scheduler, the web UI, the stream writers.
# Build: docker build -t tributary .   (docker compose builds it for you)
FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka and zstd are compiled from source by their -sys crates.
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked --bin tributary \
 && cp target/release/tributary /usr/local/bin/tributary

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/tributary tributary
COPY --from=build /usr/local/bin/tributary /usr/local/bin/tributary
COPY dags /opt/tributary/dags
COPY deploy/tributary.toml /etc/tributary/tributary.toml
USER tributary
WORKDIR /var/lib/tributary
ENV TRIBUTARY_CONFIG=/etc/tributary/tributary.toml \
    TRIBUTARY_DAGS_FOLDER=/opt/tributary/dags
ENTRYPOINT ["tributary"]
CMD ["--help"]
