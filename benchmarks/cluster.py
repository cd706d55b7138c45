"""Local against cluster: `cnnviewer bench` as whole processes, on this machine alone and on a local Ray cluster of two 1-CPU nodes.

    python benchmarks/cluster.py [--folder ../shared/datasets/imagenet-val-100]
                                 [--models efficientnet_lite0,efficientnet_lite1,efficientnet_lite2] [--repeats 2]

The two variants run the same command, `cnnviewer bench FOLDER --models M --rounds 0 --run-as fp32`:
local, and with `--cluster ray` and RAY_ADDRESS pointing at a Ray cluster this script starts once (a head
and one worker node on 127.0.0.1, one CPU each, so two worker processes; its start time is printed apart).
Each variant runs once untimed first (the file cache, the model exports), then ``--repeats`` rounds, the two
alternated. Printed: wall seconds (median and range) and images/s (images x models / wall) per variant, the
ratio cluster/local, each cluster worker's own forward speed from the last cluster run's report.json (a
cluster run gives no single throughput), and whether both runs' top-5 per (file, model) are identical.
On two cores expect little gain: the point is the same answers and a path to more machines.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ray_cluster import LocalRayCluster

EMBEDDED = "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"
TOP5 = [f"index{rank}" for rank in range(1, 6)]


def bench(folder: str, models: str, out: Path, env: dict[str, str], cluster: bool) -> float:
    """One `cnnviewer bench` process, its wall seconds (python start to exit)."""
    command = [sys.executable, "-m", "cnnviewer", "bench", folder, "--models", models, "--rounds", "0",
               "--run-as", "fp32", "--out", str(out), *(["--cluster", "ray"] if cluster else [])]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:])} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return seconds


def top5_rows(results: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    with open(results, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return {(row["file"], row["model"]): tuple(row[column] for column in TOP5) for row in csv.DictReader(handle)}


def show(name: str, values: list[float], classified: int) -> None:
    median = statistics.median(values)
    print(f"  {name:<34} median {median:7.2f} s  range {min(values):.2f}-{max(values):.2f} s  "
          f"{classified / median:6.1f} images/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", default=str(ROOT.parent / "shared" / "datasets" / "imagenet-val-100"))
    parser.add_argument("--models", default=EMBEDDED)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    helped = subprocess.run([sys.executable, "-m", "cnnviewer", "bench", "--help"], capture_output=True, text=True)
    if "--cluster" not in helped.stdout:
        raise SystemExit("this cnnviewer's bench has no --cluster option yet")
    work = Path(tempfile.mkdtemp(prefix="cnnviewer-cluster-bench-"))
    env = dict(os.environ, CNNVIEWER_CACHE_DIR=str(work / "cache"), CNNVIEWER_CONFIG_DIR=str(work / "config"))
    runs: dict[str, list[Path]] = {"local": [], "cluster": []}

    def run(variant: str, cluster_env: dict[str, str]) -> float:
        out = work / f"{variant}-{len(runs[variant])}"
        runs[variant].append(out)
        return bench(args.folder, args.models, out, cluster_env if variant == "cluster" else env, variant == "cluster")

    with LocalRayCluster(workers=1, cpus=1) as cluster:
        print(f"Local Ray cluster at {cluster.address}: a head and 1 worker node, 1 CPU each, "
              f"started in {cluster.start_seconds:.1f} s")
        cluster_env = {**cluster.driver_env(), "CNNVIEWER_CACHE_DIR": env["CNNVIEWER_CACHE_DIR"],
                       "CNNVIEWER_CONFIG_DIR": env["CNNVIEWER_CONFIG_DIR"]}
        for variant in runs:
            run(variant, cluster_env)  # untimed: warms the file cache and the model exports
        times: dict[str, list[float]] = {variant: [] for variant in runs}
        for _ in range(args.repeats):
            for variant in runs:
                times[variant].append(run(variant, cluster_env))

    local_rows, cluster_rows = top5_rows(runs["local"][-1] / "results.csv"), top5_rows(runs["cluster"][-1] / "results.csv")
    report = json.loads((runs["cluster"][-1] / "report.json").read_text(encoding="utf-8"))
    shutil.rmtree(work, ignore_errors=True)
    models = args.models.split(",")
    print(f"\n{args.folder}: {len(local_rows) // len(models)} images x {len(models)} models, "
          f"{args.repeats} alternated rounds, whole processes")
    show("local (cnnviewer bench)", times["local"], len(local_rows))
    show("cluster (--cluster ray, 2 workers)", times["cluster"], len(cluster_rows))
    ratio = statistics.median(times["cluster"]) / statistics.median(times["local"])
    print(f"  cluster / local wall time: {ratio:.2f}x ({'slower' if ratio > 1 else 'faster'} on the cluster)")

    split = report.get("environment", {}).get("cluster", {})
    print(f"\nEach cluster worker's own speed (last run; {split.get('split', 'split not recorded')}):")
    print(f"  {'model':<20}{'host':<16}{'pid':>8}{'images':>8}{'forward img/s':>15}{'end-to-end img/s':>18}"
          f"{'load s':>8}")
    for worker in split.get("workers", []):
        print(f"  {worker['model']:<20}{str(worker['host'])[:15]:<16}{worker['pid']:>8}{worker['images']:>8}"
              f"{worker['forward_ips'] or 0:>15.1f}{worker['end_to_end_ips'] or 0:>18.1f}{worker['load_s'] or 0:>8.1f}")
    per_node = {node["node"]: 0 for node in split.get("nodes", [])}
    for shard in split.get("shards", []):
        per_node[shard["node"]] = per_node.get(shard["node"], 0) + 1
    print("  shards per node: " + ", ".join(f"{node} {count}" for node, count in per_node.items()))
    retries = split.get("retries", [])
    if retries:
        print(f"  {len(retries)} shards retried: " + "; ".join(r["reason"] for r in retries))

    same = local_rows == cluster_rows
    print(f"\ntop-5 identical: {'yes' if same else 'no'} ({len(local_rows)} rows)")
    if not same:
        differ = [key for key in local_rows.keys() | cluster_rows.keys() if local_rows.get(key) != cluster_rows.get(key)]
        print(f"  {len(differ)} (file, model) rows differ or are missing, e.g. {sorted(differ)[:3]}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
