"""Headers as memstore writes them are read without PyYAML, to the same values (yamlrules)."""

from __future__ import annotations

import yaml
from hypothesis import given
from hypothesis import strategies as st

from memstore import yamlrules

# Words that YAML reads as something other than text, punctuation that changes how a line
# reads, and the plain characters in between.
TRICKY = ["yes", "no", "on", "null", "~", "1", "1.5", "0x1f", "1e3", ".inf", "true", "-", "#"]
TRICKY += ["C#", "C# #x", "a#b", "a #b", "a# b", "'a: b'", "'it''s'", "''", "'a'b'", "' a '"]
ALPHABET = "abcXYZ019 _.,:/@+()'-#&*!|>%\"[]{}\t"
pieces = st.one_of(
    st.sampled_from(TRICKY),
    st.text(alphabet=ALPHABET, min_size=0, max_size=12),
    # Single-quoted, quotes doubled or (to be refused) not, other characters as they come.
    st.text(alphabet=ALPHABET + "é\u0085", max_size=12).map(lambda t: f"'{t}'"),
    st.text(alphabet=ALPHABET, max_size=12).map(lambda t: "'" + t.replace("'", "''") + "'"),
)
values = st.one_of(pieces, st.lists(pieces, max_size=4))
keys = st.one_of(st.sampled_from(["id", "title", "tags", "yes", "null", "on", "k2"]), pieces)


def _pyyaml(text: str) -> object:
    try:
        return yaml.load(text, Loader=yamlrules.FrontMatterLoader)  # noqa: S506
    except yaml.YAMLError:
        return "error"


@given(st.lists(st.tuples(keys, values), max_size=6))
def test_tidy_headers_read_as_pyyaml_reads_them(fields: list[tuple[str, object]]) -> None:
    text = ""
    for key, value in fields:
        if isinstance(value, list):
            text += f"{key}:\n" + "".join(f"  - {item}\n" for item in value)
        else:
            text += f"{key}: {value}\n"
    tidy = yamlrules.load_tidy(text)
    if tidy is not None:
        assert tidy == _pyyaml(text)


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), values, min_size=1))
def test_what_memstore_writes_reads_back_the_fast_way(fields: dict[str, object]) -> None:
    text = "".join(yamlrules.dump_field(key, value) for key, value in fields.items())
    assert yamlrules.load(text) == _pyyaml(text) == fields


def test_a_written_header_takes_the_fast_way() -> None:
    text = (
        "id: 01gq80vsjgspcjtfpagqceashr\ntitle: Adopt it\ntags:\n  - ci\n"
        "created: 2023-01-20T16:40:50Z\n"
    )
    assert yamlrules.load_tidy(text) == {
        "id": "01gq80vsjgspcjtfpagqceashr",
        "title": "Adopt it",
        "tags": ["ci"],
        "created": "2023-01-20T16:40:50Z",
    }


def test_titles_with_a_hash_or_a_colon_take_the_fast_way() -> None:
    # 19% of the headers of a generated store went to PyYAML for these alone (`mem diff`).
    text = (
        "title: Notes on C# retry_page_key\ntags:\n  - c#\n  - 'a: b'\nsource: 'Decision: it''s'\n"
    )
    expected = {
        "title": "Notes on C# retry_page_key",
        "tags": ["c#", "a: b"],
        "source": "Decision: it's",
    }
    assert yamlrules.load_tidy(text) == expected == _pyyaml(text)


def test_a_hash_after_a_space_is_left_to_pyyaml() -> None:
    for text in ("title: a #b\n", "title: #b\n", "tags:\n  - x #y\n", "title: 'a' #b\n"):
        assert yamlrules.load_tidy(text) is None


@given(
    st.one_of(st.sampled_from(TRICKY + ["0o17", "+1", "-.5", "1_000", "190:20:30", "="]), pieces)
)
def test_implicit_types_are_told_as_pyyaml_tells_them(value: str) -> None:
    resolved = yamlrules._RESOLVER.resolve(yaml.ScalarNode, value, (True, False))
    assert yamlrules._resolves_as_text(value) == (resolved == yamlrules._STR_TAG)
