"""Runs the pytest suite of the Python bindings under mpirun (used by python/meson.build).

    python3 launch.py MPIRUN NP [MPIRUN_ARGS...] -- [PYTEST_ARGS...]

It runs outside mpirun, with the same interpreter the ranks will use, so that a
missing numpy or pytest is reported as a skip (exit code 77, meson's SKIP) with the
reason, instead of as N failed ranks. Every rank then runs
``python3 -m pytest python/tests`` on the same files, in the same order.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    if len(argv) < 3 or "--" not in argv:
        sys.stderr.write(__doc__)
        return 2
    sep = argv.index("--")
    mpirun, np_ = argv[1], argv[2]
    mpirun_args, pytest_args = argv[3:sep], argv[sep + 1:]
    missing = []
    for mod, pkg in (("numpy", "python3-numpy"), ("pytest", "python3-pytest")):
        try:
            __import__(mod)
        except ImportError:
            missing.append(pkg)
    if missing:
        print(f"SKIP: {sys.executable} lacks {', '.join(missing)} "
              f"(apt-get install {' '.join(missing)})")
        return 77
    if not os.environ.get("MLCOMM_LIBRARY"):
        print("note: MLCOMM_LIBRARY is not set; the package searches the build tree and the system")
    env = dict(os.environ)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")  # N ranks, one source tree
    cmd = [mpirun] + mpirun_args + ["-np", np_, sys.executable, "-m", "pytest", HERE,
                                    "-p", "no:cacheprovider", "-q", "-rs", "--color=no"] + pytest_args
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
