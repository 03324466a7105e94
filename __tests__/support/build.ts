// Jest globalSetup: builds dist/ once before the suite, so the tests that spawn a hub or a CLI
// run the compiled JavaScript users run (`npm start`, the bins). Up to date, it takes ~0.5 s.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export default function build() {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the build
  execFileSync(process.execPath, ["scripts/build.mjs"], { cwd: root, env, stdio: "inherit" });
}
