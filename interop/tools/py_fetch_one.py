#!/usr/bin/env python3
"""Fetch one Data packet with python-ndn 0.5 and write its raw wire bytes to a file.

Used by the amicn interop tests: python-ndn fetches what `amicn repo serve` publishes, exactly
as stored. With --cert the Data must carry a valid Ed25519 signature by that certificate's key
(python-ndn's Ed25519Checker); without it any signature is accepted (integrity is then checked
by the caller comparing bytes).

usage: py_fetch_one.py --socket PATH [--cert FILE] [--can-be-prefix] NAME OUTPUT
exit status 0 on success, 1 on fetch or validation failure.
"""
import argparse
import sys

from ndn.app import NDNApp
from ndn.security import KeychainDigest
from ndn.security.validator.known_key_validator import Ed25519Checker
from ndn.transport.stream_face import UnixFace


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--can-be-prefix", action="store_true")
    parser.add_argument("name")
    parser.add_argument("output")
    args = parser.parse_args()

    app = NDNApp(face=UnixFace(args.socket), keychain=KeychainDigest())
    if args.cert:
        with open(args.cert, "rb") as f:
            validator = Ed25519Checker.from_cert(f.read())
    else:
        async def validator(*_args, **_kwargs):
            return True
    outcome = {"ok": False}

    async def fetch():
        try:
            _name, _meta, _content, raw = await app.express_interest(
                args.name, can_be_prefix=args.can_be_prefix, must_be_fresh=False,
                lifetime=4000, need_raw_packet=True, validator=validator)
            with open(args.output, "wb") as f:
                f.write(bytes(raw))
            outcome["ok"] = True
        except Exception as e:  # report any python-ndn failure as a test failure
            print(f"fetch failed: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            app.shutdown()

    app.run_forever(after_start=fetch())
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
