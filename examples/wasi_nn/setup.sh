#!/bin/sh
# setup.sh - installs what examples/wasi_nn needs beyond the GPT-2 example, once, at
# set-up time (nothing is downloaded at build or run time):
#   Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32 (the guests), libcjson-dev and
#           libpcre2-dev (the backend's settings and the prompt encoder), nodejs and npm
#           when no node/npm is installed (the host runner), valgrind (the backend's
#           memory test; optional)
#   npm:    node-api-headers, the Node-API headers the bridge is compiled with, into
#           $WASI_NN_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/mlcomm/wasi_nn),
#           skipped when Debian's /usr/include/node/node_api.h is there and
#           WASI_NN_NPM_HEADERS is unset.
# The model data (tokenizer.bin, token shards) come from examples/gpt2/prepare_data.sh.
set -eu
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  pkgs="clang lld wasi-libc libclang-rt-14-dev-wasm32 libcjson-dev libpcre2-dev valgrind"
  # a Node.js from elsewhere (NodeSource's bundles npm and the headers) is kept as it is
  command -v node >/dev/null || pkgs="$pkgs nodejs"
  command -v npm >/dev/null || pkgs="$pkgs npm"
  DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs
else
  echo "setup.sh: not root or no apt-get; install clang lld wasi-libc libclang-rt-14-dev-wasm32" \
       "libcjson-dev libpcre2-dev nodejs npm valgrind yourself" >&2
fi
cache="${WASI_NN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlcomm/wasi_nn}"
if [ -n "${WASI_NN_NPM_HEADERS:-}" ] || [ ! -f /usr/include/node/node_api.h ]; then
  if [ ! -f "$cache/node_modules/node-api-headers/include/node_api.h" ]; then
    mkdir -p "$cache"
    npm install --prefix "$cache" --no-audit --no-fund node-api-headers
  fi
  echo "setup.sh: Node-API headers in $cache/node_modules/node-api-headers/include"
fi
echo "setup.sh: done; reconfigure (meson setup --reconfigure BUILD) to build the guests and the bridge"
