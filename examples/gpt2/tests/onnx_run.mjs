// onnx_run.mjs - runs an exported GPT-2 (gpt2_export_onnx.py) in onnxruntime-node, the
// ONNX runtime other wasi-nn hosts embed, for test_export_onnx.py.
// usage: node onnx_run.mjs NODE_MODULES MODEL.onnx IDS.bin B T OUT.bin
//   IDS.bin int32 [B,T]; OUT.bin gets the float32 logits [B,T,V]
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const [modules, model, idsPath, B, T, out] = process.argv.slice(2);
const ort = createRequire(path.join(path.resolve(modules), 'x.js'))('onnxruntime-node');
const raw = readFileSync(idsPath);
const ids = BigInt64Array.from(new Int32Array(raw.buffer, raw.byteOffset, raw.length / 4),
                               (v) => BigInt(v));
const session = await ort.InferenceSession.create(model);
const res = await session.run({ input_ids: new ort.Tensor('int64', ids, [Number(B), Number(T)]) });
const logits = res.logits;
if (logits.type !== 'float32' || logits.dims.length !== 3) throw new Error(`logits: ${logits.dims}`);
writeFileSync(out, Buffer.from(logits.data.buffer, logits.data.byteOffset, logits.data.byteLength));
console.log(`onnx_run: logits [${logits.dims.join(', ')}]`);
