#!/usr/bin/python3
"""The mlcomm:llm WIT component: component.c's core module made a component and
transpiled by npm's jco (guest/component_build.mjs), run in Node with wasi:nn from the
host (host/component.mjs, host/wasi_nn_wit.mjs, the bridge, the backend). Its text must
equal the core-module guest's (generate.wasm under run.mjs) for the same seed and
settings; errors come back as wasi:nn codes; twenty calls in one instance (more than
the backend's 16 contexts) reuse one session and give the same text. Exits 77 naming
what is missing."""
import argparse, os, shutil, subprocess, sys, tempfile

p = argparse.ArgumentParser()
for a in ['node', 'component', 'build', 'core', 'wit', 'modules', 'runner', 'bridge',
          'backend', 'generate', 'trainer', 'data']:
    p.add_argument('--' + a, required=True)
o = p.parse_args()
for a in ['component', 'build', 'core', 'wit', 'modules', 'runner', 'bridge', 'backend',
          'generate', 'trainer']:
    if getattr(o, a) != 'none':
        setattr(o, a, os.path.abspath(getattr(o, a)))


def skip(why):
    print('SKIP: ' + why)
    sys.exit(77)


for a in ['core', 'bridge', 'generate']:
    if getattr(o, a) == 'none':
        skip(f'the {a} was not built (see docs/wasi_nn.md, set-up)')
for pkg in ['@bytecodealliance/jco', '@bytecodealliance/preview2-shim']:
    if not os.path.isdir(os.path.join(o.modules, pkg)):
        skip(f'no {pkg} in {o.modules} (.ci/setup installs it with npm)')
tok = os.path.join(o.data, 'tokenizer.bin')
if not os.path.exists(os.path.join(o.data, 'train_000000.bin')) or not os.path.exists(tok):
    skip(f'no Jargon File shards in {o.data} (run examples/gpt2/prepare_data.sh)')

tmp = tempfile.mkdtemp(prefix='wasi-nn-component-')
env = dict(os.environ, OMP_NUM_THREADS='1')
fails = 0


def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print('FAILED: ' + what, file=sys.stderr)


# a fresh initialisation saved untrained: its text is words, so sampling shows
subprocess.run([o.trainer, '-i', os.path.join(o.data, 'train_*.bin'), '-j', 'none',
                '--depth', '2', '--channels', '64', '--heads', '4', '--seq-len', '128', '-T', '64',
                '-b', '4', '-n', '1', '-l', '0', '--sample-every', '0', '--plot', 'none', '-o',
                os.path.join(tmp, 'out'), '--save', os.path.join(tmp, 'model.bin')],
               check=True, env=env, stdout=subprocess.DEVNULL, cwd=tmp)
shutil.copy(tok, os.path.join(tmp, 'tokenizer.bin'))

js = os.path.join(tmp, 'js')
r = subprocess.run([o.node, o.build, o.modules, o.core, o.wit, js], capture_output=True, text=True)
check(r.returncode == 0 and os.path.exists(os.path.join(js, 'llm.js')),
      'component_build: ' + r.stdout + r.stderr)
if fails:
    sys.exit(1)
wit = subprocess.run([o.node, os.path.join(o.modules, '@bytecodealliance/jco/dist/jco.js'), 'wit',
                      os.path.join(js, 'llm.wasm')], capture_output=True, text=True, cwd=js)
if wit.returncode == 0:  # the component's own view of its world
    check('import wasi:nn/inference@0.2.0-rc-2024-10-28;' in wit.stdout and
          'export mlcomm:llm/generate@0.1.0;' in wit.stdout, 'component wit: ' + wit.stdout)

host = ['--backend', o.backend, '--bridge', o.bridge, '--model-dir', tmp]
prompt = 'The hacker'
cases = [(7, ''), (1234, '{"top-k": 5, "temp": 1.2}'), (0, '{"temp": 0}')]
for seed, settings in cases:
    cfg = '{"n-predict": 30, "seed": %d%s' % (seed, ', ' + settings[1:] if settings else '}')
    core = subprocess.run([o.node, o.runner] + host + [o.generate, 'model.bin', prompt, cfg],
                          env=env, capture_output=True, cwd=tmp)
    # the core guest prints the backend's bytes; a component string is UTF-8, with
    # U+FFFD for bytes that are not (a token can end inside a character)
    want = core.stdout.rstrip(b'\n').rpartition(b'\n')[0].decode('utf-8', 'replace')
    check(core.returncode == 0 and want.strip(), f'generate.wasm seed {seed}: {core.stderr!r}')
    comp = subprocess.run([o.node, o.component] + host +
                          ['--max-tokens', '30', '--seed', str(seed), '--settings', settings,
                           os.path.join(js, 'llm.js'), 'model.bin', prompt],
                          env=env, capture_output=True, text=True, cwd=tmp)
    got = comp.stdout[:-1] if comp.stdout.endswith('\n') else comp.stdout
    check(comp.returncode == 0, f'component seed {seed} exited {comp.returncode}: {comp.stderr}')
    check(got == want, f'seed {seed} {settings}: component {got!r} != core guest {want!r}')
    print(f'seed {seed} {settings or "(defaults)"}: {len(got)} bytes, same text as generate.wasm'
          if got == want else f'seed {seed}: differs')

# errors arrive as wasi:nn error codes with the host's message
for args, code in [(['nothere.bin'], 'not-found'), (['../model.bin'], 'invalid-argument'),
                   (['--settings', '{"temp": "x"}', 'model.bin'], 'invalid-argument'),
                   (['--max-tokens', '0', 'model.bin'], 'invalid-argument')]:
    name = args[-1]
    r = subprocess.run([o.node, o.component] + host + args[:-1] +
                       [os.path.join(js, 'llm.js'), name, prompt], env=env, capture_output=True,
                       text=True, cwd=tmp)
    check(r.returncode == 1 and f'error {code}:' in r.stderr, f'{args}: {r.stderr}')

# one instance, twenty calls: the session (one graph, one context) is reused
script = os.path.join(tmp, 'session.mjs')
with open(script, 'w') as f:
    f.write(f'''
import {{ readFile }} from 'node:fs/promises';
import {{ createRequire }} from 'node:module';
import {{ wasiNn }} from {os.path.join(os.path.dirname(o.component), 'wasi_nn_wit.mjs')!r};
import {{ instantiate }} from {os.path.join(js, 'llm.js')!r};
const nn = createRequire(import.meta.url)({o.bridge!r});
process.env.WASI_NN_GPT2_MODEL_DIR = {tmp!r};
nn.open({o.backend!r});
const root = await instantiate(async (n) => WebAssembly.compile(await readFile({js!r} + '/' + n)), wasiNn(nn));
const texts = [];
for (let i = 0; i < 20; i++)
  texts.push(root.generate.generate({prompt!r}, {{ model: 'model.bin', maxTokens: 12, seed: 7, settings: '' }}));
console.log(JSON.stringify(texts));
nn.close();
''')
r = subprocess.run([o.node, script], env=env, capture_output=True, text=True, cwd=tmp)
try:
    import json
    texts = json.loads(r.stdout)
except ValueError:
    texts = []
check(r.returncode == 0 and len(texts) == 20 and len(set(texts)) == 1 and texts[0],
      f'twenty calls: {r.stdout[-500:]} {r.stderr[-1000:]}')

shutil.rmtree(tmp)
print('component: ' + ('FAILED' if fails else 'ok'))
sys.exit(1 if fails else 0)
