# Backstop — make targets. `make help` lists them.

IMG ?= ghcr.io/backstop-io/backstop:dev
CONTROLLER_GEN ?= go tool controller-gen
# The test control plane and other heavy tools are cached outside the clone.
BACKSTOP_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/backstop
export BACKSTOP_CACHE

.PHONY: help
help: ## Show the targets.
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: generate
generate: ## Write zz_generated.deepcopy.go.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: manifests
manifests: ## Write the CRDs and the RBAC role from the markers.
	$(CONTROLLER_GEN) rbac:roleName=backstop-manager crd paths="./api/...;./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	mkdir -p charts/backstop/crds && rm -f charts/backstop/crds/*.yaml && cp config/crd/bases/*.yaml charts/backstop/crds/
	cp config/rbac/role.yaml charts/backstop/files/manager-role.yaml

.PHONY: docs
docs: ## Write docs/reference.md from the CRDs (run after `make manifests`).
	go run ./hack/gen-reference

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: build
build: ## Build bin/backstop and bin/backstop-agent (what Jobs run).
	CGO_ENABLED=0 go build -trimpath -o bin/backstop .
	CGO_ENABLED=0 go build -trimpath -o bin/backstop-agent ./cmd/backstop-agent

.PHONY: control-plane
control-plane: ## Build (or reuse) kube-apiserver, kube-controller-manager and etcd for tests.
	bash hack/control-plane.sh

.PHONY: setup
setup: ## Install and build what `make test` needs (apt packages, Go-built tools, the image).
	bash hack/setup.sh test

# Every package but the opt-in ones: the demo (make demo) and the benchmarks
# (make bench), whose two unit tests run on their own.
TEST_PACKAGES = $$(go list ./... | grep -v -e /test/demo -e /test/bench/)

.PHONY: test
test: setup ## Run every test against real parts (control plane, a real node, databases, MinIO).
	KUBEBUILDER_ASSETS="$$(bash hack/control-plane.sh)" go test -count=1 -timeout 75m $(TEST_PACKAGES)
	go test -count=1 -v -run '^(TestParseMetricsAndQuantile|TestCheckSoak_SuspendedSkipsAtTheEnd)$$' ./test/bench/scale

.PHONY: bench
bench: ## Run the benchmarks (test/bench/...; see docs/benchmarks.md). Not part of `make test`.
	BACKSTOP_BENCH=1 KUBEBUILDER_ASSETS="$$(bash hack/control-plane.sh)" go test -count=1 -v -timeout 60m ./test/bench/...

.PHONY: demo
demo: ## Run Backstop end to end on this machine, no cluster needed (needs root: the pod runner uses mount namespaces).
	bash hack/setup.sh demo
	BACKSTOP_DEMO=1 BACKSTOP_DEMO_DIR="$(BACKSTOP_CACHE)/demo/$$(date +%Y%m%d-%H%M%S)" \
		KUBEBUILDER_ASSETS="$$(bash hack/control-plane.sh --kubectl)" \
		go test -count=1 -v -timeout 30m -run '^TestDemo$$' ./test/demo

.PHONY: lint
lint: ## Run golangci-lint (built from the module proxy).
	bash hack/lint.sh

.PHONY: image
image: ## Build the image from the Dockerfile with no Docker daemon (buildah) into bin/backstop-image.tar.
	IMG=$(IMG) bash hack/image.sh bin/backstop-image.tar

.PHONY: docker-build
docker-build: ## Build the image (needs a Docker engine).
	docker build -t $(IMG) .
