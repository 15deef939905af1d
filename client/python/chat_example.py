#!/usr/bin/env python3
"""chat_example.py: the memory of a chat app, to copy. Every turn, the user's and the assistant's,
is appended to the user's memory in hsamemd as it happens; before the assistant answers, the past
turns that matter for the new message are recalled, those below a relevance threshold dropped,
and shown (a real app puts them into its model's prompt, where answer() stands in for the model).

    export HSAMEM_SOCKET=ipc://$PWD/var/hsamemd.sock   # where hsamemd listens
    PYTHONPATH=client/python python3 client/python/chat_example.py alice [--min-score S] [-k K]

Type messages; an empty line or end of input quits. The memory outlives the program: run it again
and ask about something said before.

Each run is a session: every turn is stored with its role and the scope session=ID. Recall is
entry-level (hsamem(7), ENTRY RECALL): the entries that answer, each scored by the HSA evidence on
its own tokens, with the daemon dropping those below --min-score; the filter keeps user and
assistant turns and leaves out the turns of the session that is going on (already in the prompt).
"""

import argparse
import sys
import time

import hsamem


class ChatMemory:
    """What a chat app needs of hsamem: remember each turn, recall the relevant past ones."""

    def __init__(self, client, user, session, min_score, k):
        self.mem, self.user, self.session = client, user, session
        self.min_score, self.k = min_score, k

    def remember(self, role, text):
        """Appends one turn, durably, before the conversation goes on."""
        return self.mem.append(self.user, text, role=role, scope={"session": self.session})

    def recall(self, message):
        """The past turns that matter for message, most relevant first, as (score, Entry);
        [] when nothing passes the threshold (or nothing is remembered yet)."""
        try:
            hits = self.mem.recall(self.user, message, k=self.k, min_score=self.min_score,
                                   where={"role": ["user", "assistant"]})
        except hsamem.NoSuchUser:  # a new user: nothing to recall yet
            return []
        return [(h.score, h.entry) for h in hits
                if not h.context and h.entry.scope.get("session") != self.session]


def answer(message, turns):
    """Stands in for the language model: a real app sends the recalled turns as context."""
    said = [e for _, e in turns if e.role == "user"]
    if not said:
        return "Noted. I will remember that."
    return "That reminds me of what you said before: \"%s\"" % said[0].text


def main():
    ap = argparse.ArgumentParser(description="A chat loop whose memory is hsamemd.")
    ap.add_argument("user", nargs="?", default="demo", help="whose memory (default demo)")
    ap.add_argument("--min-score", type=float, default=0.3,
                    help="recall only turns whose evidence is at least this (default 0.3; an "
                         "entry's score is the share of the HSA weight on its tokens, 0 to 1)")
    ap.add_argument("-k", type=int, default=4, help="chunks to search (default 4)")
    a = ap.parse_args()
    session = "chat-%d" % int(time.time() * 1000)
    with hsamem.Client() as client:
        server = client.ping()
        memory = ChatMemory(client, a.user, session, a.min_score, a.k)
        print("hsamemd %s at %s; talking as %s, session %s" % (
            server.server_version, client.url, a.user, session))
        for line in sys.stdin:
            message = line.strip()
            if not message:
                break
            turns = memory.recall(message)
            if not turns:
                print("  (nothing relevant remembered)")
            for score, e in turns:
                print("  [recalled #%d %s, %.2f] %s" % (e.seq, e.role, score, e.text))
            memory.remember("user", message)
            reply = answer(message, turns)
            print(reply)
            memory.remember("assistant", reply)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except hsamem.HsamemError as e:
        sys.exit("chat_example: %s" % e)
