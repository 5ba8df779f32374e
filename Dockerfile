# syntax=docker/dockerfile:1
# The rotator daemon image: `make image` (docker build --build-arg VERSION=... -t clear-rotator .),
# then `docker run clear-rotator` runs `rotator run`. Configure it with the environment variables in
# docs/configuration.md.

# Build stage: the same `make static` target that `make test` builds and tests, so the image ships
# exactly the binary the process tests ran (static, CGO_ENABLED=0, -trimpath).
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version `rotator version` and clear_rotator_build_info report. git describe cannot run here
# (.dockerignore leaves .git out of the context), so pass it: `make image` does.
ARG VERSION=dev
RUN make static VERSION="$VERSION"

# Runtime stage: a static binary needs no libc or shell. The nonroot variant runs as UID 65532 and
# ships CA certificates (for https to Clear and AWS) and tzdata.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/rotator /usr/local/bin/rotator
USER nonroot:nonroot
# The ops listener: /healthz, /readyz, /metrics (ROTATOR_HTTP_ADDR, default :9090 for rotator run;
# rotator gateway's is 127.0.0.1:9480, so set ROTATOR_HTTP_ADDR=:9480 to probe it from outside).
EXPOSE 9090
# No HEALTHCHECK: distroless has no shell or curl to run one. Orchestrators should probe /healthz
# (liveness) and /readyz (readiness) over HTTP instead. Give the container a stop timeout longer
# than ROTATOR_SHUTDOWN_GRACE (60s by default: CLEAR_TIMEOUT and the 30s write window), so
# that SIGTERM lets a rotation in flight store its token.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/rotator"]
CMD ["run"]
