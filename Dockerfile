# The meshagent image: meshagent (the entrypoint) and agentctl, on Debian
# with iproute2 (ip netns exec …) and ping for trying sandboxes out.
#
#   docker build -t meshnet/meshagent .
#
# The agent needs a privileged container (it creates network namespaces,
# mounts, bridges and VXLAN devices); see docker-compose.yml for a
# two-agent setup on one Docker host.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that source changes do not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/meshnet/meshnet/agent.Version=${VERSION} -X main.version=${VERSION}" \
      -o /out/ ./cmd/meshagent ./cmd/agentctl

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates iproute2 iputils-ping \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/meshagent /out/agentctl /usr/local/bin/
# gossip (TCP and UDP), VXLAN, embedded store clients
EXPOSE 7946/tcp 7946/udp 4789/udp 2379/tcp
ENTRYPOINT ["meshagent"]
