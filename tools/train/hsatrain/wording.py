"""Varied wordings of personal facts and their questions (task "facts2").

tasks.RELATIONS has five fact and five question templates per relation; a model trained on them
learns the templates. Here each relation has more wordings, and every fact and question is
further varied at random: the register (a lead-in such as "By the way," or "Note to self:"),
the person (first person, or the user's words quoted in a conversation turn "user: ..." with an
"assistant: ..." reply), and content words replaced by WordNet synonyms (hsatrain.lexdb).

Held out of training entirely, for evaluate.py to report separately:
  - the relations of HELDOUT_RELS (their facts and questions never appear in training);
  - in every other relation, the wordings whose index is 3 modulo 4 (facts and questions).
Facts of kinds that no training file names at all are in hsatrain.evalsets, which training code
never imports.
"""

# name, values, fact wordings, question wordings
RELS = [
    ("pet", ["Rex", "Bella", "Luna", "Milo", "Ziggy", "Pepper", "Nala", "Biscuit"],
     ["My dog is called {v}.", "We named our puppy {v}.", "{v} is the name of my dog.",
      "I take {v}, my dog, to the park.", "Our dog {v} sleeps on the sofa.", "I got a dog and called him {v}.",
      "The dog at my place answers to {v}.", "My four-legged friend is {v}."],
     ["What's my dog called?", "Remind me of my puppy's name.", "What name does my dog have?",
      "Who is my dog?", "What did we call the puppy?", "Tell me the name of my pet."]),
    ("birthplace", ["Lisbon", "Oslo", "Nairobi", "Kyoto", "Krakow", "Hanoi", "Cusco", "Bergen"],
     ["I was born in {v}.", "{v} is where I was born.", "My birth city is {v}.", "I'm originally from {v}.",
      "I came into the world in {v}.", "My birth certificate says {v}.", "I grew up in {v}, where I was born.",
      "Home for me is {v}; I was born there."],
     ["Where was I born?", "Which city am I from originally?", "What is my city of birth?",
      "Where do I come from?", "Remind me where I was born.", "In what city did I grow up?"]),
    ("job", ["carpenter", "nurse", "pilot", "librarian", "chemist", "baker", "dentist", "translator"],
     ["I work as a {v}.", "I'm a {v} by trade.", "My job: {v}.", "I make my living as a {v}.",
      "I've been a {v} for ten years.", "At work I am a {v}.", "I trained to be a {v} and still am one.",
      "My occupation is {v}."],
     ["What do I do for a living?", "What's my job?", "What is my occupation?", "What work do I do?",
      "Which trade am I in?", "What did I train as?"]),
    ("car", ["Toyota", "Volvo", "Subaru", "Mazda", "Skoda", "Peugeot", "Renault", "Kia"],
     ["I drive a {v}.", "My car is a {v}.", "I own a {v}.", "I bought a used {v} last year.",
      "I get around in my {v}.", "Our family car is a {v}.", "I parked my {v} outside.",
      "The car I drive is made by {v}."],
     ["What car do I drive?", "Which make is my car?", "What do I drive?", "What brand of car do I own?",
      "What did I buy last year to drive?", "What car does my family have?"]),
    ("sister", ["Alice", "Maria", "Sofia", "Hannah", "Nora", "Ingrid", "Priya", "Yuki"],
     ["My sister is {v}.", "I have a sister, {v}.", "{v} is my sister.", "My sister's called {v}.",
      "I visited my sister {v} yesterday.", "My big sister {v} phoned me.", "{v}, my sister, lives abroad.",
      "My only sister goes by {v}."],
     ["What is my sister's name?", "Who is my sister?", "What's my sister called?",
      "Which sister did I visit?", "Who phoned me, my sister?", "Name my sister."]),
    ("food", ["lasagna", "sushi", "paella", "curry", "ramen", "tacos", "risotto", "dumplings"],
     ["My favourite food is {v}.", "I love {v}.", "Nothing beats {v} for me.", "I could eat {v} every day.",
      "{v} is my favourite meal.", "Give me {v} any day.", "My best-loved dish is {v}.",
      "When I eat out I order {v}."],
     ["What is my favourite food?", "What do I like to eat most?", "Which dish do I love?",
      "What's my favourite meal?", "What do I order when I eat out?", "Which food could I eat daily?"]),
    ("instrument", ["violin", "piano", "cello", "trumpet", "flute", "saxophone", "harp", "banjo"],
     ["I play the {v}.", "My instrument is the {v}.", "I've played {v} since school.",
      "I practise the {v} every evening.", "I take {v} lessons.", "I'm learning the {v}.",
      "In my band I play {v}.", "The {v} is the instrument I play."],
     ["What instrument do I play?", "Which instrument am I learning?", "What do I practise in the evening?",
      "What do I play in my band?", "Which lessons do I take?", "Which instrument is mine?"]),
    ("language", ["Portuguese", "Finnish", "Swahili", "Korean", "Dutch", "Turkish", "Hebrew", "Tagalog"],
     ["My first language is {v}.", "I speak {v} at home.", "I grew up speaking {v}.",
      "{v} is my mother tongue.", "My parents spoke {v} with me.", "At home we talk in {v}.",
      "I dream in {v}.", "I was raised speaking {v}."],
     ["What is my first language?", "Which language do I speak at home?", "What's my mother tongue?",
      "What language did I grow up with?", "In what language do I dream?", "Which language do we talk at home?"]),
    ("sport", ["tennis", "rugby", "cricket", "hockey", "badminton", "fencing", "rowing", "archery"],
     ["I play {v}.", "My sport is {v}.", "I do {v} on weekends.", "I train for {v} twice a week.",
      "I'm in a {v} club.", "I compete in {v}.", "Every Sunday I go to {v} practice.", "I love playing {v}."],
     ["What sport do I play?", "Which sport do I do?", "What do I train for?", "Which club am I in?",
      "What do I compete in?", "What practice do I go to on Sundays?"]),
    ("color", ["turquoise", "crimson", "lavender", "emerald", "maroon", "indigo", "magenta", "olive"],
     ["My favourite colour is {v}.", "I like {v} best.", "{v} is my colour.", "I'd paint everything {v}.",
      "I always wear {v}.", "My room is painted {v}.", "Of all colours I prefer {v}.", "I love the colour {v}."],
     ["What is my favourite colour?", "Which colour do I like best?", "What colour do I wear?",
      "What colour is my room?", "Which colour do I prefer?", "What's my colour?"]),
    ("allergy", ["peanuts", "penicillin", "shellfish", "pollen", "latex", "gluten", "eggs", "cats"],
     ["I'm allergic to {v}.", "I have an allergy to {v}.", "{v} give me a bad reaction.",
      "My doctor says I must avoid {v}.", "I can't be near {v}; allergy.", "I react badly to {v}.",
      "Allergy warning: {v}.", "I break out in hives from {v}."],
     ["What am I allergic to?", "What is my allergy?", "What must I avoid?", "What do I react badly to?",
      "What gives me hives?", "What did my doctor tell me to avoid?"]),
    ("team", ["Arsenal", "Celtic", "Benfica", "Ajax", "Juventus", "Porto", "Napoli", "Galatasaray"],
     ["I support {v}.", "My football team is {v}.", "I'm a {v} fan.", "I cheer for {v} every match.",
      "I have a {v} season ticket.", "{v} is my club.", "I never miss a {v} game.", "I follow {v}."],
     ["Which team do I support?", "What's my football club?", "Who do I cheer for?",
      "Which club do I follow?", "Whose games do I never miss?", "Which team am I a fan of?"]),
    ("street", ["Elm Street", "Mill Lane", "Harbour Road", "Station Avenue", "Church Row", "Park Crescent",
                "Bridge Street", "Orchard Way"],
     ["I live on {v}.", "My address is on {v}.", "Our house is on {v}.", "I moved to {v}.",
      "We rent a flat on {v}.", "Home is {v}.", "You can find my place on {v}.", "My street is {v}."],
     ["Which street do I live on?", "What is my street?", "Where is our house?", "Where did I move to?",
      "Where do we rent a flat?", "What's my address?"]),
    ("hobby", ["pottery", "knitting", "birdwatching", "origami", "gardening", "chess", "climbing", "baking"],
     ["My hobby is {v}.", "In my free time I do {v}.", "I spend weekends on {v}.", "I'm really into {v}.",
      "{v} is what I do to relax.", "I took up {v} recently.", "My pastime is {v}.", "I unwind with {v}."],
     ["What is my hobby?", "What do I do in my free time?", "How do I relax?", "What did I take up?",
      "What's my pastime?", "What am I into?"]),
]
# relations never shown in training
HELDOUT_RELS = [
    ("doctor", ["Dr Okafor", "Dr Lindqvist", "Dr Moreau", "Dr Tanaka", "Dr Brennan", "Dr Kowalski"],
     ["My doctor is {v}.", "I see {v} for check-ups.", "{v} is my GP.", "My family physician is {v}."],
     ["Who is my doctor?", "Who do I see for check-ups?", "Who is my GP?", "What is my physician's name?"]),
    ("school", ["Riverside High", "Oakwood Academy", "St Columba's", "Hillcrest School", "Northgate College"],
     ["I went to {v}.", "I graduated from {v}.", "My old school is {v}.", "I studied at {v}."],
     ["Which school did I go to?", "Where did I graduate?", "What is my old school?", "Where did I study?"]),
    ("drink", ["espresso", "chamomile", "lemonade", "kombucha", "cider", "matcha"],
     ["My favourite drink is {v}.", "I always order {v}.", "I start the day with {v}.", "I drink {v} daily."],
     ["What is my favourite drink?", "What do I always order?", "How do I start the day?",
      "What do I drink daily?"]),
    ("flower", ["tulips", "orchids", "peonies", "sunflowers", "lilies", "dahlias"],
     ["My favourite flowers are {v}.", "I grow {v} in my garden.", "I love {v}.", "Buy me {v} please."],
     ["Which flowers do I like?", "What do I grow in my garden?", "What flowers should you buy me?",
      "Which flower is my favourite?"]),
]
LEADS = ["", "", "", "By the way, ", "Just so you know, ", "Note to self: ", "FYI: ", "Honestly, ",
         "For the record, ", "Oh, and ", "Remember this: "]
ASK_LEADS = ["", "", "", "Quick question: ", "Can you remind me: ", "Do you remember? ", "Hey, ",
             "I forgot. "]
REPLIES = ["Got it.", "Noted!", "Thanks for telling me.", "I'll remember that.", "Okay.", "Nice!"]


def held_wording(i):
    return i % 4 == 3


def vary(rng, text, th, leads, syn=0.25):
    """A lead-in and, with probability syn per word, a WordNet synonym of a lowercase word."""
    out = []
    for w in text.split(" "):
        core = w.strip(".,;:?!'")
        s = th.synonyms(core) if th is not None and core.isalpha() and core.islower() and len(core) > 3 else []
        out.append(w.replace(core, s[int(rng.integers(0, len(s)))]) if s and rng.random() < syn else w)
    text = " ".join(out)
    lead = leads[int(rng.integers(0, len(leads)))]
    if lead:
        lower = lead.endswith(", ") and text[:2] not in ("I ", "I'") and text[:1] != "{"
        text = lead + (text[0].lower() + text[1:] if lower else text)
    return text


def chat(rng, text, question):
    """A conversation turn: the user's words, sometimes with the assistant's reply."""
    if question:
        return "user: " + text + "\nassistant:"
    reply = " assistant: " + REPLIES[int(rng.integers(0, len(REPLIES)))] if rng.random() < 0.5 else ""
    return "user: " + text + reply


def make_facts2(rng, th, split="train", n=None):
    """Instance dict as TaskMaker.make returns. split: train (training relations and wordings),
    seen (evaluation with training wordings), heldout-wording, heldout-rel. Synonyms replace
    words in training only; the evaluation keeps its wordings (lead-ins and turns vary)."""
    syn = 0.2 if split == "train" else 0.0
    rels = HELDOUT_RELS if split == "heldout-rel" else RELS
    n = n or int(rng.integers(3, 6))
    ids = rng.choice(len(rels), size=min(n, len(rels)), replace=False)
    # distractors of held-out relations come from the training relations
    pool = [rels[i] for i in ids] if split != "heldout-rel" else \
        [rels[ids[0]]] + [RELS[i] for i in rng.choice(len(RELS), size=n - 1, replace=False)]
    needles, question, v0 = [], None, None
    conv = rng.random() < 0.4
    for j, rel in enumerate(pool):
        _, vals, facts, qs = rel

        def pick(lst, want_held):
            idx = [i for i in range(len(lst)) if held_wording(i) == want_held] \
                if rel not in HELDOUT_RELS else list(range(len(lst)))
            return lst[idx[int(rng.integers(0, len(idx)))]]
        held = split == "heldout-wording" and j == 0
        v = vals[int(rng.integers(0, len(vals)))]
        f = vary(rng, pick(facts, held), th, LEADS, syn).format(v=v)
        needles.append(chat(rng, f, False) if conv else f)
        if j == 0:
            v0 = v
            q = vary(rng, pick(qs, held), th, ASK_LEADS, syn)
            question = chat(rng, q, True) if conv else q
    return dict(needles=needles, question=question, parts=[(v0, 0)], sep=", ")
