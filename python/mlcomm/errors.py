"""Exceptions raised by the mlcomm bindings.

Every failure reported by libmlcomm raises a subclass of :class:`MlcommError` that
carries the result code (``err.code``), its short name (``err.name``, from
``mlcommGetErrorString``) and the library's sentence (``err.detail``, from
``mlcommGetLastError``). Wrong Python arguments (a dtype mlcomm has no type for, a
shape that breaks the call's size rules, a non-contiguous array) raise ``TypeError`` /
``ValueError`` before anything reaches C, and are never ``MlcommError``.
"""

# Result codes (mlcommResult_t).
SUCCESS = 0
INVALID_ARGUMENT = 1
SYSTEM_ERROR = 2
INTERNAL_ERROR = 3
REMOTE_ERROR = 4
TIMEOUT = 5
IN_PROGRESS = 6
UNSUPPORTED = 7

_NAMES = {
    SUCCESS: "success",
    INVALID_ARGUMENT: "invalid argument",
    SYSTEM_ERROR: "system error",
    INTERNAL_ERROR: "internal error",
    REMOTE_ERROR: "remote error",
    TIMEOUT: "timeout",
    IN_PROGRESS: "in progress",
    UNSUPPORTED: "unsupported",
}


class MlcommError(Exception):
    """A call into libmlcomm failed.

    Attributes: ``code`` (the ``mlcommResult_t`` value), ``name`` (its short name, e.g.
    ``"invalid argument"``), ``detail`` (the library's sentence naming the argument or
    peer and what to do) and ``call`` (the C function that failed).
    """

    code = None

    def __init__(self, code, detail="", call="", name=None):
        self.code = int(code)
        self.name = name if name is not None else _NAMES.get(self.code, "unknown result code")
        self.detail = detail or ""
        self.call = call or ""
        text = f"{self.call} failed: {self.name}" if self.call else self.name
        if self.detail:
            text += f": {self.detail}"
        super().__init__(text)

    def __reduce__(self):  # picklable (multiprocessing, pytest-xdist)
        return (_rebuild, (self.code, self.detail, self.call, self.name))


def _rebuild(code, detail, call, name):
    return error_class(code)(code, detail, call, name)


class InvalidArgumentError(MlcommError):
    """mlcommInvalidArgument: a bad argument, handle or configuration (see ``detail``)."""

    code = INVALID_ARGUMENT


class MlcommSystemError(MlcommError):
    """mlcommSystemError: an operating-system call failed (memory, /dev/shm)."""

    code = SYSTEM_ERROR


class InternalError(MlcommError):
    """mlcommInternalError: an MPI or CUDA call failed, or a bug in mlcomm."""

    code = INTERNAL_ERROR


class RemoteError(MlcommError):
    """mlcommRemoteError: a peer failed, or the communicator was aborted or failed."""

    code = REMOTE_ERROR


class MlcommTimeoutError(MlcommError):
    """mlcommTimeout: a wait exceeded the communicator's timeout (``detail`` names ranks)."""

    code = TIMEOUT


class InProgressError(MlcommError):
    """mlcommInProgress: the communicator (or memory) is still used by requests in flight."""

    code = IN_PROGRESS


class UnsupportedError(MlcommError):
    """mlcommUnsupported: valid, but this build or transport cannot do it."""

    code = UNSUPPORTED


_CLASSES = {
    INVALID_ARGUMENT: InvalidArgumentError,
    SYSTEM_ERROR: MlcommSystemError,
    INTERNAL_ERROR: InternalError,
    REMOTE_ERROR: RemoteError,
    TIMEOUT: MlcommTimeoutError,
    IN_PROGRESS: InProgressError,
    UNSUPPORTED: UnsupportedError,
}


def error_class(code):
    """The MlcommError subclass for a result code (MlcommError itself for unknown codes)."""
    return _CLASSES.get(int(code), MlcommError)


class LibraryNotFoundError(OSError):
    """libmlcomm.so could not be found or loaded; the message lists every place tried."""
