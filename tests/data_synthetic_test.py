"""Tests for data/synthetic.py: determinism and the long-range structure."""

from absl.testing import absltest
from absl.testing import parameterized

from data import synthetic

GAP = 4000


class SyntheticDocumentsTest(parameterized.TestCase):

  def test_deterministic_from_seed_and_index(self):
    small = synthetic.SyntheticDocuments(3, seed=5)
    large = synthetic.SyntheticDocuments(50, seed=5)
    self.assertEqual([small[i] for i in range(3)],
                     [large[i] for i in range(3)])
    self.assertNotEqual(small[0], synthetic.SyntheticDocuments(3, seed=6)[0])
    self.assertNotEqual(small[0], small[1])

  def test_facts_are_stated_first_and_recalled_far_apart(self):
    documents = synthetic.SyntheticDocuments(
        5, document_chars=20_000, num_facts=6, min_recall_gap=GAP)
    for index in range(len(documents)):
      text = documents[index]
      self.assertBetween(len(text), 10_000, 31_000)
      facts = synthetic.find_facts(text)
      stated = {f.key: f for f in facts if not f.is_recall}
      recalls = [f for f in facts if f.is_recall]
      self.assertLen(stated, 6)
      self.assertTrue(all(f.position < 200 for f in stated.values()))
      self.assertGreaterEqual(len(recalls), 6)
      last_mention = {key: f.position for key, f in stated.items()}
      for recall in recalls:
        self.assertEqual(recall.value, stated[recall.key].value)
        self.assertGreaterEqual(recall.position - last_mention[recall.key],
                                GAP)
        last_mention[recall.key] = recall.position

  def test_values_appear_only_in_fact_sentences(self):
    text = synthetic.SyntheticDocuments(1, document_chars=20_000,
                                        min_recall_gap=GAP)[0]
    digits = sum(c.isdigit() for c in text)
    self.assertEqual(digits, 6 * len(synthetic.find_facts(text)))

  def test_gap_longer_than_half_a_document_is_an_error(self):
    with self.assertRaisesRegex(ValueError, "min_recall_gap 6000 must be"):
      synthetic.SyntheticDocuments(1, document_chars=10_000,
                                   min_recall_gap=6000)

  def test_recall_mentions_mark_every_value(self):
    documents = synthetic.SyntheticDocuments(
        3, document_chars=8000, num_facts=3, min_recall_gap=1000,
        value_length=4, value_alphabet="@#%&")
    for index in range(len(documents)):
      text, mentions = documents.document(index)
      facts = synthetic.find_facts(text)
      self.assertEqual([text[m.start:m.end] for m in mentions],
                       [f.value for f in facts])
      self.assertEqual([m.is_recall for m in mentions],
                       [f.is_recall for f in facts])
      self.assertTrue(all(m.gap >= 1000 for m in mentions if m.is_recall))
      self.assertTrue(all(set(f.value) <= set("@#%&") for f in facts))

  @parameterized.parameters(("words", 40, 0), ("dots", 100, 300))
  def test_passkey_repeats_one_value_at_the_set_gaps(self, filler, low, high):
    documents = synthetic.SyntheticDocuments(
        4, task="passkey", document_chars=2048, min_recall_gap=low,
        max_recall_gap=high, value_length=3, filler=filler)
    for index in range(len(documents)):
      text, mentions = documents.document(index)
      self.assertLessEqual(len(text), 2048)
      values = {text[m.start:m.end] for m in mentions}
      self.assertLen(values, 1)
      self.assertTrue(values.pop().isdigit())
      self.assertEqual([m.is_recall for m in mentions],
                       [False] + [True] * (len(mentions) - 1))
      for previous, mention in zip(mentions, mentions[1:]):
        self.assertEqual(mention.gap, mention.start - previous.start)
        self.assertBetween(mention.gap, low, high or low)
        self.assertEqual(text[mention.start - 16:mention.start],
                         "the pass key is ")
      # The value's characters occur nowhere else in the document.
      self.assertEqual(sum(c.isdigit() for c in text), 3 * len(mentions))

  @parameterized.parameters(
      (dict(task="story"), "task='story' is not one of"),
      (dict(filler="noise"), "filler='noise' is not one of"),
      (dict(value_alphabet="ab"), "shares \\['a', 'b'\\] with the"),
      (dict(value_length=0), "value_length=0 must be >= 1"),
      (dict(task="passkey", min_recall_gap=10), "shorter than one passkey"),
      (dict(task="passkey", min_recall_gap=300, max_recall_gap=200),
       "max_recall_gap=200 is below"),
      (dict(task="passkey", document_chars=500, min_recall_gap=300),
       "document_chars=500 holds no recall at gap 300"),
  )
  def test_bad_config_is_a_clear_error(self, fields, message):
    with self.assertRaisesRegex(ValueError, message):
      synthetic.SyntheticConfig(**fields)


if __name__ == "__main__":
  absltest.main()
