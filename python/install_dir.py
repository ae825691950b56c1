#!/usr/bin/env python3
"""Where `meson install` puts the mlcomm package (used by python/meson.build).

    python3 install_dir.py PREFIX MESON_DIR USER_SET LIBRARY

MESON_DIR is Meson's choice for pure modules (py.get_install_dir). Meson 1.0 on Debian
answers PREFIX/lib/python3/dist-packages, which Debian's python3 only imports for the
prefix /usr: for /usr/local it reads /usr/local/lib/python3.X/dist-packages. So unless
the user chose the directory (-Dpython.purelibdir, USER_SET=1), a site directory of
this interpreter under PREFIX/lib wins over Meson's. Prints four lines: the directory;
as Python literals, LIBRARY relative to the installed package, and LIBRARY itself; and
whether the interpreter imports from the directory without PYTHONPATH ("on-path" or
"off-path").
"""

import os
import site
import sys


def main(prefix, meson_dir, user_set, library):
    prefix, chosen = os.path.normpath(prefix), os.path.normpath(meson_dir)
    sites = [os.path.normpath(d) for d in site.getsitepackages()]
    if user_set != "1" and chosen not in sites:
        lib = os.path.join(prefix, "lib") + os.sep
        under = [d for d in sites if d.startswith(lib)]
        if under:
            chosen = under[0]
    print(chosen)
    print(repr(os.path.relpath(library, os.path.join(chosen, "mlcomm"))))
    print(repr(os.path.normpath(library)))
    print("on-path" if chosen in sites else "off-path")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
