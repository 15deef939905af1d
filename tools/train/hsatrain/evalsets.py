"""Facts of kinds that no training file names, with wordings of their own (evaluation only).

Training code never imports this module (tests/test_train.sh checks it), so these kinds, their
facts and their questions stay unseen. Each kind has one fact wording and two questions:
  rare    the question shares a rare word with the fact (BM25 can match on it)
  norare  the question shares no content word with the fact (only meaning links them)
evaluate.py reports them as tasks unseen-rare and unseen-norare: five facts of different kinds
are hidden, the first is asked for.
"""

# fact (with {v}), question sharing a rare word, question sharing none, values
KINDS = [
    ("The wifi password at the cabin is {v}.", "What is the cabin wifi password?",
     "How do I get online at our holiday place?", ["maple42", "otter77", "quartz19", "fjord88"]),
    ("I keep the spare key under the {v} by the back door.", "Where is the spare key?",
     "If I'm locked out, where should I look?", ["flowerpot", "doormat", "birdbath", "gnome"]),
    ("My blood type is {v}.", "What blood type do I have?",
     "What should the hospital know before a transfusion?", ["O negative", "AB positive", "B negative"]),
    ("The plumber's appointment is on {v}.", "When is the plumber's appointment?",
     "When is someone coming to fix the leaking pipe?", ["Tuesday", "Thursday", "Friday", "Monday"]),
    ("My locker combination is {v}.", "What is my locker combination?",
     "Which numbers open the box where I leave my gym clothes?", ["4-19-32", "7-23-11", "15-2-38"]),
    ("We are saving for a trip to {v} next summer.", "Where is our summer trip?",
     "Which country will we visit on holiday in a year?", ["Iceland", "Peru", "Japan", "Morocco"]),
    ("My landlord, {v}, fixes things slowly.", "Who is my landlord?",
     "Whom do I pay rent to?", ["Mr Haddad", "Mrs Petrov", "Mr Quinn", "Ms Abara"]),
    ("I take {v} tablets for my migraines.", "What do I take for migraines?",
     "Which medicine helps my headaches?", ["sumatriptan", "ibuprofen", "naproxen", "rizatriptan"]),
    ("Our anniversary dinner is booked at {v}.", "Where is the anniversary dinner booked?",
     "Which restaurant did we reserve for celebrating our marriage?", ["Chez Marcel", "Osteria Lupa",
                                                                        "The Copper Pot", "Sakura House"]),
    ("The kids' pediatrician recommended {v} for the rash.", "What did the pediatrician recommend?",
     "What cream should my son use on his skin?", ["zinc ointment", "hydrocortisone", "calamine lotion"]),
    ("I left my umbrella at {v}.", "Where did I leave my umbrella?",
     "Where is the thing that keeps me dry when it rains?", ["the library", "Anna's flat", "the dentist"]),
    ("My passport expires in {v}.", "When does my passport expire?",
     "Until when may I still travel abroad with my current document?", ["March 2027", "June 2026",
                                                                          "October 2028"]),
]


def make_unseen(rng, kind):
    """Instance dict as TaskMaker.make returns; kind is "rare" or "norare"."""
    ids = rng.choice(len(KINDS), size=5, replace=False)
    needles, v0, question = [], None, None
    for j, i in enumerate(ids):
        fact, qr, qn, vals = KINDS[i]
        v = vals[int(rng.integers(0, len(vals)))]
        needles.append(fact.format(v=v))
        if j == 0:
            v0, question = v, (qr if kind == "rare" else qn)
    return dict(needles=needles, question=question, parts=[(v0, 0)], sep=", ")
