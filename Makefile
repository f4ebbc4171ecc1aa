# meshnet — build, test, demo, bench.
#
#   make demo    the main job: builds everything and shows it working
#   make test    the whole suite (needs root: network namespaces)
#   make bench   the benchmarks whose figures are in the README

export GOTOOLCHAIN := local
GO ?= go
GOTEST_TIMEOUT ?= 25m

.PHONY: all build deps vet test e2e bench demo kvdemo consul tidy clean check-root install image

PREFIX ?= /usr/local
CNI_BIN_DIR ?= /opt/cni/bin

all: build

build:
	$(GO) build ./...

# meshagent and agentctl into $(PREFIX)/bin, the CNI plugin (the binary
# "meshnet") into $(CNI_BIN_DIR), where runtimes look for plugins.
install:
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(CNI_BIN_DIR)
	CGO_ENABLED=0 $(GO) build -o $(DESTDIR)$(PREFIX)/bin/meshagent ./cmd/meshagent
	CGO_ENABLED=0 $(GO) build -o $(DESTDIR)$(PREFIX)/bin/agentctl ./cmd/agentctl
	CGO_ENABLED=0 $(GO) build -o $(DESTDIR)$(CNI_BIN_DIR)/meshnet ./cmd/meshnet-cni

vet:
	$(GO) vet ./...
	cd testenv/consulbin && $(GO) vet .

# The Consul server used by the tests, built once from its Go module and
# cached outside the repository (a few minutes the first time).
consul:
	@$(GO) run ./cmd/testenv consul

check-root:
	@if [ "$$(id -u)" != 0 ]; then echo "make: the tests create network namespaces and need root (sudo make test)" >&2; exit 1; fi

# Packages run one at a time (-p 1): on a 2-core machine, the gossip tests'
# 100 in-process nodes and the store servers otherwise starve each other.
# Debian packages the tests use: iproute2's ip, to check our namespaces
# the way a user would; Podman (CNI backend) with runc and a static
# busybox for its containers' root filesystem, to run real containers on
# meshnet; ZooKeeper (Java), a cluster store the tests run (its package has
# the command zooinspector). The reference CNI tools (cnitool, bridge,
# host-local, portmap) are built from their Go modules by the tests
# (testenv.CNIBinaries).
DEB_DEPS := ip:iproute2 podman:podman runc:runc busybox:busybox-static zooinspector:zookeeper
deps: check-root
	@missing=""; for d in $(DEB_DEPS); do \
		command -v $${d%%:*} >/dev/null || missing="$$missing $${d#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

test: check-root deps vet consul
	$(GO) test -count=1 -p 1 -timeout $(GOTEST_TIMEOUT) ./...

bench: check-root consul
	$(GO) test -run XXX -bench . -benchtime 2s ./kvstore/
	$(GO) test -run XXX -bench . ./datapath/
	$(GO) test -run XXX -bench Convergence ./gossip/
	$(GO) test -run XXX -bench Lease ./agent/ipam/
	$(GO) test -run XXX -bench Convergence -benchtime 100x ./e2e/
	$(GO) test -run XXX -bench NetworkCreate -benchtime 50x ./e2e/
	$(GO) test -run XXX -bench Sandboxes -benchtime 1000x -timeout 30m ./e2e/
	$(GO) test -run XXX -bench . -benchtime 20x ./firewall/
	$(GO) test -run XXX -bench PublishedThroughput -benchtime 3x ./e2e/
	$(GO) test -run XXX -bench 'DNSLookup$$' -benchtime 2000x ./e2e/
	$(GO) test -run XXX -bench DNSLookupUnderFlood -benchtime 1x ./e2e/
	$(GO) test -run XXX -bench DNSConvergence -benchtime 100x ./e2e/
	$(GO) test -run XXX -bench CNIAddDel -benchtime 200x ./e2e/
	$(GO) test -run XXX -bench CNIScale -benchtime 1000x -timeout 30m ./e2e/
	$(GO) test -run XXX -bench JoinVsFlannel -benchtime 30x -timeout 30m ./e2e/
	$(GO) test -run XXX -bench DockerOverlay -benchtime 20x -timeout 30m ./e2e/docker/

# Three namespace hosts, each running meshagent (the first serving the
# embedded store), an overlay network, a sandbox per host, and real traffic
# between them. Builds what it runs; cleans up after itself, also on Ctrl-C.
demo:
	$(GO) run ./cmd/testenv demo

kvdemo:
	$(GO) run ./cmd/testenv kvdemo

# The end-to-end tests alone, on every store (MESHNET_TEST_STORES=etcd
# narrows them).
e2e: check-root consul
	$(GO) test -count=1 -timeout $(GOTEST_TIMEOUT) ./e2e/ ./testenv/cluster/

# The meshagent image, offline (Dockerfile, docker-compose.yml): static
# meshagent and agentctl, and Debian's static busybox for a shell and
# ping, under build/image; then the image, where docker is.
IMAGE ?= meshnet/meshagent:dev
BUSYBOX_APPLETS := sh ip ping wget nc cat ls mount sleep mv
image:
	rm -rf build/image && install -d build/image/usr/local/bin build/image/bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o build/image/usr/local/bin/ ./cmd/meshagent ./cmd/agentctl
	@[ -x /bin/busybox ] || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static; }
	cp /bin/busybox build/image/bin/busybox
	for a in $(BUSYBOX_APPLETS); do ln -s busybox build/image/bin/$$a; done
	@if command -v docker >/dev/null; then docker build -t $(IMAGE) .; else echo "make: no docker here: the image's files are in build/image"; fi

tidy:
	$(GO) mod tidy
	cd testenv/consulbin && $(GO) mod tidy

clean:
	$(GO) clean -testcache
