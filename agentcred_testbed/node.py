"""A real node for the testbed: containerd + runc + CNI bridge, kubelet, kube-scheduler.

Opt-in (``make dev NODE=1``, and the e2e suites under ``tests/e2e/node/`` start it
themselves) because it takes root, cgroups and a network bridge, where the rest of the
testbed is plain processes on 127.0.0.1. What runs, all recorded by PID:

* **containerd** (Debian's 1.6; kubelet 1.36 still accepts a runtime without the
  ``RuntimeConfig`` call and falls back to the configured cgroup driver) with **runc** and
  Debian's **CNI plugins**, every path (root, state, socket, runc root, CNI config and
  IPAM data, netns mounts) inside the state folder. It runs in its own *mount namespace*
  (``unshare -m``, private propagation), and so do the kubelet (``nsenter``) and every shim:
  each overlay, tmpfs (Secret volumes), shm and netns mount of the node lives in that
  namespace and vanishes with its last process. Nothing is mounted on the host.
* **kubelet**, configured below, each setting explained.
* **kube-scheduler**, and a second **kube-controller-manager** running only the workload
  controllers a node needs (node lifecycle, Deployments, ReplicaSets, Jobs, disruption
  budgets, pod GC, the ``kube-root-ca.crt`` publisher that projected ServiceAccount
  volumes read). The base testbed's controller manager keeps its own three controllers.
  Both, and the kubelet, use the testbed's admin kubeconfig, as the base controller
  manager does (a testbed shortcut: a real node has its own ``system:node`` identity).

The node registers **tainted** ``agentcred.io/testbed-node:NoSchedule``: pods that other
suites create without a node (and whose phase they set by hand) stay unscheduled; the pods
of the node suites and the testbed overlay's operator tolerate it. ``make dev NODE=1``
takes the taint off (``set_taint``: a newcomer's own pods run there) and a test run puts
it back on for its duration (``taint_as``, tests/conftest.py).

**Network.** Pods get their own network namespaces on a bridge (``acn<id>``,
``10.244.<n>.0/24``, a /24 no route on this machine uses yet). The testbed's servers
listen on 127.0.0.1 only; pods reach them through the bridge's address (the "host IP"
of the node, exported as ``NODE_HOST_IP``) by DNAT to 127.0.0.1, for exactly the
testbed's own ports (API server, OpenBao, PostgreSQL, moto, drongo), with
``route_localnet`` on the bridge alone, and from 127.0.0.1 (SNAT), so that the servers
see the loopback clients they were configured for (PostgreSQL's pg_hba.conf admits
127.0.0.1 only). The ``kubernetes`` Service IP (10.0.0.1:443) is
DNATed to the API server the same way, instead of kube-proxy: a Service endpoint may not
be a loopback address. One nftables table of our own (``agentcred_<id>``) holds these
rules plus two guards: pods may reach nothing else on the host (but answer the kubelet's
probes and the host's own connections), and nothing they send is
forwarded off the machine (``ip_forward`` is left as found; the bridge plugin's
``isGateway`` is off so it does not turn it on). ``down`` deletes the table and bridge.

**Kernel settings.** Sessions here are root in a container with cgroup v1, no swap and
without ``CAP_SYS_RESOURCE``; the kubelet and containerd are configured for that, and the
kubelet is kept from retuning the shared machine's kernel (see ``KERNEL_VIEW`` and
``kubelet_config``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from agentcred_testbed import images, kube, procs
from agentcred_testbed.procs import StateDir, TestbedError

NAMES = ("kubelet", "kube-scheduler", "kube-controller-manager-workloads", "containerd")
NODE_NAME = "agentcred-node"
TAINT_KEY = "agentcred.io/testbed-node"
SERVICE_IP = "10.0.0.1"  # first address of the apiserver's --service-cluster-ip-range
OPERATOR_IMAGE = "localhost/agentcred/operator:testbed"  # manifests/overlays/testbed
WORKLOAD_IMAGE = "localhost/agentcred/workload:testbed"
# Images built and imported only when asked for (images.EXTRA, add_image).
EXTRA_IMAGES = {"chat-sessions": "localhost/agentcred/chat-sessions:testbed"}
JAEGER_OTLP = "JAEGER_OTLP_ENDPOINT"  # jaeger.OTLP_ENDPOINT: pods reach it too
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
CGROUP_V1 = (
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "systemd",
    "unified",
)
WORKLOAD_CONTROLLERS = ",".join(
    (
        "node-lifecycle-controller",  # lifts the not-ready taint new nodes start with
        "deployment-controller",
        "replicaset-controller",
        "job-controller",
        "disruption-controller",
        "pod-garbage-collector-controller",
        "ttl-after-finished-controller",
        "root-ca-certificate-publisher-controller",
    )
)
# The kernel settings the kubelet insists on (container_manager_linux.go
# setupKernelTunables): with protectKernelDefaults it refuses to start unless they hold,
# without it it *writes* them: kernel.panic_on_oops=1 and vm.overcommit_memory=1 on a
# machine shared with other sessions. Neither is acceptable, so the node's mount namespace
# sees these values in bind-mounted files over /proc/sys (the host's stay untouched).
KERNEL_VIEW = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
}


def wanted() -> bool:
    """``NODE=1`` (``make dev NODE=1``) or ``AGENTCRED_TESTBED_NODE=1``."""
    return any(
        os.environ.get(v, "") in {"1", "true", "yes"} for v in ("NODE", "AGENTCRED_TESTBED_NODE")
    )


def _node_id(state: StateDir) -> str:
    return hashlib.sha256(str(state.root.resolve()).encode()).hexdigest()[:6]


def _folder(state: StateDir) -> Path:
    return state.data("node")


def _layout_file(state: StateDir) -> Path:
    return _folder(state) / "layout.json"


def _need_tools() -> None:
    tools = (
        "containerd",
        "containerd-shim-runc-v2",
        "runc",
        "ctr",
        "nft",
        "ip",
        "unshare",
        "nsenter",
    )
    missing = [t for t in tools if shutil.which(t) is None]
    if not any(Path(d, "bridge").exists() for d in CNI_BIN_DIRS):
        missing.append("CNI plugins (containernetworking-plugins)")
    if missing:
        raise TestbedError(
            f"the testbed node needs {', '.join(missing)}: Debian's containerd, runc, "
            "containernetworking-plugins and nftables (scripts/bootstrap.sh installs them)"
        )


def _node_binaries(bins: Path) -> Path:
    if all(os.access(bins / b, os.X_OK) for b in ("kubelet", "kube-scheduler")):
        return bins
    env = dict(os.environ, AGENTCRED_CACHE=str(procs.cache_dir()))
    result = subprocess.run(
        ["bash", str(kube.BUILD_SCRIPT), "node"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise TestbedError(f"{kube.BUILD_SCRIPT} node failed (exit {result.returncode})")
    return Path(lines[-1])


def _k8s_version(bins: Path) -> str:
    out = subprocess.run(
        [str(bins / "kubelet"), "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"v1\.\d+\.\d+", out)
    if not match:
        raise TestbedError(f"cannot tell the kubelet's version from {out!r}")
    return match.group()


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.244.<n>.0/24 that no route on this machine covers yet (other testbeds' nodes)."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show"], capture_output=True, text=True, check=False
    )
    used = []
    for line in routes.stdout.splitlines():
        first = line.split()[0] if line.split() else ""
        with contextlib.suppress(ValueError):
            if first != "default":
                used.append(ipaddress.ip_network(first, strict=False))
    for n in range(100, 250):
        subnet = ipaddress.IPv4Network(f"10.244.{n}.0/24")
        if not any(subnet.overlaps(u) for u in used):
            return subnet
    raise TestbedError("no free 10.244.<n>.0/24 for the node's pod network")


def _run(argv: list[str], what: str, *, input_text: str | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, input=input_text)
    if result.returncode != 0:
        raise TestbedError(f"{what}: {' '.join(argv[:4])} failed: {result.stderr.strip()[:500]}")
    return result.stdout


def _nft_rules(
    table: str, bridge: str, gateway: str, api_port: int, host_ports: list[int], kubelet_port: int
) -> str:
    ports = ", ".join(str(p) for p in sorted(set(host_ports)))
    return f"""
table ip {table} {{
  chain prerouting {{
    type nat hook prerouting priority -100; policy accept;
    iifname "{bridge}" ip daddr {SERVICE_IP} tcp dport 443 dnat to 127.0.0.1:{api_port}
    iifname "{bridge}" ip daddr {gateway} tcp dport {{ {ports} }} dnat to 127.0.0.1
  }}
  chain from_pods {{
    type nat hook input priority 100; policy accept;
    iifname "{bridge}" ct status dnat snat to 127.0.0.1
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    ip daddr {gateway} tcp dport {kubelet_port} dnat to 127.0.0.1:{kubelet_port}
  }}
  chain input {{
    type filter hook input priority 0; policy accept;
    iifname "{bridge}" ct state established,related accept
    iifname "{bridge}" ct status dnat accept
    iifname "{bridge}" drop
  }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    iifname "{bridge}" oifname != "{bridge}" drop
  }}
}}
"""


def _port_of(url: str) -> int | None:
    match = re.search(r":(\d+)(/|$)", url)
    return int(match.group(1)) if match else None


def _network_up(state: StateDir, env: dict[str, str], kubelet_port: int) -> dict[str, Any]:
    node_id = _node_id(state)
    bridge, table = f"acn{node_id}", f"agentcred_{node_id}"
    _network_down({"bridge": bridge, "table": table})  # leftovers of a crashed run
    subnet = _free_subnet()
    gateway = str(next(subnet.hosts()))
    _run(["ip", "link", "add", bridge, "type", "bridge"], "bridge")
    _run(["ip", "addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge], "bridge address")
    _run(["ip", "link", "set", bridge, "up"], "bridge up")
    # Let DNATed packets from this bridge (and only this one) reach 127.0.0.1.
    Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").write_text("1")
    api_port = _port_of(env["KUBE_API_SERVER"]) or 443
    host_ports = [api_port, int(env["PGPORT"])]
    for var in ("VAULT_ADDR", "AWS_ENDPOINT_URL", "GCP_SECRET_MANAGER_ENDPOINT", JAEGER_OTLP):
        port = _port_of(env.get(var, ""))
        if port:
            host_ports.append(port)
    _run(
        ["nft", "-f", "-"],
        "nftables rules",
        input_text=_nft_rules(table, bridge, gateway, api_port, host_ports, kubelet_port),
    )
    return {"bridge": bridge, "table": table, "subnet": str(subnet), "gateway": gateway}


def _network_down(layout: dict[str, Any]) -> None:
    if layout.get("table"):
        subprocess.run(
            ["nft", "delete", "table", "ip", layout["table"]], capture_output=True, check=False
        )
    if layout.get("bridge"):
        subprocess.run(["ip", "link", "delete", layout["bridge"]], capture_output=True, check=False)


def _cgroups_up(name: str) -> None:
    """The node's cgroup root (kubelet's ``cgroupRoot``) in every v1 hierarchy, so two
    testbeds on one machine never share ``/kubepods``."""
    for controller in CGROUP_V1:
        base = Path("/sys/fs/cgroup") / controller
        if base.is_dir():
            (base / name).mkdir(exist_ok=True)
    cpuset = Path("/sys/fs/cgroup/cpuset")
    if cpuset.is_dir():  # a v1 cpuset child starts empty and would admit no process
        for knob in ("cpuset.cpus", "cpuset.mems"):
            (cpuset / name / knob).write_text((cpuset / knob).read_text())


def _cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for controller in CGROUP_V1:
        root = Path("/sys/fs/cgroup") / controller / name
        if root.is_dir():
            for procs_file in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    pids.update(int(p) for p in procs_file.read_text().split())
    return pids


def _cgroups_down(name: str) -> None:
    for controller in CGROUP_V1:
        root = Path("/sys/fs/cgroup") / controller / name
        if not root.is_dir():
            continue
        for folder in sorted(
            (p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
        ):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


def _containerd_config(folder: Path, layout: dict[str, Any], pause_ref: str) -> Path:
    cni_bin = next(d for d in CNI_BIN_DIRS if Path(d, "bridge").exists())
    conf_dir = folder / "cni"
    conf_dir.mkdir(exist_ok=True)
    subnet = ipaddress.ip_network(layout["subnet"])
    conflist = {
        "cniVersion": "1.0.0",
        "name": "agentcred-testbed",
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout["bridge"],
                # The bridge already has the gateway address (node.py made it); isGateway
                # would also switch on ip_forward for the whole machine, which pods need not.
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(folder / "ipam"),
                    "ranges": [
                        [
                            {
                                "subnet": str(subnet),
                                "rangeStart": str(subnet[10]),
                                "gateway": layout["gateway"],
                            }
                        ]
                    ],
                    "routes": [{"dst": "0.0.0.0/0", "gw": layout["gateway"]}],
                },
            },
            {"type": "loopback"},
        ],
    }
    (conf_dir / "10-agentcred.conflist").write_text(json.dumps(conflist, indent=2))
    config = f"""# containerd for the agentcred testbed node (agentcred_testbed/node.py).
version = 2
root = "{folder}/containerd/root"
state = "{folder}/containerd/state"
[grpc]
  address = "{folder}/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_ref}"
  # Pod netns mounts in the state folder, not /run/netns: nothing shows in `ip netns`.
  netns_mounts_under_state_dir = true
  # Sessions here lack CAP_SYS_RESOURCE: a negative oom_score_adj (the sandbox's -998)
  # cannot be set, so clamp scores at containerd's own (0), as for rootless containerd.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{conf_dir}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroup v1 here and no systemd as PID 1: the cgroupfs driver (kubelet matches).
        SystemdCgroup = false
        Root = "{folder}/containerd/runc"
"""
    path = folder / "containerd.toml"
    path.write_text(config)
    return path


def kubelet_config(
    folder: Path, layout: dict[str, Any], port: int, healthz_port: int, ca_file: str
) -> dict[str, Any]:
    """The KubeletConfiguration, one reason per setting that differs from the defaults."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # These machines run cgroup v1 (hybrid: /sys/fs/cgroup is tmpfs with v1
        # controllers). Kubelet 1.35+ refuses v1 unless told otherwise.
        "failCgroupV1": False,
        # No systemd as PID 1: cgroups are managed by writing cgroupfs (containerd too).
        "cgroupDriver": "cgroupfs",
        # Our own subtree, so this node never touches /kubepods of another node.
        "cgroupRoot": f"/{layout['cgroup']}",
        # The swap check is for real hosts; containers here report no swap anyway, and
        # refusing to start over it would be the wrong failure for a testbed.
        "failSwapOn": False,
        "memorySwap": {"swapBehavior": "NoSwap"},
        # Listen on 127.0.0.1 only (the apiserver reaches it through a DNAT of the
        # node's address, see _nft_rules); no read-only port.
        "address": "127.0.0.1",
        "port": port,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": ca_file},
        },
        # Only holders of a client certificate of the testbed CA get this far (the
        # apiserver and the admin); a real node would use Webhook authorization.
        "authorization": {"mode": "AlwaysAllow"},
        # Refuse (rather than write) the kernel's panic/overcommit settings; the node's
        # mount namespace shows the values it wants (KERNEL_VIEW).
        "protectKernelDefaults": True,
        # Never add KUBE-FIREWALL/KUBE-KUBELET-CANARY chains to the machine's iptables.
        "makeIPTablesUtilChains": False,
        "podLogsDir": str(folder / "pod-logs"),
        # No DNS for pods: nothing they need has a name, and the machine's resolver
        # is not reachable from the bridge.
        "resolvConf": "",
        # Images are imported, never pulled, and must not be garbage-collected.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        # Evict only in a real emergency: the disk is shared with other checkouts.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        # Secret volumes follow a changed Secret within seconds (the rotation test).
        "syncFrequency": "10s",
        "configMapAndSecretChangeDetectionStrategy": "Watch",
        "nodeStatusUpdateFrequency": "5s",
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "containerRuntimeEndpoint": f"unix://{folder}/containerd.sock",
        "shutdownGracePeriod": "0s",
    }


def _mask_script(folder: Path) -> str:
    """Shell lines that bind files with the kubelet's wanted values over /proc/sys."""
    view = folder / "kernel-view"
    view.mkdir(exist_ok=True)
    lines = []
    for key, value in KERNEL_VIEW.items():
        file = view / key.replace("/", "_")
        file.write_text(value + "\n")
        lines.append(f"mount --bind {file} /proc/sys/{key}")
    return "; ".join(lines)


def _wait_socket(state: StateDir, sock: Path) -> None:
    def ready() -> bool:
        if not sock.exists():
            return False
        return (
            subprocess.run(
                ["ctr", "-a", str(sock), "version"], capture_output=True, check=False
            ).returncode
            == 0
        )

    procs.wait_until(state, "containerd", ready, timeout=60, what="serving")


def _import(sock: Path, image: images.Image, alias: str | None) -> None:
    ctr = ["ctr", "-a", str(sock), "-n", "k8s.io"]
    _run([*ctr, "images", "import", str(image.archive)], f"import {image.name}")
    if alias:
        _run([*ctr, "images", "tag", "--force", image.ref, alias], f"tag {image.name}")


def _kubectl(env: dict[str, str], *args: str, input_text: str | None = None) -> str:
    return _run(
        [env["KUBECTL"], "--kubeconfig", env["KUBECONFIG"], *args],
        "kubectl " + args[0],
        input_text=input_text,
    )


def _wait_node_ready(state: StateDir, env: dict[str, str], timeout: float = 120) -> None:
    def ready() -> bool:
        result = subprocess.run(
            [
                env["KUBECTL"],
                "--kubeconfig",
                env["KUBECONFIG"],
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip() == "True"

    procs.wait_until(state, "kubelet", ready, timeout=timeout, what="Ready")


def up(state: StateDir, env: dict[str, str], log: Any = print) -> dict[str, str]:
    """Start the node on a running testbed (``env``: its exported variables)."""
    _need_tools()
    down(state)
    folder = _folder(state)
    # Pod logs outlive the node (``down`` keeps them to read); a new node starts without.
    shutil.rmtree(folder / "pod-logs", ignore_errors=True)
    started = time.monotonic()
    bins = _node_binaries(Path(env["KUBEBUILDER_ASSETS"]))
    version = _k8s_version(bins)
    built = images.build_all(version, state.logs / "images.log", say=log)
    log(f"node: images in {time.monotonic() - started:.1f}s")
    kubelet_port, healthz_port = procs.free_port(), procs.free_port()
    scheduler_port, kcm_port = procs.free_port(), procs.free_port()
    layout = _network_up(state, env, kubelet_port)
    layout["cgroup"] = f"agentcred-{_node_id(state)}"
    _layout_file(state).write_text(json.dumps(layout))
    _cgroups_up(layout["cgroup"])
    config = _containerd_config(folder, layout, built["pause"].ref)
    sock = folder / "containerd.sock"
    procs.start(
        state,
        "containerd",
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            f"{_mask_script(folder)}; exec containerd --config {config}",
        ],
    )
    _wait_socket(state, sock)
    pid = procs.pid_of(state, "containerd")
    layout["mntns"] = os.readlink(f"/proc/{pid}/ns/mnt")
    _layout_file(state).write_text(json.dumps(layout))
    for name, image in built.items():
        alias = {"operator": OPERATOR_IMAGE, "workload": WORKLOAD_IMAGE}.get(name)
        _import(sock, image, alias)
    layout["operator_ref"] = built["operator"].ref
    _layout_file(state).write_text(json.dumps(layout))
    log(f"node: containerd up, images imported after {time.monotonic() - started:.1f}s")
    kubelet_yaml = folder / "kubelet.yaml"
    kubelet_yaml.write_text(
        yaml.safe_dump(
            kubelet_config(folder, layout, kubelet_port, healthz_port, env["KUBE_CA_FILE"])
        )
    )
    procs.start(
        state,
        "kubelet",
        [
            "nsenter",
            f"--mount=/proc/{pid}/ns/mnt",
            "--",
            str(bins / "kubelet"),
            f"--config={kubelet_yaml}",
            f"--kubeconfig={env['KUBECONFIG']}",
            f"--root-dir={folder / 'kubelet'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={layout['gateway']}",
            "--v=1",
        ],
    )
    procs.start(
        state,
        "kube-scheduler",
        [
            str(bins / "kube-scheduler"),
            f"--kubeconfig={env['KUBECONFIG']}",
            f"--authentication-kubeconfig={env['KUBECONFIG']}",
            f"--authorization-kubeconfig={env['KUBECONFIG']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={scheduler_port}",
            "--leader-elect=false",
        ],
    )
    pki = Path(env["KUBE_CA_FILE"]).parent
    procs.start(
        state,
        "kube-controller-manager-workloads",
        [
            str(bins / "kube-controller-manager"),
            f"--kubeconfig={env['KUBECONFIG']}",
            f"--authentication-kubeconfig={env['KUBECONFIG']}",
            f"--authorization-kubeconfig={env['KUBECONFIG']}",
            f"--controllers={WORKLOAD_CONTROLLERS}",
            "--bind-address=127.0.0.1",
            f"--secure-port={kcm_port}",
            f"--cert-dir={state.data('kcm-workloads-certs')}",
            "--leader-elect=false",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=false",
        ],
    )
    for name, port in (
        ("kube-scheduler", scheduler_port),
        ("kube-controller-manager-workloads", kcm_port),
    ):
        procs.wait_until(
            state, name, functools.partial(procs.port_open, port), timeout=90, what="serving"
        )
    _wait_node_ready(state, env)
    log(f"node: {NODE_NAME} Ready after {time.monotonic() - started:.1f}s")
    vault_port = _port_of(env.get("VAULT_ADDR", ""))
    jaeger_port = _port_of(env.get(JAEGER_OTLP, ""))
    traces = {"NODE_JAEGER_OTLP_ENDPOINT": f"http://{layout['gateway']}:{jaeger_port}"}
    return {
        **(traces if jaeger_port else {}),
        "NODE_NAME": NODE_NAME,
        "NODE_HOST_IP": layout["gateway"],
        "NODE_VAULT_ADDR": f"http://{layout['gateway']}:{vault_port}",
        "NODE_POD_LOGS": str(folder / "pod-logs"),
        "NODE_TAINT_KEY": TAINT_KEY,
        "NODE_OPERATOR_IMAGE": OPERATOR_IMAGE,
        "NODE_WORKLOAD_IMAGE": WORKLOAD_IMAGE,
    }


def refresh_images(state: StateDir, env: dict[str, str], log: Any = print) -> bool:
    """On a running node: rebuild what changed and import it; True if the operator image
    behind ``OPERATOR_IMAGE`` is new (its Deployment must then be restarted)."""
    layout = json.loads(_layout_file(state).read_text())
    bins = _node_binaries(Path(env["KUBEBUILDER_ASSETS"]))
    built = images.build_all(_k8s_version(bins), state.logs / "images.log", say=log)
    if built["operator"].ref == layout.get("operator_ref"):
        return False
    sock = _folder(state) / "containerd.sock"
    for name in ("operator", "workload"):
        alias = {"operator": OPERATOR_IMAGE, "workload": WORKLOAD_IMAGE}[name]
        _import(sock, built[name], alias)
    layout["operator_ref"] = built["operator"].ref
    _layout_file(state).write_text(json.dumps(layout))
    return True


def add_image(state: StateDir, env: dict[str, str], name: str, log: Any = print) -> bool:
    """Build (cached) and import one of ``EXTRA_IMAGES`` into the running node, tagged with
    its ``:testbed`` name; True if the node did not hold this build yet (a Deployment
    running the old one must then be restarted)."""
    layout = json.loads(_layout_file(state).read_text())
    image = images.build_extra(name, state.logs / "images.log", say=log)
    key = f"{name}_ref"
    if layout.get(key) == image.ref:
        return False
    _import(_folder(state) / "containerd.sock", image, EXTRA_IMAGES[name])
    layout[key] = image.ref
    _layout_file(state).write_text(json.dumps(layout))
    return True


def tainted(env: dict[str, str]) -> bool:
    """Whether the node carries its ``NoSchedule`` taint now."""
    out = _kubectl(env, "get", "node", NODE_NAME, "-o", "json")
    taints = json.loads(out).get("spec", {}).get("taints") or []
    return any(t.get("key") == TAINT_KEY for t in taints)


def set_taint(env: dict[str, str], on: bool) -> bool:
    """Put the node's taint on (only pods tolerating it are scheduled: the test suites'
    node-less pods stay Pending) or take it off (``make dev NODE=1``: a newcomer's pods
    run there); returns whether it was on before."""
    before = tainted(env)
    if on and not before:
        _kubectl(env, "taint", "node", NODE_NAME, f"{TAINT_KEY}=true:NoSchedule", "--overwrite")
    elif before and not on:
        _kubectl(env, "taint", "node", NODE_NAME, f"{TAINT_KEY}:NoSchedule-")
    return before


@contextlib.contextmanager
def taint_as(env: dict[str, str], on: bool) -> Iterator[None]:
    """The node tainted (or not) for a while, then as it was found."""
    before = set_taint(env, on)
    try:
        yield
    finally:
        if before != on:
            set_taint(env, before)


def _mntns_pids(mntns: str) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "mnt") == mntns:
                    found.add(int(entry.name))
    return found


def _kill_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(find: Any, timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    left: set[int] = find()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {p for p in find() if procs.alive(p)}
    return left


def running(state: StateDir) -> bool:
    return all(procs.running(state, n) for n in NAMES)


def down(state: StateDir) -> None:
    """Stop the node and leave nothing: kubelet first (so it restarts nothing), then every
    container (by the node's cgroups), containerd and its shims (by its mount namespace,
    whose mounts go with it), the scheduler and controllers, then cgroups, bridge, rules."""
    layout_path = _layout_file(state)
    layout: dict[str, Any] = json.loads(layout_path.read_text()) if layout_path.exists() else {}
    procs.stop(state, "kubelet")
    cgroup = layout.get("cgroup")
    if cgroup:
        _kill_all(_cgroup_pids(cgroup), signal.SIGKILL)
        _wait_gone(lambda: _cgroup_pids(cgroup), 10)
    procs.stop(state, "containerd")
    mntns = layout.get("mntns")
    if mntns:
        _kill_all(_mntns_pids(mntns), signal.SIGTERM)
        left = _wait_gone(lambda: _mntns_pids(mntns), 5)
        _kill_all(left, signal.SIGKILL)
        _wait_gone(lambda: _mntns_pids(mntns), 5)
    procs.stop(state, "kube-scheduler")
    procs.stop(state, "kube-controller-manager-workloads")
    if cgroup:
        _cgroups_down(cgroup)
    _network_down(layout)
    layout_path.unlink(missing_ok=True)
    # Only files remain (no mounts: they lived in the node's mount namespace).
    for sub in ("containerd", "kubelet", "ipam"):
        shutil.rmtree(_folder(state) / sub, ignore_errors=True)


def leftovers(state: StateDir) -> list[str]:
    """What ``down`` should have removed and did not (for the tests and ``testbed down``)."""
    left = [n for n in NAMES if procs.running(state, n)]
    if shutil.which("nft") is None:
        return left  # the node never ran here: no tools, so no bridge, rules or cgroups
    node_id = _node_id(state)
    links = subprocess.run(
        ["ip", "-o", "link", "show", f"acn{node_id}"], capture_output=True, check=False
    )
    if links.returncode == 0 and links.stdout:
        left.append(f"bridge acn{node_id}")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    if f"agentcred_{node_id}" in tables.stdout:
        left.append(f"nftables table agentcred_{node_id}")
    if any(Path("/sys/fs/cgroup", c, f"agentcred-{node_id}").exists() for c in CGROUP_V1):
        left.append(f"cgroup agentcred-{node_id}")
    mounts = Path("/proc/self/mounts").read_text()
    if str(state.root) in mounts:
        left.append("mounts under the state folder")
    return left
