#!/usr/bin/env python3
"""Turn text shipped by Debian packages into JSONL documents ({"text": ...}) for `baleine data`.

Usage: extract.py --out DIR [--max-docs N] SOURCE...    (extract.py --list prints the sources)

Each source reads files installed by one Debian package (see SOURCES / docs/data.md) and writes
DIR/<source>.jsonl. Standard library only. Extraction is light on purpose: markup is stripped and
hard-wrapped lines are re-flowed; cleaning, dedup and filtering are the job of `baleine data`.
"""
import argparse
import glob
import gzip
import html.parser
import json
import os
import re
import subprocess
import sys

# ---- helpers ---------------------------------------------------------------------------------------------

def reflow(text):
    """Joins hard-wrapped lines of each paragraph; keeps blank lines and indented (code-like) blocks."""
    out, para = [], []
    for line in text.split("\n"):
        if not line.strip():
            if para:
                out.append(" ".join(para))
                para = []
            out.append("")
        else:
            para.append(line.strip())
    if para:
        out.append(" ".join(para))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def groups(items, size):
    for i in range(0, len(items), size):
        yield items[i:i + size]


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64num(s):
    v = 0
    for c in s:
        v = v * 64 + B64.index(c)
    return v


def dictd_entries(name):
    """Entries of a dictd database (/usr/share/dictd/NAME.{index,dict.dz}) in dictionary order."""
    base = f"/usr/share/dictd/{name}"
    spans = set()
    with open(base + ".index", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3 and not parts[0].startswith("00-database") and not parts[0].startswith("00database"):
                spans.add((b64num(parts[1]), b64num(parts[2])))
    with gzip.open(base + ".dict.dz", "rb") as f:
        data = f.read()
    for off, length in sorted(spans):
        yield data[off:off + length].decode("utf-8", errors="replace")


class HtmlText(html.parser.HTMLParser):
    """Visible text of an HTML page: block elements become line breaks, pre keeps its layout."""
    BLOCK = {"p", "div", "br", "li", "ul", "ol", "dt", "dd", "dl", "tr", "table", "h1", "h2", "h3", "h4", "h5",
             "h6", "pre", "blockquote", "section", "article", "title", "hr", "td", "th"}
    SKIP = {"script", "style", "head", "nav", "footer", "noscript"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip, self.pre = [], 0, 0

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class") or ""
        if tag in self.SKIP or (tag == "div" and any(k in cls for k in ("navheader", "navfooter", "toc", "sidebar"))):
            self.skip += 1 if tag in self.SKIP or tag == "div" else 0
            if tag == "div":
                self.parts.append(("div-skip",))
            return
        if tag == "div":
            self.parts.append(("div",))
        if tag == "pre":
            self.pre += 1
        if tag in self.BLOCK:
            self.parts.append("\n\n" if tag in ("p", "pre", "h1", "h2", "h3", "h4", "table", "blockquote") else "\n")
        if tag in ("h1", "h2", "h3", "h4") and not self.skip:
            self.parts.append("")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if tag == "div":
            # close the innermost div marker; if it was a skipped div, leave skip mode
            for i in range(len(self.parts) - 1, -1, -1):
                if isinstance(self.parts[i], tuple):
                    if self.parts[i][0] == "div-skip":
                        self.skip = max(0, self.skip - 1)
                    self.parts[i] = ""
                    break
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in self.BLOCK:
            self.parts.append("\n\n" if tag in ("p", "pre", "table", "blockquote", "h1", "h2", "h3", "h4") else "\n")

    def handle_data(self, data):
        if self.skip:
            return
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))

    def text(self):
        s = "".join(p for p in self.parts if isinstance(p, str))
        lines = [l.rstrip() for l in s.split("\n")]
        s = "\n".join(l if self.pre else l.lstrip() for l in lines)
        return re.sub(r"\n{3,}", "\n\n", s).strip()


def html_to_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        p = HtmlText()
        p.feed(f.read())
        p.close()
        return p.text()


def unique_files(pattern):
    """Sorted files matching pattern, each real file once (symlinked directories and aliases collapse)."""
    seen, out = set(), []
    for path in sorted(glob.glob(pattern, recursive=True)):
        real = os.path.realpath(path)
        if os.path.isfile(real) and real not in seen:
            seen.add(real)
            out.append(path)
    return out


def read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read()

# ---- sources ---------------------------------------------------------------------------------------------

CITATION = re.compile(r"^\s*\[[^\]\n]{1,40}\]\s*$", re.M)   # "[1913 Webster]", "[PJC]", "[WordNet 1.5]"
PRONUNCIATION = re.compile(r'\\[^\\\n]{1,80}\\,?|\s\((?=[^()\n]*["*\[])[^()\n]{1,60}\)')


def src_gcide():
    entries = []
    for e in dictd_entries("gcide"):
        e = CITATION.sub("", e)
        e = PRONUNCIATION.sub("", e)
        e = re.sub(r" +,", ",", re.sub(r"[{}]", "", e))
        entries.append(reflow(e))
    for g in groups(entries, 40):
        yield "\n\n".join(g)


def dict_glossary(name, per_doc):
    def src():
        entries = [reflow(re.sub(r"[{}]", "", e)) for e in dictd_entries(name)]
        for g in groups([e for e in entries if e], per_doc):
            yield "\n\n".join(g)
    return src


WN_POS = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}


def src_wordnet():
    by_file = {}
    for pos in ("noun", "verb", "adj", "adv"):
        with open(f"/usr/share/wordnet/data.{pos}", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):
                    continue  # licence header
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                lex_file, ss_type, w_cnt = int(fields[1]), fields[2], int(fields[3], 16)
                words = [re.sub(r"\([a-z]+\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(w_cnt)]
                gloss = gloss.strip()
                by_file.setdefault((pos, lex_file), []).append(
                    f"{', '.join(words)} ({WN_POS.get(ss_type, pos)}): {gloss}")
    for key in sorted(by_file):
        for g in groups(by_file[key], 60):
            yield "\n".join(g)


def src_fortunes():
    skip = {"ethnic"}
    for path in sorted(glob.glob("/usr/share/games/fortunes/*")):
        name = os.path.basename(path)
        if "." in name or name in skip or not os.path.isfile(path):
            continue
        items = [c.strip("\n") for c in re.split(r"^%$", read_text(path), flags=re.M)]
        items = [c for c in items if c.strip()]
        for g in groups(items, 25):
            yield "\n\n".join(g)


def text_files(pattern):
    def src():
        for path in unique_files(pattern):
            yield read_text(path)
    return src


def html_files(pattern, exclude=None):
    def src():
        for path in unique_files(pattern):
            if exclude and re.search(exclude, path):
                continue
            t = html_to_text(path)
            if t:
                yield t
    return src


def src_perl():
    for path in unique_files("/usr/share/perl/5.*/pod/*.pod"):
        try:
            out = subprocess.run(["pod2text", "--loose", path], capture_output=True, timeout=60).stdout
            yield out.decode("utf-8", errors="replace")
        except (OSError, subprocess.SubprocessError):
            yield read_text(path)


GROFF = "preconv -e UTF-8 | groff -t -man -Tutf8 -P-cbou -rLL=200n -rHY=0 -dAD=l 2>/dev/null"


def render_man(path):
    """Plain text of a man page (groff, no hyphenation or justification), header and footer lines dropped."""
    try:
        src = read_text(path)
        if src.lstrip().startswith(".so "):
            return ""  # alias of another page
        r = subprocess.run(["sh", "-c", GROFF], input=src.encode("utf-8"), capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = [l.rstrip() for l in r.stdout.decode("utf-8", errors="replace").split("\n")]
    body = [i for i, l in enumerate(lines) if l.strip()]
    if len(body) < 3:
        return ""
    return "\n".join(lines[body[0] + 1:body[-1]]).strip("\n")


def src_manpages_fr():
    import concurrent.futures
    # Symlinked aliases (at -> batch, atq, ...) would only be exact duplicates: render each page once.
    pages = [p for p in unique_files("/usr/share/man/fr/man[1-8]/*") if not os.path.islink(p)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for txt in pool.map(render_man, pages):
            if txt.strip():
                yield txt


# name -> (Debian package, language, generator of documents)
SOURCES = {
    "gcide": ("dict-gcide", "en", src_gcide),
    "jargon": ("dict-jargon", "en", dict_glossary("jargon", 12)),
    "foldoc": ("dict-foldoc", "en", dict_glossary("foldoc", 25)),
    "wordnet": ("wordnet-base", "en", src_wordnet),
    "fortunes": ("fortunes", "en", src_fortunes),
    "fortunes-min": ("fortunes-min", "en", src_fortunes),
    "python-docs": ("python3.11-doc", "en", text_files("/usr/share/doc/python3.11/html/_sources/**/*.rst.txt")),
    "perl-docs": ("perl-doc", "en", src_perl),
    "git-docs": ("git-doc", "en", text_files("/usr/share/doc/git-doc/**/*.txt")),
    "sqlite-docs": ("sqlite3-doc", "en", html_files("/usr/share/doc/sqlite3/**/*.html")),
    "postgresql-docs": ("postgresql-doc-15", "en", html_files("/usr/share/doc/postgresql-doc-15/html/*.html")),
    "debian-handbook-en": ("debian-handbook", "en", html_files("/usr/share/doc/debian-handbook/html/en-US/*.html")),
    "debian-handbook-fr": ("debian-handbook", "fr", html_files("/usr/share/doc/debian-handbook/html/fr-FR/*.html")),
    "debian-reference-en": ("debian-reference-en", "en", text_files("/usr/share/debian-reference/debian-reference.en.txt.gz")),
    "debian-reference-fr": ("debian-reference-fr", "fr", text_files("/usr/share/debian-reference/debian-reference.fr.txt.gz")),
    "debian-faq-fr": ("debian-faq-fr", "fr", text_files("/usr/share/doc/debian/FAQ/debian-faq.fr.txt.gz")),
    "maint-guide-fr": ("maint-guide-fr", "fr", html_files("/usr/share/doc/maint-guide-fr/html/*.html")),
    "developers-reference-fr": ("developers-reference-fr", "fr", text_files("/usr/share/developers-reference/fr/_sources/*.rst.txt")),
    "manpages-fr": ("manpages-fr", "fr", src_manpages_fr),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="output directory")
    ap.add_argument("--max-docs", type=int, default=0, help="stop each source after N documents (0 = all)")
    ap.add_argument("--list", action="store_true", help="print 'source package language' lines and exit")
    ap.add_argument("sources", nargs="*")
    a = ap.parse_args()
    if a.list:
        for name, (pkg, lang, _) in SOURCES.items():
            print(name, pkg, lang)
        return 0
    if not a.out or not a.sources:
        ap.error("--out and at least one SOURCE are required")
    os.makedirs(a.out, exist_ok=True)
    for name in a.sources:
        if name not in SOURCES:
            ap.error(f"unknown source '{name}' (see --list)")
        pkg, lang, gen = SOURCES[name]
        n = size = 0
        path = os.path.join(a.out, name + ".jsonl")
        with open(path, "w", encoding="utf-8") as out:
            for text in gen():
                if not text.strip():
                    continue
                out.write(json.dumps({"text": text, "source": name, "lang": lang}, ensure_ascii=False) + "\n")
                n += 1
                size += len(text.encode("utf-8"))
                if a.max_docs and n >= a.max_docs:
                    break
        if n == 0:
            print(f"[extract] warning: {name}: no documents (is {pkg} installed?)", file=sys.stderr)
        print(f"[extract] {name:<24} {n:>7} docs {size / 1e6:8.2f} MB  ({pkg}, {lang})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
