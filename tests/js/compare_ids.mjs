// Compares two token-id lists: argv[2] = baleine `tokenize` output (ids JSON on its last line), argv[3] = JSON array.
import { readFileSync } from "node:fs";
const lines = readFileSync(process.argv[2], "utf8").trimEnd().split("\n");
const ours = JSON.parse(lines[lines.length - 1]);
const theirs = JSON.parse(readFileSync(process.argv[3], "utf8"));
let first = -1;
for (let i = 0; i < Math.max(ours.length, theirs.length); ++i) if (ours[i] !== theirs[i]) { first = i; break; }
if (first < 0) {
  console.log(`identical: ${ours.length} tokens`);
} else {
  console.log(`MISMATCH at token ${first} of ${ours.length} (ours) / ${theirs.length} (reference)`);
  console.log(`ours:      ${JSON.stringify(ours.slice(Math.max(0, first - 3), first + 8))}`);
  console.log(`reference: ${JSON.stringify(theirs.slice(Math.max(0, first - 3), first + 8))}`);
  process.exit(1);
}
