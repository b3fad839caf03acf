"""The floor's search: a cold Python process that runs one SQLite FTS5 query and prints the top 10.

    python benchmarks/fts_find.py DATABASE QUERY

Run by benchmarks/floor.py as the process `mem find` is compared with; kept this small so that
compiling it costs nothing next to the query (a script's bytecode is not cached).
"""

import sqlite3
import sys

database, query = sys.argv[1], sys.argv[2]
connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
rows = connection.execute(
    "SELECT path, title, snippet(mem, 3, '**', '**', ' … ', 16) FROM mem WHERE mem MATCH ?"
    " ORDER BY bm25(mem, 0.0, 3.0, 2.0, 1.0) LIMIT 10",
    (query,),
).fetchall()
for number, (path, title, snippet) in enumerate(rows, start=1):
    print(f"{number}. {title}\n   {path}\n   {' '.join(snippet.split())}")
if not rows:
    print("no memories found", file=sys.stderr)
