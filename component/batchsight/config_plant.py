"""The plant-floor settings: the OPC UA server, the Sparkplug B node and where part ids come from.

Kept apart from config.py (which holds them in ``Config`` and calls ``check_plant_floor``) so
that the checks of the two optional protocols and of the part context sit together. Nothing
here imports asyncua or the Sparkplug library: a gateway with both switched off never loads them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from batchsight.config_parse import ConfigError

if TYPE_CHECKING:
    from batchsight.config import Config

# asyncua's names (ua.SecurityPolicyType) of the secure-channel policies a client may use;
# "None" is the unsecured one, offered only when named.
SECURITY_POLICIES = ("None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt",
                     "Aes128Sha256RsaOaep_Sign", "Aes128Sha256RsaOaep_SignAndEncrypt",
                     "Aes256Sha256RsaPss_Sign", "Aes256Sha256RsaPss_SignAndEncrypt")
_SHIFT = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_SPARKPLUG_ID = re.compile(r"[^/+#\s]{1,128}")  # Sparkplug B: no '/', '+' or '#' in an id
PART_GROUPS = ("part_id", "lot")


@dataclass(frozen=True)
class OpcUaSettings:
    """The OPC UA server a PLC or SCADA reads (opcua/): off unless enabled."""

    enabled: bool = False
    endpoint: str = "opc.tcp://0.0.0.0:4840/batchsight"
    namespace: str = ""            # empty: urn:batchsight:{site}:{line}:{device}
    security: str = "Basic256Sha256_SignAndEncrypt,Basic256Sha256_Sign"
    users_file: str = ""           # "name:password" lines (or name:pbkdf2_sha256$...); empty: certificates only
    allow_anonymous: bool = False
    pki_folder: str = ""           # own/ (certificate, key), trusted/, rejected/; empty: {work_folder}/opcua-pki
    results_kept: int = 100        # results held for GetLastResults (GetResultById also reads the journal)
    shifts: str = "06:00,14:00,22:00"  # local start times of the shifts counted in PlcHandshake/Shift

    def policies(self) -> list[str]:
        return [p.strip() for p in self.security.split(",") if p.strip()]

    def shift_starts(self) -> list[tuple[int, int]]:
        """(hour, minute) of each shift start, sorted."""
        return sorted({(int(t[:2]), int(t[3:])) for t in (s.strip() for s in self.shifts.split(",")) if t})


@dataclass(frozen=True)
class SparkplugSettings:
    """A Sparkplug B edge node on the mqtt.* broker (sparkplug/node.py): off unless enabled."""

    enabled: bool = False
    group_id: str = ""             # empty: the site
    edge_node_id: str = ""         # empty: {line}-{device}


@dataclass(frozen=True)
class PartSettings:
    """Where an image's part id and lot come from (part_context.py)."""

    file_pattern: str = ""         # regex with named groups part_id and/or lot, searched in the file's name
    sidecar: bool = False          # read {name}.json beside the image: {"part_id": "...", "lot": "..."}


def _check_opcua(opcua: OpcUaSettings) -> None:
    url = urlsplit(opcua.endpoint)
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme != "opc.tcp" or not url.hostname or not port:
        raise ConfigError(f"setting opcua.endpoint: expected a URL like opc.tcp://0.0.0.0:4840/batchsight, "
                          f"got {opcua.endpoint!r}")
    policies = opcua.policies()
    unknown = [p for p in policies if p not in SECURITY_POLICIES]
    if not policies or unknown:
        raise ConfigError(f"setting opcua.security: write a comma-separated list of {', '.join(SECURITY_POLICIES)}; "
                          f"got {opcua.security!r}")
    if opcua.users_file:
        path = Path(opcua.users_file)
        if not path.is_file():
            raise ConfigError(f"setting opcua.users_file: file {opcua.users_file} does not exist; write one "
                              "'name:password' per line there, or leave the setting empty to log in with "
                              "trusted certificates only")
        try:
            lines = [line for line in path.read_text(encoding="utf-8").splitlines()
                     if line.strip() and not line.lstrip().startswith("#")]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"setting opcua.users_file: cannot read {opcua.users_file}: {exc}") from exc
        bad = [n for n, line in enumerate(lines, 1) if ":" not in line or not line.partition(":")[0].strip()]
        if bad or not lines:
            raise ConfigError(f"setting opcua.users_file: write one 'name:password' per line in "
                              f"{opcua.users_file}" + (f" (entry {bad[0]} is not)" if bad else " (it has none)"))
    if opcua.pki_folder and not Path(opcua.pki_folder).is_absolute():
        raise ConfigError(f"setting opcua.pki_folder: write an absolute path, got {opcua.pki_folder!r}")
    if not 1 <= opcua.results_kept <= 10000:
        raise ConfigError(f"setting opcua.results_kept: must be 1 to 10000, got {opcua.results_kept}")
    shifts = [s.strip() for s in opcua.shifts.split(",") if s.strip()]
    if not shifts or not all(_SHIFT.fullmatch(s) for s in shifts):
        raise ConfigError(f"setting opcua.shifts: write the shift start times as HH:MM, comma-separated "
                          f"(e.g. \"06:00,14:00,22:00\"), got {opcua.shifts!r}")


def _check_part(part: PartSettings) -> None:
    if not part.file_pattern:
        return
    try:
        pattern = re.compile(part.file_pattern)
    except re.error as exc:
        raise ConfigError(f"setting part.file_pattern: not a regular expression ({exc}): {part.file_pattern!r}; "
                          "write one like (?P<lot>LOT\\d+)_(?P<part_id>P\\d+)") from exc
    if not set(PART_GROUPS) & set(pattern.groupindex):
        raise ConfigError("setting part.file_pattern: name the groups, (?P<part_id>...) and/or (?P<lot>...), "
                          f"got {part.file_pattern!r}")


def sparkplug_ids(config: Config) -> tuple[str, str]:
    """The Sparkplug group id and edge node id, defaults filled in."""
    settings = config.sparkplug
    return (settings.group_id or config.site, settings.edge_node_id or f"{config.line}-{config.device}")


def check_plant_floor(config: Config) -> None:
    _check_opcua(config.opcua)
    _check_part(config.part)
    for name in ("group_id", "edge_node_id"):  # the defaults are made of checked ids
        value = getattr(config.sparkplug, name)
        if value and not _SPARKPLUG_ID.fullmatch(value):
            raise ConfigError(f"setting sparkplug.{name}: 1 to 128 characters without '/', '+', '#' or spaces, "
                              f"got {value!r}")
