// The CAPS CLIs as a user runs them: real child processes against a live hub on port 0.
// Each test uses its own namespace, so drivers and queues of one test never see another's.
import { type ChildProcess, spawn } from "node:child_process";
import { createHub, type Hub } from "../src/hub.js";
import { MemoryStore } from "../src/store/memory.js";
import { built } from "./support/process.js";

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const NEW_ORDER = new RegExp(`new order (${UUID})`);
const THANKS = new RegExp(`Thank you for delivering order (${UUID})`);
const DELIVERED = new RegExp(`delivered order (${UUID})`);
const IN_TRANSIT = new RegExp(`order (${UUID}) for .* is on its way`);
/** Vendor lines about orders, as "in-transit <id>" and "delivered <id>", in the order printed. */
const REPORTS = new RegExp(
  `(?:order (${UUID}) for .* is (on its way)|Thank you for delivering order (${UUID}))`,
);
const reports = (cli: Cli) =>
  cli.stdout.split("\n").flatMap((line) => {
    const m = REPORTS.exec(line);
    if (!m) return [];
    return m[2] ? [`in-transit ${m[1]}`] : [`delivered ${m[3]}`];
  });

/**
 * How long a CLI may take to print or exit before a test fails: a deadline, not a wait, so only a
 * failing test takes it. Generous: on a busy machine a node process can wait seconds for a core.
 */
const CLI_DEADLINE_MS = 20_000;
/** Each test runs several CLIs one after another. */
const TEST_TIMEOUT_MS = 90_000;

class Cli {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  exitCode: number | null = null;
  readonly exited: Promise<number | null>;

  constructor(name: "vendor" | "driver", args: string[]) {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
    delete env.HUB_URL;
    delete env.HUB_TOKEN;
    delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the children
    this.child = spawn(process.execPath, [built(`clients/${name}.js`), ...args], {
      cwd: process.cwd(),
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stdout += chunk;
    });
    this.child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) =>
      this.child.on("exit", (code) => {
        this.exitCode = code;
        resolve(code);
      }),
    );
    running.add(this);
  }

  /** Ids captured by `pattern` on stdout, in order. */
  ids(pattern: RegExp): string[] {
    return this.stdout
      .split("\n")
      .map((line) => pattern.exec(line)?.[1])
      .filter((id): id is string => id !== undefined);
  }

  /** Polls stdout until `pattern` matched on `n` lines; returns the ids it captured. */
  async lines(pattern: RegExp, n: number, timeoutMs = CLI_DEADLINE_MS): Promise<string[]> {
    await this.until(() => this.ids(pattern).length >= n, timeoutMs, `${n} × ${pattern}`);
    return this.ids(pattern);
  }

  async output(text: string, timeoutMs = CLI_DEADLINE_MS): Promise<void> {
    await this.until(() => this.stdout.includes(text) || this.stderr.includes(text), timeoutMs, text);
  }

  async exit(timeoutMs = CLI_DEADLINE_MS): Promise<number | null> {
    await this.until(() => this.exitCode !== null, timeoutMs, "exit");
    return this.exitCode;
  }

  /** Ctrl-C (or SIGTERM): the CLI closes its client and exits 0. */
  async stop(signal: NodeJS.Signals = "SIGINT"): Promise<number | null> {
    this.child.kill(signal);
    return this.exit();
  }

  private async until(check: () => boolean, timeoutMs: number, what: string) {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline || (this.exitCode !== null && !check())) {
        throw new Error(
          `${this.exitCode === null ? "timed out" : `exited (${this.exitCode})`} waiting for ${what}\n` +
            `stdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

const running = new Set<Cli>();
let hub: Hub;

const vendor = (ns: string, ...args: string[]) =>
  new Cli("vendor", ["--url", hub.url, "--namespace", ns, "--interval", "30", ...args]);
const driver = (ns: string, ...args: string[]) =>
  new Cli("driver", ["--url", hub.url, "--namespace", ns, "--delay", "30", ...args]);

beforeAll(async () => {
  hub = await createHub({ port: 0, host: "127.0.0.1", logLevel: "silent", queueStore: new MemoryStore() });
});

afterAll(async () => {
  for (const cli of running) if (cli.exitCode === null) cli.child.kill("SIGKILL");
  await Promise.all([...running].map((cli) => cli.exited));
  await hub?.close();
});

test(
  "CAPS flow: a vendor with --count 3 thanks the driver for each of its orders, in order, and exits 0",
  async () => {
    const drv = driver("/caps-flow");
    await drv.output("waiting for pickups");
    // Two stores at once: each is thanked for its own orders only (the driver addresses them with `to`).
    const ven = vendor("/caps-flow", "--store", "acme-widgets", "--count", "3");
    const other = vendor("/caps-flow", "--id", "flowers-r-us", "--count", "2");

    expect(await ven.exit()).toBe(0);
    const orders = ven.ids(NEW_ORDER);
    expect(orders).toHaveLength(3);
    expect(ven.ids(THANKS)).toEqual(orders);
    expect(ven.ids(IN_TRANSIT)).toEqual(orders);
    expect(ven.stdout).toContain("all 3 order(s) delivered");
    expect(await other.exit()).toBe(0);
    expect(other.ids(THANKS)).toEqual(other.ids(NEW_ORDER));
    expect(other.ids(THANKS)).toHaveLength(2);

    expect((await drv.lines(DELIVERED, 5)).filter((id) => orders.includes(id))).toEqual(orders);
    expect(await drv.stop()).toBe(0);
    expect(drv.stderr).toBe("");
  },
  TEST_TIMEOUT_MS,
);

test(
  "catch-up: thank-yous delivered while the vendor was stopped are printed once, in order, on its next start",
  async () => {
    const ns = "/caps-catchup";
    // The driver subscribes durably, then goes away: the pickups wait in its queue.
    const drv1 = driver(ns, "--id", "driver-7");
    await drv1.output("waiting for pickups");
    expect(await drv1.stop("SIGTERM")).toBe(0);

    // The vendor publishes 3 orders and is stopped before any is delivered.
    const ven1 = vendor(ns, "--store", "flowers-r-us", "--count", "3");
    const orders = await ven1.lines(NEW_ORDER, 3);
    expect(await ven1.stop()).toBe(0);
    expect(ven1.ids(THANKS)).toEqual([]);

    // The driver comes back and delivers all three while the vendor is away.
    const drv2 = driver(ns, "--id", "driver-7");
    expect(await drv2.lines(DELIVERED, 3)).toEqual(orders);

    // The vendor starts again: the missed thank-yous first, each once and in order, then its new order's.
    const ven2 = vendor(ns, "--store", "flowers-r-us", "--count", "1");
    expect(await ven2.exit()).toBe(0);
    const [newOrder] = ven2.ids(NEW_ORDER);
    expect(ven2.ids(THANKS)).toEqual([...orders, newOrder]);
    // One queue across events: each order's in-transit report comes right before its thank-you.
    expect(reports(ven2)).toEqual(
      [...orders, newOrder].flatMap((id) => [`in-transit ${id}`, `delivered ${id}`]),
    );

    // Everything was acked: a third start replays nothing.
    const ven3 = vendor(ns, "--store", "flowers-r-us", "--count", "1");
    expect(await ven3.exit()).toBe(0);
    expect(ven3.ids(THANKS)).toEqual(ven3.ids(NEW_ORDER));
    expect(await drv2.stop()).toBe(0);
  },
  TEST_TIMEOUT_MS,
);

test(
  "--group: drivers of one group share the pickups, each order is delivered by exactly one of them",
  async () => {
    const ns = "/caps-group";
    const drivers = [
      driver(ns, "--group", "drivers", "--id", "d1"),
      driver(ns, "--group", "drivers", "--id", "d2"),
    ];
    await Promise.all(drivers.map((d) => d.output("waiting for pickups (shared with group drivers)")));
    const ven = vendor(ns, "--store", "acme-widgets", "--count", "4");
    expect(await ven.exit()).toBe(0);
    const orders = ven.ids(NEW_ORDER);
    // Two drivers drive at once: the thank-yous follow their pace (on a busy machine, not the
    // order of the pickups), as with any competing consumers. Each order is thanked once.
    expect([...ven.ids(THANKS)].sort()).toEqual([...orders].sort());
    const delivered = drivers.flatMap((d) => d.ids(DELIVERED));
    expect([...delivered].sort()).toEqual([...orders].sort());
    expect(await Promise.all(drivers.map((d) => d.stop()))).toEqual([0, 0]);
  },
  TEST_TIMEOUT_MS,
);

test(
  "--help prints the usage and exits 0; an unknown flag prints it and exits 2",
  async () => {
    const helps = [new Cli("vendor", ["--help"]), new Cli("driver", ["-h"])];
    const bad = [new Cli("vendor", ["--nope"]), new Cli("driver", ["--delay"])];
    expect(await Promise.all(helps.map((c) => c.exit()))).toEqual([0, 0]);
    expect(helps[0]?.stdout).toMatch(/^Usage: queuehub-vendor/);
    expect(helps[0]?.stdout).toMatch(/--count <n>/);
    expect(helps[1]?.stdout).toMatch(/^Usage: queuehub-driver/);
    expect(helps[1]?.stdout).toMatch(/--group <name>/);

    expect(await Promise.all(bad.map((c) => c.exit()))).toEqual([2, 2]);
    expect(bad[0]?.stderr).toMatch(/Unknown option '--nope'/);
    expect(bad[0]?.stderr).toMatch(/Usage: queuehub-vendor/);
    expect(bad[1]?.stderr).toMatch(/--delay/);
    expect(bad.map((c) => c.stdout)).toEqual(["", ""]);
  },
  TEST_TIMEOUT_MS,
);

test(
  "a hub that is not running: the CLI says how to start it, keeps retrying, and stops cleanly",
  async () => {
    const drv = new Cli("driver", ["--url", "http://127.0.0.1:9"]);
    await drv.output("Start it with: npm start");
    expect(drv.stderr).toContain("cannot reach the hub at http://127.0.0.1:9");
    expect(await drv.stop("SIGTERM")).toBe(0);
    expect(drv.stdout).toContain("stopping (SIGTERM)");
  },
  TEST_TIMEOUT_MS,
);
