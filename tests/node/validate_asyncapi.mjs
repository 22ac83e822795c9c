// Validate AsyncAPI documents with the reference parser, @asyncapi/parser.
//   node validate_asyncapi.mjs FILE...
// Prints each problem as JSON (severity 0 = error, 1 = warning); exits 1 if any document has an error.
import { readFileSync } from "node:fs";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"));
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of diagnostics) {
    console.log(JSON.stringify({ file, severity: d.severity, code: d.code, message: d.message, path: d.path }));
  }
  if (document === undefined || errors.length > 0) failed = true;
}
process.exit(failed ? 1 : 0);
