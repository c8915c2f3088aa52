"""Container images for the testbed node, built here without a registry or a Docker engine.

No image registry is reachable from these machines, so every image the node runs is
built locally from what the package registries serve, and cached as a docker-archive
tarball under ``~/.cache/agentcred/images/`` named after a hash of its inputs (rebuilt
only when an input changes; a warm start only imports the tarballs into containerd):

* ``base``: Debian bookworm with Python 3.11 (``python3``, ``python3-venv``,
  ``python-is-python3``, ``ca-certificates``), made by ``mmdebstrap`` from Debian's
  packages. It stands in for ``python:3.11-slim``: the Dockerfile takes its base image
  as the ``PYTHON_IMAGE`` build argument.
* ``pause``: the pod sandbox, compiled (static, with gcc) from ``build/pause/linux/pause.c``
  of the same ``k8s.io/kubernetes`` module source the Kubernetes build downloaded.
* ``operator``: the project's own ``Dockerfile``, built by ``buildah bud`` on ``base``.
  The build context is what the Dockerfile copies (``pyproject.toml``, ``README*``,
  ``operator/``): the testbed and the tests are not in the package, so not in the image.
  ``pip install`` inside the build reaches PyPI with this machine's pip configuration and
  CA bundle mounted read-only for the build only (nothing of it lands in the image).
* ``workload``: Debian with ``psql`` (``postgresql-client``), for the pods that consume
  the generated Secrets the way users' pods do.

buildah keeps its storage in the cache folder and runs in a private mount namespace
(``unshare -m``), so none of its overlay mounts outlives a build.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agentcred_testbed import procs
from agentcred_testbed.procs import TestbedError

REPO = Path(__file__).resolve().parents[1]
REGISTRY = "localhost/agentcred"
# Bump to rebuild every image when this recipe changes in a way the inputs do not show.
RECIPE = "1"
SUITE = "bookworm"
DEBIAN_SOURCES = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
WORKLOAD_PACKAGES = ("postgresql-client", "ca-certificates")
# The host's pip settings and CA bundle, mounted read-only into the Dockerfile's RUN steps.
PIP_BUILD_MOUNTS = ("/etc/pip.conf", "/etc/ssl/certs/ca-certificates.crt")
# What the Dockerfile copies into its build context (everything else is .dockerignored).
OPERATOR_INPUTS = ("Dockerfile", "pyproject.toml", "README.md", "operator")
# What examples/chat-sessions/Dockerfile copies (its context is the repository root).
CHAT_SESSIONS_INPUTS = (
    "client/pyproject.toml",
    "client/README.md",
    "client/agentcred_client",
    "examples/chat-sessions/Dockerfile",
    "examples/chat-sessions/requirements.txt",
    "examples/chat-sessions/chat_service.py",
)
PAUSE_VERSION = "3.10.2"  # build/pause/Makefile's TAG for this Kubernetes release


@dataclass(frozen=True)
class Image:
    """One built image: its reference inside containerd and the tarball that holds it."""

    name: str
    ref: str
    archive: Path


def images_dir() -> Path:
    path = procs.cache_dir() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(parts: Iterable[bytes]) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(hashlib.sha256(part).digest())
    return hasher.hexdigest()[:16]


def _tree_bytes(root: Path, names: Iterable[str]) -> Iterator[bytes]:
    """Every file under ``names`` (relative to ``root``), path and content, in a stable order."""
    for name in names:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc" or not file.exists():
                continue
            yield str(file.relative_to(root)).encode()
            yield file.read_bytes()


@contextmanager
def _locked() -> Iterator[None]:
    """One build at a time on this machine (testbeds of several checkouts share the cache)."""
    with (images_dir() / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], what: str, *, log: Path, cwd: Path | None = None) -> None:
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(cwd) if cwd else None,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise TestbedError(f"building {what} failed (exit {result.returncode}); log {log}:\n{tail}")


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise TestbedError(
            f"{', '.join(missing)} not found: the node testbed needs Debian's mmdebstrap, "
            "buildah and gcc (scripts/bootstrap.sh installs them with NODE=1 or for make test)"
        )


def _buildah(script: str, what: str, log: Path) -> None:
    """Run a bash script of buildah commands against the cache's storage, in a private
    mount namespace (its overlay mounts vanish with it)."""
    storage = images_dir() / "buildah"
    prelude = (
        "set -euo pipefail\n"
        f"B='buildah --root {storage}/root --runroot {storage}/run --storage-driver overlay'\n"
    )
    _run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", prelude + script],
        what,
        log=log,
    )


def _mmdebstrap(packages: tuple[str, ...], out: Path, log: Path) -> None:
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        # The mirror serves a snapshot whose Release files are past their Valid-Until.
        '--aptopt=Acquire::Check-Valid-Until "false"',
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        SUITE,
        str(out),
        *DEBIAN_SOURCES,
    ]
    _run(["unshare", "--mount", "--propagation", "private", *argv], f"rootfs {out.name}", log=log)


def _from_rootfs(
    name: str, ref: str, rootfs_tar: Path, archive: Path, config: str, log: Path
) -> None:
    _buildah(
        f"""
c=$($B from scratch)
$B add $c {rootfs_tar} /
$B config {config} $c
$B commit --rm $c {ref}
rm -f {archive}.tmp
$B push {ref} docker-archive:{archive}.tmp:{ref}
mv {archive}.tmp {archive}
""",
        name,
        log,
    )


def _debian_image(name: str, packages: tuple[str, ...], config: str, log: Path) -> Image:
    tag = _digest(
        [RECIPE.encode(), SUITE.encode(), *(p.encode() for p in packages), config.encode()]
    )
    ref = f"{REGISTRY}/{name}:{tag}"
    archive = images_dir() / f"{name}-{tag}.tar"
    if archive.exists():
        return Image(name, ref, archive)
    _need("mmdebstrap", "buildah")
    rootfs = images_dir() / f"{name}-{tag}.rootfs.tar"
    _mmdebstrap(packages, rootfs, log)
    try:
        _from_rootfs(name, ref, rootfs, archive, config, log)
    finally:
        rootfs.unlink(missing_ok=True)
    return Image(name, ref, archive)


def base(log: Path) -> Image:
    return _debian_image("base", BASE_PACKAGES, "--env LANG=C.UTF-8 --cmd '[\"python3\"]'", log)


def workload(log: Path) -> Image:
    return _debian_image(
        "workload",
        WORKLOAD_PACKAGES,
        "--env LANG=C.UTF-8 --cmd '[\"/bin/sh\"]' --user 1000:1000",
        log,
    )


def kubernetes_source(k8s_version: str) -> Path:
    """The ``k8s.io/kubernetes`` module source that scripts/build-kube.sh downloaded."""
    gomodcache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=False
    ).stdout.strip()
    source = Path(gomodcache) / f"k8s.io/kubernetes@{k8s_version}"
    if not (source / "build" / "pause" / "linux" / "pause.c").exists():
        subprocess.run(
            ["go", "mod", "download", f"k8s.io/kubernetes@{k8s_version}"],
            cwd=str(images_dir()),
            capture_output=True,
            check=False,
            env={**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"},
        )
    if not (source / "build" / "pause" / "linux" / "pause.c").exists():
        raise TestbedError(f"no build/pause/linux/pause.c in {source} (go mod download failed?)")
    return source


def pause(k8s_version: str, log: Path) -> Image:
    source = kubernetes_source(k8s_version) / "build" / "pause" / "linux" / "pause.c"
    tag = _digest([RECIPE.encode(), k8s_version.encode(), source.read_bytes()])
    ref = f"{REGISTRY}/pause:{PAUSE_VERSION}-{tag}"
    archive = images_dir() / f"pause-{tag}.tar"
    if archive.exists():
        return Image("pause", ref, archive)
    _need("gcc", "buildah")
    work = images_dir() / f"pause-{tag}.build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        binary = work / "pause"
        _run(
            [
                "gcc",
                "-Os",
                "-Wall",
                "-Werror",
                "-static",
                f"-DVERSION=v{PAUSE_VERSION}-agentcred",
                "-o",
                str(binary),
                str(source),
            ],
            "pause",
            log=log,
        )
        _buildah(
            f"""
c=$($B from scratch)
$B copy $c {binary} /pause
$B config --entrypoint '["/pause"]' --user 65535:65535 $c
$B commit --rm $c {ref}
rm -f {archive}.tmp
$B push {ref} docker-archive:{archive}.tmp:{ref}
mv {archive}.tmp {archive}
""",
            "pause",
            log,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Image("pause", ref, archive)


def _bud(
    what: str,
    ref: str,
    archive: Path,
    context: Path,
    dockerfile: Path,
    base_image: Image,
    log: Path,
) -> None:
    """``buildah bud`` of ``dockerfile`` on ``base_image`` (its PYTHON_IMAGE build argument),
    pushed to ``archive``; pip inside the build uses this machine's pip settings."""
    mounts = " ".join(f"-v {m}:{m}:ro" for m in PIP_BUILD_MOUNTS if Path(m).exists())
    _buildah(
        f"""
$B pull docker-archive:{base_image.archive} >/dev/null
$B bud --isolation chroot --network=host --pull=never {mounts} \\
  --build-arg PYTHON_IMAGE={base_image.ref} -t {ref} -f {dockerfile} {context}
rm -f {archive}.tmp
$B push {ref} docker-archive:{archive}.tmp:{ref}
mv {archive}.tmp {archive}
$B rmi {ref} >/dev/null || true
""",
        what,
        log,
    )


def _copy_inputs(context: Path, inputs: Iterable[str]) -> None:
    for name in inputs:
        source, target = REPO / name, context / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)


def operator(base_image: Image, log: Path) -> Image:
    """The project's Dockerfile, on ``base_image`` (its PYTHON_IMAGE build argument)."""
    tag = _digest([RECIPE.encode(), base_image.ref.encode(), *_tree_bytes(REPO, OPERATOR_INPUTS)])
    ref = f"{REGISTRY}/operator:{tag}"
    archive = images_dir() / f"operator-{tag}.tar"
    if archive.exists():
        return Image("operator", ref, archive)
    _need("buildah")
    context = images_dir() / f"operator-{tag}.context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir()
    try:
        _copy_inputs(context, OPERATOR_INPUTS)
        _bud("operator", ref, archive, context, context / "Dockerfile", base_image, log)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return Image("operator", ref, archive)


def chat_sessions(base_image: Image, log: Path) -> Image:
    """The chat-sessions example service (examples/chat-sessions/Dockerfile, whose build
    context is the repository root: it copies the client library and the service)."""
    files = _tree_bytes(REPO, CHAT_SESSIONS_INPUTS)
    tag = _digest([RECIPE.encode(), base_image.ref.encode(), *files])
    ref = f"{REGISTRY}/chat-sessions:{tag}"
    archive = images_dir() / f"chat-sessions-{tag}.tar"
    if archive.exists():
        return Image("chat-sessions", ref, archive)
    _need("buildah")
    context = images_dir() / f"chat-sessions-{tag}.context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir()
    try:
        _copy_inputs(context, CHAT_SESSIONS_INPUTS)
        dockerfile = context / "examples" / "chat-sessions" / "Dockerfile"
        _bud("chat-sessions", ref, archive, context, dockerfile, base_image, log)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return Image("chat-sessions", ref, archive)


def build_all(k8s_version: str, log: Path, say: Callable[[str], None] = print) -> dict[str, Image]:
    """Every image the node needs, from cache or built now."""
    with _locked():
        started = time.monotonic()
        built: dict[str, Image] = {}
        built["pause"] = pause(k8s_version, log)
        built["base"] = base(log)
        built["operator"] = operator(built["base"], log)
        built["workload"] = workload(log)
        say(f"images ready in {time.monotonic() - started:.1f}s ({images_dir()})")
        return built


# Images the node does not start with, built (cached) and imported when first needed.
EXTRA: dict[str, Callable[[Image, Path], Image]] = {"chat-sessions": chat_sessions}


def build_extra(name: str, log: Path, say: Callable[[str], None] = print) -> Image:
    """One of ``EXTRA``, from cache or built now, on the cached ``base`` image."""
    with _locked():
        started = time.monotonic()
        image = EXTRA[name](base(log), log)
        say(f"image {name} ready in {time.monotonic() - started:.1f}s")
        return image
