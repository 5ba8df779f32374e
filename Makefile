# clear-rotator. CI (.ci/run) runs `make test`, then `make soak`; `make run` is the local demo.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
TOOLS     := $(CURDIR)/.tools
STATICCHECK_VERSION ?= v0.8.2
TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/clear-rotator
STATICCHECK_CACHED := $(TOOLS_CACHE)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
IMAGE     ?= clear-rotator:$(VERSION)
RULES     := deploy/prometheus/rules.yaml

export CGO_ENABLED = 0
# -trimpath for every go command make runs (vet, staticcheck through go list, go test, the builds
# the tests make): without it the build cache keys the module's packages by their directory, so a
# clean clone recompiled all of them for vet, for staticcheck and again with -race for the tests
# (about a minute on two cores); with it a clean clone of code already built here hits the cache.
export GOFLAGS := $(strip $(GOFLAGS) -trimpath)

.PHONY: all build static image test-bin test test-deps lint vet fmt-check staticcheck cfn-lint promtool manifests rules-update run lambda bench soak clean

all: build

## build: the rotator and the Clear emulator into bin/
build: static
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/clear-emulator ./cmd/clear-emulator

## static: the static rotator binary; the Dockerfile's build stage runs exactly this target
static:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/rotator ./cmd/rotator

## image: the daemon's container image, with this checkout's version (rotator version, build_info)
image:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

## test-bin: the rotator for process tests that renew emulator tokens living seconds in real time:
## the release build but for a 500 ms floor between rotations instead of a minute (timing.MinInterval)
test-bin:
	$(GO) build -trimpath -ldflags '$(LDFLAGS) -X github.com/clear-rotator/clear-rotator/internal/timing.testFloor=500ms' -o bin/rotator-test ./cmd/rotator

## test: every test, with the race detector, plus lint, cfn-lint and promtool. Process tests run the
## release binary (ROTATOR_BIN, what the image ships) or, where they renew emulator tokens that live
## seconds, the test build (ROTATOR_TEST_BIN, the same but for the rotation floor). The manifests
## under deploy/ are validated by the Go tests in ./deploy (part of ./...). The quick checks run
## first, so that a template or rules mistake does not wait for the long tests.
## The packages' tests run TEST_PARALLEL at a time: the CPU count, but at least three. The process
## tests spend most of their time waiting on child processes and real-time tokens, so on a two-core
## machine go test's default (two) leaves the CPU idle while the slowest package waits its turn.
## TEST_FIRST are the slowest packages, longest first: go test starts the packages' tests in the
## order they are named (./... then adds the rest, each once), and in alphabetical order the
## longest, internal/reliability, started last and ran alone for a minute at the end.
TEST_PARALLEL ?= $(shell n=$$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2); echo $$(( n < 3 ? 3 : n )))
TEST_FIRST ?= ./internal/reliability ./cmd/rotator ./cmd/lambda ./examples ./internal/daemon ./cleartoken ./internal/lambdafn
test: test-deps lint static test-bin cfn-lint promtool
	CGO_ENABLED=1 ROTATOR_BIN=$(CURDIR)/bin/rotator ROTATOR_TEST_BIN=$(CURDIR)/bin/rotator-test $(GO) test -race -count=1 -p $(TEST_PARALLEL) -timeout 20m $(TEST_FIRST) ./...

## test-deps: check for (and where possible install) what the tests need; never skip silently
test-deps:
	@scripts/test-deps.sh

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## staticcheck: installed once per user and version into TOOLS_CACHE (outside the checkout), then
## copied into .tools: `go install pkg@version` takes about 15 s even with a warm build cache (it
## relinks, and checks the module with the proxy), which a clean clone would pay on every `make test`.
staticcheck:
	@if [ ! -x $(TOOLS)/staticcheck ]; then \
		if [ ! -x $(STATICCHECK_CACHED) ]; then \
			echo "installing staticcheck $(STATICCHECK_VERSION) into $(dir $(STATICCHECK_CACHED))"; \
			GOBIN=$(dir $(STATICCHECK_CACHED)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) || \
			{ echo "staticcheck could not be installed: no module proxy? (set SKIP_STATICCHECK=1 to run without)"; \
			  [ -n "$$SKIP_STATICCHECK" ] || exit 1; }; \
		fi; \
		if [ -x $(STATICCHECK_CACHED) ]; then mkdir -p $(TOOLS) && cp $(STATICCHECK_CACHED) $(TOOLS)/staticcheck; fi; \
	fi
	@if [ -x $(TOOLS)/staticcheck ]; then $(TOOLS)/staticcheck ./...; fi

cfn-lint:
	cfn-lint template.yaml

## promtool: the alerting rules are valid, and their unit tests pass
promtool:
	promtool check rules $(RULES)
	promtool test rules deploy/prometheus/rules_test.yaml

## manifests: only the deploy/ checks (Kubernetes manifests, PrometheusRule, image version)
manifests: promtool
	$(GO) test -count=1 ./deploy

## rules-update: rewrite deploy/kubernetes/prometheusrule.yaml after editing the rules
rules-update:
	$(GO) test -count=1 ./deploy -run PrometheusRule -update

## run: the local demo: moto, the Clear emulator with 12-minute tokens, and the daemon
run: build
	@scripts/demo.sh

## lambda: a reproducible deployment zip of the Lambda (arm64, provided.al2023)
lambda:
	GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags '$(LDFLAGS)' -o dist/lambda/bootstrap ./cmd/lambda
	$(GO) run ./tools/mkzip -o dist/lambda.zip dist/lambda/bootstrap
	@ls -l dist/lambda.zip

## build-RotatorFunction: called by `sam build` (BuildMethod: makefile)
build-RotatorFunction:
	GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags '$(LDFLAGS)' -o $(ARTIFACTS_DIR)/bootstrap ./cmd/lambda

## bench: the benchmarks behind BENCHMARKS.md (the gateway's also need nginx and wrk)
bench:
	@scripts/test-deps.sh bench
	$(GO) test -run '^$$' -bench . -benchtime 1x -v -timeout 45m ./internal/bench/...

## soak: the long reliability suite
soak: test-deps
	CGO_ENABLED=1 SOAK=1 $(GO) test -race -count=1 -timeout 50m -run 'Soak|Month' ./internal/reliability/

clean:
	rm -rf bin dist .aws-sam
