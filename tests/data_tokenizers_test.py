"""Tests for data/tokenizers.py: id conventions, round trips and errors."""

import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import sentencepiece as spm

from data import synthetic
from data import tokenizers

_TEXT = "Call me Ishmael. Some years ago — never mind how long precisely."


def train_sentencepiece(folder, name, **ids):
  """A tiny model on synthetic text; `ids` sets pad/unk/bos/eos ids."""
  corpus = os.path.join(folder, "corpus.txt")
  with open(corpus, "w") as f:
    f.write(synthetic.SyntheticDocuments(2, document_chars=20_000,
                                         min_recall_gap=2000)[0] + _TEXT)
  prefix = os.path.join(folder, name)
  spm.SentencePieceTrainer.train(
      input=corpus, model_prefix=prefix, vocab_size=120, model_type="bpe",
      character_coverage=1.0, minloglevel=2, **ids)
  return prefix + ".model"


class ByteTokenizerTest(absltest.TestCase):

  def test_matches_seqio_byte_vocabulary(self):
    tokenizer = tokenizers.get_tokenizer("bytes")
    np.testing.assert_array_equal(tokenizer.encode("a\x00"), [100, 3])
    self.assertEqual(tokenizer.vocab_size, 259)
    self.assertEqual(tokenizer.embedding_rows, 260)

  def test_round_trip_drops_padding(self):
    tokenizer = tokenizers.ByteTokenizer()
    ids = tokenizer.encode(_TEXT)
    self.assertEqual(ids.dtype, np.int32)
    self.assertEqual(tokenizer.decode(np.concatenate([ids, [0, 0]])), _TEXT)
    self.assertEqual(tokenizer.encode(_TEXT.encode()).tolist(), ids.tolist())


class SentencePieceTokenizerTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._folder = tempfile.TemporaryDirectory()
    cls.addClassCleanup(cls._folder.cleanup)
    cls._t5_style = train_sentencepiece(
        cls._folder.name, "t5_style", pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    # meliad's pg19train_bpe_* layout: unk = 0 and no padding id.
    cls._pg19_style = train_sentencepiece(
        cls._folder.name, "pg19_style", unk_id=0, pad_id=-1, bos_id=-1,
        eos_id=-1)

  def test_t5_adds_sentinels_and_pads_embedding_rows(self):
    tokenizer = tokenizers.get_tokenizer(f"t5:{self._t5_style}")
    self.assertEqual(tokenizer.id_offset, 0)
    self.assertEqual(tokenizer.vocab_size, 120 + 100)
    self.assertEqual(tokenizer.embedding_rows, 256)

  def test_unk_zero_vocabulary_is_shifted_off_padding(self):
    tokenizer = tokenizers.get_tokenizer("spm", vocab_path=self._pg19_style)
    self.assertEqual(tokenizer.id_offset, 1)
    self.assertEqual(tokenizer.vocab_size, 121)
    ids = tokenizer.encode("水 unknown")  # 水 is not a piece: unk, now id 1.
    self.assertIn(1, ids)
    self.assertTrue((ids > 0).all())

  @parameterized.named_parameters(("t5_style", "_t5_style"),
                                  ("pg19_style", "_pg19_style"))
  def test_round_trip_never_emits_padding(self, model):
    tokenizer = tokenizers.get_tokenizer(f"spm:{getattr(self, model)}")
    ids = tokenizer.encode(_TEXT.encode())
    self.assertTrue((ids > 0).all())
    self.assertLess(ids.max(), tokenizer.vocab_size)
    self.assertEqual(tokenizer.decode(np.concatenate([ids, [0, 0]])), _TEXT)


class ErrorTest(absltest.TestCase):

  def test_missing_vocabulary_file_names_the_path(self):
    with self.assertRaisesRegex(ValueError, "'/no/such/spm.model' does not"):
      tokenizers.get_tokenizer("t5:/no/such/spm.model")

  def test_unknown_spec_lists_the_known_ones(self):
    with self.assertRaisesRegex(ValueError, "'chars'.*bytes, spm:<path>"):
      tokenizers.get_tokenizer("chars")

  def test_spm_without_a_path_asks_for_one(self):
    with self.assertRaisesRegex(ValueError, "needs a SentencePiece model"):
      tokenizers.get_tokenizer("spm")

  def test_two_different_paths_are_rejected(self):
    with self.assertRaisesRegex(ValueError, "different files"):
      tokenizers.get_tokenizer("spm:/a.model", vocab_path="/b.model")


if __name__ == "__main__":
  absltest.main()
