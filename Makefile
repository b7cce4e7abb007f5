# lgap — common entry points. `make test` is what CI runs (.ci/run).
SWIFT ?= swift
PREFIX ?= /usr/local
RUFF ?= ruff
# Debian's interpreter: scripts/setup-debian.sh installs python3-zmq for it (the client tests).
PYTHON3 ?= /usr/bin/python3
# Numeric code is ~100x slower in debug builds, so tests build in release with @testable enabled.
RELEASE := -c release
TESTFLAGS := $(RELEASE) -Xswiftc -enable-testing

.PHONY: deps build test test-tools test-deb bench install uninstall deb demo clean lint format

deps:
	scripts/setup-debian.sh

build: deps
	$(SWIFT) build $(RELEASE)

test: deps
	$(SWIFT) build $(TESTFLAGS) --build-tests
	scripts/with-test-postgres.sh $(SWIFT) test $(TESTFLAGS) --skip-build
	PYTHONPATH=clients/python $(PYTHON3) -m unittest discover -s clients/python/tests

# The Python tools with the engine: tiny checkpoints in the real Hugging Face / RobustBench formats
# through the pack builder, lgapctl and lgapd against transformers and diffusers, and the reference
# tools on a latent pack. Needs PyTorch: tools/setup-venv.sh makes $(TOOLS_VENV) (CI runs it).
TOOLS_VENV ?= .build/tools-venv
test-tools: deps
	$(SWIFT) build $(TESTFLAGS) --build-tests
	tools/setup-venv.sh $(TOOLS_VENV)
	cd tools && OPENBLAS_NUM_THREADS=1 ../$(TOOLS_VENV)/bin/python -m unittest discover -v -s tests

bench: build
	.build/release/lgap-bench pipeline

# The main job on the default pack: caption, purify and classify the sample images offline.
demo: build
	.build/release/lgapctl purify models/cifar10-mini/samples

# Static Swift runtime (only Debian's shared libraries needed), man pages and completions included.
install: deps
	scripts/install.sh $(PREFIX)

uninstall:
	scripts/uninstall.sh $(PREFIX)

# .build/dist/lgap_VERSION_ARCH.deb
deb: deps
	scripts/package-deb.sh

# Builds the .deb, unpacks it into a temporary root and runs a job through it (CI runs it).
test-deb: deps
	scripts/test-deb.sh

clean:
	rm -rf .build

# Style: swift-format (.swift-format) over the Swift sources, ruff (tools/pyproject.toml) over tools/.
# `make format` applies swift-format's layout; `make lint` only checks (CI runs it).
lint:
	$(SWIFT) format lint --strict -r Sources Tests Plugins Package.swift
	$(RUFF) check tools clients/python

format:
	$(SWIFT) format format -i -r Sources Tests Plugins Package.swift
