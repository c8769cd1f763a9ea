// What ships is what src/ builds: dist/ is a fresh build, the copy that
// the ssehub binary embeds is dist/index.js, and the core stays small.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { build, root, embedded } from "../scripts/build.js";

const files = await build();

test("dist/ is what src/ builds (run npm run build in js/)", async () => {
  for (const [name, text] of Object.entries(files)) {
    const committed = await readFile(path.join(root, "dist", name), "utf8");
    assert.ok(committed === text, `dist/${name} differs from a fresh build of src/: run npm run build in js/`);
  }
});

test("cmd/ssehub/web/ssekit-client.js is dist/index.js (run npm run build in js/)", async () => {
  assert.ok((await readFile(embedded, "utf8")) === files["index.js"], "the copy the hub embeds differs from the build");
});

test("the core is at most 4 KB minified and gzipped", (t) => {
  const size = gzipSync(files["index.js"], { level: 9 }).length;
  t.diagnostic(`index.js: ${files["index.js"].length} bytes minified, ${size} gzipped; react.js: ${gzipSync(files["react.js"], { level: 9 }).length} gzipped`);
  assert.ok(size <= 4096, `${size} bytes`);
  // It is the whole client: no import left for a browser to resolve.
  assert.doesNotMatch(files["index.js"], /\bimport\b/);
});
