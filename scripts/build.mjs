// Builds src/ into dist/: `tsc -b tsconfig.build.json` (JavaScript, declarations, source maps
// with the sources inlined), then the files the code reads at run time that tsc does not emit
// (src/**/*.lua) copied beside the compiled JavaScript, and the bin entries made executable.
// `tsc -b` skips the compile while dist is up to date (~0.5 s), so `npm start` and the CLIs
// build every time. `--clean` starts from an empty dist (npm pack does), so no output of a
// deleted or renamed source can ship.
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const ASSET = /\.lua$/;

if (process.argv.includes("--clean")) {
  rmSync(join(ROOT, "dist"), { recursive: true, force: true });
  rmSync(join(ROOT, "tsconfig.build.tsbuildinfo"), { force: true });
}

const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin/tsc");
const compiled = spawnSync(process.execPath, [tsc, "-b", "tsconfig.build.json"], {
  cwd: ROOT,
  stdio: "inherit",
});
if (compiled.status !== 0) {
  process.stderr.write("build: tsc failed (see above)\n");
  process.exit(compiled.status ?? 1);
}

for (const file of readdirSync(join(ROOT, "src"), { recursive: true, encoding: "utf8" })) {
  if (!ASSET.test(file)) continue;
  mkdirSync(dirname(join(ROOT, "dist", file)), { recursive: true });
  copyFileSync(join(ROOT, "src", file), join(ROOT, "dist", file));
}

const { bin } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
for (const target of Object.values(bin)) chmodSync(join(ROOT, target), 0o755);
