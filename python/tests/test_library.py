"""Finding libmlcomm: explicit path, MLCOMM_LIBRARY, the build tree, the copy meson
installed beside the package, the system. Local tests (no communication), checked with
a fake loader so nothing else gets loaded."""

import os
import types

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
    i_loader = origins.index("system (dynamic loader search)")
    assert set(origins[i_loader + 1:]) == {"system (meson's default prefix)"}
    assert all(p.startswith("/usr/local/") for _, p, _ in c[i_loader + 1:])
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


def _fake_build_info(library, library_from_package):
    info = types.SimpleNamespace(LIBRARY=library, LIBRARY_FROM_PACKAGE=library_from_package)
    return lambda: info


def test_installed_copy_comes_after_the_environment_and_before_the_system(tmp_path):
    """meson's _build_info: the library beside the package first (relative, so a staged
    or moved install loads its own copy), then the configured path."""
    package_dir = os.path.dirname(os.path.abspath(_lib.__file__))
    beside = tmp_path / "stage" / "lib" / _lib.SONAME
    configured = tmp_path / "prefix" / "lib" / _lib.SONAME
    info = _fake_build_info(str(configured), os.path.relpath(beside, package_dir))
    c = _lib.candidates(environ={"MLCOMM_LIBRARY": "/env/" + _lib.SONAME}, tree=False,
                        build_info=info)
    origins = [o for o, _, _ in c]
    assert origins[:3] == ["MLCOMM_LIBRARY", "installed beside the package",
                           "installed (configured path)"]
    assert origins[3].startswith("system")
    assert c[1][1] == str(beside) and c[2][1] == str(configured)
    assert not c[1][2] and not c[2][2]  # neither is required: a moved package falls through

    configured.parent.mkdir(parents=True)
    configured.write_bytes(b"")
    lib, p = _lib.locate(None, {}, tree=False, system=False, build_info=info,
                         loader=_fake_loader({str(configured)}))
    assert p == str(configured)  # nothing beside the package: the configured path
    beside.parent.mkdir(parents=True)
    beside.write_bytes(b"")
    lib, p = _lib.locate(None, {}, tree=False, system=False, build_info=info,
                         loader=_fake_loader({str(configured), str(beside)}))
    assert p == str(beside)


def test_same_path_is_tried_once():
    package_dir = os.path.dirname(os.path.abspath(_lib.__file__))
    lib = os.path.join(package_dir, "..", "lib", _lib.SONAME)
    info = _fake_build_info(os.path.normpath(lib), os.path.join("..", "lib", _lib.SONAME))
    c = _lib.candidates(environ={}, tree=False, system=False, build_info=info)
    assert [o for o, _, _ in c] == ["installed beside the package"]


def test_source_checkout_has_no_build_info():
    """_build_info.py is generated into the build directory and only installed: a
    source-tree run searches the build tree instead."""
    if _lib._source_root() is not None:
        assert _lib._build_info() is None
        assert not any(o.startswith("installed") for o, _, _ in _lib.candidates(environ={}))
