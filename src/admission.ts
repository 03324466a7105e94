// Who may open a connection: Engine.IO's `allowRequest` is one function, so every check of a new
// connection (a polling handshake, or a WebSocket opened directly) is listed here, in order. The
// checks run before the hub sends an open packet: a refused request gets HTTP 403 and no session.
import type { IncomingMessage } from "node:http";
import type { ServerOptions } from "socket.io";
import type { OriginPolicy } from "./origins.js";

/** One check of a new connection: null lets it through, a string is the reason it is refused. */
export type AdmissionCheck = (req: IncomingMessage) => string | null;

/** The checks the hub's own Socket.IO server runs, the first refusal winning. */
export function admissionChecks(parts: { origins: OriginPolicy }): AdmissionCheck[] {
  const { origins } = parts;
  return [
    // A page from a foreign origin never connects through its visitor's browser (CSRF, rebinding).
    (req) => (origins.allows(req) ? null : origins.refusal(req)),
  ];
}

/** Engine.IO's `allowRequest` running `checks` in order. */
export function allowRequestOf(
  checks: readonly AdmissionCheck[],
): NonNullable<ServerOptions["allowRequest"]> {
  return (req, callback) => {
    for (const check of checks) {
      const refusal = check(req);
      if (refusal !== null) return callback(refusal, false);
    }
    callback(null, true);
  };
}
