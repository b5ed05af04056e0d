# Backstop: one image for the operator and the agent its Jobs run.
# Build: make docker-build IMG=ghcr.io/backstop-io/backstop:<tag>

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The version goes to `backstop version` and into every backup's manifest.
RUN set -eux; \
    ldflags="-s -w -X main.version=${VERSION} -X github.com/backstop-io/backstop/internal/agent.Version=${VERSION}"; \
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o /out/backstop .; \
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o /out/backstop-agent ./cmd/backstop-agent

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
# backstop-agent is what Jobs run: the same agent without the operator linked
# in, so a Job's memory is its data path's (see cmd/backstop-agent).
COPY --from=build /out/backstop /out/backstop-agent /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/backstop"]
CMD ["manager"]
