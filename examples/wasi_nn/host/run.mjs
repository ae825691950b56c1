#!/usr/bin/env node
// run.mjs - runs a WASI-NN guest: WASI preview1 from node:wasi, and the
// wasi_ephemeral_nn imports through the Node-API bridge (bridge.c) to a backend library.
//
// usage: node run.mjs [OPTIONS] GUEST.wasm ARGS...   (--help lists the options)
// Model names the guest passes mean only what the host says: --models and --model-dir
// set the backend's WASI_NN_GPT2_MODELS and WASI_NN_GPT2_MODEL_DIR (docs/wasi_nn.md).
// Under mpirun every rank runs this same command (the backend then shards the model).
import { openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import process from 'node:process';

// node:wasi is marked experimental in Node 20; its one warning would mix with the guest's
// output, other warnings still show.
process.removeAllListeners('warning');
process.on('warning', (w) => { if (w.name !== 'ExperimentalWarning') console.warn(w); });
const { WASI } = await import('node:wasi');

const argv = process.argv.slice(2);
let backend = process.env.WASI_NN_BACKEND || 'libwasi_nn_llamacpp.so';
let addon = process.env.WASI_NN_BRIDGE;
const dirs = [];
const HELP = `usage: node run.mjs [OPTIONS] GUEST.wasm ARGS...
  --backend LIB      the WASI-NN backend (default: $WASI_NN_BACKEND, else
                     libwasi_nn_llamacpp.so through LD_LIBRARY_PATH, as WAMR finds it)
  --bridge ADDON     wasi_nn_bridge.node (default: $WASI_NN_BRIDGE)
  --models N=PATH,.. model names the guest may load, each mapped to a host file
                     (sets WASI_NN_GPT2_MODELS)
  --model-dir DIR    the guest may load models by relative name inside DIR, no "..",
                     symlinks checked (sets WASI_NN_GPT2_MODEL_DIR)
  --dir HOSTDIR      preopened for the guest's own file access (default: the working
                     directory); it does not decide which models the guest can load
  --every-rank       under mpirun, every rank's guest writes to its stdout (by default
                     only rank 0's does; the others' goes to /dev/null, stderr is kept)
  --help             this text
Under mpirun every rank runs the same command and makes the same text.
`;
let everyRank = false;
while (argv.length && argv[0].startsWith('--')) {
  const opt = argv.shift();
  if (opt === '--help') {
    process.stdout.write(HELP);
    process.exit(0);
  }
  if (opt === '--every-rank') {
    everyRank = true;
    continue;
  }
  const val = argv.shift();
  if (val === undefined) usage(`${opt} needs a value`);
  if (opt === '--backend') backend = val;
  else if (opt === '--bridge') addon = val;
  else if (opt === '--dir') dirs.push(val);
  else if (opt === '--models') process.env.WASI_NN_GPT2_MODELS = val; // read at init_backend
  else if (opt === '--model-dir') process.env.WASI_NN_GPT2_MODEL_DIR = val;
  else usage(`unknown option ${opt}`);
}
if (!argv.length) usage('no guest given');
if (!addon) usage('give the bridge addon with --bridge or WASI_NN_BRIDGE');

function usage(msg) {
  process.stderr.write(`run.mjs: ${msg}\n${HELP}`);
  process.exit(2);
}

const nn = createRequire(import.meta.url)(addon);
try {
  nn.open(backend);
} catch (e) {
  process.stderr.write(`run.mjs: cannot open the backend ${backend}: ${e.message}\n`);
  process.exit(1);
}

const preopens = {};
for (const d of dirs.length ? dirs : ['.']) preopens[d] = d;
const rank = Number(process.env.OMPI_COMM_WORLD_RANK ?? process.env.PMI_RANK ?? 0);
const stdout = rank > 0 && !everyRank ? openSync('/dev/null', 'w') : 1;
const wasi = new WASI({ version: 'preview1', args: argv, env: process.env, preopens, stdout });

let memory;
const mem = () => memory.buffer; // fetched per call: growing the memory replaces the buffer
const imports = {
  wasi_snapshot_preview1: wasi.wasiImport,
  wasi_ephemeral_nn: {
    load: (a, b, c, d, e) => nn.load(mem(), a, b, c, d, e),
    load_by_name: (a, b, c) => nn.load_by_name(mem(), a, b, c),
    load_by_name_with_config: (a, b, c, d, e) => nn.load_by_name_with_config(mem(), a, b, c, d, e),
    init_execution_context: (a, b) => nn.init_execution_context(mem(), a, b),
    set_input: (a, b, c) => nn.set_input(mem(), a, b, c),
    compute: (a) => nn.compute(mem(), a),
    get_output: (a, b, c, d, e) => nn.get_output(mem(), a, b, c, d, e),
  },
};

const module = await WebAssembly.compile(await readFile(argv[0]));
const instance = await WebAssembly.instantiate(module, imports);
memory = instance.exports.memory;
const code = wasi.start(instance);
nn.close();
process.exitCode = code;
