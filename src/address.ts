// Remote addresses: whose a connection or request is (for the per-address limits, rate buckets and
// idempotency scopes of unnamed publishers), and whether an address is loopback. X-Forwarded-For is
// believed only from the proxies HUB_TRUSTED_PROXIES lists: anyone else could write any address in it.
import type { IncomingHttpHeaders } from "node:http";
import { isIPv4 } from "node:net";

/** `::ffff:10.0.0.1` (an IPv4 address on a dual-stack socket) as `10.0.0.1`. */
export function plainAddress(address: string): string {
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  return isIPv4(v4) ? v4 : address;
}

/** 127.0.0.0/8, ::1 (and their dual-stack spellings), or the name `localhost`. */
export function isLoopback(address: string): boolean {
  const plain = plainAddress(address.replace(/^\[|\]$/g, ""));
  return plain === "::1" || plain === "localhost" || (isIPv4(plain) && plain.startsWith("127."));
}

/**
 * The client's address: the peer's, or, when the peer is a trusted proxy, the last address in
 * X-Forwarded-For that is not one of the trusted proxies (the one the first trusted proxy saw).
 */
export function clientAddress(
  peer: string | undefined,
  headers: IncomingHttpHeaders,
  trustedProxies: readonly string[],
): string {
  let address = plainAddress(peer ?? "unknown");
  if (trustedProxies.length === 0 || !trustedProxies.includes(address)) return address;
  const forwarded = headers["x-forwarded-for"];
  const hops = (Array.isArray(forwarded) ? forwarded.join(",") : (forwarded ?? ""))
    .split(",")
    .map((hop) => hop.trim())
    .filter(Boolean);
  while (trustedProxies.includes(address) && hops.length > 0) address = plainAddress(hops.pop() as string);
  return address;
}
