"""Tests for data/synthetic.py: determinism and the long-range structure."""

from absl.testing import absltest

from data import synthetic

GAP = 4000


class SyntheticDocumentsTest(absltest.TestCase):

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


if __name__ == "__main__":
  absltest.main()
