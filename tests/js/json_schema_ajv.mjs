// Validates constrained generations with ajv (an independent JSON-schema validator).
// Usage: node json_schema_ajv.mjs SCHEMAS.json SAMPLES.json
import fs from "node:fs";
import Ajv from "ajv";

const schemas = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const samples = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const ajv = new Ajv({ strict: false, allErrors: true });
const validators = schemas.map((s) => ajv.compile(s === "json_object" ? { type: "object" } : s));
let bad = 0;
for (const sample of samples) {
  let data;
  try {
    data = JSON.parse(sample.text);
  } catch (e) {
    bad++;
    console.log(`schema ${sample.schema} (${sample.source}): not JSON: ${JSON.stringify(sample.text)}`);
    continue;
  }
  const validate = validators[sample.schema];
  if (!validate(data)) {
    bad++;
    console.log(`schema ${sample.schema} (${sample.source}): ${ajv.errorsText(validate.errors)}: ${sample.text}`);
  }
}
const per = {};
for (const s of samples) per[s.source] = (per[s.source] || 0) + 1;
console.log(`ajv: ${samples.length - bad}/${samples.length} valid (${JSON.stringify(per)})`);
if (bad === 0 && samples.length > 0) console.log("all constrained outputs valid");
process.exit(bad ? 1 : 0);
