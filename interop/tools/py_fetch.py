#!/usr/bin/env python3
"""Fetch a segmented object with python-ndn 0.5 and write it to a file.

Used by the amicn interop tests: python-ndn fetches what `amicn put` publishes. The first
Interest uses CanBePrefix + MustBeFresh to discover the latest version, the rest ask for
segments one by one (python-ndn's segment_fetcher). With --cert, every segment must carry a
valid Ed25519 signature by the key of that certificate (python-ndn's Ed25519Checker).

usage: py_fetch.py --socket PATH [--cert FILE] NAME OUTPUT
exit status 0 on success, 1 on fetch or validation failure.
"""
import argparse
import sys

from ndn.app import NDNApp
from ndn.app_support.segment_fetcher import segment_fetcher
from ndn.security import KeychainDigest
from ndn.security.validator.known_key_validator import Ed25519Checker
from ndn.transport.stream_face import UnixFace


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--cert")
    parser.add_argument("name")
    parser.add_argument("output")
    args = parser.parse_args()

    app = NDNApp(face=UnixFace(args.socket), keychain=KeychainDigest())
    validator = None
    if args.cert:
        with open(args.cert, "rb") as f:
            validator = Ed25519Checker.from_cert(f.read())
    outcome = {"ok": False}

    async def fetch():
        try:
            buf = bytearray()
            async for chunk in segment_fetcher(app, args.name, timeout=4000, retry_times=5,
                                               validator=validator):
                buf += bytes(chunk)
            with open(args.output, "wb") as f:
                f.write(buf)
            outcome["ok"] = True
            print(f"fetched {len(buf)} bytes", file=sys.stderr)
        except Exception as e:  # report any python-ndn failure as a test failure
            print(f"fetch failed: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            app.shutdown()

    app.run_forever(after_start=fetch())
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
