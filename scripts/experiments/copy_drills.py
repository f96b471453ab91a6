#!/usr/bin/env python3
"""scripts/experiments/copy_drills.py — synthetic copying drills in the chat SFT shape ({"messages": [...]}).

Why: the 4 M-parameter default model learned the *shape* of a cited answer from the retrieval traces but cannot copy a
rare word from its context (it has no induction behaviour: a repeated list is not continued). Grounded answers are
copies — the subject from the question into the search query, the answer word from the passage into the reply — so
this script writes drills whose whole loss is on copying, from pseudo-words (random syllables, so no fact is taught):

  echo    'Repeat the word "zorbalin".'                      -> zorbalin
  list    'Repeat exactly: kel mowatri Fesh ...'              -> kel mowatri Fesh ...
  recall  'kel: mowatri; Fesh: durobin; ... What goes with "Fesh"?' -> durobin   (associative recall, the lookup
          an answer from a passage needs: "Nephridium n.; pl. Nephridia" -> Nephridia)
  entry   a dictionary-shaped entry of a pseudo-word and a question in the facts suite's four shapes, answered by
          copying the entry's word (no tool: the lookup itself)
  tool    the whole retrieval trace of `baleine tasks --suite agent` (search_documents call, tool result with 1-3
          passages, cited answer) for a pseudo-word: the subject is copied into the query and the answer out of the
          passage that is the word's entry, among distractor entries that may mention the word; the passage's rank is
          random, so neither the answer nor its position can be memorised

usage: copy_drills.py COUNT SEED OUT.jsonl [--exclude words.json] [--shares ECHO,LIST,RECALL,ENTRY[,TOOL]]
  --exclude: words never used (e.g. the held-out questions' subjects and answers); --shares default 0.15,0.35,0.3,0.2
  (four shares: no tool traces, the draws of the earlier phases; five: the tool share last)
"""
import json
import random
import sys

ONSETS = ["", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "cl", "dr",
          "fl", "gr", "pl", "pr", "sk", "sl", "st", "tr", "th", "sh", "ch", "ph", "qu"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou", "y"]
CODAS = ["", "", "", "n", "r", "s", "l", "m", "t", "x", "ck", "nd", "st", "rn", "ph"]
ENDINGS = ["us", "um", "a", "ia", "is", "on", "es", "ae", "i", "ity", "ness", "al", "ic", "ous", "ate", "er"]


def pseudo_word(rng, exclude):
    while True:
        w = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.5:
            w += rng.choice(ENDINGS)
        if 3 <= len(w) <= 16 and w not in exclude:
            return w.capitalize() if rng.random() < 0.2 else w


def msg(user, think, answer):
    return {"messages": [{"role": "user", "content": user},
                         {"role": "assistant", "reasoning_content": think, "content": answer}]}


def echo(rng, ex):
    w = pseudo_word(rng, ex)
    q = rng.choice(['Repeat the word "{}".', 'Say "{}".', 'Write "{}" back to me.', 'Copy this word: "{}".',
                    'What is the word in quotes: "{}"?']).format(w)
    return msg(q, 'The word is "{}".'.format(w), w)


def word_list(rng, ex):
    ws = [pseudo_word(rng, ex) for _ in range(rng.randint(2, 9))]
    sep = rng.choice([" ", ", "])
    text = sep.join(ws)
    return msg(rng.choice(["Repeat exactly: {}", "Copy this list: {}", "Say back: {}"]).format(text),
               "I copy the {} words in order.".format(len(ws)), text)


def recall(rng, ex):
    n = rng.randint(2, 8)
    keys = [pseudo_word(rng, ex) for _ in range(n)]
    vals = [pseudo_word(rng, ex) for _ in range(n)]
    sep = rng.choice(["; ", ", ", "\n"])
    table = sep.join("{}: {}".format(k, v) for k, v in zip(keys, vals))
    i = rng.randrange(n)
    q = "{}\n\nWhat goes with \"{}\"?".format(table, keys[i])
    return msg(q, 'The line "{}: {}" gives it.'.format(keys[i], vals[i]), vals[i])


def entry(rng, ex):
    w = pseudo_word(rng, ex).lower()
    shape = rng.randrange(4)
    if shape == 0:  # a GCIDE-shaped plural entry
        pl = w + rng.choice(["s", "es", "a", "i", "ae", "ta"])
        cap = w.capitalize()
        text = "{}  n.; pl. {}. [{}] {} {}.".format(cap, pl.capitalize(), pseudo_word(rng, ex).capitalize(),
                                                    "A kind of", pseudo_word(rng, ex))
        q, a, think = 'What is the plural of the noun "{}"?'.format(w), pl, 'The entry says "pl. {}".'.format(pl.capitalize())
        answer = 'The plural of "{}" is "{}".'.format(w, pl.capitalize())
    elif shape == 1:  # a WordNet-shaped synonym entry
        syn = pseudo_word(rng, ex).lower()
        pos = rng.choice(["noun", "verb", "adjective", "adverb"])
        text = "{}, {} ({}): {} {}".format(w, syn, pos, pseudo_word(rng, ex), pseudo_word(rng, ex))
        q = 'What is a synonym of the {} "{}"?'.format(pos, w)
        think, answer = 'The entry lists "{}" with "{}".'.format(syn, w), 'A synonym of "{}" is "{}".'.format(w, syn)
    elif shape == 2:  # part of speech
        pos = rng.choice(["noun", "verb", "adjective", "adverb"])
        text = "{} ({}): {} {}".format(w, pos, pseudo_word(rng, ex), pseudo_word(rng, ex))
        q = 'Which part of speech is the word "{}"?'.format(w)
        think = 'The entry marks "{}" as ({}).'.format(w, pos)
        answer = '"{}" is {} {}.'.format(w, "an" if pos[0] in "aeiou" else "a", pos)
    else:  # an acronym expansion
        words = [pseudo_word(rng, ex).capitalize() for _ in range(rng.randint(2, 4))]
        acro = "".join(x[0] for x in words).upper()
        exp = " ".join(words)
        text = "{}\n\n<{}> {} {}".format(acro, pseudo_word(rng, ex), exp, pseudo_word(rng, ex))
        q = "What does the acronym {} stand for?".format(acro)
        think, answer = 'The entry expands {} as "{}".'.format(acro, exp), "{} stands for {}.".format(acro, exp)
    user = "Entry:\n{}\n\n{}".format(text, q)
    return msg(user, think, answer)


SEARCH_TOOL = {"type": "function", "function": {
    "name": "search_documents", "description": "Searches the assistant's documents and returns the most relevant passages with their source.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "what to look for"}},
                   "required": ["query"], "additionalProperties": False}, "strict": True}}
OTHER_TOOLS = [
    {"type": "function", "function": {
        "name": "calculator",
        "description": "Exact arithmetic on rational numbers: + - * / ^ and parentheses, e.g. \"(2+3)*7/4\" or \"2^100\".",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string", "description": "the arithmetic expression"}},
                       "required": ["expression"], "additionalProperties": False}, "strict": True}},
    {"type": "function", "function": {
        "name": "current_datetime", "description": "The current date and time (UTC, or shifted by a UTC offset in minutes).",
        "parameters": {"type": "object", "properties": {"utc_offset_minutes": {"type": "integer"}}, "additionalProperties": False},
        "strict": True}}]
POS = ["noun", "verb", "adjective", "adverb"]
GLUE = ["a kind of", "the act of", "relating to", "one who", "a small", "having", "the state of being", "any of"]


def gloss(rng, ex, mention=None):
    words = [rng.choice(GLUE)] + [pseudo_word(rng, ex).lower() for _ in range(rng.randint(1, 4))]
    if mention:
        words.insert(rng.randint(1, len(words)), mention)
    return " ".join(words)


def passage_for(rng, ex, family, w, mention=None):
    """(document, text, answer, pos) of one entry headed by w; mention: another word its gloss names."""
    if family == "plural":
        pl = (w + rng.choice(["s", "es", "a", "i", "ae", "ta", "ies"])).capitalize()
        text = "{}  n.; pl. {}. [{}] {}.".format(w.capitalize(), pl, pseudo_word(rng, ex).capitalize(), gloss(rng, ex, mention))
        return "gcide: " + w.capitalize(), text, pl, "noun"
    if family == "acronym":
        return "foldoc: " + w, "{}\n\n<{}> {}.".format(w, pseudo_word(rng, ex).lower(), gloss(rng, ex, mention)), None, None
    pos = rng.choice(POS)
    synset = [w] + [pseudo_word(rng, ex).lower() for _ in range(rng.randint(1, 2) if family == "synonym" else 0)]
    rng.shuffle(synset)
    head = ", ".join(synset)
    syn = next(x for x in synset if x != w) if len(synset) > 1 else None
    return "wordnet: {} ({})".format(head, pos), "{} ({}): {}".format(head, pos, gloss(rng, ex, mention)), syn, pos


def tool_trace(rng, ex):
    family = rng.choice(["plural", "synonym", "pos", "acronym"])
    if family == "acronym":
        parts = [pseudo_word(rng, ex).capitalize() for _ in range(rng.randint(2, 4))]
        w, expansion = "".join(x[0] for x in parts).upper(), " ".join(parts)
        doc, text = "foldoc: " + w, "{}\n\n<{}> {}.".format(w, pseudo_word(rng, ex).lower(), expansion)
        answer, pos = expansion, None
    else:
        w = pseudo_word(rng, ex).lower()
        doc, text, answer, pos = passage_for(rng, ex, family, w)
    # distractors: other entries of the same or another family, a third of them naming w in their gloss
    passages = [(doc, text)]
    for _ in range(rng.choice([0, 1, 2, 2])):
        other = pseudo_word(rng, ex).lower()
        if family == "acronym" and rng.random() < 0.5:
            other = "".join(pseudo_word(rng, ex)[0] for _ in range(len(w))).upper()
        d, t, _, _ = passage_for(rng, ex, rng.choice(["plural", "synonym", "pos", family]) if family != "acronym" else
                                 rng.choice(["acronym", "plural", "pos"]), other, w if rng.random() < 0.33 else None)
        passages.append((d, t))
    rank = rng.randrange(len(passages))
    passages.insert(rank, passages.pop(0))
    scores = sorted((rng.uniform(7.0, 14.0) for _ in passages), reverse=True)
    result = {"passages": [{"document": d, "offset": 0, "score": s, "text": t} for (d, t), s in zip(passages, scores)],
              "query": w, "query_source": "model"}
    if family == "plural":
        question = 'What is the plural of the noun "{}"?'.format(w)
        says, reply = 'It gives the plural "{}".'.format(answer), 'The plural of "{}" is "{}"'.format(w, answer)
    elif family == "synonym":
        question = 'What is a synonym of the {} "{}"?'.format(pos, w)
        says, reply = 'It lists "{}".'.format(answer), 'A synonym of "{}" is "{}"'.format(w, answer)
    elif family == "pos":
        question = 'Which part of speech is the word "{}"?'.format(w)
        says, reply = "It marks it ({}).".format(pos), '"{}" is {} {}'.format(w, "an" if pos[0] in "aeiou" else "a", pos)
    else:
        question = "What does the acronym {} stand for?".format(w)
        says, reply = 'It says "{}".'.format(answer), "{} stands for {}".format(w, answer)
    n = rank + 1
    tools = [SEARCH_TOOL] if rng.random() < 0.5 else OTHER_TOOLS[:1] + OTHER_TOOLS[1:] + [SEARCH_TOOL]
    return {"kind": "retrieval", "tools": tools, "messages": [
        {"role": "user", "content": question},
        {"role": "assistant", "content": None,
         "reasoning_content": 'This is a question about "{}". I should look it up in the documents instead of guessing.'.format(w),
         "tool_calls": [{"id": "call_0", "type": "function", "function": {
             "name": "search_documents", "arguments": json.dumps({"query": w}, separators=(",", ":"))}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": json.dumps(result, separators=(",", ":"), sort_keys=True)},
        {"role": "assistant", "reasoning_content": 'Passage [{}] ({}) is the entry for "{}". {}'.format(n, doc, w, says),
         "content": "{} [{}].".format(reply, n)}]}


def main():
    count, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    exclude = set()
    if "--exclude" in sys.argv:
        exclude = {w.lower() for w in json.load(open(sys.argv[sys.argv.index("--exclude") + 1]))}
    shares = [0.15, 0.35, 0.3, 0.2]
    if "--shares" in sys.argv:
        shares = [float(x) for x in sys.argv[sys.argv.index("--shares") + 1].split(",")]
        assert len(shares) in (4, 5) and abs(sum(shares) - 1) < 1e-9, "--shares: four or five shares summing to 1"
    rng = random.Random(seed)
    kinds = list(zip([echo, word_list, recall, entry, tool_trace], shares))
    with open(out, "w") as f:
        for _ in range(count):
            u, acc = rng.random(), 0.0
            for fn, share in kinds:
                acc += share
                if u < acc:
                    break
            f.write(json.dumps(fn(rng, exclude)) + "\n")


if __name__ == "__main__":
    main()
