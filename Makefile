# `make test` is the project's test command (README, .ci/run). It installs the
# real peers the tests talk to when they are missing, then runs vet, the race
# tests and a short run of every fuzz target.
GO       ?= go
# An execution count, not a duration: Go 1.26's fuzz coordinator can fail a
# duration run at its deadline with "context deadline exceeded" and no
# failing input (go.dev/issue/75804); a count has no deadline to race.
FUZZTIME ?= 30000x
# Debian packages the tests run as real peers.
PEERS    := openssl etcd-server stunnel4 haproxy nginx libnginx-mod-stream sslscan wrk systemd dbus iproute2 socat nodejs

.PHONY: test peers check-format vet unit fuzz build

test: peers check-format vet unit fuzz

build:
	$(GO) build -o sensu-tlsd ./cmd/sensu-tlsd

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

# fuzz runs each fuzz target for FUZZTIME (go test -fuzz takes one at a time)
# and prints the run's own log when it fails; a failing input is written
# under the package's testdata/fuzz.
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz: $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1 || { cat $$log; exit 1; }; \
	  done; \
	done
