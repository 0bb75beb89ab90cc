"""C4(4K+): a one-off, resumable index of the C4 documents with >= 4096 tokens.

Glossary of shapes:
- N: documents in the source split.  C: documents per chunk.
- K: documents kept (those with at least `min_tokens` tokens).

Tokenizing all 365M C4 documents every epoch would starve the accelerator,
so the filter runs once and stores the kept document indices under
`<data_dir>/c4_4k/<tokenizer tag>/<split>/`: a `meta.json`, one
`chunk-<k>.npy` (int64 indices) per C source documents, and, when every chunk
is done, their concatenation `index.npy` (int64[K]).  A chunk file appears
only once complete, so an interrupted run resumes at the first missing
chunk, and several workers (`worker_index` of `num_workers`) can split the
chunks between them.  Reading C4(4K+) is then random access into the
prepared `c4/en` data source through the index.
"""

import json
import os

from absl import logging
from etils import epath
import numpy as np

from data import sources
from data import tokenizers

_META = "meta.json"
_INDEX = "index.npy"


def index_folder(data_dir: str, split: str, tokenizer_spec: str) -> epath.Path:
  """Where the C4(4K+) index for `tokenizer_spec` and `split` lives."""
  kind, _, path = tokenizer_spec.partition(":")
  # The file stem keeps vocabularies apart; the folder of the path does not.
  tag = kind if not path else f"{kind}-{epath.Path(path).stem}"
  return epath.Path(data_dir) / "c4_4k" / tag / split


def filter_long_documents(source: sources.DocumentSource,
                          tokenizer: tokenizers.Tokenizer, folder: str, *,
                          min_tokens: int = 4096, chunk_size: int = 10_000,
                          worker_index: int = 0, num_workers: int = 1) -> bool:
  """Writes the chunks of this worker that are missing; True once complete."""
  if not len(source):
    raise ValueError(f"The C4 source split is empty; nothing to filter into "
                     f"{folder!r}.")
  folder = epath.Path(folder)
  meta = {"num_documents": len(source), "chunk_size": chunk_size,
          "min_tokens": min_tokens, "vocab_size": tokenizer.vocab_size}
  _check_or_write_meta(folder, meta)
  num_chunks = -(-len(source) // chunk_size)
  for chunk in range(worker_index, num_chunks, num_workers):
    path = _chunk_path(folder, chunk)
    if path.exists():
      continue
    start, stop = chunk * chunk_size, min((chunk + 1) * chunk_size, len(source))
    kept = [i for i in range(start, stop)
            if len(tokenizer.encode(source[i])) >= min_tokens]
    _save_atomic(path, np.asarray(kept, np.int64))
    logging.info("C4(4K+) chunk %d/%d: kept %d of %d documents.",
                 chunk + 1, num_chunks, len(kept), stop - start)
  return _write_index_if_complete(folder, num_chunks)


def load_index(folder: str) -> np.ndarray:
  """The int64[K] kept indices; a clear error if the filter has not finished."""
  folder = epath.Path(folder)
  if not (folder / _INDEX).exists():
    done = len(list(folder.glob("chunk-*.npy"))) if folder.exists() else 0
    raise ValueError(
        f"C4(4K+) index {os.fspath(folder / _INDEX)!r} is missing ({done} "
        "chunks done); run or resume `python -m data.prepare --corpus=c4_4k "
        "--data_dir=<data_dir> --tokenizer=<spec>`.")
  with (folder / _INDEX).open("rb") as f:
    return np.load(f)


def c4_long_documents(split: str, *, data_dir: str | None,
                      tokenizer_spec: str) -> sources.IndexedDocuments:
  """C4(4K+) documents of `split` for the tokenizer `tokenizer_spec`."""
  if not data_dir:
    raise ValueError("Corpus 'c4_4k' needs data_dir, the folder holding the "
                     "prepared c4/en data and its index; see "
                     f"{sources.prepare_command('c4_4k', '<data_dir>')}.")
  indices = load_index(os.fspath(index_folder(data_dir, split, tokenizer_spec)))
  return sources.IndexedDocuments(
      sources.tfds_documents("c4", split, data_dir=data_dir), indices)


def _check_or_write_meta(folder: epath.Path, meta: dict) -> None:
  path = folder / _META
  if path.exists():
    saved = json.loads(path.read_text())
    if saved != meta:
      raise ValueError(f"{os.fspath(path)!r} records settings {saved}, not "
                       f"{meta}; delete {os.fspath(folder)!r} to start over.")
    return
  folder.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(meta))


def _write_index_if_complete(folder: epath.Path, num_chunks: int) -> bool:
  paths = [_chunk_path(folder, chunk) for chunk in range(num_chunks)]
  if not all(path.exists() for path in paths):
    return False
  chunks = []
  for path in paths:
    with path.open("rb") as f:
      chunks.append(np.load(f))
  _save_atomic(folder / _INDEX, np.concatenate(chunks))
  return True


def _chunk_path(folder: epath.Path, chunk: int) -> epath.Path:
  return folder / f"chunk-{chunk:06d}.npy"


def _save_atomic(path: epath.Path, array: np.ndarray) -> None:
  # Rename last, so a killed run never leaves a chunk that looks complete.
  temporary = path.parent / (path.name + ".tmp")
  with temporary.open("wb") as f:
    np.save(f, array)
  temporary.rename(path)
