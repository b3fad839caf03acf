"""Measure the prompt hook (`python -m memstore recall`): cold latency, tokens added, the bar.

    python benchmarks/recall_hook.py [--store /tmp/membench/s10k] [--count 10000] [--repeat 15]
        [--before /tmp/old-memstore]

The store is one made by generate.py (generated first when missing). Prompts, fixed by the seed:
- on-topic: for a random memory, a prompt in a person's words around 2 or 3 of its rarer words
  ("why does X keep failing with Y?"); the memory it came from is the one to recall;
- needle: "what do we know about <needle word>?" for the generator's needle memories;
- off-topic: everyday coding requests that no memory is about ("rename this variable").

Reported:
- cold latency: p50 / p95 of a new `python -P -m memstore --store S recall` process per prompt
  (the command `mem setup` registers), each in a new session, answered by the store's search
  service and in process, beside `python -c pass` (the start-up floor) and a cold
  `python -m memstore find` of the same words, alternated in one run; with --before (a folder
  holding an older `memstore` package, e.g. from `git archive`), the same hook run by that code
  too, in the same rounds. The hook runs in process when the service refuses it: the in-process
  runs carry one more MEM_ variable (MEM_BENCH_IN_PROCESS), and a service refuses a request
  made with other settings than its own, so they pay what a refused request costs, as a real
  fallback does, and search with the same watcher;
- that the service's text is the in-process text (and, with --before, the older code's): every
  prompt is run each way, each in a session of its own, and the outputs compared byte for byte;
- tokens added per prompt (characters / 4, as `mem context` estimates): mean, p50, p95, the
  share of prompts that get nothing, and how often the wanted memory is in the block;
- the bar: for a grid of MIN_SHARE and MIN_RELATIVE, the on-topic prompts whose memory clears
  it and the off-topic prompts that get anything, from one in-process search per prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from memstore import recall
from memstore.store import Store

OFF_TOPIC = (
    "rename this variable to something clearer",
    "add a docstring to this function",
    "write a haiku about autumn leaves",
    "what is the difference between a list and a tuple in python",
    "thanks, that works. can you also sort the imports?",
    "make the button blue and center it",
    "explain what this regular expression does",
    "convert these tabs to spaces",
    "how do I undo my last commit",
    "split this long function into smaller ones",
    "write unit tests for the parser module",
    "what's a good name for a pet turtle",
    "translate this paragraph into French",
    "summarize the README for me",
    "fix the typo in the welcome message",
    "why is the sky blue",
    "add type hints to this file",
    "format the table as markdown",
    "generate a random password generator script",
    "what time zone is Tokyo in",
)
TEMPLATES = (
    "why does {a} keep failing with {b}?",
    "how do we deal with {a} and {b} again",
    "{a} is broken after the {b} change, what did we decide?",
    "can you check the {a} setup for {b} before I deploy",
    "remind me how {a} works with {b} and {c}",
    "what's the story with {a} in {b}",
)
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]{4,}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def on_topic(store: Store, rng: random.Random, count: int) -> list[tuple[str, str]]:
    """(prompt, wanted id) pairs around rarer words of random memories."""
    listed = store.list()
    with store.index.reading() as ix, ix.searcher() as searcher:
        reader = searcher.reader()
        analyzer = ix.schema["body"].analyzer
        prompts = []
        while len(prompts) < count:
            memory = store.get(rng.choice(listed).path)
            words = sorted(set(WORD.findall(memory.body)))
            rare = []
            for word in words:
                terms = [t.text for t in analyzer(word, mode="query")]
                if terms and 0 < min(reader.doc_frequency("body", t) for t in terms) < 300:
                    rare.append(word)
            if len(rare) < 3:
                continue
            a, b, c = rng.sample(rare, 3)
            prompts.append((rng.choice(TEMPLATES).format(a=a, b=b, c=c), memory.id))
    return prompts


def payload(prompt: str, session: str) -> str:
    return json.dumps(
        {"prompt": prompt, "session_id": session, "hook_event_name": "UserPromptSubmit"}
    )


def start_service(store: Path, hook: list[str], env: dict[str, str]) -> None:
    """Run the hook until the store's search service answers it (the hook starts it)."""
    from memstore import quickfind, quickrecall

    root = os.path.realpath(store)
    path = quickfind.socket_path(root)
    if path is None:
        sys.exit(f"{root}: too deep a path for the search service's socket")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        subprocess.run(hook, input="{}", capture_output=True, text=True, env=env, check=True)
        request = quickrecall.request_for(root, "{}", None)
        if (quickfind.ask(path, request) or {}).get("ok"):
            return
        time.sleep(0.5)
    sys.exit("the search service did not start (is the store large enough for a watcher?)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=Path("/tmp/membench/s10k"))
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--prompts", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--before", type=Path, help="a folder with an older memstore package to compare with"
    )
    args = parser.parse_args(argv)
    if not (args.store / ".memstore.toml").exists():
        generator = Path(__file__).with_name("generate.py")
        subprocess.run(
            [sys.executable, str(generator), "--count", str(args.count), "--out", str(args.store)],
            check=True,
        )
    store = Store(args.store)
    store.find("warm up the index")
    rng = random.Random(args.seed)
    topical = on_topic(store, rng, args.prompts)
    meta = json.loads((store.git_dir / "membench.json").read_text())
    needles = [(f"what do we know about {n['word']}?", n["id"]) for n in meta["needles"]]
    off = [(prompt, "") for prompt in OFF_TOPIC]

    # The bar, in process.
    print("## The relevance bar\n")
    print("| MIN_SHARE | MIN_RELATIVE | on-topic found | needles found | off-topic with output |")
    print("|---:|---:|---:|---:|---:|")
    scored = {
        prompt: recall.candidates(store, recall.prompt_words(prompt))
        for prompt, _ in topical + needles + off
    }

    def passes(prompt: str, share: float, relative: float) -> list[str]:
        found = scored[prompt]
        best = found[0].score if found else 0.0
        return [
            f.id
            for f in found
            if f.share >= share and f.score >= relative * best and not f.superseded
        ][: recall.MAX_MEMORIES]

    for share in (0.3, 0.4, 0.5, 0.6, 0.7):
        for relative in (0.0, 0.5):
            hit = sum(wanted in passes(p, share, relative) for p, wanted in topical)
            needle = sum(wanted in passes(p, share, relative) for p, wanted in needles)
            noisy = sum(bool(passes(p, share, relative)) for p, _ in off)
            print(
                f"| {share} | {relative} | {hit}/{len(topical)} | {needle}/{len(needles)} |"
                f" {noisy}/{len(off)} |"
            )

    # Tokens per prompt, with the shipped bar, through the real command, with the service and
    # in process.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    in_process = {**env, "MEM_BENCH_IN_PROCESS": "1"}
    hook = [sys.executable, "-P", "-m", "memstore", "--store", str(args.store), "recall"]
    start_service(args.store, hook, env)
    tokens: dict[str, list[int]] = {"on-topic": [], "needle": [], "off-topic": []}
    found_wanted = {"on-topic": 0, "needle": 0}
    differ = []
    ways = [("service", env), ("in-process", in_process)]
    if args.before:
        ways.append(("before", {**env, "PYTHONPATH": str(args.before)}))
    for kind, prompts in (("on-topic", topical), ("needle", needles), ("off-topic", off)):
        for number, (prompt, wanted) in enumerate(prompts):
            outs = [
                subprocess.run(
                    hook,
                    input=payload(prompt, f"bench-{kind}-{number}-{way}-{time.time_ns()}"),
                    capture_output=True,
                    text=True,
                    env=run_env,
                    check=True,
                ).stdout
                for way, run_env in ways
            ]
            if len(set(outs)) > 1:
                differ.append(prompt)
            out = outs[0]
            tokens[kind].append(-(-len(out) // 4))
            if wanted and wanted in out:
                found_wanted[kind] += 1
    print(f"\n## Tokens added per prompt (characters / 4), MIN_SHARE {recall.MIN_SHARE}\n")
    print("| prompts | count | silent | wanted memory in block | mean | p50 | p95 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, values in tokens.items():
        wanted_text = f"{found_wanted[kind]}" if kind in found_wanted else "-"
        print(
            f"| {kind} | {len(values)} | {sum(v == 0 for v in values)} | {wanted_text} |"
            f" {statistics.mean(values):.0f} | {statistics.median(values):.0f} |"
            f" {percentile(values, 0.95):.0f} | {max(values)} |"
        )
    count = sum(len(values) for values in tokens.values())
    print(
        f"\nOutput identical {' / '.join(way for way, _ in ways)}:"
        f" {count - len(differ)}/{count} prompts"
    )
    for prompt in differ:
        print(f"- differs: {prompt!r}")

    # Cold latency, alternated with the floor and a cold find.
    names = ["python -c pass", "recall hook, service", "recall hook, in process", "mem find"]
    if args.before:
        names.insert(3, "recall hook, before")
    samples: dict[str, list[float]] = {name: [] for name in names}
    before_env = {**env, "PYTHONPATH": str(args.before)} if args.before else env
    prompts = [p for p, _ in topical[: args.repeat]]
    for round_ in range(args.repeat + 1):
        prompt = prompts[round_ % len(prompts)]
        runs = {
            "python -c pass": ([sys.executable, "-c", "pass"], None, env),
            "recall hook, service": (
                hook,
                payload(prompt, f"lat-{round_}-{time.time_ns()}"),
                env,
            ),
            "recall hook, in process": (
                hook,
                payload(prompt, f"in-{round_}-{time.time_ns()}"),
                in_process,
            ),
            "recall hook, before": (
                hook,
                payload(prompt, f"old-{round_}-{time.time_ns()}"),
                before_env,
            ),
            "mem find": (
                [sys.executable, "-m", "memstore", "--store", str(args.store), "find", prompt],
                None,
                env,
            ),
        }
        for name in names:
            command, data, run_env = runs[name]
            started = time.perf_counter()
            subprocess.run(command, input=data, capture_output=True, text=True, env=run_env)
            if round_:  # the first round warms the page cache
                samples[name].append(1000 * (time.perf_counter() - started))
    load = os.getloadavg()[0]
    floor = statistics.median(samples["python -c pass"])
    print(f"\n## Cold latency at {store.list(limit=0).__len__()} memories (ms, load {load:.1f})\n")
    slow = statistics.median(samples["recall hook, in process"])
    print("| process | p50 | p95 | p50 / python -c pass | p50 / hook in process |")
    print("|---|---:|---:|---:|---:|")
    for name, values in samples.items():
        print(
            f"| {name} | {statistics.median(values):.0f} | {percentile(values, 0.95):.0f} |"
            f" {statistics.median(values) / floor:.1f} | {statistics.median(values) / slow:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
