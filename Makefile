# CriShim — see README.md. Every target works on a fresh Debian 12 machine as root.
SHELL := /bin/bash
DOTNET ?= dotnet
CONFIGURATION ?= Debug
PREFIX ?= /usr/local
AOT_OUT := out/aot
JIT_BIN := runtime/src/bin/$(CONFIGURATION)/net10.0/crishim
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1

.PHONY: all deps build publish run test unit-test integration-test test-host install clean

all: build

## deps: install runc, crun, conmon, CRIU 4.x, CNI plugins, registry, test tools
deps:
	bash scripts/deps.sh

## build: JIT build of every project (day-to-day)
build:
	$(DOTNET) build CriShim.sln -c $(CONFIGURATION) -warnaserror

## publish: the Native AOT daemon, as installed and as CI tests it
publish:
	$(DOTNET) publish runtime/src/CriShim.Runtime.csproj -c Release -r linux-x64 -o $(AOT_OUT)

## run: build, then run the daemon in the foreground on its default config plus a development pod network
## and a crictl config under out/dev (scripts/dev-config.sh; nothing under /etc)
DEV_OUT := $(abspath out/dev)
run: build
	bash scripts/dev-config.sh $(DEV_OUT)
	@echo "crictl: crictl --config $(DEV_OUT)/crictl.yaml ... (or export CRI_CONFIG_FILE=$(DEV_OUT)/crictl.yaml)"
	$(JIT_BIN) --config $(DEV_OUT)/crishim.toml

## test: deps, build, unit tests, then integration tests against the AOT binary
test: deps build publish unit-test integration-test

unit-test:
	$(DOTNET) test native-interop/tests -c $(CONFIGURATION) --no-build
	$(DOTNET) test runtime/tests -c $(CONFIGURATION) --no-build

## test-host: what the tests need of this host beyond make deps; it changes the host and prints each change
test-host:
	bash scripts/test-host.sh

integration-test: test-host
	CRISHIM_BINARY=$(abspath $(AOT_OUT)/crishim) $(DOTNET) test integration -c $(CONFIGURATION) --no-build

## install: the AOT binary, a default config (kept if present), the systemd unit and a default CNI bridge network (if none)
install: publish
	install -D -m 0755 $(AOT_OUT)/crishim $(DESTDIR)$(PREFIX)/bin/crishim
	install -d -m 0755 $(DESTDIR)/etc/crishim
	[ -e $(DESTDIR)/etc/crishim/crishim.toml ] || $(AOT_OUT)/crishim config default > $(DESTDIR)/etc/crishim/crishim.toml
	install -D -m 0644 packaging/crishim.service $(DESTDIR)/etc/systemd/system/crishim.service
	@# A default pod network (bridge crishim0, host-local 10.88.0.0/16, portmap, loopback) unless one is configured.
	install -d -m 0755 $(DESTDIR)/etc/cni/net.d
	if ! ls $(DESTDIR)/etc/cni/net.d/*.conflist $(DESTDIR)/etc/cni/net.d/*.conf $(DESTDIR)/etc/cni/net.d/*.json >/dev/null 2>&1; then \
	  install -m 0644 packaging/10-crishim-bridge.conflist $(DESTDIR)/etc/cni/net.d/10-crishim-bridge.conflist; fi
	-systemctl daemon-reload 2>/dev/null

## deb: the Debian package out/deb/crishim_<version>_<arch>.deb from the AOT binary (scripts/build-deb.sh, dpkg-deb only)
.PHONY: deb
deb: publish
	bash scripts/build-deb.sh $(AOT_OUT)/crishim out/deb

clean:
	rm -rf out
	$(DOTNET) clean CriShim.sln -v q

## test-images: build the test images and push them to $(TEST_REGISTRY), starting docker-registry
## there if nothing answers (storage in $(TEST_REGISTRY_DIR)); TEST_IMAGES_FLAGS="--critest --big" adds more
TEST_REGISTRY ?= 127.0.0.1:5000
TEST_REGISTRY_DIR ?= /var/lib/crishim-test-registry
TEST_IMAGES_FLAGS ?=
.PHONY: test-images
test-images:
	@if ! curl -fs -o /dev/null --max-time 5 http://$(TEST_REGISTRY)/v2/; then \
	  mkdir -p $(TEST_REGISTRY_DIR); \
	  printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n  secret: crishim-test-registry\n' \
	    $(TEST_REGISTRY_DIR)/data $(TEST_REGISTRY) > $(TEST_REGISTRY_DIR)/config.yml; \
	  echo "starting docker-registry on $(TEST_REGISTRY), log in $(TEST_REGISTRY_DIR)/registry.log"; \
	  setsid docker-registry serve $(TEST_REGISTRY_DIR)/config.yml >> $(TEST_REGISTRY_DIR)/registry.log 2>&1 < /dev/null & \
	  for attempt in $$(seq 100); do curl -fs -o /dev/null http://$(TEST_REGISTRY)/v2/ && break; sleep 0.1; done; \
	fi
	$(DOTNET) run --project integration/TestImages -- --registry $(TEST_REGISTRY) $(TEST_IMAGES_FLAGS)

## bench: every benchmark against the AOT daemon (BENCH=Pull|Lifecycle|Checkpoint picks one); prints figures, asserts none
BENCH ?=
.PHONY: bench bench-pull
bench: build publish test-host
	CRISHIM_BENCH=1 CRISHIM_BINARY=$(abspath $(AOT_OUT)/crishim) $(DOTNET) test integration -c $(CONFIGURATION) --no-build \
		--filter "Category=Benchmark$(if $(BENCH),&FullyQualifiedName~$(BENCH)Benchmark)" --logger "console;verbosity=detailed"
bench-pull:
	$(MAKE) bench BENCH=Pull
## bench-scale: 100 pods x 2 containers; list/status/stats latencies and RSS at 0, 50 and 100 pods (long)
.PHONY: bench-scale
bench-scale:
	$(MAKE) bench BENCH=Scale

## bench-compare: the lifecycle benchmark against CriShim (AOT) and Debian 13's containerd 1.7 in one run, taking
## turns (scripts/containerd.sh: private prefix, socket, state, config and /run); prints medians, p90, ratios, RSS
.PHONY: bench-compare
bench-compare: build publish
	bash scripts/containerd.sh install 1.7
	CRISHIM_BENCH=1 CRISHIM_BINARY=$(abspath $(AOT_OUT)/crishim) $(DOTNET) test integration -c $(CONFIGURATION) --no-build \
		--filter "Category=Benchmark&FullyQualifiedName~ContainerdComparisonBenchmark" --logger "console;verbosity=detailed"

## interop: checkpoint archives across runtimes: a CriShim checkpoint restored by containerd 2.1 (Debian forky, private
## prefix/socket/state, make deps' runc 1.3 and CRIU 4.2), a containerd checkpoint restored by CriShim, and containerd -> containerd;
## prints what held
.PHONY: interop
interop: build
	bash scripts/containerd.sh install 2.1
	CRISHIM_INTEROP=1 $(DOTNET) test integration -c $(CONFIGURATION) --no-build \
		--filter "Category=Interop" --logger "console;verbosity=detailed"

## critest: run an installed critest (cri-tools; not built by this project) against a private AOT daemon,
## with its images served offline from $(TEST_REGISTRY); CRITEST_ARGS="--ginkgo.focus=..." narrows it
CRITEST_ARGS ?=
.PHONY: critest
critest: publish test-host
	$(MAKE) test-images TEST_IMAGES_FLAGS=--critest
	scripts/critest.sh $(CRITEST_ARGS)
