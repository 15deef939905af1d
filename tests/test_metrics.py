"""The metrics endpoint, `hsamem stats --prometheus`, the audit trail and the slow-request log,
against the real hsamemd (run by tests/test_metrics.sh)."""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HSAMEMD, HSAMEM = os.environ["HSAMEMD"], os.environ["HSAMEM"]
TMP = tempfile.mkdtemp()
SOCK = "ipc://" + TMP + "/s"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def parse(text):
    """Strict 0.0.4 parse: {family: (type, [(name, labels, value)])}."""
    fams, cur = {}, None
    if not text.endswith("\n"):
        fail("exposition does not end with a newline")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            if name in fams:
                fail("family declared twice: " + name)
            cur = name
            fams[name] = [None, []]
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            if name != cur or typ not in ("counter", "gauge", "histogram"):
                fail("bad TYPE line: " + line)
            fams[name][0] = typ
        else:
            m = SAMPLE.match(line)
            if m is None:
                fail("bad sample line: " + line)
            name, labels, value = m.group(1), {}, float(m.group(4))
            if m.group(3):
                rest = m.group(3)
                while rest:
                    lm = LABEL.match(rest)
                    if lm is None:
                        fail("bad labels: " + line)
                    labels[lm.group(1)] = lm.group(2)
                    rest = rest[lm.end():]
            typ = fams[cur][0] if cur else None
            ok = {"counter": [cur], "gauge": [cur],
                  "histogram": [cur + "_bucket", cur + "_sum", cur + "_count"]}.get(typ, [])
            if name not in ok:
                fail("sample outside its declared family: " + line)
            if typ == "counter" and not cur.endswith("_total"):
                fail("counter not named _total: " + cur)
            fams[cur][1].append((name, labels, value))
    for fam, (typ, samples) in fams.items():
        if typ == "histogram":
            check_histogram(fam, samples)
    return fams


def check_histogram(fam, samples):
    series = {}
    for name, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        series.setdefault(key, {"b": []})
        if name.endswith("_bucket"):
            series[key]["b"].append((labels["le"], value))
        else:
            series[key][name[len(fam):]] = value
    for key, s in series.items():
        les = [float(le) for le, _ in s["b"]]
        counts = [c for _, c in s["b"]]
        if les != sorted(les) or les[-1] != float("inf"):
            fail("%s%s: bucket bounds out of order or no +Inf" % (fam, key))
        if counts != sorted(counts):
            fail("%s%s: buckets not monotonic" % (fam, key))
        if counts[-1] != s.get("_count") or "_sum" not in s:
            fail("%s%s: +Inf %s != _count %s" % (fam, key, counts[-1], s.get("_count")))


def value(fams, fam, sample=None, **labels):
    for name, l, v in fams[fam][1]:
        if (sample is None or name == sample) and all(l.get(k) == x for k, x in labels.items()):
            return v
    fail("no sample %s%s" % (fam, labels))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def hsamem(*args):
    return subprocess.run([HSAMEM, "-s", SOCK, "-t", "10", *args], check=True,
                          capture_output=True, text=True).stdout


def refuses_remote():
    r = subprocess.run([HSAMEMD, "-l", SOCK, "-d", TMP + "/st", "--check-config", "-o",
                        "metrics-listen=http://0.0.0.0:9464/metrics"],
                       capture_output=True, text=True)
    if r.returncode == 0 or "loopback" not in r.stderr:
        fail("a non-loopback metrics address was accepted: %d %s" % (r.returncode, r.stderr))
    r = subprocess.run([HSAMEMD, "-l", SOCK, "-d", TMP + "/st", "--check-config", "-o",
                        "metrics-listen=http://0.0.0.0:9464/metrics", "-o",
                        "metrics-allow-remote=yes"], capture_output=True, text=True)
    if r.returncode != 0:
        fail("metrics-allow-remote did not allow it: " + r.stderr)


def main():
    refuses_remote()
    url = "http://127.0.0.1:%d/metrics" % free_port()
    log = open(TMP + "/log", "w")
    d = subprocess.Popen([HSAMEMD, "-l", SOCK, "-d", TMP + "/st", "-o", "metrics-listen=" + url,
                          "-o", "slow-request=1ms", "-o", "log-level=info"], stderr=log)
    try:
        for _ in range(100):
            if subprocess.run([HSAMEM, "-s", SOCK, "-t", "1", "ping"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        with urllib.request.urlopen(url) as r:
            if not r.headers["Content-Type"].startswith("text/plain; version=0.0.4"):
                fail("content type " + r.headers["Content-Type"])
            before = parse(r.read().decode())
        hsamem("append", "alice", "hello metrics")
        hsamem("append", "alice", "and again")
        subprocess.run([HSAMEM, "-s", SOCK, "entries", "nobody"], capture_output=True)
        after = parse(urllib.request.urlopen(url).read().decode())
        if value(after, "hsamem_requests_total", op="append") != \
                value(before, "hsamem_requests_total", op="append") + 2:
            fail("append counter did not grow by 2")
        if value(after, "hsamem_errors_total", code="ENOUSER") < 1:
            fail("ENOUSER not counted")
        if value(after, "hsamem_memory_entries", memory="alice") != 2:
            fail("alice's entries")
        if value(after, "hsamem_commit_batch_size", "hsamem_commit_batch_size_count") < 2:
            fail("commit batches not counted")
        value(after, "hsamem_backend_info", backend="cpu")
        cli = parse(hsamem("stats", "--prometheus"))
        if set(cli) != set(after):
            fail("families differ: %s" % (set(cli) ^ set(after)))
        hsamem("delete", "alice")
        # a request that takes more than the 1 ms limit on any machine: 10,000 words to encode
        hsamem("append", "bob", " ".join("word%d" % (i % 997) for i in range(10000)))
        time.sleep(0.2)
    finally:
        d.terminate()
        d.wait()
        log.close()
    text = open(TMP + "/log").read()
    uid = "uid %d" % os.getuid()
    for want in (r"audit: append to memory 'alice' by %s" % uid,
                 r"audit: delete of memory 'alice' by %s .*: ok" % uid,
                 r"slow request: \w+ of memory .* took [0-9.]+ ms \(queue"):
        if re.search(want, text) is None:
            fail("no log line matching %r in:\n%s" % (want, text))
    print("test_metrics: ok")


main()
