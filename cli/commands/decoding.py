"""`lorakom decode`, `codecs` and `redecode`: the decoders, on one payload or on stored frames."""

from __future__ import annotations

import argparse
import sys

from cli.commands import Subcommands
from cli.wiring import migrated_database
from decoders import CodecRegistry
from domain.errors import ConfigurationError
from services.codec_following import FollowingDecoder
from storage.database import DatabaseSettings, create_database_engine


def command_decode(args: argparse.Namespace) -> int:
    import json

    from decoders.cli_format import decode_to_json
    from domain.errors import DecodeError

    try:
        result = decode_to_json(args.codec, args.fport, args.payload)
    except DecodeError as exc:
        print(f"lorakom decode: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False))
    return 0


def command_codecs(args: argparse.Namespace) -> int:
    registry = CodecRegistry()
    for info in registry.codecs():
        print(
            f"{info.codec_id:45} {info.source.value:10} {info.use_case or '-':12} {', '.join(info.devices)}"
        )
    return 0


def command_redecode(args: argparse.Namespace) -> int:
    from datetime import datetime

    from tqdm import tqdm

    from domain.ids import parse_dev_eui
    from services.redecoding import redecode_codec, redecode_device
    from storage.redecode import count_frames

    since = datetime.fromisoformat(args.since) if args.since else None
    if since is not None and since.tzinfo is None:
        raise ConfigurationError("--since needs a time zone, e.g. 2026-01-01T00:00:00+00:00")
    following = FollowingDecoder()
    decoder = following.registry
    with migrated_database(DatabaseSettings()) as url:
        engine = create_database_engine(url)
        following.refresh(engine)
        try:
            if args.device:
                dev_eui = parse_dev_eui(args.device)
                from psycopg import connect

                from storage.database import libpq_url

                with connect(libpq_url(url)) as conn:
                    row = conn.execute("SELECT id FROM device WHERE dev_eui = %s", (dev_eui,)).fetchone()
                if row is None:
                    raise ConfigurationError(f"no registered device {dev_eui}; register it first")
                total = count_frames(engine, dev_eui=dev_eui, since=since)
                with tqdm(total=total, unit="frame", disable=args.quiet) as bar:
                    report = redecode_device(
                        engine, int(row[0]), codecs=decoder, since=since, progress=bar.update
                    )
            else:
                total = count_frames(engine, codec_id=args.codec, since=since)
                with tqdm(total=total, unit="frame", disable=args.quiet) as bar:
                    report = redecode_codec(
                        engine, args.codec, codecs=decoder, since=since, progress=bar.update
                    )
        finally:
            engine.dispose()
    print(
        f"{report.devices} device(s), {report.frames} frames: {report.decoded} decoded, "
        f"{report.failed} failed, {report.readings} readings"
    )
    for reason, count in sorted(report.errors.items(), key=lambda item: -item[1])[:10]:
        print(f"  {count:8} × {reason}")
    return 0


def add_decoding_commands(commands: Subcommands) -> None:
    decode = commands.add_parser("decode", help="decode one payload and print JSON")
    decode.add_argument("--codec", required=True, help="vendor/codec, e.g. milesight-iot/em500-udl-codec")
    decode.add_argument("--fport", type=int, required=True)
    decode.add_argument("payload", help="payload as hex")
    decode.set_defaults(handler=command_decode)

    commands.add_parser("codecs", help="list the codecs").set_defaults(handler=command_codecs)

    redecode = commands.add_parser("redecode", help="decode stored raw uplinks again")
    target = redecode.add_mutually_exclusive_group(required=True)
    target.add_argument("--device", help="DevEUI of a registered device")
    target.add_argument("--codec", help="every device with this codec id")
    redecode.add_argument("--since", help="ISO time with zone; default: all history")
    redecode.add_argument("--quiet", action="store_true", help="no progress bar")
    redecode.set_defaults(handler=command_redecode)
