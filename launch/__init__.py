"""Training, evaluation and experiments on top of melodi_hk.

Glossary of shapes, one for every module under launch/ (each module's
docstring names the letters it uses; none gives a letter another meaning):

Model shapes, as in melodi_hk:
- T: segment length.  W: window.  S: summary.  M: short-term memory.
- L: long-term memory.  I: its increment.  C: Memorizing memory slots.
- E: width.  H: attention heads.  D: head dim.  F: MLP width.  V: vocabulary.

Where the rows live:
- N: hosts (JAX processes).  A: accelerator devices of one host (the
  pmap / shard_map axis, `state.AXIS`).
- B: global batch rows, all hosts together (`config.batch_size`).
- R = B / N: the rows of this host; R/A rows on each of its devices.
  In evaluation, which runs on one host, R = `config.eval_batch_size`.

Other counts:
- T': prompt tokens (sampling).  K: steps between metric flushes.
- P: a target's position in its document.  G: characters between two
  mentions of a value (its gap).  X: characters of one value.

One training path: launch/train.py (flags and `main`) calls
`trainer.train` (resume, loop, report, checkpoint, stop), which runs
`train_lib`'s step (optimiser, update) on one of the state layouts of
launch/state.py (host, pmap, global: described there, once). The loop
imports the config glue of launch/experiment.py, which imports train_lib's
`OptimizerConfig`; that is why the loop and the step are two modules.
"""
