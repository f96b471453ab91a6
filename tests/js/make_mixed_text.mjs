// Deterministic mixed-script test text (>= 1 MB): English from the machine's licence texts, French, Chinese,
// Japanese, Korean, Arabic, code, emoji (ZWJ sequences, skin tones, flags), numbers of every length, runs of
// spaces/tabs/CRLF, combining characters, punctuation runs, and random code points from many Unicode blocks.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";

let seed = 20261122;
const rand = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000; };
const pick = (a) => a[Math.floor(rand() * a.length)];

let english = "";
try {
  for (const f of readdirSync("/usr/share/common-licenses")) {
    try { english += readFileSync(`/usr/share/common-licenses/${f}`, "utf8") + "\n"; } catch {}
  }
} catch {}
if (english.length < 1000) english = "The quick brown fox jumps over the lazy dog. ".repeat(200);

const snippets = [
  "Le cœur a ses raisons que la raison ne connaît point. Où êtes-vous allés ? « Déjà vu », dit-elle.",
  "L'été dernier, nous sommes allés à Montréal — c'était génial ! Ça coûte 12,50 € l'unité.",
  "深度求索发布了新的模型。人工智能正在改变世界，我们需要更高效的训练方法。",
  "東京は日本の首都です。ひらがなとカタカナ、漢字を混ぜて書きます。コンピューターはとても便利です。",
  "안녕하세요, 세계! 한국어 문장도 포함합니다.",
  "مرحبا بالعالم، هذه جملة باللغة العربية.",
  "Привет, мир! Это русский текст с цифрами 2026 года.",
  "def softmax(x):\n    m = max(x)\n    e = [math.exp(v - m) for v in x]\n    return [v / sum(e) for v in e]\n",
  "for (int i = 0; i < n; ++i) {\n\tif (x[i] != y[i]) return -1;\n}\r\n",
  "const f = async (a, b) => { return await fetch(`/api/${a}?b=${b}`); };",
  "👋🏽 Hello 👨‍👩‍👧‍👦 family, 🇫🇷🇯🇵 flags, 🧑🏻‍💻 coder, ❤️‍🔥 and 😀😃😄😁",
  "e\u0301 a\u0308 n\u0303 o\u0302\u0323 ﬁ ligature, Å vs A\u030A, ḱ̷̛",
  "Numbers: 0 7 42 123 1234 12345 123456 1234567 3.14159 -2.5e10 1,000,000 0x1F 2026-11-22",
  "!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}} <<< >>> ||| \\\\ ///",
  "  multiple   spaces\t\ttabs \t mixed\r\n\r\nCRLF lines\n\n\n\nnewlines   \n",
  "<｜User｜>What is 2+2?<｜Assistant｜><think>\nThe answer is 4.\n</think>4<｜end▁of▁sentence｜>",
];
const blocks = [[0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff], [0x900, 0x97f],
  [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x206f], [0x2190, 0x23ff], [0x2500, 0x27bf], [0x3040, 0x30ff],
  [0x4e00, 0x9fa5], [0x9fa6, 0x9fff], [0xac00, 0xd7a3], [0xff00, 0xffef], [0x1f300, 0x1f6ff], [0x1f900, 0x1f9ff]];

let out = "";
const words = english.split(/(\s+)/);
while (Buffer.byteLength(out, "utf8") < 1_100_000) {
  const r = rand();
  if (r < 0.45) {
    const start = Math.floor(rand() * Math.max(1, words.length - 400));
    out += words.slice(start, start + 50 + Math.floor(rand() * 300)).join("");
  } else if (r < 0.8) {
    out += pick(snippets);
  } else if (r < 0.9) {
    const [lo, hi] = pick(blocks);
    let s = "";
    for (let i = 0; i < 5 + rand() * 40; ++i) s += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
    out += s;
  } else {
    out += String(Math.floor(rand() * 10 ** Math.floor(1 + rand() * 15)));
  }
  out += pick([" ", "\n", "  ", "\t", "\r\n", "\n\n", "", ". "]);
}
writeFileSync(process.argv[2], out);
console.log(`wrote ${process.argv[2]}: ${Buffer.byteLength(out, "utf8")} bytes`);
