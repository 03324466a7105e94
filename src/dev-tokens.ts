// Development only (HUB_DEV_TOKENS=1, with HUB_SECRET): `POST /dev/token { clientId }` answers
// `{ ok, token }`, a client token for that clientId valid for an hour, so a page (the chat
// example) runs on a hub with a secret without an app server of its own. It hands any identity to
// whoever asks, so it is fenced in: the hub must listen on loopback (checked at start), only
// loopback peers are answered, it is a state-changing request (a page of a foreign origin cannot
// ask through its visitor's browser), and its tokens carry no role and no claims.
import { isLoopback } from "./address.js";
import { failure, isValidClientId, type Reply } from "./protocol.js";
import { signToken } from "./token.js";

export const DEV_TOKEN_PATH = "/dev/token";
const LIFETIME = "1h";

/** 127.0.0.0/8, ::1 and their dual-stack spellings, or the name `localhost`. */
export function isLoopbackAddress(address: string | undefined): boolean {
  return address !== undefined && isLoopback(address);
}

/** The start-up refusal for a hub that would mint tokens beyond this machine, or null. */
export function devTokensRefusal(listenHost: string): string | null {
  if (isLoopbackAddress(listenHost)) return null;
  return `HUB_DEV_TOKENS=1 mints a token for any clientId, so the hub must listen on loopback only: set HUB_HOST=127.0.0.1 (it is ${listenHost}), or turn HUB_DEV_TOKENS off`;
}

export const DEV_TOKENS_WARNING =
  "DEVELOPMENT ONLY: HUB_DEV_TOKENS=1, POST /dev/token mints a client token for any clientId to anyone on this machine; never on a hub others use";

/** A token for the clientId in `body`, for a peer on this machine. */
export async function mintDevToken(
  secret: string,
  peer: string | undefined,
  body: unknown,
): Promise<{ status: number; reply: Reply<{ token: string; clientId: string; expiresIn: string }> }> {
  if (!isLoopbackAddress(peer)) {
    return { status: 403, reply: failure("FORBIDDEN", "development tokens are for this machine only") };
  }
  const clientId = (body as { clientId?: unknown } | null)?.clientId;
  if (!isValidClientId(clientId)) {
    return {
      status: 400,
      reply: failure("INVALID_ARGUMENT", "clientId: 1–128 letters, digits, spaces or ._:@- required"),
    };
  }
  const token = await signToken(secret, clientId, LIFETIME);
  return { status: 200, reply: { ok: true, token, clientId, expiresIn: LIFETIME } };
}
