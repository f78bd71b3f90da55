"""Reading a config file: YAML (or JSON) with every key written once.

PyYAML and Snakemake's own loader keep the last of two equal keys in a mapping without a word: a
second `experiments:` block, or an experiment written twice, silently replaces the first, and the
study runs with fewer cells. `read_config` refuses that, naming the file, the line and the key.
`contrastlab check` reads the file with it, and so does the DAG build (workflow/rules/common.smk),
which checks every file Snakemake loaded before it plans anything.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from contrastlab.plan.config import ConfigError


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that raises on a key written twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                break
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is written twice in one mapping (first on line "
                                f"{first.start_mark.line + 1}); YAML would keep only the second", key_node.start_mark)
        return super().construct_mapping(node, deep)


def read_config(path: str | Path) -> dict:
    """A config file as a mapping; ConfigError naming the file and line of a YAML error or of a key
    written twice."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {e.problem or e.context}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty (a config needs at least data: and experiments:)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data:, experiments:, ...), "
                          f"not a {type(data).__name__}")
    return data
