// Builds dist/ from src/ with esbuild (minified ES modules and the type
// declarations), and copies the core to cmd/ssehub/web/, where the
// ssehub binary embeds it for its demo page (go:embed cannot reach js/).
// The tests check that dist/ is what this builds and that the copy is the
// same, so that a change to src/ cannot ship without its build.
//
// node scripts/build.js           writes dist/ and the copy
// import { build } from it        returns the files without writing them
import { build as esbuild } from "esbuild";
import { writeFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// The copy the ssehub binary embeds, served at /assets/ssekit-client.js.
export const embedded = path.resolve(root, "../cmd/ssehub/web/ssekit-client.js");

const banner = "// @ssekit/client, built from js/src by `npm run build` in js/: edit the source, not this file.";

// bundle returns one entry point bundled and minified. The React entry
// keeps importing the core from ./index.js, so that an app that uses both
// gets one copy of it.
async function bundle(entry, external = []) {
  const out = await esbuild({
    entryPoints: [path.join(root, "src", entry)],
    bundle: true,
    format: "esm",
    target: "es2020",
    minify: true,
    external,
    banner: { js: banner },
    write: false,
    logLevel: "silent",
  });
  return out.outputFiles[0].text;
}

// build returns dist/'s files by name.
export async function build() {
  return {
    "index.js": await bundle("index.js"),
    "react.js": await bundle("react.js", ["react", "./index.js"]),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = await build();
  await mkdir(path.join(root, "dist"), { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(root, "dist", name), text);
  await writeFile(embedded, files["index.js"]);
  for (const name of Object.keys(files)) console.log("dist/" + name);
  console.log(path.relative(process.cwd(), embedded));
}
