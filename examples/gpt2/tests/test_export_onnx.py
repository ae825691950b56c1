#!/usr/bin/python3
"""gpt2_export_onnx.py against a real ONNX runtime: random fp32 and bf16 checkpoints
(odd vocabulary, so the padded rows must be cut) are exported; onnxruntime-node (npm,
installed by .ci/setup) runs each on random ids, B=3, T up to maxT; its logits must
equal the model library's (gpt2_forward_token) within 1e-4. The --kv-cache export is
run as generation runs it: a prefix from an empty cache, then a position at a time
with the returned cache; its logits must match too. Also: the exporter refuses
a file that is not a checkpoint with a sentence. Exits 77 naming what is missing."""
import argparse, os, subprocess, sys, tempfile

import numpy as np

p = argparse.ArgumentParser()
for a in ['exporter', 'ref', 'runner', 'node', 'modules']:
    p.add_argument('--' + a, required=True)
o = p.parse_args()


def skip(why):
    print('SKIP: ' + why)
    sys.exit(77)


try:
    import onnx  # noqa: F401
except ImportError:
    skip('no python3-onnx (apt-get install python3-onnx)')
if not os.path.isdir(os.path.join(o.modules, 'onnxruntime-node')):
    skip(f'no onnxruntime-node in {o.modules} (.ci/setup installs it with npm)')
if subprocess.run([o.node, '--version'], capture_output=True).returncode != 0:
    skip('no node')

tmp = tempfile.mkdtemp(prefix='gpt2-onnx-')
fails = 0
rng = np.random.default_rng(5)
for version, (L, NH, C, maxT, V) in [('fp32', (2, 4, 64, 32, 1000)), ('bf16', (3, 2, 32, 16, 517))]:
    model = os.path.join(tmp, f'model_{version}.bin')
    onnx_path = os.path.join(tmp, f'model_{version}.onnx')
    subprocess.run([o.ref, 'make', model, version, str(L), str(NH), str(C), str(maxT), str(V),
                    '11'], check=True)
    subprocess.run([sys.executable, o.exporter, model, onnx_path], check=True)
    kv_path = onnx_path.replace('.onnx', '_kv.onnx')
    subprocess.run([sys.executable, o.exporter, '--kv-cache', model, kv_path], check=True)
    heads = [str(NH), str(C // NH)]
    runs = [(onnx_path, 3, maxT, []), (onnx_path, 1, 5, []),
            (kv_path, 2, maxT, ['5'] + heads), (kv_path, 1, 3, ['1'] + heads)]
    for path, B, T, kv in runs:
        what = version + (f' KV cache, prefix {kv[0]} then 1 at a time' if kv else '')
        ids = rng.integers(0, V, size=(B, T), dtype=np.int32)
        ids_path = os.path.join(tmp, 'ids.bin')
        ids.tofile(ids_path)
        want_path, got_path = os.path.join(tmp, 'want.bin'), os.path.join(tmp, 'got.bin')
        subprocess.run([o.ref, 'logits', model, ids_path, str(B), str(T), want_path], check=True)
        r = subprocess.run([o.node, o.runner, o.modules, path, ids_path, str(B), str(T),
                            got_path] + kv, capture_output=True, text=True)
        if r.returncode != 0:
            print(f'FAILED: onnxruntime on {what}: {r.stderr}', file=sys.stderr)
            fails += 1
            continue
        want = np.fromfile(want_path, dtype=np.float32).reshape(B, T, V)
        got = np.fromfile(got_path, dtype=np.float32)
        if got.size != want.size:
            print(f'FAILED: {what} B={B} T={T}: {got.size} logits, want {want.size}',
                  file=sys.stderr)
            fails += 1
            continue
        err = float(np.max(np.abs(got.reshape(B, T, V) - want)))
        print(f'{what} L={L} NH={NH} C={C} V={V} B={B} T={T}: max |onnx - C| = {err:.2e} '
              f'(logits up to {float(np.max(np.abs(want))):.2f})')
        if not err <= 1e-4:
            print(f'FAILED: {what} B={B} T={T}: logits differ by {err}', file=sys.stderr)
            fails += 1

bad = os.path.join(tmp, 'not_a_model.bin')
with open(bad, 'wb') as f:
    f.write(b'\0' * 2048)
r = subprocess.run([sys.executable, o.exporter, bad, os.path.join(tmp, 'x.onnx')],
                   capture_output=True, text=True)
if r.returncode != 1 or 'not an llm.c checkpoint' not in r.stderr:
    print('FAILED: a bad checkpoint: ' + r.stderr, file=sys.stderr)
    fails += 1
subprocess.run(['rm', '-rf', tmp])
print('onnx export: ' + ('FAILED' if fails else 'ok'))
sys.exit(1 if fails else 0)
