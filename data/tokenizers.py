"""Tokenizers that turn document text into int32 ids with id 0 kept for padding.

Glossary of shapes:
- N: tokens in one document.

Every tokenizer here shares meliad's conventions: id 0 is padding and is never
emitted for real text, no EOS or BOS is added, and `vocab_size` counts the ids
the tokenizer can emit (0 included).  `embedding_rows` is the embedding-table
size we recommend for the model: the vocabulary padded up, as in meliad's gin
files (260 for bytes, 32128 for T5).
"""

import math
from typing import Protocol, Sequence

from etils import epath
import numpy as np
import sentencepiece as spm

_BYTE_OFFSET = 3  # seqio.ByteVocabulary: 0 pad, 1 eos, 2 unk, byte b -> b + 3.
_T5_EXTRA_IDS = 100  # T5's sentinel ids appended after the 32,000 pieces.
_ROW_MULTIPLE = 128  # T5 pads 32,100 ids to 32,128 embedding rows.
TOKENIZER_SPECS = ("bytes", "spm:<path>", "t5:<path>")


class Tokenizer(Protocol):
  """What the segment stream needs from a tokenizer."""

  vocab_size: int  # Ids the tokenizer can emit, padding id 0 included.
  embedding_rows: int  # Recommended embedding-table rows (>= vocab_size).

  def encode(self, text: str | bytes) -> np.ndarray:
    """Returns int32[N] ids, all > 0, without EOS."""

  def decode(self, ids: Sequence[int]) -> str:
    """Inverse of `encode`; padding ids are dropped."""


class ByteTokenizer:
  """UTF-8 bytes shifted by 3, exactly seqio.ByteVocabulary; needs no file."""

  vocab_size = 256 + _BYTE_OFFSET
  embedding_rows = 260  # meliad's pg19_bytes NUM_EMBEDDINGS.

  def encode(self, text: str | bytes) -> np.ndarray:
    if isinstance(text, str):
      text = text.encode("utf-8")
    return np.frombuffer(text, np.uint8).astype(np.int32) + _BYTE_OFFSET

  def decode(self, ids: Sequence[int]) -> str:
    ids = np.asarray(ids, np.int64)
    # Specials (pad, eos, unk) carry no bytes; seqio drops them as well.
    data = (ids[ids >= _BYTE_OFFSET] - _BYTE_OFFSET).astype(np.uint8)
    return data.tobytes().decode("utf-8", errors="replace")


class SentencePieceTokenizer:
  """A SentencePiece model whose ids are shifted so that 0 stays padding.

  T5 models already reserve 0 for padding (id_offset 0).  meliad's
  pg19train_bpe_* models use 0 for unk and have no pad, so their ids are
  shifted by `id_offset` = 1 and unk becomes 1.
  """

  def __init__(self, model_path: str, *, extra_ids: int = 0,
               id_offset: int | None = None):
    self._sp = spm.SentencePieceProcessor(model_proto=_read_model(model_path))
    if id_offset is None:
      id_offset = 0 if self._sp.pad_id() == 0 else 1
    self.id_offset = id_offset
    self.vocab_size = self._sp.get_piece_size() + extra_ids + id_offset
    self.embedding_rows = _round_up(self.vocab_size, _ROW_MULTIPLE)

  def encode(self, text: str | bytes) -> np.ndarray:
    if isinstance(text, bytes):
      text = text.decode("utf-8", errors="replace")
    ids = np.asarray(self._sp.encode(text), np.int32)
    return ids + self.id_offset

  def decode(self, ids: Sequence[int]) -> str:
    ids = np.asarray(ids, np.int64) - self.id_offset
    pieces = self._sp.get_piece_size()
    # Padding and T5 sentinels are not pieces; drop them instead of failing.
    keep = (ids >= 0) & (ids < pieces) & (ids != self._sp.pad_id())
    return self._sp.decode([int(i) for i in ids[keep]])


def get_tokenizer(spec: str, vocab_path: str | None = None) -> Tokenizer:
  """Builds a tokenizer from "bytes", "spm:<path>" or "t5:<path>".

  The path may instead come from `vocab_path` ("spm" or "t5" alone).  "t5"
  adds T5's 100 sentinel ids, giving 32,100 ids and 32,128 embedding rows for
  cc_all.32000/sentencepiece.model.
  """
  kind, _, path = spec.partition(":")
  if kind == "bytes" and not path:
    return ByteTokenizer()
  if kind not in ("spm", "t5"):
    raise ValueError(f"Unknown tokenizer {spec!r}; use one of "
                     f"{', '.join(TOKENIZER_SPECS)}.")
  if path and vocab_path and path != vocab_path:
    raise ValueError(f"Tokenizer {spec!r} and vocab_path {vocab_path!r} name "
                     "different files; give the path only once.")
  path = path or vocab_path
  if not path:
    raise ValueError(f"Tokenizer {spec!r} needs a SentencePiece model file: "
                     f"write '{kind}:/path/to/spm.model' or pass vocab_path.")
  extra_ids = _T5_EXTRA_IDS if kind == "t5" else 0
  return SentencePieceTokenizer(path, extra_ids=extra_ids)


def _read_model(path: str) -> bytes:
  # epath reads gs:// as well as local files; sentencepiece itself cannot.
  model_file = epath.Path(path)
  if not model_file.exists():
    raise ValueError(f"SentencePiece vocabulary file {path!r} does not exist; "
                     "pass the path of an existing .model file.")
  return model_file.read_bytes()


def _round_up(value: int, multiple: int) -> int:
  return math.ceil(value / multiple) * multiple
