// Submitting and following withdrawals: mutual TLS, failover, and every refusal class.
//
// The service definition is loaded from the project's own .proto files at run time
// (@grpc/proto-loader: no protoc, nothing generated is committed).

import { readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";
import { parse as parseToml } from "smol-toml";

import { digest, encode, Intent, normalized, signDigest } from "./intent.js";

export const RULE_TRAILER = "quorate-rule";
const S = grpc.status;

/** What to do after each status code (docs/intent.md, "Retries and idempotency"). */
export type Class = "permanent" | "operator" | "wait" | "resend";

export function classify(code: grpc.status): Class {
  switch (code) {
    case S.PERMISSION_DENIED: // policy or signature: the same request is refused again
    case S.ALREADY_EXISTS: // withdrawal-id-conflict: the id is bound to another intent
    case S.INVALID_ARGUMENT: // a field is malformed (intent-invalid)
    case S.NOT_FOUND:
    case S.UNAUTHENTICATED:
    case S.UNIMPLEMENTED:
    case S.OUT_OF_RANGE:
      return "permanent";
    case S.FAILED_PRECONDITION: // e.g. no-group-key: the cluster is not ready
      return "operator";
    case S.RESOURCE_EXHAUSTED: // a velocity window: retry when it frees up
      return "wait";
    default: // UNAVAILABLE, DEADLINE_EXCEEDED, UNKNOWN, CANCELLED, ABORTED, INTERNAL, DATA_LOSS
      return "resend";
  }
}

/** Codes after which the same request goes to the next coordinator. */
const FAILOVER = new Set([S.UNAVAILABLE, S.UNKNOWN, S.CANCELLED]);

/** `client.toml` of a cluster directory (paths relative to it). */
export interface Config {
  endpoints: [string, string][];
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  signingKeyHex: string;
}

export function loadConfig(dir: string, coordinator?: string): Config {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const doc = parseToml(readFileSync(join(dir, "client.toml"), "utf8")) as any;
  if (!doc.backend) throw new Error("client.toml has no [backend] section: not a backend host");
  const read = (p: string) => readFileSync(isAbsolute(p) ? p : join(dir, p));
  let endpoints: [string, string][] = [[doc.coordinator, doc.server_name]];
  for (const o of doc.other_coordinators ?? []) endpoints.push([o.address, o.server_name]);
  if (coordinator) endpoints = [[coordinator, doc.server_name]];
  return {
    endpoints,
    ca: read(doc.ca),
    cert: read(doc.backend.cert),
    key: read(doc.backend.key),
    signingKeyHex: read(doc.backend.signing_key).toString("utf8").trim(),
  };
}

/** What a failed call says: code, rule, and the standard google.rpc details when present. */
export interface Refusal {
  code: string;
  rule: string;
  message: string;
  error_info: { reason: string; domain: string; metadata: Record<string, string> } | null;
  retry_delay_ms: number | null;
}

let rpcRoot: protobuf.Root | undefined;

/** google.rpc.Status and its details, from the vendored protos (any.proto and duration.proto
 * are built into protobufjs). */
function googleRpc(vendorDir: string): protobuf.Root {
  if (!rpcRoot) {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (target.startsWith("google/protobuf/") ? target : join(vendorDir, target));
    root.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"]);
    rpcRoot = root;
  }
  return rpcRoot;
}

export function refusalOf(e: grpc.ServiceError, vendorDir: string): Refusal {
  const rule = e.metadata?.get(RULE_TRAILER)[0];
  const r: Refusal = {
    code: S[e.code],
    rule: rule === undefined ? "" : rule.toString(),
    message: e.details ?? "",
    error_info: null,
    retry_delay_ms: null,
  };
  const bin = e.metadata?.get("grpc-status-details-bin")[0];
  if (bin instanceof Buffer) {
    const root = googleRpc(vendorDir);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const status = root.lookupType("google.rpc.Status").decode(bin) as any;
    // The details belong to this call only if they agree with its code.
    if (status.code === e.code) {
      for (const any of status.details ?? []) {
        const name = String(any.type_url ?? any.typeUrl).split("/").pop();
        if (name === "google.rpc.ErrorInfo") {
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          const info = root.lookupType(name).decode(any.value) as any;
          r.error_info = { reason: info.reason, domain: info.domain, metadata: { ...(info.metadata ?? {}) } };
          r.rule ||= info.reason;
        } else if (name === "google.rpc.RetryInfo") {
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          const ri = root.lookupType(name).decode(any.value) as any;
          const d = ri.retry_delay ?? ri.retryDelay ?? {};
          r.retry_delay_ms = Number(d.seconds ?? 0) * 1000 + Math.floor(Number(d.nanos ?? 0) / 1e6);
        }
      }
    }
  }
  if (!r.rule && r.message.includes(":")) r.rule = r.message.split(":", 1)[0]; // the message leads with the tag
  return r;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Withdrawal = any;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Report = Record<string, any>;

const FINAL = new Set(["STATUS_SIGNED", "STATUS_REFUSED", "STATUS_FAILED", "STATUS_EXPIRED"]);

/** A backend's connection to a cluster: one client per coordinator, opened on demand. */
export class Client {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly Service: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly stubs = new Map<number, any>();

  constructor(
    readonly config: Config,
    protoDir: string,
    private readonly vendorDir: string,
    private readonly watchStreamMs = 30_000,
  ) {
    const def = protoLoader.loadSync(join(protoDir, "quorate/withdrawal/v1/withdrawal.proto"), {
      includeDirs: [protoDir],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    this.Service = (grpc.loadPackageDefinition(def) as any).quorate.withdrawal.v1.WithdrawalService;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private stub(i: number): any {
    let s = this.stubs.get(i);
    if (!s) {
      const [address, serverName] = this.config.endpoints[i];
      const creds = grpc.credentials.createSsl(this.config.ca, this.config.key, this.config.cert);
      s = new this.Service(address, creds, { "grpc.ssl_target_name_override": serverName, "grpc.default_authority": serverName });
      this.stubs.set(i, s);
    }
    return s;
  }

  private unary(i: number, method: string, req: object, timeoutMs: number): Promise<Withdrawal> {
    return new Promise((resolve, reject) => {
      this.stub(i)[method](req, { deadline: Date.now() + Math.max(50, timeoutMs) }, (e: grpc.ServiceError | null, w: Withdrawal) =>
        e ? reject(e) : resolve(w),
      );
    });
  }

  /** The signed request; resend exactly this object on every retry. */
  request(intent: Intent): object {
    const i = normalized(intent);
    return {
      intent: {
        id: i.id,
        chain: i.chain,
        asset: i.asset,
        destination: i.destination,
        amount: i.amount,
        created_at_ms: i.created_at_ms.toString(),
        expires_at_ms: i.expires_at_ms.toString(),
        customer_ref: i.customer_ref ?? "",
        solana: i.solana ? { ...i.solana, compute_unit_price: i.solana.compute_unit_price.toString() } : undefined,
      },
      backend_signature: Buffer.from(signDigest(this.config.signingKeyHex, digest(i))),
    };
  }

  /** Follows `id` on coordinator `i` until it is final or `until` passes; returns the last
   * record seen, or null if the coordinator cannot be reached (resubmit elsewhere).
   *
   * Watch streams changes from the moment it subscribes, so each (re)subscription waits for
   * the response headers (the server has subscribed), then reads the current state with Get:
   * nothing that happened in between is missed. */
  private async watch(i: number, id: string, until: number, report: Report): Promise<Withdrawal | null> {
    let last: Withdrawal | null = null;
    while (Date.now() < until) {
      const call = this.stub(i).Watch({ id }, { deadline: Math.min(until, Date.now() + this.watchStreamMs) });
      try {
        await new Promise<void>((resolve, reject) => {
          call.once("metadata", () => resolve());
          call.once("error", reject);
        });
        last = await this.unary(i, "Get", { id }, 10_000);
        if (FINAL.has(last.status)) {
          call.cancel();
          return last;
        }
        // Progress for whoever runs this (stdout carries only the final report).
        console.error(JSON.stringify({ event: "watching", id, status: last.status }));
        for await (const w of call) {
          last = w;
          if (FINAL.has(w.status)) {
            call.cancel();
            report.via = "watch";
            return w;
          }
        }
      } catch (err) {
        const e = err as grpc.ServiceError;
        call.cancel();
        if ((e.code === S.UNAVAILABLE || e.code === S.NOT_FOUND) && last === null) return null;
        // Fell behind (DATA_LOSS), the stream's deadline, or a dropped stream: watch again.
        if (![S.DEADLINE_EXCEEDED, S.DATA_LOSS, S.UNAVAILABLE, S.CANCELLED].includes(e.code)) throw e;
      }
      report.watch_resumptions = (report.watch_resumptions ?? 0) + 1;
    }
    return last;
  }

  /** Submits and follows one withdrawal, acting on every refusal class; returns a report. */
  async submit(intent: Intent, giveUpAfterMs: number, submitTimeoutMs: number): Promise<Report> {
    const request = this.request(intent);
    const d = digest(intent);
    const report: Report = {
      client: "typescript",
      id: intent.id,
      digest: Buffer.from(d).toString("hex"),
      encoding: Buffer.from(encode(intent)).toString("hex"),
      created_at_ms: Number(intent.created_at_ms),
      expires_at_ms: Number(intent.expires_at_ms),
      attempts: [],
      via: "submit",
    };
    const until = Math.min(Date.now() + giveUpAfterMs, Number(intent.expires_at_ms));
    const n = this.config.endpoints.length;
    let at = 0;
    let backoff = 200;
    for (;;) {
      try {
        let w = await this.unary(at, "Submit", request, Math.min(submitTimeoutMs, until - Date.now()));
        report.attempts.push({ endpoint: this.config.endpoints[at][0], code: "OK" });
        if (!FINAL.has(w.status)) {
          const followed = await this.watch(at, intent.id, until, report);
          if (followed === null) {
            // The coordinator went away mid-watch: the same bytes to the next one, after a
            // pause so that a cluster down everywhere is not hammered.
            await sleep(Math.min(backoff, Math.max(0, until - Date.now())));
            backoff = Math.min(backoff * 2, 5000);
            at = (at + 1) % n;
            continue;
          }
          w = followed;
        }
        if (w.status === "STATUS_FAILED" && Date.now() < until) {
          await sleep(Math.min(backoff, Math.max(0, until - Date.now())));
          backoff = Math.min(backoff * 2, 5000);
          continue; // retryable: the same bytes again
        }
        return this.outcome(report, w, d);
      } catch (err) {
        const e = err as grpc.ServiceError;
        if (typeof e.code !== "number") throw err;
        const r = refusalOf(e, this.vendorDir);
        const cls = classify(e.code);
        report.attempts.push({ endpoint: this.config.endpoints[at][0], code: r.code, rule: r.rule });
        Object.assign(report, { code: r.code, rule: r.rule, reason: r.message, error_info: r.error_info, retry_delay_ms: r.retry_delay_ms, class: cls });
        if (cls === "permanent" || cls === "operator") {
          report.outcome = cls === "permanent" ? "refused" : "needs-operator";
          return report;
        }
        let delay = r.retry_delay_ms ?? backoff;
        backoff = Math.min(backoff * 2, 5000);
        if (cls === "resend" && FAILOVER.has(e.code) && n > 1) {
          at = (at + 1) % n;
          if (at !== 0) delay = 0; // the next coordinator at once; a pause once per round
        }
        if (Date.now() + delay >= until) {
          report.outcome = cls === "wait" ? "retry-later" : "gave-up";
          return report;
        }
        await sleep(delay);
      }
    }
  }

  private outcome(report: Report, w: Withdrawal, d: Uint8Array): Report {
    if (Buffer.compare(Buffer.from(w.digest), Buffer.from(d)) !== 0) {
      // The coordinator answers for some other intent: trust nothing in it.
      return Object.assign(report, { outcome: "error", reason: "the coordinator's digest is not this intent's" });
    }
    const outcomes: Record<string, string> = {
      STATUS_SIGNED: "signed",
      STATUS_REFUSED: "refused",
      STATUS_EXPIRED: "refused",
      STATUS_FAILED: "gave-up",
    };
    const h = (b: Buffer) => Buffer.from(b ?? []).toString("hex");
    return Object.assign(report, {
      status: w.status,
      outcome: outcomes[w.status] ?? "pending",
      rule: w.rule,
      reason: w.reason,
      message: h(w.message),
      signature: h(w.signature),
      group_public_key: h(w.group_public_key),
      signers: w.signers,
      evm_call: w.evm_call ? { to: w.evm_call.to, data: h(w.evm_call.data) } : null,
      solana_transaction: w.solana_transaction || null,
    });
  }

  close(): void {
    for (const s of this.stubs.values()) s.close();
  }
}
