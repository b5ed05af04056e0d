# Backstop: one image for the operator and the agent its Jobs run.
# Build: docker build -t ghcr.io/backstop-io/backstop:<tag> .
# Without a Docker engine: make image (see hack/image.sh).

# The base images; hack/image.sh points them at images it makes locally
# where no registry is reachable.
ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The version goes to `backstop version` and into every backup's manifest.
RUN set -eux; \
    ldflags="-s -w -X main.version=${VERSION} -X github.com/backstop-io/backstop/internal/agent.Version=${VERSION}"; \
    CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags "$ldflags" -o /out/backstop .; \
    CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags "$ldflags" -o /out/backstop-agent ./cmd/backstop-agent

# The runtime carries the dump clients. PG_CLIENT chooses where pg_dump and
# psql come from:
#   pgdg   (default, for releases): PostgreSQL 18's client from the PGDG
#          repository; pg_dump dumps servers of its major and older (9.2-18).
#   debian: Debian bookworm's postgresql-client (15); it dumps servers up to
#          15 and refuses newer ones. For builds where PGDG is unreachable.
# The MariaDB client (mariadb-dump also dumps MySQL) comes from Debian.
# Restore drills start a throwaway server in their own pod: the image carries
# the PostgreSQL server of the client's major (it loads dumps of that major
# and older) and MariaDB's server core (docs/drills.md states the size).
FROM ${BASE_IMAGE}
ARG PG_CLIENT=pgdg
RUN set -eux; \
    mkdir -p /etc/postgresql-common; \
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf; \
    apt-get update; \
    case "${PG_CLIENT}" in \
      pgdg) \
        apt-get install -y --no-install-recommends ca-certificates curl gnupg; \
        install -d /usr/share/postgresql-common/pgdg; \
        curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
        echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" > /etc/apt/sources.list.d/pgdg.list; \
        apt-get update; \
        apt-get install -y --no-install-recommends postgresql-client-18 postgresql-18 mariadb-client mariadb-server-core; \
        apt-get purge -y curl gnupg; apt-get autoremove -y ;; \
      debian) \
        apt-get install -y --no-install-recommends ca-certificates postgresql-client postgresql mariadb-client mariadb-server-core ;; \
      *) echo "PG_CLIENT must be pgdg or debian, not ${PG_CLIENT}" >&2; exit 1 ;; \
    esac; \
    apt-get clean; rm -rf /var/lib/apt/lists/* /var/lib/postgresql/* /var/lib/mysql; \
    # Drills run PostgreSQL with jit=off: its JIT provider and LLVM (105 MB) go.
    rm -f /usr/lib/postgresql/*/lib/llvmjit*; find /usr/lib -name 'libLLVM-*.so*' -delete; \
    groupadd --gid 65532 backstop; \
    useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin backstop
# backstop-agent is what Jobs run: the same agent without the operator linked
# in, so a Job's memory is its data path's (see cmd/backstop-agent).
COPY --from=build /out/backstop /out/backstop-agent /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/backstop"]
CMD ["manager"]
