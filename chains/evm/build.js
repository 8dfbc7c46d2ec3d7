#!/usr/bin/env node
// Reproducible offline build of the Solidity contracts under contracts/.
//
//   node build.js           compile and write artifacts/<ContractName>.json
//   node build.js --check   compile in memory; exit 1 naming every artifact
//                           that differs from, is missing from or is extra in
//                           artifacts/, exit 0 when all are identical
//
// The compiler is the solc-js package pinned in package-lock.json (no
// download). The output is byte-identical from run to run: fixed settings,
// no metadata hash, sorted inputs and a fixed key order in every artifact.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = __dirname;
const SOURCES_DIR = path.join(ROOT, "contracts");
const ARTIFACTS_DIR = path.join(ROOT, "artifacts");
const EXPECTED_COMPILER = "0.8.28";

// Compiler settings, recorded verbatim in every artifact (key order matters).
const SETTINGS = {
  optimizer: { enabled: true, runs: 10000 },
  evmVersion: "paris",
  viaIR: false,
  metadata: { bytecodeHash: "none", appendCBOR: false },
};

function fail(message) {
  process.stderr.write(`build.js: ${message}\n`);
  process.exit(2);
}

// Every .sol file under dir, as repository-style relative paths with "/", sorted.
function listSources(dir) {
  const found = [];
  const walk = (d) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && entry.name.endsWith(".sol")) found.push(full);
    }
  };
  walk(dir);
  return found
    .map((f) => path.relative(ROOT, f).split(path.sep).join("/"))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

// Compiles all sources; returns a Map from artifact file name to its exact text.
function compile() {
  const version = solc.version();
  if (!version.startsWith(EXPECTED_COMPILER + "+")) {
    fail(`solc ${version} is installed, ${EXPECTED_COMPILER} is required (run npm ci)`);
  }
  const sourceNames = listSources(SOURCES_DIR);
  if (sourceNames.length === 0) fail("no .sol files under contracts/");
  const sources = {};
  for (const name of sourceNames) {
    sources[name] = { content: fs.readFileSync(path.join(ROOT, name), "utf8") };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      ...SETTINGS,
      outputSelection: {
        "*": { "*": ["abi", "evm.bytecode.object", "evm.bytecode.linkReferences", "evm.deployedBytecode.object"] },
      },
    },
  };
  // Every source is passed in; an import of anything else is an error.
  const findImports = (p) => ({ error: `import ${p} not found: only files under contracts/ are compiled` });
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));

  const problems = output.errors || [];
  const errors = problems.filter((e) => e.severity === "error");
  for (const e of problems) {
    process.stderr.write((e.formattedMessage || e.message) + "\n");
  }
  if (errors.length > 0) {
    process.stderr.write(`build.js: ${errors.length} compiler error(s)\n`);
    process.exit(1);
  }

  const artifacts = new Map();
  for (const sourceName of sourceNames) {
    const contracts = (output.contracts || {})[sourceName] || {};
    for (const contractName of Object.keys(contracts).sort()) {
      const c = contracts[contractName];
      const bytecode = c.evm.bytecode.object;
      // Abstract contracts and interfaces have no bytecode: nothing to deploy.
      if (!bytecode) continue;
      if (Object.keys(c.evm.bytecode.linkReferences || {}).length > 0) {
        fail(`${sourceName}:${contractName} needs library linking, which this build does not do`);
      }
      const file = `${contractName}.json`;
      if (artifacts.has(file)) fail(`two contracts named ${contractName}: artifact names must be unique`);
      const artifact = {
        contractName,
        sourceName,
        compiler: { version, settings: SETTINGS },
        abi: c.abi,
        bytecode: "0x" + bytecode,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      };
      artifacts.set(file, JSON.stringify(artifact, null, 2) + "\n");
    }
  }
  return artifacts;
}

function existingArtifacts() {
  if (!fs.existsSync(ARTIFACTS_DIR)) return [];
  return fs
    .readdirSync(ARTIFACTS_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort();
}

function check(artifacts) {
  const bad = [];
  for (const [file, text] of artifacts) {
    const full = path.join(ARTIFACTS_DIR, file);
    if (!fs.existsSync(full)) bad.push(`missing: artifacts/${file}`);
    else if (fs.readFileSync(full, "utf8") !== text) bad.push(`differs: artifacts/${file}`);
  }
  for (const file of existingArtifacts()) {
    if (!artifacts.has(file)) bad.push(`extra:   artifacts/${file}`);
  }
  if (bad.length > 0) {
    for (const line of bad) process.stderr.write(line + "\n");
    process.stderr.write("build.js --check: artifacts are stale; run `node build.js` in chains/evm\n");
    process.exit(1);
  }
  process.stdout.write(`build.js --check: ${artifacts.size} artifacts up to date (solc ${solc.version()})\n`);
}

function write(artifacts) {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  for (const file of existingArtifacts()) {
    if (!artifacts.has(file)) {
      fs.unlinkSync(path.join(ARTIFACTS_DIR, file));
      process.stdout.write(`removed artifacts/${file}\n`);
    }
  }
  for (const [file, text] of artifacts) {
    const full = path.join(ARTIFACTS_DIR, file);
    if (fs.existsSync(full) && fs.readFileSync(full, "utf8") === text) continue;
    fs.writeFileSync(full, text);
    process.stdout.write(`wrote artifacts/${file}\n`);
  }
  process.stdout.write(`build.js: ${artifacts.size} artifacts (solc ${solc.version()})\n`);
}

function main() {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== "--check");
  if (unknown.length > 0) fail(`unknown argument(s): ${unknown.join(" ")} (usage: node build.js [--check])`);
  const artifacts = compile();
  if (args.includes("--check")) check(artifacts);
  else write(artifacts);
}

main();
