// Tokens bind a connection to its clientId when the hub runs with HUB_SECRET: a JWT signed with
// HS256 whose `sub` is the clientId. `exp` is honoured (and required unless the hub is told
// otherwise); optional claims narrow what the token may do: `role: "operator"` opens the HTTP
// operator views and actions, and `ns`, `groups`, `rooms` (arrays of names) list the namespaces,
// groups and rooms it may use (absent: any).
import { errors, jwtVerify, SignJWT } from "jose";
import { type Failure, failure, toNamespace } from "./protocol.js";

export type Role = "client" | "operator";

/** What a verified token allows. */
export interface Claims {
  /** The clientId (or, over HTTP, the publisher's name). */
  sub: string;
  role: Role;
  /** Namespaces it may connect to and publish to, as the hub writes them (`/caps`); null: any. */
  ns: string[] | null;
  /** Groups it may subscribe with; null: any. */
  groups: string[] | null;
  /** Rooms it may join, publish to and list; null: any. */
  rooms: string[] | null;
  /** Epoch ms at which it expires; null: never (only when the hub allows tokens without `exp`). */
  expiresAt: number | null;
}

/** The names a claim limits. */
export type Limited = "ns" | "groups" | "rooms";

/** True when the claims allow `name` (a namespace, a group or a room); no claims (open mode) allow all. */
export function allows(claims: Claims | null | undefined, what: Limited, name: string): boolean {
  const list = claims?.[what];
  return list === null || list === undefined || list.includes(name);
}

/**
 * What a token says of using rooms (publishing to them, listing their members): "claimed" when
 * its `rooms` claim names them all (allowed, member or not), "membership" when it has no such
 * claim (the rooms' members may), FORBIDDEN for a room outside its claim.
 */
export function roomAccess(
  claims: Claims | null | undefined,
  rooms: Iterable<string>,
  what: string,
): "claimed" | "membership" | Failure {
  const listed = claims?.rooms;
  if (listed === null || listed === undefined) return "membership";
  for (const room of rooms) {
    if (!listed.includes(room)) return failure("FORBIDDEN", `${what}: this token may not use room "${room}"`);
  }
  return "claimed";
}

/** Why a token was refused, for the log (the wire only ever says `unauthorized`). */
export type Refusal = "missing" | "invalid" | "expired" | "no exp" | "no sub" | "bad claims";

export class TokenVerifier {
  private readonly key: Uint8Array;
  constructor(
    secret: string,
    /** Refuse tokens without `exp` (HUB_REQUIRE_EXP). */
    private readonly requireExp = true,
  ) {
    this.key = new TextEncoder().encode(secret);
  }

  /** The token's claims, or why it is refused (missing, forged, expired, no `exp`, claims not arrays of names). */
  async verify(token: unknown): Promise<Claims | { refused: Refusal }> {
    if (typeof token !== "string" || token.length === 0) return { refused: "missing" };
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: ["HS256"],
        ...(this.requireExp ? { requiredClaims: ["exp"] } : {}),
      }));
    } catch (err) {
      if (err instanceof errors.JWTExpired) return { refused: "expired" };
      if (err instanceof errors.JWTClaimValidationFailed && err.claim === "exp") return { refused: "no exp" };
      return { refused: "invalid" };
    }
    if (typeof payload.sub !== "string" || payload.sub.length === 0) return { refused: "no sub" };
    const role = payload.role ?? "client";
    if (role !== "client" && role !== "operator") return { refused: "bad claims" };
    const ns = names(payload.ns);
    const groups = names(payload.groups);
    const rooms = names(payload.rooms);
    if (ns === false || groups === false || rooms === false) return { refused: "bad claims" };
    const namespaces = ns?.map(toNamespace);
    if (namespaces?.some((n) => n === null)) return { refused: "bad claims" };
    return {
      sub: payload.sub,
      role,
      ns: (namespaces as string[] | undefined) ?? null,
      groups: groups ?? null,
      rooms: rooms ?? null,
      expiresAt: typeof payload.exp === "number" ? payload.exp * 1000 : null,
    };
  }

  /** The token's subject, or null when it is refused. */
  async subject(token: unknown): Promise<string | null> {
    const claims = await this.verify(token);
    return "sub" in claims ? claims.sub : null;
  }
}

/** A claim's names: undefined when absent, false when it is not an array of strings. */
function names(value: unknown): string[] | undefined | false {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) return false;
  return value;
}

export interface TokenOptions {
  /** How long it is valid, as jose reads it (`"1h"`, `"30m"`, `"7d"`), or null for no `exp`. @default "1h" */
  expiresIn?: string | null;
  role?: Role;
  ns?: string[];
  groups?: string[];
  rooms?: string[];
}

/** Issues a token for a clientId (for operators, tests and `npm run token`). */
export async function signToken(
  secret: string,
  clientId: string,
  options: TokenOptions | string = {},
): Promise<string> {
  const {
    expiresIn = "1h",
    role,
    ns,
    groups,
    rooms,
  } = typeof options === "string" ? { expiresIn: options } : options;
  const claims = {
    ...(role && role !== "client" ? { role } : {}),
    ...(ns ? { ns } : {}),
    ...(groups ? { groups } : {}),
    ...(rooms ? { rooms } : {}),
  };
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(clientId).setIssuedAt();
  if (expiresIn !== null) jwt.setExpirationTime(expiresIn);
  return jwt.sign(new TextEncoder().encode(secret));
}
