"""Finding and loading libmlcomm.so, and the ctypes prototypes of its API.

Search order (the first that exists is loaded; see docs/python.md):

1. an explicit path: ``mlcomm.load_library(path)`` before the first use;
2. the ``MLCOMM_LIBRARY`` environment variable (a file, or a directory holding
   ``libmlcomm.so.0``);
3. the build tree, when this package runs from a source checkout: ``build/src/``,
   then every other ``build*/src/`` directory, newest first (one that fails to load,
   e.g. an AddressSanitizer build, is skipped);
4. the copy ``meson install`` put beside this package, when meson installed it: the
   generated ``_build_info`` module records where the library goes, both relative to
   the package (so a staged DESTDIR tree or a moved prefix loads its own copy) and as
   the configured path;
5. the system: ``ctypes.util.find_library("mlcomm")`` (ldconfig), then
   ``libmlcomm.so.0`` through the dynamic loader's own search (LD_LIBRARY_PATH,
   /etc/ld.so.conf), then meson's default prefix, /usr/local, whose library
   directories the loader only knows once ``ldconfig`` has run.

The library is opened with RTLD_GLOBAL. Its dependency libmpi.so then becomes global
too, which Open MPI needs: the MCA components it dlopen()s at MPI_Init resolve
symbols of libmpi. The same handle gives the MPI entry points (MPI_Init_thread, ...),
so the bindings always talk to the very MPI library libmlcomm was linked against.
"""

import ctypes
import ctypes.util
import os
import sysconfig
import threading
from pathlib import Path

from .errors import LibraryNotFoundError

SONAME = "libmlcomm.so.0"
# The header version these bindings were written against (MLCOMM_VERSION(0, 1, 0)).
ABI_VERSION = 100

# The loaded CDLL with prototypes set, or None before the first use.
L = None
path = None
# Every call into the library is made under this lock: mlcomm.h asks that calls be
# serialised process-wide, and ctypes releases the GIL during a foreign call. It is
# re-entrant so that a finaliser run by the garbage collector inside a wrapper (which
# frees mlcommMemAlloc memory) cannot deadlock.
lock = threading.RLock()

_load_lock = threading.Lock()
_explicit = None

c_comm = ctypes.c_void_p  # mlcommComm_t is a pointer
c_req = ctypes.c_uint64  # mlcommRequest_t
_p = ctypes.POINTER


class Status(ctypes.Structure):
    """mlcommStatus_t."""

    _fields_ = [("source", ctypes.c_int), ("tag", ctypes.c_int), ("bytes", ctypes.c_size_t)]


class Config(ctypes.Structure):
    """mlcommConfig_t."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("magic", ctypes.c_uint),
        ("version", ctypes.c_uint),
        ("transport", ctypes.c_int),
        ("timeoutMs", ctypes.c_int),
        ("debugLevel", ctypes.c_int),
    ]


CONFIG_MAGIC = 0x4D4C434D
CONFIG_UNDEF_INT = -(2**31)  # INT_MIN


def new_config():
    """A Config equal to MLCOMM_CONFIG_INITIALIZER."""
    return Config(ctypes.sizeof(Config), CONFIG_MAGIC, ABI_VERSION, CONFIG_UNDEF_INT,
                  CONFIG_UNDEF_INT, CONFIG_UNDEF_INT)


_vp = ctypes.c_void_p
_sz = ctypes.c_size_t
_i = ctypes.c_int
_R = ctypes.c_int  # mlcommResult_t

_PROTOTYPES = {
    "mlcommGetVersion": [_p(_i)],
    "mlcommCommInitFromMPI": None,  # MPI_Comm's C type depends on the MPI; set at load
    "mlcommCommSplit": [c_comm, _i, _i, _p(c_comm), _p(Config)],
    "mlcommCommDestroy": [c_comm],
    "mlcommCommAbort": [c_comm],
    "mlcommCommRevoke": [c_comm],
    "mlcommCommShrink": [c_comm, _p(c_comm)],
    "mlcommCommFailedRank": [c_comm, _p(_i)],
    "mlcommCommRank": [c_comm, _p(_i)],
    "mlcommCommCount": [c_comm, _p(_i)],
    "mlcommCommGetMPI": None,
    "mlcommCommGetConfig": [c_comm, _p(Config)],
    "mlcommMemAlloc": [c_comm, _sz, _p(_vp)],
    "mlcommMemFree": [_vp],
    "mlcommAllReduce": [_vp, _vp, _sz, _i, _i, c_comm],
    "mlcommAllReduceAsync": [_vp, _vp, _sz, _i, _i, c_comm, _p(c_req)],
    "mlcommBroadcast": [_vp, _vp, _sz, _i, _i, c_comm],
    "mlcommBroadcastAsync": [_vp, _vp, _sz, _i, _i, c_comm, _p(c_req)],
    "mlcommReduce": [_vp, _vp, _sz, _i, _i, _i, c_comm],
    "mlcommReduceAsync": [_vp, _vp, _sz, _i, _i, _i, c_comm, _p(c_req)],
    "mlcommAllGather": [_vp, _vp, _sz, _i, c_comm],
    "mlcommAllGatherAsync": [_vp, _vp, _sz, _i, c_comm, _p(c_req)],
    "mlcommReduceScatter": [_vp, _vp, _sz, _i, _i, c_comm],
    "mlcommReduceScatterAsync": [_vp, _vp, _sz, _i, _i, c_comm, _p(c_req)],
    "mlcommBarrier": [c_comm],
    "mlcommBarrierAsync": [c_comm, _p(c_req)],
    "mlcommSend": [_vp, _sz, _i, _i, _i, c_comm],
    "mlcommSendAsync": [_vp, _sz, _i, _i, _i, c_comm, _p(c_req)],
    "mlcommRecv": [_vp, _sz, _i, _i, _i, c_comm, _p(Status)],
    "mlcommRecvAsync": [_vp, _sz, _i, _i, _i, c_comm, _p(c_req)],
    "mlcommProbe": [_i, _i, c_comm, _p(Status)],
    "mlcommIprobe": [_i, _i, c_comm, _p(_i), _p(Status)],
    "mlcommWait": [_p(c_req), _p(Status)],
    "mlcommTest": [_p(c_req), _p(_i), _p(Status)],
    "mlcommWaitAll": [_i, _p(c_req), _p(Status)],
    "mlcommGroupStart": [],
    "mlcommGroupEnd": [],
    "mlcommTypeSize": [_i, _p(_sz)],
    "mlcommTypeFromName": [ctypes.c_char_p, _p(_i)],
    "mlcommRedOpFromName": [ctypes.c_char_p, _p(_i)],
    "mlcommTransportFromName": [ctypes.c_char_p, _p(_i)],
}
# Functions returning a constant string, each taking one int (an enum or result code).
_NAME_FUNCTIONS = ("mlcommGetErrorString", "mlcommTypeName", "mlcommRedOpName",
                   "mlcommTransportName")

# The C type of MPI_Comm for the MPI libmlcomm links: a pointer in Open MPI, an int in
# MPICH and its derivatives. Set by load().
mpi_comm_t = ctypes.c_void_p


def set_explicit_path(p):
    """Implements mlcomm.load_library(path) before the library is loaded."""
    global _explicit
    with _load_lock:
        if L is not None:
            if p is not None and os.path.realpath(p) != os.path.realpath(path):
                raise RuntimeError(
                    f"mlcomm: libmlcomm is already loaded from {path}; load_library({p!r}) "
                    "must come before the first use of the package")
            return
        _explicit = os.fspath(p) if p is not None else None


def _source_root():
    """The repository root when this package runs from a source checkout, else None."""
    root = Path(__file__).resolve().parent.parent.parent
    if (root / "meson.build").is_file() and (root / "include" / "mlcomm" / "mlcomm.h").is_file():
        return root
    return None


def _tree_candidates(root):
    if root is None:
        return []
    first = root / "build" / "src" / SONAME
    others = []
    for d in root.glob("build*"):
        cand = d / "src" / SONAME
        if d.name != "build" and cand.is_file():
            others.append(cand)
    others.sort(key=lambda c: c.stat().st_mtime, reverse=True)
    return ([first] if first.is_file() else []) + others


def _build_info():
    """The module meson generates when it installs the package, else None (a source
    checkout, or a copy installed by pip)."""
    try:
        from . import _build_info as info
    except ImportError:
        return None
    return info


def _installed_candidates(info, package_dir=None):
    if info is None:
        return []
    # Not resolved: the relative path was computed on the configured layout, which a
    # symlinked site directory would break if followed.
    package_dir = package_dir or os.path.dirname(os.path.abspath(__file__))
    beside = os.path.normpath(os.path.join(package_dir, info.LIBRARY_FROM_PACKAGE))
    out = [("installed beside the package", beside)]
    if os.path.normpath(info.LIBRARY) != beside:
        out.append(("installed (configured path)", info.LIBRARY))
    return out


def _default_prefix_candidates():
    # Where `meson install` with its default prefix puts the library (Debian's libdir
    # is lib/<multiarch>), for copies of this package that carry no _build_info.
    multiarch = sysconfig.get_config_var("MULTIARCH")
    dirs = ([f"lib/{multiarch}"] if multiarch else []) + ["lib64", "lib"]
    return [os.path.join("/usr/local", d, SONAME) for d in dirs]


def candidates(explicit=None, environ=None, tree=True, system=True, build_info=_build_info):
    """The places searched, in order, as (origin, path, required) triples.

    ``required`` candidates (explicit path, MLCOMM_LIBRARY) must load: a failure there
    is reported at once instead of falling through to another copy of the library.
    ``build_info`` returns the installed package's _build_info module, or None."""
    environ = os.environ if environ is None else environ
    out = []
    if explicit:
        out.append(("explicit path", os.fspath(explicit), True))
    env = environ.get("MLCOMM_LIBRARY", "")
    if env:
        p = os.path.join(env, SONAME) if os.path.isdir(env) else env
        out.append(("MLCOMM_LIBRARY", p, True))
    if tree:
        for c in _tree_candidates(_source_root()):
            out.append(("build tree", str(c), False))
    for origin, p in _installed_candidates(build_info()):
        out.append((origin, p, False))
    if system:
        found = ctypes.util.find_library("mlcomm")
        if found:
            out.append(("system (ldconfig)", found, False))
        out.append(("system (dynamic loader search)", SONAME, False))
        for p in _default_prefix_candidates():
            out.append(("system (meson's default prefix)", p, False))
    return out


def locate(explicit=None, environ=None, tree=True, system=True, loader=None,
           build_info=_build_info):
    """Loads the first candidate that works; returns (CDLL, path). Raises
    LibraryNotFoundError naming every place tried."""
    loader = loader or (lambda p: ctypes.CDLL(p, mode=ctypes.RTLD_GLOBAL))
    tried = []
    for origin, p, required in candidates(explicit, environ, tree, system, build_info):
        is_file_path = os.sep in p
        if is_file_path and not os.path.exists(p):
            tried.append(f"{origin}: {p} (no such file)")
            if required:
                break
            continue
        try:
            return loader(p), p
        except OSError as e:
            tried.append(f"{origin}: {p} ({e})")
            if required:
                break
    raise LibraryNotFoundError(
        "mlcomm: cannot load libmlcomm. Tried, in order:\n  - " + "\n  - ".join(tried or ["nothing"])
        + "\nBuild it (meson setup build && ninja -C build), then set MLCOMM_LIBRARY to "
        "build/src/libmlcomm.so.0, call mlcomm.load_library(path), or install both "
        "(meson install -C build installs this package with the library's path).")


def _detect_mpi_comm_type(lib):
    try:
        ctypes.c_char.in_dll(lib, "ompi_mpi_comm_world")
        return ctypes.c_void_p  # Open MPI: MPI_Comm is a pointer
    except ValueError:
        return ctypes.c_int  # MPICH ABI: MPI_Comm is an int


def _symbol(lib, p, name):
    try:
        return getattr(lib, name)
    except AttributeError:
        raise LibraryNotFoundError(
            f"mlcomm: {p} has no symbol {name}; it is not a libmlcomm these "
            "bindings know (rebuild it, or point MLCOMM_LIBRARY elsewhere)") from None


def load():
    """Returns the loaded library, loading it on first use."""
    global L, path, mpi_comm_t
    if L is not None:
        return L
    with _load_lock:
        if L is not None:
            return L
        lib, p = locate(_explicit)
        mpi_comm_t = _detect_mpi_comm_type(lib)
        for name, argtypes in _PROTOTYPES.items():
            fn = _symbol(lib, p, name)
            fn.restype = _R
            if name == "mlcommCommInitFromMPI":
                argtypes = [_p(c_comm), mpi_comm_t, _p(Config)]
            elif name == "mlcommCommGetMPI":
                argtypes = [c_comm, _p(mpi_comm_t)]
            fn.argtypes = argtypes
        for name in _NAME_FUNCTIONS:
            fn = _symbol(lib, p, name)
            fn.restype = ctypes.c_char_p
            fn.argtypes = [_i]
        lib.mlcommGetLastError.restype = ctypes.c_char_p
        lib.mlcommGetLastError.argtypes = [c_comm]
        v = ctypes.c_int()
        lib.mlcommGetVersion(ctypes.byref(v))
        if v.value // 10000 != ABI_VERSION // 10000 or v.value < ABI_VERSION:
            raise LibraryNotFoundError(
                f"mlcomm: {p} is version {v.value // 10000}.{v.value // 100 % 100}."
                f"{v.value % 100}; these bindings need 0.1.0 or a later 0.x")
        path = p
        L = lib
        return L


def last_error():
    """mlcommGetLastError(NULL) as str (call under ``lock`` right after the failure)."""
    s = L.mlcommGetLastError(None)
    return s.decode("utf-8", "replace") if s else ""


def version():
    """The loaded library's version code (MLCOMM_VERSION encoding)."""
    lib = load()
    v = ctypes.c_int()
    lib.mlcommGetVersion(ctypes.byref(v))
    return v.value
