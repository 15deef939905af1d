"""Synthetic memory tasks mixed into training and used by the evaluation.

A task instance is a list of needles (short texts hidden in filler text, each
inside one chunk), a question and an answer made of parts; each answer part
names the needle it comes from. Tasks:
  single     RULER single needle: one key, one 7-digit value
  multikey   the same, plus distractor needles of the same form with other keys
  multivalue one key with 2-4 values in separate needles; all are asked for
  multiquery 2-4 keys in separate needles; all are asked at once
  vartrack   variable tracking: VAR A = 12345, VAR B = VAR A, ...; the question
             asks for every variable holding the value
  facts      personal facts ("My dog's name is Rex.") with distractor facts of other
             relations; the question paraphrases the fact (other words, other
             template). Templates are split: the evaluation asks with wordings that
             training never shows.
The question block is "<|q|> question <|a|> answer <|eos|>"; the retrieval
query of the token before each answer token should select that part's needle.
"""
import numpy as np

from tokenizer import ATOK, EOS, QTOK

RELATIONS = [
    # name, values, fact templates, question templates; the last fact template
    # and the last question template are used only by the evaluation
    ("pet", ["Rex", "Bella", "Max", "Luna", "Charlie", "Daisy", "Rocky", "Milo", "Coco", "Buddy",
             "Ziggy", "Pepper", "Oscar", "Nala", "Biscuit", "Shadow"],
     ["My dog's name is {v}.", "I have a dog called {v}.", "Our family dog is named {v}.",
      "I walk my puppy {v} every morning."],
     ["What is my dog's name?", "What did I name my dog?", "What is the name of my puppy?",
      "How do we call the animal that lives with us?"]),
    ("birthplace", ["Lisbon", "Oslo", "Nairobi", "Denver", "Kyoto", "Porto", "Dublin", "Lima",
                    "Krakow", "Quebec", "Seville", "Tbilisi", "Hanoi", "Adelaide", "Bergen", "Cusco"],
     ["I was born in {v}.", "My birthplace is {v}.", "{v} is the city where I was born.",
      "My mother gave birth to me in {v}."],
     ["Where was I born?", "What is my birthplace?", "In which city was I born?",
      "Which town do I originally come from?"]),
    ("job", ["carpenter", "nurse", "pilot", "librarian", "chemist", "plumber", "lawyer", "baker",
             "dentist", "architect", "journalist", "electrician", "veterinarian", "translator"],
     ["I work as a {v}.", "My job is being a {v}.", "I am employed as a {v}.",
      "I earn my living as a {v}."],
     ["What is my job?", "What do I work as?", "What is my profession?",
      "How do I make money every day?"]),
    ("car", ["Toyota", "Volvo", "Subaru", "Honda", "Tesla", "Mazda", "Fiat", "Skoda", "Peugeot",
             "Hyundai", "Renault", "Kia"],
     ["I drive a {v}.", "My car is a {v}.", "The car I own is a {v}.",
      "Every day I commute in my old {v}."],
     ["What car do I drive?", "What is my car?", "Which car do I own?",
      "What vehicle is parked in front of my house?"]),
    ("sister", ["Alice", "Maria", "Sofia", "Emma", "Hannah", "Olivia", "Chloe", "Nora", "Ingrid",
                "Priya", "Yuki", "Fatima", "Clara", "Elena"],
     ["My sister is named {v}.", "My sister's name is {v}.", "I have a sister called {v}.",
      "{v} and I share the same parents; she is a girl."],
     ["What is my sister's name?", "What is my sister called?", "Who is my sister?",
      "Which girl was raised with me as a sibling?"]),
    ("food", ["lasagna", "sushi", "paella", "curry", "pancakes", "ramen", "tacos", "risotto",
              "falafel", "goulash", "dumplings", "burritos"],
     ["My favorite food is {v}.", "I love eating {v} more than anything.", "The food I like best is {v}.",
      "Nothing beats a plate of {v} for me."],
     ["What is my favorite food?", "Which food do I love most?", "What food do I like best?",
      "What dish would I choose for dinner if I could pick anything?"]),
    ("instrument", ["violin", "piano", "cello", "trumpet", "guitar", "flute", "drums", "saxophone",
                    "harp", "clarinet", "banjo", "accordion"],
     ["I play the {v}.", "I have played the {v} since I was a child.", "My instrument is the {v}.",
      "In the evenings I practice music on my {v}."],
     ["What instrument do I play?", "Which instrument do I play?", "What is my instrument?",
      "What do I make music with?"]),
    ("language", ["Portuguese", "Finnish", "Swahili", "Korean", "Greek", "Dutch", "Polish", "Turkish",
                  "Hebrew", "Hungarian", "Tagalog", "Icelandic"],
     ["At home I speak {v}.", "My native language is {v}.", "I grew up speaking {v}.",
      "My parents talked to me in {v} when I was little."],
     ["What language do I speak at home?", "What is my native language?", "Which language did I grow up speaking?",
      "In which tongue was I raised?"]),
    ("sport", ["tennis", "rugby", "cricket", "hockey", "volleyball", "badminton", "fencing", "rowing",
               "handball", "curling", "archery", "karate"],
     ["My favorite sport is {v}.", "I play {v} every weekend.", "The sport I love is {v}.",
      "On Saturdays you will find me at the {v} club."],
     ["What is my favorite sport?", "Which sport do I play on weekends?", "What sport do I love?",
      "Which game keeps me busy on Saturdays?"]),
    ("color", ["turquoise", "crimson", "lavender", "orange", "emerald", "maroon", "yellow", "indigo",
               "beige", "magenta", "olive", "silver"],
     ["My favorite color is {v}.", "The color I like most is {v}.", "I love the color {v}.",
      "If I paint a wall, I always pick {v}."],
     ["What is my favorite color?", "Which color do I like most?", "What color do I love?",
      "Which shade would I choose for my room?"]),
]

NIAH_FACT = ["One of the special magic numbers for {k} is: {v}.",
             "The special magic number for {k} is {v}.",
             "Remember that the magic number of {k} is {v}."]
NIAH_Q = "What is the special magic number for {k} mentioned in the provided text?"
NIAH_MV_Q = "What are all the special magic numbers for {k} mentioned in the provided text?"
NIAH_MQ_Q = "What are the special magic numbers for {ks} mentioned in the provided text?"
VT_Q = "Find all variables that are assigned the value {v} in the text above."

TASKS = ["single", "multikey", "multivalue", "multiquery", "vartrack", "facts"]


class TaskMaker:
    def __init__(self, tok, S=64):
        self.tok = tok
        self.S = S
        words = []
        for i in range(256, tok.vocab_size):
            b = tok.vocab[i]
            if len(b) >= 5 and b[:1] == b" " and b[1:].isalpha() and b[1:].islower():
                words.append(b[1:].decode())
        self.words = sorted(set(words))

    def key(self, rng):
        return "-".join(self.words[i] for i in rng.integers(0, len(self.words), 2))

    @staticmethod
    def number(rng):
        return str(int(rng.integers(1000000, 10000000)))

    @staticmethod
    def varname(rng):
        return "".join(chr(65 + int(c)) for c in rng.integers(0, 26, 5))

    def make(self, rng, task, evaluate=False):
        """Returns dict(needles=[str], question=str, parts=[(text, needle index)], sep=str)."""
        pick = lambda lst: lst[int(rng.integers(0, len(lst)))]
        fact_t = NIAH_FACT[:1] if evaluate else NIAH_FACT
        if task in ("single", "multikey"):
            k, v = self.key(rng), self.number(rng)
            needles = [pick(fact_t).format(k=k, v=v)]
            if task == "multikey":
                for _ in range(int(rng.integers(2, 5)) if not evaluate else 3):
                    needles.append(pick(fact_t).format(k=self.key(rng), v=self.number(rng)))
            return dict(needles=needles, question=NIAH_Q.format(k=k), parts=[(v, 0)], sep=", ")
        if task == "multivalue":
            k = self.key(rng)
            n = int(rng.integers(2, 5)) if not evaluate else 3
            vals = [self.number(rng) for _ in range(n)]
            needles = [pick(fact_t).format(k=k, v=v) for v in vals]
            return dict(needles=needles, question=NIAH_MV_Q.format(k=k),
                        parts=[(v, i) for i, v in enumerate(vals)], sep=", ")
        if task == "multiquery":
            n = int(rng.integers(2, 5)) if not evaluate else 3
            keys = [self.key(rng) for _ in range(n)]
            vals = [self.number(rng) for _ in range(n)]
            needles = [pick(fact_t).format(k=k, v=v) for k, v in zip(keys, vals)]
            ks = ", ".join(keys[:-1]) + " and " + keys[-1]
            return dict(needles=needles, question=NIAH_MQ_Q.format(ks=ks),
                        parts=[(v, i) for i, v in enumerate(vals)], sep=", ")
        if task == "vartrack":
            n = int(rng.integers(2, 5)) if not evaluate else 3
            names = [self.varname(rng) for _ in range(n)]
            v = str(int(rng.integers(10000, 100000)))
            needles = [f"VAR {names[0]} = {v}"] + [f"VAR {names[i]} = VAR {names[i - 1]}" for i in range(1, n)]
            # a distractor chain with another value
            d = [self.varname(rng) for _ in range(2)]
            dv = str(int(rng.integers(10000, 100000)))
            needles += [f"VAR {d[0]} = {dv}", f"VAR {d[1]} = VAR {d[0]}"]
            return dict(needles=needles, question=VT_Q.format(v=v),
                        parts=[(nm, i) for i, nm in enumerate(names)], sep=" ")
        if task == "facts":
            n = int(rng.integers(3, 7)) if not evaluate else 5
            rel_ids = rng.choice(len(RELATIONS), size=n, replace=False)
            needles, target = [], None
            for j, ri in enumerate(rel_ids):
                _, vals, facts, qs = RELATIONS[ri]
                ft = facts[-1:] if evaluate else facts[:-1]
                needles.append(pick(ft).format(v=pick(vals)))
            ri = rel_ids[0]
            val = needles[0]
            _, vals, facts, qs = RELATIONS[ri]
            # recover the value used in needle 0
            v0 = next(v for v in vals if v in val)
            qt = qs[-1:] if evaluate else qs[:-1]
            return dict(needles=needles, question=pick(qt), parts=[(v0, 0)], sep=", ")
        raise ValueError(task)

    def encode_block(self, inst):
        """Question block tokens and, per token, the needle index whose chunk the
        retrieval query at that position should select (-1: none), and the answer mask
        (positions whose next token is part of the answer or the final eos)."""
        tok = self.tok
        q = [QTOK] + tok.encode(" " + inst["question"].strip()) + [ATOK]
        ids, src = list(q), [-1] * len(q)
        for i, (text, ni) in enumerate(inst["parts"]):
            if i:
                sep = tok.encode(inst["sep"].rstrip(" ")) if inst["sep"].strip() else []
                ids += sep
                src += [-1] * len(sep)
            part = tok.encode(" " + text)
            src[-1] = ni              # the token before the part predicts its first token
            ids += part
            src += [ni] * len(part)
        ids.append(EOS)
        src.append(-1)
        # src[t] refers to predicting ids[t+1]; the last part token predicts the next
        # separator/eos from the same needle's context
        ans = [0] * len(ids)
        for t in range(len(q) - 1, len(ids) - 1):
            ans[t] = 1
        return np.array(ids, np.int64), np.array(src, np.int64), np.array(ans, np.int64), len(q)

    def needle_tokens(self, text, rng=None, newline=True):
        ids = self.tok.encode((" " if not newline else "\n") + text + ("\n" if newline else ""))
        return np.array(ids[:self.S], np.int64)


def build_training_sample(maker, rng, filler, T, task):
    """One training sequence of T tokens with the task's needles hidden in filler text and
    the question block at a chunk boundary near the end. Returns tokens [T],
    ret_target [T] (chunk index or -1), ans_mask [T]."""
    S = maker.S
    inst = maker.make(rng, task)
    block, src, ans, _ = maker.encode_block(inst)
    nblk = -(-len(block) // S)
    n_hay = T // S - nblk
    # the question starts at a random chunk boundary so the haystack length varies
    q_chunk = int(rng.integers(max(len(inst["needles"]) + 1, n_hay // 2), n_hay + 1))
    start = int(rng.integers(0, len(filler) - T - 1))
    toks = filler[start:start + T].astype(np.int64).copy()
    tgt = np.full(T, -1, np.int64)
    amask = np.zeros(T, np.int64)
    n = len(inst["needles"])
    chunks = rng.choice(q_chunk, size=n, replace=False)
    ordered = [ni for _, ni in inst["parts"]] if task in ("multivalue", "vartrack") else []
    if ordered:                                  # these needles keep their text order
        chunks[ordered] = np.sort(chunks[ordered])
    order = np.arange(n)
    needle_chunk = {}
    for ni, c in zip(order, chunks):
        nt = maker.needle_tokens(inst["needles"][ni], newline=bool(rng.integers(0, 2)))
        off = int(rng.integers(0, S - len(nt) + 1))
        toks[c * S + off:c * S + off + len(nt)] = nt
        needle_chunk[int(ni)] = int(c)
    p0 = q_chunk * S
    L = min(len(block), T - p0)
    toks[p0:p0 + L] = block[:L]
    tgt[p0:p0 + L] = [needle_chunk[s] if s >= 0 else -1 for s in src[:L]]
    amask[p0:p0 + L] = ans[:L]
    return toks, tgt, amask
