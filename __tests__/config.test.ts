// Settings are parsed once at the edge; a bad one stops the start with a message naming it.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { ConfigError, parseConfig } from "../src/config.js";
import { built } from "./support/process.js";

test("defaults a user would expect", () => {
  expect(parseConfig({})).toMatchObject({
    port: 3000,
    store: "sqlite",
    db: "./data/hub.db",
    sync: "normal",
    prefetch: 256,
    ackTimeoutMs: 30_000,
    maxDeliveries: 10,
    overflow: "reject",
    dedupWindowMs: 120_000,
    secret: null,
    namespaces: null,
    allowEio3: true,
    maxRoomsPerClient: 100,
  });
});

test("HUB_ROUTE_FIELD names the routing field; empty turns routing off", () => {
  expect(parseConfig({}).routeField).toBe("store");
  expect(parseConfig({ HUB_ROUTE_FIELD: "shop" }).routeField).toBe("shop");
  expect(parseConfig({ HUB_ROUTE_FIELD: "" }).routeField).toBeNull();
  expect(() => parseConfig({ HUB_ROUTE_FIELD: "two words" })).toThrow("HUB_ROUTE_FIELD");
});

test("HUB_ALLOW_EIO3 turns socket.io-client 2.x off", () => {
  expect(parseConfig({ HUB_ALLOW_EIO3: "false" }).allowEio3).toBe(false);
  expect(parseConfig({ HUB_ALLOW_EIO3: "0" }).allowEio3).toBe(false);
  expect(parseConfig({ HUB_ALLOW_EIO3: "true" }).allowEio3).toBe(true);
});

test("names are parsed into typed values", () => {
  const config = parseConfig({
    PORT: "0",
    HUB_STORE: "memory",
    HUB_NAMESPACES: "caps, /orders",
    HUB_PREFETCH: "8",
  });
  expect(config).toMatchObject({ port: 0, store: "memory", namespaces: ["/caps", "/orders"], prefetch: 8 });
});

test.each([
  ["PORT", "abc"],
  ["PORT", "70000"],
  ["HUB_STORE", "postgres"],
  ["HUB_SYNC", "sometimes"],
  ["HUB_PREFETCH", "0"],
  ["HUB_ACK_TIMEOUT_MS", "-5"],
  ["HUB_MAX_DELIVERIES", "1.5"],
  ["HUB_MAX_QUEUE_LENGTH", "lots"],
  ["HUB_OVERFLOW", "drop-newest"],
  ["HUB_NAMESPACES", "caps,Bad Name"],
  ["LOG_LEVEL", "loud"],
  ["HUB_ALLOW_EIO3", "maybe"],
  ["HUB_MAX_ROOMS_PER_CLIENT", "-1"],
])("%s=%s is refused with a message naming it", (name, value) => {
  expect(() => parseConfig({ [name]: value })).toThrow(ConfigError);
  expect(() => parseConfig({ [name]: value })).toThrow(name);
});

test("the hub refuses to start on a bad setting, naming it", () => {
  const run = spawnSync(process.execPath, [built("main.js")], {
    env: { ...process.env, HUB_PREFETCH: "-1", HUB_STORE: "memory", PORT: "0" },
    encoding: "utf8",
    timeout: 15_000,
  });
  expect(run.status).toBe(2);
  expect(run.stderr).toContain("HUB_PREFETCH");
});

test("every setting the hub reads is named in --help, .env.example and the README", () => {
  const read = new Set<string>();
  const env = new Proxy({} as Record<string, string | undefined>, {
    get: (_, name) => {
      if (typeof name === "string") read.add(name);
      return undefined;
    },
    has: (_, name) => {
      if (typeof name === "string") read.add(name);
      return false;
    },
  });
  parseConfig(env);
  expect(read.size).toBeGreaterThan(30);
  const help = spawnSync(process.execPath, [built("main.js"), "--help"], {
    encoding: "utf8",
    timeout: 15_000,
  });
  expect(help.status).toBe(0);
  const docs = {
    "--help": help.stdout,
    ".env.example": readFileSync(".env.example", "utf8"),
    "README.md": readFileSync("README.md", "utf8"),
  };
  const missing = Object.entries(docs).flatMap(([doc, text]) =>
    [...read].filter((name) => !new RegExp(`\\b${name}\\b`).test(text)).map((name) => `${name} in ${doc}`),
  );
  expect(missing).toEqual([]);
});
