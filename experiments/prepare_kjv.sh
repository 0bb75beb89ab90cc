#!/bin/bash
# The King James Bible (Debian bible-kjv) as the local corpus "kjv": one
# document per book, whole books held out by data/local_corpus.py's hash
# split. Usage: bash experiments/prepare_kjv.sh /tmp/kjv_data
# then: python -m launch.compare --suite=kjv --data_dir=/tmp/kjv_data ...
set -e
DATA_DIR=${1:-/tmp/kjv_data}
SOURCE=$(mktemp -d)
bible -f gen1:1-rev22:21 | .venv/bin/python -c '
import collections, re, sys
books = collections.defaultdict(list)
for line in sys.stdin:
  m = re.match(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$", line.rstrip("\n"))
  if m:
    books[m.group(1)].append(m.group(4))
for book, verses in books.items():
  open(sys.argv[1] + "/" + book + ".txt", "w").write("\n".join(verses))
print(len(books), "books")
' "$SOURCE"
.venv/bin/python -m data.prepare --corpus=local --name=kjv \
    --source_dir="$SOURCE" --data_dir="$DATA_DIR"
