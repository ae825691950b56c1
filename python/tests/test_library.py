"""Finding libmlcomm: explicit path, MLCOMM_LIBRARY, the build tree, the system. Local
tests (no communication), checked with a fake loader so nothing else gets loaded."""

import pytest

import mlcomm
from mlcomm import _lib


def _fake_loader(works):
    def load(p):
        if p in works:
            return ("loaded", p)
        raise OSError(f"cannot open {p}")
    return load


def test_search_order(tmp_path):
    env_lib = tmp_path / "env" / _lib.SONAME
    env_lib.parent.mkdir()
    env_lib.write_bytes(b"")
    explicit = tmp_path / "explicit.so"
    explicit.write_bytes(b"")
    c = _lib.candidates(explicit=str(explicit), environ={"MLCOMM_LIBRARY": str(env_lib.parent)})
    origins = [o for o, _, _ in c]
    assert origins[0] == "explicit path" and origins[1] == "MLCOMM_LIBRARY"
    assert c[1][1] == str(env_lib)  # a directory means its libmlcomm.so.0
    assert origins[-1] == "system (dynamic loader search)"
    i_tree = [i for i, o in enumerate(origins) if o == "build tree"]
    i_sys = [i for i, o in enumerate(origins) if o.startswith("system")]
    assert not i_tree or max(i_tree) < min(i_sys)
    # the first one that loads wins
    lib, p = _lib.locate(str(explicit), {"MLCOMM_LIBRARY": str(env_lib)},
                         loader=_fake_loader({str(explicit), str(env_lib)}))
    assert p == str(explicit)
    lib, p = _lib.locate(None, {"MLCOMM_LIBRARY": str(env_lib)},
                         loader=_fake_loader({str(env_lib)}))
    assert p == str(env_lib)


def test_required_candidates_do_not_fall_through(tmp_path):
    missing = str(tmp_path / "nope" / _lib.SONAME)
    with pytest.raises(mlcomm.LibraryNotFoundError) as ei:
        _lib.locate(None, {"MLCOMM_LIBRARY": missing}, loader=_fake_loader({_lib.SONAME}))
    msg = str(ei.value)
    assert "MLCOMM_LIBRARY" in msg and missing in msg and "no such file" in msg
    assert "system" not in msg.split("Build it")[0]  # stopped at the failed requirement


def test_clear_message_when_nothing_found(tmp_path):
    with pytest.raises(mlcomm.LibraryNotFoundError) as ei:
        _lib.locate(None, {}, tree=True, system=True, loader=_fake_loader(set()))
    msg = str(ei.value)
    assert "cannot load libmlcomm" in msg and "MLCOMM_LIBRARY" in msg
    assert "dynamic loader search" in msg and "load_library" in msg
    assert isinstance(ei.value, OSError)


def test_broken_build_dir_is_skipped(tmp_path):
    """An unloadable build-tree copy (e.g. ASan) is skipped for the next candidate."""
    lib, p = _lib.locate(None, {}, loader=_fake_loader({_lib.SONAME}))
    assert p == _lib.SONAME


def test_load_library_after_load():
    loaded = mlcomm.library_path()
    assert mlcomm.load_library() == loaded
    assert mlcomm.load_library(loaded) == loaded
    with pytest.raises(RuntimeError, match="already loaded"):
        mlcomm.load_library("/some/other/libmlcomm.so.0")
