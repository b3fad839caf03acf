"""Secret redaction (memstore/secrets.py) and its use by mem add, update, edit and import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memstore import secrets
from memstore.report import CollectingReporter
from memstore.store import Store
from tests.conftest import mem_ok
from tests.session_logs import PRIVATE_KEY, SECRETS

ORDINARY = """\
Merged 3f786850e387550fdab836ed7e6dc881de23001b into main (short: 3f78685).
Request 123e4567-e89b-12d3-a456-426614174000 failed; see memory 01kjma0jhva66abhew89jqq4wv.
The favicon is data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADU
in the CSS, and the blob aGVsbG8gd29ybGQgZnJvbSB0aGUgdGVzdHMgb2YgbWVtc3RvcmU= decodes to text.
sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 of the empty file.
Use scikit-learn (sklearn), not sk-learn; risk-free and task-based work.
MAX_TOKENS=4096 and TOKEN_LIMIT is unrelated; GOOGLE_APPLICATION_CREDENTIALS=/etc/gcp.json
PASSWORD=${DB_PASSWORD} comes from the environment; API_KEY=<your key here>
token = token
api_key = os.environ["API_KEY"]
secret_key = settings.SECRET_KEY
Connect to postgres://localhost:5432/app or https://example.com:8443/path;
git@github.com:org/repo.git is a remote.
The docs' example key AKIAIOSFODNN7EXAMPLE is not a secret.
Run `mem find "password reset"`: the password policy says 12 characters.
"""


@pytest.mark.parametrize("kind", sorted(k for k in SECRETS if k not in ("private-key",)))
def test_each_kind_of_secret_is_redacted(kind: str) -> None:
    value = SECRETS[kind]
    text = {
        "aws-secret-key": f"aws_secret_access_key = {value}",
        "url-password": f"DATABASE_URL=postgres://shop:{value}@db.internal:5432/shop",
        "env-secret": f"export SESSION_SECRET={value}",
    }.get(kind, f"the value is {value} here")
    result = secrets.redact(text)
    assert value not in result.text
    assert f"[redacted:{kind}]" in result.text
    assert result.counts == {kind: 1}


def test_a_private_key_block_goes_whole_and_the_text_around_it_stays() -> None:
    result = secrets.redact(f"before\n{PRIVATE_KEY}\nafter")
    assert result.text == "before\n[redacted:private-key]\nafter"
    cut = secrets.redact("key: " + PRIVATE_KEY.split("\n-----END")[0])  # a log cut off mid-key
    assert SECRETS["private-key"] not in cut.text and cut.counts == {"private-key": 1}


def test_names_stay_and_only_values_go() -> None:
    text = "API_KEY=abc123\nexport DB_PASSWORD='hunter2'\nhttps://ana:hunter2@git.example.com/x"
    assert secrets.redact(text).text == (
        "API_KEY=[redacted:env-secret]\nexport DB_PASSWORD=[redacted:env-secret]\n"
        "https://ana:[redacted:url-password]@git.example.com/x"
    )


def test_ordinary_technical_text_is_left_alone() -> None:
    result = secrets.redact(ORDINARY)
    assert result.counts == {}
    assert result.text == ORDINARY


def test_redacting_twice_changes_nothing_more() -> None:
    once = secrets.redact(f"GITHUB_TOKEN={SECRETS['github-token']}")
    again = secrets.redact(once.text)
    assert again.text == once.text and again.counts == {}


def test_the_warning_names_the_kinds_and_the_way_to_keep_them() -> None:
    found = secrets.redact(f"{SECRETS['github-token']} {SECRETS['github-token']} {SECRETS['jwt']}")
    assert secrets.warning(found.counts) == (
        "redacted 3 secrets (2 github-token, 1 jwt) before saving; --allow-secrets keeps them"
    )


def test_store_add_redacts_text_title_and_fields(
    store: Store, reporter: CollectingReporter
) -> None:
    token = SECRETS["github-token"]
    memory = store.add(
        f"CI uses {token} to push tags",
        title=f"CI token {token}",
        extra={"note": f"rotate {token}"},
    )
    data = (store.root / memory.path).read_bytes().decode()
    assert token not in data and token not in memory.path
    assert memory.title == "CI token [redacted:github-token]"
    assert "rotate [redacted:github-token]" in data
    assert reporter.warnings == [
        "redacted 3 secrets (3 github-token) before saving; --allow-secrets keeps them"
    ]


def test_allow_secrets_keeps_them(store: Store, reporter: CollectingReporter) -> None:
    token = SECRETS["github-token"]
    memory = store.add(f"CI uses {token}", allow_secrets=True)
    assert token in (store.root / memory.path).read_text()
    assert reporter.warnings == []


def test_update_and_edit_redact_what_they_bring_in(store: Store) -> None:
    memory = store.add("The staging database")
    key = SECRETS["aws-access-key"]
    updated = store.update(memory.id, body=f"The staging database uses {key}")
    assert updated is not None and key not in (store.root / updated.path).read_text()

    def editor(path: Path) -> None:
        path.write_text(path.read_text() + f"\nSTRIPE_KEY={SECRETS['stripe-key']}\n")

    edited = store.edit(memory.id, editor)
    assert edited is not None
    text = (store.root / edited.path).read_text()
    assert SECRETS["stripe-key"] not in text and "STRIPE_KEY=[redacted:stripe-key]" in text


def test_jsonl_import_redacts_and_counts(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    line = {"title": "deploy", "body": f"push with {SECRETS['github-token']}", "tags": ["ci"]}
    source.write_text(json.dumps(line) + "\n")
    result = store.import_memories(source)
    assert result.redacted == {"github-token": 1}
    assert result.to_dict()["redacted"] == {"github-token": 1}
    assert SECRETS["github-token"] not in (store.root / result.added[0].path).read_text()


def test_mem_add_warns_in_one_line_and_allow_secrets_keeps(tmp_path: Path) -> None:
    store_path = tmp_path / "s"
    mem_ok("init", str(store_path))
    token = SECRETS["slack-token"]
    added = mem_ok("add", f"the bot posts with {token}", "--store", str(store_path), "--json")
    assert added.stderr == (
        "mem: warning: redacted 1 secret (1 slack-token) before saving;"
        " --allow-secrets keeps them\n"
    )
    path = store_path / json.loads(added.stdout)["path"]
    assert token not in path.read_text()
    kept = mem_ok("add", f"kept {token}", "--allow-secrets", "--store", str(store_path), "--json")
    assert kept.stderr == ""
    assert token in (store_path / json.loads(kept.stdout)["path"]).read_text()
