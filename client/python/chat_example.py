#!/usr/bin/env python3
"""chat_example.py: the memory of a chat app, to copy. Every turn, the user's and the assistant's,
is appended to the user's memory in hsamemd as it happens; before the assistant answers, the past
turns that matter for the new message are recalled, those below a relevance threshold dropped,
and shown (a real app puts them into its model's prompt, where answer() stands in for the model).

    export HSAMEM_SOCKET=ipc://$PWD/var/hsamemd.sock   # where hsamemd listens
    PYTHONPATH=client/python python3 client/python/chat_example.py alice [--min-score S] [-k K]

Type messages; an empty line or end of input quits. The memory outlives the program: run it again
and ask about something said before.

Each run is a session, with an id of its own. Turns carry their role (user, assistant) today; the
session, and entry-level recall with a threshold applied by the daemon, are passed on as soon as the
client library takes them (keyword arguments session= of append(), min_score= of query()): until
then turns carry no session and the threshold is applied here to the score of each recalled chunk.
"""

import argparse
import inspect
import sys
import time

import hsamem


def takes(fn, keyword):
    """Whether the client's method fn takes keyword (features that newer clients bring)."""
    try:
        return keyword in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class ChatMemory:
    """What a chat app needs of hsamem: remember each turn, recall the relevant past ones."""

    def __init__(self, client, user, session, min_score, k):
        self.mem, self.user, self.session = client, user, session
        self.min_score, self.k = min_score, k
        self.has_session = takes(client.append, "session")
        self.has_min_score = takes(client.query, "min_score")

    def remember(self, role, text):
        """Appends one turn, durably, before the conversation goes on."""
        extra = {"session": self.session} if self.has_session else {}
        return self.mem.append(self.user, text, role=role, **extra)

    def recall(self, message, exclude=()):
        """The past turns that matter for message, most relevant first, as (score, Entry);
        [] when nothing passes the threshold (or nothing is remembered yet)."""
        extra = {"min_score": self.min_score} if self.has_min_score else {}
        try:
            hits = self.mem.query(self.user, message, k=self.k, max_entries=4, **extra)
        except hsamem.NoSuchUser:  # a new user: nothing to recall yet
            return []
        seen, turns = set(exclude), []
        for hit in hits:
            if hit.score < self.min_score:
                continue
            for e in hit.entries:
                if e.seq not in seen and e.role in ("user", "assistant"):
                    seen.add(e.seq)
                    turns.append((hit.score, e))
        return turns


def answer(message, turns):
    """Stands in for the language model: a real app sends the recalled turns as context."""
    said = [e for _, e in turns if e.role == "user"]
    if not said:
        return "Noted. I will remember that."
    return "That reminds me of what you said before: \"%s\"" % said[0].text


def main():
    ap = argparse.ArgumentParser(description="A chat loop whose memory is hsamemd.")
    ap.add_argument("user", nargs="?", default="demo", help="whose memory (default demo)")
    ap.add_argument("--min-score", type=float, default=2.0,
                    help="recall only what scores at least this (default 2.0, for the lexical "
                         "encoder, whose score sums over the query words a passage holds)")
    ap.add_argument("-k", type=int, default=4, help="passages to recall (default 4)")
    a = ap.parse_args()
    session = "chat-%d" % int(time.time() * 1000)
    with hsamem.Client() as client:
        server = client.ping()
        memory = ChatMemory(client, a.user, session, a.min_score, a.k)
        print("hsamemd %s at %s; talking as %s, session %s%s" % (
            server.server_version, client.url, a.user, session,
            "" if memory.has_session else " (this client keeps no sessions yet)"))
        this_session = set()
        for line in sys.stdin:
            message = line.strip()
            if not message:
                break
            turns = memory.recall(message, exclude=this_session)
            if not turns:
                print("  (nothing relevant remembered)")
            for score, e in turns:
                print("  [recalled #%d %s, %.2f] %s" % (e.seq, e.role, score, e.text))
            this_session.add(memory.remember("user", message).first_seq)
            reply = answer(message, turns)
            print(reply)
            this_session.add(memory.remember("assistant", reply).first_seq)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except hsamem.HsamemError as e:
        sys.exit("chat_example: %s" % e)
