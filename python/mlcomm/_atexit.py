"""What the package does at exit: finish or abort the requests in flight, destroy the
communicators left, free the mem_alloc memory left, then finalise MPI if the package
started it. Registered with atexit when the package is imported."""

import atexit
import sys
import time

from . import _lib, _mpi
from .comm import _comms
from .errors import MlcommError
from .memory import _mem_free, _mem_live
from .request import _pending, _test_state

#: How long exit waits for requests still in flight before aborting their communicators.
EXIT_WAIT_S = 10.0


def _shutdown():
    """atexit: finish or abort requests, destroy communicators (reverse creation order),
    free mlcommMemAlloc memory, then MPI_Finalize if this package initialised MPI."""
    if _lib.L is None:
        return
    try:
        if _mpi.is_initialized() and not _mpi.is_finalized():
            deadline = time.monotonic() + EXIT_WAIT_S
            while _pending and time.monotonic() < deadline:
                for st in list(_pending.values()):
                    _test_state(st)
                if _pending:
                    time.sleep(0.001)
            stuck = {id(st.comm) for st in _pending.values()}
            if _pending:
                sys.stderr.write(f"mlcomm: {len(_pending)} request(s) still in flight at exit "
                                 f"after {EXIT_WAIT_S:g} s; aborting their communicators\n")
            for c in reversed(list(_comms.values())):
                try:
                    if id(c) in stuck:
                        c.abort()
                    else:
                        c.destroy()
                except MlcommError:
                    try:
                        c.abort()
                    except MlcommError:
                        pass
        for ptr, fin in list(_mem_live.items()):
            if fin.detach() is not None:
                _mem_free(ptr, at_exit=True)
    finally:
        _mpi.finalize_if_ours()


atexit.register(_shutdown)
