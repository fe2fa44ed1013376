#!/usr/bin/env python3
"""Publish a file as a versioned, segmented object with python-ndn 0.5.

Used by the amicn interop tests: `amicn get` fetches what a python-ndn producer publishes.
Registers PREFIX with the forwarder (python-ndn's own command Interest format), then answers
`PREFIX/v=<version>/seg=<n>` with DigestSha256-signed segments carrying FinalBlockId, and a
CanBePrefix Interest for PREFIX with segment 0 of the version. Prints READY once registered.
With --sign ecdsa|rsa, segments are signed instead by a fresh P-256 or RSA 2048 key whose
self-signed certificate `PREFIX/KEY/k1/self/v=...` is written to --cert-out and served too.

usage: py_produce.py --socket PATH [--segment-size N] [--sign ecdsa|rsa --cert-out FILE] PREFIX FILE
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
    parser.add_argument("--sign", choices=["digest", "ecdsa", "rsa"], default="digest")
    parser.add_argument("--cert-out")
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
    signer, cert, key_name = None, None, prefix + [Component.from_str("KEY"), Component.from_str("k1")]
    if args.sign != "digest":
        from Cryptodome.PublicKey import ECC, RSA
        from ndn.app_support.security_v2 import self_sign
        from ndn.security import Sha256WithEcdsaSigner, Sha256WithRsaSigner
        key = ECC.generate(curve="P-256") if args.sign == "ecdsa" else RSA.generate(2048)
        signer_class = Sha256WithEcdsaSigner if args.sign == "ecdsa" else Sha256WithRsaSigner
        private_der = key.export_key(format="DER")
        cert_name, cert = self_sign(key_name, key.public_key().export_key(format="DER"),
                                    signer_class(key_name, private_der))
        signer = signer_class(cert_name, private_der)
        with open(args.cert_out, "wb") as f:
            f.write(bytes(cert))

    @app.route(prefix)
    def on_interest(name, param, _app_param):
        if cert is not None and Name.is_prefix(key_name, name):
            app.put_raw_packet(cert)
            return
        if len(name) == len(prefix) + 2 and Name.is_prefix(versioned, name) \
                and Component.get_type(name[-1]) == Component.TYPE_SEGMENT:
            seg = Component.to_number(name[-1])
        elif len(name) == len(prefix) and param.can_be_prefix:
            seg = 0
        else:
            return
        if seg >= len(segments):
            return
        extra = {"signer": signer} if signer is not None else {}
        app.put_data(versioned + [Component.from_segment(seg)], segments[seg],
                     freshness_period=10000, final_block_id=final, **extra)

    async def ready():
        print("READY", Name.to_str(versioned), flush=True)

    app.run_forever(after_start=ready())
    return 0


if __name__ == "__main__":
    sys.exit(main())
