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

usage: gpt2_export_onnx.py MODEL.bin OUT.onnx
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


def build(cfg, p):
    import onnx
    import onnx.numpy_helper
    g = Graph(onnx)
    maxT, V, L, NH, C = cfg['maxT'], cfg['V'], cfg['L'], cfg['NH'], cfg['C']
    HS = C // NH
    i64 = lambda name, v: g.const(name, np.array(v, dtype=np.int64))
    wte = g.const('wte', p['wte'][:V])  # rows past V are padding, never used
    # T from the input, positions 0..T-1, and the causal mask's top-left T x T
    T = g.op('Gather', g.op('Shape', 'input_ids'), i64('one_i', 1), axis=0)
    T1 = g.op('Unsqueeze', T, i64('axis0', [0]))
    pos = g.op('Range', i64('zero_i', 0), T, 'one_i')
    x = g.op('Add', g.op('Gather', wte, 'input_ids', axis=0),
             g.op('Gather', g.const('wpe', p['wpe']), pos, axis=0))
    causal = g.const('causal', np.tril(np.ones((maxT, maxT), dtype=bool)))
    TT = g.op('Concat', T1, T1, axis=0)
    mask = g.op('Slice', causal, i64('zeros2', [0, 0]), TT, i64('axes01', [0, 1]))
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
        # (B,T,C) -> (B,NH,T,HS); k as (B,NH,HS,T)
        qh = g.op('Transpose', g.op('Reshape', q, heads), perm=[0, 2, 1, 3])
        kh = g.op('Transpose', g.op('Reshape', k, heads), perm=[0, 2, 3, 1])
        vh = g.op('Transpose', g.op('Reshape', v, heads), perm=[0, 2, 1, 3])
        att = g.op('Mul', g.op('MatMul', qh, kh), scale)
        att = g.op('Softmax', g.op('Where', mask, att, neg_inf), axis=-1)
        y = g.op('Reshape', g.op('Transpose', g.op('MatMul', att, vh), perm=[0, 2, 1, 3]), merged)
        x = g.op('Add', x, g.linear(y, p['attprojw'][l], p['attprojb'][l], n + '.attproj'))
        h = g.linear(g.layernorm(x, p['ln2w'][l], p['ln2b'][l], n + '.ln2'),
                     p['fcw'][l], p['fcb'][l], n + '.fc')
        x = g.op('Add', x, g.linear(g.gelu(h), p['fcprojw'][l], p['fcprojb'][l], n + '.fcproj'))
    x = g.layernorm(x, p['lnfw'], p['lnfb'], 'lnf')
    g.nodes.append(g.h.make_node('MatMul', [x, g.op('Transpose', wte, perm=[1, 0])], ['logits']))
    T_ = onnx.TensorProto
    graph = g.h.make_graph(
        g.nodes, 'gpt2',
        [g.h.make_tensor_value_info('input_ids', T_.INT64, ['B', 'T'])],
        [g.h.make_tensor_value_info('logits', T_.FLOAT, ['B', 'T', V])], g.inits)
    model = g.h.make_model(graph, producer_name='mlcomm gpt2_export_onnx',
                           opset_imports=[g.h.make_opsetid('', 17)])
    model.ir_version = 8  # what opset 17 needs; runtimes from 2022 on read it
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv):
    if len(argv) != 3 or argv[1] in ('-h', '--help'):
        print(__doc__.strip())
        return 0 if len(argv) == 2 and argv[1] in ('-h', '--help') else 2
    try:
        import onnx
    except ImportError:
        fail('the onnx module is missing (Debian: apt-get install python3-onnx)')
    cfg, params = read_checkpoint(argv[1])
    model = build(cfg, params)
    try:
        onnx.save(model, argv[2])
    except (OSError, ValueError) as e:
        fail(f'cannot write {argv[2]}: {e}')
    print(f'gpt2_export_onnx: {argv[2]}: L={cfg["L"]} NH={cfg["NH"]} C={cfg["C"]} '
          f'maxT={cfg["maxT"]} V={cfg["V"]}, {len(model.graph.node)} nodes')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
