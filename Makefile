# `make test` is the project's test command (README, .ci/run). It installs the
# real peers the tests talk to when they are missing, then runs vet, the race
# tests and a short run of every fuzz target.
GO       ?= go
# An execution count, not a duration: Go 1.26's fuzz coordinator can fail a
# duration run at its deadline with "context deadline exceeded" and no
# failing input (go.dev/issue/75804); a count has no deadline to race.
FUZZTIME ?= 30000x
# Debian packages the tests run as real peers.
PEERS    := openssl etcd-server stunnel4 haproxy nginx libnginx-mod-stream sslscan wrk systemd dbus iproute2 socat nodejs rpm

# VERSION names packages and assets: the newest v* tag, else 0.0.0 and
# the commit. It is compiled into the binary (sensu-tlsd version).
VERSION  ?= $(or $(patsubst v%,%,$(shell git describe --tags --match 'v[0-9]*' 2>/dev/null)),0.0.0+git$(shell git rev-parse --short HEAD 2>/dev/null))
ARCH     ?= amd64
DIST     ?= dist
LDFLAGS  := -s -w -X main.version=$(VERSION)

# The packages unit-nonroot runs as the nobody account.
NONROOT_PKGS ?= ./...

.PHONY: test peers check-format vet unit unit-nonroot fuzz build package asset

test: peers check-format vet unit unit-nonroot fuzz

build:
	$(GO) build -o sensu-tlsd ./cmd/sensu-tlsd

# package builds the .deb and .rpm with nfpm (tools/go.mod) from
# packaging/nfpm.yaml: a static binary, the unit, /etc/sensu/tlsd.yml as a
# config file, the state directory and maintainer scripts.
package:
	@mkdir -p $(DIST)
	CGO_ENABLED=0 GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/bin/sensu-tlsd ./cmd/sensu-tlsd
	@for p in deb rpm; do \
	  VERSION='$(VERSION)' ARCH=$(ARCH) \
	    $(GO) tool -modfile=tools/go.mod nfpm package --config packaging/nfpm.yaml --packager $$p --target $(DIST)/ || exit 1; \
	done

# asset builds the Sensu asset: a tarball with bin/sensu-tlsd, its SHA-512
# (sha512-checksums.txt, as Sensu's asset builds list them) and
# dist/sensu-tlsd-asset.yml, examples/sensu-tlsd-asset.yml with this
# build's file name and SHA-512, for `sensuctl create -f`.
ASSET := sensu-tlsd_$(VERSION)_linux_$(ARCH).tar.gz
asset:
	@rm -rf $(DIST)/asset && mkdir -p $(DIST)/asset/bin
	CGO_ENABLED=0 GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/asset/bin/sensu-tlsd ./cmd/sensu-tlsd
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C $(DIST)/asset -czf $(DIST)/$(ASSET) bin
	cd $(DIST) && sha512sum $(ASSET) > sensu-tlsd_$(VERSION)_sha512-checksums.txt
	sha=$$(cut -d' ' -f1 $(DIST)/sensu-tlsd_$(VERSION)_sha512-checksums.txt); \
	sed -e "s|sha512: \"0\{128\}\"|sha512: \"$$sha\"|" -e "s|sensu-tlsd_0.0.0_linux_amd64.tar.gz|$(ASSET)|" \
	  examples/sensu-tlsd-asset.yml > $(DIST)/sensu-tlsd-asset.yml
	@echo "asset: $(DIST)/$(ASSET), $(DIST)/sensu-tlsd_$(VERSION)_sha512-checksums.txt, $(DIST)/sensu-tlsd-asset.yml"

# peers installs missing Debian packages as root; without root it says what
# is missing, and the tests that need it skip loudly (or fail under CI,
# which sets SENSU_TLSD_REQUIRE_PEERS=1).
peers:
	@missing=""; for p in $(PEERS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "peers: all Debian peers present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "peers: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "peers: missing Debian packages:$$missing (install them as root; tests that need them will skip and say why)"; fi
	@echo "peers: building Go peers from tools/go.mod (pebble, cfssl, cfssljson)"
	@$(GO) build -modfile=tools/go.mod -o /dev/null github.com/letsencrypt/pebble/v2/cmd/pebble
	@$(GO) build -modfile=tools/go.mod -o /dev/null github.com/cloudflare/cfssl/cmd/cfssl
	@$(GO) build -modfile=tools/go.mod -o /dev/null github.com/cloudflare/cfssl/cmd/cfssljson

check-format:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

# unit-nonroot runs NONROOT_PKGS again as nobody:nogroup after the root run,
# so a root run cannot leave anything in the way of a user's run, and
# tests that need root skip and say so. It tests a copy of the tree (the
# checkout may sit where nobody cannot read) with its own HOME, GOCACHE and
# GOPATH, and a module cache filled from root's without the network. It
# looks for what a user's run meets (permissions, paths, skips), so it runs
# without -race: the root run already looked for races, at several times
# the cost.
unit-nonroot:
	@if [ "$$(id -u)" != 0 ]; then echo "unit-nonroot: not root, so unit was the non-root run"; exit 0; fi
	@set -e; go=$$($(GO) env GOROOT)/bin/go; cache=$$($(GO) env GOMODCACHE); work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; chmod 0755 "$$work"; \
	mkdir "$$work/src" "$$work/home"; \
	git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - | tar -xf - -C "$$work/src"; \
	GOMODCACHE="$$work/mod" GOPROXY="file://$$cache/cache/download,$$($(GO) env GOPROXY)" GOFLAGS=-mod=readonly; export GOMODCACHE GOPROXY GOFLAGS; \
	$$go mod download; $$go list -deps -test ./... >/dev/null; \
	$$go mod download -modfile=tools/go.mod; \
	unset GOMODCACHE GOPROXY GOFLAGS; \
	chown -R nobody:nogroup "$$work/src" "$$work/home"; \
	echo "unit-nonroot: go test $(NONROOT_PKGS) as nobody:nogroup"; \
	cd "$$work/src" && setpriv --reuid=nobody --regid=nogroup --clear-groups \
	  env HOME="$$work/home" GOCACHE="$$work/home/cache" GOPATH="$$work/home/go" GOMODCACHE="$$work/mod" \
	  GOPROXY=off GOFLAGS=-buildvcs=false GOTOOLCHAIN=local \
	  $$go test -count=1 -timeout 20m $(NONROOT_PKGS)

# fuzz runs each fuzz target for FUZZTIME (go test -fuzz takes one at a time)
# and prints the run's own log when it fails; a failing input is written
# under the package's testdata/fuzz. FUZZTIME is a count of inputs, not a
# duration: a duration can end a run with "context deadline exceeded" and
# no finding (golang/go#51484).
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz: $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1 || { cat $$log; exit 1; }; \
	  done; \
	done
