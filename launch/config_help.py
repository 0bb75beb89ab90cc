"""What `python -m launch.train --help` says about config fields.

Glossary: a "field" is a dotted config path such as `optimizer.max_lr`;
every one can be overridden with `--config.<field>=<value>`.

The fields, their defaults and their comments come from the code itself:
`launch/configs/common.py` for the run (defaults of the chosen config file
when --config is given), `train_lib.OptimizerConfig` for the optimiser and
the model dataclasses of `melodi_hk/config.py`; each field's trailing
`# comment` there is its documentation.
"""

import dataclasses
import inspect
import re
import runpy

import melodi_hk
import ml_collections

from data import synthetic
from launch import train_lib
from launch.configs import common

# `name=value,  # comment`, `config.name = value  # comment` or the
# dataclass form `name: type = value  # comment`.
_COMMENTED = re.compile(r"^\s*(?:config\.)?(\w+)\s*[:=][^#]*#\s*(.*)$")
# The same forms without a trailing comment, and a comment line of its own.
_FIELD = re.compile(r"^\s*(?:config\.)?(\w+)\s*(?::[^=]*)?=[^=]")
_COMMENT = re.compile(r"^\s*#\s*(.*)$")
# The model dataclasses and the bases holding their shared fields.
_MODEL_CLASSES = (melodi_hk.MelodiConfig, melodi_hk.TransformerXLConfig,
                  melodi_hk.MemorizingConfig, melodi_hk.config.ModelConfig,
                  melodi_hk.config.BaselineConfig)


def comments(*sources) -> dict[str, str]:
  """{field name: its comment} from the source of `sources`: the trailing
  one, else the comment block over the run of fields that follows it."""
  found = {}
  for source in sources:
    block, above = [], ""  # Comment lines read; the block over this run.
    for line in inspect.getsource(source).splitlines():
      comment = _COMMENT.match(line)
      if comment:
        block.append(comment.group(1).strip())
        continue
      if block:
        above, block = " ".join(block), []
      trailing, field = _COMMENTED.match(line), _FIELD.match(line)
      if trailing:
        found.setdefault(trailing.group(1), trailing.group(2).strip())
      elif field and above:
        found.setdefault(field.group(1), above)
      if not field:
        above = ""
  return found


def flat_fields(config: ml_collections.ConfigDict,
                prefix: str = "") -> dict[str, object]:
  """{'optimizer.max_lr': 0.01, ...}: every leaf of `config`."""
  fields = {}
  for key in sorted(config.keys()):
    value = config[key]
    if isinstance(value, ml_collections.ConfigDict):
      fields.update(flat_fields(value, f"{prefix}{key}."))
    else:
      fields[f"{prefix}{key}"] = value
  return fields


def describe(config: ml_collections.ConfigDict | None = None) -> str:
  """One `field = default  # comment` line per config field."""
  config = config or common.base_config()
  notes = comments(common, train_lib.OptimizerConfig,
                   synthetic.SyntheticConfig, *_MODEL_CLASSES)
  lines = ["Config fields (override with --config.<field>=<value>):"]
  for field, value in flat_fields(config).items():
    note = notes.get(field.rsplit(".", 1)[-1], "")
    lines.append(f"  {field} = {value!r}" + (f"  # {note}" if note else ""))
  if not config.model:
    lines.append("  model.<field>: the fields of the model dataclass "
                 "config.model_name picks; MelodiConfig's:")
    for field in dataclasses.fields(melodi_hk.MelodiConfig):
      default = ("required" if field.default is dataclasses.MISSING
                 else repr(field.default))
      note = notes.get(field.name)
      lines.append(f"    model.{field.name} = {default}" +
                   (f"  # {note}" if note else ""))
  return "\n".join(lines)


def load(argv: list[str]) -> ml_collections.ConfigDict | None:
  """The config that argv's `--config=<file>[:<arg>]` names, if any."""
  for arg in argv:
    if arg.startswith("--config="):
      path, _, option = arg.removeprefix("--config=").partition(":")
      get_config = runpy.run_path(path)["get_config"]
      return get_config(option) if option else get_config()
  return None


def unknown_fields(config: ml_collections.ConfigDict,
                   argv: list[str]) -> list[str]:
  """The `--config.<field>` overrides in argv that `config` lacks."""
  known = set(flat_fields(config))
  unknown = []
  for arg in argv:
    match = re.match(r"^--config\.([\w.]+)", arg)
    if match and match.group(1) not in known:
      unknown.append(match.group(1))
  return unknown
