// Command line: `vectors` (self-check) and `submit` (sign, submit, follow). Prints one JSON
// object; exit 0 = signed / all vectors pass, 2 = refused, 3 = not final yet, 1 = error.

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import * as grpc from "@grpc/grpc-js";

import { classify, Client, loadConfig, refusalOf } from "./client.js";
import { Intent, IntentError, normalized } from "./intent.js";
import { checkVectors } from "./vectors.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../../..");

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === "vectors") {
    const { values } = parseArgs({ args: rest, options: { dir: { type: "string" } } });
    const report = checkVectors(values.dir ?? join(REPO, "core/tests/vectors"));
    console.log(JSON.stringify(report));
    return report.failures.length === 0 && report.checked > 0 ? 0 : 1;
  }
  if (cmd === "decode-status") {
    // The refusal a call ending with these trailers reports (the same decoder as `submit`).
    const { values } = parseArgs({
      args: rest,
      options: { code: { type: "string" }, message: { type: "string" }, "details-hex": { type: "string", default: "" } },
    });
    const code = grpc.status[values.code as keyof typeof grpc.status];
    const metadata = new grpc.Metadata();
    if (values["details-hex"]) metadata.add("grpc-status-details-bin", Buffer.from(values["details-hex"], "hex"));
    const e = Object.assign(new Error(values.message), { code, details: values.message ?? "", metadata });
    const vendor = join(REPO, "clients/proto-vendor");
    console.log(JSON.stringify({ ...refusalOf(e, vendor), class: classify(code) }));
    return 0;
  }
  if (cmd !== "submit") {
    console.error("usage: node dist/cli.js vectors [--dir DIR] | submit --dir DIR --id ID --chain C --asset A --to ADDR --amount N [...]");
    return 1;
  }
  const { values: a } = parseArgs({
    args: rest,
    options: {
      dir: { type: "string" },
      coordinator: { type: "string" },
      proto: { type: "string", default: join(REPO, "proto") },
      "proto-vendor": { type: "string", default: join(REPO, "clients/proto-vendor") },
      id: { type: "string" },
      chain: { type: "string" },
      asset: { type: "string" },
      to: { type: "string" },
      amount: { type: "string" },
      "customer-ref": { type: "string" },
      "created-at-ms": { type: "string" },
      "ttl-ms": { type: "string", default: "600000" },
      "give-up-after-s": { type: "string", default: "60" },
      "submit-timeout-s": { type: "string", default: "30" },
      "watch-stream-s": { type: "string", default: "30" },
    },
  });
  for (const k of ["dir", "id", "chain", "asset", "to", "amount"] as const) {
    if (!a[k]) throw new Error(`--${k} is required`);
  }
  const created = BigInt(a["created-at-ms"] ?? Date.now());
  let intent: Intent = {
    id: a.id!,
    chain: a.chain!,
    asset: a.asset!,
    destination: a.to!,
    amount: a.amount!,
    created_at_ms: created,
    expires_at_ms: created + BigInt(a["ttl-ms"]!),
    customer_ref: a["customer-ref"],
  };
  try {
    intent = normalized(intent);
  } catch (e) {
    if (!(e instanceof IntentError)) throw e;
    console.log(JSON.stringify({ client: "typescript", outcome: "invalid", reason: e.message }));
    return 2;
  }
  const client = new Client(loadConfig(a.dir!, a.coordinator), a.proto!, a["proto-vendor"]!, Number(a["watch-stream-s"]) * 1000);
  try {
    const report = await client.submit(intent, Number(a["give-up-after-s"]) * 1000, Number(a["submit-timeout-s"]) * 1000);
    console.log(JSON.stringify(report));
    return ({ signed: 0, refused: 2, "needs-operator": 2, error: 1 } as Record<string, number>)[report.outcome] ?? 3;
  } finally {
    client.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exitCode = 1;
  },
);
