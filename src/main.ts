#!/usr/bin/env node
// Entry point: read config once, open the store, listen, and shut down cleanly on signals.
import "dotenv/config";
import { ConfigError, parseConfig } from "./config.js";
import { DEV_TOKENS_WARNING } from "./dev-tokens.js";
import { createHub } from "./hub.js";
import { createLogger } from "./log.js";

const HELP = `queuehub — a Socket.IO message-queue hub with durable per-client delivery

Usage: queuehub             (from a clone: npm start; reads the environment and ./.env)

Settings (environment variables; see .env.example and README.md):
  PORT=3000  HUB_HOST (default 127.0.0.1 while open, 0.0.0.0 with HUB_SECRET)  HUB_INSECURE=0
  HUB_STORE=sqlite|memory|redis  HUB_DB=./data/hub.db  HUB_DB_RESERVE_MB=32
  HUB_SYNC=normal|full|off  HUB_FLUSH_MS=0  REDIS_URL  HUB_REDIS_PREFIX=queuehub:
  HUB_SECRET  HUB_REQUIRE_EXP=true  HUB_NAMESPACES=caps,orders  HUB_CORS_ORIGINS=https://app.example
  LOG_LEVEL=info
  HUB_DEV_TOKENS=0 (development only: POST /dev/token mints tokens for any name)
  HUB_PREFETCH=256  HUB_ACK_TIMEOUT_MS=30000  HUB_CREDIT_WAIT_MS=250  HUB_MAX_DELIVERIES=10
  HUB_MESSAGE_TTL_MS=0
  HUB_MAX_QUEUE_LENGTH=0  HUB_OVERFLOW=reject|drop-oldest  HUB_MAX_PAYLOAD_BYTES=262144
  HUB_MAX_BATCH=100  HUB_MAX_BATCH_BYTES=1048576  HUB_RATE_LIMIT=0  HUB_DEDUP_WINDOW_MS=120000
  HUB_ALLOW_EIO3=true  HUB_ROUTE_FIELD=store  HUB_MAX_ROOMS_PER_CLIENT=100
  HUB_MAX_CONNECTIONS=10000  HUB_MAX_CONNECTIONS_PER_ADDRESS=100  HUB_LIMIT_LOOPBACK=false
  HUB_MAX_CONNECTIONS_PER_CLIENT=10  HUB_MAX_NAMESPACES=1000  HUB_TRUSTED_PROXIES

Without HUB_SECRET the hub is open (any client may use any clientId) and listens on loopback
only; to listen beyond it, set HUB_SECRET (npm run token mints tokens) or HUB_INSECURE=1.
`;

async function main() {
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    process.stdout.write(HELP);
    return;
  }
  let config: ReturnType<typeof parseConfig>;
  try {
    config = parseConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`queuehub: bad setting: ${err.message}\n`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  // A closed stdout (piped into `head`, say) must not take the hub down.
  process.stdout.on("error", () => {});
  let hub: Awaited<ReturnType<typeof createHub>> | null = null;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping || !hub) {
      log.warn({ signal }, "exiting now");
      process.exit(130);
    }
    stopping = true;
    log.info({ signal }, "shutting down");
    hub.close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  // Installed before the hub listens, so a signal right after "hub listening" still shuts down cleanly.
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  try {
    hub = await createHub({ ...config, logger: log });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.error({ err: message }, "hub failed to start");
    process.stderr.write(`queuehub: cannot start: ${message}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
  log.info(
    {
      url: hub.url,
      port: hub.port,
      store: config.store,
      ...(config.store === "sqlite" ? { db: config.db, sync: config.sync } : {}),
      ...(config.store === "redis" ? { redisPrefix: config.redisPrefix } : {}),
      namespaces: config.namespaces ?? "any",
    },
    "hub listening",
  );
  // Said where a person starting the hub sees it, not only in the log.
  if (config.devTokens && config.secret) process.stderr.write(`queuehub: ${DEV_TOKENS_WARNING}\n`);
}

void main();
