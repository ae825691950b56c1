#!/usr/bin/env python3
"""End to end: the generate and chat guests (.wasm) under the Node.js host runner, with
the backend, on a small model trained by the GPT-2 example's trainer. Greedy text must
equal native_generate's (the model library called directly), on one process and under
mpirun -np 2 (tensor parallel). Exits 77 naming what is missing."""
import argparse, os, shutil, subprocess, sys, tempfile

p = argparse.ArgumentParser()
for a in ['trainer', 'native', 'node', 'runner', 'bridge', 'backend', 'generate', 'chat',
          'bounds', 'mpirun', 'data']:
    p.add_argument('--' + a, required=True)
o = p.parse_args()
for a in ['trainer', 'native', 'runner', 'bridge', 'backend', 'generate', 'chat', 'bounds']:
    if getattr(o, a) != 'none':  # the commands run in a temporary directory
        setattr(o, a, os.path.abspath(getattr(o, a)))

def skip(why):
    print('SKIP: ' + why)
    sys.exit(77)

for a in ['bridge', 'generate', 'chat', 'bounds']:
    if getattr(o, a) == 'none':
        skip(f'the {a} was not built (see docs/wasi_nn.md, set-up)')
tok = os.path.join(o.data, 'tokenizer.bin')
if not os.path.exists(os.path.join(o.data, 'train_000000.bin')) or not os.path.exists(tok):
    skip(f'no Jargon File shards in {o.data} (run examples/gpt2/prepare_data.sh)')

tmp = tempfile.mkdtemp(prefix='wasi-nn-e2e-')
fails = 0
def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print('FAILED: ' + what, file=sys.stderr)

env = dict(os.environ, OMP_NUM_THREADS='1')
# Two small models from the trainer: trained 20 steps (it has learnt the Jargon File's
# whitespace, so its greedy text is mostly spaces), and a fresh initialisation saved
# untrained (-l 0), whose greedy text is words.
def train(name, steps, lr):
    subprocess.run([o.trainer, '-i', os.path.join(o.data, 'train_*.bin'), '-j', 'none',
                    '--depth', '2', '--channels', '64', '--heads', '4', '--seq-len', '128',
                    '-T', '64', '-b', '4', '-n', str(steps), '-l', lr, '--sample-every', '0',
                    '--plot', 'none', '-o', os.path.join(tmp, 'out'), '--save',
                    os.path.join(tmp, name)],
                   check=True, env=env, stdout=subprocess.DEVNULL, cwd=tmp)
train('model.bin', 20, '1e-3')
train('fresh.bin', 1, '0')
shutil.copy(tok, os.path.join(tmp, 'tokenizer.bin'))

prompt = 'A real programmer'
cfg = '{"n-predict": 40, "temp": 0, "repeat-penalty": 1.0}'
host = [o.node, o.runner, '--backend', o.backend, '--bridge', o.bridge, '--model-dir', tmp]
for name in ['model.bin', 'fresh.bin']:
    want = subprocess.run([o.native, os.path.join(tmp, name), tok, prompt, '40'], check=True,
                          env=env, capture_output=True, text=True).stdout
    r = subprocess.run(host + [o.generate, name, prompt, cfg], env=env, cwd=tmp,
                       capture_output=True, text=True)
    check(r.returncode == 0, f'generate {name} exited {r.returncode}: {r.stderr}')
    text, _, counts = r.stdout.rstrip('\n').rpartition('\n')
    check(text + '\n' == want, f'{name}: guest text {text!r} != native {want!r}')
    if name == 'model.bin':
        first_text = text
    check(counts.startswith('{"input_tokens":') and '"output_tokens":' in counts,
          'counts: ' + counts)

    # tensor parallel: 2 ranks, each running the same guest, each printing into its own file
    sh = 'exec "$@" > out.$OMPI_COMM_WORLD_RANK'
    r = subprocess.run([o.mpirun, '-np', '2', '--oversubscribe', '--allow-run-as-root', '--mca',
                        'btl', '^openib', 'sh', '-c', sh, 'sh'] + host +
                       ['--every-rank', o.generate, name, prompt, cfg], env=env, cwd=tmp,
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, f'mpirun -np 2 exited {r.returncode}: {r.stderr[-2000:]}')
    for rank in range(2):
        try:
            out = open(os.path.join(tmp, f'out.{rank}')).read()
        except OSError:
            out = ''
        text = out.rstrip('\n').rpartition('\n')[0]
        check(text + '\n' == want, f'{name}, rank {rank} of 2: {text!r} != native {want!r}')

# errors reach the guest as codes: a missing model, a bad config
r = subprocess.run(host + [o.generate, 'nothere.bin', prompt], env=env, cwd=tmp,
                   capture_output=True, text=True)
check(r.returncode == 1 and 'error 103' in r.stderr, 'missing model: ' + r.stderr)
r = subprocess.run(host + [o.generate, 'model.bin', prompt, '{"temp": "x"}'], env=env,
                   cwd=tmp, capture_output=True, text=True)
check(r.returncode == 1 and '"temp"' in r.stderr and 'error 1)' in r.stderr, 'bad config: ' + r.stderr)

# the guest reaches only what the host offers: no host path, no escape from --model-dir
os.symlink(tok, os.path.join(tmp, 'escape.bin'))
for name, code in [('../model.bin', 1), ('/etc/passwd', 1), ('escape.bin', 1)]:
    r = subprocess.run(host + [o.generate, name, prompt], env=env, cwd=tmp, capture_output=True,
                       text=True)
    check(r.returncode == 1 and f'error {code})' in r.stderr and 'wasi-nn gpt2:' in r.stderr,
          f'name {name}: ' + r.stderr)
r = subprocess.run([o.node, o.runner, '--backend', o.backend, '--bridge', o.bridge,
                    '--models', 'gpt=' + os.path.join(tmp, 'model.bin'), o.generate, 'gpt',
                    prompt, cfg], env=env, cwd='/', capture_output=True, text=True)
check(r.returncode == 0 and r.stdout.startswith(first_text), '--models gpt=...: ' + r.stderr)
r = subprocess.run([o.node, o.runner, '--backend', o.backend, '--bridge', o.bridge, o.generate,
                    os.path.join(tmp, 'model.bin'), prompt], env=env, cwd=tmp,
                   capture_output=True, text=True)
check(r.returncode == 1 and 'error 103' in r.stderr, 'no models offered: ' + r.stderr)

# under mpirun only rank 0 prints unless --every-rank
r = subprocess.run([o.mpirun, '-np', '2', '--oversubscribe', '--allow-run-as-root', '--mca',
                    'btl', '^openib', 'sh', '-c', 'exec "$@" > only.$OMPI_COMM_WORLD_RANK', 'sh']
                   + host + [o.generate, 'model.bin', prompt, cfg], env=env, cwd=tmp,
                   capture_output=True, text=True, timeout=120)
outs = [open(os.path.join(tmp, f'only.{k}')).read() if os.path.exists(os.path.join(tmp, f'only.{k}'))
        else None for k in range(2)]
check(r.returncode == 0 and outs[0] and outs[0].startswith(first_text) and outs[1] == '',
      f'rank 0 only: {outs!r} {r.stderr[-1000:]}')

# chat: one session across turns; the second turn reuses the first's cache
r = subprocess.run(host + [o.chat, 'model.bin', '{"n-predict": 12, "temp": 0, "enable-log": true}'],
                   env=env, cwd=tmp, input='Hello\nWhat is a hacker?\n', capture_output=True,
                   text=True)
check(r.returncode == 0 and r.stdout.count('Assistant:') == 2, 'chat: ' + r.stdout + r.stderr)
check('reused from the cache' in r.stderr and '(0 reused' in r.stderr, 'chat log: ' + r.stderr)
reuse = [l for l in r.stderr.splitlines() if 'reused from the cache' in l]
check(len(reuse) == 2 and '(0 reused' not in reuse[1], 'second turn reused nothing: ' + r.stderr)

# chat under mpirun -np 2: the reused cache prefix is sharded too (gpt2_kv_truncate on a shard)
# (mpirun gives its stdin to rank 0 only: every rank reads the turns from a file)
one_rank_chat = r.stdout
with open(os.path.join(tmp, 'turns.txt'), 'w') as f:
    f.write('Hello\nWhat is a hacker?\n')
r = subprocess.run([o.mpirun, '-np', '2', '--oversubscribe', '--allow-run-as-root', '--mca',
                    'btl', '^openib', 'sh', '-c',
                    'exec "$@" < turns.txt > chat.$OMPI_COMM_WORLD_RANK', 'sh']
                   + host + ['--every-rank', o.chat, 'model.bin', '{"n-predict": 12, "temp": 0}'],
                   env=env, cwd=tmp, capture_output=True, text=True, timeout=120)
check(r.returncode == 0, f'chat under mpirun -np 2 exited {r.returncode}: {r.stderr[-2000:]}')
for rank in range(2):
    try:
        out = open(os.path.join(tmp, f'chat.{rank}')).read()
    except OSError:
        out = ''
    check(out == one_rank_chat, f'chat rank {rank} of 2: {out!r} != {one_rank_chat!r}')

# a hostile guest: offsets and lengths outside its memory are refused by the bridge
r = subprocess.run(host + [o.bounds, 'model.bin'], env=env, cwd=tmp, capture_output=True,
                   text=True)
check(r.returncode == 0 and 'bounds: ok' in r.stdout, 'bounds: ' + r.stdout + r.stderr)

shutil.rmtree(tmp)
print('end to end: ' + ('FAILED' if fails else 'ok'))
sys.exit(1 if fails else 0)
