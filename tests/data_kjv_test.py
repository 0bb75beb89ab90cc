"""Real-text smoke test: the King James Bible as a local corpus of 66 books.

Needs Debian's bible-kjv (`apt-get install -y --no-install-recommends
bible-kjv`); skips with that hint when the `bible` program is absent.
"""

import collections
import os
import re
import shutil
import subprocess

from absl.testing import absltest

from data import local_corpus
from data import pipeline
from data import testing

_VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def kjv_books() -> dict[str, str]:
  """Book abbreviation -> its verses, one per line (66 books)."""
  verses = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], check=True,
                          capture_output=True, text=True).stdout
  books = collections.defaultdict(list)
  for line in verses.splitlines():
    match = _VERSE.match(line)
    if match:
      books[match.group(1)].append(match.group(4))
  return {book: "\n".join(lines) for book, lines in books.items()}


@absltest.skipIf(shutil.which("bible") is None,
                 "bible-kjv is not installed: apt-get install -y "
                 "--no-install-recommends bible-kjv")
class KingJamesBibleTest(absltest.TestCase):

  def test_every_book_streams_back_exactly_once(self):
    books = kjv_books()
    self.assertLen(books, 66)
    source, data_dir = testing.tempdir(self), testing.tempdir(self)
    for book, text in books.items():
      with open(os.path.join(source, f"{book}.txt"), "w") as f:
        f.write(text)
    local_corpus.prepare_local_corpus(source, name="kjv", data_dir=data_dir)
    read = []
    for split in local_corpus.SPLITS:
      segments = pipeline.make_stream("local:kjv", split, data_dir=data_dir,
                                      rows=8, segment_length=4096,
                                      training=False)
      read += [text for _, _, text in testing.read_documents(list(segments))]
    self.assertCountEqual(read, books.values())


if __name__ == "__main__":
  absltest.main()
