// Hardhat is used here only as a local JSON-RPC chain for tests:
//
//   HARDHAT_DISABLE_TELEMETRY_PROMPT=true npx hardhat node --hostname 127.0.0.1 --port 8599
//
// Contracts are compiled by `node build.js` (solc-js from package-lock.json),
// never by Hardhat, so Hardhat must never look for or download a compiler.
"use strict";

const { task } = require("hardhat/config");
const { TASK_COMPILE } = require("hardhat/builtin-tasks/task-names");

// Any Hardhat task that would compile (compile, test, run, ...) goes through
// TASK_COMPILE; replace it so that nothing ever tries to fetch a solc build.
task(TASK_COMPILE, "Disabled: compile with `node build.js`").setAction(async () => {
  throw new Error("Hardhat does not compile in this project: run `node build.js` in chains/evm");
});

module.exports = {
  // Only to keep Hardhat from warning about a missing entry: compilation is
  // disabled above, and build.js uses its own pinned solc-js with its own settings.
  solidity: "0.8.28",
  defaultNetwork: "hardhat",
  networks: {
    hardhat: {
      chainId: 31337,
      mining: { auto: true, interval: 0 },
    },
  },
  // Keep Hardhat's own paths away from build.js's `artifacts/` and from the
  // Solidity sources, which Hardhat has no business reading.
  paths: {
    sources: "./cache/hardhat-no-sources",
    artifacts: "./cache/hardhat-artifacts",
    cache: "./cache/hardhat",
    tests: "./cache/hardhat-no-tests",
  },
};
