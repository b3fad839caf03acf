"""Encrypted memories in a real store: add, find, show, edit, list, log, with and without a key."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pygit2
import pytest

from memstore import crypto, keys
from memstore.crypto import Keyring
from memstore.errors import IdentityError, RecipientsError
from memstore.index import SEALED_FIELDS
from memstore.report import CollectingReporter
from memstore.store import Store
from tests.conftest import Clock, mem_ok, run_mem

AGE = shutil.which("age")
GIT = shutil.which("git")
SECRET = "zebracanary"
TITLE = "The vault opens with zebracanary"


def plaintext_hits(store: Store, markers: tuple[str, ...] = (SECRET, "vault")) -> list[str]:
    """Where a marker appears: any git object (blobs, trees, commits) or a stored index field."""
    repo = pygit2.Repository(str(store.root))
    hits = []
    wanted = [m.encode() for m in markers]
    for oid in repo.odb:
        obj = repo.odb.read(oid)
        data = obj[1]
        hits += [f"object {oid}" for m in wanted if m in data.lower()]
    hits += [
        f"index {field}"
        for field in stored_index_values(store)
        if any(m in field.lower() for m in markers)
    ]
    return hits


def stored_index_values(store: Store) -> list[str]:
    """Every stored field and sortable column value of every indexed document, as text."""
    values: list[str] = []
    with store.index.reading() as ix, ix.searcher() as searcher:
        for doc in searcher.all_stored_fields():
            values += [f"{key}={value}" for key, value in doc.items()]
        reader = searcher.reader()
        for name in ("id", "created"):
            if reader.has_column(name):
                values += [
                    f"{name}#{value}" for value in reader.column_reader(name, translate=False)
                ]
    return values


@pytest.fixture
def keyed(store: Store) -> Store:
    report = store.key_init()
    assert report.created and report.recipients_file == ".age-recipients"
    return store


def add_secret(store: Store, text: str = f"{TITLE}\nline two\nline three\nline four\n") -> str:
    memory = store.add(text, tags=["vault"], type="fact", encrypt=True)
    return memory.id


def test_key_init_adds_own_key_and_git_setup(keyed: Store) -> None:
    identity = keys.load_identity()
    assert identity is not None
    assert keyed.recipients() == [(".age-recipients", identity.public)]
    assert "textconv" in str(keyed.repo.config["diff.age.textconv"])
    assert "*.md.age -text diff=age" in (keyed.root / ".gitattributes").read_text().splitlines()
    again = keyed.key_init()
    assert not again.created and again.recipients_file is None


def test_add_encrypt_names_by_id_and_hides_the_title(keyed: Store) -> None:
    memory = keyed.add(f"{TITLE}\nbody", encrypt=True)
    assert memory.path == f"memories/2026/11/{memory.id}.md.age"
    data = (keyed.root / memory.path).read_bytes()
    assert data.startswith(crypto.AGE_HEADER) and SECRET.encode() not in data
    head = keyed.repo.head.peel(pygit2.Commit)
    assert head.message == f"add {memory.id}"
    assert keyed.log(memory.id)[0].message == f"add {memory.id}"


def test_find_show_list_decrypt_for_the_key_holder(keyed: Store) -> None:
    memory_id = add_secret(keyed)
    keyed.add("A plain note about zebras")
    hits = keyed.find(SECRET)
    assert [h.id for h in hits] == [memory_id]
    assert hits[0].title == TITLE and hits[0].tags == ["vault"] and hits[0].type == "fact"
    assert f"**{SECRET}**" in hits[0].snippet
    assert [h.id for h in keyed.find("tag:vault type:fact")] == [memory_id]
    shown = keyed.get(memory_id)
    assert shown.title == TITLE and "line three" in shown.body
    listed = {item.id: item for item in keyed.list()}
    assert listed[memory_id].title == TITLE and listed[memory_id].created.startswith("2026-11-21")


def test_index_stores_no_plaintext(keyed: Store) -> None:
    add_secret(keyed)
    keyed.reindex()
    assert keyed.find(SECRET)
    values = stored_index_values(keyed)
    assert not [v for v in values if SECRET in v or "vault" in v or "fact" in v]
    assert (
        *("title", "tags", "type", "source", "session", "digest", "supersedes"),
        "expires",
    ) == SEALED_FIELDS
    home = keyed.git_dir / "memstore"
    assert home.stat().st_mode & 0o777 == 0o700


def test_update_and_edit_reencrypt_only_on_change(keyed: Store) -> None:
    memory_id = add_secret(keyed)
    path = keyed.root / keyed.get(memory_id).path
    before = path.read_bytes()
    assert keyed.update(memory_id, tags=["vault"]) is None
    assert keyed.edit(memory_id, lambda scratch: None) is None
    assert path.read_bytes() == before

    def editor(scratch: Path) -> None:
        scratch.write_text(scratch.read_text().replace("line three", "line 3 edited"))

    updated = keyed.edit(memory_id, editor)
    assert updated is not None and "line 3 edited" in updated.body
    assert path.read_bytes() != before and b"edited" not in path.read_bytes()
    assert keyed.repo.head.peel(pygit2.Commit).message == f"edit {memory_id}"
    assert [h.id for h in keyed.find("edited")] == [memory_id]
    assert (
        not list(Path("/dev/shm").glob(f"mem-{memory_id}-*")) if Path("/dev/shm").is_dir() else True
    )
    keyed.remove(memory_id)
    assert keyed.repo.head.peel(pygit2.Commit).message == f"remove {memory_id}"
    assert plaintext_hits(keyed) == []


def test_without_identity_encrypted_are_skipped_with_one_notice(
    keyed: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    memory_id = add_secret(keyed)
    add_secret(keyed, "another vault secret")
    keyed.add("A plain note about zebras")
    identity = keys.default_identity_path()
    hidden = tmp_path / "elsewhere.txt"
    identity.rename(hidden)
    reporter = CollectingReporter()
    other = Store(keyed.root, clock=clock, reporter=reporter)
    other.reindex()
    assert [h.title for h in other.find("zebras")] == ["A plain note about zebras"]
    assert other.find(SECRET) == []
    assert [t.title for t in other.list()] == ["A plain note about zebras"]
    other.add("another plain one")  # writes still work
    locked = [n for n in reporter.notices if "encrypted memories skipped" in n]
    assert locked == [
        "2 encrypted memories skipped: no identity to read them (run 'mem key init',"
        " or set MEM_IDENTITY)"
    ]
    with pytest.raises(IdentityError, match="is encrypted and there is no identity"):
        other.get(memory_id)
    assert other.check() == []
    hidden.rename(identity)  # the key comes back: the next search picks them up
    again = Store(keyed.root, clock=clock, reporter=CollectingReporter())
    assert [h.id for h in again.find(SECRET)] == [memory_id]


def test_memory_encrypted_to_someone_else_is_skipped_with_one_notice(
    keyed: Store, tmp_path: Path, clock: Clock
) -> None:
    stranger = keys.create_identity(tmp_path / "stranger.txt", keyed.clock())
    for name in ("01kh6ykp00h7tz87wt62xpt49t", "01kh6ykp00h7tz87wt62xpt49v"):
        path = keyed.root / f"memories/2026/11/{name}.md.age"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"---\nid: {name}\n---\nhidden\n".encode()
        path.write_bytes(crypto.encrypt(text, stranger.public))
    keyed.add("A plain note")
    reporter = CollectingReporter()
    other = Store(keyed.root, clock=clock, reporter=reporter)
    assert other.find("hidden") == [] and other.find("plain")
    assert reporter.warnings == []
    assert (
        reporter.notices.count(
            "2 encrypted memories skipped: not encrypted to your identity ('mem doctor' lists them)"
        )
        == 1
    )
    assert other.check() == []
    assert "2 encrypted memories not checked: not encrypted to your identity" in reporter.notices
    notes = [f for f in other.doctor() if f.area == "keys"]
    assert [f.severity for f in notes] == ["note"]
    assert "2 encrypted memories not encrypted to" in notes[0].problem
    path.write_bytes(b"age-encryption.org/v1\n" + b"x" * 40)  # damaged: a problem of its own
    problems = other.check()
    assert [p.path for p in problems] == [path.relative_to(keyed.root).as_posix()]
    assert "damaged or truncated ciphertext" in problems[0].message


def test_bad_recipients_line_refuses_the_write_and_changes_nothing(keyed: Store) -> None:
    (keyed.root / ".age-recipients").write_text("# team\nage1notakey\n")
    before = keyed.repo.head.target
    with pytest.raises(RecipientsError, match=r"^\.age-recipients:2: .*fix or remove that line"):
        keyed.add("secret", encrypt=True)
    assert keyed.repo.head.target == before
    assert not list((keyed.root / "memories").rglob("*.md.age"))


@pytest.mark.skipif(AGE is None, reason="the age tool is not installed")
def test_file_encrypted_by_hand_with_age_is_committed_and_found(keyed: Store) -> None:
    memory_id = add_secret(keyed)
    path = keyed.root / keyed.get(memory_id).path
    identity = keys.default_identity_path()
    plain = subprocess.run(
        [str(AGE), "-d", "-i", str(identity), str(path)], capture_output=True, check=True
    ).stdout
    changed = plain.replace(b"line two", b"line two by hand kiwifruit")
    public = keys.load_identity().public[0]  # type: ignore[union-attr]
    path.write_bytes(
        subprocess.run(
            [str(AGE), "-r", public], input=changed, capture_output=True, check=True
        ).stdout
    )
    assert [h.id for h in keyed.find("kiwifruit")] == [memory_id]
    assert keyed.commit_pending() == [path.relative_to(keyed.root).as_posix()]
    message = keyed.repo.head.peel(pygit2.Commit).message
    assert message == f"edit {memory_id} (changed outside mem)"


def test_policy_encrypts_a_type_and_a_tag(keyed: Store) -> None:
    marker = keyed.root / ".memstore.toml"
    marker.write_text(marker.read_text() + '\n[encrypt]\ntypes = ["secret"]\ntags = ["private"]\n')
    assert keyed.add("x", type="secret").path.endswith(".md.age")
    assert keyed.add("y", tags=["Private"]).path.endswith(".md.age")
    assert keyed.add("z").path.endswith(".md")
    assert keyed.add("w", type="secret", encrypt=False).path.endswith(".md")


def test_recipients_and_rekey(keyed: Store, tmp_path: Path) -> None:
    memory_id = add_secret(keyed)
    friend = keys.create_identity(tmp_path / "friend.txt", keyed.clock())
    path = keyed.root / keyed.get(memory_id).path
    with pytest.raises(Exception, match="not encrypted to your identity"):
        crypto.decrypt(path.read_bytes(), friend, "m")
    assert keyed.add_recipient(friend.public[0]) is True
    assert keyed.add_recipient(friend.public[0]) is False
    assert keyed.rekey() == [path.relative_to(keyed.root).as_posix()]
    assert keyed.repo.head.peel(pygit2.Commit).message == "rekey 1 encrypted memory"
    assert TITLE.encode() in crypto.decrypt(path.read_bytes(), friend, "m")
    mine = keys.load_identity().public[0]  # type: ignore[union-attr]
    assert keyed.remove_recipient(mine) is True
    with pytest.raises(RecipientsError, match="is the last key"):
        keyed.remove_recipient(friend.public[0])


def test_doctor_checks_keys(keyed: Store, tmp_path: Path) -> None:
    add_secret(keyed)
    assert [f for f in keyed.doctor() if f.area == "keys"] == []
    identity = keys.default_identity_path()
    identity.chmod(0o644)
    keyed.keyring.forget()
    found = [str(f) for f in keyed.doctor() if f.area == "keys"]
    assert any("readable by others" in line and "chmod 600" in line for line in found)
    identity.chmod(0o600)
    keyed.keyring.forget()
    (keyed.root / ".age-recipients").write_text("oops\n")
    found = [str(f) for f in keyed.doctor() if f.area == "keys"]
    assert any(".age-recipients:1:" in line for line in found)


def test_cli_add_find_show_and_errors(keyed: Store) -> None:
    root = str(keyed.root)
    added = run_mem("--store", root, "add", "--encrypt", "--json", f"{TITLE}\nmore")
    assert added.returncode == 0, added.stderr
    found = mem_ok("--store", root, "find", SECRET, "--json")
    assert '"title": "The vault opens with zebracanary"' in found.stdout
    identity = keys.default_identity_path()
    identity.chmod(0o644)
    failed = run_mem("--store", root, "find", SECRET)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"mem: error: the identity {identity} is readable by others (mode 644):"
        f" run 'chmod 600 {identity}'"
    ]


@pytest.mark.skipif(GIT is None, reason="the git program is not installed")
def test_git_diff_and_log_show_plaintext_to_the_key_holder(keyed: Store) -> None:
    memory_id = add_secret(keyed)
    keyed.update(memory_id, body=f"{TITLE}\nline two changed\n")
    log = subprocess.run(
        [str(GIT), "log", "-p", "--", "memories"],
        cwd=keyed.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "+line two changed" in log and "-line two" in log
    assert f"+title: {TITLE}" in log
    path = keyed.root / keyed.get(memory_id).path
    path.write_bytes(crypto.encrypt(b"---\nid: x\n---\nworking tree\n", keyed.recipients()[0][1]))
    diff = subprocess.run(
        [str(GIT), "diff"], cwd=keyed.root, capture_output=True, text=True, check=True
    ).stdout
    assert "+working tree" in diff
    keyring = Keyring()
    assert keyring.available()


def test_someone_elses_memory_added_by_hand_is_committed_as_it_is(
    keyed: Store, tmp_path: Path
) -> None:
    stranger = keys.create_identity(tmp_path / "stranger.txt", keyed.clock())
    name = "memories/2026/11/01kh6ykp00h7tz87wt62xpt49t.md.age"
    path = keyed.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        crypto.encrypt(b"---\nid: 01kh6ykp00h7tz87wt62xpt49t\n---\nx\n", stranger.public)
    )
    assert keyed.commit_pending() == [name]
    message = keyed.repo.head.peel(pygit2.Commit).message
    assert message == "add 01kh6ykp00h7tz87wt62xpt49t (changed outside mem)"
    path.write_bytes(b"not age at all")
    assert keyed.commit_pending() == []
    assert any("not age ciphertext" in w for w in keyed.reporter.warnings)  # type: ignore[attr-defined]


def test_unusable_identity_stops_the_search_and_is_not_remembered(
    keyed: Store, clock: Clock
) -> None:
    memory_id = add_secret(keyed)
    identity = keys.default_identity_path()
    identity.chmod(0o640)
    other = Store(keyed.root, clock=clock, reporter=CollectingReporter())
    with pytest.raises(IdentityError, match="readable by others"):
        other.reindex()
    identity.chmod(0o600)
    again = Store(keyed.root, clock=clock, reporter=CollectingReporter())
    assert [h.id for h in again.find(SECRET)] == [memory_id]
    assert again.index.skipped() == {}


def test_folder_recipients_file_is_not_a_stray_file(keyed: Store, tmp_path: Path) -> None:
    friend = keys.create_identity(tmp_path / "friend.txt", keyed.clock())
    assert keyed.add_recipient(friend.public[0], folder="memories/2026") is True
    memory = keyed.add("for the friend only", encrypt=True)
    assert keyed.recipients()[1] == (".age-recipients".join(["memories/2026/", ""]), friend.public)
    assert b"friend only" in crypto.decrypt(
        (keyed.root / memory.path).read_bytes(), friend, memory.path
    )
    assert keyed.check() == []
    assert keyed.find("friend") == []  # encrypted to the friend alone: not to this identity


def test_remove_by_path_needs_no_identity(keyed: Store, clock: Clock, tmp_path: Path) -> None:
    memory_id = add_secret(keyed)
    path = keyed.get(memory_id).path
    keys.default_identity_path().rename(tmp_path / "away.txt")
    keyless = Store(keyed.root, clock=clock, reporter=CollectingReporter())
    with pytest.raises(IdentityError):
        keyless.remove(memory_id)  # by id: the index could not read it
    removed = keyless.remove(path)
    assert removed.id == memory_id and not (keyed.root / path).exists()
    assert keyless.repo.head.peel(pygit2.Commit).message == f"remove {memory_id}"


def test_cli_keys_recipients_rekey_and_textconv(store: Store, tmp_path: Path) -> None:
    root = str(store.root)
    made = run_mem("--store", root, "key", "init", "--json")
    assert made.returncode == 0, made.stderr
    report = json.loads(made.stdout)
    assert report["created"] and report["recipients_file"] == ".age-recipients"
    assert store.recipients() == [(".age-recipients", report["public"])]
    added = run_mem("--store", root, "add", "--encrypt", f"{TITLE}\nline two")
    assert added.returncode == 0 and ".md.age" in added.stdout
    path = next((store.root / "memories").rglob("*.md.age"))
    raw = mem_ok("--store", root, "show", "--raw", str(path))
    assert raw.stdout.startswith("---\nid: ") and TITLE in raw.stdout
    friend = keys.create_identity(tmp_path / "friend.txt", store.clock())
    assert run_mem("--store", root, "recipients", "add", friend.public[0]).returncode == 0
    listed = json.loads(mem_ok("--store", root, "recipients", "list", "--json").stdout)
    assert listed == {
        "files": [{"path": ".age-recipients", "keys": [*report["public"], *friend.public]}]
    }
    rekeyed = run_mem("--store", root, "rekey")
    assert rekeyed.returncode == 0 and "re-encrypted 1 memory" in rekeyed.stderr
    assert TITLE.encode() in crypto.decrypt(path.read_bytes(), friend, "m")
    bad = run_mem("--store", root, "recipients", "add", "age1nope")
    assert bad.returncode == 1 and bad.stderr.startswith("mem: error: 'age1nope': ")
    shown = run_mem("textconv", str(path))
    assert shown.returncode == 0 and shown.stdout.startswith("---\nid: ")
    keyless = run_mem("textconv", str(path), env={"XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert keyless.returncode == 0
    assert keyless.stdout.startswith("(encrypted memory: ") and TITLE not in keyless.stdout


def test_an_encrypted_successor_is_found_without_a_stored_supersedes(keyed: Store) -> None:
    old = keyed.add("The vault opened with the old key")
    new = keyed.add(
        "The vault opens with the new key", encrypt=True, extra={"supersedes": [old.id]}
    )
    assert [m.id for m in keyed.successors(old.id)] == [new.id]
    assert not [v for v in stored_index_values(keyed) if old.id in v and "supersedes" in v]


def test_every_stored_field_is_sealed_or_public() -> None:
    """A stored field added to the schema later must be sealed for encrypted memories too."""
    from memstore.index import build_schema

    schema = build_schema()
    kept = {name for name, kind in schema.items() if kind.stored or kind.column_type}
    public = {"path", "id", "blob", "created", "created_text"}  # created_text is left out
    assert kept - set(SEALED_FIELDS) <= public


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_doctor_removes_decrypted_copies_of_an_interrupted_edit(keyed: Store) -> None:
    memory_id = add_secret(keyed)
    copy = Path("/dev/shm") / f"mem-{memory_id}-testcopy.md"
    copy.write_text("decrypted text")
    try:
        an_hour_ago = copy.stat().st_mtime - 3600  # by the clock that stamped it
        os.utime(copy, (an_hour_ago, an_hour_ago))
        found = [f for f in keyed.doctor() if "decrypted copy" in f.problem]
        assert len(found) == 1 and copy.name in found[0].problem and found[0].fixable
        keyed.doctor(fix=True)
        assert not copy.exists()
    finally:
        copy.unlink(missing_ok=True)
