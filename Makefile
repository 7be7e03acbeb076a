# vidhub's commands. "make help" lists them; the README uses these.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X main.version=$(VERSION)
# A count of executions per fuzz target, not a duration: go1.26's fuzzer can
# fail a duration-bounded run with a spurious "context deadline exceeded" at
# the deadline on a busy machine (golang/go#75804, fixed in go1.27).
FUZZTIME ?= 100000x

.DEFAULT_GOAL := help
.PHONY: help deps deps-test demo build static test test-short fuzz bench lint clean cross release

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install what building and running needs (Debian packages, Go modules)
	@scripts/deps.sh run

deps-test: ## install what the tests need as well (Xvfb, Chromium, ...)
	@scripts/deps.sh test

demo: deps ## run the hub: embedded broker, two pattern publishers, a viewer
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/vidhub demo

build: deps ## build bin/vidhub (full build, with OpenCV)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/vidhub ./cmd/vidhub

static: ## build bin/vidhub-static (CGO_ENABLED=0: no OpenCV, runs anywhere)
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/vidhub-static ./cmd/vidhub

test: deps-test ## run every test, with the race detector
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -race -count=1 -tags matprofile -run MatsClosed ./internal/media ./publisher ./subscriber

test-short: ## run the quick tests only
	$(GO) test -short -count=1 ./...

fuzz: ## run each fuzz target for FUZZTIME executions (default 100000x; a duration like 30s works too)
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

bench: deps ## run the benchmark suite (vidhub vs raw NATS vs classic; bench-results/, BENCHMARKS.md) and the Go benchmarks
	$(GO) run ./cmd/vidhub bench --out bench-results --markdown BENCHMARKS.md
	cp bench-results/chart.svg docs/bench-chart.svg
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200ms ./... | tee bench-results/go-bench.txt

lint: deps ## gofmt, go vet (every build), staticcheck, go mod tidy
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: run gofmt -w ."; exit 1; }
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet ./...
	$(GO) vet -tags vidhub_lite ./...
	$(GO) tool staticcheck ./...
	$(GO) mod tidy -diff

clean: ## remove build output
	rm -rf $(BIN) $(DIST)

# --- release: the static build for every platform vidhub's users have ---
# Static (CGO_ENABLED=0) binaries: broker, web gateway, pattern publisher,
# headless viewer, tokens, access, health, bench. The full build (camera,
# desktop window) needs OpenCV and cgo on the target: see docs/platforms.md.
DIST      ?= dist
PLATFORMS ?= linux/amd64 linux/arm64 linux/arm darwin/arm64 windows/amd64

cross: ## build and vet the static build for every release platform (PLATFORMS)
	@for p in $(PLATFORMS); do \
		echo "cross: $$p"; \
		GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/vidhub || exit 1; \
		GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) vet ./... || exit 1; \
	done

release: ## write static binaries for every platform and their SHA-256 checksums to DIST (default dist/)
	@rm -rf $(DIST) && mkdir -p $(DIST)
	@for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		out=$(DIST)/vidhub-$(VERSION)-$$os-$$arch$$ext; \
		echo "release: $$out"; \
		GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/vidhub || exit 1; \
	done
	cd $(DIST) && sha256sum vidhub-* > SHA256SUMS && cat SHA256SUMS

# --- container image and compose stack (deploy/, docker-compose.yml) ---
IMAGE     ?= vidhub:latest
IMAGE_DIR ?= $(BIN)/image
COMPOSE   ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
PROFILE   ?=
.PHONY: image up down

# The image holds the lite build where this host can make it: cgo with
# libx264 linked in statically (build tag vidhub_lite; no OpenCV, no
# FFmpeg), so its publishers send H.264. It needs gcc, glibc's static
# libraries (libc6-dev) and libx264.a with x264.h (libx264-dev): "make deps"
# installs them. netgo and osusergo keep glibc's resolver and user lookup
# (which want shared NSS modules at run time) out of the static binary. The
# linker warns that x264's OpenCL loader calls dlopen: harmless, vidhub
# never turns OpenCL on. Without those, the image holds the static build
# (CGO_ENABLED=0), whose publishers send JPEG only, and "make image" says
# so. IMAGE_BUILD=lite or IMAGE_BUILD=static picks one (lite then fails
# where it cannot be built).
# The build context, IMAGE_DIR, holds rootfs/ (the binary and a CA bundle,
# laid out as in the image) and data/, an empty directory that becomes the
# image's /data, the brokers' JetStream store: the image is two layers.
IMAGE_BUILD ?=
LITE_TAGS   := vidhub_lite netgo osusergo
LITE_PROBE  := printf '\043include <stdint.h>\n\043include <x264.h>\nint main(void) { x264_param_t p; return x264_param_default_preset(&p, 0, 0); }\n' | \
	$${CC:-gcc} -x c -static -o /dev/null - -lx264 -lm -lpthread -ldl >/dev/null 2>&1

image: ## build vidhub (the lite build where the host can, else the static one) and the FROM-scratch image IMAGE (default vidhub:latest)
	@rm -rf $(IMAGE_DIR)/vidhub $(IMAGE_DIR)/ca-certificates.crt $(IMAGE_DIR)/data && \
	mkdir -p $(IMAGE_DIR)/rootfs/etc/ssl/certs $(IMAGE_DIR)/data
	@build='$(IMAGE_BUILD)'; \
	if [ -z "$$build" ]; then \
		if $(LITE_PROBE); then build=lite; else \
			build=static; \
			echo "image: no static libx264 here (gcc, libc6-dev and libx264-dev: make deps): falling back to the static build, whose publishers send JPEG only"; \
		fi; \
	fi; \
	case "$$build" in \
	lite) echo "image: the lite build (static, libx264 linked in: publishes H.264)"; \
		set -x; CGO_ENABLED=1 $(GO) build -trimpath -tags '$(LITE_TAGS)' -ldflags '$(LDFLAGS) -linkmode external -extldflags -static' -o $(IMAGE_DIR)/rootfs/vidhub ./cmd/vidhub ;; \
	static) echo "image: the static build (CGO_ENABLED=0: publishes JPEG only)"; \
		set -x; CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(IMAGE_DIR)/rootfs/vidhub ./cmd/vidhub ;; \
	*) echo "image: IMAGE_BUILD=$$build: want lite or static" >&2; exit 2 ;; \
	esac && { set +x; } 2>/dev/null && \
	if [ -r /etc/ssl/certs/ca-certificates.crt ]; then cp /etc/ssl/certs/ca-certificates.crt $(IMAGE_DIR)/rootfs/etc/ssl/certs/; else : > $(IMAGE_DIR)/rootfs/etc/ssl/certs/ca-certificates.crt; fi && \
	chmod -R u=rwX,go=rX $(IMAGE_DIR)/rootfs $(IMAGE_DIR)/data && \
	docker build -f deploy/Dockerfile -t $(IMAGE) \
		--build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
		--build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
		--build-arg BUILD=$$build \
		$(IMAGE_DIR) && \
	echo "image: $(IMAGE), $$build build, $$(docker image inspect --format '{{.Size}}' $(IMAGE) | awk '{printf "%.1f MB", $$1/1e6}')"

# PROFILE is one profile or several, space-separated: PROFILE="cluster edge".
up: image ## build the image and start the compose stack (PROFILE=cluster for three brokers, PROFILE=edge for an edge broker and camera linked as a leaf); web on http://localhost:8080
	VIDHUB_IMAGE=$(IMAGE) $(if $(filter cluster,$(PROFILE)),VIDHUB_CLUSTER_ENV=deploy/compose/cluster.env) $(COMPOSE) $(foreach p,$(PROFILE),--profile $(p)) up -d
	@echo "vidhub is up: web http://localhost:$${VIDHUB_WEB_PORT:-8080}  NATS nats://localhost:$${VIDHUB_NATS_PORT:-4222}  monitoring http://localhost:$${VIDHUB_MONITOR_PORT:-8222}  leaf nodes nats://localhost:$${VIDHUB_LEAF_PORT:-7422}"
	$(if $(filter edge,$(PROFILE)),@echo "edge: broker nats://localhost:$${VIDHUB_EDGE_NATS_PORT:-4225}  monitoring http://localhost:$${VIDHUB_EDGE_MONITOR_PORT:-8225}/leafz  camera in room edge")

down: ## stop the compose stack and remove its containers and networks (every profile); recordings stay on the volumes (docker compose --profile cluster down -v deletes them)
	VIDHUB_IMAGE=$(IMAGE) $(COMPOSE) --profile cluster --profile edge down --remove-orphans

# --- soak (not part of "make test": it runs for SOAK, default 10 minutes) ---
SOAK        ?= 10m
SOAK_REPORT ?= bench-results/soak-report.md
# The soak writes its figures into this file's soak section too (empty: not).
SOAK_MARKDOWN ?= BENCHMARKS.md
.PHONY: soak

# The test timeout is SOAK plus 5 minutes: Go reads "10m5m" as 15m.
soak: deps ## run the soak: 4 publishers x 10 viewers for SOAK (default 10m); report in SOAK_REPORT and SOAK_MARKDOWN
	@mkdir -p $(dir $(SOAK_REPORT))
	$(GO) test -count=1 -v -run TestSoak -timeout $(SOAK)5m ./internal/soak -args -soak $(SOAK) -soak-report $(abspath $(SOAK_REPORT)) $(if $(SOAK_MARKDOWN),-soak-markdown $(abspath $(SOAK_MARKDOWN)))
