// The delivery-semantics suite on the default durable store, one temp file per hub.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../src/store/sqlite.js";
import { startHub } from "./support/hub.js";
import { deliverySemantics } from "./support/semantics.js";

const dir = mkdtempSync(join(tmpdir(), "queuehub-hub-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

deliverySemantics("one hub, SQLite store", (overrides) =>
  startHub(overrides, SqliteStore.open({ file: join(dir, `hub-${++n}.db`), sync: "normal" })),
);
