#!/usr/bin/env bash
# Put timm's own model tests (tests/test_models.py from the timm sdist) in a cache folder outside the
# repository, for tests/timm_contract/. The file is timm's, so it is fetched, never committed.
#   usage: tools/fetch_timm_tests.sh [python]      (prints the folder that holds test_models.py)
# The version is the timm the contract is written against; override with TIMM_TESTS_VERSION.
set -euo pipefail
PY="${1:-${PYTHON:-.venv/bin/python}}"
VERSION="${TIMM_TESTS_VERSION:-1.0.31}"
CACHE="${VSSM_CACHE:-$HOME/.cache/vssm}"
DEST="$CACHE/timm-tests-$VERSION"
if [ -f "$DEST/test_models.py" ]; then
    echo "$DEST"
    exit 0
fi
mkdir -p "$CACHE/sdist"
SDIST="$(ls "$CACHE"/sdist/timm-"$VERSION".tar.gz 2>/dev/null || true)"
if [ -z "$SDIST" ]; then
    "$PY" -m pip download -q --no-deps --no-binary :all: "timm==$VERSION" -d "$CACHE/sdist" >&2
    SDIST="$CACHE/sdist/timm-$VERSION.tar.gz"
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
tar -xzf "$SDIST" -C "$TMP" "timm-$VERSION/tests"
mkdir -p "$DEST"
cp "$TMP/timm-$VERSION/tests/"*.py "$DEST/"
echo "$DEST"
