# The meshagent image, built offline: no base image, no registry. `make
# image` puts what it holds under build/image (static meshagent and
# agentctl, and Debian's static busybox for sh, ip, ping, wget and nc) and
# builds it; `docker compose up --build` does the second step again.
#
#   make image            # = the files, then: docker build -t meshnet/meshagent:dev .
#
# The agent needs a privileged container (it creates network namespaces,
# mounts, bridges and VXLAN devices); see docker-compose.yml for a
# two-agent setup on one Docker host.

FROM scratch
COPY build/image/ /
ENV PATH=/usr/local/bin:/bin
# gossip (TCP and UDP), VXLAN, embedded store clients
EXPOSE 7946/tcp 7946/udp 4789/udp 2379/tcp
ENTRYPOINT ["/usr/local/bin/meshagent"]
