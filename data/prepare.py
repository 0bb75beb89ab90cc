r"""Prepares a corpus once, before training.

  python -m data.prepare --corpus=pg19 --data_dir=gs://my-bucket/tfds
  python -m data.prepare --corpus=c4_4k --data_dir=DIR \
      --tokenizer=t5:spiece.model
  python -m data.prepare --corpus=local --source_dir=papers/ --name=arxiv \
      --data_dir=DIR

pg19 and c4 download and prepare the TFDS datasets in ArrayRecord format
(network needed; c4 is an Apache Beam build).  c4_4k indexes the prepared
c4/en documents that have at least --min_tokens tokens; rerun the same
command to resume after an interruption, or start --num_workers copies with
different --worker_index to share the work.  local turns a folder of text or
LaTeX files into the corpus "local:<name>".  The synthetic corpus needs no
preparation.
"""

from absl import app
from absl import flags

from data import c4_filter
from data import local_corpus
from data import sources
from data import tokenizers

CORPUS = flags.DEFINE_enum("corpus", None, ["pg19", "c4", "c4_4k", "local"],
                           "Corpus to prepare.")
DATA_DIR = flags.DEFINE_string("data_dir", None,
                               "TFDS data folder, local or gs://.")
SPLITS = flags.DEFINE_list("splits", ["train", "validation"],
                           "c4_4k: source splits to index.")
TOKENIZER = flags.DEFINE_string(
    "tokenizer", "bytes", "c4_4k: tokenizer that counts the 4K tokens: "
    "bytes, spm:<path> or t5:<path>.")
MIN_TOKENS = flags.DEFINE_integer("min_tokens", 4096,
                                  "c4_4k: shortest document kept, in tokens.")
CHUNK_SIZE = flags.DEFINE_integer("chunk_size", 10_000,
                                  "c4_4k: documents per resumable chunk.")
WORKER_INDEX = flags.DEFINE_integer("worker_index", 0,
                                    "c4_4k: this worker, in [0, num_workers).")
NUM_WORKERS = flags.DEFINE_integer("num_workers", 1,
                                   "c4_4k: workers sharing the chunks.")
SOURCE_DIR = flags.DEFINE_string("source_dir", None,
                                 "local: folder of .txt/.tex/.md files.")
NAME = flags.DEFINE_string("name", None,
                           "local: corpus name, read as 'local:<name>'.")
HOLDOUT = flags.DEFINE_float("holdout_fraction", 0.05,
                             "local: fraction of files for validation and "
                             "again for test.")

flags.mark_flags_as_required(["corpus", "data_dir"])


def prepare_c4_4k() -> None:
  """Indexes each split; prints whether the index is complete."""
  tokenizer = tokenizers.get_tokenizer(TOKENIZER.value)
  for split in SPLITS.value:
    folder = c4_filter.index_folder(DATA_DIR.value, split, TOKENIZER.value)
    complete = c4_filter.filter_long_documents(
        sources.tfds_documents("c4", split, data_dir=DATA_DIR.value),
        tokenizer, folder, min_tokens=MIN_TOKENS.value,
        chunk_size=CHUNK_SIZE.value, worker_index=WORKER_INDEX.value,
        num_workers=NUM_WORKERS.value)
    print(f"c4_4k {split}: {'complete' if complete else 'partial'} "
          f"index in {folder}")


def main(argv) -> None:
  del argv  # Unused.
  if CORPUS.value in ("pg19", "c4"):
    sources.prepare_tfds(CORPUS.value, data_dir=DATA_DIR.value)
  elif CORPUS.value == "c4_4k":
    prepare_c4_4k()
  else:
    if not SOURCE_DIR.value or not NAME.value:
      raise app.UsageError("--corpus=local needs --source_dir and --name.")
    folder = local_corpus.prepare_local_corpus(
        SOURCE_DIR.value, name=NAME.value, data_dir=DATA_DIR.value,
        holdout_fraction=HOLDOUT.value)
    print(f"Prepared local:{NAME.value} in {folder}")


if __name__ == "__main__":
  app.run(main)
