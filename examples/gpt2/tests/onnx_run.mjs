// onnx_run.mjs - runs an exported GPT-2 (gpt2_export_onnx.py) in onnxruntime-node, the
// ONNX runtime other wasi-nn hosts embed, for test_export_onnx.py.
// usage: node onnx_run.mjs NODE_MODULES MODEL.onnx IDS.bin B T OUT.bin [SPLIT NH HS]
//   IDS.bin int32 [B,T]; OUT.bin gets the float32 logits [B,T,V]. With SPLIT (a model
//   exported --kv-cache): the first SPLIT positions in one run from an empty cache,
//   then one position per run, each fed the cache the previous run returned.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const [modules, model, idsPath, Bs, Ts, out, splitS, NHs, HSs] = process.argv.slice(2);
const ort = createRequire(path.join(path.resolve(modules), 'x.js'))('onnxruntime-node');
const [B, T] = [Number(Bs), Number(Ts)];
const raw = readFileSync(idsPath);
const ids = BigInt64Array.from(new Int32Array(raw.buffer, raw.byteOffset, raw.length / 4),
                               (v) => BigInt(v));
const session = await ort.InferenceSession.create(model);
// ids[:, from:to] as a [B, to-from] tensor
const cols = (from, to) => {
  const a = new BigInt64Array(B * (to - from));
  for (let b = 0; b < B; b++) a.set(ids.subarray(b * T + from, b * T + to), b * (to - from));
  return new ort.Tensor('int64', a, [B, to - from]);
};
const check = (t) => {
  if (t.type !== 'float32' || t.dims.length !== 3) throw new Error(`logits: ${t.type} ${t.dims}`);
  return t;
};
let logits;
if (splitS === undefined) {
  logits = check((await session.run({ input_ids: cols(0, T) })).logits).data;
} else {
  const [split, NH, HS] = [Number(splitS), Number(NHs), Number(HSs)];
  const past = {};
  for (const name of session.inputNames.filter((n) => n.startsWith('past.')))
    past[name] = new ort.Tensor('float32', new Float32Array(0), [B, NH, 0, HS]);
  const steps = [[0, split]];
  for (let t = split; t < T; t++) steps.push([t, t + 1]);
  let V = 0;
  for (const [from, to] of steps) {
    const res = await session.run({ input_ids: cols(from, to), ...past });
    const l = check(res.logits);
    V = l.dims[2];
    logits ??= new Float32Array(B * T * V);
    for (let b = 0; b < B; b++)
      logits.set(l.data.subarray(b * (to - from) * V, (b + 1) * (to - from) * V), (b * T + from) * V);
    for (const name of Object.keys(past)) {
      past[name] = res[name.replace('past.', 'present.')];
      if (past[name].dims[2] !== to) throw new Error(`${name}: ${past[name].dims} after ${to}`);
    }
  }
}
writeFileSync(out, Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength));
console.log(`onnx_run: logits of ${B} x ${T} positions`);
