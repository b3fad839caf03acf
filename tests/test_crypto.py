"""The encrypted format, identities and recipients files: real age keys, the reference tool."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memstore import crypto, keys
from memstore.crypto import Keyring
from memstore.errors import DecryptionError, IdentityError, RecipientsError
from memstore.memory import parse

FIXTURES = Path(__file__).parent / "fixtures" / "encrypted"
AGE = shutil.which("age")
NOW = datetime(2026, 11, 21, 10, 0).astimezone()


def fixture_identity(tmp_path: Path) -> Path:
    """The golden fixtures' identity, copied to a 0600 file (git does not keep modes)."""
    target = tmp_path / "fixture-identity.txt"
    shutil.copyfile(FIXTURES / "identity.txt", target)
    target.chmod(0o600)
    return target


@pytest.fixture
def identity(tmp_path: Path) -> keys.Identity:
    return keys.create_identity(tmp_path / "config" / "memstore" / "identity.txt", NOW)


# Identities


def test_create_identity_is_private_and_in_age_keygen_format(identity: keys.Identity) -> None:
    path = identity.path
    assert path == keys.default_identity_path()  # XDG_CONFIG_HOME is honoured
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    lines = path.read_text().splitlines()
    assert lines[1] == f"# public key: {identity.public[0]}"
    assert lines[2].startswith("AGE-SECRET-KEY-1")
    loaded = keys.load_identity()
    assert loaded is not None and loaded.public == identity.public


def test_create_identity_never_overwrites(identity: keys.Identity) -> None:
    before = identity.path.read_bytes()
    with pytest.raises(IdentityError, match="exists already"):
        keys.create_identity(identity.path, NOW)
    assert identity.path.read_bytes() == before


def test_no_identity_is_none_but_a_missing_mem_identity_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert keys.load_identity() is None
    monkeypatch.setenv("MEM_IDENTITY", str(tmp_path / "nowhere.txt"))
    with pytest.raises(IdentityError, match="MEM_IDENTITY names .*nowhere.txt, which does not"):
        keys.load_identity()


def test_identity_readable_by_others_is_refused(identity: keys.Identity) -> None:
    identity.path.chmod(0o644)
    with pytest.raises(IdentityError) as caught:
        keys.load_identity()
    assert str(caught.value) == (
        f"the identity {identity.path} is readable by others (mode 644):"
        f" run 'chmod 600 {identity.path}'"
    )


def test_malformed_identity_line_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "id.txt"
    bad.write_text("# comment\nnot a key\n")
    bad.chmod(0o600)
    with pytest.raises(IdentityError, match=r"id.txt:2: not an age secret key"):
        keys.load_identity(bad)


def test_ssh_key_adopted_through_mem_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is not installed")
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@host", "-f", str(key)],
        check=True,
    )
    monkeypatch.setenv("MEM_IDENTITY", str(key))
    identity, created = keys.create_or_adopt(NOW)
    assert not created and identity.path == key
    public = " ".join(key.with_suffix(".pub").read_text().split()[:2])
    assert identity.public == [public]
    key.with_suffix(".pub").unlink()  # the private key file carries it too
    assert keys.load_identity() is not None and keys.load_identity().public == [public]  # type: ignore[union-attr]
    sealed = crypto.encrypt(b"secret text", identity.public)
    assert Keyring().decrypt(sealed, "x.md.age") == b"secret text"


# Recipients files


def test_recipients_file_parses_comments_and_blank_lines(identity: keys.Identity) -> None:
    text = f"# team\n\n{identity.public[0]}\n  # indented comment\nssh-ed25519 {'A' * 3}\n"
    with pytest.raises(RecipientsError) as caught:
        keys.parse_recipients(text, ".age-recipients")
    assert str(caught.value).startswith(".age-recipients:5: invalid public key")
    assert "fix or remove that line" in str(caught.value)
    assert keys.parse_recipients(text.rsplit("ssh", 1)[0], "r") == [identity.public[0]]


def test_nearest_recipients_file_applies(tmp_path: Path, identity: keys.Identity) -> None:
    root = tmp_path / "store"
    (root / "memories" / "work" / "2026").mkdir(parents=True)
    (root / ".age-recipients").write_text(identity.public[0] + "\n")
    second = keys.create_identity(tmp_path / "second.txt", NOW).public[0]
    (root / "memories" / "work" / ".age-recipients").write_text(f"# work\n{second}\n")
    assert keys.recipients_for(root, "memories/2026/11/a.md.age") == identity.public
    assert keys.recipients_for(root, "memories/work/2026/b.md.age") == [second]
    (root / ".age-recipients").unlink()
    with pytest.raises(RecipientsError, match="no recipients for memories/2026/11/a.md.age"):
        keys.recipients_for(root, "memories/2026/11/a.md.age")


def test_recipient_edits_keep_other_lines(identity: keys.Identity) -> None:
    text = "# who\nage1old\n"
    added = keys.with_recipient(text, identity.public[0])
    assert added == f"# who\nage1old\n{identity.public[0]}\n"
    assert keys.with_recipient(added, identity.public[0]) is None
    assert keys.without_recipient(added, "age1old") == f"# who\n{identity.public[0]}\n"
    assert keys.without_recipient(added, "age1absent") is None


# The format


def test_round_trip_is_binary_age_v1(identity: keys.Identity) -> None:
    sealed = crypto.encrypt(b"---\nid: x\n---\nbody\n", identity.public)
    assert sealed.startswith(crypto.AGE_HEADER)
    assert b"-----BEGIN" not in sealed
    assert crypto.decrypt(sealed, identity, "a.md.age") == b"---\nid: x\n---\nbody\n"


def test_golden_fixtures_still_open(tmp_path: Path) -> None:
    identity = keys.load_identity(fixture_identity(tmp_path))
    assert identity is not None
    expected = (FIXTURES / "v1-memory.md").read_bytes()
    for name in ("01kh6ykp00h7tz87wt62xpt49t.md.age", "v1-armored.md.age"):
        plain = crypto.decrypt((FIXTURES / name).read_bytes(), identity, name)
        assert plain == expected, name
    memory = parse(expected, "memories/2026/11/01kh6ykp00h7tz87wt62xpt49t.md.age")
    assert memory.id == "01kh6ykp00h7tz87wt62xpt49t" and memory.tags == ["ops", "secret"]


def test_wrong_key_says_so(tmp_path: Path, identity: keys.Identity) -> None:
    sealed = (FIXTURES / "01kh6ykp00h7tz87wt62xpt49t.md.age").read_bytes()
    with pytest.raises(DecryptionError) as caught:
        crypto.decrypt(sealed, identity, "m.md.age")
    assert str(caught.value) == (
        f"m.md.age: not encrypted to your identity ({identity.path}): ask someone who can read"
        " it to add your public key ('mem recipients add KEY') and run 'mem rekey'"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "m.md.age: empty: restore it from git history"),
        (b"---\nid: x\n---\n", "m.md.age: not age ciphertext: restore it"),
        (b"age-encryption.org/v2\n-> X\n", "m.md.age: written in a newer age format"),
    ],
)
def test_not_age_or_newer_format(identity: keys.Identity, data: bytes, message: str) -> None:
    with pytest.raises(DecryptionError, match=message):
        crypto.decrypt(data, identity, "m.md.age")


def test_truncated_ciphertext_is_reported_as_damaged(identity: keys.Identity) -> None:
    sealed = crypto.encrypt(b"some text " * 50, identity.public)
    with pytest.raises(DecryptionError, match=r"^m.md.age: damaged or truncated ciphertext"):
        crypto.decrypt(sealed[:-10], identity, "m.md.age")


@given(
    text=st.binary(max_size=2000),
    cut=st.integers(min_value=0, max_value=4000),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=4),
)
def test_corrupted_ciphertext_never_crashes(
    text: bytes, cut: int, flips: list[tuple[int, int]]
) -> None:
    """Any damage gives the plaintext back untouched or a DecryptionError; nothing else."""
    identity = keys.parse_identity((FIXTURES / "identity.txt").read_bytes(), FIXTURES)
    sealed = bytearray(crypto.encrypt(text, identity.public))
    for position, mask in flips:
        sealed[position % len(sealed)] ^= mask
    damaged = bytes(sealed[: max(cut, 0)] if cut < len(sealed) else sealed)
    try:
        plain = crypto.decrypt(damaged, identity, "m.md.age")
    except DecryptionError as error:
        assert "\n" not in str(error) and str(error).startswith("m.md.age: ")
    else:
        assert plain == text  # age authenticates: damage never yields other plaintext


@given(st.binary(max_size=300))
def test_random_bytes_and_recipient_lines_never_crash(data: bytes) -> None:
    identity = keys.parse_identity((FIXTURES / "identity.txt").read_bytes(), FIXTURES)
    with pytest.raises(DecryptionError):
        crypto.decrypt(crypto.AGE_HEADER + data, identity, "m.md.age")
    text = data.decode("utf-8", "replace")
    try:
        keys.parse_recipients(text, "r")
    except RecipientsError as error:
        assert str(error).startswith("r:")


# The reference tool


@pytest.mark.skipif(AGE is None, reason="the age tool is not installed")
def test_reference_age_reads_what_memstore_writes(identity: keys.Identity, tmp_path: Path) -> None:
    sealed = tmp_path / "m.md.age"
    sealed.write_bytes(crypto.encrypt(b"written by memstore\n", identity.public))
    out = subprocess.run(
        [str(AGE), "-d", "-i", str(identity.path), str(sealed)], capture_output=True, check=True
    )
    assert out.stdout == b"written by memstore\n"


@pytest.mark.skipif(AGE is None, reason="the age tool is not installed")
def test_memstore_reads_what_reference_age_writes(identity: keys.Identity, tmp_path: Path) -> None:
    for armor in ([], ["-a"]):
        out = subprocess.run(
            [str(AGE), *armor, "-r", identity.public[0]],
            input=b"written by age\n",
            capture_output=True,
            check=True,
        )
        assert crypto.decrypt(out.stdout, identity, "m.md.age") == b"written by age\n"


def test_keyring_loads_the_identity_lazily(
    identity: keys.Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = Keyring()
    os.chmod(identity.path, 0o644)  # would fail if it were read now
    sealed = crypto.encrypt(b"x", identity.public)
    os.chmod(identity.path, 0o600)
    assert keyring.decrypt(sealed, "m.md.age") == b"x"
    monkeypatch.setenv("MEM_IDENTITY", str(identity.path.parent / "missing"))
    assert keyring.try_decrypt(sealed, "m.md.age") == b"x"  # read once, kept


@given(st.binary(max_size=5000))
def test_encrypt_then_decrypt_gives_the_bytes_back(data: bytes) -> None:
    identity = keys.parse_identity((FIXTURES / "identity.txt").read_bytes(), FIXTURES)
    sealed = crypto.encrypt(data, identity.public)
    assert crypto.looks_encrypted(sealed) and crypto.decrypt(sealed, identity, "m") == data


def test_policy_by_folder(tmp_path: Path) -> None:
    from memstore.memory import Memory

    (tmp_path / ".memstore.toml").write_text(
        'format = 1\n[encrypt]\nfolders = ["memories/2027/"]\n'
    )
    policy = keys.read_policy(tmp_path)
    assert policy.covers(Memory("memories/2027/01/a.md", {}, ""))
    assert not policy.covers(Memory("memories/2026/12/a.md", {}, ""))
