"""The codecs lorakom can decode with: what an IT team picks from when registering a device."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.deps import CurrentKey
from api.problems import problem_responses
from decoders import CodecRegistry

router = APIRouter(tags=["codecs"])


class CodecOut(BaseModel):
    codec_id: str = Field(examples=["milesight-iot/em500-udl-codec"], description="vendor/codec")
    vendor: str
    devices: list[str] = Field(description="Device models the codec is made for")
    use_case: str | None
    source: str = Field(description="builtin | javascript | network")


@router.get(
    "/codecs",
    summary="Codecs and their use cases",
    response_model=list[CodecOut],
    responses=problem_responses(401),
)
def list_codecs(request: Request, key: CurrentKey) -> list[CodecOut]:
    registry: CodecRegistry = request.app.state.codecs
    return [
        CodecOut(
            codec_id=info.codec_id,
            vendor=info.vendor,
            devices=list(info.devices),
            use_case=info.use_case,
            source=info.source.value,
        )
        for info in registry.codecs()
    ]
