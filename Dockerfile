# Gatehouse server image. josekit links OpenSSL, so the runtime image carries libssl3.
# Dependencies are built in a layer of their own (cargo-chef), so a source change rebuilds
# only Gatehouse's crates. Checked by reading: the development machines have no Docker engine.
#
#   docker build -t gatehouse .
#   docker run -p 127.0.0.1:8080:8080 -p 127.0.0.1:8081:8081 -v gatehouse-data:/var/lib/gatehouse gatehouse
#
# GATEHOUSE_ISSUER is the URL clients see; the default below only suits a local try-out
# (http is accepted for loopback hosts only). Behind TLS termination set the https URL, and
# GATEHOUSE_ADMIN_URL likewise. Data (the SQLite database, the generated secret key and the
# one-time bootstrap file) lives in the volume /var/lib/gatehouse.
FROM rust:1-bookworm AS chef
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/* \
    && cargo install cargo-chef --locked
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release -p gatehouse-server --recipe-path recipe.json
COPY . .
RUN cargo build --release -p gatehouse-server && strip target/release/gatehouse

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/gatehouse --create-home gatehouse
COPY --from=build /src/target/release/gatehouse /usr/local/bin/gatehouse
USER gatehouse
WORKDIR /var/lib/gatehouse
VOLUME ["/var/lib/gatehouse"]
ENV GATEHOUSE_PUBLIC_ADDR=0.0.0.0:8080 \
    GATEHOUSE_ADMIN_ADDR=0.0.0.0:8081 \
    GATEHOUSE_DATA_DIR=/var/lib/gatehouse \
    GATEHOUSE_DATABASE_URL=sqlite:///var/lib/gatehouse/gatehouse.db?mode=rwc \
    GATEHOUSE_ISSUER=http://localhost:8080 \
    GATEHOUSE_ADMIN_URL=http://localhost:8081
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8081/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
