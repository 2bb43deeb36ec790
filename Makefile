# imapbridge — build, test and check. `make help` lists the targets.

GO       ?= go
BIN      := bin/imapbridge
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
FUZZTIME ?= 20s
FUZZ     ?= .
SOAK_DURATION ?= 4m

.PHONY: all build run test bench bench-micro lint fuzz load stress soak clean help

all: lint test build

help:
	@echo "make build   build $(BIN) (version $(VERSION))"
	@echo "make run     build, then run the demo"
	@echo "make test    check test tools, then go test -race ./..."
	@echo "make bench   build, then measure bin/imapbridge against Dovecot and bare clients (bench/results.md)"
	@echo "             BENCH_SIZES=$(BENCH_SIZES) (message counts); BENCH_FULL=1 adds 100000 and 10000 idle connections (bench/results-full.md)"
	@echo "make bench-micro  run the Go benchmarks of every package"
	@echo "make lint    gofmt, go vet, staticcheck $(STATICCHECK_VERSION) and the import arrows (scripts/check-imports.sh)"
	@echo "make fuzz    run every fuzz target (matching FUZZ=regexp) for FUZZTIME ($(FUZZTIME)) each"
	@echo "make load    1,000 idle + 50 active IMAP sessions on one account; prints memory figures"
	@echo "make stress  the state-checking IMAP stress client: 5 and 20 sessions x 60 s; prints ops/s and inconsistencies"
	@echo "make soak    crash-safety campaign: SIGKILL rounds for SOAK_DURATION ($(SOAK_DURATION))"
	@echo "make clean   remove bin/"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/imapbridge

run: build
	./$(BIN) demo

# -race needs cgo, so no CGO_ENABLED=0 here.
test:
	./scripts/test-deps.sh
	$(GO) test -race -count=1 ./...

# The outside benchmark of the built binary (bench/main.go): generated mail,
# Dovecot POP3/IMAP and imapbridge on 127.0.0.1, a table of medians with
# ratios to same-run baselines. Under 10 minutes at the default sizes.
BENCH_SIZES ?= 1000,10000
BENCH_FULL  ?=
bench: build
	$(GO) run ./bench -bin $(BIN) -sizes $(BENCH_SIZES) $(if $(BENCH_FULL),-full -out bench/results-full.md,-out bench/results.md)

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# staticcheck at a pinned version, fetched by go run itself (a fresh CI
# machine has no ~/go/bin/staticcheck).
STATICCHECK_VERSION ?= v0.6.1

lint:
	@files="$$(gofmt -l .)"; \
	if [ -n "$$files" ]; then \
		echo "gofmt: these files need formatting (run gofmt -w):"; \
		echo "$$files" | sed 's/^/  /'; \
		exit 1; \
	fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	GO=$(GO) ./scripts/check-imports.sh

# Every FuzzXxx of every package (those matching FUZZ), one after the
# other, each for FUZZTIME; a failing target does not stop the others.
# Crashers are kept by go test under the package's testdata/fuzz/.
fuzz:
	@targets=""; \
	for pkg in $$($(GO) list ./...); do \
		for name in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' | grep -E '$(FUZZ)' || true); do \
			targets="$$targets $$pkg:$$name"; \
		done; \
	done; \
	n=$$(echo $$targets | wc -w); \
	echo "fuzz: $$n targets, $(FUZZTIME) each (at most about $$n x $(FUZZTIME) plus builds)"; \
	start=$$(date +%s); failed=""; log=$$(mktemp); \
	for t in $$targets; do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		printf '%-48s %-28s ' "$$pkg" "$$name"; \
		if $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1; then \
			echo "ok   $$(grep -o 'execs: [0-9]*' $$log | tail -n 1)"; \
		else \
			echo "FAIL"; cat $$log; failed="$$failed $$t"; \
		fi; \
	done; \
	rm -f $$log; \
	echo "fuzz: $$n targets in $$(( $$(date +%s) - start ))s"; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed"; exit 1; fi

# The full-size load test (the default go test runs a small one). Bounded:
# 60 s of load, 60 s of checks. Without -race so the memory figures mean
# something; GOFLAGS=-race make load for the race detector (slow).
load:
	IMAPBRIDGE_LOAD=full $(GO) test -run '^TestLoadManySessionsOneAccount$$' -count=1 -v -timeout 5m ./imapfront/

# The state-checking stress client (imapfront/stateclient_test.go) at full
# size: 5, then 20 sessions of one user for 60 s each, two more in IDLE;
# fails on any response inconsistent with a session's model. Without -race
# so the operations/s mean something; GOFLAGS=-race make stress for the
# race detector.
stress:
	IMAPFRONT_STRESS=full $(GO) test -run '^TestStressStateChecking$$' -count=1 -v -timeout 10m ./imapfront/

# The built binary is killed with SIGKILL at random and chosen moments while
# IMAP clients change mail and new mail arrives (POP3 via Dovecot and an mbox
# spool); every round checks nothing was lost, duplicated or changed. Bounded
# by SOAK_DURATION (and SOAK_ROUNDS if set); SOAK_SEED replays a run.
soak:
	./scripts/test-deps.sh
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -race -count=1 -tags soak -run '^TestSoak$$' -v -timeout 30m ./cmd/imapbridge/

clean:
	rm -rf bin/
