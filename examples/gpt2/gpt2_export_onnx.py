#!/usr/bin/python3
"""gpt2_export_onnx: writes an llm.c GPT-2 checkpoint (version 3 fp32 or 5 bf16, as
train_gpt2 --save writes them) as an ONNX model for other runtimes' ONNX backends
(onnxruntime, WasmEdge's or WAMR's ONNX wasi-nn plugins).

  input  input_ids  int64   [B, T]     (B and T dynamic, T <= the model's maxT)
  output logits     float32 [B, T, V]  (V the real vocabulary, not the padded one)

The graph is the model library's forward (examples/gpt2/model/gpt2.c), op for op:
token + position embeddings; per layer a pre-norm causal self-attention and a GELU
(tanh form) MLP, each added to the residual; a final layer norm; the tied embedding as
the output head. Opset 17 (LayerNormalization). Built and checked with Debian's
python3-onnx; weights are float32.

With --kv-cache the model also takes and gives each layer's attention keys and values,
for generation a token at a time without recomputing the prefix:
  inputs   past.L.key, past.L.value        float32 [B, NH, P, HS]  (P = 0 to start)
  outputs  present.L.key, present.L.value  float32 [B, NH, P+T, HS]
and input_ids holds the T positions after the P cached ones (P + T <= maxT).

usage: gpt2_export_onnx.py [--kv-cache] MODEL.bin OUT.onnx
"""
import sys

import numpy as np

HEADER_INTS = 256
MAGIC = 20240326


def fail(msg):
    print('gpt2_export_onnx: ' + msg, file=sys.stderr)
    sys.exit(1)


def read_checkpoint(path):
    """The header's config and the sixteen tensors in llm.c's order, as float32."""
    try:
        raw = open(path, 'rb').read()
    except OSError as e:
        fail(f'cannot read {path}: {e.strerror}')
    if len(raw) < 4 * HEADER_INTS:
        fail(f'{path} is {len(raw)} bytes, shorter than an llm.c header')
    h = np.frombuffer(raw, dtype='<i4', count=HEADER_INTS)
    if h[0] != MAGIC or h[1] not in (3, 5):
        fail(f'{path} is not an llm.c checkpoint (magic {h[0]}, version {h[1]}; '
             f'expected {MAGIC} and 3 (fp32) or 5 (bf16))')
    maxT, V, L, NH, C, Vp = (int(x) for x in h[2:8])
    if min(maxT, V, L, NH, C) < 1 or C % NH or Vp < V:
        fail(f'{path}: bad config maxT={maxT} V={V} L={L} NH={NH} C={C} Vp={Vp}')
    shapes = [('wte', (Vp, C)), ('wpe', (maxT, C)), ('ln1w', (L, C)), ('ln1b', (L, C)),
              ('qkvw', (L, 3 * C, C)), ('qkvb', (L, 3 * C)), ('attprojw', (L, C, C)),
              ('attprojb', (L, C)), ('ln2w', (L, C)), ('ln2b', (L, C)),
              ('fcw', (L, 4 * C, C)), ('fcb', (L, 4 * C)), ('fcprojw', (L, C, 4 * C)),
              ('fcprojb', (L, C)), ('lnfw', (C,)), ('lnfb', (C,))]
    count = sum(int(np.prod(s)) for _, s in shapes)
    elem = 4 if h[1] == 3 else 2
    if len(raw) != 4 * HEADER_INTS + elem * count:
        fail(f'{path} is {len(raw)} bytes; its header (L={L} C={C} NH={NH} maxT={maxT} '
             f'Vp={Vp}, {"fp32" if elem == 4 else "bf16"}) needs {4 * HEADER_INTS + elem * count}')
    if elem == 4:
        flat = np.frombuffer(raw, dtype='<f4', offset=4 * HEADER_INTS)
    else:  # bf16: the high half of a float32
        flat = (np.frombuffer(raw, dtype='<u2', offset=4 * HEADER_INTS).astype(np.uint32)
                << 16).view(np.float32)
    params, at = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        params[name] = flat[at:at + n].reshape(shape)
        at += n
    return dict(maxT=maxT, V=V, L=L, NH=NH, C=C), params


class Graph:
    """Nodes and initializers, named in order: a thin layer over onnx.helper."""

    def __init__(self, onnx):
        self.onnx, self.h = onnx, onnx.helper
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, array):
        array = np.array(array, order='C')  # (ascontiguousarray would make a scalar 1-D)
        self.inits.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, kind, *inputs, **attrs):
        self.n += 1
        out = f'{kind.lower()}_{self.n}'
        self.nodes.append(self.h.make_node(kind, list(inputs), [out], **attrs))
        return out

    def linear(self, x, w, b, name):
        """llm.c's matmul: out = x @ w.T + b with w as (OC, C)."""
        return self.op('Add', self.op('MatMul', x, self.const(name + '.w', w.T)),
                       self.const(name + '.b', b))

    def layernorm(self, x, w, b, name):
        return self.op('LayerNormalization', x, self.const(name + '.w', w),
                       self.const(name + '.b', b), axis=-1, epsilon=1e-5)

    def gelu(self, x):
        """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as the kernels compute it."""
        c = lambda name, v: self.const(name, np.array(v, dtype=np.float32))
        if not any(i.name == 'gelu.k' for i in self.inits):
            c('gelu.k', 0.044715), c('gelu.s', 0.7978845608028654), c('half', 0.5), c('one', 1.0)
        x3 = self.op('Mul', self.op('Mul', x, x), x)
        u = self.op('Mul', self.op('Add', x, self.op('Mul', x3, 'gelu.k')), 'gelu.s')
        return self.op('Mul', self.op('Mul', x, 'half'), self.op('Add', self.op('Tanh', u), 'one'))


def build(cfg, p, kv_cache=False):
    import onnx
    import onnx.numpy_helper
    g = Graph(onnx)
    maxT, V, L, NH, C = cfg['maxT'], cfg['V'], cfg['L'], cfg['NH'], cfg['C']
    HS = C // NH
    i64 = lambda name, v: g.const(name, np.array(v, dtype=np.int64))
    wte = g.const('wte', p['wte'][:V])  # rows past V are padding, never used
    # T new positions after P cached ones (P = 0 without a cache): positions P..P+T-1,
    # and rows P..P+T-1, columns 0..P+T-1 of the causal mask
    T = g.op('Gather', g.op('Shape', 'input_ids'), i64('one_i', 1), axis=0)
    P = (g.op('Gather', g.op('Shape', 'past.0.key'), i64('two_i', 2), axis=0) if kv_cache
         else i64('zero_i', 0))
    end = g.op('Add', P, T)
    pos = g.op('Range', P, end, 'one_i')
    x = g.op('Add', g.op('Gather', wte, 'input_ids', axis=0),
             g.op('Gather', g.const('wpe', p['wpe']), pos, axis=0))
    causal = g.const('causal', np.tril(np.ones((maxT, maxT), dtype=bool)))
    axis0 = i64('axis0', [0])
    end1 = g.op('Unsqueeze', end, axis0)
    starts = g.op('Concat', g.op('Unsqueeze', P, axis0), i64('zero_1d', [0]), axis=0)
    mask = g.op('Slice', causal, starts, g.op('Concat', end1, end1, axis=0),
                i64('axes01', [0, 1]))
    neg_inf = g.const('neg_inf', np.array(-np.inf, dtype=np.float32))
    scale = g.const('att_scale', np.array(1.0 / np.sqrt(HS), dtype=np.float32))
    heads = i64('heads_shape', [0, 0, NH, HS])
    merged = i64('merged_shape', [0, 0, C])
    split = i64('qkv_split', [C, C, C])
    for l in range(L):
        n = f'h{l}'
        qkv = g.linear(g.layernorm(x, p['ln1w'][l], p['ln1b'][l], n + '.ln1'),
                       p['qkvw'][l], p['qkvb'][l], n + '.qkv')
        g.n += 1
        q, k, v = (f'split_{g.n}_{j}' for j in range(3))
        g.nodes.append(g.h.make_node('Split', [qkv, split], [q, k, v], axis=-1))
        # (B,T,C) -> (B,NH,T,HS); with a cache, keys and values follow the past ones
        qh, kh, vh = (g.op('Transpose', g.op('Reshape', t, heads), perm=[0, 2, 1, 3])
                      for t in (q, k, v))
        if kv_cache:
            for kind, new in (('key', kh), ('value', vh)):
                g.nodes.append(g.h.make_node('Concat', [f'past.{l}.{kind}', new],
                                             [f'present.{l}.{kind}'], axis=2))
            kh, vh = f'present.{l}.key', f'present.{l}.value'
        kt = g.op('Transpose', kh, perm=[0, 1, 3, 2])
        att = g.op('Mul', g.op('MatMul', qh, kt), scale)
        att = g.op('Softmax', g.op('Where', mask, att, neg_inf), axis=-1)
        y = g.op('Reshape', g.op('Transpose', g.op('MatMul', att, vh), perm=[0, 2, 1, 3]), merged)
        x = g.op('Add', x, g.linear(y, p['attprojw'][l], p['attprojb'][l], n + '.attproj'))
        h = g.linear(g.layernorm(x, p['ln2w'][l], p['ln2b'][l], n + '.ln2'),
                     p['fcw'][l], p['fcb'][l], n + '.fc')
        x = g.op('Add', x, g.linear(g.gelu(h), p['fcprojw'][l], p['fcprojb'][l], n + '.fcproj'))
    x = g.layernorm(x, p['lnfw'], p['lnfb'], 'lnf')
    g.nodes.append(g.h.make_node('MatMul', [x, g.op('Transpose', wte, perm=[1, 0])], ['logits']))
    T_, info = onnx.TensorProto, g.h.make_tensor_value_info
    inputs = [info('input_ids', T_.INT64, ['B', 'T'])]
    outputs = [info('logits', T_.FLOAT, ['B', 'T', V])]
    for l in range(L if kv_cache else 0):
        for kind in ('key', 'value'):
            inputs.append(info(f'past.{l}.{kind}', T_.FLOAT, ['B', NH, 'P', HS]))
            outputs.append(info(f'present.{l}.{kind}', T_.FLOAT, ['B', NH, 'P+T', HS]))
    graph = g.h.make_graph(g.nodes, 'gpt2', inputs, outputs, g.inits)
    model = g.h.make_model(graph, producer_name='mlcomm gpt2_export_onnx',
                           opset_imports=[g.h.make_opsetid('', 17)])
    model.ir_version = 8  # what opset 17 needs; runtimes from 2022 on read it
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv):
    if len(argv) == 2 and argv[1] in ('-h', '--help'):
        print(__doc__.strip())
        return 0
    kv_cache = '--kv-cache' in argv
    args = [a for a in argv[1:] if a != '--kv-cache']
    if len(args) != 2 or args[0].startswith('-'):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        import onnx
    except ImportError:
        fail('the onnx module is missing (Debian: apt-get install python3-onnx)')
    cfg, params = read_checkpoint(args[0])
    nbytes = 4 * sum(a.size for a in params.values())
    if nbytes > 2_000_000_000:  # one protobuf message holds at most 2 GiB
        fail(f'{args[0]} has {nbytes / 1e9:.1f} GB of float32 weights; an ONNX file holds at '
             'most 2 GB without external data, which this tool does not write')
    model = build(cfg, params, kv_cache)
    try:
        onnx.save(model, args[1])
    except (OSError, ValueError) as e:
        fail(f'cannot write {args[1]}: {e}')
    print(f'gpt2_export_onnx: {args[1]}{" (KV cache)" if kv_cache else ""}: L={cfg["L"]} NH={cfg["NH"]} C={cfg["C"]} '
          f'maxT={cfg["maxT"]} V={cfg["V"]}, {len(model.graph.node)} nodes')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
