r"""Continues a prompt with a trained model (or a random one), streaming.

Glossary of shapes:
- B: `--batch` samples of the one prompt.  T': prompt tokens.
- V: vocabulary.

After the tiny training run of launch/train.py:

  python -m launch.sample --workdir=/tmp/melodi_tiny \
      --prompt="The history of " --num_tokens=200 --temperature=0.8

The run's config comes from <workdir>/config.json and the latest
checkpoint (or --step); `--config=launch/configs/tiny.py` instead builds a
random-init model (a smoke test). The prompt goes through `prefill` with a
progress line on stderr; any length fits (a whole book: `bible -f
gen1:1-rev22:21 > /tmp/kjv.txt`, then `--prompt_file=/tmp/kjv.txt`)
because the memory has a fixed size. The continuation is printed as it is
produced, decoded with the run's tokenizer.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from etils import epath
import melodi_hk
from ml_collections import config_flags

from launch import metrics
from launch import sample_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A launch/configs/*.py file: random-init smoke run "
    "(use --workdir for a trained model).", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Workdir of a training run (config.json + checkpoints).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default latest.")
_PROMPT = flags.DEFINE_string("prompt", None, "Prompt text.")
_PROMPT_FILE = flags.DEFINE_string("prompt_file", None, "Prompt file.")
_NUM_TOKENS = flags.DEFINE_integer("num_tokens", 200, "Tokens to generate.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "0 is greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Keep the k likeliest; 0: all.")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Nucleus mass in (0, 1].")
_SEED = flags.DEFINE_integer("seed", 0, "Row r samples with seed + r.")
_BATCH = flags.DEFINE_integer("batch", 1, "Samples of the prompt.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  metrics.quiet_library_logs()
  if (_PROMPT.value is None) == (_PROMPT_FILE.value is None):
    raise app.UsageError("Pass exactly one of --prompt and --prompt_file.")
  prompt = (_PROMPT.value if _PROMPT_FILE.value is None
            else epath.Path(_PROMPT_FILE.value).read_bytes())
  try:
    config, model_cfg, params = sample_lib.load(
        _WORKDIR.value, _CONFIG.value, _STEP.value)
  except ValueError as error:  # Bad config or workdir: one line, no trace.
    logging.error("%s", error)
    sys.exit(1)
  sampling = melodi_hk.SamplingConfig(
      _TEMPERATURE.value, _TOP_K.value, _TOP_P.value)
  texts = sample_lib.sample(config, model_cfg, params, prompt,
                            _NUM_TOKENS.value, sampling, _SEED.value,
                            _BATCH.value)
  if len(texts) > 1:
    for r, text in enumerate(texts):
      print(f"=== sample {r} ===\n{text}")


if __name__ == "__main__":
  app.run(main)
