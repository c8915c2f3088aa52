#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager and etcd from source through
# the Go module proxy (no Docker, no GitHub access needed) into a flat,
# envtest-like directory that can be used as KUBEBUILDER_ASSETS.
#
# Usage: scripts/build-kube.sh          # control plane: kube-apiserver, kube-controller-manager,
#                                       # kubectl, etcd
#        scripts/build-kube.sh node     # a node: kubelet, kube-scheduler (same version, same
#                                       # folder; the testbed node, issue #11)
#
# Environment:
#   K8S_VERSION      Kubernetes release to build (default pinned below)
#   ETCD_VERSION     etcd release to build (default pinned below)
#   AGENTCRED_CACHE  cache root (default: $HOME/.cache/agentcred)
#
# Output: the binaries land in
#   $AGENTCRED_CACHE/kube/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/
# and that directory is printed as the LAST line of stdout. Everything else
# (progress, go tool output) goes to stderr. If all three binaries already
# exist the script exits immediately (warm path).
#
# Requirements: a Go toolchain new enough for the chosen Kubernetes release
# (its go.mod `go` line) and network access to the Go module proxy.
#
# Recipe notes:
#   * `go install k8s.io/kubernetes/cmd/...@vX` does not work: the kubernetes
#     go.mod points its k8s.io/* staging modules at local folders
#     (`=> ./staging/src/k8s.io/...`), and replace directives of dependencies
#     are ignored. We therefore generate a tiny wrapper module that requires
#     k8s.io/kubernetes and replaces every staging module with its published
#     v0.X.Y counterpart. The staging list is derived from the kubernetes
#     go.mod itself, so it follows whatever release is selected.
#   * etcd's main package is the root of go.etcd.io/etcd/server/v3 (a thin
#     wrapper around etcdmain); it is built from its own wrapper module.
#   * Cold build (empty Go module + build cache) of v1.36.3/v3.6.16 took
#     ~7.5 min wall on 2 cores, peak RSS ~1.9 GiB; with warm Go caches a
#     rebuild into a fresh output dir takes ~10 s. Needs ~1 GiB of module
#     cache and ~3 GiB of Go build cache.
set -euo pipefail

# Pinned so that every test run talks to the same API server / etcd versions
# (reproducible test servers). Override via the environment if needed.
# v1.36.3: newest Kubernetes release on the proxy; its go.mod says `go 1.26.0`.
# v3.6.16: latest etcd 3.6 patch release on the proxy.
K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}

# Keep stdout clean: only the final directory is printed there (via fd 3).
exec 3>&1 1>&2

log() { printf '[build-kube] %s\n' "$*" >&2; }
die() { printf '[build-kube] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $K8S_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)(-[0-9A-Za-z.-]+)?$ ]] \
  || die "K8S_VERSION must look like v1.MINOR.PATCH, got '$K8S_VERSION'"
K8S_MINOR=${BASH_REMATCH[1]}
# Staging modules (k8s.io/api, k8s.io/apiserver, ...) are published as v0.X.Y.
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
[[ $ETCD_VERSION =~ ^v3\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] \
  || die "ETCD_VERSION must look like v3.MINOR.PATCH, got '$ETCD_VERSION'"

CACHE_ROOT=${AGENTCRED_CACHE:-${HOME:?HOME is not set}/.cache/agentcred}
KUBE_ROOT="$CACHE_ROOT/kube"
OUT_DIR="$KUBE_ROOT/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}"
PART=${1:-control-plane}
case $PART in
  control-plane) BINARIES=(kube-apiserver kube-controller-manager kubectl etcd) ;;
  # kube-proxy is not built: the testbed's pods reach the `kubernetes` Service through
  # the node's own DNAT rule (agentcred_testbed/node.py), as the API server is bound to
  # 127.0.0.1 and so cannot be a Service endpoint kube-proxy would route to.
  node) BINARIES=(kubelet kube-scheduler) ;;
  *) printf '[build-kube] usage: %s [control-plane|node]\n' "$0" >&2; exit 2 ;;
esac

have_all() {
  local b
  for b in "${BINARIES[@]}"; do
    [[ -x "$OUT_DIR/$b" ]] || return 1
  done
}

finish() {
  printf '%s\n' "$OUT_DIR" >&3
  exit 0
}

# Warm path: nothing to do.
if have_all; then
  finish
fi

mkdir -p "$KUBE_ROOT" || die "cannot create cache directory $KUBE_ROOT"

# Serialize concurrent builds (e.g. parallel test workers; different version
# pairs share the wrapper modules under build/). Whoever waited re-checks and
# usually takes the warm path.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$KUBE_ROOT/.build.lock"
  if ! flock -n 9; then
    log "another build-kube.sh is running; waiting for it to finish..."
    flock 9
  fi
  if have_all; then
    finish
  fi
fi

command -v go >/dev/null 2>&1 || die "'go' not found in PATH (a Go toolchain is required)"

# Hermetic-ish Go environment: host binaries, static, no workspace or user
# GOFLAGS leaking in, never auto-download a different toolchain.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GO111MODULE=on
export GOFLAGS="-mod=mod -buildvcs=false"
unset GOOS GOARCH

GO_VERSION=$(go env GOVERSION) || die "'go env GOVERSION' failed"
GO_VERSION=${GO_VERSION#go}
GO_VERSION=${GO_VERSION%% *}

# version_ge A B: true if version A >= version B (dotted numbers).
version_ge() {
  [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$2" ]]
}

BUILD_ROOT="$KUBE_ROOT/build"
mkdir -p "$BUILD_ROOT"

# mod_download MODULE@VERSION -> prints the local path of its go.mod and .info
# (one per line). Uses the go tool so GOPROXY/GONOSUMDB settings are honoured.
mod_download() {
  local scratch json gomod info
  scratch=$(mktemp -d "$BUILD_ROOT/.dl.XXXXXX")
  # Run in an empty directory so no surrounding go.mod interferes.
  if ! json=$(cd "$scratch" && go mod download -json "$1"); then
    rm -rf "$scratch"
    # With -json the reason is reported on stdout in the "Error" field.
    die "could not download $1 from the Go module proxy ($(go env GOPROXY)): $(sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")"
  fi
  rm -rf "$scratch"
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
  info=$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
  [[ -f $gomod ]] || die "go mod download $1 did not report a go.mod file"
  printf '%s\n%s\n' "$gomod" "$info"
}

# go_directive FILE -> the `go` line version of a go.mod file.
go_directive() {
  awk '$1 == "go" && NF == 2 { print $2; exit }' "$1"
}

# The .info file may carry the VCS commit ({"Origin":{"Hash":"..."}}) and
# always carries the release time.
info_field() { # FILE FIELD
  [[ -f $1 ]] || return 0
  sed -n "s/.*\"$2\": *\"\\([^\"]*\\)\".*/\\1/p" "$1" | head -n1
}

check_go() { # WHAT REQUIRED_GO_VERSION
  # Unusual toolchain versions (devel builds): let the go tool itself decide.
  [[ $GO_VERSION =~ ^[0-9]+\.[0-9]+ ]] || return 0
  local have=$GO_VERSION
  [[ $have =~ ^[0-9]+\.[0-9]+$ ]] && have+=".0"   # "1.20" means "1.20.0"
  version_ge "$have" "$2" \
    || die "$1 requires Go >= $2 but the local toolchain is go$GO_VERSION (GOTOOLCHAIN=local); install a newer Go or pick an older release"
}

START=$SECONDS
TMP_OUT=$(mktemp -d "$KUBE_ROOT/.tmp-k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}.XXXXXX")
cleanup() { rm -rf "$TMP_OUT"; }
trap cleanup EXIT

log "building ${BINARIES[*]} ($K8S_VERSION, etcd $ETCD_VERSION) with go$GO_VERSION"
log "output: $OUT_DIR"

########################################################################
# Kubernetes
########################################################################
log "fetching k8s.io/kubernetes@$K8S_VERSION (module source is large; first download takes a while)"
DL=$(mod_download "k8s.io/kubernetes@$K8S_VERSION") || exit 1
K8S_GOMOD=$(sed -n 1p <<<"$DL")
K8S_INFO=$(sed -n 2p <<<"$DL")
K8S_GO=$(go_directive "$K8S_GOMOD")
[[ -n $K8S_GO ]] || die "no 'go' directive found in $K8S_GOMOD"
check_go "k8s.io/kubernetes $K8S_VERSION" "$K8S_GO"

# Staging modules: every `k8s.io/<name> [version] => ./staging/...` replace,
# in either block or single-line form.
mapfile -t STAGING < <(
  awk '{ sub(/^[[:space:]]*replace[[:space:]]+/, "") }
       $1 ~ /^k8s\.io\// && (($2 == "=>" && $3 ~ /^\.\/staging\//) ||
                             ($3 == "=>" && $4 ~ /^\.\/staging\//)) { print $1 }' \
    "$K8S_GOMOD" | sort -u
)
(( ${#STAGING[@]} > 0 )) || die "found no './staging' replace directives in $K8S_GOMOD; recipe no longer applies"
log "k8s.io/kubernetes $K8S_VERSION: go $K8S_GO, ${#STAGING[@]} staging modules -> $STAGING_VERSION"

K8S_WRAP="$BUILD_ROOT/k8s-$K8S_VERSION"
rm -rf "$K8S_WRAP"
mkdir -p "$K8S_WRAP"
{
  echo "// Generated by agentcred scripts/build-kube.sh; safe to delete."
  echo "module agentcred.local/build/kubernetes"
  echo
  echo "go $K8S_GO"
  echo
  # Carry over kubernetes' godebug settings so runtime defaults match upstream.
  awk '/^godebug[[:space:]]*\(/ { inblk = 1; print; next }
       inblk { print; if ($0 ~ /^\)/) inblk = 0; next }
       /^godebug[[:space:]]/ { print }' "$K8S_GOMOD"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  for m in "${STAGING[@]}"; do
    printf '\t%s => %s %s\n' "$m" "$m" "$STAGING_VERSION"
  done
  echo ")"
} > "$K8S_WRAP/go.mod"

K8S_COMMIT=$(info_field "$K8S_INFO" Hash)
K8S_DATE=$(info_field "$K8S_INFO" Time)
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X '$pkg.gitVersion=$K8S_VERSION'"
  K8S_LDFLAGS+=" -X '$pkg.gitMajor=1' -X '$pkg.gitMinor=$K8S_MINOR'"
  K8S_LDFLAGS+=" -X '$pkg.gitCommit=$K8S_COMMIT' -X '$pkg.gitTreeState=clean'"
  K8S_LDFLAGS+=" -X '$pkg.buildDate=${K8S_DATE:-1970-01-01T00:00:00Z}'"
done

K8S_CMDS=()
for b in "${BINARIES[@]}"; do
  [[ $b == etcd ]] || K8S_CMDS+=("k8s.io/kubernetes/cmd/$b")
done
log "compiling ${K8S_CMDS[*]##*/} (slow on a cold cache)..."
(
  cd "$K8S_WRAP"
  # Same build tags as upstream release binaries (hack/lib/golang.sh).
  go build -trimpath -tags=selinux,notest,grpcnotrace \
    -ldflags="$K8S_LDFLAGS" -o "$TMP_OUT/" "${K8S_CMDS[@]}"
) || die "building Kubernetes $K8S_VERSION failed (wrapper module: $K8S_WRAP)"
log "kubernetes binaries done after $((SECONDS - START))s"

if [[ $PART == node ]]; then
  for b in "${BINARIES[@]}"; do
    [[ -x "$TMP_OUT/$b" ]] || die "expected binary $b was not produced"
  done
  "$TMP_OUT/kubelet" --version >&2 || die "built kubelet does not run"
  mkdir -p "$OUT_DIR"
  for b in "${BINARIES[@]}"; do
    mv -f "$TMP_OUT/$b" "$OUT_DIR/$b"   # same filesystem: each rename is atomic
  done
  log "done in $((SECONDS - START))s"
  finish
fi

########################################################################
# etcd
########################################################################
log "fetching go.etcd.io/etcd/server/v3@$ETCD_VERSION"
DL=$(mod_download "go.etcd.io/etcd/server/v3@$ETCD_VERSION") || exit 1
ETCD_GOMOD=$(sed -n 1p <<<"$DL")
ETCD_INFO=$(sed -n 2p <<<"$DL")
ETCD_GO=$(go_directive "$ETCD_GOMOD")
[[ -n $ETCD_GO ]] || die "no 'go' directive found in $ETCD_GOMOD"
check_go "etcd $ETCD_VERSION" "$ETCD_GO"
log "go.etcd.io/etcd/server/v3 $ETCD_VERSION: go $ETCD_GO"

ETCD_WRAP="$BUILD_ROOT/etcd-$ETCD_VERSION"
rm -rf "$ETCD_WRAP"
mkdir -p "$ETCD_WRAP"
cat > "$ETCD_WRAP/go.mod" <<EOF
// Generated by agentcred scripts/build-kube.sh; safe to delete.
module agentcred.local/build/etcd

go $ETCD_GO

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF

ETCD_COMMIT=$(info_field "$ETCD_INFO" Hash)
ETCD_LDFLAGS="-s -w"
if [[ -n $ETCD_COMMIT ]]; then
  ETCD_LDFLAGS+=" -X 'go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_COMMIT:0:7}'"
fi

log "compiling etcd..."
(
  cd "$ETCD_WRAP"
  go build -trimpath -ldflags="$ETCD_LDFLAGS" -o "$TMP_OUT/etcd" go.etcd.io/etcd/server/v3
) || die "building etcd $ETCD_VERSION failed (wrapper module: $ETCD_WRAP)"

########################################################################
# Verify and publish atomically
########################################################################
for b in "${BINARIES[@]}"; do
  [[ -x "$TMP_OUT/$b" ]] || die "expected binary $b was not produced"
done
"$TMP_OUT/kube-apiserver" --version >&2 || die "built kube-apiserver does not run"
"$TMP_OUT/etcd" --version >&2 || die "built etcd does not run"

chmod 0755 "$TMP_OUT"
# The folder may already hold the node's binaries (built first): add ours beside them.
if [[ -d $OUT_DIR ]]; then
  for b in "${BINARIES[@]}"; do
    mv -f "$TMP_OUT/$b" "$OUT_DIR/$b"
  done
elif ! mv -T "$TMP_OUT" "$OUT_DIR" 2>/dev/null; then
  # Lost a race against a concurrent build (only possible without flock).
  have_all || die "could not move $TMP_OUT into place at $OUT_DIR"
fi

log "done in $((SECONDS - START))s"
finish
