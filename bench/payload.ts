// The message every system carries: `{ seq, t, pad }`, where `t` is the publish time and `pad`
// brings the JSON text to the requested size. Publisher and subscriber live in different
// processes on the same machine, so `t` is epoch-based: performance.timeOrigin + performance.now()
// gives sub-millisecond precision on the shared wall clock.

import type { BenchPayload, Stamp } from "./types.js";

/** Epoch milliseconds with sub-millisecond precision, comparable across processes on one machine. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

const padCache = new Map<number, string>();

/** Length of the JSON text without its padding, for a typical stamp. */
const OVERHEAD = JSON.stringify({ seq: 100000, t: now(), pad: "" }).length;

/** A payload whose JSON text is about `bytes` long (never shorter than the stamp itself). */
export function makePayload(seq: number, bytes: number, t = now()): BenchPayload {
  const padLength = Math.max(0, bytes - OVERHEAD);
  let pad = padCache.get(padLength);
  if (pad === undefined) {
    pad = "x".repeat(padLength);
    padCache.set(padLength, pad);
  }
  return { seq, t, pad };
}

export function encode(payload: BenchPayload): Buffer {
  return Buffer.from(JSON.stringify(payload));
}

/** Reads the stamp out of a payload object or its JSON bytes; throws on anything else. */
export function decode(data: unknown): Stamp {
  const value: unknown =
    data instanceof Uint8Array
      ? JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString())
      : data;
  if (typeof value === "object" && value !== null) {
    const { t, seq } = value as Partial<Stamp>;
    if (typeof t === "number" && typeof seq === "number") return { t, seq };
  }
  throw new Error(`not a bench payload: ${JSON.stringify(value)?.slice(0, 120)}`);
}
