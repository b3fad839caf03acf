"""Bytes on the wire for a day of one person's work, synced through git's smart HTTP.

    python benchmarks/wire_bytes.py [--adds 50] [--edits 20] [--syncs 10] [--root /tmp/mem-wire]

A store already holding `--existing` memories is on the server (git http-backend behind basic
authentication, tests/servers.py) and cloned twice: "laptop" does the day's work, `--adds`
memories added and `--edits` edits spread over `--syncs` syncs (a sync every 10 minutes or so),
and "desktop" syncs after each to receive it. Every byte goes through a counting TCP proxy (HTTP
headers included). Then the same commits are pushed once more, by the plain `git push` of a third
clone made before the day, also through the proxy, for comparison.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import HttpGitServer, Proxy, bare_repository  # noqa: E402

TOKEN = "wire-token"


def kb(count: int) -> str:
    return f"{count / 1024:,.1f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adds", type=int, default=50)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--syncs", type=int, default=10)
    parser.add_argument("--existing", type=int, default=200)
    parser.add_argument("--root", type=Path, default=Path("/tmp/mem-wire"))
    options = parser.parse_args()
    shutil.rmtree(options.root, ignore_errors=True)
    (options.root / "server").mkdir(parents=True)
    os.environ.update(MEM_GIT_TOKEN=TOKEN, MEM_GIT_USERNAME="me", MEM_WATCH="0")
    os.environ.setdefault("MEM_AUTHOR", "Me <me@example.com>")
    server = HttpGitServer(options.root / "server", {"me": TOKEN})
    bare_repository(options.root / "server" / "m.git")
    server.start()
    proxy = Proxy(server.port)
    url = server.url("m.git", port=proxy.port)
    from memstore.store import Store

    rng = random.Random(7)
    words = [
        "deploy",
        "build",
        "cache",
        "token",
        "index",
        "merge",
        "review",
        "queue",
        "retry",
        "branch",
        "shard",
    ]

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(40 + n % 60)) + "."

    laptop = Store.init(options.root / "laptop", remote=url)
    for n in range(options.existing):
        laptop.add(text(n), title=f"Existing {n}", check_duplicates=False)
    laptop.sync()
    desktop = Store.clone(url, options.root / "desktop")
    git_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    plain = options.root / "plain"
    subprocess.run(
        ["git", "clone", "-q", url.replace("://", f"://me:{TOKEN}@"), str(plain)],
        check=True,
        env=git_env,
    )
    start_commit = str(laptop.repo.head.target)
    proxy.up = proxy.down = 0
    ids = [m.id for m in laptop.list()]
    pushed_up = pushed_down = fetched_up = fetched_down = 0
    for sync in range(options.syncs):
        for _ in range(options.adds // options.syncs):
            ids.append(laptop.add(text(len(ids)), check_duplicates=False).id)
        for _ in range(options.edits // options.syncs):
            target = rng.choice(ids)
            laptop.update(target, body=laptop.get(target).body + "\n" + text(sync))
        proxy.up = proxy.down = 0
        laptop.sync()
        pushed_up, pushed_down = pushed_up + proxy.up, pushed_down + proxy.down
        proxy.up = proxy.down = 0
        desktop.sync()
        fetched_up, fetched_down = fetched_up + proxy.up, fetched_down + proxy.down
    proxy.up = proxy.down = 0
    # The same commits with plain git: one push of everything from the old clone.
    subprocess.run(
        ["git", "-C", str(plain), "fetch", "-q", str(laptop.root), "main"], check=True, env=git_env
    )
    subprocess.run(
        ["git", "-C", str(plain), "push", "-q", "--force", "origin", f"{start_commit}:main"],
        check=True,
        env=git_env,
    )
    proxy.up = proxy.down = 0
    subprocess.run(
        ["git", "-C", str(plain), "push", "-q", "origin", "FETCH_HEAD:main"],
        check=True,
        env=git_env,
    )
    git_up, git_down = proxy.up, proxy.down
    print(
        f"a day: {options.adds} adds, {options.edits} edits, {options.syncs} syncs;"
        f" store of {options.existing} memories before"
    )
    print(
        f"mem sync, the writer (fetch + push, {options.syncs} syncs):"
        f" sent {kb(pushed_up)}, received {kb(pushed_down)}"
    )
    print(
        f"mem sync, a reader ({options.syncs} syncs):"
        f" sent {kb(fetched_up)}, received {kb(fetched_down)}"
    )
    print(f"plain git push of the same commits at once: sent {kb(git_up)}, received {kb(git_down)}")
    server.stop()
    proxy.close()


if __name__ == "__main__":
    main()
