"""A synthetic long-range recall corpus on which memory measurably matters.

Glossary of shapes:
- C: characters in one document, uniform in [C/2, 3C/2) for C =
  `document_chars`.
- F: facts stated per document.

Each document opens by stating F random facts ("key qhzw is 407613."), then
runs filler sentences drawn from a small word list, and only after
`min_recall_gap` characters starts to repeat the facts ("recall key qhzw is
407613.") between filler paragraphs.  The six value digits of a recall
cannot be predicted from anything inside the current segment or window, so
a model without long-term memory pays log(10) nats per digit there, while a
model that remembers the opening pays almost nothing.  The filler is
learnable, so losses elsewhere fall as with ordinary text.

Documents are generated on demand from (seed, index), so the corpus needs no
download and no storage and is identical on every host and every run.
"""

import dataclasses
import re
import string

import numpy as np

_WORDS = (
    "the of and to in a is that for it as was with be by on not he this are "
    "or his from at which but have an they you were her she there been one "
    "all we their has would when if so no will more up out some into time"
).split()
_KEY_LETTERS = 4
_VALUE_DIGITS = 6
_FACT = re.compile(r"(recall )?key ([a-z]{4}) is (\d{6})\.")


@dataclasses.dataclass(frozen=True)
class Fact:
  """One fact statement or recall found in a document."""

  key: str
  value: str
  position: int  # Character offset of the statement in the document.
  is_recall: bool


class SyntheticDocuments:
  """`num_documents` recall documents, document i made from rng([seed, i])."""

  def __init__(self, num_documents: int, *, seed: int = 0,
               document_chars: int = 32768, num_facts: int = 16,
               min_recall_gap: int = 8192):
    if 2 * min_recall_gap >= document_chars:
      raise ValueError(f"min_recall_gap {min_recall_gap} must be below half "
                       f"of document_chars {document_chars}, or the shortest "
                       "documents recall no fact.")
    self._num_documents = num_documents
    self._seed = seed
    self._document_chars = document_chars
    self._num_facts = num_facts
    self._min_recall_gap = min_recall_gap

  def __len__(self) -> int:
    return self._num_documents

  def __getitem__(self, index: int) -> str:
    if not 0 <= index < self._num_documents:
      raise IndexError(f"Document {index} outside [0, {self._num_documents}).")
    rng = np.random.default_rng([self._seed, index])
    facts = _random_facts(rng, self._num_facts)
    parts, last_mention, length = [], {}, 0
    for key, value in facts.items():
      parts.append(f"key {key} is {value}. ")
      last_mention[key] = length
      length += len(parts[-1])
    # Lengths vary so that rows reach document ends at different steps.
    target = rng.integers(self._document_chars // 2,
                          self._document_chars * 3 // 2)
    while length < target:
      parts.append(_filler_paragraph(rng))
      length += len(parts[-1])
      # Only facts not mentioned for min_recall_gap characters are recalled,
      # so no value can be copied from nearby text.
      due = [key for key, at in last_mention.items()
             if length - at >= self._min_recall_gap]
      if due:
        key = due[rng.integers(len(due))]
        last_mention[key] = length
        parts.append(f"recall key {key} is {facts[key]}.\n")
        length += len(parts[-1])
    return "".join(parts)


def find_facts(text: str) -> list[Fact]:
  """All statements and recalls in a synthetic document, in text order."""
  return [Fact(key=m.group(2), value=m.group(3), position=m.start(),
               is_recall=m.group(1) is not None)
          for m in _FACT.finditer(text)]


def _random_facts(rng: np.random.Generator, num_facts: int) -> dict[str, str]:
  letters = np.array(list(string.ascii_lowercase))
  facts = {}
  while len(facts) < num_facts:  # Keys must be unique to be recallable.
    key = "".join(rng.choice(letters, _KEY_LETTERS))
    facts[key] = "".join(map(str, rng.integers(0, 10, _VALUE_DIGITS)))
  return facts


def _filler_paragraph(rng: np.random.Generator) -> str:
  sentences = []
  for _ in range(rng.integers(4, 12)):
    words = rng.choice(_WORDS, rng.integers(6, 16))
    sentences.append(" ".join(words).capitalize() + ".")
  return " ".join(sentences) + "\n"
