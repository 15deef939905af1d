#!/bin/sh
# Builds the benchmarks' English text: the kernel documentation of Debian's linux-doc package,
# one paragraph per line (an entry each), markup lines dropped. Usage: bench/corpus.sh [OUT]
# (default bench-data/english.txt). Installs linux-doc with apt-get when it is missing.
set -eu
out=${1:-bench-data/english.txt}
if ! dpkg-query -W -f='${Status}' linux-doc 2>/dev/null | grep -q "ok installed"; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-doc >/dev/null
fi
mkdir -p "$(dirname "$out")"
find /usr/share/doc/linux-doc/Documentation -name '*.rst.gz' | LC_ALL=C sort |
	xargs zcat |
	awk '
		/^[[:space:]]*$/ { if (p != "") print p; p = ""; next }
		/^[=~^"*+#`:.-]+[[:space:]]*$/ || /^\.\. / || /^[[:space:]]*[|+]/ { next }
		{ sub(/^[[:space:]]+/, ""); p = (p == "" ? $0 : p " " $0) }
		END { if (p != "") print p }
	' | awk 'length($0) >= 40' > "$out"
echo "$out: $(wc -l < "$out") paragraphs, $(wc -c < "$out") bytes"
