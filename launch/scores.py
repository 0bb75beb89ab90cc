"""Per-token evaluation sums: loss by position, and recalled vs stated values.

Shape letters (launch/__init__.py): R eval rows, T segment length, W window
length, P a target's position in its document (token index, 1-based:
position 0 is never predicted), X characters of one value.

`Scores.add` takes one batch's per-token losses and hits ([R, T], already
masked) with the stream's `start_of_sequence` and `doc_index`, and tracks
where each row is in its document, so every predicted token lands in:

- a position bucket: [1, W), [W, 2W), [2W, 4W), ... (log-spaced from the
  first window to the document end);
- for documents that know their values (data/synthetic.py `mentions`), the
  "first" or "recall" value class, and its mention, so a recall counts as an
  exact match when all its X characters were predicted right. Mentions with
  a character at a segment start (never predicted, see melodi_hk.losses) are
  left out of the exact-match counts and counted as `unscored`.

Positions are byte offsets, so value classes need the bytes tokenizer.
"""

import math
from typing import Any, Callable

import numpy as np

_NONE, _FIRST, _RECALL = 0, 1, 2


def position_bucket(position: np.ndarray, window: int) -> np.ndarray:
  """Bucket index of each 1-based position: 0 for [1, W), k for [2^(k-1)W,
  2^k W)."""
  ratio = np.maximum(position, 1) / window
  return np.where(ratio < 1, 0, np.floor(np.log2(np.maximum(ratio, 1))) + 1
                  ).astype(np.int64)


def bucket_range(bucket: int, window: int) -> tuple[int, int]:
  return (1, window) if bucket == 0 else (window * 2 ** (bucket - 1),
                                          window * 2 ** bucket)


class Scores:
  """Running sums over one pass of a stream; `result()` summarises them."""

  def __init__(self, rows: int, window: int,
               mentions: Callable[[int], list] | None = None):
    self._window = window
    self._mentions = mentions  # doc index -> [Mention]; None: no values.
    self._offset = np.zeros(rows, np.int64)  # [R] doc position of column 0.
    self._labels: dict[int, tuple] = {}  # row -> (kind [P], mention id [P]).
    self._row_mentions: dict[int, list] = {}
    self.nats = 0.0
    self.tokens = 0
    self.documents = 0
    self._by_position: dict[int, list[float]] = {}  # bucket -> [nats, n]
    self._classes = {_FIRST: [0.0, 0, 0], _RECALL: [0.0, 0, 0]}
    self._mention_hits: list[dict] = []  # Finished documents' mentions.
    self._open: dict[int, dict] = {}  # row -> {mention id: [hits, scored]}

  def add(self, token_losses: np.ndarray, hits: np.ndarray, mask: np.ndarray,
          start_of_sequence: np.ndarray, doc_index: np.ndarray) -> None:
    """Token losses float[R, T], hits bool[R, T], mask bool[R, T]."""
    rows, length = token_losses.shape
    for row in range(rows):
      if start_of_sequence[row]:
        self._finish(row)
        self._offset[row] = 0
        if doc_index[row] >= 0:
          self.documents += 1
          self._start(row, int(doc_index[row]))
      positions = self._offset[row] + np.arange(1, length + 1)  # [T]
      self._offset[row] += length
      keep = mask[row]
      if not keep.any():
        continue
      losses, pos = token_losses[row][keep], positions[keep]
      self.nats += float(losses.sum())
      self.tokens += int(keep.sum())
      buckets = position_bucket(pos, self._window)
      for bucket in np.unique(buckets):
        entry = self._by_position.setdefault(int(bucket), [0.0, 0])
        entry[0] += float(losses[buckets == bucket].sum())
        entry[1] += int((buckets == bucket).sum())
      if row in self._labels:
        self._add_values(row, pos, losses, hits[row][keep])

  def _start(self, row: int, doc: int) -> None:
    if self._mentions is None:
      return
    mentions = self._mentions(doc)
    end = max((m.end for m in mentions), default=0)
    kind = np.zeros(end + 1, np.int8)
    ids = np.full(end + 1, -1, np.int64)
    for i, m in enumerate(mentions):
      kind[m.start:m.end] = _RECALL if m.is_recall else _FIRST
      ids[m.start:m.end] = i
    self._labels[row] = (kind, ids)
    self._row_mentions[row] = mentions
    self._open[row] = {}

  def _add_values(self, row, pos, losses, hits) -> None:
    kind, ids = self._labels[row]
    inside = pos < len(kind)
    pos, losses, hits = pos[inside], losses[inside], hits[inside]
    for cls in (_FIRST, _RECALL):
      sel = kind[pos] == cls
      entry = self._classes[cls]
      entry[0] += float(losses[sel].sum())
      entry[1] += int(sel.sum())
      entry[2] += int(hits[sel].sum())
    for p, hit in zip(pos[kind[pos] > 0], hits[kind[pos] > 0]):
      counts = self._open[row].setdefault(int(ids[p]), [0, 0])
      counts[0] += int(hit)
      counts[1] += 1

  def _finish(self, row: int) -> None:
    if row not in self._labels:
      return
    for i, m in enumerate(self._row_mentions[row]):
      hits, scored = self._open[row].get(i, (0, 0))
      self._mention_hits.append(dict(
          is_recall=m.is_recall, gap=m.gap, scored=scored == m.end - m.start,
          exact=hits == m.end - m.start))
    del self._labels[row], self._row_mentions[row], self._open[row]

  def result(self) -> dict[str, Any]:
    """Totals, loss by position and (with mentions) value scores."""
    for row in list(self._labels):
      self._finish(row)
    out = {"predicted_tokens": self.tokens, "total_nats": self.nats,
           "nats_per_token": self.nats / max(self.tokens, 1),
           "perplexity": math.exp(self.nats / self.tokens) if self.tokens
           else 1.0, "documents": self.documents,
           "by_position": [
               dict(zip(("start", "end"), bucket_range(b, self._window)),
                    tokens=n, nats_per_token=nats / n)
               for b, (nats, n) in sorted(self._by_position.items())]}
    if self._mentions is not None:
      out["values"] = self._value_result()
    return out

  def _value_result(self) -> dict[str, Any]:
    classes = {name: dict(tokens=n, nats_per_token=nats / max(n, 1),
                          accuracy=hits / max(n, 1))
               for name, (nats, n, hits) in zip(
                   ("first", "recall"),
                   (self._classes[_FIRST], self._classes[_RECALL]))}
    recalls = [m for m in self._mention_hits if m["is_recall"]]
    scored = [m for m in recalls if m["scored"]]
    by_gap = {}
    for m in scored:
      bucket = int(math.floor(math.log2(max(m["gap"], 1))))
      by_gap.setdefault(bucket, []).append(m["exact"])
    return dict(
        classes, recalls=len(recalls), unscored=len(recalls) - len(scored),
        recall_exact_match=float(np.mean([m["exact"] for m in scored]))
        if scored else float("nan"),
        by_gap=[dict(start=2 ** b, end=2 ** (b + 1), recalls=len(v),
                     exact_match=float(np.mean(v)))
                for b, v in sorted(by_gap.items())])
