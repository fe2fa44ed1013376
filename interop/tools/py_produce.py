#!/usr/bin/env python3
"""Publish a file as a versioned, segmented object with python-ndn 0.5.

Used by the amicn interop tests: `amicn get` fetches what a python-ndn producer publishes.
Registers PREFIX with the forwarder (python-ndn's own command Interest format), then answers
`PREFIX/v=<version>/seg=<n>` with DigestSha256-signed segments carrying FinalBlockId, and a
CanBePrefix Interest for PREFIX with segment 0 of the version. Prints READY once registered.

usage: py_produce.py --socket PATH [--segment-size N] PREFIX FILE
"""
import argparse
import sys
import time

from ndn.app import NDNApp
from ndn.encoding import Component, Name
from ndn.security import KeychainDigest
from ndn.transport.stream_face import UnixFace


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--segment-size", type=int, default=8000)
    parser.add_argument("prefix")
    parser.add_argument("file")
    args = parser.parse_args()

    with open(args.file, "rb") as f:
        content = f.read()
    size = args.segment_size
    segments = [content[i:i + size] for i in range(0, len(content), size)] or [b""]
    prefix = Name.normalize(args.prefix)
    versioned = prefix + [Component.from_version(int(time.time() * 1000))]
    final = Component.from_segment(len(segments) - 1)

    app = NDNApp(face=UnixFace(args.socket), keychain=KeychainDigest())

    @app.route(prefix)
    def on_interest(name, param, _app_param):
        if len(name) == len(prefix) + 2 and Name.is_prefix(versioned, name) \
                and Component.get_type(name[-1]) == Component.TYPE_SEGMENT:
            seg = Component.to_number(name[-1])
        elif len(name) == len(prefix) and param.can_be_prefix:
            seg = 0
        else:
            return
        if seg >= len(segments):
            return
        app.put_data(versioned + [Component.from_segment(seg)], segments[seg],
                     freshness_period=10000, final_block_id=final)

    async def ready():
        print("READY", Name.to_str(versioned), flush=True)

    app.run_forever(after_start=ready())
    return 0


if __name__ == "__main__":
    sys.exit(main())
