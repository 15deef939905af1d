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
  facts2     hsatrain.wording: more relations and wordings, lead-ins, conversation turns,
             synonyms; its held-out relations and wordings are evaluated separately
             (facts2-seen, facts2-heldout-wording, facts2-heldout-rel)
With hard_keys > 0 (train.py --hard-keys), that share of multikey instances draws distractor
keys that share the asked key's surface: one of its two words, or both words swapped.
With same_value > 0 (train.py --same-value), that share of multikey training instances gives
every distractor the asked value but for its last SAME_VALUE_TAIL digits (tail_value), so that
the answer's first digits cannot tell the needles apart: the retrieval positions up to there
must find the asked needle's chunk by its key, and the LM loss of the first differing digit
still needs that chunk. With word_values > 0 (train.py --word-values), that share of the training
instances of the word_tasks (default single and multikey; train.py --word-tasks adds multivalue
and multiquery) carry words instead of numbers ("the special magic word for {k}
is {v}", each needle its own word of the vocabulary), so that a run of digits stops marking
every needle that training asks about. With first_person > 0 (train.py --first-person), that
share of the fact tasks' training sequences (FIRST_PERSON_TASKS) get first-person lines of the
training text packed into some of their filler chunks (first_person_lines): the facts are in the
first person, the rest of the training text mostly not, so without them "I" and "my" alone can
mark a fact's chunk, and text dense in them (letters, dialogue, scripture) outranks the facts.
Evaluation instances (evaluate=True) never get any of these.
The question block is "<|q|> question <|a|> answer <|eos|>"; the retrieval
query of the token before each answer token should select that part's needle.
"""
import numpy as np

from .haystack import entry_starts
from .tokenizer import ATOK, EOS, QTOK
from .wording import make_facts2

# Personal-fact relations: (name, values, training fact templates, training question
# templates, evaluation fact template, evaluation question template, hard evaluation fact
# template, hard evaluation question template).
# The evaluation pair never appears in training. Its question shares no content word with its
# fact, but its words occur in training templates of the same relation, so a model that learned
# which wordings belong together can find the fact (synonyms, reordered wording, new template).
# The "hard" pair needs knowledge that no template teaches (e.g. "the animal that lives with us"
# for a dog); it is reported separately as facts-hard.
RELATIONS = [
    ("pet", ["Rex", "Bella", "Max", "Luna", "Charlie", "Daisy", "Rocky", "Milo", "Coco", "Buddy",
             "Ziggy", "Pepper", "Oscar", "Nala", "Biscuit", "Shadow"],
     ["My dog's name is {v}.", "I have a dog called {v}.", "Our family dog is named {v}.",
      "My pet puppy is called {v}.", "I adopted a puppy and named it {v}."],
     ["What is my dog's name?", "What did I name my dog?", "What is the name of my puppy?",
      "What is my pet called?", "Which name did I give my puppy?"],
     "I walk my puppy {v} every morning.", "What is my dog called?",
     "I walk my puppy {v} every morning.", "How do we call the animal that lives with us?"),
    ("birthplace", ["Lisbon", "Oslo", "Nairobi", "Denver", "Kyoto", "Porto", "Dublin", "Lima",
                    "Krakow", "Quebec", "Seville", "Tbilisi", "Hanoi", "Adelaide", "Bergen", "Cusco"],
     ["I was born in {v}.", "My birthplace is {v}.", "{v} is the city where I was born.",
      "My hometown is {v}.", "I come from {v}, the city of my birth."],
     ["Where was I born?", "What is my birthplace?", "In which city was I born?",
      "What is my hometown?", "Which city do I come from?"],
     "I was born and raised in {v}.", "Which city is my hometown?",
     "My mother gave birth to me in {v}.", "Which town do I originally come from?"),
    ("job", ["carpenter", "nurse", "pilot", "librarian", "chemist", "plumber", "lawyer", "baker",
             "dentist", "architect", "journalist", "electrician", "veterinarian", "translator"],
     ["I work as a {v}.", "My job is being a {v}.", "My profession is {v}.",
      "I am employed as a {v}.", "For work I am a {v}."],
     ["What is my job?", "What do I work as?", "What is my profession?",
      "Where am I employed and as what?", "What do I do for work?"],
     "I have been employed as a {v} for years.", "Which profession do I work in?",
     "I earn my living as a {v}.", "How do I make money every day?"),
    ("car", ["Toyota", "Volvo", "Subaru", "Honda", "Tesla", "Mazda", "Fiat", "Skoda", "Peugeot",
             "Hyundai", "Renault", "Kia"],
     ["I drive a {v}.", "My car is a {v}.", "The car I own is a {v}.",
      "I bought a {v} as my vehicle.", "My vehicle is a {v}."],
     ["What car do I drive?", "What is my car?", "Which car do I own?",
      "What vehicle do I have?", "Which vehicle did I buy?"],
     "Every day I drive to the office in my {v}.", "Which vehicle do I own?",
     "Every day I commute in my old {v}.", "What vehicle is parked in front of my house?"),
    ("sister", ["Alice", "Maria", "Sofia", "Emma", "Hannah", "Olivia", "Chloe", "Nora", "Ingrid",
                "Priya", "Yuki", "Fatima", "Clara", "Elena"],
     ["My sister is named {v}.", "My sister's name is {v}.", "I have a sister called {v}.",
      "My only sibling is my sister {v}.", "{v} is my older sister."],
     ["What is my sister's name?", "What is my sister called?", "Who is my sister?",
      "What is the name of my sibling?", "Who is my older sibling?"],
     "My younger sister {v} lives nearby.", "Who is my only sibling?",
     "{v} and I share the same parents; she is a girl.", "Which girl was raised with me as a sibling?"),
    ("food", ["lasagna", "sushi", "paella", "curry", "pancakes", "ramen", "tacos", "risotto",
              "falafel", "goulash", "dumplings", "burritos"],
     ["My favorite food is {v}.", "I love eating {v} more than anything.", "The food I like best is {v}.",
      "My favorite dish is {v}.", "I could eat {v} every day."],
     ["What is my favorite food?", "Which food do I love most?", "What food do I like best?",
      "What is my favorite dish?", "What dish do I love eating?"],
     "Nothing beats a plate of {v} for me; I love it.", "What dish do I like best?",
     "Nothing beats a plate of {v} for me.", "What would I choose for dinner if I could pick anything?"),
    ("instrument", ["violin", "piano", "cello", "trumpet", "guitar", "flute", "drums", "saxophone",
                    "harp", "clarinet", "banjo", "accordion"],
     ["I play the {v}.", "I have played the {v} since I was a child.", "My instrument is the {v}.",
      "My musical instrument is the {v}.", "I practice music on my {v}."],
     ["What instrument do I play?", "Which instrument do I play?", "What is my instrument?",
      "What musical instrument do I practice?", "On what do I play music?"],
     "In the evenings I practice on my {v}.", "Which musical instrument do I play?",
     "In the evenings I practice music on my {v}.", "What do I make music with?"),
    ("language", ["Portuguese", "Finnish", "Swahili", "Korean", "Greek", "Dutch", "Polish", "Turkish",
                  "Hebrew", "Hungarian", "Tagalog", "Icelandic"],
     ["At home I speak {v}.", "My native language is {v}.", "I grew up speaking {v}.",
      "My mother tongue is {v}.", "I speak {v} with my family."],
     ["What language do I speak at home?", "What is my native language?",
      "Which language did I grow up speaking?", "What is my mother tongue?",
      "Which language do I speak with my family?"],
     "My parents always spoke {v} with me.", "Which language is native to me?",
     "My parents talked to me in {v} when I was little.", "In which tongue was I raised?"),
    ("sport", ["tennis", "rugby", "cricket", "hockey", "volleyball", "badminton", "fencing", "rowing",
               "handball", "curling", "archery", "karate"],
     ["My favorite sport is {v}.", "I play {v} every weekend.", "The sport I love is {v}.",
      "On weekends I go to the {v} club.", "I am a member of a {v} team."],
     ["What is my favorite sport?", "Which sport do I play on weekends?", "What sport do I love?",
      "Which club do I go to?", "What team am I a member of?"],
     "On Saturdays you will find me at the {v} club.", "What sport do I play on weekends?",
     "On Saturdays you will find me at the {v} club.", "Which game keeps me busy on Saturdays?"),
    ("color", ["turquoise", "crimson", "lavender", "orange", "emerald", "maroon", "yellow", "indigo",
               "beige", "magenta", "olive", "silver"],
     ["My favorite color is {v}.", "The color I like most is {v}.", "I love the color {v}.",
      "I always paint my walls {v}.", "My favorite shade is {v}."],
     ["What is my favorite color?", "Which color do I like most?", "What color do I love?",
      "What shade do I paint my walls?", "Which shade do I like?"],
     "If I paint a wall, I always pick {v}.", "Which color do I love most?",
     "If I paint a wall, I always pick {v}.", "Which shade would I choose for my room?"),
]

NIAH_FACT = ["One of the special magic numbers for {k} is: {v}.",
             "The special magic number for {k} is {v}.",
             "Remember that the magic number of {k} is {v}."]
NIAH_Q = "What is the special magic number for {k} mentioned in the provided text?"
NIAH_WORD_FACT = ["One of the special magic words for {k} is: {v}.",
                  "The special magic word for {k} is {v}.",
                  "Remember that the magic word of {k} is {v}."]
NIAH_WORD_Q = "What is the special magic word for {k} mentioned in the provided text?"
NIAH_WORD_MV_Q = "What are all the special magic words for {k} mentioned in the provided text?"
NIAH_WORD_MQ_Q = "What are the special magic words for {ks} mentioned in the provided text?"
# the tasks that --word-values may give words (WORD_TASKS: its default, that of v18)
WORD_CAN = ("single", "multikey", "multivalue", "multiquery")
# the tasks whose answer parts may come in any order: the values of one key, needles alike but for
# the value, whose text order HSA (no positions) cannot see (train.py --free-order)
FREE_ORDER = ("multivalue",)
WORD_TASKS = ("single", "multikey")
# --first-person: the tasks whose training filler may carry first-person distractor lines
FIRST_PERSON_TASKS = ("facts", "facts2")
# the tasks --straddle may apply to: those of build_training_sample
STRADDLE_CAN = ("single", "multikey", "multivalue", "multiquery", "vartrack", "facts", "facts2")
FIRST_PERSON_WORDS = ("I", "my", "me", "My", "Me", "myself", "mine", "I'm", "I've", "I'll", "I'd")
NIAH_MV_Q = "What are all the special magic numbers for {k} mentioned in the provided text?"
NIAH_MQ_Q = "What are the special magic numbers for {ks} mentioned in the provided text?"
VT_Q = "Find all variables that are assigned the value {v} in the text above."

TASKS = ["single", "multikey", "multivalue", "multiquery", "vartrack", "facts"]
EVAL_TASKS = TASKS + ["facts-hard"]
# multikey-near: evaluation of multikey with distractor keys that share the asked key's surface
FACTS2_EVAL = ["facts2-seen", "facts2-heldout-wording", "facts2-heldout-rel"]
# --same-value: a distractor's value differs from the asked one's in its last 2 digits only (the
# first of them differs from the asked value's and every other distractor's; the last is random)
SAME_VALUE_TAIL = 2


class TaskMaker:
    def __init__(self, tok, S=64, thesaurus=None, hard_keys=0.0, same_value=0.0, word_values=0.0,
                 word_tasks=WORD_TASKS, straddle=0.0, straddle_tasks=STRADDLE_CAN, first_person=0.0,
                 fp_lines=()):
        self.tok = tok
        self.first_person, self.fp_lines = first_person, fp_lines
        self.S = S
        self.th, self.hard_keys, self.same_value = thesaurus, hard_keys, same_value
        self.word_values, self.word_tasks = word_values, tuple(word_tasks)
        self.straddle, self.straddle_tasks = straddle, tuple(straddle_tasks)
        words = []
        for i in range(256, tok.vocab_size):
            b = tok.vocab[i]
            if len(b) >= 5 and b[:1] == b" " and b[1:].isalpha() and b[1:].islower():
                words.append(b[1:].decode())
        self.words = sorted(set(words))

    def key(self, rng):
        return "-".join(self.words[i] for i in rng.integers(0, len(self.words), 2))

    def near_key(self, rng, k):
        """A key sharing k's surface: one of its words kept, or its two words swapped."""
        a, b = k.split("-")
        r = int(rng.integers(0, 3))
        other = self.words[int(rng.integers(0, len(self.words)))]
        return f"{b}-{a}" if r == 0 else (f"{a}-{other}" if r == 1 else f"{other}-{b}")

    @staticmethod
    def number(rng):
        return str(int(rng.integers(1000000, 10000000)))

    @staticmethod
    def tail_value(rng, v, used):
        """v with its last SAME_VALUE_TAIL digits redrawn: the first of them one not in used (the
        asked value's and the earlier distractors' digits at that place; the drawn digit is
        added), the rest random. The value then differs from v and from every earlier one."""
        n = SAME_VALUE_TAIL
        free = [d for d in "0123456789" if d not in used]
        d = free[int(rng.integers(0, len(free)))]
        used.add(d)
        return v[:-n] + d + "".join(str(int(x)) for x in rng.integers(0, 10, n - 1))

    @staticmethod
    def varname(rng):
        return "".join(chr(65 + int(c)) for c in rng.integers(0, 26, 5))

    def make(self, rng, task, evaluate=False):
        """Returns dict(needles=[str], question=str, parts=[(text, needle index)], sep=str)."""
        pick = lambda lst: lst[int(rng.integers(0, len(lst)))]
        fact_t = NIAH_FACT[:1] if evaluate else NIAH_FACT
        # no draw at word_values 0: the data stay those of the code before --word-values
        if (task in self.word_tasks and not evaluate and self.word_values > 0
                and rng.random() < self.word_values):
            return self.make_words(rng, task)
        if task in ("single", "multikey", "multikey-near"):
            k, v = self.key(rng), self.number(rng)
            needles = [pick(fact_t).format(k=k, v=v)]
            if task != "single":
                hard = task == "multikey-near" or (not evaluate and rng.random() < self.hard_keys)
                # no draw at same_value 0: the data stay those of the code before --same-value
                same = not evaluate and self.same_value > 0 and rng.random() < self.same_value
                used = {v[-SAME_VALUE_TAIL]}
                for _ in range(int(rng.integers(2, 5)) if not evaluate else 3):
                    dk = self.near_key(rng, k) if hard else self.key(rng)
                    ft = pick(fact_t)
                    dv = self.tail_value(rng, v, used) if same else self.number(rng)
                    needles.append(ft.format(k=dk, v=dv))
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
        if task == "facts2":
            return make_facts2(rng, self.th, "train")
        if task in FACTS2_EVAL:
            return make_facts2(rng, self.th, task[len("facts2-"):], n=5)
        if task in ("facts", "facts-hard"):
            n = int(rng.integers(3, 7)) if not evaluate else 5
            rel_ids = rng.choice(len(RELATIONS), size=n, replace=False)
            needles, v0 = [], None
            for j, ri in enumerate(rel_ids):
                _, vals, facts, qs, ef, eq, hf, hq = RELATIONS[ri]
                v = pick(vals)
                if not evaluate:
                    ft = pick(facts)
                else:
                    ft = hf if task == "facts-hard" else ef
                needles.append(ft.format(v=v))
                if j == 0:
                    v0 = v
                    question = pick(qs) if not evaluate else (hq if task == "facts-hard" else eq)
            return dict(needles=needles, question=question, parts=[(v0, 0)], sep=", ")
        raise ValueError(task)

    def word_values_for(self, rng, n, keys):
        """n distinct words of the vocabulary, none a word of the keys."""
        avoid = {w for k in keys for w in k.split("-")}
        vals = []
        while len(vals) < n:
            w = self.words[int(rng.integers(0, len(self.words)))]
            if w not in vals and w not in avoid:
                vals.append(w)
        return vals

    def make_words(self, rng, task):
        """A training instance of single, multikey, multivalue or multiquery whose values are
        words: each needle its own word of the vocabulary (none of them a word of an asked key);
        the needles and parts otherwise as in make; same_value does not apply."""
        pick = lambda lst: lst[int(rng.integers(0, len(lst)))]
        if task == "multivalue":
            k = self.key(rng)
            vals = self.word_values_for(rng, int(rng.integers(2, 5)), [k])
            return dict(needles=[pick(NIAH_WORD_FACT).format(k=k, v=v) for v in vals],
                        question=NIAH_WORD_MV_Q.format(k=k), parts=[(v, i) for i, v in enumerate(vals)],
                        sep=", ")
        if task == "multiquery":
            n = int(rng.integers(2, 5))
            keys = [self.key(rng) for _ in range(n)]
            vals = self.word_values_for(rng, n, keys)
            ks = ", ".join(keys[:-1]) + " and " + keys[-1]
            return dict(needles=[pick(NIAH_WORD_FACT).format(k=k, v=v) for k, v in zip(keys, vals)],
                        question=NIAH_WORD_MQ_Q.format(ks=ks), parts=[(v, i) for i, v in enumerate(vals)],
                        sep=", ")
        k = self.key(rng)
        n = 1 if task == "single" else 1 + int(rng.integers(2, 5))
        hard = task != "single" and rng.random() < self.hard_keys
        keys = [k] + [self.near_key(rng, k) if hard else self.key(rng) for _ in range(n - 1)]
        vals = self.word_values_for(rng, n, [k])
        needles = [pick(NIAH_WORD_FACT).format(k=dk, v=dv) for dk, dv in zip(keys, vals)]
        return dict(needles=needles, question=NIAH_WORD_Q.format(k=k), parts=[(vals[0], 0)], sep=", ")

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

    def needle_tokens(self, text, newline=True):
        ids = self.tok.encode((" " if not newline else "\n") + text + ("\n" if newline else ""))
        return np.array(ids[:self.S], np.int64)


def first_person_lines(tok, filler, min_len=6, max_len=40):
    """The lines of filler (training tokens) in the first person: those of min_len to max_len
    tokens, ending in a line feed (haystack.entry_starts: the entries of the evaluation), without
    eos, with a token that is one of FIRST_PERSON_WORDS (a word of its own: with its leading
    space or after a line feed, quote or parenthesis) followed by a token that starts with a
    space, an apostrophe or punctuation ("I/O", "I2C", "AXI" and "I:5" are not the first
    person). A list of token arrays."""
    V = tok.vocab_size
    fp, after, opens, spaced = (np.zeros(V, bool) for _ in range(4))
    for i in range(V):
        b = tok.decode_bytes([i])
        fp[i] = b.strip().decode("utf-8", "replace") in FIRST_PERSON_WORDS
        after[i] = b[:1] in (b" ", b"\n", b"'", b",", b".", b"!", b"?", b";", b'"')
        opens[i] = b[-1:] in (b" ", b"\n", b'"', b"(", b"'")
        spaced[i] = b[:1] == b" "
    hit = np.zeros(len(filler), np.int32)
    word = spaced[filler[1:-1]] | opens[filler[:-2]]
    hit[1:-1] = fp[filler[1:-1]] & after[filler[2:]] & word
    cut = entry_starts(tok, filler)                         # a line runs up to and with its end
    if not len(cut):
        return []
    start = np.concatenate([[0], cut[:-1]])
    n = cut - start
    hits = np.add.reduceat(hit, start)
    eos = np.add.reduceat((filler == EOS).astype(np.int32), start)
    keep = (n >= min_len) & (n <= max_len) & (hits > 0) & (eos == 0)
    return [filler[a:b].astype(np.int64) for a, b in zip(start[keep], cut[keep])]


def add_first_person(rng, toks, lines, S, n_chunks):
    """Packs first-person lines into 4-12 of the first n_chunks chunks of toks (each chunk from its
    start, as many whole lines as fit)."""
    for c in rng.choice(n_chunks, size=min(n_chunks, int(rng.integers(4, 13))), replace=False):
        p, end = int(c) * S, (int(c) + 1) * S
        while True:
            line = lines[int(rng.integers(0, len(lines)))]
            if p + len(line) > end:
                break
            toks[p:p + len(line)] = line
            p += len(line)


def find(seq, part):
    """The first index of part in seq, or -1."""
    n = len(part)
    for i in range(len(seq) - n + 1):
        if list(seq[i:i + n]) == part:
            return i
    return -1


def build_training_sample(maker, rng, filler, T, task):
    """One training sequence of T tokens with the task's needles hidden in filler text and
    the question block at a chunk boundary near the end. Returns tokens [T],
    ret_target [T] (chunk index or -1), ans_mask [T].

    A needle lies inside one chunk, or (for maker.straddle_tasks) with maker.straddle's
    probability across the boundary of its chunk and the next (cut after a random token; as a
    stream's text falls, and a question then needs the chunk whose window holds the key before
    it). The answer positions of a straddling needle are labelled with the chunk that holds the
    answer token each of them predicts (its part's last token for the position after it); a
    needle whose answer's tokens do not occur in its own tokens, or whose next chunk is not
    free, stays inside its chunk."""
    S = maker.S
    inst = maker.make(rng, task)
    block, src, ans, _ = maker.encode_block(inst)
    nblk = -(-len(block) // S)
    n_hay = T // S - nblk
    # the question starts at a random chunk boundary so the haystack length varies
    q_chunk = int(rng.integers(max(len(inst["needles"]) + 1, n_hay // 2), n_hay + 1))
    start = int(rng.integers(0, len(filler) - T - 1))
    toks = filler[start:start + T].astype(np.int64).copy()
    # no draw at first_person 0: the data stay those of the code before --first-person
    if (task in FIRST_PERSON_TASKS and maker.first_person > 0 and maker.fp_lines
            and rng.random() < maker.first_person):
        add_first_person(rng, toks, maker.fp_lines, S, q_chunk)
    tgt = np.full(T, -1, np.int64)
    amask = np.zeros(T, np.int64)
    n = len(inst["needles"])
    chunks = rng.choice(q_chunk, size=n, replace=False)
    ordered = [ni for _, ni in inst["parts"]] if task in ("multivalue", "vartrack") else []
    if ordered:                                  # these needles keep their text order
        chunks[ordered] = np.sort(chunks[ordered])
    order = np.arange(n)
    needle_chunk, split = {}, {}
    taken = set(int(c) for c in chunks)
    for ni, c in zip(order, chunks):
        nt = maker.needle_tokens(inst["needles"][ni], newline=bool(rng.integers(0, 2)))
        # no draw for a task outside straddle_tasks: its data stay those of straddle 0
        cross = (maker.straddle > 0 and task in maker.straddle_tasks
                 and rng.random() < maker.straddle)
        cut = int(rng.integers(1, len(nt))) if cross else 0
        part = [maker.tok.encode(" " + t) for t, i in inst["parts"] if i == ni][:1] if cross else []
        j0 = find(nt, part[0]) if part else 0
        if cross and c + 1 < q_chunk and int(c) + 1 not in taken and j0 >= 0:
            off = S - cut
            taken.add(int(c) + 1)
            if part:
                split[int(ni)] = (int(c) * S + off + j0, len(part[0]))
        else:
            off = int(rng.integers(0, S - len(nt) + 1))
        toks[c * S + off:c * S + off + len(nt)] = nt
        needle_chunk[int(ni)] = int(c)
    p0 = q_chunk * S
    L = min(len(block), T - p0)
    toks[p0:p0 + L] = block[:L]
    tgt[p0:p0 + L] = [needle_chunk[s] if s >= 0 else -1 for s in src[:L]]
    for ni, (at, npart) in split.items():
        r = -1
        for t in range(L):
            r = r + 1 if src[t] == ni else -1
            if r >= 0:
                tgt[p0 + t] = (at + min(r, npart - 1)) // S
    amask[p0:p0 + L] = ans[:L]
    return toks, tgt, amask
