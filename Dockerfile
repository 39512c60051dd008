# syntax=docker/dockerfile:1
# costfloor in a container: the one binary (plan, size, serve, sim, eval, report).
# Built with the Rust toolchain, run on slim Debian as an unprivileged user.
#
#   docker build -t costfloor .
#   docker run -p 8080:8080 -v "$PWD/gateway.toml:/etc/costfloor/gateway.toml:ro" costfloor
#
# The config must listen on all interfaces inside the container:
# `[server] listen = "0.0.0.0:8080"`, with the ledger on a volume (`ledger =
# "/var/lib/costfloor/ledger.db"`).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p costfloor \
    && strip target/release/costfloor

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/costfloor --create-home costfloor
COPY --from=build /src/target/release/costfloor /usr/local/bin/costfloor
USER 10001
WORKDIR /var/lib/costfloor
VOLUME ["/var/lib/costfloor"]
EXPOSE 8080
ENTRYPOINT ["costfloor"]
CMD ["serve", "--config", "/etc/costfloor/gateway.toml"]
