"""Session 15 breaker: values and keys a user gives keep their meaning through ingest, store, filter and the
framework integrations."""

from __future__ import annotations

import pytest

from slimvec import Collection, Document


@pytest.fixture(scope="module")
def col(tmp_path_factory):
    c = Collection.create(tmp_path_factory.mktemp("s15b") / "col", model="wordllama")
    c.add([Document("doc-a", "alpha text", metadata={"_id": "inner", "$price": 5, "kind": "a"}),
           Document("inner", "beta text", metadata={"_id": "other", "$price": 7, "kind": "b"})])
    yield c
    c.close()


def _ids(col, flt) -> set[str]:
    return {h.id for h in col.search("text", k=10, filter=flt)}


# ---- LlamaIndex: a flat metadata key `_id` or `$...` is that key, not the document id or an operator -------------


@pytest.mark.parametrize("key,value,op,want", [
    ("_id", "inner", "==", {"doc-a"}),     # the metadata key _id: unquoted it named the document id ("inner")
    ("_id", "other", "==", {"inner"}),
    ("$price", 5, "==", {"doc-a"}),        # unquoted it was refused as an unknown operator
    ("$price", 6, ">", {"inner"}),
    ("kind", "b", "==", {"inner"}),
])
def test_llama_index_filter_keys_are_metadata_keys(col, key, value, op, want) -> None:
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

    from slimvec.integrations.llama_index import to_slimvec_filter

    flt = to_slimvec_filter(MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=op)]))
    assert _ids(col, flt) == want


# ---- front matter: YAML 1.1 must not change a key or a value the user wrote -------------------------------------


def _md(tmp_path, front: str):
    path = tmp_path / "note.md"
    path.write_text(f"---\n{front}---\nBody text.\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("front,key,value", [
    ("starts: 12:30\n", "starts", "12:30"),           # was the base-60 number 750
    ("length: 1:30:00\n", "length", "1:30:00"),       # was 5400
    ("lap: 1:02.5\n", "lap", "1:02.5"),               # a base-60 float: was 62.5
    ("zip: 01234\n", "zip", "01234"),                 # was the octal number 668
    ("code: 007\n", "code", "007"),                   # was 7
    ("x: [01, 2:00]\n", "x", ["01", "2:00"]),         # inside a list too
    ("count: 42\n", "count", 42),                     # ordinary numbers stay numbers
    ("zero: 0\n", "zero", 0),
    ("neg: -7\n", "neg", -7),
    ("ratio: 0.25\n", "ratio", 0.25),
    ("hex: 0x1F\n", "hex", 31),
    ('"01": a\n', "01", "a"),
    ("012: a\n", "012", "a"),                         # a key too: was "10"
    ("9:30: a\n", "9:30", "a"),                       # was "570"
    ("country: NO\n", "country", "NO"),               # YAML 1.1's yes/no/on/off were booleans: NO was false
    ("reply: yes\n", "reply", "yes"),
    ("switch: off\n", "switch", "off"),
    ("on: monday\n", "on", "monday"),                 # a key too: was "True"
    ("no: 3\n", "no", 3),                             # was "False"
    ("draft: false\n", "draft", False),              # true/false stay booleans
    ("done: TRUE\n", "done", True),
])
def test_front_matter_values_keep_what_was_written(tmp_path, front, key, value) -> None:
    from slimvec.ingest.files import read_file

    meta = read_file(_md(tmp_path, front)).metadata
    assert meta[key] == value and type(meta[key]) is type(value)


@pytest.mark.parametrize("front,key,stored", [
    ("~: x\n", "~", "None"),
    ("null: x\n", "null", "None"), ("true: x\n", "true", "True"), ("1.50: x\n", "1.50", "1.5"),
    ("0x10: x\n", "0x10", "16"),
])
def test_front_matter_key_yaml_would_change_is_refused_with_its_line(tmp_path, front, key, stored) -> None:
    from slimvec.errors import IngestError
    from slimvec.ingest.files import read_file

    path = _md(tmp_path, "title: T\n" + front)
    with pytest.raises(IngestError) as e:
        read_file(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:3: front matter: key {key!r}") and f"stored as {stored!r}" in msg and "quotes" in msg
    assert "\n" not in msg
    quoted = read_file(_md(tmp_path, f'title: T\n"{key}": x\n')).metadata  # quoted, it is kept as written
    assert quoted[key] == "x"


def test_front_matter_keys_that_yaml_keeps_are_accepted(tmp_path) -> None:
    from slimvec.ingest.files import read_file

    meta = read_file(_md(tmp_path, "2020-01-01: a\n1.5: b\n7: c\nyear: 2020\n")).metadata
    assert {k: meta[k] for k in ("2020-01-01", "1.5", "7", "year")} == {"2020-01-01": "a", "1.5": "b", "7": "c",
                                                                        "year": 2020}


# ---- CSV: an integer a float cannot hold exactly keeps its digits ------------------------------------------------


def _csv_meta(tmp_path, text: str) -> dict[str, dict]:
    from slimvec.ingest import read_sources

    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    errors: list = []
    docs = {d.id: d.metadata for d in read_sources([path], on_error=errors.append)}
    assert not errors
    return docs


@pytest.mark.parametrize("cells,want", [
    (["12345678901234567890", "1"], ["12345678901234567890", "1"]),           # past 64 bits: pyarrow reads floats
    (["123456789012345678901234", "2"], ["123456789012345678901234", "2"]),
    (["9007199254740993", "1.5"], ["9007199254740993", "1.5"]),               # 2**53 + 1 beside a fraction
    (["007", "1.5"], ["007", "1.5"]),                                         # a leading zero beside a fraction: was 7.0
    (["-01.25", "2.5"], ["-01.25", "2.5"]),
])
def test_csv_long_integers_keep_their_digits(tmp_path, cells, want) -> None:
    meta = _csv_meta(tmp_path, "_id,text,code\n" + "".join(f"d{i},text {i},{c}\n" for i, c in enumerate(cells)))
    assert [meta[f"d{i}"]["code"] for i in range(len(cells))] == want


@pytest.mark.parametrize("cells,want", [
    (["9007199254740992", "1.5"], [9007199254740992.0, 1.5]),                 # 2**53 itself is exact
    (["123456789012345", "0.5"], [123456789012345.0, 0.5]),
    (["0.5", "0", "-0.25"], [0.5, 0.0, -0.25]),                               # a lone 0 before the point is no leading zero
    (["1234567890123456789", "7"], [1234567890123456789, 7]),                 # fits int64: an integer column
])
def test_csv_numbers_that_fit_stay_numbers(tmp_path, cells, want) -> None:
    meta = _csv_meta(tmp_path, "_id,text,code\n" + "".join(f"d{i},text {i},{c}\n" for i, c in enumerate(cells)))
    got = [meta[f"d{i}"]["code"] for i in range(len(cells))]
    assert got == want and [type(g) for g in got] == [type(w) for w in want]


def test_csv_long_integer_is_found_by_its_text(tmp_path) -> None:
    from slimvec.ingest import read_sources

    path = tmp_path / "t.csv"
    path.write_text("_id,text,order\na,alpha text,12345678901234567891\nb,beta text,12345678901234567892\n",
                    encoding="utf-8")
    c = Collection.create(tmp_path / "col", model="wordllama")
    c.add(read_sources([path]))
    assert {h.id for h in c.search("text", filter={"order": "12345678901234567891"})} == {"a"}
    c.close()


# ---- import: export metadata naming a key twice is refused, not read as its last value ---------------------------


def test_import_refuses_metadata_naming_a_key_twice(col, tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from slimvec.errors import ConfigError
    from slimvec.interop.rows import export_collection, import_records

    export_collection(col, f"parquet:{tmp_path / 'e.parquet'}")
    table = pq.read_table(tmp_path / "e.parquet")
    rows = table.to_pylist()
    rows[0]["metadata"] = '{"kind": "a", "kind": "b"}'
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), tmp_path / "dup.parquet")
    with pytest.raises(ConfigError, match="'kind' appears twice"):
        import_records(f"parquet:{tmp_path / 'dup.parquet'}", tmp_path / "imported")
    assert not (tmp_path / "imported").exists()
    good = import_records(f"parquet:{tmp_path / 'e.parquet'}", tmp_path / "imported")  # the export itself imports
    assert good.get("doc-a").metadata == {"_id": "inner", "$price": 5, "kind": "a"} and good.check() == []
    good.close()


# ---- filters: the document id is text; a number or boolean never equals it --------------------------------------


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    c = Collection.create(tmp_path_factory.mktemp("s15b-ids") / "col", model="wordllama")
    c.add([Document("1", "one text"), Document("7", "seven text"), Document("007", "agent text")])
    yield c
    c.close()


@pytest.mark.parametrize("flt,want", [
    ({"_id": "7"}, {"7"}),
    ({"_id": {"$in": [7, "007"]}}, {"007"}),            # the number 7 matched the id "7" (SQLite's text affinity)
    ({"_id": {"$ne": 7}}, {"1", "7", "007"}),           # a type mismatch excludes nothing
    ({"_id": {"$nin": [True]}}, {"1", "7", "007"}),     # true was bound as 1 and excluded the id "1"
    ({"$or": [{"_id": True}, {"_id": "7"}]}, {"7"}),
])
def test_id_filters_compare_text_only(numbered, flt, want) -> None:
    assert _ids(numbered, flt) == want


@pytest.mark.parametrize("value", [7, True, 1])
def test_id_filter_with_a_number_says_it_can_never_match(numbered, value) -> None:
    from slimvec.errors import FilterError

    with pytest.raises(FilterError, match="'_id' is stored as text"):
        numbered.search("text", filter={"_id": value})


# ---- Parquet: a whole decimal past 2**53 keeps its digits (or is refused past 64 bits) ---------------------------


def test_parquet_whole_decimals_keep_their_digits(tmp_path) -> None:
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from slimvec.ingest import read_sources

    values = [Decimal("12345678901234567"), Decimal("-9007199254740993"), Decimal("0.10"), Decimal("5"),
              Decimal("123456789012345678901234567890")]
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"_id": [f"d{i}" for i in range(len(values))], "text": ["some text"] * len(values),
                             "amount": pa.array(values, pa.decimal128(38, 2))}), path)
    errors: list = []
    meta = {d.id: d.metadata["amount"] for d in read_sources([path], on_error=errors.append)}
    assert meta == {"d0": 12345678901234567, "d1": -9007199254740993, "d2": 0.1, "d3": 5.0}
    assert [type(meta[k]) for k in ("d0", "d1", "d2", "d3")] == [int, int, float, float]
    assert len(errors) == 1 and str(errors[0]).startswith(f"{path}:row 4: amount: integer 1234567890")


# ---- PDF: a NUL in the title or page text (a UTF-16 terminator, an unmapped glyph) does not refuse the file -----


_UTF16_TITLE = ("\ufeffAnnual Report\x00".encode("utf-16-be")).decode("latin-1")  # BOM, text, a NUL terminator


@pytest.mark.parametrize("title,pages,want_title,want_text", [
    (_UTF16_TITLE, ["Quarterly revenue grew."], "Annual Report", "Quarterly revenue grew."),
    ("Plain", ["Hello\x00world page", "second page"], "Plain", "Helloworld page\n\nsecond page"),
])
def test_pdf_nul_characters_are_dropped_not_fatal(tmp_path, title, pages, want_title, want_text) -> None:
    from test_ingest_files import make_pdf

    from slimvec.ingest import read_sources

    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf(pages, title=title))
    errors: list = []
    docs = list(read_sources([path], on_error=errors.append))
    assert not errors
    assert [(d.title, d.text) for d in docs] == [(want_title, want_text)]


# ---- sharded: a filter on a field some shards lack searches the shards that hold it ------------------------------


SHARD_DOCS = [Document(f"d{i}", f"text number {i}", metadata={"year": 2000 + i, "s": "x" if i else 5,
                                                                **({"rare": 1} if i == 0 else {})}) for i in range(8)]


@pytest.fixture(scope="module")
def sharded_and_single(tmp_path_factory):
    from slimvec.distributed import create_sharded

    base = tmp_path_factory.mktemp("s15b-shards")
    sharded = create_sharded(base / "sharded", shards=4, profile="exact-f32", model="wordllama")
    single = Collection.create(base / "single", profile="exact-f32", model="wordllama")
    for c in (sharded, single):
        c.add(SHARD_DOCS)
    yield sharded, single
    sharded.close()
    single.close()


def _outcome(col, flt):
    from slimvec.errors import FilterError

    try:
        return sorted(h.id for h in col.search("text", k=10, filter=flt))
    except FilterError as e:
        return f"FilterError: {e}"


@pytest.mark.parametrize("flt", [
    {"rare": 1}, {"s": 5}, {"$or": [{"rare": 1}, {"nope": 2}]}, {"rare": {"$exists": True}},  # matched in one shard
    {"rare": 2}, {"year": 2003},                                                              # as before
    {"rarr": 1}, {"s": True}, {"rare": "1"},                                                  # errors as one collection's
])
def test_sharded_filter_equals_one_collection(sharded_and_single, flt) -> None:
    sharded, single = sharded_and_single
    assert sum(1 for s in sharded.info()["shards"] if s["documents"]) > 1  # d0's field is missing from other shards
    assert _outcome(sharded, flt) == _outcome(single, flt)


# ---- Parquet: a map column is an object (a filter path reaches its keys), not an array of pairs -----------------


def test_parquet_map_columns_are_objects(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from slimvec.ingest import read_sources

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({
        "_id": ["a", "b", "c", "d"], "text": ["alpha text", "beta text", "gamma text", "delta text"],
        "attrs": pa.array([[("colour", "red")], [], [("colour", "red"), ("colour", "blue")],
                           [("colour", "blue")]], pa.map_(pa.string(), pa.string())),
        "by_year": pa.array([[(2020, 1.5)], None, [], [(2021, 2.0)]], pa.map_(pa.int64(), pa.float64())),
    }), path)
    errors: list = []
    docs = list(read_sources([path], on_error=errors.append))
    assert {d.id: d.metadata for d in docs} == {
        "a": {"attrs": {"colour": "red"}, "by_year": {"2020": 1.5}},
        "b": {"attrs": {}, "by_year": None},
        "d": {"attrs": {"colour": "blue"}, "by_year": {"2021": 2.0}},
    }
    assert [str(e) for e in errors] == [f"{path}:row 2: attrs: a map names the key 'colour' twice (JSON keeps one "
                                        "value per key: the other would be lost)"]
    c = Collection.create(tmp_path / "col", model="wordllama")
    c.add(docs)
    assert {h.id for h in c.search("text", filter={"attrs.colour": "red"})} == {"a"}
    assert {h.id for h in c.search("text", filter={"by_year.2021": {"$gt": 1}})} == {"d"}
    c.close()


# ---- JSONL: a key at the top level and in `metadata` with true there and 1 here is two values, not one -----------


@pytest.mark.parametrize("top,nested,same", [
    (True, 1, False), (0, False, False), ([1], [True], False), ({"k": True}, {"k": 1}, False),
    (1, 1.0, True), ([1, "a"], [1, "a"], True), (False, False, True),
])
def test_jsonl_metadata_given_twice_compares_as_json(tmp_path, top, nested, same) -> None:
    import json

    from slimvec.ingest import read_sources

    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"_id": "a", "text": "some text", "v": top, "metadata": {"v": nested}}) + "\n",
                    encoding="utf-8")
    errors: list = []
    docs = list(read_sources([path], on_error=errors.append))
    if same:
        assert [d.metadata for d in docs] == [{"v": top}] and not errors
    else:
        assert not docs and len(errors) == 1
        assert str(errors[0]).startswith(f"{path}:1: metadata key 'v' is given twice with different values")


def test_front_matter_yes_becomes_a_boolean_when_asked(tmp_path) -> None:
    from slimvec.ingest import read_sources

    path = _md(tmp_path, "draft: yes\nreply: no\n")
    docs = list(read_sources([path], field_types=["draft=bool"]))
    assert (docs[0].metadata["draft"], docs[0].metadata["reply"]) == (True, "no")


# ---- Parquet: Arrow's uuid type (ids and metadata) is its text, not a refused record ------------------------------


def test_parquet_uuid_columns_are_text(tmp_path) -> None:
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    from slimvec.ingest import read_sources

    ids = [uuid.UUID("12345678-1234-5678-1234-567812345678"), uuid.UUID("00000000-0000-4000-8000-000000000001")]
    ref = uuid.UUID("abcdefab-cdef-4abc-8def-abcdefabcdef")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"_id": pa.array([u.bytes for u in ids], pa.uuid()), "text": ["alpha", "beta"],
                             "ref": pa.array([ref.bytes, None], pa.uuid())}), path)
    errors: list = []
    docs = list(read_sources([path], on_error=errors.append))
    assert not errors
    assert [(d.id, d.metadata) for d in docs] == [(str(ids[0]), {"ref": str(ref)}), (str(ids[1]), {"ref": None})]


@pytest.mark.parametrize("doc_id", [7, None, "\udc80", "d0"])
def test_sharded_get_and_delete_answer_as_one_collection(sharded_and_single, doc_id) -> None:
    sharded, single = sharded_and_single

    def outcome(call):
        try:
            got = call()
        except TypeError as e:
            return f"TypeError: {e}"
        return got.id if hasattr(got, "id") else got

    assert outcome(lambda: sharded.get(doc_id)) == outcome(lambda: single.get(doc_id))
    if doc_id != "d0":  # (d0 stays: the module's other tests search it)
        assert outcome(lambda: sharded.delete([doc_id])) == outcome(lambda: single.delete([doc_id]))


def test_sharded_delete_of_one_id_as_a_string(sharded_and_single) -> None:
    sharded, single = sharded_and_single
    for c in (sharded, single):
        c.add([Document("d12", "to be deleted"), Document("d1x", "kept"), Document("d2x", "kept")])
    assert sharded.delete("d12") == single.delete("d12") == 1  # the id "d12", never "d", "1", "2"
    assert sharded.delete(["d1x", "d2x"]) == single.delete(["d1x", "d2x"]) == 2
