// wasi_nn_wit.mjs - wasi:nn 0.2.0-rc-2024-10-28 (wit/deps/wasi-nn) for a transpiled
// component, carried to the backend library by the same Node-API bridge that run.mjs
// uses for the legacy wasi_ephemeral_nn imports. The bridge takes guest-memory offsets,
// so each call lays its arguments out in a scratch WebAssembly memory of the host's.
//
// Backend conventions kept (docs/wasi_nn.md): input "prompt" (or "0") is the prompt,
// "config" (or "1") a JSON object of settings, each a U8 tensor, applied in order;
// compute returns "text" and "counts" (the backend's outputs 0 and 1) as U8 tensors.
const V = '0.2.0-rc-2024-10-28';
const CODES = { 1: 'invalid-argument', 2: 'invalid-encoding', 3: 'runtime-error', 4: 'runtime-error',
                5: 'runtime-error', 6: 'unsupported-operation', 7: 'too-large', 8: 'not-found',
                101: 'runtime-error', 102: 'too-large', 103: 'not-found' };
const NAMES = { 1: 'invalid_argument', 2: 'invalid_encoding', 3: 'missing_memory', 4: 'busy',
                5: 'runtime_error', 6: 'unsupported_operation', 7: 'too_large', 8: 'not_found',
                100: 'end_of_sequence', 101: 'context_full', 102: 'prompt_too_long',
                103: 'model_not_found' };
const LEGACY_TYPE = { FP16: 0, FP32: 1, FP64: 2, U8: 3, I32: 4, I64: 5 }; // the backend's ABI
const ENCODINGS = ['openvino', 'onnx', 'tensorflow', 'pytorch', 'tensorflowlite', 'ggml', 'autodetect'];
const TARGETS = ['cpu', 'gpu', 'tpu'];

export function wasiNn(nn) {
  const memory = new WebAssembly.Memory({ initial: 1 });
  let top = 0;
  const alloc = (n) => { // 8-aligned bump, reset by each entry point
    const at = (top + 7) & ~7;
    top = at + n;
    const have = memory.buffer.byteLength;
    if (top > have) memory.grow(Math.ceil((top - have) / 65536));
    return at;
  };
  const put = (bytes) => {
    const at = alloc(bytes.length);
    new Uint8Array(memory.buffer, at, bytes.length).set(bytes);
    return at;
  };
  const u32 = (at) => new DataView(memory.buffer).getUint32(at, true);

  class NnError {
    #code;
    #data;
    constructor(code, data) { this.#code = code; this.#data = data; }
    code() { return this.#code; }
    data() { return this.#data; }
  }
  const check = (rc, what) => {
    if (rc !== 0) {
      throw new NnError(CODES[rc] ?? 'unknown',
                        `${what}: the backend returned ${rc} (${NAMES[rc] ?? 'unknown'}); its stderr says why`);
    }
  };

  class Tensor {
    #dims;
    #ty;
    #data;
    constructor(dimensions, ty, data) {
      this.#dims = Uint32Array.from(dimensions);
      this.#ty = ty;
      this.#data = Uint8Array.from(data);
    }
    dimensions() { return this.#dims; }
    ty() { return this.#ty; }
    data() { return this.#data; }
  }

  const readOutput = (ctx, index) => {
    let cap = 4096;
    for (;;) {
      top = 0;
      const size = alloc(4), buf = alloc(cap);
      const rc = nn.get_output(memory.buffer, ctx, index, buf, cap, size);
      if (rc === 7 && u32(size) > cap) { cap = u32(size); continue; } // too_large: grow
      check(rc, `compute: output ${index}`);
      return new Uint8Array(memory.buffer, buf, u32(size)).slice();
    }
  };

  class GraphExecutionContext {
    #ctx;
    constructor(ctx) { this.#ctx = ctx; }
    compute(inputs) {
      for (const [name, tensor] of inputs) {
        const index = { prompt: 0, 0: 0, config: 1, 1: 1 }[name];
        if (index === undefined) {
          throw new NnError('invalid-argument', `compute: no input named "${name}"; the inputs are "prompt" and "config"`);
        }
        const ty = LEGACY_TYPE[tensor.ty()];
        if (ty === undefined) throw new NnError('invalid-argument', `compute: tensor type ${tensor.ty()}`);
        top = 0;
        const dims = new Uint8Array(Uint32Array.from(tensor.dimensions()).buffer);
        const data = tensor.data(), dimsAt = put(dims), dataAt = put(data), t = alloc(20);
        const view = new DataView(memory.buffer);
        view.setUint32(t, dimsAt, true); view.setUint32(t + 4, tensor.dimensions().length, true);
        view.setUint8(t + 8, ty);
        view.setUint32(t + 12, dataAt, true); view.setUint32(t + 16, data.length, true);
        check(nn.set_input(memory.buffer, this.#ctx, index, t), `compute: input "${name}"`);
      }
      const rc = nn.compute(memory.buffer, this.#ctx);
      if (rc !== 101) check(rc, 'compute'); // a full context keeps the text made so far
      const u8 = (b) => new Tensor([b.length], 'U8', b);
      return [['text', u8(readOutput(this.#ctx, 0))], ['counts', u8(readOutput(this.#ctx, 1))]];
    }
  }

  class Graph {
    #g;
    constructor(g) { this.#g = g; }
    initExecutionContext() {
      top = 0;
      const at = alloc(4);
      check(nn.init_execution_context(memory.buffer, this.#g, at), 'init-execution-context');
      return new GraphExecutionContext(u32(at));
    }
  }

  const graph = {
    Graph,
    loadByName(name) {
      top = 0;
      const bytes = new TextEncoder().encode(name), nameAt = put(bytes), at = alloc(4);
      check(nn.load_by_name(memory.buffer, nameAt, bytes.length, at), `load-by-name "${name}"`);
      return new Graph(u32(at));
    },
    load(builders, encoding, target) {
      top = 0;
      const parts = builders.map((b) => [put(b), b.length]), arr = alloc(8 * parts.length);
      const view = new DataView(memory.buffer);
      parts.forEach(([p, n], i) => { view.setUint32(arr + 8 * i, p, true); view.setUint32(arr + 8 * i + 4, n, true); });
      const at = alloc(4);
      check(nn.load(memory.buffer, arr, parts.length, ENCODINGS.indexOf(encoding), TARGETS.indexOf(target), at), 'load');
      return new Graph(u32(at));
    },
  };
  const ifaces = { tensor: { Tensor }, graph, inference: { GraphExecutionContext },
                   errors: { Error: NnError } };
  // jco's instantiate() looks imports up by name without the version, its types with it
  const imports = {};
  for (const [name, impl] of Object.entries(ifaces)) {
    imports[`wasi:nn/${name}`] = impl;
    imports[`wasi:nn/${name}@${V}`] = impl;
  }
  return imports;
}
