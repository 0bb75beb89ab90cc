"""A TFDS builder turning a local folder of text or LaTeX files into a corpus.

Glossary of shapes:
- F: files found under the source folder; one file is one document.

This is how users bring arXiv-math LaTeX or Proof-Pile dumps (the paper's
arXiv Math corpus was never released), and it serves any other local corpus.
Files ending in .txt, .tex or .md (optionally .gz-compressed) are read as
UTF-8.  The split is deterministic: files are ordered by a hash of their
relative path, the first ones go to validation and test, the rest to train,
so the split does not depend on the file system's listing order.  The
prepared data lands in `<data_dir>/local_text/<name>/1.0.0/` as ArrayRecord.
"""

import gzip
import hashlib
import math
import os

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data import sources

EXTENSIONS = (".txt", ".tex", ".md")
SPLITS = ("train", "validation", "test")
_VERSION = "1.0.0"


class LocalText(tfds.core.GeneratorBasedBuilder):
  """One document per file of `source_dir`; the config name names the corpus."""

  VERSION = tfds.core.Version(_VERSION)

  def __init__(self, *, source_dir: str, holdout_fraction: float = 0.05,
               **kwargs):
    self._source_dir = epath.Path(source_dir)
    self._holdout_fraction = holdout_fraction
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    # DatasetInfo directly: dataset_info_from_configs needs a package folder.
    return tfds.core.DatasetInfo(
        builder=self,
        description="Local text files, one document per file.",
        features=tfds.features.FeaturesDict(
            {"text": tfds.features.Text(), "path": np.str_}),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    files = split_files(list_documents(self._source_dir),
                        self._holdout_fraction)
    # TFDS cannot write an empty split; tiny corpora get no held-out splits.
    return {split: self._generate_examples(paths)
            for split, paths in files.items() if paths}

  def _generate_examples(self, paths):
    for path in paths:
      yield path, {"text": _read_text(self._source_dir / path), "path": path}


def list_documents(source_dir: epath.Path) -> list[str]:
  """Relative paths of the document files under `source_dir`, recursively."""
  if not source_dir.is_dir():
    raise ValueError(f"Source folder {os.fspath(source_dir)!r} does not exist; "
                     "pass --source_dir=<folder of .txt/.tex files>.")
  paths = sorted(os.fspath(p.relative_to(source_dir))
                 for p in _walk(source_dir) if _is_document(p.name))
  if not paths:
    raise ValueError(f"No {'/'.join(EXTENSIONS)} files under "
                     f"{os.fspath(source_dir)!r}; the corpus would be empty.")
  return paths


def split_files(paths: list[str],
                holdout_fraction: float) -> dict[str, list[str]]:
  """Deterministic split: `holdout_fraction` each for validation and test."""
  if not 0 <= holdout_fraction < 0.5:
    raise ValueError(f"holdout_fraction {holdout_fraction} must be in "
                     "[0, 0.5) so that the train split is not empty.")
  ordered = sorted(paths, key=_stable_hash)
  # At least one held-out file each, so small corpora still get an eval split.
  held = min(math.ceil(holdout_fraction * len(paths)), (len(paths) - 1) // 2)
  return {"validation": ordered[:held], "test": ordered[held:2 * held],
          "train": ordered[2 * held:]}


def prepare_local_corpus(source_dir: str, *, name: str, data_dir: str,
                         holdout_fraction: float = 0.05) -> str:
  """Prepares `source_dir` as corpus `name`; returns the prepared folder."""
  builder = LocalText(
      source_dir=source_dir, holdout_fraction=holdout_fraction,
      config=tfds.core.BuilderConfig(name=name), data_dir=data_dir,
      file_format="array_record")
  builder.download_and_prepare()
  return os.fspath(builder.data_dir)


def local_documents(name: str, split: str, *,
                    data_dir: str | None) -> sources.FeatureDocuments:
  """Opens split `split` of the prepared local corpus `name`."""
  command = (f"`python -m data.prepare --corpus=local --name={name} "
             f"--source_dir=<folder> --data_dir={data_dir or '<data_dir>'}`")
  if not data_dir:
    raise ValueError(f"Corpus 'local:{name}' needs data_dir; prepare it with "
                     f"{command}.")
  folder = epath.Path(data_dir) / "local_text" / name / _VERSION
  if not (folder / "dataset_info.json").exists():
    raise ValueError(f"Local corpus {name!r} is not prepared under "
                     f"{os.fspath(folder)!r}; run {command}.")
  builder = tfds.builder_from_directory(os.fspath(folder))
  if split not in builder.info.splits:
    raise ValueError(f"Local corpus {name!r} has no split {split!r}; "
                     f"use one of {', '.join(builder.info.splits)}.")
  return sources.FeatureDocuments(builder.as_data_source(split), "text")


def _walk(folder: epath.Path):
  # epath's rglob refuses `**` (it would be slow on GCS); recurse by hand.
  for path in folder.iterdir():
    if path.is_dir():
      yield from _walk(path)
    else:
      yield path


def _is_document(filename: str) -> bool:
  return filename.removesuffix(".gz").endswith(EXTENSIONS)


def _read_text(path: epath.Path) -> str:
  data = path.read_bytes()
  if path.name.endswith(".gz"):
    data = gzip.decompress(data)
  return data.decode("utf-8", errors="replace")


def _stable_hash(path: str) -> str:
  # Python's hash() is salted per process; a digest is stable across runs.
  return hashlib.sha256(path.encode("utf-8")).hexdigest()
