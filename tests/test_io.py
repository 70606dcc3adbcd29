"""The io leaf: atomic writes, checksums, and YAML/JSON/Parquet read back unchanged."""

import hashlib
import os

import pandas as pd
import pytest

from collapselab import io
from collapselab.errors import ResultsError


def test_atomic_write_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    io.atomic_write(target, b"old")

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(ResultsError, match=r"cannot write .*a\.json.*No space left"):
        io.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"], "the temporary file is removed"


def test_atomic_write_creates_folders(tmp_path):
    io.atomic_write(tmp_path / "x" / "y" / "z.bin", b"\x00\x01")
    assert (tmp_path / "x" / "y" / "z.bin").read_bytes() == b"\x00\x01"


def test_checksums_match_hashlib_and_catch_one_flipped_byte(tmp_path):
    path = tmp_path / "m.parquet"
    io.atomic_write(path, b"collapse" * 100)
    digest = io.file_sha256(path)
    assert (
        digest == hashlib.sha256(b"collapse" * 100).hexdigest() == io.sha256_hex(b"collapse" * 100)
    )
    io.check_digest(path, digest)
    io.check_digest(path, None)  # nothing recorded: nothing to check
    blob = bytearray(path.read_bytes())
    blob[17] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(ResultsError, match="does not match its recorded checksum"):
        io.check_digest(path, digest)
    with pytest.raises(ResultsError, match="does not match"):
        io.check_digest(tmp_path / "missing", digest)


def test_yaml_round_trips_yaml_1_2_numbers_and_number_like_strings(tmp_path):
    data = {"b": 1e9, "a": "1e3", "c": -0.5, "d": [1, "x"], "e": None, "f": "-.5"}
    assert io.load_yaml("x: 1e9\ny: -.5\nz: 1E-3\n") == {"x": 1e9, "y": -0.5, "z": 1e-3}
    io.write_yaml(tmp_path / "c.yaml", data)
    text = (tmp_path / "c.yaml").read_text()
    assert text.index("b:") < text.index("a:"), "keys stay in their given order"
    assert io.read_yaml_mapping(tmp_path / "c.yaml") == data
    assert io.load_yaml(io.dump_yaml(data)) == data


def test_yaml_never_builds_objects():
    with pytest.raises(Exception, match="could not determine a constructor"):
        io.load_yaml("!!python/object/apply:os.system ['true']")


def test_readers_return_nothing_for_missing_or_broken_files(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    assert io.read_json(tmp_path / "missing.json") is None
    assert io.read_json(tmp_path / "bad.json") is None
    assert io.read_yaml_mapping(tmp_path / "missing.yaml") == {}
    assert io.read_yaml_mapping(tmp_path / "list.yaml") == {}
    assert io.read_yaml_mapping(tmp_path / "bad.yaml") == {}
    assert io.read_table(tmp_path / "bad.json") is None


def test_json_and_parquet_round_trip(tmp_path):
    io.write_json(tmp_path / "m.json", {"z": 1, "a": [1.5, "x"]})
    assert io.read_json(tmp_path / "m.json") == {"z": 1, "a": [1.5, "x"]}
    assert (tmp_path / "m.json").read_text().index('"a"') < (tmp_path / "m.json").read_text().index(
        '"z"'
    ), "keys sorted"
    frame = pd.DataFrame({"seed": [0, 1], "value": [0.25, float("nan")], "metric": ["v", "w"]})
    io.write_table(tmp_path / "t.parquet", frame)
    pd.testing.assert_frame_equal(io.read_table(tmp_path / "t.parquet"), frame)


def test_storage_keeps_its_public_names():
    from collapselab.experiment import storage

    for name in ("atomic_write", "read_json", "write_json", "load_yaml", "dump_yaml", "write_yaml"):
        assert getattr(storage, name) is getattr(io, name)


def test_trim_heap_reaches_malloc_trim_where_glibc_has_it():
    import platform

    io.trim_heap()
    io.trim_heap()  # resolved once, then reused
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert callable(io._malloc_trim()), "on glibc, trim_heap must not be a silent no-op"
    else:
        assert io._malloc_trim() is None or callable(io._malloc_trim())
