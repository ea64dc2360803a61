// Validate AsyncAPI documents with the official parser; print a JSON report; exit 1 on any error.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
const report = {};
let errors = 0;
for (const file of process.argv.slice(2)) {
  const { diagnostics } = await parser.parse(readFileSync(file, "utf8"));
  const bad = diagnostics.filter((d) => d.severity === 0);
  errors += bad.length;
  report[file] = bad.map((d) => `${d.path.join(".")}: ${d.message}`);
}
console.log(JSON.stringify({ errors, report }, null, 2));
process.exit(errors ? 1 : 0);
