"""Cold `mem find` against the floor: an SQLite FTS5 process and `rg -il`, side by side.

    python benchmarks/floor.py --sizes 10000 100000 [--mem new=/venv/bin/mem ...]
                               [--runs 10] [--rounds 2] [--root /tmp/membench]
                               [--out benchmarks/results.md]

For each size it reuses (or generates, with generate.py) the store `ROOT/s10k`, `ROOT/s100k`, …,
builds an SQLite FTS5 database of the same memories beside it (`ROOT/s10k.fts5`, built again when
the store was generated again), and times with hyperfine, per query, three kinds of cold process
one after the other: `mem --store S find QUERY` (one column per `--mem`, each on its own `cp -a`
copy of the store, so that two memstore versions never share an index or a watcher), `python
benchmarks/fts_find.py DB QUERY` and `rg -il`. Each of the `--rounds` rounds runs every query once
more, so the columns are interleaved over the run. It writes the table into the `--out` file
between the markers `<!-- floor:begin -->` and `<!-- floor:end -->` (added at the end the first
time) and prints it.

Before timing, each `mem` gets warm-up searches with pauses, so that its index is built and the
store's change watcher (and its search service, in versions that have one) is up: a cold
`mem find` on a large store is then what a user who searched a minute ago gets. The peak memory
(maximum resident set) of one `mem find` per column is measured with `wait4`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
START_MARK = "<!-- floor:begin -->"
END_MARK = "<!-- floor:end -->"
SIZE_NAMES = {1000: "1k", 10000: "10k", 100000: "100k"}


@dataclass
class Query:
    kind: str
    mem: str  # the mem find query
    fts: str  # the same in FTS5's query language
    rg: list[str]  # rg patterns (any of them: rg cannot AND two words in a file)


def queries(meta: dict) -> list[Query]:
    needle = meta["needles"][0]["word"]
    return [
        Query("keyword", "deploy staging", "deploy staging", ["deploy", "staging"]),
        Query("keyword", "connection postgres", "connection postgres", ["connection", "postgres"]),
        Query("phrase", '"connection pool"', '"connection pool"', ["connection pool"]),
        Query("tag", "tag:rabbitmq", "tags:rabbitmq", ["rabbitmq"]),
        Query(
            "code word",
            "ERR_CONNECTION_REFUSED",
            "ERR_CONNECTION_REFUSED",
            ["ERR_CONNECTION_REFUSED"],
        ),
        Query("rare word", needle, needle, [needle]),
        Query(
            "question",
            "how do we fix the connection timeout on staging?",
            "fix OR connection OR timeout OR staging",
            ["fix", "connection", "timeout", "staging"],
        ),
        Query(
            "question",
            "what did we decide about the deploy pipeline?",
            "decide OR deploy OR pipeline",
            ["decide", "deploy", "pipeline"],
        ),
    ]


KINDS = ("keyword", "phrase", "tag", "code word", "rare word", "question")


def size_name(size: int) -> str:
    return SIZE_NAMES.get(size, f"{size}")


def ensure_store(root: Path, size: int, python: str) -> Path:
    store = root / f"s{size_name(size)}"
    meta = store / ".git" / "membench.json"
    if meta.is_file() and json.loads(meta.read_text()).get("count") == size:
        return store
    subprocess.run(
        [python, str(HERE / "generate.py"), "--count", str(size), "--out", str(store), "--force"],
        check=True,
    )
    return store


def build_fts(store: Path) -> Path:
    """An FTS5 database of the store's memories (path, title, tags, body), built once."""
    from memstore.memory import parse  # the files' own parser: the same titles, tags and bodies

    database = store.parent / f"{store.name}.fts5"
    meta = store / ".git" / "membench.json"
    if database.is_file() and database.stat().st_mtime >= meta.stat().st_mtime:
        return database
    started = time.perf_counter()
    temp = database.with_suffix(".tmp")
    temp.unlink(missing_ok=True)
    connection = sqlite3.connect(temp)
    connection.execute(
        "CREATE VIRTUAL TABLE mem USING fts5(path UNINDEXED, title, tags, body,"
        " tokenize = \"unicode61 tokenchars '_'\")"
    )
    rows = []
    for path in sorted((store / "memories").rglob("*.md")):
        rel = path.relative_to(store).as_posix()
        memory = parse(path.read_bytes(), rel)
        rows.append((rel, memory.title, " ".join(memory.tags), memory.body))
    connection.executemany("INSERT INTO mem VALUES (?, ?, ?, ?)", rows)
    connection.execute("INSERT INTO mem(mem) VALUES ('optimize')")
    connection.commit()
    connection.close()
    temp.replace(database)
    print(f"built {database} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return database


def copy_for(store: Path, label: str) -> Path:
    """The store's copy for one mem column (made once with cp -a, index and all)."""
    copy = store.parent / f"{store.name}-{label}"
    meta = store / ".git" / "membench.json"
    copied = copy / ".git" / "membench.json"
    if copied.is_file() and copied.read_bytes() == meta.read_bytes():
        return copy
    stop_watcher(copy)
    shutil.rmtree(copy, ignore_errors=True)
    subprocess.run(["cp", "-a", str(store), str(copy)], check=True)
    return copy


def stop_watcher(store: Path) -> None:
    """Stop a store's change watcher, whatever memstore version started it."""
    home = store / ".git" / "memstore"
    try:
        pid = int((home / "watch.lock").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"memstore.watch" in cmdline:
        import signal

        os.kill(pid, signal.SIGTERM)
        time.sleep(0.3)


def warm_up(mem: str, store: Path) -> None:
    """Build the index and let the watcher (and any search service) start and settle."""
    for pause in (0, 1.0, 2.0, 2.0):
        time.sleep(pause)
        subprocess.run(
            [mem, "--store", str(store), "find", "deploy"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )


# A small program that starts the command and reports its child's peak: on Linux a child's
# maximum resident set starts at its parent's size at the fork, so a child of this (large)
# benchmark process would report the benchmark's own size.
MIDDLE = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(os.wait4(child.pid, 0)[2].ru_maxrss)\n"
)


def peak_memory_mb(command: list[str]) -> float:
    """The maximum resident set of one process, in MB.

    Through GNU time (a few MB) where there is one, else through a small Python process, whose
    own size (about 10 MB) is then the least this can report.
    """
    if Path("/usr/bin/time").exists():
        with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
            subprocess.run(
                ["/usr/bin/time", "-f", "%M", "-o", out.name, *command],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            return int(out.read().split()[-1]) / 1024
    middle = subprocess.run(
        [sys.executable, "-c", MIDDLE, *command], capture_output=True, text=True, check=False
    )
    return int(middle.stdout.split()[-1]) / 1024


def service_peak_mb(store: Path) -> float | None:
    """The peak resident memory of the store's search service (memstore versions with one)."""
    try:
        pid = int((store / ".git" / "memstore" / "service.lock").read_text().split()[0])
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, ValueError, IndexError):
        return None
    if b"memstore.service" not in Path(f"/proc/{pid}/cmdline").read_bytes():
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def hyperfine(commands: list[str], runs: int) -> list[list[float]]:
    """Times (ms) of each command, from one hyperfine run that times them one after the other."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        export = Path(handle.name)
    try:
        subprocess.run(
            [
                "hyperfine",
                "--shell=none",
                "--warmup",
                "1",
                "--runs",
                str(runs),
                "--style",
                "none",
                "--export-json",
                str(export),
                *commands,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        data = json.loads(export.read_text())
    finally:
        export.unlink(missing_ok=True)
    return [[t * 1000 for t in result["times"]] for result in data["results"]]


def quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


@dataclass
class SizeResult:
    size: int
    columns: list[str]
    # samples[column][query index] = times in ms
    samples: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    queries: list[Query] = field(default_factory=list)
    peaks: dict[str, float] = field(default_factory=dict)
    floor: list[float] = field(default_factory=list)
    load: tuple[str, str] = ("", "")
    answered: dict[str, str] = field(default_factory=dict)


def measure(size: int, args: argparse.Namespace, mems: dict[str, str]) -> SizeResult:
    store = ensure_store(args.root, size, sys.executable)
    database = build_fts(store)
    meta = json.loads((store / ".git" / "membench.json").read_text())
    wanted = queries(meta)
    python = args.python
    columns = [*mems, "FTS5", "rg"]
    result = SizeResult(size, columns, queries=wanted)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    copies = {label: copy_for(store, label) for label in mems}
    for label, mem in mems.items():
        warm_up(mem, copies[label])
        found = subprocess.run(
            [mem, "--store", str(copies[label]), "find", meta["needles"][0]["word"]],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        result.answered[label] = "yes" if meta["needles"][0]["path"] in found else "NO"
    for column in columns:
        result.samples[column] = {i: [] for i in range(len(wanted))}
    result.floor = hyperfine([f"{quote(python)} -c pass"], args.runs)[0]
    for _ in range(args.rounds):
        for number, query in enumerate(wanted):
            commands = [
                f"{quote(mem)} --store {quote(str(copies[label]))} find {quote(query.mem)}"
                for label, mem in mems.items()
            ]
            commands.append(
                f"{quote(python)} {quote(str(HERE / 'fts_find.py'))} {quote(str(database))}"
                f" {quote(query.fts)}"
            )
            patterns = " ".join(f"-e {quote(p)}" for p in query.rg)
            commands.append(f"rg -ilF {patterns} {quote(str(store / 'memories'))}")
            times = hyperfine(commands, args.runs)
            for column, series in zip(columns, times, strict=True):
                result.samples[column][number].extend(series)
    for label, mem in mems.items():
        result.peaks[label] = peak_memory_mb(
            [mem, "--store", str(copies[label]), "find", '"connection pool"']
        )
    result.peaks["FTS5"] = peak_memory_mb(
        [python, str(HERE / "fts_find.py"), str(database), '"connection pool"']
    )
    for label in mems:
        resident = service_peak_mb(copies[label])
        if resident is not None:
            result.peaks[f"{label}'s search service"] = resident
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result.load = (load_before, load_after)
    if not args.keep_watchers:
        for copy in copies.values():
            stop_watcher(copy)
    return result


def report(results: list[SizeResult], args: argparse.Namespace, mems: dict[str, str]) -> str:
    lines = [
        "## Cold `mem find` against the floor (SQLite FTS5, `rg -il`)",
        "",
        f"Made by `python benchmarks/floor.py` ({time.strftime('%Y-%m-%d %H:%M %z')};"
        f" {os.cpu_count()} cores; Python {platform.python_version()}; hyperfine, {args.rounds}"
        f" rounds of {args.runs} runs per query and column after a warm-up run, the columns"
        " timed one after the other for each query). Every column is a new process per query:",
        "",
    ]
    for label, mem in mems.items():
        lines.append(f"- `{label}`: `{mem} --store S find QUERY` (on its own copy of the store)")
    lines += [
        f"- `FTS5`: `{args.python} benchmarks/fts_find.py DB QUERY`, a cold Python process that"
        " opens an SQLite FTS5 database of the same memories (path, title, tags, body; bm25"
        " with the title and tags weighted) and prints the top 10 with snippets",
        "- `rg`: `rg -ilF -e WORD … S/memories` (any of the words: rg cannot ask for all of"
        " them in one file)",
        "",
        "Times in ms, p50 / p95 over all the runs of a kind's queries.",
        "",
    ]
    for result in results:
        name = size_name(result.size)
        lines.append(f"### {name}")
        lines.append("")
        header = "| kind | " + " | ".join(f"`{c}`" for c in result.columns)
        header += "".join(f" | `{label}` / FTS5" for label in mems)
        lines.append(header + " |")
        lines.append("|---" * (1 + len(result.columns) + len(mems)) + "|")
        rows = [*KINDS, "all queries"]
        for kind in rows:
            picked = [
                i for i, q in enumerate(result.queries) if kind == "all queries" or q.kind == kind
            ]
            cells = []
            stats: dict[str, tuple[float, float]] = {}
            for column in result.columns:
                values = [t for i in picked for t in result.samples[column][i]]
                stats[column] = (percentile(values, 0.5), percentile(values, 0.95))
                cells.append(f"{fmt(stats[column][0])} / {fmt(stats[column][1])}")
            for label in mems:
                p50 = stats[label][0] / stats["FTS5"][0]
                p95 = stats[label][1] / stats["FTS5"][1]
                cells.append(f"{p50:.1f}× / {p95:.1f}×")
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Queries: " + "; ".join(f"{q.kind} `{q.mem}`" for q in result.queries))
        lines.append("")
        floor = result.floor
        lines.append(
            f"- `python -c pass`: {fmt(percentile(floor, 0.5))} / {fmt(percentile(floor, 0.95))}"
        )
        lines.append(
            "- peak memory of one `find '\"connection pool\"'` (max RSS; for a search service,"
            " its peak since it started): "
            + ", ".join(f"`{c}` {v:.0f} MB" for c, v in result.peaks.items())
        )
        lines.append(
            "- needle found by each `mem`: "
            + ", ".join(f"`{c}` {v}" for c, v in result.answered.items())
        )
        lines.append(f"- load average before / after: {result.load[0]} / {result.load[1]}")
        lines.append("")
    return "\n".join(lines)


def write_section(out: Path, text: str) -> None:
    current = out.read_text() if out.exists() else ""
    block = f"{START_MARK}\n{text}\n{END_MARK}"
    if START_MARK in current and END_MARK in current:
        before = current.split(START_MARK, 1)[0]
        after = current.split(END_MARK, 1)[1]
        out.write_text(before + block + after)
    else:
        out.write_text(current.rstrip("\n") + "\n\n" + block + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--root", type=Path, default=Path("/tmp/membench"))
    parser.add_argument(
        "--mem",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="a mem to time (repeat to compare versions; default: mem beside this python)",
    )
    parser.add_argument("--python", default=None, help="the python of the FTS5 process")
    parser.add_argument("--runs", type=int, default=10, help="runs per query, column and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--keep-watchers", action="store_true")
    args = parser.parse_args()
    if shutil.which("hyperfine") is None or shutil.which("rg") is None:
        sys.exit("floor.py needs hyperfine and rg: apt-get install -y hyperfine ripgrep")
    mems = dict(item.split("=", 1) for item in args.mem) or {
        "mem": str(Path(sys.executable).parent / "mem")
    }
    if args.python is None:
        args.python = str(Path(next(iter(mems.values()))).parent / "python")
    args.root.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes:
        results.append(measure(size, args, mems))
        text = report(results, args, mems)
        print(text)
        write_section(args.out, text)


if __name__ == "__main__":
    main()
