# Backstop: one image for the operator and the agent its Jobs run.
# Build: make docker-build IMG=ghcr.io/backstop-io/backstop:<tag>

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/backstop .

# The runtime carries the dump clients: PostgreSQL's newest major from the
# PGDG repository (pg_dump reads older servers, never newer ones) and the
# MariaDB client (mariadb-dump also dumps MySQL).
FROM debian:bookworm-slim
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl gnupg; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends postgresql-client-18 mariadb-client; \
    apt-get purge -y curl gnupg; apt-get autoremove -y; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --gid 65532 backstop; \
    useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin backstop
COPY --from=build /out/backstop /usr/local/bin/backstop
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/backstop"]
CMD ["manager"]
