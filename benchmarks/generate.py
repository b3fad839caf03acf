"""Generate a store of realistic synthetic memories, the same files for the same seed.

    python benchmarks/generate.py --count 10000 --out /tmp/membench/s10k [--seed 42]

The files are built with `memstore.memory.new_memory` (so they are in the real format) from a
seeded random source and a fixed clock spread over about three years, written straight to disk
and committed in one commit: `Store.add` would make one commit per memory. A set of needle
memories with unique words and phrases is planted so that benchmark queries have known answers;
they are listed, with the generation parameters, in `.git/membench.json` (outside the memories
folder, so the store itself is unchanged). The search index is left for the next command to build
(or built at once with --index).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

from memstore import gitrepo, ids
from memstore.memory import Memory, new_memory
from memstore.store import Store

T = TypeVar("T")
META_FILE = "membench.json"
# Commits made by the generator carry this author whatever the machine's git config says, so
# the same seed gives the same commit too.
AUTHOR = "membench <membench@example.invalid>"
START = datetime(2023, 1, 2, 8, 0, 0, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)
ZONES = (
    UTC,
    timezone(timedelta(hours=1)),
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=5, minutes=30)),
)

TYPES = ("note", "decision", "fact", "preference", "procedure", "event")
TYPE_WEIGHTS = (35, 15, 20, 8, 12, 10)
SOURCES = ("alice", "bob", "carol", "claude-code", "cursor", "build-bot")
SOURCE_WEIGHTS = (20, 15, 8, 25, 10, 4)
NO_SOURCE_SHARE = 0.3


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


TAGS = _words("""
web bug postgres k8s docker ci api auth frontend backend python rust go typescript react vue
nginx redis kafka s3 aws gcp azure terraform ansible helm grafana prometheus logging metrics
tracing security oauth jwt sso ldap dns tls cors csp http2 grpc graphql rest websocket cache cdn
perf memory-leak latency database migration schema orm sqlalchemy django flask fastapi celery
cron queue rabbitmq sqs lambda serverless mobile ios android ux design accessibility i18n docs
onboarding testing pytest jest e2e flaky release deploy rollback incident postmortem oncall
alerting backup restore storage search elasticsearch sqlite mysql mongodb git github gitlab
code-review refactor tech-debt linting ruff mypy typing packaging pip npm webpack vite css html
browser payments billing stripe invoices email smtp notifications analytics ab-test
feature-flag config secrets vault encryption ssh vpn network firewall load-balancer autoscaling
cost hiring meeting planning roadmap retro customer support sla compliance gdpr audit ml llm
embeddings agents prompt editor vscode shell bash linux macos windows arm64 cpp cmake wasm
""")

# Common noun phrases: their words co-occur often, which gives AND and phrase queries work.
PHRASES = """
connection pool|cache invalidation|database migration|connection timeout|flaky test|
rate limiter|session token|feature flag|retry policy|error budget|health check|
load balancer|memory leak|build cache|release branch|schema change|query plan|
background job|dead letter queue|access token|config file|log level|disk space|
unit test|integration test|code review|on-call rotation|deploy pipeline|read replica|
write amplification|request latency|cold start|thread pool|merge conflict|api gateway|
service account|cron schedule|search index|test fixture|staging cluster|
""".replace("\n", "").split("|")
PHRASES = [p for p in PHRASES if p]

COMPONENTS = (
    "the billing service",
    "the auth gateway",
    "the search indexer",
    "the payments worker",
    "the nightly export job",
    "the admin dashboard",
    "the mobile app",
    "the ingestion pipeline",
    "the CI runners",
    "the staging cluster",
    "the notification service",
    "the reporting API",
    "the web frontend",
    "the data warehouse sync",
    "the feature flag service",
    "the upload handler",
    "the checkout flow",
    "the user settings page",
    "the metrics collector",
    "the deploy bot",
)
TOOLS = _words(
    "postgres redis nginx kafka docker kubernetes terraform celery gunicorn uvicorn webpack vite "
    "pytest jest sentry grafana prometheus elasticsearch sqlite mysql rabbitmq helm ansible "
    "pgbouncer envoy istio airflow spark dbt mypy ruff black eslint prettier bazel cmake gradle"
)
LANGS = ("Python", "Go", "Rust", "TypeScript", "C++", "C#", "Java", "Kotlin", "Swift", "Ruby")
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
ENVS = ("staging", "production", "dev", "QA", "the canary", "the preview environment")
ADJS = _words(
    "flaky slow broken stale noisy brittle expensive surprising intermittent undocumented "
    "deprecated risky outdated inconsistent redundant"
)
VERBS = _words(
    "get set parse load build fetch handle render validate retry flush sync resolve compute "
    "update create delete open close init encode decode serialize normalize schedule"
)
NOUNS = _words(
    "User Config Session Token Request Response Cache Index Query Payload Event Job Worker "
    "Queue Batch Schema Router Client Handler Buffer Invoice Order Account Report Upload Webhook"
)
SNAKE = _words(
    "retry count max pool size timeout ms batch limit user id created at cache ttl page size "
    "max retries worker concurrency idle timeout read only shard key api key"
)
DIRS = (
    "src",
    "app",
    "services/billing",
    "services/auth",
    "lib",
    "pkg/server",
    "web/src/components",
    "scripts",
    "deploy/k8s",
    "config",
    "tests",
    "internal/queue",
)
EXTS = ("py", "go", "ts", "tsx", "rs", "yaml", "toml", "sql", "cpp", "sh", "json", "md")
ERRORS = _words(
    "ERR_CONNECTION_REFUSED ECONNRESET ETIMEDOUT ENOSPC EADDRINUSE OOMKilled SIGSEGV SIGKILL "
    "CrashLoopBackOff ImagePullBackOff ERR_SSL_PROTOCOL_ERROR E11000 ORA-00060 "
    "ERR_TOO_MANY_REDIRECTS DEADLINE_EXCEEDED UNAVAILABLE HTTP_502 HTTP_429 EPIPE ENOENT"
)
TICKET_PREFIXES = ("PAY", "OPS", "WEB", "AUTH", "INFRA", "DATA", "MOB", "SEC")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")

SENTENCES = (
    "We moved {comp} to {tool} after {err} kept showing up in {path}.",
    "The {phrase} in {comp} is configured in {path} and defaults to {num}.",
    "{Person} found that {ident} returns stale data when the {phrase} is disabled.",
    "After upgrading {tool} to {ver}, {comp} started failing with {err} on {env}.",
    "Never call {ident} from inside a transaction: it opens its own connection.",
    "The fix for {ticket} was to raise {snake} from {num} to {num2} in {path}.",
    "Deploys to {env} happen on {day} mornings; ask {person} before touching {comp}.",
    "Our {phrase} broke again because {ident} ignores the {snake} setting.",
    "Decided to keep {tool} for {comp} because rewriting it in {lang} is not worth it yet.",
    "Benchmark: {ident} takes {dur} at the median and {dur2} at p95 on {host}.",
    "Run `{tool} {flag}` before pushing, otherwise the {phrase} job fails on CI.",
    "The {adj} {phrase} in {comp} was caused by a missing index on {snake}.",
    "See commit {hash} for the workaround; the real fix is tracked in {ticket}.",
    "{Person} prefers {lang} for small services and wants {tool} everywhere else.",
    "When {err} appears in the logs of {host}, restart {comp} and check {path}.",
    "To rotate the {phrase}, run {path} with the {snake} flag and wait {dur}.",
    "The {adj} part of {comp} is {ident}, which nobody has touched since {ver}.",
    "Incident {ticket}: {comp} was down for {dur} because the {phrase} filled up.",
    "We agreed to use {tool} {ver} and pin it in {path} until the {phrase} is fixed.",
    "A {adj} {phrase} usually means {ident} is retrying without backoff.",
    "{Person} and {person2} reviewed {ticket} and asked for a test around {ident}.",
    "Set {snake} to {num} on {env}; the default of {num2} caused {err}.",
    "The {lang} client wraps {err} in its own exception, so catch it in {ident}.",
    "Migrating {comp} from {tool} to {tool2} saved about {num} dollars a month.",
    "Keep the {phrase} under {num} entries or {comp} slows down noticeably.",
    "Step {num3}: run {path}, then check that {ident} reports no {err}.",
    "The {phrase} for {comp} lives in {path}; edit it there, not in the dashboard.",
    "{Person} noticed a {adj} {phrase} on {host} right after the {ver} release.",
    "We stopped using {tool} for {comp} because of {err} under load.",
    "Ping {person} in the {tag} channel if {ident} starts timing out again.",
    "Profiling showed {ident} spending {dur} in {tool} for every request.",
    "The {lang} port of {ident} lives in {path} and mirrors the old behaviour exactly.",
    "On {day} the {phrase} on {env} was rebuilt from scratch, which took {dur}.",
    "Remember that {host} runs {tool} {ver}, not the version pinned in {path}.",
    "The team chose {tool} over {tool2} for the {phrase} because it is simpler to operate.",
    "Tests in {path} are {adj} whenever {snake} is lower than {num}.",
    "Rolling back {comp} to {ver} fixed {err}; the cause is still unknown ({ticket}).",
    "{Person} wrote a script in {path} that checks the {phrase} every {dur}.",
    "Code review rule: every change to {ident} needs a test in {path}.",
    "The {phrase} and the {phrase2} interact badly when {comp} is under load.",
)
# Appended to some sentences: real notes explain themselves, so sentences run long.
CLAUSES = (
    "because the {phrase} was not sized for {num} requests per second",
    "although {person} measured only {dur} on {host} last week",
    "so the {phrase} has to be warmed up before traffic arrives",
    "which is why {ident} now logs {err} at warning level",
    "and the dashboards in {tool} confirm it for {env}",
    "unless {snake} is overridden in {path}",
    "as discussed in {ticket} with {person} and {person2}",
    "until {tool} {ver} ships the upstream fix",
    "while the {phrase2} keeps working as before",
    "and {person} wants a regression test in {path} first",
)
OPENERS = {
    "note": ("Notes on", "Thoughts about", "TODO:", "Reminder about", "Observation on", ""),
    "decision": ("Use", "Switch to", "Adopt", "Drop", "Keep", "Decision:", "Standardize on"),
    "fact": ("The", "Our", "How", "Where", "Why", ""),
    "preference": ("Prefer", "Always", "Never", "Avoid", "Favor", ""),
    "procedure": ("How to", "Steps to", "Runbook:", "Checklist for", "Procedure to"),
    "event": ("Outage of", "Incident:", "Released", "Migrated", "Postmortem:", "Upgraded"),
}
TITLE_WORDS = _words(
    "for in on with after before during the our new old main shared internal nightly weekly "
    "slow fast broken flaky safe default custom remote local large small cold warm"
)
FLAGS = ("--no-cache", "--verbose", "-x", "--dry-run", "--fix", "--all", "-j 4", "--check")


@dataclass
class Needle:
    """A memory planted with a unique word, phrase and code identifier."""

    word: str
    phrase: str
    code: str
    id: str = ""
    path: str = ""


NEEDLE_WORDS = (
    "quokkaflux",
    "zephyrwick",
    "marzipanode",
    "obsidianroll",
    "glimmerhaven",
    "tundrabyte",
    "pemmicanrelay",
    "saffronlatch",
    "kelpiegrid",
    "bramblecast",
    "nimbusforge",
    "quillharbor",
    "yarrowspoke",
    "cobaltmoth",
    "fennelgate",
    "juniperwisp",
    "larkspurcode",
    "mandolinvault",
    "ochrestitch",
    "wombatsignal",
)
NEEDLE_PHRASES = (
    "purple lighthouse protocol",
    "silent walrus handshake",
    "velvet thunder ledger",
    "crooked lantern schedule",
    "frozen pelican checksum",
    "amber tortoise migration",
    "hollow violin cascade",
    "paper dragon quorum",
    "rusty compass rollover",
    "sleepy glacier cursor",
    "tangerine falcon budget",
    "woolen comet sandbox",
    "brass octopus timeout",
    "dusty meadow tokenizer",
    "golden badger lattice",
    "marble otter pipeline",
    "quiet jackal archive",
    "scarlet heron mutex",
    "violet moose gateway",
    "copper sparrow digest",
)


def _zipf_weights(n: int, s: float = 1.0) -> list[float]:
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


class Writer:
    """Seeded text: titles, bodies and tags that look like notes about software work."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        # Shuffled once per seed so that which tag is common depends on the seed, not the list.
        self.tags = list(TAGS)
        rng.shuffle(self.tags)
        self.tag_weights = _zipf_weights(len(self.tags), 0.9)
        self.phrase_weights = _zipf_weights(len(PHRASES), 0.7)

    def pick(self, items: Sequence[T]) -> T:
        return items[self.rng.randrange(len(items))]

    def ident(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.45:
            return (
                self.pick(VERBS)
                + self.pick(NOUNS)
                + (self.pick(NOUNS) if rng.random() < 0.3 else "")
            )
        if kind < 0.8:
            words = rng.sample(SNAKE, rng.randint(2, 3))
            return "_".join(words)
        return f"{self.pick(NOUNS)}.{self.pick(VERBS)}{self.pick(NOUNS)}"

    def path(self) -> str:
        rng = self.rng
        name = "_".join(rng.sample(SNAKE, rng.randint(1, 2))) if rng.random() < 0.6 else "app"
        return f"{self.pick(DIRS)}/{name}.{self.pick(EXTS)}"

    def version(self) -> str:
        rng = self.rng
        if rng.random() < 0.5:
            return f"v{rng.randint(0, 5)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}"
        return f"{rng.randint(1, 20)}.{rng.randint(0, 12)}"

    def duration(self) -> str:
        rng = self.rng
        return self.pick(
            (
                f"{rng.randint(2, 950)} ms",
                f"{rng.randint(1, 59)} s",
                f"{rng.randint(2, 45)} minutes",
                f"{rng.randint(2, 12)} hours",
            )
        )

    def phrase(self) -> str:
        return self.rng.choices(PHRASES, self.phrase_weights)[0]

    def sentence(self) -> str:
        rng = self.rng
        template = self.pick(SENTENCES)
        person, person2 = rng.sample(PEOPLE, 2)
        tool, tool2 = rng.sample(TOOLS, 2)
        values = {
            "comp": self.pick(COMPONENTS),
            "tool": tool,
            "tool2": tool2,
            "err": self.pick(ERRORS),
            "path": self.path(),
            "phrase": self.phrase(),
            "phrase2": self.phrase(),
            "num": str(rng.choice((rng.randint(2, 64), rng.randint(100, 5000)))),
            "num2": str(rng.randint(2, 512)),
            "num3": str(rng.randint(1, 9)),
            "ident": self.ident(),
            "person": person,
            "Person": person.capitalize(),
            "person2": person2,
            "ver": self.version(),
            "env": self.pick(ENVS),
            "ticket": f"{self.pick(TICKET_PREFIXES)}-{rng.randint(10, 9999)}",
            "day": self.pick(DAYS),
            "snake": "_".join(rng.sample(SNAKE, 2)),
            "lang": self.pick(LANGS),
            "dur": self.duration(),
            "dur2": self.duration(),
            "host": f"{self.pick(('db', 'api', 'web', 'worker', 'cache'))}-"
            f"{self.pick(('prod', 'staging', 'dev'))}-{rng.randint(1, 40)}",
            "hash": f"{rng.getrandbits(28):07x}",
            "adj": self.pick(ADJS),
            "flag": self.pick(FLAGS),
            "tag": self.pick(self.tags[:40]),
        }
        text = template.format(**values)
        if rng.random() < 0.55 and text.endswith("."):
            text = text[:-1] + ", " + self.pick(CLAUSES).format(**values) + "."
        return text

    def body(self) -> str:
        rng = self.rng
        count = rng.choices(range(1, 9), (6, 12, 16, 16, 14, 13, 12, 11))[0]
        sentences = [self.sentence() for _ in range(count)]
        while sum(len(s) + 1 for s in sentences) < 200:
            sentences.append(self.sentence())
        # Some bodies are paragraphs, some are Markdown lists: both occur in real notes.
        if count >= 4 and rng.random() < 0.25:
            return sentences[0] + "\n\n" + "\n".join(f"- {s}" for s in sentences[1:]) + "\n"
        if count >= 3 and rng.random() < 0.4:
            cut = rng.randint(1, count - 1)
            return " ".join(sentences[:cut]) + "\n\n" + " ".join(sentences[cut:]) + "\n"
        return " ".join(sentences) + "\n"

    def title(self, kind: str) -> str:
        rng = self.rng
        length = rng.randint(4, 12)
        words: list[str] = [w for w in self.pick(OPENERS[kind]).split() if w]
        pool: list[Callable[[], str]] = [
            lambda: self.phrase(),
            lambda: self.pick(TOOLS),
            lambda: self.pick(COMPONENTS).removeprefix("the "),
            lambda: self.pick(TITLE_WORDS),
            lambda: self.pick(ADJS),
            lambda: self.ident(),
            lambda: self.pick(ERRORS),
            lambda: self.pick(self.tags),
            lambda: self.pick(LANGS),
        ]
        while len(words) < length:
            words.extend(self.pick(pool)().split())
        text = " ".join(words[:length])
        return text[0].upper() + text[1:]

    def tag_list(self) -> list[str]:
        count = self.rng.choices(range(6), (12, 22, 26, 20, 12, 8))[0]
        chosen: list[str] = []
        while len(chosen) < count:
            tag = self.rng.choices(self.tags, self.tag_weights)[0]
            if tag not in chosen:
                chosen.append(tag)
        return chosen


def _moments(rng: random.Random, count: int) -> list[datetime]:
    """Sorted creation times over the span, each in one of a few time zones."""
    seconds = sorted(rng.randrange(int(SPAN.total_seconds())) for _ in range(count))
    return [(START + timedelta(seconds=s)).astimezone(rng.choice(ZONES)) for s in seconds]


def _seeded_id(rng: random.Random, moment: datetime) -> str:
    # ids.new_id takes its random bits from os.urandom; this is the same layout, seeded.
    value = (int(moment.timestamp() * 1000) << 80) | rng.getrandbits(80)
    chars = []
    for _ in range(ids.ID_LENGTH):
        chars.append(ids.ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def build_memories(count: int, seed: int) -> tuple[list[Memory], list[Needle]]:
    """The memories of a store of count memories, and the planted needles."""
    rng = random.Random(seed)
    writer = Writer(rng)
    moments = _moments(rng, count)
    needle_count = min(len(NEEDLE_WORDS), count)
    needle_at = dict(zip(rng.sample(range(count), needle_count), range(needle_count), strict=True))
    needles: list[Needle] = []
    memories: list[Memory] = []
    paths: set[str] = set()
    for number, moment in enumerate(moments):
        kind = rng.choices(TYPES, TYPE_WEIGHTS)[0]
        title = writer.title(kind)
        body = writer.body()
        tags = writer.tag_list()
        source = None if rng.random() < NO_SOURCE_SHARE else rng.choices(SOURCES, SOURCE_WEIGHTS)[0]
        needle = None
        if number in needle_at:
            k = needle_at[number]
            needle = Needle(
                word=NEEDLE_WORDS[k],
                phrase=NEEDLE_PHRASES[k],
                code=f"ERR_{NEEDLE_WORDS[k].upper()}_{k:02d}",
            )
            planted = (
                f"The {needle.word} switch controls the {needle.phrase}; when it misbehaves"
                f" the logs show {needle.code}."
            )
            body = body.rstrip("\n") + "\n\n" + planted + "\n"
        while True:
            memory = new_memory(
                body,
                now=moment,
                title=title,
                tags=tags,
                type=kind,
                source=source,
                memory_id=_seeded_id(rng, moment),
            )
            if memory.path not in paths:
                break
        paths.add(memory.path)
        memories.append(memory)
        if needle is not None:
            needle.id, needle.path = memory.id, memory.path
            needles.append(needle)
    return memories, needles


def generate(
    count: int, out: Path, seed: int = 42, force: bool = False, index: bool = False
) -> float:
    """Create a store of count memories at out; return the seconds it took."""
    started = time.perf_counter()
    out = out.expanduser().resolve()
    if out.exists():
        if not force:
            raise SystemExit(f"{out} exists: remove it or pass --force")
        shutil.rmtree(out)
    os.environ["MEM_AUTHOR"] = AUTHOR
    store = Store.init(out, clock=lambda: START)
    memories, needles = build_memories(count, seed)
    changes: dict[str, bytes] = {}
    made_dirs: set[Path] = set()
    for memory in memories:
        data = memory.to_bytes()
        target = out / memory.path
        if target.parent not in made_dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(target.parent)
        target.write_bytes(data)
        changes[memory.path] = data
    last = memories[-1].created if memories else START
    gitrepo.commit_files(
        store.repo, dict(changes), f"Generate {count} memories (seed {seed})", last or START
    )
    meta = {
        "count": count,
        "seed": seed,
        "needles": [asdict(n) for n in needles],
        "phrases": PHRASES,
        "tags": Writer(random.Random(seed)).tags[:10],
    }
    (store.git_dir / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    if index:
        store.reindex()
    else:
        # Store.init made an empty index; left behind, the next search would catch up on every
        # file one update at a time. Without it, the next command does a full rebuild instead.
        shutil.rmtree(store.index.home, ignore_errors=True)
    return time.perf_counter() - started


def read_meta(store: Path) -> dict[str, object] | None:
    """The generation parameters of a generated store, or None if it was not generated here."""
    try:
        data = json.loads((store / ".git" / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True, help="how many memories")
    parser.add_argument("--out", type=Path, required=True, help="store folder to create")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--force", action="store_true", help="replace an existing folder")
    parser.add_argument(
        "--index",
        action="store_true",
        help="build the search index too (else the next command does)",
    )
    args = parser.parse_args(argv)
    seconds = generate(args.count, args.out, args.seed, args.force, args.index)
    print(f"generated {args.count} memories in {args.out} in {seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
