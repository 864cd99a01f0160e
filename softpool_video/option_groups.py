"""Option groups: a class's arguments kept as small frozen dataclasses instead of a long flat list.

The VideoDataModule (datamodules/options.py: decoding, sampling, transforms, loading) and the
VideoClassifier (training/options.py: optimisation, schedule, mixing, head) take their
arguments this way. On the command line a group is a nested option
(`--model.optimisation.lr 0.1`), in a config a nested mapping, in Python the dataclass or a
plain dict of its fields. Hyper-parameters (hparams.yaml, checkpoints) keep plain dicts.

Checkpoints written before a class grouped its arguments hold them flat; `group_arguments`
and `flatten_arguments` convert between the two forms, given the class's groups.

Lightning-free and dependency-free: the bottom layer, beside reporting.py.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields, is_dataclass
from typing import Any, TypeVar

G = TypeVar("G")


def as_group(name: str, cls: type[G], value: G | Mapping[str, Any]) -> G:
    """`value` as the group dataclass `cls`: itself, or built from a mapping of its fields."""
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        allowed = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise ValueError(f"{name}: unknown key(s) {', '.join(unknown)}; {name} takes {', '.join(allowed)}")
        return cls(**value)
    raise TypeError(f"{name} must be a {cls.__name__} or a dict of its fields, got {type(value).__name__}")


def group_hparams(group: Any) -> dict[str, Any]:
    """A group as plain data (a dict; tuples as lists), as hparams.yaml and checkpoints keep it."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(group).items()}


def fields_by_group(groups: Mapping[str, type]) -> dict[str, str]:
    """field name -> the group holding it (field names are unique across a class's groups)."""
    return {f.name: group for group, cls in groups.items() for f in fields(cls)}


def group_arguments(data: Mapping[str, Any], groups: Mapping[str, type],
                    renamed: Mapping[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """Flat arguments (`batch_size=...`, as checkpoints written before the grouping record
    them) moved into their groups (`loading={"batch_size": ...}`). Arguments already grouped
    stay, and win over a flat duplicate; the others are left as they are.

    `renamed` maps a flat name whose field is called otherwise in its group to (group,
    field), e.g. the flat `schedule="cosine"` to ("schedule", "name"): such a flat value is
    told from the group of the same name by not being a mapping or a dataclass.
    """
    renamed = renamed or {}
    group_of = fields_by_group(groups)
    flat: dict[str, dict[str, Any]] = {group: {} for group in groups}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in renamed and not (isinstance(value, Mapping) or is_dataclass(value)):
            group, field = renamed[key]
            flat[group][field] = value
        elif key in group_of and key not in groups:
            flat[group_of[key]][key] = value
        elif key not in groups:
            out[key] = value
    for group in groups:
        given = data.get(group)
        if isinstance(given, Mapping):
            flat[group].update(given)
        elif given is not None and (is_dataclass(given) or group not in renamed):
            out[group] = given  # a dataclass (or a bad value, for the class to reject)
            continue
        if flat[group]:
            out[group] = flat[group]
    return out


def flatten_arguments(data: Mapping[str, Any], groups: Mapping[str, type]) -> dict[str, Any]:
    """The reverse of `group_arguments`: each group's fields at the top level (a grouped value
    wins over a flat one of the same name), for readers of either form of hyper-parameters."""
    out = {k: v for k, v in data.items() if k not in groups}
    for group in groups:
        value = data.get(group)
        if is_dataclass(value) and not isinstance(value, type):
            value = asdict(value)
        if isinstance(value, Mapping):
            out.update(value)
        elif value is not None:
            out[group] = value
    return out
