// Logs: the hub's own pino logger writes one JSON object per line (level label, ISO time, msg,
// fields), and a host's own pino logger gets the hub's lines instead.
import { createServer } from "node:http";
import { pino } from "pino";
import { Server } from "socket.io";
import { attachHub } from "../src/hub.js";
import { createLogger } from "../src/log.js";
import { MemoryStore } from "../src/store/memory.js";
import { killHubs, spawnHub } from "./support/process.js";

afterAll(killHubs);

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

test("a hub process logs JSON lines on stdout: level as a label, time, msg and fields", async () => {
  const hub = await spawnHub({ HUB_STORE: "memory" });
  expect(await hub.kill("SIGTERM")).toEqual({ code: 0, signal: null });
  const lines = hub.stdout().trim().split("\n");
  const logs = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(logs.length).toBe(lines.length);
  expect(logs.find((l) => l.msg === "hub listening")).toEqual({
    level: "info",
    time: expect.stringMatching(ISO_TIME),
    msg: "hub listening",
    url: hub.url,
    port: hub.port,
    store: "memory",
    namespaces: "any",
  });
  expect(logs.at(-1)).toMatchObject({ level: "info", msg: "shutting down", signal: "SIGTERM" });
});

test("createLogger filters by level and keeps pino's argument order (fields, message)", () => {
  const lines: string[] = [];
  const log = createLogger("warn", (line) => lines.push(line));
  log.info({ n: 1 }, "not shown");
  log.warn({ n: 2 }, "shown");
  log.error("no fields");
  expect(lines.map((l) => JSON.parse(l))).toEqual([
    { level: "warn", time: expect.stringMatching(ISO_TIME), n: 2, msg: "shown" },
    { level: "error", time: expect.stringMatching(ISO_TIME), msg: "no fields" },
  ]);
  expect(lines.every((l) => l.endsWith("\n") && l.indexOf("\n") === l.length - 1)).toBe(true);
});

test("a host's own pino logger (a child, with its bindings) gets the hub's lines", async () => {
  const lines: Record<string, unknown>[] = [];
  const hostLogger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const io = new Server(createServer());
  const hub = await attachHub(io, {
    namespaces: ["/caps"],
    queueStore: new MemoryStore(),
    logger: hostLogger.child({ component: "queuehub" }),
  });
  await hub.close();
  await io.close();
  // The host's maxHttpBufferSize (1e6) is below what the defaults need: the warning is the host's line.
  expect(lines).toContainEqual(
    expect.objectContaining({ level: 40, component: "queuehub", setting: "maxHttpBufferSize", host: 1e6 }),
  );
});
