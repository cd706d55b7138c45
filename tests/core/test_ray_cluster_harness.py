"""The test harness's local Ray cluster: real nodes that a driver process sees, and nothing of them left after stop()."""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest

from tests.ray_cluster import LocalRayCluster, RayClusterError

pytest.importorskip("ray")

# One actor per node (each node has one CPU; SPREAD asks for different nodes as well), each answering with its node.
DRIVER = """
import json, os, sys
import ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
alive = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])

@ray.remote(num_cpus=1, scheduling_strategy="SPREAD")
class Where:
    def node(self):
        return ray.get_runtime_context().get_node_id(), os.getpid()

actors = [Where.remote() for _ in alive]
answers = ray.get([actor.node.remote() for actor in actors], timeout=120)
print(json.dumps({"alive": alive, "actors": answers}))
"""


def gone(pids: list[int]) -> list[int]:
    """The pids among ``pids`` that still run (a zombie has exited: only its parent's wait is missing)."""
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


def test_head_and_worker_node_run_one_actor_each_and_stop_leaves_nothing():
    cluster = LocalRayCluster(workers=1, cpus=1)
    with cluster:
        temp_dir = cluster.temp_dir
        assert temp_dir is not None and temp_dir.is_dir()
        done = subprocess.run([sys.executable, "-c", DRIVER, cluster.address], capture_output=True, text=True,
                              timeout=180, env=cluster.driver_env())
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        raylets = cluster.node_pids()
        pids = [process.pid for process in cluster.processes()]
        # A driver that connects to the cluster, not a Ray instance of its own: the harness's two nodes.
        assert len(seen["alive"]) == 2, seen
        assert sorted(node for node, _ in seen["actors"]) == seen["alive"], seen
        assert len(raylets) == 2 and set(raylets) <= set(pids)
        assert len(pids) >= 2 * 3  # per node at least: ray start, its raylet, an agent; the head's GCS too
    assert cluster.processes() == []
    assert gone(pids) == []
    assert not temp_dir.exists()


def test_ending_only_the_ray_start_processes_leaves_the_cluster_running(ray_cluster):
    # What stop() is for: the head's GCS and other processes outlive the `ray start` that spawned them, so
    # killing that process alone (Popen.kill()) leaves them running; stop() ends the rest.
    cluster = ray_cluster(workers=0)
    assert cluster.alive_nodes() == 1
    for node in cluster.nodes:
        node.kill()
        node.wait(timeout=10)
    left = cluster.processes()
    assert left, "the `ray start` process took its children with it"
    cluster.stop()
    assert gone([process.pid for process in left]) == []
    assert cluster.processes() == []


def test_a_head_that_cannot_start_raises_with_its_log_and_leaves_nothing():
    # Ray refuses an object store under 75 MB: `ray start --head` fails at once, and the error shows its output.
    cluster = LocalRayCluster(workers=1, object_store_mb=10, start_timeout_s=60)
    with pytest.raises(RayClusterError, match="while starting") as raised:
        cluster.start()
    assert "--- head.out" in str(raised.value) and "minimum allowed" in str(raised.value)
    assert len(cluster.nodes) == 0  # the worker node never started, and stop() forgot the head
    assert cluster.temp_dir is None and cluster.processes() == []
