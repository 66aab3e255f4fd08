#!/usr/bin/env bash
# Fetch franz-go (github.com/twmb/franz-go, the strict Go Kafka client) at a pinned version through
# the Go module proxy and compile the integration tests of its pkg/kgo package into one test
# binary, which tests/peers/test_franzgo_suite.py runs against a shoal broker.
# Idempotent: when the binary for the pinned version exists it does nothing but the check.
# Nothing of franz-go lands in the repository: the module cache, the build cache and the binary live
# under ${SHOAL_GO_HOME:-~/.cache/shoal/go}. Exits non-zero, with the reason, when Go or the module
# cannot be had, so CI fails instead of skipping the suite.
#
# The last two lines of its output are what the test reads:
#   FRANZGO_TEST_BINARY=<path of the compiled kgo test binary>
#   FRANZGO_PACKAGE_DIR=<pkg/kgo in the module cache: the tests' working directory, as under go test>
set -euo pipefail

# v1.22.x tests against Apache Kafka 4.x (its CI runs apache/kafka:latest). Pinned: a new release
# brings new tests, and moving the pin is a reviewed change (with the skip list re-checked).
FRANZGO_VERSION="v1.22.3"
GO_HOME="${SHOAL_GO_HOME:-${HOME}/.cache/shoal/go}"
WORK="${GO_HOME}/franzgo-${FRANZGO_VERSION}"
BINARY="${WORK}/kgo.test"

GO_MIN_MINOR=26  # franz-go ${FRANZGO_VERSION}'s go.mod says go 1.26.0
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    PATH="/usr/local/go/bin:${PATH}"  # where the official tarball installs, often not on PATH
fi
if ! command -v go >/dev/null 2>&1; then
    echo "franzgo.sh: 'go' is missing; franz-go's suite needs Go 1.${GO_MIN_MINOR}+" \
        "(Debian's golang-go is too old: install the official release from https://go.dev/dl/)" >&2
    exit 1
fi
go_minor=$(GOTOOLCHAIN=local go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ -z "$go_minor" ] || [ "$go_minor" -lt "$GO_MIN_MINOR" ]; then
    echo "franzgo.sh: $(GOTOOLCHAIN=local go env GOVERSION) is too old; franz-go ${FRANZGO_VERSION} needs Go 1.${GO_MIN_MINOR}+" \
        "(https://go.dev/dl/)" >&2
    exit 1
fi

export GOPATH="${GO_HOME}"
export GOMODCACHE="${GO_HOME}/mod"
export GOCACHE="${GO_HOME}/build"
# -mod=mod lets go record the checksums of franz-go's dependencies in our throwaway go.sum;
# GOTOOLCHAIN=local: an old Go fails here, loudly, instead of downloading another toolchain.
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local

if [ ! -x "$BINARY" ]; then
    echo "franzgo.sh: fetching github.com/twmb/franz-go@${FRANZGO_VERSION} and compiling pkg/kgo's tests" >&2
    mkdir -p "$WORK"
    # A module of our own that requires franz-go: `go test -c` of a dependency's package builds
    # that package's tests, with the dependency exactly as the proxy serves it.
    cat >"${WORK}/go.mod" <<GOMOD
module shoal.peers/franzgo

go 1.26

require github.com/twmb/franz-go ${FRANZGO_VERSION}
GOMOD
    if ! (cd "$WORK" && go test -c -o "${BINARY}.tmp" github.com/twmb/franz-go/pkg/kgo) >&2; then
        echo "franzgo.sh: could not fetch or compile github.com/twmb/franz-go/pkg/kgo@${FRANZGO_VERSION}" \
            "($(go version))" >&2
        exit 1
    fi
    mv "${BINARY}.tmp" "$BINARY"
fi

PACKAGE_DIR=$(cd "$WORK" && go list -f '{{.Dir}}' github.com/twmb/franz-go/pkg/kgo)
if ! tests=$("$BINARY" -test.list '^TestGroupETL$' 2>&1) || [ "$tests" != "TestGroupETL" ]; then
    echo "franzgo.sh: ${BINARY} does not list franz-go's TestGroupETL:" >&2
    echo "$tests" >&2
    exit 1
fi
echo "franzgo.sh: franz-go ${FRANZGO_VERSION} pkg/kgo tests compiled ($(go version | cut -d' ' -f3))" >&2
echo "FRANZGO_TEST_BINARY=${BINARY}"
echo "FRANZGO_PACKAGE_DIR=${PACKAGE_DIR}"
