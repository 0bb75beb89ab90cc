"""Synthetic long-range recall corpora whose every knob is a config field.

Glossary of shapes:
- C: characters in one document, uniform in [C/2, 3C/2) for C =
  `document_chars` (the passkey task: exactly C, cut at the last mention).
- F: facts stated per document.  G: characters between two mentions of a
  value.  K: value characters (`value_length`).

Two tasks, both made of mentions of random values inside learnable filler:

- "recall": the document opens by stating F facts ("key qhzw is 407613."),
  then runs filler paragraphs and, once a fact has not been mentioned for
  `min_recall_gap` characters, repeats it ("recall key qhzw is 407613.").
- "passkey": one value per document, "the pass key is 407. " at the start
  and again every G characters, G uniform in [min_recall_gap,
  max_recall_gap]: recalled often, with the gap under control, so a ladder
  of gaps (inside one window, inside Transformer-XL's reach, beyond it) is
  one field.

A first-stated value cannot be predicted; a recalled one can, but only by a
model that still holds the previous mention G characters back. `mentions`
says which characters are which, so evaluation can score the two apart.

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
_FACT = re.compile(r"(recall )?key ([a-z]{4}) is (\S+?)\.")
_PASSKEY = "the pass key is "
TASKS = ("recall", "passkey")
FILLERS = ("words", "dots")


@dataclasses.dataclass(frozen=True)
class Fact:
  """One fact statement or recall found in a document."""

  key: str
  value: str
  position: int  # Character offset of the statement in the document.
  is_recall: bool


@dataclasses.dataclass(frozen=True)
class Mention:
  """Where one value stands in a document: characters [start, end)."""

  start: int
  end: int
  is_recall: bool  # False for the first (unpredictable) statement.
  gap: int  # Characters since the previous mention's start; 0 if first.


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Every parameter of the synthetic corpus (defaults: the original one)."""

  task: str = "recall"  # One of TASKS.
  document_chars: int = 32768  # C.
  num_facts: int = 16  # F ("recall" only; "passkey" has one value).
  min_recall_gap: int = 8192  # Shortest G.
  max_recall_gap: int = 0  # Longest G ("passkey"; 0 = min_recall_gap).
  value_length: int = 6  # K.
  value_alphabet: str = "0123456789"  # Characters of the values.
  filler_sentences: tuple[int, int] = (4, 12)  # Per "recall" paragraph.
  filler: str = "words"  # One of FILLERS: a word list, or only dots.
  # Training targets: "all" tokens, or only "values" (first-stated and
  # recalled), so the recall signal is not buried under filler.
  loss_on: str = "all"

  def __post_init__(self):
    object.__setattr__(self, "filler_sentences", tuple(self.filler_sentences))
    if self.task not in TASKS:
      raise ValueError(f"task={self.task!r} is not one of {TASKS}.")
    if self.loss_on not in ("all", "values"):
      raise ValueError(f"loss_on={self.loss_on!r} is not 'all' or 'values'.")
    if self.filler not in FILLERS:
      raise ValueError(f"filler={self.filler!r} is not one of {FILLERS}.")
    if self.value_length < 1 or len(set(self.value_alphabet)) < 2:
      raise ValueError(f"value_length={self.value_length} must be >= 1 and "
                       f"value_alphabet={self.value_alphabet!r} needs at "
                       "least two distinct characters.")
    clash = set(self.value_alphabet) & set(_filler_characters(self.filler))
    if clash:
      raise ValueError(f"value_alphabet shares {sorted(clash)} with the "
                       f"{self.filler!r} filler; values must be told apart "
                       "from filler, e.g. use digits.")
    low, high = self.filler_sentences
    if not 1 <= low < high:
      raise ValueError(f"filler_sentences={self.filler_sentences} must be "
                       "(min, max) with 1 <= min < max.")
    if self.task == "recall" and 2 * self.min_recall_gap >= self.document_chars:
      raise ValueError(f"min_recall_gap {self.min_recall_gap} must be below "
                       f"half of document_chars {self.document_chars}, or "
                       "the shortest documents recall no fact.")
    if self.task == "passkey":
      self._validate_passkey()

  def _validate_passkey(self):
    shortest = len(_PASSKEY) + self.value_length + 3
    if self.min_recall_gap < shortest:
      raise ValueError(f"min_recall_gap={self.min_recall_gap} is shorter "
                       f"than one passkey sentence; use >= {shortest}.")
    if self.max_recall_gap and self.max_recall_gap < self.min_recall_gap:
      raise ValueError(f"max_recall_gap={self.max_recall_gap} is below "
                       f"min_recall_gap={self.min_recall_gap}; use 0 (= min) "
                       "or a larger value.")
    if self.document_chars < 2 * self.longest_gap:
      raise ValueError(f"document_chars={self.document_chars} holds no "
                       f"recall at gap {self.longest_gap}; use >= "
                       f"{2 * self.longest_gap}.")

  @property
  def longest_gap(self) -> int:
    return self.max_recall_gap or self.min_recall_gap


class SyntheticDocuments:
  """`num_documents` documents, document i made from rng([seed, i])."""

  def __init__(self, num_documents: int, *, seed: int = 0,
               config: SyntheticConfig | None = None, **fields):
    """`fields` (e.g. min_recall_gap=4000) override `config`'s."""
    config = dataclasses.replace(config or SyntheticConfig(), **fields)
    self._num_documents = num_documents
    self._seed = seed
    self.config = config

  def __len__(self) -> int:
    return self._num_documents

  def __getitem__(self, index: int) -> str:
    return self.document(index)[0]

  def mentions(self, index: int) -> list[Mention]:
    """Every value of document `index`, in text order."""
    return self.document(index)[1]

  def document(self, index: int) -> tuple[str, list[Mention]]:
    if not 0 <= index < self._num_documents:
      raise IndexError(f"Document {index} outside [0, {self._num_documents}).")
    rng = np.random.default_rng([self._seed, index])
    if self.config.task == "passkey":
      return _passkey_document(rng, self.config)
    return _recall_document(rng, self.config)


def _recall_document(rng, cfg: SyntheticConfig):
  facts = _random_facts(rng, cfg)
  parts, last_statement, last_value, mentions = [], {}, {}, []
  length = 0

  def say(key, prefix, end):
    nonlocal length
    last_statement[key] = length
    parts.append(f"{prefix}key {key} is {facts[key]}.{end}")
    start = length + len(parts[-1]) - 2 - cfg.value_length
    previous = last_value.get(key)
    mentions.append(Mention(start, start + cfg.value_length,
                            previous is not None,
                            0 if previous is None else start - previous))
    last_value[key] = start
    length += len(parts[-1])

  for key in facts:
    say(key, "", " ")
  # Lengths vary so that rows reach document ends at different steps.
  target = rng.integers(cfg.document_chars // 2, cfg.document_chars * 3 // 2)
  while length < target:
    parts.append(_filler_paragraph(rng, cfg))
    length += len(parts[-1])
    # Only facts not mentioned for min_recall_gap characters are recalled,
    # so no value can be copied from nearby text.
    due = [key for key, at in last_statement.items()
           if length - at >= cfg.min_recall_gap]
    if due:
      say(due[rng.integers(len(due))], "recall ", "\n")
  return "".join(parts), mentions


def _passkey_document(rng, cfg: SyntheticConfig):
  value = _random_value(rng, cfg)
  sentence = f"{_PASSKEY}{value}. "
  parts, mentions = [sentence], []
  mentions.append(Mention(len(_PASSKEY), len(_PASSKEY) + len(value), False, 0))
  while True:
    gap = int(rng.integers(cfg.min_recall_gap, cfg.longest_gap + 1))
    start = mentions[-1].start + gap
    if start + len(value) + 2 > cfg.document_chars:
      break
    filler = _filler_chars(rng, cfg, start - len(_PASSKEY) - sum(
        map(len, parts)))
    parts += [filler, sentence]
    mentions.append(Mention(start, start + len(value), True, gap))
  return "".join(parts), mentions


def find_facts(text: str) -> list[Fact]:
  """All statements and recalls in a "recall" document, in text order."""
  return [Fact(key=m.group(2), value=m.group(3), position=m.start(),
               is_recall=m.group(1) is not None)
          for m in _FACT.finditer(text)]


def _random_value(rng: np.random.Generator, cfg: SyntheticConfig) -> str:
  alphabet = np.array(list(cfg.value_alphabet))
  return "".join(alphabet[rng.integers(0, len(alphabet), cfg.value_length)])


def _random_facts(rng: np.random.Generator,
                  cfg: SyntheticConfig) -> dict[str, str]:
  letters = np.array(list(string.ascii_lowercase))
  facts = {}
  while len(facts) < cfg.num_facts:  # Keys must be unique to be recallable.
    key = "".join(rng.choice(letters, _KEY_LETTERS))
    facts[key] = _random_value(rng, cfg)
  return facts


def _sentence(rng: np.random.Generator, filler: str) -> str:
  words = rng.choice(_WORDS, rng.integers(6, 16))
  if filler == "dots":
    return "." * len(" ".join(words))
  return " ".join(words).capitalize() + "."


def _filler_paragraph(rng: np.random.Generator, cfg: SyntheticConfig) -> str:
  low, high = cfg.filler_sentences
  sentences = [_sentence(rng, cfg.filler)
               for _ in range(rng.integers(low, high))]
  return " ".join(sentences) + "\n"


def _filler_chars(rng: np.random.Generator, cfg: SyntheticConfig,
                  count: int) -> str:
  """Exactly `count` filler characters (sentences, the last one cut)."""
  text = ""
  while len(text) < count:
    text += _sentence(rng, cfg.filler) + " "
  return text[:count - 1] + " " if count else ""


def _filler_characters(filler: str) -> str:
  if filler == "dots":
    return ". \n"
  return "".join(sorted(set("".join(_WORDS) + string.ascii_uppercase))) + ". \n"
