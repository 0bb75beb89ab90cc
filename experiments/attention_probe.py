r"""Where each MELODI layer attends: attention mass by key group at recalls.

Glossary of shapes:
- B: batch rows.  T: segment length.  W: window length.  S: summary tokens.
- M: short-term memory.  L: long-term memory.  Q = W + S queries per window.
- H: heads.  D: head dim.  G: key groups (short memory, context, summary).

  python -m experiments.attention_probe /tmp/ev/sl_curriculum24 /tmp/ev/...
  python -m experiments.attention_probe --json=OUT.json /tmp/ev/...

For each trained MELODI workdir, streams held-out passkey documents with
memory carried (as launch/eval does) and recomputes every layer's attention
weights from the parameters and that layer's inputs. Queries are grouped by
what the next token is: a recalled value digit ("recall"; its first digit
alone, "recall_first"), any other window token ("other") or a summary token
("summary"). For each group and layer it reports the share of self-attention
mass on the short-term memory, the window context and the summary tokens
(context queries cannot see the current window's summary: the mask is
strictly causal and summary tokens come last), and for a long-term layer the
share of cross-attention mass on long-memory slots written so far, the mean
1 - sigmoid(attn_gate) and the share of the gated output's norm that comes
from the cross-attention, |(1-a) c| / (|a s| + |(1-a) c|) per head. It
also prints each layer's learned per-head temperature |scale|, which the
cross-attention shares (unit-norm keys and queries, no position bias: a
slot's logit is at most |scale|), or, with long_memory_scale, the long
layer's own |long_scale| next to it.

The weights are recomputed by a subclass of MelodiLayer that the probe
swaps in while building the stack; the model code is unchanged, and
`check` is the largest difference between the recomputed attention outputs
and the layer's own, relative to the largest output (0 up to rounding).
"""

import json
import sys
from unittest import mock

import haiku as hk
import jax
import jax.numpy as jnp
import melodi_hk
import ml_collections
import numpy as np

from data import pipeline
from data import synthetic
from launch import eval_lib
from launch import experiment
from melodi_hk import attention
from melodi_hk import layers
from melodi_hk import memory as memory_lib
from melodi_hk import model as model_lib

GROUPS = ("recall", "recall_first", "other", "summary")
KEY_GROUPS = ("short_memory", "context", "summary")
LONG_KEYS = ("long_written", "long_slots", "long_gate", "long_output")


class ProbeLayer(layers.MelodiLayer):
  """A MelodiLayer that also records its attention weights' key groups."""

  def __call__(self, x, u, short, long, is_training):
    self.probe = self._probe(x, u, short, long)
    return super().__call__(x, u, short, long, is_training)

  def _probe(self, x, u, short, long) -> dict:
    seq = jnp.concatenate([short.tokens, x, u], axis=1)  # [B, M+W+S, E]
    m, w = short.tokens.shape[1], x.shape[1]
    keys, values, raw_queries = self.attention.keys_values_queries(
        seq, False, first_query=m, normalized=False)  # queries [B, Q, H, D]
    keys, queries = attention.unit(keys), attention.unit(raw_queries)
    distance, mask = attention.causal_layout(m, seq.shape[1] - m)
    scale = self.attention.scale()
    weights = attention.safe_softmax(attention._scores(  # [B, H, Q, M+W+S]
        queries, keys, scale, self.position_bias(distance), mask))
    groups = jnp.stack([weights[..., :m].sum(-1), weights[..., m:m + w].sum(
        -1), weights[..., m + w:].sum(-1)], -1)  # [B, H, Q, G]
    self_out = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(values.dtype),
                          values)  # [B, Q, H, D] as the model rounds it
    reference = self._self_attention(x, u, short, False)[1]
    out = dict(groups=groups, check=_relative(self_out, reference))
    if self.long_term:
      out.update(self._probe_long(queries, raw_queries, long, self_out))
    return out

  def _probe_long(self, queries, raw_queries, long, self_out) -> dict:
    """queries: unit-norm [B, Q, H, D]; raw_queries: before `unit`, as
    the model's cross-attention takes them."""
    written = jnp.any(long.tokens != 0, axis=-1)  # [B, L]
    mask = None
    if self.cfg.mask_unwritten_long_memory:
      mask = jnp.broadcast_to(written[:, None, None, :], (  # [B, 1, Q, L]
          written.shape[0], 1, queries.shape[1], written.shape[1]))
    weights = attention.safe_softmax(attention._scores(  # [B, H, Q, L]
        queries, long.keys, self.long_scale(), None, mask))
    cross = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(long.values.dtype),
                       long.values)  # [B, Q, H, D]
    reference = self._cross_attention(raw_queries, long, False)
    gate = hk.get_parameter("attn_gate", [self.cfg.num_heads,
                                          self.cfg.head_dim], jnp.float32)
    alpha = jax.nn.sigmoid(gate)  # [H, D]
    own = jnp.linalg.norm(alpha * self_out, axis=-1)  # [B, Q, H]
    other = jnp.linalg.norm((1 - alpha) * cross, axis=-1)  # [B, Q, H]
    long_written = jnp.sum(weights * written[:, None, None, :], -1)  # [B,H,Q]
    entropy = -jnp.sum(weights * jnp.log(weights + 1e-30), -1)  # [B, H, Q]
    return dict(
        long_written=long_written, long_slots=jnp.exp(entropy),
        long_gate=jnp.mean(1 - alpha) * jnp.ones_like(long_written),
        long_output=jnp.transpose(other / (own + other + 1e-9), (0, 2, 1)),
        long_check=_relative(cross, reference))


def _relative(x, reference) -> jax.Array:  # max |x - ref| / max |ref|
  return jnp.max(jnp.abs(x - reference)) / (jnp.max(jnp.abs(reference)) +
                                            1e-30)


def build(cfg):
  """(begin(params, memory) -> carry, step(params, carry, tokens [B, W]))."""
  if cfg.scan_layers:
    raise ValueError(
        "attention_probe reads the layers one by one; probe the per-layer "
        "model: dataclasses.replace(cfg, scan_layers=False) with "
        "melodi_hk.unstack_layers(params, cfg).")
  def template():
    with mock.patch.object(layers, "MelodiLayer", ProbeLayer):
      stack = model_lib.MelodiStack(cfg)

    def step(carry, tokens):
      logits, carry = stack(carry, tokens, False)
      return logits, carry, [layer.probe for layer in stack.layers.values()]

    def init(memory, tokens):
      return step(stack.begin_segment(memory, False), tokens)

    return init, (lambda memory: stack.begin_segment(memory, False), step)
  begin, step = hk.multi_transform(template).apply
  return (jax.jit(lambda p, memory: begin(p, None, memory)),
          jax.jit(lambda p, carry, tokens: step(p, None, carry, tokens)))


def probe_segment(cfg, fns, params, memory, tokens, start_of_sequence):
  """Runs one segment [B, T]: (logits [B, T, V], probes per window, memory)."""
  begin, step = fns
  memory = memory_lib.reset(memory, jnp.asarray(start_of_sequence))
  carry = begin(params, memory)
  logits, probes = [], []
  for start in range(0, tokens.shape[1], cfg.window_length):
    out, carry, probe = step(params, carry,
                             tokens[:, start:start + cfg.window_length])
    logits.append(out)
    probes.append(jax.tree.map(np.asarray, probe))
  memory = memory_lib.MelodiMemory(carry.short, tuple(
      memory_lib.LongTermMemory(c.tokens) for c in carry.long))
  return np.concatenate(logits, 1), probes, memory


def _labels(mentions, offset: int, length: int) -> tuple[np.ndarray, ...]:
  """Recall / first-recall-digit masks bool[T] of one row's segment."""
  pos = offset + np.arange(1, length + 1)  # Target positions (as scores.py).
  recall, first = np.zeros(length, bool), np.zeros(length, bool)
  for m in mentions:
    if m.is_recall:
      recall |= (pos >= m.start) & (pos < m.end)
      first |= pos == m.start
  return recall, first


class Shares:
  """Running sums of each layer's probe over each query group."""

  def __init__(self):
    self.sums: dict = {}

  def add(self, layer: int, group: str, probe: dict, sel: np.ndarray):
    """sel bool[B, Q]: the queries of `group` in this window."""
    if not sel.any():
      return
    entry = self.sums.setdefault((layer, group), {"queries": 0})
    entry["queries"] += int(sel.sum())
    values = {"groups": probe["groups"].mean(1)}  # [B, Q, G]
    for key in LONG_KEYS:
      if key in probe:
        values[key] = probe[key].mean(1)  # [B, Q]
    for key, v in values.items():
      entry[key] = entry.get(key, 0.0) + v[sel].sum(0)

  def result(self) -> list[dict]:
    rows = []
    for (layer, group), entry in sorted(self.sums.items()):
      n = entry["queries"]
      row = dict(layer=layer, queries=group, count=n, **{
          k: float(v) for k, v in zip(KEY_GROUPS, entry["groups"] / n)})
      for key in LONG_KEYS:
        if key in entry:
          row[key] = float(entry[key] / n)
      rows.append(row)
    return rows


def probe_run(workdir: str, max_batches: int = 32) -> dict:
  """Attention shares of `workdir`'s latest checkpoint on held-out data."""
  with open(f"{workdir}/config.json") as f:
    config = ml_collections.ConfigDict(json.load(f))
  cfg = experiment.model_config(config)
  params, step = eval_lib.restore_params(config, cfg, workdir, None)
  fns, rows = build(cfg), config.eval_batch_size
  stream = experiment.make_stream(config, "validation", rows=rows, devices=1,
                                  training=False)
  documents = pipeline.open_corpus(
      "synthetic", "validation", data_dir=None,
      synthetic_config=experiment.synthetic_config(config))
  memory = melodi_hk.build(cfg).init_memory(rows)
  offsets, mentions = np.zeros(rows, np.int64), [[] for _ in range(rows)]
  shares, checks = Shares(), []
  for _, batch in zip(range(max_batches), stream):
    for r in np.flatnonzero(batch["start_of_sequence"]):
      offsets[r] = 0
      doc = int(batch["doc_index"][r])
      mentions[r] = documents.mentions(doc) if doc >= 0 else []
    _, probes, memory = probe_segment(cfg, fns, params, memory,
                                      batch["tokens"],
                                      batch["start_of_sequence"])
    t = batch["tokens"].shape[1]
    labels = [_labels(mentions[r], offsets[r], t) for r in range(rows)]
    recall = np.stack([l[0] for l in labels])  # [B, T]
    first = np.stack([l[1] for l in labels])  # [B, T]
    live = (batch["doc_index"] >= 0)[:, None]  # [B, 1]
    w, s = cfg.window_length, cfg.summary_size
    for k, probe in enumerate(probes):
      cols = slice(k * w, (k + 1) * w)
      summary = np.broadcast_to(live, (rows, s))
      pad = lambda a: np.concatenate([a, np.zeros((rows, s), bool)], 1)
      for layer, p in enumerate(probe):
        checks.append(max(float(p["check"]), float(p.get("long_check", 0))))
        shares.add(layer, "recall", p, pad(recall[:, cols]))
        shares.add(layer, "recall_first", p, pad(first[:, cols]))
        shares.add(layer, "other", p, pad(live & ~recall[:, cols]))
        shares.add(layer, "summary", p, np.concatenate(
            [np.zeros((rows, w), bool), summary], 1))
    offsets += t
  scales = {m.split("/")[2]: np.abs(np.asarray(v["scale"])).tolist()
            for m, v in params.items() if m.endswith("~/attention")}
  scales.update({f"{m.split('/')[2]} long": np.abs(np.asarray(
      v["long_scale"])).tolist() for m, v in params.items()
                 if "long_scale" in v})
  return dict(workdir=workdir, step=step, batches=max_batches,
              max_check=max(checks), scale=scales, shares=shares.result())


def markdown(results: list[dict]) -> str:
  """One table row per run, layer and query group."""
  lines = ["| run | layer | queries | n | short memory | context | summary "
           "| long: mass on written slots | long: effective slots "
           "| long: mean 1-gate | long: share of output norm |",
           "|---" * 11 + "|"]
  fmt = lambda row, k: f"{row[k]:.3f}" if k in row else ""
  for result in results:
    name = result["workdir"].rstrip("/").rsplit("/", 1)[-1]
    for row in result["shares"]:
      lines.append(f"| {name} | {row['layer']} | {row['queries']} | "
                   f"{row['count']} | " + " | ".join(fmt(row, k) for k in (
                       *KEY_GROUPS, *LONG_KEYS)) + " |")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  path = None
  if argv and argv[0].startswith("--json="):
    path, argv = argv[0].removeprefix("--json="), argv[1:]
  results = [probe_run(workdir) for workdir in argv]
  if path:
    with open(path, "w") as f:
      json.dump(results, f, indent=1)
  print(markdown(results))
  print("\nlargest |recomputed - layer's own| attention output (relative): "
        + ", ".join(f"{r['max_check']:.1e}" for r in results))
  for r in results:  # "<layer> long": the cross-attention's own, if any.
    print(f"\n{r['workdir']}: learned |scale| per head " + "; ".join(
        f"{layer} " + "/".join(f"{v:.2f}" for v in s)
        for layer, s in r["scale"].items()))


if __name__ == "__main__":
  if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0 if len(sys.argv) > 1 else 2)  # Asked for, or missing.
  jax.config.update("jax_platforms", "cpu")
  main(sys.argv[1:])
