# StratusLab in Go. `make run` and `make test` are the two set-up commands;
# both install what they need first (scripts/deps.sh).

SHELL := /bin/bash
export PATH := $(CURDIR)/bin/tools:/usr/local/go/bin:$(PATH)

# Every module of the workspace, as package patterns.
MODULES := ./... ./proto/... ./platform/... ./client/... $(patsubst %,./%/...,$(wildcard services/*))
BINARIES := ./cmd/stratuslab ./client/cmd/stratus $(patsubst %,./%,$(wildcard services/*/cmd/*))
DATA_DIR ?= $(CURDIR)/data
LISTEN ?= 127.0.0.1:8080
FUZZTIME ?= 60s
TEST_FLAGS ?= -race -timeout 15m

.PHONY: all deps tools build run test vet staticcheck lint proto bench fuzz compose-check clean

all: build

deps:
	@./scripts/deps.sh

## tools: also build buf and the nats CLI into bin/tools.
tools:
	@./scripts/deps.sh --all

build:
	@./scripts/deps.sh --debs
	@mkdir -p bin
	go build -o bin/ $(BINARIES)

## run: build, put the test appliance in DATA_DIR/images (built once; the all-in-one
## publishes it in its Marketplace, tag debian-test) and start the all-in-one cloud.
run: build
	@./scripts/seed-images.sh "$(DATA_DIR)"
	bin/stratuslab --data-dir "$(DATA_DIR)" --listen "$(LISTEN)"

## test: vet, staticcheck, the compose file and the race-enabled test suite of every module.
test: deps vet staticcheck compose-check
	go test $(TEST_FLAGS) $(MODULES)

## compose-check: the multi-container stack's file is valid (no engine needed).
compose-check: deps
	docker-compose -f deploy/compose/compose.yaml config -q

vet:
	go vet $(MODULES)

staticcheck:
	staticcheck $(MODULES)

lint: tools vet staticcheck
	@out=$$(git ls-files '*.go' | grep -v '\.pb\.go$$' | xargs gofmt -l); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	cd proto && buf lint

## proto: regenerate the committed Go code from proto/ (byte-identical).
proto: deps
	./proto/generate.sh

bench: deps
	go test -run '^$$' -bench . -benchtime 2s ./bench/ | tee bin/bench.txt

## fuzz: run every fuzz target for FUZZTIME.
fuzz: deps
	./scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin
