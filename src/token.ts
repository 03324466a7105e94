// Tokens bind a connection to its clientId when the hub runs with HUB_SECRET:
// a JWT signed with HS256 whose `sub` is the clientId (`exp` honoured).
import { jwtVerify, SignJWT } from "jose";

export class TokenVerifier {
  private readonly key: Uint8Array;
  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  /** The token's subject, or null when it is missing, forged, expired or has no `sub`. */
  async subject(token: unknown): Promise<string | null> {
    if (typeof token !== "string" || token.length === 0) return null;
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ["HS256"] });
      return typeof payload.sub === "string" ? payload.sub : null;
    } catch {
      return null;
    }
  }
}

/** Issues a token for a clientId (for operators, tests and the CLIs). */
export async function signToken(secret: string, clientId: string, expiresIn = "1h"): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(clientId)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}
