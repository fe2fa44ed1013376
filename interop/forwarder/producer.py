#!/usr/bin/env python3
"""A python-ndn 0.5 producer behind the amicn forwarder.

Registers PREFIX through the forwarder the python-ndn way — the old 9-component command
Interest with `--api v1` (ndn.app.NDNApp), the v0.3 signed command Interest with `--api v2`
(ndn.appv2.NDNApp) — then answers:
  PREFIX/seg=<i>   for i < --segments: content = segment bytes, FinalBlockId = last segment
  PREFIX/<other>   content = b"hello " + URI of the Interest name
Prints "READY" on stdout once the registration succeeded; exits 3 if it failed.
The transport comes from NDN_CLIENT_TRANSPORT (e.g. unix:///tmp/x/nfd.sock).

usage: producer.py --api v1|v2 [--segments N] [--segment-size S] PREFIX
"""
import argparse
import asyncio
import sys

from ndn.encoding import Component, Name


def segment_bytes(i: int, size: int) -> bytes:
    return bytes((i * 7 + k) % 251 for k in range(size))


def answer(prefix, name, args):
    """(content, final_block_id) for an Interest name, or None to stay silent."""
    if len(name) == len(prefix) + 1 and Component.get_type(name[-1]) == Component.TYPE_SEGMENT:
        seg = Component.to_number(name[-1])
        if seg >= args.segments:
            return None
        return segment_bytes(seg, args.segment_size), Component.from_segment(args.segments - 1)
    return b"hello " + Name.to_str(name).encode(), None


def run_v1(args) -> int:
    from ndn.app import NDNApp
    from ndn.security import KeychainDigest

    app = NDNApp(keychain=KeychainDigest())
    prefix = Name.normalize(args.prefix)

    def on_interest(name, _param, _app_param):
        a = answer(prefix, name, args)
        if a is None:
            return
        content, final = a
        if final is None:
            app.put_data(name, content, freshness_period=1000)
        else:
            app.put_data(name, content, freshness_period=1000, final_block_id=final)

    async def main():
        ok = await app.register(prefix, on_interest)
        if not ok:
            print("REGISTER-FAILED", flush=True)
            app.shutdown()
            sys.exit(3)
        print("READY", flush=True)

    app.run_forever(after_start=main())
    return 0


def run_v2(args) -> int:
    from ndn import appv2
    from ndn.security import DigestSha256Signer

    app = appv2.NDNApp()
    prefix = Name.normalize(args.prefix)
    signer = DigestSha256Signer()

    def on_interest(name, _app_param, reply, _context):
        a = answer(prefix, name, args)
        if a is None:
            return
        content, final = a
        kw = {"freshness_period": 1000}
        if final is not None:
            kw["final_block_id"] = final
        reply(app.make_data(name, content, signer, **kw))

    app.attach_handler(prefix, on_interest)

    async def main():
        ok = await app.register(prefix)
        if not ok:
            print("REGISTER-FAILED", flush=True)
            app.shutdown()
            sys.exit(3)
        print("READY", flush=True)

    app.run_forever(after_start=main())
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--api", choices=["v1", "v2"], required=True)
    p.add_argument("--segments", type=int, default=0)
    p.add_argument("--segment-size", type=int, default=1000)
    p.add_argument("prefix")
    args = p.parse_args()
    return run_v1(args) if args.api == "v1" else run_v2(args)


if __name__ == "__main__":
    sys.exit(main())
