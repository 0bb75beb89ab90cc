r"""Probes passkey checkpoints: where recall comes from, memory, Adam steps.

Glossary of shapes:
- R: probe documents (rows).  N: positions per row (a multiple of T).
- T: segment length.  W: window length.  M: short-term memory tokens.
- E: width.  H: heads.  K = M + W + S keys.  V: vocabulary.

  python -m experiments.lr_probe --every=500 --rows=8 \
      /tmp/lr8/s_adam2e-3_3k /tmp/lr8/xl_adam2e-3   # see lr_sensitivity.sh

For every kept checkpoint (step a multiple of --every, and step 0) of each
launch/train workdir (passkey task, fixed gap), 4R held-out documents
(accuracy, gradients; R for the internals) are read from their start with
memory carried, and:
- recall-digit accuracy is split by where the previous mention lies: in
  the query's own window ("same_window"), in the previous window of the
  same segment ("prev_window": needs the memory, and training's gradient
  reaches the memory's writer), or in the previous segment
  ("prev_segment": the memory is a constant in training);
- per parameter group: gradient RMS of the digit loss, and for Adam the
  step's update RMS / parameter RMS (from the saved moments);
- MELODI only: each layer's attention mass on its short-term memory keys
  from the queries that predict cross-window recall digits, and the RMS of
  the memory tokens after every window of the document, and the share of
  the memory's energy that varies with the document (the rest is a
  constant vector per slot).
Writes <out>/probe.json, probe.png and probe.md (a table).
"""

import functools
import json
import os
import re

from absl import app
from absl import flags
import haiku as hk
import jax
import jax.numpy as jnp
import melodi_hk
from melodi_hk import attention
from melodi_hk import layers
from melodi_hk import memory as memory_lib
from melodi_hk import model as model_lib
from melodi_hk import nn
from melodi_hk import transformer_xl
import ml_collections
import numpy as np

from data import pipeline
from data import tokenizers
from launch import checkpoints
from launch import experiment
from launch import train_lib

_OUT = flags.DEFINE_string("out", "experiments/results/lr_sensitivity",
                           "Folder for probe.json and probe.png.")
_ROWS = flags.DEFINE_integer("rows", 16, "Documents for the internals; 4x "
                             "as many for accuracy and gradients.")
_EVERY = flags.DEFINE_integer("every", 1, "Probe only checkpoints whose "
                              "step is a multiple of this (and step 0).")

KINDS = ("same_window", "prev_window", "prev_segment")
# Parameter path -> group; the first matching pattern wins.
GROUPS = (("short_mixing/~/", "mixing_norms"), ("short_mixing", "short_mixing"),
          ("summary_mixing/~/", "mixing_norms"),
          ("summary_mixing", "summary_mixing"),
          ("summary_embeddings", "summary_embeddings"),
          ("(query|key|value)", "attention_qkv"),
          ("attention/~/output", "attention_output"),
          ("attention:scale", "attention_scale"),
          ("relative_positions", "position_bias"), ("ffn", "ffn"),
          ("norm", "norms"), ("embedding", "embedding"))


def load(workdir: str, every: int = 1):
  """(config, model config, {step: TrainingState}): kept steps that are
  multiples of `every`, and step 0."""
  with open(os.path.join(workdir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  model_cfg = experiment.model_config(config)
  optimizer = train_lib.make_optimizer(experiment.optimizer_config(config))
  target = jax.tree.map(
      lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(functools.partial(
          train_lib.init_state, melodi_hk.build(model_cfg), optimizer,
          config.seed, config.batch_size)))
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  try:
    states = {step: jax.device_put(ckpt.restore(target, step)[0])
              for step in ckpt.all_steps() if step % every == 0}
  finally:
    ckpt.close()
  # Step 0: the initial state, as train_lib.init_state makes it.
  states[0] = train_lib.init_state(melodi_hk.build(model_cfg), optimizer,
                                   config.seed, 1)
  return config, model_cfg, states


def documents(config, rows: int):
  """tokens int32[R, N], value mask bool[R, N], kind int8[R, N].

  kind[r, p] = 1 + KINDS.index(...) where position p holds a recall digit
  predicted inside its segment, else 0.
  """
  docs = pipeline.open_corpus(
      "synthetic", "validation", data_dir=None,
      synthetic_config=experiment.synthetic_config(config))
  t, w = config.model.segment_length, config.model.window_length
  texts = [docs[i] for i in range(rows)]
  n = -(-max(map(len, texts)) // t) * t
  tokens = np.zeros((rows, n), np.int32)
  values = np.zeros((rows, n), bool)
  kind = np.zeros((rows, n), np.int8)
  tokenizer = tokenizers.get_tokenizer("bytes", None)
  for r, text in enumerate(texts):
    tokens[r, :len(text)] = tokenizer.encode(text)
    for m in docs.mentions(r):
      values[r, m.start:m.end] = True
      for p in range(m.start, m.end) if m.is_recall else ():
        q, source = p - 1, p - m.gap  # Predicting position, its source.
        if q // t != p // t:
          continue  # The segment's last column predicts nothing.
        kind[r, p] = 1 + (0 if source // w == q // w else
                          1 if source // t == q // t else 2)
  return tokens, values, kind


def accuracy(model_cfg, params, tokens, kind) -> dict[str, float]:
  """Recall-digit accuracy by KINDS, memory carried across segments."""
  model = melodi_hk.build(model_cfg)
  apply = jax.jit(model.apply)
  t = model_cfg.segment_length
  memory, hits = model.init_memory(tokens.shape[0]), []
  for s in range(tokens.shape[1] // t):
    logits, memory = apply(params, memory, tokens[:, s * t:(s + 1) * t],
                           np.full(tokens.shape[0], s == 0))
    hits.append(np.argmax(np.asarray(logits), -1))  # [R, T]
  predicted = np.concatenate(hits, axis=1)[:, :-1]  # Column p-1 -> token p.
  hit = predicted == tokens[:, 1:] % model_cfg.vocab_size
  return {name: float(hit[kind[:, 1:] == i + 1].mean())
          if (kind[:, 1:] == i + 1).any() else None  # T = W: no prev_window.
          for i, name in enumerate(KINDS)}


@functools.cache
def _probe_window(model_cfg):
  """Jitted (params, memory, tokens [R, W]) -> (logits, memory, mass).

  mass: per layer, float32[R, H, W] attention on the M memory keys from
  the W context queries, recomputed from the layer's own projections.
  """
  def window(memory, tokens):
    stack = model_lib.MelodiStack(model_cfg)
    masses, branches = [], {}

    def intercept(method, args, kwargs, context):
      out = method(*args, **kwargs)
      _record_branch(branches, context, out, tokens.shape[1])
      if (isinstance(context.module, layers.MelodiLayer)
          and context.method_name == "_self_attention"):
        x, u, short = args[:3]
        num_memory, att = short.tokens.shape[1], context.module.attention
        seq = jnp.concatenate([short.tokens, x, u], axis=1)  # [R, K, E]
        keys, _, queries = att.keys_values_queries(seq, False,
                                                   first_query=num_memory)
        distance, mask = attention.causal_layout(num_memory,
                                                 seq.shape[1] - num_memory)
        weights = attention.safe_softmax(attention._scores(  # [R, H, Q, K]
            queries, keys, att.scale(),
            context.module.position_bias(distance), mask))
        masses.append(weights[:, :, :x.shape[1], :num_memory].sum(-1))
      return out

    with hk.intercept_methods(intercept):
      logits, carry = stack(stack.begin_segment(memory, False), tokens, False)
    return logits, memory_lib.MelodiMemory(
        carry.short, tuple(memory_lib.LongTermMemory(c.tokens)
                           for c in carry.long)), masses, branches

  return jax.jit(hk.transform(window).apply)


def _record_branch(branches: dict, context, out, width: int) -> None:
  """RMS of each attention / FFN branch output on the W context rows."""
  if (isinstance(context.module, nn.FeedForward)
      and context.method_name == "__call__") or (
          isinstance(context.module, attention.Attention)
          and context.method_name == "output"):
    name = context.module.module_name.split("/~/")[-2]  # layer_<l>
    kind = "ffn" if isinstance(context.module, nn.FeedForward) else "attn"
    branches[f"{name}/{kind}"] = jnp.sqrt(jnp.mean(jnp.square(
        out[:, :width])))


@functools.cache
def _xl_segment(model_cfg):
  """Jitted (params, caches, tokens [R, T]) -> branch RMS of Transformer-XL."""
  def segment(caches, tokens):
    branches = {}
    with hk.intercept_methods(lambda method, args, kwargs, context: (
        lambda out: (_record_branch(branches, context, out, tokens.shape[1]),
                     out)[1])(method(*args, **kwargs))):
      transformer_xl.XLStack(model_cfg)(tokens, caches, False)
    return branches
  return jax.jit(hk.transform(segment).apply)


def xl_internals(model_cfg, params, tokens) -> dict:
  """Branch RMS of the first segment (fresh caches)."""
  caches = melodi_hk.build(model_cfg).init_memory(tokens.shape[0]).caches
  out = _xl_segment(model_cfg)(params, None, caches,
                               tokens[:, :model_cfg.segment_length])
  return {"branch_rms": {k: float(v) for k, v in sorted(out.items())}}


def melodi_internals(model_cfg, params, tokens, kind) -> dict:
  """Memory-attention mass at recall queries and memory RMS per window."""
  fn, w = _probe_window(model_cfg), model_cfg.window_length
  memory = melodi_hk.build(model_cfg).init_memory(tokens.shape[0])
  masses, rms, logits, carried = [], [], [], []
  branch = []
  for k in range(tokens.shape[1] // w):
    out, memory, mass, branches = fn(params, None, memory,
                                     tokens[:, k * w:(k + 1) * w])
    logits.append(out)
    branch.append({k: float(v) for k, v in branches.items()})
    masses.append(np.stack([np.asarray(m) for m in mass]))  # [layers, R, H, W]
    rms.append([float(jnp.sqrt(jnp.mean(jnp.square(s.tokens))))
                for s in memory.short])
    carried.append([np.asarray(s.tokens) for s in memory.short])
  # The probe must be the model: its first segment's logits equal apply's.
  t = model_cfg.segment_length
  want, _ = melodi_hk.build(model_cfg).apply(
      params, melodi_hk.build(model_cfg).init_memory(tokens.shape[0]),
      tokens[:, :t], np.ones(tokens.shape[0], bool))
  np.testing.assert_allclose(np.concatenate(logits[:t // w], 1), want,
                             rtol=1e-4, atol=1e-4)
  mass = np.concatenate(masses, axis=-1)  # [layers, R, H, N]
  query_kind = np.pad(kind[:, 1:], ((0, 0), (0, 1)))  # Query p-1 predicts p.
  out = {"memory_rms_by_window": np.asarray(rms).T.tolist(),  # [layers, N/W]
         "branch_rms": {k: float(np.mean([b[k] for b in branch]))
                        for k in sorted(branch[0])},
         "memory_content_fraction": [
             _content_fraction(np.stack([c[l] for c in carried], 1))
             for l in range(len(carried[0]))]}
  for i, name in enumerate(KINDS):
    sel = query_kind == i + 1  # [R, N]
    out[f"memory_mass_{name}"] = [  # [layers][H]: mean over those queries
        mass[l].transpose(1, 0, 2)[:, sel].mean(-1).tolist()
        if sel.any() else None for l in range(mass.shape[0])]
  return out


def _content_fraction(tokens: np.ndarray) -> float:
  """Share of the memory's energy that varies over rows and windows.

  tokens [R, N/W, M, E]: 1 - |per-slot mean|^2 / mean |token|^2; near 0
  when every slot holds the same vector whatever the document says.
  """
  mean = tokens.mean(axis=(0, 1))  # [M, E]
  return float(1 - np.sum(np.square(mean)) * tokens.shape[0]
               * tokens.shape[1] / np.sum(np.square(tokens)))


def group_of(path: str) -> str:
  for pattern, group in GROUPS:
    if re.search(pattern, path):
      return group
  return "other"


def _flat(tree) -> dict[str, np.ndarray]:
  """{'module:name': array} of a Haiku params-shaped tree."""
  return {f"{module}:{name}": np.asarray(value)
          for module, leaves in tree.items() for name, value in leaves.items()}


def _rms_by_group(arrays: dict[str, np.ndarray]) -> dict[str, float]:
  sums = {}
  for path, a in arrays.items():
    entry = sums.setdefault(group_of(path), [0.0, 0])
    entry[0] += float(np.sum(np.square(a, dtype=np.float64)))
    entry[1] += a.size
  return {g: (s / n) ** 0.5 for g, (s, n) in sorted(sums.items())}


def optimizer_stats(config, model_cfg, state, tokens, values,
                    groups: int = 4) -> dict:
  """Gradient RMS of the digit loss on segment 1 of `groups` disjoint sets
  of documents, its coherence, and Adam's update / param RMS."""
  loss = melodi_hk.build_loss(model_cfg)
  model = melodi_hk.build(model_cfg)
  t, rows = model_cfg.segment_length, tokens.shape[0] // groups
  grad_fn = jax.jit(jax.grad(lambda p, m, x, s, v: loss(p, m, x, s, v)[0].loss))
  grads = []
  for g in range(groups):
    x, v = tokens[g * rows:(g + 1) * rows], values[g * rows:(g + 1) * rows]
    _, memory = model.apply(state.params, model.init_memory(rows), x[:, :t],
                            np.ones(rows, bool))
    grads.append(_flat(jax.device_get(grad_fn(
        state.params, memory, x[:, t:2 * t], np.zeros(rows, bool),
        v[:, t:2 * t]))))
  mean = {k: np.mean([g[k] for g in grads], 0) for k in grads[0]}
  each = [_rms_by_group(g) for g in grads]
  out = {"grad_rms": {g: float(np.mean([e[g] for e in each]))
                      for g in each[0]},
         "grad_rms_of_mean": _rms_by_group(mean),
         "param_rms": _rms_by_group(_flat(state.params))}
  adam = [s for s in jax.tree.leaves(
      state.opt_state, is_leaf=lambda x: hasattr(x, "nu"))
          if hasattr(s, "nu")]
  if adam and int(adam[0].count) > 0:
    opt = experiment.optimizer_config(config)
    step = int(adam[0].count)
    lr = float(train_lib.learning_rate(state.step, opt))
    update = jax.tree.map(
        lambda m, v: lr * (m / (1 - opt.b1 ** step)) / (
            np.sqrt(v / (1 - opt.b2 ** step)) + opt.eps), adam[0].mu,
        adam[0].nu)
    rms = _rms_by_group(_flat(update))
    out["update_over_param"] = {g: rms[g] / out["param_rms"][g] for g in rms}
  out["attention_scale"] = {m: np.abs(np.asarray(v["scale"])).tolist()
                            for m, v in state.params.items()
                            if m.endswith("/attention")}
  return out


def probe(workdir: str, rows: int = 16, every: int = 1) -> dict:
  config, model_cfg, states = load(workdir, every)
  tokens, values, kind = documents(config, 4 * rows)
  result = {"workdir": workdir, "model_name": config.model_name,
            "optimizer": config.optimizer.to_dict(), "checkpoints": {}}
  for step, state in sorted(states.items()):
    entry = {"recall_accuracy": accuracy(model_cfg, state.params, tokens,
                                         kind)}
    entry.update(optimizer_stats(config, model_cfg, state, tokens, values))
    if config.model_name == "melodi":
      entry.update(melodi_internals(model_cfg, state.params, tokens[:rows],
                                    kind[:rows]))
    else:
      entry.update(xl_internals(model_cfg, state.params, tokens[:rows]))
    result["checkpoints"][int(step)] = entry
    print(workdir, step, entry["recall_accuracy"], flush=True)
  log = os.path.join(workdir, "eval_log.jsonl")
  if os.path.exists(log):
    result["held_out"] = [json.loads(l) for l in open(log).read().splitlines()]
  return result


def plot(results: list[dict], path: str) -> None:
  """Six panels over training steps, one colour per run."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(2, 3, figsize=(16, 9))
  for i, run in enumerate(results):
    color = plt.cm.tab20(i % 20)
    name = os.path.basename(run["workdir"].rstrip("/"))
    steps = sorted(run["checkpoints"], key=int)
    ck = [run["checkpoints"][s] for s in steps]
    steps = [int(s) for s in steps]
    held = run.get("held_out", [])
    axes[0, 0].plot([h["step"] for h in held],
                    [h["recall_accuracy"] for h in held], "o-", c=color,
                    label=name)
    for kind, style in zip(KINDS, ("-", "--", ":")):
      axes[0, 1].plot(steps, [np.nan if c["recall_accuracy"][kind] is None
                              else c["recall_accuracy"][kind] for c in ck],
                      style, c=color,
                      label=name if kind == KINDS[0] else None)
    for group, style in (("short_mixing", "-"), ("attention_qkv", ":")):
      pts = [(s, c["update_over_param"][group]) for s, c in zip(steps, ck)
             if group in c.get("update_over_param", {})]
      if pts:
        axes[0, 2].semilogy(*zip(*pts), style, c=color,
                            label=name if group == "attention_qkv" else None)
    for layer, style in (("layer_1", "-"), ("layer_0", "--")):
      axes[1, 0].plot(steps, [c["branch_rms"][f"{layer}/ffn"] for c in ck],
                      style, c=color,
                      label=name if layer == "layer_1" else None)
    if "memory_mass_same_window" in ck[-1]:
      for l, style in enumerate(("-", "--")):
        axes[1, 1].plot(steps, [max(c["memory_mass_same_window"][l])
                                for c in ck], style, c=color,
                        label=name if l == 0 else None)
        axes[1, 2].plot(steps, [c["memory_content_fraction"][l] for c in ck],
                        style, c=color, label=name if l == 0 else None)
  titles = (("held-out recall accuracy (eval_log.jsonl)", "step"),
            ("recall accuracy by source: same window -, previous window "
             "--, previous segment :", "step"),
            ("Adam update / param RMS: attention qkv :, short mixing -",
             "step"),
            ("FFN output RMS on context rows: layer 1 -, layer 0 --", "step"),
            ("layer 0 - / 1 -- attention on memory, in-window recall "
             "queries (max head)", "step"),
            ("memory content share (varies over documents and windows): "
             "layer 0 -, 1 --", "step"))
  for ax, (title, xlabel) in zip(axes.flat, titles):
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def _setup(workdir: str) -> dict:
  """The fields of a run's config.json that tell the runs apart."""
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  model = config["model"]
  memory = (f"{model['short_term_memory_size']} / {model['summary_size']}"
            if config["model_name"] == "melodi" else
            "cache" if model.get("xl_cache", True) else "none")
  return dict(model_name=config["model_name"], memory=memory,
              gap=config["data"]["synthetic"]["min_recall_gap"],
              max_lr=config["optimizer"]["max_lr"])


def table(results: list[dict]) -> str:
  """One markdown row per run: its set-up, recall and plateau measures."""
  lines = ["| run | model | M / S | gap | Adam lr | steps | held-out recall "
           "(last / best) | probe recall same / prev window / prev segment | "
           "layer-1 FFN RMS (max) | memory content share, layer 0 / 1 |",
           "|" + "---|" * 10]
  for run in results:
    cfg, steps = _setup(run["workdir"]), sorted(run["checkpoints"], key=int)
    last = run["checkpoints"][steps[-1]]
    held = [h["recall_accuracy"] for h in run.get("held_out", [])] or [0]
    acc = " / ".join("-" if a is None or a != a else f"{a:.2f}"
                     for a in map(last["recall_accuracy"].get, KINDS))
    ffn = max(c["branch_rms"]["layer_1/ffn"]
              for c in run["checkpoints"].values())
    content = " / ".join(f"{x:.3f}" for x in last.get(
        "memory_content_fraction", [])) or "-"
    lines.append(
        f"| {os.path.basename(run['workdir'].rstrip('/'))} | "
        f"{cfg['model_name']} | {cfg['memory']} | {cfg['gap']} | "
        f"{cfg['max_lr']:g} | {steps[-1]} | {held[-1]:.2f} / {max(held):.2f} "
        f"| {acc} | {ffn:.1f} | {content} |")
  return "\n".join(lines) + "\n"


def _cached_probe(workdir: str, folder: str) -> dict:
  """probe(), kept in <folder>/<run>.json and reused for the same settings
  and checkpoints (so adding a run to the plot re-probes only that run)."""
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, os.path.basename(workdir.rstrip("/")) + ".json")
  steps = sorted(int(s) for s in os.listdir(checkpoints.checkpoint_dir(
      workdir)) if s.isdigit())
  key = dict(rows=_ROWS.value, every=_EVERY.value, steps=steps)
  if os.path.exists(path):
    with open(path) as f:
      cached = json.load(f)
    if cached.get("key") == key:
      return cached
  result = dict(probe(workdir, _ROWS.value, _EVERY.value), key=key)
  with open(path, "w") as f:
    json.dump(result, f, indent=1)
  return result


def main(argv: list[str]) -> None:
  if len(argv) < 2:
    raise app.UsageError("Pass one or more launch/train workdirs.")
  os.makedirs(_OUT.value, exist_ok=True)
  results = [_cached_probe(w, os.path.join(_OUT.value, "runs"))
             for w in argv[1:]]
  with open(os.path.join(_OUT.value, "probe.json"), "w") as f:
    json.dump(results, f, indent=1)
  plot(results, os.path.join(_OUT.value, "probe.png"))
  with open(os.path.join(_OUT.value, "probe.md"), "w") as f:
    f.write(table(results))
  print("wrote", os.path.join(_OUT.value, "probe.{json,png,md}"))


if __name__ == "__main__":
  app.run(main)
