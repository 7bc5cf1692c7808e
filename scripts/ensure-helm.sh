#!/usr/bin/env bash
# Prints the path of a helm binary of the pinned version, building it first when there is none.
#   scripts/ensure-helm.sh            -> /abs/path/to/helm (stdout); progress on stderr
# Order: $MESH_PEP_HELM (an explicit binary), then .cache/bin/helm in the repository (git-ignored), built
# with `go install` from the Go module proxy when missing or of another version. A helm found on PATH is
# used only when it is the pinned version: the chart tests assert what this version renders.
# Exits non-zero with a reason when helm cannot be had (no Go, no network): the tests then fail, never skip.
set -euo pipefail

HELM_VERSION="v4.3.2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="$ROOT/.cache/bin"

version_of() {
  # The module version Go recorded in the binary. `helm version` cannot tell: a `go install` build has no
  # release ldflags and reports only "v4.3".
  if command -v go >/dev/null 2>&1; then
    go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v4" { print $3 }'
  else
    # Without Go, trust a release build's own report (release binaries carry the full version).
    "$1" version --template '{{.Version}}' 2>/dev/null || true
  fi
}

for candidate in "${MESH_PEP_HELM:-}" "$BIN_DIR/helm" "$(command -v helm 2>/dev/null || true)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && [ "$(version_of "$candidate")" = "$HELM_VERSION" ]; then
    echo "$candidate"
    exit 0
  fi
done

if ! command -v go >/dev/null 2>&1; then
  echo "ensure-helm: helm $HELM_VERSION not found and Go is not installed to build it" \
       "(install Go, or set MESH_PEP_HELM to a helm $HELM_VERSION binary)" >&2
  exit 1
fi

mkdir -p "$BIN_DIR"
echo "ensure-helm: building helm $HELM_VERSION into $BIN_DIR (go install, a few minutes the first time)" >&2
# A lock, so parallel test processes on a fresh clone build it once.
exec 9>"$BIN_DIR/.helm.lock"
flock 9
if [ "$(version_of "$BIN_DIR/helm")" != "$HELM_VERSION" ]; then
  GOBIN="$BIN_DIR" CGO_ENABLED=0 go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
fi
if [ "$(version_of "$BIN_DIR/helm")" != "$HELM_VERSION" ]; then
  echo "ensure-helm: built $BIN_DIR/helm but it does not report $HELM_VERSION" >&2
  exit 1
fi
echo "$BIN_DIR/helm"
