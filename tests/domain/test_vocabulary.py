"""The shared vocabulary: each name once, and its spellings in agreement."""

from __future__ import annotations

from typing import get_args

from domain.decoding import DecoderSource, DecoderSourceName, ScriptStyle, ScriptStyleName
from domain.use_case import CodecUseCase, UseCase


def test_decoder_source_literal_spells_the_enum() -> None:
    assert list(get_args(DecoderSourceName)) == [source.value for source in DecoderSource]


def test_every_device_use_case_but_other_is_a_codec_use_case() -> None:
    served = {use_case.value for use_case in UseCase} - {"other"}
    assert served <= {use_case.value for use_case in CodecUseCase}


def test_script_style_literal_spells_the_enum() -> None:
    assert list(get_args(ScriptStyleName)) == [style.value for style in ScriptStyle]
