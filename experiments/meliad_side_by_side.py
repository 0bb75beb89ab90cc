r"""melodi_hk's training step beside the official meliad's, in one process.

Glossary of shapes: B batch, T segment, W window, S summary, M short memory,
L long memory, I increment, E width, H heads, D head dim, F MLP, V vocab.

Both steps do the same work: forward over one segment of B x T tokens
(windows of W), summed masked cross-entropy, gradient, and the same optax
Adafactor (`launch.train_lib.make_optimizer`: decay 0.8, momentum 0.9,
parameter scaling, the warm-up + cosine schedule), jitted with the state
donated. Ours is `launch/bench_lib.py`'s `Bench` (train_lib's `update`), at
each remat option; meliad's is its `DecoderStack` + `MelodiStack` under its
own gin bindings (those of `base_melodi.gin`), applied with
`mutable=["state"]` and the loss of its `DecoderOnlyLanguageModelRunner`
(targets shifted left, padding masked, summed; its metrics are left out).
The size flags are `launch/bench.py`'s, read once for both models, and the
two parameter counts must agree. One JSON line per compile (compile
seconds, XLA memory analysis), then, unless --compile_only, median step
seconds per alternating round (A B C ... A B C ...) and each step's ratio
to meliad's, with the 1-minute load average.

meliad is not a dependency of this project: get google-research/meliad at
cc1aef5 into a directory outside the repository, install flax==0.12.8 and
gin-config in a separate environment (see README, "Performance"), then

  python -m experiments.meliad_side_by_side --meliad_dir=/tmp/meliad_src \
      --impls=meliad,none,window,dots --out=/tmp/sbs.jsonl   # bench default
  bash experiments/meliad_side_by_side.sh /tmp/meliad_src    # whole suite

--verify_golden first runs meliad from --meliad_dir on tests/testdata's
golden inputs and checks its logits, so a wrong checkout fails loudly.
"""

import dataclasses
import json
import os
import subprocess

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from experiments import meliad_config
from launch import bench
from launch import bench_lib
from launch import train_lib

_MELIAD_DIR = flags.DEFINE_string(
    "meliad_dir", None, "A google-research/meliad checkout (cc1aef5): the "
    "directory holding `transformer/`.")
_IMPLS = flags.DEFINE_list(
    "impls", "meliad,none", "Steps to compare: meliad and/or our remat "
    "options none | window | dots, each optionally with _unroll<k> "
    "(window_unroll=k; --window_unroll does not apply here).")
_OUT = flags.DEFINE_string("out", None, "Append the JSON lines here too.")
_VERIFY = flags.DEFINE_bool(
    "verify_golden", True, "Check meliad against tests/testdata/"
    "melodi_c_t5_w32_s128 first.")


class MeliadBench:
  """meliad's compiled training step, its state and a fixed batch."""

  def __init__(self, cfg, batch: int, compile_only: bool, modules):
    gin, language_model, transformer_stack = modules
    gin.clear_config()
    gin.parse_config(meliad_config.gin_bindings(cfg))
    task = language_model.TransformerTaskConfig(
        sequence_length=cfg.segment_length, batch_size=batch,
        vocab_size=cfg.vocab_size)
    model = transformer_stack.DecoderStack(mode="train", task_config=task)
    init_model = transformer_stack.DecoderStack(mode="init", task_config=task)
    opt = train_lib.OptimizerConfig(num_steps=1000, warmup_steps=10)
    optimizer = train_lib.make_optimizer(opt)
    step_fn = _meliad_step(model, optimizer, language_model)

    def make_state():  # meliad's model_info init: mode "init", ones, sos.
      rng, init_rng = jax.random.split(jax.random.PRNGKey(0))
      keys = jax.random.split(init_rng, 3)
      ones = jnp.ones((batch, cfg.segment_length), jnp.int32)
      variables = init_model.init(
          dict(dropout=keys[0], sample=keys[1], params=keys[2]),
          dict(input_tokens=ones, target_tokens=ones,
               start_of_sequence=jnp.ones((batch,), bool)))
      params = variables["params"]
      return (params, optimizer.init(params), {"state": variables["state"]},
              rng, jnp.zeros([], jnp.int32))

    state = jax.eval_shape(make_state)
    self.num_params = sum(x.size for x in jax.tree.leaves(state[0]))
    if not compile_only:
      state = jax.jit(make_state)()
    self.batch = bench_lib.fixed_batch(cfg, batch)
    self.step, self.compile_s, self.compile_cpu_s = bench_lib.timed_compile(
        jax.jit(step_fn, donate_argnums=(0,)).lower(state, self.batch))
    self.state = None if compile_only else state

  memory = bench_lib.Bench.memory
  time = bench_lib.Bench.time


def _meliad_step(model, optimizer, language_model):
  """meliad's train step: model_runner's loss, value_and_grad, Adafactor."""
  import optax  # pylint: disable=g-import-not-at-top

  def step(state, batch):
    params, opt_state, mutables, rng, count = state
    keys = jax.random.split(jax.random.fold_in(rng, count), 2)
    tokens = batch["tokens"] % model.task_config.vocab_size
    targets, mask = language_model.targets_from_input_tokens(
        tokens, batch["loss_mask"])
    mask = language_model.add_padding_to_loss_mask(mask, tokens, targets)

    def loss_fn(p):
      (logits, _), new_mutables = model.apply(
          {"params": p, **mutables},
          dict(input_tokens=tokens, target_tokens=targets,
               start_of_sequence=batch["start_of_sequence"]),
          rngs=dict(dropout=keys[0], sample=keys[1]), mutable=["state"])
      losses, _ = language_model.softmax_cross_entropy_loss(logits, targets)
      loss = jnp.sum(losses * mask.astype(losses.dtype))
      return loss, new_mutables

    (loss, new_mutables), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return ((params, opt_state, dict(new_mutables), rng, count + 1),
            {"loss": loss, "num_tokens": jnp.sum(mask)})
  return step


def our_num_params(cfg) -> int:
  shapes = jax.eval_shape(train_lib.build(cfg).init, jax.random.PRNGKey(0))
  return sum(x.size for x in jax.tree.leaves(shapes))


def verify_golden(modules, name: str = "melodi_c_t5_w32_s128") -> float:
  """Max |logits - golden| / max |golden| of meliad over the 3 segments."""
  gin, language_model, transformer_stack = modules
  path = os.path.join(os.path.dirname(__file__), "..", "tests", "testdata")
  golden = np.load(os.path.join(path, name + ".npz"))
  with open(os.path.join(path, name + ".json")) as f:
    cfg = meliad_config.golden_config(json.load(f)["config"])
  gin.clear_config()
  gin.parse_config(meliad_config.gin_bindings(cfg))
  task = language_model.TransformerTaskConfig(
      sequence_length=cfg.segment_length, batch_size=2,
      vocab_size=cfg.vocab_size)
  model = transformer_stack.DecoderStack(mode="test", task_config=task)
  variables = {"params": meliad_config.unflatten(golden, "params/"),
               "state": meliad_config.unflatten(golden, "init/state/")}
  worst = 0.0
  for k in (1, 2, 3):
    seg = {n: golden[f"seg{k}/{n}"] for n in
           ("input_tokens", "target_tokens", "start_of_sequence")}
    (logits, _), new = jax.jit(lambda v, s: model.apply(
        v, s, mutable=["state"]))(variables, seg)
    variables = {"params": variables["params"], "state": new["state"]}
    want = golden[f"seg{k}/logits"]
    worst = max(worst, float(np.max(np.abs(logits - want)) /
                             np.max(np.abs(want))))
  return worst


def import_meliad(meliad_dir: str | None):
  """(gin, language_model, transformer_stack) from `meliad_dir`, or a
  clear error naming what to install."""
  meliad_config.check_meliad_dir(meliad_dir)
  try:
    import flax  # pylint: disable=g-import-not-at-top,unused-import
    import gin  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise SystemExit(meliad_config.INSTALL_HINT + f"\n({e})") from e
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.abspath(meliad_dir))
  try:
    from transformer import language_model  # pylint: disable=g-import-not-at-top
    from transformer import transformer_stack  # pylint: disable=g-import-not-at-top
    from transformer.memory2 import melodi_layer  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise SystemExit(f"--meliad_dir={meliad_dir}: importing meliad failed "
                     f"({e}). " + meliad_config.INSTALL_HINT) from e
  return gin, language_model, transformer_stack


def make(impl: str, compile_only: bool, modules):
  """The bench of one implementation: 'meliad' or one of our steps."""
  remat, unroll = ("none", 1) if impl == "meliad" else (
      meliad_config.parse_impl(impl))
  cfg = dataclasses.replace(bench.config_from_flags("melodi", remat),
                            window_unroll=unroll)
  if impl == "meliad":
    return cfg, MeliadBench(cfg, bench._BATCH.value, compile_only, modules)  # pylint: disable=protected-access
  b = bench_lib.Bench(cfg, bench._BATCH.value, compile_only)  # pylint: disable=protected-access
  b.num_params = our_num_params(cfg)
  return cfg, b


def emit(record: dict):
  line = json.dumps(record)
  print(line, flush=True)
  if _OUT.value:
    with open(_OUT.value, "a") as f:
      f.write(line + "\n")


def main(argv):
  del argv
  impls = meliad_config.check_impls(_IMPLS.value)
  modules = import_meliad(_MELIAD_DIR.value) if "meliad" in impls else None
  if modules and _VERIFY.value:
    err = verify_golden(modules)
    emit(dict(mode="verify_golden", max_rel_logit_error=err))
    if err > 1e-4:
      raise SystemExit(f"meliad in {_MELIAD_DIR.value} does not reproduce "
                       f"the golden logits (rel. error {err:.2e}).")
  compile_only = bench._COMPILE_ONLY.value  # pylint: disable=protected-access
  benches, counts = {}, {}
  for impl in impls:
    cfg, b = make(impl, compile_only, modules)
    benches[impl], counts[impl] = b, b.num_params
    emit(dict(mode="compile", impl=impl, config=vars(cfg),
              batch=bench._BATCH.value, num_params=b.num_params,  # pylint: disable=protected-access
              compile_s=round(b.compile_s, 2),
              compile_cpu_s=round(b.compile_cpu_s, 2),
              load_1min=os.getloadavg()[0], **b.memory()))
  if len(set(counts.values())) > 1:
    raise SystemExit(f"parameter counts differ: {counts}; the two models "
                     "are not the same size.")
  if not compile_only:
    emit(alternate(benches))


def code_version() -> str:
  """melodi_hk's commit, with "+" when the tree has changes; "unknown"
  outside a git checkout. Step records carry it: the report must not pass
  an older code's ratios off as the current code's."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                         capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=root)
  except (OSError, subprocess.CalledProcessError):
    return "unknown"
  return rev.stdout.strip() + ("+" if dirty.returncode else "")


def alternate(benches: dict) -> dict:
  """Median step seconds over alternating rounds; ratios to meliad's (or
  to the first implementation) per round, then their median."""
  rounds, steps = bench._ROUNDS.value, bench._STEPS.value  # pylint: disable=protected-access
  times, loads = bench_lib.alternate(benches, rounds, steps,
                                     bench._WARMUP.value)  # pylint: disable=protected-access
  base = "meliad" if "meliad" in benches else next(iter(benches))
  return dict(mode="step", base=base, code=code_version(), rounds=rounds,
              steps=steps,
              step_s={n: float(np.median(t)) for n, t in times.items()},
              step_s_rounds=times,
              ratio_to_base={n: bench_lib.round_ratio(times, n, base)
                             for n in times}, load_1min=loads)


if __name__ == "__main__":
  app.run(main)
