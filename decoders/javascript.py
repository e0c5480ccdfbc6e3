"""Vendor JavaScript codecs: the API the registry calls, run in a V8 sandbox (mini-racer).

Each script runs in a process of its own (`decoders.javascript_process` says why and
holds the process; `decoders.javascript_worker` is the code in it). This module turns
calls into that process's requests and its answers into results.

Tenancy: scripts are shared by municipalities, so each call names its tenant and runs in
that tenant's own isolate inside the script's process; no global state of one town's
calls is visible to another's (see the worker for the cost of stricter choices). Several
towns' batches travel in one round trip (`decode_groups`).

Limits: each call has a wall-clock limit that includes its wait for the script (calls to
one script run one at a time); at most `max_waiting_calls` may wait, further calls are
refused at once, so a runaway script costs its callers a bounded delay and never holds up
other scripts, which have processes of their own. A batch gets one call's time limit in
all; when it fails as a whole, its frames run alone with their own limits until
`BATCH_RUNAWAYS` of them have run into theirs.

Failures come back as `DecodeError` with the JavaScript message and, where V8
knows it, the line in the script.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from decoders.javascript_process import SandboxLimits, ScriptProcess
from domain.decoding import ScriptStyle
from domain.errors import DecodeError
from domain.uplink import JsonObject

__all__ = ["BATCH_RUNAWAYS", "JavaScriptCodec", "SandboxLimits", "ScriptResult", "ScriptStyle"]

# Where a script exception happened, from the stack V8 wrote (the worker names the script so).
_STACK_LOCATION = re.compile(r"codec\.js:(\d+)")

# Frames of a failed batch that may run into their time limit alone before the rest of the
# batch fails unrun: a batch then costs at most one limit more than this many.
BATCH_RUNAWAYS = 2

# What the parent allows per frame of a batch that runs frame by frame (each is one call into V8).
_PER_FRAME_S = 0.01


@dataclass(frozen=True, slots=True)
class ScriptResult:
    data: JsonObject
    warnings: tuple[str, ...] = ()


class JavaScriptCodec:
    """One codec script in a process of its own; thread-safe, one call at a time per script."""

    def __init__(self, script: str, style: ScriptStyle, limits: SandboxLimits | None = None) -> None:
        self.style = style
        self.limits = limits or SandboxLimits()
        self._process = ScriptProcess(script, style.value, self.limits)

    def decode(
        self,
        f_port: int,
        payload: bytes,
        variables: Mapping[str, Any] | None = None,
        *,
        tenant: str = "",
    ) -> ScriptResult:
        """Decode one payload in `tenant`'s isolate (a municipality; '' for tools without one)."""
        request = {
            "tenant": tenant,
            "frames": [[int(f_port), payload.hex()]],
            "variables": variables,
            "single": True,
        }
        answer = self._process.exchange(request, [tenant], self.limits.call_time_limit_s)[0]
        return _result(answer)

    def decode_many(
        self,
        frames: Sequence[tuple[int, bytes]],
        variables: Mapping[str, Any] | None = None,
        *,
        tenant: str = "",
    ) -> list[ScriptResult | DecodeError]:
        """Decode a batch in one call, within one call's time limit; when the batch fails as a
        whole, each frame runs alone with its own limit, until `BATCH_RUNAWAYS` have run into it."""
        return self.decode_groups([(tenant, frames)], variables)[0]

    def decode_groups(
        self,
        groups: Sequence[tuple[str, Sequence[tuple[int, bytes]]]],
        variables: Mapping[str, Any] | None = None,
    ) -> list[list[ScriptResult | DecodeError]]:
        """`decode_many` for several tenants' batches in one exchange with the script's process
        (an ingest batch holds many towns' uplinks; one exchange each would cost a round trip
        per town). Each batch runs in its tenant's isolate, with its own time limits."""
        groups = [(tenant, frames) for tenant, frames in groups]
        if not any(frames for _, frames in groups):
            return [[] for _ in groups]
        limits = self.limits
        run_time_s = sum(
            limits.call_time_limit_s * (1 + BATCH_RUNAWAYS) + _PER_FRAME_S * len(frames)
            for _, frames in groups
        )
        request = {
            "groups": [
                [tenant, [[int(port), payload.hex()] for port, payload in frames]]
                for tenant, frames in groups
            ],
            "variables": variables,
            "max_runaways": BATCH_RUNAWAYS,
        }
        try:
            answered = self._process.exchange(request, [tenant for tenant, _ in groups], run_time_s)
        except DecodeError as exc:
            return [[exc for _ in frames] for _, frames in groups]
        results: list[list[ScriptResult | DecodeError]] = []
        for (_, frames), answers in zip(groups, answered, strict=False):
            if not isinstance(answers, list) or len(answers) != len(frames):
                results.append(
                    [DecodeError("the sandbox answered for another number of frames") for _ in frames]
                )
            else:
                results.append([_result_or_error(answer) for answer in answers])
        if len(results) != len(groups):
            raise DecodeError("the sandbox answered for another number of batches")
        return results

    def close(self) -> None:
        """End the script's process; later calls fail."""
        self._process.close()

    def stop_if_idle(self) -> None:
        """End the process if it went unused for `idle_stop_s` (the next call starts another)."""
        self._process.stop_if_idle()


def _result(answer: object) -> ScriptResult:
    """One frame's answer from the sandbox: the glue's `{data, warnings, errors}` or its
    `{error, stack}` for a script exception, or the sandbox's own `{failure}`."""
    if not isinstance(answer, dict):
        raise DecodeError("the sandbox answered with no object")
    if "failure" in answer:
        raise DecodeError(str(answer["failure"]))
    if "error" in answer:
        raise _script_error(str(answer["error"]), str(answer.get("stack", "")))
    errors = answer.get("errors") or []
    if errors:
        raise DecodeError("codec reported: " + "; ".join(str(error) for error in errors))
    data = answer.get("data")
    if not isinstance(data, dict):
        raise DecodeError(f"codec returned {type(data).__name__} as data, not an object")
    return ScriptResult(data, tuple(str(warning) for warning in answer.get("warnings") or ()))


def _script_error(message: str, stack: str = "") -> DecodeError:
    found = _STACK_LOCATION.search(stack)
    where = f" (line {found.group(1)})" if found else ""
    return DecodeError(f"script error: {message}{where}")


def _result_or_error(answer: object) -> ScriptResult | DecodeError:
    try:
        return _result(answer)
    except DecodeError as exc:
        return exc
