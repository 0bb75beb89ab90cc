"""Random-access collections of whole documents: in memory, subsets and TFDS.

Glossary of shapes:
- N: documents in a source.  K: documents kept by an index (K <= N).

A document source is anything with `len()` and `[i]` returning the text of
document i (str or UTF-8 bytes), the same text every time.  Addressing
documents by index, rather than reading a shuffled stream, is what makes the
segment stream deterministic, resumable and exactly shardable.
"""

from typing import Protocol, Sequence

import numpy as np
import tensorflow_datasets as tfds

# Corpus name -> (TFDS dataset name, text feature).
TFDS_CORPORA = {
    "pg19": ("pg19", "book_text"),
    "c4": ("c4/en", "text"),
}


class DocumentSource(Protocol):
  """Random access to whole documents."""

  def __len__(self) -> int:
    """Number of documents N."""

  def __getitem__(self, index: int) -> str | bytes:
    """The text of document `index`, 0 <= index < N."""


class InMemoryDocuments:
  """A list of texts; used for synthetic data and tests."""

  def __init__(self, texts: Sequence[str | bytes]):
    self._texts = list(texts)

  def __len__(self) -> int:
    return len(self._texts)

  def __getitem__(self, index: int) -> str | bytes:
    return self._texts[index]


class IndexedDocuments:
  """The documents of `source` listed in `indices` (int64[K]), in that order."""

  def __init__(self, source: DocumentSource, indices: np.ndarray):
    self._source = source
    self.indices = np.asarray(indices, np.int64)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> str | bytes:
    return self._source[int(self.indices[index])]


class FeatureDocuments:
  """Selects one text feature from a source of example dicts (TFDS records)."""

  def __init__(self, examples: Sequence[dict], feature: str):
    self._examples = examples
    self._feature = feature

  def __len__(self) -> int:
    return len(self._examples)

  def __getitem__(self, index: int) -> str | bytes:
    return self._examples[int(index)][self._feature]


def tfds_documents(corpus: str, split: str, *,
                   data_dir: str | None) -> FeatureDocuments:
  """Opens a prepared TFDS corpus ("pg19" or "c4") as a document source.

  The data must have been prepared in ArrayRecord format (see
  `prepare_tfds`), which gives random access without reading the files in
  order.
  """
  if corpus not in TFDS_CORPORA:
    raise ValueError(f"Unknown TFDS corpus {corpus!r}; known: "
                     f"{', '.join(TFDS_CORPORA)}.")
  if not data_dir:
    raise ValueError(f"Corpus {corpus!r} needs data_dir, the folder holding "
                     f"the prepared dataset; create it with "
                     f"{prepare_command(corpus, '<data_dir>')}.")
  name, feature = TFDS_CORPORA[corpus]
  try:
    examples = tfds.data_source(name, split=split, data_dir=data_dir,
                                download=False)
  # TFDS reports a missing dataset as an assertion, or as a "random access not
  # supported" error when nothing was prepared; both mean: run prepare.
  except (AssertionError, NotImplementedError, FileNotFoundError) as e:
    raise ValueError(
        f"No prepared {name!r} (ArrayRecord) split {split!r} under data_dir "
        f"{data_dir!r}; create it with {prepare_command(corpus, data_dir)}."
    ) from e
  return FeatureDocuments(examples, feature)


def prepare_tfds(corpus: str, *, data_dir: str) -> None:
  """Downloads and prepares a TFDS corpus in ArrayRecord format.

  PG-19 reads gs://deepmind-gutenberg (network needed, 11 GB).  C4 is an
  Apache Beam build from Common Crawl (about 800 GB; give TFDS a Beam runner
  through the usual TFDS download config if preparing it yourself).
  """
  if corpus not in TFDS_CORPORA:
    raise ValueError(f"Unknown TFDS corpus {corpus!r}; known: "
                     f"{', '.join(TFDS_CORPORA)}.")
  name, _ = TFDS_CORPORA[corpus]
  builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare()


def prepare_command(corpus: str, data_dir: str) -> str:
  """The shell command that prepares `corpus`, for error messages."""
  return f"`python -m data.prepare --corpus={corpus} --data_dir={data_dir}`"
