"""Which decoder runs for a device, and the one call that runs it.

Three sources can give a decoded object: a built-in decoder, a registered
vendor JS codec, and the network server's own decoded object. `decode` tries
them in the order of `preference` and uses the first that succeeds; when an
earlier source fails and a later one succeeds, the earlier failure is kept in
`warnings`, so a broken built-in is noticed even while the network server's
object covers for it. Stage 2 (field map, derivations, plausibility) runs on
whichever object won, keyed by the device's codec id — the keys are the same
for every source by design.

`decode_many` gives the same outcomes for many payloads at once, running JS
codecs in batches: the ingest pipeline and redecoding use it, because a single
call into a JS sandbox costs far more than the codec's work.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, NamedTuple, cast

from decoders import bosch, cayenne, decentlab, dragino, elsys, milesight, nwave
from decoders.codec import BuiltinCodec
from decoders.javascript import JavaScriptCodec, SandboxLimits, ScriptResult, ScriptStyle
from decoders.readings import readings_from
from domain.decoding import DecoderSource
from domain.errors import DecodeError
from domain.reading import Reading
from domain.uplink import JsonObject
from domain.use_case import CodecUseCase

DEFAULT_PREFERENCE: tuple[DecoderSource, ...] = (
    DecoderSource.BUILTIN,
    DecoderSource.JAVASCRIPT,
    DecoderSource.NETWORK,
)

BUILTIN_CODECS: tuple[BuiltinCodec, ...] = (
    *milesight.CODECS,
    *decentlab.CODECS,
    *elsys.CODECS,
    *dragino.CODECS,
    *nwave.CODECS,
    *bosch.CODECS,
    *cayenne.CODECS,
)

# Payloads per call into a JS sandbox: large enough that the thread switch is a small
# share, small enough that a batch's text stays short and one slow batch holds up little.
SCRIPT_BATCH = 256
# Payloads per exchange with a script's process, over several towns' batches: one round trip
# for a whole ingest batch (2000 uplinks by default).
SCRIPT_EXCHANGE = 2048


class DecodeRequest(NamedTuple):
    """One payload for `CodecRegistry.decode_many`, with the arguments `decode` takes.

    A named tuple rather than a frozen dataclass: one is made per uplink on ingest and
    redecoding, and a tuple is built in half the time.
    """

    codec_id: str | None
    f_port: int | None
    payload: bytes
    network_decoded: JsonObject | None
    device_metadata: Mapping[str, Any] | None = None
    preference: Sequence[DecoderSource] = DEFAULT_PREFERENCE
    municipality_id: int | None = None
    """Whose payload this is: JS codecs run in that municipality's own isolate (no state crosses towns)."""


def script_tenant(municipality_id: int | None) -> str:
    """The JS sandbox's name for a municipality's isolates; '' for callers without one (tools, the region)."""
    return "" if municipality_id is None else f"municipality-{municipality_id}"


@dataclass(frozen=True, slots=True)
class DecodeOutcome:
    """What decoding one payload gave; `error` is set instead of raising."""

    decoded: JsonObject | None
    readings: tuple[Reading, ...]
    source: DecoderSource | None
    codec_id: str | None
    error: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and self.decoded is not None


_set_decoded, _set_readings, _set_source, _set_codec_id, _set_error, _set_warnings = (
    DecodeOutcome.__dict__[field.name].__set__ for field in fields(DecodeOutcome)
)


def _outcome(
    decoded: JsonObject,
    readings: tuple[Reading, ...],
    source: DecoderSource,
    codec_id: str | None,
    warnings: tuple[str, ...],
) -> DecodeOutcome:
    """A successful `DecodeOutcome`, built through its slots.

    The frozen dataclass's `__init__` stores each field via `object.__setattr__`,
    about three times the cost of the slot's own setter, once per decoded uplink;
    the object is the same either way (the class has no `__post_init__`).
    """
    outcome: DecodeOutcome = object.__new__(DecodeOutcome)
    _set_decoded(outcome, decoded)
    _set_readings(outcome, readings)
    _set_source(outcome, source)
    _set_codec_id(outcome, codec_id)
    _set_error(outcome, None)
    _set_warnings(outcome, warnings)
    return outcome


@dataclass(frozen=True, slots=True)
class CodecInfo:
    """One row of the codec list shown by the CLI and the API."""

    codec_id: str
    vendor: str
    devices: tuple[str, ...]
    use_case: str
    source: DecoderSource


class _ScriptCall(Enum):
    NOW = "now"
    DEFERRED = "deferred"


class _ScriptNeeded(NamedTuple):
    """Where a deferred decode stopped: this script must run on this fPort, for this tenant."""

    codec: JavaScriptCodec
    f_port: int
    tenant: str


@dataclass(frozen=True, slots=True)
class _RegisteredScript:
    codec: JavaScriptCodec
    info: CodecInfo


class CodecRegistry:
    """Holds the built-in codecs and the registered JS codecs; decodes payloads one by one or in batches."""

    def __init__(self, *, sandbox_limits: SandboxLimits | None = None) -> None:
        self._builtins: dict[str, BuiltinCodec] = {codec.codec_id: codec for codec in BUILTIN_CODECS}
        self._scripts: dict[str, _RegisteredScript] = {}
        self._sandbox_limits = sandbox_limits or SandboxLimits()
        self._scripts_lock = threading.Lock()

    def register_javascript(
        self,
        codec_id: str,
        script: str,
        *,
        style: ScriptStyle | str = ScriptStyle.DEVICE_REPOSITORY,
        devices: Sequence[str] = (),
        use_case: str = CodecUseCase.GENERIC.value,
    ) -> None:
        """Compile `script` into its own sandbox; raises DecodeError (message and line) if it does not load.

        Registering again under the same id replaces the previous script.
        """
        codec = JavaScriptCodec(script, ScriptStyle(style), self._sandbox_limits)
        info = CodecInfo(
            codec_id, codec_id.partition("/")[0], tuple(devices), use_case, DecoderSource.JAVASCRIPT
        )
        with self._scripts_lock:
            previous = self._scripts.get(codec_id)
            self._scripts[codec_id] = _RegisteredScript(codec, info)
        if previous is not None:
            previous.codec.close()

    def unregister_javascript(self, codec_id: str) -> None:
        with self._scripts_lock:
            registered = self._scripts.pop(codec_id, None)
        if registered is not None:
            registered.codec.close()

    def codecs(self) -> list[CodecInfo]:
        listed = [
            CodecInfo(
                codec.codec_id, codec.vendor, codec.devices, codec.use_case.value, DecoderSource.BUILTIN
            )
            for codec in self._builtins.values()
        ]
        listed.extend(registered.info for registered in self._scripts.values())
        return sorted(listed, key=lambda info: (info.codec_id, info.source.value))

    def knows(self, codec_id: str) -> bool:
        return codec_id in self._builtins or codec_id in self._scripts

    def decode_builtin(self, codec_id: str, f_port: int, payload: bytes) -> JsonObject:
        """Stage 1 only, for tools that want the exception (the CLI, tests, benchmarks)."""
        codec = self._builtins.get(codec_id)
        if codec is None:
            raise DecodeError(f"no built-in codec {codec_id!r}")
        return codec.decode(f_port, payload)

    def decode(
        self,
        *,
        codec_id: str | None,
        f_port: int | None,
        payload: bytes,
        network_decoded: JsonObject | None,
        device_metadata: Mapping[str, Any] | None = None,
        preference: Sequence[DecoderSource] = DEFAULT_PREFERENCE,
        municipality_id: int | None = None,
    ) -> DecodeOutcome:
        """Decode one payload of `municipality_id` (whose isolate a JS codec runs in)."""
        outcome = self._decode(
            codec_id,
            f_port,
            payload,
            network_decoded,
            device_metadata,
            preference,
            municipality_id,
            _ScriptCall.NOW,
        )
        assert isinstance(outcome, DecodeOutcome)  # only a deferred script call stops early
        return outcome

    def decode_many(self, requests: Sequence[DecodeRequest]) -> list[DecodeOutcome]:
        """`decode` for each request, with every JS codec call made in batches.

        A call into a JS sandbox costs a round trip to its process that dwarfs the
        codec's own work, so a first pass decodes each request up to the point where
        a script would run, the scripts then run per codec and municipality in batches
        of `SCRIPT_BATCH` (one call into V8 each, several towns' batches per round
        trip), and a second pass finishes those requests with their
        script's answer. Both passes follow the same rules as `decode`, so the
        outcomes, warnings and fall-through are the same as one call at a time.
        """
        outcomes: list[DecodeOutcome | None] = []
        waiting: dict[tuple[JavaScriptCodec, str], list[tuple[int, int]]] = {}
        for index, request in enumerate(requests):
            first = self._decode(*request, _ScriptCall.DEFERRED)  # fields in `_decode`'s order
            if isinstance(first, DecodeOutcome):
                outcomes.append(first)
            else:
                outcomes.append(None)
                waiting.setdefault((first.codec, first.tenant), []).append((index, first.f_port))
        by_codec: dict[JavaScriptCodec, list[tuple[str, list[tuple[int, int]]]]] = {}
        for (codec, tenant), calls in waiting.items():
            chunks = by_codec.setdefault(codec, [])
            chunks.extend(
                (tenant, calls[start : start + SCRIPT_BATCH]) for start in range(0, len(calls), SCRIPT_BATCH)
            )
        for codec, chunks in by_codec.items():
            for exchange in _exchanges(chunks):
                answered = codec.decode_groups(
                    [
                        (tenant, [(port, requests[index].payload) for index, port in chunk])
                        for tenant, chunk in exchange
                    ]
                )
                for (_, chunk), answers in zip(exchange, answered, strict=True):
                    for (index, _), answer in zip(chunk, answers, strict=True):
                        finished = self._decode(*requests[index], answer)
                        assert isinstance(finished, DecodeOutcome)
                        outcomes[index] = finished
        assert all(outcome is not None for outcome in outcomes)
        return cast("list[DecodeOutcome]", outcomes)

    def _decode(
        self,
        codec_id: str | None,
        f_port: int | None,
        payload: bytes,
        network_decoded: JsonObject | None,
        device_metadata: Mapping[str, Any] | None,
        preference: Sequence[DecoderSource],
        municipality_id: int | None,
        script: _ScriptCall | ScriptResult | DecodeError,
    ) -> DecodeOutcome | _ScriptNeeded:
        """The rules of `decode`; `script` says how the JS source gets its answer.

        `NOW` calls the script here; `DEFERRED` stops where the script would run and
        returns what to call; a `ScriptResult` or `DecodeError` is that call's answer,
        got in a batch after a `DEFERRED` pass over the same request.
        """
        failures: list[str] = []
        for source in preference:
            warnings: tuple[str, ...] = ()
            try:
                if source is DecoderSource.BUILTIN:
                    builtin = self._builtins.get(codec_id) if codec_id is not None else None
                    if builtin is None:
                        continue
                    decoded: JsonObject | None = builtin.decode(_required_port(f_port), payload)
                elif source is DecoderSource.JAVASCRIPT:
                    if isinstance(script, _ScriptCall):
                        registered = self._scripts.get(codec_id) if codec_id is not None else None
                        if registered is None:
                            continue
                        port = _required_port(f_port)
                        tenant = script_tenant(municipality_id)
                        if script is _ScriptCall.DEFERRED:
                            return _ScriptNeeded(registered.codec, port, tenant)
                        answer: ScriptResult | DecodeError = registered.codec.decode(
                            port, payload, tenant=tenant
                        )
                    else:
                        answer = script
                    if isinstance(answer, DecodeError):
                        raise answer
                    decoded, warnings = answer.data, answer.warnings
                else:
                    if network_decoded is not None and not isinstance(network_decoded, dict):
                        raise DecodeError("the network server's decoded payload is not a JSON object")
                    decoded = network_decoded
            except DecodeError as exc:
                failures.append(f"{source.value}: {exc}")
                continue
            if decoded is None:
                continue
            readings = readings_from(codec_id, decoded, device_metadata)
            return _outcome(
                decoded, readings, source, codec_id, (*failures, *warnings) if failures else warnings
            )
        if failures:
            return DecodeOutcome(None, (), None, codec_id, error="; ".join(failures))
        return DecodeOutcome(None, (), None, codec_id, error=self._why_nothing_ran(codec_id, preference))

    def _why_nothing_ran(self, codec_id: str | None, preference: Sequence[DecoderSource]) -> str:
        allowed = ", ".join(source.value for source in preference)
        if codec_id is None:
            return f"no codec assigned and no decoded object from the network server (sources: {allowed})"
        if not self.knows(codec_id):
            return f"unknown codec {codec_id!r} and no decoded object from the network server"
        return f"codec {codec_id!r} has no decoder among the allowed sources ({allowed})"

    def close(self) -> None:
        with self._scripts_lock:
            scripts, self._scripts = self._scripts, {}
        for registered in scripts.values():
            registered.codec.close()


def _exchanges(
    chunks: list[tuple[str, list[tuple[int, int]]]],
) -> list[list[tuple[str, list[tuple[int, int]]]]]:
    """Chunks of several tenants, put together into exchanges with a script's process of at
    most `SCRIPT_EXCHANGE` frames: one round trip for many towns, but no unbounded request."""
    exchanges: list[list[tuple[str, list[tuple[int, int]]]]] = []
    size = SCRIPT_EXCHANGE
    for tenant, chunk in chunks:
        if size + len(chunk) > SCRIPT_EXCHANGE:
            exchanges.append([])
            size = 0
        exchanges[-1].append((tenant, chunk))
        size += len(chunk)
    return exchanges


def _required_port(f_port: int | None) -> int:
    if f_port is None:
        raise DecodeError("uplink has no fPort (MAC commands only)")
    return f_port
