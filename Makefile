# imapbridge — build, test and check. `make help` lists the targets.

GO       ?= go
BIN      := bin/imapbridge
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
FUZZTIME ?= 20s

.PHONY: all build run test bench bench-micro lint fuzz clean help

all: lint test build

help:
	@echo "make build   build $(BIN) (version $(VERSION))"
	@echo "make run     build, then run the demo"
	@echo "make test    check test tools, then go test -race ./..."
	@echo "make bench   build, then measure bin/imapbridge against Dovecot and bare clients (bench/results.md)"
	@echo "             BENCH_SIZES=$(BENCH_SIZES) (message counts); BENCH_FULL=1 adds 100000 and 10000 idle connections"
	@echo "make bench-micro  run the Go benchmarks of every package"
	@echo "make lint    gofmt and go vet"
	@echo "make fuzz    run every fuzz target for FUZZTIME ($(FUZZTIME)) each"
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
	$(GO) run ./bench -bin $(BIN) -sizes $(BENCH_SIZES) $(if $(BENCH_FULL),-full) -out bench/results.md

bench-micro:
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

clean:
	rm -rf bin/
