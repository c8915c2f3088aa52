#!/usr/bin/env bash
# Build the ecosystem tools the GitOps/monitoring tests run for real -- helm,
# promtool and argocd-lua (Argo CD's Lua health-check semantics on gopher-lua) --
# from source through the Go module proxy into ~/.cache/agentcred/tools/, the
# same way scripts/build-kube.sh builds the Kubernetes binaries: no download
# site, no Docker, nothing in the checkout.
#
# Usage: scripts/build-tools.sh [helm|promtool|argocd-lua|jaeger]...
#        (default: helm promtool argocd-lua; jaeger, the testbed's trace store, only
#        when asked: agentcred_testbed/jaeger.py asks for it)
#
# Prints the absolute path of each requested binary on stdout, one per line, in
# the order asked; progress and go tool output go to stderr. A binary that is
# already in the cache is printed at once (warm path, no go invocation).
#
# Environment:
#   HELM_VERSION, PROMETHEUS_VERSION, JAEGER_VERSION  override the pins below
#   AGENTCRED_CACHE                   cache root (default: $HOME/.cache/agentcred)
#
# Pins (exact, so a test that passed yesterday runs the same tool today):
#   * helm v4.3.1: newest Helm 4 release the proxy serves; Helm 3 reaches end of
#     security support in 2026, and a chart that works with Helm 4 (server-side
#     apply by default) also installs with Helm 3.
#   * prometheus v0.316.0 (= Prometheus 3.16.0, the module uses v0.<3><minor>.<patch>):
#     newest on the proxy; its promtool parses PromQL exactly as the server does.
#   * gopher-lua v1.1.2 + layeh.com/gopher-json 97fed8db8427 + sigs.k8s.io/yaml
#     v1.6.0: exactly what Argo CD v3.6.1's go.mod requires, so a health check
#     that passes here behaves the same in the Argo CD application controller.
#     Those pins live in tools/argocd-lua/go.mod (with go.sum); the cache key is
#     a hash of that module's files, so editing it rebuilds.
#   * jaeger v1.75.0: the `jaeger` binary of that release is Jaeger v2 (the all-in-one
#     built on the OpenTelemetry collector: OTLP receiver, in-memory storage, query
#     API). Its go.mod has a replace directive, so `go install pkg@version` refuses
#     it; it is built as the main module from the proxy's copy of its source.
#
# Cold build times (2 cores, empty Go build cache, module cache warm from the
# Kubernetes build): see README "Measured".
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v4.3.1}
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
JAEGER_VERSION=${JAEGER_VERSION:-v1.75.0}

exec 3>&1 1>&2
log() { printf '[build-tools] %s\n' "$*" >&2; }
die() { printf '[build-tools] ERROR: %s\n' "$*" >&2; exit 1; }

REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE_ROOT=${AGENTCRED_CACHE:-${HOME:?HOME is not set}/.cache/agentcred}
TOOLS_ROOT="$CACHE_ROOT/tools"

# "v0.316.0" -> "3.16.0": the version promtool reports about itself.
prom_release() {
  [[ $1 =~ ^v0\.3([0-9]{2})\.([0-9]+)$ ]] || die "PROMETHEUS_VERSION must look like v0.3MM.P, got '$1'"
  printf '3.%d.%d' "$((10#${BASH_REMATCH[1]}))" "${BASH_REMATCH[2]}"
}

lua_key() {
  local src="$REPO_ROOT/tools/argocd-lua"
  cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-12
}

# tool_dir NAME -> the versioned cache directory holding NAME.
tool_dir() {
  case $1 in
    helm) printf '%s/helm-%s' "$TOOLS_ROOT" "$HELM_VERSION" ;;
    promtool) printf '%s/promtool-%s' "$TOOLS_ROOT" "$PROMETHEUS_VERSION" ;;
    argocd-lua) printf '%s/argocd-lua-%s' "$TOOLS_ROOT" "$(lua_key)" ;;
    jaeger) printf '%s/jaeger-%s' "$TOOLS_ROOT" "$JAEGER_VERSION" ;;
    *) die "unknown tool '$1' (known: helm promtool argocd-lua jaeger)" ;;
  esac
}

go_env() {
  command -v go >/dev/null 2>&1 || die "'go' not found in PATH (scripts/bootstrap.sh installs one)"
  # Static host binaries; never fetch another toolchain; no workspace or user
  # GOFLAGS leaking in.
  export CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GO111MODULE=on GOFLAGS="-buildvcs=false"
  unset GOOS GOARCH
}

# build NAME TMPDIR: compile NAME into TMPDIR/NAME.
build() {
  local name=$1 out=$2
  case $name in
    helm)
      # `go install pkg@version` honours the module's own go.sum and needs no
      # wrapper: helm's go.mod has no replace directives.
      GOBIN="$out" go install -trimpath \
        -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
        "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
      ;;
    promtool)
      local rel
      rel=$(prom_release "$PROMETHEUS_VERSION")
      GOBIN="$out" go install -trimpath \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=$rel" \
        "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
      ;;
    argocd-lua)
      (cd "$REPO_ROOT/tools/argocd-lua" && GOFLAGS="$GOFLAGS -mod=readonly" \
        go build -trimpath -ldflags "-s -w" -o "$out/argocd-lua" .)
      ;;
    jaeger)
      # The module's source from the Go module proxy (read-only in the module cache),
      # copied and built as the main module so its replace directive applies.
      local src
      src=$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
      [[ -d $src ]] || die "could not download github.com/jaegertracing/jaeger@$JAEGER_VERSION"
      cp -r "$src/." "$out/src"
      chmod -R u+w "$out/src"
      (cd "$out/src" && GOFLAGS="$GOFLAGS -mod=mod" nice -n 10 \
        go build -trimpath -o "$out/jaeger" \
        -ldflags "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_VERSION" \
        ./cmd/jaeger)
      rm -rf "$out/src"
      ;;
  esac
  [[ -x "$out/$name" ]] || die "$name was not produced"
}

# smoke_test NAME BINARY: the freshly built binary runs and says what it is.
smoke_test() {
  case $1 in
    helm) "$2" version --short >&2 ;;
    promtool) "$2" --version >&2 ;;
    argocd-lua) printf 'return {status="Healthy", message=obj.kind}' > "$tmp/t.lua"
      printf 'kind: Smoke\n' > "$tmp/t.yaml"
      "$2" health --libs configmap --script "$tmp/t.lua" "$tmp/t.yaml" >&2
      rm -f "$tmp/t.lua" "$tmp/t.yaml" ;;
    jaeger) "$2" version >&2 ;;
  esac
}

want=("$@")
((${#want[@]})) || want=(helm promtool argocd-lua)
for name in "${want[@]}"; do tool_dir "$name" >/dev/null; done

mkdir -p "$TOOLS_ROOT"
lock_taken=
for name in "${want[@]}"; do
  dir=$(tool_dir "$name")
  if [[ ! -x "$dir/$name" ]]; then
    if [[ -z $lock_taken ]] && command -v flock >/dev/null 2>&1; then
      # Serialise concurrent builds (parallel sessions or test workers); whoever
      # waited re-checks below and usually finds the binary in place.
      exec 9>"$TOOLS_ROOT/.build.lock"
      flock -n 9 || { log "another build-tools.sh is running; waiting..."; flock 9; }
      lock_taken=1
    fi
  fi
  if [[ ! -x "$dir/$name" ]]; then
    go_env
    start=$SECONDS
    log "building $name into $dir (cold: several minutes on 2 cores)"
    tmp=$(mktemp -d "$TOOLS_ROOT/.tmp-$name.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    build "$name" "$tmp"
    smoke_test "$name" "$tmp/$name" || die "built $name does not run"
    rm -rf "$dir"
    chmod 0755 "$tmp"
    mv -T "$tmp" "$dir"
    trap - EXIT
    log "$name done in $((SECONDS - start))s"
  fi
  printf '%s\n' "$dir/$name" >&3
done
