"""Installs the mlcomm package into a temporary directory and uses that copy.

    python3 check_install.py meson MESON BUILD_ROOT SITE_DIR LIBRARY MPIRUN [MPIRUN_ARGS...]
    python3 check_install.py pip PYTHON_DIR BUILD_LIBRARY MPIRUN [MPIRUN_ARGS...]

meson: `meson install --destdir` of the build, then the installed package, found
through PYTHONPATH alone (no MLCOMM_LIBRARY, no LD_LIBRARY_PATH, run from outside the
source tree), must load the library installed with it and run a 1-rank allreduce.
SITE_DIR and LIBRARY are the configured (un-staged) places of the package and library.

pip: `pip install` of a copy of PYTHON_DIR into a fresh virtual environment, offline
(--no-build-isolation uses Debian's setuptools), then the same allreduce with the
library named by MLCOMM_LIBRARY, since a pip-built copy records no library path.

Exit status 0 when every check holds, 1 with the failed checks listed, 77 (meson's
SKIP) when pip, setuptools or venv is missing.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

PROBE = """
import json, numpy as np, mlcomm
comm = mlcomm.Comm.world()
x = np.arange(7, dtype=np.float32)
y = comm.allreduce(x * (comm.rank + 1), op="sum")
try:
    from mlcomm import _build_info
    info = {"LIBRARY": _build_info.LIBRARY}
except ImportError:
    info = None
print("CHECK " + json.dumps({"package": mlcomm.__file__, "library": mlcomm.library_path(),
                             "build_info": info, "size": comm.size, "result": y.tolist()}))
"""


def run(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          **kw)


def probe(python, mpirun, env, cwd):
    """Runs PROBE on one rank; returns its report (dict) or None, printing the output."""
    p = run(mpirun + ["-np", "1", python, "-c", PROBE], env=env, cwd=cwd, timeout=90)
    print(p.stdout)
    for line in p.stdout.splitlines():
        if line.startswith("CHECK "):
            return json.loads(line[len("CHECK "):]) if p.returncode == 0 else None
    return None


def check_report(r, site, library, what):
    """The failed checks of a probe's report: the package imported from site, the
    library loaded is library, and the allreduce's result."""
    if r is None:
        return [f"the {what} package did not run a 1-rank allreduce"]
    failed = []
    if not r["package"].startswith(os.path.join(site, "mlcomm") + os.sep):
        failed.append(f"imported {r['package']}, not the {what} copy under {site}")
    if not os.path.samefile(r["library"], library):
        failed.append(f"loaded {r['library']}, not {library}")
    if r["result"] != [float(i) for i in range(7)]:
        failed.append(f"allreduce gave {r['result']}")
    return failed


def staged(destdir, path):
    return os.path.join(destdir, os.path.relpath(path, os.sep))


def package_modules(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".py"))


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLCOMM_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    env.update(extra)
    return env


def check_meson(tmp, meson, build_root, site_dir, library, mpirun):
    destdir = os.path.join(tmp, "destdir")
    p = run([meson, "install", "-C", build_root, "--no-rebuild", "--quiet",
             "--destdir", destdir])
    if p.returncode != 0:
        return [f"meson install failed ({p.returncode}):\n{p.stdout}"]
    site, lib = staged(destdir, site_dir), staged(destdir, library)
    failed = []
    source_pkg = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "mlcomm")
    installed = package_modules(os.path.join(site, "mlcomm"))
    expected = sorted(package_modules(source_pkg) + ["_build_info.py"])
    if installed != expected:
        failed.append(f"installed modules {installed} != the source tree's {expected} "
                      "(+ _build_info.py): update python/meson.build's list")
    if not os.path.isfile(lib):
        return failed + [f"no library at {lib} after meson install"]
    r = probe(sys.executable, mpirun, clean_env(PYTHONPATH=site), cwd=tmp)
    failed += check_report(r, site, lib, "installed")
    if r is not None and (r["build_info"] or {}).get("LIBRARY") != os.path.normpath(library):
        failed.append(f"_build_info records {r['build_info']}, expected {library}")
    return failed


def check_pip(tmp, python_dir, build_library, mpirun):
    missing = [pkg for mod, pkg in (("pip", "python3-pip"), ("setuptools", "python3-setuptools"),
                                    ("ensurepip", "python3-venv"))
               if importlib.util.find_spec(mod) is None]
    if missing:
        print(f"SKIP: {sys.executable} lacks {', '.join(missing)} "
              f"(apt-get install {' '.join(missing)})")
        return None
    # pip builds in the directory it is given: a copy keeps the source tree clean.
    src = os.path.join(tmp, "src")
    shutil.copytree(os.path.join(python_dir, "mlcomm"), os.path.join(src, "mlcomm"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(python_dir, "pyproject.toml"), src)
    venv = os.path.join(tmp, "venv")
    p = run([sys.executable, "-m", "venv", "--system-site-packages", venv])
    if p.returncode != 0:
        print(f"SKIP: cannot create a virtual environment:\n{p.stdout}")
        return None
    vpy = os.path.join(venv, "bin", "python")
    p = run([vpy, "-m", "pip", "install", "--no-build-isolation", "--no-index",
             "--disable-pip-version-check", "--no-cache-dir", src], env=clean_env(), cwd=tmp)
    print(p.stdout)
    if p.returncode != 0:
        return [f"pip install failed ({p.returncode})"]
    site = run([vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               env=clean_env()).stdout.strip()
    failed = []
    installed = package_modules(os.path.join(site, "mlcomm"))
    if installed != package_modules(os.path.join(python_dir, "mlcomm")):
        failed.append(f"pip installed {installed}, not every module of {python_dir}/mlcomm")
    r = probe(vpy, mpirun, clean_env(MLCOMM_LIBRARY=build_library), cwd=tmp)
    failed += check_report(r, site, build_library, "pip-installed")
    if r is not None and r["build_info"] is not None:
        failed.append("a pip-built package carries a _build_info module")
    return failed


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    need = {"meson": 4, "pip": 2}.get(mode)  # arguments before MPIRUN
    if need is None or len(argv) < 3 + need:
        sys.stderr.write(__doc__)
        return 2
    fixed, mpirun = argv[2:2 + need], argv[2 + need:]
    tmp = tempfile.mkdtemp(prefix=f"mlcomm-{mode}-install-")
    try:
        failed = (check_meson if mode == "meson" else check_pip)(tmp, *fixed, mpirun)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failed is None:
        return 77
    for f in failed:
        print("FAILED: " + f)
    if not failed:
        print(f"ok: the {mode}-installed package imports from its install location and "
              "runs a 1-rank allreduce")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
