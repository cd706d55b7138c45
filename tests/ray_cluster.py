"""A real Ray cluster on this machine for tests and benchmarks: a head and worker nodes from the ray CLI, all stopped after."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType

import psutil

# Ray puts unix sockets under the temp folder (session_<date>_<pid>/sockets/raylet.N); a socket path
# must stay under 107 characters, so the folder sits directly in /tmp, never under a test's long tmp_path.
SHORT_TMP = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
NODE_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # On SIGTERM a node first asks the GCS to drain it for up to 30 s; a test cluster has nothing to drain.
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    # Unset, Ray turns token authentication on when ~/.ray/auth_token exists (a local ray.init() writes one),
    # and a node, `ray status` and a driver would each decide on their own.
    "RAY_AUTH_MODE": "disabled",
}
_LIVE: set[LocalRayCluster] = set()


class RayClusterError(RuntimeError):
    """The test cluster could not start or stop (the message carries the nodes' log tails)."""


def ray_cli() -> str:
    """The ray command of the Python running this code (its venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("ray")
    if beside.is_file():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise RayClusterError("the ray command was not found beside this Python or on PATH (install cnnviewer[cluster])")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace").rstrip().splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty)"


class LocalRayCluster:
    """A head node and ``workers`` more nodes on 127.0.0.1, ``cpus`` CPUs each, every node a ``ray start --block``
    process in its own session, so that stop() finds and ends everything it started (and nothing else:
    ``ray stop`` would end every Ray process of the machine's user). Drivers connect to 127.0.0.1, but Ray
    listens on every interface of the machine (it replaces a loopback node address with the machine's own).

        with LocalRayCluster(workers=1) as cluster:
            subprocess.run([sys.executable, "driver.py"], env=cluster.driver_env())
    """

    def __init__(self, workers: int = 1, cpus: int = 1, object_store_mb: int = 100,
                 start_timeout_s: float = 90.0, port: int | None = None):
        self.workers, self.cpus, self.object_store_mb = workers, cpus, object_store_mb
        self.start_timeout_s = start_timeout_s
        self.port = port
        self.temp_dir: Path | None = None
        self.nodes: list[subprocess.Popen[bytes]] = []  # head first
        self.node_logs: list[Path] = []  # each node's ray start output, in the temp folder
        self.sessions: set[int] = set()  # each node's session id (its ray start's pid)
        self.start_seconds: float | None = None
        self._status_error = ""

    @property
    def address(self) -> str:
        if self.port is None or not self.nodes:
            raise RayClusterError("the local Ray cluster has not been started")
        return f"127.0.0.1:{self.port}"

    def driver_env(self) -> dict[str, str]:
        """os.environ for a driver process of this cluster: RAY_ADDRESS, and the nodes' Ray settings."""
        return {**os.environ, **NODE_ENV, "RAY_ADDRESS": self.address}

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def start(self) -> LocalRayCluster:
        if self.nodes:
            raise RayClusterError("the local Ray cluster is already started")
        started = time.perf_counter()
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rc-", dir=SHORT_TMP))
        self.port = self.port or free_port()
        _LIVE.add(self)
        _stop_on_sigterm()
        try:
            self._start_node("head", ["--head", "--port", str(self.port), "--include-dashboard", "false"])
            # A worker node joins through the head's GCS: started once the head counts itself alive.
            self._wait_for_nodes(1)
            for number in range(1, self.workers + 1):
                self._start_node(f"worker{number}", ["--address", self.address])
            self._wait_for_nodes(1 + self.workers)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.perf_counter() - started
        return self

    def _start_node(self, name: str, role: list[str]) -> None:
        assert self.temp_dir is not None
        command = [ray_cli(), "start", *role, "--block", "--num-cpus", str(self.cpus),
                   "--object-store-memory", str(self.object_store_mb * 1024 * 1024),
                   "--disable-usage-stats", "--temp-dir", str(self.temp_dir)]
        env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
        out = self.temp_dir / f"{name}.out"
        with open(out, "wb") as log:
            node = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env={**env, **NODE_ENV}, start_new_session=True)
        self.nodes.append(node)
        self.node_logs.append(out)
        self.sessions.add(node.pid)

    def alive_nodes(self, timeout_s: float = 30.0) -> int:
        """How many nodes the head's GCS counts as active (0 while it does not answer)."""
        try:
            done = subprocess.run([ray_cli(), "status", "--address", self.address], capture_output=True, text=True,
                                  timeout=timeout_s, env={**os.environ, **NODE_ENV})
        except subprocess.TimeoutExpired:
            self._status_error = f"ray status did not answer in {timeout_s:.0f} s"
            return 0
        if done.returncode != 0:
            self._status_error = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            return 0
        count, active = 0, False
        for line in done.stdout.splitlines():
            if line.strip().endswith(":"):
                active = line.strip() == "Active:"
            elif active and "node_" in line:
                count += 1
        return count

    def _wait_for_nodes(self, wanted: int) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        seen = 0
        while True:
            failed = self._failed_node()
            if failed:
                raise RayClusterError(f"a node of the local Ray cluster {failed} while starting:\n{self.log_tails()}")
            seen = self.alive_nodes(timeout_s=max(5.0, min(15.0, deadline - time.monotonic())))
            if seen >= wanted:
                return
            if time.monotonic() > deadline:
                raise RayClusterError(f"the local Ray cluster showed {seen} of {wanted} nodes alive after "
                                      f"{self.start_timeout_s:.0f} s (ray status: {self._status_error or 'ok'}):\n"
                                      f"{self.log_tails()}")
            time.sleep(0.5)

    def _failed_node(self) -> str:
        """How a node failed ("exited with status 1"), or "" while none has."""
        assert self.temp_dir is not None
        for node, out in zip(self.nodes, self.node_logs, strict=True):
            if node.poll() is not None:
                return f"exited with status {node.returncode}"
            # A head whose GCS could not start prints the traceback and then waits on, instead of exiting.
            with contextlib.suppress(OSError):
                if "Traceback (most recent call last)" in out.read_text(errors="replace"):
                    return f"failed ({out.name} shows a traceback)"
        return ""

    def log_tails(self, lines: int = 12) -> str:
        """Each node's ray start output and the Ray processes' error logs, their last lines."""
        if self.temp_dir is None:
            return "(no logs)"
        parts = [f"--- {out.name}\n{_tail(out, lines)}" for out in self.node_logs]
        parts += [f"--- {err.name}\n{_tail(err, lines)}"
                  for err in sorted(self.temp_dir.glob("session_*/logs/*.err")) if err.stat().st_size]
        return "\n".join(parts)

    def processes(self) -> list[psutil.Process]:
        """Every live process of this cluster: in a node's session (Ray workers change their own process
        group and their command line, never their session), or naming the cluster's temp folder."""
        found = []
        marker = str(self.temp_dir) if self.temp_dir is not None else None
        for process in psutil.process_iter(["cmdline", "status"]):
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue  # it has exited; only its parent's wait is missing
            try:
                ours = os.getsid(process.pid) in self.sessions
            except OSError:
                continue
            if ours or (marker and any(marker in part for part in process.info["cmdline"] or ())):
                found.append(process)
        return found

    def node_pids(self) -> list[int]:
        """The raylet of each node, head first (SIGKILL one to take its node away)."""
        pids = []
        for node in self.nodes:
            with contextlib.suppress(psutil.Error):
                pids += [child.pid for child in psutil.Process(node.pid).children(recursive=True)
                         if child.name() == "raylet"]
        return pids

    def worker_pids(self, title: str = "") -> list[int]:
        """The Ray worker processes (named ``ray::<actor or task>``) whose name contains ``title``."""
        agents = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
        pids = []
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                name = " ".join(process.cmdline())
                if name.startswith("ray::") and not name.startswith(agents) and title in name:
                    pids.append(process.pid)
        return pids

    def stop(self, grace_s: float = 3.0) -> None:
        """SIGTERM each node's process group, SIGKILL it after ``grace_s``, then kill whatever of the cluster
        is left (a worker in a group of its own) and remove the temp folder; raises when a process survives."""
        for node in reversed(self.nodes):
            _signal_group(node.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        for node in reversed(self.nodes):
            _signal_group(node.pid, signal.SIGKILL)
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=10)
        leftovers = self.processes()
        for process in leftovers:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(leftovers, timeout=10)
        survivors = self.processes()
        if self.temp_dir is not None and not survivors:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        _LIVE.discard(self)
        if not _LIVE and threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGTERM) is _interrupt:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if survivors:
            raise RayClusterError(f"{len(survivors)} processes of the local Ray cluster outlived SIGKILL: "
                                  + ", ".join(f"{p.pid} {p.info['cmdline'][:1]}" for p in survivors))
        self.nodes, self.node_logs, self.sessions, self.temp_dir = [], [], set(), None


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


@contextlib.contextmanager
def local_ray_cluster(workers: int = 1, cpus: int = 1, object_store_mb: int = 100,
                      start_timeout_s: float = 90.0) -> Iterator[LocalRayCluster]:
    """A started LocalRayCluster of a head and ``workers`` nodes, stopped when the block ends."""
    with LocalRayCluster(workers, cpus, object_store_mb, start_timeout_s) as cluster:
        yield cluster


def _stop_on_sigterm() -> None:
    """SIGTERM (``timeout``, a CI runner) ends a process without atexit; while a cluster runs it raises
    KeyboardInterrupt instead, which pytest and ``with`` blocks unwind through, so every cluster is stopped."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise KeyboardInterrupt(f"signal {signum} while a local Ray cluster runs")


@atexit.register
def _stop_all() -> None:
    # A test process that ends without reaching a cluster's stop() (an error in a fixture, a KeyboardInterrupt)
    # must not leave Ray running on the machine.
    for cluster in list(_LIVE):
        with contextlib.suppress(RayClusterError):
            cluster.stop()
