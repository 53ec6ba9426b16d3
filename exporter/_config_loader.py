"""One generic reader of config tables into frozen dataclasses, and the value checks they share.

The dataclasses are the schema: `from_mapping` walks their fields and knows nothing about any
particular key. It only does what TOML needs structurally — tables become nested dataclasses,
lists become tuples, an unknown key is refused naming the key, its table and the accepted
keys — and leaves every rule about values to the dataclasses' `__post_init__`, so a config
built in Python and the same values read from TOML are accepted or refused alike.

Field metadata (all optional) says where a field lives when it is not simply a key of its
class's table:

- `TABLE`: the field is read from this sub-table (e.g. `ExportConfig.name` from `[model]`);
- `KEY`: its key in that table, when it differs from the field name;
- `TABLES`: a callable giving {key: dataclass}; the field is a mapping of those sub-tables
  (e.g. `[methods.smoothgrad]`, one per explanation method that has parameters);
- `EXTRA`: the field receives, as a mapping, every key of the table no other field reads;
- `NOT_READ`: set in code only; a file may not set it.

A dataclass may declare `RENAMED: ClassVar[Mapping[str, str]]`, old key → where it lives now,
so a config written for an older layout is refused with the new location.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from exporter._errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "EXTRA",
    "KEY",
    "NOT_READ",
    "TABLE",
    "TABLES",
    "check_bool",
    "check_int",
    "check_int_tuple",
    "check_number",
    "check_optional_str",
    "check_range",
    "check_str",
    "check_str_tuple",
    "from_mapping",
    "set_field",
    "to_mapping",
]

TABLE = "config_table"
KEY = "config_key"
TABLES = "config_tables"
EXTRA = "config_extra"
NOT_READ = "config_not_read"

T = TypeVar("T", bound="DataclassInstance")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _where(path: str) -> str:
    return f"[{path}]" if path else "the top level"


def _require_table(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{path}] must be a table; received {value!r}.")
    return value


def _plain(value: Any) -> Any:
    """TOML arrays → tuples (the dataclasses hold tuples), recursively."""
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def _nested_type(field: dataclasses.Field) -> type | None:
    factory = field.default_factory
    if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
        return factory
    return None


def _refuse_unknown(cls: type, key: str, path: str, accepted: set[str], value: Any = None) -> None:
    renamed: Mapping[str, str] = getattr(cls, "RENAMED", {})
    if key in renamed:
        old = f"[{_join(path, key)}]" if isinstance(value, Mapping) else _join(path, key)
        raise ConfigError(f"{old} is no longer read: it is now {renamed[key]}. Move it there.")
    raise ConfigError(
        f"Unknown key {_join(path, key)} in {_where(path)}; expected one of: {', '.join(sorted(accepted))}."
    )


def from_mapping(cls: type[T], data: Any, path: str = "") -> T:
    """Builds dataclass `cls` from the parsed TOML table `data` (read at `path`).

    Args:
        cls: A dataclass whose fields (and their metadata, see the module docstring) are
            the table's schema.
        data: The parsed table.
        path: Its dotted location, for messages ("" for the document).

    Returns:
        `cls(**values)`: its `__post_init__` validates the values.

    Raises:
        ConfigError: A value that should be a table is not, an unknown or renamed key, or
            whatever the dataclass refuses.
    """
    data = _require_table(data, path)
    direct: dict[str, dataclasses.Field] = {}
    grouped: dict[str, dict[str, dataclasses.Field]] = {}
    tables_field: dataclasses.Field | None = None
    extra_field: dataclasses.Field | None = None
    for field in dataclasses.fields(cls):
        if not field.init or field.metadata.get(NOT_READ):
            continue
        if field.metadata.get(EXTRA):
            extra_field = field
        elif TABLES in field.metadata:
            tables_field = field
        elif TABLE in field.metadata:
            grouped.setdefault(field.metadata[TABLE], {})[field.metadata.get(KEY, field.name)] = field
        else:
            direct[field.metadata.get(KEY, field.name)] = field
    table_types: Mapping[str, type] = tables_field.metadata[TABLES]() if tables_field else {}
    accepted = {*direct, *grouped, *table_types}

    kwargs: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        where = _join(path, key)
        if key in direct:
            kwargs[direct[key].name] = _value(direct[key], value, where)
        elif key in grouped:
            for sub_key, sub_value in _require_table(value, where).items():
                if sub_key not in grouped[key]:
                    _refuse_unknown(cls, sub_key, where, set(grouped[key]))
                field = grouped[key][sub_key]
                kwargs[field.name] = _value(field, sub_value, _join(where, sub_key))
        elif key in table_types:
            tables[key] = from_mapping(table_types[key], value, where)
        elif extra_field is not None:
            extra[key] = _plain(value)
        else:
            _refuse_unknown(cls, key, path, accepted, value)
    if tables_field is not None and tables:
        kwargs[tables_field.name] = tables
    if extra_field is not None and extra:
        kwargs[extra_field.name] = extra
    return cls(**kwargs)


def _value(field: dataclasses.Field, value: Any, path: str) -> Any:
    nested = _nested_type(field)
    return from_mapping(nested, value, path) if nested is not None else _plain(value)


def to_mapping(obj: Any) -> dict[str, Any]:
    """The inverse of `from_mapping`: a dataclass → the table it is read from (JSON-able).

    Fields marked `NOT_READ` are left out; tuples become lists.
    """
    out: dict[str, Any] = {}
    for field in dataclasses.fields(obj):
        if not field.init or field.metadata.get(NOT_READ):
            continue
        value = getattr(obj, field.name)
        if field.metadata.get(EXTRA):
            out.update({k: _json(v) for k, v in dict(value).items()})
        elif TABLES in field.metadata:
            out.update({k: to_mapping(v) for k, v in value.items() if dataclasses.fields(v)})
        elif TABLE in field.metadata:
            out.setdefault(field.metadata[TABLE], {})[field.metadata.get(KEY, field.name)] = _json(value)
        else:
            out[field.metadata.get(KEY, field.name)] = _json(value)
    return out


def _json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_mapping(value)
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    return value


# Value checks for the dataclasses' __post_init__: each names the key, the rule and what it got.


def check_int(key: str, value: Any, *, minimum: int | None = None) -> int:
    """`value` as an int (bool refused), at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer; received {value!r} ({type(value).__name__}).")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}; received {value}.")
    return value


def check_number(key: str, value: Any, *, minimum: float | None = None, positive: bool = False) -> float:
    """`value` as a finite float (ints accepted, bool refused), > 0 or >= `minimum` if asked."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number; received {value!r} ({type(value).__name__}).")
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(f"{key} must be a finite number; received {number}.")
    if positive and number <= 0:
        raise ConfigError(f"{key} must be a finite number > 0; received {number}.")
    if minimum is not None and number < minimum:
        raise ConfigError(f"{key} must be >= {minimum}; received {number}.")
    return number


def check_bool(key: str, value: Any) -> bool:
    """`value`, which must be True or False."""
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false; received {value!r}.")
    return value


def check_str(key: str, value: Any) -> str:
    """`value`, a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string; received {value!r}.")
    return value


def check_optional_str(key: str, value: Any) -> str | None:
    """None, or a non-empty string."""
    return None if value is None else check_str(key, value)


def check_int_tuple(key: str, value: Any, *, length: int | None = None, minimum: int = 1) -> tuple[int, ...]:
    """A list or tuple of ints >= `minimum` (of `length` items if given), as a tuple."""
    if not isinstance(value, list | tuple) or (length is not None and len(value) != length):
        expected = f"a list of {length} integers" if length else "a list of integers"
        raise ConfigError(f"{key} must be {expected}; received {value!r}.")
    return tuple(check_int(f"{key}[{i}]", v, minimum=minimum) for i, v in enumerate(value))


def check_str_tuple(key: str, value: Any, *, allow_empty: bool = False) -> tuple[str, ...]:
    """A list or tuple of non-empty strings (non-empty unless `allow_empty`), as a tuple."""
    if not isinstance(value, list | tuple) or (not value and not allow_empty):
        kind = "a list of strings" if allow_empty else "a non-empty list of strings"
        raise ConfigError(f"{key} must be {kind}; received {value!r}.")
    return tuple(check_str(f"{key}[{i}]", v) for i, v in enumerate(value))


def check_range(key: str, value: Any) -> tuple[float, float]:
    """[low, high] (list or tuple of two numbers) with low < high, as a float pair."""
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
        or not value[0] < value[1]
    ):
        raise ConfigError(f"{key} must be [low, high] with low < high; received {list(value) if isinstance(value, tuple) else value!r}.")
    return (float(value[0]), float(value[1]))


def set_field(obj: Any, name: str, value: Any) -> None:
    """Stores a normalized value on a frozen dataclass from its __post_init__."""
    object.__setattr__(obj, name, value)

