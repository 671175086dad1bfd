#!/usr/bin/env node
'use strict';
// Entry point of the `exitgate` command (package.json "bin"); the code is the compiled TypeScript.
const fs = require('node:fs');
const path = require('node:path');

const main = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
if (!fs.existsSync(main)) {
  process.stderr.write(`exitgate: not built yet; run \`npm ci && npm run build\` in ${path.resolve(__dirname, '..')}\n`);
  process.exit(2);
}
require(main).main(process.argv.slice(2));
