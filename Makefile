# imapbridge — build, test and check. `make help` lists the targets.

GO       ?= go
BIN      := bin/imapbridge
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
FUZZTIME ?= 20s
SOAK_DURATION ?= 4m

.PHONY: all build run test bench lint fuzz soak clean help

all: lint test build

help:
	@echo "make build   build $(BIN) (version $(VERSION))"
	@echo "make run     build, then run the demo"
	@echo "make test    check test tools, then go test -race ./..."
	@echo "make bench   run the benchmarks"
	@echo "make lint    gofmt and go vet"
	@echo "make fuzz    run every fuzz target for FUZZTIME ($(FUZZTIME)) each"
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

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@files="$$(gofmt -l .)"; \
	if [ -n "$$files" ]; then \
		echo "gofmt: these files need formatting (run gofmt -w):"; \
		echo "$$files" | sed 's/^/  /'; \
		exit 1; \
	fi
	$(GO) vet ./...

# Every FuzzXxx of every package, one after the other.
fuzz:
	@set -e; \
	for pkg in $$($(GO) list ./...); do \
		list="$$($(GO) test -list '^Fuzz' $$pkg)"; \
		for name in $$(printf '%s\n' "$$list" | grep '^Fuzz' || true); do \
			echo "== $$pkg $$name ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# The built binary is killed with SIGKILL at random and chosen moments while
# IMAP clients change mail and new mail arrives (POP3 via Dovecot and an mbox
# spool); every round checks nothing was lost, duplicated or changed. Bounded
# by SOAK_DURATION (and SOAK_ROUNDS if set); SOAK_SEED replays a run.
soak:
	./scripts/test-deps.sh
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -race -count=1 -tags soak -run '^TestSoak$$' -v -timeout 30m ./cmd/imapbridge/

clean:
	rm -rf bin/
