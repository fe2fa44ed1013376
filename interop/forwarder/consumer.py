#!/usr/bin/env python3
"""A python-ndn 0.5 consumer fetching through the amicn forwarder.

Modes (transport from NDN_CLIENT_TRANSPORT):
  fetch NAME EXPECTED     one Interest; the Data content must equal EXPECTED (UTF-8)
  nack NAME               the Interest must come back as a Nack with reason NoRoute (150)
  segments PREFIX N SIZE  fetch PREFIX/seg=0..N-1 with up to 16 Interests in flight; every
                          segment must have the producer's bytes and FinalBlockId = seg N-1
Prints "OK ..." and exits 0 on success; prints the failure and exits 1 otherwise.

usage: consumer.py [--api v1|v2] MODE ARGS...
"""
import argparse
import asyncio
import sys

from ndn.encoding import Component, Name
from ndn.types import InterestNack, InterestTimeout


def segment_bytes(i: int, size: int) -> bytes:
    return bytes((i * 7 + k) % 251 for k in range(size))


class V1:
    def __init__(self):
        from ndn.app import NDNApp
        from ndn.security import KeychainDigest
        self.app = NDNApp(keychain=KeychainDigest())

    async def get(self, name):
        data_name, meta, content = await self.app.express_interest(
            name, must_be_fresh=False, can_be_prefix=False, lifetime=4000)
        final = meta.final_block_id if meta is not None else None
        return data_name, bytes(content or b""), final

    def run(self, coro):
        self.app.run_forever(after_start=coro)


class V2:
    def __init__(self):
        from ndn import appv2
        self.appv2 = appv2
        self.app = appv2.NDNApp()

    async def get(self, name):
        data_name, content, ctx = await self.app.express(
            name, validator=self.appv2.pass_all, must_be_fresh=False, can_be_prefix=False,
            lifetime=4000)
        meta = ctx.get("meta_info") if isinstance(ctx, dict) else None
        final = meta.final_block_id if meta is not None else None
        return data_name, bytes(content or b""), final

    def run(self, coro):
        self.app.run_forever(after_start=coro)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--api", choices=["v1", "v2"], default="v1")
    p.add_argument("mode", choices=["fetch", "nack", "segments"])
    p.add_argument("args", nargs="+")
    a = p.parse_args()
    client = V1() if a.api == "v1" else V2()
    result = {"code": 1}

    async def fetch():
        name, expected = a.args[0], a.args[1]
        try:
            data_name, content, _ = await client.get(name)
        except (InterestNack, InterestTimeout) as e:
            print(f"FAIL fetch {name}: {type(e).__name__} {getattr(e, 'reason', '')}")
            return
        if Name.to_str(data_name) != Name.to_str(Name.normalize(name)):
            print(f"FAIL Data name {Name.to_str(data_name)} != {name}")
        elif content != expected.encode():
            print(f"FAIL content {content!r} != {expected!r}")
        else:
            print(f"OK fetch {Name.to_str(data_name)}")
            result["code"] = 0

    async def nack():
        name = a.args[0]
        try:
            await client.get(name)
            print(f"FAIL expected a Nack for {name}, got Data")
        except InterestNack as e:
            if e.reason == 150:
                print(f"OK nack NoRoute {name}")
                result["code"] = 0
            else:
                print(f"FAIL Nack reason {e.reason}, expected 150")
        except InterestTimeout:
            print(f"FAIL timeout instead of Nack for {name}")

    async def segments():
        prefix = Name.normalize(a.args[0])
        count, size = int(a.args[1]), int(a.args[2])
        sem = asyncio.Semaphore(16)
        final_seg = Component.from_segment(count - 1)

        async def one(i):
            async with sem:
                for _attempt in range(3):
                    try:
                        return await client.get(prefix + [Component.from_segment(i)])
                    except InterestTimeout:
                        continue
                raise InterestTimeout()

        try:
            got = await asyncio.gather(*(one(i) for i in range(count)))
        except (InterestNack, InterestTimeout) as e:
            print(f"FAIL segmented fetch: {type(e).__name__}")
            return
        for i, (_n, content, final) in enumerate(got):
            if content != segment_bytes(i, size):
                print(f"FAIL segment {i} content differs ({len(content)} bytes)")
                return
            if final is None or bytes(final) != bytes(final_seg):
                print(f"FAIL segment {i} FinalBlockId {final!r}")
                return
        print(f"OK segments {count} x {size} B")
        result["code"] = 0

    async def go():
        try:
            await {"fetch": fetch, "nack": nack, "segments": segments}[a.mode]()
        finally:
            client.app.shutdown()

    client.run(go())
    return result["code"]


if __name__ == "__main__":
    sys.exit(main())
