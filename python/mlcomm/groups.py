"""Groups: ``mlcomm.group()``, group_start() and group_end().

Blocking calls inside a group return at once; their arrays are kept (in the thread's
``_tls.keep``) until the outermost group ends, and go to the graveyard when it fails
in a way after which MPI may still own them.
"""

import threading

from . import _lib
from ._calls import _UNSAFE, _check, _graveyard, _lock
from .errors import error_class

_tls = threading.local()  # per thread: depth (groups open), keep (arrays of blocking calls)
_open = 0  # outermost groups open in any thread (fast check for blocking calls)


def group_start():
    """mlcommGroupStart: calls until the matching group_end are recorded, then started
    together (so a ring of blocking send+recv cannot deadlock). Per thread, nestable."""
    global _open
    lib = _lib.load()
    with _lock:
        _check(lib.mlcommGroupStart(), "mlcommGroupStart")
    depth = getattr(_tls, "depth", 0)
    if depth == 0:
        _tls.keep = []
        _open += 1
    _tls.depth = depth + 1


def group_end():
    """mlcommGroupEnd: the outermost one starts the recorded calls and waits for the
    blocking ones (their arrays are kept alive until then)."""
    global _open
    lib = _lib.load()
    with _lock:
        rc = lib.mlcommGroupEnd()
        msg = _lib.last_error() if rc else ""
    depth = getattr(_tls, "depth", 0)
    if depth > 0:
        _tls.depth = depth - 1
        if depth == 1:
            keep, _tls.keep = _tls.keep, []
            _open -= 1
            if rc in _UNSAFE:
                _graveyard.append(keep)
    if rc:
        raise error_class(rc)(rc, msg, "mlcommGroupEnd")


class group:
    """``with mlcomm.group(): ...`` brackets calls with group_start()/group_end().

    Inside a group, blocking calls return at once and do their work at the end of the
    outermost group; a blocking recv then returns None (use async_=True to get its
    Status from the Request)."""

    def __enter__(self):
        group_start()
        return self

    def __exit__(self, *exc):
        group_end()
        return False
