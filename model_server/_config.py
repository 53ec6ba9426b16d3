"""Which models to serve: the command-line pair or a TF Serving ``ModelServerConfig`` file."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

PolicyKind = Literal["latest", "specific", "all"]


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ``FileSystemStoragePathSourceConfig.ServableVersionPolicy``.

    Args:
        kind: ``latest`` (the ``num_versions`` highest), ``specific`` (exactly ``versions``)
            or ``all``.
        num_versions: how many of the highest versions ``latest`` keeps loaded.
        versions: the versions ``specific`` serves.
    """

    kind: PolicyKind = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def aspired(self, on_disk: Iterable[int]) -> set[int]:
        """The versions that should be loaded, given the versions present on disk."""
        present = sorted(set(on_disk))
        if self.kind == "all":
            return set(present)
        if self.kind == "specific":
            return set(self.versions) & set(present)
        return set(present[-self.num_versions :]) if self.num_versions > 0 else set()


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One served model: a name and a base path holding integer-named version directories."""

    name: str
    base_path: Path
    policy: VersionPolicy = VersionPolicy()
    version_labels: Mapping[str, int] = dataclasses.field(default_factory=dict)


def parse_model_config_text(text: str, *, source: str = "<text>") -> list[ModelConfig]:
    """Parse a text-format ``tensorflow.serving.ModelServerConfig``.

    Args:
        text: the file content, e.g. ``model_config_list { config { name: "m" base_path: ... } }``.
        source: where the text came from, for error messages.

    Returns:
        One ``ModelConfig`` per ``config`` entry, in file order.

    Raises:
        ValueError: the text does not parse, uses ``custom_model_config``, a platform other
            than ``tensorflow``, a relative/empty base path, or a duplicate model name.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    proto = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as exc:
        raise ValueError(f"{source}: not a text-format ModelServerConfig: {exc}") from exc
    if proto.WhichOneof("config") != "model_config_list":
        raise ValueError(
            f"{source}: expected a `model_config_list {{ config {{ ... }} }}` block; "
            f"got {proto.WhichOneof('config') or 'no model config at all'}"
        )
    configs: list[ModelConfig] = []
    seen: set[str] = set()
    for entry in proto.model_config_list.config:
        if not entry.name:
            raise ValueError(f"{source}: every config needs a `name`; got {entry}")
        if entry.name in seen:
            raise ValueError(f"{source}: model name {entry.name!r} is configured twice")
        seen.add(entry.name)
        if entry.model_platform not in ("", "tensorflow"):
            raise ValueError(
                f"{source}: model {entry.name!r} has model_platform {entry.model_platform!r}; "
                "this server only serves `tensorflow` SavedModels"
            )
        if not entry.base_path:
            raise ValueError(f"{source}: model {entry.name!r} has no base_path")
        configs.append(
            ModelConfig(
                name=entry.name,
                base_path=Path(entry.base_path),
                policy=_policy_from_proto(entry.model_version_policy),
                version_labels=dict(entry.version_labels),
            )
        )
    if not configs:
        raise ValueError(f"{source}: model_config_list has no `config` entries")
    return configs


def parse_model_config_file(path: str | Path) -> list[ModelConfig]:
    """Read and parse a ``--model_config_file`` (see ``parse_model_config_text``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read --model_config_file {path}: {exc}") from exc
    return parse_model_config_text(text, source=str(path))


def _policy_from_proto(policy: Any) -> VersionPolicy:
    # `policy` is a tensorflow_serving ModelVersionPolicy message (no stubs: Any).
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return VersionPolicy("all")
    if which == "specific":
        if not policy.specific.versions:
            raise ValueError("model_version_policy.specific needs at least one `versions` entry")
        return VersionPolicy("specific", versions=tuple(policy.specific.versions))
    if which == "latest":
        # TF Serving treats an unset/zero num_versions as 1.
        return VersionPolicy("latest", num_versions=policy.latest.num_versions or 1)
    return VersionPolicy()
