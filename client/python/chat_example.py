#!/usr/bin/env python3
"""chat_example.py: a chat loop that remembers. Each message is appended to the user's memory in
hsamemd; before answering, the loop recalls the past turns that matter for the new message and
shows them (a chat app would put them into its model's prompt).

    export HSAMEM_SOCKET=ipc://$PWD/var/hsamemd.sock   # where hsamemd listens
    PYTHONPATH=client/python python3 client/python/chat_example.py alice

Type messages; an empty line or end of input quits. The memory outlives the program: run it again
and ask about something said before.
"""

import sys

import hsamem


def recall(mem, user, message, k=3):
    """The user's own past turns in the chunks most relevant to message, best chunk first."""
    try:
        hits = mem.query(user, message, k=k, max_entries=4)
    except hsamem.NoSuchUser:      # a new user: nothing to recall yet
        return []
    seen, turns = set(), []
    for hit in hits:
        for e in hit.entries:
            if e.role == "user" and e.seq not in seen:
                seen.add(e.seq)
                turns.append(e)
    return turns


def answer(message, turns):
    """Stands in for the language model: a real app sends the recalled turns as context."""
    if not turns:
        return "Noted. I will remember that."
    return "That reminds me of what you said before: \"%s\"" % turns[0].text


def main():
    user = sys.argv[1] if len(sys.argv) > 1 else "demo"
    with hsamem.Client() as mem:
        server = mem.ping()
        print("hsamemd %s at %s; talking as %s" % (server.server_version, mem.url, user))
        for line in sys.stdin:
            message = line.strip()
            if not message:
                break
            turns = recall(mem, user, message)
            for e in turns:
                print("  [recalled #%d %s] %s" % (e.seq, e.role, e.text))
            reply = answer(message, turns)
            print(reply)
            mem.append_many(user, [{"text": message, "role": "user"},
                                   {"text": reply, "role": "assistant"}])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except hsamem.HsamemError as e:
        sys.exit("chat_example: %s" % e)
