"""The cost of encrypted memories in search, and a scan of the repository for their plaintext.

    python benchmarks/encrypted.py [--count 10000] [--encrypted 1000] [--repeat 6] [--out DIR]

Builds two stores from the same synthetic memories (`generate.build_memories`, seed 42): one all
plain, one where every tenth memory (1,000 of 10,000) is encrypted through the library
(`crypto.encrypt` to the store's recipients, written as `<id>.md.age`, one commit). Each of those
memories carries a unique marker word (`sealmarkNNNN`) in both stores. Then:

- a full rebuild (`mem reindex`) of each store, in a new process;
- cold `mem find` (a new `mem` process per call, the first call of each query not counted) for
  queries whose top 10 holds encrypted memories and queries whose top 10 does not, on both stores;
- a scan of every git object of the encrypted store (all blobs, trees and commits, loose and
  packed, through pygit2's object database) and of every stored field and sortable column of its
  search index for the 1,000 markers and the encrypted memories' titles; the same scan of the
  plain store is the control that shows the scan finds them.

The watcher is off (MEM_WATCH=0) in both stores, so both catch up by the same folder scan. The
machine may be shared: the load average before and after is printed, and the plain store's
first query is measured again at the end to show the drift.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import AUTHOR, START, build_memories  # noqa: E402

from memstore import crypto, gitrepo, keys  # noqa: E402
from memstore.crypto import Keyring  # noqa: E402
from memstore.memory import encrypted_path  # noqa: E402
from memstore.store import Store  # noqa: E402

MARKER = "sealmark{:04d}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def build(root: Path, count: int, every: int, encrypt: bool) -> tuple[Store, list[str]]:
    """A store of count memories; every `every`-th one marked (and encrypted if asked)."""
    store = Store.init(root, clock=lambda: START)
    if encrypt:
        store.key_init()
    recipients = keys.recipients_for(store.root, "memories/x.md.age") if encrypt else []
    memories, _ = build_memories(count, 42)
    changes: dict[str, bytes | None] = {}
    titles: list[str] = []
    for number, memory in enumerate(memories):
        if number % every == every - 1:
            marker = MARKER.format(len(titles))
            memory.body = memory.body + f"Reference {marker}.\n"
            titles.append(memory.title)
            if encrypt:
                memory.path = encrypted_path(memory)
                data = crypto.encrypt(memory.to_bytes(), recipients)
            else:
                data = memory.to_bytes()
        else:
            data = memory.to_bytes()
        target = root / memory.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        changes[memory.path] = data
    what = f", {len(titles)} encrypted" if encrypt else ""
    # A title that a plain memory also holds (whole or inside a longer one) proves nothing.
    seen = Counter(m.title for m in memories)
    plain_text = b"\n".join(d for p, d in changes.items() if d and not p.endswith(".age"))
    if encrypt:
        titles = [t for t in titles[:400] if seen[t] == 1 and t.encode() not in plain_text]
    gitrepo.commit_files(store.repo, changes, f"Generate {count} memories{what}", START)
    return store, titles


def cold(env: dict[str, str], store: Path, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "memstore", "--store", str(store), *args],
        capture_output=True,
        text=True,
        env=env,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"mem {' '.join(args)}: {done.stderr.strip()}")
    return elapsed, done.stdout


def scan(store: Store, needles: list[bytes]) -> dict[str, int]:
    """Hits of the markers (and titles) in git objects by kind, and in the index's stored values."""
    import pygit2

    pattern = re.compile(b"|".join(re.escape(n) for n in needles))
    repo = pygit2.Repository(str(store.root))
    counts = {"objects": 0, "blob": 0, "tree": 0, "commit": 0, "tag": 0, "index stored": 0}
    kinds = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
    for oid in repo.odb:
        kind, data = repo.odb.read(oid)
        counts["objects"] += 1
        if pattern.search(data):
            counts[kinds.get(int(kind), "blob")] += 1
    with store.index.reading() as ix, ix.searcher() as searcher:
        values = [repr(doc).encode() for doc in searcher.all_stored_fields()]
        reader = searcher.reader()
        for name in ("id", "created"):
            if reader.has_column(name):
                values += [repr(v).encode() for v in reader.column_reader(name, translate=False)]
    counts["index stored"] = sum(1 for value in values if pattern.search(value))
    counts["index values scanned"] = len(values)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--encrypted", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=6, help="calls per query (1 warm-up)")
    parser.add_argument("--out", type=Path, default=None, help="folder (default: a temp folder)")
    args = parser.parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="mem-enc-bench-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["MEM_AUTHOR"] = AUTHOR
    os.environ["XDG_CONFIG_HOME"] = str(work / "config")  # the bench's own identity
    os.environ["MEM_WATCH"] = "0"
    # Without PYTHONDONTWRITEBYTECODE: an installed package's bytecode is cached.
    dropped = ("MEM_STORE", "MEM_IDENTITY", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    every = args.count // args.encrypted
    load_before = os.getloadavg()

    started = time.perf_counter()
    plain, _ = build(work / "plain", args.count, every, encrypt=False)
    built_plain = time.perf_counter() - started
    started = time.perf_counter()
    sealed, titles = build(work / "sealed", args.count, every, encrypt=True)
    built_sealed = time.perf_counter() - started
    stores = (("plain", plain), ("encrypted", sealed))
    rebuild = {name: cold(env, store.root, "reindex")[0] for name, store in stores}

    queries = [MARKER.format(n) for n in (3, 250, 500, 750, 999)]
    queries += ["deploy staging", "connection postgres", "restart logs", '"connection pool"']
    queries += ["quokkaflux", "zephyrwick", "ERR_CONNECTION_REFUSED", '"health check"']
    times: dict[tuple[str, str], list[float]] = {(q, n): [] for q in queries for n, _ in stores}
    hits_encrypted: dict[str, int] = {}
    # Calls alternate between the stores, in a new order each round, so that the machine's load
    # falls on both alike; round 0 is the warm-up.
    for number in range(args.repeat):
        for query in queries:
            pair = stores if (number + len(query)) % 2 else stores[::-1]
            for name, store in pair:
                elapsed, out = cold(env, store.root, "find", query)
                if number:
                    times[(query, name)].append(elapsed)
                if name == "encrypted":
                    hits_encrypted[query] = out.count(".md.age")
    drift = [cold(env, plain.root, "find", queries[0])[0] for _ in range(args.repeat)][1:]
    in_process: dict[str, list[float]] = {}
    for name, store in stores:
        opened = Store(store.root)
        for query in queries:
            opened.find(query)  # warm-up
        samples = []
        for _ in range(args.repeat * 3):
            for query in queries:
                started = time.perf_counter()
                opened.find(query)
                samples.append(time.perf_counter() - started)
        in_process[name] = samples
    keyring = Keyring()
    files = sorted((sealed.root / "memories").rglob("*.md.age"))
    started = time.perf_counter()
    for path in files:
        keyring.decrypt(path.read_bytes(), path.name)
    decrypt_ms = (time.perf_counter() - started) / max(len(files), 1) * 1000
    load_after = os.getloadavg()

    scanned = {
        "encrypted": scan(sealed, [m.encode() for m in (MARKER.format(n) for n in range(1000))]),
        "plain (control)": scan(plain, [MARKER.format(n).encode() for n in range(1000)]),
    }
    long_titles = [t.encode() for t in titles if len(t) > 20][:200]
    title_hits = scan(sealed, long_titles)
    title_control = scan(plain, long_titles)
    shown_titles = len(long_titles)

    def line(kind: str, chosen: list[str]) -> str:
        cells = []
        for name in ("plain", "encrypted"):
            values = [v for q in chosen for v in times[(q, name)]]
            p50, p95 = percentile(values, 0.5) * 1000, percentile(values, 0.95) * 1000
            cells.append(f"{p50:.0f} / {p95:.0f}")
        return f"| {kind} ({len(chosen)} queries) | {cells[0]} | {cells[1]} |"

    with_enc = [q for q in queries if hits_encrypted[q]]
    without = [q for q in queries if not hits_encrypted[q]]
    print(f"# Encrypted memories: {args.encrypted} of {args.count}\n")
    print(f"- load average before {load_before}, after {load_after}; nproc {os.cpu_count()}")
    print(f"- stores built in {built_plain:.1f} s (plain) and {built_sealed:.1f} s (encrypted)")
    print(
        f"- full rebuild, `mem reindex`: plain {rebuild['plain']:.1f} s,"
        f" encrypted {rebuild['encrypted']:.1f} s"
    )
    print(f"- {args.repeat - 1} counted calls per query and store (1 warm-up); ms, p50 / p95\n")
    print(f"| cold `mem find` | plain store | {args.encrypted} encrypted |\n|---|---:|---:|")
    print(line("top 10 holds encrypted memories", with_enc))
    print(line("top 10 holds none", without))
    print(line("all", queries))
    cells = []
    for name in ("plain", "encrypted"):
        p50, p95 = (percentile(in_process[name], f) * 1000 for f in (0.5, 0.95))
        cells.append(f"{p50:.1f} / {p95:.1f}")
    print(f"| `Store.find` in process, all queries | {cells[0]} | {cells[1]} |")
    print(f"\nDecrypting one encrypted memory (read + age x25519): {decrypt_ms:.2f} ms on average.")
    print(
        f"\nDrift: the first query on the plain store again at the end:"
        f" {percentile(drift, 0.5) * 1000:.0f} / {percentile(drift, 0.95) * 1000:.0f} ms"
        f" (was {percentile(times[(queries[0], 'plain')], 0.5) * 1000:.0f} / "
        f"{percentile(times[(queries[0], 'plain')], 0.95) * 1000:.0f})."
    )
    print("\nEncrypted results in the top 10, per query:")
    for query in queries:
        print(f"- `{query}`: {hits_encrypted[query]}")
    print("\n## Plaintext scan\n")
    print(
        "| store | objects scanned | blobs | trees | commits | index values scanned | index hits |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, counts in scanned.items():
        print(
            f"| {name}: markers | {counts['objects']} | {counts['blob']} | {counts['tree']} |"
            f" {counts['commit']} | {counts['index values scanned']} | {counts['index stored']} |"
        )
    print(
        f"| encrypted: {shown_titles} titles | {title_hits['objects']} | {title_hits['blob']} |"
        f" {title_hits['tree']} | {title_hits['commit']} | {title_hits['index values scanned']} |"
        f" {title_hits['index stored']} |"
    )
    print(
        f"| plain (control): {shown_titles} titles | {title_control['objects']} |"
        f" {title_control['blob']} | {title_control['tree']} | {title_control['commit']} |"
        f" {title_control['index values scanned']} | {title_control['index stored']} |"
    )
    print(f"\nStores kept in {work}")


if __name__ == "__main__":
    main()
