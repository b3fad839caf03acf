"""`mem doctor`, `mem diff`, `mem add` and `mem reindex` timed for two memstore versions in turn.

    python benchmarks/upkeep.py --store /tmp/membench/s10k --mem before=/venv-a/bin/mem \\
        --mem after=/venv-b/bin/mem --runs 5 [--what doctor diff add reindex] [--copies /tmp/x]

Each version works on its own `cp -a` copy of the store (`COPIES/NAME`, made once and kept, so
that two versions never share an index, a watcher or a cache). Runs alternate between the
versions (before, after, before, after, …) so that both see the same load on a shared machine;
the first run of each (index catch-up, caches filled) is reported apart from the others as
"first". `diff` is `mem diff ROOT` (the whole history from the store's first commit); `add`
adds a different short memory each run; `reindex` is a full rebuild, reported as memories/s.
Prints a Markdown table with p50 / min over the timed runs, the ratio after / before, the CPU
time (user + system, p50; steadier than wall time on a shared machine), the peak memory (the
largest of the timed runs), and the load average before and after. Where the store's search
service (`memstore/service.py`) runs, a `mem add` may be made by it: the CPU time the service
spent during each run is reported in a column of its own (Linux, from /proc), and the CPU
column is the `mem` process's alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _run(cmd: list[str]) -> tuple[float, float, float]:
    """Wall time (s), CPU time (user + system, s) and peak memory (MB) of one run."""
    started = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if child.returncode not in (0, 1):  # doctor exits with 1 when it finds problems
        raise SystemExit(f"{' '.join(cmd)} failed: {errors.decode()[-500:]}")
    # ru_maxrss is in KB on Linux, in bytes on macOS.
    peak = usage.ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1 << 10)
    return elapsed, usage.ru_utime + usage.ru_stime, peak


def _service_cpu(store: Path) -> float:
    """CPU time (s) the store's search service has used so far; 0 when none runs."""
    try:
        pid = int((store / ".git" / "memstore" / "service.lock").read_text().split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _root_commit(store: Path) -> str:
    import pygit2

    repo = pygit2.Repository(str(store))
    walker = repo.walk(repo.head.target)
    last = None
    for commit in walker:
        last = commit
    assert last is not None
    return str(last.id)


def _count(store: Path) -> int:
    return sum(
        1 for _, _, files in os.walk(store / "memories") for name in files if name.endswith(".md")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--mem", action="append", required=True, help="NAME=/path/to/mem")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--what", nargs="+", default=["doctor", "diff", "add"])
    parser.add_argument("--copies", type=Path, default=None)
    args = parser.parse_args(argv)
    versions = [tuple(item.split("=", 1)) for item in args.mem]
    copies = args.copies or args.store.parent / f"{args.store.name}-copies"
    stores = {}
    for name, _ in versions:
        target = copies / name
        if not target.exists():
            copies.mkdir(parents=True, exist_ok=True)
            shutil.copytree(args.store, target, symlinks=True)
        stores[name] = target
    root = _root_commit(args.store)
    count = _count(args.store)
    load_before = os.getloadavg()
    rows = []
    for what in args.what:
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in versions}
        served: dict[str, list[float]] = {name: [] for name, _ in versions}
        for run in range(args.runs + 1):
            for name, mem in versions:
                store = str(stores[name])
                if what == "doctor":
                    cmd = [mem, "--store", store, "doctor"]
                elif what == "diff":
                    cmd = [mem, "--store", store, "diff", root]
                elif what == "add":
                    cmd = [mem, "--store", store, "add", f"upkeep benchmark {name} run {run}"]
                elif what == "reindex":
                    cmd = [mem, "--store", store, "reindex"]
                else:
                    raise SystemExit(f"unknown measure {what}")
                service_before = _service_cpu(stores[name])
                samples[name].append(_run(cmd))
                service_after = _service_cpu(stores[name])
                # A service that started or stopped during the run: its time is not known.
                served[name].append(
                    max(0.0, service_after - service_before) if service_before else 0.0
                )
        for name, _ in versions:
            first, rest = samples[name][0], samples[name][1:]
            walls = [wall for wall, _, _ in rest]
            cpu = statistics.median(cpu for _, cpu, _ in rest)
            peak = max(peak for _, _, peak in rest)
            service = statistics.median(served[name][1:])
            rows.append(
                (what, name, first[0], statistics.median(walls), min(walls), cpu, peak, service)
            )
    load_after = os.getloadavg()
    base = {row[0]: row[3] for row in rows if row[1] == versions[0][0]}
    base_cpu = {row[0]: row[5] for row in rows if row[1] == versions[0][0]}
    print(f"store: {args.store} ({count} memories); runs: {args.runs} after a first run")
    print()
    print(
        "| measure | version | first run (s) | p50 (s) | min (s) | p50 / first version's"
        " | CPU p50 (s) | CPU / first version's | peak memory (MB) | service CPU p50 (s) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for what, name, first, p50, low, cpu, peak, service in rows:
        extra = f" ({count / p50:.0f} memories/s)" if what == "reindex" else ""
        ratio, cpu_ratio = p50 / base[what], cpu / base_cpu[what]
        print(
            f"| {what} | {name} | {first:.2f} | {p50:.2f}{extra} | {low:.2f} | {ratio:.2f}"
            f" | {cpu:.2f} | {cpu_ratio:.2f} | {peak:.0f} | {service:.3f} |"
        )
    print()
    load = " ".join(f"{x:.2f}" for x in load_before), " ".join(f"{x:.2f}" for x in load_after)
    print(f"load average before / after: {load[0]} / {load[1]}")


if __name__ == "__main__":
    main()
