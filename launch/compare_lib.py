r"""The library behind launch/compare.py: train a suite, score it, compare.

Glossary of shapes:
- B: batch rows.  T: segment length (B x T tokens per step, every row).
- G: characters between two mentions of a value (passkey suites).

`run_suite` trains each row of a suite (launch/configs/suites.py) with
launch/trainer's loop in <workdir>/<row> (resumable, finished rows are
skipped), scores it with every memory mode, and writes the table, JSON and
plots that launch/compare.py's docstring lists.
"""

import json
import os
from typing import Any

from absl import logging
import melodi_hk
import numpy as np

from launch import checkpoints
from launch import eval_lib
from launch import experiment
from launch import plots
from launch import trainer



def run_suite(suite: dict[str, Any], workdir: str,
              rows: list[str] | None = None) -> dict[str, Any]:
  """Trains and scores every row (or `rows`, in that order); writes and
  returns the comparison."""
  unknown = sorted(set(rows or ()) - set(suite["rows"]))
  if unknown:
    raise ValueError(f"Rows {unknown} are not in the suite; it has "
                     f"{list(suite['rows'])}.")
  configs = {name: suite["rows"][name] for name in rows or suite["rows"]}
  check_equal_budget(configs)
  results = {}
  for name, config in configs.items():
    directory = os.path.join(workdir, name)
    if _latest_step(directory) != config.num_steps:
      logging.info("Training %s in %s.", name, directory)
      trainer.train(config, directory)
    results[name] = _evaluate(name, config, directory,
                              suite.get("max_eval_batches"))
  return write_comparison(results, workdir)


def check_equal_budget(configs) -> None:
  budgets = {name: c.batch_size * c.model.segment_length * c.num_steps
             for name, c in configs.items()}
  if len(set(budgets.values())) > 1:
    raise ValueError(f"Rows train on different token budgets {budgets}; "
                     "make batch_size x segment_length x num_steps equal.")


def _latest_step(directory: str) -> int | None:
  if not os.path.isdir(os.path.join(directory, "checkpoints")):
    return None
  ckpt = checkpoints.Checkpointer(directory, read_only=True)
  try:
    return ckpt.latest_step()
  finally:
    ckpt.close()


def _evaluate(name, config, directory, max_batches) -> dict[str, Any]:
  """The row's eval result (cached in <row>/eval.json) and its numbers."""
  path = os.path.join(directory, "eval.json")
  model_cfg = experiment.model_config(config)
  if os.path.exists(path):
    result = json.loads(open(path).read())
  else:
    modes = ["carried", "reset_segment"]
    if getattr(model_cfg, "long_term_layers", ()):
      modes.append("reset_long")
    result = eval_lib.evaluate(config, directory, config.data.eval_split,
                               memory_modes=tuple(modes),
                               max_batches=max_batches)
    with open(path, "w") as f:
      json.dump(result, f, indent=2)
  train_log = _jsonl(os.path.join(directory, "tensorboard",
                                  "train_log.jsonl"))
  return dict(
      name=name, model_name=config.model_name,
      carried_floats_per_row=melodi_hk.memory_footprint(model_cfg).floats,
      step_time_ms=_step_time_ms(train_log),
      tokens_trained=config.batch_size * config.model.segment_length *
      config.num_steps, eval=result,
      logs=dict(train=train_log,
                eval=_jsonl(os.path.join(directory, "eval_log.jsonl"))))


def _jsonl(path: str) -> list[dict]:
  """JSON lines, the last line per step kept (resumed runs repeat some)."""
  if not os.path.exists(path):
    return []
  by_step = {}
  for line in open(path).read().splitlines():
    entry = json.loads(line)
    by_step.setdefault(entry["step"], {}).update(entry)
  return [by_step[step] for step in sorted(by_step)]


def _step_time_ms(train_log: list[dict]) -> float:
  rates = [l["train/steps_per_s"] for l in train_log
           if "train/steps_per_s" in l]
  rates = rates[1:] or rates  # The first interval holds the compilation.
  return 1000.0 / float(np.median(rates)) if rates else float("nan")


def summary(row: dict[str, Any]) -> dict[str, Any]:
  """The numbers of one table row."""
  result = row["eval"]
  gains = result.get("memory_gain", {})
  values = result.get("values", {})
  gain = lambda mode: gains.get(mode, {}).get("minus_first", float("nan"))
  # On a task trained on its values only, nats/token counts untrained text;
  # a mode's recall exact match says what that memory carried.
  exact = lambda mode: _or_nan(gains.get(mode, {}).get("recall_exact_match"))
  return dict(
      model=row["name"], carried_floats_per_row=row["carried_floats_per_row"],
      step_time_ms=row["step_time_ms"], tokens_trained=row["tokens_trained"],
      nats_per_token=result["nats_per_token"],
      perplexity=result["perplexity"],
      reset_segment_cost=gain("reset_segment"),
      reset_long_cost=gain("reset_long"),
      first_accuracy=values.get("first", {}).get("accuracy", float("nan")),
      recall_accuracy=values.get("recall", {}).get("accuracy", float("nan")),
      first_nats=values.get("first", {}).get("nats_per_token", float("nan")),
      recall_nats=values.get("recall", {}).get("nats_per_token",
                                               float("nan")),
      recall_exact_match=values.get("recall_exact_match", float("nan")),
      reset_segment_exact_match=exact("reset_segment"),
      reset_long_exact_match=exact("reset_long"),
      exact_match_by_gap={f"{b['start']}-{b['end']}": b["exact_match"]
                          for b in values.get("by_gap", [])})


_COLUMNS = (("model", "model", "{}"),
            ("carried floats/row", "carried_floats_per_row", "{:,}"),
            ("step ms", "step_time_ms", "{:.0f}"),
            ("nats/token", "nats_per_token", "{:.4f}"),
            ("reset every segment: +nats", "reset_segment_cost", "{:+.4f}"),
            ("long memory reset: +nats", "reset_long_cost", "{:+.4f}"),
            ("first-stated nats", "first_nats", "{:.3f}"),
            ("recalled nats", "recall_nats", "{:.3f}"),
            ("first-stated acc", "first_accuracy", "{:.3f}"),
            ("recalled acc", "recall_accuracy", "{:.3f}"),
            ("recall exact match", "recall_exact_match", "{:.3f}"),
            ("EM, reset every segment", "reset_segment_exact_match",
             "{:.3f}"),
            ("EM, long memory reset", "reset_long_exact_match", "{:.3f}"))


def _or_nan(value) -> float:
  return float("nan") if value is None else float(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
  """A Markdown table of `summary` rows; exact match by gap at the end."""
  gaps = sorted({g for r in rows for g in r["exact_match_by_gap"]},
                key=lambda g: int(g.split("-")[0]))
  head = [c[0] for c in _COLUMNS] + [f"EM gap {g}" for g in gaps]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    cells = ["" if isinstance(r[key], float) and np.isnan(r[key])
             else fmt.format(r[key]) for _, key, fmt in _COLUMNS]
    cells += [f"{r['exact_match_by_gap'][g]:.2f}"
              if g in r["exact_match_by_gap"] else "" for g in gaps]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_comparison(results: dict[str, dict], workdir: str
                     ) -> dict[str, Any]:
  rows = [summary(row) for row in results.values()]
  with open(os.path.join(workdir, "comparison.md"), "w") as f:
    f.write(markdown_table(rows))
  with open(os.path.join(workdir, "comparison.json"), "w") as f:
    json.dump(dict(rows=rows, results=results), f, indent=1)
  evals = {name: row["eval"] for name, row in results.items()}
  plots.training_curves({n: r["logs"] for n, r in results.items()},
                        os.path.join(workdir, "curves.png"))
  plots.loss_by_position(evals, os.path.join(workdir, "position.png"))
  if any("values" in r for r in evals.values()):
    plots.recall_by_gap(evals, os.path.join(workdir, "recall_gap.png"))
  return dict(rows=rows, results=results)
