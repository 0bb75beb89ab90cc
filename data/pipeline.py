"""From plain arguments to device-ready batches: stream, prefetch, pmap split.

Glossary of shapes:
- R: batch rows of this host.  T: segment length.  W: window length.
- A: local devices (launch/__init__.py's letters); each gets R / A rows.

Row r of a host always lands on device r // (R / A)
(`placement.rows_to_devices`, which places its memory too), and rows keep
their document across steps (see `stream`), so each device keeps its
documents and the memory that goes with them.
"""

import functools
import queue
import threading
from typing import Any, Iterator, Sequence

import numpy as np

from data import c4_filter
from data import curriculum as curriculum_lib
from data import local_corpus
from data import placement
from data import sources
from data import stream
from data import synthetic
from data import tokenizers

CORPORA = ("synthetic", "pg19", "c4_4k", "local:<name>")
# Synthetic split -> (documents, seed); lazily generated, so sizes are free.
_SYNTHETIC_SPLITS = {"train": (100_000, 0), "validation": (64, 1),
                     "test": (64, 2)}


def make_stream(corpus: str = "synthetic", split: str = "train", *,
                data_dir: str | None = None, tokenizer: str = "bytes",
                vocab_path: str | None = None, rows: int = 1,
                segment_length: int = 4096, window_length: int | None = None,
                seed: int = 0, process_index: int = 0, process_count: int = 1,
                devices: int | None = None, training: bool | None = None,
                synthetic_config: dict | None = None,
                curriculum: Sequence[tuple[int, dict]] = ()
                ) -> stream.SegmentStream:
  """The segment stream of `corpus`/`split` for host `process_index`.

  Training streams (default: split "train") are shuffled by `seed` and
  repeat forever; others read every document of the host's share once.
  `devices`, if given, is the number of local pmap devices sharing the rows.
  `synthetic_config` holds fields of `synthetic.SyntheticConfig` (the
  synthetic corpus only). `curriculum` lists warm-up phases (steps,
  synthetic_config) read, in order, before `synthetic_config` (see
  data/curriculum.py).
  """
  if curriculum:
    configs = [phase for _, phase in curriculum] + [synthetic_config]
    boundaries = np.cumsum([steps for steps, _ in curriculum]).tolist()
    return curriculum_lib.CurriculumStream(
        lambda k: make_stream(
            corpus, split, data_dir=data_dir, tokenizer=tokenizer,
            vocab_path=vocab_path, rows=rows, segment_length=segment_length,
            window_length=window_length, seed=seed,
            process_index=process_index, process_count=process_count,
            devices=devices, training=training, synthetic_config=configs[k]),
        boundaries)
  if window_length and segment_length % window_length:
    raise ValueError(f"Segment length {segment_length} must be a multiple of "
                     f"window length {window_length}; pick segment_length = "
                     f"k * {window_length}.")
  if devices and rows % devices:
    raise ValueError(f"{rows} rows cannot be split over {devices} devices; "
                     f"use a multiple of {devices} rows.")
  if tokenizer in ("spm", "t5") and vocab_path:
    tokenizer = f"{tokenizer}:{vocab_path}"  # One spec names the index too.
  documents = open_corpus(corpus, split, data_dir=data_dir,
                          tokenizer_spec=tokenizer,
                          synthetic_config=synthetic_config)
  if not len(documents):
    raise ValueError(f"Corpus {corpus!r} split {split!r} has no documents; "
                     "check the split name and the prepared data.")
  training = split == "train" if training is None else training
  segments = stream.SegmentStream(
      documents, tokenizers.get_tokenizer(tokenizer), rows=rows,
      segment_length=segment_length, seed=seed, shuffle=training,
      repeat=training, shard_index=process_index, num_shards=process_count)
  if training and documents_loss_on(documents) == "values":
    if tokenizer != "bytes":
      raise ValueError(f"loss_on='values' needs the bytes tokenizer (value "
                       f"positions are byte offsets), not {tokenizer!r}.")
    return ValueLossStream(segments,
                           functools.lru_cache(256)(documents.mentions))
  return segments


def documents_loss_on(documents) -> str:
  config = getattr(documents, "config", None)
  return getattr(config, "loss_on", "all")


class ValueLossStream:
  """A SegmentStream whose `loss_mask` keeps only value characters.

  Row r's segment starts at its stream offset minus T; the mask is True
  where the document has a value (data/synthetic.py `Mention`), so training
  predicts values only. Everything else (state, resume) is the stream's.
  """

  def __init__(self, segments: stream.SegmentStream, mentions):
    self._stream = segments
    self._mentions = mentions  # doc index -> [Mention]

  def __iter__(self) -> "ValueLossStream":
    return self

  def __next__(self) -> stream.Batch:
    batch = next(self._stream)
    tokens = batch["tokens"]  # [R, T]
    offsets = np.asarray(self._stream.get_state()["row_offset"]) - len(
        tokens[0])  # [R] document position of column 0.
    mask = np.zeros_like(batch["loss_mask"])  # [R, T]
    for row, doc in enumerate(batch["doc_index"]):
      if doc < 0:
        continue
      for m in self._mentions(int(doc)):
        lo, hi = m.start - offsets[row], m.end - offsets[row]
        mask[row, max(lo, 0):max(min(hi, len(tokens[0])), 0)] = True
    return dict(batch, loss_mask=mask & batch["loss_mask"])

  def get_state(self):
    return self._stream.get_state()

  def set_state(self, state, **kwargs) -> None:
    self._stream.set_state(state, **kwargs)


def open_corpus(corpus: str, split: str, *, data_dir: str | None,
                tokenizer_spec: str = "bytes",
                synthetic_config: dict | None = None
                ) -> sources.DocumentSource:
  """The documents of a corpus named as in `CORPORA`."""
  if synthetic_config and corpus != "synthetic":
    raise ValueError(f"synthetic_config is set but corpus={corpus!r}; it "
                     "only applies to the synthetic corpus.")
  if corpus == "synthetic":
    if split not in _SYNTHETIC_SPLITS:
      raise ValueError(f"The synthetic corpus has no split {split!r}; use one "
                       f"of {', '.join(_SYNTHETIC_SPLITS)}.")
    num_documents, seed = _SYNTHETIC_SPLITS[split]
    return synthetic.SyntheticDocuments(
        num_documents, seed=seed,
        config=synthetic.SyntheticConfig(**(synthetic_config or {})))
  if corpus == "pg19":
    return sources.tfds_documents("pg19", split, data_dir=data_dir)
  if corpus == "c4_4k":
    return c4_filter.c4_long_documents(split, data_dir=data_dir,
                                       tokenizer_spec=tokenizer_spec)
  if corpus.startswith("local:") and corpus != "local:":
    return local_corpus.local_documents(corpus.removeprefix("local:"), split,
                                        data_dir=data_dir)
  raise ValueError(f"Unknown corpus {corpus!r}; known: {', '.join(CORPORA)}.")


# The placement rule lives in data/placement.py (numpy only, so the training
# step can use it without this module's TFDS imports); kept here for callers.
rows_to_devices = placement.rows_to_devices
shard_for_pmap = placement.shard_for_pmap


class Prefetcher:
  """Runs a stream in a background thread, so tokenizing overlaps training.

  Yields `(batch, state)` where `state` is the stream state right after
  `batch`: checkpoint it with the model state that consumed `batch`.  Errors
  in the worker are re-raised here.  Call `close()` (or use `with`) to stop
  the thread; do not touch the stream itself while it is being prefetched.
  """

  _END = object()

  def __init__(self, segments: stream.SegmentStream, size: int = 2):
    self._stream = segments
    self._queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._done = False
    self._thread = threading.Thread(target=self._work, daemon=True)
    self._thread.start()

  def __iter__(self) -> Iterator[tuple[stream.Batch, dict[str, Any]]]:
    return self

  def __next__(self) -> tuple[stream.Batch, dict[str, Any]]:
    if self._done:
      raise StopIteration
    item = self._queue.get()
    if item is self._END or isinstance(item, BaseException):
      self._done = True
      self._thread.join()
      if isinstance(item, BaseException):
        raise item
      raise StopIteration
    return item

  def close(self) -> None:
    self._stop.set()
    while self._thread.is_alive():
      try:  # Drain, so a worker blocked on a full queue sees the stop flag.
        self._queue.get(timeout=0.05)
      except queue.Empty:
        pass
    self._done = True

  def __enter__(self) -> "Prefetcher":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def _work(self) -> None:
    try:
      for batch in self._stream:
        if not self._put((batch, self._stream.get_state())):
          return
      self._put(self._END)
    except Exception as error:  # pylint: disable=broad-except
      self._put(error)

  def _put(self, item) -> bool:
    """Blocks until `item` is queued; False if the consumer closed us."""
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.05)
        return True
      except queue.Full:
        pass
    return False
