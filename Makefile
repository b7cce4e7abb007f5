# lgap — common entry points. `make test` is what CI runs (.ci/run).
SWIFT ?= swift
PREFIX ?= /usr/local
RUFF ?= ruff
# Debian's interpreter: scripts/setup-debian.sh installs python3-zmq for it (the client tests).
PYTHON3 ?= /usr/bin/python3
# Numeric code is ~100x slower in debug builds, so tests build in release with @testable enabled.
RELEASE := -c release
TESTFLAGS := $(RELEASE) -Xswiftc -enable-testing

.PHONY: deps build test test-deb bench install uninstall deb demo clean lint format

deps:
	scripts/setup-debian.sh

build: deps
	$(SWIFT) build $(RELEASE)

test: deps
	$(SWIFT) build $(TESTFLAGS) --build-tests
	scripts/with-test-postgres.sh $(SWIFT) test $(TESTFLAGS) --skip-build
	PYTHONPATH=clients/python $(PYTHON3) -m unittest discover -s clients/python/tests

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
