"""A deterministic, resumable stream of fixed-length document segments.

Glossary of shapes:
- R: batch rows of this host.  T: segment length in tokens.
- N: documents in this host's share of the corpus.

Each of the R rows reads its own document segment by segment, as in meliad's
`_batched_interleave_generator`.  When a row's document ends, the row takes
the next document of the host's order in the same step, and only that step
has `start_of_sequence` True.  The last segment of a document is zero-padded,
never packed with the next one, and empty documents are skipped.  A row never
changes document mid-way, so segment k+1 of a document lands in the same row
(and so on the same device) as segment k: the model's memory for row r is
the memory of row r's document.

Host h of n owns documents h, h + n, h + 2n, ...  With `shuffle`, epoch e
visits them in the order `default_rng([seed, e]).permutation(N)`; without,
in index order.  With `repeat` the stream never ends and `epoch` counts
passes; without, every document is read once, rows whose documents are done
go idle (all-zero tokens, `loss_mask` False, `start_of_sequence` True so the
model resets them), and StopIteration comes when every row is idle.

The state is a small JSON-serialisable dict: the epoch, the position in the
order, and each row's document and token offset.  Tokens are not saved; a
restored stream re-tokenizes its rows' documents.
"""

from typing import Any

import numpy as np

from data import sources
from data import tokenizers

Batch = dict[str, np.ndarray]
_STATE_VERSION = 1
_IDLE = -1  # row_doc value of a row that holds no document.


class SegmentStream:
  """Iterator over batches `tokens` int32[R, T], `start_of_sequence` bool[R],
  `loss_mask` bool[R, T], `epoch` int32[R] and `doc_index` int64[R]."""

  def __init__(self, source: sources.DocumentSource,
               tokenizer: tokenizers.Tokenizer, *, rows: int,
               segment_length: int = 4096, seed: int = 0,
               shuffle: bool = True, repeat: bool = True,
               shard_index: int = 0, num_shards: int = 1):
    _check_shard(len(source), shard_index, num_shards)
    if rows < 1 or segment_length < 1:
      raise ValueError(f"rows {rows} and segment_length {segment_length} "
                       "must both be positive.")
    self._source = source
    self._tokenizer = tokenizer
    self._segment_length = segment_length
    self._seed = seed
    self._shuffle = shuffle
    self._repeat = repeat
    self._doc_ids = np.arange(shard_index, len(source), num_shards)  # [N]
    self._config = dict(rows=rows, segment_length=segment_length, seed=seed,
                        shuffle=shuffle, shard_index=shard_index,
                        num_shards=num_shards, num_documents=len(source))
    self._epoch, self._cursor = 0, 0
    self._row_doc = np.full(rows, _IDLE, np.int64)  # [R] global doc index.
    self._row_offset = np.zeros(rows, np.int64)  # [R] next token to emit.
    self._row_epoch = np.zeros(rows, np.int32)  # [R] epoch the doc came from.
    self._row_tokens: dict[int, np.ndarray] = {}  # Row -> int32[doc length].
    self._order = (-1, self._doc_ids)  # (epoch, this epoch's order) cache.

  def __iter__(self) -> "SegmentStream":
    return self

  def __next__(self) -> Batch:
    rows, length = len(self._row_doc), self._segment_length
    for row in range(rows):
      if self._row_offset[row] >= len(self._tokens(row)):
        self._take_next_document(row)
    if np.all(self._row_doc == _IDLE):
      raise StopIteration
    tokens = np.zeros((rows, length), np.int32)  # [R, T]
    for row in np.flatnonzero(self._row_doc != _IDLE):
      offset = self._row_offset[row]
      segment = self._tokens(row)[offset:offset + length]
      tokens[row, :len(segment)] = segment
    # Idle rows report a start so the model keeps resetting their memory.
    start = (self._row_offset == 0) | (self._row_doc == _IDLE)  # [R]
    self._row_offset[self._row_doc != _IDLE] += length
    return {"tokens": tokens, "start_of_sequence": start,
            "loss_mask": tokens != 0, "epoch": self._row_epoch.copy(),
            "doc_index": self._row_doc.copy()}

  def get_state(self) -> dict[str, Any]:
    """The state after the last batch, as plain JSON-serialisable values."""
    return {"version": _STATE_VERSION, "config": dict(self._config),
            "epoch": self._epoch, "cursor": self._cursor,
            "row_doc": self._row_doc.tolist(),
            "row_offset": self._row_offset.tolist(),
            "row_epoch": self._row_epoch.tolist()}

  def set_state(self, state: dict[str, Any], *,
                restart_documents: bool = False) -> None:
    """Continues from `state` exactly as the stream that produced it.

    With `restart_documents`, rows re-read their unfinished documents from
    the beginning, so the next batch has `start_of_sequence` True on every
    row; use it when the model's memory was not restored with the stream.
    """
    self._check_state(state)
    self._epoch, self._cursor = state["epoch"], state["cursor"]
    self._row_doc = np.asarray(state["row_doc"], np.int64)
    self._row_offset = np.asarray(state["row_offset"], np.int64)
    self._row_epoch = np.asarray(state["row_epoch"], np.int32)
    self._row_tokens = {}
    if restart_documents:
      for row in np.flatnonzero(self._row_doc != _IDLE):
        # A finished row takes a new document (offset 0) anyway; rewinding
        # it would read its old document twice.
        if self._row_offset[row] < len(self._tokens(row)):
          self._row_offset[row] = 0

  def _tokens(self, row: int) -> np.ndarray:
    """int32[doc length] tokens of the row's document; empty when idle."""
    if self._row_doc[row] == _IDLE:
      return np.zeros(0, np.int32)
    if row not in self._row_tokens:
      text = self._source[int(self._row_doc[row])]
      self._row_tokens[row] = self._tokenizer.encode(text)
    return self._row_tokens[row]

  def _take_next_document(self, row: int) -> None:
    """Gives `row` the next non-empty document, or makes it idle."""
    for _ in range(len(self._doc_ids) + 1):
      self._row_tokens.pop(row, None)
      self._row_doc[row], self._row_offset[row] = _IDLE, 0
      if not self._repeat and self._cursor == len(self._doc_ids):
        return
      if self._cursor == len(self._doc_ids):
        self._epoch, self._cursor = self._epoch + 1, 0
      self._row_doc[row] = self._order_of(self._epoch)[self._cursor]
      self._row_epoch[row] = self._epoch
      self._cursor += 1
      if len(self._tokens(row)):
        return
    raise ValueError(f"All {len(self._doc_ids)} documents of shard "
                     f"{self._config['shard_index']} tokenize to nothing; "
                     "check the corpus and its split.")

  def _order_of(self, epoch: int) -> np.ndarray:
    """int64[N] global document indices in the order of `epoch`."""
    if self._order[0] != epoch:
      order = self._doc_ids
      if self._shuffle:
        rng = np.random.default_rng([self._seed, epoch])
        order = order[rng.permutation(len(order))]
      self._order = (epoch, order)
    return self._order[1]

  def _check_state(self, state: dict[str, Any]) -> None:
    if state.get("version") != _STATE_VERSION:
      raise ValueError(f"Stream state version {state.get('version')!r} is "
                       f"not {_STATE_VERSION}; it comes from another release.")
    changed = {key: (value, self._config[key])
               for key, value in state["config"].items()
               if self._config.get(key) != value}
    if changed:
      raise ValueError(f"Stream state was saved with other settings "
                       f"(saved, now): {changed}; rebuild the stream with the "
                       "saved settings or start without the state.")


def drop_documents(state: dict[str, Any]) -> dict[str, Any]:
  """`state` with every row idle: each takes the host's next document.

  The epoch and the position in the order are kept, so the documents that
  follow are the ones an uninterrupted stream would have read next.
  """
  rows = len(state["row_doc"])
  return dict(state, row_doc=[_IDLE] * rows, row_offset=[0] * rows)


def _check_shard(num_documents: int, shard_index: int, num_shards: int):
  if not 0 <= shard_index < num_shards:
    raise ValueError(f"Shard index {shard_index} must be in [0, {num_shards}); "
                     "pass process_index < process_count.")
  if num_documents < num_shards:
    raise ValueError(f"The corpus has {num_documents} documents, fewer than "
                     f"the {num_shards} host shards; every host needs at "
                     "least one: use fewer processes or a larger corpus.")
