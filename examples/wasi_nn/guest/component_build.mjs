// component_build.mjs - makes the mlcomm:llm component from component.c's core module
// with npm's jco, then transpiles it to JavaScript for Node (host/component.mjs):
//   the core module + wit/ (world llm) --embed--> --new--> llm.wasm --transpile--> llm.js
// jco's command line is not used for the embedding: jco 1.35 reads the WIT directory
// through preview2-shim 0.26, which preopens nothing unless told, so the WIT is not
// found; here the shim is given the WIT directory before jco's tools load.
//
// usage: node component_build.mjs NODE_MODULES CORE.wasm WIT_DIR OUT_DIR
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, core, wit, out] = process.argv.slice(2);
if (!out) {
  process.stderr.write('usage: node component_build.mjs NODE_MODULES CORE.wasm WIT_DIR OUT_DIR\n');
  process.exit(2);
}
const req = createRequire(path.join(path.resolve(modules), 'index.js'));
const load = (name) => import(pathToFileURL(req.resolve(name)).href);

const witDir = path.resolve(wit);
const fs = await load('@bytecodealliance/preview2-shim/filesystem');
fs._setPreopens({ [witDir]: witDir });
const tools = await load('@bytecodealliance/jco-transpile/wasm-tools');
const { transpile } = await load('@bytecodealliance/jco');

const embedded = await tools.componentEmbed({
  binary: readFileSync(core), witPath: witDir, world: 'llm',
});
const component = await tools.componentNew(embedded, []);
mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, 'llm.wasm'), component);
// async instantiation: the host passes the wasi:nn imports itself (host/wasi_nn_wit.mjs)
const { files } = await transpile(component, { name: 'llm', instantiation: 'async', quiet: true });
for (const [name, bytes] of Object.entries(files)) {
  mkdirSync(path.dirname(path.join(out, name)), { recursive: true });
  writeFileSync(path.join(out, name), bytes);
}
process.stdout.write(`component_build: ${path.join(out, 'llm.wasm')} and ${Object.keys(files).join(', ')}\n`);
