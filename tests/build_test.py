"""BUILD stays honest: every .py file in one target, deps equal to imports.

BUILD is Starlark, which for our use is valid Python; it is evaluated with
stand-ins for `py_library`, `py_binary` and `py_test` that record targets.
"""

import ast
import pathlib
import re

from absl.testing import absltest

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_PACKAGES = ("melodi_hk", "data", "launch", "tests", "experiments")
# Not ours: tools' folders, and the git-ignored ones a device call carries
# (experiments/gpu_paper_size.sh: wheels, a meliad checkout).
_SKIP_DIRS = {".venv", ".git", "__pycache__", ".pytest_cache", ".whl",
              ".meliad"}
# pytest loads conftest.py before any test without an import, so a dep on
# its target is used though nothing imports it.
_IMPLICIT = {"conftest.py"}


def load_targets() -> dict[str, dict]:
  """{target name: {"srcs", "deps", "data": [...]}} from the BUILD file."""
  targets = {}

  def rule(name, srcs=(), deps=(), data=(), **unused):
    if name in targets:
      raise ValueError(f"BUILD defines target {name!r} twice.")
    targets[name] = dict(srcs=list(srcs), deps=list(deps), data=list(data))

  build = compile((_ROOT / "BUILD").read_text(), "BUILD", "exec")
  exec(build,  # pylint: disable=exec-used
       dict(py_library=rule, py_binary=rule, py_test=rule,
            glob=lambda patterns: sorted(
                str(p.relative_to(_ROOT)) for pattern in patterns
                for p in _ROOT.glob(pattern))))
  return targets


def python_files() -> list[str]:
  return sorted(str(p.relative_to(_ROOT)) for p in _ROOT.rglob("*.py")
                if not _SKIP_DIRS & set(p.relative_to(_ROOT).parts))


def module_file(module: str) -> str | None:
  """The repository file that `import module` loads, if it is ours."""
  if module.split(".")[0] not in _PACKAGES:
    return None
  base = _ROOT / module.replace(".", "/")
  for candidate in (base.with_suffix(".py"), base / "__init__.py"):
    if candidate.exists():
      return str(candidate.relative_to(_ROOT))
  return None


def imported_files(path: str) -> set[str]:
  """Repository files whose targets `path` must depend on.

  A Markdown file counts by the imports of its ```python blocks, which a
  test may run; `importlib.import_module(f"pkg.{name}")` counts as `pkg`.
  """
  text = (_ROOT / path).read_text()
  if path.endswith(".md"):
    text = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
  found = set()
  for node in ast.walk(ast.parse(text)):
    if isinstance(node, ast.Import):
      files = [module_file(alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      # `from pkg import mod` needs mod's target; `from pkg import name`
      # needs the target of pkg/__init__.py.
      files = [module_file(f"{node.module}.{a.name}") or
               module_file(node.module) for a in node.names]
    elif _is_dynamic_import(node):
      files = [module_file(node.args[0].values[0].value.rstrip("."))]
    else:
      continue
    found.update(f for f in files if f and f != path)
  return found


def _is_dynamic_import(node) -> bool:
  """`import_module(f"pkg.{...}")`: a call with a constant module prefix."""
  return (isinstance(node, ast.Call) and node.args and
          getattr(node.func, "attr", getattr(node.func, "id", None)) ==
          "import_module" and isinstance(node.args[0], ast.JoinedStr) and
          isinstance(node.args[0].values[0], ast.Constant))


def with_packages(files: set[str]) -> set[str]:
  """`files` and the `__init__.py` of every package above them."""
  found = set(files)
  for f in files:
    parts = pathlib.PurePath(f).parts[:-1]
    for i in range(1, len(parts) + 1):
      init = pathlib.PurePath(*parts[:i], "__init__.py")
      if (_ROOT / init).exists():
        found.add(str(init))
  return found


class BuildTest(absltest.TestCase):

  def test_every_python_file_is_in_exactly_one_target(self):
    owners = {}
    for name, target in load_targets().items():
      for src in target["srcs"]:
        owners.setdefault(src, []).append(name)
    files = python_files()
    self.assertEqual([f for f in files if f not in owners], [],
                     "files in no BUILD target")
    self.assertEqual({f: o for f, o in owners.items() if len(o) > 1}, {},
                     "files in several BUILD targets")
    self.assertEqual([f for f in owners if f not in files], [],
                     "BUILD names files that do not exist")

  def test_every_project_import_is_a_declared_dep(self):
    targets = load_targets()
    owner = {src: name for name, t in targets.items() for src in t["srcs"]}
    undeclared = []
    for path in python_files():
      name = owner.get(path)
      if name is None:
        continue
      deps = {d.lstrip(":") for d in targets[name]["deps"]}
      for imported in sorted(imported_files(path)):
        if owner.get(imported) not in deps | {name}:
          undeclared.append(f"{path} imports {imported} "
                            f"(target :{owner.get(imported)}) but :{name} "
                            "does not depend on it")
    self.assertEqual(undeclared, [])

  def test_every_declared_dep_is_imported(self):
    targets = load_targets()
    owner = {src: name for name, t in targets.items() for src in t["srcs"]}
    unused = []
    for name, target in targets.items():
      # A module needs its own package, too.
      used = {owner.get(f) for f in with_packages(target["srcs"])}
      for path in target["srcs"] + target["data"]:
        if path.endswith((".py", ".md")):
          used.update(owner.get(f) for f in with_packages(imported_files(path)))
      for dep in target["deps"]:
        dep = dep.lstrip(":")
        if dep not in used and not _IMPLICIT & set(targets[dep]["srcs"]):
          unused.append(f":{name} depends on :{dep} but imports nothing "
                        "of it")
    self.assertEqual(unused, [])

  def test_deps_name_existing_targets(self):
    targets = load_targets()
    missing = [f"{name} -> {dep}" for name, t in targets.items()
               for dep in t["deps"]
               if dep.lstrip(":") not in targets]
    self.assertEqual(missing, [])


if __name__ == "__main__":
  absltest.main()
