# CriShim — see README.md. Every target works on a fresh Debian 12 machine as root.
SHELL := /bin/bash
DOTNET ?= dotnet
CONFIGURATION ?= Debug
PREFIX ?= /usr/local
AOT_OUT := out/aot
JIT_BIN := runtime/src/bin/$(CONFIGURATION)/net10.0/crishim
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1

.PHONY: all deps build publish run test unit-test integration-test install clean

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

## run: build, then run the daemon in the foreground on its default config
run: build
	$(JIT_BIN)

## test: deps, build, unit tests, then integration tests against the AOT binary
test: deps build publish unit-test integration-test

unit-test:
	$(DOTNET) test native-interop/tests -c $(CONFIGURATION) --no-build
	$(DOTNET) test runtime/tests -c $(CONFIGURATION) --no-build

integration-test:
	CRISHIM_BINARY=$(abspath $(AOT_OUT)/crishim) $(DOTNET) test integration -c $(CONFIGURATION) --no-build

## install: the AOT binary, a default config (kept if present) and the systemd unit
install: publish
	install -D -m 0755 $(AOT_OUT)/crishim $(DESTDIR)$(PREFIX)/bin/crishim
	install -d -m 0755 $(DESTDIR)/etc/crishim
	[ -e $(DESTDIR)/etc/crishim/crishim.toml ] || $(AOT_OUT)/crishim config default > $(DESTDIR)/etc/crishim/crishim.toml
	install -D -m 0644 packaging/crishim.service $(DESTDIR)/etc/systemd/system/crishim.service
	-systemctl daemon-reload 2>/dev/null

clean:
	rm -rf out
	$(DOTNET) clean CriShim.sln -v q
