#!/usr/bin/env node
// component.mjs - runs the mlcomm:llm component (wit/world.wit) transpiled by jco
// (guest/component_build.mjs): the host gives it wasi:nn (host/wasi_nn_wit.mjs) over the
// Node-API bridge and the backend library, calls generate once and prints the text.
//
// usage: node component.mjs [--backend LIB] [--bridge ADDON] [--models N=PATH,..]
//            [--model-dir DIR] [--max-tokens N] [--seed S] [--settings JSON] LLM.js MODEL PROMPT
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

import { wasiNn } from './wasi_nn_wit.mjs';

const HELP = `usage: node component.mjs [OPTIONS] LLM.js MODEL PROMPT
  LLM.js             the transpiled component (llm.js from guest/component_build.mjs)
  MODEL              a model name the host offers (--models, --model-dir)
  --backend LIB      the WASI-NN backend (default: $WASI_NN_BACKEND, else
                     libwasi_nn_llamacpp.so through LD_LIBRARY_PATH)
  --bridge ADDON     wasi_nn_bridge.node (default: $WASI_NN_BRIDGE)
  --models N=PATH,.. model names mapped to host files (WASI_NN_GPT2_MODELS)
  --model-dir DIR    models by relative name inside DIR (WASI_NN_GPT2_MODEL_DIR)
  --max-tokens N     tokens to generate (default 64)
  --seed S           sampling seed (default: from the clock)
  --settings JSON    more backend settings, e.g. '{"temp": 0}'
Prints the generated text; an error prints its wasi:nn code and message, exit 1.
`;
const usage = (msg) => {
  process.stderr.write(`component.mjs: ${msg}\n${HELP}`);
  process.exit(2);
};
const argv = process.argv.slice(2);
let backend = process.env.WASI_NN_BACKEND || 'libwasi_nn_llamacpp.so';
let addon = process.env.WASI_NN_BRIDGE;
const options = { model: '', maxTokens: 64, seed: undefined, settings: '' };
while (argv.length && argv[0].startsWith('--')) {
  const opt = argv.shift();
  if (opt === '--help') {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const val = argv.shift();
  if (val === undefined) usage(`${opt} needs a value`);
  const int = () => {
    if (!/^\d+$/.test(val) || Number(val) > 0xffffffff) usage(`${opt} ${val}: an integer 0..4294967295`);
    return Number(val);
  };
  if (opt === '--backend') backend = val;
  else if (opt === '--bridge') addon = val;
  else if (opt === '--models') process.env.WASI_NN_GPT2_MODELS = val; // read at init_backend
  else if (opt === '--model-dir') process.env.WASI_NN_GPT2_MODEL_DIR = val;
  else if (opt === '--max-tokens') options.maxTokens = int();
  else if (opt === '--seed') options.seed = int();
  else if (opt === '--settings') options.settings = val;
  else usage(`unknown option ${opt}`);
}
if (argv.length !== 3) usage('give LLM.js, MODEL and PROMPT');
if (!addon) usage('give the bridge addon with --bridge or WASI_NN_BRIDGE');
const [llm, model, prompt] = argv;
options.model = model;

const nn = createRequire(import.meta.url)(addon);
try {
  nn.open(backend);
} catch (e) {
  process.stderr.write(`component.mjs: cannot open the backend ${backend}: ${e.message}\n`);
  process.exit(1);
}
const { instantiate } = await import(pathToFileURL(path.resolve(llm)).href);
const dir = path.dirname(path.resolve(llm));
const root = await instantiate(async (name) => WebAssembly.compile(await readFile(path.join(dir, name))),
                               wasiNn(nn));
try {
  process.stdout.write(root.generate.generate(prompt, options) + '\n');
} catch (e) {
  const err = e.payload ?? e; // jco wraps an err result in a ComponentError
  if (!err || err.code === undefined) throw e;
  process.stderr.write(`component.mjs: error ${err.code}: ${err.message}\n`);
  process.exitCode = 1;
}
nn.close();
