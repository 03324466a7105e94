// Property: random sequences of publish / received / getAll / disconnect from several
// clients never lose an unacked message and never deliver another client's message.
import fc from "fast-check";
import { startHub, type TestClient, type TestContext, waitUntil } from "./support/hub.js";

const CLIENTS = ["c0", "c1", "c2"] as const;
type ClientIndex = 0 | 1 | 2;

type Op =
  | { kind: "publish"; from: ClientIndex; to: ClientIndex[] | null }
  | { kind: "ack"; by: ClientIndex; pick: number }
  | { kind: "getAll"; by: ClientIndex }
  | { kind: "disconnect"; who: ClientIndex }
  | { kind: "reconnect"; who: ClientIndex };

const client = fc.constantFrom<ClientIndex>(0, 1, 2);
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("publish" as const),
      from: client,
      to: fc.option(fc.uniqueArray(client, { minLength: 1, maxLength: 3 })),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("ack" as const), by: client, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("getAll" as const), by: client }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("disconnect" as const), who: client }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("reconnect" as const), who: client }) },
);

async function run(ops: Op[]) {
  const ctx: TestContext = await startHub();
  try {
    const connect = (i: ClientIndex) => ctx.client("/", { clientId: CLIENTS[i] });
    const sockets: (TestClient | null)[] = await Promise.all(
      CLIENTS.map((_, i) => connect(i as ClientIndex)),
    );
    for (const s of sockets) await s?.request("subscribe", { event: "e" });
    /** The model: what each client is owed (addressed to it, not yet acked). */
    const owed = CLIENTS.map(() => new Set<string>());
    const addressed = CLIENTS.map(() => new Set<string>());
    const published: string[] = [];
    const seen: TestClient[][] = CLIENTS.map((_, i) => [sockets[i] as TestClient]);

    for (const step of ops) {
      if (step.kind === "publish") {
        const pub = sockets[step.from];
        if (!pub) continue;
        const targets = step.to ?? [0, 1, 2].filter((i) => i !== step.from);
        const reply = await pub.request("publish", {
          event: "e",
          payload: published.length,
          ...(step.to ? { to: step.to.map((i) => CLIENTS[i]) } : {}),
        });
        expect(reply.ok).toBe(true);
        const id = reply.messageId as string;
        published.push(id);
        for (const t of targets) {
          owed[t]?.add(id);
          addressed[t]?.add(id);
        }
      } else if (step.kind === "ack") {
        const s = sockets[step.by];
        if (!s || published.length === 0) continue;
        const id = published[step.pick % published.length] as string;
        const reply = await s.request("received", { messageId: id });
        expect(reply).toEqual({ ok: true, removed: owed[step.by]?.delete(id) ? 1 : 0 });
      } else if (step.kind === "getAll") {
        const s = sockets[step.by];
        if (!s) continue;
        expect(await s.request("getAll", {})).toEqual({ ok: true, count: owed[step.by]?.size });
      } else if (step.kind === "disconnect") {
        sockets[step.who]?.close();
        sockets[step.who] = null;
      } else if (!sockets[step.who]) {
        const s = await connect(step.who);
        sockets[step.who] = s;
        seen[step.who]?.push(s);
      }
    }

    // Everyone back online: each gets everything it is owed, and nothing addressed to others.
    for (const i of [0, 1, 2] as ClientIndex[]) {
      sockets[i]?.close();
      const s = await connect(i);
      seen[i]?.push(s);
      const mine = owed[i] as Set<string>;
      const got = () => new Set(s.messages.map((m) => m.messageId));
      await waitUntil(
        () => [...mine].every((id) => got().has(id)),
        3000,
        () => `${CLIENTS[i]} owed ${mine.size}, got ${got().size}`,
      );
      for (const conn of seen[i] ?? []) {
        for (const m of conn.messages) expect(addressed[i]?.has(m.messageId)).toBe(true);
      }
      s.close();
    }
  } finally {
    await ctx.close();
  }
}

test("no unacked message is lost, and no client gets another's", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40 }), (ops) => run(ops)),
    { numRuns: 25 },
  );
}, 60_000);
