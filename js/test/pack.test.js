// npm pack makes a package that installs and works: both entry points
// import in Node from the installed tarball, and a strict TypeScript app
// compiles against its types (test/types/consumer.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile, copyFile, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { root } from "../scripts/build.js";

const run = promisify(execFile);
const GUARD = 120_000;

test("npm pack: installs, imports, type-checks", { timeout: GUARD }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "ssekit-client-pack-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dir], { cwd: root, timeout: GUARD });
  const [packed] = JSON.parse(stdout);
  const files = packed.files.map((f) => f.path).sort();
  assert.deepEqual(files, ["README.md", "dist/index.js", "dist/react.js", "package.json", "src/index.d.ts", "src/react.d.ts"]);

  // An app that installs the tarball, and React from this folder's
  // node_modules (a link: nothing is downloaded).
  const app = path.join(dir, "app");
  await run("mkdir", [app]);
  await writeFile(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  await run(
    "npm",
    ["install", "--no-audit", "--no-fund", "--offline", "--loglevel=error", path.join(dir, packed.filename), path.join(root, "node_modules/react")],
    { cwd: app, timeout: GUARD },
  );
  const manifest = JSON.parse(await readFile(path.join(app, "node_modules/@ssekit/client/package.json"), "utf8"));
  assert.deepEqual(manifest.dependencies, undefined, "the package has runtime dependencies");

  const script = `
    import { connect, backoff } from "@ssekit/client";
    import { useStream } from "@ssekit/client/react";
    console.log(JSON.stringify([typeof connect, typeof backoff, typeof useStream]));
  `;
  const imported = await run("node", ["--input-type=module", "-e", script], { cwd: app, timeout: GUARD });
  assert.deepEqual(JSON.parse(imported.stdout), ["function", "function", "function"]);

  await copyFile(path.join(root, "test/types/consumer.ts"), path.join(app, "consumer.ts"));
  const tsc = path.join(root, "node_modules/typescript/bin/tsc");
  const args = ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--lib", "es2022,dom", "consumer.ts"];
  const checked = await run("node", [tsc, ...args], { cwd: app, timeout: GUARD }).catch((err) => err);
  assert.equal(checked.code ?? 0, 0, `tsc:\n${checked.stdout}`);
});
